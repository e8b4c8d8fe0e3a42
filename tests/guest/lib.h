/* Freestanding helpers: string functions gcc may call, a small printf
 * formatter and the raw 16550 output used by both halves. */
#ifndef KRG_GUEST_LIB_H
#define KRG_GUEST_LIB_H

#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#define COM1 0x3f8

void *memset(void *d, int c, size_t n);
void *memcpy(void *d, const void *s, size_t n);
void *memmove(void *d, const void *s, size_t n);
int memcmp(const void *a, const void *b, size_t n);
size_t strlen(const char *s);
int strncmp(const char *a, const char *b, size_t n);

/* Supports %s %c %d %u %x with l/ll, width and 0-padding, and %%.
 * Always NUL-terminates; returns the length written. */
size_t vfmt(char *buf, size_t size, const char *f, va_list ap);
size_t fmt(char *buf, size_t size, const char *f, ...)
	__attribute__((format(printf, 3, 4)));

void serial_init(void);
void serial_write(const char *s, size_t len);

/* Parse a decimal number; returns 0 and leaves *out alone on junk. */
int parse_u64(const char *s, size_t len, uint64_t *out);

#endif
