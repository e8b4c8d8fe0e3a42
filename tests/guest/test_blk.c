/* test=blk: a virtio-blk disk through our own virtio-pci driver (vblk.c).
 * The CPU blkcpu= (default 0) does all the I/O:
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
 * harness can check the image on the host.  blkro=1 instead expects a
 * read-only disk: VIRTIO_BLK_F_RO offered, a write completing with
 * VIRTIO_BLK_S_IOERR, a read with OK. */
#include "user.h"
#include "vblk.h"

#define MAX_SECTORS	(2 * 64ull * 2048)	/* blkmib <= 64: seq + random */
#define RANDOM_WRITES	384
#define RANDOM_READS	256

struct blk_pass {
	uint64_t seq_end;	/* [0, seq_end): written sequentially */
	uint64_t rnd_end;	/* [seq_end, rnd_end): random writes */
	uint64_t pos, count, limit;
	uint32_t type;
	bool random;
	uint64_t rng;
	uint64_t bad, checked;
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
		uint64_t lo = p->type == VIRTIO_BLK_T_OUT ? p->seq_end : 0;
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

static void run_pass(struct vblk *b, struct blk_pass *p, const char *what,
		     uint32_t type, bool random, uint64_t from, uint64_t limit)
{
	struct vblk_ops ops = { next_job, job_done, p };
	uint64_t t0 = rdtsc(), n0 = b->completed;

	p->type = type;
	p->random = random;
	p->pos = from;
	p->count = random ? 0 : from;
	p->limit = limit;
	if (!random && from >= limit)
		return;
	vblk_run(b, &ops);
	say("blk: %s: %lu requests in %lu ms", what, b->completed - n0,
	    tsc_to_us(rdtsc() - t0) / 1000);
}

static unsigned count_written(uint64_t from, uint64_t to)
{
	unsigned n = 0;

	for (uint64_t s = from; s < to; s++)
		n += is_written(s);
	return n;
}

static void simple(struct vblk *b, uint32_t type, uint64_t sector,
		   uint8_t want, const char *what)
{
	struct vblk_job j = { type, sector, type == VIRTIO_BLK_T_FLUSH ? 0 : 1 };
	uint8_t st = vblk_one(b, 0, &j, NULL);

	if (st != want)
		fail("blk: %s: status %u, expected %u", what, st, want);
}

/* Mask (function-wide, then vector 0 alone), complete one read on queue
 * 0, see no interrupt and the pending bit; unmask, see the interrupt. */
static void msix_masking(struct vblk *b, unsigned cpu)
{
	volatile uint64_t *cnt = &pcpu[cpu].blk_count;

	for (int mode = 0; mode < 2; mode++) {
		const char *what = mode ? "vector mask" : "function mask";
		uint64_t before, t_end;

		if (mode)
			mmio_write32(b->msix_table + 12, 1);
		else
			pci_cfg_write(b->devfn, b->msix_cap + 2, 2, 0xc000);
		delay_us(2000);
		before = *cnt;
		simple(b, VIRTIO_BLK_T_IN, 0, VIRTIO_BLK_S_OK, what);
		/* The device publishes the used entry before it signals: give
		 * a preempted completion thread time to set the bit. */
		t_end = rdtsc() + tsc_from_us(2000000);
		while (!(mmio_read32(b->msix_pba) & 1) && rdtsc() < t_end)
			delay_us(1000);
		if (!(mmio_read32(b->msix_pba) & 1))
			fail("blk: msi-x: %s: vector 0 not pending", what);
		delay_us(5000);
		if (*cnt != before)
			fail("blk: msi-x: %s: an interrupt came through", what);
		if (mode)
			mmio_write32(b->msix_table + 12, 0);
		else
			pci_cfg_write(b->devfn, b->msix_cap + 2, 2, 0x8000);
		if (!wait_u64_ge(cnt, before + 1, 2000000))
			fail("blk: msi-x: %s: no interrupt after unmasking", what);
		if (mmio_read32(b->msix_pba) & 1)
			fail("blk: msi-x: %s: pending bit still set", what);
		say("blk: msi-x: %s held the interrupt (pending bit set); "
		    "unmasking delivered it", what);
	}
}

static void read_only(struct vblk *b)
{
	uint8_t *buf;
	struct vblk_job j = { VIRTIO_BLK_T_OUT, 0, 1 };
	uint8_t st;

	if (!(b->offered >> VIRTIO_BLK_F_RO & 1))
		fail("blk: blkro=1 but the device does not offer "
		     "VIRTIO_BLK_F_RO");
	st = vblk_one(b, 0, &j, &buf);
	if (st != VIRTIO_BLK_S_IOERR)
		fail("blk: read-only: write of sector 0 got status %u, "
		     "expected IOERR (1)", st);
	j.type = VIRTIO_BLK_T_IN;
	st = vblk_one(b, 0, &j, &buf);
	if (st != VIRTIO_BLK_S_OK)
		fail("blk: read-only: read got status %u", st);
	say("blk: read-only: write refused with IOERR, read ok (sector 0 "
	    "starts %lx)", *(uint64_t *)buf);
}

static void get_id(struct vblk *b)
{
	struct vblk_job j = { VIRTIO_BLK_T_GET_ID, 0, 0 };
	uint8_t *buf;
	char id[21];

	if (vblk_one(b, 0, &j, &buf) != VIRTIO_BLK_S_OK)
		fail("blk: GET_ID failed");
	memcpy(id, buf, 20);
	id[20] = 0;
	say("blk: id \"%s\"", id);
}

void test_blk(unsigned cpu)
{
	static struct vblk b;
	static struct blk_pass p;
	uint64_t mib = opts.blk_mib ? opts.blk_mib : 2;

	if (opts.blk_cpu >= ncpus)
		fail("blkcpu=%lu but only %u cpus", opts.blk_cpu, ncpus);
	if (cpu != opts.blk_cpu)
		return;
	say("blk: I/O from cpu %u", cpu);
	vblk_init(&b, cpu);
	if (opts.blk_ro) {
		read_only(&b);
		return;
	}
	memset(&p, 0, sizeof(p));
	memset(written, 0, sizeof(written));
	p.rng = 0x9e3779b97f4a7c15ull;
	p.seq_end = mib * 2048;
	p.rnd_end = 2 * p.seq_end;
	if (p.rnd_end > b.capacity)
		fail("blk: the disk has %lu sectors, blkmib=%lu needs %lu",
		     b.capacity, mib, p.rnd_end);
	run_pass(&b, &p, "sequential write", VIRTIO_BLK_T_OUT, false, 0,
		 p.seq_end);
	run_pass(&b, &p, "random write", VIRTIO_BLK_T_OUT, true, 0,
		 RANDOM_WRITES);
	say("blk: random pass: %u distinct sectors in [%lu, %lu)",
	    count_written(p.seq_end, p.rnd_end), p.seq_end, p.rnd_end);
	if (b.features >> VIRTIO_BLK_F_FLUSH & 1) {
		simple(&b, VIRTIO_BLK_T_FLUSH, 0, VIRTIO_BLK_S_OK, "flush");
		say("blk: flush ok");
	}
	run_pass(&b, &p, "sequential read", VIRTIO_BLK_T_IN, false, 0,
		 p.rnd_end);
	run_pass(&b, &p, "random read", VIRTIO_BLK_T_IN, true, 0,
		 RANDOM_READS);
	if (p.bad)
		fail("blk: %lu of %lu sectors read back wrong", p.bad,
		     p.checked);
	say("blk: verified %lu sectors read back", p.checked);
	get_id(&b);
	if (!b.msix) {
		/* INTx mode: completions raised the ISR's queue bit, and
		 * reading it clears it. */
		uint8_t isr = mmio_read8(b.isr), again = mmio_read8(b.isr);

		if (!(isr & 1) || again)
			fail("blk: ISR read %x then %x, expected bit 0 then 0",
			     isr, again);
		say("blk: ISR %x after the passes, 0 on the next read", isr);
	} else {
		if (!pcpu[cpu].blk_count)
			fail("blk: MSI-X on, but no interrupt came");
		say("blk: %lu MSI-X interrupts for %lu requests",
		    pcpu[cpu].blk_count, b.completed);
		msix_masking(&b, cpu);
	}
	say("blk: done: %lu requests", b.completed);
}
