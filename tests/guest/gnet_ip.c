/* test=net's Ethernet, ARP, IPv4, ICMP echo and UDP (gnet.h). */
#include "user.h"
#include "gnet.h"

#define ARP_ENTRIES	8
#define ETH_MIN		60		/* without the FCS */
#define PING_ID		0x4b52

struct gnet_stats gnet_stats;

static uint32_t my_ip;
static unsigned loss_every, loss_in, loss_out;
static uint8_t my_mac[6];
static uint16_t ip_id;
static struct {
	uint32_t ip;
	uint8_t mac[6];
	bool valid;
} arp_cache[ARP_ENTRIES];
static unsigned arp_next;
static uint8_t out[ETH_HLEN + GNET_MTU];
static volatile int32_t ping_seen = -1;
static struct {
	uint16_t port, from_port;
	uint32_t from;
	size_t len;
	uint8_t data[GNET_MTU];
} udp_box;

static const uint8_t bcast[6] = { 0xff, 0xff, 0xff, 0xff, 0xff, 0xff };

void gnet_init(uint32_t ip, const uint8_t mac[6])
{
	my_ip = ip;
	memcpy(my_mac, mac, 6);
	memset(arp_cache, 0, sizeof(arp_cache));
	ip_id = 1;
}

void gnet_set_loss(unsigned n)
{
	loss_every = n;
	loss_in = loss_out = 0;
}

uint32_t gnet_ip(void)
{
	return my_ip;
}

uint32_t gnet_csum_add(uint32_t sum, const uint8_t *p, size_t len)
{
	for (size_t i = 0; i + 1 < len; i += 2)
		sum += be16(p + i);
	if (len & 1)
		sum += (uint32_t)p[len - 1] << 8;
	return sum;
}

uint16_t gnet_csum_fold(uint32_t sum)
{
	while (sum >> 16)
		sum = (sum & 0xffff) + (sum >> 16);
	return (uint16_t)~sum;
}

uint32_t gnet_pseudo(uint32_t src, uint32_t dst, uint8_t proto, size_t len)
{
	return (src >> 16) + (src & 0xffff) + (dst >> 16) + (dst & 0xffff) +
	       proto + (uint32_t)len;
}

static void arp_learn(uint32_t ip, const uint8_t *mac)
{
	for (unsigned i = 0; i < ARP_ENTRIES; i++)
		if (arp_cache[i].valid && arp_cache[i].ip == ip) {
			memcpy(arp_cache[i].mac, mac, 6);
			return;
		}
	arp_cache[arp_next].ip = ip;
	memcpy(arp_cache[arp_next].mac, mac, 6);
	arp_cache[arp_next].valid = true;
	arp_next = (arp_next + 1) % ARP_ENTRIES;
}

static bool arp_lookup(uint32_t ip, uint8_t mac[6])
{
	for (unsigned i = 0; i < ARP_ENTRIES; i++)
		if (arp_cache[i].valid && arp_cache[i].ip == ip) {
			memcpy(mac, arp_cache[i].mac, 6);
			return true;
		}
	return false;
}

static void send_eth(const uint8_t *dst, uint16_t type, size_t payload)
{
	size_t len = ETH_HLEN + payload;

	memcpy(out, dst, 6);
	memcpy(out + 6, my_mac, 6);
	put_be16(out + 12, type);
	if (len < ETH_MIN) {
		memset(out + len, 0, ETH_MIN - len);
		len = ETH_MIN;
	}
	vnet_send(out, len);
}

static void send_arp(uint16_t op, const uint8_t *tha, uint32_t tpa)
{
	uint8_t *a = out + ETH_HLEN;

	put_be16(a, 1);
	put_be16(a + 2, ETH_P_IP);
	a[4] = 6;
	a[5] = 4;
	put_be16(a + 6, op);
	memcpy(a + 8, my_mac, 6);
	put_be32(a + 14, my_ip);
	memcpy(a + 18, op == 1 ? (const uint8_t[6]){ 0 } : tha, 6);
	put_be32(a + 24, tpa);
	send_eth(op == 1 ? bcast : tha, ETH_P_ARP, 28);
}

static void on_arp(const uint8_t *a, size_t len)
{
	uint16_t op;
	uint32_t spa, tpa;

	if (len < 28 || be16(a) != 1 || be16(a + 2) != ETH_P_IP || a[4] != 6 ||
	    a[5] != 4)
		return;
	op = be16(a + 6);
	spa = be32(a + 14);
	tpa = be32(a + 24);
	if (tpa != my_ip)
		return;
	arp_learn(spa, a + 8);
	if (op == 1) {
		uint8_t sha[6];

		memcpy(sha, a + 8, 6);
		send_arp(2, sha, spa);
		gnet_stats.arp_requests_answered++;
	}
}

void gnet_send_ip(uint32_t dst, uint8_t proto, const uint8_t *payload,
		  size_t len)
{
	uint8_t *ip = out + ETH_HLEN, mac[6];

	if (len > GNET_MTU - 20)
		fail("net: IP payload of %lu bytes", len);
	if (!arp_lookup(dst, mac))
		fail("net: sending to %u.%u.%u.%u without its MAC", dst >> 24,
		     dst >> 16 & 0xff, dst >> 8 & 0xff, dst & 0xff);
	if (proto == IPPROTO_TCP && loss_every &&
	    ++loss_out % loss_every == 0) {
		gnet_stats.lost_on_purpose++;
		return;
	}
	memmove(ip + 20, payload, len);
	ip[0] = 0x45;
	ip[1] = 0;
	put_be16(ip + 2, (uint16_t)(20 + len));
	put_be16(ip + 4, ip_id++);
	put_be16(ip + 6, 0x4000);	/* DF */
	ip[8] = 64;
	ip[9] = proto;
	put_be16(ip + 10, 0);
	put_be32(ip + 12, my_ip);
	put_be32(ip + 16, dst);
	put_be16(ip + 10, gnet_csum_fold(gnet_csum_add(0, ip, 20)));
	send_eth(mac, ETH_P_IP, 20 + len);
}

static void on_icmp(uint32_t src, const uint8_t *p, size_t len)
{
	static uint8_t reply[GNET_MTU];

	if (len < 8 || gnet_csum_fold(gnet_csum_add(0, p, len))) {
		gnet_stats.bad_checksum++;
		return;
	}
	if (p[0] == 0 && be16(p + 4) == PING_ID) {
		ping_seen = be16(p + 6);
		gnet_stats.icmp_echo_replies++;
	} else if (p[0] == 8 && len <= sizeof(reply)) {
		uint8_t mac[6];

		if (!arp_lookup(src, mac))
			return;
		memcpy(reply, p, len);
		reply[0] = 0;
		put_be16(reply + 2, 0);
		put_be16(reply + 2, gnet_csum_fold(gnet_csum_add(0, reply, len)));
		gnet_send_ip(src, IPPROTO_ICMP, reply, len);
	}
}

static void on_udp(uint32_t src, uint32_t dst, const uint8_t *p, size_t len)
{
	size_t n;

	if (len < 8 || be16(p + 4) < 8 || be16(p + 4) > len) {
		gnet_stats.dropped++;
		return;
	}
	n = be16(p + 4);
	if (be16(p + 6) && gnet_csum_fold(gnet_csum_add(
			   gnet_pseudo(src, dst, IPPROTO_UDP, n), p, n))) {
		gnet_stats.bad_checksum++;
		return;
	}
	gnet_stats.udp_in++;
	udp_box.port = be16(p + 2);
	udp_box.from = src;
	udp_box.from_port = be16(p);
	udp_box.len = n - 8;
	memcpy(udp_box.data, p + 8, n - 8);
}

static void on_ip(const uint8_t *ip, size_t len)
{
	size_t ihl, total;
	uint32_t src, dst;

	if (len < 20 || (ip[0] >> 4) != 4)
		return;
	ihl = (size_t)(ip[0] & 15) * 4;
	total = be16(ip + 2);
	if (ihl < 20 || total < ihl || total > len ||
	    gnet_csum_fold(gnet_csum_add(0, ip, ihl))) {
		gnet_stats.bad_checksum++;
		return;
	}
	src = be32(ip + 12);
	dst = be32(ip + 16);
	if (dst != my_ip || (be16(ip + 6) & 0x3fff)) {
		gnet_stats.dropped++;	/* not ours, or a fragment */
		return;
	}
	switch (ip[9]) {
	case IPPROTO_ICMP: on_icmp(src, ip + ihl, total - ihl); break;
	case IPPROTO_UDP: on_udp(src, dst, ip + ihl, total - ihl); break;
	case IPPROTO_TCP:
		if (loss_every && ++loss_in % loss_every == 0) {
			gnet_stats.lost_on_purpose++;
			return;
		}
		if (gnet_csum_fold(gnet_csum_add(
			    gnet_pseudo(src, dst, IPPROTO_TCP, total - ihl),
			    ip + ihl, total - ihl))) {
			gnet_stats.bad_checksum++;
			return;
		}
		tcp_input(src, dst, ip + ihl, total - ihl);
		break;
	default: gnet_stats.dropped++; break;
	}
}

static void on_frame(const uint8_t *f, size_t len)
{
	if (memcmp(f, my_mac, 6) && memcmp(f, bcast, 6))
		return;
	switch (be16(f + 12)) {
	case ETH_P_ARP: on_arp(f + ETH_HLEN, len - ETH_HLEN); break;
	case ETH_P_IP: on_ip(f + ETH_HLEN, len - ETH_HLEN); break;
	default: break;
	}
}

void gnet_poll(void)
{
	vnet_poll(on_frame);
	tcp_tick();
}

bool gnet_arp(uint32_t ip, uint8_t mac[6], uint64_t us)
{
	uint64_t end = rdtsc() + tsc_from_us(us), next = 0;

	while (!arp_lookup(ip, mac)) {
		uint64_t now = rdtsc();

		if (now > end)
			return false;
		if (now >= next) {
			send_arp(1, NULL, ip);
			next = now + tsc_from_us(200000);
		}
		gnet_poll();
		cpu_relax();
	}
	return true;
}

bool gnet_ping(uint32_t ip, uint16_t seq, uint64_t us)
{
	uint8_t p[8 + 16];
	uint64_t end = rdtsc() + tsc_from_us(us);

	memset(p, 0, sizeof(p));
	p[0] = 8;
	put_be16(p + 4, PING_ID);
	put_be16(p + 6, seq);
	memcpy(p + 8, "krg-test-ping-16", 16);
	put_be16(p + 2, gnet_csum_fold(gnet_csum_add(0, p, sizeof(p))));
	ping_seen = -1;
	gnet_send_ip(ip, IPPROTO_ICMP, p, sizeof(p));
	while (ping_seen != seq) {
		if (rdtsc() > end)
			return false;
		gnet_poll();
		cpu_relax();
	}
	return true;
}

void gnet_udp_send(uint32_t dst, uint16_t sport, uint16_t dport,
		   const void *data, size_t len)
{
	static uint8_t p[GNET_MTU];
	uint16_t c;

	if (len > GNET_MTU - 28)
		fail("net: UDP payload of %lu bytes", len);
	put_be16(p, sport);
	put_be16(p + 2, dport);
	put_be16(p + 4, (uint16_t)(8 + len));
	put_be16(p + 6, 0);
	memcpy(p + 8, data, len);
	c = gnet_csum_fold(gnet_csum_add(gnet_pseudo(my_ip, dst, IPPROTO_UDP,
						     8 + len), p, 8 + len));
	put_be16(p + 6, c ? c : 0xffff);
	gnet_send_ip(dst, IPPROTO_UDP, p, 8 + len);
}

size_t gnet_udp_take(uint16_t port, void *buf, size_t size, uint32_t *from,
		     uint16_t *from_port)
{
	size_t n;

	if (!udp_box.len || udp_box.port != port)
		return 0;
	n = udp_box.len < size ? udp_box.len : size;
	memcpy(buf, udp_box.data, n);
	*from = udp_box.from;
	*from_port = udp_box.from_port;
	udp_box.len = 0;
	return n;
}
