/* fw_cfg: items through the I/O ports, the file directory, DMA (read,
 * skip, select, errors) against a small fake guest RAM. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/fw_cfg.h"

#define RAM_SIZE (1u << 20)

static uint8_t *ram;
static struct guest_mem mem;
static struct fw_cfg fw;

static void setup(void)
{
	ram = calloc(1, RAM_SIZE);
	ck_assert_ptr_nonnull(ram);
	memset(&mem, 0, sizeof(mem));
	mem.region[0] = (struct guest_mem_region){ 0, RAM_SIZE, ram, 0 };
	mem.nr_regions = 1;
	mem.ram_size = RAM_SIZE;
	mem.memfd = -1;
	mem.base = ram;
	ck_assert_int_eq(fw_cfg__init(&fw, &mem), 0);
}

static void teardown(void)
{
	fw_cfg__destroy(&fw);
	free(ram);
}

static void select_key(uint16_t key)
{
	uint8_t d[2] = { (uint8_t)key, (uint8_t)(key >> 8) };

	fw_cfg__io(&fw, 0, d, 2, true);
}

static void read_data(uint8_t *buf, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++)
		fw_cfg__io(&fw, 1, &buf[i], 1, false);
}

static uint64_t read_le(uint16_t key, size_t n)
{
	uint8_t b[8] = { 0 };
	uint64_t v = 0;
	size_t i;

	select_key(key);
	read_data(b, n);
	for (i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

static uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* Writes an FWCfgDmaAccess at desc and starts it the way SeaBIOS does:
 * high half, then low half, both as big-endian dwords. */
static uint32_t dma(uint32_t desc, uint32_t control, uint32_t length,
		    uint64_t addr)
{
	uint8_t d[4];

	put_be32(ram + desc, control);
	put_be32(ram + desc + 4, length);
	put_be32(ram + desc + 8, (uint32_t)(addr >> 32));
	put_be32(ram + desc + 12, (uint32_t)addr);
	put_be32(d, 0);
	fw_cfg__io(&fw, 4, d, 4, true);
	put_be32(d, desc);
	fw_cfg__io(&fw, 8, d, 4, true);
	return be32(ram + desc);
}

START_TEST(test_signature_and_id)
{
	uint8_t buf[6];

	select_key(FW_CFG_SIGNATURE);
	read_data(buf, 6);
	ck_assert_mem_eq(buf, "QEMU\0\0", 6); /* 0 past the end */
	ck_assert_uint_eq(read_le(FW_CFG_ID, 4), 3);
	/* The write-channel bit in the selector is ignored. */
	select_key(FW_CFG_WRITE_CHANNEL | FW_CFG_SIGNATURE);
	read_data(buf, 1);
	ck_assert_uint_eq(buf[0], 'Q');
	/* An unknown item reads as zeros. */
	ck_assert_uint_eq(read_le(0x0123, 4), 0);
	/* Byte reads at 0x510 are data reads too (QEMU decodes so). */
	select_key(FW_CFG_SIGNATURE);
	fw_cfg__io(&fw, 0, buf, 1, false);
	ck_assert_uint_eq(buf[0], 'Q');
	/* The DMA signature. */
	fw_cfg__io(&fw, 4, buf, 4, false);
	ck_assert_mem_eq(buf, "QEMU", 4);
	fw_cfg__io(&fw, 8, buf, 4, false);
	ck_assert_mem_eq(buf, " CFG", 4);
}
END_TEST

START_TEST(test_numbers_and_cmdline)
{
	char line[64];

	ck_assert_int_eq(fw_cfg__add_u16(&fw, FW_CFG_NB_CPUS, 4), 0);
	ck_assert_int_eq(fw_cfg__add_u16(&fw, FW_CFG_MAX_CPUS, 8), 0);
	ck_assert_int_eq(fw_cfg__add_u64(&fw, FW_CFG_RAM_SIZE, 6ull << 30), 0);
	ck_assert_int_eq(fw_cfg__add_cmdline(&fw, "console=ttyS0 quiet"), 0);
	ck_assert_uint_eq(read_le(FW_CFG_NB_CPUS, 2), 4);
	ck_assert_uint_eq(read_le(FW_CFG_MAX_CPUS, 2), 8);
	ck_assert_uint_eq(read_le(FW_CFG_RAM_SIZE, 8), 6ull << 30);
	ck_assert_uint_eq(read_le(FW_CFG_CMDLINE_SIZE, 4), 20);
	select_key(FW_CFG_CMDLINE_DATA);
	read_data((uint8_t *)line, 20);
	ck_assert_str_eq(line, "console=ttyS0 quiet");
	/* Re-adding replaces. */
	ck_assert_int_eq(fw_cfg__add_u16(&fw, FW_CFG_NB_CPUS, 2), 0);
	ck_assert_uint_eq(read_le(FW_CFG_NB_CPUS, 2), 2);
	/* File keys and the directory are not plain items. */
	ck_assert_int_eq(fw_cfg__add_u32(&fw, 0x20, 1), -1);
	ck_assert_int_eq(fw_cfg__add_u32(&fw, FW_CFG_FILE_DIR, 1), -1);
	ck_assert_int_eq(fw_cfg__add_u32(&fw, FW_CFG_ARCH_LOCAL | 3, 1), 0);
	ck_assert_uint_eq(read_le(FW_CFG_ARCH_LOCAL | 3, 4), 1);
}
END_TEST

START_TEST(test_file_directory)
{
	static const char *names[] = { "etc/e820", "bootorder",
				       "etc/table-loader", "etc/acpi/tables" };
	static const char *sorted[] = { "bootorder", "etc/acpi/tables",
					"etc/e820", "etc/table-loader" };
	uint8_t dir[4 + 4 * 64], buf[16];
	char longname[80];
	int i;

	for (i = 0; i < 4; i++)
		ck_assert_int_eq(fw_cfg__add_file(&fw, names[i], names[i],
						  strlen(names[i])), 0);
	ck_assert_int_eq(fw_cfg__add_file(&fw, "bootorder", "x", 1), -1);

	select_key(FW_CFG_FILE_DIR);
	read_data(dir, sizeof(dir));
	ck_assert_uint_eq(be32(dir), 4);
	for (i = 0; i < 4; i++) {
		const uint8_t *e = dir + 4 + i * 64;

		ck_assert_uint_eq(be32(e), strlen(sorted[i]));
		ck_assert_uint_eq(e[4] << 8 | e[5], 0x20 + i);
		ck_assert_uint_eq(e[6] | e[7], 0);
		ck_assert_str_eq((const char *)e + 8, sorted[i]);
		ck_assert_int_eq(fw_cfg__file_key(&fw, sorted[i]), 0x20 + i);
	}
	ck_assert_int_eq(fw_cfg__file_key(&fw, "nope"), -1);

	/* Names must fit in 56 bytes with their NUL. */
	memset(longname, 'a', sizeof(longname));
	longname[56] = 0;
	ck_assert_int_eq(fw_cfg__add_file(&fw, longname, "x", 1), -1);
	longname[55] = 0;
	ck_assert_int_eq(fw_cfg__add_file(&fw, longname, "x", 1), 0);
	/* Sorted in: "aaa..." takes 0x20 and the others move up. */
	ck_assert_int_eq(fw_cfg__file_key(&fw, longname), 0x20);
	ck_assert_int_eq(fw_cfg__file_key(&fw, "bootorder"), 0x21);
	select_key(FW_CFG_FILE_DIR);
	read_data(dir, 4 + 64);
	ck_assert_uint_eq(be32(dir), 5);
	ck_assert_str_eq((const char *)dir + 4 + 8, longname);

	select_key((uint16_t)fw_cfg__file_key(&fw, "etc/e820"));
	read_data(buf, 10);
	ck_assert_mem_eq(buf, "etc/e820\0\0", 10);
}
END_TEST

START_TEST(test_dma_read_skip_select)
{
	uint16_t key;

	ck_assert_int_eq(fw_cfg__add_file(&fw, "etc/hello", "hello world", 11),
			 0);
	key = (uint16_t)fw_cfg__file_key(&fw, "etc/hello");

	/* SELECT + READ. */
	memset(ram + 0x2000, 0xAA, 32);
	ck_assert_uint_eq(dma(0x1000, (uint32_t)key << 16 |
				      FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ,
			      5, 0x2000), 0);
	ck_assert_mem_eq(ram + 0x2000, "hello", 5);
	ck_assert_uint_eq(ram[0x2005], 0xAA);
	/* SKIP 1, then READ continues from the offset. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_SKIP, 1, 0), 0);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ, 3, 0x2010), 0);
	ck_assert_mem_eq(ram + 0x2010, "wor", 3);
	/* Past the end: the rest is zero-filled. */
	memset(ram + 0x2100, 0xAA, 16);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ, 8, 0x2100), 0);
	ck_assert_mem_eq(ram + 0x2100, "ld\0\0\0\0\0\0", 8);
	ck_assert_uint_eq(ram[0x2108], 0xAA);
	/* Port reads share the position. */
	select_key(FW_CFG_SIGNATURE);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_SKIP, 2, 0), 0);
	uint8_t b[2];
	read_data(b, 2);
	ck_assert_mem_eq(b, "MU", 2);
	/* The address register was consumed. */
	ck_assert_uint_eq(fw.s.dma_addr[7], 0);
}
END_TEST

START_TEST(test_dma_errors)
{
	/* Destination outside RAM: error bit, nothing written. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_SIGNATURE << 16 |
				      FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ,
			      4, 0xFFFFF000ull), FW_CFG_DMA_CTL_ERROR);
	/* Straddling the end of RAM. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_SIGNATURE << 16 |
				      FW_CFG_DMA_CTL_SELECT | FW_CFG_DMA_CTL_READ,
			      4, RAM_SIZE - 2), FW_CFG_DMA_CTL_ERROR);
	/* An address that would wrap around 2^64. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ, 0xFFFFFFFF,
			      0xFFFFFFFFFFFFFF00ull), FW_CFG_DMA_CTL_ERROR);
	/* Writes are not supported. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_WRITE, 4, 0x2000),
			  FW_CFG_DMA_CTL_ERROR);
	/* A descriptor outside RAM is ignored without harm. */
	uint8_t d[4] = { 0x00, 0xF0, 0x00, 0x00 }; /* 0x00F00000 BE = 15 MiB */
	fw_cfg__io(&fw, 8, d, 4, true);
	/* An 8-byte write at 0x514 starts a transfer too. */
	put_be32(ram + 0x3000, FW_CFG_SIGNATURE << 16 | FW_CFG_DMA_CTL_SELECT |
				       FW_CFG_DMA_CTL_READ);
	put_be32(ram + 0x3004, 4);
	put_be32(ram + 0x3008, 0);
	put_be32(ram + 0x300C, 0x3100);
	uint8_t q[8] = { 0, 0, 0, 0, 0, 0, 0x30, 0x00 };
	fw_cfg__io(&fw, 4, q, 8, true);
	ck_assert_mem_eq(ram + 0x3100, "QEMU", 4);
	ck_assert_uint_eq(be32(ram + 0x3000), 0);
	/* Odd accesses: no crash, all ones. */
	fw_cfg__io(&fw, 2, d, 2, false);
	ck_assert_uint_eq(d[0], 0xFF);
	fw_cfg__io(&fw, 10, d, 4, false);
	ck_assert_uint_eq(d[3], 0xFF);
}
END_TEST

/* How a control word decodes, as QEMU's fw_cfg_dma_transfer does: SELECT
 * first, then READ over WRITE over SKIP; nothing else moves anything. */
START_TEST(test_dma_control_bits)
{
	/* SELECT alone: selected, position 0, nothing written. */
	memset(ram + 0x2000, 0xAA, 8);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_SIGNATURE << 16 |
				      FW_CFG_DMA_CTL_SELECT, 4, 0x2000), 0);
	ck_assert_uint_eq(ram[0x2000], 0xAA);
	ck_assert_uint_eq(read_le(FW_CFG_SIGNATURE, 1), 'Q');
	/* READ and SKIP together: a read. */
	select_key(FW_CFG_SIGNATURE);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ | FW_CFG_DMA_CTL_SKIP,
			      2, 0x2000), 0);
	ck_assert_mem_eq(ram + 0x2000, "QE", 2);
	/* READ and WRITE together: a read too (and not an error). */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ | FW_CFG_DMA_CTL_WRITE,
			      2, 0x2002), 0);
	ck_assert_mem_eq(ram + 0x2000, "QEMU", 4);
	/* An error bit the guest left set is not an operation; no bits at
	 * all is a no-op that still completes. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_ERROR, 4, 0x2000), 0);
	ck_assert_uint_eq(dma(0x1000, 0, 4, 0x2000), 0);
	/* A zero-length read succeeds anywhere, even at no RAM. */
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ, 0, 0xFFFFFFFF00ull),
			  0);
	/* An unknown key reads as zeros, like QEMU. */
	memset(ram + 0x2000, 0xAA, 8);
	ck_assert_uint_eq(dma(0x1000, 0x1234u << 16 | FW_CFG_DMA_CTL_SELECT |
				      FW_CFG_DMA_CTL_READ, 8, 0x2000), 0);
	ck_assert_mem_eq(ram + 0x2000, "\0\0\0\0\0\0\0\0", 8);
	/* SKIP past the end, then READ: zeros, no error. */
	select_key(FW_CFG_SIGNATURE);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_SKIP, 100, 0), 0);
	ck_assert_uint_eq(dma(0x1000, FW_CFG_DMA_CTL_READ, 2, 0x2000), 0);
	ck_assert_mem_eq(ram + 0x2000, "\0\0", 2);
	/* A descriptor straddling the end of RAM is not touched at all. */
	uint8_t d[4] = { 0x00, 0x0F, 0xFF, 0xF8 }; /* RAM_SIZE - 8, BE */
	memset(ram + RAM_SIZE - 8, 0x5A, 8);
	fw_cfg__io(&fw, 8, d, 4, true);
	for (unsigned i = 0; i < 8; i++)
		ck_assert_uint_eq(ram[RAM_SIZE - 8 + i], 0x5A);
}
END_TEST

static Suite *fw_cfg_suite(void)
{
	Suite *s = suite_create("fw_cfg");
	TCase *tc = tcase_create("fw_cfg");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_signature_and_id);
	tcase_add_test(tc, test_numbers_and_cmdline);
	tcase_add_test(tc, test_file_directory);
	tcase_add_test(tc, test_dma_read_skip_select);
	tcase_add_test(tc, test_dma_errors);
	tcase_add_test(tc, test_dma_control_bits);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(fw_cfg_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
