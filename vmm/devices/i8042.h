/* The 8042 PS/2 controller with a keyboard and a mouse that never type or
 * move: enough for Linux's i8042/atkbd/psmouse probes to succeed, for
 * SeaBIOS's keyboard init, and for the two reset paths (command 0xFE and
 * output-port bit 0 via 0xD1).
 *
 * Register two PIO ranges, opaque = the struct i8042:
 *   I8042_DATA_PORT (0x60), length 1, handler i8042__io_data
 *   I8042_CMD_PORT  (0x64), length 1, handler i8042__io_cmd
 * (0x61 between them belongs to the PIT.)  IRQ 1 (keyboard) and 12 (aux)
 * are levels that follow the output buffer: high while a byte from that
 * port waits and its interrupt is enabled in the configuration byte. */
#ifndef KRG_VMM_DEVICES_I8042_H
#define KRG_VMM_DEVICES_I8042_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_KBD_IRQ 1
#define I8042_AUX_IRQ 12
#define I8042_QUEUE_SIZE 16
#define I8042_STATE_VERSION 1

/* Status register. */
#define I8042_STR_OBF 0x01
#define I8042_STR_IBF 0x02
#define I8042_STR_SYS 0x04
#define I8042_STR_CMD 0x08    /* A2: last write went to the command port */
#define I8042_STR_UNLOCK 0x10 /* keyboard not inhibited */
#define I8042_STR_AUXOBF 0x20

/* Configuration ("command") byte. */
#define I8042_CFG_KBDINT 0x01
#define I8042_CFG_AUXINT 0x02
#define I8042_CFG_SYS 0x04
#define I8042_CFG_KBDDIS 0x10
#define I8042_CFG_AUXDIS 0x20
#define I8042_CFG_XLATE 0x40

/* Controller commands (port 0x64). */
#define I8042_CMD_READ_CFG 0x20
#define I8042_CMD_WRITE_CFG 0x60
#define I8042_CMD_AUX_DISABLE 0xA7
#define I8042_CMD_AUX_ENABLE 0xA8
#define I8042_CMD_AUX_TEST 0xA9
#define I8042_CMD_SELF_TEST 0xAA
#define I8042_CMD_KBD_TEST 0xAB
#define I8042_CMD_KBD_DISABLE 0xAD
#define I8042_CMD_KBD_ENABLE 0xAE
#define I8042_CMD_READ_OUTPORT 0xD0
#define I8042_CMD_WRITE_OUTPORT 0xD1
#define I8042_CMD_WRITE_KBD_OBUF 0xD2
#define I8042_CMD_WRITE_AUX_OBUF 0xD3
#define I8042_CMD_WRITE_AUX 0xD4
#define I8042_CMD_PULSE_RESET 0xFE

#define I8042_OUTPORT_RESET 0x01 /* active low: 0 resets the CPU */
#define I8042_OUTPORT_A20 0x02

struct i8042_state {
	uint8_t queue[I8042_QUEUE_SIZE]; /* output buffer, oldest at head */
	uint16_t queue_aux;              /* slot bit set: byte is aux data */
	uint8_t head, count;
	uint8_t config;
	uint8_t outport;
	uint8_t pending_cmd;   /* controller command awaiting its data byte */
	uint8_t status_cmd;    /* A2 */
	uint8_t last_data;     /* what port 0x60 reads when empty */
	uint8_t kbd_pending;   /* keyboard command awaiting its parameter */
	uint8_t kbd_enabled, kbd_scanset, kbd_leds;
	uint8_t aux_pending;   /* mouse command awaiting its parameter */
	uint8_t aux_enabled, aux_rate, aux_resolution, aux_scaling;
	uint8_t aux_remote;
	uint8_t pad[5];
};
_Static_assert(sizeof(struct i8042_state) == 40,
	       "i8042_state is a saved format: bump I8042_STATE_VERSION");

struct i8042 {
	struct i8042_state s;
	pthread_mutex_t lock;
	struct irq_sink irq;
	struct machine_control control;
	bool kbd_level, aux_level; /* what the lines were last set to */
};

void i8042__init(struct i8042 *k, const struct irq_sink *irq,
		 const struct machine_control *control);
void i8042__destroy(struct i8042 *k);
/* Machine reset: controller and devices back to their power-on state. */
void i8042__reset(struct i8042 *k);
/* io_handler_fn for port 0x60 (offset 0 only). */
void i8042__io_data(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write);
/* io_handler_fn for port 0x64 (offset 0 only). */
void i8042__io_cmd(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		   bool is_write);
/* After k->s was overwritten by a restore: re-drives IRQ 1 and 12. */
void i8042__post_load(struct i8042 *k);

#endif
