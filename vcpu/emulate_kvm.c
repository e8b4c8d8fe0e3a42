/* The fallback's side facing KVM: the failed instruction's bytes from
 * kvm_run, registers between KVM's structs and the emulator's, the event an
 * emulated instruction raises, and the host CPU facts the emulator needs. */
#include "vcpu/emulate.h"

#include <cpuid.h>
#include <string.h>

#include <linux/kvm.h>

void emulate__env_from_host(struct emu_env *env)
{
	unsigned a, b, c, dx;

	env->no_lzcnt = !(__get_cpuid(0x80000001, &a, &b, &c, &dx) &&
			  (c & (1u << 5)));
	env->no_tzcnt = !(__get_cpuid_count(7, 0, &a, &b, &c, &dx) &&
			  (b & (1u << 3)));
}

int emulate__insn_from_run(const struct kvm_run *run,
			   uint8_t bytes[EMU_MAX_INSN_LEN], size_t *len)
{
	size_t n;

	if (!run || run->exit_reason != KVM_EXIT_INTERNAL_ERROR ||
	    run->emulation_failure.suberror != KVM_INTERNAL_ERROR_EMULATION ||
	    run->emulation_failure.ndata < 3 ||
	    !(run->emulation_failure.flags &
	      KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES))
		return -1;
	/* KVM pads the rest with NOPs: only insn_size bytes are real. */
	n = run->emulation_failure.insn_size;
	if (!n)
		return -1;
	if (n > EMU_MAX_INSN_LEN)
		n = EMU_MAX_INSN_LEN;
	memcpy(bytes, run->emulation_failure.insn_bytes, n);
	*len = n;
	return 0;
}

void emulate__regs_from_kvm(const struct kvm_regs *k,
			    const struct kvm_sregs *s, struct emu_regs *regs)
{
	const uint64_t g[EMU_NR_GPRS] = {
		k->rax, k->rcx, k->rdx, k->rbx, k->rsp, k->rbp, k->rsi, k->rdi,
		k->r8, k->r9, k->r10, k->r11, k->r12, k->r13, k->r14, k->r15,
	};

	memset(regs, 0, sizeof(*regs));
	memcpy(regs->gpr, g, sizeof(g));
	regs->rip = k->rip;
	regs->rflags = k->rflags;
	regs->cs_base = s->cs.base;
	regs->ds_base = s->ds.base;
	regs->es_base = s->es.base;
	regs->ss_base = s->ss.base;
	regs->cpl = s->cs.dpl;
	regs->cr0 = s->cr0;
	regs->cr4 = s->cr4;
	regs->fs_base = s->fs.base;
	regs->gs_base = s->gs.base;
	regs->gdt_base = s->gdt.base;
	regs->gdt_limit = s->gdt.limit;
	regs->ldt_base = s->ldt.base;
	regs->ldt_limit = s->ldt.limit;
	regs->ldt_usable = s->ldt.present && !s->ldt.unusable;
	regs->mode = emulate__cpu_mode(s->cr0, s->efer, k->rflags, s->cs.l,
				       s->cs.db);
}

void emulate__regs_to_kvm(const struct emu_regs *r, struct kvm_regs *k)
{
	k->rax = r->gpr[EMU_RAX]; k->rcx = r->gpr[EMU_RCX];
	k->rdx = r->gpr[EMU_RDX]; k->rbx = r->gpr[EMU_RBX];
	k->rsp = r->gpr[EMU_RSP]; k->rbp = r->gpr[EMU_RBP];
	k->rsi = r->gpr[EMU_RSI]; k->rdi = r->gpr[EMU_RDI];
	k->r8 = r->gpr[EMU_R8]; k->r9 = r->gpr[EMU_R9];
	k->r10 = r->gpr[EMU_R10]; k->r11 = r->gpr[EMU_R11];
	k->r12 = r->gpr[EMU_R12]; k->r13 = r->gpr[EMU_R13];
	k->r14 = r->gpr[EMU_R14]; k->r15 = r->gpr[EMU_R15];
	k->rip = r->rip;
	k->rflags = r->rflags;
}

int emulate__apply_events(const struct emu_action *a,
			  struct kvm_vcpu_events *ev)
{
	if (!a || !ev || a->kind == EMU_REFUSED)
		return -1;
	if (a->kind == EMU_DONE)
		return 0;
	if (ev->exception.injected || ev->exception.pending ||
	    ev->interrupt.injected || ev->nmi.injected)
		return -1;
	if (a->kind == EMU_INJECT_EXCEPTION) {
		ev->exception.injected = 1;
		ev->exception.pending = 0;
		ev->exception.nr = a->vector;
		ev->exception.has_error_code = a->has_error_code;
		ev->exception.error_code = a->error_code;
		ev->exception_has_payload = 0;
		ev->exception_payload = 0;
		return 0;
	}
	/* soft=0: RIP is already past the instruction (see emulate.h). */
	ev->interrupt.injected = 1;
	ev->interrupt.nr = a->vector;
	ev->interrupt.soft = 0;
	return 0;
}
