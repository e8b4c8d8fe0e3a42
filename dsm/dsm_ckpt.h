/* What a cluster checkpoint (vmm/ckpt*.c) needs from one node's DSM: to
 * drain it at the barrier and to know which pages this node writes.
 *
 * Who writes a page: its single writer when it is Modified somewhere
 * (exactly one node), else - Shared, whose copyset always includes the
 * home and whose copies are all current - the home.  Every page is then
 * written exactly once across the cluster.  A page the writer's memfd
 * does not hold was never touched (the DSM maps zeros on first touch) and
 * is not written at all: snapshots are sparse. */
#ifndef KRG_VMM_DSM_CKPT_H
#define KRG_VMM_DSM_CKPT_H

#include <stdbool.h>
#include <stdint.h>

struct dsm_mem;

struct dsm_ckpt_state {
	bool idle;		/* no request, transaction, parked fault or
				 * held message */
	uint64_t sent, recv;	/* DSM messages sent / delivered, ever */
	uint64_t faults;	/* uffd events read, ever */
};

/* Delivers every message the minimum hold keeps back (the hold only buys
 * a local vCPU time, and they are all parked), then reports.  A failed or
 * stopped node reports itself busy: the barrier then never settles. */
void dsm_ckpt__drain(struct dsm_mem *dm, struct dsm_ckpt_state *out);

/* Sets bit p of map (nr_pages bits, zeroed by the caller, pages numbered
 * densely over the RAM regions in gpa order) for every page this node
 * writes (rule above; presence in the memfd is the caller's business).
 * Returns the number of pages set. */
uint64_t dsm_ckpt__owned(struct dsm_mem *dm, uint64_t *map, uint64_t nr_pages);

#endif
