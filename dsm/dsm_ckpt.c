/* The DSM's side of a cluster checkpoint (dsm/dsm_ckpt.h). */
#include "dsm/dsm_ckpt.h"

#include "dsm/dsm_mem.h"
#include "dsm/dsm_mem_priv.h"

void dsm_ckpt__drain(struct dsm_mem *dm, struct dsm_ckpt_state *out)
{
	pthread_mutex_lock(&dm->lock);
	if (dm->nr_held && !dm->failed && !dm->stopped)
		dsm_mem__hold_release(dm, true);
	out->idle = dsm__idle(dm->node) && !dm->nr_parked && !dm->nr_held &&
		    !dm->failed && !dm->stopped;
	out->sent = dm->st.msgs_sent;
	out->recv = dm->st.msgs_received;
	out->faults = dm->st.uffd_events;
	pthread_mutex_unlock(&dm->lock);
	dsm_mem__report(dm);
}

uint64_t dsm_ckpt__owned(struct dsm_mem *dm, uint64_t *map, uint64_t nr_pages)
{
	uint64_t n = 0;

	pthread_mutex_lock(&dm->lock);
	if (nr_pages > dm->nr_pages)
		nr_pages = dm->nr_pages;
	for (uint64_t p = 0; p < nr_pages; p++) {
		enum dsm_access a = dsm__access(dm->node, p);

		if (a == DSM_ACC_MODIFIED ||
		    (a == DSM_ACC_SHARED &&
		     dsm__home(dm->node, p) == dm->cfg.self)) {
			map[p / 64] |= 1ull << (p % 64);
			n++;
		}
	}
	pthread_mutex_unlock(&dm->lock);
	return n;
}
