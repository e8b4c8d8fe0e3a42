/* test=blk's virtio-pci driver (vblk.h). */
#include "user.h"
#include "vblk.h"
#include "vpci.h"

/* virtio_blk_config */
#define CFG_CAPACITY	0
#define CFG_NUM_QUEUES	34

/* The MSI-X entry of vector v (queue v's): to the LAPIC of the CPU using
 * that queue, VEC_BLK, unmasked. */
static void msix_setup(struct vblk *b)
{
	struct vpci *d = &b->pci;

	if (!d->msix_cap || d->msix_n < b->nq || opts.blk_nomsix)
		return;
	for (unsigned v = 0; v < b->nq; v++) {
		uint64_t e = d->msix_table + 16 * v;

		mmio_write32(e, 0xfee00000u | (b->q[v].cpu << 12));
		mmio_write32(e + 4, 0);
		mmio_write32(e + 8, VEC_BLK);
		mmio_write32(e + 12, 0);
	}
	pci_cfg_write(d->devfn, d->msix_cap + 2, 2, 0x8000);
	b->msix = true;
}

unsigned vblk_queue_of(const struct vblk *b, unsigned cpu)
{
	return cpu % b->nq;
}

void vblk_init(struct vblk *b, const bool *io_cpu)
{
	struct vpci *d = &b->pci;
	uint8_t gen;
	uint16_t nq = 1;

	memset(b, 0, sizeof(*b));
	vpci_probe(d, "blk", VIRTIO_ID_BLOCK, VBLK_BAR_BASE,
		   VPCI_INTX | VPCI_LOG_BARS);
	vpci_negotiate(d, 1ull << VIRTIO_BLK_F_FLUSH | 1ull << VIRTIO_BLK_F_MQ |
			  1ull << VIRTIO_BLK_F_RO |
			  1ull << VIRTIO_BLK_F_BLK_SIZE |
			  1ull << VIRTIO_BLK_F_SEG_MAX);
	if (d->features >> VIRTIO_BLK_F_MQ & 1)
		nq = mmio_read16(d->devcfg + CFG_NUM_QUEUES);
	b->nq = nq < VBLK_MAXQ ? nq : VBLK_MAXQ;
	if (!b->nq)
		fail("blk: the device has no queues");
	for (unsigned i = 0; i < b->nq; i++)
		b->q[i].cpu = i % ncpus;
	for (unsigned c = 0; c < ncpus; c++)
		if (io_cpu[c])
			b->q[vblk_queue_of(b, c)].cpu = c;
	vpci_msix_config(d, VPCI_NO_VECTOR);
	msix_setup(b);
	for (unsigned i = 0; i < b->nq; i++)
		vpci_queue_vector(d, &b->q[i].vq, i, VBLK_QSIZE,
				  VBLK_MEM + 0x4000ull * i,
				  b->msix ? (uint16_t)i : VPCI_NO_VECTOR);
	vpci_driver_ok(d);
	do {
		gen = vpci_generation(d);
		b->capacity = mmio_read32(d->devcfg + CFG_CAPACITY) |
			      (uint64_t)mmio_read32(d->devcfg + CFG_CAPACITY +
						    4) << 32;
	} while (gen != vpci_generation(d));
	say("blk: features %lx (offered %lx), %u queue(s) of %u, %s, capacity "
	    "%lu sectors", d->features, d->offered, b->nq, b->q[0].vq.size,
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

static void submit(struct vblk *b, unsigned qi, unsigned s,
		   const struct vblk_job *j)
{
	struct vblk_q *q = &b->q[qi];
	struct vpci_q *vq = &q->vq;
	uint64_t hdr = slot_hdr(qi, s);
	unsigned d = 3 * s;
	uint32_t dlen = j->type == VIRTIO_BLK_T_GET_ID ? 20 :
			j->nsect * VBLK_SECTOR;

	*(volatile uint32_t *)hdr = j->type;
	*(volatile uint32_t *)(hdr + 4) = 0;
	*(volatile uint64_t *)(hdr + 8) = j->sector;
	*(volatile uint8_t *)(hdr + 16) = 0xff;
	if (dlen) {
		vq_desc(vq, d, hdr, 16, VPCI_DESC_NEXT, (uint16_t)(d + 1));
		vq_desc(vq, d + 1, (uint64_t)slot_buf(qi, s, j->type), dlen,
			VPCI_DESC_NEXT | (j->type == VIRTIO_BLK_T_OUT ? 0 :
					  VPCI_DESC_WRITE), (uint16_t)(d + 2));
		vq_desc(vq, d + 2, hdr + 16, 1, VPCI_DESC_WRITE, 0);
	} else {
		vq_desc(vq, d, hdr, 16, VPCI_DESC_NEXT, (uint16_t)(d + 2));
		vq_desc(vq, d + 2, hdr + 16, 1, VPCI_DESC_WRITE, 0);
	}
	q->slot[s].busy = true;
	q->slot[s].job = *j;
	vq_offer(vq, (uint16_t)d);
	q->inflight++;
	q->kick = true;
	q->submitted++;
}

static void kick(struct vblk *b, unsigned i)
{
	if (b->q[i].kick) {
		b->q[i].kick = false;
		vq_kick(&b->pci, &b->q[i].vq);
	}
}

/* Completions of queue qi; returns how many. */
static unsigned reap(struct vblk *b, unsigned qi, const struct vblk_ops *ops)
{
	struct vblk_q *q = &b->q[qi];
	uint32_t id, len;
	unsigned n = 0;

	while (vq_used(&q->vq, &id, &len)) {
		uint32_t s = id / 3;

		if (id % 3 || s >= VBLK_QD || !q->slot[s].busy)
			fail("blk: queue %u: used ring returned descriptor %u, "
			     "which is no request in flight", qi, id);
		q->slot[s].busy = false;
		q->inflight--;
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
			vpci_check(&b->pci);
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
			vpci_check(&b->pci);
			watchdog_check("a virtio-blk completion");
		}
	}
	return *(volatile uint8_t *)(slot_hdr(qi, s) + 16);
}
