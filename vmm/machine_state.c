/* Whole-machine snapshots: every vCPU, LAPIC and device state section plus
 * guest RAM, in one versioned, checksummed blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/vcpu.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/state_blob.h"
#include "vmm/vtimer.h"

#define MACHINE_STATE_VERSION 1
#define RAM_SECTION_VERSION 1

struct machine_state {
	uint32_t nr_vcpus;
	uint32_t xsave_size;
	uint64_t ram_size;
	uint64_t saved_at_ns; /* host monotonic clock when saved */
	uint64_t tsc_hz;
	uint64_t timer_min_gap_ns; /* the Linux PVM measures in force */
	uint32_t syscall_fix;
	uint32_t pad;
};

int machine__save_file(struct machine *m, const char *path, char *err,
		       size_t errlen)
{
	struct state_writer *w = state_writer__new();
	struct machine_state ms = {
		.nr_vcpus = m->nr_vcpus,
		.xsave_size = (uint32_t)m->xsave_size,
		.ram_size = m->mem.ram_size,
		.saved_at_ns = vclock__now_ns(),
		.tsc_hz = m->tsc_hz,
		.timer_min_gap_ns = m->timer_min_gap_ns,
		.syscall_fix = m->syscall_fix,
	};
	uint8_t *blob = NULL;
	size_t len = 0;
	unsigned i;
	int r = -1;

	if (!w) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (state_writer__add(w, "machine", MACHINE_STATE_VERSION, &ms,
			      sizeof(ms)) < 0)
		goto nomem;
	for (i = 0; i < m->nr_vcpus; i++)
		if (vcpu__save(m->vcpus[i], w, err, errlen) < 0)
			goto out;
	if (machine__save_devices(m, w, err, errlen) < 0)
		goto out;
	if (state_writer__add(w, "ram", RAM_SECTION_VERSION, m->mem.base,
			      m->mem.ram_size) < 0 ||
	    state_writer__finish(w, &blob, &len) < 0)
		goto nomem;
	r = state_blob__write_file(path, blob, len, err, errlen);
	goto out;
nomem:
	snprintf(err, errlen, "saving state: out of memory");
out:
	free(blob);
	state_writer__free(w);
	return r;
}

/* The LAPIC timers hold host-clock deadlines: shift them by the time the
 * machine spent saved so a timer keeps its remaining time. */
static void rebase_lapic_timer(struct lapic_state *s, int64_t delta)
{
	if (s->timer_deadline_ns)
		s->timer_deadline_ns = (uint64_t)((int64_t)s->timer_deadline_ns +
						  delta);
	if (s->timer_start_ns)
		s->timer_start_ns = (uint64_t)((int64_t)s->timer_start_ns + delta);
}

int machine__load_file(struct machine *m, const char *path, char *err,
		       size_t errlen)
{
	struct state_reader *r = NULL;
	struct machine_state ms;
	uint8_t *blob = NULL;
	size_t len = 0, ram_len;
	const void *ram;
	uint32_t ver;
	int64_t delta;
	unsigned i;
	int rc = -1;

	if (state_blob__read_file(path, &blob, &len,
				  m->mem.ram_size + (64ull << 20), err,
				  errlen) < 0)
		return -1;
	if (state_reader__open(&r, blob, len, err, errlen) < 0)
		goto out;
	if (state_reader__get(r, "machine", MACHINE_STATE_VERSION, &ms,
			      sizeof(ms), err, errlen) < 0)
		goto out;
	if (ms.nr_vcpus != m->nr_vcpus || ms.ram_size != m->mem.ram_size) {
		snprintf(err, errlen,
			 "%s holds a VM with %u vCPUs and %llu MiB; this VM has "
			 "%u vCPUs and %llu MiB (use the same -smp and -m)",
			 path, ms.nr_vcpus,
			 (unsigned long long)(ms.ram_size >> 20), m->nr_vcpus,
			 (unsigned long long)(m->mem.ram_size >> 20));
		goto out;
	}
	if (state_reader__get_raw(r, "ram", &ver, &ram, &ram_len) < 0 ||
	    ver != RAM_SECTION_VERSION || ram_len != m->mem.ram_size) {
		snprintf(err, errlen, "%s: the guest RAM section is missing or "
			 "has the wrong size", path);
		goto out;
	}
	memcpy(m->mem.base, ram, ram_len);
	/* The guest-specific PVM measures follow the guest, not the files
	 * given now (a restore needs no kernel). */
	if (m->pvm_profile) {
		m->timer_min_gap_ns = ms.timer_min_gap_ns;
		m->syscall_fix = ms.syscall_fix != 0;
	}
	for (i = 0; i < m->nr_vcpus; i++)
		if (vcpu__load(m->vcpus[i], r, err, errlen) < 0)
			goto out;
	if (machine__load_devices(m, r, err, errlen) < 0)
		goto out;
	delta = (int64_t)(vclock__now_ns() - ms.saved_at_ns);
	for (i = 0; i < m->nr_vcpus; i++) {
		struct vcpu *v = m->vcpus[i];
		pthread_mutex_lock(&v->lapic.lock);
		rebase_lapic_timer(&v->lapic.s, delta);
		pthread_mutex_unlock(&v->lapic.lock);
		lapic__post_load(&v->lapic);
		vcpu__refresh_tsc_offset(v);
		pvm_syscall__arm(v);
	}
	rc = 0;
out:
	state_reader__free(r);
	free(blob);
	return rc;
}
