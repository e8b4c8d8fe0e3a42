/* A minimal virtio-blk driver for test=blk on the virtio-pci core (vpci.h):
 * BARs placed by the guest itself at VBLK_BAR_BASE (there is no firmware),
 * split virtqueues in fixed guest RAM, MSI-X to VEC_BLK (or INTx).  As Linux's
 * blk-mq does, a CPU submits on its own queue (vblk_queue_of) and that
 * queue's vector is aimed at it, so several CPUs can drive the device at
 * once without sharing a queue.  Everything runs in user mode. */
#ifndef KRG_GUEST_VBLK_H
#define KRG_GUEST_VBLK_H

#include <stdbool.h>
#include <stdint.h>

#include "vpci.h"

#define VBLK_BAR_BASE	0xfe000000ull	/* 2 MiB mapped uncached (boot.S) */
#define VBLK_MEM	0x2000000ull	/* rings and request headers */
#define VBLK_DATA	0x2100000ull	/* one write buffer per request slot */
#define VBLK_RDATA	0x2300000ull	/* one read buffer per request slot:
					 * untouched until the device fills
					 * it (in a cluster VM, pages the
					 * serving node does not own yet) */
#define VBLK_MAXQ	4
#define VBLK_QD		8		/* requests in flight per queue */
#define VBLK_QSIZE	64
#define VBLK_BUF	65536		/* bytes per request slot */
#define VBLK_SECTOR	512

#define VIRTIO_BLK_T_IN		0
#define VIRTIO_BLK_T_OUT	1
#define VIRTIO_BLK_T_FLUSH	4
#define VIRTIO_BLK_T_GET_ID	8
#define VIRTIO_BLK_S_OK		0
#define VIRTIO_BLK_S_IOERR	1

#define VIRTIO_ID_BLOCK		2
#define VIRTIO_BLK_F_SEG_MAX	2
#define VIRTIO_BLK_F_RO		5
#define VIRTIO_BLK_F_BLK_SIZE	6
#define VIRTIO_BLK_F_FLUSH	9
#define VIRTIO_BLK_F_MQ		12

struct vblk_job {
	uint32_t type;
	uint64_t sector;
	uint32_t nsect;		/* data bytes: nsect * 512; GET_ID: 20 */
};

struct vblk_slot {
	bool busy;
	struct vblk_job job;
};

struct vblk_q {
	struct vpci_q vq;
	unsigned inflight;
	unsigned cpu;			/* whose queue: its vector goes there */
	bool kick;
	uint64_t submitted, completed;
	struct vblk_slot slot[VBLK_QD];
};

struct vblk {
	struct vpci pci;
	bool msix;
	unsigned nq;
	struct vblk_q q[VBLK_MAXQ];
	uint64_t capacity;		/* sectors */
};

/* Job source and sink for vblk_run: next() fills the next job (and, for
 * a write, its data in buf); false when there are no more.  done() sees
 * each completion with the status byte and the buffer. */
struct vblk_ops {
	bool (*next)(struct vblk_job *j, uint8_t *buf, void *ctx);
	void (*done)(const struct vblk_job *j, const uint8_t *buf,
		     uint8_t status, void *ctx);
	void *ctx;
};

/* Finds the first virtio-blk function, places its BARs, negotiates and
 * starts its queues; fails the test (with a reason) if anything is off.
 * cpu[c] != 0 marks CPU c as one that does I/O: the vector of its queue
 * is aimed at it (every other vector at queue index mod ncpus). */
void vblk_init(struct vblk *b, const bool *io_cpu);
/* The queue CPU cpu submits on. */
unsigned vblk_queue_of(const struct vblk *b, unsigned cpu);
/* Keeps up to VBLK_QD requests in flight on queue q until next() runs
 * dry and everything completed.  One CPU per queue at a time. */
void vblk_run(struct vblk *b, unsigned q, const struct vblk_ops *ops);
/* One request on queue q, waited for by polling; returns the status. */
uint8_t vblk_one(struct vblk *b, unsigned q, const struct vblk_job *j,
		 uint8_t **buf);

#endif
