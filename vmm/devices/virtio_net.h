/* virtio-net (virtio 1.x 5.1), transport-independent: one receive and one
 * transmit queue, the 12-byte virtio_net_hdr on every frame, the config
 * space (mac, status), save/load.
 *
 * Features offered: VIRTIO_F_VERSION_1 (with the core's INDIRECT_DESC and
 * EVENT_IDX), VIRTIO_NET_F_MAC and VIRTIO_NET_F_STATUS (link always up).
 * No checksum or segmentation offloads and no MRG_RXBUF: the driver
 * checksums in software and posts receive buffers of at least
 * VIRTIO_NET_HDR_SIZE + 1514 bytes, as the spec asks without offloads; a
 * frame larger than the buffer at hand is dropped and the buffer returned
 * with length 0 (Linux counts it as a length error and refills).  No
 * control queue: the device delivers every frame (promiscuous).
 *
 * Guest errors: a receive buffer with device-readable parts or no room
 * for the header, a transmit chain with device-writable parts or shorter
 * than the header, break the device (NEEDS_RESET).  A transmit header
 * asking for an offload that was not negotiated, or a frame shorter than
 * an Ethernet header or longer than VIRTIO_NET_FRAME_MAX, is dropped and
 * counted.
 *
 * Threads: the driver's kicks (a vCPU, or an I/O worker for a vCPU on
 * another node) only tell the backend (struct virtio_net_port) to look;
 * one backend thread moves every frame with virtio_net__receive and
 * virtio_net__transmit.  So no vCPU ever waits for the network. */
#ifndef KRG_VMM_DEVICES_VIRTIO_NET_H
#define KRG_VMM_DEVICES_VIRTIO_NET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "vmm/devices/virtio.h"

#define VIRTIO_ID_NET 1

#define VIRTIO_NET_F_CSUM 0
#define VIRTIO_NET_F_GUEST_CSUM 1
#define VIRTIO_NET_F_MAC 5
#define VIRTIO_NET_F_MRG_RXBUF 15
#define VIRTIO_NET_F_STATUS 16
#define VIRTIO_NET_F_CTRL_VQ 17

#define VIRTIO_NET_S_LINK_UP 1

#define VIRTIO_NET_HDR_F_NEEDS_CSUM 1
#define VIRTIO_NET_HDR_GSO_NONE 0

#define VIRTIO_NET_HDR_SIZE 12   /* with num_buffers: always, in 1.x */
#define VIRTIO_NET_CONFIG_SIZE 10 /* mac, status, max_virtqueue_pairs */
#define VIRTIO_NET_RXQ 0
#define VIRTIO_NET_TXQ 1
#define VIRTIO_NET_QUEUE_SIZE 256
#define VIRTIO_NET_MAX_SEGS 64   /* descriptors per chain we take */
#define VIRTIO_NET_ETH_MIN 14    /* an Ethernet header */
#define VIRTIO_NET_FRAME_MAX 65535
#define VIRTIO_NET_STATE_VERSION 1

/* The header, decoded (host byte order). */
struct virtio_net_hdr {
	uint8_t flags;
	uint8_t gso_type;
	uint16_t hdr_len;
	uint16_t gso_size;
	uint16_t csum_start;
	uint16_t csum_offset;
	uint16_t num_buffers;
};

/* Pure helpers (unit tests, fuzzing). */
void virtio_net__hdr_decode(const uint8_t b[VIRTIO_NET_HDR_SIZE],
			    struct virtio_net_hdr *h);
void virtio_net__hdr_encode(const struct virtio_net_hdr *h,
			    uint8_t b[VIRTIO_NET_HDR_SIZE]);
/* May a transmitted frame of frame_len bytes with header h go out, given
 * the negotiated features?  NULL if so, else why not. */
const char *virtio_net__tx_check(const struct virtio_net_hdr *h,
				 uint64_t features, size_t frame_len);

/* How the device wakes its backend. */
struct virtio_net_port {
	/* The driver made receive buffers or transmit frames available
	 * (any thread, must not block). */
	void (*kick)(void *ctx);
	void *ctx;
};

struct virtio_net_stats {
	uint64_t rx_frames, rx_bytes, rx_dropped;
	uint64_t tx_frames, tx_bytes, tx_dropped;
};

/* The saved device-specific state (the virtio core saves its own). */
struct virtio_net_state {
	uint8_t mac[6];
	uint16_t status;
	uint8_t pad[8];
};
_Static_assert(sizeof(struct virtio_net_state) == 16,
	       "virtio_net_state is a saved format: bump "
	       "VIRTIO_NET_STATE_VERSION");

struct virtio_net {
	struct virtio_dev vdev;
	struct virtio_net_state s;
	struct virtio_net_port port;
	struct virtio_net_stats stats;   /* updated atomically */
	uint8_t config[VIRTIO_NET_CONFIG_SIZE];
	char name[32];
	char state_name[40];
};

/* name: "virtio-net0" (log lines, state sections). */
int virtio_net__init(struct virtio_net *net, const char *name,
		     const uint8_t mac[6], struct virtio_mem mem, char *err,
		     size_t errlen);
/* The device must be idle (paused, reset, or never started). */
void virtio_net__destroy(struct virtio_net *net);
struct virtio_dev *virtio_net__dev(struct virtio_net *net);
/* Before the guest runs; kicks before it are dropped. */
void virtio_net__set_port(struct virtio_net *net,
			  const struct virtio_net_port *port);

/* Backend thread only.  A frame for the guest: 1 delivered, 0 no receive
 * buffer now (keep it, try again after a kick), -1 dropped. */
int virtio_net__receive(struct virtio_net *net, const uint8_t *frame,
			size_t len);
/* The guest's next frame into buf (cap >= VIRTIO_NET_FRAME_MAX): its
 * length, 0 if there is none, -1 if one was dropped (call again). */
ssize_t virtio_net__transmit(struct virtio_net *net, uint8_t *buf,
			     size_t cap);
void virtio_net__get_stats(struct virtio_net *net,
			   struct virtio_net_stats *out);

/* Sections "<name>" (virtio core) and "<name>-net".  Save needs a paused
 * device (virtio_dev__pause). */
int virtio_net__save(struct virtio_net *net, struct state_writer *w,
		     char *err, size_t errlen);
int virtio_net__load(struct virtio_net *net, struct state_reader *r,
		     char *err, size_t errlen);

#endif
