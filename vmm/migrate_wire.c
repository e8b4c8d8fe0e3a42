/* vCPU migration's wire formats (see migrate_proto.h): byte-exact,
 * checked field by field before anything acts on a message. */
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"
#include "vmm/migrate_proto.h"

static const char *const fault_names[] = {
	[MIGRATE_FAULT_NONE] = "none",
	[MIGRATE_FAULT_REFUSE_PREPARE] = "refuse-prepare",
	[MIGRATE_FAULT_FAIL_CAPTURE] = "fail-capture",
	[MIGRATE_FAULT_REFUSE_LOAD] = "refuse-load",
	[MIGRATE_FAULT_SILENT_LOAD] = "silent-load",
	[MIGRATE_FAULT_SILENT_RESUME] = "silent-resume",
};

const char *migrate_fault__name(unsigned f)
{
	return f <= MIGRATE_FAULT_MAX ? fault_names[f] : NULL;
}

int migrate_fault__parse(const char *name)
{
	for (unsigned f = 0; name && f <= MIGRATE_FAULT_MAX; f++)
		if (!strcmp(name, fault_names[f]))
			return (int)f;
	return -1;
}

const char *migrate_status__name(enum migrate_status s)
{
	switch (s) {
	case MIGRATE_OK: return "ok";
	case MIGRATE_E_REFUSED: return "refused";
	case MIGRATE_E_TIMEOUT: return "timeout";
	case MIGRATE_E_CAPTURE: return "capture failed";
	case MIGRATE_E_STOPPING: return "VM stopping";
	case MIGRATE_E_BUSY: return "busy";
	case MIGRATE_E_UNCONFIRMED: return "unconfirmed";
	case MIGRATE_E_INVALID: return "invalid";
	}
	return "unknown";
}

static void put_head(uint8_t *b, const struct migrate_msg *m)
{
	put_le64(b, m->id);
	put_le16(b + 8, m->vcpu);
	put_le16(b + 10, m->node);
	put_le32(b + 12, m->gen);
}

static void put_addr(uint8_t *b, const struct apic_addr *a)
{
	put_le32(b, a->apic_id);
	put_le32(b + 4, a->ldr);
	b[8] = a->dfr_flat;
	b[9] = a->x2apic;
	b[10] = a->enabled;
	b[11] = a->ppr;
}

/* The text as far as it goes, at most MIGRATE_TEXT_MAX bytes. */
static size_t text_len(const char *t)
{
	size_t n = strnlen(t, MIGRATE_TEXT_MAX);

	return n;
}

int migrate_msg__encode(unsigned type, const struct migrate_msg *m,
			uint8_t *buf, size_t buflen)
{
	size_t need, tl = 0;

	switch (type) {
	case MIGRATE_T_START:
	case MIGRATE_T_PREPARE:
	case MIGRATE_T_DECIDE:
		need = MIGRATE_START_SIZE;
		break;
	case MIGRATE_T_REPLY:
		tl = text_len(m->text);
		need = MIGRATE_REPLY_MIN + tl;
		break;
	case MIGRATE_T_DONE:
		tl = text_len(m->text);
		need = MIGRATE_DONE_MIN + tl;
		break;
	case MIGRATE_T_STATE:
		need = MIGRATE_STATE_HDR;
		break;
	case MIGRATE_T_PLACE:
		need = MIGRATE_PLACE_SIZE;
		break;
	case MIGRATE_T_FORWARD:
		need = MIGRATE_FORWARD_SIZE;
		break;
	default:
		return -1;
	}
	if (!buf || buflen < need)
		return -1;
	memset(buf, 0, need);
	switch (type) {
	case MIGRATE_T_START:
	case MIGRATE_T_PREPARE:
		put_head(buf, m);
		buf[16] = m->fault;
		break;
	case MIGRATE_T_DECIDE:
		put_head(buf, m);
		buf[16] = m->commit ? 1 : 0;
		break;
	case MIGRATE_T_REPLY:
		put_head(buf, m);
		buf[16] = m->step;
		buf[17] = m->status;
		put_le64(buf + 20, m->value);
		memcpy(buf + 28, m->text, tl);
		break;
	case MIGRATE_T_DONE:
		put_head(buf, m);
		buf[16] = m->status;
		put_le64(buf + 20, m->value);
		put_le64(buf + 28, m->total_ns);
		put_le32(buf + 36, m->state_bytes);
		memcpy(buf + 40, m->text, tl);
		break;
	case MIGRATE_T_STATE:
		put_le64(buf, m->id);
		put_le16(buf + 8, m->vcpu);
		put_le32(buf + 12, m->gen);
		put_le32(buf + 16, m->addr_seq);
		put_addr(buf + 20, &m->addr);
		put_le32(buf + 32, m->blob_len);
		break;
	case MIGRATE_T_PLACE:
		put_le16(buf, m->vcpu);
		put_le16(buf + 2, m->node);
		put_le32(buf + 4, m->gen);
		put_le32(buf + 8, m->addr_seq);
		put_addr(buf + 12, &m->addr);
		break;
	case MIGRATE_T_FORWARD:
		put_le16(buf, m->vcpu);
		buf[2] = m->hops;
		put_le32(buf + 4, m->irq.dest);
		put_le32(buf + 8, (uint32_t)m->irq.source);
		buf[12] = m->irq.vector;
		buf[13] = m->irq.delivery;
		buf[14] = m->irq.dest_logical;
		buf[15] = m->irq.shorthand;
		buf[16] = m->irq.level;
		buf[17] = m->irq.trigger_level;
		buf[18] = m->irq.x2apic;
		break;
	}
	return (int)need;
}

/* Printable ASCII only reaches a log line or a QMP reply. */
static void get_text(const uint8_t *b, size_t n, char *out)
{
	if (n > MIGRATE_TEXT_MAX)
		n = MIGRATE_TEXT_MAX;
	for (size_t i = 0; i < n; i++)
		out[i] = b[i] >= 0x20 && b[i] < 0x7f ? (char)b[i] : '?';
	out[n] = '\0';
}

static int get_addr(const uint8_t *b, struct apic_addr *a, char *err,
		    size_t errlen)
{
	a->apic_id = get_le32(b);
	a->ldr = get_le32(b + 4);
	a->dfr_flat = b[8];
	a->x2apic = b[9];
	a->enabled = b[10];
	a->ppr = b[11];
	if (a->dfr_flat > 1 || a->x2apic > 1 || a->enabled > 3 ||
	    a->enabled == 2 || (a->x2apic && !a->enabled))
		return errf_fail(err, errlen, "an APIC address with bad flags");
	return 0;
}

static int get_head(const uint8_t *b, struct migrate_msg *m,
		    unsigned nr_vcpus, unsigned nr_nodes, char *err,
		    size_t errlen)
{
	m->id = get_le64(b);
	m->vcpu = get_le16(b + 8);
	m->node = get_le16(b + 10);
	m->gen = get_le32(b + 12);
	if (m->vcpu >= nr_vcpus)
		return errf_fail(err, errlen,
				 "vCPU %u of %u", m->vcpu, nr_vcpus);
	if (m->node >= nr_nodes)
		return errf_fail(err, errlen,
				 "node %u of %u", m->node, nr_nodes);
	return 0;
}

static int want_len(size_t len, size_t want, bool at_least, char *err,
		    size_t errlen)
{
	if (at_least ? len < want || len > want + MIGRATE_TEXT_MAX :
		       len != want)
		return errf_fail(err, errlen, "length %zu, expected %s%zu", len,
				 at_least ? "at least " : "", want);
	return 0;
}

static int get_irq(const uint8_t *b, struct apic_msg *irq, unsigned nr_vcpus,
		   char *err, size_t errlen)
{
	irq->dest = get_le32(b);
	irq->source = (int32_t)get_le32(b + 4);
	irq->vector = b[8];
	irq->delivery = b[9];
	irq->dest_logical = b[10];
	irq->shorthand = b[11];
	irq->level = b[12];
	irq->trigger_level = b[13];
	irq->x2apic = b[14];
	irq->pad = 0;
	if (b[15] || irq->dest_logical > 1 || irq->shorthand > 3 ||
	    irq->level > 1 || irq->trigger_level > 1 || irq->x2apic > 1 ||
	    irq->source < -1 || irq->source >= (int32_t)nr_vcpus ||
	    irq->delivery == 3 || irq->delivery > 6)
		return errf_fail(err, errlen, "a forwarded interrupt with bad "
				 "fields");
	return 0;
}

int migrate_msg__decode(unsigned type, const uint8_t *b, size_t len,
			unsigned nr_vcpus, unsigned nr_nodes,
			struct migrate_msg *m, char *err, size_t errlen)
{
	memset(m, 0, sizeof(*m));
	if (!b && len)
		return errf_fail(err, errlen, "no payload");
	switch (type) {
	case MIGRATE_T_START:
	case MIGRATE_T_PREPARE:
	case MIGRATE_T_DECIDE:
		if (want_len(len, MIGRATE_START_SIZE, false, err, errlen) ||
		    get_head(b, m, nr_vcpus, nr_nodes, err, errlen))
			return -1;
		if (!all_zero(b + 17, 3))
			return errf_fail(err, errlen, "reserved bytes set");
		if (type == MIGRATE_T_DECIDE) {
			m->commit = b[16];
			if (m->commit > 1 || m->node)
				return errf_fail(err, errlen, "bad DECIDE");
		} else {
			m->fault = b[16];
			if (m->fault > MIGRATE_FAULT_MAX)
				return errf_fail(err, errlen,
						 "unknown fault %u", m->fault);
		}
		return 0;
	case MIGRATE_T_REPLY:
		if (want_len(len, MIGRATE_REPLY_MIN, true, err, errlen) ||
		    get_head(b, m, nr_vcpus, nr_nodes, err, errlen))
			return -1;
		m->step = b[16];
		m->status = b[17];
		m->value = get_le64(b + 20);
		if (m->step < MIGRATE_STEP_PREPARED ||
		    m->step > MIGRATE_STEP_RESUMED ||
		    m->status > MIGRATE_E_MAX || !all_zero(b + 18, 2) ||
		    m->node)
			return errf_fail(err, errlen, "bad REPLY");
		get_text(b + 28, len - 28, m->text);
		return 0;
	case MIGRATE_T_DONE:
		if (want_len(len, MIGRATE_DONE_MIN, true, err, errlen) ||
		    get_head(b, m, nr_vcpus, nr_nodes, err, errlen))
			return -1;
		m->status = b[16];
		m->value = get_le64(b + 20);
		m->total_ns = get_le64(b + 28);
		m->state_bytes = get_le32(b + 36);
		if (m->status > MIGRATE_E_MAX || !all_zero(b + 17, 3))
			return errf_fail(err, errlen, "bad DONE");
		get_text(b + 40, len - 40, m->text);
		return 0;
	case MIGRATE_T_STATE:
		if (len < MIGRATE_STATE_HDR)
			return errf_fail(err, errlen,
					 "STATE of %zu bytes", len);
		m->id = get_le64(b);
		m->vcpu = get_le16(b + 8);
		m->gen = get_le32(b + 12);
		m->addr_seq = get_le32(b + 16);
		m->blob_len = get_le32(b + 32);
		if (m->vcpu >= nr_vcpus || !all_zero(b + 10, 2))
			return errf_fail(err, errlen, "bad STATE header");
		if (get_addr(b + 20, &m->addr, err, errlen))
			return -1;
		if (m->blob_len != len - MIGRATE_STATE_HDR)
			return errf_fail(err, errlen,
					 "STATE says %u bytes of state, "
					 "carries %zu", m->blob_len,
					 len - MIGRATE_STATE_HDR);
		m->blob = b + MIGRATE_STATE_HDR;
		return 0;
	case MIGRATE_T_PLACE:
		if (want_len(len, MIGRATE_PLACE_SIZE, false, err, errlen))
			return -1;
		m->vcpu = get_le16(b);
		m->node = get_le16(b + 2);
		m->gen = get_le32(b + 4);
		m->addr_seq = get_le32(b + 8);
		if (m->vcpu >= nr_vcpus || m->node >= nr_nodes || !m->gen)
			return errf_fail(err, errlen, "bad PLACE");
		return get_addr(b + 12, &m->addr, err, errlen);
	case MIGRATE_T_FORWARD:
		if (want_len(len, MIGRATE_FORWARD_SIZE, false, err, errlen))
			return -1;
		m->vcpu = get_le16(b);
		m->hops = b[2];
		if (m->vcpu >= nr_vcpus || b[3] || !m->hops ||
		    m->hops > MIGRATE_MAX_HOPS)
			return errf_fail(err, errlen, "bad FORWARD");
		return get_irq(b + 4, &m->irq, nr_vcpus, err, errlen);
	}
	return errf_fail(err, errlen,
			 "unknown migration message type %u", type);
}
