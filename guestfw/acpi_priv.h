/* Inside the ACPI builder: the layout engine (acpi.c) that places blobs
 * and records pointers and checksums, and the table builders on top of it
 * (acpi_tables.c). */
#ifndef KRG_GUESTFW_ACPI_PRIV_H
#define KRG_GUESTFW_ACPI_PRIV_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guestfw/acpi.h"

#define SDT_HDR_LEN 36
#define OEM_ID "KRGVMM"      /* 6 bytes */
#define OEM_TABLE_PREFIX "KRGV" /* + signature = 8 bytes */
#define CREATOR_ID "KRGV"

struct acpi_builder {
	const struct acpi_config *cfg;
	uint8_t *buf;
	size_t cap;
	size_t len;
	uint64_t gpa;
	struct acpi_layout *out;
	char *err;
	size_t errlen;
	unsigned cur;                     /* blob being built */
	bool listed[ACPI_MAX_BLOBS];      /* goes into XSDT/RSDT */
	uint8_t ioapic_id;
};

/* -1 with the message in the builder's err. */
int acpi__fail(struct acpi_builder *b, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
int acpi__too_small(struct acpi_builder *b);

/* Starts a new blob of len zeroed bytes at the next suitably aligned
 * guest-physical address; the gap before it is zeroed too. */
uint8_t *acpi_blob__begin(struct acpi_builder *b, const char *sig,
			  uint32_t align, size_t len);
/* Appends n zeroed bytes to the current blob. */
uint8_t *acpi_blob__grow(struct acpi_builder *b, size_t n);
/* Records that the current blob's field (an offset in the buffer) holds
 * the address of blob target, width 4 or 8 bytes. */
int acpi_fixup__pointer(struct acpi_builder *b, size_t field, uint8_t width,
			int target);
/* Records that the byte at makes [start, start + len) sum to zero. */
int acpi_fixup__checksum(struct acpi_builder *b, size_t at, size_t start,
			 size_t len);
/* A system description table: its header, then acpi_blob__grow for the
 * body; acpi_sdt__end sets the length and records the checksum. */
uint8_t *acpi_sdt__begin(struct acpi_builder *b, const char *sig,
			 uint8_t rev);
int acpi_sdt__end(struct acpi_builder *b);

/* acpi_tables.c: checks the configuration (sets b->ioapic_id), then builds
 * every table between the RSDP and the XSDT/RSDT, in layout order. */
int acpi_tables__check(struct acpi_builder *b);
int acpi_tables__build(struct acpi_builder *b);

#endif
