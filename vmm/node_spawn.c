#include "vmm/node_spawn.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "net/net_sock.h"
#include "vmm/errf.h"

static void exec_child(const char *exe, const struct node_args *a,
		       unsigned node, int listen_fd, int key_fd,
		       char *const extra_argv[])
{
	char id[16], nodes[NET_MAX_NODES * 64], cid[32], kfd[16], lfd[16];
	char *argv[64];
	size_t n = 0, used = 0;

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	/* The parent may already be gone (then PDEATHSIG never comes). */
	if (getppid() == 1)
		_exit(1);
	for (unsigned i = 0; i < a->nr_nodes; i++)
		used += (size_t)snprintf(nodes + used, sizeof(nodes) - used,
					 "%s%s", i ? "," : "", a->addrs[i]);
	snprintf(id, sizeof(id), "%u", node);
	snprintf(cid, sizeof(cid), "%016" PRIx64, a->cluster_id);
	snprintf(kfd, sizeof(kfd), "%d", key_fd);
	snprintf(lfd, sizeof(lfd), "%d", listen_fd);
	argv[n++] = (char *)"krg-vmm";
	argv[n++] = (char *)"node";
	argv[n++] = (char *)"--node-id";
	argv[n++] = id;
	argv[n++] = (char *)"--nodes";
	argv[n++] = nodes;
	argv[n++] = (char *)"--cluster-id";
	argv[n++] = cid;
	argv[n++] = (char *)"--key-fd";
	argv[n++] = kfd;
	argv[n++] = (char *)"--listen-fd";
	argv[n++] = lfd;
	for (size_t i = 0; extra_argv && extra_argv[i] && n < 62; i++)
		argv[n++] = extra_argv[i];
	argv[n] = NULL;
	execv(exe, argv);
	fprintf(stderr, "krg-vmm: node %u: cannot run %s: %s\n", node, exe,
		strerror(errno));
	_exit(1);
}

int node_spawn__local(struct local_cluster *lc, unsigned nr_nodes,
		      const char *self_exe, char *const extra_argv[],
		      char *err, size_t errlen)
{
	struct node_args *a = &lc->node0;
	int fds[NET_MAX_NODES];
	uint8_t token[16];
	unsigned i;

	memset(lc, 0, sizeof(*lc));
	for (i = 0; i < NET_MAX_NODES; i++)
		fds[i] = -1;
	if (nr_nodes < 2 || nr_nodes > NET_MAX_NODES) {
		errf(err, errlen, "%u local nodes: 2 to %u", nr_nodes,
		     NET_MAX_NODES);
		return -1;
	}
	a->nr_nodes = nr_nodes;
	a->self = 0;
	if (net_auth__key_generate(&a->key, err, errlen) < 0)
		return -1;
	/* A fresh id per launch: two local clusters never talk. */
	{
		struct timespec ts;

		clock_gettime(CLOCK_REALTIME, &ts);
		memcpy(token, &ts, sizeof(token) < sizeof(ts) ? sizeof(token) :
		       sizeof(ts));
		memcpy(token + 8, a->key.bytes, 8);
		a->cluster_id = net_auth__cluster_id(token, sizeof(token));
	}
	for (i = 0; i < nr_nodes; i++) {
		fds[i] = net_sock__listen("127.0.0.1", "0", a->addrs[i],
					  sizeof(a->addrs[i]), err, errlen);
		if (fds[i] < 0)
			goto fail;
	}
	for (i = 1; i < nr_nodes; i++) {
		int kfd = net_auth__key_pipe(&a->key);
		pid_t pid;

		if (kfd < 0) {
			errf(err, errlen, "cannot pass the key to node %u: %s",
			     i, strerror(errno));
			goto fail;
		}
		pid = fork();
		if (pid < 0) {
			errf(err, errlen, "cannot start node %u: %s", i,
			     strerror(errno));
			close(kfd);
			goto fail;
		}
		if (pid == 0) {
			/* Only its own socket and the key stay open. */
			int lfd = dup(fds[i]), k2 = dup(kfd);

			exec_child(self_exe, a, i, lfd, k2, extra_argv);
		}
		close(kfd);
		lc->pid[i] = pid;
	}
	for (i = 1; i < nr_nodes; i++)
		close(fds[i]);
	a->listen_fd = fds[0];
	return 0;
fail:
	for (i = 0; i < nr_nodes; i++)
		if (fds[i] >= 0)
			close(fds[i]);
	node_spawn__kill(lc);
	return -1;
}

void node_spawn__kill(struct local_cluster *lc)
{
	for (unsigned i = 1; i < NET_MAX_NODES; i++)
		if (lc->pid[i] > 0) {
			kill(lc->pid[i], SIGKILL);
			waitpid(lc->pid[i], NULL, 0);
			lc->pid[i] = 0;
		}
}

int node_spawn__reap(struct local_cluster *lc, unsigned timeout_ms)
{
	struct timespec start, now;
	int first = 0;

	clock_gettime(CLOCK_MONOTONIC, &start);
	for (;;) {
		bool left = false;

		for (unsigned i = 1; i < NET_MAX_NODES; i++) {
			int st;
			pid_t r;

			if (lc->pid[i] <= 0)
				continue;
			r = waitpid(lc->pid[i], &st, WNOHANG);
			if (r == 0) {
				left = true;
				continue;
			}
			lc->pid[i] = 0;
			if (r > 0 && !first) {
				if (WIFEXITED(st) && WEXITSTATUS(st))
					first = WEXITSTATUS(st);
				else if (WIFSIGNALED(st))
					first = 1;
			}
		}
		if (!left)
			return first;
		clock_gettime(CLOCK_MONOTONIC, &now);
		if ((now.tv_sec - start.tv_sec) * 1000 +
		    (now.tv_nsec - start.tv_nsec) / 1000000 >=
		    (long)timeout_ms) {
			node_spawn__kill(lc);
			return first ? first : 1;
		}
		usleep(10000);
	}
}

static int parse_uint(const char *s, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	errno = 0;
	v = strtoul(s, &end, 10);
	if (errno || !*s || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static int read_key_fd(int fd, struct net_key *key, char *err, size_t errlen)
{
	uint8_t buf[2 * NET_KEY_MAX + 1];
	size_t n = 0;
	ssize_t r;

	while (n < sizeof(buf) && (r = read(fd, buf + n, sizeof(buf) - n)) > 0)
		n += (size_t)r;
	close(fd);
	if (n == 0 || n > 2 * NET_KEY_MAX) {
		errf(err, errlen, "no usable cluster key on descriptor %d", fd);
		return -1;
	}
	return net_auth__key_parse(key, buf, n, err, errlen);
}

int node_spawn__parse_args(int argc, char *const argv[], struct node_args *a,
			   char *err, size_t errlen)
{
	unsigned long v;
	bool have_id = false, have_nodes = false, have_cid = false;
	int key_fd = -1;

	memset(a, 0, sizeof(*a));
	a->listen_fd = -1;
	for (int i = 0; i < argc; i++) {
		const char *o = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;

		if (!val) {
			errf(err, errlen, "node: option %s needs a value", o);
			return -1;
		}
		i++;
		if (!strcmp(o, "--node-id")) {
			if (parse_uint(val, NET_MAX_NODES - 1, &v) < 0)
				goto bad;
			a->self = (unsigned)v;
			have_id = true;
		} else if (!strcmp(o, "--nodes")) {
			const char *p = val;

			a->nr_nodes = 0;
			while (*p && a->nr_nodes < NET_MAX_NODES) {
				size_t l = strcspn(p, ",");

				if (!l || l >= sizeof(a->addrs[0]))
					goto bad;
				memcpy(a->addrs[a->nr_nodes], p, l);
				a->addrs[a->nr_nodes++][l] = '\0';
				p += l + (p[l] == ',');
			}
			if (*p || a->nr_nodes < 2)
				goto bad;
			have_nodes = true;
		} else if (!strcmp(o, "--cluster-id")) {
			char *end;

			errno = 0;
			a->cluster_id = strtoull(val, &end, 16);
			if (errno || !*val || *end)
				goto bad;
			have_cid = true;
		} else if (!strcmp(o, "--key-fd")) {
			if (parse_uint(val, 1 << 20, &v) < 0)
				goto bad;
			key_fd = (int)v;
		} else if (!strcmp(o, "--listen-fd")) {
			if (parse_uint(val, 1 << 20, &v) < 0)
				goto bad;
			a->listen_fd = (int)v;
		} else {
			errf(err, errlen, "node: unknown option %s", o);
			return -1;
		}
		continue;
bad:
		errf(err, errlen, "node: invalid value '%s' for %s", val, o);
		return -1;
	}
	if (!have_id || !have_nodes || !have_cid || key_fd < 0 ||
	    a->self >= a->nr_nodes || a->self == 0) {
		errf(err, errlen, "node: needs --node-id (1..), --nodes, "
		     "--cluster-id and --key-fd (this verb is started by "
		     "'krg-vmm launch' or 'krg-vmm agent')");
		return -1;
	}
	return read_key_fd(key_fd, &a->key, err, errlen);
}
