/* vCPU migration's protocol state machine, internal to
 * vmm/migrate_proto*.c: the state (migrate_proto.c: setup, the
 * coordinator, dispatch, deadlines; migrate_proto_roles.c: the source and
 * the target) and the helpers that build actions. */
#ifndef KRG_VMM_MIGRATE_PROTO_PRIV_H
#define KRG_VMM_MIGRATE_PROTO_PRIV_H

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/migrate_proto.h"

#define MS(ns) ((unsigned long long)((ns) / 1000000u))

enum src_state {
	SRC_IDLE,
	SRC_PREPARING,	/* PREPARE sent, waiting for REPLY(PREPARED) */
	SRC_PARKING,	/* PARK asked, waiting for the vCPU */
	SRC_CAPTURING,	/* CAPTURE asked */
	SRC_SENT,	/* STATE sent, waiting for REPLY(LOADED) */
	SRC_COMMITTED,	/* DECIDE(commit) sent, waiting for REPLY(RESUMED) */
};

enum dst_state {
	DST_IDLE,
	DST_PREPARED,	/* waiting for STATE */
	DST_LOADING,	/* LOAD asked */
	DST_LOADED,	/* waiting for DECIDE */
};

struct migrate_proto {
	unsigned self, nr_nodes, nr_vcpus, coordinator;
	struct migrate_timeouts tmo;
	uint8_t *node;
	uint32_t *gen;
	bool stopping;
	struct {
		bool busy;
		uint64_t id, next_id, deadline;
		unsigned vcpu, target, source;
	} c;
	struct {
		enum src_state st;
		uint64_t id, deadline, t_start, t_paused, t_commit;
		unsigned vcpu, target, coord;
		uint32_t gen, bytes, addr_seq;
		struct apic_addr addr;
		uint8_t fault;
	} s;
	struct {
		enum dst_state st;
		uint64_t id, deadline;
		unsigned vcpu, source;
		uint32_t gen, addr_seq;
		struct apic_addr addr;
		uint8_t fault;
		bool abort_pending;	/* DECIDE(abort) came while loading */
	} t;
	struct migrate_proto_stats st;
};

/* ---- building actions into out ---- */

static inline struct migrate_act *push(struct migrate_acts *out,
				       enum migrate_act_kind kind,
				       unsigned vcpu, unsigned node)
{
	struct migrate_act *a;

	/* No event produces more than MIGRATE_MAX_ACTS actions. */
	if (out->n >= MIGRATE_MAX_ACTS)
		abort();
	a = &out->a[out->n++];
	memset(a, 0, sizeof(*a));
	a->kind = kind;
	a->vcpu = vcpu;
	a->node = node;
	return a;
}

static inline void set_text(struct migrate_msg *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static inline void set_text(struct migrate_msg *m, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(m->text, sizeof(m->text), fmt, ap);
	va_end(ap);
}

static inline struct migrate_msg *send(struct migrate_acts *out,
				       unsigned type, unsigned node,
				       uint64_t id, unsigned vcpu)
{
	struct migrate_act *a = push(out, MIGRATE_A_SEND, vcpu, node);

	a->type = type;
	a->msg.id = id;
	a->msg.vcpu = (uint16_t)vcpu;
	return &a->msg;
}

static inline void reply(struct migrate_acts *out, unsigned node,
			 uint64_t id, unsigned vcpu, enum migrate_step step,
			 enum migrate_status status, const char *text)
{
	struct migrate_msg *m = send(out, MIGRATE_T_REPLY, node, id, vcpu);

	m->step = (uint8_t)step;
	m->status = (uint8_t)status;
	if (text)
		set_text(m, "%s", text);
}

/* S -> C: how it ended; the vCPU's placement as S knows it now. */
static inline struct migrate_msg *done(struct migrate_proto *p,
				       struct migrate_acts *out,
				       unsigned coord, uint64_t id,
				       unsigned vcpu,
				       enum migrate_status status)
{
	struct migrate_msg *m = send(out, MIGRATE_T_DONE, coord, id, vcpu);

	m->status = (uint8_t)status;
	m->node = p->node[vcpu];
	m->gen = p->gen[vcpu];
	return m;
}

/* migrate_proto_roles.c: the source's and the target's messages, and
 * their part of the deadlines and of the VM's stop. */
void migrate_proto__on_start(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out);
void migrate_proto__on_reply(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out);
void migrate_proto__on_prepare(struct migrate_proto *p, uint64_t now,
			       unsigned sender, const struct migrate_msg *m,
			       struct migrate_acts *out);
void migrate_proto__on_state(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out);
void migrate_proto__on_decide(struct migrate_proto *p, unsigned sender,
			      const struct migrate_msg *m,
			      struct migrate_acts *out);
void migrate_proto__roles_tick(struct migrate_proto *p, uint64_t now,
			       struct migrate_acts *out);
void migrate_proto__roles_stop(struct migrate_proto *p,
			       struct migrate_acts *out);

#endif
