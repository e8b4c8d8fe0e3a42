/* A bounds-checked ELF reader shared by the Linux (ELF64 vmlinux) and the
 * multiboot (ELF32) loaders.  The image is untrusted input: every header
 * and segment is checked against the file and against guest RAM. */
#ifndef KRG_GUESTFW_ELF_LOAD_H
#define KRG_GUESTFW_ELF_LOAD_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;

struct elf_image {
	const uint8_t *buf;
	size_t len;
	int is64;
	uint16_t type;
	uint16_t machine;
	uint64_t entry;
	uint64_t phoff;
	uint16_t phnum;
	uint16_t phentsize;
};

struct elf_segment {
	uint32_t type;
	uint32_t flags;
	uint64_t offset;
	uint64_t vaddr;
	uint64_t paddr;
	uint64_t filesz;
	uint64_t memsz;
};

/* Starts with the ELF magic. */
int elf__is_elf(const uint8_t *buf, size_t len);
/* Checks the identification and that the program header table lies in
 * the file.  0, or -1 with a message prefixed by `who`. */
int elf__open(struct elf_image *img, const uint8_t *buf, size_t len,
	      const char *who, char *err, size_t errlen);
/* Program header i (i < phnum), whatever its type. */
void elf__segment(const struct elf_image *img, unsigned i,
		  struct elf_segment *seg);
/* Validates every PT_LOAD (data inside the file, filesz <= memsz, the
 * physical range inside [min_addr, max_end) and inside guest RAM), then
 * copies them to p_paddr and zeroes the bss.  *lo and *hi get the physical
 * extent.  0, or -1 with err, guest RAM untouched. */
int elf__load(const struct elf_image *img, const struct guest_mem *mem,
	      uint64_t min_addr, uint64_t max_end, uint64_t *lo, uint64_t *hi,
	      const char *who, char *err, size_t errlen);
/* Physical address of e_entry: used as is if it lies in a segment's
 * physical range, else translated through the PT_LOAD whose virtual range
 * contains it.  0, or -1 if no segment contains it. */
int elf__entry_paddr(const struct elf_image *img, uint64_t *paddr);

#endif
