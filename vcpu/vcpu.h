/* A vCPU: its KVM fd, its thread and run loop, its userspace LAPIC. */
#ifndef KRG_VCPU_VCPU_H
#define KRG_VCPU_VCPU_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "vcpu/cpu_state.h"
#include "vcpu/lapic.h"
#include "vcpu/pvm_syscall.h"
#include <time.h>

#include "vmm/vtimer.h"

struct machine;

struct vcpu_stats {
	uint64_t exits, exits_io, exits_mmio, exits_msr, exits_hlt;
	uint64_t exits_window, exits_intr, injected, nmis, emulated;
	uint64_t pv_eois; /* EOIs the guest did through PV EOI */
	/* Time asleep in HLT: whether a guest is really idle (on PVM a
	 * stock kernel's tick work can fill the whole tick period). */
	uint64_t halted_ns;
	/* Interrupts injected, by vector: what wakes an idle guest. */
	uint64_t by_vector[256];
};

struct vcpu {
	struct machine *m;
	unsigned index;
	int fd;
	struct kvm_run *run;
	size_t run_size;
	pthread_t thread;
	bool thread_started;
	/* For kicks by tgkill: pthread_kill costs three more system calls
	 * (it blocks signals around the send), on every IPI. */
	pid_t pid;
	_Atomic pid_t tid; /* 0 until the thread runs */

	struct lapic lapic;
	/* The LAPIC timer's host side: a kernel timer that signals this
	 * vCPU's thread directly (no hop through a timer thread), and the
	 * deadline the loop checks (0 = none). */
	timer_t lapic_ktimer;
	bool lapic_ktimer_ok;
	_Atomic uint64_t lapic_deadline;
	int64_t tsc_offset; /* guest TSC = host TSC + offset */

	/* Wakeups for a halted or wait-for-SIPI vCPU. */
	pthread_mutex_t wait_lock;
	pthread_cond_t wait_cond;
	atomic_bool kicked;
	atomic_bool in_guest; /* between the last check and KVM_RUN's return */
	atomic_bool dump_requested; /* SIGQUIT: print where the vCPU is */
	/* Stay out of the guest (vmm/migrate.h): the vCPU is moving, or
	 * runs on another node of the cluster. */
	atomic_bool held;

	/* Owned by the vCPU thread; by the main thread while parked. */
	enum vcpu_run_state state;
	bool halt_if; /* IF at the HLT: maskable interrupts end the halt */
	bool maybe_held; /* KVM may still hold the last KVM_INTERRUPT */
	/* PV EOI: the guest's flag byte while armed (NULL otherwise), and the
	 * pointer for the MSR value last looked up. */
	uint8_t *pv_eoi_armed_flag;
	uint64_t pv_eoi_msr_seen;
	uint8_t *pv_eoi_flag;

	struct pvm_syscall_fix sysfix; /* PVM hosts only */
	atomic_bool sysfix_pending;    /* place it before the next KVM_RUN */
	struct vcpu_stats stats;
};

int vcpu__create(struct machine *m, unsigned index, struct vcpu **out,
		 char *err, size_t errlen);
void vcpu__destroy(struct vcpu *v);
/* The BSP starts RUNNING, APs in WAIT_FOR_SIPI. */
int vcpu__start(struct vcpu *v);
void vcpu__join(struct vcpu *v);
/* Make the vCPU look at its LAPIC and the machine's run state soon:
 * callable from any thread. */
void vcpu__kick(struct vcpu *v);

/* Saves/loads the architectural state + LAPIC of a parked vCPU. */
struct state_writer;
struct state_reader;
int vcpu__save(struct vcpu *v, struct state_writer *w, char *err,
	       size_t errlen);
int vcpu__load(struct vcpu *v, struct state_reader *r, char *err,
	       size_t errlen);

/* Prints the fatal-exit report (reason, RIP, mode, instruction bytes,
 * registers) to stderr. */
void vcpu__report(struct vcpu *v, const char *what, const uint8_t *insn,
		  size_t insn_len);

/* Asks the vCPU to print one status line (RIP, mode, state, exit counts)
 * at its next loop iteration (krg-vmm does this on SIGQUIT). */
void vcpu__request_dump(struct vcpu *v);

/* The guest's TSC now, as the vCPU would read it. */
uint64_t vcpu__guest_tsc(const struct vcpu *v);
/* Re-reads guest TSC - host TSC (after a restore or a guest TSC write). */
int vcpu__refresh_tsc_offset(struct vcpu *v);

#endif
