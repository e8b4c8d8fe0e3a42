/* Split virtqueues (virtio 1.x, 2.7): the device side of the descriptor
 * table, the available and used rings, indirect tables and event-index
 * notification suppression.  Transport-independent: a queue sees guest
 * memory only through a struct virtio_mem, which refuses anything not
 * wholly inside guest RAM.
 *
 * Everything in the rings is guest-controlled.  A queue checks every index,
 * flag and address; the first violation marks the queue broken (it then
 * hands out nothing until reset) and is reported to the caller with one
 * line of text, so the device can set DEVICE_NEEDS_RESET.
 *
 * Locking: each queue has its own lock, so queues can be served and
 * completed on different threads.  virtq__pop() and virtq__push() take it;
 * callers never hold it.  Guest-shared ring fields are accessed with
 * acquire/release atomics (the guest is another CPU). */
#ifndef KRG_VMM_DEVICES_VIRTIO_QUEUE_H
#define KRG_VMM_DEVICES_VIRTIO_QUEUE_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "vmm/guest_mem.h"

#if !defined(__BYTE_ORDER__) || __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "virtio rings are little-endian: add byte swaps for this host"
#endif

#define VIRTQ_MAX_SIZE 1024

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VIRTQ_DESC_SIZE 16
#define VIRTIO_NO_VECTOR 0xFFFF /* no MSI-X vector assigned */
#define VIRTQ_ERR_MAX 128

/* Guest memory as a queue sees it: map() returns the host address of
 * [gpa, gpa+len) or NULL unless that range lies wholly inside guest RAM. */
struct virtio_mem {
	void *(*map)(void *ctx, uint64_t gpa, uint64_t len);
	void *ctx;
};

/* The accessor the machine uses: guest_mem__ptr() on its guest RAM. */
struct virtio_mem virtio_mem__guest(const struct guest_mem *gm);

/* Per-queue state the driver configured plus the device's ring positions:
 * everything a checkpoint or a migration needs (in-flight requests are
 * drained before saving, so there are none to record). */
struct virtq_state {
	uint64_t desc;            /* descriptor table (guest-physical) */
	uint64_t avail;           /* driver area */
	uint64_t used;            /* device area */
	uint16_t size;            /* as the driver wrote it */
	uint16_t msix_vector;     /* the transport's; VIRTIO_NO_VECTOR */
	uint16_t last_avail;      /* next available entry to consume */
	uint16_t used_idx;        /* the device's copy of used->idx */
	uint16_t signalled_used;  /* used->idx at the last notification */
	uint8_t enabled;          /* queue_enable was written 1 */
	uint8_t broken;           /* a guest error stopped this queue */
	uint8_t event_idx;        /* VIRTIO_F_EVENT_IDX negotiated */
	uint8_t indirect;         /* VIRTIO_F_INDIRECT_DESC negotiated */
	uint8_t signalled_valid;  /* signalled_used means something */
	uint8_t irq_pending;      /* a notification held back by a pause */
};
_Static_assert(sizeof(struct virtq_state) == 40,
	       "virtq_state is a saved format: bump VIRTIO_STATE_VERSION");

struct virtq {
	struct virtq_state s;
	pthread_mutex_t lock;
	pthread_cond_t idle;      /* signalled when inflight drops to 0 */
	struct virtio_mem mem;
	unsigned index;
	/* Host addresses of the rings, set while the queue is live. */
	uint8_t *desc;
	uint8_t *avail;
	uint8_t *used;
	bool live;                /* mapped and the driver said DRIVER_OK */
	bool paused;              /* hand out nothing, hold notifications */
	unsigned inflight;
	uint64_t inflight_map[VIRTQ_MAX_SIZE / 64];
};

/* One descriptor chain: iov[0, nr_read) are device-readable buffers,
 * iov[nr_read, nr_read + nr_write) device-writable ones, in chain order.
 * Zero-length descriptors are checked but produce no iovec. */
struct virtq_chain {
	uint16_t head;
	unsigned nr_read, nr_write;
	uint64_t read_len, write_len; /* totals, together below 2^32 */
	unsigned max;                 /* capacity of iov, set by the caller */
	struct iovec *iov;
};

void virtq__init(struct virtq *vq, unsigned index, struct virtio_mem mem);
void virtq__destroy(struct virtq *vq);

/* Device reset: drops everything the driver configured.  The caller has
 * drained the queue (virtq__drain) first. */
void virtq__reset(struct virtq *vq);

/* Maps the rings and lets the queue hand out buffers.  Returns 0, or -1
 * with a reason in err when the configuration is unusable (size not a
 * power of two up to max_size, misaligned or non-RAM rings): the queue is
 * then broken. */
int virtq__start(struct virtq *vq, uint16_t max_size, char *err,
		 size_t errlen);

/* Walks the chain starting at head of the descriptor table at desc
 * (queue size entries), appending host iovecs to c (c->max, c->iov set by
 * the caller).  Pure: touches nothing but the table and c.  Returns 0, or
 * -1 with the guest's error in err. */
int virtq__walk_chain(const uint8_t *desc, uint16_t size, bool indirect,
		      struct virtio_mem mem, uint16_t head,
		      struct virtq_chain *c, char *err, size_t errlen);

/* The next available chain.  Returns 1 with *c filled, 0 if there is none
 * (or the queue is not live, paused or broken), -1 if the guest broke the
 * queue (reason in err; the queue is marked broken). */
int virtq__pop(struct virtq *vq, struct virtq_chain *c, char *err,
	       size_t errlen);

/* Returns head with len bytes written to the used ring and tells whether
 * the driver wants a used-buffer notification now (after the used index is
 * published).  While paused the notification is held in irq_pending. */
bool virtq__push(struct virtq *vq, uint16_t head, uint32_t len);

/* Pause: hand out nothing more, then wait until every popped chain was
 * pushed.  Resume returns whether a held notification is due. */
void virtq__pause(struct virtq *vq);
bool virtq__resume(struct virtq *vq);
/* Waits until nothing is in flight. */
void virtq__drain(struct virtq *vq);

/* True when used_event asks for a notification on the way from old to
 * new (virtio 1.x 2.7.10, the "need event" test). */
static inline bool virtq__need_event(uint16_t event, uint16_t new_idx,
				     uint16_t old_idx)
{
	return (uint16_t)(new_idx - event - 1) < (uint16_t)(new_idx - old_idx);
}

#endif
