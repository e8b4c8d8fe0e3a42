/* How virtio-blk reaches its storage: an ops struct the machine fills from
 * storage/block.h's functions (block__submit, block__info), so the device
 * model builds and is tested without storage/. */
#ifndef KRG_VMM_DEVICES_VIRTIO_BLK_BACKEND_H
#define KRG_VMM_DEVICES_VIRTIO_BLK_BACKEND_H

#include "vmm/devices/block_req.h"

struct virtio_blk_backend {
	/* 0 = queued (req->done() later, exactly once, possibly before
	 * submit returns, on any thread); -errno = refused, no done(). */
	int (*submit)(void *dev, struct block_req *req);
	void (*info)(void *dev, struct block_info *info);
	void *dev;
};

#endif
