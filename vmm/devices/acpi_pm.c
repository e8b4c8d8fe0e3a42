#include "vmm/devices/acpi_pm.h"

#include <stdio.h>
#include <string.h>

#include "guestfw/acpi.h"

/* The FADT is built from guestfw/acpi.h: the two must never disagree. */
_Static_assert(ACPI_PM_EVT_PORT == ACPI_PM1A_EVT_PORT &&
		       ACPI_PM_EVT_LEN == ACPI_PM1A_EVT_LEN &&
		       ACPI_PM_CNT_PORT == ACPI_PM1A_CNT_PORT &&
		       ACPI_PM_CNT_LEN == ACPI_PM1A_CNT_LEN &&
		       ACPI_PM_TIMER_PORT == ACPI_PM_TMR_PORT &&
		       ACPI_PM_TIMER_LEN == ACPI_PM_TMR_LEN &&
		       ACPI_PM_GPE_PORT == ACPI_GPE0_PORT &&
		       ACPI_PM_GPE_LEN == ACPI_GPE0_LEN &&
		       ACPI_PM_SCI_IRQ == ACPI_SCI_IRQ &&
		       ACPI_PM_SLP_TYP_S5 == ACPI_SLP_TYP_S5 &&
		       ACPI_PM1_SLP_EN == ACPI_PM1_CNT_SLP_EN,
	       "ACPI PM device and FADT/DSDT disagree");

#define PM1_EN_MASK (ACPI_PM1_TMR | ACPI_PM1_GBL | ACPI_PM1_PWRBTN | \
		     ACPI_PM1_SLPBTN | ACPI_PM1_RTC)
#define PM1_STS_MASK (PM1_EN_MASK | ACPI_PM1_BM_STS | ACPI_PM1_WAK_STS)
#define PM1_CNT_MASK (ACPI_PM1_BM_RLD | ACPI_PM1_SLP_TYP)

/* Full-width tick count; exact, and without overflow for 10^5 years. */
static uint64_t ticks_at(uint64_t ns)
{
	uint64_t sec = ns / 1000000000ull, rem = ns % 1000000000ull;

	return sec * ACPI_PM_TIMER_HZ + rem * ACPI_PM_TIMER_HZ / 1000000000ull;
}

uint32_t acpi_pm__timer_at(uint64_t ns)
{
	return (uint32_t)ticks_at(ns);
}

static void reset_state(struct acpi_pm *pm)
{
	memset(&pm->s, 0, sizeof(pm->s));
	pm->s.pm1_cnt = ACPI_PM1_SCI_EN;
	pm->s.tmr_epoch = ticks_at(dev_clock__now(&pm->clock)) >> 31;
}

void acpi_pm__init(struct acpi_pm *pm, const struct irq_sink *irq,
		   const struct machine_control *control,
		   const struct dev_clock *clock)
{
	memset(pm, 0, sizeof(*pm));
	pthread_mutex_init(&pm->lock, NULL);
	if (irq)
		pm->irq = *irq;
	if (control)
		pm->control = *control;
	if (clock)
		pm->clock = *clock;
	reset_state(pm);
}

void acpi_pm__destroy(struct acpi_pm *pm)
{
	pthread_mutex_destroy(&pm->lock);
}

static void update_sci(struct acpi_pm *pm, bool force)
{
	const struct acpi_pm_state *s = &pm->s;
	bool level = (s->pm1_sts & s->pm1_en & PM1_EN_MASK) ||
		     (s->gpe_sts[0] & s->gpe_en[0]) ||
		     (s->gpe_sts[1] & s->gpe_en[1]);

	if (level != pm->sci_level || force) {
		pm->sci_level = level;
		irq_sink__set(&pm->irq, ACPI_PM_SCI_IRQ, level);
	}
}

/* TMR_STS is set whenever bit 31 of the timer flipped since the last
 * look.  Nothing raises an SCI for it (no host timer): guests use the PM
 * timer as a clocksource, not as an interrupt. */
static void refresh_tmr_sts(struct acpi_pm *pm)
{
	uint64_t epoch = ticks_at(dev_clock__now(&pm->clock)) >> 31;

	if (epoch != pm->s.tmr_epoch) {
		pm->s.pm1_sts |= ACPI_PM1_TMR;
		pm->s.tmr_epoch = epoch;
	}
}

void acpi_pm__reset(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	reset_state(pm);
	update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm__io_evt(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t i;

	pthread_mutex_lock(&pm->lock);
	refresh_tmr_sts(pm);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;
		unsigned shift = (unsigned)(reg & 1) * 8;
		uint16_t *r = reg < 2 ? &pm->s.pm1_sts : &pm->s.pm1_en;

		if (reg >= ACPI_PM_EVT_LEN) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		if (!is_write) {
			data[i] = (uint8_t)(*r >> shift);
		} else if (reg < 2) {
			*r &= (uint16_t)~((data[i] << shift) & PM1_STS_MASK);
		} else {
			*r = (uint16_t)((*r & ~(0xFF << shift)) |
					((data[i] << shift) & PM1_EN_MASK));
		}
	}
	update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm__io_cnt(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint16_t v = 0;
	bool slp_en = false;
	uint32_t i;

	pthread_mutex_lock(&pm->lock);
	v = pm->s.pm1_cnt;
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;
		unsigned shift = (unsigned)reg * 8;

		if (reg >= ACPI_PM_CNT_LEN) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		if (!is_write) {
			/* SLP_EN and GBL_RLS are write-only; SCI_EN is
			 * hard-wired: there is no legacy mode. */
			data[i] = (uint8_t)((v | ACPI_PM1_SCI_EN) >> shift);
			continue;
		}
		v = (uint16_t)((v & ~(0xFF << shift)) | (data[i] << shift));
		if ((data[i] << shift) & ACPI_PM1_SLP_EN)
			slp_en = true;
	}
	if (is_write)
		pm->s.pm1_cnt = (v & PM1_CNT_MASK) | ACPI_PM1_SCI_EN;
	pthread_mutex_unlock(&pm->lock);

	if (slp_en) {
		unsigned typ = (v & ACPI_PM1_SLP_TYP) >> ACPI_PM1_SLP_TYP_SHIFT;

		if (typ == ACPI_PM_SLP_TYP_S5)
			machine_control__request(&pm->control,
						 MACHINE_REQ_POWEROFF, 0);
		else
			fprintf(stderr, "krg-vmm: guest asked for ACPI sleep "
				"type %u: only S5 (type %u) is supported, "
				"ignored\n", typ, ACPI_PM_SLP_TYP_S5);
	}
}

void acpi_pm__io_tmr(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t v, i;

	if (is_write)
		return; /* read-only */
	/* No lock: the value is a pure function of the clock. */
	v = acpi_pm__timer_at(dev_clock__now(&pm->clock));
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;

		data[i] = reg < 4 ? (uint8_t)(v >> (8 * reg)) : 0xFF;
	}
}

void acpi_pm__io_gpe(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write)
{
	struct acpi_pm *pm = opaque;
	uint32_t i;

	pthread_mutex_lock(&pm->lock);
	for (i = 0; i < len; i++) {
		uint64_t reg = offset + i;
		uint8_t *r;

		if (reg >= ACPI_PM_GPE_LEN) {
			if (!is_write)
				data[i] = 0xFF;
			continue;
		}
		r = reg < 2 ? &pm->s.gpe_sts[reg] : &pm->s.gpe_en[reg - 2];
		if (!is_write)
			data[i] = *r;
		else if (reg < 2)
			*r &= (uint8_t)~data[i]; /* write-1-to-clear */
		else
			*r = data[i];
	}
	update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

bool acpi_pm__press_power_button(struct acpi_pm *pm)
{
	bool enabled;

	pthread_mutex_lock(&pm->lock);
	pm->s.pm1_sts |= ACPI_PM1_PWRBTN;
	enabled = pm->s.pm1_en & ACPI_PM1_PWRBTN;
	update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
	return enabled;
}

void acpi_pm__set_gpe(struct acpi_pm *pm, unsigned bit)
{
	if (bit >= 16)
		return;
	pthread_mutex_lock(&pm->lock);
	pm->s.gpe_sts[bit / 8] |= (uint8_t)(1u << (bit % 8));
	update_sci(pm, false);
	pthread_mutex_unlock(&pm->lock);
}

void acpi_pm__post_load(struct acpi_pm *pm)
{
	pthread_mutex_lock(&pm->lock);
	pm->s.pm1_cnt = (pm->s.pm1_cnt & PM1_CNT_MASK) | ACPI_PM1_SCI_EN;
	update_sci(pm, true);
	pthread_mutex_unlock(&pm->lock);
}
