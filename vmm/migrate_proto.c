/* vCPU migration's protocol state machine (see migrate_proto.h). */
#include "vmm/migrate_proto_priv.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void migrate_timeouts__default(struct migrate_timeouts *t)
{
	*t = (struct migrate_timeouts){
		.prepared_ns = 1000000000ull,
		.park_ns = 3000000000ull,
		.loaded_ns = 2000000000ull,
		.resumed_ns = 2000000000ull,
		.target_ns = 30000000000ull,
		.done_ns = 15000000000ull,
	};
}

struct migrate_proto *migrate_proto__new(const struct migrate_proto_config *c)
{
	struct migrate_proto *p;

	if (!c || !c->vcpu_node || !c->nr_nodes ||
	    c->nr_nodes > MIGRATE_MAX_NODES || !c->nr_vcpus ||
	    c->nr_vcpus > MIGRATE_MAX_VCPUS || c->self >= c->nr_nodes ||
	    c->coordinator >= c->nr_nodes ||
	    c->tmo.target_ns <= c->tmo.loaded_ns + c->tmo.resumed_ns)
		return NULL;
	for (unsigned i = 0; i < c->nr_vcpus; i++)
		if (c->vcpu_node[i] >= c->nr_nodes)
			return NULL;
	p = calloc(1, sizeof(*p));
	if (!p)
		return NULL;
	p->node = malloc(c->nr_vcpus);
	p->gen = calloc(c->nr_vcpus, sizeof(*p->gen));
	if (!p->node || !p->gen) {
		migrate_proto__free(p);
		return NULL;
	}
	memcpy(p->node, c->vcpu_node, c->nr_vcpus);
	p->self = c->self;
	p->nr_nodes = c->nr_nodes;
	p->nr_vcpus = c->nr_vcpus;
	p->coordinator = c->coordinator;
	p->tmo = c->tmo;
	return p;
}

void migrate_proto__free(struct migrate_proto *p)
{
	if (!p)
		return;
	free(p->node);
	free(p->gen);
	free(p);
}

/* ---- coordinator ---- */

int migrate_proto__request(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, unsigned node, unsigned fault,
			   struct migrate_msg *res, struct migrate_acts *out)
{
	struct migrate_msg *m;

	memset(res, 0, sizeof(*res));
	res->vcpu = (uint16_t)vcpu;
	res->status = MIGRATE_E_INVALID;
	if (vcpu >= p->nr_vcpus) {
		set_text(res, "vCPU %u does not exist (the VM has %u vCPUs)",
			 vcpu, p->nr_vcpus);
		return -1;
	}
	res->node = res->from = p->node[vcpu];
	res->gen = p->gen[vcpu];
	if (node >= p->nr_nodes) {
		set_text(res, "node %u does not exist (the VM runs on %u "
			 "nodes)", node, p->nr_nodes);
		return -1;
	}
	if (fault > MIGRATE_FAULT_MAX) {
		set_text(res, "unknown fault %u", fault);
		return -1;
	}
	if (p->stopping) {
		res->status = MIGRATE_E_STOPPING;
		set_text(res, "the VM is stopping");
		return -1;
	}
	if (p->node[vcpu] == node) {
		res->status = MIGRATE_OK;
		set_text(res, "vCPU %u already runs on node %u", vcpu, node);
		return 1;
	}
	if (p->c.busy) {
		res->status = MIGRATE_E_BUSY;
		set_text(res, "vCPU %u is being moved to node %u; one "
			 "migration at a time", p->c.vcpu, p->c.target);
		return -1;
	}
	p->c.busy = true;
	p->c.id = ++p->c.next_id;
	p->c.vcpu = vcpu;
	p->c.target = node;
	p->c.source = p->node[vcpu];
	p->c.deadline = now + p->tmo.done_ns;
	p->st.started++;
	m = send(out, MIGRATE_T_START, p->c.source, p->c.id, vcpu);
	m->node = (uint16_t)node;
	m->gen = p->gen[vcpu] + 1;
	m->fault = (uint8_t)fault;
	return 0;
}

static void result(struct migrate_proto *p, struct migrate_acts *out,
		   const struct migrate_msg *m)
{
	struct migrate_act *a = push(out, MIGRATE_A_RESULT, p->c.vcpu,
				     m->node);

	a->msg = *m;
	a->msg.blob = NULL;
	a->msg.from = (uint16_t)p->c.source;
	p->c.busy = false;
	if (m->status == MIGRATE_OK)
		p->st.succeeded++;
	else
		p->st.failed++;
}

/* A newer placement than this node knew: record it, tell the I/O side. */
static void learn_place(struct migrate_proto *p,
			struct migrate_acts *out, unsigned vcpu,
			unsigned node, uint32_t gen, uint32_t addr_seq,
			const struct apic_addr *addr)
{
	struct migrate_act *a;

	if (gen <= p->gen[vcpu] || node == p->self)
		return;
	/* A vCPU running here only leaves through this node's HAND_OVER. */
	if (p->node[vcpu] == p->self) {
		p->st.stale++;
		return;
	}
	p->node[vcpu] = (uint8_t)node;
	p->gen[vcpu] = gen;
	a = push(out, MIGRATE_A_PLACE, vcpu, node);
	a->msg.vcpu = (uint16_t)vcpu;
	a->msg.node = (uint16_t)node;
	a->msg.gen = gen;
	a->msg.addr_seq = addr_seq;
	if (addr)
		a->msg.addr = *addr;
}

static void on_done(struct migrate_proto *p, unsigned sender,
		    const struct migrate_msg *m, struct migrate_acts *out)
{
	/* S's word on where its vCPU is, whatever the outcome. */
	learn_place(p, out, m->vcpu, m->node, m->gen, 0, NULL);
	if (!p->c.busy || m->id != p->c.id || sender != p->c.source) {
		p->st.stale++;
		return;
	}
	result(p, out, m);
}

/* ---- events ---- */

void migrate_proto__recv(struct migrate_proto *p, uint64_t now,
			 unsigned sender, unsigned type,
			 const struct migrate_msg *m, struct migrate_acts *out)
{
	/* START and DONE come from this node itself when it coordinates
	 * the move of one of its own vCPUs. */
	if (sender >= p->nr_nodes || m->vcpu >= p->nr_vcpus ||
	    (sender == p->self && type != MIGRATE_T_START &&
	     type != MIGRATE_T_DONE)) {
		p->st.stale++;
		return;
	}
	switch (type) {
	case MIGRATE_T_START:
		migrate_proto__on_start(p, now, sender, m, out);
		return;
	case MIGRATE_T_PREPARE:
		migrate_proto__on_prepare(p, now, sender, m, out);
		return;
	case MIGRATE_T_STATE:
		migrate_proto__on_state(p, now, sender, m, out);
		return;
	case MIGRATE_T_DECIDE:
		migrate_proto__on_decide(p, sender, m, out);
		return;
	case MIGRATE_T_REPLY:
		migrate_proto__on_reply(p, now, sender, m, out);
		return;
	case MIGRATE_T_PLACE:
		if (m->node != sender)
			p->st.stale++;
		else
			learn_place(p, out, m->vcpu, m->node, m->gen,
				    m->addr_seq, &m->addr);
		return;
	case MIGRATE_T_DONE:
		on_done(p, sender, m, out);
		return;
	}
	p->st.stale++;
}

void migrate_proto__tick(struct migrate_proto *p, uint64_t now,
			 struct migrate_acts *out)
{
	if (p->c.busy && now >= p->c.deadline) {
		struct migrate_msg m = { .id = p->c.id,
					 .vcpu = (uint16_t)p->c.vcpu,
					 .status = MIGRATE_E_TIMEOUT };

		m.node = p->node[p->c.vcpu];
		m.gen = p->gen[p->c.vcpu];
		set_text(&m, "node %u did not report on vCPU %u's migration "
			 "within %llu ms", p->c.source, p->c.vcpu,
			 MS(p->tmo.done_ns));
		result(p, out, &m);
	}
	migrate_proto__roles_tick(p, now, out);
}

void migrate_proto__stopping(struct migrate_proto *p,
			     struct migrate_acts *out)
{
	p->stopping = true;
	if (p->c.busy) {
		struct migrate_msg m = { .id = p->c.id,
					 .vcpu = (uint16_t)p->c.vcpu,
					 .status = MIGRATE_E_STOPPING };

		m.node = p->node[p->c.vcpu];
		m.gen = p->gen[p->c.vcpu];
		set_text(&m, "the VM is stopping");
		result(p, out, &m);
	}
	migrate_proto__roles_stop(p, out);
}

uint64_t migrate_proto__next_deadline(const struct migrate_proto *p)
{
	uint64_t d = 0;

	if (p->c.busy)
		d = p->c.deadline;
	if (p->s.st != SRC_IDLE && p->s.st != SRC_CAPTURING &&
	    (!d || p->s.deadline < d))
		d = p->s.deadline;
	if ((p->t.st == DST_PREPARED || p->t.st == DST_LOADED) &&
	    (!d || p->t.deadline < d))
		d = p->t.deadline;
	return d;
}

unsigned migrate_proto__node_of(const struct migrate_proto *p, unsigned vcpu)
{
	return vcpu < p->nr_vcpus ? p->node[vcpu] : 0;
}

uint32_t migrate_proto__gen_of(const struct migrate_proto *p, unsigned vcpu)
{
	return vcpu < p->nr_vcpus ? p->gen[vcpu] : 0;
}

bool migrate_proto__busy(const struct migrate_proto *p, unsigned vcpu)
{
	return (p->s.st != SRC_IDLE && p->s.vcpu == vcpu) ||
	       (p->t.st != DST_IDLE && p->t.vcpu == vcpu);
}

void migrate_proto__stats(const struct migrate_proto *p,
			  struct migrate_proto_stats *out)
{
	*out = p->st;
}
