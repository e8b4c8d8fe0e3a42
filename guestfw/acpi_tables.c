/* The tables between the RSDP and the XSDT/RSDT, each built on the layout
 * engine of acpi.c: FACS, DSDT (acpi_dsdt.c), FADT, MADT, SRAT and SLIT
 * (bodies from acpi_numa.c), and the checks of the configuration they
 * describe. */
#include <string.h>

#include "guestfw/acpi_numa.h"
#include "guestfw/acpi_priv.h"
#include "vmm/bytes.h"
#include "vmm/guest_mem.h"

static uint32_t apic_id_of(const struct acpi_config *cfg, unsigned i)
{
	return cfg->apic_ids ? cfg->apic_ids[i] : i;
}

/* xAPIC entries need an 8-bit APIC ID and processor UID below 0xFF (0xFF
 * means "all processors" in the NMI entry); anything else is x2APIC. */
static bool uses_xapic_entry(const struct acpi_config *cfg, unsigned i)
{
	return i < 0xFF && apic_id_of(cfg, i) < 0xFF;
}

int acpi_tables__check(struct acpi_builder *b)
{
	const struct acpi_config *cfg = b->cfg;
	uint8_t used[32] = { 0 }; /* xAPIC IDs in use, bitmap */

	if (cfg->nr_vcpus < 1 || cfg->nr_vcpus > ACPI_MAX_VCPUS)
		return acpi__fail(b, "acpi: %u vCPUs, must be 1-%u",
				  cfg->nr_vcpus, ACPI_MAX_VCPUS);
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		uint32_t id = apic_id_of(cfg, i);

		if (id == 0xFFFFFFFFu)
			return acpi__fail(b, "acpi: vCPU %u has APIC ID "
					  "0xFFFFFFFF", i);
		for (unsigned j = 0; j < i; j++) {
			if (apic_id_of(cfg, j) != id)
				continue;
			return acpi__fail(b, "acpi: vCPUs %u and %u share "
					  "APIC ID %u", j, i, id);
		}
		if (uses_xapic_entry(cfg, i))
			used[id / 8] |= (uint8_t)(1u << (id % 8));
	}
	if (cfg->ioapic_id == ACPI_IOAPIC_ID_AUTO) {
		/* With all 255 xAPIC IDs taken there is no free one; then the
		 * machine is x2APIC-sized and IOAPIC IDs are a separate
		 * namespace anyway, so 0 is harmless. */
		b->ioapic_id = 0;
		for (unsigned id = 0; id < 0xFF; id++) {
			if (!(used[id / 8] & (1u << (id % 8)))) {
				b->ioapic_id = (uint8_t)id;
				break;
			}
		}
	} else if (cfg->ioapic_id < 0 || cfg->ioapic_id > 0xFE) {
		return acpi__fail(b, "acpi: IOAPIC ID %d, must be 0-254",
				  cfg->ioapic_id);
	} else if (used[cfg->ioapic_id / 8] & (1u << (cfg->ioapic_id % 8))) {
		return acpi__fail(b, "acpi: IOAPIC ID %d is also a LAPIC ID",
				  cfg->ioapic_id);
	} else {
		b->ioapic_id = (uint8_t)cfg->ioapic_id;
	}
	if (cfg->pci_hole_start < 0x100000 ||
	    cfg->pci_hole_start > ACPI_PCI_HOLE_END)
		return acpi__fail(b, "acpi: PCI hole start 0x%llx outside "
				  "1 MiB-0x%x",
				  (unsigned long long)cfg->pci_hole_start,
				  ACPI_PCI_HOLE_END);
	if (cfg->pci_mem64_size &&
	    (cfg->pci_mem64_start < GUEST_HIGH_RAM_START ||
	     cfg->pci_mem64_start + cfg->pci_mem64_size - 1 <
	     cfg->pci_mem64_start))
		return acpi__fail(b, "acpi: bad 64-bit PCI window "
				  "0x%llx+0x%llx",
				  (unsigned long long)cfg->pci_mem64_start,
				  (unsigned long long)cfg->pci_mem64_size);
	/* A flat layout is checked too: it still has to match the machine. */
	if (cfg->numa && acpi_numa__check(cfg->numa, cfg->nr_vcpus, b->err,
					  b->errlen))
		return -1;
	return 0;
}

static int build_facs(struct acpi_builder *b)
{
	/* 64-byte aligned, no checksum; only the OS writes it. */
	uint8_t *t = acpi_blob__begin(b, "FACS", 64, 64);

	if (!t)
		return -1;
	memcpy(t, "FACS", 4);
	put_le32(t + 4, 64);
	t[32] = 2; /* version */
	return 0;
}

static int build_dsdt(struct acpi_builder *b)
{
	struct aml_buf aml;

	if (!acpi_sdt__begin(b, "DSDT", 2)) /* revision 2: 64-bit integers */
		return -1;
	aml__init(&aml, b->buf + b->len, b->cap - b->len);
	if (acpi__dsdt_aml(b->cfg, &aml) < 0)
		return aml.error ? acpi__too_small(b) :
		       acpi__fail(b, "acpi: cannot build the DSDT");
	b->len += aml.len;
	b->out->blob[b->cur].len += (uint32_t)aml.len;
	return acpi_sdt__end(b);
}

#define GAS_SYSTEM_IO 1
#define GAS_ACCESS_BYTE 1
#define GAS_ACCESS_WORD 2
#define GAS_ACCESS_DWORD 3

static void gas(uint8_t *p, uint8_t bytes, uint8_t access, uint64_t addr)
{
	p[0] = GAS_SYSTEM_IO;
	p[1] = (uint8_t)(bytes * 8);
	p[2] = 0;
	p[3] = access;
	put_le64(p + 4, addr);
}

/* A fixed-hardware block in both FADT forms: 32-bit port + length byte
 * and the X_ Generic Address Structure, which must agree. */
static void fadt_block(uint8_t *t, unsigned off32, unsigned off_len,
		       unsigned off_x, uint16_t port, uint8_t len,
		       uint8_t access)
{
	put_le32(t + off32, port);
	t[off_len] = len;
	gas(t + off_x, len, access, port);
}

#define FADT_LEN 276 /* revision 6 */
#define FADT_F_WBINVD (1u << 0)
#define FADT_F_PROC_C1 (1u << 2)
#define FADT_F_PWR_BUTTON (1u << 4)
#define FADT_F_SLP_BUTTON (1u << 5)
#define FADT_F_TMR_VAL_EXT (1u << 8)
#define FADT_F_RESET_REG_SUP (1u << 10)
#define IAPC_LEGACY_DEVICES (1u << 0)
#define IAPC_8042 (1u << 1)
#define IAPC_VGA_NOT_PRESENT (1u << 2)

static int build_fadt(struct acpi_builder *b)
{
	const struct acpi_config *cfg = b->cfg;
	int facs = acpi__find_blob(b->out, "FACS");
	int dsdt = acpi__find_blob(b->out, "DSDT");
	uint8_t *t = acpi_sdt__begin(b, "FACP", 6);

	if (!t || !acpi_blob__grow(b, FADT_LEN - SDT_HDR_LEN))
		return -1;
	size_t o = b->out->blob[b->cur].offset;

	/* The spec wants exactly one of FIRMWARE_CTRL and X_FIRMWARE_CTRL
	 * non-zero (ACPICA installs the FACS once per field); DSDT and
	 * X_DSDT may both be set and must then agree. */
	if (acpi_fixup__pointer(b, o + 36, 4, facs) ||
	    acpi_fixup__pointer(b, o + 40, 4, dsdt) ||
	    acpi_fixup__pointer(b, o + 140, 8, dsdt))
		return -1;
	put_le16(t + 46, ACPI_SCI_IRQ);
	/* SMI_CMD (48), ACPI_ENABLE/DISABLE stay 0: always in ACPI mode. */
	fadt_block(t, 56, 88, 148, ACPI_PM1A_EVT_PORT, ACPI_PM1A_EVT_LEN,
		   GAS_ACCESS_WORD);
	fadt_block(t, 64, 89, 172, ACPI_PM1A_CNT_PORT, ACPI_PM1A_CNT_LEN,
		   GAS_ACCESS_WORD);
	fadt_block(t, 76, 91, 208, ACPI_PM_TMR_PORT, ACPI_PM_TMR_LEN,
		   GAS_ACCESS_DWORD);
	fadt_block(t, 80, 92, 220, ACPI_GPE0_PORT, ACPI_GPE0_LEN,
		   GAS_ACCESS_BYTE);
	/* Latencies above 100/1000 us say "no C2/C3". */
	put_le16(t + 96, 0x0FFF);
	put_le16(t + 98, 0x0FFF);
	t[108] = cfg->rtc_century;
	put_le16(t + 109, (uint16_t)(IAPC_LEGACY_DEVICES | IAPC_8042 |
				     (cfg->vga ? 0 : IAPC_VGA_NOT_PRESENT)));
	put_le32(t + 112, FADT_F_WBINVD | FADT_F_PROC_C1 | FADT_F_SLP_BUTTON |
			  FADT_F_TMR_VAL_EXT | FADT_F_RESET_REG_SUP |
			  (cfg->power_button ? 0 : FADT_F_PWR_BUTTON));
	gas(t + 116, 1, GAS_ACCESS_BYTE, ACPI_RESET_PORT);
	t[128] = ACPI_RESET_VALUE;
	t[131] = 0; /* FADT minor version: ACPI 6.0 */
	return acpi_sdt__end(b);
}

static uint8_t *madt_entry(struct acpi_builder *b, uint8_t type, uint8_t len)
{
	uint8_t *e = acpi_blob__grow(b, len);

	if (e) {
		e[0] = type;
		e[1] = len;
	}
	return e;
}

#define MADT_PCAT_COMPAT 1u
#define MADT_LAPIC_ENABLED 1u
#define MPS_INTI_ACTIVE_HIGH 0x1
#define MPS_INTI_LEVEL 0xC

static int build_madt(struct acpi_builder *b)
{
	const struct acpi_config *cfg = b->cfg;
	uint8_t *t = acpi_sdt__begin(b, "APIC", 4);
	bool any_x2apic = false;
	uint8_t *e;

	if (!t || !acpi_blob__grow(b, 8))
		return -1;
	put_le32(t + 36, ACPI_LAPIC_GPA);
	put_le32(t + 40, MADT_PCAT_COMPAT);
	/* vCPU 0 first: the boot processor. */
	for (unsigned i = 0; i < cfg->nr_vcpus; i++) {
		uint32_t id = apic_id_of(cfg, i);

		if (uses_xapic_entry(cfg, i)) {
			if (!(e = madt_entry(b, 0, 8)))
				return -1;
			e[2] = (uint8_t)i;
			e[3] = (uint8_t)id;
			put_le32(e + 4, MADT_LAPIC_ENABLED);
		} else {
			if (!(e = madt_entry(b, 9, 16)))
				return -1;
			put_le32(e + 4, id);
			put_le32(e + 8, MADT_LAPIC_ENABLED);
			put_le32(e + 12, i);
			any_x2apic = true;
		}
	}
	if (!(e = madt_entry(b, 1, 12)))
		return -1;
	e[2] = b->ioapic_id;
	put_le32(e + 4, ACPI_IOAPIC_GPA);
	put_le32(e + 8, 0); /* GSI base */
	/* The PIT's IRQ0 is wired to IOAPIC pin 2; flags 0 = ISA default
	 * (edge, active high). */
	if (!(e = madt_entry(b, 2, 10)))
		return -1;
	e[3] = 0;
	put_le32(e + 4, 2);
	if (!(e = madt_entry(b, 2, 10)))
		return -1;
	e[3] = ACPI_SCI_IRQ;
	put_le32(e + 4, ACPI_SCI_IRQ);
	put_le16(e + 8, MPS_INTI_ACTIVE_HIGH | MPS_INTI_LEVEL);
	/* NMI on LINT1 of every processor. */
	if (!(e = madt_entry(b, 4, 6)))
		return -1;
	e[2] = 0xFF;
	e[5] = 1;
	if (any_x2apic) {
		if (!(e = madt_entry(b, 0x0A, 12)))
			return -1;
		put_le32(e + 4, 0xFFFFFFFFu);
		e[8] = 1;
	}
	return acpi_sdt__end(b);
}

/* SRAT and SLIT: header here like every table's, body from acpi_numa.c.
 * Without NUMA they are not built at all, so the other tables keep the
 * same bytes and addresses. */
static int build_srat(struct acpi_builder *b)
{
	const struct acpi_config *cfg = b->cfg;
	size_t len;
	uint8_t *body;

	if (!acpi_numa__enabled(cfg->numa))
		return 0;
	len = acpi_numa__srat_body_len(cfg->numa, cfg->apic_ids);
	if (!acpi_sdt__begin(b, "SRAT", ACPI_SRAT_REVISION) ||
	    !(body = acpi_blob__grow(b, len)))
		return -1;
	acpi_numa__srat_body(cfg->numa, cfg->apic_ids, body);
	return acpi_sdt__end(b);
}

static int build_slit(struct acpi_builder *b)
{
	const struct acpi_config *cfg = b->cfg;
	uint8_t *body;

	if (!acpi_numa__enabled(cfg->numa))
		return 0;
	if (!acpi_sdt__begin(b, "SLIT", ACPI_SLIT_REVISION) ||
	    !(body = acpi_blob__grow(b, acpi_numa__slit_body_len(cfg->numa))))
		return -1;
	acpi_numa__slit_body(cfg->numa, body);
	return acpi_sdt__end(b);
}

/* Tables other than the RSDP/XSDT/RSDT, in layout order; `listed` ones go
 * into the XSDT.  A builder may add no table (SRAT/SLIT without NUMA). */
static const struct {
	const char *sig;
	bool listed;
	int (*build)(struct acpi_builder *b);
} tables[] = {
	{ "FACS", false, build_facs },
	{ "DSDT", false, build_dsdt },
	{ "FACP", true, build_fadt },
	{ "APIC", true, build_madt },
	{ "SRAT", true, build_srat },
	{ "SLIT", true, build_slit },
};

int acpi_tables__build(struct acpi_builder *b)
{
	for (size_t i = 0; i < sizeof(tables) / sizeof(tables[0]); i++) {
		unsigned before = b->out->nr_blobs;

		if (tables[i].build(b))
			return -1;
		if (b->out->nr_blobs != before)
			b->listed[b->cur] = tables[i].listed;
	}
	return 0;
}
