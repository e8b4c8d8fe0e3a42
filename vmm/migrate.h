/* Live vCPU migration between the nodes of a cluster VM, the I/O side:
 * the protocol of vmm/migrate_proto.h wired to the transport, the vCPU
 * threads, the interrupt routers and the I/O forwarding table.
 *
 * Every node creates a KVM vCPU (fd, kvm_run, thread, LAPIC) for every
 * vCPU of the VM when it builds its share; the ones that run elsewhere
 * stay "held" (their thread waits in migrate__vcpu_held, outside KVM_RUN)
 * until one arrives.  So the time a vCPU stands still contains no
 * KVM_CREATE_VCPU, CPUID setup, mmap or thread start, and a node that
 * cannot have a vCPU fails at launch, not halfway through a migration.
 * KVM cannot destroy a vCPU anyway, so a node that ever ran a vCPU would
 * keep its fd; this makes that the rule.
 *
 * Each vCPU has a gate on each node: every interrupt for it that reaches
 * this node's LAPIC side (local routing, IRQ_DELIVER, FORWARD) passes
 * it.  HERE: into the LAPIC.  SEALED (its state is being captured):
 * queued, in order, identical ones merged as the LAPIC's IRR would.
 * AWAY: forwarded (MIGRATE_T_FORWARD) to the node it went to, which
 * delivers or forwards again.  At the commit the source sends DECIDE and
 * then the queue under the gate's lock, and the target applies the
 * commit on the same receive thread before it reads anything after it:
 * no interrupt is lost, none is delivered twice.
 *
 * Threads: the protocol state sits under one lock; transport receive
 * threads, the vtimer thread (deadlines), the control thread (requests)
 * and the vCPU threads (parked, captured, loaded) feed it events and run
 * the resulting actions under that lock.  Capturing and loading run on
 * the vCPU's own thread, which is held anyway; nothing blocks a receive
 * thread. */
#ifndef KRG_VMM_MIGRATE_H
#define KRG_VMM_MIGRATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpu/apic.h"
#include "vmm/migrate_proto.h"

struct machine;
struct vcpu;
struct migrate;

/* A cluster machine, once its vCPUs and irq_remote exist.  NULL when out
 * of memory. */
struct migrate *migrate__new(struct machine *m);
/* After the vCPU threads were joined. */
void migrate__free(struct migrate *mg);

/* A message of MIGRATE_T_START..MIGRATE_T_LAST from the transport. */
void migrate__receive(struct machine *m, unsigned sender, unsigned type,
		      const void *payload, uint32_t len);

/* Node 0 (the control thread): move vcpu to node, wait for the outcome.
 * 0 moved (res: downtime in value, total_ns, state_bytes), 1 nothing to
 * do (it runs there), -1 not moved or not confirmed (res->status and
 * res->text say why; res->node is where the vCPU runs). */
int migrate__vcpu(struct machine *m, unsigned vcpu, unsigned node,
		  unsigned fault, struct migrate_msg *res);

/* The router's deliver hook for vcpu (machine__deliver_local). */
void migrate__deliver(struct migrate *mg, int vcpu, const struct apic_msg *msg);
/* irq_remote's redirect hook: an IRQ_DELIVER for a vCPU not here. */
int migrate__redirect(struct migrate *mg, int vcpu, const struct apic_msg *msg);

/* The vCPU thread, when v->held is set: stays here (capturing or loading
 * state when asked) until the vCPU runs on this node again or the VM
 * stops. */
void migrate__vcpu_held(struct vcpu *v);

/* The krg-migrate-vcpu QMP command (struct qmp_vm_ops.migrate_vcpu; ctx
 * is the control socket): checks the request, runs migrate__vcpu. */
struct qmp_migrate;
struct qmp_error;
int migrate__qmp_vcpu(void *ctx, int64_t vcpu, int64_t node,
		      const char *fault, struct qmp_migrate *out,
		      struct qmp_error *err);
/* "krg-vmm migrate-vcpu VCPU NODE [SOCKET]" (argv after the verb): asks
 * the running VM over its control socket.  Exit status. */
int migrate__cli(int argc, char *const argv[]);

struct migrate_stats {
	struct migrate_proto_stats proto;
	uint64_t forwarded;	/* interrupts passed on to a vCPU's new node */
	uint64_t queued;	/* held at a sealed gate */
	uint64_t dropped;	/* queue full or chased too far (unexpected) */
	uint64_t last_down_ns, max_down_ns;	/* requests answered here */
};
void migrate__stats(struct migrate *mg, struct migrate_stats *out);
/* Node 0's line for `krg-vmm status` ("" before any migration). */
size_t migrate__status_line(struct migrate *mg, char *buf, size_t size);

#endif
