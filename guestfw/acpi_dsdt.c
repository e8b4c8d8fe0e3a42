/* The DSDT's AML: sleep states, the PCI root bridge and the legacy ISA
 * devices the VMM emulates.  Everything is a static Name(): no _CRS or _STA
 * methods, because the guest's AML interpreter runs in emulated kernel mode
 * on PVM and every evaluated method costs real time. */
#include "guestfw/acpi.h"

/* Name(path, Package(4){typ, typ, 0, 0}): SLP_TYP for PM1a and PM1b. */
static void sleep_state(struct aml_buf *a, const char *name, uint8_t typ)
{
	aml__name(a, name);
	aml__package_begin(a, 4);
	aml__integer(a, typ);
	aml__integer(a, typ);
	aml__integer(a, 0);
	aml__integer(a, 0);
	aml__end(a);
}

static void pci_root_crs(const struct acpi_config *cfg, struct aml_buf *a)
{
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_word_bus(a, 0x00, 0xFF);
	/* The config-address/data ports belong to the bridge itself. */
	aml__rt_io(a, 0x0CF8, 0x0CF8, 0x01, 0x08);
	aml__rt_word_io(a, 0x0000, 0x0CF7);
	aml__rt_word_io(a, 0x0D00, 0xFFFF);
	aml__rt_dword_mem(a, (uint32_t)cfg->pci_hole_start, ACPI_PCI_HOLE_END);
	if (cfg->pci_mem64_size) {
		uint64_t start = cfg->pci_mem64_start;

		aml__rt_qword_mem(a, start, start + cfg->pci_mem64_size - 1);
	}
	aml__rt_end(a);
}

/* Static INTx routing in GSI form (Source = 0): one entry per slot and
 * pin, with the i440FX swizzle (PIRQ (slot - 1 + pin) % 4, what SeaBIOS
 * writes into PCI_INTERRUPT_LINE too) so that single-function devices in
 * consecutive slots spread over the four lines. */
static void pci_root_prt(const struct acpi_config *cfg, struct aml_buf *a)
{
	aml__name(a, "_PRT");
	aml__package_begin(a, 31 * 4);
	for (unsigned slot = 1; slot < 32; slot++) {
		for (unsigned pin = 0; pin < 4; pin++) {
			aml__package_begin(a, 4);
			aml__integer(a, ((uint64_t)slot << 16) | 0xFFFF);
			aml__integer(a, pin);
			aml__integer(a, 0);
			aml__integer(a,
				     cfg->pci_intx_gsi[(slot - 1 + pin) % 4]);
			aml__end(a);
		}
	}
	aml__end(a);
}

static void device_hid(struct aml_buf *a, const char *name, const char *hid)
{
	aml__device_begin(a, name);
	aml__name(a, "_HID");
	aml__eisaid(a, hid);
}

static void isa_devices(struct aml_buf *a)
{
	device_hid(a, "COM1", "PNP0501");
	aml__name(a, "_UID");
	aml__integer(a, 1);
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_io(a, 0x3F8, 0x3F8, 0x01, 0x08);
	aml__rt_irq_noflags(a, 4);
	aml__rt_end(a);
	aml__end(a);

	device_hid(a, "RTC", "PNP0B00");
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_io(a, 0x70, 0x70, 0x01, 0x02);
	aml__rt_irq_noflags(a, 8);
	aml__rt_end(a);
	aml__end(a);

	device_hid(a, "KBD", "PNP0303");
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_io(a, 0x60, 0x60, 0x01, 0x01);
	aml__rt_io(a, 0x64, 0x64, 0x01, 0x01);
	aml__rt_irq_noflags(a, 1);
	aml__rt_end(a);
	aml__end(a);

	device_hid(a, "PIC", "PNP0000");
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_io(a, 0x20, 0x20, 0x01, 0x02);
	aml__rt_io(a, 0xA0, 0xA0, 0x01, 0x02);
	aml__rt_end(a);
	aml__end(a);

	device_hid(a, "TIMR", "PNP0100");
	aml__name(a, "_CRS");
	aml__rt_begin(a);
	aml__rt_io(a, 0x40, 0x40, 0x01, 0x04);
	aml__rt_irq_noflags(a, 0);
	aml__rt_end(a);
	aml__end(a);
}

int acpi__dsdt_aml(const struct acpi_config *cfg, struct aml_buf *a)
{
	if (cfg->pci_hole_start > ACPI_PCI_HOLE_END)
		return -1;
	if (cfg->pci_mem64_size &&
	    cfg->pci_mem64_start + cfg->pci_mem64_size - 1 <
	    cfg->pci_mem64_start)
		return -1;

	sleep_state(a, "_S0", ACPI_SLP_TYP_S0);
	sleep_state(a, "_S5", ACPI_SLP_TYP_S5);

	aml__scope_begin(a, "\\_SB");
	device_hid(a, "PCI0", "PNP0A03");
	aml__name(a, "_ADR");
	aml__integer(a, 0);
	aml__name(a, "_UID");
	aml__integer(a, 0);
	aml__name(a, "_BBN");
	aml__integer(a, 0);
	pci_root_crs(cfg, a);
	if (cfg->pci_prt)
		pci_root_prt(cfg, a);
	/* The ISA devices decode inside the bridge's I/O window, so they
	 * sit below it (like an LPC bridge's children, without the bridge). */
	isa_devices(a);
	aml__end(a); /* PCI0 */
	aml__end(a); /* \_SB */

	return aml__finish(a);
}
