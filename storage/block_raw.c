/* Raw images and block devices: opening with the cache mode's flags,
 * geometry, what the host supports (probed without touching data), and
 * the synchronous execution of a request that the thread pool uses. */
#include <errno.h>
#include <fcntl.h>
#include <linux/fs.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

#define FALLBACK_DIO_ALIGN 4096

static int open_flags(const struct drive_opts *o)
{
	return (o->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC;
}

static int open_error(const char *path, const struct drive_opts *o, int e,
		      char *err, size_t errlen)
{
	if (e == EINVAL && drive_opts__direct(o))
		errf(err, errlen, "%s: cache=%s needs O_DIRECT, which its "
		     "filesystem refuses (use cache=writeback or "
		     "writethrough)", path, drive_opts__cache_name(o->cache));
	else if (!o->read_only && (e == EACCES || e == EPERM || e == EROFS))
		errf(err, errlen, "%s: %s (readonly=on opens it read-only)",
		     path, strerror(e));
	else
		errf(err, errlen, "%s: %s", path, strerror(e));
	return -1;
}

/* O_DIRECT's alignment rules for this file: statx knows them on recent
 * kernels; otherwise a page is always enough. */
static void dio_align(struct raw_file *f, const struct stat *st)
{
	struct statx sx;
	int lbs;

	f->mem_align = f->off_align = FALLBACK_DIO_ALIGN;
	if (!statx(f->fd, "", AT_EMPTY_PATH, STATX_DIOALIGN, &sx) &&
	    (sx.stx_mask & STATX_DIOALIGN) && sx.stx_dio_offset_align &&
	    sx.stx_dio_mem_align) {
		f->mem_align = sx.stx_dio_mem_align;
		f->off_align = sx.stx_dio_offset_align;
	} else if (S_ISBLK(st->st_mode) && !ioctl(f->fd, BLKSSZGET, &lbs) &&
		   lbs > 0) {
		f->mem_align = f->off_align = (uint32_t)lbs;
	}
}

/* Punching beyond the end of a file changes nothing that can be read, and
 * tells whether the filesystem supports it at all.  Block devices always
 * do (the kernel writes zeros where the device cannot discard). */
static bool probe_punch(const struct raw_file *f, uint64_t size)
{
	off_t off = (off_t)((size + 4095) & ~(uint64_t)4095);

	if (f->is_bdev)
		return true;
	return fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
			 off, 4096) == 0;
}

int raw__open(const char *path, const struct drive_opts *o,
	      struct raw_file *f, struct block_caps *caps, char *err,
	      size_t errlen)
{
	bool direct = drive_opts__direct(o);
	struct stat st;
	int lbs = 512;

	memset(f, 0, sizeof(*f));
	f->fd = f->fd_buffered = -1;
	f->mem_align = f->off_align = 1;
	f->fd = open(path, open_flags(o) | (direct ? O_DIRECT : 0));
	if (f->fd < 0)
		return open_error(path, o, errno, err, errlen);
	if (fstat(f->fd, &st)) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (S_ISBLK(st.st_mode)) {
		f->is_bdev = true;
		if (ioctl(f->fd, BLKGETSIZE64, &caps->size)) {
			errf(err, errlen, "%s: cannot get its size: %s", path,
			     strerror(errno));
			goto fail;
		}
		if (ioctl(f->fd, BLKSSZGET, &lbs) || lbs < 512)
			lbs = 512;
	} else if (S_ISREG(st.st_mode)) {
		caps->size = (uint64_t)st.st_size;
	} else {
		errf(err, errlen, "%s: not a regular file or block device",
		     path);
		goto fail;
	}
	f->fd_buffered = f->fd;
	if (direct) {
		dio_align(f, &st);
		f->fd_buffered = open(path, open_flags(o));
		if (f->fd_buffered < 0) {
			open_error(path, o, errno, err, errlen);
			goto fail;
		}
	}
	if (!o->read_only) {
		f->punch_ok = probe_punch(f, caps->size);
		f->zero_buf = aligned_alloc(4096, BLOCK_ZERO_BUF);
		if (!f->zero_buf) {
			errf(err, errlen, "%s: out of memory", path);
			goto fail;
		}
		memset(f->zero_buf, 0, BLOCK_ZERO_BUF);
	}
	caps->logical_block_size = (uint32_t)lbs;
	caps->read_only = o->read_only;
	caps->can_discard = f->punch_ok;
	caps->can_zero = !o->read_only;   /* emulated by writes if need be */
	return 0;
fail:
	raw__close(f);
	return -1;
}

void raw__close(struct raw_file *f)
{
	if (f->fd_buffered >= 0 && f->fd_buffered != f->fd)
		close(f->fd_buffered);
	if (f->fd >= 0)
		close(f->fd);
	free(f->zero_buf);
	f->fd = f->fd_buffered = -1;
	f->zero_buf = NULL;
}

int raw__pick_fd(const struct raw_file *f, const struct iovec *iov,
		 int iovcnt, uint64_t off)
{
	if (f->fd == f->fd_buffered)
		return f->fd;
	if (off % f->off_align)
		return f->fd_buffered;
	for (int i = 0; i < iovcnt; i++)
		if ((uintptr_t)iov[i].iov_base % f->mem_align ||
		    iov[i].iov_len % f->off_align)
			return f->fd_buffered;
	return f->fd;
}

int raw__iov_skip(const struct iovec *iov, int iovcnt, uint64_t skip,
		  struct iovec *dst)
{
	int n = 0;

	for (int i = 0; i < iovcnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		dst[n].iov_base = (char *)iov[i].iov_base + skip;
		dst[n].iov_len = iov[i].iov_len - skip;
		skip = 0;
		n++;
	}
	return n;
}

void raw__iov_zero(const struct iovec *iov, int iovcnt, uint64_t skip)
{
	for (int i = 0; i < iovcnt; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		memset((char *)iov[i].iov_base + skip, 0,
		       iov[i].iov_len - skip);
		skip = 0;
	}
}

static int exec_rw(struct raw_file *f, const struct bio *b)
{
	const struct block_req *req = b->req;
	const struct iovec *iov = req->iov;
	struct iovec *rest = NULL;
	int cnt = req->iovcnt, r = 0;
	uint64_t done = 0;

	while (done < b->len) {
		int fd = raw__pick_fd(f, iov, cnt, b->off + done);
		ssize_t n;

		if (b->op == BIO_READ)
			n = preadv2(fd, iov, cnt, (off_t)(b->off + done), 0);
		else
			n = pwritev2(fd, iov, cnt, (off_t)(b->off + done),
				     b->fua ? RWF_DSYNC : 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			r = -errno;
			break;
		}
		if (n == 0) {
			/* The file shrank under us: reads see zeros, as
			 * QEMU's raw driver does. */
			if (b->op == BIO_READ)
				raw__iov_zero(req->iov, req->iovcnt, done);
			else
				r = -EIO;
			break;
		}
		done += (uint64_t)n;
		if (done < b->len) {
			if (!rest) {
				rest = calloc((size_t)req->iovcnt,
					      sizeof(*rest));
				if (!rest) {
					r = -ENOMEM;
					break;
				}
			}
			cnt = raw__iov_skip(req->iov, req->iovcnt, done, rest);
			iov = rest;
		}
	}
	free(rest);
	return r;
}

static bool unsupported(int e)
{
	return e == EOPNOTSUPP || e == ENOSYS || e == ENOTTY;
}

static int write_zeros(struct raw_file *f, uint64_t off, uint64_t len)
{
	while (len) {
		size_t n = len < BLOCK_ZERO_BUF ? (size_t)len : BLOCK_ZERO_BUF;
		struct iovec v = { f->zero_buf, n };
		ssize_t w = pwritev(raw__pick_fd(f, &v, 1, off), &v, 1,
				    (off_t)off);

		if (w < 0 && errno == EINTR)
			continue;
		if (w < 0)
			return -errno;
		if (w == 0)
			return -EIO;
		off += (uint64_t)w;
		len -= (uint64_t)w;
	}
	return 0;
}

/* Zeros by the cheapest means the host has: a hole if allowed, an
 * unwritten extent, or plain writes. */
static int exec_zero(struct raw_file *f, const struct bio *b)
{
	const int keep = FALLOC_FL_KEEP_SIZE;

	if (b->unmap && f->punch_ok) {
		if (!fallocate(f->fd, FALLOC_FL_PUNCH_HOLE | keep,
			       (off_t)b->off, (off_t)b->len))
			return 0;
		if (!unsupported(errno) && errno != EINVAL)
			return -errno;
	}
	if (!fallocate(f->fd, FALLOC_FL_ZERO_RANGE | keep, (off_t)b->off,
		       (off_t)b->len))
		return 0;
	if (!unsupported(errno) && errno != EINVAL)
		return -errno;
	return write_zeros(f, b->off, b->len);
}

static int sync_fd(int fd)
{
	return fdatasync(fd) ? -errno : 0;
}

int raw__exec(struct raw_file *f, const struct bio *b)
{
	int r;

	switch (b->op) {
	case BIO_NOP:
		return 0;
	case BIO_READ:
	case BIO_WRITE:
		return exec_rw(f, b);
	case BIO_FLUSH:
		return sync_fd(f->fd);
	case BIO_DISCARD:
		/* Advisory: a filesystem without holes just keeps the data. */
		if (!f->punch_ok ||
		    !fallocate(f->fd, FALLOC_FL_PUNCH_HOLE |
			       FALLOC_FL_KEEP_SIZE, (off_t)b->off,
			       (off_t)b->len) || unsupported(errno))
			return 0;
		return -errno;
	case BIO_ZERO:
		r = exec_zero(f, b);
		if (!r && b->fua)
			r = sync_fd(f->fd);
		return r;
	}
	return -EINVAL;
}
