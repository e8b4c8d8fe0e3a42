/* i8042: controller commands, keyboard and mouse answers, IRQ 1/12
 * edges, and the two reset paths. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/i8042.h"

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
};

static void fake_request(void *ctx, enum machine_request req, int status)
{
	struct fake_control *c = ctx;

	c->count++;
	c->last = req;
}

static struct fake_irq irqs;
static struct fake_control ctl;
static struct i8042 kbc;

static void setup(void)
{
	struct irq_sink sink = { fake_set_level, &irqs };
	struct machine_control mc = { fake_request, &ctl };

	memset(&irqs, 0, sizeof(irqs));
	memset(&ctl, 0, sizeof(ctl));
	i8042__init(&kbc, &sink, &mc);
}

static void teardown(void)
{
	i8042__destroy(&kbc);
}

static uint8_t status(void)
{
	uint8_t v;

	i8042__io_cmd(&kbc, 0, &v, 1, false);
	return v;
}

static void cmd(uint8_t v)
{
	i8042__io_cmd(&kbc, 0, &v, 1, true);
}

static void data_out(uint8_t v)
{
	i8042__io_data(&kbc, 0, &v, 1, true);
}

static uint8_t data_in(void)
{
	uint8_t v;

	i8042__io_data(&kbc, 0, &v, 1, false);
	return v;
}

/* Reads one byte the way Linux's i8042_wait_read does. */
static uint8_t expect_byte(bool aux)
{
	uint8_t st = status();

	ck_assert_uint_eq(st & I8042_STR_OBF, I8042_STR_OBF);
	ck_assert_uint_eq(st & I8042_STR_AUXOBF, aux ? I8042_STR_AUXOBF : 0);
	return data_in();
}

START_TEST(test_self_test_and_config)
{
	ck_assert_uint_eq(status() & I8042_STR_OBF, 0);
	cmd(I8042_CMD_SELF_TEST);
	ck_assert_uint_eq(status() & I8042_STR_CMD, I8042_STR_CMD);
	ck_assert_uint_eq(expect_byte(false), 0x55);
	ck_assert_uint_eq(status() & I8042_STR_OBF, 0);
	ck_assert_uint_eq(status() & I8042_STR_SYS, I8042_STR_SYS);

	cmd(I8042_CMD_READ_CFG);
	ck_assert_uint_eq(expect_byte(false), 0x45);
	cmd(I8042_CMD_WRITE_CFG);
	data_out(0xC7); /* bit 7 is reserved */
	ck_assert_uint_eq(status() & I8042_STR_CMD, 0);
	cmd(I8042_CMD_READ_CFG);
	ck_assert_uint_eq(expect_byte(false), 0x47);

	cmd(I8042_CMD_KBD_TEST);
	ck_assert_uint_eq(expect_byte(false), 0x00);
	cmd(I8042_CMD_AUX_TEST);
	ck_assert_uint_eq(expect_byte(false), 0x00);

	/* Linux's i8042_toggle_aux checks these bits flip. */
	cmd(I8042_CMD_AUX_DISABLE);
	cmd(I8042_CMD_KBD_DISABLE);
	cmd(I8042_CMD_READ_CFG);
	ck_assert_uint_eq(expect_byte(false) & 0x30, 0x30);
	cmd(I8042_CMD_AUX_ENABLE);
	cmd(I8042_CMD_KBD_ENABLE);
	cmd(I8042_CMD_READ_CFG);
	ck_assert_uint_eq(expect_byte(false) & 0x30, 0x00);
	/* Empty: port 0x60 repeats the last byte. */
	ck_assert_uint_eq(data_in(), 0x47 & ~0x30);
}
END_TEST

START_TEST(test_keyboard_reset_and_irq1)
{
	data_out(0xFF);
	ck_assert(irqs.level[I8042_KBD_IRQ]);
	ck_assert_int_eq(irqs.rises[I8042_KBD_IRQ], 1);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	/* The second byte is a fresh edge. */
	ck_assert(irqs.level[I8042_KBD_IRQ]);
	ck_assert_int_eq(irqs.rises[I8042_KBD_IRQ], 2);
	ck_assert_uint_eq(expect_byte(false), 0xAA);
	ck_assert(!irqs.level[I8042_KBD_IRQ]);

	/* With the keyboard interrupt off there is no IRQ. */
	cmd(I8042_CMD_WRITE_CFG);
	data_out(0x44);
	data_out(0xF4);
	ck_assert(!irqs.level[I8042_KBD_IRQ]);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
}
END_TEST

START_TEST(test_keyboard_commands)
{
	data_out(0xF2); /* identify, translated */
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(expect_byte(false), 0xAB);
	ck_assert_uint_eq(expect_byte(false), 0x41);
	data_out(0xED); /* LEDs + parameter */
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	data_out(0x07);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(kbc.s.kbd_leds, 7);
	data_out(0xF0); /* get scan set */
	data_out(0x00);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(expect_byte(false), 0x41);
	data_out(0xF5);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(kbc.s.kbd_enabled, 0);
	data_out(0xEE);
	ck_assert_uint_eq(expect_byte(false), 0xEE);
	/* Untranslated: the raw MF2 id. */
	cmd(I8042_CMD_WRITE_CFG);
	data_out(0x05);
	data_out(0xF2);
	ck_assert_uint_eq(expect_byte(false), 0xFA);
	ck_assert_uint_eq(expect_byte(false), 0xAB);
	ck_assert_uint_eq(expect_byte(false), 0x83);
	data_out(0x12); /* not a command */
	ck_assert_uint_eq(expect_byte(false), 0xFE);
}
END_TEST

START_TEST(test_aux)
{
	cmd(I8042_CMD_WRITE_CFG);
	data_out(0x47); /* both interrupts on */
	/* Linux's loop test: the byte comes back flagged as aux data. */
	cmd(I8042_CMD_WRITE_AUX_OBUF);
	data_out(0x5A);
	ck_assert(irqs.level[I8042_AUX_IRQ]);
	ck_assert(!irqs.level[I8042_KBD_IRQ]);
	ck_assert_uint_eq(expect_byte(true), 0x5A);
	ck_assert(!irqs.level[I8042_AUX_IRQ]);

	cmd(I8042_CMD_WRITE_AUX);
	data_out(0xFF); /* mouse reset */
	ck_assert_uint_eq(expect_byte(true), 0xFA);
	ck_assert_uint_eq(expect_byte(true), 0xAA);
	ck_assert_uint_eq(expect_byte(true), 0x00);
	ck_assert_int_eq(irqs.rises[I8042_AUX_IRQ], 4);
	cmd(I8042_CMD_WRITE_AUX);
	data_out(0xF2);
	ck_assert_uint_eq(expect_byte(true), 0xFA);
	ck_assert_uint_eq(expect_byte(true), 0x00);
	cmd(I8042_CMD_WRITE_AUX);
	data_out(0xF3); /* sample rate + parameter */
	ck_assert_uint_eq(expect_byte(true), 0xFA);
	cmd(I8042_CMD_WRITE_AUX);
	data_out(200);
	ck_assert_uint_eq(expect_byte(true), 0xFA);
	cmd(I8042_CMD_WRITE_AUX);
	data_out(0xE9); /* status: ack + 3 bytes */
	ck_assert_uint_eq(expect_byte(true), 0xFA);
	ck_assert_uint_eq(expect_byte(true), 0x00);
	ck_assert_uint_eq(expect_byte(true), 2);
	ck_assert_uint_eq(expect_byte(true), 200);

	/* Keyboard and aux bytes interleave with the right flags. */
	cmd(I8042_CMD_WRITE_KBD_OBUF);
	data_out(0x11);
	cmd(I8042_CMD_WRITE_AUX_OBUF);
	data_out(0x22);
	ck_assert(irqs.level[I8042_KBD_IRQ]);
	ck_assert_uint_eq(expect_byte(false), 0x11);
	ck_assert(irqs.level[I8042_AUX_IRQ]);
	ck_assert(!irqs.level[I8042_KBD_IRQ]);
	ck_assert_uint_eq(expect_byte(true), 0x22);
}
END_TEST

START_TEST(test_reset_paths)
{
	cmd(0xFF); /* pulses nothing */
	cmd(I8042_CMD_READ_OUTPORT);
	ck_assert_uint_eq(expect_byte(false) & 0x03, 0x03);
	cmd(I8042_CMD_WRITE_OUTPORT);
	data_out(0x03); /* reset line stays high */
	ck_assert_int_eq(ctl.count, 0);
	cmd(I8042_CMD_WRITE_OUTPORT);
	data_out(0x02);
	ck_assert_int_eq(ctl.count, 1);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_RESET);
	cmd(I8042_CMD_PULSE_RESET);
	ck_assert_int_eq(ctl.count, 2);
	cmd(0xF0);
	ck_assert_int_eq(ctl.count, 3);
	cmd(0xFD); /* bit 0 set: the reset line is not pulsed */
	ck_assert_int_eq(ctl.count, 3);
}
END_TEST

START_TEST(test_overflow_and_post_load)
{
	int i;

	for (i = 0; i < 40; i++) {
		cmd(I8042_CMD_WRITE_KBD_OBUF);
		data_out((uint8_t)i);
	}
	for (i = 0; i < I8042_QUEUE_SIZE; i++)
		ck_assert_uint_eq(data_in(), i);
	ck_assert_uint_eq(status() & I8042_STR_OBF, 0);

	kbc.s.head = 250;
	kbc.s.count = 250;
	i8042__post_load(&kbc);
	ck_assert_uint_lt(kbc.s.head, I8042_QUEUE_SIZE);
	for (i = 0; i < 20; i++)
		(void)data_in();
	ck_assert_uint_eq(status() & I8042_STR_OBF, 0);
}
END_TEST

static Suite *i8042_suite(void)
{
	Suite *s = suite_create("i8042");
	TCase *tc = tcase_create("i8042");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_self_test_and_config);
	tcase_add_test(tc, test_keyboard_reset_and_irq1);
	tcase_add_test(tc, test_keyboard_commands);
	tcase_add_test(tc, test_aux);
	tcase_add_test(tc, test_reset_paths);
	tcase_add_test(tc, test_overflow_and_post_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(i8042_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
