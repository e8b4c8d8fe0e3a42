/* AML emitter; see acpi_aml.h.  Encodings follow the ACPI specification,
 * section 20 (AML grammar) and 6.4 (resource descriptors). */
#include "guestfw/acpi_aml.h"

#include <string.h>

enum { OPEN_PKG, OPEN_BUFFER };

size_t aml__pkglength_encode(uint32_t value, uint8_t out[4])
{
	/* One byte holds 6 bits; longer forms hold 4 bits in the lead byte
	 * (bits 7:6 = count of following bytes) plus 8 per following byte. */
	if (value <= 0x3F) {
		out[0] = (uint8_t)value;
		return 1;
	}
	if (value > AML_PKGLENGTH_MAX)
		return 0;
	size_t follow = value <= 0xFFF ? 1 : value <= 0xFFFFF ? 2 : 3;
	out[0] = (uint8_t)((follow << 6) | (value & 0x0F));
	for (size_t i = 0; i < follow; i++)
		out[1 + i] = (uint8_t)(value >> (4 + 8 * i));
	return follow + 1;
}

size_t aml__pkglength_size(size_t body_len)
{
	/* The value counts its own bytes, so the thresholds move by n. */
	for (size_t n = 1; n <= 4; n++) {
		size_t max = n == 1 ? 0x3F : n == 2 ? 0xFFF :
			     n == 3 ? 0xFFFFF : AML_PKGLENGTH_MAX;
		if (body_len <= max - n)
			return n;
	}
	return 0;
}

void aml__init(struct aml_buf *b, uint8_t *mem, size_t cap)
{
	memset(b, 0, sizeof(*b));
	b->data = mem;
	b->cap = mem ? cap : 0;
}

int aml__finish(const struct aml_buf *b)
{
	return b->error || b->depth ? -1 : 0;
}

/* Reserves n bytes at the end, or sets the error and returns NULL. */
static uint8_t *aml_reserve(struct aml_buf *b, size_t n)
{
	if (b->error || n > b->cap - b->len) {
		b->error = true;
		return NULL;
	}
	uint8_t *p = b->data + b->len;
	b->len += n;
	return p;
}

void aml__bytes(struct aml_buf *b, const void *p, size_t n)
{
	uint8_t *dst = aml_reserve(b, n);

	if (dst && n)
		memcpy(dst, p, n);
}

void aml__byte(struct aml_buf *b, uint8_t v)
{
	aml__bytes(b, &v, 1);
}

static void aml_le(struct aml_buf *b, uint64_t v, unsigned n)
{
	uint8_t tmp[8];

	for (unsigned i = 0; i < n; i++)
		tmp[i] = (uint8_t)(v >> (8 * i));
	aml__bytes(b, tmp, n);
}

static bool seg_char_ok(char c, bool lead)
{
	if ((c >= 'A' && c <= 'Z') || c == '_')
		return true;
	return !lead && c >= '0' && c <= '9';
}

void aml__namestring(struct aml_buf *b, const char *path)
{
	uint8_t segs[255][4];
	size_t nsegs = 0;

	if (!path) {
		b->error = true;
		return;
	}
	if (*path == '\\') {
		aml__byte(b, AML_ROOT_CHAR);
		path++;
	} else {
		while (*path == '^') {
			aml__byte(b, AML_PARENT_CHAR);
			path++;
		}
	}
	while (*path) {
		size_t n = 0;

		if (nsegs == 255) {
			b->error = true;
			return;
		}
		memset(segs[nsegs], '_', 4);
		while (*path && *path != '.') {
			if (n == 4 || !seg_char_ok(*path, n == 0)) {
				b->error = true;
				return;
			}
			segs[nsegs][n++] = (uint8_t)*path++;
		}
		if (n == 0) { /* empty segment: "A..B", "A." or ".A" */
			b->error = true;
			return;
		}
		nsegs++;
		if (*path == '.') {
			path++;
			if (!*path) {
				b->error = true;
				return;
			}
		}
	}
	if (nsegs == 0) {
		aml__byte(b, 0x00); /* NullName */
		return;
	}
	if (nsegs == 2) {
		aml__byte(b, AML_DUAL_NAME_PREFIX);
	} else if (nsegs > 2) {
		aml__byte(b, AML_MULTI_NAME_PREFIX);
		aml__byte(b, (uint8_t)nsegs);
	}
	aml__bytes(b, segs, nsegs * 4);
}

void aml__name(struct aml_buf *b, const char *path)
{
	aml__byte(b, AML_NAME_OP);
	aml__namestring(b, path);
}

/* Encodes an integer data object into out (up to 9 bytes). */
static size_t integer_encode(uint64_t v, uint8_t out[9])
{
	uint8_t prefix;
	unsigned n;

	if (v <= 1) {
		out[0] = v ? AML_ONE_OP : AML_ZERO_OP;
		return 1;
	}
	if (v <= 0xFF) {
		prefix = AML_BYTE_PREFIX;
		n = 1;
	} else if (v <= 0xFFFF) {
		prefix = AML_WORD_PREFIX;
		n = 2;
	} else if (v <= 0xFFFFFFFFu) {
		prefix = AML_DWORD_PREFIX;
		n = 4;
	} else {
		prefix = AML_QWORD_PREFIX;
		n = 8;
	}
	out[0] = prefix;
	for (unsigned i = 0; i < n; i++)
		out[1 + i] = (uint8_t)(v >> (8 * i));
	return n + 1;
}

void aml__integer(struct aml_buf *b, uint64_t v)
{
	uint8_t tmp[9];

	aml__bytes(b, tmp, integer_encode(v, tmp));
}

void aml__string(struct aml_buf *b, const char *s)
{
	if (!s) {
		b->error = true;
		return;
	}
	for (const char *p = s; *p; p++) {
		/* AML strings are ASCII 0x01-0x7F. */
		if ((unsigned char)*p > 0x7F) {
			b->error = true;
			return;
		}
	}
	aml__byte(b, AML_STRING_PREFIX);
	aml__bytes(b, s, strlen(s) + 1);
}

static int hex_val(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

void aml__eisaid(struct aml_buf *b, const char *id)
{
	/* Three 5-bit letters and four hex digits, stored big-endian in a
	 * DWord: "PNP0A03" -> bytes 41 D0 0A 03. */
	if (!id || strlen(id) != 7) {
		b->error = true;
		return;
	}
	uint32_t v = 0;

	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z') {
			b->error = true;
			return;
		}
		v = (v << 5) | (uint32_t)(id[i] - 0x40);
	}
	for (int i = 3; i < 7; i++) {
		int h = hex_val(id[i]);

		if (h < 0) {
			b->error = true;
			return;
		}
		v = (v << 4) | (uint32_t)h;
	}
	/* v now holds 31 significant bits as the big-endian value. */
	uint8_t out[5] = { AML_DWORD_PREFIX, (uint8_t)(v >> 24),
			   (uint8_t)(v >> 16), (uint8_t)(v >> 8), (uint8_t)v };
	aml__bytes(b, out, sizeof(out));
}

static void aml_open(struct aml_buf *b, uint8_t kind)
{
	if (b->depth == AML_MAX_DEPTH) {
		b->error = true;
		return;
	}
	b->open[b->depth].start = b->len;
	b->open[b->depth].kind = kind;
	b->depth++;
}

void aml__scope_begin(struct aml_buf *b, const char *path)
{
	aml__byte(b, AML_SCOPE_OP);
	aml_open(b, OPEN_PKG);
	aml__namestring(b, path);
}

void aml__device_begin(struct aml_buf *b, const char *name)
{
	aml__byte(b, AML_EXT_OP_PREFIX);
	aml__byte(b, AML_DEVICE_OP);
	aml_open(b, OPEN_PKG);
	aml__namestring(b, name);
}

void aml__method_begin(struct aml_buf *b, const char *name, unsigned nargs,
		       bool serialized)
{
	if (nargs > 7)
		b->error = true;
	aml__byte(b, AML_METHOD_OP);
	aml_open(b, OPEN_PKG);
	aml__namestring(b, name);
	aml__byte(b, (uint8_t)((nargs & 7) | (serialized ? 0x08 : 0)));
}

void aml__package_begin(struct aml_buf *b, uint8_t nr_elems)
{
	aml__byte(b, AML_PACKAGE_OP);
	aml_open(b, OPEN_PKG);
	aml__byte(b, nr_elems);
}

void aml__buffer_begin(struct aml_buf *b)
{
	aml__byte(b, AML_BUFFER_OP);
	aml_open(b, OPEN_BUFFER);
}

void aml__return(struct aml_buf *b)
{
	aml__byte(b, AML_RETURN_OP);
}

void aml__end(struct aml_buf *b)
{
	if (b->depth == 0) {
		b->error = true;
		return;
	}
	struct aml_open o = b->open[--b->depth];

	if (b->error)
		return;
	/* Insert [PkgLength] (and for a Buffer, the BufferSize integer) in
	 * front of what was emitted since the object was opened. */
	size_t tail = b->len - o.start;
	uint8_t prefix[4 + 9];
	size_t nint = 0;

	if (o.kind == OPEN_BUFFER)
		nint = integer_encode(tail, prefix + 4);
	size_t body = tail + nint;
	size_t npl = aml__pkglength_size(body);

	if (npl == 0 || npl + nint > b->cap - b->len) {
		b->error = true;
		return;
	}
	uint8_t pl[4];

	aml__pkglength_encode((uint32_t)(body + npl), pl);
	memmove(b->data + o.start + npl + nint, b->data + o.start, tail);
	memcpy(b->data + o.start, pl, npl);
	memcpy(b->data + o.start + npl, prefix + 4, nint);
	b->len += npl + nint;
}

void aml__rt_begin(struct aml_buf *b)
{
	aml__buffer_begin(b);
}

void aml__rt_end(struct aml_buf *b)
{
	/* End tag; checksum 0 means "treat as valid". */
	aml__byte(b, 0x79);
	aml__byte(b, 0x00);
	aml__end(b);
}

void aml__rt_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len)
{
	aml__byte(b, 0x47);         /* small item 0x08, length 7 */
	aml__byte(b, 0x01);         /* decodes 16 address bits */
	aml_le(b, min, 2);
	aml_le(b, max, 2);
	aml__byte(b, align);
	aml__byte(b, len);
}

void aml__rt_irq_noflags(struct aml_buf *b, unsigned irq)
{
	if (irq > 15) {
		b->error = true;
		return;
	}
	aml__byte(b, 0x22);         /* small item 0x04, length 2 */
	aml_le(b, 1u << irq, 2);
}

void aml__rt_mem32_fixed(struct aml_buf *b, bool rw, uint32_t base,
			 uint32_t len)
{
	aml__byte(b, 0x86);         /* large item 0x06 */
	aml_le(b, 9, 2);
	aml__byte(b, rw ? 1 : 0);
	aml_le(b, base, 4);
	aml_le(b, len, 4);
}

/* General flags shared by the address-space descriptors: bit 3 MaxFixed,
 * bit 2 MinFixed, bit 1 clear = PosDecode, bit 0 clear = ResourceProducer. */
#define ADDR_GEN_FLAGS 0x0C

static void addr_space(struct aml_buf *b, uint8_t tag, unsigned width,
		       uint8_t type, uint8_t type_flags, uint64_t min,
		       uint64_t max)
{
	/* The length field has the same width as the addresses: a range
	 * covering the whole space (e.g. WordIO 0-0xFFFF) is not encodable. */
	uint64_t span_max = width == 8 ? UINT64_MAX - 1 :
			    (1ull << (8 * width)) - 2;

	if (max < min || max - min > span_max) {
		b->error = true;
		return;
	}
	aml__byte(b, tag);
	aml_le(b, 3 + 5 * width, 2);
	aml__byte(b, type);
	aml__byte(b, ADDR_GEN_FLAGS);
	aml__byte(b, type_flags);
	aml_le(b, 0, width);             /* granularity */
	aml_le(b, min, width);
	aml_le(b, max, width);
	aml_le(b, 0, width);             /* translation offset */
	aml_le(b, max - min + 1, width); /* length */
}

void aml__rt_word_bus(struct aml_buf *b, uint16_t min, uint16_t max)
{
	addr_space(b, 0x88, 2, 2, 0x00, min, max);
}

void aml__rt_word_io(struct aml_buf *b, uint16_t min, uint16_t max)
{
	addr_space(b, 0x88, 2, 1, 0x03 /* EntireRange */, min, max);
}

void aml__rt_dword_mem(struct aml_buf *b, uint32_t min, uint32_t max)
{
	addr_space(b, 0x87, 4, 0, 0x01 /* ReadWrite, NonCacheable */, min,
		   max);
}

void aml__rt_qword_mem(struct aml_buf *b, uint64_t min, uint64_t max)
{
	addr_space(b, 0x8A, 8, 0, 0x03 /* ReadWrite, Cacheable */, min, max);
}
