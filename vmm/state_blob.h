/* Versioned, checksummed state blobs.  A blob is a header (magic, format
 * version, length, CRC32 of everything after the header) followed by named
 * sections, each carrying its own version and length.  Every piece of state
 * that must move between hosts (vCPUs, LAPICs, devices, later the DSM
 * directory) is a plain struct of fixed-width fields saved as one section. */
#ifndef KRG_VMM_STATE_BLOB_H
#define KRG_VMM_STATE_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define STATE_SECTION_NAME_MAX 31

struct state_writer;
struct state_reader;

struct state_writer *state_writer__new(void);
void state_writer__free(struct state_writer *w);
/* Appends a section; names are unique per blob ("vcpu0", "lapic0", "uart0").
 * Returns 0 or -1 (duplicate or too long a name, out of memory). */
int state_writer__add(struct state_writer *w, const char *name,
		      uint32_t version, const void *data, size_t len);
/* Seals the blob: *out is malloc'd and owned by the caller. */
int state_writer__finish(struct state_writer *w, uint8_t **out,
			 size_t *out_len);

/* Validates magic, format version, lengths and checksum.  On failure returns
 * -1 with a one-line reason in err. */
int state_reader__open(struct state_reader **out, const uint8_t *blob,
		       size_t len, char *err, size_t errlen);
void state_reader__free(struct state_reader *r);
/* Copies section name into out.  Fails (-1, reason in err) if it is missing,
 * its version differs from version, or its length differs from len. */
int state_reader__get(struct state_reader *r, const char *name,
		      uint32_t version, void *out, size_t len, char *err,
		      size_t errlen);
/* Variable-size sections (XSAVE area): returns a pointer into the blob. */
int state_reader__get_raw(struct state_reader *r, const char *name,
			  uint32_t *version, const void **data, size_t *len);

/* Writes buf[0..len) to path atomically: a temporary file in the same
 * directory, fsync'd, then renamed over path (mode 0600: a saved VM holds
 * guest memory).  Returns 0, or -1 with one line in err. */
int state_blob__write_file(const char *path, const void *buf, size_t len,
			   char *err, size_t errlen);
/* Reads a whole regular file of at most max bytes into a malloc'd *buf
 * (owned by the caller).  Returns 0, or -1 with one line in err. */
int state_blob__read_file(const char *path, uint8_t **buf, size_t *len,
			  size_t max, char *err, size_t errlen);

#endif
