/* Nodes on other hosts: "krg-vmm agent --listen ADDR --cluster-key FILE"
 * is a long-running service (configs/krg-vmm-agent.service) that starts
 * node processes for launchers holding the same cluster key.
 *
 * One short authenticated TCP exchange per node (the transport's
 * handshake, then framed messages, net/net_msg.h):
 *   launcher -> agent  PREPARE {node id}
 *   agent -> launcher  PREPARED {port}: the agent listens for that node's
 *                      mesh connections on its own address, port `port`
 *   launcher -> agent  SPAWN {cluster id, every node's mesh address}
 *   agent -> launcher  SPAWNED {pid}; the agent runs "krg-vmm node" with
 *                      the listening socket and the key (through a pipe)
 * The launcher holds the PREPARE connection of every agent until it has
 * all the ports, so the mesh addresses are complete before any node runs.
 * A launcher without the key fails the handshake and is logged. */
#ifndef KRG_VMM_AGENT_H
#define KRG_VMM_AGENT_H

#include <stddef.h>
#include <stdint.h>

#include "net/net_auth.h"
#include "net/transport.h"

/* "krg-vmm agent" with argv after the verb.  Runs until killed. */
int agent__main(int argc, char *const argv[]);

/* Launcher side, for nodes 1..nr_nodes-1 at agent addresses agents[i]:
 * fills mesh[i] with each node's mesh address and starts the nodes.
 * mesh[0] must already hold node 0's own mesh address; ids come from
 * cluster_id.  0, or -1 with a reason naming the agent. */
struct agent_session;
struct agent_session *agent__prepare(const char *const agents[],
				     unsigned nr_nodes,
				     const struct net_key *key,
				     char mesh[][64], char *local_ip,
				     size_t local_ip_len, char *err,
				     size_t errlen);
int agent__spawn(struct agent_session *s, uint64_t cluster_id,
		 char mesh[][64], char *err, size_t errlen);
void agent__close(struct agent_session *s);

#endif
