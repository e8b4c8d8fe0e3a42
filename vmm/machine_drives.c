/* The -drive disks: each image opened with storage/'s block layer, served
 * by a virtio-blk device on the virtio-pci transport, in PCI slot 2, 3, ...
 * of node 0's PCI host.  Memory BARs are decoded through one window over
 * the 32-bit PCI hole (vmm/devices/pci_window.h); MSI-X messages become
 * APIC messages for the interrupt router, which reaches vCPUs on every
 * node; INTx goes to the IOAPIC pins the ACPI _PRT names. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "guestfw/acpi.h"
#include "storage/block.h"
#include "vcpu/irq_route.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/pci_window.h"
#include "vmm/devices/virtio_blk.h"
#include "vmm/devices/virtio_blk_mq.h"
#include "vmm/devices/virtio_pci.h"
#include "vmm/errf.h"
#include "vmm/io_bus.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

struct machine_drive {
	struct block_dev *bdev;
	struct virtio_blk blk;
	struct virtio_pci vp;
	bool blk_ready, pci_ready;
};

struct machine_drives {
	struct pci_window window;
	unsigned nr;
	struct machine_drive d[VM_MAX_DRIVES];
	bool held;	/* paused for a checkpoint (machine__hold_drives) */
};

static int be_submit(void *dev, struct block_req *req)
{
	return block__submit(dev, req);
}

static void be_info(void *dev, struct block_info *info)
{
	block__info(dev, info);
}

/* The driver reset the device: its queues are idle (virtio_dev waited),
 * and nothing the old driver asked for may complete into the new one. */
static void drive_reset(void *ctx)
{
	struct machine_drive *d = ctx;

	block__drain(d->bdev);
}

static void msi_send(void *ctx, uint64_t addr, uint32_t data)
{
	struct machine *m = ctx;
	struct apic_msg msg;

	/* Anything else is a DMA write to memory, which no device here
	 * does on the guest's behalf: dropped. */
	if (virtio_pci__msi_to_apic(addr, data, &msg) == 0)
		irq_router__deliver(m->router, &msg);
}

static int open_drive(struct machine *m, unsigned i, char *err,
		      size_t errlen)
{
	struct machine_drive *d = &m->drives->d[i];
	const struct drive_opts *o = &m->cfg->drives[i];
	unsigned slot = MACHINE_DRIVE_SLOT0 + i;
	/* A queue per vCPU as QEMU does, within reason (queues=). */
	unsigned nq = blk_mq__default_queues(o->num_queues, m->nr_vcpus,
					     m->cluster != NULL);
	struct virtio_blk_backend be;
	struct virtio_blk_opts bo;
	struct virtio_pci_env env;
	char name[32], e[512];
	const char *warn;

	d->bdev = block__open(o, e, sizeof(e));
	if (!d->bdev) {
		errf(err, errlen, "-drive %u: %s", i,
		     strncmp(e, "-drive: ", 8) ? e : e + 8);
		return -1;
	}
	warn = block__warning(d->bdev);
	if (warn)
		fprintf(stderr, "krg-vmm: -drive %u: warning: %s\n", i, warn);
	snprintf(name, sizeof(name), "virtio-blk%u", i);
	memset(&bo, 0, sizeof(bo));
	bo.name = name;
	bo.num_queues = nq ? nq : 1;
	bo.read_only = o->read_only;
	be = (struct virtio_blk_backend){ be_submit, be_info, d->bdev };
	if (virtio_blk__init(&d->blk, &bo, &be, virtio_mem__guest(&m->mem), e,
			     sizeof(e)) < 0) {
		errf(err, errlen, "-drive %u: %s", i, e);
		return -1;
	}
	d->blk_ready = true;
	env = (struct virtio_pci_env){
		.irq = pci_host__intx_sink(m->pci),
		.intx_gsi = PCI_PIRQ_GSI0 + pci_host__intx_pirq(slot, 0),
		.msi = { msi_send, m },
		.window = &m->drives->window,
		.reset = drive_reset,
		.reset_ctx = d,
	};
	if (virtio_pci__init(&d->vp, virtio_blk__dev(&d->blk), &env, e,
			     sizeof(e)) < 0) {
		errf(err, errlen, "-drive %u: %s", i, e);
		return -1;
	}
	d->pci_ready = true;
	if (pci_host__add_device(m->pci, PCI_DEVFN(slot, 0),
				 virtio_pci__pci_dev(&d->vp)) < 0) {
		errf(err, errlen, "-drive %u: PCI slot %u is taken", i, slot);
		return -1;
	}
	return machine__blk_mq_attach(m, i, &d->blk, &d->vp, d->bdev, err,
				      errlen);
}

int machine__build_drives(struct machine *m, char *err, size_t errlen)
{
	const struct vm_config *cfg = m->cfg;
	uint64_t win = GUEST_PCI_HOLE_START;

	if (!cfg->nr_drives && !machine__wants_net(cfg))
		return 0;
	if (cfg->nr_drives > VM_MAX_DRIVES) {
		errf(err, errlen, "at most %d -drive options", VM_MAX_DRIVES);
		return -1;
	}
	m->drives = calloc(1, sizeof(*m->drives));
	if (!m->drives) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	pci_window__init(&m->drives->window, win,
			 (uint64_t)ACPI_PCI_HOLE_END + 1 - win);
	if (io_bus__register(m->bus, IO_SPACE_MMIO, win,
			     (uint64_t)ACPI_PCI_HOLE_END + 1 - win,
			     pci_window__io, &m->drives->window,
			     "pci-window") < 0) {
		errf(err, errlen, "io registry: the PCI memory window clashes");
		return -1;
	}
	for (unsigned i = 0; i < cfg->nr_drives; i++) {
		m->drives->nr = i + 1;
		if (open_drive(m, i, err, errlen) < 0)
			return -1;
	}
	return 0;
}

struct pci_window *machine__pci_window(struct machine *m)
{
	return m->drives ? &m->drives->window : NULL;
}

void machine__stop_drives(struct machine *m)
{
	if (!m->drives)
		return;
	/* The vCPUs are gone; requests in flight still finish into guest
	 * RAM before the images close. */
	for (unsigned i = 0; i < m->drives->nr; i++)
		if (m->drives->d[i].pci_ready)
			virtio_pci__pause(&m->drives->d[i].vp);
}

void machine__destroy_drives(struct machine *m)
{
	struct machine_drives *ds = m->drives;

	if (!ds)
		return;
	for (unsigned i = 0; i < ds->nr; i++) {
		struct machine_drive *d = &ds->d[i];

		if (d->pci_ready) {
			virtio_pci__pause(&d->vp);
			virtio_pci__destroy(&d->vp);
		}
		if (d->bdev)
			block__close(d->bdev);
		if (d->blk_ready)
			virtio_blk__destroy(&d->blk);
	}
	pci_window__destroy(&ds->window);
	free(ds);
	m->drives = NULL;
}

int machine__save_drives(struct machine *m, struct state_writer *w,
			 char *err, size_t errlen)
{
	int r = 0;

	for (unsigned i = 0; m->drives && i < m->drives->nr && !r; i++) {
		struct machine_drive *d = &m->drives->d[i];

		/* A held drive stays paused: a checkpoint saves it. */
		if (!m->drives->held) {
			machine__blk_mq_hold(m, i, true);
			virtio_pci__pause(&d->vp);
		}
		r = virtio_blk__save(&d->blk, w, err, errlen);
		if (!r)
			r = virtio_pci__save(&d->vp, w, err, errlen);
		if (!m->drives->held) {
			virtio_pci__resume(&d->vp);
			machine__blk_mq_hold(m, i, false);
		}
	}
	return r;
}

int machine__load_drives(struct machine *m, struct state_reader *r,
			 char *err, size_t errlen)
{
	unsigned nr = m->drives ? m->drives->nr : 0;
	char name[48];
	const void *data;
	uint32_t version;
	size_t len;

	for (unsigned i = 0; i < nr; i++) {
		struct machine_drive *d = &m->drives->d[i];

		/* Queues served elsewhere come back before the state is
		 * replaced; post_load hands them out again. */
		machine__blk_mq_hold(m, i, true);
		if (virtio_blk__load(&d->blk, r, err, errlen) < 0 ||
		    virtio_pci__load(&d->vp, r, err, errlen) < 0)
			return -1;
	}
	/* A guest whose disk vanished would see its device gone mid-use. */
	snprintf(name, sizeof(name), "virtio-blk%u-pci", nr);
	if (state_reader__get_raw(r, name, &version, &data, &len) == 0) {
		errf(err, errlen, "the saved VM has more -drive disks than "
		     "the %u given", nr);
		return -1;
	}
	return 0;
}

void machine__post_load_drives(struct machine *m)
{
	for (unsigned i = 0; m->drives && i < m->drives->nr; i++) {
		virtio_pci__post_load(&m->drives->d[i].vp);
		machine__blk_mq_hold(m, i, false);
	}
}

/* Checkpoints (vmm/ckpt_disk.c). */
void machine__hold_drives(struct machine *m, bool hold)
{
	if (!m->drives || m->drives->held == hold)
		return;
	m->drives->held = hold;
	for (unsigned i = 0; i < m->drives->nr; i++)
		if (m->drives->d[i].pci_ready) {
			/* Queues served on other nodes come back first. */
			if (hold) {
				machine__blk_mq_hold(m, i, true);
				virtio_pci__pause(&m->drives->d[i].vp);
			} else {
				virtio_pci__resume(&m->drives->d[i].vp);
				machine__blk_mq_hold(m, i, false);
			}
		}
}

unsigned machine__nr_drives(const struct machine *m)
{
	return m->drives ? m->drives->nr : 0;
}

struct block_dev *machine__drive_bdev(struct machine *m, unsigned i)
{
	return m->drives && i < m->drives->nr ? m->drives->d[i].bdev : NULL;
}

void machine__drive_set_bdev(struct machine *m, unsigned i,
			     struct block_dev *b)
{
	struct machine_drive *d = &m->drives->d[i];

	/* Held: no request is in flight or can start. */
	d->bdev = b;
	d->blk.be.dev = b;
	machine__blk_mq_set_bdev(m, i, b);
}
