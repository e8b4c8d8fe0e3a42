/* virtio-blk requests: parse and check one chain, hand it to the backend
 * as block_req operations, complete it when the last one is done. */
#include "vmm/devices/virtio_blk.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"

/* One request in flight.  ops[] and iov[] live in the same allocation. */
struct blk_req {
	struct virtio_blk *blk;
	unsigned queue;
	uint16_t head;
	uint32_t used_len;
	uint8_t *status;
	int pending;       /* operations not done yet (+1 while submitting) */
	int failed;
	bool flush_after;  /* write-through: a flush before completing */
	int remote_op;     /* index of the flush for other nodes, or -1 */
	unsigned nr_ops;
	struct block_req *ops;
	struct iovec *iov;
	unsigned nr_iov;
	/* bounce_reads: the backend reads into bounce, finish() copies it
	 * into iov (guest RAM) through the coherent mapping. */
	uint8_t *bounce;
	struct iovec bounce_iov;
};

/* Copies len bytes at offset skip of the buffers out of guest memory.
 * Returns the bytes copied. */
static size_t iov_read(const struct iovec *iov, unsigned n, size_t skip,
		       void *dst, size_t len)
{
	uint8_t *d = dst;
	size_t done = 0, k;
	unsigned i;

	for (i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy(d + done, (uint8_t *)iov[i].iov_base + skip, k);
		done += k;
		skip = 0;
	}
	/* The copy is ours now: never re-read the guest's version. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	return done;
}

static void iov_write(const struct iovec *iov, unsigned n, const void *src,
		      size_t len)
{
	const uint8_t *s = src;
	size_t done = 0, k;
	unsigned i;

	for (i = 0; i < n && done < len; i++) {
		k = iov[i].iov_len < len - done ? iov[i].iov_len : len - done;
		memcpy(iov[i].iov_base, s + done, k);
		done += k;
	}
}

/* dst = the len bytes of src starting at skip.  Returns the count. */
static unsigned iov_slice(const struct iovec *src, unsigned n, size_t skip,
			  size_t len, struct iovec *dst)
{
	unsigned i, out = 0;
	size_t k;

	for (i = 0; i < n && len; i++) {
		if (skip >= src[i].iov_len) {
			skip -= src[i].iov_len;
			continue;
		}
		k = src[i].iov_len - skip;
		if (k > len)
			k = len;
		dst[out].iov_base = (uint8_t *)src[i].iov_base + skip;
		dst[out++].iov_len = k;
		len -= k;
		skip = 0;
	}
	return out;
}

/* The last device-writable byte: where the status goes. */
static uint8_t *status_byte(const struct virtq_chain *c)
{
	const struct iovec *w = c->iov + c->nr_read;
	unsigned i = c->nr_write;

	while (i--)
		if (w[i].iov_len)
			return (uint8_t *)w[i].iov_base + w[i].iov_len - 1;
	return NULL;
}

static void answer(struct virtio_blk *blk, unsigned queue, uint16_t head,
		   uint32_t used_len, uint8_t *status, uint8_t value)
{
	if (value != VIRTIO_BLK_S_OK)
		__atomic_fetch_add(&blk->failed, 1, __ATOMIC_RELAXED);
	/* Ordered before the guest can see it by the used->idx release. */
	__atomic_store_n(status, value, __ATOMIC_RELAXED);
	virtio_dev__push(&blk->vdev, queue, head, used_len);
}

static void finish(struct blk_req *r)
{
	bool failed = __atomic_load_n(&r->failed, __ATOMIC_ACQUIRE);

	if (r->bounce && !failed)
		iov_write(r->iov, r->nr_iov, r->bounce, r->bounce_iov.iov_len);
	free(r->bounce);
	answer(r->blk, r->queue, r->head, r->used_len, r->status,
	       failed ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK);
	free(r);
}

static void submit_ops(struct blk_req *r);

/* The last operation of r is done (on a backend thread, or the
 * submitter's). */
static void ops_done(struct blk_req *r)
{
	if (r->flush_after && !__atomic_load_n(&r->failed, __ATOMIC_ACQUIRE)) {
		r->flush_after = false;
		r->ops[0] = (struct block_req){ .op = BLOCK_OP_FLUSH,
						.done = r->ops[0].done,
						.opaque = r };
		r->nr_ops = 1;
		r->remote_op = -1;
		submit_ops(r);
		return;
	}
	finish(r);
}

static void op_done(struct block_req *op, int result)
{
	struct blk_req *r = op->opaque;

	if (result)
		__atomic_store_n(&r->failed, 1, __ATOMIC_RELEASE);
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0)
		ops_done(r);
}

static int submit_one(struct blk_req *r, unsigned i)
{
	const struct virtio_blk_backend *be = &r->blk->be;
	const struct virtio_blk_hooks *h = &r->blk->hooks;

	if ((int)i == r->remote_op)
		return h->flush_remote(h->ctx, &r->ops[i]);
	return be->submit(be->dev, &r->ops[i]);
}

static void submit_ops(struct blk_req *r)
{
	unsigned i, n = r->nr_ops;

	/* The extra count keeps r alive until every operation went out,
	 * however fast the backend completes them. */
	__atomic_store_n(&r->pending, (int)n + 1, __ATOMIC_RELEASE);
	for (i = 0; i < n; i++) {
		if (__atomic_load_n(&r->failed, __ATOMIC_ACQUIRE) ||
		    submit_one(r, i)) {
			/* Refused: this one and the rest never run. */
			__atomic_store_n(&r->failed, 1, __ATOMIC_RELEASE);
			__atomic_sub_fetch(&r->pending, (int)(n - i),
					   __ATOMIC_ACQ_REL);
			break;
		}
	}
	if (__atomic_sub_fetch(&r->pending, 1, __ATOMIC_ACQ_REL) == 0)
		ops_done(r);
}

/* What parsing decided: an immediate status, or operations. */
struct plan {
	uint8_t status;
	unsigned nr_ops;
	struct block_req ops[VIRTIO_BLK_DWZ_SEG_LIMIT];
	unsigned nr_iov;
	struct iovec iov[VIRTIO_BLK_SEG_MAX_LIMIT + 2];
	bool flush_after;
	bool remote_flush;  /* one more FLUSH, for the other nodes */
	bool bounce;        /* a read through a bounce buffer */
};

/* [sector, sector + bytes/512) within the disk, whole logical blocks. */
static bool range_ok(const struct virtio_blk *blk, uint64_t sector,
		     uint64_t bytes)
{
	uint64_t lbs_sectors = blk->lbs / VIRTIO_BLK_SECTOR;

	if (bytes % blk->lbs || sector % lbs_sectors)
		return false;
	return sector <= blk->capacity &&
	       bytes / VIRTIO_BLK_SECTOR <= blk->capacity - sector;
}

static void plan_rw(const struct virtio_blk *blk, const struct virtq_chain *c,
		    bool write, uint64_t sector, struct plan *p)
{
	uint64_t len;

	if (write && blk->read_only) {
		p->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	len = write ? c->read_len - VIRTIO_BLK_HDR_SIZE : c->write_len - 1;
	if (len % VIRTIO_BLK_SECTOR || !range_ok(blk, sector, len)) {
		p->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	if (!len)
		return; /* nothing to move: OK */
	if (write)
		p->nr_iov = iov_slice(c->iov, c->nr_read, VIRTIO_BLK_HDR_SIZE,
				      len, p->iov);
	else
		p->nr_iov = iov_slice(c->iov + c->nr_read, c->nr_write, 0, len,
				      p->iov);
	p->ops[0] = (struct block_req){
		.op = write ? BLOCK_OP_WRITE : BLOCK_OP_READ,
		.offset = sector * VIRTIO_BLK_SECTOR,
		.len = len,
		.iovcnt = (int)p->nr_iov,
	};
	p->nr_ops = 1;
	p->flush_after = write;
	p->bounce = !write && blk->bounce_reads;
}

static void plan_dwz(struct virtio_blk *blk, const struct virtq_chain *c,
		     bool discard, struct plan *p)
{
	uint8_t segs[VIRTIO_BLK_DWZ_SEG_LIMIT * VIRTIO_BLK_SEG_SIZE];
	uint32_t max_seg = discard ? blk->max_discard_seg : blk->max_wz_seg;
	uint32_t max_sectors = discard ? blk->max_discard_sectors
				       : blk->max_wz_sectors;
	uint32_t bad_flags = discard ? ~0u : ~(uint32_t)VIRTIO_BLK_WZ_F_UNMAP;
	uint64_t len = c->read_len - VIRTIO_BLK_HDR_SIZE, sector;
	unsigned i, n = (unsigned)(len / VIRTIO_BLK_SEG_SIZE);
	uint32_t num, flags;

	if (blk->read_only) {
		p->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	if (!virtio_dev__has_feature(&blk->vdev, discard ?
				     VIRTIO_BLK_F_DISCARD :
				     VIRTIO_BLK_F_WRITE_ZEROES)) {
		p->status = VIRTIO_BLK_S_UNSUPP;
		return;
	}
	if (!n || len % VIRTIO_BLK_SEG_SIZE || n > max_seg) {
		p->status = VIRTIO_BLK_S_IOERR;
		return;
	}
	iov_read(c->iov, c->nr_read, VIRTIO_BLK_HDR_SIZE, segs,
		 n * VIRTIO_BLK_SEG_SIZE);
	/* Unknown flags make the whole request unsupported, whatever else
	 * is wrong with it (5.2.6.2). */
	for (i = 0; i < n; i++) {
		if (get_le32(segs + i * VIRTIO_BLK_SEG_SIZE + 12) & bad_flags) {
			p->status = VIRTIO_BLK_S_UNSUPP;
			return;
		}
	}
	for (i = 0; i < n; i++) {
		sector = get_le64(segs + i * VIRTIO_BLK_SEG_SIZE);
		num = get_le32(segs + i * VIRTIO_BLK_SEG_SIZE + 8);
		flags = get_le32(segs + i * VIRTIO_BLK_SEG_SIZE + 12);
		if (num > max_sectors ||
		    !range_ok(blk, sector, (uint64_t)num * VIRTIO_BLK_SECTOR)) {
			p->status = VIRTIO_BLK_S_IOERR;
			p->nr_ops = 0;
			return;
		}
		if (!num)
			continue;
		p->ops[p->nr_ops++] = (struct block_req){
			.op = discard ? BLOCK_OP_DISCARD
				      : BLOCK_OP_WRITE_ZEROES,
			.offset = sector * VIRTIO_BLK_SECTOR,
			.len = (uint64_t)num * VIRTIO_BLK_SECTOR,
			.may_unmap = !discard &&
				     (flags & VIRTIO_BLK_WZ_F_UNMAP) &&
				     blk->info.can_discard,
		};
	}
	p->flush_after = true;
}

static void plan_get_id(struct virtio_blk *blk, const struct virtq_chain *c)
{
	char id[VIRTIO_BLK_ID_BYTES];
	size_t n = c->write_len - 1;

	/* NUL-padded; no terminator when it fills all 20 bytes. */
	memset(id, 0, sizeof(id));
	memcpy(id, blk->info.serial, strnlen(blk->info.serial, sizeof(id)));
	iov_write(c->iov + c->nr_read, c->nr_write, id,
		  n < sizeof(id) ? n : sizeof(id));
}

void virtio_blk__handle_chain(struct virtio_blk *blk, unsigned queue,
			      const struct virtq_chain *c)
{
	uint8_t hdr[VIRTIO_BLK_HDR_SIZE], *status = status_byte(c);
	struct plan p;
	struct blk_req *r;
	uint32_t used_len = (uint32_t)c->write_len;
	uint64_t sector;
	unsigned i;

	if (c->read_len < VIRTIO_BLK_HDR_SIZE || !status) {
		/* Nowhere to put a status: nothing sensible to answer. The
		 * chain still goes back so a reset can drain it. */
		virtio_dev__fail(&blk->vdev, queue, "request without a header "
				 "or a status byte");
		virtio_dev__push(&blk->vdev, queue, c->head, 0);
		return;
	}
	iov_read(c->iov, c->nr_read, 0, hdr, sizeof(hdr));
	sector = get_le64(hdr + 8);
	p.status = VIRTIO_BLK_S_OK;
	p.nr_ops = 0;
	p.nr_iov = 0;
	p.flush_after = false;
	p.remote_flush = false;
	p.bounce = false;
	switch (get_le32(hdr)) {
	case VIRTIO_BLK_T_IN:
		plan_rw(blk, c, false, sector, &p);
		break;
	case VIRTIO_BLK_T_OUT:
		__atomic_fetch_add(&blk->writes, 1, __ATOMIC_RELAXED);
		plan_rw(blk, c, true, sector, &p);
		break;
	case VIRTIO_BLK_T_FLUSH:
		__atomic_fetch_add(&blk->flushes, 1, __ATOMIC_RELAXED);
		p.ops[0] = (struct block_req){ .op = BLOCK_OP_FLUSH };
		p.nr_ops = 1;
		/* Writes other nodes completed count as "before" too. */
		if (blk->hooks.flush_fanout && blk->hooks.flush_remote &&
		    blk->hooks.flush_fanout(blk->hooks.ctx)) {
			p.ops[1] = (struct block_req){ .op = BLOCK_OP_FLUSH };
			p.nr_ops = 2;
			p.remote_flush = true;
		}
		break;
	case VIRTIO_BLK_T_GET_ID:
		plan_get_id(blk, c);
		break;
	case VIRTIO_BLK_T_DISCARD:
		plan_dwz(blk, c, true, &p);
		break;
	case VIRTIO_BLK_T_WRITE_ZEROES:
		plan_dwz(blk, c, false, &p);
		break;
	default:
		p.status = VIRTIO_BLK_S_UNSUPP;
		break;
	}
	if (!p.nr_ops) {
		answer(blk, queue, c->head, used_len, status, p.status);
		return;
	}
	r = calloc(1, sizeof(*r) + p.nr_ops * sizeof(struct block_req) +
			      p.nr_iov * sizeof(struct iovec));
	if (!r) {
		answer(blk, queue, c->head, used_len, status,
		       VIRTIO_BLK_S_IOERR);
		return;
	}
	r->blk = blk;
	r->queue = queue;
	r->head = c->head;
	r->used_len = used_len;
	r->status = status;
	r->nr_ops = p.nr_ops;
	r->ops = (struct block_req *)(r + 1);
	r->iov = (struct iovec *)(r->ops + p.nr_ops);
	r->nr_iov = p.nr_iov;
	r->remote_op = p.remote_flush ? (int)p.nr_ops - 1 : -1;
	if (p.bounce) {
		size_t n = (p.ops[0].len + 4095) & ~(size_t)4095;

		/* Aligned for O_DIRECT, whatever the guest's buffers are. */
		r->bounce = aligned_alloc(4096, n);
		if (!r->bounce) {
			free(r);
			answer(blk, queue, c->head, used_len, status,
			       VIRTIO_BLK_S_IOERR);
			return;
		}
		r->bounce_iov = (struct iovec){ r->bounce, p.ops[0].len };
	}
	/* Without a negotiated flush the driver takes a completed write as
	 * stable: make it so. */
	r->flush_after = p.flush_after &&
			 !virtio_dev__has_feature(&blk->vdev,
						  VIRTIO_BLK_F_FLUSH);
	memcpy(r->iov, p.iov, p.nr_iov * sizeof(struct iovec));
	for (i = 0; i < p.nr_ops; i++) {
		r->ops[i] = p.ops[i];
		r->ops[i].done = op_done;
		r->ops[i].opaque = r;
		if (r->ops[i].iovcnt)
			r->ops[i].iov = r->iov;
	}
	if (r->bounce) {
		r->ops[0].iov = &r->bounce_iov;
		r->ops[0].iovcnt = 1;
	}
	submit_ops(r);
}
