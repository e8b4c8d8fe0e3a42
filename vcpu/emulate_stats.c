/* Per-mnemonic counts of what the emulation fallback completed and refused,
 * merged across vCPUs and nodes for `krg-vmm status` (see emulate.h). */
#include "vcpu/emulate.h"

#include <stdio.h>
#include <string.h>

static void stats_add(struct emu_stats *s, const char *name,
		      uint64_t completed, uint64_t refused)
{
	struct emu_stats_entry *e = NULL;

	s->completed += completed;
	s->refused += refused;
	for (unsigned i = 0; i < s->used && i < EMU_STATS_SLOTS; i++) {
		if (!strncmp(s->e[i].mnemonic, name, sizeof(s->e[i].mnemonic))) {
			e = &s->e[i];
			break;
		}
	}
	if (!e) {
		if (s->used >= EMU_STATS_SLOTS) {
			s->untracked += completed + refused;
			return;
		}
		e = &s->e[s->used++];
		snprintf(e->mnemonic, sizeof(e->mnemonic), "%s", name);
	}
	e->completed += completed;
	e->refused += refused;
}

void emulate__stats_record(struct emu_stats *s, const struct emu_action *a)
{
	bool refused = a->kind == EMU_REFUSED;

	stats_add(s, a->mnemonic[0] ? a->mnemonic : "(none)", !refused,
		  refused);
}

void emulate__stats_merge(struct emu_stats *dst, const struct emu_stats *src)
{
	uint64_t itemized_c = 0, itemized_r = 0;

	for (unsigned i = 0; i < src->used && i < EMU_STATS_SLOTS; i++) {
		stats_add(dst, src->e[i].mnemonic, src->e[i].completed,
			  src->e[i].refused);
		itemized_c += src->e[i].completed;
		itemized_r += src->e[i].refused;
	}
	/* What src could not itemize still counts in the totals. */
	dst->completed += src->completed - itemized_c;
	dst->refused += src->refused - itemized_r;
	dst->untracked += src->untracked;
}

int emulate__stats_format(const struct emu_stats *s, char *buf, size_t size)
{
	size_t used = 0, total = 0;
	int n;

#define APPEND(...) do { \
		n = snprintf(buf ? buf + used : NULL, \
			     used < size ? size - used : 0, __VA_ARGS__); \
		if (n < 0) \
			return n; \
		total += (size_t)n; \
		used = total < size ? total : (size ? size - 1 : 0); \
	} while (0)

	APPEND("emulation fallback: %llu completed, %llu refused",
	       (unsigned long long)s->completed,
	       (unsigned long long)s->refused);
	for (unsigned i = 0; i < s->used && i < EMU_STATS_SLOTS; i++) {
		const struct emu_stats_entry *e = &s->e[i];

		if (e->completed)
			APPEND("%s %s x%llu", i ? "," : ":", e->mnemonic,
			       (unsigned long long)e->completed);
		if (e->refused)
			APPEND("%s %s refused x%llu",
			       i || e->completed ? "," : ":", e->mnemonic,
			       (unsigned long long)e->refused);
	}
	if (s->untracked)
		APPEND(", %llu more not itemized",
		       (unsigned long long)s->untracked);
#undef APPEND
	return (int)total;
}
