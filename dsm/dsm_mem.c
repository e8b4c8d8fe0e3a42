/* DSM I/O side, setup and lifetime: userfaultfd with the shmem features,
 * registration of guest RAM, the takeover of pages written before the DSM
 * existed, start/stop, counters. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#include "dsm/dsm_mem.h"
#include "dsm/dsm_mem_priv.h"
#include "vmm/errf.h"

/* MISSING faults on shmem, and write protection of shmem (which needs the
 * kernel's PTE markers so protection survives unpopulated PTEs). */
#define DSM_MEM_FEATURES (UFFD_FEATURE_MISSING_SHMEM | \
			  UFFD_FEATURE_WP_HUGETLBFS_SHMEM)
#define DSM_MEM_IOCTLS ((1ull << _UFFDIO_COPY) | (1ull << _UFFDIO_ZEROPAGE) | \
			(1ull << _UFFDIO_WRITEPROTECT) | (1ull << _UFFDIO_WAKE))

uint64_t dsm_mem__now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

const struct dsm_mem_range *dsm_mem__page_range(const struct dsm_mem *dm,
						uint64_t page)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		const struct dsm_mem_range *r = &dm->range[i];

		if (page >= r->first_page &&
		    page - r->first_page < r->size / DSM_PAGE_SIZE)
			return r;
	}
	return NULL;
}

uint64_t dsm_mem__hva_page(const struct dsm_mem *dm, uint64_t hva)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		const struct dsm_mem_range *r = &dm->range[i];
		uint64_t base = (uint64_t)(uintptr_t)r->hva;

		if (hva >= base && hva - base < r->size)
			return r->first_page + (hva - base) / DSM_PAGE_SIZE;
	}
	return DSM_MEM_NO_PAGE;
}

uint64_t dsm_mem__gpa_page(const struct dsm_mem *dm, uint64_t gpa)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		const struct dsm_mem_range *r = &dm->range[i];

		if (gpa >= r->gpa && gpa - r->gpa < r->size)
			return r->first_page + (gpa - r->gpa) / DSM_PAGE_SIZE;
	}
	return DSM_MEM_NO_PAGE;
}

static void vlog_line(const struct dsm_mem *dm, const char *fmt, va_list ap)
{
	char line[DSM_MEM_WHY_MAX + 64];
	int k = snprintf(line, sizeof(line), "krg-vmm: dsm: node %u: ",
			 dm->cfg.self);

	vsnprintf(line + k, sizeof(line) - (size_t)k, fmt, ap);
	if (dm->cfg.log)
		dm->cfg.log(dm->cfg.ctx, line);
	else
		fprintf(stderr, "%s\n", line);
}

void dsm_mem__log(const struct dsm_mem *dm, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog_line(dm, fmt, ap);
	va_end(ap);
}

void dsm_mem__fail(struct dsm_mem *dm, const char *fmt, ...)
{
	va_list ap;

	if (dm->failed)
		return;
	dm->failed = true;
	va_start(ap, fmt);
	vsnprintf(dm->why, sizeof(dm->why), fmt, ap);
	va_end(ap);
	dsm_mem__log(dm, "%s", dm->why);
}

void dsm_mem__report(struct dsm_mem *dm)
{
	char why[DSM_MEM_WHY_MAX];
	bool call = false;

	pthread_mutex_lock(&dm->lock);
	if (dm->failed && !dm->fatal_reported) {
		dm->fatal_reported = true;
		memcpy(why, dm->why, sizeof(why));
		call = true;
	}
	pthread_mutex_unlock(&dm->lock);
	if (call)
		dm->cfg.fatal(dm->cfg.ctx, why);
}

/* Without UFFD_USER_MODE_ONLY: KVM's accesses on behalf of the guest are
 * kernel-mode faults and must reach us too. */
static int uffd_open(char *err, size_t errlen)
{
	int fd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);

	if (fd >= 0)
		return fd;
	int e = errno;
#ifdef USERFAULTFD_IOC_NEW
	int dev = open("/dev/userfaultfd", O_RDWR | O_CLOEXEC);

	if (dev >= 0) {
		fd = ioctl(dev, USERFAULTFD_IOC_NEW, O_CLOEXEC | O_NONBLOCK);
		close(dev);
		if (fd >= 0)
			return fd;
	}
#endif
	errf(err, errlen, "dsm: userfaultfd unavailable (%s): needs root or "
	     "CAP_SYS_PTRACE, vm.unprivileged_userfaultfd=1, or access to "
	     "/dev/userfaultfd", strerror(e));
	return -1;
}

/* UFFDIO_API may run once per descriptor: ask what the kernel has on a
 * scratch one, so a missing feature gets a precise message. */
static int uffd_open_api(char *err, size_t errlen)
{
	int fd = uffd_open(err, errlen);

	if (fd < 0)
		return -1;
	struct uffdio_api api = { .api = UFFD_API, .features = 0 };

	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		errf(err, errlen, "dsm: UFFDIO_API: %s", strerror(errno));
		close(fd);
		return -1;
	}
	close(fd);
	if ((api.features & DSM_MEM_FEATURES) != DSM_MEM_FEATURES) {
		errf(err, errlen, "dsm: this kernel's userfaultfd lacks %s%s "
		     "(needs Linux >= 5.19 with CONFIG_PTE_MARKER_UFFD_WP)",
		     api.features & UFFD_FEATURE_MISSING_SHMEM ? ""
							       : "MISSING_SHMEM ",
		     api.features & UFFD_FEATURE_WP_HUGETLBFS_SHMEM
			     ? "" : "WP_HUGETLBFS_SHMEM");
		return -1;
	}
	fd = uffd_open(err, errlen);
	if (fd < 0)
		return -1;
	api = (struct uffdio_api){ .api = UFFD_API,
				   .features = DSM_MEM_FEATURES };
	if (ioctl(fd, UFFDIO_API, &api) < 0) {
		errf(err, errlen, "dsm: UFFDIO_API with shmem features: %s",
		     strerror(errno));
		close(fd);
		return -1;
	}
	return fd;
}

int dsm_mem__probe(char *err, size_t errlen)
{
	int fd = uffd_open_api(err, errlen);

	if (fd < 0)
		return -1;
	close(fd);
	return 0;
}

static unsigned page_home(void *ctx, uint64_t page)
{
	struct dsm_mem *dm = ctx;
	const struct dsm_mem_range *r = dsm_mem__page_range(dm, page);

	if (!r)
		return DSM_MAX_NODES;
	int h = dm->cfg.home_of(dm->cfg.ctx, r->gpa + (page - r->first_page) *
					     DSM_PAGE_SIZE);
	return h < 0 ? DSM_MAX_NODES : (unsigned)h;
}

static int check_config(const struct dsm_mem_config *cfg, char *err,
			size_t errlen)
{
	const struct guest_mem *mem = cfg->mem;

	if (!mem || mem->memfd < 0 || mem->nr_regions < 1 ||
	    mem->nr_regions > 2 || !cfg->home_of || !cfg->send ||
	    !cfg->fatal) {
		errf(err, errlen, "dsm: need guest memory, home_of, send and "
		     "fatal");
		return -1;
	}
	if (cfg->nr_nodes < 1 || cfg->nr_nodes > DSM_MAX_NODES ||
	    cfg->self >= cfg->nr_nodes) {
		errf(err, errlen, "dsm: node %u of %u: need 1..%d nodes and "
		     "self < nodes", cfg->self, cfg->nr_nodes, DSM_MAX_NODES);
		return -1;
	}
	if (cfg->hold_us > DSM_MEM_MAX_HOLD_US) {
		errf(err, errlen, "dsm: hold time %u us beyond %u us",
		     cfg->hold_us, DSM_MEM_MAX_HOLD_US);
		return -1;
	}
	for (int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *r = &mem->region[i];

		if ((r->gpa | r->size | r->memfd_offset |
		     (uint64_t)(uintptr_t)r->hva) % DSM_PAGE_SIZE || !r->size) {
			errf(err, errlen, "dsm: RAM region %d is not whole "
			     "4 KiB pages", i);
			return -1;
		}
	}
	return 0;
}

static int register_ranges(struct dsm_mem *dm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		struct dsm_mem_range *r = &dm->range[i];
		struct uffdio_register reg = {
			.range = { (uint64_t)(uintptr_t)r->hva, r->size },
			.mode = UFFDIO_REGISTER_MODE_MISSING |
				UFFDIO_REGISTER_MODE_WP,
		};

		/* Page-granular coherence: no transparent huge pages (a
		 * punched 4 KiB piece of a huge folio may stay allocated),
		 * and no copy of guest RAM in a forked child, where accesses
		 * would bypass the DSM. */
		madvise(r->hva, r->size, MADV_NOHUGEPAGE);
		madvise(r->hva, r->size, MADV_DONTFORK);
		if (ioctl(dm->uffd, UFFDIO_REGISTER, &reg) < 0) {
			errf(err, errlen, "dsm: UFFDIO_REGISTER of RAM at gpa "
			     "0x%llx (MISSING|WP on shmem): %s",
			     (unsigned long long)r->gpa, strerror(errno));
			return -1;
		}
		dm->registered = true;
		if ((reg.ioctls & DSM_MEM_IOCTLS) != DSM_MEM_IOCTLS) {
			errf(err, errlen, "dsm: userfaultfd offers ioctls 0x%llx"
			     " on guest RAM, need COPY, ZEROPAGE, WRITEPROTECT "
			     "and WAKE", (unsigned long long)reg.ioctls);
			return -1;
		}
	}
	return 0;
}

/* Pages already in the memfd (written before the DSM existed) are this
 * node's Modified pages: tell the core they are mapped, so that it emits
 * the WRITE_PROTECT or ZAP when they are shared or move away.  Registered
 * first, so no page can appear behind the scan. */
static int take_over_present(struct dsm_mem *dm, char *err, size_t errlen)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		const struct dsm_mem_range *r = &dm->range[i];
		off_t end = (off_t)(r->memfd_offset + r->size);
		off_t off = (off_t)r->memfd_offset;

		while (off < end) {
			off_t d = lseek(dm->memfd, off, SEEK_DATA);

			if (d < 0 || d >= end)
				break;
			off_t h = lseek(dm->memfd, d, SEEK_HOLE);

			if (h < 0 || h > end)
				h = end;
			for (off_t o = d & ~(off_t)(DSM_PAGE_SIZE - 1); o < h;
			     o += DSM_PAGE_SIZE) {
				uint64_t page = r->first_page +
						((uint64_t)o - r->memfd_offset) /
							DSM_PAGE_SIZE;
				uint64_t gpa = r->gpa + (uint64_t)o -
					       r->memfd_offset;

				if (dsm__home(dm->node, page) != dm->cfg.self) {
					errf(err, errlen, "dsm: guest RAM at "
					     "0x%llx was written on node %u, "
					     "but node %u homes it: load it "
					     "after the DSM starts",
					     (unsigned long long)gpa,
					     dm->cfg.self,
					     dsm__home(dm->node, page));
					return -1;
				}
				if (dsm__fault(dm->node, page, true,
					       &dm->acts) ||
				    dm->acts.n != 1 ||
				    dm->acts.a[0].type != DSM_ACT_MAP_LOCAL) {
					errf(err, errlen, "dsm: core refused "
					     "the preloaded page at 0x%llx",
					     (unsigned long long)gpa);
					return -1;
				}
				dsm_mem__set_bit(dm->present, page, true);
				dsm_mem__set_bit(dm->writable, page, true);
				dsm_mem__set_bit(dm->foreign, page, true);
				dm->st.preloaded_pages++;
			}
			off = h;
		}
	}
	return 0;
}

static int init_ranges(struct dsm_mem *dm)
{
	const struct guest_mem *mem = dm->cfg.mem;
	uint64_t pages = 0;

	dm->nr_ranges = (unsigned)mem->nr_regions;
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		const struct guest_mem_region *g = &mem->region[i];

		dm->range[i] = (struct dsm_mem_range){
			.gpa = g->gpa, .size = g->size, .hva = g->hva,
			.memfd_offset = g->memfd_offset, .first_page = pages,
		};
		pages += g->size / DSM_PAGE_SIZE;
	}
	dm->nr_pages = pages;
	size_t words = (size_t)((pages + 63) / 64);

	dm->present = calloc(words, sizeof(uint64_t));
	dm->writable = calloc(words, sizeof(uint64_t));
	dm->foreign = calloc(words, sizeof(uint64_t));
	dm->w = calloc(DSM_MEM_MAX_WAITERS, sizeof(*dm->w));
	dm->t_start_ns = dsm_mem__now_ns();
	if (dsm_mem__hold_init(dm))
		return -1;
	return dm->present && dm->writable && dm->foreign && dm->w ? 0 : -1;
}

struct dsm_mem *dsm_mem__create(const struct dsm_mem_config *cfg, char *err,
				size_t errlen)
{
	if (check_config(cfg, err, errlen))
		return NULL;
	struct dsm_mem *dm = calloc(1, sizeof(*dm));

	if (!dm) {
		errf(err, errlen, "dsm: out of memory");
		return NULL;
	}
	dm->cfg = *cfg;
	if (!dm->cfg.max_requests)
		dm->cfg.max_requests = DSM_MEM_DEFAULT_MAX_REQUESTS;
	dm->memfd = cfg->mem->memfd;
	dm->uffd = -1;
	dm->stop_fd = -1;
	dm->hold_timer_fd = -1;
	pthread_mutex_init(&dm->lock, NULL);
	if (init_ranges(dm)) {
		errf(err, errlen, "dsm: out of memory or timers");
		goto fail;
	}
	struct dsm_config dc = {
		.nr_nodes = cfg->nr_nodes, .self = cfg->self,
		.nr_pages = dm->nr_pages, .home_of = page_home, .ctx = dm,
		.max_requests = dm->cfg.max_requests,
		.track_writes = cfg->track_writes,
	};

	dm->node = dsm__new(&dc, err, errlen);
	if (!dm->node)
		goto fail;
	dm->uffd = uffd_open_api(err, errlen);
	if (dm->uffd < 0)
		goto fail;
	dm->stop_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (dm->stop_fd < 0) {
		errf(err, errlen, "dsm: eventfd: %s", strerror(errno));
		goto fail;
	}
	if (register_ranges(dm, err, errlen) ||
	    take_over_present(dm, err, errlen))
		goto fail;
	return dm;
fail:
	dsm_mem__destroy(dm);
	return NULL;
}

int dsm_mem__start(struct dsm_mem *dm, char *err, size_t errlen)
{
	if (dm->thread_running || dm->stopped) {
		errf(err, errlen, "dsm: node %u already started or stopped",
		     dm->cfg.self);
		return -1;
	}
	int rc = pthread_create(&dm->thread, NULL, dsm_mem__fault_thread, dm);

	if (rc) {
		errf(err, errlen, "dsm: fault thread: %s", strerror(rc));
		return -1;
	}
	dm->thread_running = true;
	return 0;
}

static void unregister_ranges(struct dsm_mem *dm)
{
	for (unsigned i = 0; i < dm->nr_ranges; i++) {
		struct uffdio_range rg = {
			(uint64_t)(uintptr_t)dm->range[i].hva,
			dm->range[i].size,
		};

		/* Unregistering wakes every thread blocked on the range. */
		if (ioctl(dm->uffd, UFFDIO_UNREGISTER, &rg) < 0)
			dsm_mem__log(dm, "UFFDIO_UNREGISTER: %s",
				     strerror(errno));
	}
	dm->registered = false;
}

void dsm_mem__stop(struct dsm_mem *dm)
{
	if (dm->thread_running && pthread_equal(pthread_self(), dm->thread)) {
		dsm_mem__log(dm, "dsm_mem__stop called on the fault thread "
			     "(from the fatal hook?): ignored");
		return;
	}
	if (dm->thread_running) {
		uint64_t one = 1;

		if (write(dm->stop_fd, &one, sizeof(one)) != sizeof(one))
			dsm_mem__log(dm, "cannot signal the fault thread");
		pthread_join(dm->thread, NULL);
		dm->thread_running = false;
	}
	pthread_mutex_lock(&dm->lock);
	dm->stopped = true;
	pthread_mutex_unlock(&dm->lock);
	if (dm->registered)
		unregister_ranges(dm);
}

void dsm_mem__destroy(struct dsm_mem *dm)
{
	if (!dm)
		return;
	dsm_mem__stop(dm);
	if (dm->uffd >= 0)
		close(dm->uffd);
	if (dm->stop_fd >= 0)
		close(dm->stop_fd);
	dsm__free(dm->node);
	free(dm->present);
	free(dm->writable);
	free(dm->foreign);
	free(dm->w);
	dsm_mem__hold_free(dm);
	pthread_mutex_destroy(&dm->lock);
	free(dm);
}

void dsm_mem__stats(struct dsm_mem *dm, struct dsm_mem_stats *out)
{
	pthread_mutex_lock(&dm->lock);
	*out = dm->st;
	out->core = *dsm__counters(dm->node);
	dsm_mem__hold_census(dm, out);
	pthread_mutex_unlock(&dm->lock);
}

uint64_t dsm_mem__lat_quantile_us(const struct dsm_mem_stats *s, double q)
{
	uint64_t total = 0, seen = 0;

	for (unsigned b = 0; b < DSM_MEM_LAT_BUCKETS; b++)
		total += s->lat_hist[b];
	if (!total)
		return 0;
	if (q < 0)
		q = 0;
	uint64_t want = (uint64_t)(q * (double)total);

	if (want >= total)
		want = total - 1;
	for (unsigned b = 0; b < DSM_MEM_LAT_BUCKETS; b++) {
		seen += s->lat_hist[b];
		if (seen > want)
			return 1ull << b;
	}
	return 1ull << (DSM_MEM_LAT_BUCKETS - 1);
}

enum dsm_access dsm_mem__access(struct dsm_mem *dm, uint64_t gpa)
{
	uint64_t page = dsm_mem__gpa_page(dm, gpa);
	enum dsm_access acc;

	if (page == DSM_MEM_NO_PAGE)
		return DSM_ACC_INVALID;
	pthread_mutex_lock(&dm->lock);
	acc = dsm__access(dm->node, page);
	pthread_mutex_unlock(&dm->lock);
	return acc;
}

bool dsm_mem__idle(struct dsm_mem *dm)
{
	pthread_mutex_lock(&dm->lock);
	bool idle = dsm__idle(dm->node) && !dm->nr_parked && !dm->nr_held;

	pthread_mutex_unlock(&dm->lock);
	return idle;
}
