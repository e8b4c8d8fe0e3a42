/* The interrupt router.  The table of addressing facts is the only thing
 * it knows about LAPICs; the lock protects that table and the rotation
 * state and is never held while a message is handed on, so a deliver hook
 * may take a LAPIC lock (and a LAPIC may publish its address from under
 * its own lock) without lock-order trouble. */
#include "vcpu/irq_route.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/lapic.h"

/* Far above any VM (x2APIC IDs are 32-bit, but a table per vCPU is not
 * meant for millions); keeps the rotation arithmetic in range. */
#define IRQ_ROUTER_MAX_VCPUS 65536

struct irq_router {
	pthread_mutex_t lock;
	int nr_vcpus;
	struct apic_addr *addr;
	irq_deliver_fn deliver;
	void *ctx;
	int last_lowest; /* last lowest-priority winner, for rotation */
};

struct irq_router *irq_router__new(int nr_vcpus, irq_deliver_fn deliver,
				   void *ctx)
{
	struct irq_router *r;

	if (nr_vcpus <= 0 || nr_vcpus > IRQ_ROUTER_MAX_VCPUS || !deliver)
		return NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return NULL;
	/* Unknown vCPUs stay all-zero, i.e. disabled, until they publish. */
	r->addr = calloc((size_t)nr_vcpus, sizeof(*r->addr));
	if (!r->addr) {
		free(r);
		return NULL;
	}
	pthread_mutex_init(&r->lock, NULL);
	r->nr_vcpus = nr_vcpus;
	r->deliver = deliver;
	r->ctx = ctx;
	r->last_lowest = -1;
	return r;
}

void irq_router__free(struct irq_router *r)
{
	if (!r)
		return;
	pthread_mutex_destroy(&r->lock);
	free(r->addr);
	free(r);
}

void irq_router__update_addr(struct irq_router *r, int vcpu_index,
			     const struct apic_addr *addr)
{
	if (!r || !addr || vcpu_index < 0 || vcpu_index >= r->nr_vcpus)
		return;
	pthread_mutex_lock(&r->lock);
	r->addr[vcpu_index] = *addr;
	pthread_mutex_unlock(&r->lock);
}

/* Lowest priority: the matching LAPIC with the lowest PPR; among equals
 * the first one after the previous winner, so they take turns. */
static int pick_lowest(struct irq_router *r, const int *match, int n)
{
	int best = -1, best_dist = 0;

	for (int i = 0; i < n; i++) {
		int v = match[i];
		int dist = (v - r->last_lowest - 1 + 2 * r->nr_vcpus) %
			   r->nr_vcpus;

		if (best < 0 || r->addr[v].ppr < r->addr[best].ppr ||
		    (r->addr[v].ppr == r->addr[best].ppr && dist < best_dist)) {
			best = v;
			best_dist = dist;
		}
	}
	r->last_lowest = best;
	return best;
}

int irq_router__deliver(struct irq_router *r, const struct apic_msg *msg)
{
	int small[64], *match = small, n = 0;

	if (!r || !msg)
		return 0;
	if (r->nr_vcpus > (int)(sizeof(small) / sizeof(small[0]))) {
		match = malloc((size_t)r->nr_vcpus * sizeof(*match));
		if (!match)
			return 0;
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->nr_vcpus; i++)
		if (apic__matches(&r->addr[i], msg, i == msg->source))
			match[n++] = i;
	if (msg->delivery == APIC_DM_LOWEST && n > 1) {
		match[0] = pick_lowest(r, match, n);
		n = 1;
	}
	pthread_mutex_unlock(&r->lock);

	for (int i = 0; i < n; i++)
		r->deliver(r->ctx, match[i], msg);
	if (match != small)
		free(match);
	return n;
}
