/* libFuzzer target: arbitrary bytes as guest RAM, queue configuration and
 * ring contents, driven through the virtio core (feature negotiation,
 * queue setup, the chain walker) into the virtio-blk request parser with
 * an in-memory backend.  The backend aborts on any request past the disk
 * or with data that does not add up; ASan/UBSan catch the rest (the fake
 * RAM is a heap block of exactly its size).
 *
 * Input layout (tests/fuzz/gen_virtq_corpus.py writes valid ones):
 *   [0]      queue size: bit 7 clear: 1 << (v % 11); set: v & 0x7F as is
 *   [1]      bit 0 INDIRECT_DESC, 1 EVENT_IDX, 2 BLK_F_FLUSH, 3 DISCARD,
 *            4 WRITE_ZEROES, 5 read-only disk, 6 4 KiB blocks,
 *            7 deferred completion (newest first)
 *   [2..7]   le16 offsets of the descriptor table, driver and device areas
 *   [8..]    guest RAM from offset 0 (the rest is zero) */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/virtio_blk.h"

#define RAM_SIZE 0x10000u
#define DISK_SIZE (64u * 512)
#define HDR 8

struct ctx {
	uint8_t *ram;
	uint8_t disk[DISK_SIZE];
	bool deferred, ro, lbs4k;
	struct block_req *pending[VIRTQ_MAX_SIZE * 2];
	unsigned npending;
};

static void *map(void *opaque, uint64_t gpa, uint64_t len)
{
	struct ctx *c = opaque;

	if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
		return NULL;
	return c->ram + gpa;
}

static void run_op(struct ctx *c, struct block_req *r)
{
	uint64_t done = 0;
	int i;

	if (r->offset > DISK_SIZE || r->len > DISK_SIZE - r->offset)
		abort();
	if (c->ro && r->op != BLOCK_OP_READ && r->op != BLOCK_OP_FLUSH)
		abort();
	switch (r->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		for (i = 0; i < r->iovcnt; i++) {
			if (r->op == BLOCK_OP_READ)
				memcpy(r->iov[i].iov_base, c->disk + r->offset + done,
				       r->iov[i].iov_len);
			else
				memcpy(c->disk + r->offset + done, r->iov[i].iov_base,
				       r->iov[i].iov_len);
			done += r->iov[i].iov_len;
		}
		if (done != r->len || !r->len || r->len % 512)
			abort();
		break;
	case BLOCK_OP_DISCARD:
	case BLOCK_OP_WRITE_ZEROES:
		memset(c->disk + r->offset, 0, r->len);
		break;
	case BLOCK_OP_FLUSH:
		break;
	}
}

static int submit(void *dev, struct block_req *r)
{
	struct ctx *c = dev;

	if (c->deferred) {
		if (c->npending >= sizeof(c->pending) / sizeof(c->pending[0]))
			return -11; /* refused: -EAGAIN */
		c->pending[c->npending++] = r;
		return 0;
	}
	run_op(c, r);
	r->done(r, 0);
	return 0;
}

static void info(void *dev, struct block_info *bi)
{
	struct ctx *c = dev;

	memset(bi, 0, sizeof(*bi));
	bi->size = DISK_SIZE;
	bi->logical_block_size = c->lbs4k ? 4096 : 512;
	bi->read_only = c->ro;
	bi->can_discard = bi->can_write_zeroes = true;
	strcpy(bi->serial, "FUZZ");
}

/* Newest first, until nothing is left (a write-through flush follows
 * its write). */
static void complete_all(struct ctx *c)
{
	while (c->npending) {
		struct block_req *r = c->pending[--c->npending];

		run_op(c, r);
		r->done(r, c->npending % 3 ? 0 : -5);
	}
}

static void reg(struct virtio_dev *v, enum virtio_common_reg r, uint32_t val)
{
	virtio_dev__common_write(v, r, val);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static struct ctx c;
	struct virtio_blk_opts o = { .name = "fuzz-blk", .queue_size = 1024,
				     .max_discard_seg = 4,
				     .max_write_zeroes_seg = 4 };
	struct virtio_blk_backend be = { submit, info, &c };
	struct virtio_blk blk;
	struct virtio_dev *v;
	uint64_t f;
	uint16_t qs;
	char err[128];

	if (size < HDR)
		return 0;
	c.ram = calloc(1, RAM_SIZE);
	if (!c.ram)
		abort();
	memcpy(c.ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);
	c.deferred = data[1] & 0x80;
	c.ro = data[1] & 0x20;
	c.lbs4k = data[1] & 0x40;
	c.npending = 0;
	memset(c.disk, 0, sizeof(c.disk));
	if (virtio_blk__init(&blk, &o, &be, (struct virtio_mem){ map, &c }, err,
			     sizeof(err)))
		abort();
	v = virtio_blk__dev(&blk);

	f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_SEG_MAX |
	    1ull << VIRTIO_BLK_F_BLK_SIZE;
	f |= (data[1] & 1 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0) |
	     (data[1] & 2 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
	     (data[1] & 4 ? 1ull << VIRTIO_BLK_F_FLUSH : 0) |
	     (data[1] & 8 ? 1ull << VIRTIO_BLK_F_DISCARD : 0) |
	     (data[1] & 16 ? 1ull << VIRTIO_BLK_F_WRITE_ZEROES : 0);
	f &= v->s.device_features;
	reg(v, VIRTIO_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE |
					     VIRTIO_STATUS_DRIVER);
	reg(v, VIRTIO_COMMON_GFSELECT, 0);
	reg(v, VIRTIO_COMMON_GF, (uint32_t)f);
	reg(v, VIRTIO_COMMON_GFSELECT, 1);
	reg(v, VIRTIO_COMMON_GF, (uint32_t)(f >> 32));
	reg(v, VIRTIO_COMMON_STATUS, 0x0B);
	qs = data[0] & 0x80 ? data[0] & 0x7F : (uint16_t)(1u << (data[0] % 11));
	reg(v, VIRTIO_COMMON_Q_SELECT, 0);
	reg(v, VIRTIO_COMMON_Q_SIZE, qs);
	reg(v, VIRTIO_COMMON_Q_DESC_LO, get_le16(data + 2));
	reg(v, VIRTIO_COMMON_Q_DRIVER_LO, get_le16(data + 4));
	reg(v, VIRTIO_COMMON_Q_DEVICE_LO, get_le16(data + 6));
	reg(v, VIRTIO_COMMON_Q_ENABLE, 1);
	reg(v, VIRTIO_COMMON_STATUS, 0x0F);

	virtio_dev__notify(v, 0);
	complete_all(&c);
	/* The guest's rings may have been rewritten by completions (data
	 * read into them): serve again. */
	virtio_dev__notify(v, 0);
	complete_all(&c);
	virtio_dev__pause(v);
	virtio_dev__resume(v);
	complete_all(&c);
	reg(v, VIRTIO_COMMON_STATUS, 0);
	if (virtio_dev__common_read(v, VIRTIO_COMMON_STATUS) != 0)
		abort();
	virtio_blk__destroy(&blk);
	free(c.ram);
	return 0;
}
