/* A tap device as the backend: frames are read and written whole, one per
 * read()/write(), without a packet-information or vnet header. */
#include "vmm/devices/netdev_priv.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/if.h>
#include <linux/if_tun.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vmm/errf.h"

#define TAP_READ_BUDGET 64

struct tap_be {
	int fd;
	int idx;                  /* this round's poll index, -1: none */
	char ifname[IFNAMSIZ];
	uint8_t buf[NETDEV_FRAME_MAX];
};

static void tap_fill(struct netdev *nd, int *timeout_ms)
{
	struct tap_be *t = nd->be_state;

	/* Frames still waiting for guest buffers: leave the rest in the
	 * kernel's queue (it drops when full, as a real link would). */
	t->idx = -1;
	if (!netdev__guest_blocked(nd))
		t->idx = netdev__add_poll(nd, t->fd, POLLIN);
}

static void tap_dispatch(struct netdev *nd, bool failed)
{
	struct tap_be *t = nd->be_state;

	if (!(netdev__revents(nd, t->idx) & (POLLIN | POLLERR | POLLHUP)))
		return;
	for (unsigned i = 0; i < TAP_READ_BUDGET && !netdev__guest_blocked(nd);
	     i++) {
		ssize_t n = read(t->fd, t->buf, sizeof(t->buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN)
				netdev__log(nd, "reading %s: %s", t->ifname,
					    strerror(errno));
			return;
		}
		netdev__to_guest(nd, t->buf, (size_t)n);
	}
}

static void tap_output(struct netdev *nd, const uint8_t *frame, size_t len)
{
	struct tap_be *t = nd->be_state;
	ssize_t n;

	do
		n = write(t->fd, frame, len);
	while (n < 0 && errno == EINTR);
	/* A full queue (EAGAIN) or a link that is down (EIO) loses the
	 * frame, as a cable would. */
	if (n < 0 && errno != EAGAIN)
		netdev__log(nd, "writing %s: %s%s", t->ifname, strerror(errno),
			    errno == EIO ? " (is the interface up?)" : "");
}

static void tap_close(struct netdev *nd)
{
	struct tap_be *t = nd->be_state;

	if (t->fd >= 0)
		close(t->fd);
	free(t);
	nd->be_state = NULL;
}

static const struct netdev_backend tap_backend = {
	.fill = tap_fill,
	.dispatch = tap_dispatch,
	.output = tap_output,
	.close = tap_close,
};

int netdev_tap__open(struct netdev *nd, const struct netdev_opts *o,
		     char *err, size_t errlen)
{
	struct tap_be *t = calloc(1, sizeof(*t));
	struct ifreq ifr;
	int e;

	if (!t) {
		errf(err, errlen, "%s: out of memory", nd->name);
		return -1;
	}
	t->idx = -1;
	nd->be = &tap_backend;
	nd->be_state = t;
	t->fd = open("/dev/net/tun", O_RDWR | O_NONBLOCK | O_CLOEXEC);
	if (t->fd < 0) {
		errf(err, errlen, "%s: cannot open /dev/net/tun: %s", nd->name,
		     strerror(errno));
		tap_close(nd);
		return -1;
	}
	memset(&ifr, 0, sizeof(ifr));
	ifr.ifr_flags = IFF_TAP | IFF_NO_PI;
	snprintf(ifr.ifr_name, sizeof(ifr.ifr_name), "%s", o->ifname);
	if (ioctl(t->fd, TUNSETIFF, &ifr) < 0) {
		e = errno;
		errf(err, errlen, "%s: tap device '%s': %s%s", nd->name,
		     o->ifname[0] ? o->ifname : "(new)", strerror(e),
		     e == EPERM ? " (needs CAP_NET_ADMIN, or a tap device "
				  "made for this user: ip tuntap add ... user)"
		     : e == EBUSY ? " (in use by another program)"
		     : e == EINVAL ? " (is it a tun device, or with other "
				     "flags?)" : "");
		tap_close(nd);
		return -1;
	}
	snprintf(t->ifname, sizeof(t->ifname), "%s", ifr.ifr_name);
	if (!o->ifname[0])
		fprintf(stderr, "krg-vmm: %s: tap device %s\n", nd->name,
			t->ifname);
	return 0;
}
