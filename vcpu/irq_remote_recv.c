/* Interrupt messages from other nodes: deliveries, APIC address updates
 * and their acks, level EOIs for the IOAPIC's node.  Every message is
 * checked against where its vCPUs run before it takes effect. */
#include "vcpu/irq_remote.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>

#include "vcpu/irq_remote_priv.h"
#include "vmm/errf.h"

static int on_deliver(struct irq_remote *ir, unsigned sender,
		      const uint8_t *p, size_t len, char *err, size_t errlen)
{
	struct apic_msg msg;
	const uint8_t *t;
	int ret = irq_remote__decode_deliver(p, len, ir->nr_vcpus, &msg, &t,
					     err, errlen);

	if (ret)
		return ret;
	if (msg.source >= 0 && !irq_remote__source_ok(ir, msg.source, sender)) {
		errf(err, errlen, "IRQ_DELIVER from vCPU %d, which runs "
		     "on node %u", msg.source,
		     irq_remote__node_of(ir, msg.source));
		return -EPROTO;
	}
	for (int i = 0; i < ir->nr_vcpus; i++) {
		if ((t[i / 8] >> (i % 8) & 1) && !irq_remote__is_local(ir, i) &&
		    !ir->ops.redirect) {
			errf(err, errlen, "IRQ_DELIVER to vCPU %d, which "
			     "runs on node %u", i,
			     irq_remote__node_of(ir, i));
			return -EPROTO;
		}
	}
	atomic_fetch_add(&ir->st.deliver_in, 1);
	/* A target that moved away (the sender had not heard yet, or the
	 * move happened meanwhile) is chased to its new node. */
	for (int i = 0; i < ir->nr_vcpus; i++) {
		if (!(t[i / 8] >> (i % 8) & 1) ||
		    irq_router__deliver_local(ir->router, i, &msg) == 0)
			continue;
		if (ir->ops.redirect &&
		    ir->ops.redirect(ir->ops.ctx, i, &msg) == 0)
			atomic_fetch_add(&ir->st.redirected, 1);
	}
	return 0;
}

static int on_addr(struct irq_remote *ir, unsigned sender, const uint8_t *p,
		   size_t len, char *err, size_t errlen)
{
	struct apic_addr a;
	uint8_t ack[IRQ_REMOTE_ACK_SIZE];
	uint32_t seq;
	int vcpu, ret = irq_remote__decode_addr(p, len, &vcpu, &seq, &a, err,
						errlen);

	if (ret)
		return ret;
	if (vcpu >= ir->nr_vcpus || irq_remote__node_of(ir, vcpu) != sender) {
		errf(err, errlen, "IRQ_ADDR_UPDATE for vCPU %d, which "
		     "does not run on node %u", vcpu, sender);
		return -EPROTO;
	}
	pthread_mutex_lock(&ir->lock);
	if (seq < ir->v[vcpu].seen_seq) {
		pthread_mutex_unlock(&ir->lock);
		errf(err, errlen, "IRQ_ADDR_UPDATE for vCPU %d went back "
		     "from seq %u to %u", vcpu, ir->v[vcpu].seen_seq, seq);
		return -EPROTO;
	}
	ir->v[vcpu].seen_seq = seq;
	/* Under ir->lock so that updates and seq move together. */
	irq_router__update_addr(ir->router, vcpu, &a);
	pthread_cond_broadcast(&ir->cond);
	pthread_mutex_unlock(&ir->lock);
	atomic_fetch_add(&ir->st.addr_in, 1);
	irq_remote__encode_ack(ack, sizeof(ack), vcpu, seq);
	irq_remote__send_to(ir, sender, IRQ_REMOTE_T_ADDR_ACK, ack,
			    sizeof(ack));
	return 0;
}

static int on_ack(struct irq_remote *ir, unsigned sender, const uint8_t *p,
		  size_t len, char *err, size_t errlen)
{
	uint32_t seq;
	int vcpu, ret = irq_remote__decode_ack(p, len, &vcpu, &seq, err,
					       errlen);

	if (ret)
		return ret;
	if (vcpu >= ir->nr_vcpus || !irq_remote__is_local(ir, vcpu)) {
		errf(err, errlen, "IRQ_ADDR_ACK for vCPU %d, which does "
		     "not run here", vcpu);
		return -EPROTO;
	}
	pthread_mutex_lock(&ir->lock);
	if (seq > ir->v[vcpu].sent_seq || seq < ir->v[vcpu].acked[sender]) {
		pthread_mutex_unlock(&ir->lock);
		errf(err, errlen, "IRQ_ADDR_ACK for vCPU %d seq %u, which "
		     "was not sent (or was acked before)", vcpu, seq);
		return -EPROTO;
	}
	ir->v[vcpu].acked[sender] = seq;
	/* Counted before the waiter wakes: its stats then include the ack. */
	atomic_fetch_add(&ir->st.acks_in, 1);
	pthread_cond_broadcast(&ir->cond);
	pthread_mutex_unlock(&ir->lock);
	return 0;
}

static int on_eoi(struct irq_remote *ir, unsigned sender, const uint8_t *p,
		  size_t len, char *err, size_t errlen)
{
	uint8_t vector;
	int vcpu, ret = irq_remote__decode_eoi(p, len, &vcpu, &vector, err,
					       errlen);

	if (ret)
		return ret;
	if (ir->self != ir->ioapic_node || vcpu >= ir->nr_vcpus ||
	    !irq_remote__source_ok(ir, vcpu, sender)) {
		errf(err, errlen, "IRQ_EOI from vCPU %d (node %u) to a "
		     "node without the IOAPIC", vcpu, sender);
		return -EPROTO;
	}
	atomic_fetch_add(&ir->st.eoi_in, 1);
	if (ir->ops.eoi_level)
		ir->ops.eoi_level(ir->ops.ctx, vector);
	return 0;
}

int irq_remote__handle(struct irq_remote *ir, unsigned sender, unsigned type,
		       const void *payload, size_t len)
{
	char err[160], what[200];
	int ret;

	if (!ir)
		return -EINVAL;
	err[0] = 0;
	if (sender >= ir->nr_nodes || sender == ir->self) {
		snprintf(err, sizeof(err), "irq message from node %u", sender);
		ret = -EPROTO;
	} else if (!payload && len) {
		ret = -EINVAL;
	} else if (type == IRQ_REMOTE_T_DELIVER) {
		ret = on_deliver(ir, sender, payload, len, err, sizeof(err));
	} else if (type == IRQ_REMOTE_T_ADDR_UPDATE) {
		ret = on_addr(ir, sender, payload, len, err, sizeof(err));
	} else if (type == IRQ_REMOTE_T_ADDR_ACK) {
		ret = on_ack(ir, sender, payload, len, err, sizeof(err));
	} else if (type == IRQ_REMOTE_T_EOI) {
		ret = on_eoi(ir, sender, payload, len, err, sizeof(err));
	} else {
		snprintf(err, sizeof(err), "unknown irq message type %u", type);
		ret = -EPROTO;
	}
	if (ret) {
		atomic_fetch_add(&ir->st.rejected, 1);
		snprintf(what, sizeof(what), "node %u: %s", sender,
			 err[0] ? err : "invalid irq message");
		irq_remote__report(ir, sender < ir->nr_nodes ? sender :
				   ir->self, what);
		return -EPROTO;
	}
	return 0;
}
