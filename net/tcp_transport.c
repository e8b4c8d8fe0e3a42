/* TCP transport: configuration, the listening socket, start (waiting for
 * the mesh that tcp_mesh.c builds) and a clean stop. */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tcp_priv.h"
#include "vmm/errf.h"

/* How long stop waits for peers to close their side after our goodbye. */
#define STOP_LINGER_MS	1000

static const struct transport_ops tcp_ops;

void tcp__sockaddr_text(const struct sockaddr *sa, socklen_t len, char *out,
			size_t cap)
{
	char host[NI_MAXHOST], serv[NI_MAXSERV];

	if (getnameinfo(sa, len, host, sizeof(host), serv, sizeof(serv),
			NI_NUMERICHOST | NI_NUMERICSERV)) {
		snprintf(out, cap, "?");
		return;
	}
	snprintf(out, cap, sa->sa_family == AF_INET6 ? "[%s]:%s" : "%s:%s",
		 host, serv);
}

/* "host:port" or "[v6]:port" to a socket address. */
static int resolve(const char *text, struct sockaddr_storage *sa,
		   socklen_t *salen, char *err, size_t errlen)
{
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM,
				  .ai_flags = AI_NUMERICSERV };
	struct addrinfo *res;
	char host[TCP_ADDR_TEXT];
	const char *port, *end;
	size_t n;
	int r;

	if (text[0] == '[') {
		end = strchr(text, ']');
		if (!end || end[1] != ':') {
			errf(err, errlen, "bad address '%s' (want [v6]:port)", text);
			return -1;
		}
		n = (size_t)(end - text - 1);
		text++;
		port = end + 2;
	} else {
		end = strrchr(text, ':');
		if (!end || memchr(text, ':', (size_t)(end - text))) {
			errf(err, errlen, "bad address '%s' (want host:port)", text);
			return -1;
		}
		n = (size_t)(end - text);
		port = end + 1;
	}
	if (!n || n >= sizeof(host) || !*port) {
		errf(err, errlen, "bad address '%s'", text);
		return -1;
	}
	memcpy(host, text, n);
	host[n] = 0;
	r = getaddrinfo(host, port, &hints, &res);
	if (r) {
		errf(err, errlen, "cannot resolve '%s' port %s: %s", host, port,
		     gai_strerror(r));
		return -1;
	}
	memcpy(sa, res->ai_addr, res->ai_addrlen);
	*salen = res->ai_addrlen;
	freeaddrinfo(res);
	return 0;
}

static int listen_on(const struct tcp_peer *me, char *err, size_t errlen)
{
	int one = 1;
	int fd = socket(me->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0) {
		errf(err, errlen, "socket: %s", strerror(errno));
		return -1;
	}
	setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
	if (bind(fd, (const struct sockaddr *)&me->sa, me->salen) ||
	    listen(fd, 128)) {
		errf(err, errlen, "cannot listen on %s: %s", me->addr,
		     strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

static void init_peer(struct tcp_transport *t, unsigned i)
{
	struct tcp_peer *p = &t->peers[i];

	p->t = t;
	p->id = i;
	atomic_init(&p->state, TCP_PEER_CONNECTING);
	atomic_init(&p->leaving, false);
	snprintf(p->last_err, sizeof(p->last_err), "did not connect");
	for (int ch = 0; ch < NET_NR_CHANNELS; ch++) {
		p->ch[ch].peer = p;
		p->ch[ch].channel = (uint8_t)ch;
		p->ch[ch].fd = -1;
		atomic_init(&p->ch[ch].ready, false);
		pthread_mutex_init(&p->ch[ch].send_lock, NULL);
	}
}

static void free_transport(struct tcp_transport *t)
{
	for (unsigned i = 0; t->peers && i < t->nr_nodes; i++) {
		for (int ch = 0; ch < NET_NR_CHANNELS; ch++) {
			struct tcp_conn *c = &t->peers[i].ch[ch];

			if (c->fd >= 0)
				close(c->fd);
			pthread_mutex_destroy(&c->send_lock);
		}
	}
	if (t->listen_fd >= 0)
		close(t->listen_fd);
	pthread_mutex_destroy(&t->lock);
	pthread_mutex_destroy(&t->log_lock);
	pthread_cond_destroy(&t->cond);
	net_auth__key_wipe(&t->key);
	free(t->peers);
	free(t);
}

struct transport *tcp_transport__create(const struct tcp_transport_config *cfg,
					char *err, size_t errlen)
{
	struct tcp_transport *t;
	pthread_condattr_t ca;

	if (cfg->nr_nodes < 2 || cfg->nr_nodes > NET_MAX_NODES ||
	    cfg->self >= cfg->nr_nodes || !cfg->addrs || !cfg->key ||
	    cfg->key->len < NET_KEY_MIN || cfg->key->len > NET_KEY_MAX) {
		errf(err, errlen, "bad transport configuration (node %u of %u, %s)",
		     cfg->self, cfg->nr_nodes,
		     cfg->key ? "key given" : "no key");
		goto fail_early;
	}
	if (sodium_init() < 0) {
		errf(err, errlen, "libsodium failed to initialise");
		goto fail_early;
	}
	t = calloc(1, sizeof(*t));
	if (t)
		t->peers = calloc(cfg->nr_nodes, sizeof(*t->peers));
	if (!t || !t->peers) {
		free(t);
		errf(err, errlen, "out of memory");
		goto fail_early;
	}
	t->base.ops = &tcp_ops;
	t->self = cfg->self;
	t->nr_nodes = cfg->nr_nodes;
	t->key = *cfg->key;
	t->cluster_id = cfg->cluster_id;
	t->cb = cfg->cb;
	t->heartbeat_ms = cfg->heartbeat_ms ? cfg->heartbeat_ms : 500;
	t->peer_timeout_ms = cfg->peer_timeout_ms ? cfg->peer_timeout_ms : 2000;
	t->handshake_timeout_ms = cfg->handshake_timeout_ms ?
				  cfg->handshake_timeout_ms : 2000;
	t->bulk_stall_ms = cfg->bulk_stall_ms ? cfg->bulk_stall_ms : 20000;
	t->listen_fd = cfg->have_listen_fd ? cfg->listen_fd : -1;
	atomic_init(&t->stopping, false);
	pthread_mutex_init(&t->lock, NULL);
	pthread_mutex_init(&t->log_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&t->cond, &ca);
	pthread_condattr_destroy(&ca);
	for (unsigned i = 0; i < t->nr_nodes; i++)
		init_peer(t, i);
	for (unsigned i = 0; i < t->nr_nodes; i++) {
		struct tcp_peer *p = &t->peers[i];

		snprintf(p->addr, sizeof(p->addr), "%s",
			 cfg->addrs[i] ? cfg->addrs[i] : "");
		if (resolve(p->addr, &p->sa, &p->salen, err, errlen))
			goto fail;
	}
	if (t->listen_fd < 0) {
		t->listen_fd = listen_on(&t->peers[t->self], err, errlen);
		if (t->listen_fd < 0)
			goto fail;
	}
	return &t->base;
fail:
	free_transport(t);
	return NULL;
fail_early:
	/* The caller's listening socket is ours whatever happens. */
	if (cfg->have_listen_fd)
		close(cfg->listen_fd);
	return NULL;
}

/* Under t->lock: whether start is done, and if it failed, why. */
static int mesh_state(struct tcp_transport *t, uint64_t deadline, char *err,
		      size_t errlen)
{
	bool missing = false, fatal = false;
	size_t off = 0;
	char buf[1024] = "";

	for (unsigned i = 0; i < t->nr_nodes; i++) {
		const struct tcp_peer *p = &t->peers[i];
		int st = atomic_load(&p->state);

		if (i == t->self || st == TCP_PEER_UP)
			continue;
		missing = true;
		fatal |= p->fatal || st == TCP_PEER_DOWN;
		if (off < sizeof(buf) - 1)
			off += (size_t)snprintf(buf + off, sizeof(buf) - off,
						"%snode %u (%s): %s",
						off ? "; " : "", i, p->addr,
						st == TCP_PEER_DOWN ?
						p->down_detail : p->last_err);
	}
	if (!missing)
		return 0;
	if (!fatal && tcp__now_ms() < deadline && !atomic_load(&t->stopping))
		return 1;
	errf(err, errlen, "cluster mesh incomplete: %s", buf);
	return -1;
}

static int tcp_start(struct transport *base, unsigned timeout_ms, char *err,
		     size_t errlen)
{
	struct tcp_transport *t = (struct tcp_transport *)base;
	uint64_t deadline = tcp__now_ms() + timeout_ms;
	struct timespec ts;
	int r = 0;

	pthread_mutex_lock(&t->lock);
	if (t->started || atomic_load(&t->stopping)) {
		pthread_mutex_unlock(&t->lock);
		errf(err, errlen, "transport already started");
		return -1;
	}
	t->started = true;
	if (pthread_create(&t->accept_tid, NULL, tcp_mesh__accept_main, t) == 0)
		t->accept_running = true;
	if (pthread_create(&t->timer_tid, NULL, tcp_conn__timer_main, t) == 0)
		t->timer_running = true;
	r = t->accept_running && t->timer_running ? 0 : -1;
	for (unsigned i = t->self + 1; !r && i < t->nr_nodes; i++) {
		for (int ch = 0; !r && ch < NET_NR_CHANNELS; ch++) {
			struct tcp_thread th = { .fd = -1, .dial = true,
						 .peer = i,
						 .channel = (uint8_t)ch,
						 .deadline_ms = deadline };

			snprintf(th.from, sizeof(th.from), "%s",
				 t->peers[i].addr);
			r = tcp_mesh__spawn(t, &th);
		}
	}
	if (r) {
		pthread_mutex_unlock(&t->lock);
		errf(err, errlen, "cannot start transport threads");
		return -1;
	}
	while ((r = mesh_state(t, deadline, err, errlen)) > 0) {
		ts.tv_sec = (time_t)(deadline / 1000);
		ts.tv_nsec = (long)(deadline % 1000) * 1000000L;
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	pthread_mutex_unlock(&t->lock);
	return r;
}

static unsigned live_readers(struct tcp_transport *t)
{
	unsigned n = 0;

	for (unsigned i = 0; i < t->nr_nodes; i++)
		n += t->peers[i].live_readers;
	return n;
}

static void tcp_stop(struct transport *base)
{
	struct tcp_transport *t = (struct tcp_transport *)base;
	uint64_t until = tcp__now_ms() + STOP_LINGER_MS;
	struct timespec ts;

	pthread_mutex_lock(&t->lock);
	if (t->stopped || atomic_load(&t->stopping)) {
		pthread_mutex_unlock(&t->lock);
		return;
	}
	atomic_store(&t->stopping, true);
	pthread_cond_broadcast(&t->cond);
	/* Handshakes and dials in progress: cut them short. */
	for (struct tcp_thread *th = t->threads; th; th = th->next)
		if (th->fd >= 0)
			shutdown(th->fd, SHUT_RDWR);
	pthread_mutex_unlock(&t->lock);
	if (t->accept_running) {
		shutdown(t->listen_fd, SHUT_RDWR);
		pthread_join(t->accept_tid, NULL);
	}
	if (t->timer_running)
		pthread_join(t->timer_tid, NULL);
	tcp_conn__goodbye_all(t);
	/* Receivers read on until each peer closes its side, so nothing it
	 * sent before its own goodbye is cut off; a peer that does not answer
	 * is cut off after the linger time. */
	pthread_mutex_lock(&t->lock);
	while (live_readers(t) && tcp__now_ms() < until) {
		ts.tv_sec = (time_t)(until / 1000);
		ts.tv_nsec = (long)(until % 1000) * 1000000L;
		pthread_cond_timedwait(&t->cond, &t->lock, &ts);
	}
	for (unsigned i = 0; i < t->nr_nodes; i++)
		for (int ch = 0; ch < NET_NR_CHANNELS; ch++)
			if (t->peers[i].ch[ch].fd >= 0)
				shutdown(t->peers[i].ch[ch].fd, SHUT_RDWR);
	pthread_mutex_unlock(&t->lock);
	tcp_mesh__reap(t, true);
	pthread_mutex_lock(&t->lock);
	t->stopped = true;
	pthread_mutex_unlock(&t->lock);
}

static void tcp_destroy(struct transport *base)
{
	tcp_stop(base);
	free_transport((struct tcp_transport *)base);
}

static bool tcp_peer_up(struct transport *base, unsigned node)
{
	struct tcp_transport *t = (struct tcp_transport *)base;

	return node < t->nr_nodes && node != t->self &&
	       atomic_load(&t->peers[node].state) == TCP_PEER_UP;
}

static const struct transport_ops tcp_ops = {
	.name = "tcp",
	.start = tcp_start,
	.send = tcp_conn__send,
	.peer_up = tcp_peer_up,
	.stop = tcp_stop,
	.destroy = tcp_destroy,
};
