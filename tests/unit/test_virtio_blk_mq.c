/* virtio-blk queues served on another node (virtio_blk_mq.h): the pure
 * parts (queue-to-node rule, message codec, malformed input), then two
 * "nodes" in one process - node 0 with the device, node 1 serving queue 1
 * - whose messages go straight to each other's blk_mq__recv, over one
 * fake guest RAM and one fake disk. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "tests/unit/virtio_fake.h"
#include "vmm/devices/virtio_blk_mq.h"

/* ---- pure ---- */

START_TEST(queue_to_node)
{
	const uint8_t place[4] = { 0, 0, 1, 1 };

	ck_assert_uint_eq(blk_mq__queue_vcpu(0, 4), 0);
	ck_assert_uint_eq(blk_mq__queue_vcpu(5, 4), 1);
	ck_assert_uint_eq(blk_mq__queue_vcpu(3, 0), 0);
	ck_assert_uint_eq(blk_mq__queue_node(0, 4, place), 0);
	ck_assert_uint_eq(blk_mq__queue_node(2, 4, place), 1);
	ck_assert_uint_eq(blk_mq__queue_node(3, 4, place), 1);
	ck_assert_uint_eq(blk_mq__queue_node(6, 4, place), 1);
	ck_assert_uint_eq(blk_mq__queue_node(7, 4, place), 1);
	ck_assert_uint_eq(blk_mq__queue_node(4, 4, place), 0);
	ck_assert_uint_eq(blk_mq__queue_node(1, 4, NULL), 0);
	/* Defaults: one per vCPU, capped; queues= wins. */
	ck_assert_uint_eq(blk_mq__default_queues(0, 1, false), 1);
	ck_assert_uint_eq(blk_mq__default_queues(0, 2, false), 2);
	ck_assert_uint_eq(blk_mq__default_queues(0, 16, false),
			  BLK_MQ_SINGLE_NODE_MAX);
	ck_assert_uint_eq(blk_mq__default_queues(0, 2, true), 2);
	ck_assert_uint_eq(blk_mq__default_queues(0, 32, true),
			  BLK_MQ_DEFAULT_MAX);
	ck_assert_uint_eq(blk_mq__default_queues(3, 32, true), 3);
	ck_assert_uint_eq(blk_mq__default_queues(0, 0, true), 1);
}
END_TEST

static void full_setup(struct blk_mq_msg *m)
{
	memset(m, 0, sizeof(*m));
	m->type = BLK_MQ_T_SETUP;
	m->drive = 7;
	m->queue = 3;
	m->flags = BLK_MQ_F_EVENT_IDX | BLK_MQ_F_MSI_DIRECT;
	m->seq = 0xdeadbeef;
	m->features = 0x1234567890ull;
	m->device_features = 0x100000246ull;
	m->capacity = 32768;
	m->desc = 0x2000000;
	m->avail = 0x2001000;
	m->used = 0x2002000;
	m->msi_addr = 0xfee01000;
	m->notify = 0xfe00300c;
	m->msi_data = 0x25;
	m->size = 64;
	m->last_avail = 65535;
	m->used_idx = 7;
	m->signalled_used = 6;
	m->num_queues = 4;
	m->max_size = 256;
	m->gen = 3;
	m->signalled_valid = 1;
	strcpy(m->text, "/tmp/krg-qsd.X/nbd.sock");
}

START_TEST(codec_round_trip)
{
	uint8_t buf[BLK_MQ_MSG_MAX];
	struct blk_mq_msg m, d;
	char err[160];
	int n;

	full_setup(&m);
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 96 + (int)strlen(m.text));
	ck_assert_int_eq(blk_mq__decode(BLK_MQ_T_SETUP, buf, (size_t)n, &d,
					err, sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&m, &d, sizeof(m)), 0);

	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_ACK;
	m.drive = 1;
	m.queue = 15;
	m.seq = 9;
	m.acked = BLK_MQ_T_STOP;
	m.status = BLK_MQ_FALLBACK;
	m.last_avail = 300;
	m.used_idx = 299;
	m.signalled_used = 290;
	m.signalled_valid = 1;
	m.broken = 1;
	m.domain = 0xfeedfacecafef00dull;
	strcpy(m.text, "cannot open: No such file");
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 32 + (int)strlen(m.text));
	ck_assert_int_eq(blk_mq__decode(BLK_MQ_T_ACK, buf, (size_t)n, &d, err,
					sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&m, &d, sizeof(m)), 0);

	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_UPDATE;
	m.queue = 2;
	m.flags = BLK_MQ_F_FANOUT;
	m.msi_addr = 0xfee00000;
	m.msi_data = 0x4025;
	m.notify = 0xfe003008;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 32);
	ck_assert_int_eq(blk_mq__decode(BLK_MQ_T_UPDATE, buf, 32, &d, err,
					sizeof(err)), 0);
	ck_assert_int_eq(memcmp(&m, &d, sizeof(m)), 0);

	for (unsigned t = BLK_MQ_T_STOP; t <= BLK_MQ_T_FLUSHED; t++) {
		if (t == BLK_MQ_T_UPDATE)
			continue;
		memset(&m, 0, sizeof(m));
		m.type = t;
		m.drive = 2;
		m.queue = t == BLK_MQ_T_FLUSH || t == BLK_MQ_T_FLUSHED ? 0 : 5;
		m.seq = t * 1000;
		if (t == BLK_MQ_T_FLUSHED)
			m.status = 1;
		if (t == BLK_MQ_T_BROKEN)
			strcpy(m.text, "head 70 out of range");
		n = blk_mq__encode(&m, buf, sizeof(buf));
		ck_assert_int_gt(n, 0);
		ck_assert_int_eq(blk_mq__decode(t, buf, (size_t)n, &d, err,
						sizeof(err)), 0);
		ck_assert_int_eq(memcmp(&m, &d, sizeof(m)), 0);
		ck_assert_str_ne(blk_mq__type_name(t), "unknown");
	}
}
END_TEST

static void expect_bad(unsigned type, const uint8_t *buf, size_t len,
		       const char *what)
{
	struct blk_mq_msg d;
	char err[160] = "";

	ck_assert_msg(blk_mq__decode(type, buf, len, &d, err, sizeof(err)) < 0,
		      "%s was accepted", what);
	ck_assert_msg(err[0], "%s: no reason", what);
}

START_TEST(codec_malformed)
{
	uint8_t buf[BLK_MQ_MSG_MAX], b[BLK_MQ_MSG_MAX];
	struct blk_mq_msg m;
	int n;

	full_setup(&m);
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_gt(n, 0);
	expect_bad(BLK_MQ_T_SETUP, NULL, 0, "no payload");
	expect_bad(BLK_MQ_T_SETUP, buf, 95, "short SETUP");
	expect_bad(BLK_MQ_T_SETUP, buf, (size_t)n - 1, "text cut short");
	expect_bad(BLK_MQ_T_SETUP, buf, (size_t)n + 1, "trailing byte");
	expect_bad(127, buf, (size_t)n, "a type outside the range");
	expect_bad(BLK_MQ_T_LAST, buf, (size_t)n, "the reserved type");
	memcpy(b, buf, (size_t)n);
	b[0] = BLK_MQ_MAX_DRIVES;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "drive out of range");
	memcpy(b, buf, (size_t)n);
	b[1] = BLK_MQ_MAX_QUEUES;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "queue out of range");
	memcpy(b, buf, (size_t)n);
	b[1] = 4;   /* of num_queues 4 */
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "queue past num_queues");
	memcpy(b, buf, (size_t)n);
	b[2] = 0x10;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "unknown flag");
	memcpy(b, buf, (size_t)n);
	b[86] = 3;  /* max size 259 */
	b[87] = 1;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "max size not a power of 2");
	memcpy(b, buf, (size_t)n);
	b[88] = 2;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "signalled_valid 2");
	memcpy(b, buf, (size_t)n);
	b[90] = 1;
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "reserved byte");
	memcpy(b, buf, (size_t)n);
	b[96] = '\n';
	expect_bad(BLK_MQ_T_SETUP, b, (size_t)n, "unprintable text");
	memcpy(b, buf, (size_t)n);
	b[89] = BLK_MQ_TEXT_MAX + 1;
	expect_bad(BLK_MQ_T_SETUP, b, 96 + BLK_MQ_TEXT_MAX + 1, "text too long");

	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_ACK;
	m.acked = BLK_MQ_T_SETUP;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(n, 32);
	memcpy(b, buf, 32);
	b[8] = BLK_MQ_T_KICK;
	expect_bad(BLK_MQ_T_ACK, b, 32, "ACK of a KICK");
	memcpy(b, buf, 32);
	b[9] = 3;
	expect_bad(BLK_MQ_T_ACK, b, 32, "ACK status 3");
	memcpy(b, buf, 32);
	b[2] = BLK_MQ_F_FANOUT;
	expect_bad(BLK_MQ_T_ACK, b, 32, "flags on an ACK");
	memcpy(b, buf, 32);
	b[20] = 1;
	expect_bad(BLK_MQ_T_ACK, b, 32, "ACK reserved byte");

	memset(b, 0, sizeof(b));
	expect_bad(BLK_MQ_T_KICK, b, 9, "long KICK");
	expect_bad(BLK_MQ_T_STOP, b, 7, "short STOP");
	b[8] = 2;
	expect_bad(BLK_MQ_T_FLUSHED, b, 16, "FLUSHED status 2");
	b[8] = 0;
	b[28] = 1;
	expect_bad(BLK_MQ_T_UPDATE, b, 32, "UPDATE reserved byte");
	memset(b, 0, sizeof(b));
	b[8] = 4;
	expect_bad(BLK_MQ_T_BROKEN, b, 16, "BROKEN missing its text");

	/* The encoder refuses what the decoder would. */
	full_setup(&m);
	ck_assert_int_lt(blk_mq__encode(&m, buf, 100), 0);
	m.drive = BLK_MQ_MAX_DRIVES;
	ck_assert_int_lt(blk_mq__encode(&m, buf, sizeof(buf)), 0);
	full_setup(&m);
	m.text[3] = '\t';
	ck_assert_int_lt(blk_mq__encode(&m, buf, sizeof(buf)), 0);
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_KICK;
	m.flags = BLK_MQ_F_MSI_DIRECT;
	ck_assert_int_lt(blk_mq__encode(&m, buf, sizeof(buf)), 0);
	m.type = 200;
	m.flags = 0;
	ck_assert_int_lt(blk_mq__encode(&m, buf, sizeof(buf)), 0);
}
END_TEST

/* ---- two nodes in one process ---- */

#define RAM_SIZE (4u << 20)
#define QSZ 64
#define RINGS 0x10000ull
#define REQS 0x40000ull
#define DATA 0x100000ull
#define DISK_BYTES (1u << 20)
#define NOTIFY 0xfe003000ull
#define WAIT_MS 3000

struct node {
	struct blk_mq *mq;
	unsigned self;
	int msis;              /* ops.msi calls */
	uint64_t msi_addr;
	uint32_t msi_data;
	int fatals;
	char last_fatal[256];
	char last_log[256];
	bool open_fails;
	uint64_t domain;
	int opens, closes;
};

static struct fake_ram ram;
static struct node nodes[2];
static uint8_t *disk;
static pthread_mutex_t disk_lock = PTHREAD_MUTEX_INITIALIZER;
static int flushes, home_irqs[4];
static bool masked;
static struct virtio_blk blk;    /* node 0's device */
static struct drv_q dq[2];
static unsigned slot;
static uint16_t issued[2], last_q;  /* requests made available */

static int t_send(void *ctx, unsigned node, unsigned type, const void *buf,
		  size_t len)
{
	struct node *from = ctx;

	ck_assert_uint_lt(node, 2);
	ck_assert_uint_ne(node, from->self);
	blk_mq__recv(nodes[node].mq, from->self, type, buf, len);
	return 0;
}

static int disk_submit(void *dev, struct block_req *r)
{
	uint64_t done = 0;

	pthread_mutex_lock(&disk_lock);
	switch (r->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		for (int i = 0; i < r->iovcnt; i++) {
			if (r->op == BLOCK_OP_READ)
				memcpy(r->iov[i].iov_base,
				       disk + r->offset + done,
				       r->iov[i].iov_len);
			else
				memcpy(disk + r->offset + done,
				       r->iov[i].iov_base, r->iov[i].iov_len);
			done += r->iov[i].iov_len;
		}
		break;
	case BLOCK_OP_FLUSH:
		flushes++;
		break;
	default:
		break;
	}
	pthread_mutex_unlock(&disk_lock);
	r->done(r, 0);
	return 0;
}

static void disk_info(void *dev, struct block_info *info)
{
	memset(info, 0, sizeof(*info));
	info->size = DISK_BYTES;
	info->logical_block_size = 512;
}

static int t_open(void *ctx, unsigned drive, const char *socket,
		  struct blk_mq_backend *out, char *err, size_t errlen)
{
	struct node *n = ctx;

	ck_assert_uint_eq(drive, 0);
	ck_assert_str_eq(socket, "/run/test.sock");
	if (n->open_fails) {
		snprintf(err, errlen, "test: image not reachable");
		return -1;
	}
	n->opens++;
	memset(out, 0, sizeof(*out));
	out->be = (struct virtio_blk_backend){ disk_submit, disk_info, NULL };
	out->domain = n->domain;
	return 0;
}

static void t_close(void *ctx, struct blk_mq_backend *b)
{
	struct node *n = ctx;

	n->closes++;
}

static void t_msi(void *ctx, uint64_t addr, uint32_t data)
{
	struct node *n = ctx;

	n->msi_addr = addr;
	n->msi_data = data;
	__atomic_fetch_add(&n->msis, 1, __ATOMIC_SEQ_CST);
}

static void t_fatal(void *ctx, const char *why)
{
	struct node *n = ctx;

	snprintf(n->last_fatal, sizeof(n->last_fatal), "%s", why);
	__atomic_fetch_add(&n->fatals, 1, __ATOMIC_SEQ_CST);
}

static void t_log(void *ctx, const char *line)
{
	struct node *n = ctx;

	snprintf(n->last_log, sizeof(n->last_log), "%s", line);
}

static bool t_vector_msi(void *pci, uint16_t vector, uint64_t *addr,
			 uint32_t *data)
{
	*addr = 0xfee00000ull | (uint64_t)vector << 12;
	*data = 0x25;
	return !masked;
}

static uint64_t t_notify(void *pci, unsigned queue)
{
	return NOTIFY + 4ull * queue;
}

static void t_home_irq(void *ctx, unsigned queue)
{
	__atomic_fetch_add(&home_irqs[queue], 1, __ATOMIC_SEQ_CST);
}

static void start_node(unsigned self, bool fanout)
{
	struct node *n = &nodes[self];
	struct blk_mq_config c = {
		.self = self, .nr_nodes = 2, .mem = fake_ram_mem(&ram),
		.force_fanout = fanout,
		.ops = { .ctx = n, .send = t_send, .open = t_open,
			 .close = t_close, .msi = t_msi, .fatal = t_fatal,
			 .log = t_log },
	};
	char err[128];

	n->self = self;
	n->mq = blk_mq__new(&c, err, sizeof(err));
	ck_assert_msg(n->mq, "%s", err);
}

/* Node 0's device with two queues, queue 1 served by node 1, the driver
 * brought it up (which hands queue 1 over). */
static void bring_up(bool fanout, bool open_fails)
{
	struct virtio_blk_backend be = { disk_submit, disk_info, NULL };
	struct virtio_blk_opts o = { .name = "virtio-blk0", .num_queues = 2,
				     .queue_size = QSZ };
	struct virtio_transport tr = { t_home_irq, NULL, NULL };
	struct blk_mq_home_env env;
	struct virtio_dev *vdev;
	char err[128];

	fake_ram_init(&ram, RAM_SIZE);
	disk = calloc(1, DISK_BYTES);
	memset(nodes, 0, sizeof(nodes));
	memset(home_irqs, 0, sizeof(home_irqs));
	flushes = 0;
	masked = false;
	slot = 0;
	memset(issued, 0, sizeof(issued));
	nodes[1].open_fails = open_fails;
	nodes[0].domain = nodes[1].domain = 42;
	start_node(0, fanout);
	start_node(1, fanout);
	ck_assert_int_eq(virtio_blk__init(&blk, &o, &be, fake_ram_mem(&ram),
					  err, sizeof(err)), 0);
	vdev = virtio_blk__dev(&blk);
	virtio_dev__set_transport(vdev, &tr, 3);
	memset(&env, 0, sizeof(env));
	env.blk = &blk;
	env.vector_msi = t_vector_msi;
	env.notify_gpa = t_notify;
	env.node[1] = 1;
	strcpy(env.socket, "/run/test.sock");
	env.domain = 42;
	ck_assert_int_eq(blk_mq__attach(nodes[0].mq, 0, &env), 0);
	drv_set_features(vdev, vdev->s.device_features);
	for (unsigned i = 0; i < 2; i++) {
		drv_q_init(&dq[i], &ram, QSZ, RINGS + i * 0x4000ull);
		drv_setup_queue(vdev, i, &dq[i]);
		virtio_dev__common_write(vdev, VIRTIO_COMMON_Q_MSIX_VECTOR, i);
	}
	drv_driver_ok(vdev);
	ck_assert_uint_eq(drv_status(vdev), 0x0F);
}

static void tear_down(void)
{
	/* Both quiet before either goes: neither sends to a freed peer. */
	blk_mq__abort(nodes[1].mq);
	blk_mq__abort(nodes[0].mq);
	blk_mq__free(nodes[1].mq);
	blk_mq__free(nodes[0].mq);
	virtio_blk__destroy(&blk);
	free(disk);
	free(ram.base);
}

/* One request on queue q; returns the gpa of its status byte. */
static uint64_t req(unsigned q, uint32_t type, uint64_t sector, uint64_t data,
		    uint32_t len)
{
	uint64_t hdr = REQS + 32ull * (slot++ % 2048);
	struct drv_buf b[3];
	unsigned n = 0;

	put_le32(ram.base + hdr, type);
	put_le32(ram.base + hdr + 4, 0);
	put_le64(ram.base + hdr + 8, sector);
	ram.base[hdr + 16] = 0xEE;
	b[n++] = (struct drv_buf){ hdr, 16, 0 };
	if (len)
		b[n++] = (struct drv_buf){ data, len,
					   type == VIRTIO_BLK_T_IN };
	b[n++] = (struct drv_buf){ hdr + 16, 1, 1 };
	/* EVENT_IDX: interrupt me when this one completes. */
	drv_set_used_event(&dq[q], drv_used_idx(&dq[q]));
	drv_offer(&dq[q], drv_chain(&dq[q], b, n));
	issued[q]++;
	last_q = (uint16_t)q;
	return hdr + 16;
}

/* As a driver does: the used index (acquire) says the last request of
 * the queue completed, then its status and data may be read. */
static bool wait_byte(uint64_t gpa, uint8_t want)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (drv_used_idx(&dq[last_q]) == issued[last_q])
			return __atomic_load_n(&ram.base[gpa],
					       __ATOMIC_RELAXED) == want;
		usleep(1000);
	}
	return false;
}

static bool wait_int(int *p, int want)
{
	for (int i = 0; i < WAIT_MS; i++) {
		if (__atomic_load_n(p, __ATOMIC_SEQ_CST) >= want)
			return true;
		usleep(1000);
	}
	return false;
}

static void ring_doorbell(unsigned q)
{
	uint8_t v[2] = { (uint8_t)q, 0 };

	ck_assert(blk_mq__doorbell(nodes[1].mq, NOTIFY + 4ull * q, v, 2, true));
}

static uint64_t served_on(unsigned node)
{
	struct blk_mq_stats s;

	blk_mq__stats(nodes[node].mq, &s);
	return s.requests;
}

START_TEST(handover_and_serving)
{
	struct blk_mq_stats s;
	uint64_t st;
	uint8_t rd[2] = { 0xAA, 0xAA };

	bring_up(false, false);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 1);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 0), 0);
	blk_mq__stats(nodes[1].mq, &s);
	ck_assert_uint_eq(s.queues, 1);
	blk_mq__stats(nodes[0].mq, &s);
	ck_assert_uint_eq(s.handoffs, 1);

	/* Node 1's vCPU writes queue 1's doorbell: served on node 1. */
	memset(ram.base + DATA, 0x5A, 4096);
	st = req(1, VIRTIO_BLK_T_OUT, 8, DATA, 4096);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	pthread_mutex_lock(&disk_lock);
	ck_assert_uint_eq(disk[8 * 512], 0x5A);
	ck_assert_uint_eq(disk[8 * 512 + 4095], 0x5A);
	pthread_mutex_unlock(&disk_lock);
	ck_assert(wait_int(&nodes[1].msis, 1));
	ck_assert_uint_eq(nodes[1].msi_addr, 0xfee01000ull);
	ck_assert_uint_eq(nodes[1].msi_data, 0x25);
	ck_assert_uint_eq(served_on(1), 1);
	ck_assert_uint_eq(served_on(0), 0);
	ck_assert_int_eq(home_irqs[1], 0);
	/* Other doorbells, and reads of this one, are not taken. */
	ck_assert(!blk_mq__doorbell(nodes[1].mq, NOTIFY, rd, 2, true));
	ck_assert(!blk_mq__doorbell(nodes[1].mq, NOTIFY + 8, rd, 2, true));
	ck_assert(blk_mq__doorbell(nodes[1].mq, NOTIFY + 4, rd, 2, false));
	ck_assert_uint_eq(rd[0], 0);
	ck_assert(!blk_mq__doorbell(nodes[0].mq, NOTIFY + 4, rd, 2, true));

	/* A kick that reaches node 0 goes on to node 1. */
	st = req(1, VIRTIO_BLK_T_IN, 8, DATA + 8192, 512);
	virtio_dev__notify(virtio_blk__dev(&blk), 1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_uint_eq(ram.base[DATA + 8192], 0x5A);
	ck_assert_uint_eq(served_on(1), 2);
	blk_mq__stats(nodes[1].mq, &s);
	ck_assert_uint_eq(s.kicks_in, 1);
	ck_assert_uint_eq(s.doorbells, 1);

	/* Queue 0 stays on node 0. */
	st = req(0, VIRTIO_BLK_T_IN, 8, DATA + 16384, 512);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_uint_eq(served_on(0), 1);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(hold_returns_state)
{
	struct virtq *vq;
	uint64_t st;

	bring_up(false, false);
	vq = &blk.vdev.vq[1];
	for (int i = 0; i < 3; i++) {
		st = req(1, VIRTIO_BLK_T_IN, (uint64_t)i, DATA, 512);
		ring_doorbell(1);
		ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	}
	/* Node 0 still has the state it handed over. */
	ck_assert_uint_eq(vq->s.last_avail, 0);
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, true), 0);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 0);
	ck_assert_uint_eq(vq->s.last_avail, 3);
	ck_assert_uint_eq(vq->s.used_idx, 3);
	ck_assert_uint_eq(drv_used_idx(&dq[1]), 3);
	/* Held: node 1 serves nothing, node 0 does. */
	st = req(1, VIRTIO_BLK_T_IN, 4, DATA, 512);
	ck_assert(!blk_mq__doorbell(nodes[1].mq, NOTIFY + 4, (uint8_t[2]){ 1 },
				    2, true));
	virtio_dev__notify(virtio_blk__dev(&blk), 1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_uint_eq(served_on(0), 1);
	/* Released: handed over again, with the ring positions moving on. */
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, false), 0);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 1);
	st = req(1, VIRTIO_BLK_T_IN, 5, DATA, 512);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_uint_eq(drv_used_idx(&dq[1]), 5);
	ck_assert_uint_eq(served_on(1), 4);
	/* Re-assigned to node 0 (the vCPU moved there). */
	ck_assert_int_eq(blk_mq__assign(nodes[0].mq, 0, 1, 0), 0);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 0);
	ck_assert_uint_eq(vq->s.last_avail, 5);
	ck_assert_int_lt(blk_mq__assign(nodes[0].mq, 0, 2, 1), 0);
	ck_assert_int_lt(blk_mq__assign(nodes[0].mq, 0, 1, 2), 0);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(masked_vector_goes_through_node0)
{
	uint64_t st;

	bring_up(false, false);
	masked = true;
	blk_mq__irq_changed(nodes[0].mq, 0);
	st = req(1, VIRTIO_BLK_T_IN, 0, DATA, 512);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert(wait_int(&home_irqs[1], 1));
	ck_assert_int_eq(nodes[1].msis, 0);
	ck_assert(blk.vdev.s.isr & VIRTIO_ISR_QUEUE);
	masked = false;
	blk_mq__irq_changed(nodes[0].mq, 0);
	st = req(1, VIRTIO_BLK_T_IN, 0, DATA, 512);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert(wait_int(&nodes[1].msis, 1));
	ck_assert_int_eq(home_irqs[1], 1);
	tear_down();
}
END_TEST

START_TEST(reset_takes_queues_back)
{
	struct blk_mq_stats s;
	struct virtio_dev *vdev;

	bring_up(false, false);
	vdev = virtio_blk__dev(&blk);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS, 0);
	ck_assert_uint_eq(drv_status(vdev), 0);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 0);
	blk_mq__stats(nodes[1].mq, &s);
	ck_assert_uint_eq(s.queues, 0);
	/* The doorbell is gone with it. */
	ck_assert(!blk_mq__doorbell(nodes[1].mq, NOTIFY + 4, (uint8_t[2]){ 1 },
				    2, true));
	/* A new driver gets it handed over again. */
	drv_set_features(vdev, vdev->s.device_features);
	for (unsigned i = 0; i < 2; i++) {
		drv_q_init(&dq[i], &ram, QSZ, RINGS + i * 0x4000ull);
		memset(ram.base + RINGS + i * 0x4000ull, 0, 0x4000);
		issued[i] = 0;
		drv_setup_queue(vdev, i, &dq[i]);
	}
	drv_driver_ok(vdev);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 1);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(unreachable_image_falls_back)
{
	struct blk_mq_stats s;
	uint64_t st;

	bring_up(false, true);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 0);
	ck_assert_ptr_nonnull(strstr(nodes[0].last_log, "node 1 cannot serve"));
	ck_assert_ptr_nonnull(strstr(nodes[0].last_log, "not reachable"));
	blk_mq__stats(nodes[0].mq, &s);
	ck_assert_uint_eq(s.fallbacks, 1);
	ck_assert(!blk_mq__doorbell(nodes[1].mq, NOTIFY + 4, (uint8_t[2]){ 1 },
				    2, true));
	st = req(1, VIRTIO_BLK_T_IN, 0, DATA, 512);
	virtio_dev__notify(virtio_blk__dev(&blk), 1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_uint_eq(served_on(0), 1);
	/* Asked once: a hold and release do not try again. */
	nodes[0].last_log[0] = '\0';
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, true), 0);
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, false), 0);
	ck_assert_str_eq(nodes[0].last_log, "");
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(guest_error_on_node1)
{
	struct virtio_dev *vdev;

	bring_up(false, false);
	vdev = virtio_blk__dev(&blk);
	/* A head past the ring: the serving node breaks the queue, node 0
	 * sets NEEDS_RESET. */
	drv_offer(&dq[1], QSZ + 3);
	ring_doorbell(1);
	for (int i = 0; i < WAIT_MS && !(drv_status(vdev) &
					  VIRTIO_STATUS_NEEDS_RESET); i++)
		usleep(1000);
	ck_assert(drv_status(vdev) & VIRTIO_STATUS_NEEDS_RESET);
	/* Taken back, it is broken on node 0 too. */
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, true), 0);
	ck_assert(blk.vdev.vq[1].s.broken);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(flush_reaches_every_node)
{
	struct blk_mq_stats s;
	uint64_t st;

	bring_up(true, false);
	/* On node 1's queue: its own flush and node 0's. */
	st = req(1, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_int_eq(flushes, 2);
	blk_mq__stats(nodes[1].mq, &s);
	ck_assert_uint_eq(s.flushes_out, 1);
	/* On node 0's queue: node 0's and node 1's. */
	st = req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_int_eq(flushes, 4);
	/* Giving the queue back makes node 1's writes durable first. */
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, true), 0);
	ck_assert_int_eq(flushes, 5);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(one_domain_flushes_alone)
{
	uint64_t st;

	bring_up(false, false);
	st = req(1, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_int_eq(flushes, 1);
	tear_down();

	/* A node with another durability domain turns fan-out on. */
	bring_up(false, false);
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, true), 0);
	nodes[1].domain = 7;
	blk_mq__set_backend(nodes[0].mq, 0, "/run/test.sock", 42);
	ck_assert_int_eq(blk_mq__hold(nodes[0].mq, 0, false), 0);
	ck_assert_int_eq(nodes[1].opens, 2);  /* a new image: reopened */
	ck_assert_int_eq(nodes[1].closes, 1);
	flushes = 0;
	st = req(1, VIRTIO_BLK_T_FLUSH, 0, 0, 0);
	ring_doorbell(1);
	ck_assert(wait_byte(st, VIRTIO_BLK_S_OK));
	ck_assert_int_eq(flushes, 2);
	/* Without a socket other nodes cannot open a new image. */
	blk_mq__set_backend(nodes[0].mq, 0, NULL, 0);
	ck_assert_uint_eq(blk_mq__serving_node(nodes[0].mq, 0, 1), 0);
	ck_assert_int_eq(nodes[0].fatals + nodes[1].fatals, 0);
	tear_down();
}
END_TEST

START_TEST(peer_protocol_errors)
{
	uint8_t buf[BLK_MQ_MSG_MAX];
	struct blk_mq_msg m;
	int n;

	bring_up(false, false);
	/* Node 1 may not tell node 0 to set up a queue. */
	full_setup(&m);
	m.drive = 0;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(blk_mq__recv(nodes[0].mq, 1, BLK_MQ_T_SETUP, buf,
				      (size_t)n), -EPROTO);
	ck_assert_int_eq(nodes[0].fatals, 1);
	ck_assert_ptr_nonnull(strstr(nodes[0].last_fatal, "node 1"));
	/* An ACK nobody waits for. */
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_ACK;
	m.acked = BLK_MQ_T_STOP;
	m.seq = 99;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(blk_mq__recv(nodes[0].mq, 1, BLK_MQ_T_ACK, buf,
				      (size_t)n), -EPROTO);
	ck_assert_int_eq(nodes[0].fatals, 2);
	/* A drive that does not exist. */
	m.drive = 3;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(blk_mq__recv(nodes[0].mq, 1, BLK_MQ_T_ACK, buf,
				      (size_t)n), -EPROTO);
	/* Garbage. */
	ck_assert_int_eq(blk_mq__recv(nodes[1].mq, 0, BLK_MQ_T_SETUP, buf, 5),
			 -EPROTO);
	ck_assert_int_eq(nodes[1].fatals, 1);
	/* A sender out of range. */
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_KICK;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(blk_mq__recv(nodes[1].mq, 5, BLK_MQ_T_KICK, buf,
				      (size_t)n), -EPROTO);
	/* A FLUSHED nobody asked for. */
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_FLUSHED;
	m.seq = 12345;
	n = blk_mq__encode(&m, buf, sizeof(buf));
	ck_assert_int_eq(blk_mq__recv(nodes[1].mq, 0, BLK_MQ_T_FLUSHED, buf,
				      (size_t)n), 0);
	ck_assert(wait_int(&nodes[1].fatals, 3));
	tear_down();
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("virtio_blk_mq");
	TCase *t = tcase_create("pure");
	TCase *n = tcase_create("nodes");

	tcase_add_test(t, queue_to_node);
	tcase_add_test(t, codec_round_trip);
	tcase_add_test(t, codec_malformed);
	suite_add_tcase(s, t);
	tcase_set_timeout(n, 30);
	tcase_add_test(n, handover_and_serving);
	tcase_add_test(n, hold_returns_state);
	tcase_add_test(n, masked_vector_goes_through_node0);
	tcase_add_test(n, reset_takes_queues_back);
	tcase_add_test(n, unreachable_image_falls_back);
	tcase_add_test(n, guest_error_on_node1);
	tcase_add_test(n, flush_reaches_every_node);
	tcase_add_test(n, one_domain_flushes_alone);
	tcase_add_test(n, peer_protocol_errors);
	suite_add_tcase(s, n);
	return s;
}

int main(void)
{
	SRunner *r = srunner_create(suite());
	int failed;

	srunner_run_all(r, CK_NORMAL);
	failed = srunner_ntests_failed(r);
	srunner_free(r);
	return failed ? 1 : 0;
}
