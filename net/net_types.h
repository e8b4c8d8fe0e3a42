/* The registry of cluster message types.  Every subsystem owns a range of 32
 * numbers; a new message type is added here, inside its owner's range, so
 * two subsystems can never reuse a number.  Types outside every range are
 * rejected by the receiver before any callback sees them. */
#ifndef KRG_NET_TYPES_H
#define KRG_NET_TYPES_H

#include <stdbool.h>
#include <stdint.h>

/* 1-31: the transport itself.  Never passed to a receive callback and
 * refused by transport__send(). */
#define NET_TYPE_INTERNAL_FIRST	1
#define NET_TYPE_INTERNAL_LAST	31
#define NET_T_HELLO		1	/* connector -> acceptor: ids, nonce */
#define NET_T_HELLO_ACK		2	/* acceptor -> connector: its nonce */
#define NET_T_AUTH		3	/* an HMAC proving the cluster key */
#define NET_T_READY		4	/* connector accepted the acceptor's proof */
#define NET_T_REJECT		5	/* handshake refused: text reason */
#define NET_T_HEARTBEAT		6	/* idle keep-alive on the FAST channel */
#define NET_T_GOODBYE		7	/* clean shutdown of this connection */

/* 32-63: cluster control (membership, launch, VM-wide pause/stop). */
#define NET_TYPE_CONTROL_FIRST	32
#define NET_TYPE_CONTROL_LAST	63
/* 64-95: distributed shared memory (page requests, grants, invalidations). */
#define NET_TYPE_DSM_FIRST	64
#define NET_TYPE_DSM_LAST	95
/* 96-127: interrupts (IPIs, IOAPIC/MSI routing to remote vCPUs). */
#define NET_TYPE_IRQ_FIRST	96
#define NET_TYPE_IRQ_LAST	127
/* 128-159: I/O forwarding to the device-owning node. */
#define NET_TYPE_IO_FIRST	128
#define NET_TYPE_IO_LAST	159
/* 160-191: migration and checkpoint streams. */
#define NET_TYPE_MIGRATE_FIRST	160
#define NET_TYPE_MIGRATE_LAST	191

/* 192 and above are unassigned: a message carrying one is a protocol error. */
#define NET_TYPE_LAST		NET_TYPE_MIGRATE_LAST

static inline bool net_type__known(unsigned type)
{
	return type >= NET_TYPE_INTERNAL_FIRST && type <= NET_TYPE_LAST;
}

static inline bool net_type__internal(unsigned type)
{
	return type >= NET_TYPE_INTERNAL_FIRST && type <= NET_TYPE_INTERNAL_LAST;
}

/* What a user of the transport may send: a known type outside the
 * transport's own range. */
static inline bool net_type__user(unsigned type)
{
	return net_type__known(type) && !net_type__internal(type);
}

/* For log lines: "internal", "control", "dsm", "irq", "io", "migrate" or
 * "unknown". */
static inline const char *net_type__range_name(unsigned type)
{
	if (!net_type__known(type))
		return "unknown";
	if (type <= NET_TYPE_INTERNAL_LAST)
		return "internal";
	if (type <= NET_TYPE_CONTROL_LAST)
		return "control";
	if (type <= NET_TYPE_DSM_LAST)
		return "dsm";
	if (type <= NET_TYPE_IRQ_LAST)
		return "irq";
	if (type <= NET_TYPE_IO_LAST)
		return "io";
	return "migrate";
}

#endif
