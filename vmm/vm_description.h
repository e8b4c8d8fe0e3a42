/* What node 0 tells every other node about the VM it joins: the user's
 * settings, the NUMA layout (where each vCPU runs, where each page is
 * homed), and the CPUID table every vCPU must see (node 0's, so vCPUs on
 * different hosts agree even if the hosts' KVMs differ).
 *
 * Plain fixed-width data sent as it is over the BULK channel; the receiver
 * trusts nothing: vm_description__decode() checks the size, the version,
 * that every string is terminated, the settings, and the layout before
 * anything uses it. */
#ifndef KRG_VMM_VM_DESCRIPTION_H
#define KRG_VMM_VM_DESCRIPTION_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/numa_layout.h"
#include "vmm/vm_config.h"

#define VM_DESCRIPTION_VERSION 3
#define VM_DESCRIPTION_MAX_CPUID 256

struct vm_description {
	uint32_t version;
	uint32_t size;                 /* sizeof(struct vm_description) */
	uint64_t cluster_id;
	uint32_t nr_nodes;
	uint32_t nr_cpuid;
	uint64_t tsc_khz;              /* node 0's guest TSC frequency */
	/* Guest time, so every node's vCPUs read the same clocks: node 0's
	 * kvmclock (KVM_GET_CLOCK, with its realtime stamp so a node
	 * applies it shifted by the transit time) and its vCPUs' TSC offset
	 * (valid as it is for nodes on the same host). */
	struct kvm_clock_data clock;
	/* Guest-profile choices node 0 made from the kernel it loads (see
	 * struct machine): every vCPU must behave the same. */
	uint64_t timer_min_gap_ns;
	uint32_t syscall_fix, pad0;
	struct vm_config cfg;
	struct numa_layout layout;
	struct kvm_cpuid_entry2 cpuid[VM_DESCRIPTION_MAX_CPUID];
};

/* Fills d from node 0's state.  cpuid may be NULL (no table).  -1 with a
 * reason when the table is too large. */
int vm_description__fill(struct vm_description *d, uint64_t cluster_id,
			 const struct vm_config *cfg,
			 const struct numa_layout *layout,
			 const struct kvm_cpuid2 *cpuid, uint64_t tsc_khz,
			 char *err, size_t errlen);

/* Validates len bytes received from node 0 and copies them into d.
 * nr_nodes is how many nodes this node was started with.  0, or -1 with a
 * one-line reason (d is then unusable). */
int vm_description__decode(struct vm_description *d, const void *buf,
			   size_t len, uint64_t cluster_id, unsigned nr_nodes,
			   char *err, size_t errlen);

/* The CPUID table as a kvm_cpuid2 (malloc'd; NULL when out of memory). */
struct kvm_cpuid2 *vm_description__cpuid(const struct vm_description *d);

#endif
