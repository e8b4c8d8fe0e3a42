/* Cross-node virtio-blk queue serving, a serving node's side: its own
 * handle on each image (opened at the first queue handed over), a twin of
 * node 0's device that pops the queues handed over, their doorbells, and
 * the interrupts they raise. */
#include "vmm/devices/virtio_blk_mq_priv.h"

#include <stdio.h>
#include <string.h>

void served__init(struct blk_mq *mq, struct served *sd, unsigned drive)
{
	memset(sd, 0, sizeof(*sd));
	sd->mq = mq;
	sd->drive = drive;
	atomic_init(&sd->state, SD_CLOSED);
	atomic_init(&sd->fanout, false);
	for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++) {
		pthread_mutex_init(&sd->q[q].lock, NULL);
		pthread_mutex_init(&sd->q[q].msi_lock, NULL);
	}
}

/* Requests taken here still complete into guest RAM before the image
 * closes. */
static void close_twin(struct served *sd)
{
	if (atomic_load(&sd->state) == SD_OPEN) {
		for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++) {
			pthread_mutex_lock(&sd->q[q].lock);
			__atomic_store_n(&sd->q[q].live, false,
					 __ATOMIC_RELEASE);
			pthread_mutex_unlock(&sd->q[q].lock);
			virtq__drain(&sd->blk.vdev.vq[q]);
		}
		if (sd->mq->cfg.ops.close)
			sd->mq->cfg.ops.close(sd->mq->cfg.ops.ctx, &sd->b);
		virtio_blk__destroy(&sd->blk);
	}
	atomic_store(&sd->state, SD_CLOSED);
	sd->why[0] = '\0';
}

/* The workers are gone. */
void served__close(struct served *sd)
{
	close_twin(sd);
	for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++) {
		pthread_mutex_destroy(&sd->q[q].msi_lock);
		pthread_mutex_destroy(&sd->q[q].lock);
	}
}

/* ---- doorbells ---- */

static void bell_set(struct blk_mq *mq, unsigned drive, unsigned queue,
		     uint64_t gpa)
{
	struct doorbell *b = &mq->bell[drive * BLK_MQ_MAX_QUEUES + queue];

	pthread_rwlock_wrlock(&mq->bell_lock);
	*b = (struct doorbell){ gpa, (uint8_t)drive, (uint8_t)queue,
				gpa != 0 };
	pthread_rwlock_unlock(&mq->bell_lock);
}

static void serve(struct served *sd, unsigned queue)
{
	struct serve_queue *sq = &sd->q[queue];

	pthread_mutex_lock(&sq->lock);
	if (sq->live)
		virtio_blk__serve_queue(&sd->blk, queue);
	pthread_mutex_unlock(&sq->lock);
}

bool served__doorbell(struct blk_mq *mq, uint64_t gpa, uint8_t *data,
		      uint32_t len, bool is_write)
{
	struct doorbell hit = { 0 };

	pthread_rwlock_rdlock(&mq->bell_lock);
	for (unsigned i = 0; i < MQ_BELLS; i++) {
		const struct doorbell *b = &mq->bell[i];

		/* The whole notify register: drivers write 16 bits of it. */
		if (b->used && gpa >= b->gpa &&
		    gpa - b->gpa < BLK_MQ_DOORBELL_LEN) {
			hit = *b;
			break;
		}
	}
	pthread_rwlock_unlock(&mq->bell_lock);
	if (!hit.used)
		return false;
	if (!is_write) {
		memset(data, 0, len);
		return true;
	}
	atomic_fetch_add(&mq->doorbells, 1);
	serve(&mq->sd[hit.drive], hit.queue);
	return true;
}

void served__kick(struct blk_mq *mq, unsigned drive, unsigned queue)
{
	if (atomic_load(&mq->sd[drive].state) == SD_OPEN &&
	    queue < BLK_MQ_MAX_QUEUES)
		serve(&mq->sd[drive], queue);
}

uint64_t served__queues(struct blk_mq *mq)
{
	uint64_t n = 0;

	for (unsigned d = 0; d < BLK_MQ_MAX_DRIVES; d++) {
		if (atomic_load(&mq->sd[d].state) != SD_OPEN)
			continue;
		for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++)
			n += __atomic_load_n(&mq->sd[d].q[q].live,
					     __ATOMIC_RELAXED);
	}
	return n;
}

/* ---- the twin device's transport: interrupts ---- */

static void twin_irq(void *ctx, unsigned queue)
{
	struct served *sd = ctx;
	struct serve_queue *sq = &sd->q[queue];
	struct blk_mq *mq = sd->mq;
	struct blk_mq_msg m;
	uint64_t addr;
	uint32_t data;
	bool direct;

	/* The VM stops: nobody takes interrupts any more. */
	if (atomic_load(&mq->aborted))
		return;
	/* Held across the delivery: once an UPDATE masking the vector is
	 * acknowledged, no message with the old state can still go out. */
	pthread_mutex_lock(&sq->msi_lock);
	direct = sq->msi_direct && mq->cfg.ops.msi;
	addr = sq->msi_addr;
	data = sq->msi_data;
	if (direct)
		mq->cfg.ops.msi(mq->cfg.ops.ctx, addr, data);
	pthread_mutex_unlock(&sq->msi_lock);
	if (direct)
		return;
	/* Masked, MSI-X off or no vector: node 0 keeps the pending bits,
	 * the ISR and the INTx line. */
	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_IRQ;
	m.drive = (uint8_t)sd->drive;
	m.queue = (uint8_t)queue;
	mq__send(mq, 0, &m);
}

/* The twin broke on a guest error (it logged the reason): node 0 sets
 * NEEDS_RESET and tells the driver. */
static void twin_config_irq(void *ctx)
{
	struct served *sd = ctx;
	struct blk_mq_msg m;

	for (unsigned q = 0; q < sd->blk.vdev.s.num_queues; q++) {
		struct virtq *vq = &sd->blk.vdev.vq[q];
		bool broken;

		pthread_mutex_lock(&vq->lock);
		broken = vq->s.broken;
		pthread_mutex_unlock(&vq->lock);
		if (!broken || sd->q[q].reported)
			continue;
		sd->q[q].reported = true;
		memset(&m, 0, sizeof(m));
		m.type = BLK_MQ_T_BROKEN;
		m.drive = (uint8_t)sd->drive;
		m.queue = (uint8_t)q;
		snprintf(m.text, sizeof(m.text), "a guest error on queue %u",
			 q);
		mq__send(sd->mq, 0, &m);
	}
	/* Sticky on node 0; here it must not hide the next queue's. */
	__atomic_fetch_and(&sd->blk.vdev.s.status,
			   (uint8_t)~VIRTIO_STATUS_NEEDS_RESET,
			   __ATOMIC_ACQ_REL);
}

static bool twin_fanout(void *ctx)
{
	struct served *sd = ctx;

	return atomic_load(&sd->fanout);
}

/* ---- the hand-over ---- */

static int open_twin(struct blk_mq *mq, struct served *sd,
		     const struct blk_mq_msg *m)
{
	struct virtio_blk_opts bo;
	struct virtio_transport tr = { twin_irq, twin_config_irq, sd };
	struct virtio_blk_hooks hooks = {
		.ctx = sd,
		.flush_fanout = twin_fanout,
		.flush_remote = flush__served_remote,
	};
	char name[32], err[BLK_MQ_TEXT_MAX + 1];

	if (mq->cfg.ops.open(mq->cfg.ops.ctx, sd->drive, m->text, &sd->b,
			     err, sizeof(err))) {
		snprintf(sd->why, sizeof(sd->why), "%s", err);
		return -1;
	}
	snprintf(name, sizeof(name), "virtio-blk%u", sd->drive);
	memset(&bo, 0, sizeof(bo));
	bo.name = name;
	bo.num_queues = m->num_queues;
	bo.queue_size = m->max_size;
	bo.read_only = sd->b.read_only;
	if (virtio_blk__init(&sd->blk, &bo, &sd->b.be, mq->cfg.mem, err,
			     sizeof(err))) {
		snprintf(sd->why, sizeof(sd->why), "%s", err);
		goto fail;
	}
	if (sd->blk.vdev.s.device_features != m->device_features ||
	    sd->blk.capacity != m->capacity) {
		snprintf(sd->why, sizeof(sd->why), "the image opened here "
			 "differs from node 0's (%llu sectors, features 0x%llx;"
			 " node 0: %llu, 0x%llx)",
			 (unsigned long long)sd->blk.capacity,
			 (unsigned long long)sd->blk.vdev.s.device_features,
			 (unsigned long long)m->capacity,
			 (unsigned long long)m->device_features);
		virtio_blk__destroy(&sd->blk);
		goto fail;
	}
	sd->blk.bounce_reads = sd->b.bounce_reads;
	virtio_blk__set_hooks(&sd->blk, &hooks);
	virtio_dev__set_transport(&sd->blk.vdev, &tr,
				  (uint16_t)(m->num_queues + 1));
	/* Live as far as the twin knows: a guest error then reaches
	 * twin_config_irq. */
	sd->blk.vdev.s.status = VIRTIO_STATUS_ACKNOWLEDGE |
				VIRTIO_STATUS_DRIVER |
				VIRTIO_STATUS_FEATURES_OK |
				VIRTIO_STATUS_DRIVER_OK;
	return 0;
fail:
	if (mq->cfg.ops.close)
		mq->cfg.ops.close(mq->cfg.ops.ctx, &sd->b);
	return -1;
}

static void set_msi(struct serve_queue *sq, const struct blk_mq_msg *m)
{
	pthread_mutex_lock(&sq->msi_lock);
	sq->msi_direct = m->flags & BLK_MQ_F_MSI_DIRECT;
	sq->msi_addr = m->msi_addr;
	sq->msi_data = m->msi_data;
	pthread_mutex_unlock(&sq->msi_lock);
}

static void reply_to(struct blk_mq_msg *r, const struct blk_mq_msg *m,
		     enum blk_mq_status st)
{
	memset(r, 0, sizeof(*r));
	r->type = BLK_MQ_T_ACK;
	r->drive = m->drive;
	r->queue = m->queue;
	r->seq = m->seq;
	r->acked = (uint8_t)m->type;
	r->status = (uint8_t)st;
}

static void setup(struct blk_mq *mq, struct served *sd,
		  const struct blk_mq_msg *m, struct blk_mq_msg *r)
{
	struct serve_queue *sq = &sd->q[m->queue];
	struct virtq *vq;
	char err[VIRTQ_ERR_MAX];

	/* Node 0 swapped the image (its queues are all back there). */
	if (atomic_load(&sd->state) != SD_CLOSED && sd->gen != m->gen) {
		for (unsigned q = 0; q < BLK_MQ_MAX_QUEUES; q++)
			bell_set(mq, sd->drive, q, 0);
		close_twin(sd);
	}
	if (atomic_load(&sd->state) == SD_CLOSED) {
		sd->gen = m->gen;
		atomic_store(&sd->state,
			     open_twin(mq, sd, m) ? SD_FAILED : SD_OPEN);
	}
	if (atomic_load(&sd->state) != SD_OPEN ||
	    m->num_queues != sd->blk.vdev.s.num_queues ||
	    m->max_size != sd->blk.vdev.max_queue_size) {
		reply_to(r, m, BLK_MQ_FALLBACK);
		snprintf(r->text, sizeof(r->text), "%s", sd->why[0] ? sd->why :
			 "the device here has another queue layout");
		return;
	}
	vq = &sd->blk.vdev.vq[m->queue];
	pthread_mutex_lock(&sq->lock);
	if (sq->live) {
		pthread_mutex_unlock(&sq->lock);
		reply_to(r, m, BLK_MQ_ERROR);
		snprintf(r->text, sizeof(r->text), "queue %u is served here "
			 "already", m->queue);
		return;
	}
	__atomic_store_n(&sd->blk.vdev.s.driver_features, m->features,
			 __ATOMIC_RELAXED);
	virtq__reset(vq);
	pthread_mutex_lock(&vq->lock);
	vq->s.desc = m->desc;
	vq->s.avail = m->avail;
	vq->s.used = m->used;
	vq->s.size = m->size;
	vq->s.last_avail = m->last_avail;
	vq->s.used_idx = m->used_idx;
	vq->s.signalled_used = m->signalled_used;
	vq->s.signalled_valid = m->signalled_valid;
	vq->s.event_idx = (m->flags & BLK_MQ_F_EVENT_IDX) != 0;
	vq->s.indirect = (m->flags & BLK_MQ_F_INDIRECT) != 0;
	vq->s.enabled = 1;
	pthread_mutex_unlock(&vq->lock);
	/* Node 0 checked the same rings against the same RAM layout; a
	 * failure here is a peer's error, not the guest's. */
	if (virtq__start(vq, sd->blk.vdev.max_queue_size, err, sizeof(err))) {
		virtq__reset(vq);
		pthread_mutex_unlock(&sq->lock);
		reply_to(r, m, BLK_MQ_ERROR);
		snprintf(r->text, sizeof(r->text), "%s", err);
		return;
	}
	set_msi(sq, m);
	sq->notify = m->notify;
	sq->reported = false;
	atomic_store(&sd->fanout, (m->flags & BLK_MQ_F_FANOUT) != 0);
	__atomic_store_n(&sq->live, true, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sq->lock);
	bell_set(mq, sd->drive, m->queue, m->notify);
	reply_to(r, m, BLK_MQ_OK);
	r->domain = sd->b.domain;
}

static void stop(struct blk_mq *mq, struct served *sd,
		 const struct blk_mq_msg *m, struct blk_mq_msg *r)
{
	struct serve_queue *sq = &sd->q[m->queue];
	struct virtq *vq = &sd->blk.vdev.vq[m->queue];
	bool was;

	pthread_mutex_lock(&sq->lock);
	was = sq->live;
	__atomic_store_n(&sq->live, false, __ATOMIC_RELEASE);
	pthread_mutex_unlock(&sq->lock);
	bell_set(mq, sd->drive, m->queue, 0);
	if (!was || atomic_load(&sd->state) != SD_OPEN) {
		reply_to(r, m, BLK_MQ_ERROR);
		snprintf(r->text, sizeof(r->text), "queue %u is not served "
			 "here", m->queue);
		return;
	}
	/* Whatever this node took completes into the rings first. */
	virtq__drain(vq);
	reply_to(r, m, BLK_MQ_OK);
	if (atomic_load(&sd->fanout) && flush__local_sync(sd)) {
		reply_to(r, m, BLK_MQ_ERROR);
		snprintf(r->text, sizeof(r->text), "flushing the image "
			 "failed");
		return;
	}
	pthread_mutex_lock(&vq->lock);
	r->last_avail = vq->s.last_avail;
	r->used_idx = vq->s.used_idx;
	r->signalled_used = vq->s.signalled_used;
	r->signalled_valid = vq->s.signalled_valid;
	r->broken = vq->s.broken;
	pthread_mutex_unlock(&vq->lock);
	virtq__reset(vq);
}

static void update(struct blk_mq *mq, struct served *sd,
		   const struct blk_mq_msg *m, struct blk_mq_msg *r)
{
	struct serve_queue *sq = &sd->q[m->queue];
	bool live;

	pthread_mutex_lock(&sq->lock);
	live = sq->live;
	if (live) {
		set_msi(sq, m);
		sq->notify = m->notify;
		atomic_store(&sd->fanout, (m->flags & BLK_MQ_F_FANOUT) != 0);
	}
	pthread_mutex_unlock(&sq->lock);
	if (!live) {
		reply_to(r, m, BLK_MQ_ERROR);
		snprintf(r->text, sizeof(r->text), "queue %u is not served "
			 "here", m->queue);
		return;
	}
	bell_set(mq, sd->drive, m->queue, m->notify);
	reply_to(r, m, BLK_MQ_OK);
}

void served__ctl(struct blk_mq *mq, struct mq_job *j)
{
	const struct blk_mq_msg *m = &j->msg;
	struct served *sd = &mq->sd[m->drive];
	struct blk_mq_msg r, kick;

	if (atomic_load(&mq->aborted))
		return;
	switch (m->type) {
	case BLK_MQ_T_SETUP:
		setup(mq, sd, m, &r);
		break;
	case BLK_MQ_T_STOP:
		stop(mq, sd, m, &r);
		break;
	case BLK_MQ_T_UPDATE:
		update(mq, sd, m, &r);
		break;
	default:
		return;
	}
	mq__send(mq, 0, &r);
	if (m->type == BLK_MQ_T_SETUP && r.status == BLK_MQ_OK) {
		/* Kicks that came while the queue moved were dropped. */
		kick = *m;
		kick.type = BLK_MQ_T_KICK;
		mq__enqueue(&mq->data, mq->cfg.self, &kick);
	}
}
