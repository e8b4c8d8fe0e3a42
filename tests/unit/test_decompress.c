/* Decompressors: every format round-trips data compressed by its own
 * library (in memory), and truncated, corrupt or oversized streams fail
 * cleanly. */
#include <bzlib.h>
#include <check.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "guestfw/decompress.h"

struct blob {
	uint8_t *p;
	size_t n;
};

/* Compressible but not trivial: text runs mixed with LCG noise. */
static struct blob make_data(size_t n, uint32_t seed)
{
	static const char words[] = "the quick brown vmm boots a kernel ";
	struct blob b = { malloc(n), n };
	uint32_t x = seed;

	ck_assert_ptr_nonnull(b.p);
	for (size_t i = 0; i < n; i++) {
		x = x * 1103515245u + 12345u;
		b.p[i] = (x >> 28) < 12 ? (uint8_t)words[i % (sizeof(words) - 1)]
					: (uint8_t)(x >> 16);
	}
	return b;
}

static void put_le32(uint8_t *p, uint32_t v)
{
	for (int i = 0; i < 4; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static struct blob c_gzip(const struct blob *in)
{
	z_stream zs;
	struct blob o;

	memset(&zs, 0, sizeof(zs));
	ck_assert_int_eq(deflateInit2(&zs, 9, Z_DEFLATED, 16 + MAX_WBITS, 8,
				      Z_DEFAULT_STRATEGY), Z_OK);
	o.n = deflateBound(&zs, in->n) + 64;
	o.p = malloc(o.n);
	zs.next_in = in->p;
	zs.avail_in = (uInt)in->n;
	zs.next_out = o.p;
	zs.avail_out = (uInt)o.n;
	ck_assert_int_eq(deflate(&zs, Z_FINISH), Z_STREAM_END);
	o.n = zs.total_out;
	deflateEnd(&zs);
	return o;
}

/* As the kernel's xz_wrap.sh: BCJ x86 + LZMA2 in an .xz container. */
static struct blob c_xz(const struct blob *in)
{
	lzma_options_lzma opt;
	lzma_filter f[3];
	struct blob o;
	size_t pos = 0;

	ck_assert(!lzma_lzma_preset(&opt, 6));
	f[0].id = LZMA_FILTER_X86;
	f[0].options = NULL;
	f[1].id = LZMA_FILTER_LZMA2;
	f[1].options = &opt;
	f[2].id = LZMA_VLI_UNKNOWN;
	o.n = lzma_stream_buffer_bound(in->n);
	o.p = malloc(o.n);
	ck_assert_int_eq(lzma_stream_buffer_encode(f, LZMA_CHECK_CRC32, NULL,
						   in->p, in->n, o.p, &pos, o.n),
			 LZMA_OK);
	o.n = pos;
	return o;
}

static struct blob c_lzma(const struct blob *in)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_options_lzma opt;
	struct blob o;

	ck_assert(!lzma_lzma_preset(&opt, 6));
	ck_assert_int_eq(lzma_alone_encoder(&s, &opt), LZMA_OK);
	o.n = in->n + in->n / 2 + 4096;
	o.p = malloc(o.n);
	s.next_in = in->p;
	s.avail_in = in->n;
	s.next_out = o.p;
	s.avail_out = o.n;
	ck_assert_int_eq(lzma_code(&s, LZMA_FINISH), LZMA_STREAM_END);
	o.n = s.total_out;
	lzma_end(&s);
	return o;
}

static struct blob c_zstd(const struct blob *in)
{
	ZSTD_CCtx *c = ZSTD_createCCtx();
	struct blob o;

	/* With a checksum, so corruption is detectable. */
	ZSTD_CCtx_setParameter(c, ZSTD_c_checksumFlag, 1);
	o.n = ZSTD_compressBound(in->n);
	o.p = malloc(o.n);
	o.n = ZSTD_compress2(c, o.p, o.n, in->p, in->n);
	ck_assert(!ZSTD_isError(o.n));
	ZSTD_freeCCtx(c);
	return o;
}

/* lz4 -l: magic, then 8 MiB blocks each preceded by its compressed size. */
static struct blob c_lz4_legacy(const struct blob *in)
{
	const size_t blk = 8u << 20;
	struct blob o;
	size_t pos = 4;

	o.n = 4 + (in->n / blk + 1) * (4 + (size_t)LZ4_compressBound((int)blk));
	o.p = malloc(o.n);
	put_le32(o.p, 0x184C2102u);
	for (size_t off = 0; off < in->n; off += blk) {
		size_t len = in->n - off < blk ? in->n - off : blk;
		int c = LZ4_compress_default((const char *)in->p + off,
					     (char *)o.p + pos + 4, (int)len,
					     LZ4_compressBound((int)len));

		ck_assert_int_gt(c, 0);
		put_le32(o.p + pos, (uint32_t)c);
		pos += 4 + (size_t)c;
	}
	o.n = pos;
	return o;
}

static struct blob c_lz4_frame(const struct blob *in)
{
	LZ4F_preferences_t prefs;
	struct blob o;

	memset(&prefs, 0, sizeof(prefs));
	prefs.frameInfo.contentChecksumFlag = LZ4F_contentChecksumEnabled;
	o.n = LZ4F_compressFrameBound(in->n, &prefs);
	o.p = malloc(o.n);
	o.n = LZ4F_compressFrame(o.p, o.n, in->p, in->n, &prefs);
	ck_assert(!LZ4F_isError(o.n));
	return o;
}

static struct blob c_bzip2(const struct blob *in)
{
	struct blob o;
	unsigned dlen;

	o.n = in->n + in->n / 100 + 1024;
	o.p = malloc(o.n);
	dlen = (unsigned)o.n;
	ck_assert_int_eq(BZ2_bzBuffToBuffCompress((char *)o.p, &dlen,
						  (char *)in->p, (unsigned)in->n,
						  9, 0, 0), BZ_OK);
	o.n = dlen;
	return o;
}

static const struct {
	int fmt;
	struct blob (*compress)(const struct blob *);
	const char *name;
} fmts[] = {
	{ DECOMP_GZIP, c_gzip, "gzip" },
	{ DECOMP_XZ, c_xz, "xz" },
	{ DECOMP_LZMA, c_lzma, "lzma" },
	{ DECOMP_ZSTD, c_zstd, "zstd" },
	{ DECOMP_LZ4_LEGACY, c_lz4_legacy, "lz4" },
	{ DECOMP_LZ4_FRAME, c_lz4_frame, "lz4-frame" },
	{ DECOMP_BZIP2, c_bzip2, "bzip2" },
};
#define NR_FMTS ((int)(sizeof(fmts) / sizeof(fmts[0])))

START_TEST(roundtrip)
{
	struct blob d = make_data(300000, 7 + (uint32_t)_i);
	struct blob c = fmts[_i].compress(&d);
	uint8_t *out;
	size_t out_len;
	char err[256] = "";

	ck_assert_int_eq(decompress__detect(c.p, c.n), fmts[_i].fmt);
	ck_assert_str_eq(decompress__name(fmts[_i].fmt), fmts[_i].name);
	ck_assert_msg(decompress__run(fmts[_i].fmt, c.p, c.n, &out, &out_len,
				      DECOMPRESS_MAX_OUT, err, sizeof(err)) == 0,
		      "%s: %s", fmts[_i].name, err);
	ck_assert_uint_eq(out_len, d.n);
	ck_assert(!memcmp(out, d.p, d.n));
	free(out);
	free(c.p);
	free(d.p);
}
END_TEST

/* The kernel appends the uncompressed size after the stream: decoders must
 * stop at the stream's end and ignore it. */
START_TEST(roundtrip_with_size_trailer)
{
	struct blob d = make_data(100000, 99);
	struct blob c = fmts[_i].compress(&d);
	uint8_t *k = malloc(c.n + 4), *out;
	size_t out_len;
	char err[256] = "";

	memcpy(k, c.p, c.n);
	put_le32(k + c.n, (uint32_t)d.n);
	ck_assert_msg(decompress__run(fmts[_i].fmt, k, c.n + 4, &out, &out_len,
				      d.n, err, sizeof(err)) == 0,
		      "%s: %s", fmts[_i].name, err);
	ck_assert_uint_eq(out_len, d.n);
	ck_assert(!memcmp(out, d.p, d.n));
	free(out);
	free(k);
	free(c.p);
	free(d.p);
}
END_TEST

START_TEST(truncated_fails)
{
	struct blob d = make_data(200000, 3);
	struct blob c = fmts[_i].compress(&d);
	uint8_t *out = (uint8_t *)1;
	size_t out_len = 1;
	char err[256] = "";

	/* A truncated copy in its own allocation: ASan catches overreads. */
	size_t n = c.n / 2;
	uint8_t *t = malloc(n);

	memcpy(t, c.p, n);
	ck_assert_int_eq(decompress__run(fmts[_i].fmt, t, n, &out, &out_len,
					 DECOMPRESS_MAX_OUT, err, sizeof(err)), -1);
	ck_assert_ptr_null(out);
	ck_assert_uint_eq(out_len, 0);
	ck_assert_msg(strstr(err, "truncated") != NULL, "%s: %s",
		      fmts[_i].name, err);
	ck_assert_msg(strncmp(err, fmts[_i].name, strlen(fmts[_i].name)) == 0,
		      "%s", err);
	free(t);
	free(c.p);
	free(d.p);
}
END_TEST

START_TEST(corrupt_fails)
{
	struct blob d = make_data(200000, 5);
	struct blob c = fmts[_i].compress(&d);
	uint8_t *out;
	size_t out_len;
	char err[256] = "";
	int rc;

	/* Scramble a run of bytes in the middle of the stream. */
	for (size_t i = c.n / 2; i < c.n / 2 + 16; i++)
		c.p[i] ^= 0x5A;
	if (fmts[_i].fmt == DECOMP_LZ4_LEGACY)
		put_le32(c.p + 4, 0x7FFFFFF0u); /* first block's size */
	rc = decompress__run(fmts[_i].fmt, c.p, c.n, &out, &out_len,
			     DECOMPRESS_MAX_OUT, err, sizeof(err));
	ck_assert_msg(rc == -1, "%s: corruption not detected", fmts[_i].name);
	ck_assert_msg(strstr(err, "corrupt") || strstr(err, "truncated"),
		      "%s: %s", fmts[_i].name, err);
	free(c.p);
	free(d.p);
}
END_TEST

START_TEST(size_limit)
{
	struct blob d = make_data(150000, 11);
	struct blob c = fmts[_i].compress(&d);
	uint8_t *out;
	size_t out_len;
	char err[256] = "";

	/* Exactly the size is fine, one byte less is refused. */
	ck_assert_msg(decompress__run(fmts[_i].fmt, c.p, c.n, &out, &out_len,
				      d.n, err, sizeof(err)) == 0,
		      "%s: %s", fmts[_i].name, err);
	ck_assert_uint_eq(out_len, d.n);
	free(out);
	ck_assert_int_eq(decompress__run(fmts[_i].fmt, c.p, c.n, &out, &out_len,
					 d.n - 1, err, sizeof(err)), -1);
	ck_assert_msg(strstr(err, "exceeds") != NULL, "%s: %s", fmts[_i].name,
		      err);
	ck_assert_ptr_null(out);
	free(c.p);
	free(d.p);
}
END_TEST

/* Random bytes behind a valid magic must fail without crashing. */
START_TEST(garbage_after_magic)
{
	struct blob d = make_data(64, 1);
	struct blob c = fmts[_i].compress(&d);
	size_t hdr = fmts[_i].fmt == DECOMP_LZMA ? 13 :
		     fmts[_i].fmt == DECOMP_XZ ? 6 : 4;
	uint8_t *g = malloc(4096), *out;
	size_t out_len;
	uint32_t x = 12345;
	char err[256] = "";

	memcpy(g, c.p, hdr);
	for (size_t i = hdr; i < 4096; i++) {
		x = x * 1664525u + 1013904223u;
		g[i] = (uint8_t)(x >> 24);
	}
	ck_assert_int_eq(decompress__run(fmts[_i].fmt, g, 4096, &out, &out_len,
					 1u << 20, err, sizeof(err)), -1);
	ck_assert(err[0] != 0);
	free(g);
	free(c.p);
	free(d.p);
}
END_TEST

START_TEST(lz4_legacy_multi_block)
{
	/* Over 8 MiB: two legacy blocks. */
	struct blob d = make_data((9u << 20) + 123, 42);
	struct blob c = c_lz4_legacy(&d);
	uint8_t *out;
	size_t out_len;
	char err[256] = "";

	ck_assert_int_eq(decompress__run(DECOMP_LZ4_LEGACY, c.p, c.n, &out,
					 &out_len, DECOMPRESS_MAX_OUT, err,
					 sizeof(err)), 0);
	ck_assert_uint_eq(out_len, d.n);
	ck_assert(!memcmp(out, d.p, d.n));
	free(out);
	free(c.p);
	free(d.p);
}
END_TEST

START_TEST(detect_and_wrong_format)
{
	static const uint8_t elf[] = { 0x7F, 'E', 'L', 'F', 2, 1, 1, 0 };
	struct blob d = make_data(1000, 2);
	struct blob c = c_gzip(&d);
	uint8_t *out;
	size_t out_len;
	char err[256] = "";

	ck_assert_int_eq(decompress__detect(elf, sizeof(elf)), DECOMP_UNKNOWN);
	ck_assert_int_eq(decompress__detect(c.p, 0), DECOMP_UNKNOWN);
	ck_assert_int_eq(decompress__detect(c.p, 2), DECOMP_UNKNOWN);
	ck_assert_int_eq(decompress__detect((const uint8_t *)"BZh9", 4),
			 DECOMP_BZIP2);
	ck_assert_int_eq(decompress__detect((const uint8_t *)"BZh0", 4),
			 DECOMP_UNKNOWN);
	/* gzip data handed to the xz decoder is refused up front. */
	ck_assert_int_eq(decompress__run(DECOMP_XZ, c.p, c.n, &out, &out_len,
					 DECOMPRESS_MAX_OUT, err, sizeof(err)), -1);
	ck_assert(strstr(err, "magic") != NULL);
	ck_assert_int_eq(decompress__run(DECOMP_UNKNOWN, c.p, c.n, &out, &out_len,
					 DECOMPRESS_MAX_OUT, err, sizeof(err)), -1);
	free(c.p);
	free(d.p);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("decompress");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_loop_test(tc, roundtrip, 0, NR_FMTS);
	tcase_add_loop_test(tc, roundtrip_with_size_trailer, 0, NR_FMTS);
	tcase_add_loop_test(tc, truncated_fails, 0, NR_FMTS);
	tcase_add_loop_test(tc, corrupt_fails, 0, NR_FMTS);
	tcase_add_loop_test(tc, size_limit, 0, NR_FMTS);
	tcase_add_loop_test(tc, garbage_after_magic, 0, NR_FMTS);
	tcase_add_test(tc, lz4_legacy_multi_block);
	tcase_add_test(tc, detect_and_wrong_format);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
