/* The DSM I/O side on real userfaultfd: 2 or 3 "nodes" in one process,
 * each with its own guest_mem (memfd) and dsm_mem, connected by in-process
 * queues (one delivery thread per node, FIFO, standing in for the FAST
 * channel).  Test threads load and store through the registered mappings
 * directly, faulting through userfaultfd exactly as a vCPU does through
 * KVM, and check coherence, the kernel behaviour each action relies on
 * (hole after ZAP, WP fault after WRITE_PROTECT, untouched pages stay
 * holes), protocol errors and shutdown.  No KVM needed.
 *
 * KRG_DSM_MEM_VERBOSE=1  print the nodes' log lines
 * KRG_DSM_MEM_ITERS=n    increments per thread in the stress test [1500] */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dsm/dsm_mem.h"
#include "vmm/guest_mem.h"
#include "vmm/numa_layout.h"

#define PG 4096ull
#define MAXN 3
#define MIB (1024ull * 1024)

struct qmsg {
	struct qmsg *next;
	unsigned from, type;
	size_t len;
	uint8_t b[];
};

struct cluster;

struct tnode {
	struct cluster *c;
	unsigned id;
	struct guest_mem mem;
	struct dsm_mem *dm;
	pthread_mutex_t qlock;
	pthread_cond_t qcond;
	struct qmsg *head, *tail;
	bool quit, hold;
	pthread_t deliver;
	bool delivering;
	atomic_int fatals;
	atomic_int logs;
	atomic_uint send_delay_us;	/* sleep after each send (lock held) */
	char fatal_why[256];
	/* drop_translations calls ('D') and sends ('I' INV_ACK, 'G' grant,
	 * 'o' other) in order; both come with the node lock held. */
	char events[64];
	unsigned nev;
};

struct cluster {
	unsigned n;
	atomic_int inflight;	/* queued or being received */
	atomic_int type_mismatch;
	bool expect_fatal;	/* else a fatal error fails the test at once */
	unsigned hold_us;	/* dsm_mem_config.hold_us of every node */
	struct numa_layout layout;
	struct tnode node[MAXN];
};

static bool verbose(void)
{
	return getenv("KRG_DSM_MEM_VERBOSE") != NULL;
}

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* True (and one line printed) when this host cannot run the test. */
static bool skip(const char *test)
{
	char err[256];

	if (dsm_mem__probe(err, sizeof(err)) == 0)
		return false;
	printf("test_dsm_mem: %s skipped: %s\n", test, err);
	return true;
}

static int t_home_of(void *ctx, uint64_t gpa)
{
	struct tnode *t = ctx;

	return numa_layout__home_of(&t->c->layout, gpa);
}

static void t_event(struct tnode *t, char e)
{
	if (t->nev < sizeof(t->events) - 1)
		t->events[t->nev++] = e;
	t->events[t->nev] = 0;
}

static int t_send(void *ctx, unsigned dest, unsigned type,
		  const struct iovec *iov, int iovcnt)
{
	struct tnode *t = ctx;
	struct cluster *c = t->c;
	size_t len = 0;

	for (int i = 0; i < iovcnt; i++)
		len += iov[i].iov_len;
	if (dest >= c->n || iovcnt < 1 || iov[0].iov_len < 1 ||
	    ((const uint8_t *)iov[0].iov_base)[0] != type)
		atomic_fetch_add(&c->type_mismatch, 1);
	if (dest >= c->n)
		return -1;
	t_event(t, type == DSM_MSG_INV_ACK ? 'I'
		   : type == DSM_MSG_GRANT_READ || type == DSM_MSG_GRANT_WRITE ? 'G'
		   : 'o');
	struct qmsg *m = malloc(sizeof(*m) + len);

	if (!m)
		return -1;
	m->next = NULL;
	m->from = t->id;
	m->type = type;
	m->len = 0;
	for (int i = 0; i < iovcnt; i++) {
		memcpy(m->b + m->len, iov[i].iov_base, iov[i].iov_len);
		m->len += iov[i].iov_len;
	}
	struct tnode *d = &c->node[dest];

	atomic_fetch_add(&c->inflight, 1);
	pthread_mutex_lock(&d->qlock);
	if (d->tail)
		d->tail->next = m;
	else
		d->head = m;
	d->tail = m;
	pthread_cond_signal(&d->qcond);
	pthread_mutex_unlock(&d->qlock);
	unsigned delay = atomic_load(&t->send_delay_us);

	if (delay)
		usleep(delay);
	return 0;
}

static void t_fatal(void *ctx, const char *why)
{
	struct tnode *t = ctx;

	snprintf(t->fatal_why, sizeof(t->fatal_why), "%s", why);
	atomic_fetch_add(&t->fatals, 1);
	/* The failed node no longer serves faults: threads touching its
	 * memory would wait for the test timeout.  Check's fork mode ends
	 * the test process from any thread. */
	ck_assert_msg(t->c->expect_fatal, "node %u fatal: %s", t->id, why);
}

static void t_drop(void *ctx)
{
	t_event(ctx, 'D');
}

static void t_log(void *ctx, const char *line)
{
	struct tnode *t = ctx;

	atomic_fetch_add(&t->logs, 1);
	if (verbose())
		fprintf(stderr, "%s\n", line);
}

static void *deliver_main(void *arg)
{
	struct tnode *t = arg;

	pthread_mutex_lock(&t->qlock);
	for (;;) {
		while (!t->quit && (!t->head || t->hold))
			pthread_cond_wait(&t->qcond, &t->qlock);
		if (t->quit)
			break;
		struct qmsg *m = t->head;

		t->head = m->next;
		if (!t->head)
			t->tail = NULL;
		pthread_mutex_unlock(&t->qlock);
		dsm_mem__receive(t->dm, m->from, m->type, m->b, m->len);
		free(m);
		atomic_fetch_sub(&t->c->inflight, 1);
		pthread_mutex_lock(&t->qlock);
	}
	pthread_mutex_unlock(&t->qlock);
	return NULL;
}

static void set_hold(struct tnode *t, bool hold)
{
	pthread_mutex_lock(&t->qlock);
	t->hold = hold;
	pthread_cond_signal(&t->qcond);
	pthread_mutex_unlock(&t->qlock);
}

/* Guest memories and the layout; DSM not yet created (preloads go here). */
static struct cluster *cluster_mem(unsigned n, uint64_t ram)
{
	struct cluster *c = calloc(1, sizeof(*c));
	char err[256];

	ck_assert_ptr_nonnull(c);
	c->n = n;
	for (unsigned i = 0; i < n; i++) {
		struct tnode *t = &c->node[i];

		t->c = c;
		t->id = i;
		pthread_mutex_init(&t->qlock, NULL);
		pthread_cond_init(&t->qcond, NULL);
		ck_assert_int_eq(guest_mem__create(&t->mem, ram), 0);
	}
	ck_assert_msg(numa_layout__build(&c->layout, n, n, c->node[0].mem.region,
					 (unsigned)c->node[0].mem.nr_regions,
					 NULL, err, sizeof(err)) == 0,
		      "%s", err);
	return c;
}

static struct dsm_mem *node_dsm(struct cluster *c, unsigned i,
				unsigned max_requests, char *err,
				size_t errlen)
{
	struct tnode *t = &c->node[i];
	struct dsm_mem_config cfg = {
		.mem = &t->mem, .self = i, .nr_nodes = c->n,
		.max_requests = max_requests, .home_of = t_home_of,
		.send = t_send, .fatal = t_fatal, .log = t_log, .ctx = t,
		.hold_us = c->hold_us, .drop_translations = t_drop,
	};

	return dsm_mem__create(&cfg, err, errlen);
}

static void cluster_dsm(struct cluster *c, unsigned max_requests)
{
	char err[256];

	for (unsigned i = 0; i < c->n; i++) {
		struct tnode *t = &c->node[i];

		t->dm = node_dsm(c, i, max_requests, err, sizeof(err));
		ck_assert_msg(t->dm != NULL, "node %u: %s", i, err);
	}
	for (unsigned i = 0; i < c->n; i++) {
		struct tnode *t = &c->node[i];

		ck_assert_int_eq(pthread_create(&t->deliver, NULL,
						deliver_main, t), 0);
		t->delivering = true;
		ck_assert_msg(dsm_mem__start(t->dm, err, sizeof(err)) == 0,
			      "%s", err);
	}
}

static struct cluster *cluster_new(unsigned n, uint64_t ram,
				   unsigned max_requests)
{
	struct cluster *c = cluster_mem(n, ram);

	cluster_dsm(c, max_requests);
	return c;
}

static struct cluster *cluster_new_hold(unsigned n, uint64_t ram,
					unsigned hold_us)
{
	struct cluster *c = cluster_mem(n, ram);

	c->hold_us = hold_us;
	cluster_dsm(c, 0);
	return c;
}

static void cluster_free(struct cluster *c)
{
	for (unsigned i = 0; i < c->n; i++)
		if (c->node[i].dm)
			dsm_mem__stop(c->node[i].dm);
	for (unsigned i = 0; i < c->n; i++) {
		struct tnode *t = &c->node[i];

		if (t->delivering) {
			pthread_mutex_lock(&t->qlock);
			t->quit = true;
			pthread_cond_signal(&t->qcond);
			pthread_mutex_unlock(&t->qlock);
			pthread_join(t->deliver, NULL);
		}
		while (t->head) {
			struct qmsg *m = t->head;

			t->head = m->next;
			free(m);
		}
		dsm_mem__destroy(t->dm);
		guest_mem__destroy(&t->mem);
		pthread_mutex_destroy(&t->qlock);
		pthread_cond_destroy(&t->qcond);
	}
	free(c);
}

/* Every node idle and nothing in flight (twice in a row, 1 ms apart). */
static void wait_idle(struct cluster *c)
{
	uint64_t end = now_ns() + 10000000000ull;
	int calm = 0;

	while (calm < 2) {
		bool idle = atomic_load(&c->inflight) == 0;

		for (unsigned i = 0; i < c->n && idle; i++)
			idle = dsm_mem__idle(c->node[i].dm);
		calm = idle ? calm + 1 : 0;
		ck_assert_msg(now_ns() < end, "cluster never became idle");
		usleep(1000);
	}
}

/* The i-th page homed on node `home`. */
static uint64_t homed(struct cluster *c, unsigned home, unsigned i)
{
	struct numa_range r[4];

	ck_assert_uint_ge(numa_layout__node_ranges(&c->layout, home, r, 4), 1);
	ck_assert_uint_lt(i * PG, r[0].size);
	return r[0].gpa + i * PG;
}

static void *at(struct cluster *c, unsigned node, uint64_t gpa)
{
	void *p = guest_mem__ptr(&c->node[node].mem, gpa, PG);

	ck_assert_ptr_nonnull(p);
	return p;
}

static off_t memfd_off(const struct guest_mem *m, uint64_t gpa)
{
	for (int i = 0; i < m->nr_regions; i++)
		if (gpa >= m->region[i].gpa &&
		    gpa - m->region[i].gpa < m->region[i].size)
			return (off_t)(m->region[i].memfd_offset + gpa -
				       m->region[i].gpa);
	ck_abort_msg("gpa 0x%llx is not RAM", (unsigned long long)gpa);
	return -1;
}

/* The node's memfd holds the page (its page cache has it). */
static bool has_data(struct cluster *c, unsigned node, uint64_t gpa)
{
	const struct guest_mem *m = &c->node[node].mem;
	off_t off = memfd_off(m, gpa);

	return lseek(m->memfd, off, SEEK_DATA) == off;
}

/* Every page present in any memfd is one of touched[0..nt). */
static void check_only_touched(struct cluster *c, const uint64_t *touched,
			       unsigned nt)
{
	for (unsigned i = 0; i < c->n; i++) {
		const struct guest_mem *m = &c->node[i].mem;
		off_t off = 0, end = (off_t)m->ram_size;

		while (off < end) {
			off_t d = lseek(m->memfd, off, SEEK_DATA);

			if (d < 0)
				break;
			off_t h = lseek(m->memfd, d, SEEK_HOLE);

			for (off_t o = d; o < h; o += (off_t)PG) {
				bool ok = false;

				for (unsigned k = 0; k < nt && !ok; k++)
					ok = memfd_off(m, touched[k]) == o;
				ck_assert_msg(ok, "node %u: untouched memfd "
					      "offset 0x%llx holds a page", i,
					      (unsigned long long)o);
			}
			off = h;
		}
	}
}

static void fill(struct cluster *c, unsigned node, uint64_t gpa, uint8_t v)
{
	memset(at(c, node, gpa), v, PG);
}

static void expect(struct cluster *c, unsigned node, uint64_t gpa, uint8_t v)
{
	const volatile uint8_t *p = at(c, node, gpa);

	for (unsigned i = 0; i < PG; i++)
		ck_assert_msg(p[i] == v, "node %u gpa 0x%llx byte %u: %u, "
			      "expected %u", node, (unsigned long long)gpa, i,
			      p[i], v);
}

/* A thread blocked on a fault nobody serves would hang the test until
 * Check's timeout: fail fast and say so. */
static void join_within(pthread_t th, unsigned secs, const char *what)
{
	struct timespec ts;

	clock_gettime(CLOCK_REALTIME, &ts);
	ts.tv_sec += secs;
	ck_assert_msg(pthread_timedjoin_np(th, NULL, &ts) == 0,
		      "%s still blocked after %u s", what, secs);
}

static void stats(struct cluster *c, unsigned node, struct dsm_mem_stats *s)
{
	dsm_mem__stats(c->node[node].dm, s);
}

static void no_errors(struct cluster *c)
{
	for (unsigned i = 0; i < c->n; i++)
		ck_assert_msg(atomic_load(&c->node[i].fatals) == 0,
			      "node %u failed: %s", i, c->node[i].fatal_why);
	ck_assert_int_eq(atomic_load(&c->type_mismatch), 0);
}

START_TEST(test_coherence_3_nodes)
{
	if (skip("test_coherence_3_nodes"))
		return;
	struct cluster *c = cluster_new(3, 12 * MIB, 0);
	uint64_t p = homed(c, 1, 5), q = homed(c, 0, 7), r = homed(c, 2, 3);
	struct dsm_mem_stats s;

	fill(c, 0, p, 0xA5);		/* remote write: grant from home 1 */
	expect(c, 2, p, 0xA5);		/* 3 hops: home forwards to node 0 */
	expect(c, 1, p, 0xA5);
	expect(c, 0, p, 0xA5);
	wait_idle(c);
	for (unsigned i = 0; i < 3; i++) {
		ck_assert_int_eq(dsm_mem__access(c->node[i].dm, p),
				 DSM_ACC_SHARED);
		ck_assert(has_data(c, i, p));
	}
	fill(c, 2, p, 0x3C);		/* invalidates nodes 0 and 1 */
	wait_idle(c);
	ck_assert_int_eq(dsm_mem__access(c->node[2].dm, p), DSM_ACC_MODIFIED);
	for (unsigned i = 0; i < 2; i++) {
		ck_assert_int_eq(dsm_mem__access(c->node[i].dm, p),
				 DSM_ACC_INVALID);
		ck_assert_msg(!has_data(c, i, p), "node %u kept the page", i);
	}
	expect(c, 0, p, 0x3C);
	expect(c, 1, p, 0x3C);

	fill(c, 1, q, 0x11);		/* home 0, written on 1, read on 2 */
	expect(c, 2, q, 0x11);
	fill(c, 0, q, 0x22);		/* the home takes it back */
	expect(c, 1, q, 0x22);
	expect(c, 2, q, 0x22);
	fill(c, 2, r, 0x33);		/* the home's own local fault */
	expect(c, 0, r, 0x33);
	expect(c, 1, r, 0x33);
	wait_idle(c);
	no_errors(c);
	stats(c, 1, &s);
	ck_assert_uint_gt(s.core.pages_sent, 0);
	ck_assert_uint_eq(s.protocol_errors, 0);
	uint64_t touched[] = { p, q, r };

	check_only_touched(c, touched, 3);
	cluster_free(c);
}
END_TEST

/* The kernel behaviour behind each action: a WRITE_PROTECTed page faults
 * WP on write, a ZAPped page leaves the memfd and faults MISSING again. */
START_TEST(test_zap_and_write_protect)
{
	if (skip("test_zap_and_write_protect"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 0);
	uint64_t p = homed(c, 1, 2);
	struct dsm_mem_stats a, b;
	volatile uint64_t *w0 = at(c, 0, p), *w1 = at(c, 1, p);

	stats(c, 1, &a);
	w1[0] = 1;			/* home: hole -> MAP_LOCAL, no message */
	stats(c, 1, &b);
	ck_assert_uint_eq(b.uffd_events, a.uffd_events + 1);
	ck_assert_uint_eq(b.core.local_faults, a.core.local_faults + 1);
	ck_assert_uint_eq(b.msgs_sent, a.msgs_sent);
	ck_assert(has_data(c, 1, p));

	ck_assert_uint_eq(w0[0], 1);	/* home write-protects, sends */
	wait_idle(c);
	stats(c, 1, &a);
	ck_assert_uint_eq(a.write_protects, b.write_protects + 1);
	w1[0] = 2;			/* must fault WP and invalidate 0 */
	stats(c, 1, &b);
	ck_assert_uint_eq(b.wp_faults, a.wp_faults + 1);
	wait_idle(c);
	ck_assert(!has_data(c, 0, p));
	ck_assert_int_eq(dsm_mem__access(c->node[0].dm, p), DSM_ACC_INVALID);

	stats(c, 0, &a);
	ck_assert_uint_eq(w0[0], 2);	/* faults MISSING again */
	stats(c, 0, &b);
	ck_assert_uint_eq(b.uffd_events, a.uffd_events + 1);
	ck_assert_uint_eq(b.read_faults, a.read_faults + 1);
	ck_assert_uint_eq(b.pages_received, a.pages_received + 1);

	w0[1] = 3;			/* S -> M upgrade on node 0: no data */
	stats(c, 0, &a);
	ck_assert_uint_eq(a.wp_faults, b.wp_faults + 1);
	ck_assert_uint_eq(a.pages_received, b.pages_received);
	wait_idle(c);
	ck_assert(!has_data(c, 1, p));
	ck_assert_uint_eq(w1[1], 3);
	no_errors(c);
	cluster_free(c);
}
END_TEST

/* The node that loses a page must not be able to read the old bytes once
 * its INV_ACK or forwarded grant has left, even while its event is still
 * running: here the sender stalls 50 ms after each send, and the test
 * reads through it as soon as the write elsewhere completed. */
START_TEST(test_no_stale_copy_after_send)
{
	if (skip("test_no_stale_copy_after_send"))
		return;
	struct cluster *c = cluster_new(3, 12 * MIB, 0);
	uint64_t p = homed(c, 0, 11), q = homed(c, 0, 12);

	fill(c, 0, p, 1);
	expect(c, 1, p, 1);		/* nodes 0, 1 share p */
	wait_idle(c);
	atomic_store(&c->node[1].send_delay_us, 50000);
	fill(c, 2, p, 2);		/* INV to 1, whose ack then stalls */
	expect(c, 1, p, 2);
	wait_idle(c);

	atomic_store(&c->node[1].send_delay_us, 0);
	fill(c, 1, q, 3);		/* node 1 owns q */
	wait_idle(c);
	atomic_store(&c->node[1].send_delay_us, 50000);
	fill(c, 2, q, 4);		/* FWD_WRITE: 1 zaps, grants, stalls */
	expect(c, 1, q, 4);
	atomic_store(&c->node[1].send_delay_us, 0);
	wait_idle(c);
	no_errors(c);
	cluster_free(c);
}
END_TEST

static void events_reset(struct cluster *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		c->node[i].nev = 0;
		c->node[i].events[0] = 0;
	}
}

/* A node that punches a page out asks for the translations built from it
 * to be dropped (KVM's shadow page tables) before its next message leaves,
 * once per step; a step that punches nothing asks nothing. */
START_TEST(test_translations_dropped_before_send)
{
	if (skip("test_translations_dropped_before_send"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 0);
	uint64_t p = homed(c, 1, 3), q = homed(c, 1, 4), r = homed(c, 1, 5);

	fill(c, 1, p, 1);
	expect(c, 0, p, 1);		/* node 0 shares p */
	fill(c, 1, q, 1);		/* node 1 (home) holds q Modified */
	wait_idle(c);
	events_reset(c);
	fill(c, 1, p, 2);		/* INV to node 0: punch, then ack */
	wait_idle(c);
	ck_assert_str_eq(c->node[0].events, "DI");
	events_reset(c);
	fill(c, 0, q, 3);		/* home gives q away: punch, then grant */
	wait_idle(c);
	ck_assert_str_eq(c->node[1].events, "DG");
	events_reset(c);
	expect(c, 0, r, 0);		/* a read share punches nothing */
	wait_idle(c);
	ck_assert_ptr_null(strchr(c->node[0].events, 'D'));
	ck_assert_ptr_null(strchr(c->node[1].events, 'D'));
	ck_assert_str_eq(c->node[1].events, "G");
	no_errors(c);
	cluster_free(c);
}
END_TEST

struct worker {
	struct cluster *c;
	unsigned node, slot, iters;
	uint64_t ctr[3], fs;
	pthread_barrier_t *start;
	int bad;
};

static void *atomic_worker(void *arg)
{
	struct worker *w = arg;
	uint64_t *ctr[3];
	volatile uint64_t *mine = (volatile uint64_t *)at(w->c, w->node,
							   w->fs) + w->slot;

	for (unsigned k = 0; k < 3; k++)
		ctr[k] = (uint64_t *)at(w->c, w->node, w->ctr[k]) + 8 * k;
	pthread_barrier_wait(w->start);
	for (unsigned i = 0; i < w->iters; i++) {
		for (unsigned k = 0; k < 3; k++)
			__atomic_fetch_add(ctr[k], 1, __ATOMIC_SEQ_CST);
		/* Plain RMW of a word only this thread writes, in a page all
		 * threads write: a stale copy would lose an increment. */
		if (*mine != i)
			w->bad++;
		*mine = i + 1;
	}
	return NULL;
}

static unsigned iters(void)
{
	const char *e = getenv("KRG_DSM_MEM_ITERS");

	return e ? (unsigned)strtoul(e, NULL, 0) : 1500;
}

START_TEST(test_atomics_and_false_sharing)
{
	if (skip("test_atomics_and_false_sharing"))
		return;
	struct cluster *c = cluster_new(3, 12 * MIB, 0);
	struct worker w[6];
	pthread_t th[6];
	unsigned n = iters();
	uint64_t ctr[3] = { homed(c, 0, 1), homed(c, 1, 1), homed(c, 2, 1) };
	uint64_t fs = homed(c, 1, 9);
	pthread_barrier_t start;
	uint64_t t0 = now_ns();

	pthread_barrier_init(&start, NULL, 6);
	for (unsigned i = 0; i < 6; i++) {
		w[i] = (struct worker){ .c = c, .node = i % 3, .slot = i,
					.iters = n, .fs = fs, .start = &start };
		memcpy(w[i].ctr, ctr, sizeof(ctr));
		ck_assert_int_eq(pthread_create(&th[i], NULL, atomic_worker,
						&w[i]), 0);
	}
	for (unsigned i = 0; i < 6; i++)
		join_within(th[i], 30, "atomic worker");
	pthread_barrier_destroy(&start);
	double secs = (double)(now_ns() - t0) / 1e9;

	for (unsigned i = 0; i < 6; i++)
		ck_assert_msg(w[i].bad == 0, "thread %u lost %d updates", i,
			      w[i].bad);
	for (unsigned node = 0; node < 3; node++) {
		for (unsigned k = 0; k < 3; k++) {
			volatile uint64_t *v =
				(uint64_t *)at(c, node, ctr[k]) + 8 * k;
			ck_assert_msg(*v == 6ull * n, "node %u counter %u: "
				      "%llu, expected %llu", node, k,
				      (unsigned long long)*v,
				      6ull * n);
		}
		for (unsigned i = 0; i < 6; i++)
			ck_assert_uint_eq(((volatile uint64_t *)at(c, node,
								   fs))[i], n);
	}
	wait_idle(c);
	no_errors(c);
	uint64_t msgs = 0, inv = 0;

	for (unsigned i = 0; i < 3; i++) {
		struct dsm_mem_stats s;

		stats(c, i, &s);
		msgs += s.msgs_sent;
		inv += s.invalidations;
	}
	printf("test_dsm_mem: 6 threads on 3 nodes, %u x 3 atomic adds + 1 "
	       "false-shared store each: %.2f s, %llu messages, %llu "
	       "invalidations\n", n, secs, (unsigned long long)msgs,
	       (unsigned long long)inv);
	uint64_t touched[] = { ctr[0], ctr[1], ctr[2], fs };

	check_only_touched(c, touched, 4);
	cluster_free(c);
}
END_TEST

struct player {
	struct cluster *c;
	unsigned node, turns;
	uint64_t turn_gpa, data_gpa, fs_gpa;
	int bad;
};

/* Nodes take turns: every turn moves the turn word, the data word and the
 * false-shared page to another node, and the plain load after seeing the
 * turn must observe the previous node's plain store. */
static void *ping_pong_worker(void *arg)
{
	struct player *p = arg;
	uint64_t *turn = at(p->c, p->node, p->turn_gpa);
	volatile uint64_t *data = at(p->c, p->node, p->data_gpa);
	volatile uint64_t *mine = (volatile uint64_t *)at(p->c, p->node,
							   p->fs_gpa) + p->node;
	unsigned n = p->c->n;

	for (unsigned i = 0; i < p->turns; i++) {
		uint64_t t;

		while ((t = __atomic_load_n(turn, __ATOMIC_ACQUIRE)) % n !=
		       p->node)
			sched_yield();
		if (*data != t || *mine != i)
			p->bad++;
		*data = t + 1;
		*mine = i + 1;
		__atomic_fetch_add(turn, 1, __ATOMIC_RELEASE);
	}
	return NULL;
}

/* Three players, `turns` turns each, on cluster c (3 nodes): every player
 * joins within join_s and saw no stale value; the data word ends exact. */
static void play_ping_pong(struct cluster *c, unsigned turns, unsigned join_s)
{
	struct player p[3];
	pthread_t th[3];

	for (unsigned i = 0; i < 3; i++) {
		p[i] = (struct player){ c, i, turns, homed(c, 0, 30),
					homed(c, 2, 30), homed(c, 1, 30), 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, ping_pong_worker,
						&p[i]), 0);
	}
	for (unsigned i = 0; i < 3; i++) {
		join_within(th[i], join_s, "ping-pong player");
		ck_assert_msg(p[i].bad == 0, "node %u saw %d stale values", i,
			      p[i].bad);
	}
	for (unsigned i = 0; i < 3; i++)
		ck_assert_uint_eq(*(volatile uint64_t *)at(c, i, homed(c, 2, 30)),
				  3ull * turns);
}

START_TEST(test_ping_pong)
{
	if (skip("test_ping_pong"))
		return;
	struct cluster *c = cluster_new(3, 12 * MIB, 0);
	unsigned turns = iters() / 5;
	uint64_t t0 = now_ns(), msgs = 0;

	play_ping_pong(c, turns, 30);
	double secs = (double)(now_ns() - t0) / 1e9;

	for (unsigned i = 0; i < 3; i++) {
		struct dsm_mem_stats s;

		stats(c, i, &s);
		msgs += s.msgs_sent;
	}
	wait_idle(c);
	no_errors(c);
	printf("test_dsm_mem: ping-pong, %u turns on 3 nodes: %.2f s, %.0f us "
	       "per turn, %llu messages\n", 3 * turns, secs,
	       secs * 1e6 / (3 * turns), (unsigned long long)msgs);
	ck_assert_uint_ge(msgs, 3ull * turns);
	cluster_free(c);
}
END_TEST

struct storer {
	struct cluster *c;
	unsigned node, slot;
	uint64_t gpa;
	atomic_bool *stop;
	uint64_t n;
	int bad;
};

static void *store_worker(void *arg)
{
	struct storer *s = arg;
	volatile uint64_t *mine = (volatile uint64_t *)at(s->c, s->node,
							   s->gpa) + s->slot;

	while (!atomic_load_explicit(s->stop, memory_order_relaxed)) {
		if (*mine != s->n)
			s->bad++;
		*mine = ++s->n;
		/* Leave the DSM threads some CPU on a 2-core machine. */
		if (!(s->n & 4095))
			sched_yield();
	}
	return NULL;
}

/* Two nodes store without pause into different words of one page: every
 * transfer takes the page from a node that is writing it, so a store that
 * slips between the SEND's read and the ZAP's hole would be lost. */
START_TEST(test_stores_during_transfer)
{
	if (skip("test_stores_during_transfer"))
		return;
	struct cluster *c = cluster_new(3, 12 * MIB, 0);
	atomic_bool stop = false;
	struct storer s[2];
	pthread_t th[2];
	uint64_t gpa = homed(c, 1, 40), inv = 0;

	for (unsigned i = 0; i < 2; i++) {
		s[i] = (struct storer){ c, i * 2, i, gpa, &stop, 0, 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, store_worker,
						&s[i]), 0);
	}
	uint64_t end = now_ns() + 3000000000ull;

	while (inv < 60 && now_ns() < end) {
		usleep(20000);
		inv = 0;
		for (unsigned i = 0; i < 3; i++) {
			struct dsm_mem_stats st;

			stats(c, i, &st);
			inv += st.invalidations;
		}
	}
	atomic_store(&stop, true);
	for (unsigned i = 0; i < 2; i++) {
		join_within(th[i], 10, "writer");
		ck_assert_msg(s[i].bad == 0, "writer on node %u lost %d stores",
			      s[i].node, s[i].bad);
	}
	for (unsigned node = 0; node < 3; node++)
		for (unsigned i = 0; i < 2; i++)
			ck_assert_uint_eq(((volatile uint64_t *)at(c, node,
								   gpa))[i],
					  s[i].n);
	wait_idle(c);
	no_errors(c);
	printf("test_dsm_mem: 2 writers, one page: %llu + %llu stores, %llu "
	       "invalidations\n", (unsigned long long)s[0].n,
	       (unsigned long long)s[1].n, (unsigned long long)inv);
	ck_assert_uint_ge(inv, 10);
	cluster_free(c);
}
END_TEST

struct reader {
	struct cluster *c;
	unsigned node;
	uint64_t gpa;
	uint8_t expect;
	int bad;
};

static void *read_worker(void *arg)
{
	struct reader *r = arg;
	const volatile uint8_t *p = at(r->c, r->node, r->gpa);

	for (unsigned i = 0; i < PG; i += 512)
		r->bad += p[i] != r->expect;
	return NULL;
}

/* max_requests = 1: concurrent faults on different pages park on -EBUSY
 * and are retried after each grant; none may be forgotten. */
START_TEST(test_busy_faults_park)
{
	if (skip("test_busy_faults_park"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 1);
	struct reader r[4];
	pthread_t th[4];
	struct dsm_mem_stats s;

	for (unsigned i = 0; i < 4; i++)
		fill(c, 1, homed(c, 1, 20 + i), (uint8_t)(0x40 + i));
	set_hold(&c->node[1], true);	/* the home hears nothing yet */
	for (unsigned i = 0; i < 4; i++) {
		r[i] = (struct reader){ c, 0, homed(c, 1, 20 + i),
					(uint8_t)(0x40 + i), 0 };
		ck_assert_int_eq(pthread_create(&th[i], NULL, read_worker,
						&r[i]), 0);
	}
	uint64_t end = now_ns() + 5000000000ull;

	do {
		usleep(1000);
		stats(c, 0, &s);
		ck_assert_msg(now_ns() < end, "faults never arrived");
	} while (s.uffd_events < 4);
	ck_assert_uint_ge(s.parked, 3);
	set_hold(&c->node[1], false);
	for (unsigned i = 0; i < 4; i++) {
		join_within(th[i], 10, "parked reader");
		ck_assert_int_eq(r[i].bad, 0);
	}
	wait_idle(c);
	no_errors(c);
	cluster_free(c);
}
END_TEST

/* RAM written before the DSM exists (a loaded kernel) is taken over on
 * its home, and refused anywhere else. */
START_TEST(test_preloaded_pages)
{
	if (skip("test_preloaded_pages"))
		return;
	struct cluster *c = cluster_mem(2, 8 * MIB);
	uint64_t p = homed(c, 0, 4), other = homed(c, 0, 5);
	uint8_t buf[PG];
	char err[256];
	struct dsm_mem_stats s;

	memset(buf, 0x5A, sizeof(buf));
	ck_assert_int_eq(guest_mem__write(&c->node[1].mem, other, buf, PG), 0);
	ck_assert_ptr_null(node_dsm(c, 1, 0, err, sizeof(err)));
	ck_assert_msg(strstr(err, "node 0 homes it") != NULL, "%s", err);
	printf("test_dsm_mem: refused as expected: %s\n", err);
	/* Hand the stray page back to the hole it was. */
	ck_assert_int_eq(fallocate(c->node[1].mem.memfd,
				   FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
				   memfd_off(&c->node[1].mem, other), PG), 0);

	ck_assert_int_eq(guest_mem__write(&c->node[0].mem, p, buf, PG), 0);
	cluster_dsm(c, 0);
	stats(c, 0, &s);
	ck_assert_uint_eq(s.preloaded_pages, 1);
	expect(c, 1, p, 0x5A);
	fill(c, 1, p, 0x6B);		/* node 0 never faulted on p */
	wait_idle(c);
	ck_assert(!has_data(c, 0, p));
	expect(c, 0, p, 0x6B);
	no_errors(c);
	cluster_free(c);
}
END_TEST

static void *blocked_reader(void *arg)
{
	struct reader *r = arg;

	r->bad = *(const volatile uint8_t *)at(r->c, r->node, r->gpa);
	return NULL;
}

/* A page that appears in the memfd while its fault waits for a grant
 * (UFFDIO_COPY then fails with EEXIST): the grant's data wins, the
 * faulting thread is woken, nothing hangs. */
START_TEST(test_copy_eexist)
{
	if (skip("test_copy_eexist"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 0);
	uint64_t p = homed(c, 0, 9);
	struct reader r = { c, 1, p, 0, -1 };
	struct dsm_mem_stats s;
	uint8_t junk[PG];
	pthread_t th;

	fill(c, 0, p, 0x2E);
	set_hold(&c->node[0], true);
	ck_assert_int_eq(pthread_create(&th, NULL, blocked_reader, &r), 0);
	uint64_t end = now_ns() + 5000000000ull;

	do {
		usleep(1000);
		stats(c, 1, &s);
		ck_assert(now_ns() < end);
	} while (s.uffd_events < 1);
	memset(junk, 0xEE, sizeof(junk));
	ck_assert_int_eq(pwrite(c->node[1].mem.memfd, junk, PG,
				memfd_off(&c->node[1].mem, p)), (ssize_t)PG);
	set_hold(&c->node[0], false);
	join_within(th, 10, "reader of a page that appeared");
	ck_assert_int_eq(r.bad, 0x2E);
	expect(c, 1, p, 0x2E);
	stats(c, 1, &s);
	ck_assert_uint_eq(s.copy_eexist, 1);
	fill(c, 0, p, 0x2F);		/* and node 1 still loses it cleanly */
	wait_idle(c);
	ck_assert(!has_data(c, 1, p));
	expect(c, 1, p, 0x2F);
	no_errors(c);
	cluster_free(c);
}
END_TEST

enum bad { BAD_SHORT, BAD_SENDER, BAD_TYPE, BAD_UNASKED_GRANT, BAD_NR };

/* A broken peer: the node logs, reports fatal once, and touches nothing. */
START_TEST(test_bad_messages)
{
	if (skip("test_bad_messages"))
		return;
	for (unsigned k = 0; k < BAD_NR; k++) {
		struct cluster *c = cluster_new(2, 8 * MIB, 0);
		struct tnode *t = &c->node[0];

		c->expect_fatal = true;
		uint8_t msg[24 + PG];
		struct dsm_msg m = {
			.type = DSM_MSG_GRANT_READ, .flags = DSM_MF_DATA,
			.sender = 1, .requester = 0, .txn = 1,
			.page = homed(c, 1, 3) / PG,
		};
		unsigned from = 1, type = m.type;
		size_t len = sizeof(msg);

		memset(msg, 0x77, sizeof(msg));
		if (k == BAD_SENDER)
			m.sender = 0;
		dsm_msg__encode(&m, msg);
		if (k == BAD_SHORT)
			len = 30;
		if (k == BAD_TYPE)
			type = DSM_MSG_DONE;
		int rc = dsm_mem__receive(t->dm, from, type, msg, len);

		ck_assert_msg(rc < 0, "case %u accepted", k);
		ck_assert_int_eq(atomic_load(&t->fatals), 1);
		ck_assert_int_ge(atomic_load(&t->logs), 1);
		ck_assert(strlen(t->fatal_why) > 0);
		if (verbose())
			printf("case %u: %s\n", k, t->fatal_why);
		ck_assert_int_eq(dsm_mem__receive(t->dm, from, type, msg, len),
				 -ESHUTDOWN);
		ck_assert_int_eq(atomic_load(&t->fatals), 1);
		ck_assert_int_eq(lseek(t->mem.memfd, 0, SEEK_DATA), -1);
		struct dsm_mem_stats s;

		stats(c, 0, &s);
		ck_assert_uint_eq(s.installs + s.msgs_sent, 0);
		cluster_free(c);
	}
}
END_TEST

/* Stop wakes a thread blocked on a fault that can no longer be served. */
START_TEST(test_stop_wakes_blocked)
{
	if (skip("test_stop_wakes_blocked"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 0);
	struct reader r = { c, 0, homed(c, 1, 6), 0, -1 };
	struct dsm_mem_stats s;
	pthread_t th;

	set_hold(&c->node[1], true);
	ck_assert_int_eq(pthread_create(&th, NULL, blocked_reader, &r), 0);
	uint64_t end = now_ns() + 5000000000ull;

	do {
		usleep(1000);
		stats(c, 0, &s);
		ck_assert(now_ns() < end);
	} while (s.uffd_events < 1);
	usleep(20000);
	ck_assert_int_eq(r.bad, -1);	/* still blocked */
	dsm_mem__stop(c->node[0].dm);
	join_within(th, 5, "reader after stop");
	ck_assert_int_eq(r.bad, 0);
	set_hold(&c->node[1], false);
	cluster_free(c);
}
END_TEST

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static uint64_t pct(uint64_t *v, unsigned n, double q)
{
	qsort(v, n, sizeof(*v), cmp_u64);
	return v[(unsigned)(q * (n - 1))];
}

#define LAT_PAGES 256

/* Numbers: a local fault (home, hole -> MAP_LOCAL) against a mapped
 * access, and remote read / write faults through the in-process queues. */
START_TEST(test_fault_latency)
{
	if (skip("test_fault_latency"))
		return;
	struct cluster *c = cluster_new(2, 8 * MIB, 0);
	static uint64_t loc[LAT_PAGES], hit[LAT_PAGES], rd[LAT_PAGES],
		wr[LAT_PAGES];
	struct dsm_mem_stats s;

	for (unsigned i = 0; i < LAT_PAGES; i++) {
		volatile uint8_t *p = at(c, 1, homed(c, 1, i));
		uint64_t t0 = now_ns();

		p[0] = (uint8_t)i;
		uint64_t t1 = now_ns();

		p[8] = (uint8_t)i;
		loc[i] = t1 - t0;
		hit[i] = now_ns() - t1;
	}
	for (unsigned i = 0; i < LAT_PAGES; i++) {
		volatile uint8_t *p = at(c, 0, homed(c, 1, i));
		uint64_t t0 = now_ns();
		uint8_t v = p[0];

		rd[i] = now_ns() - t0;
		ck_assert_uint_eq(v, (uint8_t)i);
	}
	for (unsigned i = 0; i < LAT_PAGES; i++) {
		volatile uint8_t *p = at(c, 0, homed(c, 1, LAT_PAGES + i));
		uint64_t t0 = now_ns();

		p[0] = 1;
		wr[i] = now_ns() - t0;
	}
	wait_idle(c);
	no_errors(c);
	stats(c, 0, &s);
	printf("test_dsm_mem: local fault p50 %.1f us (mapped access %.2f us); "
	       "remote read fault p50 %.1f us p99 %.1f us; remote write fault "
	       "p50 %.1f us p99 %.1f us; node 0 histogram p50 <= %llu us, "
	       "p99 <= %llu us over %llu faults\n",
	       (double)pct(loc, LAT_PAGES, 0.5) / 1e3,
	       (double)pct(hit, LAT_PAGES, 0.5) / 1e3,
	       (double)pct(rd, LAT_PAGES, 0.5) / 1e3,
	       (double)pct(rd, LAT_PAGES, 0.99) / 1e3,
	       (double)pct(wr, LAT_PAGES, 0.5) / 1e3,
	       (double)pct(wr, LAT_PAGES, 0.99) / 1e3,
	       (unsigned long long)dsm_mem__lat_quantile_us(&s, 0.5),
	       (unsigned long long)dsm_mem__lat_quantile_us(&s, 0.99),
	       (unsigned long long)s.lat_count);
	ck_assert_uint_eq(s.lat_count, 2 * LAT_PAGES);
	ck_assert_uint_eq(s.core.pages_received, 2 * LAT_PAGES);
	ck_assert_uint_eq(s.bytes_received,
			  2 * LAT_PAGES * (24 + PG));
	cluster_free(c);
}
END_TEST

/* The minimum hold: a node that just fetched a page for a faulting thread
 * keeps it that long before the home may take it back, and the page that
 * moved shows up in the census of most-lost pages. */
START_TEST(test_hold_keeps_page)
{
	const unsigned hold_us = 30000;
	struct cluster *c = cluster_new_hold(2, 8 * MIB, hold_us);
	uint64_t g = homed(c, 0, 40);
	struct dsm_mem_stats s0, s1;

	fill(c, 1, g, 7);		/* node 1 fetches it to write */
	uint64_t t0 = now_ns();

	expect(c, 0, g, 7);		/* the home wants it back */
	uint64_t waited_us = (now_ns() - t0) / 1000;

	wait_idle(c);
	no_errors(c);
	stats(c, 0, &s0);
	stats(c, 1, &s1);
	printf("test_dsm_mem: hold %u us: the home's read waited %llu us\n",
	       hold_us, (unsigned long long)waited_us);
	/* The hold runs from node 1's grant, a moment before t0. */
	ck_assert_uint_ge(waited_us, hold_us / 2);
	ck_assert_uint_eq(s1.held_msgs, 1);
	ck_assert_uint_ge(s1.held_ns, (uint64_t)hold_us / 2 * 1000);
	ck_assert_uint_eq(s0.held_msgs, 0);
	ck_assert_uint_eq(s1.hot[0].gpa, g);
	ck_assert_uint_eq(s1.hot[0].count, 1);
	ck_assert_uint_eq(s1.hot[1].count, 0);

	/* A read copy is not held: the home's write takes it at once. */
	uint64_t r = homed(c, 0, 42);

	fill(c, 0, r, 5);
	expect(c, 1, r, 5);		/* node 1 fetches a read copy */
	t0 = now_ns();
	fill(c, 0, r, 6);		/* the home invalidates it */
	waited_us = (now_ns() - t0) / 1000;
	wait_idle(c);
	stats(c, 1, &s1);
	ck_assert_uint_eq(s1.held_msgs, 1);	/* still only the first */
	printf("test_dsm_mem: invalidating a fresh read copy took %llu us\n",
	       (unsigned long long)waited_us);
	/* The home's write needed node 1's ack, so the home holds it now. */
	expect(c, 1, r, 6);
	wait_idle(c);
	stats(c, 0, &s0);
	ck_assert_uint_eq(s0.held_msgs, 1);

	/* A page the home maps by itself (no transfer) is not held. */
	uint64_t h = homed(c, 0, 41);

	fill(c, 0, h, 3);
	t0 = now_ns();
	expect(c, 1, h, 3);
	waited_us = (now_ns() - t0) / 1000;
	wait_idle(c);
	stats(c, 0, &s0);
	ck_assert_uint_eq(s0.held_msgs, 1);
	printf("test_dsm_mem: an unheld transfer took %llu us\n",
	       (unsigned long long)waited_us);
	cluster_free(c);
}
END_TEST

/* Holding delays messages without reordering those of one page: the
 * ping-pong of test_ping_pong, with a hold, sees no stale value. */
START_TEST(test_hold_ping_pong)
{
	struct cluster *c = cluster_new_hold(3, 12 * MIB, 200);
	unsigned turns = iters() / 50;
	uint64_t held = 0;

	play_ping_pong(c, turns, 50);
	wait_idle(c);
	no_errors(c);
	for (unsigned i = 0; i < 3; i++) {
		struct dsm_mem_stats s;

		stats(c, i, &s);
		held += s.held_msgs;
	}
	printf("test_dsm_mem: ping-pong with a 200 us hold, %u turns: %llu "
	       "messages held\n", 3 * turns, (unsigned long long)held);
	ck_assert_uint_gt(held, 0);
	cluster_free(c);
}
END_TEST

static Suite *dsm_mem_suite(void)
{
	Suite *s = suite_create("dsm_mem");
	TCase *tc = tcase_create("uffd");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_coherence_3_nodes);
	tcase_add_test(tc, test_zap_and_write_protect);
	tcase_add_test(tc, test_no_stale_copy_after_send);
	tcase_add_test(tc, test_translations_dropped_before_send);
	tcase_add_test(tc, test_atomics_and_false_sharing);
	tcase_add_test(tc, test_ping_pong);
	tcase_add_test(tc, test_stores_during_transfer);
	tcase_add_test(tc, test_busy_faults_park);
	tcase_add_test(tc, test_preloaded_pages);
	tcase_add_test(tc, test_copy_eexist);
	tcase_add_test(tc, test_bad_messages);
	tcase_add_test(tc, test_stop_wakes_blocked);
	tcase_add_test(tc, test_fault_latency);
	tcase_add_test(tc, test_hold_keeps_page);
	tcase_add_test(tc, test_hold_ping_pong);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(dsm_mem_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
