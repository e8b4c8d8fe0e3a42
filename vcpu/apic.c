/* Destination matching: does a LAPIC, known only by its addressing facts
 * (struct apic_addr), take a message?  Pure, so the router can run it for
 * LAPICs that live on other hosts. */
#include "vcpu/lapic.h"

#define XAPIC_BROADCAST 0xFFu
#define X2APIC_BROADCAST 0xFFFFFFFFu

static bool is_broadcast(const struct apic_msg *m)
{
	/* An 8-bit destination of 0xFF (an IOAPIC, MSI or an xAPIC sender)
	 * is a broadcast for x2APIC receivers too, as on real machines. */
	return m->x2apic ? m->dest == X2APIC_BROADCAST
			 : (m->dest & 0xFF) == XAPIC_BROADCAST;
}

static bool match_logical(const struct apic_addr *a, const struct apic_msg *m)
{
	if (a->x2apic) {
		/* Cluster in [31:16], one bit per member in [15:0]. */
		return (a->ldr >> 16) == (m->dest >> 16) &&
		       (a->ldr & m->dest & 0xFFFF) != 0;
	} else {
		uint32_t mda = m->dest & 0xFF, ldr = (a->ldr >> 24) & 0xFF;

		if (a->dfr_flat)
			return (mda & ldr) != 0;
		return (mda >> 4) == (ldr >> 4) && (mda & ldr & 0xF) != 0;
	}
}

bool apic__matches(const struct apic_addr *a, const struct apic_msg *m,
		   bool is_self)
{
	if (!(a->enabled & APIC_ADDR_HW_ENABLED))
		return false;
	if (!(a->enabled & APIC_ADDR_SW_ENABLED)) {
		switch (m->delivery) {
		case APIC_DM_INIT:
		case APIC_DM_NMI:
		case APIC_DM_SIPI:
		case APIC_DM_SMI:
			break;
		default:
			return false;
		}
	}
	switch (m->shorthand) {
	case APIC_SH_SELF:
		return is_self;
	case APIC_SH_ALL_INCL_SELF:
		return true;
	case APIC_SH_ALL_EXCL_SELF:
		return !is_self;
	default:
		break;
	}
	if (is_broadcast(m))
		return true;
	if (m->dest_logical)
		return match_logical(a, m);
	if (a->x2apic || m->x2apic)
		return a->apic_id == m->dest;
	return (a->apic_id & 0xFF) == (m->dest & 0xFF);
}
