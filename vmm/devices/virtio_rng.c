/* virtio-rng: fill each request's buffers with host entropy. */
#include "vmm/devices/virtio_rng.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>

size_t virtio_rng__getrandom(void *ctx, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = getrandom(buf + done, len - done, GRND_NONBLOCK);

		if (n > 0)
			done += (size_t)n;
		else if (n < 0 && errno == EINTR)
			continue;
		else
			break; /* not seeded yet (EAGAIN): hand out less */
	}
	return done;
}

static struct virtio_rng *rng_of(struct virtio_dev *vdev)
{
	return (struct virtio_rng *)vdev;
}

static uint32_t fill(struct virtio_rng *rng, const struct virtq_chain *c)
{
	uint8_t tmp[4096];
	uint64_t left = c->write_len;
	uint32_t total = 0;

	if (left > VIRTIO_RNG_MAX_FILL)
		left = VIRTIO_RNG_MAX_FILL;

	for (unsigned i = 0; i < c->nr_write && left; i++) {
		uint8_t *p = c->iov[i].iov_base;
		size_t room = c->iov[i].iov_len < left ? c->iov[i].iov_len
						       : (size_t)left;

		while (room) {
			size_t want = room < sizeof(tmp) ? room : sizeof(tmp);
			size_t got = rng->source(rng->source_ctx, tmp, want);

			/* Through a bounce buffer: the source never writes
			 * guest memory directly, and never more than asked. */
			if (got > want)
				got = want;
			memcpy(p, tmp, got);
			total += (uint32_t)got;
			if (got < want)
				return total;
			p += got;
			room -= got;
			left -= got;
		}
	}
	return total;
}

static void rng_queue_notify(struct virtio_dev *vdev, unsigned queue)
{
	struct virtio_rng *rng = rng_of(vdev);
	struct iovec iov[VIRTIO_RNG_MAX_SEGS];
	struct virtq_chain c = { .iov = iov, .max = VIRTIO_RNG_MAX_SEGS };
	uint32_t n;

	/* Bounded: a queue hands out each available head once. */
	while (virtio_dev__pop(vdev, queue, &c) > 0) {
		if (c.nr_read) {
			virtio_dev__fail(vdev, queue, "entropy request with "
					 "a device-readable buffer");
			virtio_dev__push(vdev, queue, c.head, 0);
			return;
		}
		n = fill(rng, &c);
		__atomic_fetch_add(&rng->bytes, n, __ATOMIC_RELAXED);
		virtio_dev__push(vdev, queue, c.head, n);
	}
}

static const struct virtio_dev_ops rng_ops = {
	.queue_notify = rng_queue_notify,
	/* No config fields (reads are zero), no feature bits of its own. */
};

int virtio_rng__init(struct virtio_rng *rng, const char *name,
		     virtio_rng_source_fn source, void *source_ctx,
		     struct virtio_mem mem, char *err, size_t errlen)
{
	memset(rng, 0, sizeof(*rng));
	snprintf(rng->name, sizeof(rng->name), "%s",
		 name ? name : "virtio-rng");
	if (virtio_dev__init(&rng->vdev, rng->name, &rng_ops, 0, 1,
			     VIRTIO_RNG_QUEUE_SIZE, mem)) {
		snprintf(err, errlen, "%s: bad queue parameters", rng->name);
		return -1;
	}
	rng->vdev.device_id = VIRTIO_ID_RNG;
	/* Nothing to configure, but a zero-length device capability makes
	 * Linux's virtio-pci refuse the device: 4 reserved bytes. */
	rng->vdev.config_len = 4;
	rng->source = source ? source : virtio_rng__getrandom;
	rng->source_ctx = source_ctx;
	return 0;
}

void virtio_rng__destroy(struct virtio_rng *rng)
{
	virtio_dev__destroy(&rng->vdev);
}

struct virtio_dev *virtio_rng__dev(struct virtio_rng *rng)
{
	return &rng->vdev;
}

int virtio_rng__save(struct virtio_rng *rng, struct state_writer *w,
		     char *err, size_t errlen)
{
	return virtio_dev__save(&rng->vdev, w, rng->name, err, errlen);
}

int virtio_rng__load(struct virtio_rng *rng, struct state_reader *r,
		     char *err, size_t errlen)
{
	return virtio_dev__load(&rng->vdev, r, rng->name, err, errlen);
}
