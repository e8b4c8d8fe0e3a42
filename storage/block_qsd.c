/* qemu-storage-daemon as a private child: QEMU's block layer opens the
 * image (qcow2, vmdk, ...) and exports it over NBD on a unix socket in a
 * directory only we can enter.  Startup is over when the daemon writes its
 * pidfile (it does so after every option has been processed); if it exits
 * first, the last line of its stderr is the error.  Its stderr is an
 * unlinked file rather than a pipe, so a chatty daemon can never block on
 * a pipe nobody reads.
 *
 * The child is forked by a "reaper" thread that then waits for it: with
 * PR_SET_PDEATHSIG bound to that thread, the daemon gets SIGTERM (and
 * flushes its caches) when this process dies for any reason, and never
 * because some other thread of ours exited. */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/pidfd.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

#define QSD "qemu-storage-daemon"
#define QSD_PACKAGE "qemu-system-common"
#define STOP_GRACE_MS 5000
#define MAX_ARGS 16
#define SUN_PATH_MAX 107
#define DIR_MAX 128     /* more would not fit a unix socket path */

extern char **environ;

struct qsd {
	char dir[DIR_MAX];
	char sock[DIR_MAX + 16];
	char pidfile[DIR_MAX + 16];
	char errfile[DIR_MAX + 16];
	char exe[PATH_MAX];
	char *argv[MAX_ARGS];
	int argc;
	int errfd;

	pthread_t reaper;
	bool reaper_started;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	pid_t pid;              /* 0 until forked, -1 if fork failed */
	int pidfd;
	int fork_errno;
	bool exited;
};

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int find_exe(char *out, size_t len)
{
	const char *path = getenv("PATH");
	const char *p = path && *path ? path : "/usr/bin:/bin";

	while (*p) {
		const char *end = strchr(p, ':');
		size_t n = end ? (size_t)(end - p) : strlen(p);

		if (n && snprintf(out, len, "%.*s/%s", (int)n, p, QSD) <
			 (int)len && !access(out, X_OK))
			return 0;
		p += n + (end ? 1 : 0);
	}
	return -1;
}

/* QEMU's key=value syntax: a comma inside a value is doubled. */
static char *keyval_escape(const char *s)
{
	size_t n = strlen(s), extra = 0;
	char *out, *o;

	for (const char *p = s; *p; p++)
		extra += *p == ',';
	out = malloc(n + extra + 1);
	if (!out)
		return NULL;
	o = out;
	for (const char *p = s; *p; p++) {
		*o++ = *p;
		if (*p == ',')
			*o++ = ',';
	}
	*o = '\0';
	return out;
}

static int add_arg(struct qsd *q, char *s)
{
	if (!s || q->argc >= MAX_ARGS - 1) {
		free(s);
		return -1;
	}
	q->argv[q->argc++] = s;
	return 0;
}

static int add_fmt(struct qsd *q, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static int add_fmt(struct qsd *q, const char *fmt, ...)
{
	va_list ap;
	char *s;
	int r;

	va_start(ap, fmt);
	r = vasprintf(&s, fmt, ap);
	va_end(ap);
	return add_arg(q, r < 0 ? NULL : s);
}

static int build_argv(struct qsd *q, const char *path, enum drive_format fmt,
		      const struct drive_opts *o)
{
	const char *ro = o->read_only ? "on" : "off";
	const char *dir = drive_opts__direct(o) ? "on" : "off";
	const char *nof = drive_opts__no_flush(o) ? "on" : "off";
	const char *disc = o->discard_unmap ? "unmap" : "ignore";
	char *file = keyval_escape(path), *sock = keyval_escape(q->sock);
	int r = -1;

	if (!file || !sock)
		goto out;
	if (add_fmt(q, "%s", QSD) || add_fmt(q, "--blockdev") ||
	    add_fmt(q, "driver=file,node-name=proto,filename=%s,read-only=%s,"
		    "cache.direct=%s,cache.no-flush=%s,discard=%s", file, ro,
		    dir, nof, disc) ||
	    add_fmt(q, "--blockdev") ||
	    add_fmt(q, "driver=%s,node-name=fmt,file=proto,read-only=%s,"
		    "cache.direct=%s,cache.no-flush=%s,discard=%s",
		    drive_opts__format_name(fmt), ro, dir, nof, disc) ||
	    add_fmt(q, "--nbd-server") ||
	    add_fmt(q, "addr.type=unix,addr.path=%s", sock) ||
	    add_fmt(q, "--export") ||
	    add_fmt(q, "type=nbd,id=export0,node-name=fmt,name=disk,"
		    "writable=%s", o->read_only ? "off" : "on") ||
	    add_fmt(q, "--pidfile") || add_fmt(q, "%s", q->pidfile))
		goto out;
	r = 0;
out:
	free(file);
	free(sock);
	return r;
}

/* In the child, between fork and exec: async-signal-safe calls only. */
static void child(struct qsd *q, pid_t parent)
{
	sigset_t none;
	int null = open("/dev/null", O_RDWR | O_CLOEXEC);

	prctl(PR_SET_PDEATHSIG, SIGTERM);
	if (getppid() != parent)
		_exit(127);
	/* Terminal signals belong to the VMM; ours only come from it. */
	setpgid(0, 0);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	signal(SIGTERM, SIG_DFL);
	signal(SIGINT, SIG_DFL);
	signal(SIGPIPE, SIG_DFL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(null, 1) < 0 ||
	    dup2(q->errfd, 2) < 0)
		_exit(127);
	/* The VMM's descriptors (KVM, sockets) are none of its business. */
	close_range(3, ~0u, 0);
	execve(q->exe, q->argv, environ);
	_exit(127);
}

static void *reaper(void *arg)
{
	struct qsd *q = arg;
	pid_t parent = getpid(), pid;
	struct pollfd pfd = { .fd = -1, .events = POLLIN };
	siginfo_t si;

	pid = fork();
	if (pid == 0)
		child(q, parent);
	/* A pidfd, not the pid: it works even where SIGCHLD is ignored
	 * (children reaped by the kernel, as in processes started by the
	 * agent) and a signal through it never reaches a recycled pid. */
	if (pid > 0) {
		pfd.fd = pidfd_open(pid, 0);
		if (pfd.fd < 0 && errno != ESRCH) {
			int e = errno;  /* no handle on it: do not keep it */

			kill(pid, SIGKILL);
			waitpid(pid, NULL, 0);
			pid = -1;
			errno = e;
		}
	}
	pthread_mutex_lock(&q->lock);
	q->pid = pid < 0 ? -1 : pid;
	q->pidfd = pfd.fd;
	q->fork_errno = pid < 0 ? errno : 0;
	q->exited = pfd.fd < 0;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	if (pfd.fd < 0)
		return NULL;
	while (poll(&pfd, 1, -1) < 0 && errno == EINTR)
		;
	/* Reaps it, unless the kernel already did. */
	waitid(P_PIDFD, (id_t)pfd.fd, &si, WEXITED);
	pthread_mutex_lock(&q->lock);
	q->exited = true;
	pthread_cond_broadcast(&q->cond);
	pthread_mutex_unlock(&q->lock);
	return NULL;
}

/* Waits up to ms for the child to exit; true if it did. */
static bool wait_exit(struct qsd *q, long long ms)
{
	struct timespec until;
	bool exited;

	clock_gettime(CLOCK_MONOTONIC, &until);
	until.tv_sec += ms / 1000;
	until.tv_nsec += (ms % 1000) * 1000000;
	if (until.tv_nsec >= 1000000000) {
		until.tv_sec++;
		until.tv_nsec -= 1000000000;
	}
	pthread_mutex_lock(&q->lock);
	while (!q->exited &&
	       pthread_cond_timedwait(&q->cond, &q->lock, &until) != ETIMEDOUT)
		;
	exited = q->exited;
	pthread_mutex_unlock(&q->lock);
	return exited;
}

static void signal_child(struct qsd *q, int sig)
{
	pthread_mutex_lock(&q->lock);
	if (q->pidfd >= 0 && !q->exited)
		pidfd_send_signal(q->pidfd, sig, NULL, 0);
	pthread_mutex_unlock(&q->lock);
}

static bool pidfile_ready(const struct qsd *q)
{
	struct stat st;

	return !stat(q->pidfile, &st) && st.st_size > 0;
}

/* Strips "qemu-storage-daemon: " and the echo of one of our options
 * ("--blockdev driver=...: ") from a line of the daemon's. */
static const char *strip_echo(const struct qsd *q, const char *line)
{
	size_t n = strlen(QSD ": ");

	if (!strncmp(line, QSD ": ", n))
		line += n;
	for (int i = 1; i + 1 < q->argc; i++) {
		size_t a = strlen(q->argv[i]), b = strlen(q->argv[i + 1]);

		if (!strncmp(line, q->argv[i], a) && line[a] == ' ' &&
		    !strncmp(line + a + 1, q->argv[i + 1], b) &&
		    !strncmp(line + a + 1 + b, ": ", 2))
			return line + a + b + 3;
	}
	return line;
}

/* QEMU prints an error as "qemu-storage-daemon: ..." and may add hint
 * lines after it: the last such error with its hints, on one line. */
void qsd__last_error(struct qsd *q, char *buf, size_t len)
{
	char text[4096], *lines[64], *save = NULL;
	int n = 0, from = 0;
	size_t used = 0;
	struct stat st;
	ssize_t got;

	buf[0] = '\0';
	if (!wait_exit(q, 0) || q->errfd < 0 || fstat(q->errfd, &st))
		return;
	got = pread(q->errfd, text, sizeof(text) - 1,
		    st.st_size > (off_t)sizeof(text) - 1 ?
		    st.st_size - (off_t)sizeof(text) + 1 : 0);
	if (got <= 0)
		return;
	text[got] = '\0';
	for (char *l = strtok_r(text, "\r\n", &save); l;
	     l = strtok_r(NULL, "\r\n", &save)) {
		if (!*l)
			continue;
		if (n == 64) {
			memmove(lines, lines + 1, sizeof(lines[0]) * 63);
			n--;
		}
		lines[n++] = l;
	}
	for (int i = 0; i < n; i++)
		if (!strncmp(lines[i], QSD ": ", strlen(QSD ": ")))
			from = i;
	for (int i = from; i < n && used + 1 < len; i++) {
		int w = snprintf(buf + used, len - used, "%s%s",
				 i > from ? "; " : "",
				 i == from ? strip_echo(q, lines[i]) :
				 lines[i]);

		if (w < 0)
			break;
		used += (size_t)w;
	}
}

const char *qsd__socket(const struct qsd *q)
{
	return q->sock;
}

static int make_dir(struct qsd *q, char *err, size_t errlen)
{
	const char *tmp = getenv("TMPDIR");

	if (!tmp || !*tmp)
		tmp = "/tmp";
	if (strlen(tmp) + strlen("/krg-vmm-blk.XXXXXX/nbd.sock") >
	    SUN_PATH_MAX) {
		errf(err, errlen, "TMPDIR %s is too long for a unix socket "
		     "path", tmp);
		return -1;
	}
	snprintf(q->dir, sizeof(q->dir), "%s/krg-vmm-blk.XXXXXX", tmp);
	if (!mkdtemp(q->dir)) {
		errf(err, errlen, "cannot create a private directory in %s: "
		     "%s", tmp, strerror(errno));
		q->dir[0] = '\0';
		return -1;
	}
	snprintf(q->sock, sizeof(q->sock), "%.*s/nbd.sock", DIR_MAX, q->dir);
	snprintf(q->pidfile, sizeof(q->pidfile), "%.*s/qsd.pid", DIR_MAX,
		 q->dir);
	snprintf(q->errfile, sizeof(q->errfile), "%.*s/qsd.stderr", DIR_MAX,
		 q->dir);
	/* Unlinked at once: only the daemon's fd and ours keep it. */
	q->errfd = open(q->errfile, O_RDWR | O_CREAT | O_TRUNC | O_APPEND |
			O_CLOEXEC, 0600);
	if (q->errfd < 0) {
		errf(err, errlen, "%s: %s", q->errfile, strerror(errno));
		return -1;
	}
	unlink(q->errfile);
	return 0;
}

/* Waits for the pidfile, the child's exit or the deadline. */
static int wait_ready(struct qsd *q, const char *path, unsigned timeout_ms,
		      char *err, size_t errlen)
{
	long long deadline = now_ms() + timeout_ms;

	for (;;) {
		if (wait_exit(q, 10)) {
			char last[512];

			qsd__last_error(q, last, sizeof(last));
			if (q->pid < 0)
				errf(err, errlen, "cannot start %s: %s", QSD,
				     strerror(q->fork_errno));
			else if (strstr(last, path))
				errf(err, errlen, "%s", last);
			else
				errf(err, errlen, "%s: %s", path, last[0] ?
				     last : QSD " exited at startup");
			return -1;
		}
		if (pidfile_ready(q))
			return 0;
		if (now_ms() >= deadline) {
			errf(err, errlen, "%s: %s did not start within %u ms",
			     path, QSD, timeout_ms);
			return -1;
		}
	}
}

struct qsd *qsd__start(const char *path, enum drive_format fmt,
		       const struct drive_opts *o, unsigned timeout_ms,
		       char *err, size_t errlen)
{
	struct qsd *q = calloc(1, sizeof(*q));
	pthread_condattr_t ca;
	int r;

	if (!q) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	q->errfd = -1;
	q->pidfd = -1;
	pthread_mutex_init(&q->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&q->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (find_exe(q->exe, sizeof(q->exe))) {
		errf(err, errlen, "%s: opening %s images needs %s, not found "
		     "in PATH (Debian package %s)", path,
		     drive_opts__format_name(fmt), QSD, QSD_PACKAGE);
		goto fail;
	}
	if (make_dir(q, err, errlen))
		goto fail;
	if (build_argv(q, path, fmt, o)) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	r = pthread_create(&q->reaper, NULL, reaper, q);
	if (r) {
		errf(err, errlen, "cannot start a thread: %s", strerror(r));
		goto fail;
	}
	q->reaper_started = true;
	if (wait_ready(q, path, timeout_ms, err, errlen))
		goto fail;
	return q;
fail:
	qsd__stop(q);
	return NULL;
}

void qsd__stop(struct qsd *q)
{
	if (!q)
		return;
	if (q->reaper_started) {
		signal_child(q, SIGTERM);
		if (!wait_exit(q, STOP_GRACE_MS)) {
			signal_child(q, SIGKILL);
			wait_exit(q, STOP_GRACE_MS);
		}
		pthread_join(q->reaper, NULL);
		if (q->pidfd >= 0)
			close(q->pidfd);
	}
	if (q->errfd >= 0)
		close(q->errfd);
	if (q->dir[0]) {
		unlink(q->sock);
		unlink(q->pidfile);
		rmdir(q->dir);
	}
	for (int i = 0; i < q->argc; i++)
		free(q->argv[i]);
	pthread_cond_destroy(&q->cond);
	pthread_mutex_destroy(&q->lock);
	free(q);
}
