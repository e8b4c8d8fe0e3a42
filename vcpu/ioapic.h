/* 82093AA-style I/O APIC, 24 pins, version 0x20 (with the EOI register).
 * Register it as MMIO at IOAPIC_DEFAULT_BASE, length IOAPIC_MMIO_SIZE,
 * handler ioapic__mmio, opaque = the struct ioapic.  Messages leave through
 * env.send (the machine wires it to irq_router__deliver). */
#ifndef KRG_VCPU_IOAPIC_H
#define KRG_VCPU_IOAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vcpu/apic.h"

#define IOAPIC_DEFAULT_BASE 0xFEC00000ull
#define IOAPIC_MMIO_SIZE 0x1000ull
#define IOAPIC_NR_PINS 24
#define IOAPIC_VERSION 0x20
#define IOAPIC_STATE_VERSION 1

/* MMIO offsets and indirect register indices. */
#define IOAPIC_IOREGSEL 0x00
#define IOAPIC_IOWIN 0x10
#define IOAPIC_EOI 0x40
#define IOAPIC_REG_ID 0x00
#define IOAPIC_REG_VERSION 0x01
#define IOAPIC_REG_ARB 0x02
#define IOAPIC_REG_REDIR 0x10 /* pin n: 0x10 + 2n (low), 0x11 + 2n (high) */

/* Redirection entry bits. */
#define IOAPIC_RTE_DEST_LOGICAL (1ull << 11)
#define IOAPIC_RTE_ACTIVE_LOW (1ull << 13)
#define IOAPIC_RTE_REMOTE_IRR (1ull << 14)
#define IOAPIC_RTE_LEVEL (1ull << 15)
#define IOAPIC_RTE_MASKED (1ull << 16)

struct ioapic_env {
	void *ctx;
	/* Returns how many LAPICs took the message; a level interrupt that
	 * reached nobody does not set remote IRR. */
	int (*send)(void *ctx, const struct apic_msg *msg);
};

/* Plain, fixed-width, pointer-free: saved and loaded as it is. */
struct ioapic_state {
	uint64_t redir[IOAPIC_NR_PINS];
	uint32_t id;     /* ID register value (ID in bits 27:24) */
	uint32_t ioregsel;
	uint32_t lines;  /* raw input levels, one bit per pin */
	uint32_t pad;
};
_Static_assert(sizeof(struct ioapic_state) == IOAPIC_NR_PINS * 8 + 16,
	       "ioapic_state is a saved format: bump IOAPIC_STATE_VERSION");

struct ioapic {
	struct ioapic_state s;
	pthread_mutex_t lock;
	struct ioapic_env env;
};

/* Reset state: every pin masked, edge, active-high. */
void ioapic__init(struct ioapic *io, uint8_t id, const struct ioapic_env *env);
void ioapic__destroy(struct ioapic *io);
void ioapic__reset(struct ioapic *io);
/* io_handler_fn; opaque is the struct ioapic. */
void ioapic__mmio(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write);
/* The electrical level of a pin (active-low pins invert it). */
void ioapic__set_irq(struct ioapic *io, unsigned pin, bool level);
/* A LAPIC's EOI of a level-triggered vector (broadcast EOI). */
void ioapic__eoi(struct ioapic *io, uint8_t vector);
/* After l->s was overwritten by a restore: re-sends level interrupts
 * that are asserted, unmasked and not waiting for an EOI. */
void ioapic__post_load(struct ioapic *io);

#endif
