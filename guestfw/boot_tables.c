/* Flat GDT and identity page tables for entering a kernel directly in
 * protected or long mode, without any firmware having run. */
#include "guestfw/boot_tables.h"

#include <string.h>

#include "vmm/bytes.h"
#include "vmm/guest_mem.h"

#define PTE_P  0x001ull
#define PTE_RW 0x002ull
#define PTE_PS 0x080ull

static const uint64_t gdt[BOOT_GDT_ENTRIES] = {
	0,
	/* 0x08: 32-bit code, base 0, limit 4 GiB, DPL0, execute/read,
	 * accessed (so the CPU never needs to write the descriptor). */
	0x00CF9B000000FFFFull,
	/* 0x10: 64-bit code (L=1, D=0). */
	0x00AF9B000000FFFFull,
	/* 0x18: flat read/write data, 4 GiB. */
	0x00CF93000000FFFFull,
};

uint64_t boot_tables__gdt_entry(unsigned index)
{
	return index < BOOT_GDT_ENTRIES ? gdt[index] : 0;
}

int boot_tables__write_gdt(const struct guest_mem *mem)
{
	uint8_t *p = guest_mem__ptr(mem, BOOT_GDT_GPA, sizeof(gdt));

	if (!p)
		return -1;
	for (unsigned i = 0; i < BOOT_GDT_ENTRIES; i++)
		put_le64(p + 8 * i, gdt[i]);
	return 0;
}

uint64_t boot_tables__write_identity_map(const struct guest_mem *mem)
{
	const unsigned nr_pd = (unsigned)(BOOT_IDMAP_END >> 30);
	uint8_t *pml4 = guest_mem__ptr(mem, BOOT_PML4_GPA, 0x1000);
	uint8_t *pdpt = guest_mem__ptr(mem, BOOT_PDPT_GPA, 0x1000);
	uint8_t *pd = guest_mem__ptr(mem, BOOT_PD_GPA, 0x1000ull * nr_pd);

	if (!pml4 || !pdpt || !pd)
		return 0;
	memset(pml4, 0, 0x1000);
	memset(pdpt, 0, 0x1000);
	memset(pd, 0, 0x1000ull * nr_pd);
	/* 2 MiB pages rather than 1 GiB ones: those need CPUID pdpe1gb,
	 * which a vCPU model may hide. */
	put_le64(pml4, BOOT_PDPT_GPA | PTE_P | PTE_RW);
	for (unsigned i = 0; i < nr_pd; i++) {
		put_le64(pdpt + 8 * i, (BOOT_PD_GPA + 0x1000ull * i) | PTE_P | PTE_RW);
		for (unsigned j = 0; j < 512; j++) {
			uint64_t pa = ((uint64_t)i << 30) | ((uint64_t)j << 21);

			put_le64(pd + 0x1000ull * i + 8 * j, pa | PTE_P | PTE_RW | PTE_PS);
		}
	}
	return BOOT_PML4_GPA;
}
