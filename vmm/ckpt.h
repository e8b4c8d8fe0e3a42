/* Cluster checkpoints and restores: the whole VM - every node's vCPUs,
 * node 0's devices, every guest page once, the disks frozen at the same
 * instant - into a snapshot directory, and back onto any number of nodes.
 * Formats and the barrier's pure logic are in vmm/ckpt_format.h; the
 * design is described in HACKING.md ("Checkpoints").
 *
 * Where the bytes go: every node writes its own files (its vCPUs, the
 * pages it holds) straight into the snapshot directory, in parallel, so
 * the directory must be one path that every node's host sees (one host:
 * any directory; several: a shared filesystem such as NFS).  Streaming
 * every page to node 0 instead would funnel the whole RAM through one
 * network link and one disk; node 0 checks that every node's files
 * arrived before it declares the snapshot complete.
 *
 * Messages (the migrate range of net/net_types.h, 170-185; 160-169 are
 * vCPU migration's), all on the latency channel:
 *   PROBE {round}            node 0 -> every node: a barrier round
 *   MARK {round}             every node -> every other node
 *   REPORT {round, idle, sent, recv}          -> node 0
 *   WRITE {id, dir}          node 0 -> every node: write your files
 *   WRITTEN {id, status, page count, sizes and CRCs, reason} -> node 0 */
#ifndef KRG_VMM_CKPT_H
#define KRG_VMM_CKPT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_types.h"
#include "vmm/ckpt_format.h"

#define CKPT_T_FIRST	(NET_TYPE_MIGRATE_FIRST + 10)
#define CKPT_T_PROBE	(CKPT_T_FIRST + 0)
#define CKPT_T_MARK	(CKPT_T_FIRST + 1)
#define CKPT_T_REPORT	(CKPT_T_FIRST + 2)
#define CKPT_T_WRITE	(CKPT_T_FIRST + 3)
#define CKPT_T_WRITTEN	(CKPT_T_FIRST + 4)
#define CKPT_T_LAST	(CKPT_T_FIRST + 15)

struct machine;
struct ckpt_node;
typedef int (*ckpt_launch_fn)(struct vm_config *cfg);

/* ---- vmm/ckpt_node.c: every node's part ---- */

/* A cluster node's checkpoint context (m->ckpt), before the migrate range
 * is registered.  NULL when out of memory. */
struct ckpt_node *ckpt_node__new(struct machine *m);
/* The VM stops: waits for a writer thread still running and refuses
 * further WRITE orders (machine__quiesce, before the transport goes). */
void ckpt_node__quiesce(struct ckpt_node *c);
/* After the transport is gone.  NULL is fine. */
void ckpt_node__free(struct ckpt_node *c);
/* A message of CKPT_T_FIRST..CKPT_T_LAST (transport thread; never
 * blocks: file writing runs on a thread of its own). */
void ckpt__receive(struct machine *m, unsigned sender, unsigned type,
		   const void *payload, uint32_t len);

/* ---- vmm/ckpt_save.c: node 0 ---- */

/* Checkpoints the running VM into dir (absolute): pauses every vCPU,
 * drains, freezes the disks, writes, renames into place, and resumes
 * unless stop.  On failure dir is untouched (a previous snapshot there
 * stays good) and the VM resumes (unless stop).  Runs on the control
 * thread.  0 (res filled), or -1 with one line in err. */
struct ckpt_result {
	uint64_t pages, bytes;	/* pages stored, bytes of all files */
	uint64_t ms;		/* the whole checkpoint */
	uint64_t pause_ms;	/* the barrier (after the vCPUs parked) */
};
int ckpt__checkpoint(struct machine *m, const char *dir, bool stop,
		     struct ckpt_result *res, char *err, size_t errlen);

/* vmm/control_ckpt.c: struct qmp_vm_ops's checkpoint (ctx: the control
 * socket). */
struct qmp_checkpoint;
struct qmp_error;
int ckpt__qmp_checkpoint(void *ctx, const char *dir, bool stop,
			 struct qmp_checkpoint *out, struct qmp_error *err);

/* ---- vmm/ckpt_restore.c ---- */

/* A snapshot directory (as opposed to a --restore state file). */
bool ckpt__is_snapshot(const char *path);
/* Reads and decodes dir's manifest.  0, or -1 with one line. */
int ckpt__read_manifest(const char *dir, struct ckpt_manifest *m, char *err,
			size_t errlen);
/* Everything a restore will read, before anything starts: the manifest,
 * every file's size and CRC, page-file headers and indexes, the frozen
 * disk images.  0, or -1 with one line. */
int ckpt__verify(const char *dir, struct ckpt_manifest *m, char *err,
		 size_t errlen);
/* The boot node, before its vCPUs exist: the CPUID table the guest
 * booted with replaces this host's.  0, or -1 with one line. */
int ckpt__restore_cpuid(struct machine *m, const char *dir, char *err,
			size_t errlen);
/* This node's share, while the machine is built and before the DSM
 * takes the RAM over: the pages it homes under its layout (all of them on
 * a single node) and, on the boot node, the machine's guest-profile
 * choices.  0, or -1 with one line. */
int ckpt__restore_memory(struct machine *m, const char *dir, char *err,
			 size_t errlen);
/* Once this node's DSM runs (loading a vCPU may read guest memory): the
 * vCPUs this node runs now, wherever they ran before.  0 or -1. */
int ckpt__restore_cpus(struct machine *m, const char *dir, char *err,
		       size_t errlen);
/* The boot node, once every node is up: the devices.  0 or -1. */
int ckpt__restore_devices(struct machine *m, const char *dir, char *err,
			  size_t errlen);

/* ---- vmm/ckpt_cli.c ---- */

/* "krg-vmm checkpoint [--stop] [--socket PATH] DIR" (argv after the verb):
 * asks the running VM over its control socket.  Exit status. */
int ckpt_cli__checkpoint(int argc, char *const argv[]);
/* "krg-vmm restore DIR [launch options]": verifies, makes the disks'
 * restore overlays, and launches through launch().  Exit status. */
int ckpt_cli__restore(int argc, char *const argv[], ckpt_launch_fn launch);

#endif
