/* A node's share of a cluster VM: the layout, the DSM over the guest RAM,
 * and the message handlers that tie this node's machine to the others. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#include "dsm/dsm_mem.h"
#include "vcpu/cpuid.h"
#include "vcpu/ioapic.h"
#include "vcpu/lapic.h"
#include "vcpu/irq_remote.h"
#include "vcpu/vcpu.h"
#include "vmm/ckpt.h"
#include "vmm/cluster.h"
#include "vmm/devices/virtio_blk_mq.h"
#include "vmm/io_forward.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/migrate.h"
#include "vmm/shadow_flush.h"

#define IRQ_KNOWN_TIMEOUT_MS 30000

bool machine__vcpu_is_local(const struct machine *m, unsigned i)
{
	return !m->cluster ||
	       numa_layout__vcpu_node(&m->layout, i) == (int)m->node_self;
}

/* kvmclock is per KVM VM: every node's would count from its own start, and
 * KVM here cannot hand it over (no KVM_CLOCK_REALTIME).  A cluster guest
 * keeps time with the TSC, which on PVM is the host's on every node of a
 * host (cross-host TSC synchronisation is for a later version). */
static void hide_kvmclock(struct kvm_cpuid2 *c)
{
	for (unsigned i = 0; c && i < c->nent; i++)
		if (c->entries[i].function == 0x40000001)
			c->entries[i].eax &= ~((1u << 0) | (1u << 3) |
					       (1u << 24));
}

/* Without kvmclock Linux calibrates the TSC against the PIT or the ACPI PM
 * timer; on a PVM host that runs emulated for seconds and can fail, and a
 * TSC Linux distrusts leaves it reading the PM timer port for every clock
 * read, a forwarded I/O on every node but 0.  CPUID leaf 0x15 states the
 * frequency instead (and makes it "known", so the TSC is the clocksource
 * at once); its crystal is the LAPIC timer input, which Linux then uses
 * as the LAPIC timer rate without calibrating that either. */
static void tell_tsc_frequency(struct machine *m)
{
	int khz = ioctl(m->vm_fd, KVM_GET_TSC_KHZ, 0);

	if (khz <= 0) {
		machine__log(m, "cannot read the guest TSC frequency (%s): the "
			     "guest will calibrate it", strerror(errno));
		return;
	}
	if (cpuid__set_tsc_leaf(&m->cpuid, (uint64_t)khz * 1000,
				(uint32_t)LAPIC_BUS_HZ) < 0)
		machine__log(m, "cannot describe a %d kHz TSC in CPUID leaf "
			     "0x15: the guest will calibrate it", khz);
}

int machine__setup_layout(struct machine *m, const struct machine_node *node,
			  char *err, size_t errlen)
{
	unsigned nr = (unsigned)m->mem.nr_regions;

	if (node->self == 0) {
		hide_kvmclock(m->cpuid);
		tell_tsc_frequency(m);
		if (numa_layout__build(&m->layout,
				       cluster__nr_nodes(m->cluster),
				       m->nr_vcpus, m->mem.region, nr, NULL,
				       err, errlen) < 0)
			return -1;
		numa_layout__set_flat(&m->layout, m->cfg->numa_flat);
		return 0;
	}
	/* Node 0's layout must describe exactly the RAM this node has. */
	m->layout = node->layout;
	return numa_layout__check(&m->layout, m->mem.region, nr, err, errlen);
}

static int dsm_home_of(void *ctx, uint64_t gpa)
{
	struct machine *m = ctx;

	return numa_layout__home_of(&m->layout, gpa);
}

static int dsm_send(void *ctx, unsigned dest, unsigned type,
		    const struct iovec *iov, int iovcnt)
{
	struct machine *m = ctx;

	return cluster__send(m->cluster, dest, NET_CH_FAST, type, iov, iovcnt);
}

static void dsm_fatal(void *ctx, const char *why)
{
	machine__request_stop(ctx, KRG_EXIT_FAILURE, "memory coherence: %s",
			      why);
}

static void dsm_drop_translations(void *ctx)
{
	struct machine *m = ctx;

	shadow_flush__request(m->shadow_flush);
}

/* Guest page tables stay coherent across nodes by themselves only where
 * KVM translates through them directly (EPT/NPT); on a shadow-paging host
 * the DSM has KVM's shadow page tables dropped whenever it punches pages
 * out (vmm/shadow_flush.h).  --dsm-shadow-flush off is for measurements,
 * and the warning says what it costs. */
static int setup_shadow_flush(struct machine *m, char *err, size_t errlen)
{
	enum vm_auto_switch mode = m->cfg->dsm_shadow_flush;
	char why[32];
	bool need = shadow_flush__host_needs(NULL, why, sizeof(why));

	if (mode == VM_OFF || (mode == VM_AUTO && !need)) {
		if (need && m->node_self == 0)
			fprintf(stderr, "krg-vmm: warning: KVM uses shadow paging "
				"here (%s) and --dsm-shadow-flush is off: a guest "
				"page table changed on one node may still translate "
				"the old way for user programs on another\n", why);
		return 0;
	}
	m->shadow_flush = shadow_flush__new(m, err, errlen);
	if (!m->shadow_flush)
		return -1;
	if (m->node_self == 0)
		fprintf(stderr, "krg-vmm: cluster VM: KVM uses %s: its shadow page "
			"tables are dropped whenever a node gives up pages "
			"(--dsm-shadow-flush)\n", need ? why : "EPT/NPT, flush forced on");
	return 0;
}

static void dsm_recv(void *ctx, unsigned sender, unsigned type,
		     const void *payload, uint32_t len)
{
	struct machine *m = ctx;

	if (m->dsm)
		dsm_mem__receive(m->dsm, sender, type, payload, len);
}

/* Every node's guest clocks read alike: kvmclock from node 0 (shifted by
 * the time the description took to arrive).  The TSC needs nothing on one
 * host: PVM's guest TSC is the host TSC; across hosts it needs a clock
 * synchronisation that a later version adds. */
static void adopt_clock(struct machine *m, const struct machine_node *node)
{
	struct kvm_clock_data c = node->clock;

	if (node->self == 0 || !(c.flags & KVM_CLOCK_REALTIME))
		return;
	c.flags &= KVM_CLOCK_REALTIME;
	if (ioctl(m->vm_fd, KVM_SET_CLOCK, &c) < 0)
		machine__log(m, "cannot set the guest clock from node 0: %s",
			     strerror(errno));
}

static int fast_send(void *ctx, unsigned node, unsigned type,
		     const void *buf, size_t len)
{
	struct machine *m = ctx;
	struct iovec iov = { (void *)buf, len };

	return cluster__send(m->cluster, node, NET_CH_FAST, type, &iov,
			     len ? 1 : 0);
}

static void remote_error(void *ctx, unsigned node, const char *what)
{
	machine__request_stop(ctx, KRG_EXIT_FAILURE, "node %u: %s", node,
			      what);
}

static void irq_eoi_level(void *ctx, uint8_t vector)
{
	struct machine *m = ctx;

	if (m->ioapic)
		ioapic__eoi(m->ioapic, vector);
}

static void irq_recv(void *ctx, unsigned sender, unsigned type,
		     const void *payload, uint32_t len)
{
	struct machine *m = ctx;

	irq_remote__handle(m->irq_remote, sender, type, payload, len);
}

/* The migrate range is shared: vCPU migration has 160-169, checkpoints
 * 170-185 (vmm/ckpt.h); one handler per range, so it dispatches. */
static void migrate_recv(void *ctx, unsigned sender, unsigned type,
			 const void *payload, uint32_t len)
{
	struct machine *m = ctx;

	if (type >= CKPT_T_FIRST && type <= CKPT_T_LAST)
		ckpt__receive(m, sender, type, payload, len);
	/* vCPU migration (160-169) dispatches here too. */
	else if (type <= MIGRATE_T_LAST)
		migrate__receive(m, sender, type, payload, len);
	else
		machine__request_stop(m, KRG_EXIT_FAILURE, "node %u sent "
				      "migrate-range message %u, which this "
				      "node does not know", sender, type);
}

static bool restoring(const struct machine *m)
{
	return m->cfg->state_in[0] && ckpt__is_snapshot(m->cfg->state_in);
}

static void io_recv(void *ctx, unsigned sender, unsigned type,
		    const void *payload, uint32_t len)
{
	struct machine *m = ctx;

	if (type >= BLK_MQ_T_FIRST && type <= BLK_MQ_T_LAST) {
		machine__blk_mq_recv(m, sender, type, payload, len);
		return;
	}
	if (m->io_server)
		io_forward__server_handle(m->io_server, sender, type, payload,
					  len);
	else if (m->io_client)
		io_forward__client_handle(m->io_client, sender, type, payload,
					  len);
}

/* An IRQ_DELIVER for a vCPU that moved on (vmm/migrate.h). */
static int irq_redirect(void *ctx, int vcpu, const struct apic_msg *msg)
{
	struct machine *m = ctx;

	return m->migrate ? migrate__redirect(m->migrate, vcpu, msg) : -1;
}

/* Before the vCPUs exist: their LAPICs publish addresses at creation. */
int machine__setup_irq_remote(struct machine *m, char *err, size_t errlen)
{
	struct irq_remote_config rc = {
		.router = m->router,
		.self = m->node_self,
		.nr_nodes = m->layout.nr_nodes,
		.vcpu_node = m->layout.vcpu_node,
		.ioapic_node = 0,
		.ops = { .ctx = m, .send = fast_send,
			 .eoi_level = irq_eoi_level, .error = remote_error,
			 .redirect = irq_redirect },
	};

	m->irq_remote = irq_remote__new(&rc);
	if (!m->irq_remote) {
		snprintf(err, errlen, "cannot set up interrupts across nodes");
		return -1;
	}
	return 0;
}

static int setup_io_forwarding(struct machine *m, char *err, size_t errlen)
{
	struct io_forward_ops ops = { .ctx = m, .send = fast_send,
				      .error = remote_error };

	if (m->node_self == 0) {
		struct io_forward_server_config sc = {
			.bus = m->bus, .nr_vcpus = (int)m->nr_vcpus, .self = 0,
			.vcpu_node = m->layout.vcpu_node, .ops = ops,
		};

		m->io_server = io_forward__server_new(&sc);
	} else {
		struct io_forward_client_config cc = {
			.nr_vcpus = (int)m->nr_vcpus, .server_node = 0,
			.ops = ops,
		};

		m->io_client = io_forward__client_new(&cc);
	}
	if (!m->io_server && !m->io_client) {
		snprintf(err, errlen, "cannot set up I/O forwarding");
		return -1;
	}
	return 0;
}

int machine__setup_cluster(struct machine *m, const struct machine_node *node,
			   char *err, size_t errlen)
{
	struct dsm_mem_config dc = {
		.mem = &m->mem,
		.self = node->self,
		.nr_nodes = cluster__nr_nodes(m->cluster),
		.home_of = dsm_home_of,
		.send = dsm_send,
		.fatal = dsm_fatal,
		.ctx = m,
		.track_writes = m->cfg->dsm_track_writes,
		.hold_us = m->cfg->dsm_hold_us >= 0
				   ? (unsigned)m->cfg->dsm_hold_us
			   : m->pvm_profile ? DSM_MEM_PVM_HOLD_US
					    : DSM_MEM_DEFAULT_HOLD_US,
	};

	adopt_clock(m, node);
	if (dsm_mem__probe(err, errlen) < 0 ||
	    setup_shadow_flush(m, err, errlen) < 0)
		return -1;
	if (m->shadow_flush)
		dc.drop_translations = dsm_drop_translations;
	/* Restoring a snapshot: the pages this node homes go into RAM
	 * before the DSM takes it over (they start Modified at home). */
	if (restoring(m) &&
	    ckpt__restore_memory(m, m->cfg->state_in, err, errlen) < 0)
		return -1;
	m->dsm = dsm_mem__create(&dc, err, errlen);
	if (!m->dsm)
		return -1;
	if (setup_io_forwarding(m, err, errlen) < 0 ||
	    machine__blk_mq_setup(m, err, errlen) < 0)
		return -1;
	if (cluster__register(m->cluster, NET_TYPE_DSM_FIRST, dsm_recv, m) <
		    0 ||
	    cluster__register(m->cluster, NET_TYPE_IRQ_FIRST, irq_recv, m) <
		    0 ||
	    cluster__register(m->cluster, NET_TYPE_IO_FIRST, io_recv, m) < 0 ||
	    !(m->ckpt = ckpt_node__new(m)) ||
	    !(m->migrate = migrate__new(m)) ||
	    cluster__register(m->cluster, NET_TYPE_MIGRATE_FIRST, migrate_recv,
			      m) < 0) {
		snprintf(err, errlen, "cannot register the cluster messages");
		return -1;
	}
	if (dsm_mem__start(m->dsm, err, errlen) < 0)
		return -1;
	/* Loading a vCPU may read guest memory (the PVM syscall fix reads
	 * the IDT): through the DSM.  Before the announce, which then
	 * carries the restored APIC addresses. */
	if (restoring(m) &&
	    ckpt__restore_cpus(m, m->cfg->state_in, err, errlen) < 0)
		return -1;
	if (irq_remote__announce(m->irq_remote, err, errlen) < 0)
		return -1;
	/* Before READY: node 0's START then means every node can route an
	 * interrupt to every vCPU (node 0 itself waits in boot_load). */
	if (node->self != 0 &&
	    irq_remote__wait_known(m->irq_remote, IRQ_KNOWN_TIMEOUT_MS, err,
				   errlen) < 0)
		return -1;
	return 0;
}

int machine__boot_load(struct machine *m, char *err, size_t errlen)
{
	int status;

	if (irq_remote__wait_known(m->irq_remote, IRQ_KNOWN_TIMEOUT_MS, err,
				   errlen) < 0)
		return KRG_EXIT_FAILURE;
	status = machine__load_guest(m, err, errlen);

	if (status)
		return status;
	if (restoring(m)) {
		if (ckpt__restore_devices(m, m->cfg->state_in, err, errlen) < 0)
			return KRG_EXIT_USAGE;
	} else if (m->cfg->state_in[0]) {
		snprintf(err, errlen, "a cluster VM restores from a snapshot "
			 "directory (krg-vmm restore), not a --restore file");
		return KRG_EXIT_USAGE;
	}
	return 0;
}

void machine__quiesce(struct machine *m)
{
	machine__blk_mq_abort(m);
	ckpt_node__quiesce(m->ckpt);
	if (m->irq_remote)
		irq_remote__abort(m->irq_remote);
	if (m->io_client)
		io_forward__client_abort(m->io_client);
	if (m->dsm)
		dsm_mem__stop(m->dsm);
}

/* After the vCPU threads are joined and the transport is stopped. */
void machine__destroy_cluster(struct machine *m)
{
	machine__quiesce(m);
	io_forward__server_free(m->io_server);
	m->io_server = NULL;
	io_forward__client_free(m->io_client);
	m->io_client = NULL;
	machine__blk_mq_free(m);
	if (m->dsm) {
		dsm_mem__destroy(m->dsm);
		m->dsm = NULL;
	}
	shadow_flush__free(m->shadow_flush);
	m->shadow_flush = NULL;
	irq_remote__free(m->irq_remote);
	m->irq_remote = NULL;
	ckpt_node__free(m->ckpt);
	m->ckpt = NULL;
	migrate__free(m->migrate);
	m->migrate = NULL;
}
