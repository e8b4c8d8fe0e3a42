/* 8254 PIT on a fake clock: counts and outputs in modes 0/2/3/4, latch
 * and read-back, BCD, channel 2 gate and output through port 0x61, IRQ 0
 * edges through the timer, and the minimum timer period. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/pit.h"

#define MS 1000000ull

struct fake_clock {
	uint64_t now;
	uint64_t armed;
};

static uint64_t fc_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static void fc_arm(void *ctx, uint64_t deadline)
{
	((struct fake_clock *)ctx)->armed = deadline;
}

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

static struct fake_clock clk;
static struct fake_irq irqs;
static struct pit pit;

static void setup(void)
{
	struct irq_sink sink = { fake_set_level, &irqs };
	struct dev_clock dc = { fc_now, NULL, fc_arm, &clk };

	memset(&irqs, 0, sizeof(irqs));
	clk.now = 1000 * MS + 123;
	clk.armed = 0;
	pit__init(&pit, &sink, &dc);
}

static void teardown(void)
{
	pit__destroy(&pit);
}

static void out8(unsigned port, uint8_t v)
{
	if (port == 0x61)
		pit__io_port61(&pit, 0, &v, 1, true);
	else
		pit__io(&pit, port - PIT_PORT, &v, 1, true);
}

static uint8_t in8(unsigned port)
{
	uint8_t v;

	if (port == 0x61)
		pit__io_port61(&pit, 0, &v, 1, false);
	else
		pit__io(&pit, port - PIT_PORT, &v, 1, false);
	return v;
}

static void program(unsigned ch, uint8_t ctrl_low, uint16_t count)
{
	out8(0x43, (uint8_t)(ch << 6 | 0x30 | ctrl_low));
	out8(0x40 + ch, (uint8_t)count);
	out8(0x40 + ch, (uint8_t)(count >> 8));
}

static unsigned latched(unsigned ch)
{
	unsigned lo;

	out8(0x43, (uint8_t)(ch << 6)); /* counter latch command */
	lo = in8(0x40 + ch);
	return lo | in8(0x40 + ch) << 8;
}

/* Ticks between two clock values, as the PIT counts them. */
static uint64_t ticks(uint64_t from, uint64_t to)
{
	return pit__ticks_at(to) - pit__ticks_at(from);
}

START_TEST(test_power_on)
{
	/* Channel 0 runs at 18.2 Hz as a BIOS left it. */
	ck_assert_uint_ne(clk.armed, 0);
	ck_assert_uint_le(clk.armed - clk.now, 55 * MS);
	ck_assert_uint_ge(clk.armed - clk.now, 54 * MS);
	ck_assert_uint_eq(in8(0x61) & (PIT61_GATE2 | PIT61_SPEAKER), 0);
	ck_assert_uint_eq(in8(0x43), 0xFF); /* write-only */
}
END_TEST

START_TEST(test_mode0_channel2_calibration)
{
	uint64_t t0;
	unsigned c;

	/* Linux's pit_calibrate_tsc: gate high, speaker off, mode 0. */
	out8(0x61, (uint8_t)((in8(0x61) & ~PIT61_SPEAKER) | PIT61_GATE2));
	out8(0x43, 0xB0);
	out8(0x42, 11932 & 0xFF);
	t0 = clk.now;
	out8(0x42, 11932 >> 8);
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	clk.now += 5 * MS;
	c = latched(2);
	ck_assert_uint_eq(c, 11932 - ticks(t0, clk.now));
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	clk.now = t0 + 10 * MS + 1000; /* 11932 ticks = 9.9999 ms */
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
	/* After terminal count it wraps and keeps counting down. */
	ck_assert_uint_eq(latched(2), (65536 + 11932 - ticks(t0, clk.now)) %
					      65536);

	/* Gate low suspends the count. */
	program(2, 0x00, 50000);
	clk.now += 1 * MS;
	out8(0x61, 0);
	c = latched(2);
	clk.now += 10 * MS;
	ck_assert_uint_eq(latched(2), c);
	out8(0x61, PIT61_GATE2);
	clk.now += 1 * MS;
	ck_assert_uint_le(latched(2), c - 1190);
	ck_assert_uint_ge(latched(2), c - 1194);
	/* Channel 2 never touches IRQ 0. */
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 0);
}
END_TEST

START_TEST(test_mode2_irq_pulses)
{
	uint64_t t0 = clk.now;
	int i;

	program(0, 0x04, 1193); /* mode 2, ~1 ms */
	ck_assert_uint_eq(clk.armed,
			  (uint64_t)((((unsigned __int128)pit__ticks_at(t0) + 1193) *
				       1000000000ull + PIT_HZ - 1) / PIT_HZ));
	/* Early: nothing. */
	clk.now = clk.armed - 1;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 0);
	for (i = 0; i < 1000; i++) {
		clk.now = clk.armed;
		pit__timer_fire(&pit);
	}
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1000);
	ck_assert(!irqs.level[PIT_IRQ]); /* pulses, not a level */
	ck_assert_uint_eq(pit__missed_ticks(&pit), 0);
	/* 1000 periods of 1193 ticks. */
	ck_assert_uint_eq(pit__ticks_at(clk.now) - pit__ticks_at(t0),
			  1000 * 1193);
	/* Counting N..1. */
	ck_assert_uint_eq(latched(0), 1193);
	clk.now = clk.armed - 1;
	ck_assert_uint_ge(latched(0), 1);
	ck_assert_uint_le(latched(0), 2);

	/* The host timer was late by 3.5 periods: one edge, 3 missed. */
	clk.now = clk.armed + 3 * 999847 + 500000;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1001);
	ck_assert_uint_eq(pit__missed_ticks(&pit), 3);
}
END_TEST

START_TEST(test_min_timer_period)
{
	uint64_t before;

	program(0, 0x04, 2); /* mode 2, 1.7 us: absurd */
	ck_assert_uint_ge(clk.armed, clk.now + PIT_MIN_PERIOD_NS);
	clk.now = clk.armed;
	before = clk.now;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1);
	ck_assert_uint_eq(clk.armed, before + PIT_MIN_PERIOD_NS);
	clk.now += 1 * MS;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 2);
	/* ~1193 ticks in the last 1.05 ms: ~626 periods, merged. */
	ck_assert_uint_ge(pit__missed_ticks(&pit), 600);
	ck_assert_uint_le(pit__missed_ticks(&pit), 660);
}
END_TEST

START_TEST(test_mode0_one_shot_irq)
{
	program(0, 0x00, 1000);
	clk.now = clk.armed;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1);
	ck_assert_uint_eq(clk.armed, 0); /* once */
	clk.now += 100 * MS;
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1);
	/* A new count re-arms it. */
	program(0, 0x00, 1000);
	ck_assert_uint_ne(clk.armed, 0);
}
END_TEST

START_TEST(test_mode3_square_wave)
{
	uint64_t t0;
	uint8_t st;

	out8(0x61, PIT61_GATE2);
	program(2, 0x06, 100); /* mode 3 */
	t0 = clk.now;
	/* Find the clock values of tick 10 and tick 60 after the load. */
	while (ticks(t0, clk.now) < 10)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
	ck_assert_uint_eq(latched(2), 100 - 2 * ticks(t0, clk.now));
	while (ticks(t0, clk.now) < 49)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2); /* last high */
	while (ticks(t0, clk.now) < 50)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0); /* second half */
	while (ticks(t0, clk.now) < 60)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	/* Read-back status only: OUT low, lsb/msb, mode 3, binary. */
	out8(0x43, 0xE8);
	st = in8(0x42);
	ck_assert_uint_eq(st, 0x30 | 3 << 1);
	while (ticks(t0, clk.now) < 100)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
	/* Gate low forces OUT high in mode 3. */
	while (ticks(t0, clk.now) < 160)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	out8(0x61, 0);
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
}
END_TEST

START_TEST(test_gate_triggered_and_strobe)
{
	uint64_t t0;

	/* Mode 1: loading does not start it; the gate's rising edge does,
	 * and OUT is low for the count. */
	out8(0x61, 0);
	program(2, 0x02, 100);
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
	clk.now += 1 * MS;
	ck_assert_uint_eq(latched(2), 100); /* not counting yet */
	out8(0x61, PIT61_GATE2);
	t0 = clk.now;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	while (ticks(t0, clk.now) < 99)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);
	while (ticks(t0, clk.now) < 100)
		clk.now += 100;
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, PIT61_OUT2);
	/* Retrigger: low again for a full count. */
	out8(0x61, 0);
	out8(0x61, PIT61_GATE2);
	ck_assert_uint_eq(in8(0x61) & PIT61_OUT2, 0);

	/* Mode 4 on channel 0: OUT high, one low tick at terminal count,
	 * one IRQ edge. */
	program(0, 0x08, 100);
	t0 = clk.now;
	out8(0x43, 0xE2);
	ck_assert_uint_eq(in8(0x40) & 0x80, 0x80);
	while (ticks(t0, clk.now) < 100)
		clk.now += 100;
	out8(0x43, 0xE2);
	ck_assert_uint_eq(in8(0x40) & 0x80, 0x00);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1); /* delivered by the I/O */
	while (ticks(t0, clk.now) < 101)
		clk.now += 100;
	out8(0x43, 0xE2);
	ck_assert_uint_eq(in8(0x40) & 0x80, 0x80);
	pit__timer_fire(&pit);
	ck_assert_int_eq(irqs.rises[PIT_IRQ], 1);
	ck_assert_uint_eq(clk.armed, 0);
}
END_TEST

START_TEST(test_latch_and_readback)
{
	unsigned lo, hi, c;

	program(0, 0x04, 30000);
	clk.now += 1 * MS;
	out8(0x43, 0x00); /* latch channel 0 */
	clk.now += 5 * MS;
	out8(0x43, 0x00); /* ignored: already latched */
	lo = in8(0x40);
	hi = in8(0x40);
	c = lo | hi << 8;
	ck_assert_uint_ge(c, 30000 - 1194);
	ck_assert_uint_le(c, 30000 - 1192);
	/* Read-back of count and status: status first, then the count. */
	out8(0x43, 0xC2);
	ck_assert_uint_eq(in8(0x40), 0x80 | 0x30 | 2 << 1); /* OUT high */
	lo = in8(0x40);
	hi = in8(0x40);
	ck_assert_uint_eq(lo | hi << 8, 30000 - ticks(clk.now - 6 * MS, clk.now));
	/* Null count is set between the control word and the count. */
	out8(0x43, 0x34);
	out8(0x43, 0xE2);
	ck_assert_uint_eq(in8(0x40) & 0x40, 0x40);
	out8(0x40, 0x10);
	out8(0x40, 0x00);
	out8(0x43, 0xE2);
	ck_assert_uint_eq(in8(0x40) & 0x40, 0x00);

	/* Low byte only access. */
	out8(0x43, 0x14); /* ch0, lsb only, mode 2 */
	out8(0x40, 200);
	clk.now += 50 * 838; /* ~50 ticks */
	c = in8(0x40);
	ck_assert_uint_le(c, 151);
	ck_assert_uint_ge(c, 149);
	ck_assert_uint_eq(in8(0x40), c); /* no flip-flop: lsb again */
}
END_TEST

START_TEST(test_bcd_and_zero_reload)
{
	uint64_t t0;

	/* BCD 1000 in mode 0. */
	out8(0x43, 0x31);
	out8(0x40, 0x00);
	t0 = clk.now;
	out8(0x40, 0x10);
	while (ticks(t0, clk.now) < 100)
		clk.now += 100;
	ck_assert_uint_eq(latched(0), 0x0900);
	/* BCD 0 means 10000. */
	out8(0x43, 0x35); /* mode 2, BCD */
	out8(0x40, 0);
	out8(0x40, 0);
	ck_assert_uint_eq(latched(0), 0x0000); /* 10000 shows as 0000 */
	/* Binary 0 means 65536: one period is ~54.9 ms. */
	t0 = clk.now;
	program(0, 0x04, 0);
	ck_assert_uint_ge(clk.armed - t0, 54900 * 1000ull);
	ck_assert_uint_le(clk.armed - t0, 54940 * 1000ull);
	ck_assert_uint_eq(latched(0), 0); /* 65536 reads as 0 */
	clk.now += 10 * MS;
	ck_assert_uint_eq(latched(0), 65536 - ticks(t0, clk.now));
}
END_TEST

START_TEST(test_port61)
{
	out8(0x61, 0xFF);
	ck_assert_uint_eq(in8(0x61) & 0x0F, 0x0F);
	/* The refresh bit flips every ~15 us. */
	clk.now = 1000 * PIT_REFRESH_NS;
	ck_assert_uint_eq(in8(0x61) & PIT61_REFRESH, 0);
	clk.now += PIT_REFRESH_NS;
	ck_assert_uint_eq(in8(0x61) & PIT61_REFRESH, PIT61_REFRESH);
	clk.now += PIT_REFRESH_NS;
	ck_assert_uint_eq(in8(0x61) & PIT61_REFRESH, 0);
}
END_TEST

START_TEST(test_post_load)
{
	program(0, 0x04, 1193);
	clk.armed = 0;
	pit.s.ch[1].reload = 0;  /* corrupt: would divide by zero */
	pit.s.ch[1].mode = 9;
	pit.s.ch[1].counting = 1;
	pit__post_load(&pit);
	ck_assert_uint_ne(clk.armed, 0);
	(void)latched(1);
	/* Wide and out-of-range accesses do not crash. */
	uint8_t d[4] = { 0 };
	pit__io(&pit, 2, d, 4, false);
	ck_assert_uint_eq(d[2], 0xFF);
}
END_TEST

static Suite *pit_suite(void)
{
	Suite *s = suite_create("pit");
	TCase *tc = tcase_create("pit");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_power_on);
	tcase_add_test(tc, test_mode0_channel2_calibration);
	tcase_add_test(tc, test_mode2_irq_pulses);
	tcase_add_test(tc, test_min_timer_period);
	tcase_add_test(tc, test_mode0_one_shot_irq);
	tcase_add_test(tc, test_mode3_square_wave);
	tcase_add_test(tc, test_gate_triggered_and_strobe);
	tcase_add_test(tc, test_latch_and_readback);
	tcase_add_test(tc, test_bcd_and_zero_reload);
	tcase_add_test(tc, test_port61);
	tcase_add_test(tc, test_post_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pit_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
