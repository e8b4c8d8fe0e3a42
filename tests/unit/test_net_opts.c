/* -nic / -netdev / -device parsing (vmm/devices/netdev_opts.h), through the
 * command line too (vmm/cli.h), hostfwd rules and MAC addresses. */
#include <check.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/cli.h"
#include "vmm/devices/netdev_opts.h"

static struct vm_net_config c;
static char err[256];

static void setup(void)
{
	memset(&c, 0, sizeof(c));
	err[0] = 0;
}

START_TEST(test_hostfwd_forms)
{
	struct net_hostfwd h;
	const char *t;

	t = "tcp::2222-:22";
	ck_assert_int_eq(net_opts__parse_hostfwd(t, strlen(t), &h, err,
						 sizeof(err)), 0);
	ck_assert_uint_eq(h.udp, 0);
	ck_assert_uint_eq(h.host_addr, 0);
	ck_assert_uint_eq(h.host_port, 2222);
	ck_assert_uint_eq(h.guest_addr, 0);
	ck_assert_uint_eq(h.guest_port, 22);
	t = "udp:127.0.0.1:5353-10.0.2.15:53";
	ck_assert_int_eq(net_opts__parse_hostfwd(t, strlen(t), &h, err,
						 sizeof(err)), 0);
	ck_assert_uint_eq(h.udp, 1);
	ck_assert_uint_eq(h.host_addr, 0x7F000001u);
	ck_assert_uint_eq(h.host_port, 5353);
	ck_assert_uint_eq(h.guest_addr, NET_USER_GUEST);
	ck_assert_uint_eq(h.guest_port, 53);
	/* QEMU's default protocol is tcp */
	t = "::8080-:80";
	ck_assert_int_eq(net_opts__parse_hostfwd(t, strlen(t), &h, err,
						 sizeof(err)), 0);
	ck_assert_uint_eq(h.udp, 0);
	ck_assert_uint_eq(h.host_port, 8080);
	ck_assert_uint_eq(h.guest_port, 80);
	/* only len bytes count */
	t = "tcp::1-:2,junk";
	ck_assert_int_eq(net_opts__parse_hostfwd(t, 9, &h, err, sizeof(err)),
			 0);
	ck_assert_uint_eq(h.guest_port, 2);
}
END_TEST

START_TEST(test_hostfwd_errors)
{
	static const char *const bad[] = {
		"", "tcp", "tcp::22", "tcp:2222-:22", "sctp::1-:2",
		"tcp::0-:22", "tcp::2222-:0", "tcp::65536-:22", "tcp::22x-:22",
		"tcp::-:22", "tcp::2222-:", "tcp:1.2.3:2222-:22",
		"tcp:256.0.0.1:2222-:22", "tcp::2222-10.0.3.15:22",
		"tcp::2222-10.0.2.255:22", "tcp::2222-10.0.2.0:22",
		"tcp::2222-:22-", "tcp::123456-:22",
	};
	struct net_hostfwd h;

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		err[0] = 0;
		ck_assert_msg(net_opts__parse_hostfwd(bad[i], strlen(bad[i]), &h,
						      err, sizeof(err)) == -1,
			      "accepted '%s'", bad[i]);
		ck_assert_msg(strstr(err, "hostfwd"), "no message for '%s'",
			      bad[i]);
	}
}
END_TEST

START_TEST(test_mac)
{
	uint8_t m[6];
	const char *t = "52:54:00:AB:cd:0F";

	ck_assert_int_eq(net_opts__parse_mac(t, strlen(t), m), 0);
	ck_assert_uint_eq(m[3], 0xAB);
	ck_assert_uint_eq(m[4], 0xCD);
	ck_assert_uint_eq(m[5], 0x0F);
	t = "52-54-00-01-02-03";
	ck_assert_int_eq(net_opts__parse_mac(t, strlen(t), m), 0);
	ck_assert_int_eq(net_opts__parse_mac("52:54:00:01:02", 14, m), -1);
	ck_assert_int_eq(net_opts__parse_mac("52:54:00:01:02:0g", 17, m), -1);
	ck_assert_int_eq(net_opts__parse_mac("52:54:00:01:02:030", 18, m), -1);
	ck_assert_int_eq(net_opts__parse_mac("52.54:00:01:02:03", 17, m), -1);
	/* multicast and all-zero are no NIC's own address */
	ck_assert_int_eq(net_opts__parse_mac("01:00:5e:00:00:01", 17, m), -1);
	ck_assert_int_eq(net_opts__parse_mac("00:00:00:00:00:00", 17, m), -1);
	net_opts__default_mac(0, m);
	ck_assert_mem_eq(m, "\x52\x54\x00\x12\x34\x56", 6);
	net_opts__default_mac(3, m);
	ck_assert_uint_eq(m[5], 0x59);
}
END_TEST

START_TEST(test_nic_user)
{
	const struct netdev_opts *n;
	uint8_t m[6];

	ck_assert_int_eq(net_opts__parse_nic(&c, "user,hostfwd=tcp::2222-:22,"
					     "hostfwd=udp::5353-:53,mac=52:54:"
					     "00:00:00:07,model=virtio-net-pci",
					     err, sizeof(err)), 0);
	ck_assert_int_eq(net_opts__parse_nic(&c, "user", err, sizeof(err)), 0);
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.nr_nics, 2);
	ck_assert_uint_eq(c.nr_netdevs, 2);
	n = net_opts__netdev_of(&c, &c.nics[0]);
	ck_assert_ptr_nonnull(n);
	ck_assert_uint_eq(n->type, NETDEV_USER);
	ck_assert_uint_eq(n->nr_hostfwd, 2);
	ck_assert_uint_eq(n->hostfwd[1].udp, 1);
	ck_assert(net_opts__netdev_of(&c, &c.nics[1]) == &c.netdevs[1]);
	net_opts__mac_of(&c, 0, m);
	ck_assert_uint_eq(m[5], 7);
	net_opts__mac_of(&c, 1, m);
	ck_assert_mem_eq(m, "\x52\x54\x00\x12\x34\x57", 6);
	/* "none" adds nothing */
	ck_assert_int_eq(net_opts__parse_nic(&c, "none", err, sizeof(err)), 0);
	ck_assert_uint_eq(c.nr_nics, 2);
}
END_TEST

START_TEST(test_nic_tap_and_commas)
{
	ck_assert_int_eq(net_opts__parse_nic(&c, "tap,ifname=tap0,script=no,"
					     "downscript=no,id=t0", err,
					     sizeof(err)), 0);
	ck_assert_str_eq(c.netdevs[0].ifname, "tap0");
	ck_assert_str_eq(c.netdevs[0].id, "t0");
	ck_assert_str_eq(c.nics[0].netdev, "t0");
	ck_assert_uint_eq(c.netdevs[0].type, NETDEV_TAP);
	/* ',,' is a comma inside a value: here it makes a bad ifname */
	ck_assert_int_eq(net_opts__parse_nic(&c, "tap,ifname=a,,b/c", err,
					     sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "ifname 'a,b/c'"));
	ck_assert_int_eq(net_opts__parse_nic(&c, "tap,script=/etc/qemu-ifup",
					     err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "runs no scripts"));
	/* a tap backend has no hostfwd */
	ck_assert_int_eq(net_opts__parse_nic(&c, "tap,hostfwd=tcp::1-:2", err,
					     sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown option 'hostfwd'"));
}
END_TEST

START_TEST(test_nic_errors)
{
	static const struct {
		const char *text, *msg;
	} bad[] = {
		{ "", "first item is the type" },
		{ "mac=52:54:00:00:00:01", "first item is the type" },
		{ "bridge", "unknown type 'bridge'" },
		{ "none,mac=52:54:00:00:00:01", "takes no options" },
		{ "user,mac", "needs a value" },
		{ "user,mac=zz", "bad mac" },
		{ "user,model=e1000", "model 'e1000'" },
		{ "user,id=1abc", "bad id" },
		{ "user,id=a,id=b", "id= given twice" },
		{ "user,restrict=maybe", "restrict= takes on or off" },
		{ "user,hostfwd=tcp::1-:2,hostfwd=tcp::1-:3", "forwarded twice" },
		{ "user,frob=1", "unknown option 'frob'" },
	};

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		setup();
		ck_assert_msg(net_opts__parse_nic(&c, bad[i].text, err,
						  sizeof(err)) == -1,
			      "accepted '%s'", bad[i].text);
		ck_assert_msg(strstr(err, bad[i].msg), "'%s': got '%s'",
			      bad[i].text, err);
		ck_assert_uint_eq(c.nr_nics, 0);
	}
	/* a udp and a tcp rule may share a port number */
	setup();
	ck_assert_int_eq(net_opts__parse_nic(&c, "user,hostfwd=tcp::1-:2,"
					     "hostfwd=udp::1-:2", err,
					     sizeof(err)), 0);
	setup();
	for (int i = 0; i < NET_MAX_HOSTFWD; i++) {
		char t[64];

		snprintf(t, sizeof(t), "user,id=u%d", i);
		ck_assert_int_eq(net_opts__parse_nic(&c, t, err, sizeof(err)),
				 i < NET_MAX_NICS ? 0 : -1);
	}
	ck_assert_uint_eq(c.nr_nics, NET_MAX_NICS);
}
END_TEST

START_TEST(test_netdev_device_pairing)
{
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-net-pci,netdev=n1,"
						"mac=52:54:00:00:00:11", err,
						sizeof(err)), 0);
	/* the device may come before its netdev */
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "no -netdev with id 'n1'"));
	ck_assert_int_eq(net_opts__parse_netdev(&c, "user,id=n1,restrict=on,"
						"hostfwd=tcp:127.0.0.1:80-:8080",
						err, sizeof(err)), 0);
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), 0);
	ck_assert_uint_eq(c.netdevs[0].restricted, 1);
	ck_assert_int_eq(net_opts__parse_netdev(&c, "user,id=n1", err,
						sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "id 'n1' is taken"));
	ck_assert_int_eq(net_opts__parse_netdev(&c, "user", err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "id= is needed"));
	ck_assert_int_eq(net_opts__parse_netdev(&c, "user,id=n2", err,
						sizeof(err)), 0);
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "'n2' is used by no NIC"));
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-net-pci,netdev=n1",
						err, sizeof(err)), 0);
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "'n1' is used by two NICs"));
}
END_TEST

START_TEST(test_device_errors)
{
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-net-pci", err,
						sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "netdev=ID is needed"));
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-net-pci,netdev=a,"
						"speed=10", err, sizeof(err)),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "unknown option 'speed'"));
	ck_assert_int_eq(net_opts__parse_device(&c, "e1000,netdev=a", err,
						sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "unsupported device 'e1000'"));
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-rng-pci,id=rng0",
						err, sizeof(err)), 0);
	ck_assert_uint_eq(c.rng, 1);
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-rng-pci", err,
						sizeof(err)), -1);
	ck_assert_ptr_nonnull(strstr(err, "given twice"));
	setup();
	ck_assert_int_eq(net_opts__parse_device(&c, "virtio-rng-pci,max-bytes=1",
						err, sizeof(err)), -1);
	ck_assert_uint_eq(c.rng, 0);
}
END_TEST

START_TEST(test_validate_untrusted)
{
	/* A description from another node: nothing in it is trusted. */
	ck_assert_int_eq(net_opts__parse_nic(&c, "user,hostfwd=tcp::1-:2", err,
					     sizeof(err)), 0);
	c.netdevs[0].nr_hostfwd = NET_MAX_HOSTFWD + 1;
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	c.netdevs[0].nr_hostfwd = 1;
	memset(c.netdevs[0].id, 'x', sizeof(c.netdevs[0].id));
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	setup();
	c.nr_nics = 1000;
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
	setup();
	c.nr_netdevs = 1;
	c.netdevs[0].type = 7;
	ck_assert_int_eq(net_opts__validate(&c, err, sizeof(err)), -1);
}
END_TEST

/* The whole way from argv, as a user types it. */
static int launch(const char *first, ...)
{
	static struct vm_config cfg;
	char *argv[32];
	enum cli_verb verb;
	va_list ap;
	int n = 0;

	argv[n++] = (char *)"krg-vmm";
	argv[n++] = (char *)"launch";
	argv[n++] = (char *)"-kernel";
	argv[n++] = (char *)"k";
	va_start(ap, first);
	for (const char *a = first; a; a = va_arg(ap, const char *))
		argv[n++] = (char *)a;
	va_end(ap);
	if (cli__parse(n, argv, &cfg, &verb, err, sizeof(err)))
		return -1;
	c = cfg.net;
	return 0;
}

START_TEST(test_command_line)
{
	ck_assert_int_eq(launch("-nic", "user,hostfwd=tcp::2222-:22",
				"-device", "virtio-rng-pci", NULL), 0);
	ck_assert_uint_eq(c.nr_nics, 1);
	ck_assert_uint_eq(c.rng, 1);
	ck_assert_int_eq(launch("-device", "virtio-net-pci,netdev=n0",
				"--netdev=user,id=n0", NULL), 0);
	ck_assert_uint_eq(c.nr_nics, 1);
	ck_assert_int_eq(launch("-netdev", "tap,id=n0,ifname=tap3", NULL), -1);
	ck_assert_ptr_nonnull(strstr(err, "used by no NIC"));
	ck_assert_int_eq(launch("-nic", "user,hostfwd=tcp::99999-:22", NULL),
			 -1);
	ck_assert_ptr_nonnull(strstr(err, "-nic: hostfwd"));
}
END_TEST

static Suite *net_opts_suite(void)
{
	Suite *s = suite_create("net_opts");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_hostfwd_forms);
	tcase_add_test(tc, test_hostfwd_errors);
	tcase_add_test(tc, test_mac);
	tcase_add_test(tc, test_nic_user);
	tcase_add_test(tc, test_nic_tap_and_commas);
	tcase_add_test(tc, test_nic_errors);
	tcase_add_test(tc, test_netdev_device_pairing);
	tcase_add_test(tc, test_device_errors);
	tcase_add_test(tc, test_validate_untrusted);
	tcase_add_test(tc, test_command_line);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(net_opts_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
