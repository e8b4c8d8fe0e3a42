/* Decompressors for every format Linux can compress its payload with.  The
 * input is untrusted: every loop makes progress or stops, and output never
 * grows past the caller's bound. */
#include "guestfw/decompress.h"

#include <bzlib.h>
#include <limits.h>
#include <lz4.h>
#include <lz4frame.h>
#include <lzma.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>
#include <zstd.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

#define LZMA_MEMLIMIT (256ull << 20)
#define LZ4_LEGACY_MAGIC 0x184C2102u
#define LZ4_FRAME_MAGIC 0x184D2204u
#define LZ4_LEGACY_BLOCK (8u << 20)
#define ZSTD_FRAME_MAGIC 0xFD2FB528u

/* Growing output.  It may hold one byte more than `max`: a decoder that
 * fills exactly `max` bytes can still reach its end marker, while one byte
 * more proves the data is too big. */
struct obuf {
	uint8_t *buf;
	size_t len, cap, limit, max, hint;
	const char *name;
	char *err;
	size_t errlen;
};

/* Makes room for at least one more byte; -1 with err set if it can't. */
static int obuf_room(struct obuf *o)
{
	size_t ncap;
	uint8_t *p;

	if (o->len < o->cap)
		return 0;
	if (o->cap >= o->limit) {
		errf(o->err, o->errlen, "%s: decompressed data exceeds %zu bytes",
		     o->name, o->max);
		return -1;
	}
	ncap = o->cap ? o->cap * 2 : o->hint;
	if (ncap < o->cap || ncap > o->limit)
		ncap = o->limit;
	p = realloc(o->buf, ncap);
	if (!p) {
		errf(o->err, o->errlen, "%s: out of memory for %zu bytes",
		     o->name, ncap);
		return -1;
	}
	o->buf = p;
	o->cap = ncap;
	return 0;
}

static int obuf_append(struct obuf *o, const uint8_t *data, size_t n)
{
	while (n) {
		size_t chunk;

		if (obuf_room(o))
			return -1;
		chunk = o->cap - o->len < n ? o->cap - o->len : n;
		memcpy(o->buf + o->len, data, chunk);
		o->len += chunk;
		data += chunk;
		n -= chunk;
	}
	return 0;
}

static size_t obuf_avail(const struct obuf *o, size_t type_max)
{
	size_t a = o->cap - o->len;

	return a > type_max ? type_max : a;
}

static int run_gzip(struct obuf *o, const uint8_t *in, size_t in_len)
{
	z_stream zs;
	size_t pos = 0;
	int rc = -1;

	memset(&zs, 0, sizeof(zs));
	if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
		errf(o->err, o->errlen, "gzip: cannot initialise zlib");
		return -1;
	}
	for (;;) {
		size_t space, in_before;
		int zr;

		if (zs.avail_in == 0 && pos < in_len) {
			size_t chunk = in_len - pos > UINT_MAX ? UINT_MAX : in_len - pos;

			zs.next_in = (Bytef *)(uintptr_t)(in + pos);
			zs.avail_in = (uInt)chunk;
			pos += chunk;
		}
		if (obuf_room(o))
			break;
		space = obuf_avail(o, UINT_MAX);
		zs.next_out = o->buf + o->len;
		zs.avail_out = (uInt)space;
		in_before = zs.avail_in;
		zr = inflate(&zs, Z_NO_FLUSH);
		o->len += space - zs.avail_out;
		if (zr == Z_STREAM_END) {
			rc = 0;
			break;
		}
		if (zr != Z_OK && zr != Z_BUF_ERROR) {
			errf(o->err, o->errlen, "gzip: corrupt data (%s)",
			     zs.msg ? zs.msg : "inflate failed");
			break;
		}
		if (zs.avail_out == space && zs.avail_in == in_before &&
		    pos == in_len) {
			errf(o->err, o->errlen, "gzip: data is truncated");
			break;
		}
	}
	inflateEnd(&zs);
	return rc;
}

static int run_lzma(struct obuf *o, int fmt, const uint8_t *in, size_t in_len)
{
	lzma_stream s = LZMA_STREAM_INIT;
	lzma_ret r;
	int rc = -1;

	if (fmt == DECOMP_XZ)
		r = lzma_stream_decoder(&s, LZMA_MEMLIMIT, 0);
	else
		r = lzma_alone_decoder(&s, LZMA_MEMLIMIT);
	if (r != LZMA_OK) {
		errf(o->err, o->errlen, "%s: cannot initialise liblzma", o->name);
		return -1;
	}
	s.next_in = in;
	s.avail_in = in_len;
	for (;;) {
		size_t space;

		if (obuf_room(o))
			break;
		space = o->cap - o->len;
		s.next_out = o->buf + o->len;
		s.avail_out = space;
		/* All input is present, so FINISH: a stream that stops early
		 * then reports LZMA_BUF_ERROR instead of waiting for more. */
		r = lzma_code(&s, LZMA_FINISH);
		o->len += space - s.avail_out;
		if (r == LZMA_STREAM_END) {
			rc = 0;
			break;
		}
		if (r == LZMA_OK)
			continue;
		if (r == LZMA_BUF_ERROR && s.avail_out == 0)
			continue;
		if (r == LZMA_BUF_ERROR)
			errf(o->err, o->errlen, "%s: data is truncated", o->name);
		else if (r == LZMA_MEMLIMIT_ERROR)
			errf(o->err, o->errlen,
			     "%s: stream needs more than %llu MiB to decode",
			     o->name, LZMA_MEMLIMIT >> 20);
		else if (r == LZMA_FORMAT_ERROR)
			errf(o->err, o->errlen, "%s: not a valid %s stream",
			     o->name, o->name);
		else if (r == LZMA_OPTIONS_ERROR)
			errf(o->err, o->errlen, "%s: unsupported stream options",
			     o->name);
		else
			errf(o->err, o->errlen, "%s: corrupt data (liblzma error %d)",
			     o->name, (int)r);
		break;
	}
	lzma_end(&s);
	return rc;
}

static int run_zstd(struct obuf *o, const uint8_t *in, size_t in_len)
{
	ZSTD_DCtx *dctx = ZSTD_createDCtx();
	ZSTD_inBuffer ib = { in, in_len, 0 };
	int rc = -1;

	if (!dctx) {
		errf(o->err, o->errlen, "zstd: cannot create decoder");
		return -1;
	}
	for (;;) {
		ZSTD_outBuffer ob;
		size_t r, in_before;

		if (obuf_room(o))
			break;
		ob.dst = o->buf + o->len;
		ob.size = o->cap - o->len;
		ob.pos = 0;
		in_before = ib.pos;
		r = ZSTD_decompressStream(dctx, &ob, &ib);
		o->len += ob.pos;
		if (ZSTD_isError(r)) {
			errf(o->err, o->errlen, "zstd: corrupt data (%s)",
			     ZSTD_getErrorName(r));
			break;
		}
		if (r == 0) {
			/* Frame done; go on only if another frame follows
			 * (the kernel appends its size after the frame). */
			if (ib.size - ib.pos >= 4 &&
			    get_le32(in + ib.pos) == ZSTD_FRAME_MAGIC)
				continue;
			rc = 0;
			break;
		}
		/* No progress with room to write: the input ran out. */
		if (ob.pos == 0 && ib.pos == in_before) {
			errf(o->err, o->errlen, "zstd: data is truncated");
			break;
		}
	}
	ZSTD_freeDCtx(dctx);
	return rc;
}

static int run_lz4_legacy(struct obuf *o, const uint8_t *in, size_t in_len)
{
	const uint32_t bound = (uint32_t)LZ4_compressBound(LZ4_LEGACY_BLOCK);
	size_t pos = 4;
	unsigned blocks = 0;
	uint8_t *scratch;
	int rc = -1;

	scratch = malloc(LZ4_LEGACY_BLOCK);
	if (!scratch) {
		errf(o->err, o->errlen, "lz4: out of memory");
		return -1;
	}
	for (;;) {
		uint32_t csize;
		int n;

		if (in_len - pos < 4) {
			if (pos == in_len && blocks)
				rc = 0;
			else
				errf(o->err, o->errlen, "lz4: data is truncated");
			break;
		}
		csize = get_le32(in + pos);
		if (csize == LZ4_LEGACY_MAGIC) {
			pos += 4;
			continue;
		}
		/* The legacy format has no end marker: the last four bytes of
		 * a kernel payload are its size, not a block header. */
		if (in_len - pos == 4 && blocks) {
			rc = 0;
			break;
		}
		pos += 4;
		if (csize == 0 || csize > bound) {
			errf(o->err, o->errlen,
			     "lz4: corrupt data (block size %u)", csize);
			break;
		}
		if (csize > in_len - pos) {
			errf(o->err, o->errlen, "lz4: data is truncated");
			break;
		}
		n = LZ4_decompress_safe((const char *)in + pos, (char *)scratch,
					(int)csize, LZ4_LEGACY_BLOCK);
		if (n < 0) {
			errf(o->err, o->errlen, "lz4: corrupt data in block %u",
			     blocks);
			break;
		}
		if (obuf_append(o, scratch, (size_t)n))
			break;
		pos += csize;
		blocks++;
	}
	free(scratch);
	return rc;
}

static int run_lz4_frame(struct obuf *o, const uint8_t *in, size_t in_len)
{
	LZ4F_dctx *dctx;
	size_t pos = 0;
	int rc = -1;

	if (LZ4F_isError(LZ4F_createDecompressionContext(&dctx, LZ4F_VERSION))) {
		errf(o->err, o->errlen, "%s: cannot create decoder", o->name);
		return -1;
	}
	for (;;) {
		size_t dsz, ssz, r;

		if (obuf_room(o))
			break;
		dsz = o->cap - o->len;
		ssz = in_len - pos;
		r = LZ4F_decompress(dctx, o->buf + o->len, &dsz, in + pos, &ssz,
				    NULL);
		if (LZ4F_isError(r)) {
			errf(o->err, o->errlen, "%s: corrupt data (%s)",
			     o->name, LZ4F_getErrorName(r));
			break;
		}
		o->len += dsz;
		pos += ssz;
		if (r == 0) {
			if (in_len - pos >= 4 && get_le32(in + pos) == LZ4_FRAME_MAGIC)
				continue;
			rc = 0;
			break;
		}
		if (ssz == 0 && dsz == 0) {
			errf(o->err, o->errlen, "%s: data is truncated", o->name);
			break;
		}
	}
	LZ4F_freeDecompressionContext(dctx);
	return rc;
}

static int run_bzip2(struct obuf *o, const uint8_t *in, size_t in_len)
{
	bz_stream bs;
	size_t pos = 0;
	int rc = -1, r;

	memset(&bs, 0, sizeof(bs));
	if (BZ2_bzDecompressInit(&bs, 0, 0) != BZ_OK) {
		errf(o->err, o->errlen, "bzip2: cannot initialise libbz2");
		return -1;
	}
	for (;;) {
		size_t space;
		unsigned in_before;

		if (bs.avail_in == 0 && pos < in_len) {
			size_t chunk = in_len - pos > UINT_MAX ? UINT_MAX : in_len - pos;

			bs.next_in = (char *)(uintptr_t)(in + pos);
			bs.avail_in = (unsigned)chunk;
			pos += chunk;
		}
		if (obuf_room(o))
			break;
		space = obuf_avail(o, UINT_MAX);
		bs.next_out = (char *)(o->buf + o->len);
		bs.avail_out = (unsigned)space;
		in_before = bs.avail_in;
		r = BZ2_bzDecompress(&bs);
		o->len += space - bs.avail_out;
		if (r == BZ_STREAM_END) {
			rc = 0;
			break;
		}
		if (r != BZ_OK) {
			errf(o->err, o->errlen, "bzip2: corrupt data (libbz2 error %d)",
			     r);
			break;
		}
		if (bs.avail_out == space && bs.avail_in == in_before &&
		    pos == in_len) {
			errf(o->err, o->errlen, "bzip2: data is truncated");
			break;
		}
	}
	BZ2_bzDecompressEnd(&bs);
	return rc;
}

int decompress__detect(const uint8_t *buf, size_t len)
{
	static const uint8_t xz[6] = { 0xFD, '7', 'z', 'X', 'Z', 0x00 };

	if (len >= 6 && !memcmp(buf, xz, 6))
		return DECOMP_XZ;
	if (len >= 4 && get_le32(buf) == ZSTD_FRAME_MAGIC)
		return DECOMP_ZSTD;
	if (len >= 4 && get_le32(buf) == LZ4_LEGACY_MAGIC)
		return DECOMP_LZ4_LEGACY;
	if (len >= 4 && get_le32(buf) == LZ4_FRAME_MAGIC)
		return DECOMP_LZ4_FRAME;
	if (len >= 4 && buf[0] == 'B' && buf[1] == 'Z' && buf[2] == 'h' &&
	    buf[3] >= '1' && buf[3] <= '9')
		return DECOMP_BZIP2;
	if (len >= 3 && buf[0] == 0x1F && buf[1] == 0x8B && buf[2] == 8)
		return DECOMP_GZIP;
	/* .lzma: lc/lp/pb properties byte 0x5D and a dictionary size whose
	 * low 16 bits are zero, as every lzma(1) preset writes. */
	if (len >= 13 && buf[0] == 0x5D && buf[1] == 0 && buf[2] == 0)
		return DECOMP_LZMA;
	return DECOMP_UNKNOWN;
}

const char *decompress__name(int fmt)
{
	switch (fmt) {
	case DECOMP_GZIP: return "gzip";
	case DECOMP_XZ: return "xz";
	case DECOMP_LZMA: return "lzma";
	case DECOMP_ZSTD: return "zstd";
	case DECOMP_LZ4_LEGACY: return "lz4";
	case DECOMP_LZ4_FRAME: return "lz4-frame";
	case DECOMP_BZIP2: return "bzip2";
	default: return "unknown";
	}
}

int decompress__run(int fmt, const uint8_t *in, size_t in_len, uint8_t **out,
		    size_t *out_len, size_t max_out, char *err, size_t errlen)
{
	struct obuf o = { .name = decompress__name(fmt), .err = err,
			  .errlen = errlen };
	int rc;

	*out = NULL;
	*out_len = 0;
	if (fmt != DECOMP_UNKNOWN && decompress__detect(in, in_len) != fmt) {
		errf(err, errlen, "%s: data does not start with the %s magic",
		     o.name, o.name);
		return -1;
	}
	if (max_out > SIZE_MAX / 4)
		max_out = SIZE_MAX / 4;
	o.max = max_out;
	o.limit = max_out + 1;
	o.hint = in_len < (SIZE_MAX / 8) ? in_len * 4 : SIZE_MAX / 2;
	if (o.hint < (1u << 20))
		o.hint = 1u << 20;
	if (o.hint > o.limit)
		o.hint = o.limit;

	switch (fmt) {
	case DECOMP_GZIP: rc = run_gzip(&o, in, in_len); break;
	case DECOMP_XZ:
	case DECOMP_LZMA: rc = run_lzma(&o, fmt, in, in_len); break;
	case DECOMP_ZSTD: rc = run_zstd(&o, in, in_len); break;
	case DECOMP_LZ4_LEGACY: rc = run_lz4_legacy(&o, in, in_len); break;
	case DECOMP_LZ4_FRAME: rc = run_lz4_frame(&o, in, in_len); break;
	case DECOMP_BZIP2: rc = run_bzip2(&o, in, in_len); break;
	default:
		errf(err, errlen, "unknown compression format");
		return -1;
	}
	if (rc == 0 && o.len > o.max) {
		errf(err, errlen, "%s: decompressed data exceeds %zu bytes",
		     o.name, o.max);
		rc = -1;
	}
	if (rc) {
		free(o.buf);
		return -1;
	}
	*out = o.buf;
	*out_len = o.len;
	return 0;
}
