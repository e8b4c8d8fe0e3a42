/* A small AML byte-code emitter: just what a static DSDT needs (names,
 * integers, strings, packages, buffers and resource templates, Scope,
 * Device, Method, Return).  Everything is written into a caller-owned
 * buffer; any error (buffer full, bad name, bad nesting) is sticky, so a
 * builder can emit a whole table and check once at the end.
 *
 * Objects with a PkgLength (Scope, Device, Method, Package, Buffer) are
 * opened with *_begin and closed with aml__end(); the emitter encodes the
 * PkgLength in its shortest form once the body is known. */
#ifndef KRG_GUESTFW_ACPI_AML_H
#define KRG_GUESTFW_ACPI_AML_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16
/* Largest value a PkgLength can hold (4-byte form: 4 + 8 + 8 + 8 bits). */
#define AML_PKGLENGTH_MAX 0x0FFFFFFFu

/* Opcodes the builders and tests refer to. */
#define AML_ZERO_OP      0x00
#define AML_ONE_OP       0x01
#define AML_NAME_OP      0x08
#define AML_BYTE_PREFIX  0x0A
#define AML_WORD_PREFIX  0x0B
#define AML_DWORD_PREFIX 0x0C
#define AML_STRING_PREFIX 0x0D
#define AML_QWORD_PREFIX 0x0E
#define AML_SCOPE_OP     0x10
#define AML_BUFFER_OP    0x11
#define AML_PACKAGE_OP   0x12
#define AML_METHOD_OP    0x14
#define AML_DUAL_NAME_PREFIX  0x2E
#define AML_MULTI_NAME_PREFIX 0x2F
#define AML_EXT_OP_PREFIX 0x5B
#define AML_DEVICE_OP    0x82 /* after AML_EXT_OP_PREFIX */
#define AML_ROOT_CHAR    0x5C
#define AML_PARENT_CHAR  0x5E
#define AML_RETURN_OP    0xA4

struct aml_open {
	size_t start;  /* where the PkgLength will be inserted */
	uint8_t kind;  /* private: plain PkgLength or Buffer */
};

struct aml_buf {
	uint8_t *data;
	size_t cap;
	size_t len;
	bool error;    /* sticky */
	unsigned depth;
	struct aml_open open[AML_MAX_DEPTH];
};

/* PkgLength helpers.  aml__pkglength_encode writes the encoding of `value`
 * (the PkgLength value, which counts its own bytes) into out and returns
 * its size (1-4), or 0 if value exceeds AML_PKGLENGTH_MAX.  The encoder
 * picks the shortest form that holds value. */
size_t aml__pkglength_encode(uint32_t value, uint8_t out[4]);
/* Bytes of PkgLength needed in front of a body of body_len bytes (the
 * value then is body_len + that size), or 0 if it cannot be encoded. */
size_t aml__pkglength_size(size_t body_len);

void aml__init(struct aml_buf *b, uint8_t *mem, size_t cap);
/* 0 if everything emitted fit, every object was closed and no name was
 * malformed; -1 otherwise. */
int aml__finish(const struct aml_buf *b);

void aml__byte(struct aml_buf *b, uint8_t v);
void aml__bytes(struct aml_buf *b, const void *p, size_t n);

/* NameString from ASL spelling: optional leading '\' or '^'s, then up to
 * 255 dot-separated segments of 1-4 characters ([A-Z_][A-Z0-9_]*), padded
 * with '_' ("_S5" -> "_S5_").  "" emits NullName. */
void aml__namestring(struct aml_buf *b, const char *path);
/* Name(path, ...): emits NameOp and the NameString; the caller emits the
 * data object right after. */
void aml__name(struct aml_buf *b, const char *path);
/* Integer in the shortest encoding (Zero, One, Byte/Word/DWord/QWord). */
void aml__integer(struct aml_buf *b, uint64_t v);
void aml__string(struct aml_buf *b, const char *s);
/* EisaId("PNP0A03") as a DWord integer; a malformed ID sets the error. */
void aml__eisaid(struct aml_buf *b, const char *id);

void aml__scope_begin(struct aml_buf *b, const char *path);
void aml__device_begin(struct aml_buf *b, const char *name);
/* Method(name, nargs, Serialized/NotSerialized), sync level 0. */
void aml__method_begin(struct aml_buf *b, const char *name, unsigned nargs,
		       bool serialized);
/* Package(nr_elems){...}: the caller emits exactly nr_elems objects. */
void aml__package_begin(struct aml_buf *b, uint8_t nr_elems);
/* Buffer(){bytes}: the BufferSize is derived from what is emitted. */
void aml__buffer_begin(struct aml_buf *b);
/* Return(...): the caller emits the term right after. */
void aml__return(struct aml_buf *b);
/* Closes the innermost *_begin. */
void aml__end(struct aml_buf *b);

/* ResourceTemplate(){...}: a Buffer whose end tag aml__rt_end appends. */
void aml__rt_begin(struct aml_buf *b);
void aml__rt_end(struct aml_buf *b);
/* IO(Decode16, min, max, align, len) */
void aml__rt_io(struct aml_buf *b, uint16_t min, uint16_t max, uint8_t align,
		uint8_t len);
/* IRQNoFlags(){irq}: edge, active high, exclusive; irq 0-15. */
void aml__rt_irq_noflags(struct aml_buf *b, unsigned irq);
/* Memory32Fixed(ReadWrite|ReadOnly, base, len) */
void aml__rt_mem32_fixed(struct aml_buf *b, bool rw, uint32_t base,
			 uint32_t len);
/* The address-space descriptors a PCI root bridge produces: all are
 * ResourceProducer, MinFixed, MaxFixed, PosDecode, zero granularity and
 * translation; the length is derived from [min, max]. */
void aml__rt_word_bus(struct aml_buf *b, uint16_t min, uint16_t max);
void aml__rt_word_io(struct aml_buf *b, uint16_t min, uint16_t max);
/* NonCacheable, ReadWrite, AddressRangeMemory. */
void aml__rt_dword_mem(struct aml_buf *b, uint32_t min, uint32_t max);
/* Cacheable, ReadWrite (the usual 64-bit prefetch-capable window). */
void aml__rt_qword_mem(struct aml_buf *b, uint64_t min, uint64_t max);

#endif
