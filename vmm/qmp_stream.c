/* Splits a QMP input stream into top-level JSON values.  jansson parses
 * whole buffers only, so this finds where each value ends: it follows
 * brackets and strings (with escapes) and nothing else; whether the value
 * is valid JSON is jansson's business.  A value is bounded in size and
 * depth, and a byte JSON never allows resets it, so no input can make the
 * session hang on a value that never ends. */
#include <stdlib.h>
#include <string.h>

#include "vmm/qmp.h"

static bool is_space(unsigned char b)
{
	return b == ' ' || b == '\t' || b == '\r' || b == '\n';
}

/* Control characters are invalid outside and inside strings; 0xC0, 0xC1
 * and 0xF5-0xFF never occur in UTF-8.  QEMU's clients send one of these
 * to reset the parser. */
static bool is_lex_error(unsigned char b)
{
	return (b < 0x20 && !is_space(b)) || b == 0xC0 || b == 0xC1 ||
	       b >= 0xF5;
}

/* Ends a bare top-level token (a number or literal). */
static bool ends_scalar(unsigned char b)
{
	return is_space(b) || strchr("{}[]\",:", b) != NULL;
}

int qmp_stream__init(struct qmp_stream *st)
{
	memset(st, 0, sizeof(*st));
	st->buf = malloc(QMP_MAX_INPUT);
	return st->buf ? 0 : -1;
}

void qmp_stream__destroy(struct qmp_stream *st)
{
	free(st->buf);
	st->buf = NULL;
}

static void reset(struct qmp_stream *st)
{
	st->len = 0;
	st->depth = 0;
	st->in_value = st->in_str = st->esc = st->scalar = false;
	st->skipping = false;
}

static void emit(struct qmp_stream *st, enum qmp_stream_item item,
		 qmp_stream_fn fn, void *ctx)
{
	fn(ctx, item, st->buf, item == QMP_ITEM_VALUE ? st->len : 0);
}

/* The value ended: hand it over (unless it was being skipped). */
static void finish(struct qmp_stream *st, qmp_stream_fn fn, void *ctx)
{
	if (!st->skipping)
		emit(st, QMP_ITEM_VALUE, fn, ctx);
	reset(st);
}

static void store(struct qmp_stream *st, unsigned char b, qmp_stream_fn fn,
		  void *ctx)
{
	if (st->skipping)
		return;
	if (st->len == QMP_MAX_INPUT) {
		emit(st, QMP_ITEM_TOO_LARGE, fn, ctx);
		st->skipping = true;
		return;
	}
	st->buf[st->len++] = (char)b;
}

static void start(struct qmp_stream *st, unsigned char b, qmp_stream_fn fn,
		  void *ctx)
{
	st->lex_reported = false;
	st->in_value = true;
	st->len = 0;
	if (b == '{' || b == '[')
		st->depth = 1;
	else if (b == '"')
		st->in_str = true;
	else
		st->scalar = true;
	store(st, b, fn, ctx);
	/* A stray closer or separator is a whole (bad) value by itself. */
	if (strchr("}],:", b))
		finish(st, fn, ctx);
}

/* One byte inside a value that is an object, array or string. */
static void in_structure(struct qmp_stream *st, unsigned char b,
			 qmp_stream_fn fn, void *ctx)
{
	store(st, b, fn, ctx);
	if (st->in_str) {
		if (st->esc)
			st->esc = false;
		else if (b == '\\')
			st->esc = true;
		else if (b == '"') {
			st->in_str = false;
			if (st->depth == 0)
				finish(st, fn, ctx);
		}
		return;
	}
	if (b == '"') {
		st->in_str = true;
	} else if (b == '{' || b == '[') {
		st->depth++;
		if (st->depth == QMP_MAX_DEPTH + 1 && !st->skipping) {
			emit(st, QMP_ITEM_TOO_DEEP, fn, ctx);
			st->skipping = true;
		}
	} else if (b == '}' || b == ']') {
		if (--st->depth == 0)
			finish(st, fn, ctx);
	}
}

void qmp_stream__feed(struct qmp_stream *st, const char *buf, size_t len,
		      qmp_stream_fn fn, void *ctx)
{
	for (size_t i = 0; i < len; i++) {
		unsigned char b = (unsigned char)buf[i];

		if (is_lex_error(b)) {
			/* A run of bad bytes between values is one error. */
			if (st->in_value || !st->lex_reported)
				emit(st, QMP_ITEM_LEX_ERROR, fn, ctx);
			reset(st);
			st->lex_reported = true;
			continue;
		}
		if (!st->in_value) {
			if (!is_space(b))
				start(st, b, fn, ctx);
			continue;
		}
		if (st->scalar) {
			if (!ends_scalar(b)) {
				store(st, b, fn, ctx);
				continue;
			}
			finish(st, fn, ctx);
			if (!is_space(b))
				start(st, b, fn, ctx);
			continue;
		}
		in_structure(st, b, fn, ctx);
	}
}
