/* The connection handshake of net_auth.h, on a blocking socket with one
 * deadline for the whole exchange.  Reads are exact (header, then the
 * payload length it announced), so nothing after the handshake is
 * consumed here. */
#include <errno.h>
#include <poll.h>
#include <sodium.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

#include "net/net_auth.h"
#include "net/net_msg.h"
#include "net/net_types.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

/* Handshake messages are small: a stranger cannot make us allocate. */
#define HS_MAX_PAYLOAD	256

struct hs_io {
	int fd;
	uint64_t deadline_ms;
	uint64_t tx_seq;
	struct net_msg_expect x;
	uint8_t raw[NET_HDR_SIZE];
	struct net_hdr h;
	uint8_t payload[HS_MAX_PAYLOAD];
};

static uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static int read_exact(struct hs_io *io, void *buf, size_t len, char *err,
		      size_t errlen)
{
	uint8_t *p = buf;

	while (len) {
		uint64_t now = mono_ms();
		struct pollfd pfd = { .fd = io->fd, .events = POLLIN };
		ssize_t n;
		int r;

		if (now >= io->deadline_ms) {
			errf(err, errlen, "handshake timed out");
			return -1;
		}
		r = poll(&pfd, 1, (int)(io->deadline_ms - now));
		if (r < 0 && errno == EINTR)
			continue;
		if (r < 0) {
			errf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (r == 0)
			continue;
		n = recv(io->fd, p, len, 0);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n < 0) {
			errf(err, errlen, "receive: %s", strerror(errno));
			return -1;
		}
		if (n == 0) {
			errf(err, errlen, "connection closed during handshake");
			return -1;
		}
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int send_msg(struct hs_io *io, unsigned type, unsigned sender,
		    const void *payload, uint32_t len, int flags, char *err,
		    size_t errlen)
{
	uint8_t buf[NET_HDR_SIZE + HS_MAX_PAYLOAD];
	struct net_hdr h;
	size_t total, off = 0;

	net_msg__init(&h, type, io->x.channel, sender, len, io->tx_seq);
	total = net_msg__build(buf, sizeof(buf), &h, payload);
	while (off < total) {
		ssize_t n = send(io->fd, buf + off, total - off,
				 MSG_NOSIGNAL | flags);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			errf(err, errlen, "send: %s",
			     n < 0 ? strerror(errno) : "no progress");
			return -1;
		}
		off += (size_t)n;
	}
	io->tx_seq++;
	return 0;
}

/* Best effort: tell the other side why before closing. */
static void send_reject(struct hs_io *io, unsigned self, const char *why)
{
	size_t n = strnlen(why, NET_REJECT_MAX);

	send_msg(io, NET_T_REJECT, self, why, (uint32_t)n, MSG_DONTWAIT, NULL,
		 0);
}

/* -1: the socket failed or timed out (worth a retry); -2: the peer sent
 * something invalid. */
static int recv_msg(struct hs_io *io, char *err, size_t errlen)
{
	char why[200];
	int r;

	if (read_exact(io, io->raw, NET_HDR_SIZE, err, errlen))
		return -1;
	r = net_msg__check_hdr(io->raw, &io->h, &io->x, why, sizeof(why));
	if (!r && read_exact(io, io->payload, io->h.len, err, errlen))
		return -1;
	if (!r)
		r = net_msg__check_body(io->raw, &io->h, io->payload, &io->x,
					why, sizeof(why));
	if (r) {
		errf(err, errlen, "%s", why);
		return -2;
	}
	io->x.seq++;
	return 0;
}

/* A REJECT's text is the peer's: show only printable bytes of it. */
static void reject_text(const struct hs_io *io, char *out, size_t cap)
{
	size_t n = io->h.len < cap - 1 ? io->h.len : cap - 1;

	for (size_t i = 0; i < n; i++) {
		uint8_t c = io->payload[i];

		out[i] = (c >= 0x20 && c < 0x7f) ? (char)c : '?';
	}
	out[n] = 0;
}

static void put_hello(uint8_t *p, uint64_t cluster, unsigned from,
		      unsigned to, unsigned channel, const uint8_t *nonce)
{
	memset(p, 0, NET_HELLO_LEN);
	put_le64(p, cluster);
	put_le16(p + 8, (uint16_t)from);
	put_le16(p + 10, (uint16_t)to);
	p[12] = (uint8_t)channel;
	memcpy(p + 16, nonce, NET_NONCE_LEN);
}

static void hs_start(struct hs_io *io, int fd, const struct net_hs *hs,
		     unsigned channel, unsigned peer)
{
	memset(io, 0, sizeof(*io));
	io->fd = fd;
	io->deadline_ms = mono_ms() + hs->timeout_ms;
	io->x.peer = (uint16_t)peer;
	io->x.channel = (uint8_t)channel;
	io->x.max_len = HS_MAX_PAYLOAD;
}

/* Reads the peer's reply to our message; a REJECT ends the handshake. */
static int expect_type(struct hs_io *io, struct net_hs *hs, unsigned type,
		       uint32_t len, char *err, size_t errlen)
{
	char why[200];
	int r = recv_msg(io, why, sizeof(why));

	if (r) {
		/* Garbage or another protocol version will not change on
		 * retry; a closed or slow socket may. */
		hs->fatal = r == -2;
		errf(err, errlen, "%s", why);
		return -1;
	}
	if (io->h.type == NET_T_REJECT) {
		reject_text(io, why, sizeof(why));
		errf(err, errlen, "node %u refused the connection: %s",
		     hs->peer, why);
		hs->fatal = true;
		return -1;
	}
	if (io->h.type != type || io->h.len != len) {
		errf(err, errlen, "expected handshake message %u of %u bytes, got type %u of %u",
		     type, len, io->h.type, io->h.len);
		hs->fatal = true;
		return -1;
	}
	return 0;
}

int net_auth__connect(int fd, struct net_hs *hs, char *err, size_t errlen)
{
	struct net_auth_transcript t = { 0 };
	uint8_t hello[NET_HELLO_LEN], mac[NET_MAC_LEN];
	struct hs_io io;

	hs->fatal = false;
	if (sodium_init() < 0) {
		errf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	hs_start(&io, fd, hs, hs->channel, hs->peer);
	t.cluster_id = hs->cluster_id;
	t.connector = hs->self;
	t.acceptor = hs->peer;
	t.channel = hs->channel;
	randombytes_buf(t.nonce_c, NET_NONCE_LEN);
	put_hello(hello, hs->cluster_id, hs->self, hs->peer, hs->channel,
		  t.nonce_c);
	if (send_msg(&io, NET_T_HELLO, hs->self, hello, sizeof(hello), 0, err,
		     errlen))
		return -1;
	if (expect_type(&io, hs, NET_T_HELLO_ACK, NET_HELLO_LEN, err, errlen))
		return -1;
	if (get_le64(io.payload) != hs->cluster_id ||
	    get_le16(io.payload + 8) != hs->peer ||
	    get_le16(io.payload + 10) != hs->self ||
	    io.payload[12] != hs->channel) {
		errf(err, errlen, "node %u answered for another cluster, node or channel",
		     hs->peer);
		hs->fatal = true;
		return -1;
	}
	memcpy(t.nonce_a, io.payload + 16, NET_NONCE_LEN);
	net_auth__mac(hs->key, &t, NET_AUTH_CONNECTOR, mac);
	if (send_msg(&io, NET_T_AUTH, hs->self, mac, sizeof(mac), 0, err,
		     errlen))
		return -1;
	if (expect_type(&io, hs, NET_T_AUTH, NET_MAC_LEN, err, errlen))
		return -1;
	if (!net_auth__mac_ok(hs->key, &t, NET_AUTH_ACCEPTOR, io.payload)) {
		send_reject(&io, hs->self, "authentication failed");
		errf(err, errlen,
		     "node %u failed authentication (wrong cluster key?)",
		     hs->peer);
		hs->fatal = true;
		return -1;
	}
	if (send_msg(&io, NET_T_READY, hs->self, NULL, 0, 0, err, errlen))
		return -1;
	hs->tx_seq = io.tx_seq;
	hs->rx_seq = io.x.seq;
	return 0;
}

/* Who may dial us: a node of this cluster below our id. */
static int check_hello(struct hs_io *io, struct net_hs *hs, char *err,
		       size_t errlen)
{
	const uint8_t *p = io->payload;
	unsigned from, to;
	uint64_t cluster;

	if (io->h.type != NET_T_HELLO || io->h.len != NET_HELLO_LEN) {
		errf(err, errlen, "first message is type %u of %u bytes, not a HELLO",
		     io->h.type, io->h.len);
		return -1;
	}
	if (io->h.channel >= NET_NR_CHANNELS || p[12] != io->h.channel) {
		errf(err, errlen, "HELLO for unknown channel %u", p[12]);
		return -1;
	}
	cluster = get_le64(p);
	from = get_le16(p + 8);
	to = get_le16(p + 10);
	if (cluster != hs->cluster_id) {
		errf(err, errlen,
		     "cluster id mismatch: dialling node has %016llx, node %u has %016llx",
		     (unsigned long long)cluster, hs->self,
		     (unsigned long long)hs->cluster_id);
		return -1;
	}
	if (io->h.sender != from || from >= hs->nr_nodes || from == hs->self) {
		errf(err, errlen, "HELLO from invalid node id %u (header says %u)",
		     from, io->h.sender);
		return -1;
	}
	if (to != hs->self) {
		errf(err, errlen, "node %u dialled node %u at this node's (%u) address",
		     from, to, hs->self);
		return -1;
	}
	if (from > hs->self) {
		errf(err, errlen, "node %u dialled a lower node; lower ids dial higher",
		     from);
		return -1;
	}
	return 0;
}

int net_auth__accept(int fd, struct net_hs *hs, char *err, size_t errlen)
{
	struct net_auth_transcript t = { 0 };
	uint8_t hello[NET_HELLO_LEN], mac[NET_MAC_LEN], ch_byte;
	char why[200];
	struct hs_io io;

	hs->fatal = false;
	hs->authenticated = false;
	hs->peer = NET_NODE_ANY;
	if (sodium_init() < 0) {
		errf(err, errlen, "libsodium failed to initialise");
		return -1;
	}
	hs_start(&io, fd, hs, 0, NET_NODE_ANY);
	if (read_exact(&io, io.raw, NET_HDR_SIZE, err, errlen))
		return -1;
	/* The channel is what the HELLO says; check_hello vets it. */
	ch_byte = io.raw[28];
	io.x.channel = ch_byte;
	if (net_msg__check_hdr(io.raw, &io.h, &io.x, why, sizeof(why)) ||
	    read_exact(&io, io.payload, io.h.len, why, sizeof(why)) ||
	    net_msg__check_body(io.raw, &io.h, io.payload, &io.x, why,
				sizeof(why)) ||
	    check_hello(&io, hs, why, sizeof(why))) {
		if (io.h.magic == NET_MSG_MAGIC)
			send_reject(&io, hs->self, why);
		errf(err, errlen, "%s", why);
		return -1;
	}
	io.x.seq++;
	hs->peer = io.h.sender;
	hs->channel = ch_byte;
	io.x.peer = hs->peer;
	t.cluster_id = hs->cluster_id;
	t.connector = hs->peer;
	t.acceptor = hs->self;
	t.channel = ch_byte;
	memcpy(t.nonce_c, io.payload + 16, NET_NONCE_LEN);
	randombytes_buf(t.nonce_a, NET_NONCE_LEN);
	put_hello(hello, hs->cluster_id, hs->self, hs->peer, ch_byte,
		  t.nonce_a);
	if (send_msg(&io, NET_T_HELLO_ACK, hs->self, hello, sizeof(hello), 0,
		     err, errlen))
		return -1;
	if (expect_type(&io, hs, NET_T_AUTH, NET_MAC_LEN, err, errlen))
		return -1;
	if (!net_auth__mac_ok(hs->key, &t, NET_AUTH_CONNECTOR, io.payload)) {
		send_reject(&io, hs->self, "authentication failed");
		errf(err, errlen, "authentication failed (wrong cluster key?)");
		return -1;
	}
	hs->authenticated = true;
	net_auth__mac(hs->key, &t, NET_AUTH_ACCEPTOR, mac);
	if (send_msg(&io, NET_T_AUTH, hs->self, mac, sizeof(mac), 0, err,
		     errlen))
		return -1;
	if (expect_type(&io, hs, NET_T_READY, 0, err, errlen))
		return -1;
	hs->tx_seq = io.tx_seq;
	hs->rx_seq = io.x.seq;
	return 0;
}
