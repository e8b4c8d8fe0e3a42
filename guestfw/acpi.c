/* ACPI table layout: RSDP, FACS, DSDT, FADT, MADT, [SRAT, SLIT,] XSDT,
 * RSDT in one buffer.  Tables are built with their pointer fields empty
 * while the pointers and checksums are recorded; both are applied at the
 * end, the same two steps fw_cfg's table-loader later asks of SeaBIOS. */
#include "guestfw/acpi.h"

#include <stdarg.h>
#include <string.h>

#include "guestfw/acpi_priv.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"
#include "vmm/guest_mem.h"

int acpi__fail(struct acpi_builder *b, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	verrf(b->err, b->errlen, fmt, ap);
	va_end(ap);
	return -1;
}

uint8_t acpi__sum(const void *p, size_t len)
{
	const uint8_t *s = p;
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum = (uint8_t)(sum + s[i]);
	return sum;
}

int acpi__find_blob(const struct acpi_layout *layout, const char *sig)
{
	for (unsigned i = 0; i < layout->nr_blobs && i < ACPI_MAX_BLOBS; i++)
		if (!strncmp(layout->blob[i].sig, sig, 4))
			return (int)i;
	return -1;
}

int acpi__too_small(struct acpi_builder *b)
{
	return acpi__fail(b, "acpi: tables do not fit in %zu bytes at gpa "
			  "0x%llx", b->cap, (unsigned long long)b->gpa);
}

uint8_t *acpi_blob__begin(struct acpi_builder *b, const char *sig,
			  uint32_t align, size_t len)
{
	struct acpi_layout *o = b->out;
	uint64_t at = ((b->gpa + b->len + align - 1) & ~(uint64_t)(align - 1))
		      - b->gpa;

	if (o->nr_blobs == ACPI_MAX_BLOBS) {
		acpi__fail(b, "acpi: too many tables");
		return NULL;
	}
	if (at > b->cap || len > b->cap - at) {
		acpi__too_small(b);
		return NULL;
	}
	memset(b->buf + b->len, 0, at + len - b->len);
	struct acpi_blob *bl = &o->blob[o->nr_blobs];

	memcpy(bl->sig, sig, 4);
	bl->sig[4] = '\0';
	bl->offset = (uint32_t)at;
	bl->len = (uint32_t)len;
	bl->align = align;
	b->cur = o->nr_blobs++;
	b->len = at + len;
	return b->buf + at;
}

uint8_t *acpi_blob__grow(struct acpi_builder *b, size_t n)
{
	if (n > b->cap - b->len) {
		acpi__too_small(b);
		return NULL;
	}
	uint8_t *p = b->buf + b->len;

	memset(p, 0, n);
	b->len += n;
	b->out->blob[b->cur].len += (uint32_t)n;
	return p;
}

int acpi_fixup__pointer(struct acpi_builder *b, size_t field, uint8_t width,
			int target)
{
	struct acpi_layout *o = b->out;

	if (target < 0)
		return acpi__fail(b, "acpi: internal: pointer to a missing "
				  "table");
	if (o->nr_pointers == ACPI_MAX_POINTERS)
		return acpi__fail(b, "acpi: too many table pointers");
	o->pointer[o->nr_pointers++] = (struct acpi_pointer){
		.offset = (uint32_t)field, .width = width,
		.blob = (uint8_t)b->cur, .target = (uint8_t)target,
	};
	return 0;
}

int acpi_fixup__checksum(struct acpi_builder *b, size_t at, size_t start,
			 size_t len)
{
	struct acpi_layout *o = b->out;

	if (o->nr_checksums == ACPI_MAX_CHECKSUMS)
		return acpi__fail(b, "acpi: too many checksums");
	o->checksum[o->nr_checksums++] = (struct acpi_checksum){
		.offset = (uint32_t)at, .start = (uint32_t)start,
		.len = (uint32_t)len, .blob = (uint8_t)b->cur,
	};
	return 0;
}

uint8_t *acpi_sdt__begin(struct acpi_builder *b, const char *sig, uint8_t rev)
{
	uint8_t *h = acpi_blob__begin(b, sig, 8, SDT_HDR_LEN);

	if (!h)
		return NULL;
	memcpy(h, sig, 4);
	h[8] = rev;
	memcpy(h + 10, OEM_ID, 6);
	memcpy(h + 16, OEM_TABLE_PREFIX, 4);
	memcpy(h + 20, sig, 4);
	put_le32(h + 24, 1);             /* OEM revision */
	memcpy(h + 28, CREATOR_ID, 4);
	put_le32(h + 32, 1);             /* creator revision */
	return h;
}

int acpi_sdt__end(struct acpi_builder *b)
{
	const struct acpi_blob *bl = &b->out->blob[b->cur];

	put_le32(b->buf + bl->offset + 4, bl->len);
	return acpi_fixup__checksum(b, bl->offset + 9, bl->offset, bl->len);
}

static int build_root(struct acpi_builder *b, const char *sig, uint8_t width)
{
	unsigned nr = b->out->nr_blobs;

	if (!acpi_sdt__begin(b, sig, 1))
		return -1;
	for (unsigned i = 0; i < nr; i++) {
		if (!b->listed[i])
			continue;
		size_t field = b->len;

		if (!acpi_blob__grow(b, width) ||
		    acpi_fixup__pointer(b, field, width, (int)i))
			return -1;
	}
	return acpi_sdt__end(b);
}

static void apply_fixups(struct acpi_builder *b)
{
	const struct acpi_layout *o = b->out;

	for (unsigned i = 0; i < o->nr_pointers; i++) {
		const struct acpi_pointer *p = &o->pointer[i];
		uint64_t gpa = b->gpa + o->blob[p->target].offset;

		if (p->width == 4)
			put_le32(b->buf + p->offset, (uint32_t)gpa);
		else
			put_le64(b->buf + p->offset, gpa);
	}
	for (unsigned i = 0; i < o->nr_checksums; i++) {
		const struct acpi_checksum *c = &o->checksum[i];

		b->buf[c->offset] = 0;
		b->buf[c->offset] = (uint8_t)-acpi__sum(b->buf + c->start,
							c->len);
	}
}

void acpi__config_init(struct acpi_config *cfg, unsigned nr_vcpus)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->nr_vcpus = nr_vcpus;
	cfg->ioapic_id = ACPI_IOAPIC_ID_AUTO;
	cfg->pci_hole_start = GUEST_PCI_HOLE_START;
}

int acpi__build(const struct acpi_config *cfg, uint8_t *buf, size_t buf_len,
		uint64_t buf_gpa, struct acpi_layout *out, char *err,
		size_t errlen)
{
	struct acpi_builder b = {
		.cfg = cfg, .buf = buf, .cap = buf_len, .gpa = buf_gpa,
		.out = out, .err = err, .errlen = errlen,
	};

	memset(out, 0, sizeof(*out));
	if (!buf || buf_gpa > 0x100000000ull ||
	    buf_len > 0x100000000ull - buf_gpa)
		return acpi__fail(&b, "acpi: table area must lie below "
				  "4 GiB");
	if (acpi_tables__check(&b))
		return -1;

	uint8_t *rsdp = acpi_blob__begin(&b, "RSDP", 16, ACPI_RSDP_LEN);

	if (!rsdp)
		return -1;
	memcpy(rsdp, "RSD PTR ", 8);
	memcpy(rsdp + 9, OEM_ID, 6);
	rsdp[15] = 2; /* revision: ACPI 2.0+, has XSDT */
	put_le32(rsdp + 20, ACPI_RSDP_LEN);
	if (acpi_tables__build(&b))
		return -1;
	if (build_root(&b, "XSDT", 8) || build_root(&b, "RSDT", 4))
		return -1;

	size_t r = out->blob[0].offset;

	b.cur = 0;
	if (acpi_fixup__pointer(&b, r + 16, 4, acpi__find_blob(out, "RSDT")) ||
	    acpi_fixup__pointer(&b, r + 24, 8, acpi__find_blob(out, "XSDT")) ||
	    acpi_fixup__checksum(&b, r + 8, r, 20) ||
	    acpi_fixup__checksum(&b, r + 32, r, ACPI_RSDP_LEN))
		return -1;
	apply_fixups(&b);
	out->rsdp_offset = out->blob[0].offset;
	out->rsdp_gpa = buf_gpa + out->rsdp_offset;
	out->size = (uint32_t)b.len;
	out->ioapic_id = b.ioapic_id;
	return 0;
}

int acpi__copy_rsdp(const uint8_t *buf, const struct acpi_layout *layout,
		    uint8_t *dst, size_t dst_len)
{
	if (!buf || !dst || dst_len < ACPI_RSDP_LEN ||
	    layout->size < ACPI_RSDP_LEN ||
	    layout->rsdp_offset > layout->size - ACPI_RSDP_LEN)
		return -1;
	memcpy(dst, buf + layout->rsdp_offset, ACPI_RSDP_LEN);
	return 0;
}
