/* Local APIC core: priorities, acceptance of routed messages, LINT pins,
 * EOI, what the vCPU loop injects next, reset and restore.  Register
 * access lives in lapic_regs.c, the timer in lapic_timer.c. */
#include "vcpu/lapic_priv.h"

#include <string.h>

int lapic_core__highest(const uint32_t *bank)
{
	for (int i = 7; i >= 0; i--)
		if (bank[i])
			return i * 32 + 31 - __builtin_clz(bank[i]);
	return -1;
}

uint32_t lapic_core__ppr(const struct lapic *l)
{
	uint32_t tpr = l->s.tpr & 0xFF;
	int isrv = lapic_core__highest(l->s.isr);
	uint32_t isr_class = isrv < 0 ? 0 : ((uint32_t)isrv & 0xF0);

	return (tpr & 0xF0) >= isr_class ? tpr : isr_class;
}

/* SDM's arbitration priority (P6 family definition). */
uint32_t lapic_core__apr(const struct lapic *l)
{
	uint32_t tpr = l->s.tpr & 0xFF;
	int irrv = lapic_core__highest(l->s.irr);
	int isrv = lapic_core__highest(l->s.isr);
	uint32_t irr_class = irrv < 0 ? 0 : ((uint32_t)irrv & 0xF0);
	uint32_t isr_class = isrv < 0 ? 0 : ((uint32_t)isrv & 0xF0);
	uint32_t apr;

	if ((tpr & 0xF0) >= irr_class && (tpr & 0xF0) > isr_class)
		return tpr;
	apr = tpr & 0xF0;
	if (isr_class > apr)
		apr = isr_class;
	if (irr_class > apr)
		apr = irr_class;
	return apr;
}

void lapic_core__accept_fixed(struct lapic *l, uint8_t vector, bool level)
{
	if (vector < 16) {
		lapic_core__error(l, LAPIC_ESR_RECV_ILLEGAL);
		return;
	}
	lapic_bit_set(l->s.irr, vector);
	if (level)
		lapic_bit_set(l->s.tmr, vector);
	else
		lapic_bit_clear(l->s.tmr, vector);
}

void lapic_core__error(struct lapic *l, uint32_t esr_bits)
{
	uint32_t lvt = l->s.lvt_error;

	l->s.esr_pending |= esr_bits;
	/* An illegal error vector would raise another error: drop it. */
	if (!(lvt & LAPIC_LVT_MASKED) && (lvt & 0xFF) >= 16) {
		lapic_bit_set(l->s.irr, lvt & 0xFF);
		lapic_bit_clear(l->s.tmr, lvt & 0xFF);
	}
}

static uint32_t *lint_lvt(struct lapic *l, int pin)
{
	return pin ? &l->s.lvt_lint1 : &l->s.lvt_lint0;
}

static bool lint_level(const struct lapic *l, int pin)
{
	return pin ? l->s.lint1_level : l->s.lint0_level;
}

/* A LINT pin changed (or must be re-evaluated, old = false).  The input
 * polarity bit is kept but not applied: the 8259's INTR is active-high
 * whatever the guest writes (KVM does the same). */
static void lint_change(struct lapic *l, int pin, bool old, bool level)
{
	uint32_t *lvt = lint_lvt(l, pin);
	bool rising = !old && level;

	if (!lapic_hw_enabled(l)) {
		/* Without an APIC, LINT1 is the NMI pin (LINT0 is INTR, see
		 * lint0_extint()). */
		if (pin == 1 && rising)
			l->s.nmi_pending = 1;
		return;
	}
	if (*lvt & LAPIC_LVT_MASKED)
		return;
	switch ((*lvt >> 8) & 7) {
	case APIC_DM_FIXED:
		if (*lvt & LAPIC_LVT_LEVEL) {
			if (level && !(*lvt & LAPIC_LVT_REMOTE_IRR)) {
				*lvt |= LAPIC_LVT_REMOTE_IRR;
				lapic_core__accept_fixed(l, *lvt & 0xFF, true);
			}
		} else if (rising) {
			lapic_core__accept_fixed(l, *lvt & 0xFF, false);
		}
		break;
	case APIC_DM_NMI:
		if (rising)
			l->s.nmi_pending = 1;
		break;
	case APIC_DM_INIT:
		if (rising)
			l->s.init_pending = 1;
		break;
	default: /* ExtINT is level-driven (lint0_extint); SMI: no SMM */
		break;
	}
}

static bool lint0_extint(const struct lapic *l)
{
	uint32_t lvt = l->s.lvt_lint0;

	if (!lapic_hw_enabled(l))
		return l->s.lint0_level;
	return !(lvt & LAPIC_LVT_MASKED) &&
	       ((lvt >> 8) & 7) == APIC_DM_EXTINT && l->s.lint0_level;
}

void lapic_core__eoi(struct lapic *l, struct lapic_deferred *d)
{
	int v = lapic_core__highest(l->s.isr);

	if (v < 0)
		return;
	lapic_bit_clear(l->s.isr, v);
	if (!lapic_bit_test(l->s.tmr, v))
		return;
	d->eoi_vector = v;
	for (int pin = 0; pin < 2; pin++) {
		uint32_t *lvt = lint_lvt(l, pin);

		if ((*lvt & LAPIC_LVT_REMOTE_IRR) && (int)(*lvt & 0xFF) == v) {
			*lvt &= ~LAPIC_LVT_REMOTE_IRR;
			/* Still asserted: the level interrupt comes back. */
			if (lint_level(l, pin))
				lint_change(l, pin, false, true);
		}
	}
}

static const uint32_t lvt_lint_writable = 0x0001A7FF;

void lapic_core__write_svr(struct lapic *l, uint32_t val)
{
	bool was = lapic_sw_enabled(l);

	l->s.svr = val & 0x3FF;
	if (was && !lapic_sw_enabled(l)) {
		l->s.lvt_timer |= LAPIC_LVT_MASKED;
		l->s.lvt_thermal |= LAPIC_LVT_MASKED;
		l->s.lvt_perf |= LAPIC_LVT_MASKED;
		l->s.lvt_lint0 |= LAPIC_LVT_MASKED;
		l->s.lvt_lint1 |= LAPIC_LVT_MASKED;
		l->s.lvt_error |= LAPIC_LVT_MASKED;
		l->s.lvt_cmci |= LAPIC_LVT_MASKED;
	}
}

void lapic_core__write_lvt_lint(struct lapic *l, int pin, uint32_t val)
{
	uint32_t *lvt = lint_lvt(l, pin);

	val &= lvt_lint_writable;
	if (!lapic_sw_enabled(l))
		val |= LAPIC_LVT_MASKED;
	/* Remote IRR is read-only and only means something for level. */
	if (val & LAPIC_LVT_LEVEL)
		val |= *lvt & LAPIC_LVT_REMOTE_IRR;
	*lvt = val;
	if ((val & LAPIC_LVT_LEVEL) && lint_level(l, pin))
		lint_change(l, pin, true, true);
}

void lapic_core__reset_regs(struct lapic *l)
{
	struct lapic_state *s = &l->s;
	uint32_t id = s->id;

	lapic_timer__stop(l);
	s->tpr = 0;
	s->ldr = lapic_x2apic(l) ? ((id >> 4) << 16) | (1u << (id & 0xF)) : 0;
	s->dfr = 0xFFFFFFFF;
	s->svr = 0xFF;
	memset(s->isr, 0, sizeof(s->isr));
	memset(s->irr, 0, sizeof(s->irr));
	memset(s->tmr, 0, sizeof(s->tmr));
	s->esr = s->esr_pending = 0;
	s->icr_lo = s->icr_hi = 0;
	s->lvt_timer = s->lvt_thermal = s->lvt_perf = LAPIC_LVT_MASKED;
	s->lvt_lint0 = s->lvt_lint1 = LAPIC_LVT_MASKED;
	s->lvt_error = s->lvt_cmci = LAPIC_LVT_MASKED;
	/* Virtual wire on the BSP out of reset (KVM's LINT0 quirk). */
	if (s->apic_base_msr & APIC_BASE_BSP)
		s->lvt_lint0 = APIC_DM_EXTINT << 8;
	s->timer_icr = s->timer_dcr = 0;
	s->extint_pending = 0;
	s->pv_eoi_msr = 0;
}

static void compute_addr(const struct lapic *l, struct apic_addr *a)
{
	memset(a, 0, sizeof(*a));
	a->apic_id = l->s.id;
	a->ldr = l->s.ldr;
	a->dfr_flat = (l->s.dfr >> 28) == 0xF;
	a->x2apic = lapic_x2apic(l);
	if (lapic_hw_enabled(l))
		a->enabled = APIC_ADDR_HW_ENABLED |
			     (lapic_sw_enabled(l) ? APIC_ADDR_SW_ENABLED : 0);
	a->ppr = (uint8_t)lapic_core__ppr(l);
}

static void publish(struct lapic *l)
{
	struct apic_addr a;

	compute_addr(l, &a);
	if (l->published_valid && !memcmp(&a, &l->published, sizeof(a)))
		return;
	l->published = a;
	l->published_valid = true;
	if (l->env.addr_changed)
		l->env.addr_changed(l->env.ctx, &a);
}

static bool irr_deliverable(const struct lapic *l, int *vector)
{
	int v = lapic_core__highest(l->s.irr);

	if (v < 0 || ((uint32_t)v & 0xF0) <= (lapic_core__ppr(l) & 0xF0))
		return false;
	if (vector)
		*vector = v;
	return true;
}

bool lapic_core__has_work(const struct lapic *l)
{
	return l->s.nmi_pending || l->s.init_pending || l->s.sipi_pending ||
	       l->s.extint_pending || lint0_extint(l) ||
	       irr_deliverable(l, NULL);
}

static void kick_if_work(struct lapic *l)
{
	if ((lapic_core__has_work(l) ||
	     (l->pv_eoi_armed && lapic_core__highest(l->s.irr) >= 0)) &&
	    l->env.kick)
		l->env.kick(l->env.ctx);
}

void lapic_core__update(struct lapic *l, bool had_work)
{
	publish(l);
	if (!had_work)
		kick_if_work(l);
}

void lapic_core__flush(struct lapic *l, const struct lapic_deferred *d)
{
	if (d->send && l->env.send_ipi)
		l->env.send_ipi(l->env.ctx, &d->msg);
	if (d->eoi_vector >= 0 && l->env.eoi_level)
		l->env.eoi_level(l->env.ctx, (uint8_t)d->eoi_vector);
}

void lapic__init(struct lapic *l, uint32_t apic_id, bool bsp,
		 const struct lapic_env *env)
{
	memset(&l->s, 0, sizeof(l->s));
	memset(&l->env, 0, sizeof(l->env));
	if (env)
		l->env = *env;
	pthread_mutex_init(&l->lock, NULL);
	l->vcpu_index = (int32_t)apic_id;
	l->published_valid = false;
	l->s.id = l->s.initial_id = apic_id;
	l->s.version = LAPIC_VERSION;
	l->s.apic_base_msr = LAPIC_DEFAULT_BASE | APIC_BASE_EN |
			     (bsp ? APIC_BASE_BSP : 0);
	pthread_mutex_lock(&l->lock);
	lapic_core__reset_regs(l);
	publish(l);
	pthread_mutex_unlock(&l->lock);
}

void lapic__destroy(struct lapic *l)
{
	pthread_mutex_destroy(&l->lock);
}

void lapic__init_reset(struct lapic *l)
{
	pthread_mutex_lock(&l->lock);
	lapic_core__reset_regs(l);
	lapic_core__update(l, false);
	pthread_mutex_unlock(&l->lock);
}

void lapic__accept(struct lapic *l, const struct apic_msg *msg)
{
	pthread_mutex_lock(&l->lock);
	if (!lapic_hw_enabled(l))
		goto out;
	switch (msg->delivery) {
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		/* A software-disabled LAPIC takes only INIT/NMI/SIPI/SMI. */
		if (lapic_sw_enabled(l))
			lapic_core__accept_fixed(l, msg->vector,
						 msg->trigger_level);
		break;
	case APIC_DM_NMI:
		l->s.nmi_pending = 1;
		break;
	case APIC_DM_INIT:
		/* INIT level de-assert: no effect since the Pentium 4. */
		if (msg->level || !msg->trigger_level)
			l->s.init_pending = 1;
		break;
	case APIC_DM_SIPI:
		l->s.sipi_pending = 1;
		l->s.sipi_vector = msg->vector;
		break;
	case APIC_DM_EXTINT:
		if (lapic_sw_enabled(l))
			l->s.extint_pending = 1;
		break;
	default: /* SMI (no SMM) and reserved modes */
		break;
	}
	kick_if_work(l);
out:
	pthread_mutex_unlock(&l->lock);
}

static void set_lint(struct lapic *l, int pin, bool level)
{
	uint8_t *cur = pin ? &l->s.lint1_level : &l->s.lint0_level;
	bool old;

	pthread_mutex_lock(&l->lock);
	old = *cur;
	*cur = level;
	if (old != level)
		lint_change(l, pin, old, level);
	kick_if_work(l);
	pthread_mutex_unlock(&l->lock);
}

void lapic__set_lint0(struct lapic *l, bool level)
{
	set_lint(l, 0, level);
}

void lapic__set_lint1(struct lapic *l, bool level)
{
	set_lint(l, 1, level);
}

enum lapic_intr_kind lapic__pending_intr(struct lapic *l, int *vector)
{
	enum lapic_intr_kind kind = LAPIC_INTR_NONE;
	int v;

	pthread_mutex_lock(&l->lock);
	lapic_timer__check(l, l->env.now_ns ? l->env.now_ns(l->env.ctx) : 0);
	if (l->s.extint_pending || lint0_extint(l)) {
		kind = LAPIC_INTR_EXTINT;
	} else if (irr_deliverable(l, &v)) {
		kind = LAPIC_INTR_VECTOR;
		if (vector)
			*vector = v;
	}
	pthread_mutex_unlock(&l->lock);
	return kind;
}

void lapic__intr_injected(struct lapic *l, int vector)
{
	if (vector < 0 || vector > 255)
		return;
	pthread_mutex_lock(&l->lock);
	if (lapic_bit_test(l->s.irr, (unsigned)vector)) {
		lapic_bit_clear(l->s.irr, (unsigned)vector);
		lapic_bit_set(l->s.isr, (unsigned)vector);
		publish(l);
	}
	pthread_mutex_unlock(&l->lock);
}

void lapic__extint_acked(struct lapic *l)
{
	pthread_mutex_lock(&l->lock);
	l->s.extint_pending = 0;
	pthread_mutex_unlock(&l->lock);
}

struct lapic_events lapic__take_events(struct lapic *l)
{
	struct lapic_events ev;

	pthread_mutex_lock(&l->lock);
	ev.nmi = l->s.nmi_pending;
	ev.init = l->s.init_pending;
	ev.sipi = l->s.sipi_pending;
	ev.sipi_vector = l->s.sipi_vector;
	l->s.nmi_pending = l->s.init_pending = l->s.sipi_pending = 0;
	pthread_mutex_unlock(&l->lock);
	return ev;
}

bool lapic__has_work(struct lapic *l)
{
	bool work;

	pthread_mutex_lock(&l->lock);
	lapic_timer__check(l, l->env.now_ns ? l->env.now_ns(l->env.ctx) : 0);
	work = lapic_core__has_work(l);
	pthread_mutex_unlock(&l->lock);
	return work;
}

bool lapic__has_events(struct lapic *l)
{
	bool ev;

	pthread_mutex_lock(&l->lock);
	ev = l->s.nmi_pending || l->s.init_pending || l->s.sipi_pending;
	pthread_mutex_unlock(&l->lock);
	return ev;
}

uint64_t lapic__get_cr8(struct lapic *l)
{
	uint64_t cr8;

	pthread_mutex_lock(&l->lock);
	cr8 = (l->s.tpr >> 4) & 0xF;
	pthread_mutex_unlock(&l->lock);
	return cr8;
}

void lapic__set_cr8(struct lapic *l, uint64_t cr8)
{
	uint32_t tpr = (uint32_t)(cr8 & 0xF) << 4;

	pthread_mutex_lock(&l->lock);
	if (l->s.tpr != tpr) {
		bool had = lapic_core__has_work(l);

		l->s.tpr = tpr;
		lapic_core__update(l, had);
	}
	pthread_mutex_unlock(&l->lock);
}

void lapic__get_addr(struct lapic *l, struct apic_addr *out)
{
	pthread_mutex_lock(&l->lock);
	compute_addr(l, out);
	pthread_mutex_unlock(&l->lock);
}

void lapic__save_state(struct lapic *l, struct lapic_state *out)
{
	uint64_t now = l->env.now_ns ? l->env.now_ns(l->env.ctx) : 0;

	pthread_mutex_lock(&l->lock);
	*out = l->s;
	out->save_ns = now ? now : 1;
	pthread_mutex_unlock(&l->lock);
}

void lapic__post_load(struct lapic *l)
{
	pthread_mutex_lock(&l->lock);
	/* A blob is checksummed, not trusted to be sane: no x2APIC without
	 * the global enable, no stray bits in the timer divider. */
	if (!(l->s.apic_base_msr & APIC_BASE_EN))
		l->s.apic_base_msr &= ~APIC_BASE_EXTD;
	l->s.timer_dcr &= 0xB;
	l->s.version = LAPIC_VERSION;
	lapic_timer__post_load(l);
	l->published_valid = false;
	lapic_core__update(l, false);
	pthread_mutex_unlock(&l->lock);
}
