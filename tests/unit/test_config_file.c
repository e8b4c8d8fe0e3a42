#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vmm/config_file.h"
#include "vmm/settings.h"

static struct vm_config *cfg;
static char err[512];

static void setup(void)
{
	cfg = malloc(sizeof(*cfg));
	ck_assert_ptr_nonnull(cfg);
	settings__defaults(cfg);
	err[0] = '\0';
}

static void teardown(void)
{
	free(cfg);
}

static int parse_text(const char *text, const char *base)
{
	settings__defaults(cfg);
	err[0] = '\0';
	return config_file__parse(text, strlen(text), "x.conf", base, cfg, err,
				  sizeof(err));
}

/* text must fail with exactly want as the message. */
static void fails_with(const char *text, const char *want)
{
	ck_assert_msg(parse_text(text, NULL) == -1, "accepted: %s", text);
	ck_assert_msg(!strcmp(err, want), "for '%s': got '%s', want '%s'",
		      text, err, want);
}

START_TEST(test_good_file)
{
	const char *text =
		"# a VM\n"
		"\n"
		"memory = 2G\n"
		"   smp=4   \n"
		"kernel = /boot/vmlinuz\n"
		"initrd = /boot/initrd.img\n"
		"append = \"console=ttyS0 quiet\"\n"
		"cpu = host,-cx16,+x2apic\n"
		"serial = none\n"
		"nodes = local\n"
		"on-reset = exit\n"
		"pvm_profile = off\n"		/* '_' spelling of a key */
		"debug-io = true\n"
		"nographic = yes\n"
		"display = none\n"
		"name = test vm\n"
		"save-after = 250\n"
		"save-to = /tmp/s\n"
		"restore = /tmp/r\n";

	ck_assert_msg(!parse_text(text, NULL), "%s", err);
	ck_assert_uint_eq(cfg->ram_mib, 2048);
	ck_assert_uint_eq(cfg->nr_vcpus, 4);
	ck_assert_str_eq(cfg->kernel, "/boot/vmlinuz");
	ck_assert_str_eq(cfg->initrd, "/boot/initrd.img");
	ck_assert_str_eq(cfg->append, "console=ttyS0 quiet");
	ck_assert_str_eq(cfg->cpu_model, "host,-cx16,+x2apic");
	ck_assert(!cfg->serial_stdio);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_EXIT);
	ck_assert_int_eq(cfg->pvm_profile, VM_OFF);
	ck_assert(cfg->debug_io);
	ck_assert(cfg->nographic);
	ck_assert_str_eq(cfg->name, "test vm");
	ck_assert_uint_eq(cfg->pause_after_ms, 250);
	ck_assert_str_eq(cfg->state_out, "/tmp/s");
	ck_assert_str_eq(cfg->state_in, "/tmp/r");
	ck_assert_uint_eq(cfg->nr_nodes, 1);

	/* an empty file, comments only, or no final newline are fine */
	ck_assert_int_eq(parse_text("", NULL), 0);
	ck_assert_uint_eq(cfg->ram_mib, 256);
	ck_assert_int_eq(parse_text("# only\n   # comments\n\n", NULL), 0);
	ck_assert_int_eq(parse_text("smp = 3", NULL), 0);
	ck_assert_uint_eq(cfg->nr_vcpus, 3);
	ck_assert_int_eq(parse_text("debug-io = false\nnographic = 0", NULL),
			 0);
	ck_assert(!cfg->debug_io && !cfg->nographic);
}
END_TEST

START_TEST(test_comments_and_quotes)
{
	ck_assert_int_eq(parse_text("smp = 2 # two vCPUs\r\n", NULL), 0);
	ck_assert_uint_eq(cfg->nr_vcpus, 2);
	ck_assert_int_eq(parse_text("append = \"a # not a comment\"  # one\n",
				    NULL), 0);
	ck_assert_str_eq(cfg->append, "a # not a comment");
	ck_assert_int_eq(parse_text("append = \"say \\\"hi\\\" \\\\ \\n\"\n",
				    NULL), 0);
	ck_assert_str_eq(cfg->append, "say \"hi\" \\ \\n");
	ck_assert_int_eq(parse_text("append = \"\"\n", NULL), 0);
	ck_assert_str_eq(cfg->append, "");
	ck_assert_int_eq(parse_text("name = a#b\n", NULL), 0);
	ck_assert_str_eq(cfg->name, "a#b");
	ck_assert_int_eq(parse_text("append = console=ttyS0 quiet\n", NULL),
			 0);
	ck_assert_str_eq(cfg->append, "console=ttyS0 quiet");
	ck_assert_int_eq(parse_text("\tappend\t=\t\"  x  \"\t\n", NULL), 0);
	ck_assert_str_eq(cfg->append, "  x  ");
	ck_assert_int_eq(parse_text("append = \"a=b\" \n", NULL), 0);
	ck_assert_str_eq(cfg->append, "a=b");
}
END_TEST

START_TEST(test_errors_name_line)
{
	fails_with("smp = 2\n\nmemroy = 1G\n", "x.conf:3: unknown key 'memroy'");
	fails_with("memory = 1\n",
		   "x.conf:1: memory size 1 MiB is too small (minimum 16 MiB)");
	fails_with("# c\nsmp 4\n", "x.conf:2: expected 'key = value', got "
		   "'smp 4'");
	fails_with("= 4\n", "x.conf:1: missing key before '='");
	fails_with("append = \"open\n", "x.conf:1: unterminated quoted value "
		   "(missing '\"')");
	fails_with("append = \"a\" b\n", "x.conf:1: unexpected text after the "
		   "closing quote: 'b'");
	fails_with("kernel =\n", "x.conf:1: missing value (write \"\" for an "
		   "empty one)");
	fails_with("kernel = # none\n", "x.conf:1: missing value (write \"\" "
		   "for an empty one)");
	fails_with("smp = 2\nsmp = 3\n", "x.conf:2: duplicate key 'smp' "
		   "(already set on line 1)");
	fails_with("smp = 2\nsmp_ = 3\n", "x.conf:2: unknown key 'smp-'");
	fails_with("Memory = 1G\n", "x.conf:1: invalid key 'Memory' (keys are "
		   "lower-case option names like 'memory')");
	fails_with("no-reboot = true\n", "x.conf:1: unknown key 'no-reboot'");
	fails_with("config = other.conf\n", "x.conf:1: unknown key 'config'");
	fails_with("m = 512\n", "x.conf:1: unknown key 'm'");
	fails_with("nodes = a:1\nlocal-nodes = 2\n", "x.conf:2: key "
		   "'local-nodes' cannot be combined with 'nodes' (line 1)");
	fails_with("smp = 65\n", "x.conf:1: vCPU count 65 exceeds the maximum "
		   "of 64 vCPUs");
	fails_with("debug-io = maybe\n", "x.conf:1: invalid value 'maybe' for "
		   "debug-io (expected true or false)");
	fails_with("cpu = host,+bogus\n", "x.conf:1: unknown CPU feature "
		   "'bogus' (see krg-vmm --help, -cpu)");
	fails_with("nodes = a:1,a:1\n", "x.conf:1: node 'a:1' is listed twice");
	fails_with("serial = pty\n", "x.conf:1: unsupported serial backend "
		   "'pty' (supported: stdio, none)");

	/* a NUL byte is reported, not taken as the end of the file */
	static const char nul[] = "smp = 2\nsmp\0 = 3\n";

	settings__defaults(cfg);
	ck_assert_int_eq(config_file__parse(nul, sizeof(nul) - 1, "x.conf",
					    NULL, cfg, err, sizeof(err)), -1);
	ck_assert_str_eq(err, "x.conf:2: line contains a NUL byte (not a text "
			 "file?)");
	/* a very long key is rejected without overflowing anything */
	char longkey[200];

	memset(longkey, 'a', 150);
	strcpy(longkey + 150, " = 1\n");
	ck_assert_int_eq(parse_text(longkey, NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "x.conf:1: invalid key"));
}
END_TEST

START_TEST(test_relative_paths)
{
	ck_assert_msg(!parse_text("kernel = vmlinuz\n"
				  "initrd = mods/a arg1,b,/abs/c x,,y\n"
				  "save-to = ../s.state\n"
				  "restore = /abs/r.state\n", "/etc/krg"),
		      "%s", err);
	ck_assert_str_eq(cfg->kernel, "/etc/krg/vmlinuz");
	ck_assert_str_eq(cfg->initrd,
			 "/etc/krg/mods/a arg1,/etc/krg/b,/abs/c x,,y");
	ck_assert_str_eq(cfg->state_out, "/etc/krg/../s.state");
	ck_assert_str_eq(cfg->state_in, "/abs/r.state");

	/* a literal comma (",,") inside the first module name */
	ck_assert_int_eq(parse_text("initrd = a,,b c,d\n", "dir/"), 0);
	ck_assert_str_eq(cfg->initrd, "dir/a,,b c,dir/d");
	ck_assert_int_eq(parse_text("kernel = k\n", "/"), 0);
	ck_assert_str_eq(cfg->kernel, "/k");
	ck_assert_int_eq(parse_text("kernel = k\n", NULL), 0);
	ck_assert_str_eq(cfg->kernel, "k");

	/* the joined path must still fit */
	char *text = malloc(VM_PATH_MAX + 32), base[64];

	ck_assert_ptr_nonnull(text);
	strcpy(text, "kernel = ");
	memset(text + 9, 'k', VM_PATH_MAX - 10);
	strcpy(text + 9 + VM_PATH_MAX - 10, "\n");
	ck_assert_int_eq(parse_text(text, NULL), 0);
	ck_assert_uint_eq(strlen(cfg->kernel), VM_PATH_MAX - 10);
	snprintf(base, sizeof(base), "/a/b/c/d/e");
	ck_assert_int_eq(parse_text(text, base), -1);
	ck_assert_str_eq(err, "x.conf:1: kernel path is too long (limit 4095 "
			 "bytes)");
	free(text);
}
END_TEST

static void write_file(const char *path, const char *text, size_t len)
{
	FILE *f = fopen(path, "w");

	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fwrite(text, 1, len, f), len);
	fclose(f);
}

static void write_text(const char *path, const char *text)
{
	write_file(path, text, strlen(text));
}

START_TEST(test_load)
{
	char dir[] = "/tmp/krg-test-config-XXXXXX", path[128], want[192];
	char *big;

	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.conf", dir);
	write_text(path, "kernel = ../vmlinuz\nsmp = 2\n");
	ck_assert_msg(!config_file__load(path, cfg, err, sizeof(err)), "%s",
		      err);
	snprintf(want, sizeof(want), "%s/../vmlinuz", dir);
	ck_assert_str_eq(cfg->kernel, want);
	ck_assert_uint_eq(cfg->nr_vcpus, 2);

	write_text(path, "smp = 2\nkernel = \"unterminated\n");
	ck_assert_int_eq(config_file__load(path, cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "%s:2: unterminated quoted value "
		 "(missing '\"')", path);
	ck_assert_str_eq(err, want);

	big = malloc(CONFIG_FILE_MAX + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, '#', CONFIG_FILE_MAX + 1);
	write_file(path, big, CONFIG_FILE_MAX + 1);
	ck_assert_int_eq(config_file__load(path, cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "is larger than"));
	write_file(path, big, CONFIG_FILE_MAX);	/* one long comment line */
	ck_assert_int_eq(config_file__load(path, cfg, err, sizeof(err)), 0);
	free(big);
	unlink(path);

	ck_assert_int_eq(config_file__load(path, cfg, err, sizeof(err)), -1);
	snprintf(want, sizeof(want), "cannot open config file '%s': No such "
		 "file or directory", path);
	ck_assert_str_eq(err, want);
	ck_assert_int_eq(config_file__load(dir, cfg, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "Is a directory"));
	rmdir(dir);
}
END_TEST

/* The examples shipped in configs/ must stay valid. */
START_TEST(test_shipped_examples)
{
	static const char self[] = __FILE__;
	const char *tail = strstr(self, "tests/unit/test_config_file.c");
	char path[512];

	ck_assert_ptr_nonnull(tail);
	snprintf(path, sizeof(path), "%.*sconfigs/debian-stock.conf",
		 (int)(tail - self), self);
	ck_assert_msg(!config_file__load(path, cfg, err, sizeof(err)), "%s",
		      err);
	ck_assert_uint_eq(cfg->ram_mib, 512);
	ck_assert_uint_eq(cfg->nr_vcpus, 2);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_EXIT);
	ck_assert_ptr_nonnull(strstr(cfg->kernel,
				     "configs/../tests/stock/work/vmlinuz"));
	ck_assert_ptr_nonnull(strstr(cfg->initrd, "configs/../tests/stock/"
				     "work/initramfs.cpio"));
	ck_assert_ptr_nonnull(strstr(cfg->append, "console=ttyS0"));
	ck_assert_int_eq(settings__validate(cfg, err, sizeof(err)), 0);

	settings__defaults(cfg);
	snprintf(path, sizeof(path), "%.*sconfigs/test-guest.conf",
		 (int)(tail - self), self);
	ck_assert_msg(!config_file__load(path, cfg, err, sizeof(err)), "%s",
		      err);
	ck_assert_uint_eq(cfg->nr_vcpus, 2);
	ck_assert_ptr_nonnull(strstr(cfg->kernel, "configs/../"));
	ck_assert_int_eq(settings__validate(cfg, err, sizeof(err)), 0);
}
END_TEST

static Suite *config_suite(void)
{
	Suite *s = suite_create("config_file");
	TCase *tc = tcase_create("parse");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_good_file);
	tcase_add_test(tc, test_comments_and_quotes);
	tcase_add_test(tc, test_errors_name_line);
	tcase_add_test(tc, test_relative_paths);
	tcase_add_test(tc, test_load);
	tcase_add_test(tc, test_shipped_examples);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(config_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
