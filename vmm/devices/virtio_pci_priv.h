/* What virtio_pci.c (config space, BAR decoding) and virtio_pci_irq.c
 * (MSI-X, INTx, state) share.  Internal to the virtio-pci transport. */
#ifndef KRG_VMM_DEVICES_VIRTIO_PCI_PRIV_H
#define KRG_VMM_DEVICES_VIRTIO_PCI_PRIV_H

#include "vmm/devices/virtio_pci.h"

/* virtio_pci_irq.c */
void virtio_pci__msix_reset(struct virtio_pci *vp);
/* The command register or the MSI-X message control changed (PCI host
 * lock held): refresh the copies, move INTx, deliver what unmasking
 * released. */
void virtio_pci__control_changed(struct virtio_pci *vp);
void virtio_pci__msix_access(struct virtio_pci *vp, uint32_t offset,
			     uint8_t *data, uint32_t len, bool is_write);
/* Reads and clears the ISR byte and lowers INTx accordingly. */
uint8_t virtio_pci__isr_read(struct virtio_pci *vp);
/* After a device reset (status 0 written). */
void virtio_pci__after_reset(struct virtio_pci *vp);
/* struct virtio_transport callbacks (ctx: the struct virtio_pci). */
void virtio_pci__queue_irq(void *ctx, unsigned queue);
void virtio_pci__config_irq(void *ctx);

/* virtio_pci.c */
bool virtio_pci__same_layout(const struct virtio_pci *vp,
			     const uint8_t *config);

#endif
