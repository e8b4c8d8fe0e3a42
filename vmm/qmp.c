/* The QMP session: greeting, capabilities negotiation, request checks,
 * dispatch through the caller's command table, replies and events (the
 * protocol is described in vmm/qmp.h). */
#include "vmm/qmp.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* How much of a client's string goes into an error message. */
#define ECHO_MAX 64

struct qmp_session {
	const struct qmp_config *cfg;
	struct qmp_stream in;
	char *out;
	size_t out_len, out_cap;
	bool negotiated;
	bool broken;
};

static int builtin_capabilities(void *ctx, json_t *args, json_t **ret,
				struct qmp_error *err);
static int builtin_commands(void *ctx, json_t *args, json_t **ret,
			    struct qmp_error *err);
static int builtin_version(void *ctx, json_t *args, json_t **ret,
			   struct qmp_error *err);

static const struct qmp_arg capabilities_args[] = {
	{ "enable", QMP_ARG_ARRAY, true },
	{ NULL, QMP_ARG_ANY, false },
};

/* The handlers get the session as their context. */
static const struct qmp_command builtins[] = {
	{ "qmp_capabilities", builtin_capabilities, capabilities_args },
	{ "query-commands", builtin_commands, NULL },
	{ "query-version", builtin_version, NULL },
};
#define NR_BUILTINS (sizeof(builtins) / sizeof(builtins[0]))

int qmp__fail(struct qmp_error *err, enum qmp_error_class cls,
	      const char *fmt, ...)
{
	va_list ap;

	err->cls = cls;
	va_start(ap, fmt);
	vsnprintf(err->desc, sizeof(err->desc), fmt, ap);
	va_end(ap);
	return -1;
}

/* The longest prefix of s, at most max bytes, that does not cut a UTF-8
 * sequence in two (the strings come from jansson: valid UTF-8). */
static int echo_len(const char *s)
{
	size_t n = strlen(s);

	if (n <= ECHO_MAX)
		return (int)n;
	n = ECHO_MAX;
	while (n > 0 && ((unsigned char)s[n] & 0xC0) == 0x80)
		n--;
	return (int)n;
}

static bool append(struct qmp_session *s, const char *text, size_t len)
{
	if (s->broken)
		return false;
	if (s->out_len + len > QMP_MAX_OUTPUT) {
		s->broken = true;
		return false;
	}
	if (s->out_len + len > s->out_cap) {
		size_t cap = s->out_cap ? s->out_cap : 4096;
		char *p;

		while (cap < s->out_len + len)
			cap *= 2;
		p = realloc(s->out, cap);
		if (!p) {
			s->broken = true;
			return false;
		}
		s->out = p;
		s->out_cap = cap;
	}
	memcpy(s->out + s->out_len, text, len);
	s->out_len += len;
	return true;
}

/* Queues obj as one line; takes the reference. */
static void send_json(struct qmp_session *s, json_t *obj)
{
	char *text = obj ? json_dumps(obj, JSON_PRESERVE_ORDER) : NULL;

	if (!text || !append(s, text, strlen(text)) || !append(s, "\r\n", 2))
		s->broken = true;
	free(text);
	json_decref(obj);
}

static json_t *version_json(const struct qmp_config *cfg)
{
	return json_pack("{s:{s:i,s:i,s:i},s:s}", "qemu", "micro", cfg->micro,
			 "minor", cfg->minor, "major", cfg->major, "package",
			 cfg->package ? cfg->package : "");
}

struct qmp_session *qmp_session__new(const struct qmp_config *cfg)
{
	struct qmp_session *s = calloc(1, sizeof(*s));
	json_t *v;

	if (!s)
		return NULL;
	s->cfg = cfg;
	if (qmp_stream__init(&s->in) < 0) {
		free(s);
		return NULL;
	}
	v = version_json(cfg);
	send_json(s, v ? json_pack("{s:{s:o,s:[]}}", "QMP", "version", v,
				   "capabilities") : NULL);
	if (s->broken) {
		qmp_session__free(s);
		return NULL;
	}
	return s;
}

void qmp_session__free(struct qmp_session *s)
{
	if (!s)
		return;
	qmp_stream__destroy(&s->in);
	free(s->out);
	free(s);
}

static void send_error(struct qmp_session *s, json_t *id,
		       const struct qmp_error *e)
{
	const char *cls = e->cls == QMP_ERR_COMMAND_NOT_FOUND ?
				  "CommandNotFound" : "GenericError";
	json_t *desc = json_string(e->desc);
	json_t *r;

	/* Only text from jansson or our own goes in; still, never send an
	 * error without a description. */
	if (!desc)
		desc = json_string("invalid error text");
	r = json_pack("{s:{s:s,s:o}}", "error", "class", cls, "desc", desc);
	if (r && id)
		json_object_set(r, "id", id);
	send_json(s, r);
}

static const char *type_name(enum qmp_arg_type t)
{
	static const char *const names[] = {
		[QMP_ARG_STR] = "string", [QMP_ARG_INT] = "integer",
		[QMP_ARG_BOOL] = "boolean", [QMP_ARG_NUMBER] = "number",
		[QMP_ARG_ARRAY] = "array", [QMP_ARG_OBJECT] = "object",
		[QMP_ARG_ANY] = "any",
	};

	return names[t];
}

static bool type_ok(enum qmp_arg_type t, const json_t *v)
{
	switch (t) {
	case QMP_ARG_STR:
		return json_is_string(v);
	case QMP_ARG_INT:
		return json_is_integer(v);
	case QMP_ARG_BOOL:
		return json_is_boolean(v);
	case QMP_ARG_NUMBER:
		return json_is_number(v);
	case QMP_ARG_ARRAY:
		return json_is_array(v);
	case QMP_ARG_OBJECT:
		return json_is_object(v);
	case QMP_ARG_ANY:
		break;
	}
	return true;
}

/* The arguments against the command's table, as QEMU checks them. */
static int check_args(const struct qmp_command *c, json_t *args,
		      struct qmp_error *err)
{
	const char *key;
	json_t *v;

	json_object_foreach(args, key, v) {
		const struct qmp_arg *a = c->args;

		while (a && a->name && strcmp(a->name, key))
			a++;
		if (!a || !a->name)
			return qmp__fail(err, QMP_ERR_GENERIC,
					 "Parameter '%.*s' is unexpected",
					 echo_len(key), key);
		if (!type_ok(a->type, v))
			return qmp__fail(err, QMP_ERR_GENERIC,
					 "Invalid parameter type for '%s', "
					 "expected: %s", a->name,
					 type_name(a->type));
	}
	for (const struct qmp_arg *a = c->args; a && a->name; a++)
		if (!a->optional && !json_object_get(args, a->name))
			return qmp__fail(err, QMP_ERR_GENERIC,
					 "Parameter '%s' is missing", a->name);
	return 0;
}

static const struct qmp_command *lookup(const struct qmp_session *s,
					const char *name, bool *builtin)
{
	for (size_t i = 0; i < NR_BUILTINS; i++)
		if (!strcmp(builtins[i].name, name)) {
			*builtin = true;
			return &builtins[i];
		}
	*builtin = false;
	for (size_t i = 0; i < s->cfg->nr_cmds; i++)
		if (!strcmp(s->cfg->cmds[i].name, name))
			return &s->cfg->cmds[i];
	return NULL;
}

/* The request's envelope: returns the command name or NULL with err. */
static const char *check_request(json_t *req, json_t **args,
				 struct qmp_error *err)
{
	const char *key;
	json_t *v, *exec;

	json_object_foreach(req, key, v)
		if (strcmp(key, "execute") && strcmp(key, "arguments") &&
		    strcmp(key, "id")) {
			qmp__fail(err, QMP_ERR_GENERIC, "QMP input member "
				  "'%.*s' is unexpected", echo_len(key), key);
			return NULL;
		}
	exec = json_object_get(req, "execute");
	if (!exec) {
		qmp__fail(err, QMP_ERR_GENERIC,
			  "QMP input lacks member 'execute'");
		return NULL;
	}
	if (!json_is_string(exec)) {
		qmp__fail(err, QMP_ERR_GENERIC,
			  "QMP input member 'execute' must be a string");
		return NULL;
	}
	*args = json_object_get(req, "arguments");
	if (*args && !json_is_object(*args)) {
		qmp__fail(err, QMP_ERR_GENERIC,
			  "QMP input member 'arguments' must be an object");
		return NULL;
	}
	return json_string_value(exec);
}

static void execute(struct qmp_session *s, json_t *req)
{
	const struct qmp_command *c;
	struct qmp_error err = { QMP_ERR_GENERIC, "" };
	json_t *id = json_object_get(req, "id"), *args = NULL, *ret = NULL;
	const char *name = check_request(req, &args, &err);
	bool builtin, caps;
	int rc = -1;

	if (!name)
		goto fail;
	caps = !strcmp(name, "qmp_capabilities");
	if (!s->negotiated && !caps) {
		qmp__fail(&err, QMP_ERR_COMMAND_NOT_FOUND, "Expecting "
			  "capabilities negotiation with 'qmp_capabilities'");
		goto fail;
	}
	if (s->negotiated && caps) {
		qmp__fail(&err, QMP_ERR_COMMAND_NOT_FOUND, "Capabilities "
			  "negotiation is already complete, command ignored");
		goto fail;
	}
	c = lookup(s, name, &builtin);
	if (!c) {
		qmp__fail(&err, QMP_ERR_COMMAND_NOT_FOUND, "The command "
			  "%.*s has not been found", echo_len(name), name);
		goto fail;
	}
	args = args ? json_incref(args) : json_object();
	if (!args) {
		qmp__fail(&err, QMP_ERR_GENERIC, "out of memory");
		goto fail;
	}
	if (check_args(c, args, &err) == 0)
		rc = c->fn(builtin ? (void *)s : s->cfg->ctx, args, &ret, &err);
	json_decref(args);
	if (rc < 0)
		goto fail;
	if (!ret)
		ret = json_object();
	ret = json_pack("{s:o}", "return", ret);
	if (ret && id)
		json_object_set(ret, "id", id);
	send_json(s, ret);
	return;
fail:
	json_decref(ret);
	send_error(s, id, &err);
}

static void on_item(void *ctx, enum qmp_stream_item item, const char *text,
		    size_t len)
{
	struct qmp_session *s = ctx;
	struct qmp_error err = { QMP_ERR_GENERIC, "" };
	json_error_t jerr;
	json_t *req;

	switch (item) {
	case QMP_ITEM_LEX_ERROR:
		qmp__fail(&err, QMP_ERR_GENERIC, "JSON parse error, invalid "
			  "character in the input; parser reset");
		break;
	case QMP_ITEM_TOO_LARGE:
		qmp__fail(&err, QMP_ERR_GENERIC, "JSON parse error, input "
			  "exceeds %u bytes; skipped", QMP_MAX_INPUT);
		break;
	case QMP_ITEM_TOO_DEEP:
		qmp__fail(&err, QMP_ERR_GENERIC, "JSON parse error, nesting "
			  "deeper than %u; skipped", QMP_MAX_DEPTH);
		break;
	case QMP_ITEM_VALUE:
		req = json_loadb(text, len, JSON_DECODE_ANY |
				 JSON_REJECT_DUPLICATES, &jerr);
		if (!req) {
			/* jansson's text is ASCII plus a quoted token, which
			 * may be cut mid-sequence: keep it ASCII. */
			for (char *p = jerr.text; *p; p++)
				if ((unsigned char)*p >= 0x80)
					*p = '?';
			qmp__fail(&err, QMP_ERR_GENERIC, "JSON parse error, "
				  "%s", jerr.text);
			break;
		}
		if (!json_is_object(req))
			qmp__fail(&err, QMP_ERR_GENERIC,
				  "QMP input must be a JSON object");
		else
			execute(s, req);
		json_decref(req);
		if (!err.desc[0])
			return;
		break;
	}
	send_error(s, NULL, &err);
}

int qmp_session__feed(struct qmp_session *s, const void *buf, size_t len)
{
	if (!s->broken)
		qmp_stream__feed(&s->in, buf, len, on_item, s);
	return s->broken ? -1 : 0;
}

const char *qmp_session__output(const struct qmp_session *s, size_t *len)
{
	*len = s->out_len;
	return s->out;
}

void qmp_session__consume(struct qmp_session *s, size_t n)
{
	if (n >= s->out_len) {
		s->out_len = 0;
		return;
	}
	memmove(s->out, s->out + n, s->out_len - n);
	s->out_len -= n;
}

bool qmp_session__negotiated(const struct qmp_session *s)
{
	return s->negotiated;
}

bool qmp_session__broken(const struct qmp_session *s)
{
	return s->broken;
}

char *qmp__event_text(const char *name, json_t *data,
		      const struct timespec *when)
{
	json_t *ev = json_pack("{s:s}", "event", name);
	json_t *ts = json_pack("{s:I,s:I}", "seconds", (json_int_t)when->tv_sec,
			       "microseconds",
			       (json_int_t)(when->tv_nsec / 1000));
	char *text = NULL, *line = NULL;

	if (ev && data)
		json_object_set(ev, "data", data);
	if (ev && ts && json_object_set(ev, "timestamp", ts) == 0)
		text = json_dumps(ev, JSON_PRESERVE_ORDER);
	if (text && asprintf(&line, "%s\r\n", text) < 0)
		line = NULL;
	free(text);
	json_decref(ts);
	json_decref(ev);
	return line;
}

int qmp_session__push_event(struct qmp_session *s, const char *text)
{
	if (s->negotiated && text)
		append(s, text, strlen(text));
	return s->broken ? -1 : 0;
}

/* ---- built-in commands (context: the session) ---- */

static int builtin_capabilities(void *ctx, json_t *args, json_t **ret,
				struct qmp_error *err)
{
	struct qmp_session *s = ctx;
	json_t *en = json_object_get(args, "enable"), *v;
	size_t i;

	/* No optional capability is offered (the greeting lists none). */
	json_array_foreach(en, i, v) {
		if (!json_is_string(v))
			return qmp__fail(err, QMP_ERR_GENERIC, "Invalid "
					 "parameter type for 'enable', "
					 "expected: array of strings");
		return qmp__fail(err, QMP_ERR_GENERIC, "Capability '%.*s' not "
				 "available", echo_len(json_string_value(v)),
				 json_string_value(v));
	}
	s->negotiated = true;
	return 0;
}

static int builtin_commands(void *ctx, json_t *args, json_t **ret,
			    struct qmp_error *err)
{
	struct qmp_session *s = ctx;
	json_t *list = json_array();

	for (size_t i = 0; list && i < NR_BUILTINS + s->cfg->nr_cmds; i++) {
		const char *name = i < NR_BUILTINS ?
					   builtins[i].name :
					   s->cfg->cmds[i - NR_BUILTINS].name;

		json_array_append_new(list, json_pack("{s:s}", "name", name));
	}
	if (!list)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	*ret = list;
	return 0;
}

static int builtin_version(void *ctx, json_t *args, json_t **ret,
			   struct qmp_error *err)
{
	struct qmp_session *s = ctx;

	*ret = version_json(s->cfg);
	return *ret ? 0 : qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
}
