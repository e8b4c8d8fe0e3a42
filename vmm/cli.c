#include "vmm/cli.h"

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include "dsm/dsm_mem.h"
#include "vmm/config_file.h"
#include "vmm/errf.h"
#include "vmm/settings.h"

#define KRG_STR_(x) #x
#define KRG_STR(x) KRG_STR_(x)

static const char usage[] =
	"usage: krg-vmm launch [options] | krg-vmm help [launch] | "
	"krg-vmm --version";

/* Written by hand (not generated from the settings table) so that it reads
 * well; tests/unit/test_cli.c checks it names every setting. */
static const char help_text[] =
"Usage: krg-vmm launch [options]\n"
"       krg-vmm status [SOCKET]   counters of the running VM (its socket\n"
"                                 in /run/krg-vmm/ when only one runs)\n"
"       krg-vmm migrate-vcpu VCPU NODE [SOCKET]\n"
"                                 move a running cluster VM's vCPU to\n"
"                                 another of its nodes, live\n"
"       krg-vmm checkpoint [--stop] [--socket SOCKET] DIR\n"
"                                 the running VM, every node, into the\n"
"                                 snapshot directory DIR (--stop: stays\n"
"                                 paused)\n"
"       krg-vmm restore DIR [--local-nodes N | --nodes LIST] [options]\n"
"                                 start a VM from a snapshot, on any\n"
"                                 number of nodes\n"
"       krg-vmm agent --listen HOST:PORT --cluster-key FILE\n"
"                                 start nodes for launchers on other hosts\n"
"                                 (configs/krg-vmm-agent.service)\n"
"       krg-vmm help [launch]     (same as krg-vmm --help)\n"
"       krg-vmm --version\n"
"\n"
"Runs a virtual machine on KVM.  Options are spelled as in QEMU where QEMU\n"
"has them; every option takes one dash or two (-m 512 or --m 512), and the\n"
"two-dash form also accepts --option=VALUE.\n"
"\n"
"Machine:\n"
"  -m SIZE              guest RAM in MiB, or with a suffix M, G or T (2G);\n"
"                       size=SIZE also works; 16 MiB to 1 TiB (default 256)\n"
"  -smp N               number of vCPUs, or cpus=N; 1 to 64 (default 1)\n"
"  -cpu MODEL[,+F,-F..] CPU model host, max or qemu64 (default host), then\n"
"                       features forced on (+F, F, F=on) or off (-F, F=off);\n"
"                       names below\n"
"  -name NAME           guest name (accepted as in QEMU; kept for messages)\n"
"\n"
"Boot:\n"
"  -kernel FILE         Linux bzImage or vmlinux, or a multiboot kernel,\n"
"                       started directly (no firmware)\n"
"  -bios FILE           boot through this BIOS image instead: mapped below\n"
"                       4 GiB, the vCPU starts at its reset vector.  A\n"
"                       -drive without -kernel boots this way through\n"
"                       Debian's SeaBIOS (/usr/share/seabios/bios-256k.bin)\n"
"                       from the disks in -drive order; \"No bootable\n"
"                       device\" ends the run with status 1\n"
"  -debugcon BACKEND    the firmware's debug log (port 0x402): stderr or\n"
"                       none (default stderr)\n"
"                       One of -kernel, a -drive, -bios or --restore is\n"
"                       needed\n"
"  -initrd FILE         initial ramdisk; for a multiboot kernel a module\n"
"                       list \"mod1 args,mod2\" (a comma in a name: ,,)\n"
"  -append STRING       kernel command line (default empty)\n"
"                       -kernel and -initrd FILE may name a file inside a\n"
"                       disk's ext2/3/4 filesystem: drive:/PATH (the first\n"
"                       -drive), driveN:/PATH (-drive N, from 0), or\n"
"                       drive[N]:pK:/PATH (partition K); symlinks are\n"
"                       followed (-kernel drive:/vmlinuz)\n"
"\n"
"Console and devices:\n"
"  -serial BACKEND      COM1 on stdio or none (default stdio; mon:stdio is\n"
"                       taken as stdio)\n"
"  -nographic           accepted: krg-vmm has no display\n"
"  -display none        accepted: no other display exists\n"
"  -no-reboot           exit when the guest resets (= --on-reset exit)\n"
"  --on-reset ACTION    what a guest reset does: reboot or exit\n"
"                       (default reboot)\n"
"  -drive OPTIONS       a virtio-blk disk (repeatable, up to 8; PCI slots\n"
"                       2, 3, ... in order), QEMU's spelling:\n"
"                       file=PATH|nbd://HOST[:PORT]/EXPORT|nbd+unix:///EXPORT\n"
"                       ?socket=PATH, format=raw|qcow2|vmdk|vdi|vpc|vhdx|qed\n"
"                       (default: probed), if=virtio, media=disk,\n"
"                       readonly=on|off, cache=writeback|none|writethrough|\n"
"                       directsync|unsafe (default writeback),\n"
"                       discard=ignore|unmap, aio=io_uring|threads,\n"
"                       serial=TEXT (20 bytes), id=NAME, queues=1-16\n"
"                       (default one per vCPU, up to 4; 8 in a cluster),\n"
"                       serve=auto|node0 (cluster: queue q on vCPU q's node,\n"
"                       or all on node 0).  Formats other than raw go\n"
"                       through qemu-storage-daemon\n"
"  -nic user[,hostfwd=RULE..][,mac=MAC][,id=ID][,model=virtio-net-pci]\n"
"                       a virtio-net NIC (repeatable, up to 4; PCI slots\n"
"                       10-13) on the user-mode network: the guest is\n"
"                       10.0.2.15, gateway/host 10.0.2.2 (reaching the\n"
"                       host's 127.0.0.1), DNS 10.0.2.3, DHCP; RULE is\n"
"                       [tcp|udp]:[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT,\n"
"                       restrict=on cuts the guest off from the outside.\n"
"                       MAC default 52:54:00:12:34:56 (+1 per NIC)\n"
"  -nic tap,ifname=NAME a NIC on the host's tap device NAME (script=no,\n"
"                       downscript=no accepted); -nic none: no NIC\n"
"  -netdev user|tap,id=ID[,...]  a backend with the options above, for\n"
"  -device virtio-net-pci,netdev=ID[,mac=MAC]  a NIC using it\n"
"  -device virtio-rng-pci  a virtio entropy device (host getrandom();\n"
"                       PCI slot 14; not present unless asked for)\n"
"  --debug-io           log guest accesses to unclaimed ports and MMIO\n"
"  --stats              at exit, print every node's counters (faults,\n"
"                       invalidations, pages and bytes moved, fault\n"
"                       latency histogram, messages by type); while the\n"
"                       VM runs, `krg-vmm status` shows the same\n"
"\n"
"Nodes (hosts running the VM):\n"
"  --nodes LIST         comma-separated: local, or HOST:PORT with an IPv4\n"
"                       address, a host name or [IPv6]:PORT; up to 64,\n"
"                       each once (default local)\n"
"  --local-nodes N      run the VM as N nodes on this host (1 to 64),\n"
"                       processes on loopback with a fresh key; not\n"
"                       together with --nodes\n"
"  --numa MODE          nodes: the guest sees one NUMA node per cluster\n"
"                       node (ACPI SRAT/SLIT; default); flat: one node\n"
"                       (memory is still homed across the nodes)\n"
"  --dsm-hold-us US     a node keeps a page it just fetched for a vCPU's\n"
"                       write at least this long before giving it up\n"
"                       (0 to 1000000; default "
	KRG_STR(DSM_MEM_DEFAULT_HOLD_US) ", " KRG_STR(DSM_MEM_PVM_HOLD_US)
	" with the PVM profile)\n"
"  --dsm-track-writes   a read fault maps the page read-only even where the\n"
"                       node may write, so the first write faults too\n"
"                       (measurements; see bench/README.md)\n"
"  --dsm-shadow-flush MODE  auto, on or off: drop KVM's shadow page tables\n"
"                       whenever a node gives up pages, which keeps page\n"
"                       tables coherent on hosts without EPT/NPT (auto:\n"
"                       on for PVM or ept=N/npt=0; off is for measurements)\n"
"  --cluster-key FILE   the key shared with the agents of --nodes (at\n"
"                       least 32 bytes, raw or hex, mode 0600); it\n"
"                       authenticates nodes, it does not encrypt\n"
"\n"
"Host:\n"
"  --pvm-profile MODE   auto, on or off: adapt the guest to PVM-flavoured\n"
"                       KVM, see Environment below (default auto)\n"
"\n"
"Saving and restoring (used by tests):\n"
"  --save-after MS      pause the guest MS milliseconds after it starts,\n"
"                       save its complete state and exit with status 0\n"
"  --save-to FILE       the file --save-after writes (both are needed)\n"
"  --restore FILE       load a saved state and continue the guest; -m and\n"
"                       -smp must match the saved VM\n"
"\n"
"Configuration:\n"
"  --config FILE        read settings from FILE first; command-line options\n"
"                       override it wherever they appear.  One \"key = value\"\n"
"                       per line, '#' comments, \"quotes\" for spaces; keys:\n"
"                       memory, smp, cpu, name, kernel, initrd, append,\n"
"                       bios, debugcon,\n"
"                       serial, nographic, display, on-reset, debug-io,\n"
"                       drive (repeatable), nic, netdev, device,\n"
"                       nodes, local-nodes, cluster-key, stats, numa,\n"
"                       dsm-hold-us, dsm-track-writes, dsm-shadow-flush,\n"
"                       pvm-profile,\n"
"                       save-after,\n"
"                       save-to, restore.  Relative paths are relative to\n"
"                       the file's directory (see configs/README.md)\n"
"  -h, --help           print this help and exit\n"
"  --version            print the version and exit\n"
"\n"
"CPU features for -cpu ('_', '-' and '.' are interchangeable: sse4.1):\n"
"  fpu vme de pse tsc msr pae mce cx8 apic sep mtrr pge mca cmov pat pse36\n"
"  clflush mmx fxsr sse sse2 ss ht sse3 (pni) pclmulqdq dtes64 monitor\n"
"  ssse3 fma cx16 pcid sse4_1 sse4_2 x2apic movbe popcnt tsc_deadline aes\n"
"  xsave osxsave avx f16c rdrand hypervisor fsgsbase bmi1 avx2 smep bmi2\n"
"  erms invpcid avx512f avx512dq rdseed adx smap clflushopt clwb avx512cd\n"
"  sha_ni avx512bw avx512vl avx512vbmi umip pku ospke gfni vaes vpclmulqdq\n"
"  la57 rdpid xsaveopt xsavec xsaves lahf_lm abm (lzcnt) sse4a\n"
"  3dnowprefetch (prefetchw) syscall nx pdpe1gb rdtscp lm\n"
"\n"
"Console keys (serial on stdio; Ctrl-C goes to the guest):\n"
"  Ctrl-A x             quit krg-vmm\n"
"  Ctrl-A h             list the console keys\n"
"  Ctrl-A Ctrl-A        send one Ctrl-A to the guest\n"
"\n"
"Signals: SIGTERM, SIGINT and SIGHUP stop the VM (exit status 0); SIGQUIT\n"
"prints one line per vCPU (state, RIP, CPU mode, exit counts).\n"
"\n"
"Exit status:\n"
"  0    the guest powered off, Ctrl-A x, a signal, or --save-after saved\n"
"       the state\n"
"  N    the guest wrote V to the isa-debug-exit port: (V << 1) | 1, as QEMU\n"
"  1    runtime failure: KVM error, triple fault, unhandled emulation\n"
"       failure (a report is printed)\n"
"  2    bad command line, config file or input file\n"
"\n"
"Environment:\n"
"  krg-vmm needs read and write access to /dev/kvm.  Some hosts provide KVM\n"
"  through PVM (module kvm_pvm: software virtualization without VT-x or\n"
"  AMD-V), where guest kernel code is emulated instruction by instruction\n"
"  and KVM's emulator lacks some instructions.  The PVM profile works around\n"
"  that: the guest kernel is told not to use the missing CPU features,\n"
"  krg-vmm completes a short list of instructions itself (int3, int n,\n"
"  popcnt, clac/stac, fwait, ...) and, for Linux guests, the syscalls PVM\n"
"  leaves half done, and spaces LAPIC timer interrupts at least 20 ms\n"
"  apart.  auto applies it when KVM is PVM (module\n"
"  kvm_pvm loaded, or no vmx/svm flag in /proc/cpuinfo); on forces it; off\n"
"  never applies it.\n";

static const char version_text[] = "krg-vmm " KRG_VMM_VERSION "\n";

const char *cli__help_text(void)
{
	return help_text;
}

const char *cli__usage(void)
{
	return usage;
}

const char *cli__version_text(void)
{
	return version_text;
}

enum tok_kind { TOK_SETTING, TOK_HELP, TOK_CONFIG };

struct tok {
	enum tok_kind kind;
	const struct setting *s;
	const char *value;
	char spelling[64];	/* as typed, without "=value", for messages */
};

static bool name_is(const char *name, size_t len, const char *want)
{
	return strlen(want) == len && !memcmp(name, want, len);
}

/* Reads the option at argv[*i] (and its value), advancing *i past both. */
static int next_tok(int argc, char *const argv[], int *i, struct tok *t,
		    char *err, size_t errlen)
{
	const char *arg = argv[*i], *name, *eq = NULL;
	bool takes_value;
	size_t len;

	if (arg[0] != '-' || !arg[1] || !strcmp(arg, "--")) {
		errf(err, errlen, "unexpected argument '%s' (see "
		     "krg-vmm --help)", arg);
		return -1;
	}
	name = arg + (arg[1] == '-' ? 2 : 1);
	if (arg[1] == '-')
		eq = strchr(name, '=');
	len = eq ? (size_t)(eq - name) : strlen(name);
	snprintf(t->spelling, sizeof(t->spelling), "%.*s",
		 (int)(name - arg + (ptrdiff_t)len), arg);
	t->s = NULL;
	t->value = NULL;
	(*i)++;

	if (name_is(name, len, "h") || name_is(name, len, "help")) {
		t->kind = TOK_HELP;
		takes_value = false;
	} else if (name_is(name, len, "config")) {
		t->kind = TOK_CONFIG;
		takes_value = true;
	} else {
		t->kind = TOK_SETTING;
		t->s = settings__by_option(name, len);
		if (!t->s) {
			errf(err, errlen, "unknown option '%s' (see "
			     "krg-vmm --help)", t->spelling);
			return -1;
		}
		takes_value = !(t->s->flags & SETTING_FLAG);
	}
	if (!takes_value) {
		if (eq) {
			errf(err, errlen, "option %s takes no value",
			     t->spelling);
			return -1;
		}
		t->value = "true";
		return 0;
	}
	if (eq) {
		t->value = eq + 1;
		return 0;
	}
	if (*i >= argc) {
		errf(err, errlen, "option %s needs a value", t->spelling);
		return -1;
	}
	t->value = argv[(*i)++];
	return 0;
}

static int parse_launch(int argc, char *const argv[], struct vm_config *cfg,
			enum cli_verb *verb, char *err, size_t errlen)
{
	const char *config = NULL;
	bool help = false;
	uint64_t seen = 0;
	struct tok t;
	int i;

	/* First pass: syntax, --help and --config, so that the file is applied
	 * before any command-line option whatever the order. */
	for (i = 0; i < argc;) {
		if (next_tok(argc, argv, &i, &t, err, errlen))
			return -1;
		if (t.kind == TOK_HELP)
			help = true;
		if (t.kind != TOK_CONFIG)
			continue;
		if (config) {
			errf(err, errlen, "--config given twice");
			return -1;
		}
		config = t.value;
	}
	if (help) {
		*verb = CLI_HELP;
		return 0;
	}
	if (config) {
		if (strlen(config) >= sizeof(cfg->config_file)) {
			errf(err, errlen, "config file path is too long");
			return -1;
		}
		if (config_file__load(config, cfg, err, errlen))
			return -1;
		memcpy(cfg->config_file, config, strlen(config) + 1);
	}

	for (i = 0; i < argc;) {
		size_t idx;

		if (next_tok(argc, argv, &i, &t, err, errlen))
			return -1;
		if (t.kind != TOK_SETTING)
			continue;
		idx = settings__index(t.s);
		if (t.s->excludes) {
			const struct setting *o = settings__by_option(
				t.s->excludes, strlen(t.s->excludes));

			if (o && (seen & (1ull << settings__index(o)))) {
				errf(err, errlen, "%s cannot be "
				     "combined with --%s", t.spelling,
				     o->option);
				return -1;
			}
		}
		seen |= 1ull << idx;
		if (t.s->set(cfg, t.value, NULL, err, errlen))
			return -1;
	}
	if (settings__validate(cfg, err, errlen))
		return -1;
	*verb = CLI_LAUNCH;
	return 0;
}

int cli__parse(int argc, char *const argv[], struct vm_config *cfg,
	       enum cli_verb *verb, char *err, size_t errlen)
{
	const char *cmd;

	settings__defaults(cfg);
	if (argc < 2) {
		errf(err, errlen, "no command given (%s)", usage);
		return -1;
	}
	cmd = argv[1];
	if (!strcmp(cmd, "launch"))
		return parse_launch(argc - 2, argv + 2, cfg, verb, err, errlen);
	if (!strcmp(cmd, "help") || !strcmp(cmd, "--help") ||
	    !strcmp(cmd, "-help") || !strcmp(cmd, "-h")) {
		int extra = 2;

		if (argc > 2 && !strcmp(cmd, "help") &&
		    !strcmp(argv[2], "launch"))
			extra = 3;
		if (argc > extra) {
			errf(err, errlen, "unexpected argument '%s' "
			     "after %s (help topics: launch)",
			     argv[extra], argv[extra - 1]);
			return -1;
		}
		*verb = CLI_HELP;
		return 0;
	}
	if (!strcmp(cmd, "--version") || !strcmp(cmd, "-version")) {
		if (argc > 2) {
			errf(err, errlen, "unexpected argument '%s' "
			     "after %s", argv[2], cmd);
			return -1;
		}
		*verb = CLI_VERSION;
		return 0;
	}
	if (cmd[0] == '-')
		errf(err, errlen, "option '%s' needs a command before "
		     "it: krg-vmm launch %s ...", cmd, cmd);
	else
		errf(err, errlen, "unknown command '%s' (see krg-vmm "
		     "--help)", cmd);
	return -1;
}
