/* The command line: "krg-vmm launch [options]", "krg-vmm help [launch]",
 * "krg-vmm --help", "krg-vmm --version".  Pure parsing into a vm_config; the
 * only side effect is reading the --config file. */
#ifndef KRG_VMM_CLI_H
#define KRG_VMM_CLI_H

#include <stddef.h>

#include "vmm/vm_config.h"

#ifndef KRG_VMM_VERSION
#define KRG_VMM_VERSION "0.1.0"
#endif

enum cli_verb { CLI_LAUNCH, CLI_HELP, CLI_VERSION };

/* Fills cfg (defaults, then the --config file, then the command-line
 * options, whatever their order) and *verb.  Returns 0, or -1 with one line
 * in err; the caller prints "krg-vmm: <err>" and exits with status 2.  cfg is
 * only meaningful for CLI_LAUNCH, and then it passed settings__validate(). */
int cli__parse(int argc, char *const argv[], struct vm_config *cfg,
	       enum cli_verb *verb, char *err, size_t errlen);

/* The complete --help text (every option, defaults, console keys, exit
 * statuses, environment). */
const char *cli__help_text(void);
/* One line: "usage: krg-vmm launch [options] ..." */
const char *cli__usage(void);
/* "krg-vmm VERSION" plus a newline. */
const char *cli__version_text(void);

#endif
