/* virtio-blk (virtio 1.x 5.2), transport-independent: request parsing and
 * checking, the block backend calls, completion.  The transport drives it
 * through its struct virtio_dev (virtio_blk__dev); storage is reached
 * through struct virtio_blk_backend (virtio_blk_backend.h).
 *
 * Requests: IN, OUT, FLUSH, GET_ID, DISCARD and WRITE_ZEROES (with their
 * segment arrays); anything else is VIRTIO_BLK_S_UNSUPP.  A request that
 * would reach past the capacity, is not a whole number of logical blocks,
 * exceeds the advertised limits or writes a read-only disk completes with
 * VIRTIO_BLK_S_IOERR without reaching the backend.  A chain too short to
 * hold the header and the status byte breaks the device (NEEDS_RESET).
 * Without VIRTIO_BLK_F_FLUSH negotiated the device is write-through: every
 * completed write is flushed before it is reported (spec 5.2.6.2).
 *
 * Each queue is served independently (a kick serves its queue only) and
 * completions come back on backend threads.  In a cluster VM a queue may
 * be served by another node (virtio_blk_mq.h): struct virtio_blk_hooks
 * lets that code route kicks, follow the driver's configuration and reach
 * the other nodes for a flush. */
#ifndef KRG_VMM_DEVICES_VIRTIO_BLK_H
#define KRG_VMM_DEVICES_VIRTIO_BLK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/devices/virtio.h"
#include "vmm/devices/virtio_blk_backend.h"

#define VIRTIO_ID_BLOCK 2

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9
#define VIRTIO_BLK_F_MQ 12
#define VIRTIO_BLK_F_DISCARD 13
#define VIRTIO_BLK_F_WRITE_ZEROES 14

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8
#define VIRTIO_BLK_T_DISCARD 11
#define VIRTIO_BLK_T_WRITE_ZEROES 13

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_WZ_F_UNMAP 1 /* segment flag of WRITE_ZEROES */

#define VIRTIO_BLK_SECTOR 512
#define VIRTIO_BLK_HDR_SIZE 16
#define VIRTIO_BLK_SEG_SIZE 16  /* struct virtio_blk_discard_write_zeroes */
#define VIRTIO_BLK_ID_BYTES 20
/* Config space up to write_zeroes_may_unmap and its padding. */
#define VIRTIO_BLK_CONFIG_SIZE 60
/* Data buffers per request we take (Linux asks seg_max). */
#define VIRTIO_BLK_SEG_MAX_LIMIT 254
#define VIRTIO_BLK_DWZ_SEG_LIMIT 256
#define VIRTIO_BLK_MAX_QUEUES 16

/* How a cluster VM's queue routing hooks into the device (all optional;
 * ctx is passed back). */
struct virtio_blk_hooks {
	void *ctx;
	/* The driver kicked queue: serve it (virtio_blk__serve_queue) here
	 * or have another node do it. */
	void (*kick)(void *ctx, unsigned queue);
	/* Device reset, queues idle here, the device lock held: queues
	 * served elsewhere must be drained before it returns. */
	void (*reset)(void *ctx);
	/* A common configuration register was written (no lock held). */
	void (*common_written)(void *ctx, enum virtio_common_reg reg);
	/* Whether a FLUSH must also reach other nodes' handles of the image
	 * (their writes are not covered by this node's flush); if so
	 * flush_remote takes a FLUSH request like the backend's submit. */
	bool (*flush_fanout)(void *ctx);
	int (*flush_remote)(void *ctx, struct block_req *req);
};

/* Host settings; 0 means the default. */
struct virtio_blk_opts {
	const char *name;          /* "virtio-blk0": log lines, state */
	unsigned num_queues;       /* 1; more offers VIRTIO_BLK_F_MQ */
	uint16_t queue_size;       /* 256, a power of two <= 1024 */
	uint32_t seg_max;          /* min(queue_size - 2, 254) */
	uint32_t size_max;         /* 0: no per-segment limit offered */
	bool read_only;            /* on top of the backend's */
	uint32_t max_discard_sectors;      /* 1 << 22 (2 GiB) */
	uint32_t max_discard_seg;          /* 32 */
	uint32_t max_write_zeroes_sectors; /* 1 << 22 */
	uint32_t max_write_zeroes_seg;     /* 32 */
};

struct virtio_blk {
	struct virtio_dev vdev;
	struct virtio_blk_backend be;
	struct block_info info;
	uint64_t capacity;         /* 512-byte sectors */
	uint32_t lbs;              /* logical block size, bytes */
	uint32_t seg_max, size_max;
	uint32_t max_discard_sectors, max_discard_seg;
	uint32_t max_wz_sectors, max_wz_seg;
	bool read_only, discard, write_zeroes;
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE]; /* little-endian, as the guest
						 * reads it */
	char name[32];
	struct virtio_blk_hooks hooks;
	/* Reads land in a private buffer and are copied into guest RAM on
	 * completion: set when the backend DMAs into pinned pages (O_DIRECT)
	 * that the DSM could take away mid-request (virtio_blk_mq.h). */
	bool bounce_reads;
	uint64_t served;           /* chains taken (atomic): node stats */
	uint64_t writes, flushes;  /* of which OUT and FLUSH (atomic) */
	uint64_t failed;           /* answered other than OK (atomic) */
};

/* Asks the backend for its geometry and builds the device.  Returns 0, or
 * -1 with one line in err. */
int virtio_blk__init(struct virtio_blk *blk, const struct virtio_blk_opts *o,
		     const struct virtio_blk_backend *be, struct virtio_mem mem,
		     char *err, size_t errlen);
/* The device must be idle (paused, or reset, or never started). */
void virtio_blk__destroy(struct virtio_blk *blk);
/* What the transport talks to. */
struct virtio_dev *virtio_blk__dev(struct virtio_blk *blk);

/* Before the guest runs. */
void virtio_blk__set_hooks(struct virtio_blk *blk,
			   const struct virtio_blk_hooks *h);
/* Takes every available chain of queue (what a kick does without hooks). */
void virtio_blk__serve_queue(struct virtio_blk *blk, unsigned queue);

/* Takes over one popped chain of queue: answers it at once or submits it
 * to the backend.  The service loop's step, public for the fuzzer. */
void virtio_blk__handle_chain(struct virtio_blk *blk, unsigned queue,
			      const struct virtq_chain *c);

/* The state section is named after opts.name.  Save needs a paused
 * device (virtio_dev__pause). */
int virtio_blk__save(struct virtio_blk *blk, struct state_writer *w,
		     char *err, size_t errlen);
int virtio_blk__load(struct virtio_blk *blk, struct state_reader *r,
		     char *err, size_t errlen);

#endif
