/* The test guest's modern virtio-pci driver core: PCI config space through
 * ports 0xcf8/0xcfc, find a function by virtio device ID, place its memory
 * BARs (there is no firmware), walk the vendor and MSI-X capabilities,
 * negotiate, start split queues in fixed guest RAM.  test=net and test=rng
 * poll (vpci_init, vpci_queue: no MSI-X, INTx disabled in the command
 * register, every available ring says NO_INTERRUPT); test=blk's vblk.c
 * builds on vpci_probe/vpci_negotiate/vpci_queue_vector with MSI-X or
 * INTx. */
#ifndef KRG_GUEST_VPCI_H
#define KRG_GUEST_VPCI_H

#include <stdbool.h>
#include <stdint.h>

#define VPCI_BAR_LIMIT		0xfe200000ull	/* end of the uncached 2 MiB */
#define VPCI_F_VERSION_1	32
#define VPCI_NO_VECTOR		0xffff
#define VPCI_DESC_NEXT		1
#define VPCI_DESC_WRITE		2

struct vpci_q {
	uint16_t index, size, vector;
	uint64_t desc, avail, used;	/* guest-physical = virtual */
	uint64_t notify;
	uint16_t avail_idx, used_seen;
};

struct vpci {
	const char *tag;		/* "net", "rng", "blk": log prefix */
	unsigned devfn;
	uint64_t bar[6];
	uint64_t common, isr, devcfg, notify;
	uint32_t notify_mult;
	uint8_t msix_cap;		/* 0: no MSI-X capability */
	uint16_t msix_n;
	uint64_t msix_table, msix_pba;
	uint64_t offered, features;
};

/* vpci_probe flags */
#define VPCI_INTX	1	/* leave INTx enabled in the command register */
#define VPCI_LOG_BARS	2	/* say where each BAR went */

uint32_t pci_cfg_read(unsigned devfn, unsigned reg, unsigned len);
void pci_cfg_write(unsigned devfn, unsigned reg, unsigned len, uint32_t v);

/* Finds 1af4:(0x1040 + virtio_id), places its BARs from bar_base (below
 * VPCI_BAR_LIMIT), enables memory decoding and bus mastering and reads
 * the capabilities.  Fails the test on anything unexpected. */
void vpci_probe(struct vpci *d, const char *tag, unsigned virtio_id,
		uint64_t bar_base, unsigned flags);
/* Resets the device and negotiates VERSION_1 plus the bits of want the
 * device offers, up to FEATURES_OK. */
void vpci_negotiate(struct vpci *d, uint64_t want);
void vpci_msix_config(struct vpci *d, uint16_t vector);
/* The config generation: device config read between two equal ones is
 * consistent. */
uint8_t vpci_generation(struct vpci *d);

/* Probe (INTx off), negotiate, no config-change vector: the polled
 * devices' start. */
void vpci_init(struct vpci *d, const char *tag, unsigned virtio_id,
	       uint64_t bar_base, uint64_t want);
/* Queue index with size entries (at most what the device offers) whose
 * rings take 0x3000 bytes at mem (size <= 256). */
void vpci_queue(struct vpci *d, struct vpci_q *q, unsigned index,
		uint16_t size, uint64_t mem);
/* The same with MSI-X vector (VPCI_NO_VECTOR: none) and interrupts
 * wanted; fails if the device does not take the vector. */
void vpci_queue_vector(struct vpci *d, struct vpci_q *q, unsigned index,
		       uint16_t size, uint64_t mem, uint16_t vector);
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
