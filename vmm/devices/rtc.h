/* MC146818 RTC and CMOS RAM.  Register: PIO base RTC_PORT (0x70 index,
 * bit 7 = NMI mask; 0x71 data), length RTC_PORT_LEN, handler rtc__io,
 * opaque = the struct rtc.  IRQ 8 is a level: high while register C's
 * IRQF is set, i.e. until the guest reads register C.
 *
 * The time is the host's wall clock (UTC) plus an offset the guest changes
 * by writing the time registers, so it survives a move to another host
 * with a synchronised clock.  Nothing ticks: flags are derived from the
 * clocks when the guest looks, and the one host timer runs only while the
 * guest waits for a periodic, update-ended or alarm interrupt. */
#ifndef KRG_VMM_DEVICES_RTC_H
#define KRG_VMM_DEVICES_RTC_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"
#include "vmm/devices/dev_clock.h"

#define RTC_PORT 0x70
#define RTC_PORT_LEN 2
#define RTC_IRQ 8
#define RTC_CMOS_SIZE 128
#define RTC_STATE_VERSION 1

/* Register indices. */
#define RTC_SECONDS 0x00
#define RTC_SECONDS_ALARM 0x01
#define RTC_MINUTES 0x02
#define RTC_MINUTES_ALARM 0x03
#define RTC_HOURS 0x04
#define RTC_HOURS_ALARM 0x05
#define RTC_DAY_OF_WEEK 0x06
#define RTC_DAY_OF_MONTH 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0A
#define RTC_REG_B 0x0B
#define RTC_REG_C 0x0C
#define RTC_REG_D 0x0D
#define RTC_CENTURY 0x32 /* the FADT's CENTURY field names this index */

#define RTC_A_UIP 0x80
#define RTC_A_DV 0x70    /* divider; 0x60 set = divider chain in reset */
#define RTC_A_RS 0x0F    /* periodic rate select */
#define RTC_B_SET 0x80
#define RTC_B_PIE 0x40
#define RTC_B_AIE 0x20
#define RTC_B_UIE 0x10
#define RTC_B_SQWE 0x08
#define RTC_B_DM_BINARY 0x04
#define RTC_B_24H 0x02
#define RTC_B_DSE 0x01
#define RTC_C_IRQF 0x80
#define RTC_C_PF 0x40
#define RTC_C_AF 0x20
#define RTC_C_UF 0x10
#define RTC_D_VRT 0x80

/* UIP rises this long before each update (Linux polls for it). */
#define RTC_UIP_NS 244000

struct rtc_state {
	uint8_t cmos[RTC_CMOS_SIZE]; /* time registers: last value shown */
	int64_t offset_ns;           /* guest wall time - host wall time */
	int64_t last_sec;            /* guest second of the last update seen */
	uint64_t periodic_base_ns;   /* monotonic origin of periodic ticks */
	uint64_t periodic_tick;      /* last periodic tick seen */
	uint8_t index;
	uint8_t nmi_masked;
	uint8_t pad[6];
};
_Static_assert(sizeof(struct rtc_state) == RTC_CMOS_SIZE + 40,
	       "rtc_state is a saved format: bump RTC_STATE_VERSION");

struct rtc {
	struct rtc_state s;
	pthread_mutex_t lock;
	struct irq_sink irq;
	struct dev_clock clock;
	bool irq_level;
};

/* ram_below_4g / ram_above_4g: bytes of RAM under and over 4 GiB (the
 * CMOS memory-size fields SeaBIOS and old loaders read); nr_cpus goes to
 * 0x5F as nr_cpus - 1.  The clock's timer fires rtc__timer_fire. */
void rtc__init(struct rtc *rtc, uint64_t ram_below_4g, uint64_t ram_above_4g,
	       unsigned nr_cpus, const struct irq_sink *irq,
	       const struct dev_clock *clock);
void rtc__destroy(struct rtc *rtc);
/* Machine reset: interrupt enables and flags cleared; time and CMOS RAM
 * kept (they are battery-backed). */
void rtc__reset(struct rtc *rtc);
/* io_handler_fn: offset 0 = index port, 1 = data port. */
void rtc__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write);
/* The host timer expired (timer thread); opaque = the struct rtc. */
void rtc__timer_fire(void *opaque);
/* After rtc->s was overwritten by a restore: re-arms, re-drives IRQ 8. */
void rtc__post_load(struct rtc *rtc);
/* The NMI mask the guest last wrote to port 0x70 bit 7. */
bool rtc__nmi_masked(struct rtc *rtc);

/* Pure helpers (exposed for tests): days since 1970-01-01 and back. */
int64_t rtc__days_from_civil(int64_t y, unsigned m, unsigned d);
void rtc__civil_from_days(int64_t days, int64_t *y, unsigned *m, unsigned *d);

#endif
