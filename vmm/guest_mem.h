/* Guest physical memory as the VMM sees it: a PC layout of RAM below the
 * PCI hole and RAM above 4 GiB, backed by one memfd.  Every VMM access to
 * guest memory goes through guest_mem__ptr(), which refuses any range not
 * wholly inside one RAM region: a guest can never steer the VMM outside. */
#ifndef KRG_VMM_GUEST_MEM_H
#define KRG_VMM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_PCI_HOLE_START 0xC0000000ull /* 3 GiB: MMIO, LAPIC, IOAPIC, BIOS */
#define GUEST_HIGH_RAM_START 0x100000000ull

struct guest_mem_region {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
	uint64_t memfd_offset;
};

struct guest_mem {
	struct guest_mem_region region[2];
	int nr_regions;
	uint64_t ram_size; /* total bytes of RAM */
	int memfd;
	uint8_t *base;     /* whole memfd mapping */
};

/* Host pointer for [gpa, gpa+len), or NULL if not wholly inside RAM. */
void *guest_mem__ptr(const struct guest_mem *mem, uint64_t gpa, uint64_t len);
int guest_mem__read(const struct guest_mem *mem, uint64_t gpa, void *buf,
		    size_t len);
int guest_mem__write(const struct guest_mem *mem, uint64_t gpa,
		     const void *buf, size_t len);
/* Highest guest-physical address + 1 that is RAM. */
uint64_t guest_mem__end(const struct guest_mem *mem);

/* Builds the layout for ram_size bytes backed by a new memfd.  Returns 0 or
 * -1 with errno. */
int guest_mem__create(struct guest_mem *mem, uint64_t ram_size);
void guest_mem__destroy(struct guest_mem *mem);

#endif
