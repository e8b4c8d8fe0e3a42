/* Starting the other node processes of a cluster VM.
 *
 * --local-nodes N: node 0 (the launching process) binds N listening
 * sockets on 127.0.0.1 (port 0, so nothing can be taken), makes a fresh
 * cluster key and id, and starts nodes 1..N-1 as child processes of the
 * same binary ("krg-vmm node ..."), each handed its listening socket and the
 * key through inherited descriptors: the key never appears on a command
 * line or in a file.  A child dies with its parent (PR_SET_PDEATHSIG). */
#ifndef KRG_VMM_NODE_SPAWN_H
#define KRG_VMM_NODE_SPAWN_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "net/net_auth.h"
#include "net/transport.h"

struct node_args {
	unsigned self, nr_nodes;
	char addrs[NET_MAX_NODES][64];
	uint64_t cluster_id;
	struct net_key key;
	int listen_fd;
};

struct local_cluster {
	struct node_args node0;        /* this process: node 0 */
	pid_t pid[NET_MAX_NODES];      /* children, index = node id */
};

/* self_exe: the binary to run for the other nodes (/proc/self/exe).
 * extra_argv: options every child gets (e.g. --stats), NULL-terminated or
 * NULL.  0, or -1 with a reason (children already started are killed). */
int node_spawn__local(struct local_cluster *lc, unsigned nr_nodes,
		      const char *self_exe, char *const extra_argv[],
		      char *err, size_t errlen);
/* Waits up to timeout_ms for every child, then kills what is left.
 * Returns the first non-zero exit status among them (0 if none). */
int node_spawn__reap(struct local_cluster *lc, unsigned timeout_ms);
void node_spawn__kill(struct local_cluster *lc);

/* "krg-vmm node" options: --node-id I --nodes A,B,.. --cluster-id HEX
 * --key-fd FD --listen-fd FD.  0, or -1 with a reason. */
int node_spawn__parse_args(int argc, char *const argv[], struct node_args *a,
			   char *err, size_t errlen);

#endif
