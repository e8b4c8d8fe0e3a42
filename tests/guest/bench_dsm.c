/* Cluster benchmarks (bench/cluster.sh): what the distributed shared
 * memory costs a guest whose vCPUs run on different nodes.
 *
 *  bench-dsm      vCPU 1 faults on pages homed on vCPU 0's node, one access
 *                 at a time, each timed with rdtsc: reads of pages vCPU 0
 *                 wrote (the page comes over), writes to those pages (an
 *                 upgrade: ownership moves, no data), writes to pages it
 *                 never read (ownership and data), first touches of pages
 *                 its own node homes (one local userfaultfd fault, no
 *                 message: the local floor), and a sequential read stream;
 *                 then vCPU 0 reads back the pages vCPU 1 wrote.
 *  bench-compute  iters= million LCG steps in registers, split evenly over
 *                 the vCPUs, timed between two barriers.
 *  bench-idle     every vCPU sleeps in hlt for iters= seconds with its LAPIC
 *                 timer periodic at hz=; bench-idle-quiet without timers
 *                 (vCPU 0 wakes once, by a TSC deadline).
 *
 * Which node homes which RAM and runs which vCPU is read from the ACPI SRAT
 * krg-vmm gives a cluster guest, never assumed.  Results are
 * "KRG-BENCH <name> <value> cycles" lines in TSC cycles: the guest's own
 * TSC calibration (PIT) is unreliable on a loaded host, the host knows
 * the TSC rate exactly. */
#include "user.h"

#define PAGE		((uint64_t)4096)
#define MIB		((uint64_t)1 << 20)
#define LAT_DEFAULT	1000
#define LAT_MAX		2048
#define STREAM_MAX	8192	/* pages: 32 MiB */
#define STREAM_MIN	1024
#define REMOTE_BASE	(16 * MIB)	/* above the image */
#define PAT_MAGIC	((uint64_t)0x6b72672d64736d00)	/* "krg-dsm" */
#define MSR_TSC_DEADLINE 0x6e0
#define IDLE_DEFAULT_S	20
#define COMPUTE_DEFAULT	2048	/* million LCG steps */
#define COMPUTE_SEED	0x2545f4914f6cdd1dull
#define SRAT_MAX_MEM	16

extern char __bss_end[];

struct flag_page {
	volatile uint64_t w[PAGE / 8];
} __attribute__((aligned(PAGE)));

/* Each in a page of its own, so waiting on one moves nothing else. */
static struct flag_page dsm_done, idle_stop;
static int64_t lat[LAT_MAX];
/* Written once per CPU at the end of a run: sharing pages costs nothing. */
static uint64_t comp_end[MAXCPU], comp_cycles[MAXCPU];

struct mem_aff {
	uint64_t base, len;
	uint32_t dom;
};

struct srat_view {
	int cpu_dom[2];
	unsigned nmem;
	struct mem_aff mem[SRAT_MAX_MEM];
};

struct dsm_plan {
	uint64_t remote, wmiss, stream, local, local_w;
	unsigned n, nstream;
};

static struct dsm_plan plan_dsm;

static inline uint64_t tsc_fenced(void)
{
	uint32_t lo, hi;

	__asm__ volatile("mfence; lfence; rdtsc; lfence" : "=a"(lo), "=d"(hi) : : "memory");
	return ((uint64_t)hi << 32) | lo;
}

static inline volatile uint64_t *page_word(uint64_t base, unsigned i)
{
	return (volatile uint64_t *)(base + i * PAGE);
}

static uint32_t rd32(uint64_t a)
{
	return *(volatile uint32_t *)a;
}

static uint64_t rd64(uint64_t a)
{
	return rd32(a) | (uint64_t)rd32(a + 4) << 32;
}

/* The RSDP in 0xE0000-0xFFFFF, then the XSDT (or RSDT), then the SRAT. */
static uint64_t find_srat(void)
{
	uint64_t rsdp = 0, sdt;
	bool x;

	for (uint64_t a = 0xe0000; a < 0x100000; a += 16)
		if (!memcmp((const void *)a, "RSD PTR ", 8)) {
			rsdp = a;
			break;
		}
	if (!rsdp)
		return 0;
	x = *(volatile uint8_t *)(rsdp + 15) >= 2 && rd64(rsdp + 24);
	sdt = x ? rd64(rsdp + 24) : rd32(rsdp + 16);
	if (!sdt || sdt >= (1ull << 30))
		return 0;
	uint32_t len = rd32(sdt + 4), esz = x ? 8 : 4;

	for (uint32_t off = 36; off + esz <= len; off += esz) {
		uint64_t t = x ? rd64(sdt + off) : rd32(sdt + off);

		if (t && t < (1ull << 30) && !memcmp((const void *)t, "SRAT", 4))
			return t;
	}
	return 0;
}

static void read_srat(struct srat_view *v)
{
	uint64_t s = find_srat();

	v->cpu_dom[0] = v->cpu_dom[1] = -1;
	v->nmem = 0;
	if (!s)
		fail("bench: no ACPI SRAT: run on a cluster (--local-nodes 2)");
	uint32_t len = rd32(s + 4);

	for (uint32_t off = 48; off + 2 <= len;) {
		uint64_t e = s + off;
		uint8_t type = *(volatile uint8_t *)e, elen = *(volatile uint8_t *)(e + 1);

		if (elen < 2 || off + elen > len)
			break;
		if (type == 0 && elen >= 16 && (rd32(e + 4) & 1)) {
			uint8_t id = *(volatile uint8_t *)(e + 3);
			uint32_t dom = *(volatile uint8_t *)(e + 2) |
				       (rd32(e + 8) & 0xffffff00u);

			if (id < 2)
				v->cpu_dom[id] = (int)dom;
		} else if (type == 2 && elen >= 24 && (rd32(e + 12) & 1)) {
			uint32_t id = rd32(e + 8);

			if (id < 2)
				v->cpu_dom[id] = (int)rd32(e + 4);
		} else if (type == 1 && elen >= 40 && (rd32(e + 28) & 1) &&
			   v->nmem < SRAT_MAX_MEM) {
			v->mem[v->nmem++] = (struct mem_aff){ rd64(e + 8), rd64(e + 16),
							       rd32(e + 2) };
		}
		off += elen;
	}
}

/* [a, a + len) lies in one SRAT memory range of domain dom. */
static bool homed_in(const struct srat_view *v, uint64_t a, uint64_t len, int dom)
{
	for (unsigned i = 0; i < v->nmem; i++)
		if ((int)v->mem[i].dom == dom && a >= v->mem[i].base &&
		    a + len <= v->mem[i].base + v->mem[i].len)
			return true;
	return false;
}

static uint64_t dom_end_from(const struct srat_view *v, uint64_t a, int dom)
{
	for (unsigned i = 0; i < v->nmem; i++)
		if ((int)v->mem[i].dom == dom && a >= v->mem[i].base &&
		    a < v->mem[i].base + v->mem[i].len)
			return v->mem[i].base + v->mem[i].len;
	return 0;
}

static uint64_t dom_first(const struct srat_view *v, int dom, uint64_t min_len)
{
	for (unsigned i = 0; i < v->nmem; i++)
		if ((int)v->mem[i].dom == dom && v->mem[i].len >= min_len)
			return v->mem[i].base;
	return 0;
}

/* Regions: remote (read, then upgraded), write-miss and stream in vCPU 0's
 * node above the image; two local regions at the start of vCPU 1's. */
static void plan_regions(struct dsm_plan *p)
{
	struct srat_view v;
	uint64_t n = opts.iters ? opts.iters : LAT_DEFAULT, base, end;

	if (n > LAT_MAX)
		n = LAT_MAX;
	p->n = (unsigned)n;
	read_srat(&v);
	if (v.cpu_dom[0] < 0 || v.cpu_dom[1] < 0 || v.cpu_dom[0] == v.cpu_dom[1])
		fail("bench-dsm: the SRAT puts cpu 0 in domain %d and cpu 1 in %d: "
		     "wants them on two nodes", v.cpu_dom[0], v.cpu_dom[1]);
	base = (uint64_t)__bss_end > REMOTE_BASE ? ((uint64_t)__bss_end + 2 * MIB - 1) &
		~(2 * MIB - 1) : REMOTE_BASE;
	end = dom_end_from(&v, base, v.cpu_dom[0]);
	if (end < base + (2 * n + STREAM_MIN) * PAGE)
		fail("bench-dsm: cpu 0's node homes too little RAM above 0x%lx", base);
	p->remote = base;
	p->wmiss = base + n * PAGE;
	p->stream = base + 2 * n * PAGE;
	p->nstream = (unsigned)((end - p->stream) / PAGE);
	if (p->nstream > STREAM_MAX)
		p->nstream = STREAM_MAX;
	p->local = dom_first(&v, v.cpu_dom[1], 2 * n * PAGE);
	p->local_w = p->local + n * PAGE;
	if (!p->local || p->local >= (1ull << 30) ||
	    !homed_in(&v, p->local, 2 * n * PAGE, v.cpu_dom[1]) ||
	    !homed_in(&v, p->remote, (2 * n + p->nstream) * PAGE, v.cpu_dom[0]))
		fail("bench-dsm: no room for the regions in the SRAT's ranges");
	say("bench-dsm: SRAT: cpu 0 in domain %d, cpu 1 in domain %d; remote pages "
	    "0x%lx-0x%lx (domain %d), local 0x%lx-0x%lx (domain %d), %u per kind, "
	    "%u streamed", v.cpu_dom[0], v.cpu_dom[1], p->remote,
	    p->stream + p->nstream * PAGE, v.cpu_dom[0], p->local,
	    p->local + 2 * n * PAGE, v.cpu_dom[1], p->n, p->nstream);
}

static void report(const char *name, unsigned n)
{
	sort_i64(lat, n);
	say("bench %s: %u accesses, p50 %lu us, p99 %lu us, max %lu us (guest TSC "
	    "calibration)", name, n, tsc_to_us((uint64_t)lat[n / 2]),
	    tsc_to_us((uint64_t)lat[n * 99 / 100]), tsc_to_us((uint64_t)lat[n - 1]));
	emit("KRG-BENCH %s-p50 %ld cycles", name, lat[n / 2]);
	emit("KRG-BENCH %s-p99 %ld cycles", name, lat[n * 99 / 100]);
}

static void timed_reads(uint64_t base, unsigned n, bool check)
{
	unsigned bad = 0;

	for (unsigned i = 0; i < n; i++) {
		volatile uint64_t *w = page_word(base, i);
		uint64_t t0 = tsc_fenced(), v = *w;

		lat[i] = (int64_t)(tsc_fenced() - t0);
		bad += check && v != ((uint64_t)w ^ PAT_MAGIC);
	}
	if (bad)
		fail("bench-dsm: %u of %u pages at 0x%lx read back wrong data", bad, n, base);
}

static void timed_writes(uint64_t base, unsigned n)
{
	for (unsigned i = 0; i < n; i++) {
		volatile uint64_t *w = page_word(base, i);
		uint64_t t0 = tsc_fenced();

		*w = (uint64_t)w ^ PAT_MAGIC ^ 1;
		lat[i] = (int64_t)(tsc_fenced() - t0);
	}
}

static void sleep_on(volatile uint64_t *flag)
{
	uint64_t v;

	while (!(v = *flag))
		sys2(SYS_WAIT, (uint64_t)flag, v);
}

static void wake(volatile uint64_t *flag, unsigned cpu)
{
	__atomic_store_n(flag, 1, __ATOMIC_RELEASE);
	apic_send_ipi(cpu, VEC_WAKE | ICR_ASSERT);
}

static void dsm_cpu1(const struct dsm_plan *p)
{
	uint64_t t0, t1;
	unsigned bad = 0;

	for (unsigned i = 0; i < LAT_MAX; i++)	/* this node owns them now */
		lat[i] = 0;
	timed_reads(p->local, p->n, false);
	report("dsm-local-read", p->n);
	timed_writes(p->local_w, p->n);
	report("dsm-local-write", p->n);
	timed_reads(p->local, p->n, false);
	report("dsm-mapped-read", p->n);
	/* Read-only while the VMM tracks writes (--dsm-track-writes): a
	 * local write-protect fault, the upgrade's floor; else no fault. */
	timed_writes(p->local, p->n);
	report("dsm-local-upgrade", p->n);
	timed_reads(p->remote, p->n, true);
	report("dsm-remote-read", p->n);
	timed_writes(p->remote, p->n);
	report("dsm-remote-upgrade", p->n);
	timed_writes(p->wmiss, p->n);
	report("dsm-remote-write", p->n);
	t0 = tsc_fenced();
	for (unsigned i = 0; i < p->nstream; i++) {
		volatile uint64_t *w = page_word(p->stream, i);

		bad += *w != ((uint64_t)w ^ PAT_MAGIC);
	}
	t1 = tsc_fenced();
	if (bad)
		fail("bench-dsm: stream: %u of %u pages read back wrong data", bad,
		     p->nstream);
	say("bench dsm-stream-read: %u pages in %lu us (guest TSC calibration)",
	    p->nstream, tsc_to_us(t1 - t0));
	emit("KRG-BENCH dsm-stream-read-pages %u pages", p->nstream);
	emit("KRG-BENCH dsm-stream-read-cycles %lu cycles", t1 - t0);
}

void bench_dsm(unsigned cpu)
{
	struct dsm_plan *p = &plan_dsm;

	if (cpu == 0) {
		plan_regions(p);
		dsm_done.w[0] = 0;
		/* bench/cluster.sh attaches its counters to the node processes
		 * meanwhile. */
		delay_us(1000000);
		for (unsigned i = 0; i < 2 * p->n + p->nstream; i++) {
			volatile uint64_t *w = page_word(p->remote, i);

			*w = (uint64_t)w ^ PAT_MAGIC;
		}
	}
	barrier("bench-dsm prepared");
	if (cpu == 1) {
		dsm_cpu1(p);
		wake(&dsm_done.w[0], 0);
	} else if (cpu == 0) {
		sleep_on(&dsm_done.w[0]);
		/* The home takes back pages vCPU 1 holds Modified. */
		timed_reads(p->remote, p->n, false);
		for (unsigned i = 0; i < p->n; i++) {
			volatile uint64_t *w = page_word(p->remote, i);

			if (*w != ((uint64_t)w ^ PAT_MAGIC ^ 1))
				fail("bench-dsm: page 0x%lx: cpu 0 reads %lx, cpu 1 wrote %lx",
				     (uint64_t)w, *w, (uint64_t)w ^ PAT_MAGIC ^ 1);
		}
		report("dsm-home-recall", p->n);
	}
}

void bench_compute(unsigned cpu)
{
	uint64_t total = (opts.iters ? opts.iters : COMPUTE_DEFAULT) * 1000000ull;
	uint64_t from = total * cpu / ncpus, to = total * (cpu + 1) / ncpus;
	uint64_t x = lcg_jump(COMPUTE_SEED, from), t0, t1, wall;

	barrier("bench-compute start");
	t0 = rdtsc();
	x = lcg_run(x, to - from);
	t1 = rdtsc();
	comp_end[cpu] = x;
	comp_cycles[cpu] = t1 - t0;
	barrier("bench-compute done");
	if (cpu)
		return;
	wall = rdtsc() - t0;
	for (unsigned c = 0; c < ncpus; c++) {
		uint64_t want = lcg_jump(COMPUTE_SEED, total * (c + 1) / ncpus);

		if (comp_end[c] != want)
			fail("bench-compute: cpu %u ended at %lx, the jump-ahead says %lx", c,
			     comp_end[c], want);
		say("bench compute: cpu %u: %lu steps in %lu ms (guest TSC calibration)", c,
		    total * (c + 1) / ncpus - total * c / ncpus,
		    tsc_to_us(comp_cycles[c]) / 1000);
	}
	say("bench compute: %lu LCG steps on %u cpus, %lu ms wall, results checked",
	    total, ncpus, tsc_to_us(wall) / 1000);
	emit("KRG-BENCH compute-steps %lu steps", total);
	emit("KRG-BENCH compute-wall %lu cycles", wall);
}

/* One timer interrupt at TSC `end` (a one-shot caps at 2^32 LAPIC ticks,
 * about a minute: the caller re-arms after an early wake-up). */
static void arm_wakeup(uint64_t end, uint64_t lapic_hz)
{
	uint64_t now = rdtsc(), ticks;

	if (has_tsc_deadline) {
		apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_TIMER);
		sys2(SYS_WRMSR, MSR_TSC_DEADLINE, end);
		return;
	}
	ticks = end > now ? tsc_to_us(end - now) * (lapic_hz / 1000) / 1000 + 1 : 1;
	apic_write(APIC_LVT_TIMER, VEC_TIMER);
	apic_write(APIC_TMICT, ticks > 0xffffffffull ? 0xffffffffu : (uint32_t)ticks);
}

static void idle(unsigned cpu, bool timers)
{
	uint64_t secs = opts.iters ? opts.iters : IDLE_DEFAULT_S, lapic_hz = 0;
	uint64_t t0, t1, c0 = pcpu[cpu].timer_count, ticks = 0;

	/* bench-idle-quiet's one wake-up is a one-shot where CPUID has no
	 * TSC deadline (QEMU's TCG). */
	if (timers || (cpu == 0 && !has_tsc_deadline))
		lapic_hz = lapic_calibrate(cpu);
	if (cpu == 0)
		idle_stop.w[0] = 0;
	barrier("bench-idle start");
	if (timers) {
		apic_write(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
		apic_write(APIC_TMICT, (uint32_t)(lapic_hz / opts.timer_hz));
	}
	c0 = pcpu[cpu].timer_count;
	t0 = rdtsc();
	if (cpu == 0) {
		uint64_t end = t0 + secs * tsc_hz;

		say("bench-idle: idling %lu s, LAPIC timers %s", secs,
		    timers ? "periodic" : "off");
		while (rdtsc() < end) {
			if (!timers)
				arm_wakeup(end, lapic_hz);
			sys2(SYS_WAIT, 0, 0);
		}
		t1 = rdtsc();
		__atomic_store_n(&idle_stop.w[0], 1, __ATOMIC_RELEASE);
		if (ncpus > 1)
			apic_send_ipi(0, VEC_WAKE | ICR_ASSERT | ICR_ALL_EXCL);
	} else {
		sleep_on(&idle_stop.w[0]);
		t1 = rdtsc();
	}
	apic_write(APIC_TMICT, 0);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	ticks = pcpu[cpu].timer_count - c0;
	comp_cycles[cpu] = ticks;
	barrier("bench-idle done");
	if (cpu)
		return;
	ticks = 0;
	for (unsigned c = 0; c < ncpus; c++)
		ticks += comp_cycles[c];
	say("bench-idle: done, %lu timer interrupts on %u cpus in %lu ms (guest TSC "
	    "calibration)", ticks, ncpus, tsc_to_us(t1 - t0) / 1000);
	emit("KRG-BENCH idle-cycles %lu cycles", t1 - t0);
	emit("KRG-BENCH idle-timer-irqs %lu interrupts", ticks);
}

void bench_idle(unsigned cpu)
{
	idle(cpu, true);
}

void bench_idle_quiet(unsigned cpu)
{
	idle(cpu, false);
}
