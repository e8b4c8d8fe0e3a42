/* Multiboot v1 loader.  The image, its header and the module list are all
 * untrusted: every address is checked against the file and guest RAM
 * before anything is written. */
#include "guestfw/multiboot.h"

#include <elf.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/boot.h"
#include "guestfw/boot_tables.h"
#include "guestfw/e820.h"
#include "guestfw/elf_load.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"
#include "vmm/guest_mem.h"

/* Below this sit the GDT, the info area and the boot stack. */
#define MB_KERNEL_MIN 0x9000ull
#define MB_4G         0x100000000ull
/* Header flag bits 0-15 are requirements; a loader must refuse the ones it
 * does not know.  Video mode (bit 2) is accepted and ignored, as QEMU does:
 * there is no display. */
#define MB_FLAGS_KNOWN (MB_FLAG_PAGE_ALIGN | MB_FLAG_MEMORY_INFO | \
			MB_FLAG_VIDEO_MODE)

static uint64_t page_up(uint64_t v)
{
	return (v + 0xFFF) & ~0xFFFull;
}

int multiboot__probe(const uint8_t *buf, size_t len,
		     struct multiboot_header_info *hdr, char *err,
		     size_t errlen)
{
	size_t end = len < MULTIBOOT_SEARCH ? len : MULTIBOOT_SEARCH;
	int bad = 0;

	memset(hdr, 0, sizeof(*hdr));
	for (size_t off = 0; off + 12 <= end; off += 4) {
		const uint8_t *h = buf + off;
		uint32_t flags = get_le32(h + 4);

		if (get_le32(h) != MULTIBOOT_HEADER_MAGIC)
			continue;
		if ((uint32_t)(MULTIBOOT_HEADER_MAGIC + flags + get_le32(h + 8))) {
			if (!bad)
				errf(err, errlen,
				     "multiboot: header at offset 0x%zx has a bad checksum",
				     off);
			bad = 1;
			continue;
		}
		if ((flags & MB_FLAG_AOUT_KLUDGE) && len - off < 32) {
			errf(err, errlen,
			     "multiboot: header at offset 0x%zx is truncated", off);
			return -1;
		}
		hdr->offset = (uint32_t)off;
		hdr->flags = flags;
		if (flags & MB_FLAG_AOUT_KLUDGE) {
			hdr->header_addr = get_le32(h + 12);
			hdr->load_addr = get_le32(h + 16);
			hdr->load_end_addr = get_le32(h + 20);
			hdr->bss_end_addr = get_le32(h + 24);
			hdr->entry_addr = get_le32(h + 28);
		}
		return 1;
	}
	return bad ? -1 : 0;
}

int multiboot__parse_modules(const char *list,
			     struct multiboot_module_spec **mods,
			     unsigned *nr_mods, char *err, size_t errlen)
{
	size_t n = strlen(list);
	struct multiboot_module_spec *m;
	unsigned nr = 0;
	char *item;
	size_t i = 0;

	*mods = NULL;
	*nr_mods = 0;
	m = calloc(MULTIBOOT_MAX_MODULES, sizeof(*m));
	item = malloc(n + 1);
	if (!m || !item)
		goto oom;
	while (i <= n) {
		size_t len = 0;
		char *sp;

		/* One item: up to a lone ',' or the end; ",," is a ','. */
		while (i < n) {
			if (list[i] == ',' && list[i + 1] == ',') {
				item[len++] = ',';
				i += 2;
			} else if (list[i] == ',') {
				break;
			} else {
				item[len++] = list[i++];
			}
		}
		i++; /* past the separator (or the end) */
		item[len] = 0;
		if (len == 0 || item[0] == ' ') {
			errf(err, errlen, "multiboot: empty module file name in \"%s\"",
			     list);
			goto fail;
		}
		if (nr == MULTIBOOT_MAX_MODULES) {
			errf(err, errlen, "multiboot: more than %d modules",
			     MULTIBOOT_MAX_MODULES);
			goto fail;
		}
		m[nr].string = strdup(item);
		sp = strchr(item, ' ');
		if (sp)
			*sp = 0;
		m[nr].path = strdup(item);
		nr++;
		if (!m[nr - 1].string || !m[nr - 1].path)
			goto oom;
	}
	free(item);
	*mods = m;
	*nr_mods = nr;
	return 0;
oom:
	errf(err, errlen, "multiboot: out of memory");
fail:
	free(item);
	multiboot__free_modules(m, nr);
	return -1;
}

void multiboot__free_modules(struct multiboot_module_spec *mods,
			     unsigned nr_mods)
{
	if (!mods)
		return;
	for (unsigned i = 0; i < nr_mods; i++) {
		free(mods[i].path);
		free(mods[i].string);
	}
	free(mods);
}

/* The a.out kludge: the header says where the file goes. */
static int load_aout(const struct guest_mem *mem, const uint8_t *buf,
		     size_t len, const struct multiboot_header_info *h,
		     uint64_t *lo, uint64_t *hi, uint64_t *entry, char *err,
		     size_t errlen)
{
	uint64_t file_off, load_size, mem_size;
	uint8_t *dst;

	if (h->header_addr < h->load_addr ||
	    h->header_addr - h->load_addr > h->offset) {
		errf(err, errlen,
		     "multiboot: header_addr 0x%x and load_addr 0x%x put the image before the file start",
		     h->header_addr, h->load_addr);
		return -1;
	}
	file_off = h->offset - (h->header_addr - h->load_addr);
	if (h->load_end_addr) {
		if (h->load_end_addr <= h->load_addr) {
			errf(err, errlen,
			     "multiboot: load_end_addr 0x%x is not above load_addr 0x%x",
			     h->load_end_addr, h->load_addr);
			return -1;
		}
		load_size = h->load_end_addr - h->load_addr;
	} else {
		load_size = len - file_off;
	}
	if (load_size > len - file_off) {
		errf(err, errlen,
		     "multiboot: image is truncated: the header asks for %" PRIu64
		     " bytes from offset %" PRIu64 ", the file has %zu",
		     load_size, file_off, len);
		return -1;
	}
	mem_size = load_size;
	if (h->bss_end_addr) {
		if (h->bss_end_addr < h->load_addr + load_size) {
			errf(err, errlen,
			     "multiboot: bss_end_addr 0x%x is below the end of the loaded image",
			     h->bss_end_addr);
			return -1;
		}
		mem_size = h->bss_end_addr - h->load_addr;
	}
	if (mem_size == 0 || h->load_addr < MB_KERNEL_MIN ||
	    !(dst = guest_mem__ptr(mem, h->load_addr, mem_size))) {
		errf(err, errlen, "multiboot: image at 0x%x-0x%" PRIx64
		     " does not fit in guest RAM above 0x%llx",
		     h->load_addr, h->load_addr + mem_size, MB_KERNEL_MIN);
		return -1;
	}
	memcpy(dst, buf + file_off, load_size);
	memset(dst + load_size, 0, mem_size - load_size);
	*lo = h->load_addr;
	*hi = h->load_addr + mem_size;
	*entry = h->entry_addr;
	return 0;
}

static int load_elf32(const struct guest_mem *mem, const uint8_t *buf,
		      size_t len, uint64_t *lo, uint64_t *hi, uint64_t *entry,
		      char *err, size_t errlen)
{
	struct elf_image img;

	if (elf__open(&img, buf, len, "multiboot", err, errlen))
		return -1;
	if (img.is64) {
		errf(err, errlen,
		     "multiboot: 64-bit ELF images are not supported, use the address fields (flag 16)");
		return -1;
	}
	if (img.machine != EM_386) {
		errf(err, errlen, "multiboot: ELF image is for machine %u, not i386",
		     img.machine);
		return -1;
	}
	if (elf__load(&img, mem, MB_KERNEL_MIN, MB_4G, lo, hi, "multiboot",
		      err, errlen))
		return -1;
	if (elf__entry_paddr(&img, entry)) {
		errf(err, errlen,
		     "multiboot: ELF entry point 0x%" PRIx64 " is not inside a loadable segment",
		     img.entry);
		return -1;
	}
	return 0;
}

/* Bump allocator over the info area; `host` maps all of it. */
struct mb_area {
	uint8_t *host;
	uint64_t next;
};

static uint64_t area_alloc(struct mb_area *a, uint64_t size, uint64_t align)
{
	uint64_t at = (a->next + align - 1) & ~(align - 1);

	if (at > BOOT_MBI_END || size > BOOT_MBI_END - at)
		return 0;
	a->next = at + size;
	return at;
}

static uint64_t area_str(struct mb_area *a, const char *s1, const char *s2)
{
	size_t l1 = strlen(s1), l2 = s2 ? strlen(s2) + 1 : 0;
	uint64_t at = area_alloc(a, l1 + l2 + 1, 1);
	uint8_t *p;

	if (!at)
		return 0;
	p = a->host + (at - BOOT_MBI_GPA);
	memcpy(p, s1, l1);
	if (s2) {
		p[l1] = ' ';
		memcpy(p + l1 + 1, s2, l2 - 1);
	}
	p[l1 + l2] = 0;
	return at;
}

static int place_modules(const struct guest_mem *mem,
			 const struct multiboot_params_in *in, uint64_t start,
			 uint8_t *mods_tab, struct mb_area *a, char *err,
			 size_t errlen)
{
	uint64_t at = page_up(start);

	for (unsigned i = 0; i < in->nr_mods; i++) {
		const struct multiboot_module *m = &in->mods[i];
		uint64_t str = area_str(a, m->string ? m->string : "", NULL);
		uint8_t *dst = NULL;

		if (!str) {
			errf(err, errlen,
			     "multiboot: module strings do not fit in the info area");
			return -1;
		}
		if (at >= MB_4G || m->len > MB_4G - at ||
		    (m->len && !(dst = guest_mem__ptr(mem, at, m->len)))) {
			errf(err, errlen,
			     "multiboot: module %u (%zu bytes) does not fit in guest RAM at 0x%" PRIx64,
			     i, m->len, at);
			return -1;
		}
		if (m->len)
			memcpy(dst, m->data, m->len);
		put_le32(mods_tab + 16 * i, (uint32_t)at);
		put_le32(mods_tab + 16 * i + 4, (uint32_t)(at + m->len));
		put_le32(mods_tab + 16 * i + 8, (uint32_t)str);
		put_le32(mods_tab + 16 * i + 12, 0);
		at = page_up(at + m->len);
	}
	return 0;
}

static int write_info(const struct guest_mem *mem,
		      const struct multiboot_params_in *in,
		      const struct e820_table *e820, uint64_t kernel_hi,
		      char *err, size_t errlen)
{
	struct mb_area a = {
		.host = guest_mem__ptr(mem, BOOT_MBI_GPA, BOOT_MBI_END - BOOT_MBI_GPA),
		.next = BOOT_MBI_GPA,
	};
	uint64_t mbi, mmap, mods = 0, name, cmd, lower, upper;
	uint8_t *p;

	if (!a.host) {
		errf(err, errlen, "multiboot: guest RAM too small for the info area");
		return -1;
	}
	memset(a.host, 0, BOOT_MBI_END - BOOT_MBI_GPA);
	mbi = area_alloc(&a, MBI_SIZE, 8);
	mmap = area_alloc(&a, 24ull * e820->nr_entries, 8);
	if (in->nr_mods)
		mods = area_alloc(&a, 16ull * in->nr_mods, 16);
	name = area_str(&a, MULTIBOOT_LOADER_NAME, NULL);
	if (in->kernel_name)
		cmd = area_str(&a, in->kernel_name, in->cmdline ? in->cmdline : "");
	else
		cmd = area_str(&a, in->cmdline ? in->cmdline : "", NULL);
	if (!mbi || !mmap || (in->nr_mods && !mods) || !name || !cmd) {
		errf(err, errlen,
		     "multiboot: command line and module list do not fit in the %llu KiB info area",
		     (BOOT_MBI_END - BOOT_MBI_GPA) >> 10);
		return -1;
	}
	p = a.host + (mbi - BOOT_MBI_GPA);
	if (in->nr_mods &&
	    place_modules(mem, in, kernel_hi, a.host + (mods - BOOT_MBI_GPA), &a,
			  err, errlen))
		return -1;

	for (uint32_t i = 0; i < e820->nr_entries; i++) {
		uint8_t *e = a.host + (mmap - BOOT_MBI_GPA) + 24 * i;

		/* `size` counts the bytes after itself. */
		put_le32(e, 20);
		put_le64(e + 4, e820->entries[i].addr);
		put_le64(e + 12, e820->entries[i].size);
		put_le32(e + 20, e820->entries[i].type);
	}
	lower = e820__ram_at(e820, 0) >> 10;
	if (lower > 640)
		lower = 640;
	upper = e820__ram_at(e820, E820_HIGH_MEM_START) >> 10;
	if (upper > UINT32_MAX)
		upper = UINT32_MAX;

	put_le32(p + MBI_FLAGS, MBI_FLAG_MEM | MBI_FLAG_CMDLINE | MBI_FLAG_MMAP |
		 MBI_FLAG_LOADER | (in->nr_mods ? MBI_FLAG_MODS : 0));
	put_le32(p + MBI_MEM_LOWER, (uint32_t)lower);
	put_le32(p + MBI_MEM_UPPER, (uint32_t)upper);
	put_le32(p + MBI_CMDLINE, (uint32_t)cmd);
	put_le32(p + MBI_MODS_COUNT, in->nr_mods);
	put_le32(p + MBI_MODS_ADDR, (uint32_t)mods);
	put_le32(p + MBI_MMAP_LENGTH, 24 * e820->nr_entries);
	put_le32(p + MBI_MMAP_ADDR, (uint32_t)mmap);
	put_le32(p + MBI_BOOT_LOADER, (uint32_t)name);
	return 0;
}

int multiboot__load(const struct guest_mem *mem,
		    const struct multiboot_params_in *in,
		    const struct e820_table *e820, struct boot_entry *entry,
		    char *err, size_t errlen)
{
	struct multiboot_header_info h;
	uint64_t lo, hi, rip;
	int found;

	found = multiboot__probe(in->kernel, in->kernel_len, &h, err, errlen);
	if (found < 0)
		return -1;
	if (!found) {
		errf(err, errlen, "multiboot: no multiboot header in the first %d bytes",
		     MULTIBOOT_SEARCH);
		return -1;
	}
	if (h.flags & 0xFFFF & ~MB_FLAGS_KNOWN) {
		errf(err, errlen,
		     "multiboot: header requires unsupported features (flags 0x%x)",
		     h.flags);
		return -1;
	}
	if (in->nr_mods > MULTIBOOT_MAX_MODULES) {
		errf(err, errlen, "multiboot: more than %d modules",
		     MULTIBOOT_MAX_MODULES);
		return -1;
	}
	if (h.flags & MB_FLAG_AOUT_KLUDGE) {
		if (load_aout(mem, in->kernel, in->kernel_len, &h, &lo, &hi, &rip,
			      err, errlen))
			return -1;
	} else if (elf__is_elf(in->kernel, in->kernel_len)) {
		if (load_elf32(mem, in->kernel, in->kernel_len, &lo, &hi, &rip,
			       err, errlen))
			return -1;
	} else {
		errf(err, errlen,
		     "multiboot: image is not ELF and its header has no address fields (flag 16)");
		return -1;
	}
	if (rip >= MB_4G || !guest_mem__ptr(mem, rip, 1)) {
		errf(err, errlen,
		     "multiboot: entry point 0x%" PRIx64 " is not in guest RAM", rip);
		return -1;
	}
	if (write_info(mem, in, e820, hi, err, errlen))
		return -1;
	if (boot_tables__write_gdt(mem)) {
		errf(err, errlen, "multiboot: guest RAM too small for the GDT");
		return -1;
	}
	memset(entry, 0, sizeof(*entry));
	entry->mode = BOOT_MODE_PROT32;
	entry->rip = rip;
	entry->rsp = BOOT_STACK_TOP;
	entry->rax = MULTIBOOT_BOOTLOADER_MAGIC;
	entry->rbx = BOOT_MBI_GPA;
	entry->gdt_base = BOOT_GDT_GPA;
	entry->gdt_limit = BOOT_GDT_LIMIT;
	entry->cs_sel = BOOT_SEL_CODE32;
	entry->ds_sel = BOOT_SEL_DATA;
	return 0;
}
