/* LAPIC access from user mode and AP bring-up.
 *
 * The trick: the page tables map the LAPIC page (0xfee00000) with U/S
 * set, so in xAPIC mode user code reads and writes LAPIC registers,
 * the ICR included, with plain movs - no syscall, and under PVM no
 * emulated kernel code at all: only the MMIO exit itself.  In x2APIC
 * mode the registers are MSRs, which only CPL0 may touch, so the same
 * calls go through SYS_APIC_READ/WRITE/SEND_IPI. */
#include "user.h"

#define LAPIC_BASE	0xfee00000ull

uint32_t cpu_ldr[MAXCPU];

uint32_t apic_read(uint32_t reg)
{
	if (use_x2apic)
		return (uint32_t)sys1(SYS_APIC_READ, reg);
	return mmio_read32(LAPIC_BASE + reg);
}

void apic_write(uint32_t reg, uint32_t v)
{
	if (use_x2apic)
		sys2(SYS_APIC_WRITE, reg, v);
	else
		mmio_write32(LAPIC_BASE + reg, v);
}

void apic_send_ipi(uint32_t dest, uint32_t lo)
{
	if (use_x2apic) {
		sys2(SYS_SEND_IPI, dest, lo);
		return;
	}
	for (unsigned i = 0; i < 1000; i++)
		if (!(mmio_read32(LAPIC_BASE + APIC_ICR_LO) & (1u << 12)))
			break;
	mmio_write32(LAPIC_BASE + APIC_ICR_HI, dest << 24);
	mmio_write32(LAPIC_BASE + APIC_ICR_LO, lo);
}

void apic_send_ipi_kernel(uint32_t dest, uint32_t lo)
{
	sys2(SYS_SEND_IPI, dest, lo);
}

void lapic_setup(unsigned cpu)
{
	uint32_t id, ldr;

	if (use_x2apic && !sys1(SYS_APIC_MODE, 1))
		fail("cpu %u: could not switch the LAPIC to x2APIC mode", cpu);
	apic_write(APIC_SVR, 0x100 | VEC_SPURIOUS);
	apic_write(APIC_TPR, 0);
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
	apic_write(APIC_LVT_ERROR, VEC_LVT_ERROR);
	apic_write(APIC_LVT_LINT0, LVT_MASKED | 0x700);	/* no ExtINT: 8259s unused */
	apic_write(APIC_ESR, 0);

	id = apic_read(APIC_ID);
	if (!use_x2apic)
		id >>= 24;
	if (id != cpu)
		fail("cpu %u: LAPIC ID register reads %u, CPUID says %u", cpu, id, cpu);

	/* Logical IDs: flat model in xAPIC (one bit per CPU, CPUs 0-7);
	 * x2APIC derives LDR from the ID (cluster << 16 | 1 << (id & 15)). */
	if (use_x2apic) {
		ldr = apic_read(APIC_LDR);
		if (ldr != (((cpu >> 4) << 16) | (1u << (cpu & 15))))
			fail("cpu %u: x2APIC LDR reads %x", cpu, ldr);
	} else {
		apic_write(APIC_DFR, 0xffffffff);
		ldr = cpu < 8 ? 1u << (24 + cpu) : 0;
		apic_write(APIC_LDR, ldr);
		if ((apic_read(APIC_LDR) & 0xff000000) != ldr)
			fail("cpu %u: LDR reads %x after writing %x", cpu,
			     apic_read(APIC_LDR), ldr);
		if ((apic_read(APIC_DFR) >> 28) != 0xf)
			fail("cpu %u: DFR reads %x, flat model expected", cpu,
			     apic_read(APIC_DFR));
	}
	cpu_ldr[cpu] = ldr;
	if (!(apic_read(APIC_SVR) & 0x100))
		fail("cpu %u: LAPIC software enable bit does not stick", cpu);
}

extern char ap_tramp_start[], ap_tramp_end[];

/* Classic MP start: INIT (assert, then de-assert in xAPIC mode), 10 ms,
 * SIPI, 200 us, SIPI, each AP addressed by its APIC ID.  All INITs go
 * out first so the 10 ms are waited once, not per AP. */
void start_aps(unsigned n)
{
	uint32_t sipi = 0x600 | ICR_ASSERT | (TRAMPOLINE_ADDR >> 12);

	memcpy((void *)(uint64_t)TRAMPOLINE_ADDR, ap_tramp_start,
	       (size_t)(ap_tramp_end - ap_tramp_start));
	for (unsigned id = 1; id < n; id++) {
		apic_send_ipi(id, 0xc500);	/* INIT, level, assert */
		if (!use_x2apic)
			apic_send_ipi(id, 0x8500);	/* INIT, level, de-assert */
	}
	delay_us(10000);
	for (unsigned id = 1; id < n; id++)
		apic_send_ipi(id, sipi);
	delay_us(200);
	for (unsigned id = 1; id < n; id++)
		apic_send_ipi(id, sipi);
}

unsigned lapic_vectors(const volatile uint32_t bank[8], int skip, char *buf,
		       size_t size)
{
	size_t n = 0;
	unsigned count = 0;

	buf[0] = 0;
	for (int v = 0; v < 256; v++) {
		if (v == skip || !(bank[v / 32] >> (v % 32) & 1))
			continue;
		count++;
		if (n + 6 < size)
			n += fmt(buf + n, size - n, " 0x%02x", (unsigned)v);
	}
	return count;
}

/* Four looks 10 ms apart: an interrupt injected but not yet taken may be
 * in service for a moment; only what stays there counts. */
unsigned lapic_isr_stuck(char *buf, size_t size)
{
	uint32_t isr[8];

	for (unsigned i = 0; i < 8; i++)
		isr[i] = ~0u;
	for (unsigned look = 0; look < 4; look++) {
		if (look)
			delay_us(10000);
		for (unsigned i = 0; i < 8; i++)
			isr[i] &= apic_read(0x100 + 0x10 * i);
	}
	return lapic_vectors(isr, -1, buf, size);
}

void lapic_probe_cpu(unsigned cpu)
{
	struct pcpu *p = &pcpu[cpu];
	uint32_t seen = p->probe_count;
	char isr[64], irr[64];

	apic_send_ipi(cpu, VEC_PROBE | ICR_ASSERT);
	if (!wait_u32_ge(&p->probe_count, seen + 1, 500000)) {
		say("probe: cpu %u did not take a probe IPI (vector %x) within 500 ms "
		    "either: its vCPU does not run or takes no interrupt at all", cpu,
		    VEC_PROBE);
		return;
	}
	lapic_vectors(p->probe_isr, VEC_PROBE, isr, sizeof(isr));
	lapic_vectors(p->probe_irr, -1, irr, sizeof(irr));
	say("probe: cpu %u took a probe IPI: its LAPIC has in service%s, requested%s, "
	    "PPR %x", cpu, isr[0] ? isr : " nothing", irr[0] ? irr : " nothing",
	    p->probe_ppr);
	if (isr[0])
		say("probe: cpu %u runs no handler but for the probe's, so%s stayed in "
		    "service without a handler running: an interrupt the VMM counted as "
		    "delivered never reached the guest (every handler here EOIs), and "
		    "it blocks the vectors of its class and below", cpu, isr);
}
