/* TCP transport: sending (user messages, heartbeats, goodbyes) and the
 * timer thread that keeps peers alive, notices silent ones and reports
 * peers that went down. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>

#include "net/tcp_priv.h"
#include "vmm/errf.h"

const char *transport__down_reason_name(enum transport_down_reason r)
{
	switch (r) {
	case TRANSPORT_DOWN_GOODBYE:	return "goodbye";
	case TRANSPORT_DOWN_CLOSED:	return "connection closed";
	case TRANSPORT_DOWN_TIMEOUT:	return "timeout";
	case TRANSPORT_DOWN_PROTOCOL:	return "protocol error";
	case TRANSPORT_DOWN_SEND:	return "send failed";
	}
	return "?";
}

/* Writes all of v[0..n) (modified), blocking within SO_SNDTIMEO.  sendmsg
 * rather than writev: the same gather write, plus MSG_NOSIGNAL, so a dead
 * peer is an EPIPE here and never a process-wide SIGPIPE. */
static int write_all(int fd, struct iovec *v, int n, size_t left)
{
	struct msghdr m = { .msg_iov = v, .msg_iovlen = (size_t)n };

	while (left) {
		ssize_t w = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return -1;
		left -= (size_t)w;
		while (w > 0 && m.msg_iovlen) {
			if ((size_t)w >= m.msg_iov->iov_len) {
				w -= (ssize_t)m.msg_iov->iov_len;
				m.msg_iov++;
				m.msg_iovlen--;
			} else {
				m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + w;
				m.msg_iov->iov_len -= (size_t)w;
				w = 0;
			}
		}
	}
	return 0;
}

static void send_failed(struct tcp_conn *c, int e, char *err, size_t errlen)
{
	struct tcp_transport *t = c->peer->t;
	char why[TCP_WHY];

	if (e == EAGAIN || e == EWOULDBLOCK)
		snprintf(why, sizeof(why), "did not drain its %s channel for %u ms",
			 net_channel__name(c->channel),
			 c->channel == NET_CH_FAST ? t->peer_timeout_ms :
						     t->bulk_stall_ms);
	else
		snprintf(why, sizeof(why), "send on %s: %s",
			 net_channel__name(c->channel), strerror(e));
	tcp_conn__peer_fail(c->peer, TRANSPORT_DOWN_SEND, why);
	errf(err, errlen, "node %u: %s", c->peer->id, why);
}

static int check_target(struct tcp_transport *t, unsigned node,
			unsigned ch, char *err, size_t errlen)
{
	struct tcp_peer *p;

	if (node >= t->nr_nodes || node == t->self) {
		errf(err, errlen, node == t->self ? "node %u is this node" :
			     "no node %u in this cluster", node);
		return -1;
	}
	if (ch >= NET_NR_CHANNELS) {
		errf(err, errlen, "no channel %u", ch);
		return -1;
	}
	p = &t->peers[node];
	if (atomic_load(&t->stopping)) {
		errf(err, errlen, "transport is stopped");
		return -1;
	}
	if (atomic_load(&p->state) == TCP_PEER_DOWN) {
		pthread_mutex_lock(&t->lock);
		errf(err, errlen, "node %u is down (%s)", node, p->down_detail);
		pthread_mutex_unlock(&t->lock);
		return -1;
	}
	if (atomic_load(&p->leaving)) {
		errf(err, errlen, "node %u is leaving the cluster", node);
		return -1;
	}
	if (!atomic_load(&p->ch[ch].ready)) {
		errf(err, errlen, "node %u is not connected on %s", node,
		     net_channel__name(ch));
		return -1;
	}
	return 0;
}

int tcp_conn__send(struct transport *base, unsigned node, enum net_channel ch,
		   unsigned type, const struct iovec *iov, int iovcnt,
		   char *err, size_t errlen)
{
	struct tcp_transport *t = (struct tcp_transport *)base;
	struct iovec v[NET_MAX_IOV + 1];
	uint8_t raw[NET_HDR_SIZE];
	struct net_hdr h;
	struct tcp_conn *c;
	size_t total = 0;
	int n = 1;

	if (!net_type__user(type)) {
		errf(err, errlen, "message type %u is not a user type (%u..%u)",
		     type, NET_TYPE_CONTROL_FIRST, NET_TYPE_LAST);
		return -1;
	}
	if (iovcnt < 0 || iovcnt > NET_MAX_IOV || (iovcnt && !iov)) {
		errf(err, errlen, "bad iovec count %d (at most %d)", iovcnt,
		     NET_MAX_IOV);
		return -1;
	}
	for (int i = 0; i < iovcnt; i++) {
		/* Clamped so that no sum of lengths can wrap. */
		total += iov[i].iov_len > NET_BULK_MAX_PAYLOAD ?
			 NET_BULK_MAX_PAYLOAD + 1 : iov[i].iov_len;
		if (iov[i].iov_len)
			v[n++] = iov[i];
	}
	if ((unsigned)ch < NET_NR_CHANNELS && total > net_msg__max_payload(ch)) {
		errf(err, errlen, "message of %s%zu bytes exceeds the %s channel's %u",
		     total > NET_BULK_MAX_PAYLOAD ? "more than " : "",
		     total > NET_BULK_MAX_PAYLOAD ? (size_t)NET_BULK_MAX_PAYLOAD :
						    total,
		     net_channel__name(ch), net_msg__max_payload(ch));
		return -1;
	}
	if (check_target(t, node, ch, err, errlen))
		return -1;
	c = &t->peers[node].ch[ch];
	pthread_mutex_lock(&c->send_lock);
	if (c->closing) {
		pthread_mutex_unlock(&c->send_lock);
		errf(err, errlen, "transport is stopped");
		return -1;
	}
	net_msg__init(&h, type, ch, t->self, (uint32_t)total, c->tx_seq);
	net_msg__encode(raw, &h);
	net_msg__seal(raw, v + 1, n - 1);
	v[0].iov_base = raw;
	v[0].iov_len = NET_HDR_SIZE;
	if (write_all(c->fd, v, n, NET_HDR_SIZE + total)) {
		int e = errno;

		pthread_mutex_unlock(&c->send_lock);
		send_failed(c, e, err, errlen);
		return -1;
	}
	c->tx_seq++;
	atomic_store(&c->last_tx_ms, tcp__now_ms());
	pthread_mutex_unlock(&c->send_lock);
	return 0;
}

/* An internal message of no payload.  wait=false: give up rather than
 * block if the lock is busy or the socket is full (the timer thread must
 * never hang on one peer). */
static void send_internal(struct tcp_conn *c, unsigned type, bool wait)
{
	struct tcp_transport *t = c->peer->t;
	uint8_t raw[NET_HDR_SIZE];
	struct iovec v = { raw, NET_HDR_SIZE };
	struct net_hdr h;
	ssize_t w;

	if (wait)
		pthread_mutex_lock(&c->send_lock);
	else if (pthread_mutex_trylock(&c->send_lock))
		return;
	if (c->closing)
		goto out;
	net_msg__init(&h, type, c->channel, t->self, 0, c->tx_seq);
	net_msg__encode(raw, &h);
	net_msg__seal(raw, NULL, 0);
	w = wait ? 0 : send(c->fd, raw, NET_HDR_SIZE, MSG_DONTWAIT | MSG_NOSIGNAL);
	if (w < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR))
		goto out;	/* full: the peer has data to read anyway */
	if (w < 0)
		goto fail;
	v.iov_base = raw + w;
	v.iov_len = NET_HDR_SIZE - (size_t)w;
	if (write_all(c->fd, &v, 1, v.iov_len))
		goto fail;
	c->tx_seq++;
	atomic_store(&c->last_tx_ms, tcp__now_ms());
out:
	pthread_mutex_unlock(&c->send_lock);
	return;
fail:
	w = errno;
	pthread_mutex_unlock(&c->send_lock);
	send_failed(c, (int)w, NULL, 0);
}

void tcp_conn__goodbye_all(struct tcp_transport *t)
{
	for (unsigned i = 0; i < t->nr_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];

		for (int ch = 0; ch < NET_NR_CHANNELS; ch++) {
			struct tcp_conn *c = &p->ch[ch];

			if (!atomic_load(&c->ready))
				continue;
			if (atomic_load(&p->state) != TCP_PEER_DOWN)
				send_internal(c, NET_T_GOODBYE, true);
			pthread_mutex_lock(&c->send_lock);
			c->closing = true;
			/* FIN after the goodbye; our receiver reads on until
			 * the peer closes its side. */
			shutdown(c->fd, SHUT_WR);
			pthread_mutex_unlock(&c->send_lock);
		}
	}
}

/* Under t->lock: the next peer whose failure can be reported (its
 * receivers are gone, so no recv callback can follow), or NULL. */
static struct tcp_peer *next_report(struct tcp_transport *t)
{
	for (unsigned i = 0; i < t->nr_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];

		if (i != t->self && atomic_load(&p->state) == TCP_PEER_DOWN &&
		    !p->down_reported && p->nr_installed && !p->live_readers)
			return p;
	}
	return NULL;
}

static void check_peers(struct tcp_transport *t, uint64_t now)
{
	for (unsigned i = 0; i < t->nr_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];
		struct tcp_conn *c = &p->ch[NET_CH_FAST];
		uint64_t rx, tx;
		char why[TCP_WHY];

		if (i == t->self || !atomic_load(&c->ready) ||
		    atomic_load(&p->state) == TCP_PEER_DOWN)
			continue;
		rx = atomic_load(&c->last_rx_ms);
		tx = atomic_load(&c->last_tx_ms);
		/* A leaving peer sends no more on FAST after its goodbye; the
		 * rest of its BULK data still proves it alive. */
		if (atomic_load(&p->leaving) &&
		    atomic_load(&p->ch[NET_CH_BULK].ready) &&
		    atomic_load(&p->ch[NET_CH_BULK].last_rx_ms) > rx)
			rx = atomic_load(&p->ch[NET_CH_BULK].last_rx_ms);
		if (now > rx && now - rx > t->peer_timeout_ms) {
			snprintf(why, sizeof(why),
				 "silent for %llu ms (timeout %u ms)",
				 (unsigned long long)(now - rx),
				 t->peer_timeout_ms);
			tcp_conn__peer_fail(p, TRANSPORT_DOWN_TIMEOUT, why);
			continue;
		}
		if (now >= tx + t->heartbeat_ms && !atomic_load(&p->leaving))
			send_internal(c, NET_T_HEARTBEAT, false);
	}
}

void *tcp_conn__timer_main(void *arg)
{
	struct tcp_transport *t = arg;
	unsigned tick = t->heartbeat_ms / 2;
	struct tcp_peer *p;

	if (tick > t->peer_timeout_ms / 4)
		tick = t->peer_timeout_ms / 4;
	if (tick < 5)
		tick = 5;
	pthread_mutex_lock(&t->lock);
	while (!atomic_load(&t->stopping)) {
		struct timespec ts;

		pthread_mutex_unlock(&t->lock);
		check_peers(t, tcp__now_ms());
		pthread_mutex_lock(&t->lock);
		while (!atomic_load(&t->stopping) && (p = next_report(t))) {
			enum transport_down_reason r = p->down_reason;
			char detail[TCP_WHY];

			p->down_reported = true;
			memcpy(detail, p->down_detail, sizeof(detail));
			pthread_mutex_unlock(&t->lock);
			if (t->cb.peer_down)
				t->cb.peer_down(t->cb.opaque, p->id, r, detail);
			pthread_mutex_lock(&t->lock);
		}
		if (atomic_load(&t->stopping))
			break;
		clock_gettime(CLOCK_MONOTONIC, &ts);
		ts.tv_nsec += (long)tick * 1000000L;
		ts.tv_sec += ts.tv_nsec / 1000000000L;
		ts.tv_nsec %= 1000000000L;
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	return NULL;
}
