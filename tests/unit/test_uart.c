/* 16550A register model, interrupts, FIFO, loopback, non-blocking output,
 * and the stdio console (escape keys, feeding the UART, EOF). */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "vmm/console.h"
#include "vmm/devices/uart.h"

struct fake_irq {
	bool level[16];
	int rises[16];
};

static void fake_set_level(void *ctx, unsigned gsi, bool level)
{
	struct fake_irq *f = ctx;

	ck_assert_uint_lt(gsi, 16);
	if (level && !f->level[gsi])
		f->rises[gsi]++;
	f->level[gsi] = level;
}

struct fake_control {
	int count;
	enum machine_request last;
	int status;
};

static void fake_request(void *ctx, enum machine_request req, int status)
{
	struct fake_control *c = ctx;

	__atomic_add_fetch(&c->count, 1, __ATOMIC_SEQ_CST);
	c->last = req;
	c->status = status;
}

static struct fake_irq irqs;
static struct uart u;
static int out_pipe[2];

static void setup(void)
{
	struct irq_sink sink = { fake_set_level, &irqs };

	memset(&irqs, 0, sizeof(irqs));
	ck_assert_int_eq(pipe2(out_pipe, O_CLOEXEC), 0);
	/* The reader side only: the UART must cope with a blocking fd. */
	fcntl(out_pipe[0], F_SETFL, O_NONBLOCK);
	uart__init(&u, &sink, UART_COM1_IRQ, out_pipe[1]);
}

static void teardown(void)
{
	uart__destroy(&u);
	close(out_pipe[0]);
	close(out_pipe[1]);
}

static uint8_t rd(unsigned reg)
{
	uint8_t v = 0;

	uart__io(&u, reg, &v, 1, false);
	return v;
}

static void wr(unsigned reg, uint8_t v)
{
	uart__io(&u, reg, &v, 1, true);
}

static ssize_t drain(uint8_t *buf, size_t cap)
{
	ssize_t n = read(out_pipe[0], buf, cap);

	return n < 0 ? 0 : n;
}

START_TEST(test_reset_values)
{
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_NO_INT);
	ck_assert_uint_eq(rd(UART_LSR), UART_LSR_THRE | UART_LSR_TEMT);
	ck_assert_uint_eq(rd(UART_MSR) & 0xF0, 0xB0);
	ck_assert_uint_eq(rd(UART_IER), 0);
	ck_assert(!irqs.level[UART_COM1_IRQ]);
}
END_TEST

START_TEST(test_scratch_dlab_ier)
{
	wr(UART_SCR, 0xA5);
	ck_assert_uint_eq(rd(UART_SCR), 0xA5);
	wr(UART_IER, 0xFF);
	ck_assert_uint_eq(rd(UART_IER), 0x0F); /* top nibble reads 0 */
	wr(UART_IER, 0);
	wr(UART_LCR, UART_LCR_DLAB | 0x03);
	wr(UART_DLL, 0x01);
	wr(UART_DLM, 0x02);
	ck_assert_uint_eq(rd(UART_DLL), 0x01);
	ck_assert_uint_eq(rd(UART_DLM), 0x02);
	wr(UART_LCR, 0x03);
	ck_assert_uint_eq(rd(UART_LCR), 0x03);
	ck_assert_uint_eq(rd(UART_IER), 0); /* the latch did not touch IER */
	/* A DLAB write to offset 0 did not transmit anything. */
	uint8_t buf[8];
	ck_assert_int_eq(drain(buf, sizeof(buf)), 0);
}
END_TEST

START_TEST(test_transmit_and_thre_interrupt)
{
	uint8_t buf[16];

	wr(UART_MCR, UART_MCR_OUT2);
	wr(UART_IER, UART_IER_THRI);
	/* Enabling THRI with THR empty interrupts at once. */
	ck_assert(irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_THRI);
	/* Reading IIR acknowledged it. */
	ck_assert(!irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_NO_INT);
	wr(UART_THR, 'A');
	wr(UART_THR, 'B');
	ck_assert_int_eq(drain(buf, sizeof(buf)), 2);
	ck_assert_mem_eq(buf, "AB", 2);
	/* THR emptied again: the interrupt is back. */
	ck_assert(irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_THRI);
	ck_assert_uint_eq(rd(UART_LSR) & 0x60, 0x60);
}
END_TEST

START_TEST(test_out2_gates_irq)
{
	wr(UART_IER, UART_IER_THRI);
	ck_assert(!irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_THRI); /* pending inside */
	wr(UART_IER, 0);
	wr(UART_IER, UART_IER_THRI);
	wr(UART_MCR, UART_MCR_OUT2);
	ck_assert(irqs.level[UART_COM1_IRQ]);
	wr(UART_MCR, 0);
	ck_assert(!irqs.level[UART_COM1_IRQ]);
}
END_TEST

START_TEST(test_receive_without_fifo)
{
	const uint8_t in[] = "xy";

	wr(UART_MCR, UART_MCR_OUT2);
	wr(UART_IER, UART_IER_RDI);
	/* 16450 mode: one holding register. */
	ck_assert_uint_eq(uart__receive(&u, in, 2), 1);
	ck_assert(irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_RDI);
	ck_assert_uint_eq(rd(UART_RBR), 'x');
	ck_assert_uint_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	ck_assert(!irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(uart__receive(&u, in + 1, 1), 1);
	ck_assert_uint_eq(rd(UART_RBR), 'y');
}
END_TEST

START_TEST(test_fifo)
{
	uint8_t in[20];
	int i;

	for (i = 0; i < 20; i++)
		in[i] = (uint8_t)('a' + i);
	wr(UART_FCR, UART_FCR_ENABLE);
	ck_assert_uint_eq(rd(UART_IIR) & UART_IIR_FIFO, UART_IIR_FIFO);
	wr(UART_IER, UART_IER_RDI);
	ck_assert_uint_eq(uart__receive(&u, in, 20), 16);
	ck_assert_uint_eq(uart__rx_space(&u), 0);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	for (i = 0; i < 16; i++)
		ck_assert_uint_eq(rd(UART_RBR), 'a' + i);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_FIFO | UART_IIR_NO_INT);

	/* Trigger level 14: fewer bytes report a character timeout. */
	wr(UART_FCR, UART_FCR_ENABLE | 0xC0);
	ck_assert_uint_eq(uart__receive(&u, in, 8), 8);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_FIFO | UART_IIR_TIMEOUT);
	ck_assert_uint_eq(uart__receive(&u, in + 8, 6), 6);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_FIFO | UART_IIR_RDI);
	/* Clear RX empties it; turning FIFOs off gives a 1-byte buffer. */
	wr(UART_FCR, UART_FCR_ENABLE | UART_FCR_CLEAR_RX);
	ck_assert_uint_eq(rd(UART_LSR) & UART_LSR_DR, 0);
	ck_assert_uint_eq(uart__rx_space(&u), 16);
	wr(UART_FCR, 0);
	ck_assert_uint_eq(rd(UART_IIR) & UART_IIR_FIFO, 0);
	ck_assert_uint_eq(uart__rx_space(&u), 1);
}
END_TEST

START_TEST(test_loopback)
{
	uint8_t buf[4];

	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_RTS | UART_MCR_OUT2);
	/* Linux's 8250 probe: CTS follows RTS, DCD follows OUT2. */
	ck_assert_uint_eq(rd(UART_MSR) & 0xF0, UART_MSR_CTS | UART_MSR_DCD);
	wr(UART_THR, 0x5A);
	ck_assert_uint_eq(drain(buf, sizeof(buf)), 0); /* not on the wire */
	ck_assert_uint_eq(rd(UART_LSR) & UART_LSR_DR, UART_LSR_DR);
	ck_assert_uint_eq(rd(UART_RBR), 0x5A);
	/* External input is disconnected in loopback. */
	ck_assert_uint_eq(uart__receive(&u, buf, 1), 0);

	/* Overrun: the second byte finds the holding register full. */
	wr(UART_IER, UART_IER_RLSI | UART_IER_RDI | UART_IER_THRI);
	wr(UART_THR, 1);
	wr(UART_THR, 2);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_RLSI); /* highest priority */
	/* Loopback disconnects the IRQ pin. */
	ck_assert(!irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_eq(rd(UART_LSR) & (UART_LSR_OE | UART_LSR_DR),
			  UART_LSR_OE | UART_LSR_DR);
	ck_assert_uint_eq(rd(UART_LSR) & UART_LSR_OE, 0); /* clear on read */
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_RDI);
	ck_assert_uint_eq(rd(UART_RBR), 1);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_THRI);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_NO_INT);
}
END_TEST

START_TEST(test_modem_status)
{
	wr(UART_MCR, UART_MCR_LOOP);
	(void)rd(UART_MSR); /* clear the deltas from entering loopback */
	wr(UART_IER, UART_IER_MSI);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_NO_INT);
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_DTR | UART_MCR_OUT1);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_MSI);
	ck_assert_uint_eq(rd(UART_MSR), UART_MSR_DSR | UART_MSR_RI |
					 UART_MSR_DDSR);
	ck_assert_uint_eq(rd(UART_IIR), UART_IIR_NO_INT);
	/* RI's trailing edge sets TERI. */
	wr(UART_MCR, UART_MCR_LOOP | UART_MCR_DTR);
	ck_assert_uint_eq(rd(UART_MSR) & 0x0F, UART_MSR_TERI);
	/* Out of loopback the console's idle lines come back. */
	wr(UART_MCR, 0);
	ck_assert_uint_eq(rd(UART_MSR) & 0xF0, 0xB0);
}
END_TEST

static int notified;

static void count_notify(void *ctx)
{
	(void)ctx;
	notified++;
}

START_TEST(test_rx_notify)
{
	uint8_t in[18] = { 0 };

	notified = 0;
	uart__set_rx_notify(&u, count_notify, NULL);
	wr(UART_FCR, UART_FCR_ENABLE);
	ck_assert_uint_eq(uart__receive(&u, in, 10), 10);
	(void)rd(UART_RBR);
	ck_assert_int_eq(notified, 0); /* nobody was waiting */
	ck_assert_uint_eq(uart__receive(&u, in, 18), 7);
	(void)rd(UART_RBR);
	ck_assert_int_eq(notified, 1);
	(void)rd(UART_RBR);
	ck_assert_int_eq(notified, 1);
}
END_TEST

START_TEST(test_output_never_blocks)
{
	uint8_t buf[65536];
	int flags = fcntl(out_pipe[1], F_GETFL);
	size_t total = 0;
	ssize_t n;
	int i;

	/* Fill the pipe, then hand the UART a blocking, full fd. */
	fcntl(out_pipe[1], F_SETFL, flags | O_NONBLOCK);
	memset(buf, '.', sizeof(buf));
	while ((n = write(out_pipe[1], buf, sizeof(buf))) > 0)
		;
	fcntl(out_pipe[1], F_SETFL, flags);
	for (i = 0; i < UART_TX_BUF_SIZE + 10; i++)
		wr(UART_THR, (uint8_t)('0' + i % 10));
	ck_assert_uint_eq(u.tx_len, UART_TX_BUF_SIZE);
	ck_assert_uint_eq(u.tx_dropped, 10);
	/* Drain the filler; buffered output follows in order. */
	while ((n = drain(buf, sizeof(buf))) > 0)
		;
	ck_assert_uint_eq(uart__flush(&u, 1000), 0);
	while ((n = drain(buf + total, sizeof(buf) - total)) > 0)
		total += (size_t)n;
	ck_assert_uint_eq(total, UART_TX_BUF_SIZE);
	for (i = 0; i < UART_TX_BUF_SIZE; i++)
		ck_assert_uint_eq(buf[i], '0' + i % 10);
}
END_TEST

START_TEST(test_wide_access_and_post_load)
{
	uint8_t d[2] = { 0x11, 0x22 };

	/* A word write at 0x3FE covers MSR (read-only) and SCR. */
	uart__io(&u, UART_MSR, d, 2, true);
	ck_assert_uint_eq(rd(UART_SCR), 0x22);
	/* Beyond the 8 registers: all ones, no crash. */
	uart__io(&u, 7, d, 2, false);
	ck_assert_uint_eq(d[1], 0xFF);

	/* A hostile blob cannot make the FIFO index escape. */
	u.s.rx_head = 200;
	u.s.rx_count = 200;
	u.s.mcr = UART_MCR_OUT2;
	u.s.ier = UART_IER_RDI;
	uart__post_load(&u);
	ck_assert(irqs.level[UART_COM1_IRQ]);
	ck_assert_uint_le(u.s.rx_count, UART_FIFO_SIZE);
	(void)rd(UART_RBR);
}
END_TEST

START_TEST(test_escape_parser)
{
	struct console_escape e = { false };
	uint8_t out = 0;

	ck_assert_int_eq(console__escape_feed(&e, 'a', &out), CONSOLE_KEY_BYTE);
	ck_assert_uint_eq(out, 'a');
	ck_assert_int_eq(console__escape_feed(&e, 0x01, &out), CONSOLE_KEY_NONE);
	ck_assert_int_eq(console__escape_feed(&e, 'x', &out), CONSOLE_KEY_QUIT);
	/* After a command the next x is just an x. */
	ck_assert_int_eq(console__escape_feed(&e, 'x', &out), CONSOLE_KEY_BYTE);
	ck_assert_uint_eq(out, 'x');
	ck_assert_int_eq(console__escape_feed(&e, 0x01, &out), CONSOLE_KEY_NONE);
	ck_assert_int_eq(console__escape_feed(&e, 0x01, &out), CONSOLE_KEY_BYTE);
	ck_assert_uint_eq(out, 0x01);
	ck_assert_int_eq(console__escape_feed(&e, 0x01, &out), CONSOLE_KEY_NONE);
	ck_assert_int_eq(console__escape_feed(&e, 'h', &out), CONSOLE_KEY_HELP);
	ck_assert_int_eq(console__escape_feed(&e, 0x01, &out), CONSOLE_KEY_NONE);
	ck_assert_int_eq(console__escape_feed(&e, 'z', &out), CONSOLE_KEY_NONE);
	ck_assert_int_eq(console__escape_feed(&e, 'z', &out), CONSOLE_KEY_BYTE);
	ck_assert(strstr(console__help_text(), "C-a x") != NULL);
}
END_TEST

static void sleep_ms(int ms)
{
	struct timespec ts = { 0, ms * 1000000L };

	nanosleep(&ts, NULL);
}

/* Waits up to 5 s for the receive FIFO to hold n bytes. */
static bool wait_rx(unsigned n)
{
	int i;

	for (i = 0; i < 500; i++) {
		unsigned have;

		pthread_mutex_lock(&u.lock);
		have = u.s.rx_count;
		pthread_mutex_unlock(&u.lock);
		if (have >= n)
			return true;
		sleep_ms(10);
	}
	return false;
}

START_TEST(test_console_feeds_uart)
{
	struct fake_control ctl = { 0 };
	struct machine_control mc = { fake_request, &ctl };
	char err[128];
	int in[2], msg[2], i;
	char text[40], help[256];
	struct console *c;
	ssize_t n;

	ck_assert_int_eq(pipe(in), 0);
	ck_assert_int_eq(pipe2(msg, O_NONBLOCK), 0);
	wr(UART_FCR, UART_FCR_ENABLE);
	c = console__start(in[0], msg[1], &u, &mc, err, sizeof(err));
	ck_assert_ptr_nonnull(c);

	/* 40 bytes: the FIFO takes 16, the rest waits for the guest. */
	for (i = 0; i < 40; i++)
		text[i] = (char)('A' + i % 26);
	ck_assert_int_eq(write(in[1], text, 40), 40);
	ck_assert(wait_rx(16));
	for (i = 0; i < 40; i++) {
		if (i % 16 == 0)
			ck_assert(wait_rx(i + 16 <= 40 ? 16 : 40 - i));
		ck_assert_uint_eq(rd(UART_RBR), text[i]);
	}
	/* Escapes: help goes to the message fd, quit to the machine, and
	 * Ctrl-A Ctrl-A is one Ctrl-A for the guest. */
	ck_assert_int_eq(write(in[1], "\x01h\x01\x01\x01x", 6), 6);
	ck_assert(wait_rx(1));
	ck_assert_uint_eq(rd(UART_RBR), 0x01);
	for (i = 0; i < 500 && !__atomic_load_n(&ctl.count, __ATOMIC_SEQ_CST);
	     i++)
		sleep_ms(10);
	ck_assert_int_eq(ctl.count, 1);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_QUIT);
	n = read(msg[0], help, sizeof(help) - 1);
	ck_assert_int_gt(n, 0);
	help[n] = 0;
	ck_assert(strstr(help, "C-a x") != NULL);

	/* EOF ends the input but not the console; stop still works. */
	close(in[1]);
	sleep_ms(50);
	console__stop(c);
	close(in[0]);
	close(msg[0]);
	close(msg[1]);
}
END_TEST

START_TEST(test_console_tty_raw_and_restore)
{
	struct machine_control mc = { NULL, NULL };
	struct termios before, during, after;
	char err[128];
	struct console *c;
	int master, slave, msg[2];

	master = posix_openpt(O_RDWR | O_NOCTTY);
	ck_assert_int_ge(master, 0);
	ck_assert_int_eq(grantpt(master), 0);
	ck_assert_int_eq(unlockpt(master), 0);
	slave = open(ptsname(master), O_RDWR | O_NOCTTY);
	ck_assert_int_ge(slave, 0);
	ck_assert_int_eq(pipe2(msg, O_NONBLOCK), 0);
	ck_assert_int_eq(tcgetattr(slave, &before), 0);
	ck_assert(before.c_lflag & ICANON);
	wr(UART_FCR, UART_FCR_ENABLE);

	c = console__start(slave, msg[1], &u, &mc, err, sizeof(err));
	ck_assert_ptr_nonnull(c);
	ck_assert_int_eq(tcgetattr(slave, &during), 0);
	ck_assert(!(during.c_lflag & (ICANON | ECHO | ISIG)));
	ck_assert(!(during.c_iflag & ICRNL));
	ck_assert(during.c_oflag & OPOST); /* output still cooked */
	/* Raw: a carriage return arrives as it is, no line buffering. */
	ck_assert_int_eq(write(master, "q\r", 2), 2);
	ck_assert(wait_rx(2));
	ck_assert_uint_eq(rd(UART_RBR), 'q');
	ck_assert_uint_eq(rd(UART_RBR), '\r');

	console__stop(c);
	ck_assert_int_eq(tcgetattr(slave, &after), 0);
	ck_assert_uint_eq(after.c_lflag, before.c_lflag);
	ck_assert_uint_eq(after.c_iflag, before.c_iflag);
	console__restore(); /* idempotent */
	close(slave);
	close(master);
	close(msg[0]);
	close(msg[1]);
}
END_TEST

static Suite *uart_suite(void)
{
	Suite *s = suite_create("uart");
	TCase *tc = tcase_create("regs");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_reset_values);
	tcase_add_test(tc, test_scratch_dlab_ier);
	tcase_add_test(tc, test_transmit_and_thre_interrupt);
	tcase_add_test(tc, test_out2_gates_irq);
	tcase_add_test(tc, test_receive_without_fifo);
	tcase_add_test(tc, test_fifo);
	tcase_add_test(tc, test_loopback);
	tcase_add_test(tc, test_modem_status);
	tcase_add_test(tc, test_rx_notify);
	tcase_add_test(tc, test_output_never_blocks);
	tcase_add_test(tc, test_wide_access_and_post_load);
	suite_add_tcase(s, tc);

	tc = tcase_create("console");
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 30);
	tcase_add_test(tc, test_escape_parser);
	tcase_add_test(tc, test_console_feeds_uart);
	tcase_add_test(tc, test_console_tty_raw_and_restore);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(uart_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
