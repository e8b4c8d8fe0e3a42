#include "vmm/vm_description.h"

#include <stdlib.h>
#include <string.h>

#include "vmm/errf.h"

int vm_description__fill(struct vm_description *d, uint64_t cluster_id,
			 const struct vm_config *cfg,
			 const struct numa_layout *layout,
			 const struct kvm_cpuid2 *cpuid, uint64_t tsc_khz,
			 char *err, size_t errlen)
{
	memset(d, 0, sizeof(*d));
	if (cpuid && cpuid->nent > VM_DESCRIPTION_MAX_CPUID) {
		errf(err, errlen, "the CPUID table has %u entries, a VM "
		     "description holds %u", cpuid->nent,
		     VM_DESCRIPTION_MAX_CPUID);
		return -1;
	}
	d->version = VM_DESCRIPTION_VERSION;
	d->size = sizeof(*d);
	d->cluster_id = cluster_id;
	d->nr_nodes = layout->nr_nodes;
	d->tsc_khz = tsc_khz;
	d->cfg = *cfg;
	d->layout = *layout;
	if (cpuid) {
		d->nr_cpuid = cpuid->nent;
		memcpy(d->cpuid, cpuid->entries,
		       cpuid->nent * sizeof(cpuid->entries[0]));
	}
	return 0;
}

static bool terminated(const char *s, size_t size)
{
	return memchr(s, '\0', size) != NULL;
}

/* Every string of the settings ends inside its array: nothing later reads
 * past one. */
static int check_strings(const struct vm_config *c, char *err, size_t errlen)
{
	char e[200];
	const struct {
		const char *s;
		size_t size;
		const char *what;
	} f[] = {
		{ c->kernel, sizeof(c->kernel), "kernel" },
		{ c->initrd, sizeof(c->initrd), "initrd" },
		{ c->append, sizeof(c->append), "append" },
		{ c->cpu_model, sizeof(c->cpu_model), "cpu" },
		{ c->config_file, sizeof(c->config_file), "config" },
		{ c->state_out, sizeof(c->state_out), "save-to" },
		{ c->state_in, sizeof(c->state_in), "restore" },
		{ c->name, sizeof(c->name), "name" },
	};

	for (size_t i = 0; i < sizeof(f) / sizeof(f[0]); i++)
		if (!terminated(f[i].s, f[i].size)) {
			errf(err, errlen, "VM description: setting '%s' is not "
			     "terminated", f[i].what);
			return -1;
		}
	for (unsigned i = 0; i < VM_MAX_NODES; i++)
		if (!terminated(c->nodes[i].addr, sizeof(c->nodes[i].addr))) {
			errf(err, errlen, "VM description: node address %u is "
			     "not terminated", i);
			return -1;
		}
	if (c->nr_drives > VM_MAX_DRIVES) {
		errf(err, errlen, "VM description: %u drives, at most %d",
		     c->nr_drives, VM_MAX_DRIVES);
		return -1;
	}
	for (unsigned i = 0; i < VM_MAX_DRIVES; i++) {
		const struct drive_opts *o = &c->drives[i];

		if (!terminated(o->file, sizeof(o->file)) ||
		    !terminated(o->serial, sizeof(o->serial)) ||
		    !terminated(o->id, sizeof(o->id))) {
			errf(err, errlen, "VM description: drive %u has an "
			     "unterminated string", i);
			return -1;
		}
	}
	if (net_opts__validate(&c->net, e, sizeof(e)) < 0) {
		errf(err, errlen, "VM description: %s", e);
		return -1;
	}
	return 0;
}

int vm_description__decode(struct vm_description *d, const void *buf,
			   size_t len, uint64_t cluster_id, unsigned nr_nodes,
			   char *err, size_t errlen)
{
	struct vm_config *c;

	if (len != sizeof(*d)) {
		uint32_t ver = 0;

		if (len >= sizeof(ver))
			memcpy(&ver, buf, sizeof(ver));
		errf(err, errlen, "VM description of %zu bytes (version %u); "
		     "this build expects %zu bytes, version %u (all nodes must "
		     "run the same krg-vmm)", len, ver, sizeof(*d),
		     VM_DESCRIPTION_VERSION);
		return -1;
	}
	memcpy(d, buf, sizeof(*d));
	if (d->version != VM_DESCRIPTION_VERSION || d->size != sizeof(*d)) {
		errf(err, errlen, "VM description version %u, this build reads "
		     "version %u", d->version, VM_DESCRIPTION_VERSION);
		return -1;
	}
	if (d->cluster_id != cluster_id) {
		errf(err, errlen, "VM description for another cluster");
		return -1;
	}
	if (d->nr_nodes != nr_nodes || d->layout.nr_nodes != nr_nodes) {
		errf(err, errlen, "VM description for %u nodes; this node was "
		     "started for %u", d->nr_nodes, nr_nodes);
		return -1;
	}
	if (d->nr_cpuid > VM_DESCRIPTION_MAX_CPUID) {
		errf(err, errlen, "VM description: %u CPUID entries (at most "
		     "%u)", d->nr_cpuid, VM_DESCRIPTION_MAX_CPUID);
		return -1;
	}
	c = &d->cfg;
	if (check_strings(c, err, errlen) < 0)
		return -1;
	if (c->nr_vcpus < 1 || c->nr_vcpus > VM_MAX_VCPUS ||
	    c->ram_mib < VM_MIN_RAM_MIB || c->ram_mib > VM_MAX_RAM_MIB ||
	    c->nr_vcpus != d->layout.nr_vcpus) {
		errf(err, errlen, "VM description: %u vCPUs, %llu MiB, layout "
		     "for %u vCPUs: out of range or inconsistent", c->nr_vcpus,
		     (unsigned long long)c->ram_mib, d->layout.nr_vcpus);
		return -1;
	}
	if (numa_layout__check(&d->layout, NULL, 0, err, errlen) < 0)
		return -1;
	return 0;
}

struct kvm_cpuid2 *vm_description__cpuid(const struct vm_description *d)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + d->nr_cpuid *
					      sizeof(c->entries[0]));

	if (!c)
		return NULL;
	c->nent = d->nr_cpuid;
	memcpy(c->entries, d->cpuid, d->nr_cpuid * sizeof(c->entries[0]));
	return c;
}
