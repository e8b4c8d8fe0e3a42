/* Wiring of cross-node virtio-blk queue serving (vmm/devices/
 * virtio_blk_mq.h) into a cluster node's machine: the transport, each
 * node's own handle on the -drive images, its interrupt router, node 0's
 * virtio-pci functions, and the hooks pause, checkpoint and vCPU
 * migration use. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "storage/block.h"
#include "vcpu/irq_route.h"
#include "vmm/cluster.h"
#include "vmm/devices/virtio_blk_mq.h"
#include "vmm/devices/virtio_pci.h"
#include "vmm/errf.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"

#define FANOUT_ENV "KRG_VMM_BLK_FLUSH_FANOUT"

struct drive_ctx {
	struct machine *m;
	unsigned drive;
};

struct machine_blk_mq {
	struct blk_mq *mq;
	struct drive_ctx d[BLK_MQ_MAX_DRIVES];
};

static int mq_send(void *ctx, unsigned node, unsigned type, const void *buf,
		   size_t len)
{
	struct machine *m = ctx;
	struct iovec iov = { (void *)buf, len };

	return cluster__send(m->cluster, node, NET_CH_FAST, type, &iov,
			     len ? 1 : 0) < 0 ? -1 : 0;
}

static void mq_msi(void *ctx, uint64_t addr, uint32_t data)
{
	struct machine *m = ctx;
	struct apic_msg msg;

	if (virtio_pci__msi_to_apic(addr, data, &msg) == 0)
		irq_router__deliver(m->router, &msg);
}

static void mq_fatal(void *ctx, const char *why)
{
	machine__request_stop(ctx, KRG_EXIT_FAILURE, "%s", why);
}

static void mq_log(void *ctx, const char *line)
{
	machine__log(ctx, "%s", line);
}

static int be_submit(void *dev, struct block_req *req)
{
	return block__submit(dev, req);
}

static void be_info(void *dev, struct block_info *info)
{
	block__info(dev, info);
}

/* FNV-1a: a name for "whose flush covers whose writes", not a secret. */
static uint64_t fnv(uint64_t h, const void *p, size_t n)
{
	const uint8_t *b = p;

	for (size_t i = 0; i < n; i++)
		h = (h ^ b[i]) * 0x100000001b3ull;
	return h;
}

/* One durability domain per page cache and file, or per storage daemon:
 * the host's boot id, then the inode or the export's socket.  0 (shares
 * with nobody) for an NBD export elsewhere, whose multi-conn we do not
 * know. */
static uint64_t domain_of(const struct drive_opts *o, const char *socket)
{
	char boot[64] = "";
	uint64_t h = 0xcbf29ce484222325ull;
	struct stat st;
	FILE *f = fopen("/proc/sys/kernel/random/boot_id", "r");

	if (f) {
		if (!fgets(boot, sizeof(boot), f))
			boot[0] = '\0';
		fclose(f);
	}
	if (!boot[0])
		return 0;
	h = fnv(h, boot, strlen(boot));
	if (socket && socket[0])
		return fnv(fnv(h, "nbd", 3), socket, strlen(socket)) | 1;
	if (drive_opts__is_uri(o->file) || stat(o->file, &st))
		return 0;
	h = fnv(h, &st.st_dev, sizeof(st.st_dev));
	return fnv(h, &st.st_ino, sizeof(st.st_ino)) | 1;
}

/* A raw image with O_DIRECT has the kernel DMA into pinned guest pages,
 * which the DSM cannot take away safely mid-request; NBD and buffered
 * I/O copy through the mapping, faulting like any access. */
static bool needs_bounce(const struct drive_opts *o, const char *socket)
{
	return drive_opts__direct(o) && !(socket && socket[0]) &&
	       !drive_opts__is_uri(o->file);
}

static int mq_open(void *ctx, unsigned drive, const char *socket,
		   struct blk_mq_backend *out, char *err, size_t errlen)
{
	struct machine *m = ctx;
	struct drive_opts o;
	struct block_dev *b;
	char e[512];

	if (drive >= m->cfg->nr_drives) {
		errf(err, errlen, "no -drive %u here", drive);
		return -1;
	}
	o = m->cfg->drives[drive];
	if (socket[0]) {
		/* The image is node 0's qemu-storage-daemon's: connect. */
		if ((size_t)snprintf(o.file, sizeof(o.file),
				     "nbd+unix:///disk?socket=%s", socket) >=
		    sizeof(o.file)) {
			errf(err, errlen, "NBD socket path too long");
			return -1;
		}
		o.format = DRIVE_FORMAT_PROBE;
	}
	b = block__open(&o, e, sizeof(e));
	if (!b) {
		errf(err, errlen, "%s", e);
		return -1;
	}
	memset(out, 0, sizeof(*out));
	out->be = (struct virtio_blk_backend){ be_submit, be_info, b };
	out->handle = b;
	out->domain = domain_of(&m->cfg->drives[drive], socket);
	out->bounce_reads = needs_bounce(&m->cfg->drives[drive], socket);
	out->read_only = m->cfg->drives[drive].read_only;
	return 0;
}

static void mq_close(void *ctx, struct blk_mq_backend *b)
{
	(void)ctx;
	block__close(b->handle);
	b->handle = NULL;
}

static struct machine_blk_mq *get(struct machine *m, char *err,
				  size_t errlen)
{
	const char *fan = getenv(FANOUT_ENV);
	struct blk_mq_config c = {
		.self = m->node_self,
		.nr_nodes = m->layout.nr_nodes,
		.mem = virtio_mem__guest(&m->mem),
		.force_fanout = fan && !strcmp(fan, "1"),
		.ops = { .ctx = m, .send = mq_send, .open = mq_open,
			 .close = mq_close, .msi = mq_msi, .fatal = mq_fatal,
			 .log = mq_log },
	};

	if (m->blk_mq)
		return m->blk_mq;
	m->blk_mq = calloc(1, sizeof(*m->blk_mq));
	if (!m->blk_mq) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	m->blk_mq->mq = blk_mq__new(&c, err, errlen);
	if (!m->blk_mq->mq) {
		free(m->blk_mq);
		m->blk_mq = NULL;
	}
	return m->blk_mq;
}

int machine__blk_mq_setup(struct machine *m, char *err, size_t errlen)
{
	if (!m->cluster || m->node_self == 0 || !m->cfg->nr_drives)
		return 0;
	return get(m, err, errlen) ? 0 : -1;
}

static bool pci_vector_msi(void *pci, uint16_t vector, uint64_t *addr,
			   uint32_t *data)
{
	return virtio_pci__vector_msi(pci, vector, addr, data);
}

static uint64_t pci_notify_gpa(void *pci, unsigned queue)
{
	return virtio_pci__notify_gpa(pci, queue);
}

static void irq_changed(void *ctx)
{
	struct drive_ctx *d = ctx;

	if (d->m->blk_mq)
		blk_mq__irq_changed(d->m->blk_mq->mq, d->drive);
}

int machine__blk_mq_attach(struct machine *m, unsigned drive,
			   struct virtio_blk *blk, struct virtio_pci *vp,
			   struct block_dev *bdev, char *err, size_t errlen)
{
	const struct drive_opts *o = &m->cfg->drives[drive];
	const char *socket = block__nbd_socket(bdev);
	struct machine_blk_mq *mm;
	struct blk_mq_home_env env;

	if (!m->cluster || drive >= BLK_MQ_MAX_DRIVES)
		return 0;
	mm = get(m, err, errlen);
	if (!mm)
		return -1;
	memset(&env, 0, sizeof(env));
	env.blk = blk;
	env.pci = vp;
	env.vector_msi = pci_vector_msi;
	env.notify_gpa = pci_notify_gpa;
	for (unsigned q = 0; q < blk->vdev.s.num_queues; q++)
		env.node[q] = o->serve_node0 ? 0 :
			(uint8_t)blk_mq__queue_node(q, m->nr_vcpus,
						    m->layout.vcpu_node);
	if (socket && strlen(socket) > BLK_MQ_TEXT_MAX) {
		/* Other nodes could not be told where to connect. */
		socket = NULL;
		memset(env.node, 0, sizeof(env.node));
	}
	snprintf(env.socket, sizeof(env.socket), "%s", socket ? socket : "");
	env.domain = domain_of(o, socket);
	blk->bounce_reads = needs_bounce(o, socket);
	if (blk_mq__attach(mm->mq, drive, &env)) {
		errf(err, errlen, "-drive %u: cannot set up its queues across "
		     "nodes", drive);
		return -1;
	}
	mm->d[drive] = (struct drive_ctx){ m, drive };
	/* Before the guest runs: nothing reads the env concurrently. */
	vp->env.irq_changed = irq_changed;
	vp->env.irq_changed_ctx = &mm->d[drive];
	return 0;
}

void machine__blk_mq_set_bdev(struct machine *m, unsigned drive,
			      struct block_dev *b)
{
	const char *socket = block__nbd_socket(b);

	if (!m->blk_mq || m->node_self != 0)
		return;
	/* Without a socket, what b is (which file) is not known here. */
	blk_mq__set_backend(m->blk_mq->mq, drive, socket,
			    socket ? domain_of(&m->cfg->drives[drive], socket)
				   : 0);
}

void machine__blk_mq_recv(struct machine *m, unsigned sender, unsigned type,
			  const void *payload, size_t len)
{
	if (m->blk_mq)
		blk_mq__recv(m->blk_mq->mq, sender, type, payload, len);
	else
		machine__request_stop(m, KRG_EXIT_FAILURE, "node %u: "
				      "virtio-blk message %u for a node "
				      "without disks", sender, type);
}

bool machine__local_mmio(struct machine *m, uint64_t addr, uint8_t *data,
			 uint32_t len, bool is_write)
{
	return m->blk_mq &&
	       blk_mq__doorbell(m->blk_mq->mq, addr, data, len, is_write);
}

void machine__blk_mq_abort(struct machine *m)
{
	if (m->blk_mq)
		blk_mq__abort(m->blk_mq->mq);
}

void machine__blk_mq_free(struct machine *m)
{
	if (!m->blk_mq)
		return;
	blk_mq__free(m->blk_mq->mq);
	free(m->blk_mq);
	m->blk_mq = NULL;
}

int machine__blk_mq_hold(struct machine *m, unsigned drive, bool hold)
{
	if (!m->blk_mq || m->node_self != 0)
		return 0;
	return blk_mq__hold(m->blk_mq->mq, drive, hold);
}

int machine__blk_queues_hold(struct machine *m, bool hold)
{
	int r = 0;

	for (unsigned i = 0; i < m->cfg->nr_drives; i++)
		if (machine__blk_mq_hold(m, i, hold))
			r = -1;
	return r;
}

int machine__blk_queues_vcpu_moved(struct machine *m, unsigned vcpu,
				   unsigned node)
{
	int r = 0;

	if (!m->blk_mq || m->node_self != 0)
		return 0;
	for (unsigned i = 0; i < m->cfg->nr_drives && i < BLK_MQ_MAX_DRIVES;
	     i++) {
		const struct drive_opts *o = &m->cfg->drives[i];

		if (o->serve_node0)
			continue;
		unsigned nq = blk_mq__queues(m->blk_mq->mq, i);

		for (unsigned q = 0; q < nq; q++)
			if (blk_mq__queue_vcpu(q, m->nr_vcpus) == vcpu &&
			    blk_mq__assign(m->blk_mq->mq, i, q, node) < 0)
				r = -1;
	}
	return r;
}

void machine__blk_mq_stats(struct machine *m, struct blk_mq_stats *out)
{
	blk_mq__stats(m->blk_mq ? m->blk_mq->mq : NULL, out);
}
