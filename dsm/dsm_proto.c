/* DSM protocol core: node tables, the wire codec, the checks every message
 * passes before either side acts on it, and the action helpers shared by
 * the directory (dsm_home.c) and requester (dsm_cache.c) sides. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/dsm_proto.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

static const char *const type_names[DSM_MSG_NR_TYPES] = {
	"READ_REQ", "WRITE_REQ", "INV", "INV_ACK", "FWD_READ", "FWD_WRITE",
	"GRANT_READ", "GRANT_WRITE", "DONE",
};

const char *dsm_msg__type_name(unsigned type)
{
	if (type < DSM_MSG_READ_REQ || type >= DSM_MSG_END)
		return "?";
	return type_names[type - DSM_MSG_READ_REQ];
}

const char *dsm__action_name(unsigned type)
{
	static const char *const names[] = {
		"?", "SEND", "INSTALL", "MAP_LOCAL", "WRITE_PROTECT", "ZAP",
	};

	return type < sizeof(names) / sizeof(names[0]) ? names[type] : "?";
}

void dsm_msg__encode(const struct dsm_msg *m, uint8_t buf[DSM_MSG_SIZE])
{
	buf[0] = m->type;
	buf[1] = m->flags;
	buf[2] = m->sender;
	buf[3] = m->requester;
	put_le32(buf + 4, m->txn);
	put_le64(buf + 8, m->page);
	put_le64(buf + 16, m->ackmask);
}

int dsm_msg__decode(const void *buf, size_t len, unsigned from,
		    struct dsm_msg *m, const void **data, char *why,
		    size_t whylen)
{
	const uint8_t *b = buf;

	*data = NULL;
	if (!buf || len < DSM_MSG_SIZE) {
		errf(why, whylen, "dsm: message of %zu bytes is shorter than "
		     "its %d-byte header", len, DSM_MSG_SIZE);
		return -EINVAL;
	}
	m->type = b[0];
	m->flags = b[1];
	m->sender = b[2];
	m->requester = b[3];
	m->txn = get_le32(b + 4);
	m->page = get_le64(b + 8);
	m->ackmask = get_le64(b + 16);
	if (m->type < DSM_MSG_READ_REQ || m->type >= DSM_MSG_END) {
		errf(why, whylen, "dsm: unknown message type %u", m->type);
		return -EINVAL;
	}
	if (m->flags & ~DSM_MF_ALL) {
		errf(why, whylen, "dsm: %s with unknown flags 0x%x",
		     dsm_msg__type_name(m->type), m->flags);
		return -EINVAL;
	}
	size_t want = DSM_MSG_SIZE +
		      (m->flags & DSM_MF_DATA ? DSM_PAGE_SIZE : 0);

	if (len != want) {
		errf(why, whylen, "dsm: %s is %zu bytes, expected %zu",
		     dsm_msg__type_name(m->type), len, want);
		return -EINVAL;
	}
	if (m->sender != from) {
		errf(why, whylen, "dsm: %s claims sender %u but came from "
		     "node %u", dsm_msg__type_name(m->type), m->sender, from);
		return -EINVAL;
	}
	if (m->flags & DSM_MF_DATA)
		*data = b + DSM_MSG_SIZE;
	return 0;
}

/* Which flags each type must and may carry, and whether the home of the
 * page is its destination. */
static const struct {
	uint8_t must, may, to_home;
} rules[DSM_MSG_NR_TYPES] = {
	[DSM_MSG_READ_REQ - 64] = { 0, 0, 1 },
	[DSM_MSG_WRITE_REQ - 64] = { 0, 0, 1 },
	[DSM_MSG_INV - 64] = { 0, 0, 0 },
	[DSM_MSG_INV_ACK - 64] = { 0, 0, 0 },
	[DSM_MSG_FWD_READ - 64] = { 0, 0, 0 },
	[DSM_MSG_FWD_WRITE - 64] = { 0, 0, 0 },
	[DSM_MSG_GRANT_READ - 64] = { DSM_MF_DATA, DSM_MF_ALL, 0 },
	[DSM_MSG_GRANT_WRITE - 64] = { 0, DSM_MF_ALL, 0 },
	[DSM_MSG_DONE - 64] = { 0, DSM_MF_DATA, 1 },
};

static uint64_t node_mask(const struct dsm_node *n)
{
	return n->nr_nodes == 64 ? ~0ull : dsm__bit(n->nr_nodes) - 1;
}

int dsm__validate_msg(const struct dsm_node *n, const struct dsm_msg *m,
		      const void *data, char *why, size_t whylen)
{
	if (!m || m->type < DSM_MSG_READ_REQ || m->type >= DSM_MSG_END) {
		errf(why, whylen, "dsm: unknown message type %u",
		     m ? m->type : 0);
		return -EINVAL;
	}
	const char *t = dsm_msg__type_name(m->type);
	unsigned r = m->type - DSM_MSG_READ_REQ;

	if (m->sender >= n->nr_nodes || m->sender == n->self) {
		errf(why, whylen, "dsm: %s from invalid sender %u", t,
		     m->sender);
		return -EINVAL;
	}
	if (m->requester >= n->nr_nodes) {
		errf(why, whylen, "dsm: %s names invalid requester %u", t,
		     m->requester);
		return -EINVAL;
	}
	if (m->page >= n->nr_pages) {
		errf(why, whylen, "dsm: %s for page %llu beyond %llu pages", t,
		     (unsigned long long)m->page,
		     (unsigned long long)n->nr_pages);
		return -EINVAL;
	}
	if ((m->flags & ~rules[r].may) ||
	    (m->flags & rules[r].must) != rules[r].must) {
		errf(why, whylen, "dsm: %s with invalid flags 0x%x", t,
		     m->flags);
		return -EINVAL;
	}
	if (!data != !(m->flags & DSM_MF_DATA)) {
		errf(why, whylen, "dsm: %s page data %s", t,
		     data ? "not announced" : "missing");
		return -EINVAL;
	}
	if (m->ackmask && (m->type != DSM_MSG_GRANT_WRITE ||
			   (m->ackmask & ~node_mask(n)))) {
		errf(why, whylen, "dsm: %s with invalid ack mask 0x%llx", t,
		     (unsigned long long)m->ackmask);
		return -EINVAL;
	}
	bool home_here = dsm__dir(n, m->page) != NULL;

	if (rules[r].to_home && !home_here) {
		errf(why, whylen, "dsm: %s from node %u for page %llu, which "
		     "node %u does not home", t, m->sender,
		     (unsigned long long)m->page, n->self);
		return -EPROTO;
	}
	if (rules[r].to_home)
		return dsm__home_validate(n, m, why, whylen);
	return dsm__cache_validate(n, m, why, whylen);
}

int dsm__receive(struct dsm_node *n, const struct dsm_msg *m,
		 const void *data, struct dsm_actions *out)
{
	out->n = 0;
	out->why[0] = 0;
	int rc = dsm__validate_msg(n, m, data, out->why, sizeof(out->why));

	if (rc) {
		n->ctr.protocol_errors++;
		return rc;
	}
	n->ctr.msgs_received[m->type - DSM_MSG_READ_REQ]++;
	if (data)
		n->ctr.pages_received++;
	if (m->type == DSM_MSG_INV)
		n->ctr.inv_received++;
	if (rules[m->type - DSM_MSG_READ_REQ].to_home)
		dsm__home_receive(n, m, data, out);
	else
		dsm__cache_receive(n, m, data, out);
	return 0;
}

struct dsm_dir *dsm__dir(const struct dsm_node *n, uint64_t page)
{
	uint64_t lo = 0, hi = n->nr_runs;

	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;
		const struct dsm_run *r = &n->runs[mid];

		if (page < r->first)
			hi = mid;
		else if (page - r->first >= r->count)
			lo = mid + 1;
		else
			return &n->dir[r->dir_base + (page - r->first)];
	}
	return NULL;
}

unsigned dsm__home(const struct dsm_node *n, uint64_t page)
{
	return n->home_of(n->ctx, page);
}

void dsm__push(struct dsm_actions *out, uint8_t type, uint64_t page,
	       bool writable, const void *data)
{
	/* DSM_MAX_ACTIONS is a proven bound (see dsm_proto.h); never write
	 * past it even if that proof were wrong. */
	if (out->n >= DSM_MAX_ACTIONS)
		return;
	struct dsm_action *a = &out->a[out->n++];

	memset(a, 0, sizeof(*a));
	a->type = type;
	a->page = page;
	a->writable = writable;
	a->data = data;
}

void dsm__send(struct dsm_node *n, struct dsm_actions *out, unsigned dest,
	       uint8_t type, uint8_t flags, unsigned requester, uint32_t txn,
	       uint64_t page, uint64_t ackmask)
{
	if (out->n >= DSM_MAX_ACTIONS)
		return;
	dsm__push(out, DSM_ACT_SEND, page, false, NULL);
	struct dsm_action *a = &out->a[out->n - 1];

	a->dest = (uint8_t)dest;
	a->attach = !!(flags & DSM_MF_DATA);
	a->msg.type = type;
	a->msg.flags = flags;
	a->msg.sender = (uint8_t)n->self;
	a->msg.requester = (uint8_t)requester;
	a->msg.txn = txn;
	a->msg.page = page;
	a->msg.ackmask = ackmask;
	n->ctr.msgs_sent[type - DSM_MSG_READ_REQ]++;
	if (a->attach)
		n->ctr.pages_sent++;
	if (type == DSM_MSG_INV)
		n->ctr.inv_sent++;
}

/* The home's memory is current exactly when it has access to the page:
 * the flag mirrors the home's local state so the directory can be read on
 * its own (dumps, checkpoints). */
void dsm__set_acc(struct dsm_node *n, uint64_t page, unsigned acc)
{
	struct dsm_dir *d = dsm__dir(n, page);

	n->local[page] = (uint16_t)((n->local[page] & ~DSM_L_ACC) | acc);
	if (!d)
		return;
	if (acc != DSM_ACC_INVALID)
		d->flags |= DSM_D_HOME_CURRENT;
	else
		d->flags &= (uint8_t)~DSM_D_HOME_CURRENT;
}

void dsm__zap(struct dsm_node *n, uint64_t page, struct dsm_actions *out)
{
	if (n->local[page] & DSM_L_MAPPED)
		dsm__push(out, DSM_ACT_ZAP, page, false, NULL);
	n->local[page] &= (uint16_t)~DSM_L_MAPPED;
	dsm__set_acc(n, page, DSM_ACC_INVALID);
}

void dsm__wprotect(struct dsm_node *n, uint64_t page,
		   struct dsm_actions *out)
{
	if (dsm__acc(n, page) != DSM_ACC_MODIFIED)
		return;
	if (n->local[page] & DSM_L_MAPPED)
		dsm__push(out, DSM_ACT_WRITE_PROTECT, page, false, NULL);
	dsm__set_acc(n, page, DSM_ACC_SHARED);
}

void dsm__install(struct dsm_node *n, uint64_t page, const void *data,
		  bool writable, struct dsm_actions *out)
{
	dsm__push(out, DSM_ACT_INSTALL, page, writable, data);
	n->local[page] |= DSM_L_MAPPED;
	dsm__set_acc(n, page,
		     writable ? DSM_ACC_MODIFIED : DSM_ACC_SHARED);
}

void dsm__map_local(struct dsm_node *n, uint64_t page, bool writable,
		    struct dsm_actions *out)
{
	dsm__push(out, DSM_ACT_MAP_LOCAL, page, writable, NULL);
	n->local[page] |= DSM_L_MAPPED;
}

enum dsm_access dsm__access(const struct dsm_node *n, uint64_t page)
{
	if (page >= n->nr_pages)
		return DSM_ACC_INVALID;
	return (enum dsm_access)dsm__acc(n, page);
}

bool dsm__pending(const struct dsm_node *n, uint64_t page)
{
	return page < n->nr_pages && (n->local[page] & DSM_L_PEND);
}

int dsm__dir_info(const struct dsm_node *n, uint64_t page,
		  struct dsm_dir_info *out)
{
	const struct dsm_dir *d = page < n->nr_pages ? dsm__dir(n, page) : NULL;

	if (!d)
		return -EINVAL;
	memset(out, 0, sizeof(*out));
	out->exclusive = d->flags & DSM_D_EXCL;
	out->busy = d->flags & DSM_D_BUSY;
	out->home_current = d->flags & DSM_D_HOME_CURRENT;
	out->owner = d->owner;
	out->copyset = dsm__copyset(d);
	if (out->busy) {
		for (uint32_t i = n->htx[d->htx].qhead;
		     i != DSM_NONE && out->queued < DSM_MAX_NODES;
		     i = n->q[i].next)
			out->queued++;
	}
	return 0;
}

bool dsm__idle(const struct dsm_node *n)
{
	return n->req_used == 0 && n->htx_used == 0;
}

const struct dsm_counters *dsm__counters(const struct dsm_node *n)
{
	return &n->ctr;
}

/* One pass over home_of builds the page -> directory slot map as runs of
 * consecutive homed pages (one run for the default contiguous slices). */
static int build_runs(struct dsm_node *n, char *err, size_t errlen)
{
	uint64_t cap = 0;

	for (uint64_t p = 0; p < n->nr_pages; p++) {
		unsigned h = n->home_of(n->ctx, p);

		if (h >= n->nr_nodes) {
			errf(err, errlen, "dsm: home_of(page %llu) = %u, but "
			     "there are %u nodes", (unsigned long long)p, h,
			     n->nr_nodes);
			return -1;
		}
		if (h != n->self)
			continue;
		struct dsm_run *last = n->nr_runs ? &n->runs[n->nr_runs - 1]
						  : NULL;

		if (last && last->first + last->count == p) {
			last->count++;
		} else {
			if (n->nr_runs == cap) {
				cap = cap ? cap * 2 : 4;
				void *nr = realloc(n->runs,
						   cap * sizeof(*n->runs));

				if (!nr) {
					errf(err, errlen, "dsm: out of memory");
					return -1;
				}
				n->runs = nr;
			}
			n->runs[n->nr_runs++] = (struct dsm_run){
				.first = p, .count = 1, .dir_base = n->nr_homed,
			};
		}
		n->nr_homed++;
	}
	return 0;
}

static int init_tables(struct dsm_node *n, char *err, size_t errlen)
{
	n->local = calloc(n->nr_pages, sizeof(*n->local));
	n->dir = calloc(n->nr_homed ? n->nr_homed : 1, sizeof(*n->dir));
	n->req = calloc(n->max_requests, sizeof(*n->req));
	n->htx = calloc(n->inflight_cap, sizeof(*n->htx));
	n->q = calloc(n->inflight_cap, sizeof(*n->q));
	if (!n->local || !n->dir || !n->req || !n->htx || !n->q) {
		errf(err, errlen, "dsm: out of memory for %llu pages",
		     (unsigned long long)n->nr_pages);
		return -1;
	}
	for (uint64_t i = 0; i < n->nr_homed; i++) {
		n->dir[i].flags = DSM_D_EXCL | DSM_D_HOME_CURRENT;
		n->dir[i].owner = (uint8_t)n->self;
		dsm__set_copyset(&n->dir[i], dsm__bit(n->self));
	}
	for (uint64_t r = 0; r < n->nr_runs; r++)
		for (uint64_t k = 0; k < n->runs[r].count; k++)
			n->local[n->runs[r].first + k] = DSM_ACC_MODIFIED;
	for (uint32_t i = 0; i < n->max_requests; i++)
		n->req[i].next_free = i + 1 < n->max_requests ? i + 1
							      : DSM_NONE;
	for (uint32_t i = 0; i < n->inflight_cap; i++) {
		n->htx[i].qhead = i + 1 < n->inflight_cap ? i + 1 : DSM_NONE;
		n->q[i].next = i + 1 < n->inflight_cap ? i + 1 : DSM_NONE;
	}
	n->req_free = 0;
	n->htx_free = 0;
	n->q_free = 0;
	n->next_txn = 1;
	return 0;
}

struct dsm_node *dsm__new(const struct dsm_config *cfg, char *err,
			  size_t errlen)
{
	if (!cfg || !cfg->home_of || cfg->nr_nodes < 1 ||
	    cfg->nr_nodes > DSM_MAX_NODES || cfg->self >= cfg->nr_nodes ||
	    cfg->nr_pages < 1) {
		errf(err, errlen, "dsm: need 1..%d nodes, self < nodes, at "
		     "least one page and a home_of callback", DSM_MAX_NODES);
		return NULL;
	}
	if (cfg->max_requests < 1 || cfg->max_requests > DSM_MAX_REQUESTS ||
	    (uint64_t)cfg->max_requests * cfg->nr_nodes > DSM_MAX_INFLIGHT) {
		errf(err, errlen, "dsm: max_requests %u out of range (1..%d, "
		     "and times %u nodes at most %d)", cfg->max_requests,
		     DSM_MAX_REQUESTS, cfg->nr_nodes, DSM_MAX_INFLIGHT);
		return NULL;
	}
	struct dsm_node *n = calloc(1, sizeof(*n));

	if (!n) {
		errf(err, errlen, "dsm: out of memory");
		return NULL;
	}
	n->self = cfg->self;
	n->nr_nodes = cfg->nr_nodes;
	n->track_writes = cfg->track_writes;
	n->nr_pages = cfg->nr_pages;
	n->home_of = cfg->home_of;
	n->ctx = cfg->ctx;
	n->max_requests = cfg->max_requests;
	n->inflight_cap = cfg->max_requests * cfg->nr_nodes;
	if (build_runs(n, err, errlen) || init_tables(n, err, errlen)) {
		dsm__free(n);
		return NULL;
	}
	return n;
}

void dsm__free(struct dsm_node *n)
{
	if (!n)
		return;
	free(n->local);
	free(n->dir);
	free(n->runs);
	free(n->req);
	free(n->htx);
	free(n->q);
	free(n);
}
