#include "vmm/io_bus.h"

#include <stdlib.h>
#include <string.h>

struct io_range {
	uint64_t base, len;
	io_handler_fn fn;
	void *opaque;
	const char *name;
};

/* Ranges are few (tens) and fixed after build: a sorted array and a binary
 * search keep dispatch cheap without locking. */
struct io_space_table {
	struct io_range *ranges;
	size_t count, cap;
};

struct io_bus {
	struct io_space_table space[2];
};

struct io_bus *io_bus__new(void)
{
	return calloc(1, sizeof(struct io_bus));
}

void io_bus__free(struct io_bus *bus)
{
	if (!bus)
		return;
	free(bus->space[0].ranges);
	free(bus->space[1].ranges);
	free(bus);
}

static bool overlaps(const struct io_range *r, uint64_t base, uint64_t len)
{
	return base < r->base + r->len && r->base < base + len;
}

int io_bus__register(struct io_bus *bus, enum io_space space, uint64_t base,
		     uint64_t len, io_handler_fn fn, void *opaque,
		     const char *name)
{
	struct io_space_table *t = &bus->space[space];
	size_t i, pos = t->count;

	if (len == 0 || base + len < base || !fn)
		return -1;
	for (i = 0; i < t->count; i++) {
		if (overlaps(&t->ranges[i], base, len))
			return -1;
		if (pos == t->count && t->ranges[i].base > base)
			pos = i;
	}
	if (t->count == t->cap) {
		size_t cap = t->cap ? t->cap * 2 : 16;
		struct io_range *n = realloc(t->ranges, cap * sizeof(*n));
		if (!n)
			return -1;
		t->ranges = n;
		t->cap = cap;
	}
	memmove(&t->ranges[pos + 1], &t->ranges[pos],
		(t->count - pos) * sizeof(*t->ranges));
	t->ranges[pos] = (struct io_range){ base, len, fn, opaque, name };
	t->count++;
	return 0;
}

static const struct io_range *find(const struct io_space_table *t,
				   uint64_t addr)
{
	size_t lo = 0, hi = t->count;

	while (lo < hi) {
		size_t mid = (lo + hi) / 2;
		const struct io_range *r = &t->ranges[mid];
		if (addr < r->base)
			hi = mid;
		else if (addr - r->base >= r->len)
			lo = mid + 1;
		else
			return r;
	}
	return NULL;
}

bool io_bus__dispatch(struct io_bus *bus, enum io_space space, uint64_t addr,
		      uint8_t *data, uint32_t len, bool is_write)
{
	const struct io_range *r = find(&bus->space[space], addr);

	if (!r) {
		if (!is_write)
			memset(data, 0xff, len);
		return false;
	}
	r->fn(r->opaque, addr - r->base, data, len, is_write);
	return true;
}

const char *io_bus__owner(const struct io_bus *bus, enum io_space space,
			  uint64_t addr)
{
	const struct io_range *r = find(&bus->space[space], addr);
	return r ? r->name : NULL;
}
