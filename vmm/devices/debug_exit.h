/* QEMU's isa-debug-exit: a guest write ends the VM with exit status
 * (value << 1) | 1, exactly as QEMU computes it, so test guests written for
 * QEMU's "-device isa-debug-exit,iobase=0xf4,iosize=0x04" work unchanged.
 *
 * Register: PIO base DEBUG_EXIT_PORT, length DEBUG_EXIT_LEN, handler
 * debug_exit__io, opaque = the struct debug_exit.  The device has no
 * guest-visible state, hence no state section. */
#ifndef KRG_VMM_DEVICES_DEBUG_EXIT_H
#define KRG_VMM_DEVICES_DEBUG_EXIT_H

#include <stdbool.h>
#include <stdint.h>

#include "vmm/device.h"

#define DEBUG_EXIT_PORT 0xF4
#define DEBUG_EXIT_LEN 4

struct debug_exit {
	struct machine_control control;
};

void debug_exit__init(struct debug_exit *d,
		      const struct machine_control *control);
/* The status QEMU passes to exit() for a write of value (already zero-
 * extended from the access width). */
int debug_exit__status(uint64_t value);
/* io_handler_fn.  Writes of any width request MACHINE_REQ_DEBUG_EXIT;
 * reads return all ones (the port is write-only). */
void debug_exit__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write);

#endif
