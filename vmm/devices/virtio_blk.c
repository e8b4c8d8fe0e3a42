/* virtio-blk: geometry and features from the backend, the config space,
 * the per-queue service loop, save/load. */
#include "vmm/devices/virtio_blk.h"

#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"

static struct virtio_blk *blk_of(struct virtio_dev *vdev)
{
	return (struct virtio_blk *)vdev;
}

void virtio_blk__serve_queue(struct virtio_blk *blk, unsigned queue)
{
	struct iovec iov[VIRTIO_BLK_SEG_MAX_LIMIT + 2];
	struct virtq_chain c = { .iov = iov, .max = blk->seg_max + 2 };

	/* Bounded: a queue has at most its size in flight, and pop breaks
	 * the queue on a head made available twice. */
	while (virtio_dev__pop(&blk->vdev, queue, &c) > 0) {
		__atomic_fetch_add(&blk->served, 1, __ATOMIC_RELAXED);
		virtio_blk__handle_chain(blk, queue, &c);
	}
}

static void blk_queue_notify(struct virtio_dev *vdev, unsigned queue)
{
	struct virtio_blk *blk = blk_of(vdev);

	if (blk->hooks.kick)
		blk->hooks.kick(blk->hooks.ctx, queue);
	else
		virtio_blk__serve_queue(blk, queue);
}

static void blk_reset(struct virtio_dev *vdev)
{
	struct virtio_blk *blk = blk_of(vdev);

	if (blk->hooks.reset)
		blk->hooks.reset(blk->hooks.ctx);
}

static void blk_common_written(struct virtio_dev *vdev,
			       enum virtio_common_reg reg)
{
	struct virtio_blk *blk = blk_of(vdev);

	if (blk->hooks.common_written)
		blk->hooks.common_written(blk->hooks.ctx, reg);
}

void virtio_blk__set_hooks(struct virtio_blk *blk,
			   const struct virtio_blk_hooks *h)
{
	blk->hooks = *h;
}

static void blk_config_read(struct virtio_dev *vdev, uint32_t offset,
			    uint8_t *data, uint32_t len)
{
	struct virtio_blk *blk = blk_of(vdev);

	if (offset >= VIRTIO_BLK_CONFIG_SIZE)
		return;
	if (len > VIRTIO_BLK_CONFIG_SIZE - offset)
		len = VIRTIO_BLK_CONFIG_SIZE - offset;
	memcpy(data, blk->config + offset, len);
}

static const struct virtio_dev_ops blk_ops = {
	.queue_notify = blk_queue_notify,
	.config_read = blk_config_read,
	.reset = blk_reset,
	.common_written = blk_common_written,
	/* No CONFIG_WCE: nothing in the config space is writable. */
};

static uint32_t pick(uint32_t v, uint32_t def)
{
	return v ? v : def;
}

static void build_config(struct virtio_blk *blk)
{
	uint8_t *c = blk->config;

	memset(c, 0, sizeof(blk->config));
	put_le64(c + 0, blk->capacity);
	put_le32(c + 8, blk->size_max);
	put_le32(c + 12, blk->seg_max);
	put_le32(c + 20, blk->lbs);
	put_le16(c + 34, blk->vdev.s.num_queues);
	if (blk->discard) {
		put_le32(c + 36, blk->max_discard_sectors);
		put_le32(c + 40, blk->max_discard_seg);
		put_le32(c + 44, blk->lbs / VIRTIO_BLK_SECTOR);
	}
	if (blk->write_zeroes) {
		put_le32(c + 48, blk->max_wz_sectors);
		put_le32(c + 52, blk->max_wz_seg);
		c[56] = blk->info.can_discard;
	}
}

static int check_opts(const struct virtio_blk_opts *o, char *err,
		      size_t errlen)
{
	uint16_t qs = o->queue_size;

	if (o->num_queues > VIRTIO_BLK_MAX_QUEUES) {
		snprintf(err, errlen, "virtio-blk: at most %d queues",
			 VIRTIO_BLK_MAX_QUEUES);
		return -1;
	}
	if (qs && (qs < 4 || qs > VIRTQ_MAX_SIZE || (qs & (qs - 1)))) {
		snprintf(err, errlen, "virtio-blk: queue size %u is not a "
			 "power of two from 4 to %d", qs, VIRTQ_MAX_SIZE);
		return -1;
	}
	if (o->max_discard_seg > VIRTIO_BLK_DWZ_SEG_LIMIT ||
	    o->max_write_zeroes_seg > VIRTIO_BLK_DWZ_SEG_LIMIT ||
	    o->seg_max > VIRTIO_BLK_SEG_MAX_LIMIT) {
		snprintf(err, errlen, "virtio-blk: segment limits too large");
		return -1;
	}
	return 0;
}

int virtio_blk__init(struct virtio_blk *blk, const struct virtio_blk_opts *o,
		     const struct virtio_blk_backend *be, struct virtio_mem mem,
		     char *err, size_t errlen)
{
	unsigned nq = o->num_queues ? o->num_queues : 1;
	uint16_t qs = o->queue_size ? o->queue_size : 256;
	uint64_t features;
	struct block_info info;
	uint32_t lbs;

	if (check_opts(o, err, errlen))
		return -1;
	memset(&info, 0, sizeof(info));
	be->info(be->dev, &info);
	lbs = info.logical_block_size;
	if (lbs < VIRTIO_BLK_SECTOR || lbs > 65536 || (lbs & (lbs - 1))) {
		snprintf(err, errlen, "virtio-blk: unusable logical block size "
			 "%u", lbs);
		return -1;
	}
	features = 1ull << VIRTIO_BLK_F_SEG_MAX |
		   1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_FLUSH;
	if (nq > 1)
		features |= 1ull << VIRTIO_BLK_F_MQ;
	if (o->size_max)
		features |= 1ull << VIRTIO_BLK_F_SIZE_MAX;
	if (o->read_only || info.read_only)
		features |= 1ull << VIRTIO_BLK_F_RO;
	else {
		if (info.can_discard)
			features |= 1ull << VIRTIO_BLK_F_DISCARD;
		if (info.can_write_zeroes)
			features |= 1ull << VIRTIO_BLK_F_WRITE_ZEROES;
	}
	memset(blk, 0, sizeof(*blk));
	snprintf(blk->name, sizeof(blk->name), "%s",
		 o->name ? o->name : "virtio-blk");
	if (virtio_dev__init(&blk->vdev, blk->name, &blk_ops, features, nq, qs,
			     mem)) {
		snprintf(err, errlen, "%s: bad queue parameters", blk->name);
		return -1;
	}
	blk->vdev.device_id = VIRTIO_ID_BLOCK;
	blk->vdev.config_len = VIRTIO_BLK_CONFIG_SIZE;
	blk->be = *be;
	blk->info = info;
	blk->info.serial[sizeof(blk->info.serial) - 1] = '\0';
	blk->lbs = lbs;
	blk->capacity = info.size / VIRTIO_BLK_SECTOR;
	blk->seg_max = pick(o->seg_max, qs - 2 < VIRTIO_BLK_SEG_MAX_LIMIT ?
					 qs - 2u : VIRTIO_BLK_SEG_MAX_LIMIT);
	blk->size_max = o->size_max;
	blk->read_only = features >> VIRTIO_BLK_F_RO & 1;
	blk->discard = features >> VIRTIO_BLK_F_DISCARD & 1;
	blk->write_zeroes = features >> VIRTIO_BLK_F_WRITE_ZEROES & 1;
	blk->max_discard_sectors = pick(o->max_discard_sectors, 1u << 22);
	blk->max_discard_seg = pick(o->max_discard_seg, 32);
	blk->max_wz_sectors = pick(o->max_write_zeroes_sectors, 1u << 22);
	blk->max_wz_seg = pick(o->max_write_zeroes_seg, 32);
	build_config(blk);
	return 0;
}

void virtio_blk__destroy(struct virtio_blk *blk)
{
	virtio_dev__destroy(&blk->vdev);
}

struct virtio_dev *virtio_blk__dev(struct virtio_blk *blk)
{
	return &blk->vdev;
}

int virtio_blk__save(struct virtio_blk *blk, struct state_writer *w,
		     char *err, size_t errlen)
{
	return virtio_dev__save(&blk->vdev, w, blk->name, err, errlen);
}

int virtio_blk__load(struct virtio_blk *blk, struct state_reader *r,
		     char *err, size_t errlen)
{
	return virtio_dev__load(&blk->vdev, r, blk->name, err, errlen);
}
