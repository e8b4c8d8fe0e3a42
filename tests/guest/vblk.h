/* A minimal virtio-pci (modern) driver for virtio-blk, for test=blk: PCI
 * config space through ports 0xcf8/0xcfc, the vendor capabilities, BARs
 * placed by the guest itself at VBLK_BAR_BASE (there is no firmware),
 * split virtqueues in fixed guest RAM, MSI-X to VEC_BLK.  As Linux's
 * blk-mq does, a CPU submits on its own queue (vblk_queue_of) and that
 * queue's vector is aimed at it, so several CPUs can drive the device at
 * once without sharing a queue.  Everything runs in user mode. */
#ifndef KRG_GUEST_VBLK_H
#define KRG_GUEST_VBLK_H

#include <stdbool.h>
#include <stdint.h>

#define VBLK_BAR_BASE	0xfe000000ull	/* 2 MiB mapped uncached (boot.S) */
#define VBLK_BAR_LIMIT	0xfe200000ull
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

#define VIRTIO_F_VERSION_1	32
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
	uint16_t index, size, vector;
	uint64_t desc, avail, used;	/* guest-physical = virtual */
	uint64_t notify;		/* its notify address in the BAR */
	uint16_t avail_idx, used_seen;
	unsigned inflight;
	unsigned cpu;			/* whose queue: its vector goes there */
	bool kick;
	uint64_t submitted, completed;
	struct vblk_slot slot[VBLK_QD];
};

struct vblk {
	unsigned devfn;
	uint64_t bar[6];
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint8_t msix_cap;
	uint16_t msix_n;
	uint64_t msix_table, msix_pba;
	bool msix;
	uint64_t offered, features;
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

uint32_t pci_cfg_read(unsigned devfn, unsigned reg, unsigned len);
void pci_cfg_write(unsigned devfn, unsigned reg, unsigned len, uint32_t v);

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
