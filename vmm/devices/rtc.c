#include "vmm/devices/rtc.h"

#include <string.h>

#define NS_PER_SEC 1000000000ll
#define RTC_BASE_HZ 32768u
/* Years the guest can set: keeps every nanosecond count inside int64. */
#define RTC_MIN_YEAR 1900
#define RTC_MAX_YEAR 2199
#define RTC_MAX_OFFSET_NS (250ll * 366 * 86400 * NS_PER_SEC)

static int64_t floor_div(int64_t a, int64_t b)
{
	int64_t q = a / b;

	if ((a % b) != 0 && ((a < 0) != (b < 0)))
		q--;
	return q;
}

int64_t rtc__days_from_civil(int64_t y, unsigned m, unsigned d)
{
	/* Counting years from March puts the leap day last in the year. */
	int64_t era, yoe, doy, doe;

	if (m <= 2)
		y--;
	era = floor_div(y, 400);
	yoe = y - era * 400;
	doy = (153 * (m > 2 ? m - 3 : m + 9) + 2) / 5 + d - 1;
	doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
	return era * 146097 + doe - 719468;
}

void rtc__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d)
{
	int64_t z = days + 719468;
	int64_t era = floor_div(z, 146097);
	int64_t doe = z - era * 146097;
	int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
	int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
	int64_t mp = (5 * doy + 2) / 153;

	*d = (unsigned)(doy - (153 * mp + 2) / 5 + 1);
	*m = (unsigned)(mp < 10 ? mp + 3 : mp - 9);
	*y = yoe + era * 400 + (*m <= 2);
}

static bool binary_mode(const struct rtc_state *s)
{
	return s->cmos[RTC_REG_B] & RTC_B_DM_BINARY;
}

static uint8_t enc(const struct rtc_state *s, unsigned v)
{
	v %= 100;
	return binary_mode(s) ? (uint8_t)v : (uint8_t)(((v / 10) << 4) | (v % 10));
}

static unsigned dec(const struct rtc_state *s, uint8_t v)
{
	return binary_mode(s) ? v : (unsigned)(v >> 4) * 10 + (v & 0x0F);
}

static uint8_t enc_hour(const struct rtc_state *s, unsigned h)
{
	unsigned h12 = h % 12;

	if (s->cmos[RTC_REG_B] & RTC_B_24H)
		return enc(s, h);
	return (uint8_t)(enc(s, h12 ? h12 : 12) | (h >= 12 ? 0x80 : 0));
}

static unsigned dec_hour(const struct rtc_state *s, uint8_t v)
{
	unsigned h;

	if (s->cmos[RTC_REG_B] & RTC_B_24H)
		return dec(s, v);
	h = dec(s, v & 0x7F);
	if (h == 12)
		h = 0;
	return (v & 0x80) ? h + 12 : h;
}

static unsigned clamp(unsigned v, unsigned lo, unsigned hi)
{
	return v < lo ? lo : v > hi ? hi : v;
}

static bool divider_running(const struct rtc_state *s)
{
	return (s->cmos[RTC_REG_A] & 0x60) != 0x60;
}

/* Updates happen (the time moves) unless SET is held or the divider chain
 * is in reset; otherwise the registers show what was last written. */
static bool running(const struct rtc_state *s)
{
	return !(s->cmos[RTC_REG_B] & RTC_B_SET) && divider_running(s);
}

static int64_t guest_ns(struct rtc *rtc, int64_t wall)
{
	int64_t t;

	if (__builtin_add_overflow(wall, rtc->s.offset_ns, &t))
		t = rtc->s.offset_ns > 0 ? INT64_MAX : INT64_MIN;
	return t;
}

static void show_time(struct rtc_state *s, int64_t gns)
{
	int64_t sec = floor_div(gns, NS_PER_SEC);
	int64_t days = floor_div(sec, 86400), rem = sec - days * 86400, y;
	unsigned m, d;

	rtc__civil_from_days(days, &y, &m, &d);
	if (y < 0)
		y = 0;
	s->cmos[RTC_SECONDS] = enc(s, (unsigned)(rem % 60));
	s->cmos[RTC_MINUTES] = enc(s, (unsigned)(rem / 60 % 60));
	s->cmos[RTC_HOURS] = enc_hour(s, (unsigned)(rem / 3600));
	/* 1970-01-01 was a Thursday; the RTC counts Sunday as 1. */
	s->cmos[RTC_DAY_OF_WEEK] = enc(s, (unsigned)((days % 7 + 11) % 7) + 1);
	s->cmos[RTC_DAY_OF_MONTH] = enc(s, d);
	s->cmos[RTC_MONTH] = enc(s, m);
	s->cmos[RTC_YEAR] = enc(s, (unsigned)(y % 100));
	s->cmos[RTC_CENTURY] = enc(s, (unsigned)(y / 100 % 100));
}

/* The time the registers show, in seconds since the epoch.  Guest values
 * may be anything (bad BCD, month 0): they are clamped, never trusted. */
static int64_t shown_time(const struct rtc_state *s)
{
	unsigned sec = clamp(dec(s, s->cmos[RTC_SECONDS]), 0, 59);
	unsigned min = clamp(dec(s, s->cmos[RTC_MINUTES]), 0, 59);
	unsigned hour = clamp(dec_hour(s, s->cmos[RTC_HOURS]), 0, 23);
	unsigned day = clamp(dec(s, s->cmos[RTC_DAY_OF_MONTH]), 1, 31);
	unsigned mon = clamp(dec(s, s->cmos[RTC_MONTH]), 1, 12);
	unsigned year = dec(s, s->cmos[RTC_CENTURY]) * 100 +
			dec(s, s->cmos[RTC_YEAR]);

	year = clamp(year, RTC_MIN_YEAR, RTC_MAX_YEAR);
	return rtc__days_from_civil(year, mon, day) * 86400 + hour * 3600 +
	       min * 60 + sec;
}

static void set_time_from_regs(struct rtc *rtc, int64_t wall)
{
	int64_t sec = shown_time(&rtc->s);

	/* The new second starts now: the next update is 1 s away. */
	rtc->s.offset_ns = sec * NS_PER_SEC - wall;
	rtc->s.last_sec = sec;
}

/* Periodic rate as a shift: period = 2^shift / 32768 s; -1 = off. */
static int periodic_shift(const struct rtc_state *s)
{
	unsigned rs = s->cmos[RTC_REG_A] & RTC_A_RS;

	if (!rs || !divider_running(s))
		return -1;
	if (rs <= 2)
		rs += 7; /* rates 1 and 2 repeat 8 and 9 on a 32.768 kHz base */
	return (int)rs - 1;
}

static uint64_t periodic_tick(const struct rtc_state *s, int shift,
			      uint64_t now)
{
	uint64_t elapsed = now > s->periodic_base_ns ? now - s->periodic_base_ns
						     : 0;

	return (uint64_t)(((unsigned __int128)elapsed * RTC_BASE_HZ /
			   NS_PER_SEC) >> shift);
}

static uint64_t periodic_deadline(const struct rtc_state *s, int shift,
				  uint64_t tick)
{
	unsigned __int128 t = ((unsigned __int128)tick << shift) * NS_PER_SEC;

	return s->periodic_base_ns +
	       (uint64_t)((t + RTC_BASE_HZ - 1) / RTC_BASE_HZ);
}

static bool alarm_match(const struct rtc_state *s)
{
	static const uint8_t pairs[3][2] = {
		{ RTC_SECONDS_ALARM, RTC_SECONDS },
		{ RTC_MINUTES_ALARM, RTC_MINUTES },
		{ RTC_HOURS_ALARM, RTC_HOURS },
	};
	int i;

	for (i = 0; i < 3; i++) {
		uint8_t a = s->cmos[pairs[i][0]];

		/* 0xC0-0xFF is "don't care". */
		if ((a & 0xC0) != 0xC0 && a != s->cmos[pairs[i][1]])
			return false;
	}
	return true;
}

/* Brings register C up to date with the clocks: a periodic tick or an
 * update (new second) since the last look sets PF / UF (and AF when the
 * new time matches the alarm).  IRQF follows the enabled flags. */
static void eval_flags(struct rtc *rtc, uint64_t now, int64_t gns)
{
	struct rtc_state *s = &rtc->s;
	uint8_t *c = &s->cmos[RTC_REG_C];
	int shift = periodic_shift(s);

	if (shift >= 0) {
		uint64_t tick = periodic_tick(s, shift, now);

		if (tick != s->periodic_tick) {
			*c |= RTC_C_PF;
			s->periodic_tick = tick;
		}
	}
	if (running(s)) {
		int64_t sec = floor_div(gns, NS_PER_SEC);

		if (sec != s->last_sec) {
			*c |= RTC_C_UF;
			show_time(s, gns);
			if (alarm_match(s))
				*c |= RTC_C_AF;
			s->last_sec = sec;
		}
	}
	*c &= 0x70;
	if (*c & s->cmos[RTC_REG_B] & 0x70)
		*c |= RTC_C_IRQF;
}

static void update_irq(struct rtc *rtc, bool force)
{
	bool level = rtc->s.cmos[RTC_REG_C] & RTC_C_IRQF;

	if (level != rtc->irq_level || force) {
		rtc->irq_level = level;
		irq_sink__set(&rtc->irq, RTC_IRQ, level);
	}
}

static void rearm(struct rtc *rtc, uint64_t now, int64_t gns)
{
	const struct rtc_state *s = &rtc->s;
	uint8_t b = s->cmos[RTC_REG_B];
	int shift = periodic_shift(s);
	uint64_t deadline = 0;

	/* While IRQF is up no new edge can happen: reading C re-arms. */
	if (s->cmos[RTC_REG_C] & RTC_C_IRQF) {
		dev_clock__cancel(&rtc->clock);
		return;
	}
	if ((b & RTC_B_PIE) && shift >= 0)
		deadline = periodic_deadline(s, shift,
					     periodic_tick(s, shift, now) + 1);
	if ((b & (RTC_B_UIE | RTC_B_AIE)) && running(s)) {
		int64_t into = gns - floor_div(gns, NS_PER_SEC) * NS_PER_SEC;
		uint64_t next = now + (uint64_t)(NS_PER_SEC - into);

		if (!deadline || next < deadline)
			deadline = next;
	}
	if (deadline)
		dev_clock__arm(&rtc->clock, deadline);
	else
		dev_clock__cancel(&rtc->clock);
}

static void set_memory_fields(struct rtc_state *s, uint64_t below,
			      uint64_t above, unsigned nr_cpus)
{
	uint64_t v;

	v = below / 1024 < 640 ? below / 1024 : 640;
	s->cmos[0x15] = (uint8_t)v;
	s->cmos[0x16] = (uint8_t)(v >> 8);
	/* Extended memory (above 1 MiB, KiB), capped at 0xFFFF. */
	v = below > (1u << 20) ? (below - (1u << 20)) / 1024 : 0;
	if (v > 0xFFFF)
		v = 0xFFFF;
	s->cmos[0x17] = s->cmos[0x30] = (uint8_t)v;
	s->cmos[0x18] = s->cmos[0x31] = (uint8_t)(v >> 8);
	/* 16 MiB .. 4 GiB in 64 KiB units. */
	v = below > (16u << 20) ? (below - (16u << 20)) >> 16 : 0;
	if (v > 0xFFFF)
		v = 0xFFFF;
	s->cmos[0x34] = (uint8_t)v;
	s->cmos[0x35] = (uint8_t)(v >> 8);
	/* Above 4 GiB in 64 KiB units, 24 bits (1 TiB). */
	v = above >> 16;
	if (v > 0xFFFFFF)
		v = 0xFFFFFF;
	s->cmos[0x5B] = (uint8_t)v;
	s->cmos[0x5C] = (uint8_t)(v >> 8);
	s->cmos[0x5D] = (uint8_t)(v >> 16);
	s->cmos[0x5F] = (uint8_t)(nr_cpus ? (nr_cpus > 256 ? 255 : nr_cpus - 1)
					  : 0);
}

void rtc__init(struct rtc *rtc, uint64_t ram_below_4g, uint64_t ram_above_4g,
	       unsigned nr_cpus, const struct irq_sink *irq,
	       const struct dev_clock *clock)
{
	struct rtc_state *s = &rtc->s;

	memset(rtc, 0, sizeof(*rtc));
	pthread_mutex_init(&rtc->lock, NULL);
	if (irq)
		rtc->irq = *irq;
	if (clock)
		rtc->clock = *clock;
	s->cmos[RTC_REG_A] = 0x26; /* 32.768 kHz divider, 1024 Hz rate */
	s->cmos[RTC_REG_B] = RTC_B_24H;
	s->cmos[RTC_REG_D] = RTC_D_VRT;
	s->cmos[0x14] = 0x02; /* equipment: math coprocessor present */
	set_memory_fields(s, ram_below_4g, ram_above_4g, nr_cpus);
	s->offset_ns = 0;
	s->periodic_base_ns = dev_clock__now(&rtc->clock);
	show_time(s, dev_clock__wall(&rtc->clock));
	s->last_sec = floor_div(dev_clock__wall(&rtc->clock), NS_PER_SEC);
}

void rtc__destroy(struct rtc *rtc)
{
	dev_clock__cancel(&rtc->clock);
	pthread_mutex_destroy(&rtc->lock);
}

static bool is_time_reg(unsigned idx)
{
	return idx == RTC_SECONDS || idx == RTC_MINUTES || idx == RTC_HOURS ||
	       idx == RTC_DAY_OF_WEEK || idx == RTC_DAY_OF_MONTH ||
	       idx == RTC_MONTH || idx == RTC_YEAR || idx == RTC_CENTURY;
}

static uint8_t read_reg(struct rtc *rtc, unsigned idx)
{
	struct rtc_state *s = &rtc->s;
	uint64_t now = dev_clock__now(&rtc->clock);
	int64_t wall = dev_clock__wall(&rtc->clock), gns = guest_ns(rtc, wall);
	uint8_t v;

	if (is_time_reg(idx)) {
		if (running(s))
			show_time(s, gns);
		return s->cmos[idx];
	}
	switch (idx) {
	case RTC_REG_A:
		v = s->cmos[RTC_REG_A] & 0x7F;
		if (running(s) &&
		    gns - floor_div(gns, NS_PER_SEC) * NS_PER_SEC >=
			    NS_PER_SEC - RTC_UIP_NS)
			v |= RTC_A_UIP;
		return v;
	case RTC_REG_C:
		eval_flags(rtc, now, gns);
		v = s->cmos[RTC_REG_C];
		s->cmos[RTC_REG_C] = 0;
		update_irq(rtc, false);
		rearm(rtc, now, gns);
		return v;
	case RTC_REG_D:
		return RTC_D_VRT;
	default:
		return s->cmos[idx];
	}
}

static void write_reg(struct rtc *rtc, unsigned idx, uint8_t v)
{
	struct rtc_state *s = &rtc->s;
	uint64_t now = dev_clock__now(&rtc->clock);
	int64_t wall = dev_clock__wall(&rtc->clock), gns = guest_ns(rtc, wall);
	bool was_running = running(s);
	uint8_t old_a = s->cmos[RTC_REG_A];

	if (is_time_reg(idx)) {
		if (was_running) {
			/* Registers written one by one without SET: the
			 * others must hold the current time, not a stale
			 * snapshot. */
			show_time(s, gns);
			s->cmos[idx] = v;
			set_time_from_regs(rtc, wall);
		} else {
			s->cmos[idx] = v; /* applied when SET is cleared */
		}
		rearm(rtc, now, guest_ns(rtc, wall));
		return;
	}
	switch (idx) {
	case RTC_REG_A:
		s->cmos[RTC_REG_A] = v & 0x7F;
		if ((old_a ^ v) & 0x7F) {
			/* New rate or divider state: the divider chain
			 * restarts, and so does the periodic phase. */
			s->periodic_base_ns = now;
			s->periodic_tick = 0;
		}
		break;
	case RTC_REG_B:
		/* Setting SET also clears UIE (MC146818 data sheet). */
		if (v & RTC_B_SET)
			v &= (uint8_t)~RTC_B_UIE;
		s->cmos[RTC_REG_B] = v;
		break;
	case RTC_REG_C:
	case RTC_REG_D:
		return; /* read-only */
	default:
		s->cmos[idx] = v;
		break;
	}
	if (was_running && !running(s)) {
		show_time(s, gns); /* frozen from now on */
	} else if (!was_running && running(s)) {
		set_time_from_regs(rtc, wall);
		gns = guest_ns(rtc, wall);
	}
	eval_flags(rtc, now, gns);
	update_irq(rtc, false);
	rearm(rtc, now, gns);
}

void rtc__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write)
{
	struct rtc *rtc = opaque;
	uint32_t i;

	pthread_mutex_lock(&rtc->lock);
	for (i = 0; i < len; i++) {
		uint64_t port = offset + i;

		if (port == 0 && is_write) {
			rtc->s.index = data[i] & 0x7F;
			rtc->s.nmi_masked = data[i] >> 7;
		} else if (port == 1 && is_write) {
			write_reg(rtc, rtc->s.index, data[i]);
		} else if (port == 1) {
			data[i] = read_reg(rtc, rtc->s.index);
		} else if (!is_write) {
			data[i] = 0xFF; /* the index port is write-only */
		}
	}
	pthread_mutex_unlock(&rtc->lock);
}

void rtc__timer_fire(void *opaque)
{
	struct rtc *rtc = opaque;
	uint64_t now;
	int64_t gns;

	pthread_mutex_lock(&rtc->lock);
	now = dev_clock__now(&rtc->clock);
	gns = guest_ns(rtc, dev_clock__wall(&rtc->clock));
	eval_flags(rtc, now, gns);
	update_irq(rtc, false);
	rearm(rtc, now, gns);
	pthread_mutex_unlock(&rtc->lock);
}

void rtc__reset(struct rtc *rtc)
{
	uint64_t now;
	int64_t gns;

	pthread_mutex_lock(&rtc->lock);
	rtc->s.cmos[RTC_REG_B] &= (uint8_t)~(RTC_B_PIE | RTC_B_AIE | RTC_B_UIE |
					     RTC_B_SQWE);
	rtc->s.cmos[RTC_REG_C] = 0;
	now = dev_clock__now(&rtc->clock);
	gns = guest_ns(rtc, dev_clock__wall(&rtc->clock));
	update_irq(rtc, false);
	rearm(rtc, now, gns);
	pthread_mutex_unlock(&rtc->lock);
}

void rtc__post_load(struct rtc *rtc)
{
	struct rtc_state *s = &rtc->s;
	uint64_t now;
	int64_t gns;

	pthread_mutex_lock(&rtc->lock);
	/* Bound what a corrupt blob could make us compute with. */
	s->index &= 0x7F;
	if (s->offset_ns > RTC_MAX_OFFSET_NS || s->offset_ns < -RTC_MAX_OFFSET_NS)
		s->offset_ns = 0;
	now = dev_clock__now(&rtc->clock);
	gns = guest_ns(rtc, dev_clock__wall(&rtc->clock));
	eval_flags(rtc, now, gns);
	update_irq(rtc, true);
	rearm(rtc, now, gns);
	pthread_mutex_unlock(&rtc->lock);
}

bool rtc__nmi_masked(struct rtc *rtc)
{
	bool m;

	pthread_mutex_lock(&rtc->lock);
	m = rtc->s.nmi_masked;
	pthread_mutex_unlock(&rtc->lock);
	return m;
}
