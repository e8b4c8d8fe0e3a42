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

/* vmm/machine_boot.c: the ACPI description of this machine, shared by the
 * direct kernel boot and the firmware boot (numa: storage for c->numa). */
struct acpi_config;
struct acpi_numa;
void machine__acpi_config(struct machine *m, struct acpi_config *c,
			  struct acpi_numa *numa);

/* vmm/machine_firmware.c: booting through a BIOS image (SeaBIOS), chosen
 * by -bios or by a -drive without -kernel.  Read checks the image
 * (KRG_EXIT_USAGE on a bad one); load maps it, fills fw_cfg and puts the
 * boot vCPU at the reset vector (restoring: maps it and fills fw_cfg;
 * RAM and registers come from the state file). */
#define MACHINE_DEFAULT_BIOS "/usr/share/seabios/bios-256k.bin"
struct vm_config;
bool machine__firmware_boot(const struct vm_config *cfg);
int machine__read_firmware(struct machine *m, char *err, size_t errlen);
int machine__load_firmware(struct machine *m, bool restoring, char *err,
			   size_t errlen);
void machine__free_firmware(struct machine *m);
/* debugcon_line_fn (ctx: the machine): stops the VM with a clear error
 * when the firmware says it found nothing to boot. */
void machine__firmware_log_line(void *ctx, const char *line);

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
 * node 0 (PCI slot MACHINE_DRIVE_SLOT0 + i, INTx pin A through
 * pci_host__intx_sink on PIRQ pci_host__intx_pirq(slot, 0), i.e. GSI
 * MACHINE_PCI_INTX_GSI0 + that, as the ACPI _PRT says).  Build
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
/* Checkpoints: hold every drive paused (no request runs or completes into
 * guest RAM; machine__save_drives leaves a held drive paused) or let them
 * go; with the drives held, drive i's image may be swapped for another
 * block device (the old one is then the caller's to close, its guest-set
 * write cache mode the caller's to carry over). */
struct block_dev;
void machine__hold_drives(struct machine *m, bool hold);
unsigned machine__nr_drives(const struct machine *m);
struct block_dev *machine__drive_bdev(struct machine *m, unsigned i);
void machine__drive_set_bdev(struct machine *m, unsigned i,
			     struct block_dev *b);

/* vmm/machine_blk_mq.c: virtio-blk queues served on the node of their
 * vCPU in a cluster VM (vmm/devices/virtio_blk_mq.h).  attach: node 0's
 * drive i (after its virtio-pci function exists); setup: a node > 0's
 * serving side (machine__setup_cluster); recv: the BLK_MQ_T_* messages;
 * abort at machine__quiesce, free at machine__destroy_cluster; hold:
 * drive i's queues back on node 0 (true) or handed out again. */
struct virtio_blk;
struct virtio_pci;
struct blk_mq_stats;
int machine__blk_mq_attach(struct machine *m, unsigned drive,
			   struct virtio_blk *blk, struct virtio_pci *vp,
			   struct block_dev *bdev, char *err, size_t errlen);
int machine__blk_mq_setup(struct machine *m, char *err, size_t errlen);
void machine__blk_mq_recv(struct machine *m, unsigned sender, unsigned type,
			  const void *payload, size_t len);
void machine__blk_mq_abort(struct machine *m);
void machine__blk_mq_free(struct machine *m);
int machine__blk_mq_hold(struct machine *m, unsigned drive, bool hold);
/* Node 0 swapped drive i's image for b (held): other nodes follow. */
void machine__blk_mq_set_bdev(struct machine *m, unsigned drive,
			      struct block_dev *b);
void machine__blk_mq_stats(struct machine *m, struct blk_mq_stats *out);

/* vmm/machine_drives.c: the PCI memory window every virtio-pci function
 * decodes through (built when there are disks or network devices). */
struct pci_window;
struct pci_window *machine__pci_window(struct machine *m);

/* vmm/machine_net.c: -nic / -device virtio-net-pci (virtio-net i in PCI
 * slot MACHINE_NIC_SLOT0 + i, its backend on its own thread) and
 * -device virtio-rng-pci (slot MACHINE_RNG_SLOT), node 0 only.  Build
 * opens the backends (hostfwd ports bound, tap devices opened: exit
 * status KRG_EXIT_FAILURE and "-nic N: ..." on failure); start runs the
 * backend threads (after a restore loaded the devices); stop ends them. */
#define MACHINE_NIC_SLOT0 10
#define MACHINE_RNG_SLOT 14
bool machine__wants_net(const struct vm_config *cfg);
int machine__build_net(struct machine *m, char *err, size_t errlen);
void machine__start_net(struct machine *m);
void machine__stop_net(struct machine *m);
void machine__destroy_net(struct machine *m);
int machine__save_net(struct machine *m, struct state_writer *w, char *err,
		      size_t errlen);
int machine__load_net(struct machine *m, struct state_reader *r, char *err,
		      size_t errlen);
void machine__post_load_net(struct machine *m);

#endif
