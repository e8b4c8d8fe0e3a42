/* I/O APIC: register file, redirection programming, edge and level
 * delivery with remote IRR and EOI, masking, polarity; and the GSI fan-out
 * (irq_lines) to the 8259 pair and the IOAPIC. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/ioapic.h"
#include "vcpu/irq_lines.h"
#include "vcpu/pic.h"

#define MAX_MSGS 32

struct fake {
	struct ioapic io;
	struct apic_msg sent[MAX_MSGS];
	int nsent;
	int targets; /* what send() reports */
};

static int f_send(void *ctx, const struct apic_msg *m)
{
	struct fake *f = ctx;

	if (f->nsent < MAX_MSGS)
		f->sent[f->nsent] = *m;
	f->nsent++;
	return f->targets;
}

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));
	struct ioapic_env env = { .ctx = f, .send = f_send };

	ck_assert_ptr_nonnull(f);
	f->targets = 1;
	ioapic__init(&f->io, 2, &env);
	return f;
}

static void fake_free(struct fake *f)
{
	ioapic__destroy(&f->io);
	free(f);
}

static void mmio_wr(struct fake *f, uint64_t off, uint32_t v)
{
	ioapic__mmio(&f->io, off, (uint8_t *)&v, 4, true);
}

static uint32_t mmio_rd(struct fake *f, uint64_t off)
{
	uint32_t v;

	ioapic__mmio(&f->io, off, (uint8_t *)&v, 4, false);
	return v;
}

static uint32_t reg_rd(struct fake *f, uint32_t reg)
{
	mmio_wr(f, IOAPIC_IOREGSEL, reg);
	return mmio_rd(f, IOAPIC_IOWIN);
}

static void reg_wr(struct fake *f, uint32_t reg, uint32_t v)
{
	mmio_wr(f, IOAPIC_IOREGSEL, reg);
	mmio_wr(f, IOAPIC_IOWIN, v);
}

static void rte_wr(struct fake *f, unsigned pin, uint64_t rte)
{
	reg_wr(f, IOAPIC_REG_REDIR + 2 * pin + 1, (uint32_t)(rte >> 32));
	reg_wr(f, IOAPIC_REG_REDIR + 2 * pin, (uint32_t)rte);
}

static uint64_t rte_rd(struct fake *f, unsigned pin)
{
	return reg_rd(f, IOAPIC_REG_REDIR + 2 * pin) |
	       (uint64_t)reg_rd(f, IOAPIC_REG_REDIR + 2 * pin + 1) << 32;
}

START_TEST(registers)
{
	struct fake *f = fake_new();

	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_ID), 2u << 24);
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_VERSION), 0x00170020);
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_ARB), 2u << 24);
	for (unsigned pin = 0; pin < IOAPIC_NR_PINS; pin++)
		ck_assert_uint_eq(rte_rd(f, pin), IOAPIC_RTE_MASKED);
	reg_wr(f, IOAPIC_REG_ID, 0xFFFFFFFF);
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_ID), 0x0F000000);
	reg_wr(f, IOAPIC_REG_VERSION, 0);
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_VERSION), 0x00170020);
	/* Delivery status (12) and remote IRR (14) are read-only; bits
	 * 47:17 reserved; 63:48 (dest + extended dest) writable. */
	rte_wr(f, 5, 0xFFFFFFFFFFFFFFFFull);
	ck_assert_uint_eq(rte_rd(f, 5), 0xFFFF00000001AFFFull);
	mmio_wr(f, IOAPIC_IOREGSEL, 0x1234);
	ck_assert_uint_eq(mmio_rd(f, IOAPIC_IOREGSEL), 0x34);
	/* Past the last redirection entry: reads 0, writes go nowhere. */
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_REDIR + 2 * IOAPIC_NR_PINS), 0);
	reg_wr(f, 0xFF, 0xFFFFFFFF);
	ck_assert_uint_eq(mmio_rd(f, 0x20), 0);
	mmio_wr(f, 0x20, 1);
	ck_assert_uint_eq(mmio_rd(f, IOAPIC_EOI), 0);
	ck_assert_int_eq(f->nsent, 0);
	fake_free(f);
}
END_TEST

START_TEST(odd_accesses_are_safe)
{
	struct fake *f = fake_new();
	uint8_t b[16];

	memset(b, 0xAA, sizeof(b));
	mmio_wr(f, IOAPIC_IOREGSEL, IOAPIC_REG_VERSION);
	ioapic__mmio(&f->io, IOAPIC_IOWIN, b, 16, false);
	ck_assert_uint_eq(b[0], 0x20);
	ck_assert_uint_eq(b[2], 0x17);
	ck_assert_uint_eq(b[4], 0);
	ck_assert_uint_eq(b[15], 0);
	ioapic__mmio(&f->io, IOAPIC_IOWIN, b, 1, false);
	ck_assert_uint_eq(b[0], 0x20);
	b[0] = IOAPIC_REG_ID;
	ioapic__mmio(&f->io, IOAPIC_IOREGSEL, b, 1, true);
	ck_assert_uint_eq(mmio_rd(f, IOAPIC_IOREGSEL), IOAPIC_REG_ID);
	ioapic__mmio(&f->io, IOAPIC_IOWIN, NULL, 4, false);
	ioapic__mmio(&f->io, IOAPIC_IOWIN, b, 0, true);
	ioapic__set_irq(&f->io, IOAPIC_NR_PINS, true);
	ioapic__set_irq(&f->io, 0xFFFFFFFF, true);
	ck_assert_int_eq(f->nsent, 0);
	fake_free(f);
}
END_TEST

START_TEST(edge_delivery)
{
	struct fake *f = fake_new();
	struct apic_msg *m = f->sent;

	/* Pin 4: vector 0x34, lowest priority, logical dest 0x03. */
	rte_wr(f, 4, (0x03ull << 56) | IOAPIC_RTE_DEST_LOGICAL |
		     ((uint64_t)APIC_DM_LOWEST << 8) | 0x34);
	ioapic__set_irq(&f->io, 4, true);
	ck_assert_int_eq(f->nsent, 1);
	ck_assert_uint_eq(m[0].vector, 0x34);
	ck_assert_uint_eq(m[0].dest, 0x03);
	ck_assert_uint_eq(m[0].dest_logical, 1);
	ck_assert_uint_eq(m[0].delivery, APIC_DM_LOWEST);
	ck_assert_uint_eq(m[0].trigger_level, 0);
	ck_assert_uint_eq(m[0].shorthand, APIC_SH_NONE);
	ck_assert_uint_eq(m[0].x2apic, 0);
	ck_assert_int_eq(m[0].source, -1);
	/* Still high: no new edge. */
	ioapic__set_irq(&f->io, 4, true);
	ck_assert_int_eq(f->nsent, 1);
	ioapic__set_irq(&f->io, 4, false);
	ioapic__set_irq(&f->io, 4, true);
	ck_assert_int_eq(f->nsent, 2);
	/* No remote IRR for edge; EOI does nothing. */
	ck_assert_uint_eq(rte_rd(f, 4) & IOAPIC_RTE_REMOTE_IRR, 0);
	ioapic__eoi(&f->io, 0x34);
	ck_assert_int_eq(f->nsent, 2);
	/* Edges while masked are lost, also after unmasking. */
	ioapic__set_irq(&f->io, 4, false);
	rte_wr(f, 4, IOAPIC_RTE_MASKED | 0x34);
	ioapic__set_irq(&f->io, 4, true);
	rte_wr(f, 4, 0x34);
	ck_assert_int_eq(f->nsent, 2);
	/* Extended destination bits are kept but not routed on. */
	ioapic__set_irq(&f->io, 4, false);
	rte_wr(f, 4, (0x01ull << 56) | (0xABull << 48) | 0x35);
	ioapic__set_irq(&f->io, 4, true);
	ck_assert_int_eq(f->nsent, 3);
	ck_assert_uint_eq(m[2].dest, 1);
	ck_assert_uint_eq(rte_rd(f, 4) >> 48, 0x01AB);
	fake_free(f);
}
END_TEST

START_TEST(level_remote_irr_and_eoi)
{
	struct fake *f = fake_new();
	struct apic_msg *m = f->sent;

	rte_wr(f, 9, (0x01ull << 56) | IOAPIC_RTE_LEVEL | 0x49);
	ioapic__set_irq(&f->io, 9, true);
	ck_assert_int_eq(f->nsent, 1);
	ck_assert_uint_eq(m[0].trigger_level, 1);
	ck_assert_uint_eq(m[0].vector, 0x49);
	ck_assert(rte_rd(f, 9) & IOAPIC_RTE_REMOTE_IRR);
	/* Waiting for the EOI: nothing more. */
	ioapic__set_irq(&f->io, 9, true);
	ck_assert_int_eq(f->nsent, 1);
	/* EOI for another vector: nothing. */
	ioapic__eoi(&f->io, 0x48);
	ck_assert_int_eq(f->nsent, 1);
	/* EOI with the line still high: delivered again. */
	ioapic__eoi(&f->io, 0x49);
	ck_assert_int_eq(f->nsent, 2);
	ck_assert(rte_rd(f, 9) & IOAPIC_RTE_REMOTE_IRR);
	/* Line drops, then EOI: done. */
	ioapic__set_irq(&f->io, 9, false);
	ioapic__eoi(&f->io, 0x49);
	ck_assert_int_eq(f->nsent, 2);
	ck_assert_uint_eq(rte_rd(f, 9) & IOAPIC_RTE_REMOTE_IRR, 0);
	/* The EOI register (version 0x20) does the same. */
	ioapic__set_irq(&f->io, 9, true);
	ck_assert_int_eq(f->nsent, 3);
	mmio_wr(f, IOAPIC_EOI, 0x49);
	ck_assert_int_eq(f->nsent, 4);
	/* Remote IRR is not writable by the guest... */
	rte_wr(f, 9, (0x01ull << 56) | IOAPIC_RTE_LEVEL | 0x49);
	ck_assert(rte_rd(f, 9) & IOAPIC_RTE_REMOTE_IRR);
	ck_assert_int_eq(f->nsent, 4);
	/* ...but switching to edge clears it. */
	rte_wr(f, 9, 0x49);
	ck_assert_uint_eq(rte_rd(f, 9) & IOAPIC_RTE_REMOTE_IRR, 0);
	fake_free(f);
}
END_TEST

START_TEST(level_to_nobody_sets_no_remote_irr)
{
	struct fake *f = fake_new();

	f->targets = 0;
	rte_wr(f, 10, IOAPIC_RTE_LEVEL | 0x4A);
	ioapic__set_irq(&f->io, 10, true);
	ck_assert_int_eq(f->nsent, 1);
	ck_assert_uint_eq(rte_rd(f, 10) & IOAPIC_RTE_REMOTE_IRR, 0);
	/* Re-targeted to someone: the still-asserted line is delivered. */
	f->targets = 1;
	rte_wr(f, 10, (0x01ull << 56) | IOAPIC_RTE_LEVEL | 0x4A);
	ck_assert_int_eq(f->nsent, 2);
	ck_assert(rte_rd(f, 10) & IOAPIC_RTE_REMOTE_IRR);
	fake_free(f);
}
END_TEST

START_TEST(level_masking)
{
	struct fake *f = fake_new();

	rte_wr(f, 11, IOAPIC_RTE_MASKED | IOAPIC_RTE_LEVEL | 0x4B);
	ioapic__set_irq(&f->io, 11, true);
	ck_assert_int_eq(f->nsent, 0);
	/* Unmasking an asserted level pin delivers it. */
	rte_wr(f, 11, IOAPIC_RTE_LEVEL | 0x4B);
	ck_assert_int_eq(f->nsent, 1);
	/* Masked at EOI time: held back until unmasked. */
	rte_wr(f, 11, IOAPIC_RTE_MASKED | IOAPIC_RTE_LEVEL | 0x4B);
	ioapic__eoi(&f->io, 0x4B);
	ck_assert_int_eq(f->nsent, 1);
	rte_wr(f, 11, IOAPIC_RTE_LEVEL | 0x4B);
	ck_assert_int_eq(f->nsent, 2);
	fake_free(f);
}
END_TEST

START_TEST(polarity)
{
	struct fake *f = fake_new();

	/* Active-low level pin with its line low: asserted. */
	rte_wr(f, 16, IOAPIC_RTE_MASKED | IOAPIC_RTE_ACTIVE_LOW |
		      IOAPIC_RTE_LEVEL | 0x50);
	ioapic__set_irq(&f->io, 16, false);
	rte_wr(f, 16, IOAPIC_RTE_ACTIVE_LOW | IOAPIC_RTE_LEVEL | 0x50);
	ck_assert_int_eq(f->nsent, 1);
	/* Line high = deasserted: the EOI does not re-deliver. */
	ioapic__set_irq(&f->io, 16, true);
	ioapic__eoi(&f->io, 0x50);
	ck_assert_int_eq(f->nsent, 1);
	/* Active-low edge pin: the falling edge is the one. */
	rte_wr(f, 17, IOAPIC_RTE_ACTIVE_LOW | 0x51);
	ioapic__set_irq(&f->io, 17, true);
	ck_assert_int_eq(f->nsent, 1);
	ioapic__set_irq(&f->io, 17, false);
	ck_assert_int_eq(f->nsent, 2);
	ck_assert_uint_eq(f->sent[1].vector, 0x51);
	fake_free(f);
}
END_TEST

START_TEST(nmi_extint_modes_and_reset)
{
	struct fake *f = fake_new();

	rte_wr(f, 0, (uint64_t)APIC_DM_EXTINT << 8);
	rte_wr(f, 1, (0xFFull << 56) | ((uint64_t)APIC_DM_NMI << 8));
	ioapic__set_irq(&f->io, 0, true);
	ioapic__set_irq(&f->io, 1, true);
	ck_assert_int_eq(f->nsent, 2);
	ck_assert_uint_eq(f->sent[0].delivery, APIC_DM_EXTINT);
	ck_assert_uint_eq(f->sent[1].delivery, APIC_DM_NMI);
	ck_assert_uint_eq(f->sent[1].dest, 0xFF);
	ioapic__reset(&f->io);
	ck_assert_uint_eq(rte_rd(f, 0), IOAPIC_RTE_MASKED);
	ck_assert_uint_eq(reg_rd(f, IOAPIC_REG_ID), 2u << 24);
	fake_free(f);
}
END_TEST

START_TEST(post_load_redelivers)
{
	struct fake *f = fake_new(), *g = fake_new();

	rte_wr(f, 20, IOAPIC_RTE_MASKED | IOAPIC_RTE_LEVEL | 0x60);
	rte_wr(f, 21, IOAPIC_RTE_LEVEL | 0x61);
	ioapic__set_irq(&f->io, 20, true);
	ioapic__set_irq(&f->io, 21, true);
	ck_assert_int_eq(f->nsent, 1);
	/* Restored, then unmasked-and-asserted pins without remote IRR go
	 * out; pins awaiting an EOI keep waiting. */
	g->io.s = f->io.s;
	g->io.s.redir[20] &= ~IOAPIC_RTE_MASKED;
	g->io.s.ioregsel = 0xFFFFFFFF;
	ioapic__post_load(&g->io);
	ck_assert_int_eq(g->nsent, 1);
	ck_assert_uint_eq(g->sent[0].vector, 0x60);
	ck_assert_uint_le(g->io.s.ioregsel, 0xFF);
	ioapic__eoi(&g->io, 0x61);
	ck_assert_int_eq(g->nsent, 2);
	fake_free(f);
	fake_free(g);
}
END_TEST

/* ---- irq_lines: GSI fan-out ---- */

struct lines_fixture {
	struct fake *f;
	struct pic pic;
	struct irq_lines lines;
	int lint0_calls;
	bool lint0;
};

static void fx_lint0(void *ctx, bool level)
{
	struct lines_fixture *x = ctx;

	x->lint0 = level;
	x->lint0_calls++;
}

START_TEST(irq_lines_fan_out)
{
	struct lines_fixture *x = calloc(1, sizeof(*x));
	struct irq_sink sink;
	uint8_t b;

	x->f = fake_new();
	irq_lines__init(&x->lines, &x->pic, &x->f->io, fx_lint0, x);
	pic__init(&x->pic, irq_lines__pic_output, &x->lines);
	sink = irq_lines__sink(&x->lines);

	ck_assert_int_eq(irq_lines__ioapic_pin(0), 2);
	ck_assert_int_eq(irq_lines__ioapic_pin(1), 1);
	ck_assert_int_eq(irq_lines__ioapic_pin(2), -1);
	ck_assert_int_eq(irq_lines__ioapic_pin(9), 9);
	ck_assert_int_eq(irq_lines__ioapic_pin(23), 23);
	ck_assert_int_eq(irq_lines__ioapic_pin(24), -1);

	/* Program the 8259 (vectors 0x20/0x28, all unmasked). */
	b = 0x11; pic__io_master(&x->pic, 0, &b, 1, true);
	b = 0x20; pic__io_master(&x->pic, 1, &b, 1, true);
	b = 0x04; pic__io_master(&x->pic, 1, &b, 1, true);
	b = 0x01; pic__io_master(&x->pic, 1, &b, 1, true);
	b = 0x11; pic__io_slave(&x->pic, 0, &b, 1, true);
	b = 0x28; pic__io_slave(&x->pic, 1, &b, 1, true);
	b = 0x02; pic__io_slave(&x->pic, 1, &b, 1, true);
	b = 0x01; pic__io_slave(&x->pic, 1, &b, 1, true);
	b = 0x00; pic__io_master(&x->pic, 1, &b, 1, true);
	b = 0x00; pic__io_slave(&x->pic, 1, &b, 1, true);
	rte_wr(x->f, 2, 0x30);
	rte_wr(x->f, 0, (uint64_t)APIC_DM_EXTINT << 8);

	/* GSI 0 (the PIT): 8259 IRQ0 and IOAPIC pin 2; the 8259's INTR
	 * reaches LINT0 and IOAPIC pin 0. */
	irq_sink__set(&sink, 0, true);
	ck_assert(x->lint0);
	ck_assert_int_eq(x->f->nsent, 2);
	ck_assert_uint_eq(x->f->sent[0].delivery, APIC_DM_EXTINT);
	ck_assert_uint_eq(x->f->sent[1].vector, 0x30);
	ck_assert_int_eq(pic__ack(&x->pic), 0x20);
	ck_assert(!x->lint0);
	irq_sink__set(&sink, 0, false);

	/* GSI 18: IOAPIC only. */
	rte_wr(x->f, 18, 0x32);
	x->lint0_calls = 0;
	irq_sink__pulse(&sink, 18);
	ck_assert_int_eq(x->f->nsent, 3);
	ck_assert_uint_eq(x->f->sent[2].vector, 0x32);
	ck_assert_int_eq(x->lint0_calls, 0);
	/* Out-of-range GSIs are ignored. */
	irq_sink__set(&sink, 200, true);
	ck_assert_int_eq(x->f->nsent, 3);

	pic__destroy(&x->pic);
	fake_free(x->f);
	free(x);
}
END_TEST

static Suite *ioapic_suite(void)
{
	Suite *s = suite_create("ioapic");
	TCase *tc = tcase_create("ioapic");
	TCase *lines = tcase_create("irq_lines");

	tcase_add_test(tc, registers);
	tcase_add_test(tc, odd_accesses_are_safe);
	tcase_add_test(tc, edge_delivery);
	tcase_add_test(tc, level_remote_irr_and_eoi);
	tcase_add_test(tc, level_to_nobody_sets_no_remote_irr);
	tcase_add_test(tc, level_masking);
	tcase_add_test(tc, polarity);
	tcase_add_test(tc, nmi_extint_modes_and_reset);
	tcase_add_test(tc, post_load_redelivers);
	suite_add_tcase(s, tc);
	tcase_add_test(lines, irq_lines_fan_out);
	suite_add_tcase(s, lines);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(ioapic_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
