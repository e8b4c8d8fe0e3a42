/* The one routing function: given an interrupt message, find the target
 * vCPU(s) and hand the message to each.  Matching uses only the replicated
 * addressing facts (struct apic_addr), never the LAPIC itself, so a vCPU
 * running on another node is matched exactly like a local one; only the
 * hand-over differs (the forward hook instead of the deliver hook). */
#ifndef KRG_VCPU_IRQ_ROUTE_H
#define KRG_VCPU_IRQ_ROUTE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpu/apic.h"

typedef void (*irq_deliver_fn)(void *ctx, int vcpu_index,
			       const struct apic_msg *msg);

/* Hands msg to the vCPUs of one other node: targets is a bitmap over all
 * nr_vcpus vCPUs ((nr_vcpus + 7) / 8 bytes, bit i of byte i / 8), holding
 * only vCPUs placed on node.  Returns how many targets it took on (the
 * number of bits), or -1 if the message could not be sent.  Called with
 * no router lock held, but possibly under the IOAPIC's lock (the IOAPIC
 * sends under it): it must not wait for an answer. */
typedef int (*irq_forward_fn)(void *ctx, unsigned node,
			      const struct apic_msg *msg,
			      const uint8_t *targets, int nr_vcpus);

#define IRQ_TARGETS_BYTES(nr_vcpus) (((size_t)(nr_vcpus) + 7) / 8)

struct irq_router;

struct irq_router *irq_router__new(int nr_vcpus, irq_deliver_fn deliver,
				   void *ctx);
void irq_router__free(struct irq_router *r);
void irq_router__update_addr(struct irq_router *r, int vcpu_index,
			     const struct apic_addr *addr);
/* Physical, logical flat and cluster (xAPIC), x2APIC physical/cluster,
 * broadcast, the four shorthands; lowest priority picks one target
 * (see irq_router__set_placement for the rule).  Returns the number of
 * targets the message was handed to. */
int irq_router__deliver(struct irq_router *r, const struct apic_msg *msg);

/* Cluster placement: this router runs on node self; vcpu_node[i] (one
 * entry per vCPU, copied) is the node running vCPU i.  Matches on other
 * nodes go, grouped per node, to forward; local ones to the deliver hook.
 * Without a placement every vCPU is local (one node).  Set it before the
 * vCPUs run.  Returns 0, or -1 on bad arguments.
 *
 * Lowest priority is decided here, on the sender's node, exactly once per
 * message, and the message is then sent to that one vCPU by index: the
 * receiver never arbitrates again, so two nodes can never both take it.
 * The rule (deterministic given the table and the rotation state):
 *  1. a local match whose PPR class is below the vector's (it can take the
 *     interrupt now): lowest PPR, rotating among equals;
 *  2. otherwise a remote match, rotating (a remote PPR is only as fresh as
 *     its last address update, so it is not compared);
 *  3. otherwise the local match with the lowest PPR, rotating.
 * With every vCPU local this is the single-node rule (lowest PPR). */
int irq_router__set_placement(struct irq_router *r, unsigned self,
			      const uint8_t *vcpu_node, irq_forward_fn forward,
			      void *forward_ctx);
/* vCPU migration: vcpu_index runs on node from now on (a placement must
 * be set).  Messages matched afterwards go there.  0, or -1 on bad
 * arguments. */
int irq_router__set_node(struct irq_router *r, int vcpu_index,
			 unsigned node);
int irq_router__nr_vcpus(const struct irq_router *r);
/* The node running vcpu_index (self for every vCPU without a placement),
 * or -1 if out of range. */
int irq_router__node_of(struct irq_router *r, int vcpu_index);
bool irq_router__is_local(struct irq_router *r, int vcpu_index);
/* Copy of the addressing facts held for vcpu_index; -1 if out of range. */
int irq_router__get_addr(struct irq_router *r, int vcpu_index,
			 struct apic_addr *out);
/* Hands msg to one local vCPU through the deliver hook, without matching
 * (for messages another node already routed).  -1 if not local. */
int irq_router__deliver_local(struct irq_router *r, int vcpu_index,
			      const struct apic_msg *msg);

#endif
