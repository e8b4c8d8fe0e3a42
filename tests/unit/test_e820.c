/* E820 map: layout for several RAM sizes, sanitizing, placement search. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/e820.h"
#include "vmm/guest_mem.h"

#define MiB (1ull << 20)
#define GiB (1ull << 30)

/* The PC layout guest_mem uses; e820__build only reads the regions. */
static void fake_mem(struct guest_mem *m, uint64_t ram)
{
	memset(m, 0, sizeof(*m));
	m->memfd = -1;
	m->ram_size = ram;
	m->region[0].gpa = 0;
	m->region[0].size = ram < GUEST_PCI_HOLE_START ? ram : GUEST_PCI_HOLE_START;
	m->nr_regions = 1;
	if (ram > GUEST_PCI_HOLE_START) {
		m->region[1].gpa = GUEST_HIGH_RAM_START;
		m->region[1].size = ram - GUEST_PCI_HOLE_START;
		m->region[1].memfd_offset = GUEST_PCI_HOLE_START;
		m->nr_regions = 2;
	}
}

static void expect(const struct e820_table *t, unsigned i, uint64_t addr,
		   uint64_t size, uint32_t type)
{
	ck_assert_uint_lt(i, t->nr_entries);
	ck_assert_uint_eq(t->entries[i].addr, addr);
	ck_assert_uint_eq(t->entries[i].size, size);
	ck_assert_uint_eq(t->entries[i].type, type);
}

static void check_sorted_disjoint(const struct e820_table *t)
{
	for (unsigned i = 1; i < t->nr_entries; i++) {
		const struct e820_entry *a = &t->entries[i - 1], *b = &t->entries[i];

		ck_assert_uint_le(a->addr + a->size, b->addr);
		/* Neighbours of one type would have been merged. */
		ck_assert(!(a->addr + a->size == b->addr && a->type == b->type));
	}
}

static uint64_t ram_total(const struct e820_table *t)
{
	uint64_t sum = 0;

	for (unsigned i = 0; i < t->nr_entries; i++)
		if (t->entries[i].type == E820_TYPE_RAM)
			sum += t->entries[i].size;
	return sum;
}

static void expect_pc_low(const struct e820_table *t, uint64_t low_end)
{
	expect(t, 0, 0, 0x9FC00, E820_TYPE_RAM);
	expect(t, 1, 0x9FC00, 0x100000 - 0x9FC00, E820_TYPE_RESERVED);
	expect(t, 2, 0x100000, low_end - 0x100000, E820_TYPE_RAM);
	expect(t, 3, 0xFEC00000, 0x1000, E820_TYPE_RESERVED);
	expect(t, 4, 0xFEE00000, 0x1000, E820_TYPE_RESERVED);
	expect(t, 5, 0xFFFC0000, 0x40000, E820_TYPE_RESERVED);
}

START_TEST(build_16m)
{
	struct guest_mem m;
	struct e820_table t;

	fake_mem(&m, 16 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_uint_eq(t.nr_entries, 6);
	expect_pc_low(&t, 16 * MiB);
	check_sorted_disjoint(&t);
	ck_assert_uint_eq(ram_total(&t), 16 * MiB - (0x100000 - 0x9FC00));
}
END_TEST

START_TEST(build_2g)
{
	struct guest_mem m;
	struct e820_table t;

	fake_mem(&m, 2 * GiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_uint_eq(t.nr_entries, 6);
	expect_pc_low(&t, 2 * GiB);
	check_sorted_disjoint(&t);
}
END_TEST

START_TEST(build_4g_splits_at_pci_hole)
{
	struct guest_mem m;
	struct e820_table t;

	fake_mem(&m, 4 * GiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_uint_eq(t.nr_entries, 7);
	expect_pc_low(&t, GUEST_PCI_HOLE_START);
	expect(&t, 6, GUEST_HIGH_RAM_START, 1 * GiB, E820_TYPE_RAM);
	check_sorted_disjoint(&t);
	/* All RAM is reported except the EBDA..1 MiB hole. */
	ck_assert_uint_eq(ram_total(&t), 4 * GiB - (0x100000 - 0x9FC00));
	/* Nothing usable inside the PCI hole. */
	for (unsigned i = 0; i < t.nr_entries; i++)
		if (t.entries[i].type == E820_TYPE_RAM)
			ck_assert(t.entries[i].addr + t.entries[i].size <=
				  GUEST_PCI_HOLE_START ||
				  t.entries[i].addr >= GUEST_HIGH_RAM_START);
}
END_TEST

START_TEST(build_8g)
{
	struct guest_mem m;
	struct e820_table t;

	fake_mem(&m, 8 * GiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	ck_assert_uint_eq(t.nr_entries, 7);
	expect_pc_low(&t, 3 * GiB);
	expect(&t, 6, 4 * GiB, 5 * GiB, E820_TYPE_RAM);
	ck_assert_uint_eq(e820__ram_at(&t, 0), 0x9FC00);
	ck_assert_uint_eq(e820__ram_at(&t, 1 * MiB), 3 * GiB - 1 * MiB);
	ck_assert_uint_eq(e820__ram_at(&t, 2 * MiB), 0);
}
END_TEST

START_TEST(sanitize_overlaps)
{
	struct e820_table t;

	e820__init(&t);
	/* Out of order, overlapping RAM, a reserved range inside RAM and an
	 * ACPI range overlapping the end of a reserved one. */
	ck_assert_int_eq(e820__add(&t, 0x200000, 0x300000, E820_TYPE_RAM), 0);
	ck_assert_int_eq(e820__add(&t, 0, 0x280000, E820_TYPE_RAM), 0);
	ck_assert_int_eq(e820__add(&t, 0x100000, 0x1000, E820_TYPE_RESERVED), 0);
	ck_assert_int_eq(e820__add(&t, 0x800000, 0x1000, E820_TYPE_RESERVED), 0);
	ck_assert_int_eq(e820__add(&t, 0x800800, 0x1000, E820_TYPE_ACPI), 0);
	ck_assert_int_eq(e820__sanitize(&t), 0);
	ck_assert_uint_eq(t.nr_entries, 5);
	expect(&t, 0, 0, 0x100000, E820_TYPE_RAM);
	expect(&t, 1, 0x100000, 0x1000, E820_TYPE_RESERVED);
	expect(&t, 2, 0x101000, 0x500000 - 0x101000, E820_TYPE_RAM);
	expect(&t, 3, 0x800000, 0x800, E820_TYPE_RESERVED);
	expect(&t, 4, 0x800800, 0x1000, E820_TYPE_ACPI);
	check_sorted_disjoint(&t);
}
END_TEST

/* The outcome must not depend on the order ranges were added in. */
START_TEST(sanitize_priority_not_order)
{
	struct e820_table t;

	e820__init(&t);
	ck_assert_int_eq(e820__add(&t, 0x3000, 0x1000, E820_TYPE_NVS), 0);
	ck_assert_int_eq(e820__add(&t, 0x2000, 0x3000, E820_TYPE_RESERVED), 0);
	ck_assert_int_eq(e820__add(&t, 0, 0x10000, E820_TYPE_RAM), 0);
	ck_assert_int_eq(e820__sanitize(&t), 0);
	ck_assert_uint_eq(t.nr_entries, 5);
	expect(&t, 0, 0, 0x2000, E820_TYPE_RAM);
	expect(&t, 1, 0x2000, 0x1000, E820_TYPE_RESERVED);
	expect(&t, 2, 0x3000, 0x1000, E820_TYPE_NVS);
	expect(&t, 3, 0x4000, 0x1000, E820_TYPE_RESERVED);
	expect(&t, 4, 0x5000, 0xB000, E820_TYPE_RAM);
}
END_TEST

START_TEST(add_rejects_bad_ranges)
{
	struct e820_table t;

	e820__init(&t);
	ck_assert_int_eq(e820__add(&t, 0x1000, 0, E820_TYPE_RAM), -1);
	ck_assert_int_eq(e820__add(&t, 0x1000, 0x1000, 0), -1);
	ck_assert_int_eq(e820__add(&t, UINT64_MAX - 0xFFF, 0x1000, E820_TYPE_RAM), -1);
	ck_assert_int_eq(e820__add(&t, UINT64_MAX - 0xFFF, 0xFFF, E820_TYPE_RAM), 0);
	for (unsigned i = 1; i < E820_MAX_ENTRIES; i++)
		ck_assert_int_eq(e820__add(&t, 0x2000 * i, 0x1000, E820_TYPE_RAM), 0);
	ck_assert_uint_eq(t.nr_entries, E820_MAX_ENTRIES);
	ck_assert_int_eq(e820__add(&t, 0x10000000, 0x1000, E820_TYPE_RAM), -1);
	/* A full table of disjoint entries survives sanitizing intact. */
	ck_assert_int_eq(e820__sanitize(&t), 0);
	ck_assert_uint_eq(t.nr_entries, E820_MAX_ENTRIES);
	check_sorted_disjoint(&t);
}
END_TEST

START_TEST(sanitize_overflow_fails)
{
	struct e820_table t;

	/* 64 RAM ranges each split in three by a reserved one in the middle
	 * would need 192 entries. */
	e820__init(&t);
	for (unsigned i = 0; i < 64; i++) {
		ck_assert_int_eq(e820__add(&t, 0x10000 * i, 0x3000, E820_TYPE_RAM), 0);
		ck_assert_int_eq(e820__add(&t, 0x10000 * i + 0x1000, 0x1000,
					   E820_TYPE_RESERVED), 0);
	}
	ck_assert_int_eq(e820__sanitize(&t), -1);
}
END_TEST

START_TEST(find_highest_places_high_and_avoids)
{
	struct guest_mem m;
	struct e820_table t;
	uint64_t a;

	fake_mem(&m, 64 * MiB);
	ck_assert_int_eq(e820__build(&m, &t), 0);
	/* Top of RAM, page aligned. */
	ck_assert_int_eq(e820__find_highest(&t, 0x1800, 0x1000, 0, UINT64_MAX,
					    0, 0, &a), 0);
	ck_assert_uint_eq(a, 64 * MiB - 0x2000);
	/* Below a limit. */
	ck_assert_int_eq(e820__find_highest(&t, 0x1000, 0x1000, 0, 32 * MiB + 5,
					    0, 0, &a), 0);
	ck_assert_uint_eq(a, 32 * MiB - 0x1000);
	/* A kernel occupying the top forces the range below it. */
	ck_assert_int_eq(e820__find_highest(&t, 4 * MiB, 0x1000, 1 * MiB,
					    UINT64_MAX, 16 * MiB, 64 * MiB, &a), 0);
	ck_assert_uint_eq(a, 12 * MiB);
	/* Does not fit at all: too big, or only in the reserved hole. */
	ck_assert_int_eq(e820__find_highest(&t, 64 * MiB, 0x1000, 0, UINT64_MAX,
					    0, 0, &a), -1);
	ck_assert_int_eq(e820__find_highest(&t, 0x1000, 0x1000, 0x9F000,
					    0x100000, 0, 0, &a), -1);
	ck_assert_int_eq(e820__find_highest(&t, 0x1000, 3, 0, UINT64_MAX, 0, 0, &a),
			 -1);
}
END_TEST

START_TEST(type_names)
{
	ck_assert_str_eq(e820__type_name(E820_TYPE_RAM), "usable");
	ck_assert_str_eq(e820__type_name(E820_TYPE_RESERVED), "reserved");
	ck_assert_str_eq(e820__type_name(99), "unknown");
}
END_TEST

int main(void)
{
	Suite *s = suite_create("e820");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, build_16m);
	tcase_add_test(tc, build_2g);
	tcase_add_test(tc, build_4g_splits_at_pci_hole);
	tcase_add_test(tc, build_8g);
	tcase_add_test(tc, sanitize_overlaps);
	tcase_add_test(tc, sanitize_priority_not_order);
	tcase_add_test(tc, add_rejects_bad_ranges);
	tcase_add_test(tc, sanitize_overflow_fails);
	tcase_add_test(tc, find_highest_places_high_and_avoids);
	tcase_add_test(tc, type_names);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
