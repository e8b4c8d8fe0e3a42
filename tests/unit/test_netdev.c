/* The backend thread with the real libslirp behind it and a fake device in
 * front: the guest's ARP request for the gateway must be answered, a frame
 * the guest has no buffer for must wait for the next kick, and a hostfwd
 * port must be listening on the host.  No KVM, no guest. */
#include <arpa/inet.h>
#include <check.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "vmm/devices/netdev.h"

static const uint8_t guest_mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

struct fake {
	pthread_mutex_t lock;
	uint8_t tx[64];            /* the one frame the guest sends */
	size_t tx_len;
	int has_buffer;            /* receive() may deliver */
	unsigned refused;          /* receive() calls answered 0 */
	uint8_t rx[2048];
	size_t rx_len;
	unsigned rx_count;
};

static struct fake f;

static int f_receive(void *ctx, const uint8_t *frame, size_t len)
{
	int r = 1;

	pthread_mutex_lock(&f.lock);
	if (!f.has_buffer) {
		f.refused++;
		r = 0;
	} else if (len <= sizeof(f.rx)) {
		memcpy(f.rx, frame, len);
		f.rx_len = len;
		f.rx_count++;
	}
	pthread_mutex_unlock(&f.lock);
	return r;
}

static ssize_t f_transmit(void *ctx, uint8_t *buf, size_t cap)
{
	ssize_t n;

	pthread_mutex_lock(&f.lock);
	n = (ssize_t)f.tx_len;
	memcpy(buf, f.tx, f.tx_len);
	f.tx_len = 0;
	pthread_mutex_unlock(&f.lock);
	return n;
}

static void arp_request(uint32_t target)
{
	uint8_t *p = f.tx;

	memset(p, 0, 60);
	memset(p, 0xff, 6);
	memcpy(p + 6, guest_mac, 6);
	p[12] = 0x08;
	p[13] = 0x06;
	p[15] = 1;                 /* Ethernet */
	p[16] = 0x08;              /* IPv4 */
	p[18] = 6;
	p[19] = 4;
	p[21] = 1;                 /* request */
	memcpy(p + 22, guest_mac, 6);
	p[28] = 10; p[29] = 0; p[30] = 2; p[31] = 15;
	p[38] = (uint8_t)(target >> 24);
	p[39] = (uint8_t)(target >> 16);
	p[40] = (uint8_t)(target >> 8);
	p[41] = (uint8_t)target;
	f.tx_len = 60;
}

static unsigned wait_rx(unsigned want, int ms)
{
	unsigned n = 0;

	for (int i = 0; i < ms; i++) {
		pthread_mutex_lock(&f.lock);
		n = f.rx_count;
		pthread_mutex_unlock(&f.lock);
		if (n >= want)
			break;
		usleep(1000);
	}
	return n;
}

START_TEST(test_slirp_arp_and_hold)
{
	struct netdev_opts o = { .type = NETDEV_USER, .id = "n0",
				 .nr_hostfwd = 1 };
	struct netdev_peer peer = { f_receive, f_transmit, NULL };
	struct netdev_stats st;
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	struct netdev *nd;
	char err[256];
	int s;

	memset(&f, 0, sizeof(f));
	pthread_mutex_init(&f.lock, NULL);
	/* a free port for the hostfwd rule */
	s = socket(AF_INET, SOCK_STREAM, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	close(s);
	o.hostfwd[0] = (struct net_hostfwd){ .host_addr = 0x7F000001,
					     .host_port = ntohs(a.sin_port),
					     .guest_port = 22 };
	nd = netdev__open(&o, "-nic 0", &peer, err, sizeof(err));
	ck_assert_msg(nd != NULL, "%s", err);
	/* the rule listens: a second bind to that port fails */
	s = socket(AF_INET, SOCK_STREAM, 0);
	ck_assert_int_ne(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	close(s);
	ck_assert_int_eq(netdev__start(nd, err, sizeof(err)), 0);

	/* no guest buffer: the reply waits in the backend */
	pthread_mutex_lock(&f.lock);
	arp_request(0x0A000202);
	pthread_mutex_unlock(&f.lock);
	netdev__kick(nd);
	for (int i = 0; i < 2000; i++) {
		unsigned r;

		pthread_mutex_lock(&f.lock);
		r = f.refused;
		pthread_mutex_unlock(&f.lock);
		if (r)
			break;
		usleep(1000);
	}
	ck_assert_uint_ge(f.refused, 1);
	ck_assert_uint_eq(wait_rx(1, 100), 0);
	/* a buffer and a kick: it arrives */
	pthread_mutex_lock(&f.lock);
	f.has_buffer = 1;
	pthread_mutex_unlock(&f.lock);
	netdev__kick(nd);
	ck_assert_uint_eq(wait_rx(1, 2000), 1);
	pthread_mutex_lock(&f.lock);
	ck_assert_uint_ge(f.rx_len, 42);
	ck_assert_mem_eq(f.rx, guest_mac, 6);
	ck_assert_uint_eq(f.rx[12], 0x08);
	ck_assert_uint_eq(f.rx[13], 0x06);
	ck_assert_uint_eq(f.rx[21], 2);                /* a reply */
	ck_assert_mem_eq(f.rx + 22, "\x52\x55\x0a\x00\x02\x02", 6);
	ck_assert_mem_eq(f.rx + 28, "\x0a\x00\x02\x02", 4);
	pthread_mutex_unlock(&f.lock);

	/* nobody answers for an address slirp does not own */
	pthread_mutex_lock(&f.lock);
	arp_request(0x0A000263);
	pthread_mutex_unlock(&f.lock);
	netdev__kick(nd);
	ck_assert_uint_eq(wait_rx(2, 200), 1);
	netdev__get_stats(nd, &st);
	ck_assert_uint_eq(st.from_guest, 2);
	ck_assert_uint_eq(st.to_guest, 1);
	netdev__close(nd);
	pthread_mutex_destroy(&f.lock);
}
END_TEST

START_TEST(test_open_errors)
{
	struct netdev_opts o = { .type = NETDEV_USER, .nr_hostfwd = 1 };
	struct netdev_peer peer = { f_receive, f_transmit, NULL };
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	char err[256];
	int s = socket(AF_INET, SOCK_STREAM, 0);

	/* a host port someone else listens on */
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	ck_assert_int_eq(bind(s, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(s, 1), 0);
	ck_assert_int_eq(getsockname(s, (struct sockaddr *)&a, &alen), 0);
	o.hostfwd[0] = (struct net_hostfwd){ .host_addr = 0x7F000001,
					     .host_port = ntohs(a.sin_port),
					     .guest_port = 1 };
	ck_assert_ptr_null(netdev__open(&o, "-nic 3", &peer, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "-nic 3: hostfwd=tcp:127.0.0.1:"));
	ck_assert_ptr_nonnull(strstr(err, "cannot listen"));
	close(s);
	/* not a tap device */
	o = (struct netdev_opts){ .type = NETDEV_TAP, .ifname = "lo" };
	ck_assert_ptr_null(netdev__open(&o, "-nic 1", &peer, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "-nic 1: tap device 'lo'"));
	o.type = 9;
	ck_assert_ptr_null(netdev__open(&o, "-nic 2", &peer, err, sizeof(err)));
	ck_assert_ptr_nonnull(strstr(err, "no such network backend"));
}
END_TEST

static Suite *netdev_suite(void)
{
	Suite *s = suite_create("netdev");
	TCase *tc = tcase_create("slirp");

	tcase_set_timeout(tc, 20);
	tcase_add_test(tc, test_slirp_arp_and_hold);
	tcase_add_test(tc, test_open_errors);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(netdev_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
