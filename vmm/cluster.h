/* This node's membership in a cluster VM: the transport to every other
 * node, dispatch of incoming messages by subsystem (the type ranges of
 * net/net_types.h), and the control protocol that assembles and stops the
 * VM:
 *
 *   node 0                                   node i (i > 0)
 *   DESCRIPTION (BULK) -------------------->  validate, build the machine
 *               <------------------------- READY
 *   (all READY) load the guest, then
 *   START ---------------------------------->  start the vCPU threads
 *   ...
 *   STOP {status, reason} <-> any node: every node stops with that status.
 *   PAUSE {gen, on} ------------------------>  park (on) or resume the vCPUs
 *               <------------------------- PAUSED {gen} (all parked)
 *
 * A peer that dies or goes silent is reported once through the down hook
 * (the machine stops, naming the node), except after a STOP, when peers
 * leaving is expected. */
#ifndef KRG_VMM_CLUSTER_H
#define KRG_VMM_CLUSTER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "net/transport.h"
#include "vmm/vm_description.h"

#define CLUSTER_T_DESCRIPTION	(NET_TYPE_CONTROL_FIRST + 1)
#define CLUSTER_T_READY		(NET_TYPE_CONTROL_FIRST + 2)
#define CLUSTER_T_START		(NET_TYPE_CONTROL_FIRST + 3)
#define CLUSTER_T_STOP		(NET_TYPE_CONTROL_FIRST + 4)
#define CLUSTER_T_STATS_REQ	(NET_TYPE_CONTROL_FIRST + 5)
#define CLUSTER_T_STATS		(NET_TYPE_CONTROL_FIRST + 6)
#define CLUSTER_T_PAUSE		(NET_TYPE_CONTROL_FIRST + 7)
#define CLUSTER_T_PAUSED	(NET_TYPE_CONTROL_FIRST + 8)

#define CLUSTER_REASON_MAX 200

struct cluster;

/* A subsystem's messages (its whole 32-type range), on a transport
 * thread: must not block for long. */
typedef void (*cluster_recv_fn)(void *ctx, unsigned sender, unsigned type,
				const void *payload, uint32_t len);

struct cluster_hooks {
	void *ctx;
	/* Another node asked the VM to stop (after it stopped itself). */
	void (*stop)(void *ctx, int status, const char *reason);
	/* A peer died or broke the protocol while the VM ran. */
	void (*peer_down)(void *ctx, unsigned node, const char *why);
	/* Node 0 asks for this node's counters: fill buf, return the length
	 * (0: none yet).  On a transport thread: must not block. */
	size_t (*stats)(void *ctx, void *buf, size_t cap);
	/* Node 0 pauses (on) or resumes this node's vCPUs.  On a transport
	 * thread: must not block; once paused, call cluster__pause_ack. */
	void (*pause)(void *ctx, bool on);
};

struct cluster_opts {
	unsigned self, nr_nodes;
	const char *const *addrs;      /* nr_nodes "host:port" */
	const struct net_key *key;     /* copied */
	uint64_t cluster_id;
	int listen_fd;                 /* bound to addrs[self], or -1 */
	unsigned peer_timeout_ms;      /* 0: the transport's default */
};

struct cluster *cluster__create(const struct cluster_opts *o, char *err,
				size_t errlen);
/* Stops the transport (goodbye to every peer) and frees. */
void cluster__destroy(struct cluster *c);

/* Before cluster__start: hooks and subsystem handlers. */
void cluster__set_hooks(struct cluster *c, const struct cluster_hooks *h);
/* first_type is the first type of a net_types.h range (64, 96, 128, 160). */
int cluster__register(struct cluster *c, unsigned first_type,
		      cluster_recv_fn fn, void *ctx);

/* Connects the full mesh. */
int cluster__start(struct cluster *c, unsigned timeout_ms, char *err,
		   size_t errlen);

unsigned cluster__self(const struct cluster *c);
unsigned cluster__nr_nodes(const struct cluster *c);
const char *cluster__addr(const struct cluster *c, unsigned node);

int cluster__send(struct cluster *c, unsigned node, enum net_channel ch,
		  unsigned type, const struct iovec *iov, int iovcnt);
/* To every other node; -1 if any send failed. */
int cluster__broadcast(struct cluster *c, enum net_channel ch, unsigned type,
		       const struct iovec *iov, int iovcnt);

/* The assembly steps of the diagram above; waits return -1 with a reason
 * on timeout, on a peer going down, or on a STOP. */
int cluster__send_description(struct cluster *c,
			       const struct vm_description *d, char *err,
			       size_t errlen);
int cluster__wait_description(struct cluster *c, struct vm_description *d,
			      unsigned timeout_ms, char *err, size_t errlen);
int cluster__send_ready(struct cluster *c, char *err, size_t errlen);
int cluster__wait_ready(struct cluster *c, unsigned timeout_ms, char *err,
			size_t errlen);
int cluster__send_start(struct cluster *c, char *err, size_t errlen);
int cluster__wait_start(struct cluster *c, unsigned timeout_ms, char *err,
			size_t errlen);

/* Tells every node to stop with status and reason (once; later calls do
 * nothing).  Peers leaving after this are not failures. */
/* Node 0: every other node's stats reply (each `each` bytes) into
 * bufs[node * each], have[node] set for those that answered in time. */
int cluster__gather_stats(struct cluster *c, void *bufs, size_t each,
			  bool *have, unsigned timeout_ms);

void cluster__broadcast_stop(struct cluster *c, int status,
			     const char *reason);
bool cluster__stopping(struct cluster *c);

/* Node 0: asks every other node to pause (on) or resume its vCPUs; -1 if
 * a send failed.  Then, for a pause, waits until every node confirmed;
 * -1 with the nodes that did not on a timeout, a STOP or a peer down. */
int cluster__send_pause(struct cluster *c, bool on);
int cluster__wait_paused(struct cluster *c, unsigned timeout_ms, char *err,
			 size_t errlen);
/* Node > 0: every local vCPU parked for node 0's latest PAUSE. */
void cluster__pause_ack(struct cluster *c);

#endif
