#include "vmm/console.h"

#include <errno.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <termios.h>
#include <unistd.h>

#include "vmm/devices/uart.h"

/* While the guest has not drained its FIFO we retry at this interval even
 * without a notification (belt and braces: a reset empties the FIFO
 * without a guest read). */
#define CONSOLE_RETRY_MS 20
#define CONSOLE_CHUNK 256

struct console {
	int in_fd, msg_fd;
	int stop_fd;   /* eventfd: console__stop() */
	int room_fd;   /* eventfd: the UART's receive FIFO has room again */
	struct uart *uart;
	struct machine_control control;
	pthread_t thread;
	bool in_open;
	struct console_escape esc;
	uint8_t pend[CONSOLE_CHUNK]; /* decoded bytes the FIFO had no room for */
	size_t pend_len;
};

/* The terminal to restore.  Global on purpose: signal handlers receive no
 * context, and there is one controlling terminal per process. */
static struct termios saved_termios;
static int saved_fd = -1;
static volatile sig_atomic_t raw_active;

void console__restore(void)
{
	if (raw_active) {
		tcsetattr(saved_fd, TCSANOW, &saved_termios);
		raw_active = 0;
	}
}

static int make_raw(int fd, char *err, size_t errlen)
{
	static bool atexit_done;
	struct termios t;

	if (tcgetattr(fd, &saved_termios) < 0) {
		snprintf(err, errlen, "cannot read the terminal settings: %s",
			 strerror(errno));
		return -1;
	}
	saved_fd = fd;
	t = saved_termios;
	/* Raw input, but output post-processing stays on so the VMM's own
	 * messages still start at column 0. */
	t.c_iflag &= ~(tcflag_t)(IGNBRK | BRKINT | PARMRK | ISTRIP | INLCR |
				 IGNCR | ICRNL | IXON);
	t.c_lflag &= ~(tcflag_t)(ECHO | ECHONL | ICANON | ISIG | IEXTEN);
	t.c_cflag &= ~(tcflag_t)(CSIZE | PARENB);
	t.c_cflag |= CS8;
	t.c_cc[VMIN] = 1;
	t.c_cc[VTIME] = 0;
	if (!atexit_done) {
		atexit(console__restore);
		atexit_done = true;
	}
	raw_active = 1;
	if (tcsetattr(fd, TCSANOW, &t) < 0) {
		raw_active = 0;
		snprintf(err, errlen, "cannot put the terminal in raw mode: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

enum console_key console__escape_feed(struct console_escape *e, uint8_t c,
				      uint8_t *out)
{
	if (!e->pending) {
		if (c == CONSOLE_ESCAPE_CHAR) {
			e->pending = true;
			return CONSOLE_KEY_NONE;
		}
		*out = c;
		return CONSOLE_KEY_BYTE;
	}
	e->pending = false;
	switch (c) {
	case 'x':
	case 'X':
		return CONSOLE_KEY_QUIT;
	case 'h':
	case 'H':
	case '?':
		return CONSOLE_KEY_HELP;
	case CONSOLE_ESCAPE_CHAR:
		*out = c;
		return CONSOLE_KEY_BYTE;
	default:
		return CONSOLE_KEY_NONE; /* unknown command: ignored, as QEMU */
	}
}

const char *console__help_text(void)
{
	return "\r\n"
	       "C-a h    print this help\r\n"
	       "C-a x    exit krg-vmm\r\n"
	       "C-a C-a  send C-a to the guest\r\n";
}

static void write_all(int fd, const char *s)
{
	size_t n = strlen(s);

	while (n) {
		ssize_t w = write(fd, s, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return;
		s += w;
		n -= (size_t)w;
	}
}

static void room_notify(void *ctx)
{
	struct console *c = ctx;
	uint64_t one = 1;

	/* Non-blocking eventfd: a saturated counter just means "already
	 * signalled". */
	if (write(c->room_fd, &one, sizeof(one)) < 0)
		return;
}

static void drain_eventfd(int fd)
{
	uint64_t v;

	if (read(fd, &v, sizeof(v)) < 0)
		return;
}

static void decode_input(struct console *c, const uint8_t *in, size_t n)
{
	size_t i;

	for (i = 0; i < n; i++) {
		uint8_t b;

		switch (console__escape_feed(&c->esc, in[i], &b)) {
		case CONSOLE_KEY_BYTE:
			/* Never overflows: decoding only shrinks the input,
			 * and we read only with an empty pend buffer. */
			c->pend[c->pend_len++] = b;
			break;
		case CONSOLE_KEY_QUIT:
			machine_control__request(&c->control, MACHINE_REQ_QUIT,
						 0);
			break;
		case CONSOLE_KEY_HELP:
			write_all(c->msg_fd, console__help_text());
			break;
		case CONSOLE_KEY_NONE:
			break;
		}
	}
}

static void read_input(struct console *c)
{
	uint8_t buf[CONSOLE_CHUNK];
	ssize_t n = read(c->in_fd, buf, sizeof(buf));

	if (n > 0) {
		decode_input(c, buf, (size_t)n);
		return;
	}
	if (n < 0 && (errno == EINTR || errno == EAGAIN ||
		      errno == EWOULDBLOCK))
		return;
	/* EOF or a dead input: the guest keeps running without it. */
	c->in_open = false;
}

static void feed_uart(struct console *c)
{
	size_t done;

	if (!c->pend_len)
		return;
	done = uart__receive(c->uart, c->pend, c->pend_len);
	memmove(c->pend, c->pend + done, c->pend_len - done);
	c->pend_len -= done;
}

static void *console_main(void *arg)
{
	struct console *c = arg;

	for (;;) {
		struct pollfd fds[3] = {
			{ .fd = c->stop_fd, .events = POLLIN },
			{ .fd = c->room_fd, .events = POLLIN },
			{ .fd = c->in_fd, .events = POLLIN },
		};
		nfds_t nfds = 2;
		int r;

		feed_uart(c);
		/* Read more only once everything decoded so far is in the
		 * FIFO: the guest's pace limits ours, nothing is dropped. */
		if (!c->pend_len && c->in_open)
			nfds = 3;
		r = poll(fds, nfds, c->pend_len ? CONSOLE_RETRY_MS : -1);
		if (r < 0) {
			if (errno == EINTR)
				continue;
			break;
		}
		if (fds[0].revents)
			break;
		if (fds[1].revents & POLLIN)
			drain_eventfd(c->room_fd);
		if (nfds == 3 && fds[2].revents)
			read_input(c);
	}
	return NULL;
}

struct console *console__start(int in_fd, int msg_fd, struct uart *uart,
			       const struct machine_control *control,
			       char *err, size_t errlen)
{
	struct console *c = calloc(1, sizeof(*c));

	if (!c) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	c->in_fd = in_fd;
	c->msg_fd = msg_fd;
	c->uart = uart;
	c->in_open = true;
	if (control)
		c->control = *control;
	c->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->room_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (c->stop_fd < 0 || c->room_fd < 0) {
		snprintf(err, errlen, "eventfd: %s", strerror(errno));
		goto fail;
	}
	if (isatty(in_fd)) {
		/* A background job touching its controlling terminal gets
		 * SIGTTOU or SIGTTIN and stops: then leave it alone.  (A tty
		 * that is not ours has no foreground group for us.) */
		pid_t fg = tcgetpgrp(in_fd);

		if (fg >= 0 && fg != getpgrp()) {
			c->in_open = false;
			write_all(msg_fd, "krg-vmm: not in the terminal's "
				  "foreground: console input disabled\n");
		} else if (make_raw(in_fd, err, errlen) < 0) {
			goto fail;
		}
	}
	uart__set_rx_notify(uart, room_notify, c);
	if (pthread_create(&c->thread, NULL, console_main, c)) {
		snprintf(err, errlen, "cannot start the console thread");
		uart__set_rx_notify(uart, NULL, NULL);
		console__restore();
		goto fail;
	}
	pthread_setname_np(c->thread, "krg-console");
	return c;
fail:
	if (c->stop_fd >= 0)
		close(c->stop_fd);
	if (c->room_fd >= 0)
		close(c->room_fd);
	free(c);
	return NULL;
}

void console__stop(struct console *c)
{
	uint64_t one = 1;

	if (!c)
		return;
	if (write(c->stop_fd, &one, sizeof(one)) < 0)
		perror("krg-vmm: console stop");
	pthread_join(c->thread, NULL);
	/* After this no vCPU can call room_notify with c. */
	uart__set_rx_notify(c->uart, NULL, NULL);
	close(c->stop_fd);
	close(c->room_fd);
	console__restore();
	free(c);
}
