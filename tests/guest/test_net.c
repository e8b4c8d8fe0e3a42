/* test=net: real traffic through the virtio-net NIC, by default against
 * QEMU's user-mode network (krg-vmm -nic user): ARP for the gateway, an
 * ICMP echo, UDP datagrams echoed by a host service, a TCP connection
 * the guest opens to a host service (data both ways, checked), and one
 * the host opens to the guest through a hostfwd rule (the same).
 *
 * Options (the command line; a part is skipped without its port):
 *   netcpu=N     the CPU doing it (its vCPU may be on another node)
 *   netip=A.B.C.D / nethost=A.B.C.D   us (10.0.2.15) / the peer (10.0.2.2)
 *   udpport=P    the host's UDP echo service: "KRG-UDP-PING <seq> <nonce>"
 *                must come back as "KRG-UDP-PONG <seq> <nonce>"
 *   tcpport=P    the host's TCP service: we send "KRG-NET-HELLO <n>
 *                <nonce>\n" and n pattern bytes (seed 1); it answers
 *                "KRG-NET-OK <n> <crc32>\n" and n pattern bytes (seed 2),
 *                then closes
 *   fwdport=P    we listen there: the host sends "KRG-HOST-HELLO <n>
 *                <nonce>\n" and n bytes (seed 3); we answer
 *                "KRG-GUEST-REPLY <n> <crc32>\n" and n bytes (seed 4)
 *   netbytes=N   n for tcpport (default 65536)
 *   netloss=N    lose every N-th TCP segment received and every N-th sent
 *                (retransmissions on both sides must make up for it)
 * Pattern byte k of seed s: (s*37 + k*131 + (k>>8)*7 + (k>>16)*13) & 255. */
#include "user.h"
#include "gnet.h"

#define NET_WAIT_US	20000000ull
#define UDP_LOCAL_PORT	40000

static struct {
	uint64_t cpu, udpport, tcpport, fwdport, bytes, loss;
	uint32_t ip, host;
} no;
static char nonce[20];

static uint8_t pat(unsigned seed, uint64_t k)
{
	return (uint8_t)(seed * 37 + k * 131 + (k >> 8) * 7 + (k >> 16) * 13);
}

static uint32_t crc32_add(uint32_t crc, const uint8_t *p, size_t n)
{
	crc = ~crc;
	for (size_t i = 0; i < n; i++) {
		crc ^= p[i];
		for (int b = 0; b < 8; b++)
			crc = crc >> 1 ^ (0xedb88320u & -(crc & 1));
	}
	return ~crc;
}

static bool ip_parse(const char *s, size_t len, uint32_t *out)
{
	uint32_t v = 0;
	size_t i = 0;

	for (int part = 0; part < 4; part++) {
		uint64_t n;
		size_t st = i;

		while (i < len && s[i] != '.')
			i++;
		if (!parse_u64(s + st, i - st, &n) || n > 255)
			return false;
		v = v << 8 | (uint32_t)n;
		if (part < 3 && (i >= len || s[i++] != '.'))
			return false;
	}
	*out = v;
	return i == len;
}

static void __attribute__((noreturn)) bad_opt(const char *key, size_t len,
					       const char *hint)
{
	char k[16];

	if (len >= sizeof(k))
		len = sizeof(k) - 1;
	memcpy(k, key, len);
	k[len] = 0;
	fail("bad %s=%s", k, hint);
}

/* test=net's own options, read from the multiboot command line (the
 * loader leaves it where it put it). */
static void parse_opts(void)
{
	const uint32_t *mbi = (const uint32_t *)(uint64_t)mb_info;
	const char *c;

	no.ip = IP4(10, 0, 2, 15);
	no.host = IP4(10, 0, 2, 2);
	no.bytes = 65536;
	if (mb_magic != 0x2badb002 || mb_info >= (1u << 30) || !(mbi[0] & 4) ||
	    mbi[4] >= (1u << 30))
		return;
	for (c = (const char *)(uint64_t)mbi[4]; *c;) {
		const char *w, *eq;
		size_t len, klen;
		uint64_t *num = NULL;

		while (*c == ' ')
			c++;
		for (w = c; *c && *c != ' '; c++)
			;
		len = (size_t)(c - w);
		for (eq = w; eq < c && *eq != '='; eq++)
			;
		if (eq == c)
			continue;
		klen = (size_t)(eq - w);
		eq++;
		len -= klen + 1;
#define KEY(k) (klen == sizeof(k) - 1 && !strncmp(w, k, klen))
		if (KEY("netcpu"))
			num = &no.cpu;
		else if (KEY("udpport"))
			num = &no.udpport;
		else if (KEY("tcpport"))
			num = &no.tcpport;
		else if (KEY("fwdport"))
			num = &no.fwdport;
		else if (KEY("netbytes"))
			num = &no.bytes;
		else if (KEY("netloss"))
			num = &no.loss;
		else if ((KEY("netip") && !ip_parse(eq, len, &no.ip)) ||
			 (KEY("nethost") && !ip_parse(eq, len, &no.host)))
			bad_opt(w, klen, " (A.B.C.D)");
#undef KEY
		if (num && (!parse_u64(eq, len, num) ||
			    (num != &no.cpu && num != &no.bytes && *num > 65535) ||
			    (num == &no.bytes && (*num < 1 || *num > 16u << 20))))
			bad_opt(w, klen, "");
	}
}

static const char *ipstr(uint32_t ip)
{
	static char b[4][16];
	static unsigned n;
	char *s = b[n++ % 4];

	fmt(s, 16, "%u.%u.%u.%u", ip >> 24, ip >> 16 & 255, ip >> 8 & 255,
	    ip & 255);
	return s;
}

static uint64_t ms_since(uint64_t t0)
{
	return tsc_to_us(rdtsc() - t0) / 1000;
}

/* Polls until cond(); fails naming what after NET_WAIT_US without a TCP
 * segment in either direction (the watchdog bounds the whole). */
static void wait_for(bool (*cond)(void), const char *what)
{
	uint64_t end = rdtsc() + tsc_from_us(NET_WAIT_US), spins = 0;
	uint64_t segs = tcp_stats.segs_in + tcp_stats.segs_out;

	while (!cond()) {
		if (tcp_error())
			fail("net: tcp: %s: %s", what, tcp_error());
		if (segs != tcp_stats.segs_in + tcp_stats.segs_out) {
			segs = tcp_stats.segs_in + tcp_stats.segs_out;
			end = rdtsc() + tsc_from_us(NET_WAIT_US);
		}
		if (rdtsc() > end)
			fail("net: tcp: %s: no segment for %llu s (state %s, %lu "
			     "retransmissions)", what, NET_WAIT_US / 1000000,
			     tcp_state_name(tcp_state()), tcp_stats.retransmits);
		gnet_poll();
		if (++spins % 4096 == 0)
			watchdog_check("test=net");
	}
}

static void udp_exchange(void)
{
	char msg[64], want[64], got[128];
	unsigned retries = 0;
	uint64_t t0 = rdtsc();

	for (unsigned seq = 1; seq <= 3; seq++) {
		bool ok = false;

		fmt(msg, sizeof(msg), "KRG-UDP-PING %u %s", seq, nonce);
		fmt(want, sizeof(want), "KRG-UDP-PONG %u %s", seq, nonce);
		for (unsigned tries = 0; tries < 5 && !ok; tries++) {
			uint64_t end = rdtsc() + tsc_from_us(1000000);

			retries += tries > 0;
			gnet_udp_send(no.host, UDP_LOCAL_PORT,
				      (uint16_t)no.udpport, msg, strlen(msg));
			while (!ok && rdtsc() < end) {
				uint32_t from;
				uint16_t fport;
				size_t n;

				gnet_poll();
				n = gnet_udp_take(UDP_LOCAL_PORT, got,
						  sizeof(got) - 1, &from, &fport);
				if (!n)
					continue;
				got[n] = 0;
				if (from != no.host || fport != no.udpport ||
				    strlen(want) != n || memcmp(got, want, n))
					fail("net: udp: from %s:%u came \"%s\", "
					     "expected \"%s\"", ipstr(from),
					     fport, got, want);
				ok = true;
			}
		}
		if (!ok)
			fail("net: udp: no answer to \"%s\" from %s:%lu in 5 "
			     "tries", msg, ipstr(no.host), no.udpport);
	}
	say("net: udp: 3 datagrams echoed by %s:%lu (%u resent, %lu ms)",
	    ipstr(no.host), no.udpport, retries, ms_since(t0));
}

/* One side of a TCP conversation, advanced by cv_step() from the wait
 * loops: our line and out_n bytes of seed out_seed go out as the send
 * buffer takes them; the peer's first line is collected, then every byte
 * after it is checked against seed in_seed and counted. */
struct convo {
	const char *line;
	uint64_t out_n, sent;
	unsigned out_seed, in_seed;
	char in_line[128];
	size_t in_line_len;
	bool have_line;
	uint64_t in_n, got, bad;
	uint32_t out_crc, in_crc;
};

static struct convo cv;

static void cv_step(void)
{
	static uint8_t buf[4096];
	size_t n;

	/* Our line, then the pattern, as fast as the send buffer takes. */
	while (*cv.line) {
		n = tcp_write(cv.line, strlen(cv.line));
		if (!n)
			break;
		cv.line += n;
	}
	while (!*cv.line && cv.sent < cv.out_n) {
		size_t k = cv.out_n - cv.sent < sizeof(buf) ?
				   cv.out_n - cv.sent : sizeof(buf);

		for (size_t i = 0; i < k; i++)
			buf[i] = pat(cv.out_seed, cv.sent + i);
		n = tcp_write(buf, k);
		cv.out_crc = crc32_add(cv.out_crc, buf, n);
		cv.sent += n;
		if (n < k)
			break;
	}
	/* Theirs: a line, then bytes checked against the pattern. */
	while ((n = tcp_read(buf, cv.have_line ? sizeof(buf) : 1))) {
		if (!cv.have_line) {
			if (buf[0] == '\n') {
				cv.in_line[cv.in_line_len] = 0;
				cv.have_line = true;
				continue;
			}
			if (cv.in_line_len + 1 >= sizeof(cv.in_line))
				fail("net: tcp: the peer's first line is too "
				     "long");
			cv.in_line[cv.in_line_len++] = (char)buf[0];
			continue;
		}
		for (size_t i = 0; i < n; i++)
			cv.bad += buf[i] != pat(cv.in_seed, cv.got + i);
		cv.in_crc = crc32_add(cv.in_crc, buf, n);
		cv.got += n;
	}
}

static bool established(void)
{
	return tcp_state() >= TCP_ESTABLISHED;
}

static bool client_done(void)
{
	cv_step();
	return tcp_eof() && !*cv.line && cv.sent == cv.out_n;
}

static bool closed(void)
{
	return (tcp_state() == TCP_CLOSED || tcp_state() == TCP_TIME_WAIT) &&
	       !tcp_error();
}

/* The n in "WORD n ..." */
static uint64_t line_n(const char *l)
{
	const char *a = l, *b;
	uint64_t n;

	while (*a && *a != ' ')
		a++;
	if (*a)
		a++;
	for (b = a; *b && *b != ' '; b++)
		;
	if (!parse_u64(a, (size_t)(b - a), &n))
		return ~0ull;
	return n;
}

static void tcp_out(void)
{
	static char hello[80];
	char want[64];
	uint64_t t0 = rdtsc();

	tcp_connect(no.host, (uint16_t)no.tcpport,
		    (uint16_t)(41000 + (rdtsc() >> 4) % 1000));
	wait_for(established, "connecting");
	say("net: tcp: connected to %s:%lu (%lu ms)", ipstr(no.host),
	    no.tcpport, ms_since(t0));
	memset(&cv, 0, sizeof(cv));
	fmt(hello, sizeof(hello), "KRG-NET-HELLO %lu %s\n", no.bytes, nonce);
	cv.line = hello;
	cv.out_n = no.bytes;
	cv.out_seed = 1;
	cv.in_seed = 2;
	wait_for(client_done, "exchanging data with the host service");
	fmt(want, sizeof(want), "KRG-NET-OK %lu %08x", no.bytes, cv.out_crc);
	if (strncmp(cv.in_line, want, sizeof(want)))
		fail("net: tcp: the host answered \"%s\", expected \"%s\"",
		     cv.in_line, want);
	if (cv.got != no.bytes || cv.bad)
		fail("net: tcp: received %lu bytes (%lu wrong), expected %lu",
		     cv.got, cv.bad, no.bytes);
	tcp_close();
	wait_for(closed, "closing");
	say("net: tcp: sent %lu bytes (crc32 %08x, the host agrees), received "
	    "%lu bytes as expected, closed (%lu ms, %lu retransmissions)",
	    cv.sent, cv.out_crc, cv.got, ms_since(t0), tcp_stats.retransmits);
}

static bool have_line(void)
{
	cv_step();
	if (!cv.have_line && tcp_eof())
		fail("net: tcp: the host closed before its line");
	return cv.have_line;
}

static bool server_got_all(void)
{
	cv_step();
	return cv.have_line && cv.got >= cv.in_n;
}

static bool server_done(void)
{
	cv_step();
	return closed() || (tcp_eof() && tcp_all_acked());
}

static void tcp_in(void)
{
	static char reply[80];
	uint32_t pip;
	uint16_t pport;
	uint64_t t0;

	tcp_listen((uint16_t)no.fwdport);
	say("net: tcp: listening on %s:%lu", ipstr(no.ip), no.fwdport);
	/* The harness connects once it read that line: no time limit but
	 * the watchdog's. */
	while (!established()) {
		gnet_poll();
		watchdog_check("a connection from the host (hostfwd)");
	}
	t0 = rdtsc();
	tcp_peer(&pip, &pport);
	say("net: tcp: connection from %s:%u", ipstr(pip), pport);
	memset(&cv, 0, sizeof(cv));
	cv.line = "";
	cv.in_seed = 3;
	cv.in_n = ~0ull;
	wait_for(have_line, "reading the host's line");
	if (strncmp(cv.in_line, "KRG-HOST-HELLO ", 15) ||
	    (cv.in_n = line_n(cv.in_line)) > 16u << 20)
		fail("net: tcp: the host said \"%s\"", cv.in_line);
	wait_for(server_got_all, "reading the host's data");
	if (cv.got != cv.in_n || cv.bad)
		fail("net: tcp: the host sent %lu bytes (%lu wrong), it said "
		     "%lu", cv.got, cv.bad, cv.in_n);
	fmt(reply, sizeof(reply), "KRG-GUEST-REPLY %lu %08x\n", cv.in_n,
	    cv.in_crc);
	cv.line = reply;
	cv.out_n = cv.in_n;
	cv.out_seed = 4;
	while (*cv.line || cv.sent < cv.out_n) {
		cv_step();
		gnet_poll();
		if (tcp_error())
			fail("net: tcp: answering: %s", tcp_error());
		watchdog_check("answering the host");
	}
	tcp_close();
	wait_for(server_done, "closing");
	say("net: tcp: the host sent %lu bytes (\"%s\"), answered with %lu "
	    "bytes, closed (%lu ms)", cv.got, cv.in_line, cv.sent,
	    ms_since(t0));
}

void test_net(unsigned cpu)
{
	uint8_t mac[6], hmac[6];
	bool link;
	uint64_t t0;

	parse_opts();
	if (no.cpu >= ncpus)
		fail("netcpu=%lu but only %u cpus", no.cpu, ncpus);
	if (cpu != no.cpu)
		return;
	fmt(nonce, sizeof(nonce), "%08lx", rdtsc() & 0xffffffff);
	say("net: traffic from cpu %u, nonce %s", cpu, nonce);
	vnet_init(mac, &link);
	say("net: mac %02x:%02x:%02x:%02x:%02x:%02x, link %s", mac[0], mac[1],
	    mac[2], mac[3], mac[4], mac[5], link ? "up" : "down");
	if (!link)
		fail("net: the link is down");
	gnet_init(no.ip, mac);
	t0 = rdtsc();
	if (!gnet_arp(no.host, hmac, 5000000))
		fail("net: arp: no answer for %s in 5 s", ipstr(no.host));
	say("net: arp: %s is at %02x:%02x:%02x:%02x:%02x:%02x (%lu us)",
	    ipstr(no.host), hmac[0], hmac[1], hmac[2], hmac[3], hmac[4],
	    hmac[5], tsc_to_us(rdtsc() - t0));
	t0 = rdtsc();
	if (!gnet_ping(no.host, 1, 5000000))
		fail("net: icmp: no echo reply from %s in 5 s", ipstr(no.host));
	say("net: icmp: echo reply from %s (%lu us)", ipstr(no.host),
	    tsc_to_us(rdtsc() - t0));
	if (no.udpport)
		udp_exchange();
	gnet_set_loss((unsigned)no.loss);
	if (no.tcpport)
		tcp_out();
	if (no.fwdport)
		tcp_in();
	say("net: done: %lu frames sent, %lu received (%lu short), %lu TCP "
	    "retransmissions, %lu out of order, %lu lost on purpose, %lu bad "
	    "checksums, %lu ARP requests answered", vnet_stats.tx,
	    vnet_stats.rx, vnet_stats.rx_short, tcp_stats.retransmits,
	    tcp_stats.out_of_order, gnet_stats.lost_on_purpose,
	    gnet_stats.bad_checksum, gnet_stats.arp_requests_answered);
}
