/* The pure pieces of the network options (netdev_opts.h): hostfwd rules,
 * MAC addresses, and the check of a whole configuration (the pairing of
 * backends and NICs; also run on a VM description from another node). */
#include "vmm/devices/netdev_opts.h"

#include <arpa/inet.h>
#include <stdio.h>
#include <string.h>

#include "vmm/errf.h"

static int parse_port(const char *s, size_t len, uint16_t *out)
{
	unsigned v = 0;

	if (!len || len > 5)
		return -1;
	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return -1;
		v = v * 10 + (unsigned)(s[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*out = (uint16_t)v;
	return 0;
}

/* An IPv4 dotted quad of len bytes (empty: 0).  Host byte order. */
static int parse_addr(const char *s, size_t len, uint32_t *out)
{
	char buf[16];
	struct in_addr a;

	*out = 0;
	if (!len)
		return 0;
	if (len >= sizeof(buf))
		return -1;
	memcpy(buf, s, len);
	buf[len] = 0;
	if (inet_pton(AF_INET, buf, &a) != 1)
		return -1;
	*out = ntohl(a.s_addr);
	return 0;
}

int net_opts__parse_hostfwd(const char *text, size_t len,
			    struct net_hostfwd *out, char *err, size_t errlen)
{
	const char *end = text + len, *c1, *c2, *dash, *c3;
	struct net_hostfwd h;

	memset(&h, 0, sizeof(h));
	c1 = memchr(text, ':', len);
	c2 = c1 ? memchr(c1 + 1, ':', (size_t)(end - c1 - 1)) : NULL;
	dash = c2 ? memchr(c2 + 1, '-', (size_t)(end - c2 - 1)) : NULL;
	c3 = dash ? memchr(dash + 1, ':', (size_t)(end - dash - 1)) : NULL;
	if (!c3) {
		errf(err, errlen, "hostfwd '%.*s': expected [tcp|udp]:"
		     "[HOSTADDR]:HOSTPORT-[GUESTADDR]:GUESTPORT", (int)len,
		     text);
		return -1;
	}
	if (c1 == text || (c1 - text == 3 && !memcmp(text, "tcp", 3)))
		h.udp = 0;
	else if (c1 - text == 3 && !memcmp(text, "udp", 3))
		h.udp = 1;
	else {
		errf(err, errlen, "hostfwd '%.*s': protocol '%.*s' is not tcp "
		     "or udp", (int)len, text, (int)(c1 - text), text);
		return -1;
	}
	if (parse_addr(c1 + 1, (size_t)(c2 - c1 - 1), &h.host_addr) ||
	    parse_addr(dash + 1, (size_t)(c3 - dash - 1), &h.guest_addr)) {
		errf(err, errlen, "hostfwd '%.*s': bad IPv4 address", (int)len,
		     text);
		return -1;
	}
	if (parse_port(c2 + 1, (size_t)(dash - c2 - 1), &h.host_port) ||
	    parse_port(c3 + 1, (size_t)(end - c3 - 1), &h.guest_port)) {
		errf(err, errlen, "hostfwd '%.*s': ports must be numbers from "
		     "1 to 65535", (int)len, text);
		return -1;
	}
	if (h.guest_addr &&
	    ((h.guest_addr & NET_USER_NETMASK) != NET_USER_NETWORK ||
	     (h.guest_addr & 0xFF) == 0 || (h.guest_addr & 0xFF) == 0xFF)) {
		errf(err, errlen, "hostfwd '%.*s': the guest address is not a "
		     "host of 10.0.2.0/24", (int)len, text);
		return -1;
	}
	*out = h;
	return 0;
}

static int hexval(char ch)
{
	if (ch >= '0' && ch <= '9')
		return ch - '0';
	if (ch >= 'a' && ch <= 'f')
		return ch - 'a' + 10;
	if (ch >= 'A' && ch <= 'F')
		return ch - 'A' + 10;
	return -1;
}

int net_opts__parse_mac(const char *text, size_t len, uint8_t mac[6])
{
	uint8_t m[6];

	if (len != 17)
		return -1;
	for (int i = 0; i < 6; i++) {
		int hi = hexval(text[3 * i]), lo = hexval(text[3 * i + 1]);

		if (hi < 0 || lo < 0)
			return -1;
		if (i < 5 && text[3 * i + 2] != ':' && text[3 * i + 2] != '-')
			return -1;
		m[i] = (uint8_t)(hi << 4 | lo);
	}
	/* A NIC's own address is unicast and not all zeros. */
	if ((m[0] & 1) || !(m[0] | m[1] | m[2] | m[3] | m[4] | m[5]))
		return -1;
	memcpy(mac, m, 6);
	return 0;
}

void net_opts__default_mac(unsigned index, uint8_t mac[6])
{
	static const uint8_t base[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x56 };

	memcpy(mac, base, 6);
	mac[5] = (uint8_t)(base[5] + index);
}

void net_opts__mac_of(const struct vm_net_config *c, unsigned index,
		      uint8_t mac[6])
{
	if (index < c->nr_nics && c->nics[index].mac_set)
		memcpy(mac, c->nics[index].mac, 6);
	else
		net_opts__default_mac(index, mac);
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, 0, size) != NULL;
}

const struct netdev_opts *net_opts__netdev_of(const struct vm_net_config *c,
					      const struct nic_opts *nic)
{
	for (unsigned i = 0; i < c->nr_netdevs && i < NET_MAX_NICS; i++)
		if (!strcmp(c->netdevs[i].id, nic->netdev))
			return &c->netdevs[i];
	return NULL;
}

static int check_netdev(const struct netdev_opts *n, unsigned i, char *err,
			size_t errlen)
{
	if (!terminated(n->id, sizeof(n->id)) ||
	    !terminated(n->ifname, sizeof(n->ifname)) ||
	    (n->type != NETDEV_USER && n->type != NETDEV_TAP) ||
	    n->nr_hostfwd > NET_MAX_HOSTFWD) {
		errf(err, errlen, "network backend %u is malformed", i);
		return -1;
	}
	for (unsigned k = 0; k < n->nr_hostfwd; k++)
		if (!n->hostfwd[k].host_port || !n->hostfwd[k].guest_port ||
		    n->hostfwd[k].udp > 1) {
			errf(err, errlen, "network backend %u: bad hostfwd "
			     "rule %u", i, k);
			return -1;
		}
	return 0;
}

int net_opts__validate(const struct vm_net_config *c, char *err,
		       size_t errlen)
{
	unsigned used[NET_MAX_NICS] = { 0 };

	if (c->nr_netdevs > NET_MAX_NICS || c->nr_nics > NET_MAX_NICS ||
	    c->rng > 1) {
		errf(err, errlen, "network settings: %u backends, %u NICs (at "
		     "most %d each)", c->nr_netdevs, c->nr_nics, NET_MAX_NICS);
		return -1;
	}
	for (unsigned i = 0; i < c->nr_netdevs; i++)
		if (check_netdev(&c->netdevs[i], i, err, errlen))
			return -1;
	for (unsigned i = 0; i < c->nr_nics; i++) {
		const struct nic_opts *nic = &c->nics[i];
		const struct netdev_opts *n;

		if (!terminated(nic->netdev, sizeof(nic->netdev)) ||
		    !terminated(nic->id, sizeof(nic->id))) {
			errf(err, errlen, "NIC %u is malformed", i);
			return -1;
		}
		n = net_opts__netdev_of(c, nic);
		if (!n) {
			errf(err, errlen, "-device virtio-net-pci: no -netdev "
			     "with id '%s'", nic->netdev);
			return -1;
		}
		if (used[n - c->netdevs]++) {
			errf(err, errlen, "-netdev '%s' is used by two NICs",
			     n->id);
			return -1;
		}
	}
	for (unsigned i = 0; i < c->nr_netdevs; i++)
		if (!used[i]) {
			errf(err, errlen, "-netdev '%s' is used by no NIC (add "
			     "-device virtio-net-pci,netdev=%s)",
			     c->netdevs[i].id, c->netdevs[i].id);
			return -1;
		}
	return 0;
}
