/* vCPU migration's protocol: the source's and the target's side (see
 * migrate_proto.h for the sequence). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/migrate_proto_priv.h"

/* ---- source ---- */

static void src_idle(struct migrate_proto *p)
{
	memset(&p->s, 0, sizeof(p->s));
	p->s.st = SRC_IDLE;
}

static void src_abort(struct migrate_proto *p, struct migrate_acts *out,
		      enum migrate_status status, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

/* Every failure after PREPARE: the vCPU runs on here, the target lets
 * go, the coordinator hears why. */
static void src_abort(struct migrate_proto *p,
		      struct migrate_acts *out,
		      enum migrate_status status, const char *fmt, ...)
{
	struct migrate_msg *m;
	va_list ap;

	if (p->s.st == SRC_PARKING || p->s.st == SRC_CAPTURING ||
	    p->s.st == SRC_SENT)
		push(out, MIGRATE_A_RELEASE, p->s.vcpu, p->self);
	if (p->s.st != SRC_PREPARING || status == MIGRATE_E_TIMEOUT) {
		m = send(out, MIGRATE_T_DECIDE, p->s.target, p->s.id,
			 p->s.vcpu);
		m->gen = p->s.gen;
		m->commit = 0;
	}
	m = done(p, out, p->s.coord, p->s.id, p->s.vcpu, status);
	va_start(ap, fmt);
	vsnprintf(m->text, sizeof(m->text), fmt, ap);
	va_end(ap);
	p->st.aborted_out++;
	src_idle(p);
}

void migrate_proto__on_start(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out)
{
	struct migrate_msg *d;

	if (sender != p->coordinator) {
		p->st.stale++;
		return;
	}
	if (p->stopping) {
		d = done(p, out, sender, m->id, m->vcpu, MIGRATE_E_STOPPING);
		set_text(d, "node %u is stopping", p->self);
		return;
	}
	if (p->s.st != SRC_IDLE) {
		d = done(p, out, sender, m->id, m->vcpu, MIGRATE_E_BUSY);
		set_text(d, "node %u is moving vCPU %u", p->self, p->s.vcpu);
		return;
	}
	if (p->node[m->vcpu] != p->self || m->node == p->self) {
		d = done(p, out, sender, m->id, m->vcpu, MIGRATE_E_INVALID);
		set_text(d, "vCPU %u runs on node %u, not on node %u (asked to "
			 "move it to node %u)", m->vcpu, p->node[m->vcpu],
			 p->self, m->node);
		return;
	}
	if (m->gen != p->gen[m->vcpu] + 1) {
		d = done(p, out, sender, m->id, m->vcpu, MIGRATE_E_INVALID);
		set_text(d, "vCPU %u: placement generation %u asked, node %u "
			 "is at %u", m->vcpu, m->gen, p->self,
			 p->gen[m->vcpu]);
		return;
	}
	p->s.st = SRC_PREPARING;
	p->s.id = m->id;
	p->s.vcpu = m->vcpu;
	p->s.target = m->node;
	p->s.coord = sender;
	p->s.gen = m->gen;
	p->s.fault = m->fault;
	p->s.t_start = now;
	p->s.deadline = now + p->tmo.prepared_ns;
	d = send(out, MIGRATE_T_PREPARE, m->node, m->id, m->vcpu);
	d->node = m->node;
	d->gen = m->gen;
	d->fault = m->fault;
}

void migrate_proto__on_reply(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out)
{
	struct migrate_act *a;
	struct migrate_msg *d;

	if (p->s.st == SRC_IDLE || m->id != p->s.id ||
	    sender != p->s.target || m->vcpu != p->s.vcpu)
		goto stale;
	switch (m->step) {
	case MIGRATE_STEP_PREPARED:
		if (p->s.st != SRC_PREPARING)
			goto stale;
		if (m->status != MIGRATE_OK) {
			/* It holds nothing for a refused PREPARE. */
			src_abort(p, out, m->status == MIGRATE_E_BUSY ?
				  MIGRATE_E_BUSY : MIGRATE_E_REFUSED,
				  "node %u refused vCPU %u: %s", sender,
				  p->s.vcpu, m->text);
			return;
		}
		p->s.st = SRC_PARKING;
		p->s.deadline = now + p->tmo.park_ns;
		push(out, MIGRATE_A_PARK, p->s.vcpu, p->self);
		return;
	case MIGRATE_STEP_LOADED:
		if (p->s.st != SRC_SENT)
			goto stale;
		if (m->status != MIGRATE_OK) {
			src_abort(p, out, MIGRATE_E_REFUSED, "node %u could "
				  "not load vCPU %u: %s", sender, p->s.vcpu,
				  m->text);
			return;
		}
		/* The point of no return. */
		p->node[p->s.vcpu] = (uint8_t)p->s.target;
		p->gen[p->s.vcpu] = p->s.gen;
		a = push(out, MIGRATE_A_HAND_OVER, p->s.vcpu, p->s.target);
		a->type = MIGRATE_T_DECIDE;
		a->msg.id = p->s.id;
		a->msg.vcpu = (uint16_t)p->s.vcpu;
		a->msg.gen = p->s.gen;
		a->msg.commit = 1;
		a->msg.addr_seq = p->s.addr_seq;
		a->msg.addr = p->s.addr;
		p->s.st = SRC_COMMITTED;
		p->s.t_commit = now;
		p->s.deadline = now + p->tmo.resumed_ns;
		return;
	case MIGRATE_STEP_RESUMED: {
		uint64_t rtt, proc, one_way, down;

		if (p->s.st != SRC_COMMITTED)
			goto stale;
		/* Clock-free: S's pause-to-commit, half the commit's round
		 * trip less what T spent, and T's commit-to-resume. */
		rtt = now - p->s.t_commit;
		proc = m->value < rtt ? m->value : rtt;
		one_way = (rtt - proc) / 2;
		down = p->s.t_commit - p->s.t_paused + one_way + proc;
		d = done(p, out, p->s.coord, p->s.id, p->s.vcpu,
			 m->status == MIGRATE_OK ? MIGRATE_OK :
			 MIGRATE_E_UNCONFIRMED);
		d->value = down;
		d->total_ns = now - p->s.t_start;
		d->state_bytes = p->s.bytes;
		set_text(d, "vCPU %u moved from node %u to node %u", p->s.vcpu,
			 p->self, p->s.target);
		p->st.out++;
		p->st.last_downtime_ns = down;
		if (down > p->st.max_downtime_ns)
			p->st.max_downtime_ns = down;
		src_idle(p);
		return;
	}
	}
stale:
	p->st.stale++;
}

void migrate_proto__parked(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, uint64_t t_paused,
			   struct migrate_acts *out)
{
	if (p->s.st != SRC_PARKING || vcpu != p->s.vcpu) {
		p->st.stale++;
		return;
	}
	p->s.t_paused = t_paused;
	p->s.st = SRC_CAPTURING;
	if (p->s.fault == MIGRATE_FAULT_FAIL_CAPTURE) {
		src_abort(p, out, MIGRATE_E_CAPTURE,
			  "capturing vCPU %u failed on purpose "
			  "(x-fault fail-capture)", vcpu);
		return;
	}
	push(out, MIGRATE_A_CAPTURE, vcpu, p->self);
}

void migrate_proto__captured(struct migrate_proto *p, uint64_t now,
			     unsigned vcpu, bool ok, uint32_t bytes,
			     uint32_t addr_seq, const struct apic_addr *addr,
			     const char *why, struct migrate_acts *out)
{
	struct migrate_act *a;

	if (p->s.st != SRC_CAPTURING || vcpu != p->s.vcpu) {
		p->st.stale++;
		return;
	}
	if (!ok) {
		src_abort(p, out, MIGRATE_E_CAPTURE, "capturing vCPU %u: %s",
			  vcpu, why ? why : "failed");
		return;
	}
	p->s.bytes = bytes;
	p->s.addr_seq = addr_seq;
	if (addr)
		p->s.addr = *addr;
	p->s.st = SRC_SENT;
	p->s.deadline = now + p->tmo.loaded_ns;
	a = push(out, MIGRATE_A_SEND_STATE, vcpu, p->s.target);
	a->type = MIGRATE_T_STATE;
	a->msg.id = p->s.id;
	a->msg.vcpu = (uint16_t)vcpu;
	a->msg.gen = p->s.gen;
	a->msg.addr_seq = addr_seq;
	a->msg.addr = p->s.addr;
}

/* ---- target ---- */

static void dst_idle(struct migrate_proto *p,
		     struct migrate_acts *out, bool discard)
{
	if (discard)
		push(out, MIGRATE_A_DISCARD, p->t.vcpu, p->self);
	memset(&p->t, 0, sizeof(p->t));
	p->t.st = DST_IDLE;
}

void migrate_proto__on_prepare(struct migrate_proto *p, uint64_t now,
			       unsigned sender, const struct migrate_msg *m,
			       struct migrate_acts *out)
{
	char why[MIGRATE_TEXT_MAX + 1];
	enum migrate_status st = MIGRATE_E_REFUSED;

	why[0] = '\0';
	if (m->node != p->self) {
		snprintf(why, sizeof(why), "PREPARE for node %u reached node "
			 "%u", m->node, p->self);
	} else if (p->stopping) {
		st = MIGRATE_E_STOPPING;
		snprintf(why, sizeof(why), "node %u is stopping", p->self);
	} else if (p->t.st != DST_IDLE) {
		st = MIGRATE_E_BUSY;
		snprintf(why, sizeof(why), "node %u is taking vCPU %u",
			 p->self, p->t.vcpu);
	} else if (p->node[m->vcpu] == p->self) {
		snprintf(why, sizeof(why), "vCPU %u already runs on node %u",
			 m->vcpu, p->self);
	} else if (m->fault == MIGRATE_FAULT_REFUSE_PREPARE) {
		snprintf(why, sizeof(why), "refused on purpose (x-fault "
			 "refuse-prepare)");
	}
	if (why[0]) {
		p->st.refused_in++;
		reply(out, sender, m->id, m->vcpu,
		      MIGRATE_STEP_PREPARED, st, why);
		return;
	}
	p->t.st = DST_PREPARED;
	p->t.id = m->id;
	p->t.vcpu = m->vcpu;
	p->t.source = sender;
	p->t.gen = m->gen;
	p->t.fault = m->fault;
	p->t.deadline = now + p->tmo.target_ns;
	reply(out, sender, m->id, m->vcpu,
	      MIGRATE_STEP_PREPARED, MIGRATE_OK, NULL);
}

static bool dst_match(const struct migrate_proto *p, unsigned sender,
		      const struct migrate_msg *m)
{
	return p->t.st != DST_IDLE && m->id == p->t.id &&
	       sender == p->t.source && m->vcpu == p->t.vcpu;
}

void migrate_proto__on_state(struct migrate_proto *p, uint64_t now,
			     unsigned sender, const struct migrate_msg *m,
			     struct migrate_acts *out)
{
	struct migrate_act *a;

	if (!dst_match(p, sender, m) || p->t.st != DST_PREPARED ||
	    m->gen != p->t.gen) {
		p->st.stale++;
		return;
	}
	p->t.st = DST_LOADING;
	p->t.addr_seq = m->addr_seq;
	p->t.addr = m->addr;
	a = push(out, MIGRATE_A_LOAD, m->vcpu, p->self);
	a->msg = *m;
}

void migrate_proto__loaded(struct migrate_proto *p, uint64_t now,
			   unsigned vcpu, bool ok, const char *why,
			   struct migrate_acts *out)
{
	unsigned src = p->t.source;
	uint64_t id = p->t.id;

	if (p->t.st != DST_LOADING || vcpu != p->t.vcpu) {
		p->st.stale++;
		return;
	}
	if (p->t.abort_pending) {
		dst_idle(p, out, true);
		return;
	}
	if (ok && p->t.fault == MIGRATE_FAULT_REFUSE_LOAD) {
		ok = false;
		why = "refused on purpose (x-fault refuse-load)";
	}
	if (!ok) {
		p->st.refused_in++;
		reply(out, src, id, vcpu, MIGRATE_STEP_LOADED,
		      MIGRATE_E_REFUSED, why ? why : "loading failed");
		dst_idle(p, out, true);
		return;
	}
	p->t.st = DST_LOADED;
	p->t.deadline = now + p->tmo.target_ns;
	if (p->t.fault != MIGRATE_FAULT_SILENT_LOAD)
		reply(out, src, id, vcpu, MIGRATE_STEP_LOADED, MIGRATE_OK,
		      NULL);
}

void migrate_proto__on_decide(struct migrate_proto *p, unsigned sender,
			      const struct migrate_msg *m,
			      struct migrate_acts *out)
{
	struct migrate_act *a;

	if (!dst_match(p, sender, m)) {
		p->st.stale++;
		return;
	}
	if (!m->commit) {
		if (p->t.st == DST_LOADING)
			p->t.abort_pending = true;
		else
			dst_idle(p, out, true);
		return;
	}
	if (p->t.st != DST_LOADED || m->gen != p->t.gen) {
		p->st.stale++;
		return;
	}
	p->node[m->vcpu] = (uint8_t)p->self;
	p->gen[m->vcpu] = p->t.gen;
	a = push(out, MIGRATE_A_ACTIVATE, m->vcpu, sender);
	a->msg.vcpu = m->vcpu;
	a->msg.node = (uint16_t)p->self;
	a->msg.gen = p->t.gen;
	a->msg.addr_seq = p->t.addr_seq;
	a->msg.addr = p->t.addr;
	a->reply = p->t.fault != MIGRATE_FAULT_SILENT_RESUME;
	a->type = MIGRATE_T_REPLY;
	a->msg_reply.id = m->id;
	a->msg_reply.vcpu = m->vcpu;
	a->msg_reply.step = MIGRATE_STEP_RESUMED;
	a->msg_reply.status = MIGRATE_OK;
	p->st.in++;
	dst_idle(p, out, false);
}

/* ---- deadlines and the end ---- */

void migrate_proto__roles_tick(struct migrate_proto *p, uint64_t now,
			       struct migrate_acts *out)
{
	if (p->s.st != SRC_IDLE && p->s.st != SRC_CAPTURING &&
	    now >= p->s.deadline) {
		switch (p->s.st) {
		case SRC_PREPARING:
			src_abort(p, out, MIGRATE_E_TIMEOUT, "node %u did not "
				  "answer within %llu ms", p->s.target,
				  MS(p->tmo.prepared_ns));
			break;
		case SRC_PARKING:
			src_abort(p, out, MIGRATE_E_TIMEOUT, "vCPU %u did not "
				  "stop within %llu ms", p->s.vcpu,
				  MS(p->tmo.park_ns));
			break;
		case SRC_SENT:
			src_abort(p, out, MIGRATE_E_TIMEOUT, "node %u did not "
				  "load vCPU %u within %llu ms", p->s.target,
				  p->s.vcpu, MS(p->tmo.loaded_ns));
			break;
		default: {
			struct migrate_msg *d = done(p, out, p->s.coord,
						     p->s.id, p->s.vcpu,
						     MIGRATE_E_UNCONFIRMED);

			set_text(d, "node %u took vCPU %u but did not confirm "
				 "within %llu ms that it runs there",
				 p->s.target, p->s.vcpu,
				 MS(p->tmo.resumed_ns));
			src_idle(p);
		}
		}
	}
	if ((p->t.st == DST_PREPARED || p->t.st == DST_LOADED) &&
	    now >= p->t.deadline)
		dst_idle(p, out, true);
}

void migrate_proto__roles_stop(struct migrate_proto *p,
			       struct migrate_acts *out)
{
	if (p->s.st == SRC_PARKING || p->s.st == SRC_CAPTURING ||
	    p->s.st == SRC_SENT)
		push(out, MIGRATE_A_RELEASE, p->s.vcpu, p->self);
	src_idle(p);
	if (p->t.st != DST_IDLE)
		dst_idle(p, out, true);
}
