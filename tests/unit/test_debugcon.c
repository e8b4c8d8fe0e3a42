/* The debug console (port 0x402): readback, line assembly, what reaches
 * the terminal and the line callback. */
#include <check.h>
#include <fcntl.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/devices/debugcon.h"

static struct debugcon dc;
static int pipefd[2];
static char lines[8][DEBUGCON_LINE_MAX + 1];
static unsigned nr_lines;

static void on_line(void *ctx, const char *line)
{
	ck_assert_ptr_eq(ctx, &dc);
	ck_assert_uint_le(strlen(line), DEBUGCON_LINE_MAX);
	if (nr_lines < 8)
		strcpy(lines[nr_lines], line);
	nr_lines++;
}

static void setup(void)
{
	ck_assert_int_eq(pipe2(pipefd, O_NONBLOCK), 0);
	nr_lines = 0;
	debugcon__init(&dc, pipefd[1], on_line, &dc);
}

static void teardown(void)
{
	debugcon__destroy(&dc);
	close(pipefd[0]);
	close(pipefd[1]);
}

static void out(const char *s)
{
	for (; *s; s++) {
		uint8_t b = (uint8_t)*s;

		debugcon__io(&dc, 0, &b, 1, true);
	}
}

static size_t drain(char *buf, size_t cap)
{
	ssize_t n = read(pipefd[0], buf, cap - 1);

	buf[n > 0 ? n : 0] = '\0';
	return n > 0 ? (size_t)n : 0;
}

START_TEST(test_readback)
{
	uint8_t b[4] = { 0 };

	debugcon__io(&dc, 0, b, 1, false);
	ck_assert_uint_eq(b[0], DEBUGCON_READBACK);
	memset(b, 0x55, sizeof(b));
	debugcon__io(&dc, 0, b, 2, false);
	ck_assert_uint_eq(b[0], 0xE9);
	ck_assert_uint_eq(b[1], 0);
}
END_TEST

START_TEST(test_lines)
{
	char buf[1024];

	out("SeaBIOS (version 1.16)\r\n");
	out("Booting from ");
	ck_assert_uint_eq(nr_lines, 1);
	out("Hard Disk...\n");
	ck_assert_uint_eq(nr_lines, 2);
	ck_assert_str_eq(lines[0], "SeaBIOS (version 1.16)");
	ck_assert_str_eq(lines[1], "Booting from Hard Disk...");
	drain(buf, sizeof(buf));
	ck_assert_str_eq(buf, "SeaBIOS (version 1.16)\nBooting from Hard "
			      "Disk...\n");
	/* A wider write logs its bytes in order. */
	uint8_t w[4] = { 'a', 'b', 'c', '\n' };
	debugcon__io(&dc, 0, w, 4, true);
	ck_assert_str_eq(lines[2], "abc");
	/* Terminal escapes never get through. */
	out("\x1b[2Jx\x7f\xff\ty\n");
	ck_assert_str_eq(lines[3], ".[2Jx..\ty");
	drain(buf, sizeof(buf));
	ck_assert_ptr_null(strchr(buf, '\x1b'));
}
END_TEST

START_TEST(test_long_and_partial)
{
	char big[DEBUGCON_LINE_MAX * 2 + 10];

	memset(big, 'q', sizeof(big) - 1);
	big[sizeof(big) - 1] = '\0';
	out(big);
	ck_assert_uint_eq(nr_lines, 2);
	ck_assert_uint_eq(strlen(lines[0]), DEBUGCON_LINE_MAX);
	/* The rest is held until a newline or the flush at exit. */
	debugcon__flush(&dc);
	ck_assert_uint_eq(nr_lines, 3);
	ck_assert_uint_eq(strlen(lines[2]), 9);
	debugcon__flush(&dc);
	ck_assert_uint_eq(nr_lines, 3);
}
END_TEST

START_TEST(test_hidden)
{
	char buf[64];

	debugcon__destroy(&dc);
	debugcon__init(&dc, -1, on_line, &dc);
	out("No bootable device.\n");
	/* Not shown, but still watched. */
	ck_assert_uint_eq(drain(buf, sizeof(buf)), 0);
	ck_assert_uint_eq(nr_lines, 1);
	ck_assert_str_eq(lines[0], "No bootable device.");
	/* A closed terminal does not stop the guest. */
	debugcon__destroy(&dc);
	close(pipefd[0]);
	pipefd[0] = open("/dev/null", O_RDONLY);
	debugcon__init(&dc, pipefd[1], NULL, NULL);
	out("still here\n");
	ck_assert_uint_eq(dc.bytes, 11);
}
END_TEST

static Suite *debugcon_suite(void)
{
	Suite *s = suite_create("debugcon");
	TCase *tc = tcase_create("debugcon");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_readback);
	tcase_add_test(tc, test_lines);
	tcase_add_test(tc, test_long_and_partial);
	tcase_add_test(tc, test_hidden);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(debugcon_suite());
	int failed;

	signal(SIGPIPE, SIG_IGN); /* as krg-vmm itself does */

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
