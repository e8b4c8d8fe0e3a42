/* The cluster VM's NUMA layout: which node runs each vCPU and which node
 * homes each guest-physical RAM range (the DSM directory's home, and one
 * guest NUMA node per cluster node in the ACPI SRAT/SLIT).
 *
 * struct numa_layout is part of the VM description that node 0 sends to
 * the other nodes and that checkpoints save (state section
 * NUMA_LAYOUT_SECTION, version NUMA_LAYOUT_VERSION): plain fixed-width
 * fields in host (little-endian x86-64) order, no pointers, and canonical -
 * unused array entries and reserved fields are zero, so two nodes holding
 * the same layout hold the same bytes.  Anything received must pass
 * numa_layout__check() before use.
 *
 * Rules (enforced by the builder and by numa_layout__check):
 *  - 1..NUMA_MAX_NODES nodes, nr_nodes..NUMA_MAX_VCPUS vCPUs;
 *  - every node runs at least one vCPU: a memory-only node is refused,
 *    because each node process exists to run vCPUs and a guest node
 *    without CPUs only adds remote accesses;
 *  - every node homes at least NUMA_MIN_NODE_RAM (Linux ignores a SRAT
 *    node smaller than 4 MiB, leaving its memory on an offline node);
 *  - ranges are page-aligned, sorted by gpa, do not overlap, each lies in
 *    one RAM region, and together they cover all RAM exactly. */
#ifndef KRG_VMM_NUMA_LAYOUT_H
#define KRG_VMM_NUMA_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"
#include "vmm/vm_config.h"

#define NUMA_LAYOUT_VERSION 1
#define NUMA_LAYOUT_SECTION "numa_layout"

#define NUMA_MAX_NODES VM_MAX_NODES
#define NUMA_MAX_VCPUS VM_MAX_VCPUS
#define NUMA_MAX_RAM_REGIONS 4
/* Slicing n regions among m nodes yields at most m + n - 1 ranges. */
#define NUMA_MAX_RANGES (NUMA_MAX_NODES + NUMA_MAX_RAM_REGIONS)
#define NUMA_PAGE_SIZE 0x1000ull
#define NUMA_SLICE_ALIGN 0x200000ull   /* 2 MiB: huge pages stay on one home */
#define NUMA_MIN_NODE_RAM 0x400000ull  /* 4 MiB: Linux's NODE_MIN_SIZE */

/* Show the guest a single NUMA node (no SRAT/SLIT) although memory is still
 * homed across the nodes as the ranges say. */
#define NUMA_LAYOUT_FLAT 0x1u
#define NUMA_LAYOUT_KNOWN_FLAGS NUMA_LAYOUT_FLAT

_Static_assert(NUMA_MAX_NODES <= 256, "vcpu_node[] holds a node in a byte");

struct numa_ram_region {
	uint64_t gpa;
	uint64_t size;
};

struct numa_range {
	uint64_t gpa;
	uint64_t size;
	uint32_t node;
	uint32_t reserved;             /* 0 */
};

struct numa_layout {
	uint32_t version;              /* NUMA_LAYOUT_VERSION */
	uint32_t flags;                /* NUMA_LAYOUT_* */
	uint32_t nr_nodes;
	uint32_t nr_vcpus;
	uint32_t nr_ram;               /* entries used in ram[] */
	uint32_t nr_ranges;            /* entries used in range[] */
	uint8_t vcpu_node[NUMA_MAX_VCPUS];
	/* The guest RAM the ranges partition, sorted by gpa. */
	struct numa_ram_region ram[NUMA_MAX_RAM_REGIONS];
	/* Sorted by gpa; a node's slice that spans the PCI hole is two. */
	struct numa_range range[NUMA_MAX_RANGES];
};
_Static_assert(sizeof(struct numa_layout) ==
	       24 + NUMA_MAX_VCPUS + 16 * NUMA_MAX_RAM_REGIONS +
	       24 * NUMA_MAX_RANGES,
	       "numa_layout is a saved and sent format: bump NUMA_LAYOUT_VERSION");

/* Builds the layout of nr_vcpus vCPUs on nr_nodes nodes over the guest RAM
 * regions ram[0..nr_ram) (only gpa and size are used: pass guest_mem's
 * region[] and nr_regions).  placement: NULL for the default (contiguous
 * blocks of vCPUs, vCPU 0 on node 0, lower nodes take the extra vCPUs when
 * the division is uneven), or nr_vcpus node numbers.  RAM is cut in
 * nr_nodes equal slices of whole 2 MiB units in guest-physical order, the
 * last node taking the remainder; the PCI hole is skipped, so a slice that
 * spans it has two ranges.  The layout is not flat.  Returns 0, or -1 with
 * one line in err (and *l zeroed). */
int numa_layout__build(struct numa_layout *l, unsigned nr_nodes,
		       unsigned nr_vcpus, const struct guest_mem_region *ram,
		       unsigned nr_ram, const uint32_t *placement, char *err,
		       size_t errlen);

/* Validates a layout from the network or a file against the rules above
 * (never reading outside *l).  ram/nr_ram: the RAM this node has, which
 * the layout's ram[] must match exactly; NULL to check only the layout's
 * own consistency.  Returns 0, or -1 with one line in err. */
int numa_layout__check(const struct numa_layout *l,
		       const struct guest_mem_region *ram, unsigned nr_ram,
		       char *err, size_t errlen);

/* The lookups below expect a checked layout; on any other they still never
 * read outside *l. */

/* Home node of guest-physical address gpa, or -1 if it is not RAM.
 * O(log ranges). */
int numa_layout__home_of(const struct numa_layout *l, uint64_t gpa);
/* Node running vCPU vcpu, or -1 if there is no such vCPU. */
int numa_layout__vcpu_node(const struct numa_layout *l, unsigned vcpu);
/* The vCPUs that node does NOT run, as a Linux CPU list ("1-3,6"), into
 * buf; returns how many there are (0: buf is ""), or -1 when buf is too
 * small.  For nohz_full=: the guest's housekeeping stays on node's vCPUs. */
int numa_layout__vcpus_off_node(const struct numa_layout *l, unsigned node,
				char *buf, size_t size);
/* Copies up to max of node's ranges (in gpa order) to out (may be NULL
 * when max is 0); returns how many the node has. */
unsigned numa_layout__node_ranges(const struct numa_layout *l, unsigned node,
				  struct numa_range *out, unsigned max);
/* Bytes of RAM homed on node (0 for a node that does not exist). */
uint64_t numa_layout__node_ram(const struct numa_layout *l, unsigned node);
/* Copies up to max of the vCPUs node runs (ascending) to out; returns how
 * many it runs. */
unsigned numa_layout__node_vcpus(const struct numa_layout *l, unsigned node,
				 uint32_t *out, unsigned max);
/* Flat presentation on or off (see NUMA_LAYOUT_FLAT). */
void numa_layout__set_flat(struct numa_layout *l, bool flat);
/* NUMA nodes the guest is shown: 1 when flat, else nr_nodes. */
unsigned numa_layout__guest_nodes(const struct numa_layout *l);

#endif
