/* The vCPU thread: wait while halted or paused, inject what the LAPIC
 * holds, enter KVM and hand each exit to vcpu_exit.c. */
#include "vcpu/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vcpu/cpu_state.h"
#include "vcpu/ioapic.h"
#include "vcpu/irq_remote.h"
#include "vcpu/irq_route.h"
#include "vcpu/pic.h"
#include "vcpu/vcpu_exit.h"
#include "vcpu/vcpu_priv.h"
#include "vmm/machine.h"
#include "vmm/migrate.h"
#include "vmm/shadow_flush.h"

void vcpu__arm_ktimer(struct vcpu *v, uint64_t deadline_ns)
{
	struct itimerspec its = { { 0, 0 }, { 0, 0 } };

	if (!v->lapic_ktimer_ok)
		return;
	if (deadline_ns) {
		its.it_value.tv_sec = (time_t)(deadline_ns / 1000000000ull);
		its.it_value.tv_nsec = (long)(deadline_ns % 1000000000ull);
	}
	timer_settime(v->lapic_ktimer, TIMER_ABSTIME, &its, NULL);
}

/* The LAPIC timer's deadline passed: let the LAPIC fire (it checks the
 * time itself, so an early or repeated call is harmless). */
static void check_lapic_timer(struct vcpu *v)
{
	uint64_t d = atomic_load(&v->lapic_deadline);

	if (d && vclock__now_ns() >= d &&
	    atomic_compare_exchange_strong(&v->lapic_deadline, &d, 0))
		lapic__timer_expired(&v->lapic);
}

/* A changed APIC address reaches every node before this vCPU runs on, so
 * no node routes by the old one after the guest's write retired. */
static void flush_addr(struct vcpu *v)
{
	char err[256];
	int r;

	if (!v->m->irq_remote)
		return;
	r = irq_remote__flush(v->m->irq_remote, (int)v->index, 2000, err,
			      sizeof(err));
	if (r < 0 && r != -ECANCELED)
		machine__request_stop(v->m, KRG_EXIT_FAILURE, "vCPU %u: %s",
				      v->index, err);
}

static const char *state_name(enum vcpu_run_state s)
{
	switch (s) {
	case VCPU_STATE_WAIT_FOR_SIPI: return "waiting for SIPI";
	case VCPU_STATE_HALTED: return "halted";
	default: return "running";
	}
}

static void dump_status(struct vcpu *v)
{
	struct kvm_regs r;
	struct kvm_sregs s;
	const struct vcpu_stats *st = &v->stats;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0 ||
	    ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return;
	machine__log(v->m,
		     "vCPU %u: %s, RIP 0x%llx (%s, CPL %u, IF %u); exits %llu "
		     "(io %llu, mmio %llu, msr %llu, hlt %llu), injected %llu, "
		     "PV EOIs %llu, fallback %llu, syscalls completed %llu",
		     v->index, state_name(v->state),
		     (unsigned long long)r.rip, cpu_state__mode_name(&s),
		     s.cs.dpl, (unsigned)((r.rflags >> 9) & 1),
		     (unsigned long long)st->exits,
		     (unsigned long long)st->exits_io,
		     (unsigned long long)st->exits_mmio,
		     (unsigned long long)st->exits_msr,
		     (unsigned long long)st->exits_hlt,
		     (unsigned long long)st->injected,
		     (unsigned long long)st->pv_eois,
		     (unsigned long long)st->emulated,
		     (unsigned long long)v->sysfix.completed);
}

static void drain_kick_signal(void)
{
	sigset_t set;
	struct timespec zero = { 0, 0 };

	/* A standard signal is pending at most once: one call drains it. */
	sigemptyset(&set);
	sigaddset(&set, VCPU_KICK_SIGNAL);
	(void)sigtimedwait(&set, NULL, &zero);
}

static bool should_leave_wait(struct vcpu *v)
{
	struct machine *m = v->m;

	if (atomic_load(&m->stop) || atomic_load(&m->pause) ||
	    atomic_load(&v->dump_requested) || atomic_load(&v->held))
		return true;
	if (v->state == VCPU_STATE_HALTED) {
		/* HLT ends on an interrupt it may take, on NMI/INIT/SIPI. */
		int vector;
		enum lapic_intr_kind k = lapic__pending_intr(&v->lapic, &vector);
		if (k != LAPIC_INTR_NONE && v->halt_if)
			return true;
	}
	return lapic__has_events(&v->lapic);
}

/* HLT and wait-for-SIPI sleep here, without spinning, until a kick or
 * the LAPIC timer's deadline. */
static void wait_for_work(struct vcpu *v)
{
	pthread_mutex_lock(&v->wait_lock);
	while (!atomic_exchange(&v->kicked, false)) {
		uint64_t d;

		pthread_mutex_unlock(&v->wait_lock);
		check_lapic_timer(v);
		if (should_leave_wait(v))
			return;
		pthread_mutex_lock(&v->wait_lock);
		if (atomic_load(&v->kicked))
			continue;
		d = atomic_load(&v->lapic_deadline);
		if (d) {
			struct timespec ts = {
				.tv_sec = (time_t)(d / 1000000000ull),
				.tv_nsec = (long)(d % 1000000000ull),
			};
			pthread_cond_timedwait(&v->wait_cond, &v->wait_lock, &ts);
		} else {
			pthread_cond_wait(&v->wait_cond, &v->wait_lock);
		}
	}
	pthread_mutex_unlock(&v->wait_lock);
}

static void handle_events(struct vcpu *v)
{
	struct lapic_events ev = lapic__take_events(&v->lapic);

	if (ev.init) {
		/* INIT: registers to their INIT values, LAPIC too, and wait for
		 * a SIPI.  (The BSP would restart at the reset vector, but
		 * nothing here sends INIT to the BSP but a guest reset.) */
		lapic__init_reset(&v->lapic);
		if (cpu_state__reset_to_init(v->fd) < 0)
			machine__request_stop(v->m, KRG_EXIT_FAILURE,
					      "vCPU %u: INIT failed: %s",
					      v->index, strerror(errno));
		v->state = VCPU_STATE_WAIT_FOR_SIPI;
	}
	if (ev.sipi && v->state == VCPU_STATE_WAIT_FOR_SIPI) {
		if (cpu_state__start_sipi(v->fd, ev.sipi_vector) < 0)
			machine__request_stop(v->m, KRG_EXIT_FAILURE,
					      "vCPU %u: SIPI failed: %s",
					      v->index, strerror(errno));
		v->state = VCPU_STATE_RUNNING;
	}
	if (ev.nmi && v->state != VCPU_STATE_WAIT_FOR_SIPI) {
		if (ioctl(v->fd, KVM_NMI) == 0)
			v->stats.nmis++;
		v->state = VCPU_STATE_RUNNING;
	}
}

/* KVM may still hold an interrupt injected earlier but not delivered yet
 * (an exit came first; KVM delivers it on the next entry).  PVM hosts
 * still report the vCPU ready, and a second KVM_INTERRUPT then loses one
 * of the two while our LAPIC has both in service.  Asking KVM costs an
 * ioctl (a vcpu_load/put pair, microseconds on PVM), so only while an
 * injection may be outstanding: until the guest ends that interrupt. */
static bool kvm_holds_interrupt(struct vcpu *v)
{
	struct kvm_vcpu_events ev;

	if (!v->maybe_held)
		return false;
	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) == 0 && ev.interrupt.injected)
		return true;
	v->maybe_held = false;
	return false;
}

/* Interrupt injection, or an interrupt window request when the guest
 * can't take one right now. */
static void inject_pending(struct vcpu *v)
{
	struct kvm_run *run = v->run;
	int vector = -1;
	enum lapic_intr_kind k = lapic__pending_intr(&v->lapic, &vector);

	run->request_interrupt_window = 0;
	if (k == LAPIC_INTR_NONE)
		return;
	if (!run->ready_for_interrupt_injection || !run->if_flag ||
	    kvm_holds_interrupt(v)) {
		run->request_interrupt_window = 1;
		return;
	}
	if (k == LAPIC_INTR_EXTINT) {
		vector = pic__ack(v->m->pic);
		lapic__extint_acked(&v->lapic);
	}
	if (vector < 0)
		return;
	{
		struct kvm_interrupt irq = { .irq = (uint32_t)vector };

		if (ioctl(v->fd, KVM_INTERRUPT, &irq) < 0) {
			run->request_interrupt_window = 1;
			return;
		}
	}
	v->maybe_held = true;
	if (k == LAPIC_INTR_VECTOR)
		lapic__intr_injected(&v->lapic, vector);
	v->stats.injected++;
	v->stats.by_vector[vector & 0xff]++;
	/* More may be pending: ask for the next window right away. */
	if (lapic__pending_intr(&v->lapic, &vector) != LAPIC_INTR_NONE)
		run->request_interrupt_window = 1;
}

/* After an exit (and before anything reads the LAPIC): a guest that
 * cleared the PV-EOI bit ended its interrupt.  The bit is always cleared
 * here, so a guest that did not end it yet writes EOI as usual. */
static void pv_eoi_sync(struct vcpu *v)
{
	uint8_t *flag = v->pv_eoi_armed_flag, was;

	if (!flag)
		return;
	was = __atomic_exchange_n(flag, 0, __ATOMIC_SEQ_CST);
	v->pv_eoi_armed_flag = NULL;
	lapic__pv_eoi_disarm(&v->lapic, !(was & 1));
	if (!(was & 1)) {
		v->stats.pv_eois++;
		v->maybe_held = false; /* it was delivered: the guest ended it */
	}
}

/* Before an entry: offer PV EOI if the LAPIC says it is safe. */
static void pv_eoi_offer(struct vcpu *v)
{
	uint64_t msr = lapic__pv_eoi_msr(&v->lapic);

	if (!(msr & KVM_PV_EOI_MSR_ENABLED))
		return;
	if (msr != v->pv_eoi_msr_seen) {
		/* Checked at the MSR write; a restored blob is checked here. */
		v->pv_eoi_flag = guest_mem__ptr(&v->m->mem,
						msr & ~KVM_PV_EOI_MSR_ENABLED, 4);
		v->pv_eoi_msr_seen = msr;
	}
	if (!v->pv_eoi_flag || !lapic__pv_eoi_arm(&v->lapic))
		return;
	__atomic_store_n(v->pv_eoi_flag, 1, __ATOMIC_SEQ_CST);
	v->pv_eoi_armed_flag = v->pv_eoi_flag;
}

/* Before a pause: let KVM finish an I/O exit's side (an IN's data) so the
 * register state we save is complete. */
static void complete_pending_io(struct vcpu *v)
{
	v->run->immediate_exit = 1;
	ioctl(v->fd, KVM_RUN, 0);
	v->run->immediate_exit = 0;
	drain_kick_signal();
}

static void *vcpu_thread(void *arg)
{
	struct vcpu *v = arg;
	struct machine *m = v->m;
	char name[16];
	int r;

	snprintf(name, sizeof(name), "krg-vcpu%u", v->index);
	pthread_setname_np(pthread_self(), name);
	/* Decided by now (boot, restore or the VM description). */
	pthread_mutex_lock(&v->lapic.lock);
	v->lapic.timer_min_gap_ns = m->timer_min_gap_ns;
	pthread_mutex_unlock(&v->lapic.lock);
	{
		/* The kernel signals this thread itself at the deadline:
		 * KVM_RUN returns and the loop fires the LAPIC timer. */
		struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID,
					.sigev_signo = VCPU_KICK_SIGNAL };
		sev._sigev_un._tid = gettid();
		atomic_store(&v->tid, sev._sigev_un._tid);
		v->lapic_ktimer_ok =
			timer_create(CLOCK_MONOTONIC, &sev, &v->lapic_ktimer) == 0;
		vcpu__arm_ktimer(v, atomic_load(&v->lapic_deadline));
	}
	while (!atomic_load(&m->stop)) {
		/* Not while KVM holds an injected interrupt: copied into
		 * another vCPU fd it would be delivered twice (PVM). */
		if (atomic_load(&v->held) &&
		    (v->state == VCPU_STATE_WAIT_FOR_SIPI ||
		     !kvm_holds_interrupt(v))) {
			complete_pending_io(v);
			migrate__vcpu_held(v);
			continue;
		}
		if (atomic_load(&m->pause)) {
			complete_pending_io(v);
			machine__park_vcpu(m);
			continue;
		}
		if (m->shadow_flush &&
		    shadow_flush__gate_closed(m->shadow_flush)) {
			shadow_flush__wait(m->shadow_flush);
			continue;
		}
		if (atomic_exchange(&v->dump_requested, false))
			dump_status(v);
		check_lapic_timer(v);
		handle_events(v);
		flush_addr(v);
		if (v->state == VCPU_STATE_WAIT_FOR_SIPI) {
			wait_for_work(v);
			continue;
		}
		if (v->state == VCPU_STATE_HALTED) {
			if (!should_leave_wait(v)) {
				uint64_t t0 = vclock__now_ns();

				wait_for_work(v);
				v->stats.halted_ns += vclock__now_ns() - t0;
				continue;
			}
			v->state = VCPU_STATE_RUNNING;
		}
		if (atomic_exchange(&v->sysfix_pending, false) &&
		    pvm_syscall__arm(v) < 0)
			machine__request_stop(v->m, KRG_EXIT_FAILURE,
					      "vCPU %u: placing the syscall fix: %s",
					      v->index, strerror(errno));
		atomic_store(&v->kicked, false);
		inject_pending(v);
		pv_eoi_offer(v);
		v->run->cr8 = lapic__get_cr8(&v->lapic);
		atomic_store(&v->in_guest, true);
		if (atomic_load(&v->kicked) ||
		    (m->shadow_flush &&
		     shadow_flush__gate_closed(m->shadow_flush))) {
			atomic_store(&v->in_guest, false);
			pv_eoi_sync(v);
			continue;
		}
		r = ioctl(v->fd, KVM_RUN, 0);
		atomic_store(&v->in_guest, false);
		pv_eoi_sync(v);
		if (r < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				v->stats.exits_intr++;
				drain_kick_signal();
				continue;
			}
			machine__request_stop(m, KRG_EXIT_FAILURE,
					      "vCPU %u: KVM_RUN: %s", v->index,
					      strerror(errno));
			break;
		}
		v->stats.exits++;
		lapic__set_cr8(&v->lapic, v->run->cr8);
		if (vcpu__handle_exit(v) < 0)
			break;
	}
	atomic_store(&v->tid, 0);
	return NULL;
}

int vcpu__start(struct vcpu *v)
{
	sigset_t set;
	struct {
		struct kvm_signal_mask hdr;
		uint8_t bits[8];
	} kmask;

	/* Inside KVM_RUN every signal the thread blocks except the kick. */
	pthread_sigmask(SIG_BLOCK, NULL, &set);
	sigdelset(&set, VCPU_KICK_SIGNAL);
	kmask.hdr.len = 8;
	memcpy(kmask.bits, &set, 8);
	if (ioctl(v->fd, KVM_SET_SIGNAL_MASK, &kmask) < 0)
		return -1;
	v->pid = getpid();
	if (pthread_create(&v->thread, NULL, vcpu_thread, v))
		return -1;
	v->thread_started = true;
	return 0;
}

void vcpu__join(struct vcpu *v)
{
	if (v->thread_started) {
		vcpu__kick(v);
		pthread_join(v->thread, NULL);
		v->thread_started = false;
	}
}
