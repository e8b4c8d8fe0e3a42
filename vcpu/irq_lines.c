/* GSI fan-out to the 8259 pair and the IOAPIC. */
#include "vcpu/irq_lines.h"

#include "vcpu/ioapic.h"
#include "vcpu/pic.h"

void irq_lines__init(struct irq_lines *lines, struct pic *pic,
		     struct ioapic *ioapic, void (*lint0)(void *ctx, bool level),
		     void *lint0_ctx)
{
	lines->pic = pic;
	lines->ioapic = ioapic;
	lines->lint0 = lint0;
	lines->lint0_ctx = lint0_ctx;
}

int irq_lines__ioapic_pin(unsigned gsi)
{
	/* Pin 0 belongs to the 8259's INTR, so the PIT's IRQ0 is on pin 2. */
	if (gsi == 0)
		return 2;
	if (gsi == 2 || gsi >= IOAPIC_NR_PINS)
		return -1;
	return (int)gsi;
}

void irq_lines__set_level(void *ctx, unsigned gsi, bool level)
{
	struct irq_lines *lines = ctx;
	int pin = irq_lines__ioapic_pin(gsi);

	/* ISA IRQ2 is the cascade: no device can own it. */
	if (gsi < 16 && gsi != 2 && lines->pic)
		pic__set_irq(lines->pic, gsi, level);
	if (pin >= 0 && lines->ioapic)
		ioapic__set_irq(lines->ioapic, (unsigned)pin, level);
}

struct irq_sink irq_lines__sink(struct irq_lines *lines)
{
	struct irq_sink sink = {
		.set_level = irq_lines__set_level,
		.ctx = lines,
	};

	return sink;
}

void irq_lines__pic_output(void *ctx, bool level)
{
	struct irq_lines *lines = ctx;

	if (lines->lint0)
		lines->lint0(lines->lint0_ctx, level);
	if (lines->ioapic)
		ioapic__set_irq(lines->ioapic, 0, level);
}
