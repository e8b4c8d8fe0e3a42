/* What the backend loop (netdev.c) and the backends (netdev_slirp.c,
 * netdev_tap.c) share.  Internal to vmm/devices/netdev*. */
#ifndef KRG_VMM_DEVICES_NETDEV_PRIV_H
#define KRG_VMM_DEVICES_NETDEV_PRIV_H

#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "vmm/devices/netdev.h"

/* One backend's half of the loop; every hook runs on the backend thread
 * (open and close excepted, which run before it starts and after it
 * ended). */
struct netdev_backend {
	/* Adds its descriptors (netdev__add_poll) and lowers *timeout_ms
	 * to its next timer. */
	void (*fill)(struct netdev *nd, int *timeout_ms);
	/* After poll (revents through netdev__revents); failed: poll
	 * itself failed. */
	void (*dispatch)(struct netdev *nd, bool failed);
	/* One frame from the guest to the network. */
	void (*output)(struct netdev *nd, const uint8_t *frame, size_t len);
	void (*close)(struct netdev *nd);
};

struct netdev_frame {
	size_t len;
	uint8_t data[];
};

struct netdev {
	const struct netdev_backend *be;
	void *be_state;
	struct netdev_peer peer;
	char name[32];
	int wake_fd;
	pthread_t thread;
	bool started;
	atomic_bool stop;
	/* Frames for the guest waiting for its buffers (thread only). */
	struct netdev_frame *pending[NETDEV_PENDING_MAX];
	unsigned pending_head, pending_count;
	uint8_t *txbuf;
	/* This round's poll set (thread only). */
	struct pollfd *pfd;
	unsigned npfd, pfd_cap;
	struct netdev_stats stats;  /* atomically updated */
	unsigned logged;            /* rate limit of log lines */
};

/* netdev.c, for the backends (backend thread). */
/* A frame for the guest, delivered now or queued (copied). */
void netdev__to_guest(struct netdev *nd, const uint8_t *frame, size_t len);
/* Frames wait for guest buffers: a backend that can hold back (tap)
 * stops reading until they drained. */
bool netdev__guest_blocked(const struct netdev *nd);
/* Adds fd to this round's poll set; returns its index (-1: no memory). */
int netdev__add_poll(struct netdev *nd, int fd, short events);
short netdev__revents(const struct netdev *nd, int idx);
/* One "krg-vmm: <name>: ..." line, the first few times only. */
void netdev__log(struct netdev *nd, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* The backends: set nd->be and nd->be_state.  0, or -1 with one line. */
int netdev_slirp__open(struct netdev *nd, const struct netdev_opts *o,
		       char *err, size_t errlen);
int netdev_tap__open(struct netdev *nd, const struct netdev_opts *o,
		     char *err, size_t errlen);

#endif
