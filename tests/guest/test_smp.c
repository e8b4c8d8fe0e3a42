/* test=smp: every CPU came up through INIT/SIPI/SIPI (checked before the
 * tests start) and now runs verifiable user-mode work. */
#include "user.h"

#define LCG_STEPS	(1ull << 24)
#define SIEVE_LIMIT	(1u << 18)
#define PRIMES_BELOW_LIMIT 23000	/* pi(2^18) */

static uint8_t sieve_bits[MAXCPU][SIEVE_LIMIT / 8];
static volatile uint32_t smp_ok[MAXCPU];

void test_smp(unsigned cpu)
{
	uint64_t t0 = rdtsc(), x, want;
	unsigned primes;

	x = lcg_run(cpu + 1, LCG_STEPS);
	want = lcg_jump(cpu + 1, LCG_STEPS);
	if (x != want)
		fail("smp: cpu %u: lcg after %llu steps is %lx, expected %lx", cpu,
		     LCG_STEPS, x, want);
	primes = sieve_count(sieve_bits[cpu], SIEVE_LIMIT);
	if (primes != PRIMES_BELOW_LIMIT)
		fail("smp: cpu %u: counted %u primes below %u, expected %u", cpu,
		     primes, SIEVE_LIMIT, PRIMES_BELOW_LIMIT);
	say("smp: cpu %u: lcg %lx ok (%llu steps), %u primes below %u ok, %lu ms",
	    cpu, x, LCG_STEPS, primes, SIEVE_LIMIT, tsc_to_us(rdtsc() - t0) / 1000);
	smp_ok[cpu] = 1;
	barrier("smp work");
	if (cpu == 0) {
		for (unsigned c = 0; c < ncpus; c++)
			if (!smp_ok[c])
				fail("smp: cpu %u did not report", c);
		say("smp: all %u cpus computed correct results", ncpus);
	}
}
