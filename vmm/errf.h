/* The one way error text reaches a caller's (char *err, size_t errlen)
 * buffer, so that every component tolerates a caller that wants no text. */
#ifndef KRG_VMM_ERRF_H
#define KRG_VMM_ERRF_H

#include <stdarg.h>
#include <stddef.h>

/* vsnprintf into err; does nothing if err is NULL or errlen is 0. */
void errf(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));
void verrf(char *err, size_t errlen, const char *fmt, va_list ap)
	__attribute__((format(printf, 3, 0)));
/* errf, then -1: `return errf_fail(err, errlen, ...)` in decoders. */
int errf_fail(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

#endif
