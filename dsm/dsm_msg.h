/* Wire format of DSM coherence messages.
 *
 * A DSM message is the payload of one transport message whose type is in
 * the range the transport reserves for DSM (64..95): a fixed 24-byte
 * little-endian header, followed by exactly one 4096-byte page when
 * DSM_MF_DATA is set.  The transport header already authenticates the
 * sender and rejects replays; the DSM header repeats the sender so the core
 * can check the two agree, and carries the requester's transaction id so a
 * stale or misdirected reply is recognised against protocol state.
 *
 * Byte layout (offsets), all little-endian:
 *   0 type   1 flags   2 sender   3 requester   4..7 txn
 *   8..15 page index   16..23 ackmask (GRANT_WRITE only, else 0)
 */
#ifndef KRG_VMM_DSM_MSG_H
#define KRG_VMM_DSM_MSG_H

#include <stddef.h>
#include <stdint.h>

#define DSM_MSG_SIZE 24
#define DSM_PAGE_SIZE 4096
/* The transport hands every type in [FIRST, LAST] to the DSM core. */
#define DSM_MSG_TYPE_FIRST 64
#define DSM_MSG_TYPE_LAST 95

enum dsm_msg_type {
	/* requester -> home */
	DSM_MSG_READ_REQ = 64,
	DSM_MSG_WRITE_REQ = 65,	/* also S->M upgrades: the home knows */
	/* home -> sharer; the sharer acks to the requester named inside */
	DSM_MSG_INV = 66,
	/* sharer -> requester */
	DSM_MSG_INV_ACK = 67,
	/* home -> exclusive owner: downgrade/surrender and send the page
	 * straight to the requester (3-hop) */
	DSM_MSG_FWD_READ = 68,
	DSM_MSG_FWD_WRITE = 69,
	/* home or forwarding owner -> requester */
	DSM_MSG_GRANT_READ = 70,	/* always carries the page */
	DSM_MSG_GRANT_WRITE = 71,	/* page unless an upgrade; ackmask */
	/* requester -> home: the transaction is complete, the page may move
	 * again (sent only when the grant says DSM_MF_DONE).  After a forwarded
	 * read it carries the page: the home's copy is current again, so later
	 * reads of the now shared page are one round trip.  (The former owner
	 * could write back in parallel, but then the home would wait for two
	 * messages from two nodes; one carrier keeps the home's bookkeeping to
	 * exactly one awaited message per transaction.) */
	DSM_MSG_DONE = 72,
	DSM_MSG_END
};

#define DSM_MSG_NR_TYPES (DSM_MSG_END - DSM_MSG_READ_REQ)

#define DSM_MF_DATA 0x01	/* a 4096-byte page follows the header */
#define DSM_MF_DONE 0x02	/* grant: the requester must send DONE */
#define DSM_MF_FWD 0x04		/* grant: sent by the previous owner */
#define DSM_MF_ALL (DSM_MF_DATA | DSM_MF_DONE | DSM_MF_FWD)

/* Host-side form of the header; its layout equals the wire layout on a
 * little-endian host, but always go through encode/decode. */
struct dsm_msg {
	uint8_t type;
	uint8_t flags;
	uint8_t sender;
	uint8_t requester;	/* node whose transaction this is */
	uint32_t txn;		/* chosen by and unique per requester */
	uint64_t page;		/* dense page index, < nr_pages */
	uint64_t ackmask;	/* GRANT_WRITE: nodes that will send INV_ACK */
} __attribute__((packed));

_Static_assert(sizeof(struct dsm_msg) == DSM_MSG_SIZE, "dsm_msg layout");

/* Writes the DSM_MSG_SIZE header bytes; the page, if DSM_MF_DATA, is
 * appended by the caller. */
void dsm_msg__encode(const struct dsm_msg *m, uint8_t buf[DSM_MSG_SIZE]);
/* Parses an untrusted payload from node `from`: exact length (header, plus
 * one page iff DSM_MF_DATA), type in range, no unknown flags, header sender
 * equal to the transport's authenticated sender.  On success *data points
 * into buf at the page (or is NULL).  Returns 0, or -EINVAL with one line
 * in why.  Does not look at protocol state: see dsm__validate_msg(). */
int dsm_msg__decode(const void *buf, size_t len, unsigned from,
		    struct dsm_msg *m, const void **data, char *why,
		    size_t whylen);
const char *dsm_msg__type_name(unsigned type);

#endif
