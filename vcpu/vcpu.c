/* vCPU creation, the LAPIC's environment, kicks (the run loop is in
 * vcpu_loop.c). */
#include "vcpu/vcpu.h"

#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <x86intrin.h>

#include "vcpu/cpuid.h"
#include "vcpu/irq_remote.h"
#include "vcpu/irq_route.h"
#include "vcpu/ioapic.h"
#include "vcpu/vcpu_priv.h"
#include "vmm/machine.h"

static uint64_t env_now_ns(void *ctx)
{
	return vclock__now_ns();
}

uint64_t vcpu__guest_tsc(const struct vcpu *v)
{
	return (uint64_t)((int64_t)__rdtsc() + v->tsc_offset);
}

static uint64_t env_guest_tsc(void *ctx)
{
	return vcpu__guest_tsc(ctx);
}

static void env_send_ipi(void *ctx, const struct apic_msg *msg)
{
	struct vcpu *v = ctx;

	irq_router__deliver(v->m->router, msg);
}

/* Called with the LAPIC's lock held, from any thread. */
static void env_timer_arm(void *ctx, uint64_t deadline_ns)
{
	struct vcpu *v = ctx;

	atomic_store(&v->lapic_deadline, deadline_ns);
	vcpu__arm_ktimer(v, deadline_ns);
	/* A halted vCPU sleeps until its deadline: let it see the new one. */
	pthread_mutex_lock(&v->wait_lock);
	pthread_cond_signal(&v->wait_cond);
	pthread_mutex_unlock(&v->wait_lock);
}

static void env_kick(void *ctx)
{
	vcpu__kick(ctx);
}

static void env_addr_changed(void *ctx, const struct apic_addr *addr)
{
	struct vcpu *v = ctx;

	/* In a cluster the other nodes learn it too (vcpu loop: flush). */
	if (v->m->irq_remote)
		irq_remote__local_addr(v->m->irq_remote, (int)v->index, addr);
	else
		irq_router__update_addr(v->m->router, (int)v->index, addr);
}

static void env_eoi_level(void *ctx, uint8_t vector)
{
	struct vcpu *v = ctx;

	if (v->m->irq_remote)
		irq_remote__eoi_level(v->m->irq_remote, (int)v->index, vector);
	else
		ioapic__eoi(v->m->ioapic, vector);
}

/* Guest TSC minus host TSC, read once: KVM keeps the offset fixed unless
 * the guest writes IA32_TSC, which the TSC MSR exit path refreshes.
 * KVM's TSC offset attribute gives it exactly (PVM has it: 0, its guest
 * TSC is the host's).  Otherwise the guest TSC read through the MSR is
 * bracketed by two host reads and the tightest of a few tries is kept:
 * a thread preempted between a host read and the ioctl would get an
 * offset off by the preemption, and a TSC-deadline timer computed from
 * it would fire that much early. */
int vcpu__refresh_tsc_offset(struct vcpu *v)
{
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e;
	} buf = { .hdr.nmsrs = 1, .e.index = 0x10 };
	int64_t off = 0;
	struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL,
				     .attr = KVM_VCPU_TSC_OFFSET,
				     .addr = (uint64_t)(uintptr_t)&off };
	uint64_t best = UINT64_MAX;

	if (ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &a) == 0 &&
	    ioctl(v->fd, KVM_GET_DEVICE_ATTR, &a) == 0) {
		v->tsc_offset = off;
		return 0;
	}
	for (int i = 0; i < 5; i++) {
		uint64_t before = __rdtsc(), after;

		if (ioctl(v->fd, KVM_GET_MSRS, &buf) != 1)
			return -1;
		after = __rdtsc();
		if (after - before < best) {
			best = after - before;
			v->tsc_offset = (int64_t)(buf.e.data -
						  (before + (after - before) / 2));
		}
	}
	return 0;
}

int vcpu__create(struct machine *m, unsigned index, struct vcpu **out,
		 char *err, size_t errlen)
{
	struct vcpu *v = calloc(1, sizeof(*v));
	struct kvm_cpuid2 *cpuid = NULL;
	struct lapic_env env;

	if (!v) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	v->m = m;
	v->index = index;
	v->fd = -1;
	pthread_mutex_init(&v->wait_lock, NULL);
	{
		pthread_condattr_t ca;
		pthread_condattr_init(&ca);
		pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
		pthread_cond_init(&v->wait_cond, &ca);
		pthread_condattr_destroy(&ca);
	}
	v->fd = ioctl(m->vm_fd, KVM_CREATE_VCPU, (unsigned long)index);
	if (v->fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VCPU %u: %s", index,
			 strerror(errno));
		goto fail;
	}
	v->run_size = (size_t)m->vcpu_mmap_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		snprintf(err, errlen, "mmap kvm_run: %s", strerror(errno));
		goto fail;
	}
	cpuid = cpuid__clone(m->cpuid);
	if (!cpuid) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	cpuid__for_vcpu(cpuid, index, m->nr_vcpus);
	if (ioctl(v->fd, KVM_SET_CPUID2, cpuid) < 0) {
		snprintf(err, errlen, "KVM_SET_CPUID2: %s", strerror(errno));
		goto fail;
	}
	free(cpuid);
	cpuid = NULL;
	if (vcpu__refresh_tsc_offset(v) < 0) {
		snprintf(err, errlen, "reading the guest TSC: %s",
			 strerror(errno));
		goto fail;
	}
	env = (struct lapic_env){
		.ctx = v,
		.now_ns = env_now_ns,
		.guest_tsc = env_guest_tsc,
		.tsc_hz = m->tsc_hz,
		.send_ipi = env_send_ipi,
		.timer_arm = env_timer_arm,
		.kick = env_kick,
		.addr_changed = env_addr_changed,
		.eoi_level = env_eoi_level,
	};
	lapic__init(&v->lapic, index, index == 0, &env);
	v->state = index == 0 ? VCPU_STATE_RUNNING : VCPU_STATE_WAIT_FOR_SIPI;
	*out = v;
	return 0;
fail:
	free(cpuid);
	vcpu__destroy(v);
	return -1;
}

void vcpu__destroy(struct vcpu *v)
{
	if (!v)
		return;
	if (v->lapic_ktimer_ok)
		timer_delete(v->lapic_ktimer);
	if (v->run)
		munmap(v->run, v->run_size);
	if (v->fd >= 0) {
		lapic__destroy(&v->lapic);
		close(v->fd);
	}
	pthread_cond_destroy(&v->wait_cond);
	pthread_mutex_destroy(&v->wait_lock);
	free(v);
}

void vcpu__kick(struct vcpu *v)
{
	pthread_mutex_lock(&v->wait_lock);
	atomic_store(&v->kicked, true);
	pthread_cond_signal(&v->wait_cond);
	pthread_mutex_unlock(&v->wait_lock);
	/* Only a vCPU on its way into, or in, the guest needs the signal.
	 * The signal is blocked outside KVM_RUN and unblocked inside it
	 * (KVM_SET_SIGNAL_MASK in vcpu__start), so it either interrupts the
	 * guest or stays pending and makes the next KVM_RUN return at once.  With
	 * kicked stored before in_guest is read here, and in_guest stored
	 * before kicked is read in the loop, one side always sees the other:
	 * no kick is lost. */
	if (atomic_load(&v->in_guest)) {
		pid_t tid = atomic_load(&v->tid);

		if (tid)
			syscall(SYS_tgkill, v->pid, tid, VCPU_KICK_SIGNAL);
	}
}

void vcpu__request_dump(struct vcpu *v)
{
	atomic_store(&v->dump_requested, true);
	vcpu__kick(v);
}
