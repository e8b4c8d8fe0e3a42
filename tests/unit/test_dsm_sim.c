/* Randomized simulation of the DSM protocol core: N nodes, a few hot pages,
 * a network with per-(sender,receiver) FIFO channels delivered in random
 * order with random stalls, random reads and writes from every node.  Page
 * contents are modelled as one 64-bit version per page per node; a write
 * (only possible with a writable mapping) bumps the page's global version.
 * After every step: single writer, no reader beside a writer, and every node
 * with access holds the latest version (sequential consistency).  At every
 * quiescent point: directory == local states, every waiting access served.
 *
 * KRG_DSM_SIM_STEPS=n   total steps of the random run (default 6 M, 100 seeds)
 * KRG_DSM_SIM_SEED=s    replay one seed (printed on failure)
 */
#include <check.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "dsm/dsm_proto.h"

#define MAXN 64
#define MAXP 16
#define CHAN_MAX 4096		/* messages one channel may hold */
#define POISON 0xDEADDEADDEADDEADull
#define STARVE_STEPS 400000u	/* a waiting access older than this fails */
#define DRAIN_MAX 200000u	/* deliveries to reach quiescence */
#define DEFAULT_STEPS 6000000ull
#define STEPS_PER_SEED 60000ull

struct sim_msg {
	uint8_t bytes[DSM_MSG_SIZE];
	uint8_t has_data;
	uint64_t value;
};

struct chan {			/* growable ring, allocated on first use */
	struct sim_msg *m;
	unsigned head, len, cap;
};

struct sim {
	uint64_t seed, rng, step;
	unsigned nodes, pages, hot;
	unsigned home[MAXP];
	struct dsm_node *dn[MAXN];
	uint64_t latest[MAXP];
	uint64_t mem[MAXN][MAXP];
	uint8_t mapped[MAXN][MAXP];	/* 0 none, 1 ro, 2 rw */
	unsigned rwait[MAXN][MAXP], wwait[MAXN][MAXP];
	uint64_t since[MAXN][MAXP];	/* step the oldest waiter came */
	struct chan *ch;		/* [MAXN * MAXN] */
	unsigned live[MAXN * MAXN];	/* non-empty channels */
	int live_pos[MAXN * MAXN];
	unsigned nr_live, in_flight;
	int slow_chan;			/* stalled channel, -1 none */
	unsigned p_fault;		/* percent of steps that fault */
	uint64_t reads, writes, hits, deliveries, max_actions;
	struct dsm_actions out[4];	/* one per nesting depth */
	uint8_t page_buf[DSM_PAGE_SIZE];
};

static uint64_t rnd(struct sim *s)
{
	/* splitmix64: tiny, deterministic, good enough to shuffle a net */
	uint64_t z = (s->rng += 0x9E3779B97F4A7C15ull);

	z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
	z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
	return z ^ (z >> 31);
}

static unsigned below(struct sim *s, unsigned n)
{
	return (unsigned)(rnd(s) % n);
}

static unsigned home_cb(void *ctx, uint64_t page)
{
	const struct sim *s = ctx;

	return s->home[page];
}

static void dump(struct sim *s)
{
	fprintf(stderr, "=== dsm sim seed=%" PRIu64 " step=%" PRIu64
		" nodes=%u pages=%u in_flight=%u\n", s->seed, s->step,
		s->nodes, s->pages, s->in_flight);
	for (unsigned p = 0; p < s->pages; p++) {
		struct dsm_dir_info di;

		dsm__dir_info(s->dn[s->home[p]], p, &di);
		fprintf(stderr, "page %u home %u latest %" PRIu64 " dir %s "
			"owner %u cs 0x%" PRIx64 "%s%s q%u\n", p, s->home[p],
			s->latest[p], di.exclusive ? "EXCL" : "SHARED",
			di.owner, di.copyset, di.busy ? " BUSY" : "",
			di.home_current ? " HOME_CURRENT" : "", di.queued);
		for (unsigned n = 0; n < s->nodes; n++)
			fprintf(stderr, "  node %u acc %d%s mapped %u mem %"
				PRIx64 " waits r%u w%u\n", n,
				dsm__access(s->dn[n], p),
				dsm__pending(s->dn[n], p) ? " PEND" : "",
				s->mapped[n][p], s->mem[n][p],
				s->rwait[n][p], s->wwait[n][p]);
	}
	for (unsigned c = 0; c < s->nodes * MAXN; c++) {
		struct chan *ch = &s->ch[c];

		for (unsigned i = 0; i < ch->len; i++) {
			struct sim_msg *m = &ch->m[(ch->head + i) % ch->cap];

			fprintf(stderr, "  chan %u->%u [%u] %s page %u req %u "
				"txn %u\n", c / MAXN, c % MAXN, i,
				dsm_msg__type_name(m->bytes[0]), m->bytes[8],
				m->bytes[3], m->bytes[4] | m->bytes[5] << 8);
		}
	}
}

static void sim_fail(struct sim *s, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void sim_fail(struct sim *s, const char *fmt, ...)
{
	char msg[256];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	dump(s);
	ck_abort_msg("dsm sim seed=%" PRIu64 " step=%" PRIu64
		     " (replay: KRG_DSM_SIM_SEED=%" PRIu64 "): %s", s->seed,
		     s->step, s->seed, msg);
}

static void chan_push(struct sim *s, unsigned from, unsigned to,
		      const struct sim_msg *m)
{
	unsigned c = from * MAXN + to;
	struct chan *ch = &s->ch[c];

	if (ch->len == ch->cap) {
		unsigned cap = ch->cap ? ch->cap * 2 : 8;
		struct sim_msg *nm;

		if (cap > CHAN_MAX)
			sim_fail(s, "channel %u->%u overflow", from, to);
		nm = malloc(cap * sizeof(*nm));
		ck_assert_ptr_nonnull(nm);
		for (unsigned i = 0; i < ch->len; i++)
			nm[i] = ch->m[(ch->head + i) % ch->cap];
		free(ch->m);
		ch->m = nm;
		ch->head = 0;
		ch->cap = cap;
	}
	ch->m[(ch->head + ch->len++) % ch->cap] = *m;
	if (ch->len == 1) {
		s->live_pos[c] = (int)s->nr_live;
		s->live[s->nr_live++] = c;
	}
	s->in_flight++;
}

static struct sim_msg chan_pop(struct sim *s, unsigned c)
{
	struct chan *ch = &s->ch[c];
	struct sim_msg m = ch->m[ch->head];

	ch->head = (ch->head + 1) % ch->cap;
	if (--ch->len == 0) {
		unsigned last = s->live[--s->nr_live];

		s->live[s->live_pos[c]] = last;
		s->live_pos[last] = s->live_pos[c];
	}
	s->in_flight--;
	return m;
}

static void access_done(struct sim *s, unsigned n, unsigned p, bool write)
{
	if (s->mem[n][p] != s->latest[p])
		sim_fail(s, "node %u %s page %u and sees %" PRIx64 ", latest %"
		     PRIx64, n, write ? "writes" : "reads", p, s->mem[n][p],
		     s->latest[p]);
	if (write) {
		s->mem[n][p] = ++s->latest[p];
		s->writes++;
	} else {
		s->reads++;
	}
}

/* Serves the waiters the mapping now allows. */
static void serve(struct sim *s, unsigned n, unsigned p)
{
	if (s->mapped[n][p] >= 1) {
		for (; s->rwait[n][p]; s->rwait[n][p]--)
			access_done(s, n, p, false);
	}
	if (s->mapped[n][p] == 2) {
		for (; s->wwait[n][p]; s->wwait[n][p]--)
			access_done(s, n, p, true);
	}
	if (!s->rwait[n][p] && !s->wwait[n][p])
		s->since[n][p] = 0;
}

static void fault(struct sim *s, unsigned n, unsigned p, bool write,
		  unsigned depth);

/* Executes one event's actions the way the I/O side would. */
static void apply(struct sim *s, unsigned n, struct dsm_actions *out,
		  const void *data, uint64_t value, unsigned depth)
{
	bool woke = false, zapped = false;
	int page = -1;

	if (out->n > s->max_actions)
		s->max_actions = out->n;
	for (unsigned i = 0; i < out->n; i++) {
		const struct dsm_action *a = &out->a[i];
		unsigned p = (unsigned)a->page;
		struct sim_msg m;

		if (a->page >= s->pages || (page >= 0 && (unsigned)page != p))
			sim_fail(s, "action for page %" PRIu64 " in an event for "
			     "page %d", a->page, page);
		page = (int)p;
		switch (a->type) {
		case DSM_ACT_SEND:
			if (a->dest >= s->nodes || a->dest == n)
				sim_fail(s, "node %u sends to node %u", n, a->dest);
			memset(&m, 0, sizeof(m));
			dsm_msg__encode(&a->msg, m.bytes);
			m.has_data = a->attach;
			m.value = s->mem[n][p];
			if (a->attach && m.value != s->latest[p])
				sim_fail(s, "node %u sends page %u version %" PRIx64
				     ", latest %" PRIx64, n, p, m.value,
				     s->latest[p]);
			chan_push(s, n, a->dest, &m);
			break;
		case DSM_ACT_INSTALL:
			if (!data || a->data != data)
				sim_fail(s, "INSTALL without the message's data");
			s->mem[n][p] = value;
			s->mapped[n][p] = a->writable ? 2 : 1;
			woke = true;
			/* Sometimes the woken vCPU gets its access in before
			 * the rest of the list runs, sometimes not. */
			if (below(s, 2))
				serve(s, n, p);
			break;
		case DSM_ACT_MAP_LOCAL:
			s->mapped[n][p] = a->writable ? 2 : 1;
			woke = true;
			if (below(s, 2))
				serve(s, n, p);
			break;
		case DSM_ACT_WRITE_PROTECT:
			if (s->mapped[n][p] == 2)
				s->mapped[n][p] = 1;
			break;
		case DSM_ACT_ZAP:
			s->mapped[n][p] = 0;
			zapped = true;
			break;
		default:
			sim_fail(s, "unknown action %u", a->type);
		}
	}
	if (page < 0)
		return;
	/* After the list, a zapped page's bytes are stale: poison them so a
	 * later MAP_LOCAL without data would be caught. */
	if (zapped && !s->mapped[n][page])
		s->mem[n][page] = POISON;
	if (s->mapped[n][page] > dsm__access(s->dn[n], page))
		sim_fail(s, "node %u mapped %u beyond its access %d on page %d", n,
		     s->mapped[n][page], dsm__access(s->dn[n], page), page);
	if (!woke)
		return;
	/* Woken vCPUs retry: through the mapping, or they fault again. */
	serve(s, n, (unsigned)page);
	if (s->rwait[n][page])
		fault(s, n, (unsigned)page, false, depth + 1);
	if (s->wwait[n][page])
		fault(s, n, (unsigned)page, true, depth + 1);
}

static void fault(struct sim *s, unsigned n, unsigned p, bool write,
		  unsigned depth)
{
	struct dsm_actions *out = &s->out[depth];

	if (depth >= 4)
		sim_fail(s, "fault recursion");
	int rc = dsm__fault(s->dn[n], p, write, out);

	if (rc)
		sim_fail(s, "dsm__fault(node %u page %u): %d %s", n, p, rc,
		     out->why);
	apply(s, n, out, NULL, 0, depth);
}

/* A vCPU of node n touches page p: through the mapping if it allows the
 * access, else it blocks and faults. */
static void guest_access(struct sim *s, unsigned n, unsigned p, bool write)
{
	if (s->mapped[n][p] >= (write ? 2 : 1)) {
		s->hits++;
		access_done(s, n, p, write);
		return;
	}
	if (write)
		s->wwait[n][p]++;
	else
		s->rwait[n][p]++;
	if (!s->since[n][p])
		s->since[n][p] = s->step ? s->step : 1;
	fault(s, n, p, write, 0);
}

static bool deliver(struct sim *s)
{
	unsigned c = 0;

	if (!s->in_flight)
		return false;
	/* A random non-empty channel; the stalled one only rarely. */
	for (unsigned tries = 0; tries < 8; tries++) {
		c = s->live[below(s, s->nr_live)];
		if ((int)c != s->slow_chan || s->nr_live == 1 || !below(s, 64))
			break;
	}
	struct sim_msg m = chan_pop(s, c);

	s->deliveries++;

	unsigned from = c / MAXN, to = c % MAXN;
	uint8_t wire[DSM_MSG_SIZE + DSM_PAGE_SIZE];
	size_t len = DSM_MSG_SIZE + (m.has_data ? DSM_PAGE_SIZE : 0);
	struct dsm_msg dm;
	const void *data;
	char why[DSM_WHY_MAX];

	memcpy(wire, m.bytes, DSM_MSG_SIZE);
	if (m.has_data)
		memcpy(wire + DSM_MSG_SIZE, &m.value, sizeof(m.value));
	if (dsm_msg__decode(wire, len, from, &dm, &data, why, sizeof(why)))
		sim_fail(s, "decode: %s", why);
	int rc = dsm__receive(s->dn[to], &dm, data, &s->out[0]);

	if (rc)
		sim_fail(s, "node %u rejected %s from %u: %s", to,
		     dsm_msg__type_name(dm.type), from, s->out[0].why);
	apply(s, to, &s->out[0], data, m.value, 0);
	return true;
}

static void check_invariants(struct sim *s)
{
	for (unsigned p = 0; p < s->pages; p++) {
		unsigned writers = 0, readers = 0;

		for (unsigned n = 0; n < s->nodes; n++) {
			int acc = dsm__access(s->dn[n], p);

			writers += acc == DSM_ACC_MODIFIED;
			readers += acc == DSM_ACC_SHARED;
			if (acc != DSM_ACC_INVALID &&
			    s->mem[n][p] != s->latest[p])
				sim_fail(s, "node %u has access %d to page %u but "
				     "holds %" PRIx64 ", latest %" PRIx64, n,
				     acc, p, s->mem[n][p], s->latest[p]);
			if (s->since[n][p] &&
			    s->step > s->since[n][p] + STARVE_STEPS)
				sim_fail(s, "node %u waits on page %u since step %"
				     PRIu64, n, p, s->since[n][p]);
		}
		if (writers > 1 || (writers && readers))
			sim_fail(s, "page %u has %u writers and %u readers", p,
			     writers, readers);
	}
}

/* Network empty: the directory must equal the local states, no request
 * may be left and every access must have been served. */
static void check_quiescent(struct sim *s)
{
	for (unsigned p = 0; p < s->pages; p++) {
		struct dsm_dir_info di;
		uint64_t sharers = 0, writers = 0;

		if (dsm__dir_info(s->dn[s->home[p]], p, &di))
			sim_fail(s, "no directory entry for page %u at home", p);
		for (unsigned n = 0; n < s->nodes; n++) {
			int acc = dsm__access(s->dn[n], p);

			if (acc == DSM_ACC_SHARED)
				sharers |= 1ull << n;
			if (acc == DSM_ACC_MODIFIED)
				writers |= 1ull << n;
			if (dsm__pending(s->dn[n], p) || s->rwait[n][p] ||
			    s->wwait[n][p])
				sim_fail(s, "quiescent, but node %u still waits for "
				     "page %u", n, p);
		}
		bool home_has = (sharers | writers) >> s->home[p] & 1;

		if (di.busy || di.queued)
			sim_fail(s, "quiescent, but page %u is busy", p);
		if (di.home_current != home_has)
			sim_fail(s, "page %u: home_current %d, home access %d", p,
			     di.home_current, home_has);
		if (di.exclusive ? (writers != 1ull << di.owner || sharers ||
				    di.copyset != writers)
				 : (writers || di.copyset != sharers ||
				    !home_has))
			sim_fail(s, "page %u: directory %s owner %u cs %" PRIx64
			     " vs writers %" PRIx64 " sharers %" PRIx64, p,
			     di.exclusive ? "EXCL" : "SHARED", di.owner,
			     di.copyset, writers, sharers);
	}
	for (unsigned n = 0; n < s->nodes; n++)
		if (!dsm__idle(s->dn[n]))
			sim_fail(s, "quiescent, but node %u is not idle", n);
}

static void one_step(struct sim *s, bool faults)
{
	s->step++;
	if (faults && (!s->in_flight || below(s, 100) < s->p_fault)) {
		unsigned n = below(s, s->nodes);
		/* Most traffic on a few hot pages: contention is the point. */
		unsigned p = below(s, 4) ? below(s, s->hot) : below(s, s->pages);

		guest_access(s, n, p, below(s, 100) < 40);
	} else {
		deliver(s);
	}
	check_invariants(s);
}

static void drain(struct sim *s)
{
	unsigned k = 0;

	s->slow_chan = -1;
	while (s->in_flight) {
		if (++k > DRAIN_MAX)
			sim_fail(s, "no quiescence after %u deliveries", k);
		one_step(s, false);
	}
	check_quiescent(s);
}

/* Every node writes (or reads, then writes) one page at the same time. */
static void stampede(struct sim *s, unsigned p)
{
	uint64_t before = s->latest[p];
	unsigned writers = 0;

	for (unsigned n = 0; n < s->nodes; n++) {
		if (below(s, 4) == 0) {
			guest_access(s, n, p, false);
			s->step++;
		}
		guest_access(s, n, p, true);
		writers++;
		s->step++;
		check_invariants(s);
	}
	drain(s);
	if (s->latest[p] != before + writers)
		sim_fail(s, "stampede on page %u: %u writers, version went from %"
		     PRIu64 " to %" PRIu64, p, writers, before, s->latest[p]);
}

static void sim_init(struct sim *s, uint64_t seed)
{
	static const unsigned node_choices[] = {
		2, 2, 3, 3, 3, 4, 4, 5, 6, 8, 16, 64,
	};
	char err[160];

	memset(s, 0, offsetof(struct sim, out));
	s->seed = seed;
	s->rng = seed * 0x2545F4914F6CDD1Dull + 1;
	s->nodes = node_choices[below(s, sizeof(node_choices) /
				     sizeof(node_choices[0]))];
	s->pages = 1 + below(s, s->nodes >= 8 ? MAXP : 6);
	s->hot = 1 + below(s, s->pages < 3 ? s->pages : 3);
	s->slow_chan = -1;
	for (unsigned p = 0; p < s->pages; p++)
		s->home[p] = below(s, s->nodes);
	s->ch = calloc(MAXN * MAXN, sizeof(*s->ch));
	ck_assert_ptr_nonnull(s->ch);
	for (unsigned n = 0; n < s->nodes; n++) {
		struct dsm_config cfg = {
			.nr_nodes = s->nodes, .self = n, .nr_pages = s->pages,
			.home_of = home_cb, .ctx = s,
			.max_requests = MAXP,
		};

		s->dn[n] = dsm__new(&cfg, err, sizeof(err));
		ck_assert_msg(s->dn[n], "dsm__new: %s", err);
	}
}

static void sim_fini(struct sim *s)
{
	for (unsigned n = 0; n < s->nodes; n++)
		dsm__free(s->dn[n]);
	for (unsigned c = 0; c < MAXN * MAXN; c++)
		free(s->ch[c].m);
	free(s->ch);
}

static void run_seed(struct sim *s, uint64_t seed, uint64_t steps)
{
	sim_init(s, seed);
	uint64_t end = steps;

	while (s->step < end) {
		unsigned phase = 200 + below(s, 4000);

		s->p_fault = 10 + below(s, 60);
		s->slow_chan = below(s, 3) ? -1
			: (int)(below(s, s->nodes) * MAXN + below(s, s->nodes));
		for (unsigned i = 0; i < phase && s->step < end; i++)
			one_step(s, true);
		drain(s);
		if (below(s, 3) == 0)
			stampede(s, below(s, s->hot));
	}
	sim_fini(s);
}

static uint64_t env_u64(const char *name, uint64_t def)
{
	const char *v = getenv(name);

	return v && *v ? strtoull(v, NULL, 0) : def;
}

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

START_TEST(test_random_sim)
{
	struct sim *s = calloc(1, sizeof(*s));
	uint64_t total = env_u64("KRG_DSM_SIM_STEPS", DEFAULT_STEPS);
	uint64_t one = env_u64("KRG_DSM_SIM_SEED", 0);
	uint64_t steps = 0, reads = 0, writes = 0, hits = 0, dl = 0, maxa = 0;
	unsigned seeds = 0, big = 0;
	double t0 = now();

	ck_assert_ptr_nonnull(s);
	for (uint64_t seed = one ? one : 1; steps < total; seed++) {
		uint64_t want = total - steps < STEPS_PER_SEED ? total - steps
							       : STEPS_PER_SEED;

		run_seed(s, seed, want);
		steps += s->step;
		reads += s->reads;
		writes += s->writes;
		hits += s->hits;
		dl += s->deliveries;
		maxa = s->max_actions > maxa ? s->max_actions : maxa;
		big += s->nodes == MAXN;
		seeds++;
		if (one)
			break;
	}
	fprintf(stderr, "dsm sim: %u seeds (%u with %d nodes), %" PRIu64
		" steps (%" PRIu64 " deliveries, %" PRIu64 " reads, %" PRIu64
		" writes, %" PRIu64 " mapped hits), max %" PRIu64
		" actions/event, %.2f s\n", seeds, big, MAXN, steps, dl, reads,
		writes, hits, maxa, now() - t0);
	ck_assert_uint_ge(steps, one ? 1 : total);
	/* The run must have exercised the protocol, not idled. */
	if (steps >= 10000) {
		ck_assert_uint_gt(writes, steps / 100);
		ck_assert_uint_gt(reads, steps / 100);
		ck_assert_uint_gt(dl, steps / 4);
	}
	free(s);
}
END_TEST

/* Every node writes the same page at once, over and over, from whatever
 * sharing state the previous round left. */
START_TEST(test_stampede)
{
	struct sim *s = calloc(1, sizeof(*s));
	unsigned rounds = 0;
	uint64_t steps = 0;
	double t0 = now();

	ck_assert_ptr_nonnull(s);
	for (uint64_t seed = 1000; seed < 1040; seed++) {
		sim_init(s, seed);
		for (unsigned r = 0; r < 100; r++, rounds++) {
			/* Some read sharing first, so invalidations and
			 * upgrades join the forwarding. */
			for (unsigned n = 0; n < s->nodes; n++)
				if (below(s, 2))
					guest_access(s, n, 0, false);
			drain(s);
			stampede(s, 0);
		}
		steps += s->step;
		sim_fini(s);
	}
	fprintf(stderr, "dsm stampede: %u rounds, %" PRIu64 " steps, %.2f s\n",
		rounds, steps, now() - t0);
	ck_assert_uint_eq(rounds, 4000);
	free(s);
}
END_TEST

static Suite *sim_suite(void)
{
	Suite *su = suite_create("dsm_sim");
	TCase *tc = tcase_create("sim");

	tcase_set_timeout(tc, 3600);
	tcase_add_test(tc, test_random_sim);
	tcase_add_test(tc, test_stampede);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(sim_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
