/* block__open: which format (given, or probed as QEMU probes), which engine
 * (raw io_uring, raw thread pool, NBD to a qemu-storage-daemon child or to
 * an export named by a URI), and the drive's geometry for the device.
 * Every failure is one line naming the file; nothing here waits without a
 * deadline. */
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

#define DEFAULT_START_TIMEOUT_MS 10000
#define NBD_EXPORT_NAME "disk"

static void warn(struct block_dev *d, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Warnings accumulate on one line, separated by "; ". */
static void warn(struct block_dev *d, const char *fmt, ...)
{
	size_t used = strlen(d->warning);
	va_list ap;

	if (used && used + 2 < sizeof(d->warning)) {
		strcpy(d->warning + used, "; ");
		used += 2;
	}
	va_start(ap, fmt);
	verrf(d->warning + used, sizeof(d->warning) - used, fmt, ap);
	va_end(ap);
}

struct probe {
	uint8_t head[BLOCK_PROBE_BYTES];
	size_t len;
	uint64_t size;
	enum probe_result result;
};

/* Reads the first sector without caring how the image will be opened. */
static int probe_file(const char *path, struct probe *p, char *err,
		      size_t errlen)
{
	struct stat st;
	ssize_t n;
	int fd;

	if (stat(path, &st)) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	if (S_ISDIR(st.st_mode)) {
		errf(err, errlen, "%s: is a directory, not a disk image", path);
		return -1;
	}
	if (!S_ISREG(st.st_mode) && !S_ISBLK(st.st_mode)) {
		errf(err, errlen, "%s: not a regular file or block device",
		     path);
		return -1;
	}
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		return -1;
	}
	do {
		n = pread(fd, p->head, sizeof(p->head), 0);
	} while (n < 0 && errno == EINTR);
	if (n < 0) {
		errf(err, errlen, "%s: cannot read: %s", path, strerror(errno));
		close(fd);
		return -1;
	}
	p->len = (size_t)n;
	p->size = S_ISREG(st.st_mode) ? (uint64_t)st.st_size : 0;
	close(fd);
	p->result = block__probe(p->head, p->len);
	return 0;
}

/* The format to open, from format= and the probe. */
static int pick_format(struct block_dev *d, const struct drive_opts *o,
		       const struct probe *p, enum drive_format *fmt,
		       char *err, size_t errlen)
{
	enum drive_format probed = block__probe_format(p->result);
	const char *name = block__probe_name(p->result);

	if (o->format == DRIVE_FORMAT_PROBE) {
		if (probed == DRIVE_FORMAT_PROBE) {
			errf(err, errlen, "%s: a %s image, which krg-vmm "
			     "cannot open (convert it: qemu-img convert -O "
			     "qcow2)", o->file, name);
			return -1;
		}
		*fmt = probed;
		if (probed == DRIVE_FORMAT_RAW) {
			d->probed_raw = true;
			warn(d, "image format was not specified for '%s' and "
			     "probing guessed raw: writes to its first %d "
			     "bytes are restricted; give format=raw to remove "
			     "the restriction", o->file, BLOCK_PROBE_BYTES);
		}
		return 0;
	}
	*fmt = o->format;
	if (o->format == DRIVE_FORMAT_RAW) {
		if (p->result != PROBE_RAW)
			warn(d, "'%s' looks like a %s image but format=raw "
			     "was given: the guest sees its metadata as disk "
			     "contents", o->file, name);
		return 0;
	}
	/* No magic at all is left to QEMU, which names the problem. */
	if (p->result != PROBE_RAW && probed != o->format) {
		errf(err, errlen, "%s: a %s image, not %s (format=%s)",
		     o->file, name, drive_opts__format_name(o->format),
		     drive_opts__format_name(o->format));
		return -1;
	}
	return 0;
}

static void caps_to_info(struct block_dev *d, const struct drive_opts *o,
			 const struct block_caps *c)
{
	struct block_info *i = &d->info;

	i->size = c->size;
	i->logical_block_size = c->logical_block_size < 512 ?
				512 : c->logical_block_size;
	i->read_only = o->read_only || c->read_only;
	i->can_discard = !i->read_only && d->discard_unmap && c->can_discard;
	i->can_write_zeroes = !i->read_only && c->can_zero;
	snprintf(i->serial, sizeof(i->serial), "%s", o->serial);
}

static int open_raw(struct block_dev *d, const struct drive_opts *o,
		    struct block_caps *caps, char *err, size_t errlen)
{
	char why[160] = "";
	const char *engine;
	int r = -1;

	if (raw__open(o->file, o, &d->raw, caps, err, errlen))
		return -1;
	d->has_raw = true;
	/* Without aio=, io_uring only for O_DIRECT files: a buffered write
	 * cannot complete inline, so io_uring hands each one to a kernel
	 * worker per file, one after another, and its completion then wakes
	 * ours - measured 0.63x QEMU's sequential writes, where a pool thread
	 * that writes and completes itself gave 1.2x (bench/RESULTS.md). */
	if (o->aio == DRIVE_AIO_IO_URING ||
	    (o->aio != DRIVE_AIO_THREADS && (o->cache == DRIVE_CACHE_NONE ||
					    o->cache == DRIVE_CACHE_DIRECTSYNC))) {
		r = uring__open(&d->raw, &d->eng, why, sizeof(why));
		if (r == 0)
			d->ops = &uring_engine_ops;
		else if (o->aio == DRIVE_AIO_IO_URING) {
			errf(err, errlen, "%s: aio=io_uring: %s", o->file, why);
			return -1;
		}
	}
	if (r) {
		r = pool__open(&d->raw, &d->eng, err, errlen);
		if (r)
			return -1;
		d->ops = &pool_engine_ops;
	}
	engine = d->ops->name;
	snprintf(d->describe, sizeof(d->describe), "raw, %s%s%s%s, cache=%s%s",
		 engine, why[0] ? " (" : "", why, why[0] ? ")" : "",
		 drive_opts__cache_name(o->cache),
		 o->read_only ? ", read-only" : "");
	if (caps->size == 0)
		warn(d, "'%s' is empty: the guest sees a disk of 0 bytes",
		     o->file);
	return 0;
}

static int open_qemu(struct block_dev *d, const struct drive_opts *o,
		     enum drive_format fmt, unsigned timeout_ms,
		     struct block_caps *caps, char *err, size_t errlen)
{
	char why[384];

	d->qsd = qsd__start(o->file, fmt, o, timeout_ms, err, errlen);
	if (!d->qsd)
		return -1;
	d->eng = nbdc__open(NULL, qsd__socket(d->qsd), NBD_EXPORT_NAME,
			    timeout_ms, o->read_only, caps, why, sizeof(why));
	if (!d->eng) {
		char last[384];

		qsd__last_error(d->qsd, last, sizeof(last));
		errf(err, errlen, "%s: %s", o->file, last[0] ? last : why);
		return -1;
	}
	d->ops = &nbd_engine_ops;
	snprintf(d->describe, sizeof(d->describe), "%s via qemu-storage-daemon"
		 " (NBD), cache=%s%s", drive_opts__format_name(fmt),
		 drive_opts__cache_name(o->cache),
		 o->read_only ? ", read-only" : "");
	return 0;
}

static int open_uri(struct block_dev *d, const struct drive_opts *o,
		    unsigned timeout_ms, struct block_caps *caps, char *err,
		    size_t errlen)
{
	char why[384];

	d->eng = nbdc__open(o->file, NULL, NULL, timeout_ms, o->read_only,
			    caps, why, sizeof(why));
	if (!d->eng) {
		errf(err, errlen, "%s: %s", o->file, why);
		return -1;
	}
	d->ops = &nbd_engine_ops;
	snprintf(d->describe, sizeof(d->describe), "NBD export, cache=%s%s",
		 drive_opts__cache_name(o->cache),
		 o->read_only || caps->read_only ? ", read-only" : "");
	return 0;
}

static int open_file(struct block_dev *d, const struct drive_opts *o,
		     unsigned timeout_ms, struct block_caps *caps, char *err,
		     size_t errlen)
{
	enum drive_format fmt;
	struct probe p;

	if (probe_file(o->file, &p, err, errlen))
		return -1;
	if (pick_format(d, o, &p, &fmt, err, errlen))
		return -1;
	if (fmt == DRIVE_FORMAT_RAW)
		return open_raw(d, o, caps, err, errlen);
	if (fmt == DRIVE_FORMAT_QCOW2) {
		char why[256];

		if (block__qcow2_fits(p.head, p.len, p.size, why,
				      sizeof(why))) {
			errf(err, errlen, "%s: %s", o->file, why);
			return -1;
		}
	}
	return open_qemu(d, o, fmt, timeout_ms, caps, err, errlen);
}

struct block_dev *block__open(const struct drive_opts *o, char *err,
			      size_t errlen)
{
	unsigned timeout_ms;
	struct block_caps caps = { 0 };
	struct block_dev *d;
	int r;

	if (!o || !o->file[0]) {
		errf(err, errlen, "-drive: file= is required");
		return NULL;
	}
	d = calloc(1, sizeof(*d));
	if (!d) {
		errf(err, errlen, "%s: out of memory", o->file);
		return NULL;
	}
	pthread_mutex_init(&d->lock, NULL);
	pthread_cond_init(&d->idle, NULL);
	d->no_flush = drive_opts__no_flush(o);
	d->discard_unmap = o->discard_unmap;
	atomic_init(&d->write_cache, drive_opts__write_cache(o));
	timeout_ms = o->start_timeout_ms ? o->start_timeout_ms :
		     DEFAULT_START_TIMEOUT_MS;
	if (drive_opts__is_uri(o->file))
		r = open_uri(d, o, timeout_ms, &caps, err, errlen);
	else
		r = open_file(d, o, timeout_ms, &caps, err, errlen);
	if (r) {
		block__close(d);	/* nothing was submitted: no wait */
		return NULL;
	}
	caps_to_info(d, o, &caps);
	return d;
}
