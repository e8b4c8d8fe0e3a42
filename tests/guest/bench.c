/* test=bench-*: microbenchmarks of the exits a VMM handles, measured with
 * rdtsc in user mode.  Results go out as "KRG-BENCH <name> <value> <unit>"
 * lines for bench/ to collect; iters= overrides the iteration counts. */
#include "user.h"

#define MAX_SAMPLES	16384
#define NULL_PORT	0x80	/* POST port: a no-op in QEMU and krg-vmm */
#define MSR_TSC_DEADLINE 0x6e0
#define TIMER_INTERVAL_US 100

static int64_t samples[MAX_SAMPLES];
static volatile uint32_t ipi_stop;

static uint64_t iters_or(uint64_t def)
{
	return opts.iters ? opts.iters : def;
}

static int64_t cyc_to_ns(int64_t c)
{
	return c < 0 ? -(int64_t)tsc_to_ns((uint64_t)-c) : (int64_t)tsc_to_ns((uint64_t)c);
}

static void bench_line(const char *name, int64_t value, const char *unit)
{
	emit("KRG-BENCH %s %ld %s", name, value, unit);
}

/* Median/mean/min/max of samples[0..n) in TSC cycles, reported in ns. */
static void report_dist(const char *name, const char *what, unsigned n)
{
	int64_t sum = 0;
	char key[64];

	for (unsigned i = 0; i < n; i++)
		sum += samples[i];
	sort_i64(samples, n);
	say("bench %s: %u %s, median %ld ns, mean %ld ns, min %ld ns, max %ld ns",
	    name, n, what, cyc_to_ns(samples[n / 2]), cyc_to_ns(sum / (int64_t)n),
	    cyc_to_ns(samples[0]), cyc_to_ns(samples[n - 1]));
	fmt(key, sizeof(key), "%s-median", name);
	bench_line(key, cyc_to_ns(samples[n / 2]), "ns");
	fmt(key, sizeof(key), "%s-mean", name);
	bench_line(key, cyc_to_ns(sum / (int64_t)n), "ns");
}

/* A loop of one operation, timed as a whole. */
static void report_loop(const char *name, const char *what, uint64_t n, uint64_t cycles)
{
	uint64_t per = cycles / n;

	say("bench %s: %lu iterations, %lu cycles/iter, %lu ns/iter (%s)", name, n, per,
	    tsc_to_ns(cycles) / n, what);
	bench_line(name, (int64_t)(tsc_to_ns(cycles) / n), "ns");
}

void bench_pio(unsigned cpu)
{
	uint64_t n = iters_or(10000), t0;

	if (cpu)
		return;
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		outb(NULL_PORT, 0);
	report_loop("pio-out", "user-mode outb to port 0x80", n, rdtsc() - t0);
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		(void)inb(NULL_PORT);
	report_loop("pio-in", "user-mode inb from port 0x80", n, rdtsc() - t0);
}

void bench_mmio(unsigned cpu)
{
	uint64_t n = iters_or(10000), t0;

	if (cpu)
		return;
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		(void)apic_read(APIC_VER);
	report_loop(use_x2apic ? "lapic-read-x2apic" : "lapic-mmio-read",
		    use_x2apic ? "LAPIC version via syscall + rdmsr" :
		    "user-mode LAPIC version register read", n, rdtsc() - t0);
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		apic_write(APIC_TPR, 0);
	report_loop(use_x2apic ? "lapic-write-x2apic" : "lapic-mmio-write",
		    use_x2apic ? "LAPIC TPR via syscall + wrmsr" :
		    "user-mode LAPIC TPR write", n, rdtsc() - t0);
}

void bench_syscall(unsigned cpu)
{
	uint64_t n = iters_or(2000), t0;

	if (cpu)
		return;
	t0 = rdtsc();
	for (uint64_t i = 0; i < n; i++)
		sys0(SYS_NOP);
	report_loop("syscall", "null syscall round trip, kernel mode emulated under PVM",
		    n, rdtsc() - t0);
}

/* CPU 0 writes CPU 1's IPI into its own ICR from user mode; CPU 1's
 * handler only counts, and CPU 1's user-mode loop answers the same way.
 * Round trip = two ICR writes, two deliveries, two handlers. */
void bench_ipi(unsigned cpu)
{
	unsigned n = (unsigned)iters_or(2000);
	volatile uint32_t *pong = &pcpu[0].ipi_cnt[1], *ping = &pcpu[1].ipi_cnt[0];
	uint32_t base = *pong, seen = *ping;

	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	ipi_stop = 0;
	barrier("bench-ipi start");
	if (cpu == 1) {
		while (!ipi_stop) {
			if (*ping != seen) {
				seen++;
				apic_send_ipi(0, (VEC_IPI_BASE + 1) | ICR_ASSERT);
			} else {
				cpu_relax();
				watchdog_check("bench-ipi pings");
			}
		}
		return;
	}
	if (cpu != 0)
		return;
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = rdtsc();

		apic_send_ipi(1, VEC_IPI_BASE | ICR_ASSERT);
		if (!wait_u32_ge(pong, base + i + 1, 1000000))
			fail("bench-ipi: round trip %u got no answer within 1 s", i);
		samples[i] = (int64_t)(rdtsc() - t0);
	}
	ipi_stop = 1;
	report_dist(use_x2apic ? "ipi-rtt-x2apic" : "ipi-rtt", use_x2apic ? "round trips cpu0->cpu1->cpu0 (x2apic, ICR via syscall)" :
		    "round trips cpu0->cpu1->cpu0 (ICR written from user mode)", n);
}

static void timer_runs(unsigned n, bool deadline, uint64_t lapic_hz)
{
	struct pcpu *p = &pcpu[0];
	uint64_t interval = tsc_from_us(TIMER_INTERVAL_US);

	apic_write(APIC_LVT_TIMER, (deadline ? LVT_TSC_DEADLINE : 0) | VEC_TIMER);
	for (unsigned i = 0; i < n; i++) {
		uint64_t c0 = p->timer_count, due;

		if (deadline) {
			due = rdtsc() + interval;
			sys2(SYS_WRMSR, MSR_TSC_DEADLINE, due);
		} else {
			due = rdtsc() + interval;
			apic_write(APIC_TMICT,
				   (uint32_t)(lapic_hz * TIMER_INTERVAL_US / 1000000));
		}
		if (!wait_u64_ge(&p->timer_count, c0 + 1, 1000000))
			fail("bench-timer: %s timer did not fire within 1 s",
			     deadline ? "tsc-deadline" : "one-shot");
		samples[i] = (int64_t)(p->timer_tsc - due);
	}
	apic_write(APIC_LVT_TIMER, LVT_MASKED | VEC_TIMER);
}

/* Latency from the programmed expiry to the handler's rdtsc.  One-shot
 * expiry is rdtsc before the TMICT write plus the interval (so it also
 * contains the write's own exit); TSC-deadline expiry is exact. */
void bench_timer(unsigned cpu)
{
	unsigned n = (unsigned)iters_or(500);
	uint64_t hz;

	if (cpu)
		return;
	if (n > MAX_SAMPLES)
		n = MAX_SAMPLES;
	hz = lapic_calibrate(0);
	apic_write(APIC_TDCR, 0x3);
	timer_runs(n, false, hz);
	report_dist("timer-oneshot-latency", "one-shot expiries (100 us)", n);
	if (has_tsc_deadline) {
		timer_runs(n, true, hz);
		report_dist("timer-deadline-latency", "tsc-deadline expiries (100 us)", n);
	}
}
