/* krg-checkpoint in the QMP command table (vmm/qmp_commands.c), with a
 * fake VM: arguments checked, the reply's numbers, errors passed on. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/qmp.h"
#include "vmm/qmp_commands.h"

struct fake {
	int calls;
	char dir[256];
	bool stop;
	bool fail;
};

static int fake_checkpoint(void *ctx, const char *dir, bool stop,
			   struct qmp_checkpoint *out, struct qmp_error *err)
{
	struct fake *f = ctx;

	f->calls++;
	snprintf(f->dir, sizeof(f->dir), "%s", dir);
	f->stop = stop;
	if (f->fail)
		return qmp__fail(err, QMP_ERR_GENERIC, "checkpoint: disk full");
	*out = (struct qmp_checkpoint){ 2277, 9400000, 35, 1 };
	return 0;
}

static struct fake fake;
static struct qmp_vm_ops ops;
static struct qmp_config cfg;

/* One request after negotiation; returns the reply line (malloc'd). */
static char *ask(const char *req)
{
	struct qmp_session *s;
	const char *out;
	char *line;
	size_t len;
	const char *neg = "{\"execute\":\"qmp_capabilities\"}";

	cfg.cmds = qmp_commands__table(&cfg.nr_cmds);
	cfg.ctx = &ops;
	s = qmp_session__new(&cfg);
	ck_assert_ptr_nonnull(s);
	out = qmp_session__output(s, &len);
	qmp_session__consume(s, len);
	ck_assert_int_eq(qmp_session__feed(s, neg, strlen(neg)), 0);
	out = qmp_session__output(s, &len);
	qmp_session__consume(s, len);
	ck_assert_int_eq(qmp_session__feed(s, req, strlen(req)), 0);
	out = qmp_session__output(s, &len);
	line = strndup(out, len);
	qmp_session__free(s);
	return line;
}

static void setup(void)
{
	memset(&fake, 0, sizeof(fake));
	memset(&ops, 0, sizeof(ops));
	ops.ctx = &fake;
	ops.checkpoint = fake_checkpoint;
}

START_TEST(checkpoint_ok)
{
	char *r;

	setup();
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":"
		"{\"dir\":\"/srv/snap\",\"stop\":true}}");
	ck_assert_int_eq(fake.calls, 1);
	ck_assert_str_eq(fake.dir, "/srv/snap");
	ck_assert(fake.stop);
	ck_assert_ptr_nonnull(strstr(r, "\"pages\": 2277"));
	ck_assert_ptr_nonnull(strstr(r, "\"bytes\": 9400000"));
	ck_assert_ptr_nonnull(strstr(r, "\"total-ms\": 35"));
	free(r);
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":"
		"{\"dir\":\"/srv/snap\"}}");
	ck_assert(!fake.stop);
	free(r);
}
END_TEST

START_TEST(checkpoint_bad_args)
{
	char *r;

	setup();
	r = ask("{\"execute\":\"krg-checkpoint\"}");
	ck_assert_ptr_nonnull(strstr(r, "'dir' is missing"));
	free(r);
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":{\"dir\":7}}");
	ck_assert_ptr_nonnull(strstr(r, "Invalid parameter type"));
	free(r);
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":"
		"{\"dir\":\"/x\",\"stop\":\"yes\"}}");
	ck_assert_ptr_nonnull(strstr(r, "Invalid parameter type"));
	free(r);
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":"
		"{\"dir\":\"/x\",\"force\":true}}");
	ck_assert_ptr_nonnull(strstr(r, "unexpected"));
	free(r);
	ck_assert_int_eq(fake.calls, 0);
}
END_TEST

START_TEST(checkpoint_errors)
{
	char *r;

	setup();
	fake.fail = true;
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":{\"dir\":\"/x\"}}");
	ck_assert_ptr_nonnull(strstr(r, "GenericError"));
	ck_assert_ptr_nonnull(strstr(r, "disk full"));
	free(r);
	ops.checkpoint = NULL;
	r = ask("{\"execute\":\"krg-checkpoint\",\"arguments\":{\"dir\":\"/x\"}}");
	ck_assert_ptr_nonnull(strstr(r, "not available"));
	free(r);
}
END_TEST

static Suite *suite(void)
{
	Suite *s = suite_create("ckpt_qmp");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, checkpoint_ok);
	tcase_add_test(tc, checkpoint_bad_args);
	tcase_add_test(tc, checkpoint_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
