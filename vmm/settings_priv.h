/* Inside the settings table (vmm/settings.c): the value parsers the setters
 * share (settings_values.c) and the cluster, DSM and saved-state setters
 * (settings_cluster.c).  Setters follow setting_set_fn. */
#ifndef KRG_VMM_SETTINGS_PRIV_H
#define KRG_VMM_SETTINGS_PRIV_H

#include "vmm/settings.h"

/* Plain decimal only: no sign, no spaces, no hex, overflow rejected. */
int settings__u64(const char *p, size_t len, uint64_t *out);
/* out = base/rel[0..rel_len) (rel alone if absolute or base is NULL or
 * empty); -1 if it does not fit. */
int settings__join_path(char *out, size_t size, const char *base,
			const char *rel, size_t rel_len);
/* A path setting: relative to base, at most VM_PATH_MAX - 1 bytes. */
int settings__path(char *dst, const char *what, const char *v,
		   const char *base, char *err, size_t errlen);
int settings__bool_value(const char *what, const char *v, bool *out,
			 char *err, size_t errlen);
/* auto, on or off. */
int settings__auto_value(const char *what, const char *v,
			 enum vm_auto_switch *out, char *err, size_t errlen);

#define SETTINGS_CLUSTER_SETTER(name)                                      \
	int settings_cluster__##name(struct vm_config *cfg, const char *v, \
				     const char *base, char *err,          \
				     size_t errlen)
SETTINGS_CLUSTER_SETTER(nodes);
SETTINGS_CLUSTER_SETTER(local_nodes);
SETTINGS_CLUSTER_SETTER(cluster_key);
SETTINGS_CLUSTER_SETTER(stats);
SETTINGS_CLUSTER_SETTER(numa);
SETTINGS_CLUSTER_SETTER(dsm_hold);
SETTINGS_CLUSTER_SETTER(dsm_track_writes);
SETTINGS_CLUSTER_SETTER(dsm_shadow_flush);
SETTINGS_CLUSTER_SETTER(pvm_profile);
SETTINGS_CLUSTER_SETTER(save_after);
SETTINGS_CLUSTER_SETTER(save_to);
SETTINGS_CLUSTER_SETTER(restore);
#undef SETTINGS_CLUSTER_SETTER

#endif
