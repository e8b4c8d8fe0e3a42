/* QEMU's fw_cfg interface (docs/specs/fw_cfg.rst), the x86 I/O port
 * flavour: how SeaBIOS and Linux's qemu_fw_cfg driver get the RAM size,
 * CPU count, command line and named files (etc/e820, bootorder,
 * etc/table-loader, ...).  Register: PIO base FW_CFG_PORT (0x510), length
 * FW_CFG_PORT_LEN (12), handler fw_cfg__io, opaque = the struct fw_cfg:
 *   0x510 word write   selector (bit 14, the write channel, is ignored:
 *                      guest writes are not supported)
 *   0x510/0x511 byte read  the selected item, streamed; 0 past its end
 *   0x514 dword write  DMA address bits 63:32 (big-endian)
 *   0x518 dword write  DMA address bits 31:0, starts the transfer
 *   0x514-0x51B read   the DMA signature "QEMU CFG"
 * Every guest address of a DMA transfer goes through guest_mem__ptr().
 *
 * Items are host configuration, rebuilt identically by the machine on a
 * restore; only the selection and DMA register are guest state.  Files are
 * kept sorted by name and numbered from FW_CFG_FILE_FIRST in that order,
 * as QEMU does, so add them all before the guest first looks. */
#ifndef KRG_VMM_DEVICES_FW_CFG_H
#define KRG_VMM_DEVICES_FW_CFG_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/guest_mem.h"

#define FW_CFG_PORT 0x510
#define FW_CFG_PORT_LEN 12
#define FW_CFG_STATE_VERSION 1

/* Selector keys. */
#define FW_CFG_SIGNATURE 0x0000
#define FW_CFG_ID 0x0001
#define FW_CFG_UUID 0x0002
#define FW_CFG_RAM_SIZE 0x0003
#define FW_CFG_NOGRAPHIC 0x0004
#define FW_CFG_NB_CPUS 0x0005
#define FW_CFG_MACHINE_ID 0x0006
#define FW_CFG_KERNEL_ADDR 0x0007
#define FW_CFG_KERNEL_SIZE 0x0008
#define FW_CFG_KERNEL_CMDLINE 0x0009
#define FW_CFG_INITRD_ADDR 0x000a
#define FW_CFG_INITRD_SIZE 0x000b
#define FW_CFG_BOOT_DEVICE 0x000c
#define FW_CFG_NUMA 0x000d
#define FW_CFG_BOOT_MENU 0x000e
#define FW_CFG_MAX_CPUS 0x000f
#define FW_CFG_KERNEL_ENTRY 0x0010
#define FW_CFG_KERNEL_DATA 0x0011
#define FW_CFG_INITRD_DATA 0x0012
#define FW_CFG_CMDLINE_ADDR 0x0013
#define FW_CFG_CMDLINE_SIZE 0x0014
#define FW_CFG_CMDLINE_DATA 0x0015
#define FW_CFG_SETUP_ADDR 0x0016
#define FW_CFG_SETUP_SIZE 0x0017
#define FW_CFG_SETUP_DATA 0x0018
#define FW_CFG_FILE_DIR 0x0019
#define FW_CFG_FILE_FIRST 0x0020
/* x86 arch-local keys (SeaBIOS reads some as fallbacks). */
#define FW_CFG_ACPI_TABLES 0x8000
#define FW_CFG_SMBIOS_ENTRIES 0x8001
#define FW_CFG_IRQ0_OVERRIDE 0x8002
#define FW_CFG_E820_TABLE 0x8003
#define FW_CFG_HPET 0x8004
#define FW_CFG_WRITE_CHANNEL 0x4000
#define FW_CFG_ARCH_LOCAL 0x8000
#define FW_CFG_INVALID 0xFFFF

/* FW_CFG_ID feature bits. */
#define FW_CFG_VERSION 0x01
#define FW_CFG_VERSION_DMA 0x02

/* FWCfgDmaAccess.control bits. */
#define FW_CFG_DMA_CTL_ERROR 0x01
#define FW_CFG_DMA_CTL_READ 0x02
#define FW_CFG_DMA_CTL_SKIP 0x04
#define FW_CFG_DMA_CTL_SELECT 0x08
#define FW_CFG_DMA_CTL_WRITE 0x10
#define FW_CFG_DMA_SIGNATURE 0x51454d5520434647ull /* "QEMU CFG" */

#define FW_CFG_MAX_FILE_PATH 56
#define FW_CFG_MAX_FILES 0x1000
#define FW_CFG_DIR_ENTRY_SIZE 64 /* be32 size, be16 select, u16, name[56] */

struct fw_cfg_state {
	uint32_t cur_offset;
	uint16_t cur_key;    /* FW_CFG_INVALID: nothing selected */
	uint16_t pad;
	uint8_t dma_addr[8]; /* the DMA address register, big-endian */
};
_Static_assert(sizeof(struct fw_cfg_state) == 16,
	       "fw_cfg_state is a saved format: bump FW_CFG_STATE_VERSION");

struct fw_cfg_item {
	uint16_t key;
	uint32_t len;
	uint8_t *data;
};

struct fw_cfg_file {
	char name[FW_CFG_MAX_FILE_PATH];
	uint32_t len;
	uint8_t *data;
};

struct fw_cfg {
	struct fw_cfg_state s;
	pthread_mutex_t lock;
	const struct guest_mem *mem;
	struct fw_cfg_item *items; /* keys below 0x20 and arch-local ones */
	size_t nr_items;
	struct fw_cfg_file *files; /* sorted by name */
	size_t nr_files;
	uint8_t *dir;              /* FW_CFG_FILE_DIR contents */
	uint32_t dir_len;
};

/* Adds the signature, FW_CFG_ID (traditional + DMA) and an empty file
 * directory.  Returns 0 or -1 (out of memory). */
int fw_cfg__init(struct fw_cfg *fw, const struct guest_mem *mem);
void fw_cfg__destroy(struct fw_cfg *fw);
/* Machine reset: nothing selected, DMA register cleared. */
void fw_cfg__reset(struct fw_cfg *fw);

/* Items are copied.  Re-adding a key replaces it.  Keys in the file range
 * [0x20, 0x4000) and FW_CFG_FILE_DIR are refused.  Return 0 or -1. */
int fw_cfg__add_bytes(struct fw_cfg *fw, uint16_t key, const void *data,
		      size_t len);
int fw_cfg__add_u16(struct fw_cfg *fw, uint16_t key, uint16_t v); /* LE */
int fw_cfg__add_u32(struct fw_cfg *fw, uint16_t key, uint32_t v);
int fw_cfg__add_u64(struct fw_cfg *fw, uint16_t key, uint64_t v);
/* FW_CFG_CMDLINE_SIZE (strlen + 1) and FW_CFG_CMDLINE_DATA (with NUL). */
int fw_cfg__add_cmdline(struct fw_cfg *fw, const char *cmdline);
/* A named file (name < 56 bytes, unique).  Returns 0 or -1. */
int fw_cfg__add_file(struct fw_cfg *fw, const char *name, const void *data,
		     size_t len);
/* The selector a file has now, or -1. */
int fw_cfg__file_key(struct fw_cfg *fw, const char *name);

void fw_cfg__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		bool is_write);
/* After fw->s was overwritten by a restore (nothing to re-arm: present
 * for uniformity; any restored selection is checked on use). */
void fw_cfg__post_load(struct fw_cfg *fw);

#endif
