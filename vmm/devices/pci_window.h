/* The PCI host bridge's memory window: one trap in the io registry covers
 * the whole 32-bit PCI hole, and the memory BARs the guest programs are
 * mapped into it and out of it while the guest runs.
 *
 * Why not one io_bus range per BAR: the io registry is fixed once the
 * machine is built (its dispatch takes no lock), while a guest moves BARs
 * whenever it likes (firmware, then the kernel, sizing with all ones in
 * between).  The window keeps its own small table under a lock instead,
 * so a BAR write is a table update, visible to every vCPU at once.
 *
 * A BAR that lies outside the window or overlaps another live BAR is not
 * decoded (accesses read all ones), with one log line (the first
 * PCI_WINDOW_LOG_LIMIT times): the guest's mistake, never the host's.
 * Handlers are called without the window's lock held, so they may take
 * their own locks and block. */
#ifndef KRG_VMM_DEVICES_PCI_WINDOW_H
#define KRG_VMM_DEVICES_PCI_WINDOW_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "vmm/io_bus.h"

#define PCI_WINDOW_MAX_MAPS 32
#define PCI_WINDOW_LOG_LIMIT 8  /* refusals logged; later ones counted */

struct pci_window_map {
	uint64_t base, len;          /* guest-physical */
	io_handler_fn fn;
	void *opaque;
	const void *owner;           /* (owner, bar) names a mapping */
	int bar;
	bool used;
};

struct pci_window {
	pthread_mutex_t lock;
	uint64_t base, len;          /* the window itself */
	struct pci_window_map map[PCI_WINDOW_MAX_MAPS];
	unsigned refused;            /* mappings refused (for tests, logs) */
};

void pci_window__init(struct pci_window *w, uint64_t base, uint64_t len);
void pci_window__destroy(struct pci_window *w);

/* Decode [addr, addr+len) for (owner, bar), replacing what that BAR
 * decoded before.  Returns 0, or -1 (the old mapping is gone and nothing
 * decodes) when the range leaves the window, wraps, or overlaps another
 * mapping. */
int pci_window__map(struct pci_window *w, const void *owner, int bar,
		    uint64_t addr, uint64_t len, io_handler_fn fn,
		    void *opaque);
/* Stop decoding (owner, bar); nothing if it was not mapped. */
void pci_window__unmap(struct pci_window *w, const void *owner, int bar);

/* io_handler_fn for the window's io_bus range (opaque: the window,
 * offset: from w->base).  An access must lie wholly inside one mapping;
 * anything else reads all ones and writes are dropped. */
void pci_window__io(void *opaque, uint64_t offset, uint8_t *data,
		    uint32_t len, bool is_write);
/* The same, by guest-physical address; returns whether a BAR took it. */
bool pci_window__dispatch(struct pci_window *w, uint64_t addr, uint8_t *data,
			  uint32_t len, bool is_write);

#endif
