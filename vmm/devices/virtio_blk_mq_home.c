/* Cross-node virtio-blk queue serving, node 0's side: which node serves
 * each queue, handing queues over and taking them back (synchronously),
 * kicks for queues served elsewhere, and what serving nodes report
 * (interrupts to raise here, guest errors). */
#include "vmm/devices/virtio_blk_mq_priv.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "vmm/vtimer.h"

void home__init(struct home *h)
{
	pthread_condattr_t ca;

	memset(h, 0, sizeof(*h));
	pthread_mutex_init(&h->cfg_lock, NULL);
	pthread_mutex_init(&h->wlock, NULL);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&h->wcond, &ca);
	pthread_condattr_destroy(&ca);
	for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++)
		pthread_mutex_init(&h->q[q].lock, NULL);
}

void home__destroy(struct home *h)
{
	/* The device outlives us: it serves every queue itself again. */
	if (h->attached)
		memset(&h->env.blk->hooks, 0, sizeof(h->env.blk->hooks));
	h->attached = false;
	for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++)
		pthread_mutex_destroy(&h->q[q].lock);
	pthread_cond_destroy(&h->wcond);
	pthread_mutex_destroy(&h->wlock);
	pthread_mutex_destroy(&h->cfg_lock);
}

static struct blk_mq *mq_of(struct home *h)
{
	return h->mq;
}

static struct virtio_dev *vdev_of(struct home *h)
{
	return &h->env.blk->vdev;
}

/* ---- talking to a serving node ---- */

/* Sends m to node and waits for its ACK (cfg_lock held: one at a time).
 * 0 with *reply, or -1: the node is unusable (reported; the VM stops) or
 * the VM is stopping. */
static int transact(struct blk_mq *mq, struct home *h, unsigned node,
		    struct blk_mq_msg *m, struct blk_mq_msg *reply)
{
	struct timespec until;
	int r = -1;

	/* Stopping: the peers are leaving; nothing moves any more. */
	if (atomic_load(&mq->aborted))
		return -1;
	pthread_mutex_lock(&h->wlock);
	m->seq = ++h->wseq;
	h->waiting = true;
	h->wdone = false;
	h->wnode = node;
	h->wtype = m->type;
	h->wqueue = m->queue;
	pthread_mutex_unlock(&h->wlock);
	if (mq__send(mq, node, m) == 0) {
		vclock__deadline(&until, CLOCK_MONOTONIC,
				 BLK_MQ_ACK_TIMEOUT_MS);
		pthread_mutex_lock(&h->wlock);
		while (!h->wdone && !atomic_load(&mq->aborted))
			if (pthread_cond_timedwait(&h->wcond, &h->wlock,
						   &until) == ETIMEDOUT)
				break;
		if (h->wdone) {
			*reply = h->wreply;
			r = 0;
		}
		h->waiting = false;
		pthread_mutex_unlock(&h->wlock);
		if (r && !atomic_load(&mq->aborted))
			mq__fatal(mq, "virtio-blk%u: node %u did not answer %s "
				  "of queue %u within %u ms", h->drive, node,
				  blk_mq__type_name(m->type), m->queue,
				  BLK_MQ_ACK_TIMEOUT_MS);
	} else {
		pthread_mutex_lock(&h->wlock);
		h->waiting = false;
		pthread_mutex_unlock(&h->wlock);
	}
	return r;
}

int home__ack(struct blk_mq *mq, struct home *h, unsigned sender,
	      const struct blk_mq_msg *m)
{
	int r = -1;

	(void)mq;
	pthread_mutex_lock(&h->wlock);
	if (h->waiting && !h->wdone && m->seq == h->wseq &&
	    sender == h->wnode && m->acked == h->wtype &&
	    m->queue == h->wqueue) {
		h->wreply = *m;
		h->wdone = true;
		pthread_cond_broadcast(&h->wcond);
		r = 0;
	}
	pthread_mutex_unlock(&h->wlock);
	return r;
}

void home__abort(struct home *h)
{
	pthread_mutex_lock(&h->wlock);
	pthread_cond_broadcast(&h->wcond);
	pthread_mutex_unlock(&h->wlock);
}

/* ---- kicks ---- */

static void home_kick(void *ctx, unsigned queue)
{
	struct home *h = ctx;
	struct home_queue *hq;
	struct blk_mq_msg m;
	unsigned node;

	if (queue >= BLK_MQ_MAX_QUEUES)
		return;
	hq = &h->q[queue];
	pthread_mutex_lock(&hq->lock);
	if (hq->state == HQ_LOCAL) {
		virtio_blk__serve_queue(h->env.blk, queue);
		pthread_mutex_unlock(&hq->lock);
		return;
	}
	node = hq->node;
	if (hq->state != HQ_REMOTE) {
		/* In transit: whoever serves it next polls it. */
		pthread_mutex_unlock(&hq->lock);
		return;
	}
	pthread_mutex_unlock(&hq->lock);
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_KICK;
	m.drive = (uint8_t)h->drive;
	m.queue = (uint8_t)queue;
	mq__send(mq_of(h), node, &m);
}

/* ---- hand-over ---- */

struct msi_now {
	bool direct;
	uint64_t addr, notify;
	uint32_t data;
};

/* Where queue's interrupt and doorbell are right now. */
static void msi_now(struct home *h, unsigned queue, struct msi_now *out)
{
	uint16_t vector = virtio_dev__queue_vector(vdev_of(h), queue);

	memset(out, 0, sizeof(*out));
	if (vector != VIRTIO_NO_VECTOR && h->env.vector_msi)
		out->direct = h->env.vector_msi(h->env.pci, vector,
						&out->addr, &out->data);
	if (!out->direct)
		out->addr = out->data = 0;
	if (h->env.notify_gpa)
		out->notify = h->env.notify_gpa(h->env.pci, queue);
}

static uint16_t msi_flags(const struct msi_now *n, bool fanout)
{
	return (uint16_t)((n->direct ? BLK_MQ_F_MSI_DIRECT : 0) |
			  (fanout ? BLK_MQ_F_FANOUT : 0));
}

static void remember(struct home_queue *hq, const struct msi_now *n,
		     bool fanout)
{
	hq->msi_direct = n->direct;
	hq->msi_addr = n->addr;
	hq->msi_data = n->data;
	hq->notify = n->notify;
	hq->fanout = fanout;
}

static void set_state(struct home_queue *hq, enum hq_state st, unsigned node)
{
	pthread_mutex_lock(&hq->lock);
	hq->state = st;
	hq->node = (uint8_t)node;
	pthread_mutex_unlock(&hq->lock);
}

/* The node's answer decides whether flushes must reach every node. */
static void learn_domain(struct blk_mq *mq, struct home *h, unsigned node,
			 uint64_t domain)
{
	/* Read by flushes without cfg_lock. */
	__atomic_store_n(&h->opened[node], true, __ATOMIC_RELAXED);
	if (mq->cfg.force_fanout || !domain || domain != h->env.domain)
		__atomic_store_n(&h->fanout, true, __ATOMIC_RELAXED);
}

static void refuse(struct blk_mq *mq, struct home *h, unsigned node,
		   unsigned queue, const struct blk_mq_msg *reply)
{
	atomic_fetch_add(&mq->fallbacks, 1);
	if (h->failed[node])
		return;
	h->failed[node] = true;
	mq__log(mq, "virtio-blk%u: node %u cannot serve its queues (%s): "
		"node 0 serves them (queue %u first)", h->drive, node,
		reply->text[0] ? reply->text : "no reason given", queue);
}

/* cfg_lock held.  Node 0 stops serving queue, which goes to node. */
static int handoff(struct blk_mq *mq, struct home *h, unsigned queue,
		   unsigned node)
{
	struct virtio_dev *vdev = vdev_of(h);
	struct virtq *vq = &vdev->vq[queue];
	struct home_queue *hq = &h->q[queue];
	struct blk_mq_msg m, reply;
	struct msi_now n;

	set_state(hq, HQ_MOVING, 0);
	/* Node 0's own requests of this queue complete into its state. */
	virtq__drain(vq);
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_SETUP;
	m.drive = (uint8_t)h->drive;
	m.queue = (uint8_t)queue;
	pthread_mutex_lock(&vq->lock);
	m.desc = vq->s.desc;
	m.avail = vq->s.avail;
	m.used = vq->s.used;
	m.size = vq->s.size;
	m.last_avail = vq->s.last_avail;
	m.used_idx = vq->s.used_idx;
	m.signalled_used = vq->s.signalled_used;
	m.signalled_valid = vq->s.signalled_valid;
	m.flags = (uint16_t)((vq->s.event_idx ? BLK_MQ_F_EVENT_IDX : 0) |
			     (vq->s.indirect ? BLK_MQ_F_INDIRECT : 0));
	pthread_mutex_unlock(&vq->lock);
	m.features = __atomic_load_n(&vdev->s.driver_features,
				     __ATOMIC_RELAXED);
	m.device_features = vdev->s.device_features;
	m.capacity = h->env.blk->capacity;
	m.num_queues = vdev->s.num_queues;
	m.max_size = vdev->max_queue_size;
	msi_now(h, queue, &n);
	m.flags |= msi_flags(&n, h->fanout);
	m.msi_addr = n.addr;
	m.msi_data = n.data;
	m.notify = n.notify;
	m.gen = h->gen;
	snprintf(m.text, sizeof(m.text), "%s", h->env.socket);
	if (transact(mq, h, node, &m, &reply))
		return -1;
	if (reply.status != BLK_MQ_OK) {
		refuse(mq, h, node, queue, &reply);
		set_state(hq, HQ_LOCAL, 0);
		home_kick(h, queue);
		return 0;
	}
	learn_domain(mq, h, node, reply.domain);
	remember(hq, &n, (m.flags & BLK_MQ_F_FANOUT) != 0);
	set_state(hq, HQ_REMOTE, node);
	atomic_fetch_add(&mq->handoffs, 1);
	return 0;
}

/* cfg_lock held.  The serving node drains queue and gives it back. */
static int recall(struct blk_mq *mq, struct home *h, unsigned queue)
{
	struct virtq *vq = &vdev_of(h)->vq[queue];
	struct home_queue *hq = &h->q[queue];
	struct blk_mq_msg m, reply;
	unsigned node;

	pthread_mutex_lock(&hq->lock);
	node = hq->node;
	hq->state = HQ_MOVING;
	pthread_mutex_unlock(&hq->lock);
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_STOP;
	m.drive = (uint8_t)h->drive;
	m.queue = (uint8_t)queue;
	if (transact(mq, h, node, &m, &reply))
		return -1;
	if (reply.status != BLK_MQ_OK) {
		mq__fatal(mq, "virtio-blk%u: node %u could not give queue %u "
			  "back: %s", h->drive, node, queue, reply.text);
		return -1;
	}
	pthread_mutex_lock(&vq->lock);
	vq->s.last_avail = reply.last_avail;
	vq->s.used_idx = reply.used_idx;
	vq->s.signalled_used = reply.signalled_used;
	vq->s.signalled_valid = reply.signalled_valid;
	if (reply.broken)
		vq->s.broken = 1;
	pthread_mutex_unlock(&vq->lock);
	set_state(hq, HQ_LOCAL, 0);
	/* Kicks dropped while it moved. */
	home_kick(h, queue);
	return 0;
}

/* cfg_lock held.  Tells a serving node a new interrupt message, doorbell
 * or flush rule. */
static int refresh(struct blk_mq *mq, struct home *h, unsigned queue)
{
	struct home_queue *hq = &h->q[queue];
	struct blk_mq_msg m, reply;
	struct msi_now n;

	msi_now(h, queue, &n);
	if (n.direct == hq->msi_direct && n.addr == hq->msi_addr &&
	    n.data == hq->msi_data && n.notify == hq->notify &&
	    h->fanout == hq->fanout)
		return 0;
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_UPDATE;
	m.drive = (uint8_t)h->drive;
	m.queue = (uint8_t)queue;
	m.flags = msi_flags(&n, h->fanout);
	m.msi_addr = n.addr;
	m.msi_data = n.data;
	m.notify = n.notify;
	if (transact(mq, h, hq->node, &m, &reply))
		return -1;
	if (reply.status != BLK_MQ_OK) {
		mq__fatal(mq, "virtio-blk%u: node %u refused an update of "
			  "queue %u: %s", h->drive, hq->node, queue,
			  reply.text);
		return -1;
	}
	remember(hq, &n, h->fanout);
	return 0;
}

/* The node that should serve queue now: 0 unless it is live, assigned
 * elsewhere, and nothing holds the drive. */
static unsigned wanted(struct blk_mq *mq, struct home *h, unsigned queue)
{
	struct virtio_dev *vdev = vdev_of(h);
	struct virtq *vq = &vdev->vq[queue];
	uint8_t st = __atomic_load_n(&vdev->s.status, __ATOMIC_ACQUIRE);
	unsigned node = h->env.node[queue];
	bool live;

	if (h->held || atomic_load(&mq->aborted) || !node ||
	    node >= mq->cfg.nr_nodes || h->failed[node] ||
	    !(st & VIRTIO_STATUS_DRIVER_OK))
		return 0;
	pthread_mutex_lock(&vq->lock);
	live = vq->live && !vq->s.broken;
	pthread_mutex_unlock(&vq->lock);
	return live ? node : 0;
}

static unsigned current(struct home *h, unsigned queue)
{
	struct home_queue *hq = &h->q[queue];
	unsigned node;

	pthread_mutex_lock(&hq->lock);
	node = hq->state == HQ_REMOTE ? hq->node : 0;
	pthread_mutex_unlock(&hq->lock);
	return node;
}

/* cfg_lock held.  Moves every queue to where it should be served. */
static int sync_queues(struct blk_mq *mq, struct home *h)
{
	unsigned nq = vdev_of(h)->s.num_queues, q;

	for (q = 0; q < nq; q++) {
		unsigned want = wanted(mq, h, q), cur = current(h, q);

		if (cur == want)
			continue;
		if (cur && recall(mq, h, q))
			return -1;
		if (want && handoff(mq, h, q, want))
			return -1;
	}
	/* A node answering late may have changed the flush rule for the
	 * queues handed out before it; and messages may have moved. */
	for (q = 0; q < nq; q++)
		if (current(h, q) && refresh(mq, h, q))
			return -1;
	return 0;
}

static void home_common_written(void *ctx, enum virtio_common_reg reg)
{
	struct home *h = ctx;
	struct blk_mq *mq = mq_of(h);

	if (reg != VIRTIO_COMMON_STATUS && reg != VIRTIO_COMMON_Q_ENABLE &&
	    reg != VIRTIO_COMMON_Q_MSIX_VECTOR)
		return;
	pthread_mutex_lock(&h->cfg_lock);
	sync_queues(mq, h);
	pthread_mutex_unlock(&h->cfg_lock);
}

/* The device resets (its lock held): nothing may complete into the next
 * driver's rings, so every queue comes back first. */
static void home_reset(void *ctx)
{
	struct home *h = ctx;
	struct blk_mq *mq = mq_of(h);
	unsigned nq = vdev_of(h)->s.num_queues;

	pthread_mutex_lock(&h->cfg_lock);
	for (unsigned q = 0; q < nq; q++)
		if (current(h, q))
			recall(mq, h, q);
	pthread_mutex_unlock(&h->cfg_lock);
}

static bool home_fanout(void *ctx)
{
	struct home *h = ctx;

	return __atomic_load_n(&h->fanout, __ATOMIC_RELAXED);
}

int home__attach(struct blk_mq *mq, struct home *h, unsigned drive,
		 const struct blk_mq_home_env *env)
{
	struct virtio_blk_hooks hooks = {
		.ctx = h,
		.kick = home_kick,
		.reset = home_reset,
		.common_written = home_common_written,
		.flush_fanout = home_fanout,
		.flush_remote = flush__home_remote,
	};

	if (h->attached || env->blk->vdev.s.num_queues > BLK_MQ_MAX_QUEUES)
		return -1;
	h->mq = mq;
	h->env = *env;
	h->env.socket[sizeof(h->env.socket) - 1] = '\0';
	h->drive = drive;
	h->fanout = mq->cfg.force_fanout;
	h->attached = true;
	virtio_blk__set_hooks(env->blk, &hooks);
	return 0;
}

void home__changed(struct home *h)
{
	struct blk_mq *mq = mq_of(h);
	unsigned nq = vdev_of(h)->s.num_queues;

	pthread_mutex_lock(&h->cfg_lock);
	for (unsigned q = 0; q < nq; q++)
		if (current(h, q) && refresh(mq, h, q))
			break;
	pthread_mutex_unlock(&h->cfg_lock);
}

void home__set_backend(struct home *h, const char *socket, uint64_t domain)
{
	struct blk_mq *mq = mq_of(h);
	bool keep = socket && socket[0] && strlen(socket) <= BLK_MQ_TEXT_MAX;

	pthread_mutex_lock(&h->cfg_lock);
	h->gen++;
	snprintf(h->env.socket, sizeof(h->env.socket), "%s",
		 keep ? socket : "");
	h->env.domain = domain;
	__atomic_store_n(&h->fanout, mq->cfg.force_fanout, __ATOMIC_RELAXED);
	memset(h->failed, 0, sizeof(h->failed));
	for (unsigned n = 0; n < BLK_MQ_MAX_NODES; n++)
		__atomic_store_n(&h->opened[n], false, __ATOMIC_RELAXED);
	if (!keep) {
		bool any = false;

		for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++)
			any |= h->env.node[q] != 0;
		/* Other nodes would not know how to open it. */
		if (any)
			mq__log(mq, "virtio-blk%u: the new image is reachable "
				"from node 0 only: node 0 serves all its "
				"queues", h->drive);
		memset(h->env.node, 0, sizeof(h->env.node));
	}
	sync_queues(mq, h);
	pthread_mutex_unlock(&h->cfg_lock);
}

int home__hold(struct blk_mq *mq, struct home *h, bool hold)
{
	int r;

	pthread_mutex_lock(&h->cfg_lock);
	h->held = hold;
	r = sync_queues(mq, h);
	pthread_mutex_unlock(&h->cfg_lock);
	return r;
}

int home__assign(struct blk_mq *mq, struct home *h, unsigned queue,
		 unsigned node)
{
	int r;

	pthread_mutex_lock(&h->cfg_lock);
	h->env.node[queue] = (uint8_t)node;
	r = sync_queues(mq, h);
	pthread_mutex_unlock(&h->cfg_lock);
	return r;
}

unsigned home__serving_node(struct home *h, unsigned queue)
{
	return current(h, queue);
}
