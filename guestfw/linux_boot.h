/* Linux x86 boot through the 64-bit entry of the decompressed kernel: a
 * bzImage's payload is decompressed on the host (or a vmlinux ELF is taken
 * as is), its PT_LOAD segments go to their physical addresses, and the BSP
 * starts at startup_64 in long mode with RSI pointing at boot_params.  No
 * 16/32-bit setup code and no in-guest decompressor run: under PVM those
 * are emulated instruction by instruction. */
#ifndef KRG_GUESTFW_LINUX_BOOT_H
#define KRG_GUESTFW_LINUX_BOOT_H

#include <stddef.h>
#include <stdint.h>

struct guest_mem;
struct e820_table;
struct boot_entry;

enum linux_image_format {
	LINUX_IMAGE_BZIMAGE = 1,
	LINUX_IMAGE_ELF = 2,   /* a vmlinux */
};

/* Oldest protocol with the fields this loader relies on (xloadflags,
 * payload_offset/length, init_size; 2.12). */
#define LINUX_MIN_PROTOCOL   0x020C
/* What a raw vmlinux is described as in the synthesized setup header. */
#define LINUX_SYNTH_PROTOCOL 0x020F

struct linux_kernel_info {
	int format;             /* enum linux_image_format */
	uint16_t version;       /* boot protocol (synthesized for ELF) */
	int compression;        /* enum decomp_format of the bzImage payload */
	int payload_plain;      /* bzImage payload is an uncompressed ELF */
	uint64_t payload_off;   /* in the file */
	uint64_t payload_len;   /* including the 4-byte size trailer */
	uint32_t payload_usize; /* uncompressed size from the trailer */
	uint8_t setup_sects;
	uint16_t xloadflags;
	uint32_t initrd_addr_max;
	uint32_t cmdline_size;  /* max command line length without NUL */
	uint32_t kernel_alignment;
	uint32_t init_size;
	uint64_t pref_address;
};

struct linux_boot_params_in {
	const uint8_t *kernel;
	size_t kernel_len;
	const uint8_t *initrd; /* NULL or initrd_len 0: none */
	size_t initrd_len;
	const char *cmdline;   /* NULL: empty */
	uint64_t rsdp_gpa;     /* 0: let the kernel scan for the RSDP */
	/* Optional: the bzImage's payload already decompressed by
	 * linux_boot__extract (e.g. to report errors before creating the
	 * VM), so it is not decompressed twice.  NULL: decompress here. */
	const uint8_t *vmlinux;
	size_t vmlinux_len;
};

/* What was loaded where, for the log line. */
struct linux_boot_result {
	struct linux_kernel_info info;
	uint64_t vmlinux_size;  /* bytes of the (decompressed) ELF */
	uint64_t kernel_lo, kernel_hi; /* physical extent of PT_LOADs */
	uint64_t entry;         /* physical startup_64 */
	uint64_t initrd_gpa, initrd_len;
};

/* Identifies the image without decompressing it.  0, or -1 with a one-line
 * reason (truncated, not a kernel, protocol too old, not x86-64). */
int linux_boot__probe(const uint8_t *buf, size_t len,
		      struct linux_kernel_info *info, char *err, size_t errlen);
/* Decompresses a probed bzImage's payload into a malloc'd vmlinux ELF and
 * checks its size against the payload trailer.  0 or -1 with err. */
int linux_boot__extract(const uint8_t *buf, size_t len,
			const struct linux_kernel_info *info, uint8_t **vmlinux,
			size_t *vmlinux_len, char *err, size_t errlen);
/* Loads kernel, initrd, command line, boot_params, GDT and identity page
 * tables into guest RAM and fills *entry for the BSP.  `result` may be
 * NULL.  0, or -1 with a one-line reason in err. */
int linux_boot__load(const struct guest_mem *mem,
		     const struct linux_boot_params_in *in,
		     const struct e820_table *e820, struct boot_entry *entry,
		     struct linux_boot_result *result, char *err,
		     size_t errlen);
/* "xz", "gzip", ..., "none" (plain ELF payload) or "-" (vmlinux file). */
const char *linux_boot__compression_name(const struct linux_kernel_info *info);

#endif
