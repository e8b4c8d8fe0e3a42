/* Unit tests for the software page walk (vcpu/pagewalk.c): page tables
 * are built in a fake guest-physical memory buffer. */
#include <check.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/pagewalk.h"

#define MEM_SIZE (16u << 20)
#define P 0x1ull
#define RW 0x2ull
#define PS 0x80ull
#define NX (1ull << 63)

static uint8_t *mem;

static int fake_gpa(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	unsigned *calls = ctx;

	if (calls)
		(*calls)++;
	if (gpa >= MEM_SIZE || len > MEM_SIZE - gpa)
		return -1;
	memcpy(buf, mem + gpa, len);
	return 0;
}

static void put64(uint64_t gpa, uint64_t v)
{
	memcpy(mem + gpa, &v, 8);
}

static void put32(uint64_t gpa, uint32_t v)
{
	memcpy(mem + gpa, &v, 4);
}

static void setup(void)
{
	mem = calloc(1, MEM_SIZE);
}

static void teardown(void)
{
	free(mem);
	mem = NULL;
}

static struct pagewalk_env env_long(bool la57)
{
	struct pagewalk_env e;

	memset(&e, 0, sizeof(e));
	e.cpu.cr0 = PW_CR0_PE | PW_CR0_PG;
	e.cpu.cr4 = PW_CR4_PAE | (la57 ? PW_CR4_LA57 : 0);
	e.cpu.efer = PW_EFER_LME | PW_EFER_LMA | PW_EFER_NXE;
	e.cpu.cr3 = 0x1000;
	e.read_gpa = fake_gpa;
	return e;
}

static unsigned idx(uint64_t va, unsigned level)
{
	return (unsigned)((va >> (12 + 9 * (level - 1))) & 511);
}

/* Maps @va to @gpa with 4 KiB pages: PML4 0x1000, PDPT 0x2000, PD 0x3000,
 * PT 0x4000. */
static void map4k(uint64_t va, uint64_t gpa)
{
	put64(0x1000 + idx(va, 4) * 8, 0x2000 | P | RW);
	put64(0x2000 + idx(va, 3) * 8, 0x3000 | P | RW);
	put64(0x3000 + idx(va, 2) * 8, 0x4000 | P | RW);
	put64(0x4000 + idx(va, 1) * 8, gpa | P | RW);
}

START_TEST(paging_off)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;

	e.cpu.cr0 = PW_CR0_PE;
	e.cpu.efer = 0;
	ck_assert_int_eq(pagewalk__translate(&e, 0x123456789ull, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x23456789ull);
	ck_assert_uint_eq(r.page_size, 0);
	e.cpu.cr0 = 0; /* real mode */
	ck_assert_int_eq(pagewalk__translate(&e, 0xffff0, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0xffff0);
}
END_TEST

START_TEST(long_4k)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;
	uint64_t va = 0xffff888000201000ull + 0x123;
	char buf[8];

	map4k(va, 0x10000);
	memcpy(mem + 0x10123, "krg-vmm", 8);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x10123);
	ck_assert_uint_eq(r.page_size, 4096);
	ck_assert_int_eq(pagewalk__read_virt(&e, va, buf, 8, NULL), PAGEWALK_OK);
	ck_assert_str_eq(buf, "krg-vmm");
}
END_TEST

START_TEST(long_large_pages)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;
	uint64_t va2m = 0x40000000ull + 0x200000 * 3 + 0x1234;
	uint64_t va1g = 0x8000000000ull + 0x40000000ull * 2 + 0x345678;

	/* 2 MiB: PD entry with PS */
	put64(0x1000 + idx(va2m, 4) * 8, 0x2000 | P);
	put64(0x2000 + idx(va2m, 3) * 8, 0x3000 | P);
	put64(0x3000 + idx(va2m, 2) * 8, 0x200000 | P | PS);
	ck_assert_int_eq(pagewalk__translate(&e, va2m, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x201234);
	ck_assert_uint_eq(r.page_size, 2u << 20);
	/* the PAT bit (12) of a large page is not an address bit */
	put64(0x3000 + idx(va2m, 2) * 8, 0x200000 | P | PS | 0x1000);
	ck_assert_int_eq(pagewalk__translate(&e, va2m, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x201234);
	/* bits 20:13 must be zero */
	put64(0x3000 + idx(va2m, 2) * 8, 0x200000 | P | PS | 0x2000);
	ck_assert_int_eq(pagewalk__translate(&e, va2m, &r), PAGEWALK_RESERVED);

	/* 1 GiB: PDPT entry with PS */
	put64(0x1000 + idx(va1g, 4) * 8, 0x5000 | P);
	put64(0x5000 + idx(va1g, 3) * 8, 0xc0000000ull | P | PS);
	ck_assert_int_eq(pagewalk__translate(&e, va1g, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0xc0345678ull);
	ck_assert_uint_eq(r.page_size, 1u << 30);
	ck_assert_uint_eq(r.level, 3);
	put64(0x5000 + idx(va1g, 3) * 8, 0xc0000000ull | P | PS | 0x100000);
	ck_assert_int_eq(pagewalk__translate(&e, va1g, &r), PAGEWALK_RESERVED);

	/* PS in a PML4 entry is reserved */
	put64(0x1000 + idx(va1g, 4) * 8, 0x5000 | P | PS);
	ck_assert_int_eq(pagewalk__translate(&e, va1g, &r), PAGEWALK_RESERVED);
	ck_assert_uint_eq(r.level, 4);
}
END_TEST

START_TEST(long_not_present_and_canonical)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;
	uint64_t va = 0x7f0000001000ull;

	map4k(va, 0x10000);
	put64(0x4000 + idx(va, 1) * 8, 0x10000); /* PTE P=0 */
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_NOT_PRESENT);
	ck_assert_uint_eq(r.level, 1);
	ck_assert_uint_eq(r.entry, 0x10000);
	put64(0x2000 + idx(va, 3) * 8, 0); /* PDPTE P=0 */
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_NOT_PRESENT);
	ck_assert_uint_eq(r.level, 3);

	ck_assert_int_eq(pagewalk__translate(&e, 0x0000800000000000ull, &r),
			 PAGEWALK_NON_CANONICAL);
	ck_assert_int_eq(pagewalk__translate(&e, 0xfff0000000000000ull, &r),
			 PAGEWALK_NON_CANONICAL);
	/* canonical high half walks (and is not present here) */
	ck_assert_int_eq(pagewalk__translate(&e, 0xffff800000000000ull, &r),
			 PAGEWALK_NOT_PRESENT);
}
END_TEST

START_TEST(long_reserved_bits)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;
	uint64_t va = 0x1000;

	map4k(va, 0x10000);
	/* NX is fine with EFER.NXE, reserved without */
	put64(0x4000 + idx(va, 1) * 8, 0x10000 | P | NX);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	e.cpu.efer &= ~PW_EFER_NXE;
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
	e.cpu.efer |= PW_EFER_NXE;
	/* an address bit above MAXPHYADDR */
	put64(0x4000 + idx(va, 1) * 8, (1ull << 40) | 0x10000 | P);
	e.cpu.maxphyaddr = 36;
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
	e.cpu.maxphyaddr = 46;
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, (1ull << 40) | 0x10000);
	/* bits 62:52 are ignored (software/protection keys) */
	e.cpu.maxphyaddr = 0;
	put64(0x4000 + idx(va, 1) * 8, (0x7ffull << 52) | 0x10000 | P);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x10000);
}
END_TEST

START_TEST(long_la57)
{
	struct pagewalk_env e = env_long(true);
	struct pagewalk_result r;
	uint64_t va = 0x0080000000003000ull; /* needs 57 bits */

	put64(0x1000 + idx(va, 5) * 8, 0x6000 | P);
	put64(0x6000 + idx(va, 4) * 8, 0x2000 | P);
	put64(0x2000 + idx(va, 3) * 8, 0x3000 | P);
	put64(0x3000 + idx(va, 2) * 8, 0x4000 | P);
	put64(0x4000 + idx(va, 1) * 8, 0x22000 | P);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x22000);
	ck_assert_int_eq(pagewalk__translate(&e, 0x0100000000000000ull << 1, &r),
			 PAGEWALK_NON_CANONICAL);
	e.cpu.cr4 &= ~PW_CR4_LA57;
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_NON_CANONICAL);
}
END_TEST

START_TEST(pae)
{
	struct pagewalk_env e;
	struct pagewalk_result r;
	uint32_t va = 0xc0801234u;

	memset(&e, 0, sizeof(e));
	e.read_gpa = fake_gpa;
	e.cpu.cr0 = PW_CR0_PE | PW_CR0_PG;
	e.cpu.cr4 = PW_CR4_PAE;
	e.cpu.cr3 = 0x1020; /* 32-byte aligned PDPT */
	put64(0x1020 + 3 * 8, 0x2000 | P);
	put64(0x2000 + ((va >> 21) & 511) * 8, 0x3000 | P);
	put64(0x3000 + ((va >> 12) & 511) * 8, 0x45000 | P);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x45234);
	/* upper bits of the linear address do not exist here */
	ck_assert_int_eq(pagewalk__translate(&e, 0xabcd00000000ull | va, &r),
			 PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x45234);
	/* 2 MiB page in the PD */
	put64(0x2000 + ((va >> 21) & 511) * 8, 0x400000 | P | PS);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x401234);
	ck_assert_uint_eq(r.page_size, 2u << 20);
	/* NX without EFER.NXE, and reserved PDPTE bits */
	put64(0x2000 + ((va >> 21) & 511) * 8, 0x400000 | P | PS | NX);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
	put64(0x1020 + 3 * 8, 0x2000 | P | RW);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
	ck_assert_uint_eq(r.level, 3);
	put64(0x1020 + 3 * 8, 0);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_NOT_PRESENT);
}
END_TEST

START_TEST(legacy_32)
{
	struct pagewalk_env e;
	struct pagewalk_result r;
	uint32_t va = 0xc0401abcu;

	memset(&e, 0, sizeof(e));
	e.read_gpa = fake_gpa;
	e.cpu.cr0 = PW_CR0_PE | PW_CR0_PG;
	e.cpu.cr3 = 0x1000;
	put32(0x1000 + (va >> 22) * 4, 0x2000 | P);
	put32(0x2000 + ((va >> 12) & 1023) * 4, 0x33000 | P);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x33abc);
	ck_assert_uint_eq(r.page_size, 4096);

	/* PS is only a 4 MiB page with CR4.PSE */
	put32(0x1000 + (va >> 22) * 4, 0x00c00000u | P | PS);
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_NOT_PRESENT);
	e.cpu.cr4 = PW_CR4_PSE;
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x00c01abcu);
	ck_assert_uint_eq(r.page_size, 4u << 20);
	/* PSE-36: PDE bits 20:13 are physical bits 39:32 */
	put32(0x1000 + (va >> 22) * 4, 0x00c00000u | P | PS | (0x5u << 13));
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_OK);
	ck_assert_uint_eq(r.gpa, 0x500c01abcull);
	put32(0x1000 + (va >> 22) * 4, 0x00c00000u | P | PS | (1u << 21));
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
	/* MAXPHYADDR 36 leaves only 4 high bits */
	e.cpu.maxphyaddr = 36;
	put32(0x1000 + (va >> 22) * 4, 0x00c00000u | P | PS | (0x10u << 13));
	ck_assert_int_eq(pagewalk__translate(&e, va, &r), PAGEWALK_RESERVED);
}
END_TEST

START_TEST(read_across_pages)
{
	struct pagewalk_env e = env_long(false);
	uint64_t va = 0x400ff8, fault = 0;
	char buf[16];

	/* two virtually adjacent pages, physically apart and reversed */
	map4k(va, 0x30000);
	map4k(va + 0x1000, 0x20000);
	memcpy(mem + 0x30ff8, "abcdefgh", 8);
	memcpy(mem + 0x20000, "ijklmnop", 8);
	ck_assert_int_eq(pagewalk__read_virt(&e, va, buf, 16, &fault), PAGEWALK_OK);
	ck_assert_mem_eq(buf, "abcdefghijklmnop", 16);

	/* the second page missing: the fault is at its first byte */
	put64(0x4000 + idx(va + 0x1000, 1) * 8, 0);
	ck_assert_int_eq(pagewalk__read_virt(&e, va, buf, 16, &fault),
			 PAGEWALK_NOT_PRESENT);
	ck_assert_uint_eq(fault, 0x401000);

	/* the page maps outside guest RAM */
	put64(0x4000 + idx(va + 0x1000, 1) * 8, (64ull << 20) | P);
	ck_assert_int_eq(pagewalk__read_virt(&e, va, buf, 16, &fault),
			 PAGEWALK_DATA_UNREADABLE);
	/* zero length reads nothing */
	ck_assert_int_eq(pagewalk__read_virt(&e, va, NULL, 0, NULL), PAGEWALK_OK);
}
END_TEST

START_TEST(unreadable_tables_and_args)
{
	struct pagewalk_env e = env_long(false);
	struct pagewalk_result r;
	unsigned calls = 0;
	char buf[4];

	e.ctx = &calls;
	e.cpu.cr3 = 512ull << 20; /* outside RAM */
	ck_assert_int_eq(pagewalk__translate(&e, 0x1000, &r),
			 PAGEWALK_TABLE_UNREADABLE);
	ck_assert_uint_eq(calls, 1);
	/* a PDE pointing past RAM */
	e.cpu.cr3 = 0x1000;
	put64(0x1000, 0x2000 | P);
	put64(0x2000, 0x3000 | P);
	put64(0x3000, (1ull << 45) | P);
	ck_assert_int_eq(pagewalk__translate(&e, 0x1000, &r),
			 PAGEWALK_TABLE_UNREADABLE);
	ck_assert_uint_eq(r.level, 1);

	ck_assert_int_eq(pagewalk__translate(NULL, 0, &r), PAGEWALK_BAD_ARG);
	ck_assert_int_eq(pagewalk__translate(&e, 0, NULL), PAGEWALK_BAD_ARG);
	e.read_gpa = NULL;
	ck_assert_int_eq(pagewalk__read_virt(&e, 0, buf, 4, NULL), PAGEWALK_BAD_ARG);
	ck_assert_str_eq(pagewalk__strerror(PAGEWALK_NOT_PRESENT), "page not present");
	ck_assert_str_eq(pagewalk__strerror((enum pagewalk_status)99),
			 "invalid page walk request");
}
END_TEST

START_TEST(read_guest_adapter)
{
	struct pagewalk_env e = env_long(false);
	uint64_t va = 0xffffffff81000000ull;
	uint32_t v = 0;

	map4k(va, 0x50000);
	put32(0x50010, 0xfeedface);
	ck_assert_int_eq(pagewalk__read_guest(&e, va + 0x10, &v, 4), 0);
	ck_assert_uint_eq(v, 0xfeedface);
	ck_assert_int_eq(e.last_status, PAGEWALK_OK);
	ck_assert_int_eq(pagewalk__read_guest(&e, 0x0000900000000000ull, &v, 4), -1);
	ck_assert_int_eq(e.last_status, PAGEWALK_NON_CANONICAL);
	ck_assert_uint_eq(e.last_gva, 0x0000900000000000ull);
	ck_assert_int_eq(pagewalk__read_guest(NULL, 0, &v, 4), -1);
}
END_TEST

/* Random page-table contents and control registers: never out of bounds,
 * and a successful translation stays inside the physical address width. */
START_TEST(random_tables)
{
	uint64_t seed = 0xa4093822299f31d0ull;
	struct pagewalk_env e;

	memset(&e, 0, sizeof(e));
	e.read_gpa = fake_gpa;
	for (size_t i = 0; i < 64 * 1024; i += 8) {
		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		/* mostly present entries pointing into the first 64 KiB */
		put64(i, (seed & 0xf000ull) | (seed & 0x8000000000000fffull) |
			 ((seed >> 60) == 0 ? (seed & 0x000fffff00000000ull) : 0));
	}
	for (int i = 0; i < 20000; i++) {
		struct pagewalk_result r;
		enum pagewalk_status st;
		uint64_t va;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		e.cpu.cr0 = (seed & 1 ? PW_CR0_PE : 0) | (seed & 2 ? PW_CR0_PG : 0);
		e.cpu.cr4 = (seed & 4 ? PW_CR4_PAE : 0) | (seed & 8 ? PW_CR4_PSE : 0) |
			    (seed & 16 ? PW_CR4_LA57 : 0);
		e.cpu.efer = (seed & 32 ? PW_EFER_LMA : 0) |
			     (seed & 64 ? PW_EFER_NXE : 0);
		e.cpu.cr3 = seed & 0xf000;
		e.cpu.maxphyaddr = (unsigned)(seed >> 58); /* 0..63, clamped */
		va = seed * 0x9e3779b97f4a7c15ull;
		st = pagewalk__translate(&e, va, &r);
		if (st == PAGEWALK_OK)
			ck_assert_uint_lt(r.gpa, 1ull << 52);
		else
			ck_assert_int_le(st, PAGEWALK_BAD_ARG);
	}
}
END_TEST

static Suite *pagewalk_suite(void)
{
	Suite *s = suite_create("pagewalk");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, paging_off);
	tcase_add_test(tc, long_4k);
	tcase_add_test(tc, long_large_pages);
	tcase_add_test(tc, long_not_present_and_canonical);
	tcase_add_test(tc, long_reserved_bits);
	tcase_add_test(tc, long_la57);
	tcase_add_test(tc, pae);
	tcase_add_test(tc, legacy_32);
	tcase_add_test(tc, read_across_pages);
	tcase_add_test(tc, unreadable_tables_and_args);
	tcase_add_test(tc, read_guest_adapter);
	tcase_add_test(tc, random_tables);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pagewalk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
