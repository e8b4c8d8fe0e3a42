/* virtio-pci transport: config space layout and capabilities, BAR sizing
 * and placement through the PCI window, common configuration decoding,
 * MSI-X table/PBA and masking, INTx, the PCI configuration access
 * capability, MSI decoding, save/load. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/virtio_fake.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/pci_window.h"
#include "vmm/devices/virtio_pci.h"
#include "vmm/devices/virtio_pci_priv.h"

#define DEVFN PCI_DEVFN(3, 0)
#define GSI 19
#define WIN_BASE 0xC0000000ull
#define WIN_LEN 0x3EC00000ull
#define NQ 2

struct sent {
	int n;
	uint64_t addr;
	uint32_t data;
};

static struct fake_ram ram;
static struct virtio_dev vdev;
static struct virtio_pci vp;
static struct pci_host host;
static struct pci_window win;
static struct sent sent;
static bool line;
static int line_changes, resets;

static void msi_send(void *ctx, uint64_t addr, uint32_t data)
{
	struct sent *s = ctx;

	s->n++;
	s->addr = addr;
	s->data = data;
}

static void set_level(void *ctx, unsigned gsi, bool level)
{
	ck_assert_uint_eq(gsi, GSI);
	line = level;
	line_changes++;
}

static void on_reset(void *ctx)
{
	resets++;
}

static void cfg_read_dev(struct virtio_dev *d, uint32_t off, uint8_t *data,
			 uint32_t len)
{
	for (uint32_t i = 0; i < len; i++)
		data[i] = (uint8_t)(0xA0 + off + i);
}

static const struct virtio_dev_ops ops = { .config_read = cfg_read_dev };

static void setup(void)
{
	struct virtio_pci_env env = {
		.irq = { set_level, NULL },
		.intx_gsi = GSI,
		.msi = { msi_send, &sent },
		.window = &win,
		.reset = on_reset,
	};
	char err[128];

	memset(&sent, 0, sizeof(sent));
	line = false;
	line_changes = resets = 0;
	fake_ram_init(&ram, 1 << 20);
	ck_assert_int_eq(virtio_dev__init(&vdev, "vtest", &ops, 0, NQ, 16,
					  fake_ram_mem(&ram)), 0);
	vdev.device_id = 2;
	vdev.config_len = 60;
	pci_window__init(&win, WIN_BASE, WIN_LEN);
	pci_host__init(&host, NULL);
	ck_assert_int_eq(virtio_pci__init(&vp, &vdev, &env, err, sizeof(err)),
			 0);
	ck_assert_int_eq(pci_host__add_device(&host, DEVFN,
					      virtio_pci__pci_dev(&vp)), 0);
}

static void teardown(void)
{
	virtio_pci__destroy(&vp);
	pci_host__destroy(&host);
	pci_window__destroy(&win);
	virtio_dev__destroy(&vdev);
	free(ram.base);
}

static uint32_t cfg(uint32_t reg, uint32_t len)
{
	return pci_host__config_read(&host, 0, DEVFN, reg, len);
}

static void cfg_w(uint32_t reg, uint32_t len, uint32_t v)
{
	pci_host__config_write(&host, 0, DEVFN, reg, len, v);
}

static uint64_t bar_rd(uint32_t off, uint32_t len)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	virtio_pci__bar_io(&vp, off, d, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void bar_wr(uint32_t off, uint32_t len, uint64_t v)
{
	uint8_t d[8];

	for (uint32_t i = 0; i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	virtio_pci__bar_io(&vp, off, d, len, true);
}

static uint64_t win_rd(uint64_t addr, uint32_t len, bool *hit)
{
	uint8_t d[8] = { 0 };
	uint64_t v = 0;

	*hit = pci_window__dispatch(&win, addr, d, len, false);
	for (uint32_t i = 0; i < len; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

START_TEST(test_header_and_caps)
{
	unsigned cap, n = 0, seen = 0;

	ck_assert_uint_eq(cfg(PCI_CFG_VENDOR_ID, 2), 0x1AF4);
	ck_assert_uint_eq(cfg(PCI_CFG_DEVICE_ID, 2), 0x1042);
	ck_assert_uint_eq(cfg(PCI_CFG_REVISION, 1), 1);
	ck_assert_uint_eq(cfg(PCI_CFG_SUBSYS_VENDOR, 2), 0x1AF4);
	ck_assert_uint_eq(cfg(PCI_CFG_SUBSYS_ID, 2), 0x1100);
	ck_assert_uint_eq(cfg(PCI_CFG_CLASS_PROG + 1, 2), 0x0100);
	ck_assert_uint_eq(cfg(PCI_CFG_INT_PIN, 1), 1);
	ck_assert_uint_eq(cfg(PCI_CFG_INT_LINE, 1), GSI);
	ck_assert(cfg(PCI_CFG_STATUS, 2) & PCI_STATUS_CAP_LIST);
	for (cap = cfg(PCI_CFG_CAP_PTR, 1); cap; cap = cfg(cap + 1, 1)) {
		ck_assert_uint_lt(++n, 10);
		ck_assert_uint_ge(cap, 0x40);
		ck_assert_uint_eq(cap & 3, 0);
		if (cfg(cap, 1) == PCI_CAP_ID_MSIX) {
			ck_assert_uint_eq(cfg(cap + 2, 2) & 0x7FF, NQ);
			ck_assert_uint_eq(cfg(cap + 4, 4), 0x4000);
			ck_assert_uint_eq(cfg(cap + 8, 4), 0x5000);
			seen |= 1u << 6;
			continue;
		}
		ck_assert_uint_eq(cfg(cap, 1), PCI_CAP_ID_VNDR);
		ck_assert_uint_eq(cfg(cap + 4, 1), 0);
		switch (cfg(cap + 3, 1)) {
		case 1:
			ck_assert_uint_eq(cfg(cap + 2, 1), 16);
			ck_assert_uint_eq(cfg(cap + 8, 4), 0);
			ck_assert_uint_eq(cfg(cap + 12, 4), 0x38);
			break;
		case 2:
			ck_assert_uint_eq(cfg(cap + 2, 1), 20);
			ck_assert_uint_eq(cfg(cap + 8, 4), 0x3000);
			ck_assert_uint_eq(cfg(cap + 12, 4), NQ * 4);
			ck_assert_uint_eq(cfg(cap + 16, 4), 4);
			break;
		case 3:
			ck_assert_uint_eq(cfg(cap + 8, 4), 0x1000);
			break;
		case 4:
			ck_assert_uint_eq(cfg(cap + 8, 4), 0x2000);
			ck_assert_uint_eq(cfg(cap + 12, 4), 60);
			break;
		case 5:
			ck_assert_uint_eq(cfg(cap + 2, 1), 20);
			break;
		default:
			ck_abort_msg("unknown virtio cap type");
		}
		seen |= 1u << cfg(cap + 3, 1);
	}
	ck_assert_uint_eq(seen, 0x7E);
}
END_TEST

START_TEST(test_bar_sizing_and_window)
{
	bool hit;

	ck_assert_uint_eq(cfg(PCI_CFG_BAR0, 4), 0x4);
	cfg_w(PCI_CFG_BAR0, 4, 0xFFFFFFFF);
	cfg_w(PCI_CFG_BAR0 + 4, 4, 0xFFFFFFFF);
	ck_assert_uint_eq(cfg(PCI_CFG_BAR0, 4), 0xFFFF8004);
	ck_assert_uint_eq(cfg(PCI_CFG_BAR0 + 4, 4), 0xFFFFFFFF);
	/* Not decoded: memory decoding is off. */
	cfg_w(PCI_CFG_BAR0, 4, 0xE0000000);
	cfg_w(PCI_CFG_BAR0 + 4, 4, 0);
	win_rd(0xE0000000 + 0x12, 2, &hit);
	ck_assert(!hit);
	cfg_w(PCI_CFG_COMMAND, 2, PCI_COMMAND_MEMORY);
	ck_assert_uint_eq(win_rd(0xE0000000 + 0x12, 2, &hit), NQ);
	ck_assert(hit);
	/* Moving it: the old place decodes nothing, the new one does. */
	cfg_w(PCI_CFG_BAR0, 4, 0xE0010000);
	win_rd(0xE0000000 + 0x12, 2, &hit);
	ck_assert(!hit);
	ck_assert_uint_eq(win_rd(0xE0010000 + 0x12, 2, &hit), NQ);
	ck_assert(hit);
	/* An access crossing the BAR's end is not decoded. */
	win_rd(0xE0010000 + 0x7FFC, 8, &hit);
	ck_assert(!hit);
	/* Above 4 GiB: outside the window, refused. */
	cfg_w(PCI_CFG_BAR0 + 4, 4, 1);
	win_rd(0x1E0010000ull + 0x12, 2, &hit);
	ck_assert(!hit);
	ck_assert_uint_ge(win.refused, 1);
	cfg_w(PCI_CFG_BAR0 + 4, 4, 0);
	ck_assert_uint_eq(win_rd(0xE0010000 + 0x12, 2, &hit), NQ);
	cfg_w(PCI_CFG_COMMAND, 2, 0);
	win_rd(0xE0010000 + 0x12, 2, &hit);
	ck_assert(!hit);
}
END_TEST

START_TEST(test_common_cfg)
{
	ck_assert_uint_eq(bar_rd(0x12, 2), NQ);
	bar_wr(0x00, 4, 1);
	ck_assert_uint_eq(bar_rd(0x04, 4), 1); /* VERSION_1 is bit 32 */
	bar_wr(0x16, 2, 1);                    /* queue_select 1 */
	ck_assert_uint_eq(bar_rd(0x18, 2), 16);
	ck_assert_uint_eq(bar_rd(0x1E, 2), 1); /* notify_off = index */
	bar_wr(0x20, 8, 0x123456789000ull);
	ck_assert_uint_eq(bar_rd(0x20, 8), 0x123456789000ull);
	bar_wr(0x28, 4, 0xABC000);
	bar_wr(0x2C, 4, 0x1);
	ck_assert_uint_eq(bar_rd(0x28, 8), 0x100ABC000ull);
	ck_assert_uint_eq(bar_rd(0x2C, 4), 1);
	/* A write of the wrong width is ignored. */
	bar_wr(0x18, 1, 4);
	ck_assert_uint_eq(bar_rd(0x18, 2), 16);
	/* Queue vectors beyond the table read back as NO_VECTOR. */
	bar_wr(0x1A, 2, NQ + 1);
	ck_assert_uint_eq(bar_rd(0x1A, 2), 0xFFFF);
	bar_wr(0x1A, 2, NQ);
	ck_assert_uint_eq(bar_rd(0x1A, 2), NQ);
	/* Device config and a reset. */
	ck_assert_uint_eq(bar_rd(0x2000 + 3, 1), 0xA3);
	bar_wr(0x14, 1, 1);
	ck_assert_uint_eq(bar_rd(0x14, 1), 1);
	bar_wr(0x14, 1, 0);
	ck_assert_uint_eq(bar_rd(0x14, 1), 0);
	ck_assert_int_eq(resets, 1);
	/* Out of the BAR: all ones, no crash. */
	ck_assert_uint_eq(bar_rd(0x7FFE, 4), 0xFFFFFFFF);
}
END_TEST

static void msix_enable(uint16_t extra)
{
	cfg_w(VIRTIO_PCI_CAP_MSIX + 2, 2, PCI_MSIX_ENABLE | extra);
}

static void program_vector(unsigned v, uint64_t addr, uint32_t data,
			   bool masked)
{
	uint32_t e = VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v;

	bar_wr(e, 8, addr);
	bar_wr(e + 8, 4, data);
	bar_wr(e + 12, 4, masked ? 1 : 0);
}

START_TEST(test_msix_table)
{
	uint32_t e1 = VIRTIO_PCI_MSIX_TABLE_OFF + 16;

	/* Every vector starts masked. */
	for (unsigned v = 0; v <= NQ; v++)
		ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_TABLE_OFF + 16 * v + 12,
					 4), 1);
	program_vector(1, 0xFEE01000, 0x4031, true);
	ck_assert_uint_eq(bar_rd(e1, 4), 0xFEE01000);
	ck_assert_uint_eq(bar_rd(e1, 8), 0xFEE01000);
	ck_assert_uint_eq(bar_rd(e1 + 8, 4), 0x4031);
	/* Reserved vector control bits read 0. */
	bar_wr(e1 + 12, 4, 0xFFFFFFFF);
	ck_assert_uint_eq(bar_rd(e1 + 12, 4), 1);
	/* Beyond the table: reads 0, writes go nowhere. */
	bar_wr(VIRTIO_PCI_MSIX_TABLE_OFF + 16 * (NQ + 1), 4, 0x55);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_TABLE_OFF + 16 * (NQ + 1), 4),
			  0);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA_OFF, 8), 0);
}
END_TEST

START_TEST(test_msix_masking)
{
	bar_wr(0x16, 2, 0);
	bar_wr(0x1A, 2, 1); /* queue 0 -> vector 1 */
	program_vector(1, 0xFEE02000, 0x0041, true);
	msix_enable(0);

	/* Vector masked: pending, nothing sent. */
	virtio_pci__queue_irq(&vp, 0);
	ck_assert_int_eq(sent.n, 0);
	ck_assert(virtio_pci__msix_pending(&vp, 1));
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA_OFF, 4), 0x2);
	/* Unmasking sends it and clears the bit. */
	bar_wr(VIRTIO_PCI_MSIX_TABLE_OFF + 16 + 12, 4, 0);
	ck_assert_int_eq(sent.n, 1);
	ck_assert_uint_eq(sent.addr, 0xFEE02000);
	ck_assert_uint_eq(sent.data, 0x41);
	ck_assert(!virtio_pci__msix_pending(&vp, 1));
	/* Unmasked: straight out. */
	virtio_pci__queue_irq(&vp, 0);
	ck_assert_int_eq(sent.n, 2);
	/* Function mask holds it; clearing the mask releases it. */
	msix_enable(PCI_MSIX_MASKALL);
	virtio_pci__queue_irq(&vp, 0);
	ck_assert_int_eq(sent.n, 2);
	ck_assert(virtio_pci__msix_pending(&vp, 1));
	msix_enable(0);
	ck_assert_int_eq(sent.n, 3);
	ck_assert(!virtio_pci__msix_pending(&vp, 1));
	/* NO_VECTOR: no interrupt at all, no pending bit. */
	bar_wr(0x1A, 2, 0xFFFF);
	virtio_pci__queue_irq(&vp, 0);
	ck_assert_int_eq(sent.n, 3);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_PBA_OFF, 4), 0);
	/* MSI-X on: INTx never moves. */
	ck_assert_int_eq(line_changes, 0);
}
END_TEST

START_TEST(test_intx)
{
	vdev.s.isr = VIRTIO_ISR_QUEUE;
	virtio_pci__queue_irq(&vp, 0);
	ck_assert(line);
	ck_assert(cfg(PCI_CFG_STATUS, 2) & PCI_STATUS_INTX);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR_OFF, 1), VIRTIO_ISR_QUEUE);
	ck_assert(!line);
	ck_assert(!(cfg(PCI_CFG_STATUS, 2) & PCI_STATUS_INTX));
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_ISR_OFF, 1), 0);
	/* INTx disabled in the command register: the line stays low, and
	 * comes up when it is allowed again. */
	vdev.s.isr = VIRTIO_ISR_CONFIG;
	cfg_w(PCI_CFG_COMMAND, 2, PCI_COMMAND_INTX_DISABLE);
	virtio_pci__config_irq(&vp);
	ck_assert(!line);
	cfg_w(PCI_CFG_COMMAND, 2, 0);
	ck_assert(line);
	/* Enabling MSI-X drops it. */
	msix_enable(0);
	ck_assert(!line);
}
END_TEST

START_TEST(test_pci_cfg_access)
{
	uint32_t c = VIRTIO_PCI_CAP_PCI_CFG;

	cfg_w(c + 4, 1, 0);
	cfg_w(c + 8, 4, 0x12);
	cfg_w(c + 12, 4, 2);
	ck_assert_uint_eq(cfg(c + 16, 2), NQ);
	/* queue_select through the window */
	cfg_w(c + 8, 4, 0x16);
	cfg_w(c + 16, 2, 1);
	ck_assert_uint_eq(bar_rd(0x16, 2), 1);
	/* A bad length or a misaligned offset does nothing. */
	cfg_w(c + 12, 4, 3);
	cfg_w(c + 16, 2, 0);
	ck_assert_uint_eq(bar_rd(0x16, 2), 1);
	cfg_w(c + 8, 4, 0xFFFFFFF0);
	cfg_w(c + 12, 4, 4);
	cfg(c + 16, 4);
}
END_TEST

START_TEST(test_msi_decode)
{
	struct apic_msg m;

	ck_assert_int_eq(virtio_pci__msi_to_apic(0xFEE03004, 0x8141, &m), 0);
	ck_assert_uint_eq(m.dest, 3);
	ck_assert_uint_eq(m.dest_logical, 1);
	ck_assert_uint_eq(m.vector, 0x41);
	ck_assert_uint_eq(m.delivery, APIC_DM_LOWEST);
	ck_assert_uint_eq(m.trigger_level, 1);
	ck_assert_int_eq(m.source, -1);
	ck_assert_int_eq(virtio_pci__msi_to_apic(0xFED00000, 0x41, &m), -1);
	ck_assert_int_eq(virtio_pci__msi_to_apic(0x1FEE00000ull, 0x41, &m),
			 -1);
}
END_TEST

START_TEST(test_save_load)
{
	struct state_writer *w = state_writer__new();
	struct state_reader *r;
	uint8_t *blob;
	size_t len;
	char err[256];

	program_vector(2, 0xFEE05000, 0x77, false);
	msix_enable(0);
	cfg_w(PCI_CFG_BAR0, 4, 0xE0000000);
	ck_assert_int_eq(virtio_pci__save(&vp, w, err, sizeof(err)), 0);
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);

	/* A fresh function takes it back. */
	teardown();
	setup();
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	ck_assert_int_eq(virtio_pci__load(&vp, r, err, sizeof(err)), 0);
	pci_host__post_load(&host);
	virtio_pci__post_load(&vp);
	ck_assert_uint_eq(cfg(PCI_CFG_BAR0, 4), 0xE0000004);
	ck_assert_uint_eq(bar_rd(VIRTIO_PCI_MSIX_TABLE_OFF + 32 + 8, 4), 0x77);
	bar_wr(0x16, 2, 0);
	bar_wr(0x1A, 2, 2);
	virtio_pci__queue_irq(&vp, 0);
	ck_assert_int_eq(sent.n, 1);
	ck_assert_uint_eq(sent.addr, 0xFEE05000);
	state_reader__free(r);

	/* A function with another layout (device id) refuses it. */
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	vp.s.config[PCI_CFG_DEVICE_ID] ^= 1;
	ck_assert_int_eq(virtio_pci__load(&vp, r, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "not this one"));
	vp.s.config[PCI_CFG_DEVICE_ID] ^= 1;
	state_reader__free(r);
	free(blob);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("virtio_pci");
	TCase *tc = tcase_create("transport");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_header_and_caps);
	tcase_add_test(tc, test_bar_sizing_and_window);
	tcase_add_test(tc, test_common_cfg);
	tcase_add_test(tc, test_msix_table);
	tcase_add_test(tc, test_msix_masking);
	tcase_add_test(tc, test_intx);
	tcase_add_test(tc, test_pci_cfg_access);
	tcase_add_test(tc, test_msi_decode);
	tcase_add_test(tc, test_save_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
