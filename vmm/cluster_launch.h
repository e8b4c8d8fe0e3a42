/* Running one VM as several node processes (see vmm/cluster.h for the
 * assembly protocol): node 0 is the process the user started with
 * "krg-vmm launch --local-nodes N"; nodes 1..N-1 run "krg-vmm node". */
#ifndef KRG_VMM_CLUSTER_LAUNCH_H
#define KRG_VMM_CLUSTER_LAUNCH_H

#include "vmm/vm_config.h"

/* Node 0 of a local cluster: spawns the other nodes, assembles and runs
 * the VM.  Returns the process exit status. */
int cluster_launch__local(struct vm_config *cfg);

/* Node 0 with nodes 1.. on other hosts: cfg->nodes[i] are the addresses
 * of their agents (vmm/agent.h), cfg->nodes[0] this host's mesh address
 * ("local": where agent 1 saw us, on a free port); cfg->cluster_key is the
 * key file the agents share. */
int cluster_launch__remote(struct vm_config *cfg);

/* "krg-vmm node ARGS": argv after the verb.  Returns the exit status. */
int cluster_launch__node(int argc, char *const argv[]);

#endif
