/* KVM could not emulate a guest instruction (PVM hosts emulate all guest
 * kernel code): complete it here when that can be done exactly, or stop
 * with a report. */
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>

#include "vcpu/emulate.h"
#include "vcpu/pagewalk.h"
#include "vcpu/vcpu.h"
#include "vcpu/vcpu_exit.h"
#include "vmm/machine.h"

/* Each mnemonic is logged this many times; the exit summary counts all. */
#define FALLBACK_LOG_FIRST 3

static int read_gpa(void *ctx, uint64_t gpa, void *buf, size_t len)
{
	return guest_mem__read(ctx, gpa, buf, len);
}

/* Without KVM's copy of the bytes, fetch them through the guest's page
 * tables; a fetch that runs into an unmapped page just gets shorter. */
static size_t fetch_insn(struct pagewalk_env *pw, uint64_t lin, uint8_t *buf)
{
	size_t n;

	for (n = EMU_MAX_INSN_LEN; n > 0; n--)
		if (pagewalk__read_virt(pw, lin, buf, n, NULL) == PAGEWALK_OK)
			return n;
	return 0;
}

static uint64_t stats_count(const struct emu_stats *s, const char *mnemonic)
{
	unsigned i;

	for (i = 0; i < s->used; i++)
		if (!strcmp(s->e[i].mnemonic, mnemonic))
			return s->e[i].completed + s->e[i].refused;
	return 0;
}

int vcpu__handle_emulation_failure(struct vcpu *v)
{
	struct machine *m = v->m;
	struct kvm_regs kregs;
	struct kvm_sregs sregs;
	struct kvm_vcpu_events events;
	struct emu_regs regs;
	struct emu_action act;
	struct emu_env env = { 0 };
	struct pagewalk_env pw = { 0 };
	uint8_t bytes[EMU_MAX_INSN_LEN];
	size_t len = 0;
	uint64_t seen;

	if (ioctl(v->fd, KVM_GET_REGS, &kregs) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0) {
		machine__request_stop(m, KRG_EXIT_FAILURE,
				      "vCPU %u: reading registers: %s",
				      v->index, strerror(errno));
		return -1;
	}
	pw.cpu = (struct pagewalk_cpu){ sregs.cr0, sregs.cr3, sregs.cr4,
					sregs.efer, 0 };
	pw.read_gpa = read_gpa;
	pw.ctx = &m->mem;
	if (emulate__insn_from_run(v->run, bytes, &len) < 0 || len == 0)
		len = fetch_insn(&pw, sregs.cs.base + kregs.rip, bytes);

	emulate__regs_from_kvm(&kregs, &sregs, &regs);
	{
		struct kvm_fpu fpu;
		if (ioctl(v->fd, KVM_GET_FPU, &fpu) == 0)
			regs.fpu_fsw = fpu.fsw;
	}
	emulate__env_from_host(&env);
	env.read_guest = pagewalk__read_guest;
	env.ctx = &pw;
	emulate__complete(bytes, len, &regs, &env, &act);

	pthread_mutex_lock(&m->emu_lock);
	emulate__stats_record(m->emu_stats, &act);
	seen = stats_count(m->emu_stats, act.mnemonic);
	pthread_mutex_unlock(&m->emu_lock);
	v->stats.emulated++;

	if (act.kind == EMU_REFUSED) {
		char what[320];
		snprintf(what, sizeof(what),
			 "KVM emulation failure on '%s', which krg-vmm cannot "
			 "complete: %s", act.text, act.reason);
		vcpu__report(v, what, bytes, len);
		machine__log(m, "fallback: refused %s at RIP 0x%llx", act.text,
			     (unsigned long long)kregs.rip);
		machine__request_stop(m, KRG_EXIT_FAILURE,
				      "vCPU %u: unsupported instruction '%s'",
				      v->index, act.text);
		return -1;
	}
	if (seen <= FALLBACK_LOG_FIRST)
		machine__log(m, "fallback: completed %s at RIP 0x%llx (%s)%s",
			     act.text, (unsigned long long)kregs.rip,
			     emulate__mode_name(regs.mode),
			     seen == FALLBACK_LOG_FIRST ?
				     "; further ones counted silently" : "");
	emulate__regs_to_kvm(&regs, &kregs);
	if (ioctl(v->fd, KVM_SET_REGS, &kregs) < 0)
		goto fail;
	if (act.kind != EMU_DONE) {
		if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &events) < 0 ||
		    emulate__apply_events(&act, &events) < 0 ||
		    ioctl(v->fd, KVM_SET_VCPU_EVENTS, &events) < 0)
			goto fail;
	}
	return 0;
fail:
	machine__request_stop(m, KRG_EXIT_FAILURE,
			      "vCPU %u: completing '%s' failed: %s", v->index,
			      act.text, strerror(errno));
	return -1;
}
