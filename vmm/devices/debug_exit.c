#include "vmm/devices/debug_exit.h"

#include <string.h>

void debug_exit__init(struct debug_exit *d,
		      const struct machine_control *control)
{
	memset(d, 0, sizeof(*d));
	if (control)
		d->control = *control;
}

int debug_exit__status(uint64_t value)
{
	/* QEMU hands (val << 1) | 1 to exit(int): the truncation to int is
	 * part of the behaviour test suites rely on (only the low byte
	 * reaches the parent anyway). */
	uint64_t status = (value << 1) | 1;

	return (int)(uint32_t)status;
}

void debug_exit__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct debug_exit *d = opaque;
	uint64_t value = 0;
	uint32_t i;

	if (!is_write) {
		memset(data, 0xff, len);
		return;
	}
	/* Little-endian, zero-extended from the access width; anything wider
	 * than a quadword cannot come from one port access. */
	for (i = 0; i < len && i < 8; i++)
		value |= (uint64_t)data[i] << (8 * i);
	/* No lock: there is no state, and the request is the whole effect. */
	machine_control__request(&d->control, MACHINE_REQ_DEBUG_EXIT,
				 debug_exit__status(value));
}
