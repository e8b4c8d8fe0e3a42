/* PVM hosts run a guest's SYSCALL only halfway: RIP goes to LSTAR and RCX,
 * R11 and RFLAGS are right, but the vCPU stays at user privilege (CS/SS
 * keep the user selectors).  Fetching the kernel's entry code at user
 * privilege then raises #PF (or, where the page is user-readable, the first
 * privileged instruction raises #GP) at LSTAR.  krg-vmm completes the
 * SYSCALL there: guest-debug breakpoints on the guest's #PF and #GP
 * handlers stop the vCPU before a handler runs; when the exception frame
 * shows a fault at LSTAR from user mode, the vCPU is put where SYSCALL would
 * have put it (kernel CS/SS from STAR, CPL 0, the user RSP) and resumes at
 * LSTAR.  Any other fault runs untouched: the breakpoint is swapped for one
 * single step over the handler's first instruction (KVM's emulator, which
 * runs all guest kernel code on PVM, ignores RFLAGS.RF), then re-armed.
 * Only active with the PVM profile, for Linux guests (machine's
 * syscall_fix). */
#ifndef KRG_VCPU_PVM_SYSCALL_H
#define KRG_VCPU_PVM_SYSCALL_H

#include <stdbool.h>
#include <stdint.h>

struct vcpu;

#define MSR_LSTAR 0xC0000082u
#define MSR_STAR 0xC0000081u

struct pvm_syscall_fix {
	uint64_t lstar;       /* the guest's SYSCALL target */
	uint64_t gp_handler;  /* IDT vector 13's handler: breakpoint 0 */
	uint64_t pf_handler;  /* IDT vector 14's handler: breakpoint 1 */
	bool armed;
	bool stepping;        /* single-stepping the handler's first insn */
	uint64_t completed;   /* SYSCALLs completed */
	uint64_t passed;      /* other #GPs let through */
};

/* Pure: the handler address of a 16-byte long-mode IDT gate, or 0 if the
 * gate is not a present interrupt/trap gate. */
uint64_t pvm_syscall__gate_offset(const uint8_t gate[16]);

/* Pure: is this #GP/#PF frame (error code, RIP, CS, RFLAGS, RSP, SS) a
 * SYSCALL that stopped at LSTAR in user mode?  User code can never run at
 * LSTAR (a kernel address) otherwise. */
bool pvm_syscall__is_stuck_syscall(const uint64_t frame[6], uint64_t lstar);

/* (Re)reads LSTAR and the #GP gate and places the breakpoint; called when
 * the guest writes LSTAR and after a restore.  Returns 0 or -1. */
int pvm_syscall__arm(struct vcpu *v);

/* KVM_EXIT_DEBUG: completes a stuck SYSCALL or lets a #GP through.
 * Returns 0 to continue, -1 if the vCPU must stop. */
int pvm_syscall__debug_exit(struct vcpu *v);

#endif
