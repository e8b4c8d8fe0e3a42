/* A vCPU's architectural state as one plain struct: what a checkpoint
 * stores and what vCPU migration (a later issue) moves between hosts.
 * The XSAVE area has a host-dependent size and travels as its own
 * variable-size section. */
#ifndef KRG_VCPU_CPU_STATE_H
#define KRG_VCPU_CPU_STATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "guestfw/boot.h"

#define CPU_STATE_VERSION 1
#define CPU_STATE_MAX_MSRS 48

enum vcpu_run_state {
	VCPU_STATE_WAIT_FOR_SIPI = 0, /* after INIT (and APs at power-on) */
	VCPU_STATE_RUNNING = 1,
	VCPU_STATE_HALTED = 2,        /* HLT: waits for an interrupt */
};

struct cpu_msr {
	uint32_t index, pad;
	uint64_t value;
};

struct cpu_state {
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xcrs xcrs;
	struct kvm_debugregs debugregs;
	struct kvm_vcpu_events events;
	uint32_t nr_msrs;
	uint32_t run_state; /* enum vcpu_run_state */
	struct cpu_msr msrs[CPU_STATE_MAX_MSRS];
	uint8_t has_xcrs, has_debugregs, pad[6];
};

/* Which MSRs a snapshot carries: those of a fixed list that this KVM
 * reports in KVM_GET_MSR_INDEX_LIST. */
struct cpu_msr_list {
	uint32_t nr;
	uint32_t index[CPU_STATE_MAX_MSRS];
};
int cpu_state__msr_list(int kvm_fd, struct cpu_msr_list *out);

/* Reads/writes everything but XSAVE.  Return 0 or -1 with err filled. */
int cpu_state__get(int vcpu_fd, const struct cpu_msr_list *msrs,
		   struct cpu_state *st, char *err, size_t errlen);
int cpu_state__set(int vcpu_fd, const struct cpu_state *st, char *err,
		   size_t errlen);
/* XSAVE (KVM_GET_XSAVE2 when available): size from the VM's capability. */
int cpu_state__xsave_size(int vm_fd);
int cpu_state__get_xsave(int vcpu_fd, void *buf, size_t size);
int cpu_state__set_xsave(int vcpu_fd, const void *buf, size_t size);

/* Register state of an x86 CPU after RESET/INIT, and the real-mode entry a
 * SIPI with vector v asks for (CS = v << 8, IP = 0). */
int cpu_state__reset_to_init(int vcpu_fd);
int cpu_state__start_sipi(int vcpu_fd, uint8_t vector);
/* The state a boot loader asked the BSP to start in. */
int cpu_state__enter_boot(int vcpu_fd, const struct boot_entry *entry);

/* Human-readable CPU mode from sregs: "real", "protected 32-bit",
 * "long 64-bit", ... */
const char *cpu_state__mode_name(const struct kvm_sregs *s);

#endif
