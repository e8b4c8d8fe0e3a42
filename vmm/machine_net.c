/* The guest's network interfaces and entropy device on node 0: each NIC
 * is a virtio-net over virtio-pci in PCI slot MACHINE_NIC_SLOT0 + i with
 * its backend (netdev.h) on a thread of its own; -device virtio-rng-pci
 * is a virtio-rng in slot MACHINE_RNG_SLOT.  They decode through the
 * drives' PCI memory window and interrupt like the disks do (MSI-X through
 * the interrupt router, so vCPUs on other nodes get them; INTx on the
 * _PRT's pins).  A vCPU on another node reaches their registers through
 * I/O forwarding; its notifications end in an eventfd write (NICs) or a
 * short getrandom() (rng) on node 0's I/O worker. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vcpu/irq_route.h"
#include "vmm/devices/netdev.h"
#include "vmm/devices/pci_host.h"
#include "vmm/devices/virtio_net.h"
#include "vmm/devices/virtio_pci.h"
#include "vmm/devices/virtio_rng.h"
#include "vmm/errf.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

struct machine_nic {
	struct virtio_net net;
	struct virtio_pci vp;
	struct netdev *nd;
	bool net_ready, pci_ready;
	char name[16];       /* "-nic 0" */
};

struct machine_net {
	unsigned nr;
	struct machine_nic nic[NET_MAX_NICS];
	struct virtio_rng rng;
	struct virtio_pci rng_vp;
	bool rng_ready, rng_pci_ready;
};

static void msi_send(void *ctx, uint64_t addr, uint32_t data)
{
	struct machine *m = ctx;
	struct apic_msg msg;

	if (virtio_pci__msi_to_apic(addr, data, &msg) == 0)
		irq_router__deliver(m->router, &msg);
}

static int peer_receive(void *ctx, const uint8_t *frame, size_t len)
{
	return virtio_net__receive(ctx, frame, len);
}

static ssize_t peer_transmit(void *ctx, uint8_t *buf, size_t cap)
{
	return virtio_net__transmit(ctx, buf, cap);
}

static int add_function(struct machine *m, struct virtio_pci *vp,
			struct virtio_dev *vdev, unsigned slot,
			const char *what, char *err, size_t errlen)
{
	struct virtio_pci_env env = {
		/* INTx through the PIRQ router, on the pin the ACPI _PRT
		 * (and SeaBIOS) assign this slot. */
		.irq = pci_host__intx_sink(m->pci),
		.intx_gsi = PCI_PIRQ_GSI0 + pci_host__intx_pirq(slot, 0),
		.msi = { msi_send, m },
		.window = machine__pci_window(m),
	};
	char e[256];

	if (virtio_pci__init(vp, vdev, &env, e, sizeof(e)) < 0) {
		errf(err, errlen, "%s: %s", what, e);
		return -1;
	}
	return 0;
}

static int open_nic(struct machine *m, unsigned i, char *err, size_t errlen)
{
	const struct vm_net_config *c = &m->cfg->net;
	struct machine_nic *n = &m->net->nic[i];
	const struct netdev_opts *o = net_opts__netdev_of(c, &c->nics[i]);
	unsigned slot = MACHINE_NIC_SLOT0 + i;
	struct netdev_peer peer = { peer_receive, peer_transmit, &n->net };
	struct virtio_net_port port;
	uint8_t mac[6];
	char name[32], e[512];

	snprintf(n->name, sizeof(n->name), "-nic %u", i);
	snprintf(name, sizeof(name), "virtio-net%u", i);
	if (!o) {
		errf(err, errlen, "%s: no backend", n->name);
		return -1;
	}
	net_opts__mac_of(c, i, mac);
	if (virtio_net__init(&n->net, name, mac, virtio_mem__guest(&m->mem), e,
			     sizeof(e)) < 0) {
		errf(err, errlen, "%s: %s", n->name, e);
		return -1;
	}
	n->net_ready = true;
	n->nd = netdev__open(o, n->name, &peer, err, errlen);
	if (!n->nd)
		return -1;
	port = (struct virtio_net_port){ netdev__kick, n->nd };
	virtio_net__set_port(&n->net, &port);
	if (add_function(m, &n->vp, virtio_net__dev(&n->net), slot, n->name,
			 err, errlen) < 0)
		return -1;
	n->pci_ready = true;
	if (pci_host__add_device(m->pci, PCI_DEVFN(slot, 0),
				 virtio_pci__pci_dev(&n->vp)) < 0) {
		errf(err, errlen, "%s: PCI slot %u is taken", n->name, slot);
		return -1;
	}
	return 0;
}

static int open_rng(struct machine *m, char *err, size_t errlen)
{
	struct machine_net *mn = m->net;
	char e[256];

	if (virtio_rng__init(&mn->rng, "virtio-rng0", NULL, NULL,
			     virtio_mem__guest(&m->mem), e, sizeof(e)) < 0) {
		errf(err, errlen, "virtio-rng-pci: %s", e);
		return -1;
	}
	mn->rng_ready = true;
	if (add_function(m, &mn->rng_vp, virtio_rng__dev(&mn->rng),
			 MACHINE_RNG_SLOT, "virtio-rng-pci", err, errlen) < 0)
		return -1;
	mn->rng_pci_ready = true;
	if (pci_host__add_device(m->pci, PCI_DEVFN(MACHINE_RNG_SLOT, 0),
				 virtio_pci__pci_dev(&mn->rng_vp)) < 0) {
		errf(err, errlen, "virtio-rng-pci: PCI slot %u is taken",
		     MACHINE_RNG_SLOT);
		return -1;
	}
	return 0;
}

bool machine__wants_net(const struct vm_config *cfg)
{
	return cfg->net.nr_nics || cfg->net.rng;
}

int machine__build_net(struct machine *m, char *err, size_t errlen)
{
	const struct vm_net_config *c = &m->cfg->net;

	if (!machine__wants_net(m->cfg))
		return 0;
	if (net_opts__validate(c, err, errlen) < 0)
		return -1;
	if (!machine__pci_window(m)) {
		errf(err, errlen, "network devices: no PCI memory window");
		return -1;
	}
	m->net = calloc(1, sizeof(*m->net));
	if (!m->net) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	for (unsigned i = 0; i < c->nr_nics; i++) {
		m->net->nr = i + 1;
		if (open_nic(m, i, err, errlen) < 0)
			return -1;
	}
	if (c->rng && open_rng(m, err, errlen) < 0)
		return -1;
	return 0;
}

void machine__start_net(struct machine *m)
{
	char err[256];

	for (unsigned i = 0; m->net && i < m->net->nr; i++)
		if (m->net->nic[i].nd &&
		    netdev__start(m->net->nic[i].nd, err, sizeof(err)) < 0)
			machine__request_stop(m, KRG_EXIT_FAILURE, "%s", err);
}

void machine__stop_net(struct machine *m)
{
	struct machine_net *mn = m->net;

	if (!mn)
		return;
	/* The vCPUs are gone: nothing more reaches the devices but the
	 * backend threads, which end here. */
	for (unsigned i = 0; i < mn->nr; i++) {
		netdev__stop(mn->nic[i].nd);
		if (mn->nic[i].pci_ready)
			virtio_pci__pause(&mn->nic[i].vp);
	}
	if (mn->rng_pci_ready)
		virtio_pci__pause(&mn->rng_vp);
}

void machine__destroy_net(struct machine *m)
{
	struct machine_net *mn = m->net;

	if (!mn)
		return;
	for (unsigned i = 0; i < mn->nr; i++) {
		struct machine_nic *n = &mn->nic[i];

		netdev__stop(n->nd);
		if (n->pci_ready) {
			virtio_pci__pause(&n->vp);
			virtio_pci__destroy(&n->vp);
		}
		netdev__close(n->nd);
		if (n->net_ready)
			virtio_net__destroy(&n->net);
	}
	if (mn->rng_pci_ready) {
		virtio_pci__pause(&mn->rng_vp);
		virtio_pci__destroy(&mn->rng_vp);
	}
	if (mn->rng_ready)
		virtio_rng__destroy(&mn->rng);
	free(mn);
	m->net = NULL;
}

int machine__save_net(struct machine *m, struct state_writer *w, char *err,
		      size_t errlen)
{
	struct machine_net *mn = m->net;
	int r = 0;

	for (unsigned i = 0; mn && i < mn->nr && !r; i++) {
		struct machine_nic *n = &mn->nic[i];

		virtio_pci__pause(&n->vp);
		r = virtio_net__save(&n->net, w, err, errlen);
		if (!r)
			r = virtio_pci__save(&n->vp, w, err, errlen);
		virtio_pci__resume(&n->vp);
	}
	if (!r && mn && mn->rng_pci_ready) {
		virtio_pci__pause(&mn->rng_vp);
		r = virtio_rng__save(&mn->rng, w, err, errlen);
		if (!r)
			r = virtio_pci__save(&mn->rng_vp, w, err, errlen);
		virtio_pci__resume(&mn->rng_vp);
	}
	return r;
}

static bool has_section(struct state_reader *r, const char *name)
{
	const void *data;
	uint32_t version;
	size_t len;

	return state_reader__get_raw(r, name, &version, &data, &len) == 0;
}

int machine__load_net(struct machine *m, struct state_reader *r, char *err,
		      size_t errlen)
{
	struct machine_net *mn = m->net;
	unsigned nr = mn ? mn->nr : 0;
	char name[48];

	for (unsigned i = 0; i < nr; i++) {
		struct machine_nic *n = &mn->nic[i];

		if (virtio_net__load(&n->net, r, err, errlen) < 0 ||
		    virtio_pci__load(&n->vp, r, err, errlen) < 0)
			return -1;
	}
	/* A guest whose NIC vanished would see its device gone mid-use. */
	snprintf(name, sizeof(name), "virtio-net%u-pci", nr);
	if (has_section(r, name)) {
		errf(err, errlen, "the saved VM has more NICs than the %u "
		     "given", nr);
		return -1;
	}
	if (mn && mn->rng_pci_ready) {
		if (virtio_rng__load(&mn->rng, r, err, errlen) < 0 ||
		    virtio_pci__load(&mn->rng_vp, r, err, errlen) < 0)
			return -1;
	} else if (has_section(r, "virtio-rng0-pci")) {
		errf(err, errlen, "the saved VM has a virtio-rng-pci device: "
		     "give -device virtio-rng-pci");
		return -1;
	}
	return 0;
}

void machine__post_load_net(struct machine *m)
{
	struct machine_net *mn = m->net;

	for (unsigned i = 0; mn && i < mn->nr; i++)
		virtio_pci__post_load(&mn->nic[i].vp);
	if (mn && mn->rng_pci_ready)
		virtio_pci__post_load(&mn->rng_vp);
}
