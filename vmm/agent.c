#include "vmm/agent.h"

#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_msg.h"
#include "net/net_sock.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

#define AGENT_T_PREPARE		(NET_TYPE_CONTROL_FIRST + 16)
#define AGENT_T_PREPARED	(NET_TYPE_CONTROL_FIRST + 17)
#define AGENT_T_SPAWN		(NET_TYPE_CONTROL_FIRST + 18)
#define AGENT_T_SPAWNED		(NET_TYPE_CONTROL_FIRST + 19)
#define AGENT_T_ERROR		(NET_TYPE_CONTROL_FIRST + 20)
#define AGENT_TIMEOUT_MS	10000
#define AGENT_MAX_MSG		(NET_MAX_NODES * 64 + 64)
/* The handshake's identities on an agent connection: the launcher is 0,
 * the agent 1, in a cluster id of their own (the VM's is not known yet). */
#define AGENT_LAUNCHER 0
#define AGENT_SELF 1

struct agent_conn {
	int fd;
	uint16_t self, peer;
	uint64_t tx_seq, rx_seq;
};

static uint64_t agent_cluster_id(void)
{
	static const char tag[] = "krg-vmm agent control v1";

	return net_auth__cluster_id(tag, sizeof(tag) - 1);
}

static int conn_send(struct agent_conn *c, unsigned type, const void *p,
		     uint32_t len)
{
	uint8_t buf[NET_HDR_SIZE + AGENT_MAX_MSG];
	struct net_hdr h;
	size_t n;

	net_msg__init(&h, type, NET_CH_FAST, c->self, len, c->tx_seq);
	n = net_msg__build(buf, sizeof(buf), &h, p);
	if (!n || send(c->fd, buf, n, MSG_NOSIGNAL) != (ssize_t)n)
		return -1;
	c->tx_seq++;
	return 0;
}

static int read_full(int fd, void *buf, size_t len)
{
	size_t got = 0;

	while (got < len) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, AGENT_TIMEOUT_MS) <= 0)
			return -1;
		r = recv(fd, (uint8_t *)buf + got, len - got, 0);
		if (r <= 0)
			return -1;
		got += (size_t)r;
	}
	return 0;
}

/* One validated message of the expected type; an ERROR from the other
 * side is returned as its text in err. */
static int conn_recv(struct agent_conn *c, unsigned want, void *payload,
		     uint32_t *len, char *err, size_t errlen)
{
	uint8_t raw[NET_HDR_SIZE], body[AGENT_MAX_MSG];
	struct net_msg_expect x = { .peer = c->peer, .channel = NET_CH_FAST,
				    .max_len = AGENT_MAX_MSG,
				    .seq = c->rx_seq };
	struct net_hdr h;

	if (read_full(c->fd, raw, sizeof(raw)) < 0) {
		errf(err, errlen, "connection closed or silent");
		return -1;
	}
	if (net_msg__check_hdr(raw, &h, &x, err, errlen) != NET_MSG_OK)
		return -1;
	if (h.len && read_full(c->fd, body, h.len) < 0) {
		errf(err, errlen, "connection closed mid-message");
		return -1;
	}
	if (net_msg__check_body(raw, &h, body, &x, err, errlen) != NET_MSG_OK)
		return -1;
	c->rx_seq++;
	if (h.type == AGENT_T_ERROR) {
		errf(err, errlen, "%.*s", (int)(h.len < 200 ? h.len : 200),
		     (const char *)body);
		return -1;
	}
	if (h.type != want || h.len > *len) {
		errf(err, errlen, "unexpected message %u of %u bytes", h.type,
		     h.len);
		return -1;
	}
	memcpy(payload, body, h.len);
	*len = h.len;
	return 0;
}

/* ---- agent side ---- */

/* In a child of the agent: one launcher, one node; ends in exec. */
static void serve(int fd, const struct net_key *key, const char *host,
		  const char *peer_name)
{
	struct net_hs hs = { .key = key, .cluster_id = agent_cluster_id(),
			     .self = AGENT_SELF, .nr_nodes = 2,
			     .timeout_ms = AGENT_TIMEOUT_MS };
	struct agent_conn c = { .fd = fd, .self = AGENT_SELF };
	uint8_t buf[AGENT_MAX_MSG], out[8];
	char err[256], lfd_s[16], kfd_s[16], id_s[16], cid_s[32], nodes[AGENT_MAX_MSG];
	struct sockaddr_storage ss;
	socklen_t sl = sizeof(ss);
	uint32_t len = sizeof(buf);
	unsigned node;
	uint64_t cid;
	int lfd, kfd;

	if (net_auth__accept(fd, &hs, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm agent: refused %s: %s\n", peer_name,
			err);
		_exit(1);
	}
	c.peer = hs.peer;
	c.tx_seq = hs.tx_seq;
	c.rx_seq = hs.rx_seq;
	if (conn_recv(&c, AGENT_T_PREPARE, buf, &len, err, sizeof(err)) < 0 ||
	    len != 2)
		goto fail;
	node = get_le16(buf);
	lfd = net_sock__listen(host, "0", NULL, 0, err, sizeof(err));
	if (lfd < 0 || node == 0 || node >= NET_MAX_NODES ||
	    getsockname(lfd, (struct sockaddr *)&ss, &sl) < 0)
		goto fail;
	put_le16(out, ss.ss_family == AF_INET6 ?
			      ntohs(((struct sockaddr_in6 *)&ss)->sin6_port) :
			      ntohs(((struct sockaddr_in *)&ss)->sin_port));
	len = sizeof(buf) - 1;
	if (conn_send(&c, AGENT_T_PREPARED, out, 2) < 0 ||
	    conn_recv(&c, AGENT_T_SPAWN, buf, &len, err, sizeof(err)) < 0 ||
	    len < 9)
		goto fail;
	cid = get_le64(buf);
	snprintf(nodes, sizeof(nodes), "%.*s", (int)(len - 8),
		 (const char *)buf + 8);
	put_le32(out, (uint32_t)getpid());
	if (conn_send(&c, AGENT_T_SPAWNED, out, 4) < 0 ||
	    (kfd = net_auth__key_pipe(key)) < 0)
		goto fail;
	close(fd);
	fprintf(stderr, "krg-vmm agent: starting node %u of cluster %016" PRIx64
		" for %s\n", node, cid, peer_name);
	snprintf(lfd_s, sizeof(lfd_s), "%d", dup(lfd));
	snprintf(kfd_s, sizeof(kfd_s), "%d", kfd);
	snprintf(id_s, sizeof(id_s), "%u", node);
	snprintf(cid_s, sizeof(cid_s), "%016" PRIx64, cid);
	execl("/proc/self/exe", "krg-vmm", "node", "--node-id", id_s,
	      "--nodes", nodes, "--cluster-id", cid_s, "--key-fd", kfd_s,
	      "--listen-fd", lfd_s, (char *)NULL);
	snprintf(err, sizeof(err), "cannot run krg-vmm: %s", strerror(errno));
fail:
	fprintf(stderr, "krg-vmm agent: %s: %s\n", peer_name, err);
	conn_send(&c, AGENT_T_ERROR, err, (uint32_t)strlen(err));
	_exit(1);
}

int agent__main(int argc, char *const argv[])
{
	const char *listen_addr = NULL, *key_file = NULL;
	char host[256], port[32], err[256];
	struct net_key key;
	int lfd;

	for (int i = 0; i + 1 < argc; i += 2) {
		if (!strcmp(argv[i], "--listen"))
			listen_addr = argv[i + 1];
		else if (!strcmp(argv[i], "--cluster-key"))
			key_file = argv[i + 1];
		else
			break;
	}
	if (!listen_addr || !key_file || argc % 2) {
		fprintf(stderr, "krg-vmm: usage: krg-vmm agent --listen "
			"HOST:PORT --cluster-key FILE\n");
		return 2;
	}
	if (net_sock__split_addr(listen_addr, host, sizeof(host), port, sizeof(port))) {
		fprintf(stderr, "krg-vmm: agent: invalid address '%s' (want "
			"HOST:PORT)\n", listen_addr);
		return 2;
	}
	if (net_auth__key_load(&key, key_file, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: agent: %s\n", err);
		return 2;
	}
	lfd = net_sock__listen(host, port, NULL, 0, err, sizeof(err));
	if (lfd < 0) {
		fprintf(stderr, "krg-vmm: agent: %s\n", err);
		return 1;
	}
	signal(SIGCHLD, SIG_IGN); /* nodes are reaped by the kernel */
	signal(SIGPIPE, SIG_IGN);
	fprintf(stderr, "krg-vmm agent: listening on %s\n", listen_addr);
	for (;;) {
		struct sockaddr_storage ss;
		socklen_t sl = sizeof(ss);
		char name[INET6_ADDRSTRLEN + 8] = "?";
		int fd = accept4(lfd, (struct sockaddr *)&ss, &sl, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0)
			continue;
		if (ss.ss_family == AF_INET)
			inet_ntop(AF_INET, &((struct sockaddr_in *)&ss)->sin_addr,
				  name, sizeof(name));
		else if (ss.ss_family == AF_INET6)
			inet_ntop(AF_INET6,
				  &((struct sockaddr_in6 *)&ss)->sin6_addr, name,
				  sizeof(name));
		pid = fork();
		if (pid == 0) {
			close(lfd);
			serve(fd, &key, host, name);
		}
		close(fd);
	}
}

/* ---- launcher side ---- */

struct agent_session {
	unsigned nr_nodes;
	struct agent_conn conn[NET_MAX_NODES];
};

static int dial(const char *addr, char *err, size_t errlen)
{
	char host[256], port[32];
	struct addrinfo hints = { .ai_family = AF_UNSPEC,
				  .ai_socktype = SOCK_STREAM }, *ai = NULL;
	int fd = -1, one = 1, rc;

	if (net_sock__split_addr(addr, host, sizeof(host), port, sizeof(port))) {
		errf(err, errlen, "invalid agent address '%s'", addr);
		return -1;
	}
	rc = getaddrinfo(host, port, &hints, &ai);
	if (rc) {
		errf(err, errlen, "agent %s: %s", addr, gai_strerror(rc));
		return -1;
	}
	fd = socket(ai->ai_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, ai->ai_addr, ai->ai_addrlen) < 0) {
		errf(err, errlen, "agent %s: %s (is 'krg-vmm agent' running "
		     "there?)", addr, strerror(errno));
		if (fd >= 0)
			close(fd);
		fd = -1;
	} else {
		setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	}
	freeaddrinfo(ai);
	return fd;
}

struct agent_session *agent__prepare(const char *const agents[],
				     unsigned nr_nodes,
				     const struct net_key *key,
				     char mesh[][64], char *local_ip,
				     size_t local_ip_len, char *err,
				     size_t errlen)
{
	struct agent_session *s = calloc(1, sizeof(*s));

	if (!s) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	s->nr_nodes = nr_nodes;
	for (unsigned i = 1; i < nr_nodes; i++) {
		struct agent_conn *c = &s->conn[i];
		struct net_hs hs = { .key = key,
				     .cluster_id = agent_cluster_id(),
				     .self = AGENT_LAUNCHER, .peer = AGENT_SELF,
				     .channel = NET_CH_FAST, .nr_nodes = 2,
				     .timeout_ms = AGENT_TIMEOUT_MS };
		char host[256], port[32], why[256];
		uint8_t id[2], reply[8];
		uint32_t len = sizeof(reply);

		c->fd = dial(agents[i], err, errlen);
		if (c->fd < 0)
			goto fail;
		if (net_auth__connect(c->fd, &hs, why, sizeof(why)) < 0) {
			errf(err, errlen, "agent %s: %s", agents[i], why);
			goto fail;
		}
		c->self = AGENT_LAUNCHER;
		c->peer = AGENT_SELF;
		c->tx_seq = hs.tx_seq;
		c->rx_seq = hs.rx_seq;
		put_le16(id, (uint16_t)i);
		if (conn_send(c, AGENT_T_PREPARE, id, 2) < 0 ||
		    conn_recv(c, AGENT_T_PREPARED, reply, &len, why,
			      sizeof(why)) < 0 || len != 2) {
			errf(err, errlen, "agent %s: %s", agents[i], why);
			goto fail;
		}
		net_sock__split_addr(agents[i], host, sizeof(host), port, sizeof(port));
		snprintf(mesh[i], 64, strchr(host, ':') ? "[%s]:%u" : "%s:%u",
			 host, get_le16(reply));
		if (i == 1 && local_ip) {
			/* Node 0 listens where agent 1 reached us from. */
			struct sockaddr_storage ss;
			socklen_t sl = sizeof(ss);

			getsockname(c->fd, (struct sockaddr *)&ss, &sl);
			if (ss.ss_family == AF_INET6)
				inet_ntop(AF_INET6,
					  &((struct sockaddr_in6 *)&ss)->sin6_addr,
					  local_ip, (socklen_t)local_ip_len);
			else
				inet_ntop(AF_INET,
					  &((struct sockaddr_in *)&ss)->sin_addr,
					  local_ip, (socklen_t)local_ip_len);
		}
	}
	return s;
fail:
	agent__close(s);
	return NULL;
}

int agent__spawn(struct agent_session *s, uint64_t cluster_id,
		 char mesh[][64], char *err, size_t errlen)
{
	uint8_t buf[AGENT_MAX_MSG];
	size_t used = 8;

	put_le64(buf, cluster_id);
	for (unsigned i = 0; i < s->nr_nodes; i++)
		used += (size_t)snprintf((char *)buf + used, sizeof(buf) - used,
					 "%s%s", i ? "," : "", mesh[i]);
	for (unsigned i = 1; i < s->nr_nodes; i++) {
		uint8_t reply[8];
		uint32_t len = sizeof(reply);
		char why[256];

		if (conn_send(&s->conn[i], AGENT_T_SPAWN, buf, (uint32_t)used) <
			    0 ||
		    conn_recv(&s->conn[i], AGENT_T_SPAWNED, reply, &len, why,
			      sizeof(why)) < 0) {
			errf(err, errlen, "agent for node %u: %s", i, why);
			return -1;
		}
	}
	return 0;
}

void agent__close(struct agent_session *s)
{
	if (!s)
		return;
	for (unsigned i = 1; i < s->nr_nodes; i++)
		if (s->conn[i].fd > 0)
			close(s->conn[i].fd);
	free(s);
}
