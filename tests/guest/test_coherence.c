/* test=coherence (coh-*): shared-memory patterns whose result is exact
 * only if memory stays coherent and x86-ordered (TSO) across vCPUs: the
 * workloads the distributed shared memory must pass once vCPUs live on
 * different hosts.  Every hot loop is plain user-mode code (no kernel
 * call: under PVM kernel mode is ~10^4 times slower); waits spin with
 * `pause` and give up, naming the partner, after COH_STALL_US without
 * progress.  Data that must move between nodes sits in separate 4 KiB
 * pages, the DSM's unit.  Each pattern prints one
 * "coherence: <pattern>: ok, N cpus x I iterations, ..." line and a line
 * of evidence that the vCPUs really interleaved. */
#include "user.h"

#define COH_DEFAULT_ITERS 1000000
#define COH_STALL_US	10000000
#define COH_CHECK_MASK	4095	/* pauses between looks at the clock */
#define COH_PAGE	4096
#define COH_WORDS	(COH_PAGE / 8)
/* Pacing (atomic, spinlock, falseshare): every COH_PACE iterations a cpu
 * publishes its progress and waits while it is more than COH_WINDOW
 * iterations ahead of the slowest.  Without it, two vCPUs time-sliced on
 * one host core each finish 10^6 iterations inside one time slice, and
 * the pattern never interleaves. */
#define COH_PACE	512
#define COH_WINDOW	4096

struct coh_page {
	volatile uint64_t w[COH_WORDS];
} __attribute__((aligned(COH_PAGE)));

/* A wait loop's state: deadline 0 until the first clock look, so a wait
 * that ends quickly never reads the TSC.  `seen` is the last value of
 * what the loop waits on: a change is progress (the partner still runs,
 * maybe only for another cpu), which restarts the stall clock. */
struct coh_wait {
	uint64_t deadline, seen;
	uint32_t n;
};

static struct coh_page coh_done[MAXCPU];	/* w[0]: iterations finished */

static uint64_t coh_iters(void)
{
	return opts.iters ? opts.iters : COH_DEFAULT_ITERS;
}

/* Interleaving is guaranteed (by pacing) only past this many iterations. */
static bool coh_must_interleave(uint64_t n)
{
	return ncpus > 1 && n > 2 * COH_WINDOW;
}

static __attribute__((noinline)) bool coh_wait_slow(struct coh_wait *w,
						   const char *what, uint64_t seen)
{
	uint64_t now = rdtsc();

	watchdog_check(what);
	if (!w->deadline || seen != w->seen) {
		w->seen = seen;
		w->deadline = now + tsc_from_us(COH_STALL_US);
		return false;
	}
	return now > w->deadline;
}

/* One `pause` of a wait on `seen`; true once it stayed the same for
 * COH_STALL_US. */
static inline bool coh_stalled(struct coh_wait *w, const char *what, uint64_t seen)
{
	cpu_relax();
	if (++w->n & COH_CHECK_MASK)
		return false;
	return coh_wait_slow(w, what, seen);
}

/* Before failing on a cpu that stopped making progress: its interrupt
 * counts and what its LAPIC shows (an interrupt that never completes
 * stops a vCPU as surely as a host that never runs it). */
static __attribute__((noinline)) void coh_diagnose(unsigned c)
{
	say("coherence: cpu %u has taken %lu IPIs, %lu wake-ups, %lu timer interrupts",
	    c, pcpu[c].ipi_total, pcpu[c].wakeups, pcpu[c].timer_count);
	lapic_probe_cpu(c);
}

static inline uint64_t lock_xadd(volatile uint64_t *p, uint64_t v)
{
	__asm__ volatile("lock xaddq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static inline void lock_incq(volatile uint64_t *p)
{
	__asm__ volatile("lock incq %0" : "+m"(*p) : : "memory");
}

static inline uint64_t xchg64(volatile uint64_t *p, uint64_t v)
{
	__asm__ volatile("xchgq %0, %1" : "+r"(v), "+m"(*p) : : "memory");
	return v;
}

static void coh_pace_reset(unsigned cpu)
{
	if (cpu == 0)
		for (unsigned c = 0; c < ncpus; c++)
			coh_done[c].w[0] = 0;
}

static __attribute__((noinline)) void coh_pace(unsigned cpu, uint64_t done,
					       const char *what)
{
	coh_done[cpu].w[0] = done;
	for (unsigned c = 0; c < ncpus; c++) {
		struct coh_wait w = { 0 };
		uint64_t d;

		while ((d = coh_done[c].w[0]) + COH_WINDOW < done)
			if (coh_stalled(&w, what, d)) {
				coh_diagnose(c);
				fail("coherence: %s: cpu %u (%lu iterations done) waited %u s "
				     "for cpu %u (%lu done) to catch up", what, cpu, done,
				     COH_STALL_US / 1000000, c, d);
			}
	}
}

/* Deliberately not atomic: a load, an add and a store, so a lost update
 * (two writers, or a write that never reached the owner) shows.  Returns
 * the value stored. */
static inline uint64_t plain_inc(volatile uint64_t *p)
{
	uint64_t t;

	__asm__ volatile("movq %1, %0\n\taddq $1, %0\n\tmovq %0, %1"
			 : "=&r"(t), "+m"(*p) : : "memory");
	return t;
}

static inline void plain_incb(volatile uint8_t *p)
{
	uint32_t t;

	__asm__ volatile("movzbl %1, %0\n\taddl $1, %0\n\tmovb %b0, %1"
			 : "=&q"(t), "+m"(*p) : : "memory");
}

static uint64_t mix64(uint64_t x)
{
	x ^= x >> 31;
	x *= 0x94d049bb133111ebull;
	return x ^ (x >> 29);
}

/* --- 1. lock-prefixed increments ------------------------------------ */
#define ATOM_NCTR	4
static struct coh_page atom_pg[3];
/* Two counters in one page (separate lines), two in pages of their own;
 * the lock incq counter shares counter 0's cache line. */
static volatile uint64_t *const atom_ctr[ATOM_NCTR] = {
	&atom_pg[0].w[0], &atom_pg[0].w[8], &atom_pg[1].w[0], &atom_pg[2].w[0],
};
static const char *const atom_where[ATOM_NCTR] = {
	"page A line 0", "page A line 1", "page B", "page C",
};
#define ATOM_HOT	(&atom_pg[0].w[1])
static uint64_t atom_between[MAXCPU];

void test_coh_atomic(unsigned cpu)
{
	uint64_t n = coh_iters(), add = cpu + 1, between = 0;
	uint64_t next[ATOM_NCTR] = { 0 };

	if (cpu == 0) {
		for (unsigned k = 0; k < ATOM_NCTR; k++)
			*atom_ctr[k] = 0;
		*ATOM_HOT = 0;
	}
	coh_pace_reset(cpu);
	barrier("coh-atomic start");
	for (uint64_t i = 0; i < n; i++) {
		unsigned k = (unsigned)((i + cpu) % ATOM_NCTR);
		uint64_t old;

		if (!(i % COH_PACE))
			coh_pace(cpu, i, "atomic");
		old = lock_xadd(atom_ctr[k], add);
		/* This CPU's own earlier add must be in what it reads now. */
		if (old < next[k])
			fail("coherence: atomic: cpu %u: lock xadd on counter %u (%s) "
			     "returned %lu, but its own previous xadd left it at %lu",
			     cpu, k, atom_where[k], old, next[k]);
		between += old != next[k];
		next[k] = old + add;
		lock_incq(ATOM_HOT);
	}
	coh_done[cpu].w[0] = n;
	atom_between[cpu] = between;
	barrier("coh-atomic done");
	if (cpu)
		return;
	between = 0;
	for (unsigned k = 0; k < ATOM_NCTR; k++) {
		uint64_t want = 0;

		for (unsigned c = 0; c < ncpus; c++)
			want += (c + 1) * (n / ATOM_NCTR +
					   ((k + ATOM_NCTR - c % ATOM_NCTR) % ATOM_NCTR < n % ATOM_NCTR));
		if (*atom_ctr[k] != want)
			fail("coherence: atomic: counter %u (%s) is %lu, expected %lu (lock xadd)",
			     k, atom_where[k], *atom_ctr[k], want);
	}
	if (*ATOM_HOT != ncpus * n)
		fail("coherence: atomic: lock incq counter is %lu, expected %lu", *ATOM_HOT,
		     ncpus * n);
	for (unsigned c = 0; c < ncpus; c++)
		between += atom_between[c];
	if (!between && coh_must_interleave(n))
		fail("coherence: atomic: no lock xadd ever found another cpu's add: the "
		     "cpus never interleaved although paced");
	say("coherence: atomic: ok, %u cpus x %lu iterations, totals exact", ncpus, n);
	say("coherence: atomic: %lu of %lu lock xadds found another cpu's add since "
	    "their own previous one", between, ncpus * n);
}

/* --- 2. spinlock over non-atomic data -------------------------------- */
static struct coh_page spin_pg[3];
#define SPIN_LOCK	(&spin_pg[0].w[0])
#define SPIN_COUNT	(&spin_pg[1].w[0])
#define SPIN_OWNER	(&spin_pg[1].w[8])
#define SPIN_SHADOW	(&spin_pg[2].w[0])
#define SPIN_LAST	(&spin_pg[2].w[8])	/* last holder + 1 */
static uint64_t spin_contended[MAXCPU], spin_handoffs[MAXCPU];

static uint64_t spin_shadow_of(uint64_t v)
{
	return v * 0x9e3779b97f4a7c15ull ^ 0x5bd1e9955bd1e995ull;
}

/* Test-and-test-and-set: xchg, then spin on plain reads until free. */
static uint64_t spin_acquire(unsigned cpu)
{
	struct coh_wait w = { 0 };
	uint64_t busy = 0;

	while (xchg64(SPIN_LOCK, 1)) {
		busy++;
		while (*SPIN_LOCK)
			if (coh_stalled(&w, "coh-spinlock", *SPIN_COUNT)) {
				if (*SPIN_OWNER && *SPIN_OWNER <= ncpus)
					coh_diagnose((unsigned)*SPIN_OWNER - 1);
				fail("coherence: spinlock: cpu %u waited %u s for the lock "
				     "(owner word: cpu %ld)", cpu, COH_STALL_US / 1000000,
				     (int64_t)*SPIN_OWNER - 1);
			}
	}
	return busy;
}

void test_coh_spinlock(unsigned cpu)
{
	uint64_t n = coh_iters(), busy = 0, handoffs = 0;

	if (cpu == 0) {
		*SPIN_LOCK = 0;
		*SPIN_COUNT = 0;
		*SPIN_OWNER = 0;
		*SPIN_LAST = 0;
		*SPIN_SHADOW = spin_shadow_of(0);
	}
	coh_pace_reset(cpu);
	barrier("coh-spinlock start");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t o, a, sh, t;

		if (!(i % COH_PACE))
			coh_pace(cpu, i, "spinlock");
		busy += spin_acquire(cpu);
		o = *SPIN_OWNER;
		if (o)
			fail("coherence: spinlock: cpu %u took the lock while the owner word "
			     "still names cpu %lu", cpu, o - 1);
		*SPIN_OWNER = cpu + 1;
		a = *SPIN_COUNT;
		sh = *SPIN_SHADOW;
		if (sh != spin_shadow_of(a))
			fail("coherence: spinlock: cpu %u: counter %lu but its second field "
			     "%lx belongs to %s (inside the critical section)", cpu, a, sh,
			     sh == spin_shadow_of(a - 1) ? "the value before" :
			     sh == spin_shadow_of(a + 1) ? "the value after" : "no value near it");
		t = plain_inc(SPIN_COUNT);
		if (t != a + 1)
			fail("coherence: spinlock: cpu %u read the counter as %lu, then %lu "
			     "inside one critical section", cpu, a, t - 1);
		*SPIN_SHADOW = spin_shadow_of(t);
		o = *SPIN_LAST;
		handoffs += o && o != cpu + 1;
		*SPIN_LAST = cpu + 1;
		if (*SPIN_OWNER != cpu + 1)
			fail("coherence: spinlock: cpu %u: the owner word changed to %ld inside "
			     "its critical section", cpu, (int64_t)*SPIN_OWNER - 1);
		*SPIN_OWNER = 0;
		/* Release is a plain store: TSO keeps the data stores before it. */
		__atomic_store_n(SPIN_LOCK, 0, __ATOMIC_RELEASE);
	}
	coh_done[cpu].w[0] = n;
	spin_contended[cpu] = busy;
	spin_handoffs[cpu] = handoffs;
	barrier("coh-spinlock done");
	if (cpu)
		return;
	if (*SPIN_COUNT != ncpus * n)
		fail("coherence: spinlock: the counter is %lu, expected %lu (lost updates)",
		     *SPIN_COUNT, ncpus * n);
	if (*SPIN_SHADOW != spin_shadow_of(*SPIN_COUNT) || *SPIN_OWNER || *SPIN_LOCK)
		fail("coherence: spinlock: end state inconsistent: shadow %lx (want %lx), "
		     "owner %lu, lock %lu", *SPIN_SHADOW, spin_shadow_of(*SPIN_COUNT),
		     *SPIN_OWNER, *SPIN_LOCK);
	busy = handoffs = 0;
	for (unsigned c = 0; c < ncpus; c++) {
		busy += spin_contended[c];
		handoffs += spin_handoffs[c];
	}
	if (!handoffs && coh_must_interleave(n))
		fail("coherence: spinlock: the lock never passed between cpus although "
		     "paced");
	say("coherence: spinlock: ok, %u cpus x %lu iterations, counter exact", ncpus, n);
	say("coherence: spinlock: the lock passed to another cpu %lu times; %lu xchg "
	    "attempts found it taken", handoffs, busy);
}

/* --- 3. message passing ---------------------------------------------- */
/* Channel c (producer cpu c): a ring of MP_RING one-line messages (two
 * pages), the head (the flag: messages published) and the tail (messages
 * consumed) each in a page of its own.  Phase p, for p in 0..N-2, has
 * cpu c send to c+p+1 and receive from c-p-1 (mod N), so every cpu is a
 * producer and a consumer and its partners rotate. */
#define MP_RING		128
#define MP_DATA		6
#define MP_BURST	8

struct mp_slot {
	volatile uint64_t seq, data[MP_DATA], sum;
};

struct mp_ring {
	struct mp_slot slot[MP_RING];
} __attribute__((aligned(COH_PAGE)));

_Static_assert(sizeof(struct mp_ring) % COH_PAGE == 0, "whole pages");

static struct mp_ring mp_ring[MAXCPU];
static struct coh_page mp_head[MAXCPU];
static struct coh_page mp_tail[MAXCPU];
static uint64_t mp_flags[MAXCPU], mp_full[MAXCPU];

static uint64_t mp_word(unsigned ch, uint64_t seq, unsigned j)
{
	return mix64((seq + 1) * 0x9e3779b97f4a7c15ull ^ (uint64_t)ch << 48 ^
		     (j + 1) * 0xbf58476d1ce4e5b9ull);
}

static void mp_put(unsigned ch, uint64_t s)
{
	struct mp_slot *sl = &mp_ring[ch].slot[s % MP_RING];
	uint64_t sum = s;

	for (unsigned j = 0; j < MP_DATA; j++) {
		uint64_t d = mp_word(ch, s, j);

		sl->data[j] = d;
		sum = mix64(sum ^ d);
	}
	sl->sum = sum;
	sl->seq = s;
	mp_head[ch].w[0] = s + 1;	/* the flag, after the data */
}

static void mp_get(unsigned ch, uint64_t s, unsigned cpu, uint64_t flag)
{
	struct mp_slot *sl = &mp_ring[ch].slot[s % MP_RING];
	uint64_t seq = sl->seq, sum = s;

	if (seq != s)
		fail("coherence: mp: cpu %u saw cpu %u's flag at %lu, but slot %lu holds "
		     "message %lu, not %lu (%s)", cpu, ch, flag, s % MP_RING, seq, s,
		     seq + MP_RING == s ? "stale: the previous lap" :
		     !seq && s < MP_RING ? "stale: never written" :
		     seq == s + MP_RING ? "overwritten before it was acknowledged" :
		     "no message near it");
	for (unsigned j = 0; j < MP_DATA; j++) {
		uint64_t want = mp_word(ch, s, j);

		if (sl->data[j] != want)
			fail("coherence: mp: cpu %u: message %lu from cpu %u (flag %lu): word "
			     "%u is %lx, expected %lx", cpu, s, ch, flag, j, sl->data[j], want);
		sum = mix64(sum ^ want);
	}
	if (sl->sum != sum)
		fail("coherence: mp: cpu %u: message %lu from cpu %u: checksum %lx, "
		     "expected %lx", cpu, s, ch, sl->sum, sum);
}

/* Messages per channel in phase p, and before it. */
static uint64_t mp_count(uint64_t n, unsigned phases, unsigned p)
{
	return n / phases + (p < n % phases);
}

static uint64_t mp_before(uint64_t n, unsigned phases, unsigned p)
{
	return p * (n / phases) + (p < n % phases ? p : n % phases);
}

static void mp_phase(unsigned cpu, unsigned p, uint64_t n)
{
	unsigned phases = ncpus - 1, dst = (cpu + p + 1) % ncpus;
	unsigned src = (cpu + ncpus - p - 1) % ncpus;
	uint64_t sent = mp_before(n, phases, p), ctail = mp_tail[src].w[0];
	uint64_t send_end = sent + mp_count(n, phases, p), recv_end = send_end;
	uint64_t ptail = sent, seen = ctail;
	struct coh_wait w = { 0 };
	bool full = false;

	/* The consumer of channel src changes between phases: the tail
	 * written by the previous one must be here, complete. */
	if (ctail != sent)
		fail("coherence: mp: phase %u: cpu %u finds cpu %u's ring tail at %lu, "
		     "expected %lu", p, cpu, src, ctail, sent);
	while (sent < send_end || ctail < recv_end) {
		bool progress = false;

		for (unsigned b = 0; b < MP_BURST && sent < send_end; b++) {
			if (sent - ptail >= MP_RING) {
				ptail = mp_tail[cpu].w[0];
				if (ptail > sent)
					fail("coherence: mp: cpu %u's ring: tail %lu is ahead of "
					     "the %lu messages sent", cpu, ptail, sent);
				if (sent - ptail >= MP_RING) {
					mp_full[cpu] += !full;
					full = true;
					break;
				}
			}
			mp_put(cpu, sent++);
			progress = true;
			full = false;
		}
		if (ctail < recv_end) {
			uint64_t h = mp_head[src].w[0];

			if (h < seen || h > recv_end)
				fail("coherence: mp: cpu %u read cpu %u's flag as %lu after %lu "
				     "(phase ends at %lu)", cpu, src, h, seen, recv_end);
			seen = h;
			if (h > ctail) {
				mp_flags[cpu]++;
				for (; ctail < h; ctail++) {
					mp_get(src, ctail, cpu, h);
					mp_tail[src].w[0] = ctail + 1;
				}
				progress = true;
			}
		}
		if (progress) {
			w.deadline = 0;
			w.n = 0;
		} else if (coh_stalled(&w, "coh-mp", 0)) {
			coh_diagnose(sent < send_end ? dst : src);
			fail("coherence: mp: phase %u: cpu %u made no progress for %u s: sent "
			     "%lu of %lu to cpu %u (acknowledged %lu; cpu %u published %lu of "
			     "its own), received %lu of %lu from cpu %u", p, cpu,
			     COH_STALL_US / 1000000, sent, send_end, dst, ptail, dst,
			     mp_head[dst].w[0], ctail, recv_end, src);
		}
	}
}

void test_coh_mp(unsigned cpu)
{
	uint64_t n = coh_iters(), flags = 0, full = 0;

	if (ncpus < 2) {
		if (cpu == 0)
			say("coherence: mp: skipped, needs at least 2 cpus (have 1)");
		return;
	}
	if (cpu == 0)
		for (unsigned c = 0; c < ncpus; c++)
			mp_head[c].w[0] = mp_tail[c].w[0] = 0;
	mp_flags[cpu] = mp_full[cpu] = 0;
	barrier("coh-mp start");
	for (unsigned p = 0; p + 1 < ncpus; p++) {
		mp_phase(cpu, p, n);
		barrier("coh-mp phase");
	}
	if (cpu)
		return;
	for (unsigned c = 0; c < ncpus; c++) {
		if (mp_head[c].w[0] != n || mp_tail[c].w[0] != n)
			fail("coherence: mp: cpu %u's ring ends with flag %lu, tail %lu; "
			     "expected %lu", c, mp_head[c].w[0], mp_tail[c].w[0], n);
		flags += mp_flags[c];
		full += mp_full[c];
	}
	say("coherence: mp: ok, %u cpus x %lu iterations, every message matched its flag",
	    ncpus, n);
	say("coherence: mp: %u phases of rotating partners; consumers saw a flag advance "
	    "%lu times (%lu messages each on average), producers had to wait "
	    "for a full ring to drain %lu times", ncpus - 1, flags, flags ? ncpus * n / flags : 0, full);
}

/* --- 4. store buffering ---------------------------------------------- */
/* Every pair of cpus, one pair at a time (turns, in the order of a
 * round-robin schedule's phases), while the others sleep in hlt: a pair
 * needs both vCPUs running at once for every round, and with all pairs
 * at once, cpus waiting for their next partner burn the host cores the
 * pairs still running need.  Round values rise across phases, so no
 * variable is ever reset:
 * in round v each cpu of a pair announces its arrival, waits for the
 * partner's, stores v to its own x, MFENCE, loads the partner's x; "read
 * 0" means it read less than v. */
struct sb_cpu {
	struct coh_page x;
	/* w[0] and w[8], by the round's parity: round << 1 | whether it saw
	 * the partner's store in the previous round.  A partner may already
	 * announce the next round before this cpu read this one's word. */
	struct coh_page arrive;
};

static struct sb_cpu sb_cpu[MAXCPU];
static struct coh_page sb_turn;		/* w[0]: index of the pair whose turn it is */
static uint64_t sb_hist[MAXCPU][4];	/* tallied by the lower cpu of a pair */

/* Circle-method partner of cpu c in phase p, for an even count n. */
static unsigned sb_partner(unsigned c, unsigned p, unsigned n)
{
	if (c == n - 1)
		return p;
	if (c == p)
		return n - 1;
	return (2 * p + (n - 1) - c) % (n - 1);
}

static void sb_pair(unsigned me, unsigned pt, uint64_t base, uint64_t rounds,
		    bool fence, uint64_t hist[4])
{
	volatile uint64_t *x = &sb_cpu[me].x.w[0], *y = &sb_cpu[pt].x.w[0];
	volatile uint64_t *arr = sb_cpu[me].arrive.w, *parr = sb_cpu[pt].arrive.w;
	uint64_t saw = 0;

	for (uint64_t k = 0;; k++) {
		uint64_t v = base + k + 1, a, seen;
		struct coh_wait w = { 0 };

		arr[(v & 1) * 8] = v << 1 | saw;
		while (((a = parr[(v & 1) * 8]) >> 1) < v)
			if (coh_stalled(&w, "coh-sb", a)) {
				coh_diagnose(pt);
				fail("coherence: sb: cpu %u waited %u s for cpu %u at round %lu "
				     "(it is at %lu)", me, COH_STALL_US / 1000000, pt, v, a >> 1);
			}
		if (a >> 1 != v)
			fail("coherence: sb: cpu %u at round %lu sees cpu %u at round %lu",
			     me, v, pt, a >> 1);
		if (k && me < pt)
			hist[saw << 1 | (a & 1)]++;
		if (k == rounds)
			return;
		*x = v;
		if (fence)
			__asm__ volatile("mfence" ::: "memory");
		else
			__asm__ volatile("" ::: "memory");
		seen = *y;
		/* Its store of v-1 preceded its arrival, which this cpu saw. */
		if (seen > v || (k && seen + 1 < v))
			fail("coherence: sb: cpu %u in round %lu read %lu from cpu %u's "
			     "variable (possible: %lu or %lu)", me, v, seen, pt, v - 1, v);
		saw = seen == v;
	}
}

/* APs sleep until the turn comes (the pair before wakes everyone); the
 * BSP spins, so a lost wake-up still ends in a watchdog report. */
static void sb_wait_turn(unsigned cpu, uint64_t t)
{
	uint64_t cur;
	uint32_t spins = 0;

	while ((cur = sb_turn.w[0]) != t) {
		if (cur > t)
			fail("coherence: sb: cpu %u missed its turn %lu (now %lu)", cpu, t, cur);
		if (cpu) {
			sys2(SYS_WAIT, (uint64_t)&sb_turn.w[0], cur);
			continue;
		}
		cpu_relax();
		if (!(++spins & COH_CHECK_MASK))
			watchdog_check("coh-sb: the pairs before cpu 0's turn");
	}
}

static void sb_run(unsigned cpu, bool fence)
{
	const char *name = fence ? "sb" : "sb-nofence";
	unsigned n = ncpus + (ncpus & 1), phases = n - 1;
	uint64_t iters = coh_iters(), rounds = (iters + ncpus - 2) / (ncpus - 1);
	uint64_t hist[4] = { 0 }, total[4] = { 0 }, want, turn = 0;

	for (unsigned p = 0; p < phases; p++) {
		for (unsigned a = 0; a < ncpus; a++) {
			unsigned b = sb_partner(a, p, n);

			if (b >= ncpus || b < a)
				continue;
			if (cpu == a || cpu == b) {
				sb_wait_turn(cpu, turn);
				sb_pair(cpu, cpu == a ? b : a, p * (rounds + 1), rounds, fence,
					hist);
				/* b has made its last load once a passed the final exchange */
				if (cpu == a) {
					__atomic_store_n(&sb_turn.w[0], turn + 1, __ATOMIC_RELEASE);
					if (ncpus > 2)
						apic_send_ipi(0, VEC_WAKE | ICR_ASSERT | ICR_ALL_EXCL);
				}
			}
			turn++;
		}
	}
	for (unsigned i = 0; i < 4; i++)
		sb_hist[cpu][i] = hist[i];
	barrier("coh-sb done");
	if (cpu)
		return;
	for (unsigned c = 0; c < ncpus; c++)
		for (unsigned i = 0; i < 4; i++)
			total[i] += sb_hist[c][i];
	want = (uint64_t)phases * (ncpus / 2) * rounds;
	say("coherence: %s: outcomes (lower cpu, higher cpu read the other's store): "
	    "0,0: %lu  0,1: %lu  1,0: %lu  1,1: %lu", name, total[0], total[1],
	    total[2], total[3]);
	if (total[0] + total[1] + total[2] + total[3] != want)
		fail("coherence: %s: %lu rounds tallied, expected %lu", name,
		     total[0] + total[1] + total[2] + total[3], want);
	if (!fence) {
		say("coherence: sb-nofence: %lu of %lu rounds had both loads read 0 "
		    "(allowed without MFENCE: the store buffer at work)", total[0], want);
		return;
	}
	if (total[0])
		fail("coherence: sb: %lu of %lu rounds had both loads read 0 despite MFENCE",
		     total[0], want);
	say("coherence: sb: ok, %u cpus x %lu iterations, no both-zero outcome", ncpus,
	    (ncpus - 1) * rounds);
}

static bool sb_setup(unsigned cpu, const char *name)
{
	if (ncpus < 2) {
		if (cpu == 0)
			say("coherence: %s: skipped, needs at least 2 cpus (have 1)", name);
		return false;
	}
	if (cpu == 0) {
		for (unsigned c = 0; c < ncpus; c++)
			sb_cpu[c].x.w[0] = sb_cpu[c].arrive.w[0] = sb_cpu[c].arrive.w[8] = 0;
		sb_turn.w[0] = 0;
	}
	barrier("coh-sb start");
	return true;
}

void test_coh_sb(unsigned cpu)
{
	if (sb_setup(cpu, "sb"))
		sb_run(cpu, true);
}

void test_coh_sb_nofence(unsigned cpu)
{
	if (sb_setup(cpu, "sb-nofence"))
		sb_run(cpu, false);
}

/* --- 5. false sharing ------------------------------------------------ */
/* One page: cpu c owns word c and byte FS_BYTES + c (cpus 0-7 share one
 * cache line of words, all share one of bytes); it increments both
 * non-atomically and watches its neighbour's word only ever grow. */
#define FS_BYTES	2048
static struct coh_page fs_pg;
static uint64_t fs_changes[MAXCPU];

void test_coh_falseshare(unsigned cpu)
{
	volatile uint8_t *bytes = (volatile uint8_t *)fs_pg.w + FS_BYTES;
	unsigned nb = (cpu + 1) % ncpus;
	uint64_t n = coh_iters(), last = 0, changes = 0;

	if (cpu == 0)
		for (unsigned i = 0; i < COH_WORDS; i++)
			fs_pg.w[i] = 0;
	coh_pace_reset(cpu);
	barrier("coh-falseshare start");
	for (uint64_t i = 0; i < n; i++) {
		uint64_t t, v;

		if (!(i % COH_PACE))
			coh_pace(cpu, i, "falseshare");
		t = plain_inc(&fs_pg.w[cpu]);
		if (t != i + 1)
			fail("coherence: falseshare: cpu %u's own word read %lu before its "
			     "increment number %lu", cpu, t - 1, i + 1);
		plain_incb(&bytes[cpu]);
		v = fs_pg.w[nb];
		if (v < last || v > n)
			fail("coherence: falseshare: cpu %u read cpu %u's word as %lu after %lu",
			     cpu, nb, v, last);
		changes += v != last;
		last = v;
	}
	coh_done[cpu].w[0] = n;
	fs_changes[cpu] = changes;
	barrier("coh-falseshare done");
	if (cpu)
		return;
	changes = 0;
	for (unsigned i = 0; i < COH_WORDS; i++) {
		uint64_t want = i < ncpus ? n : 0;

		if (i >= FS_BYTES / 8 && i < FS_BYTES / 8 + MAXCPU / 8)
			continue;
		if (fs_pg.w[i] != want)
			fail("coherence: falseshare: word %u of the page is %lu, expected %lu",
			     i, fs_pg.w[i], want);
	}
	for (unsigned c = 0; c < MAXCPU; c++)
		if (bytes[c] != (c < ncpus ? (uint8_t)n : 0))
			fail("coherence: falseshare: byte %u of the byte lane is %u, expected %u",
			     c, bytes[c], c < ncpus ? (uint8_t)n : 0);
	for (unsigned c = 0; c < ncpus; c++)
		changes += fs_changes[c];
	if (!changes && coh_must_interleave(n))
		fail("coherence: falseshare: no cpu ever saw its neighbour's word change "
		     "between two reads although paced");
	say("coherence: falseshare: ok, %u cpus x %lu iterations, no lost write", ncpus, n);
	say("coherence: falseshare: the neighbour's word changed between %lu of %lu "
	    "reads", changes, ncpus * n);
}
