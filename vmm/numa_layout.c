/* NUMA layout: the default placement of vCPUs and RAM homes, validation of
 * layouts that arrive from elsewhere, and the lookups the DSM and the
 * vCPU placement use.  Pure logic: no KVM, no I/O. */
#include "vmm/numa_layout.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "vmm/errf.h"

#define MIB ((uint64_t)1 << 20)

static uint64_t region_end(const struct numa_ram_region *r)
{
	return r->gpa + r->size;
}

/* The RAM rules shared by the builder's input and a received layout:
 * 1..NUMA_MAX_RAM_REGIONS page-aligned, non-empty, non-wrapping regions in
 * ascending order without overlap. */
static int check_ram(const struct numa_ram_region *ram, unsigned nr,
		     char *err, size_t errlen)
{
	if (nr < 1 || nr > NUMA_MAX_RAM_REGIONS) {
		errf(err, errlen, "numa: %u RAM regions, must be 1-%u", nr,
		     NUMA_MAX_RAM_REGIONS);
		return -1;
	}
	for (unsigned i = 0; i < nr; i++) {
		const struct numa_ram_region *r = &ram[i];

		if (!r->size || r->size > UINT64_MAX - r->gpa ||
		    (r->gpa | r->size) % NUMA_PAGE_SIZE) {
			errf(err, errlen,
			     "numa: RAM region %u (0x%" PRIx64 "+0x%" PRIx64
			     ") is empty, wraps or is not page-aligned",
			     i, r->gpa, r->size);
			return -1;
		}
		if (i && r->gpa < region_end(&ram[i - 1])) {
			errf(err, errlen,
			     "numa: RAM regions %u and %u overlap or are out of order",
			     i - 1, i);
			return -1;
		}
	}
	return 0;
}

static uint64_t ram_total(const struct numa_ram_region *ram, unsigned nr)
{
	uint64_t total = 0;

	/* Sorted, disjoint regions below 2^64 cannot sum past UINT64_MAX. */
	for (unsigned i = 0; i < nr; i++)
		total += ram[i].size;
	return total;
}

/* Appends node's share of RAM, offsets [from, to) counted over the regions
 * in order (the holes between regions take no offsets), as ranges. */
static void add_slice(struct numa_layout *l, unsigned node, uint64_t from,
		      uint64_t to)
{
	uint64_t base = 0; /* RAM offset of the region's first byte */

	for (unsigned i = 0; i < l->nr_ram && from < to; i++) {
		const struct numa_ram_region *r = &l->ram[i];
		uint64_t lo = from > base ? from : base;
		uint64_t hi = to < base + r->size ? to : base + r->size;

		if (lo < hi && l->nr_ranges < NUMA_MAX_RANGES) {
			l->range[l->nr_ranges++] = (struct numa_range){
				.gpa = r->gpa + (lo - base),
				.size = hi - lo,
				.node = node,
			};
		}
		base += r->size;
	}
}

static int place_vcpus(struct numa_layout *l, const uint32_t *placement,
		       char *err, size_t errlen)
{
	uint32_t count[NUMA_MAX_NODES] = { 0 };
	/* Default: contiguous blocks of v / n vCPUs, the first v % n nodes
	 * one more. */
	unsigned per = l->nr_vcpus / l->nr_nodes;
	unsigned extra = l->nr_vcpus % l->nr_nodes;
	unsigned split = extra * (per + 1);

	for (unsigned i = 0; i < l->nr_vcpus; i++) {
		uint32_t node = placement ? placement[i] :
				i < split ? i / (per + 1) :
				extra + (i - split) / per;

		if (node >= l->nr_nodes) {
			errf(err, errlen,
			     "numa: vCPU %u is placed on node %" PRIu32
			     ", but the nodes are 0-%u", i, node,
			     l->nr_nodes - 1);
			return -1;
		}
		l->vcpu_node[i] = (uint8_t)node;
		count[node]++;
	}
	for (unsigned n = 0; n < l->nr_nodes; n++) {
		if (!count[n]) {
			errf(err, errlen,
			     "numa: node %u runs no vCPU (memory-only nodes are not supported)",
			     n);
			return -1;
		}
	}
	return 0;
}

int numa_layout__build(struct numa_layout *l, unsigned nr_nodes,
		       unsigned nr_vcpus, const struct guest_mem_region *ram,
		       unsigned nr_ram, const uint32_t *placement, char *err,
		       size_t errlen)
{
	memset(l, 0, sizeof(*l));
	if (nr_nodes < 1 || nr_nodes > NUMA_MAX_NODES) {
		errf(err, errlen, "numa: %u nodes, must be 1-%u", nr_nodes,
		     NUMA_MAX_NODES);
		return -1;
	}
	if (nr_vcpus < 1 || nr_vcpus > NUMA_MAX_VCPUS) {
		errf(err, errlen, "numa: %u vCPUs, must be 1-%u", nr_vcpus,
		     NUMA_MAX_VCPUS);
		return -1;
	}
	if (nr_vcpus < nr_nodes) {
		errf(err, errlen,
		     "numa: %u nodes but only %u vCPUs: every node needs at least one vCPU",
		     nr_nodes, nr_vcpus);
		return -1;
	}
	if (!ram || nr_ram < 1 || nr_ram > NUMA_MAX_RAM_REGIONS) {
		errf(err, errlen, "numa: %u RAM regions%s, must be 1-%u",
		     ram ? nr_ram : 0, ram ? "" : " (none given)",
		     NUMA_MAX_RAM_REGIONS);
		return -1;
	}
	l->version = NUMA_LAYOUT_VERSION;
	l->nr_nodes = nr_nodes;
	l->nr_vcpus = nr_vcpus;
	l->nr_ram = nr_ram;
	for (unsigned i = 0; i < nr_ram; i++)
		l->ram[i] = (struct numa_ram_region){ ram[i].gpa, ram[i].size };
	if (check_ram(l->ram, nr_ram, err, errlen) ||
	    place_vcpus(l, placement, err, errlen))
		goto fail;

	uint64_t total = ram_total(l->ram, nr_ram);
	uint64_t slice = total / nr_nodes / NUMA_SLICE_ALIGN * NUMA_SLICE_ALIGN;

	if (slice < NUMA_MIN_NODE_RAM) {
		errf(err, errlen,
		     "numa: %" PRIu64 " MiB of RAM is too little for %u nodes (each needs at least %llu MiB)",
		     total / MIB, nr_nodes, NUMA_MIN_NODE_RAM / MIB);
		goto fail;
	}
	for (unsigned n = 0; n < nr_nodes; n++)
		add_slice(l, n, n * slice,
			  n + 1 == nr_nodes ? total : (n + 1) * slice);
	/* The slicing above is meant to satisfy every rule; a failure here
	 * is a bug, reported rather than handed on. */
	if (numa_layout__check(l, NULL, 0, err, errlen))
		goto fail;
	return 0;
fail:
	memset(l, 0, sizeof(*l));
	return -1;
}

static bool all_zero(const void *p, size_t len)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < len; i++)
		if (b[i])
			return false;
	return true;
}

static int check_counts(const struct numa_layout *l, char *err,
			size_t errlen)
{
	if (l->version != NUMA_LAYOUT_VERSION) {
		errf(err, errlen, "numa: layout version %" PRIu32 ", expected %u",
		     l->version, NUMA_LAYOUT_VERSION);
		return -1;
	}
	if (l->flags & ~NUMA_LAYOUT_KNOWN_FLAGS) {
		errf(err, errlen, "numa: unknown layout flags 0x%" PRIx32,
		     l->flags);
		return -1;
	}
	if (l->nr_nodes < 1 || l->nr_nodes > NUMA_MAX_NODES) {
		errf(err, errlen, "numa: %" PRIu32 " nodes, must be 1-%u",
		     l->nr_nodes, NUMA_MAX_NODES);
		return -1;
	}
	if (l->nr_vcpus < l->nr_nodes || l->nr_vcpus > NUMA_MAX_VCPUS) {
		errf(err, errlen,
		     "numa: %" PRIu32 " vCPUs for %" PRIu32 " nodes, must be %" PRIu32 "-%u",
		     l->nr_vcpus, l->nr_nodes, l->nr_nodes, NUMA_MAX_VCPUS);
		return -1;
	}
	if (l->nr_ranges < l->nr_nodes || l->nr_ranges > NUMA_MAX_RANGES) {
		errf(err, errlen,
		     "numa: %" PRIu32 " RAM ranges for %" PRIu32 " nodes, must be %" PRIu32 "-%u",
		     l->nr_ranges, l->nr_nodes, l->nr_nodes, NUMA_MAX_RANGES);
		return -1;
	}
	if (l->nr_ram < 1 || l->nr_ram > NUMA_MAX_RAM_REGIONS) {
		errf(err, errlen, "numa: %" PRIu32 " RAM regions, must be 1-%u",
		     l->nr_ram, NUMA_MAX_RAM_REGIONS);
		return -1;
	}
	if (!all_zero(l->vcpu_node + l->nr_vcpus,
		      NUMA_MAX_VCPUS - l->nr_vcpus) ||
	    !all_zero(l->ram + l->nr_ram,
		      (NUMA_MAX_RAM_REGIONS - l->nr_ram) * sizeof(l->ram[0])) ||
	    !all_zero(l->range + l->nr_ranges,
		      (NUMA_MAX_RANGES - l->nr_ranges) * sizeof(l->range[0]))) {
		errf(err, errlen, "numa: unused layout entries are not zero");
		return -1;
	}
	return 0;
}

static int check_vcpus(const struct numa_layout *l, char *err, size_t errlen)
{
	uint32_t count[NUMA_MAX_NODES] = { 0 };

	for (unsigned i = 0; i < l->nr_vcpus; i++) {
		if (l->vcpu_node[i] >= l->nr_nodes) {
			errf(err, errlen,
			     "numa: vCPU %u is on node %u, but the nodes are 0-%" PRIu32,
			     i, l->vcpu_node[i], l->nr_nodes - 1);
			return -1;
		}
		count[l->vcpu_node[i]]++;
	}
	for (unsigned n = 0; n < l->nr_nodes; n++) {
		if (!count[n]) {
			errf(err, errlen, "numa: node %u runs no vCPU", n);
			return -1;
		}
	}
	return 0;
}

/* Per range: non-empty, page-aligned, on a node, in ascending order
 * without overlap, inside one RAM region. */
static int check_ranges(const struct numa_layout *l, char *err,
			size_t errlen)
{
	for (unsigned i = 0; i < l->nr_ranges; i++) {
		const struct numa_range *g = &l->range[i];
		bool inside = false;

		if (!g->size || g->size > UINT64_MAX - g->gpa ||
		    (g->gpa | g->size) % NUMA_PAGE_SIZE || g->reserved) {
			errf(err, errlen,
			     "numa: range %u (0x%" PRIx64 "+0x%" PRIx64
			     ") is empty, wraps, is not page-aligned or has reserved bits",
			     i, g->gpa, g->size);
			return -1;
		}
		if (g->node >= l->nr_nodes) {
			errf(err, errlen,
			     "numa: range %u is homed on node %" PRIu32
			     ", but the nodes are 0-%" PRIu32,
			     i, g->node, l->nr_nodes - 1);
			return -1;
		}
		if (i && g->gpa < l->range[i - 1].gpa + l->range[i - 1].size) {
			errf(err, errlen,
			     "numa: ranges %u and %u overlap or are out of order",
			     i - 1, i);
			return -1;
		}
		for (unsigned r = 0; r < l->nr_ram; r++)
			inside |= g->gpa >= l->ram[r].gpa &&
				  g->gpa + g->size <= region_end(&l->ram[r]);
		if (!inside) {
			errf(err, errlen,
			     "numa: range %u (0x%" PRIx64 "-0x%" PRIx64
			     ") is not inside one RAM region", i, g->gpa,
			     g->gpa + g->size - 1);
			return -1;
		}
	}
	return 0;
}

/* With ranges sorted, disjoint and inside RAM, the cover is exact iff each
 * region is tiled from its start to its end; the walk names the first
 * byte without a home. */
static int check_cover(const struct numa_layout *l, char *err, size_t errlen)
{
	unsigned i = 0;

	for (unsigned r = 0; r < l->nr_ram; r++) {
		uint64_t next = l->ram[r].gpa, end = region_end(&l->ram[r]);

		while (i < l->nr_ranges && l->range[i].gpa < end &&
		       l->range[i].gpa == next) {
			next += l->range[i].size;
			i++;
		}
		if (next != end) {
			errf(err, errlen,
			     "numa: RAM at 0x%" PRIx64 " has no home node", next);
			return -1;
		}
	}
	return 0;
}

int numa_layout__check(const struct numa_layout *l,
		       const struct guest_mem_region *ram, unsigned nr_ram,
		       char *err, size_t errlen)
{
	if (check_counts(l, err, errlen) ||
	    check_ram(l->ram, l->nr_ram, err, errlen))
		return -1;
	if (ram) {
		bool same = nr_ram == l->nr_ram;

		for (unsigned i = 0; same && i < nr_ram; i++)
			same = ram[i].gpa == l->ram[i].gpa &&
			       ram[i].size == l->ram[i].size;
		if (!same) {
			errf(err, errlen,
			     "numa: the layout describes different RAM (%" PRIu64
			     " MiB in %" PRIu32 " regions) than this VM's",
			     ram_total(l->ram, l->nr_ram) / MIB, l->nr_ram);
			return -1;
		}
	}
	if (check_vcpus(l, err, errlen) || check_ranges(l, err, errlen) ||
	    check_cover(l, err, errlen))
		return -1;
	for (unsigned n = 0; n < l->nr_nodes; n++) {
		uint64_t have = numa_layout__node_ram(l, n);

		if (have < NUMA_MIN_NODE_RAM) {
			errf(err, errlen,
			     "numa: node %u homes %" PRIu64 " KiB of RAM, less than the %llu MiB minimum",
			     n, have / 1024, NUMA_MIN_NODE_RAM / MIB);
			return -1;
		}
	}
	return 0;
}

static unsigned used_ranges(const struct numa_layout *l)
{
	return l->nr_ranges < NUMA_MAX_RANGES ? l->nr_ranges : NUMA_MAX_RANGES;
}

int numa_layout__home_of(const struct numa_layout *l, uint64_t gpa)
{
	unsigned lo = 0, hi = used_ranges(l);

	/* Last range starting at or below gpa. */
	while (lo < hi) {
		unsigned mid = lo + (hi - lo) / 2;

		if (l->range[mid].gpa <= gpa)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (!lo)
		return -1;
	const struct numa_range *g = &l->range[lo - 1];

	if (gpa - g->gpa >= g->size || g->node >= NUMA_MAX_NODES)
		return -1;
	return (int)g->node;
}

int numa_layout__vcpu_node(const struct numa_layout *l, unsigned vcpu)
{
	if (vcpu >= l->nr_vcpus || vcpu >= NUMA_MAX_VCPUS)
		return -1;
	return l->vcpu_node[vcpu];
}

int numa_layout__vcpus_off_node(const struct numa_layout *l, unsigned node,
				char *buf, size_t size)
{
	unsigned nr = l->nr_vcpus < NUMA_MAX_VCPUS ? l->nr_vcpus :
						     NUMA_MAX_VCPUS;
	size_t len = 0;
	int count = 0;

	if (!size)
		return -1;
	buf[0] = '\0';
	for (unsigned i = 0; i < nr;) {
		unsigned j = i;
		int w;

		if (l->vcpu_node[i] == node) {
			i++;
			continue;
		}
		while (j + 1 < nr && l->vcpu_node[j + 1] != node)
			j++;
		w = j == i ? snprintf(buf + len, size - len, "%s%u",
				      count ? "," : "", i) :
			     snprintf(buf + len, size - len, "%s%u-%u",
				      count ? "," : "", i, j);
		if (w < 0 || (size_t)w >= size - len) {
			buf[0] = '\0';
			return -1;
		}
		len += (size_t)w;
		count += (int)(j - i + 1);
		i = j + 1;
	}
	return count;
}

unsigned numa_layout__node_ranges(const struct numa_layout *l, unsigned node,
				  struct numa_range *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < used_ranges(l); i++) {
		if (l->range[i].node != node)
			continue;
		if (n < max)
			out[n] = l->range[i];
		n++;
	}
	return n;
}

uint64_t numa_layout__node_ram(const struct numa_layout *l, unsigned node)
{
	uint64_t total = 0;

	for (unsigned i = 0; i < used_ranges(l); i++)
		if (l->range[i].node == node)
			total += l->range[i].size;
	return total;
}

unsigned numa_layout__node_vcpus(const struct numa_layout *l, unsigned node,
				 uint32_t *out, unsigned max)
{
	unsigned n = 0;

	for (unsigned i = 0; i < l->nr_vcpus && i < NUMA_MAX_VCPUS; i++) {
		if (l->vcpu_node[i] != node)
			continue;
		if (n < max)
			out[n] = i;
		n++;
	}
	return n;
}

void numa_layout__set_flat(struct numa_layout *l, bool flat)
{
	if (flat)
		l->flags |= NUMA_LAYOUT_FLAT;
	else
		l->flags &= ~NUMA_LAYOUT_FLAT;
}

unsigned numa_layout__guest_nodes(const struct numa_layout *l)
{
	return l->flags & NUMA_LAYOUT_FLAT ? 1 : l->nr_nodes;
}
