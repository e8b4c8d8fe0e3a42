/* struct cluster, shared by the transport glue (cluster.c) and the
 * control protocol (cluster_control.c); nothing else includes this. */
#ifndef KRG_VMM_CLUSTER_PRIV_H
#define KRG_VMM_CLUSTER_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/cluster.h"

#define NR_RANGES 8 /* 32 types each: types / 32 */
#define MAX_EARLY 4096

struct early_msg {
	struct early_msg *next;
	unsigned sender, type;
	uint32_t len;
	uint8_t payload[];
};

struct cluster {
	unsigned self, nr_nodes;
	char addrs[NET_MAX_NODES][256];
	uint64_t cluster_id;
	struct transport *t;
	struct cluster_hooks hooks;
	/* Handlers, and what arrived for a range before its handler was
	 * registered (a node that finished building first may talk to one
	 * still building): replayed in order at registration. */
	pthread_mutex_t range_lock;
	struct {
		cluster_recv_fn fn;
		void *ctx;
		struct early_msg *head, **tail;
		unsigned queued;
	} range[NR_RANGES];

	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool have_description;
	struct vm_description *description; /* decoded, node > 0 */
	char description_err[256];
	unsigned nr_ready;
	bool ready_from[NET_MAX_NODES];
	bool started;
	bool stopping;              /* a STOP was sent or received */
	int stop_status;
	char stop_reason[CLUSTER_REASON_MAX];
	int down_node;              /* first peer that went down, or -1 */
	char down_why[300];
	/* A stats gathering by node 0 (one at a time, under gather_lock). */
	pthread_mutex_t gather_lock;
	uint8_t *gather_bufs;
	size_t gather_each;
	bool *gather_have;
	unsigned gather_pending;
	/* Pausing the VM: node 0 counts confirmations of its latest PAUSE
	 * (older ones are stale); node i answers the latest it got. */
	uint32_t pause_gen;
	unsigned pause_pending;
	bool paused_from[NET_MAX_NODES];
};

/* A control message (NET_TYPE_CONTROL_FIRST..LAST) from sender, on the
 * receive thread. */
void cluster_control__handle(struct cluster *c, unsigned sender,
			     unsigned type, const void *payload, uint32_t len);

#endif
