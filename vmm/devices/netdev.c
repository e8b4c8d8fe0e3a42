/* The backend thread: one poll loop per backend, moving the guest's
 * frames out and the network's frames in, with a bounded queue for
 * frames the guest has no buffer for yet. */
#include "vmm/devices/netdev_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "vmm/errf.h"

#define NETDEV_LOG_LIMIT 8
#define NETDEV_IDLE_MS 1000

void netdev__log(struct netdev *nd, const char *fmt, ...)
{
	char line[256];
	va_list ap;

	if (nd->logged >= NETDEV_LOG_LIMIT)
		return;
	va_start(ap, fmt);
	vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	nd->logged++;
	fprintf(stderr, "krg-vmm: %s: %s%s\n", nd->name, line,
		nd->logged == NETDEV_LOG_LIMIT ? " (no more such lines)" : "");
}

static void count(uint64_t *c)
{
	__atomic_fetch_add(c, 1, __ATOMIC_RELAXED);
}

int netdev__add_poll(struct netdev *nd, int fd, short events)
{
	if (nd->npfd == nd->pfd_cap) {
		unsigned cap = nd->pfd_cap ? nd->pfd_cap * 2 : 16;
		struct pollfd *p = realloc(nd->pfd, cap * sizeof(*p));

		if (!p)
			return -1;
		nd->pfd = p;
		nd->pfd_cap = cap;
	}
	nd->pfd[nd->npfd] = (struct pollfd){ .fd = fd, .events = events };
	return (int)nd->npfd++;
}

short netdev__revents(const struct netdev *nd, int idx)
{
	if (idx < 0 || (unsigned)idx >= nd->npfd)
		return 0;
	return nd->pfd[idx].revents;
}

bool netdev__guest_blocked(const struct netdev *nd)
{
	return nd->pending_count != 0;
}

void netdev__to_guest(struct netdev *nd, const uint8_t *frame, size_t len)
{
	struct netdev_frame *f;
	int r;

	/* Order matters: nothing may overtake frames already waiting. */
	if (!nd->pending_count) {
		r = nd->peer.receive(nd->peer.ctx, frame, len);
		if (r > 0) {
			count(&nd->stats.to_guest);
			return;
		}
		if (r < 0) {
			count(&nd->stats.to_guest_dropped);
			return;
		}
	}
	if (nd->pending_count >= NETDEV_PENDING_MAX || len > NETDEV_FRAME_MAX ||
	    !(f = malloc(sizeof(*f) + len))) {
		count(&nd->stats.to_guest_dropped);
		return;
	}
	f->len = len;
	memcpy(f->data, frame, len);
	nd->pending[(nd->pending_head + nd->pending_count++) %
		    NETDEV_PENDING_MAX] = f;
}

static void flush_pending(struct netdev *nd)
{
	while (nd->pending_count) {
		struct netdev_frame *f = nd->pending[nd->pending_head];
		int r = nd->peer.receive(nd->peer.ctx, f->data, f->len);

		if (!r)
			return;
		count(r > 0 ? &nd->stats.to_guest
			    : &nd->stats.to_guest_dropped);
		free(f);
		nd->pending_head = (nd->pending_head + 1) % NETDEV_PENDING_MAX;
		nd->pending_count--;
	}
}

static void drop_pending(struct netdev *nd)
{
	while (nd->pending_count) {
		free(nd->pending[nd->pending_head]);
		nd->pending_head = (nd->pending_head + 1) % NETDEV_PENDING_MAX;
		nd->pending_count--;
	}
}

/* Returns true when the budget ran out (more may be waiting). */
static bool pump_tx(struct netdev *nd)
{
	for (unsigned i = 0; i < NETDEV_TX_BUDGET; i++) {
		ssize_t n = nd->peer.transmit(nd->peer.ctx, nd->txbuf,
					      NETDEV_FRAME_MAX);

		if (!n)
			return false;
		if (n < 0) {
			count(&nd->stats.from_guest_dropped);
			continue;
		}
		count(&nd->stats.from_guest);
		nd->be->output(nd, nd->txbuf, (size_t)n);
	}
	return true;
}

static void *netdev_thread(void *arg)
{
	struct netdev *nd = arg;
	bool busy = true;

	while (!atomic_load(&nd->stop)) {
		int timeout = busy ? 0 : NETDEV_IDLE_MS, r;
		uint64_t v;

		nd->npfd = 0;
		if (netdev__add_poll(nd, nd->wake_fd, POLLIN) < 0) {
			netdev__log(nd, "out of memory; the backend stops");
			break;
		}
		nd->be->fill(nd, &timeout);
		r = poll(nd->pfd, nd->npfd, timeout);
		if (r < 0 && errno != EINTR)
			netdev__log(nd, "poll: %s", strerror(errno));
		if (nd->pfd[0].revents & POLLIN)
			(void)!read(nd->wake_fd, &v, sizeof(v));
		nd->be->dispatch(nd, r < 0);
		flush_pending(nd);
		busy = pump_tx(nd);
	}
	return NULL;
}

struct netdev *netdev__open(const struct netdev_opts *o, const char *name,
			    const struct netdev_peer *peer, char *err,
			    size_t errlen)
{
	struct netdev *nd = calloc(1, sizeof(*nd));
	int r;

	if (!nd || !(nd->txbuf = malloc(NETDEV_FRAME_MAX))) {
		free(nd);
		errf(err, errlen, "%s: out of memory", name);
		return NULL;
	}
	snprintf(nd->name, sizeof(nd->name), "%s", name);
	nd->peer = *peer;
	atomic_init(&nd->stop, false);
	nd->wake_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (nd->wake_fd < 0) {
		errf(err, errlen, "%s: eventfd: %s", name, strerror(errno));
		free(nd->txbuf);
		free(nd);
		return NULL;
	}
	if (o->type == NETDEV_USER)
		r = netdev_slirp__open(nd, o, err, errlen);
	else if (o->type == NETDEV_TAP)
		r = netdev_tap__open(nd, o, err, errlen);
	else {
		errf(err, errlen, "%s: no such network backend", name);
		r = -1;
	}
	if (r < 0) {
		close(nd->wake_fd);
		free(nd->txbuf);
		free(nd);
		return NULL;
	}
	return nd;
}

int netdev__start(struct netdev *nd, char *err, size_t errlen)
{
	int r = pthread_create(&nd->thread, NULL, netdev_thread, nd);

	if (r) {
		errf(err, errlen, "%s: cannot start its thread: %s", nd->name,
		     strerror(r));
		return -1;
	}
	nd->started = true;
	return 0;
}

void netdev__kick(void *opaque)
{
	struct netdev *nd = opaque;
	uint64_t one = 1;

	/* EAGAIN means the counter is already non-zero: awake anyway. */
	(void)!write(nd->wake_fd, &one, sizeof(one));
}

void netdev__stop(struct netdev *nd)
{
	if (!nd || !nd->started)
		return;
	atomic_store(&nd->stop, true);
	netdev__kick(nd);
	pthread_join(nd->thread, NULL);
	nd->started = false;
}

void netdev__close(struct netdev *nd)
{
	if (!nd)
		return;
	netdev__stop(nd);
	nd->be->close(nd);
	drop_pending(nd);
	close(nd->wake_fd);
	free(nd->pfd);
	free(nd->txbuf);
	free(nd);
}

void netdev__get_stats(struct netdev *nd, struct netdev_stats *out)
{
	out->to_guest = __atomic_load_n(&nd->stats.to_guest, __ATOMIC_RELAXED);
	out->to_guest_dropped = __atomic_load_n(&nd->stats.to_guest_dropped,
						__ATOMIC_RELAXED);
	out->from_guest = __atomic_load_n(&nd->stats.from_guest,
					  __ATOMIC_RELAXED);
	out->from_guest_dropped = __atomic_load_n(
		&nd->stats.from_guest_dropped, __ATOMIC_RELAXED);
}
