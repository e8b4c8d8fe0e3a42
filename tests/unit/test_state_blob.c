#include <check.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "vmm/state_blob.h"

#define HDR 32
#define SEC_HDR 48

struct demo_state {
	uint64_t regs[4];
	uint32_t flags;
	uint32_t pad;
};

static char err[256];

static uint32_t rd32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
	       (uint32_t)p[3] << 24;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

static void wr32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static void wr64(uint8_t *p, uint64_t v)
{
	wr32(p, (uint32_t)v);
	wr32(p + 4, (uint32_t)(v >> 32));
}

/* After editing the payload, make the checksum right again so the reader's
 * structural checks are what is being tested. */
static void fix_crc(uint8_t *blob, size_t len)
{
	wr32(blob + 24, (uint32_t)crc32(0, blob + HDR, (uInt)(len - HDR)));
}

/* A blob with: "vcpu0" (struct), "uart0" (13 bytes: padded), "empty" (0
 * bytes) and "xsave0" (variable size, version 3). */
static uint8_t *make_blob(size_t *len, uint8_t *xsave, size_t xsave_len)
{
	struct state_writer *w = state_writer__new();
	struct demo_state d = { { 1, 2, 3, 0xfedcba9876543210ull }, 7, 0 };
	uint8_t uart[13];
	uint8_t *blob;

	ck_assert_ptr_nonnull(w);
	for (size_t i = 0; i < sizeof(uart); i++)
		uart[i] = (uint8_t)(0xa0 + i);
	ck_assert_int_eq(state_writer__add(w, "vcpu0", 1, &d, sizeof(d)), 0);
	ck_assert_int_eq(state_writer__add(w, "uart0", 2, uart, sizeof(uart)),
			 0);
	ck_assert_int_eq(state_writer__add(w, "empty", 1, NULL, 0), 0);
	ck_assert_int_eq(state_writer__add(w, "xsave0", 3, xsave, xsave_len),
			 0);
	ck_assert_int_eq(state_writer__finish(w, &blob, len), 0);
	state_writer__free(w);
	return blob;
}

START_TEST(test_round_trip)
{
	uint8_t xsave[1000], uart[13], *blob;
	struct demo_state d;
	struct state_reader *r;
	const void *raw;
	uint32_t ver;
	size_t len, rlen;

	for (size_t i = 0; i < sizeof(xsave); i++)
		xsave[i] = (uint8_t)(i * 7);
	blob = make_blob(&len, xsave, sizeof(xsave));
	/* 4 sections: 40 + 13 (+3 pad) + 0 + 1000 bytes of data */
	ck_assert_uint_eq(len, HDR + 4 * SEC_HDR + 40 + 16 + 0 + 1000);
	ck_assert_msg(!state_reader__open(&r, blob, len, err, sizeof(err)),
		      "%s", err);

	ck_assert_int_eq(state_reader__get(r, "vcpu0", 1, &d, sizeof(d), err,
					   sizeof(err)), 0);
	ck_assert_uint_eq(d.regs[3], 0xfedcba9876543210ull);
	ck_assert_uint_eq(d.flags, 7);
	ck_assert_int_eq(state_reader__get(r, "uart0", 2, uart, sizeof(uart),
					   err, sizeof(err)), 0);
	ck_assert_uint_eq(uart[12], 0xac);
	ck_assert_int_eq(state_reader__get(r, "empty", 1, NULL, 0, err,
					   sizeof(err)), 0);
	ck_assert_int_eq(state_reader__get_raw(r, "xsave0", &ver, &raw, &rlen),
			 0);
	ck_assert_uint_eq(ver, 3);
	ck_assert_uint_eq(rlen, sizeof(xsave));
	ck_assert_mem_eq(raw, xsave, sizeof(xsave));
	ck_assert_ptr_eq(raw, blob + HDR + 4 * SEC_HDR + 40 + 16);

	ck_assert_int_eq(state_reader__get_raw(r, "nope", &ver, &raw, &rlen),
			 -1);
	ck_assert_int_eq(state_reader__get(r, "lapic0", 1, &d, sizeof(d), err,
					   sizeof(err)), -1);
	ck_assert_str_eq(err, "state section 'lapic0' is missing");
	ck_assert_int_eq(state_reader__get(r, "vcpu0", 2, &d, sizeof(d), err,
					   sizeof(err)), -1);
	ck_assert_str_eq(err, "state section 'vcpu0' has version 1, this build "
			 "reads version 2");
	ck_assert_int_eq(state_reader__get(r, "vcpu0", 1, &d, sizeof(d) - 8,
					   err, sizeof(err)), -1);
	ck_assert_str_eq(err, "state section 'vcpu0' is 40 bytes, this build "
			 "expects 32");
	state_reader__free(r);
	free(blob);
}
END_TEST

/* The on-disk layout is a contract with other hosts and builds. */
START_TEST(test_layout)
{
	uint8_t x[3] = { 9, 8, 7 }, *blob;
	size_t len;

	blob = make_blob(&len, x, sizeof(x));
	ck_assert_mem_eq(blob, "KRGSTATE", 8);
	ck_assert_uint_eq(rd32(blob + 8), 1);
	ck_assert_uint_eq(rd32(blob + 12), 4);
	ck_assert_uint_eq(rd64(blob + 16), len - HDR);
	ck_assert_uint_eq(rd32(blob + 24),
			  (uint32_t)crc32(0, blob + HDR, (uInt)(len - HDR)));
	ck_assert_uint_eq(rd32(blob + 28), 0);
	/* first section */
	ck_assert_str_eq((const char *)blob + HDR, "vcpu0");
	for (int i = 5; i < 32; i++)
		ck_assert_uint_eq(blob[HDR + i], 0);
	ck_assert_uint_eq(rd32(blob + HDR + 32), 1);
	ck_assert_uint_eq(rd32(blob + HDR + 36), 0);
	ck_assert_uint_eq(rd64(blob + HDR + 40), 40);
	ck_assert_uint_eq(rd64(blob + HDR + SEC_HDR), 1);	/* regs[0] */
	/* second section starts 8-aligned after 40 data bytes */
	ck_assert_str_eq((const char *)blob + HDR + SEC_HDR + 40, "uart0");
	ck_assert_uint_eq(rd64(blob + HDR + 2 * SEC_HDR + 40 - 8), 13);
	/* its 3 padding bytes are zero, then "empty" begins */
	for (int i = 13; i < 16; i++)
		ck_assert_uint_eq(blob[HDR + 2 * SEC_HDR + 40 + i], 0);
	ck_assert_str_eq((const char *)blob + HDR + 2 * SEC_HDR + 56, "empty");
	free(blob);
}
END_TEST

START_TEST(test_writer_rules)
{
	struct state_writer *w = state_writer__new();
	char name[40];
	uint8_t b = 1, *blob;
	size_t len;
	struct state_reader *r;

	memset(name, 'n', sizeof(name));
	name[31] = '\0';
	ck_assert_int_eq(state_writer__add(w, name, 1, &b, 1), 0);
	name[31] = 'n';
	name[32] = '\0';
	ck_assert_int_eq(state_writer__add(w, name, 1, &b, 1), -1);
	ck_assert_int_eq(state_writer__add(w, "", 1, &b, 1), -1);
	ck_assert_int_eq(state_writer__add(w, NULL, 1, &b, 1), -1);
	ck_assert_int_eq(state_writer__add(w, "a", 1, NULL, 4), -1);
	ck_assert_int_eq(state_writer__add(w, "a", 1, &b, 1), 0);
	ck_assert_int_eq(state_writer__add(w, "a", 2, &b, 1), -1);
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	ck_assert_int_eq(state_reader__get_raw(r, "a", NULL, NULL, NULL), 0);
	state_reader__free(r);
	free(blob);

	/* an empty blob is valid */
	w = state_writer__new();
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);
	ck_assert_uint_eq(len, HDR);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	ck_assert_int_eq(state_reader__get_raw(r, "a", NULL, NULL, NULL), -1);
	state_reader__free(r);
	free(blob);
}
END_TEST

static void open_fails(const uint8_t *blob, size_t len, const char *want)
{
	struct state_reader *r = (struct state_reader *)1;

	err[0] = '\0';
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 -1);
	ck_assert_ptr_null(r);
	ck_assert_msg(strstr(err, want), "error '%s' lacks '%s'", err, want);
}

START_TEST(test_corrupt_payload)
{
	uint8_t x[57], *blob;
	size_t len;

	memset(x, 0x5a, sizeof(x));
	blob = make_blob(&len, x, sizeof(x));
	for (size_t i = HDR; i < len; i++) {
		for (int bit = 0; bit < 8; bit += 3) {
			blob[i] ^= (uint8_t)(1u << bit);
			open_fails(blob, len, "state blob checksum mismatch "
				   "(corrupted file?)");
			ck_assert_str_eq(err, "state blob checksum mismatch "
					 "(corrupted file?)");
			blob[i] ^= (uint8_t)(1u << bit);
		}
	}
	/* the stored CRC itself */
	blob[24] ^= 1;
	open_fails(blob, len, "checksum mismatch");
	free(blob);
}
END_TEST

START_TEST(test_truncated_and_header)
{
	uint8_t x[20] = { 0 }, *blob, *big;
	size_t len;

	blob = make_blob(&len, x, sizeof(x));
	for (size_t n = 0; n < len; n++)
		open_fails(blob, n, "truncated");
	open_fails(NULL, 0, "truncated");

	big = calloc(1, len + 5);
	memcpy(big, blob, len);
	open_fails(big, len + 5, "5 bytes of trailing data");
	free(big);

	blob[0] = 'X';
	open_fails(blob, len, "not a krg-vmm state blob (bad magic)");
	blob[0] = 'K';
	wr32(blob + 8, 2);
	open_fails(blob, len, "state blob has format version 2, this build "
		   "reads version 1");
	wr32(blob + 8, 1);
	wr32(blob + 28, 1);
	open_fails(blob, len, "non-zero reserved field");
	wr32(blob + 28, 0);
	/* a section count the payload cannot hold */
	wr32(blob + 12, 0xffffffffu);
	open_fails(blob, len, "announces 4294967295 sections");
	/* one section fewer than present: leftover bytes */
	wr32(blob + 12, 3);
	open_fails(blob, len, "bytes after its last section");
	/* one more than present, but still plausible for the size */
	wr32(blob + 12, 5);
	open_fails(blob, len, "truncated inside the header of section 4");
	/* every edit undone: the blob is valid again */
	wr32(blob + 12, 4);
	struct state_reader *r;

	ck_assert_msg(!state_reader__open(&r, blob, len, err, sizeof(err)),
		      "%s", err);
	state_reader__free(r);
	free(blob);
}
END_TEST

START_TEST(test_hostile_sections)
{
	static const uint64_t lens[] = {
		UINT64_MAX, UINT64_MAX - 7, UINT64_MAX - 47, 1ull << 63,
		(uint64_t)SIZE_MAX - 40, 209, 1000,
	};
	uint8_t x[8] = { 0 }, *blob;
	size_t len;

	blob = make_blob(&len, x, sizeof(x));
	/* the first section ("vcpu0", 40 bytes) claims more than there is */
	for (size_t i = 0; i < sizeof(lens) / sizeof(lens[0]); i++) {
		wr64(blob + HDR + 40, lens[i]);
		fix_crc(blob, len);
		open_fails(blob, len, "state section 'vcpu0' claims");
	}
	/* the last section ("xsave0", 8 bytes) claims its padding too */
	size_t last = len - SEC_HDR - 8;

	ck_assert_str_eq((const char *)blob + last, "xsave0");
	wr64(blob + HDR + 40, 40);
	wr64(blob + last + 40, 9);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 'xsave0' claims 9 bytes");
	wr64(blob + last + 40, 8);

	/* a name without a terminating NUL */
	memset(blob + last, 'a', 32);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 3 has a name that is not "
		   "NUL-terminated");
	/* garbage after the NUL, an empty name, a control character */
	memset(blob + last, 0, 32);
	memcpy(blob + last, "xsave0\0z", 8);
	fix_crc(blob, len);
	open_fails(blob, len, "badly padded name");
	memset(blob + last, 0, 32);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 3 has an empty name");
	memcpy(blob + last, "x\033[2J", 5);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 3 has an invalid name");
	/* two sections called the same */
	memset(blob + last, 0, 32);
	memcpy(blob + last, "uart0", 5);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 'uart0' appears twice");
	memset(blob + last, 0, 32);
	memcpy(blob + last, "xsave0", 6);
	/* reserved field, padding bytes */
	wr32(blob + last + 36, 1);
	fix_crc(blob, len);
	open_fails(blob, len, "state section 'xsave0' has a non-zero reserved");
	wr32(blob + last + 36, 0);
	blob[HDR + 2 * SEC_HDR + 40 + 14] = 1;	/* uart0's padding */
	fix_crc(blob, len);
	open_fails(blob, len, "state section 'uart0' has non-zero padding");
	blob[HDR + 2 * SEC_HDR + 40 + 14] = 0;
	fix_crc(blob, len);

	struct state_reader *r;

	ck_assert_msg(!state_reader__open(&r, blob, len, err, sizeof(err)),
		      "restored blob rejected: %s", err);
	state_reader__free(r);
	free(blob);
}
END_TEST

START_TEST(test_many_sections)
{
	struct state_writer *w = state_writer__new();
	struct state_reader *r;
	char name[32];
	uint32_t v, got;
	uint8_t *blob;
	size_t len;

	for (v = 0; v < 2000; v++) {
		snprintf(name, sizeof(name), "dev%u", v);
		ck_assert_int_eq(state_writer__add(w, name, v, &v, sizeof(v)),
				 0);
	}
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	for (v = 0; v < 2000; v += 37) {
		snprintf(name, sizeof(name), "dev%u", v);
		ck_assert_int_eq(state_reader__get(r, name, v, &got,
						   sizeof(got), err,
						   sizeof(err)), 0);
		ck_assert_uint_eq(got, v);
	}
	state_reader__free(r);
	free(blob);
}
END_TEST

static int count_entries(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			n++;
	closedir(d);
	return n;
}

START_TEST(test_files)
{
	char dir[] = "/tmp/krg-test-blob-XXXXXX", path[128], bad[160];
	uint8_t x[100], *blob, *back;
	size_t len, blen;
	struct stat st;

	memset(x, 3, sizeof(x));
	blob = make_blob(&len, x, sizeof(x));
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.state", dir);
	ck_assert_msg(!state_blob__write_file(path, blob, len, err,
					      sizeof(err)), "%s", err);
	ck_assert_int_eq(count_entries(dir), 1);	/* no temp file left */
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 0777, 0600);
	ck_assert_int_eq(state_blob__read_file(path, &back, &blen, len, err,
					       sizeof(err)), 0);
	ck_assert_uint_eq(blen, len);
	ck_assert_mem_eq(back, blob, len);
	free(back);

	/* overwriting replaces the file */
	ck_assert_int_eq(state_blob__write_file(path, "abc", 3, err,
						sizeof(err)), 0);
	ck_assert_int_eq(state_blob__read_file(path, &back, &blen, 3, err,
					       sizeof(err)), 0);
	ck_assert_uint_eq(blen, 3);
	ck_assert_mem_eq(back, "abc", 3);
	free(back);

	ck_assert_int_eq(state_blob__read_file(path, &back, &blen, 2, err,
					       sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "is 3 bytes, more than the limit "
				     "of 2"));
	ck_assert_ptr_null(back);
	ck_assert_int_eq(state_blob__read_file(dir, &back, &blen, 100, err,
					       sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a regular file"));
	snprintf(bad, sizeof(bad), "%s/missing", dir);
	ck_assert_int_eq(state_blob__read_file(bad, &back, &blen, 100, err,
					       sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "No such file"));
	snprintf(bad, sizeof(bad), "%s/no/such/dir/x.state", dir);
	ck_assert_int_eq(state_blob__write_file(bad, blob, len, err,
						sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "x.state"));
	ck_assert_int_eq(state_blob__write_file("", blob, len, err,
						sizeof(err)), -1);
	ck_assert_int_eq(count_entries(dir), 1);

	unlink(path);
	rmdir(dir);
	free(blob);
}
END_TEST

static Suite *blob_suite(void)
{
	Suite *s = suite_create("state_blob");
	TCase *tc = tcase_create("blob");

	tcase_add_test(tc, test_round_trip);
	tcase_add_test(tc, test_layout);
	tcase_add_test(tc, test_writer_rules);
	tcase_add_test(tc, test_corrupt_payload);
	tcase_add_test(tc, test_truncated_and_header);
	tcase_add_test(tc, test_hostile_sections);
	tcase_add_test(tc, test_many_sections);
	tcase_add_test(tc, test_files);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(blob_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
