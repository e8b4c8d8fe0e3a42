/* LAPIC register access: the xAPIC MMIO page, the x2APIC MSRs, APIC_BASE
 * and IA32_TSC_DEADLINE, and turning ICR writes into apic_msg. */
#include "vcpu/lapic_priv.h"

#include <string.h>

#define ICR_LO_WRITABLE 0x000CCFFFu     /* delivery status is read-only */
#define X2APIC_ICR_RESERVED 0xFFF32000u /* bits 13, 17:16, 31:20 */

static int bank_index(uint32_t reg, uint32_t base)
{
	return reg >= base && reg < base + 0x80 ? (int)((reg - base) >> 4) : -1;
}

/* Registers readable in both modes; -1 for a reserved offset. */
static int reg_read(struct lapic *l, uint32_t reg, uint32_t *val)
{
	int i;

	switch (reg) {
	case LAPIC_REG_ID:
		*val = lapic_x2apic(l) ? l->s.id : l->s.id << 24;
		return 0;
	case LAPIC_REG_VERSION: *val = LAPIC_VERSION; return 0;
	case LAPIC_REG_TPR: *val = l->s.tpr; return 0;
	case LAPIC_REG_APR: *val = lapic_core__apr(l); return 0;
	case LAPIC_REG_PPR: *val = lapic_core__ppr(l); return 0;
	case LAPIC_REG_EOI: *val = 0; return 0;
	case LAPIC_REG_RRD: *val = 0; return 0;
	case LAPIC_REG_LDR: *val = l->s.ldr; return 0;
	case LAPIC_REG_DFR: *val = l->s.dfr; return 0;
	case LAPIC_REG_SVR: *val = l->s.svr; return 0;
	case LAPIC_REG_ESR: *val = l->s.esr; return 0;
	case LAPIC_REG_LVT_CMCI: *val = l->s.lvt_cmci; return 0;
	case LAPIC_REG_ICR_LO: *val = l->s.icr_lo; return 0;
	case LAPIC_REG_ICR_HI: *val = l->s.icr_hi; return 0;
	case LAPIC_REG_LVT_TIMER: *val = l->s.lvt_timer; return 0;
	case LAPIC_REG_LVT_THERMAL: *val = l->s.lvt_thermal; return 0;
	case LAPIC_REG_LVT_PERF: *val = l->s.lvt_perf; return 0;
	case LAPIC_REG_LVT_LINT0: *val = l->s.lvt_lint0; return 0;
	case LAPIC_REG_LVT_LINT1: *val = l->s.lvt_lint1; return 0;
	case LAPIC_REG_LVT_ERROR: *val = l->s.lvt_error; return 0;
	case LAPIC_REG_TIMER_ICR: *val = l->s.timer_icr; return 0;
	case LAPIC_REG_TIMER_CCR: *val = lapic_timer__current(l); return 0;
	case LAPIC_REG_TIMER_DCR: *val = l->s.timer_dcr; return 0;
	}
	if ((i = bank_index(reg, LAPIC_REG_ISR)) >= 0)
		*val = l->s.isr[i];
	else if ((i = bank_index(reg, LAPIC_REG_TMR)) >= 0)
		*val = l->s.tmr[i];
	else if ((i = bank_index(reg, LAPIC_REG_IRR)) >= 0)
		*val = l->s.irr[i];
	else
		return -1;
	return 0;
}

/* The ICR was written: queue the message it describes. */
static void send_icr(struct lapic *l, struct lapic_deferred *d)
{
	uint32_t lo = l->s.icr_lo;
	struct apic_msg m;

	memset(&m, 0, sizeof(m));
	m.vector = lo & 0xFF;
	m.delivery = (lo >> 8) & 7;
	m.dest_logical = (lo >> 11) & 1;
	m.level = (lo >> 14) & 1;
	m.trigger_level = (lo >> 15) & 1;
	m.shorthand = (lo >> 18) & 3;
	m.x2apic = lapic_x2apic(l);
	m.dest = m.x2apic ? l->s.icr_hi : l->s.icr_hi >> 24;
	m.source = l->vcpu_index;

	switch (m.delivery) {
	case 3: /* reserved */
		return;
	case APIC_DM_INIT:
		/* INIT level de-assert: ignored, as real hardware does. */
		if (!m.level && m.trigger_level)
			return;
		break;
	case APIC_DM_FIXED:
	case APIC_DM_LOWEST:
		if (m.vector < 16) {
			lapic_core__error(l, LAPIC_ESR_SEND_ILLEGAL);
			return;
		}
		break;
	default:
		break;
	}
	d->send = true;
	d->msg = m;
}

/* Writes with the same meaning in both modes; -1 if reg is not one. */
static int reg_write_common(struct lapic *l, uint32_t reg, uint32_t val,
			    struct lapic_deferred *d)
{
	switch (reg) {
	case LAPIC_REG_TPR:
		l->s.tpr = val & 0xFF;
		return 0;
	case LAPIC_REG_EOI:
		lapic_core__eoi(l, d);
		return 0;
	case LAPIC_REG_SVR:
		lapic_core__write_svr(l, val);
		return 0;
	case LAPIC_REG_ESR:
		/* A write latches the errors seen since the last one. */
		l->s.esr = l->s.esr_pending;
		l->s.esr_pending = 0;
		return 0;
	case LAPIC_REG_LVT_TIMER:
		lapic_timer__write_lvt(l, val);
		return 0;
	case LAPIC_REG_LVT_THERMAL:
	case LAPIC_REG_LVT_PERF:
	case LAPIC_REG_LVT_CMCI: {
		uint32_t *lvt = reg == LAPIC_REG_LVT_THERMAL ? &l->s.lvt_thermal :
				reg == LAPIC_REG_LVT_PERF ? &l->s.lvt_perf :
				&l->s.lvt_cmci;

		*lvt = (val & 0x000107FF) |
		       (lapic_sw_enabled(l) ? 0 : LAPIC_LVT_MASKED);
		return 0;
	}
	case LAPIC_REG_LVT_LINT0:
		lapic_core__write_lvt_lint(l, 0, val);
		return 0;
	case LAPIC_REG_LVT_LINT1:
		lapic_core__write_lvt_lint(l, 1, val);
		return 0;
	case LAPIC_REG_LVT_ERROR:
		l->s.lvt_error = (val & 0x000100FF) |
				 (lapic_sw_enabled(l) ? 0 : LAPIC_LVT_MASKED);
		return 0;
	case LAPIC_REG_TIMER_ICR:
		lapic_timer__write_icr(l, val);
		return 0;
	case LAPIC_REG_TIMER_DCR:
		lapic_timer__write_dcr(l, val);
		return 0;
	}
	return -1;
}

static void xapic_write(struct lapic *l, uint32_t reg, uint32_t val,
			struct lapic_deferred *d)
{
	uint32_t dummy;

	if (!reg_write_common(l, reg, val, d))
		return;
	switch (reg) {
	case LAPIC_REG_ID:
		l->s.id = val >> 24;
		return;
	case LAPIC_REG_LDR:
		l->s.ldr = val & 0xFF000000;
		return;
	case LAPIC_REG_DFR:
		l->s.dfr = val | 0x0FFFFFFF;
		return;
	case LAPIC_REG_ICR_HI:
		l->s.icr_hi = val & 0xFF000000;
		return;
	case LAPIC_REG_ICR_LO:
		l->s.icr_lo = val & ICR_LO_WRITABLE;
		send_icr(l, d);
		return;
	}
	/* Read-only registers ignore writes; holes are an error. */
	if (reg_read(l, reg, &dummy))
		lapic_core__error(l, LAPIC_ESR_ILLEGAL_REG);
}

bool lapic__mmio_enabled(struct lapic *l, uint64_t *base)
{
	bool live;

	pthread_mutex_lock(&l->lock);
	live = lapic_hw_enabled(l) && !lapic_x2apic(l);
	if (base)
		*base = l->s.apic_base_msr & APIC_BASE_ADDR_MASK;
	pthread_mutex_unlock(&l->lock);
	return live;
}

void lapic__mmio(struct lapic *l, uint64_t offset, uint8_t *data,
		 uint32_t len, bool is_write)
{
	struct lapic_deferred d = LAPIC_DEFERRED_INIT;
	uint32_t reg = (uint32_t)(offset & 0xFF0), byte = offset & 0xF;
	uint32_t val = 0;
	bool had;

	if (!data || !len)
		return;
	if (!is_write)
		memset(data, 0, len);
	if (offset >= 0x1000)
		return;
	pthread_mutex_lock(&l->lock);
	/* In x2APIC mode (or disabled) the page is not decoded. */
	if (!lapic_hw_enabled(l) || lapic_x2apic(l))
		goto out;
	had = lapic_core__has_work(l);
	if (is_write) {
		/* Registers take aligned 32-bit stores only. */
		if (len != 4 || byte)
			goto out;
		memcpy(&val, data, 4);
		xapic_write(l, reg, val, &d);
		lapic_core__update(l, had);
	} else if (byte < 4) {
		if (reg_read(l, reg, &val)) {
			lapic_core__error(l, LAPIC_ESR_ILLEGAL_REG);
			lapic_core__update(l, had);
		}
		val >>= byte * 8;
		memcpy(data, &val, len < 4 - byte ? len : 4 - byte);
	}
out:
	pthread_mutex_unlock(&l->lock);
	lapic_core__flush(l, &d);
}

bool lapic__owns_msr(uint32_t msr)
{
	return msr == MSR_IA32_APICBASE || msr == MSR_IA32_TSC_DEADLINE ||
	       (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST);
}

static int x2apic_read(struct lapic *l, uint32_t reg, uint64_t *val)
{
	uint32_t v;

	switch (reg) {
	case LAPIC_REG_ICR_LO:
		*val = ((uint64_t)l->s.icr_hi << 32) | l->s.icr_lo;
		return 0;
	/* Gone in x2APIC mode, or write-only. */
	case LAPIC_REG_APR:
	case LAPIC_REG_EOI:
	case LAPIC_REG_RRD:
	case LAPIC_REG_DFR:
	case LAPIC_REG_ICR_HI:
	case LAPIC_REG_SELF_IPI:
		return -1;
	}
	if (reg_read(l, reg, &v))
		return -1;
	*val = v;
	return 0;
}

int lapic__msr_read(struct lapic *l, uint32_t msr, uint64_t *val)
{
	int ret = 0;

	pthread_mutex_lock(&l->lock);
	if (msr == MSR_IA32_APICBASE)
		*val = l->s.apic_base_msr;
	else if (msr == MSR_IA32_TSC_DEADLINE)
		*val = lapic_timer__read_tsc_deadline(l);
	else if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST &&
		 lapic_x2apic(l))
		ret = x2apic_read(l, (msr - MSR_X2APIC_FIRST) << 4, val);
	else
		ret = -1;
	pthread_mutex_unlock(&l->lock);
	return ret;
}

/* Legal moves: disabled <-> xAPIC, xAPIC -> x2APIC, x2APIC -> disabled. */
static int write_apic_base(struct lapic *l, uint64_t val)
{
	const uint64_t allowed = APIC_BASE_ADDR_MASK | APIC_BASE_BSP |
				 APIC_BASE_EXTD | APIC_BASE_EN;
	uint64_t old = l->s.apic_base_msr;
	bool old_en = old & APIC_BASE_EN, old_x2 = lapic_x2apic(l);
	bool en = val & APIC_BASE_EN, x2 = val & APIC_BASE_EXTD;

	if ((val & ~allowed) || (x2 && !en) || (old_x2 && en && !x2) ||
	    (!old_en && x2))
		return -1;
	/* The BSP flag is the hardware's, not the guest's. */
	l->s.apic_base_msr = (val & ~APIC_BASE_BSP) | (old & APIC_BASE_BSP);
	if (old_en && !en) {
		/* Disabling loses the APIC's state (SDM 10.4.3). */
		l->s.id = l->s.initial_id;
		lapic_core__reset_regs(l);
	} else if (!old_x2 && x2) {
		/* The x2APIC ID is the initial ID; the LDR derives from it. */
		l->s.id = l->s.initial_id;
		l->s.ldr = ((l->s.id >> 4) << 16) | (1u << (l->s.id & 0xF));
	}
	return 0;
}

static int x2apic_write(struct lapic *l, uint32_t reg, uint64_t val,
			struct lapic_deferred *d)
{
	if (reg == LAPIC_REG_ICR_LO) {
		if ((uint32_t)val & X2APIC_ICR_RESERVED)
			return -1;
		l->s.icr_lo = (uint32_t)val & ICR_LO_WRITABLE;
		l->s.icr_hi = (uint32_t)(val >> 32);
		send_icr(l, d);
		return 0;
	}
	if (val >> 32)
		return -1;
	switch (reg) {
	case LAPIC_REG_EOI:
	case LAPIC_REG_ESR:
		if (val)
			return -1;
		break;
	case LAPIC_REG_SELF_IPI: {
		uint32_t lo = l->s.icr_lo, hi = l->s.icr_hi;

		if (val & ~0xFFull)
			return -1;
		/* Fixed, edge, to self: reuse the ICR decoder without
		 * disturbing what the guest reads back from the ICR. */
		l->s.icr_lo = (uint32_t)val | ((uint32_t)APIC_SH_SELF << 18);
		send_icr(l, d);
		l->s.icr_lo = lo;
		l->s.icr_hi = hi;
		return 0;
	}
	}
	return reg_write_common(l, reg, (uint32_t)val, d);
}

int lapic__msr_write(struct lapic *l, uint32_t msr, uint64_t val)
{
	struct lapic_deferred d = LAPIC_DEFERRED_INIT;
	bool had;
	int ret;

	pthread_mutex_lock(&l->lock);
	had = lapic_core__has_work(l);
	if (msr == MSR_IA32_APICBASE) {
		ret = write_apic_base(l, val);
	} else if (msr == MSR_IA32_TSC_DEADLINE) {
		lapic_timer__write_tsc_deadline(l, val);
		ret = 0;
	} else if (msr >= MSR_X2APIC_FIRST && msr <= MSR_X2APIC_LAST &&
		   lapic_x2apic(l)) {
		ret = x2apic_write(l, (msr - MSR_X2APIC_FIRST) << 4, val, &d);
	} else {
		ret = -1;
	}
	if (!ret)
		lapic_core__update(l, had);
	pthread_mutex_unlock(&l->lock);
	lapic_core__flush(l, &d);
	return ret;
}
