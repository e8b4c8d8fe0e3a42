#include "vmm/devices/pci_window.h"

#include <stdio.h>
#include <string.h>

void pci_window__init(struct pci_window *w, uint64_t base, uint64_t len)
{
	memset(w, 0, sizeof(*w));
	pthread_mutex_init(&w->lock, NULL);
	w->base = base;
	w->len = len;
}

void pci_window__destroy(struct pci_window *w)
{
	pthread_mutex_destroy(&w->lock);
}

static struct pci_window_map *find_owner(struct pci_window *w,
					 const void *owner, int bar)
{
	for (unsigned i = 0; i < PCI_WINDOW_MAX_MAPS; i++)
		if (w->map[i].used && w->map[i].owner == owner &&
		    w->map[i].bar == bar)
			return &w->map[i];
	return NULL;
}

static bool inside(const struct pci_window *w, uint64_t addr, uint64_t len)
{
	return len && addr + len > addr && addr >= w->base &&
	       addr - w->base < w->len && len <= w->len - (addr - w->base);
}

int pci_window__map(struct pci_window *w, const void *owner, int bar,
		    uint64_t addr, uint64_t len, io_handler_fn fn,
		    void *opaque)
{
	struct pci_window_map *m, *slot = NULL;
	const char *why = NULL;

	pthread_mutex_lock(&w->lock);
	m = find_owner(w, owner, bar);
	if (m)
		m->used = false;
	if (!inside(w, addr, len))
		why = "outside the PCI memory window";
	for (unsigned i = 0; !why && i < PCI_WINDOW_MAX_MAPS; i++) {
		struct pci_window_map *o = &w->map[i];

		if (!o->used) {
			if (!slot)
				slot = o;
			continue;
		}
		if (addr < o->base + o->len && o->base < addr + len)
			why = "overlapping another BAR";
	}
	if (!why && !slot)
		why = "too many BARs";
	if (why) {
		unsigned n = ++w->refused;

		pthread_mutex_unlock(&w->lock);
		/* The guest decides how often: a few lines, not a flood. */
		if (n <= PCI_WINDOW_LOG_LIMIT)
			fprintf(stderr, "krg-vmm: pci: BAR %d at 0x%llx "
				"(0x%llx bytes) not decoded: %s\n", bar,
				(unsigned long long)addr,
				(unsigned long long)len, why);
		return -1;
	}
	*slot = (struct pci_window_map){ addr, len, fn, opaque, owner, bar,
					 true };
	pthread_mutex_unlock(&w->lock);
	return 0;
}

void pci_window__unmap(struct pci_window *w, const void *owner, int bar)
{
	struct pci_window_map *m;

	pthread_mutex_lock(&w->lock);
	m = find_owner(w, owner, bar);
	if (m)
		m->used = false;
	pthread_mutex_unlock(&w->lock);
}

bool pci_window__dispatch(struct pci_window *w, uint64_t addr, uint8_t *data,
			  uint32_t len, bool is_write)
{
	struct pci_window_map hit = { 0 };

	pthread_mutex_lock(&w->lock);
	for (unsigned i = 0; i < PCI_WINDOW_MAX_MAPS; i++) {
		const struct pci_window_map *m = &w->map[i];

		if (m->used && addr >= m->base && addr - m->base < m->len &&
		    len <= m->len - (addr - m->base)) {
			hit = *m;
			break;
		}
	}
	pthread_mutex_unlock(&w->lock);
	/* A BAR moved after this lookup sees one late access at its old
	 * place: what a real bus does with a posted write in flight. */
	if (!hit.used) {
		if (!is_write)
			memset(data, 0xFF, len);
		return false;
	}
	hit.fn(hit.opaque, addr - hit.base, data, len, is_write);
	return true;
}

void pci_window__io(void *opaque, uint64_t offset, uint8_t *data,
		    uint32_t len, bool is_write)
{
	struct pci_window *w = opaque;

	pci_window__dispatch(w, w->base + offset, data, len, is_write);
}
