/* The --nodes list: which hosts run the VM.  Pure syntax; whether a node is
 * reachable is the transport's business. */
#ifndef KRG_VMM_NODE_LIST_H
#define KRG_VMM_NODE_LIST_H

#include <stddef.h>

#include "vmm/vm_config.h"

/* Parses "local" or comma-separated HOST:PORT items (IPv4, DNS name, or
 * [IPv6]:PORT; ports 1-65535) into nodes[0..*count), at most VM_MAX_NODES.
 * Addresses are stored normalised (lower-case host, canonical IP, decimal
 * port) and a node listed twice is an error.  On failure returns -1 with a
 * one-line reason in err and leaves nodes/count untouched. */
int node_list__parse(const char *text, struct vm_node nodes[VM_MAX_NODES],
		     unsigned *count, char *err, size_t errlen);

#endif
