#include "vcpu/cpuid.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define LEAF1_ECX_XSAVE (1u << 26)
#define LEAF1_ECX_OSXSAVE (1u << 27)
#define LEAF1_ECX_AVX (1u << 28)
#define LEAF1_ECX_FMA (1u << 12)
#define LEAF1_ECX_F16C (1u << 29)
#define LEAF1_ECX_X2APIC (1u << 21)
#define LEAF1_ECX_TSC_DEADLINE (1u << 24)
#define LEAF1_ECX_HYPERVISOR (1u << 31)
#define LEAF1_EDX_APIC (1u << 9)
#define LEAF7_EBX_AVX2 (1u << 5)
#define LEAF7_EBX_AVX512F (1u << 16)

/* KVM paravirt features (leaf 0x40000001 EAX) that only work with KVM's
 * in-kernel LAPIC or that would bypass ours: async PF, PV unhalt, PV TLB
 * flush, PV send-IPI, poll control, PV sched yield, async PF int,
 * extended MSI destination IDs.  PV EOI (bit 6) stays: our LAPIC
 * implements it (lapic.h). */
#define KVM_PV_NEEDS_KERNEL_LAPIC                                             \
	((1u << 4) | (1u << 7) | (1u << 9) | (1u << 10) |                    \
	 (1u << 11) | (1u << 12) | (1u << 13) | (1u << 14) | (1u << 15))

struct kvm_cpuid2 *cpuid__supported(int kvm_fd, char *err, size_t errlen)
{
	int n;

	for (n = 64; n <= 4096; n *= 2) {
		struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
						    n * sizeof(c->entries[0]));
		if (!c)
			break;
		c->nent = n;
		if (ioctl(kvm_fd, KVM_GET_SUPPORTED_CPUID, c) == 0)
			return c;
		free(c);
		if (errno != E2BIG) {
			snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: %s",
				 strerror(errno));
			return NULL;
		}
	}
	snprintf(err, errlen, "KVM_GET_SUPPORTED_CPUID: table too large");
	return NULL;
}

struct kvm_cpuid2 *cpuid__clone(const struct kvm_cpuid2 *c)
{
	size_t sz = sizeof(*c) + c->nent * sizeof(c->entries[0]);
	struct kvm_cpuid2 *n = malloc(sz);

	if (n)
		memcpy(n, c, sz);
	return n;
}

struct kvm_cpuid_entry2 *cpuid__find(struct kvm_cpuid2 *c, uint32_t leaf,
				     uint32_t subleaf)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		if (e->function != leaf)
			continue;
		if ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) &&
		    e->index != subleaf)
			continue;
		return e;
	}
	return NULL;
}

static uint32_t *reg_of(struct kvm_cpuid_entry2 *e, enum cpuid_reg r)
{
	switch (r) {
	case CPUID_EAX:
		return &e->eax;
	case CPUID_EBX:
		return &e->ebx;
	case CPUID_ECX:
		return &e->ecx;
	default:
		return &e->edx;
	}
}

void cpuid__clear(struct kvm_cpuid2 *c, const struct cpuid_bits *b)
{
	struct kvm_cpuid_entry2 *e = cpuid__find(c, b->leaf, b->subleaf);

	if (e)
		*reg_of(e, b->reg) &= ~b->mask;
}

void cpuid__set(struct kvm_cpuid2 *c, const struct cpuid_bits *b)
{
	struct kvm_cpuid_entry2 *e = cpuid__find(c, b->leaf, b->subleaf);

	if (e)
		*reg_of(e, b->reg) |= b->mask;
}

int cpuid__test(struct kvm_cpuid2 *c, const struct cpuid_bits *b)
{
	struct kvm_cpuid_entry2 *e = cpuid__find(c, b->leaf, b->subleaf);

	return e && (*reg_of(e, b->reg) & b->mask) == b->mask;
}

void cpuid__apply_policy(struct kvm_cpuid2 *c)
{
	struct kvm_cpuid_entry2 *e = cpuid__find(c, 1, 0);
	struct kvm_cpuid_entry2 *pv = cpuid__find(c, 0x40000001, 0);

	if (e) {
		e->ecx |= LEAF1_ECX_X2APIC | LEAF1_ECX_TSC_DEADLINE |
			  LEAF1_ECX_HYPERVISOR;
		e->edx |= LEAF1_EDX_APIC;
		/* OSXSAVE mirrors CR4 at run time; KVM computes it. */
		e->ecx &= ~LEAF1_ECX_OSXSAVE;
		if (!(e->ecx & LEAF1_ECX_XSAVE))
			e->ecx &= ~(LEAF1_ECX_AVX | LEAF1_ECX_FMA |
				    LEAF1_ECX_F16C);
	}
	if (e && !(e->ecx & LEAF1_ECX_AVX)) {
		struct kvm_cpuid_entry2 *l7 = cpuid__find(c, 7, 0);
		if (l7)
			l7->ebx &= ~(LEAF7_EBX_AVX2 | LEAF7_EBX_AVX512F);
	}
	if (e && !(e->ecx & LEAF1_ECX_XSAVE)) {
		/* Leaf 0xD describes XSAVE state: meaningless without it. */
		uint32_t i;
		for (i = 0; i < c->nent; i++)
			if (c->entries[i].function == 0xD)
				c->entries[i].eax = c->entries[i].ebx =
					c->entries[i].ecx = c->entries[i].edx =
						0;
	}
	if (pv)
		pv->eax &= ~KVM_PV_NEEDS_KERNEL_LAPIC;
}

void cpuid__for_vcpu(struct kvm_cpuid2 *c, unsigned index, unsigned nr_vcpus)
{
	uint32_t i, shift = 0;

	while ((1u << shift) < nr_vcpus)
		shift++;
	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC ID, logical processors per package. */
			e->ebx = (e->ebx & 0x0000FFFFu) | (index << 24) |
				 ((nr_vcpus > 255 ? 255 : nr_vcpus) << 16);
			e->edx |= 1u << 28; /* HTT: the count above is valid */
			break;
		case 4:
			/* Cores per package - 1 in EAX[31:26]; one thread each. */
			e->eax = (e->eax & 0x3FFFu) |
				 ((uint32_t)(nr_vcpus - 1 > 63 ? 63 : nr_vcpus - 1)
				  << 26);
			break;
		case 0xB:
		case 0x1F:
			/* Level 0: SMT (1 thread), level 1: core = all vCPUs. */
			if (e->index == 0) {
				e->eax = 0;
				e->ebx = 1;
				e->ecx = (1u << 8) | e->index;
			} else if (e->index == 1) {
				e->eax = shift;
				e->ebx = nr_vcpus;
				e->ecx = (2u << 8) | e->index;
			} else {
				e->eax = e->ebx = 0;
				e->ecx = e->index;
			}
			e->edx = index;
			break;
		case 0x80000008:
			/* Core count - 1 in ECX[7:0], APIC ID size in 15:12. */
			e->ecx = (e->ecx & ~0xF0FFu) | (shift << 12) |
				 ((nr_vcpus - 1) & 0xFF);
			break;
		default:
			break;
		}
	}
}

int cpuid__tsc_ratio(uint64_t tsc_hz, uint32_t crystal_hz, uint32_t *eax,
		     uint32_t *ebx)
{
	uint64_t crystal_khz = crystal_hz / 1000;
	double want, best_err = -1;

	if (!crystal_khz || !tsc_hz)
		return -1;
	want = (double)tsc_hz / crystal_hz;
	/* crystal_khz * EBX must fit in 32 bits (Linux's arithmetic). */
	uint64_t max_num = UINT32_MAX / crystal_khz;

	for (uint64_t num = 1; num <= max_num; num++) {
		double den = (double)num / want + 0.5;

		if (den < 1 || den > UINT32_MAX)
			continue;
		uint64_t d = (uint64_t)den;
		double err = (double)num / (double)d - want;

		if (err < 0)
			err = -err;
		if (best_err < 0 || err < best_err) {
			best_err = err;
			*ebx = (uint32_t)num;
			*eax = (uint32_t)d;
		}
	}
	return best_err < 0 ? -1 : 0;
}

int cpuid__set_tsc_leaf(struct kvm_cpuid2 **c, uint64_t tsc_hz,
			uint32_t crystal_hz)
{
	struct kvm_cpuid_entry2 *e, *max;
	uint32_t eax, ebx;

	if (cpuid__tsc_ratio(tsc_hz, crystal_hz, &eax, &ebx) < 0)
		return -1;
	e = cpuid__find(*c, 0x15, 0);
	if (!e) {
		size_t sz = sizeof(**c) + ((*c)->nent + 1) *
						  sizeof((*c)->entries[0]);
		struct kvm_cpuid2 *n = realloc(*c, sz);

		if (!n)
			return -1;
		*c = n;
		e = &n->entries[n->nent++];
		memset(e, 0, sizeof(*e));
		e->function = 0x15;
	}
	e->eax = eax;
	e->ebx = ebx;
	e->ecx = crystal_hz;
	e->edx = 0;
	max = cpuid__find(*c, 0, 0);
	if (max && max->eax < 0x15)
		max->eax = 0x15;
	return 0;
}
