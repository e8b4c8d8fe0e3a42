/* test=hltwake: an interrupt that becomes pending while the CPU has IF=0
 * must end the `sti; hlt` that follows (sti's shadow covers hlt, so the
 * interrupt is taken at the hlt, which then completes).  This is every
 * OS's idle loop, and the guest's own barrier relies on it.  The kernel
 * sends itself an IPI with interrupts off (SYS_IPI_HLT), then halts; the
 * APs do this HLT_ROUNDS times while the BSP watches their progress, so a
 * CPU that sleeps for good is reported instead of hanging the test. */
#include "user.h"

#define HLT_ROUNDS	200
#define HLT_TIMEOUT_US	2000000

static volatile uint32_t hlt_done[MAXCPU];

static void hlt_rounds(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];

	for (uint32_t i = 0; i < HLT_ROUNDS; i++) {
		uint64_t w0 = p->wakeups;

		sys1(SYS_IPI_HLT, VEC_WAKE);
		if (!wait_u64_ge(&p->wakeups, w0 + 1, 100000))
			fail("hltwake: cpu %u: the self-IPI sent with IF=0 was never taken",
			     cpu);
		hlt_done[cpu] = i + 1;
	}
}

void test_hltwake(unsigned cpu)
{
	uint64_t end;

	hlt_done[cpu] = 0;
	barrier("hltwake start");
	if (cpu || ncpus == 1) {
		hlt_rounds(cpu);
		return;
	}
	end = rdtsc() + tsc_from_us(HLT_TIMEOUT_US);
	for (unsigned c = 1; c < ncpus; c++) {
		while (hlt_done[c] < HLT_ROUNDS) {
			uint32_t seen = hlt_done[c];

			if (rdtsc() > end)
				fail("hltwake: cpu %u sleeps in sti;hlt although its self-IPI "
				     "(vector %x) became pending before the sti: round %u of "
				     "%u, %lu wake-up IPIs taken", c, VEC_WAKE, seen + 1,
				     HLT_ROUNDS, pcpu[c].wakeups);
			cpu_relax();
		}
	}
	say("hltwake: %u rounds of self-IPI with IF=0, then sti;hlt, on %u cpus: ok",
	    HLT_ROUNDS, ncpus > 1 ? ncpus - 1 : 1);
}
