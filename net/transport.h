/* The cluster transport: messages between the nodes running one VM.
 *
 * An interface (struct transport_ops) so that RDMA, DPDK or shared-memory
 * transports can replace the TCP one; every implementation keeps these
 * promises:
 *  - two channels per peer pair, FAST and BULK, that never wait on each
 *    other; messages on one channel arrive complete, once, and in the order
 *    they were sent, or the peer is declared down;
 *  - send is thread-safe: any number of threads may send at once, and two
 *    messages never interleave on a channel;
 *  - nothing a peer sends reaches a callback unless the peer proved the
 *    cluster key and every header check passed (net/net_msg.h);
 *  - recv runs on a transport-owned thread, one per (peer, channel), so
 *    callbacks of one channel are serialised and in order;
 *  - peer_down runs at most once per peer, on a transport-owned thread,
 *    after the last recv callback from that peer has returned; a peer that
 *    went down never comes back in this transport's lifetime;
 *  - stop tells every peer goodbye (they see TRANSPORT_DOWN_GOODBYE, not a
 *    failure); after it returns no callback runs and send fails.
 *
 * Callbacks must not block for long: a stalled recv callback stops its
 * channel, and a peer whose FAST channel is not drained for the peer
 * timeout is declared down by the other side.  Sending from a callback is
 * allowed (e.g. a FAST reply); a BULK send from a FAST callback is not
 * wise (it may wait for the peer to drain megabytes). */
#ifndef KRG_NET_TRANSPORT_H
#define KRG_NET_TRANSPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/net_auth.h"
#include "net/net_msg.h"
#include "net/net_types.h"

#define NET_MAX_NODES	64
/* iovec entries per send, not counting the header. */
#define NET_MAX_IOV	16

enum transport_down_reason {
	TRANSPORT_DOWN_GOODBYE,	/* the peer stopped cleanly */
	TRANSPORT_DOWN_CLOSED,	/* connection closed or reset, no goodbye */
	TRANSPORT_DOWN_TIMEOUT,	/* silent for longer than the peer timeout */
	TRANSPORT_DOWN_PROTOCOL, /* sent a message that failed validation */
	TRANSPORT_DOWN_SEND,	/* a send to it failed or stalled */
};

const char *transport__down_reason_name(enum transport_down_reason r);

struct transport_callbacks {
	void *opaque;
	/* One message from sender on channel ch; payload is valid only
	 * during the call. */
	void (*recv)(void *opaque, unsigned sender, enum net_channel ch,
		     unsigned type, const void *payload, uint32_t len);
	/* detail is a one-line human explanation. */
	void (*peer_down)(void *opaque, unsigned node,
			  enum transport_down_reason reason,
			  const char *detail);
	/* Receives each log line ("krg-vmm: net: ..."); NULL: stderr. */
	void (*log)(void *opaque, const char *line);
};

struct transport;

struct transport_ops {
	const char *name;
	/* Connect the full mesh.  Returns 0 once every peer is connected on
	 * both channels, -1 with the missing peers named if timeout_ms
	 * passes or a peer refuses us.  Callbacks may run before it
	 * returns (a peer that finished first may already be sending). */
	int (*start)(struct transport *t, unsigned timeout_ms, char *err,
		     size_t errlen);
	/* Sends header + iov[0..iovcnt) as one message; iovcnt <= NET_MAX_IOV,
	 * type in 32..191, total <= net_msg__max_payload(ch).  Returns when
	 * the message is in the kernel's hands; -1 with a reason (peer down,
	 * not connected, bad arguments) without blocking on a dead peer. */
	int (*send)(struct transport *t, unsigned node, enum net_channel ch,
		    unsigned type, const struct iovec *iov, int iovcnt,
		    char *err, size_t errlen);
	/* Whether node is connected (both channels) and not down. */
	bool (*peer_up)(struct transport *t, unsigned node);
	/* Goodbye to every peer, then no more callbacks.  Idempotent. */
	void (*stop)(struct transport *t);
	/* stop if needed, then free.  No send may be running or follow. */
	void (*destroy)(struct transport *t);
};

struct transport {
	const struct transport_ops *ops;
};

static inline int transport__start(struct transport *t, unsigned timeout_ms,
				   char *err, size_t errlen)
{
	return t->ops->start(t, timeout_ms, err, errlen);
}

static inline int transport__send(struct transport *t, unsigned node,
				  enum net_channel ch, unsigned type,
				  const struct iovec *iov, int iovcnt,
				  char *err, size_t errlen)
{
	return t->ops->send(t, node, ch, type, iov, iovcnt, err, errlen);
}

/* One contiguous buffer. */
static inline int transport__send_buf(struct transport *t, unsigned node,
				      enum net_channel ch, unsigned type,
				      const void *buf, size_t len, char *err,
				      size_t errlen)
{
	struct iovec iov = { (void *)buf, len };

	return t->ops->send(t, node, ch, type, &iov, len ? 1 : 0, err,
			    errlen);
}

static inline bool transport__peer_up(struct transport *t, unsigned node)
{
	return t->ops->peer_up(t, node);
}

static inline void transport__stop(struct transport *t)
{
	t->ops->stop(t);
}

static inline void transport__destroy(struct transport *t)
{
	if (t)
		t->ops->destroy(t);
}

/* ---- TCP: a full mesh of two connections per peer pair ---- */

struct tcp_transport_config {
	unsigned self;			/* this node's id */
	unsigned nr_nodes;		/* 2..NET_MAX_NODES */
	const char *const *addrs;	/* nr_nodes "host:port" or "[v6]:port" */
	const struct net_key *key;	/* copied */
	uint64_t cluster_id;		/* net_auth__cluster_id() */
	struct transport_callbacks cb;
	/* 0 picks the default in brackets. */
	unsigned heartbeat_ms;		/* FAST idle keep-alive [500] */
	unsigned peer_timeout_ms;	/* FAST silence => down [2000] */
	unsigned handshake_timeout_ms;	/* per connection attempt [2000] */
	unsigned bulk_stall_ms;		/* BULK send without progress [20000] */
	/* A socket already bound to addrs[self] and listening (e.g. bound
	 * to port 0 by a launcher or a test); the transport owns it.
	 * Otherwise the transport binds addrs[self] itself. */
	bool have_listen_fd;
	int listen_fd;
};

/* Resolves every address and binds the listening socket (so a taken port
 * is reported here); connects nothing until start.  NULL with a reason. */
struct transport *tcp_transport__create(const struct tcp_transport_config *cfg,
					char *err, size_t errlen);

#endif
