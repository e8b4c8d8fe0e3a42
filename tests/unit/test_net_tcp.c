/* The TCP transport on real loopback sockets: several nodes in one process
 * (one in a child process where a node must die for real). */
#include <check.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/transport.h"
#include "vmm/bytes.h"

#define MAXN		4
#define SENDERS		3
#define T_ORDER		(NET_TYPE_CONTROL_FIRST + 1)
#define T_ECHO_REQ	(NET_TYPE_DSM_FIRST)
#define T_ECHO_REPLY	(NET_TYPE_DSM_FIRST + 1)
#define T_BULK		(NET_TYPE_MIGRATE_FIRST)
#define T_PLAIN		(NET_TYPE_IO_FIRST)
#define ORDER_MAGIC	0x2144524fu
#define LOGS		128

struct tnode {
	struct transport *t;
	unsigned id;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	/* ordering test */
	uint64_t got[MAXN][NET_NR_CHANNELS];
	uint32_t next[MAXN][NET_NR_CHANNELS][SENDERS];
	unsigned bad;
	char bad_msg[200];
	uint64_t plain;			/* T_PLAIN messages */
	/* peer_down */
	unsigned downs[MAXN];
	enum transport_down_reason down_reason[MAXN];
	uint64_t down_ms[MAXN];
	char down_detail[MAXN][200];
	/* echo / round trips */
	bool echo;
	uint64_t replies;
	uint64_t reply_cb_ns;
	/* bulk */
	unsigned bulk_sleep_ms;
	uint64_t bulk_msgs, bulk_bad;
	/* log lines */
	char logs[LOGS][320];
	unsigned nlogs;
};

struct cluster {
	unsigned n;
	int lfd[MAXN];
	char addr[MAXN][64];
	const char *addrs[MAXN];
	struct net_key key;
	uint64_t cluster_id;
	struct tnode *nodes[MAXN];
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static uint64_t now_ms(void)
{
	return now_ns() / 1000000;
}

static void sleep_ms(unsigned ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* A free loopback port: bound to port 0 and kept, handed to the node. */
static int bind_any(char *addr, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(fd, 128), 0);
	ck_assert_int_eq(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
	snprintf(addr, cap, "127.0.0.1:%u", ntohs(sa.sin_port));
	return fd;
}

static unsigned port_of(const char *addr)
{
	return (unsigned)atoi(strchr(addr, ':') + 1);
}

static void cluster_init(struct cluster *c, unsigned n)
{
	char err[200];

	memset(c, 0, sizeof(*c));
	c->n = n;
	for (unsigned i = 0; i < n; i++) {
		c->lfd[i] = bind_any(c->addr[i], sizeof(c->addr[i]));
		c->addrs[i] = c->addr[i];
	}
	ck_assert_int_eq(net_auth__key_generate(&c->key, err, sizeof(err)), 0);
	c->cluster_id = net_auth__cluster_id("test-cluster", 12);
}

/* ---- callbacks ---- */

static void fill(uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(seed + i * 13 + (i >> 8));
}

static bool filled(const uint8_t *p, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		if (p[i] != (uint8_t)(seed + i * 13 + (i >> 8)))
			return false;
	return true;
}

static void on_order(struct tnode *n, unsigned sender, unsigned ch,
		     const uint8_t *p, uint32_t len)
{
	unsigned th;
	uint32_t idx;

	pthread_mutex_lock(&n->lock);
	if (len < 16 || get_le32(p) != ORDER_MAGIC || get_le32(p + 12) != len ||
	    (th = get_le16(p + 4)) >= SENDERS || get_le16(p + 6) != ch) {
		n->bad++;
		snprintf(n->bad_msg, sizeof(n->bad_msg), "malformed from %u",
			 sender);
		goto out;
	}
	idx = get_le32(p + 8);
	if (idx != n->next[sender][ch][th]) {
		n->bad++;
		snprintf(n->bad_msg, sizeof(n->bad_msg),
			 "from %u ch %u thread %u: index %u, expected %u",
			 sender, ch, th, idx, n->next[sender][ch][th]);
	} else if (!filled(p + 16, len - 16, sender * 31 + th * 7 + idx)) {
		n->bad++;
		snprintf(n->bad_msg, sizeof(n->bad_msg), "content from %u", sender);
	}
	n->next[sender][ch][th] = idx + 1;
	n->got[sender][ch]++;
out:
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

static void on_recv(void *opaque, unsigned sender, enum net_channel ch,
		    unsigned type, const void *payload, uint32_t len)
{
	struct tnode *n = opaque;
	static uint8_t reply[4096];
	char err[200];

	switch (type) {
	case T_ORDER:
		on_order(n, sender, ch, payload, len);
		return;
	case T_ECHO_REQ:
		if (n->echo)
			ck_assert_int_eq(transport__send_buf(n->t, sender,
							     NET_CH_FAST,
							     T_ECHO_REPLY, reply,
							     sizeof(reply), err,
							     sizeof(err)), 0);
		return;
	case T_ECHO_REPLY:
		pthread_mutex_lock(&n->lock);
		n->replies++;
		n->reply_cb_ns = now_ns();
		pthread_cond_broadcast(&n->cond);
		pthread_mutex_unlock(&n->lock);
		return;
	case T_BULK:
		if (n->bulk_sleep_ms)
			sleep_ms(n->bulk_sleep_ms);
		pthread_mutex_lock(&n->lock);
		n->bulk_msgs++;
		if (len != NET_BULK_MAX_PAYLOAD ||
		    !filled((const uint8_t *)payload + 4, len - 4,
			    get_le32(payload)))
			n->bulk_bad++;
		pthread_cond_broadcast(&n->cond);
		pthread_mutex_unlock(&n->lock);
		return;
	default:
		pthread_mutex_lock(&n->lock);
		n->plain++;
		pthread_cond_broadcast(&n->cond);
		pthread_mutex_unlock(&n->lock);
	}
}

static void on_down(void *opaque, unsigned node,
		    enum transport_down_reason reason, const char *detail)
{
	struct tnode *n = opaque;

	pthread_mutex_lock(&n->lock);
	n->downs[node]++;
	n->down_reason[node] = reason;
	n->down_ms[node] = now_ms();
	snprintf(n->down_detail[node], sizeof(n->down_detail[node]), "%s",
		 detail);
	pthread_cond_broadcast(&n->cond);
	pthread_mutex_unlock(&n->lock);
}

static void on_log(void *opaque, const char *line)
{
	struct tnode *n = opaque;

	pthread_mutex_lock(&n->lock);
	if (n->nlogs < LOGS)
		snprintf(n->logs[n->nlogs], sizeof(n->logs[0]), "%s", line);
	n->nlogs++;
	pthread_mutex_unlock(&n->lock);
	if (getenv("KRG_NET_TEST_VERBOSE"))
		fprintf(stderr, "%s\n", line);
}

/* Whether one log line holds both texts. */
static bool logged(struct tnode *n, const char *a, const char *b)
{
	bool found = false;

	pthread_mutex_lock(&n->lock);
	for (unsigned i = 0; i < n->nlogs && i < LOGS && !found; i++)
		found = strstr(n->logs[i], a) && (!b || strstr(n->logs[i], b));
	pthread_mutex_unlock(&n->lock);
	return found;
}

static bool wait_logged(struct tnode *n, const char *a, const char *b,
			unsigned ms)
{
	uint64_t end = now_ms() + ms;

	while (!logged(n, a, b)) {
		if (now_ms() > end)
			return false;
		sleep_ms(2);
	}
	return true;
}

/* ---- nodes ---- */

struct node_opts {
	const struct net_key *key;	/* NULL: the cluster's */
	uint64_t cluster_id;		/* 0: the cluster's */
	unsigned heartbeat_ms, timeout_ms, handshake_ms;
};

static struct tnode *node_new(struct cluster *c, unsigned id,
			      const struct node_opts *o)
{
	struct tnode *n = calloc(1, sizeof(*n));
	struct tcp_transport_config cfg = {
		.self = id, .nr_nodes = c->n, .addrs = c->addrs,
		.key = o && o->key ? o->key : &c->key,
		.cluster_id = o && o->cluster_id ? o->cluster_id : c->cluster_id,
		.cb = { .opaque = n, .recv = on_recv, .peer_down = on_down,
			.log = on_log },
		.heartbeat_ms = o ? o->heartbeat_ms : 0,
		.peer_timeout_ms = o ? o->timeout_ms : 0,
		.handshake_timeout_ms = o ? o->handshake_ms : 0,
		.have_listen_fd = true, .listen_fd = c->lfd[id],
	};
	char err[300];

	ck_assert_ptr_nonnull(n);
	n->id = id;
	pthread_mutex_init(&n->lock, NULL);
	pthread_cond_init(&n->cond, NULL);
	n->t = tcp_transport__create(&cfg, err, sizeof(err));
	ck_assert_msg(n->t, "create node %u: %s", id, err);
	c->lfd[id] = -1;	/* the transport owns it */
	c->nodes[id] = n;
	return n;
}

static void node_free(struct tnode *n)
{
	if (!n)
		return;
	transport__destroy(n->t);
	pthread_mutex_destroy(&n->lock);
	pthread_cond_destroy(&n->cond);
	free(n);
}

static void cluster_free(struct cluster *c)
{
	for (unsigned i = 0; i < c->n; i++) {
		node_free(c->nodes[i]);
		c->nodes[i] = NULL;
		if (c->lfd[i] >= 0)
			close(c->lfd[i]);
	}
}

struct starter {
	struct tnode *n;
	unsigned timeout_ms;
	int r;
	char err[600];
	pthread_t tid;
};

static void *start_main(void *arg)
{
	struct starter *s = arg;

	s->r = transport__start(s->n->t, s->timeout_ms, s->err, sizeof(s->err));
	return NULL;
}

static void start_bg(struct starter *s, struct tnode *n, unsigned ms)
{
	memset(s, 0, sizeof(*s));
	s->n = n;
	s->timeout_ms = ms;
	ck_assert_int_eq(pthread_create(&s->tid, NULL, start_main, s), 0);
}

/* All nodes start at once (each start waits for its peers). */
static void start_all(struct cluster *c)
{
	struct starter s[MAXN];

	for (unsigned i = 0; i < c->n; i++)
		start_bg(&s[i], c->nodes[i], 5000);
	for (unsigned i = 0; i < c->n; i++) {
		pthread_join(s[i].tid, NULL);
		ck_assert_msg(s[i].r == 0, "start node %u: %s", i, s[i].err);
	}
	for (unsigned i = 0; i < c->n; i++)
		for (unsigned j = 0; j < c->n; j++)
			ck_assert(i == j || transport__peer_up(c->nodes[i]->t, j));
}

static int send_plain(struct tnode *from, unsigned to, enum net_channel ch,
		      char *err, size_t errlen)
{
	static const char msg[] = "hello";

	return transport__send_buf(from->t, to, ch, T_PLAIN, msg, sizeof(msg),
				   err, errlen);
}

static bool wait_plain(struct tnode *n, uint64_t count, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	bool ok;

	for (;;) {
		pthread_mutex_lock(&n->lock);
		ok = n->plain >= count;
		pthread_mutex_unlock(&n->lock);
		if (ok || now_ms() > end)
			return ok;
		sleep_ms(2);
	}
}

static bool wait_down(struct tnode *n, unsigned peer, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	bool ok;

	for (;;) {
		pthread_mutex_lock(&n->lock);
		ok = n->downs[peer] > 0;
		pthread_mutex_unlock(&n->lock);
		if (ok || now_ms() > end)
			return ok;
		sleep_ms(1);
	}
}

/* Messages flow every way in the mesh. */
static void check_mesh_works(struct cluster *c, const unsigned *ids,
			     unsigned nr)
{
	uint64_t before[MAXN];
	char err[200];

	for (unsigned i = 0; i < nr; i++) {
		pthread_mutex_lock(&c->nodes[ids[i]]->lock);
		before[i] = c->nodes[ids[i]]->plain;
		pthread_mutex_unlock(&c->nodes[ids[i]]->lock);
	}
	for (unsigned i = 0; i < nr; i++)
		for (unsigned j = 0; j < nr; j++)
			if (i != j)
				for (int ch = 0; ch < NET_NR_CHANNELS; ch++)
					ck_assert_msg(!send_plain(c->nodes[ids[i]],
								  ids[j], ch, err,
								  sizeof(err)),
						      "%u->%u: %s", ids[i], ids[j],
						      err);
	for (unsigned i = 0; i < nr; i++)
		ck_assert(wait_plain(c->nodes[ids[i]],
				     before[i] + 2 * (nr - 1), 3000));
}

/* ---- 1: a 3-node mesh, many senders, order and content ---- */

#define FAST_N	400
#define BULK_EVERY 20
#define BULK_MAX_TEST 200000

struct sender_arg {
	struct cluster *c;
	unsigned node, thread;
	int fails;
	char err[200];
	pthread_t tid;
};

static int send_order(struct tnode *n, unsigned to, enum net_channel ch,
		      unsigned th, uint32_t idx, uint32_t len, uint8_t *buf,
		      char *err, size_t errlen)
{
	uint8_t hdr[16];
	struct iovec iov[2] = { { hdr, 16 }, { buf, len - 16 } };

	put_le32(hdr, ORDER_MAGIC);
	put_le16(hdr + 4, (uint16_t)th);
	put_le16(hdr + 6, (uint16_t)ch);
	put_le32(hdr + 8, idx);
	put_le32(hdr + 12, len);
	fill(buf, len - 16, n->id * 31 + th * 7 + idx);
	return transport__send(n->t, to, ch, T_ORDER, iov, 2, err, errlen);
}

static void *sender_main(void *arg)
{
	struct sender_arg *a = arg;
	struct tnode *n = a->c->nodes[a->node];
	uint8_t *buf = malloc(BULK_MAX_TEST);

	for (uint32_t idx = 0; buf && idx < FAST_N; idx++) {
		for (unsigned to = 0; to < a->c->n; to++) {
			uint32_t len = 16 + (idx * 97 + a->thread * 13) % 4000;
			uint32_t b = idx / BULK_EVERY;

			if (to == a->node)
				continue;
			a->fails += send_order(n, to, NET_CH_FAST, a->thread, idx,
					       len, buf, a->err, sizeof(a->err)) != 0;
			if (idx % BULK_EVERY)
				continue;
			len = 16 + (b * 48611u + a->thread * 1000) % (BULK_MAX_TEST - 16);
			a->fails += send_order(n, to, NET_CH_BULK, a->thread, b,
					       len, buf, a->err, sizeof(a->err)) != 0;
		}
	}
	free(buf);
	return NULL;
}

static bool all_received(struct cluster *c)
{
	bool ok = true;

	for (unsigned i = 0; i < c->n; i++) {
		struct tnode *n = c->nodes[i];

		pthread_mutex_lock(&n->lock);
		for (unsigned s = 0; s < c->n; s++) {
			if (s == i)
				continue;
			ok &= n->got[s][NET_CH_FAST] == SENDERS * FAST_N;
			ok &= n->got[s][NET_CH_BULK] == SENDERS * FAST_N / BULK_EVERY;
		}
		pthread_mutex_unlock(&n->lock);
	}
	return ok;
}

START_TEST(test_mesh_order_and_goodbye)
{
	struct sender_arg a[MAXN * SENDERS];
	struct cluster c;
	uint64_t t0, end, total = 0;
	char err[200];

	cluster_init(&c, 3);
	for (unsigned i = 0; i < 3; i++)
		node_new(&c, i, NULL);
	start_all(&c);

	t0 = now_ms();
	for (unsigned i = 0; i < 3 * SENDERS; i++) {
		a[i] = (struct sender_arg){ .c = &c, .node = i / SENDERS,
					    .thread = i % SENDERS };
		ck_assert_int_eq(pthread_create(&a[i].tid, NULL, sender_main,
						&a[i]), 0);
	}
	for (unsigned i = 0; i < 3 * SENDERS; i++) {
		pthread_join(a[i].tid, NULL);
		ck_assert_msg(a[i].fails == 0, "sender %u: %s", i, a[i].err);
	}
	end = now_ms() + 20000;
	while (!all_received(&c) && now_ms() < end)
		sleep_ms(5);
	for (unsigned i = 0; i < 3; i++) {
		struct tnode *n = c.nodes[i];

		ck_assert_msg(n->bad == 0, "node %u: %u bad, last: %s", i, n->bad,
			      n->bad_msg);
		for (unsigned s = 0; s < 3; s++) {
			if (s == i)
				continue;
			ck_assert_uint_eq(n->got[s][NET_CH_FAST], SENDERS * FAST_N);
			ck_assert_uint_eq(n->got[s][NET_CH_BULK],
					  SENDERS * FAST_N / BULK_EVERY);
			total += n->got[s][0] + n->got[s][1];
			ck_assert_uint_eq(n->downs[s], 0);
		}
	}
	printf("net_tcp: 3-node mesh, %d sender threads: %llu messages in order in %llu ms\n",
	       3 * SENDERS, (unsigned long long)total,
	       (unsigned long long)(now_ms() - t0));

	/* A clean stop is a goodbye to the others, not a failure. */
	t0 = now_ms();
	transport__stop(c.nodes[2]->t);
	ck_assert(wait_down(c.nodes[0], 2, 2000));
	ck_assert(wait_down(c.nodes[1], 2, 2000));
	ck_assert_int_eq(c.nodes[0]->down_reason[2], TRANSPORT_DOWN_GOODBYE);
	ck_assert_int_eq(c.nodes[1]->down_reason[2], TRANSPORT_DOWN_GOODBYE);
	printf("net_tcp: clean stop seen as goodbye after %llu ms\n",
	       (unsigned long long)(c.nodes[0]->down_ms[2] - t0));
	/* ... and reported once; the stopped node reports nothing. */
	sleep_ms(50);
	ck_assert_uint_eq(c.nodes[0]->downs[2], 1);
	ck_assert_uint_eq(c.nodes[2]->downs[0] + c.nodes[2]->downs[1], 0);
	ck_assert(!logged(c.nodes[0], "is down", "closed"));
	/* Sending to it fails at once; the other two still talk. */
	t0 = now_ns();
	ck_assert_int_eq(send_plain(c.nodes[0], 2, NET_CH_FAST, err, sizeof(err)),
			 -1);
	ck_assert_uint_lt(now_ns() - t0, 5000000);
	ck_assert_ptr_nonnull(strstr(err, "node 2"));
	ck_assert_int_eq(send_plain(c.nodes[2], 0, NET_CH_FAST, err, sizeof(err)),
			 -1);
	{
		static const unsigned ids[] = { 0, 1 };

		check_mesh_works(&c, ids, 2);
	}
	cluster_free(&c);
}
END_TEST

/* ---- 2: BULK traffic never delays FAST ---- */

struct bulk_arg {
	struct tnode *n;
	unsigned to;
	volatile bool stop;
	unsigned sent;
	int fails;
	char err[200];
	pthread_t tid;
};

static void *bulk_main(void *arg)
{
	struct bulk_arg *a = arg;
	uint8_t *buf = malloc(NET_BULK_MAX_PAYLOAD);

	while (buf && !a->stop && a->sent < 8) {
		/* The first 4 bytes name the pattern of the rest. */
		put_le32(buf, a->sent);
		fill(buf + 4, NET_BULK_MAX_PAYLOAD - 4, a->sent);
		if (transport__send_buf(a->n->t, a->to, NET_CH_BULK, T_BULK, buf,
					NET_BULK_MAX_PAYLOAD, a->err,
					sizeof(a->err))) {
			a->fails++;
			break;
		}
		a->sent++;
	}
	free(buf);
	return NULL;
}

/* One FAST round trip: 64-byte request, 4 KiB reply.  Returns ns until the
 * requesting thread is awake again; *cb_ns gets when the reply callback
 * ran. */
static uint64_t round_trip(struct tnode *a, unsigned to, uint64_t *cb_ns)
{
	uint8_t req[64] = { 1 };
	char err[200];
	uint64_t t0, want;

	pthread_mutex_lock(&a->lock);
	want = a->replies + 1;
	pthread_mutex_unlock(&a->lock);
	t0 = now_ns();
	ck_assert_msg(!transport__send_buf(a->t, to, NET_CH_FAST, T_ECHO_REQ,
					   req, sizeof(req), err, sizeof(err)),
		      "%s", err);
	pthread_mutex_lock(&a->lock);
	while (a->replies < want)
		pthread_cond_wait(&a->cond, &a->lock);
	if (cb_ns)
		*cb_ns = a->reply_cb_ns - t0;
	pthread_mutex_unlock(&a->lock);
	return now_ns() - t0;
}

static int cmp_u64(const void *x, const void *y)
{
	uint64_t a = *(const uint64_t *)x, b = *(const uint64_t *)y;

	return a < b ? -1 : a > b;
}

START_TEST(test_bulk_does_not_delay_fast)
{
	static uint64_t rtt[4000];
	struct bulk_arg b = { 0 };
	struct cluster c;
	unsigned nr = 0;
	uint64_t end;

	cluster_init(&c, 2);
	node_new(&c, 0, NULL);
	node_new(&c, 1, NULL);
	c.nodes[1]->echo = true;
	/* A slow consumer of BULK (say, writing a checkpoint to disk): if
	 * FAST shared its connection or its receive thread, every FAST
	 * round trip would wait behind it. */
	c.nodes[1]->bulk_sleep_ms = 100;
	start_all(&c);

	b.n = c.nodes[0];
	b.to = 1;
	ck_assert_int_eq(pthread_create(&b.tid, NULL, bulk_main, &b), 0);
	/* Until the first 4 MiB message is being consumed. */
	end = now_ms() + 5000;
	while (b.sent < 1 && now_ms() < end)
		sleep_ms(1);
	end = now_ms() + 500;
	while (now_ms() < end && nr < sizeof(rtt) / sizeof(rtt[0]))
		rtt[nr++] = round_trip(c.nodes[0], 1, NULL);
	b.stop = true;
	pthread_join(b.tid, NULL);
	ck_assert_msg(b.fails == 0, "bulk: %s", b.err);
	qsort(rtt, nr, sizeof(rtt[0]), cmp_u64);
	printf("net_tcp: FAST round trips during 4 MiB BULK transfers (slow BULK consumer): %u, median %.1f us, p99 %.1f us, max %.1f us\n",
	       nr, rtt[nr / 2] / 1e3, rtt[nr * 99 / 100] / 1e3,
	       rtt[nr - 1] / 1e3);
	ck_assert_uint_ge(nr, 20);
	ck_assert_msg(rtt[nr - 1] < 50000000ull, "max FAST RTT %.1f ms",
		      rtt[nr - 1] / 1e6);
	/* The bulk data all arrived, intact. */
	end = now_ms() + 5000;
	for (;;) {
		pthread_mutex_lock(&c.nodes[1]->lock);
		if (c.nodes[1]->bulk_msgs >= b.sent || now_ms() > end) {
			pthread_mutex_unlock(&c.nodes[1]->lock);
			break;
		}
		pthread_mutex_unlock(&c.nodes[1]->lock);
		sleep_ms(5);
	}
	ck_assert_uint_ge(b.sent, 2);
	ck_assert_uint_eq(c.nodes[1]->bulk_msgs, b.sent);
	ck_assert_uint_eq(c.nodes[1]->bulk_bad, 0);
	cluster_free(&c);
}
END_TEST

/* ---- 3: the FAST round-trip floor ---- */

START_TEST(test_fast_round_trip)
{
	static uint64_t rtt[20000], cb[20000];
	const char *env = getenv("KRG_NET_RTT_ROUNDS");
	unsigned nr = env ? (unsigned)atoi(env) : 3000;
	struct cluster c;

	if (nr < 100 || nr > 20000)
		nr = 3000;
	cluster_init(&c, 2);
	node_new(&c, 0, NULL);
	node_new(&c, 1, NULL);
	c.nodes[1]->echo = true;
	start_all(&c);
	for (unsigned i = 0; i < 200; i++)
		round_trip(c.nodes[0], 1, NULL);
	for (unsigned i = 0; i < nr; i++)
		rtt[i] = round_trip(c.nodes[0], 1, &cb[i]);
	qsort(rtt, nr, sizeof(rtt[0]), cmp_u64);
	qsort(cb, nr, sizeof(cb[0]), cmp_u64);
	printf("net_tcp: FAST RTT 64 B request / 4 KiB reply, %u rounds: median %.1f us (p10 %.1f, p90 %.1f, p99 %.1f); reply callback reached after median %.1f us\n",
	       nr, rtt[nr / 2] / 1e3, rtt[nr / 10] / 1e3, rtt[nr * 9 / 10] / 1e3,
	       rtt[nr * 99 / 100] / 1e3, cb[nr / 2] / 1e3);
	/* Nagle's algorithm or a delayed ACK would show as ~40 ms. */
	ck_assert_msg(rtt[nr / 2] < 5000000ull, "median RTT %.1f us",
		      rtt[nr / 2] / 1e3);
	cluster_free(&c);
}
END_TEST

/* ---- 4: strangers: wrong key, other cluster ---- */

/* A node of another configuration that claims to be node 0 of c, with
 * its own listening socket and c's other addresses. */
static struct tnode *impostor(struct cluster *ic, const struct cluster *c,
			      const struct node_opts *o)
{
	*ic = *c;
	memset(ic->nodes, 0, sizeof(ic->nodes));
	for (unsigned i = 0; i < c->n; i++)
		ic->lfd[i] = -1;
	ic->lfd[0] = bind_any(ic->addr[0], sizeof(ic->addr[0]));
	for (unsigned i = 0; i < c->n; i++)
		ic->addrs[i] = ic->addr[i];
	return node_new(ic, 0, o);
}

START_TEST(test_wrong_key_rejected)
{
	static const unsigned all[] = { 0, 1, 2 };
	struct cluster c, ic;
	struct net_key other;
	struct node_opts o = { .key = &other };
	struct tnode *imp;
	char err[600];
	uint64_t t0;

	cluster_init(&c, 3);
	for (unsigned i = 0; i < 3; i++)
		node_new(&c, i, NULL);
	start_all(&c);

	ck_assert_int_eq(net_auth__key_generate(&other, err, sizeof(err)), 0);
	imp = impostor(&ic, &c, &o);
	t0 = now_ms();
	ck_assert_int_eq(transport__start(imp->t, 3000, err, sizeof(err)), -1);
	/* Refused at once, not after the deadline. */
	ck_assert_uint_lt(now_ms() - t0, 2500);
	ck_assert_msg(strstr(err, "authentication failed"), "%s", err);
	ck_assert(wait_logged(c.nodes[1], "rejected connection from 127.0.0.1:",
			      "authentication failed", 2000));
	ck_assert(wait_logged(c.nodes[2], "claims node 0", "authentication failed",
			      2000));
	node_free(imp);

	/* The right key, but another cluster: refused too. */
	o.key = NULL;
	o.cluster_id = c.cluster_id ^ 1;
	imp = impostor(&ic, &c, &o);
	ck_assert_int_eq(transport__start(imp->t, 3000, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "cluster"), "%s", err);
	ck_assert(wait_logged(c.nodes[1], "rejected connection", "cluster", 2000));
	node_free(imp);

	/* The real node 0 and the others never noticed. */
	for (unsigned i = 0; i < 3; i++)
		for (unsigned j = 0; j < 3; j++)
			ck_assert_uint_eq(c.nodes[i]->downs[j], 0);
	check_mesh_works(&c, all, 3);
	cluster_free(&c);
}
END_TEST

/* ---- 5: garbage on the port ---- */

static int raw_connect(const char *addr, char *local, size_t cap)
{
	struct sockaddr_in sa = { .sin_family = AF_INET };
	socklen_t len = sizeof(sa);
	int one = 1, fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	sa.sin_port = htons((uint16_t)port_of(addr));
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	if (local) {
		getsockname(fd, (struct sockaddr *)&sa, &len);
		snprintf(local, cap, "127.0.0.1:%u", ntohs(sa.sin_port));
	}
	return fd;
}

/* The node closed this socket within ms (whatever it sent first is
 * discarded). */
static bool closed_within(int fd, unsigned ms)
{
	uint64_t end = now_ms() + ms;
	uint8_t buf[512];

	while (now_ms() < end) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t n;

		if (poll(&p, 1, 20) <= 0)
			continue;
		n = recv(fd, buf, sizeof(buf), 0);
		if (n == 0 || (n < 0 && errno == ECONNRESET))
			return true;
	}
	return false;
}

static void send_raw(int fd, const void *p, size_t n)
{
	ck_assert_int_eq(send(fd, p, n, MSG_NOSIGNAL), (ssize_t)n);
}

START_TEST(test_garbage_rejected)
{
	static const unsigned both[] = { 0, 1 };
	struct node_opts o = { .handshake_ms = 300 };
	uint8_t junk[1000], msg[NET_HDR_SIZE + 64];
	struct cluster c;
	struct net_hdr h;
	char local[64];
	unsigned before;
	int fd;

	cluster_init(&c, 2);
	node_new(&c, 0, &o);
	node_new(&c, 1, &o);
	start_all(&c);

	/* Random bytes. */
	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 151 + 7);
	fd = raw_connect(c.addr[1], local, sizeof(local));
	send_raw(fd, junk, sizeof(junk));
	ck_assert(closed_within(fd, 2000));
	close(fd);
	ck_assert(wait_logged(c.nodes[1], local, "bad magic", 1000));

	/* A good-looking header announcing 2 GiB. */
	fd = raw_connect(c.addr[1], local, sizeof(local));
	net_msg__init(&h, NET_T_HELLO, NET_CH_FAST, 0, 0x7fffffffu, 0);
	net_msg__encode(msg, &h);
	net_msg__seal(msg, NULL, 0);
	send_raw(fd, msg, NET_HDR_SIZE);
	ck_assert(closed_within(fd, 2000));
	close(fd);
	ck_assert(wait_logged(c.nodes[1], local, "exceeds", 1000));

	/* Another protocol version: told why, naming both. */
	fd = raw_connect(c.addr[0], local, sizeof(local));
	net_msg__init(&h, NET_T_HELLO, NET_CH_FAST, 1, 48, 0);
	h.version = NET_PROTO_VERSION + 1;
	memset(msg + NET_HDR_SIZE, 0, 48);
	ck_assert_uint_eq(net_msg__build(msg, sizeof(msg), &h, msg + NET_HDR_SIZE),
			  NET_HDR_SIZE + 48);
	send_raw(fd, msg, NET_HDR_SIZE + 48);
	{
		uint8_t reply[NET_HDR_SIZE + 256] = { 0 };
		struct net_msg_expect x = { .peer = 0, .channel = NET_CH_FAST,
					    .max_len = 256, .seq = 0 };
		struct net_hdr rh;
		char why[200], want[64];
		ssize_t n = 0, k;

		while (n < NET_HDR_SIZE ||
		       (size_t)n < NET_HDR_SIZE + get_le32(reply + 12)) {
			k = recv(fd, reply + n, sizeof(reply) - (size_t)n, 0);
			ck_assert_int_gt(k, 0);
			n += k;
		}
		ck_assert_int_eq(net_msg__validate(reply, (size_t)n, &x, &rh, why,
						   sizeof(why)), NET_MSG_OK);
		ck_assert_uint_eq(rh.type, NET_T_REJECT);
		reply[NET_HDR_SIZE + rh.len] = 0;
		snprintf(want, sizeof(want), "version %u", NET_PROTO_VERSION + 1);
		ck_assert_msg(strstr((char *)reply + NET_HDR_SIZE, want), "%s",
			      reply + NET_HDR_SIZE);
		snprintf(want, sizeof(want), "version %u", NET_PROTO_VERSION);
		ck_assert(strstr((char *)reply + NET_HDR_SIZE, want));
	}
	ck_assert(closed_within(fd, 2000));
	close(fd);
	ck_assert(wait_logged(c.nodes[0], local, "version", 1000));

	/* Connects and says nothing: dropped after the handshake timeout. */
	fd = raw_connect(c.addr[1], local, sizeof(local));
	ck_assert(closed_within(fd, 2000));
	close(fd);
	ck_assert(wait_logged(c.nodes[1], local, "timed out", 1000));

	/* A flood: the log is rate-limited. */
	sleep_ms(1100);
	pthread_mutex_lock(&c.nodes[1]->lock);
	before = c.nodes[1]->nlogs;
	pthread_mutex_unlock(&c.nodes[1]->lock);
	for (int i = 0; i < 60; i++) {
		fd = raw_connect(c.addr[1], NULL, 0);
		send_raw(fd, junk, 64);
		ck_assert(closed_within(fd, 2000));
		close(fd);
	}
	pthread_mutex_lock(&c.nodes[1]->lock);
	ck_assert_msg(c.nodes[1]->nlogs - before <= 42, "%u lines",
		      c.nodes[1]->nlogs - before);
	pthread_mutex_unlock(&c.nodes[1]->lock);
	sleep_ms(1100);
	fd = raw_connect(c.addr[1], NULL, 0);
	send_raw(fd, junk, 64);
	ck_assert(closed_within(fd, 2000));
	close(fd);
	ck_assert(wait_logged(c.nodes[1], "log lines suppressed", NULL, 1000));

	/* None of it disturbed the cluster. */
	ck_assert_uint_eq(c.nodes[0]->downs[1] + c.nodes[1]->downs[0], 0);
	check_mesh_works(&c, both, 2);
	cluster_free(&c);
}
END_TEST

/* ---- 6: an authenticated peer that breaks the protocol ---- */

enum violation { V_REPLAY, V_SKIP, V_SENDER, V_CRC, V_TYPE, V_LONG,
		 V_INTERNAL, V_CHANNEL, V_COUNT };

static const char *const violation_log[V_COUNT] = {
	"replay", "lost", "sender", "CRC", "unknown message type", "exceeds",
	"handshake message", "channel",
};

static void fake_send(int fd, enum violation v, uint64_t *seq, bool bad)
{
	uint8_t msg[NET_HDR_SIZE + 32];
	struct net_hdr h;

	memset(msg + NET_HDR_SIZE, 0x42, 32);
	net_msg__init(&h, T_PLAIN, NET_CH_FAST, 0, 32, *seq);
	if (bad) {
		switch (v) {
		case V_REPLAY:	h.seq = *seq - 1; break;
		case V_SKIP:	h.seq = *seq + 1; break;
		case V_SENDER:	h.sender = 1; break;
		case V_TYPE:	h.type = 200; break;
		case V_INTERNAL: h.type = NET_T_HELLO; break;
		case V_CHANNEL:	h.channel = NET_CH_BULK; break;
		default:	break;
		}
	}
	net_msg__build(msg, sizeof(msg), &h, msg + NET_HDR_SIZE);
	if (bad && v == V_CRC)
		msg[NET_HDR_SIZE + 5] ^= 0x10;
	if (bad && v == V_LONG) {
		put_le32(msg + 12, NET_FAST_MAX_PAYLOAD + 1);
		net_msg__seal(msg, NULL, 0);
	}
	send_raw(fd, msg, sizeof(msg));
	(*seq)++;
}

START_TEST(test_authenticated_peer_misbehaves)
{
	for (int v = 0; v < V_COUNT; v++) {
		struct cluster c;
		struct starter s;
		struct tnode *n;
		struct net_hs hs;
		char err[200];
		uint64_t seq;
		int fd;

		cluster_init(&c, 2);
		/* Node 0 is played by the test: it dials, nobody dials it. */
		close(c.lfd[0]);
		c.lfd[0] = -1;
		n = node_new(&c, 1, NULL);
		start_bg(&s, n, 5000);
		fd = raw_connect(c.addr[1], NULL, 0);
		hs = (struct net_hs){ .key = &c.key, .cluster_id = c.cluster_id,
				      .self = 0, .peer = 1,
				      .channel = NET_CH_FAST, .timeout_ms = 2000 };
		ck_assert_msg(!net_auth__connect(fd, &hs, err, sizeof(err)), "%s",
			      err);
		seq = hs.tx_seq;
		fake_send(fd, v, &seq, false);
		ck_assert(wait_plain(n, 1, 2000));
		fake_send(fd, v, &seq, true);
		/* Then a good message that must not be delivered either. */
		fake_send(fd, v, &seq, false);
		ck_assert_msg(wait_down(n, 0, 2000), "violation %d", v);
		ck_assert_int_eq(n->down_reason[0], TRANSPORT_DOWN_PROTOCOL);
		ck_assert_msg(strstr(n->down_detail[0], violation_log[v]),
			      "violation %d: %s", v, n->down_detail[0]);
		ck_assert(logged(n, "node 0 (127.0.0.1:", violation_log[v]));
		ck_assert(closed_within(fd, 2000));
		pthread_join(s.tid, NULL);
		/* start gives up as soon as its peer is down */
		ck_assert_int_eq(s.r, -1);
		ck_assert_uint_eq(n->plain, 1);
		ck_assert_uint_eq(n->downs[0], 1);
		close(fd);
		cluster_free(&c);
	}
}
END_TEST

/* ---- 7: a peer that dies or goes silent ---- */

START_TEST(test_peer_death_detected)
{
	static const unsigned both[] = { 0, 1 };
	struct node_opts o = { .heartbeat_ms = 100, .timeout_ms = 600 };

	/* mode 0: the process is killed (the kernel closes its sockets);
	 * mode 1: it is frozen, as behind a cut network: only silence. */
	for (int mode = 0; mode < 2; mode++) {
		struct starter s[2];
		struct cluster c;
		uint64_t t0, dt;
		int status;
		pid_t pid;

		cluster_init(&c, 3);
		/* Forked before this process has any thread. */
		pid = fork();
		ck_assert_int_ge(pid, 0);
		if (pid == 0) {
			char err[600];
			struct tnode *n;

			close(c.lfd[0]);
			close(c.lfd[1]);
			c.lfd[0] = c.lfd[1] = -1;
			n = node_new(&c, 2, &o);
			if (transport__start(n->t, 5000, err, sizeof(err)))
				_exit(3);
			for (;;)
				pause();
		}
		close(c.lfd[2]);
		c.lfd[2] = -1;
		node_new(&c, 0, &o);
		node_new(&c, 1, &o);
		start_bg(&s[0], c.nodes[0], 5000);
		start_bg(&s[1], c.nodes[1], 5000);
		for (int i = 0; i < 2; i++) {
			pthread_join(s[i].tid, NULL);
			ck_assert_msg(s[i].r == 0, "%s", s[i].err);
		}
		/* Idle for longer than the timeout: heartbeats keep it up. */
		sleep_ms(1000);
		ck_assert_uint_eq(c.nodes[0]->downs[2] + c.nodes[1]->downs[2], 0);
		ck_assert(transport__peer_up(c.nodes[0]->t, 2));

		t0 = now_ms();
		kill(pid, mode ? SIGSTOP : SIGKILL);
		ck_assert(wait_down(c.nodes[0], 2, 3000));
		ck_assert(wait_down(c.nodes[1], 2, 3000));
		dt = c.nodes[0]->down_ms[2] - t0;
		printf("net_tcp: peer %s reported down after %llu ms (%s; timeout 600 ms)\n",
		       mode ? "frozen" : "killed", (unsigned long long)dt,
		       transport__down_reason_name(c.nodes[0]->down_reason[2]));
		if (mode == 0) {
			ck_assert_int_eq(c.nodes[0]->down_reason[2],
					 TRANSPORT_DOWN_CLOSED);
			ck_assert_uint_lt(dt, 600);
		} else {
			ck_assert_int_eq(c.nodes[0]->down_reason[2],
					 TRANSPORT_DOWN_TIMEOUT);
			ck_assert_uint_ge(dt, 400);
			ck_assert_uint_le(dt, 1500);
		}
		ck_assert(logged(c.nodes[1], "node 2 (127.0.0.1:", "is down"));
		ck_assert(!transport__peer_up(c.nodes[0]->t, 2));
		ck_assert(transport__peer_up(c.nodes[0]->t, 1));
		check_mesh_works(&c, both, 2);
		kill(pid, SIGKILL);
		ck_assert_int_eq(waitpid(pid, &status, 0), pid);
		cluster_free(&c);
	}
}
END_TEST

/* ---- 8: refusals that are the caller's ---- */

START_TEST(test_send_errors_and_start_deadline)
{
	struct tcp_transport_config cfg = { 0 };
	struct tnode *n;
	struct cluster c;
	uint8_t big[NET_FAST_MAX_PAYLOAD + 1];
	struct iovec iov[NET_MAX_IOV + 1];
	char err[600], want[96];
	uint64_t t0;

	cluster_init(&c, 2);
	/* Nobody at node 1's address. */
	close(c.lfd[1]);
	c.lfd[1] = -1;
	n = node_new(&c, 0, NULL);
	ck_assert_int_eq(send_plain(n, 1, NET_CH_FAST, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "not connected"), "%s", err);

	t0 = now_ms();
	ck_assert_int_eq(transport__start(n->t, 300, err, sizeof(err)), -1);
	ck_assert_uint_ge(now_ms() - t0, 290);
	ck_assert_uint_lt(now_ms() - t0, 1500);
	snprintf(want, sizeof(want), "node 1 (%s)", c.addr[1]);
	ck_assert_msg(strstr(err, want) && strstr(err, "refused"), "%s", err);
	ck_assert_int_eq(transport__start(n->t, 300, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "already"));

	ck_assert_int_eq(send_plain(n, 0, NET_CH_FAST, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "this node"));
	ck_assert_int_eq(send_plain(n, 7, NET_CH_FAST, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no node 7"));
	ck_assert_int_eq(send_plain(n, 1, 2, err, sizeof(err)), -1);
	ck_assert_int_eq(transport__send_buf(n->t, 1, NET_CH_FAST, NET_T_GOODBYE,
					     "x", 1, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "user type"));
	ck_assert_int_eq(transport__send_buf(n->t, 1, NET_CH_FAST, 200, "x", 1,
					     err, sizeof(err)), -1);
	ck_assert_int_eq(transport__send_buf(n->t, 1, NET_CH_FAST, T_PLAIN, big,
					     sizeof(big), err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "exceeds"));
	for (int i = 0; i <= NET_MAX_IOV; i++)
		iov[i] = (struct iovec){ big, 1 };
	ck_assert_int_eq(transport__send(n->t, 1, NET_CH_FAST, T_PLAIN, iov,
					 NET_MAX_IOV + 1, err, sizeof(err)), -1);
	ck_assert_int_eq(transport__send(n->t, 1, NET_CH_FAST, T_PLAIN, iov, -1,
					 err, sizeof(err)), -1);
	node_free(n);
	c.nodes[0] = NULL;

	/* Configuration errors: reported by create, nothing leaks. */
	cfg.self = 0;
	cfg.nr_nodes = 2;
	cfg.addrs = c.addrs;
	cfg.key = &c.key;
	c.addr[1][0] = 0;
	ck_assert_ptr_null(tcp_transport__create(&cfg, err, sizeof(err)));
	snprintf(c.addr[1], sizeof(c.addr[1]), "no-port-here");
	ck_assert_ptr_null(tcp_transport__create(&cfg, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "no-port-here"));
	/* A port already taken by a listener. */
	{
		int lfd = bind_any(c.addr[0], sizeof(c.addr[0]));

		snprintf(c.addr[1], sizeof(c.addr[1]), "127.0.0.1:1");
		ck_assert_ptr_null(tcp_transport__create(&cfg, err, sizeof(err)));
		ck_assert_msg(strstr(err, "cannot listen"), "%s", err);
		close(lfd);
	}
	cfg.nr_nodes = 1;
	ck_assert_ptr_null(tcp_transport__create(&cfg, err, sizeof(err)));
	cluster_free(&c);
}
END_TEST

/* ---- 9: IPv6, and a transport that binds its own address ---- */

/* A currently free [::1] port; 0 if this host has no IPv6 loopback. */
static unsigned free_v6_port(void)
{
	struct sockaddr_in6 sa = { .sin6_family = AF_INET6,
				   .sin6_addr = IN6ADDR_LOOPBACK_INIT };
	socklen_t len = sizeof(sa);
	int fd = socket(AF_INET6, SOCK_STREAM | SOCK_CLOEXEC, 0);
	unsigned port = 0;

	if (fd < 0)
		return 0;
	if (!bind(fd, (struct sockaddr *)&sa, sizeof(sa)) &&
	    !getsockname(fd, (struct sockaddr *)&sa, &len))
		port = ntohs(sa.sin6_port);
	close(fd);
	return port;
}

START_TEST(test_ipv6_own_listener)
{
	static const unsigned both[] = { 0, 1 };
	struct tcp_transport_config cfg;
	struct cluster c;
	char err[300];

	cluster_init(&c, 2);
	for (unsigned i = 0; i < 2; i++) {
		unsigned port = free_v6_port();

		if (!port) {
			printf("net_tcp: no IPv6 loopback here, IPv6 test skipped\n");
			cluster_free(&c);
			return;
		}
		close(c.lfd[i]);
		c.lfd[i] = -1;
		snprintf(c.addr[i], sizeof(c.addr[i]), "[::1]:%u", port);
	}
	for (unsigned i = 0; i < 2; i++) {
		struct tnode *n = calloc(1, sizeof(*n));

		ck_assert_ptr_nonnull(n);
		pthread_mutex_init(&n->lock, NULL);
		pthread_cond_init(&n->cond, NULL);
		n->id = i;
		cfg = (struct tcp_transport_config){
			.self = i, .nr_nodes = 2, .addrs = c.addrs, .key = &c.key,
			.cluster_id = c.cluster_id,
			.cb = { .opaque = n, .recv = on_recv,
				.peer_down = on_down, .log = on_log },
		};
		/* The transport binds addrs[self] itself. */
		n->t = tcp_transport__create(&cfg, err, sizeof(err));
		ck_assert_msg(n->t, "%s", err);
		c.nodes[i] = n;
	}
	start_all(&c);
	check_mesh_works(&c, both, 2);
	cluster_free(&c);
}
END_TEST

static Suite *net_tcp_suite(void)
{
	Suite *s = suite_create("net_tcp");
	TCase *tc = tcase_create("tcp");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_mesh_order_and_goodbye);
	tcase_add_test(tc, test_bulk_does_not_delay_fast);
	tcase_add_test(tc, test_fast_round_trip);
	tcase_add_test(tc, test_wrong_key_rejected);
	tcase_add_test(tc, test_garbage_rejected);
	tcase_add_test(tc, test_authenticated_peer_misbehaves);
	tcase_add_test(tc, test_peer_death_detected);
	tcase_add_test(tc, test_send_errors_and_start_deadline);
	tcase_add_test(tc, test_ipv6_own_listener);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_tcp_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
