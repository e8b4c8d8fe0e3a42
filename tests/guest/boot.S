/* Boot path of the test guest: multiboot v1 header (with the address
 * fields, so the ELF64 file is loaded as a flat image), the 32-bit entry,
 * static page tables and GDT, the AP trampoline, and the common 64-bit
 * entry that picks a stack by APIC ID and calls kmain().
 *
 * Everything here runs in kernel, real or protected mode, which PVM
 * emulates one instruction at a time: straight-line code, no loops. */
#include "defs.h"

#define MB_MAGIC	0x1BADB002
#define MB_FLAGS	0x00010000	/* bit 16: use the address fields */
#define MSR_EFER	0xC0000080
#define EFER_SCE_LME	0x101
#define CR4_PAE		0x20
#define CR0_PG_PE	0x80000011	/* PG | ET | PE */

	.section .multiboot, "a"
	.balign 4
mb_header:
	.long MB_MAGIC
	.long MB_FLAGS
	.long -(MB_MAGIC + MB_FLAGS)
	.long mb_header		/* header_addr */
	.long __load_start	/* load_addr */
	.long __load_end	/* load_end_addr: end of .data */
	.long __bss_end		/* bss_end_addr: loader zeroes up to here */
	.long mb_entry		/* entry_addr */

	.section .text.boot, "ax"
	.code32
	.globl mb_entry
mb_entry:
	cli
	movl %eax, mb_magic
	movl %ebx, mb_info
	/* The BIOS left the 8259s on with IRQ0 at vector 8: mask them before
	 * the first user-mode entry sets IF. */
	movb $0xff, %al
	outb %al, $0x21
	outb %al, $0xa1
	lgdt gdt_ptr
	movl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_SCE_LME, %eax
	wrmsr
	movl $CR0_PG_PE, %eax
	movl %eax, %cr0
	ljmp $SEL_KCODE, $bsp_entry64

/* The AP trampoline, copied to TRAMPOLINE_ADDR by the BSP.  Real mode
 * straight into long mode: PE and PG are set by one mov to cr0, then a
 * far jump loads the 64-bit code segment.  Addresses inside it are
 * relative to its start (DS = CS = TRAMPOLINE_ADDR >> 4). */
	.code16
	.globl ap_tramp_start, ap_tramp_end
ap_tramp_start:
	cli
	movw %cs, %ax
	movw %ax, %ds
	lgdtl tramp_gdt_ptr - ap_tramp_start
	movl $CR4_PAE, %eax
	movl %eax, %cr4
	movl $pml4, %eax
	movl %eax, %cr3
	movl $MSR_EFER, %ecx
	rdmsr
	orl $EFER_SCE_LME, %eax
	wrmsr
	movl $CR0_PG_PE, %eax
	movl %eax, %cr0
	ljmpl $SEL_KCODE, $ap_entry64
	.balign 4
tramp_gdt_ptr:
	.word GDT_ENTRIES * 8 - 1
	.long gdt
ap_tramp_end:

	.code64
bsp_entry64:
	movl $1, %ebp
	jmp entry64_common
ap_entry64:
	xorl %ebp, %ebp
entry64_common:
	movw $SEL_KDATA, %ax
	movw %ax, %ds
	movw %ax, %es
	movw %ax, %ss
	xorl %eax, %eax
	movw %ax, %fs
	movw %ax, %gs
	/* Initial APIC ID, CPUID.1:EBX[31:24], chooses the stack. */
	movl $1, %eax
	cpuid
	shrl $24, %ebx
	cmpl $MAXCPU, %ebx
	jae bad_apic_id
	leal 1(%ebx), %eax
	shll $KSTACK_SHIFT, %eax
	addq $kstacks, %rax
	movq %rax, %rsp
	movl %ebx, %edi
	movl %ebp, %esi
	call kmain
bad_apic_id:
	/* No stack for this CPU: say so on the debug port and stop. */
	movb $EXIT_FAIL, %al
	outb %al, $0xf4
1:	cli
	hlt
	jmp 1b

	.data
	.globl mb_magic, mb_info
	.balign 8
mb_magic:	.long 0
mb_info:	.long 0

/* Flat GDT; the TSS descriptors are filled in by each CPU in kmain(). */
	.balign 16
	.globl gdt, gdt_ptr
gdt:
	.quad 0
	.quad 0x00af9a000000ffff	/* 0x08 kernel code 64 */
	.quad 0x00cf92000000ffff	/* 0x10 kernel data */
	.quad 0x00cffa000000ffff	/* 0x18 user code 32 (sysret layout) */
	.quad 0x00cff2000000ffff	/* 0x20 user data */
	.quad 0x00affa000000ffff	/* 0x28 user code 64 */
	.quad 0x00cff2000000ffff	/* 0x30 user data (sysexit SS) */
	.quad 0x00cf9a000000ffff	/* 0x38 kernel code 32 */
	.fill 2 * MAXCPU, 8, 0		/* 0x40 TSS descriptors */
gdt_end:
	.balign 4
	.word 0
gdt_ptr:
	.word GDT_ENTRIES * 8 - 1
	.quad gdt

/* Page tables as data, so no kernel-mode loop builds them: identity map
 * of the first 1 GiB in 2 MiB pages plus the IOAPIC and LAPIC pages, all
 * with U/S set - user mode may touch everything, the LAPIC included. */
#define PTE_P	0x01
#define PTE_W	0x02
#define PTE_U	0x04
#define PTE_PWT	0x08
#define PTE_PCD	0x10
#define PTE_PS	0x80
	.balign 4096
	.globl pml4
pml4:
	.quad pdpt + (PTE_P | PTE_W | PTE_U)
	.fill 511, 8, 0
pdpt:
	.quad pd_low + (PTE_P | PTE_W | PTE_U)
	.quad 0, 0
	.quad pd_mmio + (PTE_P | PTE_W | PTE_U)
	.fill 508, 8, 0
	.globl pd_low
pd_low:
	.set i, 0
	.rept 512
	.quad (i << 21) | (PTE_P | PTE_W | PTE_U | PTE_PS)
	.set i, i + 1
	.endr
pd_mmio:				/* 3..4 GiB */
	.fill 496, 8, 0
	/* 0xfe000000: where test=blk places PCI BARs (it has no firmware) */
	.quad 0xfe000000 | (PTE_P | PTE_W | PTE_U | PTE_PWT | PTE_PCD | PTE_PS)
	.fill 5, 8, 0
	.quad 0xfec00000 | (PTE_P | PTE_W | PTE_U | PTE_PWT | PTE_PCD | PTE_PS)
	.quad 0xfee00000 | (PTE_P | PTE_W | PTE_U | PTE_PWT | PTE_PCD | PTE_PS)
	.fill 8, 8, 0

	.section .note.GNU-stack, "", @progbits
