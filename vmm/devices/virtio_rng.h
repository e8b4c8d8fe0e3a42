/* virtio-rng (virtio 1.x 5.4, "entropy device"): one request queue whose
 * device-writable buffers the device fills from the host's getrandom().
 *
 * A request is served on the thread that kicked the queue (a vCPU, or an
 * I/O worker for a vCPU on another node): getrandom() on a booted host
 * never blocks (GRND_NONBLOCK makes sure), and a request gets at most
 * VIRTIO_RNG_MAX_FILL bytes (the used length says how many), so a guest
 * posting huge buffers cannot keep that thread busy for long.  A request
 * with a device-readable buffer breaks the device (NEEDS_RESET). */
#ifndef KRG_VMM_DEVICES_VIRTIO_RNG_H
#define KRG_VMM_DEVICES_VIRTIO_RNG_H

#include <stddef.h>
#include <stdint.h>

#include "vmm/devices/virtio.h"

#define VIRTIO_ID_RNG 4
#define VIRTIO_RNG_QUEUE_SIZE 64
#define VIRTIO_RNG_MAX_FILL 65536
#define VIRTIO_RNG_MAX_SEGS 64

/* Where the bytes come from: getrandom() normally, a fixed pattern in
 * tests.  Fills buf[0, len); returns the bytes written (may be fewer). */
typedef size_t (*virtio_rng_source_fn)(void *ctx, uint8_t *buf, size_t len);

struct virtio_rng {
	struct virtio_dev vdev;
	virtio_rng_source_fn source;
	void *source_ctx;
	uint64_t bytes;             /* handed out, atomically updated */
	char name[32];
};

/* source NULL: getrandom(). */
int virtio_rng__init(struct virtio_rng *rng, const char *name,
		     virtio_rng_source_fn source, void *source_ctx,
		     struct virtio_mem mem, char *err, size_t errlen);
void virtio_rng__destroy(struct virtio_rng *rng);
struct virtio_dev *virtio_rng__dev(struct virtio_rng *rng);
/* The getrandom() source (ctx unused). */
size_t virtio_rng__getrandom(void *ctx, uint8_t *buf, size_t len);

/* Section "<name>" (the virtio core's state: the device has no other).
 * Save needs a paused device. */
int virtio_rng__save(struct virtio_rng *rng, struct state_writer *w,
		     char *err, size_t errlen);
int virtio_rng__load(struct virtio_rng *rng, struct state_reader *r,
		     char *err, size_t errlen);

#endif
