/* Booting through a BIOS image (SeaBIOS): checking the image, where it is
 * mapped, and the fw_cfg files that describe the machine to it.  Pure:
 * no KVM, no files; vmm/machine_firmware.c does the I/O.
 *
 * Mapping (as QEMU's pc machine does): the whole image read-only just below
 * 4 GiB, and its last min(size, 128 KiB) also at 0xE0000-0xFFFFF.  The low
 * copy is plain RAM preloaded with the image: SeaBIOS unlocks that range
 * through the i440FX PAM registers and writes its own data there, which a
 * RAM copy allows whatever the PAM bits say.  The vCPU starts at the reset
 * vector (CS base 0xFFFF0000, IP 0xFFF0), i.e. the image's last 16 bytes.
 *
 * ACPI: the tables come from guestfw/acpi.c, the builder the direct kernel
 * boot uses, laid out at guest-physical 0 so that every pointer field
 * holds an offset; the firmware places them itself as QEMU's
 * "etc/table-loader" script tells it (ALLOCATE, ADD_POINTER,
 * ADD_CHECKSUM): the RSDP alone in "etc/acpi/rsdp" (F segment), every
 * other table in "etc/acpi/tables" (high memory). */
#ifndef KRG_GUESTFW_FIRMWARE_H
#define KRG_GUESTFW_FIRMWARE_H

#include <stddef.h>
#include <stdint.h>

#include "guestfw/acpi.h"

struct e820_table;

#define FIRMWARE_MIN_SIZE 0x10000u        /* 64 KiB */
#define FIRMWARE_MAX_SIZE 0x1000000u      /* 16 MiB: 0xFF000000-4 GiB */
#define FIRMWARE_SIZE_ALIGN 0x10000u      /* QEMU's rule for -bios */
#define FIRMWARE_LOW_MAX 0x20000u         /* the 0xE0000 alias */
#define FIRMWARE_LOW_END 0x100000ull
#define FIRMWARE_4G 0x100000000ull
#define FIRMWARE_RESET_VECTOR 0xFFFFFFF0ull

struct firmware_layout {
	uint64_t rom_gpa;     /* 4 GiB - size */
	uint64_t rom_len;     /* the image's size */
	uint64_t low_gpa;     /* 1 MiB - low_len */
	uint64_t low_len;     /* min(size, 128 KiB) */
	uint64_t low_offset;  /* where in the image the low copy starts */
};

/* Checks that img looks like a PC BIOS image: a multiple of 64 KiB between
 * 64 KiB and 16 MiB, with a jump at the reset vector (its last 16 bytes,
 * after at most a few NOPs).  Fills *out.  Returns 0, or -1 with one line
 * in err (the caller names the file). */
int firmware__check(const uint8_t *img, size_t len,
		    struct firmware_layout *out, char *err, size_t errlen);

/* --- QEMU's table-loader (hw/acpi/bios-linker-loader.c's format) --- */

#define FW_LOADER_ENTRY_SIZE 128
#define FW_LOADER_FILESZ 56
#define FW_LOADER_ALLOCATE 1
#define FW_LOADER_ADD_POINTER 2
#define FW_LOADER_ADD_CHECKSUM 3
#define FW_LOADER_ZONE_HIGH 1
#define FW_LOADER_ZONE_FSEG 2

#define FW_ACPI_TABLES_FILE "etc/acpi/tables"
#define FW_ACPI_RSDP_FILE "etc/acpi/rsdp"
#define FW_TABLE_LOADER_FILE "etc/table-loader"
#define FW_ACPI_TABLES_ALIGN 64

/* One entry decoded (for tests and the checks below). */
struct fw_loader_cmd {
	uint32_t command;
	char file[FW_LOADER_FILESZ + 1];      /* POINTER: the destination */
	char src_file[FW_LOADER_FILESZ + 1];  /* POINTER */
	uint32_t align;                       /* ALLOCATE */
	uint8_t zone;                         /* ALLOCATE */
	uint32_t offset;                      /* POINTER, CHECKSUM */
	uint8_t size;                         /* POINTER */
	uint32_t start, length;               /* CHECKSUM */
};

/* Encodes one command into a 128-byte entry.  -1 if a name is too long. */
int fw_loader__encode(const struct fw_loader_cmd *cmd,
		      uint8_t out[FW_LOADER_ENTRY_SIZE]);
/* Decodes one entry (names NUL-terminated even if the entry's are not). */
void fw_loader__decode(const uint8_t in[FW_LOADER_ENTRY_SIZE],
		       struct fw_loader_cmd *cmd);

/* The three fw_cfg files of the ACPI tables.  Heap buffers owned here. */
struct firmware_acpi_files {
	uint8_t *tables;
	size_t tables_len;
	uint8_t rsdp[ACPI_RSDP_LEN];
	uint8_t *loader;
	size_t loader_len;
};

/* From tables acpi__build() laid out in buf at guest-physical 0 (so a
 * pointer field holds its target's offset in buf).  Returns 0, or -1 with
 * one line in err (layout not built at 0, out of memory). */
int firmware__acpi_files(const uint8_t *buf, const struct acpi_layout *lay,
			 struct firmware_acpi_files *out, char *err,
			 size_t errlen);
void firmware__acpi_files_free(struct firmware_acpi_files *f);

/* --- other fw_cfg files --- */

/* "etc/e820": per entry le64 address, le64 length, le32 type (20 bytes).
 * Returns the bytes written, or 0 if cap is too small. */
#define FW_E820_ENTRY_SIZE 20
size_t firmware__e820_file(const struct e820_table *t, uint8_t *out,
			   size_t cap);

/* "bootorder": OpenFirmware paths in boot order, one per line (no newline
 * after the last: SeaBIOS would count an empty entry), as QEMU writes them
 * for virtio-blk disks on bus 0 ("/pci@i0cf8/scsi@2/disk@0,0", the slot in
 * hex).  Returns the length without the NUL written after it (the fw_cfg
 * file carries the NUL, as QEMU's does), or 0 if cap is too small or a
 * slot is not 1-31. */
size_t firmware__bootorder(const unsigned *slots, unsigned nr, char *out,
			   size_t cap);

#endif
