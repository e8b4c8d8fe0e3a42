/* Interrupts between nodes: the wire codec (round trips, every malformed
 * variant refused) and two nodes in one process, each with its own router
 * and irq_remote, wired to each other through in-process hooks (directly,
 * or through a queue the test pumps to play with latency). */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpu/irq_remote.h"
#include "vcpu/lapic.h"

#define NV 4
#define EN (APIC_ADDR_HW_ENABLED | APIC_ADDR_SW_ENABLED)
#define QMAX 256

static const uint8_t placement[NV] = { 0, 0, 1, 1 };

struct cluster;

struct node {
	struct cluster *c;
	unsigned id;
	struct irq_router *r;
	struct irq_remote *ir;
	struct lapic *lapics; /* NULL: record hits only */
	int hits[NV];
	struct apic_msg last[NV];
	int eois;
	uint8_t last_eoi;
	int errors;
	char last_err[256];
	bool fail_send;
};

struct qmsg {
	unsigned from, to, type;
	size_t len;
	uint8_t buf[64];
};

struct cluster {
	struct node n[2];
	bool queued;
	pthread_mutex_t qlock;
	struct qmsg q[QMAX];
	int qhead, qn;
	int foreign_hits; /* a node's deliver hook saw a vCPU it does not run */
};

static int t_send(void *ctx, unsigned node, unsigned type, const void *buf,
		  size_t len)
{
	struct node *self = ctx;
	struct cluster *c = self->c;

	ck_assert_uint_lt(node, 2);
	ck_assert_uint_ne(node, self->id);
	if (self->fail_send)
		return -1;
	if (!c->queued)
		return irq_remote__handle(c->n[node].ir, self->id, type, buf,
					  len) ? -1 : 0;
	pthread_mutex_lock(&c->qlock);
	ck_assert_int_lt(c->qn, QMAX);
	ck_assert_uint_le(len, sizeof(c->q[0].buf));
	{
		struct qmsg *m = &c->q[(c->qhead + c->qn) % QMAX];

		m->from = self->id;
		m->to = node;
		m->type = type;
		m->len = len;
		memcpy(m->buf, buf, len);
	}
	c->qn++;
	pthread_mutex_unlock(&c->qlock);
	return 0;
}

/* Delivers queued messages in order (per pair FIFO, as the transport). */
static int pump(struct cluster *c)
{
	int done = 0;

	for (;;) {
		struct qmsg m;

		pthread_mutex_lock(&c->qlock);
		if (!c->qn) {
			pthread_mutex_unlock(&c->qlock);
			return done;
		}
		m = c->q[c->qhead];
		c->qhead = (c->qhead + 1) % QMAX;
		c->qn--;
		pthread_mutex_unlock(&c->qlock);
		ck_assert_int_eq(irq_remote__handle(c->n[m.to].ir, m.from,
						    m.type, m.buf, m.len), 0);
		done++;
	}
}

static void t_deliver(void *ctx, int vcpu, const struct apic_msg *m)
{
	struct node *self = ctx;

	if (placement[vcpu] != self->id) {
		self->c->foreign_hits++;
		return;
	}
	self->hits[vcpu]++;
	self->last[vcpu] = *m;
	if (self->lapics)
		lapic__accept(&self->lapics[vcpu], m);
}

static void t_eoi(void *ctx, uint8_t vector)
{
	struct node *self = ctx;

	self->eois++;
	self->last_eoi = vector;
}

static void t_error(void *ctx, unsigned node, const char *what)
{
	struct node *self = ctx;

	self->errors++;
	snprintf(self->last_err, sizeof(self->last_err), "%s", what);
}

static struct cluster *cluster_new(void)
{
	struct cluster *c = calloc(1, sizeof(*c));

	pthread_mutex_init(&c->qlock, NULL);
	for (unsigned i = 0; i < 2; i++) {
		struct node *n = &c->n[i];
		struct irq_remote_config cfg = {
			.self = i, .nr_nodes = 2, .vcpu_node = placement,
			.ioapic_node = 0,
			.ops = { .ctx = n, .send = t_send, .eoi_level = t_eoi,
				 .error = t_error },
		};

		n->c = c;
		n->id = i;
		n->r = irq_router__new(NV, t_deliver, n);
		ck_assert_ptr_nonnull(n->r);
		cfg.router = n->r;
		n->ir = irq_remote__new(&cfg);
		ck_assert_ptr_nonnull(n->ir);
	}
	return c;
}

static void cluster_free(struct cluster *c)
{
	for (int i = 0; i < 2; i++) {
		irq_remote__free(c->n[i].ir);
		irq_router__free(c->n[i].r);
	}
	pthread_mutex_destroy(&c->qlock);
	free(c);
}

/* The node running vcpu publishes addr, as its LAPIC would. */
static void publish(struct cluster *c, int vcpu, const struct apic_addr *a)
{
	struct node *n = &c->n[placement[vcpu]];
	char err[128];

	irq_remote__local_addr(n->ir, vcpu, a);
	ck_assert_int_eq(irq_remote__flush(n->ir, vcpu, 1000, err,
					   sizeof(err)), 0);
}

static void xapic_addrs(struct cluster *c, bool flat)
{
	for (int i = 0; i < NV; i++) {
		struct apic_addr a = { .apic_id = (uint32_t)i, .enabled = EN,
				       .dfr_flat = flat };

		a.ldr = flat ? (1u << i) << 24
			     : (uint32_t)(((1 + i / 2) << 4) | (1 << (i % 2)))
				       << 24;
		publish(c, i, &a);
	}
}

/* Sends m from node `from`, returns the set of vCPUs that got it,
 * checking nobody got it twice and the router's count agrees. */
static unsigned targets(struct cluster *c, unsigned from,
			const struct apic_msg *m)
{
	unsigned mask = 0;
	int n, total = 0;

	for (int i = 0; i < 2; i++)
		memset(c->n[i].hits, 0, sizeof(c->n[i].hits));
	n = irq_router__deliver(c->n[from].r, m);
	if (c->queued)
		pump(c);
	for (int i = 0; i < NV; i++) {
		int h = c->n[0].hits[i] + c->n[1].hits[i];

		ck_assert_int_le(h, 1);
		total += h;
		if (h)
			mask |= 1u << i;
	}
	ck_assert_int_eq(n, total);
	ck_assert_int_eq(c->foreign_hits, 0);
	ck_assert_int_eq(c->n[0].errors + c->n[1].errors, 0);
	return mask;
}

static struct apic_msg msg(uint32_t dest, bool logical, int source)
{
	struct apic_msg m = { .dest = dest, .vector = 0x40, .source = source,
			      .dest_logical = logical, .level = 1 };
	return m;
}

/* ---- wire ---- */

START_TEST(wire_round_trips)
{
	static const int sizes[] = { 1, 4, 8, 9, 64, 1000 };
	uint8_t buf[IRQ_REMOTE_DELIVER_SIZE(1000)], bits[125];
	char err[128];

	for (size_t k = 0; k < sizeof(sizes) / sizeof(sizes[0]); k++) {
		int nv = sizes[k];
		struct apic_msg m = { .dest = 0xDEADBEEF, .source = nv - 1,
				      .vector = 0xEF, .delivery = APIC_DM_SIPI,
				      .dest_logical = 1, .shorthand = 3,
				      .level = 1, .trigger_level = 1,
				      .x2apic = 1 }, out;
		const uint8_t *t;

		memset(bits, 0, sizeof(bits));
		bits[(nv - 1) / 8] |= (uint8_t)(1u << ((nv - 1) % 8));
		bits[0] |= 1;
		ck_assert_int_eq(irq_remote__encode_deliver(buf, sizeof(buf), &m,
							    bits, nv),
				 (int)IRQ_REMOTE_DELIVER_SIZE(nv));
		ck_assert_int_eq(irq_remote__decode_deliver(
					 buf, IRQ_REMOTE_DELIVER_SIZE(nv), nv,
					 &out, &t, err, sizeof(err)), 0);
		ck_assert_mem_eq(&out, &m, sizeof(m));
		ck_assert_mem_eq(t, bits, IRQ_TARGETS_BYTES(nv));
		/* Too small a buffer is refused, not overrun. */
		ck_assert_int_eq(irq_remote__encode_deliver(
					 buf, IRQ_REMOTE_DELIVER_SIZE(nv) - 1,
					 &m, bits, nv), -1);
	}
	{
		struct apic_addr a = { .apic_id = 0x12345678, .ldr = 0x00030004,
				       .dfr_flat = 0, .x2apic = 1, .enabled = EN,
				       .ppr = 0x9A }, out;
		uint32_t seq;
		int v;

		ck_assert_int_eq(irq_remote__encode_addr(buf, sizeof(buf), 513,
							 77, &a),
				 IRQ_REMOTE_ADDR_SIZE);
		/* Little-endian on the wire, whatever the host. */
		ck_assert_uint_eq(buf[0], 0x01);
		ck_assert_uint_eq(buf[1], 0x02);
		ck_assert_uint_eq(buf[8], 0x78);
		ck_assert_int_eq(irq_remote__decode_addr(buf,
							 IRQ_REMOTE_ADDR_SIZE,
							 &v, &seq, &out, err,
							 sizeof(err)), 0);
		ck_assert_int_eq(v, 513);
		ck_assert_uint_eq(seq, 77);
		ck_assert_mem_eq(&out, &a, sizeof(a));
		ck_assert_int_eq(irq_remote__encode_ack(buf, sizeof(buf), 3, 9),
				 IRQ_REMOTE_ACK_SIZE);
		ck_assert_int_eq(irq_remote__decode_ack(buf, IRQ_REMOTE_ACK_SIZE,
							&v, &seq, err,
							sizeof(err)), 0);
		ck_assert_int_eq(v, 3);
		ck_assert_uint_eq(seq, 9);
	}
	{
		uint8_t vec;
		int v;

		ck_assert_int_eq(irq_remote__encode_eoi(buf, sizeof(buf), 2,
							0x91),
				 IRQ_REMOTE_EOI_SIZE);
		ck_assert_int_eq(irq_remote__decode_eoi(buf, IRQ_REMOTE_EOI_SIZE,
							&v, &vec, err,
							sizeof(err)), 0);
		ck_assert_int_eq(v, 2);
		ck_assert_uint_eq(vec, 0x91);
		ck_assert_int_eq(irq_remote__encode_eoi(buf, 3, 2, 0x91), -1);
		ck_assert_int_eq(irq_remote__encode_ack(buf, 8, -1, 1), -1);
	}
}
END_TEST

static int dec_deliver(const uint8_t *b, size_t len, int nv)
{
	struct apic_msg m;
	const uint8_t *t;
	char err[128] = "";
	int r = irq_remote__decode_deliver(b, len, nv, &m, &t, err,
					   sizeof(err));

	if (r)
		ck_assert(err[0]); /* always says why */
	return r;
}

START_TEST(wire_rejects_deliver)
{
	const int nv = 12;
	const size_t size = IRQ_REMOTE_DELIVER_SIZE(nv);
	struct apic_msg m = msg(3, false, 1);
	uint8_t good[64], b[64], bits[2] = { 0x08, 0 };

	ck_assert_int_eq(irq_remote__encode_deliver(good, sizeof(good), &m,
						    bits, nv), (int)size);
	ck_assert_int_eq(dec_deliver(good, size, nv), 0);
	for (size_t len = 0; len < size; len++)
		ck_assert_int_eq(dec_deliver(good, len, nv), -EPROTO);
	ck_assert_int_eq(dec_deliver(good, size + 1, nv), -EPROTO);
	ck_assert_int_eq(dec_deliver(NULL, size, nv), -EPROTO);
	/* A receiver with another vCPU count. */
	ck_assert_int_eq(dec_deliver(good, size, nv + 1), -EPROTO);
	ck_assert_int_eq(dec_deliver(good, size, 16), -EPROTO);
	/* Every header byte that has a constraint, set to a bad value. */
	{
		static const struct { int off; uint8_t val; } bad[] = {
			{ 9, 3 }, { 9, APIC_DM_EXTINT }, { 9, 8 }, { 9, 0xFF },
			{ 10, 2 }, { 11, 4 }, { 12, 2 }, { 13, 7 }, { 14, 2 },
			{ 15, 1 }, { 16, 13 }, { 17, 1 }, { 18, 1 }, { 19, 0x80 },
			/* source 12 (out of range) and -2 */
			{ 4, 12 }, { 4, 0xFE },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memcpy(b, good, size);
			b[bad[i].off] = bad[i].val;
			if (bad[i].off == 4 && bad[i].val == 0xFE)
				memset(b + 5, 0xFF, 3);
			ck_assert_msg(dec_deliver(b, size, nv) == -EPROTO,
				      "byte %d = 0x%x accepted", bad[i].off,
				      bad[i].val);
		}
	}
	/* Source -1 (IOAPIC) is fine. */
	memcpy(b, good, size);
	memset(b + 4, 0xFF, 4);
	ck_assert_int_eq(dec_deliver(b, size, nv), 0);
	/* Targets: none, beyond nr_vcpus, two for lowest priority. */
	memcpy(b, good, size);
	b[20] = b[21] = 0;
	ck_assert_int_eq(dec_deliver(b, size, nv), -EPROTO);
	b[21] = 0x10; /* vCPU 12 */
	ck_assert_int_eq(dec_deliver(b, size, nv), -EPROTO);
	b[21] = 0x80;
	ck_assert_int_eq(dec_deliver(b, size, nv), -EPROTO);
	b[21] = 0x08; /* vCPU 11: fine */
	ck_assert_int_eq(dec_deliver(b, size, nv), 0);
	b[20] = 0x01;
	b[9] = APIC_DM_LOWEST;
	ck_assert_int_eq(dec_deliver(b, size, nv), -EPROTO);
	b[20] = 0;
	ck_assert_int_eq(dec_deliver(b, size, nv), 0);
	/* Vector is the LAPIC's business (it flags illegal ones itself). */
	b[8] = 3;
	ck_assert_int_eq(dec_deliver(b, size, nv), 0);
}
END_TEST

START_TEST(wire_rejects_small)
{
	struct apic_addr a = { .apic_id = 2, .ldr = 4u << 24, .dfr_flat = 1,
			       .enabled = EN }, o;
	uint8_t good[32], b[32], vec;
	char err[128];
	uint32_t seq;
	int v;

	irq_remote__encode_addr(good, sizeof(good), 2, 5, &a);
	for (size_t len = 0; len <= IRQ_REMOTE_ADDR_SIZE + 1; len++)
		ck_assert_int_eq(irq_remote__decode_addr(good, len, &v, &seq, &o,
							 err, sizeof(err)),
				 len == IRQ_REMOTE_ADDR_SIZE ? 0 : -EPROTO);
	{
		static const struct { int off; uint8_t val; } bad[] = {
			{ 2, 1 }, { 3, 1 }, { 16, 2 }, { 17, 2 }, { 18, 2 },
			{ 18, 4 }, { 18, 0xFF },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memcpy(b, good, sizeof(b));
			b[bad[i].off] = bad[i].val;
			ck_assert_int_eq(irq_remote__decode_addr(
						 b, IRQ_REMOTE_ADDR_SIZE, &v,
						 &seq, &o, err, sizeof(err)),
					 -EPROTO);
		}
	}
	/* seq 0 is never sent; x2APIC mode needs the global enable. */
	memcpy(b, good, sizeof(b));
	memset(b + 4, 0, 4);
	ck_assert_int_eq(irq_remote__decode_addr(b, IRQ_REMOTE_ADDR_SIZE, &v,
						 &seq, &o, err, sizeof(err)),
			 -EPROTO);
	memcpy(b, good, sizeof(b));
	b[17] = 1;
	b[18] = 0;
	ck_assert_int_eq(irq_remote__decode_addr(b, IRQ_REMOTE_ADDR_SIZE, &v,
						 &seq, &o, err, sizeof(err)),
			 -EPROTO);
	b[18] = APIC_ADDR_HW_ENABLED; /* x2APIC, software-disabled: fine */
	ck_assert_int_eq(irq_remote__decode_addr(b, IRQ_REMOTE_ADDR_SIZE, &v,
						 &seq, &o, err, sizeof(err)), 0);

	irq_remote__encode_ack(good, sizeof(good), 1, 4);
	for (size_t len = 0; len <= IRQ_REMOTE_ACK_SIZE + 1; len++)
		ck_assert_int_eq(irq_remote__decode_ack(good, len, &v, &seq, err,
							sizeof(err)),
				 len == IRQ_REMOTE_ACK_SIZE ? 0 : -EPROTO);
	memcpy(b, good, sizeof(b));
	b[2] = 1;
	ck_assert_int_eq(irq_remote__decode_ack(b, IRQ_REMOTE_ACK_SIZE, &v,
						&seq, err, sizeof(err)), -EPROTO);
	memcpy(b, good, sizeof(b));
	memset(b + 4, 0, 4);
	ck_assert_int_eq(irq_remote__decode_ack(b, IRQ_REMOTE_ACK_SIZE, &v,
						&seq, err, sizeof(err)), -EPROTO);

	irq_remote__encode_eoi(good, sizeof(good), 1, 0x30);
	for (size_t len = 0; len <= IRQ_REMOTE_EOI_SIZE + 1; len++)
		ck_assert_int_eq(irq_remote__decode_eoi(good, len, &v, &vec, err,
							sizeof(err)),
				 len == IRQ_REMOTE_EOI_SIZE ? 0 : -EPROTO);
	memcpy(b, good, sizeof(b));
	b[3] = 1;
	ck_assert_int_eq(irq_remote__decode_eoi(b, IRQ_REMOTE_EOI_SIZE, &v,
						&vec, err, sizeof(err)), -EPROTO);
	b[3] = 0;
	b[2] = 15;
	ck_assert_int_eq(irq_remote__decode_eoi(b, IRQ_REMOTE_EOI_SIZE, &v,
						&vec, err, sizeof(err)), -EPROTO);
}
END_TEST

/* ---- two nodes ---- */

START_TEST(cluster_xapic_modes)
{
	struct cluster *c = cluster_new();
	struct apic_msg m;

	xapic_addrs(c, true);
	/* Both routers hold the same facts. */
	for (int i = 0; i < NV; i++) {
		struct apic_addr a0, a1;

		irq_router__get_addr(c->n[0].r, i, &a0);
		irq_router__get_addr(c->n[1].r, i, &a1);
		ck_assert_mem_eq(&a0, &a1, sizeof(a0));
		ck_assert_uint_eq(a0.apic_id, (uint32_t)i);
	}
	for (unsigned from = 0; from < 2; from++) {
		for (uint32_t id = 0; id < NV; id++) {
			m = msg(id, false, (int)from * 2);
			ck_assert_uint_eq(targets(c, from, &m), 1u << id);
		}
		m = msg(0xFF, false, -1);
		ck_assert_uint_eq(targets(c, from, &m), 0xF);
		m = msg(0x0A, true, (int)from * 2); /* vCPUs 1 and 3 */
		ck_assert_uint_eq(targets(c, from, &m), 0xA);
		m = msg(0x0C, true, (int)from * 2); /* both on node 1 */
		ck_assert_uint_eq(targets(c, from, &m), 0xC);
		m = msg(0xF0, true, -1);
		ck_assert_uint_eq(targets(c, from, &m), 0);
	}
	/* One message per node however many targets there. */
	{
		struct irq_remote_stats s0, s1;

		irq_remote__get_stats(c->n[0].ir, &s0);
		m = msg(0x0C, true, 0);
		targets(c, 0, &m);
		irq_remote__get_stats(c->n[0].ir, &s1);
		ck_assert_uint_eq(s1.deliver_out - s0.deliver_out, 1);
	}
	/* The message arrives whole. */
	m = msg(3, false, 1);
	m.vector = 0x77;
	m.trigger_level = 1;
	targets(c, 0, &m);
	ck_assert_mem_eq(&c->n[1].last[3], &m, sizeof(m));

	/* Cluster model. */
	xapic_addrs(c, false);
	m = msg(0x13, true, 0); /* cluster 1: vCPUs 0, 1 */
	ck_assert_uint_eq(targets(c, 0, &m), 0x3);
	m = msg(0x23, true, 0); /* cluster 2: vCPUs 2, 3 */
	ck_assert_uint_eq(targets(c, 0, &m), 0xC);
	m = msg(0x22, true, 3);
	ck_assert_uint_eq(targets(c, 1, &m), 0x8);
	m = msg(0x21, true, 0);
	ck_assert_uint_eq(targets(c, 0, &m), 0x4);
	m = msg(0x14, true, 2);
	ck_assert_uint_eq(targets(c, 1, &m), 0);

	/* Shorthands from either side: self is the sender's own vCPU. */
	for (int src = 0; src < NV; src++) {
		unsigned from = placement[src];

		m = msg(0, false, src);
		m.shorthand = APIC_SH_SELF;
		ck_assert_uint_eq(targets(c, from, &m), 1u << src);
		m.shorthand = APIC_SH_ALL_INCL_SELF;
		ck_assert_uint_eq(targets(c, from, &m), 0xF);
		m.shorthand = APIC_SH_ALL_EXCL_SELF;
		ck_assert_uint_eq(targets(c, from, &m), 0xF & ~(1u << src));
	}
	cluster_free(c);
}
END_TEST

START_TEST(cluster_x2apic)
{
	struct cluster *c = cluster_new();
	static const uint32_t ids[NV] = { 0x1, 0x2, 0x11, 0x12345 };
	struct apic_msg m;

	for (int i = 0; i < NV; i++) {
		struct apic_addr a = {
			.apic_id = ids[i], .x2apic = 1, .enabled = EN,
			.ldr = ((ids[i] >> 4) << 16) | (1u << (ids[i] & 0xF)),
		};
		publish(c, i, &a);
	}
	for (unsigned from = 0; from < 2; from++) {
		for (int i = 0; i < NV; i++) {
			m = msg(ids[i], false, (int)from * 2);
			m.x2apic = 1;
			ck_assert_uint_eq(targets(c, from, &m), 1u << i);
		}
		m = msg(0x12, false, -1);
		m.x2apic = 1;
		ck_assert_uint_eq(targets(c, from, &m), 0);
		m = msg(0xFFFFFFFF, false, -1);
		m.x2apic = 1;
		ck_assert_uint_eq(targets(c, from, &m), 0xF);
		m = msg(0x00000006, true, -1); /* cluster 0, 1 and 2 */
		m.x2apic = 1;
		ck_assert_uint_eq(targets(c, from, &m), 0x3);
		m = msg(0x00010002, true, -1); /* cluster 1, member 1 */
		m.x2apic = 1;
		ck_assert_uint_eq(targets(c, from, &m), 0x4);
		m = msg(0x12340020, true, -1);
		m.x2apic = 1;
		ck_assert_uint_eq(targets(c, from, &m), 0x8);
	}
	cluster_free(c);
}
END_TEST

static void set_ppr(struct cluster *c, int vcpu, uint8_t ppr)
{
	struct apic_addr a;

	irq_router__get_addr(c->n[placement[vcpu]].r, vcpu, &a);
	a.ppr = ppr;
	publish(c, vcpu, &a);
}

static int only_target(unsigned mask)
{
	ck_assert_int_eq(__builtin_popcount(mask), 1);
	return __builtin_ctz(mask);
}

START_TEST(cluster_lowest_priority)
{
	struct cluster *c = cluster_new();
	struct apic_msg m = msg(0xFF, false, -1);
	struct irq_remote_stats s0, s1;
	int seen[NV] = { 0 };

	xapic_addrs(c, true);
	m.delivery = APIC_DM_LOWEST;
	/* Local vCPUs that can take it win, lowest PPR, rotating. */
	set_ppr(c, 0, 0x20);
	set_ppr(c, 1, 0x10);
	ck_assert_uint_eq(targets(c, 0, &m), 0x2);
	ck_assert_uint_eq(targets(c, 0, &m), 0x2);
	set_ppr(c, 0, 0x10);
	ck_assert_uint_ne(targets(c, 0, &m), targets(c, 0, &m));
	/* A PPR change is not worth a message. */
	irq_remote__get_stats(c->n[0].ir, &s0);
	set_ppr(c, 1, 0x30);
	irq_remote__get_stats(c->n[0].ir, &s1);
	ck_assert_uint_eq(s1.addr_out, s0.addr_out);
	/* Both local ones blocked (PPR class >= the vector's): a remote one,
	 * the two taking turns, and each exactly once per message. */
	set_ppr(c, 0, 0x40);
	set_ppr(c, 1, 0x41);
	for (int k = 0; k < 20; k++)
		seen[only_target(targets(c, 0, &m))]++;
	ck_assert_int_eq(seen[0] + seen[1], 0);
	ck_assert_int_eq(seen[2], 10);
	ck_assert_int_eq(seen[3], 10);
	/* Sent from node 1, whose vCPUs can take it: stays on node 1. */
	memset(seen, 0, sizeof(seen));
	for (int k = 0; k < 10; k++)
		seen[only_target(targets(c, 1, &m))]++;
	ck_assert_int_eq(seen[2] + seen[3], 10);
	ck_assert_int_gt(seen[2], 0);
	ck_assert_int_gt(seen[3], 0);
	/* Logical set {0, 1} on node 0, all blocked: the lowest PPR still
	 * takes it, sent from node 1 across the wire. */
	m = msg(0x03, true, 2);
	m.delivery = APIC_DM_LOWEST;
	ck_assert_uint_eq(targets(c, 1, &m), 0x1);
	/* A set on node 1 only, sent from node 0: exactly one of them. */
	m = msg(0x0C, true, 0);
	m.delivery = APIC_DM_LOWEST;
	for (int k = 0; k < 6; k++) {
		int t = only_target(targets(c, 0, &m));

		ck_assert(t == 2 || t == 3);
	}
	cluster_free(c);
}
END_TEST

/* Real LAPICs on both nodes: the BSP (vCPU 0, node 0) starts the APs with
 * INIT/SIPI, sends NMI and IPIs; an AP on node 1 goes x2APIC and ends a
 * level-triggered interrupt whose IOAPIC lives on node 0. */
struct lctx {
	struct cluster *c;
	int vcpu;
};

static void l_send(void *ctx, const struct apic_msg *m)
{
	struct lctx *x = ctx;

	irq_router__deliver(x->c->n[placement[x->vcpu]].r, m);
}

static void l_addr(void *ctx, const struct apic_addr *a)
{
	struct lctx *x = ctx;

	irq_remote__local_addr(x->c->n[placement[x->vcpu]].ir, x->vcpu, a);
}

static void l_eoi(void *ctx, uint8_t vector)
{
	struct lctx *x = ctx;

	irq_remote__eoi_level(x->c->n[placement[x->vcpu]].ir, x->vcpu, vector);
}

static void wr(struct lapic *l, uint32_t reg, uint32_t v)
{
	lapic__mmio(l, reg, (uint8_t *)&v, 4, true);
}

static void flush_all(struct cluster *c)
{
	char err[128];

	for (int i = 0; i < NV; i++)
		ck_assert_int_eq(irq_remote__flush(c->n[placement[i]].ir, i,
						   1000, err, sizeof(err)), 0);
}

START_TEST(cluster_lapics_init_sipi_nmi)
{
	struct cluster *c = cluster_new();
	struct lapic *l = calloc(NV, sizeof(*l));
	struct lctx x[NV];
	char err[128];
	int vec;

	for (int i = 0; i < NV; i++) {
		struct lapic_env env = { .ctx = &x[i], .send_ipi = l_send,
					 .addr_changed = l_addr,
					 .eoi_level = l_eoi };

		x[i].c = c;
		x[i].vcpu = i;
		lapic__init(&l[i], (uint32_t)i, i == 0, &env);
	}
	c->n[0].lapics = l;
	c->n[1].lapics = l;
	/* Startup: nobody knows the other node's vCPUs yet. */
	ck_assert_int_eq(irq_remote__wait_known(c->n[0].ir, 20, err,
						sizeof(err)), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err, "vCPU 2 from node 1"));
	ck_assert_int_eq(irq_remote__announce(c->n[1].ir, err, sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__announce(c->n[0].ir, err, sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__wait_known(c->n[0].ir, 1000, err,
						sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__wait_known(c->n[1].ir, 1000, err,
						sizeof(err)), 0);

	/* INIT and SIPI to everyone else, as Linux's BSP; then an NMI to
	 * vCPU 3 by physical ID. */
	wr(&l[0], LAPIC_REG_SVR, 0x1FF);
	flush_all(c);
	wr(&l[0], LAPIC_REG_ICR_LO, (APIC_SH_ALL_EXCL_SELF << 18) | 0x4500);
	wr(&l[0], LAPIC_REG_ICR_LO, (APIC_SH_ALL_EXCL_SELF << 18) | 0x0699);
	wr(&l[0], LAPIC_REG_ICR_HI, 3u << 24);
	wr(&l[0], LAPIC_REG_ICR_LO, 0x0400);
	ck_assert(!lapic__has_events(&l[0]));
	for (int i = 1; i < NV; i++) {
		struct lapic_events ev = lapic__take_events(&l[i]);

		ck_assert(ev.init && ev.sipi);
		ck_assert_uint_eq(ev.sipi_vector, 0x99);
		ck_assert(ev.nmi == (i == 3));
		/* Software-disabled APs take no fixed interrupts. */
		ck_assert_int_eq(lapic__pending_intr(&l[i], &vec),
				 LAPIC_INTR_NONE);
	}
	/* INIT reset an AP: it republishes, flush sends it. */
	lapic__init_reset(&l[2]);
	flush_all(c);

	/* AP 3 (node 1) enables itself and goes x2APIC; node 0 learns it. */
	lapic__msr_write(&l[3], MSR_IA32_APICBASE,
			 LAPIC_DEFAULT_BASE | APIC_BASE_EN | APIC_BASE_EXTD);
	lapic__msr_write(&l[3], MSR_X2APIC_FIRST + 0xF, 0x1FF);
	flush_all(c);
	{
		struct apic_addr a;

		irq_router__get_addr(c->n[0].r, 3, &a);
		ck_assert_uint_eq(a.x2apic, 1);
		ck_assert_uint_eq(a.enabled, EN);
		ck_assert_uint_eq(a.ldr, (0u << 16) | (1u << 3));
	}
	wr(&l[0], LAPIC_REG_ICR_HI, 3u << 24);
	wr(&l[0], LAPIC_REG_ICR_LO, 0x0061);
	ck_assert_int_eq(lapic__pending_intr(&l[3], &vec), LAPIC_INTR_VECTOR);
	ck_assert_int_eq(vec, 0x61);
	lapic__intr_injected(&l[3], vec);
	lapic__msr_write(&l[3], MSR_X2APIC_FIRST + (LAPIC_REG_EOI >> 4), 0);
	ck_assert_int_eq(c->n[0].eois, 0); /* edge: no EOI message */
	/* x2APIC IPI back from vCPU 3 to the BSP (physical ID 0). */
	lapic__msr_write(&l[3], MSR_X2APIC_FIRST + (LAPIC_REG_ICR_LO >> 4),
			 0x0062);
	ck_assert_int_eq(lapic__pending_intr(&l[0], &vec), LAPIC_INTR_VECTOR);
	ck_assert_int_eq(vec, 0x62);

	/* A level-triggered IOAPIC interrupt to vCPU 3; its EOI travels to
	 * node 0, where the IOAPIC is. */
	{
		struct apic_msg m = msg(3, false, -1);

		m.vector = 0x55;
		m.trigger_level = 1;
		m.x2apic = 0;
		ck_assert_uint_eq(targets(c, 0, &m), 0x8);
		ck_assert_int_eq(lapic__pending_intr(&l[3], &vec),
				 LAPIC_INTR_VECTOR);
		ck_assert_int_eq(vec, 0x55);
		lapic__intr_injected(&l[3], vec);
		lapic__msr_write(&l[3],
				 MSR_X2APIC_FIRST + (LAPIC_REG_EOI >> 4), 0);
		ck_assert_int_eq(c->n[0].eois, 1);
		ck_assert_uint_eq(c->n[0].last_eoi, 0x55);
		ck_assert_int_eq(c->n[1].eois, 0);
	}
	/* A level EOI on node 0 itself goes straight to the hook. */
	irq_remote__eoi_level(c->n[0].ir, 1, 0x66);
	ck_assert_int_eq(c->n[0].eois, 2);
	ck_assert_uint_eq(c->n[0].last_eoi, 0x66);
	ck_assert_int_eq(c->n[0].errors + c->n[1].errors, 0);
	for (int i = 0; i < NV; i++)
		lapic__destroy(&l[i]);
	cluster_free(c);
	free(l);
}
END_TEST

/* The race of irq_remote.h: vCPU 2 (node 1) changes its LDR while vCPU 0
 * (node 0) sends a logical IPI by the old one.  The IPI names vCPU 2 by
 * index, so vCPU 2 takes it; once the update is applied, only the new LDR
 * matches.  The queue stands for the network's latency. */
START_TEST(cluster_ldr_race)
{
	struct cluster *c = cluster_new();
	struct apic_addr a;
	struct apic_msg m;
	char err[128];

	xapic_addrs(c, true);
	c->queued = true;
	irq_router__get_addr(c->n[1].r, 2, &a);
	a.ldr = 0x40u << 24;
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 2, 0, err, sizeof(err)),
			 0);
	/* Node 1 routes by the new LDR at once, node 0 not yet. */
	m = msg(0x40, true, 3);
	for (int i = 0; i < 2; i++)
		memset(c->n[i].hits, 0, sizeof(c->n[i].hits));
	ck_assert_int_eq(irq_router__deliver(c->n[1].r, &m), 1);
	ck_assert_int_eq(c->n[1].hits[2], 1);
	m = msg(0x04, true, 0);
	ck_assert_int_eq(irq_router__deliver(c->n[0].r, &m), 1);
	ck_assert_int_eq(c->n[1].hits[2], 1); /* still in flight */
	/* The update and the IPI arrive (update first, FIFO from node 1;
	 * the IPI comes from node 0): vCPU 2 takes the old-LDR IPI. */
	ck_assert_int_eq(pump(c), 3); /* update, IPI, ack */
	ck_assert_int_eq(c->n[1].hits[2], 2);
	ck_assert_int_eq(c->n[1].last[2].dest, 0x04);
	m = msg(0x04, true, 0);
	ck_assert_uint_eq(targets(c, 0, &m), 0);
	m = msg(0x40, true, 0);
	ck_assert_uint_eq(targets(c, 0, &m), 0x4);
	/* Two updates in flight apply in order: the last one wins. */
	a.ldr = 0x10u << 24;
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	irq_remote__flush(c->n[1].ir, 2, 0, err, sizeof(err));
	a.ldr = 0x20u << 24;
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	irq_remote__flush(c->n[1].ir, 2, 0, err, sizeof(err));
	ck_assert_int_eq(pump(c), 4);
	irq_router__get_addr(c->n[0].r, 2, &a);
	ck_assert_uint_eq(a.ldr, 0x20u << 24);
	ck_assert_int_eq(c->n[0].errors + c->n[1].errors, 0);
	cluster_free(c);
}
END_TEST

/* flush waits for every node's ack; a node that never answers is named. */
struct pumper {
	struct cluster *c;
	atomic_bool stop;
	int delay_us;
};

static void *pump_thread(void *arg)
{
	struct pumper *p = arg;
	const struct timespec ts = { 0, 1000L * p->delay_us };

	while (!atomic_load(&p->stop)) {
		nanosleep(&ts, NULL);
		pump(p->c);
	}
	return NULL;
}

struct flusher {
	struct irq_remote *ir;
	int vcpu;
	int ret;
};

static void *flusher_thread(void *arg)
{
	struct flusher *f = arg;
	char err[128];

	f->ret = irq_remote__flush(f->ir, f->vcpu, 60000, err, sizeof(err));
	return NULL;
}

START_TEST(cluster_flush_waits_for_ack)
{
	struct cluster *c = cluster_new();
	struct pumper p = { .c = c, .delay_us = 20000 };
	struct irq_remote_stats s;
	struct apic_addr a = { .apic_id = 2, .enabled = EN, .dfr_flat = 1,
			       .ldr = 0x04u << 24 };
	struct timespec t0, t1;
	pthread_t th;
	char err[128];

	c->queued = true;
	pthread_create(&th, NULL, pump_thread, &p);
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 2, 2000, err,
					   sizeof(err)), 0);
	clock_gettime(CLOCK_MONOTONIC, &t1);
	/* It waited for the pump (20 ms), not returned at once. */
	ck_assert_int_ge((t1.tv_sec - t0.tv_sec) * 1000000000L +
				 (t1.tv_nsec - t0.tv_nsec), 10000000L);
	irq_remote__get_stats(c->n[1].ir, &s);
	ck_assert_uint_eq(s.acks_in, 1);
	irq_router__get_addr(c->n[0].r, 2, &a);
	ck_assert_uint_eq(a.ldr, 0x04u << 24);
	/* Nothing pending: returns at once without sending. */
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 2, 2000, err,
					   sizeof(err)), 0);
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	/* Nobody pumps: the ack never comes. */
	a.ldr = 0x08u << 24;
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 2, 30, err,
					   sizeof(err)), -ETIMEDOUT);
	ck_assert_ptr_nonnull(strstr(err, "node 0"));
	/* VM stop: a vCPU waiting for acks is let go at once. */
	{
		struct flusher f = { .ir = c->n[1].ir, .vcpu = 2 };
		pthread_t ft;
		struct timespec ts = { 0, 30000000L };

		a.ldr = 0x20u << 24;
		irq_remote__local_addr(c->n[1].ir, 2, &a);
		clock_gettime(CLOCK_MONOTONIC, &t0);
		pthread_create(&ft, NULL, flusher_thread, &f);
		nanosleep(&ts, NULL);
		irq_remote__abort(c->n[1].ir);
		pthread_join(ft, NULL);
		clock_gettime(CLOCK_MONOTONIC, &t1);
		ck_assert_int_eq(f.ret, -ECANCELED);
		ck_assert_int_lt(t1.tv_sec - t0.tv_sec, 5);
		ck_assert_int_eq(irq_remote__wait_known(c->n[1].ir, 60000, err,
							sizeof(err)),
				 -ETIMEDOUT);
	}
	c->queued = false;
	pump(c);
	/* A send failure is an error, reported. */
	c->n[1].fail_send = true;
	a.ldr = 0x10u << 24;
	irq_remote__local_addr(c->n[1].ir, 2, &a);
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 2, 30, err,
					   sizeof(err)), -EIO);
	ck_assert_int_eq(c->n[1].errors, 1);
	ck_assert_int_eq(irq_remote__flush(c->n[1].ir, 0, 30, err,
					   sizeof(err)), -EINVAL);
	cluster_free(c);
}
END_TEST

/* Startup: wait_known blocks until the other node's announce arrives. */
START_TEST(cluster_startup_wait)
{
	struct cluster *c = cluster_new();
	struct pumper p = { .c = c, .delay_us = 20000 };
	pthread_t th;
	char err[128];

	c->queued = true;
	/* The LAPICs publish at creation, before the transport is up. */
	for (int i = 0; i < NV; i++) {
		struct apic_addr a = { .apic_id = (uint32_t)i, .dfr_flat = 1,
				       .enabled = APIC_ADDR_HW_ENABLED };

		irq_remote__local_addr(c->n[placement[i]].ir, i, &a);
	}
	ck_assert_int_eq(pump(c), 0); /* nothing sent yet */
	ck_assert_int_eq(irq_remote__announce(c->n[0].ir, err, sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__announce(c->n[1].ir, err, sizeof(err)), 0);
	pthread_create(&th, NULL, pump_thread, &p);
	ck_assert_int_eq(irq_remote__wait_known(c->n[0].ir, 2000, err,
						sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__wait_known(c->n[1].ir, 2000, err,
						sizeof(err)), 0);
	atomic_store(&p.stop, true);
	pthread_join(th, NULL);
	pump(c);
	/* INIT by physical ID now reaches an AP on the other node. */
	c->queued = false;
	{
		struct apic_msg m = msg(3, false, 0);

		m.delivery = APIC_DM_INIT;
		ck_assert_uint_eq(targets(c, 0, &m), 0x8);
	}
	/* A node whose LAPICs never published cannot announce. */
	{
		struct cluster *c2 = cluster_new();

		ck_assert_int_eq(irq_remote__announce(c2->n[1].ir, err,
						      sizeof(err)), -EIO);
		ck_assert_ptr_nonnull(strstr(err, "vCPU 2"));
		cluster_free(c2);
	}
	cluster_free(c);
}
END_TEST

/* Semantically wrong messages: refused, reported, and nothing acted on. */
static void expect_reject(struct cluster *c, unsigned to, unsigned from,
			  unsigned type, const uint8_t *b, size_t len)
{
	int before = c->n[to].errors;
	struct irq_remote_stats s0, s1;

	irq_remote__get_stats(c->n[to].ir, &s0);
	ck_assert_int_eq(irq_remote__handle(c->n[to].ir, from, type, b, len),
			 -EPROTO);
	irq_remote__get_stats(c->n[to].ir, &s1);
	ck_assert_int_eq(c->n[to].errors, before + 1);
	ck_assert_uint_eq(s1.rejected, s0.rejected + 1);
	ck_assert_uint_eq(s1.deliver_in, s0.deliver_in);
	ck_assert_uint_eq(s1.addr_in, s0.addr_in);
	ck_assert_uint_eq(s1.eoi_in, s0.eoi_in);
	ck_assert_uint_eq(s1.acks_in, s0.acks_in);
}

START_TEST(handle_rejects)
{
	struct cluster *c = cluster_new();
	struct apic_msg m = msg(0, false, -1);
	struct apic_addr a = { .apic_id = 9, .enabled = EN }, cur;
	uint8_t b[64], bits[1];
	int len;

	xapic_addrs(c, true);
	for (int i = 0; i < 2; i++)
		memset(c->n[i].hits, 0, sizeof(c->n[i].hits));
	/* Deliver to vCPU 0, which node 1 does not run. */
	bits[0] = 0x1;
	len = irq_remote__encode_deliver(b, sizeof(b), &m, bits, NV);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_DELIVER, b, (size_t)len);
	/* Mixed: one local and one foreign target. */
	bits[0] = 0x5;
	len = irq_remote__encode_deliver(b, sizeof(b), &m, bits, NV);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_DELIVER, b, (size_t)len);
	/* Source vCPU 2 does not run on the sender (node 0). */
	m.source = 2;
	bits[0] = 0x8;
	len = irq_remote__encode_deliver(b, sizeof(b), &m, bits, NV);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_DELIVER, b, (size_t)len);
	/* Truncated, through handle. */
	m.source = 0;
	len = irq_remote__encode_deliver(b, sizeof(b), &m, bits, NV);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_DELIVER, b, (size_t)len - 1);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_DELIVER, NULL, 0);
	ck_assert_int_eq(c->n[1].hits[2] + c->n[1].hits[3], 0);
	/* The same message from the right node is fine. */
	ck_assert_int_eq(irq_remote__handle(c->n[1].ir, 0, IRQ_REMOTE_T_DELIVER,
					    b, (size_t)len), 0);
	ck_assert_int_eq(c->n[1].hits[3], 1);
	/* Not from a peer. */
	expect_reject(c, 1, 1, IRQ_REMOTE_T_DELIVER, b, (size_t)len);
	expect_reject(c, 1, 7, IRQ_REMOTE_T_DELIVER, b, (size_t)len);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_EOI + 1, b, (size_t)len);
	expect_reject(c, 1, 0, NET_TYPE_IO_FIRST, b, (size_t)len);

	/* Address of a vCPU the sender does not run, or out of range. */
	len = irq_remote__encode_addr(b, sizeof(b), 0, 50, &a);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_ADDR_UPDATE, b, (size_t)len);
	len = irq_remote__encode_addr(b, sizeof(b), NV, 50, &a);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_ADDR_UPDATE, b, (size_t)len);
	/* Going back in seq (vCPU 2 is at seq 1 on node 0 now). */
	len = irq_remote__encode_addr(b, sizeof(b), 2, 50, &a);
	ck_assert_int_eq(irq_remote__handle(c->n[0].ir, 1,
					    IRQ_REMOTE_T_ADDR_UPDATE, b,
					    (size_t)len), 0);
	irq_router__get_addr(c->n[0].r, 2, &cur);
	ck_assert_uint_eq(cur.apic_id, 9);
	a.apic_id = 10;
	len = irq_remote__encode_addr(b, sizeof(b), 2, 49, &a);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_ADDR_UPDATE, b, (size_t)len);
	irq_router__get_addr(c->n[0].r, 2, &cur);
	ck_assert_uint_eq(cur.apic_id, 9);

	/* Acks: for a seq never sent, for a vCPU not local, going back. */
	len = irq_remote__encode_ack(b, sizeof(b), 0, 2);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_ADDR_ACK, b, (size_t)len);
	len = irq_remote__encode_ack(b, sizeof(b), 2, 1);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_ADDR_ACK, b, (size_t)len);
	len = irq_remote__encode_ack(b, sizeof(b), 0, 1);
	ck_assert_int_eq(irq_remote__handle(c->n[0].ir, 1,
					    IRQ_REMOTE_T_ADDR_ACK, b,
					    (size_t)len), 0);

	/* EOI: to the node without the IOAPIC, for a vCPU not on the
	 * sender, vector below 16. */
	len = irq_remote__encode_eoi(b, sizeof(b), 0, 0x40);
	expect_reject(c, 1, 0, IRQ_REMOTE_T_EOI, b, (size_t)len);
	len = irq_remote__encode_eoi(b, sizeof(b), 0, 0x40);
	expect_reject(c, 0, 1, IRQ_REMOTE_T_EOI, b, (size_t)len);
	len = irq_remote__encode_eoi(b, sizeof(b), 3, 0x40);
	b[2] = 0x0F;
	expect_reject(c, 0, 1, IRQ_REMOTE_T_EOI, b, (size_t)len);
	ck_assert_int_eq(c->n[0].eois, 0);
	ck_assert_int_eq(c->foreign_hits, 0);
	cluster_free(c);
}
END_TEST

START_TEST(extint_and_send_failure)
{
	struct cluster *c = cluster_new();
	struct apic_msg m = msg(2, false, -1);
	struct irq_remote_stats s;

	xapic_addrs(c, true);
	/* ExtINT needs the 8259 on the vCPU's node: not forwarded. */
	m.delivery = APIC_DM_EXTINT;
	ck_assert_int_eq(irq_router__deliver(c->n[0].r, &m), 0);
	ck_assert_int_eq(c->n[1].hits[2], 0);
	irq_remote__get_stats(c->n[0].ir, &s);
	ck_assert_uint_eq(s.extint_dropped, 1);
	/* Local ExtINT is unaffected. */
	m.dest = 0;
	ck_assert_uint_eq(targets(c, 0, &m), 0x1);
	/* A failed send: not counted as delivered, reported. */
	c->n[0].fail_send = true;
	m = msg(0xFF, false, -1);
	ck_assert_int_eq(irq_router__deliver(c->n[0].r, &m), 2);
	ck_assert_int_eq(c->n[0].errors, 1);
	ck_assert_ptr_nonnull(strstr(c->n[0].last_err, "node 1"));
	irq_remote__get_stats(c->n[0].ir, &s);
	ck_assert_uint_eq(s.send_failed, 1);
	cluster_free(c);
}
END_TEST

START_TEST(config_checks)
{
	struct irq_router *r = irq_router__new(NV, t_deliver, NULL);
	static const uint8_t bad[NV] = { 0, 0, 2, 1 };
	struct irq_remote_config cfg = {
		.router = r, .self = 0, .nr_nodes = 2, .vcpu_node = placement,
		.ops = { .send = t_send },
	};

	ck_assert_ptr_nonnull(r);
	cfg.vcpu_node = bad;
	ck_assert_ptr_null(irq_remote__new(&cfg));
	cfg.vcpu_node = placement;
	cfg.self = 2;
	ck_assert_ptr_null(irq_remote__new(&cfg));
	cfg.self = 0;
	cfg.ioapic_node = 5;
	ck_assert_ptr_null(irq_remote__new(&cfg));
	cfg.ioapic_node = 0;
	cfg.ops.send = NULL;
	ck_assert_ptr_null(irq_remote__new(&cfg));
	ck_assert_ptr_null(irq_remote__new(NULL));
	ck_assert_int_eq(irq_router__set_placement(r, 0, NULL, NULL, NULL), -1);
	/* Without a placement everything is local. */
	ck_assert(irq_router__is_local(r, 3));
	ck_assert_int_eq(irq_router__node_of(r, 3), 0);
	ck_assert_int_eq(irq_router__node_of(r, NV), -1);
	irq_remote__free(NULL);
	irq_router__free(r);
}
END_TEST

static Suite *irq_remote_suite(void)
{
	Suite *s = suite_create("irq_remote");
	TCase *wire = tcase_create("wire");
	TCase *cl = tcase_create("cluster");

	tcase_add_test(wire, wire_round_trips);
	tcase_add_test(wire, wire_rejects_deliver);
	tcase_add_test(wire, wire_rejects_small);
	suite_add_tcase(s, wire);
	tcase_add_test(cl, cluster_xapic_modes);
	tcase_add_test(cl, cluster_x2apic);
	tcase_add_test(cl, cluster_lowest_priority);
	tcase_add_test(cl, cluster_lapics_init_sipi_nmi);
	tcase_add_test(cl, cluster_ldr_race);
	tcase_add_test(cl, cluster_flush_waits_for_ack);
	tcase_add_test(cl, cluster_startup_wait);
	tcase_add_test(cl, handle_rejects);
	tcase_add_test(cl, extint_and_send_failure);
	tcase_add_test(cl, config_checks);
	suite_add_tcase(s, cl);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(irq_remote_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
