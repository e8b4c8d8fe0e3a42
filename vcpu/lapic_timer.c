/* LAPIC timer: one-shot, periodic and TSC-deadline.  Nothing ticks: the
 * current count is computed from the host clock (env->now_ns) and the time
 * the count was loaded; the host timer (env->timer_arm) only has to wake us
 * at the next expiry.  Times are host CLOCK_MONOTONIC ns and are compared
 * by difference only, so wrap-around of timer_start_ns is harmless. */
#include "vcpu/lapic_priv.h"

#define NS_PER_SEC 1000000000ull
/* Host timers further away than this (~146 years) are not worth arming. */
#define MAX_DELTA_NS (1ull << 62)

static uint64_t now_ns(struct lapic *l)
{
	return l->env.now_ns ? l->env.now_ns(l->env.ctx) : 0;
}

/* When the timer may fire for deadline_ns: no earlier than the minimum
 * gap after the last interrupt. */
static uint64_t not_before(const struct lapic *l, uint64_t deadline_ns)
{
	uint64_t gap_end = l->timer_last_fire_ns + l->timer_min_gap_ns;

	if (deadline_ns && l->timer_min_gap_ns && l->timer_last_fire_ns &&
	    deadline_ns < gap_end)
		return gap_end;
	return deadline_ns;
}

static void arm(struct lapic *l, uint64_t deadline_ns)
{
	if (l->env.timer_arm)
		l->env.timer_arm(l->env.ctx, not_before(l, deadline_ns));
}

unsigned lapic_timer__mode(const struct lapic *l)
{
	unsigned mode = (l->s.lvt_timer >> 17) & 3;

	return mode == 3 ? LAPIC_TIMER_ONESHOT : mode; /* 3 is reserved */
}

/* DCR bits 3,1:0 -> 2, 4, 8, 16, 32, 64, 128, 1. */
static uint64_t divider(const struct lapic *l)
{
	uint32_t v = (l->s.timer_dcr & 3) | ((l->s.timer_dcr & 8) >> 1);

	return 1ull << ((v + 1) & 7);
}

static uint64_t ticks_to_ns(const struct lapic *l, uint64_t ticks)
{
	return (uint64_t)((unsigned __int128)ticks * divider(l) * NS_PER_SEC /
			  LAPIC_BUS_HZ);
}

/* Length of one full count from the initial count down to zero. */
static uint64_t full_ns(const struct lapic *l)
{
	uint64_t ns = ticks_to_ns(l, l->s.timer_icr);

	if (lapic_timer__mode(l) == LAPIC_TIMER_PERIODIC &&
	    ns < LAPIC_MIN_PERIOD_NS)
		ns = LAPIC_MIN_PERIOD_NS;
	return ns;
}

/* Time for the counter to go from count to zero (the period may have been
 * stretched by LAPIC_MIN_PERIOD_NS, so scale rather than convert). */
static uint64_t count_to_ns(const struct lapic *l, uint32_t count)
{
	if (!l->s.timer_icr)
		return 0;
	return (uint64_t)((unsigned __int128)full_ns(l) * count /
			  l->s.timer_icr);
}

void lapic_timer__stop(struct lapic *l)
{
	l->s.timer_start_ns = 0;
	l->s.timer_deadline_ns = 0;
	l->s.tsc_deadline = 0;
	arm(l, 0);
}

static uint32_t current_at(const struct lapic *l, uint64_t now)
{
	uint64_t elapsed, full;

	if (lapic_timer__mode(l) == LAPIC_TIMER_TSC_DEADLINE ||
	    !l->s.timer_icr)
		return 0;
	elapsed = now - l->s.timer_start_ns;
	full = full_ns(l);
	if (lapic_timer__mode(l) == LAPIC_TIMER_PERIODIC) {
		elapsed %= full;
	} else if (!l->s.timer_deadline_ns || elapsed >= full) {
		return 0;
	}
	return l->s.timer_icr -
	       (uint32_t)((unsigned __int128)elapsed * l->s.timer_icr / full);
}

uint32_t lapic_timer__current(struct lapic *l)
{
	return current_at(l, now_ns(l));
}

/* Keep counting from count under new parameters (mode or divider). */
static void restart_from(struct lapic *l, uint64_t now, uint32_t count)
{
	if (!l->s.timer_deadline_ns || !count)
		return;
	l->s.timer_deadline_ns = now + count_to_ns(l, count);
	l->s.timer_start_ns = l->s.timer_deadline_ns - full_ns(l);
	arm(l, l->s.timer_deadline_ns);
}

static void fire(struct lapic *l)
{
	uint32_t lvt = l->s.lvt_timer;

	if (!(lvt & LAPIC_LVT_MASKED))
		lapic_core__accept_fixed(l, lvt & 0xFF, false);
}

bool lapic_timer__check(struct lapic *l, uint64_t now)
{
	uint64_t period, n;

	if (!l->s.timer_deadline_ns || now < not_before(l, l->s.timer_deadline_ns))
		return false;
	l->timer_last_fire_ns = now ? now : 1;
	fire(l);
	switch (lapic_timer__mode(l)) {
	case LAPIC_TIMER_PERIODIC:
		/* Periods missed while the host was late are merged into the
		 * one interrupt, like a guest that could not take them. */
		period = full_ns(l);
		n = (now - l->s.timer_start_ns) / period;
		l->s.timer_deadline_ns = l->s.timer_start_ns + (n + 1) * period;
		arm(l, l->s.timer_deadline_ns);
		break;
	case LAPIC_TIMER_TSC_DEADLINE:
		l->s.tsc_deadline = 0; /* the MSR reads 0 once it fired */
		l->s.timer_deadline_ns = 0;
		break;
	default:
		l->s.timer_deadline_ns = 0;
		break;
	}
	return true;
}

void lapic_timer__write_lvt(struct lapic *l, uint32_t val)
{
	unsigned old_mode = lapic_timer__mode(l);
	uint64_t now = now_ns(l);
	uint32_t count = current_at(l, now);
	unsigned new_mode;

	val &= 0x000700FF;
	if (!lapic_sw_enabled(l))
		val |= LAPIC_LVT_MASKED;
	l->s.lvt_timer = val;
	new_mode = lapic_timer__mode(l);
	if (new_mode == old_mode)
		return;
	if (old_mode == LAPIC_TIMER_TSC_DEADLINE ||
	    new_mode == LAPIC_TIMER_TSC_DEADLINE) {
		/* Entering or leaving TSC-deadline mode disarms the timer. */
		l->s.timer_icr = 0;
		lapic_timer__stop(l);
		return;
	}
	restart_from(l, now, count);
}

void lapic_timer__write_icr(struct lapic *l, uint32_t val)
{
	uint64_t now;

	if (lapic_timer__mode(l) == LAPIC_TIMER_TSC_DEADLINE)
		return;
	l->s.timer_icr = val;
	if (!val) {
		lapic_timer__stop(l);
		return;
	}
	now = now_ns(l);
	l->s.timer_start_ns = now;
	l->s.timer_deadline_ns = now + full_ns(l);
	arm(l, l->s.timer_deadline_ns);
}

void lapic_timer__write_dcr(struct lapic *l, uint32_t val)
{
	uint64_t now = now_ns(l);
	uint32_t count = current_at(l, now);

	l->s.timer_dcr = val & 0xB;
	restart_from(l, now, count);
}

static uint64_t tsc_to_ns(const struct lapic *l, uint64_t delta)
{
	uint64_t hz = l->env.tsc_hz ? l->env.tsc_hz : NS_PER_SEC;
	unsigned __int128 ns = (unsigned __int128)delta * NS_PER_SEC / hz;

	return ns > MAX_DELTA_NS ? MAX_DELTA_NS : (uint64_t)ns;
}

/* Host deadline for tsc_deadline, from the guest's TSC now.  The host
 * clock is read again after the TSC: a thread preempted between the
 * caller's clock read and the TSC read would otherwise get a deadline
 * early by the preemption (late is legal, early is not). */
static void tsc_deadline_to_ns(struct lapic *l, uint64_t now)
{
	uint64_t tsc = l->env.guest_tsc ? l->env.guest_tsc(l->env.ctx) : 0;
	uint64_t delta = l->s.tsc_deadline > tsc ? l->s.tsc_deadline - tsc : 0;
	uint64_t later = now_ns(l);

	if (later > now)
		now = later;

	/* Deadline 0 means "not running": a past deadline fires at now. */
	l->s.timer_deadline_ns = now + tsc_to_ns(l, delta);
	if (!l->s.timer_deadline_ns)
		l->s.timer_deadline_ns = 1;
}

void lapic_timer__write_tsc_deadline(struct lapic *l, uint64_t val)
{
	uint64_t now;

	/* Outside TSC-deadline mode the MSR ignores writes. */
	if (lapic_timer__mode(l) != LAPIC_TIMER_TSC_DEADLINE)
		return;
	if (!val) {
		lapic_timer__stop(l);
		return;
	}
	now = now_ns(l);
	l->s.tsc_deadline = val;
	tsc_deadline_to_ns(l, now);
	if (!lapic_timer__check(l, now))
		arm(l, l->s.timer_deadline_ns);
}

uint64_t lapic_timer__read_tsc_deadline(const struct lapic *l)
{
	if (lapic_timer__mode(l) != LAPIC_TIMER_TSC_DEADLINE)
		return 0;
	return l->s.tsc_deadline;
}

void lapic_timer__post_load(struct lapic *l)
{
	uint64_t now = now_ns(l);

	if (lapic_timer__mode(l) == LAPIC_TIMER_TSC_DEADLINE) {
		/* The guest TSC carries over: recompute from it. */
		if (l->s.tsc_deadline)
			tsc_deadline_to_ns(l, now);
		else
			l->s.timer_deadline_ns = 0;
	} else if (l->s.save_ns && l->s.timer_deadline_ns) {
		/* Keep the remaining time (an overdue timer fires at once),
		 * moved onto this host's clock. */
		uint64_t d = l->s.timer_deadline_ns, saved = l->s.save_ns;
		uint64_t left = d > saved ? d - saved : 0;
		uint64_t since_start = d - l->s.timer_start_ns;

		l->s.timer_deadline_ns = now + left ? now + left : 1;
		l->s.timer_start_ns = l->s.timer_deadline_ns - since_start;
	}
	l->s.save_ns = 0;
	arm(l, l->s.timer_deadline_ns);
}

void lapic__timer_expired(struct lapic *l)
{
	pthread_mutex_lock(&l->lock);
	/* A late cancel can still let the host timer fire: check, and if
	 * the deadline is still ahead (or was moved), arm again. */
	if (!lapic_timer__check(l, now_ns(l)) && l->s.timer_deadline_ns)
		arm(l, l->s.timer_deadline_ns);
	lapic_core__update(l, false);
	pthread_mutex_unlock(&l->lock);
}
