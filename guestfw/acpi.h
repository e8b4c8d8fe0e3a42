/* ACPI tables for the emulated PC: RSDP, XSDT/RSDT, FADT, FACS, DSDT, MADT
 * and, for a NUMA guest, SRAT and SLIT, built at start by a pure function
 * (no KVM) into a caller-owned buffer as they will appear at a given
 * guest-physical address.
 *
 * Besides the finished image, the builder reports every table as a blob
 * (offset, length, alignment), every pointer field between blobs and every
 * checksum.  That is what QEMU's fw_cfg "etc/table-loader" needs (ALLOCATE,
 * ADD_POINTER, ADD_CHECKSUM), so SeaBIOS can later place the same tables
 * itself: a pointer field holds gpa(target) = buf_gpa + blob[target].offset,
 * i.e. offset 0 within its target.
 *
 * The fixed hardware below is a contract with the device models: the ACPI
 * PM device and the reset port implement exactly these. */
#ifndef KRG_GUESTFW_ACPI_H
#define KRG_GUESTFW_ACPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guestfw/acpi_aml.h"

struct acpi_numa;

/* Fixed-feature hardware (I/O ports).  PM1a_EVT: STS at +0, EN at +2. */
#define ACPI_PM1A_EVT_PORT 0x600
#define ACPI_PM1A_EVT_LEN 4
#define ACPI_PM1A_CNT_PORT 0x604
#define ACPI_PM1A_CNT_LEN 2
#define ACPI_PM_TMR_PORT 0x608
#define ACPI_PM_TMR_LEN 4 /* 32-bit counter (FADT TMR_VAL_EXT) */
#define ACPI_GPE0_PORT 0x620
#define ACPI_GPE0_LEN 4   /* 2 bytes STS, then 2 bytes EN */
#define ACPI_SCI_IRQ 9    /* level, active high (MADT override) */
#define ACPI_RESET_PORT 0xCF9
#define ACPI_RESET_VALUE 0x06
/* PM1_CNT bits and the SLP_TYP values the DSDT's \_S0 and \_S5 name. */
#define ACPI_PM1_CNT_SCI_EN 0x0001
#define ACPI_PM1_CNT_SLP_TYP_SHIFT 10
#define ACPI_PM1_CNT_SLP_TYP_MASK 0x1C00
#define ACPI_PM1_CNT_SLP_EN 0x2000
#define ACPI_SLP_TYP_S0 0
#define ACPI_SLP_TYP_S5 5

#define ACPI_LAPIC_GPA 0xFEE00000u
#define ACPI_IOAPIC_GPA 0xFEC00000u
#define ACPI_PCI_HOLE_END 0xFEBFFFFFu /* last byte of the 32-bit window */
/* Where a legacy OS scans for "RSD PTR " (16-byte aligned). */
#define ACPI_RSDP_SCAN_START 0xE0000u
#define ACPI_RSDP_SCAN_END 0x100000u
#define ACPI_RSDP_LEN 36

#define ACPI_MAX_VCPUS 1024
#define ACPI_IOAPIC_ID_AUTO (-1)

struct acpi_config {
	unsigned nr_vcpus;
	/* nr_vcpus APIC IDs, or NULL for APIC ID = vCPU index.  vCPU i is
	 * ACPI processor UID i either way. */
	const uint32_t *apic_ids;
	/* 0-254 and no vCPU's xAPIC ID, or ACPI_IOAPIC_ID_AUTO: the lowest
	 * ID no LAPIC uses (the IOAPIC model must report the same ID: see
	 * acpi_layout.ioapic_id). */
	int ioapic_id;
	/* PCI root window for 32-bit BARs: [pci_hole_start, 0xFEBFFFFF]. */
	uint64_t pci_hole_start;
	/* Optional 64-bit BAR window; size 0 leaves it out. */
	uint64_t pci_mem64_start, pci_mem64_size;
	/* Optional static _PRT: INTx pin P (0=A) of slot S (1-31) goes to
	 * GSI pci_intx_gsi[(S - 1 + P) % 4] (PIRQ (S - 1 + P) % 4 of an
	 * i440FX/PIIX3, as SeaBIOS assumes), level/active low as PCI
	 * wants. */
	bool pci_prt;
	uint8_t pci_intx_gsi[4];
	/* The PM device implements the fixed power button (PM1 PWRBTN_STS/
	 * EN); otherwise the FADT says there is none. */
	bool power_button;
	/* CMOS index of the RTC century register, 0 if the RTC has none. */
	uint8_t rtc_century;
	/* A VGA is present (otherwise IAPC_BOOT_ARCH says "no VGA"). */
	bool vga;
	/* NUMA presentation (guestfw/acpi_numa.h): adds SRAT and SLIT unless
	 * NULL or its layout is flat.  The layout's vCPU count must equal
	 * nr_vcpus; the SRAT uses apic_ids like the MADT does. */
	const struct acpi_numa *numa;
};

#define ACPI_MAX_BLOBS 16
#define ACPI_MAX_POINTERS 48
#define ACPI_MAX_CHECKSUMS 20

struct acpi_blob {
	char sig[5];      /* table signature; "RSDP" for the RSDP */
	uint32_t offset;  /* in buf; gpa = buf_gpa + offset */
	uint32_t len;
	uint32_t align;   /* required alignment of its guest-physical address */
};

/* A field in blob `blob` at buf offset `offset` holding the guest-physical
 * address of blob `target`. */
struct acpi_pointer {
	uint32_t offset;
	uint8_t width;    /* 4 or 8 bytes, little endian */
	uint8_t blob;
	uint8_t target;
};

/* Byte at `offset` makes [start, start+len) sum to zero.  Apply in order:
 * the RSDP's extended checksum covers its first one. */
struct acpi_checksum {
	uint32_t offset;
	uint32_t start;
	uint32_t len;
	uint8_t blob;
};

struct acpi_layout {
	uint64_t rsdp_gpa;     /* for boot_params.acpi_rsdp_addr */
	uint32_t rsdp_offset;
	uint32_t size;         /* bytes of buf used (from offset 0) */
	uint8_t ioapic_id;     /* the IOAPIC ID the MADT announces */
	unsigned nr_blobs, nr_pointers, nr_checksums;
	struct acpi_blob blob[ACPI_MAX_BLOBS];
	struct acpi_pointer pointer[ACPI_MAX_POINTERS];
	struct acpi_checksum checksum[ACPI_MAX_CHECKSUMS];
};

/* Defaults: nr_vcpus vCPUs with APIC ID = index, IOAPIC ID auto, the PCI
 * hole from vmm/guest_mem.h, no 64-bit window, no _PRT. */
void acpi__config_init(struct acpi_config *cfg, unsigned nr_vcpus);

/* Lays all tables out in buf[0..buf_len) as they will appear at
 * guest-physical buf_gpa (so table pointers are gpa's; the whole buffer
 * must lie below 4 GiB for the 32-bit pointers).  Unused bytes of buf are
 * left untouched.  Returns 0, or -1 with a one-line reason in err (config
 * invalid, buffer too small). */
int acpi__build(const struct acpi_config *cfg, uint8_t *buf, size_t buf_len,
		uint64_t buf_gpa, struct acpi_layout *out, char *err,
		size_t errlen);

/* Copies the built RSDP (36 bytes) to dst, e.g. a 16-byte aligned spot in
 * 0xE0000-0xFFFFF when the tables live elsewhere; its pointers are
 * absolute, so the copy is valid anywhere.  Returns 0 or -1. */
int acpi__copy_rsdp(const uint8_t *buf, const struct acpi_layout *layout,
		    uint8_t *dst, size_t dst_len);

/* Index of the first blob with signature sig ("FACP", "RSDP"), or -1. */
int acpi__find_blob(const struct acpi_layout *layout, const char *sig);

/* 8-bit sum of p[0..len): zero for a table with a valid checksum. */
uint8_t acpi__sum(const void *p, size_t len);

/* The DSDT's AML body (everything after its 36-byte header), from
 * acpi_dsdt.c.  Returns 0 or -1 (config invalid or aml full). */
int acpi__dsdt_aml(const struct acpi_config *cfg, struct aml_buf *aml);

#endif
