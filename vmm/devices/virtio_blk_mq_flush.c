/* Cross-node virtio-blk queue serving: flushes that must reach other
 * nodes' handles of an image (virtio_blk_mq.h, "Durability").
 *
 * A guest FLUSH on a queue served by node n becomes, besides n's own
 * flush, a FLUSH to node 0; node 0 flushes its handle and asks every
 * other node with the image open, then answers FLUSHED.  A FLUSH on a
 * queue node 0 serves asks every other node directly.  Each pending
 * request is a struct flush_wait: own counts flushes of this node's
 * handle (and the guard held while the requests go out), remote the
 * FLUSHED answers still missing; it completes when both reach 0. */
#include "vmm/devices/virtio_blk_mq_priv.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

/* flush_lock held. */
static void unlink_wait(struct blk_mq *mq, struct flush_wait *fw)
{
	for (struct flush_wait **p = &mq->flushes; *p; p = &(*p)->next)
		if (*p == fw) {
			*p = fw->next;
			break;
		}
	pthread_cond_broadcast(&mq->flush_idle);
}

static void answer(struct blk_mq *mq, unsigned node, uint8_t drive,
		   uint32_t id, bool failed)
{
	struct blk_mq_msg m;

	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_FLUSHED;
	m.drive = drive;
	m.seq = id;
	m.status = failed;
	mq__send(mq, node, &m);
}

/* One part of fw is done (own or remote).  Completes fw after the last. */
static void part_done(struct flush_wait *fw, bool own, bool failed)
{
	struct blk_mq *mq = fw->mq;
	struct block_req *req;
	bool last;

	pthread_mutex_lock(&mq->flush_lock);
	if (own)
		fw->own--;
	else if (fw->remote > 0)
		fw->remote--;
	fw->failed |= failed;
	last = fw->own == 0 && fw->remote == 0;
	if (last)
		unlink_wait(mq, fw);
	pthread_mutex_unlock(&mq->flush_lock);
	if (!last)
		return;
	req = fw->req;
	if (req)
		req->done(req, fw->failed ? -EIO : 0);
	else if (fw->requester != mq->cfg.self &&
		 !atomic_load(&mq->aborted))
		answer(mq, fw->requester, fw->drive, fw->requester_id,
		       fw->failed);
	free(fw);
}

static struct flush_wait *new_wait(struct blk_mq *mq, uint8_t drive,
				   struct block_req *req)
{
	struct flush_wait *fw = calloc(1, sizeof(*fw));

	if (!fw)
		return NULL;
	fw->mq = mq;
	fw->drive = drive;
	fw->req = req;
	fw->requester = mq->cfg.self;
	fw->own = 1;	/* the guard: nothing completes while we send */
	pthread_mutex_lock(&mq->flush_lock);
	fw->id = ++mq->next_flush_id;
	fw->next = mq->flushes;
	mq->flushes = fw;
	pthread_mutex_unlock(&mq->flush_lock);
	return fw;
}

/* Sends FLUSH for fw to node, counting the answer to wait for. */
static void ask(struct flush_wait *fw, unsigned node)
{
	struct blk_mq *mq = fw->mq;
	struct blk_mq_msg m;

	memset(&m, 0, sizeof(m));
	m.type = BLK_MQ_T_FLUSH;
	m.drive = fw->drive;
	m.seq = fw->id;
	pthread_mutex_lock(&mq->flush_lock);
	fw->remote++;
	pthread_mutex_unlock(&mq->flush_lock);
	atomic_fetch_add(&mq->flushes_out, 1);
	if (mq__send(mq, node, &m))
		part_done(fw, false, true);
}

int flush__home_remote(void *ctx, struct block_req *req)
{
	struct home *h = ctx;
	struct blk_mq *mq = h->mq;
	struct flush_wait *fw;

	if (atomic_load(&mq->aborted))
		return -ECANCELED;
	fw = new_wait(mq, (uint8_t)h->drive, req);
	if (!fw)
		return -ENOMEM;
	for (unsigned n = 1; n < mq->cfg.nr_nodes; n++)
		if (__atomic_load_n(&h->opened[n], __ATOMIC_RELAXED))
			ask(fw, n);
	part_done(fw, true, false);
	return 0;
}

int flush__served_remote(void *ctx, struct block_req *req)
{
	struct served *sd = ctx;
	struct blk_mq *mq = sd->mq;
	struct flush_wait *fw;

	if (atomic_load(&mq->aborted))
		return -ECANCELED;
	fw = new_wait(mq, (uint8_t)sd->drive, req);
	if (!fw)
		return -ENOMEM;
	ask(fw, 0);
	part_done(fw, true, false);
	return 0;
}

static void own_done(struct block_req *req, int result)
{
	part_done(req->opaque, true, result != 0);
}

/* A serving node's flush for node 0: answered when its handle is done. */
struct peer_flush {
	struct block_req req;
	struct blk_mq *mq;
	uint8_t drive;
	uint32_t id;
};

static void peer_done(struct block_req *req, int result)
{
	struct peer_flush *pf = req->opaque;

	if (!atomic_load(&pf->mq->aborted))
		answer(pf->mq, 0, pf->drive, pf->id, result != 0);
	free(pf);
}

static void serve_peer(struct blk_mq *mq, const struct blk_mq_msg *m)
{
	struct served *sd = &mq->sd[m->drive];
	struct peer_flush *pf;

	/* Nothing opened here, nothing written here. */
	if (atomic_load(&sd->state) != SD_OPEN) {
		answer(mq, 0, m->drive, m->seq, false);
		return;
	}
	pf = calloc(1, sizeof(*pf));
	if (!pf) {
		answer(mq, 0, m->drive, m->seq, true);
		return;
	}
	pf->mq = mq;
	pf->drive = m->drive;
	pf->id = m->seq;
	pf->req = (struct block_req){ .op = BLOCK_OP_FLUSH, .done = peer_done,
				      .opaque = pf };
	if (sd->b.be.submit(sd->b.be.dev, &pf->req)) {
		free(pf);
		answer(mq, 0, m->drive, m->seq, true);
	}
}

void flush__request(struct blk_mq *mq, unsigned sender,
		    const struct blk_mq_msg *m)
{
	struct home *h = &mq->home[m->drive];
	const struct virtio_blk_backend *be;
	struct flush_wait *fw;

	if (mq->cfg.self != 0) {
		serve_peer(mq, m);
		return;
	}
	fw = new_wait(mq, m->drive, NULL);
	if (!fw) {
		answer(mq, sender, m->drive, m->seq, true);
		return;
	}
	fw->requester = sender;
	fw->requester_id = m->seq;
	for (unsigned n = 1; n < mq->cfg.nr_nodes; n++)
		if (n != sender &&
		    __atomic_load_n(&h->opened[n], __ATOMIC_RELAXED))
			ask(fw, n);
	be = &h->env.blk->be;
	fw->own++;
	fw->own_req = (struct block_req){ .op = BLOCK_OP_FLUSH,
					  .done = own_done, .opaque = fw };
	if (be->submit(be->dev, &fw->own_req))
		part_done(fw, true, true);
	part_done(fw, true, false);
}

void flush__answer(struct blk_mq *mq, unsigned sender,
		   const struct blk_mq_msg *m)
{
	struct flush_wait *fw;

	pthread_mutex_lock(&mq->flush_lock);
	for (fw = mq->flushes; fw && fw->id != m->seq; fw = fw->next)
		;
	pthread_mutex_unlock(&mq->flush_lock);
	if (!fw) {
		mq__fatal(mq, "node %u: virtio-blk: FLUSHED %u answers no "
			  "flush", sender, m->seq);
		return;
	}
	part_done(fw, false, m->status != 0);
}

struct sync_flush {
	struct block_req req;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	bool done;
	int result;
};

static void sync_done(struct block_req *req, int result)
{
	struct sync_flush *s = req->opaque;

	pthread_mutex_lock(&s->lock);
	s->result = result;
	s->done = true;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
}

int flush__local_sync(struct served *sd)
{
	struct sync_flush s = { .req = { .op = BLOCK_OP_FLUSH,
					 .done = sync_done } };
	int r;

	s.req.opaque = &s;
	pthread_mutex_init(&s.lock, NULL);
	pthread_cond_init(&s.cond, NULL);
	r = sd->b.be.submit(sd->b.be.dev, &s.req);
	if (!r) {
		pthread_mutex_lock(&s.lock);
		while (!s.done)
			pthread_cond_wait(&s.cond, &s.lock);
		pthread_mutex_unlock(&s.lock);
		r = s.result;
	}
	pthread_cond_destroy(&s.cond);
	pthread_mutex_destroy(&s.lock);
	return r;
}

void flush__abort(struct blk_mq *mq)
{
	struct flush_wait *fw, *next, *done = NULL;

	pthread_mutex_lock(&mq->flush_lock);
	for (fw = mq->flushes; fw; fw = next) {
		next = fw->next;
		fw->remote = 0;
		fw->failed = true;
		if (fw->own)
			continue;	/* our own flush still runs */
		unlink_wait(mq, fw);
		fw->next = done;
		done = fw;
	}
	pthread_mutex_unlock(&mq->flush_lock);
	for (fw = done; fw; fw = next) {
		next = fw->next;
		if (fw->req)
			fw->req->done(fw->req, -ECANCELED);
		free(fw);
	}
}

void flush__wait_idle(struct blk_mq *mq)
{
	pthread_mutex_lock(&mq->flush_lock);
	while (mq->flushes)
		pthread_cond_wait(&mq->flush_idle, &mq->flush_lock);
	pthread_mutex_unlock(&mq->flush_lock);
}
