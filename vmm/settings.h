/* The user-settable knobs of a VM, one validating setter each, shared by the
 * command line (vmm/cli.c) and the config file (vmm/config_file.c) so that
 * "-m 2G" and "memory = 2G" cannot drift apart. */
#ifndef KRG_VMM_SETTINGS_H
#define KRG_VMM_SETTINGS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vm_config.h"

enum setting_flags {
	SETTING_FLAG = 1u << 0,		/* command line: takes no value */
	SETTING_CLI_ONLY = 1u << 1,	/* not accepted as a config-file key */
	SETTING_REPEAT = 1u << 2,	/* each use adds one (-drive) */
};

/* value is the user's text (for command-line flags: "true").  base_dir is
 * the directory relative paths are resolved against (the config file's), or
 * NULL to keep them as given.  Returns 0, or -1 with one line in err. */
typedef int (*setting_set_fn)(struct vm_config *cfg, const char *value,
			      const char *base_dir, char *err, size_t errlen);

struct setting {
	const char *key;	/* config-file key, e.g. "memory" */
	const char *option;	/* command-line name without dashes, e.g. "m" */
	const char *metavar;	/* for help; NULL for flags */
	setting_set_fn set;
	unsigned flags;		/* enum setting_flags */
	const char *excludes;	/* key that may not be set by the same source */
};

/* Fills cfg with the documented defaults: 256 MiB, 1 vCPU, cpu host, serial
 * stdio, reset reboots, PVM profile auto, one node "local". */
void settings__defaults(struct vm_config *cfg);

/* All settings (at most 64, so a source can track them in a uint64_t). */
const struct setting *settings__table(size_t *count);
size_t settings__index(const struct setting *s);
/* Lookup by config key / command-line name; name[0..len), NULL if none. */
const struct setting *settings__by_key(const char *name, size_t len);
const struct setting *settings__by_option(const char *name, size_t len);

/* Cross-setting checks once every source is applied (--save-after needs
 * --save-to, a kernel or --restore is needed). */
int settings__validate(const struct vm_config *cfg, char *err, size_t errlen);

/* Parses true/false/yes/no/on/off/1/0. */
int settings__parse_bool(const char *text, bool *out);

#endif
