/* Internal to vmm/ckpt*.c: the node context shared by the message side
 * (ckpt_node.c) and node 0's coordinator (ckpt_save.c), the file writers
 * (ckpt_write.c) and the disks (ckpt_disk.c). */
#ifndef KRG_VMM_CKPT_PRIV_H
#define KRG_VMM_CKPT_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dsm/dsm_ckpt.h"
#include "vmm/ckpt.h"

#define CKPT_WHY_MAX 200

/* What a node wrote (the WRITTEN message, and node 0's own). */
struct ckpt_written {
	int32_t status;		/* 0, or -1 with why */
	uint64_t pages;
	uint64_t pages_size, pages_crc;
	uint64_t cpus_size, cpus_crc;	/* cpus_size 0: no vCPUs here */
	uint64_t vcpus;			/* bit i: vCPU i is in the cpus file */
	char why[CKPT_WHY_MAX];
};

struct ckpt_node {
	struct machine *m;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct ckpt_marks marks;
	/* Every node: the DSM counters of its latest report (nothing may
	 * move after the barrier), and its writer thread. */
	struct dsm_ckpt_state reported;
	pthread_t writer;
	bool writer_joinable, writer_busy;
	bool closing;			/* the VM stops: no more writers */
	uint64_t writer_id;
	char writer_dir[VM_PATH_MAX];
	/* Node 0: the barrier and the write in progress. */
	bool barrier_on;
	struct ckpt_barrier barrier;
	enum ckpt_barrier_result bres;
	uint32_t last_round;
	uint64_t write_id;		/* 0: no write waits for answers */
	unsigned written_pending;
	bool have_written[VM_MAX_NODES];
	struct ckpt_written written[VM_MAX_NODES];
	struct ckpt_result last;
};

/* ckpt_node.c: node 0 starts a barrier round on itself like on the
 * others (probe, marks, then its own report into the barrier). */
void ckpt_node__self_probe(struct ckpt_node *c, uint32_t round);

/* ckpt_write.c: this node's files in dir: cpus-N.state (its vCPUs, if
 * any) and pages-N.bin (the pages it writes, dsm/dsm_ckpt.h).  Fills w;
 * returns w->status. */
int ckpt_write__node_files(struct ckpt_node *c, const char *dir,
			   struct ckpt_written *w);
/* dir/name <- buf, fsync'd; *crc its CRC-64.  0 or -1 with one line. */
int ckpt_write__file(const char *dir, const char *name, const void *buf,
		     size_t len, uint64_t *crc, char *err, size_t errlen);
/* Node 0's devices.state blob (machine facts, CPUID, devices), malloc'd. */
int ckpt_write__devices_blob(struct machine *m, uint8_t **blob, size_t *len,
			     char *err, size_t errlen);

/* The sections only checkpoints write. */
#define CKPT_NODE_SECTION "ckpt-node"
#define CKPT_NODE_VERSION 1
struct ckpt_node_state {
	uint32_t node;
	uint32_t nr_vcpus;	/* vCPUs in this file */
	uint64_t now_ns;	/* this node's vclock when its vCPUs were saved */
};
#define CKPT_MACHINE_SECTION "ckpt-machine"
#define CKPT_MACHINE_VERSION 1
struct ckpt_machine_state {
	uint32_t nr_vcpus;
	uint32_t xsave_size;
	uint64_t ram_size;
	uint64_t saved_at_ns;
	uint64_t tsc_hz;
	uint64_t timer_min_gap_ns;
	uint32_t syscall_fix;
	uint32_t nr_cpuid;	/* entries in section "cpuid" */
};
#define CKPT_CPUID_SECTION "cpuid"
#define CKPT_CPUID_VERSION 1

/* ckpt_disk.c (node 0, drives held): every writable disk's image is
 * frozen - flushed, closed - and the VM goes on in a new qcow2 overlay
 * backed by it; drives[] describes the frozen images.  A failure leaves
 * the drive on whatever image it could keep (old or new): the VM goes on
 * either way, only this snapshot fails.  0 or -1 with one line. */
int ckpt_disk__freeze(struct machine *m, struct ckpt_drive *drives,
		      uint32_t *nr, char *err, size_t errlen);
/* A restore: the frozen image must be as the snapshot left it; out gets a
 * new overlay backed by it (next to it) for the restored VM to write, so
 * the snapshot can be restored again.  0 or -1 with one line. */
int ckpt_disk__check(const struct ckpt_drive *d, char *err, size_t errlen);
int ckpt_disk__restore_overlay(const struct ckpt_drive *d, char *out,
			       size_t outlen, char *err, size_t errlen);

#endif
