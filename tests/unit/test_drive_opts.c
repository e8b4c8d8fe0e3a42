/* -drive option parsing (storage/drive_opts.h): every key and value, QEMU's
 * ",," escape, the cache= mode table, and bad input of every kind giving one
 * line of error, never a crash. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "storage/drive_opts.h"

static struct drive_opts o;
static char err[512];

static int parse(const char *text)
{
	memset(&o, 0xa5, sizeof(o));    /* the parser must reset everything */
	err[0] = '\0';
	return drive_opts__parse(text, &o, err, sizeof(err));
}

/* Fails with msg in err, one line, starting "-drive:". */
static void expect_error(const char *text, const char *msg)
{
	ck_assert_msg(parse(text) == -1, "'%s' was accepted", text);
	ck_assert_msg(strstr(err, msg), "'%s': error '%s' lacks '%s'", text,
		      err, msg);
	ck_assert_msg(!strncmp(err, "-drive: ", 8), "'%s'", err);
	ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(minimal_defaults)
{
	ck_assert_int_eq(parse("file=disk.img"), 0);
	ck_assert_str_eq(o.file, "disk.img");
	ck_assert_int_eq(o.format, DRIVE_FORMAT_PROBE);
	ck_assert(!o.read_only);
	ck_assert_int_eq(o.cache, DRIVE_CACHE_WRITEBACK);
	ck_assert(!o.discard_unmap);
	ck_assert_int_eq(o.aio, DRIVE_AIO_AUTO);
	ck_assert_str_eq(o.serial, "");
	ck_assert_str_eq(o.id, "");
	ck_assert_uint_eq(o.start_timeout_ms, 0);
}
END_TEST

START_TEST(every_option)
{
	ck_assert_int_eq(parse("id=disk0,file=/var/lib/a.qcow2,if=virtio,"
			       "format=qcow2,media=disk,readonly=on,"
			       "cache=none,discard=unmap,aio=threads,"
			       "serial=ABC-123 x"), 0);
	ck_assert_str_eq(o.file, "/var/lib/a.qcow2");
	ck_assert_int_eq(o.format, DRIVE_FORMAT_QCOW2);
	ck_assert(o.read_only);
	ck_assert_int_eq(o.cache, DRIVE_CACHE_NONE);
	ck_assert(o.discard_unmap);
	ck_assert_int_eq(o.aio, DRIVE_AIO_THREADS);
	ck_assert_str_eq(o.serial, "ABC-123 x");
	ck_assert_str_eq(o.id, "disk0");
}
END_TEST

START_TEST(formats)
{
	static const struct {
		const char *name;
		enum drive_format f;
	} t[] = {
		{ "raw", DRIVE_FORMAT_RAW },   { "qcow2", DRIVE_FORMAT_QCOW2 },
		{ "vmdk", DRIVE_FORMAT_VMDK }, { "vdi", DRIVE_FORMAT_VDI },
		{ "vpc", DRIVE_FORMAT_VPC },   { "vhdx", DRIVE_FORMAT_VHDX },
		{ "qed", DRIVE_FORMAT_QED },
	};
	char text[64];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "file=x,format=%s", t[i].name);
		ck_assert_int_eq(parse(text), 0);
		ck_assert_int_eq(o.format, t[i].f);
		ck_assert_str_eq(drive_opts__format_name(t[i].f), t[i].name);
	}
	ck_assert_str_eq(drive_opts__format_name(DRIVE_FORMAT_PROBE), "probe");
	expect_error("file=x,format=qcow3", "invalid format='qcow3'");
	expect_error("file=x,format=", "invalid format=''");
	expect_error("file=x,format=QCOW2", "invalid format");
}
END_TEST

START_TEST(comma_escape)
{
	ck_assert_int_eq(parse("file=a,,b.img,format=raw"), 0);
	ck_assert_str_eq(o.file, "a,b.img");
	ck_assert_int_eq(o.format, DRIVE_FORMAT_RAW);
	ck_assert_int_eq(parse("file=a,,,,b"), 0);
	ck_assert_str_eq(o.file, "a,,b");
	/* ",,," is an escaped comma, then a separator. */
	ck_assert_int_eq(parse("file=a,,,readonly=on"), 0);
	ck_assert_str_eq(o.file, "a,");
	ck_assert(o.read_only);
	/* QEMU's classic trap: the escape swallows the next option. */
	ck_assert_int_eq(parse("file=x,,format=qcow2"), 0);
	ck_assert_str_eq(o.file, "x,format=qcow2");
	ck_assert_int_eq(o.format, DRIVE_FORMAT_PROBE);
	ck_assert_int_eq(parse("serial=a,,b,file=f"), 0);
	ck_assert_str_eq(o.serial, "a,b");
	/* '=' inside a value is data. */
	ck_assert_int_eq(parse("file=a=b"), 0);
	ck_assert_str_eq(o.file, "a=b");
	/* Empty items are skipped. */
	ck_assert_int_eq(parse(",file=y,"), 0);
	ck_assert_str_eq(o.file, "y");
}
END_TEST

START_TEST(booleans)
{
	static const char *const on[] = { "on", "yes", "true" };
	static const char *const off[] = { "off", "no", "false" };
	char text[64];

	for (int i = 0; i < 3; i++) {
		snprintf(text, sizeof(text), "file=x,readonly=%s", on[i]);
		ck_assert_int_eq(parse(text), 0);
		ck_assert(o.read_only);
		snprintf(text, sizeof(text), "file=x,read-only=%s", off[i]);
		ck_assert_int_eq(parse(text), 0);
		ck_assert(!o.read_only);
	}
	ck_assert_int_eq(parse("readonly,file=x"), 0);
	ck_assert(o.read_only);
	expect_error("file=x,readonly=maybe", "invalid readonly='maybe'");
	expect_error("file=x,readonly=ON", "invalid readonly");
	expect_error("file=x,readonly=on,read-only=off", "given twice");
}
END_TEST

START_TEST(cache_table)
{
	static const struct {
		const char *mode;
		enum drive_cache c;
		bool direct, wce, no_flush;
	} t[] = {
		{ "writeback", DRIVE_CACHE_WRITEBACK, false, true, false },
		{ "none", DRIVE_CACHE_NONE, true, true, false },
		{ "writethrough", DRIVE_CACHE_WRITETHROUGH, false, false,
		  false },
		{ "directsync", DRIVE_CACHE_DIRECTSYNC, true, false, false },
		{ "unsafe", DRIVE_CACHE_UNSAFE, false, true, true },
	};
	char text[64];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		snprintf(text, sizeof(text), "file=x,cache=%s", t[i].mode);
		ck_assert_int_eq(parse(text), 0);
		ck_assert_int_eq(o.cache, t[i].c);
		ck_assert_msg(drive_opts__direct(&o) == t[i].direct, "%s",
			      t[i].mode);
		ck_assert_msg(drive_opts__write_cache(&o) == t[i].wce, "%s",
			      t[i].mode);
		ck_assert_msg(drive_opts__no_flush(&o) == t[i].no_flush, "%s",
			      t[i].mode);
		ck_assert_str_eq(drive_opts__cache_name(t[i].c), t[i].mode);
	}
	expect_error("file=x,cache=directio", "invalid cache='directio'");
	expect_error("file=x,cache", "cache needs a value");
}
END_TEST

START_TEST(discard_and_aio)
{
	ck_assert_int_eq(parse("file=x,discard=on"), 0);
	ck_assert(o.discard_unmap);
	ck_assert_int_eq(parse("file=x,discard=ignore"), 0);
	ck_assert(!o.discard_unmap);
	ck_assert_int_eq(parse("file=x,discard=off"), 0);
	ck_assert(!o.discard_unmap);
	expect_error("file=x,discard=trim", "invalid discard='trim'");
	ck_assert_int_eq(parse("file=x,aio=io_uring"), 0);
	ck_assert_int_eq(o.aio, DRIVE_AIO_IO_URING);
	expect_error("file=x,aio=native", "aio=native (Linux AIO)");
	expect_error("file=x,aio=posix", "invalid aio='posix'");
}
END_TEST

START_TEST(interface_and_media)
{
	ck_assert_int_eq(parse("file=x,if=virtio"), 0);
	expect_error("file=x,if=none", "if=none is not supported");
	expect_error("file=x,if=ide", "if=ide is not supported");
	expect_error("file=x,if=scsi", "virtio-blk");
	expect_error("file=x,if=nvme", "invalid if='nvme'");
	expect_error("file=x,media=cdrom", "media=cdrom is not supported");
	expect_error("file=x,media=tape", "invalid media='tape'");
}
END_TEST

START_TEST(serial_and_id)
{
	ck_assert_int_eq(parse("file=x,serial=12345678901234567890"), 0);
	ck_assert_str_eq(o.serial, "12345678901234567890");
	expect_error("file=x,serial=123456789012345678901", "longer than 20");
	expect_error("file=x,serial=a\tb", "printable ASCII");
	expect_error("file=x,serial=\xc3\xa9", "printable ASCII");
	ck_assert_int_eq(parse("file=x,id=a-b.c_9"), 0);
	ck_assert_str_eq(o.id, "a-b.c_9");
	expect_error("file=x,id=9abc", "invalid id='9abc'");
	expect_error("file=x,id=", "invalid id=''");
	expect_error("file=x,id=a b", "invalid id");
	expect_error("file=x,id=a1234567890123456789012345678901234567890"
		     "12345678901234567890123", "longer than 63");
}
END_TEST

START_TEST(queues_and_serve)
{
	ck_assert_int_eq(parse("file=x"), 0);
	ck_assert_uint_eq(o.num_queues, 0);
	ck_assert(!o.serve_node0);
	ck_assert_int_eq(parse("file=x,queues=1,serve=node0"), 0);
	ck_assert_uint_eq(o.num_queues, 1);
	ck_assert(o.serve_node0);
	ck_assert_int_eq(parse("file=x,num-queues=16,serve=auto"), 0);
	ck_assert_uint_eq(o.num_queues, 16);
	ck_assert(!o.serve_node0);
	expect_error("file=x,queues=0", "invalid queues='0' (want 1 to 16)");
	expect_error("file=x,queues=17", "invalid queues='17'");
	expect_error("file=x,queues=99999999999999999999", "invalid queues");
	expect_error("file=x,queues=-1", "invalid queues='-1'");
	expect_error("file=x,queues=+2", "invalid queues");
	expect_error("file=x,queues= 2", "invalid queues");
	expect_error("file=x,queues=2x", "invalid queues");
	expect_error("file=x,queues=", "invalid queues=''");
	expect_error("file=x,queues=2,num-queues=2", "given twice");
	expect_error("file=x,serve=node1", "invalid serve='node1'");
	expect_error("file=x,serve", "serve needs a value");
}
END_TEST

START_TEST(bad_keys_and_structure)
{
	expect_error("format=raw", "file= is required");
	expect_error("", "file= is required");
	expect_error("file=", "file= is empty");
	expect_error("file=x,bogus=1", "unknown option 'bogus'");
	expect_error("file=x,=1", "unknown option ''");
	expect_error("file=x,werror=stop", "unknown option 'werror'");
	expect_error("disk.img", "'disk.img' is not key=value (did you mean "
		     "file=disk.img?)");
	expect_error("file=a,file=b", "file= given twice");
	expect_error("file=x,format=raw,format=qcow2", "format= given twice");
	expect_error("file=x,FILE=y", "unknown option 'FILE'");
	ck_assert_int_eq(drive_opts__parse(NULL, &o, err, sizeof(err)), -1);
	/* No error buffer: still refused, no crash. */
	ck_assert_int_eq(drive_opts__parse("bogus", &o, NULL, 0), -1);
	ck_assert_int_eq(drive_opts__parse("bogus", &o, err, 1), -1);
	ck_assert_str_eq(err, "");
}
END_TEST

START_TEST(long_values)
{
	size_t n = DRIVE_FILE_MAX + 100;
	char *text = malloc(n + 16);

	strcpy(text, "file=");
	memset(text + 5, 'a', DRIVE_FILE_MAX - 1);
	text[5 + DRIVE_FILE_MAX - 1] = '\0';
	ck_assert_int_eq(parse(text), 0);
	ck_assert_uint_eq(strlen(o.file), DRIVE_FILE_MAX - 1);
	strcat(text, "b");
	expect_error(text, "file= is longer than 4095 bytes");
	memset(text + 5, 'a', n);
	text[5 + n] = '\0';
	expect_error(text, "option longer than");
	free(text);
}
END_TEST

START_TEST(uris)
{
	ck_assert(drive_opts__is_uri("nbd://host:10809/disk"));
	ck_assert(drive_opts__is_uri("nbd+unix:///disk?socket=/run/s"));
	ck_assert(drive_opts__is_uri("NBDS://h/e"));
	ck_assert(!drive_opts__is_uri("nbd:host:10809"));
	ck_assert(!drive_opts__is_uri("/images/nbd://x"));
	ck_assert(!drive_opts__is_uri("disk.img"));
	ck_assert_int_eq(parse("file=nbd+unix:///?socket=/tmp/s"), 0);
	ck_assert_str_eq(o.file, "nbd+unix:///?socket=/tmp/s");
	ck_assert_int_eq(parse("file=nbd://h/e,format=raw"), 0);
	expect_error("file=nbd://h/e,format=qcow2",
		     "format=qcow2 cannot be used with an NBD URI");
}
END_TEST

/* Random bytes and random mixes of real keys: never a crash, and the
 * outcome is always consistent (a file, or an error text). */
START_TEST(random_input)
{
	static const char *const parts[] = {
		"file=", "format=", "cache=", "readonly", "=", ",", ",,", "x",
		"qcow2", "on", "if=", "virtio", "serial=", "id=", "discard=",
		"aio=", "nbd://", "\xff", " ",
	};
	char text[256];

	srand(4242);
	for (int round = 0; round < 20000; round++) {
		size_t n = 0;
		int r;

		while (n < sizeof(text) - 16 && rand() % 12) {
			if (round % 2) {
				text[n++] = (char)(rand() % 255 + 1);
			} else {
				const char *p = parts[rand() % (sizeof(parts) /
							sizeof(parts[0]))];

				memcpy(text + n, p, strlen(p));
				n += strlen(p);
			}
		}
		text[n] = '\0';
		r = parse(text);
		if (r == 0) {
			ck_assert(o.file[0]);
		} else {
			ck_assert_int_eq(r, -1);
			ck_assert(err[0]);
			ck_assert_ptr_null(strchr(err, '\n'));
		}
	}
}
END_TEST

static Suite *drive_opts_suite(void)
{
	Suite *su = suite_create("drive_opts");
	TCase *tc = tcase_create("parse");

	tcase_add_test(tc, minimal_defaults);
	tcase_add_test(tc, every_option);
	tcase_add_test(tc, formats);
	tcase_add_test(tc, comma_escape);
	tcase_add_test(tc, booleans);
	tcase_add_test(tc, cache_table);
	tcase_add_test(tc, discard_and_aio);
	tcase_add_test(tc, interface_and_media);
	tcase_add_test(tc, serial_and_id);
	tcase_add_test(tc, queues_and_serve);
	tcase_add_test(tc, bad_keys_and_structure);
	tcase_add_test(tc, long_values);
	tcase_add_test(tc, uris);
	tcase_add_test(tc, random_input);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(drive_opts_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
