/* test=timer: the LAPIC timer on every CPU, calibrated against the TSC
 * (never assumed: krg-vmm's LAPIC runs at 1 GHz before the divider, QEMU
 * at whatever it likes).  Periodic rate while user-mode work runs, one
 * one-shot, and TSC-deadline once if CPUID offers it. */
#include "user.h"

#define TIMER_HZ	((unsigned)opts.timer_hz)
#define MEASURE_US	500000
#define ONESHOT_US	10000
#define MAX_INTERVALS	1024
#define PERIODIC_ATTEMPTS 3
/* Later than this is a failure, not host load. */
#define LATE_FAIL_US	200000
#define MSR_TSC_DEADLINE 0x6e0

static uint64_t lapic_hz[MAXCPU];	/* after the divide-by-16 */

#define CAL_RUNS	5
#define CAL_KEEP	3

/* One 10 ms run: LAPIC ticks per second, from the midpoints of the rdtsc
 * brackets around the two LAPIC accesses, so the cost of an access (an
 * exit, or a syscall in x2APIC mode) mostly cancels; *blur is the width
 * of the two brackets, the run's uncertainty.  A vCPU preempted inside a
 * bracket (seen under load: a 17% error failed the rate check) widens it. */
static uint64_t lapic_calibrate_once(unsigned cpu, uint64_t *blur)
{
	uint64_t ta, tb, tc, td, ticks, cycles;
	uint32_t cur;

	apic_write(APIC_TMICT, 0);
	ta = rdtsc();
	apic_write(APIC_TMICT, 0xffffffff);
	tb = rdtsc();
	while (rdtsc() < tb + tsc_from_us(10000))
		cpu_relax();
	tc = rdtsc();
	cur = apic_read(APIC_TMCCT);
	td = rdtsc();
	apic_write(APIC_TMICT, 0);
	ticks = 0xffffffffull - cur;
	cycles = (tc + td) / 2 - (ta + tb) / 2;
	if (!cur || ticks < 100)
		fail("timer: cpu %u: LAPIC timer current count %x after 10 ms", cpu, cur);
	*blur = (tb - ta) + (td - tc);
	return ticks * tsc_hz / cycles;
}

/* The median of the CAL_KEEP runs (of CAL_RUNS) with the narrowest
 * brackets. */
uint64_t lapic_calibrate(unsigned cpu)
{
	int64_t hz[CAL_RUNS], blur[CAL_RUNS], keep[CAL_KEEP];
	uint64_t b, out;

	apic_write(APIC_TDCR, 0x3);	/* divide by 16 */
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	for (unsigned i = 0; i < CAL_RUNS; i++) {
		hz[i] = (int64_t)lapic_calibrate_once(cpu, &b);
		blur[i] = (int64_t)b;
	}
	for (unsigned k = 0; k < CAL_KEEP; k++) {
		unsigned best = 0;

		for (unsigned i = 1; i < CAL_RUNS; i++)
			if (blur[i] < blur[best])
				best = i;
		keep[k] = hz[best];
		blur[best] = INT64_MAX;
	}
	sort_i64(keep, CAL_KEEP);
	out = (uint64_t)keep[CAL_KEEP / 2];
	say("timer: cpu %u: lapic timer %lu.%03lu MHz (divide by 16; median of the %u "
	    "sharpest of %u x 10 ms, spread %lu kHz), tsc %lu.%03lu MHz", cpu,
	    out / 1000000, out / 1000 % 1000, CAL_KEEP, CAL_RUNS,
	    (uint64_t)(keep[CAL_KEEP - 1] - keep[0]) / 1000, tsc_hz / 1000000,
	    tsc_hz / 1000 % 1000);
	return out;
}

static int64_t intervals[MAXCPU][MAX_INTERVALS];

static uint64_t rate_hz(uint64_t n, uint64_t cycles)
{
	return cycles ? (n * tsc_hz + cycles / 2) / cycles : 0;
}

static bool within_10pct(uint64_t hz)
{
	return hz >= TIMER_HZ * 9 / 10 && hz <= TIMER_HZ * 11 / 10;
}

/* One measurement window of the periodic timer while the CPU runs LCG
 * steps in user mode; the LCG result is checked afterwards, so an
 * interrupt that corrupted user state shows.  Returns true if the rate
 * passes.
 *
 * A loaded host loses ticks: QEMU and krg-vmm deliver a periodic tick
 * late when the vCPU or timer thread is not running, and a tick that
 * finds the previous one still pending merges with it.  That lowers the
 * count but not the rate the timer was programmed with, so two things
 * excuse a low count (never a high one): the median interval between
 * the handler's TSC stamps still matches, or the ticks that fell into
 * stretches where this vCPU visibly did not run (gaps longer than a
 * period between the loop's own rdtsc reads) make up the difference. */
static bool periodic_once(unsigned cpu, unsigned attempt)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t c0, u0, t0, t1, prev, n, user, hz, mhz, x = cpu + 7, steps = 0;
	uint64_t last_c, last_t = 0, period = tsc_hz / TIMER_HZ, lost = 0, stolen = 0;
	uint64_t want = (uint64_t)TIMER_HZ * MEASURE_US / 1000000;
	unsigned ni = 0;
	bool ok;

	c0 = last_c = p->timer_count;
	u0 = p->timer_user;
	t0 = prev = rdtsc();
	do {
		uint64_t c = p->timer_count, ts = p->timer_tsc;

		if (c != last_c && c == p->timer_count) {
			if (c == last_c + 1 && last_t && ni < MAX_INTERVALS)
				intervals[cpu][ni++] = (int64_t)(ts - last_t);
			last_c = c;
			last_t = ts;
		}
		x = lcg_run(x, 1024);
		steps += 1024;
		t1 = rdtsc();
		if (t1 - prev > period) {
			lost += (t1 - prev) / period;
			stolen += t1 - prev;
		}
		prev = t1;
	} while (t1 < t0 + tsc_from_us(MEASURE_US));
	n = p->timer_count - c0;
	user = p->timer_user - u0;
	hz = rate_hz(n, t1 - t0);
	sort_i64(intervals[cpu], ni);
	mhz = ni ? rate_hz(1, (uint64_t)intervals[cpu][ni / 2]) : 0;
	say("timer: cpu %u: %u Hz programmed, %lu measured (%lu interrupts in %lu ms, "
	    "%lu in user mode; median interval %lu us; vCPU off for %lu ms in "
	    "gaps over one period)", cpu, TIMER_HZ, hz, n, tsc_to_us(t1 - t0) / 1000,
	    user, ni ? tsc_to_us((uint64_t)intervals[cpu][ni / 2]) : 0,
	    tsc_to_us(stolen) / 1000);
	if (x != lcg_jump(cpu + 7, steps))
		fail("timer: cpu %u: user-mode LCG result wrong after %lu interrupts", cpu, n);
	if (user * 2 < n)
		fail("timer: cpu %u: only %lu of %lu timer interrupts arrived in user mode",
		     cpu, user, n);
	if (hz > TIMER_HZ * 11 / 10)
		fail("timer: cpu %u: periodic rate %lu Hz, programmed %u Hz (10%% allowed)",
		     cpu, hz, TIMER_HZ);
	if (within_10pct(hz))
		return true;
	/* Excusable losses: at most one tick survives a stretch in which
	 * this vCPU did not run, so a gap of g periods may have eaten g. */
	ok = n * 4 >= want &&
	     (within_10pct(mhz) || n * 10 + lost * 10 >= want * 9);
	if (ok)
		say("timer: cpu %u: warning: %lu of %lu ticks lost to late delivery "
		    "(host load), rate itself right", cpu, want > n ? want - n : 0, want);
	else if (attempt < PERIODIC_ATTEMPTS)
		say("timer: cpu %u: rate off by more than 10%%, measuring again", cpu);
	else
		fail("timer: cpu %u: periodic rate %lu Hz (median interval says %lu Hz, "
		     "vCPU off for %lu ms), programmed %u Hz (10%% allowed)", cpu, hz,
		     mhz, tsc_to_us(stolen) / 1000, TIMER_HZ);
	return ok;
}

static void periodic(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];

	apic_write(APIC_LVT_TIMER, LVT_PERIODIC | VEC_TIMER);
	apic_write(APIC_TMICT, (uint32_t)(lapic_hz[cpu] / TIMER_HZ));
	if (!wait_u64_ge(&p->timer_count, p->timer_count + 1, 1000000))
		fail("timer: cpu %u: no periodic interrupt within 1 s", cpu);
	for (unsigned attempt = 1; !periodic_once(cpu, attempt); attempt++)
		;
	apic_write(APIC_TMICT, 0);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

/* Wait for the count to move: APs sleep in hlt (SYS_WAIT rechecks with
 * IF=0), the BSP spins so that a lost interrupt still ends in a report. */
static void wait_tick(unsigned cpu, uint64_t c0, const char *what)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t end = rdtsc() + tsc_from_us(1000000);

	while (p->timer_count == c0) {
		if (rdtsc() > end)
			fail("timer: cpu %u: %s interrupt did not arrive within 1 s", cpu, what);
		if (cpu)
			sys2(SYS_WAIT, (uint64_t)&p->timer_count, c0);
		else
			cpu_relax();
	}
}

static void oneshot(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t c0 = p->timer_count, t0, us;
	uint64_t want = tsc_from_us(ONESHOT_US);

	apic_write(APIC_LVT_TIMER, VEC_TIMER);
	t0 = rdtsc();
	apic_write(APIC_TMICT, (uint32_t)(lapic_hz[cpu] * ONESHOT_US / 1000000));
	wait_tick(cpu, c0, "one-shot");
	us = tsc_to_us(p->timer_tsc - t0);
	say("timer: cpu %u: one-shot %u us, fired after %lu us%s", cpu, ONESHOT_US, us,
	    cpu ? " (hlt)" : "");
	if (p->timer_tsc - t0 < want * 9 / 10 || us > ONESHOT_US + LATE_FAIL_US)
		fail("timer: cpu %u: one-shot of %u us fired after %lu us", cpu,
		     ONESHOT_US, us);
	if (us > ONESHOT_US * 11 / 10 + 5000)
		say("timer: cpu %u: warning: one-shot %lu us late (host load?)", cpu,
		    us - ONESHOT_US);
	delay_us(3 * ONESHOT_US);
	if (p->timer_count != c0 + 1)
		fail("timer: cpu %u: one-shot timer fired %lu times", cpu,
		     p->timer_count - c0);
	if (apic_read(APIC_TMCCT))
		fail("timer: cpu %u: current count %u after the one-shot expired", cpu,
		     apic_read(APIC_TMCCT));
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

static void tsc_deadline(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint64_t c0 = p->timer_count, deadline, late;

	apic_write(APIC_LVT_TIMER, LVT_TSC_DEADLINE | VEC_TIMER);
	deadline = rdtsc() + tsc_from_us(ONESHOT_US);
	sys2(SYS_WRMSR, MSR_TSC_DEADLINE, deadline);
	wait_tick(cpu, c0, "tsc-deadline");
	if (p->timer_tsc < deadline)
		fail("timer: cpu %u: tsc-deadline interrupt %lu us before the deadline",
		     cpu, tsc_to_us(deadline - p->timer_tsc));
	late = tsc_to_us(p->timer_tsc - deadline);
	say("timer: cpu %u: tsc-deadline fired %lu us after the deadline", cpu, late);
	if (late > LATE_FAIL_US)
		fail("timer: cpu %u: tsc-deadline interrupt %lu us late", cpu, late);
	if (late > 5000)
		say("timer: cpu %u: warning: tsc-deadline %lu us late (host load?)", cpu,
		    late);
	delay_us(2 * ONESHOT_US);
	if (p->timer_count != c0 + 1)
		fail("timer: cpu %u: tsc-deadline timer fired %lu times", cpu,
		     p->timer_count - c0);
	if (sys1(SYS_RDMSR, MSR_TSC_DEADLINE))	/* the SDM: cleared on expiry */
		fail("timer: cpu %u: IA32_TSC_DEADLINE reads %lx after it fired", cpu,
		     sys1(SYS_RDMSR, MSR_TSC_DEADLINE));
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

void test_timer(unsigned cpu)
{
	lapic_hz[cpu] = lapic_calibrate(cpu);
	barrier("lapic timer calibration");
	periodic(cpu);
	barrier("periodic timer");
	oneshot(cpu);
	barrier("one-shot timer");
	if (has_tsc_deadline)
		tsc_deadline(cpu);
	else if (cpu == 0)
		say("timer: no tsc-deadline mode (CPUID.1:ECX[24] clear), skipped");
}
