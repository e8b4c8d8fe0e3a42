/* Restoring a snapshot, on any number of nodes: the launcher verifies the
 * whole directory first (nothing starts from a damaged snapshot); then
 * every node, while its machine is built, reads from every page file the
 * pages it homes under the new layout - before the DSM exists, so they
 * simply become Modified at their home - and, once its DSM runs, loads the
 * vCPUs it now runs; node 0 loads the devices last. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "vcpu/vcpu.h"
#include "vcpu/vcpu_blob.h"
#include "vmm/ckpt_priv.h"
#include "vmm/errf.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/state_blob.h"

#define READ_CHUNK (8u << 20)
/* A cpus file holds at most 64 vCPU blobs of a few KiB (XSAVE). */
#define STATE_FILE_MAX (64u << 20)

bool ckpt__is_snapshot(const char *path)
{
	struct stat st;

	return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

static void join(char *out, size_t len, const char *dir, const char *name)
{
	snprintf(out, len, "%s/%s", dir, name);
}

int ckpt__read_manifest(const char *dir, struct ckpt_manifest *m, char *err,
			size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2], e[300];
	uint8_t *buf = NULL;
	size_t len = 0;
	int rc;

	join(path, sizeof(path), dir, CKPT_MANIFEST_NAME);
	if (access(path, F_OK) < 0) {
		errf(err, errlen, "%s: not a snapshot (no %s: %s)", dir,
		     CKPT_MANIFEST_NAME, strerror(errno));
		return -1;
	}
	if (state_blob__read_file(path, &buf, &len, CKPT_MANIFEST_MAX, e,
				  sizeof(e)) < 0) {
		errf(err, errlen, "%s", e);
		return -1;
	}
	rc = ckpt_manifest__decode(m, (const char *)buf, len, e, sizeof(e));
	if (rc < 0)
		errf(err, errlen, "%s: %s", dir, e);
	free(buf);
	return rc;
}

/* RAM regions of a VM of ram_bytes, as guest_mem lays them out. */
static void ram_of(uint64_t ram_bytes, struct ckpt_ram *r)
{
	uint64_t low = ram_bytes < GUEST_PCI_HOLE_START ? ram_bytes :
							  GUEST_PCI_HOLE_START;

	memset(r, 0, sizeof(*r));
	r->r[0].gpa = 0;
	r->r[0].size = low;
	r->nr = 1;
	if (ram_bytes > low) {
		r->r[1].gpa = GUEST_HIGH_RAM_START;
		r->r[1].size = ram_bytes - low;
		r->nr = 2;
	}
}

struct page_file {
	int fd;
	struct ckpt_pages_header h;
	struct ckpt_run *runs;
};

static void page_file_close(struct page_file *pf)
{
	if (pf->fd >= 0)
		close(pf->fd);
	free(pf->runs);
	pf->fd = -1;
	pf->runs = NULL;
}

static int read_full(int fd, void *buf, size_t len, off_t off)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = pread(fd, p, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

/* Opens a page file and checks its header and index. */
static int page_file_open(const char *dir, const struct ckpt_file *f,
			  const struct ckpt_ram *ram, struct page_file *pf,
			  char *err, size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2], e[256];
	uint8_t block[CKPT_PAGES_HEADER_SIZE], *idx = NULL;
	struct stat st;
	uint64_t ilen;

	pf->runs = NULL;
	join(path, sizeof(path), dir, f->name);
	pf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (pf->fd < 0 || fstat(pf->fd, &st) < 0) {
		errf(err, errlen, "%s: %s", path, strerror(errno));
		goto fail;
	}
	if (read_full(pf->fd, block, sizeof(block), 0) < 0) {
		errf(err, errlen, "%s: truncated", path);
		goto fail;
	}
	if (ckpt_pages__decode_header(&pf->h, block, (uint64_t)st.st_size, e,
				      sizeof(e)) < 0)
		goto bad;
	if (pf->h.nr_pages != f->pages || pf->h.node != f->node) {
		snprintf(e, sizeof(e), "holds %llu pages of node %u, the "
			 "manifest says %llu of node %u",
			 (unsigned long long)pf->h.nr_pages, pf->h.node,
			 (unsigned long long)f->pages, f->node);
		goto bad;
	}
	ilen = pf->h.data_off - CKPT_PAGES_HEADER_SIZE;
	idx = malloc(ilen ? ilen : 1);
	pf->runs = calloc(pf->h.nr_runs ? pf->h.nr_runs : 1,
			  sizeof(*pf->runs));
	if (!idx || !pf->runs) {
		errf(err, errlen, "%s: out of memory", path);
		goto fail;
	}
	if (read_full(pf->fd, idx, ilen, CKPT_PAGES_HEADER_SIZE) < 0) {
		errf(err, errlen, "%s: truncated", path);
		goto fail;
	}
	if (ckpt_pages__decode_index(&pf->h, idx, ram, pf->runs, e,
				     sizeof(e)) < 0)
		goto bad;
	free(idx);
	return 0;
bad:
	errf(err, errlen, "%s: %s", path, e);
fail:
	free(idx);
	page_file_close(pf);
	return -1;
}

/* ---- verification (the launcher, before anything starts) ---- */

static int check_file(const char *dir, const struct ckpt_file *f,
		      uint8_t *buf, char *err, size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2];
	uint64_t crc = 0, got = 0;
	struct stat st;
	int fd;

	join(path, sizeof(path), dir, f->name);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		errf(err, errlen, "%s: missing (%s)", path, strerror(errno));
		if (fd >= 0)
			close(fd);
		return -1;
	}
	if ((uint64_t)st.st_size != f->size) {
		errf(err, errlen, "%s: %llu bytes, the manifest says %llu "
		     "(truncated or damaged)", path,
		     (unsigned long long)st.st_size,
		     (unsigned long long)f->size);
		close(fd);
		return -1;
	}
	for (;;) {
		ssize_t n = read(fd, buf, READ_CHUNK);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			errf(err, errlen, "%s: %s", path, strerror(errno));
			close(fd);
			return -1;
		}
		if (!n)
			break;
		crc = ckpt__crc64(crc, buf, (size_t)n);
		got += (uint64_t)n;
	}
	close(fd);
	if (got != f->size || crc != f->crc) {
		errf(err, errlen, "%s: checksum mismatch (the file is damaged)",
		     path);
		return -1;
	}
	return 0;
}

int ckpt__verify(const char *dir, struct ckpt_manifest *m, char *err,
		 size_t errlen)
{
	struct ckpt_ram ram;
	uint8_t *buf;
	int rc = -1;

	if (!ckpt__is_snapshot(dir)) {
		errf(err, errlen, "%s: not a snapshot directory", dir);
		return -1;
	}
	if (ckpt__read_manifest(dir, m, err, errlen) < 0)
		return -1;
	buf = malloc(READ_CHUNK);
	if (!buf) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	ram_of(m->ram_mib << 20, &ram);
	for (uint32_t i = 0; i < m->nr_files; i++) {
		const struct ckpt_file *f = &m->files[i];

		if (check_file(dir, f, buf, err, errlen) < 0)
			goto out;
		if (f->kind == CKPT_FILE_PAGES) {
			struct page_file pf;

			if (page_file_open(dir, f, &ram, &pf, err, errlen) < 0)
				goto out;
			page_file_close(&pf);
		}
	}
	for (uint32_t i = 0; i < m->nr_drives; i++)
		if (ckpt_disk__check(&m->drives[i], err, errlen) < 0)
			goto out;
	rc = 0;
out:
	free(buf);
	return rc;
}

/* ---- a node's share ---- */

static int read_state(const char *dir, const char *name, uint8_t **blob,
		      size_t *len, struct state_reader **r, char *err,
		      size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2];

	join(path, sizeof(path), dir, name);
	*blob = NULL;
	*r = NULL;
	if (state_blob__read_file(path, blob, len, STATE_FILE_MAX, err,
				  errlen) < 0)
		return -1;
	if (state_reader__open(r, *blob, *len, err, errlen) < 0) {
		free(*blob);
		*blob = NULL;
		return -1;
	}
	return 0;
}

/* The pages of runs that land in [lo, hi), read into guest RAM. */
static int load_range(struct machine *m, struct page_file *pf,
		      uint64_t lo, uint64_t hi, char *err, size_t errlen)
{
	uint64_t off = pf->h.data_off;

	for (uint32_t i = 0; i < pf->h.nr_runs; i++) {
		const struct ckpt_run *r = &pf->runs[i];
		uint64_t a = r->gpa, b = r->gpa + r->pages * CKPT_PAGE_SIZE;
		uint64_t from = a > lo ? a : lo, to = b < hi ? b : hi;

		for (uint64_t g = from; g < to;) {
			uint64_t n = to - g < READ_CHUNK ? to - g : READ_CHUNK;
			void *dst = guest_mem__ptr(&m->mem, g, n);

			if (!dst || read_full(pf->fd, dst, (size_t)n,
					      (off_t)(off + g - a)) < 0) {
				errf(err, errlen, "reading pages of node %u at "
				     "0x%llx: %s", pf->h.node,
				     (unsigned long long)g,
				     dst ? strerror(errno ? errno : EIO) :
					   "outside RAM");
				return -1;
			}
			g += n;
		}
		off += r->pages * CKPT_PAGE_SIZE;
	}
	return 0;
}

static int load_pages(struct machine *m, const char *dir,
		      const struct ckpt_manifest *mf, char *err,
		      size_t errlen)
{
	struct numa_range homes[NUMA_MAX_RANGES];
	unsigned nr = 0;
	struct ckpt_ram ram;

	ram_of(m->mem.ram_size, &ram);
	if (m->cluster) {
		nr = numa_layout__node_ranges(&m->layout, m->node_self, homes,
					      NUMA_MAX_RANGES);
	} else {
		for (int i = 0; i < m->mem.nr_regions; i++)
			homes[nr++] = (struct numa_range){
				.gpa = m->mem.region[i].gpa,
				.size = m->mem.region[i].size };
	}
	for (uint32_t i = 0; i < mf->nr_files; i++) {
		struct page_file pf;
		int rc = 0;

		if (mf->files[i].kind != CKPT_FILE_PAGES)
			continue;
		if (page_file_open(dir, &mf->files[i], &ram, &pf, err,
				   errlen) < 0)
			return -1;
		for (unsigned k = 0; k < nr && !rc; k++)
			rc = load_range(m, &pf, homes[k].gpa,
					homes[k].gpa + homes[k].size, err,
					errlen);
		page_file_close(&pf);
		if (rc)
			return -1;
	}
	return 0;
}

static int check_shape(struct machine *m, const char *dir,
		       const struct ckpt_manifest *mf, char *err,
		       size_t errlen)
{
	if (mf->nr_vcpus != m->nr_vcpus || (mf->ram_mib << 20) != m->mem.ram_size) {
		errf(err, errlen, "%s holds a VM with %u vCPUs and %llu MiB; "
		     "this VM has %u vCPUs and %llu MiB", dir, mf->nr_vcpus,
		     (unsigned long long)mf->ram_mib, m->nr_vcpus,
		     (unsigned long long)(m->mem.ram_size >> 20));
		return -1;
	}
	return 0;
}

/* The guest-specific choices node 0 made when the guest booted. */
static int load_machine_facts(struct machine *m, const char *dir, char *err,
			      size_t errlen)
{
	struct ckpt_machine_state ms;
	struct state_reader *r;
	uint8_t *blob;
	size_t len;
	int rc;

	if (read_state(dir, "devices.state", &blob, &len, &r, err, errlen) < 0)
		return -1;
	rc = state_reader__get(r, CKPT_MACHINE_SECTION, CKPT_MACHINE_VERSION,
			       &ms, sizeof(ms), err, errlen);
	if (rc == 0 && m->pvm_profile) {
		m->timer_min_gap_ns = ms.timer_min_gap_ns;
		m->syscall_fix = ms.syscall_fix != 0;
	}
	state_reader__free(r);
	free(blob);
	return rc;
}

int ckpt__restore_cpuid(struct machine *m, const char *dir, char *err,
			size_t errlen)
{
	struct ckpt_machine_state ms;
	struct state_reader *r;
	struct kvm_cpuid2 *c = NULL;
	const void *data;
	uint32_t ver;
	uint8_t *blob;
	size_t len;
	int rc = -1;

	if (read_state(dir, "devices.state", &blob, &len, &r, err, errlen) < 0)
		return -1;
	if (state_reader__get(r, CKPT_MACHINE_SECTION, CKPT_MACHINE_VERSION,
			      &ms, sizeof(ms), err, errlen) < 0)
		goto out;
	if (!ms.nr_cpuid) {
		rc = 0;		/* none saved: keep this host's */
		goto out;
	}
	if (ms.nr_cpuid > 4096 ||
	    state_reader__get_raw(r, CKPT_CPUID_SECTION, &ver, &data, &len) < 0 ||
	    ver != CKPT_CPUID_VERSION ||
	    len != ms.nr_cpuid * sizeof(c->entries[0])) {
		errf(err, errlen, "%s/devices.state: the CPUID table is missing "
		     "or damaged", dir);
		goto out;
	}
	c = malloc(sizeof(*c) + len);
	if (!c) {
		errf(err, errlen, "out of memory");
		goto out;
	}
	memset(c, 0, sizeof(*c));
	c->nent = ms.nr_cpuid;
	memcpy(c->entries, data, len);
	/* The guest decided what to use from the CPUID it booted with. */
	free(m->cpuid);
	m->cpuid = NULL;
	rc = machine__adopt_cpuid(m, c, err, errlen) ? -1 : 0;
out:
	free(c);
	state_reader__free(r);
	free(blob);
	return rc;
}

int ckpt__restore_memory(struct machine *m, const char *dir, char *err,
			 size_t errlen)
{
	struct ckpt_manifest *mf = malloc(sizeof(*mf));
	int rc = -1;

	if (!mf) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (ckpt__read_manifest(dir, mf, err, errlen) < 0 ||
	    check_shape(m, dir, mf, err, errlen) < 0)
		goto out;
	if (m->node_self == 0 && load_machine_facts(m, dir, err, errlen) < 0)
		goto out;
	rc = load_pages(m, dir, mf, err, errlen);
out:
	free(mf);
	return rc;
}

/* A host whose KVM cannot set the guest TSC (PVM: the guest's TSC is the
 * host's) resumes the guest with the time since the checkpoint already
 * passed: Linux then reports RCU stalls and soft lockups, and the guest's
 * own timeouts may fire.  Say so once, with the size of the jump. */
static void note_tsc_jump(struct machine *m, unsigned i,
			  const struct vcpu_blob_extra *x, bool *told)
{
	uint64_t now = vcpu__guest_tsc(m->vcpus[i]);

	if (*told || !m->tsc_hz || now <= x->guest_tsc ||
	    now - x->guest_tsc < m->tsc_hz)
		return;
	*told = true;
	machine__log(m, "this host cannot set the guest TSC back (PVM?): the "
		     "guest sees %.1f s pass since its checkpoint",
		     (double)(now - x->guest_tsc) / (double)m->tsc_hz);
}

int ckpt__restore_cpus(struct machine *m, const char *dir, char *err,
		       size_t errlen)
{
	struct ckpt_manifest *mf = malloc(sizeof(*mf));
	uint8_t *blob[VM_MAX_NODES] = { 0 };
	struct state_reader *r[VM_MAX_NODES] = { 0 };
	struct vcpu_blob_extra x;
	bool told = false;
	int rc = -1;

	if (!mf) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (ckpt__read_manifest(dir, mf, err, errlen) < 0 ||
	    check_shape(m, dir, mf, err, errlen) < 0)
		goto out;
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		unsigned n = mf->vcpu_node[i];
		char sec[STATE_SECTION_NAME_MAX + 1], name[CKPT_NAME_MAX];
		const void *data;
		uint32_t ver;
		size_t len, blen;

		/* Only the vCPUs this node runs now; it holds the others
		 * for vCPU migration. */
		if (!m->vcpus[i] || !machine__vcpu_is_local(m, i))
			continue;
		if (!r[n]) {
			ckpt__file_name(name, CKPT_FILE_CPUS, n);
			if (read_state(dir, name, &blob[n], &blen, &r[n], err,
				       errlen) < 0)
				goto out;
		}
		snprintf(sec, sizeof(sec), "vcpu%u", i);
		if (state_reader__get_raw(r[n], sec, &ver, &data, &len) < 0 ||
		    ver != VCPU_BLOB_VERSION) {
			errf(err, errlen, "%s: cpus-%u.state lacks vCPU %u", dir,
			     n, i);
			goto out;
		}
		/* The guest's time stood still while it was saved. */
		if (vcpu_blob__load(m->vcpus[i], data, len,
				    VCPU_BLOB_TSC_SAVED, &x, err, errlen) < 0)
			goto out;
		note_tsc_jump(m, i, &x, &told);
	}
	rc = 0;
out:
	for (unsigned n = 0; n < VM_MAX_NODES; n++) {
		state_reader__free(r[n]);
		free(blob[n]);
	}
	free(mf);
	return rc;
}

int ckpt__restore_devices(struct machine *m, const char *dir, char *err,
			  size_t errlen)
{
	struct state_reader *r;
	uint8_t *blob;
	size_t len;
	int rc;

	if (read_state(dir, "devices.state", &blob, &len, &r, err, errlen) < 0)
		return -1;
	rc = machine__load_devices(m, r, err, errlen);
	state_reader__free(r);
	free(blob);
	return rc;
}
