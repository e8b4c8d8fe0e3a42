#include "vmm/devices/i8042.h"

#include <string.h>

#define KBD_ACK 0xFA
#define KBD_RESEND 0xFE
#define KBD_BAT_OK 0xAA

/* What a BIOS leaves: translation on, system flag set, keyboard IRQ on. */
#define I8042_CFG_DEFAULT (I8042_CFG_XLATE | I8042_CFG_SYS | I8042_CFG_KBDINT)

static void kbd_defaults(struct i8042_state *s)
{
	s->kbd_pending = 0;
	s->kbd_enabled = 1;
	s->kbd_scanset = 2;
	s->kbd_leds = 0;
}

static void aux_defaults(struct i8042_state *s)
{
	s->aux_pending = 0;
	s->aux_enabled = 0;
	s->aux_rate = 100;
	s->aux_resolution = 2;
	s->aux_scaling = 0;
	s->aux_remote = 0;
}

static void reset_state(struct i8042_state *s)
{
	memset(s, 0, sizeof(*s));
	s->config = I8042_CFG_DEFAULT;
	s->outport = I8042_OUTPORT_RESET | I8042_OUTPORT_A20;
	kbd_defaults(s);
	aux_defaults(s);
}

void i8042__init(struct i8042 *k, const struct irq_sink *irq,
		 const struct machine_control *control)
{
	memset(k, 0, sizeof(*k));
	pthread_mutex_init(&k->lock, NULL);
	if (irq)
		k->irq = *irq;
	if (control)
		k->control = *control;
	reset_state(&k->s);
}

void i8042__destroy(struct i8042 *k)
{
	pthread_mutex_destroy(&k->lock);
}

static bool head_is_aux(const struct i8042_state *s)
{
	return s->count && (s->queue_aux >> s->head) & 1;
}

static void push(struct i8042_state *s, uint8_t v, bool aux)
{
	unsigned slot;

	if (s->count >= I8042_QUEUE_SIZE)
		return; /* the device would have been told to wait */
	slot = (s->head + s->count) % I8042_QUEUE_SIZE;
	s->queue[slot] = v;
	if (aux)
		s->queue_aux |= (uint16_t)(1u << slot);
	else
		s->queue_aux &= (uint16_t)~(1u << slot);
	s->count++;
}

static uint8_t pop(struct i8042_state *s)
{
	if (!s->count)
		return s->last_data;
	s->last_data = s->queue[s->head];
	s->head = (s->head + 1) % I8042_QUEUE_SIZE;
	s->count--;
	return s->last_data;
}

/* Levels into the interrupt controllers, with the lock held so they
 * arrive in order.  After a byte was taken the lines drop first: the next
 * byte must be a new edge for the (edge-triggered) ISA inputs. */
static void update_irq(struct i8042 *k, bool edge, bool force)
{
	const struct i8042_state *s = &k->s;
	bool kbd = s->count && !head_is_aux(s) && (s->config & I8042_CFG_KBDINT);
	bool aux = s->count && head_is_aux(s) && (s->config & I8042_CFG_AUXINT);

	if (edge && k->kbd_level) {
		k->kbd_level = false;
		irq_sink__set(&k->irq, I8042_KBD_IRQ, false);
	}
	if (edge && k->aux_level) {
		k->aux_level = false;
		irq_sink__set(&k->irq, I8042_AUX_IRQ, false);
	}
	if (kbd != k->kbd_level || force) {
		k->kbd_level = kbd;
		irq_sink__set(&k->irq, I8042_KBD_IRQ, kbd);
	}
	if (aux != k->aux_level || force) {
		k->aux_level = aux;
		irq_sink__set(&k->irq, I8042_AUX_IRQ, aux);
	}
}

static uint8_t read_status(const struct i8042_state *s)
{
	uint8_t v = I8042_STR_UNLOCK;

	if (s->count)
		v |= I8042_STR_OBF;
	if (head_is_aux(s))
		v |= I8042_STR_AUXOBF;
	if (s->config & I8042_CFG_SYS)
		v |= I8042_STR_SYS;
	if (s->status_cmd)
		v |= I8042_STR_CMD;
	return v;
}

/* The keyboard's answer to a byte from the host. */
static void kbd_write(struct i8042_state *s, uint8_t v)
{
	bool xlate = s->config & I8042_CFG_XLATE;

	if (s->kbd_pending) {
		uint8_t cmd = s->kbd_pending;

		s->kbd_pending = 0;
		if (cmd == 0xED) {
			s->kbd_leds = v & 7;
		} else if (cmd == 0xF0 && v == 0) {
			/* Report the set; the controller translates the
			 * answer like any byte when translation is on. */
			static const uint8_t xlated[4] = { 0, 0x43, 0x41, 0x3F };

			push(s, KBD_ACK, false);
			push(s, xlate ? xlated[s->kbd_scanset & 3]
				      : s->kbd_scanset, false);
			return;
		} else if (cmd == 0xF0 && v <= 3) {
			s->kbd_scanset = v;
		}
		push(s, KBD_ACK, false);
		return;
	}
	switch (v) {
	case 0xED: /* LEDs */
	case 0xF0: /* scan code set */
	case 0xF3: /* typematic rate */
		s->kbd_pending = v;
		push(s, KBD_ACK, false);
		break;
	case 0xEE: /* echo */
		push(s, 0xEE, false);
		break;
	case 0xF2: /* identify: an MF2 keyboard */
		push(s, KBD_ACK, false);
		push(s, 0xAB, false);
		push(s, xlate ? 0x41 : 0x83, false);
		break;
	case 0xF4:
		s->kbd_enabled = 1;
		push(s, KBD_ACK, false);
		break;
	case 0xF5: /* disable, and back to defaults */
		kbd_defaults(s);
		s->kbd_enabled = 0;
		push(s, KBD_ACK, false);
		break;
	case 0xF6:
		kbd_defaults(s);
		push(s, KBD_ACK, false);
		break;
	case 0xFF: /* reset and self-test (BAT) */
		kbd_defaults(s);
		push(s, KBD_ACK, false);
		push(s, KBD_BAT_OK, false);
		break;
	default:
		/* 0xF7-0xFE are key-type settings and resend: acknowledged. */
		push(s, v >= 0xF7 ? KBD_ACK : KBD_RESEND, false);
		break;
	}
}

/* The mouse's answer to a byte the host sent with 0xD4. */
static void aux_write(struct i8042_state *s, uint8_t v)
{
	if (s->aux_pending) {
		if (s->aux_pending == 0xF3)
			s->aux_rate = v;
		else
			s->aux_resolution = v & 3;
		s->aux_pending = 0;
		push(s, KBD_ACK, true);
		return;
	}
	switch (v) {
	case 0xE6:
	case 0xE7:
		s->aux_scaling = v == 0xE7;
		push(s, KBD_ACK, true);
		break;
	case 0xE8: /* resolution */
	case 0xF3: /* sample rate */
		s->aux_pending = v;
		push(s, KBD_ACK, true);
		break;
	case 0xE9: /* status request */
		push(s, KBD_ACK, true);
		push(s, (uint8_t)((s->aux_remote ? 0x40 : 0) |
				  (s->aux_enabled ? 0x20 : 0) |
				  (s->aux_scaling ? 0x10 : 0)), true);
		push(s, s->aux_resolution, true);
		push(s, s->aux_rate, true);
		break;
	case 0xEA:
	case 0xF0:
		s->aux_remote = v == 0xF0;
		push(s, KBD_ACK, true);
		break;
	case 0xEB: /* read data: a packet of no movement */
		push(s, KBD_ACK, true);
		push(s, 0x08, true);
		push(s, 0x00, true);
		push(s, 0x00, true);
		break;
	case 0xF2: /* identify: a plain PS/2 mouse */
		push(s, KBD_ACK, true);
		push(s, 0x00, true);
		break;
	case 0xF4:
	case 0xF5:
		s->aux_enabled = v == 0xF4;
		push(s, KBD_ACK, true);
		break;
	case 0xF6:
		aux_defaults(s);
		push(s, KBD_ACK, true);
		break;
	case 0xFF:
		aux_defaults(s);
		push(s, KBD_ACK, true);
		push(s, KBD_BAT_OK, true);
		push(s, 0x00, true);
		break;
	default:
		push(s, v == 0xEC || v == 0xEE || v == 0xFE ? KBD_ACK
							    : KBD_RESEND, true);
		break;
	}
}

static uint8_t outport_value(const struct i8042_state *s)
{
	uint8_t v = s->outport & 0xCF;

	if (s->count && !head_is_aux(s))
		v |= 0x10;
	if (head_is_aux(s))
		v |= 0x20;
	return v;
}

/* Returns true when the command asks for a CPU reset. */
static bool controller_cmd(struct i8042_state *s, uint8_t cmd)
{
	switch (cmd) {
	case I8042_CMD_READ_CFG:
		push(s, s->config, false);
		return false;
	case I8042_CMD_WRITE_CFG:
	case I8042_CMD_WRITE_OUTPORT:
	case I8042_CMD_WRITE_KBD_OBUF:
	case I8042_CMD_WRITE_AUX_OBUF:
	case I8042_CMD_WRITE_AUX:
		s->pending_cmd = cmd;
		return false;
	case 0xA4: /* password installed? no */
		push(s, 0xF1, false);
		return false;
	case I8042_CMD_AUX_DISABLE:
		s->config |= I8042_CFG_AUXDIS;
		return false;
	case I8042_CMD_AUX_ENABLE:
		s->config &= (uint8_t)~I8042_CFG_AUXDIS;
		return false;
	case I8042_CMD_AUX_TEST:
	case I8042_CMD_KBD_TEST:
		push(s, 0x00, false); /* no clock or data line stuck */
		return false;
	case I8042_CMD_SELF_TEST:
		s->config |= I8042_CFG_SYS;
		push(s, 0x55, false);
		return false;
	case I8042_CMD_KBD_DISABLE:
		s->config |= I8042_CFG_KBDDIS;
		return false;
	case I8042_CMD_KBD_ENABLE:
		s->config &= (uint8_t)~I8042_CFG_KBDDIS;
		return false;
	case 0xC0: /* input port: keyboard not inhibited */
		push(s, 0x80, false);
		return false;
	case I8042_CMD_READ_OUTPORT:
		push(s, outport_value(s), false);
		return false;
	case 0xE0: /* test inputs */
		push(s, 0x00, false);
		return false;
	default:
		break;
	}
	if (cmd >= 0x61 && cmd <= 0x7F) {
		s->pending_cmd = cmd; /* controller RAM write: data dropped */
		return false;
	}
	if (cmd >= 0x21 && cmd <= 0x3F) {
		push(s, 0x00, false); /* controller RAM read */
		return false;
	}
	/* 0xF0-0xFF pulse the output lines whose mask bit is 0; bit 0 is
	 * the CPU reset line. */
	if (cmd >= 0xF0)
		return !(cmd & 1);
	return false;
}

/* Returns true when the write asks for a CPU reset. */
static bool data_write(struct i8042_state *s, uint8_t v)
{
	uint8_t cmd = s->pending_cmd;

	s->pending_cmd = 0;
	switch (cmd) {
	case 0:
		/* Talking to the keyboard re-enables its interface. */
		s->config &= (uint8_t)~I8042_CFG_KBDDIS;
		kbd_write(s, v);
		return false;
	case I8042_CMD_WRITE_CFG:
		s->config = v & 0x7F; /* bit 7 is reserved (0) */
		return false;
	case I8042_CMD_WRITE_OUTPORT:
		/* A20 (bit 1) is always on here: nothing to gate. */
		s->outport = v;
		return !(v & I8042_OUTPORT_RESET);
	case I8042_CMD_WRITE_KBD_OBUF:
		push(s, v, false);
		return false;
	case I8042_CMD_WRITE_AUX_OBUF:
		push(s, v, true);
		return false;
	case I8042_CMD_WRITE_AUX:
		s->config &= (uint8_t)~I8042_CFG_AUXDIS;
		aux_write(s, v);
		return false;
	default:
		return false; /* controller RAM */
	}
}

static void request_reset(struct i8042 *k)
{
	machine_control__request(&k->control, MACHINE_REQ_RESET, 0);
}

void i8042__io_data(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;
	uint32_t i;

	if (!len)
		return;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		k->s.status_cmd = 0;
		reset = data_write(&k->s, data[0]);
		update_irq(k, false, false);
	} else {
		data[0] = pop(&k->s);
		update_irq(k, true, false);
	}
	pthread_mutex_unlock(&k->lock);
	/* One data port: a wider access only reaches its first byte. */
	for (i = 1; i < len && !is_write; i++)
		data[i] = 0xFF;
	if (reset)
		request_reset(k);
}

void i8042__io_cmd(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		   bool is_write)
{
	struct i8042 *k = opaque;
	bool reset = false;
	uint32_t i;

	if (!len)
		return;
	pthread_mutex_lock(&k->lock);
	if (is_write) {
		k->s.status_cmd = 1;
		k->s.pending_cmd = 0; /* a new command aborts a pending one */
		reset = controller_cmd(&k->s, data[0]);
		update_irq(k, false, false);
	} else {
		data[0] = read_status(&k->s);
	}
	pthread_mutex_unlock(&k->lock);
	for (i = 1; i < len && !is_write; i++)
		data[i] = 0xFF;
	if (reset)
		request_reset(k);
}

void i8042__reset(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	reset_state(&k->s);
	update_irq(k, false, false);
	pthread_mutex_unlock(&k->lock);
}

void i8042__post_load(struct i8042 *k)
{
	pthread_mutex_lock(&k->lock);
	k->s.head %= I8042_QUEUE_SIZE;
	if (k->s.count > I8042_QUEUE_SIZE)
		k->s.count = I8042_QUEUE_SIZE;
	update_irq(k, false, true);
	pthread_mutex_unlock(&k->lock);
}
