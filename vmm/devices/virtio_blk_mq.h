/* virtio-blk queues served where their requests come from (cluster VMs).
 *
 * A virtio-blk device lives on node 0: PCI config space, the common
 * configuration (features, queue setup, status, reset) and the MSI-X table
 * stay there.  Queue q belongs to vCPU q mod nr_vcpus (the guest steers
 * queue q's vector to that CPU, and blk-mq submits from a CPU on its own
 * queue), so it is served by the node running that vCPU: that node takes
 * the queue's doorbell exits itself, reads the rings and descriptors in
 * its own RAM, does the I/O with its own handle on the image and raises the
 * MSI through its own interrupt router.  Nothing crosses the network for a
 * request but pages the guest shares and interrupts for vCPUs elsewhere.
 *
 * Node 0 ("home") hands a queue over when the driver sets DRIVER_OK (or
 * enables a queue after it) and takes it back, drained, before anything
 * that changes the queue's life: device reset, pause, checkpoint, save,
 * another node taking it (vCPU migration).  Both are synchronous: the
 * guest's register write (or the caller) returns only after the serving
 * node acknowledged, so a guest never kicks a queue nobody serves, and a
 * reset never lets a request complete into the new driver's rings.  A
 * queue in transit drops kicks; whoever serves it next polls it once.
 *
 * A node that cannot open the image (a file not reachable from its host,
 * an NBD socket it cannot connect to) answers FALLBACK: node 0 logs why,
 * once, and serves that node's queues itself (the path a single-node
 * device takes, requests forwarded as MMIO exits).
 *
 * Durability: a guest flush on any queue must cover every write any node
 * completed before it.  Nodes whose handles share one durability domain
 * (the same file through one page cache: same host and inode; or one
 * qemu-storage-daemon export, which offers NBD multi-conn) need only their
 * own flush.  Otherwise every flush also reaches the other nodes: a
 * serving node asks node 0, node 0 flushes itself and asks every other
 * node that has the image open, and a node handing a queue back flushes
 * first.  KRG_VMM_BLK_FLUSH_FANOUT=1 forces that path (tests).
 *
 * Messages (I/O range of net/net_types.h, FAST channel, little-endian,
 * exact lengths, reserved bytes 0).  Every one starts with an 8-byte
 * header: 0 u8 drive, 1 u8 queue, 2 u16 flags, 4 u32 seq.
 *   SETUP   0->n  hand queue over: 8 u64 driver features, 16 u64 device
 *                 features, 24 u64 capacity, 32/40/48 u64 desc/avail/used,
 *                 56 u64 MSI address, 64 u64 doorbell gpa (0: none),
 *                 72 u32 MSI data, 76 u16 size, 78 u16 last_avail,
 *                 80 u16 used_idx, 82 u16 signalled_used, 84 u16 queues,
 *                 86 u16 max size, 88 u8 signalled_valid, 89 u8 text_len,
 *                 92 u32 image generation (bumped when node 0 swaps the
 *                 image, e.g. for a checkpoint's overlay: reopen),
 *                 96 the NBD socket to connect to ("" = open the -drive).
 *   ACK     n->0  8 u8 answered type, 9 u8 status (OK, FALLBACK, ERROR),
 *                 10 u8 signalled_valid, 11 u8 broken, 12 u16 last_avail,
 *                 14 u16 used_idx, 16 u16 signalled_used, 18 u8 text_len,
 *                 24 u64 durability domain, 32 the reason (not OK).
 *   STOP    0->n  drain queue and give it back (ACK carries its state).
 *   KICK    0->n  the guest kicked a queue n serves, at node 0.
 *   UPDATE  0->n  8 u64 MSI address, 16 u64 doorbell gpa, 24 u32 MSI
 *                 data, 28 u32 0; acknowledged.
 *   IRQ     n->0  signal queue's vector the slow way (masked, INTx).
 *   BROKEN  n->0  8 u8 text_len, 16 the guest error: NEEDS_RESET.
 *   FLUSH   n->0, 0->n  flush your handle (seq: the request's id).
 *   FLUSHED reply: 8 u8 status (0 done, 1 failed).
 * Flags: bit 0 EVENT_IDX, 1 INDIRECT_DESC, 2 MSI direct (else IRQ to node
 * 0), 3 flush fan-out; only on SETUP and UPDATE. */
#ifndef KRG_VMM_DEVICES_VIRTIO_BLK_MQ_H
#define KRG_VMM_DEVICES_VIRTIO_BLK_MQ_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_types.h"
#include "vmm/devices/virtio_blk.h"

#define BLK_MQ_T_SETUP (NET_TYPE_IO_FIRST + 2)   /* 130 */
#define BLK_MQ_T_ACK (NET_TYPE_IO_FIRST + 3)
#define BLK_MQ_T_STOP (NET_TYPE_IO_FIRST + 4)
#define BLK_MQ_T_KICK (NET_TYPE_IO_FIRST + 5)
#define BLK_MQ_T_UPDATE (NET_TYPE_IO_FIRST + 6)
#define BLK_MQ_T_IRQ (NET_TYPE_IO_FIRST + 7)
#define BLK_MQ_T_BROKEN (NET_TYPE_IO_FIRST + 8)
#define BLK_MQ_T_FLUSH (NET_TYPE_IO_FIRST + 9)
#define BLK_MQ_T_FLUSHED (NET_TYPE_IO_FIRST + 10)  /* 138 */
#define BLK_MQ_T_FIRST BLK_MQ_T_SETUP
#define BLK_MQ_T_LAST (NET_TYPE_IO_FIRST + 11)     /* 139: reserved */
_Static_assert(BLK_MQ_T_LAST <= NET_TYPE_IO_LAST, "io type range");

#define BLK_MQ_F_EVENT_IDX 0x1
#define BLK_MQ_F_INDIRECT 0x2
#define BLK_MQ_F_MSI_DIRECT 0x4
#define BLK_MQ_F_FANOUT 0x8

enum blk_mq_status { BLK_MQ_OK, BLK_MQ_FALLBACK, BLK_MQ_ERROR };

#define BLK_MQ_MAX_DRIVES 8
#define BLK_MQ_MAX_QUEUES VIRTIO_BLK_MAX_QUEUES
#define BLK_MQ_MAX_NODES 64
#define BLK_MQ_TEXT_MAX 160     /* reasons and socket paths, no NUL */
#define BLK_MQ_MSG_MAX (96 + BLK_MQ_TEXT_MAX)
/* Queues per drive by default: one per vCPU, capped. */
#define BLK_MQ_DEFAULT_MAX 8
#define BLK_MQ_SINGLE_NODE_MAX 4
/* A serving node answers a SETUP, STOP or UPDATE within this, or the VM
 * stops (it is then unusable: a guest write is waiting on it). */
#define BLK_MQ_ACK_TIMEOUT_MS 4000
/* Bytes of one queue's doorbell (virtio-pci's notify_off_multiplier). */
#define BLK_MQ_DOORBELL_LEN 4

/* One message, decoded (fields as the type uses them). */
struct blk_mq_msg {
	unsigned type;
	uint8_t drive, queue;
	uint16_t flags;
	uint32_t seq;
	uint8_t acked, status;            /* ACK, FLUSHED */
	uint64_t features, device_features, capacity;
	uint64_t desc, avail, used;
	uint64_t msi_addr, notify;
	uint32_t msi_data;
	uint16_t size, last_avail, used_idx, signalled_used;
	uint16_t num_queues, max_size;
	uint32_t gen;
	uint8_t signalled_valid, broken;
	uint64_t domain;
	char text[BLK_MQ_TEXT_MAX + 1];   /* NUL-terminated */
};

/* ---- pure: wire, assignment ---- */

/* Length written to buf, or -1 (buffer too small, a field out of range,
 * a text too long). */
int blk_mq__encode(const struct blk_mq_msg *m, uint8_t *buf, size_t len);
/* Everything the message alone can tell: 0, or -1 with a reason. */
int blk_mq__decode(unsigned type, const void *buf, size_t len,
		   struct blk_mq_msg *out, char *err, size_t errlen);
const char *blk_mq__type_name(unsigned type);

/* The vCPU queue q belongs to, and the node serving it (vcpu_node: the
 * VM description's placement, nr_vcpus entries). */
unsigned blk_mq__queue_vcpu(unsigned q, unsigned nr_vcpus);
unsigned blk_mq__queue_node(unsigned q, unsigned nr_vcpus,
			    const uint8_t *vcpu_node);
/* queues= when given, else one per vCPU up to BLK_MQ_DEFAULT_MAX in a
 * cluster VM and BLK_MQ_SINGLE_NODE_MAX on one node. */
unsigned blk_mq__default_queues(unsigned requested, unsigned nr_vcpus,
				bool cluster);

/* ---- the node's part ---- */

/* A drive's image as one node serves it. */
struct blk_mq_backend {
	struct virtio_blk_backend be;
	void *handle;             /* for ops.close */
	uint64_t domain;          /* durability domain: equal ids share a
				   * flush (0: shares with nobody) */
	bool bounce_reads;        /* see virtio_blk.bounce_reads */
	bool read_only;           /* readonly= */
};

struct blk_mq_ops {
	void *ctx;
	/* One message on the FAST channel; 0 or -1.  Never waits for an
	 * answer. */
	int (*send)(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len);
	/* Serving node: open drive's image here (socket: node 0's NBD
	 * export, or "" for the -drive itself).  0, or -1 with one line. */
	int (*open)(void *ctx, unsigned drive, const char *socket,
		    struct blk_mq_backend *out, char *err, size_t errlen);
	void (*close)(void *ctx, struct blk_mq_backend *b);
	/* An MSI from this node (its interrupt router). */
	void (*msi)(void *ctx, uint64_t addr, uint32_t data);
	/* A peer broke the protocol or did not answer: stop the VM. */
	void (*fatal)(void *ctx, const char *why);
	/* One line (no "krg-vmm: " prefix, no newline). */
	void (*log)(void *ctx, const char *line);
};

struct blk_mq_config {
	unsigned self, nr_nodes;
	struct virtio_mem mem;    /* guest RAM: the DSM-coherent mapping */
	bool force_fanout;        /* every flush reaches every node */
	struct blk_mq_ops ops;
};

/* Node 0's view of one drive. */
struct blk_mq_home_env {
	struct virtio_blk *blk;
	void *pci;                /* for the two below */
	bool (*vector_msi)(void *pci, uint16_t vector, uint64_t *addr,
			   uint32_t *data);
	uint64_t (*notify_gpa)(void *pci, unsigned queue);
	uint8_t node[BLK_MQ_MAX_QUEUES];   /* serving node of each queue */
	char socket[BLK_MQ_TEXT_MAX + 1];  /* qemu-storage-daemon's, or "" */
	uint64_t domain;                   /* node 0's handle's */
};

struct blk_mq_stats {
	uint64_t requests;        /* chains served on this node */
	uint64_t writes, flushes; /* of which writes and flushes */
	uint64_t failed;          /* answered with an error status */
	uint64_t doorbells;       /* kicks taken from local vCPU exits */
	uint64_t kicks_in;        /* kicks node 0 passed on */
	uint64_t queues;          /* queues this node serves now */
	uint64_t handoffs;        /* node 0: queues handed over so far */
	uint64_t fallbacks;       /* node 0: queues kept for lack of access */
	uint64_t flushes_out;     /* flush requests sent to other nodes */
};

struct blk_mq;

struct blk_mq *blk_mq__new(const struct blk_mq_config *cfg, char *err,
			   size_t errlen);
/* VM stop: waits end (-ECANCELED), nothing is handed over any more;
 * queues served here finish what they took.  Any thread, idempotent. */
void blk_mq__abort(struct blk_mq *mq);
/* Threads joined, images closed (requests drained), hooks cleared. */
void blk_mq__free(struct blk_mq *mq);

/* A message of the BLK_MQ_T_* range from the transport (receive thread:
 * validated and queued, never served here).  0 or -EPROTO (reported
 * through ops.fatal). */
int blk_mq__recv(struct blk_mq *mq, unsigned sender, unsigned type,
		 const void *payload, size_t len);

/* Node 0: drive's device (env copied) takes its queue routing from here
 * from now on.  Before the guest runs. */
int blk_mq__attach(struct blk_mq *mq, unsigned drive,
		   const struct blk_mq_home_env *env);

/* Node 0, the API for pause, checkpoint and vCPU migration.  Both wait
 * for the serving nodes (no device lock may be held).
 *
 * hold(true): every queue of drive served elsewhere is drained there and
 * its state (ring positions, broken flag) is back in node 0's device,
 * which then serves nothing elsewhere until hold(false) hands the queues
 * out again.  Returns 0, or -1 if a node did not answer (the VM stops). */
int blk_mq__hold(struct blk_mq *mq, unsigned drive, bool hold);
/* Queue of drive is served by node from now on: drained where it is,
 * handed to node (which may fall back to node 0).  -1 as above, or for a
 * bad drive, queue or node. */
int blk_mq__assign(struct blk_mq *mq, unsigned drive, unsigned queue,
		   unsigned node);
/* Node 0: drive's interrupt messages, MSI-X masks or doorbell address
 * may have changed (virtio_pci's irq_changed): serving nodes are told
 * before this returns. */
void blk_mq__irq_changed(struct blk_mq *mq, unsigned drive);
/* Node 0 swapped drive's image (queues held): other nodes reopen it
 * through socket (qemu-storage-daemon's NBD export) at the next hand-over;
 * without one, node 0 serves every queue of it from now on. */
void blk_mq__set_backend(struct blk_mq *mq, unsigned drive,
			 const char *socket, uint64_t domain);
/* Node 0: drive's queue count (0: no such drive). */
unsigned blk_mq__queues(struct blk_mq *mq, unsigned drive);
/* Where drive's queue is served right now (node 0 while in transit). */
unsigned blk_mq__serving_node(struct blk_mq *mq, unsigned drive,
			      unsigned queue);

/* Serving node: a vCPU's MMIO exit at gpa.  True when it is a doorbell
 * of a queue served here (the kick is served on the calling thread);
 * false: forward it as usual. */
bool blk_mq__doorbell(struct blk_mq *mq, uint64_t gpa, uint8_t *data,
		      uint32_t len, bool is_write);

void blk_mq__stats(struct blk_mq *mq, struct blk_mq_stats *out);

#endif
