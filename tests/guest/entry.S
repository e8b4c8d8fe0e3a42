/* Kernel entry and exit paths: the three ways in for a service (ud2,
 * int $0x80, syscall), the three ways back to user mode, and the
 * interrupt/exception stubs.  PVM emulates every kernel-mode
 * instruction, so the hot handlers (timer, IPI) are a dozen plain
 * instructions: count in the per-CPU area through %gs, EOI, iretq.
 * GS base is set once per CPU by wrmsr and never swapped: user mode
 * does not use %gs for anything else. */
#include "defs.h"

	.text
	.code64

/* EOI for the current CPU's LAPIC; clobbers rax, rcx, rdx.  With KVM's
 * PV EOI, as Linux does it: if the VMM set bit 0 of the per-CPU word,
 * clearing it is the EOI (no exit). */
.macro EOI
	btrq $0, %gs:PCPU_PV_EOI
	jnc 90f
	incq %gs:PCPU_PV_EOI_HITS
	jmp 92f
90:	cmpb $0, %gs:PCPU_X2APIC
	jne 91f
	movl $0xfee000b0, %eax
	movl $0, (%rax)
	jmp 92f
91:	movl $0x80b, %ecx
	xorl %eax, %eax
	xorl %edx, %edx
	wrmsr
92:
.endm

/* An interrupt or trap taken in user mode must find IF=1 in the frame:
 * user code never clears it.  A frame with the user's CS but IF=0 means
 * the VMM or KVM lost RFLAGS.IF (seen here with sysc=syscall under PVM,
 * where syscall leaves the guest at CPL3 with SFMASK's IF=0); iretq
 * would then leave user mode deaf to interrupts for good.  Count such
 * frames - user mode fails the test on them - and repair them so the
 * report gets out.  `off` is the offset of the saved RIP from rsp. */
.macro FIXUP_IF off
	testb $3, \off+8(%rsp)
	jz 93f
	testl $0x200, \off+16(%rsp)
	jnz 93f
	orl $0x200, \off+16(%rsp)
	incq %gs:PCPU_BAD_IF
93:
.endm

/* syscall: rax = number, rdi/rsi/rdx = arguments.  SFMASK cleared IF.
 * sys_dispatch(a0, a1, a2, nr) is ordinary C, so only rcx/r11 (the
 * return RIP/RFLAGS) need saving; the user side declares the rest of
 * the caller-saved registers clobbered. */
	.globl syscall_entry
syscall_entry:
	movl %cs, %r8d			/* PVM: syscall may leave us at CPL3 */
	testb $3, %r8b
	jnz syscall_not_cpl0
	movq %rsp, %gs:PCPU_USER_RSP
	movq %gs:PCPU_KSTACK, %rsp
	pushq %rcx
	pushq %r11
	movq %rax, %rcx
	call sys_dispatch
	popq %r11
	popq %rcx
	/* fall through */

/* Return to user mode at rcx with rflags r11 and the stack saved in
 * pcpu->user_rsp, keeping rax and rdi.  iretq unless uret= chose
 * otherwise (kernel.c says why). */
return_to_user:
	cmpb $URET_SYSRET, uret_mode(%rip)
	je 2f
	cmpb $URET_SYSEXIT, uret_mode(%rip)
	je 3f
	pushq $USER_SS
	pushq %gs:PCPU_USER_RSP
	pushq %r11
	pushq $USER_CS
	pushq %rcx
	iretq
2:	movq %gs:PCPU_USER_RSP, %rsp
	sysretq
3:	/* sysexitq: RIP = rdx, RSP = rcx, RFLAGS untouched. */
	movq %rcx, %rdx
	movq %gs:PCPU_USER_RSP, %rcx
	pushq %r11
	popfq
	sysexitq

/* The other two ways into the kernel for a service (user chooses with
 * sysc=): a ud2 at the user's gate raises #UD, or int $0x80 through a
 * DPL3 gate.  Both arrive through the IDT like any exception - the path
 * PVM gets right, where its `syscall` leaves the guest at CPL3 - and
 * return with iretq, which restores the user's RFLAGS.IF too.  Register
 * convention as for syscall; rcx and r11 may be clobbered. */
	.balign 16
	.globl isr_ud
isr_ud:
	testb $3, 8(%rsp)		/* #UD in the kernel is a real one */
	jz 1f
	movq (%rsp), %rcx
	cmpw $0x0b0f, (%rcx)		/* ud2 */
	jne 1f
	addq $2, (%rsp)
	FIXUP_IF 0
	movq %rax, %rcx
	subq $8, %rsp			/* 5-qword frame: realign for C */
	call sys_dispatch
	addq $8, %rsp
	iretq
1:	pushq $0
	pushq $6
	jmp exc_common

	.balign 16
	.globl isr_int80
isr_int80:
	FIXUP_IF 0
	movq %rax, %rcx
	subq $8, %rsp
	call sys_dispatch
	addq $8, %rsp
	iretq

/* enter_user(rip, rsp, arg): first entry of a CPU into user mode. */
	.globl enter_user
enter_user:
	movq %rsi, %gs:PCPU_USER_RSP
	movq %rdi, %rcx
	movq %rdx, %rdi
	movl $USER_RFLAGS, %r11d
	jmp return_to_user

/* SYS_WAIT: sti's interrupt shadow covers hlt, so an interrupt that is
 * already pending wakes the hlt instead of being taken before it. */
	.globl k_wait_irq
k_wait_irq:
	sti
	hlt
	cli
	ret

/* Timer: count, stamp the TSC, count again if it interrupted user mode. */
	.balign 16
	.globl isr_timer
isr_timer:
	pushq %rax
	pushq %rdx
	pushq %rcx
	rdtsc
	shlq $32, %rdx
	orq %rdx, %rax
	movq %rax, %gs:PCPU_TIMER_TSC
	incq %gs:PCPU_TIMER_COUNT
	testb $3, 32(%rsp)		/* saved CS */
	jz 1f
	incq %gs:PCPU_TIMER_USER
1:	FIXUP_IF 24
	EOI
	popq %rcx
	popq %rdx
	popq %rax
	iretq

	.balign 16
	.globl isr_lvt_error
isr_lvt_error:
	incq %gs:PCPU_LVT_ERROR
	jmp count_eoi_return

	.balign 16
	.globl isr_pit
isr_pit:
	incq %gs:PCPU_PIT_COUNT
	jmp count_eoi_return

	.balign 16
	.globl isr_wake
isr_wake:
	incq %gs:PCPU_WAKEUPS
	jmp count_eoi_return

/* VEC_SCI: the SCI is a level that stays high while an enabled ACPI
 * event is pending; disabling the events (PM1_EN = 0) drops it before
 * the EOI, so it does not fire again.  User mode looks at PM1_STS. */
	.balign 16
	.globl isr_sci
isr_sci:
	pushq %rax
	pushq %rdx
	movl $0x602, %edx
	xorl %eax, %eax
	outw %ax, %dx
	popq %rdx
	popq %rax
	incq %gs:PCPU_SCI_COUNT
	jmp count_eoi_return

/* VEC_BLK: a virtio-blk MSI-X message (edge): count it, user mode looks
 * at the used ring. */
	.balign 16
	.globl isr_blk
isr_blk:
	incq %gs:PCPU_BLK_COUNT
	jmp count_eoi_return

/* VEC_PROBE: snapshot the LAPIC in C.  Nine pushes after the CPU's
 * five-qword frame leave the stack 16-byte aligned for the call. */
	.balign 16
	.globl isr_probe
isr_probe:
	pushq %rax
	pushq %rcx
	pushq %rdx
	pushq %rsi
	pushq %rdi
	pushq %r8
	pushq %r9
	pushq %r10
	pushq %r11
	call lapic_probe_snapshot
	EOI
	popq %r11
	popq %r10
	popq %r9
	popq %r8
	popq %rdi
	popq %rsi
	popq %rdx
	popq %rcx
	popq %rax
	iretq

	.balign 16
	.globl isr_spurious
isr_spurious:
	incq %gs:PCPU_SPURIOUS		/* no EOI for the spurious vector */
	FIXUP_IF 0
	iretq

/* One 16-byte stub per sender: vector VEC_IPI_BASE + n counts into
 * pcpu->ipi_cnt[n].  The jump is encoded by hand as rel32 so every stub
 * has the same size and the IDT builder can compute their addresses. */
	.balign 16
	.globl ipi_stubs
ipi_stubs:
	.set i, 0
	.rept MAXCPU
	.balign 16
	incl %gs:(PCPU_IPICNT + 4 * i)
	.byte 0xe9
	.long count_eoi_return - . - 4
	.set i, i + 1
	.endr
	.balign 16
	.globl ipi_stubs_end
ipi_stubs_end:

count_eoi_return:
	pushq %rax
	pushq %rcx
	pushq %rdx
	incq %gs:PCPU_IPI_TOTAL
	FIXUP_IF 24
	EOI
	popq %rdx
	popq %rcx
	popq %rax
	iretq

/* Exceptions 0-31: push a dummy error code where the CPU pushes none,
 * then the vector, and report through C; these never return. */
	.balign 16
	.globl exc_stubs
exc_stubs:
	.set i, 0
	.rept 32
	.balign 16
	.if (i == 8) || ((i >= 10) && (i <= 14)) || (i == 17) || (i == 21) || (i == 29) || (i == 30)
	.else
	pushq $0
	.endif
	pushq $i
	.byte 0xe9
	.long exc_common - . - 4
	.set i, i + 1
	.endr
	.balign 16
	.globl exc_stubs_end
exc_stubs_end:

	.globl exc_common
exc_common:
	pushq %r15
	pushq %r14
	pushq %r13
	pushq %r12
	pushq %r11
	pushq %r10
	pushq %r9
	pushq %r8
	pushq %rbp
	pushq %rdi
	pushq %rsi
	pushq %rdx
	pushq %rcx
	pushq %rbx
	pushq %rax
	movq %rsp, %rdi
	andq $-16, %rsp
	call exception_report
1:	cli
	hlt
	jmp 1b

	.section .note.GNU-stack, "", @progbits
