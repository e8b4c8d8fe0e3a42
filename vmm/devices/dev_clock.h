/* Time for device models: what "now" is and one host timer per device.
 * Devices never read a clock or touch a vtimer directly; they get a
 * struct dev_clock, so unit tests can drive time by hand and fire the
 * timer themselves.  The machine wires the real thing with
 * dev_clock__vtimer() below.
 *
 * Locking: a device calls arm() with its own lock held, and its timer
 * callback takes that lock.  That is safe with vmm/vtimer.c because the
 * service drops its lock while a callback runs and arm/cancel never wait
 * for a running callback (lock order: device -> timer service). */
#ifndef KRG_VMM_DEVICES_DEV_CLOCK_H
#define KRG_VMM_DEVICES_DEV_CLOCK_H

#include <stdint.h>
#include <time.h>

#include "vmm/vtimer.h"

struct dev_clock {
	/* Monotonic nanoseconds: the time base of deadlines. */
	uint64_t (*now_ns)(void *ctx);
	/* Wall-clock nanoseconds since the Unix epoch (UTC): the RTC only. */
	int64_t (*wall_ns)(void *ctx);
	/* (Re)arms the device's single timer for deadline_ns; 0 cancels.
	 * May be NULL for devices that never need a timer. */
	void (*arm)(void *ctx, uint64_t deadline_ns);
	void *ctx;
};

static inline uint64_t dev_clock__now(const struct dev_clock *c)
{
	return c->now_ns ? c->now_ns(c->ctx) : 0;
}

static inline int64_t dev_clock__wall(const struct dev_clock *c)
{
	return c->wall_ns ? c->wall_ns(c->ctx) : 0;
}

/* A deadline of 0 means "cancel", so a real deadline is never 0. */
static inline void dev_clock__arm(const struct dev_clock *c,
				  uint64_t deadline_ns)
{
	if (c->arm)
		c->arm(c->ctx, deadline_ns);
}

static inline void dev_clock__cancel(const struct dev_clock *c)
{
	if (c->arm)
		c->arm(c->ctx, 0);
}

/* The real clocks, ctx = the device's struct vtimer. */
static inline uint64_t dev_clock__vclock_now(void *ctx)
{
	(void)ctx;
	return vclock__now_ns();
}

static inline int64_t dev_clock__host_wall(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_REALTIME, &ts);
	return (int64_t)ts.tv_sec * 1000000000ll + ts.tv_nsec;
}

static inline void dev_clock__vtimer_arm(void *ctx, uint64_t deadline_ns)
{
	if (deadline_ns)
		vtimer__arm((struct vtimer *)ctx, deadline_ns);
	else
		vtimer__cancel((struct vtimer *)ctx);
}

/* t must already be vtimer__init()ed with the device's timer callback
 * (e.g. pit__timer_fire) and the device as opaque. */
static inline struct dev_clock dev_clock__vtimer(struct vtimer *t)
{
	struct dev_clock c = {
		.now_ns = dev_clock__vclock_now,
		.wall_ns = dev_clock__host_wall,
		.arm = dev_clock__vtimer_arm,
		.ctx = t,
	};
	return c;
}

#endif
