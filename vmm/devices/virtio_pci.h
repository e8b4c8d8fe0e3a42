/* virtio over PCI, modern only (virtio 1.x 4.1): a PCI function with the
 * virtio vendor capabilities, one 64-bit memory BAR holding every
 * structure, MSI-X, and INTx for drivers without MSI-X.
 *
 * BAR 0 (64-bit, VIRTIO_PCI_BAR_SIZE bytes), one structure per 4 KiB page:
 *   0x0000 common configuration (virtio_pci_common_cfg, 0x38 bytes)
 *   0x1000 ISR status (1 byte, read-to-clear)
 *   0x2000 device-specific configuration
 *   0x3000 notifications: queue q at 0x3000 + q * 4 (notify_off = q,
 *          notify_off_multiplier = 4)
 *   0x4000 MSI-X table (16 bytes per vector)
 *   0x5000 MSI-X pending bit array
 * Config space capabilities from 0x40: common, notify, ISR, device, the
 * PCI configuration access capability (a window into the BAR through
 * config space), then MSI-X.
 *
 * Interrupts: with MSI-X enabled, a queue's or the configuration's vector
 * becomes an MSI (env.msi) unless the function or the vector is masked,
 * in which case its pending bit is set and the message goes out when
 * unmasked; VIRTIO_NO_VECTOR means no interrupt.  Without MSI-X the INTx
 * line (pin A, env.intx_gsi) follows the ISR byte: high while it is
 * non-zero and the command register allows INTx, low after the driver
 * read it.
 *
 * Locks: vp->lock guards the MSI-X state and the INTx line; it is taken
 * after the PCI host's lock (config callbacks) and after nothing else.  It
 * is never held across a call into the virtio device or the MSI sink; it
 * is held across the IRQ sink, so the line's level changes in the order
 * the ISR byte does. */
#ifndef KRG_VMM_DEVICES_VIRTIO_PCI_H
#define KRG_VMM_DEVICES_VIRTIO_PCI_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vcpu/apic.h"
#include "vmm/device.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/virtio.h"
#include "vmm/state_blob.h"

#define VIRTIO_PCI_VENDOR 0x1AF4
#define VIRTIO_PCI_DEVICE_BASE 0x1040 /* + virtio device ID */
#define VIRTIO_PCI_SUBSYS_ID 0x1100   /* modern devices, as QEMU */
#define VIRTIO_PCI_REVISION 1
#define VIRTIO_PCI_STATE_VERSION 1

#define VIRTIO_PCI_BAR 0
#define VIRTIO_PCI_BAR_SIZE 0x8000
#define VIRTIO_PCI_COMMON_OFF 0x0000
#define VIRTIO_PCI_COMMON_LEN 0x38
#define VIRTIO_PCI_ISR_OFF 0x1000
#define VIRTIO_PCI_DEVICE_OFF 0x2000
#define VIRTIO_PCI_DEVICE_MAX 0x1000
#define VIRTIO_PCI_NOTIFY_OFF 0x3000
#define VIRTIO_PCI_NOTIFY_MULT 4
#define VIRTIO_PCI_MSIX_TABLE_OFF 0x4000
#define VIRTIO_PCI_MSIX_PBA_OFF 0x5000
#define VIRTIO_PCI_MAX_VECTORS 128
#define VIRTIO_PCI_MSIX_ENTRY 16

/* Capability offsets in config space. */
#define VIRTIO_PCI_CAP_COMMON 0x40
#define VIRTIO_PCI_CAP_NOTIFY 0x50
#define VIRTIO_PCI_CAP_ISR 0x64
#define VIRTIO_PCI_CAP_DEVICE 0x74
#define VIRTIO_PCI_CAP_PCI_CFG 0x84
#define VIRTIO_PCI_CAP_MSIX 0x98

/* virtio_pci_cap.cfg_type */
#define VIRTIO_PCI_CAP_COMMON_CFG 1
#define VIRTIO_PCI_CAP_NOTIFY_CFG 2
#define VIRTIO_PCI_CAP_ISR_CFG 3
#define VIRTIO_PCI_CAP_DEVICE_CFG 4
#define VIRTIO_PCI_CAP_PCI_CFG_TYPE 5

#define PCI_CAP_ID_VNDR 0x09
#define PCI_CAP_ID_MSIX 0x11
#define PCI_MSIX_ENABLE 0x8000
#define PCI_MSIX_MASKALL 0x4000
#define PCI_MSIX_VECTOR_MASKED 0x1
#define PCI_STATUS_INTX 0x0008

struct pci_window;

/* Where an MSI goes: the machine turns it into an APIC message. */
struct pci_msi_sink {
	void (*send)(void *ctx, uint64_t addr, uint32_t data);
	void *ctx;
};

struct virtio_pci_env {
	struct irq_sink irq;       /* INTx */
	unsigned intx_gsi;         /* pin A's GSI (also the Interrupt Line) */
	struct pci_msi_sink msi;
	/* Where BAR 0 is decoded; NULL: nowhere (unit tests use
	 * virtio_pci__bar_io directly). */
	struct pci_window *window;
	/* After the driver reset the device (status 0): the queues are
	 * idle by then; the machine drains the backend here. */
	void (*reset)(void *ctx);
	void *reset_ctx;
	/* Where an interrupt or a doorbell goes may have changed (an MSI-X
	 * entry or the function's mask, MSI-X enable, BAR 0 placement):
	 * called with no vp->lock held, possibly under the PCI host's lock
	 * (cluster VMs tell the node serving a queue, virtio_blk_mq.h). */
	void (*irq_changed)(void *ctx);
	void *irq_changed_ctx;
};

/* The transport's saved state: plain data. */
struct virtio_pci_state {
	uint8_t config[PCI_CONFIG_SIZE];
	uint8_t msix_table[VIRTIO_PCI_MAX_VECTORS * VIRTIO_PCI_MSIX_ENTRY];
	uint64_t msix_pba[VIRTIO_PCI_MAX_VECTORS / 64];
	uint8_t intx_level;
	uint8_t pad[7];
};
_Static_assert(sizeof(struct virtio_pci_state) ==
		       PCI_CONFIG_SIZE +
			       VIRTIO_PCI_MAX_VECTORS * VIRTIO_PCI_MSIX_ENTRY +
			       VIRTIO_PCI_MAX_VECTORS / 8 + 8,
	       "virtio_pci_state is a saved format: bump "
	       "VIRTIO_PCI_STATE_VERSION");

struct virtio_pci {
	struct virtio_pci_state s;
	pthread_mutex_t lock;
	struct pci_dev pci;
	struct virtio_dev *vdev;
	struct virtio_pci_env env;
	uint16_t nr_vectors;
	/* Copies of config-space bits the interrupt path reads without the
	 * PCI host's lock (refreshed under it, read under vp->lock). */
	uint16_t msix_ctrl;
	uint16_t command;
	uint64_t bar_addr;         /* BAR 0 while decoded, else 0 (atomic) */
	char name[48];
};

/* Builds the function for vdev (its device_id, config_len and queue
 * count must be set): nr_vectors = queues + 1 (one per queue and one for
 * configuration changes).  Registers itself as vdev's transport.  Returns
 * 0, or -1 with one line in err. */
int virtio_pci__init(struct virtio_pci *vp, struct virtio_dev *vdev,
		     const struct virtio_pci_env *env, char *err,
		     size_t errlen);
void virtio_pci__destroy(struct virtio_pci *vp);
/* What to hand to pci_host__add_device. */
struct pci_dev *virtio_pci__pci_dev(struct virtio_pci *vp);

/* io_handler_fn on BAR 0 (opaque: the struct virtio_pci, offset within
 * the BAR); any length 1..8. */
void virtio_pci__bar_io(void *opaque, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write);

/* Whether a signal on vector goes out as an MSI right now (MSI-X on,
 * neither the function nor the vector masked): then *addr and *data are
 * its message.  Otherwise it would set a pending bit or move INTx. */
bool virtio_pci__vector_msi(struct virtio_pci *vp, uint16_t vector,
			    uint64_t *addr, uint32_t *data);
/* The guest-physical address of queue's doorbell, 0 while BAR 0 is not
 * decoded. */
uint64_t virtio_pci__notify_gpa(struct virtio_pci *vp, unsigned queue);

/* Whether vector's MSI-X pending bit is set (for tests and reports). */
bool virtio_pci__msix_pending(struct virtio_pci *vp, uint16_t vector);

/* Stop the device taking requests and wait for those in flight; resume
 * delivers held interrupts. */
void virtio_pci__pause(struct virtio_pci *vp);
void virtio_pci__resume(struct virtio_pci *vp);

/* The transport's section ("<device name>-pci").  The device model's own
 * section (virtio_blk__save, ...) goes with it; save needs a paused
 * device.  Load refuses a state of a different function layout; then
 * pci_host__post_load re-announces the BAR and virtio_pci__post_load
 * restores the INTx line. */
int virtio_pci__save(struct virtio_pci *vp, struct state_writer *w,
		     char *err, size_t errlen);
int virtio_pci__load(struct virtio_pci *vp, struct state_reader *r,
		     char *err, size_t errlen);
void virtio_pci__post_load(struct virtio_pci *vp);

/* An MSI (address, data) as the interrupt message the router delivers:
 * destination, physical/logical, delivery mode, vector, trigger.
 * Returns 0, or -1 if addr is not in the 0xFEExxxxx interrupt range (the
 * write would go to memory, which a VMM drops). */
int virtio_pci__msi_to_apic(uint64_t addr, uint32_t data,
			    struct apic_msg *out);

#endif
