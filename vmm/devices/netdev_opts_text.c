/* -nic / -netdev / -device text (netdev_opts.h): QEMU's comma grammar,
 * one option at a time. */
#include "vmm/devices/netdev_opts.h"

#include <stdio.h>
#include <string.h>

#include "vmm/errf.h"

#define ITEM_MAX 256

/* The next ','-separated item of *p into buf (',,' is a literal comma).
 * Returns 1 with an item, 0 at the end, -1 when it does not fit. */
static int next_item(const char **p, char *buf, size_t size)
{
	const char *s = *p;
	size_t n = 0;

	if (!*s)
		return 0;
	for (;;) {
		if (*s == ',' && s[1] == ',') {
			s += 2;
		} else if (*s == ',' || !*s) {
			if (*s)
				s++;
			/* A trailing comma ends the list, as in QEMU. */
			break;
		} else {
			s++;
		}
		if (n + 1 >= size)
			return -1;
		buf[n++] = s[-1];
	}
	buf[n] = 0;
	*p = s;
	return 1;
}

/* Splits "key=value": *val is NULL when there is no '='. */
static void split(char *item, char **val)
{
	char *eq = strchr(item, '=');

	*val = NULL;
	if (eq) {
		*eq = 0;
		*val = eq + 1;
	}
}

static bool id_ok(const char *id)
{
	size_t n = strlen(id);

	if (!n || n > NET_ID_MAX)
		return false;
	if (!((id[0] >= 'a' && id[0] <= 'z') || (id[0] >= 'A' && id[0] <= 'Z')))
		return false;
	for (size_t i = 1; i < n; i++) {
		char ch = id[i];

		if (!((ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') ||
		      (ch >= '0' && ch <= '9') || ch == '-' || ch == '.' ||
		      ch == '_'))
			return false;
	}
	return true;
}

static int set_id(char *dst, const char *what, const char *v, char *err,
		  size_t errlen)
{
	if (!id_ok(v)) {
		errf(err, errlen, "%s: bad id '%s' (a letter, then letters, "
		     "digits, '-', '.', '_'; at most %d)", what, v, NET_ID_MAX);
		return -1;
	}
	snprintf(dst, NET_ID_MAX + 1, "%s", v);
	return 0;
}

/* Keys seen in one option text: each at most once (hostfwd excepted). */
struct seen {
	char keys[16][24];
	unsigned n;
};

static int once(struct seen *s, const char *what, const char *key,
		char *err, size_t errlen)
{
	for (unsigned i = 0; i < s->n; i++)
		if (!strcmp(s->keys[i], key)) {
			errf(err, errlen, "%s: %s= given twice", what, key);
			return -1;
		}
	if (s->n < 16)
		snprintf(s->keys[s->n++], sizeof(s->keys[0]), "%s", key);
	return 0;
}

static int parse_off(const char *what, const char *key, const char *v,
		     uint8_t *out, char *err, size_t errlen)
{
	if (!strcmp(v, "on") || !strcmp(v, "yes") || !strcmp(v, "true"))
		*out = 1;
	else if (!strcmp(v, "off") || !strcmp(v, "no") || !strcmp(v, "false"))
		*out = 0;
	else {
		errf(err, errlen, "%s: %s= takes on or off", what, key);
		return -1;
	}
	return 0;
}

/* A backend option of n (user or tap).  1: taken, 0: not a backend key,
 * -1: bad. */
static int backend_key(struct netdev_opts *n, const char *what,
		       const char *key, const char *v, char *err,
		       size_t errlen)
{
	if (n->type == NETDEV_USER && !strcmp(key, "hostfwd")) {
		struct net_hostfwd h;
		char e[200];

		if (n->nr_hostfwd >= NET_MAX_HOSTFWD) {
			errf(err, errlen, "%s: at most %d hostfwd rules", what,
			     NET_MAX_HOSTFWD);
			return -1;
		}
		if (net_opts__parse_hostfwd(v, strlen(v), &h, e, sizeof(e))) {
			errf(err, errlen, "%s: %s", what, e);
			return -1;
		}
		for (unsigned i = 0; i < n->nr_hostfwd; i++)
			if (n->hostfwd[i].udp == h.udp &&
			    n->hostfwd[i].host_port == h.host_port) {
				errf(err, errlen, "%s: host %s port %u "
				     "forwarded twice", what,
				     h.udp ? "udp" : "tcp", h.host_port);
				return -1;
			}
		n->hostfwd[n->nr_hostfwd++] = h;
		return 1;
	}
	if (n->type == NETDEV_USER && !strcmp(key, "restrict"))
		return parse_off(what, key, v, &n->restricted, err, errlen) ? -1
									    : 1;
	if (n->type == NETDEV_TAP && !strcmp(key, "ifname")) {
		if (strlen(v) > NET_IFNAME_MAX || strchr(v, '/')) {
			errf(err, errlen, "%s: bad ifname '%s' (at most %d "
			     "characters, no '/')", what, v, NET_IFNAME_MAX);
			return -1;
		}
		snprintf(n->ifname, sizeof(n->ifname), "%s", v);
		return 1;
	}
	if (n->type == NETDEV_TAP &&
	    (!strcmp(key, "script") || !strcmp(key, "downscript"))) {
		if (strcmp(v, "no")) {
			errf(err, errlen, "%s: krg-vmm runs no scripts "
			     "(%s=no; configure the tap device beforehand)",
			     what, key);
			return -1;
		}
		return 1;
	}
	return 0;
}

/* key=v of -nic or -netdev as far as the backend goes: once each (but
 * hostfwd), the backend's options, id.  1: taken, 0: not the backend's,
 * -1: bad. */
static int backend_item(struct netdev_opts *n, struct seen *seen,
			const char *what, const char *key, const char *v,
			char *err, size_t errlen)
{
	int r;

	if (strcmp(key, "hostfwd") && once(seen, what, key, err, errlen))
		return -1;
	r = backend_key(n, what, key, v, err, errlen);
	if (r)
		return r;
	if (!strcmp(key, "id"))
		return set_id(n->id, what, v, err, errlen) ? -1 : 1;
	return 0;
}

static int unknown_option(const struct netdev_opts *n, const char *what,
			  const char *key, char *err, size_t errlen)
{
	errf(err, errlen, "%s %s: unknown option '%s'", what,
	     n->type == NETDEV_USER ? "user" : "tap", key);
	return -1;
}

static enum netdev_type type_of(const char *t)
{
	if (!strcmp(t, "user"))
		return NETDEV_USER;
	if (!strcmp(t, "tap"))
		return NETDEV_TAP;
	return NETDEV_NONE;
}

static bool netdev_exists(const struct vm_net_config *c, const char *id)
{
	for (unsigned i = 0; i < c->nr_netdevs; i++)
		if (!strcmp(c->netdevs[i].id, id))
			return true;
	return false;
}

static int item_error(int r, const char *what, char *err, size_t errlen)
{
	if (r < 0)
		errf(err, errlen, "%s: an option is longer than %d characters",
		     what, ITEM_MAX - 1);
	return -1;
}

int net_opts__parse_nic(struct vm_net_config *c, const char *text,
			char *err, size_t errlen)
{
	const char *p = text, *what = "-nic";
	struct netdev_opts n;
	struct nic_opts nic;
	struct seen seen = { .n = 0 };
	char item[ITEM_MAX], *v;
	int r;

	r = next_item(&p, item, sizeof(item));
	if (r <= 0 || strchr(item, '=')) {
		if (r < 0)
			return item_error(r, what, err, errlen);
		errf(err, errlen, "-nic: the first item is the type: user, "
		     "tap or none");
		return -1;
	}
	if (!strcmp(item, "none")) {
		if (*p) {
			errf(err, errlen, "-nic none takes no options");
			return -1;
		}
		return 0;
	}
	memset(&n, 0, sizeof(n));
	memset(&nic, 0, sizeof(nic));
	n.type = type_of(item);
	if (n.type == NETDEV_NONE) {
		errf(err, errlen, "-nic: unknown type '%s' (user, tap or "
		     "none)", item);
		return -1;
	}
	if (c->nr_nics >= NET_MAX_NICS || c->nr_netdevs >= NET_MAX_NICS) {
		errf(err, errlen, "-nic: at most %d network interfaces",
		     NET_MAX_NICS);
		return -1;
	}
	while ((r = next_item(&p, item, sizeof(item))) > 0) {
		split(item, &v);
		if (!v) {
			errf(err, errlen, "-nic: '%s' needs a value (%s=...)",
			     item, item);
			return -1;
		}
		r = backend_item(&n, &seen, what, item, v, err, errlen);
		if (r < 0)
			return -1;
		if (r > 0)
			continue;
		if (!strcmp(item, "mac")) {
			if (net_opts__parse_mac(v, strlen(v), nic.mac)) {
				errf(err, errlen, "-nic: bad mac '%s' (six "
				     "hex pairs, unicast: 52:54:00:12:34:56)",
				     v);
				return -1;
			}
			nic.mac_set = 1;
		} else if (!strcmp(item, "model")) {
			if (strcmp(v, "virtio-net-pci") &&
			    strcmp(v, "virtio")) {
				errf(err, errlen, "-nic: model '%s' is not "
				     "available (krg-vmm has virtio-net-pci)",
				     v);
				return -1;
			}
		} else {
			return unknown_option(&n, what, item, err, errlen);
		}
	}
	if (r < 0)
		return item_error(r, what, err, errlen);
	if (!n.id[0])
		snprintf(n.id, sizeof(n.id), "__nic%u", c->nr_auto++);
	if (netdev_exists(c, n.id)) {
		errf(err, errlen, "-nic: id '%s' is taken", n.id);
		return -1;
	}
	snprintf(nic.netdev, sizeof(nic.netdev), "%s", n.id);
	c->netdevs[c->nr_netdevs++] = n;
	c->nics[c->nr_nics++] = nic;
	return 0;
}

int net_opts__parse_netdev(struct vm_net_config *c, const char *text,
			   char *err, size_t errlen)
{
	const char *p = text, *what = "-netdev";
	struct netdev_opts n;
	struct seen seen = { .n = 0 };
	char item[ITEM_MAX], *v;
	int r;

	r = next_item(&p, item, sizeof(item));
	if (r < 0)
		return item_error(r, what, err, errlen);
	memset(&n, 0, sizeof(n));
	n.type = r > 0 && !strchr(item, '=') ? type_of(item) : NETDEV_NONE;
	if (n.type == NETDEV_NONE) {
		errf(err, errlen, "-netdev: the first item is the type: user "
		     "or tap");
		return -1;
	}
	if (c->nr_netdevs >= NET_MAX_NICS) {
		errf(err, errlen, "-netdev: at most %d network backends",
		     NET_MAX_NICS);
		return -1;
	}
	while ((r = next_item(&p, item, sizeof(item))) > 0) {
		split(item, &v);
		if (!v) {
			errf(err, errlen, "-netdev: '%s' needs a value", item);
			return -1;
		}
		r = backend_item(&n, &seen, what, item, v, err, errlen);
		if (r < 0)
			return -1;
		if (!r)
			return unknown_option(&n, what, item, err, errlen);
	}
	if (r < 0)
		return item_error(r, what, err, errlen);
	if (!n.id[0]) {
		errf(err, errlen, "-netdev: id= is needed (-device "
		     "virtio-net-pci,netdev=ID refers to it)");
		return -1;
	}
	if (netdev_exists(c, n.id)) {
		errf(err, errlen, "-netdev: id '%s' is taken", n.id);
		return -1;
	}
	c->netdevs[c->nr_netdevs++] = n;
	return 0;
}

static int parse_net_device(struct vm_net_config *c, const char *p,
			    char *err, size_t errlen)
{
	const char *what = "-device virtio-net-pci";
	struct seen seen = { .n = 0 };
	struct nic_opts nic;
	char item[ITEM_MAX], *v;
	int r;

	if (c->nr_nics >= NET_MAX_NICS) {
		errf(err, errlen, "%s: at most %d network interfaces", what,
		     NET_MAX_NICS);
		return -1;
	}
	memset(&nic, 0, sizeof(nic));
	while ((r = next_item(&p, item, sizeof(item))) > 0) {
		split(item, &v);
		if (!v) {
			errf(err, errlen, "%s: '%s' needs a value", what, item);
			return -1;
		}
		if (once(&seen, what, item, err, errlen))
			return -1;
		if (!strcmp(item, "netdev")) {
			if (set_id(nic.netdev, what, v, err, errlen))
				return -1;
		} else if (!strcmp(item, "id")) {
			if (set_id(nic.id, what, v, err, errlen))
				return -1;
		} else if (!strcmp(item, "mac")) {
			if (net_opts__parse_mac(v, strlen(v), nic.mac)) {
				errf(err, errlen, "%s: bad mac '%s' (six hex "
				     "pairs, unicast)", what, v);
				return -1;
			}
			nic.mac_set = 1;
		} else {
			errf(err, errlen, "%s: unknown option '%s' (netdev, "
			     "mac, id)", what, item);
			return -1;
		}
	}
	if (r < 0)
		return item_error(r, what, err, errlen);
	if (!nic.netdev[0]) {
		errf(err, errlen, "%s: netdev=ID is needed (a -netdev with "
		     "that id)", what);
		return -1;
	}
	c->nics[c->nr_nics++] = nic;
	return 0;
}

int net_opts__parse_device(struct vm_net_config *c, const char *text,
			   char *err, size_t errlen)
{
	const char *p = text;
	char item[ITEM_MAX], *v, id[NET_ID_MAX + 1];
	int r;

	r = next_item(&p, item, sizeof(item));
	if (r < 0)
		return item_error(r, "-device", err, errlen);
	if (r > 0 && !strcmp(item, "virtio-net-pci"))
		return parse_net_device(c, p, err, errlen);
	if (r == 0 || strcmp(item, "virtio-rng-pci")) {
		errf(err, errlen, "-device: unsupported device '%s' (krg-vmm "
		     "has virtio-net-pci and virtio-rng-pci; disks: -drive)",
		     r > 0 ? item : "");
		return -1;
	}
	if (c->rng) {
		errf(err, errlen, "-device virtio-rng-pci: given twice (one "
		     "is enough)");
		return -1;
	}
	while ((r = next_item(&p, item, sizeof(item))) > 0) {
		split(item, &v);
		if (strcmp(item, "id") || !v) {
			errf(err, errlen, "-device virtio-rng-pci: unknown "
			     "option '%s' (id)", item);
			return -1;
		}
		if (set_id(id, "-device virtio-rng-pci", v, err, errlen))
			return -1;
	}
	if (r < 0)
		return item_error(r, "-device", err, errlen);
	c->rng = 1;
	return 0;
}

