/* The machine object: everything one VM is made of, passed down explicitly
 * (no globals).  Built step by step by machine__build(), run by
 * machine__run(). */
#ifndef KRG_VMM_MACHINE_H
#define KRG_VMM_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "guestfw/boot.h"
#include "vcpu/apic.h"
#include "vcpu/cpu_state.h"
#include "vmm/device.h"
#include "vmm/guest_mem.h"
#include "vmm/numa_layout.h"
#include "vmm/vm_config.h"

struct io_bus;
struct vtimer_service;
struct irq_router;
struct vcpu;
struct pic;
struct ioapic;
struct irq_lines;
struct uart;
struct console;
struct rtc;
struct i8042;
struct pci_host;
struct acpi_pm;
struct debug_exit;
struct fw_cfg;
struct pit;
struct machine_drives;
struct machine_net;
struct emu_stats;
struct guest_files;
struct machine_firmware;
struct debugcon;
struct cluster;
struct dsm_mem;
struct irq_remote;
struct io_forward_client;
struct io_forward_server;
struct control_socket;
struct ckpt_node;
struct migrate;
struct machine_blk_mq;

/* Exit statuses of the krg-vmm process. */
enum {
	KRG_EXIT_OK = 0,       /* guest powered off, or the user quit */
	KRG_EXIT_FAILURE = 1,  /* KVM error, triple fault, unhandled insn */
	KRG_EXIT_USAGE = 2,    /* bad command line, config, kernel, state */
};

#define STOP_REASON_MAX 256
/* A node stopping after a failure exits by force when its orderly stop has
 * not finished after this long (a thread stuck on a page of a dead node);
 * struct machine's stop_grace_s, set to this when the machine is built. */
#define MACHINE_STOP_GRACE_S 20

struct machine {
	const struct vm_config *cfg;
	int kvm_fd, vm_fd;
	int vcpu_mmap_size;
	bool pvm_host;         /* KVM here is PVM (see PLATFORM.md) */
	bool pvm_profile;      /* the PVM guest profile is applied */
	/* Least time between two LAPIC timer interrupts of a vCPU (0: none).
	 * The PVM profile sets it for Linux guests: there every timer
	 * interrupt costs milliseconds of emulated kernel code, and at the
	 * kernel's 250-1000 Hz tick the vCPU would do little else.  A late
	 * timer interrupt is legal (a busy host delivers them late too). */
	uint64_t timer_min_gap_ns;
	/* Complete PVM's half-done syscalls (vcpu/pvm_syscall.h): on for
	 * Linux guests under the profile.  Off otherwise, because the
	 * breakpoint it needs makes every VM entry a few us dearer here. */
	bool syscall_fix;

	uint64_t tsc_hz;

	struct guest_mem mem;
	struct io_bus *bus;
	struct vtimer_service *timers;
	struct irq_router *router;
	struct kvm_cpuid2 *cpuid;  /* template before per-vCPU topology */
	struct cpu_msr_list msrs;  /* MSRs a snapshot carries */
	int xsave_size;

	unsigned nr_vcpus;
	/* Every vCPU of the VM, also on a cluster node: those running on
	 * other nodes are held (vmm/migrate.h), ready to move here;
	 * machine__vcpu_is_local() says which run here. */
	struct vcpu **vcpus;
	unsigned nr_local_vcpus;

	struct pic *pic;
	struct ioapic *ioapic;
	struct irq_lines *irq_lines;
	struct irq_sink irq;            /* ISA/GSI lines for devices */
	struct machine_control control; /* devices ask for poweroff/reset */
	struct uart *uart;
	struct console *console;
	struct rtc *rtc;
	struct i8042 *i8042;
	struct pci_host *pci;
	struct acpi_pm *acpi_pm;
	struct debug_exit *debug_exit;
	struct fw_cfg *fw_cfg;
	struct pit *pit;
	struct machine_drives *drives;  /* -drive disks (node 0), or NULL */
	struct machine_net *net;        /* NICs and virtio-rng (node 0) */
	struct emu_stats *emu_stats;
	pthread_mutex_t emu_lock;

	struct guest_files *files; /* kernel/initrd read before KVM starts */
	struct machine_firmware *firmware; /* a firmware boot's BIOS image */
	struct debugcon *debugcon;      /* port 0x402, the firmware's log */
	struct boot_entry boot;
	char kernel_cmdline[VM_CMDLINE_MAX * 2];

	/* Life cycle: vCPU threads poll these between runs. */
	/* A cluster VM (one node's share), or NULL/0 for a single node. */
	struct cluster *cluster;
	unsigned node_self;
	struct numa_layout layout;      /* valid when cluster != NULL */
	struct dsm_mem *dsm;
	/* Shadow-paging hosts: drops KVM's shadow page tables when the DSM
	 * takes pages away (vmm/shadow_flush.h); NULL elsewhere. */
	struct shadow_flush *shadow_flush;
	struct irq_remote *irq_remote;
	struct io_forward_client *io_client;  /* nodes without devices */
	struct io_forward_server *io_server;  /* node 0 */
	struct control_socket *status_socket; /* node 0: QMP; the launch owns it */
	struct ckpt_node *ckpt;               /* cluster checkpoints (vmm/ckpt.h) */
	struct migrate *migrate;              /* vCPU migration (vmm/migrate.h) */
	/* virtio-blk queues served on their vCPU's node (vmm/machine_blk_mq.c) */
	struct machine_blk_mq *blk_mq;
	uint64_t start_ns;                    /* vclock when the VM started */

	pthread_mutex_t life_lock;
	pthread_cond_t life_cond;
	atomic_bool stop;           /* leave the run loops */
	atomic_bool pause;          /* park (for save) */
	unsigned nr_parked;
	int exit_status;
	bool reset_requested;
	char stop_reason[STOP_REASON_MAX];
	unsigned stop_grace_s;	/* 0: no forced exit after a failed stop */
	/* Why the VM stopped, in QEMU's ShutdownCause names for QMP events
	 * ("guest-shutdown", "host-qmp-quit", ...); NULL: not said. */
	const char *stop_cause;
	/* Node > 0 paused by node 0: tell it once every local vCPU parked. */
	bool pause_ack;
};

/* Builds the VM from cfg (KVM, RAM, interrupt controllers, devices,
 * vCPUs, guest firmware/kernel).  On failure returns KRG_EXIT_USAGE (bad
 * input) or KRG_EXIT_FAILURE with a one-line reason in err. */
int machine__build(const struct vm_config *cfg, struct machine **out,
		   char *err, size_t errlen);
void machine__destroy(struct machine *m);

/* One node's share of a cluster VM (vmm/cluster.h).  Node 0 reads the
 * guest files, builds the layout, the devices and its vCPUs; node i > 0
 * builds its vCPUs from node 0's layout and CPUID.  Every node sets up the
 * DSM, remote interrupts and I/O forwarding.  The guest is loaded later by
 * machine__boot_load, once every node is ready to serve its pages. */
struct machine_node {
	unsigned self;
	struct cluster *cluster;
	struct numa_layout layout;       /* node > 0: node 0's */
	const struct kvm_cpuid2 *cpuid;  /* node > 0: node 0's table */
	struct kvm_clock_data clock;     /* node > 0: node 0's kvmclock */
	uint64_t timer_min_gap_ns;       /* node > 0: node 0's choices */
	bool syscall_fix;
};
int machine__build_node(const struct vm_config *cfg,
			const struct machine_node *node, struct machine **out,
			char *err, size_t errlen);
/* Node 0: loads firmware tables and the kernel into guest RAM (through the
 * DSM) and sets the boot vCPU's state.  Exit status, 0 when done. */
int machine__boot_load(struct machine *m, char *err, size_t errlen);
/* Stops the threads that talk to other nodes on the machine's behalf (DSM
 * faults, I/O forwarding) before the transport goes away. */
void machine__quiesce(struct machine *m);

/* Runs until the guest powers off, the user quits, or a fatal error;
 * returns the process exit status.  Handles reset per cfg->on_reset. */
int machine__run(struct machine *m);

/* Before any thread starts: the machine's signal thread takes SIGINT,
 * SIGTERM, SIGHUP and SIGQUIT synchronously, SIGUSR1 kicks vCPUs, every
 * thread created afterwards inherits the mask; SIGPIPE is ignored. */
void machine__block_signals(void);

/* Called by any thread: stop the VM with this exit status. */
void machine__request_stop(struct machine *m, int status, const char *fmt,
			   ...) __attribute__((format(printf, 3, 4)));
/* The same, saying why in QEMU's ShutdownCause words (a string literal,
 * kept): what the QMP SHUTDOWN event reports. */
void machine__request_stop_cause(struct machine *m, int status,
				 const char *cause, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
/* A reset of the whole VM (restarts every node), or a stop when the VM
 * was told to exit on reset.  cause as above ("guest-reset", ...), what
 * for the log ("guest reset"). */
void machine__request_reset(struct machine *m, const char *cause,
			    const char *what);

/* vCPU threads call this when m->pause is set: completes nothing itself,
 * just waits until the pause ends (or stop).  */
void machine__park_vcpu(struct machine *m);

/* Pause every vCPU (outside KVM_RUN, pending I/O completed) and resume. */
void machine__pause(struct machine *m);
void machine__resume(struct machine *m);
/* Asks this node's vCPUs to park without waiting for them (a transport
 * thread must not block).  With ack, a node > 0 tells node 0 once they
 * all parked (cluster__pause_ack). */
void machine__pause_nowait(struct machine *m, bool ack);

/* Whole-machine state (vCPUs, LAPICs, devices) + RAM. */
int machine__save_file(struct machine *m, const char *path, char *err,
		       size_t errlen);
int machine__load_file(struct machine *m, const char *path, char *err,
		       size_t errlen);

/* Cluster VMs, vmm/machine_blk_mq.c.  A node > 0's MMIO exit that is
 * the doorbell of a virtio-blk queue this node serves: handled here
 * (true), not forwarded to node 0. */
bool machine__local_mmio(struct machine *m, uint64_t addr, uint8_t *data,
			 uint32_t len, bool is_write);
/* Node 0 (no device lock held; waits for the serving nodes).  hold: every
 * virtio-blk queue served on another node is drained there and its state
 * is back in node 0's device, which serves them all until released
 * (hold false hands them out again): for checkpoints, saves, or anything
 * that must see the devices quiet.  vcpu_moved: vCPU now runs on node, so
 * the queues that belong to it (q mod vCPUs) are drained where they are
 * and served there from now on.  0, or -1 if a node did not answer (the
 * VM stops). */
int machine__blk_queues_hold(struct machine *m, bool hold);
int machine__blk_queues_vcpu_moved(struct machine *m, unsigned vcpu,
				   unsigned node);

/* The routing hook: deliver a message to local vCPU index. */
void machine__deliver_local(void *ctx, int vcpu_index,
			    const struct apic_msg *msg);

void machine__log(const struct machine *m, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

#endif
