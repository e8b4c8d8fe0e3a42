/* The BIOS image and the small fw_cfg files a firmware boot needs (the
 * ACPI ones are in fw_loader.c). */
#include "guestfw/firmware.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "guestfw/e820.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

/* Opcodes a reset vector starts with: far jmp (SeaBIOS, coreboot), near
 * jmp rel16/rel8, after up to this many NOPs (OVMF pads with two). */
#define RESET_MAX_NOPS 4

static bool reset_vector_ok(const uint8_t *v)
{
	unsigned i = 0;

	while (i < RESET_MAX_NOPS && v[i] == 0x90)
		i++;
	return v[i] == 0xEA || v[i] == 0xE9 || v[i] == 0xEB;
}

int firmware__check(const uint8_t *img, size_t len,
		    struct firmware_layout *out, char *err, size_t errlen)
{
	memset(out, 0, sizeof(*out));
	if (!img || len < FIRMWARE_MIN_SIZE || len > FIRMWARE_MAX_SIZE ||
	    len % FIRMWARE_SIZE_ALIGN) {
		errf(err, errlen, "a BIOS image must be a multiple of 64 KiB "
		     "between 64 KiB and 16 MiB (this one is %zu bytes)", len);
		return -1;
	}
	if (!reset_vector_ok(img + len - 16)) {
		errf(err, errlen, "not a PC BIOS image: no jump at the reset "
		     "vector (its last 16 bytes start %02x %02x %02x %02x)",
		     img[len - 16], img[len - 15], img[len - 14],
		     img[len - 13]);
		return -1;
	}
	out->rom_len = len;
	out->rom_gpa = FIRMWARE_4G - len;
	out->low_len = len < FIRMWARE_LOW_MAX ? len : FIRMWARE_LOW_MAX;
	out->low_gpa = FIRMWARE_LOW_END - out->low_len;
	out->low_offset = len - out->low_len;
	return 0;
}

size_t firmware__e820_file(const struct e820_table *t, uint8_t *out,
			   size_t cap)
{
	size_t need = (size_t)t->nr_entries * FW_E820_ENTRY_SIZE;

	if (need > cap)
		return 0;
	for (uint32_t i = 0; i < t->nr_entries; i++) {
		uint8_t *e = out + (size_t)i * FW_E820_ENTRY_SIZE;

		put_le64(e, t->entries[i].addr);
		put_le64(e + 8, t->entries[i].size);
		put_le32(e + 16, t->entries[i].type);
	}
	return need;
}

size_t firmware__bootorder(const unsigned *slots, unsigned nr, char *out,
			   size_t cap)
{
	size_t len = 0;

	if (!cap)
		return 0;
	out[0] = '\0';
	for (unsigned i = 0; i < nr; i++) {
		int n;

		if (slots[i] < 1 || slots[i] > 31)
			return 0;
		n = snprintf(out + len, cap - len,
			     "%s/pci@i0cf8/scsi@%x/disk@0,0", i ? "\n" : "",
			     slots[i]);
		if (n < 0 || (size_t)n >= cap - len) {
			out[0] = '\0';
			return 0;
		}
		len += (size_t)n;
	}
	return len;
}
