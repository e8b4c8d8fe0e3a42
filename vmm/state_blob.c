/* Layout (all integers little-endian):
 *   header   magic "KRGSTATE", u32 format version, u32 section count,
 *            u64 payload length, u32 CRC32 of the payload, u32 reserved
 *   payload  sections, each: char name[32] NUL-padded, u32 version,
 *            u32 reserved, u64 data length, data, zero padding to 8 bytes
 * A blob may come from another host or a damaged file, so the reader checks
 * every field before trusting it and never computes past the buffer. */
#include "vmm/state_blob.h"

#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <zlib.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

#define BLOB_MAGIC "KRGSTATE"
#define BLOB_FORMAT_VERSION 1
#define BLOB_HDR_SIZE 32
#define SEC_NAME_SIZE 32
#define SEC_HDR_SIZE 48

_Static_assert(STATE_SECTION_NAME_MAX + 1 == SEC_NAME_SIZE,
	       "section name field is 32 bytes");

struct state_writer {
	uint8_t *buf;		/* payload being built */
	size_t len, cap;
	uint32_t count;
	char (*names)[SEC_NAME_SIZE];
	size_t names_cap;
};

struct rsec {
	const char *name;	/* points into the blob, NUL-terminated */
	uint32_t version;
	const uint8_t *data;
	size_t len;
};

struct state_reader {
	struct rsec *secs;	/* sorted by name */
	uint32_t count;
};

/* zlib takes 32-bit lengths; a blob with guest RAM can be larger. */
static uint32_t blob_crc(const uint8_t *p, size_t len)
{
	uLong crc = crc32(0L, Z_NULL, 0);

	while (len) {
		uInt n = len > (1u << 30) ? (1u << 30) : (uInt)len;

		crc = crc32(crc, p, n);
		p += n;
		len -= n;
	}
	return (uint32_t)crc;
}

static size_t pad8(size_t n)
{
	return (8 - (n & 7)) & 7;
}

struct state_writer *state_writer__new(void)
{
	return calloc(1, sizeof(struct state_writer));
}

void state_writer__free(struct state_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w->names);
	free(w);
}

static int reserve(struct state_writer *w, size_t more)
{
	size_t cap = w->cap ? w->cap : 4096;
	uint8_t *nb;

	if (more > SIZE_MAX - BLOB_HDR_SIZE - w->len)
		return -1;
	while (cap - w->len < more) {
		if (cap > SIZE_MAX / 2) {
			cap = w->len + more;
			break;
		}
		cap *= 2;
	}
	if (cap == w->cap)
		return 0;
	nb = realloc(w->buf, cap);
	if (!nb)
		return -1;
	w->buf = nb;
	w->cap = cap;
	return 0;
}

int state_writer__add(struct state_writer *w, const char *name,
		      uint32_t version, const void *data, size_t len)
{
	size_t nlen, total;
	uint8_t *p;

	if (!w || !name || (!data && len))
		return -1;
	nlen = strlen(name);
	if (!nlen || nlen > STATE_SECTION_NAME_MAX || w->count == UINT32_MAX)
		return -1;
	for (uint32_t i = 0; i < w->count; i++)
		if (!strcmp(w->names[i], name))
			return -1;
	if (len > SIZE_MAX - SEC_HDR_SIZE - 8)
		return -1;
	total = SEC_HDR_SIZE + len + pad8(len);
	if (reserve(w, total))
		return -1;
	if (w->count == w->names_cap) {
		size_t ncap = w->names_cap ? w->names_cap * 2 : 16;
		char (*nn)[SEC_NAME_SIZE] = realloc(w->names,
						    ncap * SEC_NAME_SIZE);

		if (!nn)
			return -1;
		w->names = nn;
		w->names_cap = ncap;
	}
	memset(w->names[w->count], 0, SEC_NAME_SIZE);
	memcpy(w->names[w->count], name, nlen);

	p = w->buf + w->len;
	memset(p, 0, total);
	memcpy(p, name, nlen);
	put_le32(p + 32, version);
	put_le64(p + 40, (uint64_t)len);
	if (len)
		memcpy(p + SEC_HDR_SIZE, data, len);
	w->len += total;
	w->count++;
	return 0;
}

int state_writer__finish(struct state_writer *w, uint8_t **out,
			 size_t *out_len)
{
	uint8_t *blob;

	if (!w || !out || !out_len)
		return -1;
	blob = malloc(BLOB_HDR_SIZE + w->len);
	if (!blob)
		return -1;
	memcpy(blob, BLOB_MAGIC, 8);
	put_le32(blob + 8, BLOB_FORMAT_VERSION);
	put_le32(blob + 12, w->count);
	put_le64(blob + 16, (uint64_t)w->len);
	put_le32(blob + 24, blob_crc(w->buf, w->len));
	put_le32(blob + 28, 0);
	if (w->len)
		memcpy(blob + BLOB_HDR_SIZE, w->buf, w->len);
	*out = blob;
	*out_len = BLOB_HDR_SIZE + w->len;
	return 0;
}

static int cmp_sec(const void *a, const void *b)
{
	return strcmp(((const struct rsec *)a)->name,
		      ((const struct rsec *)b)->name);
}

/* Validates the section header at p (rem bytes left) into *s; returns the
 * section's full size or 0 on error. */
static size_t parse_section(const uint8_t *p, size_t rem, uint32_t idx,
			    struct rsec *s, char *err, size_t errlen)
{
	const uint8_t *nul;
	uint64_t len;
	size_t nlen;

	if (rem < SEC_HDR_SIZE) {
		errf(err, errlen, "state blob is truncated inside the header "
		     "of section %u", idx);
		return 0;
	}
	nul = memchr(p, '\0', SEC_NAME_SIZE);
	if (!nul) {
		errf(err, errlen, "state section %u has a name that is not "
		     "NUL-terminated", idx);
		return 0;
	}
	nlen = (size_t)(nul - p);
	for (size_t i = 0; i < nlen; i++) {
		if (p[i] < 0x21 || p[i] > 0x7e) {
			errf(err, errlen, "state section %u has an invalid "
			     "name", idx);
			return 0;
		}
	}
	if (!nlen || !all_zero(nul, SEC_NAME_SIZE - nlen)) {
		errf(err, errlen, "state section %u has %s name", idx,
		     nlen ? "a badly padded" : "an empty");
		return 0;
	}
	s->name = (const char *)p;
	s->version = get_le32(p + 32);
	len = get_le64(p + 40);
	if (get_le32(p + 36)) {
		errf(err, errlen, "state section '%s' has a non-zero reserved "
		     "field", s->name);
		return 0;
	}
	rem -= SEC_HDR_SIZE;
	/* Compare before adding anything: len is attacker-controlled. */
	if (len > rem || pad8((size_t)len) > rem - (size_t)len) {
		errf(err, errlen, "state section '%s' claims %llu bytes but "
		     "only %zu remain in the blob", s->name,
		     (unsigned long long)len, rem);
		return 0;
	}
	s->data = p + SEC_HDR_SIZE;
	s->len = (size_t)len;
	if (!all_zero(s->data + s->len, pad8(s->len))) {
		errf(err, errlen, "state section '%s' has non-zero padding",
		     s->name);
		return 0;
	}
	return SEC_HDR_SIZE + s->len + pad8(s->len);
}

int state_reader__open(struct state_reader **out, const uint8_t *blob,
		       size_t len, char *err, size_t errlen)
{
	struct state_reader *r;
	const uint8_t *p;
	uint64_t plen;
	uint32_t count, ver;
	size_t rem;

	*out = NULL;
	if (!blob || len < BLOB_HDR_SIZE) {
		errf(err, errlen, "state blob is truncated (%zu bytes, the "
		     "header alone is %d)", blob ? len : 0, BLOB_HDR_SIZE);
		return -1;
	}
	if (memcmp(blob, BLOB_MAGIC, 8)) {
		errf(err, errlen, "not a krg-vmm state blob (bad magic)");
		return -1;
	}
	ver = get_le32(blob + 8);
	if (ver != BLOB_FORMAT_VERSION) {
		errf(err, errlen, "state blob has format version %u, this "
		     "build reads version %d", ver, BLOB_FORMAT_VERSION);
		return -1;
	}
	count = get_le32(blob + 12);
	plen = get_le64(blob + 16);
	if (get_le32(blob + 28)) {
		errf(err, errlen, "state blob header has a non-zero reserved "
		     "field");
		return -1;
	}
	rem = len - BLOB_HDR_SIZE;
	if (plen > rem) {
		errf(err, errlen, "state blob is truncated (%zu of %llu "
		     "payload bytes present)", rem, (unsigned long long)plen);
		return -1;
	}
	if (plen < rem) {
		errf(err, errlen, "state blob has %llu bytes of trailing data",
		     (unsigned long long)(rem - plen));
		return -1;
	}
	p = blob + BLOB_HDR_SIZE;
	if (blob_crc(p, rem) != get_le32(blob + 24)) {
		errf(err, errlen, "state blob checksum mismatch (corrupted "
		     "file?)");
		return -1;
	}
	if (count > rem / SEC_HDR_SIZE) {
		errf(err, errlen, "state blob announces %u sections, more than "
		     "its %zu payload bytes can hold", count, rem);
		return -1;
	}

	r = calloc(1, sizeof(*r));
	if (!r || !(r->secs = calloc(count ? count : 1, sizeof(*r->secs)))) {
		free(r);
		errf(err, errlen, "out of memory reading a state blob");
		return -1;
	}
	r->count = count;
	for (uint32_t i = 0; i < count; i++) {
		size_t used = parse_section(p, rem, i, &r->secs[i], err, errlen);

		if (!used)
			goto fail;
		p += used;
		rem -= used;
	}
	if (rem) {
		errf(err, errlen, "state blob has %zu bytes after its last "
		     "section", rem);
		goto fail;
	}
	/* Sorting makes duplicate detection and lookups O(n log n) even for a
	 * hostile blob with millions of tiny sections. */
	qsort(r->secs, count, sizeof(*r->secs), cmp_sec);
	for (uint32_t i = 1; i < count; i++) {
		if (!strcmp(r->secs[i - 1].name, r->secs[i].name)) {
			errf(err, errlen, "state section '%s' appears twice",
			     r->secs[i].name);
			goto fail;
		}
	}
	*out = r;
	return 0;
fail:
	state_reader__free(r);
	return -1;
}

void state_reader__free(struct state_reader *r)
{
	if (!r)
		return;
	free(r->secs);
	free(r);
}

static const struct rsec *find(const struct state_reader *r, const char *name)
{
	struct rsec key = { .name = name };

	if (!r || !name || !r->count)
		return NULL;
	return bsearch(&key, r->secs, r->count, sizeof(*r->secs), cmp_sec);
}

int state_reader__get(struct state_reader *r, const char *name,
		      uint32_t version, void *out, size_t len, char *err,
		      size_t errlen)
{
	const struct rsec *s = find(r, name);

	if (!s) {
		errf(err, errlen, "state section '%s' is missing",
		     name ? name : "(null)");
		return -1;
	}
	if (s->version != version) {
		errf(err, errlen, "state section '%s' has version %u, this "
		     "build reads version %u", s->name, s->version, version);
		return -1;
	}
	if (s->len != len) {
		errf(err, errlen, "state section '%s' is %zu bytes, this build "
		     "expects %zu", s->name, s->len, len);
		return -1;
	}
	if (len)
		memcpy(out, s->data, len);
	return 0;
}

int state_reader__get_raw(struct state_reader *r, const char *name,
			  uint32_t *version, const void **data, size_t *len)
{
	const struct rsec *s = find(r, name);

	if (!s)
		return -1;
	if (version)
		*version = s->version;
	if (data)
		*data = s->data;
	if (len)
		*len = s->len;
	return 0;
}
