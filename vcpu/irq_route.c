/* The interrupt router.  The table of addressing facts is the only thing
 * it knows about LAPICs; the lock protects that table, the placement and
 * the rotation state and is never held while a message is handed on, so a
 * deliver hook may take a LAPIC lock (and a LAPIC may publish its address
 * from under its own lock) and a forward hook may send, without lock-order
 * trouble. */
#include "vcpu/irq_route.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/lapic.h"

/* Far above any VM (x2APIC IDs are 32-bit, but a table per vCPU is not
 * meant for millions); keeps the rotation arithmetic in range. */
#define IRQ_ROUTER_MAX_VCPUS 65536
#define LOCAL_NODE -1

struct irq_router {
	pthread_mutex_t lock;
	int nr_vcpus;
	struct apic_addr *addr;
	irq_deliver_fn deliver;
	void *ctx;
	int last_lowest; /* last lowest-priority winner, for rotation */
	/* Cluster placement; node == NULL: every vCPU is local. */
	unsigned self;
	uint8_t *node;
	irq_forward_fn forward;
	void *forward_ctx;
};

/* One match: the vCPU and where it runs (LOCAL_NODE or a node id). */
struct target {
	int vcpu;
	int node;
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
	free(r->node);
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

int irq_router__set_placement(struct irq_router *r, unsigned self,
			      const uint8_t *vcpu_node, irq_forward_fn forward,
			      void *forward_ctx)
{
	uint8_t *copy;

	if (!r || !vcpu_node || !forward)
		return -1;
	copy = malloc((size_t)r->nr_vcpus);
	if (!copy)
		return -1;
	memcpy(copy, vcpu_node, (size_t)r->nr_vcpus);
	pthread_mutex_lock(&r->lock);
	free(r->node);
	r->node = copy;
	r->self = self;
	r->forward = forward;
	r->forward_ctx = forward_ctx;
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int irq_router__set_node(struct irq_router *r, int vcpu_index,
			 unsigned node)
{
	int ret = -1;

	if (!r || vcpu_index < 0 || vcpu_index >= r->nr_vcpus || node > 255)
		return -1;
	pthread_mutex_lock(&r->lock);
	if (r->node) {
		r->node[vcpu_index] = (uint8_t)node;
		ret = 0;
	}
	pthread_mutex_unlock(&r->lock);
	return ret;
}

int irq_router__nr_vcpus(const struct irq_router *r)
{
	return r ? r->nr_vcpus : 0;
}

/* LOCAL_NODE or the node id; the caller holds the lock. */
static int where(const struct irq_router *r, int v)
{
	if (!r->node || r->node[v] == r->self)
		return LOCAL_NODE;
	return r->node[v];
}

int irq_router__node_of(struct irq_router *r, int vcpu_index)
{
	int n;

	if (!r || vcpu_index < 0 || vcpu_index >= r->nr_vcpus)
		return -1;
	pthread_mutex_lock(&r->lock);
	n = r->node ? r->node[vcpu_index] : (int)r->self;
	pthread_mutex_unlock(&r->lock);
	return n;
}

bool irq_router__is_local(struct irq_router *r, int vcpu_index)
{
	bool local;

	if (!r || vcpu_index < 0 || vcpu_index >= r->nr_vcpus)
		return false;
	pthread_mutex_lock(&r->lock);
	local = where(r, vcpu_index) == LOCAL_NODE;
	pthread_mutex_unlock(&r->lock);
	return local;
}

int irq_router__get_addr(struct irq_router *r, int vcpu_index,
			 struct apic_addr *out)
{
	if (!r || !out || vcpu_index < 0 || vcpu_index >= r->nr_vcpus)
		return -1;
	pthread_mutex_lock(&r->lock);
	*out = r->addr[vcpu_index];
	pthread_mutex_unlock(&r->lock);
	return 0;
}

int irq_router__deliver_local(struct irq_router *r, int vcpu_index,
			      const struct apic_msg *msg)
{
	if (!msg || !irq_router__is_local(r, vcpu_index))
		return -1;
	r->deliver(r->ctx, vcpu_index, msg);
	return 0;
}

/* Lowest priority, see irq_route.h: rank by tier, then PPR (local tiers
 * only), then distance after the previous winner, so equals take turns. */
static int pick_lowest(struct irq_router *r, const struct target *t, int n,
		       uint8_t vector)
{
	int best = -1, best_tier = 0, best_ppr = 0, best_dist = 0;

	for (int i = 0; i < n; i++) {
		int v = t[i].vcpu, tier, ppr = 0;
		int dist = (v - r->last_lowest - 1 + 2 * r->nr_vcpus) %
			   r->nr_vcpus;

		if (t[i].node != LOCAL_NODE) {
			tier = 1;
		} else {
			ppr = r->addr[v].ppr;
			tier = (ppr & 0xF0) < (vector & 0xF0) ? 0 : 2;
		}
		if (best < 0 || tier < best_tier ||
		    (tier == best_tier &&
		     (ppr < best_ppr || (ppr == best_ppr && dist < best_dist)))) {
			best = i;
			best_tier = tier;
			best_ppr = ppr;
			best_dist = dist;
		}
	}
	r->last_lowest = t[best].vcpu;
	return best;
}

/* Sends the matches placed on t[first].node as one bitmap, marks them
 * done; returns how many the forward hook took on. */
static int forward_node(struct irq_router *r, struct target *t, int n,
			int first, uint8_t *bits, irq_forward_fn forward,
			void *fctx, const struct apic_msg *msg)
{
	int node = t[first].node, got;

	memset(bits, 0, IRQ_TARGETS_BYTES(r->nr_vcpus));
	for (int i = first; i < n; i++) {
		if (t[i].node != node)
			continue;
		bits[t[i].vcpu / 8] |= (uint8_t)(1u << (t[i].vcpu % 8));
		t[i].node = LOCAL_NODE - 1; /* done */
	}
	got = forward(fctx, (unsigned)node, msg, bits, r->nr_vcpus);
	return got > 0 ? got : 0;
}

int irq_router__deliver(struct irq_router *r, const struct apic_msg *msg)
{
	struct target small[64], *t = small;
	uint8_t small_bits[64], *bits = small_bits;
	irq_forward_fn forward;
	void *fctx;
	int n = 0, delivered = 0;
	bool remote = false;

	if (!r || !msg)
		return 0;
	if (r->nr_vcpus > (int)(sizeof(small) / sizeof(small[0]))) {
		t = malloc((size_t)r->nr_vcpus * sizeof(*t) +
			   IRQ_TARGETS_BYTES(r->nr_vcpus));
		if (!t)
			return 0;
		bits = (uint8_t *)(t + r->nr_vcpus);
	}
	pthread_mutex_lock(&r->lock);
	for (int i = 0; i < r->nr_vcpus; i++) {
		if (!apic__matches(&r->addr[i], msg, i == msg->source))
			continue;
		t[n].vcpu = i;
		t[n].node = where(r, i);
		remote |= t[n].node != LOCAL_NODE;
		n++;
	}
	if (msg->delivery == APIC_DM_LOWEST && n > 1) {
		t[0] = t[pick_lowest(r, t, n, msg->vector)];
		n = 1;
		remote = t[0].node != LOCAL_NODE;
	}
	forward = r->forward;
	fctx = r->forward_ctx;
	pthread_mutex_unlock(&r->lock);

	/* Remote first: the network's latency overlaps the local work. */
	for (int i = 0; remote && i < n; i++)
		if (t[i].node >= 0)
			delivered += forward_node(r, t, n, i, bits, forward,
						  fctx, msg);
	for (int i = 0; i < n; i++) {
		if (t[i].node != LOCAL_NODE)
			continue;
		r->deliver(r->ctx, t[i].vcpu, msg);
		delivered++;
	}
	if (t != small)
		free(t);
	return delivered;
}
