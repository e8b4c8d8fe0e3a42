/* The stdio backend of -serial stdio: a reader thread feeds the terminal
 * (or whatever stdin is) into the UART, and the QEMU-style escape keys
 * (Ctrl-A x quit, Ctrl-A h help, Ctrl-A Ctrl-A a literal Ctrl-A) go to the
 * machine instead.  A tty is put in raw mode (no echo, no line editing, no
 * signals: Ctrl-C goes to the guest) and restored by console__stop(), at
 * exit, and by console__restore() from the VMM's signal handlers.  A
 * non-tty stdin is read as it is; its EOF just ends the input. */
#ifndef KRG_VMM_CONSOLE_H
#define KRG_VMM_CONSOLE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/device.h"

struct uart;
struct console;

#define CONSOLE_ESCAPE_CHAR 0x01 /* Ctrl-A */

/* What one input byte means once the escape keys are taken out. */
enum console_key {
	CONSOLE_KEY_NONE, /* swallowed (escape prefix, unknown command) */
	CONSOLE_KEY_BYTE, /* *out goes to the guest */
	CONSOLE_KEY_QUIT, /* Ctrl-A x */
	CONSOLE_KEY_HELP, /* Ctrl-A h (or ?) */
};

struct console_escape {
	bool pending; /* the previous byte was Ctrl-A */
};

/* Pure: the escape-key state machine, one byte at a time. */
enum console_key console__escape_feed(struct console_escape *e, uint8_t c,
				      uint8_t *out);
/* The text Ctrl-A h prints (lines end in \r\n: the tty is raw). */
const char *console__help_text(void);

/* Starts the reader thread on in_fd (normally 0).  Help text goes to
 * msg_fd (normally 2).  Returns NULL with a reason in err on failure. */
struct console *console__start(int in_fd, int msg_fd, struct uart *uart,
			       const struct machine_control *control,
			       char *err, size_t errlen);
/* Stops and joins the thread, restores the terminal.  NULL is a no-op. */
void console__stop(struct console *c);
/* Puts the terminal back as it was.  Async-signal-safe and idempotent:
 * call it from SIGINT/SIGTERM handlers before exiting. */
void console__restore(void);

#endif
