/* Multiboot v1 loading, compatible with what QEMU's -kernel does for small
 * test kernels: an ELF32 image or one described by the header's address
 * fields (flag 16), modules given as "file args,file2" (-initrd), and a
 * multiboot information structure with the memory map. */
#ifndef KRG_GUESTFW_MULTIBOOT_H
#define KRG_GUESTFW_MULTIBOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct e820_table;
struct boot_entry;

#define MULTIBOOT_HEADER_MAGIC     0x1BADB002u
#define MULTIBOOT_BOOTLOADER_MAGIC 0x2BADB002u
#define MULTIBOOT_SEARCH           8192
#define MULTIBOOT_MAX_MODULES      64

/* Header flags. */
#define MB_FLAG_PAGE_ALIGN  (1u << 0)
#define MB_FLAG_MEMORY_INFO (1u << 1)
#define MB_FLAG_VIDEO_MODE  (1u << 2)
#define MB_FLAG_AOUT_KLUDGE (1u << 16)

/* Info structure flags and offsets (a 32-bit little-endian structure). */
#define MBI_FLAG_MEM        (1u << 0)
#define MBI_FLAG_CMDLINE    (1u << 2)
#define MBI_FLAG_MODS       (1u << 3)
#define MBI_FLAG_MMAP       (1u << 6)
#define MBI_FLAG_LOADER     (1u << 9)
#define MBI_FLAGS           0
#define MBI_MEM_LOWER       4
#define MBI_MEM_UPPER       8
#define MBI_CMDLINE         16
#define MBI_MODS_COUNT      20
#define MBI_MODS_ADDR       24
#define MBI_MMAP_LENGTH     44
#define MBI_MMAP_ADDR       48
#define MBI_BOOT_LOADER     64
#define MBI_SIZE            128

#define MULTIBOOT_LOADER_NAME "krg-vmm"

struct multiboot_header_info {
	uint32_t offset;        /* of the header in the file */
	uint32_t flags;
	uint32_t header_addr, load_addr, load_end_addr, bss_end_addr;
	uint32_t entry_addr;    /* valid with MB_FLAG_AOUT_KLUDGE */
};

/* One -initrd item: `path` is the file, `string` the whole item (file name
 * and arguments), which is what the kernel sees as the module string. */
struct multiboot_module_spec {
	char *path;
	char *string;
};

struct multiboot_module {
	const uint8_t *data;
	size_t len;
	const char *string;
};

struct multiboot_params_in {
	const uint8_t *kernel;
	size_t kernel_len;
	/* QEMU passes "<kernel file name> <append>" as the command line;
	 * kernel_name (may be NULL) is prefixed the same way. */
	const char *kernel_name;
	const char *cmdline;
	const struct multiboot_module *mods;
	unsigned nr_mods;
};

/* 1 if a usable header (magic, valid checksum, complete address fields)
 * is in the first 8 KiB, 0 if there is no magic at all, -1 with err if a
 * magic was found but its header is bad (checksum, truncated). */
int multiboot__probe(const uint8_t *buf, size_t len,
		     struct multiboot_header_info *hdr, char *err,
		     size_t errlen);
/* Splits QEMU's -initrd syntax: items separated by ',', ",," for a literal
 * comma.  *mods is malloc'd; free with multiboot__free_modules.  0 or -1
 * with err (empty item, too many modules, out of memory). */
int multiboot__parse_modules(const char *list,
			     struct multiboot_module_spec **mods,
			     unsigned *nr_mods, char *err, size_t errlen);
void multiboot__free_modules(struct multiboot_module_spec *mods,
			     unsigned nr_mods);
/* Loads the kernel and its modules, writes the info structure and a flat
 * GDT into low RAM and fills *entry (PROT32, EAX magic, EBX info).  0, or
 * -1 with a one-line reason. */
int multiboot__load(const struct guest_mem *mem,
		    const struct multiboot_params_in *in,
		    const struct e820_table *e820, struct boot_entry *entry,
		    char *err, size_t errlen);

#endif
