#include "vcpu/cpu_state.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#ifndef KVM_CAP_XSAVE2
#define KVM_CAP_XSAVE2 208
#endif
#ifndef KVM_GET_XSAVE2
#define KVM_GET_XSAVE2 _IOR(KVMIO, 0xcf, struct kvm_xsave)
#endif

#define X86_CR0_PE (1ull << 0)
#define X86_CR0_ET (1ull << 4)
#define X86_CR0_NW (1ull << 29)
#define X86_CR0_CD (1ull << 30)
#define X86_CR0_PG (1ull << 31)
#define X86_CR4_PAE (1ull << 5)
#define EFER_SCE (1ull << 0)
#define EFER_LME (1ull << 8)
#define EFER_LMA (1ull << 10)

/* The MSRs that matter to a running guest and that KVM keeps per vCPU.
 * The LAPIC's MSRs (APIC_BASE, TSC_DEADLINE, x2APIC) are not here: they
 * live in our userspace LAPIC state. */
static const uint32_t wanted_msrs[] = {
	0x10,       /* IA32_TSC */
	0x3B,       /* IA32_TSC_ADJUST */
	0x174, 0x175, 0x176, /* SYSENTER CS/ESP/EIP */
	0x1A0,      /* IA32_MISC_ENABLE */
	0x277,      /* IA32_PAT */
	0x2FF,      /* MTRR default type */
	0x200, 0x201, 0x202, 0x203, 0x250, 0x258, 0x259, /* some MTRRs */
	0xC0000081, /* STAR */
	0xC0000082, /* LSTAR */
	0xC0000083, /* CSTAR */
	0xC0000084, /* SFMASK */
	0xC0000102, /* KERNEL_GS_BASE */
	0xC0000103, /* TSC_AUX */
	0x48,       /* SPEC_CTRL */
	0x4b564d00, /* kvmclock wall clock (new) */
	0x4b564d01, /* kvmclock system time (new) */
	0x4b564d03, /* steal time */
	0x11, 0x12, /* kvmclock (old) */
};

int cpu_state__msr_list(int kvm_fd, struct cpu_msr_list *out)
{
	struct kvm_msr_list probe = { .nmsrs = 0 };
	struct kvm_msr_list *all;
	size_t i, j;

	memset(out, 0, sizeof(*out));
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, &probe) < 0 && errno != E2BIG)
		return -1;
	all = calloc(1, sizeof(*all) + probe.nmsrs * sizeof(uint32_t));
	if (!all)
		return -1;
	all->nmsrs = probe.nmsrs;
	if (ioctl(kvm_fd, KVM_GET_MSR_INDEX_LIST, all) < 0) {
		free(all);
		return -1;
	}
	for (i = 0; i < sizeof(wanted_msrs) / sizeof(wanted_msrs[0]); i++)
		for (j = 0; j < all->nmsrs; j++)
			if (all->indices[j] == wanted_msrs[i] &&
			    out->nr < CPU_STATE_MAX_MSRS)
				out->index[out->nr++] = wanted_msrs[i];
	free(all);
	return 0;
}

static int msrs_io(int vcpu_fd, unsigned long req, struct cpu_msr *m,
		   uint32_t n)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[CPU_STATE_MAX_MSRS];
	} buf;
	uint32_t i;
	int r;

	memset(&buf, 0, sizeof(buf));
	buf.hdr.nmsrs = n;
	for (i = 0; i < n; i++) {
		buf.e[i].index = m[i].index;
		buf.e[i].data = m[i].value;
	}
	r = ioctl(vcpu_fd, req, &buf);
	if (r < 0 || (uint32_t)r != n)
		return -1;
	for (i = 0; i < n; i++)
		m[i].value = buf.e[i].data;
	return 0;
}

int cpu_state__get(int vcpu_fd, const struct cpu_msr_list *msrs,
		   struct cpu_state *st, char *err, size_t errlen)
{
	uint32_t i;

	memset(st, 0, sizeof(*st));
	if (ioctl(vcpu_fd, KVM_GET_REGS, &st->regs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_SREGS, &st->sregs) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &st->events) < 0) {
		snprintf(err, errlen, "reading vCPU registers: %s",
			 strerror(errno));
		return -1;
	}
	st->has_xcrs = ioctl(vcpu_fd, KVM_GET_XCRS, &st->xcrs) == 0;
	st->has_debugregs =
		ioctl(vcpu_fd, KVM_GET_DEBUGREGS, &st->debugregs) == 0;
	st->nr_msrs = msrs->nr;
	for (i = 0; i < msrs->nr; i++)
		st->msrs[i].index = msrs->index[i];
	if (msrs_io(vcpu_fd, KVM_GET_MSRS, st->msrs, st->nr_msrs) < 0) {
		snprintf(err, errlen, "reading vCPU MSRs: %s", strerror(errno));
		return -1;
	}
	return 0;
}

int cpu_state__set(int vcpu_fd, const struct cpu_state *st, char *err,
		   size_t errlen)
{
	struct cpu_msr m[CPU_STATE_MAX_MSRS];
	struct kvm_vcpu_events ev = st->events;

	if (st->nr_msrs > CPU_STATE_MAX_MSRS) {
		snprintf(err, errlen, "vCPU state has %u MSRs (max %d)",
			 st->nr_msrs, CPU_STATE_MAX_MSRS);
		return -1;
	}
	/* sregs before MSRs: EFER/long mode must be in place for the
	 * syscall MSRs to be accepted; XCRs before events. */
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &st->sregs) < 0 ||
	    ioctl(vcpu_fd, KVM_SET_REGS, &st->regs) < 0) {
		snprintf(err, errlen, "loading vCPU registers: %s",
			 strerror(errno));
		return -1;
	}
	if (st->has_xcrs && ioctl(vcpu_fd, KVM_SET_XCRS, &st->xcrs) < 0) {
		snprintf(err, errlen, "loading XCRs: %s", strerror(errno));
		return -1;
	}
	if (st->has_debugregs &&
	    ioctl(vcpu_fd, KVM_SET_DEBUGREGS, &st->debugregs) < 0) {
		snprintf(err, errlen, "loading debug registers: %s",
			 strerror(errno));
		return -1;
	}
	memcpy(m, st->msrs, sizeof(m));
	if (msrs_io(vcpu_fd, KVM_SET_MSRS, m, st->nr_msrs) < 0) {
		snprintf(err, errlen, "loading vCPU MSRs: %s", strerror(errno));
		return -1;
	}
	/* Flags select which parts of the events KVM applies. */
	ev.flags = KVM_VCPUEVENT_VALID_NMI_PENDING | KVM_VCPUEVENT_VALID_SHADOW;
	if (ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0) {
		snprintf(err, errlen, "loading vCPU events: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

int cpu_state__xsave_size(int vm_fd)
{
	int sz = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return sz > (int)sizeof(struct kvm_xsave) ? sz
						  : (int)sizeof(struct kvm_xsave);
}

int cpu_state__get_xsave(int vcpu_fd, void *buf, size_t size)
{
	if (size > sizeof(struct kvm_xsave) &&
	    ioctl(vcpu_fd, KVM_GET_XSAVE2, buf) == 0)
		return 0;
	return ioctl(vcpu_fd, KVM_GET_XSAVE, buf) < 0 ? -1 : 0;
}

int cpu_state__set_xsave(int vcpu_fd, const void *buf, size_t size)
{
	return ioctl(vcpu_fd, KVM_SET_XSAVE, buf) < 0 ? -1 : 0;
}

static void real_seg(struct kvm_segment *s, uint16_t sel, uint8_t type)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = (uint64_t)sel << 4;
	s->limit = 0xFFFF;
	s->type = type;
	s->present = 1;
	s->s = 1;
}

int cpu_state__reset_to_init(int vcpu_fd)
{
	struct kvm_sregs s;
	struct kvm_regs r;
	struct kvm_fpu fpu;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -1;
	real_seg(&s.cs, 0xF000, 0xB);
	s.cs.base = 0xFFFF0000;
	real_seg(&s.ds, 0, 3);
	real_seg(&s.es, 0, 3);
	real_seg(&s.fs, 0, 3);
	real_seg(&s.gs, 0, 3);
	real_seg(&s.ss, 0, 3);
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.limit = 0xFFFF;
	s.tr.type = 0xB;
	s.tr.present = 1;
	memset(&s.ldt, 0, sizeof(s.ldt));
	s.ldt.limit = 0xFFFF;
	s.ldt.type = 2;
	s.ldt.present = 1;
	s.gdt.base = s.idt.base = 0;
	s.gdt.limit = s.idt.limit = 0xFFFF;
	/* INIT keeps CD/NW as they were; a fresh CPU has them set. */
	s.cr0 = X86_CR0_ET | (s.cr0 & (X86_CR0_CD | X86_CR0_NW));
	s.cr2 = s.cr3 = s.cr4 = 0;
	s.efer = 0;
	memset(s.interrupt_bitmap, 0, sizeof(s.interrupt_bitmap));
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.rip = 0xFFF0;
	r.rflags = 0x2;
	r.rdx = 0x600; /* family/model/stepping placeholder as after RESET */
	if (ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0)
		return -1;
	memset(&fpu, 0, sizeof(fpu));
	fpu.fcw = 0x37F;
	fpu.mxcsr = 0x1F80;
	return ioctl(vcpu_fd, KVM_SET_FPU, &fpu) < 0 ? -1 : 0;
}

int cpu_state__start_sipi(int vcpu_fd, uint8_t vector)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0 ||
	    ioctl(vcpu_fd, KVM_GET_REGS, &r) < 0)
		return -1;
	real_seg(&s.cs, (uint16_t)(vector << 8), 0xB);
	r.rip = 0;
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -1;
	return ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0 ? -1 : 0;
}

static void flat_seg(struct kvm_segment *s, uint16_t sel, bool code, bool l)
{
	memset(s, 0, sizeof(*s));
	s->selector = sel;
	s->base = 0;
	s->limit = 0xFFFFFFFF;
	s->type = code ? 0xB : 0x3; /* execute/read accessed, r/w accessed */
	s->present = 1;
	s->s = 1;
	s->g = 1;
	s->l = l;
	s->db = !l;
}

int cpu_state__enter_boot(int vcpu_fd, const struct boot_entry *e)
{
	struct kvm_sregs s;
	struct kvm_regs r;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &s) < 0)
		return -1;
	if (e->mode == BOOT_MODE_REAL16)
		return cpu_state__reset_to_init(vcpu_fd);
	flat_seg(&s.cs, e->cs_sel, true, e->mode == BOOT_MODE_LONG64);
	flat_seg(&s.ds, e->ds_sel, false, false);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.gdt.base = e->gdt_base;
	s.gdt.limit = e->gdt_limit;
	s.idt.base = 0;
	s.idt.limit = 0;
	memset(&s.tr, 0, sizeof(s.tr));
	s.tr.type = 0xB; /* busy 32/64-bit TSS: VMX entry insists */
	s.tr.present = 1;
	s.tr.limit = 0x67;
	if (e->mode == BOOT_MODE_LONG64) {
		s.cr3 = e->cr3;
		s.cr4 = X86_CR4_PAE;
		s.cr0 = X86_CR0_PE | X86_CR0_PG | X86_CR0_ET;
		s.efer = EFER_LME | EFER_LMA | EFER_SCE;
	} else {
		s.cr0 = X86_CR0_PE | X86_CR0_ET;
		s.cr4 = 0;
		s.efer = 0;
	}
	if (ioctl(vcpu_fd, KVM_SET_SREGS, &s) < 0)
		return -1;
	memset(&r, 0, sizeof(r));
	r.rip = e->rip;
	r.rsp = e->rsp;
	r.rsi = e->rsi;
	r.rax = e->rax;
	r.rbx = e->rbx;
	r.rflags = 0x2;
	return ioctl(vcpu_fd, KVM_SET_REGS, &r) < 0 ? -1 : 0;
}

const char *cpu_state__mode_name(const struct kvm_sregs *s)
{
	if (!(s->cr0 & X86_CR0_PE))
		return "real mode";
	if (s->efer & EFER_LMA)
		return s->cs.l ? "long mode 64-bit" : "long mode compat";
	if (s->cr0 & X86_CR0_PG)
		return s->cs.db ? "protected 32-bit, paging" :
				  "protected 16-bit, paging";
	return s->cs.db ? "protected 32-bit" : "protected 16-bit";
}
