/* test=blk's virtio-pci driver (vblk.h). */
#include "user.h"
#include "vblk.h"

#define PCI_ADDR	0xcf8
#define PCI_DATA	0xcfc

/* virtio_pci_common_cfg */
#define C_DFSELECT	0x00
#define C_DF		0x04
#define C_GFSELECT	0x08
#define C_GF		0x0c
#define C_MSIX_CONFIG	0x10
#define C_NUM_QUEUES	0x12
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

#define DESC_NEXT	1
#define DESC_WRITE	2

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

static unsigned find_device(void)
{
	for (unsigned dev = 0; dev < 32; dev++) {
		unsigned devfn = dev << 3;

		if (pci_cfg_read(devfn, 0, 2) == 0x1af4 &&
		    pci_cfg_read(devfn, 2, 2) == 0x1042)
			return devfn;
	}
	fail("blk: no virtio-blk PCI function (1af4:1042) on bus 0");
}

/* Sizes every memory BAR with decoding off and places it, aligned, from
 * VBLK_BAR_BASE up, as firmware would. */
static void place_bars(struct vblk *b)
{
	uint64_t next = VBLK_BAR_BASE;

	pci_cfg_write(b->devfn, 4, 2, 0);
	for (unsigned i = 0; i < 6; i++) {
		unsigned reg = 0x10 + 4 * i;
		uint32_t lo = pci_cfg_read(b->devfn, reg, 4);
		bool is64 = (lo & 7) == 4;
		uint64_t mask, size;

		if (lo & 1)
			continue;	/* I/O BAR: not ours to use */
		pci_cfg_write(b->devfn, reg, 4, 0xffffffffu);
		mask = pci_cfg_read(b->devfn, reg, 4) & ~0xfull;
		if (is64) {
			pci_cfg_write(b->devfn, reg + 4, 4, 0xffffffffu);
			mask |= (uint64_t)pci_cfg_read(b->devfn, reg + 4, 4) << 32;
		} else {
			mask |= 0xffffffff00000000ull;
		}
		if (!(mask & 0xffffffffull)) {
			if (is64)
				i++;
			continue;
		}
		size = ~mask + 1;
		next = (next + size - 1) & ~(size - 1);
		if (next + size > VBLK_BAR_LIMIT)
			fail("blk: BAR%u of %lu bytes does not fit below %lx", i,
			     size, (uint64_t)VBLK_BAR_LIMIT);
		pci_cfg_write(b->devfn, reg, 4, (uint32_t)next);
		if (is64)
			pci_cfg_write(b->devfn, reg + 4, 4, 0);
		b->bar[i] = next;
		say("blk: %02x:%02x.%x BAR%u %s %lu KiB at %lx", 0, b->devfn >> 3,
		    b->devfn & 7, i, is64 ? "64-bit" : "32-bit", size >> 10, next);
		next += size;
		if (is64)
			i++;
	}
	/* memory decoding and bus mastering (the device writes our RAM) */
	pci_cfg_write(b->devfn, 4, 2, 0x6);
}

static uint64_t cap_addr(struct vblk *b, unsigned cap)
{
	unsigned bar = pci_cfg_read(b->devfn, cap + 4, 1);
	uint32_t off = pci_cfg_read(b->devfn, cap + 8, 4);

	if (bar > 5 || !b->bar[bar])
		fail("blk: capability at %x names BAR%u, which is not placed",
		     cap, bar);
	return b->bar[bar] + off;
}

static void walk_caps(struct vblk *b)
{
	unsigned cap, n = 0;

	if (!(pci_cfg_read(b->devfn, 6, 2) & 0x10))
		fail("blk: no capability list");
	for (cap = pci_cfg_read(b->devfn, 0x34, 1) & 0xfc; cap && n < 48;
	     cap = pci_cfg_read(b->devfn, cap + 1, 1) & 0xfc, n++) {
		unsigned id = pci_cfg_read(b->devfn, cap, 1);

		if (id == 0x11) {
			uint32_t t = pci_cfg_read(b->devfn, cap + 4, 4);
			uint32_t p = pci_cfg_read(b->devfn, cap + 8, 4);

			b->msix_cap = (uint8_t)cap;
			b->msix_n = (uint16_t)((pci_cfg_read(b->devfn, cap + 2, 2) &
						0x7ff) + 1);
			if (!b->bar[t & 7] || !b->bar[p & 7])
				fail("blk: MSI-X table or PBA in an unplaced BAR");
			b->msix_table = b->bar[t & 7] + (t & ~7u);
			b->msix_pba = b->bar[p & 7] + (p & ~7u);
			continue;
		}
		if (id != 0x09)
			continue;
		switch (pci_cfg_read(b->devfn, cap + 3, 1)) {
		case 1: b->common = cap_addr(b, cap); break;
		case 2:
			b->notify = cap_addr(b, cap);
			b->notify_mult = pci_cfg_read(b->devfn, cap + 16, 4);
			break;
		case 3: b->isr = cap_addr(b, cap); break;
		case 4: b->devcfg = cap_addr(b, cap); break;
		default: break;
		}
	}
	if (!b->common || !b->notify || !b->isr || !b->devcfg)
		fail("blk: missing virtio capabilities (common %lx notify %lx "
		     "isr %lx device %lx)", b->common, b->notify, b->isr,
		     b->devcfg);
}

static void set_status(struct vblk *b, uint8_t bits)
{
	uint8_t st = mmio_read8(b->common + C_STATUS);

	mmio_write8(b->common + C_STATUS, st | bits);
}

static void negotiate(struct vblk *b)
{
	uint64_t want;

	mmio_write8(b->common + C_STATUS, 0);
	if (mmio_read8(b->common + C_STATUS) != 0)
		fail("blk: device status not 0 after reset");
	set_status(b, S_ACK);
	set_status(b, S_DRIVER);
	mmio_write32(b->common + C_DFSELECT, 0);
	b->offered = mmio_read32(b->common + C_DF);
	mmio_write32(b->common + C_DFSELECT, 1);
	b->offered |= (uint64_t)mmio_read32(b->common + C_DF) << 32;
	if (!(b->offered >> VIRTIO_F_VERSION_1 & 1))
		fail("blk: device does not offer VIRTIO_F_VERSION_1");
	want = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_BLK_F_FLUSH |
	       1ull << VIRTIO_BLK_F_MQ | 1ull << VIRTIO_BLK_F_RO |
	       1ull << VIRTIO_BLK_F_BLK_SIZE | 1ull << VIRTIO_BLK_F_SEG_MAX;
	b->features = b->offered & want;
	mmio_write32(b->common + C_GFSELECT, 0);
	mmio_write32(b->common + C_GF, (uint32_t)b->features);
	mmio_write32(b->common + C_GFSELECT, 1);
	mmio_write32(b->common + C_GF, (uint32_t)(b->features >> 32));
	set_status(b, S_FEATURES_OK);
	if (!(mmio_read8(b->common + C_STATUS) & S_FEATURES_OK))
		fail("blk: device refused features %lx", b->features);
}

/* The MSI-X entry of vector v (queue v's): to the LAPIC of the CPU using
 * that queue, VEC_BLK, unmasked. */
static void msix_setup(struct vblk *b)
{
	if (!b->msix_cap || b->msix_n < b->nq || opts.blk_nomsix)
		return;
	for (unsigned v = 0; v < b->nq; v++) {
		uint64_t e = b->msix_table + 16 * v;

		mmio_write32(e, 0xfee00000u | (b->q[v].cpu << 12));
		mmio_write32(e + 4, 0);
		mmio_write32(e + 8, VEC_BLK);
		mmio_write32(e + 12, 0);
	}
	pci_cfg_write(b->devfn, b->msix_cap + 2, 2, 0x8000);
	b->msix = true;
}

static void setup_queue(struct vblk *b, unsigned i)
{
	struct vblk_q *q = &b->q[i];
	uint64_t base = VBLK_MEM + 0x4000ull * i;
	uint16_t max;

	q->index = (uint16_t)i;
	mmio_write16(b->common + C_Q_SELECT, (uint16_t)i);
	max = mmio_read16(b->common + C_Q_SIZE);
	if (!max)
		fail("blk: queue %u has size 0", i);
	q->size = max < VBLK_QSIZE ? max : VBLK_QSIZE;
	mmio_write16(b->common + C_Q_SIZE, q->size);
	q->desc = base;
	q->avail = base + 0x1000;
	q->used = base + 0x2000;
	memset((void *)base, 0, 0x3000);
	write64(b->common + C_Q_DESC, q->desc);
	write64(b->common + C_Q_DRIVER, q->avail);
	write64(b->common + C_Q_DEVICE, q->used);
	q->vector = b->msix ? (uint16_t)i : 0xffff;
	mmio_write16(b->common + C_Q_MSIX, q->vector);
	if (mmio_read16(b->common + C_Q_MSIX) != q->vector)
		fail("blk: queue %u refused MSI-X vector %u", i, q->vector);
	q->notify = b->notify +
		    (uint64_t)mmio_read16(b->common + C_Q_NOTIFY_OFF) *
			    b->notify_mult;
	mmio_write16(b->common + C_Q_ENABLE, 1);
}

unsigned vblk_queue_of(const struct vblk *b, unsigned cpu)
{
	return cpu % b->nq;
}

void vblk_init(struct vblk *b, const bool *io_cpu)
{
	uint8_t gen;
	uint16_t nq = 1;

	memset(b, 0, sizeof(*b));
	b->devfn = find_device();
	place_bars(b);
	walk_caps(b);
	negotiate(b);
	if (b->features >> VIRTIO_BLK_F_MQ & 1)
		nq = mmio_read16(b->devcfg + 34);
	b->nq = nq < VBLK_MAXQ ? nq : VBLK_MAXQ;
	if (!b->nq)
		fail("blk: the device has no queues");
	for (unsigned i = 0; i < b->nq; i++)
		b->q[i].cpu = i % ncpus;
	for (unsigned c = 0; c < ncpus; c++)
		if (io_cpu[c])
			b->q[vblk_queue_of(b, c)].cpu = c;
	mmio_write16(b->common + C_MSIX_CONFIG, 0xffff);
	msix_setup(b);
	for (unsigned i = 0; i < b->nq; i++)
		setup_queue(b, i);
	set_status(b, S_DRIVER_OK);
	if (mmio_read8(b->common + C_STATUS) & S_NEEDS_RESET)
		fail("blk: device needs reset right after DRIVER_OK");
	do {
		gen = mmio_read8(b->common + C_GENERATION);
		b->capacity = mmio_read32(b->devcfg) |
			      (uint64_t)mmio_read32(b->devcfg + 4) << 32;
	} while (gen != mmio_read8(b->common + C_GENERATION));
	say("blk: features %lx (offered %lx), %u queue(s) of %u, %s, capacity "
	    "%lu sectors", b->features, b->offered, b->nq, b->q[0].size,
	    b->msix ? "MSI-X" : "polling", b->capacity);
}

static uint64_t slot_hdr(unsigned q, unsigned s)
{
	return VBLK_MEM + 0x10000 + 0x1000ull * q + 32ull * s;
}

/* Reads land in their own buffers: the device writes them, the CPU
 * only reads them. */
static uint8_t *slot_buf(unsigned q, unsigned s, uint32_t type)
{
	uint64_t base = type == VIRTIO_BLK_T_IN || type == VIRTIO_BLK_T_GET_ID ?
			VBLK_RDATA : VBLK_DATA;

	return (uint8_t *)(base + (uint64_t)(q * VBLK_QD + s) * VBLK_BUF);
}

static void put_desc(struct vblk_q *q, unsigned d, uint64_t addr,
		     uint32_t len, uint16_t flags, uint16_t next)
{
	volatile uint8_t *p = (volatile uint8_t *)(q->desc + 16ull * d);

	*(volatile uint64_t *)p = addr;
	*(volatile uint32_t *)(p + 8) = len;
	*(volatile uint16_t *)(p + 12) = flags;
	*(volatile uint16_t *)(p + 14) = next;
}

static void submit(struct vblk *b, unsigned qi, unsigned s,
		   const struct vblk_job *j)
{
	struct vblk_q *q = &b->q[qi];
	uint64_t hdr = slot_hdr(qi, s);
	unsigned d = 3 * s;
	uint32_t dlen = j->type == VIRTIO_BLK_T_GET_ID ? 20 :
			j->nsect * VBLK_SECTOR;
	volatile uint16_t *avail = (volatile uint16_t *)q->avail;

	*(volatile uint32_t *)hdr = j->type;
	*(volatile uint32_t *)(hdr + 4) = 0;
	*(volatile uint64_t *)(hdr + 8) = j->sector;
	*(volatile uint8_t *)(hdr + 16) = 0xff;
	if (dlen) {
		put_desc(q, d, hdr, 16, DESC_NEXT, (uint16_t)(d + 1));
		put_desc(q, d + 1, (uint64_t)slot_buf(qi, s, j->type), dlen,
			 DESC_NEXT | (j->type == VIRTIO_BLK_T_OUT ? 0 :
				      DESC_WRITE), (uint16_t)(d + 2));
		put_desc(q, d + 2, hdr + 16, 1, DESC_WRITE, 0);
	} else {
		put_desc(q, d, hdr, 16, DESC_NEXT, (uint16_t)(d + 2));
		put_desc(q, d + 2, hdr + 16, 1, DESC_WRITE, 0);
	}
	q->slot[s].busy = true;
	q->slot[s].job = *j;
	avail[2 + q->avail_idx % q->size] = (uint16_t)d;
	/* x86 keeps stores in order; the compiler must too */
	__asm__ volatile("" ::: "memory");
	avail[1] = ++q->avail_idx;
	q->inflight++;
	q->kick = true;
	q->submitted++;
}

static void kick(struct vblk *b, unsigned i)
{
	if (b->q[i].kick) {
		b->q[i].kick = false;
		__asm__ volatile("mfence" ::: "memory");
		mmio_write16(b->q[i].notify, (uint16_t)i);
	}
}

/* Completions of queue qi; returns how many. */
static unsigned reap(struct vblk *b, unsigned qi, const struct vblk_ops *ops)
{
	struct vblk_q *q = &b->q[qi];
	volatile uint16_t *used = (volatile uint16_t *)q->used;
	unsigned n = 0;

	while (q->used_seen != used[1]) {
		volatile uint32_t *e = (volatile uint32_t *)(q->used + 4 +
			8ull * (q->used_seen % q->size));
		uint32_t id = e[0], s = id / 3;

		if (id % 3 || s >= VBLK_QD || !q->slot[s].busy)
			fail("blk: queue %u: used ring returned descriptor %u, "
			     "which is no request in flight", qi, id);
		q->slot[s].busy = false;
		q->inflight--;
		q->used_seen++;
		q->completed++;
		n++;
		if (ops && ops->done)
			ops->done(&q->slot[s].job,
				  slot_buf(qi, s, q->slot[s].job.type),
				  *(volatile uint8_t *)(slot_hdr(qi, s) + 16),
				  ops->ctx);
	}
	return n;
}

static void check_broken(struct vblk *b)
{
	if (mmio_read8(b->common + C_STATUS) & S_NEEDS_RESET)
		fail("blk: the device set DEVICE_NEEDS_RESET");
}

void vblk_run(struct vblk *b, unsigned qi, const struct vblk_ops *ops)
{
	bool more = true;
	uint64_t spins = 0;

	for (;;) {
		unsigned inflight, got;

		for (unsigned s = 0; more && s < VBLK_QD; s++) {
			struct vblk_job j;

			if (b->q[qi].slot[s].busy)
				continue;
			/* A write's data goes into its buffer here. */
			if (!ops->next(&j, slot_buf(qi, s, VIRTIO_BLK_T_OUT),
				       ops->ctx)) {
				more = false;
				break;
			}
			submit(b, qi, s, &j);
		}
		kick(b, qi);
		got = reap(b, qi, ops);
		inflight = b->q[qi].inflight;
		if (!more && !inflight)
			return;
		if (got) {
			spins = 0;
			continue;
		}
		cpu_relax();
		if (++spins % 65536 == 0) {
			check_broken(b);
			watchdog_check("virtio-blk completions");
		}
	}
}

uint8_t vblk_one(struct vblk *b, unsigned qi, const struct vblk_job *j,
		 uint8_t **buf)
{
	struct vblk_q *q = &b->q[qi];
	uint64_t spins = 0;
	unsigned s = 0;

	while (s < VBLK_QD && q->slot[s].busy)
		s++;
	if (s == VBLK_QD)
		fail("blk: no free slot on queue %u", qi);
	if (buf)
		*buf = slot_buf(qi, s, j->type);
	submit(b, qi, s, j);
	kick(b, qi);
	while (!reap(b, qi, NULL)) {
		cpu_relax();
		if (++spins % 65536 == 0) {
			check_broken(b);
			watchdog_check("a virtio-blk completion");
		}
	}
	return *(volatile uint8_t *)(slot_hdr(qi, s) + 16);
}
