/* KVM's paravirtual EOI on the userspace LAPIC (see lapic.h).  Linux ends
 * most interrupts by clearing a bit in its own memory instead of writing
 * the EOI register; here that saves a return to userspace per interrupt,
 * the dearest part of an interrupt on hosts like PVM. */
#include "vcpu/lapic_priv.h"

uint64_t lapic__pv_eoi_msr(struct lapic *l)
{
	uint64_t v;

	pthread_mutex_lock(&l->lock);
	v = l->s.pv_eoi_msr;
	pthread_mutex_unlock(&l->lock);
	return v;
}

void lapic__set_pv_eoi_msr(struct lapic *l, uint64_t val)
{
	pthread_mutex_lock(&l->lock);
	l->s.pv_eoi_msr = val;
	pthread_mutex_unlock(&l->lock);
}

bool lapic__pv_eoi_arm(struct lapic *l)
{
	bool armed = false;
	int v;

	pthread_mutex_lock(&l->lock);
	if ((l->s.pv_eoi_msr & KVM_PV_EOI_MSR_ENABLED) &&
	    lapic_core__highest(l->s.irr) < 0 &&
	    (v = lapic_core__highest(l->s.isr)) >= 0 &&
	    !lapic_bit_test(l->s.tmr, (unsigned)v))
		armed = true;
	l->pv_eoi_armed = armed;
	pthread_mutex_unlock(&l->lock);
	return armed;
}

void lapic__pv_eoi_disarm(struct lapic *l, bool guest_ended_it)
{
	struct lapic_deferred d = LAPIC_DEFERRED_INIT;

	pthread_mutex_lock(&l->lock);
	if (l->pv_eoi_armed && guest_ended_it) {
		bool had = lapic_core__has_work(l);

		lapic_core__eoi(l, &d);
		lapic_core__update(l, had);
	}
	l->pv_eoi_armed = false;
	pthread_mutex_unlock(&l->lock);
	lapic_core__flush(l, &d);
}
