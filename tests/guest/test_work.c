/* test=work: a long, deterministic user-mode computation on every CPU while
 * interrupts keep arriving (the LAPIC timer in periodic mode, and an IPI
 * to the next CPU every few milliseconds), for the save/restore test: the
 * digest each CPU prints depends only on the computation, so a run that
 * was paused, saved and restored mid-way must print the same lines as an
 * uninterrupted one.  test=spin is the same kind of loop without an end.
 *
 * The computation: WORK_SLOTS 64-bit LCG states in memory; each round
 * steps every state once and rotates the array by one slot.  After R
 * rounds slot i holds the state that started in slot (i + R) mod
 * WORK_SLOTS, stepped R times, which the LCG's O(log R) jump-ahead
 * computes independently of the loop: that is the expected digest. */
#include "user.h"

#define WORK_SLOTS	4096
/* ~1.2 us per round on the project's hosts (guest user mode runs natively,
 * also under PVM): ~1.8 s per CPU when each vCPU has a host core, twice
 * that when two share one. */
#define WORK_DEFAULT_ROUNDS 1500000
#define IPI_PERIOD_US	5000
#define CHECK_EVERY	64	/* rounds between looks at the clock */
#define ACK_TIMEOUT_US	5000000

static uint64_t work_buf[MAXCPU][WORK_SLOTS] __attribute__((aligned(64)));
static volatile uint32_t work_sent[MAXCPU];

static uint64_t slot_seed(unsigned cpu, unsigned slot)
{
	return (cpu + 1) * 0x9e3779b97f4a7c15ull + slot * 0xbf58476d1ce4e5b9ull;
}

static uint64_t mix(uint64_t h, uint64_t v)
{
	h = (h ^ v) * 0x100000001b3ull;
	return h ^ (h >> 29);
}

static void work_round(uint64_t *a)
{
	uint64_t t = a[0];

	for (unsigned i = 0; i + 1 < WORK_SLOTS; i++)
		a[i] = a[i + 1] * LCG_A + LCG_C;
	a[WORK_SLOTS - 1] = t * LCG_A + LCG_C;
}

static void timer_start(unsigned cpu, uint64_t lapic_hz)
{
	apic_write(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
	apic_write(APIC_TMICT, (uint32_t)(lapic_hz / opts.timer_hz));
}

static void timer_stop(void)
{
	apic_write(APIC_TMICT, 0);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

/* Compares the array with the closed form slot by slot; returns the
 * digest of the closed form, and names the first differing slot. */
static uint64_t expected_digest(unsigned cpu, uint64_t rounds, const uint64_t *a,
				unsigned *bad_slot)
{
	uint64_t h = 0xcbf29ce484222325ull;

	*bad_slot = WORK_SLOTS;
	for (unsigned i = 0; i < WORK_SLOTS; i++) {
		unsigned from = (unsigned)((i + rounds) % WORK_SLOTS);
		uint64_t v = lcg_jump(slot_seed(cpu, from), rounds);

		if (v != a[i] && *bad_slot == WORK_SLOTS)
			*bad_slot = i;
		h = mix(h, v);
	}
	return h;
}

void test_work(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t *a = work_buf[cpu];
	uint64_t rounds = opts.rounds ? opts.rounds : WORK_DEFAULT_ROUNDS;
	uint64_t q3 = rounds - rounds / 4, lapic_hz, h, want;
	uint64_t t0, t1, tq = 0, next_ipi, c0, u0, cq = 0, sq = 0;
	uint64_t ipi_period = tsc_from_us(IPI_PERIOD_US);
	uint64_t tick_period = tsc_hz / opts.timer_hz, ticks, ticks_hi;
	unsigned dest = (cpu + 1) % ncpus, src = (cpu + ncpus - 1) % ncpus, bad;
	char isr[64];
	uint32_t vec = (VEC_IPI_BASE + cpu) | ICR_ASSERT, sent = 0;

	for (unsigned i = 0; i < WORK_SLOTS; i++)
		a[i] = slot_seed(cpu, i);
	for (unsigned s = 0; s < MAXCPU; s++)
		p->ipi_cnt[s] = 0;
	work_sent[cpu] = 0;
	lapic_hz = lapic_calibrate(cpu);
	barrier("work start");
	if (cpu == 0)
		say("work: started: %lu rounds over %u slots per cpu, LAPIC timer at %lu Hz, "
		    "an IPI to the next cpu every %u ms", rounds, WORK_SLOTS,
		    opts.timer_hz, IPI_PERIOD_US / 1000);

	timer_start(cpu, lapic_hz);
	c0 = p->timer_count;
	u0 = p->timer_user;
	t0 = rdtsc();
	next_ipi = t0;
	for (uint64_t r = 0; r < rounds; r++) {
		work_round(a);
		if (r == q3) {
			tq = rdtsc();
			cq = p->timer_count;
			sq = sent;
		}
		if (r % CHECK_EVERY)
			continue;
		/* The next IPI goes out only once the last one was counted, so
		 * none can merge with a pending one and the count is exact. */
		t1 = rdtsc();
		if (t1 >= next_ipi && pcpu[dest].ipi_cnt[cpu] == sent) {
			apic_send_ipi(dest, vec);
			work_sent[cpu] = ++sent;
			next_ipi = t1 + ipi_period;
		}
	}
	t1 = rdtsc();
	timer_stop();
	ticks = p->timer_count - c0;
	/* User mode runs no handler: nothing may be in service now. */
	if (lapic_isr_stuck(isr, sizeof(isr)))
		fail("work: cpu %u: its LAPIC shows%s in service while no handler runs "
		     "(%lu timer interrupts): an interrupt the VMM counted as delivered "
		     "never reached the guest, whose handlers all EOI", cpu, isr, ticks);
	if (!wait_u32_ge(&pcpu[dest].ipi_cnt[cpu], sent, ACK_TIMEOUT_US))
		fail("work: cpu %u: cpu %u counted %u of the %u IPIs it was sent", cpu, dest,
		     pcpu[dest].ipi_cnt[cpu], sent);
	barrier("work done");

	say("work: cpu %u: %lu rounds in %lu ms, %lu timer interrupts (%lu in user mode), "
	    "%u IPIs sent to cpu %u, %u received from cpu %u", cpu, rounds,
	    tsc_to_us(t1 - t0) / 1000, ticks, p->timer_user - u0, sent, dest,
	    p->ipi_cnt[src], src);
	for (unsigned s = 0; s < MAXCPU; s++)
		if (p->ipi_cnt[s] != (s == src ? work_sent[src] : 0))
			fail("work: cpu %u received %u IPIs from cpu %u, %u were sent", cpu,
			     p->ipi_cnt[s], s, s == src ? work_sent[src] : 0);
	/* Rates: host load (and a pause for a save) may lose ticks, but
	 * nothing may add any; and interrupts must still be arriving at the
	 * end, after a restore that happened mid-way. */
	ticks_hi = (t1 - t0) / tick_period;
	if (ticks > ticks_hi + ticks_hi / 10 + 3)
		fail("work: cpu %u: %lu timer interrupts in %lu ms at %lu Hz", cpu, ticks,
		     tsc_to_us(t1 - t0) / 1000, opts.timer_hz);
	if (tq && t1 - tq >= 5 * tick_period && c0 + ticks == cq)
		fail("work: cpu %u: no timer interrupt in the last quarter of the work "
		     "(%lu ms)", cpu, tsc_to_us(t1 - tq) / 1000);
	if (tq && t1 - tq >= 5 * ipi_period && sent == sq)
		fail("work: cpu %u: no IPI could be sent in the last quarter of the work "
		     "(%lu ms): the previous one was never counted", cpu,
		     tsc_to_us(t1 - tq) / 1000);

	h = 0xcbf29ce484222325ull;
	for (unsigned i = 0; i < WORK_SLOTS; i++)
		h = mix(h, a[i]);
	say("work: cpu %u digest 0x%016lx", cpu, h);
	want = expected_digest(cpu, rounds, a, &bad);
	if (h != want || bad != WORK_SLOTS)
		fail("work: cpu %u: digest %lx, the closed form gives %lx (slot %u differs "
		     "first)", cpu, h, want, bad);
	barrier("work digests");
	if (cpu == 0)
		say("work: all %u digests match the closed form", ncpus);
}

/* test=spin: every CPU steps an LCG in user mode with its LAPIC timer
 * running, forever; the BSP reports once a second.  For the signal tests:
 * the VMM has to stop vCPUs that are busy in the guest. */
void test_spin(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t x = cpu + 1, next, secs = 0;

	timer_start(cpu, lapic_calibrate(cpu));
	barrier("spin start");
	if (cpu == 0)
		say("spin: running on %u cpus with the LAPIC timer at %lu Hz; never "
		    "finishes", ncpus, opts.timer_hz);
	next = rdtsc() + tsc_hz;
	for (;;) {
		x = lcg_run(x, 1 << 16);
		if (cpu || rdtsc() < next)
			continue;
		next += tsc_hz;
		say("spin: %lu s, %lu timer interrupts on cpu 0, lcg %lx", ++secs,
		    p->timer_count, x);
	}
}
