/* The one routing function: given an interrupt message, find the target
 * vCPU(s) and hand the message to each.  Matching uses only the replicated
 * addressing facts (struct apic_addr), never the LAPIC itself, so the
 * delivery hook can later send the message to another host. */
#ifndef KRG_VCPU_IRQ_ROUTE_H
#define KRG_VCPU_IRQ_ROUTE_H

#include "vcpu/apic.h"

typedef void (*irq_deliver_fn)(void *ctx, int vcpu_index,
			       const struct apic_msg *msg);

struct irq_router;

struct irq_router *irq_router__new(int nr_vcpus, irq_deliver_fn deliver,
				   void *ctx);
void irq_router__free(struct irq_router *r);
void irq_router__update_addr(struct irq_router *r, int vcpu_index,
			     const struct apic_addr *addr);
/* Physical, logical flat and cluster (xAPIC), x2APIC physical/cluster,
 * broadcast, the four shorthands; lowest priority picks one target (lowest
 * PPR, rotating among equals).  Returns the number of targets. */
int irq_router__deliver(struct irq_router *r, const struct apic_msg *msg);

#endif
