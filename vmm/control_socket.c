/* The control socket's server: one thread polls the listening socket,
 * every client and a wake-up pipe; each client has its own QMP session.
 * Commands run on this thread (one at a time, as in QEMU's monitor);
 * events from other threads are queued and handed out here, so sessions
 * are only ever touched by this thread. */
#include "vmm/control_socket.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/cli.h"
#include "vmm/control_priv.h"

#define READ_CHUNK 4096
/* At exit: how long queued replies and events may take to go out. */
#define FLUSH_MS 500

static void wake(struct control_socket *cs)
{
	/* Non-blocking: a full pipe already means "look". */
	(void)!write(cs->wake[1], "x", 1);
}

void control_socket__event(struct control_socket *cs, const char *name,
			   json_t *data)
{
	struct timespec now;
	char *text;

	if (!cs)
		return;
	clock_gettime(CLOCK_REALTIME, &now);
	text = qmp__event_text(name, data, &now);
	if (!text)
		return;
	pthread_mutex_lock(&cs->ev_lock);
	if (cs->nr_events == CONTROL_MAX_EVENTS) {
		free(cs->events[0]);
		memmove(cs->events, cs->events + 1,
			(CONTROL_MAX_EVENTS - 1) * sizeof(cs->events[0]));
		cs->nr_events--;
	}
	cs->events[cs->nr_events++] = text;
	pthread_mutex_unlock(&cs->ev_lock);
	wake(cs);
}

static void drop_client(struct control_client *c)
{
	close(c->fd);
	qmp_session__free(c->s);
	c->fd = -1;
	c->s = NULL;
	c->eof = false;
}

/* Sends what the socket takes now; drops a client that broke. */
static void flush_client(struct control_client *c)
{
	size_t len;
	const char *out = qmp_session__output(c->s, &len);

	while (len) {
		ssize_t n = send(c->fd, out, len, MSG_NOSIGNAL | MSG_DONTWAIT);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			if (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK)
				drop_client(c);
			return;
		}
		qmp_session__consume(c->s, (size_t)n);
		out = qmp_session__output(c->s, &len);
	}
	if (c->eof)
		drop_client(c);
}

static void hand_out_events(struct control_socket *cs)
{
	char *ev[CONTROL_MAX_EVENTS];
	unsigned n;

	pthread_mutex_lock(&cs->ev_lock);
	n = cs->nr_events;
	memcpy(ev, cs->events, n * sizeof(ev[0]));
	cs->nr_events = 0;
	pthread_mutex_unlock(&cs->ev_lock);
	for (unsigned i = 0; i < n; i++) {
		for (unsigned k = 0; k < CONTROL_MAX_CLIENTS; k++) {
			struct control_client *c = &cs->clients[k];

			if (c->fd >= 0 &&
			    qmp_session__push_event(c->s, ev[i]) < 0)
				drop_client(c);
		}
		free(ev[i]);
	}
}

static struct control_client *free_slot(struct control_socket *cs)
{
	for (unsigned k = 0; k < CONTROL_MAX_CLIENTS; k++)
		if (cs->clients[k].fd < 0)
			return &cs->clients[k];
	return NULL;
}

/* Every connection waiting, while there is room: a burst of clients must
 * not wait for one poll round each.  With every slot taken, connections
 * wait in the listen backlog until a client leaves. */
static void accept_clients(struct control_socket *cs)
{
	struct control_client *c;
	int fd;

	while ((c = free_slot(cs)) &&
	       (fd = accept4(cs->fd, NULL, NULL,
			     SOCK_CLOEXEC | SOCK_NONBLOCK)) >= 0) {
		c->s = qmp_session__new(&cs->qmp);
		if (!c->s) {
			close(fd);
			continue;
		}
		c->fd = fd;
		flush_client(c); /* the greeting */
	}
}

static void read_client(struct control_socket *cs, struct control_client *c)
{
	char buf[READ_CHUNK];
	ssize_t n = recv(c->fd, buf, sizeof(buf), MSG_DONTWAIT);
	int rc;

	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK ||
		      errno == EINTR))
		return;
	if (n <= 0) {
		/* A client may send its commands and shut its side: the
		 * replies still go out. */
		c->eof = true;
		return;
	}
	pthread_mutex_lock(&cs->m_lock);
	rc = qmp_session__feed(c->s, buf, (size_t)n);
	pthread_mutex_unlock(&cs->m_lock);
	if (rc < 0)
		drop_client(c);
}

static void serve(struct control_socket *cs)
{
	struct pollfd p[2 + CONTROL_MAX_CLIENTS];
	int who[2 + CONTROL_MAX_CLIENTS];
	unsigned n = 0;
	char drain[64];

	p[n++] = (struct pollfd){ .fd = cs->wake[0], .events = POLLIN };
	p[n++] = (struct pollfd){ .fd = cs->fd,
				  .events = free_slot(cs) ? POLLIN : 0 };
	for (int k = 0; k < CONTROL_MAX_CLIENTS; k++) {
		struct control_client *c = &cs->clients[k];
		size_t pending;

		if (c->fd < 0)
			continue;
		qmp_session__output(c->s, &pending);
		who[n] = k;
		p[n++] = (struct pollfd){
			.fd = c->fd,
			.events = (short)((c->eof ? 0 : POLLIN) |
					  (pending ? POLLOUT : 0)),
		};
	}
	if (poll(p, n, -1) < 0)
		return;
	if (p[0].revents)
		while (read(cs->wake[0], drain, sizeof(drain)) > 0)
			;
	if (p[1].revents & POLLIN)
		accept_clients(cs);
	for (unsigned i = 2; i < n; i++) {
		struct control_client *c = &cs->clients[who[i]];

		if (c->fd != p[i].fd)
			continue;
		if (p[i].revents & (POLLERR | POLLNVAL)) {
			drop_client(c);
			continue;
		}
		if (p[i].revents & (POLLIN | POLLHUP))
			read_client(cs, c);
	}
	/* Replies first, then the events the commands caused. */
	hand_out_events(cs);
	for (int k = 0; k < CONTROL_MAX_CLIENTS; k++)
		if (cs->clients[k].fd >= 0)
			flush_client(&cs->clients[k]);
}

/* Last replies and events out, bounded in time: a client that does not
 * read must not hold up the exit. */
static void final_flush(struct control_socket *cs)
{
	struct timespec t0, t;

	hand_out_events(cs);
	clock_gettime(CLOCK_MONOTONIC, &t0);
	for (;;) {
		struct pollfd p[CONTROL_MAX_CLIENTS];
		unsigned n = 0;
		long left;

		for (int k = 0; k < CONTROL_MAX_CLIENTS; k++) {
			struct control_client *c = &cs->clients[k];
			size_t pending;

			if (c->fd < 0)
				continue;
			qmp_session__output(c->s, &pending);
			if (pending)
				p[n++] = (struct pollfd){ .fd = c->fd,
							  .events = POLLOUT };
		}
		clock_gettime(CLOCK_MONOTONIC, &t);
		left = FLUSH_MS - ((t.tv_sec - t0.tv_sec) * 1000 +
				   (t.tv_nsec - t0.tv_nsec) / 1000000);
		if (!n || left <= 0 || poll(p, n, (int)left) <= 0)
			break;
		for (int k = 0; k < CONTROL_MAX_CLIENTS; k++)
			if (cs->clients[k].fd >= 0)
				flush_client(&cs->clients[k]);
	}
	for (int k = 0; k < CONTROL_MAX_CLIENTS; k++)
		if (cs->clients[k].fd >= 0)
			drop_client(&cs->clients[k]);
}

static void *control_thread(void *arg)
{
	struct control_socket *cs = arg;

	pthread_setname_np(pthread_self(), "krg-control");
	while (!atomic_load(&cs->stopping))
		serve(cs);
	final_flush(cs);
	return NULL;
}

static void version_numbers(struct qmp_config *q)
{
	/* "0.1.0" -> 0, 1, 0: what QMP clients read as the version. */
	if (sscanf(KRG_VMM_VERSION, "%d.%d.%d", &q->major, &q->minor,
		   &q->micro) != 3)
		q->major = q->minor = q->micro = 0;
	q->package = "krg-vmm " KRG_VMM_VERSION;
}

static void free_socket(struct control_socket *cs)
{
	if (cs->fd >= 0)
		close(cs->fd);
	if (cs->wake[0] >= 0) {
		close(cs->wake[0]);
		close(cs->wake[1]);
	}
	for (unsigned i = 0; i < cs->nr_events; i++)
		free(cs->events[i]);
	pthread_mutex_destroy(&cs->m_lock);
	pthread_mutex_destroy(&cs->ev_lock);
	free(cs);
}

struct control_socket *control_socket__start(char *err, size_t errlen)
{
	struct control_socket *cs = calloc(1, sizeof(*cs));
	struct sockaddr_un sa = { .sun_family = AF_UNIX };

	if (!cs) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	cs->fd = cs->wake[0] = cs->wake[1] = -1;
	pthread_mutex_init(&cs->m_lock, NULL);
	pthread_mutex_init(&cs->ev_lock, NULL);
	for (int k = 0; k < CONTROL_MAX_CLIENTS; k++)
		cs->clients[k].fd = -1;
	control_vm__init_ops(cs);
	cs->qmp.cmds = qmp_commands__table(&cs->qmp.nr_cmds);
	cs->qmp.ctx = &cs->ops;
	version_numbers(&cs->qmp);
	snprintf(cs->path, sizeof(cs->path), "%s/vm-%d.sock",
		 CONTROL_SOCKET_DIR, (int)getpid());
	mkdir(CONTROL_SOCKET_DIR, 0700);
	unlink(cs->path);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", cs->path);
	cs->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	if (cs->fd < 0 ||
	    bind(cs->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    chmod(cs->path, 0600) < 0 || listen(cs->fd, 16) < 0 ||
	    pipe2(cs->wake, O_CLOEXEC | O_NONBLOCK) < 0) {
		snprintf(err, errlen, "control socket %s: %s", cs->path,
			 strerror(errno));
		unlink(cs->path);
		free_socket(cs);
		return NULL;
	}
	if (pthread_create(&cs->thread, NULL, control_thread, cs)) {
		snprintf(err, errlen, "control socket: no thread");
		unlink(cs->path);
		free_socket(cs);
		return NULL;
	}
	return cs;
}

void control_socket__stop(struct control_socket *cs)
{
	if (!cs)
		return;
	atomic_store(&cs->stopping, true);
	wake(cs);
	pthread_join(cs->thread, NULL);
	unlink(cs->path);
	free_socket(cs);
}
