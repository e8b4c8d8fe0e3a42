/* Handling of each KVM exit reason for one vCPU. */
#ifndef KRG_VCPU_VCPU_EXIT_H
#define KRG_VCPU_VCPU_EXIT_H

struct vcpu;

/* Returns 0 to keep running, -1 when the vCPU must stop (the machine's
 * stop was requested with the reason). */
int vcpu__handle_exit(struct vcpu *v);

/* The emulation-failure fallback (vcpu/vcpu_fallback.c). */
int vcpu__handle_emulation_failure(struct vcpu *v);

#endif
