/* The running VM's control socket on the boot node: a unix socket,
 * CONTROL_SOCKET_DIR/vm-PID.sock (mode 0600), that speaks QMP (vmm/qmp.h,
 * commands in vmm/qmp_commands.h) to several clients at once, each with
 * its own session.  `krg-vmm status` is one such client.
 *
 * The socket lives as long as the launch; the machine attaches to it when
 * it starts running and detaches when it stopped, so clients stay
 * connected across a guest reset (which builds a new machine). */
#ifndef KRG_VMM_CONTROL_SOCKET_H
#define KRG_VMM_CONTROL_SOCKET_H

#include <stddef.h>

#include <jansson.h>

#define CONTROL_SOCKET_DIR "/run/krg-vmm"

struct machine;
struct control_socket;

/* The one running VM's socket in CONTROL_SOCKET_DIR (sockets left by
 * killed VMs are removed on the way).  0, or -1 with one line in err
 * (none, or several: the caller asks the user to name one). */
int control_socket__find(char *path, size_t size, char *err, size_t errlen);

/* Listens at CONTROL_SOCKET_DIR/vm-PID.sock.  NULL with a reason (the VM
 * runs on without one). */
struct control_socket *control_socket__start(char *err, size_t errlen);
/* Sends what is queued (briefly), closes every client, removes the
 * socket.  NULL does nothing. */
void control_socket__stop(struct control_socket *cs);

/* machine__run: before the vCPUs start (a VM paused over QMP stays
 * paused), and once the VM stopped (emits SHUTDOWN, or RESET when a new
 * machine follows).  After detach no command touches m.  cs may be NULL. */
void control_socket__attach(struct control_socket *cs, struct machine *m);
void control_socket__detach(struct control_socket *cs, struct machine *m);

/* A QMP event to every client that negotiated; data borrowed, may be
 * NULL.  Any thread; cs may be NULL. */
void control_socket__event(struct control_socket *cs, const char *name,
			   json_t *data);

/* The status text (query-krg-status, `krg-vmm status`, and what --stats
 * prints at exit on node 0). */
size_t control_socket__status_text(struct machine *m, char *buf,
				   size_t size);

/* One QMP command on a VM's control socket (sock NULL: the one VM that
 * runs here): connects, negotiates, executes.  0 with *ret (a new
 * reference) its return value, or -1 with the VM's error or why it could
 * not be asked in err. */
int control_socket__call(const char *sock, const char *cmd, json_t *args,
			 json_t **ret, char *err, size_t errlen);

/* "krg-vmm status [SOCKET]": argv after the verb.  Exit status. */
int control_socket__client(int argc, char *const argv[]);

#endif
