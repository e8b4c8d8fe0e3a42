/* The test guest's virtio-pci core (vpci.h): test=net, test=rng and
 * test=blk's vblk.c. */
#include "user.h"
#include "vpci.h"

#define PCI_ADDR	0xcf8
#define PCI_DATA	0xcfc

/* virtio_pci_common_cfg */
#define C_DFSELECT	0x00
#define C_DF		0x04
#define C_GFSELECT	0x08
#define C_GF		0x0c
#define C_MSIX_CONFIG	0x10
#define C_STATUS	0x14
#define C_GENERATION	0x15
#define C_Q_SELECT	0x16
#define C_Q_SIZE	0x18
#define C_Q_MSIX	0x1a
#define C_Q_ENABLE	0x1c
#define C_Q_NOTIFY_OFF	0x1e
#define C_Q_DESC	0x20
#define C_Q_DRIVER	0x28
#define C_Q_DEVICE	0x30

#define S_ACK		1
#define S_DRIVER	2
#define S_DRIVER_OK	4
#define S_FEATURES_OK	8
#define S_NEEDS_RESET	0x40

#define AVAIL_F_NO_INTERRUPT 1

uint32_t pci_cfg_read(unsigned devfn, unsigned reg, unsigned len)
{
	uint32_t v;

	outl(PCI_ADDR, 0x80000000u | (devfn << 8) | (reg & 0xfc));
	v = inl(PCI_DATA) >> (8 * (reg & 3));
	return len == 4 ? v : v & ((1u << (8 * len)) - 1);
}

void pci_cfg_write(unsigned devfn, unsigned reg, unsigned len, uint32_t v)
{
	outl(PCI_ADDR, 0x80000000u | (devfn << 8) | (reg & 0xfc));
	if (len == 4)
		outl(PCI_DATA, v);
	else if (len == 2)
		outw((uint16_t)(PCI_DATA + (reg & 2)), (uint16_t)v);
	else
		outb((uint16_t)(PCI_DATA + (reg & 3)), (uint8_t)v);
}

static void write64(uint64_t addr, uint64_t v)
{
	mmio_write32(addr, (uint32_t)v);
	mmio_write32(addr + 4, (uint32_t)(v >> 32));
}

/* A modern device is 1af4:(0x1040 + id).  A transitional one (QEMU's
 * virtio-*-pci on a conventional PCI bus) is 1af4:1000-103f with the
 * virtio device ID as its subsystem ID; drivers must match it too
 * (virtio 1.1, 4.1.2.2), and it has the modern capabilities we use. */
static bool matches(unsigned devfn, unsigned virtio_id)
{
	unsigned id;

	if (pci_cfg_read(devfn, 0, 2) != 0x1af4)
		return false;
	id = pci_cfg_read(devfn, 2, 2);
	if (id == 0x1040 + virtio_id)
		return true;
	return id >= 0x1000 && id <= 0x103f &&
	       pci_cfg_read(devfn, 0x2e, 2) == virtio_id;
}

static bool find(struct vpci *d, unsigned virtio_id)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		if (matches(dev << 3, virtio_id)) {
			d->devfn = dev << 3;
			return true;
		}
	}
	return false;
}

/* Sizes every memory BAR with decoding off and places it, aligned, from
 * next up, as firmware would. */
static void place_bars(struct vpci *d, uint64_t next, unsigned flags)
{
	pci_cfg_write(d->devfn, 4, 2, 0);
	for (unsigned i = 0; i < 6; i++) {
		unsigned reg = 0x10 + 4 * i;
		uint32_t lo = pci_cfg_read(d->devfn, reg, 4);
		bool is64 = (lo & 7) == 4;
		uint64_t mask, size;

		if (lo & 1)
			continue;	/* I/O BAR: not ours to use */
		pci_cfg_write(d->devfn, reg, 4, 0xffffffffu);
		mask = pci_cfg_read(d->devfn, reg, 4) & ~0xfull;
		if (is64) {
			pci_cfg_write(d->devfn, reg + 4, 4, 0xffffffffu);
			mask |= (uint64_t)pci_cfg_read(d->devfn, reg + 4, 4) << 32;
		} else {
			mask |= 0xffffffff00000000ull;
		}
		if (!(mask & 0xffffffffull)) {
			i += is64;
			continue;
		}
		size = ~mask + 1;
		next = (next + size - 1) & ~(size - 1);
		if (next + size > VPCI_BAR_LIMIT)
			fail("%s: BAR%u of %lu bytes does not fit below %lx",
			     d->tag, i, size, (uint64_t)VPCI_BAR_LIMIT);
		pci_cfg_write(d->devfn, reg, 4, (uint32_t)next);
		if (is64)
			pci_cfg_write(d->devfn, reg + 4, 4, 0);
		d->bar[i] = next;
		if (flags & VPCI_LOG_BARS)
			say("%s: %02x:%02x.%x BAR%u %s %lu KiB at %lx", d->tag,
			    0, d->devfn >> 3, d->devfn & 7, i,
			    is64 ? "64-bit" : "32-bit", size >> 10, next);
		next += size;
		i += is64;
	}
	/* memory decoding and bus mastering (the device writes our RAM);
	 * INTx off unless the driver takes it: the others poll */
	pci_cfg_write(d->devfn, 4, 2, flags & VPCI_INTX ? 0x6 : 0x406);
}

static uint64_t cap_addr(struct vpci *d, unsigned cap)
{
	unsigned bar = pci_cfg_read(d->devfn, cap + 4, 1);

	if (bar > 5 || !d->bar[bar])
		fail("%s: capability at %x names BAR%u, which is not placed",
		     d->tag, cap, bar);
	return d->bar[bar] + pci_cfg_read(d->devfn, cap + 8, 4);
}

static void msix_cap(struct vpci *d, unsigned cap)
{
	uint32_t t = pci_cfg_read(d->devfn, cap + 4, 4);
	uint32_t p = pci_cfg_read(d->devfn, cap + 8, 4);

	d->msix_cap = (uint8_t)cap;
	d->msix_n = (uint16_t)((pci_cfg_read(d->devfn, cap + 2, 2) & 0x7ff) +
			       1);
	if (!d->bar[t & 7] || !d->bar[p & 7])
		fail("%s: MSI-X table or PBA in an unplaced BAR", d->tag);
	d->msix_table = d->bar[t & 7] + (t & ~7u);
	d->msix_pba = d->bar[p & 7] + (p & ~7u);
}

static void walk_caps(struct vpci *d)
{
	unsigned cap, n = 0;

	if (!(pci_cfg_read(d->devfn, 6, 2) & 0x10))
		fail("%s: no capability list", d->tag);
	for (cap = pci_cfg_read(d->devfn, 0x34, 1) & 0xfc; cap && n < 48;
	     cap = pci_cfg_read(d->devfn, cap + 1, 1) & 0xfc, n++) {
		unsigned id = pci_cfg_read(d->devfn, cap, 1);

		if (id == 0x11)
			msix_cap(d, cap);
		if (id != 0x09)
			continue;
		switch (pci_cfg_read(d->devfn, cap + 3, 1)) {
		case 1: d->common = cap_addr(d, cap); break;
		case 2:
			d->notify = cap_addr(d, cap);
			d->notify_mult = pci_cfg_read(d->devfn, cap + 16, 4);
			break;
		case 3: d->isr = cap_addr(d, cap); break;
		case 4: d->devcfg = cap_addr(d, cap); break;
		default: break;
		}
	}
	if (!d->common || !d->notify || !d->isr || !d->devcfg)
		fail("%s: missing virtio capabilities (common %lx notify %lx "
		     "isr %lx device %lx)", d->tag, d->common, d->notify,
		     d->isr, d->devcfg);
}

static void set_status(struct vpci *d, uint8_t bits)
{
	mmio_write8(d->common + C_STATUS,
		    mmio_read8(d->common + C_STATUS) | bits);
}

void vpci_probe(struct vpci *d, const char *tag, unsigned virtio_id,
		uint64_t bar_base, unsigned flags)
{
	memset(d, 0, sizeof(*d));
	d->tag = tag;
	if (!find(d, virtio_id))
		fail("%s: no virtio PCI function 1af4:%x (or transitional) on "
		     "bus 0", tag, 0x1040 + virtio_id);
	place_bars(d, bar_base, flags);
	walk_caps(d);
}

void vpci_negotiate(struct vpci *d, uint64_t want)
{
	mmio_write8(d->common + C_STATUS, 0);
	if (mmio_read8(d->common + C_STATUS))
		fail("%s: status not 0 after reset", d->tag);
	set_status(d, S_ACK);
	set_status(d, S_DRIVER);
	mmio_write32(d->common + C_DFSELECT, 0);
	d->offered = mmio_read32(d->common + C_DF);
	mmio_write32(d->common + C_DFSELECT, 1);
	d->offered |= (uint64_t)mmio_read32(d->common + C_DF) << 32;
	if (!(d->offered >> VPCI_F_VERSION_1 & 1))
		fail("%s: VIRTIO_F_VERSION_1 not offered", d->tag);
	d->features = d->offered & (want | 1ull << VPCI_F_VERSION_1);
	mmio_write32(d->common + C_GFSELECT, 0);
	mmio_write32(d->common + C_GF, (uint32_t)d->features);
	mmio_write32(d->common + C_GFSELECT, 1);
	mmio_write32(d->common + C_GF, (uint32_t)(d->features >> 32));
	set_status(d, S_FEATURES_OK);
	if (!(mmio_read8(d->common + C_STATUS) & S_FEATURES_OK))
		fail("%s: device refused features %lx", d->tag, d->features);
}

void vpci_init(struct vpci *d, const char *tag, unsigned virtio_id,
	       uint64_t bar_base, uint64_t want)
{
	vpci_probe(d, tag, virtio_id, bar_base, 0);
	vpci_negotiate(d, want);
	vpci_msix_config(d, VPCI_NO_VECTOR);
	say("%s: 00:%02x.%x, features %lx (offered %lx)", tag, d->devfn >> 3,
	    d->devfn & 7, d->features, d->offered);
}

void vpci_msix_config(struct vpci *d, uint16_t vector)
{
	mmio_write16(d->common + C_MSIX_CONFIG, vector);
}

uint8_t vpci_generation(struct vpci *d)
{
	return mmio_read8(d->common + C_GENERATION);
}

static void start_queue(struct vpci *d, struct vpci_q *q, unsigned index,
			uint16_t size, uint64_t mem, uint16_t vector,
			uint16_t avail_flags)
{
	uint16_t max;

	memset(q, 0, sizeof(*q));
	q->index = (uint16_t)index;
	q->vector = vector;
	mmio_write16(d->common + C_Q_SELECT, (uint16_t)index);
	max = mmio_read16(d->common + C_Q_SIZE);
	if (!max)
		fail("%s: queue %u has size 0", d->tag, index);
	q->size = max < size ? max : size;
	mmio_write16(d->common + C_Q_SIZE, q->size);
	q->desc = mem;
	q->avail = mem + 0x1000;
	q->used = mem + 0x2000;
	memset((void *)mem, 0, 0x3000);
	*(volatile uint16_t *)q->avail = avail_flags;
	write64(d->common + C_Q_DESC, q->desc);
	write64(d->common + C_Q_DRIVER, q->avail);
	write64(d->common + C_Q_DEVICE, q->used);
	mmio_write16(d->common + C_Q_MSIX, vector);
	if (mmio_read16(d->common + C_Q_MSIX) != vector)
		fail("%s: queue %u refused MSI-X vector %u", d->tag, index,
		     vector);
	q->notify = d->notify + (uint64_t)mmio_read16(d->common +
						      C_Q_NOTIFY_OFF) *
					d->notify_mult;
	mmio_write16(d->common + C_Q_ENABLE, 1);
}

void vpci_queue(struct vpci *d, struct vpci_q *q, unsigned index,
		uint16_t size, uint64_t mem)
{
	/* polled: the device need not interrupt at all */
	start_queue(d, q, index, size, mem, VPCI_NO_VECTOR,
		    AVAIL_F_NO_INTERRUPT);
}

void vpci_queue_vector(struct vpci *d, struct vpci_q *q, unsigned index,
		       uint16_t size, uint64_t mem, uint16_t vector)
{
	start_queue(d, q, index, size, mem, vector, 0);
}

void vpci_driver_ok(struct vpci *d)
{
	set_status(d, S_DRIVER_OK);
	vpci_check(d);
}

void vpci_check(struct vpci *d)
{
	if (mmio_read8(d->common + C_STATUS) & S_NEEDS_RESET)
		fail("%s: the device set DEVICE_NEEDS_RESET", d->tag);
}

void vq_desc(struct vpci_q *q, unsigned i, uint64_t addr, uint32_t len,
	     uint16_t flags, uint16_t next)
{
	volatile uint8_t *p = (volatile uint8_t *)(q->desc + 16ull * i);

	*(volatile uint64_t *)p = addr;
	*(volatile uint32_t *)(p + 8) = len;
	*(volatile uint16_t *)(p + 12) = flags;
	*(volatile uint16_t *)(p + 14) = next;
}

void vq_offer(struct vpci_q *q, uint16_t head)
{
	volatile uint16_t *avail = (volatile uint16_t *)q->avail;

	avail[2 + q->avail_idx % q->size] = head;
	/* x86 keeps stores in order; the compiler must too */
	__asm__ volatile("" ::: "memory");
	avail[1] = ++q->avail_idx;
}

void vq_kick(struct vpci *d, struct vpci_q *q)
{
	__asm__ volatile("mfence" ::: "memory");
	mmio_write16(q->notify, q->index);
}

bool vq_used(struct vpci_q *q, uint32_t *id, uint32_t *len)
{
	volatile uint16_t *used = (volatile uint16_t *)q->used;
	volatile uint32_t *e;

	if (q->used_seen == used[1])
		return false;
	__asm__ volatile("" ::: "memory");
	e = (volatile uint32_t *)(q->used + 4 + 8ull * (q->used_seen % q->size));
	*id = e[0];
	*len = e[1];
	q->used_seen++;
	return true;
}
