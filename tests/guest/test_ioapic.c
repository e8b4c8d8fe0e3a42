/* test=ioapic: PIT channel 0 at 1 kHz, its IRQ0 routed through IOAPIC
 * pin 2 (the ISA override every PC has) to the BSP; the interrupt rate
 * must match.  The IOAPIC is reached from user mode like the LAPIC. */
#include "user.h"

#define IOAPIC_BASE	0xfec00000ull
#define IOAPIC_PIN	2
#define PIT_HZ		1193182
#define PIT_RATE	1000
#define MEASURE_US	200000

static uint32_t ioapic_read(uint32_t reg)
{
	mmio_write32(IOAPIC_BASE, reg);
	return mmio_read32(IOAPIC_BASE + 0x10);
}

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void test_ioapic(unsigned cpu)
{
	struct pcpu *p = &pcpu[0];
	uint32_t ver, pins, latch = (PIT_HZ + PIT_RATE / 2) / PIT_RATE;
	uint64_t c0, t0, t1, n, hz;

	if (cpu != 0)
		return;
	ver = ioapic_read(1);
	pins = ((ver >> 16) & 0xff) + 1;
	say("ioapic: id %u, version %x, %u pins", ioapic_read(0) >> 24, ver & 0xff, pins);
	if (pins <= IOAPIC_PIN || pins > 240)
		fail("ioapic: version register %x", ver);

	/* Edge, active high, fixed, physical destination APIC ID 0. */
	ioapic_write(0x11 + 2 * IOAPIC_PIN, 0);
	ioapic_write(0x10 + 2 * IOAPIC_PIN, VEC_PIT);
	if ((ioapic_read(0x10 + 2 * IOAPIC_PIN) & 0x1ffff) != VEC_PIT)
		fail("ioapic: redirection entry reads back %x",
		     ioapic_read(0x10 + 2 * IOAPIC_PIN));
	outb(0x43, 0x34);	/* channel 0, lobyte/hibyte, mode 2 (rate) */
	outb(0x40, latch & 0xff);
	outb(0x40, latch >> 8);

	if (!wait_u64_ge(&p->pit_count, 1, 1000000))
		fail("ioapic: no interrupt from PIT channel 0 via IOAPIC pin %u within 1 s",
		     IOAPIC_PIN);
	c0 = p->pit_count;
	t0 = rdtsc();
	delay_us(MEASURE_US);
	t1 = rdtsc();
	n = p->pit_count - c0;
	ioapic_write(0x10 + 2 * IOAPIC_PIN, 0x10000 | VEC_PIT);	/* mask */
	outb(0x43, 0x30);	/* channel 0 back to mode 0: one count, then quiet */
	outb(0x40, 0xff);
	outb(0x40, 0xff);
	hz = (n * tsc_hz + (t1 - t0) / 2) / (t1 - t0);
	say("ioapic: PIT %u Hz programmed, %lu measured (%lu interrupts in %lu ms)",
	    PIT_RATE, hz, n, tsc_to_us(t1 - t0) / 1000);
	if (hz < PIT_RATE * 9 / 10 || hz > PIT_RATE * 11 / 10)
		fail("ioapic: PIT interrupt rate %lu Hz, programmed %u Hz", hz, PIT_RATE);
}
