/* vCPU migration's side of interrupt routing (vcpu/irq_remote.h,
 * vcpu/irq_route.h): three nodes in one process, each with its router and
 * irq_remote, joined by in-process hooks.  A vCPU changes node with
 * irq_remote__set_node on each, as the migration's hand-over, activation
 * and PLACE do; then routing follows it, a node that has not heard yet
 * is redirected by the node the vCPU left, messages it sent just before
 * it moved are still accepted, and its address sequence continues where
 * the old node left it. */
#include <check.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/irq_remote.h"
#include "vcpu/lapic.h"
#include "vmm/io_forward.h"
#include "vmm/io_bus.h"

#define NN 3
#define NV 3
#define EN (APIC_ADDR_HW_ENABLED | APIC_ADDR_SW_ENABLED)

struct tnode {
	unsigned id;
	struct irq_router *r;
	struct irq_remote *ir;
	int hits[NV];
	int redirects[NV];
	int errors;
	char last_err[256];
	bool with_redirect;
};

static struct tnode nodes[NN];
static uint8_t where[NV]; /* the truth, for the deliver hook's check */
static int foreign;

static int t_send(void *ctx, unsigned node, unsigned type, const void *buf,
		  size_t len)
{
	struct tnode *self = ctx;

	return irq_remote__handle(nodes[node].ir, self->id, type, buf, len) ?
		       -1 : 0;
}

/* The I/O server's answers: counted, not sent anywhere. */
static int io_answers;

static int t_send_io(void *ctx, unsigned node, unsigned type,
		     const void *buf, size_t len)
{
	io_answers++;
	return 0;
}

static void t_deliver(void *ctx, int vcpu, const struct apic_msg *m)
{
	struct tnode *self = ctx;

	if (where[vcpu] != self->id)
		foreign++;
	else
		self->hits[vcpu]++;
}

/* As the migration's gate would: on to where the vCPU runs now. */
static int t_redirect(void *ctx, int vcpu, const struct apic_msg *m)
{
	struct tnode *self = ctx;

	if (!self->with_redirect)
		return -1;
	self->redirects[vcpu]++;
	return irq_router__deliver_local(nodes[where[vcpu]].r, vcpu, m);
}

static void t_error(void *ctx, unsigned node, const char *what)
{
	struct tnode *self = ctx;

	self->errors++;
	snprintf(self->last_err, sizeof(self->last_err), "%s", what);
}

static void setup(void)
{
	static const uint8_t place[NV] = { 0, 1, 2 };
	char err[128];

	memcpy(where, place, sizeof(where));
	foreign = 0;
	for (unsigned i = 0; i < NN; i++) {
		struct tnode *n = &nodes[i];
		struct irq_remote_config cfg = {
			.self = i, .nr_nodes = NN, .vcpu_node = place,
			.ioapic_node = 0,
			.ops = { .ctx = n, .send = t_send, .error = t_error,
				 .redirect = t_redirect },
		};

		memset(n, 0, sizeof(*n));
		n->id = i;
		n->with_redirect = true;
		n->r = irq_router__new(NV, t_deliver, n);
		ck_assert_ptr_nonnull(n->r);
		cfg.router = n->r;
		n->ir = irq_remote__new(&cfg);
		ck_assert_ptr_nonnull(n->ir);
	}
	for (int v = 0; v < NV; v++) {
		struct apic_addr a = { .apic_id = (uint32_t)v, .enabled = EN,
				       .dfr_flat = 1,
				       .ldr = (1u << v) << 24 };

		irq_remote__local_addr(nodes[place[v]].ir, v, &a);
		ck_assert_int_eq(irq_remote__flush(nodes[place[v]].ir, v, 1000,
						   err, sizeof(err)), 0);
	}
}

static void teardown(void)
{
	for (unsigned i = 0; i < NN; i++) {
		irq_remote__free(nodes[i].ir);
		irq_router__free(nodes[i].r);
	}
}

static struct apic_msg ipi(int source, uint32_t dest, uint8_t vector)
{
	return (struct apic_msg){ .dest = dest, .source = source,
				  .vector = vector };
}

/* vcpu moves to node `to`, every node told, as a completed migration
 * leaves them. */
static void move_all(int vcpu, unsigned to)
{
	unsigned from = where[vcpu];
	struct apic_addr a;
	uint32_t seq;

	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[from].ir, vcpu, &seq, &a),
			 0);
	ck_assert_uint_gt(seq, 0);
	where[vcpu] = (uint8_t)to;
	for (unsigned i = 0; i < NN; i++)
		ck_assert_int_eq(irq_remote__set_node(nodes[i].ir, vcpu, to,
						      seq, &a), 0);
}

START_TEST(routing_follows)
{
	struct apic_msg m = ipi(0, 1, 0x90);

	/* vCPU 1 from node 1 to node 0: node 0 delivers it locally now. */
	move_all(1, 0);
	ck_assert_int_eq(irq_router__node_of(nodes[2].r, 1), 0);
	ck_assert(irq_router__is_local(nodes[0].r, 1));
	ck_assert_int_eq(irq_router__deliver(nodes[0].r, &m), 1);
	ck_assert_int_eq(nodes[0].hits[1], 1);
	/* From node 2: one IRQ_DELIVER to node 0. */
	m.source = 2;
	ck_assert_int_eq(irq_router__deliver(nodes[2].r, &m), 1);
	ck_assert_int_eq(nodes[0].hits[1], 2);
	ck_assert_int_eq(nodes[1].hits[1], 0);
	ck_assert_int_eq(foreign, 0);
	/* And back. */
	move_all(1, 1);
	ck_assert_int_eq(irq_router__deliver(nodes[2].r, &m), 1);
	ck_assert_int_eq(nodes[1].hits[1], 1);
	ck_assert_int_eq(foreign, 0);
	for (unsigned i = 0; i < NN; i++)
		ck_assert_int_eq(nodes[i].errors, 0);
}
END_TEST

/* Node 2 has not heard of the move: its IRQ_DELIVER reaches the node
 * the vCPU left, which hands it on (the redirect hook). */
START_TEST(stale_sender_redirected)
{
	struct apic_msg m = ipi(2, 1, 0x92);
	struct irq_remote_stats st;
	struct apic_addr a;
	uint32_t seq;

	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[1].ir, 1, &seq, &a), 0);
	where[1] = 0;
	ck_assert_int_eq(irq_remote__set_node(nodes[1].ir, 1, 0, seq, &a), 0);
	ck_assert_int_eq(irq_remote__set_node(nodes[0].ir, 1, 0, seq, &a), 0);
	ck_assert_int_eq(irq_router__deliver(nodes[2].r, &m), 1);
	ck_assert_int_eq(nodes[1].redirects[1], 1);
	ck_assert_int_eq(nodes[0].hits[1], 1);
	ck_assert_int_eq(foreign, 0);
	irq_remote__get_stats(nodes[1].ir, &st);
	ck_assert_uint_eq(st.redirected, 1);
	ck_assert_int_eq(nodes[1].errors, 0);
	/* Without a redirect hook the same message is a protocol error. */
	nodes[1].with_redirect = false;
	ck_assert_int_eq(irq_router__deliver(nodes[2].r, &m), 1);
	ck_assert_int_eq(nodes[0].hits[1], 1);
	irq_remote__get_stats(nodes[1].ir, &st);
	ck_assert_uint_eq(st.redirected, 1);
}
END_TEST

/* An IPI vCPU 1 sent from node 1 just before it moved arrives at node 2
 * after node 2 learned the move: still accepted (its previous node);
 * from a node it never ran on: refused. */
START_TEST(source_from_previous_node)
{
	uint8_t buf[IRQ_REMOTE_DELIVER_SIZE(NV)];
	uint8_t targets[1] = { 1u << 2 };
	struct apic_msg m = ipi(1, 2, 0x91);
	int len = irq_remote__encode_deliver(buf, sizeof(buf), &m, targets, NV);

	move_all(1, 0);
	ck_assert_int_eq(irq_remote__handle(nodes[2].ir, 1,
					    IRQ_REMOTE_T_DELIVER, buf,
					    (size_t)len), 0);
	ck_assert_int_eq(nodes[2].hits[2], 1);
	ck_assert_int_eq(irq_remote__handle(nodes[2].ir, 0,
					    IRQ_REMOTE_T_DELIVER, buf,
					    (size_t)len), 0);
	move_all(1, 2);
	/* Now node 0 was the previous one; node 1 no longer is. */
	m.vector = 0x91;
	len = irq_remote__encode_deliver(buf, sizeof(buf), &m, targets, NV);
	targets[0] = 1u << 0;
	len = irq_remote__encode_deliver(buf, sizeof(buf), &m, targets, NV);
	ck_assert_int_eq(irq_remote__handle(nodes[0].ir, 1,
					    IRQ_REMOTE_T_DELIVER, buf,
					    (size_t)len), -EPROTO);
	ck_assert_ptr_nonnull(strstr(nodes[0].last_err, "vCPU 1, which runs"));
}
END_TEST

/* The new node continues the vCPU's address sequence: its next update is
 * accepted everywhere and acked, the flush returns. */
START_TEST(address_sequence_continues)
{
	struct apic_addr a = { .apic_id = 1, .enabled = EN, .dfr_flat = 1,
			       .ldr = 0x40000000 };
	struct apic_addr got;
	struct apic_msg m = ipi(0, 0x40, 0x93);
	uint32_t seq0, seq1;
	char err[128];

	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[1].ir, 1, &seq0, &got),
			 0);
	move_all(1, 0);
	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[0].ir, 1, &seq1, &got),
			 0);
	ck_assert_uint_eq(seq1, seq0);
	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[1].ir, 1, &seq1, &got),
			 -1); /* not local there any more */
	irq_remote__local_addr(nodes[0].ir, 1, &a);
	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[0].ir, 1, &seq1, &got),
			 -1); /* unsent */
	ck_assert_int_eq(irq_remote__flush(nodes[0].ir, 1, 1000, err,
					   sizeof(err)), 0);
	ck_assert_int_eq(irq_remote__vcpu_addr(nodes[0].ir, 1, &seq1, &got),
			 0);
	ck_assert_uint_eq(seq1, seq0 + 1);
	/* Every node routes by the new LDR (logical 0x40). */
	m.dest_logical = 1;
	m.source = 2;
	ck_assert_int_eq(irq_router__deliver(nodes[2].r, &m), 1);
	ck_assert_int_eq(nodes[0].hits[1], 1);
	for (unsigned i = 0; i < NN; i++)
		ck_assert_int_eq(nodes[i].errors, 0);
	/* The node it left refuses an update from a node it does not run
	 * on, as before. */
	{
		uint8_t buf[IRQ_REMOTE_ADDR_SIZE];

		irq_remote__encode_addr(buf, sizeof(buf), 1, seq1 + 1, &a);
		ck_assert_int_eq(irq_remote__handle(nodes[2].ir, 1,
						    IRQ_REMOTE_T_ADDR_UPDATE,
						    buf, sizeof(buf)), -EPROTO);
	}
}
END_TEST

START_TEST(set_node_checks)
{
	struct apic_addr a = { 0 };

	ck_assert_int_eq(irq_remote__set_node(nodes[0].ir, NV, 0, 1, &a), -1);
	ck_assert_int_eq(irq_remote__set_node(nodes[0].ir, 0, NN, 1, &a), -1);
	ck_assert_int_eq(irq_remote__set_node(NULL, 0, 0, 1, &a), -1);
	ck_assert_int_eq(irq_router__set_node(nodes[0].r, NV, 0), -1);
	ck_assert_int_eq(irq_remote__set_node(nodes[0].ir, 0, 0, 1, &a), 0);
	/* A router without a placement has nowhere to put it. */
	{
		struct irq_router *r = irq_router__new(2, t_deliver, &nodes[0]);

		ck_assert_int_eq(irq_router__set_node(r, 0, 1), -1);
		irq_router__free(r);
	}
}
END_TEST

/* The device node accepts a vCPU's I/O from its new node only. */
START_TEST(io_server_follows)
{
	static const uint8_t place[2] = { 0, 1 };
	struct io_bus *bus = io_bus__new();
	struct io_forward_server_config sc = {
		.bus = bus, .nr_vcpus = 2, .self = 0, .vcpu_node = place,
		.workers = 1,
		.ops = { .ctx = &nodes[0], .send = t_send_io, .error = t_error },
	};
	struct io_forward_server *s = io_forward__server_new(&sc);
	struct io_forward_req req = { .id = 1, .vcpu = 1, .space = IO_SPACE_PIO,
				      .addr = 0x80, .size = 1, .count = 1,
				      .is_write = true };
	uint8_t buf[64], data = 0x55;
	int len;

	ck_assert_ptr_nonnull(s);
	len = io_forward__encode_request(buf, sizeof(buf), &req, &data);
	ck_assert_int_gt(len, 0);
	ck_assert_int_eq(io_forward__server_handle(s, 2, IO_FORWARD_T_REQUEST,
						   buf, (size_t)len), -EPROTO);
	io_forward__server_set_vcpu_node(s, 1, 2);
	ck_assert_int_eq(io_forward__server_handle(s, 2, IO_FORWARD_T_REQUEST,
						   buf, (size_t)len), 0);
	req.id = 2;
	len = io_forward__encode_request(buf, sizeof(buf), &req, &data);
	ck_assert_int_eq(io_forward__server_handle(s, 1, IO_FORWARD_T_REQUEST,
						   buf, (size_t)len), -EPROTO);
	io_forward__server_free(s);
	io_bus__free(bus);
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("migrate_route");
	TCase *tc = tcase_create("route");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, routing_follows);
	tcase_add_test(tc, stale_sender_redirected);
	tcase_add_test(tc, source_from_previous_node);
	tcase_add_test(tc, address_sequence_continues);
	tcase_add_test(tc, set_node_checks);
	tcase_add_test(tc, io_server_follows);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
