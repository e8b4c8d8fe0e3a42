/* Host timers for the emulated timers (LAPIC, PIT, RTC): one service thread
 * sleeps until the earliest deadline and runs the expired callbacks.
 * Deadlines are CLOCK_MONOTONIC nanoseconds. */
#ifndef KRG_VMM_VTIMER_H
#define KRG_VMM_VTIMER_H

#include <stdbool.h>
#include <stdint.h>

struct vtimer_service;

struct vtimer {
	struct vtimer_service *svc;
	void (*fire)(void *opaque);
	void *opaque;
	uint64_t deadline_ns; /* 0 = not armed */
	struct vtimer *next;
};

uint64_t vclock__now_ns(void);

struct vtimer_service *vtimer_service__new(void);
/* Stops the thread; timers must no longer be armed afterwards. */
void vtimer_service__free(struct vtimer_service *svc);

void vtimer__init(struct vtimer *t, struct vtimer_service *svc,
		  void (*fire)(void *opaque), void *opaque);
/* (Re)arms t; a deadline in the past fires at once (on the service thread). */
void vtimer__arm(struct vtimer *t, uint64_t deadline_ns);
void vtimer__cancel(struct vtimer *t);

#endif
