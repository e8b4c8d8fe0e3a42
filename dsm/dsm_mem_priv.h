/* Internal to dsm_mem*.c: the node object shared by setup (dsm_mem.c),
 * action execution (dsm_mem_exec.c) and the event paths (dsm_mem_fault.c). */
#ifndef KRG_VMM_DSM_MEM_PRIV_H
#define KRG_VMM_DSM_MEM_PRIV_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "dsm/dsm_mem.h"
#include "dsm/dsm_proto.h"

/* Faults being served (for latency and for parking on -EBUSY).  Bounded by
 * the threads that can fault at once; the cap only guards against leaks. */
#define DSM_MEM_MAX_WAITERS 4096
#define DSM_MEM_WHY_MAX 256
#define DSM_MEM_NO_PAGE UINT64_MAX

/* Held messages at most (see dsm_mem_hold.c); beyond, holding stops. */
#define DSM_MEM_MAX_HELD 1024

/* A message kept back by the minimum hold time. */
struct dsm_mem_held {
	uint64_t page;
	uint64_t release_ns;	/* CLOCK_MONOTONIC */
	uint64_t held_at_ns;
	unsigned sender, type;
	size_t len;
	void *payload;
};

struct dsm_mem_waiter {
	uint64_t page;
	uint64_t t0_ns;		/* when the first uffd event was read */
	uint8_t write;
	uint8_t parked;		/* dsm__fault said -EBUSY: retry later */
};

/* One RAM region, registered with userfaultfd; pages are numbered densely
 * across regions in gpa order. */
struct dsm_mem_range {
	uint64_t gpa;
	uint64_t size;
	uint8_t *hva;
	uint64_t memfd_offset;
	uint64_t first_page;
};

struct dsm_mem {
	struct dsm_mem_config cfg;
	int memfd;
	int uffd;
	int stop_fd;		/* eventfd: ends the fault thread's poll */
	unsigned nr_ranges;
	struct dsm_mem_range range[2];
	uint64_t nr_pages;
	struct dsm_node *node;
	pthread_t thread;
	bool thread_running;
	bool registered;

	pthread_mutex_t lock;	/* everything below */
	bool stopped;
	bool failed;		/* why holds the reason */
	bool fatal_reported;
	char why[DSM_MEM_WHY_MAX];
	/* Bit per page: the memfd holds it / it may be mapped writable. */
	uint64_t *present;
	uint64_t *writable;
	/* Bit per page: it came into the memfd outside UFFDIO_COPY/ZEROPAGE
	 * (preloaded, or put there behind the DSM's back), so it may sit in
	 * a huge folio that a punch only zeroes; see punch(). */
	uint64_t *foreign;
	struct dsm_mem_waiter *w;
	unsigned nr_w;
	unsigned nr_parked;
	struct dsm_actions acts;
	struct dsm_mem_stats st;	/* core part filled by snapshots */
	/* Minimum hold (dsm_mem_hold.c): per page, when a local faulter last
	 * got access (us since t_start_ns, 0 = never; NULL when hold_us is
	 * 0), how often access was lost, and the messages held back. */
	uint64_t t_start_ns;
	uint32_t *acquired_us;
	uint32_t *lost;
	struct dsm_mem_held *held;
	unsigned nr_held;
	int hold_timer_fd;
	bool delivering;	/* inside dsm_mem__deliver */
	uint64_t timer_armed_ns;
	/* Pages were punched since drop_translations last ran. */
	bool translations_stale;
	uint8_t buf[DSM_PAGE_SIZE];	/* SEND: the page read back */
	uint8_t zbuf[DSM_PAGE_SIZE];	/* a ZAPped page kept for its SENDs */
};

static inline bool dsm_mem__bit(const uint64_t *map, uint64_t page)
{
	return map[page / 64] >> (page % 64) & 1;
}

static inline void dsm_mem__set_bit(uint64_t *map, uint64_t page, bool on)
{
	if (on)
		map[page / 64] |= 1ull << (page % 64);
	else
		map[page / 64] &= ~(1ull << (page % 64));
}

/* dsm_mem.c */
uint64_t dsm_mem__now_ns(void);
/* Dense page index of a registered hva / of a RAM gpa; DSM_MEM_NO_PAGE. */
uint64_t dsm_mem__hva_page(const struct dsm_mem *dm, uint64_t hva);
uint64_t dsm_mem__gpa_page(const struct dsm_mem *dm, uint64_t gpa);
const struct dsm_mem_range *dsm_mem__page_range(const struct dsm_mem *dm,
						uint64_t page);
void dsm_mem__log(const struct dsm_mem *dm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Marks the node failed (first reason wins, logged).  Lock held. */
void dsm_mem__fail(struct dsm_mem *dm, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Calls the fatal hook once if the node failed.  Lock NOT held. */
void dsm_mem__report(struct dsm_mem *dm);

/* dsm_mem_exec.c, lock held */
/* Runs the actions of one event in order; 0, or -1 with the node failed. */
int dsm_mem__exec(struct dsm_mem *dm, const struct dsm_actions *acts);
/* Wakes every thread blocked on the page (it refaults if still denied). */
int dsm_mem__wake(struct dsm_mem *dm, uint64_t page);
/* Finds or adds the waiter for (page, write); -1 if the table is full of
 * parked faults. */
int dsm_mem__waiter_add(struct dsm_mem *dm, uint64_t page, bool write,
			uint64_t t0_ns);

/* dsm_mem_fault.c */
void *dsm_mem__fault_thread(void *arg);
/* Validates and runs one message through the core, lock held: what
 * dsm_mem__receive does once it decided not to hold the message. */
int dsm_mem__deliver(struct dsm_mem *dm, unsigned sender, unsigned type,
		     const void *payload, size_t len);

/* dsm_mem_hold.c, lock held except init/free */
int dsm_mem__hold_init(struct dsm_mem *dm);
void dsm_mem__hold_free(struct dsm_mem *dm);
/* A local faulter was just given access to page. */
void dsm_mem__hold_acquired(struct dsm_mem *dm, uint64_t page);
/* This node just lost (some) access to page. */
void dsm_mem__hold_lost(struct dsm_mem *dm, uint64_t page);
/* Keeps m back if it would end a hold, or if an earlier message for its
 * page is held; true when kept (the caller must not deliver it). */
bool dsm_mem__hold_defer(struct dsm_mem *dm, unsigned sender, unsigned type,
			 const struct dsm_msg *m, const void *payload,
			 size_t len);
/* Delivers held messages whose time has come (all of them if `all`). */
void dsm_mem__hold_release(struct dsm_mem *dm, bool all);
/* The timerfd the fault thread polls (-1 without hold), and its handler. */
int dsm_mem__hold_timer_fd(const struct dsm_mem *dm);
void dsm_mem__hold_on_timer(struct dsm_mem *dm);
/* The most often lost pages into out->hot. */
void dsm_mem__hold_census(const struct dsm_mem *dm,
			  struct dsm_mem_stats *out);

#endif
