/* test=powerbtn: the ACPI fixed power button, as a VMM's "power down"
 * (krg-vmm's QMP system_powerdown) presses it.  CPU 0 enables the power
 * button event in PM1_EN, routes the SCI (ISA IRQ 9, level, active high:
 * the MADT's override) through IOAPIC pin 9 and announces that it waits;
 * the press must raise the SCI with PWRBTN_STS set in PM1_STS, which a
 * write of 1 clears.  Then the test passes and the guest powers off as
 * after every pass, which is how the VMM sees that the guest obeyed.
 * PM1 is at krg-vmm's fixed I/O ports (its FADT): not under QEMU, whose
 * multiboot path leaves the PIIX4 PM block unprogrammed. */
#include "user.h"

#define IOAPIC_BASE	0xfec00000ull
#define SCI_PIN		9
#define PM1_STS		0x600
#define PM1_EN		0x602
#define PM1_PWRBTN	0x0100
#define IOAPIC_LEVEL	(1u << 15)
#define IOAPIC_MASKED	(1u << 16)

static void ioapic_write(uint32_t reg, uint32_t v)
{
	mmio_write32(IOAPIC_BASE, reg);
	mmio_write32(IOAPIC_BASE + 0x10, v);
}

void test_powerbtn(unsigned cpu)
{
	struct pcpu *p = &pcpu[0];
	uint16_t sts, after;

	if (cpu != 0)
		return;
	outw(PM1_STS, 0xffff);	/* write-1-to-clear: nothing stale */
	ioapic_write(0x11 + 2 * SCI_PIN, 0);
	ioapic_write(0x10 + 2 * SCI_PIN, IOAPIC_LEVEL | VEC_SCI);
	outw(PM1_EN, PM1_PWRBTN);
	say("powerbtn: armed (PM1_EN power button, SCI on IOAPIC pin %u); "
	    "waiting for the power button", SCI_PIN);
	while (!p->sci_count) {
		watchdog_check("the ACPI power button");
		cpu_relax();
	}
	sts = inw(PM1_STS);
	if (!(sts & PM1_PWRBTN))
		fail("powerbtn: SCI without the power button status (PM1_STS %x)",
		     sts);
	outw(PM1_STS, PM1_PWRBTN);
	after = inw(PM1_STS);
	if (after & PM1_PWRBTN)
		fail("powerbtn: PM1_STS power button status did not clear "
		     "(%x)", after);
	if (inw(PM1_EN) != 0)
		fail("powerbtn: the SCI handler's PM1_EN write did not stick");
	ioapic_write(0x10 + 2 * SCI_PIN, IOAPIC_MASKED | VEC_SCI);
	say("powerbtn: power button pressed (SCI %lu, PM1_STS %x): powering off",
	    p->sci_count, sts);
}
