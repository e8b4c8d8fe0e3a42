/* The transport-independent half of a virtio 1.x device (modern only):
 * feature negotiation, the device status machine, per-queue configuration,
 * config generation, the ISR byte, pause/resume and versioned save/load.
 *
 * A transport (virtio-pci, later perhaps virtio-mmio) decodes its own
 * register layout and calls virtio_dev__common_read/write() with one of
 * enum virtio_common_reg, virtio_dev__notify() on a queue kick,
 * virtio_dev__config_read/write() for the device-specific config and
 * virtio_dev__isr_read() for INTx; it supplies struct virtio_transport to
 * be told when to interrupt.  A device model (virtio-blk, ...) embeds a
 * struct virtio_dev, supplies struct virtio_dev_ops, takes chains with
 * virtio_dev__pop() and returns them with virtio_dev__push().
 *
 * Threads and locks: dev->lock guards the common configuration (taken by
 * the transport entry points); each queue has its own lock (virtq.h).
 * The order is dev->lock, then a queue's lock.  Transport callbacks are
 * never called with either held, so a transport may hold its own lock
 * around every call into here and take it again in its callbacks.
 * Completions (virtio_dev__push) take only their queue's lock and may run
 * on any thread. */
#ifndef KRG_VMM_DEVICES_VIRTIO_H
#define KRG_VMM_DEVICES_VIRTIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/devices/virtio_queue.h"
#include "vmm/state_blob.h"

/* Device status (virtio 1.x 2.1). */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01
#define VIRTIO_STATUS_DRIVER 0x02
#define VIRTIO_STATUS_DRIVER_OK 0x04
#define VIRTIO_STATUS_FEATURES_OK 0x08
#define VIRTIO_STATUS_NEEDS_RESET 0x40
#define VIRTIO_STATUS_FAILED 0x80

/* Reserved feature bits (virtio 1.x 6). */
#define VIRTIO_F_INDIRECT_DESC 28
#define VIRTIO_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

/* ISR status bits (read-to-clear, for INTx). */
#define VIRTIO_ISR_QUEUE 0x01
#define VIRTIO_ISR_CONFIG 0x02

#define VIRTIO_MAX_QUEUES 64
#define VIRTIO_STATE_VERSION 1

/* The fields of the common configuration, transport-independent.  64-bit
 * addresses come as LO/HI halves; features as 32-bit windows chosen by
 * the *_SELECT registers. */
enum virtio_common_reg {
	VIRTIO_COMMON_DFSELECT,      /* device_feature_select, rw */
	VIRTIO_COMMON_DF,            /* device_feature, ro */
	VIRTIO_COMMON_GFSELECT,      /* driver_feature_select, rw */
	VIRTIO_COMMON_GF,            /* driver_feature, rw */
	VIRTIO_COMMON_MSIX_CONFIG,   /* config_msix_vector, rw */
	VIRTIO_COMMON_NUM_QUEUES,    /* num_queues, ro */
	VIRTIO_COMMON_STATUS,        /* device_status, rw (0 resets) */
	VIRTIO_COMMON_CFG_GENERATION,/* config_generation, ro */
	VIRTIO_COMMON_Q_SELECT,      /* queue_select, rw */
	VIRTIO_COMMON_Q_SIZE,        /* queue_size, rw (max on reset) */
	VIRTIO_COMMON_Q_MSIX_VECTOR, /* queue_msix_vector, rw */
	VIRTIO_COMMON_Q_ENABLE,      /* queue_enable, rw (1 only) */
	VIRTIO_COMMON_Q_NOTIFY_OFF,  /* queue_notify_off, ro (= index) */
	VIRTIO_COMMON_Q_DESC_LO,
	VIRTIO_COMMON_Q_DESC_HI,
	VIRTIO_COMMON_Q_DRIVER_LO,
	VIRTIO_COMMON_Q_DRIVER_HI,
	VIRTIO_COMMON_Q_DEVICE_LO,
	VIRTIO_COMMON_Q_DEVICE_HI,
};

/* Everything a checkpoint needs, fixed-width, no pointers.  Saved only
 * while the device is paused (nothing in flight). */
struct virtio_dev_state {
	uint64_t device_features;   /* offered (host configuration) */
	uint64_t driver_features;   /* accepted by the driver */
	uint32_t device_feature_select;
	uint32_t driver_feature_select;
	uint16_t num_queues;
	uint16_t queue_select;
	uint16_t msix_config;
	uint8_t status;
	uint8_t config_generation;
	uint8_t isr;
	uint8_t pad[7];
	struct virtq_state q[VIRTIO_MAX_QUEUES];
};
_Static_assert(sizeof(struct virtio_dev_state) == 40 + 40 * VIRTIO_MAX_QUEUES,
	       "virtio_dev_state is a saved format: bump VIRTIO_STATE_VERSION");

struct virtio_dev;

/* What a device model supplies.  Any hook may be NULL. */
struct virtio_dev_ops {
	/* At FEATURES_OK: may the driver run with these features? */
	bool (*features_ok)(struct virtio_dev *vdev, uint64_t features);
	/* The driver kicked queue (live queues only are worth serving). */
	void (*queue_notify)(struct virtio_dev *vdev, unsigned queue);
	/* Device-specific configuration space, bounds up to the device. */
	void (*config_read)(struct virtio_dev *vdev, uint32_t offset,
			    uint8_t *data, uint32_t len);
	void (*config_write)(struct virtio_dev *vdev, uint32_t offset,
			     const uint8_t *data, uint32_t len);
	/* Device reset, after every queue was drained. */
	void (*reset)(struct virtio_dev *vdev);
	/* After a write to the common configuration took effect, with no
	 * lock held (a device serving queues elsewhere follows status and
	 * queue changes here). */
	void (*common_written)(struct virtio_dev *vdev,
			       enum virtio_common_reg reg);
};

/* What the transport supplies. */
struct virtio_transport {
	/* A used-buffer notification for queue (its vector:
	 * virtio_dev__queue_vector).  Called after the used index is
	 * visible to the guest; on any thread, with no device lock held. */
	void (*interrupt)(void *ctx, unsigned queue);
	/* A configuration change notification (vector: msix_config). */
	void (*config_interrupt)(void *ctx);
	void *ctx;
};

struct virtio_dev {
	struct virtio_dev_state s;
	pthread_mutex_t lock;
	struct virtq vq[VIRTIO_MAX_QUEUES];
	const struct virtio_dev_ops *ops;
	struct virtio_transport tr;
	const char *name;          /* for log lines: "virtio-blk0" */
	uint16_t device_id;        /* virtio device ID (2: block), set by
				    * the device model for the transport */
	uint32_t config_len;       /* bytes of device-specific config */
	uint16_t max_queue_size;   /* offered queue_size, power of two */
	uint16_t nr_vectors;       /* MSI-X table size, 0 if none */
	bool paused;
};

/* features: the device's own bits; VERSION_1, INDIRECT_DESC and EVENT_IDX
 * are added.  num_queues <= VIRTIO_MAX_QUEUES, max_queue_size a power of
 * two <= VIRTQ_MAX_SIZE.  Returns 0 or -1 (bad parameters). */
int virtio_dev__init(struct virtio_dev *vdev, const char *name,
		     const struct virtio_dev_ops *ops, uint64_t features,
		     unsigned num_queues, uint16_t max_queue_size,
		     struct virtio_mem mem);
void virtio_dev__destroy(struct virtio_dev *vdev);
/* Before the guest runs. */
void virtio_dev__set_transport(struct virtio_dev *vdev,
			       const struct virtio_transport *tr,
			       uint16_t nr_vectors);

uint32_t virtio_dev__common_read(struct virtio_dev *vdev,
				 enum virtio_common_reg reg);
void virtio_dev__common_write(struct virtio_dev *vdev,
			      enum virtio_common_reg reg, uint32_t val);
/* The driver's available-buffer notification for queue. */
void virtio_dev__notify(struct virtio_dev *vdev, unsigned queue);
/* Reads and clears the ISR byte. */
uint8_t virtio_dev__isr_read(struct virtio_dev *vdev);
void virtio_dev__config_read(struct virtio_dev *vdev, uint32_t offset,
			     uint8_t *data, uint32_t len);
void virtio_dev__config_write(struct virtio_dev *vdev, uint32_t offset,
			      const uint8_t *data, uint32_t len);
/* The device changed its configuration space (capacity, ...): bumps the
 * generation and notifies a live driver. */
void virtio_dev__config_changed(struct virtio_dev *vdev);
/* The MSI-X vector of queue, VIRTIO_NO_VECTOR if none. */
uint16_t virtio_dev__queue_vector(struct virtio_dev *vdev, unsigned queue);

/* For device models. */
bool virtio_dev__has_feature(struct virtio_dev *vdev, unsigned bit);
/* The next chain of queue: 1 (filled), 0 (none, or the queue is not
 * live).  A guest error marks the queue broken, sets NEEDS_RESET, logs one
 * line and notifies the driver; it returns 0. */
int virtio_dev__pop(struct virtio_dev *vdev, unsigned queue,
		    struct virtq_chain *c);
/* Completes a popped chain; interrupts the driver if it asked for it. */
void virtio_dev__push(struct virtio_dev *vdev, unsigned queue, uint16_t head,
		      uint32_t len);
/* Marks the device broken for a device-level guest error (reason: one
 * line, no newline). */
void virtio_dev__fail(struct virtio_dev *vdev, unsigned queue,
		      const char *reason);

/* Stop taking requests and wait for every one in flight (their
 * completions still reach the used ring; notifications are held).  Resume
 * delivers held notifications and serves whatever arrived meanwhile. */
void virtio_dev__pause(struct virtio_dev *vdev);
void virtio_dev__resume(struct virtio_dev *vdev);

/* One state section named name.  Save requires a paused device.  Load
 * refuses a state of another device configuration (features, queues) and
 * re-maps the rings; a queue whose saved rings are unusable comes back
 * broken, never a crash.  Return 0 or -1 with one line in err. */
int virtio_dev__save(struct virtio_dev *vdev, struct state_writer *w,
		     const char *name, char *err, size_t errlen);
int virtio_dev__load(struct virtio_dev *vdev, struct state_reader *r,
		     const char *name, char *err, size_t errlen);
/* The same, on a state struct (the load validates it). */
void virtio_dev__get_state(struct virtio_dev *vdev,
			   struct virtio_dev_state *out);
int virtio_dev__set_state(struct virtio_dev *vdev,
			  const struct virtio_dev_state *in, char *err,
			  size_t errlen);

#endif
