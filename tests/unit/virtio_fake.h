/* Test doubles shared by the virtio unit tests: a malloc'd "guest RAM"
 * (exactly its size, so ASan catches any access past it) with a
 * bounds-checking map, and the driver's side of a split virtqueue. */
#ifndef KRG_TESTS_VIRTIO_FAKE_H
#define KRG_TESTS_VIRTIO_FAKE_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/virtio.h"

struct fake_ram {
	uint8_t *base;
	uint64_t size;
	/* Accepts any range, returning base: for walker tests that never
	 * touch buffers (lengths beyond what RAM could hold). */
	int permissive;
};

static inline void *fake_ram_map(void *ctx, uint64_t gpa, uint64_t len)
{
	struct fake_ram *r = ctx;

	if (r->permissive)
		return r->base;
	if (gpa >= r->size || len > r->size - gpa)
		return NULL;
	return r->base + gpa;
}

static inline void fake_ram_init(struct fake_ram *r, uint64_t size)
{
	r->base = calloc(1, size);
	ck_assert_ptr_nonnull(r->base);
	r->size = size;
	r->permissive = 0;
}

static inline struct virtio_mem fake_ram_mem(struct fake_ram *r)
{
	return (struct virtio_mem){ fake_ram_map, r };
}

/* The driver's view of one queue. */
struct drv_q {
	struct fake_ram *ram;
	uint16_t size;
	uint64_t desc, avail, used;
	uint16_t next_desc;  /* next free descriptor slot (round robin) */
	uint16_t avail_idx;
	uint16_t used_seen;
};

static inline void drv_q_init(struct drv_q *q, struct fake_ram *ram,
			      uint16_t size, uint64_t base)
{
	memset(q, 0, sizeof(*q));
	q->ram = ram;
	q->size = size;
	q->desc = base;
	q->avail = base + 16ull * size;
	q->used = (q->avail + 6 + 2ull * size + 3) & ~3ull;
}

static inline uint8_t *drv_ptr(struct drv_q *q, uint64_t gpa)
{
	return q->ram->base + gpa;
}

static inline void drv_set_desc(struct drv_q *q, uint64_t table, uint16_t i,
				uint64_t addr, uint32_t len, uint16_t flags,
				uint16_t next)
{
	uint8_t *d = drv_ptr(q, table + 16ull * i);

	put_le64(d, addr);
	put_le32(d + 8, len);
	put_le16(d + 12, flags);
	put_le16(d + 14, next);
}

struct drv_buf {
	uint64_t gpa;
	uint32_t len;
	int write;
};

/* Chains bufs through the descriptor table; returns the head. */
static inline uint16_t drv_chain(struct drv_q *q, const struct drv_buf *b,
				 unsigned n)
{
	uint16_t head = q->next_desc, idx = head;
	unsigned i;

	for (i = 0; i < n; i++) {
		uint16_t next = (uint16_t)((idx + 1) % q->size);

		drv_set_desc(q, q->desc, idx, b[i].gpa, b[i].len,
			     (uint16_t)((b[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			     i + 1 < n ? next : 0);
		idx = next;
	}
	q->next_desc = idx;
	return head;
}

/* Puts the table at table_gpa and one INDIRECT descriptor to it. */
static inline uint16_t drv_chain_indirect(struct drv_q *q, uint64_t table_gpa,
					  const struct drv_buf *b, unsigned n)
{
	uint16_t head = q->next_desc;
	unsigned i;

	for (i = 0; i < n; i++)
		drv_set_desc(q, table_gpa, (uint16_t)i, b[i].gpa, b[i].len,
			     (uint16_t)((b[i].write ? VIRTQ_DESC_F_WRITE : 0) |
					(i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			     (uint16_t)(i + 1 < n ? i + 1 : 0));
	drv_set_desc(q, q->desc, head, table_gpa, 16 * n, VIRTQ_DESC_F_INDIRECT,
		     0);
	q->next_desc = (uint16_t)((head + 1) % q->size);
	return head;
}

static inline void drv_offer(struct drv_q *q, uint16_t head)
{
	put_le16(drv_ptr(q, q->avail + 4 + 2ull * (q->avail_idx % q->size)),
		 head);
	q->avail_idx++;
	__atomic_store_n((uint16_t *)drv_ptr(q, q->avail + 2), q->avail_idx,
			 __ATOMIC_RELEASE);
}

static inline uint16_t drv_used_idx(struct drv_q *q)
{
	return __atomic_load_n((uint16_t *)drv_ptr(q, q->used + 2),
			       __ATOMIC_ACQUIRE);
}

/* The i-th used element (free-running index). */
static inline void drv_used_elem(struct drv_q *q, uint16_t i, uint32_t *id,
				 uint32_t *len)
{
	uint8_t *e = drv_ptr(q, q->used + 4 + 8ull * (i % q->size));

	*id = get_le32(e);
	*len = get_le32(e + 4);
}

static inline void drv_set_used_event(struct drv_q *q, uint16_t v)
{
	put_le16(drv_ptr(q, q->avail + 4 + 2ull * q->size), v);
}

static inline uint16_t drv_avail_event(struct drv_q *q)
{
	return get_le16(drv_ptr(q, q->used + 4 + 8ull * q->size));
}

/* The driver's bring-up (virtio 1.x 3.1.1) of queue qi with rings q. */
static inline void drv_setup_queue(struct virtio_dev *vdev, unsigned qi,
				   struct drv_q *q)
{
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_SELECT, qi);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_SIZE, q->size);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DESC_LO, (uint32_t)q->desc);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DESC_HI,
				 (uint32_t)(q->desc >> 32));
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DRIVER_LO,
				 (uint32_t)q->avail);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DRIVER_HI,
				 (uint32_t)(q->avail >> 32));
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DEVICE_LO,
				 (uint32_t)q->used);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_DEVICE_HI,
				 (uint32_t)(q->used >> 32));
	virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_ENABLE, 1);
}

static inline void drv_set_features(struct virtio_dev *vdev, uint64_t f)
{
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS,
				 VIRTIO_STATUS_ACKNOWLEDGE);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS,
				 VIRTIO_STATUS_ACKNOWLEDGE |
					 VIRTIO_STATUS_DRIVER);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_GFSELECT, 0);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_GF, (uint32_t)f);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_GFSELECT, 1);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_GF, (uint32_t)(f >> 32));
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS,
				 VIRTIO_STATUS_ACKNOWLEDGE |
					 VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK);
}

static inline void drv_driver_ok(struct virtio_dev *vdev)
{
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS,
				 VIRTIO_STATUS_ACKNOWLEDGE |
					 VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_FEATURES_OK |
					 VIRTIO_STATUS_DRIVER_OK);
}

static inline uint8_t drv_status(struct virtio_dev *vdev)
{
	return (uint8_t)virtio_dev__common_read(vdev, VIRTIO_COMMON_STATUS);
}

#endif
