/* virtio-pci interrupts: the MSI-X table and pending bits, masking, the
 * INTx line that follows the ISR byte; pause and versioned save/load. */
#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/virtio_pci.h"
#include "vmm/devices/virtio_pci_priv.h"

#define MSI_ADDR_BASE 0xFEE00000ull

struct msi {
	uint64_t addr;
	uint32_t data;
};

static uint8_t *entry(struct virtio_pci *vp, unsigned v)
{
	return vp->s.msix_table + (size_t)v * VIRTIO_PCI_MSIX_ENTRY;
}

static bool entry_masked(struct virtio_pci *vp, unsigned v)
{
	return get_le32(entry(vp, v) + 12) & PCI_MSIX_VECTOR_MASKED;
}

static bool pending(const struct virtio_pci *vp, unsigned v)
{
	return vp->s.msix_pba[v / 64] >> (v % 64) & 1;
}

static void set_pending(struct virtio_pci *vp, unsigned v, bool on)
{
	if (on)
		vp->s.msix_pba[v / 64] |= 1ull << (v % 64);
	else
		vp->s.msix_pba[v / 64] &= ~(1ull << (v % 64));
}

static struct msi message(struct virtio_pci *vp, unsigned v)
{
	const uint8_t *e = entry(vp, v);

	return (struct msi){ get_le64(e), get_le32(e + 8) };
}

static void send_msis(struct virtio_pci *vp, const struct msi *m, unsigned n)
{
	for (unsigned i = 0; i < n; i++)
		if (vp->env.msi.send)
			vp->env.msi.send(vp->env.msi.ctx, m[i].addr, m[i].data);
}

/* vp->lock held.  INTx is the ISR's "anything pending" while the driver
 * uses it: not with MSI-X on, not with INTx disabled. */
static void intx_update(struct virtio_pci *vp)
{
	bool want = !(vp->msix_ctrl & PCI_MSIX_ENABLE) &&
		    !(vp->command & PCI_COMMAND_INTX_DISABLE) &&
		    __atomic_load_n(&vp->vdev->s.isr, __ATOMIC_ACQUIRE);

	if (want == (bool)vp->s.intx_level)
		return;
	__atomic_store_n(&vp->s.intx_level, want, __ATOMIC_RELEASE);
	irq_sink__set(&vp->env.irq, vp->env.intx_gsi, want);
}

/* vp->lock held.  Collects the messages of pending vectors that may go
 * out now, clearing their pending bits.  Returns how many. */
static unsigned release_pending(struct virtio_pci *vp, struct msi *out)
{
	unsigned n = 0;

	if (!(vp->msix_ctrl & PCI_MSIX_ENABLE) ||
	    (vp->msix_ctrl & PCI_MSIX_MASKALL))
		return 0;
	for (unsigned v = 0; v < vp->nr_vectors; v++) {
		if (!pending(vp, v) || entry_masked(vp, v))
			continue;
		set_pending(vp, v, false);
		out[n++] = message(vp, v);
	}
	return n;
}

static void signal_vector(struct virtio_pci *vp, uint16_t vector)
{
	struct msi m;
	bool send = false;

	pthread_mutex_lock(&vp->lock);
	if (!(vp->msix_ctrl & PCI_MSIX_ENABLE)) {
		intx_update(vp);
	} else if (vector < vp->nr_vectors) {
		if ((vp->msix_ctrl & PCI_MSIX_MASKALL) ||
		    entry_masked(vp, vector)) {
			set_pending(vp, vector, true);
		} else {
			m = message(vp, vector);
			send = true;
		}
	}
	/* VIRTIO_NO_VECTOR with MSI-X on: the driver asked for none. */
	pthread_mutex_unlock(&vp->lock);
	if (send)
		send_msis(vp, &m, 1);
}

void virtio_pci__queue_irq(void *ctx, unsigned queue)
{
	struct virtio_pci *vp = ctx;

	signal_vector(vp, virtio_dev__queue_vector(vp->vdev, queue));
}

void virtio_pci__config_irq(void *ctx)
{
	struct virtio_pci *vp = ctx;

	signal_vector(vp, __atomic_load_n(&vp->vdev->s.msix_config,
					  __ATOMIC_RELAXED));
}

void virtio_pci__msix_reset(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	memset(vp->s.msix_table, 0, sizeof(vp->s.msix_table));
	memset(vp->s.msix_pba, 0, sizeof(vp->s.msix_pba));
	/* Every vector starts masked (PCI 3.0 6.8.2.9). */
	for (unsigned v = 0; v < vp->nr_vectors; v++)
		put_le32(entry(vp, v) + 12, PCI_MSIX_VECTOR_MASKED);
	pthread_mutex_unlock(&vp->lock);
}

void virtio_pci__control_changed(struct virtio_pci *vp)
{
	struct msi out[VIRTIO_PCI_MAX_VECTORS];
	unsigned n;

	pthread_mutex_lock(&vp->lock);
	vp->command = (uint16_t)pci_dev__get(&vp->pci, PCI_CFG_COMMAND, 2);
	vp->msix_ctrl = (uint16_t)pci_dev__get(&vp->pci,
					       VIRTIO_PCI_CAP_MSIX + 2, 2);
	intx_update(vp);
	n = release_pending(vp, out);
	pthread_mutex_unlock(&vp->lock);
	send_msis(vp, out, n);
	if (vp->env.irq_changed)
		vp->env.irq_changed(vp->env.irq_changed_ctx);
}

/* vp->lock held.  Returns 1 with *out filled when the write unmasked a
 * pending vector that may go out now. */
static unsigned table_write(struct virtio_pci *vp, uint32_t off,
			    const uint8_t *data, uint32_t len, struct msi *out)
{
	unsigned v = off / VIRTIO_PCI_MSIX_ENTRY;
	uint8_t *e = entry(vp, v);

	for (uint32_t i = 0; i < len; i++) {
		uint32_t b = off % VIRTIO_PCI_MSIX_ENTRY + i;

		if (b < 12)
			e[b] = data[i];
		else if (b == 12)
			e[b] = data[i] & PCI_MSIX_VECTOR_MASKED;
		/* the rest of vector control is reserved: reads 0 */
	}
	if (pending(vp, v) && !entry_masked(vp, v) &&
	    (vp->msix_ctrl & PCI_MSIX_ENABLE) &&
	    !(vp->msix_ctrl & PCI_MSIX_MASKALL)) {
		set_pending(vp, v, false);
		*out = message(vp, v);
		return 1;
	}
	return 0;
}

void virtio_pci__msix_access(struct virtio_pci *vp, uint32_t offset,
			     uint8_t *data, uint32_t len, bool is_write)
{
	uint32_t table_len = (uint32_t)vp->nr_vectors * VIRTIO_PCI_MSIX_ENTRY;
	uint32_t off;
	struct msi out;
	unsigned n = 0;

	pthread_mutex_lock(&vp->lock);
	if (offset >= VIRTIO_PCI_MSIX_PBA_OFF) {
		off = offset - VIRTIO_PCI_MSIX_PBA_OFF;
		/* Read-only; past the last vector's bit reads 0. */
		if (!is_write)
			for (uint32_t i = 0; i < len; i++) {
				uint32_t bit = (off + i) * 8;

				data[i] = bit < vp->nr_vectors ?
					(uint8_t)(vp->s.msix_pba[bit / 64] >>
						  (bit % 64)) : 0;
				if (bit + 8 > vp->nr_vectors &&
				    bit < vp->nr_vectors)
					data[i] &= (uint8_t)((1u <<
						(vp->nr_vectors - bit)) - 1);
			}
	} else {
		off = offset - VIRTIO_PCI_MSIX_TABLE_OFF;
		/* Within one entry of the table (DWORD or QWORD accesses, as
		 * PCI wants; narrower ones work too). */
		if (off >= table_len || len > table_len - off ||
		    off % VIRTIO_PCI_MSIX_ENTRY + len > VIRTIO_PCI_MSIX_ENTRY) {
			if (!is_write)
				memset(data, 0, len);
		} else if (is_write) {
			n = table_write(vp, off, data, len, &out);
		} else {
			memcpy(data, vp->s.msix_table + off, len);
		}
	}
	pthread_mutex_unlock(&vp->lock);
	send_msis(vp, &out, n);
	if (is_write && offset < VIRTIO_PCI_MSIX_PBA_OFF &&
	    vp->env.irq_changed)
		vp->env.irq_changed(vp->env.irq_changed_ctx);
}

bool virtio_pci__vector_msi(struct virtio_pci *vp, uint16_t vector,
			    uint64_t *addr, uint32_t *data)
{
	bool direct;
	struct msi m = { 0, 0 };

	pthread_mutex_lock(&vp->lock);
	direct = (vp->msix_ctrl & PCI_MSIX_ENABLE) &&
		 !(vp->msix_ctrl & PCI_MSIX_MASKALL) &&
		 vector < vp->nr_vectors && !entry_masked(vp, vector);
	if (direct)
		m = message(vp, vector);
	pthread_mutex_unlock(&vp->lock);
	*addr = m.addr;
	*data = m.data;
	return direct;
}

bool virtio_pci__msix_pending(struct virtio_pci *vp, uint16_t vector)
{
	bool p;

	pthread_mutex_lock(&vp->lock);
	p = vector < vp->nr_vectors && pending(vp, vector);
	pthread_mutex_unlock(&vp->lock);
	return p;
}

uint8_t virtio_pci__isr_read(struct virtio_pci *vp)
{
	uint8_t isr;

	pthread_mutex_lock(&vp->lock);
	isr = virtio_dev__isr_read(vp->vdev);
	intx_update(vp);
	pthread_mutex_unlock(&vp->lock);
	return isr;
}

void virtio_pci__after_reset(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	intx_update(vp);
	pthread_mutex_unlock(&vp->lock);
	if (vp->env.reset)
		vp->env.reset(vp->env.reset_ctx);
}

int virtio_pci__msi_to_apic(uint64_t addr, uint32_t data,
			    struct apic_msg *out)
{
	if ((addr & ~0xFFFFFull) != MSI_ADDR_BASE)
		return -1;
	memset(out, 0, sizeof(*out));
	out->dest = (uint32_t)(addr >> 12) & 0xFF;
	out->source = -1;
	out->vector = (uint8_t)data;
	out->delivery = (uint8_t)((data >> 8) & 7);
	out->dest_logical = (uint8_t)((addr >> 2) & 1);
	out->shorthand = APIC_SH_NONE;
	out->level = 1;
	out->trigger_level = (uint8_t)((data >> 15) & 1);
	return 0;
}

void virtio_pci__pause(struct virtio_pci *vp)
{
	virtio_dev__pause(vp->vdev);
}

void virtio_pci__resume(struct virtio_pci *vp)
{
	virtio_dev__resume(vp->vdev);
}

int virtio_pci__save(struct virtio_pci *vp, struct state_writer *w,
		     char *err, size_t errlen)
{
	int r;

	pthread_mutex_lock(&vp->lock);
	r = state_writer__add(w, vp->name, VIRTIO_PCI_STATE_VERSION, &vp->s,
			      sizeof(vp->s));
	pthread_mutex_unlock(&vp->lock);
	if (r < 0)
		snprintf(err, errlen, "saving %s: out of memory", vp->name);
	return r;
}

int virtio_pci__load(struct virtio_pci *vp, struct state_reader *r,
		     char *err, size_t errlen)
{
	struct virtio_pci_state in;

	if (state_reader__get(r, vp->name, VIRTIO_PCI_STATE_VERSION, &in,
			      sizeof(in), err, errlen) < 0)
		return -1;
	if (!virtio_pci__same_layout(vp, in.config) || in.intx_level > 1) {
		snprintf(err, errlen, "%s: the saved PCI function is not this "
			 "one (ids, capabilities or queues differ)", vp->name);
		return -1;
	}
	pthread_mutex_lock(&vp->lock);
	vp->s = in;
	pthread_mutex_unlock(&vp->lock);
	return 0;
}

void virtio_pci__post_load(struct virtio_pci *vp)
{
	pthread_mutex_lock(&vp->lock);
	vp->command = (uint16_t)pci_dev__get(&vp->pci, PCI_CFG_COMMAND, 2);
	vp->msix_ctrl = (uint16_t)pci_dev__get(&vp->pci,
					       VIRTIO_PCI_CAP_MSIX + 2, 2);
	/* The line as saved; intx_update moves it from there. */
	irq_sink__set(&vp->env.irq, vp->env.intx_gsi, vp->s.intx_level);
	intx_update(vp);
	pthread_mutex_unlock(&vp->lock);
}
