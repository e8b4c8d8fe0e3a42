/* MBR and GPT parsing (storage/partition_table.h) on disks built in byte
 * arrays: primaries, logical partitions, protective MBR + GPT, the backup
 * GPT when the primary is corrupt, and corrupt tables of every kind giving
 * one line of error -- never a read outside the disk, never a crash, also
 * for randomly mutated tables. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "storage/partition_table.h"
#include "vmm/bytes.h"

#define SECTORS 8192u /* a 4 MiB disk */

struct mem_disk {
	uint8_t *buf;
	uint64_t len;
	bool out_of_bounds;   /* the parser asked for bytes past the end */
	bool fail;            /* every read fails */
	unsigned reads;
};

static struct mem_disk disk;
static struct part_table t;
static char err[512];

static int mem_read(void *ctx, uint64_t off, void *buf, size_t len,
		    char *e, size_t elen)
{
	struct mem_disk *d = ctx;

	d->reads++;
	if (d->fail) {
		snprintf(e, elen, "I/O error at byte %llu",
			 (unsigned long long)off);
		return -1;
	}
	if (off > d->len || len > d->len - off) {
		d->out_of_bounds = true;
		snprintf(e, elen, "read past the end");
		return -1;
	}
	memcpy(buf, d->buf + off, len);
	return 0;
}

static void setup(void)
{
	disk = (struct mem_disk){ .len = (uint64_t)SECTORS * 512 };
	disk.buf = calloc(1, disk.len);
	ck_assert_ptr_nonnull(disk.buf);
}

static void teardown(void)
{
	free(disk.buf);
}

static int parse(void)
{
	err[0] = '\0';
	memset(&t, 0xa5, sizeof(t));
	return partition_table__read(mem_read, &disk, disk.len, &t, err,
				     sizeof(err));
}

static uint8_t *sector(uint64_t lba)
{
	return disk.buf + lba * 512;
}

static void mbr_sig(uint64_t lba)
{
	sector(lba)[510] = 0x55;
	sector(lba)[511] = 0xAA;
}

static void mbr_entry(uint64_t lba, unsigned i, uint8_t type, uint32_t start,
		      uint32_t sectors)
{
	uint8_t *e = sector(lba) + 446 + 16 * i;

	e[0] = i == 0 ? 0x80 : 0;
	e[4] = type;
	put_le32(e + 8, start);
	put_le32(e + 12, sectors);
	mbr_sig(lba);
}

static void expect_error(const char *what)
{
	ck_assert_int_eq(parse(), -1);
	ck_assert_msg(strstr(err, what), "error '%s' lacks '%s'", err, what);
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert(!disk.out_of_bounds);
	ck_assert_uint_eq(t.nr, 0);
}

static void expect_part(unsigned idx, unsigned number, uint64_t start,
			uint64_t sectors)
{
	ck_assert_uint_gt(t.nr, idx);
	ck_assert_uint_eq(t.p[idx].number, number);
	ck_assert_uint_eq(t.p[idx].start, start);
	ck_assert_uint_eq(t.p[idx].sectors, sectors);
}

START_TEST(no_table)
{
	ck_assert_int_eq(parse(), 0);
	ck_assert_int_eq(t.scheme, PART_SCHEME_NONE);
	ck_assert_uint_eq(t.nr, 0);
	/* A signature with no entries: still no partitions. */
	mbr_sig(0);
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, 0);
	/* A boot sector whose "status bytes" are code (a FAT volume, say):
	 * not a partition table. */
	mbr_entry(0, 0, 0x83, 2048, 100);
	sector(0)[446 + 16] = 0x12;
	ck_assert_int_eq(parse(), 0);
	ck_assert_int_eq(t.scheme, PART_SCHEME_NONE);
	/* A disk too small for a table. */
	disk.len = 512;
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, 0);
	ck_assert_str_eq(partition_table__scheme_name(PART_SCHEME_NONE),
			 "none");
}
END_TEST

START_TEST(mbr_primaries)
{
	mbr_entry(0, 0, 0x83, 2048, 2000);
	mbr_entry(0, 2, 0x0c, 5000, SECTORS - 5000); /* to the last sector */
	ck_assert_int_eq(parse(), 0);
	ck_assert_int_eq(t.scheme, PART_SCHEME_MBR);
	ck_assert_uint_eq(t.nr, 2);
	expect_part(0, 1, 2048, 2000);
	expect_part(1, 3, 5000, SECTORS - 5000);
	ck_assert_uint_eq(t.p[0].mbr_type, 0x83);
	ck_assert_ptr_eq(partition_table__find(&t, 3), &t.p[1]);
	ck_assert_ptr_null(partition_table__find(&t, 2));
	ck_assert_str_eq(partition_table__scheme_name(t.scheme), "MBR");
}
END_TEST

START_TEST(mbr_corrupt)
{
	mbr_entry(0, 1, 0x83, 2048, SECTORS); /* past the end */
	expect_error("corrupt MBR: partition 2");
	memset(disk.buf, 0, 512);
	mbr_entry(0, 0, 0x83, 0, 100); /* over the MBR itself */
	expect_error("corrupt MBR");
	memset(disk.buf, 0, 512);
	mbr_entry(0, 0, 0x83, 0xFFFFFFFFu, 0xFFFFFFFFu);
	expect_error("corrupt MBR");
}
END_TEST

START_TEST(mbr_logical)
{
	/* p1, then an extended partition at 1000 holding two logicals. */
	mbr_entry(0, 0, 0x83, 64, 900);
	mbr_entry(0, 1, 0x0f, 1000, 3000);
	mbr_entry(1000, 0, 0x83, 10, 500);      /* logical 5 at 1010 */
	mbr_entry(1000, 1, 0x05, 1000, 1500);   /* next EBR at 2000 */
	mbr_entry(2000, 0, 0x82, 5, 200);       /* logical 6 at 2005 */
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, 3);
	expect_part(0, 1, 64, 900);
	expect_part(1, 5, 1010, 500);
	expect_part(2, 6, 2005, 200);
	ck_assert_uint_eq(t.p[2].mbr_type, 0x82);
	/* An EBR without a signature ends the chain, as in Linux. */
	sector(2000)[510] = 0;
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, 2);
}
END_TEST

START_TEST(mbr_logical_corrupt)
{
	mbr_entry(0, 0, 0x05, 1000, 3000);
	mbr_entry(1000, 0, 0x83, 10, 100);
	mbr_entry(1000, 1, 0x05, 1000, 100);    /* EBR at 2000 */
	mbr_entry(2000, 0, 0x83, 10, 100);
	mbr_entry(2000, 1, 0x05, 1000, 100);    /* ... links to itself */
	expect_error("links (a loop?)");
	/* The same with no partitions in the loop: nothing else stops it. */
	mbr_entry(2000, 0, 0, 0, 0);
	mbr_entry(2000, 1, 0x05, 1000, 100);
	expect_error("links (a loop?)");
	/* A link outside the extended partition. */
	mbr_entry(2000, 1, 0x05, 5000, 100);
	expect_error("outside the extended partition");
	/* A logical partition outside it. */
	mbr_entry(2000, 1, 0, 0, 0);
	mbr_entry(2000, 0, 0x83, 10, 5000);
	expect_error("corrupt MBR: logical partition 6");
}
END_TEST

struct gpt_part {
	unsigned slot;          /* from 1 */
	uint64_t first, last;
	uint8_t type;           /* first byte of the type GUID */
};

/* A GPT header at lba (1 or the last sector) whose array sits at elba. */
static void gpt_write(uint64_t lba, uint64_t elba, uint32_t nr,
		      uint32_t esize, const struct gpt_part *p, unsigned np)
{
	uint8_t *h = sector(lba), *arr = sector(elba);

	memset(arr, 0, (size_t)nr * esize);
	for (unsigned i = 0; i < np; i++) {
		uint8_t *e = arr + (size_t)(p[i].slot - 1) * esize;

		memset(e, 0x11, 16);
		e[0] = p[i].type;
		memset(e + 16, 0x22, 16);
		put_le64(e + 32, p[i].first);
		put_le64(e + 40, p[i].last);
	}
	memset(h, 0, 512);
	memcpy(h, "EFI PART", 8);
	put_le32(h + 8, 0x00010000);
	put_le32(h + 12, 92);
	put_le64(h + 24, lba);
	put_le64(h + 32, lba == 1 ? SECTORS - 1 : 1);
	put_le64(h + 40, 34);
	put_le64(h + 48, SECTORS - 34);
	put_le64(h + 72, elba);
	put_le32(h + 80, nr);
	put_le32(h + 84, esize);
	put_le32(h + 88, (uint32_t)crc32(0, arr, nr * esize));
	put_le32(h + 16, (uint32_t)crc32(0, h, 92));
}

static void gpt_fix_crc(uint64_t lba)
{
	uint8_t *h = sector(lba);

	put_le32(h + 16, 0);
	put_le32(h + 16, (uint32_t)crc32(0, h, get_le32(h + 12)));
}

static const struct gpt_part two_parts[] = {
	{ 1, 2048, 4095, 0xaf },
	{ 3, 4096, SECTORS - 34, 0x83 },
};

static void gpt_disk(void)
{
	mbr_entry(0, 0, 0xEE, 1, SECTORS - 1);
	gpt_write(1, 2, 128, 128, two_parts, 2);
	gpt_write(SECTORS - 1, SECTORS - 33, 128, 128, two_parts, 2);
}

START_TEST(gpt_valid)
{
	gpt_disk();
	ck_assert_int_eq(parse(), 0);
	ck_assert_int_eq(t.scheme, PART_SCHEME_GPT);
	ck_assert(!t.gpt_backup_used);
	ck_assert_uint_eq(t.nr, 2);
	expect_part(0, 1, 2048, 2048);
	expect_part(1, 3, 4096, SECTORS - 34 - 4096 + 1);
	ck_assert_uint_eq(t.p[1].gpt_type[0], 0x83);
	ck_assert_uint_eq(t.p[1].mbr_type, 0);
	ck_assert_str_eq(partition_table__scheme_name(t.scheme), "GPT");
	/* Larger entries (256 bytes) work the same. */
	gpt_write(1, 2, 64, 256, two_parts, 2);
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, 2);
	ck_assert(!t.gpt_backup_used);
}
END_TEST

START_TEST(gpt_backup)
{
	gpt_disk();
	sector(1)[40] ^= 1; /* first usable LBA: the header CRC breaks */
	ck_assert_int_eq(parse(), 0);
	ck_assert(t.gpt_backup_used);
	ck_assert_uint_eq(t.nr, 2);
	expect_part(0, 1, 2048, 2048);
	/* The primary's array corrupt, its header fine: the backup again. */
	gpt_disk();
	sector(2)[32] ^= 0xff;
	ck_assert_int_eq(parse(), 0);
	ck_assert(t.gpt_backup_used);
	/* Both gone: the primary's reason. */
	sector(SECTORS - 1)[0] = 'X';
	expect_error("corrupt GPT: primary entry array checksum");
	ck_assert_msg(strstr(err, "no valid backup"), "%s", err);
}
END_TEST

START_TEST(gpt_corrupt)
{
	/* Each breakage in the primary with no backup at all. */
	struct {
		unsigned off, width;
		uint64_t value;
		const char *msg;
	} cases[] = {
		{ 12, 4, 1000, "header size 1000" },
		{ 12, 4, 40, "header size 40" },
		{ 24, 8, 7, "own sector" },
		{ 48, 8, SECTORS + 5, "usable range" },
		{ 40, 8, SECTORS - 20, "usable range" },
		{ 80, 4, 1000000, "1000000 entries" },
		{ 80, 4, 0, "0 entries" },
		{ 84, 4, 100, "of 100 bytes" },
		{ 84, 4, 130, "of 130 bytes" },
		{ 84, 4, 0x80000000u, "entries of" },
		{ 72, 8, SECTORS - 2, "does not fit the disk" },
		{ 72, 8, 0, "does not fit the disk" },
		{ 72, 8, UINT64_MAX, "does not fit the disk" },
	};

	for (unsigned i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		memset(disk.buf, 0, disk.len);
		gpt_disk();
		memset(sector(SECTORS - 1), 0, 512);
		if (cases[i].width == 4)
			put_le32(sector(1) + cases[i].off,
				 (uint32_t)cases[i].value);
		else
			put_le64(sector(1) + cases[i].off, cases[i].value);
		if (cases[i].off != 12) /* the size is checked first */
			gpt_fix_crc(1);
		expect_error(cases[i].msg);
	}
	/* A partition outside the usable area, the arrays' CRCs right. */
	memset(disk.buf, 0, disk.len);
	{
		struct gpt_part bad[] = { { 2, 10, 100, 0x83 } };

		mbr_entry(0, 0, 0xEE, 1, SECTORS - 1);
		gpt_write(1, 2, 128, 128, bad, 1);
		expect_error("partition 2 (sectors 10-100) lies outside");
		bad[0].first = 3000;
		bad[0].last = 2000;
		gpt_write(1, 2, 128, 128, bad, 1);
		expect_error("partition 2 (sectors 3000-2000)");
	}
	/* A protective MBR with no GPT at all. */
	memset(disk.buf, 0, disk.len);
	mbr_entry(0, 0, 0xEE, 1, SECTORS - 1);
	expect_error("no primary header");
}
END_TEST

START_TEST(gpt_too_many_used)
{
	struct gpt_part *p = calloc(PART_MAX + 1, sizeof(*p));

	ck_assert_ptr_nonnull(p);
	for (unsigned i = 0; i <= PART_MAX; i++)
		p[i] = (struct gpt_part){ i + 1, 100 + 10 * i, 105 + 10 * i,
					  0x83 };
	mbr_entry(0, 0, 0xEE, 1, SECTORS - 1);
	gpt_write(1, 2, 256, 128, p, PART_MAX + 1);
	expect_error("more than 128 partitions");
	gpt_write(1, 2, 256, 128, p, PART_MAX);
	ck_assert_int_eq(parse(), 0);
	ck_assert_uint_eq(t.nr, PART_MAX);
	free(p);
}
END_TEST

START_TEST(io_error)
{
	disk.fail = true;
	ck_assert_int_eq(parse(), -1);
	ck_assert_msg(strstr(err, "I/O error at byte 0"), "%s", err);
	/* The GPT read failing half way. */
	disk.fail = false;
	gpt_disk();
	disk.len = 2 * 512 + 100; /* no room for the header's ranges */
	expect_error("corrupt GPT");
}
END_TEST

/* Valid tables with random bytes flipped, CRCs sometimes repaired so the
 * corruption reaches the fields behind them: any outcome but a read past
 * the end, a crash or a multi-line error. */
START_TEST(random_mutations)
{
	unsigned seed = 12345, ok = 0, bad = 0;

	for (unsigned round = 0; round < 20000; round++) {
		unsigned flips;

		memset(disk.buf, 0, 64 * 512);
		memset(disk.buf + (SECTORS - 40) * 512ull, 0, 40 * 512);
		disk.len = (uint64_t)SECTORS * 512;
		if (round % 3 == 0) {
			mbr_entry(0, 0, 0x83, 64, 900);
			mbr_entry(0, 1, 0x0f, 1000, 3000);
			mbr_entry(1000, 0, 0x83, 10, 500);
			mbr_entry(1000, 1, 0x05, 1000, 1500);
			mbr_entry(2000, 0, 0x82, 5, 200);
		} else {
			gpt_disk();
		}
		flips = 1 + rand_r(&seed) % 8;
		for (unsigned f = 0; f < flips; f++) {
			static const uint64_t where[] = { 0, 1, 2, 1000, 2000,
							   SECTORS - 1 };
			uint64_t lba = where[rand_r(&seed) % 6];
			unsigned off = rand_r(&seed) % 512;

			if (lba == 0 && rand_r(&seed) % 2)
				off = 446 + rand_r(&seed) % 64;
			if (lba == 1 || lba == SECTORS - 1)
				off = rand_r(&seed) % 96;
			sector(lba)[off] = (uint8_t)rand_r(&seed);
		}
		if (round % 3 != 0 && rand_r(&seed) % 2) {
			if (get_le32(sector(1) + 12) >= 92 &&
			    get_le32(sector(1) + 12) <= 512)
				gpt_fix_crc(1);
		}
		disk.out_of_bounds = false;
		if (parse() == 0) {
			ok++;
			ck_assert_uint_le(t.nr, PART_MAX);
			for (unsigned i = 0; i < t.nr; i++)
				ck_assert_uint_le(t.p[i].start + t.p[i].sectors,
						  SECTORS);
		} else {
			bad++;
			ck_assert_ptr_null(strchr(err, '\n'));
			ck_assert_uint_gt(strlen(err), 0);
		}
		ck_assert(!disk.out_of_bounds);
	}
	ck_assert_uint_gt(ok, 100);
	ck_assert_uint_gt(bad, 100);
}
END_TEST

static Suite *partition_table_suite(void)
{
	Suite *su = suite_create("partition_table");
	TCase *tc = tcase_create("parse");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, no_table);
	tcase_add_test(tc, mbr_primaries);
	tcase_add_test(tc, mbr_corrupt);
	tcase_add_test(tc, mbr_logical);
	tcase_add_test(tc, mbr_logical_corrupt);
	tcase_add_test(tc, gpt_valid);
	tcase_add_test(tc, gpt_backup);
	tcase_add_test(tc, gpt_corrupt);
	tcase_add_test(tc, gpt_too_many_used);
	tcase_add_test(tc, io_error);
	tcase_add_test(tc, random_mutations);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(partition_table_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
