/* libFuzzer target: fw_cfg's guest-facing interface.  Arbitrary bytes are
 * a fake guest RAM (64 KiB heap block: ASan sees any access past it) and a
 * program of port accesses: selector writes, data reads, DMA address
 * writes that start transfers with guest-chosen descriptors.
 *
 * Input layout: [0..1] le16 n = bytes of RAM image that follow, then the
 * RAM image, then operations of 3 bytes + payload:
 *   op (bit 0 write, bits 1-2 access size 1/2/4/8), port offset (0..15),
 *   a count, then for writes the access's bytes.
 * An op with bit 6 set is a DMA transfer instead: its payload is a le16
 * RAM offset and a 16-byte FWCfgDmaAccess (big-endian control, length,
 * address) written there, then started as SeaBIOS does (the low half of
 * the address register at 0x518; bit 5: all 8 bytes at 0x514), so the
 * fuzzer reaches select/read/skip/write with descriptors it controls
 * instead of having to guess one into RAM. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/fw_cfg.h"

#define RAM_SIZE 0x10000u

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void setup_items(struct fw_cfg *fw)
{
	static const char big[300] = "etc/table-loader contents";

	if (fw_cfg__add_u64(fw, FW_CFG_RAM_SIZE, RAM_SIZE) ||
	    fw_cfg__add_u16(fw, FW_CFG_NB_CPUS, 2) ||
	    fw_cfg__add_cmdline(fw, "console=ttyS0") ||
	    fw_cfg__add_file(fw, "bootorder", "/pci@i0cf8/*@4\n", 15) ||
	    fw_cfg__add_file(fw, "etc/table-loader", big, sizeof(big)) ||
	    fw_cfg__add_file(fw, "etc/e820", "", 0))
		abort();
}

/* Places a descriptor in RAM and starts it; false if the input ran out. */
static bool dma_op(struct fw_cfg *fw, uint8_t *ram, const uint8_t *p,
		   size_t left, bool wide)
{
	uint32_t at;
	uint8_t reg[8] = { 0 };

	if (left < 18)
		return false;
	at = get_le16(p) % (RAM_SIZE - 15);
	memcpy(ram + at, p + 2, 16);
	reg[4] = (uint8_t)(at >> 24);
	reg[5] = (uint8_t)(at >> 16);
	reg[6] = (uint8_t)(at >> 8);
	reg[7] = (uint8_t)at;
	if (wide)
		fw_cfg__io(fw, 4, reg, 8, true);
	else
		fw_cfg__io(fw, 8, reg + 4, 4, true);
	return true;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct guest_mem mem;
	struct fw_cfg fw;
	uint8_t *ram, buf[8];
	size_t pos = 2, n;

	if (size < 2)
		return 0;
	ram = calloc(1, RAM_SIZE);
	if (!ram)
		abort();
	n = get_le16(data);
	if (n > size - 2)
		n = size - 2;
	memcpy(ram, data + 2, n);
	pos += n;
	memset(&mem, 0, sizeof(mem));
	mem.region[0] = (struct guest_mem_region){ 0, RAM_SIZE, ram, 0 };
	mem.nr_regions = 1;
	mem.ram_size = RAM_SIZE;
	mem.memfd = -1;
	mem.base = ram;
	if (fw_cfg__init(&fw, &mem))
		abort();
	setup_items(&fw);
	while (pos + 3 <= size) {
		uint8_t op = data[pos], off = data[pos + 1] & 15;
		uint32_t len = 1u << ((op >> 1) & 3), count = data[pos + 2] + 1u;
		bool write = op & 1;

		pos += 3;
		if (op & 0x40) {
			if (!dma_op(&fw, ram, data + pos, size - pos, op & 0x20))
				break;
			pos += 18;
		} else if (write) {
			if (pos + len > size)
				break;
			memcpy(buf, data + pos, len);
			pos += len;
			fw_cfg__io(&fw, off, buf, len, true);
		} else {
			while (count--)
				fw_cfg__io(&fw, off, buf, len, false);
		}
		if (op & 0x80)
			fw_cfg__reset(&fw);
	}
	fw_cfg__destroy(&fw);
	free(ram);
	return 0;
}
