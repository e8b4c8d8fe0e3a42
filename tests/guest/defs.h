/* Constants shared by the test guest's assembly and C: memory layout,
 * selectors, vectors, per-CPU offsets and the syscall numbers.  Only
 * #defines here, so boot.S and entry.S can include it. */
#ifndef KRG_GUEST_DEFS_H
#define KRG_GUEST_DEFS_H

#define MAXCPU		64	/* matches VM_MAX_VCPUS; APIC IDs 0..MAXCPU-1 */
#define KSTACK_SHIFT	13
#define KSTACK_SIZE	(1 << KSTACK_SHIFT)
#define USTACK_SIZE	16384

/* The AP trampoline is copied here; the SIPI vector is its page number. */
#define TRAMPOLINE_ADDR	0x8000

/* GDT layout.  syscall/sysret need KCODE, KDATA = KCODE+8 and
 * UCODE32, UDATA = UCODE32+8, UCODE64 = UCODE32+16 (STAR[63:48] =
 * UCODE32); sysexitq wants UCODE64 = SYSENTER_CS+32 and a user SS at
 * SYSENTER_CS+40, hence UDATA2. */
#define SEL_KCODE	0x08
#define SEL_KDATA	0x10
#define SEL_UCODE32	0x18
#define SEL_UDATA	0x20
#define SEL_UCODE64	0x28
#define SEL_UDATA2	0x30
#define SEL_KCODE32	0x38
#define SEL_TSS0	0x40	/* 16-byte descriptors, one per CPU */
#define GDT_ENTRIES	(8 + 2 * MAXCPU)

#define USER_CS		(SEL_UCODE64 | 3)
#define USER_SS		(SEL_UDATA | 3)
/* IOPL=3 lets user mode do port I/O itself; IF=1; bit 1 is reserved-one. */
#define USER_RFLAGS	0x3202

/* How the kernel returns to user mode (cmdline uret=). */
#define URET_IRET	0	/* default: the only one that works under PVM */
#define URET_SYSRET	1
#define URET_SYSEXIT	2

/* Interrupt vectors. */
#define VEC_TIMER	0x20	/* LAPIC timer */
#define VEC_LVT_ERROR	0x21
#define VEC_PIT		0x22	/* PIT channel 0 through IOAPIC pin 2 */
#define VEC_WAKE	0x23	/* barrier wake-up for CPUs sleeping in hlt */
#define VEC_SCI		0x24	/* ACPI SCI through IOAPIC pin 9 (test=powerbtn) */
#define VEC_BLK		0x25	/* virtio-blk MSI-X (test=blk) */
#define VEC_PROBE	0xe0	/* diagnosis: snapshot the LAPIC's ISR/IRR/PPR */
#define VEC_SOFT_INT	0x41	/* int $0x41 from kernel mode, DPL0 gate (test=fallback) */
#define VEC_SYSCALL	0x80	/* int $0x80, DPL3 gate (sysc=int80) */
#define VEC_IPI_BASE	0x90	/* fixed IPI from CPU n uses vector 0x90+n (to 0xcf) */
#define VEC_SPURIOUS	0xff

/* struct pcpu field offsets (checked by _Static_assert in kernel.h). */
#define MSR_KVM_PV_EOI_EN 0x4b564d04

#define PCPU_SELF	0
#define PCPU_KSTACK	8
#define PCPU_USER_RSP	16
#define PCPU_CPU	24
#define PCPU_X2APIC	32	/* byte: this CPU's LAPIC is in x2APIC mode */
#define PCPU_PV_EOI_ON	33	/* byte: KVM PV EOI enabled */
#define PCPU_TIMER_COUNT 40
#define PCPU_TIMER_TSC	48
#define PCPU_TIMER_USER	56
#define PCPU_SPURIOUS	64
#define PCPU_LVT_ERROR	72
#define PCPU_PIT_COUNT	80
#define PCPU_IPI_TOTAL	88
#define PCPU_BAD_IF	96
#define PCPU_WAKEUPS	104
#define PCPU_PV_EOI	112	/* KVM PV EOI word */
#define PCPU_PV_EOI_HITS 120
#define PCPU_IPICNT	128	/* uint32_t[MAXCPU], indexed by sender */
#define PCPU_PROBE	384	/* VEC_PROBE snapshot: isr[8], irr[8], ppr, count */
#define PCPU_SCI_COUNT	456	/* VEC_SCI interrupts */
#define PCPU_BLK_COUNT	464	/* VEC_BLK interrupts */
#define PCPU_SIZE	4096	/* a page each: no two CPUs share one (a cluster moves pages) */

/* Syscall numbers (rax); arguments in rdi, rsi, rdx; result in rax. */
#define SYS_EXIT	0	/* (code): write code to port 0xf4 */
#define SYS_PUTS	1	/* (str, len): print through the kernel */
#define SYS_CPUID	2	/* (): this CPU's index */
#define SYS_APIC_MODE	3	/* (x2): switch this LAPIC to x2APIC */
#define SYS_APIC_READ	4	/* (xapic reg offset) */
#define SYS_APIC_WRITE	5	/* (xapic reg offset, value) */
#define SYS_SEND_IPI	6	/* (dest, icr low): kernel writes the ICR */
#define SYS_WAIT	7	/* (ptr, old): if *ptr == old, sti; hlt; cli */
#define SYS_RDMSR	8	/* (msr) */
#define SYS_WRMSR	9	/* (msr, value) */
#define SYS_NOP		10	/* (): null round trip, for benchmarks */
#define SYS_FALLBACK	11	/* (out, smap): run the fallback checks (fallback.S) */
#define SYS_TRIPLE	12	/* (): empty IDT, then #UD in kernel mode */
#define SYS_IPI_HLT	13	/* (vector): self-IPI with IF=0, then sti; hlt */
#define SYS_FLUSH_TLB	14	/* (va): invlpg va, or reload CR3 if 0 */
#define SYS_MAX		15

/* test=fallback: k_fallback() fills uint64_t out[FB_SLOTS].  Bit-count
 * case n takes its preset RAX from fb_in[2n] and its source from
 * fb_in[2n + 1], and stores RAX at out[FB_BITS + 2n], RFLAGS at
 * out[FB_BITS + 2n + 1]. */
#define FB_BITS		0
#define FB_NBITS	12	/* bit-count cases */
#define FB_BP_RIP	24	/* RIP the #BP handler found in its frame */
#define FB_BP_WANT	25	/* address of the instruction after int3 */
#define FB_BP_CS	26
#define FB_SI_RIP	27	/* the same for int $0x41 */
#define FB_SI_WANT	28
#define FB_SI_CS	29
#define FB_SI_COUNT	30	/* times the int $0x41 handler ran */
#define FB_STAC_FL	31	/* RFLAGS after stac */
#define FB_CLAC_FL	32	/* RFLAGS after clac */
#define FB_FWAIT	33	/* 1 once the instruction after fwait ran */
#define FB_DONE		34	/* 0x600d when k_fallback reached its end */
/* fb_segments(out): lsl and lar (Linux's NMI entry reads its CPU number
 * with lsl); RAX preset to ~0 before each, ZF of each in FB_SEG_ZF. */
#define FB_SEG_LSL_UDATA 35	/* lsl of SEL_UDATA | 3 */
#define FB_SEG_LSL_TSS	36	/* lsl of SEL_TSS0 (DPL 0) */
#define FB_SEG_LSL_NULL	37	/* lsl of the null selector */
#define FB_SEG_LAR_KCODE 38	/* lar of SEL_KCODE (DPL 0) */
#define FB_SEG_ZF	39	/* bit n: ZF after case n of the four */
#define FB_HINT_NOPS	40	/* 1 once the instruction after the hint NOPs ran */
#define FB_SLOTS	41

/* How user mode enters the kernel for a service (cmdline sysc=). */
#define SYSC_UD2	0	/* default: ud2 -> #UD, as PVM handles faults right */
#define SYSC_INT80	1
#define SYSC_SYSCALL	2

/* Debug-exit values: QEMU's isa-debug-exit exits with (v << 1) | 1. */
#define EXIT_PASS	0x10	/* status 33 */
#define EXIT_FAIL	0x11	/* status 35 */

#endif
