/* NUMA layout: default spreads, lookups, explicit placement, and the
 * validation of layouts received from other nodes or files. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/numa_layout.h"
#include "vmm/state_blob.h"

#define MIB (1024ull * 1024)
#define GIB (1024 * MIB)

/* The PC layout guest_mem__create() makes: RAM below the PCI hole at
 * 3 GiB, the rest from 4 GiB. */
static unsigned pc_ram(uint64_t ram, struct guest_mem_region r[2])
{
	uint64_t low = ram < GUEST_PCI_HOLE_START ? ram : GUEST_PCI_HOLE_START;

	memset(r, 0, 2 * sizeof(r[0]));
	r[0].gpa = 0;
	r[0].size = low;
	if (ram == low)
		return 1;
	r[1].gpa = GUEST_HIGH_RAM_START;
	r[1].size = ram - low;
	return 2;
}

static void build_ok(struct numa_layout *l, unsigned nodes, unsigned vcpus,
		     uint64_t ram, const uint32_t *placement)
{
	struct guest_mem_region r[2];
	unsigned nr = pc_ram(ram, r);
	char err[200] = "";

	ck_assert_msg(numa_layout__build(l, nodes, vcpus, r, nr, placement,
					 err, sizeof(err)) == 0,
		      "%u nodes, %u vCPUs, %llu MiB: %s", nodes, vcpus,
		      (unsigned long long)(ram / MIB), err);
	ck_assert_msg(numa_layout__check(l, r, nr, err, sizeof(err)) == 0,
		      "check: %s", err);
}

static int build_err(unsigned nodes, unsigned vcpus, uint64_t ram,
		     const uint32_t *placement, char *err, size_t errlen)
{
	struct guest_mem_region r[2];
	struct numa_layout l;
	unsigned nr = pc_ram(ram, r);
	int rc;

	memset(&l, 0x5A, sizeof(l));
	err[0] = '\0';
	rc = numa_layout__build(&l, nodes, vcpus, r, nr, placement, err,
				errlen);
	if (rc) {
		/* A failed build leaves nothing half-made behind. */
		static const struct numa_layout zero;

		ck_assert_mem_eq(&l, &zero, sizeof(l));
		ck_assert_msg(err[0] && !strchr(err, '\n'), "'%s'", err);
	}
	return rc;
}

/* RAM offset of a gpa (bytes of RAM below it). */
static uint64_t ram_offset(const struct numa_layout *l, uint64_t gpa)
{
	uint64_t off = 0;

	for (unsigned i = 0; i < l->nr_ram; i++) {
		if (gpa >= l->ram[i].gpa + l->ram[i].size) {
			off += l->ram[i].size;
			continue;
		}
		return off + (gpa > l->ram[i].gpa ? gpa - l->ram[i].gpa : 0);
	}
	return off;
}

static const struct {
	unsigned nodes, vcpus;
	uint64_t ram;
} spreads[] = {
	{ 1, 1, 256 * MIB },
	{ 2, 4, 256 * MIB },
	{ 2, 2, 4 * GIB },       /* node 1: 2-3 GiB and 4-5 GiB */
	{ 3, 7, 1000 * MIB },
	{ 4, 10, 512 * MIB },    /* 3, 3, 2, 2 vCPUs */
	{ 4, 4, 8 * GIB },
	{ 4, 64, 17 * MIB },     /* odd size: the last node takes 5 MiB */
	{ 3, 5, 3 * GIB + MIB }, /* 1 MiB above 4 GiB */
	{ 64, 64, 256 * MIB },   /* 4 MiB each */
	{ 64, 64, 4 * GIB + 6 * MIB },
};

START_TEST(default_spread)
{
	unsigned nodes = spreads[_i].nodes, vcpus = spreads[_i].vcpus;
	uint64_t ram = spreads[_i].ram;
	uint64_t slice = ram / nodes / (2 * MIB) * (2 * MIB);
	struct numa_layout l;
	unsigned prev = 0, in_node[NUMA_MAX_NODES] = { 0 };

	build_ok(&l, nodes, vcpus, ram, NULL);
	ck_assert_uint_eq(l.version, NUMA_LAYOUT_VERSION);
	ck_assert_uint_eq(l.flags, 0);
	ck_assert_uint_eq(numa_layout__guest_nodes(&l), nodes);

	/* vCPUs: contiguous ascending blocks, sizes differing by at most
	 * one, the bigger blocks first. */
	ck_assert_int_eq(numa_layout__vcpu_node(&l, 0), 0);
	for (unsigned i = 0; i < vcpus; i++) {
		int n = numa_layout__vcpu_node(&l, i);

		ck_assert_int_ge(n, (int)prev);
		ck_assert_int_le(n, (int)prev + 1);
		prev = (unsigned)n;
		in_node[n]++;
	}
	ck_assert_uint_eq(prev, nodes - 1);
	ck_assert_int_eq(numa_layout__vcpu_node(&l, vcpus), -1);
	for (unsigned n = 0; n < nodes; n++) {
		ck_assert_uint_ge(in_node[n], vcpus / nodes);
		ck_assert_uint_le(in_node[n], (vcpus + nodes - 1) / nodes);
		if (n)
			ck_assert_uint_le(in_node[n], in_node[n - 1]);
		ck_assert_uint_eq(numa_layout__node_vcpus(&l, n, NULL, 0),
				  in_node[n]);
	}

	/* RAM: node n owns RAM offsets [n * slice, (n + 1) * slice), the
	 * last node up to the end; ranges never touch the PCI hole. */
	for (unsigned n = 0; n < nodes; n++) {
		struct numa_range g[4];
		unsigned nr = numa_layout__node_ranges(&l, n, g, 4);
		uint64_t want = n + 1 < nodes ? slice : ram - n * slice;

		ck_assert_uint_ge(nr, 1);
		ck_assert_uint_le(nr, 2);
		ck_assert_uint_eq(numa_layout__node_ram(&l, n), want);
		ck_assert_uint_eq(ram_offset(&l, g[0].gpa), n * slice);
		ck_assert_uint_eq(g[0].gpa % (2 * MIB), 0);
		for (unsigned k = 0; k < nr; k++) {
			ck_assert_uint_eq(g[k].node, n);
			uint64_t end = g[k].gpa + g[k].size;

			ck_assert(end <= GUEST_PCI_HOLE_START ||
				  g[k].gpa >= GUEST_HIGH_RAM_START);
		}
		if (nr == 2) {
			ck_assert_uint_eq(g[0].gpa + g[0].size,
					  GUEST_PCI_HOLE_START);
			ck_assert_uint_eq(g[1].gpa, GUEST_HIGH_RAM_START);
		}
	}
	ck_assert_uint_ge(slice, NUMA_MIN_NODE_RAM);
}
END_TEST

START_TEST(spread_examples)
{
	struct numa_layout l;
	struct numa_range g[4];

	build_ok(&l, 2, 4, 256 * MIB, NULL);
	ck_assert_mem_eq(l.vcpu_node, ((uint8_t[]){ 0, 0, 1, 1 }), 4);
	ck_assert_uint_eq(l.nr_ranges, 2);
	ck_assert_uint_eq(l.range[0].gpa, 0);
	ck_assert_uint_eq(l.range[0].size, 128 * MIB);
	ck_assert_uint_eq(l.range[1].gpa, 128 * MIB);
	ck_assert_uint_eq(l.range[1].node, 1);

	build_ok(&l, 3, 5, 1000 * MIB, NULL);
	ck_assert_mem_eq(l.vcpu_node, ((uint8_t[]){ 0, 0, 1, 1, 2 }), 5);
	/* 1000 / 3 = 333.3 MiB, cut down to 332 MiB. */
	ck_assert_uint_eq(numa_layout__node_ram(&l, 0), 332 * MIB);
	ck_assert_uint_eq(numa_layout__node_ram(&l, 2), 336 * MIB);

	build_ok(&l, 4, 10, 512 * MIB, NULL);
	ck_assert_mem_eq(l.vcpu_node,
			 ((uint8_t[]){ 0, 0, 0, 1, 1, 1, 2, 2, 3, 3 }), 10);

	/* 8 GiB on 4 nodes: 2 GiB slices, node 1 on both sides of the hole. */
	build_ok(&l, 4, 8, 8 * GIB, NULL);
	ck_assert_uint_eq(l.nr_ranges, 5);
	ck_assert_uint_eq(numa_layout__node_ranges(&l, 1, g, 4), 2);
	ck_assert_uint_eq(g[0].gpa, 2 * GIB);
	ck_assert_uint_eq(g[0].size, 1 * GIB);
	ck_assert_uint_eq(g[1].gpa, 4 * GIB);
	ck_assert_uint_eq(g[1].size, 1 * GIB);
	ck_assert_uint_eq(numa_layout__node_ranges(&l, 3, g, 4), 1);
	ck_assert_uint_eq(g[0].gpa, 7 * GIB);
	ck_assert_uint_eq(g[0].size, 2 * GIB);
	/* Asking for fewer than there are copies only that many. */
	memset(g, 0xEE, sizeof(g));
	ck_assert_uint_eq(numa_layout__node_ranges(&l, 1, g, 1), 2);
	ck_assert_uint_eq(g[0].gpa, 2 * GIB);
	ck_assert_uint_eq(g[1].gpa, 0xEEEEEEEEEEEEEEEEull);
	ck_assert_uint_eq(numa_layout__node_ranges(&l, 4, g, 4), 0);
	ck_assert_uint_eq(numa_layout__node_ram(&l, 4), 0);

	/* Building twice gives the same bytes (canonical format). */
	struct numa_layout l2;

	memset(&l2, 0x77, sizeof(l2));
	build_ok(&l2, 4, 8, 8 * GIB, NULL);
	ck_assert_mem_eq(&l, &l2, sizeof(l));
}
END_TEST

/* Linear reference for home_of. */
static int home_ref(const struct numa_layout *l, uint64_t gpa)
{
	for (unsigned i = 0; i < l->nr_ranges; i++)
		if (gpa >= l->range[i].gpa &&
		    gpa - l->range[i].gpa < l->range[i].size)
			return (int)l->range[i].node;
	return -1;
}

START_TEST(vcpus_off_node_list)
{
	static const uint32_t mixed[] = { 0, 1, 0, 1, 1, 0, 1 };
	struct numa_layout l;
	char buf[64], tiny[3];

	/* nohz_full= for a cluster guest: every vCPU node 0 does not run. */
	build_ok(&l, 2, 7, 512 * MIB, mixed);
	ck_assert_int_eq(numa_layout__vcpus_off_node(&l, 0, buf, sizeof(buf)), 4);
	ck_assert_str_eq(buf, "1,3-4,6");
	ck_assert_int_eq(numa_layout__vcpus_off_node(&l, 1, buf, sizeof(buf)), 3);
	ck_assert_str_eq(buf, "0,2,5");
	ck_assert_int_eq(numa_layout__vcpus_off_node(&l, 0, tiny, sizeof(tiny)), -1);
	ck_assert_str_eq(tiny, "");

	build_ok(&l, 2, 2, 512 * MIB, NULL);
	ck_assert_int_eq(numa_layout__vcpus_off_node(&l, 0, buf, sizeof(buf)), 1);
	ck_assert_str_eq(buf, "1");

	build_ok(&l, 1, 4, 512 * MIB, NULL);
	ck_assert_int_eq(numa_layout__vcpus_off_node(&l, 0, buf, sizeof(buf)), 0);
	ck_assert_str_eq(buf, "");
}
END_TEST

START_TEST(home_of_boundaries)
{
	struct numa_layout l;

	build_ok(&l, 4, 4, 8 * GIB, NULL);
	ck_assert_int_eq(numa_layout__home_of(&l, 0), 0);
	ck_assert_int_eq(numa_layout__home_of(&l, 0x9FC00), 0);
	ck_assert_int_eq(numa_layout__home_of(&l, 2 * GIB - 1), 0);
	ck_assert_int_eq(numa_layout__home_of(&l, 2 * GIB), 1);
	ck_assert_int_eq(numa_layout__home_of(&l, 3 * GIB - 1), 1);
	ck_assert_int_eq(numa_layout__home_of(&l, 3 * GIB), -1);
	ck_assert_int_eq(numa_layout__home_of(&l, 0xFEE00000), -1);
	ck_assert_int_eq(numa_layout__home_of(&l, 4 * GIB - 1), -1);
	ck_assert_int_eq(numa_layout__home_of(&l, 4 * GIB), 1);
	ck_assert_int_eq(numa_layout__home_of(&l, 5 * GIB - 1), 1);
	ck_assert_int_eq(numa_layout__home_of(&l, 5 * GIB), 2);
	ck_assert_int_eq(numa_layout__home_of(&l, 7 * GIB - 1), 2);
	ck_assert_int_eq(numa_layout__home_of(&l, 7 * GIB), 3);
	ck_assert_int_eq(numa_layout__home_of(&l, 9 * GIB - 1), 3);
	ck_assert_int_eq(numa_layout__home_of(&l, 9 * GIB), -1);
	ck_assert_int_eq(numa_layout__home_of(&l, UINT64_MAX), -1);

	/* Every boundary +-1 and a spread of addresses agree with a linear
	 * search, on a layout with many ranges. */
	build_ok(&l, 64, 64, 4 * GIB + 6 * MIB, NULL);
	for (unsigned i = 0; i < l.nr_ranges; i++) {
		uint64_t a = l.range[i].gpa, b = a + l.range[i].size;

		ck_assert_int_eq(numa_layout__home_of(&l, a),
				 (int)l.range[i].node);
		ck_assert_int_eq(numa_layout__home_of(&l, b - 1),
				 (int)l.range[i].node);
		ck_assert_int_eq(numa_layout__home_of(&l, b), home_ref(&l, b));
		if (a)
			ck_assert_int_eq(numa_layout__home_of(&l, a - 1),
					 home_ref(&l, a - 1));
	}
	uint64_t x = 0x9E3779B97F4A7C15ull;

	for (unsigned i = 0; i < 20000; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		uint64_t gpa = x % (6 * GIB);

		ck_assert_int_eq(numa_layout__home_of(&l, gpa),
				 home_ref(&l, gpa));
	}
}
END_TEST

START_TEST(explicit_placement)
{
	static const uint32_t alt[] = { 1, 0, 1, 0 };
	static const uint32_t missing[] = { 0, 1, 2, 1 };
	static const uint32_t empty[] = { 0, 0, 2, 2 };
	struct numa_layout l;
	uint32_t v[4];
	char err[200];

	build_ok(&l, 2, 4, 512 * MIB, alt);
	ck_assert_mem_eq(l.vcpu_node, ((uint8_t[]){ 1, 0, 1, 0 }), 4);
	ck_assert_uint_eq(numa_layout__node_vcpus(&l, 0, v, 4), 2);
	ck_assert_uint_eq(v[0], 1);
	ck_assert_uint_eq(v[1], 3);
	ck_assert_uint_eq(numa_layout__node_vcpus(&l, 1, v, 4), 2);
	ck_assert_uint_eq(v[0], 0);
	ck_assert_uint_eq(v[1], 2);
	/* Memory homes do not follow the vCPUs: node 0 owns low RAM. */
	ck_assert_int_eq(numa_layout__home_of(&l, 0), 0);

	ck_assert_int_eq(build_err(2, 4, 512 * MIB, missing, err,
				   sizeof(err)), -1);
	ck_assert_msg(strstr(err, "vCPU 2") && strstr(err, "node 2"), "%s",
		      err);
	ck_assert_int_eq(build_err(3, 4, 512 * MIB, empty, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "node 1 runs no vCPU"), "%s", err);
}
END_TEST

START_TEST(build_errors)
{
	struct guest_mem_region r[3];
	struct numa_layout l;
	char err[200];

	ck_assert_int_eq(build_err(0, 4, 256 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "0 nodes"), "%s", err);
	ck_assert_int_eq(build_err(65, 64, 256 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "65 nodes"), "%s", err);
	ck_assert_int_eq(build_err(4, 2, 256 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "4 nodes but only 2 vCPUs"), "%s", err);
	ck_assert_int_eq(build_err(1, 0, 256 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_int_eq(build_err(1, 65, 256 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "65 vCPUs"), "%s", err);
	/* 16 MiB on 8 nodes: 2 MiB each, under Linux's 4 MiB node minimum. */
	ck_assert_int_eq(build_err(8, 8, 16 * MIB, NULL, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "too little"), "%s", err);
	ck_assert_int_eq(build_err(4, 8, 16 * MIB, NULL, err, sizeof(err)),
			 0);

	/* Bad RAM descriptions. */
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, NULL, 1, NULL, err,
					    sizeof(err)), -1);
	r[0] = (struct guest_mem_region){ .gpa = 0, .size = 64 * MIB + 1 };
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r, 1, NULL, err,
					    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "page-aligned"), "%s", err);
	r[0] = (struct guest_mem_region){ .gpa = 0, .size = 64 * MIB };
	r[1] = (struct guest_mem_region){ .gpa = 32 * MIB, .size = 64 * MIB };
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r, 2, NULL, err,
					    sizeof(err)), -1);
	ck_assert_msg(strstr(err, "overlap"), "%s", err);
	r[1] = (struct guest_mem_region){ .gpa = UINT64_MAX - 0xFFF,
					  .size = 0x2000 };
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r, 2, NULL, err,
					    sizeof(err)), -1);
	r[1] = (struct guest_mem_region){ .gpa = 128 * MIB, .size = 0 };
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r, 2, NULL, err,
					    sizeof(err)), -1);
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r, 0, NULL, err,
					    sizeof(err)), -1);
	ck_assert_int_eq(numa_layout__build(&l, 1, 1, r,
					    NUMA_MAX_RAM_REGIONS + 1, NULL,
					    err, sizeof(err)), -1);
	/* Three regions with a slice spanning two holes. */
	r[0] = (struct guest_mem_region){ .gpa = 0, .size = 6 * MIB };
	r[1] = (struct guest_mem_region){ .gpa = 16 * MIB, .size = 4 * MIB };
	r[2] = (struct guest_mem_region){ .gpa = 32 * MIB, .size = 14 * MIB };
	ck_assert_int_eq(numa_layout__build(&l, 2, 2, r, 3, NULL, err,
					    sizeof(err)), 0);
	ck_assert_uint_eq(l.nr_ranges, 4);
	ck_assert_uint_eq(numa_layout__node_ranges(&l, 0, NULL, 0), 3);
	ck_assert_uint_eq(numa_layout__node_ram(&l, 0), 12 * MIB);
	ck_assert_int_eq(numa_layout__home_of(&l, 33 * MIB), 0);
	ck_assert_int_eq(numa_layout__home_of(&l, 34 * MIB), 1);
	ck_assert_int_eq(numa_layout__home_of(&l, 10 * MIB), -1);
	/* A NULL error buffer is fine. */
	ck_assert_int_eq(numa_layout__build(&l, 0, 1, r, 3, NULL, NULL, 0),
			 -1);
}
END_TEST

static struct numa_layout good;
static struct guest_mem_region good_ram[2];
static unsigned good_nr;

static void setup_good(void)
{
	good_nr = pc_ram(8 * GIB, good_ram);
	build_ok(&good, 4, 8, 8 * GIB, NULL);
}

/* Runs check on a heap copy of exactly one layout, so that ASan sees any
 * read past it; expects failure with `want` in the message. */
static void expect_bad(const struct numa_layout *l, const char *want)
{
	struct numa_layout *h = malloc(sizeof(*h));
	char err[200] = "";

	ck_assert_ptr_nonnull(h);
	memcpy(h, l, sizeof(*h));
	ck_assert_int_eq(numa_layout__check(h, NULL, 0, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, want) != NULL, "want '%s', got '%s'", want,
		      err);
	ck_assert_ptr_null(strchr(err, '\n'));
	/* Lookups on a bad layout stay in bounds too. */
	(void)numa_layout__home_of(h, 5 * GIB);
	(void)numa_layout__node_ram(h, 0);
	(void)numa_layout__node_vcpus(h, 0, NULL, 0);
	(void)numa_layout__vcpu_node(h, 63);
	free(h);
}

START_TEST(check_rejects_corruption)
{
	struct numa_layout l;

	setup_good();
	ck_assert_int_eq(numa_layout__check(&good, good_ram, good_nr, NULL, 0),
			 0);
	ck_assert_uint_eq(good.nr_ranges, 5);

	l = good; /* overlapping ranges */
	l.range[1].gpa -= 0x1000;
	l.range[1].size += 0x1000;
	expect_bad(&l, "overlap");
	l = good; /* out of order */
	l.range[1] = good.range[2];
	l.range[2] = good.range[1];
	expect_bad(&l, "overlap or are out of order");
	l = good; /* a gap */
	l.range[0].size -= 2 * MIB;
	expect_bad(&l, "RAM at 0x7fe00000 has no home node");
	l = good; /* into the PCI hole */
	l.range[1].size += 2 * MIB;
	expect_bad(&l, "not inside one RAM region");
	l = good; /* past the end of RAM */
	l.range[4].size += 2 * MIB;
	expect_bad(&l, "not inside one RAM region");
	l = good; /* a range that wraps */
	l.range[4].size = UINT64_MAX - 0xFFF;
	expect_bad(&l, "wraps");
	l = good;
	l.range[2].gpa += 0x800;
	expect_bad(&l, "page-aligned");
	l = good;
	l.range[3].reserved = 1;
	expect_bad(&l, "reserved");
	l = good;
	l.range[3].node = 4;
	expect_bad(&l, "homed on node 4");
	l = good; /* a vCPU on a missing node */
	l.vcpu_node[5] = 4;
	expect_bad(&l, "vCPU 5 is on node 4");
	l.vcpu_node[5] = 255;
	expect_bad(&l, "vCPU 5 is on node 255");
	l = good; /* node 3 left without vCPUs */
	l.vcpu_node[6] = l.vcpu_node[7] = 2;
	expect_bad(&l, "node 3 runs no vCPU");

	/* Counts out of range, including ones that would index past the
	 * arrays if trusted. */
	l = good;
	l.nr_nodes = 0;
	expect_bad(&l, "0 nodes");
	l.nr_nodes = 65;
	expect_bad(&l, "65 nodes");
	l = good;
	l.nr_vcpus = 65;
	expect_bad(&l, "65 vCPUs");
	l.nr_vcpus = UINT32_MAX;
	expect_bad(&l, "vCPUs");
	l.nr_vcpus = 3; /* fewer than nodes */
	expect_bad(&l, "3 vCPUs for 4 nodes");
	l = good;
	l.nr_ranges = NUMA_MAX_RANGES + 1;
	expect_bad(&l, "RAM ranges");
	l.nr_ranges = UINT32_MAX;
	expect_bad(&l, "RAM ranges");
	l.nr_ranges = 3;
	expect_bad(&l, "RAM ranges"); /* 3 ranges cannot home 4 nodes */
	l = good;
	l.nr_ram = NUMA_MAX_RAM_REGIONS + 1;
	expect_bad(&l, "RAM regions");
	l.nr_ram = 0;
	expect_bad(&l, "RAM regions");
	l = good; /* fewer vCPUs, stale entry left behind */
	l.vcpu_node[l.nr_vcpus - 1] = 3;
	l.nr_vcpus--;
	l.vcpu_node[l.nr_vcpus - 1] = 3;
	ck_assert_int_eq(numa_layout__check(&l, NULL, 0, NULL, 0), -1);
	l.vcpu_node[l.nr_vcpus] = 0;
	ck_assert_int_eq(numa_layout__check(&l, NULL, 0, NULL, 0), 0);
	l = good;
	l.range[NUMA_MAX_RANGES - 1].size = 1;
	expect_bad(&l, "not zero");
	l = good;
	l.version = NUMA_LAYOUT_VERSION + 1;
	expect_bad(&l, "version");
	l = good;
	l.flags = 0x80;
	expect_bad(&l, "flags");
}
END_TEST

START_TEST(check_ram_and_minimum)
{
	struct guest_mem_region r[2];
	struct numa_layout l;
	char err[200];
	unsigned nr;

	setup_good();
	/* The receiver's RAM must be what the layout partitions. */
	nr = pc_ram(6 * GIB, r);
	ck_assert_int_eq(numa_layout__check(&good, r, nr, err, sizeof(err)),
			 -1);
	ck_assert_msg(strstr(err, "different RAM"), "%s", err);
	ck_assert_int_eq(numa_layout__check(&good, good_ram, 1, err,
					    sizeof(err)), -1);
	/* RAM regions of the layout itself are validated too. */
	l = good;
	l.ram[1].gpa = 2 * GIB;
	expect_bad(&l, "RAM regions 0 and 1 overlap");

	/* 16 MiB on 2 nodes is 8 + 8 MiB; moving the boundary to 2 MiB
	 * leaves node 0 under the minimum. */
	build_ok(&l, 2, 2, 16 * MIB, NULL);
	ck_assert_uint_eq(l.nr_ranges, 2);
	l.range[0].size = 2 * MIB;
	l.range[1].gpa = 2 * MIB;
	l.range[1].size = 14 * MIB;
	expect_bad(&l, "node 0 homes 2048 KiB");
	l.range[0].size = 4 * MIB;
	l.range[1].gpa = 4 * MIB;
	l.range[1].size = 12 * MIB;
	ck_assert_int_eq(numa_layout__check(&l, NULL, 0, err, sizeof(err)), 0);
	ck_assert_int_eq(numa_layout__home_of(&l, 4 * MIB), 1);
}
END_TEST

/* Random byte damage: check never crashes, and what it accepts still
 * answers lookups consistently. */
START_TEST(check_fuzz)
{
	struct numa_layout *h = malloc(sizeof(*h));
	uint64_t x = 0x123456789ABCDEFull;
	unsigned accepted = 0;

	ck_assert_ptr_nonnull(h);
	setup_good();
	for (unsigned it = 0; it < 3000; it++) {
		memcpy(h, &good, sizeof(*h));
		for (unsigned k = 0; k < 1 + it % 4; k++) {
			x ^= x << 13;
			x ^= x >> 7;
			x ^= x << 17;
			/* Mostly the used head of the struct, where the
			 * interesting fields are. */
			size_t off = (x >> 8) % (k & 1 ? sizeof(*h) : 240);

			((uint8_t *)h)[off] ^= (uint8_t)(1u << (x % 8));
		}
		if (numa_layout__check(h, NULL, 0, NULL, 0))
			continue;
		accepted++;
		uint64_t covered = 0;

		for (unsigned i = 0; i < h->nr_ranges; i++) {
			uint64_t a = h->range[i].gpa;

			ck_assert_int_eq(numa_layout__home_of(h, a),
					 (int)h->range[i].node);
			covered += h->range[i].size;
		}
		ck_assert_uint_eq(covered, h->ram[0].size +
				  (h->nr_ram > 1 ? h->ram[1].size : 0));
	}
	/* Some flips (a vCPU moved to another node, flags) stay valid. */
	ck_assert_uint_gt(accepted, 0);
	free(h);
}
END_TEST

START_TEST(flat_presentation)
{
	struct numa_layout l;

	build_ok(&l, 4, 4, 8 * GIB, NULL);
	numa_layout__set_flat(&l, true);
	ck_assert_uint_eq(l.flags, NUMA_LAYOUT_FLAT);
	ck_assert_uint_eq(numa_layout__guest_nodes(&l), 1);
	ck_assert_int_eq(numa_layout__check(&l, NULL, 0, NULL, 0), 0);
	/* Homes are unchanged: only the guest's view differs. */
	ck_assert_int_eq(numa_layout__home_of(&l, 8 * GIB), 3);
	ck_assert_uint_eq(l.nr_nodes, 4);
	numa_layout__set_flat(&l, false);
	ck_assert_uint_eq(l.flags, 0);
	ck_assert_uint_eq(numa_layout__guest_nodes(&l), 4);
}
END_TEST

/* The layout travels as a state section; what comes back checks out and
 * answers the same. */
START_TEST(state_section_round_trip)
{
	struct state_writer *w = state_writer__new();
	struct state_reader *r;
	struct numa_layout l, back;
	uint8_t *blob;
	size_t len;
	char err[200];

	build_ok(&l, 3, 6, 6 * GIB, NULL);
	ck_assert_ptr_nonnull(w);
	ck_assert_int_eq(state_writer__add(w, NUMA_LAYOUT_SECTION,
					   NUMA_LAYOUT_VERSION, &l, sizeof(l)),
			 0);
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	ck_assert_int_eq(state_reader__get(r, NUMA_LAYOUT_SECTION,
					   NUMA_LAYOUT_VERSION, &back,
					   sizeof(back), err, sizeof(err)), 0);
	state_reader__free(r);
	free(blob);
	ck_assert_int_eq(numa_layout__check(&back, NULL, 0, err, sizeof(err)),
			 0);
	ck_assert_mem_eq(&back, &l, sizeof(l));
	ck_assert_int_eq(numa_layout__home_of(&back, 4 * GIB), 1);
}
END_TEST

static Suite *numa_layout_suite(void)
{
	Suite *s = suite_create("numa_layout");
	TCase *t = tcase_create("layout");

	tcase_set_timeout(t, 60);
	tcase_add_loop_test(t, default_spread, 0,
			    sizeof(spreads) / sizeof(spreads[0]));
	tcase_add_test(t, spread_examples);
	tcase_add_test(t, home_of_boundaries);
	tcase_add_test(t, explicit_placement);
	tcase_add_test(t, build_errors);
	tcase_add_test(t, check_rejects_corruption);
	tcase_add_test(t, check_ram_and_minimum);
	tcase_add_test(t, check_fuzz);
	tcase_add_test(t, flat_presentation);
	tcase_add_test(t, state_section_round_trip);
	tcase_add_test(t, vcpus_off_node_list);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(numa_layout_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
