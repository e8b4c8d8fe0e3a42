/* The VM's QMP command table (vmm/qmp_commands.h): JSON in and out, the
 * work behind each command done by struct qmp_vm_ops. */
#include "vmm/qmp_commands.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "dsm/dsm_mem.h"

/* Counters are uint64_t; JSON numbers here are json_int_t (signed). */
static json_t *num(uint64_t v)
{
	return json_integer(v > (uint64_t)LLONG_MAX ? LLONG_MAX :
						      (json_int_t)v);
}

static void put(json_t *obj, const char *key, uint64_t v)
{
	json_object_set_new(obj, key, num(v));
}

/* Addresses come from the command line: keep the reply valid UTF-8. */
static json_t *text(const char *s)
{
	json_t *j;
	char clean[256];
	size_t i;

	if (!s)
		s = "";
	j = json_string(s);
	if (j)
		return j;
	for (i = 0; s[i] && i < sizeof(clean) - 1; i++)
		clean[i] = (unsigned char)s[i] < 0x80 ? s[i] : '?';
	clean[i] = '\0';
	return json_string(clean);
}

static json_t *dsm_json(const struct dsm_mem_stats *d)
{
	json_t *o = json_object(), *hot = json_array(), *lat = json_object();

	put(o, "read-faults", d->read_faults);
	put(o, "write-faults", d->write_faults);
	put(o, "local-faults", d->core.local_faults);
	put(o, "wp-faults", d->wp_faults);
	put(o, "invalidations", d->invalidations);
	put(o, "translation-drops", d->translation_drops);
	put(o, "pages-sent", d->pages_sent);
	put(o, "pages-received", d->pages_received);
	put(o, "bytes-sent", d->bytes_sent);
	put(o, "bytes-received", d->bytes_received);
	put(o, "held-messages", d->held_msgs);
	put(o, "held-us", d->held_ns / 1000);
	for (unsigned i = 0; i < DSM_MEM_HOT_PAGES; i++) {
		json_t *h;

		if (!d->hot[i].count)
			continue;
		h = json_object();
		put(h, "gpa", d->hot[i].gpa);
		put(h, "count", d->hot[i].count);
		json_array_append_new(hot, h);
	}
	json_object_set_new(o, "hot-pages", hot);
	put(lat, "count", d->lat_count);
	put(lat, "p50-us", dsm_mem__lat_quantile_us(d, 0.5));
	put(lat, "p99-us", dsm_mem__lat_quantile_us(d, 0.99));
	put(lat, "max-us", d->lat_max_ns / 1000);
	json_object_set_new(o, "fault-latency", lat);
	return o;
}

static json_t *node_json(const struct qmp_cluster_view *v, unsigned n)
{
	const struct qmp_cluster_node *cn = &v->node[n];
	const struct node_stats *s = &cn->stats;
	json_t *o = json_object(), *vcpus = json_array(), *irq, *io;

	put(o, "node", n);
	json_object_set_new(o, "address", text(cn->addr));
	for (unsigned i = 0; i < v->nr_vcpus && i < VM_MAX_VCPUS; i++)
		if (v->vcpu_node[i] == (int)n)
			json_array_append_new(vcpus, num(i));
	json_object_set_new(o, "vcpus", vcpus);
	json_object_set_new(o, "answered", json_boolean(cn->answered));
	if (!cn->answered)
		return o;
	put(o, "uptime-ms", s->uptime_ms);
	put(o, "vcpu-exits", s->vcpu_exits);
	put(o, "interrupts-injected", s->vcpu_injected);
	json_object_set_new(o, "dsm", dsm_json(&s->dsm));
	irq = json_object();
	put(irq, "delivered-out", s->irq.deliver_out);
	put(irq, "delivered-in", s->irq.deliver_in);
	put(irq, "address-updates-out", s->irq.addr_out);
	put(irq, "address-updates-in", s->irq.addr_in);
	put(irq, "level-eois-out", s->irq.eoi_out);
	put(irq, "level-eois-in", s->irq.eoi_in);
	json_object_set_new(o, "interrupts", irq);
	io = json_object();
	put(io, "forwarded", s->io.requests);
	put(io, "timeouts", s->io.timeouts);
	json_object_set_new(o, "io", io);
	return o;
}

json_t *qmp_commands__cluster_json(const struct qmp_cluster_view *v)
{
	json_t *o = json_object(), *nodes = json_array(), *vcpus = json_array();

	if (!o || !nodes || !vcpus) {
		json_decref(o);
		json_decref(nodes);
		json_decref(vcpus);
		return NULL;
	}
	put(o, "vcpu-count", v->nr_vcpus);
	put(o, "ram-mib", v->ram_mib);
	for (unsigned i = 0; i < v->nr_vcpus && i < VM_MAX_VCPUS; i++) {
		json_t *e = json_object();

		put(e, "vcpu", i);
		json_object_set_new(e, "node", json_integer(v->vcpu_node[i]));
		json_array_append_new(vcpus, e);
	}
	for (unsigned n = 0; n < v->nr_nodes && n < NET_MAX_NODES; n++)
		json_array_append_new(nodes, node_json(v, n));
	json_object_set_new(o, "vcpus", vcpus);
	json_object_set_new(o, "nodes", nodes);
	return o;
}

static int cmd_query_status(void *ctx, json_t *args, json_t **ret,
			    struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	const char *state = QMP_STATE_RUNNING;

	ops->query_status(ops->ctx, &state);
	*ret = json_pack("{s:b,s:b,s:s}", "running",
			 !strcmp(state, QMP_STATE_RUNNING), "singlestep", 0,
			 "status", state);
	return *ret ? 0 : qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
}

static int cmd_stop(void *ctx, json_t *args, json_t **ret,
		    struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;

	return ops->stop(ops->ctx, err);
}

static int cmd_cont(void *ctx, json_t *args, json_t **ret,
		    struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;

	return ops->cont(ops->ctx, err);
}

static int cmd_powerdown(void *ctx, json_t *args, json_t **ret,
			 struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;

	return ops->powerdown(ops->ctx, err);
}

static int cmd_reset(void *ctx, json_t *args, json_t **ret,
		     struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;

	return ops->reset(ops->ctx, err);
}

static int cmd_quit(void *ctx, json_t *args, json_t **ret,
		    struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;

	return ops->quit(ops->ctx, err);
}

static int cmd_query_name(void *ctx, json_t *args, json_t **ret,
			  struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	const char *name = ops->name ? ops->name(ops->ctx) : NULL;

	*ret = json_object();
	if (*ret && name)
		json_object_set_new(*ret, "name", text(name));
	return *ret ? 0 : qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
}

static int cmd_query_cluster(void *ctx, json_t *args, json_t **ret,
			     struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	struct qmp_cluster_view *v = calloc(1, sizeof(*v));
	int rc = -1;

	if (!v)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	if (ops->cluster(ops->ctx, v, err) == 0) {
		*ret = qmp_commands__cluster_json(v);
		rc = *ret ? 0 : qmp__fail(err, QMP_ERR_GENERIC,
					  "out of memory");
	}
	free(v);
	return rc;
}

static int cmd_query_krg_status(void *ctx, json_t *args, json_t **ret,
				struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	char *t = NULL;

	if (ops->status_text(ops->ctx, &t, err) < 0)
		return -1;
	*ret = json_pack("{s:o}", "text", text(t));
	free(t);
	return *ret ? 0 : qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
}

static const struct qmp_arg checkpoint_args[] = {
	{ "dir", QMP_ARG_STR, false },
	{ "stop", QMP_ARG_BOOL, true },
	{ NULL, QMP_ARG_ANY, false },
};

static int cmd_checkpoint(void *ctx, json_t *args, json_t **ret,
			  struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	json_t *stop = json_object_get(args, "stop");
	struct qmp_checkpoint r = { 0 };

	if (!ops->checkpoint)
		return qmp__fail(err, QMP_ERR_GENERIC, "checkpoints are not "
				 "available here");
	if (ops->checkpoint(ops->ctx,
			    json_string_value(json_object_get(args, "dir")),
			    stop && json_is_true(stop), &r, err) < 0)
		return -1;
	*ret = json_object();
	if (!*ret)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	put(*ret, "pages", r.pages);
	put(*ret, "bytes", r.bytes);
	put(*ret, "total-ms", r.ms);
	put(*ret, "barrier-ms", r.barrier_ms);
	return 0;
}

static const struct qmp_arg migrate_args[] = {
	{ "vcpu", QMP_ARG_INT, false },
	{ "node", QMP_ARG_INT, false },
	{ "x-fault", QMP_ARG_STR, true },
	{ NULL, QMP_ARG_ANY, false },
};

static int cmd_migrate_vcpu(void *ctx, json_t *args, json_t **ret,
			    struct qmp_error *err)
{
	const struct qmp_vm_ops *ops = ctx;
	json_int_t vcpu = json_integer_value(json_object_get(args, "vcpu"));
	json_int_t node = json_integer_value(json_object_get(args, "node"));
	struct qmp_migrate r = { 0 };

	if (!ops->migrate_vcpu)
		return qmp__fail(err, QMP_ERR_GENERIC, "vCPU migration is not "
				 "available here");
	if (ops->migrate_vcpu(ops->ctx, vcpu, node,
			      json_string_value(json_object_get(args,
								"x-fault")),
			      &r, err) < 0)
		return -1;
	*ret = json_object();
	if (!*ret)
		return qmp__fail(err, QMP_ERR_GENERIC, "out of memory");
	put(*ret, "vcpu", (uint64_t)vcpu);
	put(*ret, "from", r.from);
	put(*ret, "node", (uint64_t)node);
	json_object_set_new(*ret, "moved", json_boolean(r.moved));
	put(*ret, "downtime-ns", r.downtime_ns);
	put(*ret, "total-ns", r.total_ns);
	put(*ret, "state-bytes", r.state_bytes);
	return 0;
}

static const struct qmp_command table[] = {
	{ "query-status", cmd_query_status, NULL },
	{ "stop", cmd_stop, NULL },
	{ "cont", cmd_cont, NULL },
	{ "system_powerdown", cmd_powerdown, NULL },
	{ "system_reset", cmd_reset, NULL },
	{ "quit", cmd_quit, NULL },
	{ "query-name", cmd_query_name, NULL },
	{ "query-krg-cluster", cmd_query_cluster, NULL },
	{ "query-krg-status", cmd_query_krg_status, NULL },
	{ "krg-checkpoint", cmd_checkpoint, checkpoint_args },
	{ "krg-migrate-vcpu", cmd_migrate_vcpu, migrate_args },
};

const struct qmp_command *qmp_commands__table(size_t *nr)
{
	*nr = sizeof(table) / sizeof(table[0]);
	return table;
}
