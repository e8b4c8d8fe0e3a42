/* Kernel-mode half of the test guest: per-CPU data, descriptor tables,
 * syscalls, exception reports.  Kept small because PVM emulates every
 * instruction of it. */
#ifndef KRG_GUEST_KERNEL_H
#define KRG_GUEST_KERNEL_H

#include <stddef.h>
#include <stdint.h>
#include "defs.h"

struct pcpu {
	struct pcpu *self;
	uint64_t kstack_top;
	uint64_t user_rsp;
	uint64_t cpu;
	uint8_t x2apic;
	uint8_t pv_eoi_on;	/* KVM PV EOI enabled on this CPU */
	uint8_t pad0[6];
	volatile uint64_t timer_count;
	volatile uint64_t timer_tsc;	/* TSC read by the last timer interrupt */
	volatile uint64_t timer_user;	/* timer interrupts that hit CPL3 */
	volatile uint64_t spurious;
	volatile uint64_t lvt_error;
	volatile uint64_t pit_count;
	volatile uint64_t ipi_total;
	volatile uint64_t bad_if;	/* user frames with IF=0, repaired */
	volatile uint64_t wakeups;	/* VEC_WAKE IPIs (barrier wake-ups) */
	volatile uint64_t pv_eoi;	/* KVM PV EOI word: bit 0 set by the VMM */
	volatile uint64_t pv_eoi_hits;	/* EOIs that cleared it instead of exiting */
	volatile uint32_t ipi_cnt[MAXCPU];	/* by sender */
	/* Written by the VEC_PROBE handler: the LAPIC as the CPU sees it. */
	volatile uint32_t probe_isr[8], probe_irr[8], probe_ppr, probe_count;
	volatile uint64_t sci_count;	/* VEC_SCI: ACPI SCIs (test=powerbtn) */
	volatile uint64_t blk_count;	/* VEC_BLK: virtio-blk MSI-X (test=blk) */
	uint8_t pad2[PCPU_SIZE - PCPU_BLK_COUNT - 8];
} __attribute__((aligned(4096)));

_Static_assert(offsetof(struct pcpu, kstack_top) == PCPU_KSTACK, "pcpu");
_Static_assert(offsetof(struct pcpu, user_rsp) == PCPU_USER_RSP, "pcpu");
_Static_assert(offsetof(struct pcpu, cpu) == PCPU_CPU, "pcpu");
_Static_assert(offsetof(struct pcpu, x2apic) == PCPU_X2APIC, "pcpu");
_Static_assert(offsetof(struct pcpu, timer_count) == PCPU_TIMER_COUNT, "pcpu");
_Static_assert(offsetof(struct pcpu, timer_tsc) == PCPU_TIMER_TSC, "pcpu");
_Static_assert(offsetof(struct pcpu, timer_user) == PCPU_TIMER_USER, "pcpu");
_Static_assert(offsetof(struct pcpu, spurious) == PCPU_SPURIOUS, "pcpu");
_Static_assert(offsetof(struct pcpu, lvt_error) == PCPU_LVT_ERROR, "pcpu");
_Static_assert(offsetof(struct pcpu, pit_count) == PCPU_PIT_COUNT, "pcpu");
_Static_assert(offsetof(struct pcpu, ipi_total) == PCPU_IPI_TOTAL, "pcpu");
_Static_assert(offsetof(struct pcpu, bad_if) == PCPU_BAD_IF, "pcpu");
_Static_assert(offsetof(struct pcpu, wakeups) == PCPU_WAKEUPS, "pcpu");
_Static_assert(offsetof(struct pcpu, pv_eoi_on) == PCPU_PV_EOI_ON, "pcpu");
_Static_assert(offsetof(struct pcpu, pv_eoi) == PCPU_PV_EOI, "pcpu");
_Static_assert(offsetof(struct pcpu, pv_eoi_hits) == PCPU_PV_EOI_HITS, "pcpu");
_Static_assert(offsetof(struct pcpu, ipi_cnt) == PCPU_IPICNT, "pcpu");
_Static_assert(offsetof(struct pcpu, probe_isr) == PCPU_PROBE, "pcpu");
_Static_assert(offsetof(struct pcpu, sci_count) == PCPU_SCI_COUNT, "pcpu");
_Static_assert(offsetof(struct pcpu, blk_count) == PCPU_BLK_COUNT, "pcpu");
_Static_assert(sizeof(struct pcpu) == PCPU_SIZE, "pcpu");

extern struct pcpu pcpu[MAXCPU];
extern uint8_t uret_mode;
/* For exception reports (set by user mode): the test= name that goes on
 * the FAIL line, and the phase (sub-test) that was running. */
extern const char *volatile test_name;
extern const char *volatile cur_phase;
extern uint32_t mb_magic, mb_info;

void kmain(uint64_t cpu, uint64_t bsp);
uint64_t sys_dispatch(uint64_t a0, uint64_t a1, uint64_t a2, uint64_t nr);
void exception_report(uint64_t *frame);
void lapic_probe_snapshot(void);
void syscall_not_cpl0(void);

/* entry.S */
void enter_user(uint64_t rip, uint64_t rsp, uint64_t arg);
void k_wait_irq(void);
void syscall_entry(void);

/* kchecks.S; fb_in (test_fallback.c) holds the bit-count cases' inputs. */
extern uint64_t fb_in[2 * FB_NBITS];
void fb_bitcount(uint64_t *out);
void fb_segments(uint64_t *out);
void k_fallback(uint64_t *out, uint64_t smap);
void k_triple_fault(void) __attribute__((noreturn));
extern char k_triple_ud2[];

/* The user half's entry point (umain.c). */
void user_start(uint64_t cpu);

#endif
