/* The irq_remote wire codec (layouts in irq_remote.h): pure functions,
 * every byte of an untrusted payload checked before a field is used. */
#include "vcpu/irq_remote.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "vcpu/lapic.h"
#include "vmm/bytes.h"
#include "vmm/errf.h"

static bool is_flag(uint8_t b)
{
	return b <= 1;
}

int irq_remote__encode_deliver(uint8_t *buf, size_t buflen,
			       const struct apic_msg *msg,
			       const uint8_t *targets, int nr_vcpus)
{
	size_t len = IRQ_REMOTE_DELIVER_SIZE(nr_vcpus);

	if (!buf || !msg || !targets || nr_vcpus <= 0 ||
	    nr_vcpus > IRQ_REMOTE_MAX_VCPUS || buflen < len)
		return -1;
	memset(buf, 0, IRQ_REMOTE_DELIVER_HDR);
	put_le32(buf, msg->dest);
	put_le32(buf + 4, (uint32_t)msg->source);
	buf[8] = msg->vector;
	buf[9] = msg->delivery;
	buf[10] = msg->dest_logical;
	buf[11] = msg->shorthand;
	buf[12] = msg->level;
	buf[13] = msg->trigger_level;
	buf[14] = msg->x2apic;
	put_le16(buf + 16, (uint16_t)nr_vcpus);
	memcpy(buf + IRQ_REMOTE_DELIVER_HDR, targets,
	       IRQ_TARGETS_BYTES(nr_vcpus));
	return (int)len;
}

static int count_bits(const uint8_t *b, size_t n)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += __builtin_popcount(b[i]);
	return c;
}

int irq_remote__decode_deliver(const uint8_t *buf, size_t len, int nr_vcpus,
			       struct apic_msg *msg, const uint8_t **targets,
			       char *err, size_t errlen)
{
	size_t nbytes = IRQ_TARGETS_BYTES(nr_vcpus);
	const uint8_t *t = buf + IRQ_REMOTE_DELIVER_HDR;
	int32_t source;
	int bits;

	if (!buf || len < IRQ_REMOTE_DELIVER_HDR) {
		errf(err, errlen, "IRQ_DELIVER of %zu bytes", len);
		return -EPROTO;
	}
	if (get_le16(buf + 16) != nr_vcpus || len != IRQ_REMOTE_DELIVER_HDR + nbytes) {
		errf(err, errlen, "IRQ_DELIVER for %u vCPUs, %zu bytes "
		     "(this VM has %d)", get_le16(buf + 16), len, nr_vcpus);
		return -EPROTO;
	}
	source = (int32_t)get_le32(buf + 4);
	switch (buf[9]) {
	case APIC_DM_FIXED: case APIC_DM_LOWEST: case APIC_DM_SMI:
	case APIC_DM_NMI: case APIC_DM_INIT: case APIC_DM_SIPI:
		break;
	default:
		errf(err, errlen, "IRQ_DELIVER with delivery mode %u",
		     buf[9]);
		return -EPROTO;
	}
	if (!is_flag(buf[10]) || buf[11] > APIC_SH_ALL_EXCL_SELF ||
	    !is_flag(buf[12]) || !is_flag(buf[13]) || !is_flag(buf[14]) ||
	    buf[15] || get_le16(buf + 18)) {
		errf(err, errlen, "IRQ_DELIVER with invalid flag bytes");
		return -EPROTO;
	}
	if (source < -1 || source >= nr_vcpus) {
		errf(err, errlen, "IRQ_DELIVER from vCPU %d", source);
		return -EPROTO;
	}
	if ((nr_vcpus % 8) && (t[nbytes - 1] >> (nr_vcpus % 8))) {
		errf(err, errlen, "IRQ_DELIVER to a vCPU beyond %d",
		     nr_vcpus - 1);
		return -EPROTO;
	}
	bits = count_bits(t, nbytes);
	if (bits == 0 || (buf[9] == APIC_DM_LOWEST && bits != 1)) {
		errf(err, errlen, "IRQ_DELIVER with %d targets", bits);
		return -EPROTO;
	}
	*msg = (struct apic_msg){
		.dest = get_le32(buf), .source = source, .vector = buf[8],
		.delivery = buf[9], .dest_logical = buf[10],
		.shorthand = buf[11], .level = buf[12],
		.trigger_level = buf[13], .x2apic = buf[14],
	};
	*targets = t;
	return 0;
}

int irq_remote__encode_addr(uint8_t *buf, size_t buflen, int vcpu,
			    uint32_t seq, const struct apic_addr *addr)
{
	if (!buf || !addr || buflen < IRQ_REMOTE_ADDR_SIZE || vcpu < 0 ||
	    vcpu >= IRQ_REMOTE_MAX_VCPUS)
		return -1;
	put_le16(buf, (uint16_t)vcpu);
	put_le16(buf + 2, 0);
	put_le32(buf + 4, seq);
	put_le32(buf + 8, addr->apic_id);
	put_le32(buf + 12, addr->ldr);
	buf[16] = addr->dfr_flat;
	buf[17] = addr->x2apic;
	buf[18] = addr->enabled;
	buf[19] = addr->ppr;
	return IRQ_REMOTE_ADDR_SIZE;
}

int irq_remote__decode_addr(const uint8_t *buf, size_t len, int *vcpu,
			    uint32_t *seq, struct apic_addr *addr, char *err,
			    size_t errlen)
{
	const uint8_t hw = APIC_ADDR_HW_ENABLED,
		      all = APIC_ADDR_HW_ENABLED | APIC_ADDR_SW_ENABLED;

	if (!buf || len != IRQ_REMOTE_ADDR_SIZE) {
		errf(err, errlen, "IRQ_ADDR_UPDATE of %zu bytes", len);
		return -EPROTO;
	}
	if (get_le16(buf + 2) || !get_le32(buf + 4) || !is_flag(buf[16]) ||
	    !is_flag(buf[17]) ||
	    (buf[18] != 0 && buf[18] != hw && buf[18] != all) ||
	    (buf[17] && !(buf[18] & hw))) {
		errf(err, errlen, "IRQ_ADDR_UPDATE with invalid fields "
		     "(seq %u, flags %u/%u/%u)", get_le32(buf + 4),
		     buf[16], buf[17], buf[18]);
		return -EPROTO;
	}
	*vcpu = get_le16(buf);
	*seq = get_le32(buf + 4);
	*addr = (struct apic_addr){
		.apic_id = get_le32(buf + 8), .ldr = get_le32(buf + 12),
		.dfr_flat = buf[16], .x2apic = buf[17], .enabled = buf[18],
		.ppr = buf[19],
	};
	return 0;
}

int irq_remote__encode_ack(uint8_t *buf, size_t buflen, int vcpu,
			   uint32_t seq)
{
	if (!buf || buflen < IRQ_REMOTE_ACK_SIZE || vcpu < 0 ||
	    vcpu >= IRQ_REMOTE_MAX_VCPUS)
		return -1;
	put_le16(buf, (uint16_t)vcpu);
	put_le16(buf + 2, 0);
	put_le32(buf + 4, seq);
	return IRQ_REMOTE_ACK_SIZE;
}

int irq_remote__decode_ack(const uint8_t *buf, size_t len, int *vcpu,
			   uint32_t *seq, char *err, size_t errlen)
{
	if (!buf || len != IRQ_REMOTE_ACK_SIZE || get_le16(buf + 2) ||
	    !get_le32(buf + 4)) {
		errf(err, errlen, "malformed IRQ_ADDR_ACK (%zu bytes)",
		     len);
		return -EPROTO;
	}
	*vcpu = get_le16(buf);
	*seq = get_le32(buf + 4);
	return 0;
}

int irq_remote__encode_eoi(uint8_t *buf, size_t buflen, int vcpu,
			   uint8_t vector)
{
	if (!buf || buflen < IRQ_REMOTE_EOI_SIZE || vcpu < 0 ||
	    vcpu >= IRQ_REMOTE_MAX_VCPUS)
		return -1;
	put_le16(buf, (uint16_t)vcpu);
	buf[2] = vector;
	buf[3] = 0;
	return IRQ_REMOTE_EOI_SIZE;
}

int irq_remote__decode_eoi(const uint8_t *buf, size_t len, int *vcpu,
			   uint8_t *vector, char *err, size_t errlen)
{
	/* Vectors 0-15 are never accepted by a LAPIC, so never ended. */
	if (!buf || len != IRQ_REMOTE_EOI_SIZE || buf[3] || buf[2] < 16) {
		errf(err, errlen, "malformed IRQ_EOI (%zu bytes)", len);
		return -EPROTO;
	}
	*vcpu = get_le16(buf);
	*vector = buf[2];
	return 0;
}

