/* The virtio core: split rings, the chain walker (direct, indirect, every
 * malformed chain), event-index suppression, feature negotiation, status
 * and reset, pause, save/load.  Guest RAM is a malloc'd buffer of exactly
 * its size: under ASan any read or write outside it fails the test. */
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/virtio_fake.h"

#define RAM_SIZE (1u << 20)
#define QSZ 16
#define RING 0x1000ull   /* queue 0's rings */
#define BUF 0x10000ull   /* buffers */
#define TABLE 0x8000ull  /* an indirect table */

static struct fake_ram ram;
static struct virtio_dev dev;
static struct drv_q q;
static int irqs[VIRTIO_MAX_QUEUES], cfg_irqs, kicks;

static void t_interrupt(void *ctx, unsigned queue)
{
	irqs[queue]++;
}

static void t_config_interrupt(void *ctx)
{
	cfg_irqs++;
}

static void t_notify(struct virtio_dev *vdev, unsigned queue)
{
	kicks++;
}

static const struct virtio_dev_ops t_ops = { .queue_notify = t_notify };

static const uint64_t ALL = 1ull << VIRTIO_F_VERSION_1 |
			    1ull << VIRTIO_F_INDIRECT_DESC |
			    1ull << VIRTIO_F_EVENT_IDX;

static void start(uint64_t features)
{
	drv_set_features(&dev, features);
	drv_setup_queue(&dev, 0, &q);
	drv_driver_ok(&dev);
}

static void setup(void)
{
	struct virtio_transport tr = { t_interrupt, t_config_interrupt, NULL };

	fake_ram_init(&ram, RAM_SIZE);
	ck_assert_int_eq(virtio_dev__init(&dev, "vtest", &t_ops, 0, 2, 256,
					  fake_ram_mem(&ram)), 0);
	virtio_dev__set_transport(&dev, &tr, 4);
	drv_q_init(&q, &ram, QSZ, RING);
	memset(irqs, 0, sizeof(irqs));
	cfg_irqs = kicks = 0;
}

static void teardown(void)
{
	virtio_dev__destroy(&dev);
	free(ram.base);
}

static int pop(struct virtq_chain *c, struct iovec *iov, unsigned max)
{
	c->iov = iov;
	c->max = max;
	return virtio_dev__pop(&dev, 0, c);
}

static bool broken(void)
{
	return drv_status(&dev) & VIRTIO_STATUS_NEEDS_RESET;
}

START_TEST(normal_chain)
{
	struct drv_buf b[] = { { BUF, 16, 0 }, { BUF + 100, 512, 0 },
			       { BUF + 1000, 1, 1 } };
	struct virtq_chain c;
	struct iovec iov[8];
	uint32_t id, len;
	uint16_t head;

	start(ALL);
	head = drv_chain(&q, b, 3);
	drv_offer(&q, head);
	ck_assert_int_eq(pop(&c, iov, 8), 1);
	ck_assert_uint_eq(c.head, head);
	ck_assert_uint_eq(c.nr_read, 2);
	ck_assert_uint_eq(c.nr_write, 1);
	ck_assert_uint_eq(c.read_len, 528);
	ck_assert_uint_eq(c.write_len, 1);
	ck_assert_ptr_eq(iov[0].iov_base, ram.base + BUF);
	ck_assert_ptr_eq(iov[1].iov_base, ram.base + BUF + 100);
	ck_assert_uint_eq(iov[1].iov_len, 512);
	ck_assert_ptr_eq(iov[2].iov_base, ram.base + BUF + 1000);
	ck_assert_int_eq(pop(&c, iov, 8), 0);
	virtio_dev__push(&dev, 0, c.head, 1);
	ck_assert_uint_eq(drv_used_idx(&q), 1);
	drv_used_elem(&q, 0, &id, &len);
	ck_assert_uint_eq(id, head);
	ck_assert_uint_eq(len, 1);
	ck_assert_int_eq(irqs[0], 1);
	ck_assert_uint_eq(virtio_dev__isr_read(&dev), VIRTIO_ISR_QUEUE);
	ck_assert_uint_eq(virtio_dev__isr_read(&dev), 0);
	ck_assert(!broken());
}
END_TEST

START_TEST(many_rounds_wrap)
{
	struct drv_buf b[] = { { BUF, 8, 0 }, { BUF + 8, 8, 1 } };
	struct virtq_chain c;
	struct iovec iov[4];
	uint32_t id, len;
	unsigned i;

	start(1ull << VIRTIO_F_VERSION_1);
	/* Well past 65536: the free-running indices wrap. */
	for (i = 0; i < 70000; i++) {
		uint16_t head = drv_chain(&q, b, 2);

		drv_offer(&q, head);
		ck_assert_int_eq(pop(&c, iov, 4), 1);
		ck_assert_uint_eq(c.head, head);
		virtio_dev__push(&dev, 0, c.head, (uint32_t)i);
		drv_used_elem(&q, (uint16_t)i, &id, &len);
		ck_assert_uint_eq(id, head);
		ck_assert_uint_eq(len, (uint32_t)i);
	}
	ck_assert_uint_eq(drv_used_idx(&q), (uint16_t)70000);
	ck_assert(!broken());
}
END_TEST

START_TEST(indirect_chain)
{
	struct drv_buf b[] = { { BUF, 16, 0 }, { BUF + 16, 4096, 1 },
			       { BUF + 8192, 1, 1 } };
	struct virtq_chain c;
	struct iovec iov[8];
	uint16_t head;

	start(ALL);
	head = drv_chain_indirect(&q, TABLE, b, 3);
	drv_offer(&q, head);
	ck_assert_int_eq(pop(&c, iov, 8), 1);
	ck_assert_uint_eq(c.nr_read, 1);
	ck_assert_uint_eq(c.nr_write, 2);
	ck_assert_uint_eq(c.write_len, 4097);
	ck_assert_ptr_eq(iov[1].iov_base, ram.base + BUF + 16);
	ck_assert(!broken());
}
END_TEST

/* Zero or more direct descriptors, then one indirect (2.7.5.3.2). */
START_TEST(direct_then_indirect)
{
	struct virtq_chain c;
	struct iovec iov[8];

	start(ALL);
	drv_set_desc(&q, q.desc, 0, BUF, 16, VIRTQ_DESC_F_NEXT, 1);
	drv_set_desc(&q, q.desc, 1, TABLE, 32, VIRTQ_DESC_F_INDIRECT, 0);
	drv_set_desc(&q, TABLE, 0, BUF + 16, 100, VIRTQ_DESC_F_NEXT, 1);
	drv_set_desc(&q, TABLE, 1, BUF + 200, 1, VIRTQ_DESC_F_WRITE, 0);
	drv_offer(&q, 0);
	ck_assert_int_eq(pop(&c, iov, 8), 1);
	ck_assert_uint_eq(c.nr_read, 2);
	ck_assert_uint_eq(c.nr_write, 1);
	ck_assert_uint_eq(c.read_len, 116);
	ck_assert(!broken());
}
END_TEST

START_TEST(event_idx_suppression)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };
	struct virtq_chain c;
	struct iovec iov[4];
	unsigned i;

	start(ALL);
	/* The driver wants an interrupt only once entry 2 is used. */
	drv_set_used_event(&q, 2);
	for (i = 0; i < 4; i++)
		drv_offer(&q, drv_chain(&q, b, 1));
	for (i = 0; i < 4; i++) {
		ck_assert_int_eq(pop(&c, iov, 4), 1);
		virtio_dev__push(&dev, 0, c.head, 0);
		ck_assert_int_eq(irqs[0], i >= 2 ? 1 : 0);
	}
	/* Empty now: the device asks for a kick at its next entry. */
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	ck_assert_uint_eq(drv_avail_event(&q), 4);
	/* used_event far ahead: no interrupt; then caught up. */
	drv_set_used_event(&q, 10);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	virtio_dev__push(&dev, 0, c.head, 0);
	ck_assert_int_eq(irqs[0], 1);
	drv_set_used_event(&q, 4);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	virtio_dev__push(&dev, 0, c.head, 0);
	ck_assert_int_eq(irqs[0], 2);
}
END_TEST

START_TEST(no_interrupt_flag)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };
	struct virtq_chain c;
	struct iovec iov[4];

	start(1ull << VIRTIO_F_VERSION_1);
	put_le16(ram.base + q.avail, VIRTQ_AVAIL_F_NO_INTERRUPT);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	virtio_dev__push(&dev, 0, c.head, 0);
	ck_assert_int_eq(irqs[0], 0);
	put_le16(ram.base + q.avail, 0);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	virtio_dev__push(&dev, 0, c.head, 0);
	ck_assert_int_eq(irqs[0], 1);
}
END_TEST

/* Each malformed chain: NEEDS_RESET, a config interrupt, nothing handed
 * out, and the queue stays stopped even for a good chain after it. */
static void expect_broken(void)
{
	struct drv_buf good[] = { { BUF, 8, 0 } };
	struct virtq_chain c;
	struct iovec iov[64];

	ck_assert_int_eq(pop(&c, iov, 64), 0);
	ck_assert(broken());
	ck_assert_int_eq(cfg_irqs, 1);
	drv_offer(&q, drv_chain(&q, good, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	ck_assert_int_eq(cfg_irqs, 1);
	/* A reset brings it back. */
	virtio_dev__common_write(&dev, VIRTIO_COMMON_STATUS, 0);
	ck_assert_uint_eq(drv_status(&dev), 0);
	memset(ram.base + RING, 0, 0x1000);
	drv_q_init(&q, &ram, QSZ, RING);
	start(ALL);
	drv_offer(&q, drv_chain(&q, good, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	ck_assert(!broken());
}

static void offer_desc0(uint64_t addr, uint32_t len, uint16_t flags,
			uint16_t next)
{
	start(ALL);
	drv_set_desc(&q, q.desc, 0, addr, len, flags, next);
	drv_offer(&q, 0);
}

START_TEST(bad_next)
{
	offer_desc0(BUF, 8, VIRTQ_DESC_F_NEXT, QSZ);
	expect_broken();
}
END_TEST

START_TEST(bad_loop)
{
	start(ALL);
	drv_set_desc(&q, q.desc, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 1);
	drv_set_desc(&q, q.desc, 1, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
	drv_offer(&q, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_self_loop_indirect)
{
	start(ALL);
	drv_set_desc(&q, TABLE, 0, BUF, 8, VIRTQ_DESC_F_NEXT, 0);
	drv_set_desc(&q, q.desc, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_offer(&q, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_read_after_write)
{
	start(ALL);
	drv_set_desc(&q, q.desc, 0, BUF, 8,
		     VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, 1);
	drv_set_desc(&q, q.desc, 1, BUF + 8, 8, 0, 0);
	drv_offer(&q, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_nested_indirect)
{
	start(ALL);
	drv_set_desc(&q, TABLE, 0, TABLE + 64, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_set_desc(&q, q.desc, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_offer(&q, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_indirect_len)
{
	/* Not a multiple of 16, zero, and beyond 1024 entries. */
	static const uint32_t lens[] = { 24, 0, 16 * 1025 };

	offer_desc0(TABLE, lens[_i], VIRTQ_DESC_F_INDIRECT, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_indirect_next)
{
	offer_desc0(TABLE, 16, VIRTQ_DESC_F_INDIRECT | VIRTQ_DESC_F_NEXT, 1);
	expect_broken();
}
END_TEST

START_TEST(bad_indirect_not_negotiated)
{
	struct virtq_chain c;
	struct iovec iov[4];

	start(1ull << VIRTIO_F_VERSION_1);
	drv_set_desc(&q, TABLE, 0, BUF, 8, 0, 0);
	drv_set_desc(&q, q.desc, 0, TABLE, 16, VIRTQ_DESC_F_INDIRECT, 0);
	drv_offer(&q, 0);
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	ck_assert(broken());
}
END_TEST

START_TEST(bad_indirect_table_outside)
{
	offer_desc0(RAM_SIZE - 16, 32, VIRTQ_DESC_F_INDIRECT, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_buffer_outside)
{
	/* Past the end, straddling the end, and wrapping around 2^64. */
	static const uint64_t addrs[] = { RAM_SIZE, RAM_SIZE - 4,
					  ~0ull - 3 };

	offer_desc0(addrs[_i], 8, 0, 0);
	expect_broken();
}
END_TEST

START_TEST(bad_head)
{
	start(ALL);
	drv_offer(&q, QSZ + 3);
	expect_broken();
}
END_TEST

START_TEST(bad_avail_jump)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };

	start(ALL);
	drv_offer(&q, drv_chain(&q, b, 1));
	/* The driver claims size + 1 new entries at once. */
	q.avail_idx = QSZ + 1;
	put_le16(ram.base + q.avail + 2, q.avail_idx);
	expect_broken();
}
END_TEST

START_TEST(bad_head_in_flight)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };
	struct virtq_chain c;
	struct iovec iov[4];
	uint16_t head;

	start(ALL);
	head = drv_chain(&q, b, 1);
	drv_offer(&q, head);
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	drv_offer(&q, head);
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	ck_assert(broken());
	virtio_dev__push(&dev, 0, head, 0);
}
END_TEST

START_TEST(bad_too_many_buffers)
{
	struct drv_buf b[5] = { { BUF, 8, 0 }, { BUF, 8, 0 }, { BUF, 8, 0 },
				{ BUF, 8, 0 }, { BUF, 8, 1 } };
	struct virtq_chain c;
	struct iovec iov[4];

	start(ALL);
	drv_offer(&q, drv_chain(&q, b, 5));
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	ck_assert(broken());
}
END_TEST

/* Lengths summing past 4 GiB: RAM cannot hold them, so a map that takes
 * anything shows the walker's own check. */
START_TEST(bad_total_length)
{
	uint8_t table[3 * 16];
	struct virtq_chain c;
	struct iovec iov[4];
	char err[VIRTQ_ERR_MAX];
	struct fake_ram any = { ram.base, RAM_SIZE, 1 };
	uint8_t *d;
	unsigned i;

	for (i = 0; i < 3; i++) {
		d = table + 16 * i;
		put_le64(d, 0);
		put_le32(d + 8, 0x50000000u);
		put_le16(d + 12, i < 2 ? VIRTQ_DESC_F_NEXT : 0);
		put_le16(d + 14, (uint16_t)(i + 1));
	}
	c.iov = iov;
	c.max = 4;
	ck_assert_int_eq(virtq__walk_chain(table, 3, true, fake_ram_mem(&any), 0,
					   &c, err, sizeof(err)), 0);
	put_le32(table + 8, 0xA0000001u);
	ck_assert_int_eq(virtq__walk_chain(table, 3, true, fake_ram_mem(&any), 0,
					   &c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "4 GiB"));
}
END_TEST

START_TEST(bad_rings)
{
	/* Outside RAM, misaligned descriptor table, size not a power of
	 * two, size above the maximum. */
	switch (_i) {
	case 0: drv_q_init(&q, &ram, QSZ, RAM_SIZE - 64); break;
	case 1: drv_q_init(&q, &ram, QSZ, RING + 8); break;
	case 2: drv_q_init(&q, &ram, 12, RING); break;
	default: drv_q_init(&q, &ram, 512, RING); break;
	}
	start(ALL);
	ck_assert(broken());
	ck_assert_int_eq(cfg_irqs, 1);
}
END_TEST

START_TEST(driver_ok_without_features_ok)
{
	virtio_dev__common_write(&dev, VIRTIO_COMMON_STATUS,
				 VIRTIO_STATUS_ACKNOWLEDGE |
					 VIRTIO_STATUS_DRIVER |
					 VIRTIO_STATUS_DRIVER_OK);
	ck_assert(broken());
	ck_assert(!(drv_status(&dev) & VIRTIO_STATUS_DRIVER_OK));
}
END_TEST

/* Random descriptor tables: whatever the walker accepts lies in RAM. */
START_TEST(random_tables)
{
	struct virtq_chain c;
	struct iovec iov[64];
	char err[VIRTQ_ERR_MAX];
	unsigned round, i, ok = 0;

	srand(1234);
	for (round = 0; round < 20000; round++) {
		uint8_t *t = ram.base + RING;

		for (i = 0; i < 16 * 24; i++)
			t[i] = (uint8_t)rand();
		for (i = 0; i < 24; i++) {
			uint8_t *d = t + 16 * i;

			/* Keep many addresses plausible. */
			put_le64(d, (uint64_t)(rand() % (RAM_SIZE + 4096)));
			put_le32(d + 8, (uint32_t)(rand() % 8192));
			put_le16(d + 12, (uint16_t)(rand() & 7));
			put_le16(d + 14, (uint16_t)(rand() % 20));
			if (rand() % 8 == 0)
				put_le64(d, RING + 16ull * (rand() % 24));
		}
		c.iov = iov;
		c.max = 64;
		if (virtq__walk_chain(t, 16, true, fake_ram_mem(&ram),
				      (uint16_t)(rand() % 16), &c, err,
				      sizeof(err)))
			continue;
		ok++;
		for (i = 0; i < c.nr_read + c.nr_write; i++) {
			uint8_t *p = iov[i].iov_base;

			ck_assert(p >= ram.base &&
				  p + iov[i].iov_len <= ram.base + RAM_SIZE);
		}
	}
	ck_assert_uint_gt(ok, 100);
}
END_TEST

START_TEST(feature_negotiation)
{
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_DF),
			  1u << VIRTIO_F_INDIRECT_DESC | 1u << VIRTIO_F_EVENT_IDX);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_DFSELECT, 1);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_DF), 1);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_DFSELECT, 2);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_DF), 0);
	/* Without VERSION_1, and with a bit never offered: refused. */
	drv_set_features(&dev, 1ull << VIRTIO_F_EVENT_IDX);
	ck_assert(!(drv_status(&dev) & VIRTIO_STATUS_FEATURES_OK));
	virtio_dev__common_write(&dev, VIRTIO_COMMON_STATUS, 0);
	drv_set_features(&dev, ALL | 1ull << 40);
	ck_assert(!(drv_status(&dev) & VIRTIO_STATUS_FEATURES_OK));
	virtio_dev__common_write(&dev, VIRTIO_COMMON_STATUS, 0);
	drv_set_features(&dev, ALL);
	ck_assert(drv_status(&dev) & VIRTIO_STATUS_FEATURES_OK);
	ck_assert(virtio_dev__has_feature(&dev, VIRTIO_F_EVENT_IDX));
	/* Frozen after FEATURES_OK. */
	virtio_dev__common_write(&dev, VIRTIO_COMMON_GFSELECT, 0);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_GF, 0);
	ck_assert(virtio_dev__has_feature(&dev, VIRTIO_F_EVENT_IDX));
}
END_TEST

START_TEST(queue_config_and_reset)
{
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_NUM_QUEUES), 2);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_SELECT, 1);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SIZE), 256);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_NOTIFY_OFF), 1);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_MSIX_VECTOR, 3);
	ck_assert_uint_eq(virtio_dev__queue_vector(&dev, 1), 3);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_MSIX_VECTOR, 4);
	ck_assert_uint_eq(virtio_dev__queue_vector(&dev, 1), VIRTIO_NO_VECTOR);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_SELECT, 2);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SIZE), 0);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_SIZE, 8);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SIZE), 0);

	start(ALL);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_SELECT, 0);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_ENABLE), 1);
	/* Live rings cannot be moved. */
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_DESC_LO, 0x5000);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_Q_SIZE, 4);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_DESC_LO),
			  (uint32_t)RING);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SIZE), QSZ);
	ck_assert_uint_eq(drv_status(&dev), 0x0F);

	virtio_dev__common_write(&dev, VIRTIO_COMMON_STATUS, 0);
	ck_assert_uint_eq(drv_status(&dev), 0);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SELECT), 0);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_ENABLE), 0);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_SIZE), 256);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_Q_DESC_LO), 0);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_GFSELECT, 1);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_GF), 0);
	ck_assert(!virtio_dev__has_feature(&dev, VIRTIO_F_VERSION_1));
}
END_TEST

START_TEST(notify_and_config_changed)
{
	start(ALL);
	virtio_dev__notify(&dev, 0);
	virtio_dev__notify(&dev, 7); /* no such queue */
	ck_assert_int_eq(kicks, 1);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_CFG_GENERATION), 0);
	virtio_dev__config_changed(&dev);
	ck_assert_uint_eq(virtio_dev__common_read(&dev, VIRTIO_COMMON_CFG_GENERATION), 1);
	ck_assert_int_eq(cfg_irqs, 1);
	ck_assert_uint_eq(virtio_dev__isr_read(&dev), VIRTIO_ISR_CONFIG);
}
END_TEST

static void *pause_thread(void *arg)
{
	virtio_dev__pause(arg);
	return NULL;
}

START_TEST(pause_holds_interrupts)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };
	struct virtq_chain c;
	struct iovec iov[4];
	pthread_t t;
	bool paused = false;

	start(1ull << VIRTIO_F_VERSION_1);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 1);
	/* The pause waits for the chain in flight ... */
	ck_assert_int_eq(pthread_create(&t, NULL, pause_thread, &dev), 0);
	while (!paused) {
		pthread_mutex_lock(&dev.vq[0].lock);
		paused = dev.vq[0].paused;
		pthread_mutex_unlock(&dev.vq[0].lock);
	}
	/* ... whose completion reaches the ring but holds its interrupt. */
	virtio_dev__push(&dev, 0, c.head, 0);
	pthread_join(t, NULL);
	ck_assert_uint_eq(drv_used_idx(&q), 1);
	ck_assert_int_eq(irqs[0], 0);
	drv_offer(&q, drv_chain(&q, b, 1));
	ck_assert_int_eq(pop(&c, iov, 4), 0);
	kicks = 0;
	virtio_dev__resume(&dev);
	ck_assert_int_eq(irqs[0], 1);
	ck_assert_int_eq(kicks, 2); /* every queue served once */
	ck_assert_int_eq(pop(&c, iov, 4), 1);
}
END_TEST

START_TEST(save_load_round_trip)
{
	struct drv_buf b[] = { { BUF, 8, 0 } };
	struct virtio_dev_state st, st2;
	struct virtio_dev other;
	struct state_writer *w;
	struct state_reader *r;
	struct virtq_chain c;
	struct iovec iov[4];
	uint8_t *blob;
	size_t len;
	char err[128];
	unsigned i;

	start(ALL);
	virtio_dev__common_write(&dev, VIRTIO_COMMON_MSIX_CONFIG, 2);
	for (i = 0; i < 5; i++) {
		drv_offer(&q, drv_chain(&q, b, 1));
		ck_assert_int_eq(pop(&c, iov, 4), 1);
		virtio_dev__push(&dev, 0, c.head, 0);
	}
	drv_offer(&q, drv_chain(&q, b, 1)); /* available, not yet taken */
	w = state_writer__new();
	ck_assert_int_eq(virtio_dev__save(&dev, w, "vtest", err, sizeof(err)), -1);
	virtio_dev__pause(&dev);
	ck_assert_int_eq(virtio_dev__save(&dev, w, "vtest", err, sizeof(err)), 0);
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	virtio_dev__get_state(&dev, &st);

	ck_assert_int_eq(virtio_dev__init(&other, "vtest", &t_ops, 0, 2, 256,
					  fake_ram_mem(&ram)), 0);
	virtio_dev__set_transport(&other, &dev.tr, 4);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)), 0);
	ck_assert_int_eq(virtio_dev__load(&other, r, "vtest", err, sizeof(err)), 0);
	virtio_dev__get_state(&other, &st2);
	ck_assert_int_eq(memcmp(&st, &st2, sizeof(st)), 0);
	ck_assert_uint_eq(st2.q[0].last_avail, 5);
	ck_assert_uint_eq(st2.msix_config, 2);
	/* The restored device carries on where the saved one stopped. */
	ck_assert_int_eq(virtio_dev__pop(&other, 0, &c), 1);
	virtio_dev__push(&other, 0, c.head, 0);
	ck_assert_uint_eq(drv_used_idx(&q), 6);
	state_reader__free(r);
	free(blob);
	state_writer__free(w);
	virtio_dev__destroy(&other);
}
END_TEST

START_TEST(load_refuses_and_survives)
{
	struct virtio_dev_state st;
	struct virtio_dev other;
	struct virtq_chain c;
	struct iovec iov[4];
	char err[128];

	start(ALL);
	virtio_dev__pause(&dev);
	virtio_dev__get_state(&dev, &st);
	/* Another device configuration. */
	ck_assert_int_eq(virtio_dev__init(&other, "vtest", &t_ops, 0, 3, 256,
					  fake_ram_mem(&ram)), 0);
	ck_assert_int_eq(virtio_dev__set_state(&other, &st, err, sizeof(err)), -1);
	virtio_dev__destroy(&other);
	/* Rings outside RAM in the state file: broken, not a crash. */
	ck_assert_int_eq(virtio_dev__init(&other, "vtest", &t_ops, 0, 2, 256,
					  fake_ram_mem(&ram)), 0);
	st.q[0].used = RAM_SIZE + 0x1000;
	st.q[0].size = 1000;
	st.q[0].msix_vector = 77;
	ck_assert_int_eq(virtio_dev__set_state(&other, &st, err, sizeof(err)), 0);
	ck_assert(virtio_dev__common_read(&other, VIRTIO_COMMON_STATUS) &
		  VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(virtio_dev__queue_vector(&other, 0), VIRTIO_NO_VECTOR);
	c.iov = iov;
	c.max = 4;
	ck_assert_int_eq(virtio_dev__pop(&other, 0, &c), 0);
	virtio_dev__destroy(&other);
}
END_TEST

static Suite *virtio_queue_suite(void)
{
	Suite *s = suite_create("virtio_queue");
	TCase *tc = tcase_create("ring");
	TCase *bad = tcase_create("malformed");
	TCase *cfg = tcase_create("config");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, normal_chain);
	tcase_add_test(tc, many_rounds_wrap);
	tcase_add_test(tc, indirect_chain);
	tcase_add_test(tc, direct_then_indirect);
	tcase_add_test(tc, event_idx_suppression);
	tcase_add_test(tc, no_interrupt_flag);
	tcase_add_test(tc, random_tables);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(bad, setup, teardown);
	tcase_add_test(bad, bad_next);
	tcase_add_test(bad, bad_loop);
	tcase_add_test(bad, bad_self_loop_indirect);
	tcase_add_test(bad, bad_read_after_write);
	tcase_add_test(bad, bad_nested_indirect);
	tcase_add_loop_test(bad, bad_indirect_len, 0, 3);
	tcase_add_test(bad, bad_indirect_next);
	tcase_add_test(bad, bad_indirect_not_negotiated);
	tcase_add_test(bad, bad_indirect_table_outside);
	tcase_add_loop_test(bad, bad_buffer_outside, 0, 3);
	tcase_add_test(bad, bad_head);
	tcase_add_test(bad, bad_avail_jump);
	tcase_add_test(bad, bad_head_in_flight);
	tcase_add_test(bad, bad_too_many_buffers);
	tcase_add_test(bad, bad_total_length);
	tcase_add_loop_test(bad, bad_rings, 0, 4);
	tcase_add_test(bad, driver_ok_without_features_ok);
	suite_add_tcase(s, bad);

	tcase_add_checked_fixture(cfg, setup, teardown);
	tcase_add_test(cfg, feature_negotiation);
	tcase_add_test(cfg, queue_config_and_reset);
	tcase_add_test(cfg, notify_and_config_changed);
	tcase_add_test(cfg, pause_holds_interrupts);
	tcase_add_test(cfg, save_load_round_trip);
	tcase_add_test(cfg, load_refuses_and_survives);
	suite_add_tcase(s, cfg);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(virtio_queue_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
