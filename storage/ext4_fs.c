/* One ext2/3/4 filesystem in a byte range of a disk, read with libext2fs
 * through an io_manager of our own: libext2fs asks for blocks, we read
 * them with the disk's callback, never outside the range.  A few read
 * windows turn libext2fs's block-at-a-time file reads into large reads of
 * the image (files are mostly contiguous).  Paths are walked here rather
 * than with ext2fs_namei(), which trusts a symlink inode's size. */
#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <et/com_err.h>
#include <ext2fs/ext2fs.h>

#include "storage/ext4_image.h"
#include "vmm/errf.h"

#define WINDOW_BYTES (256u << 10)
/* File data and the metadata that maps it (extent leaves, directory
 * blocks) alternate: one window per kind, and a spare, LRU. */
#define NR_WINDOWS 4
#define CHANNEL_PREFIX "krg-ext4:"

struct window {
	uint8_t *buf;
	uint64_t off;           /* relative to base */
	size_t len;             /* 0: empty */
	uint64_t used;          /* LRU clock */
};

/* The byte range libext2fs sees as its device. */
struct ext4_dev {
	const struct ext4_disk *disk;
	uint64_t base, len;
	struct window win[NR_WINDOWS];
	uint64_t clock;
	char io_err[256];       /* the last I/O failure, for the message */
};

static int dev_read_raw(struct ext4_dev *d, uint64_t off, void *buf,
			size_t len)
{
	return d->disk->read(d->disk->ctx, d->base + off, buf, len, d->io_err,
			     sizeof(d->io_err));
}

/* Bytes [off, off + len) of the range, through the windows. */
static errcode_t dev_read(struct ext4_dev *d, uint64_t off, void *buf,
			  size_t len)
{
	struct window *w = NULL;

	if (off > d->len || len > d->len - off) {
		snprintf(d->io_err, sizeof(d->io_err), "the filesystem refers "
			 "to bytes %" PRIu64 "-%" PRIu64 ", beyond its %" PRIu64
			 "-byte partition", off, off + len - 1, d->len);
		return EXT2_ET_SHORT_READ;
	}
	if (len > WINDOW_BYTES / 2)
		return dev_read_raw(d, off, buf, len) ? EXT2_ET_SHORT_READ : 0;
	for (unsigned i = 0; i < NR_WINDOWS && !w; i++)
		if (d->win[i].len && off >= d->win[i].off &&
		    off + len <= d->win[i].off + d->win[i].len)
			w = &d->win[i];
	if (!w) {
		uint64_t start = off & ~(uint64_t)4095;
		uint64_t n = d->len - start < WINDOW_BYTES ? d->len - start :
							     WINDOW_BYTES;

		w = &d->win[0];
		for (unsigned i = 1; i < NR_WINDOWS; i++)
			if (d->win[i].used < w->used)
				w = &d->win[i];
		w->len = 0;
		if (dev_read_raw(d, start, w->buf, n))
			return EXT2_ET_SHORT_READ;
		w->off = start;
		w->len = n;
	}
	w->used = ++d->clock;
	memcpy(buf, w->buf + (off - w->off), len);
	return 0;
}

static struct struct_io_manager ext4_io_manager;

static errcode_t io_open(const char *name, int flags, io_channel *channel)
{
	struct ext4_dev *d;
	io_channel ch;
	char *end;

	if (strncmp(name, CHANNEL_PREFIX, strlen(CHANNEL_PREFIX)) ||
	    (flags & IO_FLAG_RW))
		return EXT2_ET_BAD_DEVICE_NAME;
	/* The name carries the address of our range: libext2fs hands the
	 * manager nothing else. */
	d = (struct ext4_dev *)(uintptr_t)strtoull(
		name + strlen(CHANNEL_PREFIX), &end, 16);
	if (!d || *end)
		return EXT2_ET_BAD_DEVICE_NAME;
	ch = calloc(1, sizeof(*ch));
	if (!ch)
		return EXT2_ET_NO_MEMORY;
	ch->name = strdup(name);
	if (!ch->name) {
		free(ch);
		return EXT2_ET_NO_MEMORY;
	}
	ch->magic = EXT2_ET_MAGIC_IO_CHANNEL;
	ch->manager = &ext4_io_manager;
	ch->block_size = 1024;
	ch->refcount = 1;
	ch->private_data = d;
	*channel = ch;
	return 0;
}

static errcode_t io_close(io_channel ch)
{
	if (--ch->refcount > 0)
		return 0;
	free(ch->name);
	free(ch);
	return 0;
}

static errcode_t io_set_blksize(io_channel ch, int blksize)
{
	if (blksize < 512 || blksize > 65536)
		return EXT2_ET_INVALID_ARGUMENT;
	ch->block_size = blksize;
	return 0;
}

static errcode_t io_read_blk64(io_channel ch, unsigned long long block,
			       int count, void *data)
{
	uint64_t bs = (uint64_t)ch->block_size, bytes;

	/* A negative count is a byte count (libext2fs's convention). */
	bytes = count < 0 ? (uint64_t)-(int64_t)count : (uint64_t)count * bs;
	if (block > UINT64_MAX / bs || bytes > SIZE_MAX)
		return EXT2_ET_SHORT_READ;
	return dev_read(ch->private_data, block * bs, data, (size_t)bytes);
}

static errcode_t io_read_blk(io_channel ch, unsigned long block, int count,
			     void *data)
{
	return io_read_blk64(ch, block, count, data);
}

static errcode_t io_write_blk64(io_channel ch, unsigned long long block,
				int count, const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t io_write_blk(io_channel ch, unsigned long block, int count,
			      const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t io_write_byte(io_channel ch, unsigned long offset,
			       int count, const void *data)
{
	return EXT2_ET_RO_FILSYS;
}

static errcode_t io_flush(io_channel ch)
{
	return 0;
}

static errcode_t io_set_option(io_channel ch, const char *option,
			       const char *arg)
{
	return EXT2_ET_INVALID_ARGUMENT;
}

static struct struct_io_manager ext4_io_manager = {
	.magic = EXT2_ET_MAGIC_IO_MANAGER,
	.name = "krg-vmm block layer",
	.open = io_open,
	.close = io_close,
	.set_blksize = io_set_blksize,
	.read_blk = io_read_blk,
	.write_blk = io_write_blk,
	.flush = io_flush,
	.write_byte = io_write_byte,
	.set_option = io_set_option,
	.read_blk64 = io_read_blk64,
	.write_blk64 = io_write_blk64,
};

static void register_messages(void)
{
	initialize_ext2_error_table();
}

/* libext2fs's text for code, or our own I/O reason when there is one. */
static const char *why(const struct ext4_dev *d, errcode_t code)
{
	static pthread_once_t once = PTHREAD_ONCE_INIT;

	if (code == EXT2_ET_SHORT_READ && d->io_err[0])
		return d->io_err;
	pthread_once(&once, register_messages);
	return error_message(code);
}

struct walk {
	ext2_filsys fs;
	struct ext4_dev *dev;
	unsigned links;
	char *rest;             /* what is left of the path, in place */
	char buf[2][EXT4_PATH_MAX];
	int cur;                /* which buf holds rest */
	char *err;
	size_t errlen;
};

/* The target of symlink ino into t (NUL-terminated).  0 or EXT4_FAILED. */
static int read_link(struct walk *w, ext2_ino_t ino,
		     const struct ext2_inode *inode, const char *name,
		     char *t, size_t tlen)
{
	uint64_t size = EXT2_I_SIZE(inode);
	errcode_t rc = 0;

	if (size == 0 || size >= tlen || size >= EXT4_PATH_MAX) {
		errf(w->err, w->errlen, "corrupt filesystem: symlink %s has "
		     "length %" PRIu64, name, size);
		return EXT4_FAILED;
	}
	if (inode->i_flags & EXT4_INLINE_DATA_FL) {
		size_t isz = 0;
		char *tmp;

		rc = ext2fs_inline_data_size(w->fs, ino, &isz);
		if (!rc && (isz < size || isz > EXT4_PATH_MAX * 2))
			rc = EXT2_ET_INLINE_DATA_CANT_ITERATE;
		if (!rc) {
			tmp = malloc(isz + 1);
			if (!tmp)
				return EXT4_FAILED;
			rc = ext2fs_inline_data_get(w->fs, ino, NULL, tmp,
						    &isz);
			if (!rc)
				memcpy(t, tmp, size);
			free(tmp);
		}
	} else if (ext2fs_is_fast_symlink((struct ext2_inode *)inode)) {
		if (size >= sizeof(inode->i_block)) {
			errf(w->err, w->errlen, "corrupt filesystem: fast "
			     "symlink %s has length %" PRIu64, name, size);
			return EXT4_FAILED;
		}
		memcpy(t, inode->i_block, size);
	} else {
		ext2_file_t f;
		unsigned got = 0;

		rc = ext2fs_file_open2(w->fs, ino, (struct ext2_inode *)inode,
				       0, &f);
		if (!rc) {
			rc = ext2fs_file_read(f, t, (unsigned)size, &got);
			ext2fs_file_close(f);
			if (!rc && got != size)
				rc = EXT2_ET_SHORT_READ;
		}
	}
	if (rc) {
		errf(w->err, w->errlen, "reading symlink %s: %s", name,
		     why(w->dev, rc));
		return EXT4_FAILED;
	}
	t[size] = '\0';
	if (memchr(t, '\0', size)) {
		errf(w->err, w->errlen, "corrupt filesystem: symlink %s holds "
		     "a NUL byte", name);
		return EXT4_FAILED;
	}
	return 0;
}

/* Replaces the rest of the walk by target + "/" + rest. */
static int splice_link(struct walk *w, const char *target, const char *name)
{
	char *next = w->buf[!w->cur];
	int n = snprintf(next, EXT4_PATH_MAX, "%s%s%s", target,
			 *w->rest ? "/" : "", w->rest);

	if (n < 0 || n >= EXT4_PATH_MAX) {
		errf(w->err, w->errlen, "%s: the path through its symlink is "
		     "longer than %d bytes", name, EXT4_PATH_MAX - 1);
		return EXT4_FAILED;
	}
	w->cur = !w->cur;
	w->rest = next;
	return 0;
}

/* The path walked so far, as the user would write it. */
static void shown_append(char *shown, size_t len, const char *name)
{
	size_t sl = strlen(shown);

	snprintf(shown + sl, len - sl, "%s%s", sl > 1 ? "/" : "", name);
}

static void shown_parent(char *shown)
{
	char *slash = strrchr(shown, '/');

	if (slash == shown)
		shown[1] = '\0';
	else if (slash)
		*slash = '\0';
}

/* Walks path from the root, following symlinks; *ino, *inode get the
 * final inode, shown the resolved path (for messages). */
static int walk_path(struct walk *w, const char *path, ext2_ino_t *ino,
		     struct ext2_inode *inode, char *shown, size_t shownlen)
{
	ext2_ino_t dir = EXT2_ROOT_INO, cur = EXT2_ROOT_INO;
	char target[EXT4_PATH_MAX];
	bool fresh = true; /* at the start of a path: '/' means the root */
	errcode_t rc;

	snprintf(w->buf[0], EXT4_PATH_MAX, "%s", path);
	w->cur = 0;
	w->rest = w->buf[0];
	snprintf(shown, shownlen, "/");
	rc = ext2fs_read_inode(w->fs, cur, inode);
	while (!rc) {
		char name[EXT2_NAME_LEN + 1];
		size_t len;

		if (fresh && *w->rest == '/') {
			/* An absolute path (or a symlink's): from the root. */
			dir = cur = EXT2_ROOT_INO;
			snprintf(shown, shownlen, "/");
			rc = ext2fs_read_inode(w->fs, cur, inode);
			if (rc)
				break;
		}
		fresh = false;
		while (*w->rest == '/')
			w->rest++;
		if (!*w->rest)
			break;
		len = strcspn(w->rest, "/");
		if (!LINUX_S_ISDIR(inode->i_mode)) {
			errf(w->err, w->errlen, "%s is not a directory", shown);
			return EXT4_FAILED;
		}
		if (len > EXT2_NAME_LEN) {
			errf(w->err, w->errlen, "%.40s...: no such file (name "
			     "longer than %d bytes)", w->rest, EXT2_NAME_LEN);
			return EXT4_NOT_FOUND;
		}
		memcpy(name, w->rest, len);
		name[len] = '\0';
		w->rest += len;
		dir = cur;
		rc = ext2fs_lookup(w->fs, dir, name, (int)len, NULL, &cur);
		if (rc == EXT2_ET_FILE_NOT_FOUND) {
			shown_append(shown, shownlen, name);
			errf(w->err, w->errlen, "%s: no such file", shown);
			return EXT4_NOT_FOUND;
		}
		if (rc)
			break;
		rc = ext2fs_read_inode(w->fs, cur, inode);
		if (rc)
			break;
		shown_append(shown, shownlen, name);
		if (!LINUX_S_ISLNK(inode->i_mode))
			continue;
		if (++w->links > EXT4_MAX_SYMLINKS) {
			errf(w->err, w->errlen, "%s: too many levels of symbolic "
			     "links (a loop?)", path);
			return EXT4_FAILED;
		}
		if (read_link(w, cur, inode, shown, target, sizeof(target)) ||
		    splice_link(w, target, shown))
			return EXT4_FAILED;
		/* A relative target continues from the link's directory. */
		fresh = true;
		cur = dir;
		shown_parent(shown);
		rc = ext2fs_read_inode(w->fs, cur, inode);
	}
	if (rc) {
		errf(w->err, w->errlen, "corrupt filesystem: %s (at %s)",
		     why(w->dev, rc), shown);
		return EXT4_FAILED;
	}
	*ino = cur;
	return 0;
}

static int read_file(struct walk *w, ext2_ino_t ino, struct ext2_inode *inode,
		     const char *shown, uint64_t max, uint8_t **out,
		     size_t *out_len)
{
	uint64_t size = EXT2_I_SIZE(inode), done = 0;
	ext2_file_t f;
	uint8_t *buf;
	errcode_t rc;

	if (LINUX_S_ISDIR(inode->i_mode)) {
		errf(w->err, w->errlen, "%s is a directory", shown);
		return EXT4_FAILED;
	}
	if (!LINUX_S_ISREG(inode->i_mode)) {
		errf(w->err, w->errlen, "%s is not a regular file", shown);
		return EXT4_FAILED;
	}
	if (size == 0) {
		errf(w->err, w->errlen, "%s is empty", shown);
		return EXT4_FAILED;
	}
	if (size > max) {
		errf(w->err, w->errlen, "%s is %" PRIu64 " bytes, more than "
		     "the limit of %" PRIu64, shown, size, max);
		return EXT4_FAILED;
	}
	buf = malloc((size_t)size);
	if (!buf) {
		errf(w->err, w->errlen, "out of memory for %s (%" PRIu64
		     " bytes)", shown, size);
		return EXT4_FAILED;
	}
	rc = ext2fs_file_open2(w->fs, ino, inode, 0, &f);
	if (!rc) {
		while (!rc && done < size) {
			unsigned chunk = size - done > (1u << 30) ?
						 1u << 30 :
						 (unsigned)(size - done);
			unsigned got = 0;

			rc = ext2fs_file_read(f, buf + done, chunk, &got);
			if (!rc && !got)
				rc = EXT2_ET_SHORT_READ;
			done += got;
		}
		ext2fs_file_close(f);
	}
	if (rc) {
		errf(w->err, w->errlen, "reading %s: %s", shown,
		     why(w->dev, rc));
		free(buf);
		return EXT4_FAILED;
	}
	*out = buf;
	*out_len = (size_t)size;
	return 0;
}

static const char *fs_kind(ext2_filsys fs)
{
	if (ext2fs_has_feature_extents(fs->super) ||
	    ext2fs_has_feature_64bit(fs->super) ||
	    ext2fs_has_feature_flex_bg(fs->super))
		return "ext4";
	return ext2fs_has_feature_journal(fs->super) ? "ext3" : "ext2";
}

enum ext4_status ext4_image__read_fs(const struct ext4_disk *disk,
				     uint64_t base, uint64_t len,
				     const char *path, uint64_t max,
				     uint8_t **out, size_t *out_len,
				     char *info, size_t infolen, char *err,
				     size_t errlen)
{
	struct ext4_dev dev = { .disk = disk, .base = base, .len = len };
	char name[64], shown[EXT4_PATH_MAX];
	struct ext2_inode inode;
	struct walk *w = NULL;
	ext2_filsys fs = NULL;
	ext2_ino_t ino;
	bool oom = false;
	errcode_t rc;
	int st;

	*out = NULL;
	*out_len = 0;
	if (base > disk->size || len > disk->size - base || len < 2048) {
		errf(err, errlen, "no filesystem fits in bytes %" PRIu64
		     "+%" PRIu64 " of a %" PRIu64 "-byte disk", base, len,
		     disk->size);
		return EXT4_NOT_EXT;
	}
	for (unsigned i = 0; i < NR_WINDOWS; i++) {
		dev.win[i].buf = malloc(WINDOW_BYTES);
		if (!dev.win[i].buf)
			oom = true;
	}
	w = calloc(1, sizeof(*w));
	if (oom || !w) {
		errf(err, errlen, "out of memory");
		st = EXT4_FAILED;
		goto done;
	}
	snprintf(name, sizeof(name), CHANNEL_PREFIX "%" PRIxPTR,
		 (uintptr_t)&dev);
	rc = ext2fs_open2(name, NULL, EXT2_FLAG_64BITS, 0, 0, &ext4_io_manager,
			  &fs);
	if (rc) {
		fs = NULL;
		if (rc == EXT2_ET_BAD_MAGIC) {
			errf(err, errlen, "not an ext2/3/4 filesystem");
			st = EXT4_NOT_EXT;
		} else {
			errf(err, errlen, "corrupt ext2/3/4 filesystem: %s",
			     why(&dev, rc));
			st = EXT4_BAD_FS;
		}
		goto done;
	}
	*w = (struct walk){ .fs = fs, .dev = &dev, .err = err,
			    .errlen = errlen };
	st = walk_path(w, path, &ino, &inode, shown, sizeof(shown));
	if (!st)
		st = read_file(w, ino, &inode, shown, max, out, out_len);
	/* Read-only, so an unclean journal is not replayed: files written
	 * just before a crash may read stale.  Said, not refused. */
	if (!st && info)
		snprintf(info, infolen, "%s, %s%s", fs_kind(fs), shown,
			 ext2fs_has_feature_journal_needs_recovery(fs->super) ?
				 ", journal not replayed" :
				 "");
done:
	if (fs)
		ext2fs_close_free(&fs);
	free(w);
	for (unsigned i = 0; i < NR_WINDOWS; i++)
		free(dev.win[i].buf);
	return (enum ext4_status)st;
}
