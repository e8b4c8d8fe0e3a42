/* E820 map construction.  Kept as plain table arithmetic so the loaders and
 * the firmware interface share one source of truth about what is RAM. */
#include "guestfw/e820.h"

#include <stdlib.h>
#include <string.h>

#include "vmm/guest_mem.h"

void e820__init(struct e820_table *t)
{
	memset(t, 0, sizeof(*t));
}

int e820__add(struct e820_table *t, uint64_t addr, uint64_t size,
	      uint32_t type)
{
	if (t->nr_entries >= E820_MAX_ENTRIES || size == 0 || type == 0)
		return -1;
	/* The end must be representable: the sanitizer works on end points. */
	if (size > UINT64_MAX - addr)
		return -1;
	t->entries[t->nr_entries].addr = addr;
	t->entries[t->nr_entries].size = size;
	t->entries[t->nr_entries].type = type;
	t->nr_entries++;
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int e820__sanitize(struct e820_table *t)
{
	uint64_t pts[2 * E820_MAX_ENTRIES];
	struct e820_table out;
	unsigned n = 0, nr_pts = 0;

	for (unsigned i = 0; i < t->nr_entries; i++) {
		pts[n++] = t->entries[i].addr;
		pts[n++] = t->entries[i].addr + t->entries[i].size;
	}
	qsort(pts, n, sizeof(pts[0]), cmp_u64);
	for (unsigned i = 0; i < n; i++)
		if (nr_pts == 0 || pts[nr_pts - 1] != pts[i])
			pts[nr_pts++] = pts[i];

	/* Each elementary interval between change points takes the highest
	 * type covering it: reserved beats RAM, so holes are punched. */
	e820__init(&out);
	for (unsigned i = 0; i + 1 < nr_pts; i++) {
		uint64_t lo = pts[i], hi = pts[i + 1];
		uint32_t type = 0;
		struct e820_entry *prev;

		for (unsigned j = 0; j < t->nr_entries; j++) {
			const struct e820_entry *e = &t->entries[j];

			if (e->addr <= lo && e->addr + e->size >= hi &&
			    e->type > type)
				type = e->type;
		}
		if (type == 0)
			continue;
		prev = out.nr_entries ? &out.entries[out.nr_entries - 1] : NULL;
		if (prev && prev->type == type && prev->addr + prev->size == lo) {
			prev->size += hi - lo;
			continue;
		}
		if (e820__add(&out, lo, hi - lo, type))
			return -1;
	}
	*t = out;
	return 0;
}

int e820__build(const struct guest_mem *mem, struct e820_table *t)
{
	e820__init(t);
	for (int i = 0; i < mem->nr_regions && i < 2; i++) {
		const struct guest_mem_region *r = &mem->region[i];

		if (r->size && e820__add(t, r->gpa, r->size, E820_TYPE_RAM))
			return -1;
	}
	/* EBDA, VGA memory and the option/BIOS ROM area stay out of the
	 * guest's hands even though they are backed by RAM here. */
	if (e820__add(t, E820_LOW_RAM_END, E820_HIGH_MEM_START - E820_LOW_RAM_END,
		      E820_TYPE_RESERVED) ||
	    e820__add(t, E820_IOAPIC_BASE, E820_IOAPIC_SIZE,
		      E820_TYPE_RESERVED) ||
	    e820__add(t, E820_LAPIC_BASE, E820_LAPIC_SIZE,
		      E820_TYPE_RESERVED) ||
	    e820__add(t, E820_BIOS_ROM_BASE,
		      GUEST_HIGH_RAM_START - E820_BIOS_ROM_BASE,
		      E820_TYPE_RESERVED))
		return -1;
	return e820__sanitize(t);
}

/* Highest aligned start of `size` bytes inside [lo, hi), or -1. */
static int fit_below(uint64_t lo, uint64_t hi, uint64_t size, uint64_t align,
		     uint64_t *addr)
{
	uint64_t start;

	if (hi <= lo || hi - lo < size)
		return -1;
	start = (hi - size) & ~(align - 1);
	if (start < lo)
		return -1;
	*addr = start;
	return 0;
}

int e820__find_highest(const struct e820_table *t, uint64_t size,
		       uint64_t align, uint64_t min_addr, uint64_t limit_end,
		       uint64_t avoid_lo, uint64_t avoid_hi, uint64_t *addr)
{
	int found = 0;
	uint64_t best = 0;

	if (size == 0 || align == 0 || (align & (align - 1)))
		return -1;
	for (unsigned i = 0; i < t->nr_entries; i++) {
		const struct e820_entry *e = &t->entries[i];
		uint64_t lo = e->addr > min_addr ? e->addr : min_addr;
		uint64_t end = e->addr + e->size;
		uint64_t hi = end < limit_end ? end : limit_end;
		uint64_t cand;

		if (e->type != E820_TYPE_RAM)
			continue;
		if (fit_below(lo, hi, size, align, &cand))
			continue;
		if (cand < avoid_hi && cand + size > avoid_lo) {
			/* The avoided range sits inside: try just below it. */
			if (fit_below(lo, avoid_lo < hi ? avoid_lo : hi, size,
				      align, &cand))
				continue;
		}
		if (!found || cand > best)
			best = cand;
		found = 1;
	}
	if (!found)
		return -1;
	*addr = best;
	return 0;
}

uint64_t e820__ram_at(const struct e820_table *t, uint64_t addr)
{
	for (unsigned i = 0; i < t->nr_entries; i++)
		if (t->entries[i].type == E820_TYPE_RAM &&
		    t->entries[i].addr == addr)
			return t->entries[i].size;
	return 0;
}

const char *e820__type_name(uint32_t type)
{
	switch (type) {
	case E820_TYPE_RAM: return "usable";
	case E820_TYPE_RESERVED: return "reserved";
	case E820_TYPE_ACPI: return "ACPI data";
	case E820_TYPE_NVS: return "ACPI NVS";
	case E820_TYPE_UNUSABLE: return "unusable";
	default: return "unknown";
	}
}
