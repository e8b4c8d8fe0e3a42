/* ELF program-header loading into guest RAM. */
#include "guestfw/elf_load.h"

#include <elf.h>
#include <inttypes.h>
#include <string.h>

#include "vmm/errf.h"
#include "vmm/guest_mem.h"

int elf__is_elf(const uint8_t *buf, size_t len)
{
	return len >= SELFMAG && !memcmp(buf, ELFMAG, SELFMAG);
}

int elf__open(struct elf_image *img, const uint8_t *buf, size_t len,
	      const char *who, char *err, size_t errlen)
{
	size_t ehsize, phsize;

	memset(img, 0, sizeof(*img));
	if (!elf__is_elf(buf, len) || len < EI_NIDENT) {
		errf(err, errlen, "%s: not an ELF file", who);
		return -1;
	}
	if (buf[EI_CLASS] != ELFCLASS32 && buf[EI_CLASS] != ELFCLASS64) {
		errf(err, errlen, "%s: ELF class %u is invalid", who,
		     buf[EI_CLASS]);
		return -1;
	}
	if (buf[EI_DATA] != ELFDATA2LSB) {
		errf(err, errlen, "%s: ELF file is not little-endian", who);
		return -1;
	}
	img->is64 = buf[EI_CLASS] == ELFCLASS64;
	ehsize = img->is64 ? sizeof(Elf64_Ehdr) : sizeof(Elf32_Ehdr);
	phsize = img->is64 ? sizeof(Elf64_Phdr) : sizeof(Elf32_Phdr);
	if (len < ehsize) {
		errf(err, errlen, "%s: ELF header is truncated (%zu bytes)",
		     who, len);
		return -1;
	}
	if (img->is64) {
		Elf64_Ehdr eh;

		memcpy(&eh, buf, sizeof(eh));
		img->type = eh.e_type;
		img->machine = eh.e_machine;
		img->entry = eh.e_entry;
		img->phoff = eh.e_phoff;
		img->phnum = eh.e_phnum;
		img->phentsize = eh.e_phentsize;
	} else {
		Elf32_Ehdr eh;

		memcpy(&eh, buf, sizeof(eh));
		img->type = eh.e_type;
		img->machine = eh.e_machine;
		img->entry = eh.e_entry;
		img->phoff = eh.e_phoff;
		img->phnum = eh.e_phnum;
		img->phentsize = eh.e_phentsize;
	}
	if (img->type != ET_EXEC && img->type != ET_DYN) {
		errf(err, errlen, "%s: ELF file is not an executable (type %u)",
		     who, img->type);
		return -1;
	}
	if (img->phnum == 0) {
		errf(err, errlen, "%s: ELF file has no program headers", who);
		return -1;
	}
	if (img->phentsize < phsize || img->phoff > len ||
	    (uint64_t)img->phnum * img->phentsize > len - img->phoff) {
		errf(err, errlen,
		     "%s: ELF program headers lie outside the file (truncated?)",
		     who);
		return -1;
	}
	img->buf = buf;
	img->len = len;
	return 0;
}

void elf__segment(const struct elf_image *img, unsigned i,
		  struct elf_segment *seg)
{
	const uint8_t *p = img->buf + img->phoff + (size_t)i * img->phentsize;

	if (img->is64) {
		Elf64_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		seg->type = ph.p_type;
		seg->flags = ph.p_flags;
		seg->offset = ph.p_offset;
		seg->vaddr = ph.p_vaddr;
		seg->paddr = ph.p_paddr;
		seg->filesz = ph.p_filesz;
		seg->memsz = ph.p_memsz;
	} else {
		Elf32_Phdr ph;

		memcpy(&ph, p, sizeof(ph));
		seg->type = ph.p_type;
		seg->flags = ph.p_flags;
		seg->offset = ph.p_offset;
		seg->vaddr = ph.p_vaddr;
		seg->paddr = ph.p_paddr;
		seg->filesz = ph.p_filesz;
		seg->memsz = ph.p_memsz;
	}
}

static int check_segment(const struct elf_image *img,
			 const struct guest_mem *mem, unsigned i,
			 const struct elf_segment *s, uint64_t min_addr,
			 uint64_t max_end, const char *who, char *err,
			 size_t errlen)
{
	if (s->offset > img->len || s->filesz > img->len - s->offset) {
		errf(err, errlen,
		     "%s: ELF segment %u data lies outside the file (truncated?)",
		     who, i);
		return -1;
	}
	if (s->filesz > s->memsz) {
		errf(err, errlen,
		     "%s: ELF segment %u has filesz > memsz", who, i);
		return -1;
	}
	if (s->memsz > UINT64_MAX - s->paddr || s->paddr < min_addr ||
	    s->paddr + s->memsz > max_end) {
		errf(err, errlen,
		     "%s: ELF segment %u at 0x%" PRIx64 "-0x%" PRIx64
		     " is outside the loadable range 0x%" PRIx64 "-0x%" PRIx64,
		     who, i, s->paddr, s->paddr + s->memsz, min_addr, max_end);
		return -1;
	}
	if (!guest_mem__ptr(mem, s->paddr, s->memsz)) {
		errf(err, errlen,
		     "%s: ELF segment %u at 0x%" PRIx64 "-0x%" PRIx64
		     " does not fit in guest RAM (%" PRIu64 " MiB)",
		     who, i, s->paddr, s->paddr + s->memsz,
		     mem->ram_size >> 20);
		return -1;
	}
	return 0;
}

int elf__load(const struct elf_image *img, const struct guest_mem *mem,
	      uint64_t min_addr, uint64_t max_end, uint64_t *lo, uint64_t *hi,
	      const char *who, char *err, size_t errlen)
{
	uint64_t l = UINT64_MAX, h = 0;
	unsigned nr = 0;

	/* Check everything before writing anything. */
	for (unsigned i = 0; i < img->phnum; i++) {
		struct elf_segment s;

		elf__segment(img, i, &s);
		if (s.type != PT_LOAD || s.memsz == 0)
			continue;
		if (check_segment(img, mem, i, &s, min_addr, max_end, who, err,
				  errlen))
			return -1;
		if (s.paddr < l)
			l = s.paddr;
		if (s.paddr + s.memsz > h)
			h = s.paddr + s.memsz;
		nr++;
	}
	if (!nr) {
		errf(err, errlen, "%s: ELF file has no loadable segment", who);
		return -1;
	}
	for (unsigned i = 0; i < img->phnum; i++) {
		struct elf_segment s;
		uint8_t *dst;

		elf__segment(img, i, &s);
		if (s.type != PT_LOAD || s.memsz == 0)
			continue;
		dst = guest_mem__ptr(mem, s.paddr, s.memsz);
		memcpy(dst, img->buf + s.offset, s.filesz);
		memset(dst + s.filesz, 0, s.memsz - s.filesz);
	}
	*lo = l;
	*hi = h;
	return 0;
}

int elf__entry_paddr(const struct elf_image *img, uint64_t *paddr)
{
	struct elf_segment s;

	for (unsigned i = 0; i < img->phnum; i++) {
		elf__segment(img, i, &s);
		if (s.type == PT_LOAD && img->entry >= s.paddr &&
		    img->entry - s.paddr < s.memsz) {
			*paddr = img->entry;
			return 0;
		}
	}
	for (unsigned i = 0; i < img->phnum; i++) {
		elf__segment(img, i, &s);
		if (s.type == PT_LOAD && img->entry >= s.vaddr &&
		    img->entry - s.vaddr < s.memsz) {
			*paddr = s.paddr + (img->entry - s.vaddr);
			return 0;
		}
	}
	return -1;
}
