/* Image formats through QEMU's block layer (storage/block.h with a
 * qemu-storage-daemon child, and NBD URIs to an existing export), checked
 * with QEMU's own tools: qemu-img creates the images, converts what we
 * wrote back to raw for comparison and checks their metadata.  Then the
 * bad images: each must fail block__open with one clear line, quickly.
 * Tests that need qemu-img, qemu-storage-daemon or qemu-nbd say so and
 * skip when the tool is missing (.ci/install-deps.sh installs them). */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/block.h"
#include "storage/drive_opts.h"

#define IMG_SIZE (16u << 20)

static char dir[64];

static long long now_ms(void);

static void setup(void)
{
	strcpy(dir, "/tmp/krg-test-image.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
	ck_assert_int_eq(chmod(dir, 0755), 0);
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_block_image: cannot remove %s\n", dir);
}

static void in_dir(char *out, size_t len, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

static bool have(const char *tool, const char *package, const char *test)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	if (system(cmd) == 0)
		return true;
	fprintf(stderr, "test_block_image: SKIP %s: %s not installed (Debian "
		"package %s)\n", test, tool, package);
	return false;
}

/* Runs argv quietly; its exit status. */
static int run(char *const argv[])
{
	pid_t pid = fork();
	int status;

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execvp(argv[0], argv);
		_exit(127);
	}
	ck_assert_int_eq(waitpid(pid, &status, 0), pid);
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128;
}

static void qemu_img_create(const char *fmt, const char *file, const char *size)
{
	char *argv[] = { "qemu-img", "create", "-q", "-f", (char *)fmt,
			 (char *)file, (char *)size, NULL };

	ck_assert_int_eq(run(argv), 0);
}

static uint8_t *slurp(const char *file, size_t *len)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(file, O_RDONLY);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(fstat(fd, &st), 0);
	buf = malloc((size_t)st.st_size + 1);
	ck_assert_int_eq(pread(fd, buf, (size_t)st.st_size, 0), st.st_size);
	close(fd);
	*len = (size_t)st.st_size;
	return buf;
}

static struct block_dev *open_text(const char *text, char *err,
				   size_t errlen)
{
	struct drive_opts o;

	ck_assert_msg(!drive_opts__parse(text, &o, err, errlen), "%s", err);
	return block__open(&o, err, errlen);
}

struct waiter {
	struct block_req req;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int calls, result;
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

static void waiter_init(struct waiter *w, struct block_req req)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	w->req = req;
	w->req.done = waiter_done;
	w->req.opaque = w;
}

static int waiter_wait(struct waiter *w)
{
	pthread_mutex_lock(&w->lock);
	while (!w->calls)
		pthread_cond_wait(&w->cond, &w->lock);
	pthread_mutex_unlock(&w->lock);
	ck_assert_int_eq(w->calls, 1);
	return w->result;
}

static int do_req(struct block_dev *b, struct block_req req)
{
	struct waiter w;
	int r;

	waiter_init(&w, req);
	r = block__submit(b, &w.req);
	return r ? r : waiter_wait(&w);
}

static int rw(struct block_dev *b, enum block_op op, uint64_t off, void *buf,
	      size_t len)
{
	struct iovec v = { buf, len };

	return do_req(b, (struct block_req){ .op = op, .offset = off,
					     .iov = &v, .iovcnt = 1 });
}

/* Two threads, each with 100 writes in flight on its half of the disk. */
#define LOAD_THREADS 2
#define LOAD_REQS 100

struct load {
	struct block_dev *b;
	uint8_t *model;
	int id;
	struct waiter w[LOAD_REQS];
	struct iovec v[LOAD_REQS][2];
	uint8_t buf[LOAD_REQS][8192];
};

static void *load_thread(void *arg)
{
	struct load *l = arg;
	unsigned seed = 77u + (unsigned)l->id;

	for (int i = 0; i < LOAD_REQS; i++) {
		uint64_t off = (uint64_t)l->id * (IMG_SIZE / 2) +
			       (uint64_t)i * 65536 + 512 * (rand_r(&seed) % 100);
		size_t len = 512 * (1 + rand_r(&seed) % 16);

		for (size_t k = 0; k < len; k++)
			l->buf[i][k] = (uint8_t)rand_r(&seed);
		memcpy(l->model + off, l->buf[i], len);
		l->v[i][0] = (struct iovec){ l->buf[i], len / 2 };
		l->v[i][1] = (struct iovec){ l->buf[i] + len / 2,
					     len - len / 2 };
		waiter_init(&l->w[i], (struct block_req){
			.op = BLOCK_OP_WRITE, .offset = off,
			.iov = l->v[i], .iovcnt = 2 });
	}
	for (int i = 0; i < LOAD_REQS; i++)
		ck_assert_int_eq(block__submit(l->b, &l->w[i].req), 0);
	for (int i = 0; i < LOAD_REQS; i++)
		ck_assert_int_eq(waiter_wait(&l->w[i]), 0);
	return NULL;
}

static void load(struct block_dev *b, uint8_t *model)
{
	static struct load loads[LOAD_THREADS];
	pthread_t t[LOAD_THREADS];

	for (int i = 0; i < LOAD_THREADS; i++) {
		loads[i].b = b;
		loads[i].model = model;
		loads[i].id = i;
		ck_assert_int_eq(pthread_create(&t[i], NULL, load_thread,
						&loads[i]), 0);
	}
	for (int i = 0; i < LOAD_THREADS; i++)
		pthread_join(t[i], NULL);
}

static void expect_same(const uint8_t *got, const uint8_t *want, size_t len,
			const char *what)
{
	if (memcmp(got, want, len)) {
		size_t i = 0;

		while (got[i] == want[i])
			i++;
		ck_abort_msg("%s: byte %zu is %u, want %u", what, i, got[i],
			     want[i]);
	}
}

START_TEST(qcow2_round_trip)
{
	char img[128], out[128], text[256], err[512] = "", desc[256];
	char *convert[] = { "qemu-img", "convert", "-O", "raw", img, out,
			    NULL };
	char *check[] = { "qemu-img", "check", "-q", img, NULL };
	uint8_t *model = calloc(1, IMG_SIZE), *back, *raw;
	struct block_info info;
	struct block_dev *b;
	size_t len;

	if (!have("qemu-img", "qemu-utils", "qcow2_round_trip") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "qcow2_round_trip"))
		return;
	in_dir(img, sizeof(img), "disk.qcow2");
	in_dir(out, sizeof(out), "back.raw");
	qemu_img_create("qcow2", img, "16M");
	snprintf(text, sizeof(text), "file=%s,discard=unmap,serial=Q1", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(strstr(desc, "qcow2 via qemu-storage-daemon"), "%s",
		      desc);
	ck_assert_ptr_null(block__warning(b));
	block__info(b, &info);
	ck_assert_uint_eq(info.size, IMG_SIZE);
	ck_assert_uint_eq(info.logical_block_size, 512);
	ck_assert(!info.read_only && info.can_discard &&
		  info.can_write_zeroes);
	ck_assert_str_eq(info.serial, "Q1");

	load(b, model);
	/* Zeroes over written data, with and without unmapping, and a
	 * cluster-aligned discard (a qcow2 without backing file then reads
	 * zeros). */
	ck_assert_int_eq(do_req(b, (struct block_req){
		.op = BLOCK_OP_WRITE_ZEROES, .offset = 65536 + 1024,
		.len = 3000 }), 0);
	memset(model + 65536 + 1024, 0, 3000);
	ck_assert_int_eq(do_req(b, (struct block_req){
		.op = BLOCK_OP_WRITE_ZEROES, .offset = 20 * 65536,
		.len = 4 * 65536, .may_unmap = true }), 0);
	memset(model + 20 * 65536, 0, 4 * 65536);
	ck_assert_int_eq(do_req(b, (struct block_req){
		.op = BLOCK_OP_DISCARD, .offset = IMG_SIZE / 2 + 5 * 65536,
		.len = 3 * 65536 }), 0);
	memset(model + IMG_SIZE / 2 + 5 * 65536, 0, 3 * 65536);
	ck_assert_int_eq(do_req(b, (struct block_req){ .op = BLOCK_OP_FLUSH }),
			 0);
	/* Out of range, as for raw. */
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, IMG_SIZE - 512, model, 1024),
			 -EINVAL);

	back = malloc(IMG_SIZE);
	for (uint64_t off = 0; off < IMG_SIZE; off += 1 << 20)
		ck_assert_int_eq(rw(b, BLOCK_OP_READ, off, back + off,
				    1 << 20), 0);
	expect_same(back, model, IMG_SIZE, "read back");
	block__close(b);

	ck_assert_int_eq(run(convert), 0);
	raw = slurp(out, &len);
	ck_assert_uint_eq(len, IMG_SIZE);
	expect_same(raw, model, IMG_SIZE, "qemu-img convert");
	ck_assert_int_eq(run(check), 0);
	free(raw);
	free(back);
	free(model);
}
END_TEST

START_TEST(qcow2_read_only)
{
	char img[128], text[256], err[512] = "";
	struct block_info info;
	struct block_dev *b;
	static char buf[4096];

	if (!have("qemu-img", "qemu-utils", "qcow2_read_only") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "qcow2_read_only"))
		return;
	in_dir(img, sizeof(img), "ro.qcow2");
	qemu_img_create("qcow2", img, "1M");
	snprintf(text, sizeof(text), "file=%s,format=qcow2,readonly=on,"
		 "cache=none", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	block__info(b, &info);
	ck_assert(info.read_only && !info.can_discard &&
		  !info.can_write_zeroes);
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 0, buf, 4096), -EROFS);
	memset(buf, 1, sizeof(buf));
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 4096, buf, 4096), 0);
	for (int i = 0; i < 4096; i++)
		ck_assert_uint_eq((uint8_t)buf[i], 0);
	block__close(b);
}
END_TEST

/* Every cache= mode reaches the daemon (O_DIRECT, FUA writes, ignored
 * flushes) and leaves a consistent image. */
START_TEST(qcow2_cache_modes)
{
	static const char *const modes[] = { "writeback", "none",
		"writethrough", "directsync", "unsafe" };
	char img[128], text[256], err[512] = "", desc[256];
	char *check[] = { "qemu-img", "check", "-q", img, NULL };
	static uint8_t buf[65536], back[65536];
	struct block_dev *b;

	if (!have("qemu-img", "qemu-utils", "qcow2_cache_modes") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "qcow2_cache_modes"))
		return;
	in_dir(img, sizeof(img), "modes.qcow2");
	qemu_img_create("qcow2", img, "4M");
	snprintf(text, sizeof(text), "file=%s,format=qcow2,discard=unmap,"
		 "cache=%s", img, modes[_i]);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(strstr(desc, modes[_i]), "%s", desc);
	memset(buf, 0x3c + _i, sizeof(buf));
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 65536, buf, sizeof(buf)), 0);
	ck_assert_int_eq(do_req(b, (struct block_req){
		.op = BLOCK_OP_WRITE_ZEROES, .offset = 65536 + 512,
		.len = 1024 }), 0);
	memset(buf + 512, 0, 1024);
	ck_assert_int_eq(do_req(b, (struct block_req){ .op = BLOCK_OP_FLUSH }),
			 0);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 65536, back, sizeof(back)), 0);
	ck_assert_mem_eq(back, buf, sizeof(buf));
	block__close(b);
	ck_assert_int_eq(run(check), 0);
}
END_TEST

/* The other formats QEMU writes: created by qemu-img, probed, written
 * through the daemon, converted back. */
START_TEST(other_formats)
{
	static const char *const fmts[] = { "vmdk", "vdi", "vpc", "vhdx",
					    "qed" };
	const char *fmt = fmts[_i];
	char img[128], out[128], text[256], err[512] = "", desc[256];
	char *convert[] = { "qemu-img", "convert", "-O", "raw", img, out,
			    NULL };
	static uint8_t buf[65536], back[65536];
	uint8_t *raw;
	struct block_dev *b;
	size_t len;

	if (!have("qemu-img", "qemu-utils", "other_formats") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "other_formats"))
		return;
	in_dir(img, sizeof(img), "disk.img");
	in_dir(out, sizeof(out), "back.raw");
	qemu_img_create(fmt, img, "4M");
	snprintf(text, sizeof(text), "file=%s", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s: %s", fmt, err);
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(!strncmp(desc, fmt, strlen(fmt)), "%s", desc);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i * 3 + _i);
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 1 << 20, buf, sizeof(buf)), 0);
	ck_assert_int_eq(do_req(b, (struct block_req){ .op = BLOCK_OP_FLUSH }),
			 0);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 1 << 20, back, sizeof(back)), 0);
	ck_assert_mem_eq(back, buf, sizeof(buf));
	block__close(b);
	ck_assert_int_eq(run(convert), 0);
	raw = slurp(out, &len);
	ck_assert_uint_ge(len, (1 << 20) + sizeof(buf));
	ck_assert_mem_eq(raw + (1 << 20), buf, sizeof(buf));
	free(raw);
}
END_TEST

static pid_t spawn_nbd(const char *sock, const char *file)
{
	pid_t pid = fork();

	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		int null = open("/dev/null", O_RDWR);

		dup2(null, 1);
		dup2(null, 2);
		execlp("qemu-nbd", "qemu-nbd", "-k", sock, "-f", "raw", "-x",
		       "disk", "-t", file, (char *)NULL);
		_exit(127);
	}
	return pid;
}

static struct block_dev *open_retry(const char *text, char *err,
				    size_t errlen)
{
	for (int i = 0; i < 100; i++) {
		struct block_dev *b = open_text(text, err, errlen);
		struct timespec ms20 = { 0, 20000000 };

		if (b)
			return b;
		nanosleep(&ms20, NULL);
	}
	return NULL;
}

START_TEST(nbd_uri)
{
	char file[128], sock[128], text[320], err[512] = "", desc[256];
	static uint8_t buf[8192], back[8192];
	struct block_info info;
	struct block_dev *b;
	uint8_t *raw;
	size_t len;
	pid_t pid;
	int r, fd;

	if (!have("qemu-nbd", "qemu-utils", "nbd_uri"))
		return;
	in_dir(file, sizeof(file), "export.raw");
	in_dir(sock, sizeof(sock), "nbd.sock");
	fd = open(file, O_RDWR | O_CREAT, 0644);
	ck_assert_int_eq(ftruncate(fd, 2 << 20), 0);
	close(fd);
	pid = spawn_nbd(sock, file);
	snprintf(text, sizeof(text), "file=nbd+unix:///disk?socket=%s", sock);
	b = open_retry(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	block__describe(b, desc, sizeof(desc));
	ck_assert_msg(strstr(desc, "NBD export"), "%s", desc);
	block__info(b, &info);
	ck_assert_uint_eq(info.size, 2 << 20);
	for (size_t i = 0; i < sizeof(buf); i++)
		buf[i] = (uint8_t)(i ^ 0x5a);
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 12288, buf, sizeof(buf)), 0);
	ck_assert_int_eq(do_req(b, (struct block_req){ .op = BLOCK_OP_FLUSH }),
			 0);
	ck_assert_int_eq(rw(b, BLOCK_OP_READ, 12288, back, sizeof(back)), 0);
	ck_assert_mem_eq(back, buf, sizeof(buf));
	raw = slurp(file, &len);
	ck_assert_mem_eq(raw + 12288, buf, sizeof(buf));
	free(raw);

	/* The server dies: requests fail, nothing hangs. */
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	r = rw(b, BLOCK_OP_READ, 0, back, sizeof(back));
	ck_assert_int_lt(r, 0);
	r = rw(b, BLOCK_OP_WRITE, 0, buf, sizeof(buf));
	ck_assert_int_lt(r, 0);
	block__close(b);
}
END_TEST

/* Our qemu-storage-daemon child, found in /proc. */
static pid_t daemon_child(void)
{
	DIR *d = opendir("/proc");
	struct dirent *e;
	pid_t found = -1;

	ck_assert_ptr_nonnull(d);
	while (found < 0 && (e = readdir(d))) {
		char stat[300], line[256], comm[64];
		int ppid = 0;
		FILE *f;

		if (e->d_name[0] < '1' || e->d_name[0] > '9')
			continue;
		snprintf(stat, sizeof(stat), "/proc/%s/stat", e->d_name);
		f = fopen(stat, "r");
		if (!f)
			continue;
		if (fgets(line, sizeof(line), f) &&
		    sscanf(line, "%*d (%63[^)]) %*c %d", comm, &ppid) == 2 &&
		    ppid == getpid() && !strncmp(comm, "qemu-storage", 12))
			found = atoi(e->d_name);
		fclose(f);
	}
	closedir(d);
	return found;
}

/* The daemon dies with requests in flight: each completes exactly once,
 * later ones fail, close returns. */
START_TEST(daemon_dies)
{
	static struct waiter w[64];
	static bool queued[64];
	static struct iovec v[64];
	static uint8_t buf[64][65536];
	char img[128], text[256], err[512] = "";
	struct block_dev *b;
	pid_t pid;
	int failed = 0, r;
	long long t0;

	if (!have("qemu-img", "qemu-utils", "daemon_dies") ||
	    !have("qemu-storage-daemon", "qemu-system-common", "daemon_dies"))
		return;
	in_dir(img, sizeof(img), "dies.qcow2");
	qemu_img_create("qcow2", img, "16M");
	snprintf(text, sizeof(text), "file=%s", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	pid = daemon_child();
	ck_assert_int_gt(pid, 0);
	for (int i = 0; i < 64; i++) {
		v[i] = (struct iovec){ buf[i], sizeof(buf[i]) };
		waiter_init(&w[i], (struct block_req){
			.op = i % 2 ? BLOCK_OP_WRITE : BLOCK_OP_READ,
			.offset = (uint64_t)i * 65536, .iov = &v[i],
			.iovcnt = 1 });
		r = block__submit(b, &w[i].req);
		/* Refused at once is fine too, once the daemon is gone. */
		ck_assert(r == 0 || (i > 20 && r == -EIO));
		queued[i] = r == 0;
		failed += r != 0;
		if (i == 20)
			kill(pid, SIGKILL);
	}
	for (int i = 0; i < 64; i++)
		if (queued[i])
			failed += waiter_wait(&w[i]) != 0;
	ck_assert_int_gt(failed, 0);
	ck_assert_int_lt(rw(b, BLOCK_OP_READ, 0, buf[0], 4096), 0);
	t0 = now_ms();
	block__close(b);
	ck_assert_int_lt(now_ms() - t0, 2000);
}
END_TEST

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* block__open fails within a few seconds with one line holding want. */
static void expect_open_error_o(struct drive_opts *o, const char *want)
{
	char err[512] = "";
	long long t0 = now_ms();
	struct block_dev *b = block__open(o, err, sizeof(err));

	if (b)
		block__close(b);
	ck_assert_msg(!b, "%s opened", o->file);
	ck_assert_msg(strstr(err, want), "%s: error '%s' lacks '%s'", o->file,
		      err, want);
	ck_assert_ptr_null(strchr(err, '\n'));
	/* The daemon's echo of our command line is noise to the user. */
	ck_assert_msg(!strstr(err, "--blockdev") &&
		      !strstr(err, "qemu-storage-daemon: "), "%s", err);
	ck_assert_msg(now_ms() - t0 < 5000, "took %lld ms", now_ms() - t0);
}

static void expect_open_error(const char *text, const char *want)
{
	struct drive_opts o;
	char err[512];

	ck_assert_msg(!drive_opts__parse(text, &o, err, sizeof(err)), "%s",
		      err);
	expect_open_error_o(&o, want);
}

static void write_file(const char *file, const void *data, size_t len)
{
	int fd = open(file, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* A copy of a fresh qcow2 cut to len bytes, or patched at off. */
static void qcow2_variant(const char *file, size_t cut, size_t off,
			  const void *patch, size_t plen)
{
	char src[128];
	uint8_t *buf;
	size_t len;

	in_dir(src, sizeof(src), "fresh.qcow2");
	qemu_img_create("qcow2", src, "16M");
	buf = slurp(src, &len);
	if (cut)
		len = cut;
	if (patch)
		memcpy(buf + off, patch, plen);
	write_file(file, buf, len);
	free(buf);
}

/* QEMU's image locking: a second writer is refused, with QEMU's words
 * and hint on one line. */
START_TEST(image_in_use)
{
	char img[128], text[256], err[512] = "";
	struct block_dev *b;

	if (!have("qemu-img", "qemu-utils", "image_in_use") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "image_in_use"))
		return;
	in_dir(img, sizeof(img), "busy.qcow2");
	qemu_img_create("qcow2", img, "1M");
	snprintf(text, sizeof(text), "file=%s", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	expect_open_error(text, "Failed to get \"write\" lock; Is another "
			  "process using the image");
	block__close(b);
}
END_TEST

START_TEST(bad_images)
{
	char f[128], text[256];

	in_dir(f, sizeof(f), "missing.img");
	snprintf(text, sizeof(text), "file=%s", f);
	expect_open_error(text, "missing.img: No such file or directory");
	snprintf(text, sizeof(text), "file=%s", dir);
	expect_open_error(text, "is a directory");
	snprintf(text, sizeof(text), "file=/dev/null,format=raw");
	expect_open_error(text, "not a regular file or block device");

	/* Known formats krg-vmm does not open. */
	in_dir(f, sizeof(f), "v1.qcow");
	write_file(f, "QFI\xfb\0\0\0\1", 8);
	snprintf(text, sizeof(text), "file=%s", f);
	expect_open_error(text, "a qcow (version 1) image, which krg-vmm "
			  "cannot open");
	in_dir(f, sizeof(f), "crypt.luks");
	write_file(f, "LUKS\xba\xbe\0\1", 8);
	snprintf(text, sizeof(text), "file=%s", f);
	expect_open_error(text, "a LUKS image");

	if (!have("qemu-img", "qemu-utils", "bad_images (qcow2 part)") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "bad_images (qcow2 part)"))
		return;
	in_dir(f, sizeof(f), "trunc.qcow2");
	qcow2_variant(f, 50, 0, NULL, 0);
	snprintf(text, sizeof(text), "file=%s", f);
	expect_open_error(text, "qcow2 header too short");
	qcow2_variant(f, 1024, 0, NULL, 0);
	expect_open_error(text, "truncated qcow2 image");
	in_dir(f, sizeof(f), "broken.qcow2");
	qcow2_variant(f, 0, 4, "\xff\xff\xff\xff", 4);
	snprintf(text, sizeof(text), "file=%s", f);
	expect_open_error(text, "Unsupported qcow2 version");
	/* A cluster size QEMU refuses. */
	qcow2_variant(f, 0, 20, "\0\0\0\x40", 4);
	expect_open_error(text, "broken.qcow2: ");

	/* format= mismatches. */
	in_dir(f, sizeof(f), "plain.raw");
	write_file(f, "just some raw bytes, no magic", 29);
	snprintf(text, sizeof(text), "file=%s,format=qcow2", f);
	expect_open_error(text, "Image is not in qcow2 format");
	in_dir(f, sizeof(f), "fresh.qcow2");
	snprintf(text, sizeof(text), "file=%s,format=vmdk", f);
	expect_open_error(text, "a qcow2 image, not vmdk (format=vmdk)");
}
END_TEST

/* As an unprivileged user (the test runs in its own forked process). */
START_TEST(permission_denied)
{
	char f[128], text[256];

	if (geteuid() == 0) {
		in_dir(f, sizeof(f), "secret.raw");
		write_file(f, "x", 1);
		ck_assert_int_eq(chmod(f, 0600), 0);
		in_dir(f, sizeof(f), "secret.qcow2");
		if (have("qemu-img", "qemu-utils", "permission_denied"))
			qemu_img_create("qcow2", f, "1M");
		ck_assert_int_eq(chmod(f, 0600), 0);
		in_dir(f, sizeof(f), "public.raw");
		write_file(f, "x", 1);
		ck_assert_int_eq(chmod(f, 0444), 0);
		/* Effective ids only: the fixture removes root's files. */
		ck_assert_int_eq(setegid(65534), 0);
		ck_assert_int_eq(seteuid(65534), 0);
	} else {
		fprintf(stderr, "test_block_image: permission_denied runs "
			"only as root (it drops to nobody)\n");
		return;
	}
	in_dir(f, sizeof(f), "secret.raw");
	snprintf(text, sizeof(text), "file=%s,format=raw", f);
	expect_open_error(text, "secret.raw: Permission denied");
	in_dir(f, sizeof(f), "public.raw");
	snprintf(text, sizeof(text), "file=%s,format=raw", f);
	expect_open_error(text, "Permission denied (readonly=on opens it "
			  "read-only)");
	in_dir(f, sizeof(f), "secret.qcow2");
	snprintf(text, sizeof(text), "file=%s,format=qcow2", f);
	expect_open_error(text, "Permission denied");
	ck_assert_int_eq(seteuid(0), 0);
	ck_assert_int_eq(setegid(0), 0);
}
END_TEST

static void fake_daemon(const char *script)
{
	char bin[128], path[512];

	in_dir(bin, sizeof(bin), "qemu-storage-daemon");
	write_file(bin, script, strlen(script));
	ck_assert_int_eq(chmod(bin, 0755), 0);
	snprintf(path, sizeof(path), "%s:/usr/bin:/bin", dir);
	setenv("PATH", path, 1);
}

START_TEST(daemon_failures)
{
	char f[128], text[256], err[512], pidfile[128], script[256];
	struct drive_opts o;
	FILE *fp;
	int pid;

	in_dir(f, sizeof(f), "img.qcow2");
	write_file(f, "QFI\xfb\0\0\0\3", 8);
	snprintf(text, sizeof(text), "file=%s", f);

	/* Not installed. */
	setenv("PATH", "/nonexistent", 1);
	expect_open_error(text, "needs qemu-storage-daemon, not found in PATH "
			  "(Debian package qemu-system-common)");

	/* Exits at once: its last line is the error. */
	fake_daemon("#!/bin/sh\necho 'qemu-storage-daemon: noise' >&2\n"
		    "echo 'qemu-storage-daemon: the real reason' >&2\n"
		    "exit 1\n");
	expect_open_error(text, "img.qcow2: the real reason");

	/* Never gets ready: the deadline, and the child is gone. */
	in_dir(pidfile, sizeof(pidfile), "fake.pid");
	snprintf(script, sizeof(script), "#!/bin/sh\necho $$ > %s\n"
		 "exec sleep 30\n", pidfile);
	fake_daemon(script);
	ck_assert_int_eq(drive_opts__parse(text, &o, err, sizeof(err)), 0);
	o.start_timeout_ms = 600;
	expect_open_error_o(&o, "qemu-storage-daemon did not start within "
			    "600 ms");
	fp = fopen(pidfile, "r");
	ck_assert_ptr_nonnull(fp);
	ck_assert_int_eq(fscanf(fp, "%d", &pid), 1);
	fclose(fp);
	ck_assert_int_eq(kill(pid, 0), -1);
	ck_assert_int_eq(errno, ESRCH);

	/* An NBD socket nobody listens on. */
	expect_open_error("file=nbd+unix:///disk?socket=/nonexistent/sock",
			  "nbd+unix:///disk?socket=/nonexistent/sock: ");
}
END_TEST

/* In a process that ignores SIGCHLD (as the agent's children do) the
 * kernel reaps the daemon itself: startup, failure and stop still work. */
START_TEST(sigchld_ignored)
{
	char img[128], text[256], err[512] = "";
	static char buf[4096];
	struct block_dev *b;
	long long t0;

	if (!have("qemu-img", "qemu-utils", "sigchld_ignored") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "sigchld_ignored"))
		return;
	in_dir(img, sizeof(img), "ign.qcow2");
	qemu_img_create("qcow2", img, "1M");
	signal(SIGCHLD, SIG_IGN);
	snprintf(text, sizeof(text), "file=%s", img);
	b = open_text(text, err, sizeof(err));
	ck_assert_msg(b, "%s", err);
	memset(buf, 7, sizeof(buf));
	ck_assert_int_eq(rw(b, BLOCK_OP_WRITE, 0, buf, sizeof(buf)), 0);
	t0 = now_ms();
	block__close(b);
	ck_assert_int_lt(now_ms() - t0, 2000);
	snprintf(text, sizeof(text), "file=%s,format=vdi", img);
	expect_open_error(text, "a qcow2 image, not vdi");
	write_file(img, "QFI\xfb\0\0\0\3", 8);
	snprintf(text, sizeof(text), "file=%s", img);
	expect_open_error(text, "Unsupported cluster size");
	signal(SIGCHLD, SIG_DFL);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *su = suite_create("block_image");
	TCase *tc = tcase_create("qemu");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, qcow2_round_trip);
	tcase_add_test(tc, qcow2_read_only);
	tcase_add_test(tc, image_in_use);
	tcase_add_loop_test(tc, qcow2_cache_modes, 0, 5);
	tcase_add_loop_test(tc, other_formats, 0, 5);
	tcase_add_test(tc, nbd_uri);
	tcase_add_test(tc, daemon_dies);
	tcase_add_test(tc, bad_images);
	tcase_add_test(tc, permission_denied);
	tcase_add_test(tc, daemon_failures);
	tcase_add_test(tc, sigchld_ignored);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(image_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
