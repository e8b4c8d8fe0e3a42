/* TCP transport connections once authenticated: installing them, the
 * receiver loop, peer failure; and the rate-limited log. */
#include <errno.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "net/tcp_priv.h"
#include "vmm/errf.h"

/* Enough for any FAST message; larger BULK messages get their own buffer. */
#define RBUF_CAP	(NET_HDR_SIZE + NET_FAST_MAX_PAYLOAD)
/* Log lines per second before the rest are counted, not printed: a peer
 * spraying garbage must not flood the log. */
#define LOG_PER_SEC	20

uint64_t tcp__now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void emit(struct tcp_transport *t, const char *line)
{
	if (t->cb.log)
		t->cb.log(t->cb.opaque, line);
	else
		fprintf(stderr, "%s\n", line);
}

void tcp__log(struct tcp_transport *t, const char *fmt, ...)
{
	char line[512], note[96];
	uint64_t now = tcp__now_ms();
	unsigned skipped = 0;
	int n;
	va_list ap;

	pthread_mutex_lock(&t->log_lock);
	if (now - t->log_window_ms >= 1000) {
		skipped = t->log_suppressed;
		t->log_window_ms = now;
		t->log_in_window = 0;
		t->log_suppressed = 0;
	}
	if (t->log_in_window >= LOG_PER_SEC) {
		t->log_suppressed++;
		pthread_mutex_unlock(&t->log_lock);
		return;
	}
	t->log_in_window++;
	if (skipped) {
		snprintf(note, sizeof(note),
			 "krg-vmm: net: node %u: %u log lines suppressed",
			 t->self, skipped);
		emit(t, note);
	}
	n = snprintf(line, sizeof(line), "krg-vmm: net: node %u: ", t->self);
	va_start(ap, fmt);
	vsnprintf(line + n, sizeof(line) - (size_t)n, fmt, ap);
	va_end(ap);
	emit(t, line);
	pthread_mutex_unlock(&t->log_lock);
}

void tcp__tune_socket(struct tcp_transport *t, int fd, unsigned channel)
{
	unsigned ms = channel == NET_CH_FAST ? t->peer_timeout_ms :
					       t->bulk_stall_ms;
	struct timeval tv = { ms / 1000, (ms % 1000) * 1000 };
	int one = 1;

	/* A send that makes no progress for this long means the peer has
	 * stopped draining: the send fails instead of hanging forever. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	setsockopt(fd, IPPROTO_TCP, TCP_USER_TIMEOUT, &ms, sizeof(ms));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
}

int tcp_conn__install(struct tcp_transport *t, unsigned peer,
		      unsigned channel, int fd, uint64_t tx_seq,
		      uint64_t rx_seq, char *err, size_t errlen)
{
	struct tcp_peer *p = &t->peers[peer];
	struct tcp_conn *c = &p->ch[channel];
	uint64_t now = tcp__now_ms();
	int r = -1;

	tcp__tune_socket(t, fd, channel);
	pthread_mutex_lock(&t->lock);
	if (atomic_load(&t->stopping))
		errf(err, errlen, "transport is stopping");
	else if (atomic_load(&p->state) == TCP_PEER_DOWN)
		errf(err, errlen, "node %u already went down (%s)", peer,
		     p->down_detail);
	else if (c->fd >= 0)
		errf(err, errlen, "node %u is already connected on the %s channel",
		     peer, net_channel__name(channel));
	else
		r = 0;
	if (!r) {
		c->fd = fd;
		c->tx_seq = tx_seq;
		c->rx_seq = rx_seq;
		atomic_store(&c->last_rx_ms, now);
		atomic_store(&c->last_tx_ms, now);
		atomic_store(&c->ready, true);
		p->nr_installed++;
		p->live_readers++;
		p->last_err[0] = 0;
		if (p->nr_installed == NET_NR_CHANNELS)
			atomic_store(&p->state, TCP_PEER_UP);
		pthread_cond_broadcast(&t->cond);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

void tcp_conn__peer_fail(struct tcp_peer *p, enum transport_down_reason r,
			 const char *detail)
{
	struct tcp_transport *t = p->t;
	bool quiet;

	pthread_mutex_lock(&t->lock);
	if (atomic_load(&p->state) == TCP_PEER_DOWN) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	atomic_store(&p->state, TCP_PEER_DOWN);
	p->down_reason = r;
	snprintf(p->down_detail, sizeof(p->down_detail), "%s", detail);
	/* Shut down, never close: other threads may be inside send or recv
	 * on these descriptors; they are closed when the transport is freed. */
	for (int i = 0; i < NET_NR_CHANNELS; i++)
		if (p->ch[i].fd >= 0)
			shutdown(p->ch[i].fd, SHUT_RDWR);
	quiet = atomic_load(&t->stopping);
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
	if (!quiet)
		tcp__log(t, "node %u (%s) is down: %s", p->id, p->addr, detail);
}

/* A GOODBYE on one channel: the peer is leaving; once every connection
 * said so it is down, cleanly. */
static void conn_goodbye(struct tcp_conn *c)
{
	struct tcp_peer *p = c->peer;
	bool all = true;

	atomic_store(&p->leaving, true);
	pthread_mutex_lock(&p->t->lock);
	c->said_goodbye = true;
	for (int i = 0; i < NET_NR_CHANNELS; i++)
		if (p->ch[i].fd >= 0 && !p->ch[i].said_goodbye)
			all = false;
	pthread_mutex_unlock(&p->t->lock);
	if (all)
		tcp_conn__peer_fail(p, TRANSPORT_DOWN_GOODBYE,
				    "stopped cleanly (goodbye)");
}

struct rx {
	struct tcp_conn *c;
	int fd;
	uint8_t *buf;
	size_t off, end;
};

/* Receives into p (room for cap) until at least n bytes arrived; returns
 * how many did, or -1 with why set. */
static ssize_t rx_read(struct rx *r, uint8_t *p, size_t n, size_t cap,
		       char *why)
{
	size_t got = 0;

	while (got < n) {
		ssize_t k = recv(r->fd, p + got, cap - got, 0);

		if (k > 0) {
			got += (size_t)k;
			atomic_store(&r->c->last_rx_ms, tcp__now_ms());
			continue;
		}
		if (k < 0 && errno == EINTR)
			continue;
		if (k == 0)
			snprintf(why, TCP_WHY, "closed the %s connection without goodbye",
				 net_channel__name(r->c->channel));
		else
			snprintf(why, TCP_WHY, "%s connection: %s",
				 net_channel__name(r->c->channel),
				 strerror(errno));
		return -1;
	}
	return (ssize_t)got;
}

/* Makes need bytes available at buf + off (need <= RBUF_CAP). */
static int rx_fill(struct rx *r, size_t need, char *why)
{
	size_t have = r->end - r->off;
	ssize_t got;

	if (have >= need)
		return 0;
	if (r->off + need > RBUF_CAP) {
		memmove(r->buf, r->buf + r->off, have);
		r->off = 0;
		r->end = have;
	}
	got = rx_read(r, r->buf + r->end, need - have, RBUF_CAP - r->end, why);
	if (got < 0)
		return -1;
	r->end += (size_t)got;
	return 0;
}

/* One message: validated, then handed on.  Returns 0 to go on, 1 after a
 * goodbye, -1 (reason in why, *proto set for a bad message) to stop. */
static int rx_one(struct rx *r, char *why, bool *proto)
{
	struct tcp_conn *c = r->c;
	struct tcp_transport *t = c->peer->t;
	struct net_msg_expect x = {
		.peer = (uint16_t)c->peer->id,
		.channel = c->channel,
		.max_len = net_msg__max_payload(c->channel),
		.seq = c->rx_seq,
	};
	uint8_t raw[NET_HDR_SIZE], *payload, *big = NULL;
	struct net_hdr h;
	size_t have;
	int st;

	if (rx_fill(r, NET_HDR_SIZE, why))
		return -1;
	memcpy(raw, r->buf + r->off, NET_HDR_SIZE);
	st = net_msg__check_hdr(raw, &h, &x, why, TCP_WHY);
	if (st)
		goto bad;
	if (NET_HDR_SIZE + (size_t)h.len <= RBUF_CAP) {
		if (rx_fill(r, NET_HDR_SIZE + h.len, why))
			return -1;
		payload = r->buf + r->off + NET_HDR_SIZE;
		r->off += NET_HDR_SIZE + h.len;
	} else {
		/* Everything buffered belongs to this message: it is larger
		 * than the buffer. */
		have = r->end - r->off - NET_HDR_SIZE;
		big = malloc(h.len);
		if (!big) {
			snprintf(why, TCP_WHY, "no memory for a %" PRIu32 "-byte message",
				 h.len);
			return -1;
		}
		memcpy(big, r->buf + r->off + NET_HDR_SIZE, have);
		r->off = r->end = 0;
		if (rx_read(r, big + have, h.len - have, h.len - have, why) < 0) {
			free(big);
			return -1;
		}
		payload = big;
	}
	st = net_msg__check_body(raw, &h, payload, &x, why, TCP_WHY);
	if (st)
		goto bad;
	c->rx_seq++;
	if (h.type == NET_T_GOODBYE) {
		free(big);
		return 1;
	}
	if (net_type__internal(h.type) && h.type != NET_T_HEARTBEAT) {
		snprintf(why, TCP_WHY, "handshake message %u after the handshake",
			 h.type);
		st = NET_MSG_BAD_TYPE;
		goto bad;
	}
	if (h.type != NET_T_HEARTBEAT && t->cb.recv &&
	    !atomic_load(&t->stopping))
		t->cb.recv(t->cb.opaque, c->peer->id, c->channel, h.type,
			   payload, h.len);
	free(big);
	return 0;
bad:
	free(big);
	*proto = true;
	return -1;
}

void tcp_conn__receive(struct tcp_conn *c)
{
	struct tcp_peer *p = c->peer;
	struct tcp_transport *t = p->t;
	struct rx r = { .c = c, .fd = c->fd };
	char why[TCP_WHY] = "", detail[TCP_WHY + 40];
	bool proto = false;
	int st = -1;

	r.buf = malloc(RBUF_CAP);
	if (r.buf) {
		while ((st = rx_one(&r, why, &proto)) == 0)
			;
	} else {
		snprintf(why, sizeof(why), "no memory for a receive buffer");
	}
	free(r.buf);
	if (st == 1) {
		conn_goodbye(c);
	} else if (proto) {
		snprintf(detail, sizeof(detail), "invalid message on %s: %s",
			 net_channel__name(c->channel), why);
		tcp_conn__peer_fail(p, TRANSPORT_DOWN_PROTOCOL, detail);
	} else {
		/* The end of the stream after a goodbye on the other channel
		 * is part of a clean stop. */
		tcp_conn__peer_fail(p, atomic_load(&p->leaving) ?
				       TRANSPORT_DOWN_GOODBYE :
				       TRANSPORT_DOWN_CLOSED, why);
	}
	pthread_mutex_lock(&t->lock);
	p->live_readers--;
	pthread_cond_broadcast(&t->cond);
	pthread_mutex_unlock(&t->lock);
}
