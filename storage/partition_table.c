/* MBR and GPT parsing (see partition_table.h).  Layouts: the MBR's four
 * 16-byte entries at byte 446 and its 0x55AA signature at 510; extended
 * boot records chained from the extended partition; the UEFI
 * specification's GPT header (LBA 1, backup at the last LBA) and entry
 * array. */
#include "storage/partition_table.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

#define MBR_ENTRIES_OFF 446
#define MBR_SIG_OFF 510
#define MBR_TYPE_GPT 0xEE

#define GPT_SIG "EFI PART"
#define GPT_HDR_MIN 92u
#define GPT_ENTRY_MIN 128u
#define GPT_ARRAY_MAX (PART_GPT_MAX_ENTRIES * GPT_ENTRY_MIN)

struct disk {
	part_read_fn read;
	void *ctx;
	uint64_t sectors;
};

static int read_sector(const struct disk *d, uint64_t lba, uint8_t *buf,
		       char *err, size_t errlen)
{
	return d->read(d->ctx, lba * PART_SECTOR, buf, PART_SECTOR, err,
		       errlen);
}

static bool is_extended(uint8_t type)
{
	return type == 0x05 || type == 0x0F || type == 0x85;
}

static int add_entry(struct part_table *t, unsigned number, uint64_t start,
		     uint64_t sectors, uint8_t type, char *err, size_t errlen)
{
	if (t->nr >= PART_MAX) {
		errf(err, errlen, "more than %d partitions", PART_MAX);
		return -1;
	}
	t->p[t->nr] = (struct part_entry){ .number = number, .start = start,
					   .sectors = sectors,
					   .mbr_type = type };
	t->nr++;
	return 0;
}

/* start/sectors of an MBR entry must lie inside [lo, hi) and not at 0. */
static int check_range(const char *what, unsigned n, uint64_t start,
		       uint64_t sectors, uint64_t lo, uint64_t hi, char *err,
		       size_t errlen)
{
	if (start < lo || start == 0 || start >= hi ||
	    sectors > hi - start) {
		errf(err, errlen, "corrupt MBR: %s %u (sectors %" PRIu64
		     "-%" PRIu64 ") lies outside %" PRIu64 "-%" PRIu64, what,
		     n, start, start + sectors - 1, lo, hi - 1);
		return -1;
	}
	return 0;
}

/* The logical partitions: each EBR holds one partition (relative to the
 * EBR) and a link to the next EBR (relative to the extended partition). */
static int read_logical(const struct disk *d, uint64_t ext_start,
			uint64_t ext_sectors, struct part_table *t,
			unsigned *next_number, char *err, size_t errlen)
{
	uint8_t s[PART_SECTOR];
	uint64_t ebr = ext_start, ext_end = ext_start + ext_sectors;

	for (unsigned hops = 0;; hops++) {
		const uint8_t *e0 = s + MBR_ENTRIES_OFF, *e1 = e0 + 16;
		uint64_t start, sectors, link;

		if (hops >= PART_MAX_LOGICAL) {
			errf(err, errlen, "corrupt MBR: the extended "
			     "partition's chain has more than %d links (a loop?)",
			     PART_MAX_LOGICAL);
			return -1;
		}
		if (read_sector(d, ebr, s, err, errlen) < 0)
			return -1;
		if (s[MBR_SIG_OFF] != 0x55 || s[MBR_SIG_OFF + 1] != 0xAA)
			return 0; /* as Linux: the chain ends here */
		start = get_le32(e0 + 8);
		sectors = get_le32(e0 + 12);
		if (e0[4] && sectors) {
			if (check_range("logical partition", *next_number,
					ebr + start, sectors, ebr + 1, ext_end,
					err, errlen) < 0 ||
			    add_entry(t, *next_number, ebr + start, sectors,
				      e0[4], err, errlen) < 0)
				return -1;
			(*next_number)++;
		}
		link = get_le32(e1 + 8);
		if (!is_extended(e1[4]) || !get_le32(e1 + 12))
			return 0;
		/* A loop is caught by the hop limit, a link outside the
		 * extended partition at once. */
		if (link == 0 || link >= ext_sectors) {
			errf(err, errlen, "corrupt MBR: an extended boot record "
			     "links to sector %" PRIu64 ", outside the extended "
			     "partition (sectors %" PRIu64 "-%" PRIu64 ")",
			     ext_start + link, ext_start, ext_end - 1);
			return -1;
		}
		ebr = ext_start + link;
	}
}

static uint32_t crc32_of(const uint8_t *buf, size_t len)
{
	return (uint32_t)crc32(0L, buf, (uInt)len);
}

/* One GPT header at lba and its entry array: 0 with t filled, -1 with the
 * reason. */
static int read_gpt_at(const struct disk *d, uint64_t lba,
		       struct part_table *t, char *err, size_t errlen)
{
	uint8_t h[PART_SECTOR], tmp[PART_SECTOR];
	uint32_t hsize, crc, nr, esize;
	uint64_t first, last, elba, bytes, esectors;
	uint8_t *arr;
	const char *which = lba == 1 ? "primary" : "backup";

	if (read_sector(d, lba, h, err, errlen) < 0)
		return -1;
	if (memcmp(h, GPT_SIG, 8)) {
		errf(err, errlen, "corrupt GPT: no %s header at sector %" PRIu64,
		     which, lba);
		return -1;
	}
	hsize = get_le32(h + 12);
	if (hsize < GPT_HDR_MIN || hsize > PART_SECTOR) {
		errf(err, errlen, "corrupt GPT: %s header size %u", which,
		     hsize);
		return -1;
	}
	memcpy(tmp, h, hsize);
	memset(tmp + 16, 0, 4);
	crc = crc32_of(tmp, hsize);
	if (crc != get_le32(h + 16)) {
		errf(err, errlen, "corrupt GPT: %s header checksum 0x%08x, "
		     "computed 0x%08x", which, get_le32(h + 16), crc);
		return -1;
	}
	first = get_le64(h + 40);
	last = get_le64(h + 48);
	elba = get_le64(h + 72);
	nr = get_le32(h + 80);
	esize = get_le32(h + 84);
	if (get_le64(h + 24) != lba || first > last || last >= d->sectors) {
		errf(err, errlen, "corrupt GPT: %s header's own sector or "
		     "usable range (%" PRIu64 "-%" PRIu64 ") does not fit the "
		     "disk (%" PRIu64 " sectors)", which, first, last,
		     d->sectors);
		return -1;
	}
	if (esize < GPT_ENTRY_MIN || esize % 8 || nr == 0 ||
	    nr > PART_GPT_MAX_ENTRIES ||
	    (uint64_t)nr * esize > GPT_ARRAY_MAX) {
		errf(err, errlen, "corrupt GPT: %u entries of %u bytes", nr,
		     esize);
		return -1;
	}
	bytes = (uint64_t)nr * esize;
	esectors = (bytes + PART_SECTOR - 1) / PART_SECTOR;
	if (elba < 2 || elba >= d->sectors || esectors > d->sectors - elba) {
		errf(err, errlen, "corrupt GPT: the entry array at sector %"
		     PRIu64 " does not fit the disk", elba);
		return -1;
	}
	arr = malloc(bytes);
	if (!arr) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (d->read(d->ctx, elba * PART_SECTOR, arr, bytes, err, errlen) < 0)
		goto fail;
	crc = crc32_of(arr, bytes);
	if (crc != get_le32(h + 88)) {
		errf(err, errlen, "corrupt GPT: %s entry array checksum 0x%08x, "
		     "computed 0x%08x", which, get_le32(h + 88), crc);
		goto fail;
	}
	t->nr = 0;
	for (uint32_t i = 0; i < nr; i++) {
		const uint8_t *e = arr + (uint64_t)i * esize;
		static const uint8_t unused[16];
		uint64_t s, l;

		if (!memcmp(e, unused, 16))
			continue;
		s = get_le64(e + 32);
		l = get_le64(e + 40);
		if (s > l || s < first || l > last) {
			errf(err, errlen, "corrupt GPT: partition %u (sectors %"
			     PRIu64 "-%" PRIu64 ") lies outside the usable "
			     "sectors %" PRIu64 "-%" PRIu64, i + 1, s, l, first,
			     last);
			goto fail;
		}
		if (add_entry(t, i + 1, s, l - s + 1, 0, err, errlen) < 0)
			goto fail;
		memcpy(t->p[t->nr - 1].gpt_type, e, 16);
	}
	free(arr);
	t->scheme = PART_SCHEME_GPT;
	return 0;
fail:
	free(arr);
	return -1;
}

static int read_gpt(const struct disk *d, struct part_table *t, char *err,
		    size_t errlen)
{
	char why[256];

	if (read_gpt_at(d, 1, t, why, sizeof(why)) == 0)
		return 0;
	/* The backup header is at the last sector, as the primary's
	 * alternate-LBA field says when the primary is readable at all. */
	if (d->sectors > 2 && read_gpt_at(d, d->sectors - 1, t, err,
					  errlen) == 0) {
		t->gpt_backup_used = true;
		return 0;
	}
	errf(err, errlen, "%s (and no valid backup header)", why);
	return -1;
}

static int read_mbr(const struct disk *d, const uint8_t *s,
		    struct part_table *t, char *err, size_t errlen)
{
	unsigned next_logical = 5;

	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *e = s + MBR_ENTRIES_OFF + 16 * i;

		/* Not an MBR at all (a FAT boot sector, say): no table. */
		if (e[0] != 0 && e[0] != 0x80)
			return 0;
	}
	for (unsigned i = 0; i < 4; i++)
		if (s[MBR_ENTRIES_OFF + 16 * i + 4] == MBR_TYPE_GPT)
			return read_gpt(d, t, err, errlen);
	for (unsigned i = 0; i < 4; i++) {
		const uint8_t *e = s + MBR_ENTRIES_OFF + 16 * i;
		uint64_t start = get_le32(e + 8), sectors = get_le32(e + 12);

		if (!e[4] || !sectors)
			continue;
		if (check_range("partition", i + 1, start, sectors, 1,
				d->sectors, err, errlen) < 0)
			return -1;
		t->scheme = PART_SCHEME_MBR;
		if (is_extended(e[4])) {
			if (read_logical(d, start, sectors, t, &next_logical,
					 err, errlen) < 0)
				return -1;
			continue;
		}
		if (add_entry(t, i + 1, start, sectors, e[4], err, errlen) < 0)
			return -1;
	}
	return 0;
}

int partition_table__read(part_read_fn read, void *ctx, uint64_t disk_bytes,
			  struct part_table *out, char *err, size_t errlen)
{
	struct disk d = { read, ctx, disk_bytes / PART_SECTOR };
	uint8_t s[PART_SECTOR];

	memset(out, 0, sizeof(*out));
	if (d.sectors < 2)
		return 0;
	if (read_sector(&d, 0, s, err, errlen) < 0)
		return -1;
	if (s[MBR_SIG_OFF] != 0x55 || s[MBR_SIG_OFF + 1] != 0xAA)
		return 0;
	if (read_mbr(&d, s, out, err, errlen) < 0) {
		out->nr = 0;
		out->scheme = PART_SCHEME_NONE;
		return -1;
	}
	return 0;
}

const struct part_entry *partition_table__find(const struct part_table *t,
					       unsigned n)
{
	for (unsigned i = 0; i < t->nr; i++)
		if (t->p[i].number == n)
			return &t->p[i];
	return NULL;
}

const char *partition_table__scheme_name(enum part_scheme s)
{
	switch (s) {
	case PART_SCHEME_MBR:
		return "MBR";
	case PART_SCHEME_GPT:
		return "GPT";
	default:
		return "none";
	}
}
