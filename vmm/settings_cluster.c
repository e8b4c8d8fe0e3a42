/* The settings of the cluster, its DSM and its saved state: which nodes,
 * how pages move between them, when and where the VM's state is saved. */
#include <stdio.h>
#include <string.h>

#include "dsm/dsm_mem.h"
#include "vmm/errf.h"
#include "vmm/node_list.h"
#include "vmm/settings_priv.h"

/* --save-after is turned into nanosecond deadlines; keep it far from
 * overflow and within what a test could mean. */
#define SAVE_AFTER_MAX_MS (30ull * 24 * 3600 * 1000)

int settings_cluster__stats(struct vm_config *cfg, const char *v,
			    const char *base, char *err, size_t errlen)
{
	if (settings__parse_bool(v, &cfg->print_stats) < 0) {
		errf(err, errlen, "invalid stats value '%s'", v);
		return -1;
	}
	return 0;
}

int settings_cluster__dsm_hold(struct vm_config *cfg, const char *v,
			       const char *base, char *err, size_t errlen)
{
	uint64_t us;

	(void)base;
	if (settings__u64(v, strlen(v), &us) || us > DSM_MEM_MAX_HOLD_US) {
		errf(err, errlen, "invalid dsm-hold-us '%s' (expected 0 to %u "
		     "microseconds)", v, DSM_MEM_MAX_HOLD_US);
		return -1;
	}
	cfg->dsm_hold_us = (int32_t)us;
	return 0;
}

int settings_cluster__numa(struct vm_config *cfg, const char *v,
			   const char *base, char *err, size_t errlen)
{
	if (!strcmp(v, "nodes"))
		cfg->numa_flat = false;
	else if (!strcmp(v, "flat"))
		cfg->numa_flat = true;
	else {
		errf(err, errlen, "invalid numa '%s' (expected nodes or flat)",
		     v);
		return -1;
	}
	return 0;
}

int settings_cluster__cluster_key(struct vm_config *cfg, const char *v,
				  const char *base, char *err, size_t errlen)
{
	return settings__path(cfg->cluster_key, "cluster-key", v, base, err,
			      errlen);
}

int settings_cluster__dsm_track_writes(struct vm_config *cfg, const char *v,
				       const char *base, char *err,
				       size_t errlen)
{
	return settings__bool_value("dsm-track-writes", v,
				    &cfg->dsm_track_writes, err, errlen);
}

int settings_cluster__dsm_shadow_flush(struct vm_config *cfg, const char *v,
				       const char *base, char *err,
				       size_t errlen)
{
	return settings__auto_value("dsm-shadow-flush", v,
				    &cfg->dsm_shadow_flush, err, errlen);
}

int settings_cluster__pvm_profile(struct vm_config *cfg, const char *v,
				  const char *base, char *err, size_t errlen)
{
	return settings__auto_value("pvm-profile", v, &cfg->pvm_profile, err,
				 errlen);
}

int settings_cluster__nodes(struct vm_config *cfg, const char *v,
			    const char *base, char *err, size_t errlen)
{
	if (node_list__parse(v, cfg->nodes, &cfg->nr_nodes, err, errlen))
		return -1;
	cfg->local_nodes = 0;
	return 0;
}

int settings_cluster__local_nodes(struct vm_config *cfg, const char *v,
				  const char *base, char *err, size_t errlen)
{
	uint64_t n;

	if (settings__u64(v, strlen(v), &n) || n < 1 || n > VM_MAX_NODES) {
		errf(err, errlen, "invalid local node count '%s' "
		     "(expected a number from 1 to %d)", v, VM_MAX_NODES);
		return -1;
	}
	cfg->local_nodes = (unsigned)n;
	cfg->nr_nodes = 1;
	memset(cfg->nodes, 0, sizeof(cfg->nodes));
	snprintf(cfg->nodes[0].addr, sizeof(cfg->nodes[0].addr), "local");
	return 0;
}

int settings_cluster__save_after(struct vm_config *cfg, const char *v,
				 const char *base, char *err, size_t errlen)
{
	uint64_t n;

	if (settings__u64(v, strlen(v), &n) || n < 1 || n > SAVE_AFTER_MAX_MS) {
		errf(err, errlen, "invalid save-after delay '%s' "
		     "(expected milliseconds from 1 to %llu)", v,
		     SAVE_AFTER_MAX_MS);
		return -1;
	}
	cfg->pause_after_ms = n;
	return 0;
}

int settings_cluster__save_to(struct vm_config *cfg, const char *v,
			      const char *base, char *err, size_t errlen)
{
	return settings__path(cfg->state_out, "save-to", v, base, err, errlen);
}

int settings_cluster__restore(struct vm_config *cfg, const char *v,
			      const char *base, char *err, size_t errlen)
{
	return settings__path(cfg->state_in, "restore", v, base, err, errlen);
}
