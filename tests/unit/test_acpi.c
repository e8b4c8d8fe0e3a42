/* ACPI table builder: layout, checksums, pointers and the contents of
 * every table (the AML emitter has its own test_acpi_aml.c). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/acpi.h"
#include "guestfw/acpi_aml.h"

#define GPA 0xE0000ull
#define BUF_LEN 0x20000

static uint8_t tbuf[BUF_LEN];

static uint16_t rd16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

static uint32_t rd32(const uint8_t *p)
{
	return rd16(p) | (uint32_t)rd16(p + 2) << 16;
}

static uint64_t rd64(const uint8_t *p)
{
	return rd32(p) | (uint64_t)rd32(p + 4) << 32;
}

/* Decodes a PkgLength at p; returns its value and stores its size. */
static uint32_t pkglength_decode(const uint8_t *p, size_t *size)
{
	size_t follow = p[0] >> 6;

	*size = follow + 1;
	if (!follow)
		return p[0] & 0x3F;
	uint32_t v = p[0] & 0x0F;

	for (size_t i = 0; i < follow; i++)
		v |= (uint32_t)p[1 + i] << (4 + 8 * i);
	return v;
}

static const uint8_t *find(const uint8_t *hay, size_t hlen, const void *needle,
			   size_t nlen)
{
	return memmem(hay, hlen, needle, nlen);
}

static struct acpi_layout lay;

static void build_ok(const struct acpi_config *cfg)
{
	char err[160] = "";
	int rc = acpi__build(cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
			     sizeof(err));

	ck_assert_msg(rc == 0, "build failed: %s", err);
}

static void build_n(unsigned n)
{
	struct acpi_config cfg;

	acpi__config_init(&cfg, n);
	build_ok(&cfg);
}

/* Table at a guest-physical address inside the built image. */
static const uint8_t *at_gpa(uint64_t gpa, size_t len)
{
	ck_assert_uint_ge(gpa, GPA);
	ck_assert_uint_le(gpa - GPA + len, lay.size);
	return tbuf + (gpa - GPA);
}

static const uint8_t *blob(const char *sig)
{
	int i = acpi__find_blob(&lay, sig);

	ck_assert_msg(i >= 0, "no %s", sig);
	return tbuf + lay.blob[i].offset;
}

START_TEST(every_table_checksums)
{
	build_n(4);
	ck_assert_uint_eq(lay.nr_blobs, 7);
	for (unsigned i = 0; i < lay.nr_blobs; i++) {
		const struct acpi_blob *b = &lay.blob[i];
		const uint8_t *t = tbuf + b->offset;

		ck_assert_uint_le(b->offset + b->len, lay.size);
		ck_assert_uint_eq((GPA + b->offset) % b->align, 0);
		if (!strcmp(b->sig, "RSDP") || !strcmp(b->sig, "FACS"))
			continue;
		ck_assert_mem_eq(t, b->sig, 4);
		ck_assert_uint_eq(rd32(t + 4), b->len);
		ck_assert_msg(acpi__sum(t, b->len) == 0, "%s checksum", b->sig);
	}
	for (unsigned i = 0; i < lay.nr_checksums; i++) {
		const struct acpi_checksum *c = &lay.checksum[i];

		ck_assert_uint_eq(acpi__sum(tbuf + c->start, c->len), 0);
	}
}
END_TEST

START_TEST(rsdp_valid)
{
	build_n(2);
	const uint8_t *r = tbuf + lay.rsdp_offset;

	ck_assert_uint_eq(lay.rsdp_gpa, GPA + lay.rsdp_offset);
	ck_assert_uint_eq(lay.rsdp_gpa % 16, 0);
	ck_assert_mem_eq(r, "RSD PTR ", 8);
	ck_assert_uint_eq(acpi__sum(r, 20), 0);
	ck_assert_uint_eq(acpi__sum(r, 36), 0);
	ck_assert_uint_eq(r[15], 2);
	ck_assert_uint_eq(rd32(r + 20), 36);
	ck_assert_mem_eq(at_gpa(rd64(r + 24), 36), "XSDT", 4);
	ck_assert_mem_eq(at_gpa(rd32(r + 16), 36), "RSDT", 4);

	uint8_t copy[48];

	ck_assert_int_eq(acpi__copy_rsdp(tbuf, &lay, copy, sizeof(copy)), 0);
	ck_assert_mem_eq(copy, r, 36);
	ck_assert_int_lt(acpi__copy_rsdp(tbuf, &lay, copy, 35), 0);
}
END_TEST

START_TEST(xsdt_lists_fadt_and_madt)
{
	build_n(1);
	const uint8_t *r = tbuf + lay.rsdp_offset;
	const uint8_t *x = at_gpa(rd64(r + 24), 36);
	const uint8_t *rs = at_gpa(rd32(r + 16), 36);
	uint32_t len = rd32(x + 4);
	bool fadt = false, madt = false;

	ck_assert_uint_eq((len - 36) % 8, 0);
	ck_assert_uint_eq((len - 36) / 8, (rd32(rs + 4) - 36) / 4);
	for (uint32_t off = 36; off < len; off += 8) {
		uint64_t gpa = rd64(x + off);
		const uint8_t *t = at_gpa(gpa, 36);

		ck_assert_uint_eq(rd32(rs + 36 + (off - 36) / 2), gpa);
		at_gpa(gpa, rd32(t + 4));
		ck_assert_uint_eq(acpi__sum(t, rd32(t + 4)), 0);
		fadt |= !memcmp(t, "FACP", 4);
		madt |= !memcmp(t, "APIC", 4);
		/* DSDT and FACS are reached through the FADT only. */
		ck_assert(memcmp(t, "DSDT", 4) && memcmp(t, "FACS", 4));
	}
	ck_assert(fadt && madt);
}
END_TEST

static void check_gas(const uint8_t *g, unsigned bits, uint64_t port)
{
	ck_assert_uint_eq(g[0], 1); /* SystemIO */
	ck_assert_uint_eq(g[1], bits);
	ck_assert_uint_eq(g[2], 0);
	ck_assert_uint_eq(rd64(g + 4), port);
}

START_TEST(fadt_contents)
{
	build_n(2);
	const uint8_t *f = blob("FACP");
	int facs = acpi__find_blob(&lay, "FACS");
	int dsdt = acpi__find_blob(&lay, "DSDT");

	ck_assert_uint_eq(rd32(f + 4), 276);
	ck_assert_uint_eq(f[8], 6);
	ck_assert_uint_eq(rd32(f + 36), GPA + lay.blob[facs].offset);
	ck_assert_uint_eq(rd64(f + 132), 0); /* X_FIRMWARE_CTRL unused */
	ck_assert_uint_eq(rd32(f + 40), GPA + lay.blob[dsdt].offset);
	ck_assert_uint_eq(rd64(f + 140), GPA + lay.blob[dsdt].offset);
	const uint8_t *fc = at_gpa(rd32(f + 36), 64);

	ck_assert_mem_eq(fc, "FACS", 4);
	ck_assert_uint_eq(rd32(fc + 4), 64);
	ck_assert_uint_eq(rd32(f + 36) % 64, 0);
	ck_assert_mem_eq(at_gpa(rd64(f + 140), 36), "DSDT", 4);

	ck_assert_uint_eq(rd16(f + 46), 9);     /* SCI_INT */
	ck_assert_uint_eq(rd32(f + 48), 0);     /* SMI_CMD */
	ck_assert_uint_eq(rd32(f + 56), 0x600);
	ck_assert_uint_eq(f[88], 4);
	check_gas(f + 148, 32, 0x600);
	ck_assert_uint_eq(rd32(f + 64), 0x604);
	ck_assert_uint_eq(f[89], 2);
	check_gas(f + 172, 16, 0x604);
	ck_assert_uint_eq(rd32(f + 76), 0x608);
	ck_assert_uint_eq(f[91], 4);
	check_gas(f + 208, 32, 0x608);
	ck_assert_uint_eq(rd32(f + 80), 0x620);
	ck_assert_uint_eq(f[92], 4);
	check_gas(f + 220, 32, 0x620);
	/* No PM1b, PM2 or GPE1 block, in either form. */
	ck_assert_uint_eq(rd32(f + 60) | rd32(f + 68) | rd32(f + 72) |
			  rd32(f + 84), 0);
	ck_assert_uint_eq(rd64(f + 164) | rd64(f + 188) | rd64(f + 200) |
			  rd64(f + 236), 0);

	uint32_t flags = rd32(f + 112);

	ck_assert(flags & (1u << 0));   /* WBINVD */
	ck_assert(flags & (1u << 2));   /* PROC_C1 */
	ck_assert(flags & (1u << 5));   /* SLP_BUTTON */
	ck_assert(flags & (1u << 8));   /* TMR_VAL_EXT */
	ck_assert(flags & (1u << 10));  /* RESET_REG_SUP */
	ck_assert(!(flags & (1u << 20))); /* not HW_REDUCED */
	uint16_t iapc = rd16(f + 109);

	ck_assert_uint_eq(iapc & 3, 3); /* LEGACY_DEVICES | 8042 */
	ck_assert(!(iapc & (1u << 5))); /* CMOS RTC present */
	check_gas(f + 116, 8, 0xCF9);
	ck_assert_uint_eq(f[128], 0x06);
}
END_TEST

START_TEST(fadt_options)
{
	struct acpi_config cfg;

	acpi__config_init(&cfg, 1);
	build_ok(&cfg);
	ck_assert(rd32(blob("FACP") + 112) & (1u << 4)); /* no fixed button */
	ck_assert(rd16(blob("FACP") + 109) & (1u << 2)); /* no VGA */
	cfg.power_button = true;
	cfg.vga = true;
	cfg.rtc_century = 0x32;
	build_ok(&cfg);
	ck_assert(!(rd32(blob("FACP") + 112) & (1u << 4)));
	ck_assert(!(rd16(blob("FACP") + 109) & (1u << 2)));
	ck_assert_uint_eq(blob("FACP")[108], 0x32);
}
END_TEST

struct madt_seen {
	unsigned lapic, x2apic, ioapic, iso, nmi, x2nmi;
	uint8_t ioapic_id;
	uint32_t ioapic_addr, ioapic_gsi_base;
	uint8_t iso_src[4];
	uint32_t iso_gsi[4];
	uint16_t iso_flags[4];
};

/* Walks the MADT, checking per-vCPU entries against ids (NULL: index). */
static void walk_madt(unsigned n, const uint32_t *ids, struct madt_seen *s)
{
	const uint8_t *m = blob("APIC");
	uint32_t len = rd32(m + 4), off = 44;

	memset(s, 0, sizeof(*s));
	ck_assert_uint_eq(rd32(m + 36), 0xFEE00000);
	ck_assert_uint_eq(rd32(m + 40) & 1, 1);
	while (off < len) {
		const uint8_t *e = m + off;

		ck_assert_uint_ge(e[1], 2);
		ck_assert_uint_le(off + e[1], len);
		switch (e[0]) {
		case 0: {
			unsigned i = s->lapic + s->x2apic;

			ck_assert_uint_eq(e[1], 8);
			ck_assert_uint_eq(e[2], i);
			ck_assert_uint_eq(e[3], ids ? ids[i] : i);
			ck_assert_uint_eq(rd32(e + 4) & 1, 1);
			s->lapic++;
			break;
		}
		case 9: {
			unsigned i = s->lapic + s->x2apic;

			ck_assert_uint_eq(e[1], 16);
			ck_assert_uint_eq(rd32(e + 4), ids ? ids[i] : i);
			ck_assert_uint_eq(rd32(e + 8) & 1, 1);
			ck_assert_uint_eq(rd32(e + 12), i);
			s->x2apic++;
			break;
		}
		case 1:
			ck_assert_uint_eq(e[1], 12);
			s->ioapic_id = e[2];
			s->ioapic_addr = rd32(e + 4);
			s->ioapic_gsi_base = rd32(e + 8);
			s->ioapic++;
			break;
		case 2:
			ck_assert_uint_eq(e[1], 10);
			ck_assert_uint_lt(s->iso, 4);
			ck_assert_uint_eq(e[2], 0); /* ISA */
			s->iso_src[s->iso] = e[3];
			s->iso_gsi[s->iso] = rd32(e + 4);
			s->iso_flags[s->iso] = rd16(e + 8);
			s->iso++;
			break;
		case 4:
			ck_assert_uint_eq(e[1], 6);
			ck_assert_uint_eq(e[2], 0xFF);
			ck_assert_uint_eq(e[5], 1);
			s->nmi++;
			break;
		case 0x0A:
			ck_assert_uint_eq(e[1], 12);
			ck_assert_uint_eq(rd32(e + 4), 0xFFFFFFFF);
			ck_assert_uint_eq(e[8], 1);
			s->x2nmi++;
			break;
		default:
			ck_abort_msg("unexpected MADT entry type %u", e[0]);
		}
		off += e[1];
	}
	ck_assert_uint_eq(off, len);
	ck_assert_uint_eq(s->lapic + s->x2apic, n);
	ck_assert_uint_eq(s->ioapic, 1);
	ck_assert_uint_eq(s->ioapic_id, lay.ioapic_id);
	ck_assert_uint_eq(s->ioapic_addr, 0xFEC00000);
	ck_assert_uint_eq(s->ioapic_gsi_base, 0);
	ck_assert_uint_eq(s->iso, 2);
	ck_assert_uint_eq(s->iso_src[0], 0);
	ck_assert_uint_eq(s->iso_gsi[0], 2);
	ck_assert_uint_eq(s->iso_flags[0], 0);
	ck_assert_uint_eq(s->iso_src[1], 9);
	ck_assert_uint_eq(s->iso_gsi[1], 9);
	ck_assert_uint_eq(s->iso_flags[1], 0x000D); /* level, active high */
	ck_assert_uint_eq(s->nmi, 1);
}

static const unsigned madt_sizes[] = { 1, 2, 4, 64 };

START_TEST(madt_per_vcpu)
{
	unsigned n = madt_sizes[_i];
	struct madt_seen s;

	build_n(n);
	walk_madt(n, NULL, &s);
	ck_assert_uint_eq(s.lapic, n);
	ck_assert_uint_eq(s.x2apic, 0);
	ck_assert_uint_eq(s.x2nmi, 0);
	ck_assert_uint_eq(lay.ioapic_id, n); /* first ID no LAPIC uses */
	ck_assert_uint_eq(rd32(blob("APIC") + 4),
			  44 + 8 * n + 12 + 2 * 10 + 6);
}
END_TEST

START_TEST(madt_x2apic_for_large_ids)
{
	struct madt_seen s;

	build_n(300);
	walk_madt(300, NULL, &s);
	ck_assert_uint_eq(s.lapic, 255);
	ck_assert_uint_eq(s.x2apic, 45);
	ck_assert_uint_eq(s.x2nmi, 1);
}
END_TEST

START_TEST(madt_custom_apic_ids)
{
	static const uint32_t ids[] = { 0, 1, 3, 2, 300 };
	struct acpi_config cfg;
	struct madt_seen s;
	char err[160];

	acpi__config_init(&cfg, 5);
	cfg.apic_ids = ids;
	build_ok(&cfg);
	walk_madt(5, ids, &s);
	ck_assert_uint_eq(s.lapic, 4);
	ck_assert_uint_eq(s.x2apic, 1);
	ck_assert_uint_eq(lay.ioapic_id, 4);

	cfg.ioapic_id = 7;
	build_ok(&cfg);
	ck_assert_uint_eq(lay.ioapic_id, 7);
	cfg.ioapic_id = 3; /* a LAPIC's ID */
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	cfg.ioapic_id = 255;
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);

	static const uint32_t dup[] = { 0, 1, 1 };

	acpi__config_init(&cfg, 3);
	cfg.apic_ids = dup;
	err[0] = 0;
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	ck_assert(strstr(err, "APIC ID") != NULL);
}
END_TEST

START_TEST(dsdt_contents)
{
	build_n(2);
	const uint8_t *d = blob("DSDT");
	int i = acpi__find_blob(&lay, "DSDT");
	uint32_t len = rd32(d + 4);

	ck_assert_uint_eq(len, lay.blob[i].len);
	ck_assert_uint_gt(len, 36);
	ck_assert_uint_eq(d[8], 2);
	ck_assert_uint_eq(acpi__sum(d, len), 0);

	/* Name(_S5, Package(4){5, 5, 0, 0}) and Name(_S0, ...{0, 0, 0, 0}) */
	static const uint8_t s5[] = { 0x08, '_', 'S', '5', '_', 0x12, 0x08,
				      0x04, 0x0A, 0x05, 0x0A, 0x05, 0x00,
				      0x00 };
	static const uint8_t s0[] = { 0x08, '_', 'S', '0', '_', 0x12, 0x06,
				      0x04, 0x00, 0x00, 0x00, 0x00 };
	ck_assert_ptr_nonnull(find(d, len, s5, sizeof(s5)));
	ck_assert_ptr_nonnull(find(d, len, s0, sizeof(s0)));

	/* _HID EisaIds of the root bridge and the ISA devices. */
	static const uint8_t ids[][4] = {
		{ 0x41, 0xD0, 0x0A, 0x03 }, { 0x41, 0xD0, 0x05, 0x01 },
		{ 0x41, 0xD0, 0x0B, 0x00 }, { 0x41, 0xD0, 0x03, 0x03 },
		{ 0x41, 0xD0, 0x00, 0x00 }, { 0x41, 0xD0, 0x01, 0x00 },
	};
	for (unsigned k = 0; k < 6; k++) {
		uint8_t hid[10] = { '_', 'H', 'I', 'D', 0x0C };

		memcpy(hid + 5, ids[k], 4);
		ck_assert_msg(find(d, len, hid, 9), "HID %u missing", k);
	}
	/* COM1's I/O and IRQ 4; the PCI window starts at the default hole. */
	static const uint8_t com1[] = { 0x47, 0x01, 0xF8, 0x03, 0xF8, 0x03,
					0x01, 0x08, 0x22, 0x10, 0x00 };
	ck_assert_ptr_nonnull(find(d, len, com1, sizeof(com1)));
	static const uint8_t mem32[] = { 0x87, 0x17, 0x00, 0x00, 0x0C, 0x01,
					 0, 0, 0, 0, 0x00, 0x00, 0x00, 0xC0,
					 0xFF, 0xFF, 0xBF, 0xFE };
	ck_assert_ptr_nonnull(find(d, len, mem32, sizeof(mem32)));
	/* Config ports consumed, I/O window split around them. */
	static const uint8_t cf8[] = { 0x47, 0x01, 0xF8, 0x0C, 0xF8, 0x0C,
				       0x01, 0x08 };
	ck_assert_ptr_nonnull(find(d, len, cf8, sizeof(cf8)));
	ck_assert_ptr_null(find(d, len, "_PRT", 4));
}
END_TEST

START_TEST(dsdt_options)
{
	struct acpi_config cfg;

	acpi__config_init(&cfg, 1);
	cfg.pci_hole_start = 0x80000000;
	cfg.pci_prt = true;
	cfg.pci_intx_gsi[0] = 16;
	cfg.pci_intx_gsi[1] = 17;
	cfg.pci_intx_gsi[2] = 18;
	cfg.pci_intx_gsi[3] = 19;
	cfg.pci_mem64_start = 0x8000000000ull;
	cfg.pci_mem64_size = 0x1000000000ull;
	build_ok(&cfg);
	const uint8_t *d = blob("DSDT");
	uint32_t len = rd32(d + 4);

	ck_assert_uint_eq(acpi__sum(d, len), 0);
	static const uint8_t mem32_min[] = { 0x00, 0x00, 0x00, 0x80, 0xFF, 0xFF,
					     0xBF, 0xFE };
	ck_assert_ptr_nonnull(find(d, len, mem32_min, sizeof(mem32_min)));
	static const uint8_t qword[] = { 0x8A, 0x2B, 0x00, 0x00, 0x0C, 0x03 };
	const uint8_t *q = find(d, len, qword, sizeof(qword));

	ck_assert_ptr_nonnull(q);
	ck_assert_uint_eq(rd64(q + 14), 0x8000000000ull);
	ck_assert_uint_eq(rd64(q + 22), 0x8FFFFFFFFFull);
	ck_assert_uint_eq(rd64(q + 38), 0x1000000000ull);
	/* _PRT: 124 entries; slot 1 pin A is PIRQA (GSI 16), as on an
	 * i440FX. */
	const uint8_t *p = find(d, len, "_PRT", 4);

	ck_assert_ptr_nonnull(p);
	size_t n;

	ck_assert_uint_eq(p[4], AML_PACKAGE_OP);
	pkglength_decode(p + 5, &n);
	ck_assert_uint_eq(n, 2);
	ck_assert_uint_eq(p[5 + n], 124);
	static const uint8_t first[] = { 0x12, 0x0B, 0x04, 0x0C, 0xFF, 0xFF,
					 0x01, 0x00, 0x00, 0x00, 0x0A, 16 };
	ck_assert_mem_eq(p + 6 + n, first, sizeof(first));
}
END_TEST

START_TEST(pointers_match_layout)
{
	build_n(4);
	for (unsigned i = 0; i < lay.nr_pointers; i++) {
		const struct acpi_pointer *p = &lay.pointer[i];
		const struct acpi_blob *src = &lay.blob[p->blob];
		uint64_t v = p->width == 8 ? rd64(tbuf + p->offset) :
			     rd32(tbuf + p->offset);

		/* Each field lies in its blob and names its target's start,
		 * which is what table-loader ADD_POINTER needs. */
		ck_assert_uint_ge(p->offset, src->offset);
		ck_assert_uint_le(p->offset + p->width, src->offset + src->len);
		ck_assert_uint_eq(v, GPA + lay.blob[p->target].offset);
	}
	/* FADT: 3, XSDT: 2, RSDT: 2, RSDP: 2. */
	ck_assert_uint_eq(lay.nr_pointers, 9);
}
END_TEST

START_TEST(unaligned_base_and_determinism)
{
	static uint8_t copy[BUF_LEN];
	struct acpi_config cfg;
	struct acpi_layout l2;
	char err[160];

	acpi__config_init(&cfg, 4);
	ck_assert_int_eq(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA + 8, &lay,
				     err, sizeof(err)), 0);
	ck_assert_uint_eq(lay.rsdp_offset, 8);
	ck_assert_uint_eq(lay.rsdp_gpa % 16, 0);
	int facs = acpi__find_blob(&lay, "FACS");

	ck_assert_uint_eq((GPA + 8 + lay.blob[facs].offset) % 64, 0);
	memcpy(copy, tbuf, lay.size);
	memset(tbuf, 0x5A, sizeof(tbuf));
	ck_assert_int_eq(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA + 8, &l2,
				     err, sizeof(err)), 0);
	ck_assert_uint_eq(l2.size, lay.size);
	ck_assert_mem_eq(tbuf, copy, lay.size);
}
END_TEST

START_TEST(small_buffer_fails_cleanly)
{
	struct acpi_config cfg;
	struct acpi_layout l;
	char err[160];
	uint8_t *mem;
	uint32_t need;

	acpi__config_init(&cfg, 8);
	build_ok(&cfg);
	need = lay.size;
	mem = malloc(need + 64);
	ck_assert_ptr_nonnull(mem);
	for (uint32_t cap = 0; cap < need; cap++) {
		memset(mem, 0xA5, need + 64);
		err[0] = '\0';
		ck_assert_int_eq(acpi__build(&cfg, mem, cap, GPA, &l, err,
					     sizeof(err)), -1);
		ck_assert_msg(strstr(err, "do not fit") != NULL, "cap %u: '%s'",
			      cap, err);
		for (uint32_t i = cap; i < need + 64; i++)
			ck_assert_uint_eq(mem[i], 0xA5);
	}
	ck_assert_int_eq(acpi__build(&cfg, mem, need, GPA, &l, err,
				     sizeof(err)), 0);
	ck_assert_mem_eq(mem, tbuf, need);
	free(mem);
}
END_TEST

START_TEST(bad_config_rejected)
{
	struct acpi_config cfg;
	char err[160];

	acpi__config_init(&cfg, 0);
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	acpi__config_init(&cfg, ACPI_MAX_VCPUS + 1);
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	acpi__config_init(&cfg, 1);
	cfg.pci_hole_start = 0xFEC00000;
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	acpi__config_init(&cfg, 1);
	cfg.pci_mem64_start = 0x80000000;
	cfg.pci_mem64_size = 0x1000;
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	cfg.pci_mem64_start = 0xFFFFFFFFFFFFF000ull;
	cfg.pci_mem64_size = 0x2000;
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf), GPA, &lay, err,
				     sizeof(err)), 0);
	/* Tables must be reachable through 32-bit pointers. */
	acpi__config_init(&cfg, 1);
	err[0] = '\0';
	ck_assert_int_lt(acpi__build(&cfg, tbuf, sizeof(tbuf),
				     0x100000000ull - 0x1000, &lay, err,
				     sizeof(err)), 0);
	ck_assert(strstr(err, "4 GiB") != NULL);
	/* A NULL error buffer is allowed. */
	ck_assert_int_lt(acpi__build(&cfg, tbuf, 10, GPA, &lay, NULL, 0), 0);
}
END_TEST

static Suite *acpi_suite(void)
{
	Suite *s = suite_create("acpi");
	TCase *tab = tcase_create("tables");

	tcase_set_timeout(tab, 60);
	tcase_add_test(tab, every_table_checksums);
	tcase_add_test(tab, rsdp_valid);
	tcase_add_test(tab, xsdt_lists_fadt_and_madt);
	tcase_add_test(tab, fadt_contents);
	tcase_add_test(tab, fadt_options);
	tcase_add_loop_test(tab, madt_per_vcpu, 0,
			    sizeof(madt_sizes) / sizeof(madt_sizes[0]));
	tcase_add_test(tab, madt_x2apic_for_large_ids);
	tcase_add_test(tab, madt_custom_apic_ids);
	tcase_add_test(tab, dsdt_contents);
	tcase_add_test(tab, dsdt_options);
	tcase_add_test(tab, pointers_match_layout);
	tcase_add_test(tab, unaligned_base_and_determinism);
	tcase_add_test(tab, small_buffer_fails_cleanly);
	tcase_add_test(tab, bad_config_rejected);
	suite_add_tcase(s, tab);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(acpi_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
