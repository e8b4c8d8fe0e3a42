/* The checkpoint barrier's bookkeeping (see ckpt_format.h): node 0's
 * rounds of reports, and each node's probe and peer marks. */
#include "vmm/ckpt_format.h"

#include <string.h>

void ckpt_barrier__init(struct ckpt_barrier *b, unsigned nr_nodes,
			uint32_t last_round)
{
	memset(b, 0, sizeof(*b));
	b->nr_nodes = nr_nodes < CKPT_BARRIER_MAX_NODES ? nr_nodes :
							 CKPT_BARRIER_MAX_NODES;
	b->round = last_round;
}

uint32_t ckpt_barrier__next_round(struct ckpt_barrier *b)
{
	if (++b->round == 0)
		b->round = 1;
	b->pending = b->nr_nodes;
	memset(b->have, 0, sizeof(b->have));
	return b->round;
}

static bool quiet(const struct ckpt_barrier *b)
{
	uint64_t sent = 0, recv = 0;

	if (!b->prev_valid)
		return false;
	for (unsigned i = 0; i < b->nr_nodes; i++) {
		const struct ckpt_report *c = &b->cur[i], *p = &b->prev[i];

		if (!c->idle || !p->idle || c->sent != p->sent ||
		    c->recv != p->recv)
			return false;
		sent += c->sent;
		recv += c->recv;
	}
	return sent == recv;
}

enum ckpt_barrier_result ckpt_barrier__report(struct ckpt_barrier *b,
					      unsigned node, uint32_t round,
					      const struct ckpt_report *r)
{
	if (node >= b->nr_nodes)
		return CKPT_B_BAD;
	if (round != b->round || !b->pending || b->have[node])
		return CKPT_B_IGNORED;
	b->have[node] = true;
	b->cur[node] = *r;
	if (--b->pending)
		return CKPT_B_WAIT;
	if (quiet(b))
		return CKPT_B_QUIET;
	memcpy(b->prev, b->cur, sizeof(b->prev));
	b->prev_valid = true;
	return CKPT_B_AGAIN;
}

void ckpt_marks__init(struct ckpt_marks *k, unsigned nr_nodes, unsigned self)
{
	memset(k, 0, sizeof(*k));
	k->nr_nodes = nr_nodes;
	k->self = self;
}

static uint64_t peers(const struct ckpt_marks *k)
{
	uint64_t all = k->nr_nodes >= 64 ? ~0ull : (1ull << k->nr_nodes) - 1;

	return all & ~(1ull << k->self);
}

static int complete(struct ckpt_marks *k)
{
	if (!k->probed || k->reported || k->got[0] != peers(k))
		return 0;
	k->reported = true;
	return 1;
}

int ckpt_marks__probe(struct ckpt_marks *k, uint32_t round)
{
	if (k->probed && (int32_t)(round - k->round) <= 0)
		return -1;
	/* Marks that came early for this round move up; a round skipped
	 * (a checkpoint given up) leaves nothing behind. */
	k->got[0] = k->got[1] && k->early_round == round ? k->got[1] : 0;
	k->got[1] = 0;
	k->round = round;
	k->probed = true;
	k->reported = false;
	return complete(k);
}

int ckpt_marks__mark(struct ckpt_marks *k, unsigned sender, uint32_t round)
{
	uint64_t bit;

	if (sender >= k->nr_nodes || sender == k->self || sender >= 64)
		return -1;
	bit = 1ull << sender;
	if (k->probed && round == k->round) {
		if (k->got[0] & bit)
			return -1;
		k->got[0] |= bit;
		return complete(k);
	}
	if (k->probed && (int32_t)(round - k->round) < 0)
		return 0;	/* late, from a round already given up */
	/* Ahead of this node's probe: all early marks are for one round
	 * (node 0 starts the next only once this node reported). */
	if ((k->got[1] && k->early_round != round) || (k->got[1] & bit))
		return -1;
	k->early_round = round;
	k->got[1] |= bit;
	return 0;
}
