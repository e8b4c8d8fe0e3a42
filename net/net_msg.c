#include "net/net_msg.h"

#include <isa-l.h>
#include <inttypes.h>
#include <string.h>

#include "net/net_types.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

#define OFF_MAGIC	0
#define OFF_VERSION	4
#define OFF_TYPE	6
#define OFF_FLAGS	8
#define OFF_SENDER	10
#define OFF_LEN		12
#define OFF_SEQ		16
#define OFF_CRC		24
#define OFF_CHANNEL	28
#define OFF_RESERVED	29

const char *net_msg__status_name(int status)
{
	switch (status) {
	case NET_MSG_OK:		return "ok";
	case NET_MSG_TRUNCATED:		return "truncated";
	case NET_MSG_BAD_MAGIC:		return "bad magic";
	case NET_MSG_BAD_VERSION:	return "protocol version mismatch";
	case NET_MSG_BAD_TYPE:		return "unknown message type";
	case NET_MSG_BAD_FLAGS:		return "unknown flags";
	case NET_MSG_BAD_CHANNEL:	return "wrong channel";
	case NET_MSG_TOO_LONG:		return "payload too long";
	case NET_MSG_BAD_CRC:		return "CRC mismatch";
	case NET_MSG_BAD_SENDER:	return "wrong sender";
	case NET_MSG_BAD_SEQ:		return "sequence mismatch";
	}
	return "?";
}

const char *net_channel__name(unsigned channel)
{
	switch (channel) {
	case NET_CH_FAST:	return "FAST";
	case NET_CH_BULK:	return "BULK";
	}
	return "?";
}

uint32_t net_msg__max_payload(unsigned channel)
{
	return channel == NET_CH_BULK ? NET_BULK_MAX_PAYLOAD :
					NET_FAST_MAX_PAYLOAD;
}

uint32_t net_msg__crc32c(uint32_t crc, const void *buf, size_t len)
{
	/* ISA-L keeps the raw register (no pre/post inversion) and takes an
	 * int length: invert around it and feed large buffers in pieces. */
	const unsigned char *p = buf;
	uint32_t r = ~crc;

	while (len) {
		size_t n = len > (1u << 30) ? (1u << 30) : len;

		r = crc32_iscsi((unsigned char *)p, (int)n, r);
		p += n;
		len -= n;
	}
	return ~r;
}

void net_msg__encode(uint8_t raw[NET_HDR_SIZE], const struct net_hdr *h)
{
	put_le32(raw + OFF_MAGIC, h->magic);
	put_le16(raw + OFF_VERSION, h->version);
	put_le16(raw + OFF_TYPE, h->type);
	put_le16(raw + OFF_FLAGS, h->flags);
	put_le16(raw + OFF_SENDER, h->sender);
	put_le32(raw + OFF_LEN, h->len);
	put_le64(raw + OFF_SEQ, h->seq);
	put_le32(raw + OFF_CRC, h->crc);
	raw[OFF_CHANNEL] = h->channel;
	memset(raw + OFF_RESERVED, 0, NET_HDR_SIZE - OFF_RESERVED);
}

void net_msg__decode(const uint8_t raw[NET_HDR_SIZE], struct net_hdr *h)
{
	h->magic = get_le32(raw + OFF_MAGIC);
	h->version = get_le16(raw + OFF_VERSION);
	h->type = get_le16(raw + OFF_TYPE);
	h->flags = get_le16(raw + OFF_FLAGS);
	h->sender = get_le16(raw + OFF_SENDER);
	h->len = get_le32(raw + OFF_LEN);
	h->seq = get_le64(raw + OFF_SEQ);
	h->crc = get_le32(raw + OFF_CRC);
	h->channel = raw[OFF_CHANNEL];
}

uint32_t net_msg__crc(const uint8_t raw[NET_HDR_SIZE], const struct iovec *iov,
		      int iovcnt)
{
	static const uint8_t zero[4];
	uint32_t crc;

	crc = net_msg__crc32c(0, raw, OFF_CRC);
	crc = net_msg__crc32c(crc, zero, sizeof(zero));
	crc = net_msg__crc32c(crc, raw + OFF_CRC + 4,
			      NET_HDR_SIZE - OFF_CRC - 4);
	for (int i = 0; i < iovcnt; i++)
		crc = net_msg__crc32c(crc, iov[i].iov_base, iov[i].iov_len);
	return crc;
}

void net_msg__seal(uint8_t raw[NET_HDR_SIZE], const struct iovec *iov,
		   int iovcnt)
{
	put_le32(raw + OFF_CRC, net_msg__crc(raw, iov, iovcnt));
}

void net_msg__init(struct net_hdr *h, unsigned type, unsigned channel,
		   unsigned sender, uint32_t len, uint64_t seq)
{
	memset(h, 0, sizeof(*h));
	h->magic = NET_MSG_MAGIC;
	h->version = NET_PROTO_VERSION;
	h->type = (uint16_t)type;
	h->channel = (uint8_t)channel;
	h->sender = (uint16_t)sender;
	h->len = len;
	h->seq = seq;
}

size_t net_msg__build(void *buf, size_t cap, const struct net_hdr *h,
		      const void *payload)
{
	uint8_t *out = buf;
	struct iovec iov = { (void *)payload, h->len };

	if (cap < NET_HDR_SIZE || cap - NET_HDR_SIZE < h->len)
		return 0;
	net_msg__encode(out, h);
	if (h->len)
		memcpy(out + NET_HDR_SIZE, payload, h->len);
	net_msg__seal(out, &iov, h->len ? 1 : 0);
	return NET_HDR_SIZE + (size_t)h->len;
}

int net_msg__check_hdr(const uint8_t raw[NET_HDR_SIZE], struct net_hdr *h,
		       const struct net_msg_expect *x, char *err,
		       size_t errlen)
{
	net_msg__decode(raw, h);
	if (h->magic != NET_MSG_MAGIC) {
		errf(err, errlen, "bad magic 0x%08" PRIx32 " (not a krg-vmm peer)",
		     h->magic);
		return NET_MSG_BAD_MAGIC;
	}
	if (h->version != NET_PROTO_VERSION) {
		errf(err, errlen,
		     "peer speaks protocol version %u, this node speaks version %u",
		     h->version, NET_PROTO_VERSION);
		return NET_MSG_BAD_VERSION;
	}
	if (!net_type__known(h->type)) {
		errf(err, errlen, "unknown message type %u", h->type);
		return NET_MSG_BAD_TYPE;
	}
	if (h->flags & ~NET_FLAGS_KNOWN) {
		errf(err, errlen, "unknown flags 0x%x", h->flags);
		return NET_MSG_BAD_FLAGS;
	}
	for (int i = OFF_RESERVED; i < NET_HDR_SIZE; i++) {
		if (raw[i]) {
			errf(err, errlen, "reserved header byte %d is 0x%02x",
			     i, raw[i]);
			return NET_MSG_BAD_FLAGS;
		}
	}
	if (h->channel != x->channel) {
		errf(err, errlen, "message for channel %u on the %s channel",
		     h->channel, net_channel__name(x->channel));
		return NET_MSG_BAD_CHANNEL;
	}
	if (h->len > x->max_len) {
		errf(err, errlen,
		     "payload of %" PRIu32 " bytes exceeds the %s channel's %" PRIu32,
		     h->len, net_channel__name(x->channel), x->max_len);
		return NET_MSG_TOO_LONG;
	}
	return NET_MSG_OK;
}

int net_msg__check_body(const uint8_t raw[NET_HDR_SIZE],
			const struct net_hdr *h, const void *payload,
			const struct net_msg_expect *x, char *err,
			size_t errlen)
{
	struct iovec iov = { (void *)payload, h->len };
	uint32_t crc = net_msg__crc(raw, &iov, h->len ? 1 : 0);

	/* CRC first: a corrupted header would otherwise be blamed on the
	 * sender or sequence field it happened to hit. */
	if (crc != h->crc) {
		errf(err, errlen,
		     "CRC mismatch (type %u, %" PRIu32 " bytes, seq %" PRIu64 ")",
		     h->type, h->len, h->seq);
		return NET_MSG_BAD_CRC;
	}
	if (x->peer != NET_NODE_ANY && h->sender != x->peer) {
		errf(err, errlen, "message claims sender %u on node %u's connection",
		     h->sender, x->peer);
		return NET_MSG_BAD_SENDER;
	}
	if (h->seq != x->seq) {
		errf(err, errlen,
		     "sequence %" PRIu64 ", expected %" PRIu64 " (%s)", h->seq,
		     x->seq, h->seq < x->seq ? "replay or duplicate" :
					       "message lost or skipped");
		return NET_MSG_BAD_SEQ;
	}
	return NET_MSG_OK;
}

int net_msg__validate(const void *buf, size_t len,
		      const struct net_msg_expect *x, struct net_hdr *h,
		      char *err, size_t errlen)
{
	const uint8_t *p = buf;
	int r;

	if (len < NET_HDR_SIZE) {
		errf(err, errlen, "truncated header: %zu of %d bytes", len,
		     NET_HDR_SIZE);
		return NET_MSG_TRUNCATED;
	}
	r = net_msg__check_hdr(p, h, x, err, errlen);
	if (r)
		return r;
	if (len - NET_HDR_SIZE < h->len) {
		errf(err, errlen, "truncated payload: %zu of %" PRIu32 " bytes",
		     len - NET_HDR_SIZE, h->len);
		return NET_MSG_TRUNCATED;
	}
	return net_msg__check_body(p, h, p + NET_HDR_SIZE, x, err, errlen);
}
