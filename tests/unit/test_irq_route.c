/* Destination matching (apic__matches) and the router: every addressing
 * mode with 4 vCPUs, lowest priority with rotation, shorthands, and that
 * the router holds no lock while handing a message on. */
#include <check.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpu/ioapic.h"
#include "vcpu/irq_route.h"
#include "vcpu/lapic.h"

#define N 4
#define EN (APIC_ADDR_HW_ENABLED | APIC_ADDR_SW_ENABLED)

struct sink {
	struct irq_router *r;
	int hits[128];
	int order[16];
	int n;
	bool reenter; /* update the router from inside the hook */
};

static void hook(void *ctx, int idx, const struct apic_msg *m)
{
	struct sink *s = ctx;

	(void)m;
	ck_assert_int_ge(idx, 0);
	ck_assert_int_lt(idx, 128);
	s->hits[idx]++;
	if (s->n < 16)
		s->order[s->n] = idx;
	s->n++;
	if (s->reenter) {
		struct apic_addr a = { .apic_id = 77, .enabled = EN };

		/* Would deadlock if deliver still held the router lock. */
		irq_router__update_addr(s->r, idx, &a);
	}
}

static void reset(struct sink *s)
{
	memset(s->hits, 0, sizeof(s->hits));
	s->n = 0;
}

/* Deliver m and return the set of targets as a bitmask. */
static unsigned targets(struct sink *s, const struct apic_msg *m)
{
	unsigned mask = 0;
	int n;

	reset(s);
	n = irq_router__deliver(s->r, m);
	ck_assert_int_eq(n, s->n);
	for (int i = 0; i < N; i++) {
		ck_assert_int_le(s->hits[i], 1);
		if (s->hits[i])
			mask |= 1u << i;
	}
	return mask;
}

static struct sink *xapic_setup(bool flat)
{
	struct sink *s = calloc(1, sizeof(*s));

	s->r = irq_router__new(N, hook, s);
	ck_assert_ptr_nonnull(s->r);
	for (int i = 0; i < N; i++) {
		struct apic_addr a = { .apic_id = (uint32_t)i, .enabled = EN,
				       .dfr_flat = flat };

		/* Flat: one bit each.  Cluster: clusters 1 and 2, two
		 * members each. */
		a.ldr = flat ? (1u << i) << 24
			     : (uint32_t)(((1 + i / 2) << 4) | (1 << (i % 2)))
				       << 24;
		irq_router__update_addr(s->r, i, &a);
	}
	return s;
}

static void sink_free(struct sink *s)
{
	irq_router__free(s->r);
	free(s);
}

static struct apic_msg msg(uint32_t dest, bool logical)
{
	struct apic_msg m = { .dest = dest, .vector = 0x40, .source = -1,
			      .dest_logical = logical, .level = 1 };
	return m;
}

START_TEST(xapic_physical)
{
	struct sink *s = xapic_setup(true);
	struct apic_msg m;

	for (uint32_t id = 0; id < N; id++) {
		m = msg(id, false);
		ck_assert_uint_eq(targets(s, &m), 1u << id);
	}
	m = msg(7, false);
	ck_assert_uint_eq(targets(s, &m), 0);
	m = msg(0xFF, false);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	/* Only the low 8 bits address an xAPIC. */
	m = msg(0x102, false);
	ck_assert_uint_eq(targets(s, &m), 1u << 2);
	sink_free(s);
}
END_TEST

START_TEST(xapic_logical_flat)
{
	struct sink *s = xapic_setup(true);
	struct apic_msg m;

	m = msg(0x05, true);
	ck_assert_uint_eq(targets(s, &m), 0x5);
	m = msg(0x08, true);
	ck_assert_uint_eq(targets(s, &m), 0x8);
	m = msg(0xF0, true);
	ck_assert_uint_eq(targets(s, &m), 0);
	m = msg(0xFF, true);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	sink_free(s);
}
END_TEST

START_TEST(xapic_logical_cluster)
{
	struct sink *s = xapic_setup(false);
	struct apic_msg m;

	m = msg(0x13, true); /* cluster 1, both members */
	ck_assert_uint_eq(targets(s, &m), 0x3);
	m = msg(0x22, true); /* cluster 2, member bit 1 */
	ck_assert_uint_eq(targets(s, &m), 0x8);
	m = msg(0x34, true); /* no such cluster */
	ck_assert_uint_eq(targets(s, &m), 0);
	m = msg(0x14, true); /* cluster 1, no such member */
	ck_assert_uint_eq(targets(s, &m), 0);
	m = msg(0xFF, true);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	sink_free(s);
}
END_TEST

START_TEST(x2apic_physical_and_cluster)
{
	struct sink *s = calloc(1, sizeof(*s));
	static const uint32_t ids[N] = { 0x1, 0x2, 0x11, 0x12345 };
	struct apic_msg m;

	s->r = irq_router__new(N, hook, s);
	for (int i = 0; i < N; i++) {
		uint32_t id = ids[i];
		struct apic_addr a = {
			.apic_id = id, .x2apic = 1, .enabled = EN,
			.ldr = ((id >> 4) << 16) | (1u << (id & 0xF)),
		};
		irq_router__update_addr(s->r, i, &a);
	}
	for (int i = 0; i < N; i++) {
		m = msg(ids[i], false);
		m.x2apic = 1;
		ck_assert_uint_eq(targets(s, &m), 1u << i);
	}
	/* 32-bit IDs: no truncation to 8 bits. */
	m = msg(0x45, false);
	m.x2apic = 1;
	ck_assert_uint_eq(targets(s, &m), 0);
	m = msg(0xFFFFFFFF, false);
	m.x2apic = 1;
	ck_assert_uint_eq(targets(s, &m), 0xF);
	/* Cluster 0, members 1 and 2. */
	m = msg(0x00000006, true);
	m.x2apic = 1;
	ck_assert_uint_eq(targets(s, &m), 0x3);
	/* Cluster 1, member 1 (ID 0x11); member 2 is not ID 0x02. */
	m = msg(0x00010006, true);
	m.x2apic = 1;
	ck_assert_uint_eq(targets(s, &m), 0x4);
	/* Cluster 0x1234, member 5. */
	m = msg(0x12340020, true);
	m.x2apic = 1;
	ck_assert_uint_eq(targets(s, &m), 0x8);
	/* An 8-bit message (IOAPIC) of 0xFF is a broadcast here too. */
	m = msg(0xFF, false);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	m = msg(0x11, false);
	ck_assert_uint_eq(targets(s, &m), 0x4);
	sink_free(s);
}
END_TEST

START_TEST(shorthands)
{
	struct sink *s = xapic_setup(true);
	struct apic_msg m = msg(0, false);

	m.source = 2;
	m.shorthand = APIC_SH_SELF;
	ck_assert_uint_eq(targets(s, &m), 0x4);
	m.shorthand = APIC_SH_ALL_INCL_SELF;
	ck_assert_uint_eq(targets(s, &m), 0xF);
	m.shorthand = APIC_SH_ALL_EXCL_SELF;
	ck_assert_uint_eq(targets(s, &m), 0xB);
	/* The destination field is ignored with a shorthand. */
	m.dest = 2;
	ck_assert_uint_eq(targets(s, &m), 0xB);
	/* From the IOAPIC (source -1) "excluding self" is everyone. */
	m.source = -1;
	ck_assert_uint_eq(targets(s, &m), 0xF);
	sink_free(s);
}
END_TEST

START_TEST(disabled_lapics)
{
	struct sink *s = xapic_setup(true);
	struct apic_addr a = { .apic_id = 1, .ldr = 2u << 24, .dfr_flat = 1,
			       .enabled = APIC_ADDR_HW_ENABLED };
	struct apic_msg m = msg(0xFF, false);

	/* vCPU 1 software-disabled, vCPU 3 globally disabled. */
	irq_router__update_addr(s->r, 1, &a);
	a.apic_id = 3;
	a.enabled = 0;
	irq_router__update_addr(s->r, 3, &a);
	ck_assert_uint_eq(targets(s, &m), 0x5);
	m.delivery = APIC_DM_LOWEST;
	ck_assert_uint_eq(targets(s, &m) & 0xA, 0);
	m.delivery = APIC_DM_EXTINT;
	ck_assert_uint_eq(targets(s, &m), 0x5);
	m.delivery = APIC_DM_INIT;
	ck_assert_uint_eq(targets(s, &m), 0x7);
	m.delivery = APIC_DM_SIPI;
	ck_assert_uint_eq(targets(s, &m), 0x7);
	m.delivery = APIC_DM_NMI;
	m.dest = 1;
	ck_assert_uint_eq(targets(s, &m), 0x2);
	m.dest = 3;
	ck_assert_uint_eq(targets(s, &m), 0);
	/* Pure matcher, directly. */
	ck_assert(!apic__matches(&a, &m, true));
	m.shorthand = APIC_SH_SELF;
	ck_assert(!apic__matches(&a, &m, true));
	sink_free(s);
}
END_TEST

START_TEST(lowest_priority)
{
	struct sink *s = xapic_setup(true);
	static const uint8_t ppr[N] = { 0x20, 0x10, 0x10, 0x30 };
	struct apic_msg m = msg(0xFF, false);

	for (int i = 0; i < N; i++) {
		struct apic_addr a = { .apic_id = (uint32_t)i, .enabled = EN,
				       .dfr_flat = 1, .ldr = (1u << i) << 24,
				       .ppr = ppr[i] };
		irq_router__update_addr(s->r, i, &a);
	}
	m.delivery = APIC_DM_LOWEST;
	/* The two at PPR 0x10 take turns. */
	ck_assert_uint_eq(targets(s, &m), 0x2);
	ck_assert_uint_eq(targets(s, &m), 0x4);
	ck_assert_uint_eq(targets(s, &m), 0x2);
	ck_assert_uint_eq(targets(s, &m), 0x4);
	/* Restricted to a logical set: {0, 3} -> 0 has the lower PPR. */
	m = msg(0x09, true);
	m.delivery = APIC_DM_LOWEST;
	ck_assert_uint_eq(targets(s, &m), 0x1);
	/* A single match is simply that one. */
	m = msg(3, false);
	m.delivery = APIC_DM_LOWEST;
	ck_assert_uint_eq(targets(s, &m), 0x8);
	/* Fixed to everyone still goes to everyone. */
	m = msg(0xFF, false);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	sink_free(s);
}
END_TEST

START_TEST(robustness_and_no_lock_in_hook)
{
	struct sink *s = xapic_setup(true);
	struct apic_addr a = { .apic_id = 9, .enabled = EN };
	struct apic_msg m = msg(0xFF, false);

	ck_assert_ptr_null(irq_router__new(0, hook, s));
	ck_assert_ptr_null(irq_router__new(4, NULL, s));
	irq_router__update_addr(s->r, -1, &a);
	irq_router__update_addr(s->r, N, &a);
	irq_router__update_addr(s->r, 0, NULL);
	ck_assert_int_eq(irq_router__deliver(s->r, NULL), 0);
	ck_assert_int_eq(irq_router__deliver(NULL, &m), 0);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	s->reenter = true;
	ck_assert_uint_eq(targets(s, &m), 0xF);
	/* The hook re-addressed everyone to ID 77. */
	s->reenter = false;
	m = msg(77, false);
	ck_assert_uint_eq(targets(s, &m), 0xF);
	irq_router__free(NULL);
	sink_free(s);
}
END_TEST

START_TEST(many_vcpus)
{
	struct sink *s = calloc(1, sizeof(*s));
	struct apic_msg m = msg(0xFFFFFFFF, false);
	int n;

	m.x2apic = 1;
	s->r = irq_router__new(100, hook, s);
	for (int i = 0; i < 100; i++) {
		struct apic_addr a = { .apic_id = (uint32_t)i, .x2apic = 1,
				       .enabled = EN };
		irq_router__update_addr(s->r, i, &a);
	}
	reset(s);
	n = irq_router__deliver(s->r, &m);
	ck_assert_int_eq(n, 100);
	ck_assert_int_eq(s->hits[99], 1);
	m.dest = 99;
	reset(s);
	ck_assert_int_eq(irq_router__deliver(s->r, &m), 1);
	ck_assert_int_eq(s->hits[99], 1);
	sink_free(s);
}
END_TEST

/* End to end: real LAPICs publish their addresses into the router. */
struct mini_machine {
	struct irq_router *r;
	struct lapic l[N];
	int idx[N];
};

static void m_deliver(void *ctx, int i, const struct apic_msg *msg_)
{
	struct mini_machine *mc = ctx;

	lapic__accept(&mc->l[i], msg_);
}

struct cpu_ctx {
	struct mini_machine *mc;
	int i;
};

static void m_addr(void *ctx, const struct apic_addr *a)
{
	struct cpu_ctx *c = ctx;

	irq_router__update_addr(c->mc->r, c->i, a);
}

static void m_send(void *ctx, const struct apic_msg *msg_)
{
	struct cpu_ctx *c = ctx;

	irq_router__deliver(c->mc->r, msg_);
}

START_TEST(lapics_through_router)
{
	struct mini_machine *mc = calloc(1, sizeof(*mc));
	struct cpu_ctx ctx[N];
	uint32_t v;
	int vec;

	mc->r = irq_router__new(N, m_deliver, mc);
	for (int i = 0; i < N; i++) {
		struct lapic_env env = { .ctx = &ctx[i], .addr_changed = m_addr,
					 .send_ipi = m_send };

		ctx[i].mc = mc;
		ctx[i].i = i;
		lapic__init(&mc->l[i], (uint32_t)i, i == 0, &env);
	}
	/* APs are software-disabled: an INIT-SIPI broadcast reaches them,
	 * a fixed IPI does not. */
	v = 0x1FF;
	lapic__mmio(&mc->l[0], LAPIC_REG_SVR, (uint8_t *)&v, 4, true);
	v = (APIC_SH_ALL_EXCL_SELF << 18) | 0x4500;
	lapic__mmio(&mc->l[0], LAPIC_REG_ICR_LO, (uint8_t *)&v, 4, true);
	v = (APIC_SH_ALL_EXCL_SELF << 18) | 0x0699;
	lapic__mmio(&mc->l[0], LAPIC_REG_ICR_LO, (uint8_t *)&v, 4, true);
	v = (APIC_SH_ALL_EXCL_SELF << 18) | 0x0050;
	lapic__mmio(&mc->l[0], LAPIC_REG_ICR_LO, (uint8_t *)&v, 4, true);
	ck_assert(!lapic__has_events(&mc->l[0]));
	for (int i = 1; i < N; i++) {
		struct lapic_events ev = lapic__take_events(&mc->l[i]);

		ck_assert(ev.init && ev.sipi);
		ck_assert_uint_eq(ev.sipi_vector, 0x99);
		ck_assert_int_eq(lapic__pending_intr(&mc->l[i], &vec),
				 LAPIC_INTR_NONE);
	}
	/* AP 2 enables itself, goes x2APIC; BSP sends it a fixed IPI by
	 * physical ID. */
	lapic__msr_write(&mc->l[2], MSR_IA32_APICBASE,
			 LAPIC_DEFAULT_BASE | APIC_BASE_EN | APIC_BASE_EXTD);
	lapic__msr_write(&mc->l[2], MSR_X2APIC_FIRST + 0xF, 0x1FF);
	v = 0x02000000;
	lapic__mmio(&mc->l[0], LAPIC_REG_ICR_HI, (uint8_t *)&v, 4, true);
	v = 0x0061;
	lapic__mmio(&mc->l[0], LAPIC_REG_ICR_LO, (uint8_t *)&v, 4, true);
	ck_assert_int_eq(lapic__pending_intr(&mc->l[2], &vec),
			 LAPIC_INTR_VECTOR);
	ck_assert_int_eq(vec, 0x61);
	/* x2APIC self IPI from AP 2 comes back to it only. */
	lapic__msr_write(&mc->l[2], MSR_X2APIC_FIRST + 0x3F, 0x62);
	ck_assert_int_eq(lapic__pending_intr(&mc->l[2], &vec),
			 LAPIC_INTR_VECTOR);
	ck_assert_int_eq(vec, 0x62);
	ck_assert_int_eq(lapic__pending_intr(&mc->l[0], &vec),
			 LAPIC_INTR_NONE);
	for (int i = 0; i < N; i++)
		lapic__destroy(&mc->l[i]);
	irq_router__free(mc->r);
	free(mc);
}
END_TEST

/* Lock order under load: vCPU threads send IPIs to each other and EOI a
 * level-triggered IOAPIC pin that is re-delivered (lowest priority) from
 * inside the EOI path, while a "timer thread" fires their timers.  A
 * deadlock shows as a test timeout. */
struct stress;

struct st_ctx {
	struct stress *st;
	int i;
};

struct stress {
	struct irq_router *r;
	struct ioapic io;
	struct lapic l[N];
	struct st_ctx ctx[N];
	atomic_int got[N];
	atomic_int level_got;
	atomic_bool stop;
};

static void st_deliver(void *ctx, int i, const struct apic_msg *msg_)
{
	struct stress *st = ctx;

	lapic__accept(&st->l[i], msg_);
}

static void st_addr(void *ctx, const struct apic_addr *a)
{
	struct st_ctx *c = ctx;

	irq_router__update_addr(c->st->r, c->i, a);
}

static void st_send(void *ctx, const struct apic_msg *msg_)
{
	struct st_ctx *c = ctx;

	irq_router__deliver(c->st->r, msg_);
}

static void st_eoi(void *ctx, uint8_t vector)
{
	struct st_ctx *c = ctx;

	ioapic__eoi(&c->st->io, vector);
}

static uint64_t st_now(void *ctx)
{
	struct timespec ts;

	(void)ctx;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static int st_io_send(void *ctx, const struct apic_msg *msg_)
{
	struct stress *st = ctx;

	return irq_router__deliver(st->r, msg_);
}

struct st_arg {
	struct stress *st;
	int i;
};

static void st_wr(struct lapic *l, uint32_t reg, uint32_t v)
{
	lapic__mmio(l, reg, (uint8_t *)&v, 4, true);
}

static void *st_cpu(void *arg)
{
	struct st_arg *a = arg;
	struct stress *st = a->st;
	struct lapic *l = &st->l[a->i];
	int vec;

	for (int k = 0; k < 3000; k++) {
		st_wr(l, LAPIC_REG_ICR_HI, (uint32_t)((a->i + 1) % N) << 24);
		st_wr(l, LAPIC_REG_ICR_LO, 0x40 + (uint32_t)a->i);
		if (k % 7 == 0)
			st_wr(l, LAPIC_REG_TPR, (uint32_t)(k % 3) << 4);
		/* Bounded: the level pin never drops, so it is a storm. */
		for (int n = 0; n < 4 && lapic__pending_intr(l, &vec) ==
					  LAPIC_INTR_VECTOR; n++) {
			lapic__intr_injected(l, vec);
			if (vec == 0x90)
				atomic_fetch_add(&st->level_got, 1);
			else
				atomic_fetch_add(&st->got[a->i], 1);
			st_wr(l, LAPIC_REG_EOI, 0);
		}
	}
	return NULL;
}

static void *st_timer(void *arg)
{
	struct stress *st = arg;

	const struct timespec ts = { .tv_nsec = 20000 };

	while (!atomic_load(&st->stop)) {
		for (int i = 0; i < N; i++)
			lapic__timer_expired(&st->l[i]);
		nanosleep(&ts, NULL);
	}
	return NULL;
}

START_TEST(concurrent_ipis_and_level_eoi)
{
	struct stress *st = calloc(1, sizeof(*st));
	struct ioapic_env ioenv = { .ctx = st, .send = st_io_send };
	struct st_arg args[N];
	pthread_t cpu[N], timer;
	uint32_t v;

	st->r = irq_router__new(N, st_deliver, st);
	ioapic__init(&st->io, 0, &ioenv);
	for (int i = 0; i < N; i++) {
		struct lapic_env env = {
			.ctx = &st->ctx[i], .addr_changed = st_addr,
			.send_ipi = st_send, .eoi_level = st_eoi,
			.now_ns = st_now,
		};

		st->ctx[i].st = st;
		st->ctx[i].i = i;
		lapic__init(&st->l[i], (uint32_t)i, i == 0, &env);
		st_wr(&st->l[i], LAPIC_REG_SVR, 0x1FF);
		st_wr(&st->l[i], LAPIC_REG_LDR, 0x01000000u << i);
		/* A fast periodic timer on every CPU. */
		st_wr(&st->l[i], LAPIC_REG_TIMER_DCR, 0xB);
		st_wr(&st->l[i], LAPIC_REG_LVT_TIMER,
		      (LAPIC_TIMER_PERIODIC << 17) | 0x30);
		st_wr(&st->l[i], LAPIC_REG_TIMER_ICR, 1);
	}
	/* Pin 5: level, lowest priority to all four, asserted for good. */
	v = IOAPIC_REG_REDIR + 2 * 5 + 1;
	ioapic__mmio(&st->io, IOAPIC_IOREGSEL, (uint8_t *)&v, 4, true);
	v = 0x0F000000;
	ioapic__mmio(&st->io, IOAPIC_IOWIN, (uint8_t *)&v, 4, true);
	v = IOAPIC_REG_REDIR + 2 * 5;
	ioapic__mmio(&st->io, IOAPIC_IOREGSEL, (uint8_t *)&v, 4, true);
	v = (uint32_t)(IOAPIC_RTE_LEVEL | IOAPIC_RTE_DEST_LOGICAL) |
	    (APIC_DM_LOWEST << 8) | 0x90;
	ioapic__mmio(&st->io, IOAPIC_IOWIN, (uint8_t *)&v, 4, true);
	ioapic__set_irq(&st->io, 5, true);

	pthread_create(&timer, NULL, st_timer, st);
	for (int i = 0; i < N; i++) {
		args[i].st = st;
		args[i].i = i;
		pthread_create(&cpu[i], NULL, st_cpu, &args[i]);
	}
	for (int i = 0; i < N; i++)
		pthread_join(cpu[i], NULL);
	atomic_store(&st->stop, true);
	pthread_join(timer, NULL);

	for (int i = 0; i < N; i++)
		ck_assert_int_gt(atomic_load(&st->got[i]), 0);
	ck_assert_int_gt(atomic_load(&st->level_got), 0);
	/* Exactly one CPU holds the level interrupt (IRR or ISR), because
	 * remote IRR stops the IOAPIC until that CPU's EOI. */
	{
		int holders = 0;

		for (int i = 0; i < N; i++)
			holders += !!(st->l[i].s.irr[0x90 / 32] & (1u << 16)) +
				   !!(st->l[i].s.isr[0x90 / 32] & (1u << 16));
		ck_assert_int_eq(holders, 1);
	}
	for (int i = 0; i < N; i++)
		lapic__destroy(&st->l[i]);
	ioapic__destroy(&st->io);
	irq_router__free(st->r);
	free(st);
}
END_TEST

static Suite *route_suite(void)
{
	Suite *s = suite_create("irq_route");
	TCase *tc = tcase_create("route");
	TCase *stress = tcase_create("stress");

	tcase_add_test(tc, xapic_physical);
	tcase_add_test(tc, xapic_logical_flat);
	tcase_add_test(tc, xapic_logical_cluster);
	tcase_add_test(tc, x2apic_physical_and_cluster);
	tcase_add_test(tc, shorthands);
	tcase_add_test(tc, disabled_lapics);
	tcase_add_test(tc, lowest_priority);
	tcase_add_test(tc, robustness_and_no_lock_in_hook);
	tcase_add_test(tc, many_vcpus);
	tcase_add_test(tc, lapics_through_router);
	suite_add_tcase(s, tc);
	tcase_set_timeout(stress, 120);
	tcase_add_test(stress, concurrent_ipis_and_level_eoi);
	suite_add_tcase(s, stress);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(route_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
