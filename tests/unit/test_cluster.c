/* The cluster control plane: the VM description a node receives (and
 * refuses when bad), the "krg-vmm node" arguments, and two cluster members
 * in one process assembling, pausing and stopping a VM over real loopback
 * sockets, with messages that arrive before their handler is registered. */
#include <arpa/inet.h>
#include <check.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "vmm/cluster.h"
#include "vmm/node_spawn.h"
#include "vmm/node_stats.h"
#include "vmm/settings.h"
#include "vmm/vm_description.h"

static struct vm_description *good_description(void)
{
	static struct vm_config cfg;
	static struct numa_layout lay;
	struct vm_description *d = calloc(1, sizeof(*d));
	struct guest_mem_region ram[1] = { { .gpa = 0, .size = 256ull << 20 } };
	char err[256];

	settings__defaults(&cfg);
	cfg.nr_vcpus = 2;
	ck_assert_int_eq(numa_layout__build(&lay, 2, 2, ram, 1, NULL, err,
					    sizeof(err)), 0);
	ck_assert_int_eq(vm_description__fill(d, 0x1234, &cfg, &lay, NULL,
					      2700000, err, sizeof(err)), 0);
	return d;
}

START_TEST(description_round_trip_and_refusals)
{
	struct vm_description *d = good_description(), *out = malloc(sizeof(*d));
	char err[256];

	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), 0);
	ck_assert_uint_eq(out->cfg.nr_vcpus, 2);
	ck_assert_uint_eq(out->layout.nr_nodes, 2);
	/* truncated, another cluster, another node count */
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d) - 1, 0x1234,
						2, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "same krg-vmm"));
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x9999, 2,
						err, sizeof(err)), -1);
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 3,
						err, sizeof(err)), -1);
	/* another version */
	d->version = 99;
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "version 99"));
	d->version = VM_DESCRIPTION_VERSION;
	/* a string that never ends */
	memset(d->cfg.append, 'x', sizeof(d->cfg.append));
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "append"));
	d->cfg.append[0] = '\0';
	/* a layout that does not match the settings or is broken */
	d->cfg.nr_vcpus = 3;
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), -1);
	d->cfg.nr_vcpus = 2;
	d->layout.range[1].gpa += 4096;
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), -1);
	d->layout.range[1].gpa -= 4096;
	d->nr_cpuid = VM_DESCRIPTION_MAX_CPUID + 1;
	ck_assert_int_eq(vm_description__decode(out, d, sizeof(*d), 0x1234, 2,
						err, sizeof(err)), -1);
	free(d);
	free(out);
}
END_TEST

START_TEST(node_args)
{
	struct node_args a;
	char err[256];
	int p[2];
	const char key[] = "00112233445566778899aabbccddeeff00112233445566778899aabbccddeeff";
	char kfd[16];

	ck_assert_int_eq(pipe(p), 0);
	ck_assert_int_eq(write(p[1], key, strlen(key)), (int)strlen(key));
	close(p[1]);
	snprintf(kfd, sizeof(kfd), "%d", p[0]);
	{
		char *const argv[] = { "--node-id", "1", "--nodes",
				       "127.0.0.1:1,127.0.0.1:2", "--cluster-id",
				       "abc", "--key-fd", kfd, "--listen-fd",
				       "5", NULL };

		ck_assert_int_eq(node_spawn__parse_args(10, argv, &a, err,
							sizeof(err)), 0);
		ck_assert_uint_eq(a.self, 1);
		ck_assert_uint_eq(a.nr_nodes, 2);
		ck_assert_str_eq(a.addrs[1], "127.0.0.1:2");
		ck_assert_uint_eq(a.cluster_id, 0xabc);
		ck_assert_uint_eq(a.key.len, 32);
		ck_assert_int_eq(a.listen_fd, 5);
	}
	{
		char *const bad_id[] = { "--node-id", "0", "--nodes", "a:1,b:2",
					 "--cluster-id", "1", "--key-fd", "0",
					 NULL };
		char *const no_value[] = { "--node-id", NULL };
		char *const unknown[] = { "--frob", "1", NULL };
		char *const empty_node[] = { "--node-id", "1", "--nodes",
					     "a:1,,b:2", NULL };

		ck_assert_int_eq(node_spawn__parse_args(8, bad_id, &a, err,
							sizeof(err)), -1);
		ck_assert_int_eq(node_spawn__parse_args(1, no_value, &a, err,
							sizeof(err)), -1);
		ck_assert_int_eq(node_spawn__parse_args(2, unknown, &a, err,
							sizeof(err)), -1);
		ck_assert_ptr_nonnull(strstr(err, "--frob"));
		ck_assert_int_eq(node_spawn__parse_args(4, empty_node, &a, err,
							sizeof(err)), -1);
	}
}
END_TEST

START_TEST(stats_check)
{
	struct node_stats s = { .version = NODE_STATS_VERSION, .node = 3 }, out;

	ck_assert_int_eq(node_stats__check(&s, sizeof(s), 3, &out), 0);
	ck_assert_int_eq(node_stats__check(&s, sizeof(s), 2, &out), -1);
	ck_assert_int_eq(node_stats__check(&s, sizeof(s) - 1, 3, &out), -1);
	s.version = 7;
	ck_assert_int_eq(node_stats__check(&s, sizeof(s), 3, &out), -1);
}
END_TEST

/* ---- two members over loopback ---- */

struct member {
	struct cluster *c;
	int stop_status;
	char stop_reason[64];
	int dsm_seen;       /* DSM-range messages seen by the handler */
	unsigned first_type;
	int pauses, resumes; /* PAUSE messages seen by the hook */
};

static void m_pause(void *ctx, bool on)
{
	struct member *m = ctx;

	if (on)
		__atomic_add_fetch(&m->pauses, 1, __ATOMIC_SEQ_CST);
	else
		__atomic_add_fetch(&m->resumes, 1, __ATOMIC_SEQ_CST);
}

static int seen(int *counter)
{
	return __atomic_load_n(counter, __ATOMIC_SEQ_CST);
}

static void m_stop(void *ctx, int status, const char *reason)
{
	struct member *m = ctx;

	m->stop_status = status;
	snprintf(m->stop_reason, sizeof(m->stop_reason), "%s", reason);
}

static size_t m_stats(void *ctx, void *buf, size_t cap)
{
	struct node_stats s = { .version = NODE_STATS_VERSION, .node = 1,
				.vcpu_exits = 42 };

	memcpy(buf, &s, sizeof(s));
	return sizeof(s);
}

static void m_dsm(void *ctx, unsigned sender, unsigned type,
		  const void *payload, uint32_t len)
{
	struct member *m = ctx;

	if (!m->dsm_seen)
		m->first_type = type;
	m->dsm_seen++;
}

struct start_arg {
	struct cluster *c;
	int rc;
};

static void *start_thread(void *p)
{
	struct start_arg *a = p;
	char err[256];

	a->rc = cluster__start(a->c, 10000, err, sizeof(err));
	return NULL;
}

START_TEST(two_members_assemble_and_stop)
{
	int fds[2];
	char addrs_buf[2][64];
	const char *addrs[2];
	struct member mem[2] = { { .stop_status = -1 }, { .stop_status = -1 } };
	struct vm_description *d = good_description(), *got = malloc(sizeof(*d));
	char err[256];
	pthread_t t;
	struct start_arg sa;
	struct node_stats all[2];
	bool have[2];
	struct iovec iov = { (void *)"x", 1 };

	/* Two listening sockets on loopback, as --local-nodes makes them. */
	for (int i = 0; i < 2; i++) {
		struct sockaddr_in sin = { .sin_family = AF_INET };
		socklen_t sl = sizeof(sin);

		sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
		fds[i] = socket(AF_INET, SOCK_STREAM, 0);
		ck_assert_int_eq(bind(fds[i], (struct sockaddr *)&sin,
				      sizeof(sin)), 0);
		ck_assert_int_eq(listen(fds[i], 8), 0);
		getsockname(fds[i], (struct sockaddr *)&sin, &sl);
		snprintf(addrs_buf[i], sizeof(addrs_buf[i]), "127.0.0.1:%u",
			 ntohs(sin.sin_port));
		addrs[i] = addrs_buf[i];
	}
	{
		struct net_key key;

		ck_assert_int_eq(net_auth__key_generate(&key, err, sizeof(err)),
				 0);
		for (unsigned i = 0; i < 2; i++) {
			struct cluster_opts o = { .self = i, .nr_nodes = 2,
						  .addrs = addrs, .key = &key,
						  .cluster_id = 0x1234,
						  .listen_fd = fds[i] };
			struct cluster_hooks h = { .ctx = &mem[i],
						   .stop = m_stop,
						   .stats = m_stats,
						   .pause = m_pause };

			mem[i].c = cluster__create(&o, err, sizeof(err));
			ck_assert_msg(mem[i].c != NULL, "%s", err);
			cluster__set_hooks(mem[i].c, &h);
		}
	}
	sa.c = mem[1].c;
	pthread_create(&t, NULL, start_thread, &sa);
	ck_assert_int_eq(cluster__start(mem[0].c, 10000, err, sizeof(err)), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(sa.rc, 0);

	/* A DSM message before node 1 registered its handler: kept. */
	ck_assert_int_eq(cluster__send(mem[0].c, 1, NET_CH_FAST,
				       NET_TYPE_DSM_FIRST + 3, &iov, 1), 0);
	ck_assert_int_eq(cluster__send_description(mem[0].c, d, err,
						   sizeof(err)), 0);
	ck_assert_int_eq(cluster__wait_description(mem[1].c, got, 5000, err,
						   sizeof(err)), 0);
	ck_assert_uint_eq(got->cfg.nr_vcpus, 2);
	usleep(50000);
	ck_assert_int_eq(cluster__register(mem[1].c, NET_TYPE_DSM_FIRST, m_dsm,
					   &mem[1]), 0);
	ck_assert_int_eq(mem[1].dsm_seen, 1);
	ck_assert_uint_eq(mem[1].first_type, NET_TYPE_DSM_FIRST + 3);
	ck_assert_int_eq(cluster__register(mem[1].c, NET_TYPE_CONTROL_FIRST,
					   m_dsm, &mem[1]), -1);

	/* READY, START */
	ck_assert_int_eq(cluster__wait_ready(mem[0].c, 200, err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "timed out"));
	ck_assert_int_eq(cluster__send_ready(mem[1].c, err, sizeof(err)), 0);
	ck_assert_int_eq(cluster__wait_ready(mem[0].c, 5000, err, sizeof(err)),
			 0);
	ck_assert_int_eq(cluster__send_start(mem[0].c, err, sizeof(err)), 0);
	ck_assert_int_eq(cluster__wait_start(mem[1].c, 5000, err, sizeof(err)),
			 0);

	/* Node 0 gathers node 1's counters. */
	ck_assert_int_eq(cluster__gather_stats(mem[0].c, all, sizeof(all[0]),
					       have, 2000), 0);
	ck_assert(have[1]);
	ck_assert_uint_eq(all[1].vcpu_exits, 42);

	/* PAUSE: node 1's hook runs; node 0 waits for its confirmation and
	 * names it when none comes.  Only node 0 pauses the others. */
	ck_assert_int_eq(cluster__send_pause(mem[1].c, true), -1);
	ck_assert_int_eq(cluster__send_pause(mem[0].c, true), 0);
	ck_assert_int_eq(cluster__wait_paused(mem[0].c, 300, err, sizeof(err)),
			 -1);
	ck_assert_str_eq(err, "node 1 did not confirm the pause within 300 ms");
	ck_assert_int_eq(seen(&mem[1].pauses), 1);
	cluster__pause_ack(mem[1].c);
	ck_assert_int_eq(cluster__wait_paused(mem[0].c, 5000, err, sizeof(err)),
			 0);
	/* A confirmation of an older PAUSE does not count for a new one. */
	ck_assert_int_eq(cluster__send_pause(mem[0].c, false), 0);
	ck_assert_int_eq(cluster__wait_paused(mem[0].c, 10, err, sizeof(err)),
			 0);
	for (int i = 0; i < 100 && seen(&mem[1].resumes) < 1; i++)
		usleep(10000);
	ck_assert_int_eq(seen(&mem[1].resumes), 1);
	cluster__pause_ack(mem[1].c); /* answers the resume: stale */
	ck_assert_int_eq(cluster__send_pause(mem[0].c, true), 0);
	ck_assert_int_eq(cluster__wait_paused(mem[0].c, 300, err, sizeof(err)),
			 -1);
	for (int i = 0; i < 100 && seen(&mem[1].pauses) < 2; i++)
		usleep(10000);
	cluster__pause_ack(mem[1].c);
	ck_assert_int_eq(cluster__wait_paused(mem[0].c, 5000, err, sizeof(err)),
			 0);

	/* STOP from node 1 reaches node 0's hook once, with its reason. */
	cluster__broadcast_stop(mem[1].c, 3, "guest powered off");
	for (int i = 0; i < 100 && mem[0].stop_status < 0; i++)
		usleep(10000);
	ck_assert_int_eq(mem[0].stop_status, 3);
	ck_assert_str_eq(mem[0].stop_reason, "guest powered off");
	ck_assert(cluster__stopping(mem[0].c));
	cluster__destroy(mem[1].c);
	cluster__destroy(mem[0].c);
	free(d);
	free(got);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cluster");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, description_round_trip_and_refusals);
	tcase_add_test(tc, node_args);
	tcase_add_test(tc, stats_check);
	tcase_add_test(tc, two_members_assemble_and_stop);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
