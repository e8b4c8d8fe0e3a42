/* The CPUID template every vCPU starts from: KVM's supported set, our
 * policy, the user's -cpu choices and, on a PVM host, the guest profile. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/cpu_state.h"
#include "vcpu/cpuid.h"
#include "vcpu/pvm_profile.h"
#include "vmm/cpu_features.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

static void apply_cpu_spec(struct kvm_cpuid2 *c, const struct cpu_spec *spec)
{
	uint32_t i;

	for (i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		uint32_t regs[4] = { e->eax, e->ebx, e->ecx, e->edx };

		cpu_features__apply(spec, e->function, e->index, regs);
		e->eax = regs[0];
		e->ebx = regs[1];
		e->ecx = regs[2];
		e->edx = regs[3];
	}
}

int machine__setup_cpuid(struct machine *m, char *err, size_t errlen)
{
	const struct vm_config *cfg = m->cfg;
	struct cpu_spec spec;
	struct pvm_host host;

	if (cpu_features__parse(cfg->cpu_model[0] ? cfg->cpu_model : "host",
				&spec, err, errlen) < 0)
		return KRG_EXIT_USAGE;
	m->cpuid = cpuid__supported(m->kvm_fd, err, errlen);
	if (!m->cpuid)
		return KRG_EXIT_FAILURE;
	pvm_profile__detect(NULL, NULL, &host);
	m->pvm_host = host.is_pvm;
	m->pvm_profile = pvm_profile__enabled(cfg->pvm_profile, &host);
	if (m->pvm_profile)
		pvm_profile__apply_cpuid(m->cpuid);
	/* The user's explicit choices win over the profile... */
	apply_cpu_spec(m->cpuid, &spec);
	/* ...and the policy keeps the set consistent with our devices. */
	cpuid__apply_policy(m->cpuid);
	m->xsave_size = cpu_state__xsave_size(m->vm_fd);
	return 0;
}

int machine__adopt_cpuid(struct machine *m, const struct kvm_cpuid2 *cpuid,
			 char *err, size_t errlen)
{
	struct pvm_host host;
	size_t size;

	if (!cpuid) {
		snprintf(err, errlen, "no CPUID table from node 0");
		return KRG_EXIT_FAILURE;
	}
	size = sizeof(*cpuid) + cpuid->nent * sizeof(cpuid->entries[0]);
	m->cpuid = malloc(size);
	if (!m->cpuid) {
		snprintf(err, errlen, "out of memory");
		return KRG_EXIT_FAILURE;
	}
	memcpy(m->cpuid, cpuid, size);
	pvm_profile__detect(NULL, NULL, &host);
	m->pvm_host = host.is_pvm;
	m->pvm_profile = pvm_profile__enabled(m->cfg->pvm_profile, &host);
	m->xsave_size = cpu_state__xsave_size(m->vm_fd);
	return 0;
}
