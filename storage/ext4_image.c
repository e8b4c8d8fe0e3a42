/* -kernel drive:/PATH: the spelling, the search over a disk's partitions,
 * and the disk read through storage/block.h (see ext4_image.h).  The
 * filesystem itself is storage/ext4_fs.c. */
#include "storage/ext4_image.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/uio.h>

#include "storage/block.h"
#include "storage/drive_opts.h"
#include "vmm/errf.h"

/* Largest single read handed to the block layer. */
#define READ_CHUNK (4u << 20)

/* "drive", optional digits, ':' -- and nothing else decides it. */
static size_t spec_prefix_len(const char *t)
{
	size_t i = 5;

	if (strncmp(t, "drive", 5))
		return 0;
	while (t[i] >= '0' && t[i] <= '9')
		i++;
	return t[i] == ':' ? i + 1 : 0;
}

bool ext4_image__is_spec(const char *text)
{
	return text && spec_prefix_len(text) > 0;
}

/* Decimal digits [s, e) into *v, at most max; no sign, no leading zero
 * unless the number is 0. */
static int parse_num(const char *s, const char *e, unsigned max,
		     unsigned *v)
{
	unsigned long n = 0;

	if (s == e || (e - s > 1 && *s == '0'))
		return -1;
	for (; s < e; s++) {
		if (*s < '0' || *s > '9')
			return -1;
		n = n * 10 + (unsigned)(*s - '0');
		if (n > max)
			return -1;
	}
	*v = (unsigned)n;
	return 0;
}

int ext4_image__parse_spec(const char *text, struct drive_path *out,
			   char *err, size_t errlen)
{
	size_t pre = spec_prefix_len(text);
	const char *p;

	memset(out, 0, sizeof(*out));
	if (!pre) {
		errf(err, errlen, "'%s' is not of the form drive[N]:[pK:]/PATH",
		     text);
		return -1;
	}
	if (pre > 6 && parse_num(text + 5, text + pre - 1, EXT4_MAX_DRIVE,
				 &out->drive) < 0) {
		errf(err, errlen, "'%s': bad drive number (drive: is the first "
		     "-drive, drive1: the second, up to drive%d:)", text,
		     EXT4_MAX_DRIVE);
		return -1;
	}
	p = text + pre;
	if (*p == 'p') {
		const char *colon = strchr(p, ':');

		if (!colon || parse_num(p + 1, colon, PART_MAX, &out->part) < 0 ||
		    out->part == 0) {
			errf(err, errlen, "'%s': bad partition (pK: with K from "
			     "1 to %d)", text, PART_MAX);
			return -1;
		}
		p = colon + 1;
	}
	if (*p != '/') {
		errf(err, errlen, "'%s': the path inside the filesystem must "
		     "be absolute (drive:/vmlinuz)", text);
		return -1;
	}
	if (strlen(p) >= sizeof(out->path)) {
		errf(err, errlen, "'%.40s...': path longer than %d bytes", text,
		     EXT4_PATH_MAX - 1);
		return -1;
	}
	memcpy(out->path, p, strlen(p) + 1);
	return 0;
}

/* The partitions to try: the one asked for, or every one in table order,
 * or the whole disk when there is no table. */
static int pick_ranges(const struct ext4_disk *disk, const struct drive_path *p,
		       const struct part_table *t, struct part_entry *r,
		       unsigned *nr, char *err, size_t errlen)
{
	*nr = 0;
	if (p->part) {
		const struct part_entry *e = partition_table__find(t, p->part);

		if (!e && t->scheme == PART_SCHEME_NONE) {
			errf(err, errlen, "there is no partition %u (no "
			     "partition table)", p->part);
			return -1;
		}
		if (!e) {
			errf(err, errlen, "there is no partition %u (%s with "
			     "%u partition%s)", p->part,
			     partition_table__scheme_name(t->scheme), t->nr,
			     t->nr == 1 ? "" : "s");
			return -1;
		}
		r[(*nr)++] = *e;
		return 0;
	}
	if (t->scheme == PART_SCHEME_NONE) {
		r[(*nr)++] = (struct part_entry){ .number = 0, .start = 0,
						  .sectors = disk->size /
							     PART_SECTOR };
		return 0;
	}
	for (unsigned i = 0; i < t->nr; i++)
		r[(*nr)++] = t->p[i];
	return 0;
}

static void where(char *buf, size_t len, unsigned number)
{
	if (number)
		snprintf(buf, len, "partition %u", number);
	else
		snprintf(buf, len, "the whole disk");
}

int ext4_image__read_disk(const struct ext4_disk *disk,
			  const struct drive_path *p, uint64_t max,
			  uint8_t **out, size_t *out_len, char *info,
			  size_t infolen, char *err, size_t errlen)
{
	struct part_table *t = malloc(sizeof(*t));
	struct part_entry *r = malloc(sizeof(*r) * PART_MAX);
	char first_missing[512] = "", first_bad[512] = "", tried[256] = "",
	     e[768], fsinfo[512], w[32];
	unsigned nr = 0, nr_ext = 0;
	int ret = -1;

	*out = NULL;
	*out_len = 0;
	if (!t || !r) {
		errf(err, errlen, "out of memory");
		goto done;
	}
	if (partition_table__read(disk->read, disk->ctx, disk->size, t, err,
				  errlen) < 0 ||
	    pick_ranges(disk, p, t, r, &nr, err, errlen) < 0)
		goto done;
	for (unsigned i = 0; i < nr; i++) {
		size_t tl = strlen(tried);
		enum ext4_status st;

		st = ext4_image__read_fs(disk, r[i].start * PART_SECTOR,
					 r[i].sectors * PART_SECTOR, p->path,
					 max, out, out_len, fsinfo,
					 sizeof(fsinfo), e, sizeof(e));
		where(w, sizeof(w), r[i].number);
		if (st == EXT4_FOUND) {
			if (info)
				snprintf(info, infolen, "%s (%s)", w, fsinfo);
			ret = 0;
			goto done;
		}
		if (st == EXT4_FAILED) {
			/* The path is there but unusable, or the filesystem
			 * is corrupt: that is the answer, not a miss. */
			errf(err, errlen, "%s: %s", w, e);
			goto done;
		}
		if (st == EXT4_NOT_EXT && p->part)
			errf(first_bad, sizeof(first_bad), "%s: %s", w, e);
		if (st == EXT4_BAD_FS && !first_bad[0])
			errf(first_bad, sizeof(first_bad), "%s: %s", w, e);
		if (st == EXT4_NOT_FOUND) {
			nr_ext++;
			if (!first_missing[0])
				errf(first_missing, sizeof(first_missing),
					 "%s: %s", w, e);
		}
		snprintf(tried + tl, sizeof(tried) - tl, "%s%s%s",
			 tl ? ", " : "", w,
			 st == EXT4_NOT_EXT ? " (not ext2/3/4)" :
			 st == EXT4_BAD_FS  ? " (corrupt)" : "");
	}
	/* Nothing found: a filesystem that would not open is the likeliest
	 * culprit (or the one partition asked for is none), then a single
	 * miss says exactly where the walk ended. */
	if (first_bad[0])
		errf(err, errlen, "%s", first_bad);
	else if (nr_ext == 1)
		errf(err, errlen, "%s", first_missing);
	else if (nr_ext)
		errf(err, errlen, "no ext2/3/4 filesystem holds %s (%s: %s)",
		     p->path, partition_table__scheme_name(t->scheme), tried);
	else if (t->scheme == PART_SCHEME_NONE)
		errf(err, errlen, "no partition table, and the whole disk is "
		     "not an ext2/3/4 filesystem");
	else
		errf(err, errlen, "no ext2/3/4 filesystem in its partitions "
		     "(%s: %s)", partition_table__scheme_name(t->scheme),
		     nr ? tried : "none");
done:
	free(r);
	free(t);
	return ret;
}

/* A synchronous read through the asynchronous block layer. */
struct sync_read {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void sync_done(struct block_req *req, int result)
{
	struct sync_read *s = req->opaque;

	pthread_mutex_lock(&s->lock);
	s->result = result;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

struct blk_disk {
	struct block_dev *bdev;
	unsigned index;
};

static int blk_read(void *ctx, uint64_t off, void *buf, size_t len,
		    char *err, size_t errlen)
{
	struct blk_disk *bd = ctx;

	while (len) {
		size_t n = len < READ_CHUNK ? len : READ_CHUNK;
		struct iovec iov = { buf, n };
		struct sync_read s = { .done = false };
		struct block_req req = { .op = BLOCK_OP_READ, .offset = off,
					 .len = n, .iov = &iov, .iovcnt = 1,
					 .done = sync_done, .opaque = &s };
		int rc;

		pthread_mutex_init(&s.lock, NULL);
		pthread_cond_init(&s.cond, NULL);
		rc = block__submit(bd->bdev, &req);
		if (rc == 0) {
			pthread_mutex_lock(&s.lock);
			while (!s.done)
				pthread_cond_wait(&s.cond, &s.lock);
			pthread_mutex_unlock(&s.lock);
			rc = s.result;
		}
		pthread_cond_destroy(&s.cond);
		pthread_mutex_destroy(&s.lock);
		if (rc < 0) {
			errf(err, errlen, "reading -drive %u at byte %" PRIu64
			     ": %s", bd->index, off, strerror(-rc));
			return -1;
		}
		off += n;
		buf = (uint8_t *)buf + n;
		len -= n;
	}
	return 0;
}

int ext4_image__read_spec(const struct drive_opts *drives,
			  unsigned nr_drives, const char *what,
			  const char *spec, uint64_t max, uint8_t **out,
			  size_t *out_len, char *info, size_t infolen,
			  char *err, size_t errlen)
{
	struct drive_path *p = malloc(sizeof(*p));
	struct drive_opts *o = malloc(sizeof(*o));
	struct blk_disk bd = { 0 };
	struct block_info bi;
	struct ext4_disk disk;
	char e[1024], in[600];
	int ret = -1;

	*out = NULL;
	*out_len = 0;
	if (!p || !o) {
		errf(err, errlen, "%s '%s': out of memory", what, spec);
		goto done;
	}
	if (ext4_image__parse_spec(spec, p, e, sizeof(e)) < 0) {
		errf(err, errlen, "%s %s", what, e);
		goto done;
	}
	if (p->drive >= nr_drives) {
		errf(err, errlen, "%s '%s': there is no -drive %u (%u given)",
		     what, spec, p->drive, nr_drives);
		goto done;
	}
	/* Our own read-only handle, closed before the VM opens the disk:
	 * buffered (no O_DIRECT alignment), whatever cache= the VM uses. */
	*o = drives[p->drive];
	o->read_only = true;
	o->cache = DRIVE_CACHE_WRITEBACK;
	o->discard_unmap = false;
	bd.index = p->drive;
	bd.bdev = block__open(o, e, sizeof(e));
	if (!bd.bdev) {
		errf(err, errlen, "%s '%s': -drive %u: %s", what, spec,
		     p->drive, strncmp(e, "-drive: ", 8) ? e : e + 8);
		goto done;
	}
	block__info(bd.bdev, &bi);
	disk = (struct ext4_disk){ blk_read, &bd, bi.size };
	if (ext4_image__read_disk(&disk, p, max, out, out_len, in, sizeof(in),
				  e, sizeof(e)) < 0) {
		errf(err, errlen, "%s '%s': -drive %u: %s", what, spec,
		     p->drive, e);
		goto done;
	}
	if (info)
		snprintf(info, infolen, "-drive %u %s", p->drive, in);
	ret = 0;
done:
	if (bd.bdev)
		block__close(bd.bdev);
	free(o);
	free(p);
	return ret;
}
