/* DSM I/O side, the minimum hold time and the hot-page census.
 *
 * Why a hold: when one vCPU writes a page another node keeps reading (a
 * flag polled in a loop, a lock word, a text page being patched while the
 * other CPU runs code from it), each access can steal the page back before
 * the other side has done more than the one access that faulted.  On a
 * host where the guest kernel is emulated that can be one instruction per
 * round trip, and the guest stalls.  So a node that just got access for a
 * waiting local faulter keeps it for `hold_us` before it honours a message
 * that would take it away (Mirage's "delta"): the holder always gets a
 * window of local speed, and the cost is bounded by the hold per transfer.
 * Only write access is held (see takes_access).
 *
 * Holding delays messages, it never reorders them for one page: once a
 * page has a held message every later message for that page waits behind
 * it.  The core's pages are independent of each other, so messages for
 * other pages go on meanwhile; and the home keeps a page busy while a
 * transfer is in flight, so nothing else about it can arrive but further
 * requests, which the core queues anyway.  Held messages are validated
 * when they are delivered, exactly like fresh ones.
 *
 * The census counts, per page, how often this node lost access to it (a
 * ZAP or WRITE_PROTECT action); the pages with the highest counts are the
 * ones bouncing between nodes, shown by `krg-vmm status` and --stats. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "dsm/dsm_mem.h"
#include "dsm/dsm_mem_priv.h"

static uint32_t now_us(const struct dsm_mem *dm)
{
	return (uint32_t)((dsm_mem__now_ns() - dm->t_start_ns) / 1000);
}

int dsm_mem__hold_init(struct dsm_mem *dm)
{
	dm->hold_timer_fd = -1;
	dm->lost = calloc(dm->nr_pages, sizeof(*dm->lost));
	if (!dm->lost)
		return -1;
	if (!dm->cfg.hold_us)
		return 0;
	dm->acquired_us = calloc(dm->nr_pages, sizeof(*dm->acquired_us));
	dm->held = calloc(DSM_MEM_MAX_HELD, sizeof(*dm->held));
	dm->hold_timer_fd = timerfd_create(CLOCK_MONOTONIC,
					   TFD_CLOEXEC | TFD_NONBLOCK);
	return dm->acquired_us && dm->held && dm->hold_timer_fd >= 0 ? 0 : -1;
}

void dsm_mem__hold_free(struct dsm_mem *dm)
{
	for (unsigned i = 0; i < dm->nr_held; i++)
		free(dm->held[i].payload);
	dm->nr_held = 0;
	free(dm->held);
	free(dm->acquired_us);
	free(dm->lost);
	if (dm->hold_timer_fd >= 0)
		close(dm->hold_timer_fd);
}

void dsm_mem__hold_acquired(struct dsm_mem *dm, uint64_t page)
{
	if (!dm->acquired_us)
		return;
	/* 0 means "never": a page acquired at exactly 0 us is not held. */
	dm->acquired_us[page] = now_us(dm) | 1;
}

void dsm_mem__hold_lost(struct dsm_mem *dm, uint64_t page)
{
	if (dm->lost[page] != UINT32_MAX)
		dm->lost[page]++;
}

/* Would delivering m now take write access away from this node?  Only a
 * writer is held: a reader spinning on a flag or a seqcount gains nothing
 * from keeping its copy (it waits for the writer anyway), while a writer
 * in the middle of an update needs the page until it is done.  Holding
 * readers too halves the writer's share of the time (attempt 5 in
 * bench/RESULTS.md). */
static bool takes_access(const struct dsm_mem *dm, const struct dsm_msg *m)
{
	if (dsm__access(dm->node, m->page) != DSM_ACC_MODIFIED)
		return false;
	switch (m->type) {
	case DSM_MSG_FWD_READ:
	case DSM_MSG_FWD_WRITE:
	case DSM_MSG_READ_REQ:	/* at the home: downgrades its write */
	case DSM_MSG_WRITE_REQ:
		return true;
	default:
		return false;
	}
}

static uint64_t page_held_until(const struct dsm_mem *dm, uint64_t page)
{
	uint64_t until = 0;

	for (unsigned i = 0; i < dm->nr_held; i++)
		if (dm->held[i].page == page && dm->held[i].release_ns > until)
			until = dm->held[i].release_ns;
	return until;
}

static void arm_timer(struct dsm_mem *dm)
{
	uint64_t first = 0;

	for (unsigned i = 0; i < dm->nr_held; i++)
		if (!first || dm->held[i].release_ns < first)
			first = dm->held[i].release_ns;
	if (first == dm->timer_armed_ns)
		return;
	struct itimerspec its = { 0 };

	if (first) {
		its.it_value.tv_sec = (time_t)(first / 1000000000ull);
		its.it_value.tv_nsec = (long)(first % 1000000000ull);
	}
	/* Absolute, so a deadline already past fires at once. */
	if (timerfd_settime(dm->hold_timer_fd, TFD_TIMER_ABSTIME, &its,
			    NULL) < 0) {
		dsm_mem__fail(dm, "arming the hold timer: %s", strerror(errno));
		return;
	}
	dm->timer_armed_ns = first;
}

bool dsm_mem__hold_defer(struct dsm_mem *dm, unsigned sender, unsigned type,
			 const struct dsm_msg *m, const void *payload,
			 size_t len)
{
	if (!dm->acquired_us || m->page >= dm->nr_pages)
		return false;
	uint64_t until = 0;

	if (takes_access(dm, m)) {
		uint32_t age = now_us(dm) - dm->acquired_us[m->page];

		if (dm->acquired_us[m->page] && age < dm->cfg.hold_us)
			until = dsm_mem__now_ns() +
				(uint64_t)(dm->cfg.hold_us - age) * 1000;
	}
	uint64_t behind = page_held_until(dm, m->page);

	if (!until && !behind)
		return false;
	if (dm->nr_held == DSM_MEM_MAX_HELD) {
		/* Full: give up holding rather than grow without bound. */
		dsm_mem__hold_release(dm, true);
		return false;
	}
	void *copy = malloc(len);

	if (!copy) {
		dsm_mem__hold_release(dm, true);
		return false;
	}
	memcpy(copy, payload, len);
	dm->held[dm->nr_held++] = (struct dsm_mem_held){
		.page = m->page, .release_ns = until > behind ? until : behind,
		.sender = sender, .type = type, .len = len, .payload = copy,
		.held_at_ns = dsm_mem__now_ns(),
	};
	if (until)
		dm->st.held_msgs++;
	arm_timer(dm);
	return true;
}

void dsm_mem__hold_release(struct dsm_mem *dm, bool all)
{
	uint64_t now = dsm_mem__now_ns();
	unsigned k = 0;

	/* In arrival order; a page's entries have non-decreasing release
	 * times, so whatever stays keeps its order too.  Delivery never holds
	 * again (dsm_mem__deliver is past that decision). */
	for (unsigned i = 0; i < dm->nr_held; i++) {
		struct dsm_mem_held h = dm->held[i];

		if (!all && h.release_ns > now) {
			dm->held[k++] = h;
			continue;
		}
		dm->st.held_ns += now - h.held_at_ns;
		if (!dm->failed && !dm->stopped)
			dsm_mem__deliver(dm, h.sender, h.type, h.payload,
					 h.len);
		free(h.payload);
	}
	dm->nr_held = k;
	if (dm->hold_timer_fd >= 0)
		arm_timer(dm);
}

int dsm_mem__hold_timer_fd(const struct dsm_mem *dm)
{
	return dm->hold_timer_fd;
}

void dsm_mem__hold_on_timer(struct dsm_mem *dm)
{
	uint64_t ticks;

	if (read(dm->hold_timer_fd, &ticks, sizeof(ticks)) < 0 &&
	    errno != EAGAIN)
		dsm_mem__fail(dm, "reading the hold timer: %s",
			      strerror(errno));
	dm->timer_armed_ns = 0;
	dsm_mem__hold_release(dm, false);
}

void dsm_mem__hold_census(const struct dsm_mem *dm,
			  struct dsm_mem_stats *out)
{
	memset(out->hot, 0, sizeof(out->hot));
	for (uint64_t p = 0; p < dm->nr_pages; p++) {
		uint32_t c = dm->lost[p];
		unsigned at = DSM_MEM_HOT_PAGES;

		while (at > 0 && out->hot[at - 1].count < c)
			at--;
		if (at == DSM_MEM_HOT_PAGES || !c)
			continue;
		memmove(&out->hot[at + 1], &out->hot[at],
			(DSM_MEM_HOT_PAGES - at - 1) * sizeof(out->hot[0]));
		const struct dsm_mem_range *r = dsm_mem__page_range(dm, p);

		out->hot[at].gpa = r->gpa + (p - r->first_page) * DSM_PAGE_SIZE;
		out->hot[at].count = c;
	}
}
