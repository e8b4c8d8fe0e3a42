/* One vCPU's whole state to and from a blob (see vcpu_blob.h). */
#include "vcpu/vcpu_blob.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <x86intrin.h>

#include "vcpu/pvm_syscall.h"
#include "vcpu/vcpu.h"
#include "vmm/machine.h"
#include "vmm/state_blob.h"
#include "vmm/vtimer.h"

#define MSR_IA32_TSC 0x10u
/* KVM_VCPU_TSC_CTRL / KVM_VCPU_TSC_OFFSET (Linux 5.16) set the guest TSC
 * offset exactly, where a write of IA32_TSC goes through KVM's TSC
 * matching heuristics (a value within a second of another vCPU's is
 * snapped to that vCPU's offset). */

int vcpu_blob__save(struct vcpu *v, uint8_t **blob, size_t *len, char *err,
		    size_t errlen)
{
	struct state_writer *w = state_writer__new();
	struct cpu_state st;
	struct lapic_state ls;
	struct vcpu_blob_extra x;
	size_t xs = (size_t)v->m->xsave_size;
	uint64_t now, fired;
	void *xbuf = NULL;
	int r = -1;

	*blob = NULL;
	*len = 0;
	if (!w || !(xbuf = calloc(1, xs)))
		goto nomem;
	if (cpu_state__get(v->fd, &v->m->msrs, &st, err, errlen) < 0)
		goto out;
	if (cpu_state__get_xsave(v->fd, xbuf, xs) < 0) {
		snprintf(err, errlen, "vCPU %u: reading the XSAVE state: %s",
			 v->index, strerror(errno));
		goto out;
	}
	st.run_state = (uint32_t)v->state;
	lapic__save_state(&v->lapic, &ls);
	now = ls.save_ns;
	fired = v->lapic.timer_last_fire_ns;
	memset(&x, 0, sizeof(x));
	x.index = v->index;
	x.run_state = (uint32_t)v->state;
	x.halt_if = v->halt_if;
	x.xsave_size = (uint32_t)xs;
	x.tsc_offset = v->tsc_offset;
	x.guest_tsc = vcpu__guest_tsc(v);
	x.host_ns = now;
	x.since_fire_ns = fired && fired <= now ? now - fired : UINT64_MAX;
	if (state_writer__add(w, "cpu", CPU_STATE_VERSION, &st, sizeof(st)) ||
	    state_writer__add(w, "xsave", VCPU_BLOB_XSAVE_VERSION, xbuf, xs) ||
	    state_writer__add(w, "lapic", LAPIC_STATE_VERSION, &ls,
			      sizeof(ls)) ||
	    state_writer__add(w, "vcpu", VCPU_BLOB_VERSION, &x, sizeof(x)) ||
	    state_writer__finish(w, blob, len))
		goto nomem;
	r = 0;
	goto out;
nomem:
	snprintf(err, errlen, "vCPU %u: out of memory saving its state",
		 v->index);
out:
	free(xbuf);
	state_writer__free(w);
	return r;
}

/* Everything in the blob, checked before the vCPU is touched. */
struct parsed {
	struct cpu_state st;
	struct lapic_state ls;
	struct vcpu_blob_extra x;
	const void *xsave;
	size_t xsave_len;
};

static int parse(struct vcpu *v, struct state_reader *r, struct parsed *p,
		 char *err, size_t errlen)
{
	uint32_t ver;

	if (state_reader__get(r, "vcpu", VCPU_BLOB_VERSION, &p->x,
			      sizeof(p->x), err, errlen) < 0 ||
	    state_reader__get(r, "cpu", CPU_STATE_VERSION, &p->st,
			      sizeof(p->st), err, errlen) < 0 ||
	    state_reader__get(r, "lapic", LAPIC_STATE_VERSION, &p->ls,
			      sizeof(p->ls), err, errlen) < 0)
		return -1;
	if (p->x.index != v->index) {
		snprintf(err, errlen, "the state is vCPU %u's, not vCPU %u's",
			 p->x.index, v->index);
		return -1;
	}
	if (p->x.run_state > VCPU_STATE_HALTED ||
	    p->st.run_state != p->x.run_state || p->x.halt_if > 1 ||
	    p->st.nr_msrs > CPU_STATE_MAX_MSRS) {
		snprintf(err, errlen, "vCPU %u's state is inconsistent",
			 v->index);
		return -1;
	}
	if (state_reader__get_raw(r, "xsave", &ver, &p->xsave,
				  &p->xsave_len) < 0 ||
	    ver != VCPU_BLOB_XSAVE_VERSION ||
	    p->xsave_len != (size_t)v->m->xsave_size ||
	    p->x.xsave_size != p->xsave_len) {
		snprintf(err, errlen, "vCPU %u's XSAVE area has %zu bytes, "
			 "this host's %d (another XSAVE layout?)", v->index,
			 p->xsave_len, v->m->xsave_size);
		return -1;
	}
	return 0;
}

/* The guest TSC as it was relative to the host TSC: through KVM's exact
 * offset where it has one, else through IA32_TSC (already in the MSR
 * list).  PVM has neither (its guest TSC is the host's): nothing moves. */
static void follow_host_tsc(struct cpu_state *st, int64_t offset)
{
	for (uint32_t i = 0; i < st->nr_msrs; i++)
		if (st->msrs[i].index == MSR_IA32_TSC)
			st->msrs[i].value = (uint64_t)((int64_t)__rdtsc() +
						       offset);
}

static void set_tsc_offset(struct vcpu *v, int64_t offset)
{
	struct kvm_device_attr a = {
		.group = KVM_VCPU_TSC_CTRL,
		.attr = KVM_VCPU_TSC_OFFSET,
		.addr = (uint64_t)(uintptr_t)&offset,
	};

	if (ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &a) == 0)
		ioctl(v->fd, KVM_SET_DEVICE_ATTR, &a);
}

int vcpu_blob__load(struct vcpu *v, const uint8_t *blob, size_t len,
		    enum vcpu_blob_tsc tsc, struct vcpu_blob_extra *extra,
		    char *err, size_t errlen)
{
	struct state_reader *r = NULL;
	struct parsed *p = calloc(1, sizeof(*p));
	uint64_t now;
	int rc = -1;

	if (!p) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	if (state_reader__open(&r, blob, len, err, errlen) < 0 ||
	    parse(v, r, p, err, errlen) < 0)
		goto out;
	if (tsc == VCPU_BLOB_TSC_FOLLOW_HOST)
		follow_host_tsc(&p->st, p->x.tsc_offset);
	if (cpu_state__set(v->fd, &p->st, err, errlen) < 0)
		goto out;
	if (cpu_state__set_xsave(v->fd, p->xsave, p->xsave_len) < 0) {
		snprintf(err, errlen, "vCPU %u: loading the XSAVE state: %s",
			 v->index, strerror(errno));
		goto out;
	}
	if (tsc == VCPU_BLOB_TSC_FOLLOW_HOST)
		set_tsc_offset(v, p->x.tsc_offset);
	if (vcpu__refresh_tsc_offset(v) < 0) {
		snprintf(err, errlen, "vCPU %u: reading the guest TSC: %s",
			 v->index, strerror(errno));
		goto out;
	}
	v->state = (enum vcpu_run_state)p->x.run_state;
	v->halt_if = p->x.halt_if;
	v->maybe_held = true; /* the events may carry an injected interrupt */
	v->pv_eoi_armed_flag = NULL;
	v->pv_eoi_msr_seen = 0; /* look the PV-EOI address up again */
	v->pv_eoi_flag = NULL;
	now = vclock__now_ns();
	v->lapic.timer_last_fire_ns = p->x.since_fire_ns == UINT64_MAX ? 0 :
				p->x.since_fire_ns < now ?
					now - p->x.since_fire_ns : 1;
	/* Following the host clock, deadlines stay where they are; else
	 * post_load shifts them by the time since save_ns. */
	if (tsc == VCPU_BLOB_TSC_FOLLOW_HOST)
		p->ls.save_ns = 0;
	pthread_mutex_lock(&v->lapic.lock);
	v->lapic.s = p->ls;
	pthread_mutex_unlock(&v->lapic.lock);
	lapic__post_load(&v->lapic);
	/* Another fd's guest-debug state (PVM's syscall fix) is not this
	 * one's: place the breakpoints again. */
	v->sysfix.armed = false;
	v->sysfix.stepping = false;
	v->sysfix.gp_handler = v->sysfix.pf_handler = UINT64_MAX;
	/* Placing them reads the guest's IDT through its page tables, which
	 * in a cluster may be homed on a node not serving pages yet (a
	 * restore loads vCPUs before the other nodes start): the vCPU's own
	 * thread does it before it next enters the guest. */
	atomic_store(&v->sysfix_pending, true);
	if (extra)
		*extra = p->x;
	rc = 0;
out:
	state_reader__free(r);
	free(p);
	return rc;
}
