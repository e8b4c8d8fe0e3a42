/* vCPU migration's user interfaces: the krg-migrate-vcpu QMP command on
 * the boot node, and `krg-vmm migrate-vcpu`, a client of it. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/control_priv.h"
#include "vmm/control_socket.h"
#include "vmm/machine.h"
#include "vmm/migrate.h"

int migrate__qmp_vcpu(void *ctx, int64_t vcpu, int64_t node,
		      const char *fault, struct qmp_migrate *out,
		      struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = cs->m;
	unsigned nodes = m && m->cluster ? m->layout.nr_nodes : 1;
	struct migrate_msg res;
	int f = MIGRATE_FAULT_NONE, r;

	if (!m || atomic_load(&m->stop))
		return qmp__fail(err, QMP_ERR_GENERIC, "the VM is not running");
	if (vcpu < 0 || vcpu >= m->nr_vcpus)
		return qmp__fail(err, QMP_ERR_GENERIC, "vCPU %lld does not "
				 "exist (the VM has %u vCPUs: 0-%u)",
				 (long long)vcpu, m->nr_vcpus,
				 m->nr_vcpus - 1);
	if (node < 0 || node >= nodes)
		return qmp__fail(err, QMP_ERR_GENERIC, "node %lld does not "
				 "exist (the VM runs on %u node%s: 0-%u)",
				 (long long)node, nodes, nodes > 1 ? "s" : "",
				 nodes - 1);
	if (fault && (f = migrate_fault__parse(fault)) < 0)
		return qmp__fail(err, QMP_ERR_GENERIC, "unknown x-fault '%s'",
				 fault);
	memset(out, 0, sizeof(*out));
	if (!m->migrate) {
		/* One node: every vCPU is on node 0 already. */
		return 0;
	}
	if (cs->paused)
		return qmp__fail(err, QMP_ERR_GENERIC, "the VM is paused "
				 "(stop): cont first, vCPUs move while they "
				 "run");
	r = migrate__vcpu(m, (unsigned)vcpu, (unsigned)node, (unsigned)f,
			  &res);
	out->from = res.from;
	if (r < 0)
		return qmp__fail(err, QMP_ERR_GENERIC, "vCPU %lld was not "
				 "moved to node %lld (%s): %s", (long long)vcpu,
				 (long long)node,
				 migrate_status__name(res.status), res.text);
	if (r == 0) {
		out->moved = true;
		out->downtime_ns = res.value;
		out->total_ns = res.total_ns;
		out->state_bytes = res.state_bytes;
	}
	return 0;
}

size_t migrate__status_line(struct migrate *mg, char *buf, size_t size)
{
	struct migrate_stats st;
	int n;

	migrate__stats(mg, &st);
	if (!size || (!st.proto.started && !st.forwarded)) {
		if (size)
			buf[0] = '\0';
		return 0;
	}
	n = snprintf(buf, size, "vCPU migrations: %llu done, %llu failed; "
		     "downtime last %llu us, longest %llu us; %llu "
		     "interrupts passed on here\n",
		     (unsigned long long)st.proto.succeeded,
		     (unsigned long long)st.proto.failed,
		     (unsigned long long)(st.last_down_ns / 1000),
		     (unsigned long long)(st.max_down_ns / 1000),
		     (unsigned long long)st.forwarded);
	return n < 0 ? 0 : (size_t)n < size ? (size_t)n : size - 1;
}

static int usage(void)
{
	fprintf(stderr, "krg-vmm: usage: krg-vmm migrate-vcpu VCPU NODE "
		"[SOCKET]\n");
	return 2;
}

static json_int_t get(json_t *o, const char *key)
{
	return json_integer_value(json_object_get(o, key));
}

static bool number(const char *s, long long *out)
{
	char *end;

	*out = strtoll(s, &end, 10);
	return *s && !*end;
}

int migrate__cli(int argc, char *const argv[])
{
	long long vcpu, node;
	json_t *args, *ret = NULL;
	char err[512];
	const char *e;

	if (argc < 2 || argc > 3 || !number(argv[0], &vcpu) ||
	    !number(argv[1], &node))
		return usage();
	args = json_pack("{s:I,s:I}", "vcpu", (json_int_t)vcpu, "node",
			 (json_int_t)node);
	if (!args || control_socket__call(argc == 3 ? argv[2] : NULL,
					  "krg-migrate-vcpu", args, &ret, err,
					  sizeof(err)) < 0) {
		json_decref(args);
		/* The VM's own words, without the command's name. */
		e = strncmp(err, "krg-migrate-vcpu: ", 18) ? err : err + 18;
		fprintf(stderr, "krg-vmm: %s\n", e);
		return 1;
	}
	json_decref(args);
	if (!json_is_true(json_object_get(ret, "moved")))
		printf("vCPU %lld already runs on node %lld\n", vcpu, node);
	else
		printf("vCPU %lld moved from node %lld to node %lld: stood "
		       "still %.3f ms, %.3f ms in all, %lld bytes of state\n",
		       vcpu, (long long)get(ret, "from"), node,
		       get(ret, "downtime-ns") / 1e6,
		       get(ret, "total-ns") / 1e6,
		       (long long)get(ret, "state-bytes"));
	json_decref(ret);
	return 0;
}
