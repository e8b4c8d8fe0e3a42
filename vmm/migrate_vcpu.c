/* vCPU migration, the per-vCPU side (see migrate.h): each vCPU's
 * interrupt gate, its held thread (capture on the source, load on the
 * target), and the switch of routing at the commit. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/irq_remote.h"
#include "vcpu/lapic.h"
#include "vcpu/vcpu.h"
#include "vcpu/vcpu_blob.h"
#include "vmm/cluster.h"
#include "vmm/io_forward.h"
#include "vmm/machine.h"
#include "vmm/migrate_priv.h"

/* An APIC address not acknowledged by every node within this is a node
 * in trouble: the migration gives up and the vCPU runs on. */
#define FLUSH_TIMEOUT_MS 2000

static struct vcpu *vcpu_of(struct migrate *mg, unsigned i)
{
	return mg->m->vcpus[i];
}

void migrate_vcpu__init_gate(struct migrate *mg, unsigned vcpu, bool here,
			     unsigned node)
{
	struct mslot *sl = &mg->slot[vcpu];

	pthread_mutex_init(&sl->gate, NULL);
	sl->state = here ? GATE_HERE : GATE_AWAY;
	sl->away_node = node;
}

void migrate_vcpu__free_gate(struct mslot *sl)
{
	pthread_mutex_destroy(&sl->gate);
	free(sl->queue);
	free(sl->blob);
	free(sl->out_blob);
}

/* ---- the gate ---- */

static void forward(struct migrate *mg, unsigned node, unsigned vcpu,
		    const struct apic_msg *msg, unsigned hops)
{
	struct migrate_msg f = { .vcpu = (uint16_t)vcpu,
				 .hops = (uint8_t)hops, .irq = *msg };

	if (hops > MIGRATE_MAX_HOPS || node == mg->self) {
		atomic_fetch_add(&mg->dropped, 1);
		if (!atomic_exchange(&mg->drop_logged, true))
			machine__log(mg->m, "migration: dropped an interrupt "
				     "for vCPU %u after %u hops", vcpu, hops);
		return;
	}
	f.irq.pad = 0;
	migrate__send(mg, node, MIGRATE_T_FORWARD, &f);
	atomic_fetch_add(&mg->forwarded, 1);
}

/* Equal messages merge (the LAPIC would merge them in IRR anyway). */
static void enqueue(struct migrate *mg, struct mslot *sl,
		    const struct apic_msg *msg)
{
	struct apic_msg m = *msg;

	m.pad = 0;
	for (unsigned i = 0; i < sl->nq; i++)
		if (!memcmp(&sl->queue[i], &m, sizeof(m)))
			return;
	if (sl->nq == sl->cap) {
		unsigned cap = sl->cap ? sl->cap * 2 : 16;
		struct apic_msg *q = cap <= MIGRATE_QUEUE_MAX ?
			realloc(sl->queue, cap * sizeof(*q)) : NULL;

		if (!q) {
			atomic_fetch_add(&mg->dropped, 1);
			return;
		}
		sl->queue = q;
		sl->cap = cap;
	}
	sl->queue[sl->nq++] = m;
	atomic_fetch_add(&mg->queued, 1);
}

/* Every delivery to vcpu on this node, whichever way it came. */
static void pass_gate(struct migrate *mg, unsigned vcpu,
		      const struct apic_msg *msg, unsigned hops)
{
	struct mslot *sl = &mg->slot[vcpu];

	pthread_mutex_lock(&sl->gate);
	switch (sl->state) {
	case GATE_HERE:
		lapic__accept(&vcpu_of(mg, vcpu)->lapic, msg);
		break;
	case GATE_SEALED:
		enqueue(mg, sl, msg);
		break;
	case GATE_AWAY:
		forward(mg, sl->away_node, vcpu, msg, hops + 1);
		break;
	}
	pthread_mutex_unlock(&sl->gate);
}

void migrate__deliver(struct migrate *mg, int vcpu, const struct apic_msg *msg)
{
	if (vcpu >= 0 && (unsigned)vcpu < mg->nr_vcpus)
		pass_gate(mg, (unsigned)vcpu, msg, 0);
}

int migrate__redirect(struct migrate *mg, int vcpu, const struct apic_msg *msg)
{
	if (!mg || vcpu < 0 || (unsigned)vcpu >= mg->nr_vcpus)
		return -1;
	pass_gate(mg, (unsigned)vcpu, msg, 0);
	return 0;
}

void migrate_vcpu__forwarded(struct migrate *mg, unsigned sender,
			     const struct migrate_msg *msg)
{
	pass_gate(mg, msg->vcpu, &msg->irq, msg->hops);
}

/* ---- the held vCPU thread ---- */

static void capture(struct migrate *mg, struct vcpu *v);
static void load(struct migrate *mg, struct vcpu *v, uint8_t *blob,
		 size_t len);

void migrate__vcpu_held(struct vcpu *v)
{
	struct machine *m = v->m;
	struct migrate *mg = m->migrate;
	struct mslot *sl;
	uint64_t t = vclock__now_ns();

	if (!mg) {
		/* Not a cluster: nothing ever holds a vCPU. */
		atomic_store(&v->held, false);
		return;
	}
	sl = &mg->slot[v->index];
	pthread_mutex_lock(&m->life_lock);
	sl->parked = true;
	sl->t_paused = t;
	while (!atomic_load(&m->stop)) {
		if (sl->report_park) {
			struct migrate_acts out = { 0 };

			sl->report_park = false;
			pthread_mutex_unlock(&m->life_lock);
			pthread_mutex_lock(&mg->lock);
			migrate_proto__parked(mg->proto, vclock__now_ns(),
					      v->index, t, &out);
			migrate__run(mg, &out);
			pthread_mutex_unlock(&mg->lock);
			pthread_mutex_lock(&m->life_lock);
		} else if (sl->do_capture) {
			sl->do_capture = false;
			pthread_mutex_unlock(&m->life_lock);
			capture(mg, v);
			pthread_mutex_lock(&m->life_lock);
		} else if (sl->do_load) {
			uint8_t *blob = sl->blob;
			size_t len = sl->blob_len;

			sl->do_load = false;
			sl->blob = NULL;
			pthread_mutex_unlock(&m->life_lock);
			load(mg, v, blob, len);
			pthread_mutex_lock(&m->life_lock);
		} else if (!atomic_load(&v->held)) {
			break;
		} else {
			pthread_cond_wait(&m->life_cond, &m->life_lock);
		}
	}
	sl->parked = false;
	pthread_mutex_unlock(&m->life_lock);
}

void migrate_vcpu__park(struct migrate *mg, unsigned vcpu)
{
	struct machine *m = mg->m;
	struct vcpu *v = vcpu_of(mg, vcpu);

	pthread_mutex_lock(&m->life_lock);
	mg->slot[vcpu].report_park = true;
	atomic_store(&v->held, true);
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
	vcpu__kick(v);
}

/* The held thread: set a flag for it and wake it. */
static void ask_thread(struct migrate *mg, bool *flag)
{
	pthread_mutex_lock(&mg->m->life_lock);
	*flag = true;
	pthread_cond_broadcast(&mg->m->life_cond);
	pthread_mutex_unlock(&mg->m->life_lock);
}

void migrate_vcpu__capture(struct migrate *mg, unsigned vcpu)
{
	ask_thread(mg, &mg->slot[vcpu].do_capture);
}

/* ExtINT (the 8259 through LINT0, virtual-wire mode) needs the 8259's
 * acknowledge on the vCPU's node: only node 0 can deliver it. */
static bool takes_extint(struct vcpu *v)
{
	const struct lapic_state *s = &v->lapic.s;
	bool r;

	pthread_mutex_lock(&v->lapic.lock);
	r = s->extint_pending ||
	    (!(s->lvt_lint0 & LAPIC_LVT_MASKED) &&
	     ((s->lvt_lint0 >> 8) & 7) == APIC_DM_EXTINT);
	pthread_mutex_unlock(&v->lapic.lock);
	return r;
}

static void captured(struct migrate *mg, struct vcpu *v, bool ok,
		     uint32_t bytes, uint32_t seq, const struct apic_addr *a,
		     const char *why)
{
	struct migrate_acts out = { 0 };

	pthread_mutex_lock(&mg->lock);
	migrate_proto__captured(mg->proto, vclock__now_ns(), v->index, ok,
				bytes, seq, a, why, &out);
	migrate__run(mg, &out);
	pthread_mutex_unlock(&mg->lock);
}

/* The source's vCPU thread, its vCPU parked: every node has its address,
 * its gate is sealed, its state is in a blob. */
static void capture(struct migrate *mg, struct vcpu *v)
{
	struct mslot *sl = &mg->slot[v->index];
	struct apic_addr addr;
	char err[160];
	uint8_t *blob = NULL;
	size_t len = 0;
	uint32_t seq;
	int r;

	r = irq_remote__flush(mg->m->irq_remote, (int)v->index,
			      FLUSH_TIMEOUT_MS, err, sizeof(err));
	if (r < 0) {
		captured(mg, v, false, 0, 0, NULL, err);
		return;
	}
	pthread_mutex_lock(&sl->gate);
	sl->state = GATE_SEALED;
	pthread_mutex_unlock(&sl->gate);
	if (takes_extint(v)) {
		captured(mg, v, false, 0, 0, NULL, "it takes the 8259's "
			 "interrupts (LINT0 in ExtINT mode), which only node 0 "
			 "can deliver");
		return;
	}
	if (irq_remote__vcpu_addr(mg->m->irq_remote, (int)v->index, &seq,
				  &addr) < 0) {
		captured(mg, v, false, 0, 0, NULL, "its APIC address changed "
			 "while it was stopped");
		return;
	}
	if (vcpu_blob__save(v, &blob, &len, err, sizeof(err)) < 0) {
		captured(mg, v, false, 0, 0, NULL, err);
		return;
	}
	pthread_mutex_lock(&mg->lock);
	free(sl->out_blob);
	sl->out_blob = blob;
	sl->out_len = len;
	pthread_mutex_unlock(&mg->lock);
	captured(mg, v, true, (uint32_t)(len + MIGRATE_STATE_HDR), seq, &addr,
		 NULL);
}

void migrate_vcpu__send_state(struct migrate *mg, const struct migrate_act *a)
{
	struct mslot *sl = &mg->slot[a->vcpu];
	uint8_t hdr[MIGRATE_STATE_HDR];
	struct migrate_msg h = a->msg;
	struct iovec iov[2];

	h.blob_len = (uint32_t)sl->out_len;
	if (sl->out_blob &&
	    migrate_msg__encode(MIGRATE_T_STATE, &h, hdr, sizeof(hdr)) > 0) {
		iov[0] = (struct iovec){ hdr, sizeof(hdr) };
		iov[1] = (struct iovec){ sl->out_blob, sl->out_len };
		/* The bulk channel: a page fetch never waits behind it. */
		cluster__send(mg->m->cluster, a->node, NET_CH_BULK,
			      MIGRATE_T_STATE, iov, 2);
	}
	free(sl->out_blob);
	sl->out_blob = NULL;
	sl->out_len = 0;
}

/* The LAPIC timer of a vCPU that does not run here must not fire here. */
static void stop_timer(struct vcpu *v)
{
	if (v->lapic.env.timer_arm)
		v->lapic.env.timer_arm(v->lapic.env.ctx, 0);
}

void migrate_vcpu__release(struct migrate *mg, unsigned vcpu)
{
	struct mslot *sl = &mg->slot[vcpu];
	struct vcpu *v = vcpu_of(mg, vcpu);
	struct machine *m = mg->m;

	pthread_mutex_lock(&sl->gate);
	for (unsigned i = 0; i < sl->nq; i++)
		lapic__accept(&v->lapic, &sl->queue[i]);
	sl->nq = 0;
	sl->state = GATE_HERE;
	pthread_mutex_unlock(&sl->gate);
	free(sl->out_blob);
	sl->out_blob = NULL;
	pthread_mutex_lock(&m->life_lock);
	sl->report_park = sl->do_capture = false;
	atomic_store(&v->held, false);
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
	vcpu__kick(v);
}

/* Routing on this node: vcpu runs on node (its address as it left). */
static void route(struct migrate *mg, unsigned vcpu, unsigned node,
		  uint32_t seq, const struct apic_addr *addr)
{
	struct machine *m = mg->m;

	irq_remote__set_node(m->irq_remote, (int)vcpu, node, seq, addr);
	io_forward__server_set_vcpu_node(m->io_server, (int)vcpu, node);
	__atomic_store_n(&m->layout.vcpu_node[vcpu], (uint8_t)node,
			 __ATOMIC_RELEASE);
}

/* A node > 0 paused by node 0 answers once every local vCPU parked; one
 * fewer local vCPU may complete that. */
static void local_vcpus(struct machine *m, int delta)
{
	bool ack;

	pthread_mutex_lock(&m->life_lock);
	m->nr_local_vcpus = (unsigned)((int)m->nr_local_vcpus + delta);
	ack = m->pause_ack && m->nr_parked >= m->nr_local_vcpus;
	if (ack)
		m->pause_ack = false;
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
	if (ack && m->cluster)
		cluster__pause_ack(m->cluster);
}

void migrate_vcpu__hand_over(struct migrate *mg, const struct migrate_act *a)
{
	struct mslot *sl = &mg->slot[a->vcpu];
	struct vcpu *v = vcpu_of(mg, a->vcpu);

	/* DECIDE first, then what queued, in order on one channel: the
	 * target switches before it reads them. */
	pthread_mutex_lock(&sl->gate);
	migrate__send(mg, a->node, a->type, &a->msg);
	for (unsigned i = 0; i < sl->nq; i++)
		forward(mg, a->node, a->vcpu, &sl->queue[i], 1);
	sl->nq = 0;
	sl->state = GATE_AWAY;
	sl->away_node = a->node;
	pthread_mutex_unlock(&sl->gate);
	route(mg, a->vcpu, a->node, a->msg.addr_seq, &a->msg.addr);
	stop_timer(v);
	local_vcpus(mg->m, -1);
}

void migrate_vcpu__load(struct migrate *mg, const struct migrate_act *a)
{
	struct mslot *sl = &mg->slot[a->vcpu];
	uint8_t *copy = malloc(a->msg.blob_len ? a->msg.blob_len : 1);
	struct machine *m = mg->m;

	if (copy)
		memcpy(copy, a->msg.blob, a->msg.blob_len);
	pthread_mutex_lock(&m->life_lock);
	free(sl->blob);
	sl->blob = copy;
	sl->blob_len = a->msg.blob_len;
	sl->do_load = true;
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
}

/* The target's held vCPU thread: the state into its own fd. */
static void load(struct migrate *mg, struct vcpu *v, uint8_t *blob,
		 size_t len)
{
	struct migrate_acts out = { 0 };
	struct vcpu_blob_extra x;
	char err[200] = "";
	bool ok = false;

	if (!blob)
		snprintf(err, sizeof(err), "out of memory");
	else if (vcpu_blob__load(v, blob, len, VCPU_BLOB_TSC_FOLLOW_HOST, &x,
				 err, sizeof(err)) == 0) {
		uint64_t now = vcpu__guest_tsc(v);

		/* Guest time must not go back (nodes of different hosts
		 * need synchronised TSCs, README). */
		if (now < x.guest_tsc)
			snprintf(err, sizeof(err), "the guest TSC here is %llu "
				 "cycles behind the source's",
				 (unsigned long long)(x.guest_tsc - now));
		else
			ok = true;
		if (!ok)
			stop_timer(v);
	}
	free(blob);
	pthread_mutex_lock(&mg->lock);
	migrate_proto__loaded(mg->proto, vclock__now_ns(), v->index, ok, err,
			      &out);
	migrate__run(mg, &out);
	pthread_mutex_unlock(&mg->lock);
}

void migrate_vcpu__discard(struct migrate *mg, unsigned vcpu)
{
	struct mslot *sl = &mg->slot[vcpu];
	struct machine *m = mg->m;

	pthread_mutex_lock(&m->life_lock);
	free(sl->blob);
	sl->blob = NULL;
	sl->do_load = false;
	pthread_mutex_unlock(&m->life_lock);
	stop_timer(vcpu_of(mg, vcpu));
}

void migrate_vcpu__activate(struct migrate *mg, const struct migrate_act *a)
{
	struct mslot *sl = &mg->slot[a->vcpu];
	struct vcpu *v = vcpu_of(mg, a->vcpu);
	struct machine *m = mg->m;
	uint64_t t0 = vclock__now_ns();
	struct migrate_msg place = a->msg, r = a->msg_reply;

	pthread_mutex_lock(&sl->gate);
	sl->state = GATE_HERE;
	pthread_mutex_unlock(&sl->gate);
	route(mg, a->vcpu, mg->self, a->msg.addr_seq, &a->msg.addr);
	/* Before the vCPU runs: its IPIs, EOIs and I/O requests reach each
	 * node after this, on the same channel. */
	for (unsigned n = 0; n < mg->nr_nodes; n++)
		if (n != mg->self)
			migrate__send(mg, n, MIGRATE_T_PLACE, &place);
	pthread_mutex_lock(&m->life_lock);
	m->nr_local_vcpus++;
	atomic_store(&v->held, false);
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
	vcpu__kick(v);
	if (a->reply) {
		r.value = vclock__now_ns() - t0;
		migrate__send(mg, a->node, a->type, &r);
	}
}

void migrate_vcpu__place(struct migrate *mg, const struct migrate_act *a)
{
	struct mslot *sl = &mg->slot[a->vcpu];

	pthread_mutex_lock(&sl->gate);
	if (sl->state == GATE_AWAY)
		sl->away_node = a->node;
	pthread_mutex_unlock(&sl->gate);
	route(mg, a->vcpu, a->node, a->msg.addr_seq,
	      a->msg.addr_seq ? &a->msg.addr : NULL);
}
