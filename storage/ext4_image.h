/* Boot files inside a disk image: `-kernel drive:/vmlinuz` and
 * `-initrd drive:/initrd.img` name files in an ext2/3/4 filesystem on one
 * of the -drive disks, read on the host with e2fsprogs' libext2fs through
 * the project's block layer (so raw and qcow2 images both work) and handed
 * to the kernel loaders exactly as a host file would be.
 *
 * Spelling (a host file whose name starts like this: write ./drive:...):
 *   drive:/PATH        the first -drive; the partition whose filesystem
 *                      holds PATH is found (MBR or GPT; a disk without a
 *                      table may be one filesystem)
 *   driveN:/PATH       -drive N, counting from 0 (drive0: = drive:)
 *   drive:pK:/PATH     partition K (Linux's numbering) of the first drive
 *   driveN:pK:/PATH
 * Symlinks inside the filesystem are followed, relative ones from their
 * directory and absolute ones from the filesystem's root (Debian's
 * /vmlinuz -> boot/vmlinuz-...), at most EXT4_MAX_SYMLINKS of them.
 *
 * The image is untrusted: a corrupt filesystem or table is one line of
 * error, never a read outside the partition or the file's size limit.
 * The filesystem is opened read-only and its journal is not replayed. */
#ifndef KRG_VMM_STORAGE_EXT4_IMAGE_H
#define KRG_VMM_STORAGE_EXT4_IMAGE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "storage/partition_table.h"

struct drive_opts;

#define EXT4_PATH_MAX 4096
#define EXT4_MAX_SYMLINKS 40   /* Linux's MAXSYMLINKS */
#define EXT4_MAX_DRIVE 99

struct drive_path {
	unsigned drive;                 /* index into the -drive list */
	unsigned part;                  /* 0: search every partition */
	char path[EXT4_PATH_MAX];       /* absolute, inside the filesystem */
};

/* True if text uses the drive: spelling (it may still be malformed). */
bool ext4_image__is_spec(const char *text);
/* 0 with *out filled, or -1 with one line in err. */
int ext4_image__parse_spec(const char *text, struct drive_path *out,
			   char *err, size_t errlen);

/* A disk as a byte-addressed read callback. */
struct ext4_disk {
	part_read_fn read;
	void *ctx;
	uint64_t size;
};

enum ext4_status {
	EXT4_FOUND = 0,
	EXT4_NOT_EXT = 1,       /* no ext2/3/4 filesystem there */
	EXT4_NOT_FOUND = 2,     /* the filesystem lacks the path */
	EXT4_FAILED = 3,        /* the path is a directory, a loop, too
				 * large; a corrupt directory or file; an
				 * I/O error: err says which */
	EXT4_BAD_FS = 4,        /* an ext2/3/4 superblock, but the
				 * filesystem does not open (corrupt) */
};

/* Reads PATH from the filesystem in bytes [base, base + len) of the disk
 * into a malloc'd buffer of at most max bytes.  On EXT4_FOUND, *out and
 * *out_len are set and info (may be NULL) gets e.g. "ext4,
 * /boot/vmlinuz-6.1.0-56-amd64"; otherwise err says why. */
enum ext4_status ext4_image__read_fs(const struct ext4_disk *disk,
				     uint64_t base, uint64_t len,
				     const char *path, uint64_t max,
				     uint8_t **out, size_t *out_len,
				     char *info, size_t infolen, char *err,
				     size_t errlen);

/* Reads p->path from the disk: partition p->part, or the first partition
 * (in table order; the whole disk if there is no table) whose filesystem
 * holds it.  0 with the buffer and info, or -1 with one line in err. */
int ext4_image__read_disk(const struct ext4_disk *disk,
			  const struct drive_path *p, uint64_t max,
			  uint8_t **out, size_t *out_len, char *info,
			  size_t infolen, char *err, size_t errlen);

/* What the machine calls for -kernel/-initrd text that is_spec: parses
 * spec, opens -drive N of drives[] read-only through storage/block.h,
 * reads the file and closes the drive.  `what` ("kernel", "initrd")
 * starts the error line.  0, or -1 with one line in err. */
int ext4_image__read_spec(const struct drive_opts *drives,
			  unsigned nr_drives, const char *what,
			  const char *spec, uint64_t max, uint8_t **out,
			  size_t *out_len, char *info, size_t infolen,
			  char *err, size_t errlen);

#endif
