/* Disks at a checkpoint: the image the VM wrote until now becomes the
 * snapshot's disk and is never written again; the VM goes on in a qcow2
 * overlay created at the checkpoint with that image as its backing file
 * (qemu-img create -b), for raw images as for qcow2.  A restore creates
 * another overlay on the same frozen image, so one snapshot can be
 * restored any number of times.  Overlays live next to their backing
 * image, named <image>.krg-<time>.qcow2 (an earlier suffix of ours is
 * replaced, not stacked). */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <spawn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/drive_opts.h"
#include "vmm/ckpt_priv.h"
#include "vmm/errf.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

extern char **environ;

#define QEMU_IMG "qemu-img"

/* ---- a FLUSH through the block layer, waited for ---- */

struct flush_wait {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void flush_done(struct block_req *req, int result)
{
	struct flush_wait *fw = req->opaque;

	pthread_mutex_lock(&fw->lock);
	fw->done = true;
	fw->result = result;
	pthread_cond_signal(&fw->cond);
	pthread_mutex_unlock(&fw->lock);
}

static int flush(struct block_dev *b)
{
	struct flush_wait fw = { PTHREAD_MUTEX_INITIALIZER,
				 PTHREAD_COND_INITIALIZER, false, 0 };
	struct block_req req = { .op = BLOCK_OP_FLUSH, .done = flush_done,
				 .opaque = &fw };
	int rc = block__submit(b, &req);

	if (rc)
		return rc;
	pthread_mutex_lock(&fw.lock);
	while (!fw.done)
		pthread_cond_wait(&fw.cond, &fw.lock);
	pthread_mutex_unlock(&fw.lock);
	return fw.result;
}

/* ---- qemu-img ---- */

/* Runs qemu-img create; its complaint (first line) goes into err. */
static int qemu_img_create(const char *backing, const char *fmt,
			   const char *overlay, char *err, size_t errlen)
{
	char *const argv[] = { QEMU_IMG, "create", "-q", "-f", "qcow2", "-b",
			       (char *)backing, "-F", (char *)fmt,
			       (char *)overlay, NULL };
	posix_spawn_file_actions_t fa;
	char out[512];
	int p[2], status = 0;
	ssize_t n, got = 0;
	pid_t pid;
	int rc;

	if (pipe2(p, O_CLOEXEC) < 0) {
		errf(err, errlen, "pipe: %s", strerror(errno));
		return -1;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	posix_spawn_file_actions_adddup2(&fa, p[1], 1);
	posix_spawn_file_actions_adddup2(&fa, p[1], 2);
	rc = posix_spawnp(&pid, QEMU_IMG, &fa, NULL, argv, environ);
	posix_spawn_file_actions_destroy(&fa);
	close(p[1]);
	if (rc) {
		close(p[0]);
		errf(err, errlen, "cannot run %s (package qemu-utils): %s",
		     QEMU_IMG, strerror(rc));
		return -1;
	}
	while ((n = read(p[0], out + got, sizeof(out) - 1 - (size_t)got)) > 0 ||
	       (n < 0 && errno == EINTR))
		if (n > 0)
			got += n;
	close(p[0]);
	out[got] = '\0';
	while (waitpid(pid, &status, 0) < 0 && errno == EINTR)
		;
	if (WIFEXITED(status) && WEXITSTATUS(status) == 0)
		return 0;
	out[strcspn(out, "\n")] = '\0';
	errf(err, errlen, "qemu-img create %s: %s", overlay,
	     out[0] ? out : "failed");
	return -1;
}

/* <image>.krg-<time>.qcow2, any earlier ".krg-*.qcow2" of ours dropped. */
static int overlay_name(const char *image, char *out, size_t outlen)
{
	const char *k = strstr(image, ".krg-");
	size_t stem = k && strstr(k, ".qcow2") && !strchr(k, '/') ?
			      (size_t)(k - image) : strlen(image);
	struct timespec ts;
	struct tm tm;

	clock_gettime(CLOCK_REALTIME, &ts);
	gmtime_r(&ts.tv_sec, &tm);
	if ((size_t)snprintf(out, outlen, "%.*s.krg-%04d%02d%02d-%02d%02d%02d-"
			     "%06ld.qcow2", (int)stem, image, tm.tm_year + 1900,
			     tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
			     tm.tm_sec, ts.tv_nsec / 1000) >= outlen)
		return -1;
	return 0;
}

static int identify(const char *file, struct ckpt_drive *d, char *err,
		    size_t errlen)
{
	struct stat st;

	if (stat(file, &st) < 0) {
		errf(err, errlen, "%s: %s", file, strerror(errno));
		return -1;
	}
	d->size = (uint64_t)st.st_size;
	d->mtime_ns = (int64_t)st.st_mtim.tv_sec * 1000000000 +
		      st.st_mtim.tv_nsec;
	return 0;
}

static int sync_file(const char *file, char *err, size_t errlen)
{
	int fd = open(file, O_RDONLY | O_CLOEXEC);

	if (fd < 0 || fsync(fd) < 0) {
		errf(err, errlen, "syncing %s: %s", file, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	close(fd);
	return 0;
}

/* The block layer's own word for the format ("raw, io_uring, ..."). */
static void format_of(struct block_dev *b, const struct drive_opts *o,
		      char *fmt, size_t len)
{
	char desc[256];

	if (o->format != DRIVE_FORMAT_PROBE) {
		snprintf(fmt, len, "%s", drive_opts__format_name(o->format));
		return;
	}
	block__describe(b, desc, sizeof(desc));
	desc[strcspn(desc, ", ")] = '\0';
	snprintf(fmt, len, "%.15s", desc);
}

static void describe(const struct drive_opts *o, struct ckpt_drive *d)
{
	snprintf(d->cache, sizeof(d->cache), "%s",
		 drive_opts__cache_name(o->cache));
	snprintf(d->serial, sizeof(d->serial), "%s", o->serial);
	snprintf(d->id, sizeof(d->id), "%s", o->id);
	d->read_only = o->read_only;
	d->discard_unmap = o->discard_unmap;
}

static int freeze_one(struct machine *m, unsigned i, struct ckpt_drive *d,
		      char *err, size_t errlen)
{
	/* The VM's disk from now on: a reset rebuilds from cfg and must
	 * reopen the overlay, never the frozen image. */
	struct drive_opts *o = &((struct vm_config *)m->cfg)->drives[i];
	struct block_dev *old = machine__drive_bdev(m, i), *nb;
	struct drive_opts no;
	char e[512];
	bool wc;
	int rc;

	describe(o, d);
	if (drive_opts__is_uri(o->file)) {
		errf(err, errlen, "-drive %u is an NBD export: a checkpoint "
		     "cannot freeze it", i);
		return -1;
	}
	if (!realpath(o->file, d->file)) {
		errf(err, errlen, "-drive %u: %s: %s", i, o->file,
		     strerror(errno));
		return -1;
	}
	format_of(old, o, d->format, sizeof(d->format));
	if (o->read_only)
		return identify(d->file, d, err, errlen);
	rc = flush(old);
	if (rc) {
		errf(err, errlen, "-drive %u: flushing: %s", i, strerror(-rc));
		return -1;
	}
	no = *o;
	no.format = DRIVE_FORMAT_QCOW2;
	if (overlay_name(d->file, no.file, sizeof(no.file)) < 0) {
		errf(err, errlen, "-drive %u: path too long", i);
		return -1;
	}
	/* The guest may have switched the write cache (virtio-blk WCE). */
	wc = block__write_cache(old);
	/* Closing lets go of the image (qemu-storage-daemon holds a write
	 * lock on a qcow2, and its caches) before qemu-img reads it. */
	block__close(old);
	if (sync_file(d->file, err, errlen) < 0 ||
	    identify(d->file, d, err, errlen) < 0 ||
	    qemu_img_create(d->file, d->format, no.file, err, errlen) < 0) {
		nb = NULL;
	} else {
		nb = block__open(&no, e, sizeof(e));
		if (!nb)
			errf(err, errlen, "-drive %u: opening the overlay: %s",
			     i, e);
		else
			*o = no;
	}
	if (!nb) {
		/* Back onto the image as it was: this snapshot fails, the
		 * VM goes on. */
		unlink(no.file);
		nb = block__open(o, e, sizeof(e));
		if (!nb) {
			machine__request_stop(m, KRG_EXIT_FAILURE, "checkpoint: "
					      "-drive %u cannot be reopened: "
					      "%s", i, e);
			return -1;
		}
		block__set_write_cache(nb, wc);
		machine__drive_set_bdev(m, i, nb);
		return -1;
	}
	block__set_write_cache(nb, wc);
	machine__drive_set_bdev(m, i, nb);
	return 0;
}

int ckpt_disk__freeze(struct machine *m, struct ckpt_drive *drives,
		      uint32_t *nr, char *err, size_t errlen)
{
	unsigned n = machine__nr_drives(m);

	*nr = 0;
	for (unsigned i = 0; i < n; i++) {
		memset(&drives[i], 0, sizeof(drives[i]));
		if (freeze_one(m, i, &drives[i], err, errlen) < 0)
			return -1;
		*nr = i + 1;
	}
	return 0;
}

int ckpt_disk__check(const struct ckpt_drive *d, char *err, size_t errlen)
{
	struct ckpt_drive now;

	if (identify(d->file, &now, err, errlen) < 0)
		return -1;
	if (now.size != d->size || now.mtime_ns != d->mtime_ns) {
		errf(err, errlen, "disk image %s changed since the checkpoint "
		     "(size or modification time differ): the snapshot's disk "
		     "state is gone", d->file);
		return -1;
	}
	return 0;
}

int ckpt_disk__restore_overlay(const struct ckpt_drive *d, char *out,
			       size_t outlen, char *err, size_t errlen)
{
	if (ckpt_disk__check(d, err, errlen) < 0)
		return -1;
	if (d->read_only) {
		snprintf(out, outlen, "%s", d->file);
		return 0;
	}
	if (overlay_name(d->file, out, outlen) < 0) {
		errf(err, errlen, "%s: path too long", d->file);
		return -1;
	}
	return qemu_img_create(d->file, d->format, out, err, errlen);
}
