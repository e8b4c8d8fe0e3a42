/* Linux boot protocol (Documentation/arch/x86/boot.rst), 64-bit entry of
 * the decompressed vmlinux.  Offsets below are those of struct boot_params
 * (the zero page) and of its embedded setup header, which a bzImage keeps
 * at the same offsets in its first sector. */
#include "guestfw/linux_boot.h"

#include <elf.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/boot.h"
#include "guestfw/boot_tables.h"
#include "guestfw/decompress.h"
#include "guestfw/e820.h"
#include "guestfw/elf_load.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"
#include "vmm/guest_mem.h"

/* struct boot_params */
#define BP_ACPI_RSDP_ADDR     0x070
#define BP_EXT_RAMDISK_IMAGE  0x0C0
#define BP_EXT_RAMDISK_SIZE   0x0C4
#define BP_EXT_CMD_LINE_PTR   0x0C8
#define BP_E820_ENTRIES       0x1E8
#define BP_HDR                0x1F1
#define BP_HDR_MAX_END        0x290 /* edd_mbr_sig_buffer follows */
#define BP_E820_TABLE         0x2D0
#define BP_SIZE               0x1000
/* struct setup_header, at its zero-page offset */
#define HDR_SETUP_SECTS       0x1F1
#define HDR_VID_MODE          0x1FA
#define HDR_BOOT_FLAG         0x1FE
#define HDR_JUMP              0x200
#define HDR_MAGIC             0x202
#define HDR_VERSION           0x206
#define HDR_TYPE_OF_LOADER    0x210
#define HDR_LOADFLAGS         0x211
#define HDR_RAMDISK_IMAGE     0x218
#define HDR_RAMDISK_SIZE      0x21C
#define HDR_HEAP_END_PTR      0x224
#define HDR_CMD_LINE_PTR      0x228
#define HDR_INITRD_ADDR_MAX   0x22C
#define HDR_KERNEL_ALIGNMENT  0x230
#define HDR_XLOADFLAGS        0x236
#define HDR_CMDLINE_SIZE      0x238
#define HDR_PAYLOAD_OFFSET    0x248
#define HDR_PAYLOAD_LENGTH    0x24C
#define HDR_PREF_ADDRESS      0x258
#define HDR_INIT_SIZE         0x260
#define HDR_MIN_FILE_LEN      0x268 /* through init_size for 2.12+ */

#define HDRS_MAGIC            0x53726448u /* "HdrS" */
#define LOADED_HIGH           0x01
#define CAN_USE_HEAP          0x80
#define XLF_KERNEL_64         0x01
#define LOADER_UNDEFINED      0xFF

/* Values for a raw vmlinux, which carries no setup header: those of
 * arch/x86/boot/header.S for x86-64. */
#define SYNTH_INITRD_ADDR_MAX 0x7FFFFFFFu
#define SYNTH_CMDLINE_SIZE    2047u
#define SYNTH_KERNEL_ALIGN    0x200000u

static int probe_elf(const uint8_t *buf, size_t len,
		     struct linux_kernel_info *info, char *err, size_t errlen)
{
	struct elf_image img;

	if (elf__open(&img, buf, len, "kernel", err, errlen))
		return -1;
	if (!img.is64) {
		errf(err, errlen,
		     "kernel: ELF file is 32-bit; the 64-bit boot protocol needs an x86-64 vmlinux");
		return -1;
	}
	if (img.machine != EM_X86_64) {
		errf(err, errlen,
		     "kernel: ELF file is for machine %u, not x86-64 (%u)",
		     img.machine, EM_X86_64);
		return -1;
	}
	info->format = LINUX_IMAGE_ELF;
	info->version = LINUX_SYNTH_PROTOCOL;
	info->xloadflags = XLF_KERNEL_64;
	info->initrd_addr_max = SYNTH_INITRD_ADDR_MAX;
	info->cmdline_size = SYNTH_CMDLINE_SIZE;
	info->kernel_alignment = SYNTH_KERNEL_ALIGN;
	return 0;
}

static int probe_bzimage(const uint8_t *buf, size_t len,
			 struct linux_kernel_info *info, char *err,
			 size_t errlen)
{
	uint64_t pm_off, end;
	const uint8_t *payload;

	info->format = LINUX_IMAGE_BZIMAGE;
	info->version = get_le16(buf + HDR_VERSION);
	if (info->version < LINUX_MIN_PROTOCOL) {
		errf(err, errlen,
		     "kernel boot protocol %u.%02x is too old for the 64-bit entry (need 2.12)",
		     info->version >> 8, info->version & 0xFF);
		return -1;
	}
	if (len < HDR_MIN_FILE_LEN) {
		errf(err, errlen,
		     "bzImage is truncated: %zu bytes, the setup header alone needs %u",
		     len, HDR_MIN_FILE_LEN);
		return -1;
	}
	info->setup_sects = buf[HDR_SETUP_SECTS];
	info->xloadflags = get_le16(buf + HDR_XLOADFLAGS);
	info->initrd_addr_max = get_le32(buf + HDR_INITRD_ADDR_MAX);
	info->cmdline_size = get_le32(buf + HDR_CMDLINE_SIZE);
	info->kernel_alignment = get_le32(buf + HDR_KERNEL_ALIGNMENT);
	info->init_size = get_le32(buf + HDR_INIT_SIZE);
	info->pref_address = get_le64(buf + HDR_PREF_ADDRESS);
	if (!(info->xloadflags & XLF_KERNEL_64)) {
		errf(err, errlen,
		     "bzImage is not a 64-bit kernel (xloadflags 0x%x lacks XLF_KERNEL_64)",
		     info->xloadflags);
		return -1;
	}
	/* setup_sects 0 means 4, for ancient compatibility. */
	pm_off = ((uint64_t)(info->setup_sects ? info->setup_sects : 4) + 1) * 512;
	info->payload_off = pm_off + get_le32(buf + HDR_PAYLOAD_OFFSET);
	info->payload_len = get_le32(buf + HDR_PAYLOAD_LENGTH);
	end = info->payload_off + info->payload_len;
	if (end > len) {
		errf(err, errlen,
		     "bzImage is truncated: its payload ends at byte %" PRIu64
		     " but the file has %zu bytes", end, len);
		return -1;
	}
	if (info->payload_len < 8) {
		errf(err, errlen, "bzImage payload is empty (%" PRIu64 " bytes)",
		     info->payload_len);
		return -1;
	}
	payload = buf + info->payload_off;
	info->payload_usize = get_le32(payload + info->payload_len - 4);
	info->compression = decompress__detect(payload, info->payload_len);
	if (info->compression == DECOMP_UNKNOWN) {
		if (!elf__is_elf(payload, info->payload_len)) {
			errf(err, errlen,
			     "bzImage payload has an unknown compression format (magic %02x %02x %02x %02x)",
			     payload[0], payload[1], payload[2], payload[3]);
			return -1;
		}
		info->payload_plain = 1;
	}
	return 0;
}

int linux_boot__probe(const uint8_t *buf, size_t len,
		      struct linux_kernel_info *info, char *err, size_t errlen)
{
	memset(info, 0, sizeof(*info));
	if (elf__is_elf(buf, len))
		return probe_elf(buf, len, info, err, errlen);
	if (len >= HDR_VERSION + 2 && get_le32(buf + HDR_MAGIC) == HDRS_MAGIC)
		return probe_bzimage(buf, len, info, err, errlen);
	if (len < HDR_VERSION + 2)
		errf(err, errlen,
		     "kernel image is truncated or not a kernel (%zu bytes)", len);
	else
		errf(err, errlen,
		     "kernel image is neither a bzImage (no HdrS magic) nor an ELF vmlinux");
	return -1;
}

int linux_boot__extract(const uint8_t *buf, size_t len,
			const struct linux_kernel_info *info, uint8_t **vmlinux,
			size_t *vmlinux_len, char *err, size_t errlen)
{
	const uint8_t *payload = buf + info->payload_off;
	size_t usize = info->payload_usize;
	char why[200];

	*vmlinux = NULL;
	*vmlinux_len = 0;
	if (info->format != LINUX_IMAGE_BZIMAGE ||
	    info->payload_off + info->payload_len > len) {
		errf(err, errlen, "kernel: no bzImage payload to extract");
		return -1;
	}
	if (usize > DECOMPRESS_MAX_OUT) {
		errf(err, errlen,
		     "bzImage payload claims %zu bytes uncompressed, more than the %llu MiB limit",
		     usize, DECOMPRESS_MAX_OUT >> 20);
		return -1;
	}
	if (info->payload_plain) {
		if (usize != info->payload_len - 4) {
			errf(err, errlen,
			     "bzImage payload is %" PRIu64 " bytes but its trailer says %zu",
			     info->payload_len - 4, usize);
			return -1;
		}
		*vmlinux = malloc(usize);
		if (!*vmlinux) {
			errf(err, errlen, "kernel: out of memory");
			return -1;
		}
		memcpy(*vmlinux, payload, usize);
		*vmlinux_len = usize;
		return 0;
	}
	/* The trailer is the exact size (gzip's ISIZE for gzip, an appended
	 * word for the others): anything else is corruption. */
	if (decompress__run(info->compression, payload, info->payload_len,
			    vmlinux, vmlinux_len, usize, why, sizeof(why))) {
		errf(err, errlen, "bzImage payload: %s", why);
		return -1;
	}
	if (*vmlinux_len != usize) {
		errf(err, errlen,
		     "bzImage payload decompressed to %zu bytes but its trailer says %zu",
		     *vmlinux_len, usize);
		free(*vmlinux);
		*vmlinux = NULL;
		*vmlinux_len = 0;
		return -1;
	}
	return 0;
}

const char *linux_boot__compression_name(const struct linux_kernel_info *info)
{
	if (info->format != LINUX_IMAGE_BZIMAGE)
		return "-";
	if (info->payload_plain)
		return "none";
	return decompress__name(info->compression);
}

/* The setup header: the kernel's own for a bzImage (its end is given by the
 * jump at 0x200), a synthesized one for a vmlinux. */
static void fill_header(uint8_t *bp, const uint8_t *kernel, size_t len,
			const struct linux_kernel_info *info)
{
	if (info->format == LINUX_IMAGE_BZIMAGE) {
		size_t end = HDR_MAGIC + (size_t)kernel[HDR_JUMP + 1];

		if (end > BP_HDR_MAX_END)
			end = BP_HDR_MAX_END;
		if (end > len)
			end = len;
		memcpy(bp + BP_HDR, kernel + BP_HDR, end - BP_HDR);
		return;
	}
	put_le16(bp + HDR_VID_MODE, 0xFFFF);
	put_le16(bp + HDR_BOOT_FLAG, 0xAA55);
	put_le32(bp + HDR_MAGIC, HDRS_MAGIC);
	put_le16(bp + HDR_VERSION, info->version);
	put_le32(bp + HDR_INITRD_ADDR_MAX, info->initrd_addr_max);
	put_le32(bp + HDR_KERNEL_ALIGNMENT, info->kernel_alignment);
	put_le16(bp + HDR_XLOADFLAGS, info->xloadflags);
	put_le32(bp + HDR_CMDLINE_SIZE, info->cmdline_size);
	put_le32(bp + HDR_INIT_SIZE, info->init_size);
}

static int write_boot_params(const struct guest_mem *mem,
			     const struct linux_boot_params_in *in,
			     const struct linux_kernel_info *info,
			     const struct e820_table *e820, uint64_t initrd_gpa,
			     size_t cmdline_len, char *err, size_t errlen)
{
	uint8_t *bp = guest_mem__ptr(mem, BOOT_ZERO_PAGE_GPA, BP_SIZE);
	uint8_t *cl = guest_mem__ptr(mem, BOOT_CMDLINE_GPA, cmdline_len + 1);

	if (!bp || !cl) {
		errf(err, errlen, "kernel: guest RAM too small for boot_params");
		return -1;
	}
	if (e820->nr_entries > E820_MAX_ENTRIES) {
		errf(err, errlen, "kernel: E820 map has too many entries");
		return -1;
	}
	memset(bp, 0, BP_SIZE);
	fill_header(bp, in->kernel, in->kernel_len, info);

	bp[HDR_TYPE_OF_LOADER] = LOADER_UNDEFINED;
	bp[HDR_LOADFLAGS] |= LOADED_HIGH | CAN_USE_HEAP;
	/* Only the real-mode setup code uses the heap; the value is the
	 * customary one for a loader that placed setup at 0x90000. */
	put_le16(bp + HDR_HEAP_END_PTR, 0xFE00);

	memcpy(cl, in->cmdline ? in->cmdline : "", cmdline_len);
	cl[cmdline_len] = 0;
	put_le32(bp + HDR_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_GPA);
	put_le32(bp + BP_EXT_CMD_LINE_PTR, (uint32_t)(BOOT_CMDLINE_GPA >> 32));

	if (initrd_gpa) {
		put_le32(bp + HDR_RAMDISK_IMAGE, (uint32_t)initrd_gpa);
		put_le32(bp + BP_EXT_RAMDISK_IMAGE, (uint32_t)(initrd_gpa >> 32));
		put_le32(bp + HDR_RAMDISK_SIZE, (uint32_t)in->initrd_len);
		put_le32(bp + BP_EXT_RAMDISK_SIZE,
			 (uint32_t)((uint64_t)in->initrd_len >> 32));
	}
	if (in->rsdp_gpa)
		put_le64(bp + BP_ACPI_RSDP_ADDR, in->rsdp_gpa);

	bp[BP_E820_ENTRIES] = (uint8_t)e820->nr_entries;
	for (uint32_t i = 0; i < e820->nr_entries; i++) {
		uint8_t *e = bp + BP_E820_TABLE + 20 * i;

		put_le64(e, e820->entries[i].addr);
		put_le64(e + 8, e820->entries[i].size);
		put_le32(e + 16, e820->entries[i].type);
	}
	return 0;
}

/* Loads the vmlinux ELF and places the initrd; fills *res. */
static int load_images(const struct guest_mem *mem,
		       const struct linux_boot_params_in *in,
		       struct linux_kernel_info *info,
		       const struct e820_table *e820, const uint8_t *elf,
		       size_t elf_len, struct linux_boot_result *res, char *err,
		       size_t errlen)
{
	struct elf_image img;
	uint64_t avoid_hi, limit_end;

	if (elf__open(&img, elf, elf_len, "kernel", err, errlen))
		return -1;
	if (!img.is64 || img.machine != EM_X86_64) {
		errf(err, errlen, "kernel: payload is not an x86-64 ELF vmlinux");
		return -1;
	}
	/* Everything must be below 4 GiB: that is what the boot page tables
	 * map, and startup_64 runs before it has its own. */
	if (elf__load(&img, mem, E820_HIGH_MEM_START, BOOT_IDMAP_END,
		      &res->kernel_lo, &res->kernel_hi, "kernel", err, errlen))
		return -1;
	if (elf__entry_paddr(&img, &res->entry)) {
		errf(err, errlen,
		     "kernel: ELF entry point 0x%" PRIx64 " is not inside a loadable segment",
		     img.entry);
		return -1;
	}
	if (info->format == LINUX_IMAGE_ELF)
		info->init_size = (uint32_t)(res->kernel_hi - res->kernel_lo);
	res->vmlinux_size = elf_len;

	if (!in->initrd || !in->initrd_len)
		return 0;
	/* Keep clear of what the kernel claims it needs beyond its image. */
	avoid_hi = res->kernel_hi;
	if (res->kernel_lo + info->init_size > avoid_hi)
		avoid_hi = res->kernel_lo + info->init_size;
	limit_end = (uint64_t)info->initrd_addr_max + 1;
	if (limit_end > BOOT_IDMAP_END)
		limit_end = BOOT_IDMAP_END;
	if (e820__find_highest(e820, in->initrd_len, 4096, E820_HIGH_MEM_START,
			       limit_end, res->kernel_lo, avoid_hi,
			       &res->initrd_gpa) ||
	    !guest_mem__ptr(mem, res->initrd_gpa, in->initrd_len)) {
		errf(err, errlen,
		     "initrd (%zu bytes) does not fit in guest RAM below 0x%" PRIx64
		     " beside the kernel (%" PRIu64 " MiB of RAM)",
		     in->initrd_len, limit_end, mem->ram_size >> 20);
		return -1;
	}
	memcpy(guest_mem__ptr(mem, res->initrd_gpa, in->initrd_len), in->initrd,
	       in->initrd_len);
	res->initrd_len = in->initrd_len;
	return 0;
}

int linux_boot__load(const struct guest_mem *mem,
		     const struct linux_boot_params_in *in,
		     const struct e820_table *e820, struct boot_entry *entry,
		     struct linux_boot_result *result, char *err,
		     size_t errlen)
{
	struct linux_boot_result res;
	uint8_t *vmlinux = NULL;
	size_t vmlinux_len, cmdline_len;
	uint64_t cr3;
	int rc = -1;

	memset(&res, 0, sizeof(res));
	if (linux_boot__probe(in->kernel, in->kernel_len, &res.info, err, errlen))
		return -1;
	cmdline_len = in->cmdline ? strlen(in->cmdline) : 0;
	if (cmdline_len > res.info.cmdline_size ||
	    cmdline_len >= BOOT_CMDLINE_MAX) {
		errf(err, errlen,
		     "kernel command line is %zu bytes; this kernel accepts at most %u",
		     cmdline_len, res.info.cmdline_size);
		return -1;
	}
	if (res.info.format == LINUX_IMAGE_BZIMAGE && in->vmlinux) {
		rc = load_images(mem, in, &res.info, e820, in->vmlinux,
				 in->vmlinux_len, &res, err, errlen);
	} else if (res.info.format == LINUX_IMAGE_BZIMAGE) {
		if (linux_boot__extract(in->kernel, in->kernel_len, &res.info,
					&vmlinux, &vmlinux_len, err, errlen))
			return -1;
		rc = load_images(mem, in, &res.info, e820, vmlinux, vmlinux_len,
				 &res, err, errlen);
		free(vmlinux);
	} else {
		rc = load_images(mem, in, &res.info, e820, in->kernel,
				 in->kernel_len, &res, err, errlen);
	}
	if (rc)
		return -1;
	if (write_boot_params(mem, in, &res.info, e820, res.initrd_gpa,
			      cmdline_len, err, errlen))
		return -1;
	cr3 = boot_tables__write_identity_map(mem);
	if (!cr3 || boot_tables__write_gdt(mem)) {
		errf(err, errlen, "kernel: guest RAM too small for boot tables");
		return -1;
	}

	memset(entry, 0, sizeof(*entry));
	entry->mode = BOOT_MODE_LONG64;
	entry->rip = res.entry;
	entry->rsp = BOOT_STACK_TOP;
	entry->rsi = BOOT_ZERO_PAGE_GPA;
	entry->cr3 = cr3;
	entry->gdt_base = BOOT_GDT_GPA;
	entry->gdt_limit = BOOT_GDT_LIMIT;
	entry->cs_sel = BOOT_SEL_CODE64;
	entry->ds_sel = BOOT_SEL_DATA;
	if (result)
		*result = res;
	return 0;
}
