/* Everything the user chose about the VM, from the command line or a config
 * file.  Plain data: `launch` will send it to remote agents (next issue). */
#ifndef KRG_VMM_VM_CONFIG_H
#define KRG_VMM_VM_CONFIG_H

#include <stdbool.h>
#include <stdint.h>

#include "storage/drive_opts.h"
#include "vmm/devices/netdev_opts.h"

#define VM_MAX_VCPUS 64
#define VM_MIN_RAM_MIB 16
#define VM_MAX_RAM_MIB (1024ull * 1024) /* 1 TiB */
#define VM_MAX_NODES 64
#define VM_PATH_MAX 4096
#define VM_CMDLINE_MAX 4096
#define VM_MAX_DRIVES 8

enum vm_reset_action { VM_RESET_REBOOT, VM_RESET_EXIT };
/* A setting that follows the host unless forced: --pvm-profile,
 * --dsm-shadow-flush. */
enum vm_auto_switch { VM_AUTO, VM_ON, VM_OFF };

struct vm_node {
	char addr[256]; /* "local" or host:port */
};

struct vm_config {
	uint64_t ram_mib;                 /* -m, default 256 */
	unsigned nr_vcpus;                /* -smp, default 1 */
	char kernel[VM_PATH_MAX];         /* -kernel */
	char initrd[VM_PATH_MAX];         /* -initrd */
	char append[VM_CMDLINE_MAX];      /* -append */
	char cpu_model[512];              /* -cpu, e.g. "host,-cx16,+x2apic" */
	bool serial_stdio;                /* -serial stdio (default on) */
	bool nographic;                   /* -nographic (accepted; no display) */
	enum vm_reset_action on_reset;    /* --on-reset reboot|exit */
	enum vm_auto_switch pvm_profile;  /* --pvm-profile auto|on|off */
	bool debug_io;                    /* --debug-io: log unknown ports */
	char config_file[VM_PATH_MAX];    /* --config FILE (already applied) */
	unsigned nr_nodes;                /* --nodes LIST; default one local */
	struct vm_node nodes[VM_MAX_NODES];
	char state_out[VM_PATH_MAX];      /* --save-to FILE (tests) */
	char state_in[VM_PATH_MAX];       /* --restore FILE */
	uint64_t pause_after_ms;          /* --save-after MS: pause+save+exit */
	char name[256];                   /* -name (accepted, for messages) */
	/* --local-nodes N: run N nodes on this host (0 = not asked; nodes[]
	 * then holds the single default "local"). */
	unsigned local_nodes;
	char cluster_key[VM_PATH_MAX];    /* --cluster-key FILE (remote nodes) */
	bool print_stats;                 /* --stats: counters at exit */
	bool numa_flat;                   /* --numa flat: one guest NUMA node */
	/* --dsm-hold-us N: minimum time a node keeps a page it just got;
	 * -1 = the default for the host (see machine_cluster.c). */
	int32_t dsm_hold_us;
	/* --dsm-track-writes: the first write after a read faults too (the
	 * cluster bench's local write-protect fault). */
	bool dsm_track_writes;
	/* --dsm-shadow-flush auto|on|off (vmm/shadow_flush.h). */
	enum vm_auto_switch dsm_shadow_flush;
	/* -drive, in order: drive i is virtio-blk i in PCI slot 2 + i. */
	unsigned nr_drives;
	struct drive_opts drives[VM_MAX_DRIVES];
	/* -nic, -netdev, -device virtio-net-pci / virtio-rng-pci. */
	struct vm_net_config net;
	/* -bios FILE: boot through this firmware image; without -kernel a
	 * -drive boots through SeaBIOS (vmm/machine_firmware.c). */
	char bios[VM_PATH_MAX];
	bool debugcon_off;                /* -debugcon none: hide its log */
};

#endif
