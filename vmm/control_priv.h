/* The control socket's parts (internal to vmm/control_*.c): the server
 * (control_socket.c) and the commands' work on the machine
 * (control_vm.c).  The `krg-vmm status` client is control_client.c. */
#ifndef KRG_VMM_CONTROL_PRIV_H
#define KRG_VMM_CONTROL_PRIV_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "vmm/control_socket.h"
#include "vmm/qmp.h"
#include "vmm/qmp_commands.h"

/* QEMU accepts any number of monitors; a bound keeps a flood of
 * connections from costing more than a few sessions' memory. */
#define CONTROL_MAX_CLIENTS 16
/* Events not yet handed to the sessions (the oldest go first). */
#define CONTROL_MAX_EVENTS 256

struct control_client {
	int fd;                   /* -1: free slot */
	struct qmp_session *s;
	bool eof;                 /* client shut its side: flush, close */
};

struct control_socket {
	int fd;
	int wake[2];              /* events queued, or stopping */
	char path[108];
	pthread_t thread;
	atomic_bool stopping;

	/* The machine commands act on.  The control thread holds m_lock
	 * while it runs commands; attach/detach take it, so a machine is
	 * never used after it detached. */
	pthread_mutex_t m_lock;
	struct machine *m;
	bool restarting;          /* detached for a reset: a new one comes */
	bool paused;              /* stopped by QMP `stop` */

	pthread_mutex_t ev_lock;
	char *events[CONTROL_MAX_EVENTS];
	unsigned nr_events;

	struct qmp_vm_ops ops;
	struct qmp_config qmp;
	struct control_client clients[CONTROL_MAX_CLIENTS];
};

/* vmm/control_vm.c: the struct qmp_vm_ops of this socket (ctx = cs). */
void control_vm__init_ops(struct control_socket *cs);

#endif
