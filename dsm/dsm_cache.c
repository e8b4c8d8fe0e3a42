/* DSM requester / holder side: local faults, grants and acks for this
 * node's own requests, and what a sharer or owner does when the home
 * invalidates or forwards.  Every node runs this, the home included; the
 * home's requests for pages it homes go to dsm_home.c by a direct call. */
#include <errno.h>

#include "dsm/dsm_proto.h"
#include "vmm/errf.h"

static struct dsm_req *slot_of(const struct dsm_node *n, uint64_t page)
{
	uint16_t l = n->local[page];

	if (!(l & DSM_L_PEND))
		return NULL;
	return &n->req[l >> DSM_L_SLOT_SHIFT];
}

static void slot_release(struct dsm_node *n, uint64_t page)
{
	uint32_t i = n->local[page] >> DSM_L_SLOT_SHIFT;

	n->req[i].next_free = n->req_free;
	n->req_free = i;
	n->req_used--;
	n->local[page] &= DSM_L_ACC | DSM_L_MAPPED;
}

static bool allows(unsigned acc, bool is_write)
{
	return acc == DSM_ACC_MODIFIED || (acc == DSM_ACC_SHARED && !is_write);
}

int dsm__fault(struct dsm_node *n, uint64_t page, bool is_write,
	       struct dsm_actions *out)
{
	out->n = 0;
	out->why[0] = 0;
	if (page >= n->nr_pages) {
		errf(out->why, sizeof(out->why), "dsm: fault on page %llu "
		     "beyond %llu pages", (unsigned long long)page,
		     (unsigned long long)n->nr_pages);
		return -EINVAL;
	}
	if (is_write)
		n->ctr.write_faults++;
	else
		n->ctr.read_faults++;
	unsigned acc = dsm__acc(n, page);

	if (allows(acc, is_write)) {
		/* Map writable on a read too: saves the write fault that
		 * usually follows (unless writes are tracked). */
		dsm__map_local(n, page, acc == DSM_ACC_MODIFIED &&
				   (is_write || !n->track_writes), out);
		n->ctr.local_faults++;
		return 0;
	}
	if (n->local[page] & DSM_L_PEND) {
		/* The grant (INSTALL/MAP_LOCAL) will wake this faulter too; a
		 * write that only gets a read grant faults again. */
		n->ctr.coalesced_faults++;
		return 0;
	}
	if (n->req_free == DSM_NONE) {
		errf(out->why, sizeof(out->why), "dsm: %u requests already "
		     "outstanding", n->max_requests);
		return -EBUSY;
	}
	uint32_t i = n->req_free;
	unsigned kind = is_write ? DSM_KIND_WRITE : DSM_KIND_READ;

	n->req_free = n->req[i].next_free;
	n->req_used++;
	if (++n->next_txn == 0)
		n->next_txn = 1;
	n->req[i] = (struct dsm_req){
		.page = page, .txn = n->next_txn, .kind = (uint8_t)kind,
		.next_free = DSM_NONE,
	};
	n->local[page] &= DSM_L_ACC | DSM_L_MAPPED;
	n->local[page] |= (uint16_t)(DSM_L_PEND | i << DSM_L_SLOT_SHIFT);
	unsigned home = dsm__home(n, page);

	if (home == n->self)
		dsm__home_request(n, page, home, kind, n->next_txn, out);
	else
		dsm__send(n, out, home, is_write ? DSM_MSG_WRITE_REQ
						 : DSM_MSG_READ_REQ,
			  0, n->self, n->next_txn, page, 0);
	return 0;
}

/* The grant and every ack are in: the access is ours. */
static void finish(struct dsm_node *n, uint64_t page, struct dsm_actions *out)
{
	struct dsm_req *r = slot_of(n, page);

	if (!r)		/* validated: cannot happen */
		return;
	uint8_t flags = r->flags;
	uint32_t txn = r->txn;

	if (r->kind == DSM_KIND_WRITE &&
	    dsm__acc(n, page) != DSM_ACC_MODIFIED) {
		dsm__map_local(n, page, true, out);
		dsm__set_acc(n, page, DSM_ACC_MODIFIED);
	}
	slot_release(n, page);
	if (!(flags & DSM_R_NEED_DONE))
		return;
	unsigned home = dsm__home(n, page);

	if (home == n->self)
		dsm__home_done(n, page, out);
	else
		dsm__send(n, out, home, DSM_MSG_DONE,
			  flags & DSM_R_DONE_DATA ? DSM_MF_DATA : 0, n->self,
			  txn, page, 0);
}

bool dsm__cache_self_satisfied(struct dsm_node *n, uint64_t page,
			       unsigned kind, struct dsm_actions *out)
{
	unsigned acc = dsm__acc(n, page);

	if (!allows(acc, kind == DSM_KIND_WRITE))
		return false;
	dsm__map_local(n, page, acc == DSM_ACC_MODIFIED, out);
	slot_release(n, page);
	return true;
}

void dsm__cache_self_upgrade(struct dsm_node *n, uint64_t page,
			     uint64_t ackmask, struct dsm_actions *out)
{
	struct dsm_req *r = slot_of(n, page);

	if (!r)
		return;
	r->flags = DSM_R_GRANTED | DSM_R_NEED_DONE;
	r->ackmask = ackmask;
	if (r->acked == ackmask)
		finish(n, page, out);
}

static int bad(char *why, size_t whylen, const char *what)
{
	errf(why, whylen, "%s", what);
	return -EPROTO;
}

static int check_grant(const struct dsm_node *n, const struct dsm_msg *m,
		       const struct dsm_req *r, unsigned home, char *why,
		       size_t whylen)
{
	bool fwd = m->flags & DSM_MF_FWD;
	bool write = m->type == DSM_MSG_GRANT_WRITE;
	unsigned acc = dsm__acc(n, m->page);

	if (r->flags & DSM_R_GRANTED)
		return bad(why, whylen, "duplicate grant");
	if (write != (r->kind == DSM_KIND_WRITE))
		return bad(why, whylen, "grant of the wrong kind");
	if (fwd ? m->sender == home : m->sender != home) {
		errf(why, whylen, "sent by node %u, the home is %u%s",
		     m->sender, home, fwd ? " (forwarded grant)" : "");
		return -EPROTO;
	}
	if (fwd && (m->ackmask || !(m->flags & DSM_MF_DONE) ||
		    !(m->flags & DSM_MF_DATA)))
		return bad(why, whylen, "forwarded grant without page and "
			   "DONE, or with acks");
	if (!fwd && !(m->flags & DSM_MF_DONE) != !m->ackmask)
		return bad(why, whylen, "DONE flag disagrees with ack mask");
	if (m->ackmask & (dsm__bit(n->self) | dsm__bit(home)))
		return bad(why, whylen, "ack mask names the requester or the "
			   "home");
	if (r->acked & ~m->ackmask)
		return bad(why, whylen, "acks came from nodes outside the ack "
			   "mask");
	if ((m->flags & DSM_MF_DATA) && acc != DSM_ACC_INVALID)
		return bad(why, whylen, "page data for a page already held");
	if (!(m->flags & DSM_MF_DATA) && acc != DSM_ACC_SHARED)
		return bad(why, whylen, "upgrade without data, but no shared "
			   "copy here");
	return 0;
}

static int check_request_reply(const struct dsm_node *n,
			       const struct dsm_msg *m, unsigned home,
			       char *why, size_t whylen)
{
	const struct dsm_req *r = slot_of(n, m->page);
	char sub[80];
	int rc = 0;

	if (m->requester != n->self) {
		errf(sub, sizeof(sub), "it names node %u as requester",
		     m->requester);
		rc = -EPROTO;
	} else if (!r) {
		errf(sub, sizeof(sub), "no request is outstanding");
		rc = -EPROTO;
	} else if (m->txn != r->txn) {
		errf(sub, sizeof(sub), "txn %u, outstanding is %u", m->txn,
		     r->txn);
		rc = -EPROTO;
	} else if (m->type == DSM_MSG_INV_ACK) {
		uint64_t b = dsm__bit(m->sender);

		if (r->kind != DSM_KIND_WRITE || m->sender == home)
			rc = bad(sub, sizeof(sub), "nobody asked for it");
		else if (r->acked & b)
			rc = bad(sub, sizeof(sub), "duplicate ack");
		else if ((r->flags & DSM_R_GRANTED) && !(r->ackmask & b))
			rc = bad(sub, sizeof(sub), "sender not invalidated");
	} else {
		rc = check_grant(n, m, r, home, sub, sizeof(sub));
	}
	if (rc)
		errf(why, whylen, "dsm: %s from node %u for page %llu "
		     "rejected: %s", dsm_msg__type_name(m->type), m->sender,
		     (unsigned long long)m->page, sub);
	return rc;
}

int dsm__cache_validate(const struct dsm_node *n, const struct dsm_msg *m,
			char *why, size_t whylen)
{
	unsigned home = dsm__home(n, m->page);
	const char *t = dsm_msg__type_name(m->type);
	unsigned long long pg = (unsigned long long)m->page;
	unsigned acc = dsm__acc(n, m->page);

	switch (m->type) {
	case DSM_MSG_INV:
	case DSM_MSG_FWD_READ:
	case DSM_MSG_FWD_WRITE:
		if (m->sender != home) {
			errf(why, whylen, "dsm: %s for page %llu from node %u, "
			     "which is not its home (%u)", t, pg, m->sender,
			     home);
			return -EPROTO;
		}
		if (m->requester == n->self) {
			errf(why, whylen, "dsm: %s for page %llu names this "
			     "node as requester", t, pg);
			return -EPROTO;
		}
		if (acc != (m->type == DSM_MSG_INV ? DSM_ACC_SHARED
						   : DSM_ACC_MODIFIED)) {
			static const char *const st[] = {
				"invalid", "shared", "modified", "?",
			};

			errf(why, whylen, "dsm: %s for page %llu, which is "
			     "%s here", t, pg, st[acc]);
			return -EPROTO;
		}
		return 0;
	default:	/* INV_ACK, GRANT_READ, GRANT_WRITE */
		return check_request_reply(n, m, home, why, whylen);
	}
}

void dsm__cache_receive(struct dsm_node *n, const struct dsm_msg *m,
			const void *data, struct dsm_actions *out)
{
	uint64_t page = m->page;
	struct dsm_req *r;

	switch (m->type) {
	case DSM_MSG_INV:
		dsm__zap(n, page, out);
		dsm__send(n, out, m->requester, DSM_MSG_INV_ACK, 0,
			  m->requester, m->txn, page, 0);
		return;
	case DSM_MSG_FWD_READ:
		/* Write-protect before the page is copied into the grant. */
		dsm__wprotect(n, page, out);
		dsm__send(n, out, m->requester, DSM_MSG_GRANT_READ,
			  DSM_MF_DATA | DSM_MF_DONE | DSM_MF_FWD, m->requester,
			  m->txn, page, 0);
		return;
	case DSM_MSG_FWD_WRITE:
		/* ZAP keeps the bytes readable for the SEND that follows. */
		dsm__zap(n, page, out);
		dsm__send(n, out, m->requester, DSM_MSG_GRANT_WRITE,
			  DSM_MF_DATA | DSM_MF_DONE | DSM_MF_FWD, m->requester,
			  m->txn, page, 0);
		return;
	case DSM_MSG_INV_ACK:
		r = slot_of(n, page);
		if (!r)
			return;
		r->acked |= dsm__bit(m->sender);
		if ((r->flags & DSM_R_GRANTED) && r->acked == r->ackmask)
			finish(n, page, out);
		return;
	default:	/* GRANT_READ, GRANT_WRITE */
		r = slot_of(n, page);
		if (!r)
			return;
		r->flags |= DSM_R_GRANTED;
		if (m->flags & DSM_MF_DONE)
			r->flags |= DSM_R_NEED_DONE;
		/* After a forwarded read the home has no current copy: the
		 * DONE brings it one. */
		if ((m->flags & DSM_MF_FWD) && m->type == DSM_MSG_GRANT_READ &&
		    dsm__home(n, page) != n->self)
			r->flags |= DSM_R_DONE_DATA;
		r->ackmask = m->ackmask;
		bool all_acked = r->acked == r->ackmask;

		/* While acks are missing other sharers may still read the
		 * same bytes, so the page can be read here already; write
		 * access waits for the last ack (finish). */
		if (data)
			dsm__install(n, page, data, all_acked &&
				     r->kind == DSM_KIND_WRITE, out);
		if (all_acked)
			finish(n, page, out);
		return;
	}
}
