/* Inside the block layer: what storage/block.c (checks, accounting) asks of
 * a backend engine (raw io_uring, raw thread pool, NBD), and the helpers
 * they share.  Not for use outside storage/. */
#ifndef KRG_VMM_STORAGE_BLOCK_PRIV_H
#define KRG_VMM_STORAGE_BLOCK_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "storage/block.h"
#include "storage/drive_opts.h"

/* What an engine is asked to do, after block.c applied the drive's policy
 * (discard=, cache=, read-only, bounds). */
enum bio_op {
	BIO_NOP,        /* complete with 0: ignored discard, unsafe flush */
	BIO_READ,
	BIO_WRITE,
	BIO_FLUSH,
	BIO_DISCARD,    /* advisory: unsupported by the host is still 0 */
	BIO_ZERO,       /* must read back as zeros afterwards */
};

struct bio {
	enum bio_op op;
	bool fua;       /* durable before completion (write cache off) */
	bool unmap;     /* BIO_ZERO: may deallocate */
	uint64_t off, len;      /* len: total bytes, also for READ/WRITE */
	struct block_req *req;  /* iov, iovcnt; handed back on completion */
	struct block_dev *dev;
};

struct block_engine_ops {
	const char *name;
	/* Queue b (copied); 0, or -errno with nothing queued. */
	int (*submit)(void *eng, const struct bio *b);
	/* Called once the device is drained. */
	void (*close)(void *eng);
};

/* What an engine reports about the image when it opens. */
struct block_caps {
	uint64_t size;
	uint32_t logical_block_size;
	bool read_only;
	bool can_discard;       /* discard reaches the image */
	bool can_zero;
};

/* The engine's end of a request: calls req->done and the accounting. */
void block__complete(const struct bio *b, int result);

/* Raw files and block devices (storage/block_raw.c). */
struct raw_file {
	int fd;                 /* O_DIRECT when cache=none/directsync */
	int fd_buffered;        /* == fd unless O_DIRECT: for unaligned I/O */
	uint32_t mem_align, off_align;  /* O_DIRECT's; 1 without it */
	bool is_bdev;
	bool punch_ok;          /* fallocate(PUNCH_HOLE) known to work */
	uint8_t *zero_buf;      /* BLOCK_ZERO_BUF bytes of zeros, aligned */
};

#define BLOCK_ZERO_BUF (1u << 20)
/* Bytes read to probe a format, and the first-sector guard's size. */
#define BLOCK_PROBE_BYTES 512

int raw__open(const char *path, const struct drive_opts *o,
	      struct raw_file *f, struct block_caps *caps, char *err,
	      size_t errlen);
void raw__close(struct raw_file *f);
/* The fd for a READ/WRITE of iov at off: O_DIRECT only if aligned. */
int raw__pick_fd(const struct raw_file *f, const struct iovec *iov,
		 int iovcnt, uint64_t off);
/* Copies iov into dst skipping its first skip bytes; returns the count. */
int raw__iov_skip(const struct iovec *iov, int iovcnt, uint64_t skip,
		  struct iovec *dst);
void raw__iov_zero(const struct iovec *iov, int iovcnt, uint64_t skip);
/* Synchronous execution of b, for the thread pool. */
int raw__exec(struct raw_file *f, const struct bio *b);

/* Engines: *eng for block_engine_ops, or -errno / NULL with err. */
int uring__open(struct raw_file *f, void **eng, char *err, size_t errlen);
extern const struct block_engine_ops uring_engine_ops;
int pool__open(struct raw_file *f, void **eng, char *err, size_t errlen);
extern const struct block_engine_ops pool_engine_ops;

/* NBD (storage/block_nbd.c): connects to uri, or to socket with export
 * name when uri is NULL, within timeout_ms. */
void *nbdc__open(const char *uri, const char *socket, const char *export,
		 unsigned timeout_ms, bool read_only,
		 struct block_caps *caps, char *err, size_t errlen);
extern const struct block_engine_ops nbd_engine_ops;

/* The qemu-storage-daemon child (storage/block_qsd.c). */
struct qsd;
struct qsd *qsd__start(const char *path, enum drive_format fmt,
		       const struct drive_opts *o, unsigned timeout_ms,
		       char *err, size_t errlen);
const char *qsd__socket(const struct qsd *q);
/* The last line the daemon wrote on stderr, if it died, else "". */
void qsd__last_error(struct qsd *q, char *buf, size_t len);
void qsd__stop(struct qsd *q);

struct block_dev {
	const struct block_engine_ops *ops;
	void *eng;
	struct block_info info;
	bool probed_raw;        /* format guessed as raw: guard sector 0 */
	bool no_flush;          /* cache=unsafe */
	bool discard_unmap;
	atomic_bool write_cache;
	pthread_mutex_t lock;   /* inflight */
	pthread_cond_t idle;
	uint64_t inflight;
	bool has_raw;
	struct raw_file raw;
	struct qsd *qsd;
	char describe[256];
	char warning[512];
};

/* Format probing (storage/block_probe.c); pure. */
enum probe_result {
	PROBE_RAW,              /* no known magic */
	PROBE_QCOW2, PROBE_VMDK, PROBE_VDI, PROBE_VPC, PROBE_VHDX, PROBE_QED,
	PROBE_QCOW1,            /* known, unsupported */
	PROBE_LUKS,
	PROBE_OTHER_QEMU,       /* bochs, cloop, dmg, parallels: unsupported */
};

enum probe_result block__probe(const uint8_t *buf, size_t len);
const char *block__probe_name(enum probe_result r);
/* The drive format a probe result stands for, or DRIVE_FORMAT_PROBE if
 * krg-vmm cannot open it. */
enum drive_format block__probe_format(enum probe_result r);
/* For qcow2: 0 if the tables the header points to lie inside a file of
 * file_size bytes; -1 with err (a truncated image) otherwise. */
int block__qcow2_fits(const uint8_t *hdr, size_t len, uint64_t file_size,
		      char *err, size_t errlen);

#endif
