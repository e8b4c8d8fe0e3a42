/* Host-side decompression of kernel payloads with the system libraries, so
 * the guest never runs its (here very slow, emulated) decompressor. */
#ifndef KRG_GUESTFW_DECOMPRESS_H
#define KRG_GUESTFW_DECOMPRESS_H

#include <stddef.h>
#include <stdint.h>

enum decomp_format {
	DECOMP_UNKNOWN = 0,
	DECOMP_GZIP,
	DECOMP_XZ,
	DECOMP_LZMA,       /* legacy .lzma ("alone") */
	DECOMP_ZSTD,
	DECOMP_LZ4_LEGACY, /* lz4 -l, what the kernel uses */
	DECOMP_LZ4_FRAME,
	DECOMP_BZIP2,
};

/* Upper bound callers should pass when they have no better one. */
#define DECOMPRESS_MAX_OUT (512ull << 20)

/* Format by magic number, DECOMP_UNKNOWN if none matches. */
int decompress__detect(const uint8_t *buf, size_t len);
const char *decompress__name(int fmt);
/* Decompresses the first stream in `in` (bytes after its end, such as the
 * kernel's appended size, are ignored) into a malloc'd *out.  Fails with
 * one line in err for truncated or corrupt data and when the output would
 * exceed max_out bytes.  Returns 0 or -1 (then *out is NULL). */
int decompress__run(int fmt, const uint8_t *in, size_t in_len, uint8_t **out,
		    size_t *out_len, size_t max_out, char *err, size_t errlen);

#endif
