/* The 8259A pair: init sequence, priorities and rotation, masks, cascade
 * through the slave, EOI modes, auto-EOI, poll, ELCR level triggering,
 * spurious interrupts and the INTR output. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/pic.h"

struct fake {
	struct pic p;
	bool out;
	int out_calls;
};

static void f_out(void *ctx, bool level)
{
	struct fake *f = ctx;

	f->out = level;
	f->out_calls++;
}

static void m_wr(struct fake *f, unsigned off, uint8_t v)
{
	pic__io_master(&f->p, off, &v, 1, true);
}

static void s_wr(struct fake *f, unsigned off, uint8_t v)
{
	pic__io_slave(&f->p, off, &v, 1, true);
}

static uint8_t m_rd(struct fake *f, unsigned off)
{
	uint8_t v;

	pic__io_master(&f->p, off, &v, 1, false);
	return v;
}

static uint8_t s_rd(struct fake *f, unsigned off)
{
	uint8_t v;

	pic__io_slave(&f->p, off, &v, 1, false);
	return v;
}

/* The sequence Linux and BIOSes use; icw4 0x01 = 8086 mode, 0x03 adds
 * auto-EOI. */
static void program(struct fake *f, uint8_t icw4)
{
	m_wr(f, 0, 0x11);
	m_wr(f, 1, 0x20);
	m_wr(f, 1, 0x04);
	m_wr(f, 1, icw4);
	s_wr(f, 0, 0x11);
	s_wr(f, 1, 0x28);
	s_wr(f, 1, 0x02);
	s_wr(f, 1, icw4);
	m_wr(f, 1, 0x00);
	s_wr(f, 1, 0x00);
}

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	pic__init(&f->p, f_out, f);
	return f;
}

static void fake_free(struct fake *f)
{
	pic__destroy(&f->p);
	free(f);
}

START_TEST(power_on_is_quiet)
{
	struct fake *f = fake_new();

	/* Masked until the guest programs it: no vector base yet. */
	ck_assert_uint_eq(m_rd(f, 1), 0xFF);
	ck_assert_uint_eq(s_rd(f, 1), 0xFF);
	pic__set_irq(&f->p, 1, true);
	ck_assert(!f->out);
	ck_assert(!pic__output(&f->p));
	fake_free(f);
}
END_TEST

START_TEST(init_sequence_and_basic_irq)
{
	struct fake *f = fake_new();

	/* The output stays low in the middle of the init sequence. */
	pic__set_irq(&f->p, 3, true);
	m_wr(f, 0, 0x11); /* ICW1 clears IMR ... */
	m_wr(f, 1, 0x20);
	ck_assert(!f->out);
	m_wr(f, 1, 0x04);
	m_wr(f, 1, 0x01);
	/* ... and the edge latch: the old edge is gone. */
	ck_assert_uint_eq(m_rd(f, 1), 0);
	ck_assert(!f->out);
	ck_assert_uint_eq(m_rd(f, 0), 0); /* IRR */
	pic__set_irq(&f->p, 3, false);
	pic__set_irq(&f->p, 3, true);
	ck_assert(f->out);
	ck_assert_uint_eq(m_rd(f, 0), 0x08);
	ck_assert_int_eq(pic__ack(&f->p), 0x23);
	ck_assert(!f->out);
	m_wr(f, 0, 0x0B); /* OCW3: read ISR */
	ck_assert_uint_eq(m_rd(f, 0), 0x08);
	m_wr(f, 0, 0x20); /* non-specific EOI */
	ck_assert_uint_eq(m_rd(f, 0), 0x00);
	m_wr(f, 0, 0x0A); /* back to IRR */
	ck_assert_uint_eq(m_rd(f, 0), 0x00);
	/* Single mode without ICW4: ICW2 ends the sequence. */
	s_wr(f, 0, 0x12);
	s_wr(f, 1, 0x70);
	s_wr(f, 1, 0xAB); /* OCW1 already */
	ck_assert_uint_eq(s_rd(f, 1), 0xAB);
	fake_free(f);
}
END_TEST

START_TEST(priorities_and_nesting)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	pic__set_irq(&f->p, 3, true);
	pic__set_irq(&f->p, 1, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x21); /* IRQ1 first */
	ck_assert(!f->out); /* IRQ3 below IRQ1 in service */
	pic__set_irq(&f->p, 0, true);
	ck_assert(f->out); /* IRQ0 preempts */
	ck_assert_int_eq(pic__ack(&f->p), 0x20);
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x03);
	m_wr(f, 0, 0x20); /* clears IRQ0, the highest in service */
	ck_assert_uint_eq(m_rd(f, 0), 0x02);
	ck_assert(!f->out);
	m_wr(f, 0, 0x20);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x23);
	/* Specific EOI. */
	m_wr(f, 0, 0x63);
	ck_assert_uint_eq(m_rd(f, 0), 0x00);
	fake_free(f);
}
END_TEST

START_TEST(masks)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	m_wr(f, 1, 0x10);
	pic__set_irq(&f->p, 4, true);
	ck_assert(!f->out);
	ck_assert_uint_eq(m_rd(f, 0), 0x10); /* requested, masked */
	m_wr(f, 1, 0x00);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x24);
	m_wr(f, 0, 0x20);
	/* Masking the cascade hides the slave. */
	m_wr(f, 1, 0x04);
	pic__set_irq(&f->p, 12, true);
	ck_assert(!f->out);
	m_wr(f, 1, 0x00);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x2C);
	fake_free(f);
}
END_TEST

START_TEST(cascade)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	pic__set_irq(&f->p, 10, true);
	ck_assert(f->out);
	ck_assert_uint_eq(m_rd(f, 0), 0x04); /* IR2 requested */
	ck_assert_int_eq(pic__ack(&f->p), 0x2A);
	ck_assert(!f->out);
	m_wr(f, 0, 0x0B);
	s_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x04);
	ck_assert_uint_eq(s_rd(f, 0), 0x04);
	/* A second slave IRQ of lower priority waits for the slave EOI. */
	pic__set_irq(&f->p, 14, true);
	ck_assert(!f->out);
	s_wr(f, 0, 0x20);
	m_wr(f, 0, 0x20);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x2E);
	/* The master's IRQ1 outranks the whole slave. */
	pic__set_irq(&f->p, 1, true);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x21);
	fake_free(f);
}
END_TEST

START_TEST(special_fully_nested)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	m_wr(f, 0, 0x11);
	m_wr(f, 1, 0x20);
	m_wr(f, 1, 0x04);
	m_wr(f, 1, 0x11); /* ICW4: SFNM + 8086 */
	m_wr(f, 1, 0x00);
	pic__set_irq(&f->p, 12, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x2C);
	/* A higher slave IRQ gets through although IR2 is in service. */
	pic__set_irq(&f->p, 9, true);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x29);
	/* A lower master IRQ does not. */
	pic__set_irq(&f->p, 5, true);
	ck_assert(!f->out);
	fake_free(f);
}
END_TEST

START_TEST(rotation_and_set_priority)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	/* Rotate on non-specific EOI: the serviced IRQ becomes lowest. */
	pic__set_irq(&f->p, 1, true);
	pic__set_irq(&f->p, 4, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x21);
	m_wr(f, 0, 0xA0);
	pic__set_irq(&f->p, 1, false);
	pic__set_irq(&f->p, 1, true);
	/* Now 2 is highest: 4 beats 1. */
	ck_assert_int_eq(pic__ack(&f->p), 0x24);
	m_wr(f, 0, 0x20);
	ck_assert_int_eq(pic__ack(&f->p), 0x21);
	m_wr(f, 0, 0x20);
	/* Set priority: IRQ5 lowest, so 6 is highest. */
	m_wr(f, 0, 0xC5);
	pic__set_irq(&f->p, 5, true);
	pic__set_irq(&f->p, 6, true);
	pic__set_irq(&f->p, 0, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x26);
	ck_assert(!f->out); /* 0 is below 6, which is in service */
	m_wr(f, 0, 0x20);
	ck_assert_int_eq(pic__ack(&f->p), 0x20);
	m_wr(f, 0, 0x20);
	ck_assert_int_eq(pic__ack(&f->p), 0x25);
	/* Rotate on specific EOI for IRQ3 (not even in service): IRQ4
	 * becomes highest, and IRQ5 in service no longer blocks IRQ4. */
	m_wr(f, 0, 0xE3);
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x20);
	pic__set_irq(&f->p, 4, false);
	pic__set_irq(&f->p, 4, true);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x24);
	fake_free(f);
}
END_TEST

START_TEST(auto_eoi)
{
	struct fake *f = fake_new();

	program(f, 0x03);
	pic__set_irq(&f->p, 3, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x23);
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x00); /* nothing in service */
	pic__set_irq(&f->p, 4, true);
	ck_assert(f->out);
	/* Rotate in auto-EOI mode. */
	m_wr(f, 0, 0x80);
	ck_assert_int_eq(pic__ack(&f->p), 0x24);
	pic__set_irq(&f->p, 3, false);
	pic__set_irq(&f->p, 3, true);
	pic__set_irq(&f->p, 6, true);
	/* IRQ4 now lowest, 5 highest: 6 beats 3. */
	ck_assert_int_eq(pic__ack(&f->p), 0x26);
	fake_free(f);
}
END_TEST

START_TEST(poll_mode)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	m_wr(f, 0, 0x0C);
	ck_assert_uint_eq(m_rd(f, 0), 0x00); /* nothing pending */
	pic__set_irq(&f->p, 6, true);
	m_wr(f, 0, 0x0C);
	ck_assert_uint_eq(m_rd(f, 1), 0x86); /* either port */
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x40); /* poll acknowledged it */
	ck_assert_uint_eq(m_rd(f, 1), 0x00); /* poll is one read only */
	fake_free(f);
}
END_TEST

START_TEST(special_mask_mode)
{
	struct fake *f = fake_new();

	program(f, 0x01);
	pic__set_irq(&f->p, 3, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x23);
	pic__set_irq(&f->p, 5, true);
	ck_assert(!f->out);
	m_wr(f, 1, 0x08);
	m_wr(f, 0, 0x68); /* set special mask */
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x25);
	m_wr(f, 0, 0x48); /* reset special mask */
	m_wr(f, 0, 0x65);
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x08);
	fake_free(f);
}
END_TEST

START_TEST(elcr_level)
{
	struct fake *f = fake_new();
	uint8_t b[2] = { 0xFF, 0xFF };

	program(f, 0x01);
	/* IRQ0-2, 8 and 13 cannot be level. */
	pic__io_elcr(&f->p, 0, b, 2, true);
	pic__io_elcr(&f->p, 0, b, 2, false);
	ck_assert_uint_eq(b[0], 0xF8);
	ck_assert_uint_eq(b[1], 0xDE);
	b[0] = 0x00;
	b[1] = 0x02; /* IRQ9 level (the ACPI SCI) */
	pic__io_elcr(&f->p, 0, b, 2, true);
	pic__set_irq(&f->p, 9, true);
	ck_assert(f->out);
	ck_assert_int_eq(pic__ack(&f->p), 0x29);
	ck_assert_uint_eq(s_rd(f, 0), 0x02); /* stays in IRR */
	s_wr(f, 0, 0x20);
	m_wr(f, 0, 0x20);
	ck_assert(f->out); /* still high: again */
	ck_assert_int_eq(pic__ack(&f->p), 0x29);
	pic__set_irq(&f->p, 9, false);
	ck_assert_uint_eq(s_rd(f, 0), 0x00);
	s_wr(f, 0, 0x20);
	m_wr(f, 0, 0x20);
	ck_assert(!f->out);
	/* An edge IRQ held high does not come back after its EOI. */
	pic__set_irq(&f->p, 4, true);
	ck_assert_int_eq(pic__ack(&f->p), 0x24);
	m_wr(f, 0, 0x20);
	ck_assert(!f->out);
	/* LTIM in ICW1 makes a whole chip level-triggered. */
	m_wr(f, 0, 0x19);
	m_wr(f, 1, 0x20);
	m_wr(f, 1, 0x04);
	m_wr(f, 1, 0x01);
	m_wr(f, 1, 0x00);
	ck_assert_uint_eq(m_rd(f, 0), 0x10); /* IRQ4's line is high */
	ck_assert(f->out);
	fake_free(f);
}
END_TEST

START_TEST(spurious)
{
	struct fake *f = fake_new();
	uint8_t b[2] = { 0x08, 0x00 };

	program(f, 0x01);
	pic__io_elcr(&f->p, 0, b, 2, true); /* IRQ3 level */
	pic__set_irq(&f->p, 3, true);
	ck_assert(f->out);
	pic__set_irq(&f->p, 3, false); /* gone before INTA */
	ck_assert_int_eq(pic__ack(&f->p), 0x27);
	m_wr(f, 0, 0x0B);
	ck_assert_uint_eq(m_rd(f, 0), 0x00); /* no ISR bit for IRQ7 */
	/* The slave's request vanishes after the master saw IR2. */
	b[0] = 0x00;
	b[1] = 0x08; /* IRQ11 level */
	pic__io_elcr(&f->p, 0, b, 2, true);
	m_wr(f, 1, 0x04); /* hold the cascade while the line comes and goes */
	pic__set_irq(&f->p, 11, true);
	pic__set_irq(&f->p, 11, false);
	m_wr(f, 1, 0x00);
	ck_assert(f->out); /* IR2's edge was latched */
	ck_assert_int_eq(pic__ack(&f->p), 0x2F);
	fake_free(f);
}
END_TEST

START_TEST(io_edges_and_post_load)
{
	struct fake *f = fake_new(), *g = fake_new();
	uint8_t b[4] = { 0xAA, 0xAA, 0xAA, 0xAA };

	program(f, 0x01);
	/* A 16-bit read covers both ports; past the range reads 0xFF. */
	m_wr(f, 1, 0x5A);
	pic__io_master(&f->p, 0, b, 4, false);
	ck_assert_uint_eq(b[1], 0x5A);
	ck_assert_uint_eq(b[2], 0xFF);
	ck_assert_uint_eq(b[3], 0xFF);
	pic__io_master(&f->p, 7, b, 1, true);
	pic__io_master(&f->p, 0, NULL, 1, false);
	pic__io_elcr(&f->p, 5, b, 1, false);
	ck_assert_uint_eq(b[0], 0xFF);
	pic__set_irq(&f->p, 16, true);
	pic__set_irq(&f->p, 0xFFFFFFFF, true);
	m_wr(f, 1, 0x00);
	ck_assert(!f->out);

	pic__set_irq(&f->p, 5, true);
	ck_assert(f->out);
	g->p.s = f->p.s;
	g->p.s.chip[0].init_state = 77;
	g->p.s.chip[0].elcr = 0xFF;
	g->out_calls = 0;
	pic__post_load(&g->p);
	ck_assert_int_eq(g->out_calls, 1);
	ck_assert(g->out);
	ck_assert_uint_eq(g->p.s.chip[0].elcr, 0xF8);
	ck_assert_int_eq(pic__ack(&g->p), 0x25);
	fake_free(f);
	fake_free(g);
}
END_TEST

static Suite *pic_suite(void)
{
	Suite *s = suite_create("pic");
	TCase *tc = tcase_create("8259");

	tcase_add_test(tc, power_on_is_quiet);
	tcase_add_test(tc, init_sequence_and_basic_irq);
	tcase_add_test(tc, priorities_and_nesting);
	tcase_add_test(tc, masks);
	tcase_add_test(tc, cascade);
	tcase_add_test(tc, special_fully_nested);
	tcase_add_test(tc, rotation_and_set_priority);
	tcase_add_test(tc, auto_eoi);
	tcase_add_test(tc, poll_mode);
	tcase_add_test(tc, special_mask_mode);
	tcase_add_test(tc, elcr_level);
	tcase_add_test(tc, spurious);
	tcase_add_test(tc, io_edges_and_post_load);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
