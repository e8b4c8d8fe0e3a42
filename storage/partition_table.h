/* Partition tables of a disk image: MBR (primary and logical partitions)
 * and GPT.  Pure parsing over a read callback, no I/O of its own, so unit
 * tests feed it byte arrays.  The disk is untrusted input: every entry is
 * checked against the disk's size, the GPT headers and entry arrays
 * against their CRC32s, and the chain of extended boot records against
 * loops; a corrupt table is one line of error, never a wild read.
 *
 * Partition numbers are Linux's: MBR primaries 1-4, logical partitions
 * from 5 in chain order; GPT entries by their slot, from 1.  A disk
 * whose MBR holds a protective (0xEE) entry is read as GPT; a GPT whose
 * primary header is corrupt is read through the backup header at the end
 * of the disk.  Sectors are 512 bytes. */
#ifndef KRG_VMM_STORAGE_PARTITION_TABLE_H
#define KRG_VMM_STORAGE_PARTITION_TABLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define PART_SECTOR 512u
/* Linux's own limits: 128 GPT slots are the usual array, the kernel
 * reads arrays of up to 16384 * 128 bytes; logical partitions are few. */
#define PART_MAX 128
#define PART_GPT_MAX_ENTRIES 16384u
#define PART_MAX_LOGICAL 60

enum part_scheme {
	PART_SCHEME_NONE,   /* no table: the whole disk may be a filesystem */
	PART_SCHEME_MBR,
	PART_SCHEME_GPT,
};

struct part_entry {
	unsigned number;        /* Linux's partition number */
	uint64_t start;         /* first sector */
	uint64_t sectors;       /* length */
	uint8_t mbr_type;       /* MBR: the system ID byte; GPT: 0 */
	uint8_t gpt_type[16];   /* GPT: the type GUID as stored; MBR: zeros */
};

struct part_table {
	enum part_scheme scheme;
	bool gpt_backup_used;   /* the primary GPT header was corrupt */
	unsigned nr;
	struct part_entry p[PART_MAX];
};

/* Reads len bytes at byte offset off of the disk into buf: 0, or -1 with
 * a reason in err (e.g. an I/O error). */
typedef int (*part_read_fn)(void *ctx, uint64_t off, void *buf, size_t len,
			    char *err, size_t errlen);

/* Reads the table of a disk of disk_bytes bytes.  0 with *out filled
 * (scheme NONE and nr 0 when sector 0 has no boot signature or no
 * partition), or -1 with one line in err for a corrupt table or an I/O
 * error. */
int partition_table__read(part_read_fn read, void *ctx, uint64_t disk_bytes,
			  struct part_table *out, char *err, size_t errlen);

/* The entry with Linux number n, or NULL. */
const struct part_entry *partition_table__find(const struct part_table *t,
					       unsigned n);

/* "MBR" / "GPT" / "none". */
const char *partition_table__scheme_name(enum part_scheme s);

#endif
