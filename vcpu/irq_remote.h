/* Interrupts between nodes: the router's forward hook turns a message for
 * vCPUs on another node into IRQ_DELIVER; LAPIC address changes travel as
 * IRQ_ADDR_UPDATE (acknowledged); level-triggered EOIs of remote vCPUs
 * travel to the IOAPIC's node as IRQ_EOI.  Pure protocol plus a send hook:
 * no sockets, no threads of its own.
 *
 * Wire formats (payloads of transport messages; little-endian; every
 * reserved byte must be 0; lengths are exact):
 *
 * IRQ_DELIVER (96): one apic_msg, the set of target vCPUs on the receiving
 *   node as a bitmap over all vCPUs (one message per node however many
 *   targets: a broadcast INIT/SIPI or NMI, a shorthand or a flat logical
 *   multicast costs one message per node, a unicast 20 + nr_vcpus/8 bytes).
 *    0 u32 dest    4 i32 source (-1 or sending vCPU)   8 u8 vector
 *    9 u8 delivery (0,1,2,4,5,6; ExtINT and reserved modes refused)
 *   10 u8 dest_logical 11 u8 shorthand 12 u8 level 13 u8 trigger_level
 *   14 u8 x2apic  15 u8 0   (flags are 0/1, shorthand 0..3)
 *   16 u16 nr_vcpus (must equal the receiver's)  18 u16 0
 *   20 targets[(nr_vcpus + 7) / 8]: >= 1 bit, no bit >= nr_vcpus, every
 *      target placed on the receiver; lowest priority: exactly one bit.
 *
 * IRQ_ADDR_UPDATE (97): a vCPU's addressing facts, sent by the node running
 *   it to every other node when the addressing part (not the PPR) changes.
 *    0 u16 vcpu  2 u16 0  4 u32 seq (per vCPU, from 1, never decreasing)
 *    8 u32 apic_id  12 u32 ldr  16 u8 dfr_flat (0/1)  17 u8 x2apic (0/1)
 *   18 u8 enabled (0, HW, HW|SW; x2apic needs HW)  19 u8 ppr
 *
 * IRQ_ADDR_ACK (98): the receiver applied update seq of vcpu.
 *    0 u16 vcpu  2 u16 0  4 u32 seq
 *
 * IRQ_EOI (99): a remote vCPU ended a level-triggered vector: the IOAPIC's
 *   node clears remote IRR (ioapic__eoi).
 *    0 u16 vcpu  2 u8 vector (>= 16)  3 u8 0
 *
 * Address updates and ordering.  The node running a vCPU is the only
 * writer of its address, and the transport keeps per-pair FIFO order, so
 * every node applies a vCPU's updates in order (the seq checks it).  The
 * LAPIC reports a change from under its own lock; irq_remote__local_addr
 * only records it, and the vCPU thread sends it with irq_remote__flush
 * before it next enters the guest, then waits until every node has acked.
 * So once the guest's write of ID/LDR/DFR/SVR/APIC_BASE has retired, no
 * node routes by the old value any more: an IPI that another vCPU sends
 * after seeing any later effect of this vCPU matches the new address.  An
 * IPI sent concurrently (vCPU B on node 0 sends a logical IPI while A's
 * LDR update is in flight) is matched against whichever address node 0
 * holds at that moment; if the old one matched, the message names A by
 * index and A takes it even though its new LDR may no longer match - as
 * if the IPI had been accepted just before the LDR write, which real
 * hardware (with its own bus latency) also allows.
 *
 * Startup: every router starts with all-zero (disabled) addresses for
 * remote vCPUs, and a message matches nothing on a vCPU whose address is
 * unknown.  After the transport is up and before any vCPU runs, each node
 * calls irq_remote__announce (sends its vCPUs' addresses) and then
 * irq_remote__wait_known (every remote vCPU's address has arrived), so the
 * BSP's INIT/SIPI to APs on other nodes cannot be lost. */
#ifndef KRG_VCPU_IRQ_REMOTE_H
#define KRG_VCPU_IRQ_REMOTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_types.h"
#include "vcpu/apic.h"
#include "vcpu/irq_route.h"

#define IRQ_REMOTE_T_DELIVER (NET_TYPE_IRQ_FIRST + 0)
#define IRQ_REMOTE_T_ADDR_UPDATE (NET_TYPE_IRQ_FIRST + 1)
#define IRQ_REMOTE_T_ADDR_ACK (NET_TYPE_IRQ_FIRST + 2)
#define IRQ_REMOTE_T_EOI (NET_TYPE_IRQ_FIRST + 3)
_Static_assert(IRQ_REMOTE_T_EOI <= NET_TYPE_IRQ_LAST, "irq type range");

#define IRQ_REMOTE_DELIVER_HDR 20
#define IRQ_REMOTE_DELIVER_SIZE(nr_vcpus) \
	(IRQ_REMOTE_DELIVER_HDR + IRQ_TARGETS_BYTES(nr_vcpus))
#define IRQ_REMOTE_ADDR_SIZE 20
#define IRQ_REMOTE_ACK_SIZE 8
#define IRQ_REMOTE_EOI_SIZE 4
/* vCPU indices travel in 16 bits. */
#define IRQ_REMOTE_MAX_VCPUS 65535

struct irq_remote_ops {
	void *ctx;
	/* Sends one message to node on the latency channel; 0 or -1.  Called
	 * from vCPU threads, the IOAPIC's callers (under the IOAPIC lock) and
	 * from inside irq_remote__handle (acks): it must not wait for an
	 * answer. */
	int (*send)(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len);
	/* IRQ_EOI from another node (only on the IOAPIC's node): ioapic__eoi.
	 * Also called directly by irq_remote__eoi_level on that node. */
	void (*eoi_level)(void *ctx, uint8_t vector);
	/* A rejected message or a failed send, one line; the wiring logs it
	 * and stops the VM (a peer that breaks the protocol is not trusted
	 * further).  May be NULL. */
	void (*error)(void *ctx, unsigned node, const char *what);
	/* vCPU migration (vmm/migrate.h): an IRQ_DELIVER reached this node
	 * for a vCPU that runs elsewhere now; the hook passes msg on to it
	 * (0) or cannot (-1).  On the receive thread: must not block.  NULL:
	 * such a message is a protocol error, as without migration. */
	int (*redirect)(void *ctx, int vcpu, const struct apic_msg *msg);
};

struct irq_remote_config {
	struct irq_router *router;   /* placement is installed by _new */
	unsigned self;               /* this node */
	unsigned nr_nodes;           /* 1..256 */
	const uint8_t *vcpu_node;    /* router's nr_vcpus entries, copied */
	unsigned ioapic_node;        /* where level EOIs go (node 0) */
	struct irq_remote_ops ops;
};

struct irq_remote_stats {
	uint64_t deliver_out, deliver_in;  /* messages */
	uint64_t addr_out, addr_in, acks_in;
	uint64_t eoi_out, eoi_in;
	uint64_t rejected, send_failed, extint_dropped;
	uint64_t redirected; /* deliveries passed on to a vCPU's new node */
};

struct irq_remote;

/* Installs the placement and the forward hook in cfg->router.  NULL on
 * bad configuration (a vCPU on a node >= nr_nodes, no send hook, ...). */
struct irq_remote *irq_remote__new(const struct irq_remote_config *cfg);
/* The router must not deliver any more (vCPUs stopped) when this runs. */
void irq_remote__free(struct irq_remote *ir);

/* The LAPIC of local vCPU reported addr (env->addr_changed, LAPIC lock
 * held, any thread): updates the router and, if the addressing changed,
 * marks the vCPU for irq_remote__flush.  Never sends. */
void irq_remote__local_addr(struct irq_remote *ir, int vcpu,
			    const struct apic_addr *addr);
/* From the vCPU's own thread with no lock held (the run loop, each
 * iteration): sends a pending address update to every other node, then,
 * if timeout_ms, waits until all have acked it.  Cheap when nothing is
 * pending.  0, -EIO (a send failed), -ETIMEDOUT (err names the node) or
 * -ECANCELED (irq_remote__abort). */
int irq_remote__flush(struct irq_remote *ir, int vcpu, unsigned timeout_ms,
		      char *err, size_t errlen);
/* Startup, once the transport is up: sends every local vCPU's current
 * address to every other node (no waiting).  0 or -EIO. */
int irq_remote__announce(struct irq_remote *ir, char *err, size_t errlen);
/* Waits until every remote vCPU's address arrived at least once.
 * 0, or -ETIMEDOUT naming the first missing vCPU and its node. */
int irq_remote__wait_known(struct irq_remote *ir, unsigned timeout_ms,
			   char *err, size_t errlen);
/* VM stop: flush and wait_known waiting now or later return at once
 * (-ECANCELED / -ETIMEDOUT).  Any thread, idempotent. */
void irq_remote__abort(struct irq_remote *ir);
/* env->eoi_level of a local vCPU: ioapic hook here or IRQ_EOI there. */
void irq_remote__eoi_level(struct irq_remote *ir, int vcpu, uint8_t vector);

/* vCPU migration (vmm/migrate.h): vcpu runs on node from now on.  Its
 * address travels along: seq and addr as the node it left last sent them
 * (seq 0: unknown, keep what is known).  Becoming local, vcpu continues
 * that seq, every node counted as having acked it; becoming remote,
 * updates below seq are refused.  IRQ_DELIVER and IRQ_EOI naming vcpu as
 * the source are still accepted from the node it ran on before (they may
 * have been in flight when it moved).  The router follows.  0 or -1. */
int irq_remote__set_node(struct irq_remote *ir, int vcpu, unsigned node,
			 uint32_t seq, const struct apic_addr *addr);
/* The address of local vcpu as every other node knows it: its seq and
 * value.  -1 if vcpu is not local or an update is still unsent (flush
 * first). */
int irq_remote__vcpu_addr(struct irq_remote *ir, int vcpu, uint32_t *seq,
			  struct apic_addr *addr);

/* One received message of a type in the irq range, from the transport's
 * authenticated sender.  Validates it completely, then delivers to local
 * LAPICs (router's deliver hook), updates the router, records an ack or
 * ends a level EOI.  0, or -EPROTO (reported through ops.error; nothing
 * was acted on). */
int irq_remote__handle(struct irq_remote *ir, unsigned sender, unsigned type,
		       const void *payload, size_t len);
void irq_remote__get_stats(struct irq_remote *ir, struct irq_remote_stats *out);

/* ---- Wire encoding (pure).  Encoders return the length written, or -1
 * if buflen is too small or an argument cannot be represented. ---- */
int irq_remote__encode_deliver(uint8_t *buf, size_t buflen,
			       const struct apic_msg *msg,
			       const uint8_t *targets, int nr_vcpus);
int irq_remote__encode_addr(uint8_t *buf, size_t buflen, int vcpu,
			    uint32_t seq, const struct apic_addr *addr);
int irq_remote__encode_ack(uint8_t *buf, size_t buflen, int vcpu,
			   uint32_t seq);
int irq_remote__encode_eoi(uint8_t *buf, size_t buflen, int vcpu,
			   uint8_t vector);
/* Decoders check the structure and every field that needs no node
 * context; they return 0 or -EPROTO with a reason in err.  targets points
 * into buf. */
int irq_remote__decode_deliver(const uint8_t *buf, size_t len, int nr_vcpus,
			       struct apic_msg *msg, const uint8_t **targets,
			       char *err, size_t errlen);
int irq_remote__decode_addr(const uint8_t *buf, size_t len, int *vcpu,
			    uint32_t *seq, struct apic_addr *addr, char *err,
			    size_t errlen);
int irq_remote__decode_ack(const uint8_t *buf, size_t len, int *vcpu,
			   uint32_t *seq, char *err, size_t errlen);
int irq_remote__decode_eoi(const uint8_t *buf, size_t len, int *vcpu,
			   uint8_t *vector, char *err, size_t errlen);

#endif
