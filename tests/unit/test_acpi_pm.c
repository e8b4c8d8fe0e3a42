/* ACPI fixed hardware: PM timer, PM1 status/enable, sleep requests, GPE0,
 * the SCI; and isa-debug-exit's status computation. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/devices/acpi_pm.h"
#include "vmm/devices/debug_exit.h"

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

	c->count++;
	c->last = req;
	c->status = status;
}

static uint64_t fake_now_value;

static uint64_t fake_now(void *ctx)
{
	(void)ctx;
	return fake_now_value;
}

static struct fake_irq irqs;
static struct fake_control ctl;
static struct acpi_pm pm;

static void setup(void)
{
	struct irq_sink sink = { fake_set_level, &irqs };
	struct machine_control mc = { fake_request, &ctl };
	struct dev_clock clock = { fake_now, NULL, NULL, NULL };

	memset(&irqs, 0, sizeof(irqs));
	memset(&ctl, 0, sizeof(ctl));
	fake_now_value = 0;
	acpi_pm__init(&pm, &sink, &mc, &clock);
}

static void teardown(void)
{
	acpi_pm__destroy(&pm);
}

typedef void (*handler)(void *, uint64_t, uint8_t *, uint32_t, bool);

static uint32_t rd(handler h, uint64_t off, uint32_t len)
{
	uint8_t d[4] = { 0 };
	uint32_t v = 0, i;

	h(&pm, off, d, len, false);
	for (i = 0; i < len; i++)
		v |= (uint32_t)d[i] << (8 * i);
	return v;
}

static void wr(handler h, uint64_t off, uint32_t len, uint32_t v)
{
	uint8_t d[4];
	uint32_t i;

	for (i = 0; i < 4; i++)
		d[i] = (uint8_t)(v >> (8 * i));
	h(&pm, off, d, len, true);
}

START_TEST(test_pm_timer)
{
	ck_assert_uint_eq(rd(acpi_pm__io_tmr, 0, 4), 0);
	fake_now_value = 1000000000ull;
	ck_assert_uint_eq(rd(acpi_pm__io_tmr, 0, 4), 3579545);
	fake_now_value = 1000ull * 1000000000ull + 123456789;
	ck_assert_uint_eq(rd(acpi_pm__io_tmr, 0, 4), 3579986919u);
	/* Past 2^32 ticks (20 minutes) it wraps; exact at any age. */
	fake_now_value = 5000ull * 1000000000ull + 999999999;
	ck_assert_uint_eq(acpi_pm__timer_at(fake_now_value), 721435360u);
	ck_assert_uint_eq(rd(acpi_pm__io_tmr, 2, 1), (721435360u >> 16) & 0xFF);
	/* 1 ms is 3579 or 3580 ticks. */
	uint32_t a = acpi_pm__timer_at(7000000000ull);
	uint32_t b = acpi_pm__timer_at(7001000000ull);
	ck_assert_uint_ge(b - a, 3579);
	ck_assert_uint_le(b - a, 3580);
	/* Read-only. */
	wr(acpi_pm__io_tmr, 0, 4, 0);
	ck_assert_uint_eq(rd(acpi_pm__io_tmr, 0, 4), 721435360u);
}
END_TEST

START_TEST(test_tmr_sts)
{
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_TMR, 0);
	/* Bit 31 of the counter flips after ~600 s. */
	fake_now_value = 599932015941ull;
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_TMR,
			  ACPI_PM1_TMR);
	wr(acpi_pm__io_evt, 0, 2, ACPI_PM1_TMR);
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_TMR, 0);
}
END_TEST

START_TEST(test_sleep_requests)
{
	ck_assert_uint_eq(rd(acpi_pm__io_cnt, 0, 2), ACPI_PM1_SCI_EN);
	/* SLP_TYP alone does nothing; with SLP_EN, S5 powers off. */
	wr(acpi_pm__io_cnt, 0, 2, 5 << ACPI_PM1_SLP_TYP_SHIFT);
	ck_assert_int_eq(ctl.count, 0);
	ck_assert_uint_eq(rd(acpi_pm__io_cnt, 0, 2),
			  5 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SCI_EN);
	wr(acpi_pm__io_cnt, 0, 2,
	   5 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	ck_assert_int_eq(ctl.count, 1);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_POWEROFF);
	/* SLP_EN reads as 0. */
	ck_assert_uint_eq(rd(acpi_pm__io_cnt, 0, 2) & ACPI_PM1_SLP_EN, 0);
	/* Other sleep types are ignored. */
	wr(acpi_pm__io_cnt, 0, 2,
	   1 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	wr(acpi_pm__io_cnt, 0, 2,
	   3 << ACPI_PM1_SLP_TYP_SHIFT | ACPI_PM1_SLP_EN);
	ck_assert_int_eq(ctl.count, 1);
	/* A byte write of the high half works too (0x34 = S5 | SLP_EN). */
	wr(acpi_pm__io_cnt, 1, 1, 0x34);
	ck_assert_int_eq(ctl.count, 2);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_POWEROFF);
	/* SCI_EN cannot be cleared. */
	wr(acpi_pm__io_cnt, 0, 2, 0);
	ck_assert_uint_eq(rd(acpi_pm__io_cnt, 0, 2), ACPI_PM1_SCI_EN);
}
END_TEST

START_TEST(test_power_button_and_w1c)
{
	/* Nobody listens: no SCI, and the caller is told. */
	ck_assert(!acpi_pm__press_power_button(&pm));
	ck_assert(!irqs.level[ACPI_PM_SCI_IRQ]);
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_PWRBTN,
			  ACPI_PM1_PWRBTN);
	wr(acpi_pm__io_evt, 0, 2, 0); /* writing 0 clears nothing */
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_PWRBTN,
			  ACPI_PM1_PWRBTN);
	wr(acpi_pm__io_evt, 0, 2, ACPI_PM1_PWRBTN);
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 2) & ACPI_PM1_PWRBTN, 0);

	/* The guest enables the event: a press raises the SCI. */
	wr(acpi_pm__io_evt, 2, 2, ACPI_PM1_PWRBTN | 0x8000);
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 2, 2), ACPI_PM1_PWRBTN);
	ck_assert(acpi_pm__press_power_button(&pm));
	ck_assert(irqs.level[ACPI_PM_SCI_IRQ]);
	/* Clearing the status drops the level. */
	wr(acpi_pm__io_evt, 1, 1, ACPI_PM1_PWRBTN >> 8);
	ck_assert(!irqs.level[ACPI_PM_SCI_IRQ]);
	/* A 4-byte access covers STS and EN. */
	ck_assert_uint_eq(rd(acpi_pm__io_evt, 0, 4), ACPI_PM1_PWRBTN << 16);
}
END_TEST

START_TEST(test_gpe)
{
	acpi_pm__set_gpe(&pm, 11);
	ck_assert(!irqs.level[ACPI_PM_SCI_IRQ]);
	ck_assert_uint_eq(rd(acpi_pm__io_gpe, 0, 2), 1 << 11);
	wr(acpi_pm__io_gpe, 3, 1, 1 << 3); /* GPE0_EN bit 11 */
	ck_assert(irqs.level[ACPI_PM_SCI_IRQ]);
	ck_assert_uint_eq(rd(acpi_pm__io_gpe, 2, 2), 1 << 11);
	acpi_pm__set_gpe(&pm, 9);
	wr(acpi_pm__io_gpe, 1, 1, 1 << 3); /* write-1-to-clear */
	ck_assert(!irqs.level[ACPI_PM_SCI_IRQ]);
	ck_assert_uint_eq(rd(acpi_pm__io_gpe, 0, 2), 1 << 9); /* untouched */
	wr(acpi_pm__io_gpe, 0, 2, 1 << 9);
	ck_assert_uint_eq(rd(acpi_pm__io_gpe, 0, 2), 0);
	acpi_pm__set_gpe(&pm, 99); /* out of range: ignored */
	ck_assert_uint_eq(rd(acpi_pm__io_gpe, 0, 4), 1 << 27);
}
END_TEST

START_TEST(test_post_load)
{
	pm.s.pm1_sts = ACPI_PM1_PWRBTN;
	pm.s.pm1_en = ACPI_PM1_PWRBTN;
	pm.s.pm1_cnt = 0;
	acpi_pm__post_load(&pm);
	ck_assert(irqs.level[ACPI_PM_SCI_IRQ]);
	ck_assert_uint_eq(rd(acpi_pm__io_cnt, 0, 2), ACPI_PM1_SCI_EN);
}
END_TEST

static void debug_write(struct debug_exit *d, uint32_t len, uint32_t v)
{
	uint8_t b[4];
	uint32_t i;

	for (i = 0; i < 4; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	debug_exit__io(d, 0, b, len, true);
}

START_TEST(test_debug_exit)
{
	struct machine_control mc = { fake_request, &ctl };
	struct debug_exit d;
	uint8_t b[2];

	debug_exit__init(&d, &mc);
	debug_write(&d, 1, 0);
	ck_assert_int_eq(ctl.count, 1);
	ck_assert_int_eq(ctl.last, MACHINE_REQ_DEBUG_EXIT);
	ck_assert_int_eq(ctl.status, 1);
	debug_write(&d, 1, 1);
	ck_assert_int_eq(ctl.status, 3);
	debug_write(&d, 4, 0x31);
	ck_assert_int_eq(ctl.status, 0x63);
	/* The access width zero-extends: a word 0x0131 is not 0x31. */
	debug_write(&d, 2, 0xFF0131);
	ck_assert_int_eq(ctl.status, 0x263);
	ck_assert_int_eq(debug_exit__status(0xFFFFFFFF), -1);
	/* Reads request nothing. */
	debug_exit__io(&d, 0, b, 2, false);
	ck_assert_uint_eq(b[0], 0xFF);
	ck_assert_int_eq(ctl.count, 4);
}
END_TEST

static Suite *acpi_suite(void)
{
	Suite *s = suite_create("acpi_pm");
	TCase *tc = tcase_create("acpi_pm");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_pm_timer);
	tcase_add_test(tc, test_tmr_sts);
	tcase_add_test(tc, test_sleep_requests);
	tcase_add_test(tc, test_power_button_and_w1c);
	tcase_add_test(tc, test_gpe);
	tcase_add_test(tc, test_post_load);
	tcase_add_test(tc, test_debug_exit);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(acpi_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
