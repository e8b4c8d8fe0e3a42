/* "krg-vmm status [SOCKET]": a QMP client of the control socket.  It
 * reads the greeting, negotiates, asks query-krg-status and prints the
 * text as it is; events that arrive meanwhile are skipped. */
#include <dirent.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/control_priv.h"

/* Gathering every node's counters takes at most a few seconds. */
#define REPLY_TIMEOUT_MS 30000
/* A reply line: the status text of the largest cluster, escaped. */
#define REPLY_MAX (8 * 1024 * 1024)

struct reader {
	int fd;
	char *buf;
	size_t len, cap;
};

/* Whether anybody answers at path.  A socket of a VM killed before it
 * could remove it refuses at once; its process (vm-PID.sock) is gone. */
static bool socket_answers(const char *path, const char *name, bool *dead)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	long pid = strtol(name + 3, NULL, 10);
	bool ok;

	*dead = false;
	if (fd < 0)
		return true;	/* cannot tell: count it */
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	ok = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 ||
	     (errno != ECONNREFUSED && errno != ENOENT);
	close(fd);
	/* Refused but the process lives: a VM between bind and listen. */
	*dead = !ok && pid > 0 && kill((pid_t)pid, 0) < 0 && errno == ESRCH;
	return ok;
}

int control_socket__find(char *path, size_t size, char *err, size_t errlen)
{
	DIR *d = opendir(CONTROL_SOCKET_DIR);
	struct dirent *e;
	unsigned found = 0;
	char first[108] = "", other[108] = "";

	if (!d) {
		snprintf(err, errlen, "no VM is running here (%s: %s)",
			 CONTROL_SOCKET_DIR, strerror(errno));
		return -1;
	}
	while ((e = readdir(d))) {
		char p[108];
		bool dead;

		if (strncmp(e->d_name, "vm-", 3) || !strstr(e->d_name, ".sock") ||
		    strlen(e->d_name) + sizeof(CONTROL_SOCKET_DIR) >= sizeof(p))
			continue;
		snprintf(p, sizeof(p), "%s/%.90s", CONTROL_SOCKET_DIR,
			 e->d_name);
		if (!socket_answers(p, e->d_name, &dead)) {
			if (dead)
				unlink(p);	/* left by a VM that was killed */
			continue;
		}
		if (found++ == 0)
			snprintf(first, sizeof(first), "%s", p);
		else
			snprintf(other, sizeof(other), "%s", p);
	}
	closedir(d);
	if (found == 1) {
		snprintf(path, size, "%s", first);
		return 0;
	}
	if (found)
		snprintf(err, errlen, "%u VMs run here (%s, %s%s): name one",
			 found, first, other, found > 2 ? ", ..." : "");
	else
		snprintf(err, errlen, "no VM is running here (no socket in %s)",
			 CONTROL_SOCKET_DIR);
	return -1;
}

static long ms_since(const struct timespec *t0)
{
	struct timespec t;

	clock_gettime(CLOCK_MONOTONIC, &t);
	return (t.tv_sec - t0->tv_sec) * 1000 +
	       (t.tv_nsec - t0->tv_nsec) / 1000000;
}

/* One line from the server, parsed: NULL with a reason on EOF, timeout,
 * overlong or non-JSON input. */
static json_t *read_line(struct reader *r, char *err, size_t errlen)
{
	struct timespec t0;
	char *nl;

	clock_gettime(CLOCK_MONOTONIC, &t0);
	while (!(nl = r->len ? memchr(r->buf, '\n', r->len) : NULL)) {
		struct pollfd p = { .fd = r->fd, .events = POLLIN };
		long left = REPLY_TIMEOUT_MS - ms_since(&t0);
		ssize_t n;

		if (r->len == r->cap) {
			size_t cap = r->cap ? r->cap * 2 : 65536;
			char *b = cap <= REPLY_MAX ? realloc(r->buf, cap) :
						     NULL;

			if (!b) {
				snprintf(err, errlen, "reply too long");
				return NULL;
			}
			r->buf = b;
			r->cap = cap;
		}
		if (left <= 0 || poll(&p, 1, (int)left) == 0) {
			snprintf(err, errlen, "no answer within %d s",
				 REPLY_TIMEOUT_MS / 1000);
			return NULL;
		}
		n = read(r->fd, r->buf + r->len, r->cap - r->len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			snprintf(err, errlen, "%s", n ? strerror(errno) :
				 "the VM closed the connection");
			return NULL;
		}
		r->len += (size_t)n;
	}
	{
		size_t line = (size_t)(nl - r->buf) + 1;
		json_error_t je;
		json_t *j = json_loadb(r->buf, line, 0, &je);

		memmove(r->buf, r->buf + line, r->len - line);
		r->len -= line;
		if (!j)
			snprintf(err, errlen, "not a QMP server (%s)", je.text);
		return j;
	}
}

/* The reply to the last command (events skipped). */
static json_t *read_reply(struct reader *r, char *err, size_t errlen)
{
	json_t *j;

	while ((j = read_line(r, err, errlen)) &&
	       json_object_get(j, "event"))
		json_decref(j);
	return j;
}

/* The command's return value, or NULL with the server's error.  args
 * (borrowed) may be NULL. */
static json_t *execute_args(struct reader *r, const char *cmd, json_t *args,
			    char *err, size_t errlen)
{
	json_t *c = json_pack("{s:s}", "execute", cmd), *j, *ret;
	char *line = NULL;
	size_t n = 0;
	bool sent;

	if (c && args)
		json_object_set(c, "arguments", args);
	if (c)
		line = json_dumps(c, JSON_COMPACT);
	json_decref(c);
	if (!line) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	n = strlen(line);
	line[n] = '\n'; /* json_dumps leaves room only for its NUL: swap */
	sent = send(r->fd, line, n + 1, MSG_NOSIGNAL) == (ssize_t)(n + 1);
	free(line);
	if (!sent) {
		snprintf(err, errlen, "%s", strerror(errno));
		return NULL;
	}
	j = read_reply(r, err, errlen);
	if (!j)
		return NULL;
	ret = json_object_get(j, "return");
	if (ret) {
		json_incref(ret);
	} else {
		const char *desc = json_string_value(json_object_get(
			json_object_get(j, "error"), "desc"));

		snprintf(err, errlen, "%s: %s", cmd,
			 desc ? desc : "unexpected reply");
	}
	json_decref(j);
	return ret;
}

static json_t *execute(struct reader *r, const char *cmd, char *err,
		       size_t errlen)
{
	return execute_args(r, cmd, NULL, err, errlen);
}

static int query_status(int fd, const char *path)
{
	struct reader r = { .fd = fd };
	char err[512];
	json_t *j = read_line(&r, err, sizeof(err)), *ret = NULL;
	const char *text;
	int status = 1;

	if (j && !json_object_get(j, "QMP"))
		snprintf(err, sizeof(err), "not a QMP server (no greeting)");
	else if (j && (ret = execute(&r, "qmp_capabilities", err,
				     sizeof(err)))) {
		json_decref(ret);
		ret = execute(&r, "query-krg-status", err, sizeof(err));
	}
	text = json_string_value(json_object_get(ret, "text"));
	if (text) {
		fputs(text, stdout);
		status = 0;
	} else {
		if (ret)
			snprintf(err, sizeof(err), "query-krg-status: no text "
				 "in the reply");
		fprintf(stderr, "krg-vmm: %s: %s\n", path, err);
	}
	json_decref(ret);
	json_decref(j);
	free(r.buf);
	return status;
}

int control_socket__client(int argc, char *const argv[])
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	char path[108], err[512];
	int fd, status;

	if (argc > 1) {
		fprintf(stderr, "krg-vmm: usage: krg-vmm status [SOCKET]\n");
		return 2;
	}
	if (argc == 1)
		snprintf(path, sizeof(path), "%s", argv[0]);
	else if (control_socket__find(path, sizeof(path), err,
				      sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: %s: krg-vmm status SOCKET\n", err);
		return 1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "krg-vmm: %s: %s\n", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return 1;
	}
	status = query_status(fd, path);
	close(fd);
	return status;
}

int control_socket__call(const char *sock, const char *cmd, json_t *args,
			 json_t **ret, char *err, size_t errlen)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct reader r = { .fd = -1 };
	char path[108];
	json_t *j = NULL, *caps;

	*ret = NULL;
	if (sock)
		snprintf(path, sizeof(path), "%s", sock);
	else if (control_socket__find(path, sizeof(path), err, errlen) < 0)
		return -1;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	r.fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (r.fd < 0 || connect(r.fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	j = read_line(&r, err, errlen);
	if (j && !json_object_get(j, "QMP"))
		snprintf(err, errlen, "%s: not a QMP server (no greeting)",
			 path);
	else if (j && (caps = execute(&r, "qmp_capabilities", err, errlen))) {
		json_decref(caps);
		*ret = execute_args(&r, cmd, args, err, errlen);
	}
out:
	json_decref(j);
	free(r.buf);
	if (r.fd >= 0)
		close(r.fd);
	return *ret ? 0 : -1;
}
