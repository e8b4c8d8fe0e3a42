/* DSM page-coherence protocol core: pure logic, events in, actions out.
 *
 * One struct dsm_node per node (per krg-vmm process).  Pages are 4 KiB and
 * numbered densely 0..nr_pages-1 (the caller maps gpa <-> index).  Each page
 * has a home node (caller's home_of callback) that keeps the directory entry
 * and serializes every request for the page.  MSI, single writer / multiple
 * readers: a page is either Modified at exactly one node or Shared by a
 * copyset that always includes the home; this is sequentially consistent
 * for an x86 guest.  Initially every page is Modified at its home with the
 * home copy current, and nothing is mapped yet.
 *
 * Protocol (see dsm_home.c for the reasoning): requests go to the home; the
 * home answers itself when it holds a current copy (one round trip for a
 * read of a page it holds, and for a write to a page only it holds);
 * otherwise it forwards to the exclusive owner, which sends the page
 * straight to the requester (3 hops); invalidation acks also go straight to
 * the requester.  Whenever the requester's completion depends on a message
 * not sent by the home, the home stays busy until the requester's DONE, so
 * per-pair FIFO order is all the protocol needs from the transport.  Requests
 * arriving while busy wait in a FIFO at the home; nothing is ever NACKed.
 *
 * After a forwarded read the requester's DONE carries the page, so the home
 * has a current copy again.
 *
 * The home's own role is handled inline: it never sends a message to itself
 * (no SEND ever has dest == self), so its own faults need no loopback.
 *
 * A node is not thread-safe: its events must be handled one at a time.
 *
 * ACTIONS.  Every event (dsm__fault, dsm__receive) resets `out` and fills it
 * with at most DSM_MAX_ACTIONS actions, all for the event's page, which the
 * I/O side executes in order, all of them before it handles the next event
 * for the same node:
 *   SEND(dest, msg, attach): encode msg (dsm_msg__encode); if attach, append
 *     the node's current 4096 bytes of the page, read through the I/O side's
 *     own mapping; transmit on the latency channel.  A SEND with attach
 *     always comes after the WRITE_PROTECT or ZAP that stopped local writers,
 *     so the copy cannot race a guest store.
 *   INSTALL(page, data, writable): copy `data` (the page that came with the
 *     message being processed, valid until dsm__receive's caller frees it)
 *     into local memory and map it read-only or read-write; wakes faulters.
 *   MAP_LOCAL(page, writable): local memory already holds current data: map
 *     it (or lift write protection); idempotent; wakes faulters.
 *   WRITE_PROTECT(page): drop write access, keep the mapping and data.
 *   ZAP(page): drop every guest access (MADV_DONTNEED on the registered
 *     mapping).  The bytes must stay readable by the I/O side for the SENDs
 *     later in the same list; after that they are stale.
 * There is no separate WAKE: INSTALL and MAP_LOCAL imply it.  A faulter whose
 * access is still not allowed after a wake (a write woken by a read-only
 * INSTALL) faults again, which is cheap: the core coalesces it.
 *
 * ERRORS.  Anything from the network is untrusted.  dsm__receive() validates
 * first (dsm__validate_msg) and on failure returns a negative errno, leaves
 * the node state untouched, emits no action and puts one line in out->why.
 * The caller logs it and stops the VM cleanly: a protocol error means a peer
 * is broken, and continuing would risk incoherent memory.
 *
 * State is kept in flat arrays of fixed-width fields (no pointers) so a
 * later issue can checkpoint and migrate it: 2 bytes per page (local access)
 * plus 12 bytes per homed page (directory); transient data lives in side
 * tables sized by in-flight requests, not by pages.
 */
#ifndef KRG_VMM_DSM_PROTO_H
#define KRG_VMM_DSM_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "dsm/dsm_msg.h"

#define DSM_MAX_NODES 64
/* Outstanding requests one node may have (>= threads that can fault at
 * once: vCPUs + device/I/O threads).  Bounded by the 12-bit slot field of
 * the local word, and nr_nodes * max_requests by the 16-bit htx index. */
#define DSM_MAX_REQUESTS 4095
#define DSM_MAX_INFLIGHT 65535
#define DSM_WHY_MAX 128
#define DSM_STATE_VERSION 1

enum dsm_access {
	DSM_ACC_INVALID = 0,
	DSM_ACC_SHARED = 1,	/* current data, read-only */
	DSM_ACC_MODIFIED = 2,	/* current data, the single writer */
};

enum dsm_action_type {
	DSM_ACT_SEND = 1,
	DSM_ACT_INSTALL,
	DSM_ACT_MAP_LOCAL,
	DSM_ACT_WRITE_PROTECT,
	DSM_ACT_ZAP,
};

struct dsm_action {
	uint8_t type;		/* enum dsm_action_type */
	uint8_t writable;	/* INSTALL, MAP_LOCAL */
	uint8_t attach;		/* SEND: append the local page */
	uint8_t dest;		/* SEND */
	uint64_t page;
	const void *data;	/* INSTALL: the data given to dsm__receive */
	struct dsm_msg msg;	/* SEND */
};

/* Upper bound on the actions of one event.  The worst case is a DONE that
 * drains a full request FIFO of a page: at most DSM_MAX_NODES - 1 waiting
 * requests, each completed with <= 2 actions, then one write that
 * invalidates up to DSM_MAX_NODES - 2 sharers (+ ZAP + grant), plus the
 * event's own <= 3: 2*63 + 64 + 3 = 193 < 256. */
#define DSM_MAX_ACTIONS 256

struct dsm_actions {
	unsigned n;
	struct dsm_action a[DSM_MAX_ACTIONS];
	char why[DSM_WHY_MAX];	/* set when an event returns an error */
};

struct dsm_config {
	unsigned nr_nodes;	/* 1..DSM_MAX_NODES, same on every node */
	unsigned self;		/* this node, < nr_nodes */
	uint64_t nr_pages;	/* >= 1, same on every node */
	/* Must be pure and identical on every node; < nr_nodes. */
	unsigned (*home_of)(void *ctx, uint64_t page);
	void *ctx;
	unsigned max_requests;	/* 1..DSM_MAX_REQUESTS, same everywhere */
	/* A read fault on a page this node may write maps it read-only, so
	 * the first write after a read faults too (no message: the node
	 * already has write access).  Tracks writes; the cluster bench's
	 * floor for an upgrade is this local write-protect fault. */
	bool track_writes;
};

struct dsm_counters {
	uint64_t read_faults;
	uint64_t write_faults;
	uint64_t local_faults;	/* satisfied with MAP_LOCAL, no message */
	uint64_t coalesced_faults; /* a request was already outstanding */
	uint64_t inv_sent;
	uint64_t inv_received;
	uint64_t pages_sent;
	uint64_t pages_received;
	uint64_t protocol_errors;
	uint64_t msgs_sent[DSM_MSG_NR_TYPES];	/* index type - 64 */
	uint64_t msgs_received[DSM_MSG_NR_TYPES];
};

/* Directory entry as seen from outside (tests, dumps, debug). */
struct dsm_dir_info {
	bool exclusive;		/* Modified at owner, else Shared */
	bool busy;		/* a transaction is in flight */
	bool home_current;	/* the home's memory holds the latest data */
	unsigned owner;
	uint64_t copyset;
	unsigned queued;	/* requests waiting behind the busy one */
};

struct dsm_node;

/* Allocates the node's tables; scans home_of once over all pages.  Returns
 * NULL with one line in err on bad configuration or out of memory. */
struct dsm_node *dsm__new(const struct dsm_config *cfg, char *err,
			  size_t errlen);
void dsm__free(struct dsm_node *n);

/* A vCPU or device access to `page` faulted.  Emits MAP_LOCAL when the node
 * already has the rights (no message), nothing when a request for the page
 * is already outstanding, else one request (or, on the home, the inline
 * directory work).  -EINVAL: page out of range; -EBUSY: max_requests
 * requests already outstanding (the caller waits for a grant and retries). */
int dsm__fault(struct dsm_node *n, uint64_t page, bool is_write,
	       struct dsm_actions *out);
/* A message arrived (already through dsm_msg__decode); data is the page
 * iff msg->flags has DSM_MF_DATA.  Negative errno on a protocol error. */
int dsm__receive(struct dsm_node *n, const struct dsm_msg *m,
		 const void *data, struct dsm_actions *out);
/* The checks dsm__receive makes first, without acting: -EINVAL for a
 * malformed message, -EPROTO for one that makes no sense in this state. */
int dsm__validate_msg(const struct dsm_node *n, const struct dsm_msg *m,
		      const void *data, char *why, size_t whylen);

enum dsm_access dsm__access(const struct dsm_node *n, uint64_t page);
/* A request for page is outstanding at this node. */
bool dsm__pending(const struct dsm_node *n, uint64_t page);
/* -EINVAL unless this node is the page's home. */
int dsm__dir_info(const struct dsm_node *n, uint64_t page,
		  struct dsm_dir_info *out);
unsigned dsm__home(const struct dsm_node *n, uint64_t page);
/* No outstanding request and no busy directory entry. */
bool dsm__idle(const struct dsm_node *n);
const struct dsm_counters *dsm__counters(const struct dsm_node *n);
const char *dsm__action_name(unsigned type);

/* ---- Internal to the dsm_*.c files: node layout and shared helpers. ---- */

/* Local word, one per page: access, request outstanding, page mapped. */
#define DSM_L_ACC 0x0003
#define DSM_L_PEND 0x0004	/* request slot in bits 4..15 */
#define DSM_L_MAPPED 0x0008	/* something was mapped since the last ZAP */
#define DSM_L_SLOT_SHIFT 4

/* Directory entry, one per homed page (12 bytes). */
#define DSM_D_EXCL 0x01		/* Modified at owner; copyset {owner} */
#define DSM_D_BUSY 0x02		/* htx is valid */
#define DSM_D_HOME_CURRENT 0x04	/* the home's own memory is current */

struct dsm_dir {
	uint32_t copyset_lo;	/* split so the entry packs to 12 bytes */
	uint32_t copyset_hi;
	uint8_t owner;
	uint8_t flags;
	uint16_t htx;
};

_Static_assert(sizeof(struct dsm_dir) == 12, "directory entry size");

#define DSM_NONE 0xFFFFFFFFu
#define DSM_KIND_READ 0
#define DSM_KIND_WRITE 1
#define DSM_W_DONE 0x01		/* htx waits for the requester's DONE */
#define DSM_W_DATA 0x02		/* ... which must carry the page */

/* A busy page's transaction at its home, with the FIFO of waiting requests.
 * The directory already describes the state after this transaction. */
struct dsm_htx {
	uint64_t page;
	uint32_t txn;
	uint32_t qhead;		/* dsm_qent, DSM_NONE; free-list link */
	uint32_t qtail;
	uint8_t requester;
	uint8_t kind;
	uint8_t wait;		/* DSM_W_* */
	uint8_t pad;
};

struct dsm_qent {
	uint32_t txn;
	uint32_t next;		/* also the free-list link */
	uint8_t requester;
	uint8_t kind;
	uint8_t pad[2];
};

#define DSM_R_GRANTED 0x01
#define DSM_R_NEED_DONE 0x02
#define DSM_R_DONE_DATA 0x04	/* the DONE carries the page home */

/* An outstanding request of this node (requester side). */
struct dsm_req {
	uint64_t page;
	uint64_t ackmask;	/* from the grant */
	uint64_t acked;		/* INV_ACKs so far (may precede grant) */
	uint32_t txn;
	uint32_t next_free;
	uint8_t kind;
	uint8_t flags;		/* DSM_R_* */
	uint8_t pad[6];
};

struct dsm_run {		/* consecutive pages homed here */
	uint64_t first;
	uint64_t count;
	uint64_t dir_base;
};

struct dsm_node {
	uint32_t self;
	uint32_t nr_nodes;
	uint64_t nr_pages;
	unsigned (*home_of)(void *ctx, uint64_t page);
	void *ctx;
	uint16_t *local;		/* [nr_pages] */
	struct dsm_dir *dir;		/* [nr_homed] */
	uint64_t nr_homed;
	struct dsm_run *runs;
	uint64_t nr_runs;
	struct dsm_req *req;		/* [max_requests] */
	uint32_t max_requests;
	bool track_writes;
	uint32_t req_free;
	uint32_t req_used;
	uint32_t next_txn;
	struct dsm_htx *htx;		/* [inflight_cap] */
	struct dsm_qent *q;		/* [inflight_cap] */
	uint32_t inflight_cap;
	uint32_t htx_free;
	uint32_t htx_used;
	uint32_t q_free;
	/* Requests each node has at this home (active or queued): a peer that
	 * exceeds max_requests is broken, and the bound keeps the side tables
	 * from ever filling up for well-behaved nodes. */
	uint16_t inflight_by_node[DSM_MAX_NODES];
	struct dsm_counters ctr;
};

static inline unsigned dsm__acc(const struct dsm_node *n, uint64_t page)
{
	return n->local[page] & DSM_L_ACC;
}

static inline uint64_t dsm__bit(unsigned node)
{
	return 1ull << node;
}

static inline uint64_t dsm__copyset(const struct dsm_dir *d)
{
	return (uint64_t)d->copyset_hi << 32 | d->copyset_lo;
}

static inline void dsm__set_copyset(struct dsm_dir *d, uint64_t cs)
{
	d->copyset_lo = (uint32_t)cs;
	d->copyset_hi = (uint32_t)(cs >> 32);
}

/* dsm_proto.c */
struct dsm_dir *dsm__dir(const struct dsm_node *n, uint64_t page);
void dsm__push(struct dsm_actions *out, uint8_t type, uint64_t page,
	       bool writable, const void *data);
void dsm__send(struct dsm_node *n, struct dsm_actions *out, unsigned dest,
	       uint8_t type, uint8_t flags, unsigned requester, uint32_t txn,
	       uint64_t page, uint64_t ackmask);
void dsm__set_acc(struct dsm_node *n, uint64_t page, unsigned acc);
void dsm__zap(struct dsm_node *n, uint64_t page, struct dsm_actions *out);
void dsm__wprotect(struct dsm_node *n, uint64_t page,
		   struct dsm_actions *out);
void dsm__install(struct dsm_node *n, uint64_t page, const void *data,
		  bool writable, struct dsm_actions *out);
void dsm__map_local(struct dsm_node *n, uint64_t page, bool writable,
		    struct dsm_actions *out);

/* dsm_home.c: the directory side. */
int dsm__home_validate(const struct dsm_node *n, const struct dsm_msg *m,
		       char *why, size_t whylen);
void dsm__home_receive(struct dsm_node *n, const struct dsm_msg *m,
		       const void *data, struct dsm_actions *out);
/* A request (remote, or the home's own from dsm__fault) reaches the home. */
void dsm__home_request(struct dsm_node *n, uint64_t page, unsigned requester,
		       unsigned kind, uint32_t txn, struct dsm_actions *out);
/* The home, as requester, completed a transaction that needed DONE. */
void dsm__home_done(struct dsm_node *n, uint64_t page,
		    struct dsm_actions *out);

/* dsm_cache.c: the requester / holder side. */
int dsm__cache_validate(const struct dsm_node *n, const struct dsm_msg *m,
			char *why, size_t whylen);
void dsm__cache_receive(struct dsm_node *n, const struct dsm_msg *m,
			const void *data, struct dsm_actions *out);
/* The home's own queued request met a state that already allows it. */
bool dsm__cache_self_satisfied(struct dsm_node *n, uint64_t page,
			       unsigned kind, struct dsm_actions *out);
/* The home grants itself M on a page it shares; ackmask: remote sharers
 * that were sent INV and will ack to it. */
void dsm__cache_self_upgrade(struct dsm_node *n, uint64_t page,
			     uint64_t ackmask, struct dsm_actions *out);

#endif
