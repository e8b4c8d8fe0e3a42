/* Intel 8254 PIT (1.193182 MHz, three channels, modes 0-5, binary/BCD,
 * latch and read-back commands) plus port 0x61 (channel 2 gate, speaker
 * enable, refresh toggle, channel 2 output).  Register two PIO ranges,
 * opaque = the struct pit:
 *   PIT_PORT   (0x40), length 4: channels 0-2 data, 0x43 control
 *                                handler pit__io
 *   PIT_PORT61 (0x61), length 1: NMI status and control
 *                                handler pit__io_port61
 * Counts are computed from the clock when read, never ticked.  Channel
 * 0's output drives ISA IRQ 0 as edges (irq_sink__pulse): once per period
 * in modes 2/3, once at terminal count in modes 0/4, through the device's
 * host timer (pit__timer_fire).  That timer never fires more often than
 * every PIT_MIN_PERIOD_NS: periods it skips are counted as missed ticks
 * (one edge stands for them, as a busy PIC would merge them anyway). */
#ifndef KRG_VMM_DEVICES_PIT_H
#define KRG_VMM_DEVICES_PIT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"
#include "vmm/devices/dev_clock.h"

#define PIT_PORT 0x40
#define PIT_PORT_LEN 4
#define PIT_PORT61 0x61
#define PIT_PORT61_LEN 1
#define PIT_IRQ 0
#define PIT_HZ 1193182ull
#define PIT_MIN_PERIOD_NS 50000ull
#define PIT_REFRESH_NS 15085ull /* port 0x61 bit 4 flips this often */
#define PIT_STATE_VERSION 1

#define PIT_CTRL 3 /* offset of the control word register (0x43) */

#define PIT61_GATE2 0x01
#define PIT61_SPEAKER 0x02
#define PIT61_REFRESH 0x10
#define PIT61_OUT2 0x20

struct pit_channel_state {
	uint64_t origin_tick;  /* absolute PIT tick where counting started */
	uint64_t frozen_ticks; /* elapsed ticks while paused (gate low) */
	uint64_t irq_periods;  /* periods already signalled (channel 0) */
	uint32_t reload;       /* 1..65536 (binary) or 1..10000 (BCD) */
	uint16_t latched_count;
	uint8_t mode, rw, bcd, gate;
	uint8_t loaded;        /* a count was written since the mode */
	uint8_t counting;      /* running (modes 1/5: triggered) */
	uint8_t paused;        /* gate low stopped the count */
	uint8_t null_count;    /* status bit 6 */
	uint8_t write_msb;     /* lobyte/hibyte: next write is the MSB */
	uint8_t write_lsb;     /* the LSB waiting for its MSB */
	uint8_t read_msb;      /* lobyte/hibyte: next read is the MSB */
	uint8_t count_latched; /* latched bytes left to read (0-2) */
	uint8_t status_latched;
	uint8_t status;
	uint8_t pad[4];
};
_Static_assert(sizeof(struct pit_channel_state) == 48,
	       "pit_channel_state is a saved format: bump PIT_STATE_VERSION");

struct pit_state {
	struct pit_channel_state ch[3];
	uint64_t missed_ticks; /* channel 0 periods merged into one edge */
	uint8_t port61;        /* bits 3:0 as written */
	uint8_t pad[7];
};
_Static_assert(sizeof(struct pit_state) == 3 * 48 + 16,
	       "pit_state is a saved format: bump PIT_STATE_VERSION");

struct pit {
	struct pit_state s;
	pthread_mutex_t lock;
	struct irq_sink irq;
	struct dev_clock clock;
};

/* Power-on state as a BIOS leaves it: channel 0 in mode 3 with count
 * 65536 (18.2 Hz), channels 1 and 2 idle, gate 2 low.  Time comes from
 * clock; its timer fires pit__timer_fire. */
void pit__init(struct pit *pit, const struct irq_sink *irq,
	       const struct dev_clock *clock);
void pit__destroy(struct pit *pit);
void pit__reset(struct pit *pit);
/* io_handler_fn: offsets 0-2 channel data, 3 control word (write-only). */
void pit__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
	     bool is_write);
/* io_handler_fn for port 0x61 (offset 0). */
void pit__io_port61(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write);
/* The host timer expired (timer thread); opaque = the struct pit. */
void pit__timer_fire(void *opaque);
/* After pit->s was overwritten by a restore: re-arms the timer.  Ticks
 * are absolute on the VM clock (dev_clock now_ns). */
void pit__post_load(struct pit *pit);
/* Channel 0 periods that were merged into an earlier edge. */
uint64_t pit__missed_ticks(struct pit *pit);
/* The PIT tick count at a clock value (exposed for tests). */
uint64_t pit__ticks_at(uint64_t ns);

#endif
