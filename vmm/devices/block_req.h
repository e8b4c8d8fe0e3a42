/* The request a block device model hands to a storage backend, shared by
 * the virtio-blk device (vmm/devices/) and the backends (storage/).  It
 * lives here, guard-protected, so that storage/block.h includes it instead
 * of declaring the same types a second time, and so the device models
 * compile without storage/. */
#ifndef KRG_VMM_BLOCK_REQ_H
#define KRG_VMM_BLOCK_REQ_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

enum block_op {
	BLOCK_OP_READ,
	BLOCK_OP_WRITE,
	BLOCK_OP_FLUSH,
	BLOCK_OP_DISCARD,
	BLOCK_OP_WRITE_ZEROES,
};

/* offset and len are bytes.  iov/iovcnt carry the data of READ and WRITE
 * (host pointers into guest RAM, already checked); the other operations
 * have none.  may_unmap: WRITE_ZEROES may deallocate the range. */
struct block_req {
	enum block_op op;
	uint64_t offset;
	uint64_t len;
	const struct iovec *iov;
	int iovcnt;
	bool may_unmap;
	/* result is 0 or -errno; called exactly once, on a backend thread,
	 * holding no backend lock (it may submit the next request). */
	void (*done)(struct block_req *req, int result);
	void *opaque;
};

struct block_info {
	uint64_t size;               /* bytes */
	uint32_t logical_block_size; /* 512 or 4096 */
	bool read_only, can_discard, can_write_zeroes;
	char serial[21];             /* NUL-terminated, at most 20 chars */
};

/* block__submit(dev, req): 0 = queued, done() later exactly once;
 * -errno = refused now, done() never called. */

#endif
