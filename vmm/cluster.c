/* The cluster's transport glue: one TCP transport per node, messages routed
 * to the subsystem that registered their type range (queued until it has),
 * peers going down reported once.  The control protocol is in
 * cluster_control.c. */
#include "vmm/cluster.h"

#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cluster_priv.h"
#include "vmm/errf.h"

/* A receive thread serves page requests and interrupts for vCPUs that
 * wait on them, while this node's own vCPUs may spin in the guest on the
 * same cores: without priority it waits for a scheduler tick (ms) before
 * it runs.  As a real-time thread it runs at once, and it never spins
 * itself (it blocks in recv), so it cannot starve anything.  Without the
 * privilege the attempt fails quietly and only latency suffers. */
static void raise_priority_once(void)
{
	static _Thread_local bool done;
	struct sched_param sp = { .sched_priority = 1 };

	if (done)
		return;
	done = true;
	pthread_setschedparam(pthread_self(), SCHED_FIFO, &sp);
}

static void on_recv(void *opaque, unsigned sender, enum net_channel ch,
		    unsigned type, const void *payload, uint32_t len)
{
	struct cluster *c = opaque;
	unsigned r = type / 32;

	if (ch == NET_CH_FAST)
		raise_priority_once();

	if (type >= NET_TYPE_CONTROL_FIRST && type <= NET_TYPE_CONTROL_LAST) {
		cluster_control__handle(c, sender, type, payload, len);
		return;
	}
	if (r >= NR_RANGES)
		return;
	pthread_mutex_lock(&c->range_lock);
	if (!c->range[r].fn) {
		struct early_msg *e = c->range[r].queued < MAX_EARLY ?
					      malloc(sizeof(*e) + len) : NULL;

		if (e) {
			e->next = NULL;
			e->sender = sender;
			e->type = type;
			e->len = len;
			memcpy(e->payload, payload, len);
			*c->range[r].tail = e;
			c->range[r].tail = &e->next;
			c->range[r].queued++;
		}
		pthread_mutex_unlock(&c->range_lock);
		if (!e && c->hooks.peer_down)
			c->hooks.peer_down(c->hooks.ctx, sender,
					   "flooded this node with messages "
					   "before it was ready");
		return;
	}
	pthread_mutex_unlock(&c->range_lock);
	c->range[r].fn(c->range[r].ctx, sender, type, payload, len);
}

static void on_peer_down(void *opaque, unsigned node,
			 enum transport_down_reason reason, const char *detail)
{
	struct cluster *c = opaque;
	char why[300];
	bool report;

	snprintf(why, sizeof(why), "%s (%s)", detail,
		 transport__down_reason_name(reason));
	pthread_mutex_lock(&c->lock);
	/* After a STOP every node leaves: expected, not a failure. */
	report = !c->stopping && c->down_node < 0;
	if (c->down_node < 0) {
		c->down_node = (int)node;
		snprintf(c->down_why, sizeof(c->down_why), "%s", why);
	}
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	if (report && c->hooks.peer_down)
		c->hooks.peer_down(c->hooks.ctx, node, why);
}

struct cluster *cluster__create(const struct cluster_opts *o, char *err,
				size_t errlen)
{
	struct cluster *c;
	struct tcp_transport_config tc;
	const char *addrs[NET_MAX_NODES];

	if (o->nr_nodes < 2 || o->nr_nodes > NET_MAX_NODES ||
	    o->self >= o->nr_nodes) {
		errf(err, errlen, "cluster: node %u of %u is not valid", o->self,
		     o->nr_nodes);
		return NULL;
	}
	c = calloc(1, sizeof(*c));
	if (!c) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	c->self = o->self;
	c->nr_nodes = o->nr_nodes;
	c->cluster_id = o->cluster_id;
	c->down_node = -1;
	pthread_mutex_init(&c->lock, NULL);
	pthread_mutex_init(&c->range_lock, NULL);
	pthread_mutex_init(&c->gather_lock, NULL);
	for (unsigned r = 0; r < NR_RANGES; r++)
		c->range[r].tail = &c->range[r].head;
	pthread_cond_init(&c->cond, NULL);
	for (unsigned i = 0; i < o->nr_nodes; i++) {
		snprintf(c->addrs[i], sizeof(c->addrs[i]), "%s", o->addrs[i]);
		addrs[i] = c->addrs[i];
	}
	memset(&tc, 0, sizeof(tc));
	tc.self = o->self;
	tc.nr_nodes = o->nr_nodes;
	tc.addrs = addrs;
	tc.key = o->key;
	tc.cluster_id = o->cluster_id;
	tc.cb.opaque = c;
	tc.cb.recv = on_recv;
	tc.cb.peer_down = on_peer_down;
	tc.peer_timeout_ms = o->peer_timeout_ms;
	tc.have_listen_fd = o->listen_fd >= 0;
	tc.listen_fd = o->listen_fd;
	c->t = tcp_transport__create(&tc, err, errlen);
	if (!c->t) {
		pthread_mutex_destroy(&c->lock);
		pthread_cond_destroy(&c->cond);
		free(c);
		return NULL;
	}
	return c;
}

void cluster__destroy(struct cluster *c)
{
	if (!c)
		return;
	transport__destroy(c->t);
	for (unsigned r = 0; r < NR_RANGES; r++)
		while (c->range[r].head) {
			struct early_msg *e = c->range[r].head;

			c->range[r].head = e->next;
			free(e);
		}
	pthread_mutex_destroy(&c->range_lock);
	pthread_mutex_destroy(&c->gather_lock);
	free(c->description);
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	free(c);
}

void cluster__set_hooks(struct cluster *c, const struct cluster_hooks *h)
{
	c->hooks = *h;
}

int cluster__register(struct cluster *c, unsigned first_type,
		      cluster_recv_fn fn, void *ctx)
{
	unsigned r = first_type / 32;

	if (first_type % 32 || r >= NR_RANGES ||
	    first_type == NET_TYPE_CONTROL_FIRST || first_type == 0)
		return -1;
	/* Replay under the lock: a message arriving meanwhile waits in
	 * on_recv, so the handler sees everything in arrival order. */
	pthread_mutex_lock(&c->range_lock);
	c->range[r].fn = fn;
	c->range[r].ctx = ctx;
	while (c->range[r].head) {
		struct early_msg *e = c->range[r].head;

		c->range[r].head = e->next;
		fn(ctx, e->sender, e->type, e->payload, e->len);
		free(e);
	}
	c->range[r].tail = &c->range[r].head;
	c->range[r].queued = 0;
	pthread_mutex_unlock(&c->range_lock);
	return 0;
}

int cluster__start(struct cluster *c, unsigned timeout_ms, char *err,
		   size_t errlen)
{
	return transport__start(c->t, timeout_ms, err, errlen);
}

unsigned cluster__self(const struct cluster *c)
{
	return c->self;
}

unsigned cluster__nr_nodes(const struct cluster *c)
{
	return c->nr_nodes;
}

const char *cluster__addr(const struct cluster *c, unsigned node)
{
	return node < c->nr_nodes ? c->addrs[node] : "?";
}

int cluster__send(struct cluster *c, unsigned node, enum net_channel ch,
		  unsigned type, const struct iovec *iov, int iovcnt)
{
	char err[200];

	return transport__send(c->t, node, ch, type, iov, iovcnt, err,
			       sizeof(err));
}

int cluster__broadcast(struct cluster *c, enum net_channel ch, unsigned type,
		       const struct iovec *iov, int iovcnt)
{
	int rc = 0;

	for (unsigned n = 0; n < c->nr_nodes; n++)
		if (n != c->self &&
		    cluster__send(c, n, ch, type, iov, iovcnt) < 0)
			rc = -1;
	return rc;
}
