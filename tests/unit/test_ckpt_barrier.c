/* The checkpoint barrier's state machine (vmm/ckpt_format.h): node 0's
 * rounds and the four-counter rule, each node's probe and marks, and a
 * simulated cluster where messages travel with random delays (FIFO per
 * pair) and DSM traffic dies down while the barrier runs. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/ckpt_format.h"

static struct ckpt_report rep(bool idle, uint64_t s, uint64_t r)
{
	return (struct ckpt_report){ idle, s, r };
}

START_TEST(quiet_needs_two_equal_rounds)
{
	struct ckpt_barrier b;
	struct ckpt_report a = rep(true, 10, 7), c = rep(true, 7, 10);
	uint32_t r;

	ckpt_barrier__init(&b, 2, 0);
	r = ckpt_barrier__next_round(&b);
	ck_assert_uint_eq(r, 1);
	ck_assert_int_eq(ckpt_barrier__report(&b, 0, r, &a), CKPT_B_WAIT);
	ck_assert_int_eq(ckpt_barrier__report(&b, 0, r, &a), CKPT_B_IGNORED);
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r + 1, &c),
			 CKPT_B_IGNORED);
	ck_assert_int_eq(ckpt_barrier__report(&b, 2, r, &c), CKPT_B_BAD);
	/* Sums agree, but one round proves nothing. */
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r, &c), CKPT_B_AGAIN);
	r = ckpt_barrier__next_round(&b);
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r, &c), CKPT_B_WAIT);
	ck_assert_int_eq(ckpt_barrier__report(&b, 0, r, &a), CKPT_B_QUIET);
}
END_TEST

START_TEST(not_quiet)
{
	struct ckpt_barrier b;
	uint32_t r;

	ckpt_barrier__init(&b, 2, 41);
	/* A message in flight: sums differ, twice. */
	for (int i = 0; i < 2; i++) {
		r = ckpt_barrier__next_round(&b);
		ck_assert_uint_eq(r, 42 + (uint32_t)i);
		ckpt_barrier__report(&b, 0, r, &(struct ckpt_report){ true, 5, 4 });
		ck_assert_int_eq(ckpt_barrier__report(&b, 1, r,
			&(struct ckpt_report){ true, 4, 4 }), CKPT_B_AGAIN);
	}
	/* Busy node. */
	for (int i = 0; i < 2; i++) {
		r = ckpt_barrier__next_round(&b);
		ckpt_barrier__report(&b, 0, r, &(struct ckpt_report){ false, 5, 5 });
		ck_assert_int_eq(ckpt_barrier__report(&b, 1, r,
			&(struct ckpt_report){ true, 5, 5 }), CKPT_B_AGAIN);
	}
	/* Counters moved between the rounds: a send counted late and a
	 * receive counted early can balance one round. */
	r = ckpt_barrier__next_round(&b);
	ckpt_barrier__report(&b, 0, r, &(struct ckpt_report){ true, 6, 5 });
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r,
		&(struct ckpt_report){ true, 5, 6 }), CKPT_B_AGAIN);
	r = ckpt_barrier__next_round(&b);
	ckpt_barrier__report(&b, 0, r, &(struct ckpt_report){ true, 7, 6 });
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r,
		&(struct ckpt_report){ true, 6, 7 }), CKPT_B_AGAIN);
	r = ckpt_barrier__next_round(&b);
	ckpt_barrier__report(&b, 0, r, &(struct ckpt_report){ true, 7, 6 });
	ck_assert_int_eq(ckpt_barrier__report(&b, 1, r,
		&(struct ckpt_report){ true, 6, 7 }), CKPT_B_QUIET);
}
END_TEST

START_TEST(round_wraps)
{
	struct ckpt_barrier b;

	ckpt_barrier__init(&b, 1, UINT32_MAX);
	ck_assert_uint_eq(ckpt_barrier__next_round(&b), 1);
}
END_TEST

START_TEST(marks_probe_and_marks)
{
	struct ckpt_marks k;

	ckpt_marks__init(&k, 3, 1);
	/* Node 2's mark arrives before the probe. */
	ck_assert_int_eq(ckpt_marks__mark(&k, 2, 1), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 2, 1), -1);	/* duplicate */
	ck_assert_int_eq(ckpt_marks__mark(&k, 1, 1), -1);	/* from self */
	ck_assert_int_eq(ckpt_marks__mark(&k, 3, 1), -1);	/* no node */
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 3), -1);	/* 2 rounds */
	ck_assert_int_eq(ckpt_marks__probe(&k, 1), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 1), 1);
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 2), 0);	/* early */
	ck_assert_int_eq(ckpt_marks__probe(&k, 1), -1);	/* again */
	ck_assert_int_eq(ckpt_marks__probe(&k, 2), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 2, 2), 1);
	/* A round given up: round 3 never completed, round 5 comes. */
	ck_assert_int_eq(ckpt_marks__probe(&k, 3), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 3), 0);
	ck_assert_int_eq(ckpt_marks__probe(&k, 5), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 2, 3), 0);	/* stale */
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 5), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 2, 5), 1);
	ck_assert_int_eq(ckpt_marks__probe(&k, 4), -1);	/* backwards */
	/* Two nodes: one peer. */
	ckpt_marks__init(&k, 2, 0);
	ck_assert_int_eq(ckpt_marks__probe(&k, 7), 0);
	ck_assert_int_eq(ckpt_marks__mark(&k, 1, 7), 1);
	/* Numbering that starts anywhere (node 0 goes on counting). */
	ckpt_marks__init(&k, 2, 1);
	ck_assert_int_eq(ckpt_marks__mark(&k, 0, 9001), 0);
	ck_assert_int_eq(ckpt_marks__probe(&k, 9001), 1);
	/* One node: complete at the probe. */
	ckpt_marks__init(&k, 1, 0);
	ck_assert_int_eq(ckpt_marks__probe(&k, 1), 1);
}
END_TEST

/* ---- simulation ----
 * N nodes; each pair has a FIFO queue per direction.  "Work" messages
 * model DSM traffic: a node holding work tokens sends one to a random peer
 * now and then, and a receiver sometimes answers (until the budget runs
 * out), so traffic dies down.  The barrier runs at the same time.  When
 * node 0 declares quiet, no work message may be in flight and no node may
 * hold a token. */
#define SN 4
#define QCAP 4096

enum { M_WORK, M_PROBE, M_MARK, M_REPORT };

struct msg {
	int type;
	uint32_t round;
	struct ckpt_report r;
};

struct queue {
	struct msg m[QCAP];
	unsigned head, len;
};

static struct queue q[SN][SN];
static struct ckpt_marks marks[SN];
static uint64_t sent[SN], recvd[SN];
static unsigned busy[SN];	/* outstanding "requests" (not idle) */
static unsigned budget;

static void push(unsigned from, unsigned to, struct msg m)
{
	struct queue *x = &q[from][to];

	ck_assert_uint_lt(x->len, QCAP);
	x->m[(x->head + x->len++) % QCAP] = m;
}

static void report(unsigned node, uint32_t round)
{
	push(node, 0, (struct msg){ M_REPORT, round,
				    { busy[node] == 0, sent[node],
				      recvd[node] } });
}

static void send_work(unsigned from)
{
	unsigned to = (from + 1 + (unsigned)rand() % (SN - 1)) % SN;

	sent[from]++;
	push(from, to, (struct msg){ M_WORK, 0, { 0 } });
}

START_TEST(simulated_cluster)
{
	for (unsigned seed = 1; seed <= 200; seed++) {
		struct ckpt_barrier b;
		bool quiet = false, round_open = false;
		unsigned steps = 0;

		srand(seed);
		memset(q, 0, sizeof(q));
		memset(sent, 0, sizeof(sent));
		memset(recvd, 0, sizeof(recvd));
		memset(busy, 0, sizeof(busy));
		budget = 50 + (unsigned)rand() % 200;
		for (unsigned i = 0; i < SN; i++) {
			ckpt_marks__init(&marks[i], SN, i);
			busy[i] = (unsigned)rand() % 3;
		}
		ckpt_barrier__init(&b, SN, seed * 1000);
		while (!quiet) {
			ck_assert_uint_lt(++steps, 1000000);
			if (!round_open) {
				uint32_t r = ckpt_barrier__next_round(&b);

				round_open = true;
				for (unsigned i = 0; i < SN; i++)
					push(0, i, (struct msg){ M_PROBE, r,
								 { 0 } });
			}
			/* A node with work outstanding may send or finish. */
			unsigned n = (unsigned)rand() % SN;

			if (busy[n] && rand() % 3 == 0) {
				if (budget && rand() % 2) {
					budget--;
					send_work(n);
				} else {
					busy[n]--;
				}
			}
			/* Deliver the head of a random non-empty queue. */
			unsigned from = (unsigned)rand() % SN,
				 to = (unsigned)rand() % SN;
			struct queue *x = &q[from][to];

			if (!x->len)
				continue;
			struct msg m = x->m[x->head];

			x->head = (x->head + 1) % QCAP;
			x->len--;
			switch (m.type) {
			case M_WORK:
				recvd[to]++;
				if (budget && rand() % 2) {
					budget--;
					send_work(to);
				} else if (budget && rand() % 4 == 0) {
					budget--;
					busy[to]++;
				}
				break;
			case M_PROBE: {
				int d = ckpt_marks__probe(&marks[to], m.round);

				ck_assert_int_ge(d, 0);
				for (unsigned p = 0; p < SN; p++)
					if (p != to)
						push(to, p, (struct msg){
							M_MARK, m.round, { 0 } });
				if (d)
					report(to, m.round);
				break;
			}
			case M_MARK: {
				int d = ckpt_marks__mark(&marks[to], from,
							 m.round);

				ck_assert_int_ge(d, 0);
				if (d)
					report(to, m.round);
				break;
			}
			case M_REPORT: {
				enum ckpt_barrier_result r =
					ckpt_barrier__report(&b, from, m.round,
							     &m.r);

				ck_assert_int_ne(r, CKPT_B_BAD);
				ck_assert_int_ne(r, CKPT_B_IGNORED);
				if (r == CKPT_B_QUIET)
					quiet = true;
				else if (r == CKPT_B_AGAIN)
					round_open = false;
				break;
			}
			}
		}
		/* Quiet means it: no token, no work message anywhere. */
		for (unsigned i = 0; i < SN; i++) {
			ck_assert_uint_eq(busy[i], 0);
			for (unsigned k = 0; k < SN; k++)
				for (unsigned j = 0; j < q[i][k].len; j++)
					ck_assert_int_ne(
						q[i][k].m[(q[i][k].head + j) %
							  QCAP].type, M_WORK);
		}
	}
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ckpt_barrier");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, quiet_needs_two_equal_rounds);
	tcase_add_test(tc, not_quiet);
	tcase_add_test(tc, round_wraps);
	tcase_add_test(tc, marks_probe_and_marks);
	tcase_add_test(tc, simulated_cluster);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
