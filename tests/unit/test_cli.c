#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/cpu_features.h"
#include "vmm/settings.h"

#define MAX_ARGS 32

static struct vm_config *cfg;
static enum cli_verb verb;
static char err[512];

static void setup(void)
{
	cfg = malloc(sizeof(*cfg));
	ck_assert_ptr_nonnull(cfg);
	err[0] = '\0';
	verb = (enum cli_verb)-1;
}

static void teardown(void)
{
	free(cfg);
}

/* Parses "krg-vmm" followed by the NULL-terminated arguments. */
static int parse_v(const char *first, va_list ap)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;

	argv[argc++] = (char *)"krg-vmm";
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		ck_assert_int_lt(argc, MAX_ARGS);
		argv[argc++] = (char *)a;
	}
	argv[argc] = NULL;
	err[0] = '\0';
	return cli__parse(argc, argv, cfg, &verb, err, sizeof(err));
}

static int parse(const char *first, ...)
{
	va_list ap;
	int ret;

	va_start(ap, first);
	ret = parse_v(first, ap);
	va_end(ap);
	return ret;
}

/* "launch -kernel k ARGS...": must succeed. */
static void launch_ok(const char *first, ...)
{
	char *argv[MAX_ARGS + 1];
	int argc = 0;
	va_list ap;

	argv[argc++] = (char *)"krg-vmm";
	argv[argc++] = (char *)"launch";
	argv[argc++] = (char *)"-kernel";
	argv[argc++] = (char *)"k";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *)) {
		ck_assert_int_lt(argc, MAX_ARGS);
		argv[argc++] = (char *)a;
	}
	va_end(ap);
	argv[argc] = NULL;
	err[0] = '\0';
	ck_assert_msg(!cli__parse(argc, argv, cfg, &verb, err, sizeof(err)),
		      "unexpected error: %s", err);
	ck_assert_int_eq(verb, CLI_LAUNCH);
}

/* "launch -kernel k OPT VALUE" must fail with an error containing want. */
static void launch_fails(const char *opt, const char *value, const char *want)
{
	int ret = value ? parse("launch", "-kernel", "k", opt, value, NULL)
			: parse("launch", "-kernel", "k", opt, NULL);

	ck_assert_msg(ret == -1, "%s %s was accepted", opt, value ? value : "");
	ck_assert_msg(strstr(err, want), "%s %s: error '%s' lacks '%s'", opt,
		      value ? value : "", err, want);
	ck_assert_ptr_null(strchr(err, '\n'));
}

START_TEST(test_defaults)
{
	launch_ok(NULL);
	ck_assert_uint_eq(cfg->ram_mib, 256);
	ck_assert_uint_eq(cfg->nr_vcpus, 1);
	ck_assert_str_eq(cfg->kernel, "k");
	ck_assert_str_eq(cfg->cpu_model, "host");
	ck_assert(cfg->serial_stdio);
	ck_assert(!cfg->nographic && !cfg->debug_io);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_REBOOT);
	ck_assert_int_eq(cfg->pvm_profile, VM_AUTO);
	ck_assert_uint_eq(cfg->nr_nodes, 1);
	ck_assert_str_eq(cfg->nodes[0].addr, "local");
	ck_assert_uint_eq(cfg->local_nodes, 0);
	ck_assert_uint_eq(cfg->pause_after_ms, 0);
	ck_assert_str_eq(cfg->initrd, "");
	ck_assert_str_eq(cfg->state_in, "");
	ck_assert_str_eq(cfg->config_file, "");
}
END_TEST

START_TEST(test_memory)
{
	static const struct { const char *in; uint64_t mib; } ok[] = {
		{ "512", 512 }, { "512M", 512 }, { "512m", 512 },
		{ "2G", 2048 }, { "2g", 2048 }, { "size=1G", 1024 },
		{ "16", 16 }, { "1T", 1024 * 1024 }, { "1048576", 1048576 },
	};

	for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
		launch_ok("-m", ok[i].in, NULL);
		ck_assert_uint_eq(cfg->ram_mib, ok[i].mib);
	}
	launch_ok("--m", "64", NULL);
	ck_assert_uint_eq(cfg->ram_mib, 64);
	launch_ok("--m=96", NULL);
	ck_assert_uint_eq(cfg->ram_mib, 96);

	ck_assert_int_eq(parse("launch", "-kernel", "k", "-m", "1", NULL), -1);
	ck_assert_str_eq(err, "memory size 1 MiB is too small (minimum 16 MiB)");
	launch_fails("-m", "0", "too small");
	launch_fails("-m", "15", "too small");
	launch_fails("-m", "2T", "too large");
	launch_fails("-m", "1048577", "too large");
	launch_fails("-m", "99999999999999999999", "invalid memory size");
	launch_fails("-m", "18446744073709551615G", "too large");
	launch_fails("-m", "abc", "invalid memory size 'abc'");
	launch_fails("-m", "12X", "invalid memory size");
	launch_fails("-m", "1.5G", "invalid memory size");
	launch_fails("-m", "-5", "invalid memory size");
	launch_fails("-m", "", "invalid memory size");
	launch_fails("-m", "G", "invalid memory size");
	launch_fails("-m", "512,slots=2", "unsupported memory option 'slots=2'");
	launch_fails("-m", NULL, "option -m needs a value");
}
END_TEST

START_TEST(test_smp)
{
	launch_ok("-smp", "4", NULL);
	ck_assert_uint_eq(cfg->nr_vcpus, 4);
	launch_ok("-smp", "cpus=8", NULL);
	ck_assert_uint_eq(cfg->nr_vcpus, 8);
	launch_ok("--smp", "64", NULL);
	ck_assert_uint_eq(cfg->nr_vcpus, 64);
	launch_fails("-smp", "0", "at least 1 vCPU");
	launch_fails("-smp", "65", "maximum of 64");
	launch_fails("-smp", "4294967297", "maximum of 64");
	launch_fails("-smp", "two", "invalid vCPU count 'two'");
	launch_fails("-smp", "cpus=", "invalid vCPU count");
	launch_fails("-smp", "2,sockets=2", "unsupported smp option 'sockets=2'");
	launch_fails("-smp", NULL, "option -smp needs a value");
}
END_TEST

START_TEST(test_boot_files)
{
	launch_ok("-initrd", "mod1 arg=1,mod2", "-append",
		  "console=ttyS0 quiet", "-kernel", "rel/bzImage", NULL);
	ck_assert_str_eq(cfg->kernel, "rel/bzImage");	/* cwd-relative */
	ck_assert_str_eq(cfg->initrd, "mod1 arg=1,mod2");
	ck_assert_str_eq(cfg->append, "console=ttyS0 quiet");
	launch_ok("-append", "", NULL);
	ck_assert_str_eq(cfg->append, "");
	launch_fails("-kernel", "", "kernel path is empty");
	launch_fails("-initrd", ",mod", "empty module name");
	launch_fails("-initrd", "mod,", "empty module");

	char *big = malloc(VM_CMDLINE_MAX + 1);

	ck_assert_ptr_nonnull(big);
	memset(big, 'a', VM_CMDLINE_MAX);
	big[VM_CMDLINE_MAX] = '\0';
	launch_fails("-append", big, "kernel command line is too long");
	launch_fails("-kernel", big, "kernel path is too long");
	big[VM_CMDLINE_MAX - 1] = '\0';
	launch_ok("-append", big, NULL);
	ck_assert_uint_eq(strlen(cfg->append), VM_CMDLINE_MAX - 1);
	free(big);
}
END_TEST

START_TEST(test_cpu)
{
	struct cpu_spec spec;
	uint32_t regs[4];
	int cx16 = cpu_features__lookup("cx16", 4);
	int x2apic = cpu_features__lookup("x2apic", 6);
	int sse41 = cpu_features__lookup("sse4_1", 6);

	ck_assert_int_ge(cx16, 0);
	ck_assert_int_ge(x2apic, 0);
	ck_assert_int_eq(cpu_features__lookup("sse4.1", 6), sse41);
	ck_assert_int_eq(cpu_features__lookup("SSE4-1", 6), sse41);
	ck_assert_int_eq(cpu_features__lookup("sse4_", 5), -1);
	ck_assert_int_eq(cpu_features__lookup("lzcnt", 5),
			 cpu_features__lookup("abm", 3));

	launch_ok("-cpu", "qemu64", NULL);
	ck_assert_str_eq(cfg->cpu_model, "qemu64");
	launch_ok("-cpu", "max", NULL);
	launch_ok("-cpu", "host,-cx16,+x2apic,sse4.1,tsc-deadline=off,sha-ni,"
		  "-tsc_deadline_timer,-lahf-lm,+prefetchw", NULL);
	ck_assert_ptr_nonnull(strstr(cfg->cpu_model, "-cx16"));

	ck_assert_int_eq(cpu_features__parse("host,-cx16,+x2apic,x2apic=off,"
					     "+x2apic", &spec, err,
					     sizeof(err)), 0);
	ck_assert_int_eq(spec.model, CPU_MODEL_HOST);
	ck_assert_int_eq(spec.want[cx16], CPU_WANT_OFF);
	ck_assert_int_eq(spec.want[x2apic], CPU_WANT_ON);	/* last wins */
	ck_assert_int_eq(spec.want[sse41], CPU_WANT_DEFAULT);
	/* leaf 1: cx16 is ECX bit 13, x2apic ECX bit 21 */
	regs[CPUID_EAX] = 0x1234;
	regs[CPUID_EBX] = 0;
	regs[CPUID_ECX] = 1u << 13;
	regs[CPUID_EDX] = 0xffffffff;
	cpu_features__apply(&spec, 1, 0, regs);
	ck_assert_uint_eq(regs[CPUID_ECX], 1u << 21);
	ck_assert_uint_eq(regs[CPUID_EDX], 0xffffffff);
	ck_assert_uint_eq(regs[CPUID_EAX], 0x1234);
	/* another leaf is untouched */
	regs[CPUID_ECX] = 1u << 13;
	cpu_features__apply(&spec, 7, 0, regs);
	ck_assert_uint_eq(regs[CPUID_ECX], 1u << 13);

	ck_assert_int_eq(cpu_features__parse("qemu64,-xsaveopt", &spec, err,
					     sizeof(err)), 0);
	regs[CPUID_EAX] = 0xf;
	cpu_features__apply(&spec, 0xd, 1, regs);
	ck_assert_uint_eq(regs[CPUID_EAX], 0xe);

	launch_fails("-cpu", "host,+bogus", "unknown CPU feature 'bogus'");
	launch_fails("-cpu", "host,-sse4_", "unknown CPU feature 'sse4_'");
	launch_fails("-cpu", "skylake", "unknown CPU model 'skylake'");
	launch_fails("-cpu", "", "no model name");
	launch_fails("-cpu", ",+cx16", "no model name");
	launch_fails("-cpu", "host,,+cx16", "empty item");
	launch_fails("-cpu", "host,", "empty item");
	launch_fails("-cpu", "host,+", "empty CPU feature name");
	launch_fails("-cpu", "host,=on", "empty CPU feature name");
	launch_fails("-cpu", "host,x2apic=maybe", "expected =on or =off");
}
END_TEST

START_TEST(test_cpu_table)
{
	size_t n, i, j;
	const struct cpu_feature *t = cpu_features__table(&n);
	static const char *const required[] = {
		"fpu", "vme", "de", "pse", "tsc", "msr", "pae", "mce", "cx8",
		"apic", "sep", "mtrr", "pge", "mca", "cmov", "pat", "pse36",
		"clflush", "mmx", "fxsr", "sse", "sse2", "ss", "ht", "sse3",
		"pclmulqdq", "dtes64", "monitor", "ssse3", "fma", "cx16", "pcid",
		"sse4_1", "sse4_2", "x2apic", "movbe", "popcnt", "tsc-deadline",
		"aes", "xsave", "osxsave", "avx", "f16c", "rdrand", "hypervisor",
		"fsgsbase", "bmi1", "avx2", "smep", "bmi2", "erms", "invpcid",
		"avx512f", "rdseed", "adx", "smap", "clflushopt", "sha_ni",
		"sha-ni", "umip", "pku", "rdpid", "xsaveopt", "lahf_lm", "abm",
		"lzcnt", "sse4a", "3dnowprefetch", "prefetchw", "syscall", "nx",
		"pdpe1gb", "rdtscp", "lm", "pni",
	};

	ck_assert_uint_le(n, CPU_FEATURES_MAX);
	for (i = 0; i < sizeof(required) / sizeof(required[0]); i++)
		ck_assert_msg(cpu_features__lookup(required[i],
						   strlen(required[i])) >= 0,
			      "feature %s missing", required[i]);
	/* no two names for one bit, and bits within a register */
	for (i = 0; i < n; i++) {
		ck_assert_uint_lt(t[i].bit, 32);
		ck_assert_uint_le(t[i].reg, CPUID_EDX);
		for (j = i + 1; j < n; j++)
			ck_assert_msg(t[i].leaf != t[j].leaf ||
				      t[i].subleaf != t[j].subleaf ||
				      t[i].reg != t[j].reg ||
				      t[i].bit != t[j].bit,
				      "%s and %s share a bit", t[i].name,
				      t[j].name);
	}
	/* spot checks against the SDM */
	i = (size_t)cpu_features__lookup("avx2", 4);
	ck_assert(t[i].leaf == 7 && t[i].reg == CPUID_EBX && t[i].bit == 5);
	i = (size_t)cpu_features__lookup("lm", 2);
	ck_assert(t[i].leaf == 0x80000001u && t[i].reg == CPUID_EDX &&
		  t[i].bit == 29);
	i = (size_t)cpu_features__lookup("popcnt", 6);
	ck_assert(t[i].leaf == 1 && t[i].reg == CPUID_ECX && t[i].bit == 23);
	i = (size_t)cpu_features__lookup("rdpid", 5);
	ck_assert(t[i].leaf == 7 && t[i].reg == CPUID_ECX && t[i].bit == 22);
}
END_TEST

START_TEST(test_console_and_misc)
{
	launch_ok("-serial", "none", NULL);
	ck_assert(!cfg->serial_stdio);
	launch_ok("-serial", "none", "-serial", "mon:stdio", NULL);
	ck_assert(cfg->serial_stdio);
	launch_fails("-serial", "pty", "unsupported serial backend 'pty' "
		     "(supported: stdio, none)");
	launch_ok("-nographic", "-display", "none", "-name", "guest1", NULL);
	ck_assert(cfg->nographic);
	ck_assert_str_eq(cfg->name, "guest1");
	launch_fails("-display", "gtk", "unsupported display 'gtk'");
	launch_ok("-no-reboot", NULL);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_EXIT);
	launch_ok("--on-reset", "exit", NULL);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_EXIT);
	launch_ok("--on-reset=exit", "--on-reset", "reboot", NULL);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_REBOOT);
	launch_fails("--on-reset", "halt", "expected reboot or exit");
	launch_ok("--pvm-profile", "on", NULL);
	ck_assert_int_eq(cfg->pvm_profile, VM_ON);
	launch_ok("-pvm-profile", "off", NULL);
	ck_assert_int_eq(cfg->pvm_profile, VM_OFF);
	launch_fails("--pvm-profile", "maybe", "expected auto, on or off");
	launch_ok("--debug-io", NULL);
	ck_assert(cfg->debug_io);
	launch_fails("--debug-io=1", NULL, "option --debug-io takes no value");
	launch_fails("--nographic=yes", NULL, "takes no value");
}
END_TEST

START_TEST(test_nodes)
{
	launch_ok("--nodes", "local", NULL);
	ck_assert_uint_eq(cfg->nr_nodes, 1);
	ck_assert_str_eq(cfg->nodes[0].addr, "local");
	launch_ok("--nodes", "127.0.0.1:7000,LocalHost:7001,[0:0::1]:7002,"
		  "node-1.Example.com:80,local", NULL);
	ck_assert_uint_eq(cfg->nr_nodes, 5);
	ck_assert_str_eq(cfg->nodes[0].addr, "127.0.0.1:7000");
	ck_assert_str_eq(cfg->nodes[1].addr, "localhost:7001");
	ck_assert_str_eq(cfg->nodes[2].addr, "[::1]:7002");
	ck_assert_str_eq(cfg->nodes[3].addr, "node-1.example.com:80");
	ck_assert_str_eq(cfg->nodes[4].addr, "local");
	launch_ok("--nodes=h:65535", NULL);
	ck_assert_str_eq(cfg->nodes[0].addr, "h:65535");
	ck_assert_uint_eq(cfg->local_nodes, 0);

	launch_fails("--nodes", "host", "needs a port");
	launch_fails("--nodes", "host:0", "port must be a number from 1 to "
		     "65535");
	launch_fails("--nodes", "host:65536", "port must be");
	launch_fails("--nodes", "host:", "port must be");
	launch_fails("--nodes", "host:8o", "port must be");
	launch_fails("--nodes", ":80", "empty host name");
	launch_fails("--nodes", "", "empty node address");
	launch_fails("--nodes", "a:1,,b:2", "empty node address");
	launch_fails("--nodes", "a:1,", "empty node address");
	launch_fails("--nodes", "1.2.3:80", "not an IPv4 address");
	launch_fails("--nodes", "256.1.1.1:80", "not an IPv4 address");
	launch_fails("--nodes", "::1:80", "in brackets");
	launch_fails("--nodes", "[::1]", "expected [IPv6-ADDRESS]:PORT");
	launch_fails("--nodes", "[::1:80", "expected [IPv6-ADDRESS]:PORT");
	launch_fails("--nodes", "[zz]:80", "not an IPv6 address");
	launch_fails("--nodes", "-bad:80", "not a valid host name");
	launch_fails("--nodes", "bad-.x:80", "not a valid host name");
	launch_fails("--nodes", "a..b:80", "not a valid host name");
	launch_fails("--nodes", "a_b:80", "not a valid host name");
	launch_fails("--nodes", "a:1,b:2,a:1", "node 'a:1' is listed twice");
	launch_fails("--nodes", "A:1,a:1", "listed twice");
	launch_fails("--nodes", "[::1]:5,[0::1]:5", "listed twice");
	launch_fails("--nodes", "local,local", "listed twice");

	char list[65 * 16] = "";
	for (int i = 0; i < 65; i++)
		snprintf(list + strlen(list), sizeof(list) - strlen(list),
			 "%sh%d:1", i ? "," : "", i);
	launch_fails("--nodes", list, "more than 64 nodes");
	*strrchr(list, ',') = '\0';
	launch_ok("--nodes", list, NULL);
	ck_assert_uint_eq(cfg->nr_nodes, 64);

	char longhost[300];
	memset(longhost, 'a', 260);
	strcpy(longhost + 260, ":80");
	launch_fails("--nodes", longhost, "too long a host name");
}
END_TEST

START_TEST(test_local_nodes)
{
	launch_ok("--local-nodes", "4", NULL);
	ck_assert_uint_eq(cfg->local_nodes, 4);
	ck_assert_uint_eq(cfg->nr_nodes, 1);
	ck_assert_str_eq(cfg->nodes[0].addr, "local");
	launch_fails("--local-nodes", "0", "from 1 to 64");
	launch_fails("--local-nodes", "65", "from 1 to 64");
	launch_fails("--local-nodes", "x", "invalid local node count");
	ck_assert_int_eq(parse("launch", "-kernel", "k", "--nodes", "a:1",
			       "--local-nodes", "2", NULL), -1);
	ck_assert_str_eq(err, "--local-nodes cannot be combined with --nodes");
	ck_assert_int_eq(parse("launch", "-kernel", "k", "--local-nodes", "2",
			       "--nodes", "a:1", NULL), -1);
	ck_assert_str_eq(err, "--nodes cannot be combined with --local-nodes");
}
END_TEST

START_TEST(test_save_restore)
{
	launch_ok("--save-after", "100", "--save-to", "out.state", NULL);
	ck_assert_uint_eq(cfg->pause_after_ms, 100);
	ck_assert_str_eq(cfg->state_out, "out.state");
	launch_fails("--save-after", "0", "invalid save-after delay '0'");
	launch_fails("--save-after", "1x", "invalid save-after delay");
	launch_fails("--save-after", "99999999999999", "invalid save-after");
	launch_fails("--save-after", "5", "--save-after needs --save-to");
	launch_fails("--save-to", "f", "--save-to needs --save-after");
	launch_fails("--save-to", "", "save-to path is empty");

	ck_assert_int_eq(parse("launch", "--restore", "in.state", NULL), 0);
	ck_assert_int_eq(verb, CLI_LAUNCH);
	ck_assert_str_eq(cfg->state_in, "in.state");
	ck_assert_str_eq(cfg->kernel, "");
	ck_assert_int_eq(parse("launch", "-m", "512", NULL), -1);
	ck_assert_str_eq(err, "no kernel given: use -kernel FILE, a -drive to "
			 "boot through the BIOS (or -bios FILE), or --restore "
			 "FILE");
	/* A -drive or -bios alone boots through firmware. */
	ck_assert_int_eq(parse("launch", "-drive", "file=d.img", NULL), 0);
	ck_assert_str_eq(cfg->bios, "");
	ck_assert_int_eq(parse("launch", "-bios", "b.bin", "-debugcon", "none",
			       NULL), 0);
	ck_assert_str_eq(cfg->bios, "b.bin");
	ck_assert(cfg->debugcon_off);
	launch_fails("-bios", "", "bios path is empty");
	launch_fails("-debugcon", "stdio",
		     "unsupported debugcon backend 'stdio'");
	ck_assert_int_eq(parse("launch", "-bios", "b.bin", "-kernel", "k",
			       NULL), -1);
	ck_assert_str_eq(err, "-bios and -kernel together: krg-vmm loads a "
			 "-kernel itself, without firmware; give one of them");
}
END_TEST

START_TEST(test_usage_errors)
{
	ck_assert_int_eq(parse("launch", "-kernel", "k", "-foo", NULL), -1);
	ck_assert_str_eq(err, "unknown option '-foo' (see krg-vmm --help)");
	ck_assert_int_eq(parse("launch", "-kernel", "k", "--foo=1", NULL), -1);
	ck_assert_str_eq(err, "unknown option '--foo' (see krg-vmm --help)");
	ck_assert_int_eq(parse("launch", "-kernel", "k", "-m", NULL), -1);
	ck_assert_str_eq(err, "option -m needs a value");
	ck_assert_int_eq(parse("launch", "-kernel", NULL), -1);
	ck_assert_str_eq(err, "option -kernel needs a value");
	ck_assert_int_eq(parse("launch", "--nodes", NULL), -1);
	ck_assert_str_eq(err, "option --nodes needs a value");
	ck_assert_int_eq(parse("launch", "-kernel", "k", "disk.img", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "unexpected argument 'disk.img'"));
	ck_assert_int_eq(parse("launch", "-kernel", "k", "--", NULL), -1);
	ck_assert_int_eq(parse("launch", "-kernel", "k", "-", NULL), -1);
	/* a config key is not an option spelling */
	ck_assert_int_eq(parse("launch", "-kernel", "k", "--memory", "1G",
			       NULL), -1);
	ck_assert_str_eq(err, "unknown option '--memory' (see krg-vmm --help)");
	/* values may look like options */
	launch_ok("-append", "-m", NULL);
	ck_assert_str_eq(cfg->append, "-m");
	ck_assert_uint_eq(cfg->ram_mib, 256);
}
END_TEST

START_TEST(test_verbs)
{
	ck_assert_int_eq(cli__parse(1, (char *[]){ (char *)"krg-vmm", NULL },
				    cfg, &verb, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no command given"));
	ck_assert_int_eq(parse("--help", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	ck_assert_int_eq(parse("-h", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	ck_assert_int_eq(parse("help", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	ck_assert_int_eq(parse("help", "launch", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	ck_assert_int_eq(parse("help", "agent", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "unexpected argument 'agent'"));
	ck_assert_int_eq(parse("help", "launch", "x", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "unexpected argument 'x'"));
	ck_assert_int_eq(parse("--version", NULL), 0);
	ck_assert_int_eq(verb, CLI_VERSION);
	ck_assert_int_eq(parse("--version", "x", NULL), -1);
	ck_assert_int_eq(parse("agent", NULL), -1);
	ck_assert_str_eq(err, "unknown command 'agent' (see krg-vmm --help)");
	ck_assert_int_eq(parse("-m", "512", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "krg-vmm launch -m"));
	/* --help wins over bad values, which are only checked afterwards */
	ck_assert_int_eq(parse("launch", "-m", "1", "--help", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	ck_assert_int_eq(parse("launch", "-h", NULL), 0);
	ck_assert_int_eq(verb, CLI_HELP);
	/* "--help" as the value of -append is not a help request */
	ck_assert_int_eq(parse("launch", "-kernel", "k", "-append", "--help",
			       NULL), 0);
	ck_assert_int_eq(verb, CLI_LAUNCH);
	ck_assert_str_eq(cfg->append, "--help");
	ck_assert_ptr_nonnull(strstr(cli__version_text(), KRG_VMM_VERSION));
	ck_assert_ptr_nonnull(strstr(cli__usage(), "krg-vmm launch"));
}
END_TEST

/* Writes text to a fresh file in a fresh directory; returns its path. */
static char *write_tmp_config(const char *text, char *dir, size_t dirlen)
{
	static char path[256];
	FILE *f;

	snprintf(dir, dirlen, "/tmp/krg-test-cli-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/vm.conf", dir);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
	return path;
}

START_TEST(test_config_override)
{
	char dir[64], want[128];
	char *path = write_tmp_config("memory = 1G\nsmp = 2\n"
				      "kernel = vmlinuz\non-reset = exit\n",
				      dir, sizeof(dir));

	/* the command line wins although it comes first */
	ck_assert_int_eq(parse("launch", "-m", "512", "--config", path, NULL),
			 0);
	ck_assert_uint_eq(cfg->ram_mib, 512);
	ck_assert_uint_eq(cfg->nr_vcpus, 2);
	ck_assert_int_eq(cfg->on_reset, VM_RESET_EXIT);
	snprintf(want, sizeof(want), "%s/vmlinuz", dir);
	ck_assert_str_eq(cfg->kernel, want);
	ck_assert_str_eq(cfg->config_file, path);
	ck_assert_int_eq(parse("launch", "--config", path, "-kernel", "other",
			       "--on-reset", "reboot", NULL), 0);
	ck_assert_str_eq(cfg->kernel, "other");
	ck_assert_int_eq(cfg->on_reset, VM_RESET_REBOOT);
	ck_assert_uint_eq(cfg->ram_mib, 1024);
	/* --local-nodes on the command line overrides nodes in the file */
	unlink(path);
	rmdir(dir);

	path = write_tmp_config("kernel = k\nnodes = a:1,b:2\n", dir,
				sizeof(dir));
	ck_assert_int_eq(parse("launch", "--config", path, "--local-nodes", "3",
			       NULL), 0);
	ck_assert_uint_eq(cfg->local_nodes, 3);
	ck_assert_uint_eq(cfg->nr_nodes, 1);
	ck_assert_int_eq(parse("launch", "--config", path, "--config", path,
			       NULL), -1);
	ck_assert_str_eq(err, "--config given twice");
	unlink(path);

	ck_assert_int_eq(parse("launch", "--config", path, NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "cannot open config file"));
	ck_assert_ptr_nonnull(strstr(err, path));
	rmdir(dir);

	path = write_tmp_config("kernel = k\nmemroy = 1G\n", dir, sizeof(dir));
	ck_assert_int_eq(parse("launch", "--config", path, NULL), -1);
	snprintf(want, sizeof(want), "%s:2: unknown key 'memroy'", path);
	ck_assert_str_eq(err, want);
	unlink(path);
	rmdir(dir);
}
END_TEST

/* Each setting's command-line spelling opens a line of the help text. */
static bool help_has_option(const char *help, const char *opt)
{
	char needle[80];
	const char *p = help;

	snprintf(needle, sizeof(needle), "\n  %s", opt);
	while ((p = strstr(p, needle))) {
		char after = p[strlen(needle)];

		if (after == ' ' || after == ',' || after == '\n')
			return true;
		p++;
	}
	return false;
}

static bool help_has_word(const char *help, const char *w)
{
	size_t n = strlen(w);

	for (const char *p = help; (p = strstr(p, w)); p++) {
		char before = p == help ? ' ' : p[-1];
		char after = p[n];

		if ((before == ' ' || before == '\n' || before == '(') &&
		    (after == ' ' || after == ',' || after == '\n' ||
		     after == '.' || after == ')'))
			return true;
	}
	return false;
}

START_TEST(test_help_complete)
{
	const char *help = cli__help_text();
	const struct setting *s;
	const struct cpu_feature *f;
	size_t n, i;
	char buf[80];

	s = settings__table(&n);
	for (i = 0; i < n; i++) {
		bool found;

		snprintf(buf, sizeof(buf), "-%s", s[i].option);
		found = help_has_option(help, buf);
		snprintf(buf, sizeof(buf), "--%s", s[i].option);
		found = found || help_has_option(help, buf);
		ck_assert_msg(found, "help lacks option %s", s[i].option);
		if (!(s[i].flags & SETTING_CLI_ONLY))
			ck_assert_msg(help_has_word(help, s[i].key),
				      "help lacks config key %s", s[i].key);
	}
	ck_assert(help_has_option(help, "--config"));
	ck_assert(help_has_option(help, "-h"));
	ck_assert(help_has_option(help, "--version"));
	f = cpu_features__table(&n);
	for (i = 0; i < n; i++)
		ck_assert_msg(help_has_word(help, f[i].name),
			      "help lacks CPU feature %s", f[i].name);
	ck_assert_ptr_nonnull(strstr(help, "Ctrl-A x"));
	ck_assert_ptr_nonnull(strstr(help, "Ctrl-A h"));
	ck_assert_ptr_nonnull(strstr(help, "Exit status"));
	ck_assert_ptr_nonnull(strstr(help, "kvm_pvm"));
	ck_assert_ptr_nonnull(strstr(help, "default 256"));
	/* fits an 80-column terminal */
	for (const char *p = help, *nl; *p; p = nl + 1) {
		nl = strchr(p, '\n');
		ck_assert_ptr_nonnull(nl);
		ck_assert_msg(nl - p <= 79, "help line too long: %.*s",
			      (int)(nl - p), p);
	}
	/* and the checks above can fail */
	ck_assert(!help_has_option(help, "--memory"));
	ck_assert(!help_has_word(help, "memroy"));
}
END_TEST

static Suite *cli_suite(void)
{
	Suite *s = suite_create("cli");
	TCase *tc = tcase_create("parse");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_defaults);
	tcase_add_test(tc, test_memory);
	tcase_add_test(tc, test_smp);
	tcase_add_test(tc, test_boot_files);
	tcase_add_test(tc, test_cpu);
	tcase_add_test(tc, test_cpu_table);
	tcase_add_test(tc, test_console_and_misc);
	tcase_add_test(tc, test_nodes);
	tcase_add_test(tc, test_local_nodes);
	tcase_add_test(tc, test_save_restore);
	tcase_add_test(tc, test_usage_errors);
	tcase_add_test(tc, test_verbs);
	tcase_add_test(tc, test_config_override);
	tcase_add_test(tc, test_help_complete);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cli_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
