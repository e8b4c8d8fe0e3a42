/* The raw block backend (storage/block.h) on temporary files, through
 * both engines (io_uring and the forced thread pool, aio=threads): round
 * trips of every operation, hundreds of concurrent requests from several
 * threads verified byte by byte in memory and in the file, the refusals
 * (out of range, read-only, malformed requests), the probed-raw guard,
 * O_DIRECT with aligned and unaligned buffers, and drain/close with
 * requests in flight. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <liburing.h>
#include <linux/filter.h>
#include <linux/magic.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/block_priv.h"
#include "storage/drive_opts.h"

#define DISK_SIZE (8u << 20)

static const char *const engines[] = { "io_uring", "threads" };
static char dir[64];
static char path[128];

/* A request the test waits for. */
struct waiter {
	struct block_req req;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls;
	int result;
};

static void waiter_done(struct block_req *req, int result)
{
	struct waiter *w = req->opaque;

	pthread_mutex_lock(&w->lock);
	w->calls++;
	w->result = result;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

/* Submits and waits: the submit error, or done()'s result. */
static int do_req(struct block_dev *b, enum block_op op, uint64_t off,
		  uint64_t len, const struct iovec *iov, int iovcnt,
		  bool may_unmap)
{
	struct waiter w = {
		.req = { .op = op, .offset = off, .len = len, .iov = iov,
			 .iovcnt = iovcnt, .may_unmap = may_unmap,
			 .done = waiter_done },
	};
	int r;

	w.req.opaque = &w;
	pthread_mutex_init(&w.lock, NULL);
	pthread_cond_init(&w.cond, NULL);
	r = block__submit(b, &w.req);
	if (r == 0) {
		pthread_mutex_lock(&w.lock);
		while (!w.calls)
			pthread_cond_wait(&w.cond, &w.lock);
		pthread_mutex_unlock(&w.lock);
		r = w.result;
	}
	ck_assert_int_eq(w.calls, r == 0 || w.calls ? 1 : 0);
	pthread_cond_destroy(&w.cond);
	pthread_mutex_destroy(&w.lock);
	return r;
}

static int rw(struct block_dev *b, enum block_op op, uint64_t off,
	      const void *buf, size_t len)
{
	struct iovec v = { (void *)buf, len };

	return do_req(b, op, off, 0, &v, 1, false);
}

static void setup(void)
{
	strcpy(dir, "/tmp/krg-test-block.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/disk.img", dir);
}

static void teardown(void)
{
	unlink(path);
	rmdir(dir);
}

/* A file of size bytes whose byte i is (i * 7 + i / 4096) & 0xff. */
static void make_file(size_t size)
{
	uint8_t *buf = malloc(size ? size : 1);
	int fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	for (size_t i = 0; i < size; i++)
		buf[i] = (uint8_t)(i * 7 + i / 4096);
	ck_assert_int_eq(pwrite(fd, buf, size, 0), (ssize_t)size);
	close(fd);
	free(buf);
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + i / 4096);
}

static struct block_dev *open_text(const char *text, char *err,
				   size_t errlen)
{
	struct drive_opts o;

	ck_assert_msg(!drive_opts__parse(text, &o, err, errlen), "%s", err);
	return block__open(&o, err, errlen);
}

/* The engine test case i runs on: the threads stand in for io_uring on a
 * host that refuses it (and say so). */
static const char *engine(int i)
{
	struct io_uring ring;
	int r;

	if (i != 0)
		return engines[i];
	r = io_uring_queue_init(2, &ring, 0);
	if (r == 0) {
		io_uring_queue_exit(&ring);
		return engines[i];
	}
	fprintf(stderr, "test_block: SKIP the io_uring engine (%s): its tests "
		"run on the threads engine\n", strerror(-r));
	return "threads";
}

static struct block_dev *open_raw(int i, const char *extra)
{
	char text[512], err[512] = "";
	struct block_dev *b;

	snprintf(text, sizeof(text), "file=%s,format=raw,aio=%s%s%s", path,
		 engine(i), extra[0] ? "," : "", extra);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s: %s", text, err);
	return b;
}

static void read_file(uint64_t off, void *buf, size_t len)
{
	int fd = open(path, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(pread(fd, buf, len, (off_t)off), (ssize_t)len);
	close(fd);
}

static blkcnt_t file_blocks(void)
{
	struct stat st;

	ck_assert_int_eq(stat(path, &st), 0);
	return st.st_blocks;
}

START_TEST(info_and_engine)
{
	struct block_info info;
	char desc[256];
	struct block_dev *b;

	make_file(DISK_SIZE);
	b = open_raw(_i, "serial=SN-42,discard=unmap");
	block__info(b, &info);
	ck_assert_uint_eq(info.size, DISK_SIZE);
	ck_assert_uint_eq(info.logical_block_size, 512);
	ck_assert(!info.read_only);
	ck_assert(info.can_discard);
	ck_assert(info.can_write_zeroes);
	ck_assert_str_eq(info.serial, "SN-42");
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(strstr(desc, engine(_i)), "%s", desc);
	ck_assert_msg(strstr(desc, "raw") && strstr(desc, "cache=writeback"),
		      "%s", desc);
	ck_assert_ptr_null(block__warning(b));
	ck_assert(block__write_cache(b));
	block__set_write_cache(b, false);
	ck_assert(!block__write_cache(b));
	block__close(b);

	/* discard=ignore (the default) offers no discard. */
	b = open_raw(_i, "cache=writethrough");
	block__info(b, &info);
	ck_assert(!info.can_discard);
	ck_assert(info.can_write_zeroes);
	ck_assert(!block__write_cache(b));
	block__close(b);
}
END_TEST

START_TEST(round_trip)
{
	static char a[3000], c[5000], back[8000];
	struct iovec v[3] = { { a, 1000 }, { c, 2000 }, { a + 1000, 1096 } };
	struct block_dev *b;
	uint8_t file[4096];

	make_file(DISK_SIZE);
	b = open_raw(_i, "");
	for (size_t i = 0; i < sizeof(a); i++)
		a[i] = (char)(i * 13 + 1);
	for (size_t i = 0; i < sizeof(c); i++)
		c[i] = (char)(i * 5 + 3);
	/* Three segments, one request, at an odd sector. */
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE, 512 * 7, 0, v, 3, false),
			 0);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 512 * 7, back, 4096), 0);
	ck_assert_mem_eq(back, a, 1000);
	ck_assert_mem_eq(back + 1000, c, 2000);
	ck_assert_mem_eq(back + 3000, a + 1000, 1096);
	/* The host file holds it too, and the neighbours are untouched. */
	read_file(512 * 7, file, sizeof(file));
	ck_assert_mem_eq(file, back, 4096);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 512 * 6, back, 512), 0);
	for (size_t i = 0; i < 512; i++)
		ck_assert_uint_eq((uint8_t)back[i], pattern(512 * 6 + i));
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 512 * 15, back, 512), 0);
	for (size_t i = 0; i < 512; i++)
		ck_assert_uint_eq((uint8_t)back[i], pattern(512 * 15 + i));
	/* Scatter a read the same way. */
	memset(a, 0, sizeof(a));
	memset(c, 0, sizeof(c));
	ck_assert_int_eq(do_req(b, BLOCK_OP_READ, 512 * 7, 0, v, 3, false),
			 0);
	ck_assert_mem_eq(a, file, 1000);
	ck_assert_mem_eq(c, file + 1000, 2000);
	/* The last byte of the disk, and an empty request at its end. */
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, DISK_SIZE - 1, "Z", 1), 0);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, DISK_SIZE - 1, back, 1), 0);
	ck_assert_int_eq(back[0], 'Z');
	ck_assert_int_eq(do_req(b, BLOCK_OP_READ, DISK_SIZE, 0, NULL, 0,
				false), 0);
	ck_assert_int_eq(do_req(b, BLOCK_OP_FLUSH, 0, 0, NULL, 0, false), 0);
	block__close(b);
}
END_TEST

/* Several threads, each with many requests in flight at once on its own
 * slice of the disk: writes of varied sizes and shapes, flushes among
 * them, then reads of everything, checked against a model. */
#define THREADS 4
#define PER_THREAD 120
#define SLICE (DISK_SIZE / THREADS)

struct load {
	struct block_dev *b;
	int id;
	uint8_t *model;         /* the whole disk, as it must read */
	struct waiter w[PER_THREAD];
	struct iovec iov[PER_THREAD][4];
	uint8_t *data[PER_THREAD];
};

static void wait_all(struct load *l, int n)
{
	for (int i = 0; i < n; i++) {
		struct waiter *w = &l->w[i];

		pthread_mutex_lock(&w->lock);
		while (!w->calls)
			pthread_cond_wait(&w->cond, &w->lock);
		pthread_mutex_unlock(&w->lock);
	}
}

static void submit_all(struct load *l, int n)
{
	for (int i = 0; i < n; i++) {
		int r = block__submit(l->b, &l->w[i].req);

		ck_assert_msg(r == 0, "submit %d: %d", i, r);
	}
}

static void *load_thread(void *arg)
{
	struct load *l = arg;
	unsigned seed = 1000u + (unsigned)l->id;
	uint64_t base = (uint64_t)l->id * SLICE;

	/* Writes: disjoint 16 KiB cells so the model is exact even though
	 * requests complete in any order. */
	for (int i = 0; i < PER_THREAD; i++) {
		struct waiter *w = &l->w[i];
		size_t len = 512 * (1 + rand_r(&seed) % 24);
		uint64_t off = base + (uint64_t)i * 16384 +
			       512 * (rand_r(&seed) % 8);
		int segs = 1 + rand_r(&seed) % 4;
		bool flush = i % 17 == 16;
		size_t left = len;

		l->data[i] = malloc(len);
		for (size_t k = 0; k < len; k++)
			l->data[i][k] = (uint8_t)rand_r(&seed);
		if (!flush)
			memcpy(l->model + off, l->data[i], len);
		for (int s = 0; s < segs; s++) {
			size_t n = s == segs - 1 ? left : left / 2;

			l->iov[i][s].iov_base = l->data[i] + (len - left);
			l->iov[i][s].iov_len = n;
			left -= n;
		}
		memset(w, 0, sizeof(*w));
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		w->req = (struct block_req){ .op = BLOCK_OP_WRITE,
			.offset = off, .iov = l->iov[i], .iovcnt = segs,
			.done = waiter_done, .opaque = w };
		if (flush)
			w->req = (struct block_req){ .op = BLOCK_OP_FLUSH,
				.done = waiter_done, .opaque = w };
	}
	submit_all(l, PER_THREAD);
	wait_all(l, PER_THREAD);
	for (int i = 0; i < PER_THREAD; i++) {
		ck_assert_msg(l->w[i].calls == 1 && l->w[i].result == 0,
			      "write %d: calls %d result %d", i, l->w[i].calls,
			      l->w[i].result);
		free(l->data[i]);
	}
	/* Reads of the whole slice, 64 KiB each, in flight together. */
	for (int i = 0; i < (int)(SLICE / 65536); i++) {
		struct waiter *w = &l->w[i];

		l->data[i] = malloc(65536);
		memset(l->data[i], 0xee, 65536);
		l->iov[i][0] = (struct iovec){ l->data[i], 65536 };
		memset(w, 0, sizeof(*w));
		pthread_mutex_init(&w->lock, NULL);
		pthread_cond_init(&w->cond, NULL);
		w->req = (struct block_req){ .op = BLOCK_OP_READ,
			.offset = base + (uint64_t)i * 65536,
			.iov = l->iov[i], .iovcnt = 1, .done = waiter_done,
			.opaque = w };
	}
	submit_all(l, (int)(SLICE / 65536));
	wait_all(l, (int)(SLICE / 65536));
	for (int i = 0; i < (int)(SLICE / 65536); i++) {
		ck_assert_int_eq(l->w[i].result, 0);
		ck_assert_msg(!memcmp(l->data[i], l->model + base +
				      (uint64_t)i * 65536, 65536),
			      "thread %d read %d differs", l->id, i);
		free(l->data[i]);
	}
	return NULL;
}

START_TEST(concurrent_load)
{
	static struct load loads[THREADS];
	pthread_t t[THREADS];
	uint8_t *model = malloc(DISK_SIZE), *file = malloc(DISK_SIZE);
	struct block_dev *b;

	make_file(DISK_SIZE);
	for (size_t i = 0; i < DISK_SIZE; i++)
		model[i] = pattern(i);
	b = open_raw(_i, "");
	for (int i = 0; i < THREADS; i++) {
		loads[i] = (struct load){ .b = b, .id = i, .model = model };
		ck_assert_int_eq(pthread_create(&t[i], NULL, load_thread,
						&loads[i]), 0);
	}
	for (int i = 0; i < THREADS; i++)
		pthread_join(t[i], NULL);
	block__close(b);
	read_file(0, file, DISK_SIZE);
	if (memcmp(file, model, DISK_SIZE)) {
		size_t i = 0;

		while (file[i] == model[i])
			i++;
		ck_abort_msg("byte %zu: %u, want %u", i, file[i], model[i]);
	}
	free(model);
	free(file);
}
END_TEST

START_TEST(discard_and_write_zeroes)
{
	static uint8_t buf[65536], zero[65536];
	struct block_dev *b;
	blkcnt_t before;

	make_file(DISK_SIZE);
	b = open_raw(_i, "discard=unmap");
	/* A discard punches a hole: zeros, fewer blocks. */
	before = file_blocks();
	ck_assert_int_eq(do_req(b, BLOCK_OP_DISCARD, 1 << 20, 1 << 20, NULL,
				0, false), 0);
	ck_assert_int_lt(file_blocks(), before);
	read_file(1 << 20, buf, sizeof(buf));
	ck_assert_mem_eq(buf, zero, sizeof(buf));
	/* Write-zeroes that may unmap: a hole too. */
	before = file_blocks();
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, 4 << 20, 1 << 20,
				NULL, 0, true), 0);
	ck_assert_int_lt(file_blocks(), before);
	read_file(4 << 20, buf, sizeof(buf));
	ck_assert_mem_eq(buf, zero, sizeof(buf));
	/* Without unmap: zeros, and an odd range leaves its neighbours. */
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, 6 * 512 + 100,
				3000, NULL, 0, false), 0);
	read_file(6 * 512, buf, 4096);
	for (size_t i = 0; i < 4096; i++)
		ck_assert_uint_eq(buf[i], i >= 100 && i < 3100 ?
				  0 : pattern(6 * 512 + i));
	/* Through the device too. */
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 6 * 512 + 100, buf, 3000), 0);
	ck_assert_mem_eq(buf, zero, 3000);
	block__close(b);

	/* discard=ignore: a discard succeeds and changes nothing, and
	 * write-zeroes may not unmap. */
	make_file(DISK_SIZE);
	b = open_raw(_i, "discard=ignore");
	before = file_blocks();
	ck_assert_int_eq(do_req(b, BLOCK_OP_DISCARD, 1 << 20, 1 << 20, NULL,
				0, false), 0);
	read_file(1 << 20, buf, 4096);
	for (size_t i = 0; i < 4096; i++)
		ck_assert_uint_eq(buf[i], pattern((1 << 20) + i));
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, 2 << 20, 1 << 20,
				NULL, 0, true), 0);
	ck_assert_int_eq(file_blocks(), before);
	read_file(2 << 20, buf, sizeof(buf));
	ck_assert_mem_eq(buf, zero, sizeof(buf));
	block__close(b);
}
END_TEST

/* tmpfs has holes but no FALLOC_FL_ZERO_RANGE: write-zeroes falls back
 * to writing zeros, in several chunks of the zero buffer. */
START_TEST(zero_fallback)
{
	static uint8_t buf[4 << 20];
	const uint64_t off = 3 * 512 + 7, len = (2 << 20) + 1000;
	struct statfs sf;
	struct block_dev *b;

	if (statfs("/dev/shm", &sf) || sf.f_type != TMPFS_MAGIC) {
		fprintf(stderr, "test_block: SKIP zero_fallback: /dev/shm is "
			"not a tmpfs\n");
		return;
	}
	snprintf(path, sizeof(path), "/dev/shm/krg-test-block-%d.img",
		 (int)getpid());
	make_file(4 << 20);
	b = open_raw(_i, "discard=unmap");
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, off, len, NULL, 0,
				false), 0);
	read_file(0, buf, sizeof(buf));
	for (uint64_t i = 0; i < sizeof(buf); i++)
		if (buf[i] != (i >= off && i < off + len ? 0 : pattern(i)))
			ck_abort_msg("byte %llu is %u", (unsigned long long)i,
				     buf[i]);
	/* Holes do work there. */
	make_file(4 << 20);
	ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, 1 << 20, 1 << 20,
				NULL, 0, true), 0);
	read_file(1 << 20, buf, 1 << 20);
	for (uint64_t i = 0; i < (1 << 20); i++)
		if (buf[i])
			ck_abort_msg("byte %llu is %u",
				     (unsigned long long)(1 << 20) + i, buf[i]);
	block__close(b);
}
END_TEST

/* Someone truncates the image under us: reads past the new end see zeros
 * (a short transfer, resumed, then end of file), as with QEMU. */
START_TEST(file_shrinks)
{
	static uint8_t buf[3][8192];
	struct iovec v[3] = { { buf[0], 1000 }, { buf[1], 8192 },
			      { buf[2], 8192 - 1000 } };
	struct block_dev *b;

	make_file(1 << 20);
	b = open_raw(_i, "");
	ck_assert_int_eq(truncate(path, 5000), 0);
	memset(buf, 0xff, sizeof(buf));
	ck_assert_int_eq(do_req(b, BLOCK_OP_READ, 512, 0, v, 3, false), 0);
	for (int i = 0; i < 1000; i++)
		ck_assert_uint_eq(buf[0][i], pattern(512 + i));
	for (int i = 0; i < 8192; i++)
		ck_assert_uint_eq(buf[1][i], 1512 + i < 5000 ?
				  pattern(1512 + i) : 0);
	for (int i = 0; i < 8192 - 1000; i++)
		ck_assert_uint_eq(buf[2][i], 0);
	block__close(b);
}
END_TEST

/* Format probing by magic, and the qcow2 truncation check. */
START_TEST(probe_formats)
{
	static const struct {
		const char *head;
		size_t len;
		enum probe_result r;
	} t[] = {
		{ "QFI\xfb\0\0\0\3", 8, PROBE_QCOW2 },
		{ "QFI\xfb\0\0\0\2", 8, PROBE_QCOW2 },
		{ "QFI\xfb\0\0\0\1", 8, PROBE_QCOW1 },
		{ "QED\0", 4, PROBE_QED },
		{ "KDMV", 4, PROBE_VMDK },
		{ "# Disk DescriptorFile\n", 22, PROBE_VMDK },
		{ "conectix", 8, PROBE_VPC },
		{ "vhdxfile", 8, PROBE_VHDX },
		{ "LUKS\xba\xbe", 6, PROBE_LUKS },
		{ "QFI", 3, PROBE_RAW },
		{ "\xeb\x63\x90", 3, PROBE_RAW },
		{ "", 0, PROBE_RAW },
	};
	uint8_t hdr[512] = { 0 };
	char err[256];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++)
		ck_assert_msg(block__probe((const uint8_t *)t[i].head,
					   t[i].len) == t[i].r, "case %zu", i);
	hdr[0x40] = 0x7f;
	hdr[0x41] = 0x10;
	hdr[0x42] = 0xda;
	hdr[0x43] = 0xbe;
	ck_assert_int_eq(block__probe(hdr, sizeof(hdr)), PROBE_VDI);
	ck_assert_int_eq(block__probe_format(PROBE_VDI), DRIVE_FORMAT_VDI);
	ck_assert_int_eq(block__probe_format(PROBE_LUKS), DRIVE_FORMAT_PROBE);

	/* qcow2: 64 KiB clusters, L1 at 0x30000 (1 entry), refcount table
	 * at 0x10000. */
	memset(hdr, 0, sizeof(hdr));
	memcpy(hdr, "QFI\xfb\0\0\0\3", 8);
	hdr[23] = 16;
	hdr[39] = 1;
	hdr[45] = 0x03;
	hdr[53] = 0x01;
	ck_assert_int_eq(block__qcow2_fits(hdr, 72, 0x30008, err,
					   sizeof(err)), 0);
	ck_assert_int_eq(block__qcow2_fits(hdr, 72, 0x30000, err,
					   sizeof(err)), -1);
	ck_assert_msg(strstr(err, "L1 table is at offset 196608"), "%s", err);
	ck_assert_int_eq(block__qcow2_fits(hdr, 72, 0x10000, err,
					   sizeof(err)), -1);
	ck_assert_msg(strstr(err, "refcount table is at offset 65536"), "%s",
		      err);
	/* An empty L1 may point anywhere; nonsense is left to QEMU. */
	hdr[39] = 0;
	ck_assert_int_eq(block__qcow2_fits(hdr, 72, 0x20000, err,
					   sizeof(err)), 0);
	hdr[23] = 40;
	ck_assert_int_eq(block__qcow2_fits(hdr, 72, 100, err, sizeof(err)),
			 0);
	ck_assert_int_eq(block__qcow2_fits(hdr, 60, 100, err, sizeof(err)),
			 0);
}
END_TEST

/* The helpers that resume a short transfer. */
START_TEST(iov_helpers)
{
	char a[10], b[20], c[5];
	struct iovec v[3] = { { a, 10 }, { b, 20 }, { c, 5 } }, out[3];

	ck_assert_int_eq(raw__iov_skip(v, 3, 0, out), 3);
	ck_assert_ptr_eq(out[0].iov_base, a);
	ck_assert_uint_eq(out[0].iov_len, 10);
	ck_assert_int_eq(raw__iov_skip(v, 3, 4, out), 3);
	ck_assert_ptr_eq(out[0].iov_base, a + 4);
	ck_assert_uint_eq(out[0].iov_len, 6);
	ck_assert_int_eq(raw__iov_skip(v, 3, 10, out), 2);
	ck_assert_ptr_eq(out[0].iov_base, b);
	ck_assert_uint_eq(out[0].iov_len, 20);
	ck_assert_int_eq(raw__iov_skip(v, 3, 29, out), 2);
	ck_assert_ptr_eq(out[0].iov_base, b + 19);
	ck_assert_uint_eq(out[0].iov_len, 1);
	ck_assert_ptr_eq(out[1].iov_base, c);
	ck_assert_uint_eq(out[1].iov_len, 5);
	ck_assert_int_eq(raw__iov_skip(v, 3, 35, out), 0);
	ck_assert_int_eq(raw__iov_skip(v, 3, 1000, out), 0);
	memset(a, 1, sizeof(a));
	memset(b, 1, sizeof(b));
	memset(c, 1, sizeof(c));
	raw__iov_zero(v, 3, 8);
	ck_assert(a[7] == 1 && a[8] == 0 && a[9] == 0);
	for (int i = 0; i < 20; i++)
		ck_assert_int_eq(b[i], 0);
	ck_assert_int_eq(c[4], 0);
}
END_TEST

static void never_called(struct block_req *req, int result)
{
	ck_abort_msg("done() called for a refused request (%d)", result);
}

static int refused(struct block_dev *b, struct block_req r)
{
	r.done = never_called;
	return block__submit(b, &r);
}

START_TEST(refusals)
{
	static char buf[4096];
	struct iovec v = { buf, 1024 }, big[BLOCK_MAX_IOV + 1];
	struct block_dev *b;
	uint8_t file[1024];

	make_file(DISK_SIZE);
	b = open_raw(_i, "discard=unmap");
	memset(buf, 'X', sizeof(buf));
	/* Past the end, by a little, a lot, and by wrapping around. */
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_WRITE,
		.offset = DISK_SIZE - 512, .iov = &v, .iovcnt = 1 }), -EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_READ,
		.offset = DISK_SIZE + 512, .iov = &v, .iovcnt = 1 }), -EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_WRITE,
		.offset = UINT64_MAX - 100, .iov = &v, .iovcnt = 1 }),
		-EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){
		.op = BLOCK_OP_DISCARD, .offset = DISK_SIZE - 512,
		.len = 1024 }), -EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){
		.op = BLOCK_OP_WRITE_ZEROES, .offset = 4096,
		.len = UINT64_MAX }), -EINVAL);
	/* Malformed requests. */
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_READ,
		.iov = &v, .iovcnt = -1 }), -EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_READ,
		.iov = NULL, .iovcnt = 1 }), -EINVAL);
	for (int i = 0; i <= BLOCK_MAX_IOV; i++)
		big[i] = (struct iovec){ buf, 1 };
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_READ,
		.iov = big, .iovcnt = BLOCK_MAX_IOV + 1 }), -EINVAL);
	big[0].iov_len = SIZE_MAX;
	big[1].iov_len = 2;
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_READ,
		.iov = big, .iovcnt = 2 }), -EINVAL);
	ck_assert_int_eq(refused(b, (struct block_req){ .op = 99 }), -EINVAL);
	{
		struct block_req r = { .op = BLOCK_OP_FLUSH };

		ck_assert_int_eq(block__submit(b, &r), -EINVAL); /* no done */
	}
	block__close(b);
	/* Nothing reached the file. */
	read_file(DISK_SIZE - 1024, file, sizeof(file));
	for (size_t i = 0; i < sizeof(file); i++)
		ck_assert_uint_eq(file[i], pattern(DISK_SIZE - 1024 + i));
}
END_TEST

START_TEST(read_only)
{
	static char buf[4096];
	struct iovec v = { buf, 4096 };
	struct block_info info;
	struct block_dev *b;

	make_file(DISK_SIZE);
	ck_assert_int_eq(chmod(path, 0444), 0);
	b = open_raw(_i, "readonly=on,discard=unmap");
	block__info(b, &info);
	ck_assert(info.read_only);
	ck_assert(!info.can_discard);
	ck_assert(!info.can_write_zeroes);
	ck_assert_int_eq(refused(b, (struct block_req){ .op = BLOCK_OP_WRITE,
		.iov = &v, .iovcnt = 1 }), -EROFS);
	ck_assert_int_eq(refused(b, (struct block_req){
		.op = BLOCK_OP_DISCARD, .len = 4096 }), -EROFS);
	ck_assert_int_eq(refused(b, (struct block_req){
		.op = BLOCK_OP_WRITE_ZEROES, .len = 4096 }), -EROFS);
	ck_assert_int_eq(do_req(b, BLOCK_OP_READ, 4096, 0, &v, 1, false), 0);
	for (size_t i = 0; i < 4096; i++)
		ck_assert_uint_eq((uint8_t)buf[i], pattern(4096 + i));
	ck_assert_int_eq(do_req(b, BLOCK_OP_FLUSH, 0, 0, NULL, 0, false), 0);
	block__close(b);
}
END_TEST

static int write_sector0(struct block_dev *b, const void *data, size_t len,
			 uint64_t off)
{
	static char buf[1024];

	memset(buf, 0, sizeof(buf));
	memcpy(buf, data, len);
	return rw(b, BLOCK_OP_WRITE, off, buf, off ? 512 : sizeof(buf));
}

START_TEST(probed_raw_guard)
{
	char err[512] = "", text[256];
	struct block_dev *b;
	const char *w;

	make_file(DISK_SIZE);
	snprintf(text, sizeof(text), "file=%s,aio=%s", path, engine(_i));
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	w = block__warning(b);
	ck_assert_msg(w && strstr(w, "probing guessed raw"), "%s", w);
	ck_assert_int_eq(write_sector0(b, "QFI\xfb\0\0\0\3", 8, 0), -EPERM);
	ck_assert_int_eq(write_sector0(b, "conectix", 8, 0), -EPERM);
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 0, "ab", 2), -EINVAL);
	ck_assert_int_eq(write_sector0(b, "x", 1, 256), -EINVAL);
	ck_assert_int_eq(write_sector0(b, "\xeb\x63\x90", 3, 0), 0);
	ck_assert_int_eq(write_sector0(b, "QFI\xfb", 4, 512), 0);
	block__close(b);

	/* format=raw: the guest owns every byte. */
	snprintf(text, sizeof(text), "file=%s,format=raw,aio=%s", path,
		 engine(_i));
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	ck_assert_int_eq(write_sector0(b, "QFI\xfb\0\0\0\3", 8, 0), 0);
	block__close(b);
	/* ... and now it probes as qcow2 and is refused as a bad one. */
	snprintf(text, sizeof(text), "file=%s,format=raw", path);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	w = block__warning(b);
	ck_assert_msg(w && strstr(w, "looks like a qcow2 image"), "%s", w);
	block__close(b);
}
END_TEST

START_TEST(direct_io)
{
	struct block_dev *b;
	uint8_t *buf, file[8192];
	char desc[256];

	make_file(DISK_SIZE);
	b = open_raw(_i, "cache=none");
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(strstr(desc, "cache=none"), "%s", desc);
	ck_assert_int_eq(posix_memalign((void **)&buf, 4096, 16384), 0);
	/* Aligned: O_DIRECT.  Misaligned buffer or offset: buffered. */
	for (int k = 0; k < 3; k++) {
		uint8_t *p = buf + (k == 1 ? 3 : 0);
		uint64_t off = 65536 + (k == 2 ? 512 * 3 + 5 : 0);

		for (int i = 0; i < 8192; i++)
			p[i] = (uint8_t)(i * 31 + k);
		ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, off, p, 8192), 0);
		ck_assert_int_eq(do_req(b, BLOCK_OP_FLUSH, 0, 0, NULL, 0,
					false), 0);
		read_file(off, file, sizeof(file));
		ck_assert_mem_eq(file, p, 8192);
		memset(p, 0, 8192);
		ck_assert_int_eq(rw(b, BLOCK_OP_READ, off, p, 8192), 0);
		ck_assert_mem_eq(file, p, 8192);
	}
	free(buf);
	block__close(b);
}
END_TEST

START_TEST(durable_modes)
{
	static const char *const modes[] = {
		"cache=writethrough", "cache=directsync", "cache=unsafe",
	};
	static char buf[4096];
	uint8_t file[4096];

	make_file(1 << 20);
	for (int m = 0; m < 3; m++) {
		struct block_dev *b = open_raw(_i, modes[m]);

		memset(buf, 'a' + m, sizeof(buf));
		ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 8192, buf, 4096), 0);
		ck_assert_int_eq(do_req(b, BLOCK_OP_WRITE_ZEROES, 0, 4096,
					NULL, 0, false), 0);
		ck_assert_int_eq(do_req(b, BLOCK_OP_FLUSH, 0, 0, NULL, 0,
					false), 0);
		block__close(b);
		read_file(8192, file, 4096);
		ck_assert_mem_eq(file, buf, 4096);
		read_file(0, file, 4096);
		for (int i = 0; i < 4096; i++)
			ck_assert_uint_eq(file[i], 0);
	}
}
END_TEST

START_TEST(empty_image)
{
	struct block_info info;
	struct block_dev *b;
	char buf[512];
	const char *w;

	make_file(0);
	b = open_raw(_i, "");
	block__info(b, &info);
	ck_assert_uint_eq(info.size, 0);
	w = block__warning(b);
	ck_assert_msg(w && strstr(w, "is empty"), "%s", w);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 0, buf, 512), -EINVAL);
	ck_assert_int_eq(do_req(b, BLOCK_OP_FLUSH, 0, 0, NULL, 0, false), 0);
	block__close(b);
}
END_TEST

/* done() may submit the next request: a chain of 64 writes driven only
 * from completions. */
struct chain {
	struct block_dev *b;
	struct block_req req;
	struct iovec v;
	char buf[512];
	int left, errors;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool finished;
};

static void chain_done(struct block_req *req, int result)
{
	struct chain *c = req->opaque;

	if (result)
		c->errors++;
	if (--c->left > 0) {
		memset(c->buf, c->left, sizeof(c->buf));
		req->offset += 512;
		if (block__submit(c->b, req) == 0)
			return;
		c->errors++;
	}
	pthread_mutex_lock(&c->lock);
	c->finished = true;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
}

START_TEST(submit_from_done)
{
	static struct chain c;
	uint8_t file[512];

	make_file(1 << 20);
	memset(&c, 0, sizeof(c));
	c.b = open_raw(_i, "");
	c.left = 64;
	c.v = (struct iovec){ c.buf, sizeof(c.buf) };
	c.req = (struct block_req){ .op = BLOCK_OP_WRITE, .iov = &c.v,
				    .iovcnt = 1, .done = chain_done,
				    .opaque = &c };
	pthread_mutex_init(&c.lock, NULL);
	pthread_cond_init(&c.cond, NULL);
	memset(c.buf, 64, sizeof(c.buf));
	ck_assert_int_eq(block__submit(c.b, &c.req), 0);
	pthread_mutex_lock(&c.lock);
	while (!c.finished)
		pthread_cond_wait(&c.cond, &c.lock);
	pthread_mutex_unlock(&c.lock);
	ck_assert_int_eq(c.errors, 0);
	block__close(c.b);
	for (int i = 0; i < 64; i++) {
		read_file((uint64_t)i * 512, file, sizeof(file));
		ck_assert_uint_eq(file[0], 64 - i);
		ck_assert_uint_eq(file[511], 64 - i);
	}
}
END_TEST

static void count_done(struct block_req *req, int result)
{
	int *count = req->opaque;

	ck_assert_int_eq(result, 0);
	__atomic_fetch_add(count, 1, __ATOMIC_SEQ_CST);
}

START_TEST(close_drains)
{
	static struct block_req reqs[300];
	static struct iovec v[300];
	static char buf[300][4096];
	struct block_dev *b;
	int count = 0;

	make_file(DISK_SIZE);
	b = open_raw(_i, "");
	for (int i = 0; i < 300; i++) {
		v[i] = (struct iovec){ buf[i], 4096 };
		reqs[i] = (struct block_req){ .op = i % 3 ? BLOCK_OP_WRITE :
					      BLOCK_OP_READ,
					      .offset = (uint64_t)i * 4096,
					      .iov = &v[i], .iovcnt = 1,
					      .done = count_done,
					      .opaque = &count };
		ck_assert_int_eq(block__submit(b, &reqs[i]), 0);
	}
	block__drain(b);
	ck_assert_int_eq(__atomic_load_n(&count, __ATOMIC_SEQ_CST), 300);
	for (int i = 0; i < 300; i++)
		ck_assert_int_eq(block__submit(b, &reqs[i]), 0);
	block__close(b);
	ck_assert_int_eq(count, 600);
}
END_TEST

START_TEST(auto_prefers_io_uring)
{
	char err[512] = "", text[256];
	struct block_dev *b;

	/* Without aio=, a buffered image gets the thread pool (io_uring
	 * queues buffered writes behind one worker per file)... */
	make_file(1 << 20);
	snprintf(text, sizeof(text), "file=%s,format=raw", path);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	block__describe(b, text, sizeof(text));
	ck_assert_msg(strstr(text, "raw, threads,"), "%s", text);
	block__close(b);

	/* ...and an O_DIRECT one io_uring, where the host allows it. */
	snprintf(text, sizeof(text), "file=%s,format=raw,cache=none", path);
	b = open_text(text, err, sizeof(err));
	if (!b && strstr(err, "O_DIRECT")) {
		fprintf(stderr, "test_block: no O_DIRECT here (%s)\n", err);
		return;
	}
	ck_assert_msg(b, "%s", err);
	block__describe(b, text, sizeof(text));
	if (!strstr(text, "io_uring unavailable"))
		ck_assert_msg(strstr(text, "raw, io_uring,"), "%s", text);
	else
		fprintf(stderr, "test_block: io_uring refused on this host "
			"(%s): the auto mode fell back\n", text);
	block__close(b);
}
END_TEST

/* A host that forbids io_uring (as container seccomp profiles do): the
 * default mode says so and uses the threads, aio=io_uring refuses. */
START_TEST(io_uring_forbidden)
{
	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, __NR_io_uring_setup, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | EPERM),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = { sizeof(filter) / sizeof(filter[0]),
				   filter };
	char err[512] = "", text[256], desc[256];
	static char buf[4096];
	struct block_dev *b;

	make_file(1 << 20);
	ck_assert_int_eq(prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), 0);
	ck_assert_int_eq(prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog),
			 0);
	/* O_DIRECT is where the default mode would take io_uring; a host
	 * without O_DIRECT on this file system shows the buffered default. */
	snprintf(text, sizeof(text), "file=%s,format=raw,cache=none", path);
	b = open_text(text, err, sizeof(err));
	if (!b && strstr(err, "O_DIRECT")) {
		snprintf(text, sizeof(text), "file=%s,format=raw", path);
		b = open_text(text, err, sizeof(err));
		ck_assert_msg(b, "%s", err);
		block__describe(b, desc, sizeof(desc));
		ck_assert_msg(strstr(desc, "raw, threads,"), "%s", desc);
	} else {
		ck_assert_msg(b, "%s", err);
		block__describe(b, desc, sizeof(desc));
		ck_assert_msg(strstr(desc, "raw, threads (io_uring unavailable: "
				     "Operation not permitted)"), "%s", desc);
	}
	memset(buf, 'q', sizeof(buf));
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 4096, buf, sizeof(buf)), 0);
	memset(buf, 0, sizeof(buf));
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 4096, buf, sizeof(buf)), 0);
	ck_assert_int_eq(buf[4095], 'q');
	block__close(b);
	snprintf(text, sizeof(text), "file=%s,format=raw,aio=io_uring", path);
	ck_assert_ptr_null(open_text(text, err, sizeof(err)));
	ck_assert_msg(strstr(err, "aio=io_uring: io_uring unavailable: "
			     "Operation not permitted"), "%s", err);
}
END_TEST

static Suite *block_suite(void)
{
	Suite *su = suite_create("block");
	TCase *tc = tcase_create("raw");
	int n = sizeof(engines) / sizeof(engines[0]);

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_loop_test(tc, info_and_engine, 0, n);
	tcase_add_loop_test(tc, round_trip, 0, n);
	tcase_add_loop_test(tc, concurrent_load, 0, n);
	tcase_add_loop_test(tc, discard_and_write_zeroes, 0, n);
	tcase_add_loop_test(tc, zero_fallback, 0, n);
	tcase_add_loop_test(tc, file_shrinks, 0, n);
	tcase_add_loop_test(tc, refusals, 0, n);
	tcase_add_loop_test(tc, read_only, 0, n);
	tcase_add_loop_test(tc, probed_raw_guard, 0, n);
	tcase_add_loop_test(tc, direct_io, 0, n);
	tcase_add_loop_test(tc, durable_modes, 0, n);
	tcase_add_loop_test(tc, empty_image, 0, n);
	tcase_add_loop_test(tc, submit_from_done, 0, n);
	tcase_add_loop_test(tc, close_drains, 0, n);
	tcase_add_test(tc, auto_prefers_io_uring);
	tcase_add_test(tc, io_uring_forbidden);
	tcase_add_test(tc, iov_helpers);
	tcase_add_test(tc, probe_formats);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(block_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
