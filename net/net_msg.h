/* The cluster wire format: a fixed 32-byte little-endian header in front of
 * every message, and the checks a receiver makes before anything acts on
 * it.  Pure code: no sockets, no threads.
 *
 *   off size field
 *    0   4   magic     "KRGN" (0x4e47524b little-endian)
 *    4   2   version   NET_PROTO_VERSION
 *    6   2   type      net/net_types.h; 0 and >= 192 are invalid
 *    8   2   flags     none defined yet: must be 0
 *   10   2   sender    node id of the sender
 *   12   4   length    payload bytes after the header
 *   16   8   seq       per connection and direction: 0, 1, 2, ...
 *   24   4   crc       CRC32C (Castagnoli) of header (this field as 0)
 *                      followed by the payload
 *   28   1   channel   NET_CH_FAST or NET_CH_BULK
 *   29   3   reserved  must be 0
 */
#ifndef KRG_NET_MSG_H
#define KRG_NET_MSG_H

#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#define NET_MSG_MAGIC		0x4e47524bu
#define NET_PROTO_VERSION	1
#define NET_HDR_SIZE		32
#define NET_FLAGS_KNOWN		0u

/* Node ids on the wire are 16 bits; this one is never a real node. */
#define NET_NODE_ANY		0xffffu

/* Two connections per peer pair, so page traffic never waits behind bulk
 * data in one TCP stream. */
enum net_channel {
	NET_CH_FAST = 0,	/* coherence, IPIs, I/O forwarding */
	NET_CH_BULK = 1,	/* boot images, checkpoints, migration */
	NET_NR_CHANNELS = 2,
};

/* A 4 KiB page plus its request fits FAST many times over; BULK senders
 * chunk anything larger than 4 MiB. */
#define NET_FAST_MAX_PAYLOAD	(64u * 1024)
#define NET_BULK_MAX_PAYLOAD	(4u * 1024 * 1024)

struct net_hdr {
	uint32_t magic;
	uint16_t version;
	uint16_t type;
	uint16_t flags;
	uint16_t sender;
	uint32_t len;
	uint64_t seq;
	uint32_t crc;
	uint8_t channel;
};

/* What the receiving end of one connection expects of the next message. */
struct net_msg_expect {
	uint16_t peer;		/* authenticated peer, NET_NODE_ANY if not yet */
	uint8_t channel;
	uint32_t max_len;	/* net_msg__max_payload(channel) normally */
	uint64_t seq;		/* the next sequence number */
};

enum net_msg_status {
	NET_MSG_OK = 0,
	NET_MSG_TRUNCATED,
	NET_MSG_BAD_MAGIC,
	NET_MSG_BAD_VERSION,
	NET_MSG_BAD_TYPE,
	NET_MSG_BAD_FLAGS,
	NET_MSG_BAD_CHANNEL,
	NET_MSG_TOO_LONG,
	NET_MSG_BAD_CRC,
	NET_MSG_BAD_SENDER,
	NET_MSG_BAD_SEQ,
};

const char *net_msg__status_name(int status);
const char *net_channel__name(unsigned channel);
uint32_t net_msg__max_payload(unsigned channel);

/* Standard CRC32C (init ~0, final xor ~0) through ISA-L; chainable by
 * passing the previous result as crc (start with 0). */
uint32_t net_msg__crc32c(uint32_t crc, const void *buf, size_t len);

/* Writes every field of h, crc included, into raw. */
void net_msg__encode(uint8_t raw[NET_HDR_SIZE], const struct net_hdr *h);
/* Reads the fields back without judging them. */
void net_msg__decode(const uint8_t raw[NET_HDR_SIZE], struct net_hdr *h);
/* The CRC a header + payload must carry (raw's crc field is ignored). */
uint32_t net_msg__crc(const uint8_t raw[NET_HDR_SIZE], const struct iovec *iov,
		      int iovcnt);
/* Computes the CRC and stores it in raw. */
void net_msg__seal(uint8_t raw[NET_HDR_SIZE], const struct iovec *iov,
		   int iovcnt);
/* Fills h for a message from sender: magic, version, zero flags, crc 0. */
void net_msg__init(struct net_hdr *h, unsigned type, unsigned channel,
		   unsigned sender, uint32_t len, uint64_t seq);
/* Header + payload contiguous in buf (tests, handshake).  Returns the
 * total size, or 0 if cap is too small. */
size_t net_msg__build(void *buf, size_t cap, const struct net_hdr *h,
		      const void *payload);

/* The checks possible before the payload is read: magic, version, type,
 * flags, reserved bytes, channel, length.  Decodes into h.  Returns
 * NET_MSG_OK or a status with a one-line reason in err. */
int net_msg__check_hdr(const uint8_t raw[NET_HDR_SIZE], struct net_hdr *h,
		       const struct net_msg_expect *x, char *err,
		       size_t errlen);
/* The rest, once the payload (h->len bytes) is in memory: CRC, sender,
 * sequence. */
int net_msg__check_body(const uint8_t raw[NET_HDR_SIZE],
			const struct net_hdr *h, const void *payload,
			const struct net_msg_expect *x, char *err,
			size_t errlen);
/* Both, on a buffer that should start with a whole message (extra bytes
 * after it are left alone).  The message spans NET_HDR_SIZE + h->len. */
int net_msg__validate(const void *buf, size_t len,
		      const struct net_msg_expect *x, struct net_hdr *h,
		      char *err, size_t errlen);

#endif
