/* TCP transport: the threads that build the mesh.  The lower node id
 * dials the higher one, once per channel, retrying until start's deadline
 * so nodes may start in any order; the accept thread hands each incoming
 * socket to a thread of its own for the handshake.  Either way the thread
 * stays on as the connection's receiver. */
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "net/tcp_priv.h"

/* Accepted sockets still in their handshake: a bound on what a stranger
 * hammering the port can cost (a thread each). */
#define MAX_PENDING	64

static void set_thread_fd(struct tcp_thread *th, int fd)
{
	pthread_mutex_lock(&th->t->lock);
	th->fd = fd;
	pthread_mutex_unlock(&th->t->lock);
}

static void drop_socket(struct tcp_thread *th, int fd)
{
	set_thread_fd(th, -1);
	close(fd);
}

/* After a handshake: the connection becomes this thread's to receive on. */
static void adopt(struct tcp_thread *th, int fd, const struct net_hs *hs)
{
	struct tcp_transport *t = th->t;
	char why[TCP_WHY];

	if (tcp_conn__install(t, hs->peer, hs->channel, fd, hs->tx_seq,
			      hs->rx_seq, why, sizeof(why))) {
		if (!atomic_load(&t->stopping))
			tcp__log(t, "dropping connection from node %u (%s): %s",
				 hs->peer, th->from, why);
		drop_socket(th, fd);
		return;
	}
	set_thread_fd(th, -1);	/* the connection owns it now */
	tcp_conn__receive(&t->peers[hs->peer].ch[hs->channel]);
}

static void answer(struct tcp_thread *th)
{
	struct tcp_transport *t = th->t;
	struct net_hs hs = { .key = &t->key, .cluster_id = t->cluster_id,
			     .self = (uint16_t)t->self, .nr_nodes = t->nr_nodes,
			     .timeout_ms = t->handshake_timeout_ms };
	char why[TCP_WHY], claim[64] = "";
	int r = net_auth__accept(th->fd, &hs, why, sizeof(why));

	pthread_mutex_lock(&t->lock);
	t->nr_handshakes--;
	if (r && hs.peer < t->nr_nodes)
		snprintf(t->peers[hs.peer].last_err, TCP_WHY, "%s", why);
	pthread_mutex_unlock(&t->lock);
	if (!r) {
		adopt(th, th->fd, &hs);
		return;
	}
	if (hs.peer < t->nr_nodes)
		snprintf(claim, sizeof(claim), " (claims node %u, %s)", hs.peer,
			 net_channel__name(hs.channel));
	if (!atomic_load(&t->stopping))
		tcp__log(t, "rejected connection from %s%s: %s", th->from, claim,
			 why);
	drop_socket(th, th->fd);
}

static int dial(int fd, const struct tcp_peer *p, unsigned ms, char *why)
{
	struct pollfd pfd = { .fd = fd, .events = POLLOUT };
	int flags = fcntl(fd, F_GETFL), e = 0;
	socklen_t len = sizeof(e);

	fcntl(fd, F_SETFL, flags | O_NONBLOCK);
	if (connect(fd, (const struct sockaddr *)&p->sa, p->salen) &&
	    errno != EINPROGRESS)
		e = errno;
	else if (poll(&pfd, 1, (int)ms) <= 0)
		e = ETIMEDOUT;
	else if (getsockopt(fd, SOL_SOCKET, SO_ERROR, &e, &len))
		e = errno;
	fcntl(fd, F_SETFL, flags);
	if (e)
		snprintf(why, TCP_WHY, "connect: %s", strerror(e));
	return e ? -1 : 0;
}

static void dial_loop(struct tcp_thread *th)
{
	struct tcp_transport *t = th->t;
	struct tcp_peer *p = &t->peers[th->peer];
	unsigned pause = 20;

	for (;;) {
		struct net_hs hs = { .key = &t->key,
				     .cluster_id = t->cluster_id,
				     .self = (uint16_t)t->self,
				     .peer = (uint16_t)th->peer,
				     .channel = th->channel };
		uint64_t now = tcp__now_ms();
		int one = 1, fd;
		char why[TCP_WHY];

		if (atomic_load(&t->stopping) || now >= th->deadline_ms)
			return;
		hs.timeout_ms = (unsigned)(th->deadline_ms - now);
		if (hs.timeout_ms > t->handshake_timeout_ms)
			hs.timeout_ms = t->handshake_timeout_ms;
		fd = socket(p->sa.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
		if (fd < 0) {
			snprintf(why, sizeof(why), "socket: %s", strerror(errno));
		} else {
			setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			set_thread_fd(th, fd);
			if (!dial(fd, p, hs.timeout_ms, why) &&
			    !net_auth__connect(fd, &hs, why, sizeof(why))) {
				adopt(th, fd, &hs);
				return;
			}
			drop_socket(th, fd);
		}
		pthread_mutex_lock(&t->lock);
		snprintf(p->last_err, sizeof(p->last_err), "%s", why);
		if (hs.fatal) {
			p->fatal = true;
			pthread_cond_broadcast(&t->cond);
		}
		pthread_mutex_unlock(&t->lock);
		if (hs.fatal) {
			/* Refusals are configuration errors, worth a line;
			 * "connection refused" while peers boot is not. */
			tcp__log(t, "cannot connect to node %u (%s) on %s: %s",
				 p->id, p->addr, net_channel__name(th->channel),
				 why);
			return;
		}
		pthread_mutex_lock(&t->lock);
		if (!atomic_load(&t->stopping)) {
			struct timespec ts;

			clock_gettime(CLOCK_MONOTONIC, &ts);
			ts.tv_nsec += (long)pause * 1000000L;
			ts.tv_sec += ts.tv_nsec / 1000000000L;
			ts.tv_nsec %= 1000000000L;
			pthread_cond_timedwait(&t->cond, &t->lock, &ts);
		}
		pthread_mutex_unlock(&t->lock);
		if (pause < 200)
			pause *= 2;
	}
}

static void *conn_main(void *arg)
{
	struct tcp_thread *th = arg;

	if (th->dial)
		dial_loop(th);
	else
		answer(th);
	pthread_mutex_lock(&th->t->lock);
	th->done = true;
	pthread_mutex_unlock(&th->t->lock);
	return NULL;
}

int tcp_mesh__spawn(struct tcp_transport *t, const struct tcp_thread *proto)
{
	struct tcp_thread *th = malloc(sizeof(*th));

	if (!th)
		return -1;
	*th = *proto;
	th->t = t;
	th->done = false;
	if (pthread_create(&th->tid, NULL, conn_main, th)) {
		free(th);
		return -1;
	}
	th->next = t->threads;
	t->threads = th;
	return 0;
}

/* Joins finished connection threads (all of them with all=true, after
 * every socket was shut down). */
void tcp_mesh__reap(struct tcp_transport *t, bool all)
{
	struct tcp_thread **pp, *th, *dead = NULL;

	pthread_mutex_lock(&t->lock);
	for (pp = &t->threads; (th = *pp);) {
		if (all || th->done) {
			*pp = th->next;
			th->next = dead;
			dead = th;
		} else {
			pp = &th->next;
		}
	}
	pthread_mutex_unlock(&t->lock);
	while ((th = dead)) {
		dead = th->next;
		pthread_join(th->tid, NULL);
		free(th);
	}
}

void *tcp_mesh__accept_main(void *arg)
{
	struct tcp_transport *t = arg;

	while (!atomic_load(&t->stopping)) {
		struct tcp_thread th = { .fd = -1 };
		struct sockaddr_storage sa;
		socklen_t len = sizeof(sa);
		int one = 1, fd, r = -1;

		fd = accept4(t->listen_fd, (struct sockaddr *)&sa, &len,
			     SOCK_CLOEXEC);
		if (fd < 0) {
			if (atomic_load(&t->stopping))
				break;
			/* Out of descriptors or an aborted connection:
			 * pause rather than spin. */
			if (errno != EINTR)
				usleep(10000);
			continue;
		}
		tcp_mesh__reap(t, false);
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
		tcp__sockaddr_text((struct sockaddr *)&sa, len, th.from,
				   sizeof(th.from));
		th.fd = fd;
		pthread_mutex_lock(&t->lock);
		if (!atomic_load(&t->stopping) && t->nr_handshakes < MAX_PENDING) {
			r = tcp_mesh__spawn(t, &th);
			if (!r)
				t->nr_handshakes++;
		}
		pthread_mutex_unlock(&t->lock);
		if (r) {
			if (!atomic_load(&t->stopping))
				tcp__log(t, "dropping connection from %s: too many handshakes in progress",
					 th.from);
			close(fd);
		}
	}
	return NULL;
}

