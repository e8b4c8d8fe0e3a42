/* struct irq_remote, shared by the sending side (irq_remote.c) and the
 * receiving side (irq_remote_recv.c); nothing else includes this. */
#ifndef KRG_VCPU_IRQ_REMOTE_PRIV_H
#define KRG_VCPU_IRQ_REMOTE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "vcpu/irq_remote.h"

#define DELIVER_STACK_VCPUS 512

struct vstate {
	/* Local vCPUs: */
	struct apic_addr latest;  /* last reported by the LAPIC */
	bool have_latest;
	bool pending;             /* latest not sent yet */
	atomic_bool dirty;        /* flush has something to do */
	uint32_t seq;             /* seq of latest */
	uint32_t sent_seq;        /* highest seq handed to send */
	uint32_t *acked;          /* per node: highest seq acked */
	/* Remote vCPUs: */
	uint32_t seen_seq;        /* 0: address never received */
};

struct irq_remote {
	struct irq_router *router;
	unsigned self, nr_nodes, ioapic_node;
	int nr_vcpus;
	/* Where each vCPU runs, and ran before its last move; written under
	 * lock by irq_remote__set_node, read without it (atomically). */
	uint8_t *node;
	uint8_t *prev_node;
	struct irq_remote_ops ops;
	pthread_mutex_t lock;      /* vstate */
	pthread_cond_t cond;       /* an ack or a first address arrived */
	pthread_mutex_t flush_lock; /* keeps one vCPU's updates in seq order */
	bool aborted;               /* VM stopping: waits end (under lock) */
	struct vstate *v;
	struct {
		atomic_uint_fast64_t deliver_out, deliver_in, addr_out, addr_in,
			acks_in, eoi_out, eoi_in, rejected, send_failed,
			extint_dropped, redirected;
	} st;
};

/* The node a vCPU runs on, whether that is this one, and whether sender
 * may speak for it (it runs there, or ran there before its last move). */
unsigned irq_remote__node_of(const struct irq_remote *ir, int vcpu);
bool irq_remote__is_local(const struct irq_remote *ir, int vcpu);
bool irq_remote__source_ok(const struct irq_remote *ir, int vcpu,
			   unsigned sender);
/* Sends one message; a failure is counted and reported. */
int irq_remote__send_to(struct irq_remote *ir, unsigned node, unsigned type,
			const void *buf, size_t len);
/* Hands a protocol error to the machine's error hook. */
void irq_remote__report(struct irq_remote *ir, unsigned node,
			const char *what);

#endif
