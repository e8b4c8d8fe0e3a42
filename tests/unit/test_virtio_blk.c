/* virtio-blk against a fake guest RAM and a fake in-memory disk with a
 * volatile cache (what reads see) over stable storage (what survives a
 * "crash"), completing requests at once or later on another thread. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tests/unit/virtio_fake.h"
#include "vmm/devices/virtio_blk.h"

#define RAM_SIZE (4u << 20)
#define QSZ 256
#define RINGS 0x10000ull     /* queue i at RINGS + i * 0x4000 */
#define REQS 0x40000ull      /* 32 bytes per request slot: header, status */
#define DATA 0x100000ull     /* data buffers */
#define DISK_SECTORS 2048ull /* 1 MiB */
#define MAX_LOG 8192

struct op_rec {
	enum block_op op;
	uint64_t off, len;
	bool may_unmap;
};

struct fake_disk {
	uint8_t *cache, *stable;
	uint64_t size;
	struct block_info info;
	bool deferred;
	int refuse;   /* submit returns this (-errno) */
	int fail;     /* complete with this */
	pthread_mutex_t lock;
	struct block_req *pending[1024];
	unsigned npending;
	struct op_rec log[MAX_LOG];
	unsigned nlog;
};

static struct fake_ram ram;
static struct fake_disk disk;
static struct virtio_blk blk;
static struct drv_q dq[4];
static int irqs[4];
static unsigned slot;

static void run_op(struct block_req *r)
{
	uint64_t off = r->offset, done = 0;
	int i;

	switch (r->op) {
	case BLOCK_OP_READ:
	case BLOCK_OP_WRITE:
		for (i = 0; i < r->iovcnt; i++) {
			if (r->op == BLOCK_OP_READ)
				memcpy(r->iov[i].iov_base, disk.cache + off + done,
				       r->iov[i].iov_len);
			else
				memcpy(disk.cache + off + done, r->iov[i].iov_base,
				       r->iov[i].iov_len);
			done += r->iov[i].iov_len;
		}
		ck_assert_uint_eq(done, r->len);
		break;
	case BLOCK_OP_FLUSH:
		memcpy(disk.stable, disk.cache, disk.size);
		break;
	case BLOCK_OP_DISCARD:
	case BLOCK_OP_WRITE_ZEROES:
		memset(disk.cache + off, 0, r->len);
		break;
	}
}

static int fake_submit(void *dev, struct block_req *r)
{
	/* The device must never send anything past the disk. */
	ck_assert(r->offset <= disk.size && r->len <= disk.size - r->offset);
	if (disk.refuse)
		return disk.refuse;
	pthread_mutex_lock(&disk.lock);
	ck_assert_uint_lt(disk.nlog, MAX_LOG);
	disk.log[disk.nlog++] = (struct op_rec){ r->op, r->offset, r->len,
						 r->may_unmap };
	if (disk.deferred) {
		ck_assert_uint_lt(disk.npending, 1024);
		disk.pending[disk.npending++] = r;
		pthread_mutex_unlock(&disk.lock);
		return 0;
	}
	pthread_mutex_unlock(&disk.lock);
	run_op(r);
	r->done(r, disk.fail);
	return 0;
}

static void fake_info(void *dev, struct block_info *info)
{
	*info = disk.info;
}

/* Completes what is pending, newest first (the device must not care). */
static unsigned complete_pending(void)
{
	struct block_req *batch[1024];
	unsigned n, i;

	pthread_mutex_lock(&disk.lock);
	n = disk.npending;
	memcpy(batch, disk.pending, n * sizeof(batch[0]));
	disk.npending = 0;
	pthread_mutex_unlock(&disk.lock);
	for (i = n; i--;) {
		run_op(batch[i]);
		batch[i]->done(batch[i], disk.fail);
	}
	return n;
}

static void t_interrupt(void *ctx, unsigned queue)
{
	__atomic_fetch_add(&irqs[queue], 1, __ATOMIC_RELAXED);
}

static void disk_init(uint32_t lbs)
{
	memset(&disk, 0, sizeof(disk));
	pthread_mutex_init(&disk.lock, NULL);
	disk.size = DISK_SECTORS * 512;
	disk.cache = calloc(1, disk.size);
	disk.stable = calloc(1, disk.size);
	disk.info.size = disk.size;
	disk.info.logical_block_size = lbs;
	disk.info.can_discard = true;
	disk.info.can_write_zeroes = true;
	strcpy(disk.info.serial, "KRG-TEST-0001");
}

static const struct virtio_blk_backend backend = { fake_submit, fake_info,
						   NULL };

static const uint64_t BASE = 1ull << VIRTIO_F_VERSION_1 |
			     1ull << VIRTIO_F_INDIRECT_DESC |
			     1ull << VIRTIO_F_EVENT_IDX;
static const uint64_t BLK_ALL = 1ull << VIRTIO_BLK_F_FLUSH |
				1ull << VIRTIO_BLK_F_SEG_MAX |
				1ull << VIRTIO_BLK_F_BLK_SIZE |
				1ull << VIRTIO_BLK_F_DISCARD |
				1ull << VIRTIO_BLK_F_WRITE_ZEROES;

/* Brings the device up with the driver accepting features & offered. */
static void bring_up(const struct virtio_blk_opts *o, uint64_t features)
{
	struct virtio_transport tr = { t_interrupt, NULL, NULL };
	struct virtio_dev *vdev;
	char err[128];
	unsigned i, nq = o->num_queues ? o->num_queues : 1;

	ck_assert_int_eq(virtio_blk__init(&blk, o, &backend, fake_ram_mem(&ram),
					  err, sizeof(err)), 0);
	vdev = virtio_blk__dev(&blk);
	virtio_dev__set_transport(vdev, &tr, 0);
	drv_set_features(vdev, features & vdev->s.device_features);
	for (i = 0; i < nq; i++) {
		drv_q_init(&dq[i], &ram, QSZ, RINGS + i * 0x4000ull);
		drv_setup_queue(vdev, i, &dq[i]);
	}
	drv_driver_ok(vdev);
	ck_assert_uint_eq(drv_status(vdev), 0x0F);
}

static void setup_lbs(uint32_t lbs)
{
	fake_ram_init(&ram, RAM_SIZE);
	disk_init(lbs);
	memset(irqs, 0, sizeof(irqs));
	slot = 0;
}

static void setup(void)
{
	setup_lbs(512);
}

static void teardown(void)
{
	virtio_blk__destroy(&blk);
	free(disk.cache);
	free(disk.stable);
	free(ram.base);
}

/* Queues one request on queue q: header, optional data (device-writable
 * for IN and GET_ID), status.  Returns the gpa of its status byte. */
static uint64_t req(unsigned q, uint32_t type, uint64_t sector,
		    uint64_t data, uint32_t len, int data_write)
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
		b[n++] = (struct drv_buf){ data, len, data_write };
	b[n++] = (struct drv_buf){ hdr + 16, 1, 1 };
	drv_offer(&dq[q], drv_chain(&dq[q], b, n));
	return hdr + 16;
}

static uint8_t run(unsigned q, uint32_t type, uint64_t sector, uint64_t data,
		   uint32_t len, int data_write)
{
	uint64_t st = req(q, type, sector, data, len, data_write);

	virtio_dev__notify(virtio_blk__dev(&blk), q);
	return ram.base[st];
}

static uint8_t dwz(uint32_t type, const uint64_t *seg, unsigned n)
{
	unsigned i;

	for (i = 0; i < n; i++) {
		put_le64(ram.base + DATA + 16 * i, seg[3 * i]);
		put_le32(ram.base + DATA + 16 * i + 8, (uint32_t)seg[3 * i + 1]);
		put_le32(ram.base + DATA + 16 * i + 12, (uint32_t)seg[3 * i + 2]);
	}
	return run(0, type, 0, DATA, 16 * n, 0);
}

START_TEST(config_space)
{
	struct virtio_blk_opts o = { .num_queues = 4 };
	struct virtio_dev *vdev;
	uint8_t c[VIRTIO_BLK_CONFIG_SIZE + 4];
	uint64_t f;

	bring_up(&o, BASE | BLK_ALL | 1ull << VIRTIO_BLK_F_MQ);
	vdev = virtio_blk__dev(&blk);
	f = vdev->s.device_features;
	ck_assert(f >> VIRTIO_BLK_F_MQ & 1);
	ck_assert(f >> VIRTIO_BLK_F_DISCARD & 1);
	ck_assert(!(f >> VIRTIO_BLK_F_RO & 1));
	ck_assert(!(f >> VIRTIO_BLK_F_SIZE_MAX & 1));
	virtio_dev__config_read(vdev, 0, c, sizeof(c));
	ck_assert_uint_eq(get_le64(c), DISK_SECTORS);
	ck_assert_uint_eq(get_le32(c + 12), 254);
	ck_assert_uint_eq(get_le32(c + 20), 512);
	ck_assert_uint_eq(get_le16(c + 34), 4);
	ck_assert_uint_eq(get_le32(c + 36), 1u << 22);
	ck_assert_uint_eq(get_le32(c + 40), 32);
	ck_assert_uint_eq(get_le32(c + 52), 32);
	ck_assert_uint_eq(c[56], 1);
	ck_assert_uint_eq(get_le32(c + VIRTIO_BLK_CONFIG_SIZE), 0);
	/* A read past the end is zeros, a straddling one is cut. */
	memset(c, 0xFF, 8);
	virtio_dev__config_read(vdev, 58, c, 8);
	ck_assert_uint_eq(get_le64(c), 0);
	virtio_dev__config_read(vdev, 0xFFFFFFF0u, c, 8);
	ck_assert_uint_eq(get_le64(c), 0);
	ck_assert_uint_eq(virtio_dev__common_read(vdev, VIRTIO_COMMON_NUM_QUEUES), 4);
	ck_assert_uint_eq(vdev->device_id, VIRTIO_ID_BLOCK);
	ck_assert_uint_eq(vdev->config_len, VIRTIO_BLK_CONFIG_SIZE);
}
END_TEST

/* Writes then reads back across four queues, against a model; the data
 * sometimes split over two descriptors and the header over two. */
START_TEST(rw_round_trip)
{
	struct virtio_blk_opts o = { .num_queues = 4 };
	uint8_t *model = calloc(1, DISK_SECTORS * 512);
	unsigned i;

	bring_up(&o, BASE | BLK_ALL | 1ull << VIRTIO_BLK_F_MQ);
	srand(42);
	for (i = 0; i < 600; i++) {
		unsigned q = i % 4, n = 1 + (unsigned)rand() % 16;
		uint64_t sec = (uint64_t)rand() % (DISK_SECTORS - n + 1);
		uint64_t buf = DATA + 0x10000ull * q, hdr;
		uint32_t len = n * 512, cut = 512 * ((unsigned)rand() % n);
		bool write = rand() % 2;
		struct drv_buf b[5];
		unsigned k = 0, j;

		if (write)
			for (j = 0; j < len; j++)
				ram.base[buf + j] = (uint8_t)rand();
		else
			memset(ram.base + buf, 0x5A, len);
		hdr = REQS + 32ull * (slot++ % 2048);
		put_le32(ram.base + hdr, write ? VIRTIO_BLK_T_OUT : VIRTIO_BLK_T_IN);
		put_le32(ram.base + hdr + 4, 0);
		put_le64(ram.base + hdr + 8, sec);
		if (i % 3 == 0) {
			b[k++] = (struct drv_buf){ hdr, 5, 0 };
			b[k++] = (struct drv_buf){ hdr + 5, 11, 0 };
		} else {
			b[k++] = (struct drv_buf){ hdr, 16, 0 };
		}
		if (cut) {
			b[k++] = (struct drv_buf){ buf, cut, !write };
			b[k++] = (struct drv_buf){ buf + cut, len - cut, !write };
		} else {
			b[k++] = (struct drv_buf){ buf, len, !write };
		}
		b[k++] = (struct drv_buf){ hdr + 16, 1, 1 };
		drv_offer(&dq[q], drv_chain(&dq[q], b, k));
		virtio_dev__notify(virtio_blk__dev(&blk), q);
		ck_assert_uint_eq(ram.base[hdr + 16], VIRTIO_BLK_S_OK);
		if (write)
			memcpy(model + sec * 512, ram.base + buf, len);
		else
			ck_assert_int_eq(memcmp(ram.base + buf, model + sec * 512,
						len), 0);
	}
	ck_assert_int_eq(memcmp(disk.cache, model, DISK_SECTORS * 512), 0);
	for (i = 0; i < 4; i++) {
		uint32_t id, len;

		ck_assert_uint_eq(drv_used_idx(&dq[i]), 150);
		drv_used_elem(&dq[i], 0, &id, &len);
		ck_assert_uint_ge(len, 1);
		ck_assert_int_gt(irqs[i], 0);
	}
	free(model);
}
END_TEST

START_TEST(capacity_bounds)
{
	struct virtio_blk_opts o = { 0 };
	unsigned before;

	bring_up(&o, BASE | BLK_ALL);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, DATA, 512, 1),
			  VIRTIO_BLK_S_OK);
	before = disk.nlog;
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, DATA, 1024, 1),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, DISK_SECTORS, DATA, 512, 0),
			  VIRTIO_BLK_S_IOERR);
	/* sector * 512 would wrap around 2^64. */
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 1ull << 55, DATA, 512, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, ~0ull, DATA, 512, 1),
			  VIRTIO_BLK_S_IOERR);
	/* Not a whole number of sectors. */
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 0, DATA, 700, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(disk.nlog, before);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, DISK_SECTORS, 0, 0, 0),
			  VIRTIO_BLK_S_OK);
	ck_assert(!(drv_status(virtio_blk__dev(&blk)) & VIRTIO_STATUS_NEEDS_RESET));
}
END_TEST

START_TEST(block_size_4k)
{
	struct virtio_blk_opts o = { 0 };
	uint8_t c[4];

	teardown();
	setup_lbs(4096);
	bring_up(&o, BASE | BLK_ALL);
	virtio_dev__config_read(virtio_blk__dev(&blk), 20, c, 4);
	ck_assert_uint_eq(get_le32(c), 4096);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, 1, DATA, 4096, 1),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, 8, DATA, 512, 1),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(disk.nlog, 0);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, 8, DATA, 8192, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(disk.log[0].off, 4096);
}
END_TEST

START_TEST(flush_reaches_stable)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t st;

	bring_up(&o, BASE | BLK_ALL);
	memset(ram.base + DATA, 0x11, 512);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 3, DATA, 512, 0),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(disk.stable[3 * 512], 0); /* only cached */
	disk.deferred = true;
	st = req(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	/* Not acknowledged before the backend says it is stable. */
	ck_assert_uint_eq(ram.base[st], 0xEE);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 1);
	ck_assert_uint_eq(complete_pending(), 1);
	ck_assert_uint_eq(ram.base[st], VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 2);
	ck_assert_uint_eq(disk.log[1].op, BLOCK_OP_FLUSH);
	/* A write after the flush is lost in a crash; the flushed one not. */
	disk.deferred = false;
	memset(ram.base + DATA, 0x22, 512);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 4, DATA, 512, 0),
			  VIRTIO_BLK_S_OK);
	memcpy(disk.cache, disk.stable, disk.size);
	ck_assert_uint_eq(disk.cache[3 * 512], 0x11);
	ck_assert_uint_eq(disk.cache[4 * 512], 0);
}
END_TEST

/* A driver without VIRTIO_BLK_F_FLUSH gets write-through. */
START_TEST(write_through_without_flush)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t st;

	bring_up(&o, BASE | (BLK_ALL & ~(1ull << VIRTIO_BLK_F_FLUSH)));
	disk.deferred = true;
	memset(ram.base + DATA, 0x33, 1024);
	st = req(0, VIRTIO_BLK_T_OUT, 10, DATA, 1024, 0);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert_uint_eq(complete_pending(), 1);
	ck_assert_uint_eq(ram.base[st], 0xEE);
	ck_assert_uint_eq(disk.nlog, 2);
	ck_assert_uint_eq(disk.log[0].op, BLOCK_OP_WRITE);
	ck_assert_uint_eq(disk.log[1].op, BLOCK_OP_FLUSH);
	ck_assert_uint_eq(complete_pending(), 1);
	ck_assert_uint_eq(ram.base[st], VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(disk.stable[10 * 512], 0x33);
	/* A failed write is not flushed, and reports the error. */
	disk.fail = -EIO;
	st = req(0, VIRTIO_BLK_T_OUT, 10, DATA, 512, 0);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert_uint_eq(complete_pending(), 1);
	ck_assert_uint_eq(ram.base[st], VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(disk.nlog, 3);
}
END_TEST

START_TEST(read_only)
{
	struct virtio_blk_opts o = { .read_only = true };
	uint64_t seg[3] = { 0, 8, 0 };

	disk.cache[0] = 0x77;
	bring_up(&o, BASE | BLK_ALL | 1ull << VIRTIO_BLK_F_RO);
	ck_assert(virtio_dev__has_feature(virtio_blk__dev(&blk), VIRTIO_BLK_F_RO));
	ck_assert(!(virtio_blk__dev(&blk)->s.device_features >>
		    VIRTIO_BLK_F_DISCARD & 1));
	memset(ram.base + DATA, 0x99, 512);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 0, DATA, 512, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, seg, 1), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, seg, 1),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(disk.nlog, 0);
	ck_assert_uint_eq(disk.cache[0], 0x77);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, 0, DATA, 512, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(ram.base[DATA], 0x77);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0), VIRTIO_BLK_S_OK);
}
END_TEST

START_TEST(discard_and_write_zeroes)
{
	struct virtio_blk_opts o = { .max_discard_seg = 4,
				     .max_discard_sectors = 64 };
	uint64_t two[6] = { 0, 8, 0, 100, 16, 0 };
	uint64_t unmap[3] = { 0, 8, VIRTIO_BLK_WZ_F_UNMAP };
	uint64_t odd[3] = { 0, 8, 2 };
	uint64_t five[15] = { 0 };
	uint64_t past[3] = { DISK_SECTORS - 4, 8, 0 };
	uint64_t big[3] = { 0, 65, 0 };
	unsigned i;

	bring_up(&o, BASE | BLK_ALL);
	memset(disk.cache, 0xAA, disk.size);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, two, 2), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(disk.nlog, 2); /* two segments, no flush */
	ck_assert_uint_eq(disk.log[0].op, BLOCK_OP_DISCARD);
	ck_assert_uint_eq(disk.log[1].off, 100 * 512);
	ck_assert_uint_eq(disk.log[1].len, 16 * 512);
	ck_assert_uint_eq(disk.cache[0], 0);
	ck_assert_uint_eq(disk.cache[8 * 512], 0xAA);
	ck_assert_uint_eq(disk.cache[115 * 512], 0);
	ck_assert_uint_eq(disk.cache[116 * 512], 0xAA);
	disk.nlog = 0;
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, unmap, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(disk.log[0].op, BLOCK_OP_WRITE_ZEROES);
	ck_assert(disk.log[0].may_unmap);
	disk.nlog = 0;
	/* Discard takes no flag, write zeroes only UNMAP: UNSUPP. */
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, unmap, 1),
			  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, odd, 1),
			  VIRTIO_BLK_S_UNSUPP);
	for (i = 0; i < 5; i++)
		five[3 * i + 1] = 1;
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, five, 5), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, past, 1), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, big, 1), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_DISCARD, 0, DATA, 24, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_DISCARD, 0, 0, 0, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(disk.nlog, 0);
}
END_TEST

START_TEST(discard_not_negotiated)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t seg[3] = { 0, 8, 0 };

	bring_up(&o, BASE | 1ull << VIRTIO_BLK_F_FLUSH);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_DISCARD, seg, 1), VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(dwz(VIRTIO_BLK_T_WRITE_ZEROES, seg, 1),
			  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(disk.nlog, 0);
}
END_TEST

START_TEST(discard_not_offered)
{
	struct virtio_blk_opts o = { 0 };

	disk.info.can_discard = false;
	disk.info.can_write_zeroes = false;
	bring_up(&o, BASE | BLK_ALL);
	ck_assert(!virtio_dev__has_feature(virtio_blk__dev(&blk),
					   VIRTIO_BLK_F_DISCARD));
	ck_assert(!virtio_dev__has_feature(virtio_blk__dev(&blk),
					   VIRTIO_BLK_F_WRITE_ZEROES));
}
END_TEST

/* Segments done out of order, one of them failing: IOERR once all are
 * done, not before. */
START_TEST(segments_complete_out_of_order)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t segs[9] = { 0, 8, 0, 16, 8, 0, 32, 8, 0 };
	uint64_t st;
	unsigned i;

	bring_up(&o, BASE | BLK_ALL);
	disk.deferred = true;
	for (i = 0; i < 3; i++) {
		put_le64(ram.base + DATA + 16 * i, segs[3 * i]);
		put_le32(ram.base + DATA + 16 * i + 8, (uint32_t)segs[3 * i + 1]);
		put_le32(ram.base + DATA + 16 * i + 12, 0);
	}
	st = req(0, VIRTIO_BLK_T_WRITE_ZEROES, 0, DATA, 48, 0);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert_uint_eq(disk.npending, 3);
	run_op(disk.pending[2]);
	disk.pending[2]->done(disk.pending[2], 0);
	disk.pending[0]->done(disk.pending[0], -EIO);
	ck_assert_uint_eq(ram.base[st], 0xEE);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 0);
	disk.pending[1]->done(disk.pending[1], 0);
	ck_assert_uint_eq(ram.base[st], VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 1);
	disk.npending = 0;
}
END_TEST

START_TEST(get_id)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t end = RAM_SIZE - 8;

	strcpy(disk.info.serial, "0123456789abcdefghij");
	bring_up(&o, BASE | BLK_ALL);
	memset(ram.base + DATA, 0xFF, 32);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(ram.base + DATA, "0123456789abcdefghij", 20), 0);
	ck_assert_uint_eq(ram.base[DATA + 20], 0xFF);
	/* A short buffer at the very end of RAM: 8 bytes, nothing more. */
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_GET_ID, 0, end, 8, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(ram.base + end, "01234567", 8), 0);
	ck_assert_uint_eq(disk.nlog, 0);
}
END_TEST

START_TEST(get_id_short_serial)
{
	struct virtio_blk_opts o = { 0 };
	static const char want[20] = "abc";

	strcpy(disk.info.serial, "abc");
	bring_up(&o, BASE | BLK_ALL);
	memset(ram.base + DATA, 0xFF, 32);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_GET_ID, 0, DATA, 20, 1),
			  VIRTIO_BLK_S_OK);
	ck_assert_int_eq(memcmp(ram.base + DATA, want, 20), 0);
}
END_TEST

START_TEST(unsupported_types)
{
	static const uint32_t types[] = { 2, 3, 5, 10, 14, 15, 0x80000001u,
					  0xFFFFFFFFu };
	struct virtio_blk_opts o = { 0 };
	unsigned i;

	bring_up(&o, BASE | BLK_ALL);
	for (i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		ck_assert_uint_eq(run(0, types[i], 0, DATA, 512, 1),
				  VIRTIO_BLK_S_UNSUPP);
	ck_assert_uint_eq(disk.nlog, 0);
}
END_TEST

START_TEST(malformed_requests)
{
	struct virtio_blk_opts o = { 0 };
	struct virtio_dev *vdev;
	struct drv_buf b[2];

	bring_up(&o, BASE | BLK_ALL);
	vdev = virtio_blk__dev(&blk);
	if (_i == 0) {
		/* A header of 8 bytes. */
		b[0] = (struct drv_buf){ REQS, 8, 0 };
		b[1] = (struct drv_buf){ REQS + 16, 1, 1 };
		drv_offer(&dq[0], drv_chain(&dq[0], b, 2));
	} else {
		/* No device-writable byte for the status. */
		b[0] = (struct drv_buf){ REQS, 16, 0 };
		b[1] = (struct drv_buf){ DATA, 512, 0 };
		drv_offer(&dq[0], drv_chain(&dq[0], b, 2));
	}
	virtio_dev__notify(vdev, 0);
	ck_assert(drv_status(vdev) & VIRTIO_STATUS_NEEDS_RESET);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 1); /* not left in flight */
	ck_assert_uint_eq(disk.nlog, 0);
	/* And the queue serves nothing more until reset. */
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0), 0xEE);
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS, 0);
	ck_assert_uint_eq(drv_status(vdev), 0);
}
END_TEST

START_TEST(backend_errors)
{
	struct virtio_blk_opts o = { 0 };

	bring_up(&o, BASE | BLK_ALL);
	disk.refuse = -EAGAIN;
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_IN, 0, DATA, 512, 1),
			  VIRTIO_BLK_S_IOERR);
	disk.refuse = 0;
	disk.fail = -EIO;
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_OUT, 0, DATA, 512, 0),
			  VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0),
			  VIRTIO_BLK_S_IOERR);
	disk.fail = 0;
	ck_assert_uint_eq(run(0, VIRTIO_BLK_T_FLUSH, 0, 0, 0, 0), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 4);
}
END_TEST

static void *reset_thread(void *arg)
{
	virtio_dev__common_write(virtio_blk__dev(&blk), VIRTIO_COMMON_STATUS, 0);
	__atomic_store_n((int *)arg, 1, __ATOMIC_RELEASE);
	return NULL;
}

START_TEST(reset_waits_for_in_flight)
{
	struct virtio_blk_opts o = { 0 };
	uint64_t st[3];
	pthread_t t;
	int done = 0;
	unsigned i;

	bring_up(&o, BASE | BLK_ALL);
	disk.deferred = true;
	for (i = 0; i < 3; i++)
		st[i] = req(0, VIRTIO_BLK_T_IN, i, DATA + 4096 * i, 512, 1);
	virtio_dev__notify(virtio_blk__dev(&blk), 0);
	ck_assert_uint_eq(disk.npending, 3);
	ck_assert_int_eq(pthread_create(&t, NULL, reset_thread, &done), 0);
	usleep(100 * 1000);
	ck_assert_int_eq(__atomic_load_n(&done, __ATOMIC_ACQUIRE), 0);
	ck_assert_uint_eq(complete_pending(), 3);
	pthread_join(t, NULL);
	ck_assert_int_eq(done, 1);
	for (i = 0; i < 3; i++)
		ck_assert_uint_eq(ram.base[st[i]], VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(drv_used_idx(&dq[0]), 3);
	ck_assert_uint_eq(drv_status(virtio_blk__dev(&blk)), 0);
	ck_assert_uint_eq(virtio_dev__common_read(virtio_blk__dev(&blk),
						  VIRTIO_COMMON_Q_ENABLE), 0);
}
END_TEST

static int stop_completer;

static void *completer(void *arg)
{
	while (!__atomic_load_n(&stop_completer, __ATOMIC_ACQUIRE))
		if (!complete_pending())
			usleep(100);
	complete_pending();
	return NULL;
}

/* Completions on a backend thread while two "vCPUs" submit. */
static void *submitter(void *arg)
{
	unsigned q = (unsigned)(uintptr_t)arg, i;

	for (i = 0; i < 100; i++) {
		uint64_t hdr = REQS + 32ull * (q * 1024 + i % 64);
		uint64_t buf = DATA + 0x40000ull * q + 4096ull * (i % 64);
		struct drv_buf b[3] = { { hdr, 16, 0 }, { buf, 4096, 0 },
					{ hdr + 16, 1, 1 } };

		/* Every 32 requests, let them all come back: slots and
		 * descriptors are then free to reuse. */
		while (i && i % 32 == 0 && drv_used_idx(&dq[q]) != i)
			usleep(50);
		memset(ram.base + buf, (int)(q * 100 + i), 4096);
		put_le32(ram.base + hdr, VIRTIO_BLK_T_OUT);
		put_le64(ram.base + hdr + 8, 8ull * (q * 100 + i));
		drv_offer(&dq[q], drv_chain(&dq[q], b, 3));
		virtio_dev__notify(virtio_blk__dev(&blk), q);
	}
	while (drv_used_idx(&dq[q]) != 100)
		usleep(100);
	return NULL;
}

START_TEST(completions_on_backend_thread)
{
	struct virtio_blk_opts o = { .num_queues = 2 };
	pthread_t c, s[2];
	unsigned q, i;

	/* 200 writes of 4 KiB need 1600 sectors. */
	bring_up(&o, BASE | BLK_ALL | 1ull << VIRTIO_BLK_F_MQ);
	disk.deferred = true;
	stop_completer = 0;
	ck_assert_int_eq(pthread_create(&c, NULL, completer, NULL), 0);
	for (q = 0; q < 2; q++)
		ck_assert_int_eq(pthread_create(&s[q], NULL, submitter,
						(void *)(uintptr_t)q), 0);
	for (q = 0; q < 2; q++)
		pthread_join(s[q], NULL);
	__atomic_store_n(&stop_completer, 1, __ATOMIC_RELEASE);
	pthread_join(c, NULL);
	for (q = 0; q < 2; q++) {
		for (i = 0; i < 100; i++) {
			uint64_t off = 4096ull * (q * 100 + i);

			ck_assert_uint_eq(disk.cache[off], (uint8_t)(q * 100 + i));
			ck_assert_uint_eq(disk.cache[off + 4095],
					  (uint8_t)(q * 100 + i));
			ck_assert_uint_eq(ram.base[REQS + 32ull * (q * 1024 + i % 64) + 16],
					  VIRTIO_BLK_S_OK);
		}
		ck_assert_int_gt(irqs[q], 0);
	}
	ck_assert(!(drv_status(virtio_blk__dev(&blk)) & VIRTIO_STATUS_NEEDS_RESET));
}
END_TEST

START_TEST(save_load)
{
	struct virtio_blk_opts o = { .num_queues = 2, .name = "virtio-blk0" };
	struct virtio_transport tr = { t_interrupt, NULL, NULL };
	struct state_writer *w = state_writer__new();
	struct state_reader *r;
	uint8_t *blob;
	size_t len;
	char err[128];

	bring_up(&o, BASE | BLK_ALL | 1ull << VIRTIO_BLK_F_MQ);
	memset(ram.base + DATA, 0x44, 512);
	ck_assert_uint_eq(run(1, VIRTIO_BLK_T_OUT, 7, DATA, 512, 0),
			  VIRTIO_BLK_S_OK);
	virtio_dev__pause(virtio_blk__dev(&blk));
	/* Queued while paused: not served until resumed. */
	req(1, VIRTIO_BLK_T_IN, 7, DATA + 4096, 512, 1);
	virtio_dev__notify(virtio_blk__dev(&blk), 1);
	ck_assert_uint_eq(drv_used_idx(&dq[1]), 1);
	ck_assert_int_eq(virtio_blk__save(&blk, w, err, sizeof(err)), 0);
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	virtio_blk__destroy(&blk);

	ck_assert_int_eq(virtio_blk__init(&blk, &o, &backend, fake_ram_mem(&ram),
					  err, sizeof(err)), 0);
	virtio_dev__set_transport(virtio_blk__dev(&blk), &tr, 0);
	virtio_dev__pause(virtio_blk__dev(&blk));
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)), 0);
	ck_assert_int_eq(virtio_blk__load(&blk, r, err, sizeof(err)), 0);
	ck_assert_uint_eq(drv_status(virtio_blk__dev(&blk)), 0x0F);
	ck_assert(virtio_dev__has_feature(virtio_blk__dev(&blk), VIRTIO_BLK_F_MQ));
	virtio_dev__resume(virtio_blk__dev(&blk));
	ck_assert_uint_eq(drv_used_idx(&dq[1]), 2);
	ck_assert_uint_eq(ram.base[DATA + 4096], 0x44);
	state_reader__free(r);
	state_writer__free(w);
	free(blob);
}
END_TEST

static Suite *virtio_blk_suite(void)
{
	Suite *s = suite_create("virtio_blk");
	TCase *tc = tcase_create("requests");
	TCase *th = tcase_create("threads");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, config_space);
	tcase_add_test(tc, rw_round_trip);
	tcase_add_test(tc, capacity_bounds);
	tcase_add_test(tc, block_size_4k);
	tcase_add_test(tc, flush_reaches_stable);
	tcase_add_test(tc, write_through_without_flush);
	tcase_add_test(tc, read_only);
	tcase_add_test(tc, discard_and_write_zeroes);
	tcase_add_test(tc, discard_not_negotiated);
	tcase_add_test(tc, discard_not_offered);
	tcase_add_test(tc, segments_complete_out_of_order);
	tcase_add_test(tc, get_id);
	tcase_add_test(tc, get_id_short_serial);
	tcase_add_test(tc, unsupported_types);
	tcase_add_loop_test(tc, malformed_requests, 0, 2);
	tcase_add_test(tc, backend_errors);
	tcase_add_test(tc, save_load);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(s, tc);

	tcase_add_checked_fixture(th, setup, teardown);
	tcase_add_test(th, reset_waits_for_in_flight);
	tcase_add_test(th, completions_on_backend_thread);
	tcase_set_timeout(th, 60);
	suite_add_tcase(s, th);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(virtio_blk_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
