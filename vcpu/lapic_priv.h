/* Internals shared by lapic.c (core: priorities, acceptance, EOI, events),
 * lapic_regs.c (xAPIC page, x2APIC MSRs, APIC_BASE, ICR) and lapic_timer.c.
 * Every function here expects l->lock held, and never calls an env callback
 * that can reach another LAPIC: such work is queued in a lapic_deferred and
 * run by lapic_core__flush() after the lock is dropped. */
#ifndef KRG_VCPU_LAPIC_PRIV_H
#define KRG_VCPU_LAPIC_PRIV_H

#include "vcpu/lapic.h"

struct lapic_deferred {
	bool send;
	struct apic_msg msg;
	int eoi_vector; /* level-triggered EOI to broadcast, -1 = none */
};

#define LAPIC_DEFERRED_INIT { .send = false, .eoi_vector = -1 }

static inline bool lapic_bit_test(const uint32_t *bank, unsigned v)
{
	return bank[(v >> 5) & 7] & (1u << (v & 31));
}

static inline void lapic_bit_set(uint32_t *bank, unsigned v)
{
	bank[(v >> 5) & 7] |= 1u << (v & 31);
}

static inline void lapic_bit_clear(uint32_t *bank, unsigned v)
{
	bank[(v >> 5) & 7] &= ~(1u << (v & 31));
}

static inline bool lapic_hw_enabled(const struct lapic *l)
{
	return l->s.apic_base_msr & APIC_BASE_EN;
}

static inline bool lapic_x2apic(const struct lapic *l)
{
	return (l->s.apic_base_msr & (APIC_BASE_EN | APIC_BASE_EXTD)) ==
	       (APIC_BASE_EN | APIC_BASE_EXTD);
}

static inline bool lapic_sw_enabled(const struct lapic *l)
{
	return l->s.svr & LAPIC_SVR_ENABLE;
}

/* lapic.c */
int lapic_core__highest(const uint32_t *bank); /* -1 when empty */
uint32_t lapic_core__ppr(const struct lapic *l);
uint32_t lapic_core__apr(const struct lapic *l);
void lapic_core__accept_fixed(struct lapic *l, uint8_t vector, bool level);
void lapic_core__error(struct lapic *l, uint32_t esr_bits);
void lapic_core__eoi(struct lapic *l, struct lapic_deferred *d);
void lapic_core__write_svr(struct lapic *l, uint32_t val);
void lapic_core__write_lvt_lint(struct lapic *l, int pin, uint32_t val);
/* Architectural reset of everything but APIC_BASE and the ID. */
void lapic_core__reset_regs(struct lapic *l);
bool lapic_core__has_work(const struct lapic *l);
/* Publishes the address if it changed; kicks the vCPU if work is pending
 * and had_work was false (the vCPU's own register writes pass what
 * lapic_core__has_work() said before, to spare it a kick per exit). */
void lapic_core__update(struct lapic *l, bool had_work);
/* Runs deferred work; l->lock must NOT be held. */
void lapic_core__flush(struct lapic *l, const struct lapic_deferred *d);

/* lapic_timer.c */
unsigned lapic_timer__mode(const struct lapic *l);
void lapic_timer__stop(struct lapic *l);
void lapic_timer__write_lvt(struct lapic *l, uint32_t val);
void lapic_timer__write_icr(struct lapic *l, uint32_t val);
void lapic_timer__write_dcr(struct lapic *l, uint32_t val);
uint32_t lapic_timer__current(struct lapic *l);
void lapic_timer__write_tsc_deadline(struct lapic *l, uint64_t val);
uint64_t lapic_timer__read_tsc_deadline(const struct lapic *l);
/* Fires the timer if its deadline passed; true if it fired. */
bool lapic_timer__check(struct lapic *l, uint64_t now);
/* After a restore: rebase the clock and re-arm the host timer. */
void lapic_timer__post_load(struct lapic *l);

#endif
