/* MC146818 RTC/CMOS: time in BCD/binary/12 h, UIP, guest-set time,
 * register C, periodic/update/alarm interrupts on a fake clock, and the
 * CMOS memory-size fields. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/rtc.h"

#define NS 1000000000ll
#define T0 1709214356ll /* 2024-02-29 13:45:56 UTC, a Thursday */

struct fake_clock {
	uint64_t now;
	int64_t wall;
	uint64_t armed; /* 0 = cancelled */
};

static uint64_t fc_now(void *ctx)
{
	return ((struct fake_clock *)ctx)->now;
}

static int64_t fc_wall(void *ctx)
{
	return ((struct fake_clock *)ctx)->wall;
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
static struct rtc rtc;

static void make_rtc(uint64_t below, uint64_t above, unsigned cpus)
{
	struct irq_sink sink = { fake_set_level, &irqs };
	struct dev_clock dc = { fc_now, fc_wall, fc_arm, &clk };

	memset(&irqs, 0, sizeof(irqs));
	clk.now = 5 * NS; /* monotonic: anything but 0 */
	clk.wall = T0 * NS + NS / 2;
	clk.armed = 0;
	rtc__init(&rtc, below, above, cpus, &sink, &dc);
}

static void setup(void)
{
	make_rtc(256ull << 20, 0, 1);
}

static void teardown(void)
{
	rtc__destroy(&rtc);
}

static uint8_t cmos_read(uint8_t idx)
{
	uint8_t v = idx;

	rtc__io(&rtc, 0, &v, 1, true);
	rtc__io(&rtc, 1, &v, 1, false);
	return v;
}

static void cmos_write(uint8_t idx, uint8_t val)
{
	rtc__io(&rtc, 0, &idx, 1, true);
	rtc__io(&rtc, 1, &val, 1, true);
}

static void advance(int64_t ns)
{
	clk.now += (uint64_t)ns;
	clk.wall += ns;
}

START_TEST(test_time_bcd)
{
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x56);
	ck_assert_uint_eq(cmos_read(RTC_MINUTES), 0x45);
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x13);
	ck_assert_uint_eq(cmos_read(RTC_DAY_OF_WEEK), 5);
	ck_assert_uint_eq(cmos_read(RTC_DAY_OF_MONTH), 0x29);
	ck_assert_uint_eq(cmos_read(RTC_MONTH), 0x02);
	ck_assert_uint_eq(cmos_read(RTC_YEAR), 0x24);
	ck_assert_uint_eq(cmos_read(RTC_CENTURY), 0x20);
	advance(4 * NS); /* 13:46:00 */
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x00);
	ck_assert_uint_eq(cmos_read(RTC_MINUTES), 0x46);
}
END_TEST

START_TEST(test_time_binary_and_12h)
{
	cmos_write(RTC_REG_B, RTC_B_DM_BINARY | RTC_B_24H);
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 56);
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 13);
	ck_assert_uint_eq(cmos_read(RTC_DAY_OF_MONTH), 29);
	ck_assert_uint_eq(cmos_read(RTC_YEAR), 24);
	cmos_write(RTC_REG_B, RTC_B_DM_BINARY); /* 12 hour, binary */
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x80 | 1);
	cmos_write(RTC_REG_B, 0); /* 12 hour, BCD */
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x81);
	advance(-13 * 3600 * NS); /* 00:45: 12 AM */
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x12);
}
END_TEST

START_TEST(test_uip)
{
	/* Half a second in: no update close. */
	ck_assert_uint_eq(cmos_read(RTC_REG_A) & RTC_A_UIP, 0);
	ck_assert_uint_eq(cmos_read(RTC_REG_A), 0x26);
	/* 200 us before the next second: update in progress. */
	advance(NS / 2 - 200000);
	ck_assert_uint_eq(cmos_read(RTC_REG_A) & RTC_A_UIP, RTC_A_UIP);
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x56);
	/* 300 us before: not yet. */
	advance(-100000);
	ck_assert_uint_eq(cmos_read(RTC_REG_A) & RTC_A_UIP, 0);
	/* After the boundary the new second shows and UIP is gone. */
	advance(300001);
	ck_assert_uint_eq(cmos_read(RTC_REG_A) & RTC_A_UIP, 0);
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x57);
	/* While SET is held nothing updates, so no UIP either. */
	advance(NS - 100000);
	cmos_write(RTC_REG_B, RTC_B_SET | RTC_B_24H);
	ck_assert_uint_eq(cmos_read(RTC_REG_A) & RTC_A_UIP, 0);
}
END_TEST

START_TEST(test_guest_sets_time)
{
	/* Linux's way: SET, write everything, clear SET.  SET drops UIE. */
	cmos_write(RTC_REG_B, RTC_B_SET | RTC_B_UIE | RTC_B_24H);
	ck_assert_uint_eq(cmos_read(RTC_REG_B), RTC_B_SET | RTC_B_24H);
	cmos_write(RTC_SECONDS, 0x58);
	cmos_write(RTC_MINUTES, 0x59);
	cmos_write(RTC_HOURS, 0x23);
	cmos_write(RTC_DAY_OF_MONTH, 0x31);
	cmos_write(RTC_MONTH, 0x12);
	cmos_write(RTC_YEAR, 0x30);
	advance(10 * NS); /* frozen while SET is held */
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x58);
	cmos_write(RTC_REG_B, RTC_B_24H);
	ck_assert_int_eq(rtc.s.offset_ns, 1924991998ll * NS - clk.wall);
	advance(3 * NS); /* across midnight into 2031 */
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x01);
	ck_assert_uint_eq(cmos_read(RTC_MINUTES), 0x00);
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x00);
	ck_assert_uint_eq(cmos_read(RTC_DAY_OF_MONTH), 0x01);
	ck_assert_uint_eq(cmos_read(RTC_MONTH), 0x01);
	ck_assert_uint_eq(cmos_read(RTC_YEAR), 0x31);
	ck_assert_uint_eq(cmos_read(RTC_DAY_OF_WEEK), 4); /* a Wednesday */

	/* One register without SET: the others keep the current time. */
	cmos_write(RTC_MINUTES, 0x30);
	ck_assert_uint_eq(cmos_read(RTC_MINUTES), 0x30);
	ck_assert_uint_eq(cmos_read(RTC_HOURS), 0x00);
	ck_assert_uint_eq(cmos_read(RTC_YEAR), 0x31);
	ck_assert_uint_eq(cmos_read(RTC_SECONDS), 0x01);

	/* Garbage (bad BCD, month 0) is clamped, never trusted. */
	cmos_write(RTC_MONTH, 0x00);
	cmos_write(RTC_DAY_OF_MONTH, 0xFF);
	cmos_write(RTC_CENTURY, 0xFF);
	ck_assert_uint_eq(cmos_read(RTC_MONTH), 0x01);
}
END_TEST

START_TEST(test_reg_c_and_update_irq)
{
	uint8_t c;

	cmos_write(RTC_REG_B, RTC_B_UIE | RTC_B_24H);
	/* The timer waits for the next second boundary. */
	ck_assert_uint_eq(clk.armed, clk.now + NS / 2);
	ck_assert(!irqs.level[RTC_IRQ]);
	advance(NS / 2 - 1);
	rtc__timer_fire(&rtc);
	ck_assert(!irqs.level[RTC_IRQ]);
	advance(1);
	rtc__timer_fire(&rtc);
	ck_assert(irqs.level[RTC_IRQ]);
	ck_assert_uint_eq(clk.armed, 0); /* nothing new while IRQF is up */
	/* PF follows the 1024 Hz rate of register A whether or not PIE is
	 * on, as on the chip: mask it out here. */
	c = cmos_read(RTC_REG_C);
	ck_assert_uint_eq(c & ~RTC_C_PF, RTC_C_IRQF | RTC_C_UF);
	ck_assert_uint_eq(c & RTC_C_PF, RTC_C_PF);
	ck_assert(!irqs.level[RTC_IRQ]);
	ck_assert_uint_eq(cmos_read(RTC_REG_C), 0);
	ck_assert_uint_eq(clk.armed, clk.now + NS);
	cmos_write(RTC_REG_A, 0x20); /* no periodic flag from here on */
	/* UF without UIE: the flag is set, the IRQ is not. */
	cmos_write(RTC_REG_B, RTC_B_24H);
	advance(NS);
	ck_assert_uint_eq(cmos_read(RTC_REG_C), RTC_C_UF);
	ck_assert_int_eq(irqs.rises[RTC_IRQ], 1);
	ck_assert_uint_eq(cmos_read(RTC_REG_D), RTC_D_VRT);
}
END_TEST

START_TEST(test_periodic_irq_timing)
{
	uint64_t start = clk.now;
	int i;

	/* 1024 Hz (A = 0x26): 976562.5 ns; the phase starts at the write. */
	cmos_write(RTC_REG_A, 0x26);
	cmos_write(RTC_REG_B, RTC_B_PIE | RTC_B_24H);
	(void)cmos_read(RTC_REG_C);
	ck_assert_uint_eq(clk.armed, start + 976563);
	clk.now = clk.armed - 1;
	rtc__timer_fire(&rtc);
	ck_assert(!irqs.level[RTC_IRQ]);
	for (i = 0; i < 1024; i++) {
		clk.now = clk.armed;
		rtc__timer_fire(&rtc);
		ck_assert(irqs.level[RTC_IRQ]);
		ck_assert_uint_eq(cmos_read(RTC_REG_C) & 0xC0,
				  RTC_C_IRQF | RTC_C_PF);
	}
	/* 1024 interrupts took exactly one second. */
	ck_assert_uint_eq(clk.now - start, NS);
	ck_assert_int_eq(irqs.rises[RTC_IRQ], 1024);

	/* Rate 15: 2 Hz. */
	cmos_write(RTC_REG_A, 0x2F);
	(void)cmos_read(RTC_REG_C);
	ck_assert_uint_eq(clk.armed, clk.now + NS / 2);
	/* Rates 1 and 2 repeat 8 and 9 (256 and 128 Hz). */
	cmos_write(RTC_REG_A, 0x21);
	(void)cmos_read(RTC_REG_C);
	ck_assert_uint_eq(clk.armed, clk.now + 3906250);
	cmos_write(RTC_REG_A, 0x22);
	(void)cmos_read(RTC_REG_C);
	ck_assert_uint_eq(clk.armed, clk.now + 7812500);
	/* Rate 0 switches the periodic interrupt off. */
	cmos_write(RTC_REG_A, 0x20);
	ck_assert_uint_eq(clk.armed, 0);
}
END_TEST

START_TEST(test_alarm)
{
	/* Alarm at hh:mm:58 (minutes and hours "don't care"). */
	cmos_write(RTC_SECONDS_ALARM, 0x58);
	cmos_write(RTC_MINUTES_ALARM, 0xC0);
	cmos_write(RTC_HOURS_ALARM, 0xFF);
	cmos_write(RTC_REG_A, 0x20); /* periodic rate off: no PF */
	cmos_write(RTC_REG_B, RTC_B_AIE | RTC_B_24H);
	(void)cmos_read(RTC_REG_C);
	advance(NS / 2); /* :57 */
	rtc__timer_fire(&rtc);
	ck_assert(!irqs.level[RTC_IRQ]);
	ck_assert_uint_eq(cmos_read(RTC_REG_C), RTC_C_UF);
	advance(NS); /* :58 */
	rtc__timer_fire(&rtc);
	ck_assert(irqs.level[RTC_IRQ]);
	ck_assert_uint_eq(cmos_read(RTC_REG_C),
			  RTC_C_IRQF | RTC_C_AF | RTC_C_UF);
}
END_TEST

START_TEST(test_cmos_ram_and_ports)
{
	uint8_t v = 0x80 | 0x40;

	rtc__io(&rtc, 0, &v, 1, true); /* NMI masked, index 0x40 */
	ck_assert(rtc__nmi_masked(&rtc));
	v = 0x5A;
	rtc__io(&rtc, 1, &v, 1, true);
	ck_assert_uint_eq(cmos_read(0x40), 0x5A);
	ck_assert(!rtc__nmi_masked(&rtc));
	rtc__io(&rtc, 0, &v, 1, false);
	ck_assert_uint_eq(v, 0xFF); /* index port is write-only */
	cmos_write(RTC_REG_D, 0);
	ck_assert_uint_eq(cmos_read(RTC_REG_D), RTC_D_VRT);
}
END_TEST

START_TEST(test_memory_fields_256m)
{
	ck_assert_uint_eq(cmos_read(0x15) | cmos_read(0x16) << 8, 640);
	ck_assert_uint_eq(cmos_read(0x17) | cmos_read(0x18) << 8, 0xFFFF);
	ck_assert_uint_eq(cmos_read(0x30) | cmos_read(0x31) << 8, 0xFFFF);
	ck_assert_uint_eq(cmos_read(0x34) | cmos_read(0x35) << 8,
			  (256 - 16) * 16);
	ck_assert_uint_eq(cmos_read(0x5B) | cmos_read(0x5C) << 8 |
				  cmos_read(0x5D) << 16, 0);
	ck_assert_uint_eq(cmos_read(0x5F), 0);
}
END_TEST

START_TEST(test_memory_fields_6g)
{
	rtc__destroy(&rtc);
	make_rtc(3ull << 30, 3ull << 30, 4);
	ck_assert_uint_eq(cmos_read(0x17) | cmos_read(0x18) << 8, 0xFFFF);
	ck_assert_uint_eq(cmos_read(0x34) | cmos_read(0x35) << 8,
			  (3072 - 16) * 16);
	ck_assert_uint_eq(cmos_read(0x5B) | cmos_read(0x5C) << 8 |
				  cmos_read(0x5D) << 16, 3 * 16384);
	ck_assert_uint_eq(cmos_read(0x5F), 3);

	/* Little RAM: extended memory below the cap. */
	rtc__destroy(&rtc);
	make_rtc(16ull << 20, 0, 1);
	ck_assert_uint_eq(cmos_read(0x17) | cmos_read(0x18) << 8, 15 * 1024);
	ck_assert_uint_eq(cmos_read(0x34) | cmos_read(0x35) << 8, 0);
}
END_TEST

START_TEST(test_civil_days)
{
	int64_t y;
	unsigned m, d;
	int64_t days;

	ck_assert_int_eq(rtc__days_from_civil(1970, 1, 1), 0);
	ck_assert_int_eq(rtc__days_from_civil(2024, 2, 29), T0 / 86400);
	ck_assert_int_eq(rtc__days_from_civil(1900, 3, 1), -25508);
	for (days = -30000; days < 120000; days += 7) {
		rtc__civil_from_days(days, &y, &m, &d);
		ck_assert_int_eq(rtc__days_from_civil(y, m, d), days);
	}
}
END_TEST

START_TEST(test_post_load)
{
	rtc.s.cmos[RTC_REG_B] = RTC_B_UIE | RTC_B_24H;
	rtc.s.cmos[RTC_REG_C] = RTC_C_IRQF | RTC_C_UF;
	rtc.s.index = 0xFF;
	rtc.s.offset_ns = INT64_MAX;
	rtc__post_load(&rtc);
	ck_assert(irqs.level[RTC_IRQ]);
	ck_assert_uint_eq(cmos_read(RTC_YEAR), 0x24); /* offset was rejected */
	ck_assert_uint_lt(rtc.s.index, RTC_CMOS_SIZE);
}
END_TEST

static Suite *rtc_suite(void)
{
	Suite *s = suite_create("rtc");
	TCase *tc = tcase_create("rtc");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_time_bcd);
	tcase_add_test(tc, test_time_binary_and_12h);
	tcase_add_test(tc, test_uip);
	tcase_add_test(tc, test_guest_sets_time);
	tcase_add_test(tc, test_reg_c_and_update_irq);
	tcase_add_test(tc, test_periodic_irq_timing);
	tcase_add_test(tc, test_alarm);
	tcase_add_test(tc, test_cmos_ram_and_ports);
	tcase_add_test(tc, test_memory_fields_256m);
	tcase_add_test(tc, test_memory_fields_6g);
	tcase_add_test(tc, test_civil_days);
	tcase_add_test(tc, test_post_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(rtc_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
