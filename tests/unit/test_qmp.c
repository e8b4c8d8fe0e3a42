/* The QMP engine (vmm/qmp.h) and the VM command table (vmm/qmp_commands.h)
 * with fake VM callbacks: greeting, negotiation, every command, ids,
 * input in any split, malformed and oversized input, events, and random
 * bytes that must never break the session. */
#include <check.h>
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/qmp.h"
#include "vmm/qmp_commands.h"

struct fake_vm {
	const char *state;
	int stops, conts, powerdowns, resets, quits, clusters, texts;
	bool fail_next;      /* the next action fails */
	const char *name;
};

static int fake_action(struct fake_vm *f, int *count, struct qmp_error *err)
{
	(*count)++;
	if (f->fail_next) {
		f->fail_next = false;
		return qmp__fail(err, QMP_ERR_GENERIC, "fake failure %d",
				 *count);
	}
	return 0;
}

static void fake_status(void *ctx, const char **state)
{
	*state = ((struct fake_vm *)ctx)->state;
}

static int fake_stop(void *ctx, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	return fake_action(f, &f->stops, err);
}

static int fake_cont(void *ctx, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	return fake_action(f, &f->conts, err);
}

static int fake_powerdown(void *ctx, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	return fake_action(f, &f->powerdowns, err);
}

static int fake_reset(void *ctx, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	return fake_action(f, &f->resets, err);
}

static int fake_quit(void *ctx, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	return fake_action(f, &f->quits, err);
}

static const char *fake_name(void *ctx)
{
	return ((struct fake_vm *)ctx)->name;
}

static int fake_cluster(void *ctx, struct qmp_cluster_view *v,
			struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	if (fake_action(f, &f->clusters, err) < 0)
		return -1;
	v->nr_nodes = 2;
	v->nr_vcpus = 3;
	v->ram_mib = 128;
	v->vcpu_node[0] = 0;
	v->vcpu_node[1] = 1;
	v->vcpu_node[2] = 1;
	strcpy(v->node[0].addr, "127.0.0.1:4000");
	strcpy(v->node[1].addr, "10.0.0.2:\xff");   /* not UTF-8 */
	v->node[0].answered = true;
	v->node[0].stats.uptime_ms = 1234;
	v->node[0].stats.dsm.read_faults = 17;
	v->node[0].stats.dsm.write_faults = 5;
	v->node[0].stats.dsm.invalidations = 3;
	v->node[0].stats.dsm.pages_sent = 40;
	v->node[0].stats.dsm.pages_received = 41;
	v->node[0].stats.dsm.bytes_sent = 40 * 4096;
	v->node[0].stats.dsm.held_msgs = 9;
	v->node[0].stats.dsm.hot[0].gpa = 0x1000;
	v->node[0].stats.dsm.hot[0].count = 77;
	v->node[0].stats.dsm.bytes_received = ~0ull;   /* over json_int_t */
	return 0;
}

static int fake_text(void *ctx, char **text, struct qmp_error *err)
{
	struct fake_vm *f = ctx;

	if (fake_action(f, &f->texts, err) < 0)
		return -1;
	*text = strdup("VM: 1 vCPUs\nnode 0 (local): \"quoted\"\n");
	return 0;
}

/* A command of the test's own, to check argument validation. */
static int last_int;

static int cmd_take(void *ctx, json_t *args, json_t **ret,
		    struct qmp_error *err)
{
	last_int = (int)json_integer_value(json_object_get(args, "n"));
	*ret = json_pack("{s:i}", "doubled", last_int * 2);
	return 0;
}

static const struct qmp_arg take_args[] = {
	{ "n", QMP_ARG_INT, false },
	{ "label", QMP_ARG_STR, true },
	{ NULL, QMP_ARG_ANY, false },
};

static struct fake_vm vm;
static struct qmp_vm_ops ops;
static struct qmp_command cmds[16];
static struct qmp_config cfg;
static struct qmp_session *s;

static void setup(void)
{
	const struct qmp_command *t;
	size_t n;

	memset(&vm, 0, sizeof(vm));
	vm.state = QMP_STATE_RUNNING;
	ops = (struct qmp_vm_ops){
		.ctx = &vm, .query_status = fake_status, .stop = fake_stop,
		.cont = fake_cont, .powerdown = fake_powerdown,
		.reset = fake_reset, .quit = fake_quit, .name = fake_name,
		.cluster = fake_cluster, .status_text = fake_text,
	};
	t = qmp_commands__table(&n);
	ck_assert_uint_lt(n, 15);
	memcpy(cmds, t, n * sizeof(*t));
	cmds[n] = (struct qmp_command){ "x-take", cmd_take, take_args };
	cfg = (struct qmp_config){ .cmds = cmds, .nr_cmds = n + 1,
				   .ctx = &ops, .major = 0, .minor = 1,
				   .micro = 2, .package = "krg-vmm test" };
	s = qmp_session__new(&cfg);
	ck_assert_ptr_nonnull(s);
}

static void teardown(void)
{
	qmp_session__free(s);
	s = NULL;
}

/* The next queued line, parsed (NULL if nothing is queued).  Every line
 * must be one JSON object ending in CRLF. */
static json_t *next(void)
{
	size_t len, n;
	const char *out = qmp_session__output(s, &len);
	const char *nl = len ? memchr(out, '\n', len) : NULL;
	json_error_t e;
	json_t *j;

	if (!len)
		return NULL;
	ck_assert_msg(nl != NULL, "output without a line end");
	n = (size_t)(nl - out) + 1;
	ck_assert_uint_ge(n, 3);
	ck_assert_int_eq(out[n - 2], '\r');
	j = json_loadb(out, n - 2, 0, &e);
	ck_assert_msg(j != NULL, "bad JSON out: %.*s (%s)", (int)n, out,
		      e.text);
	ck_assert(json_is_object(j));
	qmp_session__consume(s, n);
	return j;
}

static void feed(const char *text)
{
	ck_assert_int_eq(qmp_session__feed(s, text, strlen(text)), 0);
}

/* Feeds text, expects exactly one reply, returns it. */
static json_t *ask(const char *text)
{
	json_t *r;
	size_t left;

	feed(text);
	r = next();
	ck_assert_msg(r != NULL, "no reply to %s", text);
	qmp_session__output(s, &left);
	ck_assert_msg(left == 0, "more than one reply to %s", text);
	return r;
}

static void expect_error(json_t *r, const char *cls, const char *desc_part)
{
	json_t *e = json_object_get(r, "error");

	ck_assert_msg(e != NULL, "not an error: %s", json_dumps(r, 0));
	ck_assert_str_eq(json_string_value(json_object_get(e, "class")), cls);
	if (desc_part)
		ck_assert_msg(strstr(json_string_value(json_object_get(e,
								       "desc")),
				     desc_part),
			      "desc '%s' lacks '%s'",
			      json_string_value(json_object_get(e, "desc")),
			      desc_part);
	json_decref(r);
}

/* Expects {"return": ...}; returns the value (owned by the caller). */
static json_t *expect_return(json_t *r)
{
	json_t *v = json_object_get(r, "return");

	ck_assert_msg(v != NULL, "not a return: %s", json_dumps(r, 0));
	json_incref(v);
	json_decref(r);
	return v;
}

static void expect_empty_return(json_t *r)
{
	json_t *v = expect_return(r);

	ck_assert(json_is_object(v));
	ck_assert_uint_eq(json_object_size(v), 0);
	json_decref(v);
}

static void greet_and_negotiate(void)
{
	json_decref(next());
	expect_empty_return(ask("{\"execute\": \"qmp_capabilities\"}"));
}

START_TEST(greeting)
{
	json_t *g = next(), *q, *v;

	ck_assert_ptr_nonnull(g);
	q = json_object_get(g, "QMP");
	ck_assert_ptr_nonnull(q);
	v = json_object_get(json_object_get(q, "version"), "qemu");
	ck_assert_int_eq(json_integer_value(json_object_get(v, "major")), 0);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "minor")), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "micro")), 2);
	ck_assert_str_eq(json_string_value(json_object_get(
				 json_object_get(q, "version"), "package")),
			 "krg-vmm test");
	ck_assert(json_is_array(json_object_get(q, "capabilities")));
	ck_assert_uint_eq(json_array_size(json_object_get(q, "capabilities")),
			  0);
	json_decref(g);
	ck_assert_ptr_null(next());
	ck_assert(!qmp_session__negotiated(s));
}
END_TEST

START_TEST(negotiation)
{
	json_t *r;

	json_decref(next());
	r = ask("{\"execute\": \"stop\", \"id\": 7}");
	ck_assert_int_eq(json_integer_value(json_object_get(r, "id")), 7);
	expect_error(r, "CommandNotFound", "qmp_capabilities");
	ck_assert_int_eq(vm.stops, 0);
	/* An unknown capability is refused and leaves negotiation on. */
	expect_error(ask("{\"execute\": \"qmp_capabilities\", \"arguments\": "
			 "{\"enable\": [\"oob\"]}}"),
		     "GenericError", "'oob' not available");
	expect_error(ask("{\"execute\": \"qmp_capabilities\", \"arguments\": "
			 "{\"enable\": \"oob\"}}"),
		     "GenericError", "Invalid parameter type for 'enable'");
	ck_assert(!qmp_session__negotiated(s));
	expect_empty_return(ask("{\"execute\": \"qmp_capabilities\", "
				"\"arguments\": {\"enable\": []}}"));
	ck_assert(qmp_session__negotiated(s));
	expect_error(ask("{\"execute\": \"qmp_capabilities\"}"),
		     "CommandNotFound", "already complete");
	expect_empty_return(ask("{\"execute\": \"stop\"}"));
	ck_assert_int_eq(vm.stops, 1);
}
END_TEST

START_TEST(status_and_actions)
{
	json_t *v;

	greet_and_negotiate();
	v = expect_return(ask("{\"execute\": \"query-status\"}"));
	ck_assert(json_is_true(json_object_get(v, "running")));
	ck_assert(json_is_false(json_object_get(v, "singlestep")));
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")),
			 "running");
	json_decref(v);
	vm.state = QMP_STATE_PAUSED;
	v = expect_return(ask("{\"execute\": \"query-status\"}"));
	ck_assert(json_is_false(json_object_get(v, "running")));
	ck_assert_str_eq(json_string_value(json_object_get(v, "status")),
			 "paused");
	json_decref(v);

	expect_empty_return(ask("{\"execute\": \"stop\"}"));
	expect_empty_return(ask("{\"execute\": \"cont\"}"));
	expect_empty_return(ask("{\"execute\": \"system_powerdown\"}"));
	expect_empty_return(ask("{\"execute\": \"system_reset\"}"));
	expect_empty_return(ask("{\"execute\": \"quit\"}"));
	ck_assert_int_eq(vm.stops, 1);
	ck_assert_int_eq(vm.conts, 1);
	ck_assert_int_eq(vm.powerdowns, 1);
	ck_assert_int_eq(vm.resets, 1);
	ck_assert_int_eq(vm.quits, 1);

	vm.fail_next = true;
	expect_error(ask("{\"execute\": \"cont\", \"id\": \"c\"}"),
		     "GenericError", "fake failure 2");
	ck_assert_int_eq(vm.conts, 2);
}
END_TEST

START_TEST(queries)
{
	json_t *v, *e;
	size_t i;
	bool seen_cluster = false, seen_caps = false, seen_stop = false;

	greet_and_negotiate();
	v = expect_return(ask("{\"execute\": \"query-name\"}"));
	ck_assert_uint_eq(json_object_size(v), 0);
	json_decref(v);
	vm.name = "guest-1";
	v = expect_return(ask("{\"execute\": \"query-name\"}"));
	ck_assert_str_eq(json_string_value(json_object_get(v, "name")),
			 "guest-1");
	json_decref(v);

	v = expect_return(ask("{\"execute\": \"query-version\"}"));
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_object_get(v, "qemu"), "micro")), 2);
	json_decref(v);

	v = expect_return(ask("{\"execute\": \"query-commands\"}"));
	ck_assert(json_is_array(v));
	ck_assert_uint_eq(json_array_size(v), 3 + cfg.nr_cmds);
	json_array_foreach(v, i, e) {
		const char *n = json_string_value(json_object_get(e, "name"));

		ck_assert_ptr_nonnull(n);
		seen_cluster |= !strcmp(n, "query-krg-cluster");
		seen_caps |= !strcmp(n, "qmp_capabilities");
		seen_stop |= !strcmp(n, "stop");
	}
	ck_assert(seen_cluster && seen_caps && seen_stop);
	json_decref(v);

	v = expect_return(ask("{\"execute\": \"query-krg-status\"}"));
	ck_assert_str_eq(json_string_value(json_object_get(v, "text")),
			 "VM: 1 vCPUs\nnode 0 (local): \"quoted\"\n");
	json_decref(v);
}
END_TEST

START_TEST(cluster_view)
{
	json_t *v, *nodes, *n0, *n1, *dsm, *hot;

	greet_and_negotiate();
	v = expect_return(ask("{\"execute\": \"query-krg-cluster\"}"));
	ck_assert_int_eq(json_integer_value(json_object_get(v, "vcpu-count")),
			 3);
	ck_assert_int_eq(json_integer_value(json_object_get(v, "ram-mib")),
			 128);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(json_object_get(v, "vcpus"), 2),
				 "node")), 1);
	nodes = json_object_get(v, "nodes");
	ck_assert_uint_eq(json_array_size(nodes), 2);
	n0 = json_array_get(nodes, 0);
	n1 = json_array_get(nodes, 1);
	ck_assert_str_eq(json_string_value(json_object_get(n0, "address")),
			 "127.0.0.1:4000");
	ck_assert_str_eq(json_string_value(json_object_get(n1, "address")),
			 "10.0.0.2:?");
	ck_assert(json_is_true(json_object_get(n0, "answered")));
	ck_assert(json_is_false(json_object_get(n1, "answered")));
	ck_assert_ptr_null(json_object_get(n1, "dsm"));
	ck_assert_uint_eq(json_array_size(json_object_get(n1, "vcpus")), 2);
	ck_assert_int_eq(json_integer_value(json_array_get(
				 json_object_get(n1, "vcpus"), 1)), 2);
	ck_assert_int_eq(json_integer_value(json_object_get(n0, "uptime-ms")),
			 1234);
	dsm = json_object_get(n0, "dsm");
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "read-faults")), 17);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "write-faults")), 5);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "invalidations")), 3);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "pages-received")),
			 41);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm, "bytes-sent")),
			 40 * 4096);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "bytes-received")),
			 LLONG_MAX);
	ck_assert_int_eq(json_integer_value(json_object_get(dsm,
							    "held-messages")), 9);
	hot = json_object_get(dsm, "hot-pages");
	ck_assert_uint_eq(json_array_size(hot), 1);
	ck_assert_int_eq(json_integer_value(json_object_get(
				 json_array_get(hot, 0), "count")), 77);
	json_decref(v);
	ck_assert_int_eq(vm.clusters, 1);
}
END_TEST

START_TEST(ids_echoed)
{
	static const char *const ids[] = {
		"\"abc\"", "42", "-1", "{\"a\": [1, 2, {\"b\": null}]}",
		"[true, false]", "null", "1.5", "\"\\u00e9t\\u00e9\"",
	};

	greet_and_negotiate();
	for (size_t i = 0; i < sizeof(ids) / sizeof(ids[0]); i++) {
		char req[256];
		json_t *want = json_loads(ids[i], JSON_DECODE_ANY, NULL), *r;

		snprintf(req, sizeof(req), "{\"id\": %s, \"execute\": "
			 "\"query-status\"}", ids[i]);
		r = ask(req);
		ck_assert_msg(json_equal(json_object_get(r, "id"), want),
			      "id %s not echoed", ids[i]);
		ck_assert_ptr_nonnull(json_object_get(r, "return"));
		json_decref(r);
		/* And on errors too. */
		snprintf(req, sizeof(req), "{\"id\": %s, \"execute\": "
			 "\"no-such\"}", ids[i]);
		r = ask(req);
		ck_assert(json_equal(json_object_get(r, "id"), want));
		expect_error(r, "CommandNotFound", "no-such");
		json_decref(want);
	}
	/* No id, no id member in the reply. */
	{
		json_t *r = ask("{\"execute\": \"query-status\"}");

		ck_assert_ptr_null(json_object_get(r, "id"));
		json_decref(r);
	}
}
END_TEST

START_TEST(split_input)
{
	const char *req = "{\"execute\": \"stop\", \"id\": \"s\\\"}{\"}";
	json_t *r;

	greet_and_negotiate();
	/* Byte by byte: nothing until the last brace. */
	for (size_t i = 0; req[i]; i++) {
		ck_assert_int_eq(qmp_session__feed(s, req + i, 1), 0);
		if (req[i + 1])
			ck_assert_ptr_null(next());
	}
	ck_assert_int_eq(vm.stops, 1);
	r = next();
	ck_assert_str_eq(json_string_value(json_object_get(r, "id")), "s\"}{");
	json_decref(r);
	/* An empty feed does nothing. */
	ck_assert_int_eq(qmp_session__feed(s, "", 0), 0);
	ck_assert_ptr_null(next());
}
END_TEST

START_TEST(merged_input)
{
	json_t *r;

	greet_and_negotiate();
	feed("{\"execute\":\"stop\",\"id\":1}{\"execute\":\"cont\",\"id\":2}"
	     "\r\n  {\"execute\":\"query-status\",\"id\":3}{\"execute\":");
	for (int i = 1; i <= 3; i++) {
		r = next();
		ck_assert_ptr_nonnull(r);
		ck_assert_int_eq(json_integer_value(json_object_get(r, "id")),
				 i);
		json_decref(r);
	}
	ck_assert_ptr_null(next());
	ck_assert_int_eq(vm.stops, 1);
	ck_assert_int_eq(vm.conts, 1);
	/* The rest of the fourth arrives later. */
	feed("\"quit\"}");
	expect_empty_return(next());
	ck_assert_int_eq(vm.quits, 1);
}
END_TEST

START_TEST(malformed)
{
	greet_and_negotiate();
	expect_error(ask("{\"execute\": }"), "GenericError", "JSON parse error");
	expect_error(ask("{\"execute\" \"stop\"}"), "GenericError",
		     "JSON parse error");
	expect_error(ask("[1, 2]"), "GenericError", "must be a JSON object");
	expect_error(ask("42 "), "GenericError", "must be a JSON object");
	expect_error(ask("\"stop\""), "GenericError", "must be a JSON object");
	expect_error(ask("nonsense "), "GenericError", "JSON parse error");
	expect_error(ask("}"), "GenericError", "JSON parse error");
	expect_error(ask("{\"execute\": \"stop\", \"execute\": \"cont\"}"),
		     "GenericError", "JSON parse error");
	expect_error(ask("{\"execute\": \"st\x80op\"}"), "GenericError",
		     "JSON parse error");
	expect_error(ask("{\"id\": 3}"), "GenericError", "lacks member "
		     "'execute'");
	expect_error(ask("{\"execute\": 5}"), "GenericError", "must be a "
		     "string");
	expect_error(ask("{\"execute\": \"stop\", \"extra\": 1}"),
		     "GenericError", "'extra' is unexpected");
	ck_assert_int_eq(vm.stops, 0);
	/* The session goes on. */
	expect_empty_return(ask("{\"execute\": \"stop\"}"));
	ck_assert_int_eq(vm.stops, 1);
}
END_TEST

START_TEST(control_char_resets)
{
	greet_and_negotiate();
	/* An object that never ends, then a control character: one error,
	 * the half object is dropped, the next command runs. */
	feed("{\"execute\": \"stop\", \"arguments\": {\"a\": [");
	ck_assert_ptr_null(next());
	expect_error(ask("\x01\x01\x1b"), "GenericError", "parser reset");
	expect_empty_return(ask("{\"execute\": \"cont\"}"));
	ck_assert_int_eq(vm.stops, 0);
	ck_assert_int_eq(vm.conts, 1);
	/* A raw newline inside a string is not JSON either. */
	expect_error(ask("{\"execute\": \"st\nop\"}"), "GenericError",
		     "JSON parse error");
	expect_error(ask("\xff"), "GenericError", "parser reset");
	expect_empty_return(ask("{\"execute\": \"cont\"}"));
}
END_TEST

START_TEST(oversize)
{
	size_t big = QMP_MAX_INPUT + 1000, n = 0, prefix;
	char *req = malloc(big + 64);
	json_t *r;

	greet_and_negotiate();
	n += (size_t)sprintf(req, "{\"execute\": \"stop\", \"id\": \"");
	memset(req + n, 'x', big);
	n += big;
	n += (size_t)sprintf(req + n, "\"}{\"execute\": \"cont\"}");
	/* In pieces, so the limit is hit across feeds. */
	for (size_t off = 0; off < n; off += 4093)
		ck_assert_int_eq(qmp_session__feed(s, req + off,
						   n - off < 4093 ? n - off :
								    4093), 0);
	r = next();
	expect_error(r, "GenericError", "exceeds 65536 bytes");
	expect_empty_return(next());
	ck_assert_ptr_null(next());
	ck_assert_int_eq(vm.stops, 0);
	ck_assert_int_eq(vm.conts, 1);
	/* Exactly at the limit is fine. */
	prefix = (size_t)sprintf(req, "{\"execute\": \"stop\", \"id\": \"");
	memset(req + prefix, 'y', QMP_MAX_INPUT - prefix - 2);
	n = QMP_MAX_INPUT - 2;
	n += (size_t)sprintf(req + n, "\"}");
	ck_assert_uint_eq(n, QMP_MAX_INPUT);
	ck_assert_int_eq(qmp_session__feed(s, req, n), 0);
	r = next();
	ck_assert_uint_eq(strlen(json_string_value(json_object_get(r, "id"))),
			  QMP_MAX_INPUT - 2 - prefix);
	expect_empty_return(r);
	ck_assert_int_eq(vm.stops, 1);
	free(req);
}
END_TEST

START_TEST(too_deep)
{
	char req[512];
	size_t n = 0;

	greet_and_negotiate();
	n += (size_t)sprintf(req, "{\"execute\": \"stop\", \"id\": ");
	for (int i = 0; i < 100; i++)
		req[n++] = '[';
	for (int i = 0; i < 100; i++)
		req[n++] = ']';
	n += (size_t)sprintf(req + n, "}{\"execute\": \"cont\"}");
	ck_assert_int_eq(qmp_session__feed(s, req, n), 0);
	expect_error(next(), "GenericError", "nesting deeper");
	expect_empty_return(next());
	ck_assert_ptr_null(next());
	ck_assert_int_eq(vm.stops, 0);
}
END_TEST

START_TEST(unknown_command_and_arguments)
{
	json_t *v;

	greet_and_negotiate();
	expect_error(ask("{\"execute\": \"migrate\"}"), "CommandNotFound",
		     "migrate");
	expect_error(ask("{\"execute\": \"stop\", \"arguments\": 5}"),
		     "GenericError", "'arguments' must be an object");
	expect_error(ask("{\"execute\": \"stop\", \"arguments\": [1]}"),
		     "GenericError", "'arguments' must be an object");
	expect_error(ask("{\"execute\": \"stop\", \"arguments\": {\"x\": 1}}"),
		     "GenericError", "Parameter 'x' is unexpected");
	ck_assert_int_eq(vm.stops, 0);
	expect_empty_return(ask("{\"execute\": \"stop\", \"arguments\": {}}"));
	ck_assert_int_eq(vm.stops, 1);

	expect_error(ask("{\"execute\": \"x-take\", \"arguments\": "
			 "{\"n\": \"3\"}}"),
		     "GenericError", "Invalid parameter type for 'n', "
		     "expected: integer");
	expect_error(ask("{\"execute\": \"x-take\", \"arguments\": "
			 "{\"n\": 3, \"label\": 4}}"),
		     "GenericError", "'label', expected: string");
	expect_error(ask("{\"execute\": \"x-take\"}"), "GenericError",
		     "Parameter 'n' is missing");
	expect_error(ask("{\"execute\": \"x-take\", \"arguments\": "
			 "{\"n\": 1.0}}"),
		     "GenericError", "expected: integer");
	ck_assert_int_eq(last_int, 0);
	v = expect_return(ask("{\"execute\": \"x-take\", \"arguments\": "
			      "{\"n\": 21, \"label\": \"a\"}}"));
	ck_assert_int_eq(json_integer_value(json_object_get(v, "doubled")), 42);
	ck_assert_int_eq(last_int, 21);
	json_decref(v);
}
END_TEST

START_TEST(events)
{
	struct timespec ts = { 1700000000, 123456789 };
	json_t *data = json_pack("{s:b,s:s}", "guest", 1, "reason",
				 "guest-shutdown");
	char *line = qmp__event_text("SHUTDOWN", data, &ts);
	json_t *e, *t;

	ck_assert_ptr_nonnull(line);
	ck_assert_int_eq(line[strlen(line) - 1], '\n');
	json_decref(next()); /* greeting */
	/* Before negotiation no event goes out. */
	ck_assert_int_eq(qmp_session__push_event(s, line), 0);
	ck_assert_ptr_null(next());
	expect_empty_return(ask("{\"execute\": \"qmp_capabilities\"}"));
	ck_assert_int_eq(qmp_session__push_event(s, line), 0);
	e = next();
	ck_assert_str_eq(json_string_value(json_object_get(e, "event")),
			 "SHUTDOWN");
	ck_assert(json_equal(json_object_get(e, "data"), data));
	t = json_object_get(e, "timestamp");
	ck_assert_int_eq(json_integer_value(json_object_get(t, "seconds")),
			 1700000000);
	ck_assert_int_eq(json_integer_value(json_object_get(t,
							    "microseconds")),
			 123456);
	json_decref(e);
	free(line);
	json_decref(data);
	/* No data member when there is none. */
	line = qmp__event_text("STOP", NULL, &ts);
	ck_assert_int_eq(qmp_session__push_event(s, line), 0);
	e = next();
	ck_assert_ptr_null(json_object_get(e, "data"));
	json_decref(e);
	free(line);
}
END_TEST

START_TEST(output_bound)
{
	struct timespec ts = { 1, 0 };
	char *line = qmp__event_text("RESUME", NULL, &ts);
	size_t len;
	int rc = 0, i;

	greet_and_negotiate();
	/* A client that never reads: output stops growing, the session
	 * reports itself broken, and feeding is refused. */
	for (i = 0; i < 1000000 && rc == 0; i++)
		rc = qmp_session__push_event(s, line);
	ck_assert_int_eq(rc, -1);
	ck_assert(qmp_session__broken(s));
	qmp_session__output(s, &len);
	ck_assert_uint_le(len, QMP_MAX_OUTPUT);
	ck_assert_int_eq(qmp_session__feed(s, "{\"execute\": \"stop\"}", 19),
			 -1);
	ck_assert_int_eq(vm.stops, 0);
	free(line);
}
END_TEST

/* Random bytes in random pieces (seeded: reproducible): never a crash
 * (ASan/UBSan watch), and after a reset character a command still runs. */
START_TEST(random_input)
{
	static const char alphabet[] = "{}[]\",:\\ \r\n\t0123456789eE.-+"
				       "abtrufnlsxq\x01\x80\xc3\xa9\xff";
	unsigned seed = 12345;
	char buf[512];
	json_t *r;

	greet_and_negotiate();
	for (int round = 0; round < 1500; round++) {
		size_t n = (size_t)rand_r(&seed) % sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = rand_r(&seed) % 4 ?
					 alphabet[(size_t)rand_r(&seed) %
						  (sizeof(alphabet) - 1)] :
					 (char)rand_r(&seed);
		ck_assert_int_eq(qmp_session__feed(s, buf, n), 0);
		while ((r = next()))
			json_decref(r);
		if (round % 500 == 0) {
			/* Valid commands in between keep the table honest:
			 * nothing random may have run an action. */
			ck_assert_int_eq(vm.stops + vm.conts + vm.quits +
						 vm.resets + vm.powerdowns, 0);
		}
	}
	feed("\x01{\"execute\": \"query-status\", \"id\": \"end\"}");
	{
		json_t *last = NULL;

		while ((r = next())) {
			json_decref(last);
			last = r;
		}
		ck_assert_ptr_nonnull(last);
		ck_assert_str_eq(json_string_value(json_object_get(last, "id")),
				 "end");
		json_decref(expect_return(last));
	}
}
END_TEST

static Suite *qmp_suite(void)
{
	Suite *su = suite_create("qmp");
	TCase *tc = tcase_create("engine");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, greeting);
	tcase_add_test(tc, negotiation);
	tcase_add_test(tc, status_and_actions);
	tcase_add_test(tc, queries);
	tcase_add_test(tc, cluster_view);
	tcase_add_test(tc, ids_echoed);
	tcase_add_test(tc, split_input);
	tcase_add_test(tc, merged_input);
	tcase_add_test(tc, malformed);
	tcase_add_test(tc, control_char_resets);
	tcase_add_test(tc, oversize);
	tcase_add_test(tc, too_deep);
	tcase_add_test(tc, unknown_command_and_arguments);
	tcase_add_test(tc, events);
	tcase_add_test(tc, output_bound);
	tcase_add_test(tc, random_input);
	tcase_set_timeout(tc, 60);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(qmp_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
