/* Shared by the vCPU's own files: creation and kicks (vcpu.c) and the run
 * loop (vcpu_loop.c). */
#ifndef KRG_VCPU_VCPU_PRIV_H
#define KRG_VCPU_VCPU_PRIV_H

#include <signal.h>
#include <stdint.h>

struct vcpu;

/* Interrupts KVM_RUN (unblocked only inside it) and fires the LAPIC's
 * host timer. */
#define VCPU_KICK_SIGNAL SIGUSR1

/* Arms the host timer for the LAPIC's deadline (0 disarms). */
void vcpu__arm_ktimer(struct vcpu *v, uint64_t deadline_ns);

#endif
