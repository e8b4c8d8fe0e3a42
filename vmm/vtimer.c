#include "vmm/vtimer.h"

#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* A sorted singly-linked list is enough: a machine has a handful of timers
 * (one LAPIC timer per vCPU, PIT, RTC). */
struct vtimer_service {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pthread_t thread;
	struct vtimer *head;
	struct vtimer *running; /* callback in progress, for cancel */
	bool stop;
};

uint64_t vclock__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void unlink_locked(struct vtimer_service *svc, struct vtimer *t)
{
	struct vtimer **pp;

	for (pp = &svc->head; *pp; pp = &(*pp)->next) {
		if (*pp == t) {
			*pp = t->next;
			t->next = NULL;
			return;
		}
	}
}

static void *service_main(void *arg)
{
	struct vtimer_service *svc = arg;

	pthread_mutex_lock(&svc->lock);
	while (!svc->stop) {
		struct vtimer *t = svc->head;
		uint64_t now = vclock__now_ns();

		if (!t) {
			pthread_cond_wait(&svc->cond, &svc->lock);
			continue;
		}
		if (t->deadline_ns > now) {
			struct timespec ts = {
				.tv_sec = (time_t)(t->deadline_ns / 1000000000ull),
				.tv_nsec = (long)(t->deadline_ns % 1000000000ull),
			};
			pthread_cond_timedwait(&svc->cond, &svc->lock, &ts);
			continue;
		}
		svc->head = t->next;
		t->next = NULL;
		t->deadline_ns = 0;
		svc->running = t;
		/* Callbacks take device locks and may re-arm this timer. */
		pthread_mutex_unlock(&svc->lock);
		t->fire(t->opaque);
		pthread_mutex_lock(&svc->lock);
		svc->running = NULL;
		pthread_cond_broadcast(&svc->cond);
	}
	pthread_mutex_unlock(&svc->lock);
	return NULL;
}

struct vtimer_service *vtimer_service__new(void)
{
	struct vtimer_service *svc = calloc(1, sizeof(*svc));
	pthread_condattr_t attr;

	if (!svc)
		return NULL;
	pthread_mutex_init(&svc->lock, NULL);
	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&svc->cond, &attr);
	pthread_condattr_destroy(&attr);
	if (pthread_create(&svc->thread, NULL, service_main, svc)) {
		free(svc);
		return NULL;
	}
	pthread_setname_np(svc->thread, "krg-timers");
	return svc;
}

void vtimer_service__free(struct vtimer_service *svc)
{
	if (!svc)
		return;
	pthread_mutex_lock(&svc->lock);
	svc->stop = true;
	pthread_cond_broadcast(&svc->cond);
	pthread_mutex_unlock(&svc->lock);
	pthread_join(svc->thread, NULL);
	pthread_cond_destroy(&svc->cond);
	pthread_mutex_destroy(&svc->lock);
	free(svc);
}

void vtimer__init(struct vtimer *t, struct vtimer_service *svc,
		  void (*fire)(void *opaque), void *opaque)
{
	t->svc = svc;
	t->fire = fire;
	t->opaque = opaque;
	t->deadline_ns = 0;
	t->next = NULL;
}

void vtimer__arm(struct vtimer *t, uint64_t deadline_ns)
{
	struct vtimer_service *svc = t->svc;
	struct vtimer **pp;

	if (!svc)
		return;
	if (deadline_ns == 0)
		deadline_ns = 1;
	pthread_mutex_lock(&svc->lock);
	unlink_locked(svc, t);
	t->deadline_ns = deadline_ns;
	for (pp = &svc->head; *pp && (*pp)->deadline_ns <= deadline_ns;
	     pp = &(*pp)->next)
		;
	t->next = *pp;
	*pp = t;
	if (svc->head == t)
		pthread_cond_signal(&svc->cond);
	pthread_mutex_unlock(&svc->lock);
}

void vtimer__cancel(struct vtimer *t)
{
	struct vtimer_service *svc = t->svc;

	if (!svc)
		return;
	pthread_mutex_lock(&svc->lock);
	unlink_locked(svc, t);
	t->deadline_ns = 0;
	pthread_mutex_unlock(&svc->lock);
}
