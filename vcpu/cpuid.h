/* The guest's CPUID: what KVM supports, filtered to a consistent set the
 * VMM can honour (our LAPIC, not KVM's), then per-vCPU topology. */
#ifndef KRG_VCPU_CPUID_H
#define KRG_VCPU_CPUID_H

#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vmm/cpu_features.h" /* enum cpuid_reg */

struct cpuid_bits {
	uint32_t leaf, subleaf;
	enum cpuid_reg reg;
	uint32_t mask;
};

/* KVM_GET_SUPPORTED_CPUID; the caller frees the result. */
struct kvm_cpuid2 *cpuid__supported(int kvm_fd, char *err, size_t errlen);
struct kvm_cpuid2 *cpuid__clone(const struct kvm_cpuid2 *c);

struct kvm_cpuid_entry2 *cpuid__find(struct kvm_cpuid2 *c, uint32_t leaf,
				     uint32_t subleaf);
void cpuid__clear(struct kvm_cpuid2 *c, const struct cpuid_bits *b);
void cpuid__set(struct kvm_cpuid2 *c, const struct cpuid_bits *b);

/* Policy that holds on every host: x2APIC and TSC-deadline on (our LAPIC
 * emulates both), the hypervisor bit, KVM paravirt features that need an
 * in-kernel LAPIC removed, and features whose dependencies were removed
 * cleared too (e.g. no XSAVE => no AVX). */
void cpuid__apply_policy(struct kvm_cpuid2 *c);

/* APIC IDs and topology for vCPU index of nr_vcpus (one core per socket
 * thread layout: nr_vcpus cores in one package). */
void cpuid__for_vcpu(struct kvm_cpuid2 *c, unsigned index, unsigned nr_vcpus);

/* CPUID leaf 0x15 for a guest that must learn its TSC frequency without
 * calibrating it (a cluster guest has no kvmclock, and calibration against
 * the PIT or the PM timer is slow and fragile when the guest kernel is
 * emulated): crystal_hz is what Linux then also takes as the LAPIC timer
 * input, so it must be the LAPIC's bus clock.  Linux computes
 * crystal_khz * EBX / EAX in 32 bits, so EBX is bounded; the ratio is the
 * closest to tsc_hz / crystal_hz under that bound.  0, or -1 when no
 * ratio fits (tsc_hz or crystal_hz 0, or out of range). */
int cpuid__tsc_ratio(uint64_t tsc_hz, uint32_t crystal_hz, uint32_t *eax,
		     uint32_t *ebx);
/* Adds or replaces leaf 0x15 (and raises the maximum basic leaf to it);
 * *c may be reallocated.  0, or -1 (out of memory, or no ratio). */
int cpuid__set_tsc_leaf(struct kvm_cpuid2 **c, uint64_t tsc_hz,
			uint32_t crystal_hz);

/* Reads a CPUID bit out of the table (for logs and tests). */
int cpuid__test(struct kvm_cpuid2 *c, const struct cpuid_bits *b);

#endif
