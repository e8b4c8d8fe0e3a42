/* Per-node counters of a cluster VM: what `krg-vmm status` shows while the
 * VM runs and `--stats` prints at exit.  A plain struct, so node 0 can ask
 * every node for its copy over the cluster transport. */
#ifndef KRG_VMM_NODE_STATS_H
#define KRG_VMM_NODE_STATS_H

#include <stddef.h>
#include <stdint.h>

#include "dsm/dsm_mem.h"
#include "vcpu/irq_remote.h"
#include "vmm/devices/virtio_blk_mq.h"
#include "vmm/io_forward.h"

#define NODE_STATS_VERSION 6

#define NODE_STATS_TOP_VECTORS 4

struct machine;

struct node_stats {
	uint32_t version, node;
	uint32_t nr_local_vcpus, pad;
	uint64_t uptime_ms;
	uint64_t vcpu_exits, vcpu_injected;
	uint64_t vcpu_hlt_exits, vcpu_halted_ns; /* summed over local vCPUs */
	/* The vectors injected most often on this node (count 0: unused). */
	struct {
		uint64_t count;
		uint32_t vector, pad;
	} top_vectors[NODE_STATS_TOP_VECTORS];
	struct dsm_mem_stats dsm;
	struct irq_remote_stats irq;
	struct io_forward_stats io;
	struct blk_mq_stats blk;  /* virtio-blk queues served on this node */
};

/* This node's counters now. */
void node_stats__collect(struct machine *m, struct node_stats *out);
/* Validates a copy received from a peer (size, version, node). */
int node_stats__check(const void *buf, size_t len, unsigned from,
		      struct node_stats *out);
/* Human-readable lines ("node N: ...") into buf; returns the length. */
size_t node_stats__format(const struct node_stats *s, const char *addr,
			  char *buf, size_t size);

#endif
