#include "vmm/devices/pit.h"

#include <string.h>

#define NS_PER_SEC 1000000000ull

uint64_t pit__ticks_at(uint64_t ns)
{
	return (uint64_t)((unsigned __int128)ns * PIT_HZ / NS_PER_SEC);
}

/* The first clock value at which the tick count reaches tick. */
static uint64_t ns_of_tick(uint64_t tick)
{
	unsigned __int128 ns = ((unsigned __int128)tick * NS_PER_SEC +
				PIT_HZ - 1) / PIT_HZ;

	return ns > UINT64_MAX ? UINT64_MAX : (uint64_t)ns;
}

static uint32_t modulus(const struct pit_channel_state *c)
{
	return c->bcd ? 10000 : 65536;
}

static uint16_t to_bcd(uint32_t v)
{
	return (uint16_t)((v / 1000 % 10) << 12 | (v / 100 % 10) << 8 |
			  (v / 10 % 10) << 4 | (v % 10));
}

static uint32_t from_bcd(uint16_t v)
{
	/* Nibbles above 9 are not BCD; whatever the guest meant, stay in
	 * range. */
	return ((v >> 12) * 1000u + (v >> 8 & 0xF) * 100u + (v >> 4 & 0xF) * 10u +
		(v & 0xF)) % 10000u;
}

static uint64_t elapsed(const struct pit_channel_state *c, uint64_t now_tick)
{
	if (c->paused)
		return c->frozen_ticks;
	return now_tick > c->origin_tick ? now_tick - c->origin_tick : 0;
}

/* The counting element's value (0..65535, or 0..9999 in BCD). */
static uint32_t count_value(const struct pit_channel_state *c,
			    uint64_t now_tick)
{
	uint32_t m = modulus(c), n = c->reload, v;
	uint64_t t = elapsed(c, now_tick);

	if (!c->counting)
		return n % m;
	switch (c->mode) {
	case 2:
		v = n - (uint32_t)(t % n);
		break;
	case 3:
		/* Decrements by two, reloading every half period. */
		v = n - (uint32_t)((2 * (t % n)) % n);
		break;
	default: /* 0, 1, 4, 5: count down and wrap */
		v = (uint32_t)((n + m - t % m) % m);
		break;
	}
	return v % m;
}

static bool out_value(const struct pit_channel_state *c, uint64_t now_tick)
{
	uint64_t t = elapsed(c, now_tick), n = c->reload;

	if (!c->counting)
		return c->mode != 0; /* mode 0 goes low on the control word */
	switch (c->mode) {
	case 0:
	case 1:
		return t >= n;
	case 2:
		return c->paused || t % n != n - 1;
	case 3:
		return c->paused || t % n < (n + 1) / 2;
	default: /* 4, 5: one low tick at terminal count */
		return t != n;
	}
}

static uint8_t status_byte(const struct pit_channel_state *c,
			   uint64_t now_tick)
{
	return (uint8_t)((out_value(c, now_tick) ? 0x80 : 0) |
			 (c->null_count ? 0x40 : 0) | c->rw << 4 |
			 c->mode << 1 | c->bcd);
}

static uint16_t shown_count(const struct pit_channel_state *c,
			    uint64_t now_tick)
{
	uint32_t v = count_value(c, now_tick);

	return c->bcd ? to_bcd(v) : (uint16_t)v;
}

/* The tick of channel 0's next interrupt edge, 0 for none. */
static uint64_t next_irq_tick(const struct pit_channel_state *c)
{
	if (!c->counting || c->paused)
		return 0;
	if (c->mode == 2 || c->mode == 3)
		return c->origin_tick + (c->irq_periods + 1) * c->reload;
	return c->irq_periods ? 0 : c->origin_tick + c->reload;
}

static void rearm(struct pit *pit, uint64_t now)
{
	uint64_t tick = next_irq_tick(&pit->s.ch[0]), deadline;

	if (!tick) {
		dev_clock__cancel(&pit->clock);
		return;
	}
	deadline = ns_of_tick(tick);
	/* A guest-chosen tiny period must not become a timer storm. */
	if (deadline < now + PIT_MIN_PERIOD_NS)
		deadline = now + PIT_MIN_PERIOD_NS;
	dev_clock__arm(&pit->clock, deadline);
}

/* Whether channel 0 owes an edge now (and accounts merged periods). */
static bool take_irq(struct pit *pit, uint64_t now_tick)
{
	struct pit_channel_state *c = &pit->s.ch[0];
	uint64_t next = next_irq_tick(c), periods;

	if (!next || now_tick < next)
		return false;
	if (c->mode == 2 || c->mode == 3) {
		periods = (now_tick - c->origin_tick) / c->reload;
		pit->s.missed_ticks += periods - c->irq_periods - 1;
		c->irq_periods = periods;
	} else {
		c->irq_periods = 1;
	}
	return true;
}

static void load_count(struct pit_channel_state *c, uint16_t raw,
		       uint64_t now_tick)
{
	uint32_t n = c->bcd ? from_bcd(raw) : raw;

	c->reload = n ? n : modulus(c);
	c->loaded = 1;
	c->null_count = 0;
	c->irq_periods = 0;
	if ((c->mode == 1 || c->mode == 5) && !c->counting)
		return; /* waits for a gate trigger */
	c->origin_tick = now_tick;
	c->frozen_ticks = 0;
	c->counting = 1;
	c->paused = !c->gate;
}

static void set_gate(struct pit_channel_state *c, bool gate,
		     uint64_t now_tick)
{
	bool rising = gate && !c->gate, falling = !gate && c->gate;

	c->gate = gate;
	if (!c->loaded || (!rising && !falling))
		return;
	switch (c->mode) {
	case 1:
	case 5:
		if (rising) { /* (re)trigger */
			c->origin_tick = now_tick;
			c->counting = 1;
			c->paused = 0;
			c->irq_periods = 0;
		}
		break;
	case 2:
	case 3:
		/* Low stops the count with OUT high; high reloads it. */
		if (falling) {
			c->frozen_ticks = elapsed(c, now_tick);
			c->paused = 1;
		} else {
			c->origin_tick = now_tick;
			c->irq_periods = 0;
			c->paused = 0;
		}
		break;
	default: /* 0, 4: low only suspends counting */
		if (falling && !c->paused) {
			c->frozen_ticks = elapsed(c, now_tick);
			c->paused = 1;
		} else if (rising && c->paused) {
			c->origin_tick = now_tick - c->frozen_ticks;
			c->paused = 0;
		}
		break;
	}
}

static void latch_count(struct pit_channel_state *c, uint64_t now_tick)
{
	if (c->count_latched)
		return; /* a second latch before reading is ignored */
	c->latched_count = shown_count(c, now_tick);
	c->count_latched = c->rw == 3 ? 2 : 1;
}

static void control_word(struct pit *pit, uint8_t v, uint64_t now_tick)
{
	struct pit_channel_state *c;
	int i;

	if ((v >> 6) == 3) {
		/* Read-back: bit 5 clear latches counts, bit 4 clear
		 * latches status, bits 3:1 select channels 2..0. */
		for (i = 0; i < 3; i++) {
			c = &pit->s.ch[i];
			if (!(v & (2 << i)))
				continue;
			if (!(v & 0x20))
				latch_count(c, now_tick);
			if (!(v & 0x10) && !c->status_latched) {
				c->status = status_byte(c, now_tick);
				c->status_latched = 1;
			}
		}
		return;
	}
	c = &pit->s.ch[v >> 6];
	if (!(v & 0x30)) {
		latch_count(c, now_tick);
		return;
	}
	c->rw = (v >> 4) & 3;
	c->mode = (v >> 1) & 7;
	if (c->mode > 5)
		c->mode -= 4; /* 6 and 7 are 2 and 3 */
	c->bcd = v & 1;
	c->loaded = c->counting = c->paused = 0;
	c->null_count = 1;
	c->write_msb = c->read_msb = 0;
	c->count_latched = c->status_latched = 0;
	c->irq_periods = 0;
}

static void write_data(struct pit_channel_state *c, uint8_t v,
		       uint64_t now_tick)
{
	switch (c->rw) {
	case 1:
		load_count(c, v, now_tick);
		break;
	case 2:
		load_count(c, (uint16_t)(v << 8), now_tick);
		break;
	default:
		if (!c->write_msb) {
			c->write_lsb = v;
			c->write_msb = 1;
			/* Mode 0: the first byte stops the count. */
			if (c->mode == 0)
				c->counting = 0;
		} else {
			c->write_msb = 0;
			load_count(c, (uint16_t)(c->write_lsb | v << 8),
				   now_tick);
		}
		break;
	}
}

static uint8_t read_data(struct pit_channel_state *c, uint64_t now_tick)
{
	uint16_t v;

	if (c->status_latched) {
		c->status_latched = 0;
		return c->status;
	}
	if (c->count_latched) {
		v = c->latched_count;
		if (c->rw == 3 && c->count_latched == 2) {
			c->count_latched = 1;
			return (uint8_t)v;
		}
		c->count_latched = 0;
		return (uint8_t)(c->rw == 2 || c->rw == 3 ? v >> 8 : v);
	}
	v = shown_count(c, now_tick);
	switch (c->rw) {
	case 1:
		return (uint8_t)v;
	case 2:
		return (uint8_t)(v >> 8);
	default:
		c->read_msb ^= 1;
		return (uint8_t)(c->read_msb ? v : v >> 8);
	}
}

static void reset_state(struct pit *pit, uint64_t now_tick)
{
	int i;

	memset(&pit->s, 0, sizeof(pit->s));
	for (i = 0; i < 3; i++) {
		struct pit_channel_state *c = &pit->s.ch[i];

		c->rw = 3;
		c->mode = 3;
		c->reload = 65536;
		c->null_count = 1;
		c->gate = i != 2; /* channel 2's gate is port 0x61 bit 0 */
	}
	/* The 18.2 Hz tick a BIOS sets up. */
	load_count(&pit->s.ch[0], 0, now_tick);
}

void pit__init(struct pit *pit, const struct irq_sink *irq,
	       const struct dev_clock *clock)
{
	memset(pit, 0, sizeof(*pit));
	pthread_mutex_init(&pit->lock, NULL);
	if (irq)
		pit->irq = *irq;
	if (clock)
		pit->clock = *clock;
	pthread_mutex_lock(&pit->lock);
	reset_state(pit, pit__ticks_at(dev_clock__now(&pit->clock)));
	rearm(pit, dev_clock__now(&pit->clock));
	pthread_mutex_unlock(&pit->lock);
}

void pit__destroy(struct pit *pit)
{
	dev_clock__cancel(&pit->clock);
	pthread_mutex_destroy(&pit->lock);
}

void pit__reset(struct pit *pit)
{
	uint64_t now;

	pthread_mutex_lock(&pit->lock);
	now = dev_clock__now(&pit->clock);
	reset_state(pit, pit__ticks_at(now));
	rearm(pit, now);
	pthread_mutex_unlock(&pit->lock);
}

void pit__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write)
{
	struct pit *pit = opaque;
	uint64_t now, tick;
	bool irq;
	uint32_t i;

	pthread_mutex_lock(&pit->lock);
	now = dev_clock__now(&pit->clock);
	tick = pit__ticks_at(now);
	/* An edge that is due is delivered before the guest's access
	 * changes channel 0, as the hardware would have. */
	irq = take_irq(pit, tick);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		if (reg > PIT_CTRL) {
			if (!is_write)
				data[i] = 0xFF;
		} else if (reg == PIT_CTRL) {
			if (is_write)
				control_word(pit, data[i], tick);
			else
				data[i] = 0xFF; /* write-only */
		} else if (is_write) {
			write_data(&pit->s.ch[reg], data[i], tick);
		} else {
			data[i] = read_data(&pit->s.ch[reg], tick);
		}
	}
	if (is_write)
		rearm(pit, now);
	pthread_mutex_unlock(&pit->lock);
	if (irq)
		irq_sink__pulse(&pit->irq, PIT_IRQ);
}

void pit__io_port61(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct pit *pit = opaque;
	uint64_t now, tick;
	uint32_t i;

	if (!len)
		return;
	pthread_mutex_lock(&pit->lock);
	now = dev_clock__now(&pit->clock);
	tick = pit__ticks_at(now);
	if (is_write) {
		pit->s.port61 = data[0] & 0x0F;
		set_gate(&pit->s.ch[2], data[0] & PIT61_GATE2, tick);
	} else {
		data[0] = pit->s.port61;
		if ((now / PIT_REFRESH_NS) & 1)
			data[0] |= PIT61_REFRESH;
		if (out_value(&pit->s.ch[2], tick))
			data[0] |= PIT61_OUT2;
	}
	pthread_mutex_unlock(&pit->lock);
	for (i = 1; i < len && !is_write; i++)
		data[i] = 0xFF;
}

void pit__timer_fire(void *opaque)
{
	struct pit *pit = opaque;
	uint64_t now;
	bool irq;

	pthread_mutex_lock(&pit->lock);
	now = dev_clock__now(&pit->clock);
	irq = take_irq(pit, pit__ticks_at(now));
	rearm(pit, now);
	pthread_mutex_unlock(&pit->lock);
	/* An edge: order against other levels does not matter, so it goes
	 * out without our lock. */
	if (irq)
		irq_sink__pulse(&pit->irq, PIT_IRQ);
}

void pit__post_load(struct pit *pit)
{
	int i;

	pthread_mutex_lock(&pit->lock);
	/* Keep a corrupt blob from dividing by zero or indexing wildly. */
	for (i = 0; i < 3; i++) {
		struct pit_channel_state *c = &pit->s.ch[i];

		if (c->mode > 5)
			c->mode = 3;
		if (c->rw < 1 || c->rw > 3)
			c->rw = 3;
		if (!c->reload || c->reload > modulus(c))
			c->reload = modulus(c);
		if (c->count_latched > 2)
			c->count_latched = 0;
	}
	rearm(pit, dev_clock__now(&pit->clock));
	pthread_mutex_unlock(&pit->lock);
}

uint64_t pit__missed_ticks(struct pit *pit)
{
	uint64_t n;

	pthread_mutex_lock(&pit->lock);
	n = pit->s.missed_ticks;
	pthread_mutex_unlock(&pit->lock);
	return n;
}
