/* The user-mode network: libslirp on the backend thread, with its poll
 * descriptors and timers folded into the loop of netdev.c. */
#include "vmm/devices/netdev_priv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <slirp/libslirp.h>

#include "vmm/errf.h"

#define SLIRP_TIMERS 8

struct slirp_timer {
	bool used;
	bool armed;
	SlirpTimerId id;          /* timer_new_opaque */
	SlirpTimerCb cb;          /* timer_new (older interface) */
	void *cb_opaque;
	int64_t expire_ms;
};

struct slirp_be {
	Slirp *slirp;
	struct netdev *nd;
	struct slirp_timer timers[SLIRP_TIMERS];
};

static int64_t now_ns(void)
{
	struct timespec ts;

	/* Slirp's TCP timers are about the network, which runs in host
	 * time: monotonic, not the guest's clock. */
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static ssize_t cb_send_packet(const void *buf, size_t len, void *opaque)
{
	struct slirp_be *s = opaque;

	netdev__to_guest(s->nd, buf, len);
	return (ssize_t)len;
}

static void cb_guest_error(const char *msg, void *opaque)
{
	struct slirp_be *s = opaque;

	netdev__log(s->nd, "guest network error: %s", msg);
}

static int64_t cb_clock_get_ns(void *opaque)
{
	return now_ns();
}

static struct slirp_timer *timer_slot(struct slirp_be *s)
{
	for (unsigned i = 0; i < SLIRP_TIMERS; i++)
		if (!s->timers[i].used) {
			memset(&s->timers[i], 0, sizeof(s->timers[i]));
			s->timers[i].used = true;
			return &s->timers[i];
		}
	netdev__log(s->nd, "slirp wants more than %d timers", SLIRP_TIMERS);
	return NULL;
}

static void *cb_timer_new(SlirpTimerCb cb, void *cb_opaque, void *opaque)
{
	struct slirp_timer *t = timer_slot(opaque);

	if (t) {
		t->cb = cb;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void *cb_timer_new_opaque(SlirpTimerId id, void *cb_opaque,
				 void *opaque)
{
	struct slirp_timer *t = timer_slot(opaque);

	if (t) {
		t->id = id;
		t->cb_opaque = cb_opaque;
	}
	return t;
}

static void cb_timer_free(void *timer, void *opaque)
{
	struct slirp_timer *t = timer;

	if (t)
		t->used = t->armed = false;
}

static void cb_timer_mod(void *timer, int64_t expire_ms, void *opaque)
{
	struct slirp_timer *t = timer;

	if (t) {
		t->expire_ms = expire_ms;
		t->armed = true;
	}
}

/* Descriptors are collected afresh each round (slirp_pollfds_fill). */
static void cb_register_poll_fd(int fd, void *opaque)
{
}

static void cb_unregister_poll_fd(int fd, void *opaque)
{
}

static void cb_notify(void *opaque)
{
	/* Only ever called from slirp on our own thread: the loop looks
	 * again anyway. */
}

static const SlirpCb slirp_cbs = {
	.send_packet = cb_send_packet,
	.guest_error = cb_guest_error,
	.clock_get_ns = cb_clock_get_ns,
	.timer_new = cb_timer_new,
	.timer_free = cb_timer_free,
	.timer_mod = cb_timer_mod,
	.register_poll_fd = cb_register_poll_fd,
	.unregister_poll_fd = cb_unregister_poll_fd,
	.notify = cb_notify,
	.timer_new_opaque = cb_timer_new_opaque,
};

static short to_poll(int ev)
{
	short e = 0;

	if (ev & SLIRP_POLL_IN)
		e |= POLLIN;
	if (ev & SLIRP_POLL_OUT)
		e |= POLLOUT;
	if (ev & SLIRP_POLL_PRI)
		e |= POLLPRI;
	if (ev & SLIRP_POLL_ERR)
		e |= POLLERR;
	if (ev & SLIRP_POLL_HUP)
		e |= POLLHUP;
	return e;
}

static int add_poll(int fd, int events, void *opaque)
{
	struct slirp_be *s = opaque;

	return netdev__add_poll(s->nd, fd, to_poll(events));
}

static int get_revents(int idx, void *opaque)
{
	struct slirp_be *s = opaque;
	short r = netdev__revents(s->nd, idx);
	int ev = 0;

	if (r & POLLIN)
		ev |= SLIRP_POLL_IN;
	if (r & POLLOUT)
		ev |= SLIRP_POLL_OUT;
	if (r & POLLPRI)
		ev |= SLIRP_POLL_PRI;
	if (r & POLLERR)
		ev |= SLIRP_POLL_ERR;
	if (r & POLLHUP)
		ev |= SLIRP_POLL_HUP;
	return ev;
}

static void slirp_fill(struct netdev *nd, int *timeout_ms)
{
	struct slirp_be *s = nd->be_state;
	uint32_t t = (uint32_t)*timeout_ms;
	int64_t now = now_ns() / 1000000;

	slirp_pollfds_fill(s->slirp, &t, add_poll, s);
	for (unsigned i = 0; i < SLIRP_TIMERS; i++) {
		struct slirp_timer *tm = &s->timers[i];

		if (tm->used && tm->armed) {
			int64_t d = tm->expire_ms - now;

			if (d < 0)
				d = 0;
			if ((uint64_t)d < t)
				t = (uint32_t)d;
		}
	}
	if (t < (uint32_t)*timeout_ms)
		*timeout_ms = (int)t;
}

static void slirp_dispatch(struct netdev *nd, bool failed)
{
	struct slirp_be *s = nd->be_state;
	int64_t now;

	slirp_pollfds_poll(s->slirp, failed, get_revents, s);
	now = now_ns() / 1000000;
	for (unsigned i = 0; i < SLIRP_TIMERS; i++) {
		struct slirp_timer *tm = &s->timers[i];

		if (!tm->used || !tm->armed || tm->expire_ms > now)
			continue;
		tm->armed = false;
		if (tm->cb)
			tm->cb(tm->cb_opaque);
		else
			slirp_handle_timer(s->slirp, tm->id, tm->cb_opaque);
	}
}

static void slirp_output(struct netdev *nd, const uint8_t *frame, size_t len)
{
	struct slirp_be *s = nd->be_state;

	slirp_input(s->slirp, frame, (int)len);
}

static void slirp_close(struct netdev *nd)
{
	struct slirp_be *s = nd->be_state;

	if (s->slirp)
		slirp_cleanup(s->slirp);
	free(s);
	nd->be_state = NULL;
}

static const struct netdev_backend slirp_backend = {
	.fill = slirp_fill,
	.dispatch = slirp_dispatch,
	.output = slirp_output,
	.close = slirp_close,
};

static struct in_addr in4(uint32_t host_order)
{
	return (struct in_addr){ .s_addr = htonl(host_order) };
}

static int add_hostfwd(struct netdev *nd, struct slirp_be *s,
		       const struct net_hostfwd *h, char *err, size_t errlen)
{
	char ha[INET_ADDRSTRLEN] = "", ga[INET_ADDRSTRLEN];
	struct in_addr host = in4(h->host_addr);
	struct in_addr guest = in4(h->guest_addr ? h->guest_addr
						 : NET_USER_GUEST);

	errno = 0;
	if (slirp_add_hostfwd(s->slirp, h->udp, host, h->host_port, guest,
			      h->guest_port) == 0)
		return 0;
	if (h->host_addr)
		inet_ntop(AF_INET, &host, ha, sizeof(ha));
	inet_ntop(AF_INET, &guest, ga, sizeof(ga));
	errf(err, errlen, "%s: hostfwd=%s:%s:%u-%s:%u: cannot listen on host "
	     "port %u%s%s", nd->name, h->udp ? "udp" : "tcp", ha, h->host_port,
	     ga, h->guest_port, h->host_port, errno ? ": " : "",
	     errno ? strerror(errno) : "");
	return -1;
}

int netdev_slirp__open(struct netdev *nd, const struct netdev_opts *o,
		       char *err, size_t errlen)
{
	struct slirp_be *s = calloc(1, sizeof(*s));
	SlirpConfig cfg;

	if (!s) {
		errf(err, errlen, "%s: out of memory", nd->name);
		return -1;
	}
	s->nd = nd;
	nd->be = &slirp_backend;
	nd->be_state = s;
	memset(&cfg, 0, sizeof(cfg));
	cfg.version = 4;
	cfg.restricted = o->restricted;
	cfg.in_enabled = true;
	cfg.vnetwork = in4(NET_USER_NETWORK);
	cfg.vnetmask = in4(NET_USER_NETMASK);
	cfg.vhost = in4(NET_USER_HOST);
	cfg.vdhcp_start = in4(NET_USER_GUEST);
	cfg.vnameserver = in4(NET_USER_DNS);
	cfg.in6_enabled = false;
	s->slirp = slirp_new(&cfg, &slirp_cbs, s);
	if (!s->slirp) {
		errf(err, errlen, "%s: libslirp refused its configuration",
		     nd->name);
		slirp_close(nd);
		return -1;
	}
	for (unsigned i = 0; i < o->nr_hostfwd && i < NET_MAX_HOSTFWD; i++)
		if (add_hostfwd(nd, s, &o->hostfwd[i], err, errlen) < 0) {
			slirp_close(nd);
			return -1;
		}
	return 0;
}
