/* test=migrate: what a vCPU must not notice when the VMM moves it between
 * cluster nodes while it runs (tests/integration/t_migrate.sh moves the
 * vCPUs back and forth during this test):
 *
 *  - its computation: every CPU runs a deterministic user-mode loop (an
 *    array of LCG states stepped and rotated each round, as test=work)
 *    whose digest is checked against the LCG's closed form and printed,
 *    so a run with migrations prints what a run without prints;
 *  - its interrupts: even CPUs run the LAPIC timer periodically, odd
 *    CPUs re-arm a TSC-deadline timer at each tick (falling back to
 *    periodic without TSC-deadline); a tick may be late but never early
 *    (before its TSC deadline), never missing for long, never more than
 *    the elapsed time allows; and every CPU sends IPIs to the next as a
 *    ping-pong (the next one only once the last was counted), so the
 *    counts must match exactly and a lost IPI stalls the sender, which
 *    fails;
 *  - its time: the TSC never goes back on a CPU, and a TSC value another
 *    CPU published is never ahead of this CPU's TSC read afterwards (the
 *    nodes' guest TSCs agree).
 *
 * Prints "migrate: started" once every CPU is in its loop, and per CPU
 * "migrate: cpu N digest 0x...". */
#include "user.h"

#define MIG_SLOTS	2048	/* 16 KiB: whole pages, none shared */
#define MIG_DEFAULT_ROUNDS 4000000
#define CHECK_EVERY	64
#define IPI_GAP_US	200
#define PUBLISH_US	1000	/* cross-CPU TSC check period */
/* Longer than any migration or host hiccup should take. */
#define STALL_US	3000000
#define MSR_TSC_DEADLINE 0x6e0

static uint64_t mig_buf[MAXCPU][MIG_SLOTS] __attribute__((aligned(4096)));
static volatile uint32_t mig_sent[MAXCPU];

/* One page per CPU: a cluster moves pages between nodes. */
static struct {
	volatile uint64_t tsc;
	uint8_t pad[4096 - 8];
} tsc_pub[MAXCPU] __attribute__((aligned(4096)));

struct mig_cpu {
	unsigned cpu, dest;
	bool deadline_mode;
	uint64_t period, deadline, armed_count;
	uint64_t last_tsc, last_tick, max_gap;
	uint64_t next_ipi, ipi_at, next_pub, xchecks;
	uint32_t sent;
};

static uint64_t seed_of(unsigned cpu, unsigned slot)
{
	return (cpu + 7) * 0x9e3779b97f4a7c15ull + slot * 0xd1b54a32d192ed03ull;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static void round_step(uint64_t *a)
{
	uint64_t t = a[0];

	for (unsigned i = 0; i + 1 < MIG_SLOTS; i++)
		a[i] = a[i + 1] * LCG_A + LCG_C;
	a[MIG_SLOTS - 1] = t * LCG_A + LCG_C;
}

static uint64_t tsc_after_load(void)
{
	/* Not before the loads above it: the order the check needs. */
	__asm__ volatile("lfence" ::: "memory");
	return rdtsc();
}

static void arm_deadline(struct mig_cpu *c, uint64_t now)
{
	c->deadline = now + c->period;
	c->armed_count = pcpu[c->cpu].timer_count;
	sys2(SYS_WRMSR, MSR_TSC_DEADLINE, c->deadline);
}

static void timer_on(struct mig_cpu *c, uint64_t lapic_hz)
{
	if (c->deadline_mode) {
		apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_TIMER);
		arm_deadline(c, rdtsc());
	} else {
		apic_write(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
		apic_write(APIC_TMICT, (uint32_t)(lapic_hz / opts.timer_hz));
	}
}

static void timer_off(struct mig_cpu *c)
{
	if (c->deadline_mode)
		sys2(SYS_WRMSR, MSR_TSC_DEADLINE, 0);
	apic_write(APIC_TMICT, 0);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

static void check_time(struct mig_cpu *c, uint64_t t)
{
	unsigned other = c->dest;

	if (t < c->last_tsc)
		fail("migrate: cpu %u: the TSC went back %lu cycles", c->cpu,
		     c->last_tsc - t);
	c->last_tsc = t;
	if (t < c->next_pub)
		return;
	tsc_pub[c->cpu].tsc = t;
	if (other != c->cpu) {
		uint64_t o = tsc_pub[other].tsc, mine = tsc_after_load();

		if (mine < o)
			fail("migrate: cpu %u: its TSC reads %lu cycles behind what "
			     "cpu %u published before", c->cpu, o - mine, other);
		c->xchecks++;
	}
	c->next_pub = t + tsc_from_us(PUBLISH_US);
}

static void check_timer(struct mig_cpu *c, uint64_t t)
{
	struct pcpu *p = &pcpu[c->cpu];
	uint64_t count, stamp, stall = tsc_from_us(STALL_US);

	/* The count, then the stamp of that same tick: the handler writes
	 * the stamp first, so a tick in between shows as a new count (a
	 * page fault between the two reads makes that window wide). */
	do {
		count = p->timer_count;
		stamp = p->timer_tsc;
	} while (p->timer_count != count);
	if (count != c->armed_count) {
		if (stamp > c->last_tick && stamp - c->last_tick > c->max_gap)
			c->max_gap = stamp - c->last_tick;
		c->last_tick = stamp;
		if (c->deadline_mode) {
			if (stamp < c->deadline)
				fail("migrate: cpu %u: TSC-deadline interrupt %lu us "
				     "before its deadline", c->cpu,
				     tsc_to_us(c->deadline - stamp));
			arm_deadline(c, t);
		} else {
			c->armed_count = count;
		}
		return;
	}
	if (c->deadline_mode && t > c->deadline + stall)
		fail("migrate: cpu %u: the TSC-deadline timer did not fire %lu ms "
		     "after its deadline (%lu interrupts so far)", c->cpu,
		     tsc_to_us(t - c->deadline) / 1000, p->timer_count);
	if (!c->deadline_mode && t > c->last_tick + stall)
		fail("migrate: cpu %u: no timer interrupt for %lu ms (%lu so far)",
		     c->cpu, tsc_to_us(t - c->last_tick) / 1000, p->timer_count);
}

static void check_ipi(struct mig_cpu *c, uint64_t t)
{
	uint32_t got = pcpu[c->dest].ipi_cnt[c->cpu];

	if (c->dest == c->cpu)
		return;
	if (got == c->sent) {
		if (t < c->next_ipi)
			return;
		apic_send_ipi(c->dest, (VEC_IPI_BASE + c->cpu) | ICR_ASSERT);
		mig_sent[c->cpu] = ++c->sent;
		c->ipi_at = t;
		c->next_ipi = t + tsc_from_us(IPI_GAP_US);
	} else if (got > c->sent) {
		fail("migrate: cpu %u: cpu %u counted %u IPIs from it, %u were sent",
		     c->cpu, c->dest, got, c->sent);
	} else if (t > c->ipi_at + tsc_from_us(STALL_US)) {
		fail("migrate: cpu %u: IPI %u to cpu %u never arrived (%lu ms)",
		     c->cpu, c->sent, c->dest, tsc_to_us(t - c->ipi_at) / 1000);
	}
}

static uint64_t closed_form(unsigned cpu, uint64_t rounds, const uint64_t *a,
			    unsigned *bad)
{
	uint64_t h = 0xcbf29ce484222325ull;

	*bad = MIG_SLOTS;
	for (unsigned i = 0; i < MIG_SLOTS; i++) {
		uint64_t v = lcg_jump(seed_of(cpu, (unsigned)((i + rounds) %
							       MIG_SLOTS)),
				      rounds);

		if (v != a[i] && *bad == MIG_SLOTS)
			*bad = i;
		h = mix(h, v);
	}
	return h;
}

void test_migrate(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t *a = mig_buf[cpu];
	uint64_t rounds = opts.rounds ? opts.rounds : MIG_DEFAULT_ROUNDS;
	struct mig_cpu c = { .cpu = cpu, .dest = (cpu + 1) % ncpus };
	unsigned src = (cpu + ncpus - 1) % ncpus, bad;
	uint64_t lapic_hz, t0, t1, ticks, ticks_hi, h, want;
	char isr[64];

	c.deadline_mode = (cpu & 1) && has_tsc_deadline;
	c.period = tsc_hz / opts.timer_hz;
	for (unsigned i = 0; i < MIG_SLOTS; i++)
		a[i] = seed_of(cpu, i);
	for (unsigned s = 0; s < MAXCPU; s++)
		p->ipi_cnt[s] = 0;
	mig_sent[cpu] = 0;
	tsc_pub[cpu].tsc = 0;
	lapic_hz = lapic_calibrate(cpu);
	barrier("migrate start");
	if (cpu == 0)
		say("migrate: started: %lu rounds per cpu, timers at %lu Hz (odd cpus "
		    "TSC-deadline: %s), IPI ping-pong to the next cpu", rounds,
		    opts.timer_hz, has_tsc_deadline ? "yes" : "no, periodic");
	t0 = c.last_tsc = c.last_tick = rdtsc();
	timer_on(&c, lapic_hz);
	ticks = p->timer_count;
	c.armed_count = p->timer_count;
	for (uint64_t r = 0; r < rounds; r++) {
		uint64_t t;

		round_step(a);
		if (r % CHECK_EVERY)
			continue;
		t = rdtsc();
		check_time(&c, t);
		check_timer(&c, t);
		check_ipi(&c, t);
	}
	t1 = rdtsc();
	timer_off(&c);
	ticks = p->timer_count - ticks;
	if (lapic_isr_stuck(isr, sizeof(isr)))
		fail("migrate: cpu %u: its LAPIC shows%s in service while no handler "
		     "runs: an interrupt counted as delivered never reached it", cpu,
		     isr);
	if (c.dest != cpu &&
	    !wait_u32_ge(&pcpu[c.dest].ipi_cnt[cpu], c.sent, STALL_US))
		fail("migrate: cpu %u: cpu %u counted %u of the %u IPIs it was sent",
		     cpu, c.dest, pcpu[c.dest].ipi_cnt[cpu], c.sent);
	barrier("migrate done");
	for (unsigned s = 0; s < MAXCPU; s++)
		if (p->ipi_cnt[s] != (s == src && src != cpu ? mig_sent[src] : 0))
			fail("migrate: cpu %u received %u IPIs from cpu %u, %u were sent",
			     cpu, p->ipi_cnt[s], s, s == src ? mig_sent[src] : 0);
	ticks_hi = (t1 - t0) / c.period;
	if (ticks > ticks_hi + ticks_hi / 10 + 3)
		fail("migrate: cpu %u: %lu timer interrupts in %lu ms at %lu Hz", cpu,
		     ticks, tsc_to_us(t1 - t0) / 1000, opts.timer_hz);
	if (!ticks)
		fail("migrate: cpu %u: no timer interrupt at all", cpu);
	say("migrate: cpu %u: %lu rounds in %lu ms; %lu %s timer interrupts (longest "
	    "gap %lu ms); %u IPIs sent to cpu %u and %u received from cpu %u, all "
	    "counted; TSC monotonic, %lu cross-cpu checks", cpu, rounds,
	    tsc_to_us(t1 - t0) / 1000, ticks, c.deadline_mode ? "TSC-deadline" :
	    "periodic", tsc_to_us(c.max_gap) / 1000, c.sent, c.dest,
	    p->ipi_cnt[src], src, c.xchecks);
	h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < MIG_SLOTS; i++)
		h = mix(h, a[i]);
	say("migrate: cpu %u digest 0x%016lx", cpu, h);
	want = closed_form(cpu, rounds, a, &bad);
	if (h != want || bad != MIG_SLOTS)
		fail("migrate: cpu %u: digest %lx, the closed form gives %lx (slot %u "
		     "differs first)", cpu, h, want, bad);
	barrier("migrate digests");
	if (cpu == 0)
		say("migrate: all %u digests match the closed form", ncpus);
}
