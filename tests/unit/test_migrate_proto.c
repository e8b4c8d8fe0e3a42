/* vCPU migration's protocol (vmm/migrate_proto.h) on a simulated cluster:
 * every node's state machine, a network with per-pair FIFO channels (the
 * latency and bulk channels independent, so STATE may arrive after a
 * later DECIDE), and a simulated I/O side that does what vmm/migrate*.c
 * does with each action - including the interrupt gates - on a clock the
 * test controls.  Every message goes through the wire codec.
 *
 * Checked: the happy paths (coordinator = source, = target, = neither),
 * a failure injected at every step (refusals, lost answers, a vCPU that
 * will not stop, a capture or load that fails, the VM stopping in each
 * state) each ending with the vCPU running on exactly one node and the
 * next migration succeeding, stale and reordered messages, the downtime
 * arithmetic, and random runs with interrupts fired at the vCPUs from
 * every node while they move: each interrupt reaches the vCPU's live
 * LAPIC exactly once. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/migrate_proto.h"

#define MAXN 4
#define MAXV 4
#define MAXQ 4096
#define MAXIRQ 2048
#define BLOB_BYTES (MAXIRQ / 8)
#define SIM_T_IRQ 254	/* an IRQ_DELIVER, as far as the gates go */

/* ---- the simulated cluster ---- */

enum ev_kind { EV_MSG, EV_PARKED, EV_CAPTURED, EV_LOADED, EV_IRQ };

struct ev {
	enum ev_kind kind;
	uint64_t at, seq;
	unsigned from, to, type, ch, vcpu;
	size_t len;
	uint8_t buf[MIGRATE_STATE_HDR + BLOB_BYTES];
	bool ok;
};

/* A node's copy of one vCPU's LAPIC: which interrupts it holds. */
struct lapic_copy {
	uint8_t irq[BLOB_BYTES];
};

struct gate {
	int state; /* 0 here, 1 sealed, 2 away */
	unsigned away;
	unsigned q[MAXIRQ];
	unsigned nq;
};

struct snode {
	struct migrate_proto *p;
	bool running[MAXV];	/* the vCPU executes here */
	bool held[MAXV];
	struct lapic_copy lapic[MAXV];
	struct gate gate[MAXV];
	uint8_t blob[MAXV][BLOB_BYTES]; /* captured, for SEND_STATE */
};

struct sim {
	unsigned nodes, vcpus;
	uint64_t now, seq, rng;
	struct snode n[MAXN];
	struct ev *q;
	unsigned nq;
	uint64_t chan_last[MAXN][MAXN][2]; /* FIFO per (from, to, channel) */
	/* knobs */
	uint64_t delay_min, delay_max;	/* network */
	uint64_t park_ns, capture_ns, load_ns;
	bool never_park, capture_fails, load_fails;
	bool drop_type[MIGRATE_T_LAST + 1];	/* lose messages of a type */
	bool state_late;	/* STATE takes 5 s */
	bool fire_irqs;
	/* results */
	int results;
	struct migrate_msg res;
	unsigned irq_sent, irq_forward_max;
	uint8_t irq_vcpu[MAXIRQ];
	int dup_irq;		/* an interrupt delivered twice */
	int double_run;		/* a vCPU running on two nodes */
};

static uint64_t rnd(struct sim *s)
{
	s->rng ^= s->rng << 13;
	s->rng ^= s->rng >> 7;
	s->rng ^= s->rng << 17;
	return s->rng;
}

static uint64_t between(struct sim *s, uint64_t lo, uint64_t hi)
{
	return hi > lo ? lo + rnd(s) % (hi - lo + 1) : lo;
}

static struct ev *push_ev(struct sim *s, enum ev_kind k, uint64_t at)
{
	struct ev *e;

	ck_assert_uint_lt(s->nq, MAXQ);
	e = &s->q[s->nq++];
	memset(e, 0, sizeof(*e) - sizeof(e->buf));
	e->kind = k;
	e->at = at;
	e->seq = s->seq++;
	return e;
}

static void net_send(struct sim *s, unsigned from, unsigned to,
		     unsigned type, const uint8_t *buf, size_t len,
		     unsigned ch)
{
	uint64_t at = s->now + between(s, s->delay_min, s->delay_max);
	struct ev *e;

	if (type <= MIGRATE_T_LAST && type >= MIGRATE_T_START &&
	    s->drop_type[type])
		return;
	if (type == MIGRATE_T_STATE && s->state_late)
		at += 5000000000ull;
	if (at < s->chan_last[from][to][ch])
		at = s->chan_last[from][to][ch];
	s->chan_last[from][to][ch] = at;
	e = push_ev(s, EV_MSG, at);
	e->from = from;
	e->to = to;
	e->type = type;
	e->ch = ch;
	e->len = len;
	memcpy(e->buf, buf, len);
}

static void run_acts(struct sim *s, unsigned self, struct migrate_acts *out);

static void recv_msg(struct sim *s, unsigned self, unsigned from,
		     unsigned type, const struct migrate_msg *m)
{
	struct migrate_acts out = { 0 };

	migrate_proto__recv(s->n[self].p, s->now, from, type, m, &out);
	run_acts(s, self, &out);
}

static void send_msg(struct sim *s, unsigned self, unsigned to,
		     unsigned type, const struct migrate_msg *m)
{
	uint8_t buf[MIGRATE_DONE_MIN + MIGRATE_TEXT_MAX];
	int len;

	if (to == self) {
		recv_msg(s, self, self, type, m);
		return;
	}
	len = migrate_msg__encode(type, m, buf, sizeof(buf));
	ck_assert_int_gt(len, 0);
	net_send(s, self, to, type, buf, (size_t)len, 0);
}

/* Interrupt id reaches node self's gate for vcpu. */
static void gate_in(struct sim *s, unsigned self, unsigned vcpu, unsigned id,
		    unsigned hops)
{
	struct snode *n = &s->n[self];
	struct gate *g = &n->gate[vcpu];
	struct migrate_msg f = { .vcpu = (uint16_t)vcpu };
	uint8_t buf[MIGRATE_FORWARD_SIZE];

	switch (g->state) {
	case 0:
		if (n->lapic[vcpu].irq[id / 8] & (1u << (id % 8)))
			s->dup_irq++;
		n->lapic[vcpu].irq[id / 8] |= (uint8_t)(1u << (id % 8));
		return;
	case 1:
		g->q[g->nq++] = id;
		return;
	}
	ck_assert_uint_le(hops + 1, MIGRATE_MAX_HOPS);
	if (hops + 1 > s->irq_forward_max)
		s->irq_forward_max = hops + 1;
	f.hops = (uint8_t)(hops + 1);
	f.irq.dest = id;
	f.irq.source = -1;
	ck_assert_int_eq(migrate_msg__encode(MIGRATE_T_FORWARD, &f, buf,
					     sizeof(buf)),
			 MIGRATE_FORWARD_SIZE);
	net_send(s, self, g->away, MIGRATE_T_FORWARD, buf, sizeof(buf), 0);
}

static void run_acts(struct sim *s, unsigned self, struct migrate_acts *out)
{
	struct snode *n = &s->n[self];

	for (unsigned i = 0; i < out->n; i++) {
		const struct migrate_act *a = &out->a[i];
		unsigned v = a->vcpu;
		struct gate *g = &n->gate[v];
		struct ev *e;

		switch (a->kind) {
		case MIGRATE_A_SEND:
			send_msg(s, self, a->node, a->type, &a->msg);
			break;
		case MIGRATE_A_PARK:
			ck_assert(n->running[v]);
			n->held[v] = true;
			if (!s->never_park) {
				e = push_ev(s, EV_PARKED, s->now + s->park_ns);
				e->to = self;
				e->vcpu = v;
			}
			break;
		case MIGRATE_A_CAPTURE:
			ck_assert(n->held[v] && !n->running[v]);
			g->state = 1;
			memcpy(n->blob[v], n->lapic[v].irq, BLOB_BYTES);
			e = push_ev(s, EV_CAPTURED, s->now + s->capture_ns);
			e->to = self;
			e->vcpu = v;
			e->ok = !s->capture_fails;
			break;
		case MIGRATE_A_SEND_STATE: {
			struct migrate_msg h = a->msg;
			uint8_t buf[MIGRATE_STATE_HDR + BLOB_BYTES];

			h.blob_len = BLOB_BYTES;
			ck_assert_int_eq(migrate_msg__encode(MIGRATE_T_STATE,
							     &h, buf,
							     sizeof(buf)),
					 MIGRATE_STATE_HDR);
			memcpy(buf + MIGRATE_STATE_HDR, n->blob[v],
			       BLOB_BYTES);
			net_send(s, self, a->node, MIGRATE_T_STATE, buf,
				 sizeof(buf), 1);
			break;
		}
		case MIGRATE_A_RELEASE:
			g->state = 0;
			for (unsigned k = 0; k < g->nq; k++)
				gate_in(s, self, v, g->q[k], 0);
			g->nq = 0;
			n->held[v] = false;
			n->running[v] = true;
			break;
		case MIGRATE_A_HAND_OVER: {
			unsigned nq = g->nq;

			ck_assert(!n->running[v]);
			send_msg(s, self, a->node, a->type, &a->msg);
			g->state = 2;
			g->away = a->node;
			g->nq = 0;
			for (unsigned k = 0; k < nq; k++)
				gate_in(s, self, v, g->q[k], 0);
			break;
		}
		case MIGRATE_A_LOAD:
			ck_assert_uint_eq(a->msg.blob_len, BLOB_BYTES);
			ck_assert(!n->running[v]);
			memcpy(n->lapic[v].irq, a->msg.blob, BLOB_BYTES);
			e = push_ev(s, EV_LOADED, s->now + s->load_ns);
			e->to = self;
			e->vcpu = v;
			e->ok = !s->load_fails;
			break;
		case MIGRATE_A_DISCARD:
			ck_assert(!n->running[v]);
			break;
		case MIGRATE_A_ACTIVATE: {
			struct migrate_msg r = a->msg_reply;

			g->state = 0;
			for (unsigned k = 0; k < s->nodes; k++)
				if (k != self)
					send_msg(s, self, k, MIGRATE_T_PLACE,
						 &a->msg);
			for (unsigned k = 0; k < s->nodes; k++)
				if (s->n[k].running[v])
					s->double_run++;
			n->running[v] = true;
			n->held[v] = false;
			if (a->reply) {
				r.value = 1000; /* 1 us on the target */
				send_msg(s, self, a->node, a->type, &r);
			}
			break;
		}
		case MIGRATE_A_PLACE:
			if (g->state == 2)
				g->away = a->node;
			break;
		case MIGRATE_A_RESULT:
			s->results++;
			s->res = a->msg;
			break;
		}
	}
}

static void sim_init(struct sim *s, unsigned nodes, unsigned vcpus,
		     const uint8_t *place, uint64_t seed)
{
	struct migrate_proto_config c = { .nr_nodes = nodes,
					  .nr_vcpus = vcpus,
					  .vcpu_node = place };

	memset(s, 0, sizeof(*s));
	s->q = calloc(MAXQ, sizeof(*s->q));
	ck_assert_ptr_nonnull(s->q);
	s->nodes = nodes;
	s->vcpus = vcpus;
	s->rng = seed | 1;
	s->now = 1000000000ull;
	s->delay_min = s->delay_max = 20000;	/* 20 us */
	s->park_ns = 50000;
	s->capture_ns = 100000;
	s->load_ns = 100000;
	migrate_timeouts__default(&c.tmo);
	for (unsigned i = 0; i < nodes; i++) {
		c.self = i;
		s->n[i].p = migrate_proto__new(&c);
		ck_assert_ptr_nonnull(s->n[i].p);
		for (unsigned v = 0; v < vcpus; v++) {
			s->n[i].running[v] = place[v] == i;
			s->n[i].gate[v].state = place[v] == i ? 0 : 2;
			s->n[i].gate[v].away = place[v];
		}
	}
}

static void sim_free(struct sim *s)
{
	for (unsigned i = 0; i < s->nodes; i++)
		migrate_proto__free(s->n[i].p);
	free(s->q);
}

static void deliver(struct sim *s, struct ev *e)
{
	struct migrate_msg m;
	char err[160];
	struct migrate_acts out = { 0 };
	struct snode *n = &s->n[e->to];

	switch (e->kind) {
	case EV_MSG:
		if (e->type == SIM_T_IRQ) {
			unsigned id;

			memcpy(&id, e->buf + 4, 4);
			gate_in(s, e->to, e->buf[0], id, 0);
			return;
		}
		ck_assert_msg(migrate_msg__decode(e->type, e->buf, e->len,
						  s->vcpus, s->nodes, &m, err,
						  sizeof(err)) == 0,
			      "decode %u: %s", e->type, err);
		if (e->type == MIGRATE_T_FORWARD) {
			gate_in(s, e->to, m.vcpu, m.irq.dest, m.hops);
			return;
		}
		recv_msg(s, e->to, e->from, e->type, &m);
		return;
	case EV_PARKED:
		if (!n->held[e->vcpu])
			return; /* released meanwhile */
		n->running[e->vcpu] = false;
		migrate_proto__parked(n->p, s->now, e->vcpu, s->now, &out);
		break;
	case EV_CAPTURED: {
		struct apic_addr a = { .apic_id = e->vcpu, .enabled = 3 };

		migrate_proto__captured(n->p, s->now, e->vcpu, e->ok,
					MIGRATE_STATE_HDR + BLOB_BYTES, 7, &a,
					e->ok ? NULL : "injected", &out);
		break;
	}
	case EV_LOADED:
		migrate_proto__loaded(n->p, s->now, e->vcpu, e->ok,
				      e->ok ? NULL : "injected", &out);
		break;
	case EV_IRQ: {
		/* Fired at vcpu from node e->from, routed by its view: here,
		 * or as an IRQ_DELIVER that lands on the gate there (through
		 * the router or irq_remote's redirect hook). */
		unsigned where = migrate_proto__node_of(s->n[e->from].p,
							e->vcpu);
		uint8_t b[8] = { (uint8_t)e->vcpu };

		if (where == e->from) {
			gate_in(s, e->from, e->vcpu, e->type, 0);
			return;
		}
		memcpy(b + 4, &e->type, 4);
		net_send(s, e->from, where, SIM_T_IRQ, b, sizeof(b), 0);
		return;
	}
	}
	run_acts(s, e->to, &out);
}

/* Runs events up to time until (0: until none is left and no deadline
 * is pending before until). */
static void sim_run(struct sim *s, uint64_t until)
{
	for (;;) {
		unsigned best = s->nq;
		uint64_t dl = 0;
		unsigned dn = 0;

		for (unsigned i = 0; i < s->nq; i++)
			if (best == s->nq || s->q[i].at < s->q[best].at ||
			    (s->q[i].at == s->q[best].at &&
			     s->q[i].seq < s->q[best].seq))
				best = i;
		for (unsigned i = 0; i < s->nodes; i++) {
			uint64_t d = migrate_proto__next_deadline(s->n[i].p);

			if (d && (!dl || d < dl)) {
				dl = d;
				dn = i;
			}
		}
		if (dl && (best == s->nq || dl < s->q[best].at) &&
		    (!until || dl <= until)) {
			struct migrate_acts out = { 0 };

			if (dl > s->now)
				s->now = dl;
			migrate_proto__tick(s->n[dn].p, s->now, &out);
			run_acts(s, dn, &out);
			continue;
		}
		if (best == s->nq || (until && s->q[best].at > until))
			break;
		{
			struct ev e = s->q[best];

			s->q[best] = s->q[--s->nq];
			if (e.at > s->now)
				s->now = e.at;
			deliver(s, &e);
		}
	}
	if (until && s->now < until)
		s->now = until;
}

static int migrate(struct sim *s, unsigned vcpu, unsigned node,
		   unsigned fault)
{
	struct migrate_acts out = { 0 };
	struct migrate_msg res;
	int r = migrate_proto__request(s->n[0].p, s->now, vcpu, node, fault,
				       &res, &out);

	s->results = 0;
	run_acts(s, 0, &out);
	if (r != 0) {
		s->res = res;
		return r;
	}
	sim_run(s, 0);
	ck_assert_int_eq(s->results, 1);
	return s->res.status == MIGRATE_OK ? 0 : -1;
}

/* Exactly one node runs each vCPU; every node agrees where. */
static void check_placement(struct sim *s, unsigned vcpu, unsigned node)
{
	for (unsigned i = 0; i < s->nodes; i++) {
		ck_assert_msg(s->n[i].running[vcpu] == (i == node),
			      "vCPU %u running on node %u: %d", vcpu, i,
			      s->n[i].running[vcpu]);
		ck_assert_uint_eq(migrate_proto__node_of(s->n[i].p, vcpu),
				  node);
		ck_assert(!migrate_proto__busy(s->n[i].p, vcpu));
	}
	ck_assert_int_eq(s->double_run, 0);
}

static const uint8_t two[] = { 0, 1 };

/* ---- happy paths ---- */

START_TEST(move_and_back)
{
	struct sim s;
	struct migrate_proto_stats st;

	sim_init(&s, 2, 2, two, 1);
	ck_assert_int_eq(migrate(&s, 1, 0, 0), 0);	/* C = T */
	check_placement(&s, 1, 0);
	ck_assert_uint_eq(s.res.from, 1);
	ck_assert_uint_eq(s.res.node, 0);
	ck_assert_uint_eq(s.res.state_bytes, MIGRATE_STATE_HDR + BLOB_BYTES);
	ck_assert_int_eq(migrate(&s, 1, 1, 0), 0);	/* C = S */
	check_placement(&s, 1, 1);
	ck_assert_int_eq(migrate(&s, 0, 1, 0), 0);
	check_placement(&s, 0, 1);
	ck_assert_uint_eq(migrate_proto__gen_of(s.n[0].p, 1), 2);
	ck_assert_uint_eq(migrate_proto__gen_of(s.n[1].p, 1), 2);
	migrate_proto__stats(s.n[0].p, &st);
	ck_assert_uint_eq(st.succeeded, 3);
	ck_assert_uint_eq(st.failed, 0);
	sim_free(&s);
}
END_TEST

/* Equal delays make the downtime exact: parked at P, commit at P +
 * capture + delay (STATE) + load + delay (LOADED), then one delay to the
 * target, which spends 1 us. */
START_TEST(downtime_arithmetic)
{
	struct sim s;
	uint64_t d = 20000;

	sim_init(&s, 2, 2, two, 2);
	ck_assert_int_eq(migrate(&s, 0, 1, 0), 0);
	/* Half the commit's round trip less the target's 1 us, plus it. */
	ck_assert_uint_eq(s.res.value, s.capture_ns + d + s.load_ns + d +
					       (2 * d - 1000) / 2 + 1000);
	/* START is local; PREPARE, PREPARED; park; ...; RESUMED back. */
	ck_assert_uint_eq(s.res.total_ns, 2 * d + s.park_ns + s.capture_ns +
						  d + s.load_ns + d + 2 * d);
	sim_free(&s);
}
END_TEST

START_TEST(three_nodes_coordinator_apart)
{
	static const uint8_t place[] = { 0, 1, 2 };
	struct sim s;

	sim_init(&s, 3, 3, place, 3);
	ck_assert_int_eq(migrate(&s, 1, 2, 0), 0);	/* C neither */
	check_placement(&s, 1, 2);
	ck_assert_int_eq(migrate(&s, 1, 0, 0), 0);
	check_placement(&s, 1, 0);
	ck_assert_int_eq(migrate(&s, 2, 1, 0), 0);
	check_placement(&s, 2, 1);
	sim_free(&s);
}
END_TEST

START_TEST(bad_requests)
{
	struct sim s;
	struct migrate_acts out = { 0 };
	struct migrate_msg res;

	sim_init(&s, 2, 2, two, 4);
	ck_assert_int_eq(migrate(&s, 1, 1, 0), 1);	/* already there */
	ck_assert_uint_eq(s.res.status, MIGRATE_OK);
	ck_assert_int_eq(migrate(&s, 2, 0, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_INVALID);
	ck_assert_ptr_nonnull(strstr(s.res.text, "vCPU 2 does not exist"));
	ck_assert_int_eq(migrate(&s, 0, 2, 0), -1);
	ck_assert_ptr_nonnull(strstr(s.res.text, "node 2 does not exist"));
	ck_assert_int_eq(migrate(&s, 0, 1, MIGRATE_FAULT_MAX + 1), -1);
	/* One at a time. */
	ck_assert_int_eq(migrate_proto__request(s.n[0].p, s.now, 0, 1, 0,
						&res, &out), 0);
	run_acts(&s, 0, &out);
	ck_assert_int_eq(migrate_proto__request(s.n[0].p, s.now, 1, 0, 0,
						&res, &out), -1);
	ck_assert_uint_eq(res.status, MIGRATE_E_BUSY);
	sim_run(&s, 0);
	ck_assert_uint_eq(s.res.status, MIGRATE_OK);
	check_placement(&s, 0, 1);
	sim_free(&s);
}
END_TEST

/* ---- a failure at every step ---- */

/* After a failure: it runs on the source, and the next move works. */
static void recovers(struct sim *s, unsigned vcpu, unsigned src,
		     unsigned dst)
{
	check_placement(s, vcpu, src);
	s->never_park = s->capture_fails = s->load_fails = false;
	s->state_late = false;
	memset(s->drop_type, 0, sizeof(s->drop_type));
	ck_assert_int_eq(migrate(s, vcpu, dst, 0), 0);
	check_placement(s, vcpu, dst);
}

START_TEST(fail_refuse_prepare)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 5);
	ck_assert_int_eq(migrate(&s, 0, 1, MIGRATE_FAULT_REFUSE_PREPARE), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_REFUSED);
	ck_assert_ptr_nonnull(strstr(s.res.text, "refuse-prepare"));
	recovers(&s, 0, 0, 1);
	sim_free(&s);
}
END_TEST

START_TEST(fail_prepare_lost)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 6);
	s.drop_type[MIGRATE_T_REPLY] = true;	/* PREPARED never comes */
	ck_assert_int_eq(migrate(&s, 0, 1, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(s.res.text, "did not answer"));
	recovers(&s, 0, 0, 1);
	sim_free(&s);
}
END_TEST

START_TEST(fail_no_park)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 7);
	s.never_park = true;
	ck_assert_int_eq(migrate(&s, 1, 0, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(s.res.text, "did not stop"));
	recovers(&s, 1, 1, 0);
	sim_free(&s);
}
END_TEST

START_TEST(fail_capture)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 8);
	s.capture_fails = true;
	ck_assert_int_eq(migrate(&s, 0, 1, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_CAPTURE);
	recovers(&s, 0, 0, 1);
	ck_assert_int_eq(migrate(&s, 0, 0, MIGRATE_FAULT_FAIL_CAPTURE), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_CAPTURE);
	recovers(&s, 0, 1, 0);
	sim_free(&s);
}
END_TEST

START_TEST(fail_load)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 9);
	s.load_fails = true;
	ck_assert_int_eq(migrate(&s, 0, 1, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_REFUSED);
	ck_assert_ptr_nonnull(strstr(s.res.text, "could not load"));
	recovers(&s, 0, 0, 1);
	ck_assert_int_eq(migrate(&s, 0, 0, MIGRATE_FAULT_REFUSE_LOAD), -1);
	ck_assert_ptr_nonnull(strstr(s.res.text, "refuse-load"));
	recovers(&s, 0, 1, 0);
	sim_free(&s);
}
END_TEST

/* No LOADED: the source times out, aborts; the target, loaded, drops it. */
START_TEST(fail_silent_load)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 10);
	ck_assert_int_eq(migrate(&s, 1, 0, MIGRATE_FAULT_SILENT_LOAD), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	ck_assert_ptr_nonnull(strstr(s.res.text, "did not load"));
	recovers(&s, 1, 1, 0);
	sim_free(&s);
}
END_TEST

/* The state is slower than the abort: the target ignores it. */
START_TEST(fail_state_after_abort)
{
	struct sim s;
	struct migrate_proto_stats st;

	sim_init(&s, 2, 2, two, 11);
	s.state_late = true;
	ck_assert_int_eq(migrate(&s, 0, 1, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	sim_run(&s, s.now + 10000000000ull);	/* the STATE lands */
	migrate_proto__stats(s.n[1].p, &st);
	ck_assert_uint_ge(st.stale, 1);
	recovers(&s, 0, 0, 1);
	sim_free(&s);
}
END_TEST

/* DECIDE(abort) overtakes a load in progress: no LOADED, no activation. */
START_TEST(fail_abort_while_loading)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 12);
	s.load_ns = 2500000000ull;	/* beyond the source's patience */
	ck_assert_int_eq(migrate(&s, 0, 1, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	sim_run(&s, s.now + 5000000000ull);
	check_placement(&s, 0, 0);
	s.load_ns = 100000;
	recovers(&s, 0, 0, 1);
	sim_free(&s);
}
END_TEST

/* Committed, but the target never says it runs: reported, and it does
 * run there (and only there). */
START_TEST(fail_silent_resume)
{
	struct sim s;

	sim_init(&s, 2, 2, two, 13);
	ck_assert_int_eq(migrate(&s, 0, 1, MIGRATE_FAULT_SILENT_RESUME), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_UNCONFIRMED);
	ck_assert_uint_eq(s.res.node, 1);
	recovers(&s, 0, 1, 0);
	sim_free(&s);
}
END_TEST

/* DONE lost: the coordinator gives up, and learns the placement from the
 * target's PLACE all the same. */
START_TEST(fail_done_lost)
{
	static const uint8_t place[] = { 0, 1, 2 };
	struct sim s;

	sim_init(&s, 3, 3, place, 14);
	s.drop_type[MIGRATE_T_DONE] = true;
	ck_assert_int_eq(migrate(&s, 1, 2, 0), -1);
	ck_assert_uint_eq(s.res.status, MIGRATE_E_TIMEOUT);
	check_placement(&s, 1, 2);
	recovers(&s, 1, 2, 0);
	sim_free(&s);
}
END_TEST

/* The VM stops in each state of the source and the target. */
START_TEST(stopping_everywhere)
{
	for (int step = 0; step < 6; step++) {
		struct sim s;
		struct migrate_acts out = { 0 };
		struct migrate_msg res;
		/* PREPARING, PARKING, CAPTURING, SENT, T loading, S
		 * committed with the DECIDE on its way. */
		uint64_t at[] = { 10000, 45000, 100000, 200000, 250000,
				  340000 };

		sim_init(&s, 2, 2, two, 20 + (uint64_t)step);
		ck_assert_int_eq(migrate_proto__request(s.n[0].p, s.now, 0, 1,
							0, &res, &out), 0);
		run_acts(&s, 0, &out);
		sim_run(&s, s.now + at[step]);
		for (unsigned i = 0; i < 2; i++) {
			struct migrate_acts o = { 0 };

			migrate_proto__stopping(s.n[i].p, &o);
			run_acts(&s, i, &o);
		}
		ck_assert_int_eq(s.results, 1);
		ck_assert_uint_eq(s.res.status, MIGRATE_E_STOPPING);
		ck_assert_int_eq(s.double_run, 0);
		/* Before the commit it runs on at the source (its thread
		 * leaves as the VM stops); after, nowhere. */
		ck_assert_int_eq(s.n[0].running[0], step < 5);
		ck_assert(!s.n[1].running[0]);
		ck_assert(!migrate_proto__busy(s.n[0].p, 0));
		ck_assert(!migrate_proto__busy(s.n[1].p, 0));
		ck_assert_int_eq(migrate_proto__request(s.n[0].p, s.now, 0, 1,
							0, &res, &out), -1);
		ck_assert_uint_eq(res.status, MIGRATE_E_STOPPING);
		sim_free(&s);
	}
}
END_TEST

/* A target that waits past its patience frees itself. */
START_TEST(target_gives_up)
{
	struct sim s;
	struct migrate_acts out = { 0 };
	struct migrate_msg m = { .id = 99, .vcpu = 0, .node = 1, .gen = 1 };

	sim_init(&s, 2, 2, two, 30);
	migrate_proto__recv(s.n[1].p, s.now, 0, MIGRATE_T_PREPARE, &m, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(out.a[0].msg.step, MIGRATE_STEP_PREPARED);
	ck_assert_uint_eq(out.a[0].msg.status, MIGRATE_OK);
	ck_assert(migrate_proto__busy(s.n[1].p, 0));
	out.n = 0;
	migrate_proto__tick(s.n[1].p, s.now + 30000000000ull, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(out.a[0].kind, MIGRATE_A_DISCARD);
	ck_assert(!migrate_proto__busy(s.n[1].p, 0));
	sim_free(&s);
}
END_TEST

/* Messages that do not fit: ignored, nothing acts. */
START_TEST(stale_messages)
{
	struct sim s;
	struct migrate_acts out = { 0 };
	struct migrate_msg m = { .id = 5, .vcpu = 1, .step = 1 };
	struct migrate_proto_stats st;

	sim_init(&s, 2, 2, two, 31);
	migrate_proto__recv(s.n[0].p, s.now, 1, MIGRATE_T_REPLY, &m, &out);
	m.commit = 1;
	migrate_proto__recv(s.n[1].p, s.now, 0, MIGRATE_T_DECIDE, &m, &out);
	migrate_proto__recv(s.n[1].p, s.now, 0, MIGRATE_T_STATE, &m, &out);
	migrate_proto__recv(s.n[0].p, s.now, 1, MIGRATE_T_DONE, &m, &out);
	/* START from a node that does not coordinate. */
	m.node = 0;
	migrate_proto__recv(s.n[1].p, s.now, 1, MIGRATE_T_START, &m, &out);
	migrate_proto__parked(s.n[0].p, s.now, 0, s.now, &out);
	migrate_proto__loaded(s.n[1].p, s.now, 0, true, NULL, &out);
	migrate_proto__captured(s.n[0].p, s.now, 0, true, 1, 1, NULL, NULL,
				&out);
	ck_assert_uint_eq(out.n, 0);
	migrate_proto__stats(s.n[0].p, &st);
	ck_assert_uint_ge(st.stale, 4);
	/* A vCPU that is not where the coordinator thinks: refused. */
	m = (struct migrate_msg){ .id = 6, .vcpu = 1, .node = 1, .gen = 1 };
	migrate_proto__recv(s.n[0].p, s.now, 0, MIGRATE_T_START, &m, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(out.a[0].type, MIGRATE_T_DONE);
	ck_assert_uint_eq(out.a[0].msg.status, MIGRATE_E_INVALID);
	sim_free(&s);
}
END_TEST

/* PLACEs from different senders may arrive out of order: the newer
 * generation wins. */
START_TEST(place_generations)
{
	static const uint8_t place[] = { 0, 1, 2 };
	struct sim s;
	struct migrate_acts out = { 0 };
	struct migrate_msg p2 = { .vcpu = 1, .node = 2, .gen = 2 };
	struct migrate_msg p1 = { .vcpu = 1, .node = 0, .gen = 1 };

	sim_init(&s, 3, 3, place, 32);
	/* Node 0's view is irrelevant here: a node that never held it. */
	migrate_proto__recv(s.n[2].p, s.now, 2, MIGRATE_T_PLACE, &p2, &out);
	ck_assert_uint_eq(out.n, 0);	/* from itself: not a PLACE */
	migrate_proto__recv(s.n[0].p, s.now, 2, MIGRATE_T_PLACE, &p2, &out);
	ck_assert_uint_eq(out.n, 1);
	ck_assert_uint_eq(out.a[0].kind, MIGRATE_A_PLACE);
	out.n = 0;
	migrate_proto__recv(s.n[0].p, s.now, 0, MIGRATE_T_PLACE, &p1, &out);
	ck_assert_uint_eq(out.n, 0);
	ck_assert_uint_eq(migrate_proto__node_of(s.n[0].p, 1), 2);
	/* Naming a node other than its sender: refused. */
	p1.gen = 9;
	migrate_proto__recv(s.n[0].p, s.now, 1, MIGRATE_T_PLACE, &p1, &out);
	ck_assert_uint_eq(out.n, 0);
	sim_free(&s);
}
END_TEST

/* ---- random runs with interrupts in flight ---- */

static void fire_irqs(struct sim *s, uint64_t from, uint64_t to,
		      unsigned count)
{
	for (unsigned i = 0; i < count && s->irq_sent < MAXIRQ; i++) {
		struct ev *e = push_ev(s, EV_IRQ, between(s, from, to));

		e->from = (unsigned)(rnd(s) % s->nodes);
		e->vcpu = (unsigned)(rnd(s) % s->vcpus);
		s->irq_vcpu[s->irq_sent] = (uint8_t)e->vcpu;
		e->type = s->irq_sent++;	/* the interrupt's id */
	}
}

START_TEST(random_with_interrupts)
{
	static const uint8_t place[] = { 0, 0, 1, 2 };

	for (uint64_t seed = 1; seed <= 40; seed++) {
		struct sim s;
		unsigned moved = 0, failed = 0;

		sim_init(&s, 3, 4, place, seed * 7919);
		s.delay_min = 5000;
		s.delay_max = 400000;
		for (int round = 0; round < 30; round++) {
			unsigned v = (unsigned)(rnd(&s) % 4);
			unsigned to = (unsigned)(rnd(&s) % 3);
			unsigned fault = rnd(&s) % 8 == 0 ?
				(unsigned)(1 + rnd(&s) % MIGRATE_FAULT_MAX) : 0;
			int r;

			s.park_ns = between(&s, 1000, 300000);
			s.load_ns = between(&s, 1000, 300000);
			fire_irqs(&s, s.now, s.now + 3000000, 40);
			r = migrate(&s, v, to, fault);
			if (r == 0)
				moved++;
			else if (r < 0)
				failed++;
			/* Wherever it is, it is in one place. */
			ck_assert_int_eq(s.double_run, 0);
		}
		fire_irqs(&s, s.now, s.now + 1000000, 40);
		sim_run(&s, s.now + 40000000000ull);
		ck_assert_int_eq(s.dup_irq, 0);
		/* Every interrupt is in the live LAPIC of its vCPU. */
		for (unsigned v = 0; v < 4; v++)
			check_placement(&s, v,
					migrate_proto__node_of(s.n[0].p, v));
		for (unsigned id = 0; id < s.irq_sent; id++) {
			unsigned v = s.irq_vcpu[id];
			unsigned live = migrate_proto__node_of(s.n[0].p, v);

			ck_assert_msg(s.n[live].lapic[v].irq[id / 8] &
					      (1u << (id % 8)),
				      "seed %llu: interrupt %u for vCPU %u lost",
				      (unsigned long long)seed, id, v);
		}
		ck_assert_uint_gt(moved, 5);
		sim_free(&s);
	}
}
END_TEST

/* ---- the wire ---- */

START_TEST(wire_round_trips)
{
	static const unsigned types[] = {
		MIGRATE_T_START, MIGRATE_T_PREPARE, MIGRATE_T_DECIDE,
		MIGRATE_T_REPLY, MIGRATE_T_DONE, MIGRATE_T_PLACE,
		MIGRATE_T_FORWARD,
	};
	struct migrate_msg m = {
		.id = 0x1122334455667788ull, .vcpu = 3, .node = 1, .gen = 77,
		.fault = 2, .commit = 1, .step = 2, .status = 0,
		.value = 123456789, .total_ns = 987654321, .state_bytes = 4242,
		.addr_seq = 9, .addr = { 3, 0x08000000, 1, 0, 3, 0x20 },
		.hops = 2,
		.irq = { .dest = 5, .source = 1, .vector = 0x91,
			 .delivery = 4, .dest_logical = 1, .level = 1 },
	};
	uint8_t buf[512];
	struct migrate_msg d;
	char err[160];

	snprintf(m.text, sizeof(m.text), "why \x01 not");
	for (unsigned i = 0; i < sizeof(types) / sizeof(types[0]); i++) {
		unsigned t = types[i];
		int len;

		m.node = t == MIGRATE_T_DECIDE || t == MIGRATE_T_REPLY ? 0 : 1;
		len = migrate_msg__encode(t, &m, buf, sizeof(buf));
		ck_assert_int_gt(len, 0);
		ck_assert_msg(migrate_msg__decode(t, buf, (size_t)len, 4, 2,
						  &d, err, sizeof(err)) == 0,
			      "type %u: %s", t, err);
		ck_assert_uint_eq(d.vcpu, 3);
		/* Every shorter length, and one byte more, is refused. */
		for (int l = 0; l < len; l++)
			if (!((t == MIGRATE_T_REPLY || t == MIGRATE_T_DONE) &&
			      l >= len - (int)strlen(m.text)))
				ck_assert_int_eq(migrate_msg__decode(
					t, buf, (size_t)l, 4, 2, &d, err,
					sizeof(err)), -1);
		if (t != MIGRATE_T_REPLY && t != MIGRATE_T_DONE)
			ck_assert_int_eq(migrate_msg__decode(t, buf,
							     (size_t)len + 1,
							     4, 2, &d, err,
							     sizeof(err)),
					 -1);
		/* A vCPU or node the VM does not have. */
		ck_assert_int_eq(migrate_msg__decode(t, buf, (size_t)len, 3, 2,
						     &d, err, sizeof(err)), -1);
		ck_assert_int_eq(migrate_msg__decode(t, buf, (size_t)len, 4, 2,
						     &d, err, sizeof(err)), 0);
		switch (t) {
		case MIGRATE_T_START:
		case MIGRATE_T_PREPARE:
			ck_assert_uint_eq(d.fault, 2);
			ck_assert_uint_eq(d.gen, 77);
			break;
		case MIGRATE_T_DECIDE:
			ck_assert_uint_eq(d.commit, 1);
			break;
		case MIGRATE_T_REPLY:
			ck_assert_uint_eq(d.step, 2);
			ck_assert_uint_eq(d.value, 123456789);
			ck_assert_str_eq(d.text, "why ? not");
			break;
		case MIGRATE_T_DONE:
			ck_assert_uint_eq(d.total_ns, 987654321);
			ck_assert_uint_eq(d.state_bytes, 4242);
			break;
		case MIGRATE_T_PLACE:
			ck_assert_uint_eq(d.addr.ldr, 0x08000000);
			ck_assert_uint_eq(d.addr_seq, 9);
			break;
		case MIGRATE_T_FORWARD:
			ck_assert_uint_eq(d.irq.vector, 0x91);
			ck_assert_uint_eq(d.irq.delivery, 4);
			ck_assert_uint_eq(d.hops, 2);
			break;
		}
	}
	m.blob_len = 10;
	ck_assert_int_eq(migrate_msg__encode(MIGRATE_T_STATE, &m, buf,
					     sizeof(buf)), MIGRATE_STATE_HDR);
	memset(buf + MIGRATE_STATE_HDR, 0xab, 10);
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_STATE, buf,
					     MIGRATE_STATE_HDR + 10, 4, 2, &d,
					     err, sizeof(err)), 0);
	ck_assert_uint_eq(d.blob_len, 10);
	ck_assert_uint_eq(d.blob[9], 0xab);
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_STATE, buf,
					     MIGRATE_STATE_HDR + 9, 4, 2, &d,
					     err, sizeof(err)), -1);
	ck_assert_int_eq(migrate_msg__encode(MIGRATE_T_START, &m, buf, 19),
			 -1);
	ck_assert_int_eq(migrate_msg__encode(200, &m, buf, sizeof(buf)), -1);
	ck_assert_int_eq(migrate_msg__decode(168, buf, 20, 4, 2, &d, err,
					     sizeof(err)), -1);
}
END_TEST

START_TEST(wire_rejects_fields)
{
	struct migrate_msg m = { .vcpu = 1, .gen = 1, .hops = 1,
				 .irq = { .source = -1 },
				 .addr = { .enabled = 1 } };
	uint8_t buf[64], b[64];
	struct migrate_msg d;
	int len;

	/* Every reserved byte of START, DECIDE and FORWARD, and every bad
	 * flag value. */
	len = migrate_msg__encode(MIGRATE_T_START, &m, buf, sizeof(buf));
	for (int i = 17; i < 20; i++) {
		memcpy(b, buf, (size_t)len);
		b[i] = 1;
		ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_START, b,
						     (size_t)len, 4, 2, &d,
						     NULL, 0), -1);
	}
	b[16] = MIGRATE_FAULT_MAX + 1;
	memcpy(b, buf, 16);
	b[17] = b[18] = b[19] = 0;
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_START, b, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	len = migrate_msg__encode(MIGRATE_T_DECIDE, &m, buf, sizeof(buf));
	buf[16] = 2;
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_DECIDE, buf,
					     (size_t)len, 4, 2, &d, NULL, 0),
			 -1);
	len = migrate_msg__encode(MIGRATE_T_FORWARD, &m, buf, sizeof(buf));
	for (int i = 3; i < len; i++) {
		static const uint8_t bad[] = { [3] = 1, [13] = 3, [14] = 2,
					       [15] = 4, [16] = 2, [17] = 2,
					       [18] = 2, [19] = 1 };

		if (i >= 4 && i < 13)
			continue;
		memcpy(b, buf, (size_t)len);
		b[i] = bad[i];
		ck_assert_msg(migrate_msg__decode(MIGRATE_T_FORWARD, b,
						  (size_t)len, 4, 2, &d, NULL,
						  0) == -1, "byte %d", i);
	}
	memcpy(b, buf, (size_t)len);
	b[2] = 0;	/* hops 0 */
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_FORWARD, b, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	b[2] = MIGRATE_MAX_HOPS + 1;
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_FORWARD, b, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	/* PLACE: generation 0, bad address flags. */
	m.gen = 0;
	len = migrate_msg__encode(MIGRATE_T_PLACE, &m, buf, sizeof(buf));
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_PLACE, buf, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	m.gen = 1;
	m.addr.enabled = 2;
	len = migrate_msg__encode(MIGRATE_T_PLACE, &m, buf, sizeof(buf));
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_PLACE, buf, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	/* REPLY: step 0 or 4, status past the last. */
	m.step = 0;
	len = migrate_msg__encode(MIGRATE_T_REPLY, &m, buf, sizeof(buf));
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_REPLY, buf, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
	m.step = 1;
	m.status = MIGRATE_E_MAX + 1;
	len = migrate_msg__encode(MIGRATE_T_REPLY, &m, buf, sizeof(buf));
	ck_assert_int_eq(migrate_msg__decode(MIGRATE_T_REPLY, buf, (size_t)len,
					     4, 2, &d, NULL, 0), -1);
}
END_TEST

/* Random bytes of every type: decoded or refused, never a crash (ASan). */
START_TEST(wire_random_bytes)
{
	uint64_t x = 88172645463325252ull;
	uint8_t buf[300];
	struct migrate_msg d;

	for (int i = 0; i < 200000; i++) {
		size_t len;

		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		len = x % sizeof(buf);
		for (size_t k = 0; k < len; k++)
			buf[k] = (uint8_t)(x >> (k % 56)) ^ (uint8_t)k;
		migrate_msg__decode(MIGRATE_T_START + (unsigned)(x % 10), buf,
				    len, 4, 2, &d, NULL, 0);
	}
}
END_TEST

START_TEST(names)
{
	for (unsigned f = 0; f <= MIGRATE_FAULT_MAX; f++)
		ck_assert_int_eq(migrate_fault__parse(migrate_fault__name(f)),
				 (int)f);
	ck_assert_int_eq(migrate_fault__parse("nope"), -1);
	ck_assert_ptr_null(migrate_fault__name(MIGRATE_FAULT_MAX + 1));
	ck_assert_str_eq(migrate_status__name(MIGRATE_E_TIMEOUT), "timeout");
}
END_TEST

START_TEST(config_checks)
{
	static const uint8_t bad[] = { 0, 2 };
	struct migrate_proto_config c = { .nr_nodes = 2, .nr_vcpus = 2,
					  .vcpu_node = two };

	migrate_timeouts__default(&c.tmo);
	c.vcpu_node = bad;
	ck_assert_ptr_null(migrate_proto__new(&c));
	c.vcpu_node = two;
	c.self = 2;
	ck_assert_ptr_null(migrate_proto__new(&c));
	c.self = 0;
	c.tmo.target_ns = c.tmo.loaded_ns;	/* T must outwait S */
	ck_assert_ptr_null(migrate_proto__new(&c));
	ck_assert_ptr_null(migrate_proto__new(NULL));
}
END_TEST

static Suite *migrate_suite(void)
{
	Suite *s = suite_create("migrate_proto");
	TCase *ok = tcase_create("paths");
	TCase *fail = tcase_create("failures");
	TCase *rnd_tc = tcase_create("random");
	TCase *wire = tcase_create("wire");

	tcase_add_test(ok, move_and_back);
	tcase_add_test(ok, downtime_arithmetic);
	tcase_add_test(ok, three_nodes_coordinator_apart);
	tcase_add_test(ok, bad_requests);
	tcase_add_test(fail, fail_refuse_prepare);
	tcase_add_test(fail, fail_prepare_lost);
	tcase_add_test(fail, fail_no_park);
	tcase_add_test(fail, fail_capture);
	tcase_add_test(fail, fail_load);
	tcase_add_test(fail, fail_silent_load);
	tcase_add_test(fail, fail_state_after_abort);
	tcase_add_test(fail, fail_abort_while_loading);
	tcase_add_test(fail, fail_silent_resume);
	tcase_add_test(fail, fail_done_lost);
	tcase_add_test(fail, stopping_everywhere);
	tcase_add_test(fail, target_gives_up);
	tcase_add_test(fail, stale_messages);
	tcase_add_test(fail, place_generations);
	tcase_add_test(rnd_tc, random_with_interrupts);
	tcase_set_timeout(rnd_tc, 120);
	tcase_add_test(wire, wire_round_trips);
	tcase_add_test(wire, wire_rejects_fields);
	tcase_add_test(wire, wire_random_bytes);
	tcase_add_test(wire, names);
	tcase_add_test(wire, config_checks);
	suite_add_tcase(s, ok);
	suite_add_tcase(s, fail);
	suite_add_tcase(s, rnd_tc);
	suite_add_tcase(s, wire);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(migrate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
