/* Interrupts between nodes (see irq_remote.h for the protocol).  Lock
 * order: a LAPIC lock may be held when ir->lock is taken (local_addr), and
 * ir->lock may be held when the router's leaf lock is taken; nothing here
 * sends or calls a hook with ir->lock held. */
#include "vcpu/irq_remote.h"
#include "vcpu/irq_remote_priv.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/errf.h"
#include "vmm/vtimer.h"


static int count_bits(const uint8_t *b, size_t n)
{
	int c = 0;

	for (size_t i = 0; i < n; i++)
		c += __builtin_popcount(b[i]);
	return c;
}

/* ---- sending ---- */

void irq_remote__report(struct irq_remote *ir, unsigned node,
			const char *what)
{
	if (ir->ops.error)
		ir->ops.error(ir->ops.ctx, node, what);
}

int irq_remote__send_to(struct irq_remote *ir, unsigned node, unsigned type,
			const void *buf, size_t len)
{
	char what[96];

	if (ir->ops.send(ir->ops.ctx, node, type, buf, len) == 0)
		return 0;
	atomic_fetch_add(&ir->st.send_failed, 1);
	snprintf(what, sizeof(what), "sending irq message %u to node %u failed",
		 type, node);
	irq_remote__report(ir, node, what);
	return -1;
}

/* The router's forward hook. */
static int forward(void *ctx, unsigned node, const struct apic_msg *msg,
		   const uint8_t *targets, int nr_vcpus)
{
	struct irq_remote *ir = ctx;
	uint8_t small[IRQ_REMOTE_DELIVER_SIZE(DELIVER_STACK_VCPUS)], *buf = small;
	int len, ret = -1;

	/* ExtINT needs the 8259's acknowledge cycle on the vCPU's node; only
	 * the BSP (node 0) takes ExtINT in practice. */
	if (msg->delivery == APIC_DM_EXTINT) {
		atomic_fetch_add(&ir->st.extint_dropped, 1);
		return -1;
	}
	if (nr_vcpus > DELIVER_STACK_VCPUS &&
	    !(buf = malloc(IRQ_REMOTE_DELIVER_SIZE(nr_vcpus))))
		return -1;
	len = irq_remote__encode_deliver(buf, IRQ_REMOTE_DELIVER_SIZE(nr_vcpus),
					 msg, targets, nr_vcpus);
	if (len > 0 && irq_remote__send_to(ir, node, IRQ_REMOTE_T_DELIVER,
					   buf, (size_t)len) == 0) {
		atomic_fetch_add(&ir->st.deliver_out, 1);
		ret = count_bits(targets, IRQ_TARGETS_BYTES(nr_vcpus));
	}
	if (buf != small)
		free(buf);
	return ret;
}

/* ---- setup ---- */

unsigned irq_remote__node_of(const struct irq_remote *ir, int vcpu)
{
	return __atomic_load_n(&ir->node[vcpu], __ATOMIC_ACQUIRE);
}

bool irq_remote__is_local(const struct irq_remote *ir, int vcpu)
{
	return irq_remote__node_of(ir, vcpu) == ir->self;
}

bool irq_remote__source_ok(const struct irq_remote *ir, int vcpu,
			   unsigned sender)
{
	return irq_remote__node_of(ir, vcpu) == sender ||
	       __atomic_load_n(&ir->prev_node[vcpu], __ATOMIC_ACQUIRE) == sender;
}

struct irq_remote *irq_remote__new(const struct irq_remote_config *cfg)
{
	struct irq_remote *ir;
	pthread_condattr_t ca;
	int n;

	if (!cfg || !cfg->router || !cfg->vcpu_node || !cfg->ops.send ||
	    cfg->nr_nodes == 0 || cfg->nr_nodes > 256 ||
	    cfg->self >= cfg->nr_nodes || cfg->ioapic_node >= cfg->nr_nodes)
		return NULL;
	n = irq_router__nr_vcpus(cfg->router);
	if (n <= 0 || n > IRQ_REMOTE_MAX_VCPUS)
		return NULL;
	for (int i = 0; i < n; i++)
		if (cfg->vcpu_node[i] >= cfg->nr_nodes)
			return NULL;
	ir = calloc(1, sizeof(*ir));
	if (!ir)
		return NULL;
	ir->router = cfg->router;
	ir->self = cfg->self;
	ir->nr_nodes = cfg->nr_nodes;
	ir->ioapic_node = cfg->ioapic_node;
	ir->nr_vcpus = n;
	ir->ops = cfg->ops;
	ir->node = malloc((size_t)n);
	ir->prev_node = malloc((size_t)n);
	ir->v = calloc((size_t)n, sizeof(*ir->v));
	if (!ir->node || !ir->prev_node || !ir->v)
		goto fail;
	memcpy(ir->node, cfg->vcpu_node, (size_t)n);
	memcpy(ir->prev_node, cfg->vcpu_node, (size_t)n);
	/* Any vCPU may come to run here (migration). */
	for (int i = 0; i < n; i++) {
		atomic_init(&ir->v[i].dirty, false);
		if (!(ir->v[i].acked = calloc(ir->nr_nodes, sizeof(uint32_t))))
			goto fail;
	}
	pthread_mutex_init(&ir->lock, NULL);
	pthread_mutex_init(&ir->flush_lock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&ir->cond, &ca);
	pthread_condattr_destroy(&ca);
	if (irq_router__set_placement(ir->router, ir->self, ir->node, forward,
				      ir) < 0) {
		irq_remote__free(ir);
		return NULL;
	}
	return ir;
fail:
	if (ir->v)
		for (int i = 0; i < n; i++)
			free(ir->v[i].acked);
	free(ir->v);
	free(ir->node);
	free(ir->prev_node);
	free(ir);
	return NULL;
}

void irq_remote__free(struct irq_remote *ir)
{
	if (!ir)
		return;
	pthread_cond_destroy(&ir->cond);
	pthread_mutex_destroy(&ir->flush_lock);
	pthread_mutex_destroy(&ir->lock);
	for (int i = 0; i < ir->nr_vcpus; i++)
		free(ir->v[i].acked);
	free(ir->v);
	free(ir->node);
	free(ir->prev_node);
	free(ir);
}

/* ---- local address changes ---- */

static bool same_addressing(const struct apic_addr *a,
			    const struct apic_addr *b)
{
	return a->apic_id == b->apic_id && a->ldr == b->ldr &&
	       a->dfr_flat == b->dfr_flat && a->x2apic == b->x2apic &&
	       a->enabled == b->enabled;
}

void irq_remote__local_addr(struct irq_remote *ir, int vcpu,
			    const struct apic_addr *addr)
{
	struct vstate *v;

	if (!ir || !addr || vcpu < 0 || vcpu >= ir->nr_vcpus ||
	    !irq_remote__is_local(ir, vcpu))
		return;
	v = &ir->v[vcpu];
	/* The PPR changes at every interrupt and EOI: it stays local (the
	 * lowest-priority rule does not compare remote PPRs). */
	irq_router__update_addr(ir->router, vcpu, addr);
	pthread_mutex_lock(&ir->lock);
	if (!v->have_latest || !same_addressing(&v->latest, addr)) {
		v->seq++;
		v->pending = true;
		atomic_store(&v->dirty, true);
	}
	v->latest = *addr;
	v->have_latest = true;
	pthread_mutex_unlock(&ir->lock);
}

static struct timespec deadline_after(unsigned ms)
{
	struct timespec ts;

	vclock__deadline(&ts, CLOCK_MONOTONIC, ms);
	return ts;
}

/* First node that has not acked seq of vcpu, or -1; ir->lock held. */
static int unacked_node(const struct irq_remote *ir, int vcpu, uint32_t seq)
{
	for (unsigned n = 0; n < ir->nr_nodes; n++)
		if (n != ir->self && ir->v[vcpu].acked[n] < seq)
			return (int)n;
	return -1;
}

static int send_pending(struct irq_remote *ir, int vcpu, uint32_t *sent,
			char *err, size_t errlen)
{
	struct vstate *v = &ir->v[vcpu];
	uint8_t buf[IRQ_REMOTE_ADDR_SIZE];
	int ret = 0;

	pthread_mutex_lock(&ir->lock);
	*sent = v->sent_seq;
	if (!v->pending) {
		pthread_mutex_unlock(&ir->lock);
		return 0;
	}
	v->pending = false;
	v->sent_seq = *sent = v->seq;
	irq_remote__encode_addr(buf, sizeof(buf), vcpu, v->seq, &v->latest);
	pthread_mutex_unlock(&ir->lock);
	for (unsigned n = 0; n < ir->nr_nodes; n++) {
		if (n == ir->self)
			continue;
		if (irq_remote__send_to(ir, n, IRQ_REMOTE_T_ADDR_UPDATE, buf,
					sizeof(buf))) {
			errf(err, errlen, "sending vCPU %d's APIC address "
			     "to node %u failed", vcpu, n);
			ret = -EIO;
		} else {
			atomic_fetch_add(&ir->st.addr_out, 1);
		}
	}
	return ret;
}

int irq_remote__flush(struct irq_remote *ir, int vcpu, unsigned timeout_ms,
		      char *err, size_t errlen)
{
	struct timespec until;
	uint32_t sent;
	int ret, missing;

	if (!ir || vcpu < 0 || vcpu >= ir->nr_vcpus ||
	    !irq_remote__is_local(ir, vcpu))
		return -EINVAL;
	if (!atomic_load(&ir->v[vcpu].dirty))
		return 0;
	pthread_mutex_lock(&ir->flush_lock);
	ret = send_pending(ir, vcpu, &sent, err, errlen);
	pthread_mutex_unlock(&ir->flush_lock);
	if (ret)
		return ret;
	pthread_mutex_lock(&ir->lock);
	until = deadline_after(timeout_ms);
	while (timeout_ms && (missing = unacked_node(ir, vcpu, sent)) >= 0) {
		if (ir->aborted) {
			pthread_mutex_unlock(&ir->lock);
			errf(err, errlen, "stopping");
			return -ECANCELED;
		}
		if (pthread_cond_timedwait(&ir->cond, &ir->lock, &until) ==
			    ETIMEDOUT &&
		    (missing = unacked_node(ir, vcpu, sent)) >= 0) {
			pthread_mutex_unlock(&ir->lock);
			errf(err, errlen, "node %d did not acknowledge vCPU "
			     "%d's APIC address within %u ms", missing,
			     vcpu, timeout_ms);
			return -ETIMEDOUT;
		}
	}
	if (!ir->v[vcpu].pending)
		atomic_store(&ir->v[vcpu].dirty, false);
	pthread_mutex_unlock(&ir->lock);
	return 0;
}

int irq_remote__announce(struct irq_remote *ir, char *err, size_t errlen)
{
	int ret = 0;

	if (!ir)
		return -EINVAL;
	for (int i = 0; i < ir->nr_vcpus; i++) {
		if (!irq_remote__is_local(ir, i))
			continue;
		pthread_mutex_lock(&ir->lock);
		if (!ir->v[i].have_latest) {
			pthread_mutex_unlock(&ir->lock);
			errf(err, errlen, "vCPU %d has no APIC address yet",
			     i);
			return -EIO;
		}
		/* The same seq again: receivers re-apply it and ack. */
		ir->v[i].pending = true;
		atomic_store(&ir->v[i].dirty, true);
		pthread_mutex_unlock(&ir->lock);
		if (irq_remote__flush(ir, i, 0, err, errlen) < 0)
			ret = -EIO;
	}
	return ret;
}

int irq_remote__wait_known(struct irq_remote *ir, unsigned timeout_ms,
			   char *err, size_t errlen)
{
	struct timespec until = deadline_after(timeout_ms);
	int missing;

	if (!ir)
		return -EINVAL;
	pthread_mutex_lock(&ir->lock);
	for (;;) {
		missing = -1;
		for (int i = 0; i < ir->nr_vcpus && missing < 0; i++)
			if (!irq_remote__is_local(ir, i) && !ir->v[i].seen_seq)
				missing = i;
		if (missing < 0 || ir->aborted ||
		    pthread_cond_timedwait(&ir->cond, &ir->lock, &until) ==
			    ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&ir->lock);
	if (missing >= 0) {
		errf(err, errlen, "no APIC address for vCPU %d from node "
		     "%u within %u ms", missing,
		     irq_remote__node_of(ir, missing),
		     timeout_ms);
		return -ETIMEDOUT;
	}
	return 0;
}

void irq_remote__abort(struct irq_remote *ir)
{
	if (!ir)
		return;
	pthread_mutex_lock(&ir->lock);
	ir->aborted = true;
	pthread_cond_broadcast(&ir->cond);
	pthread_mutex_unlock(&ir->lock);
}

void irq_remote__eoi_level(struct irq_remote *ir, int vcpu, uint8_t vector)
{
	uint8_t buf[IRQ_REMOTE_EOI_SIZE];

	if (!ir || vcpu < 0 || vcpu >= ir->nr_vcpus)
		return;
	if (ir->self == ir->ioapic_node) {
		if (ir->ops.eoi_level)
			ir->ops.eoi_level(ir->ops.ctx, vector);
		return;
	}
	if (irq_remote__encode_eoi(buf, sizeof(buf), vcpu, vector) > 0 &&
	    irq_remote__send_to(ir, ir->ioapic_node, IRQ_REMOTE_T_EOI, buf,
				sizeof(buf)) == 0)
		atomic_fetch_add(&ir->st.eoi_out, 1);
}

void irq_remote__get_stats(struct irq_remote *ir, struct irq_remote_stats *out)
{
	if (!ir || !out)
		return;
	*out = (struct irq_remote_stats){
		.deliver_out = atomic_load(&ir->st.deliver_out),
		.deliver_in = atomic_load(&ir->st.deliver_in),
		.addr_out = atomic_load(&ir->st.addr_out),
		.addr_in = atomic_load(&ir->st.addr_in),
		.acks_in = atomic_load(&ir->st.acks_in),
		.eoi_out = atomic_load(&ir->st.eoi_out),
		.eoi_in = atomic_load(&ir->st.eoi_in),
		.rejected = atomic_load(&ir->st.rejected),
		.send_failed = atomic_load(&ir->st.send_failed),
		.extint_dropped = atomic_load(&ir->st.extint_dropped),
		.redirected = atomic_load(&ir->st.redirected),
	};
}

/* ---- migration ---- */

int irq_remote__set_node(struct irq_remote *ir, int vcpu, unsigned node,
			 uint32_t seq, const struct apic_addr *addr)
{
	struct vstate *v;
	unsigned old;

	if (!ir || vcpu < 0 || vcpu >= ir->nr_vcpus || node >= ir->nr_nodes)
		return -1;
	v = &ir->v[vcpu];
	pthread_mutex_lock(&ir->lock);
	old = irq_remote__node_of(ir, vcpu);
	if (old == node) {
		pthread_mutex_unlock(&ir->lock);
		return 0;
	}
	if (node == ir->self) {
		/* Continues the sequence the other nodes saw from its last
		 * node, which flushed it before letting go. */
		if (seq && addr) {
			v->latest = *addr;
			v->have_latest = true;
		}
		v->seq = v->sent_seq = seq;
		for (unsigned n = 0; n < ir->nr_nodes; n++)
			v->acked[n] = seq;
		v->pending = false;
		atomic_store(&v->dirty, false);
	} else {
		if (old == ir->self && v->seq > v->seen_seq)
			v->seen_seq = v->seq;
		if (seq > v->seen_seq)
			v->seen_seq = seq;
	}
	__atomic_store_n(&ir->prev_node[vcpu], (uint8_t)old, __ATOMIC_RELEASE);
	__atomic_store_n(&ir->node[vcpu], (uint8_t)node, __ATOMIC_RELEASE);
	if (node == ir->self && seq && addr)
		irq_router__update_addr(ir->router, vcpu, addr);
	irq_router__set_node(ir->router, vcpu, node);
	pthread_mutex_unlock(&ir->lock);
	return 0;
}

int irq_remote__vcpu_addr(struct irq_remote *ir, int vcpu, uint32_t *seq,
			  struct apic_addr *addr)
{
	int ret = -1;

	if (!ir || vcpu < 0 || vcpu >= ir->nr_vcpus)
		return -1;
	pthread_mutex_lock(&ir->lock);
	if (irq_remote__is_local(ir, vcpu) && ir->v[vcpu].have_latest &&
	    !ir->v[vcpu].pending) {
		*seq = ir->v[vcpu].seq;
		*addr = ir->v[vcpu].latest;
		ret = 0;
	}
	pthread_mutex_unlock(&ir->lock);
	return ret;
}
