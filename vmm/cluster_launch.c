#include "vmm/cluster_launch.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <signal.h>
#include <sodium.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <unistd.h>

#include "net/net_sock.h"
#include "vmm/agent.h"
#include "vmm/cluster.h"
#include "vmm/control_socket.h"
#include "vmm/machine.h"
#include "vmm/node_spawn.h"
#include "vmm/node_stats.h"

#define MESH_TIMEOUT_MS 15000
#define DESCRIPTION_TIMEOUT_MS 30000
/* Building a node's share (KVM, guest RAM, DSM) takes well under this. */
#define READY_TIMEOUT_MS 60000
/* Node 0 loads the guest (pages move to their homes) before START. */
#define START_TIMEOUT_MS 600000
#define REAP_TIMEOUT_MS 10000

/* The hooks run on transport threads while the main thread builds and
 * tears the machine down: they see it only through this atomic pointer,
 * which is cleared before the transport stops and the machine is freed. */
typedef struct machine *_Atomic machine_ref;

static void on_cluster_stop(void *ctx, int status, const char *reason)
{
	struct machine *m = atomic_load((machine_ref *)ctx);

	if (m)
		machine__request_stop(m, status, "%s", reason);
}

static void on_peer_down(void *ctx, unsigned node, const char *why)
{
	struct machine *m = atomic_load((machine_ref *)ctx);

	/* Before the machine exists, the waits report it themselves. */
	if (m)
		machine__request_stop(m, KRG_EXIT_FAILURE,
				      "node %u stopped answering: %s", node,
				      why);
}

static size_t on_stats(void *ctx, void *buf, size_t cap)
{
	struct machine *m = atomic_load((machine_ref *)ctx);
	struct node_stats s;

	if (!m || cap < sizeof(s))
		return 0;
	node_stats__collect(m, &s);
	memcpy(buf, &s, sizeof(s));
	return sizeof(s);
}

/* Node 0 pauses or resumes the VM (QMP stop/cont). */
static void on_pause(void *ctx, bool on)
{
	struct machine *m = atomic_load((machine_ref *)ctx);

	/* No machine yet: nothing runs, and node 0 only pauses a VM it
	 * started (its wait then times out, naming this node). */
	if (!m)
		return;
	if (on)
		machine__pause_nowait(m, true);
	else
		machine__resume(m);
}

static struct cluster *join(const struct node_args *a, machine_ref *mp,
			    char *err, size_t errlen)
{
	const char *addrs[NET_MAX_NODES];
	struct cluster_opts o = {
		.self = a->self, .nr_nodes = a->nr_nodes, .addrs = addrs,
		.key = &a->key, .cluster_id = a->cluster_id,
		.listen_fd = a->listen_fd,
	};
	struct cluster_hooks h = { .ctx = mp, .stop = on_cluster_stop,
				   .peer_down = on_peer_down,
				   .stats = on_stats, .pause = on_pause };
	struct cluster *c;

	for (unsigned i = 0; i < a->nr_nodes; i++)
		addrs[i] = a->addrs[i];
	c = cluster__create(&o, err, errlen);
	if (!c)
		return NULL;
	cluster__set_hooks(c, &h);
	return c;
}

/* Teardown order: the machine's own senders stop first (vCPUs are joined
 * by machine__run; the DSM and forwarding threads by machine__quiesce),
 * then the transport (no callback runs after it), then the machine. */
static void finish(struct cluster *c, machine_ref *ref, struct machine *m)
{
	if (m)
		machine__quiesce(m);
	atomic_store(ref, NULL);
	cluster__destroy(c);
	machine__destroy(m);
}

/* The control socket lives as long as the launch (a reset rebuilds the
 * machine, QMP clients stay connected): made with the first machine. */
static void attach_socket(struct machine *m, struct control_socket **cs)
{
	char err[256];

	if (!*cs) {
		*cs = control_socket__start(err, sizeof(err));
		if (!*cs)
			machine__log(m, "no status socket: %s", err);
	}
	m->status_socket = *cs;
}

/* Node 0 once every other node process runs: assemble the VM (diagram in
 * cluster.h) and run it.  Returns the exit status. */
static int run_node0(struct vm_config *cfg, const struct node_args *a0,
		     struct control_socket **cs, bool *reset)
{
	static struct vm_description d;
	struct machine *m = NULL;
	machine_ref ref = NULL;
	struct machine_node node;
	struct cluster *c = NULL;
	char err[512];
	int status = KRG_EXIT_FAILURE;

	c = join(a0, &ref, err, sizeof(err));
	if (!c || cluster__start(c, MESH_TIMEOUT_MS, err, sizeof(err)) < 0)
		goto fail;
	{
		char line[NET_MAX_NODES * 80];
		size_t n = 0;

		for (unsigned i = 0; i < a0->nr_nodes && n < sizeof(line); i++)
			n += (size_t)snprintf(line + n, sizeof(line) - n,
					      "%s node %u %s%s", i ? "," : "", i,
					      a0->addrs[i],
					      i ? "" : " (this process)");
		fprintf(stderr, "krg-vmm: cluster of %u nodes up:%s\n",
			a0->nr_nodes, line);
	}
	memset(&node, 0, sizeof(node));
	node.self = 0;
	node.cluster = c;
	status = machine__build_node(cfg, &node, &m, err, sizeof(err));
	if (status)
		goto fail_status;
	atomic_store(&ref, m);
	if (vm_description__fill(&d, a0->cluster_id, cfg, &m->layout, m->cpuid,
				 m->tsc_hz / 1000, err, sizeof(err)) < 0)
		goto fail;
	d.timer_min_gap_ns = m->timer_min_gap_ns;
	d.syscall_fix = m->syscall_fix;
	ioctl(m->vm_fd, KVM_GET_CLOCK, &d.clock);
	if (cluster__send_description(c, &d, err, sizeof(err)) < 0 ||
	    cluster__wait_ready(c, READY_TIMEOUT_MS, err, sizeof(err)) < 0)
		goto fail;
	status = machine__boot_load(m, err, sizeof(err));
	if (status)
		goto fail_status;
	if (cluster__send_start(c, err, sizeof(err)) < 0)
		goto fail;
	attach_socket(m, cs);
	status = machine__run(m);
	/* A guest reset restarts the whole cluster VM from scratch, as a
	 * power cycle (the caller starts the nodes again). */
	*reset = m->reset_requested && status == KRG_EXIT_OK;
	cluster__broadcast_stop(c, status, *reset ? "guest reset" :
							  m->stop_reason);
	finish(c, &ref, m);
	return status;
fail:
	status = KRG_EXIT_FAILURE;
fail_status:
	*reset = false;
	fprintf(stderr, "krg-vmm: %s\n", err);
	if (c)
		cluster__broadcast_stop(c, status, err);
	finish(c, &ref, m);
	return status;
}

int cluster_launch__local(struct vm_config *cfg)
{
	struct control_socket *cs = NULL;
	struct local_cluster lc;
	char err[512];
	int status, children;
	bool reset;

	/* Children inherit the blocked set: block before forking. */
	machine__block_signals();
	do {
		if (node_spawn__local(&lc, cfg->local_nodes, "/proc/self/exe",
				      NULL, err, sizeof(err)) < 0) {
			fprintf(stderr, "krg-vmm: %s\n", err);
			control_socket__stop(cs);
			return KRG_EXIT_FAILURE;
		}
		status = run_node0(cfg, &lc.node0, &cs, &reset);
		children = node_spawn__reap(&lc, REAP_TIMEOUT_MS);
		if (reset)
			fprintf(stderr, "krg-vmm: rebooting the cluster VM\n");
	} while (reset && !children);
	control_socket__stop(cs);
	return status ? status : children;
}

/* Node 0's mesh socket: the --nodes entry, or (for "local") the address
 * agent 1 saw us connect from, on a free port. */
static int listen_node0(const char *entry, const char *local_ip, char *addr,
			size_t addrlen, char *err, size_t errlen)
{
	char host[256], port[32];

	if (!strcmp(entry, "local"))
		return net_sock__listen(local_ip, "0", addr, addrlen, err,
					errlen);
	if (net_sock__split_addr(entry, host, sizeof(host), port,
				 sizeof(port)) < 0) {
		snprintf(err, errlen, "node 0 address '%s': want local or "
			 "HOST:PORT", entry);
		return -1;
	}
	return net_sock__listen(host, port, addr, addrlen, err, errlen);
}

/* One boot of a cluster VM on agents' hosts; *reset: boot again. */
static int remote_once(struct vm_config *cfg, struct control_socket **cs,
		       bool *reset)
{
	static struct node_args a0;
	const char *agents[NET_MAX_NODES];
	struct agent_session *s;
	char err[512], local_ip[64] = "0.0.0.0";
	uint8_t token[16];

	*reset = false;
	if (!cfg->cluster_key[0]) {
		fprintf(stderr, "krg-vmm: nodes on other hosts need "
			"--cluster-key FILE (the same key as their agents)\n");
		return KRG_EXIT_USAGE;
	}
	memset(&a0, 0, sizeof(a0));
	if (net_auth__key_load(&a0.key, cfg->cluster_key, err, sizeof(err)) <
	    0) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	a0.nr_nodes = cfg->nr_nodes;
	for (unsigned i = 0; i < cfg->nr_nodes; i++)
		agents[i] = cfg->nodes[i].addr;
	s = agent__prepare(agents, cfg->nr_nodes, &a0.key, a0.addrs, local_ip,
			   sizeof(local_ip), err, sizeof(err));
	if (!s)
		goto fail;
	a0.listen_fd = listen_node0(cfg->nodes[0].addr, local_ip, a0.addrs[0],
				    sizeof(a0.addrs[0]), err, sizeof(err));
	if (a0.listen_fd < 0)
		goto fail;
	randombytes_buf(token, sizeof(token));
	a0.cluster_id = net_auth__cluster_id(token, sizeof(token));
	if (agent__spawn(s, a0.cluster_id, a0.addrs, err, sizeof(err)) < 0)
		goto fail;
	agent__close(s);
	return run_node0(cfg, &a0, cs, reset);
fail:
	fprintf(stderr, "krg-vmm: %s\n", err);
	agent__close(s);
	return KRG_EXIT_FAILURE;
}

int cluster_launch__remote(struct vm_config *cfg)
{
	struct control_socket *cs = NULL;
	int status;
	bool reset;

	machine__block_signals();
	for (;;) {
		status = remote_once(cfg, &cs, &reset);
		if (!reset)
			break;
		/* Every node process ended: start them all again. */
		fprintf(stderr, "krg-vmm: rebooting the cluster VM\n");
	}
	control_socket__stop(cs);
	return status;
}

int cluster_launch__node(int argc, char *const argv[])
{
	static struct vm_description d;
	struct node_args a;
	struct machine *m = NULL;
	machine_ref ref = NULL;
	struct machine_node node;
	struct cluster *c = NULL;
	struct kvm_cpuid2 *cpuid = NULL;
	char err[512];
	int status = KRG_EXIT_FAILURE;

	machine__block_signals();
	if (node_spawn__parse_args(argc, argv, &a, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	c = join(&a, &ref, err, sizeof(err));
	net_auth__key_wipe(&a.key);
	if (!c || cluster__start(c, MESH_TIMEOUT_MS, err, sizeof(err)) < 0 ||
	    cluster__wait_description(c, &d, DESCRIPTION_TIMEOUT_MS, err,
				      sizeof(err)) < 0)
		goto fail;
	cpuid = vm_description__cpuid(&d);
	memset(&node, 0, sizeof(node));
	node.self = a.self;
	node.cluster = c;
	node.layout = d.layout;
	node.cpuid = cpuid;
	node.clock = d.clock;
	node.timer_min_gap_ns = d.timer_min_gap_ns;
	node.syscall_fix = d.syscall_fix != 0;
	if (!cpuid ||
	    machine__build_node(&d.cfg, &node, &m, err, sizeof(err)) != 0)
		goto fail;
	atomic_store(&ref, m);
	if (cluster__send_ready(c, err, sizeof(err)) < 0 ||
	    cluster__wait_start(c, START_TIMEOUT_MS, err, sizeof(err)) < 0)
		goto fail;
	status = machine__run(m);
	cluster__broadcast_stop(c, status, m->stop_reason);
	finish(c, &ref, m);
	free(cpuid);
	return status;
fail:
	fprintf(stderr, "krg-vmm: node %u: %s\n", a.self, err);
	if (c)
		cluster__broadcast_stop(c, status, err);
	finish(c, &ref, m);
	free(cpuid);
	return status;
}
