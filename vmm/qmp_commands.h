/* The VM's QMP commands: QEMU's standard ones that make sense here and
 * krg-vmm's own, as a command table for vmm/qmp.h.  Each handler turns
 * JSON into a call of struct qmp_vm_ops (the table's context) and the
 * answer back into JSON, so the whole command set runs in unit tests with
 * fake callbacks.
 *
 *   query-status        {"running", "singlestep", "status"}
 *   stop, cont          pause / resume every vCPU on every node
 *   system_powerdown    ACPI power button
 *   system_reset        reset (restarts every node)
 *   quit                stop the VM, as SIGTERM does
 *   query-name          {"name"} when the VM has one, else {}
 *   query-krg-cluster   nodes, addresses, vCPU placement, counters
 *   query-krg-status    {"text": what `krg-vmm status` prints}
 *   krg-checkpoint      {"dir", "stop"?}: the VM into a snapshot directory
 *   krg-migrate-vcpu    {"vcpu", "node", "x-fault"?}: move one vCPU live
 *
 * vCPU migration and checkpoints (issue 5) add entries to the table. */
#ifndef KRG_VMM_QMP_COMMANDS_H
#define KRG_VMM_QMP_COMMANDS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/transport.h"
#include "vmm/node_stats.h"
#include "vmm/qmp.h"
#include "vmm/vm_config.h"

/* QEMU's RunState names used here. */
#define QMP_STATE_RUNNING   "running"
#define QMP_STATE_PAUSED    "paused"
#define QMP_STATE_SHUTDOWN  "shutdown"

struct qmp_cluster_node {
	char addr[256];
	bool answered;            /* stats valid */
	struct node_stats stats;
};

/* The cluster as query-krg-cluster reports it (a single-node VM is a
 * cluster of one). */
struct qmp_cluster_view {
	unsigned nr_nodes, nr_vcpus;
	uint64_t ram_mib;
	int vcpu_node[VM_MAX_VCPUS];
	struct qmp_cluster_node node[NET_MAX_NODES];
};

/* What krg-checkpoint wrote. */
struct qmp_checkpoint {
	uint64_t pages, bytes;	/* guest pages stored, bytes of all files */
	uint64_t ms, barrier_ms;	/* the whole checkpoint, its barrier */
};

/* What krg-migrate-vcpu did. */
struct qmp_migrate {
	unsigned from;		/* the node the vCPU ran on */
	bool moved;		/* false: it ran there already */
	uint64_t downtime_ns;	/* the vCPU stood still this long */
	uint64_t total_ns;	/* the whole migration */
	uint64_t state_bytes;	/* what travelled */
};

struct qmp_vm_ops {
	void *ctx;
	/* state: one of the QMP_STATE_* names. */
	void (*query_status)(void *ctx, const char **state);
	/* Actions: 0, or -1 with err filled (qmp__fail). */
	int (*stop)(void *ctx, struct qmp_error *err);
	int (*cont)(void *ctx, struct qmp_error *err);
	int (*powerdown)(void *ctx, struct qmp_error *err);
	int (*reset)(void *ctx, struct qmp_error *err);
	int (*quit)(void *ctx, struct qmp_error *err);
	/* NULL when the VM has no name. */
	const char *(*name)(void *ctx);
	int (*cluster)(void *ctx, struct qmp_cluster_view *out,
		       struct qmp_error *err);
	/* *text malloc'd (the caller frees it). */
	int (*status_text)(void *ctx, char **text, struct qmp_error *err);
	/* krg-checkpoint (vmm/ckpt.h): the VM into snapshot directory dir;
	 * stop leaves it paused.  NULL: not offered. */
	int (*checkpoint)(void *ctx, const char *dir, bool stop,
			  struct qmp_checkpoint *out, struct qmp_error *err);
	/* krg-migrate-vcpu (vmm/migrate.h): vcpu to node, live; fault names
	 * an injected failure (x-fault, tests) or is NULL.  NULL: not
	 * offered. */
	int (*migrate_vcpu)(void *ctx, int64_t vcpu, int64_t node,
			    const char *fault, struct qmp_migrate *out,
			    struct qmp_error *err);
};

/* The table; the session's context must be a struct qmp_vm_ops. */
const struct qmp_command *qmp_commands__table(size_t *nr);

/* query-krg-cluster's return value for a view (NULL: out of memory). */
json_t *qmp_commands__cluster_json(const struct qmp_cluster_view *v);

#endif
