/* Network backends: where a NIC's frames go on the host.
 *
 *   user  libslirp (user-mode TCP/IP, no privileges): the guest is
 *         10.0.2.15, the gateway and the host 10.0.2.2 (its connections
 *         to 10.0.2.2 reach the host's 127.0.0.1), DNS 10.0.2.3, DHCP;
 *         hostfwd rules forward host ports to the guest.  IPv4 only.
 *   tap   a Linux tap device (/dev/net/tun, IFF_TAP | IFF_NO_PI), opened
 *         or created by name; its configuration (address, bridge, up) is
 *         the host's business.  No vnet header: no offloads to pass.
 *
 * Each backend runs one thread that owns everything it touches (libslirp
 * is not thread-safe; it needs its poll loop and timers there).  The
 * device side is a struct netdev_peer: the backend thread pulls the
 * guest's frames with transmit() and pushes frames in with receive().
 * A frame for a guest that has posted no buffer waits in a bounded queue
 * (NETDEV_PENDING_MAX frames, then drops: Ethernet may lose frames, TCP
 * resends) until netdev__kick says the guest posted more; a tap device
 * is not even read meanwhile.  netdev__kick is what the device calls on
 * the driver's queue notifications: one eventfd write, never blocking.
 *
 * Nothing of a backend is saved with the VM: connections through slirp
 * are host sockets, and do not survive a restore (the guest sees them
 * reset); frames waiting in the queue are dropped. */
#ifndef KRG_VMM_DEVICES_NETDEV_H
#define KRG_VMM_DEVICES_NETDEV_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/devices/netdev_opts.h"

#define NETDEV_PENDING_MAX 256
#define NETDEV_FRAME_MAX 65536
#define NETDEV_TX_BUDGET 256   /* guest frames per loop round */

struct netdev_peer {
	/* A frame for the guest: 1 delivered, 0 no buffer now (the backend
	 * keeps it), -1 dropped. */
	int (*receive)(void *ctx, const uint8_t *frame, size_t len);
	/* The guest's next frame into buf: its length, 0 none, -1 one was
	 * dropped (call again). */
	ssize_t (*transmit)(void *ctx, uint8_t *buf, size_t cap);
	void *ctx;
};

struct netdev_stats {
	uint64_t to_guest, to_guest_dropped;  /* frames */
	uint64_t from_guest, from_guest_dropped;
};

struct netdev;

/* Sets the backend up (slirp with its hostfwd sockets bound, or the tap
 * device opened) without starting its thread.  name: for log lines
 * ("-nic 0").  Returns NULL with one line in err. */
struct netdev *netdev__open(const struct netdev_opts *o, const char *name,
			    const struct netdev_peer *peer, char *err,
			    size_t errlen);
/* Starts the thread.  0, or -1 with one line in err. */
int netdev__start(struct netdev *nd, char *err, size_t errlen);
/* The guest made buffers or frames available: any thread, never blocks. */
void netdev__kick(void *nd);
/* Stops the thread (if started) and waits for it: no peer call runs
 * after this returns. */
void netdev__stop(struct netdev *nd);
/* Stops and frees. */
void netdev__close(struct netdev *nd);
void netdev__get_stats(struct netdev *nd, struct netdev_stats *out);

#endif
