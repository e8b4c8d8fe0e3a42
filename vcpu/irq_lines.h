/* The ISA/GSI interrupt lines of the machine: every device raises a GSI
 * through struct irq_sink (vmm/device.h), and the lines fan it out to the
 * 8259 pair (GSI 0-15) and the IOAPIC (ISA IRQ0 -> pin 2, as the MADT
 * interrupt source override says; every other GSI to the same pin).  The
 * 8259's INTR output comes back through irq_lines__pic_output: to the
 * BSP's LINT0 (virtual wire) and IOAPIC pin 0 (ExtINT through the IOAPIC,
 * as on PIIX/ICH chipsets). */
#ifndef KRG_VCPU_IRQ_LINES_H
#define KRG_VCPU_IRQ_LINES_H

#include <stdbool.h>

#include "vmm/device.h"

struct pic;
struct ioapic;

struct irq_lines {
	struct pic *pic;       /* may be NULL */
	struct ioapic *ioapic; /* may be NULL */
	/* The BSP's LINT0 (e.g. a wrapper around lapic__set_lint0). */
	void (*lint0)(void *ctx, bool level);
	void *lint0_ctx;
};

void irq_lines__init(struct irq_lines *lines, struct pic *pic,
		     struct ioapic *ioapic, void (*lint0)(void *ctx, bool level),
		     void *lint0_ctx);
/* The IOAPIC pin a GSI lands on, or -1. */
int irq_lines__ioapic_pin(unsigned gsi);
/* irq_sink.set_level: ctx is the struct irq_lines. */
void irq_lines__set_level(void *ctx, unsigned gsi, bool level);
struct irq_sink irq_lines__sink(struct irq_lines *lines);
/* pic_output_fn for pic__init(): ctx is the struct irq_lines. */
void irq_lines__pic_output(void *ctx, bool level);

#endif
