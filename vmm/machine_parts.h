/* The machine builder's steps, one file each (internal to vmm/). */
#ifndef KRG_VMM_MACHINE_PARTS_H
#define KRG_VMM_MACHINE_PARTS_H

#include <stdbool.h>
#include <stddef.h>

struct kvm_cpuid2;

struct machine;
struct state_writer;
struct state_reader;

/* vmm/machine_boot.c: read and check the kernel/initrd files (exit status
 * KRG_EXIT_USAGE on bad input), then load them into RAM with the ACPI
 * tables and E820, and set the BSP's entry state. */
int machine__read_guest_files(struct machine *m, char *err, size_t errlen);
void machine__free_guest_files(struct machine *m);
int machine__load_guest(struct machine *m, char *err, size_t errlen);

/* vmm/machine_cpu.c: the CPUID template (policy, -cpu, PVM profile). */
/* vmm/machine_run.c: how devices reach the life cycle. */
void machine__init_control(struct machine *m);

int machine__setup_cpuid(struct machine *m, char *err, size_t errlen);
/* A node > 0 takes node 0's table as it is (every vCPU must agree). */
int machine__adopt_cpuid(struct machine *m, const struct kvm_cpuid2 *cpuid,
			 char *err, size_t errlen);
/* vmm/machine_boot.c: the files read are a Linux kernel. */
bool machine__guest_is_linux(const struct machine *m);

/* vmm/machine_cluster.c: a node's share of a cluster VM. */
struct machine_node;
int machine__setup_layout(struct machine *m, const struct machine_node *node,
			  char *err, size_t errlen);
int machine__setup_irq_remote(struct machine *m, char *err, size_t errlen);
int machine__setup_cluster(struct machine *m, const struct machine_node *node,
			   char *err, size_t errlen);
void machine__destroy_cluster(struct machine *m);
/* Whether vCPU i runs on this node (always, for a single node). */
bool machine__vcpu_is_local(const struct machine *m, unsigned i);

/* vmm/machine_devices.c: interrupt controllers, devices, io registry. */
int machine__build_devices(struct machine *m, char *err, size_t errlen);
void machine__start_devices(struct machine *m);
void machine__stop_devices(struct machine *m);
void machine__destroy_devices(struct machine *m);
int machine__save_devices(struct machine *m, struct state_writer *w,
			  char *err, size_t errlen);
int machine__load_devices(struct machine *m, struct state_reader *r,
			  char *err, size_t errlen);

/* vmm/machine_drives.c: the -drive disks, virtio-blk over virtio-pci on
 * node 0 (PCI slot MACHINE_DRIVE_SLOT0 + i, INTx pin A on GSI
 * MACHINE_PCI_INTX_GSI0 + (slot % 4), as the ACPI _PRT says).  Build
 * opens every image (KRG_EXIT_FAILURE and "-drive N: ..." on failure);
 * stop waits for requests in flight; destroy closes the images. */
#define MACHINE_DRIVE_SLOT0 2
#define MACHINE_PCI_INTX_GSI0 16
int machine__build_drives(struct machine *m, char *err, size_t errlen);
void machine__stop_drives(struct machine *m);
void machine__destroy_drives(struct machine *m);
int machine__save_drives(struct machine *m, struct state_writer *w,
			 char *err, size_t errlen);
int machine__load_drives(struct machine *m, struct state_reader *r,
			 char *err, size_t errlen);
void machine__post_load_drives(struct machine *m);

#endif
