/* The cluster's control protocol: node 0 hands out the VM description,
 * collects READY, sends START, STOP, PAUSE and stats requests; the other
 * nodes answer.  Messages arrive on the receive thread
 * (cluster_control__handle); the callers wait on c->cond. */
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/bytes.h"
#include "vmm/cluster_priv.h"
#include "vmm/errf.h"
#include "vmm/vtimer.h"

void cluster_control__handle(struct cluster *c, unsigned sender,
			     unsigned type, const void *payload, uint32_t len)
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
