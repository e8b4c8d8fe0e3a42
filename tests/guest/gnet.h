/* test=net's network: a polled virtio-net driver (vnet.c), Ethernet, ARP,
 * IPv4, ICMP echo and UDP (gnet_ip.c), and a minimal TCP (gtcp.c): one
 * connection at a time, active or passive open, in-order data only (a
 * segment out of order is dropped and re-ACKed), a fixed retransmission
 * timeout that doubles, FIN in both directions, RST.  Everything runs in
 * user mode on the CPU doing the test, by polling. */
#ifndef KRG_GUEST_GNET_H
#define KRG_GUEST_GNET_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define GNET_MTU	1500
#define ETH_HLEN	14
#define ETH_P_IP	0x0800
#define ETH_P_ARP	0x0806
#define IPPROTO_ICMP	1
#define IPPROTO_TCP	6
#define IPPROTO_UDP	17

#define IP4(a, b, c, d) ((uint32_t)(a) << 24 | (uint32_t)(b) << 16 | \
			 (uint32_t)(c) << 8 | (uint32_t)(d))

static inline uint16_t be16(const uint8_t *p)
{
	return (uint16_t)(p[0] << 8 | p[1]);
}

static inline uint32_t be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static inline void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static inline void put_be32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)(v >> 24);
	p[1] = (uint8_t)(v >> 16);
	p[2] = (uint8_t)(v >> 8);
	p[3] = (uint8_t)v;
}

/* --- vnet.c: the virtio-net driver ---------------------------------- */
struct vnet_stats {
	uint64_t rx, tx, rx_short;
};
extern struct vnet_stats vnet_stats;
/* Finds and starts the NIC; returns its MAC (config space) and whether
 * the link is up. */
void vnet_init(uint8_t mac[6], bool *link_up);
/* Sends one frame (no virtio header: added here). */
void vnet_send(const uint8_t *frame, size_t len);
/* Hands each received frame to fn, re-posts the buffers; returns how
 * many. */
unsigned vnet_poll(void (*fn)(const uint8_t *frame, size_t len));

/* --- gnet_ip.c: Ethernet, ARP, IPv4, ICMP, UDP ----------------------- */
struct gnet_stats {
	uint64_t arp_requests_answered, bad_checksum, dropped;
	uint64_t icmp_echo_replies, udp_in, lost_on_purpose;
};
extern struct gnet_stats gnet_stats;
void gnet_init(uint32_t my_ip, const uint8_t mac[6]);
/* Loses every n-th TCP segment received and every n-th one sent (0:
 * none), to exercise both sides' retransmission. */
void gnet_set_loss(unsigned n);
uint32_t gnet_ip(void);
/* Receives and dispatches whatever arrived; runs TCP's timers. */
void gnet_poll(void);
/* ARP for ip (answered from the cache when known), waiting up to us. */
bool gnet_arp(uint32_t ip, uint8_t mac[6], uint64_t us);
/* One IPv4 datagram (DF, no fragments) to ip, whose MAC must be known
 * (gnet_arp).  payload already carries the protocol header. */
void gnet_send_ip(uint32_t dst, uint8_t proto, const uint8_t *payload,
		  size_t len);
/* The Internet checksum of [p, p+len) added to sum (not folded). */
uint32_t gnet_csum_add(uint32_t sum, const uint8_t *p, size_t len);
uint16_t gnet_csum_fold(uint32_t sum);
/* The TCP/UDP pseudo-header sum. */
uint32_t gnet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len);
/* ICMP echo to ip: waits up to us for the reply; true when it came. */
bool gnet_ping(uint32_t ip, uint16_t seq, uint64_t us);
void gnet_udp_send(uint32_t dst, uint16_t sport, uint16_t dport,
		   const void *data, size_t len);
/* The last datagram to port (one mailbox): its length, 0 if none yet. */
size_t gnet_udp_take(uint16_t port, void *buf, size_t size,
		     uint32_t *from, uint16_t *from_port);

/* --- gtcp.c: one TCP connection ------------------------------------- */
enum tcp_state {
	TCP_CLOSED, TCP_LISTEN, TCP_SYN_SENT, TCP_SYN_RCVD, TCP_ESTABLISHED,
	TCP_FIN_WAIT_1, TCP_FIN_WAIT_2, TCP_CLOSE_WAIT, TCP_CLOSING,
	TCP_LAST_ACK, TCP_TIME_WAIT,
};

struct tcp_stats {
	uint64_t segs_in, segs_out, retransmits, out_of_order, resets;
};
extern struct tcp_stats tcp_stats;

void tcp_connect(uint32_t ip, uint16_t port, uint16_t local_port);
void tcp_listen(uint16_t port);
enum tcp_state tcp_state(void);
const char *tcp_state_name(enum tcp_state s);
/* The remote end of the connection. */
void tcp_peer(uint32_t *ip, uint16_t *port);
/* Queues up to len bytes for sending; returns how many it took. */
size_t tcp_write(const void *data, size_t len);
/* Takes up to size received bytes. */
size_t tcp_read(void *buf, size_t size);
/* The peer sent FIN and every byte before it was read. */
bool tcp_eof(void);
/* Queues our FIN after the data. */
void tcp_close(void);
/* Everything we queued was acknowledged. */
bool tcp_all_acked(void);
/* Why the connection failed (reset, too many retransmissions), or NULL. */
const char *tcp_error(void);
/* gnet_ip.c hands TCP segments and time here. */
void tcp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len);
void tcp_tick(void);

#endif
