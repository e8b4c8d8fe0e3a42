/* User-mode (CPL3) half of the test guest: where all real work runs.
 * User mode has IOPL=3 (port I/O) and the LAPIC page mapped with U/S, so
 * only MSRs, hlt and x2APIC accesses need the kernel. */
#ifndef KRG_GUEST_USER_H
#define KRG_GUEST_USER_H

#include <stdbool.h>
#include <stdint.h>
#include "defs.h"
#include "io.h"
#include "kernel.h"
#include "lib.h"

/* --- syscalls ------------------------------------------------------ */
extern uint8_t sysc_mode;	/* SYSC_*, from sysc= */

/* One service call; the three instructions share one register
 * convention (rax = number, rdi/rsi/rdx, result in rax). */
static inline uint64_t sys3(uint64_t nr, uint64_t a0, uint64_t a1, uint64_t a2)
{
	register uint64_t rdx __asm__("rdx") = a2;

	if (sysc_mode == SYSC_UD2)
		__asm__ volatile("ud2"
				 : "+a"(nr), "+D"(a0), "+S"(a1), "+r"(rdx)
				 :
				 : "rcx", "r8", "r9", "r10", "r11", "memory");
	else if (sysc_mode == SYSC_INT80)
		__asm__ volatile("int $0x80"
				 : "+a"(nr), "+D"(a0), "+S"(a1), "+r"(rdx)
				 :
				 : "rcx", "r8", "r9", "r10", "r11", "memory");
	else
		__asm__ volatile("syscall"
				 : "+a"(nr), "+D"(a0), "+S"(a1), "+r"(rdx)
				 :
				 : "rcx", "r8", "r9", "r10", "r11", "memory");
	return nr;
}

#define sys0(nr)	sys3(nr, 0, 0, 0)
#define sys1(nr, a)	sys3(nr, a, 0, 0)
#define sys2(nr, a, b)	sys3(nr, a, b, 0)

/* --- options and machine facts (umain.c) ---------------------------- */
enum apic_choice { APIC_XAPIC, APIC_X2APIC, APIC_AUTO };

struct guest_opts {
	char test[32];
	enum apic_choice apic;
	uint64_t timeout_s;	/* watchdog, default 60 */
	uint64_t cpus;		/* 0: all that fw_cfg reports */
	uint64_t iters;		/* benchmark / coh-* iterations, 0: the default */
	uint64_t timer_hz;	/* periodic rate in test=timer/work/spin, default 100 */
	uint64_t rounds;	/* test=work rounds, 0: the default */
	uint64_t reset_delay_ms; /* test=reset waits this long first */
	bool blk_ro;		/* test=blk: the disk is read-only (blkro=1) */
	bool blk_nomsix;	/* test=blk: leave MSI-X off (blkmsix=0) */
	uint64_t blk_cpu;	/* test=blk: the CPU doing the I/O (blkcpu=) */
	bool blk_all;		/* test=blk: every CPU, own queue (blkcpu=all) */
	uint64_t blk_mib;	/* test=blk: MiB per pass (blkmib=), 0: 2 */
	bool verbose;
};

extern struct guest_opts opts;
extern unsigned ncpus;		/* CPUs taking part, APIC IDs 0..ncpus-1 */
extern bool use_x2apic;
extern bool has_tsc_deadline;

/* --- console, verdicts, synchronisation (umain.c) ------------------- */
/* One line prefixed "krg-test: ", serialised between CPUs. */
void say(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* One line without the prefix (KRG-BENCH, KRG-TEST lines). */
void emit(const char *f, ...) __attribute__((format(printf, 1, 2)));
/* Print "KRG-TEST FAIL <test>: <reason>", exit through port 0xf4. */
void fail(const char *f, ...) __attribute__((format(printf, 1, 2), noreturn));
/* Rendezvous of all ncpus CPUs; `what` names it in a watchdog failure. */
void barrier(const char *what);
/* Fail if the global watchdog (timeout=) has expired. */
void watchdog_check(const char *what);

/* This CPU's index: user mode reads it through the per-CPU GS base. */
static inline unsigned this_cpu(void)
{
	uint64_t c;

	__asm__ volatile("movq %%gs:%c1, %0" : "=r"(c) : "i"(PCPU_CPU));
	return (unsigned)c;
}

static inline uint32_t atomic_inc32(volatile uint32_t *p)
{
	return __atomic_fetch_add(p, 1, __ATOMIC_SEQ_CST);
}

/* --- time (timecal.c) ---------------------------------------------- */
extern uint64_t tsc_hz;
void tsc_calibrate(void);
uint64_t tsc_from_us(uint64_t us);
uint64_t tsc_to_ns(uint64_t cycles);
uint64_t tsc_to_us(uint64_t cycles);
void delay_us(uint64_t us);
/* Spin until *p >= v or `us` microseconds pass; false on timeout. */
bool wait_u32_ge(volatile uint32_t *p, uint32_t v, uint64_t us);
bool wait_u64_ge(volatile uint64_t *p, uint64_t v, uint64_t us);

/* --- LAPIC from user mode (apic.c) --------------------------------- */
#define APIC_ID		0x20
#define APIC_VER	0x30
#define APIC_TPR	0x80
#define APIC_EOI	0xb0
#define APIC_LDR	0xd0
#define APIC_DFR	0xe0
#define APIC_SVR	0xf0
#define APIC_ESR	0x280
#define APIC_ICR_LO	0x300
#define APIC_ICR_HI	0x310
#define APIC_LVT_TIMER	0x320
#define APIC_LVT_LINT0	0x350
#define APIC_LVT_ERROR	0x370
#define APIC_TMICT	0x380
#define APIC_TMCCT	0x390
#define APIC_TDCR	0x3e0
#define APIC_SELF_IPI	0x3f0

#define ICR_LOGICAL	(1u << 11)
#define ICR_ASSERT	(1u << 14)
#define ICR_SELF	(1u << 18)
#define ICR_ALL_INCL	(2u << 18)
#define ICR_ALL_EXCL	(3u << 18)

#define LVT_MASKED	(1u << 16)
#define LVT_PERIODIC	(1u << 17)
#define LVT_TSC_DEADLINE (2u << 17)

uint32_t apic_read(uint32_t reg);
void apic_write(uint32_t reg, uint32_t v);
/* ICR write from user mode (xAPIC MMIO); through the kernel in x2APIC. */
void apic_send_ipi(uint32_t dest, uint32_t lo);
/* ICR write done by the kernel (SYS_SEND_IPI), either mode. */
void apic_send_ipi_kernel(uint32_t dest, uint32_t lo);
/* Enable this CPU's LAPIC in the chosen mode, set up logical IDs. */
void lapic_setup(unsigned cpu);
/* The logical ID lapic_setup() found/gave this CPU (LDR). */
extern uint32_t cpu_ldr[MAXCPU];
/* INIT/SIPI/SIPI to APIC IDs 1..n-1. */
void start_aps(unsigned n);
/* " 0x20 0x23" for the bits of a 256-bit LAPIC bank, without `skip`
 * (-1: none); "" when empty.  Returns the number of vectors. */
unsigned lapic_vectors(const volatile uint32_t bank[8], int skip, char *buf,
		       size_t size);
/* Vectors that stay in service in this CPU's LAPIC (over 30 ms); user
 * mode runs no interrupt handler, so there it must be none. */
unsigned lapic_isr_stuck(char *buf, size_t size);
/* Diagnosis of a CPU that stopped answering: a VEC_PROBE IPI (a class
 * above every other vector here) makes it snapshot its LAPIC; prints what
 * it saw, or that it did not even take that. */
void lapic_probe_cpu(unsigned cpu);

/* LAPIC timer ticks per second at divide-by-16, measured against the TSC
 * (test_timer.c); prints the result. */
uint64_t lapic_calibrate(unsigned cpu);

/* --- work that can be checked (work.c) ----------------------------- */
uint64_t lcg_run(uint64_t x, uint64_t steps);
uint64_t lcg_jump(uint64_t x, uint64_t steps);
#define LCG_A 6364136223846793005ull
#define LCG_C 1442695040888963407ull
unsigned sieve_count(uint8_t *bits, unsigned limit);
void sort_i64(int64_t *a, unsigned n);

/* --- tests ------------------------------------------------------------ */
void test_smp(unsigned cpu);
void test_ipi(unsigned cpu);
void test_timer(unsigned cpu);
void test_ioapic(unsigned cpu);
void test_work(unsigned cpu);
void test_spin(unsigned cpu);
void test_fallback(unsigned cpu);
void test_triplefault(unsigned cpu);
void test_reset(unsigned cpu);
void test_hltwake(unsigned cpu);
void test_powerbtn(unsigned cpu);
void test_blk(unsigned cpu);
void test_migrate(unsigned cpu); /* test_migrate.c (t_migrate.sh) */
void test_net(unsigned cpu); void test_rng(unsigned cpu); /* test_net.c, test_rng.c */
/* test_coherence.c: test=coherence runs the first five */
void test_coh_atomic(unsigned cpu);
void test_coh_spinlock(unsigned cpu);
void test_coh_mp(unsigned cpu);
void test_coh_sb(unsigned cpu);
void test_coh_falseshare(unsigned cpu);
void test_coh_sb_nofence(unsigned cpu);
void test_coh_pt(unsigned cpu);
void bench_pio(unsigned cpu);
void bench_mmio(unsigned cpu);
void bench_syscall(unsigned cpu);
void bench_ipi(unsigned cpu);
void bench_timer(unsigned cpu);
/* bench_dsm.c: cluster benchmarks (bench/cluster.sh) */
void bench_dsm(unsigned cpu);
void bench_compute(unsigned cpu);
void bench_idle(unsigned cpu);
void bench_idle_quiet(unsigned cpu);

#endif
