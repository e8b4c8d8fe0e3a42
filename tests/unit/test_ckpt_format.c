/* Snapshot formats (vmm/ckpt_format.h): the manifest round trip and every
 * kind of damage to it, page-file headers and indexes, the CRC. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/ckpt_format.h"

static char err[512];

static void sample(struct ckpt_manifest *m)
{
	memset(m, 0, sizeof(*m));
	m->version = CKPT_FORMAT_VERSION;
	m->created_ns = 1234567890123456789ll;
	snprintf(m->name, sizeof(m->name), "guest, \"quoted\"");
	m->ram_mib = 512;
	m->nr_vcpus = 4;
	snprintf(m->cpu_model, sizeof(m->cpu_model), "host,-cx16");
	snprintf(m->pvm_profile, sizeof(m->pvm_profile), "on");
	m->numa_flat = true;
	m->nr_nodes = 2;
	m->vcpu_node[0] = 0;
	m->vcpu_node[1] = 0;
	m->vcpu_node[2] = 1;
	m->vcpu_node[3] = 1;
	m->nr_files = 5;
	m->files[0] = (struct ckpt_file){ .kind = CKPT_FILE_DEVICES,
					  .size = 4224, .crc = ~0ull };
	m->files[1] = (struct ckpt_file){ .kind = CKPT_FILE_CPUS, .node = 0,
					  .size = 100, .crc = 1 };
	m->files[2] = (struct ckpt_file){ .kind = CKPT_FILE_CPUS, .node = 1,
					  .size = 100, .crc = 2 };
	m->files[3] = (struct ckpt_file){ .kind = CKPT_FILE_PAGES, .node = 0,
					  .size = 8192 + 4096 * 10, .crc = 3,
					  .pages = 10 };
	m->files[4] = (struct ckpt_file){ .kind = CKPT_FILE_PAGES, .node = 1,
					  .size = 8192 + 4096 * 5,
					  .crc = 0x8000000000000000ull,
					  .pages = 5 };
	for (int i = 0; i < 5; i++)
		ckpt__file_name(m->files[i].name, m->files[i].kind,
				m->files[i].node);
	m->pages = 15;
	m->nr_drives = 1;
	snprintf(m->drives[0].file, sizeof(m->drives[0].file),
		 "/var/lib/disk,one.qcow2");
	snprintf(m->drives[0].format, sizeof(m->drives[0].format), "qcow2");
	snprintf(m->drives[0].cache, sizeof(m->drives[0].cache), "none");
	snprintf(m->drives[0].serial, sizeof(m->drives[0].serial), "krg0");
	m->drives[0].size = 1ull << 40;
	m->drives[0].mtime_ns = -5;
	m->drives[0].discard_unmap = true;
}

/* Encodes m, lets edit() change the text, decodes; returns decode's rc. */
static int roundtrip(const struct ckpt_manifest *m, struct ckpt_manifest *out,
		     void (*edit)(char **text, size_t *len))
{
	char *text;
	size_t len;
	int rc;

	ck_assert_int_eq(ckpt_manifest__encode(m, &text, &len, err,
					       sizeof(err)), 0);
	if (edit)
		edit(&text, &len);
	err[0] = '\0';
	rc = ckpt_manifest__decode(out, text, len, err, sizeof(err));
	free(text);
	return rc;
}

START_TEST(manifest_roundtrip)
{
	static struct ckpt_manifest m, out;

	sample(&m);
	ck_assert_int_eq(roundtrip(&m, &out, NULL), 0);
	ck_assert_int_eq(out.created_ns, m.created_ns);
	ck_assert_str_eq(out.name, m.name);
	ck_assert_uint_eq(out.ram_mib, 512);
	ck_assert_uint_eq(out.nr_vcpus, 4);
	ck_assert_str_eq(out.cpu_model, "host,-cx16");
	ck_assert_str_eq(out.pvm_profile, "on");
	ck_assert(out.numa_flat);
	ck_assert_uint_eq(out.nr_nodes, 2);
	ck_assert_uint_eq(out.vcpu_node[3], 1);
	ck_assert_uint_eq(out.nr_files, 5);
	ck_assert_uint_eq(out.pages, 15);
	for (int i = 0; i < 5; i++) {
		ck_assert_str_eq(out.files[i].name, m.files[i].name);
		ck_assert_uint_eq(out.files[i].crc, m.files[i].crc);
		ck_assert_uint_eq(out.files[i].size, m.files[i].size);
		ck_assert_uint_eq(out.files[i].pages, m.files[i].pages);
	}
	ck_assert_uint_eq(out.nr_drives, 1);
	ck_assert_str_eq(out.drives[0].file, "/var/lib/disk,one.qcow2");
	ck_assert_uint_eq(out.drives[0].size, 1ull << 40);
	ck_assert_int_eq(out.drives[0].mtime_ns, -5);
	ck_assert(out.drives[0].discard_unmap && !out.drives[0].read_only);
	ck_assert_ptr_eq(ckpt_manifest__file(&out, CKPT_FILE_PAGES, 1),
			 &out.files[4]);
	ck_assert_ptr_null(ckpt_manifest__file(&out, CKPT_FILE_PAGES, 2));
}
END_TEST

static void flip_body(char **t, size_t *len)
{
	(*t)[*len / 2] ^= 0x20;
}

static void truncate_half(char **t, size_t *len)
{
	*len /= 2;
}

static void version_2(char **t, size_t *len)
{
	(*t)[strlen(CKPT_MANIFEST_MAGIC) + 1] = '2';
}

static void no_magic(char **t, size_t *len)
{
	(*t)[0] = 'X';
}

static void bad_crc_digit(char **t, size_t *len)
{
	char *nl = strchr(*t, '\n');

	nl[-1] = 'g';
}

static void empty(char **t, size_t *len)
{
	*len = 0;
}

START_TEST(manifest_damage)
{
	static struct ckpt_manifest m, out;

	sample(&m);
	ck_assert_int_eq(roundtrip(&m, &out, flip_body), -1);
	ck_assert_ptr_nonnull(strstr(err, "checksum"));
	ck_assert_int_eq(roundtrip(&m, &out, truncate_half), -1);
	ck_assert_ptr_nonnull(strstr(err, "checksum"));
	ck_assert_int_eq(roundtrip(&m, &out, version_2), -1);
	ck_assert_ptr_nonnull(strstr(err, "version 2"));
	ck_assert_int_eq(roundtrip(&m, &out, no_magic), -1);
	ck_assert_ptr_nonnull(strstr(err, "not a krg-vmm snapshot"));
	ck_assert_int_eq(roundtrip(&m, &out, bad_crc_digit), -1);
	ck_assert_int_eq(roundtrip(&m, &out, empty), -1);
}
END_TEST

/* A body with a valid header line: what the CRC cannot catch (a
 * manifest written by a buggy or hostile program). */
static int decode_body(const char *body, struct ckpt_manifest *out)
{
	char *text;
	size_t blen = strlen(body), len;
	int rc;

	text = malloc(blen + 64);
	len = (size_t)sprintf(text, "%s %u %016llx\n", CKPT_MANIFEST_MAGIC,
			      CKPT_FORMAT_VERSION,
			      (unsigned long long)ckpt__crc64(0, body, blen));
	memcpy(text + len, body, blen);
	err[0] = '\0';
	rc = ckpt_manifest__decode(out, text, len + blen, err, sizeof(err));
	free(text);
	return rc;
}

#define VM "\"vm\":{\"name\":\"\",\"ram-mib\":64,\"vcpus\":1,\"cpu\":\"host\"," \
	   "\"pvm-profile\":\"auto\",\"numa-flat\":false}"
#define F_DEV "{\"name\":\"devices.state\",\"kind\":\"devices\",\"node\":0," \
	      "\"size\":1,\"crc64\":\"0000000000000001\",\"pages\":0}"
#define F_CPU "{\"name\":\"cpus-0.state\",\"kind\":\"cpus\",\"node\":0," \
	      "\"size\":1,\"crc64\":\"0000000000000001\",\"pages\":0}"
#define F_PG "{\"name\":\"pages-0.bin\",\"kind\":\"pages\",\"node\":0," \
	     "\"size\":4096,\"crc64\":\"0000000000000001\",\"pages\":0}"

START_TEST(manifest_semantics)
{
	static struct ckpt_manifest out;

	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG "],"
				     "\"drives\":[]}", &out), 0);
	/* A path in a file name. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU ",{\"name\":"
				     "\"../../etc/x\",\"kind\":\"pages\",\"node\":0,"
				     "\"size\":1,\"crc64\":\"0000000000000001\","
				     "\"pages\":0}],\"drives\":[]}", &out), -1);
	ck_assert_ptr_nonnull(strstr(err, "should be named"));
	/* A page file missing. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "],"
				     "\"drives\":[]}", &out), -1);
	ck_assert_ptr_nonnull(strstr(err, "no page file"));
	/* A vCPU on a node that does not exist. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[3],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG "],"
				     "\"drives\":[]}", &out), -1);
	/* Page counts that do not add up. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":7,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG "],"
				     "\"drives\":[]}", &out), -1);
	/* A file listed twice. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG ","
				     F_PG "],\"drives\":[]}", &out), -1);
	/* A relative disk path, a format with a shell character. */
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG "],"
				     "\"drives\":[{\"file\":\"d.raw\",\"format\":"
				     "\"raw\",\"cache\":\"none\",\"serial\":\"\","
				     "\"id\":\"\",\"read-only\":false,"
				     "\"discard-unmap\":false,\"size\":1,"
				     "\"mtime-ns\":1}]}", &out), -1);
	ck_assert_int_eq(decode_body("{\"format\":1,\"created-ns\":0," VM ","
				     "\"nodes\":1,\"vcpu-node\":[0],\"pages\":0,"
				     "\"files\":[" F_DEV "," F_CPU "," F_PG "],"
				     "\"drives\":[{\"file\":\"/d.raw\",\"format\":"
				     "\"raw;x\",\"cache\":\"none\",\"serial\":\"\","
				     "\"id\":\"\",\"read-only\":false,"
				     "\"discard-unmap\":false,\"size\":1,"
				     "\"mtime-ns\":1}]}", &out), -1);
	/* Not JSON, the wrong types, a duplicate key. */
	ck_assert_int_eq(decode_body("{\"format\":1,", &out), -1);
	ck_assert_int_eq(decode_body("[1,2,3]", &out), -1);
	ck_assert_int_eq(decode_body("{\"format\":\"1\"}", &out), -1);
	ck_assert_int_eq(decode_body("{\"format\":1,\"format\":1}", &out), -1);
	ck_assert_int_eq(decode_body("{\"format\":3}", &out), -1);
}
END_TEST

/* ---- page files ---- */

static const struct ckpt_ram ram = { 2, { { 0, 0xC0000000ull },
					  { 0x100000000ull, 1ull << 30 } } };

static uint8_t *make_file(const struct ckpt_run *runs, uint32_t nr,
			  uint64_t pages, struct ckpt_pages_header *h,
			  size_t *size)
{
	uint8_t *f;

	*h = (struct ckpt_pages_header){ .version = CKPT_PAGES_VERSION,
					 .page_size = CKPT_PAGE_SIZE, .node = 3,
					 .nr_runs = nr, .nr_pages = pages,
					 .data_off = ckpt_pages__data_off(nr) };
	*size = h->data_off + pages * CKPT_PAGE_SIZE;
	f = calloc(1, *size);
	ckpt_pages__encode_index(f + CKPT_PAGES_HEADER_SIZE, runs, nr);
	h->index_crc = (uint32_t)ckpt__crc64(0, f + CKPT_PAGES_HEADER_SIZE,
					     h->data_off -
						     CKPT_PAGES_HEADER_SIZE);
	ckpt_pages__encode_header(f, h);
	return f;
}

static int check(const uint8_t *f, size_t size, struct ckpt_run *out)
{
	struct ckpt_pages_header h;

	err[0] = '\0';
	if (ckpt_pages__decode_header(&h, f, size, err, sizeof(err)) < 0)
		return -1;
	return ckpt_pages__decode_index(&h, f + CKPT_PAGES_HEADER_SIZE, &ram,
					out, err, sizeof(err));
}

START_TEST(pages_roundtrip)
{
	struct ckpt_run runs[3] = { { 0, 2 }, { 0x10000, 1 },
				    { 0x100000000ull, 4 } }, out[3];
	struct ckpt_pages_header h;
	size_t size;
	uint8_t *f = make_file(runs, 3, 7, &h, &size);

	ck_assert_uint_eq(h.data_off, 8192);
	ck_assert_uint_eq(ckpt_pages__data_off(256), 8192);
	ck_assert_uint_eq(ckpt_pages__data_off(257), 12288);
	ck_assert_uint_eq(ckpt_pages__data_off(0), 4096);
	ck_assert_int_eq(check(f, size, out), 0);
	ck_assert_uint_eq(out[2].gpa, 0x100000000ull);
	ck_assert_uint_eq(out[2].pages, 4);
	/* Truncated by a page, padded by one, a header bit flipped. */
	ck_assert_int_eq(check(f, size - 4096, out), -1);
	ck_assert_ptr_nonnull(strstr(err, "truncated"));
	ck_assert_int_eq(check(f, size + 4096, out), -1);
	ck_assert_int_eq(check(f, 100, out), -1);
	f[20] ^= 1;
	ck_assert_int_eq(check(f, size, out), -1);
	ck_assert_ptr_nonnull(strstr(err, "checksum"));
	f[20] ^= 1;
	/* The index damaged. */
	f[4096 + 3] ^= 0x80;
	ck_assert_int_eq(check(f, size, out), -1);
	ck_assert_ptr_nonnull(strstr(err, "index"));
	free(f);
}
END_TEST

START_TEST(pages_bad_runs)
{
	struct ckpt_pages_header h;
	struct ckpt_run out[4];
	size_t size;
	uint8_t *f;

	/* Overlapping runs. */
	f = make_file((struct ckpt_run[]){ { 0, 2 }, { 0x1000, 1 } }, 2, 3, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	/* Out of order. */
	f = make_file((struct ckpt_run[]){ { 0x5000, 1 }, { 0, 1 } }, 2, 2, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	/* In the PCI hole, past the end of RAM, unaligned, empty. */
	f = make_file((struct ckpt_run[]){ { 0xC0000000ull, 1 } }, 1, 1, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	f = make_file((struct ckpt_run[]){ { 0xBFFFF000ull, 2 } }, 1, 2, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	f = make_file((struct ckpt_run[]){ { 0x140000000ull, 1 } }, 1, 1, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	f = make_file((struct ckpt_run[]){ { 0x800, 1 } }, 1, 1, &h, &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	f = make_file((struct ckpt_run[]){ { 0, 0 }, { 0x1000, 1 } }, 2, 1, &h,
		      &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	/* Runs that hold more pages than the header (and the file) say. */
	f = make_file((struct ckpt_run[]){ { 0, 5 } }, 1, 2, &h, &size);
	ck_assert_int_eq(check(f, size, out), -1);
	free(f);
	/* A huge page count that would overflow size arithmetic. */
	f = make_file((struct ckpt_run[]){ { 0, 1 } }, 1, 1, &h, &size);
	h.nr_pages = UINT64_MAX / 2;
	ckpt_pages__encode_header(f, &h);
	ck_assert_int_eq(check(f, size, out), -1);
	h.nr_pages = 1;
	h.nr_runs = CKPT_PAGES_MAX_RUNS + 1;
	ckpt_pages__encode_header(f, &h);
	ck_assert_int_eq(check(f, size, out), -1);
	h.nr_runs = 1;
	h.version = 9;
	ckpt_pages__encode_header(f, &h);
	ck_assert_int_eq(check(f, size, out), -1);
	ck_assert_ptr_nonnull(strstr(err, "version 9"));
	free(f);
}
END_TEST

START_TEST(crc64_known)
{
	/* CRC-64/XZ of "123456789". */
	ck_assert_uint_eq(ckpt__crc64(0, "123456789", 9),
			  0x995dc9bbdf1939faull);
	ck_assert_uint_eq(ckpt__crc64(ckpt__crc64(0, "1234", 4), "56789", 5),
			  0x995dc9bbdf1939faull);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ckpt_format");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, manifest_roundtrip);
	tcase_add_test(tc, manifest_damage);
	tcase_add_test(tc, manifest_semantics);
	tcase_add_test(tc, pages_roundtrip);
	tcase_add_test(tc, pages_bad_runs);
	tcase_add_test(tc, crc64_known);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
