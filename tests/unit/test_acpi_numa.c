/* SRAT and SLIT: their bytes, their place in the XSDT/RSDT, and that the
 * other tables do not change when NUMA is on or flat. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/acpi.h"
#include "guestfw/acpi_numa.h"
#include "vmm/numa_layout.h"

#define GPA 0xE0000ull
#define BUF_LEN 0x20000
#define MIB (1024ull * 1024)
#define GIB (1024 * MIB)

static uint8_t tbuf[BUF_LEN];
static uint8_t plain[BUF_LEN];
static struct acpi_layout lay, plain_lay;

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void layout_ok(struct numa_layout *l, unsigned nodes, unsigned vcpus,
		      uint64_t ram, const uint32_t *placement)
{
	struct guest_mem_region r[2] = { { .gpa = 0 } };
	unsigned nr = 1;
	char err[200] = "";

	r[0].size = ram < GUEST_PCI_HOLE_START ? ram : GUEST_PCI_HOLE_START;
	if (ram > r[0].size) {
		r[1].gpa = GUEST_HIGH_RAM_START;
		r[1].size = ram - r[0].size;
		nr = 2;
	}
	ck_assert_msg(numa_layout__build(l, nodes, vcpus, r, nr, placement,
					 err, sizeof(err)) == 0, "%s", err);
}

static int build(const struct acpi_config *cfg, uint8_t *buf,
		 struct acpi_layout *out, char *err, size_t errlen)
{
	memset(buf, 0xA5, BUF_LEN);
	return acpi__build(cfg, buf, BUF_LEN, GPA, out, err, errlen);
}

static void build_ok(const struct acpi_config *cfg)
{
	char err[200] = "";

	ck_assert_msg(build(cfg, tbuf, &lay, err, sizeof(err)) == 0, "%s",
		      err);
}

/* The same machine without NUMA, for comparison. */
static void build_plain(const struct acpi_config *cfg)
{
	struct acpi_config c = *cfg;
	char err[200] = "";

	c.numa = NULL;
	ck_assert_msg(build(&c, plain, &plain_lay, err, sizeof(err)) == 0,
		      "%s", err);
}

static const uint8_t *blob(const char *sig, uint32_t *len)
{
	int i = acpi__find_blob(&lay, sig);

	ck_assert_msg(i >= 0, "no %s", sig);
	*len = lay.blob[i].len;
	return tbuf + lay.blob[i].offset;
}

/* How many times the XSDT and the RSDT name the table with signature sig;
 * also checks every listed table's length and checksum. */
static unsigned listed(const char *sig)
{
	const uint8_t *r = tbuf + lay.rsdp_offset;
	const uint8_t *x = tbuf + (rd64(r + 24) - GPA);
	const uint8_t *rs = tbuf + (rd32(r + 16) - GPA);
	unsigned n = 0, n32 = 0;

	ck_assert_uint_eq(rd32(x + 4) - 36, 2 * (rd32(rs + 4) - 36));
	for (uint32_t off = 36; off < rd32(x + 4); off += 8) {
		uint64_t gpa = rd64(x + off);
		const uint8_t *t = tbuf + (gpa - GPA);

		ck_assert_uint_ge(gpa, GPA);
		ck_assert_uint_le(gpa - GPA + rd32(t + 4), lay.size);
		ck_assert_uint_eq(acpi__sum(t, rd32(t + 4)), 0);
		n += !memcmp(t, sig, 4);
		n32 += !memcmp(tbuf + (rd32(rs + 36 + (off - 36) / 2) - GPA),
			       sig, 4);
	}
	ck_assert_uint_eq(n, n32);
	return n;
}

static void check_sdt(const uint8_t *t, uint32_t len, const char *sig,
		      uint8_t rev)
{
	ck_assert_mem_eq(t, sig, 4);
	ck_assert_uint_eq(rd32(t + 4), len);
	ck_assert_uint_eq(t[8], rev);
	ck_assert_uint_eq(acpi__sum(t, len), 0);
	ck_assert_mem_eq(t + 10, "KRGVMM", 6);
}

/* Walks the SRAT: one processor structure per vCPU in order, then one
 * memory structure per layout range. */
static void check_srat(const struct numa_layout *l, const uint32_t *ids)
{
	uint32_t len, off = 48;
	const uint8_t *t = blob("SRAT", &len);

	check_sdt(t, len, "SRAT", 3);
	ck_assert_uint_eq(rd32(t + 36), 1);
	ck_assert_uint_eq(rd64(t + 40), 0);
	for (unsigned i = 0; i < l->nr_vcpus; i++) {
		const uint8_t *e = t + off;
		uint32_t id = ids ? ids[i] : i;

		ck_assert_uint_le(off + 2, len);
		if (id < 255) {
			ck_assert_uint_eq(e[0], 0);
			ck_assert_uint_eq(e[1], 16);
			ck_assert_uint_eq(e[2], l->vcpu_node[i]);
			ck_assert_uint_eq(e[3], id);
			ck_assert_uint_eq(rd32(e + 4), 1); /* enabled */
			ck_assert_uint_eq(e[8], 0);        /* SAPIC EID */
			ck_assert_uint_eq(e[9] | e[10] | e[11], 0);
			ck_assert_uint_eq(rd32(e + 12), 0); /* clock domain */
		} else {
			ck_assert_uint_eq(e[0], 2);
			ck_assert_uint_eq(e[1], 24);
			ck_assert_uint_eq(e[2] | e[3], 0);
			ck_assert_uint_eq(rd32(e + 4), l->vcpu_node[i]);
			ck_assert_uint_eq(rd32(e + 8), id);
			ck_assert_uint_eq(rd32(e + 12), 1);
			ck_assert_uint_eq(rd64(e + 16), 0);
		}
		off += e[1];
	}
	for (unsigned i = 0; i < l->nr_ranges; i++) {
		const uint8_t *e = t + off;

		ck_assert_uint_le(off + 40, len);
		ck_assert_uint_eq(e[0], 1);
		ck_assert_uint_eq(e[1], 40);
		ck_assert_uint_eq(rd32(e + 2), l->range[i].node);
		ck_assert_uint_eq(e[6] | e[7], 0);
		ck_assert_uint_eq(rd32(e + 8), (uint32_t)l->range[i].gpa);
		ck_assert_uint_eq(rd32(e + 12), l->range[i].gpa >> 32);
		ck_assert_uint_eq(rd32(e + 16), (uint32_t)l->range[i].size);
		ck_assert_uint_eq(rd32(e + 20), l->range[i].size >> 32);
		ck_assert_uint_eq(rd32(e + 24), 0);
		ck_assert_uint_eq(rd32(e + 28), 1); /* enabled, not hotplug */
		ck_assert_uint_eq(rd64(e + 32), 0);
		off += 40;
	}
	ck_assert_uint_eq(off, len);
}

static void check_slit(unsigned n, const uint8_t *want)
{
	uint32_t len;
	const uint8_t *t = blob("SLIT", &len);

	check_sdt(t, len, "SLIT", 1);
	ck_assert_uint_eq(len, 44 + n * n);
	ck_assert_uint_eq(rd64(t + 36), n);
	for (unsigned i = 0; i < n; i++)
		for (unsigned j = 0; j < n; j++)
			ck_assert_uint_eq(t[44 + i * n + j],
					  want ? want[i * n + j] :
					  i == j ? 10 : 20);
}

/* Every blob that exists without NUMA keeps its offset and bytes, except
 * the XSDT/RSDT/RSDP that now also point at SRAT and SLIT. */
static void check_others_unchanged(void)
{
	for (unsigned i = 0; i < plain_lay.nr_blobs; i++) {
		const struct acpi_blob *b = &plain_lay.blob[i];
		int j = acpi__find_blob(&lay, b->sig);

		ck_assert_int_ge(j, 0);
		if (!strcmp(b->sig, "XSDT") || !strcmp(b->sig, "RSDT") ||
		    !strcmp(b->sig, "RSDP"))
			continue;
		ck_assert_uint_eq(lay.blob[j].offset, b->offset);
		ck_assert_uint_eq(lay.blob[j].len, b->len);
		ck_assert_mem_eq(tbuf + b->offset, plain + b->offset, b->len);
	}
}

static const struct {
	unsigned nodes, vcpus;
	uint64_t ram;
} shapes[] = {
	{ 1, 1, 256 * MIB },
	{ 2, 4, 512 * MIB },
	{ 4, 8, 8 * GIB },  /* node 1 on both sides of the PCI hole */
	{ 3, 3, 6 * GIB },
};

START_TEST(srat_slit_per_shape)
{
	unsigned nodes = shapes[_i].nodes;
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;

	layout_ok(&l, nodes, shapes[_i].vcpus, shapes[_i].ram, NULL);
	acpi__config_init(&cfg, shapes[_i].vcpus);
	cfg.numa = &numa;
	build_ok(&cfg);
	build_plain(&cfg);

	ck_assert_uint_eq(lay.nr_blobs, plain_lay.nr_blobs + 2);
	check_srat(&l, NULL);
	check_slit(nodes, NULL);
	ck_assert_uint_eq(listed("SRAT"), 1);
	ck_assert_uint_eq(listed("SLIT"), 1);
	ck_assert_uint_eq(listed("APIC"), 1);
	ck_assert_uint_eq(listed("FACP"), 1);
	for (unsigned i = 0; i < lay.nr_checksums; i++) {
		const struct acpi_checksum *c = &lay.checksum[i];

		ck_assert_uint_eq(acpi__sum(tbuf + c->start, c->len), 0);
	}
	for (unsigned i = 0; i < lay.nr_pointers; i++) {
		const struct acpi_pointer *p = &lay.pointer[i];
		uint64_t v = p->width == 8 ? rd64(tbuf + p->offset) :
			     rd32(tbuf + p->offset);

		ck_assert_uint_eq(v, GPA + lay.blob[p->target].offset);
	}
	ck_assert_uint_eq(lay.nr_pointers, plain_lay.nr_pointers + 4);
	ck_assert_uint_eq(lay.nr_checksums, plain_lay.nr_checksums + 2);
	const uint8_t *r = tbuf + lay.rsdp_offset;

	ck_assert_uint_eq(acpi__sum(r, 20), 0);
	ck_assert_uint_eq(acpi__sum(r, 36), 0);
	check_others_unchanged();
}
END_TEST

START_TEST(memory_across_4gib)
{
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;
	uint32_t len;

	/* 6 GiB on 3 nodes: [0,2G) [2G,3G)+[4G,5G) [5G,7G). */
	layout_ok(&l, 3, 3, 6 * GIB, NULL);
	acpi__config_init(&cfg, 3);
	cfg.numa = &numa;
	build_ok(&cfg);
	const uint8_t *t = blob("SRAT", &len);
	const uint8_t *m = t + 48 + 3 * 16;
	static const uint64_t base[] = { 0, 2 * GIB, 4 * GIB, 5 * GIB };
	static const uint64_t size[] = { 2 * GIB, 1 * GIB, 1 * GIB, 2 * GIB };
	static const uint32_t node[] = { 0, 1, 1, 2 };

	ck_assert_uint_eq(len, 48 + 3 * 16 + 4 * 40);
	for (unsigned i = 0; i < 4; i++, m += 40) {
		ck_assert_uint_eq(m[0], 1);
		ck_assert_uint_eq(rd32(m + 2), node[i]);
		ck_assert_uint_eq(rd64(m + 8), base[i]);
		ck_assert_uint_eq(rd64(m + 16), size[i]);
	}
	/* The first range starts at 0: RAM below 1 MiB is node 0's. */
	ck_assert_uint_eq(rd64(t + 48 + 3 * 16 + 8), 0);
}
END_TEST

START_TEST(off_and_flat_leave_tables_alone)
{
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;

	layout_ok(&l, 2, 2, 512 * MIB, NULL);
	acpi__config_init(&cfg, 2);
	ck_assert_ptr_null(cfg.numa);
	build_ok(&cfg);
	ck_assert_int_lt(acpi__find_blob(&lay, "SRAT"), 0);
	ck_assert_int_lt(acpi__find_blob(&lay, "SLIT"), 0);
	ck_assert_uint_eq(listed("SRAT") + listed("SLIT"), 0);
	ck_assert_uint_eq(lay.nr_blobs, 7);

	/* Flat: homes stay, the guest sees one node: byte-identical to no
	 * NUMA at all. */
	build_plain(&cfg);
	numa_layout__set_flat(&l, true);
	cfg.numa = &numa;
	ck_assert(!acpi_numa__enabled(&numa));
	build_ok(&cfg);
	ck_assert_uint_eq(lay.size, plain_lay.size);
	ck_assert_mem_eq(tbuf, plain, lay.size);
	ck_assert_mem_eq(&lay, &plain_lay, sizeof(lay));
	numa_layout__set_flat(&l, false);
	ck_assert(acpi_numa__enabled(&numa));
	build_ok(&cfg);
	ck_assert_int_ge(acpi__find_blob(&lay, "SRAT"), 0);
	ck_assert(!acpi_numa__enabled(NULL));
}
END_TEST

START_TEST(x2apic_affinity_for_large_ids)
{
	static const uint32_t ids[] = { 0, 1, 300, 2 };
	static const uint32_t place[] = { 0, 1, 1, 0 };
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;
	uint32_t len;

	layout_ok(&l, 2, 4, 512 * MIB, place);
	acpi__config_init(&cfg, 4);
	cfg.apic_ids = ids;
	cfg.numa = &numa;
	build_ok(&cfg);
	check_srat(&l, ids);
	const uint8_t *t = blob("SRAT", &len);

	ck_assert_uint_eq(len, 48 + 3 * 16 + 24 + 2 * 40);
	ck_assert_uint_eq(t[48 + 2 * 16], 2);
	ck_assert_uint_eq(rd32(t + 48 + 2 * 16 + 4), 1);   /* node */
	ck_assert_uint_eq(rd32(t + 48 + 2 * 16 + 8), 300); /* x2APIC ID */
	ck_assert_uint_eq(t[48 + 2 * 16 + 24], 0);
	ck_assert_uint_eq(t[48 + 2 * 16 + 24 + 3], 2);     /* APIC ID 2 */
	ck_assert_uint_eq(t[48 + 2 * 16 + 24 + 2], 0);     /* node 0 */
}
END_TEST

START_TEST(distance_matrix)
{
	uint8_t d[9] = { 10, 15, 30, 15, 10, 15, 30, 15, 10 };
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l, .distance = d };
	struct acpi_config cfg;
	char err[200];

	layout_ok(&l, 3, 3, 768 * MIB, NULL);
	acpi__config_init(&cfg, 3);
	cfg.numa = &numa;
	build_ok(&cfg);
	check_slit(3, d);

	d[4] = 11; /* diagonal must be 10 */
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "from node 1 to 1"), "%s", err);
	d[4] = 10;
	d[5] = 10; /* remote no nearer than local */
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "from node 1 to 2"), "%s", err);
	d[5] = 255; /* unreachable is allowed */
	build_ok(&cfg);
	check_slit(3, d);
}
END_TEST

START_TEST(bad_numa_rejected)
{
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;
	char err[200];

	layout_ok(&l, 2, 4, 512 * MIB, NULL);
	acpi__config_init(&cfg, 3); /* not the layout's vCPU count */
	cfg.numa = &numa;
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "4 vCPUs, the machine 3"), "%s", err);

	acpi__config_init(&cfg, 4);
	cfg.numa = &numa;
	l.range[1].gpa += 0x200000; /* a gap */
	l.range[1].size -= 0x200000;
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "numa:") && strstr(err, "no home"), "%s",
		      err);
	/* Even a flat layout must be valid for the machine. */
	numa_layout__set_flat(&l, true);
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);

	numa.layout = NULL;
	ck_assert_int_eq(build(&cfg, tbuf, &lay, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "without a layout"), "%s", err);
}
END_TEST

/* The largest NUMA machine: 64 nodes, 64 vCPUs (placed in reverse), RAM
 * over the hole, still within the table, pointer and checksum limits; a
 * short buffer fails cleanly without writing past it. */
START_TEST(largest_and_small_buffer)
{
	uint32_t p[64];
	struct numa_layout l;
	struct acpi_numa numa = { .layout = &l };
	struct acpi_config cfg;
	struct acpi_layout sl;
	char err[200];
	uint8_t *mem;
	uint32_t need;

	for (unsigned i = 0; i < 64; i++)
		p[i] = 63 - i;
	/* 66 MiB slices: node 46 spans the PCI hole. */
	layout_ok(&l, 64, 64, 4 * GIB + 128 * MIB, p);
	ck_assert_uint_eq(l.nr_ranges, 65);
	acpi__config_init(&cfg, 64);
	cfg.numa = &numa;
	build_ok(&cfg);
	check_srat(&l, NULL);
	check_slit(64, NULL);
	ck_assert_uint_eq(listed("SRAT"), 1);
	ck_assert_uint_le(lay.nr_blobs, ACPI_MAX_BLOBS);
	ck_assert_uint_le(lay.nr_pointers, ACPI_MAX_POINTERS);
	ck_assert_uint_le(lay.nr_checksums, ACPI_MAX_CHECKSUMS);

	need = lay.size;
	mem = malloc(need + 64);
	ck_assert_ptr_nonnull(mem);
	for (uint32_t cap = need - 64 * 64 - 200; cap < need; cap += 7) {
		memset(mem, 0x3C, need + 64);
		ck_assert_int_eq(acpi__build(&cfg, mem, cap, GPA, &sl, err,
					     sizeof(err)), -1);
		ck_assert_msg(strstr(err, "do not fit"), "%s", err);
		uint32_t i = cap;

		while (i < need + 64 && mem[i] == 0x3C)
			i++;
		ck_assert_msg(i == need + 64, "cap %u: byte %u written", cap,
			      i);
	}
	ck_assert_int_eq(acpi__build(&cfg, mem, need, GPA, &sl, err,
				     sizeof(err)), 0);
	ck_assert_mem_eq(mem, tbuf, need);
	free(mem);
}
END_TEST

static Suite *acpi_numa_suite(void)
{
	Suite *s = suite_create("acpi_numa");
	TCase *t = tcase_create("tables");

	tcase_set_timeout(t, 60);
	tcase_add_loop_test(t, srat_slit_per_shape, 0,
			    sizeof(shapes) / sizeof(shapes[0]));
	tcase_add_test(t, memory_across_4gib);
	tcase_add_test(t, off_and_flat_leave_tables_alone);
	tcase_add_test(t, x2apic_affinity_for_large_ids);
	tcase_add_test(t, distance_matrix);
	tcase_add_test(t, bad_numa_rejected);
	tcase_add_test(t, largest_and_small_buffer);
	suite_add_tcase(s, t);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(acpi_numa_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
