/* TSC calibration against PIT channel 2, and TSC-based delays.  Runs in
 * user mode: the PIT and port 0x61 are reached with IOPL=3. */
#include "user.h"

#define PIT_HZ		1193182
#define PIT_LATCH	11932		/* 10 ms */
#define CAL_RUNS	5

uint64_t tsc_hz;

/* Channel 2 in mode 0 counts down once with its gate held high by port
 * 0x61 bit 0; its OUT, visible as port 0x61 bit 5, rises at terminal
 * count.  Before the TSC is known the poll loop is bounded by a count.
 * Returns TSC cycles for PIT_LATCH ticks. */
static uint64_t pit_gate_once(uint64_t *polls)
{
	uint64_t t0, t1;

	*polls = 0;
	outb(0x61, (inb(0x61) & ~0x02) | 0x01);
	outb(0x43, 0xb0);	/* channel 2, lobyte/hibyte, mode 0, binary */
	outb(0x42, PIT_LATCH & 0xff);
	outb(0x42, PIT_LATCH >> 8);
	t0 = rdtsc();
	while (!(inb(0x61) & 0x20)) {
		if (++*polls > 50000000)
			fail("tsc calibration: PIT channel 2 OUT (port 0x61 bit 5) never rose");
	}
	t1 = rdtsc();
	return t1 - t0;
}

/* Median of a few runs: a vCPU preempted between programming the PIT and
 * the first rdtsc, or between OUT rising and the last one, skews a run
 * either way (seen on loaded hosts). */
void tsc_calibrate(void)
{
	int64_t runs[CAL_RUNS];
	uint64_t polls, cycles;

	for (unsigned i = 0; i < CAL_RUNS; i++) {
		runs[i] = (int64_t)pit_gate_once(&polls);
		if (opts.verbose)
			say("tsc: run %u: %ld cycles, %lu polls", i, runs[i], polls);
	}
	sort_i64(runs, CAL_RUNS);
	cycles = (uint64_t)runs[CAL_RUNS / 2];
	tsc_hz = cycles * PIT_HZ / PIT_LATCH;
	if (tsc_hz < 50000000ull || tsc_hz > 10000000000ull)
		fail("tsc calibration: implausible TSC frequency %lu Hz (%lu cycles, %lu polls)",
		     tsc_hz, cycles, polls);
	say("tsc: %lu.%03lu MHz (PIT channel 2, median of %u x 10 ms, spread %lu.%03lu%%, "
	    "%lu polls)", tsc_hz / 1000000, tsc_hz / 1000 % 1000, CAL_RUNS,
	    (uint64_t)(runs[CAL_RUNS - 1] - runs[0]) * 100 / cycles,
	    (uint64_t)(runs[CAL_RUNS - 1] - runs[0]) * 100000 / cycles % 1000, polls);
}

uint64_t tsc_from_us(uint64_t us)
{
	return us / 1000000 * tsc_hz + us % 1000000 * tsc_hz / 1000000;
}

uint64_t tsc_to_ns(uint64_t cycles)
{
	return cycles / tsc_hz * 1000000000ull +
	       cycles % tsc_hz * 1000000000ull / tsc_hz;
}

uint64_t tsc_to_us(uint64_t cycles)
{
	return cycles / tsc_hz * 1000000ull + cycles % tsc_hz * 1000000ull / tsc_hz;
}

void delay_us(uint64_t us)
{
	uint64_t end = rdtsc() + tsc_from_us(us);

	while (rdtsc() < end)
		cpu_relax();
}

bool wait_u32_ge(volatile uint32_t *p, uint32_t v, uint64_t us)
{
	uint64_t end = rdtsc() + tsc_from_us(us);

	while (*p < v) {
		if (rdtsc() > end)
			return *p >= v;
		cpu_relax();
	}
	return true;
}

bool wait_u64_ge(volatile uint64_t *p, uint64_t v, uint64_t us)
{
	uint64_t end = rdtsc() + tsc_from_us(us);

	while (*p < v) {
		if (rdtsc() > end)
			return *p >= v;
		cpu_relax();
	}
	return true;
}
