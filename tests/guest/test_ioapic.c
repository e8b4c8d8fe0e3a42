/* test=ioapic: PIT channel 0 at 1 kHz, its IRQ0 routed through IOAPIC
 * pin 2 (the ISA override every PC has) to the BSP; the interrupt rate
 * must match.  The IOAPIC is reached from user mode like the LAPIC. */
#include "user.h"

#define IOAPIC_BASE	0xfec00000ull
#define IOAPIC_PIN	2
#define PIT_HZ		1193182
#define PIT_RATE	250
#define MEASURE_US	400000
#define ATTEMPTS	3

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

static bool rate_ok(uint64_t hz)
{
	return hz >= PIT_RATE * 9 / 10 && hz <= PIT_RATE * 11 / 10;
}

/* One window of PIT interrupts while spinning in user mode.  As in the
 * LAPIC timer test, ticks that fell into stretches where this vCPU did
 * not run may be lost on a loaded host; only those excuse a low count. */
static bool measure_once(unsigned attempt)
{
	struct pcpu *p = &pcpu[0];
	uint64_t period = tsc_hz / PIT_RATE, lost = 0, c0, t0, t1, prev, n, hz;
	uint64_t want = (uint64_t)PIT_RATE * MEASURE_US / 1000000;

	c0 = p->pit_count;
	t0 = prev = rdtsc();
	do {
		t1 = rdtsc();
		if (t1 - prev > period)
			lost += (t1 - prev) / period;
		prev = t1;
	} while (t1 < t0 + tsc_from_us(MEASURE_US));
	n = p->pit_count - c0;
	hz = (n * tsc_hz + (t1 - t0) / 2) / (t1 - t0);
	say("ioapic: PIT %u Hz programmed, %lu measured (%lu interrupts in %lu ms, up to "
	    "%lu excusable by vCPU gaps)", PIT_RATE, hz, n, tsc_to_us(t1 - t0) / 1000, lost);
	if (hz > PIT_RATE * 11 / 10)
		fail("ioapic: PIT interrupt rate %lu Hz, programmed %u Hz", hz, PIT_RATE);
	if (rate_ok(hz))
		return true;
	if (n * 4 >= want && (n + lost) * 10 >= want * 9) {
		say("ioapic: warning: %lu of %lu PIT interrupts lost while the vCPU was "
		    "not running (host load)", want - n, want);
		return true;
	}
	if (attempt >= ATTEMPTS)
		fail("ioapic: PIT interrupt rate %lu Hz, programmed %u Hz", hz, PIT_RATE);
	say("ioapic: rate off by more than 10%%, measuring again");
	return false;
}

void test_ioapic(unsigned cpu)
{
	struct pcpu *p = &pcpu[0];
	uint32_t ver, pins, latch = (PIT_HZ + PIT_RATE / 2) / PIT_RATE;

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

	if (!wait_u64_ge(&p->pit_count, p->pit_count + 1, 1000000))
		fail("ioapic: no interrupt from PIT channel 0 via IOAPIC pin %u within 1 s",
		     IOAPIC_PIN);
	for (unsigned attempt = 1; !measure_once(attempt); attempt++)
		;
	ioapic_write(0x10 + 2 * IOAPIC_PIN, 0x10000 | VEC_PIT);	/* mask */
	outb(0x43, 0x30);	/* channel 0 back to mode 0: one count, then quiet */
	outb(0x40, 0xff);
	outb(0x40, 0xff);
}
