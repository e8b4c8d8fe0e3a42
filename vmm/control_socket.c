#include "vmm/control_socket.h"

#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

#include "vmm/cluster.h"
#include "vmm/machine.h"
#include "vmm/node_stats.h"

#define STATUS_MAX (NET_MAX_NODES * 2048 + 4096)
#define GATHER_TIMEOUT_MS 2000

struct control_socket {
	struct machine *m;
	int fd, stop_pipe[2];
	char path[108];
	pthread_t thread;
};

size_t control_socket__status_text(struct machine *m, char *buf, size_t size)
{
	static _Thread_local struct node_stats all[NET_MAX_NODES];
	bool have[NET_MAX_NODES] = { false };
	unsigned nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;
	size_t n = 0;

	node_stats__collect(m, &all[0]);
	have[0] = true;
	if (m->cluster) {
		bool got[NET_MAX_NODES];

		cluster__gather_stats(m->cluster, all, sizeof(all[0]), got,
				      GATHER_TIMEOUT_MS);
		for (unsigned i = 1; i < nodes; i++) {
			struct node_stats tmp;

			have[i] = got[i] &&
				  node_stats__check(&all[i], sizeof(all[i]), i,
						    &tmp) == 0;
		}
	}
	n += (size_t)snprintf(buf + n, size - n, "VM: %u vCPUs, %llu MiB, %u "
			      "node%s; vCPU placement:", m->nr_vcpus,
			      (unsigned long long)m->cfg->ram_mib, nodes,
			      nodes > 1 ? "s" : "");
	for (unsigned i = 0; i < m->nr_vcpus && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, " %u->%d", i,
				      m->cluster ?
					      numa_layout__vcpu_node(&m->layout,
								     i) :
					      0);
	if (n < size)
		n += (size_t)snprintf(buf + n, size - n, "\n");
	for (unsigned i = 0; i < nodes && n < size; i++) {
		const char *addr = m->cluster ? cluster__addr(m->cluster, i) :
						"local";

		if (!have[i])
			n += (size_t)snprintf(buf + n, size - n,
					      "node %u (%s): no answer\n", i,
					      addr);
		else
			n += node_stats__format(&all[i], addr, buf + n,
						size - n);
	}
	return n < size ? n : size - 1;
}

static void serve_one(struct control_socket *cs, int fd)
{
	static _Thread_local char text[STATUS_MAX];
	char cmd[64] = "";
	struct pollfd p = { .fd = fd, .events = POLLIN };
	ssize_t r = 0;
	size_t n, off = 0;

	if (poll(&p, 1, 2000) == 1)
		r = read(fd, cmd, sizeof(cmd) - 1);
	cmd[r > 0 ? r : 0] = '\0';
	cmd[strcspn(cmd, "\r\n")] = '\0';
	if (!strcmp(cmd, "status"))
		n = control_socket__status_text(cs->m, text, sizeof(text));
	else
		n = (size_t)snprintf(text, sizeof(text), "error: unknown "
				     "command '%.40s' (known: status)\n", cmd);
	while (off < n) {
		r = send(fd, text + off, n - off, MSG_NOSIGNAL);
		if (r <= 0)
			break;
		off += (size_t)r;
	}
}

static void *control_thread(void *arg)
{
	struct control_socket *cs = arg;

	for (;;) {
		struct pollfd p[2] = { { .fd = cs->fd, .events = POLLIN },
				       { .fd = cs->stop_pipe[0],
					 .events = POLLIN } };
		int fd;

		if (poll(p, 2, -1) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			break;
		if (!(p[0].revents & POLLIN))
			continue;
		fd = accept4(cs->fd, NULL, NULL, SOCK_CLOEXEC);
		if (fd < 0)
			continue;
		serve_one(cs, fd);
		close(fd);
	}
	return NULL;
}

struct control_socket *control_socket__start(struct machine *m, char *err,
					     size_t errlen)
{
	struct control_socket *cs = calloc(1, sizeof(*cs));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!cs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cs->m = m;
	cs->fd = -1;
	snprintf(cs->path, sizeof(cs->path), "%s/vm-%d.sock",
		 CONTROL_SOCKET_DIR, (int)getpid());
	mkdir(CONTROL_SOCKET_DIR, 0700);
	unlink(cs->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cs->path);
	cs->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (cs->fd < 0 || bind(cs->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(cs->path, 0600) < 0 || listen(cs->fd, 8) < 0 ||
	    pipe(cs->stop_pipe) < 0) {
		snprintf(err, errlen, "control socket %s: %s", cs->path,
			 strerror(errno));
		if (cs->fd >= 0)
			close(cs->fd);
		free(cs);
		return NULL;
	}
	if (pthread_create(&cs->thread, NULL, control_thread, cs)) {
		snprintf(err, errlen, "control socket: no thread");
		close(cs->fd);
		close(cs->stop_pipe[0]);
		close(cs->stop_pipe[1]);
		unlink(cs->path);
		free(cs);
		return NULL;
	}
	return cs;
}

void control_socket__stop(struct control_socket *cs)
{
	if (!cs)
		return;
	(void)!write(cs->stop_pipe[1], "x", 1);
	pthread_join(cs->thread, NULL);
	close(cs->fd);
	close(cs->stop_pipe[0]);
	close(cs->stop_pipe[1]);
	unlink(cs->path);
	free(cs);
}

/* The one socket in CONTROL_SOCKET_DIR, or an error listing them. */
static int find_socket(char *path, size_t size)
{
	size_t dl = strlen(CONTROL_SOCKET_DIR) + 1;
	DIR *d = opendir(CONTROL_SOCKET_DIR);
	struct dirent *e;
	unsigned found = 0;

	if (!d) {
		fprintf(stderr, "krg-vmm: no VM is running here (%s: %s)\n",
			CONTROL_SOCKET_DIR, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		if (strncmp(e->d_name, "vm-", 3) ||
		    !strstr(e->d_name, ".sock"))
			continue;
		if (found++ == 0 && strlen(e->d_name) + dl < size)
			snprintf(path, size, "%s/%.*s", CONTROL_SOCKET_DIR,
				 (int)(size - dl - 1), e->d_name);
		else
			fprintf(stderr, "krg-vmm: several VMs run here: %s/%s "
				"and %s; name one: krg-vmm status SOCKET\n",
				CONTROL_SOCKET_DIR, e->d_name, path);
	}
	closedir(d);
	if (!found)
		fprintf(stderr, "krg-vmm: no VM is running here (no socket in "
			"%s)\n", CONTROL_SOCKET_DIR);
	return found == 1 ? 0 : -1;
}

int control_socket__client(int argc, char *const argv[])
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[108], buf[4096];
	ssize_t r;
	int fd;

	if (argc > 1) {
		fprintf(stderr, "krg-vmm: usage: krg-vmm status [SOCKET]\n");
		return 2;
	}
	if (argc == 1)
		snprintf(path, sizeof(path), "%s", argv[0]);
	else if (find_socket(path, sizeof(path)) < 0)
		return 1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "krg-vmm: %s: %s\n", path, strerror(errno));
		return 1;
	}
	if (write(fd, "status\n", 7) != 7) {
		fprintf(stderr, "krg-vmm: %s: %s\n", path, strerror(errno));
		close(fd);
		return 1;
	}
	while ((r = read(fd, buf, sizeof(buf))) > 0)
		fwrite(buf, 1, (size_t)r, stdout);
	close(fd);
	return 0;
}
