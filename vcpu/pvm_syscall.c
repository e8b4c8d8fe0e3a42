#include "vcpu/pvm_syscall.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu/pagewalk.h"
#include "vcpu/vcpu.h"
#include "vmm/bytes.h"
#include "vmm/machine.h"

#define GP_VECTOR 13
#define PF_VECTOR 14
#define RFLAGS_RF (1ull << 16)
#define DR7_L0_EXEC 0x1ull /* L0, RW0 = execute, LEN0 = 1 byte */
#define DR7_L1_EXEC 0x4ull /* L1, RW1 = execute, LEN1 = 1 byte */

uint64_t pvm_syscall__gate_offset(const uint8_t gate[16])
{
	uint8_t type = gate[5] & 0x1F; /* S = 0, type in bits 3:0 */
	bool present = gate[5] & 0x80;

	if (!present || (type != 0x0E && type != 0x0F))
		return 0;
	return (uint64_t)get_le16(gate) | (uint64_t)get_le16(gate + 6) << 16 |
	       (uint64_t)get_le32(gate + 8) << 32;
}

bool pvm_syscall__is_stuck_syscall(const uint64_t frame[6], uint64_t lstar)
{
	/* err, rip, cs, rflags, rsp, ss: a fault at LSTAR at CPL 3. */
	return lstar && frame[1] == lstar && (frame[2] & 3) == 3;
}

static int read_gpa(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	return guest_mem__read(ctx, gpa, buf, len);
}

static int read_virt(struct vcpu *v, const struct kvm_sregs *s, uint64_t gva,
		     void *buf, size_t len)
{
	struct pagewalk_env pw = {
		.cpu = { s->cr0, s->cr3, s->cr4, s->efer, 0 },
		.read_gpa = read_gpa,
		.ctx = &v->m->mem,
	};

	return pagewalk__read_virt(&pw, gva, buf, len, NULL) == PAGEWALK_OK ?
		       0 : -1;
}

static int get_msr(struct vcpu *v, uint32_t index, uint64_t *val)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} buf = { .hdr.nmsrs = 1, .e.index = index };

	if (ioctl(v->fd, KVM_GET_MSRS, &buf) != 1)
		return -1;
	*val = buf.e.data;
	return 0;
}

static int set_debug(struct vcpu *v, uint64_t gp, uint64_t pf, bool step)
{
	struct kvm_guest_debug dbg;

	memset(&dbg, 0, sizeof(dbg));
	if (step) {
		dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_SINGLESTEP;
	} else if (gp || pf) {
		dbg.control = KVM_GUESTDBG_ENABLE | KVM_GUESTDBG_USE_HW_BP;
		dbg.arch.debugreg[0] = gp;
		dbg.arch.debugreg[1] = pf;
		dbg.arch.debugreg[7] = (gp ? DR7_L0_EXEC : 0) |
				       (pf ? DR7_L1_EXEC : 0);
	}
	return ioctl(v->fd, KVM_SET_GUEST_DEBUG, &dbg);
}

int pvm_syscall__arm(struct vcpu *v)
{
	struct pvm_syscall_fix *f = &v->sysfix;
	struct kvm_sregs s;
	uint8_t gate[32];
	uint64_t gp = 0, pf = 0;

	if (!v->m->syscall_fix)
		return 0;
	if (get_msr(v, MSR_LSTAR, &f->lstar) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return -1;
	if (f->lstar && s.idt.limit >= PF_VECTOR * 16 + 15 &&
	    read_virt(v, &s, s.idt.base + GP_VECTOR * 16, gate, 32) == 0) {
		gp = pvm_syscall__gate_offset(gate);
		pf = pvm_syscall__gate_offset(gate + 16);
	}
	if (gp == f->gp_handler && pf == f->pf_handler &&
	    f->armed == (gp || pf))
		return 0;
	if (set_debug(v, gp, pf, false) < 0)
		return -1;
	f->gp_handler = gp;
	f->pf_handler = pf;
	f->armed = gp || pf;
	return 0;
}

int pvm_syscall__debug_exit(struct vcpu *v)
{
	struct pvm_syscall_fix *f = &v->sysfix;
	struct kvm_regs r;
	struct kvm_sregs s;
	uint64_t frame[6], star;

	if (f->stepping) {
		/* Stepped over the handler's first instruction: re-arm. */
		f->stepping = false;
		f->armed = false;
		f->gp_handler = f->pf_handler = 0;
		return pvm_syscall__arm(v) < 0 ? -1 : 0;
	}
	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		goto fail;
	if (!f->armed || (r.rip != f->gp_handler && r.rip != f->pf_handler) ||
	    read_virt(v, &s, r.rsp, frame, sizeof(frame)) < 0 ||
	    !pvm_syscall__is_stuck_syscall(frame, f->lstar)) {
		/* A genuine #GP (or a stale breakpoint): let the handler run
		 * one instruction without the breakpoint. */
		f->passed++;
		f->stepping = true;
		return set_debug(v, 0, 0, true) < 0 ? -1 : 0;
	}
	if (get_msr(v, MSR_STAR, &star) < 0)
		goto fail;
	/* Where SYSCALL puts the CPU: CS = STAR[47:32], SS = CS + 8, CPL 0;
	 * RIP, RCX, R11 and the masked RFLAGS PVM already got right. */
	s.cs.selector = (uint16_t)((star >> 32) & ~3ull);
	s.cs.base = 0;
	s.cs.limit = 0xFFFFFFFF;
	s.cs.type = 0xB;
	s.cs.s = 1;
	s.cs.dpl = 0;
	s.cs.present = 1;
	s.cs.l = 1;
	s.cs.db = 0;
	s.cs.g = 1;
	s.ss = s.cs;
	s.ss.selector = (uint16_t)(s.cs.selector + 8);
	s.ss.type = 0x3;
	s.ss.l = 0;
	s.ss.db = 1;
	r.rip = f->lstar;
	r.rsp = frame[4];
	r.rflags = frame[3] & ~RFLAGS_RF;
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0 ||
	    ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		goto fail;
	if (f->completed++ == 0)
		machine__log(v->m, "fallback: completed syscall (PVM left it at "
			     "CPL 3) at LSTAR 0x%llx; further ones counted",
			     (unsigned long long)f->lstar);
	return 0;
fail:
	machine__request_stop(v->m, KRG_EXIT_FAILURE,
			      "vCPU %u: completing a syscall failed: %s",
			      v->index, strerror(errno));
	return -1;
}
