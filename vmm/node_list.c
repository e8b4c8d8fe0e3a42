#include "vmm/node_list.h"

#include <arpa/inet.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/errf.h"

/* DNS allows 253; ":65535" and the NUL must still fit in vm_node.addr. */
#define HOST_MAX (sizeof(((struct vm_node *)0)->addr) - 7)

static bool is_digit(char c)
{
	return c >= '0' && c <= '9';
}

static bool is_alnum(char c)
{
	return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int parse_port(const char *p, size_t len, unsigned *port)
{
	unsigned v = 0;
	size_t i;

	if (!len || len > 5)
		return -1;
	for (i = 0; i < len; i++) {
		if (!is_digit(p[i]))
			return -1;
		v = v * 10 + (unsigned)(p[i] - '0');
	}
	if (v < 1 || v > 65535)
		return -1;
	*port = v;
	return 0;
}

/* RFC 1123 host name: dot-separated labels of letters, digits and '-',
 * 1-63 characters each, not starting or ending with '-'. */
static bool valid_hostname(const char *h)
{
	size_t label = 0, i;

	for (i = 0; h[i]; i++) {
		if (h[i] == '.') {
			if (!label || h[i - 1] == '-')
				return false;
			label = 0;
			continue;
		}
		if (!is_alnum(h[i]) && h[i] != '-')
			return false;
		if (h[i] == '-' && !label)
			return false;
		if (++label > 63)
			return false;
	}
	return label && h[i - 1] != '-';
}

static bool all_digits_and_dots(const char *h)
{
	for (; *h; h++)
		if (!is_digit(*h) && *h != '.')
			return false;
	return true;
}

/* Normalises one item into out->addr; item[0..len) is not NUL-terminated. */
static int parse_one(const char *item, size_t len, struct vm_node *out,
		     char *err, size_t errlen)
{
	char host[HOST_MAX + 1], canon[INET6_ADDRSTRLEN];
	const char *port_text, *colon, *host_start;
	size_t host_len;
	unsigned port;
	bool v6 = false;

	if (len == 5 && !memcmp(item, "local", 5)) {
		snprintf(out->addr, sizeof(out->addr), "local");
		return 0;
	}
	if (len && item[0] == '[') {
		const char *close = memchr(item, ']', len);

		if (!close || close + 1 == item + len || close[1] != ':') {
			errf(err, errlen, "node '%.*s': expected "
			     "[IPv6-ADDRESS]:PORT", (int)len, item);
			return -1;
		}
		v6 = true;
		host_start = item + 1;
		host_len = (size_t)(close - host_start);
		port_text = close + 2;
	} else {
		colon = NULL;
		for (size_t i = 0; i < len; i++)
			if (item[i] == ':')
				colon = item + i;
		if (!colon) {
			errf(err, errlen, "node '%.*s' needs a port "
			     "(HOST:PORT, or 'local')", (int)len, item);
			return -1;
		}
		host_start = item;
		host_len = (size_t)(colon - item);
		if (memchr(item, ':', host_len)) {
			errf(err, errlen, "node '%.*s': write an "
			     "IPv6 address in brackets, [ADDRESS]:PORT",
			     (int)len, item);
			return -1;
		}
		port_text = colon + 1;
	}
	if (!host_len || host_len > HOST_MAX) {
		errf(err, errlen, "node '%.*s': %s host name",
		     (int)len, item, host_len ? "too long a" : "empty");
		return -1;
	}
	memcpy(host, host_start, host_len);
	host[host_len] = '\0';
	if (parse_port(port_text, (size_t)(item + len - port_text), &port)) {
		errf(err, errlen, "node '%.*s': port must be a number "
		     "from 1 to 65535", (int)len, item);
		return -1;
	}

	if (v6) {
		struct in6_addr a6;

		if (inet_pton(AF_INET6, host, &a6) != 1) {
			errf(err, errlen, "node '%.*s': '%s' is not an "
			     "IPv6 address", (int)len, item, host);
			return -1;
		}
		inet_ntop(AF_INET6, &a6, canon, sizeof(canon));
		snprintf(out->addr, sizeof(out->addr), "[%s]:%u", canon, port);
		return 0;
	}
	if (all_digits_and_dots(host)) {
		struct in_addr a4;

		if (inet_pton(AF_INET, host, &a4) != 1) {
			errf(err, errlen, "node '%.*s': '%s' is not an "
			     "IPv4 address", (int)len, item, host);
			return -1;
		}
		inet_ntop(AF_INET, &a4, canon, sizeof(canon));
		snprintf(out->addr, sizeof(out->addr), "%s:%u", canon, port);
		return 0;
	}
	if (!valid_hostname(host)) {
		errf(err, errlen, "node '%.*s': '%s' is not a valid "
		     "host name", (int)len, item, host);
		return -1;
	}
	for (char *c = host; *c; c++)
		if (*c >= 'A' && *c <= 'Z')
			*c = (char)(*c - 'A' + 'a');
	snprintf(out->addr, sizeof(out->addr), "%s:%u", host, port);
	return 0;
}

int node_list__parse(const char *text, struct vm_node nodes[VM_MAX_NODES],
		     unsigned *count, char *err, size_t errlen)
{
	/* Parsed into a scratch list so that a bad item leaves cfg intact. */
	struct vm_node *tmp = calloc(VM_MAX_NODES, sizeof(*tmp));
	const char *p = text, *comma;
	unsigned n = 0, i;
	int ret = -1;

	if (!tmp) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	do {
		size_t len;

		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (!len) {
			errf(err, errlen, "empty node address in "
			     "node list '%s'", text);
			goto out;
		}
		if (n == VM_MAX_NODES) {
			errf(err, errlen, "node list has more than "
			     "%d nodes", VM_MAX_NODES);
			goto out;
		}
		if (parse_one(p, len, &tmp[n], err, errlen))
			goto out;
		for (i = 0; i < n; i++) {
			if (!strcmp(tmp[i].addr, tmp[n].addr)) {
				errf(err, errlen, "node '%s' is listed "
				     "twice", tmp[n].addr);
				goto out;
			}
		}
		n++;
		if (comma)
			p = comma + 1;
	} while (comma);

	memcpy(nodes, tmp, n * sizeof(*tmp));
	*count = n;
	ret = 0;
out:
	free(tmp);
	return ret;
}
