/* The ACPI tables as fw_cfg files plus the "etc/table-loader" script that
 * tells the firmware where to put them and how to link them: the second
 * delivery path of guestfw/acpi.c's tables (the first writes them into RAM
 * for a directly booted kernel). */
#include <stdlib.h>
#include <string.h>

#include "guestfw/firmware.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

int fw_loader__encode(const struct fw_loader_cmd *cmd,
		      uint8_t out[FW_LOADER_ENTRY_SIZE])
{
	size_t flen = strlen(cmd->file), slen = strlen(cmd->src_file);
	uint8_t *p = out + 4;

	if (flen >= FW_LOADER_FILESZ || slen >= FW_LOADER_FILESZ)
		return -1;
	memset(out, 0, FW_LOADER_ENTRY_SIZE);
	put_le32(out, cmd->command);
	memcpy(p, cmd->file, flen);
	switch (cmd->command) {
	case FW_LOADER_ALLOCATE:
		put_le32(p + 56, cmd->align);
		p[60] = cmd->zone;
		break;
	case FW_LOADER_ADD_POINTER:
		memcpy(p + 56, cmd->src_file, slen);
		put_le32(p + 112, cmd->offset);
		p[116] = cmd->size;
		break;
	case FW_LOADER_ADD_CHECKSUM:
		put_le32(p + 56, cmd->offset);
		put_le32(p + 60, cmd->start);
		put_le32(p + 64, cmd->length);
		break;
	default:
		return -1;
	}
	return 0;
}

void fw_loader__decode(const uint8_t in[FW_LOADER_ENTRY_SIZE],
		       struct fw_loader_cmd *cmd)
{
	const uint8_t *p = in + 4;

	memset(cmd, 0, sizeof(*cmd));
	cmd->command = get_le32(in);
	memcpy(cmd->file, p, FW_LOADER_FILESZ);
	switch (cmd->command) {
	case FW_LOADER_ALLOCATE:
		cmd->align = get_le32(p + 56);
		cmd->zone = p[60];
		break;
	case FW_LOADER_ADD_POINTER:
		memcpy(cmd->src_file, p + 56, FW_LOADER_FILESZ);
		cmd->offset = get_le32(p + 112);
		cmd->size = p[116];
		break;
	case FW_LOADER_ADD_CHECKSUM:
		cmd->offset = get_le32(p + 56);
		cmd->start = get_le32(p + 60);
		cmd->length = get_le32(p + 64);
		break;
	default:
		break;
	}
}

static uint64_t field_value(const uint8_t *p, uint8_t width)
{
	return width == 4 ? get_le32(p) : get_le64(p);
}

/* Every pointer field must hold its target's offset in buf: the tables
 * were laid out at guest-physical 0, and no pointer targets the RSDP. */
static int check_pointers(const uint8_t *buf, const struct acpi_layout *lay,
			  int rsdp, char *err, size_t errlen)
{
	for (unsigned i = 0; i < lay->nr_pointers; i++) {
		const struct acpi_pointer *p = &lay->pointer[i];

		if ((p->width != 4 && p->width != 8) ||
		    p->target >= lay->nr_blobs || p->target == rsdp ||
		    p->offset > lay->size - p->width ||
		    field_value(buf + p->offset, p->width) !=
			    lay->blob[p->target].offset) {
			errf(err, errlen, "table-loader: ACPI pointer %u is "
			     "not an offset (tables not laid out at 0?)", i);
			return -1;
		}
	}
	return 0;
}

/* Which file a byte at buf offset `off` of blob `blob` lives in, and its
 * offset there. */
static const char *file_of(const struct acpi_layout *lay, int rsdp,
			   unsigned blob, uint32_t off, uint32_t *file_off)
{
	if ((int)blob == rsdp) {
		*file_off = off - lay->blob[rsdp].offset;
		return FW_ACPI_RSDP_FILE;
	}
	*file_off = off;
	return FW_ACPI_TABLES_FILE;
}

static int emit(struct firmware_acpi_files *f, const struct fw_loader_cmd *c,
		size_t cap)
{
	if (f->loader_len + FW_LOADER_ENTRY_SIZE > cap ||
	    fw_loader__encode(c, f->loader + f->loader_len) < 0)
		return -1;
	f->loader_len += FW_LOADER_ENTRY_SIZE;
	return 0;
}

static int build_script(struct firmware_acpi_files *f,
			const struct acpi_layout *lay, int rsdp, size_t cap)
{
	struct fw_loader_cmd c;
	uint32_t off;

	memset(&c, 0, sizeof(c));
	c.command = FW_LOADER_ALLOCATE;
	strcpy(c.file, FW_ACPI_TABLES_FILE);
	c.align = FW_ACPI_TABLES_ALIGN;
	c.zone = FW_LOADER_ZONE_HIGH;
	if (emit(f, &c, cap))
		return -1;
	strcpy(c.file, FW_ACPI_RSDP_FILE);
	c.align = lay->blob[rsdp].align;
	c.zone = FW_LOADER_ZONE_FSEG;
	if (emit(f, &c, cap))
		return -1;
	/* Pointers first, then checksums in the builder's order: a checksum
	 * must see the final pointers, and the RSDP's extended checksum
	 * covers its first one. */
	for (unsigned i = 0; i < lay->nr_pointers; i++) {
		const struct acpi_pointer *p = &lay->pointer[i];

		memset(&c, 0, sizeof(c));
		c.command = FW_LOADER_ADD_POINTER;
		strcpy(c.file, file_of(lay, rsdp, p->blob, p->offset, &off));
		strcpy(c.src_file, FW_ACPI_TABLES_FILE);
		c.offset = off;
		c.size = p->width;
		if (emit(f, &c, cap))
			return -1;
	}
	for (unsigned i = 0; i < lay->nr_checksums; i++) {
		const struct acpi_checksum *k = &lay->checksum[i];
		uint32_t start;

		memset(&c, 0, sizeof(c));
		c.command = FW_LOADER_ADD_CHECKSUM;
		strcpy(c.file, file_of(lay, rsdp, k->blob, k->offset, &off));
		file_of(lay, rsdp, k->blob, k->start, &start);
		c.offset = off;
		c.start = start;
		c.length = k->len;
		if (emit(f, &c, cap))
			return -1;
	}
	return 0;
}

int firmware__acpi_files(const uint8_t *buf, const struct acpi_layout *lay,
			 struct firmware_acpi_files *out, char *err,
			 size_t errlen)
{
	int rsdp = acpi__find_blob(lay, "RSDP");
	size_t cap = (2 + (size_t)lay->nr_pointers + lay->nr_checksums) *
		     FW_LOADER_ENTRY_SIZE;
	const struct acpi_blob *rb;

	memset(out, 0, sizeof(*out));
	if (rsdp < 0 || lay->size < ACPI_RSDP_LEN ||
	    lay->nr_blobs > ACPI_MAX_BLOBS) {
		errf(err, errlen, "table-loader: no ACPI tables");
		return -1;
	}
	rb = &lay->blob[rsdp];
	if (rb->len != ACPI_RSDP_LEN ||
	    rb->offset > lay->size - ACPI_RSDP_LEN) {
		errf(err, errlen, "table-loader: malformed RSDP");
		return -1;
	}
	if (check_pointers(buf, lay, rsdp, err, errlen))
		return -1;
	out->tables = malloc(lay->size);
	out->loader = malloc(cap);
	if (!out->tables || !out->loader) {
		firmware__acpi_files_free(out);
		errf(err, errlen, "table-loader: out of memory");
		return -1;
	}
	/* The RSDP goes in its own file; its bytes in the tables file stay
	 * zero so that nothing in high memory looks like a second one. */
	memcpy(out->tables, buf, lay->size);
	memset(out->tables + rb->offset, 0, ACPI_RSDP_LEN);
	out->tables_len = lay->size;
	memcpy(out->rsdp, buf + rb->offset, ACPI_RSDP_LEN);
	if (build_script(out, lay, rsdp, cap)) {
		firmware__acpi_files_free(out);
		errf(err, errlen, "table-loader: script does not fit");
		return -1;
	}
	return 0;
}

void firmware__acpi_files_free(struct firmware_acpi_files *f)
{
	free(f->tables);
	free(f->loader);
	f->tables = f->loader = NULL;
	f->tables_len = f->loader_len = 0;
}
