/* virtio-pci: the function's config space (header, capabilities, the PCI
 * configuration access window), BAR 0 placement, and the BAR's register
 * decoding.  Interrupts and state: virtio_pci_irq.c. */
#include "vmm/devices/virtio_pci.h"

#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/pci_window.h"
#include "vmm/devices/virtio_pci_priv.h"

/* The common configuration's fields (virtio 1.x 4.1.4.3). */
struct common_field {
	uint16_t off;
	uint8_t size;
	uint8_t reg;      /* enum virtio_common_reg */
	uint8_t reg_hi;   /* the upper half of a 64-bit field */
};

static const struct common_field common_fields[] = {
	{ 0x00, 4, VIRTIO_COMMON_DFSELECT, 0 },
	{ 0x04, 4, VIRTIO_COMMON_DF, 0 },
	{ 0x08, 4, VIRTIO_COMMON_GFSELECT, 0 },
	{ 0x0C, 4, VIRTIO_COMMON_GF, 0 },
	{ 0x10, 2, VIRTIO_COMMON_MSIX_CONFIG, 0 },
	{ 0x12, 2, VIRTIO_COMMON_NUM_QUEUES, 0 },
	{ 0x14, 1, VIRTIO_COMMON_STATUS, 0 },
	{ 0x15, 1, VIRTIO_COMMON_CFG_GENERATION, 0 },
	{ 0x16, 2, VIRTIO_COMMON_Q_SELECT, 0 },
	{ 0x18, 2, VIRTIO_COMMON_Q_SIZE, 0 },
	{ 0x1A, 2, VIRTIO_COMMON_Q_MSIX_VECTOR, 0 },
	{ 0x1C, 2, VIRTIO_COMMON_Q_ENABLE, 0 },
	{ 0x1E, 2, VIRTIO_COMMON_Q_NOTIFY_OFF, 0 },
	{ 0x20, 8, VIRTIO_COMMON_Q_DESC_LO, VIRTIO_COMMON_Q_DESC_HI },
	{ 0x28, 8, VIRTIO_COMMON_Q_DRIVER_LO, VIRTIO_COMMON_Q_DRIVER_HI },
	{ 0x30, 8, VIRTIO_COMMON_Q_DEVICE_LO, VIRTIO_COMMON_Q_DEVICE_HI },
};
#define NR_COMMON_FIELDS (sizeof(common_fields) / sizeof(common_fields[0]))

static uint64_t get_bytes(const uint8_t *d, uint32_t len)
{
	uint64_t v = 0;

	for (uint32_t i = 0; i < len && i < 8; i++)
		v |= (uint64_t)d[i] << (8 * i);
	return v;
}

static void put_bytes(uint8_t *d, uint32_t len, uint64_t v)
{
	for (uint32_t i = 0; i < len && i < 8; i++)
		d[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t field_read(struct virtio_dev *vdev,
			   const struct common_field *f)
{
	uint64_t v = virtio_dev__common_read(
		vdev, (enum virtio_common_reg)f->reg);

	if (f->size == 8)
		v |= (uint64_t)virtio_dev__common_read(
			     vdev, (enum virtio_common_reg)f->reg_hi) << 32;
	return v;
}

/* Reads assemble bytes from whichever fields they cover (drivers read
 * with any width); writes must cover one field exactly, or one 32-bit
 * half of a 64-bit field (virtio 4.1.3.1 lets drivers split them). */
static void common_access(struct virtio_pci *vp, uint32_t off, uint8_t *data,
			  uint32_t len, bool is_write)
{
	struct virtio_dev *vdev = vp->vdev;
	uint64_t v = get_bytes(data, len);

	if (!is_write) {
		memset(data, 0, len);
		for (size_t i = 0; i < NR_COMMON_FIELDS; i++) {
			const struct common_field *f = &common_fields[i];
			uint8_t b[8];

			if (off >= f->off + f->size || off + len <= f->off)
				continue;
			put_bytes(b, f->size, field_read(vdev, f));
			for (uint32_t k = 0; k < f->size; k++)
				if (f->off + k >= off && f->off + k < off + len)
					data[f->off + k - off] = b[k];
		}
		return;
	}
	for (size_t i = 0; i < NR_COMMON_FIELDS; i++) {
		const struct common_field *f = &common_fields[i];
		enum virtio_common_reg reg = (enum virtio_common_reg)f->reg;
		bool reset;

		if (f->off == off && f->size == len) {
			reset = reg == VIRTIO_COMMON_STATUS && !(v & 0xFF);
			if (len == 8) {
				virtio_dev__common_write(vdev, reg,
							 (uint32_t)v);
				virtio_dev__common_write(
					vdev, (enum virtio_common_reg)f->reg_hi,
					(uint32_t)(v >> 32));
			} else {
				virtio_dev__common_write(vdev, reg,
							 (uint32_t)v);
			}
			if (reset)
				virtio_pci__after_reset(vp);
			return;
		}
		if (f->size == 8 && len == 4 &&
		    (off == f->off || off == f->off + 4u)) {
			virtio_dev__common_write(
				vdev, off == f->off ? reg :
				(enum virtio_common_reg)f->reg_hi, (uint32_t)v);
			return;
		}
	}
}

static void isr_access(struct virtio_pci *vp, uint32_t off, uint8_t *data,
		       uint32_t len, bool is_write)
{
	if (is_write)
		return;
	memset(data, 0, len);
	/* Only a read that includes the ISR byte clears it. */
	if (off == 0)
		data[0] = virtio_pci__isr_read(vp);
}

static void notify_access(struct virtio_pci *vp, uint32_t off, uint32_t len,
			  bool is_write)
{
	uint32_t q = off / VIRTIO_PCI_NOTIFY_MULT;

	/* The queue is the address written to; the value (the queue index,
	 * without VIRTIO_F_NOTIFICATION_DATA) adds nothing. */
	if (is_write && q < vp->vdev->s.num_queues)
		virtio_dev__notify(vp->vdev, q);
}

void virtio_pci__bar_io(void *opaque, uint64_t offset, uint8_t *data,
			uint32_t len, bool is_write)
{
	struct virtio_pci *vp = opaque;
	uint32_t page, off;

	if (!len || len > 8 || offset >= VIRTIO_PCI_BAR_SIZE ||
	    len > VIRTIO_PCI_BAR_SIZE - offset) {
		if (!is_write)
			memset(data, 0xFF, len);
		return;
	}
	page = (uint32_t)offset & ~0xFFFu;
	off = (uint32_t)offset & 0xFFFu;
	if (off + len > 0x1000) {
		/* Straddles two structures: no driver does that. */
		if (!is_write)
			memset(data, 0xFF, len);
		return;
	}
	switch (page) {
	case VIRTIO_PCI_COMMON_OFF:
		if (off < VIRTIO_PCI_COMMON_LEN)
			common_access(vp, off, data, len, is_write);
		else if (!is_write)
			memset(data, 0, len);
		break;
	case VIRTIO_PCI_ISR_OFF:
		isr_access(vp, off, data, len, is_write);
		break;
	case VIRTIO_PCI_DEVICE_OFF:
		if (is_write)
			virtio_dev__config_write(vp->vdev, off, data, len);
		else
			virtio_dev__config_read(vp->vdev, off, data, len);
		break;
	case VIRTIO_PCI_NOTIFY_OFF:
		notify_access(vp, off, len, is_write);
		if (!is_write)
			memset(data, 0, len);
		break;
	case VIRTIO_PCI_MSIX_TABLE_OFF:
	case VIRTIO_PCI_MSIX_PBA_OFF:
		virtio_pci__msix_access(vp, (uint32_t)offset, data, len,
					is_write);
		break;
	default:
		if (!is_write)
			memset(data, 0, len);
		break;
	}
}

/* --- config space ---------------------------------------------------- */

static void put_cap(struct virtio_pci *vp, uint8_t at, uint8_t next,
		    uint8_t len, uint8_t type, uint32_t off, uint32_t size)
{
	struct pci_dev *d = &vp->pci;

	pci_dev__set_u8(d, at, PCI_CAP_ID_VNDR);
	pci_dev__set_u8(d, at + 1u, next);
	pci_dev__set_u8(d, at + 2u, len);
	pci_dev__set_u8(d, at + 3u, type);
	pci_dev__set_u8(d, at + 4u, VIRTIO_PCI_BAR);
	pci_dev__set_u32(d, at + 8u, off);
	pci_dev__set_u32(d, at + 12u, size);
}

static uint32_t class_of(uint16_t device_id)
{
	switch (device_id) {
	case 1: return 0x020000;  /* network */
	case 2: return 0x010000;  /* block: mass storage, as QEMU */
	default: return 0xFF0000;
	}
}

static void build_config(struct virtio_pci *vp)
{
	struct pci_dev *d = &vp->pci;
	uint32_t notify_len = (uint32_t)vp->vdev->s.num_queues *
			      VIRTIO_PCI_NOTIFY_MULT;
	uint32_t dev_len = vp->vdev->config_len;
	uint8_t cfg = VIRTIO_PCI_CAP_PCI_CFG;

	pci_dev__init(d, vp->s.config, VIRTIO_PCI_VENDOR,
		      (uint16_t)(VIRTIO_PCI_DEVICE_BASE + vp->vdev->device_id),
		      class_of(vp->vdev->device_id), VIRTIO_PCI_REVISION);
	pci_dev__set_u16(d, PCI_CFG_SUBSYS_VENDOR, VIRTIO_PCI_VENDOR);
	pci_dev__set_u16(d, PCI_CFG_SUBSYS_ID, VIRTIO_PCI_SUBSYS_ID);
	pci_dev__set_u16(d, PCI_CFG_STATUS, PCI_STATUS_CAP_LIST);
	pci_dev__set_u8(d, PCI_CFG_CAP_PTR, VIRTIO_PCI_CAP_COMMON);
	pci_dev__set_u8(d, PCI_CFG_INT_PIN, 1);
	pci_dev__set_u8(d, PCI_CFG_INT_LINE, (uint8_t)vp->env.intx_gsi);
	pci_dev__set_bar(d, VIRTIO_PCI_BAR, PCI_BAR_MEM64, VIRTIO_PCI_BAR_SIZE,
			 false);

	put_cap(vp, VIRTIO_PCI_CAP_COMMON, VIRTIO_PCI_CAP_NOTIFY, 16,
		VIRTIO_PCI_CAP_COMMON_CFG, VIRTIO_PCI_COMMON_OFF,
		VIRTIO_PCI_COMMON_LEN);
	put_cap(vp, VIRTIO_PCI_CAP_NOTIFY, VIRTIO_PCI_CAP_ISR, 20,
		VIRTIO_PCI_CAP_NOTIFY_CFG, VIRTIO_PCI_NOTIFY_OFF, notify_len);
	pci_dev__set_u32(d, VIRTIO_PCI_CAP_NOTIFY + 16u,
			 VIRTIO_PCI_NOTIFY_MULT);
	put_cap(vp, VIRTIO_PCI_CAP_ISR, VIRTIO_PCI_CAP_DEVICE, 16,
		VIRTIO_PCI_CAP_ISR_CFG, VIRTIO_PCI_ISR_OFF, 1);
	put_cap(vp, VIRTIO_PCI_CAP_DEVICE, VIRTIO_PCI_CAP_PCI_CFG, 16,
		VIRTIO_PCI_CAP_DEVICE_CFG, VIRTIO_PCI_DEVICE_OFF, dev_len);
	/* The access window: bar, offset, length and data are the
	 * driver's to write (virtio 4.1.4.9). */
	put_cap(vp, cfg, VIRTIO_PCI_CAP_MSIX, 20, VIRTIO_PCI_CAP_PCI_CFG_TYPE,
		0, 0);
	d->wmask[cfg + 4u] = 0xFF;
	memset(&d->wmask[cfg + 8u], 0xFF, 12);

	pci_dev__set_u8(d, VIRTIO_PCI_CAP_MSIX, PCI_CAP_ID_MSIX);
	pci_dev__set_u8(d, VIRTIO_PCI_CAP_MSIX + 1u, 0);
	pci_dev__set_u16(d, VIRTIO_PCI_CAP_MSIX + 2u,
			 (uint16_t)(vp->nr_vectors - 1));
	pci_dev__set_u32(d, VIRTIO_PCI_CAP_MSIX + 4u,
			 VIRTIO_PCI_MSIX_TABLE_OFF | VIRTIO_PCI_BAR);
	pci_dev__set_u32(d, VIRTIO_PCI_CAP_MSIX + 8u,
			 VIRTIO_PCI_MSIX_PBA_OFF | VIRTIO_PCI_BAR);
	d->wmask[VIRTIO_PCI_CAP_MSIX + 3u] =
		(uint8_t)((PCI_MSIX_ENABLE | PCI_MSIX_MASKALL) >> 8);
}

static bool touches(uint32_t reg, uint32_t len, uint32_t at, uint32_t n)
{
	return reg < at + n && at < reg + len;
}

/* The PCI configuration access capability: bar/offset/length select a
 * BAR range, pci_cfg_data is its contents (virtio 4.1.4.9). */
static bool cfg_window(struct virtio_pci *vp, uint32_t *off, uint32_t *len)
{
	const uint8_t *c = vp->s.config + VIRTIO_PCI_CAP_PCI_CFG;
	uint32_t o = get_le32(c + 8), l = get_le32(c + 12);

	if (c[4] != VIRTIO_PCI_BAR || (l != 1 && l != 2 && l != 4) ||
	    o >= VIRTIO_PCI_BAR_SIZE || l > VIRTIO_PCI_BAR_SIZE - o ||
	    (o & (l - 1)))
		return false;
	*off = o;
	*len = l;
	return true;
}

static void pci_config_read(struct pci_dev *dev, uint32_t reg, uint32_t len)
{
	struct virtio_pci *vp = dev->opaque;
	uint8_t *data = vp->s.config + VIRTIO_PCI_CAP_PCI_CFG + 16;
	uint32_t off, l;

	if (touches(reg, len, PCI_CFG_STATUS, 1)) {
		uint8_t st = vp->s.config[PCI_CFG_STATUS] &
			     (uint8_t)~PCI_STATUS_INTX;

		if (__atomic_load_n(&vp->s.intx_level, __ATOMIC_ACQUIRE))
			st |= PCI_STATUS_INTX;
		vp->s.config[PCI_CFG_STATUS] = st;
	}
	if (touches(reg, len, VIRTIO_PCI_CAP_PCI_CFG + 16, 4) &&
	    cfg_window(vp, &off, &l)) {
		memset(data, 0, 4);
		virtio_pci__bar_io(vp, off, data, l, false);
	}
}

static void pci_config_write(struct pci_dev *dev, uint32_t reg, uint32_t len)
{
	struct virtio_pci *vp = dev->opaque;
	uint32_t off, l;

	if (touches(reg, len, PCI_CFG_COMMAND, 2) ||
	    touches(reg, len, VIRTIO_PCI_CAP_MSIX + 2, 2))
		virtio_pci__control_changed(vp);
	if (touches(reg, len, VIRTIO_PCI_CAP_PCI_CFG + 16, 4) &&
	    cfg_window(vp, &off, &l))
		virtio_pci__bar_io(vp, off,
				   vp->s.config + VIRTIO_PCI_CAP_PCI_CFG + 16,
				   l, true);
}

static void pci_bar_remap(struct pci_dev *dev, int bar, uint64_t addr,
			  bool enabled)
{
	struct virtio_pci *vp = dev->opaque;

	if (bar != VIRTIO_PCI_BAR || !vp->env.window)
		return;
	/* Address 0 and all ones (sizing with decoding left on) are not
	 * placements: decode nothing until the guest picks one. */
	if (!enabled || !addr ||
	    addr == ~(uint64_t)(VIRTIO_PCI_BAR_SIZE - 1)) {
		pci_window__unmap(vp->env.window, vp, bar);
		__atomic_store_n(&vp->bar_addr, 0, __ATOMIC_RELEASE);
	} else {
		__atomic_store_n(&vp->bar_addr,
				 pci_window__map(vp->env.window, vp, bar, addr,
						 VIRTIO_PCI_BAR_SIZE,
						 virtio_pci__bar_io, vp) ?
					 0 : addr, __ATOMIC_RELEASE);
	}
	if (vp->env.irq_changed)
		vp->env.irq_changed(vp->env.irq_changed_ctx);
}

uint64_t virtio_pci__notify_gpa(struct virtio_pci *vp, unsigned queue)
{
	uint64_t bar = __atomic_load_n(&vp->bar_addr, __ATOMIC_ACQUIRE);

	if (!bar || queue >= vp->vdev->s.num_queues)
		return 0;
	return bar + VIRTIO_PCI_NOTIFY_OFF +
	       (uint64_t)queue * VIRTIO_PCI_NOTIFY_MULT;
}

int virtio_pci__init(struct virtio_pci *vp, struct virtio_dev *vdev,
		     const struct virtio_pci_env *env, char *err,
		     size_t errlen)
{
	struct virtio_transport tr;
	unsigned nv = (unsigned)vdev->s.num_queues + 1;

	memset(vp, 0, sizeof(*vp));
	if (nv > VIRTIO_PCI_MAX_VECTORS || !vdev->device_id ||
	    vdev->config_len > VIRTIO_PCI_DEVICE_MAX) {
		snprintf(err, errlen, "%s: too many queues or too large a "
			 "config space for virtio-pci", vdev->name);
		return -1;
	}
	pthread_mutex_init(&vp->lock, NULL);
	vp->vdev = vdev;
	vp->env = *env;
	vp->nr_vectors = (uint16_t)nv;
	snprintf(vp->name, sizeof(vp->name), "%s-pci", vdev->name);
	build_config(vp);
	vp->pci.opaque = vp;
	vp->pci.config_read = pci_config_read;
	vp->pci.config_write = pci_config_write;
	vp->pci.bar_remap = pci_bar_remap;
	virtio_pci__msix_reset(vp);
	virtio_pci__control_changed(vp);
	tr = (struct virtio_transport){
		.interrupt = virtio_pci__queue_irq,
		.config_interrupt = virtio_pci__config_irq,
		.ctx = vp,
	};
	virtio_dev__set_transport(vdev, &tr, vp->nr_vectors);
	return 0;
}

void virtio_pci__destroy(struct virtio_pci *vp)
{
	if (vp->env.window)
		pci_window__unmap(vp->env.window, vp, VIRTIO_PCI_BAR);
	pthread_mutex_destroy(&vp->lock);
}

struct pci_dev *virtio_pci__pci_dev(struct virtio_pci *vp)
{
	return &vp->pci;
}

/* Bytes whose value the function fixes (not the guest): a saved state
 * must agree on them, or it describes another function. */
bool virtio_pci__same_layout(const struct virtio_pci *vp,
			     const uint8_t *config)
{
	for (unsigned r = 0; r < PCI_CONFIG_SIZE; r++) {
		uint8_t fixed = (uint8_t)~(vp->pci.wmask[r] | vp->pci.w1cmask[r]);

		if (r == PCI_CFG_STATUS)
			fixed &= (uint8_t)~PCI_STATUS_INTX;
		if ((config[r] & fixed) != (vp->s.config[r] & fixed))
			return false;
	}
	return true;
}
