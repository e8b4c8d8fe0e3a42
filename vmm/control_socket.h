/* The running VM's control socket (on the boot node): a unix socket in
 * /run/krg-vmm/ that `krg-vmm status` reads.  One command per connection,
 * a line of text; the reply is text, then the socket closes:
 *   status   the cluster (nodes, vCPU placement) and every node's counters
 * (The QMP protocol of a later version shares the socket.) */
#ifndef KRG_VMM_CONTROL_SOCKET_H
#define KRG_VMM_CONTROL_SOCKET_H

#include <stddef.h>

#define CONTROL_SOCKET_DIR "/run/krg-vmm"

struct machine;
struct control_socket;

/* Listens at CONTROL_SOCKET_DIR/vm-PID.sock.  NULL with a reason (the VM
 * runs on without one). */
struct control_socket *control_socket__start(struct machine *m, char *err,
					     size_t errlen);
void control_socket__stop(struct control_socket *cs);

/* The status text (also what --stats prints at exit on node 0). */
size_t control_socket__status_text(struct machine *m, char *buf,
				   size_t size);

/* "krg-vmm status [SOCKET]": argv after the verb.  Exit status. */
int control_socket__client(int argc, char *const argv[]);

#endif
