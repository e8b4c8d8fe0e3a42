/* QEMU's isa-debugcon at port 0x402, where SeaBIOS (and OVMF) write their
 * debug log one byte at a time.  A read returns 0xE9, the value firmware
 * checks before it starts logging there.
 *
 * Register: PIO base DEBUGCON_PORT, length DEBUGCON_LEN, handler
 * debugcon__io, opaque = the struct debugcon.  Bytes are gathered into
 * lines (CR dropped, other control bytes shown as '.', a line cut at
 * DEBUGCON_LINE_MAX); each complete line goes to the output descriptor, if
 * any, and to the line callback, which the machine uses to notice the
 * firmware's "No bootable device".  No guest-visible state beyond the
 * readback, hence no state section. */
#ifndef KRG_VMM_DEVICES_DEBUGCON_H
#define KRG_VMM_DEVICES_DEBUGCON_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEBUGCON_PORT 0x402
#define DEBUGCON_LEN 1
#define DEBUGCON_READBACK 0xE9
#define DEBUGCON_LINE_MAX 240

/* Called with each complete line (no newline), under the device's lock:
 * must not call back into the device. */
typedef void (*debugcon_line_fn)(void *ctx, const char *line);

struct debugcon {
	pthread_mutex_t lock;
	int out_fd;            /* -1: the log is not shown */
	debugcon_line_fn on_line;
	void *ctx;
	char line[DEBUGCON_LINE_MAX + 1];
	size_t len;
	uint64_t bytes;        /* written by the guest, for tests/stats */
};

void debugcon__init(struct debugcon *d, int out_fd, debugcon_line_fn on_line,
		    void *ctx);
void debugcon__destroy(struct debugcon *d);
/* io_handler_fn.  Writes of any width log their bytes in order. */
void debugcon__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write);
/* Ends a partial line (at exit), so the last words are not lost. */
void debugcon__flush(struct debugcon *d);

#endif
