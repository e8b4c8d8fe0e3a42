/* Small socket helpers shared by the launcher, the agent and local node
 * spawning: "host:port" / "[v6]:port" parsing and a listening socket
 * whose bound address is reported back (port 0 picks a free one). */
#ifndef KRG_NET_SOCK_H
#define KRG_NET_SOCK_H

#include <stddef.h>

/* Splits "host:port" or "[v6]:port".  0, or -1 when malformed. */
int net_sock__split_addr(const char *addr, char *host, size_t hostlen,
			 char *port, size_t portlen);

/* A close-on-exec TCP socket listening on host:port (SO_REUSEADDR);
 * bound (may be NULL) receives "host:port" with the real port, IPv6 in
 * brackets.  The fd, or -1 with a reason. */
int net_sock__listen(const char *host, const char *port, char *bound,
		     size_t boundlen, char *err, size_t errlen);

#endif
