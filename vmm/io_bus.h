/* One registry for port-I/O and MMIO traps: devices register a range and a
 * handler; the vCPU loop dispatches every PIO/MMIO exit through it. */
#ifndef KRG_VMM_IO_BUS_H
#define KRG_VMM_IO_BUS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum io_space { IO_SPACE_PIO = 0, IO_SPACE_MMIO = 1 };

/* offset is relative to the registered base.  For reads the handler fills
 * data[0..len); for writes it consumes it.  Handlers may be called from any
 * vCPU thread concurrently: each device serialises itself with its own lock. */
typedef void (*io_handler_fn)(void *opaque, uint64_t offset, uint8_t *data,
			      uint32_t len, bool is_write);

struct io_bus;

struct io_bus *io_bus__new(void);
void io_bus__free(struct io_bus *bus);

/* Returns 0, or -1 if the range overlaps an existing one or is empty.
 * Registration happens while the machine is built, before vCPUs run. */
int io_bus__register(struct io_bus *bus, enum io_space space, uint64_t base,
		     uint64_t len, io_handler_fn fn, void *opaque,
		     const char *name);

/* Returns true if a handler claimed the access.  Unclaimed reads return all
 * ones in data; unclaimed writes are dropped (the caller logs them when the
 * debug flag is set). */
bool io_bus__dispatch(struct io_bus *bus, enum io_space space, uint64_t addr,
		      uint8_t *data, uint32_t len, bool is_write);

/* Name of the handler owning addr, or NULL (for diagnostics). */
const char *io_bus__owner(const struct io_bus *bus, enum io_space space,
			  uint64_t addr);

#endif
