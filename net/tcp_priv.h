/* Internals of the TCP transport, shared by tcp_transport.c (create,
 * start, stop), tcp_mesh.c (dialling, accepting, handshakes), tcp_conn.c
 * (install, receive, peer failure, log) and tcp_send.c (send, heartbeats,
 * the timer thread).  Not for other subsystems: they use net/transport.h.
 *
 * Threads: one accept thread, one timer thread (heartbeats, timeouts,
 * peer_down callbacks), and one thread per connection that first runs the
 * handshake (dialling and retrying, or answering an accepted socket) and
 * then stays as that connection's receiver.  Blocking reads on a thread per
 * connection rather than one epoll thread: a 4 MiB BULK message being read
 * or handled never delays a FAST message, the receive path is one recv()
 * per message, and in-order callbacks per channel come for free.  At 64
 * nodes that is 126 receivers, mostly asleep. */
#ifndef KRG_NET_TCP_PRIV_H
#define KRG_NET_TCP_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>
#include <sys/socket.h>

#include "net/transport.h"

#define TCP_ADDR_TEXT	272
#define TCP_WHY		200

struct tcp_transport;
struct tcp_peer;

struct tcp_conn {
	struct tcp_peer *peer;
	uint8_t channel;
	int fd;				/* t->lock to install; -1 before */
	atomic_bool ready;		/* installed: sends may go */
	pthread_mutex_t send_lock;	/* one message at a time */
	uint64_t tx_seq;		/* send_lock */
	bool closing;			/* send_lock: goodbye sent */
	uint64_t rx_seq;		/* receiver thread only */
	bool said_goodbye;		/* t->lock */
	_Atomic uint64_t last_rx_ms;
	_Atomic uint64_t last_tx_ms;
};

enum tcp_peer_state { TCP_PEER_CONNECTING, TCP_PEER_UP, TCP_PEER_DOWN };

struct tcp_peer {
	struct tcp_transport *t;
	unsigned id;
	char addr[TCP_ADDR_TEXT];	/* as configured, for messages */
	struct sockaddr_storage sa;
	socklen_t salen;
	struct tcp_conn ch[NET_NR_CHANNELS];
	_Atomic int state;		/* enum tcp_peer_state */
	atomic_bool leaving;		/* sent a goodbye on some channel */
	/* t->lock: */
	unsigned nr_installed;
	unsigned live_readers;		/* receivers that may still call recv */
	bool fatal;			/* refused us: start gives up */
	bool down_reported;
	enum transport_down_reason down_reason;
	char down_detail[TCP_WHY];
	char last_err[TCP_WHY];		/* why it is not connected yet */
};

/* A thread the transport must join: connection threads register here. */
struct tcp_thread {
	struct tcp_transport *t;
	pthread_t tid;
	struct tcp_thread *next;
	int fd;			/* t->lock: socket to shut down on stop */
	bool done;		/* t->lock */
	/* What to do: dial (peer, channel) until deadline, or answer fd. */
	bool dial;
	unsigned peer;
	uint8_t channel;
	uint64_t deadline_ms;
	char from[TCP_ADDR_TEXT];	/* accepted: the remote address */
};

struct tcp_transport {
	struct transport base;
	unsigned self;
	unsigned nr_nodes;
	struct net_key key;
	uint64_t cluster_id;
	struct transport_callbacks cb;
	unsigned heartbeat_ms, peer_timeout_ms, handshake_timeout_ms;
	unsigned bulk_stall_ms;
	int listen_fd;
	struct tcp_peer *peers;		/* nr_nodes; peers[self] unused */

	pthread_mutex_t lock;
	pthread_cond_t cond;		/* any state change */
	bool started, stopped;
	atomic_bool stopping;		/* set under lock, read anywhere */
	bool accept_running, timer_running;
	pthread_t accept_tid, timer_tid;
	struct tcp_thread *threads;
	unsigned nr_handshakes;		/* accepted, not yet authenticated */

	pthread_mutex_t log_lock;
	uint64_t log_window_ms;
	unsigned log_in_window, log_suppressed;
};

uint64_t tcp__now_ms(void);
void tcp__log(struct tcp_transport *t, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Socket options every installed connection gets. */
void tcp__tune_socket(struct tcp_transport *t, int fd, unsigned channel);
void tcp__sockaddr_text(const struct sockaddr *sa, socklen_t len, char *out,
			size_t cap);

/* Hands an authenticated socket to (peer, channel) and runs its receiver
 * until the connection ends.  Returns -1 (socket untouched) if the slot
 * is taken, the peer is down or the transport is stopping. */
int tcp_conn__install(struct tcp_transport *t, unsigned peer,
		      unsigned channel, int fd, uint64_t tx_seq,
		      uint64_t rx_seq, char *err, size_t errlen);
void tcp_conn__receive(struct tcp_conn *c);
/* Marks the peer down (once), shuts its sockets; the timer thread reports
 * it after the receivers are gone.  t->lock must not be held. */
void tcp_conn__peer_fail(struct tcp_peer *p, enum transport_down_reason r,
			 const char *detail);
int tcp_conn__send(struct transport *base, unsigned node, enum net_channel ch,
		   unsigned type, const struct iovec *iov, int iovcnt,
		   char *err, size_t errlen);
/* Goodbye on every installed connection, then half-close them. */
void tcp_conn__goodbye_all(struct tcp_transport *t);
void *tcp_conn__timer_main(void *arg);

/* Starts a connection thread described by proto (t->lock held). */
int tcp_mesh__spawn(struct tcp_transport *t, const struct tcp_thread *proto);
/* Joins finished connection threads; all=true joins every one (stop, once
 * every socket is shut down). */
void tcp_mesh__reap(struct tcp_transport *t, bool all);
void *tcp_mesh__accept_main(void *arg);

#endif
