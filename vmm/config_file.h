/* krg-vmm config files: "key = value" lines, '#' comments, values optionally
 * in double quotes; keys are the long option names without dashes
 * (configs/README.md).  Every value goes through the same setter as the
 * matching command-line option (vmm/settings.h). */
#ifndef KRG_VMM_CONFIG_FILE_H
#define KRG_VMM_CONFIG_FILE_H

#include <stddef.h>

#include "vmm/vm_config.h"

/* Largest config file accepted: a sane file is a few hundred bytes. */
#define CONFIG_FILE_MAX (1u << 20)

/* Reads path and applies its settings onto cfg; relative paths in it are
 * resolved against path's directory.  Returns 0, or -1 with one line in err,
 * "path:LINE: reason" for content errors. */
int config_file__load(const char *path, struct vm_config *cfg, char *err,
		      size_t errlen);

/* The pure part of the above: text[0..len) is the file content, name is
 * used in messages, base_dir prefixes relative paths (NULL: keep them). */
int config_file__parse(const char *text, size_t len, const char *name,
		       const char *base_dir, struct vm_config *cfg, char *err,
		       size_t errlen);

#endif
