/* What the control socket's commands do to the machine: the struct
 * qmp_vm_ops behind vmm/qmp_commands.c, the machine's attachment to the
 * socket, and the status text.  The ops run on the control thread with
 * cs->m_lock held, so cs->m stays valid while they run. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/ckpt.h"
#include "vmm/cluster.h"
#include "vmm/control_priv.h"
#include "vmm/devices/acpi_pm.h"
#include "vmm/migrate.h"
#include "vmm/machine.h"
#include "vmm/node_stats.h"

#define STATUS_MAX (NET_MAX_NODES * 2048 + 4096)
#define GATHER_TIMEOUT_MS 2000
/* Parking a node's vCPUs takes at most an exit (the vCPU is kicked out
 * of the guest) or a page or I/O reply it waits for. */
#define PAUSE_TIMEOUT_MS 3000

/* Every node's counters: all[i] is valid where have[i]. */
static void gather(struct machine *m, struct node_stats *all, bool *have)
{
	unsigned nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;

	memset(have, 0, NET_MAX_NODES * sizeof(*have));
	node_stats__collect(m, &all[0]);
	have[0] = true;
	if (m->cluster) {
		bool got[NET_MAX_NODES];

		cluster__gather_stats(m->cluster, all, sizeof(all[0]), got,
				      GATHER_TIMEOUT_MS);
		for (unsigned i = 1; i < nodes; i++) {
			struct node_stats tmp;

			have[i] = got[i] &&
				  node_stats__check(&all[i], sizeof(all[i]), i,
						    &tmp) == 0;
		}
	}
}

static int vcpu_node(struct machine *m, unsigned i)
{
	return m->cluster ? numa_layout__vcpu_node(&m->layout, i) : 0;
}

static const char *node_addr(struct machine *m, unsigned i)
{
	return m->cluster ? cluster__addr(m->cluster, i) : "local";
}

size_t control_socket__status_text(struct machine *m, char *buf, size_t size)
{
	static _Thread_local struct node_stats all[NET_MAX_NODES];
	bool have[NET_MAX_NODES];
	unsigned nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;
	size_t n = 0;

	gather(m, all, have);
	n += (size_t)snprintf(buf + n, size - n, "VM: %u vCPUs, %llu MiB, %u "
			      "node%s; vCPU placement:", m->nr_vcpus,
			      (unsigned long long)m->cfg->ram_mib, nodes,
			      nodes > 1 ? "s" : "");
	for (unsigned i = 0; i < m->nr_vcpus && n < size; i++)
		n += (size_t)snprintf(buf + n, size - n, " %u->%d", i,
				      vcpu_node(m, i));
	if (n < size)
		n += (size_t)snprintf(buf + n, size - n, "\n");
	if (m->migrate && n < size)
		n += migrate__status_line(m->migrate, buf + n, size - n);
	for (unsigned i = 0; i < nodes && n < size; i++) {
		if (!have[i])
			n += (size_t)snprintf(buf + n, size - n,
					      "node %u (%s): no answer\n", i,
					      node_addr(m, i));
		else
			n += node_stats__format(&all[i], node_addr(m, i),
						buf + n, size - n);
	}
	return n < size ? n : size - 1;
}

/* The machine, if the VM runs (paused or not); otherwise an error. */
static struct machine *running(struct control_socket *cs,
			       struct qmp_error *err)
{
	if (cs->m && !atomic_load(&cs->m->stop))
		return cs->m;
	if (cs->m || !cs->restarting)
		qmp__fail(err, QMP_ERR_GENERIC, "the VM is shutting down");
	else
		qmp__fail(err, QMP_ERR_GENERIC, "the VM is not running yet "
			  "(starting, or restarting after a reset); try again");
	return NULL;
}

static void vm_status(void *ctx, const char **state)
{
	struct control_socket *cs = ctx;

	/* Between the machines of a reset the VM is, as far as QEMU's
	 * clients know, in the state it will start in. */
	if (!cs->m && !cs->restarting)
		*state = QMP_STATE_SHUTDOWN;
	else if (!cs->m)
		*state = cs->paused ? QMP_STATE_PAUSED : QMP_STATE_RUNNING;
	else if (atomic_load(&cs->m->stop))
		*state = QMP_STATE_SHUTDOWN;
	else
		*state = cs->paused ? QMP_STATE_PAUSED : QMP_STATE_RUNNING;
}

static int vm_stop(void *ctx, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = running(cs, err);
	char why[QMP_DESC_MAX - 64];

	if (!m)
		return -1;
	if (cs->paused)
		return 0;
	/* The other nodes park while this one does. */
	if (m->cluster)
		cluster__send_pause(m->cluster, true);
	machine__pause(m);
	cs->paused = true;
	control_socket__event(cs, "STOP", NULL);
	if (m->cluster && cluster__wait_paused(m->cluster, PAUSE_TIMEOUT_MS,
					       why, sizeof(why)) < 0)
		return qmp__fail(err, QMP_ERR_GENERIC, "%s (the rest of the VM "
				 "is paused; cont resumes it all)", why);
	return 0;
}

static int vm_cont(void *ctx, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = running(cs, err);

	if (!m)
		return -1;
	if (!cs->paused)
		return 0;
	if (m->cluster)
		cluster__send_pause(m->cluster, false);
	machine__resume(m);
	cs->paused = false;
	control_socket__event(cs, "RESUME", NULL);
	return 0;
}

static int vm_powerdown(void *ctx, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = running(cs, err);

	if (!m)
		return -1;
	if (!m->acpi_pm)
		return qmp__fail(err, QMP_ERR_GENERIC, "this machine has no "
				 "ACPI power button");
	control_socket__event(cs, "POWERDOWN", NULL);
	/* As on a real machine (and in QEMU) a guest that does not listen
	 * to the button does not power off; the press stays pending. */
	if (!acpi_pm__press_power_button(m->acpi_pm))
		machine__log(m, "system_powerdown: the guest has not enabled "
			     "the ACPI power button event");
	return 0;
}

static int vm_reset(void *ctx, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = running(cs, err);

	if (!m)
		return -1;
	machine__request_reset(m, "host-qmp-system-reset",
			       "system_reset (QMP)");
	return 0;
}

static int vm_quit(void *ctx, struct qmp_error *err)
{
	struct control_socket *cs = ctx;

	/* Already on its way out: that is what quit asks for. */
	if (cs->m && atomic_load(&cs->m->stop))
		return 0;
	if (!running(cs, err))
		return -1;
	machine__request_stop_cause(cs->m, KRG_EXIT_OK, "host-qmp-quit",
				    "quit (QMP)");
	return 0;
}

static const char *vm_name(void *ctx)
{
	struct control_socket *cs = ctx;

	return cs->m && cs->m->cfg->name[0] ? cs->m->cfg->name : NULL;
}

/* Queries answer while the machine is attached, even while it stops: it
 * is only torn down after it detached. */
static struct machine *attached(struct control_socket *cs,
				struct qmp_error *err)
{
	if (!cs->m)
		running(cs, err);
	return cs->m;
}

static int vm_cluster(void *ctx, struct qmp_cluster_view *v,
		      struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = attached(cs, err);
	struct node_stats *all;
	bool have[NET_MAX_NODES];

	if (!m)
		return -1;
	all = calloc(NET_MAX_NODES, sizeof(*all));
	if (!all)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	gather(m, all, have);
	v->nr_nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;
	v->nr_vcpus = m->nr_vcpus;
	v->ram_mib = m->cfg->ram_mib;
	for (unsigned i = 0; i < m->nr_vcpus && i < VM_MAX_VCPUS; i++)
		v->vcpu_node[i] = vcpu_node(m, i);
	for (unsigned i = 0; i < v->nr_nodes; i++) {
		snprintf(v->node[i].addr, sizeof(v->node[i].addr), "%s",
			 node_addr(m, i));
		v->node[i].answered = have[i];
		if (have[i])
			v->node[i].stats = all[i];
	}
	free(all);
	return 0;
}

static int vm_status_text(void *ctx, char **text, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = attached(cs, err);

	if (!m)
		return -1;
	*text = malloc(STATUS_MAX);
	if (!*text)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	control_socket__status_text(m, *text, STATUS_MAX);
	return 0;
}

void control_vm__init_ops(struct control_socket *cs)
{
	cs->ops = (struct qmp_vm_ops){
		.ctx = cs,
		.query_status = vm_status,
		.stop = vm_stop,
		.cont = vm_cont,
		.powerdown = vm_powerdown,
		.reset = vm_reset,
		.quit = vm_quit,
		.name = vm_name,
		.cluster = vm_cluster,
		.status_text = vm_status_text,
		.checkpoint = ckpt__qmp_checkpoint,
		.migrate_vcpu = migrate__qmp_vcpu,
	};
	/* Until the first machine attaches, one is on its way. */
	cs->restarting = true;
}

void control_socket__attach(struct control_socket *cs, struct machine *m)
{
	if (!cs)
		return;
	pthread_mutex_lock(&cs->m_lock);
	cs->m = m;
	cs->restarting = false;
	/* Paused before a reset: the new machine starts paused too (its
	 * vCPU threads park before their first entry). */
	if (cs->paused) {
		machine__pause_nowait(m, false);
		if (m->cluster)
			cluster__send_pause(m->cluster, true);
	}
	pthread_mutex_unlock(&cs->m_lock);
}

void control_socket__detach(struct control_socket *cs, struct machine *m)
{
	const char *cause;
	json_t *data;
	bool reset;

	if (!cs)
		return;
	pthread_mutex_lock(&cs->m_lock);
	/* The signal thread may still turn a reset into a stop. */
	pthread_mutex_lock(&m->life_lock);
	reset = m->reset_requested && m->exit_status == KRG_EXIT_OK;
	cause = m->stop_cause ? m->stop_cause :
		m->exit_status ? "host-error" : "none";
	pthread_mutex_unlock(&m->life_lock);
	data = json_pack("{s:b,s:s}", "guest", !strncmp(cause, "guest-", 6),
			 "reason", cause);
	control_socket__event(cs, reset ? "RESET" : "SHUTDOWN", data);
	json_decref(data);
	cs->m = NULL;
	cs->restarting = reset;
	pthread_mutex_unlock(&cs->m_lock);
}
