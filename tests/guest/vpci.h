/* A small modern virtio-pci driver core for test=net and test=rng: find a
 * function by virtio device ID, place its memory BARs (there is no
 * firmware), walk the vendor capabilities, negotiate, start split queues
 * in fixed guest RAM.  Completions are polled: no MSI-X, INTx disabled in
 * the command register, and every available ring says NO_INTERRUPT.
 * (vblk.c is test=blk's own, with MSI-X; the PCI config helpers are
 * shared from there.) */
#ifndef KRG_GUEST_VPCI_H
#define KRG_GUEST_VPCI_H

#include <stdbool.h>
#include <stdint.h>

#define VPCI_F_VERSION_1	32
#define VPCI_DESC_NEXT		1
#define VPCI_DESC_WRITE		2

struct vpci_q {
	uint16_t index, size;
	uint64_t desc, avail, used;	/* guest-physical = virtual */
	uint64_t notify;
	uint16_t avail_idx, used_seen;
};

struct vpci {
	const char *tag;		/* "net", "rng": the log lines' prefix */
	unsigned devfn;
	uint64_t bar[6];
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint64_t offered, features;
};

/* Finds 1af4:(0x1040 + virtio_id), places its BARs from bar_base (within
 * the uncached 0xfe000000-0xfe1fffff), negotiates VERSION_1 plus the bits
 * of want the device offers.  Fails the test on anything unexpected. */
void vpci_init(struct vpci *d, const char *tag, unsigned virtio_id,
	       uint64_t bar_base, uint64_t want);
/* Queue index with size entries (at most what the device offers) whose
 * rings take 0x3000 bytes at mem (size <= 256). */
void vpci_queue(struct vpci *d, struct vpci_q *q, unsigned index,
		uint16_t size, uint64_t mem);
void vpci_driver_ok(struct vpci *d);
/* Fails the test if the device set DEVICE_NEEDS_RESET. */
void vpci_check(struct vpci *d);

void vq_desc(struct vpci_q *q, unsigned i, uint64_t addr, uint32_t len,
	     uint16_t flags, uint16_t next);
/* Makes head available (the caller kicks). */
void vq_offer(struct vpci_q *q, uint16_t head);
void vq_kick(struct vpci *d, struct vpci_q *q);
/* The next used element, if there is one. */
bool vq_used(struct vpci_q *q, uint32_t *id, uint32_t *len);

#endif
