/* The block layer behind virtio-blk: one struct block_dev per -drive.
 *
 * Raw images (and block devices) are served directly: a small thread pool
 * doing preadv/pwritev for buffered files (cache=writeback, writethrough,
 * unsafe), io_uring with one completion thread for O_DIRECT ones
 * (cache=none, directsync; the pool when the host forbids io_uring);
 * aio=threads|io_uring chooses.  Every other format (qcow2, vmdk,
 * vdi, vpc, vhdx, qed) goes through QEMU's own block layer: a private
 * qemu-storage-daemon child exports the image over NBD on a unix socket in
 * a private directory, and libnbd talks to it.  file=nbd://... or
 * nbd+unix://... uses an existing NBD export instead.
 *
 * Requests are asynchronous: block__submit() either refuses a request at
 * once (-errno, done() never called) or queues it, and then done() runs
 * exactly once, later, on a backend thread (never inside block__submit, so
 * a caller may hold its own lock across the call).  done() may submit new
 * requests.  Bytes are checked before anything touches the image: a request
 * reaching past the end is -EINVAL, a write to a read-only disk -EROFS.
 *
 * Durability: FLUSH completes only once every write completed before it is
 * on stable storage (fdatasync, or NBD_CMD_FLUSH which QEMU turns into
 * one), so no acknowledged-then-flushed write is lost if the host crashes.
 * With the guest's write cache off (cache=writethrough/directsync, or
 * block__set_write_cache(false)) every write is durable when it completes.
 * cache=unsafe makes FLUSH a no-op (QEMU's cache.no-flush): fast, and a
 * host crash may lose anything.
 *
 * The qemu-storage-daemon child is killed if this process dies
 * (PR_SET_PDEATHSIG, tied to a thread that lives as long as the disk) and
 * is stopped and reaped by block__close(). */
#ifndef KRG_VMM_STORAGE_BLOCK_H
#define KRG_VMM_STORAGE_BLOCK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

/* At most this many iovecs per READ/WRITE (the kernel's IOV_MAX). */
#define BLOCK_MAX_IOV 1024

/* enum block_op, struct block_req and struct block_info live with the
 * device models, so that virtio-blk builds without storage/. */
#include "vmm/devices/block_req.h"

struct drive_opts;   /* parsed -drive, storage/drive_opts.h */
struct block_dev;

/* Opens the image o describes.  NULL with one line in err (never a hang:
 * starting qemu-storage-daemon times out after o->start_timeout_ms). */
struct block_dev *block__open(const struct drive_opts *o, char *err,
			      size_t errlen);
void block__info(const struct block_dev *b, struct block_info *out);
/* 0: queued, done() called later exactly once; -errno: refused now, done()
 * never called. */
int block__submit(struct block_dev *b, struct block_req *req);
/* Waits until every submitted request completed (its done() returned). */
void block__drain(struct block_dev *b);
/* Drains first; stops the qemu-storage-daemon child if there is one. */
void block__close(struct block_dev *b);

/* One line for the log: format, engine, cache mode, e.g.
 * "raw, threads, cache=writeback" or
 * "qcow2 via qemu-storage-daemon (NBD), cache=none". */
void block__describe(const struct block_dev *b, char *buf, size_t len);
/* A warning the user should see (a probed raw image, an empty image, a
 * format=raw image that looks like another format), or NULL. */
const char *block__warning(const struct block_dev *b);
/* The unix socket of this disk's qemu-storage-daemon NBD export (export
 * name "disk"), or NULL when the image is not served through one: other
 * cluster nodes on this host connect to it for their own handle. */
const char *block__nbd_socket(const struct block_dev *b);
/* The guest-visible write cache (virtio-blk's VIRTIO_BLK_F_CONFIG_WCE):
 * starts as the cache= mode says; off makes every write durable before it
 * completes. */
bool block__write_cache(const struct block_dev *b);
void block__set_write_cache(struct block_dev *b, bool on);

#endif
