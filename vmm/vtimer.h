/* Host timers for the emulated timers (LAPIC, PIT, RTC): one service thread
 * sleeps until the earliest deadline and runs the expired callbacks.
 * Deadlines are CLOCK_MONOTONIC nanoseconds. */
#ifndef KRG_VMM_VTIMER_H
#define KRG_VMM_VTIMER_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

struct vtimer_service;

struct vtimer {
	struct vtimer_service *svc;
	void (*fire)(void *opaque);
	void *opaque;
	uint64_t deadline_ns; /* 0 = not armed */
	struct vtimer *next;
};

uint64_t vclock__now_ns(void);

/* *ts = clk's now + ms, for pthread_cond_timedwait (whose condvar's clock
 * clk must be).  Inline: pure devices code that the fuzzers link alone
 * uses it too. */
static inline void vclock__deadline(struct timespec *ts, clockid_t clk,
				    unsigned ms)
{
	clock_gettime(clk, ts);
	ts->tv_sec += ms / 1000;
	ts->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

struct vtimer_service *vtimer_service__new(void);
/* Stops the thread; timers must no longer be armed afterwards. */
void vtimer_service__free(struct vtimer_service *svc);

void vtimer__init(struct vtimer *t, struct vtimer_service *svc,
		  void (*fire)(void *opaque), void *opaque);
/* (Re)arms t; a deadline in the past fires at once (on the service thread). */
void vtimer__arm(struct vtimer *t, uint64_t deadline_ns);
void vtimer__cancel(struct vtimer *t);

#endif
