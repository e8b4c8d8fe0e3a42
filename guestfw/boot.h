/* What a boot loader leaves for the vCPU: the register state the BSP starts
 * in.  The loaders (Linux, multiboot) write the kernel, its parameters and
 * any page tables/GDT into guest RAM and fill this in. */
#ifndef KRG_GUESTFW_BOOT_H
#define KRG_GUESTFW_BOOT_H

#include <stdint.h>

enum boot_cpu_mode {
	BOOT_MODE_LONG64,  /* paging on (cr3), CS 64-bit flat */
	BOOT_MODE_PROT32,  /* flat 32-bit protected mode, paging off */
	BOOT_MODE_REAL16,  /* real mode at reset vector (firmware) */
};

struct boot_entry {
	enum boot_cpu_mode mode;
	uint64_t rip;
	uint64_t rsp;
	uint64_t rsi;      /* Linux 64-bit entry: boot_params (zero page) */
	uint64_t rax;      /* multiboot: magic 0x2BADB002 */
	uint64_t rbx;      /* multiboot: info structure address */
	uint64_t cr3;      /* LONG64: identity page tables the loader built */
	uint64_t gdt_base; /* the GDT the loader wrote (LONG64/PROT32) */
	uint16_t gdt_limit;
	uint16_t cs_sel, ds_sel;
};

#endif
