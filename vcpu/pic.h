/* The PC's 8259A pair: master (IRQ0-7, ports 0x20-0x21) with the slave
 * (IRQ8-15, ports 0xA0-0xA1) cascaded on IRQ2, plus the ELCR (0x4D0-0x4D1)
 * that makes single IRQs level-triggered.
 *
 * The machine registers three PIO ranges, each with opaque = struct pic*:
 *   0x20  length 2  pic__io_master
 *   0xA0  length 2  pic__io_slave
 *   0x4D0 length 2  pic__io_elcr
 * and wires the output (INTR) to the BSP's LINT0 (irq_lines__pic_output
 * does that and also drives IOAPIC pin 0). */
#ifndef KRG_VCPU_PIC_H
#define KRG_VCPU_PIC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#define PIC_STATE_VERSION 1
#define PIC_MASTER_BASE 0x20
#define PIC_SLAVE_BASE 0xA0
#define PIC_ELCR_BASE 0x4D0

/* One 8259A; plain, fixed-width, pointer-free. */
struct pic_chip_state {
	uint8_t irr, isr, imr;
	uint8_t lines;            /* raw input levels (edge detection, level) */
	uint8_t elcr, elcr_mask;  /* level-triggered inputs; writable bits */
	uint8_t irq_base;         /* ICW2 & 0xF8 */
	uint8_t priority_add;     /* IR with the highest priority (rotation) */
	uint8_t init_state;       /* 0 ready, 1-3: expecting ICW2-ICW4 */
	uint8_t init4, single_mode, ltim;
	uint8_t auto_eoi, rotate_on_auto_eoi, special_fully_nested;
	uint8_t read_isr, poll, special_mask;
	uint8_t pad[2];
};

struct pic_state {
	struct pic_chip_state chip[2]; /* 0 master, 1 slave */
	uint8_t output;                /* last INTR level reported */
	uint8_t pad[7];
};
_Static_assert(sizeof(struct pic_state) == 48,
	       "pic_state is a saved format: bump PIC_STATE_VERSION");

typedef void (*pic_output_fn)(void *ctx, bool level);

struct pic {
	struct pic_state s;
	pthread_mutex_t lock;
	pic_output_fn output;
	void *output_ctx;
};

void pic__init(struct pic *p, pic_output_fn output, void *ctx);
void pic__destroy(struct pic *p);
/* io_handler_fn for each registered range (offset 0 or 1). */
void pic__io_master(void *opaque, uint64_t offset, uint8_t *data,
		    uint32_t len, bool is_write);
void pic__io_slave(void *opaque, uint64_t offset, uint8_t *data,
		   uint32_t len, bool is_write);
void pic__io_elcr(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write);
/* Input line irq (0-15), active-high. */
void pic__set_irq(struct pic *p, unsigned irq, bool level);
/* INTA: the vector to inject (IRR -> ISR, auto-EOI, cascade); a request
 * that vanished gives the spurious IRQ7 (or IRQ15) vector. */
int pic__ack(struct pic *p);
/* INTR output level now (what output() last reported). */
bool pic__output(struct pic *p);
/* After p->s was overwritten by a restore: report the output again. */
void pic__post_load(struct pic *p);

#endif
