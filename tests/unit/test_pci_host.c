/* PCI configuration mechanism 1, the built-in bridges, BAR sizing and
 * remap callbacks, write masks, and the 0xCF9 reset register. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/pci_host.h"

struct fake_control {
	int count;
	enum machine_request last;
};

static void fake_request(void *ctx, enum machine_request req, int status)
{
	struct fake_control *c = ctx;

	c->count++;
	c->last = req;
}

static struct fake_control ctl;
static struct pci_host host;

static void setup(void)
{
	struct machine_control mc = { fake_request, &ctl };

	memset(&ctl, 0, sizeof(ctl));
	pci_host__init(&host, &mc);
}

static void teardown(void)
{
	pci_host__destroy(&host);
}

static uint32_t io_read(uint16_t port, uint32_t len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0, i;

	pci_host__io(&host, port - PCI_HOST_PORT, d, len, false);
	for (i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void io_write(uint16_t port, uint32_t len, uint32_t v)
{
	uint8_t d[4];
	uint32_t i;

	for (i = 0; i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	pci_host__io(&host, port - PCI_HOST_PORT, d, len, true);
}

static uint32_t cfg_read(unsigned dev, unsigned reg, uint32_t len)
{
	io_write(0xCF8, 4, PCI_CONFIG_ENABLE | dev << 11 | (reg & 0xFC));
	return io_read((uint16_t)(0xCFC + (reg & 3)), len);
}

static void cfg_write(unsigned dev, unsigned reg, uint32_t len, uint32_t v)
{
	io_write(0xCF8, 4, PCI_CONFIG_ENABLE | dev << 11 | (reg & 0xFC));
	io_write((uint16_t)(0xCFC + (reg & 3)), len, v);
}

START_TEST(test_config_address)
{
	io_write(0xCF8, 4, 0x80000000);
	ck_assert_uint_eq(io_read(0xCF8, 4), 0x80000000);
	io_write(0xCF8, 4, 0x80001234);
	ck_assert_uint_eq(io_read(0xCF8, 4), 0x80001234);
	/* Linux's probe writes 0x01 to 0xCFB first: ignored. */
	io_write(0xCFB, 1, 0x01);
	ck_assert_uint_eq(io_read(0xCF8, 4), 0x80001234);
	/* Byte and word accesses to CONFIG_ADDRESS do nothing. */
	io_write(0xCF8, 2, 0);
	io_write(0xCF8, 1, 0);
	ck_assert_uint_eq(io_read(0xCF8, 4), 0x80001234);
	ck_assert_uint_eq(io_read(0xCF8, 2), 0xFFFF);
	ck_assert_uint_eq(io_read(0xCFA, 1), 0xFF);
}
END_TEST

START_TEST(test_builtin_bridges)
{
	ck_assert_uint_eq(cfg_read(0, 0x00, 4), 0x12378086);
	ck_assert_uint_eq(cfg_read(0, 0x08, 4) >> 8, 0x060000);
	ck_assert_uint_eq(cfg_read(0, 0x0E, 1), 0x00);
	ck_assert_uint_eq(cfg_read(1, 0x00, 4), 0x70008086);
	ck_assert_uint_eq(cfg_read(1, 0x08, 4) >> 8, 0x060100);
	ck_assert_uint_eq(cfg_read(1, 0x0E, 1), 0x00); /* single function */
	/* Word and byte reads at offsets within the dword. */
	ck_assert_uint_eq(cfg_read(0, 0x02, 2), 0x1237);
	ck_assert_uint_eq(cfg_read(1, 0x03, 1), 0x70);
	ck_assert_uint_eq(cfg_read(1, 0x0B, 1), 0x06);
	/* Ids are read-only, the interrupt line and PIRQ routes are not. */
	cfg_write(0, 0x00, 4, 0);
	ck_assert_uint_eq(cfg_read(0, 0x00, 4), 0x12378086);
	cfg_write(1, 0x3C, 1, 0x0B);
	ck_assert_uint_eq(cfg_read(1, 0x3C, 1), 0x0B);
	ck_assert_uint_eq(cfg_read(1, 0x60, 4), 0x80808080);
	cfg_write(1, 0x60, 1, 0x0A);
	ck_assert_uint_eq(cfg_read(1, 0x60, 4), 0x8080800A);
	/* SeaBIOS's PAM programming sticks. */
	cfg_write(0, 0x59, 1, 0x30);
	ck_assert_uint_eq(cfg_read(0, 0x59, 1), 0x30);
}
END_TEST

START_TEST(test_missing_devices)
{
	ck_assert_uint_eq(cfg_read(2, 0x00, 4), 0xFFFFFFFF);
	ck_assert_uint_eq(cfg_read(31, 0x00, 2), 0xFFFF);
	/* Function 1 of the host bridge does not exist either. */
	io_write(0xCF8, 4, PCI_CONFIG_ENABLE | 1 << 8);
	ck_assert_uint_eq(io_read(0xCFC, 4), 0xFFFFFFFF);
	/* Bus 1. */
	io_write(0xCF8, 4, PCI_CONFIG_ENABLE | 1 << 16);
	ck_assert_uint_eq(io_read(0xCFC, 4), 0xFFFFFFFF);
	/* Enable bit clear. */
	io_write(0xCF8, 4, 0);
	ck_assert_uint_eq(io_read(0xCFC, 4), 0xFFFFFFFF);
	/* A word crossing the dword end. */
	io_write(0xCF8, 4, PCI_CONFIG_ENABLE);
	ck_assert_uint_eq(io_read(0xCFF, 2), 0xFFFF);
	ck_assert_uint_eq(io_read(0xCFE, 2), 0x1237);
	/* Writes to nothing are dropped without harm. */
	cfg_write(5, 0x10, 4, 0xFFFFFFFF);
}
END_TEST

struct remap_log {
	int calls;
	int bar;
	uint64_t addr;
	bool enabled;
};

static void log_remap(struct pci_dev *dev, int bar, uint64_t addr,
		      bool enabled)
{
	struct remap_log *l = dev->opaque;

	l->calls++;
	l->bar = bar;
	l->addr = addr;
	l->enabled = enabled;
}

START_TEST(test_bar_sizing)
{
	static uint8_t config[PCI_CONFIG_SIZE];
	struct remap_log log = { 0 };
	struct pci_dev dev;

	pci_dev__init(&dev, config, 0x1AF4, 0x1041, 0x020000, 1);
	ck_assert_int_eq(pci_dev__set_bar(&dev, 0, PCI_BAR_MEM32, 4096, false), 0);
	ck_assert_int_eq(pci_dev__set_bar(&dev, 1, PCI_BAR_IO, 32, false), 0);
	ck_assert_int_eq(pci_dev__set_bar(&dev, 2, PCI_BAR_MEM64, 1 << 20, true),
			 0);
	ck_assert_int_eq(pci_dev__set_bar(&dev, 5, PCI_BAR_MEM64, 4096, false),
			 -1);
	ck_assert_int_eq(pci_dev__set_bar(&dev, 4, PCI_BAR_MEM32, 3000, false),
			 -1);
	dev.bar_remap = log_remap;
	dev.opaque = &log;
	ck_assert_int_eq(pci_host__add_device(&host, PCI_DEVFN(3, 0), &dev), 0);
	ck_assert_int_eq(pci_host__add_device(&host, PCI_DEVFN(3, 0), &dev), -1);
	ck_assert_int_eq(pci_host__add_device(&host, PCI_DEVFN(0, 0), &dev), -1);

	ck_assert_uint_eq(cfg_read(3, 0x00, 4), 0x10411AF4);
	cfg_write(3, 0x10, 4, 0xFFFFFFFF);
	ck_assert_uint_eq(cfg_read(3, 0x10, 4), 0xFFFFF000);
	cfg_write(3, 0x14, 4, 0xFFFFFFFF);
	ck_assert_uint_eq(cfg_read(3, 0x14, 4), 0xFFFFFFE1);
	cfg_write(3, 0x18, 4, 0xFFFFFFFF);
	cfg_write(3, 0x1C, 4, 0xFFFFFFFF);
	ck_assert_uint_eq(cfg_read(3, 0x18, 4), 0xFFF0000C);
	ck_assert_uint_eq(cfg_read(3, 0x1C, 4), 0xFFFFFFFF);
	cfg_write(3, 0x20, 4, 0xFFFFFFFF); /* unimplemented BAR */
	ck_assert_uint_eq(cfg_read(3, 0x20, 4), 0);
	/* Sizing with decoding off announced nothing live. */
	ck_assert(!log.enabled);

	cfg_write(3, 0x10, 4, 0xE0000000);
	cfg_write(3, 0x18, 4, 0x00000000);
	cfg_write(3, 0x1C, 4, 0x00000008);
	log.calls = 0;
	cfg_write(3, PCI_CFG_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_int_eq(log.calls, 2); /* the two memory BARs */
	ck_assert_uint_eq(pci_dev__bar_addr(&dev, 0), 0xE0000000);
	ck_assert_uint_eq(pci_dev__bar_addr(&dev, 2), 0x800000000ull);
	ck_assert(log.enabled);
	ck_assert_int_eq(log.bar, 2);
	ck_assert_uint_eq(log.addr, 0x800000000ull);
	/* Rewriting the same value announces nothing. */
	cfg_write(3, PCI_CFG_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_int_eq(log.calls, 2);

	/* Status error bits are write-1-to-clear. */
	config[PCI_CFG_STATUS + 1] = 0x20;
	cfg_write(3, PCI_CFG_STATUS, 2, 0x0000);
	ck_assert_uint_eq(cfg_read(3, PCI_CFG_STATUS, 2), 0x2000);
	cfg_write(3, PCI_CFG_STATUS, 2, 0x2000);
	ck_assert_uint_eq(cfg_read(3, PCI_CFG_STATUS, 2), 0x0000);

	/* A restore announces every BAR again. */
	log.calls = 0;
	pci_host__post_load(&host);
	ck_assert_int_eq(log.calls, 3);
}
END_TEST

START_TEST(test_reset_register)
{
	io_write(0xCF9, 1, PCI_RCR_SYS_RST);
	ck_assert_int_eq(ctl.count, 0);
	ck_assert_uint_eq(io_read(0xCF9, 1), PCI_RCR_SYS_RST);
	io_write(0xCF9, 1, PCI_RCR_SYS_RST | PCI_RCR_RST_CPU);
	ck_assert_int_eq(ctl.count, 1);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_RESET);
	/* RST_CPU self-clears; the other bits stay readable. */
	ck_assert_uint_eq(io_read(0xCF9, 1), PCI_RCR_SYS_RST);
	/* The ACPI reset register value (0x06) written straight away. */
	io_write(0xCF9, 1, 0x06);
	ck_assert_int_eq(ctl.count, 2);
	/* A word write at 0xCF8 is not a reset-register access. */
	io_write(0xCF8, 2, 0x0600);
	ck_assert_int_eq(ctl.count, 2);
}
END_TEST

/* The GSI lines the PIRQ router drives, as a level per GSI. */
static bool line[32];
static unsigned line_changes;

static void record_line(void *ctx, unsigned gsi, bool level)
{
	(void)ctx;
	if (gsi < 32) {
		line[gsi] = level;
		line_changes++;
	}
}

static void pirq_setup(void)
{
	struct irq_sink out = { record_line, NULL };

	memset(line, 0, sizeof(line));
	line_changes = 0;
	pci_host__set_irq_out(&host, &out);
}

START_TEST(test_qemu_ids_and_swizzle)
{
	/* SeaBIOS says "Running on QEMU (i440fx)" from these. */
	ck_assert_uint_eq(cfg_read(0, 0x2C, 4), 0x11001AF4);
	ck_assert_uint_eq(cfg_read(1, 0x2C, 4), 0x11001AF4);
	/* QEMU's i440FX / SeaBIOS's piix_pci_slot_get_irq: slot 1 INTA is
	 * PIRQA, slot 2 INTA PIRQB, slot 2 INTD PIRQA, slot 5 INTA PIRQA. */
	ck_assert_uint_eq(pci_host__intx_pirq(1, 0), 0);
	ck_assert_uint_eq(pci_host__intx_pirq(2, 0), 1);
	ck_assert_uint_eq(pci_host__intx_pirq(2, 3), 0);
	ck_assert_uint_eq(pci_host__intx_pirq(4, 1), 0);
	ck_assert_uint_eq(pci_host__intx_pirq(5, 0), 0);
	ck_assert_uint_eq(pci_host__intx_pirq(31, 2), 0);
}
END_TEST

START_TEST(test_pirq_routing)
{
	struct irq_sink intx;

	pirq_setup();
	intx = pci_host__intx_sink(&host);
	/* Not routed (0x80): only the IOAPIC pin. */
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, true);
	ck_assert(line[17]);
	ck_assert(!line[10] && !line[11]);
	/* SeaBIOS routes PIRQB to IRQ 10 while the line is high: the ISA
	 * line follows at once. */
	cfg_write(1, 0x60, 4, 0x0B0B0A0A);
	ck_assert(line[10]);
	ck_assert(!line[11]);
	/* A second source on the same PIRQ: the line stays high until both
	 * let go. */
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, true);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, false);
	ck_assert(line[17] && line[10]);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, false);
	ck_assert(!line[17] && !line[10]);
	/* A lowered line lowered again stays low (no underflow). */
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, false);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, true);
	ck_assert(line[17] && line[10]);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, false);
	/* PIRQA and PIRQB share IRQ 10: either holds it. */
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 0, true);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, true);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 0, false);
	ck_assert(line[10] && !line[16] && line[17]);
	/* Disabling the route drops the ISA line, the IOAPIC pin stays. */
	cfg_write(1, 0x61, 1, 0x8A);
	ck_assert(!line[10] && line[17]);
	/* Reserved ISA IRQs (0-2, 8, 13) are never driven. */
	cfg_write(1, 0x61, 1, 0x02);
	ck_assert(!line[2]);
	cfg_write(1, 0x61, 1, 0x0D);
	ck_assert(!line[13]);
	cfg_write(1, 0x61, 1, 0x0F);
	ck_assert(line[15]);
	/* Reset: routes back to 0x80, the ISA line falls. */
	pci_host__reset(&host);
	ck_assert(!line[15] && line[17]);
	irq_sink__set(&intx, PCI_PIRQ_GSI0 + 1, false);
	ck_assert(!line[17]);
	/* Other GSIs pass through untouched. */
	irq_sink__set(&intx, 4, true);
	ck_assert(line[4]);
	irq_sink__set(&intx, 20, true);
	ck_assert(line[20]);
}
END_TEST

static Suite *pci_suite(void)
{
	Suite *s = suite_create("pci_host");
	TCase *tc = tcase_create("pci_host");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_address);
	tcase_add_test(tc, test_builtin_bridges);
	tcase_add_test(tc, test_missing_devices);
	tcase_add_test(tc, test_bar_sizing);
	tcase_add_test(tc, test_reset_register);
	tcase_add_test(tc, test_qemu_ids_and_swizzle);
	tcase_add_test(tc, test_pirq_routing);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pci_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
