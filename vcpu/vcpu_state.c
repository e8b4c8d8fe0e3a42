/* A parked vCPU's state to and from a state blob. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/vcpu.h"
#include "vmm/machine.h"
#include "vmm/state_blob.h"

#define XSAVE_SECTION_VERSION 1

int vcpu__save(struct vcpu *v, struct state_writer *w, char *err,
	       size_t errlen)
{
	struct cpu_state st;
	struct lapic_state ls;
	char name[STATE_SECTION_NAME_MAX + 1];
	size_t xs = (size_t)v->m->xsave_size;
	void *xbuf;

	if (cpu_state__get(v->fd, &v->m->msrs, &st, err, errlen) < 0)
		return -1;
	st.run_state = (uint32_t)v->state;
	snprintf(name, sizeof(name), "vcpu%u", v->index);
	if (state_writer__add(w, name, CPU_STATE_VERSION, &st, sizeof(st)) < 0)
		goto nomem;
	xbuf = calloc(1, xs);
	if (!xbuf)
		goto nomem;
	if (cpu_state__get_xsave(v->fd, xbuf, xs) < 0) {
		free(xbuf);
		snprintf(err, errlen, "vCPU %u: reading XSAVE state failed",
			 v->index);
		return -1;
	}
	snprintf(name, sizeof(name), "vcpu%u.xsave", v->index);
	if (state_writer__add(w, name, XSAVE_SECTION_VERSION, xbuf, xs) < 0) {
		free(xbuf);
		goto nomem;
	}
	free(xbuf);
	pthread_mutex_lock(&v->lapic.lock);
	ls = v->lapic.s;
	pthread_mutex_unlock(&v->lapic.lock);
	snprintf(name, sizeof(name), "lapic%u", v->index);
	if (state_writer__add(w, name, LAPIC_STATE_VERSION, &ls, sizeof(ls)) < 0)
		goto nomem;
	return 0;
nomem:
	snprintf(err, errlen, "saving vCPU %u: out of memory", v->index);
	return -1;
}

/* Version 1 is version 2 without PV EOI (which then stays off). */
static int load_lapic_state(struct state_reader *r, const char *name,
			    struct lapic_state *ls, char *err, size_t errlen)
{
	const void *data;
	size_t len;
	uint32_t ver;

	if (state_reader__get_raw(r, name, &ver, &data, &len) == 0 &&
	    ver == 1 && len == LAPIC_STATE_V1_SIZE) {
		memset(ls, 0, sizeof(*ls));
		memcpy(ls, data, len);
		return 0;
	}
	return state_reader__get(r, name, LAPIC_STATE_VERSION, ls, sizeof(*ls),
				 err, errlen);
}

int vcpu__load(struct vcpu *v, struct state_reader *r, char *err,
	       size_t errlen)
{
	struct cpu_state st;
	struct lapic_state ls;
	char name[STATE_SECTION_NAME_MAX + 1];
	const void *xdata;
	size_t xlen;
	uint32_t xver;

	snprintf(name, sizeof(name), "vcpu%u", v->index);
	if (state_reader__get(r, name, CPU_STATE_VERSION, &st, sizeof(st), err,
			      errlen) < 0)
		return -1;
	if (st.run_state > VCPU_STATE_HALTED || st.nr_msrs > CPU_STATE_MAX_MSRS) {
		snprintf(err, errlen, "state section '%s' is inconsistent", name);
		return -1;
	}
	snprintf(name, sizeof(name), "lapic%u", v->index);
	if (load_lapic_state(r, name, &ls, err, errlen) < 0)
		return -1;
	snprintf(name, sizeof(name), "vcpu%u.xsave", v->index);
	if (state_reader__get_raw(r, name, &xver, &xdata, &xlen) < 0 ||
	    xver != XSAVE_SECTION_VERSION ||
	    xlen != (size_t)v->m->xsave_size) {
		snprintf(err, errlen,
			 "state section '%s' is missing or has the wrong size "
			 "(saved on a host with another XSAVE layout?)", name);
		return -1;
	}
	if (cpu_state__set(v->fd, &st, err, errlen) < 0)
		return -1;
	if (cpu_state__set_xsave(v->fd, xdata, xlen) < 0) {
		snprintf(err, errlen, "vCPU %u: loading XSAVE state failed",
			 v->index);
		return -1;
	}
	v->state = (enum vcpu_run_state)st.run_state;
	v->halt_if = (st.regs.rflags >> 9) & 1;
	v->maybe_held = true; /* the events may carry an injected interrupt */
	v->pv_eoi_armed_flag = NULL;
	v->pv_eoi_msr_seen = 0; /* look the PV-EOI address up again */
	v->pv_eoi_flag = NULL;
	pthread_mutex_lock(&v->lapic.lock);
	v->lapic.s = ls;
	pthread_mutex_unlock(&v->lapic.lock);
	return 0;
}
