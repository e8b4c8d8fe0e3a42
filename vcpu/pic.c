/* 8259A pair.  Priorities are kept as "priority_add": the IR number that
 * currently has the highest priority (rotation moves it).  The slave's
 * output drives the master's IR2; the master's output is INTR, reported
 * through the output callback whenever it changes (called with the PIC
 * lock held: the callback must not call back into the PIC). */
#include "vcpu/pic.h"

#include <string.h>

#define MASTER 0
#define SLAVE 1
#define CASCADE_IRQ 2

static uint8_t level_mask(const struct pic_chip_state *c)
{
	return c->ltim ? 0xFF : c->elcr;
}

/* Priority (0 = highest) of the best IR in mask, 8 if none. */
static int priority(const struct pic_chip_state *c, uint8_t mask)
{
	for (int p = 0; p < 8; p++)
		if (mask & (1u << ((p + c->priority_add) & 7)))
			return p;
	return 8;
}

/* The IR this chip signals to its output now, or -1. */
static int chip_irq(const struct pic_chip_state *c, bool master)
{
	int req, cur, irq;
	uint8_t isr = c->isr;

	/* No vector base yet: stay quiet until the init sequence ends. */
	if (c->init_state)
		return -1;
	req = priority(c, c->irr & ~c->imr);
	if (req == 8)
		return -1;
	irq = (req + c->priority_add) & 7;
	if (c->special_mask)
		isr &= ~c->imr;
	cur = priority(c, isr);
	/* Special fully nested: the slave may interrupt again while IR2 is
	 * in service, if nothing above it is. */
	if (req < cur ||
	    (master && c->special_fully_nested && irq == CASCADE_IRQ &&
	     req == cur))
		return irq;
	return -1;
}

static void set_line(struct pic_chip_state *c, int irq, bool level)
{
	uint8_t bit = (uint8_t)(1u << irq);

	if (level_mask(c) & bit) {
		if (level)
			c->irr |= bit;
		else
			c->irr &= ~bit;
	} else if (level && !(c->lines & bit)) {
		c->irr |= bit;
	}
	if (level)
		c->lines |= bit;
	else
		c->lines &= ~bit;
}

static void update(struct pic *p)
{
	bool out;

	set_line(&p->s.chip[MASTER], CASCADE_IRQ,
		 chip_irq(&p->s.chip[SLAVE], false) >= 0);
	out = chip_irq(&p->s.chip[MASTER], true) >= 0;
	if (out != p->s.output) {
		p->s.output = out;
		if (p->output)
			p->output(p->output_ctx, out);
	}
}

static void ack_chip(struct pic_chip_state *c, int irq)
{
	uint8_t bit = (uint8_t)(1u << irq);

	if (c->auto_eoi) {
		if (c->rotate_on_auto_eoi)
			c->priority_add = (uint8_t)((irq + 1) & 7);
	} else {
		c->isr |= bit;
	}
	/* A level request stays in IRR for as long as its line is high. */
	if (!(level_mask(c) & bit))
		c->irr &= ~bit;
}

static void chip_reset(struct pic_chip_state *c, uint8_t elcr_mask)
{
	memset(c, 0, sizeof(*c));
	c->elcr_mask = elcr_mask;
	c->imr = 0xFF; /* nothing reaches the CPU before it programs us */
}

void pic__init(struct pic *p, pic_output_fn output, void *ctx)
{
	memset(&p->s, 0, sizeof(p->s));
	/* IRQ0-2 (timer, keyboard, cascade), IRQ8 (RTC) and IRQ13 (FPU)
	 * are edge-only on PIIX/ICH. */
	chip_reset(&p->s.chip[MASTER], 0xF8);
	chip_reset(&p->s.chip[SLAVE], 0xDE);
	pthread_mutex_init(&p->lock, NULL);
	p->output = output;
	p->output_ctx = ctx;
}

void pic__destroy(struct pic *p)
{
	pthread_mutex_destroy(&p->lock);
}

static void icw1(struct pic_chip_state *c, uint8_t val)
{
	uint8_t lmask;

	c->imr = 0;
	c->isr = 0;
	c->priority_add = 0;
	c->irq_base = 0;
	c->read_isr = c->poll = c->special_mask = 0;
	c->auto_eoi = c->rotate_on_auto_eoi = c->special_fully_nested = 0;
	c->init4 = val & 1;
	c->single_mode = (val >> 1) & 1;
	c->ltim = (val >> 3) & 1;
	c->init_state = 1;
	/* The edge-sense latches are reset: pending edges are gone, level
	 * requests are whatever the lines say. */
	lmask = level_mask(c);
	c->irr = c->lines & lmask;
}

static void ocw2(struct pic_chip_state *c, uint8_t val)
{
	int irq, pr;

	switch (val >> 5) {
	case 0: /* rotate in auto-EOI mode: clear */
	case 4: /* ... set */
		c->rotate_on_auto_eoi = val >> 7;
		break;
	case 1: /* non-specific EOI */
	case 5: /* rotate on non-specific EOI */
		pr = priority(c, c->isr);
		if (pr == 8)
			break;
		irq = (pr + c->priority_add) & 7;
		c->isr &= (uint8_t)~(1u << irq);
		if (val >> 5 == 5)
			c->priority_add = (uint8_t)((irq + 1) & 7);
		break;
	case 3: /* specific EOI */
	case 7: /* rotate on specific EOI */
		irq = val & 7;
		c->isr &= (uint8_t)~(1u << irq);
		if (val >> 5 == 7)
			c->priority_add = (uint8_t)((irq + 1) & 7);
		break;
	case 6: /* set priority: IR (val & 7) becomes the lowest */
		c->priority_add = (uint8_t)((val + 1) & 7);
		break;
	default: /* 2: no operation */
		break;
	}
}

static void chip_write(struct pic_chip_state *c, uint64_t offset, uint8_t val)
{
	if (offset == 0) {
		if (val & 0x10) {
			icw1(c, val);
		} else if (val & 0x08) { /* OCW3 */
			if (val & 0x04)
				c->poll = 1;
			if (val & 0x02)
				c->read_isr = val & 1;
			if (val & 0x40)
				c->special_mask = (val >> 5) & 1;
		} else {
			ocw2(c, val);
		}
		return;
	}
	switch (c->init_state) {
	case 0: /* OCW1 */
		c->imr = val;
		break;
	case 1: /* ICW2 */
		c->irq_base = val & 0xF8;
		c->init_state = c->single_mode ? (c->init4 ? 3 : 0) : 2;
		break;
	case 2: /* ICW3: the cascade wiring is fixed on a PC */
		c->init_state = c->init4 ? 3 : 0;
		break;
	default: /* ICW4 (8086 mode assumed; buffered mode irrelevant) */
		c->special_fully_nested = (val >> 4) & 1;
		c->auto_eoi = (val >> 1) & 1;
		c->init_state = 0;
		break;
	}
}

static uint8_t chip_read(struct pic *p, int idx, uint64_t offset)
{
	struct pic_chip_state *c = &p->s.chip[idx];
	int irq;

	if (c->poll) {
		/* Poll: the read is the acknowledge. */
		c->poll = 0;
		irq = chip_irq(c, idx == MASTER);
		if (irq < 0)
			return 0;
		ack_chip(c, irq);
		return (uint8_t)(0x80 | irq);
	}
	if (offset == 0)
		return c->read_isr ? c->isr : c->irr;
	return c->imr;
}

static void chip_io(struct pic *p, int idx, uint64_t offset, uint8_t *data,
		    uint32_t len, bool is_write)
{
	if (!data)
		return;
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (offset + i > 1) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		if (is_write)
			chip_write(&p->s.chip[idx], offset + i, data[i]);
		else
			data[i] = chip_read(p, idx, offset + i);
	}
	update(p);
	pthread_mutex_unlock(&p->lock);
}

void pic__io_master(void *opaque, uint64_t offset, uint8_t *data,
		    uint32_t len, bool is_write)
{
	chip_io(opaque, MASTER, offset, data, len, is_write);
}

void pic__io_slave(void *opaque, uint64_t offset, uint8_t *data,
		   uint32_t len, bool is_write)
{
	chip_io(opaque, SLAVE, offset, data, len, is_write);
}

void pic__io_elcr(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write)
{
	struct pic *p = opaque;

	if (!data)
		return;
	pthread_mutex_lock(&p->lock);
	for (uint32_t i = 0; i < len; i++) {
		struct pic_chip_state *c;

		if (offset + i > 1) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		c = &p->s.chip[offset + i];
		if (!is_write) {
			data[i] = c->elcr;
			continue;
		}
		c->elcr = data[i] & c->elcr_mask;
		/* Inputs that became level-triggered follow their line. */
		c->irr = (uint8_t)((c->irr & ~level_mask(c)) |
				   (c->lines & level_mask(c)));
	}
	update(p);
	pthread_mutex_unlock(&p->lock);
}

void pic__set_irq(struct pic *p, unsigned irq, bool level)
{
	if (irq > 15)
		return;
	pthread_mutex_lock(&p->lock);
	set_line(&p->s.chip[irq >> 3], irq & 7, level);
	update(p);
	pthread_mutex_unlock(&p->lock);
}

int pic__ack(struct pic *p)
{
	struct pic_chip_state *m = &p->s.chip[MASTER], *sl = &p->s.chip[SLAVE];
	int irq, irq2, vector;

	pthread_mutex_lock(&p->lock);
	irq = chip_irq(m, true);
	if (irq < 0) {
		vector = m->irq_base + 7; /* spurious IRQ7, no ISR bit */
	} else {
		ack_chip(m, irq);
		if (irq == CASCADE_IRQ) {
			irq2 = chip_irq(sl, false);
			if (irq2 >= 0) {
				ack_chip(sl, irq2);
				vector = sl->irq_base + irq2;
			} else {
				vector = sl->irq_base + 7; /* spurious IRQ15 */
			}
		} else {
			vector = m->irq_base + irq;
		}
	}
	update(p);
	pthread_mutex_unlock(&p->lock);
	return vector;
}

bool pic__output(struct pic *p)
{
	bool out;

	pthread_mutex_lock(&p->lock);
	out = p->s.output;
	pthread_mutex_unlock(&p->lock);
	return out;
}

void pic__post_load(struct pic *p)
{
	pthread_mutex_lock(&p->lock);
	for (int i = 0; i < 2; i++) {
		struct pic_chip_state *c = &p->s.chip[i];

		c->elcr_mask = i == MASTER ? 0xF8 : 0xDE;
		c->elcr &= c->elcr_mask;
		if (c->init_state > 3)
			c->init_state = 0;
	}
	p->s.output = chip_irq(&p->s.chip[MASTER], true) >= 0;
	update(p);
	if (p->output)
		p->output(p->output_ctx, p->s.output);
	pthread_mutex_unlock(&p->lock);
}
