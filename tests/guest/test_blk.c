/* test=blk: a virtio-blk disk through our own virtio-pci driver (vblk.c).
 * The CPU blkcpu= (default 0) does all the I/O on its own queue; with
 * blkcpu=all every CPU does, at once, each on its own queue (the device
 * must offer one per CPU) and in its own part of the disk (CPU c from
 * sector c * 2 * blkmib MiB).  Each I/O CPU:
 *   1. sequential writes over the first blkmib= MiB (default 2), 64 KiB
 *      requests, VBLK_QD in flight on every queue;
 *   2. random writes (1-8 sectors) over the next blkmib= MiB;
 *   3. FLUSH (when negotiated);
 *   4. read back both regions in 64 KiB requests and random reads of 1-8
 *      sectors, each sector checked: the pattern if written, else zeros
 *      (the harness gives a fresh, zeroed disk);
 *   5. GET_ID, printed;
 *   6. with MSI-X: the function mask and then vector 0's mask hold a
 *      completion's interrupt with its pending bit set, and unmasking
 *      delivers it.
 * The pattern of 64-bit word i of sector s is blk_pattern(s, i), so the
 * harness can check the image on the host.  Each I/O CPU ends with
 * "blk: cpu C queue Q: N requests, K KiB in M ms: R requests/s, B KiB/s"
 * over its four passes, and each pass with "blk: pass cpu C queue Q TAG:
 * N requests, K KiB in U us: R requests/s, B KiB/s" (bench/blk.sh).
 * blkro=1 instead expects a
 * read-only disk: VIRTIO_BLK_F_RO offered, a write completing with
 * VIRTIO_BLK_S_IOERR, a read with OK. */
#include "user.h"
#include "vblk.h"

/* blkmib <= 64, seq + random, on each of up to VBLK_MAXQ I/O CPUs. */
#define MAX_SECTORS	(VBLK_MAXQ * 2 * 64ull * 2048)
#define RANDOM_WRITES	384
#define RANDOM_READS	256

struct blk_pass {
	uint64_t base;		/* this CPU's part of the disk starts here */
	uint64_t seq_end;	/* [base, seq_end): written sequentially */
	uint64_t rnd_end;	/* [seq_end, rnd_end): random writes */
	uint64_t pos, count, limit;
	uint32_t type;
	bool random;
	uint64_t rng;
	uint64_t bad, checked;
	uint64_t requests, bytes, us;	/* of the four passes */
};

static uint8_t written[MAX_SECTORS / 8];

static uint64_t blk_pattern(uint64_t s, unsigned i)
{
	return 0x6b72672d626c6b00ull ^ (s * 0x100000001b3ull) ^ i;
}

static uint64_t rng_next(uint64_t *x)
{
	*x ^= *x << 13;
	*x ^= *x >> 7;
	*x ^= *x << 17;
	return *x;
}

static bool is_written(uint64_t s)
{
	return written[s / 8] >> (s % 8) & 1;
}

static void fill(uint8_t *buf, uint64_t sector, uint32_t nsect)
{
	uint64_t *w = (uint64_t *)buf;

	for (uint32_t k = 0; k < nsect; k++)
		for (unsigned i = 0; i < 64; i++)
			w[k * 64 + i] = blk_pattern(sector + k, i);
}

static bool next_job(struct vblk_job *j, uint8_t *buf, void *ctx)
{
	struct blk_pass *p = ctx;

	if (p->count >= p->limit)
		return false;
	j->type = p->type;
	if (p->random) {
		uint64_t lo = p->type == VIRTIO_BLK_T_OUT ? p->seq_end : p->base;
		uint64_t span = p->rnd_end - lo - 8;

		j->nsect = (uint32_t)(rng_next(&p->rng) % 8) + 1;
		j->sector = lo + rng_next(&p->rng) % span;
	} else {
		uint64_t left = p->limit - p->pos;

		j->sector = p->pos;
		j->nsect = left < VBLK_BUF / VBLK_SECTOR ?
			(uint32_t)left : VBLK_BUF / VBLK_SECTOR;
		p->pos += j->nsect;
		if (p->pos >= p->limit)
			p->count = p->limit;
	}
	if (p->random)
		p->count++;
	p->bytes += (uint64_t)j->nsect * VBLK_SECTOR;
	if (j->type == VIRTIO_BLK_T_OUT) {
		fill(buf, j->sector, j->nsect);
		/* Marked at submission: a later read of these sectors is
		 * only submitted after this write completed (passes do not
		 * overlap). */
		for (uint32_t k = 0; k < j->nsect; k++)
			written[(j->sector + k) / 8] |=
				(uint8_t)(1u << ((j->sector + k) % 8));
	}
	return true;
}

static void check_sector(struct blk_pass *p, uint64_t s, const uint64_t *w)
{
	bool want = is_written(s);

	p->checked++;
	for (unsigned i = 0; i < 64; i++) {
		uint64_t exp = want ? blk_pattern(s, i) : 0;

		if (w[i] == exp)
			continue;
		if (p->bad++ < 4)
			say("blk: MISMATCH sector %lu word %u: %lx, expected %lx "
			    "(%s)", s, i, w[i], exp, want ? "written" :
			    "never written");
		return;
	}
}

static void job_done(const struct vblk_job *j, const uint8_t *buf,
		     uint8_t status, void *ctx)
{
	struct blk_pass *p = ctx;

	if (status != VIRTIO_BLK_S_OK)
		fail("blk: %s of sector %lu (+%u) completed with status %u",
		     j->type == VIRTIO_BLK_T_OUT ? "write" : "read", j->sector,
		     j->nsect, status);
	if (j->type != VIRTIO_BLK_T_IN)
		return;
	for (uint32_t k = 0; k < j->nsect; k++)
		check_sector(p, j->sector + k,
			     (const uint64_t *)(buf + k * VBLK_SECTOR));
}

/* Prints the pass's request count and, for benchmarks, its rates as
 * "blk: pass cpu C queue Q TAG: ..." (TAG: seq-write, rnd-write,
 * seq-read, rnd-read). */
static void run_pass(struct vblk *b, unsigned q, struct blk_pass *p,
		     const char *what, const char *tag, uint32_t type,
		     bool random, uint64_t from, uint64_t limit)
{
	struct vblk_ops ops = { next_job, job_done, p };
	uint64_t t0 = rdtsc(), n0 = b->q[q].completed, b0 = p->bytes, us, n,
		 kib;

	p->type = type;
	p->random = random;
	p->pos = from;
	p->count = random ? 0 : from;
	p->limit = limit;
	if (!random && from >= limit)
		return;
	vblk_run(b, q, &ops);
	us = tsc_to_us(rdtsc() - t0);
	n = b->q[q].completed - n0;
	kib = (p->bytes - b0) >> 10;
	p->requests += n;
	p->us += us;
	say("blk: cpu %u queue %u: %s: %lu requests in %lu ms", this_cpu(), q,
	    what, n, us / 1000);
	say("blk: pass cpu %u queue %u %s: %lu requests, %lu KiB in %lu us: "
	    "%lu requests/s, %lu KiB/s", this_cpu(), q, tag, n, kib, us,
	    us ? n * 1000000 / us : 0, us ? kib * 1000000 / us : 0);
}

static unsigned count_written(uint64_t from, uint64_t to)
{
	unsigned n = 0;

	for (uint64_t s = from; s < to; s++)
		n += is_written(s);
	return n;
}

static void simple(struct vblk *b, unsigned q, uint32_t type,
		   uint64_t sector, uint8_t want, const char *what)
{
	struct vblk_job j = { type, sector, type == VIRTIO_BLK_T_FLUSH ? 0 : 1 };
	uint8_t st = vblk_one(b, q, &j, NULL);

	if (st != want)
		fail("blk: %s: status %u, expected %u", what, st, want);
}

static bool vector_pending(struct vblk *b, unsigned v)
{
	return mmio_read32(b->pci.msix_pba + 4 * (v / 32)) >> (v % 32) & 1;
}

/* Mask (function-wide, then this CPU's queue's vector alone), complete
 * one read on that queue, see no interrupt and the pending bit; unmask,
 * see the interrupt. */
static void msix_masking(struct vblk *b, unsigned cpu, unsigned q)
{
	volatile uint64_t *cnt = &pcpu[cpu].blk_count;
	uint64_t vctl = b->pci.msix_table + 16 * q + 12;

	for (int mode = 0; mode < 2; mode++) {
		const char *what = mode ? "vector mask" : "function mask";
		uint64_t before, t_end;

		if (mode)
			mmio_write32(vctl, 1);
		else
			pci_cfg_write(b->pci.devfn, b->pci.msix_cap + 2, 2,
				      0xc000);
		delay_us(2000);
		before = *cnt;
		simple(b, q, VIRTIO_BLK_T_IN, 0, VIRTIO_BLK_S_OK, what);
		/* The device publishes the used entry before it signals: give
		 * a preempted completion thread time to set the bit. */
		t_end = rdtsc() + tsc_from_us(2000000);
		while (!vector_pending(b, q) && rdtsc() < t_end)
			delay_us(1000);
		if (!vector_pending(b, q))
			fail("blk: msi-x: %s: vector %u not pending", what, q);
		delay_us(5000);
		if (*cnt != before)
			fail("blk: msi-x: %s: an interrupt came through", what);
		if (mode)
			mmio_write32(vctl, 0);
		else
			pci_cfg_write(b->pci.devfn, b->pci.msix_cap + 2, 2,
				      0x8000);
		if (!wait_u64_ge(cnt, before + 1, 2000000))
			fail("blk: msi-x: %s: no interrupt after unmasking", what);
		if (vector_pending(b, q))
			fail("blk: msi-x: %s: pending bit still set", what);
		say("blk: msi-x: %s held the interrupt (pending bit set); "
		    "unmasking delivered it", what);
	}
}

static void read_only(struct vblk *b, unsigned q)
{
	uint8_t *buf;
	struct vblk_job j = { VIRTIO_BLK_T_OUT, 0, 1 };
	uint8_t st;

	if (!(b->pci.offered >> VIRTIO_BLK_F_RO & 1))
		fail("blk: blkro=1 but the device does not offer "
		     "VIRTIO_BLK_F_RO");
	st = vblk_one(b, q, &j, &buf);
	if (st != VIRTIO_BLK_S_IOERR)
		fail("blk: read-only: write of sector 0 got status %u, "
		     "expected IOERR (1)", st);
	j.type = VIRTIO_BLK_T_IN;
	st = vblk_one(b, q, &j, &buf);
	if (st != VIRTIO_BLK_S_OK)
		fail("blk: read-only: read got status %u", st);
	say("blk: read-only: write refused with IOERR, read ok (sector 0 "
	    "starts %lx)", *(uint64_t *)buf);
}

static void get_id(struct vblk *b, unsigned q)
{
	struct vblk_job j = { VIRTIO_BLK_T_GET_ID, 0, 0 };
	uint8_t *buf;
	char id[21];

	if (vblk_one(b, q, &j, &buf) != VIRTIO_BLK_S_OK)
		fail("blk: GET_ID failed");
	memcpy(id, buf, 20);
	id[20] = 0;
	say("blk: id \"%s\"", id);
}

/* The four passes of one CPU on queue q, over its part of the disk. */
static void io_passes(struct vblk *b, struct blk_pass *p, unsigned cpu,
		      unsigned q, uint64_t base, uint64_t mib)
{
	memset(p, 0, sizeof(*p));
	p->rng = 0x9e3779b97f4a7c15ull ^ cpu;
	p->base = base;
	p->seq_end = base + mib * 2048;
	p->rnd_end = base + 2 * mib * 2048;
	if (p->rnd_end > b->capacity)
		fail("blk: the disk has %lu sectors, cpu %u needs %lu", b->capacity,
		     cpu, p->rnd_end);
	run_pass(b, q, p, "sequential write", "seq-write", VIRTIO_BLK_T_OUT,
		 false, base, p->seq_end);
	run_pass(b, q, p, "random write", "rnd-write", VIRTIO_BLK_T_OUT, true,
		 0, RANDOM_WRITES);
	say("blk: random pass: %u distinct sectors in [%lu, %lu)",
	    count_written(p->seq_end, p->rnd_end), p->seq_end, p->rnd_end);
	if (b->pci.features >> VIRTIO_BLK_F_FLUSH & 1) {
		simple(b, q, VIRTIO_BLK_T_FLUSH, 0, VIRTIO_BLK_S_OK, "flush");
		say("blk: flush ok");
	}
	run_pass(b, q, p, "sequential read", "seq-read", VIRTIO_BLK_T_IN,
		 false, base, p->rnd_end);
	run_pass(b, q, p, "random read", "rnd-read", VIRTIO_BLK_T_IN, true,
		 0, RANDOM_READS);
	if (p->bad)
		fail("blk: %lu of %lu sectors read back wrong", p->bad,
		     p->checked);
	say("blk: verified %lu sectors read back", p->checked);
	say("blk: cpu %u queue %u: %lu requests, %lu KiB in %lu ms: %lu "
	    "requests/s, %lu KiB/s", cpu, q, p->requests, p->bytes >> 10,
	    p->us / 1000, p->us ? p->requests * 1000000 / p->us : 0,
	    p->us ? (p->bytes >> 10) * 1000000 / p->us : 0);
	get_id(b, q);
	if (b->msix && !pcpu[cpu].blk_count)
		fail("blk: MSI-X on, but no interrupt came to cpu %u", cpu);
}

void test_blk(unsigned cpu)
{
	static struct vblk b;
	static struct blk_pass p[MAXCPU];
	static bool io[MAXCPU];
	uint64_t mib = opts.blk_mib ? opts.blk_mib : 2;
	bool all = opts.blk_all, lead = all ? cpu == 0 : cpu == opts.blk_cpu;
	unsigned q;

	if (!all && opts.blk_cpu >= ncpus)
		fail("blkcpu=%lu but only %u cpus", opts.blk_cpu, ncpus);
	if (!all && !lead)
		return;
	if (lead) {
		for (unsigned c = 0; c < ncpus; c++)
			io[c] = all || c == opts.blk_cpu;
		if (all)
			say("blk: I/O from all %u cpus, one queue each", ncpus);
		else
			say("blk: I/O from cpu %u", cpu);
		memset(written, 0, sizeof(written));
		vblk_init(&b, io);
		if (all && b.nq < ncpus)
			fail("blk: blkcpu=all needs a queue per cpu: %u queues "
			     "for %u cpus", b.nq, ncpus);
		if (all && 2 * mib * ncpus * 2048 > MAX_SECTORS)
			fail("blk: blkmib=%lu is too much for %u cpus", mib,
			     ncpus);
	}
	if (all)
		barrier("blk init");
	q = vblk_queue_of(&b, cpu);
	if (opts.blk_ro) {
		if (lead)
			read_only(&b, q);
		return;
	}
	io_passes(&b, &p[cpu], cpu, q, all ? cpu * 2 * mib * 2048 : 0, mib);
	if (all)
		barrier("blk passes");
	if (!lead)
		return;
	if (!b.msix) {
		/* INTx mode: completions raised the ISR's queue bit, and
		 * reading it clears it. */
		uint8_t isr = mmio_read8(b.pci.isr);
		uint8_t again = mmio_read8(b.pci.isr);

		if (!(isr & 1) || again)
			fail("blk: ISR read %x then %x, expected bit 0 then 0",
			     isr, again);
		say("blk: ISR %x after the passes, 0 on the next read", isr);
	} else {
		say("blk: %lu MSI-X interrupts for %lu requests",
		    pcpu[cpu].blk_count, b.q[q].completed);
		msix_masking(&b, cpu, q);
	}
	say("blk: done: %lu requests", b.q[q].completed);
}
