/* The device-facing half of the block layer: checks every request against
 * the drive (bounds, read-only, the probed-raw guard), turns the drive's
 * cache=/discard= policy into what the engine must do, and counts requests
 * in flight so drain and close can wait for them.  Opening (which engine,
 * which format) is in storage/block_open.c. */
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/block_priv.h"

void block__info(const struct block_dev *d, struct block_info *out)
{
	*out = d->info;
}

const char *block__nbd_socket(const struct block_dev *d)
{
	return d->qsd ? qsd__socket(d->qsd) : NULL;
}

bool block__write_cache(const struct block_dev *d)
{
	return atomic_load(&d->write_cache);
}

void block__set_write_cache(struct block_dev *d, bool on)
{
	atomic_store(&d->write_cache, on);
}

void block__describe(const struct block_dev *d, char *buf, size_t len)
{
	snprintf(buf, len, "%s", d->describe);
}

const char *block__warning(const struct block_dev *d)
{
	return d->warning[0] ? d->warning : NULL;
}

static void inflight_sub(struct block_dev *d)
{
	pthread_mutex_lock(&d->lock);
	if (--d->inflight == 0)
		pthread_cond_broadcast(&d->idle);
	pthread_mutex_unlock(&d->lock);
}

void block__complete(const struct bio *b, int result)
{
	struct block_dev *d = b->dev;
	struct block_req *req = b->req;

	req->done(req, result);
	inflight_sub(d);
}

void block__drain(struct block_dev *d)
{
	pthread_mutex_lock(&d->lock);
	while (d->inflight)
		pthread_cond_wait(&d->idle, &d->lock);
	pthread_mutex_unlock(&d->lock);
}

static int iov_total(const struct block_req *req, uint64_t *total)
{
	uint64_t sum = 0;

	if (req->iovcnt < 0 || req->iovcnt > BLOCK_MAX_IOV ||
	    (req->iovcnt && !req->iov))
		return -EINVAL;
	for (int i = 0; i < req->iovcnt; i++) {
		if (req->iov[i].iov_len && !req->iov[i].iov_base)
			return -EINVAL;
		if (req->iov[i].iov_len > UINT64_MAX - sum)
			return -EINVAL;
		sum += req->iov[i].iov_len;
	}
	*total = sum;
	return 0;
}

static bool in_range(const struct block_dev *d, uint64_t off, uint64_t len)
{
	return off <= d->info.size && len <= d->info.size - off;
}

/* QEMU's rule for images whose format was guessed: the first sector may
 * only be rewritten whole, and never into another format's header, or the
 * next probe would open the guest's data as, say, a qcow2 whose backing
 * file is a host file of the guest's choosing. */
static int probed_raw_guard(const struct block_req *req, uint64_t len)
{
	uint8_t head[BLOCK_PROBE_BYTES];
	size_t got = 0;

	if (req->offset >= BLOCK_PROBE_BYTES)
		return 0;
	if (req->offset != 0 || len < BLOCK_PROBE_BYTES)
		return -EINVAL;
	for (int i = 0; i < req->iovcnt && got < sizeof(head); i++) {
		size_t n = req->iov[i].iov_len;

		if (n > sizeof(head) - got)
			n = sizeof(head) - got;
		memcpy(head + got, req->iov[i].iov_base, n);
		got += n;
	}
	return block__probe(head, got) == PROBE_RAW ? 0 : -EPERM;
}

/* Fills b from req under the drive's policy; -errno refuses it. */
static int prepare(struct block_dev *d, struct block_req *req, struct bio *b)
{
	bool durable = !atomic_load(&d->write_cache) && !d->no_flush;
	uint64_t len = req->len;
	int r;

	switch (req->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		r = iov_total(req, &len);
		if (r)
			return r;
		if (req->op == BLOCK_OP_WRITE && d->info.read_only)
			return -EROFS;
		if (!in_range(d, req->offset, len))
			return -EINVAL;
		if (req->op == BLOCK_OP_WRITE && d->probed_raw) {
			r = probed_raw_guard(req, len);
			if (r)
				return r;
		}
		b->op = req->op == BLOCK_OP_READ ? BIO_READ : BIO_WRITE;
		b->fua = req->op == BLOCK_OP_WRITE && durable;
		break;
	case BLOCK_OP_FLUSH:
		b->op = d->no_flush || d->info.read_only ? BIO_NOP : BIO_FLUSH;
		len = 0;
		break;
	case BLOCK_OP_DISCARD:
	case BLOCK_OP_WRITE_ZEROES:
		if (d->info.read_only)
			return -EROFS;
		if (!in_range(d, req->offset, len))
			return -EINVAL;
		if (req->op == BLOCK_OP_DISCARD) {
			/* discard=ignore, as QEMU: accepted, no effect. */
			b->op = d->discard_unmap ? BIO_DISCARD : BIO_NOP;
		} else {
			b->op = BIO_ZERO;
			b->unmap = req->may_unmap && d->discard_unmap;
			b->fua = durable;
		}
		break;
	default:
		return -EINVAL;
	}
	if (len == 0 && b->op != BIO_FLUSH)
		b->op = BIO_NOP;
	b->off = req->offset;
	b->len = len;
	return 0;
}

int block__submit(struct block_dev *d, struct block_req *req)
{
	struct bio b = { .req = req, .dev = d };
	int r;

	if (!d || !req || !req->done)
		return -EINVAL;
	r = prepare(d, req, &b);
	if (r)
		return r;
	pthread_mutex_lock(&d->lock);
	d->inflight++;
	pthread_mutex_unlock(&d->lock);
	r = d->ops->submit(d->eng, &b);
	if (r)
		inflight_sub(d);
	return r;
}

void block__close(struct block_dev *d)
{
	if (!d)
		return;
	block__drain(d);
	if (d->ops)
		d->ops->close(d->eng);
	if (d->has_raw)
		raw__close(&d->raw);
	if (d->qsd)
		qsd__stop(d->qsd);
	pthread_cond_destroy(&d->idle);
	pthread_mutex_destroy(&d->lock);
	free(d);
}
