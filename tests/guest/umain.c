/* User-mode main: command line, machine discovery, AP bring-up, the test
 * sequence, and the console/verdict/barrier helpers every test uses. */
#include "user.h"

#define MB_BOOT_MAGIC	0x2badb002
#define FW_CFG_PORT_SEL	0x510
#define FW_CFG_PORT_DATA 0x511
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_NB_CPUS	0x0005
#define BRINGUP_TIMEOUT_US 10000000

struct guest_opts opts = { .test = "all", .apic = APIC_XAPIC, .timeout_s = 60,
			    .timer_hz = 100 };
unsigned ncpus = 1;
bool use_x2apic;
bool has_tsc_deadline;
uint8_t sysc_mode = SYSC_UD2;

static char cmdline[512];
/* On a page of its own: across nodes every xchg moves the page, and data
 * that shared it (read by every CPU's hot loop) would move with it. */
static volatile uint32_t print_lock __attribute__((aligned(4096)));
static uint64_t print_lock_timeouts;	/* lines printed without the lock */
static volatile uint32_t failed;
static volatile uint32_t online;
static volatile uint8_t cpu_up[MAXCPU];
static volatile uint32_t go;
static volatile uint32_t bar_count;
static volatile uint64_t bar_gen;
/* For the report of a barrier that never completes: the generation each
 * CPU last arrived at, and whether it sleeps in SYS_WAIT there. */
static volatile uint64_t bar_arrived[MAXCPU];
static volatile uint8_t bar_sleeping[MAXCPU];
static uint64_t watchdog_end;	/* TSC; 0 until calibrated */
static uint64_t boot_tsc;

struct test {
	const char *name;
	void (*fn)(unsigned cpu);
	unsigned min_cpus;
};

static const struct test tests[] = {
	{ "smp", test_smp, 1 },
	{ "ipi", test_ipi, 1 },
	{ "timer", test_timer, 1 },
	{ "ioapic", test_ioapic, 1 },
	{ "work", test_work, 1 },
	{ "spin", test_spin, 1 },
	{ "fallback", test_fallback, 1 },
	{ "triplefault", test_triplefault, 1 },
	{ "reset", test_reset, 1 },
	{ "hltwake", test_hltwake, 1 },
	{ "powerbtn", test_powerbtn, 1 },
	{ "blk", test_blk, 1 },
	{ "migrate", test_migrate, 1 },
	{ "net", test_net, 1 }, { "rng", test_rng, 1 },
	{ "coh-atomic", test_coh_atomic, 1 },
	{ "coh-spinlock", test_coh_spinlock, 1 },
	{ "coh-mp", test_coh_mp, 1 },
	{ "coh-sb", test_coh_sb, 1 },
	{ "coh-falseshare", test_coh_falseshare, 1 },
	{ "coh-sb-nofence", test_coh_sb_nofence, 1 },
	{ "coh-pt", test_coh_pt, 1 },
	{ "bench-pio", bench_pio, 1 },
	{ "bench-mmio", bench_mmio, 1 },
	{ "bench-syscall", bench_syscall, 1 },
	{ "bench-ipi", bench_ipi, 2 },
	{ "bench-timer", bench_timer, 1 },
	{ "bench-dsm", bench_dsm, 2 },
	{ "bench-compute", bench_compute, 1 },
	{ "bench-idle", bench_idle, 1 },
	{ "bench-idle-quiet", bench_idle_quiet, 1 },
};
#define NTESTS (sizeof(tests) / sizeof(tests[0]))

static const struct test *plan[NTESTS];
static unsigned nplan;

static void lock_print(void)
{
	/* Bounded: a CPU that died holding the lock must not silence the
	 * others' failure reports.  Generously (~20 s of pause here): on a
	 * host with more vCPUs than cores a holder printing through I/O
	 * forwarded from another node can take seconds per line, and a
	 * waiter that gives up garbles the lines (counted, reported at the
	 * end). */
	for (unsigned long i = 0; i < 2000000000ul; i++) {
		/* Test, then test-and-set: waiters spin on read copies, which
		 * nodes share, and only the one that sees the lock free takes
		 * the page for writing (spinning on xchg kept taking it away
		 * from the holder, whose unlock then waited behind them). */
		if (!__atomic_load_n(&print_lock, __ATOMIC_RELAXED) &&
		    !__atomic_exchange_n(&print_lock, 1, __ATOMIC_ACQUIRE))
			return;
		cpu_relax();
	}
	__atomic_fetch_add(&print_lock_timeouts, 1, __ATOMIC_RELAXED);
}

static void unlock_print(void)
{
	__atomic_store_n(&print_lock, 0, __ATOMIC_RELEASE);
}

static void vline(const char *prefix, const char *f, va_list ap)
{
	char buf[256];
	size_t n = fmt(buf, sizeof(buf), "%s", prefix);

	n += vfmt(buf + n, sizeof(buf) - n - 1, f, ap);
	buf[n++] = '\n';
	lock_print();
	serial_write(buf, n);
	unlock_print();
}

void say(const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vline("krg-test: ", f, ap);
	va_end(ap);
}

void emit(const char *f, ...)
{
	va_list ap;

	va_start(ap, f);
	vline("", f, ap);
	va_end(ap);
}

void fail(const char *f, ...)
{
	char prefix[64];
	va_list ap;

	if (!__atomic_exchange_n(&failed, 1, __ATOMIC_SEQ_CST)) {
		fmt(prefix, sizeof(prefix), "KRG-TEST FAIL %s: ", opts.test);
		va_start(ap, f);
		vline(prefix, f, ap);
		va_end(ap);
		outb(0xf4, EXIT_FAIL);
	}
	for (;;)
		sys2(SYS_WAIT, 0, 0);
}

void watchdog_check(const char *what)
{
	if (watchdog_end && rdtsc() > watchdog_end)
		fail("watchdog: not done %lu s after boot (timeout=), waiting for %s",
		     opts.timeout_s, what);
}

/* The BSP waited in vain at a barrier: say which CPUs never arrived, and
 * whether they sleep in hlt at the previous one (a wake-up IPI lost by
 * the VMM) or run somewhere else; then fail. */
static void barrier_stuck(const char *what, uint64_t gen)
{
	for (unsigned c = 0; c < ncpus; c++) {
		if (bar_arrived[c] == gen + 1)
			continue;
		say("barrier \"%s\": cpu %u has not arrived: %s barrier generation "
		    "%lu (this one is %lu), %lu wake-up IPIs taken, %lu IPIs, %lu timer "
		    "interrupts", what, c, bar_sleeping[c] ? "sleeps in hlt at" :
		    "last passed", bar_arrived[c], gen + 1, pcpu[c].wakeups,
		    pcpu[c].ipi_total, pcpu[c].timer_count);
		lapic_probe_cpu(c);
	}
	fail("watchdog: not done %lu s after boot (timeout=), waiting for %s",
	     opts.timeout_s, what);
}

/* Generation-counting barrier: the last CPU to arrive resets the count,
 * bumps the generation and wakes the others with a broadcast IPI.  APs
 * wait in hlt (SYS_WAIT rechecks the generation with IF=0, so the wake
 * cannot slip in between) instead of burning host CPU that the other
 * vCPUs need; the BSP spins, so a lost wake-up still ends in a watchdog
 * report at its next barrier. */
void barrier(const char *what)
{
	uint64_t gen = __atomic_load_n(&bar_gen, __ATOMIC_ACQUIRE);
	unsigned me = this_cpu();

	bar_arrived[me] = gen + 1;
	if (atomic_inc32(&bar_count) == ncpus - 1) {
		bar_count = 0;
		__atomic_store_n(&bar_gen, gen + 1, __ATOMIC_RELEASE);
		if (ncpus > 1)
			apic_send_ipi(0, VEC_WAKE | ICR_ASSERT | ICR_ALL_EXCL);
		return;
	}
	while (__atomic_load_n(&bar_gen, __ATOMIC_ACQUIRE) == gen) {
		if (me != 0) {
			bar_sleeping[me] = 1;
			sys2(SYS_WAIT, (uint64_t)&bar_gen, gen);
			bar_sleeping[me] = 0;
			continue;
		}
		cpu_relax();
		if (watchdog_end && rdtsc() > watchdog_end)
			barrier_stuck(what, gen);
	}
}

static bool word_is(const char *w, size_t len, const char *s)
{
	return strlen(s) == len && !strncmp(w, s, len);
}

/* key=value words; anything else (QEMU puts the kernel path first) is
 * ignored, and so are unknown keys, so harnesses may add their own. */
static void parse_cmdline(void)
{
	const char *c = cmdline;

	while (*c) {
		const char *w, *eq;
		size_t len, klen, vlen;

		while (*c == ' ')
			c++;
		w = c;
		while (*c && *c != ' ')
			c++;
		len = (size_t)(c - w);
		for (eq = w; eq < c && *eq != '='; eq++)
			;
		if (eq == c) {
			if (word_is(w, len, "verbose"))
				opts.verbose = true;
			continue;
		}
		klen = (size_t)(eq - w);
		vlen = len - klen - 1;
		eq++;
		if (word_is(w, klen, "test")) {
			if (vlen >= sizeof(opts.test))
				fail("test name too long");
			memcpy(opts.test, eq, vlen);
			opts.test[vlen] = 0;
		} else if (word_is(w, klen, "apic")) {
			if (word_is(eq, vlen, "xapic"))
				opts.apic = APIC_XAPIC;
			else if (word_is(eq, vlen, "x2apic"))
				opts.apic = APIC_X2APIC;
			else if (word_is(eq, vlen, "auto"))
				opts.apic = APIC_AUTO;
			else
				fail("apic= wants xapic, x2apic or auto");
		} else if (word_is(w, klen, "timeout")) {
			if (!parse_u64(eq, vlen, &opts.timeout_s) || !opts.timeout_s ||
			    opts.timeout_s > 86400)
				fail("bad timeout= (seconds, 1..86400)");
		} else if (word_is(w, klen, "cpus")) {
			if (!parse_u64(eq, vlen, &opts.cpus) || !opts.cpus)
				fail("bad cpus=");
		} else if (word_is(w, klen, "hz")) {
			if (!parse_u64(eq, vlen, &opts.timer_hz) || opts.timer_hz < 10 ||
			    opts.timer_hz > 10000)
				fail("bad hz= (10..10000)");
		} else if (word_is(w, klen, "sysc")) {
			if (word_is(eq, vlen, "ud2"))
				sysc_mode = SYSC_UD2;
			else if (word_is(eq, vlen, "int80"))
				sysc_mode = SYSC_INT80;
			else if (word_is(eq, vlen, "syscall"))
				sysc_mode = SYSC_SYSCALL;
			else
				fail("sysc= wants ud2, int80 or syscall");
		} else if (word_is(w, klen, "verbose")) {
			opts.verbose = !word_is(eq, vlen, "0");
		} else if (word_is(w, klen, "rounds")) {
			if (!parse_u64(eq, vlen, &opts.rounds) || !opts.rounds ||
			    opts.rounds > 1000000000)
				fail("bad rounds= (1..1000000000)");
		} else if (word_is(w, klen, "reset_delay")) {
			if (!parse_u64(eq, vlen, &opts.reset_delay_ms) ||
			    opts.reset_delay_ms > 3600000)
				fail("bad reset_delay= (milliseconds, up to 3600000)");
		} else if (word_is(w, klen, "pveoi")) {
			/* read by the kernel side (kmain) before user mode */
			if (!word_is(eq, vlen, "on") && !word_is(eq, vlen, "off"))
				fail("pveoi= wants on or off");
		} else if (word_is(w, klen, "blkmsix")) {
			opts.blk_nomsix = word_is(eq, vlen, "0");
		} else if (word_is(w, klen, "blkro")) {
			opts.blk_ro = !word_is(eq, vlen, "0");
		} else if (word_is(w, klen, "blkcpu")) {
			opts.blk_all = word_is(eq, vlen, "all");
			if (!opts.blk_all &&
			    (!parse_u64(eq, vlen, &opts.blk_cpu) ||
			     opts.blk_cpu >= MAXCPU))
				fail("bad blkcpu= (a cpu number or all)");
		} else if (word_is(w, klen, "blkmib")) {
			if (!parse_u64(eq, vlen, &opts.blk_mib) || !opts.blk_mib ||
			    opts.blk_mib > 64)
				fail("bad blkmib= (1..64)");
		} else if (word_is(w, klen, "iters")) {
			if (!parse_u64(eq, vlen, &opts.iters) || !opts.iters ||
			    opts.iters > 100000000)
				fail("bad iters=");
		}
	}
}

static void read_cmdline(void)
{
	uint32_t *mbi = (uint32_t *)(uint64_t)mb_info;
	const char *src;
	size_t n = 0;

	if (mb_magic != MB_BOOT_MAGIC || mb_info >= (1u << 30) || !(mbi[0] & 4))
		return;
	src = (const char *)(uint64_t)mbi[4];
	if ((uint64_t)src >= (1u << 30))
		return;
	while (src[n] && n < sizeof(cmdline) - 1) {
		cmdline[n] = src[n];
		n++;
	}
	cmdline[n] = 0;
}

static bool plan_add(const char *name)
{
	for (unsigned i = 0; i < NTESTS; i++)
		if (!strncmp(tests[i].name, name, 32)) {
			plan[nplan++] = &tests[i];
			return true;
		}
	return false;
}

static void make_plan(void)
{
	if (!strncmp(opts.test, "all", 32)) {
		plan_add("smp");
		plan_add("ipi");
		plan_add("timer");
	} else if (!strncmp(opts.test, "bench", 32)) {
		plan_add("bench-pio");
		plan_add("bench-mmio");
		plan_add("bench-syscall");
		if (ncpus >= 2)
			plan_add("bench-ipi");
		plan_add("bench-timer");
	} else if (!strncmp(opts.test, "coherence", 32)) {
		plan_add("coh-atomic");
		plan_add("coh-spinlock");
		plan_add("coh-mp");
		plan_add("coh-sb");
		plan_add("coh-falseshare");
		plan_add("coh-pt");
	} else if (!plan_add(opts.test)) {
		fail("unknown test (smp ipi timer ioapic all work spin fallback "
		     "triplefault reset hltwake powerbtn blk bench bench-pio bench-mmio "
		     "bench-syscall bench-ipi bench-timer bench-dsm bench-compute "
		     "bench-idle bench-idle-quiet coherence coh-atomic "
		     "coh-spinlock coh-mp coh-sb coh-falseshare coh-sb-nofence coh-pt)");
	}
	for (unsigned i = 0; i < nplan; i++)
		if (ncpus < plan[i]->min_cpus)
			fail("%s needs at least %u CPUs, have %u", plan[i]->name,
			     plan[i]->min_cpus, ncpus);
}

static unsigned fw_cfg_cpus(void)
{
	char sig[4];
	unsigned n;

	outw(FW_CFG_PORT_SEL, FW_CFG_SIGNATURE);
	for (int i = 0; i < 4; i++)
		sig[i] = (char)inb(FW_CFG_PORT_DATA);
	if (memcmp(sig, "QEMU", 4))
		say("fw_cfg: no \"QEMU\" signature, reading the CPU count anyway");
	outw(FW_CFG_PORT_SEL, FW_CFG_NB_CPUS);
	n = inb(FW_CFG_PORT_DATA);
	n |= (unsigned)inb(FW_CFG_PORT_DATA) << 8;
	return n;
}

static void bsp_init(void)
{
	uint32_t r[4];
	unsigned fw;

	serial_init();
	serial_write("\n", 1);	/* firmware may have left a partial line */
	read_cmdline();
	say("krg-test-guest starting, cmdline \"%s\"", cmdline);
	parse_cmdline();
	test_name = opts.test;

	fw = fw_cfg_cpus();
	if (!fw || fw > MAXCPU) {
		if (!opts.cpus || opts.cpus > MAXCPU)
			fail("fw_cfg reports %u CPUs (want 1..%u; cpus=N overrides)", fw,
			     MAXCPU);
		say("fw_cfg reports %u CPUs; using cpus=%lu", fw, opts.cpus);
		fw = (unsigned)opts.cpus;
	}
	ncpus = fw;
	if (opts.cpus) {
		if (opts.cpus > fw)
			fail("cpus=%lu but fw_cfg reports only %u", opts.cpus, fw);
		ncpus = (unsigned)opts.cpus;
	}

	cpuid(1, 0, r);
	has_tsc_deadline = r[2] & (1u << 24);
	if (opts.apic == APIC_X2APIC && !(r[2] & (1u << 21)))
		fail("apic=x2apic but CPUID.1:ECX.x2APIC is clear");
	use_x2apic = opts.apic == APIC_X2APIC ||
		     (opts.apic == APIC_AUTO && (r[2] & (1u << 21)));
	make_plan();
	say("%u cpus (fw_cfg %u), %s, tsc-deadline %s, kernel calls via %s, "
	    "return via %s, pv-eoi %s", ncpus, fw, use_x2apic ? "x2apic" : "xapic",
	    has_tsc_deadline ? "yes" : "no",
	    sysc_mode == SYSC_UD2 ? "ud2" : sysc_mode == SYSC_INT80 ? "int $0x80" :
	    "syscall", sysc_mode != SYSC_SYSCALL ? "iretq" :
	    uret_mode == URET_SYSRET ? "sysretq" :
	    uret_mode == URET_SYSEXIT ? "sysexitq" : "iretq",
	    pcpu[0].pv_eoi_on ? "on" : "off");
	{
		static const char msg[] = "krg-test: kernel console (SYS_PUTS) ok\n";

		lock_print();
		sys2(SYS_PUTS, (uint64_t)msg, sizeof(msg) - 1);
		unlock_print();
	}
	lapic_setup(0);
	tsc_calibrate();
	boot_tsc = rdtsc();
	watchdog_end = boot_tsc + opts.timeout_s * tsc_hz;
}

static void bring_up_aps(void)
{
	uint64_t t0 = rdtsc();
	uint64_t end = t0 + tsc_from_us(BRINGUP_TIMEOUT_US);

	online = 1;
	if (ncpus == 1)
		return;
	start_aps(ncpus);
	while (online < ncpus) {
		if (rdtsc() > end) {
			char missing[192];
			size_t n = 0;

			for (unsigned c = 1; c < ncpus; c++)
				if (!cpu_up[c] && n + 24 < sizeof(missing))
					n += fmt(missing + n, sizeof(missing) - n, " %u%s", c,
						 pcpu[c].self ? " (reached kmain)" : "");
			fail("smp: only %u of %u CPUs came up; missing:%s", online,
			     ncpus, missing);
		}
		cpu_relax();
	}
	say("smp: all %u cpus up after %lu us", ncpus, tsc_to_us(rdtsc() - t0));
}

static uint64_t bad_if_total(void)
{
	uint64_t n = 0;

	for (unsigned c = 0; c < ncpus; c++)
		n += pcpu[c].bad_if;
	return n;
}

static void run_plan(unsigned cpu)
{
	for (unsigned i = 0; i < nplan; i++) {
		uint64_t t0 = rdtsc(), bad0 = bad_if_total();

		barrier("test start");
		if (cpu == 0)
			cur_phase = plan[i]->name;
		plan[i]->fn(cpu);
		barrier(plan[i]->name);
		if (cpu)
			continue;
		if (bad_if_total() != bad0)
			fail("%s: %lu interrupt/trap frames from user mode carried IF=0 "
			     "(RFLAGS.IF lost by the VMM/KVM)", plan[i]->name,
			     bad_if_total() - bad0);
		say("%s: ok (%lu ms)", plan[i]->name, tsc_to_us(rdtsc() - t0) / 1000);
	}
}

/* A pass ends with an ACPI S5 power-off, so the VMM exits 0: SLP_TYP 5 is
 * krg-vmm's \_S5, 0 is QEMU PIIX4's; each ignores the other's value.  If
 * neither took, the debug-exit port reports the pass. */
static void acpi_poweroff(void)
{
	outw(0x604, (5 << 10) | (1 << 13));
	outw(0x604, (0 << 10) | (1 << 13));
}

void user_start(uint64_t arg)
{
	unsigned cpu = arg & 0xff;

	if (arg & 0x100) {
		if (cpu != 0) {
			serial_init();
			fail("the BSP has APIC ID %u; this guest wants 0 (IDs 0..N-1)", cpu);
		}
		bsp_init();
		bring_up_aps();
		__atomic_store_n(&go, 1, __ATOMIC_RELEASE);
		run_plan(cpu);
		if (pcpu[0].pv_eoi_on) {
			uint64_t hits = 0;

			for (unsigned c = 0; c < ncpus; c++)
				hits += pcpu[c].pv_eoi_hits;
			say("pv-eoi: %lu interrupts ended through shared memory", hits);
		}
		say("total %lu ms", tsc_to_us(rdtsc() - boot_tsc) / 1000);
		if (print_lock_timeouts)
			say("print lock: %lu waits gave up (lines may be mixed)",
			    print_lock_timeouts);
		emit("KRG-TEST PASS %s", opts.test);
		acpi_poweroff();
		outb(0xf4, EXIT_PASS);
		for (;;)
			sys2(SYS_WAIT, 0, 0);
	}
	if (cpu >= ncpus) {
		/* Started although not asked for (cpus=): stay out of the way. */
		for (;;)
			sys2(SYS_WAIT, 0, 0);
	}
	lapic_setup(cpu);
	say("cpu %u up", cpu);
	cpu_up[cpu] = 1;
	atomic_inc32(&online);
	while (!__atomic_load_n(&go, __ATOMIC_ACQUIRE)) {
		cpu_relax();
		watchdog_check("the BSP to start the tests");
	}
	run_plan(cpu);
	for (;;)
		sys2(SYS_WAIT, 0, 0);
}
