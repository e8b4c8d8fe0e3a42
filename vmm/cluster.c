#include "vmm/cluster.h"

#include <errno.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"
#include "vmm/vtimer.h"

#define NR_RANGES 8 /* 32 types each: types / 32 */
#define MAX_EARLY 4096

struct early_msg {
	struct early_msg *next;
	unsigned sender, type;
	uint32_t len;
	uint8_t payload[];
};

struct cluster {
	unsigned self, nr_nodes;
	char addrs[NET_MAX_NODES][256];
	uint64_t cluster_id;
	struct transport *t;
	struct cluster_hooks hooks;
	/* Handlers, and what arrived for a range before its handler was
	 * registered (a node that finished building first may talk to one
	 * still building): replayed in order at registration. */
	pthread_mutex_t range_lock;
	struct {
		cluster_recv_fn fn;
		void *ctx;
		struct early_msg *head, **tail;
		unsigned queued;
	} range[NR_RANGES];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool have_description;
	struct vm_description *description; /* decoded, node > 0 */
	char description_err[256];
	unsigned nr_ready;
	bool ready_from[NET_MAX_NODES];
	bool started;
	bool stopping;              /* a STOP was sent or received */
	int stop_status;
	char stop_reason[CLUSTER_REASON_MAX];
	int down_node;              /* first peer that went down, or -1 */
	char down_why[300];
	/* A stats gathering by node 0 (one at a time, under gather_lock). */
	pthread_mutex_t gather_lock;
	uint8_t *gather_bufs;
	size_t gather_each;
	bool *gather_have;
	unsigned gather_pending;
	/* Pausing the VM: node 0 counts confirmations of its latest PAUSE
	 * (older ones are stale); node i answers the latest it got. */
	uint32_t pause_gen;
	unsigned pause_pending;
	bool paused_from[NET_MAX_NODES];
};

static void handle_control(struct cluster *c, unsigned sender, unsigned type,
			   const void *payload, uint32_t len)
{
	char reason[CLUSTER_REASON_MAX];
	bool first = false;
	int status;

	switch (type) {
	case CLUSTER_T_DESCRIPTION: {
		struct vm_description *d;
		char err[256];

		if (c->self == 0 || sender != 0)
			goto bad;
		d = malloc(sizeof(*d));
		if (!d)
			return;
		if (vm_description__decode(d, payload, len, c->cluster_id,
					   c->nr_nodes, err, sizeof(err)) < 0) {
			free(d);
			pthread_mutex_lock(&c->lock);
			snprintf(c->description_err,
				 sizeof(c->description_err), "%s", err);
			c->have_description = true;
			pthread_cond_broadcast(&c->cond);
			pthread_mutex_unlock(&c->lock);
			return;
		}
		pthread_mutex_lock(&c->lock);
		if (!c->have_description) {
			c->description = d;
			d = NULL;
			c->have_description = true;
		}
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		free(d);
		return;
	}
	case CLUSTER_T_READY:
		if (c->self != 0 || len != 0)
			goto bad;
		pthread_mutex_lock(&c->lock);
		if (!c->ready_from[sender]) {
			c->ready_from[sender] = true;
			c->nr_ready++;
		}
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return;
	case CLUSTER_T_START:
		if (c->self == 0 || sender != 0 || len != 0)
			goto bad;
		pthread_mutex_lock(&c->lock);
		c->started = true;
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		return;
	case CLUSTER_T_STATS_REQ: {
		static _Thread_local uint8_t buf[8192];
		size_t n;
		struct iovec iov;

		if (c->self == 0 || sender != 0 || len != 0)
			goto bad;
		n = c->hooks.stats ? c->hooks.stats(c->hooks.ctx, buf,
						    sizeof(buf)) : 0;
		iov = (struct iovec){ buf, n };
		cluster__send(c, 0, NET_CH_FAST, CLUSTER_T_STATS, &iov,
			      n ? 1 : 0);
		return;
	}
	case CLUSTER_T_STATS:
		if (c->self != 0)
			goto bad;
		pthread_mutex_lock(&c->lock);
		if (c->gather_bufs && !c->gather_have[sender] &&
		    len == c->gather_each) {
			memcpy(c->gather_bufs + sender * c->gather_each, payload,
			       len);
			c->gather_have[sender] = true;
			c->gather_pending--;
			pthread_cond_broadcast(&c->cond);
		}
		pthread_mutex_unlock(&c->lock);
		return;
	case CLUSTER_T_PAUSE: {
		const uint8_t *p = payload;

		if (c->self == 0 || sender != 0 || len != 5 || p[4] > 1)
			goto bad;
		pthread_mutex_lock(&c->lock);
		c->pause_gen = get_le32(p);
		pthread_mutex_unlock(&c->lock);
		if (c->hooks.pause)
			c->hooks.pause(c->hooks.ctx, p[4] == 1);
		return;
	}
	case CLUSTER_T_PAUSED:
		if (c->self != 0 || len != 4)
			goto bad;
		pthread_mutex_lock(&c->lock);
		if (get_le32(payload) == c->pause_gen &&
		    !c->paused_from[sender] && c->pause_pending) {
			c->paused_from[sender] = true;
			c->pause_pending--;
			pthread_cond_broadcast(&c->cond);
		}
		pthread_mutex_unlock(&c->lock);
		return;
	case CLUSTER_T_STOP:
		if (len < 4 || len > 4 + CLUSTER_REASON_MAX)
			goto bad;
		status = (int)get_le32(payload);
		snprintf(reason, sizeof(reason), "%.*s", (int)(len - 4),
			 (const char *)payload + 4);
		pthread_mutex_lock(&c->lock);
		if (!c->stopping) {
			c->stopping = true;
			c->stop_status = status;
			snprintf(c->stop_reason, sizeof(c->stop_reason), "%s",
				 reason);
			first = true;
		}
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		if (first && c->hooks.stop)
			c->hooks.stop(c->hooks.ctx, status, reason);
		return;
	default:
		break;
	}
bad:
	{
		char why[160];

		snprintf(why, sizeof(why), "sent control message %u (%u bytes) "
			 "that makes no sense from node %u", type, len, sender);
		pthread_mutex_lock(&c->lock);
		if (c->down_node < 0) {
			c->down_node = (int)sender;
			snprintf(c->down_why, sizeof(c->down_why), "%s", why);
		}
		pthread_cond_broadcast(&c->cond);
		pthread_mutex_unlock(&c->lock);
		if (c->hooks.peer_down)
			c->hooks.peer_down(c->hooks.ctx, sender, why);
	}
}

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
		handle_control(c, sender, type, payload, len);
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

int cluster__send_description(struct cluster *c,
			      const struct vm_description *d, char *err,
			      size_t errlen)
{
	for (unsigned n = 1; n < c->nr_nodes; n++)
		if (transport__send_buf(c->t, n, NET_CH_BULK,
					CLUSTER_T_DESCRIPTION, d, sizeof(*d),
					err, errlen) < 0)
			return -1;
	return 0;
}

/* Waits on c->cond until done(c) or the deadline; -1 with a reason on a
 * timeout, a peer down or a STOP.  Called with c->lock held. */
static int wait_for(struct cluster *c, bool (*done)(struct cluster *),
		    unsigned timeout_ms, const char *what, char *err,
		    size_t errlen)
{
	struct timespec ts;

	vclock__deadline(&ts, CLOCK_REALTIME, timeout_ms);
	while (!done(c)) {
		if (c->down_node >= 0) {
			errf(err, errlen, "node %d (%s) %s while waiting for "
			     "%s", c->down_node, c->addrs[c->down_node],
			     c->down_why, what);
			return -1;
		}
		if (c->stopping) {
			errf(err, errlen, "the VM was stopped while waiting "
			     "for %s: %s", what, c->stop_reason);
			return -1;
		}
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) ==
		    ETIMEDOUT && !done(c)) {
			errf(err, errlen, "timed out after %u ms waiting for "
			     "%s", timeout_ms, what);
			return -1;
		}
	}
	return 0;
}

static bool have_description(struct cluster *c)
{
	return c->have_description;
}

int cluster__wait_description(struct cluster *c, struct vm_description *d,
			      unsigned timeout_ms, char *err, size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = wait_for(c, have_description, timeout_ms,
		      "the VM description from node 0", err, errlen);
	if (rc == 0 && !c->description) {
		errf(err, errlen, "%s", c->description_err);
		rc = -1;
	} else if (rc == 0) {
		*d = *c->description;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cluster__send_ready(struct cluster *c, char *err, size_t errlen)
{
	return transport__send(c->t, 0, NET_CH_FAST, CLUSTER_T_READY, NULL, 0,
			       err, errlen);
}

static bool all_ready(struct cluster *c)
{
	return c->nr_ready == c->nr_nodes - 1;
}

int cluster__wait_ready(struct cluster *c, unsigned timeout_ms, char *err,
			size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = wait_for(c, all_ready, timeout_ms, "every node to build its part "
		      "of the VM", err, errlen);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

int cluster__send_start(struct cluster *c, char *err, size_t errlen)
{
	for (unsigned n = 1; n < c->nr_nodes; n++)
		if (transport__send(c->t, n, NET_CH_FAST, CLUSTER_T_START, NULL,
				    0, err, errlen) < 0)
			return -1;
	return 0;
}

static bool is_started(struct cluster *c)
{
	return c->started;
}

int cluster__wait_start(struct cluster *c, unsigned timeout_ms, char *err,
			size_t errlen)
{
	int rc;

	pthread_mutex_lock(&c->lock);
	rc = wait_for(c, is_started, timeout_ms, "node 0 to start the VM", err,
		      errlen);
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void cluster__broadcast_stop(struct cluster *c, int status,
			     const char *reason)
{
	uint8_t buf[4 + CLUSTER_REASON_MAX];
	size_t n = strnlen(reason ? reason : "", CLUSTER_REASON_MAX);
	struct iovec iov = { buf, 4 + n };

	pthread_mutex_lock(&c->lock);
	if (c->stopping) {
		pthread_mutex_unlock(&c->lock);
		return;
	}
	c->stopping = true;
	c->stop_status = status;
	snprintf(c->stop_reason, sizeof(c->stop_reason), "%s",
		 reason ? reason : "");
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	put_le32(buf, (uint32_t)status);
	if (n)
		memcpy(buf + 4, reason, n);
	cluster__broadcast(c, NET_CH_FAST, CLUSTER_T_STOP, &iov, 1);
}

int cluster__gather_stats(struct cluster *c, void *bufs, size_t each,
			  bool *have, unsigned timeout_ms)
{
	struct timespec ts;
	int rc = 0;

	if (c->self != 0)
		return -1;
	pthread_mutex_lock(&c->gather_lock);
	pthread_mutex_lock(&c->lock);
	c->gather_bufs = bufs;
	c->gather_each = each;
	c->gather_have = have;
	/* Counted before sending: a reply may beat the next send. */
	c->gather_pending = c->nr_nodes - 1;
	for (unsigned n = 0; n < c->nr_nodes; n++)
		have[n] = false;
	pthread_mutex_unlock(&c->lock);
	for (unsigned n = 1; n < c->nr_nodes; n++)
		if (cluster__send(c, n, NET_CH_FAST, CLUSTER_T_STATS_REQ, NULL,
				  0) < 0) {
			pthread_mutex_lock(&c->lock);
			c->gather_pending--;
			pthread_mutex_unlock(&c->lock);
		}
	vclock__deadline(&ts, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&c->lock);
	while (c->gather_pending > 0)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) ==
		    ETIMEDOUT) {
			rc = -1;
			break;
		}
	c->gather_bufs = NULL;
	c->gather_have = NULL;
	pthread_mutex_unlock(&c->lock);
	pthread_mutex_unlock(&c->gather_lock);
	return rc;
}

bool cluster__stopping(struct cluster *c)
{
	bool s;

	pthread_mutex_lock(&c->lock);
	s = c->stopping;
	pthread_mutex_unlock(&c->lock);
	return s;
}

int cluster__send_pause(struct cluster *c, bool on)
{
	uint8_t buf[5];
	struct iovec iov = { buf, sizeof(buf) };

	if (c->self != 0)
		return -1;
	pthread_mutex_lock(&c->lock);
	c->pause_gen++;
	/* Counted before sending: a confirmation may beat the next send. */
	c->pause_pending = on ? c->nr_nodes - 1 : 0;
	memset(c->paused_from, 0, sizeof(c->paused_from));
	c->paused_from[0] = true;
	put_le32(buf, c->pause_gen);
	pthread_mutex_unlock(&c->lock);
	buf[4] = on;
	return cluster__broadcast(c, NET_CH_FAST, CLUSTER_T_PAUSE, &iov, 1);
}

int cluster__wait_paused(struct cluster *c, unsigned timeout_ms, char *err,
			 size_t errlen)
{
	struct timespec ts;
	int rc = 0;

	vclock__deadline(&ts, CLOCK_REALTIME, timeout_ms);
	pthread_mutex_lock(&c->lock);
	while (c->pause_pending && !c->stopping && c->down_node < 0)
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) ==
		    ETIMEDOUT)
			break;
	if (c->pause_pending) {
		size_t n = (size_t)snprintf(err, errlen, "node%s",
					    c->pause_pending > 1 ? "s" : "");

		for (unsigned i = 1; i < c->nr_nodes && n < errlen; i++)
			if (!c->paused_from[i])
				n += (size_t)snprintf(err + n, errlen - n,
						      " %u", i);
		if (n < errlen)
			snprintf(err + n, errlen - n, " did not confirm the "
				 "pause within %u ms", timeout_ms);
		rc = -1;
	}
	pthread_mutex_unlock(&c->lock);
	return rc;
}

void cluster__pause_ack(struct cluster *c)
{
	uint8_t buf[4];
	struct iovec iov = { buf, sizeof(buf) };

	pthread_mutex_lock(&c->lock);
	put_le32(buf, c->pause_gen);
	pthread_mutex_unlock(&c->lock);
	cluster__send(c, 0, NET_CH_FAST, CLUSTER_T_PAUSED, &iov, 1);
}
