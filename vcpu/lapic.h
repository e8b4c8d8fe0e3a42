/* Userspace local APIC: xAPIC MMIO and x2APIC MSRs, timer (one-shot,
 * periodic, TSC-deadline), ICR, LVTs, priorities, ISR/IRR/TMR, EOI.
 * The register logic is pure: time comes in through the env, IPIs and
 * wakeups go out through it, so Check tests drive it directly.
 * (Contract header: the vCPU loop relies on these names.) */
#ifndef KRG_VCPU_LAPIC_H
#define KRG_VCPU_LAPIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vcpu/apic.h"

#define LAPIC_DEFAULT_BASE 0xFEE00000ull
#define LAPIC_BUS_HZ 1000000000ull /* timer input before the divider, as KVM */
#define LAPIC_STATE_VERSION 2 /* 2: + pv_eoi_msr; version 1 still loads */
#define LAPIC_STATE_V1_SIZE 232

#define MSR_IA32_APICBASE 0x1B
#define MSR_IA32_TSC_DEADLINE 0x6E0
#define MSR_X2APIC_FIRST 0x800
#define MSR_X2APIC_LAST 0x8FF
/* KVM's paravirtual EOI: the guest names a word in its RAM; bit 0 set by
 * the VMM means "the interrupt in service may be ended by clearing this
 * bit instead of writing EOI". */
#define MSR_KVM_PV_EOI_EN 0x4B564D04
#define KVM_PV_EOI_MSR_ENABLED 1ull

/* IA32_APIC_BASE bits. */
#define APIC_BASE_BSP (1ull << 8)
#define APIC_BASE_EXTD (1ull << 10) /* x2APIC mode */
#define APIC_BASE_EN (1ull << 11)   /* global enable */
#define APIC_BASE_ADDR_MASK 0x000FFFFFFFFFF000ull

/* struct apic_addr.enabled is a bit set: a globally enabled LAPIC that is
 * software-disabled (SVR[8] = 0, e.g. an AP before Linux brings it up)
 * must still be found by INIT, SIPI and NMI, but not by fixed interrupts.
 * Any non-zero value means "globally enabled". */
#define APIC_ADDR_HW_ENABLED 0x1
#define APIC_ADDR_SW_ENABLED 0x2

/* Version register: version 0x14 (integrated APIC), 7 LVT entries
 * (timer, thermal, perf, LINT0, LINT1, error, CMCI), no EOI-broadcast
 * suppression. */
#define LAPIC_VERSION 0x00060014u

/* xAPIC register offsets in the 4 KiB page; the x2APIC MSR of a register
 * is 0x800 + offset / 16. */
#define LAPIC_REG_ID 0x020
#define LAPIC_REG_VERSION 0x030
#define LAPIC_REG_TPR 0x080
#define LAPIC_REG_APR 0x090
#define LAPIC_REG_PPR 0x0A0
#define LAPIC_REG_EOI 0x0B0
#define LAPIC_REG_RRD 0x0C0
#define LAPIC_REG_LDR 0x0D0
#define LAPIC_REG_DFR 0x0E0
#define LAPIC_REG_SVR 0x0F0
#define LAPIC_REG_ISR 0x100 /* 8 registers, 0x10 apart */
#define LAPIC_REG_TMR 0x180
#define LAPIC_REG_IRR 0x200
#define LAPIC_REG_ESR 0x280
#define LAPIC_REG_LVT_CMCI 0x2F0
#define LAPIC_REG_ICR_LO 0x300
#define LAPIC_REG_ICR_HI 0x310
#define LAPIC_REG_LVT_TIMER 0x320
#define LAPIC_REG_LVT_THERMAL 0x330
#define LAPIC_REG_LVT_PERF 0x340
#define LAPIC_REG_LVT_LINT0 0x350
#define LAPIC_REG_LVT_LINT1 0x360
#define LAPIC_REG_LVT_ERROR 0x370
#define LAPIC_REG_TIMER_ICR 0x380
#define LAPIC_REG_TIMER_CCR 0x390
#define LAPIC_REG_TIMER_DCR 0x3E0
#define LAPIC_REG_SELF_IPI 0x3F0 /* x2APIC only */

#define LAPIC_LVT_MASKED (1u << 16)
#define LAPIC_LVT_LEVEL (1u << 15)      /* LINT0/1 trigger mode */
#define LAPIC_LVT_REMOTE_IRR (1u << 14) /* LINT0/1, read-only */
#define LAPIC_LVT_ACTIVE_LOW (1u << 13) /* LINT0/1 input polarity */
#define LAPIC_TIMER_ONESHOT 0u
#define LAPIC_TIMER_PERIODIC 1u
#define LAPIC_TIMER_TSC_DEADLINE 2u
#define LAPIC_SVR_ENABLE (1u << 8)

/* ESR bits this model reports. */
#define LAPIC_ESR_SEND_ILLEGAL (1u << 5)
#define LAPIC_ESR_RECV_ILLEGAL (1u << 6)
#define LAPIC_ESR_ILLEGAL_REG (1u << 7)

/* A periodic timer never fires more often than this: a guest programming
 * a 1-tick period must not turn the host timer thread into a busy loop. */
#define LAPIC_MIN_PERIOD_NS 100000ull

struct lapic_env {
	void *ctx;
	uint64_t (*now_ns)(void *ctx);          /* monotonic host ns */
	uint64_t (*guest_tsc)(void *ctx);       /* the guest's TSC now */
	uint64_t tsc_hz;                        /* guest TSC frequency */
	void (*send_ipi)(void *ctx, const struct apic_msg *msg);
	void (*timer_arm)(void *ctx, uint64_t deadline_ns); /* 0 = cancel */
	void (*kick)(void *ctx);                /* something became pending */
	void (*addr_changed)(void *ctx, const struct apic_addr *addr);
	void (*eoi_level)(void *ctx, uint8_t vector); /* level EOI -> IOAPIC */
};

/* Plain, fixed-width, pointer-free: saved and loaded as it is. */
struct lapic_state {
	uint64_t apic_base_msr;
	uint32_t id, version, tpr, ldr, dfr, svr;
	uint32_t isr[8], irr[8], tmr[8];
	uint32_t esr, icr_lo, icr_hi;
	uint32_t lvt_timer, lvt_thermal, lvt_perf, lvt_lint0, lvt_lint1,
		lvt_error, lvt_cmci;
	uint32_t timer_icr, timer_dcr;
	uint32_t pad0;
	uint32_t initial_id;         /* x2APIC ID; xAPIC ID after reset */
	uint64_t timer_start_ns;     /* when the current count was loaded */
	uint64_t timer_deadline_ns;  /* next expiry, 0 = not running */
	uint64_t tsc_deadline;       /* IA32_TSC_DEADLINE value */
	uint8_t nmi_pending, init_pending, sipi_pending, sipi_vector;
	uint8_t lint0_level, extint_pending, pad1[2];
	uint32_t esr_pending;        /* errors seen since the last ESR write */
	uint8_t lint1_level, pad2[3];
	/* Host clock when lapic__save_state() took the copy; 0 in the live
	 * state.  lapic__post_load() shifts the timer by (now - save_ns), so a
	 * blob restored on another host (another monotonic clock) keeps the
	 * remaining count instead of firing at a meaningless time. */
	uint64_t save_ns;
	uint64_t pv_eoi_msr;         /* MSR_KVM_PV_EOI_EN as the guest wrote it */
};
_Static_assert(sizeof(struct lapic_state) == 240,
	       "lapic_state is a saved format: bump LAPIC_STATE_VERSION");

struct lapic {
	struct lapic_state s;
	pthread_mutex_t lock;
	struct lapic_env env;
	/* Not architectural state (never saved): */
	int32_t vcpu_index;           /* apic_msg.source of our IPIs */
	struct apic_addr published;   /* last addr given to addr_changed */
	bool published_valid;
	/* The vCPU set the guest's PV-EOI bit for the highest vector in
	 * service, so the guest may have ended it without telling us yet. */
	bool pv_eoi_armed;
	/* No two timer interrupts closer than this (0: no limit), on every
	 * path that fires the timer, not only the host timer's wake-up:
	 * where each one costs milliseconds of emulated guest kernel code
	 * (PVM), a busy vCPU would otherwise take its tick at the guest's
	 * full rate.  A later interrupt than asked is what a guest sees on
	 * a busy host anyway.  The last fire time moves with the vCPU. */
	uint64_t timer_min_gap_ns;
	uint64_t timer_last_fire_ns; /* host ns, 0 = never */
};

/* Power-on state; bsp selects the BSP flag in APIC_BASE.  The BSP's LINT0
 * starts as ExtINT, unmasked (as KVM does): a guest that never programs the
 * LAPIC still gets the 8259's interrupts.  vcpu_index defaults to apic_id;
 * set l->vcpu_index after init when they differ.  Publishes the address
 * through env->addr_changed. */
void lapic__init(struct lapic *l, uint32_t apic_id, bool bsp,
		 const struct lapic_env *env);
void lapic__destroy(struct lapic *l);
/* INIT: everything but APIC_BASE and ID back to reset values. */
void lapic__init_reset(struct lapic *l);

/* xAPIC page at the APIC_BASE address; offset within the 4 KiB page. */
void lapic__mmio(struct lapic *l, uint64_t offset, uint8_t *data,
		 uint32_t len, bool is_write);
bool lapic__mmio_enabled(struct lapic *l, uint64_t *base); /* xAPIC page live? */
/* MSRs 0x1B, 0x6E0 and 0x800-0x8FF.  Return 0, or -1 when the guest must
 * get #GP (unknown register, x2APIC access while not in x2APIC mode, ...). */
bool lapic__owns_msr(uint32_t msr);
int lapic__msr_read(struct lapic *l, uint32_t msr, uint64_t *val);
int lapic__msr_write(struct lapic *l, uint32_t msr, uint64_t val);

/* A routed message for this LAPIC (fixed, lowest, NMI, INIT, SIPI, ExtINT). */
void lapic__accept(struct lapic *l, const struct apic_msg *msg);
/* The 8259's output as seen on LINT0 (virtual-wire mode). */
void lapic__set_lint0(struct lapic *l, bool level);
void lapic__set_lint1(struct lapic *l, bool level);
/* The timer's host deadline arrived (called from the timer thread). */
void lapic__timer_expired(struct lapic *l);

/* What the vCPU loop injects next: a vector (IRR above PPR), an ExtINT
 * (then the loop asks the 8259 for the vector), or nothing. */
enum lapic_intr_kind { LAPIC_INTR_NONE, LAPIC_INTR_VECTOR, LAPIC_INTR_EXTINT };
enum lapic_intr_kind lapic__pending_intr(struct lapic *l, int *vector);
/* The vector was injected: IRR -> ISR, priorities updated. */
void lapic__intr_injected(struct lapic *l, int vector);

struct lapic_events {
	bool nmi, init, sipi;
	uint8_t sipi_vector;
};
/* Takes (clears) pending NMI / INIT / SIPI for the vCPU loop. */
struct lapic_events lapic__take_events(struct lapic *l);
bool lapic__has_work(struct lapic *l); /* any interrupt/event pending */
/* NMI, INIT or SIPI pending (these end a halt even with IF=0). */
bool lapic__has_events(struct lapic *l);
/* The vCPU loop took an ExtINT's vector from the 8259 (clears a pending
 * ExtINT message; LINT0's ExtINT is level-driven and clears when the 8259
 * lowers its output). */
void lapic__extint_acked(struct lapic *l);

/* CR8 <-> TPR[7:4] as KVM reports it in kvm_run. */
uint64_t lapic__get_cr8(struct lapic *l);
void lapic__set_cr8(struct lapic *l, uint64_t cr8);

/* PV EOI, KVM's protocol, so Linux uses it unchanged.  The vCPU thread
 * arms it before entering the guest when exactly one thing can be ended:
 * nothing requested, the highest vector in service edge-triggered (a
 * level EOI must reach the IOAPIC at once).  While armed, any new request
 * kicks the vCPU, since the guest may already have ended the vector it
 * still counts as in service.  After every exit the vCPU reads and clears
 * the guest's bit and disarms: a cleared bit is the guest's EOI.
 * set_pv_eoi_msr takes a value the caller has checked (the address must
 * be in guest RAM); INIT clears it, as on KVM. */
uint64_t lapic__pv_eoi_msr(struct lapic *l);
void lapic__set_pv_eoi_msr(struct lapic *l, uint64_t val);
/* True if armed now: the caller sets the guest's bit. */
bool lapic__pv_eoi_arm(struct lapic *l);
void lapic__pv_eoi_disarm(struct lapic *l, bool guest_ended_it);

/* Current addressing facts (what addr_changed last reported). */
void lapic__get_addr(struct lapic *l, struct apic_addr *out);

/* Saving, either way (not both): copy l->s under l->lock (save_ns stays 0;
 * whoever restores shifts timer_start_ns/timer_deadline_ns onto its clock
 * before post_load), or lapic__save_state(), which stamps save_ns so that
 * lapic__post_load() does the shift itself.
 * Restoring: copy a state into l->s, then call lapic__post_load(): it
 * re-arms the host timer (recomputed from the guest TSC in TSC-deadline
 * mode), republishes the address and kicks the vCPU if work is pending. */
void lapic__save_state(struct lapic *l, struct lapic_state *out);
void lapic__post_load(struct lapic *l);

/* Pure destination matching, used by the router.  is_self: the message
 * was sent by the vCPU owning a (for the shorthands). */
bool apic__matches(const struct apic_addr *a, const struct apic_msg *m,
		   bool is_self);

#endif
