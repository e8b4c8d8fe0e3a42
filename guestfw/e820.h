/* The BIOS E820 memory map the guest sees: which guest-physical ranges are
 * RAM it may use and which are reserved.  Built from the guest_mem layout
 * plus the fixed PC holes; the Linux zero page, the multiboot mmap and
 * fw_cfg's etc/e820 are all written from one table. */
#ifndef KRG_GUESTFW_E820_H
#define KRG_GUESTFW_E820_H

#include <stdint.h>

struct guest_mem;

/* The zero page has room for 128 entries; keep every consumer in step. */
#define E820_MAX_ENTRIES 128

enum e820_type {
	E820_TYPE_RAM = 1,
	E820_TYPE_RESERVED = 2,
	E820_TYPE_ACPI = 3,
	E820_TYPE_NVS = 4,
	E820_TYPE_UNUSABLE = 5,
};

/* The PC layout reserved around RAM. */
#define E820_LOW_RAM_END      0x9FC00ull     /* EBDA starts here */
#define E820_HIGH_MEM_START   0x100000ull    /* 1 MiB */
#define E820_IOAPIC_BASE      0xFEC00000ull
#define E820_IOAPIC_SIZE      0x1000ull
#define E820_LAPIC_BASE       0xFEE00000ull
#define E820_LAPIC_SIZE       0x1000ull
#define E820_BIOS_ROM_BASE    0xFFFC0000ull  /* up to 4 GiB */

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
};

struct e820_table {
	uint32_t nr_entries;
	struct e820_entry entries[E820_MAX_ENTRIES];
};

void e820__init(struct e820_table *t);
/* Appends one range (no sorting).  -1 if the table is full, the range is
 * empty, wraps around, or the type is 0. */
int e820__add(struct e820_table *t, uint64_t addr, uint64_t size,
	      uint32_t type);
/* Sorts by address, resolves overlaps (the higher type number wins, so a
 * reserved range punches a hole into RAM) and merges neighbours of the same
 * type.  -1 if the result would not fit in E820_MAX_ENTRIES. */
int e820__sanitize(struct e820_table *t);
/* The map for this guest: RAM regions minus the EBDA/VGA/BIOS hole below
 * 1 MiB, plus IOAPIC, LAPIC and BIOS ROM reservations; sanitized.  0 or -1. */
int e820__build(const struct guest_mem *mem, struct e820_table *t);
/* Highest address `addr` with [addr, addr+size) inside one RAM entry,
 * aligned to `align` (a power of two), within [min_addr, limit_end), and
 * not overlapping [avoid_lo, avoid_hi).  0 and *addr, or -1 if none. */
int e820__find_highest(const struct e820_table *t, uint64_t size,
		       uint64_t align, uint64_t min_addr, uint64_t limit_end,
		       uint64_t avoid_lo, uint64_t avoid_hi, uint64_t *addr);
/* Bytes of RAM in the entry that starts exactly at `addr` (0 if none):
 * multiboot's mem_lower (addr 0) and mem_upper (addr 1 MiB). */
uint64_t e820__ram_at(const struct e820_table *t, uint64_t addr);
const char *e820__type_name(uint32_t type);

#endif
