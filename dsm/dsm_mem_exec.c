/* DSM I/O side, action execution: turns the core's actions into
 * userfaultfd ioctls and memfd operations, wakes faulting threads and
 * measures how long they waited.  Everything here runs under the node
 * lock, and nothing here touches the registered guest mapping: page data
 * moves through UFFDIO_COPY and pread/pwrite of the memfd only. */
#include <errno.h>
#include <fcntl.h>
#include <linux/falloc.h>
#include <linux/userfaultfd.h>
#include <sched.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "dsm/dsm_mem.h"
#include "dsm/dsm_mem_priv.h"

/* EAGAIN means the address space is changing under the ioctl; it settles
 * quickly, but never spin forever. */
#define DSM_MEM_IOCTL_TRIES 10000

static const uint8_t zero_page[DSM_PAGE_SIZE] __attribute__((aligned(4096)));

static uint8_t *page_hva(const struct dsm_mem *dm, uint64_t page)
{
	const struct dsm_mem_range *r = dsm_mem__page_range(dm, page);

	return r->hva + (page - r->first_page) * DSM_PAGE_SIZE;
}

static off_t page_off(const struct dsm_mem *dm, uint64_t page)
{
	const struct dsm_mem_range *r = dsm_mem__page_range(dm, page);

	return (off_t)(r->memfd_offset + (page - r->first_page) * DSM_PAGE_SIZE);
}

static uint64_t gpa_of(const struct dsm_mem *dm, uint64_t page)
{
	const struct dsm_mem_range *r = dsm_mem__page_range(dm, page);

	return r->gpa + (page - r->first_page) * DSM_PAGE_SIZE;
}

/* 0 or -errno.  UFFDIO_COPY/ZEROPAGE report progress in their own field,
 * which must be reset before a retry. */
static int uffd_ioctl(struct dsm_mem *dm, unsigned long req, void *arg,
		      __s64 *progress)
{
	for (int i = 0; i < DSM_MEM_IOCTL_TRIES; i++) {
		if (progress)
			*progress = 0;
		if (ioctl(dm->uffd, req, arg) == 0)
			return 0;
		if (errno != EAGAIN && errno != EINTR)
			return -errno;
		dm->st.retries++;
		sched_yield();
	}
	return -EAGAIN;
}

static int write_protect(struct dsm_mem *dm, uint64_t page, bool wp)
{
	struct uffdio_writeprotect w = {
		.range = { (uint64_t)(uintptr_t)page_hva(dm, page),
			   DSM_PAGE_SIZE },
		.mode = wp ? UFFDIO_WRITEPROTECT_MODE_WP : 0,
	};
	int rc = uffd_ioctl(dm, UFFDIO_WRITEPROTECT, &w, NULL);

	if (rc) {
		dsm_mem__fail(dm, "UFFDIO_WRITEPROTECT(%s) of gpa 0x%llx: %s",
			      wp ? "on" : "off",
			      (unsigned long long)gpa_of(dm, page),
			      strerror(-rc));
		return -1;
	}
	if (wp) {
		dm->st.write_protects++;
		dsm_mem__set_bit(dm->writable, page, false);
	} else {
		dsm_mem__set_bit(dm->writable, page, true);
	}
	return 0;
}

int dsm_mem__wake(struct dsm_mem *dm, uint64_t page)
{
	struct uffdio_range r = { (uint64_t)(uintptr_t)page_hva(dm, page),
				  DSM_PAGE_SIZE };
	int rc = uffd_ioctl(dm, UFFDIO_WAKE, &r, NULL);

	if (rc) {
		dsm_mem__fail(dm, "UFFDIO_WAKE of gpa 0x%llx: %s",
			      (unsigned long long)gpa_of(dm, page),
			      strerror(-rc));
		return -1;
	}
	return 0;
}

int dsm_mem__waiter_add(struct dsm_mem *dm, uint64_t page, bool write,
			uint64_t t0_ns)
{
	for (unsigned i = 0; i < dm->nr_w; i++)
		if (dm->w[i].page == page && dm->w[i].write == write)
			return (int)i;	/* a refault keeps the first time */
	if (dm->nr_w == DSM_MEM_MAX_WAITERS) {
		/* A thread that never refaulted leaves a stale entry; drop
		 * the oldest unparked one (a parked one is a live fault). */
		unsigned i = 0;

		while (i < dm->nr_w && dm->w[i].parked)
			i++;
		if (i == dm->nr_w)
			return -1;
		memmove(&dm->w[i], &dm->w[i + 1],
			(dm->nr_w - i - 1) * sizeof(dm->w[0]));
		dm->nr_w--;
	}
	dm->w[dm->nr_w] = (struct dsm_mem_waiter){
		.page = page, .t0_ns = t0_ns, .write = write,
	};
	return (int)dm->nr_w++;
}

static void record_latency(struct dsm_mem *dm, uint64_t ns)
{
	uint64_t us = ns / 1000;
	unsigned b = us ? 64 - (unsigned)__builtin_clzll(us) : 0;

	if (b >= DSM_MEM_LAT_BUCKETS)
		b = DSM_MEM_LAT_BUCKETS - 1;
	dm->st.lat_hist[b]++;
	dm->st.lat_count++;
	dm->st.lat_sum_ns += ns;
	if (ns > dm->st.lat_max_ns)
		dm->st.lat_max_ns = ns;
}

/* The page was just mapped: faults it now allows are served.  A write
 * woken by a read-only mapping stays: its thread faults again. */
static void waiters_done(struct dsm_mem *dm, uint64_t page, bool writable)
{
	uint64_t now = dsm_mem__now_ns();
	unsigned k = 0;
	bool served = false;

	for (unsigned i = 0; i < dm->nr_w; i++) {
		struct dsm_mem_waiter *w = &dm->w[i];

		if (w->page == page && (!w->write || writable)) {
			record_latency(dm, now - w->t0_ns);
			if (w->parked)
				dm->nr_parked--;
			served = true;
			continue;
		}
		dm->w[k++] = *w;
	}
	dm->nr_w = k;
	/* Only access that came over the network is held: a page this node
	 * could map by itself is not contended. */
	if (served && dm->delivering)
		dsm_mem__hold_acquired(dm, page);
}

static void mapped(struct dsm_mem *dm, uint64_t page, bool writable)
{
	dsm_mem__set_bit(dm->present, page, true);
	dsm_mem__set_bit(dm->writable, page, writable);
	waiters_done(dm, page, writable);
}

/* The memfd already holds the page: set the protection, optionally
 * replacing the bytes first (writers stopped while they change), and wake. */
static int remap_present(struct dsm_mem *dm, uint64_t page, const void *data,
			 bool writable)
{
	if (data) {
		if (write_protect(dm, page, true))
			return -1;
		ssize_t n = pwrite(dm->memfd, data, DSM_PAGE_SIZE,
				   page_off(dm, page));

		if (n != DSM_PAGE_SIZE) {
			dsm_mem__fail(dm, "writing gpa 0x%llx into the memfd: "
				      "%s", (unsigned long long)gpa_of(dm, page),
				      n < 0 ? strerror(errno) : "short write");
			return -1;
		}
	}
	/* Clearing protection wakes; setting it does not. */
	if (write_protect(dm, page, !writable))
		return -1;
	if (!writable && dsm_mem__wake(dm, page))
		return -1;
	mapped(dm, page, writable);
	return 0;
}

/* Fills a hole with data (NULL: zeros), mapped read-only unless writable;
 * UFFDIO_COPY/ZEROPAGE also wake the range. */
static int fill_hole(struct dsm_mem *dm, uint64_t page, const void *data,
		     bool writable)
{
	uint64_t dst = (uint64_t)(uintptr_t)page_hva(dm, page);
	int rc;

	if (!data && writable) {
		struct uffdio_zeropage z = {
			.range = { dst, DSM_PAGE_SIZE },
		};

		rc = uffd_ioctl(dm, UFFDIO_ZEROPAGE, &z, &z.zeropage);
	} else {
		struct uffdio_copy c = {
			.dst = dst,
			.src = (uint64_t)(uintptr_t)(data ? data : zero_page),
			.len = DSM_PAGE_SIZE,
			.mode = writable ? 0 : UFFDIO_COPY_MODE_WP,
		};

		rc = uffd_ioctl(dm, UFFDIO_COPY, &c, &c.copy);
	}
	if (rc == 0) {
		mapped(dm, page, writable);
		return 0;
	}
	if (rc != -EEXIST) {
		dsm_mem__fail(dm, "%s into gpa 0x%llx: %s",
			      data ? "UFFDIO_COPY" : "zero fill",
			      (unsigned long long)gpa_of(dm, page),
			      strerror(-rc));
		return -1;
	}
	/* Something outside the DSM put the page in the memfd (the bitmap
	 * said hole): a grant's data replaces it, a local map keeps it;
	 * either way the faulters get their access and are woken. */
	dsm_mem__set_bit(dm->foreign, page, true);
	if (!dm->st.copy_eexist++)
		dsm_mem__log(dm, "gpa 0x%llx appeared in the memfd outside "
			     "the DSM", (unsigned long long)gpa_of(dm, page));
	return remap_present(dm, page, data, writable);
}

/* pread, not a load through a mapping: a hole reads as zeros without
 * being allocated in the page cache. */
static int read_page(struct dsm_mem *dm, uint64_t page, uint8_t *buf)
{
	ssize_t n = pread(dm->memfd, buf, DSM_PAGE_SIZE, page_off(dm, page));

	if (n != DSM_PAGE_SIZE) {
		dsm_mem__fail(dm, "reading gpa 0x%llx from the memfd: %s",
			      (unsigned long long)gpa_of(dm, page),
			      n < 0 ? strerror(errno) : "short read");
		return -1;
	}
	return 0;
}

static int do_install(struct dsm_mem *dm, const struct dsm_action *a)
{
	if (!a->data) {
		dsm_mem__fail(dm, "INSTALL of gpa 0x%llx without data",
			      (unsigned long long)gpa_of(dm, a->page));
		return -1;
	}
	dm->st.installs++;
	if (dsm_mem__bit(dm->present, a->page))
		return remap_present(dm, a->page, a->data, a->writable);
	return fill_hole(dm, a->page, a->data, a->writable);
}

/* The node's memory is current: a hole is a page of zeros. */
static int do_map_local(struct dsm_mem *dm, const struct dsm_action *a)
{
	dm->st.map_locals++;
	if (dsm_mem__bit(dm->present, a->page))
		return remap_present(dm, a->page, NULL, a->writable);
	return fill_hole(dm, a->page, NULL, a->writable);
}

/* zcopy: the page's bytes saved by a ZAP earlier in the list, or NULL. */
static int do_send(struct dsm_mem *dm, const struct dsm_action *a,
		   const uint8_t *zcopy)
{
	uint8_t hdr[DSM_MSG_SIZE];
	struct iovec iov[2] = { { hdr, sizeof(hdr) } };
	int cnt = 1;

	if (a->dest >= dm->cfg.nr_nodes || a->dest == dm->cfg.self) {
		dsm_mem__fail(dm, "core asked to send %s to node %u",
			      dsm_msg__type_name(a->msg.type), a->dest);
		return -1;
	}
	dsm_msg__encode(&a->msg, hdr);
	if (a->attach) {
		if (!zcopy && read_page(dm, a->page, dm->buf))
			return -1;
		iov[1] = (struct iovec){ (void *)(zcopy ? zcopy : dm->buf),
					 DSM_PAGE_SIZE };
		cnt = 2;
	}
	if (dm->cfg.send(dm->cfg.ctx, a->dest, a->msg.type, iov, cnt) < 0) {
		dsm_mem__fail(dm, "sending %s for gpa 0x%llx to node %u failed",
			      dsm_msg__type_name(a->msg.type),
			      (unsigned long long)gpa_of(dm, a->page), a->dest);
		return -1;
	}
	dm->st.msgs_sent++;
	dm->st.bytes_sent += DSM_MSG_SIZE + (a->attach ? DSM_PAGE_SIZE : 0);
	dm->st.pages_sent += a->attach;
	return 0;
}

static int punch(struct dsm_mem *dm, uint64_t page)
{
	if (fallocate(dm->memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
		      page_off(dm, page), DSM_PAGE_SIZE) < 0) {
		dsm_mem__fail(dm, "punching gpa 0x%llx out of the memfd: %s",
			      (unsigned long long)gpa_of(dm, page),
			      strerror(errno));
		return -1;
	}
	/* A 4 KiB piece of a huge shmem folio that cannot be split is only
	 * zeroed and stays in the page cache, where it would be mapped
	 * without a fault: refuse to go on incoherently.  Only pages that
	 * came in from outside can be huge (UFFDIO_COPY and ZEROPAGE put
	 * small pages into shmem), so only they pay for the check. */
	if (dsm_mem__bit(dm->foreign, page) &&
	    lseek(dm->memfd, page_off(dm, page), SEEK_DATA) ==
		    page_off(dm, page)) {
		dsm_mem__fail(dm, "gpa 0x%llx is still in the memfd after "
			      "PUNCH_HOLE (huge page? disable shmem THP)",
			      (unsigned long long)gpa_of(dm, page));
		return -1;
	}
	dsm_mem__set_bit(dm->present, page, false);
	dsm_mem__set_bit(dm->writable, page, false);
	dsm_mem__set_bit(dm->foreign, page, false);
	dm->st.invalidations++;
	dm->translations_stale = true;
	return 0;
}

/* Before a message leaves (it may let another node go on and tell this
 * one's vCPUs), nothing here may still translate through bytes punched
 * out: see dsm_mem_config.drop_translations. */
static void drop_stale_translations(struct dsm_mem *dm)
{
	if (!dm->translations_stale || !dm->cfg.drop_translations)
		return;
	dm->translations_stale = false;
	dm->st.translation_drops++;
	dm->cfg.drop_translations(dm->cfg.ctx);
}

static bool later_send_needs(const struct dsm_actions *acts, unsigned i,
			     uint64_t page)
{
	for (unsigned k = i + 1; k < acts->n; k++) {
		const struct dsm_action *a = &acts->a[k];

		if (a->page != page)
			continue;
		if (a->type == DSM_ACT_SEND && a->attach)
			return true;
		if (a->type == DSM_ACT_INSTALL || a->type == DSM_ACT_ZAP ||
		    a->type == DSM_ACT_MAP_LOCAL)
			return false;
	}
	return false;
}

/* The page leaves this node before any SEND of the list goes out: a SEND
 * lets another node proceed (an INV_ACK completes a write elsewhere), and
 * that node may then tell this one's vCPUs by another path (an IPI), so a
 * still-mapped stale copy here would be observable.  Writers are stopped
 * first and the bytes the SENDs need are saved, then the hole is punched. */
static int do_zap(struct dsm_mem *dm, const struct dsm_actions *acts,
		  unsigned i, uint8_t **zcopy, uint64_t *zpage)
{
	uint64_t page = acts->a[i].page;

	if (dsm_mem__bit(dm->writable, page) && write_protect(dm, page, true))
		return -1;
	*zcopy = NULL;
	*zpage = page;
	if (later_send_needs(acts, i, page)) {
		if (read_page(dm, page, dm->zbuf))
			return -1;
		*zcopy = dm->zbuf;
	}
	return punch(dm, page);
}

int dsm_mem__exec(struct dsm_mem *dm, const struct dsm_actions *acts)
{
	uint64_t zpage = DSM_MEM_NO_PAGE;
	uint8_t *zcopy = NULL;
	int rc = 0;

	for (unsigned i = 0; i < acts->n && !rc; i++) {
		const struct dsm_action *a = &acts->a[i];

		if (a->page >= dm->nr_pages) {
			dsm_mem__fail(dm, "core action %s for page %llu of %llu",
				      dsm__action_name(a->type),
				      (unsigned long long)a->page,
				      (unsigned long long)dm->nr_pages);
			return -1;
		}
		switch (a->type) {
		case DSM_ACT_SEND:
			drop_stale_translations(dm);
			rc = do_send(dm, a, a->page == zpage ? zcopy : NULL);
			break;
		case DSM_ACT_INSTALL:
			if (a->page == zpage)
				zpage = DSM_MEM_NO_PAGE;
			rc = do_install(dm, a);
			break;
		case DSM_ACT_MAP_LOCAL:
			if (a->page == zpage)
				zpage = DSM_MEM_NO_PAGE;
			rc = do_map_local(dm, a);
			break;
		case DSM_ACT_WRITE_PROTECT:
			dsm_mem__hold_lost(dm, a->page);
			if (dsm_mem__bit(dm->present, a->page))
				rc = write_protect(dm, a->page, true);
			break;
		case DSM_ACT_ZAP:
			dsm_mem__hold_lost(dm, a->page);
			rc = do_zap(dm, acts, i, &zcopy, &zpage);
			break;
		default:
			dsm_mem__fail(dm, "unknown core action %u", a->type);
			return -1;
		}
	}
	drop_stale_translations(dm);
	return rc;
}
