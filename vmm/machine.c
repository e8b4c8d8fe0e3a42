/* The machine builder: an explicit order of steps, each of which can fail
 * with a one-line reason, instead of hidden init order. */
#include "vmm/machine.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vcpu/cpuid.h"
#include "vcpu/emulate.h"
#include "vcpu/irq_route.h"
#include "vcpu/pvm_profile.h"
#include "vcpu/pvm_syscall.h"
#include "vcpu/vcpu.h"
#include "vmm/ckpt.h"
#include "vmm/io_bus.h"
#include "vmm/machine_parts.h"
#include "vmm/migrate.h"
#include "vmm/vtimer.h"

#ifndef KVM_CAP_EXIT_ON_EMULATION_FAILURE
#define KVM_CAP_EXIT_ON_EMULATION_FAILURE 204
#endif

/* KVM wants these below 4 GiB and outside RAM; the top of the PCI hole
 * below the BIOS area is free on our layout. */
#define KVM_TSS_ADDR 0xFEFFD000ull
#define KVM_IDENTITY_MAP_ADDR 0xFEFFC000ull

void machine__log(const struct machine *m, const char *fmt, ...)
{
	char line[1024];
	va_list ap;
	int n, r;

	/* One write per line: local nodes share the launcher's stderr, and
	 * pieces of two nodes' lines must not interleave. */
	if (m->cluster && m->node_self)
		n = snprintf(line, sizeof(line), "krg-vmm: node %u: ",
			     m->node_self);
	else
		n = snprintf(line, sizeof(line), "krg-vmm: ");
	va_start(ap, fmt);
	r = vsnprintf(line + n, sizeof(line) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (r < 0)
		r = 0;
	n += r;
	if ((size_t)n > sizeof(line) - 2)
		n = (int)sizeof(line) - 2;
	line[n++] = '\n';
	fflush(stderr);
	if (write(STDERR_FILENO, line, (size_t)n) < 0) {
		/* nowhere left to report it */
	}
}

static int check_cap(struct machine *m, int cap, const char *name, char *err,
		     size_t errlen)
{
	if (ioctl(m->kvm_fd, KVM_CHECK_EXTENSION, cap) > 0)
		return 0;
	snprintf(err, errlen, "this host's KVM lacks %s, which krg-vmm needs",
		 name);
	return -1;
}

static int enable_cap(struct machine *m, uint32_t cap, uint64_t arg0)
{
	struct kvm_enable_cap ec = { .cap = cap, .args = { arg0 } };

	return ioctl(m->vm_fd, KVM_ENABLE_CAP, &ec);
}

static int open_kvm(struct machine *m, char *err, size_t errlen)
{
	m->kvm_fd = open("/dev/kvm", O_RDWR | O_CLOEXEC);
	if (m->kvm_fd < 0) {
		snprintf(err, errlen, "cannot open /dev/kvm: %s",
			 strerror(errno));
		return -1;
	}
	if (ioctl(m->kvm_fd, KVM_GET_API_VERSION, 0) != KVM_API_VERSION) {
		snprintf(err, errlen, "unsupported KVM API version");
		return -1;
	}
	if (check_cap(m, KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY", err,
		      errlen) ||
	    check_cap(m, KVM_CAP_X86_USER_SPACE_MSR,
		      "KVM_CAP_X86_USER_SPACE_MSR", err, errlen) ||
	    check_cap(m, KVM_CAP_X86_MSR_FILTER, "KVM_CAP_X86_MSR_FILTER", err,
		      errlen) ||
	    check_cap(m, KVM_CAP_VCPU_EVENTS, "KVM_CAP_VCPU_EVENTS", err,
		      errlen))
		return -1;
	m->vcpu_mmap_size = ioctl(m->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (m->vcpu_mmap_size <= 0) {
		snprintf(err, errlen, "KVM_GET_VCPU_MMAP_SIZE failed");
		return -1;
	}
	return 0;
}

/* The LAPIC is ours, so its MSRs must reach us: x2APIC MSRs arrive as
 * "invalid" (KVM has no LAPIC to give them to), APIC_BASE and TSC_DEADLINE
 * KVM would swallow, so a filter denies them to KVM. */
static int setup_msr_exits(struct machine *m, char *err, size_t errlen)
{
	static uint8_t deny_bitmap[1]; /* all zero: deny */
	struct kvm_msr_filter f;

	if (enable_cap(m, KVM_CAP_X86_USER_SPACE_MSR,
		       KVM_MSR_EXIT_REASON_INVAL | KVM_MSR_EXIT_REASON_FILTER) <
	    0) {
		snprintf(err, errlen, "enabling user-space MSR exits: %s",
			 strerror(errno));
		return -1;
	}
	memset(&f, 0, sizeof(f));
	f.flags = KVM_MSR_FILTER_DEFAULT_ALLOW;
	f.ranges[0] = (struct kvm_msr_filter_range){
		.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		.nmsrs = 1, .base = MSR_IA32_APICBASE, .bitmap = deny_bitmap };
	f.ranges[1] = (struct kvm_msr_filter_range){
		.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		.nmsrs = 1, .base = MSR_IA32_TSC_DEADLINE,
		.bitmap = deny_bitmap };
	/* LSTAR writes, to place the PVM syscall fix (vcpu/pvm_syscall.h). */
	f.ranges[2] = (struct kvm_msr_filter_range){
		.flags = KVM_MSR_FILTER_WRITE,
		.nmsrs = 1, .base = MSR_LSTAR, .bitmap = deny_bitmap };
	/* PV EOI is ours too (our LAPIC offers it, see lapic.h). */
	f.ranges[3] = (struct kvm_msr_filter_range){
		.flags = KVM_MSR_FILTER_READ | KVM_MSR_FILTER_WRITE,
		.nmsrs = 1, .base = MSR_KVM_PV_EOI_EN, .bitmap = deny_bitmap };
	if (ioctl(m->vm_fd, KVM_X86_SET_MSR_FILTER, &f) < 0) {
		snprintf(err, errlen, "installing the MSR filter: %s",
			 strerror(errno));
		return -1;
	}
	return 0;
}

static int create_vm(struct machine *m, char *err, size_t errlen)
{
	uint64_t idmap = KVM_IDENTITY_MAP_ADDR;
	int i;

	m->vm_fd = ioctl(m->kvm_fd, KVM_CREATE_VM, 0);
	if (m->vm_fd < 0) {
		snprintf(err, errlen, "KVM_CREATE_VM: %s", strerror(errno));
		return -1;
	}
	/* Needed on Intel VMX hosts; harmless elsewhere. */
	ioctl(m->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR);
	ioctl(m->vm_fd, KVM_SET_IDENTITY_MAP_ADDR, &idmap);
	if (setup_msr_exits(m, err, errlen) < 0)
		return -1;
	/* Instruction bytes with emulation failures, for the fallback. */
	if (ioctl(m->kvm_fd, KVM_CHECK_EXTENSION,
		  KVM_CAP_EXIT_ON_EMULATION_FAILURE) > 0)
		enable_cap(m, KVM_CAP_EXIT_ON_EMULATION_FAILURE, 1);
	if (guest_mem__create(&m->mem, m->cfg->ram_mib << 20) < 0) {
		snprintf(err, errlen, "cannot allocate %llu MiB of guest RAM: %s",
			 (unsigned long long)m->cfg->ram_mib, strerror(errno));
		return -1;
	}
	for (i = 0; i < m->mem.nr_regions; i++) {
		struct kvm_userspace_memory_region r = {
			.slot = (uint32_t)i,
			.guest_phys_addr = m->mem.region[i].gpa,
			.memory_size = m->mem.region[i].size,
			.userspace_addr = (uint64_t)(uintptr_t)m->mem.region[i].hva,
		};
		if (ioctl(m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r) < 0) {
			snprintf(err, errlen, "KVM_SET_USER_MEMORY_REGION: %s",
				 strerror(errno));
			return -1;
		}
	}
	return 0;
}

static int create_vcpus(struct machine *m, char *err, size_t errlen)
{
	unsigned i;
	int tsc_khz;

	m->vcpus = calloc(m->nr_vcpus, sizeof(*m->vcpus));
	if (!m->vcpus) {
		snprintf(err, errlen, "out of memory");
		return -1;
	}
	for (i = 0; i < m->nr_vcpus; i++) {
		/* A cluster node runs its own vCPUs and holds the others,
		 * so that any may move here (vmm/migrate.h). */
		if (vcpu__create(m, i, &m->vcpus[i], err, errlen) < 0)
			return -1;
		if (!machine__vcpu_is_local(m, i))
			atomic_store(&m->vcpus[i]->held, true);
		else
			m->nr_local_vcpus++;
		if (!m->tsc_hz) {
			tsc_khz = ioctl(m->vcpus[i]->fd, KVM_GET_TSC_KHZ, 0);
			m->tsc_hz = tsc_khz > 0 ? (uint64_t)tsc_khz * 1000 : 0;
		}
		m->vcpus[i]->lapic.env.tsc_hz = m->tsc_hz;
	}
	if (!m->tsc_hz) {
		snprintf(err, errlen, "KVM_GET_TSC_KHZ failed: %s",
			 strerror(errno));
		return -1;
	}
	return cpu_state__msr_list(m->kvm_fd, &m->msrs) < 0 ? -1 : 0;
}

void machine__deliver_local(void *ctx, int vcpu_index,
			    const struct apic_msg *msg)
{
	struct machine *m = ctx;

	if (vcpu_index < 0 || (unsigned)vcpu_index >= m->nr_vcpus ||
	    !m->vcpus[vcpu_index])
		return;
	/* In a cluster through the vCPU's gate: it may be moving. */
	if (m->migrate)
		migrate__deliver(m->migrate, vcpu_index, msg);
	else
		lapic__accept(&m->vcpus[vcpu_index]->lapic, msg);
}

int machine__build(const struct vm_config *cfg, struct machine **out,
		   char *err, size_t errlen)
{
	return machine__build_node(cfg, NULL, out, err, errlen);
}

/* Node 0 (or a single node) decides the profile's guest-wide choices from
 * the kernel it loads; other nodes get them in the VM description. */
static void guest_choices(struct machine *m, const struct machine_node *node)
{
	if (node && node->self) {
		m->timer_min_gap_ns = node->timer_min_gap_ns;
		m->syscall_fix = node->syscall_fix;
	} else if (((m->files && machine__guest_is_linux(m)) || m->firmware) &&
		   m->pvm_profile) {
		/* A firmware boot's guest is most likely Linux too; SeaBIOS
		 * itself uses neither the LAPIC timer nor SYSCALL. */
		m->timer_min_gap_ns = PVM_TIMER_MIN_GAP_NS;
		m->syscall_fix = true;
	}
}

int machine__build_node(const struct vm_config *cfg,
			const struct machine_node *node, struct machine **out,
			char *err, size_t errlen)
{
	struct machine *m = calloc(1, sizeof(*m));
	bool boot_node = !node || node->self == 0;
	int status = KRG_EXIT_FAILURE;

	*out = NULL;
	if (!m) {
		snprintf(err, errlen, "out of memory");
		return KRG_EXIT_FAILURE;
	}
	m->cfg = cfg;
	m->kvm_fd = m->vm_fd = -1;
	m->mem.memfd = -1;
	m->nr_vcpus = cfg->nr_vcpus;
	if (node && node->cluster) {
		m->cluster = node->cluster;
		m->node_self = node->self;
	}
	m->emu_stats = calloc(1, sizeof(*m->emu_stats));
	machine__init_control(m);
	pthread_mutex_init(&m->life_lock, NULL);
	pthread_cond_init(&m->life_cond, NULL);
	pthread_mutex_init(&m->emu_lock, NULL);
	m->stop_grace_s = MACHINE_STOP_GRACE_S;

	/* Input first: a bad kernel is reported before KVM is touched. */
	if (boot_node) {
		status = machine__read_guest_files(m, err, errlen);
		if (status)
			goto fail;
	}
	status = KRG_EXIT_FAILURE;
	if (open_kvm(m, err, errlen) < 0 || create_vm(m, err, errlen) < 0)
		goto fail;
	status = boot_node ? machine__setup_cpuid(m, err, errlen) :
			     machine__adopt_cpuid(m, node->cpuid, err, errlen);
	if (!status && boot_node && cfg->state_in[0] &&
	    ckpt__is_snapshot(cfg->state_in) &&
	    ckpt__restore_cpuid(m, cfg->state_in, err, errlen) < 0)
		status = KRG_EXIT_USAGE;
	if (status)
		goto fail;
	status = KRG_EXIT_FAILURE;
	guest_choices(m, node);
	if (m->cluster && machine__setup_layout(m, node, err, errlen) < 0)
		goto fail;
	m->bus = io_bus__new();
	m->timers = vtimer_service__new();
	m->router = irq_router__new((int)m->nr_vcpus, machine__deliver_local, m);
	if (!m->bus || !m->timers || !m->router) {
		snprintf(err, errlen, "out of memory");
		goto fail;
	}
	/* Devices live on the boot node; the others forward their I/O. */
	if ((boot_node && machine__build_devices(m, err, errlen) < 0) ||
	    (m->cluster && machine__setup_irq_remote(m, err, errlen) < 0) ||
	    create_vcpus(m, err, errlen) < 0)
		goto fail;
	if (m->cluster) {
		if (machine__setup_cluster(m, node, err, errlen) < 0)
			goto fail;
		*out = m; /* node 0 loads the guest once every node is ready */
		return 0;
	}
	status = machine__load_guest(m, err, errlen);
	if (status)
		goto fail;
	/* A snapshot directory (krg-vmm restore) or a --restore file. */
	if (cfg->state_in[0] && ckpt__is_snapshot(cfg->state_in)) {
		if (ckpt__restore_memory(m, cfg->state_in, err, errlen) < 0 ||
		    ckpt__restore_cpus(m, cfg->state_in, err, errlen) < 0 ||
		    ckpt__restore_devices(m, cfg->state_in, err, errlen) < 0) {
			status = KRG_EXIT_USAGE;
			goto fail;
		}
	} else if (cfg->state_in[0] &&
	    machine__load_file(m, cfg->state_in, err, errlen) < 0) {
		status = KRG_EXIT_USAGE;
		goto fail;
	}
	*out = m;
	return 0;
fail:
	machine__destroy(m);
	return status;
}

void machine__destroy(struct machine *m)
{
	unsigned i;

	if (!m)
		return;
	machine__destroy_cluster(m);
	/* Timers first: their callbacks reach into vCPUs and devices. */
	vtimer_service__free(m->timers);
	m->timers = NULL;
	if (m->vcpus) {
		for (i = 0; i < m->nr_vcpus; i++)
			vcpu__destroy(m->vcpus[i]);
		free(m->vcpus);
	}
	machine__destroy_devices(m);
	machine__free_guest_files(m);
	machine__free_firmware(m);
	irq_router__free(m->router);
	io_bus__free(m->bus);
	free(m->cpuid);
	guest_mem__destroy(&m->mem);
	if (m->vm_fd >= 0)
		close(m->vm_fd);
	if (m->kvm_fd >= 0)
		close(m->kvm_fd);
	free(m->emu_stats);
	pthread_mutex_destroy(&m->emu_lock);
	pthread_cond_destroy(&m->life_cond);
	pthread_mutex_destroy(&m->life_lock);
	free(m);
}
