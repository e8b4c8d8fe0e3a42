/* Live vCPU migration between the nodes of a cluster VM: the protocol,
 * pure.  Events in (a request, a message, "the vCPU parked", "the state
 * is captured/loaded", the clock), actions out (send, park, capture,
 * load, hand over, activate, ...); no KVM, no sockets, no threads, so
 * Check tests drive every step and every failure (vmm/migrate.h is the
 * I/O side).  Three roles, any node may hold several at once:
 *
 *   C coordinator (node 0, where QMP runs)   S source (runs the vCPU)
 *   T target
 *
 *   C --START--> S --PREPARE--> T            T checks it can take it
 *                S <--REPLY(PREPARED)-- T
 *                S: park the vCPU (only it), flush its APIC address,
 *                   seal its interrupt gate, capture its whole state
 *                S ==STATE (bulk)==> T       T loads it into its own
 *                S <--REPLY(LOADED)--- T       (dormant) fd, checks TSC
 *                S --DECIDE(commit)--> T     the point of no return
 *                S: interrupts queued while sealed follow as FORWARD;
 *                   routing here now points at T
 *                T: routing local, PLACE --> every other node, resume
 *                S <--REPLY(RESUMED)-- T
 *   C <--DONE--- S                           (downtime, bytes, or why not)
 *
 * S alone decides: T never runs the vCPU before DECIDE(commit), and S
 * sends DECIDE(abort) on every failure after PREPARE (refusal, timeout,
 * a capture that fails), then runs the vCPU on as if nothing happened.
 * A target that gave up (it waits much longer than S) answers nothing.
 * Messages that do not fit the current state (late, or for an older
 * migration) are ignored.  The latency channel carries everything but
 * STATE; the state goes on the bulk channel, so T ignores a STATE whose
 * migration was already aborted.
 *
 * Wire formats (little-endian, exact lengths, reserved bytes 0):
 *  START (160) C->S, PREPARE (161) S->T, DECIDE (163) S->T, REPLY (164)
 *  T->S and DONE (167) S->C begin with
 *    0 u64 id  8 u16 vcpu  10 u16 node  12 u32 gen
 *  (node: START/PREPARE the target, DONE where the vCPU runs now, else 0;
 *  gen: the vCPU's placement generation once moved), then
 *    START, PREPARE: 16 u8 fault  17 u8[3] 0                   (20 bytes)
 *    DECIDE:         16 u8 commit (0/1)  17 u8[3] 0            (20 bytes)
 *    REPLY:          16 u8 step (1 PREPARED, 2 LOADED, 3 RESUMED)
 *                    17 u8 status (0, or a MIGRATE_E_*)  18 u16 0
 *                    20 u64 value (RESUMED: ns the target spent from
 *                    DECIDE to resuming)  28 text (0..200 bytes)
 *    DONE:           16 u8 status  17 u8[3] 0  20 u64 downtime_ns
 *                    28 u64 total_ns  36 u32 state_bytes  40 text
 *  STATE (162, bulk) S->T:
 *    0 u64 id  8 u16 vcpu  10 u16 0  12 u32 gen  16 u32 addr_seq
 *    20 apic_addr (u32 apic_id, u32 ldr, u8 dfr_flat, u8 x2apic,
 *    u8 enabled, u8 ppr)  32 u32 blob_len  36 blob (vcpu/vcpu_blob.h)
 *  PLACE (165) T->every other node: the vCPU runs on node from now on
 *    0 u16 vcpu  2 u16 node  4 u32 gen  8 u32 addr_seq  12 apic_addr
 *                                                              (24 bytes)
 *  FORWARD (166) an interrupt for a vCPU that left the sender:
 *    0 u16 vcpu  2 u8 hops  3 u8 0  4 apic_msg (u32 dest, i32 source,
 *    u8 vector, delivery, dest_logical, shorthand, level, trigger_level,
 *    x2apic, 0)                                                (20 bytes)
 *
 * Placement generations: every migration of a vCPU gets the next
 * generation (C counts); a node applies a PLACE only if its generation is
 * newer than what it knows, so PLACEs from different senders may arrive
 * in any order. */
#ifndef KRG_VMM_MIGRATE_PROTO_H
#define KRG_VMM_MIGRATE_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "net/net_types.h"
#include "vcpu/apic.h"

#define MIGRATE_T_START		(NET_TYPE_MIGRATE_FIRST + 0)
#define MIGRATE_T_PREPARE	(NET_TYPE_MIGRATE_FIRST + 1)
#define MIGRATE_T_STATE		(NET_TYPE_MIGRATE_FIRST + 2)
#define MIGRATE_T_DECIDE	(NET_TYPE_MIGRATE_FIRST + 3)
#define MIGRATE_T_REPLY		(NET_TYPE_MIGRATE_FIRST + 4)
#define MIGRATE_T_PLACE		(NET_TYPE_MIGRATE_FIRST + 5)
#define MIGRATE_T_FORWARD	(NET_TYPE_MIGRATE_FIRST + 6)
#define MIGRATE_T_DONE		(NET_TYPE_MIGRATE_FIRST + 7)
/* 168-169 are free; 170-185 are the checkpoints' (vmm/ckpt.h). */
#define MIGRATE_T_LAST		(NET_TYPE_MIGRATE_FIRST + 9)

#define MIGRATE_TEXT_MAX	200
#define MIGRATE_HEAD_SIZE	16
#define MIGRATE_START_SIZE	20
#define MIGRATE_DECIDE_SIZE	20
#define MIGRATE_REPLY_MIN	28
#define MIGRATE_DONE_MIN	40
#define MIGRATE_STATE_HDR	36
#define MIGRATE_PLACE_SIZE	24
#define MIGRATE_FORWARD_SIZE	20
/* A redirected interrupt chases its vCPU through at most this many
 * nodes (each hop goes to a node that held the vCPU later). */
#define MIGRATE_MAX_HOPS	16
#define MIGRATE_MAX_VCPUS	65535
#define MIGRATE_MAX_NODES	256

enum migrate_step {
	MIGRATE_STEP_PREPARED = 1,
	MIGRATE_STEP_LOADED = 2,
	MIGRATE_STEP_RESUMED = 3,
};

/* Why a migration did not happen (REPLY and DONE status, results). */
enum migrate_status {
	MIGRATE_OK = 0,
	MIGRATE_E_REFUSED = 1,     /* the target said no */
	MIGRATE_E_TIMEOUT = 2,     /* a step got no answer in time */
	MIGRATE_E_CAPTURE = 3,     /* the source could not take the state */
	MIGRATE_E_STOPPING = 4,    /* the VM is stopping (a node went down) */
	MIGRATE_E_BUSY = 5,        /* another migration is under way */
	MIGRATE_E_UNCONFIRMED = 6, /* committed, the target never said so */
	MIGRATE_E_INVALID = 7,     /* bad vCPU, node, or not where expected */
	MIGRATE_E_MAX = 7,
};
const char *migrate_status__name(enum migrate_status s);

/* Failures injected on purpose (QMP's x-fault), to test every abort
 * path end to end. */
enum migrate_fault {
	MIGRATE_FAULT_NONE = 0,
	MIGRATE_FAULT_REFUSE_PREPARE,	/* T refuses the PREPARE */
	MIGRATE_FAULT_FAIL_CAPTURE,	/* S's capture fails (vCPU paused) */
	MIGRATE_FAULT_REFUSE_LOAD,	/* T refuses the received state */
	MIGRATE_FAULT_SILENT_LOAD,	/* T never answers LOADED */
	MIGRATE_FAULT_SILENT_RESUME,	/* T moves it but never says so */
	MIGRATE_FAULT_MAX = MIGRATE_FAULT_SILENT_RESUME,
};
/* "refuse-prepare", ...; NULL for an unknown value. */
const char *migrate_fault__name(unsigned f);
/* -1 for an unknown name. */
int migrate_fault__parse(const char *name);

/* A decoded message (the fields its type has; the rest 0). */
struct migrate_msg {
	uint64_t id;
	uint16_t vcpu, node;
	uint32_t gen;
	uint8_t fault;		/* START, PREPARE */
	uint8_t commit;		/* DECIDE */
	uint8_t step, status;	/* REPLY (step, status), DONE (status) */
	uint64_t value;		/* REPLY: ns; DONE: downtime ns */
	uint64_t total_ns;	/* DONE */
	uint32_t state_bytes;	/* DONE */
	uint32_t addr_seq;	/* STATE, PLACE */
	struct apic_addr addr;	/* STATE, PLACE */
	const uint8_t *blob;	/* STATE: points into the payload */
	uint32_t blob_len;
	struct apic_msg irq;	/* FORWARD */
	uint8_t hops;		/* FORWARD */
	uint16_t from;		/* RESULT (not on the wire): its node before */
	char text[MIGRATE_TEXT_MAX + 1]; /* REPLY, DONE; NUL-terminated */
};

/* ---- wire (vmm/migrate_wire.c) ---- */
/* The encoded length of type for m, or -1 (unknown type, buf too small,
 * a value the format cannot carry).  STATE: the header only (the blob
 * follows it in the same message); blob_len must be set. */
int migrate_msg__encode(unsigned type, const struct migrate_msg *m,
			uint8_t *buf, size_t buflen);
/* Checks the structure and every field that needs no state (vcpu and node
 * against the VM's counts).  0, or -1 with a reason in err. */
int migrate_msg__decode(unsigned type, const uint8_t *buf, size_t len,
			unsigned nr_vcpus, unsigned nr_nodes,
			struct migrate_msg *m, char *err, size_t errlen);

/* ---- the state machine ---- */

struct migrate_timeouts {
	uint64_t prepared_ns;	/* S: PREPARE -> REPLY(PREPARED) */
	uint64_t park_ns;	/* S: the vCPU leaves the guest */
	uint64_t loaded_ns;	/* S: STATE -> REPLY(LOADED) */
	uint64_t resumed_ns;	/* S: DECIDE(commit) -> REPLY(RESUMED) */
	uint64_t target_ns;	/* T: gives up waiting for STATE/DECIDE */
	uint64_t done_ns;	/* C: START -> DONE */
};
/* 1 s, 3 s, 2 s, 2 s, 30 s, 15 s: T waits far longer than S ever does,
 * C longer than S's steps together. */
void migrate_timeouts__default(struct migrate_timeouts *t);

struct migrate_proto_config {
	unsigned self, nr_nodes, nr_vcpus;
	unsigned coordinator;		/* node 0 */
	const uint8_t *vcpu_node;	/* initial placement, copied */
	struct migrate_timeouts tmo;
};

enum migrate_act_kind {
	/* Send msg (type) to node.  Never STATE (SEND_STATE). */
	MIGRATE_A_SEND,
	/* S: take vcpu out of the guest and hold it; then call
	 * migrate_proto__parked. */
	MIGRATE_A_PARK,
	/* S: the held vcpu's APIC address flushed to every node, its gate
	 * sealed (interrupts for it queue), its whole state captured; then
	 * migrate_proto__captured. */
	MIGRATE_A_CAPTURE,
	/* S: send the captured state of vcpu to node as STATE (header
	 * fields in msg; the blob is the I/O side's). */
	MIGRATE_A_SEND_STATE,
	/* S: unseal vcpu's gate, hand it what queued, let it run here. */
	MIGRATE_A_RELEASE,
	/* S: under vcpu's gate: send msg (DECIDE commit) to node, then the
	 * queued interrupts as FORWARD; the gate forwards to node from now
	 * on; routing says node (msg.gen, addr_seq, addr); vcpu stays held
	 * (dormant). */
	MIGRATE_A_HAND_OVER,
	/* T: load the STATE's blob (msg.blob) into vcpu; then
	 * migrate_proto__loaded.  The blob must be copied now. */
	MIGRATE_A_LOAD,
	/* T: forget the state received or loaded for vcpu. */
	MIGRATE_A_DISCARD,
	/* T: vcpu's gate open, routing local (msg.gen, addr_seq, addr),
	 * PLACE to every other node, vcpu runs here; then, if reply, send
	 * msg_reply (REPLY RESUMED) to node with value = ns from the DECIDE's
	 * arrival to the vCPU's resume. */
	MIGRATE_A_ACTIVATE,
	/* Any node: vcpu runs on node now (msg.gen, addr_seq, addr): update
	 * routing (it was remote here and stays remote). */
	MIGRATE_A_PLACE,
	/* C: the answer to the request (msg.status, node, value = downtime,
	 * total_ns, state_bytes, text). */
	MIGRATE_A_RESULT,
};

struct migrate_act {
	enum migrate_act_kind kind;
	unsigned node, type, vcpu;
	bool reply;			/* ACTIVATE */
	struct migrate_msg msg;
	struct migrate_msg msg_reply;	/* ACTIVATE */
};

#define MIGRATE_MAX_ACTS 8
struct migrate_acts {
	unsigned n;
	struct migrate_act a[MIGRATE_MAX_ACTS];
};

struct migrate_proto;

struct migrate_proto *migrate_proto__new(const struct migrate_proto_config *c);
void migrate_proto__free(struct migrate_proto *p);

/* C: move vcpu to node.  0: started (a RESULT action follows); 1: nothing
 * to do (it is there already; *res filled, status OK); -1: refused at
 * once (*res filled: MIGRATE_E_INVALID or MIGRATE_E_BUSY). */
int migrate_proto__request(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, unsigned node, unsigned fault,
			   struct migrate_msg *res, struct migrate_acts *out);
/* A decoded message from sender (any type but FORWARD). */
void migrate_proto__recv(struct migrate_proto *p, uint64_t now,
			 unsigned sender, unsigned type,
			 const struct migrate_msg *m, struct migrate_acts *out);
/* S: the vCPU PARK asked for left the guest at t_paused. */
void migrate_proto__parked(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, uint64_t t_paused,
			   struct migrate_acts *out);
/* S: CAPTURE's outcome: ok with the blob's size and the vCPU's address
 * (seq as the routers know it), or why not. */
void migrate_proto__captured(struct migrate_proto *p, uint64_t now,
			     unsigned vcpu, bool ok, uint32_t bytes,
			     uint32_t addr_seq, const struct apic_addr *addr,
			     const char *why, struct migrate_acts *out);
/* T: LOAD's outcome. */
void migrate_proto__loaded(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, bool ok, const char *why,
			   struct migrate_acts *out);
/* Deadlines passed. */
void migrate_proto__tick(struct migrate_proto *p, uint64_t now,
			 struct migrate_acts *out);
/* The VM stops: every role ends now (S releases a held vCPU; C answers). */
void migrate_proto__stopping(struct migrate_proto *p,
			     struct migrate_acts *out);
/* The earliest deadline, or 0. */
uint64_t migrate_proto__next_deadline(const struct migrate_proto *p);

/* Where vcpu runs as this node knows it, and its generation. */
unsigned migrate_proto__node_of(const struct migrate_proto *p, unsigned vcpu);
uint32_t migrate_proto__gen_of(const struct migrate_proto *p, unsigned vcpu);
/* Whether this node is in the middle of moving vcpu (as S or T). */
bool migrate_proto__busy(const struct migrate_proto *p, unsigned vcpu);

struct migrate_proto_stats {
	uint64_t started, succeeded, failed;	/* C */
	uint64_t out, in;			/* S, T: completed */
	uint64_t aborted_out, refused_in;	/* S aborts; T refusals */
	uint64_t stale;				/* ignored messages */
	uint64_t last_downtime_ns, max_downtime_ns;	/* S */
};
void migrate_proto__stats(const struct migrate_proto *p,
			  struct migrate_proto_stats *out);

#endif
