/* vCPU migration's protocol wiring (see migrate.h): messages in and out,
 * deadlines, the coordinator's request and wait. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vcpu/vcpu.h"
#include "vmm/cluster.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/migrate_priv.h"

/* The coordinator looks at the VM's life this often while it waits. */
#define WAIT_POLL_NS 20000000ull

static void arm_timer(struct migrate *mg)
{
	uint64_t d = migrate_proto__next_deadline(mg->proto);

	if (d)
		vtimer__arm(&mg->timer, d);
	else
		vtimer__cancel(&mg->timer);
}

static void on_timer(void *opaque)
{
	struct migrate *mg = opaque;
	struct migrate_acts out = { 0 };

	pthread_mutex_lock(&mg->lock);
	migrate_proto__tick(mg->proto, vclock__now_ns(), &out);
	migrate__run(mg, &out);
	pthread_mutex_unlock(&mg->lock);
}

struct migrate *migrate__new(struct machine *m)
{
	struct migrate_proto_config pc = {
		.self = m->node_self,
		.nr_nodes = m->layout.nr_nodes,
		.nr_vcpus = m->nr_vcpus,
		.coordinator = 0,
		.vcpu_node = m->layout.vcpu_node,
	};
	struct migrate *mg = calloc(1, sizeof(*mg));
	pthread_condattr_t ca;

	if (!mg)
		return NULL;
	migrate_timeouts__default(&pc.tmo);
	mg->m = m;
	mg->self = m->node_self;
	mg->nr_nodes = m->layout.nr_nodes;
	mg->nr_vcpus = m->nr_vcpus;
	mg->proto = migrate_proto__new(&pc);
	mg->slot = calloc(m->nr_vcpus, sizeof(*mg->slot));
	if (!mg->proto || !mg->slot) {
		migrate_proto__free(mg->proto);
		free(mg->slot);
		free(mg);
		return NULL;
	}
	pthread_mutex_init(&mg->lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&mg->cond, &ca);
	pthread_condattr_destroy(&ca);
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		migrate_vcpu__init_gate(mg, i, machine__vcpu_is_local(m, i),
					m->layout.vcpu_node[i]);
	vtimer__init(&mg->timer, m->timers, on_timer, mg);
	mg->trace = getenv("KRG_MIGRATE_TRACE") != NULL;
	return mg;
}

void migrate__free(struct migrate *mg)
{
	if (!mg)
		return;
	vtimer__cancel(&mg->timer);
	for (unsigned i = 0; i < mg->nr_vcpus; i++)
		migrate_vcpu__free_gate(&mg->slot[i]);
	free(mg->slot);
	migrate_proto__free(mg->proto);
	pthread_cond_destroy(&mg->cond);
	pthread_mutex_destroy(&mg->lock);
	free(mg);
}

static void recv_locked(struct migrate *mg, unsigned sender, unsigned type,
			const struct migrate_msg *msg)
{
	struct migrate_acts out = { 0 };

	migrate_proto__recv(mg->proto, vclock__now_ns(), sender, type, msg,
			    &out);
	migrate__run(mg, &out);
}

void migrate__send(struct migrate *mg, unsigned node, unsigned type,
		   const struct migrate_msg *msg)
{
	uint8_t buf[MIGRATE_DONE_MIN + MIGRATE_TEXT_MAX];
	struct iovec iov;
	int len;

	if (node == mg->self) {
		recv_locked(mg, node, type, msg);
		return;
	}
	len = migrate_msg__encode(type, msg, buf, sizeof(buf));
	if (len < 0)
		return;
	iov = (struct iovec){ buf, (size_t)len };
	/* A failed send means a peer going down: the VM stops, and the
	 * deadlines end whatever waited for an answer. */
	cluster__send(mg->m->cluster, node, NET_CH_FAST, type, &iov, 1);
}

static void result(struct migrate *mg, const struct migrate_msg *m)
{
	mg->result = *m;
	mg->have_result = true;
	if (m->status == MIGRATE_OK) {
		mg->last_down_ns = m->value;
		if (m->value > mg->max_down_ns)
			mg->max_down_ns = m->value;
	}
	pthread_cond_broadcast(&mg->cond);
}

static const char *const act_names[] = {
	[MIGRATE_A_SEND] = "send", [MIGRATE_A_PARK] = "park",
	[MIGRATE_A_CAPTURE] = "capture", [MIGRATE_A_SEND_STATE] = "state",
	[MIGRATE_A_RELEASE] = "release", [MIGRATE_A_HAND_OVER] = "hand over",
	[MIGRATE_A_LOAD] = "load", [MIGRATE_A_DISCARD] = "discard",
	[MIGRATE_A_ACTIVATE] = "activate", [MIGRATE_A_PLACE] = "place",
	[MIGRATE_A_RESULT] = "result",
};

void migrate__run(struct migrate *mg, struct migrate_acts *out)
{
	for (unsigned i = 0; i < out->n; i++) {
		const struct migrate_act *a = &out->a[i];

		if (mg->trace)
			machine__log(mg->m, "migrate: %llu us: %s vCPU %u node "
				     "%u type %u", (unsigned long long)
				     (vclock__now_ns() / 1000 % 100000000),
				     act_names[a->kind], a->vcpu, a->node,
				     a->type);

		switch (a->kind) {
		case MIGRATE_A_SEND:
			migrate__send(mg, a->node, a->type, &a->msg);
			break;
		case MIGRATE_A_PARK:
			migrate_vcpu__park(mg, a->vcpu);
			break;
		case MIGRATE_A_CAPTURE:
			migrate_vcpu__capture(mg, a->vcpu);
			break;
		case MIGRATE_A_SEND_STATE:
			migrate_vcpu__send_state(mg, a);
			break;
		case MIGRATE_A_RELEASE:
			migrate_vcpu__release(mg, a->vcpu);
			break;
		case MIGRATE_A_HAND_OVER:
			migrate_vcpu__hand_over(mg, a);
			break;
		case MIGRATE_A_LOAD:
			migrate_vcpu__load(mg, a);
			break;
		case MIGRATE_A_DISCARD:
			migrate_vcpu__discard(mg, a->vcpu);
			break;
		case MIGRATE_A_ACTIVATE:
			migrate_vcpu__activate(mg, a);
			break;
		case MIGRATE_A_PLACE:
			migrate_vcpu__place(mg, a);
			break;
		case MIGRATE_A_RESULT:
			result(mg, &a->msg);
			break;
		}
	}
	arm_timer(mg);
}

void migrate__receive(struct machine *m, unsigned sender, unsigned type,
		      const void *payload, uint32_t len)
{
	struct migrate *mg = m->migrate;
	struct migrate_msg msg;
	char err[160];

	if (!mg)
		return;
	if (migrate_msg__decode(type, payload, len, mg->nr_vcpus,
				mg->nr_nodes, &msg, err, sizeof(err)) < 0) {
		/* A peer that breaks the protocol is not trusted further. */
		machine__request_stop(m, KRG_EXIT_FAILURE,
				      "node %u: migration message %u: %s",
				      sender, type, err);
		return;
	}
	if (type == MIGRATE_T_FORWARD) {
		migrate_vcpu__forwarded(mg, sender, &msg);
		return;
	}
	pthread_mutex_lock(&mg->lock);
	recv_locked(mg, sender, type, &msg);
	pthread_mutex_unlock(&mg->lock);
}

int migrate__vcpu(struct machine *m, unsigned vcpu, unsigned node,
		  unsigned fault, struct migrate_msg *res)
{
	struct migrate *mg = m->migrate;
	struct migrate_acts out = { 0 };
	int r;

	pthread_mutex_lock(&mg->lock);
	mg->have_result = false;
	r = migrate_proto__request(mg->proto, vclock__now_ns(), vcpu, node,
				   fault, res, &out);
	migrate__run(mg, &out);
	while (r == 0 && !mg->have_result) {
		uint64_t t = vclock__now_ns() + WAIT_POLL_NS;
		struct timespec ts = { (time_t)(t / 1000000000ull),
				       (long)(t % 1000000000ull) };

		/* A stopping VM detaches the control socket only once this
		 * command returns: look at it here, not from the stop path. */
		if (atomic_load(&m->stop)) {
			struct migrate_acts stop = { 0 };

			migrate_proto__stopping(mg->proto, &stop);
			migrate__run(mg, &stop);
			break;
		}
		pthread_cond_timedwait(&mg->cond, &mg->lock, &ts);
	}
	if (r == 0) {
		*res = mg->result;
		if (res->status == MIGRATE_E_STOPPING) {
			size_t n = strlen(res->text);

			pthread_mutex_lock(&m->life_lock);
			if (m->stop_reason[0])
				snprintf(res->text + n, sizeof(res->text) - n,
					 " (%s)", m->stop_reason);
			pthread_mutex_unlock(&m->life_lock);
		}
		r = res->status == MIGRATE_OK ? 0 : -1;
	}
	pthread_mutex_unlock(&mg->lock);
	/* Its disk queues follow it (they worked from the old node too: the
	 * interrupts are routed; this keeps a request's trip local). */
	if ((r == 0 || res->status == MIGRATE_E_UNCONFIRMED) &&
	    res->node != res->from &&
	    machine__blk_queues_vcpu_moved(m, vcpu, res->node) < 0)
		machine__log(m, "migration: vCPU %u's disk queues did not "
			     "follow it to node %u", vcpu, res->node);
	return r;
}

void migrate__stats(struct migrate *mg, struct migrate_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!mg)
		return;
	pthread_mutex_lock(&mg->lock);
	migrate_proto__stats(mg->proto, &out->proto);
	out->last_down_ns = mg->last_down_ns;
	out->max_down_ns = mg->max_down_ns;
	pthread_mutex_unlock(&mg->lock);
	out->forwarded = atomic_load(&mg->forwarded);
	out->queued = atomic_load(&mg->queued);
	out->dropped = atomic_load(&mg->dropped);
}
