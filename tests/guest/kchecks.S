/* Kernel-mode probes: the instructions krg-vmm's emulation-failure
 * fallback completes on PVM hosts (test=fallback), and a deliberate triple
 * fault (test=triplefault).  Straight-line code: every instruction here is
 * emulated under PVM, and the bit-count, int3, int n, clac/stac ones are
 * exactly those KVM's emulator gives up on.  Results go to memory for user
 * mode to check; nothing here decides pass or fail. */
#include "defs.h"

#define ARITH_FLAGS	0x8d5	/* OF SF ZF AF PF CF */

	.text
	.code64

/* Before each case every arithmetic flag is set (IF and the rest kept), so
 * a flag the instruction must clear and does not shows up. */
.macro SETFLAGS
	pushfq
	orq $ARITH_FLAGS, (%rsp)
	popfq
.endm

.macro STORE n
	pushfq
	popq %rcx
	movq %rax, (FB_BITS + 2 * \n) * 8(%rdi)
	movq %rcx, (FB_BITS + 2 * \n + 1) * 8(%rdi)
.endm

/* Case n: RAX from fb_in[2n], then (register sources) RSI from
 * fb_in[2n + 1]; memory sources read fb_in[2n + 1] directly. */
.macro PRESET n
	movq (16 * \n)(%rdx), %rax
	movq (16 * \n + 8)(%rdx), %rsi
	SETFLAGS
.endm
#define SRC(n)	(16 * (n) + 8)(%rdx)

/* fb_bitcount(out): the FB_NBITS popcnt/lzcnt/tzcnt cases of fb_in
 * (test_fallback.c has the table and the expected values), register and
 * memory sources, 16/32/64-bit.  Callable from both modes - user mode
 * runs it natively as the reference; clobbers rax, rcx, rdx, rsi only. */
	.globl fb_bitcount
fb_bitcount:
	leaq fb_in(%rip), %rdx
	PRESET 0
	popcntq %rsi, %rax
	STORE 0
	PRESET 1
	popcntq fb_in + 16 * 1 + 8(%rip), %rax	/* RIP-relative */
	STORE 1
	PRESET 2
	popcntl SRC(2), %eax
	STORE 2
	PRESET 3
	popcntw %si, %ax
	STORE 3
	PRESET 4
	lzcntq %rsi, %rax
	STORE 4
	PRESET 5
	lzcntl SRC(5), %eax
	STORE 5
	PRESET 6
	lzcntw %si, %ax
	STORE 6
	PRESET 7
	tzcntq %rsi, %rax
	STORE 7
	PRESET 8
	tzcntq SRC(8), %rax
	STORE 8
	PRESET 9
	tzcntl %esi, %eax
	STORE 9
	PRESET 10
	lzcntq fb_in + 16 * 10 + 8(%rip), %rax	/* RIP-relative */
	STORE 10
	PRESET 11
	tzcntw SRC(11), %ax
	STORE 11
	ret

/* One lsl/lar case: RAX preset to ~0, the selector in ECX, ZF into bit
 * \bit of R9. */
.macro SEGCASE insn, sel, slot, bit
	movq $-1, %rax
	movl $\sel, %ecx
	\insn %rcx, %rax
	pushfq
	popq %rdx
	movq %rax, \slot * 8(%rdi)
	shrq $6, %rdx
	andq $1, %rdx
	shlq $\bit, %rdx
	orq %rdx, %r9
.endm

/* fb_segments(out): lsl and lar of four selectors.  Callable from both
 * modes (user mode runs it natively: the DPL 0 ones give ZF=0 there);
 * clobbers rax, rcx, rdx, r9 only. */
	.globl fb_segments
fb_segments:
	xorl %r9d, %r9d
	SEGCASE lsl, SEL_UDATA | 3, FB_SEG_LSL_UDATA, 0
	SEGCASE lsl, SEL_TSS0, FB_SEG_LSL_TSS, 1
	SEGCASE lsl, 0, FB_SEG_LSL_NULL, 2
	SEGCASE lar, SEL_KCODE, FB_SEG_LAR_KCODE, 3
	movq %r9, FB_SEG_ZF * 8(%rdi)
	ret

/* k_fallback(out, smap): SYS_FALLBACK, at CPL0 with IF=0. */
	.globl k_fallback
k_fallback:
	movq %rsi, %r8
	call fb_bitcount
	call fb_segments
	movq %rdi, fb_out(%rip)

	/* int3: a trap, so the #BP frame must hold the next instruction. */
	leaq 1f(%rip), %rax
	movq %rax, FB_BP_WANT * 8(%rdi)
	movb $1, fb_bp_armed(%rip)
	int3
1:
	/* int $0x41 through a DPL0 gate: returns to the next instruction. */
	leaq 2f(%rip), %rax
	movq %rax, FB_SI_WANT * 8(%rdi)
	movb $1, fb_si_armed(%rip)
	int $VEC_SOFT_INT
2:
	/* clac/stac only where CPUID has SMAP (user mode checked). */
	testq %r8, %r8
	jz 3f
	stac
	pushfq
	popq %rcx
	movq %rcx, FB_STAC_FL * 8(%rdi)
	clac
	pushfq
	popq %rcx
	movq %rcx, FB_CLAC_FL * 8(%rdi)
3:
	fwait
	movq $1, FB_FWAIT * 8(%rdi)
	/* Hint NOPs: IBHF as Linux's BPF JIT emits it (F3 48 0F 1E F8),
	 * and a memory form whose operand is never accessed (RAX holds
	 * no address here). */
	movq $0xdead0000dead0000, %rax
	.byte 0xf3, 0x48, 0x0f, 0x1e, 0xf8
	.byte 0x0f, 0x1d, 0x84, 0x00, 0x00, 0x00, 0x00, 0x00
	movq $1, FB_HINT_NOPS * 8(%rdi)
	movq $0x600d, FB_DONE * 8(%rdi)
	ret

/* #BP: while armed, record the frame and return to it; otherwise an int3
 * is an ordinary exception report.  Disarming first means a handler that
 * got the int3's own address back (the RIP convention PVM gets wrong
 * unless the VMM advances RIP) ends in a report, not a loop. */
	.balign 16
	.globl isr_bp
isr_bp:
	cmpb $0, fb_bp_armed(%rip)
	je exc_stubs + 3 * 16
	movb $0, fb_bp_armed(%rip)
	pushq %rax
	pushq %rcx
	movq fb_out(%rip), %rcx
	movq 16(%rsp), %rax
	movq %rax, FB_BP_RIP * 8(%rcx)
	movq 24(%rsp), %rax
	movq %rax, FB_BP_CS * 8(%rcx)
	popq %rcx
	popq %rax
	iretq

	.balign 16
	.globl isr_softint
isr_softint:
	cmpb $0, fb_si_armed(%rip)
	je 1f
	movb $0, fb_si_armed(%rip)
	pushq %rax
	pushq %rcx
	movq fb_out(%rip), %rcx
	incq FB_SI_COUNT * 8(%rcx)
	movq 16(%rsp), %rax
	movq %rax, FB_SI_RIP * 8(%rcx)
	movq 24(%rsp), %rax
	movq %rax, FB_SI_CS * 8(%rcx)
	popq %rcx
	popq %rax
	iretq
1:	pushq $0
	pushq $VEC_SOFT_INT
	jmp exc_common

/* SYS_TRIPLE: with an IDT of limit 0 the #UD cannot be delivered (#GP),
 * nor can that (#DF): the CPU shuts down.  RBX carries a marker the
 * VMM's register dump must show. */
	.globl k_triple_fault, k_triple_ud2
k_triple_fault:
	movabsq $0x4b52472d54524950, %rbx	/* "KRG-TRIP" */
	lidt empty_idt(%rip)
k_triple_ud2:
	ud2
	jmp k_triple_ud2

	.data
	.balign 16
fb_out:	.quad 0
fb_bp_armed:	.byte 0
fb_si_armed:	.byte 0
	.balign 16
	.word 0, 0, 0
empty_idt:
	.word 0
	.quad 0

	.section .note.GNU-stack, "", @progbits
