/* The interrupt message every source (LAPIC ICR, IOAPIC redirection entry,
 * MSI) produces, and the addressing facts the router needs about each LAPIC.
 * Both are plain data: the next issue sends them between hosts. */
#ifndef KRG_VCPU_APIC_H
#define KRG_VCPU_APIC_H

#include <stdbool.h>
#include <stdint.h>

enum apic_delivery_mode {
	APIC_DM_FIXED = 0,
	APIC_DM_LOWEST = 1,
	APIC_DM_SMI = 2,
	APIC_DM_NMI = 4,
	APIC_DM_INIT = 5,
	APIC_DM_SIPI = 6,
	APIC_DM_EXTINT = 7,
};

enum apic_shorthand {
	APIC_SH_NONE = 0,
	APIC_SH_SELF = 1,
	APIC_SH_ALL_INCL_SELF = 2,
	APIC_SH_ALL_EXCL_SELF = 3,
};

struct apic_msg {
	uint32_t dest;         /* APIC ID or logical MDA; 8-bit unless x2apic */
	int32_t source;        /* sending vCPU index, -1 for IOAPIC/MSI */
	uint8_t vector;
	uint8_t delivery;      /* enum apic_delivery_mode */
	uint8_t dest_logical;  /* 0 physical, 1 logical */
	uint8_t shorthand;     /* enum apic_shorthand */
	uint8_t level;         /* assert (1) / de-assert (0), INIT level */
	uint8_t trigger_level; /* 0 edge, 1 level */
	uint8_t x2apic;        /* dest is a 32-bit x2APIC destination */
	uint8_t pad;
};

/* How a LAPIC is addressed right now; the LAPIC reports changes (guest
 * writes to ID, LDR, DFR, SVR, APIC_BASE, TPR) so the router can match
 * destinations without touching the LAPIC itself, wherever it lives. */
struct apic_addr {
	uint32_t apic_id;  /* xAPIC: 8-bit ID; x2APIC: 32-bit ID */
	uint32_t ldr;      /* xAPIC: bits 31:24; x2APIC: full 32-bit LDR */
	uint8_t dfr_flat;  /* xAPIC DFR model: 1 flat, 0 cluster */
	uint8_t x2apic;    /* x2APIC mode enabled */
	uint8_t enabled;   /* global enable (APIC_BASE) and software enable */
	uint8_t ppr;       /* processor priority, for lowest-priority choice */
};

#endif
