/* test=net's minimal TCP (gnet.h): one connection, go-back-N
 * retransmission from the oldest unacknowledged byte on a timeout that
 * doubles, in-order reception only (what arrives out of order is dropped
 * and answered with a duplicate ACK), the MSS option, FIN both ways.  No
 * congestion control beyond a fixed number of segments in flight. */
#include "user.h"
#include "gnet.h"

#define TCP_BUF		65536
#define TCP_MSS		1460
#define TCP_FLIGHT	8		/* segments in flight at most */
#define TCP_RTO_US	300000
#define TCP_RTO_MAX_US	3000000
#define TCP_RETRIES	12
#define TCP_TIME_WAIT_US 1000000

#define F_FIN	0x01
#define F_SYN	0x02
#define F_RST	0x04
#define F_PSH	0x08
#define F_ACK	0x10

struct tcp_stats tcp_stats;

static struct {
	enum tcp_state st;
	uint32_t rip;
	uint16_t rport, lport;
	uint32_t iss, snd_una, snd_nxt, snd_max, snd_wnd;
	uint16_t mss;
	uint32_t rcv_nxt;
	uint32_t slen, rlen;
	bool fin_queued, fin_sent, fin_acked, peer_fin;
	uint32_t fin_seq;
	uint64_t rto_at, rto_us, tw_end;
	unsigned retries;
	const char *error;
} c;
static uint8_t sbuf[TCP_BUF], rbuf[TCP_BUF];

static const char *const names[] = {
	"CLOSED", "LISTEN", "SYN_SENT", "SYN_RCVD", "ESTABLISHED",
	"FIN_WAIT_1", "FIN_WAIT_2", "CLOSE_WAIT", "CLOSING", "LAST_ACK",
	"TIME_WAIT",
};

static bool seq_lt(uint32_t a, uint32_t b)
{
	return (int32_t)(a - b) < 0;
}

const char *tcp_state_name(enum tcp_state s)
{
	return s <= TCP_TIME_WAIT ? names[s] : "?";
}

enum tcp_state tcp_state(void)
{
	return c.st;
}

void tcp_peer(uint32_t *ip, uint16_t *port)
{
	*ip = c.rip;
	*port = c.rport;
}

const char *tcp_error(void)
{
	return c.error;
}

static void reset_conn(void)
{
	memset(&c, 0, sizeof(c));
	c.mss = 536;
	c.rto_us = TCP_RTO_US;
}

static void send_seg(uint8_t flags, uint32_t seq, const uint8_t *data,
		     size_t len)
{
	static uint8_t seg[60 + TCP_MSS];
	size_t hl = flags & F_SYN ? 24 : 20;
	uint32_t win = TCP_BUF - c.rlen;

	put_be16(seg, c.lport);
	put_be16(seg + 2, c.rport);
	put_be32(seg + 4, seq);
	put_be32(seg + 8, flags & F_ACK ? c.rcv_nxt : 0);
	seg[12] = (uint8_t)(hl / 4 << 4);
	seg[13] = flags;
	put_be16(seg + 14, (uint16_t)(win > 65535 ? 65535 : win));
	put_be32(seg + 16, 0);	/* checksum, urgent pointer */
	if (flags & F_SYN) {
		seg[20] = 2;
		seg[21] = 4;
		put_be16(seg + 22, TCP_MSS);
	}
	memcpy(seg + hl, data, len);
	put_be16(seg + 16, gnet_csum_fold(gnet_csum_add(
		gnet_pseudo(gnet_ip(), c.rip, IPPROTO_TCP, hl + len), seg,
		hl + len)));
	gnet_send_ip(c.rip, IPPROTO_TCP, seg, hl + len);
	tcp_stats.segs_out++;
	if (seq_lt(c.snd_max, seq + (uint32_t)len + !!(flags & (F_SYN | F_FIN))))
		c.snd_max = seq + (uint32_t)len + !!(flags & (F_SYN | F_FIN));
}

static void arm_rto(void)
{
	if (!c.rto_at)
		c.rto_at = rdtsc() + tsc_from_us(c.rto_us);
}

static bool sending_state(void)
{
	return c.st == TCP_ESTABLISHED || c.st == TCP_CLOSE_WAIT ||
	       c.st == TCP_FIN_WAIT_1 || c.st == TCP_CLOSING ||
	       c.st == TCP_LAST_ACK;
}

static void output(void)
{
	uint32_t end = c.snd_una + c.slen;
	uint32_t wnd = c.snd_wnd < (uint32_t)TCP_FLIGHT * c.mss ?
			       c.snd_wnd : (uint32_t)TCP_FLIGHT * c.mss;

	if (!sending_state())
		return;
	while (seq_lt(c.snd_nxt, end)) {
		uint32_t inflight = c.snd_nxt - c.snd_una, n = end - c.snd_nxt;

		if (inflight >= wnd)
			break;
		if (n > c.mss)
			n = c.mss;
		if (n > wnd - inflight)
			n = wnd - inflight;
		send_seg(F_ACK | F_PSH, c.snd_nxt, sbuf + (c.snd_nxt - c.snd_una),
			 n);
		c.snd_nxt += n;
		arm_rto();
	}
	if (c.fin_queued && !c.fin_sent && c.snd_nxt == end) {
		c.fin_seq = c.snd_nxt;
		send_seg(F_FIN | F_ACK, c.snd_nxt, NULL, 0);
		c.snd_nxt++;
		c.fin_sent = true;
		if (c.st == TCP_ESTABLISHED)
			c.st = TCP_FIN_WAIT_1;
		else if (c.st == TCP_CLOSE_WAIT)
			c.st = TCP_LAST_ACK;
		arm_rto();
	}
}

void tcp_connect(uint32_t ip, uint16_t port, uint16_t local_port)
{
	reset_conn();
	c.rip = ip;
	c.rport = port;
	c.lport = local_port;
	c.iss = (uint32_t)rdtsc();
	c.snd_una = c.iss;
	c.snd_nxt = c.snd_max = c.iss + 1;
	c.st = TCP_SYN_SENT;
	send_seg(F_SYN, c.iss, NULL, 0);
	arm_rto();
}

void tcp_listen(uint16_t port)
{
	reset_conn();
	c.lport = port;
	c.st = TCP_LISTEN;
}

size_t tcp_write(const void *data, size_t len)
{
	size_t n = TCP_BUF - c.slen;

	if (c.fin_queued || c.st == TCP_CLOSED || c.st == TCP_LISTEN)
		return 0;
	if (n > len)
		n = len;
	memcpy(sbuf + c.slen, data, n);
	c.slen += (uint32_t)n;
	output();
	return n;
}

size_t tcp_read(void *buf, size_t size)
{
	size_t n = c.rlen < size ? c.rlen : size;
	uint32_t before = TCP_BUF - c.rlen;

	memcpy(buf, rbuf, n);
	memmove(rbuf, rbuf + n, c.rlen - n);
	c.rlen -= (uint32_t)n;
	/* The window was nearly shut: tell the peer it opened. */
	if (n && before < 2u * c.mss && c.st != TCP_CLOSED)
		send_seg(F_ACK, c.snd_nxt, NULL, 0);
	return n;
}

bool tcp_eof(void)
{
	return c.peer_fin && !c.rlen;
}

void tcp_close(void)
{
	c.fin_queued = true;
	output();
}

bool tcp_all_acked(void)
{
	return !c.slen && (!c.fin_queued || c.fin_acked);
}

static void fail_conn(const char *why)
{
	c.error = why;
	c.st = TCP_CLOSED;
	c.rto_at = 0;
}

static void on_ack(uint32_t ack, uint16_t wnd)
{
	uint32_t acked, data;

	if (seq_lt(c.snd_max, ack) || !seq_lt(c.snd_una, ack)) {
		c.snd_wnd = wnd;
		return;
	}
	acked = ack - c.snd_una;
	data = acked < c.slen ? acked : c.slen;
	memmove(sbuf, sbuf + data, c.slen - data);
	c.slen -= data;
	c.snd_una = ack;
	if (seq_lt(c.snd_nxt, ack))
		c.snd_nxt = ack;
	if (c.fin_sent && ack == c.fin_seq + 1)
		c.fin_acked = true;
	c.snd_wnd = wnd;
	c.retries = 0;
	c.rto_us = TCP_RTO_US;
	c.rto_at = 0;
	if (c.snd_una != c.snd_max)
		arm_rto();
	if (c.fin_acked) {
		if (c.st == TCP_FIN_WAIT_1)
			c.st = TCP_FIN_WAIT_2;
		else if (c.st == TCP_CLOSING) {
			c.st = TCP_TIME_WAIT;
			c.tw_end = rdtsc() + tsc_from_us(TCP_TIME_WAIT_US);
		} else if (c.st == TCP_LAST_ACK)
			c.st = TCP_CLOSED;
	}
}

static void on_data(uint32_t seq, const uint8_t *d, size_t len, bool fin)
{
	size_t skip, n;

	if (!len && !fin)
		return;
	/* Trim what we already have (a retransmission overlapping it). */
	if (seq_lt(seq, c.rcv_nxt)) {
		skip = c.rcv_nxt - seq;
		if (skip > len) {
			send_seg(F_ACK, c.snd_nxt, NULL, 0);
			return;
		}
		seq += (uint32_t)skip;
		d += skip;
		len -= skip;
	}
	if (seq != c.rcv_nxt) {
		tcp_stats.out_of_order++;
		send_seg(F_ACK, c.snd_nxt, NULL, 0);
		return;
	}
	n = len < TCP_BUF - c.rlen ? len : TCP_BUF - c.rlen;
	memcpy(rbuf + c.rlen, d, n);
	c.rlen += (uint32_t)n;
	c.rcv_nxt += (uint32_t)n;
	if (fin && n == len && !c.peer_fin) {
		c.rcv_nxt++;
		c.peer_fin = true;
		if (c.st == TCP_ESTABLISHED)
			c.st = TCP_CLOSE_WAIT;
		else if (c.st == TCP_FIN_WAIT_1)
			c.st = c.fin_acked ? TCP_TIME_WAIT : TCP_CLOSING;
		else if (c.st == TCP_FIN_WAIT_2)
			c.st = TCP_TIME_WAIT;
		if (c.st == TCP_TIME_WAIT)
			c.tw_end = rdtsc() + tsc_from_us(TCP_TIME_WAIT_US);
	}
	send_seg(F_ACK, c.snd_nxt, NULL, 0);
}

static void take_mss(const uint8_t *seg, size_t hl)
{
	for (size_t i = 20; i + 1 < hl;) {
		if (seg[i] == 0)
			break;
		if (seg[i] == 1) {
			i++;
			continue;
		}
		if (seg[i] == 2 && seg[i + 1] == 4 && i + 4 <= hl) {
			uint16_t m = be16(seg + i + 2);

			c.mss = m < TCP_MSS ? m : TCP_MSS;
			if (c.mss < 64)
				c.mss = 64;
		}
		if (seg[i + 1] < 2)
			break;
		i += seg[i + 1];
	}
}

void tcp_input(uint32_t src, uint32_t dst, const uint8_t *seg, size_t len)
{
	size_t hl;
	uint8_t fl;
	uint32_t seq, ack;
	uint16_t wnd;

	if (len < 20 || (hl = (size_t)(seg[12] >> 4) * 4) < 20 || hl > len)
		return;
	tcp_stats.segs_in++;
	fl = seg[13];
	seq = be32(seg + 4);
	ack = be32(seg + 8);
	wnd = be16(seg + 14);
	if (be16(seg + 2) != c.lport || c.st == TCP_CLOSED)
		return;
	if (c.st == TCP_LISTEN) {
		if ((fl & (F_SYN | F_ACK | F_RST)) != F_SYN)
			return;
		c.rip = src;
		c.rport = be16(seg);
		c.rcv_nxt = seq + 1;
		take_mss(seg, hl);
		c.iss = (uint32_t)rdtsc();
		c.snd_una = c.iss;
		c.snd_nxt = c.snd_max = c.iss + 1;
		c.snd_wnd = wnd;
		c.st = TCP_SYN_RCVD;
		send_seg(F_SYN | F_ACK, c.iss, NULL, 0);
		arm_rto();
		return;
	}
	if (src != c.rip || be16(seg) != c.rport)
		return;
	if (fl & F_RST) {
		tcp_stats.resets++;
		fail_conn(c.st == TCP_SYN_SENT ? "connection refused (RST)"
					       : "connection reset by the peer");
		return;
	}
	if (c.st == TCP_SYN_SENT) {
		if ((fl & (F_SYN | F_ACK)) != (F_SYN | F_ACK) ||
		    ack != c.iss + 1)
			return;
		c.rcv_nxt = seq + 1;
		take_mss(seg, hl);
		c.st = TCP_ESTABLISHED;
		on_ack(ack, wnd);
		send_seg(F_ACK, c.snd_nxt, NULL, 0);
		output();
		return;
	}
	if (c.st == TCP_SYN_RCVD) {
		if (fl & F_SYN) {	/* our SYN-ACK was lost */
			send_seg(F_SYN | F_ACK, c.iss, NULL, 0);
			return;
		}
		if (!(fl & F_ACK) || ack != c.iss + 1)
			return;
		c.st = TCP_ESTABLISHED;
	}
	if (fl & F_ACK)
		on_ack(ack, wnd);
	if (c.st == TCP_CLOSED)
		return;
	on_data(seq, seg + hl, len - hl, fl & F_FIN);
	output();
}

void tcp_tick(void)
{
	uint64_t now;

	if (c.st == TCP_CLOSED || c.st == TCP_LISTEN)
		return;
	now = rdtsc();
	if (c.st == TCP_TIME_WAIT) {
		if (now > c.tw_end)
			c.st = TCP_CLOSED;
		return;
	}
	if (!c.rto_at || now < c.rto_at)
		return;
	if (++c.retries > TCP_RETRIES) {
		fail_conn("no acknowledgement after 12 retransmissions");
		return;
	}
	tcp_stats.retransmits++;
	c.rto_at = 0;
	c.rto_us = c.rto_us * 2 > TCP_RTO_MAX_US ? TCP_RTO_MAX_US : c.rto_us * 2;
	if (c.st == TCP_SYN_SENT) {
		send_seg(F_SYN, c.iss, NULL, 0);
	} else if (c.st == TCP_SYN_RCVD) {
		send_seg(F_SYN | F_ACK, c.iss, NULL, 0);
	} else {
		/* Go back to the oldest unacknowledged byte; the window
		 * limit in output() keeps it to one segment when the peer
		 * shut its window (a probe). */
		c.snd_nxt = c.snd_una;
		if (c.fin_sent && !c.fin_acked)
			c.fin_sent = false;
		if (!c.snd_wnd)
			c.snd_wnd = 1;
		output();
	}
	arm_rto();
}
