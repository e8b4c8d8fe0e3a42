/* test=ipi: every CPU sends fixed IPIs to every CPU in several ways; a
 * sender's vector is VEC_IPI_BASE + its index, so the receiver's handler
 * counts per sender.  A sender waits until the receiver has counted an
 * IPI before sending it the same vector again (a second IPI with the
 * vector still pending in IRR would legitimately merge), so every count
 * must come out exact. */
#include "user.h"

#define PHYS_REPS	3
#define ACK_TIMEOUT_US	5000000

enum ipi_kind {
	IPI_PHYS_KERNEL,	/* physical destination, ICR written by the kernel */
	IPI_PHYS_USER,		/* physical, ICR written from user mode (xAPIC) */
	IPI_ALL_EXCL,		/* shorthand all-excluding-self */
	IPI_ALL_INCL,		/* shorthand all-including-self */
	IPI_LOGICAL,		/* logical destination, one multicast per sender */
	IPI_SELF,		/* shorthand self (and the x2APIC SELF IPI MSR) */
};

static const struct {
	enum ipi_kind kind;
	const char *name;
} rounds[] = {
	{ IPI_PHYS_KERNEL, "physical (kernel ICR write)" },
	{ IPI_PHYS_USER, "physical (user-mode ICR write)" },
	{ IPI_ALL_EXCL, "all-excluding-self" },
	{ IPI_ALL_INCL, "all-including-self" },
	{ IPI_LOGICAL, "logical" },
	{ IPI_SELF, "self" },
};

/* CPUs 0-7 have flat-model logical IDs in xAPIC mode; keep the x2APIC
 * round to the same set (all in cluster 0). */
static unsigned logical_cpus(void)
{
	return ncpus < 8 ? ncpus : 8;
}

static uint32_t expected(enum ipi_kind k, unsigned r, unsigned s)
{
	switch (k) {
	case IPI_PHYS_KERNEL:
		return r != s ? PHYS_REPS : 0;
	case IPI_PHYS_USER:
	case IPI_ALL_EXCL:
		return r != s;
	case IPI_ALL_INCL:
		return 1;
	case IPI_LOGICAL:
		return r != s && r < logical_cpus() && s < logical_cpus();
	case IPI_SELF:
		return r == s ? (use_x2apic ? 2 : 1) : 0;
	}
	return 0;
}

static void await(const char *round, unsigned d, unsigned me, uint32_t want)
{
	if (!wait_u32_ge(&pcpu[d].ipi_cnt[me], want, ACK_TIMEOUT_US))
		fail("ipi: %s: cpu %u received %u of %u IPIs from cpu %u within %u ms",
		     round, d, pcpu[d].ipi_cnt[me], want, me, ACK_TIMEOUT_US / 1000);
}

static void send_round(enum ipi_kind k, const char *name, unsigned me)
{
	uint32_t vec = (VEC_IPI_BASE + me) | ICR_ASSERT;
	uint32_t mask = 0;

	switch (k) {
	case IPI_PHYS_KERNEL:
		for (uint32_t rep = 1; rep <= PHYS_REPS; rep++) {
			for (unsigned d = 0; d < ncpus; d++)
				if (d != me)
					apic_send_ipi_kernel(d, vec);
			for (unsigned d = 0; d < ncpus; d++)
				if (d != me)
					await(name, d, me, rep);
		}
		break;
	case IPI_PHYS_USER:
		for (unsigned d = 0; d < ncpus; d++)
			if (d != me)
				apic_send_ipi(d, vec);
		break;
	case IPI_ALL_EXCL:
		apic_send_ipi(0, vec | ICR_ALL_EXCL);
		break;
	case IPI_ALL_INCL:
		apic_send_ipi(0, vec | ICR_ALL_INCL);
		break;
	case IPI_LOGICAL:
		if (me >= logical_cpus())
			break;
		for (unsigned d = 0; d < logical_cpus(); d++)
			if (d != me)
				mask |= cpu_ldr[d];
		if (mask)
			apic_send_ipi(use_x2apic ? mask : mask >> 24, vec | ICR_LOGICAL);
		break;
	case IPI_SELF:
		apic_send_ipi(0, vec | ICR_SELF);
		await(name, me, me, 1);
		if (use_x2apic)
			apic_write(APIC_SELF_IPI, VEC_IPI_BASE + me);
		break;
	}
	for (unsigned d = 0; d < ncpus; d++)
		await(name, d, me, expected(k, d, me));
}

void test_ipi(unsigned cpu)
{
	volatile uint32_t *row = pcpu[cpu].ipi_cnt;
	uint64_t errors0 = pcpu[cpu].lvt_error;

	for (unsigned i = 0; i < sizeof(rounds) / sizeof(rounds[0]); i++) {
		enum ipi_kind k = rounds[i].kind;
		unsigned total = 0;

		if (k == IPI_PHYS_USER && use_x2apic)
			continue;	/* x2APIC has no user-mode ICR */
		for (unsigned s = 0; s < MAXCPU; s++)
			row[s] = 0;
		barrier("ipi round start");
		send_round(k, rounds[i].name, cpu);
		barrier(rounds[i].name);
		for (unsigned s = 0; s < MAXCPU; s++) {
			uint32_t want = s < ncpus ? expected(k, cpu, s) : 0;

			if (row[s] != want)
				fail("ipi: %s: cpu %u received %u IPIs from cpu %u, expected %u",
				     rounds[i].name, cpu, row[s], s, want);
		}
		barrier("ipi round check");
		if (cpu == 0) {
			for (unsigned r = 0; r < ncpus; r++)
				for (unsigned s = 0; s < ncpus; s++)
					total += expected(k, r, s);
			say("ipi: %s: ok, %u IPIs counted exactly", rounds[i].name, total);
		}
	}
	if (pcpu[cpu].lvt_error != errors0)
		fail("ipi: cpu %u: LVT error interrupt, ESR %x", cpu, apic_read(APIC_ESR));
}
