/* virtio-blk queue serving across nodes: the message codec and the
 * queue-to-node rule (pure; see virtio_blk_mq.h for the layouts). */
#include "vmm/devices/virtio_blk_mq.h"

#include <string.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

#define HDR 8
#define SETUP_LEN 96
#define ACK_LEN 32
#define UPDATE_LEN 32
#define BROKEN_LEN 16
#define FLUSHED_LEN 16
#define FLAGS_ALL (BLK_MQ_F_EVENT_IDX | BLK_MQ_F_INDIRECT | \
		   BLK_MQ_F_MSI_DIRECT | BLK_MQ_F_FANOUT)

const char *blk_mq__type_name(unsigned type)
{
	switch (type) {
	case BLK_MQ_T_SETUP: return "SETUP";
	case BLK_MQ_T_ACK: return "ACK";
	case BLK_MQ_T_STOP: return "STOP";
	case BLK_MQ_T_KICK: return "KICK";
	case BLK_MQ_T_UPDATE: return "UPDATE";
	case BLK_MQ_T_IRQ: return "IRQ";
	case BLK_MQ_T_BROKEN: return "BROKEN";
	case BLK_MQ_T_FLUSH: return "FLUSH";
	case BLK_MQ_T_FLUSHED: return "FLUSHED";
	default: return "unknown";
	}
}

unsigned blk_mq__queue_vcpu(unsigned q, unsigned nr_vcpus)
{
	return nr_vcpus ? q % nr_vcpus : 0;
}

unsigned blk_mq__queue_node(unsigned q, unsigned nr_vcpus,
			    const uint8_t *vcpu_node)
{
	if (!nr_vcpus || !vcpu_node)
		return 0;
	return vcpu_node[blk_mq__queue_vcpu(q, nr_vcpus)];
}

unsigned blk_mq__default_queues(unsigned requested, unsigned nr_vcpus,
				bool cluster)
{
	unsigned cap = cluster ? BLK_MQ_DEFAULT_MAX : BLK_MQ_SINGLE_NODE_MAX;

	if (requested)
		return requested;
	if (!nr_vcpus)
		return 1;
	return nr_vcpus < cap ? nr_vcpus : cap;
}

/* Reasons and paths go into log lines: printable ASCII only. */
static bool text_ok(const char *s, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)s[i] < 0x20 || (unsigned char)s[i] > 0x7e)
			return false;
	return true;
}

static int fixed_len(unsigned type)
{
	switch (type) {
	case BLK_MQ_T_SETUP: return SETUP_LEN;
	case BLK_MQ_T_ACK: return ACK_LEN;
	case BLK_MQ_T_UPDATE: return UPDATE_LEN;
	case BLK_MQ_T_BROKEN: return BROKEN_LEN;
	case BLK_MQ_T_FLUSHED: return FLUSHED_LEN;
	case BLK_MQ_T_STOP:
	case BLK_MQ_T_KICK:
	case BLK_MQ_T_IRQ:
	case BLK_MQ_T_FLUSH: return HDR;
	default: return -1;
	}
}

static bool has_text(unsigned type)
{
	return type == BLK_MQ_T_SETUP || type == BLK_MQ_T_ACK ||
	       type == BLK_MQ_T_BROKEN;
}

static bool has_flags(unsigned type)
{
	return type == BLK_MQ_T_SETUP || type == BLK_MQ_T_UPDATE;
}

int blk_mq__encode(const struct blk_mq_msg *m, uint8_t *buf, size_t len)
{
	int fixed = fixed_len(m->type);
	size_t tlen = has_text(m->type) ? strnlen(m->text, sizeof(m->text)) : 0;
	size_t total;

	if (fixed < 0 || tlen > BLK_MQ_TEXT_MAX || !text_ok(m->text, tlen) ||
	    m->drive >= BLK_MQ_MAX_DRIVES || m->queue >= BLK_MQ_MAX_QUEUES ||
	    (m->flags & ~FLAGS_ALL) || (m->flags && !has_flags(m->type)))
		return -1;
	total = (size_t)fixed + tlen;
	if (len < total)
		return -1;
	memset(buf, 0, total);
	buf[0] = m->drive;
	buf[1] = m->queue;
	put_le16(buf + 2, m->flags);
	put_le32(buf + 4, m->seq);
	switch (m->type) {
	case BLK_MQ_T_SETUP:
		put_le64(buf + 8, m->features);
		put_le64(buf + 16, m->device_features);
		put_le64(buf + 24, m->capacity);
		put_le64(buf + 32, m->desc);
		put_le64(buf + 40, m->avail);
		put_le64(buf + 48, m->used);
		put_le64(buf + 56, m->msi_addr);
		put_le64(buf + 64, m->notify);
		put_le32(buf + 72, m->msi_data);
		put_le16(buf + 76, m->size);
		put_le16(buf + 78, m->last_avail);
		put_le16(buf + 80, m->used_idx);
		put_le16(buf + 82, m->signalled_used);
		put_le16(buf + 84, m->num_queues);
		put_le16(buf + 86, m->max_size);
		buf[88] = m->signalled_valid ? 1 : 0;
		buf[89] = (uint8_t)tlen;
		put_le32(buf + 92, m->gen);
		break;
	case BLK_MQ_T_ACK:
		buf[8] = m->acked;
		buf[9] = m->status;
		buf[10] = m->signalled_valid ? 1 : 0;
		buf[11] = m->broken ? 1 : 0;
		put_le16(buf + 12, m->last_avail);
		put_le16(buf + 14, m->used_idx);
		put_le16(buf + 16, m->signalled_used);
		buf[18] = (uint8_t)tlen;
		put_le64(buf + 24, m->domain);
		break;
	case BLK_MQ_T_UPDATE:
		put_le64(buf + 8, m->msi_addr);
		put_le64(buf + 16, m->notify);
		put_le32(buf + 24, m->msi_data);
		break;
	case BLK_MQ_T_BROKEN:
		buf[8] = (uint8_t)tlen;
		break;
	case BLK_MQ_T_FLUSHED:
		buf[8] = m->status ? 1 : 0;
		break;
	default:
		break;
	}
	memcpy(buf + fixed, m->text, tlen);
	return (int)total;
}

static int decode_setup(const uint8_t *b, struct blk_mq_msg *m, char *err,
			size_t errlen)
{
	m->features = get_le64(b + 8);
	m->device_features = get_le64(b + 16);
	m->capacity = get_le64(b + 24);
	m->desc = get_le64(b + 32);
	m->avail = get_le64(b + 40);
	m->used = get_le64(b + 48);
	m->msi_addr = get_le64(b + 56);
	m->notify = get_le64(b + 64);
	m->msi_data = get_le32(b + 72);
	m->size = get_le16(b + 76);
	m->last_avail = get_le16(b + 78);
	m->used_idx = get_le16(b + 80);
	m->signalled_used = get_le16(b + 82);
	m->num_queues = get_le16(b + 84);
	m->max_size = get_le16(b + 86);
	m->signalled_valid = b[88];
	m->gen = get_le32(b + 92);
	if (b[88] > 1 || !all_zero(b + 90, 2))
		return errf_fail(err, errlen, "SETUP with reserved bits set");
	if (!m->num_queues || m->num_queues > BLK_MQ_MAX_QUEUES ||
	    m->queue >= m->num_queues)
		return errf_fail(err, errlen,
				 "SETUP of queue %u of %u", m->queue,
				 m->num_queues);
	/* The rings themselves are checked when they are mapped. */
	if (!m->max_size || m->max_size > VIRTQ_MAX_SIZE ||
	    (m->max_size & (m->max_size - 1)))
		return errf_fail(err, errlen, "SETUP with queue size limit %u",
				 m->max_size);
	return 0;
}

static int decode_ack(const uint8_t *b, struct blk_mq_msg *m, char *err,
		      size_t errlen)
{
	m->acked = b[8];
	m->status = b[9];
	m->signalled_valid = b[10];
	m->broken = b[11];
	m->last_avail = get_le16(b + 12);
	m->used_idx = get_le16(b + 14);
	m->signalled_used = get_le16(b + 16);
	m->domain = get_le64(b + 24);
	if (m->acked != BLK_MQ_T_SETUP && m->acked != BLK_MQ_T_STOP &&
	    m->acked != BLK_MQ_T_UPDATE)
		return errf_fail(err, errlen,
				 "ACK of message type %u", m->acked);
	if (m->status > BLK_MQ_ERROR || b[10] > 1 || b[11] > 1 ||
	    !all_zero(b + 19, 5))
		return errf_fail(err, errlen,
				 "ACK with status %u or reserved bits "
				 "set", m->status);
	return 0;
}

int blk_mq__decode(unsigned type, const void *payload, size_t len,
		   struct blk_mq_msg *m, char *err, size_t errlen)
{
	const uint8_t *b = payload;
	int fixed = fixed_len(type);
	size_t tlen = 0;

	memset(m, 0, sizeof(*m));
	m->type = type;
	if (fixed < 0)
		return errf_fail(err, errlen,
				 "unknown virtio-blk queue message "
				 "type %u", type);
	if (!b || len < (size_t)fixed)
		return errf_fail(err, errlen, "%s of %zu bytes",
				 blk_mq__type_name(type), len);
	m->drive = b[0];
	m->queue = b[1];
	m->flags = get_le16(b + 2);
	m->seq = get_le32(b + 4);
	if (m->drive >= BLK_MQ_MAX_DRIVES || m->queue >= BLK_MQ_MAX_QUEUES)
		return errf_fail(err, errlen, "%s for drive %u queue %u",
				 blk_mq__type_name(type), m->drive, m->queue);
	if ((m->flags & ~FLAGS_ALL) || (m->flags && !has_flags(type)))
		return errf_fail(err, errlen, "%s with flags 0x%x",
				 blk_mq__type_name(type), m->flags);
	if (type == BLK_MQ_T_SETUP)
		tlen = b[89];
	else if (type == BLK_MQ_T_ACK)
		tlen = b[18];
	else if (type == BLK_MQ_T_BROKEN)
		tlen = b[8];
	if (tlen > BLK_MQ_TEXT_MAX || len != (size_t)fixed + tlen)
		return errf_fail(err, errlen, "%s of %zu bytes (text of %zu)",
				 blk_mq__type_name(type), len, tlen);
	if (!text_ok((const char *)b + fixed, tlen))
		return errf_fail(err, errlen, "%s with unprintable text",
				 blk_mq__type_name(type));
	memcpy(m->text, b + fixed, tlen);
	m->text[tlen] = '\0';
	switch (type) {
	case BLK_MQ_T_SETUP:
		return decode_setup(b, m, err, errlen);
	case BLK_MQ_T_ACK:
		return decode_ack(b, m, err, errlen);
	case BLK_MQ_T_UPDATE:
		m->msi_addr = get_le64(b + 8);
		m->notify = get_le64(b + 16);
		m->msi_data = get_le32(b + 24);
		if (!all_zero(b + 28, 4))
			return errf_fail(err, errlen,
					 "UPDATE with reserved bits set");
		return 0;
	case BLK_MQ_T_BROKEN:
		if (!all_zero(b + 9, 7))
			return errf_fail(err, errlen,
					 "BROKEN with reserved bits set");
		return 0;
	case BLK_MQ_T_FLUSHED:
		m->status = b[8];
		if (b[8] > 1 || !all_zero(b + 9, 7))
			return errf_fail(err, errlen,
					 "FLUSHED with status %u", b[8]);
		return 0;
	default:
		return 0;
	}
}
