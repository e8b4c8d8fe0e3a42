#include "vmm/devices/uart.h"

#include <errno.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

/* Modem inputs of a console that is always "there". */
#define UART_MSR_IDLE (UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS)

static void reset_regs(struct uart_state *s)
{
	memset(s, 0, sizeof(*s));
	s->msr = UART_MSR_IDLE;
	s->dll = 0x0C; /* 9600 baud, as a BIOS would leave it */
}

void uart__init(struct uart *u, const struct irq_sink *irq, unsigned irq_line,
		int out_fd)
{
	memset(u, 0, sizeof(*u));
	pthread_mutex_init(&u->lock, NULL);
	if (irq)
		u->irq = *irq;
	u->irq_line = irq_line;
	u->out_fd = out_fd;
	reset_regs(&u->s);
}

void uart__destroy(struct uart *u)
{
	pthread_mutex_destroy(&u->lock);
}

static bool fifo_on(const struct uart_state *s)
{
	return s->fcr & UART_FCR_ENABLE;
}

static unsigned rx_capacity(const struct uart_state *s)
{
	/* With the FIFOs off the 16550A is a 16450: one holding register. */
	return fifo_on(s) ? UART_FIFO_SIZE : 1;
}

static unsigned rx_trigger(const struct uart_state *s)
{
	static const unsigned level[4] = { 1, 4, 8, 14 };

	return level[(s->fcr & UART_FCR_TRIGGER) >> 6];
}

static bool rx_push(struct uart_state *s, uint8_t c)
{
	if (s->rx_count >= rx_capacity(s))
		return false;
	s->rx_fifo[(s->rx_head + s->rx_count) % UART_FIFO_SIZE] = c;
	s->rx_count++;
	return true;
}

static void rx_clear(struct uart_state *s)
{
	s->rx_head = 0;
	s->rx_count = 0;
}

/* The highest-priority pending, enabled interrupt (IIR bits 3:0). */
static uint8_t iir_id(const struct uart_state *s)
{
	if ((s->ier & UART_IER_RLSI) && (s->lsr_err & 0x1E))
		return UART_IIR_RLSI;
	if ((s->ier & UART_IER_RDI) && s->rx_count) {
		/* No character timer here: data below the trigger level is
		 * reported at once as a timeout, so it is never stranded. */
		if (fifo_on(s) && s->rx_count < rx_trigger(s))
			return UART_IIR_TIMEOUT;
		return UART_IIR_RDI;
	}
	if ((s->ier & UART_IER_THRI) && s->thr_ipending)
		return UART_IIR_THRI;
	if ((s->ier & UART_IER_MSI) && (s->msr & 0x0F))
		return UART_IIR_MSI;
	return UART_IIR_NO_INT;
}

static bool irq_wanted(const struct uart_state *s)
{
	/* On a PC, OUT2 enables the IRQ buffer; loopback disconnects OUT2
	 * from the pin. */
	if (!(s->mcr & UART_MCR_OUT2) || (s->mcr & UART_MCR_LOOP))
		return false;
	return iir_id(s) != UART_IIR_NO_INT;
}

/* Called with the lock held: levels must reach the interrupt controller
 * in the order the state changed (lock order device -> irq controller). */
static void update_irq(struct uart *u, bool force)
{
	bool level = irq_wanted(&u->s);

	if (level != u->irq_level || force) {
		u->irq_level = level;
		irq_sink__set(&u->irq, u->irq_line, level);
	}
}

/* Writes without ever blocking: poll first, since making a shared stdout
 * O_NONBLOCK would change it for every other process using it.  Returns
 * bytes consumed (written, or dropped because the reader is gone), 0 if
 * the fd is full right now. */
static size_t write_nonblock(int fd, const uint8_t *buf, size_t n)
{
	struct pollfd p = { .fd = fd, .events = POLLOUT };
	ssize_t w;
	int r;

	do
		r = poll(&p, 1, 0);
	while (r < 0 && errno == EINTR);
	if (r < 0 || (p.revents & (POLLERR | POLLHUP | POLLNVAL)))
		return n; /* nobody reads this output any more: drop */
	if (r == 0 || !(p.revents & POLLOUT))
		return 0;
	/* Small chunks: POLLOUT only promises some room. */
	if (n > 256)
		n = 256;
	do
		w = write(fd, buf, n);
	while (w < 0 && errno == EINTR);
	if (w < 0)
		return (errno == EAGAIN || errno == EWOULDBLOCK) ? 0 : n;
	return (size_t)w;
}

static void tx_flush_some(struct uart *u)
{
	while (u->tx_len) {
		size_t chunk = UART_TX_BUF_SIZE - u->tx_head;
		size_t done;

		if (chunk > u->tx_len)
			chunk = u->tx_len;
		done = write_nonblock(u->out_fd, u->tx_buf + u->tx_head, chunk);
		if (!done)
			return;
		u->tx_head = (u->tx_head + done) % UART_TX_BUF_SIZE;
		u->tx_len -= done;
	}
	u->tx_head = 0;
}

static void tx_output(struct uart *u, uint8_t c)
{
	if (u->out_fd < 0)
		return;
	if (u->tx_len)
		tx_flush_some(u);
	if (!u->tx_len && write_nonblock(u->out_fd, &c, 1))
		return;
	if (u->tx_len == UART_TX_BUF_SIZE) {
		u->tx_dropped++;
		return;
	}
	u->tx_buf[(u->tx_head + u->tx_len) % UART_TX_BUF_SIZE] = c;
	u->tx_len++;
}

static void transmit(struct uart *u, uint8_t c)
{
	struct uart_state *s = &u->s;

	if (s->mcr & UART_MCR_LOOP) {
		if (!rx_push(s, c))
			s->lsr_err |= UART_LSR_OE;
	} else {
		tx_output(u, c);
	}
	/* The shift register drained at once: THR is empty again. */
	s->thr_ipending = 1;
}

static void update_msr(struct uart_state *s)
{
	uint8_t old = s->msr, now = UART_MSR_IDLE, delta = 0;

	if (s->mcr & UART_MCR_LOOP) {
		now = 0;
		if (s->mcr & UART_MCR_RTS)
			now |= UART_MSR_CTS;
		if (s->mcr & UART_MCR_DTR)
			now |= UART_MSR_DSR;
		if (s->mcr & UART_MCR_OUT1)
			now |= UART_MSR_RI;
		if (s->mcr & UART_MCR_OUT2)
			now |= UART_MSR_DCD;
	}
	if ((old ^ now) & UART_MSR_CTS)
		delta |= UART_MSR_DCTS;
	if ((old ^ now) & UART_MSR_DSR)
		delta |= UART_MSR_DDSR;
	if ((old & UART_MSR_RI) && !(now & UART_MSR_RI))
		delta |= UART_MSR_TERI; /* trailing edge only */
	if ((old ^ now) & UART_MSR_DCD)
		delta |= UART_MSR_DDCD;
	s->msr = (uint8_t)((old & 0x0F) | delta | now);
}

static void write_reg(struct uart *u, unsigned reg, uint8_t v)
{
	struct uart_state *s = &u->s;
	bool dlab = s->lcr & UART_LCR_DLAB;

	switch (reg) {
	case UART_THR:
		if (dlab) {
			s->dll = v;
		} else {
			s->thr_ipending = 0;
			transmit(u, v);
		}
		break;
	case UART_IER:
		if (dlab) {
			s->dlm = v;
		} else {
			uint8_t old = s->ier;

			s->ier = v & 0x0F;
			/* Enabling THRI with THR empty interrupts at once
			 * (Linux's THRE test depends on it). */
			if ((s->ier & UART_IER_THRI) && !(old & UART_IER_THRI))
				s->thr_ipending = 1;
		}
		break;
	case UART_FCR:
		/* Toggling FIFO enable empties the FIFOs; the other bits
		 * only stick while FIFO enable is written as 1. */
		if ((v ^ s->fcr) & UART_FCR_ENABLE)
			rx_clear(s);
		if (!(v & UART_FCR_ENABLE)) {
			s->fcr = 0;
			break;
		}
		if (v & UART_FCR_CLEAR_RX)
			rx_clear(s);
		s->fcr = v & (UART_FCR_ENABLE | 0x08 | UART_FCR_TRIGGER);
		break;
	case UART_LCR:
		s->lcr = v;
		break;
	case UART_MCR:
		s->mcr = v & 0x1F;
		update_msr(s);
		break;
	case UART_SCR:
		s->scr = v;
		break;
	default:
		break; /* LSR and MSR are read-only (factory test only) */
	}
}

static uint8_t read_reg(struct uart *u, unsigned reg, bool *room)
{
	struct uart_state *s = &u->s;
	bool dlab = s->lcr & UART_LCR_DLAB;
	uint8_t v = 0;

	switch (reg) {
	case UART_RBR:
		if (dlab)
			return s->dll;
		if (s->rx_count) {
			v = s->rx_fifo[s->rx_head];
			s->rx_head = (s->rx_head + 1) % UART_FIFO_SIZE;
			s->rx_count--;
			*room = true;
		}
		return v;
	case UART_IER:
		return dlab ? s->dlm : s->ier;
	case UART_IIR:
		v = iir_id(s);
		/* Reading IIR acknowledges a THR-empty interrupt only when
		 * that is what it reports. */
		if (v == UART_IIR_THRI)
			s->thr_ipending = 0;
		return v | (fifo_on(s) ? UART_IIR_FIFO : 0);
	case UART_LCR:
		return s->lcr;
	case UART_MCR:
		return s->mcr;
	case UART_LSR:
		v = s->lsr_err | UART_LSR_THRE | UART_LSR_TEMT;
		if (s->rx_count)
			v |= UART_LSR_DR;
		s->lsr_err = 0;
		return v;
	case UART_MSR:
		v = s->msr;
		s->msr &= 0xF0;
		return v;
	case UART_SCR:
		return s->scr;
	}
	return 0xFF;
}

void uart__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	      bool is_write)
{
	struct uart *u = opaque;
	bool room = false;
	uint32_t i;

	pthread_mutex_lock(&u->lock);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		if (reg >= UART_PORT_LEN) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		if (is_write)
			write_reg(u, (unsigned)reg, data[i]);
		else
			data[i] = read_reg(u, (unsigned)reg, &room);
	}
	update_irq(u, false);
	/* Called under the lock so that uart__set_rx_notify(NULL) guarantees
	 * no call is still in flight; the callback must only signal. */
	if (room && u->rx_waiting && u->rx_notify) {
		u->rx_waiting = false;
		u->rx_notify(u->rx_notify_ctx);
	}
	pthread_mutex_unlock(&u->lock);
}

static size_t rx_space_locked(const struct uart_state *s)
{
	if (s->mcr & UART_MCR_LOOP)
		return 0;
	return rx_capacity(s) - s->rx_count;
}

size_t uart__receive(struct uart *u, const uint8_t *buf, size_t n)
{
	size_t i, room;

	pthread_mutex_lock(&u->lock);
	room = rx_space_locked(&u->s);
	for (i = 0; i < n && i < room; i++)
		rx_push(&u->s, buf[i]);
	u->rx_waiting = i < n;
	update_irq(u, false);
	pthread_mutex_unlock(&u->lock);
	return i;
}

size_t uart__rx_space(struct uart *u)
{
	size_t room;

	pthread_mutex_lock(&u->lock);
	room = rx_space_locked(&u->s);
	pthread_mutex_unlock(&u->lock);
	return room;
}

void uart__set_rx_notify(struct uart *u, void (*fn)(void *ctx), void *ctx)
{
	pthread_mutex_lock(&u->lock);
	u->rx_notify = fn;
	u->rx_notify_ctx = ctx;
	pthread_mutex_unlock(&u->lock);
}

size_t uart__flush(struct uart *u, int timeout_ms)
{
	size_t left;
	int waited = 0;

	pthread_mutex_lock(&u->lock);
	while (u->tx_len && u->out_fd >= 0) {
		struct pollfd p = { .fd = u->out_fd, .events = POLLOUT };

		tx_flush_some(u);
		if (!u->tx_len || waited >= timeout_ms)
			break;
		/* Bounded waits with the lock held: only used at exit. */
		if (poll(&p, 1, 10) == 0)
			waited += 10;
		else
			waited++;
	}
	left = u->tx_len;
	pthread_mutex_unlock(&u->lock);
	return left;
}

void uart__reset(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	reset_regs(&u->s);
	update_irq(u, false);
	pthread_mutex_unlock(&u->lock);
}

void uart__post_load(struct uart *u)
{
	pthread_mutex_lock(&u->lock);
	/* A hostile or corrupt blob must not index outside the FIFO. */
	u->s.rx_head %= UART_FIFO_SIZE;
	if (u->s.rx_count > rx_capacity(&u->s))
		u->s.rx_count = (uint8_t)rx_capacity(&u->s);
	update_irq(u, true);
	pthread_mutex_unlock(&u->lock);
}
