/* krg-vmm: one virtual SMP machine over one or more KVM hosts. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/agent.h"
#include "vmm/ckpt.h"
#include "vmm/cli.h"
#include "vmm/cluster_launch.h"
#include "vmm/control_socket.h"
#include "vmm/machine.h"
#include "vmm/migrate.h"

static int launch(struct vm_config *cfg)
{
	struct control_socket *cs = NULL;
	char err[512];
	struct machine *m;
	int status;

	if (cfg->local_nodes >= 2)
		return cluster_launch__local(cfg);
	if (cfg->nr_nodes > 1)
		return cluster_launch__remote(cfg);
	machine__block_signals();
	for (;;) {
		bool reset;

		status = machine__build(cfg, &m, err, sizeof(err));
		if (status) {
			fprintf(stderr, "krg-vmm: %s\n", err);
			control_socket__stop(cs);
			return status;
		}
		/* One socket for the whole launch: QMP clients stay
		 * connected across a reset. */
		if (!cs && !(cs = control_socket__start(err, sizeof(err))))
			machine__log(m, "no status socket: %s", err);
		m->status_socket = cs;
		status = machine__run(m);
		reset = m->reset_requested && status == KRG_EXIT_OK;
		machine__destroy(m);
		if (!reset) {
			control_socket__stop(cs);
			return status;
		}
		/* A reset restarts from a fresh machine: same as a
		 * power cycle, and no device can keep stale state. */
		cfg->state_in[0] = '\0';
		fprintf(stderr, "krg-vmm: rebooting\n");
	}
}

int main(int argc, char **argv)
{
	static struct vm_config cfg;
	enum cli_verb verb;
	char err[512];

	/* Internal verb: a node process started by launch (or an agent). */
	if (argc >= 2 && !strcmp(argv[1], "node"))
		return cluster_launch__node(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "agent"))
		return agent__main(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "status"))
		return control_socket__client(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "migrate-vcpu"))
		return migrate__cli(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "checkpoint"))
		return ckpt_cli__checkpoint(argc - 2, argv + 2);
	if (argc >= 2 && !strcmp(argv[1], "restore"))
		return ckpt_cli__restore(argc - 2, argv + 2, launch);
	if (cli__parse(argc, argv, &cfg, &verb, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	switch (verb) {
	case CLI_HELP:
		fputs(cli__help_text(), stdout);
		return 0;
	case CLI_VERSION:
		fputs(cli__version_text(), stdout);
		return 0;
	case CLI_LAUNCH:
		break;
	}
	return launch(&cfg);
}
