/* Files read from ext2/3/4 filesystems inside disk images
 * (storage/ext4_image.h): the drive:/PATH spelling, symlinks (relative,
 * absolute, chained, through directories, slow and inline ones, loops),
 * the partition search over MBR and GPT disks, the limits, and corrupt
 * filesystems giving one line of error.  The images are made at test time
 * with mke2fs -d (and sfdisk for the tables) in /tmp; the tests say SKIP
 * and pass when those tools are missing (.ci/install-deps.sh installs
 * them).  The last test reads through storage/block.h, raw and qcow2. */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "storage/drive_opts.h"
#include "storage/ext4_image.h"

static char dir[64];
static char err[1024], info[1024];

static void setup(void)
{
	strcpy(dir, "/tmp/krg-test-ext4.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(dir));
}

static void teardown(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "test_ext4_image: cannot remove %s\n", dir);
}

static bool have(const char *tool, const char *package, const char *test)
{
	char cmd[160];

	snprintf(cmd, sizeof(cmd), "command -v %s >/dev/null 2>&1", tool);
	if (system(cmd) == 0)
		return true;
	fprintf(stderr, "test_ext4_image: SKIP %s: %s not installed (Debian "
		"package %s)\n", test, tool, package);
	return false;
}

/* Runs a shell command in dir, quietly; must succeed. */
static void sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void sh(const char *fmt, ...)
{
	char cmd[4096];
	va_list ap;
	int n = snprintf(cmd, sizeof(cmd), "cd '%s' && (", dir);

	va_start(ap, fmt);
	n += vsnprintf(cmd + n, sizeof(cmd) - n, fmt, ap);
	va_end(ap);
	snprintf(cmd + n, sizeof(cmd) - n, ") >/dev/null 2>&1");
	ck_assert_msg(system(cmd) == 0, "failed: %s", cmd);
}

/* The source tree every filesystem gets. */
static void make_tree(void)
{
	sh("mkdir -p src/boot src/dir/sub src/empty_dir && "
	   "printf 'hello, world\\n' >src/hello && "
	   "head -c 3145739 /dev/urandom >src/boot/big && "
	   ": >src/empty && mkfifo src/fifo && "
	   "printf 'deep\\n' >src/dir/sub/file && "
	   "ln -s boot/big src/vmlinuz && "              /* relative */
	   "ln -s /dir/sub/file src/abs && "             /* absolute */
	   "ln -s dir src/ldir && "                      /* a directory */
	   "ln -s ../hello src/dir/up && "               /* .. */
	   "ln -s c src/b && ln -s b src/a && ln -s dir/sub/file src/c && "
	   "ln -s loop2 src/loop1 && ln -s loop1 src/loop2 && "
	   "ln -s self src/self && "
	   "ln -s nowhere src/dangling && "
	   "ln -s /hello src/dir/sub/back && "
	   /* A slow symlink: its target does not fit in the inode. */
	   "mkdir -p src/a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast && "
	   "printf slow >src/a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast/f && "
	   "ln -s a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast/f src/slow && "
	   /* A file with a hole. */
	   "printf A >src/sparse && truncate -s 1M src/sparse && printf Z >>src/sparse");
}

struct file_disk {
	int fd;
};

static int file_read(void *ctx, uint64_t off, void *buf, size_t len,
		     char *e, size_t elen)
{
	struct file_disk *d = ctx;
	ssize_t n = pread(d->fd, buf, len, (off_t)off);

	if (n != (ssize_t)len) {
		snprintf(e, elen, "pread at %llu: %s", (unsigned long long)off,
			 n < 0 ? strerror(errno) : "short");
		return -1;
	}
	return 0;
}

static struct file_disk fdisk_;
static struct ext4_disk disk;
static uint8_t *buf;
static size_t len;

static void open_disk(const char *name)
{
	char path[128];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fdisk_.fd = open(path, O_RDONLY);
	ck_assert_int_ge(fdisk_.fd, 0);
	ck_assert_int_eq(fstat(fdisk_.fd, &st), 0);
	disk = (struct ext4_disk){ file_read, &fdisk_, (uint64_t)st.st_size };
}

static void close_disk(void)
{
	close(fdisk_.fd);
	free(buf);
	buf = NULL;
}

/* Reads path with read_disk (the partition search) into buf. */
static int rd(const char *spec, uint64_t max)
{
	struct drive_path p;

	free(buf);
	buf = NULL;
	err[0] = info[0] = '\0';
	ck_assert_int_eq(ext4_image__parse_spec(spec, &p, err, sizeof(err)), 0);
	return ext4_image__read_disk(&disk, &p, max, &buf, &len, info,
				     sizeof(info), err, sizeof(err));
}

static void expect_file(const char *spec, const char *host_file)
{
	char path[256];
	struct stat st;
	uint8_t *want;
	FILE *f;

	ck_assert_msg(rd(spec, 64 << 20) == 0, "%s: %s", spec, err);
	snprintf(path, sizeof(path), "%s/src/%s", dir, host_file);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(len, (size_t)st.st_size);
	want = malloc(len);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(want, 1, len, f), len);
	fclose(f);
	ck_assert_msg(!memcmp(want, buf, len), "%s: content differs", spec);
	free(want);
}

static void expect_fail(const char *spec, const char *msg)
{
	ck_assert_msg(rd(spec, 64 << 20) == -1, "%s was read", spec);
	ck_assert_msg(strstr(err, msg), "%s: error '%s' lacks '%s'", spec, err,
		      msg);
	ck_assert_ptr_null(strchr(err, '\n'));
	ck_assert_ptr_null(buf);
}

static void mkfs_whole(const char *name, const char *opts)
{
	sh("truncate -s 16M %s && mke2fs -q -F %s -d src %s", name, opts, name);
}

START_TEST(spec_parsing)
{
	struct drive_path p;
	static const char *bad[] = {
		"drive:", "drive:rel", "drive01:/a", "drive100:/a", "drive:p0:/a",
		"drive:p129:/a", "drive:p1/a", "drive:p:/a", "drive:px:/a",
		"drive:p01:/a", "drivex:/a", "file.img",
	};

	ck_assert(ext4_image__is_spec("drive:/x"));
	ck_assert(ext4_image__is_spec("drive12:p3:/x"));
	ck_assert(ext4_image__is_spec("drive:oops"));
	ck_assert(!ext4_image__is_spec("./drive:/x"));
	ck_assert(!ext4_image__is_spec("/boot/drive:/x"));
	ck_assert(!ext4_image__is_spec("drivex:/x"));
	ck_assert(!ext4_image__is_spec("drive"));
	ck_assert(!ext4_image__is_spec(NULL));

	ck_assert_int_eq(ext4_image__parse_spec("drive:/vmlinuz", &p, err,
						sizeof(err)), 0);
	ck_assert_uint_eq(p.drive, 0);
	ck_assert_uint_eq(p.part, 0);
	ck_assert_str_eq(p.path, "/vmlinuz");
	ck_assert_int_eq(ext4_image__parse_spec("drive1:/a/b", &p, err,
						sizeof(err)), 0);
	ck_assert_uint_eq(p.drive, 1);
	ck_assert_int_eq(ext4_image__parse_spec("drive0:p2:/x", &p, err,
						sizeof(err)), 0);
	ck_assert_uint_eq(p.drive, 0);
	ck_assert_uint_eq(p.part, 2);
	ck_assert_int_eq(ext4_image__parse_spec("drive99:p128:/", &p, err,
						sizeof(err)), 0);
	ck_assert_uint_eq(p.drive, 99);
	ck_assert_uint_eq(p.part, 128);
	for (unsigned i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = '\0';
		ck_assert_msg(ext4_image__parse_spec(bad[i], &p, err,
						     sizeof(err)) == -1,
			      "'%s' accepted", bad[i]);
		ck_assert_msg(strstr(err, bad[i]), "'%s': %s", bad[i], err);
		ck_assert_ptr_null(strchr(err, '\n'));
	}
	{
		char *longp = malloc(EXT4_PATH_MAX + 16);

		strcpy(longp, "drive:/");
		memset(longp + 7, 'a', EXT4_PATH_MAX);
		longp[EXT4_PATH_MAX + 7] = '\0';
		ck_assert_int_eq(ext4_image__parse_spec(longp, &p, err,
							sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "longer than"));
		free(longp);
	}
}
END_TEST

START_TEST(whole_disk_files_and_links)
{
	if (!have("mke2fs", "e2fsprogs", "whole_disk_files_and_links"))
		return;
	make_tree();
	mkfs_whole("fs.img", "-t ext4");
	open_disk("fs.img");
	expect_file("drive:/hello", "hello");
	ck_assert_str_eq(info, "the whole disk (ext4, /hello)");
	expect_file("drive:/boot/big", "boot/big");
	expect_file("drive:/vmlinuz", "boot/big");
	ck_assert_str_eq(info, "the whole disk (ext4, /boot/big)");
	expect_file("drive:/abs", "dir/sub/file");
	expect_file("drive:/a", "dir/sub/file");
	ck_assert_str_eq(info, "the whole disk (ext4, /dir/sub/file)");
	expect_file("drive:/ldir/sub/file", "dir/sub/file");
	expect_file("drive:/dir/up", "hello");
	expect_file("drive:/dir/sub/back", "hello");
	expect_file("drive:/slow", "a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast/f");
	expect_file("drive://dir//./sub/../sub/file", "dir/sub/file");
	expect_file("drive:/sparse", "sparse");
	ck_assert_uint_eq(buf[0], 'A');
	ck_assert_uint_eq(buf[1 << 19], 0);
	ck_assert_uint_eq(buf[len - 1], 'Z');
	close_disk();
}
END_TEST

START_TEST(bad_paths)
{
	if (!have("mke2fs", "e2fsprogs", "bad_paths"))
		return;
	make_tree();
	mkfs_whole("fs.img", "-t ext4");
	open_disk("fs.img");
	expect_fail("drive:/boot", "the whole disk: /boot is a directory");
	expect_fail("drive:/ldir", "is a directory");
	expect_fail("drive:/", "/ is a directory");
	expect_fail("drive:/nope", "/nope: no such file");
	expect_fail("drive:/dir/sub/nope", "/dir/sub/nope: no such file");
	expect_fail("drive:/dangling", "/nowhere: no such file");
	expect_fail("drive:/hello/x", "/hello is not a directory");
	expect_fail("drive:/loop1", "too many levels of symbolic links");
	expect_fail("drive:/self", "too many levels of symbolic links");
	expect_fail("drive:/fifo", "/fifo is not a regular file");
	expect_fail("drive:/empty", "/empty is empty");
	/* The size limit: exactly the size is fine, a byte less is not. */
	ck_assert_int_eq(rd("drive:/boot/big", 3145739), 0);
	ck_assert_int_eq(rd("drive:/vmlinuz", 3145738), -1);
	ck_assert_msg(strstr(err, "/boot/big is 3145739 bytes, more than the "
			     "limit of 3145738"), "%s", err);
	ck_assert_ptr_null(buf);
	/* A name longer than ext4 allows. */
	{
		char spec[400] = "drive:/";

		memset(spec + 7, 'n', 300);
		expect_fail(spec, "no such file");
	}
	close_disk();
}
END_TEST

START_TEST(ext2_ext3_inline)
{
	if (!have("mke2fs", "e2fsprogs", "ext2_ext3_inline"))
		return;
	make_tree();
	mkfs_whole("e2.img", "-t ext2");
	open_disk("e2.img");
	expect_file("drive:/vmlinuz", "boot/big");
	ck_assert_str_eq(info, "the whole disk (ext2, /boot/big)");
	expect_file("drive:/slow", "a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast/f");
	close_disk();
	mkfs_whole("e3.img", "-t ext3");
	open_disk("e3.img");
	expect_file("drive:/a", "dir/sub/file");
	ck_assert_str_eq(info, "the whole disk (ext3, /dir/sub/file)");
	close_disk();
	/* As after a crash: read anyway, and say the journal was not
	 * replayed. */
	sh("debugfs -w -R 'feature needs_recovery' e3.img");
	open_disk("e3.img");
	expect_file("drive:/a", "dir/sub/file");
	ck_assert_str_eq(info, "the whole disk (ext3, /dir/sub/file, journal "
			 "not replayed)");
	close_disk();
	/* Small files and long symlinks kept inside their inodes. */
	mkfs_whole("inline.img", "-t ext4 -I 256 -O inline_data");
	open_disk("inline.img");
	expect_file("drive:/hello", "hello");
	expect_file("drive:/slow", "a_directory_with_a_rather_long_name_so_that_the_symlink_to_it_is_not_fast/f");
	expect_file("drive:/vmlinuz", "boot/big");
	close_disk();
}
END_TEST

START_TEST(partitions_mbr_gpt)
{
	if (!have("mke2fs", "e2fsprogs", "partitions_mbr_gpt") ||
	    !have("sfdisk", "fdisk", "partitions_mbr_gpt"))
		return;
	make_tree();
	/* MBR: p1 holds junk, p2 an ext4 with the files, p3 an empty ext4. */
	sh("truncate -s 48M mbr.img && printf 'label: dos\\n"
	   "start=2048, size=8192, type=c\\nstart=10240, size=40960, type=83\\n"
	   "start=51200, type=83\\n' | sfdisk -q mbr.img && "
	   "head -c 1M /dev/urandom | dd of=mbr.img bs=1M seek=1 conv=notrunc && "
	   "mke2fs -q -F -t ext4 -b 4096 -E offset=%d -d src mbr.img 20M && "
	   "mkdir -p none && mke2fs -q -F -t ext4 -E offset=%d -d none mbr.img 4M",
	   10240 * 512, 51200 * 512);
	open_disk("mbr.img");
	expect_file("drive:/vmlinuz", "boot/big");
	ck_assert_str_eq(info, "partition 2 (ext4, /boot/big)");
	expect_file("drive:p2:/hello", "hello");
	expect_fail("drive:p1:/hello", "partition 1: not an ext2/3/4 filesystem");
	expect_fail("drive:p3:/hello", "partition 3: /hello: no such file");
	expect_fail("drive:p4:/hello", "there is no partition 4 (MBR with 3 partitions)");
	expect_fail("drive:/nope", "no ext2/3/4 filesystem holds /nope (MBR: "
		    "partition 1 (not ext2/3/4), partition 2, partition 3)");
	expect_fail("drive:/boot", "partition 2: /boot is a directory");
	close_disk();

	/* GPT, the filesystem in partition 2 of 2. */
	sh("truncate -s 32M gpt.img && printf 'label: gpt\\n"
	   "start=2048, size=4096\\nstart=8192, size=40960\\n' | sfdisk -q gpt.img && "
	   "mke2fs -q -F -t ext4 -E offset=%d -d src gpt.img 20M", 8192 * 512);
	open_disk("gpt.img");
	expect_file("drive:/abs", "dir/sub/file");
	ck_assert_str_eq(info, "partition 2 (ext4, /dir/sub/file)");
	close_disk();

	/* No filesystem anywhere. */
	sh("truncate -s 8M zero.img");
	open_disk("zero.img");
	expect_fail("drive:/x", "no partition table, and the whole disk is "
		    "not an ext2/3/4 filesystem");
	expect_fail("drive:p1:/x", "there is no partition 1 (no partition table)");
	close_disk();
}
END_TEST

/* A filesystem larger than its partition: libext2fs is never given bytes
 * past the partition's end (the next partition's). */
START_TEST(filesystem_past_partition)
{
	if (!have("mke2fs", "e2fsprogs", "filesystem_past_partition") ||
	    !have("sfdisk", "fdisk", "filesystem_past_partition"))
		return;
	make_tree();
	sh("truncate -s 32M p.img && "
	   "mke2fs -q -F -t ext4 -E offset=%d -d src p.img 24M && "
	   "printf 'label: dos\\nstart=2048, size=8192, type=83\\n' | "
	   "sfdisk -q p.img", 2048 * 512);
	open_disk("p.img");
	ck_assert_int_eq(rd("drive:/boot/big", 64 << 20), -1);
	ck_assert_msg(strstr(err, "beyond its 4194304-byte partition"), "%s",
		      err);
	close_disk();
}
END_TEST

struct mem_disk {
	uint8_t *buf;
	uint64_t len;
};

static int mem_read(void *ctx, uint64_t off, void *out, size_t n, char *e,
		    size_t elen)
{
	struct mem_disk *d = ctx;

	ck_assert(off <= d->len && n <= d->len - off);
	memcpy(out, d->buf + off, n);
	return 0;
}

/* Corruption: a broken superblock checksum is a clear error; random bytes
 * in the metadata give an error or a file, never a crash. */
START_TEST(corrupt_filesystems)
{
	struct mem_disk md;
	struct ext4_disk d;
	struct drive_path p;
	char path[128];
	unsigned seed = 4242, found = 0, failed = 0;
	FILE *f;

	if (!have("mke2fs", "e2fsprogs", "corrupt_filesystems"))
		return;
	make_tree();
	sh("rm -f src/boot/big src/sparse && truncate -s 4M small.img && "
	   "mke2fs -q -F -t ext4 -b 1024 -d src small.img");
	snprintf(path, sizeof(path), "%s/small.img", dir);
	md.len = 4 << 20;
	md.buf = malloc(md.len);
	f = fopen(path, "rb");
	ck_assert_ptr_nonnull(f);
	ck_assert_uint_eq(fread(md.buf, 1, md.len, f), md.len);
	fclose(f);
	d = (struct ext4_disk){ mem_read, &md, md.len };

	/* The superblock (at 1024) with a wrong checksum. */
	md.buf[1024 + 0x3FC] ^= 0x55;
	ck_assert_int_eq(ext4_image__parse_spec("drive:/a", &p, err,
						sizeof(err)), 0);
	ck_assert_int_eq(ext4_image__read_disk(&d, &p, 1 << 20, &buf, &len,
					       NULL, 0, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "the whole disk: corrupt ext2/3/4 "
			     "filesystem: "), "%s", err);
	ck_assert_msg(strstr(err, "checksum"), "%s", err);
	md.buf[1024 + 0x3FC] ^= 0x55;
	ck_assert_int_eq(ext4_image__read_disk(&d, &p, 1 << 20, &buf, &len,
					       NULL, 0, err, sizeof(err)), 0);
	free(buf);
	buf = NULL;

	{
		uint8_t *orig = malloc(md.len);

		memcpy(orig, md.buf, md.len);
		for (unsigned round = 0; round < 400; round++) {
			unsigned flips = 1 + rand_r(&seed) % 16;

			memcpy(md.buf, orig, 512 << 10);
			for (unsigned i = 0; i < flips; i++) {
				/* The first 512 KiB: superblock, group
				 * descriptors, bitmaps, inode table, the
				 * first directories and files. */
				unsigned off = rand_r(&seed) % (512 << 10);

				md.buf[off] = (uint8_t)rand_r(&seed);
			}
			err[0] = '\0';
			if (ext4_image__read_disk(&d, &p, 1 << 20, &buf, &len,
						  NULL, 0, err,
						  sizeof(err)) == 0) {
				found++;
				free(buf);
				buf = NULL;
			} else {
				failed++;
				ck_assert_uint_gt(strlen(err), 0);
				ck_assert_ptr_null(strchr(err, '\n'));
			}
		}
		free(orig);
	}
	ck_assert_uint_gt(found, 10);
	ck_assert_uint_gt(failed, 10);
	free(md.buf);
}
END_TEST

/* Through the block layer: a raw image and its qcow2 copy. */
START_TEST(through_block_layer)
{
	struct drive_opts drives[2];
	char e[256];

	if (!have("mke2fs", "e2fsprogs", "through_block_layer") ||
	    !have("sfdisk", "fdisk", "through_block_layer"))
		return;
	make_tree();
	sh("truncate -s 24M d.raw && printf 'label: dos\\nstart=2048, type=83\\n' "
	   "| sfdisk -q d.raw && mke2fs -q -F -t ext4 -E offset=1048576 -d src "
	   "d.raw 20M");
	snprintf(e, sizeof(e), "file=%s/d.raw,format=raw,cache=none", dir);
	ck_assert_int_eq(drive_opts__parse(e, &drives[0], err, sizeof(err)), 0);
	ck_assert_int_eq(ext4_image__read_spec(drives, 1, "kernel",
					       "drive:/vmlinuz", 64 << 20,
					       &buf, &len, info, sizeof(info),
					       err, sizeof(err)), 0);
	ck_assert_uint_eq(len, 3145739);
	ck_assert_str_eq(info, "-drive 0 partition 1 (ext4, /boot/big)");
	free(buf);
	buf = NULL;
	ck_assert_int_eq(ext4_image__read_spec(drives, 1, "initrd",
					       "drive1:/vmlinuz", 64 << 20,
					       &buf, &len, info, sizeof(info),
					       err, sizeof(err)), -1);
	ck_assert_str_eq(err, "initrd 'drive1:/vmlinuz': there is no -drive 1 "
			 "(1 given)");
	ck_assert_int_eq(ext4_image__read_spec(drives, 1, "kernel",
					       "drive:/nope", 64 << 20,
					       &buf, &len, info, sizeof(info),
					       err, sizeof(err)), -1);
	ck_assert_str_eq(err, "kernel 'drive:/nope': -drive 0: partition 1: "
			 "/nope: no such file");
	snprintf(e, sizeof(e), "file=%s/missing.raw,format=raw", dir);
	ck_assert_int_eq(drive_opts__parse(e, &drives[1], err, sizeof(err)), 0);
	ck_assert_int_eq(ext4_image__read_spec(drives, 2, "kernel",
					       "drive1:/x", 64 << 20, &buf,
					       &len, NULL, 0, err,
					       sizeof(err)), -1);
	ck_assert_msg(strstr(err, "kernel 'drive1:/x': -drive 1: "), "%s", err);
	ck_assert_ptr_null(strchr(err, '\n'));

	if (!have("qemu-img", "qemu-utils", "through_block_layer (qcow2)") ||
	    !have("qemu-storage-daemon", "qemu-system-common",
		  "through_block_layer (qcow2)"))
		return;
	sh("qemu-img convert -f raw -O qcow2 d.raw d.qcow2");
	snprintf(e, sizeof(e), "file=%s/d.qcow2", dir);
	ck_assert_int_eq(drive_opts__parse(e, &drives[1], err, sizeof(err)), 0);
	ck_assert_int_eq(ext4_image__read_spec(drives, 2, "kernel",
					       "drive1:p1:/a", 64 << 20, &buf,
					       &len, info, sizeof(info), err,
					       sizeof(err)), 0);
	ck_assert_uint_eq(len, 5);
	ck_assert(!memcmp(buf, "deep\n", 5));
	ck_assert_str_eq(info, "-drive 1 partition 1 (ext4, /dir/sub/file)");
	free(buf);
	buf = NULL;
}
END_TEST

static Suite *ext4_image_suite(void)
{
	Suite *su = suite_create("ext4_image");
	TCase *tc = tcase_create("read");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, spec_parsing);
	tcase_add_test(tc, whole_disk_files_and_links);
	tcase_add_test(tc, bad_paths);
	tcase_add_test(tc, ext2_ext3_inline);
	tcase_add_test(tc, partitions_mbr_gpt);
	tcase_add_test(tc, filesystem_past_partition);
	tcase_add_test(tc, corrupt_filesystems);
	tcase_add_test(tc, through_block_layer);
	tcase_set_timeout(tc, 120);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(ext4_image_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
