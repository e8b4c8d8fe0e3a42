/* Cross-node virtio-blk queue serving: the node object, its two workers,
 * message dispatch (who may send what), the public entry points. */
#include "vmm/devices/virtio_blk_mq_priv.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void vlog(struct blk_mq *mq, const char *fmt, va_list ap)
	__attribute__((format(printf, 2, 0)));

static void vlog(struct blk_mq *mq, const char *fmt, va_list ap)
{
	char line[512];

	vsnprintf(line, sizeof(line), fmt, ap);
	if (mq->cfg.ops.log)
		mq->cfg.ops.log(mq->cfg.ops.ctx, line);
	else
		fprintf(stderr, "krg-vmm: %s\n", line);
}

void mq__log(struct blk_mq *mq, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vlog(mq, fmt, ap);
	va_end(ap);
}

void mq__fatal(struct blk_mq *mq, const char *fmt, ...)
{
	char why[512];
	va_list ap;

	/* A VM going down reports the cause once, not every casualty. */
	if (atomic_load(&mq->aborted))
		return;
	va_start(ap, fmt);
	vsnprintf(why, sizeof(why), fmt, ap);
	va_end(ap);
	if (mq->cfg.ops.fatal)
		mq->cfg.ops.fatal(mq->cfg.ops.ctx, why);
	else
		fprintf(stderr, "krg-vmm: %s\n", why);
}

int mq__send(struct blk_mq *mq, unsigned node, const struct blk_mq_msg *m)
{
	uint8_t buf[BLK_MQ_MSG_MAX];
	int len;

	/* Stopping: the transport may be gone any moment. */
	if (atomic_load(&mq->aborted))
		return -1;
	len = blk_mq__encode(m, buf, sizeof(buf));
	if (len < 0) {
		mq__fatal(mq, "virtio-blk: cannot encode a %s message",
			  blk_mq__type_name(m->type));
		return -1;
	}
	if (mq->cfg.ops.send(mq->cfg.ops.ctx, node, m->type, buf,
			     (size_t)len) == 0)
		return 0;
	mq__fatal(mq, "virtio-blk: cannot send %s to node %u",
		  blk_mq__type_name(m->type), node);
	return -1;
}

/* ---- workers ---- */

static void *worker_main(void *arg)
{
	struct mq_worker *w = arg;
	struct mq_job *j;

	pthread_mutex_lock(&w->lock);
	while (!w->stop) {
		if (!w->head) {
			pthread_cond_wait(&w->cond, &w->lock);
			continue;
		}
		j = w->head;
		w->head = j->next;
		if (!w->head)
			w->tail = NULL;
		pthread_mutex_unlock(&w->lock);
		w->run(w->mq, j);
		free(j);
		pthread_mutex_lock(&w->lock);
	}
	pthread_mutex_unlock(&w->lock);
	return NULL;
}

void mq__enqueue(struct mq_worker *w, unsigned sender,
		 const struct blk_mq_msg *m)
{
	struct mq_job *j = malloc(sizeof(*j));

	if (!j) {
		mq__fatal(w->mq, "virtio-blk: out of memory queueing %s",
			  blk_mq__type_name(m->type));
		return;
	}
	j->next = NULL;
	j->sender = sender;
	j->msg = *m;
	pthread_mutex_lock(&w->lock);
	if (w->stop) {
		pthread_mutex_unlock(&w->lock);
		free(j);
		return;
	}
	if (w->tail)
		w->tail->next = j;
	else
		w->head = j;
	w->tail = j;
	pthread_cond_signal(&w->cond);
	pthread_mutex_unlock(&w->lock);
}

static int worker_start(struct blk_mq *mq, struct mq_worker *w,
			void (*run)(struct blk_mq *, struct mq_job *))
{
	w->mq = mq;
	w->run = run;
	pthread_mutex_init(&w->lock, NULL);
	pthread_cond_init(&w->cond, NULL);
	if (pthread_create(&w->thread, NULL, worker_main, w))
		return -1;
	w->started = true;
	return 0;
}

/* Queued jobs are dropped: the VM is stopping. */
static void worker_stop(struct mq_worker *w)
{
	struct mq_job *j;

	if (!w->mq)
		return;
	pthread_mutex_lock(&w->lock);
	w->stop = true;
	pthread_cond_broadcast(&w->cond);
	pthread_mutex_unlock(&w->lock);
	if (w->started)
		pthread_join(w->thread, NULL);
	w->started = false;
	while ((j = w->head)) {
		w->head = j->next;
		free(j);
	}
	w->tail = NULL;
	pthread_cond_destroy(&w->cond);
	pthread_mutex_destroy(&w->lock);
	w->mq = NULL;
}

static void run_data(struct blk_mq *mq, struct mq_job *j)
{
	const struct blk_mq_msg *m = &j->msg;

	if (atomic_load(&mq->aborted))
		return;
	switch (m->type) {
	case BLK_MQ_T_KICK:
		if (j->sender != mq->cfg.self)
			atomic_fetch_add(&mq->kicks_in, 1);
		served__kick(mq, m->drive, m->queue);
		break;
	case BLK_MQ_T_IRQ:
		home__irq(mq, &mq->home[m->drive], j->sender, m);
		break;
	case BLK_MQ_T_BROKEN:
		home__broken(mq, &mq->home[m->drive], j->sender, m);
		break;
	case BLK_MQ_T_FLUSH:
		flush__request(mq, j->sender, m);
		break;
	case BLK_MQ_T_FLUSHED:
		flush__answer(mq, j->sender, m);
		break;
	default:
		break;
	}
}

/* ---- life ---- */

struct blk_mq *blk_mq__new(const struct blk_mq_config *cfg, char *err,
			   size_t errlen)
{
	struct blk_mq *mq;

	if (!cfg || !cfg->ops.send || !cfg->mem.map ||
	    cfg->nr_nodes > BLK_MQ_MAX_NODES || cfg->self >= cfg->nr_nodes ||
	    (cfg->self && !cfg->ops.open)) {
		snprintf(err, errlen, "virtio-blk queues: bad configuration");
		return NULL;
	}
	mq = calloc(1, sizeof(*mq));
	if (!mq) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	mq->cfg = *cfg;
	atomic_init(&mq->aborted, false);
	pthread_rwlock_init(&mq->bell_lock, NULL);
	pthread_mutex_init(&mq->flush_lock, NULL);
	pthread_cond_init(&mq->flush_idle, NULL);
	for (unsigned i = 0; i < BLK_MQ_MAX_DRIVES; i++) {
		home__init(&mq->home[i]);
		served__init(mq, &mq->sd[i], i);
	}
	if (worker_start(mq, &mq->ctl, served__ctl) ||
	    worker_start(mq, &mq->data, run_data)) {
		snprintf(err, errlen, "virtio-blk queues: cannot start the "
			 "worker threads");
		blk_mq__free(mq);
		return NULL;
	}
	return mq;
}

void blk_mq__abort(struct blk_mq *mq)
{
	if (!mq || atomic_exchange(&mq->aborted, true))
		return;
	for (unsigned i = 0; i < BLK_MQ_MAX_DRIVES; i++)
		home__abort(&mq->home[i]);
	flush__abort(mq);
}

void blk_mq__free(struct blk_mq *mq)
{
	if (!mq)
		return;
	blk_mq__abort(mq);
	worker_stop(&mq->ctl);
	worker_stop(&mq->data);
	for (unsigned i = 0; i < BLK_MQ_MAX_DRIVES; i++) {
		served__close(&mq->sd[i]);
		home__destroy(&mq->home[i]);
	}
	flush__abort(mq);
	flush__wait_idle(mq);
	pthread_cond_destroy(&mq->flush_idle);
	pthread_mutex_destroy(&mq->flush_lock);
	pthread_rwlock_destroy(&mq->bell_lock);
	free(mq);
}

/* ---- dispatch ---- */

static bool from_home_only(unsigned type)
{
	return type == BLK_MQ_T_SETUP || type == BLK_MQ_T_STOP ||
	       type == BLK_MQ_T_KICK || type == BLK_MQ_T_UPDATE;
}

static bool to_home_only(unsigned type)
{
	return type == BLK_MQ_T_ACK || type == BLK_MQ_T_IRQ ||
	       type == BLK_MQ_T_BROKEN;
}

int blk_mq__recv(struct blk_mq *mq, unsigned sender, unsigned type,
		 const void *payload, size_t len)
{
	struct blk_mq_msg m;
	char why[160];
	unsigned self = mq->cfg.self;

	if (atomic_load(&mq->aborted))
		return 0;
	if (blk_mq__decode(type, payload, len, &m, why, sizeof(why))) {
		mq__fatal(mq, "node %u: virtio-blk: %s", sender, why);
		return -EPROTO;
	}
	/* Node 0 talks to the others; the others talk to node 0 only. */
	if (sender == self || sender >= mq->cfg.nr_nodes ||
	    (from_home_only(type) && (sender != 0 || self == 0)) ||
	    (to_home_only(type) && self != 0) ||
	    (self != 0 && sender != 0)) {
		mq__fatal(mq, "node %u: virtio-blk: %s sent to node %u",
			  sender, blk_mq__type_name(type), self);
		return -EPROTO;
	}
	if (self == 0 && !mq->home[m.drive].attached) {
		mq__fatal(mq, "node %u: virtio-blk: %s for drive %u, which "
			  "does not exist", sender, blk_mq__type_name(type),
			  m.drive);
		return -EPROTO;
	}
	switch (type) {
	case BLK_MQ_T_ACK:
		if (home__ack(mq, &mq->home[m.drive], sender, &m) == 0)
			return 0;
		mq__fatal(mq, "node %u: virtio-blk: an ACK of %s for drive %u "
			  "queue %u answers nothing outstanding", sender,
			  blk_mq__type_name(m.acked), m.drive, m.queue);
		return -EPROTO;
	case BLK_MQ_T_SETUP:
	case BLK_MQ_T_STOP:
	case BLK_MQ_T_UPDATE:
		mq__enqueue(&mq->ctl, sender, &m);
		return 0;
	default:
		mq__enqueue(&mq->data, sender, &m);
		return 0;
	}
}

/* ---- node 0 ---- */

int blk_mq__attach(struct blk_mq *mq, unsigned drive,
		   const struct blk_mq_home_env *env)
{
	if (!mq || mq->cfg.self != 0 || drive >= BLK_MQ_MAX_DRIVES || !env ||
	    !env->blk)
		return -1;
	return home__attach(mq, &mq->home[drive], drive, env);
}

static struct home *home_of(struct blk_mq *mq, unsigned drive)
{
	if (!mq || mq->cfg.self != 0 || drive >= BLK_MQ_MAX_DRIVES ||
	    !mq->home[drive].attached)
		return NULL;
	return &mq->home[drive];
}

int blk_mq__hold(struct blk_mq *mq, unsigned drive, bool hold)
{
	struct home *h = home_of(mq, drive);

	return h ? home__hold(mq, h, hold) : -1;
}

int blk_mq__assign(struct blk_mq *mq, unsigned drive, unsigned queue,
		   unsigned node)
{
	struct home *h = home_of(mq, drive);

	if (!h || queue >= h->env.blk->vdev.s.num_queues ||
	    node >= mq->cfg.nr_nodes)
		return -1;
	return home__assign(mq, h, queue, node);
}

void blk_mq__set_backend(struct blk_mq *mq, unsigned drive,
			 const char *socket, uint64_t domain)
{
	struct home *h = home_of(mq, drive);

	if (h)
		home__set_backend(h, socket, domain);
}

void blk_mq__irq_changed(struct blk_mq *mq, unsigned drive)
{
	struct home *h = home_of(mq, drive);

	if (h)
		home__changed(h);
}

unsigned blk_mq__queues(struct blk_mq *mq, unsigned drive)
{
	struct home *h = home_of(mq, drive);

	return h ? h->env.blk->vdev.s.num_queues : 0;
}

unsigned blk_mq__serving_node(struct blk_mq *mq, unsigned drive,
			      unsigned queue)
{
	struct home *h = home_of(mq, drive);

	return h && queue < BLK_MQ_MAX_QUEUES ? home__serving_node(h, queue)
					      : 0;
}

/* ---- what serving nodes report ---- */

void home__irq(struct blk_mq *mq, struct home *h, unsigned sender,
	       const struct blk_mq_msg *m)
{
	struct virtio_dev *vdev = &h->env.blk->vdev;

	(void)mq;
	(void)sender;
	if (m->queue >= vdev->s.num_queues)
		return;
	/* What virtio_dev__push does for a local queue: ISR bit (INTx),
	 * then the transport picks MSI-X, a pending bit or the line. */
	__atomic_fetch_or(&vdev->s.isr, VIRTIO_ISR_QUEUE, __ATOMIC_RELEASE);
	if (vdev->tr.interrupt)
		vdev->tr.interrupt(vdev->tr.ctx, m->queue);
}

void home__broken(struct blk_mq *mq, struct home *h, unsigned sender,
		  const struct blk_mq_msg *m)
{
	char why[BLK_MQ_TEXT_MAX + 32];

	(void)mq;
	snprintf(why, sizeof(why), "%s (served on node %u)",
		 m->text[0] ? m->text : "guest error", sender);
	virtio_dev__fail(&h->env.blk->vdev, m->queue, why);
}

/* ---- serving nodes ---- */

bool blk_mq__doorbell(struct blk_mq *mq, uint64_t gpa, uint8_t *data,
		      uint32_t len, bool is_write)
{
	if (!mq || mq->cfg.self == 0)
		return false;
	return served__doorbell(mq, gpa, data, len, is_write);
}

static void add_blk_counts(struct blk_mq_stats *out,
			   const struct virtio_blk *blk)
{
	out->requests += __atomic_load_n(&blk->served, __ATOMIC_RELAXED);
	out->writes += __atomic_load_n(&blk->writes, __ATOMIC_RELAXED);
	out->flushes += __atomic_load_n(&blk->flushes, __ATOMIC_RELAXED);
	out->failed += __atomic_load_n(&blk->failed, __ATOMIC_RELAXED);
}

void blk_mq__stats(struct blk_mq *mq, struct blk_mq_stats *out)
{
	memset(out, 0, sizeof(*out));
	if (!mq)
		return;
	for (unsigned i = 0; i < BLK_MQ_MAX_DRIVES; i++) {
		if (atomic_load(&mq->sd[i].state) == SD_OPEN)
			add_blk_counts(out, &mq->sd[i].blk);
		if (mq->home[i].attached)
			add_blk_counts(out, mq->home[i].env.blk);
	}
	out->doorbells = atomic_load(&mq->doorbells);
	out->kicks_in = atomic_load(&mq->kicks_in);
	out->queues = served__queues(mq);
	out->handoffs = atomic_load(&mq->handoffs);
	out->fallbacks = atomic_load(&mq->fallbacks);
	out->flushes_out = atomic_load(&mq->flushes_out);
}
