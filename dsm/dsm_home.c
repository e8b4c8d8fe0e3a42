/* DSM directory side: what the home of a page does with requests for it.
 *
 * Why this shape:
 * - The home answers from its own memory whenever it has a current copy,
 *   which it has in every state except "Modified at another node" (a Shared
 *   page's copyset always includes the home).  So a read of a page the home
 *   holds, and a write to a page only the home holds, are one round trip:
 *   REQ -> home, GRANT(page) -> requester.
 * - A page Modified elsewhere is forwarded (3 hops: REQ, FWD, GRANT from the
 *   owner) rather than relayed through the home (4 hops, and the page
 *   crosses the network twice).  Invalidation acks also go straight to the
 *   requester, so a write to a shared page costs REQ, GRANT || INVs, ACKs:
 *   3 one-way latencies instead of 4.
 * - The price of 3 hops is that the requester's completion depends on
 *   messages the home did not send, and those are not ordered with the
 *   home's own later messages to the requester.  The home therefore stays
 *   busy until the requester's DONE whenever that is the case, and queues
 *   what arrives meanwhile.  When the home's grant is the last message of a
 *   transaction it is done at once: per-pair FIFO delivers that grant before
 *   anything the home sends the requester later.
 * - Busy pages queue requests in arrival order and serve them when the
 *   transaction ends.  Never NACK-and-retry: under contention that livelocks.
 * - The directory is updated when a transaction starts: it always describes
 *   the state once the in-flight transaction is over, which is the state
 *   every queued request will meet.  That also makes a request checkable on
 *   arrival: only a node's own grant adds it to a copyset, and a node has at
 *   most one request per page, so "a read request from a node in the
 *   copyset" is a protocol error whenever it arrives.
 */
#include <errno.h>

#include "dsm/dsm_proto.h"
#include "vmm/errf.h"

static uint32_t htx_alloc(struct dsm_node *n)
{
	uint32_t i = n->htx_free;

	/* Cannot fail: each htx is one active request, and requests are
	 * bounded per node (inflight_by_node) to fill inflight_cap at most. */
	n->htx_free = n->htx[i].qhead;
	n->htx_used++;
	return i;
}

static void htx_release(struct dsm_node *n, uint32_t i)
{
	n->htx[i].qhead = n->htx_free;
	n->htx_free = i;
	n->htx_used--;
}

static void enqueue(struct dsm_node *n, struct dsm_htx *h, unsigned requester,
		    unsigned kind, uint32_t txn)
{
	uint32_t i = n->q_free;

	n->q_free = n->q[i].next;
	n->q[i] = (struct dsm_qent){
		.txn = txn, .next = DSM_NONE,
		.requester = (uint8_t)requester, .kind = (uint8_t)kind,
	};
	if (h->qtail == DSM_NONE)
		h->qhead = i;
	else
		n->q[h->qtail].next = i;
	h->qtail = i;
}

static void set_excl(struct dsm_dir *d, unsigned owner)
{
	d->flags |= DSM_D_EXCL;
	d->owner = (uint8_t)owner;
	dsm__set_copyset(d, dsm__bit(owner));
}

static void set_shared(struct dsm_dir *d, uint64_t copyset)
{
	d->flags &= (uint8_t)~DSM_D_EXCL;
	d->owner = 0;
	dsm__set_copyset(d, copyset);
}

static unsigned process_read(struct dsm_node *n, uint64_t page,
			     struct dsm_dir *d, unsigned req, uint32_t txn,
			     struct dsm_actions *out)
{
	unsigned home = n->self;

	if (!(d->flags & DSM_D_EXCL)) {
		dsm__send(n, out, req, DSM_MSG_GRANT_READ, DSM_MF_DATA, req,
			  txn, page, 0);
		set_shared(d, dsm__copyset(d) | dsm__bit(req));
		return 0;
	}
	if (d->owner == home) {
		/* Stop local writers before the page is copied out. */
		dsm__wprotect(n, page, out);
		dsm__send(n, out, req, DSM_MSG_GRANT_READ, DSM_MF_DATA, req,
			  txn, page, 0);
		set_shared(d, dsm__bit(home) | dsm__bit(req));
		return 0;
	}
	/* The owner downgrades and sends the page to the requester, whose
	 * DONE brings a copy home (unless the home itself asked). */
	dsm__send(n, out, d->owner, DSM_MSG_FWD_READ, 0, req, txn, page, 0);
	set_shared(d, dsm__bit(d->owner) | dsm__bit(req) | dsm__bit(home));
	return DSM_W_DONE | (req != home ? DSM_W_DATA : 0);
}

static unsigned process_write(struct dsm_node *n, uint64_t page,
			      struct dsm_dir *d, unsigned req, uint32_t txn,
			      struct dsm_actions *out)
{
	unsigned home = n->self;

	if (d->flags & DSM_D_EXCL) {
		unsigned owner = d->owner;

		set_excl(d, req);
		if (owner != home) {
			dsm__send(n, out, owner, DSM_MSG_FWD_WRITE, 0, req, txn,
				  page, 0);
			return DSM_W_DONE;
		}
		/* ZAP keeps the bytes readable for the SEND that follows. */
		dsm__zap(n, page, out);
		dsm__send(n, out, req, DSM_MSG_GRANT_WRITE, DSM_MF_DATA, req,
			  txn, page, 0);
		return 0;
	}
	uint64_t cs = dsm__copyset(d);
	uint64_t inv = cs & ~dsm__bit(req) & ~dsm__bit(home);

	for (unsigned s = 0; s < n->nr_nodes; s++)
		if (inv & dsm__bit(s))
			dsm__send(n, out, s, DSM_MSG_INV, 0, req, txn, page, 0);
	set_excl(d, req);
	if (req == home) {
		dsm__cache_self_upgrade(n, page, inv, out);
		return inv ? DSM_W_DONE : 0;
	}
	uint8_t flags = (cs & dsm__bit(req) ? 0 : DSM_MF_DATA) |
			(inv ? DSM_MF_DONE : 0);

	dsm__zap(n, page, out);
	dsm__send(n, out, req, DSM_MSG_GRANT_WRITE, flags, req, txn, page, inv);
	return inv ? DSM_W_DONE : 0;
}

/* Starts one request on an idle page.  Returns the DSM_W_* bits the
 * transaction now waits for, 0 if it is already complete. */
static unsigned process(struct dsm_node *n, uint64_t page, struct dsm_dir *d,
			unsigned req, unsigned kind, uint32_t txn,
			struct dsm_actions *out)
{
	/* The home's own request may have been overtaken while it waited: a
	 * write-back made its copy current, or a forwarded grant arrived. */
	if (req == n->self && dsm__cache_self_satisfied(n, page, kind, out))
		return 0;
	if (kind == DSM_KIND_READ)
		return process_read(n, page, d, req, txn, out);
	return process_write(n, page, d, req, txn, out);
}

/* The active transaction of a busy page is over: serve the FIFO until a
 * request makes the page busy again or the FIFO is empty. */
static void complete(struct dsm_node *n, uint64_t page, struct dsm_dir *d,
		     struct dsm_actions *out)
{
	uint32_t hi = d->htx;
	struct dsm_htx *h = &n->htx[hi];

	n->inflight_by_node[h->requester]--;
	while (h->qhead != DSM_NONE) {
		uint32_t qi = h->qhead;
		struct dsm_qent e = n->q[qi];

		h->qhead = e.next;
		if (h->qhead == DSM_NONE)
			h->qtail = DSM_NONE;
		n->q[qi].next = n->q_free;
		n->q_free = qi;

		unsigned wait = process(n, page, d, e.requester, e.kind, e.txn,
					out);

		if (wait) {
			h->requester = e.requester;
			h->kind = e.kind;
			h->txn = e.txn;
			h->wait = (uint8_t)wait;
			return;
		}
		n->inflight_by_node[e.requester]--;
	}
	htx_release(n, hi);
	d->flags &= (uint8_t)~DSM_D_BUSY;
}

void dsm__home_request(struct dsm_node *n, uint64_t page, unsigned requester,
		       unsigned kind, uint32_t txn, struct dsm_actions *out)
{
	struct dsm_dir *d = dsm__dir(n, page);

	if (!d)		/* callers only pass homed pages */
		return;
	n->inflight_by_node[requester]++;
	if (d->flags & DSM_D_BUSY) {
		enqueue(n, &n->htx[d->htx], requester, kind, txn);
		return;
	}
	unsigned wait = process(n, page, d, requester, kind, txn, out);

	if (!wait) {
		n->inflight_by_node[requester]--;
		return;
	}
	uint32_t hi = htx_alloc(n);

	n->htx[hi] = (struct dsm_htx){
		.page = page, .txn = txn, .qhead = DSM_NONE, .qtail = DSM_NONE,
		.requester = (uint8_t)requester, .kind = (uint8_t)kind,
		.wait = (uint8_t)wait,
	};
	d->htx = (uint16_t)hi;
	d->flags |= DSM_D_BUSY;
}

void dsm__home_done(struct dsm_node *n, uint64_t page,
		    struct dsm_actions *out)
{
	struct dsm_dir *d = dsm__dir(n, page);

	if (!d || !(d->flags & DSM_D_BUSY))
		return;
	n->htx[d->htx].wait = 0;
	complete(n, page, d, out);
}

static bool has_request(const struct dsm_node *n, const struct dsm_dir *d,
			unsigned node)
{
	if (!(d->flags & DSM_D_BUSY))
		return false;
	const struct dsm_htx *h = &n->htx[d->htx];
	unsigned guard = 0;

	if (h->requester == node)
		return true;
	/* At most one entry per node: the walk is bounded even if the
	 * tables were damaged. */
	for (uint32_t i = h->qhead; i != DSM_NONE && guard++ < DSM_MAX_NODES;
	     i = n->q[i].next)
		if (n->q[i].requester == node)
			return true;
	return false;
}

int dsm__home_validate(const struct dsm_node *n, const struct dsm_msg *m,
		       char *why, size_t whylen)
{
	const struct dsm_dir *d = dsm__dir(n, m->page);
	const struct dsm_htx *h = d->flags & DSM_D_BUSY ? &n->htx[d->htx]
							: NULL;
	const char *t = dsm_msg__type_name(m->type);
	unsigned long long pg = (unsigned long long)m->page;

	if (m->type == DSM_MSG_DONE) {
		if (!h || !(h->wait & DSM_W_DONE)) {
			errf(why, whylen, "dsm: DONE from node %u for page "
			     "%llu with no transaction in flight", m->sender,
			     pg);
			return -EPROTO;
		}
		if (m->sender != h->requester || m->requester != m->sender ||
		    m->txn != h->txn) {
			errf(why, whylen, "dsm: DONE from node %u txn %u for "
			     "page %llu, but node %u's txn %u is in flight",
			     m->sender, m->txn, pg, h->requester, h->txn);
			return -EPROTO;
		}
		if (!(m->flags & DSM_MF_DATA) != !(h->wait & DSM_W_DATA)) {
			errf(why, whylen, "dsm: DONE for page %llu %s the page",
			     pg, m->flags & DSM_MF_DATA ? "with" : "without");
			return -EPROTO;
		}
		return 0;
	}
	/* READ_REQ / WRITE_REQ */
	if (m->requester != m->sender) {
		errf(why, whylen, "dsm: %s from node %u on behalf of node %u",
		     t, m->sender, m->requester);
		return -EPROTO;
	}
	if (has_request(n, d, m->sender)) {
		errf(why, whylen, "dsm: second %s from node %u for page %llu "
		     "while its first is in progress", t, m->sender, pg);
		return -EPROTO;
	}
	if (n->inflight_by_node[m->sender] >= n->max_requests) {
		errf(why, whylen, "dsm: node %u exceeds %u outstanding "
		     "requests", m->sender, n->max_requests);
		return -EPROTO;
	}
	if (m->type == DSM_MSG_READ_REQ &&
	    (dsm__copyset(d) & dsm__bit(m->sender))) {
		errf(why, whylen, "dsm: READ_REQ from node %u for page %llu, "
		     "which it already holds", m->sender, pg);
		return -EPROTO;
	}
	if (m->type == DSM_MSG_WRITE_REQ && (d->flags & DSM_D_EXCL) &&
	    d->owner == m->sender) {
		errf(why, whylen, "dsm: WRITE_REQ from node %u for page %llu, "
		     "which it owns", m->sender, pg);
		return -EPROTO;
	}
	return 0;
}

void dsm__home_receive(struct dsm_node *n, const struct dsm_msg *m,
		       const void *data, struct dsm_actions *out)
{
	if (m->type == DSM_MSG_DONE) {
		/* After a forwarded read: the page is shared now, and the
		 * home keeps a current, read-only mapped copy. */
		if (data)
			dsm__install(n, m->page, data, false, out);
		dsm__home_done(n, m->page, out);
		return;
	}
	dsm__home_request(n, m->page, m->sender,
			  m->type == DSM_MSG_WRITE_REQ ? DSM_KIND_WRITE
						       : DSM_KIND_READ,
			  m->txn, out);
}
