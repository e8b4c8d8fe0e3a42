/* test=coh-pt: page tables stay coherent across vCPUs.  One CPU changes a
 * mapping (a PTE, or the PDE above it) with a plain user-mode store, the
 * other flushes its TLB the way an OS does after a shootdown (a CR3 reload
 * or INVLPG in kernel mode) and must then see the new mapping.
 *
 * Why it matters across nodes: the hardware (or, with shadow paging, the
 * hypervisor's shadow tables) caches translations; when the page-table page
 * is written on another host, the new bytes arrive by the DSM, and any cache
 * of the old translation on this host must be gone once the guest flushed.
 * A stale translation shows here as the old marker, the exact failure a
 * stock kernel shows as random segmentation faults in user programs.
 *
 * Layout: PDE slot PT_SLOT of pd_low (identity map of the first GiB, in
 * 2 MiB pages) is taken over; it points at one of two page tables whose
 * entry 0 points at one of two data pages.  Each round the writer moves to
 * the next of the four (table, page) states: the PTE and the PDE level
 * change in turn.  Roles swap every round, so both directions are tested. */
#include "user.h"

#define PT_SLOT		448			/* VA 896 MiB: above any test RAM */
#define PT_WINDOW	((uint64_t)PT_SLOT << 21)
#define PT_FLAGS	0x7ull			/* present, writable, user */
#define PT_DEFAULT_ROUNDS 400
#define PT_MARK(page)	(0x6b72672d70740000ull | (page))	/* "krg-pt" */

extern volatile uint64_t pd_low[512];

struct pt_page {
	volatile uint64_t w[512];
} __attribute__((aligned(4096)));

static struct pt_page pt_tables[2];
static struct pt_page pt_data[2];
/* w[0]: the round whose new mapping is written; w[8], w[16]: the round
 * whose old mapping cpu a, b has looked at (one page: the DSM's unit). */
static struct pt_page pt_sync;

static uint64_t pt_entry(const volatile void *p)
{
	return (uint64_t)(uintptr_t)p | PT_FLAGS;
}

/* State s: table s>>1, whose entry 0 maps data page s&1. */
static void pt_set_state(unsigned s)
{
	unsigned t = (s >> 1) & 1, d = s & 1;

	if (pt_tables[t].w[0] != pt_entry(&pt_data[d]))
		pt_tables[t].w[0] = pt_entry(&pt_data[d]);
	if (pd_low[PT_SLOT] != pt_entry(&pt_tables[t]))
		pd_low[PT_SLOT] = pt_entry(&pt_tables[t]);
}

/* The flush a shootdown ends with: CR3 reload or INVLPG, in turn. */
static void pt_flush(uint64_t round)
{
	sys1(SYS_FLUSH_TLB, (round & 2) ? PT_WINDOW : 0);
}

static uint64_t pt_look(void)
{
	return *(volatile uint64_t *)PT_WINDOW;
}

static void pt_wait(volatile uint64_t *word, uint64_t want, const char *what,
		    unsigned partner)
{
	uint64_t deadline = rdtsc() + tsc_from_us(10000000);
	unsigned n = 0;

	while (*word < want) {
		cpu_relax();
		if (++n & 4095)
			continue;
		watchdog_check(what);
		if (rdtsc() > deadline)
			fail("coherence: pt: cpu %u made no progress for 10 s (%s)",
			     partner, what);
	}
}

void test_coh_pt(unsigned cpu)
{
	/* iters= sizes the other coh-* patterns (10^6 by default); each
	 * round here is four kernel calls, so only test=coh-pt takes it. */
	uint64_t rounds = opts.iters && !strncmp(opts.test, "coh-pt", 32)
				  ? opts.iters : PT_DEFAULT_ROUNDS;
	unsigned a = 0, b = ncpus - 1, s = 0;
	uint64_t changed_pde = 0;

	if (ncpus < 2) {
		if (cpu == 0)
			say("coherence: pt: skipped, needs at least 2 cpus (have %u)", ncpus);
		return;
	}
	if (cpu == 0) {
		pt_data[0].w[0] = PT_MARK(0);
		pt_data[1].w[0] = PT_MARK(1);
		pt_sync.w[0] = pt_sync.w[8] = pt_sync.w[16] = 0;
		pt_set_state(0);
	}
	barrier("coh-pt start");
	if (cpu != a && cpu != b) {
		barrier("coh-pt done");
		return;
	}
	volatile uint64_t *looked_mine = &pt_sync.w[cpu == a ? 8 : 16];
	volatile uint64_t *looked_other = &pt_sync.w[cpu == a ? 16 : 8];
	unsigned other = cpu == a ? b : a;

	pt_flush(0);
	for (uint64_t r = 1; r <= rounds; r++) {
		bool writing = (cpu == a) == (r & 1);
		unsigned next = (s + 1) & 3;

		/* Both sides use the old mapping first, so each host has it
		 * cached (in its TLB or in its hypervisor's shadow tables). */
		if (pt_look() != PT_MARK(s & 1))
			fail("coherence: pt: round %llu: cpu %u reads %llx before the change, "
			     "want data page %u", (unsigned long long)r, cpu,
			     (unsigned long long)pt_look(), s & 1);
		*looked_mine = r;
		if (writing) {
			pt_wait(looked_other, r, "coh-pt partner", other);
			pt_set_state(next);
			pt_flush(r);
			pt_sync.w[0] = r;
		} else {
			pt_wait(&pt_sync.w[0], r, "coh-pt writer", other);
			pt_flush(r);
		}
		if (pt_look() != PT_MARK(next & 1))
			fail("coherence: pt: round %llu: cpu %u still reads data page %u "
			     "after cpu %u changed the %s and it flushed its TLB (%s)",
			     (unsigned long long)r, cpu, s & 1, writing ? cpu : other,
			     (s >> 1) != (next >> 1) ? "PDE" : "PTE",
			     (r & 2) ? "invlpg" : "cr3 reload");
		if ((s >> 1) != (next >> 1))
			changed_pde++;
		s = next;
	}
	barrier("coh-pt done");
	if (cpu == 0)
		say("coherence: pt: ok, cpus %u and %u x %llu rounds, %llu PDE and %llu PTE "
		    "changes seen after a TLB flush", a, b, (unsigned long long)rounds,
		    (unsigned long long)changed_pde,
		    (unsigned long long)(rounds - changed_pde));
}
