/* 16550A UART (COM1).  Register: PIO base UART_COM1_PORT, length
 * UART_PORT_LEN, handler uart__io, opaque = the struct uart; it raises ISA
 * IRQ UART_COM1_IRQ (the line is a level: high while an enabled interrupt
 * is pending and MCR.OUT2 is set, as the PC's IRQ gate wires it).
 *
 * Transmission is instantaneous: a byte written to THR goes straight to
 * the output fd, so THR/TEMT always read empty and the THR-empty interrupt
 * comes back as soon as the guest wrote.  The output never blocks the
 * guest: bytes the fd cannot take now wait in a bounded host-side buffer
 * and are dropped (and counted) when that is full.
 *
 * Input arrives through uart__receive() (the console thread), at most as
 * many bytes as the receive FIFO has room for. */
#ifndef KRG_VMM_DEVICES_UART_H
#define KRG_VMM_DEVICES_UART_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/device.h"

#define UART_COM1_PORT 0x3F8
#define UART_PORT_LEN 8
#define UART_COM1_IRQ 4
#define UART_FIFO_SIZE 16
#define UART_TX_BUF_SIZE 4096
#define UART_STATE_VERSION 1

/* Register offsets (DLAB = LCR bit 7 selects the divisor latch at 0/1). */
#define UART_RBR 0 /* read */
#define UART_THR 0 /* write */
#define UART_DLL 0 /* DLAB */
#define UART_IER 1
#define UART_DLM 1 /* DLAB */
#define UART_IIR 2 /* read */
#define UART_FCR 2 /* write */
#define UART_LCR 3
#define UART_MCR 4
#define UART_LSR 5
#define UART_MSR 6
#define UART_SCR 7

#define UART_IER_RDI 0x01  /* received data available */
#define UART_IER_THRI 0x02 /* THR empty */
#define UART_IER_RLSI 0x04 /* receiver line status */
#define UART_IER_MSI 0x08  /* modem status */

#define UART_IIR_NO_INT 0x01
#define UART_IIR_MSI 0x00
#define UART_IIR_THRI 0x02
#define UART_IIR_RDI 0x04
#define UART_IIR_RLSI 0x06
#define UART_IIR_TIMEOUT 0x0C
#define UART_IIR_FIFO 0xC0 /* both bits set when the FIFOs are enabled */

#define UART_FCR_ENABLE 0x01
#define UART_FCR_CLEAR_RX 0x02
#define UART_FCR_CLEAR_TX 0x04
#define UART_FCR_TRIGGER 0xC0

#define UART_LCR_DLAB 0x80

#define UART_MCR_DTR 0x01
#define UART_MCR_RTS 0x02
#define UART_MCR_OUT1 0x04
#define UART_MCR_OUT2 0x08
#define UART_MCR_LOOP 0x10

#define UART_LSR_DR 0x01
#define UART_LSR_OE 0x02
#define UART_LSR_PE 0x04
#define UART_LSR_FE 0x08
#define UART_LSR_BI 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40

#define UART_MSR_DCTS 0x01
#define UART_MSR_DDSR 0x02
#define UART_MSR_TERI 0x04
#define UART_MSR_DDCD 0x08
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80

/* Everything the guest can observe.  Plain, fixed-width, pointer-free. */
struct uart_state {
	uint8_t rx_fifo[UART_FIFO_SIZE];
	uint8_t rx_head, rx_count;
	uint8_t ier, fcr, lcr, mcr;
	uint8_t lsr_err;      /* sticky OE/PE/FE/BI, cleared by reading LSR */
	uint8_t msr;          /* status bits and pending deltas */
	uint8_t scr, dll, dlm;
	uint8_t thr_ipending; /* THR-empty interrupt waiting for the guest */
	uint8_t pad[4];
};
_Static_assert(sizeof(struct uart_state) == 32,
	       "uart_state is a saved format: bump UART_STATE_VERSION");

struct uart {
	struct uart_state s;
	pthread_mutex_t lock;
	struct irq_sink irq;
	unsigned irq_line;
	bool irq_level;          /* what the line was last set to */
	int out_fd;              /* -1 discards the output */
	/* Output the fd could not take yet (host side, never saved). */
	uint8_t tx_buf[UART_TX_BUF_SIZE];
	size_t tx_head, tx_len;
	uint64_t tx_dropped;
	/* Told (with the lock held: it must only signal, e.g. write an
	 * eventfd) when the guest made room in the receive FIFO after
	 * uart__receive() could not take everything. */
	void (*rx_notify)(void *ctx);
	void *rx_notify_ctx;
	bool rx_waiting;
};

/* out_fd: where transmitted bytes go (not closed by the UART), or -1. */
void uart__init(struct uart *u, const struct irq_sink *irq, unsigned irq_line,
		int out_fd);
void uart__destroy(struct uart *u);
/* Machine reset: the power-on register values, receive FIFO emptied. */
void uart__reset(struct uart *u);
/* io_handler_fn; offsets 0-7 from UART_COM1_PORT, accesses wider than a
 * byte touch consecutive registers. */
void uart__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	      bool is_write);
/* Queues up to n received bytes; returns how many fit (0 in loopback
 * mode, where the serial input is disconnected). */
size_t uart__receive(struct uart *u, const uint8_t *buf, size_t n);
/* Room in the receive FIFO right now. */
size_t uart__rx_space(struct uart *u);
void uart__set_rx_notify(struct uart *u, void (*fn)(void *ctx), void *ctx);
/* Tries for up to timeout_ms to write out buffered output (at exit).
 * Returns the number of bytes still pending. */
size_t uart__flush(struct uart *u, int timeout_ms);
/* After u->s was overwritten by a restore: re-drives the IRQ line. */
void uart__post_load(struct uart *u);

#endif
