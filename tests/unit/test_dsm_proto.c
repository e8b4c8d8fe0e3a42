/* DSM protocol core, case by case: 2-4 nodes, messages delivered by hand,
 * exact message counts and action lists for each common case, and every
 * kind of bad message rejected with the state left as it was. */
#include <check.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/dsm_proto.h"

#define NP 4
#define NN 4

struct tmsg {
	unsigned from, to;
	struct dsm_msg m;
	int has;
	uint8_t data[DSM_PAGE_SIZE];
};

static struct {
	unsigned nodes;
	unsigned homes[NP];
	struct dsm_node *n[NN];
	uint8_t mem[NN][NP][DSM_PAGE_SIZE];
	struct dsm_actions out;
	struct tmsg q[32];
	unsigned qn, sent;
} T;

static unsigned home_cb(void *ctx, uint64_t page)
{
	const unsigned *homes = ctx;

	return homes[page];
}

/* Pages 0..NP-1 homed as given; max_requests per node. */
static void setup_homes(unsigned nodes, const unsigned homes[NP],
			unsigned max_req)
{
	char err[160];

	memset(&T, 0, sizeof(T));
	T.nodes = nodes;
	memcpy(T.homes, homes, sizeof(T.homes));
	for (unsigned i = 0; i < nodes; i++) {
		struct dsm_config cfg = {
			.nr_nodes = nodes, .self = i, .nr_pages = NP,
			.home_of = home_cb, .ctx = T.homes,
			.max_requests = max_req,
		};

		T.n[i] = dsm__new(&cfg, err, sizeof(err));
		ck_assert_msg(T.n[i], "dsm__new: %s", err);
	}
}

/* Default: every page homed at node 0. */
static void setup(unsigned nodes)
{
	static const unsigned zero[NP];

	setup_homes(nodes, zero, 8);
}

static void teardown(void)
{
	for (unsigned i = 0; i < T.nodes; i++)
		dsm__free(T.n[i]);
}

/* The I/O side: queue SENDs (copying the page now), fill INSTALLs. */
static void collect(unsigned node)
{
	for (unsigned i = 0; i < T.out.n; i++) {
		const struct dsm_action *a = &T.out.a[i];

		if (a->type == DSM_ACT_SEND) {
			ck_assert_uint_lt(T.qn, 32);
			ck_assert_uint_ne(a->dest, node);
			struct tmsg *m = &T.q[T.qn++];

			m->from = node;
			m->to = a->dest;
			m->m = a->msg;
			m->has = a->attach;
			if (a->attach)
				memcpy(m->data, T.mem[node][a->page],
				       DSM_PAGE_SIZE);
			T.sent++;
		} else if (a->type == DSM_ACT_INSTALL) {
			ck_assert_ptr_nonnull(a->data);
			memcpy(T.mem[node][a->page], a->data, DSM_PAGE_SIZE);
		}
	}
}

static int fault(unsigned node, uint64_t page, bool write)
{
	int rc = dsm__fault(T.n[node], page, write, &T.out);

	if (!rc)
		collect(node);
	return rc;
}

/* Delivers queued message i through the wire codec. */
static int deliver(unsigned i)
{
	ck_assert_uint_lt(i, T.qn);
	struct tmsg m = T.q[i];
	uint8_t wire[DSM_MSG_SIZE + DSM_PAGE_SIZE];
	struct dsm_msg dm;
	const void *data;
	char why[DSM_WHY_MAX];

	memmove(&T.q[i], &T.q[i + 1], (T.qn - i - 1) * sizeof(T.q[0]));
	T.qn--;
	dsm_msg__encode(&m.m, wire);
	memcpy(wire + DSM_MSG_SIZE, m.data, DSM_PAGE_SIZE);
	ck_assert_int_eq(dsm_msg__decode(wire, DSM_MSG_SIZE +
					 (m.has ? DSM_PAGE_SIZE : 0), m.from,
					 &dm, &data, why, sizeof(why)), 0);
	int rc = dsm__receive(T.n[m.to], &dm, data, &T.out);

	if (!rc)
		collect(m.to);
	return rc;
}

static unsigned find(unsigned type, unsigned to)
{
	for (unsigned i = 0; i < T.qn; i++)
		if (T.q[i].m.type == type && T.q[i].to == to)
			return i;
	ck_abort_msg("no %s queued for node %u", dsm_msg__type_name(type),
		     to);
	return 0;
}

static void deliver_ok(unsigned type, unsigned to)
{
	int rc = deliver(find(type, to));

	ck_assert_msg(rc == 0, "%s to %u rejected: %s",
		      dsm_msg__type_name(type), to, T.out.why);
}

/* Runs queued messages in FIFO order until none is left. */
static void run_all(void)
{
	for (unsigned k = 0; T.qn; k++) {
		ck_assert_uint_lt(k, 1000);
		ck_assert_msg(deliver(0) == 0, "rejected: %s", T.out.why);
	}
}

static unsigned acts(unsigned type)
{
	unsigned c = 0;

	for (unsigned i = 0; i < T.out.n; i++)
		c += T.out.a[i].type == type;
	return c;
}

static const struct dsm_action *act(unsigned i)
{
	ck_assert_uint_lt(i, T.out.n);
	return &T.out.a[i];
}

static struct dsm_dir_info dir(uint64_t page)
{
	struct dsm_dir_info di;

	ck_assert_int_eq(dsm__dir_info(T.n[T.homes[page]], page, &di), 0);
	return di;
}

static uint64_t bits(unsigned a, unsigned b, unsigned c)
{
	return 1ull << a | 1ull << b | 1ull << c;
}

START_TEST(test_local_first_touch)
{
	setup(2);
	ck_assert_int_eq(fault(0, 0, false), 0);
	/* Own untouched page: mapped at once, writable, no message. */
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(act(0)->writable);
	ck_assert_int_eq(fault(0, 1, true), 0);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert_uint_eq(T.sent, 0);
	ck_assert_uint_eq(dsm__counters(T.n[0])->local_faults, 2);
	ck_assert_uint_eq(dsm__counters(T.n[0])->read_faults, 1);
	ck_assert_uint_eq(dsm__counters(T.n[0])->write_faults, 1);
	/* A page homed elsewhere is not local. */
	ck_assert_int_eq(dsm__access(T.n[1], 0), DSM_ACC_INVALID);
	ck_assert_int_eq(fault(1, 0, false), 0);
	ck_assert_uint_eq(T.sent, 1);
	teardown();
}
END_TEST

/* track_writes: a read maps read-only even with write access, and the
 * write that follows faults and is granted locally, without a message. */
START_TEST(test_track_writes)
{
	setup(2);
	for (unsigned i = 0; i < T.nodes; i++)
		T.n[i]->track_writes = true;
	ck_assert_int_eq(fault(0, 0, false), 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(!act(0)->writable);
	ck_assert_int_eq(dsm__access(T.n[0], 0), DSM_ACC_MODIFIED);
	ck_assert_int_eq(fault(0, 0, true), 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(act(0)->writable);
	/* A write fault on an untouched page still maps writable. */
	ck_assert_int_eq(fault(0, 1, true), 0);
	ck_assert(act(0)->writable);
	ck_assert_uint_eq(T.sent, 0);
	ck_assert_uint_eq(dsm__counters(T.n[0])->local_faults, 3);
	teardown();
}
END_TEST

START_TEST(test_remote_read_one_round_trip)
{
	setup(2);
	memset(T.mem[0][0], 0xAB, DSM_PAGE_SIZE);
	fault(0, 0, true);	/* the home maps (touches) its page */
	ck_assert_int_eq(fault(1, 0, false), 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_SEND);
	ck_assert_uint_eq(act(0)->dest, 0);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_READ_REQ);
	ck_assert(!act(0)->attach);

	deliver_ok(DSM_MSG_READ_REQ, 0);
	/* The home stops its own writers, then replies with the page. */
	ck_assert_uint_eq(T.out.n, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_WRITE_PROTECT);
	ck_assert_uint_eq(act(1)->type, DSM_ACT_SEND);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_GRANT_READ);
	ck_assert(act(1)->attach);
	ck_assert(!dir(0).busy);

	deliver_ok(DSM_MSG_GRANT_READ, 1);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert(!act(0)->writable);
	ck_assert_uint_eq(T.mem[1][0][100], 0xAB);
	ck_assert_uint_eq(T.sent, 2);
	ck_assert_uint_eq(T.qn, 0);
	ck_assert_int_eq(dsm__access(T.n[1], 0), DSM_ACC_SHARED);
	ck_assert_int_eq(dsm__access(T.n[0], 0), DSM_ACC_SHARED);
	ck_assert(!dir(0).exclusive);
	ck_assert_uint_eq(dir(0).copyset, 3);
	ck_assert(dir(0).home_current);
	ck_assert(dsm__idle(T.n[0]) && dsm__idle(T.n[1]));
	teardown();
}
END_TEST

START_TEST(test_remote_write_one_round_trip)
{
	setup(2);
	fault(0, 0, false);
	memset(T.mem[0][0], 0x5A, DSM_PAGE_SIZE);
	fault(1, 0, true);
	ck_assert_uint_eq(T.q[0].m.type, DSM_MSG_WRITE_REQ);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	/* ZAP first (the I/O side still reads the bytes for the SEND). */
	ck_assert_uint_eq(T.out.n, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_ZAP);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_GRANT_WRITE);
	ck_assert(act(1)->attach);
	ck_assert_uint_eq(act(1)->msg.ackmask, 0);
	ck_assert(!(act(1)->msg.flags & DSM_MF_DONE));
	ck_assert(!dir(0).busy);
	deliver_ok(DSM_MSG_GRANT_WRITE, 1);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert(act(0)->writable);
	ck_assert_uint_eq(T.mem[1][0][4095], 0x5A);
	ck_assert_uint_eq(T.sent, 2);
	ck_assert_int_eq(dsm__access(T.n[1], 0), DSM_ACC_MODIFIED);
	ck_assert_int_eq(dsm__access(T.n[0], 0), DSM_ACC_INVALID);
	ck_assert(dir(0).exclusive);
	ck_assert_uint_eq(dir(0).owner, 1);
	ck_assert(!dir(0).home_current);
	teardown();
}
END_TEST

/* Nodes 1 and 2 share with the home; node 3 writes: two INVs, two acks to
 * node 3, which reads early but writes only after the second ack. */
START_TEST(test_write_invalidates_sharers)
{
	setup(4);
	fault(1, 0, false);
	fault(2, 0, false);
	run_all();
	ck_assert_uint_eq(dir(0).copyset, bits(0, 1, 2));
	ck_assert_int_eq(fault(0, 0, false), 0);	/* home reads: local */
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(!act(0)->writable);

	fault(3, 0, true);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	ck_assert_uint_eq(acts(DSM_ACT_ZAP), 1);
	ck_assert_uint_eq(T.qn, 3);
	unsigned g = find(DSM_MSG_GRANT_WRITE, 3);

	ck_assert_uint_eq(T.q[g].m.ackmask, bits(1, 2, 1));
	ck_assert(T.q[g].m.flags & DSM_MF_DONE);
	ck_assert(T.q[g].has);
	find(DSM_MSG_INV, 1);
	find(DSM_MSG_INV, 2);
	ck_assert(dir(0).busy);

	deliver_ok(DSM_MSG_GRANT_WRITE, 3);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert(!act(0)->writable);
	deliver_ok(DSM_MSG_INV, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_ZAP);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_INV_ACK);
	ck_assert_uint_eq(act(1)->dest, 3);
	deliver_ok(DSM_MSG_INV_ACK, 3);
	ck_assert_uint_eq(T.out.n, 0);	/* one ack still missing */
	ck_assert_int_eq(dsm__access(T.n[3], 0), DSM_ACC_SHARED);
	deliver_ok(DSM_MSG_INV, 1);
	deliver_ok(DSM_MSG_INV_ACK, 3);
	ck_assert_uint_eq(T.out.n, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(act(0)->writable);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_DONE);
	ck_assert(dir(0).busy);
	deliver_ok(DSM_MSG_DONE, 0);
	ck_assert(!dir(0).busy);
	ck_assert(dir(0).exclusive);
	ck_assert_uint_eq(dir(0).owner, 3);
	for (unsigned i = 0; i < 3; i++)
		ck_assert_int_eq(dsm__access(T.n[i], 0), DSM_ACC_INVALID);
	ck_assert_uint_eq(dsm__counters(T.n[0])->inv_sent, 2);
	ck_assert_uint_eq(dsm__counters(T.n[1])->inv_received, 1);
	teardown();
}
END_TEST

/* The home writes a page three nodes read-share: it waits for both acks. */
START_TEST(test_home_write_waits_for_acks)
{
	setup(3);
	fault(1, 0, false);
	fault(2, 0, false);
	run_all();
	ck_assert_int_eq(fault(0, 0, true), 0);
	ck_assert_uint_eq(T.out.n, 2);
	ck_assert_uint_eq(acts(DSM_ACT_SEND), 2);
	ck_assert_uint_eq(acts(DSM_ACT_MAP_LOCAL), 0);
	deliver_ok(DSM_MSG_INV, 1);
	deliver_ok(DSM_MSG_INV_ACK, 0);
	ck_assert_uint_eq(T.out.n, 0);
	ck_assert_int_eq(dsm__access(T.n[0], 0), DSM_ACC_SHARED);
	ck_assert(dir(0).busy);
	deliver_ok(DSM_MSG_INV, 2);
	deliver_ok(DSM_MSG_INV_ACK, 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(act(0)->writable);
	ck_assert(!dir(0).busy);
	ck_assert_uint_eq(dir(0).owner, 0);
	ck_assert_uint_eq(T.sent, 2 + 2 + 4);
	teardown();
}
END_TEST

START_TEST(test_upgrade)
{
	setup(2);
	fault(1, 0, false);
	run_all();
	ck_assert_int_eq(fault(1, 0, true), 0);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_WRITE_REQ);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	/* The home never mapped the page: nothing to zap, no data needed. */
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_GRANT_WRITE);
	ck_assert(!act(0)->attach);
	deliver_ok(DSM_MSG_GRANT_WRITE, 1);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	ck_assert(act(0)->writable);
	ck_assert_int_eq(dsm__access(T.n[1], 0), DSM_ACC_MODIFIED);
	ck_assert_int_eq(dsm__access(T.n[0], 0), DSM_ACC_INVALID);
	ck_assert_uint_eq(dsm__counters(T.n[0])->pages_sent, 1);
	teardown();
}
END_TEST

/* Page Modified at node 2; node 1 writes: REQ, FWD, GRANT from node 2,
 * then DONE to the home off the critical path. */
START_TEST(test_forward_write)
{
	setup(3);
	fault(2, 0, true);
	run_all();
	memset(T.mem[2][0], 0x22, DSM_PAGE_SIZE);
	T.sent = 0;
	fault(1, 0, true);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_FWD_WRITE);
	ck_assert_uint_eq(act(0)->dest, 2);
	ck_assert(dir(0).busy);
	deliver_ok(DSM_MSG_FWD_WRITE, 2);
	ck_assert_uint_eq(T.out.n, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_ZAP);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_GRANT_WRITE);
	ck_assert_uint_eq(act(1)->dest, 1);
	ck_assert(act(1)->attach);
	ck_assert_uint_eq(act(1)->msg.flags, DSM_MF_DATA | DSM_MF_DONE |
			  DSM_MF_FWD);
	deliver_ok(DSM_MSG_GRANT_WRITE, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert(act(0)->writable);
	ck_assert_uint_eq(T.mem[1][0][7], 0x22);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_DONE);
	ck_assert(!act(1)->attach);
	deliver_ok(DSM_MSG_DONE, 0);
	ck_assert_uint_eq(T.out.n, 0);
	ck_assert(!dir(0).busy);
	ck_assert_uint_eq(dir(0).owner, 1);
	ck_assert_uint_eq(T.sent, 4);
	ck_assert_int_eq(dsm__access(T.n[2], 0), DSM_ACC_INVALID);
	teardown();
}
END_TEST

/* Page Modified at node 2; node 1 reads: the DONE brings the page home. */
START_TEST(test_forward_read)
{
	setup(3);
	fault(2, 0, true);
	run_all();
	fault(2, 0, true);	/* node 2 maps it */
	memset(T.mem[2][0], 0x33, DSM_PAGE_SIZE);
	T.sent = 0;
	fault(1, 0, false);
	deliver_ok(DSM_MSG_READ_REQ, 0);
	deliver_ok(DSM_MSG_FWD_READ, 2);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_WRITE_PROTECT);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_GRANT_READ);
	deliver_ok(DSM_MSG_GRANT_READ, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert_uint_eq(act(1)->msg.type, DSM_MSG_DONE);
	ck_assert(act(1)->attach);
	ck_assert(dir(0).busy);
	ck_assert(!dir(0).home_current);
	deliver_ok(DSM_MSG_DONE, 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert(!act(0)->writable);
	ck_assert_uint_eq(T.mem[0][0][0], 0x33);
	ck_assert_uint_eq(T.mem[1][0][0], 0x33);
	ck_assert(!dir(0).busy);
	ck_assert(dir(0).home_current);
	ck_assert_uint_eq(dir(0).copyset, bits(0, 1, 2));
	ck_assert_uint_eq(T.sent, 4);
	/* Now shared with a current home: the next reader is 1 round trip. */
	teardown();
}
END_TEST

/* The home reads a page Modified elsewhere: FWD, grant, DONE inline. */
START_TEST(test_home_reads_forwarded)
{
	setup(2);
	fault(1, 0, true);
	run_all();
	T.sent = 0;
	ck_assert_int_eq(fault(0, 0, false), 0);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_FWD_READ);
	deliver_ok(DSM_MSG_FWD_READ, 1);
	deliver_ok(DSM_MSG_GRANT_READ, 0);
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->type, DSM_ACT_INSTALL);
	ck_assert_uint_eq(T.sent, 2);
	ck_assert(!dir(0).busy);
	ck_assert(dir(0).home_current);
	ck_assert(dsm__idle(T.n[0]));
	teardown();
}
END_TEST

START_TEST(test_faults_coalesce)
{
	setup(2);
	fault(1, 0, false);
	fault(1, 0, false);
	fault(1, 0, true);
	ck_assert_uint_eq(T.out.n, 0);
	ck_assert_uint_eq(T.sent, 1);
	ck_assert(dsm__pending(T.n[1], 0));
	ck_assert_uint_eq(dsm__counters(T.n[1])->coalesced_faults, 2);
	run_all();
	ck_assert(!dsm__pending(T.n[1], 0));
	/* The writer woken by the read-only install faults again. */
	fault(1, 0, true);
	ck_assert_uint_eq(T.q[0].m.type, DSM_MSG_WRITE_REQ);
	fault(1, 0, true);
	ck_assert_uint_eq(T.sent, 3);
	teardown();
}
END_TEST

/* Requests for a busy page wait at the home and are served in order. */
START_TEST(test_queue_fifo)
{
	setup(3);
	fault(2, 0, true);
	run_all();
	fault(1, 0, true);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);	/* busy: FWD to 2 */
	ck_assert_int_eq(fault(0, 0, false), 0);	/* home's own: queued */
	ck_assert_uint_eq(T.out.n, 0);
	ck_assert_uint_eq(dir(0).queued, 1);
	deliver_ok(DSM_MSG_FWD_WRITE, 2);
	fault(2, 0, false);
	deliver_ok(DSM_MSG_READ_REQ, 0);
	ck_assert_uint_eq(T.out.n, 0);
	ck_assert_uint_eq(dir(0).queued, 2);
	deliver_ok(DSM_MSG_GRANT_WRITE, 1);
	deliver_ok(DSM_MSG_DONE, 0);
	/* The home's read (first in line) is forwarded to node 1. */
	ck_assert_uint_eq(T.out.n, 1);
	ck_assert_uint_eq(act(0)->msg.type, DSM_MSG_FWD_READ);
	ck_assert_uint_eq(act(0)->msg.requester, 0);
	ck_assert_uint_eq(dir(0).queued, 1);
	deliver_ok(DSM_MSG_FWD_READ, 1);
	deliver_ok(DSM_MSG_GRANT_READ, 0);
	/* DONE inline, then node 2's read is served from the home at once. */
	ck_assert_uint_eq(acts(DSM_ACT_INSTALL), 1);
	ck_assert_uint_eq(T.qn, 1);
	ck_assert_uint_eq(T.q[0].m.type, DSM_MSG_GRANT_READ);
	ck_assert_uint_eq(T.q[0].to, 2);
	run_all();
	ck_assert_uint_eq(dir(0).copyset, bits(0, 1, 2));
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(dsm__access(T.n[i], 0), DSM_ACC_SHARED);
		ck_assert(dsm__idle(T.n[i]));
	}
	teardown();
}
END_TEST

START_TEST(test_single_node_and_limits)
{
	static const unsigned homes[NP] = { 0, 1, 0, 1 };

	setup_homes(1, (const unsigned[NP]){ 0 }, 1);
	for (unsigned p = 0; p < NP; p++) {
		ck_assert_int_eq(fault(0, p, true), 0);
		ck_assert_uint_eq(act(0)->type, DSM_ACT_MAP_LOCAL);
	}
	ck_assert_uint_eq(T.sent, 0);
	ck_assert_int_eq(fault(0, NP, false), -EINVAL);
	ck_assert(T.out.why[0]);
	teardown();

	/* One outstanding request per node: the second fault must wait. */
	setup_homes(2, homes, 1);
	ck_assert_int_eq(fault(0, 1, false), 0);
	ck_assert_int_eq(fault(0, 3, false), -EBUSY);
	ck_assert_uint_eq(T.sent, 1);
	ck_assert_int_eq(dsm__dir_info(T.n[0], 1, &(struct dsm_dir_info){ 0 }),
			 -EINVAL);
	teardown();
}
END_TEST

static unsigned striped(void *ctx, uint64_t page)
{
	return (unsigned)((page / 1000 + page % 7 / 6) % 3);
}

/* Non-contiguous homes: the page -> directory map built from home_of. */
START_TEST(test_home_layout)
{
	struct dsm_config cfg = {
		.nr_nodes = 3, .self = 1, .nr_pages = 30000,
		.home_of = striped, .max_requests = 4,
	};
	char err[160];
	struct dsm_node *n = dsm__new(&cfg, err, sizeof(err));
	struct dsm_dir_info di;
	uint64_t homed = 0, bad = 0;

	ck_assert_msg(n, "%s", err);
	for (uint64_t p = 0; p < cfg.nr_pages; p++) {
		bool mine = striped(NULL, p) == 1;
		bool has = dsm__dir_info(n, p, &di) == 0;

		homed += mine;
		bad += dsm__home(n, p) != striped(NULL, p) || has != mine ||
		       dsm__access(n, p) != (mine ? DSM_ACC_MODIFIED
						  : DSM_ACC_INVALID) ||
		       (mine && !(di.exclusive && di.owner == 1 &&
				  di.copyset == 2 && di.home_current));
	}
	ck_assert_uint_eq(bad, 0);
	ck_assert_uint_gt(homed, 9000);
	ck_assert_int_eq(dsm__dir_info(n, cfg.nr_pages, &di), -EINVAL);
	dsm__free(n);
}
END_TEST

START_TEST(test_config_rejected)
{
	static const unsigned homes[NP] = { 0, 1, 2, 7 };
	char err[160] = "";
	struct dsm_config cfg = {
		.nr_nodes = 3, .self = 0, .nr_pages = NP, .home_of = home_cb,
		.ctx = (void *)homes, .max_requests = 4,
	};

	ck_assert_ptr_null(dsm__new(&cfg, err, sizeof(err)));
	ck_assert_msg(strstr(err, "home_of"), "%s", err);
	cfg.nr_pages = 3;
	struct dsm_node *ok = dsm__new(&cfg, err, sizeof(err));

	ck_assert_ptr_nonnull(ok);
	dsm__free(ok);
	struct dsm_config bad[] = { cfg, cfg, cfg, cfg, cfg };

	bad[0].nr_nodes = 0;
	bad[1].nr_nodes = 65;
	bad[2].self = 3;
	bad[3].max_requests = 0;
	bad[4].max_requests = 30000;
	for (unsigned i = 0; i < 5; i++) {
		err[0] = 0;
		ck_assert_ptr_null(dsm__new(&bad[i], err, sizeof(err)));
		ck_assert(err[0]);
	}
}
END_TEST

START_TEST(test_wire_format)
{
	struct dsm_msg m = {
		.type = DSM_MSG_GRANT_WRITE, .flags = DSM_MF_DONE, .sender = 3,
		.requester = 5, .txn = 0x11223344, .page = 0x0102030405060708ull,
		.ackmask = 0x8000000000000001ull,
	}, d;
	uint8_t buf[DSM_MSG_SIZE + DSM_PAGE_SIZE + 1];
	const void *data;
	char why[DSM_WHY_MAX];

	dsm_msg__encode(&m, buf);
	ck_assert_uint_eq(buf[0], 71);
	ck_assert_uint_eq(buf[4], 0x44);
	ck_assert_uint_eq(buf[8], 0x08);
	ck_assert_uint_eq(buf[15], 0x01);
	ck_assert_uint_eq(buf[23], 0x80);
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE, 3, &d, &data, why,
					 sizeof(why)), 0);
	ck_assert_ptr_null(data);
	ck_assert_mem_eq(&d, &m, sizeof(m));
	/* Wrong sizes, wrong sender, unknown type or flags. */
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE - 1, 3, &d, &data,
					 why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE + DSM_PAGE_SIZE, 3,
					 &d, &data, why, sizeof(why)), -EINVAL);
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE, 4, &d, &data, why,
					 sizeof(why)), -EINVAL);
	ck_assert_ptr_nonnull(strstr(why, "sender"));
	ck_assert_int_eq(dsm_msg__decode(NULL, 0, 3, &d, &data, why,
					 sizeof(why)), -EINVAL);
	buf[1] = DSM_MF_DATA;
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE, 3, &d, &data, why,
					 sizeof(why)), -EINVAL);
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE + DSM_PAGE_SIZE, 3,
					 &d, &data, why, sizeof(why)), 0);
	ck_assert_ptr_eq(data, buf + DSM_MSG_SIZE);
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE + DSM_PAGE_SIZE + 1,
					 3, &d, &data, why, sizeof(why)),
			 -EINVAL);
	buf[1] = 0x80;
	ck_assert_int_eq(dsm_msg__decode(buf, DSM_MSG_SIZE, 3, &d, &data, why,
					 sizeof(why)), -EINVAL);
	buf[1] = 0;
	for (unsigned t = 0; t < 256; t++) {
		buf[0] = (uint8_t)t;
		int rc = dsm_msg__decode(buf, DSM_MSG_SIZE, 3, &d, &data, why,
					 sizeof(why));

		ck_assert_int_eq(rc, t >= 64 && t < DSM_MSG_END ? 0 : -EINVAL);
	}
	ck_assert_int_lt(DSM_MSG_END - 1, DSM_MSG_TYPE_LAST + 1);
}
END_TEST


/* ---- Untrusted messages: rejected, no action, state unchanged. ---- */

struct snap {
	int acc[NN][NP];
	bool pend[NN][NP];
	bool idle[NN];
	struct dsm_dir_info di[NP];
};

static void take(struct snap *sn)
{
	memset(sn, 0, sizeof(*sn));
	for (unsigned i = 0; i < T.nodes; i++) {
		sn->idle[i] = dsm__idle(T.n[i]);
		for (unsigned p = 0; p < NP; p++) {
			sn->acc[i][p] = dsm__access(T.n[i], p);
			sn->pend[i][p] = dsm__pending(T.n[i], p);
		}
	}
	for (unsigned p = 0; p < NP; p++)
		sn->di[p] = dir(p);
}

static uint8_t junk[DSM_PAGE_SIZE];

static void reject(unsigned to, struct dsm_msg m, int want, const char *what)
{
	struct snap a, b;
	const void *data = m.flags & DSM_MF_DATA ? junk : NULL;
	char why[DSM_WHY_MAX] = "";

	take(&a);
	ck_assert_msg(dsm__validate_msg(T.n[to], &m, data, why,
					sizeof(why)) == want,
		      "%s: validate gave %s", what, why);
	int rc = dsm__receive(T.n[to], &m, data, &T.out);

	ck_assert_msg(rc == want, "%s: got %d (%s)", what, rc, T.out.why);
	ck_assert_msg(T.out.n == 0, "%s: emitted actions", what);
	ck_assert_msg(T.out.why[0], "%s: no reason", what);
	take(&b);
	ck_assert_msg(!memcmp(&a, &b, sizeof(a)), "%s: state changed", what);
}

static struct dsm_msg mk(unsigned type, unsigned from, unsigned req,
			 uint32_t txn, uint64_t page, uint8_t flags,
			 uint64_t ackmask)
{
	return (struct dsm_msg){
		.type = (uint8_t)type, .flags = flags, .sender = (uint8_t)from,
		.requester = (uint8_t)req, .txn = txn, .page = page,
		.ackmask = ackmask,
	};
}

START_TEST(test_bad_messages)
{
	const uint8_t D = DSM_MF_DATA;

	setup_homes(3, (const unsigned[NP]){ 0, 0, 0, 1 }, 4);
	fault(1, 0, false);		/* page 0: shared by 0 and 1 */
	fault(2, 1, true);		/* page 1: Modified at 2 */
	run_all();
	fault(1, 2, true);		/* page 2: node 1's request in flight */
	uint32_t tx = T.q[find(DSM_MSG_WRITE_REQ, 0)].m.txn;

	fault(1, 1, false);		/* page 1: busy, FWD_READ to 2 */
	deliver_ok(DSM_MSG_READ_REQ, 0);
	uint32_t tx1 = T.q[find(DSM_MSG_FWD_READ, 2)].m.txn;

	/* Malformed, whatever the state. */
	reject(1, mk(DSM_MSG_INV, 0, 2, 1, 99, 0, 0), -EINVAL, "page range");
	reject(1, mk(DSM_MSG_INV, 7, 2, 1, 0, 0, 0), -EINVAL, "bad sender");
	reject(1, mk(DSM_MSG_INV, 1, 2, 1, 0, 0, 0), -EINVAL, "from self");
	reject(1, mk(DSM_MSG_INV, 0, 9, 1, 0, 0, 0), -EINVAL, "requester");
	reject(1, mk(DSM_MSG_INV, 0, 2, 1, 0, D, 0), -EINVAL, "INV + data");
	reject(1, mk(DSM_MSG_INV, 0, 2, 1, 0, 0, 4), -EINVAL, "INV ackmask");
	reject(1, mk(90, 0, 2, 1, 0, 0, 0), -EINVAL, "unknown type");
	reject(1, mk(DSM_MSG_GRANT_READ, 0, 1, tx, 2, 0, 0), -EINVAL,
	       "read grant without page");
	reject(0, mk(DSM_MSG_WRITE_REQ, 2, 2, 5, 3, DSM_MF_DONE, 0), -EINVAL,
	       "request with flags");
	struct dsm_msg nodata = mk(DSM_MSG_GRANT_WRITE, 0, 1, tx, 2, D, 0);
	char why[DSM_WHY_MAX];

	ck_assert_int_eq(dsm__validate_msg(T.n[1], &nodata, NULL, why,
					   sizeof(why)), -EINVAL);
	ck_assert_int_eq(dsm__receive(T.n[1], &nodata, NULL, &T.out), -EINVAL);

	/* Well formed, but nonsense in this state. */
	reject(1, mk(DSM_MSG_INV_ACK, 2, 1, 1, 0, 0, 0), -EPROTO,
	       "ack nobody asked for");
	reject(1, mk(DSM_MSG_INV_ACK, 0, 1, tx, 2, 0, 0), -EPROTO,
	       "ack from the home");
	reject(1, mk(DSM_MSG_INV_ACK, 2, 1, tx + 1, 2, 0, 0), -EPROTO,
	       "ack with the wrong txn");
	reject(2, mk(DSM_MSG_GRANT_READ, 0, 2, 1, 0, D, 0), -EPROTO,
	       "grant without a request");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 0, 1, tx + 1, 2, D, 0), -EPROTO,
	       "grant with the wrong txn");
	reject(1, mk(DSM_MSG_GRANT_READ, 0, 1, tx, 2, D, 0), -EPROTO,
	       "grant of the wrong kind");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 0, 1, tx, 2,
		     D | DSM_MF_FWD | DSM_MF_DONE, 0), -EPROTO,
	       "forwarded grant from the home");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 2, 1, tx, 2, D, 0), -EPROTO,
	       "plain grant from a non-home node");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 0, 1, tx, 2, 0, 0), -EPROTO,
	       "upgrade grant without a shared copy");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 0, 1, tx, 2, D | DSM_MF_DONE, 2),
	       -EPROTO, "ack mask naming the requester");
	reject(1, mk(DSM_MSG_GRANT_WRITE, 0, 1, tx, 2, D, 4), -EPROTO,
	       "acks without DONE");
	reject(1, mk(DSM_MSG_GRANT_READ, 0, 1, 7, 0, D, 0), -EPROTO,
	       "grant for a page already held");
	reject(1, mk(DSM_MSG_INV, 2, 2, 3, 0, 0, 0), -EPROTO,
	       "invalidate from a node that is not the home");
	reject(2, mk(DSM_MSG_INV, 0, 1, 3, 0, 0, 0), -EPROTO,
	       "invalidate of a page not shared there");
	reject(1, mk(DSM_MSG_INV, 0, 1, 3, 0, 0, 0), -EPROTO,
	       "invalidate naming the target as requester");
	reject(1, mk(DSM_MSG_FWD_WRITE, 0, 2, 3, 0, 0, 0), -EPROTO,
	       "forward to a node that does not own the page");
	reject(2, mk(DSM_MSG_FWD_READ, 1, 0, 3, 1, 0, 0), -EPROTO,
	       "forward from a node that is not the home");
	reject(0, mk(DSM_MSG_DONE, 1, 1, 3, 0, 0, 0), -EPROTO,
	       "DONE without a transaction");
	reject(0, mk(DSM_MSG_DONE, 2, 2, tx1, 1, D, 0), -EPROTO,
	       "DONE from the wrong node");
	reject(0, mk(DSM_MSG_DONE, 1, 1, tx1 + 1, 1, D, 0), -EPROTO,
	       "DONE with the wrong txn");
	reject(0, mk(DSM_MSG_DONE, 1, 1, tx1, 1, 0, 0), -EPROTO,
	       "DONE without the page after a forwarded read");
	reject(0, mk(DSM_MSG_READ_REQ, 1, 1, 40, 1, 0, 0), -EPROTO,
	       "second request for a busy page");
	reject(0, mk(DSM_MSG_READ_REQ, 1, 1, 40, 0, 0, 0), -EPROTO,
	       "read request from a sharer");
	/* Node 2 still owns page 1 for this check, but the directory already
	 * lists it as a sharer: an upgrade request from it would be valid. */
	ck_assert_int_eq(dsm__validate_msg(T.n[0], &(struct dsm_msg){
		.type = DSM_MSG_WRITE_REQ, .sender = 2, .requester = 2,
		.txn = 40, .page = 1 }, NULL, why, sizeof(why)), 0);
	reject(0, mk(DSM_MSG_READ_REQ, 2, 1, 40, 3, 0, 0), -EPROTO,
	       "request on behalf of another node");
	reject(2, mk(DSM_MSG_READ_REQ, 1, 1, 40, 0, 0, 0), -EPROTO,
	       "request to a node that is not the home");
	ck_assert_uint_ge(dsm__counters(T.n[1])->protocol_errors, 10);

	/* None of that disturbed the real traffic. */
	run_all();
	ck_assert_int_eq(dsm__access(T.n[1], 2), DSM_ACC_MODIFIED);
	ck_assert_int_eq(dsm__access(T.n[1], 1), DSM_ACC_SHARED);
	ck_assert_uint_eq(dir(1).copyset, bits(0, 1, 2));
	for (unsigned i = 0; i < 3; i++)
		ck_assert(dsm__idle(T.n[i]));
	teardown();
}
END_TEST

/* Duplicate and stray replies around a write with acks, and a peer that
 * floods requests beyond its budget. */
START_TEST(test_bad_acks_and_budget)
{
	const uint8_t D = DSM_MF_DATA;

	setup_homes(4, (const unsigned[NP]){ 0, 0, 0, 0 }, 2);
	fault(1, 0, false);
	fault(2, 0, false);
	fault(3, 1, true);
	run_all();
	fault(3, 0, true);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	uint32_t tx = T.q[find(DSM_MSG_GRANT_WRITE, 3)].m.txn;

	deliver_ok(DSM_MSG_INV, 1);
	deliver_ok(DSM_MSG_INV_ACK, 3);
	reject(3, mk(DSM_MSG_INV_ACK, 1, 3, tx, 0, 0, 0), -EPROTO,
	       "duplicate ack before the grant");
	reject(3, mk(DSM_MSG_GRANT_WRITE, 0, 3, tx, 0, D | DSM_MF_DONE, 4),
	       -EPROTO, "grant whose ack mask misses an ack received");
	deliver_ok(DSM_MSG_GRANT_WRITE, 3);
	reject(3, mk(DSM_MSG_GRANT_WRITE, 0, 3, tx, 0, D | DSM_MF_DONE, 6),
	       -EPROTO, "duplicate grant");
	reject(3, mk(DSM_MSG_INV_ACK, 1, 3, tx, 0, 0, 0), -EPROTO,
	       "duplicate ack after the grant");
	run_all();
	ck_assert_int_eq(dsm__access(T.n[3], 0), DSM_ACC_MODIFIED);
	reject(0, mk(DSM_MSG_WRITE_REQ, 3, 3, 40, 0, 0, 0), -EPROTO,
	       "write request from the owner");

	/* Budget: node 2 may have 2 requests at this home (page 0 queued
	 * behind node 1's read, page 1 forwarded to node 3). */
	fault(1, 0, false);
	deliver_ok(DSM_MSG_READ_REQ, 0);	/* page 0 busy: FWD to 3 */
	struct dsm_msg r = mk(DSM_MSG_READ_REQ, 2, 2, 50, 0, 0, 0);

	ck_assert_int_eq(dsm__receive(T.n[0], &r, NULL, &T.out), 0);
	ck_assert_uint_eq(dir(0).queued, 1);
	r.txn = 51;
	reject(0, r, -EPROTO, "second request while the first is queued");
	fault(2, 1, true);
	deliver_ok(DSM_MSG_WRITE_REQ, 0);
	reject(0, mk(DSM_MSG_WRITE_REQ, 2, 2, 52, 2, 0, 0), -EPROTO,
	       "third request from a node allowed two");
	teardown();
}
END_TEST

static void add_bad_tests(Suite *s)
{
	TCase *tc = tcase_create("untrusted");

	tcase_add_test(tc, test_bad_messages);
	tcase_add_test(tc, test_bad_acks_and_budget);
	suite_add_tcase(s, tc);
}

static Suite *dsm_suite(void)
{
	Suite *s = suite_create("dsm_proto");
	TCase *tc = tcase_create("flows");

	tcase_add_test(tc, test_local_first_touch);
	tcase_add_test(tc, test_track_writes);
	tcase_add_test(tc, test_remote_read_one_round_trip);
	tcase_add_test(tc, test_remote_write_one_round_trip);
	tcase_add_test(tc, test_write_invalidates_sharers);
	tcase_add_test(tc, test_home_write_waits_for_acks);
	tcase_add_test(tc, test_upgrade);
	tcase_add_test(tc, test_forward_write);
	tcase_add_test(tc, test_forward_read);
	tcase_add_test(tc, test_home_reads_forwarded);
	tcase_add_test(tc, test_faults_coalesce);
	tcase_add_test(tc, test_queue_fifo);
	tcase_add_test(tc, test_single_node_and_limits);
	tcase_add_test(tc, test_home_layout);
	tcase_add_test(tc, test_config_rejected);
	tcase_add_test(tc, test_wire_format);
	suite_add_tcase(s, tc);
	add_bad_tests(s);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dsm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
