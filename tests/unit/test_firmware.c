/* Firmware boot, pure parts: the BIOS image check and layout, the etc/e820
 * and bootorder files, and the ACPI tables as table-loader files, run
 * through a small loader that does what SeaBIOS's romfile_loader does. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/acpi.h"
#include "guestfw/acpi_numa.h"
#include "guestfw/e820.h"
#include "guestfw/firmware.h"
#include "vmm/bytes.h"
#include "vmm/guest_mem.h"
#include "vmm/numa_layout.h"

static uint8_t *image(size_t len, uint8_t first)
{
	uint8_t *p = calloc(1, len);

	ck_assert_ptr_nonnull(p);
	p[len - 16] = first;
	return p;
}

static int check(const uint8_t *img, size_t len, struct firmware_layout *l,
		 char *err)
{
	return firmware__check(img, len, l, err, 200);
}

START_TEST(test_image_layout)
{
	struct firmware_layout l;
	char err[200];
	uint8_t *img = image(0x40000, 0xEA); /* SeaBIOS: ljmp F000:E05B */

	ck_assert_int_eq(check(img, 0x40000, &l, err), 0);
	ck_assert_uint_eq(l.rom_gpa, 0xFFFC0000u);
	ck_assert_uint_eq(l.rom_len, 0x40000);
	ck_assert_uint_eq(l.low_gpa, 0xE0000);
	ck_assert_uint_eq(l.low_len, 0x20000);
	ck_assert_uint_eq(l.low_offset, 0x20000);
	/* The reset vector 0xFFFFFFF0 and its low alias 0xFFFF0 are the
	 * same image byte. */
	ck_assert_uint_eq(FIRMWARE_RESET_VECTOR - l.rom_gpa,
			  l.low_offset + (0xFFFF0 - l.low_gpa));
	free(img);

	img = image(0x10000, 0xE9);
	ck_assert_int_eq(check(img, 0x10000, &l, err), 0);
	ck_assert_uint_eq(l.rom_gpa, 0xFFFF0000u);
	ck_assert_uint_eq(l.low_gpa, 0xF0000);
	ck_assert_uint_eq(l.low_len, 0x10000);
	ck_assert_uint_eq(l.low_offset, 0);
	free(img);

	/* OVMF-style: NOPs before the jump. */
	img = image(0x20000, 0x90);
	img[0x20000 - 15] = 0x90;
	img[0x20000 - 14] = 0xE9;
	ck_assert_int_eq(check(img, 0x20000, &l, err), 0);
	free(img);
}
END_TEST

START_TEST(test_image_rejects)
{
	struct firmware_layout l;
	char err[200];
	uint8_t *img = image(0x20000, 0xEA);

	ck_assert_int_eq(check(img, 0, &l, err), -1);
	ck_assert_int_eq(check(NULL, 0x20000, &l, err), -1);
	ck_assert_int_eq(check(img, 0xFFFF, &l, err), -1);
	ck_assert_int_eq(check(img, 0x10001, &l, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "multiple of 64 KiB"));
	ck_assert_int_eq(check(img, 0x18000, &l, err), -1);
	ck_assert_int_eq(check(img, (size_t)FIRMWARE_MAX_SIZE + 0x10000, &l,
			       err), -1);
	/* Garbage: zeros (or text) where the jump belongs. */
	img[0x20000 - 16] = 0x00;
	ck_assert_int_eq(check(img, 0x20000, &l, err), -1);
	ck_assert_ptr_nonnull(strstr(err, "reset vector"));
	memset(img + 0x20000 - 16, 0x90, 16); /* only NOPs */
	ck_assert_int_eq(check(img, 0x20000, &l, err), -1);
	memset(img + 0x20000 - 16, 'x', 16);
	ck_assert_int_eq(check(img, 0x20000, &l, err), -1);
	ck_assert_ptr_null(strchr(err, '\n'));
	free(img);
}
END_TEST

START_TEST(test_e820_file)
{
	struct e820_table t;
	uint8_t out[3 * FW_E820_ENTRY_SIZE];

	e820__init(&t);
	ck_assert_int_eq(e820__add(&t, 0, 0x9FC00, E820_TYPE_RAM), 0);
	ck_assert_int_eq(e820__add(&t, 0x100000000ull, 0x40000000,
				   E820_TYPE_RAM), 0);
	ck_assert_int_eq(e820__add(&t, 0xFEC00000, 0x1000,
				   E820_TYPE_RESERVED), 0);
	ck_assert_uint_eq(firmware__e820_file(&t, out, sizeof(out)),
			  3 * FW_E820_ENTRY_SIZE);
	ck_assert_uint_eq(get_le64(out), 0);
	ck_assert_uint_eq(get_le64(out + 8), 0x9FC00);
	ck_assert_uint_eq(get_le32(out + 16), E820_TYPE_RAM);
	ck_assert_uint_eq(get_le64(out + 20), 0x100000000ull);
	ck_assert_uint_eq(get_le64(out + 28), 0x40000000);
	ck_assert_uint_eq(get_le32(out + 56), E820_TYPE_RESERVED);
	ck_assert_uint_eq(firmware__e820_file(&t, out, sizeof(out) - 1), 0);
}
END_TEST

START_TEST(test_bootorder)
{
	const unsigned slots[] = { 2, 3, 10 };
	const unsigned bad[] = { 2, 32 };
	char out[200];

	ck_assert_uint_eq(firmware__bootorder(slots, 3, out, sizeof(out)),
			  strlen(out));
	ck_assert_str_eq(out, "/pci@i0cf8/scsi@2/disk@0,0\n"
			      "/pci@i0cf8/scsi@3/disk@0,0\n"
			      "/pci@i0cf8/scsi@a/disk@0,0");
	ck_assert_uint_eq(firmware__bootorder(slots, 1, out, sizeof(out)), 26);
	ck_assert_uint_eq(firmware__bootorder(bad, 2, out, sizeof(out)), 0);
	ck_assert_uint_eq(firmware__bootorder(slots, 3, out, 40), 0);
	ck_assert_str_eq(out, "");
	ck_assert_uint_eq(firmware__bootorder(slots, 0, out, sizeof(out)), 0);
}
END_TEST

START_TEST(test_loader_entry_roundtrip)
{
	struct fw_loader_cmd c = { 0 }, d;
	uint8_t e[FW_LOADER_ENTRY_SIZE];

	c.command = FW_LOADER_ADD_POINTER;
	strcpy(c.file, "etc/acpi/rsdp");
	strcpy(c.src_file, "etc/acpi/tables");
	c.offset = 0x18;
	c.size = 8;
	ck_assert_int_eq(fw_loader__encode(&c, e), 0);
	/* QEMU's BiosLinkerLoaderEntry: le32 command, dest[56], src[56],
	 * le32 offset, u8 size. */
	ck_assert_uint_eq(get_le32(e), 2);
	ck_assert_str_eq((char *)e + 4, "etc/acpi/rsdp");
	ck_assert_str_eq((char *)e + 60, "etc/acpi/tables");
	ck_assert_uint_eq(get_le32(e + 116), 0x18);
	ck_assert_uint_eq(e[120], 8);
	fw_loader__decode(e, &d);
	ck_assert_uint_eq(d.command, 2);
	ck_assert_str_eq(d.file, c.file);
	ck_assert_str_eq(d.src_file, c.src_file);
	ck_assert_uint_eq(d.offset, 0x18);
	ck_assert_uint_eq(d.size, 8);

	memset(&c, 0, sizeof(c));
	c.command = FW_LOADER_ALLOCATE;
	strcpy(c.file, "etc/acpi/tables");
	c.align = 64;
	c.zone = FW_LOADER_ZONE_HIGH;
	ck_assert_int_eq(fw_loader__encode(&c, e), 0);
	ck_assert_uint_eq(get_le32(e + 60), 64);
	ck_assert_uint_eq(e[64], 1);
	memset(c.file, 'a', FW_LOADER_FILESZ);
	ck_assert_int_eq(fw_loader__encode(&c, e), -1);
	/* A guest-invisible decoder still never runs off a name. */
	memset(e, 'z', sizeof(e));
	fw_loader__decode(e, &d);
	ck_assert_uint_eq(strlen(d.file), FW_LOADER_FILESZ);
}
END_TEST

/* --- a loader as SeaBIOS runs it, over a fake guest memory --- */

#define MEM_SIZE 0x100000
#define TABLES_AT 0x40000   /* where "high memory" allocation lands */
#define RSDP_AT 0xF5A40     /* an F-segment spot, 16-aligned */

struct loaded {
	uint8_t mem[MEM_SIZE];
	uint32_t tables_gpa, rsdp_gpa;
	uint32_t tables_len;
};

static uint32_t *file_gpa(struct loaded *ld, const char *name)
{
	if (!strcmp(name, FW_ACPI_TABLES_FILE))
		return &ld->tables_gpa;
	if (!strcmp(name, FW_ACPI_RSDP_FILE))
		return &ld->rsdp_gpa;
	ck_abort_msg("loader names an unknown file '%s'", name);
	return NULL;
}

static void run_loader(const struct firmware_acpi_files *f,
		       struct loaded *ld)
{
	ck_assert_uint_eq(f->loader_len % FW_LOADER_ENTRY_SIZE, 0);
	for (size_t o = 0; o < f->loader_len; o += FW_LOADER_ENTRY_SIZE) {
		struct fw_loader_cmd c;

		fw_loader__decode(f->loader + o, &c);
		switch (c.command) {
		case FW_LOADER_ALLOCATE: {
			bool tables = !strcmp(c.file, FW_ACPI_TABLES_FILE);
			uint32_t at = tables ? TABLES_AT : RSDP_AT;

			ck_assert_uint_eq(at % c.align, 0);
			ck_assert_uint_eq(c.zone, tables ? FW_LOADER_ZONE_HIGH :
						  FW_LOADER_ZONE_FSEG);
			*file_gpa(ld, c.file) = at;
			memcpy(ld->mem + at, tables ? f->tables : f->rsdp,
			       tables ? f->tables_len : ACPI_RSDP_LEN);
			break;
		}
		case FW_LOADER_ADD_POINTER: {
			uint8_t *p = ld->mem + *file_gpa(ld, c.file) + c.offset;
			uint64_t v;

			ck_assert(c.size == 4 || c.size == 8);
			v = c.size == 4 ? get_le32(p) : get_le64(p);
			v += *file_gpa(ld, c.src_file);
			if (c.size == 4)
				put_le32(p, (uint32_t)v);
			else
				put_le64(p, v);
			break;
		}
		case FW_LOADER_ADD_CHECKSUM: {
			uint8_t *base = ld->mem + *file_gpa(ld, c.file);

			base[c.offset] = (uint8_t)(base[c.offset] -
				acpi__sum(base + c.start, c.length));
			break;
		}
		default:
			ck_abort_msg("unknown loader command %u", c.command);
		}
	}
	ck_assert_uint_ne(ld->tables_gpa, 0);
	ck_assert_uint_ne(ld->rsdp_gpa, 0);
	ld->tables_len = (uint32_t)f->tables_len;
}

static struct loaded ld;
static uint8_t at0[0x20000], direct[0x20000];

/* Builds the tables at 0 (firmware path) and at TABLES_AT (what a direct
 * boot does there), loads the first, and checks both paths give the same
 * bytes. */
static void load_and_compare(const struct acpi_config *cfg)
{
	struct acpi_layout lay, lay_direct;
	struct firmware_acpi_files f;
	char err[200];
	int r;

	memset(&ld, 0, sizeof(ld));
	ck_assert_int_eq(acpi__build(cfg, at0, sizeof(at0), 0, &lay, err,
				     sizeof(err)), 0);
	ck_assert_int_eq(firmware__acpi_files(at0, &lay, &f, err,
					      sizeof(err)), 0);
	run_loader(&f, &ld);
	ck_assert_int_eq(acpi__build(cfg, direct, sizeof(direct), TABLES_AT,
				     &lay_direct, err, sizeof(err)), 0);
	ck_assert_uint_eq(lay.size, lay_direct.size);
	r = acpi__find_blob(&lay, "RSDP");
	ck_assert_int_ge(r, 0);
	/* Everything but the RSDP's own bytes (which went to its own file)
	 * is what the direct boot writes at that address... */
	for (unsigned b = 0; b < lay.nr_blobs; b++) {
		const struct acpi_blob *bl = &lay.blob[b];

		if ((int)b == r)
			continue;
		ck_assert_msg(!memcmp(ld.mem + TABLES_AT + bl->offset,
				      direct + bl->offset, bl->len),
			      "table %s differs between the two paths",
			      bl->sig);
	}
	ck_assert_mem_eq(ld.mem + TABLES_AT + lay.blob[r].offset,
			 (uint8_t[ACPI_RSDP_LEN]){ 0 }, ACPI_RSDP_LEN);
	/* ... and the loaded RSDP is the direct one, pointers included. */
	ck_assert_mem_eq(ld.mem + RSDP_AT, direct + lay.blob[r].offset,
			 ACPI_RSDP_LEN);
	firmware__acpi_files_free(&f);
}

static const uint8_t *table_at(uint64_t gpa, const char *sig)
{
	const uint8_t *t;

	ck_assert_uint_lt(gpa, MEM_SIZE - 36);
	t = ld.mem + gpa;
	ck_assert_mem_eq(t, sig, 4);
	ck_assert_uint_le(gpa + get_le32(t + 4), MEM_SIZE);
	ck_assert_uint_eq(acpi__sum(t, get_le32(t + 4)), 0);
	return t;
}

START_TEST(test_acpi_loader_single)
{
	struct acpi_config cfg;
	const uint8_t *rsdp, *xsdt, *rsdt, *fadt;
	unsigned n;
	bool madt = false;

	acpi__config_init(&cfg, 4);
	cfg.pci_prt = true;
	for (unsigned i = 0; i < 4; i++)
		cfg.pci_intx_gsi[i] = (uint8_t)(16 + i);
	load_and_compare(&cfg);
	rsdp = ld.mem + RSDP_AT;
	ck_assert_mem_eq(rsdp, "RSD PTR ", 8);
	ck_assert_uint_eq(acpi__sum(rsdp, 20), 0);
	ck_assert_uint_eq(acpi__sum(rsdp, ACPI_RSDP_LEN), 0);
	rsdt = table_at(get_le32(rsdp + 16), "RSDT");
	xsdt = table_at(get_le64(rsdp + 24), "XSDT");
	n = (get_le32(xsdt + 4) - 36) / 8;
	ck_assert_uint_eq(n, (get_le32(rsdt + 4) - 36) / 4);
	for (unsigned i = 0; i < n; i++) {
		uint64_t a = get_le64(xsdt + 36 + 8 * i);

		ck_assert_uint_eq(a, get_le32(rsdt + 36 + 4 * i));
		ck_assert_uint_ge(a, ld.tables_gpa);
		ck_assert_uint_lt(a, ld.tables_gpa + ld.tables_len);
		if (!memcmp(ld.mem + a, "APIC", 4)) {
			table_at(a, "APIC");
			madt = true;
		}
	}
	ck_assert(madt);
	fadt = table_at(get_le64(xsdt + 36), "FACP");
	table_at(get_le32(fadt + 40), "DSDT");
	ck_assert_uint_eq(get_le64(fadt + 140), get_le32(fadt + 40));
	ck_assert_mem_eq(ld.mem + get_le32(fadt + 36), "FACS", 4);
	ck_assert_uint_eq(get_le32(fadt + 36) % 64, 0);
}
END_TEST

START_TEST(test_acpi_loader_numa)
{
	struct guest_mem_region ram[2] = {
		{ 0, 0xC0000000ull, NULL, 0 },
		{ 0x100000000ull, 0x40000000ull, NULL, 0 },
	};
	struct numa_layout layout;
	struct acpi_numa numa = { .layout = &layout };
	struct acpi_config cfg;
	char err[200];
	bool srat = false, slit = false;
	const uint8_t *xsdt;

	ck_assert_int_eq(numa_layout__build(&layout, 2, 4, ram, 2, NULL, err,
					    sizeof(err)), 0);
	acpi__config_init(&cfg, 4);
	cfg.numa = &numa;
	load_and_compare(&cfg);
	xsdt = table_at(get_le64(ld.mem + RSDP_AT + 24), "XSDT");
	for (unsigned i = 0; i < (get_le32(xsdt + 4) - 36) / 8; i++) {
		uint64_t a = get_le64(xsdt + 36 + 8 * i);

		srat |= !memcmp(ld.mem + a, "SRAT", 4);
		slit |= !memcmp(ld.mem + a, "SLIT", 4);
		table_at(a, (const char *)ld.mem + a);
	}
	ck_assert(srat && slit);
}
END_TEST

START_TEST(test_acpi_files_need_offsets)
{
	struct acpi_config cfg;
	struct acpi_layout lay;
	struct firmware_acpi_files f;
	char err[200];

	acpi__config_init(&cfg, 1);
	/* Laid out at a real address, pointers are addresses: refused. */
	ck_assert_int_eq(acpi__build(&cfg, at0, sizeof(at0), 0xE0000, &lay,
				     err, sizeof(err)), 0);
	ck_assert_int_eq(firmware__acpi_files(at0, &lay, &f, err,
					      sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not an offset"));
	ck_assert_ptr_null(f.tables);
	memset(&lay, 0, sizeof(lay));
	ck_assert_int_eq(firmware__acpi_files(at0, &lay, &f, err,
					      sizeof(err)), -1);
}
END_TEST

static Suite *firmware_suite(void)
{
	Suite *s = suite_create("firmware");
	TCase *tc = tcase_create("firmware");

	tcase_add_test(tc, test_image_layout);
	tcase_add_test(tc, test_image_rejects);
	tcase_add_test(tc, test_e820_file);
	tcase_add_test(tc, test_bootorder);
	tcase_add_test(tc, test_loader_entry_roundtrip);
	tcase_add_test(tc, test_acpi_loader_single);
	tcase_add_test(tc, test_acpi_loader_numa);
	tcase_add_test(tc, test_acpi_files_need_offsets);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(firmware_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
