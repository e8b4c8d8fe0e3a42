/* QMP, the QEMU Machine Protocol, as a pure engine: no sockets, no machine.
 * A session is fed the bytes a client sent, in any split, and produces the
 * text to send back (the greeting first).  Commands are looked up in a
 * table supplied by the caller, with an opaque context, so the engine runs
 * in unit tests without a VM.  What it implements of QEMU's QMP:
 *
 *   server: {"QMP": {"version": {...}, "capabilities": []}}
 *   client: {"execute": "qmp_capabilities"}     (only command allowed first)
 *   client: {"execute": NAME, "arguments": {...}, "id": ANY}
 *   server: {"return": VALUE, "id": ANY}  or
 *           {"error": {"class": "GenericError"|"CommandNotFound",
 *                      "desc": TEXT}, "id": ANY}
 *   server: {"event": NAME, "data": {...},
 *            "timestamp": {"seconds": S, "microseconds": US}}
 *
 * Every reply and event is one line ending in "\r\n".  Input that is not
 * JSON gets a GenericError and parsing resumes at the next value; as in
 * QEMU, a control character (other than tab, CR, LF) resets the parser.
 * A value larger than QMP_MAX_INPUT bytes or nested deeper than
 * QMP_MAX_DEPTH gets one error and is skipped to its end.  The built-in
 * commands are qmp_capabilities, query-commands and query-version. */
#ifndef KRG_VMM_QMP_H
#define KRG_VMM_QMP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <jansson.h>

#define QMP_MAX_INPUT (64 * 1024)
#define QMP_MAX_DEPTH 64
/* Replies and events queued for a client that does not read: past this
 * the session is broken and the caller drops the client. */
#define QMP_MAX_OUTPUT (4 * 1024 * 1024)
#define QMP_DESC_MAX 320

enum qmp_error_class {
	QMP_ERR_GENERIC,
	QMP_ERR_COMMAND_NOT_FOUND,
};

struct qmp_error {
	enum qmp_error_class cls;
	char desc[QMP_DESC_MAX];
};

/* Fills err and returns -1, for handlers: return qmp__fail(err, ...). */
int qmp__fail(struct qmp_error *err, enum qmp_error_class cls,
	      const char *fmt, ...) __attribute__((format(printf, 3, 4)));

enum qmp_arg_type {
	QMP_ARG_STR,
	QMP_ARG_INT,
	QMP_ARG_BOOL,
	QMP_ARG_NUMBER,   /* integer or real */
	QMP_ARG_ARRAY,
	QMP_ARG_OBJECT,
	QMP_ARG_ANY,
};

/* A command's parameters; a table ends with name == NULL. */
struct qmp_arg {
	const char *name;
	enum qmp_arg_type type;
	bool optional;
};

/* args: an object whose members the engine checked against the command's
 * qmp_arg table (never NULL; {} when the client sent none).  On success
 * *ret may be set to a new reference (left NULL, the reply is {}).  On
 * failure return -1 with err filled (qmp__fail). */
typedef int (*qmp_handler_fn)(void *ctx, json_t *args, json_t **ret,
			      struct qmp_error *err);

struct qmp_command {
	const char *name;
	qmp_handler_fn fn;
	const struct qmp_arg *args;   /* NULL: takes no arguments */
};

struct qmp_config {
	const struct qmp_command *cmds;
	size_t nr_cmds;
	void *ctx;                    /* handed to every handler */
	/* For the greeting and query-version (QEMU reports its own version
	 * there; clients only read the numbers). */
	int major, minor, micro;
	const char *package;
};

struct qmp_session;

/* A new client: the greeting is queued at once.  cfg (and the tables it
 * points to) must outlive the session.  NULL when out of memory. */
struct qmp_session *qmp_session__new(const struct qmp_config *cfg);
void qmp_session__free(struct qmp_session *s);

/* Bytes from the client: every complete value is executed and its reply
 * queued.  Returns 0, or -1 once the session is broken (output over
 * QMP_MAX_OUTPUT or out of memory): the caller drops the client. */
int qmp_session__feed(struct qmp_session *s, const void *buf, size_t len);

/* Queued output: pointer and length; consume what was sent. */
const char *qmp_session__output(const struct qmp_session *s, size_t *len);
void qmp_session__consume(struct qmp_session *s, size_t n);

/* qmp_capabilities was accepted: the session takes events. */
bool qmp_session__negotiated(const struct qmp_session *s);
bool qmp_session__broken(const struct qmp_session *s);

/* One event as a line of text (malloc'd, "\r\n"-terminated; NULL when out
 * of memory).  data may be NULL (no "data" member); it is borrowed. */
char *qmp__event_text(const char *name, json_t *data,
		      const struct timespec *when);
/* Queues an event line built by qmp__event_text, if the session took
 * qmp_capabilities (QEMU sends no events before).  Returns -1 once the
 * session is broken. */
int qmp_session__push_event(struct qmp_session *s, const char *text);

/* ---- The input framer (vmm/qmp_stream.c): splits a byte stream into
 * top-level JSON values without parsing them. ---- */

enum qmp_stream_item {
	QMP_ITEM_VALUE,       /* text, len: one value to parse */
	QMP_ITEM_LEX_ERROR,   /* a byte JSON never allows; parser reset */
	QMP_ITEM_TOO_LARGE,   /* over QMP_MAX_INPUT: skipped to its end */
	QMP_ITEM_TOO_DEEP,    /* over QMP_MAX_DEPTH: skipped to its end */
};

typedef void (*qmp_stream_fn)(void *ctx, enum qmp_stream_item item,
			      const char *text, size_t len);

struct qmp_stream {
	char *buf;             /* QMP_MAX_INPUT bytes */
	size_t len;
	unsigned depth;
	bool in_value, in_str, esc, scalar, skipping, lex_reported;
};

int qmp_stream__init(struct qmp_stream *st);
void qmp_stream__destroy(struct qmp_stream *st);
/* Calls fn for each item completed by these bytes, in order. */
void qmp_stream__feed(struct qmp_stream *st, const char *buf, size_t len,
		      qmp_stream_fn fn, void *ctx);

#endif
