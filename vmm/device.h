/* What a device model may ask of the machine it sits in.  Devices never see
 * the machine object: they get these small sinks, so unit tests can supply
 * their own and the machine builder wires the real ones. */
#ifndef KRG_VMM_DEVICE_H
#define KRG_VMM_DEVICE_H

#include <stdbool.h>
#include <stdint.h>

/* An ISA/GSI interrupt line: fans out to the 8259 pair (gsi < 16) and the
 * IOAPIC pin (ISA IRQ0 lands on IOAPIC pin 2, as the MADT override says). */
struct irq_sink {
	void (*set_level)(void *ctx, unsigned gsi, bool level);
	void *ctx;
};

static inline void irq_sink__set(const struct irq_sink *s, unsigned gsi,
				 bool level)
{
	if (s && s->set_level)
		s->set_level(s->ctx, gsi, level);
}

static inline void irq_sink__pulse(const struct irq_sink *s, unsigned gsi)
{
	irq_sink__set(s, gsi, true);
	irq_sink__set(s, gsi, false);
}

enum machine_request {
	MACHINE_REQ_POWEROFF,   /* ACPI S5, guest asked to power off */
	MACHINE_REQ_RESET,      /* 0xCF9, i8042 pulse, ACPI reset register */
	MACHINE_REQ_DEBUG_EXIT, /* isa-debug-exit: status = (value << 1) | 1 */
	MACHINE_REQ_QUIT,       /* the user typed Ctrl-A x */
};

struct machine_control {
	void (*request)(void *ctx, enum machine_request req, int status);
	void *ctx;
};

static inline void machine_control__request(const struct machine_control *c,
					    enum machine_request req,
					    int status)
{
	if (c && c->request)
		c->request(c->ctx, req, status);
}

#endif
