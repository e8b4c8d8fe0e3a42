/* Unit tests for the forced exit of a node whose stop after a failure does
 * not finish (vmm/machine_run.c): a thread stuck in the kernel on a page of
 * a dead node must not keep the process alive. */
#include <check.h>
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "vmm/machine.h"

struct outcome {
	bool exited;		/* false: still running after the wait */
	int status;		/* exit status when exited */
	double secs;		/* from the stop request to the exit */
	char err[512];		/* what the child wrote to stderr */
};

static double now_s(void)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

/* A child asks its machine to stop with @status, then either finishes
 * (exit 42, as the orderly stop would) or hangs like a thread blocked on a
 * page no one will send.  The parent waits up to @wait_s seconds. */
static void run_child(unsigned grace_s, int status, bool stuck, double wait_s,
		      struct outcome *o)
{
	int fds[2];
	pid_t pid;
	double t0;
	ssize_t n;

	memset(o, 0, sizeof(*o));
	ck_assert_int_eq(pipe(fds), 0);
	t0 = now_s();
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		struct machine *m = calloc(1, sizeof(*m));

		dup2(fds[1], STDERR_FILENO);
		close(fds[0]);
		pthread_mutex_init(&m->life_lock, NULL);
		pthread_cond_init(&m->life_cond, NULL);
		m->stop_grace_s = grace_s;
		machine__request_stop(m, status, "node %u stopped answering", 1u);
		if (stuck)
			for (;;)
				pause();
		_exit(42);
	}
	close(fds[1]);
	for (;;) {
		int st;
		pid_t r = waitpid(pid, &st, WNOHANG);

		if (r == pid) {
			o->exited = true;
			o->status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
			o->secs = now_s() - t0;
			break;
		}
		if (now_s() - t0 > wait_s) {
			kill(pid, SIGKILL);
			waitpid(pid, &st, 0);
			break;
		}
		usleep(20000);
	}
	n = read(fds[0], o->err, sizeof(o->err) - 1);
	o->err[n > 0 ? n : 0] = '\0';
	close(fds[0]);
}

START_TEST(stuck_failed_stop_exits)
{
	struct outcome o;

	run_child(1, KRG_EXIT_FAILURE, true, 10, &o);
	ck_assert_msg(o.exited, "a node stuck after a failure did not exit");
	ck_assert_int_eq(o.status, KRG_EXIT_FAILURE);
	ck_assert_msg(o.secs >= 0.9 && o.secs < 5, "exited after %.2f s",
		      o.secs);
	ck_assert_str_eq(o.err, "krg-vmm: not stopped 1 s after the failure "
			 "(node 1 stopped answering): a thread is stuck, "
			 "exiting\n");
}
END_TEST

START_TEST(orderly_stop_wins)
{
	struct outcome o;

	/* The orderly stop finishing first decides the status. */
	run_child(1, KRG_EXIT_FAILURE, false, 10, &o);
	ck_assert(o.exited);
	ck_assert_int_eq(o.status, 42);
	ck_assert_str_eq(o.err, "");
}
END_TEST

START_TEST(clean_stop_not_forced)
{
	struct outcome o;

	/* A stop that is not a failure (power-off, a signal) is never
	 * forced: a long disk flush may legitimately take its time. */
	run_child(1, KRG_EXIT_OK, true, 2.5, &o);
	ck_assert_msg(!o.exited, "a clean stop was forced (status %d)",
		      o.status);
	/* Grace 0 turns the forced exit off. */
	run_child(0, KRG_EXIT_FAILURE, true, 2.5, &o);
	ck_assert(!o.exited);
}
END_TEST

static Suite *stop_suite(void)
{
	Suite *su = suite_create("machine_stop");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, stuck_failed_stop_exits);
	tcase_add_test(tc, orderly_stop_wins);
	tcase_add_test(tc, clean_stop_not_forced);
	tcase_set_timeout(tc, 30);
	suite_add_tcase(su, tc);
	return su;
}

int main(void)
{
	SRunner *sr = srunner_create(stop_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
