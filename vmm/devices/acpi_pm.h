/* ACPI fixed hardware, exactly as the FADT (guestfw/acpi.c) describes it:
 * always in ACPI mode (SMI_CMD = 0, SCI_EN reads 1), a power button, a
 * 32-bit PM timer, one GPE block.  Register four PIO ranges, opaque = the
 * struct acpi_pm:
 *   ACPI_PM_EVT_PORT (0x600), len 4: PM1_STS (+0), PM1_EN (+2)
 *                                    handler acpi_pm__io_evt
 *   ACPI_PM_CNT_PORT (0x604), len 2: PM1_CNT     handler acpi_pm__io_cnt
 *   ACPI_PM_TIMER_PORT (0x608), len 4: PM_TMR      handler acpi_pm__io_tmr
 *   ACPI_PM_GPE_PORT (0x620), len 4: GPE0_STS (+0, 2 bytes), GPE0_EN (+2)
 *                                    handler acpi_pm__io_gpe
 * The SCI is ISA IRQ 9, a level: high while an enabled status bit is set.
 * Writing SLP_EN with SLP_TYP 5 (\_S5) powers the machine off. */
#ifndef KRG_VMM_DEVICES_ACPI_PM_H
#define KRG_VMM_DEVICES_ACPI_PM_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"
#include "vmm/devices/dev_clock.h"

#define ACPI_PM_EVT_PORT 0x600
#define ACPI_PM_EVT_LEN 4
#define ACPI_PM_CNT_PORT 0x604
#define ACPI_PM_CNT_LEN 2
#define ACPI_PM_TIMER_PORT 0x608
#define ACPI_PM_TIMER_LEN 4
#define ACPI_PM_GPE_PORT 0x620
#define ACPI_PM_GPE_LEN 4
#define ACPI_PM_SCI_IRQ 9
#define ACPI_PM_TIMER_HZ 3579545ull
#define ACPI_PM_SLP_TYP_S5 5
#define ACPI_PM_STATE_VERSION 1

/* PM1_STS / PM1_EN bits. */
#define ACPI_PM1_TMR 0x0001
#define ACPI_PM1_BM_STS 0x0010
#define ACPI_PM1_GBL 0x0020
#define ACPI_PM1_PWRBTN 0x0100
#define ACPI_PM1_SLPBTN 0x0200
#define ACPI_PM1_RTC 0x0400
#define ACPI_PM1_WAK_STS 0x8000
/* PM1_CNT bits. */
#define ACPI_PM1_SCI_EN 0x0001
#define ACPI_PM1_BM_RLD 0x0002
#define ACPI_PM1_GBL_RLS 0x0004
#define ACPI_PM1_SLP_TYP_SHIFT 10
#define ACPI_PM1_SLP_TYP 0x1C00
#define ACPI_PM1_SLP_EN 0x2000

struct acpi_pm_state {
	uint16_t pm1_sts, pm1_en, pm1_cnt, pad0;
	uint8_t gpe_sts[2], gpe_en[2];
	uint32_t pad1;
	uint64_t tmr_epoch; /* PM timer bit 31 period last seen (TMR_STS) */
};
_Static_assert(sizeof(struct acpi_pm_state) == 24,
	       "acpi_pm_state is a saved format: bump ACPI_PM_STATE_VERSION");

struct acpi_pm {
	struct acpi_pm_state s;
	pthread_mutex_t lock;
	struct irq_sink irq;
	struct machine_control control;
	struct dev_clock clock; /* now_ns only: no timer */
	bool sci_level;
};

void acpi_pm__init(struct acpi_pm *pm, const struct irq_sink *irq,
		   const struct machine_control *control,
		   const struct dev_clock *clock);
void acpi_pm__destroy(struct acpi_pm *pm);
void acpi_pm__reset(struct acpi_pm *pm);
void acpi_pm__io_evt(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write);
void acpi_pm__io_cnt(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write);
void acpi_pm__io_tmr(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write);
void acpi_pm__io_gpe(void *opaque, uint64_t offset, uint8_t *data,
		     uint32_t len, bool is_write);
/* The PM timer value for a monotonic time: ns * 3579545 / 10^9 mod 2^32. */
uint32_t acpi_pm__timer_at(uint64_t ns);
/* Sets PWRBTN_STS.  Returns true if the guest enabled the power button
 * event (an SCI was raised), false if nothing listens (the caller may
 * then stop the VM itself). */
bool acpi_pm__press_power_button(struct acpi_pm *pm);
/* Sets GPE0 status bit (0-15); raises the SCI if the guest enabled it. */
void acpi_pm__set_gpe(struct acpi_pm *pm, unsigned bit);
/* After pm->s was overwritten by a restore: re-drives the SCI. */
void acpi_pm__post_load(struct acpi_pm *pm);

#endif
