/* Writing a node's snapshot files: its vCPUs as a state blob and the guest
 * pages it is responsible for as a page file, read from the RAM memfd with
 * pread (never through the guest mapping, which would fault into the DSM)
 * and written in large sequential chunks, CRC-64 on the way. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vcpu/vcpu.h"
#include "vcpu/vcpu_blob.h"
#include "vmm/ckpt_priv.h"
#include "vmm/errf.h"
#include "vmm/file_io.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/state_blob.h"
#include "vmm/vtimer.h"

/* Big enough to stream at disk speed, small enough to stay in cache. */
#define CHUNK (2u << 20)

static int open_new(const char *dir, const char *name, char *err,
		    size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2];
	int fd;

	snprintf(path, sizeof(path), "%s/%s", dir, name);
	fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		errf(err, errlen, "%s: %s", path, strerror(errno));
	return fd;
}

static int finish(int fd, const char *name, char *err, size_t errlen)
{
	int e = file_io__sync_close(fd);

	if (e)
		errf(err, errlen, "%s: %s", name, strerror(e));
	return e ? -1 : 0;
}

int ckpt_write__file(const char *dir, const char *name, const void *buf,
		     size_t len, uint64_t *crc, char *err, size_t errlen)
{
	int fd = open_new(dir, name, err, errlen);

	if (fd < 0)
		return -1;
	if (file_io__write_all(fd, buf, len) < 0) {
		errf(err, errlen, "%s: %s", name, strerror(errno));
		close(fd);
		return -1;
	}
	*crc = ckpt__crc64(0, buf, len);
	return finish(fd, name, err, errlen);
}

/* ---- vCPUs ---- */

static int write_cpus(struct ckpt_node *c, const char *dir,
		      struct ckpt_written *w)
{
	struct machine *m = c->m;
	struct state_writer *sw;
	struct ckpt_node_state ns = { .node = m->node_self,
				      .nr_vcpus = m->nr_local_vcpus };
	char name[CKPT_NAME_MAX];
	uint8_t *blob = NULL;
	size_t len = 0;
	int rc = -1;

	if (!m->nr_local_vcpus)
		return 0;
	sw = state_writer__new();
	if (!sw) {
		errf(w->why, sizeof(w->why), "out of memory");
		return -1;
	}
	/* The vCPUs are parked: their state stands still. */
	ns.now_ns = vclock__now_ns();
	if (state_writer__add(sw, CKPT_NODE_SECTION, CKPT_NODE_VERSION, &ns,
			      sizeof(ns)) < 0)
		goto nomem;
	/* Each vCPU as vcpu_blob's self-contained blob (the format vCPU
	 * migration moves), one section per vCPU. */
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		uint8_t *vb;
		size_t vl;
		char sec[STATE_SECTION_NAME_MAX + 1];
		int r;

		/* Every node holds every vCPU; it runs those not held
		 * (vCPU migration moves them, vmm/migrate.h). */
		if (!m->vcpus[i] || atomic_load(&m->vcpus[i]->held))
			continue;
		if (vcpu_blob__save(m->vcpus[i], &vb, &vl, w->why,
				    sizeof(w->why)) < 0)
			goto out;
		snprintf(sec, sizeof(sec), "vcpu%u", i);
		r = state_writer__add(sw, sec, VCPU_BLOB_VERSION, vb, vl);
		w->vcpus |= 1ull << i;
		free(vb);
		if (r < 0)
			goto nomem;
	}
	if (state_writer__finish(sw, &blob, &len) < 0)
		goto nomem;
	ckpt__file_name(name, CKPT_FILE_CPUS, m->node_self);
	rc = ckpt_write__file(dir, name, blob, len, &w->cpus_crc, w->why,
			      sizeof(w->why));
	w->cpus_size = len;
	goto out;
nomem:
	errf(w->why, sizeof(w->why), "saving the vCPUs: out of memory");
out:
	free(blob);
	state_writer__free(sw);
	return rc;
}

/* ---- pages ---- */

struct runs {
	struct ckpt_run *r;
	uint32_t n, cap;
	uint64_t pages;
};

static int add_page(struct runs *rs, uint64_t gpa)
{
	struct ckpt_run *last = rs->n ? &rs->r[rs->n - 1] : NULL;

	rs->pages++;
	if (last && last->gpa + last->pages * CKPT_PAGE_SIZE == gpa) {
		last->pages++;
		return 0;
	}
	if (rs->n == rs->cap) {
		uint32_t cap = rs->cap ? rs->cap * 2 : 1024;
		struct ckpt_run *n = realloc(rs->r, cap * sizeof(*n));

		if (!n)
			return -1;
		rs->r = n;
		rs->cap = cap;
	}
	rs->r[rs->n++] = (struct ckpt_run){ gpa, 1 };
	return 0;
}

/* The pages to write: present in the memfd (touched) and this node's to
 * write (owned: bit per dense page; NULL = all, a single node). */
static int collect(const struct guest_mem *mem, const uint64_t *owned,
		   struct runs *rs)
{
	uint64_t first = 0;

	for (int i = 0; i < mem->nr_regions; i++) {
		const struct guest_mem_region *g = &mem->region[i];
		off_t end = (off_t)(g->memfd_offset + g->size);
		off_t off = (off_t)g->memfd_offset;

		while (off < end) {
			off_t d = lseek(mem->memfd, off, SEEK_DATA), h;

			if (d < 0 && errno == ENXIO)
				break;
			if (d < 0)
				return -1;
			if (d >= end)
				break;
			h = lseek(mem->memfd, d, SEEK_HOLE);
			if (h < 0 || h > end)
				h = end;
			d &= ~(off_t)(CKPT_PAGE_SIZE - 1);
			for (off_t o = d; o < h; o += CKPT_PAGE_SIZE) {
				uint64_t rel = (uint64_t)o - g->memfd_offset;
				uint64_t p = first + rel / CKPT_PAGE_SIZE;

				if (owned && !(owned[p / 64] >> (p % 64) & 1))
					continue;
				if (add_page(rs, g->gpa + rel) < 0)
					return -1;
			}
			off = h;
		}
		first += g->size / CKPT_PAGE_SIZE;
	}
	return 0;
}

static off_t memfd_off(const struct guest_mem *mem, uint64_t gpa)
{
	for (int i = 0; i < mem->nr_regions; i++)
		if (gpa >= mem->region[i].gpa &&
		    gpa - mem->region[i].gpa < mem->region[i].size)
			return (off_t)(mem->region[i].memfd_offset + gpa -
				       mem->region[i].gpa);
	return -1;
}

static int write_data(int fd, const struct guest_mem *mem,
		      const struct runs *rs, uint8_t *buf, uint64_t *crc,
		      char *err, size_t errlen)
{
	for (uint32_t i = 0; i < rs->n; i++) {
		uint64_t gpa = rs->r[i].gpa;
		uint64_t left = rs->r[i].pages * CKPT_PAGE_SIZE;

		while (left) {
			size_t n = left < CHUNK ? (size_t)left : CHUNK;
			ssize_t got = pread(mem->memfd, buf, n,
					    memfd_off(mem, gpa));

			if (got != (ssize_t)n) {
				errf(err, errlen, "reading guest RAM at 0x%llx: "
				     "%s", (unsigned long long)gpa,
				     got < 0 ? strerror(errno) : "short read");
				return -1;
			}
			*crc = ckpt__crc64(*crc, buf, n);
			if (file_io__write_all(fd, buf, n) < 0) {
				errf(err, errlen, "writing pages: %s",
				     strerror(errno));
				return -1;
			}
			gpa += n;
			left -= n;
		}
	}
	return 0;
}

/* Tests only (t_checkpoint.sh kills a checkpoint midway): every writer
 * stalls KRG_CKPT_TEST_STALL_MS between its page file's index and data. */
static void test_stall(void)
{
	const char *v = getenv("KRG_CKPT_TEST_STALL_MS");
	long ms = v ? strtol(v, NULL, 10) : 0;

	if (ms > 0 && ms <= 60000) {
		struct timespec ts = { ms / 1000, (ms % 1000) * 1000000L };

		nanosleep(&ts, NULL);
	}
}

static int write_pages(struct ckpt_node *c, const char *dir,
		       struct ckpt_written *w)
{
	struct machine *m = c->m;
	uint64_t nr_pages = m->mem.ram_size / CKPT_PAGE_SIZE;
	uint64_t *owned = NULL;
	struct runs rs = { 0 };
	struct ckpt_pages_header h = { .version = CKPT_PAGES_VERSION,
				       .page_size = CKPT_PAGE_SIZE,
				       .node = m->node_self };
	char name[CKPT_NAME_MAX];
	uint8_t *buf = NULL;
	size_t ilen;
	int fd = -1, rc = -1;

	if (m->dsm) {
		owned = calloc((nr_pages + 63) / 64, sizeof(*owned));
		if (!owned)
			goto nomem;
		dsm_ckpt__owned(m->dsm, owned, nr_pages);
	}
	if (collect(&m->mem, owned, &rs) < 0) {
		errf(w->why, sizeof(w->why), "listing guest RAM: %s",
		     strerror(errno ? errno : ENOMEM));
		goto out;
	}
	h.nr_runs = rs.n;
	h.nr_pages = rs.pages;
	h.data_off = ckpt_pages__data_off(rs.n);
	ilen = h.data_off - CKPT_PAGES_HEADER_SIZE;
	buf = aligned_alloc(4096, CHUNK > ilen ? CHUNK : ilen);
	if (!buf)
		goto nomem;
	ckpt_pages__encode_index(buf, rs.r, rs.n);
	h.index_crc = (uint32_t)ckpt__crc64(0, buf, ilen);
	ckpt__file_name(name, CKPT_FILE_PAGES, m->node_self);
	fd = open_new(dir, name, w->why, sizeof(w->why));
	if (fd < 0)
		goto out;
	{
		uint8_t hb[CKPT_PAGES_HEADER_SIZE];

		ckpt_pages__encode_header(hb, &h);
		w->pages_crc = ckpt__crc64(0, hb, sizeof(hb));
		w->pages_crc = ckpt__crc64(w->pages_crc, buf, ilen);
		if (file_io__write_all(fd, hb, sizeof(hb)) < 0 ||
		    file_io__write_all(fd, buf, ilen) < 0) {
			errf(w->why, sizeof(w->why), "%s: %s", name,
			     strerror(errno));
			goto out;
		}
	}
	test_stall();
	if (write_data(fd, &m->mem, &rs, buf, &w->pages_crc, w->why,
		       sizeof(w->why)) < 0)
		goto out;
	rc = finish(fd, name, w->why, sizeof(w->why));
	fd = -1;
	w->pages = rs.pages;
	w->pages_size = h.data_off + rs.pages * CKPT_PAGE_SIZE;
	goto out;
nomem:
	errf(w->why, sizeof(w->why), "writing pages: out of memory");
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	free(rs.r);
	free(owned);
	return rc;
}

int ckpt_write__node_files(struct ckpt_node *c, const char *dir,
			   struct ckpt_written *w)
{
	struct machine *m = c->m;
	struct dsm_ckpt_state after;

	memset(w, 0, sizeof(*w));
	w->status = -1;
	if (write_cpus(c, dir, w) < 0 || write_pages(c, dir, w) < 0)
		goto fail;
	/* The barrier said the memory was quiet; if any DSM traffic moved
	 * since this node's report, a page may have been written twice or
	 * not at all: refuse the snapshot rather than keep a torn one. */
	if (m->dsm) {
		dsm_ckpt__drain(m->dsm, &after);
		pthread_mutex_lock(&c->lock);
		bool moved = after.sent != c->reported.sent ||
			     after.recv != c->reported.recv ||
			     after.faults != c->reported.faults ||
			     !after.idle;
		pthread_mutex_unlock(&c->lock);
		if (moved) {
			errf(w->why, sizeof(w->why), "guest memory changed "
			     "while it was written (DSM traffic after the "
			     "barrier)");
			goto fail;
		}
	}
	w->status = 0;
	return 0;
fail:
	if (w->why[0] && strncmp(w->why, "node ", 5)) {
		char tmp[CKPT_WHY_MAX];

		snprintf(tmp, sizeof(tmp), "node %u: %.*s", m->node_self,
			 CKPT_WHY_MAX - 16, w->why);
		memcpy(w->why, tmp, sizeof(tmp));
	}
	return -1;
}

int ckpt_write__devices_blob(struct machine *m, uint8_t **blob, size_t *len,
			     char *err, size_t errlen)
{
	struct state_writer *sw = state_writer__new();
	struct ckpt_machine_state ms = {
		.nr_vcpus = m->nr_vcpus,
		.xsave_size = (uint32_t)m->xsave_size,
		.ram_size = m->mem.ram_size,
		.saved_at_ns = vclock__now_ns(),
		.tsc_hz = m->tsc_hz,
		.timer_min_gap_ns = m->timer_min_gap_ns,
		.syscall_fix = m->syscall_fix,
		.nr_cpuid = m->cpuid ? m->cpuid->nent : 0,
	};
	int rc = -1;

	*blob = NULL;
	if (!sw)
		goto nomem;
	if (state_writer__add(sw, CKPT_MACHINE_SECTION, CKPT_MACHINE_VERSION,
			      &ms, sizeof(ms)) < 0 ||
	    (ms.nr_cpuid &&
	     state_writer__add(sw, CKPT_CPUID_SECTION, CKPT_CPUID_VERSION,
			       m->cpuid->entries,
			       ms.nr_cpuid * sizeof(m->cpuid->entries[0])) < 0))
		goto nomem;
	if (machine__save_devices(m, sw, err, errlen) < 0)
		goto out;
	if (state_writer__finish(sw, blob, len) < 0)
		goto nomem;
	rc = 0;
	goto out;
nomem:
	errf(err, errlen, "saving the devices: out of memory");
out:
	state_writer__free(sw);
	return rc;
}
