/* The low-memory layout the loaders use and the CPU tables they leave for
 * the BSP: a flat GDT and identity-mapping page tables.  Everything here
 * lives below the EBDA (0x9FC00), which Linux and multiboot kernels treat
 * as free once they have copied what they need. */
#ifndef KRG_GUESTFW_BOOT_TABLES_H
#define KRG_GUESTFW_BOOT_TABLES_H

#include <stdint.h>

struct guest_mem;

#define BOOT_GDT_GPA        0x0500ull
#define BOOT_MBI_GPA        0x1000ull  /* multiboot info area ... */
#define BOOT_MBI_END        0x7000ull  /* ... up to here */
#define BOOT_ZERO_PAGE_GPA  0x7000ull  /* Linux boot_params */
#define BOOT_STACK_TOP      0x8FF0ull  /* stack page 0x8000-0x8FFF */
#define BOOT_PML4_GPA       0x9000ull
#define BOOT_PDPT_GPA       0xA000ull
#define BOOT_PD_GPA         0xB000ull  /* 4 pages: 0xB000-0xEFFF */
#define BOOT_CMDLINE_GPA    0x20000ull /* Linux command line */
#define BOOT_CMDLINE_MAX    0x10000ull
#define BOOT_AREA_END       0x30000ull /* kernels must stay above this */

/* Selectors in the boot GDT.  0x10/0x18 are what Linux's 64-bit boot
 * protocol requires (__BOOT_CS, __BOOT_DS). */
#define BOOT_SEL_CODE32     0x08
#define BOOT_SEL_CODE64     0x10
#define BOOT_SEL_DATA       0x18
#define BOOT_GDT_ENTRIES    4
#define BOOT_GDT_LIMIT      (BOOT_GDT_ENTRIES * 8 - 1)

/* The identity map covers the first 4 GiB with 2 MiB pages. */
#define BOOT_IDMAP_END      0x100000000ull

/* Descriptor values, exposed so the vCPU code can load the hidden segment
 * state consistently with what is in guest memory. */
uint64_t boot_tables__gdt_entry(unsigned index);
/* Writes the GDT at BOOT_GDT_GPA.  0, or -1 if that is not RAM. */
int boot_tables__write_gdt(const struct guest_mem *mem);
/* Writes PML4/PDPT/PDs identity-mapping [0, 4 GiB) at BOOT_PML4_GPA.
 * Returns the CR3 value, or 0 if the tables do not fit in RAM. */
uint64_t boot_tables__write_identity_map(const struct guest_mem *mem);

#endif
