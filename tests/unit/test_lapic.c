/* The userspace local APIC: registers (xAPIC page and x2APIC MSRs),
 * APIC_BASE, timer with a fake clock, ICR decoding, priorities, EOI,
 * acceptance of routed messages, LINT pins and restore. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/lapic.h"

#define MAX_MSGS 16

struct fake {
	struct lapic l;
	uint64_t now, tsc;
	uint64_t armed;
	int arm_calls;
	struct apic_msg sent[MAX_MSGS];
	int nsent;
	bool loop_self;      /* deliver every sent message back to l */
	bool lock_was_free;  /* l->lock was free in every send/eoi callback */
	int kicks;
	struct apic_addr addr;
	int addr_calls;
	int eoi[MAX_MSGS];
	int neoi;
};

static uint64_t f_now(void *ctx)
{
	return ((struct fake *)ctx)->now;
}

static uint64_t f_tsc(void *ctx)
{
	return ((struct fake *)ctx)->tsc;
}

static void check_unlocked(struct fake *f)
{
	if (pthread_mutex_trylock(&f->l.lock) == 0)
		pthread_mutex_unlock(&f->l.lock);
	else
		f->lock_was_free = false;
}

static void f_send(void *ctx, const struct apic_msg *m)
{
	struct fake *f = ctx;

	check_unlocked(f);
	if (f->nsent < MAX_MSGS)
		f->sent[f->nsent++] = *m;
	if (f->loop_self)
		lapic__accept(&f->l, m);
}

static void f_arm(void *ctx, uint64_t deadline)
{
	struct fake *f = ctx;

	f->armed = deadline;
	f->arm_calls++;
}

static void f_kick(void *ctx)
{
	((struct fake *)ctx)->kicks++;
}

static void f_addr(void *ctx, const struct apic_addr *a)
{
	struct fake *f = ctx;

	f->addr = *a;
	f->addr_calls++;
}

static void f_eoi(void *ctx, uint8_t vector)
{
	struct fake *f = ctx;

	check_unlocked(f);
	if (f->neoi < MAX_MSGS)
		f->eoi[f->neoi++] = vector;
}

static struct fake *fake_new(uint32_t id, bool bsp)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct lapic_env env = {
		.ctx = f, .now_ns = f_now, .guest_tsc = f_tsc,
		.tsc_hz = 2000000000ull, .send_ipi = f_send,
		.timer_arm = f_arm, .kick = f_kick, .addr_changed = f_addr,
		.eoi_level = f_eoi,
	};

	ck_assert_ptr_nonnull(f);
	f->lock_was_free = true;
	lapic__init(&f->l, id, bsp, &env);
	return f;
}

static void fake_free(struct fake *f)
{
	lapic__destroy(&f->l);
	free(f);
}

static uint32_t rd(struct fake *f, uint32_t reg)
{
	uint32_t v;

	lapic__mmio(&f->l, reg, (uint8_t *)&v, 4, false);
	return v;
}

static void wr(struct fake *f, uint32_t reg, uint32_t v)
{
	lapic__mmio(&f->l, reg, (uint8_t *)&v, 4, true);
}

static uint64_t msr_rd(struct fake *f, uint32_t msr)
{
	uint64_t v = 0xDEAD;

	ck_assert_int_eq(lapic__msr_read(&f->l, msr, &v), 0);
	return v;
}

static void msr_wr(struct fake *f, uint32_t msr, uint64_t v)
{
	ck_assert_int_eq(lapic__msr_write(&f->l, msr, v), 0);
}

static uint32_t x2(uint32_t reg)
{
	return MSR_X2APIC_FIRST + (reg >> 4);
}

static void enable_sw(struct fake *f)
{
	wr(f, LAPIC_REG_SVR, LAPIC_SVR_ENABLE | 0xFF);
}

static void to_x2apic(struct fake *f)
{
	msr_wr(f, MSR_IA32_APICBASE, LAPIC_DEFAULT_BASE | APIC_BASE_EN |
				     APIC_BASE_EXTD);
}

static struct apic_msg fixed(uint8_t vector, bool level)
{
	struct apic_msg m = { .vector = vector, .delivery = APIC_DM_FIXED,
			      .level = 1, .trigger_level = level,
			      .source = -1 };
	return m;
}

static bool irr(struct fake *f, unsigned v)
{
	return rd(f, LAPIC_REG_IRR + (v / 32) * 0x10) & (1u << (v % 32));
}

static bool isr(struct fake *f, unsigned v)
{
	return rd(f, LAPIC_REG_ISR + (v / 32) * 0x10) & (1u << (v % 32));
}

static bool tmr(struct fake *f, unsigned v)
{
	return rd(f, LAPIC_REG_TMR + (v / 32) * 0x10) & (1u << (v % 32));
}

/* Takes the pending vector into service as the vCPU loop would. */
static int take(struct fake *f)
{
	int v = -1;

	if (lapic__pending_intr(&f->l, &v) != LAPIC_INTR_VECTOR)
		return -1;
	lapic__intr_injected(&f->l, v);
	return v;
}

/* ---- reset values and plain register access ---- */

START_TEST(reset_values)
{
	struct fake *f = fake_new(3, false), *b = fake_new(0, true);
	uint64_t base = 0;

	ck_assert_uint_eq(rd(f, LAPIC_REG_ID), 3u << 24);
	ck_assert_uint_eq(rd(f, LAPIC_REG_VERSION), 0x00060014);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LDR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_DFR), 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_SVR), 0xFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ICR_LO), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_ICR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_DCR), 0);
	for (uint32_t r = LAPIC_REG_LVT_TIMER; r <= LAPIC_REG_LVT_ERROR;
	     r += 0x10)
		ck_assert_uint_eq(rd(f, r), LAPIC_LVT_MASKED);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_CMCI), LAPIC_LVT_MASKED);
	for (unsigned i = 0; i < 8; i++) {
		ck_assert_uint_eq(rd(f, LAPIC_REG_ISR + i * 0x10), 0);
		ck_assert_uint_eq(rd(f, LAPIC_REG_IRR + i * 0x10), 0);
		ck_assert_uint_eq(rd(f, LAPIC_REG_TMR + i * 0x10), 0);
	}
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_APICBASE), 0xFEE00800ull);
	ck_assert_uint_eq(msr_rd(b, MSR_IA32_APICBASE), 0xFEE00900ull);
	/* Virtual wire on the BSP only. */
	ck_assert_uint_eq(rd(b, LAPIC_REG_LVT_LINT0), 0x700);
	ck_assert(lapic__mmio_enabled(&f->l, &base));
	ck_assert_uint_eq(base, LAPIC_DEFAULT_BASE);
	/* The address was published at init: enabled but software-off. */
	ck_assert_int_eq(f->addr_calls, 1);
	ck_assert_uint_eq(f->addr.apic_id, 3);
	ck_assert_uint_eq(f->addr.enabled, APIC_ADDR_HW_ENABLED);
	ck_assert(!f->addr.x2apic);
	ck_assert(f->addr.dfr_flat);
	ck_assert_int_eq(lapic__pending_intr(&f->l, NULL), LAPIC_INTR_NONE);
	ck_assert(!lapic__has_work(&f->l));
	fake_free(f);
	fake_free(b);
}
END_TEST

START_TEST(xapic_register_writes)
{
	struct fake *f = fake_new(1, false);
	uint8_t b[8];

	wr(f, LAPIC_REG_ID, 0x05123456);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ID), 0x05000000);
	ck_assert_uint_eq(f->addr.apic_id, 5);
	wr(f, LAPIC_REG_LDR, 0x12345678);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LDR), 0x12000000);
	ck_assert_uint_eq(f->addr.ldr, 0x12000000);
	wr(f, LAPIC_REG_DFR, 0x0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_DFR), 0x0FFFFFFF);
	ck_assert(!f->addr.dfr_flat);
	wr(f, LAPIC_REG_TPR, 0x1234);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0x34);
	ck_assert_uint_eq(f->addr.ppr, 0x34);
	/* Read-only registers ignore writes. */
	wr(f, LAPIC_REG_VERSION, 0);
	wr(f, LAPIC_REG_PPR, 0xFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_VERSION), LAPIC_VERSION);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x34);

	/* Software-disabled: LVTs cannot be unmasked. */
	wr(f, LAPIC_REG_LVT_ERROR, 0x33);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_ERROR), 0x10033);
	enable_sw(f);
	ck_assert_uint_eq(rd(f, LAPIC_REG_SVR), 0x1FF);
	ck_assert_uint_eq(f->addr.enabled,
			  APIC_ADDR_HW_ENABLED | APIC_ADDR_SW_ENABLED);
	/* Writable bits of each LVT kind. */
	wr(f, LAPIC_REG_LVT_TIMER, 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_TIMER), 0x000700FF);
	wr(f, LAPIC_REG_LVT_LINT0, 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_LINT0), 0x0001A7FF);
	wr(f, LAPIC_REG_LVT_THERMAL, 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_THERMAL), 0x000107FF);
	wr(f, LAPIC_REG_LVT_ERROR, 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_ERROR), 0x000100FF);
	wr(f, LAPIC_REG_LVT_CMCI, 0x0000004F);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_CMCI), 0x4F);
	wr(f, LAPIC_REG_ICR_HI, 0xFFFFFFFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ICR_HI), 0xFF000000);
	wr(f, LAPIC_REG_TIMER_DCR, 0xFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_DCR), 0xB);
	/* Disabling in software masks every LVT again. */
	wr(f, LAPIC_REG_SVR, 0xFF);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_CMCI), 0x1004F);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LVT_TIMER) & LAPIC_LVT_MASKED,
			  LAPIC_LVT_MASKED);
	ck_assert_uint_eq(f->addr.enabled, APIC_ADDR_HW_ENABLED);

	/* Sub-dword reads see the right bytes; wider ones stay bounded. */
	memset(b, 0xAA, sizeof(b));
	lapic__mmio(&f->l, LAPIC_REG_VERSION + 2, b, 1, false);
	ck_assert_uint_eq(b[0], 0x06);
	memset(b, 0xAA, sizeof(b));
	lapic__mmio(&f->l, LAPIC_REG_VERSION, b, 8, false);
	ck_assert_uint_eq(b[0], 0x14);
	ck_assert_uint_eq(b[4], 0);
	ck_assert_uint_eq(b[7], 0);
	lapic__mmio(&f->l, LAPIC_REG_VERSION + 4, b, 4, false);
	ck_assert_uint_eq(b[0], 0);
	/* Partial or unaligned stores are dropped; so is anything past
	 * the page. */
	b[0] = 0x80;
	lapic__mmio(&f->l, LAPIC_REG_TPR, b, 1, true);
	lapic__mmio(&f->l, LAPIC_REG_TPR + 1, b, 4, true);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0x34);
	lapic__mmio(&f->l, 0x1000, b, 4, true);
	lapic__mmio(&f->l, 0xFFFFFFFFFFFFull, b, 8, false);
	ck_assert_uint_eq(b[0], 0);
	lapic__mmio(&f->l, LAPIC_REG_TPR, NULL, 4, false);
	fake_free(f);
}
END_TEST

START_TEST(esr_latch_and_error_lvt)
{
	struct fake *f = fake_new(0, false);

	enable_sw(f);
	wr(f, LAPIC_REG_LVT_ERROR, 0xFE);
	/* A hole in the page is an illegal register address. */
	(void)rd(f, 0x3A0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), 0); /* not latched yet */
	ck_assert(irr(f, 0xFE));
	wr(f, LAPIC_REG_ESR, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), LAPIC_ESR_ILLEGAL_REG);
	wr(f, LAPIC_REG_ESR, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), 0);
	/* The x2APIC-only SELF IPI register is a hole in xAPIC mode. */
	wr(f, LAPIC_REG_SELF_IPI, 0x40);
	ck_assert_int_eq(f->nsent, 0);
	wr(f, LAPIC_REG_ESR, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), LAPIC_ESR_ILLEGAL_REG);
	/* Receiving an illegal vector. */
	lapic__accept(&f->l, &(struct apic_msg){ .vector = 3 });
	ck_assert(!irr(f, 3));
	wr(f, LAPIC_REG_ESR, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), LAPIC_ESR_RECV_ILLEGAL);
	/* Sending one: nothing leaves. */
	wr(f, LAPIC_REG_ICR_LO, 0x0000000F);
	ck_assert_int_eq(f->nsent, 0);
	wr(f, LAPIC_REG_ESR, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ESR), LAPIC_ESR_SEND_ILLEGAL);
	fake_free(f);
}
END_TEST

/* ---- x2APIC ---- */

START_TEST(x2apic_registers)
{
	struct fake *f = fake_new(0x23, false);
	uint64_t v;
	uint8_t b[4] = { 0 };

	/* x2APIC MSRs #GP outside x2APIC mode. */
	ck_assert_int_eq(lapic__msr_read(&f->l, x2(LAPIC_REG_ID), &v), -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_TPR), 0), -1);
	wr(f, LAPIC_REG_ID, 0x07000000); /* xAPIC ID changed by the guest */
	to_x2apic(f);
	ck_assert(!lapic__mmio_enabled(&f->l, NULL));
	lapic__mmio(&f->l, LAPIC_REG_VERSION, b, 4, false);
	ck_assert_uint_eq(b[0], 0); /* page no longer decoded */
	/* The x2APIC ID is the initial ID; LDR is derived from it. */
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_ID)), 0x23);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_LDR)), (2u << 16) | (1u << 3));
	ck_assert(f->addr.x2apic);
	ck_assert_uint_eq(f->addr.apic_id, 0x23);
	ck_assert_uint_eq(f->addr.ldr, 0x20008);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_VERSION)), LAPIC_VERSION);
	msr_wr(f, x2(LAPIC_REG_TPR), 0x20);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_TPR)), 0x20);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_PPR)), 0x20);
	msr_wr(f, x2(LAPIC_REG_SVR), 0x1FF);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_SVR)), 0x1FF);
	msr_wr(f, x2(LAPIC_REG_TIMER_DCR), 3);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_TIMER_DCR)), 3);
	msr_wr(f, x2(LAPIC_REG_ESR), 0);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_ESR)), 0);

	/* Read-only registers, xAPIC-only registers and holes #GP. */
	static const uint32_t ro[] = { LAPIC_REG_ID, LAPIC_REG_VERSION,
		LAPIC_REG_PPR, LAPIC_REG_LDR, LAPIC_REG_ISR, LAPIC_REG_TMR + 0x70,
		LAPIC_REG_IRR, LAPIC_REG_TIMER_CCR };
	for (unsigned i = 0; i < sizeof(ro) / sizeof(ro[0]); i++)
		ck_assert_int_eq(lapic__msr_write(&f->l, x2(ro[i]), 0), -1);
	static const uint32_t gone[] = { LAPIC_REG_APR, LAPIC_REG_RRD,
		LAPIC_REG_DFR, LAPIC_REG_ICR_HI, 0x010, 0x040, 0x3A0, 0x3C0,
		0xFF0 };
	for (unsigned i = 0; i < sizeof(gone) / sizeof(gone[0]); i++) {
		ck_assert_int_eq(lapic__msr_read(&f->l, x2(gone[i]), &v), -1);
		ck_assert_int_eq(lapic__msr_write(&f->l, x2(gone[i]), 0), -1);
	}
	/* Write-only registers. */
	ck_assert_int_eq(lapic__msr_read(&f->l, x2(LAPIC_REG_EOI), &v), -1);
	ck_assert_int_eq(lapic__msr_read(&f->l, x2(LAPIC_REG_SELF_IPI), &v),
			 -1);
	/* Reserved bits. */
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_EOI), 1), -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_ESR), 1), -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_TPR), 1ull << 32),
			 -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_SELF_IPI), 0x100),
			 -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, x2(LAPIC_REG_ICR_LO),
					  0x00010030), -1);
	ck_assert_int_eq(f->nsent, 0);
	msr_wr(f, x2(LAPIC_REG_EOI), 0);
	ck_assert(!lapic__owns_msr(0x10));
	ck_assert(!lapic__owns_msr(0x900));
	ck_assert(lapic__owns_msr(0x8FF));
	ck_assert(lapic__owns_msr(MSR_IA32_TSC_DEADLINE));
	ck_assert_int_eq(lapic__msr_read(&f->l, 0x10, &v), -1);
	fake_free(f);
}
END_TEST

START_TEST(apic_base_transitions)
{
	struct fake *f = fake_new(2, true);
	const uint64_t base = LAPIC_DEFAULT_BASE;
	uint64_t b;

	/* Reserved bits, EXTD without EN, disabled -> x2APIC. */
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EN | 1), -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EN | (1ull << 9)),
			 -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EN | (1ull << 60)),
			 -1);
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EXTD), -1);
	/* Relocation; the BSP bit cannot be cleared by the guest. */
	msr_wr(f, MSR_IA32_APICBASE, 0xFED00000ull | APIC_BASE_EN);
	ck_assert(lapic__mmio_enabled(&f->l, &b));
	ck_assert_uint_eq(b, 0xFED00000ull);
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_APICBASE),
			  0xFED00000ull | APIC_BASE_EN | APIC_BASE_BSP);

	/* Disable: state lost, nothing accepted, no MMIO. */
	enable_sw(f);
	wr(f, LAPIC_REG_TPR, 0x40);
	wr(f, LAPIC_REG_ID, 0x09000000);
	msr_wr(f, MSR_IA32_APICBASE, base);
	ck_assert(!lapic__mmio_enabled(&f->l, NULL));
	ck_assert_uint_eq(f->addr.enabled, 0);
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_NMI });
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_INIT,
						 .level = 1 });
	ck_assert(!lapic__has_work(&f->l));
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EN | APIC_BASE_EXTD),
			 -1);
	/* Back on: power-on values, original ID. */
	msr_wr(f, MSR_IA32_APICBASE, base | APIC_BASE_EN);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ID), 2u << 24);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_SVR), 0xFF);
	/* xAPIC -> x2APIC -> xAPIC is illegal; x2APIC -> disabled is fine. */
	to_x2apic(f);
	ck_assert_int_eq(lapic__msr_write(&f->l, MSR_IA32_APICBASE,
					  base | APIC_BASE_EN), -1);
	msr_wr(f, MSR_IA32_APICBASE, base);
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_APICBASE), base | APIC_BASE_BSP);
	ck_assert(!f->addr.x2apic);
	fake_free(f);
}
END_TEST

/* ---- timer ---- */

START_TEST(timer_oneshot)
{
	struct fake *f = fake_new(0, false);
	int v;

	enable_sw(f);
	f->now = 1000000;
	wr(f, LAPIC_REG_TIMER_DCR, 0x3); /* divide by 16 */
	wr(f, LAPIC_REG_LVT_TIMER, 0x40);
	wr(f, LAPIC_REG_TIMER_ICR, 1000);
	/* 1 GHz bus / 16: 16 ns per tick, 16 us in all. */
	ck_assert_uint_eq(f->armed, 1000000 + 16000);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 1000);
	f->now += 1600;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 900);
	f->now += 1600 * 5 + 8;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 400);
	f->now = 1000000 + 15999;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 1);
	lapic__timer_expired(&f->l); /* early wake-up: nothing */
	ck_assert(!irr(f, 0x40));
	ck_assert_uint_eq(f->armed, 1016000);
	f->now = 1016000;
	f->kicks = 0;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x40));
	ck_assert_int_eq(f->kicks, 1);
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_VECTOR);
	ck_assert_int_eq(v, 0x40);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 0);
	/* One-shot: fires once only. */
	ck_assert_int_eq(take(f), 0x40);
	wr(f, LAPIC_REG_EOI, 0);
	f->now += 100000;
	lapic__timer_expired(&f->l);
	ck_assert(!irr(f, 0x40));
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_ICR), 1000);
	/* Writing 0 stops and cancels the host timer. */
	wr(f, LAPIC_REG_TIMER_ICR, 5);
	ck_assert_uint_ne(f->armed, 0);
	wr(f, LAPIC_REG_TIMER_ICR, 0);
	ck_assert_uint_eq(f->armed, 0);
	f->now += 1000000;
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_NONE);
	fake_free(f);
}
END_TEST

START_TEST(timer_expiry_seen_without_host_timer)
{
	struct fake *f = fake_new(0, false);
	int v;

	enable_sw(f);
	wr(f, LAPIC_REG_TIMER_DCR, 0xB); /* divide by 1 */
	wr(f, LAPIC_REG_LVT_TIMER, 0x41);
	wr(f, LAPIC_REG_TIMER_ICR, 500);
	f->now = 499;
	ck_assert(!lapic__has_work(&f->l));
	f->now = 500;
	ck_assert(lapic__has_work(&f->l));
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_VECTOR);
	ck_assert_int_eq(v, 0x41);
	fake_free(f);
}
END_TEST

START_TEST(timer_periodic)
{
	struct fake *f = fake_new(0, false);

	enable_sw(f);
	wr(f, LAPIC_REG_TIMER_DCR, 0x0); /* divide by 2 */
	wr(f, LAPIC_REG_LVT_TIMER, (LAPIC_TIMER_PERIODIC << 17) | 0x50);
	wr(f, LAPIC_REG_TIMER_ICR, 100000); /* 200 us period */
	ck_assert_uint_eq(f->armed, 200000);
	f->now = 50000;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 75000);
	f->now = 200000;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x50));
	ck_assert_uint_eq(f->armed, 400000);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 100000); /* reloaded */
	f->now = 250000;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 75000);
	ck_assert_int_eq(take(f), 0x50);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!irr(f, 0x50));
	f->now = 400000;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x50));
	ck_assert_uint_eq(f->armed, 600000);
	/* Woken late: one interrupt, next deadline on the period grid. */
	ck_assert_int_eq(take(f), 0x50);
	wr(f, LAPIC_REG_EOI, 0);
	f->now = 1130000;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x50));
	ck_assert_uint_eq(f->armed, 1200000);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 35000);
	fake_free(f);
}
END_TEST

START_TEST(timer_masked_and_min_period)
{
	struct fake *f = fake_new(0, false);

	enable_sw(f);
	wr(f, LAPIC_REG_TIMER_DCR, 0xB);
	wr(f, LAPIC_REG_LVT_TIMER, LAPIC_LVT_MASKED |
				   (LAPIC_TIMER_PERIODIC << 17) | 0x60);
	/* A 1-tick period would be a host busy loop: stretched. */
	wr(f, LAPIC_REG_TIMER_ICR, 1);
	ck_assert_uint_eq(f->armed, LAPIC_MIN_PERIOD_NS);
	f->now = LAPIC_MIN_PERIOD_NS;
	lapic__timer_expired(&f->l);
	ck_assert(!irr(f, 0x60)); /* masked: counts, no interrupt */
	ck_assert_uint_eq(f->armed, 2 * LAPIC_MIN_PERIOD_NS);
	wr(f, LAPIC_REG_LVT_TIMER, (LAPIC_TIMER_PERIODIC << 17) | 0x60);
	f->now = 2 * LAPIC_MIN_PERIOD_NS;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x60));
	fake_free(f);
}
END_TEST

START_TEST(timer_divider_change_keeps_count)
{
	struct fake *f = fake_new(0, false);

	enable_sw(f);
	wr(f, LAPIC_REG_TIMER_DCR, 0xB); /* 1 ns per tick */
	wr(f, LAPIC_REG_LVT_TIMER, 0x40);
	wr(f, LAPIC_REG_TIMER_ICR, 10000);
	f->now = 4000;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 6000);
	wr(f, LAPIC_REG_TIMER_DCR, 0x1); /* divide by 4 */
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 6000);
	ck_assert_uint_eq(f->armed, 4000 + 24000);
	f->now = 4000 + 4000;
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_CCR), 5000);
	fake_free(f);
}
END_TEST

START_TEST(timer_tsc_deadline)
{
	struct fake *f = fake_new(0, false);
	const uint32_t tsc_mode = LAPIC_TIMER_TSC_DEADLINE << 17;

	enable_sw(f);
	/* Outside TSC-deadline mode the MSR reads 0, writes are ignored. */
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 12345);
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_TSC_DEADLINE), 0);
	wr(f, LAPIC_REG_LVT_TIMER, tsc_mode | 0x70);
	/* The count registers do nothing in this mode. */
	wr(f, LAPIC_REG_TIMER_ICR, 1000);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_ICR), 0);
	f->now = 5000;
	f->tsc = 1000000;
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 1000000 + 4000); /* 2 GHz: 2 us */
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_TSC_DEADLINE), 1004000);
	ck_assert_uint_eq(f->armed, 7000);
	f->now = 6999;
	lapic__timer_expired(&f->l);
	ck_assert(!irr(f, 0x70));
	f->now = 7000;
	lapic__timer_expired(&f->l);
	ck_assert(irr(f, 0x70));
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_TSC_DEADLINE), 0);
	ck_assert_int_eq(take(f), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	/* A deadline already past fires at once. */
	f->tsc = 2000000;
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 1999999);
	ck_assert(irr(f, 0x70));
	ck_assert_int_eq(take(f), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	/* Writing 0 disarms. */
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 3000000);
	ck_assert_uint_ne(f->armed, 0);
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 0);
	ck_assert_uint_eq(f->armed, 0);
	/* Leaving the mode disarms too. */
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 3000000);
	wr(f, LAPIC_REG_LVT_TIMER, 0x70);
	ck_assert_uint_eq(f->armed, 0);
	f->now += 10000000;
	f->tsc += 10000000;
	lapic__timer_expired(&f->l);
	ck_assert(!irr(f, 0x70));
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_TSC_DEADLINE), 0);
	fake_free(f);
}
END_TEST

/* The minimum gap (PVM profile) holds on every path that fires the timer:
 * a deadline already past when written, the exit-time checks a busy vCPU
 * makes (pending_intr, has_work), and the host timer armed for it. */
START_TEST(timer_min_gap_on_every_path)
{
	struct fake *f = fake_new(0, false);
	const uint32_t tsc_mode = LAPIC_TIMER_TSC_DEADLINE << 17;
	const uint64_t gap = 20000000;
	int v = -1;

	enable_sw(f);
	f->l.timer_min_gap_ns = gap;
	wr(f, LAPIC_REG_LVT_TIMER, tsc_mode | 0x70);
	f->now = 5000;
	f->tsc = 1000000;
	/* Nothing fired yet: a past deadline fires at once. */
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 999999);
	ck_assert_int_eq(take(f), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	/* Past again, right after: held back to the end of the gap. */
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 999999);
	ck_assert(!irr(f, 0x70));
	ck_assert_uint_eq(f->armed, 5000 + gap);
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_TSC_DEADLINE), 999999);
	f->now = 5000 + gap - 1;
	ck_assert(!lapic__has_work(&f->l));
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_NONE);
	lapic__timer_expired(&f->l);
	ck_assert(!irr(f, 0x70));
	f->now = 5000 + gap;
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_VECTOR);
	ck_assert_int_eq(v, 0x70);
	ck_assert_int_eq(take(f), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	/* A deadline beyond the gap is untouched. */
	f->tsc = 3000000;
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 3000000 + 2 * 2 * gap);
	ck_assert_uint_eq(f->armed, f->now + 2 * gap);
	/* Without a gap the same sequence fires back to back. */
	f->l.timer_min_gap_ns = 0;
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 2999999);
	ck_assert_int_eq(take(f), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 2999999);
	ck_assert_int_eq(take(f), 0x70);
	fake_free(f);
}
END_TEST

/* Periodic mode under the gap: a 1 ms period gives one interrupt per gap,
 * the missed periods merged into it. */
START_TEST(timer_min_gap_periodic)
{
	struct fake *f = fake_new(0, false);
	const uint64_t gap = 20000000;
	int fired = 0;

	enable_sw(f);
	f->l.timer_min_gap_ns = gap;
	f->now = 1000;
	wr(f, LAPIC_REG_TIMER_DCR, 0xB); /* divide by 1 */
	wr(f, LAPIC_REG_LVT_TIMER, (LAPIC_TIMER_PERIODIC << 17) | 0x71);
	wr(f, LAPIC_REG_TIMER_ICR, LAPIC_BUS_HZ / 1000);
	for (f->now = 1000; f->now <= 1000 + 100000000; f->now += 100000) {
		lapic__timer_expired(&f->l);
		if (irr(f, 0x71)) {
			fired++;
			ck_assert_int_eq(take(f), 0x71);
			wr(f, LAPIC_REG_EOI, 0);
		}
	}
	/* 100 ms: 100 periods, at most one per 20 ms gap. */
	ck_assert_int_ge(fired, 4);
	ck_assert_int_le(fired, 6);
	fake_free(f);
}
END_TEST

/* ---- ICR ---- */

START_TEST(icr_xapic_decoding)
{
	struct fake *f = fake_new(4, false);
	struct apic_msg *m = f->sent;

	f->l.vcpu_index = 2;
	/* Physical fixed to APIC 3. */
	wr(f, LAPIC_REG_ICR_HI, 0x03000000);
	wr(f, LAPIC_REG_ICR_LO, 0x00000031);
	ck_assert_int_eq(f->nsent, 1);
	ck_assert_uint_eq(m[0].dest, 3);
	ck_assert_uint_eq(m[0].vector, 0x31);
	ck_assert_uint_eq(m[0].delivery, APIC_DM_FIXED);
	ck_assert_uint_eq(m[0].dest_logical, 0);
	ck_assert_uint_eq(m[0].shorthand, APIC_SH_NONE);
	ck_assert_uint_eq(m[0].x2apic, 0);
	ck_assert_int_eq(m[0].source, 2);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ICR_LO), 0x31); /* idle */
	/* Logical, lowest priority, level trigger, MDA 0x0C. */
	wr(f, LAPIC_REG_ICR_HI, 0x0C000000);
	wr(f, LAPIC_REG_ICR_LO, 0x0000C941);
	ck_assert_uint_eq(m[1].dest, 0x0C);
	ck_assert_uint_eq(m[1].delivery, APIC_DM_LOWEST);
	ck_assert_uint_eq(m[1].dest_logical, 1);
	ck_assert_uint_eq(m[1].level, 1);
	ck_assert_uint_eq(m[1].trigger_level, 1);
	/* The four shorthands. */
	for (unsigned sh = 0; sh < 4; sh++) {
		wr(f, LAPIC_REG_ICR_LO, (sh << 18) | 0x50);
		ck_assert_uint_eq(m[2 + sh].shorthand, sh);
		ck_assert_uint_eq(m[2 + sh].vector, 0x50);
	}
	/* NMI, INIT assert, INIT de-assert (dropped), SIPI. */
	wr(f, LAPIC_REG_ICR_HI, 0x01000000);
	wr(f, LAPIC_REG_ICR_LO, 0x00000400);
	ck_assert_uint_eq(m[6].delivery, APIC_DM_NMI);
	wr(f, LAPIC_REG_ICR_LO, 0x0000C500);
	ck_assert_uint_eq(m[7].delivery, APIC_DM_INIT);
	ck_assert_uint_eq(m[7].level, 1);
	wr(f, LAPIC_REG_ICR_LO, 0x00008500);
	ck_assert_int_eq(f->nsent, 8);
	wr(f, LAPIC_REG_ICR_LO, 0x0000069A);
	ck_assert_uint_eq(m[8].delivery, APIC_DM_SIPI);
	ck_assert_uint_eq(m[8].vector, 0x9A);
	ck_assert_uint_eq(m[8].dest, 1);
	/* ExtINT goes out as such; reserved mode 3 does not go out. */
	wr(f, LAPIC_REG_ICR_LO, 0x00000700);
	ck_assert_uint_eq(m[9].delivery, APIC_DM_EXTINT);
	wr(f, LAPIC_REG_ICR_LO, 0x00000340);
	ck_assert_int_eq(f->nsent, 10);
	ck_assert(f->lock_was_free);
	fake_free(f);
}
END_TEST

START_TEST(icr_x2apic_and_self_ipi)
{
	struct fake *f = fake_new(6, false);
	struct apic_msg *m = f->sent;

	to_x2apic(f);
	msr_wr(f, x2(LAPIC_REG_ICR_LO), (0x00012345ull << 32) | 0x0842);
	ck_assert_int_eq(f->nsent, 1);
	ck_assert_uint_eq(m[0].dest, 0x12345);
	ck_assert_uint_eq(m[0].dest_logical, 1);
	ck_assert_uint_eq(m[0].vector, 0x42);
	ck_assert_uint_eq(m[0].x2apic, 1);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_ICR_LO)),
			  (0x00012345ull << 32) | 0x0842);
	msr_wr(f, x2(LAPIC_REG_ICR_LO), (0xFFFFFFFFull << 32) | 0x44);
	ck_assert_uint_eq(m[1].dest, 0xFFFFFFFF);
	msr_wr(f, x2(LAPIC_REG_SELF_IPI), 0x99);
	ck_assert_uint_eq(m[2].shorthand, APIC_SH_SELF);
	ck_assert_uint_eq(m[2].vector, 0x99);
	ck_assert_uint_eq(m[2].delivery, APIC_DM_FIXED);
	ck_assert_uint_eq(m[2].trigger_level, 0);
	/* The self IPI does not show in the ICR. */
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_ICR_LO)),
			  (0xFFFFFFFFull << 32) | 0x44);
	fake_free(f);
}
END_TEST

START_TEST(self_ipi_loops_back_without_deadlock)
{
	struct fake *f = fake_new(0, false);

	f->loop_self = true;
	enable_sw(f);
	wr(f, LAPIC_REG_ICR_LO, (APIC_SH_SELF << 18) | 0x77);
	ck_assert(irr(f, 0x77));
	ck_assert(f->lock_was_free);
	ck_assert_int_eq(take(f), 0x77);
	fake_free(f);
}
END_TEST

/* ---- priorities, EOI ---- */

START_TEST(tpr_and_ppr)
{
	struct fake *f = fake_new(0, false);
	int v;
	struct apic_msg m45 = fixed(0x45, false), m5f = fixed(0x5F, false);
	struct apic_msg m61 = fixed(0x61, false), m65 = fixed(0x65, false);
	struct apic_msg m71 = fixed(0x71, false);

	enable_sw(f);
	wr(f, LAPIC_REG_TPR, 0x50);
	lapic__accept(&f->l, &m45);
	lapic__accept(&f->l, &m5f);
	ck_assert(irr(f, 0x45) && irr(f, 0x5F));
	/* Class 5 is not above TPR class 5. */
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_NONE);
	ck_assert(!lapic__has_work(&f->l));
	lapic__accept(&f->l, &m61);
	ck_assert_int_eq(take(f), 0x61);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x60);
	ck_assert_uint_eq(f->addr.ppr, 0x60);
	lapic__accept(&f->l, &m65);
	ck_assert_int_eq(lapic__pending_intr(&f->l, &v), LAPIC_INTR_NONE);
	lapic__accept(&f->l, &m71);
	ck_assert_int_eq(take(f), 0x71);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x70);
	/* APR: the highest of TPR, ISR and IRR classes. */
	ck_assert_uint_eq(rd(f, LAPIC_REG_APR), 0x70);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x60);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x50);
	ck_assert_int_eq(take(f), 0x65);
	wr(f, LAPIC_REG_EOI, 0);
	/* TPR above the ISR class wins PPR; CR8 is TPR[7:4]. */
	lapic__set_cr8(&f->l, 0x3);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0x30);
	ck_assert_uint_eq(lapic__get_cr8(&f->l), 3);
	ck_assert_int_eq(take(f), 0x5F);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x50);
	ck_assert_int_eq(take(f), -1); /* 0x45 waits for the EOI */
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_int_eq(take(f), 0x45);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x40);
	wr(f, LAPIC_REG_TPR, 0x9A);
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0x9A);
	ck_assert_uint_eq(lapic__get_cr8(&f->l), 9);
	fake_free(f);
}
END_TEST

START_TEST(eoi_nested_order)
{
	struct fake *f = fake_new(0, false);
	struct apic_msg a = fixed(0x40, false), b = fixed(0x80, false);

	enable_sw(f);
	lapic__accept(&f->l, &a);
	ck_assert_int_eq(take(f), 0x40);
	lapic__accept(&f->l, &b);
	ck_assert_int_eq(take(f), 0x80); /* nests above 0x40 */
	ck_assert(isr(f, 0x40) && isr(f, 0x80));
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!isr(f, 0x80));
	ck_assert(isr(f, 0x40));
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!isr(f, 0x40));
	wr(f, LAPIC_REG_EOI, 0); /* nothing in service: harmless */
	ck_assert_int_eq(f->neoi, 0);
	/* A vector already pending is one bit; injecting an unknown vector
	 * changes nothing. */
	lapic__intr_injected(&f->l, 0x90);
	lapic__intr_injected(&f->l, 300);
	lapic__intr_injected(&f->l, -1);
	ck_assert(!isr(f, 0x90));
	fake_free(f);
}
END_TEST

START_TEST(level_eoi_callback)
{
	struct fake *f = fake_new(0, false);
	struct apic_msg lvl = fixed(0x58, true), edge = fixed(0x68, false);

	enable_sw(f);
	lapic__accept(&f->l, &lvl);
	ck_assert(tmr(f, 0x58));
	lapic__accept(&f->l, &edge);
	ck_assert(!tmr(f, 0x68));
	ck_assert_int_eq(take(f), 0x68);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_int_eq(f->neoi, 0);
	ck_assert_int_eq(take(f), 0x58);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_int_eq(f->neoi, 1);
	ck_assert_int_eq(f->eoi[0], 0x58);
	ck_assert(f->lock_was_free);
	/* The same vector delivered edge later clears its TMR bit. */
	lapic__accept(&f->l, &(struct apic_msg){ .vector = 0x58 });
	ck_assert(!tmr(f, 0x58));
	fake_free(f);
}
END_TEST

/* ---- PV EOI ---- */

START_TEST(pv_eoi_arm_disarm)
{
	struct fake *f = fake_new(0, false);
	struct apic_msg a = fixed(0x41, false), b = fixed(0x31, false);
	struct apic_msg lvl = fixed(0x58, true);

	enable_sw(f);
	/* Off until the guest enables it through the MSR. */
	lapic__accept(&f->l, &a);
	ck_assert_int_eq(take(f), 0x41);
	ck_assert(!lapic__pv_eoi_arm(&f->l));
	lapic__set_pv_eoi_msr(&f->l, 0x5000 | KVM_PV_EOI_MSR_ENABLED);
	ck_assert_uint_eq(lapic__pv_eoi_msr(&f->l), 0x5001);

	/* One vector in service, nothing requested: armed.  The guest
	 * cleared the bit: that was its EOI. */
	ck_assert(lapic__pv_eoi_arm(&f->l));
	lapic__pv_eoi_disarm(&f->l, true);
	ck_assert(!isr(f, 0x41));
	ck_assert_uint_eq(rd(f, LAPIC_REG_PPR), 0);

	/* Not cleared: still in service, and a later MMIO EOI ends it. */
	lapic__accept(&f->l, &a);
	ck_assert_int_eq(take(f), 0x41);
	ck_assert(lapic__pv_eoi_arm(&f->l));
	lapic__pv_eoi_disarm(&f->l, false);
	ck_assert(isr(f, 0x41));
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!isr(f, 0x41));

	/* While armed, a request the LAPIC could not deliver yet (below
	 * the vector in service) still kicks: the guest may have ended it. */
	lapic__accept(&f->l, &a);
	ck_assert_int_eq(take(f), 0x41);
	ck_assert(lapic__pv_eoi_arm(&f->l));
	f->kicks = 0;
	lapic__accept(&f->l, &b);
	ck_assert_int_eq(f->kicks, 1);
	lapic__pv_eoi_disarm(&f->l, true);
	ck_assert_int_eq(take(f), 0x31);
	/* ... and with a request pending it is not armed again. */
	lapic__accept(&f->l, &a);
	ck_assert(!lapic__pv_eoi_arm(&f->l));
	ck_assert_int_eq(take(f), 0x41);
	/* Nested (0x41 over 0x31): the guest's EOI ends the highest only. */
	ck_assert(lapic__pv_eoi_arm(&f->l));
	lapic__pv_eoi_disarm(&f->l, true);
	ck_assert(!isr(f, 0x41));
	ck_assert(isr(f, 0x31));
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!isr(f, 0x31));

	/* Nothing in service: nothing to end. */
	ck_assert(!lapic__pv_eoi_arm(&f->l));
	/* Level-triggered: the IOAPIC must hear the EOI, so no PV EOI. */
	lapic__accept(&f->l, &lvl);
	ck_assert_int_eq(take(f), 0x58);
	ck_assert(!lapic__pv_eoi_arm(&f->l));
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert_int_eq(f->neoi, 1);

	/* A disarm without arming ends nothing. */
	lapic__accept(&f->l, &a);
	ck_assert_int_eq(take(f), 0x41);
	lapic__pv_eoi_disarm(&f->l, true);
	ck_assert(isr(f, 0x41));

	/* INIT turns it off, as on KVM. */
	lapic__init_reset(&f->l);
	ck_assert_uint_eq(lapic__pv_eoi_msr(&f->l), 0);
	fake_free(f);
}
END_TEST

/* ---- acceptance, events, LINT ---- */

START_TEST(accept_delivery_modes)
{
	struct fake *f = fake_new(0, false);
	struct lapic_events ev;
	struct apic_msg m = fixed(0x33, false);

	/* Software-disabled: fixed dropped, NMI/INIT/SIPI taken. */
	lapic__accept(&f->l, &m);
	ck_assert(!irr(f, 0x33));
	f->kicks = 0;
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_INIT,
						 .level = 1 });
	ck_assert_int_eq(f->kicks, 1);
	ck_assert(lapic__has_events(&f->l));
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_SIPI,
						 .vector = 0x9F });
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_NMI });
	ev = lapic__take_events(&f->l);
	ck_assert(ev.init && ev.sipi && ev.nmi);
	ck_assert_uint_eq(ev.sipi_vector, 0x9F);
	ck_assert(!lapic__has_events(&f->l));
	ev = lapic__take_events(&f->l);
	ck_assert(!ev.init && !ev.sipi && !ev.nmi);
	/* INIT level de-assert does nothing. */
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_INIT,
						 .level = 0,
						 .trigger_level = 1 });
	ck_assert(!lapic__has_events(&f->l));
	enable_sw(f);
	m.delivery = APIC_DM_LOWEST;
	lapic__accept(&f->l, &m);
	ck_assert(irr(f, 0x33));
	/* ExtINT message: the vCPU asks the 8259, then acks. */
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_EXTINT });
	ck_assert_int_eq(lapic__pending_intr(&f->l, NULL), LAPIC_INTR_EXTINT);
	lapic__extint_acked(&f->l);
	ck_assert_int_eq(lapic__pending_intr(&f->l, NULL), LAPIC_INTR_VECTOR);
	/* SMI: no SMM, ignored. */
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_SMI });
	ck_assert(!lapic__has_events(&f->l));
	fake_free(f);
}
END_TEST

START_TEST(lint0_virtual_wire)
{
	struct fake *b = fake_new(0, true), *ap = fake_new(1, false);
	int v;

	/* The BSP's reset LINT0 is ExtINT, even before the SVR is set. */
	b->kicks = 0;
	lapic__set_lint0(&b->l, true);
	ck_assert_int_eq(b->kicks, 1);
	ck_assert_int_eq(lapic__pending_intr(&b->l, &v), LAPIC_INTR_EXTINT);
	lapic__set_lint0(&b->l, false);
	ck_assert_int_eq(lapic__pending_intr(&b->l, &v), LAPIC_INTR_NONE);
	/* An AP's LINT0 is masked. */
	lapic__set_lint0(&ap->l, true);
	ck_assert_int_eq(lapic__pending_intr(&ap->l, &v), LAPIC_INTR_NONE);
	/* Masking LINT0 hides the 8259; unmasking shows it again. */
	enable_sw(b);
	lapic__set_lint0(&b->l, true);
	wr(b, LAPIC_REG_LVT_LINT0, LAPIC_LVT_MASKED | 0x700);
	ck_assert_int_eq(lapic__pending_intr(&b->l, &v), LAPIC_INTR_NONE);
	wr(b, LAPIC_REG_LVT_LINT0, 0x700);
	ck_assert_int_eq(lapic__pending_intr(&b->l, &v), LAPIC_INTR_EXTINT);
	/* ExtINT is above any vector. */
	lapic__accept(&b->l, &(struct apic_msg){ .vector = 0xF0 });
	ck_assert_int_eq(lapic__pending_intr(&b->l, &v), LAPIC_INTR_EXTINT);
	/* With the APIC globally disabled LINT0 is the CPU's INTR pin. */
	lapic__set_lint0(&ap->l, true);
	msr_wr(ap, MSR_IA32_APICBASE, LAPIC_DEFAULT_BASE);
	ck_assert_int_eq(lapic__pending_intr(&ap->l, &v), LAPIC_INTR_EXTINT);
	fake_free(b);
	fake_free(ap);
}
END_TEST

START_TEST(lint_nmi_and_fixed_level)
{
	struct fake *f = fake_new(0, false);
	struct lapic_events ev;

	enable_sw(f);
	/* LINT1 as NMI: edge. */
	wr(f, LAPIC_REG_LVT_LINT1, APIC_DM_NMI << 8);
	lapic__set_lint1(&f->l, true);
	lapic__set_lint1(&f->l, true);
	ev = lapic__take_events(&f->l);
	ck_assert(ev.nmi);
	lapic__set_lint1(&f->l, true);
	ck_assert(!lapic__take_events(&f->l).nmi);
	/* LINT0 fixed, level-triggered: remote IRR until EOI, then again
	 * while the line is still high. */
	wr(f, LAPIC_REG_LVT_LINT0, LAPIC_LVT_LEVEL | 0x66);
	lapic__set_lint0(&f->l, true);
	ck_assert(irr(f, 0x66) && tmr(f, 0x66));
	ck_assert(rd(f, LAPIC_REG_LVT_LINT0) & LAPIC_LVT_REMOTE_IRR);
	ck_assert_int_eq(take(f), 0x66);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(irr(f, 0x66));
	ck_assert_int_eq(take(f), 0x66);
	lapic__set_lint0(&f->l, false);
	wr(f, LAPIC_REG_EOI, 0);
	ck_assert(!irr(f, 0x66));
	ck_assert(!(rd(f, LAPIC_REG_LVT_LINT0) & LAPIC_LVT_REMOTE_IRR));
	/* LINT0 fixed edge. */
	wr(f, LAPIC_REG_LVT_LINT0, 0x67);
	lapic__set_lint0(&f->l, true);
	ck_assert(irr(f, 0x67) && !tmr(f, 0x67));
	fake_free(f);
}
END_TEST

START_TEST(init_reset_keeps_id_and_base)
{
	struct fake *f = fake_new(5, false);
	struct apic_msg m = fixed(0x80, false);

	enable_sw(f);
	wr(f, LAPIC_REG_ID, 0x0A000000);
	wr(f, LAPIC_REG_TPR, 0x20);
	wr(f, LAPIC_REG_LDR, 0x04000000);
	lapic__accept(&f->l, &m);
	ck_assert_int_eq(take(f), 0x80);
	lapic__accept(&f->l, &m);
	wr(f, LAPIC_REG_LVT_TIMER, 0x40);
	wr(f, LAPIC_REG_TIMER_ICR, 1000);
	lapic__accept(&f->l, &(struct apic_msg){ .delivery = APIC_DM_SIPI,
						 .vector = 0x10 });
	lapic__init_reset(&f->l);
	ck_assert_uint_eq(rd(f, LAPIC_REG_ID), 0x0A000000);
	ck_assert_uint_eq(rd(f, LAPIC_REG_TPR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_LDR), 0);
	ck_assert_uint_eq(rd(f, LAPIC_REG_SVR), 0xFF);
	ck_assert(!irr(f, 0x80) && !isr(f, 0x80));
	ck_assert_uint_eq(rd(f, LAPIC_REG_TIMER_ICR), 0);
	ck_assert_uint_eq(f->armed, 0);
	ck_assert_uint_eq(msr_rd(f, MSR_IA32_APICBASE), 0xFEE00800ull);
	/* A SIPI that arrived meanwhile is not lost. */
	ck_assert(lapic__take_events(&f->l).sipi);
	/* In x2APIC mode INIT keeps the mode and the derived LDR. */
	to_x2apic(f);
	lapic__init_reset(&f->l);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_ID)), 5);
	ck_assert_uint_eq(msr_rd(f, x2(LAPIC_REG_LDR)), 1u << 5);
	fake_free(f);
}
END_TEST

START_TEST(addr_published_on_changes_only)
{
	struct fake *f = fake_new(0, false);
	int calls;

	enable_sw(f);
	calls = f->addr_calls;
	wr(f, LAPIC_REG_LVT_ERROR, 0x30); /* not an addressing fact */
	(void)rd(f, LAPIC_REG_PPR);
	ck_assert_int_eq(f->addr_calls, calls);
	wr(f, LAPIC_REG_LDR, 0x80000000);
	ck_assert_int_eq(f->addr_calls, calls + 1);
	ck_assert_uint_eq(f->addr.ldr, 0x80000000);
	wr(f, LAPIC_REG_LDR, 0x80000000);
	ck_assert_int_eq(f->addr_calls, calls + 1);
	lapic__set_cr8(&f->l, 2);
	ck_assert_int_eq(f->addr_calls, calls + 2);
	ck_assert_uint_eq(f->addr.ppr, 0x20);
	{
		struct apic_addr a;

		lapic__get_addr(&f->l, &a);
		ck_assert_mem_eq(&a, &f->addr, sizeof(a));
	}
	fake_free(f);
}
END_TEST

START_TEST(save_and_post_load)
{
	struct fake *f = fake_new(1, false), *g = fake_new(1, false);
	struct lapic_state st;
	struct apic_msg m = fixed(0x90, false);

	enable_sw(f);
	wr(f, LAPIC_REG_TIMER_DCR, 0xB);
	wr(f, LAPIC_REG_LVT_TIMER, 0x41);
	f->now = 1000;
	wr(f, LAPIC_REG_TIMER_ICR, 10000); /* expires at 11000 */
	f->now = 4000;
	lapic__accept(&f->l, &m);
	wr(f, LAPIC_REG_LDR, 0x02000000);
	lapic__save_state(&f->l, &st);
	ck_assert_uint_eq(st.save_ns, 4000);
	ck_assert_uint_eq(f->l.s.save_ns, 0);

	/* Another host, another clock: the remaining 7000 ns are kept. */
	g->now = 900000;
	g->kicks = 0;
	g->addr_calls = 0;
	g->l.s = st;
	lapic__post_load(&g->l);
	ck_assert_uint_eq(g->armed, 907000);
	ck_assert_uint_eq(rd(g, LAPIC_REG_TIMER_CCR), 7000);
	ck_assert_int_eq(g->addr_calls, 1);
	ck_assert_uint_eq(g->addr.ldr, 0x02000000);
	ck_assert_int_eq(g->kicks, 1);
	ck_assert(irr(g, 0x90));
	ck_assert_uint_eq(g->l.s.save_ns, 0);
	g->now = 907000;
	lapic__timer_expired(&g->l);
	ck_assert(irr(g, 0x41));

	/* A plain copy (save_ns 0) restores on the same clock. */
	f->l.s = st;
	f->l.s.save_ns = 0;
	lapic__post_load(&f->l);
	ck_assert_uint_eq(f->armed, 11000);
	fake_free(f);
	fake_free(g);
}
END_TEST

START_TEST(post_load_tsc_deadline_from_tsc)
{
	struct fake *f = fake_new(0, false);

	enable_sw(f);
	wr(f, LAPIC_REG_LVT_TIMER, (LAPIC_TIMER_TSC_DEADLINE << 17) | 0x70);
	f->tsc = 100;
	msr_wr(f, MSR_IA32_TSC_DEADLINE, 100 + 2000000);
	f->now = 5000000;
	f->tsc = 100 + 1000000; /* half way, by the guest's TSC */
	lapic__post_load(&f->l);
	ck_assert_uint_eq(f->armed, 5000000 + 500000);
	fake_free(f);
}
END_TEST

static Suite *lapic_suite(void)
{
	Suite *s = suite_create("lapic");
	TCase *regs = tcase_create("registers");
	TCase *timer = tcase_create("timer");
	TCase *ipi = tcase_create("icr");
	TCase *prio = tcase_create("priority");
	TCase *acc = tcase_create("accept");

	tcase_add_test(regs, reset_values);
	tcase_add_test(regs, xapic_register_writes);
	tcase_add_test(regs, esr_latch_and_error_lvt);
	tcase_add_test(regs, x2apic_registers);
	tcase_add_test(regs, apic_base_transitions);
	tcase_add_test(regs, addr_published_on_changes_only);
	tcase_add_test(regs, save_and_post_load);
	tcase_add_test(regs, post_load_tsc_deadline_from_tsc);
	suite_add_tcase(s, regs);

	tcase_add_test(timer, timer_oneshot);
	tcase_add_test(timer, timer_expiry_seen_without_host_timer);
	tcase_add_test(timer, timer_periodic);
	tcase_add_test(timer, timer_masked_and_min_period);
	tcase_add_test(timer, timer_divider_change_keeps_count);
	tcase_add_test(timer, timer_tsc_deadline);
	tcase_add_test(timer, timer_min_gap_on_every_path);
	tcase_add_test(timer, timer_min_gap_periodic);
	suite_add_tcase(s, timer);

	tcase_add_test(ipi, icr_xapic_decoding);
	tcase_add_test(ipi, icr_x2apic_and_self_ipi);
	tcase_add_test(ipi, self_ipi_loops_back_without_deadlock);
	suite_add_tcase(s, ipi);

	tcase_add_test(prio, tpr_and_ppr);
	tcase_add_test(prio, eoi_nested_order);
	tcase_add_test(prio, level_eoi_callback);
	tcase_add_test(prio, pv_eoi_arm_disarm);
	suite_add_tcase(s, prio);

	tcase_add_test(acc, accept_delivery_modes);
	tcase_add_test(acc, lint0_virtual_wire);
	tcase_add_test(acc, lint_nmi_and_fixed_level);
	tcase_add_test(acc, init_reset_keeps_id_and_base);
	suite_add_tcase(s, acc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(lapic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
