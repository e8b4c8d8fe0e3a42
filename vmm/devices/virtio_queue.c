/* Split virtqueue rings: mapping, taking available chains, returning used
 * ones, event-index notification suppression, pause and drain. */
#include "vmm/devices/virtio_queue.h"

#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"

static void *guest_map(void *ctx, uint64_t gpa, uint64_t len)
{
	return guest_mem__ptr(ctx, gpa, len);
}

struct virtio_mem virtio_mem__guest(const struct guest_mem *gm)
{
	return (struct virtio_mem){ guest_map, (void *)gm };
}

void virtq__init(struct virtq *vq, unsigned index, struct virtio_mem mem)
{
	memset(vq, 0, sizeof(*vq));
	pthread_mutex_init(&vq->lock, NULL);
	pthread_cond_init(&vq->idle, NULL);
	vq->mem = mem;
	vq->index = index;
	vq->s.msix_vector = VIRTIO_NO_VECTOR;
}

void virtq__destroy(struct virtq *vq)
{
	pthread_cond_destroy(&vq->idle);
	pthread_mutex_destroy(&vq->lock);
}

void virtq__reset(struct virtq *vq)
{
	pthread_mutex_lock(&vq->lock);
	memset(&vq->s, 0, sizeof(vq->s));
	vq->s.msix_vector = VIRTIO_NO_VECTOR;
	vq->desc = vq->avail = vq->used = NULL;
	vq->live = false;
	vq->paused = false;
	memset(vq->inflight_map, 0, sizeof(vq->inflight_map));
	pthread_mutex_unlock(&vq->lock);
}

/* Ring fields the guest writes concurrently: one load each, acquire so
 * the ring entries and descriptors it published are read after it. */
static uint16_t load16(const uint8_t *p)
{
	return __atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE);
}

static void store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, v, __ATOMIC_RELEASE);
}

int virtq__start(struct virtq *vq, uint16_t max_size, char *err,
		 size_t errlen)
{
	struct virtq_state *s = &vq->s;
	uint16_t n = s->size;
	int r = -1;

	pthread_mutex_lock(&vq->lock);
	if (!n || n > max_size || (n & (n - 1))) {
		snprintf(err, errlen, "queue size %u is not a power of two "
			 "up to %u", n, max_size);
	} else if ((s->desc & 15) || (s->avail & 1) || (s->used & 3)) {
		snprintf(err, errlen, "misaligned rings (desc 0x%llx, driver "
			 "0x%llx, device 0x%llx)", (unsigned long long)s->desc,
			 (unsigned long long)s->avail,
			 (unsigned long long)s->used);
	} else {
		vq->desc = vq->mem.map(vq->mem.ctx, s->desc,
				       (uint64_t)n * VIRTQ_DESC_SIZE);
		vq->avail = vq->mem.map(vq->mem.ctx, s->avail, 6 + 2ull * n);
		vq->used = vq->mem.map(vq->mem.ctx, s->used, 6 + 8ull * n);
		/* The atomics need naturally aligned host addresses too. */
		if (!vq->desc || !vq->avail || !vq->used ||
		    ((uintptr_t)vq->avail & 1) || ((uintptr_t)vq->used & 3))
			snprintf(err, errlen, "rings outside guest RAM (desc "
				 "0x%llx, driver 0x%llx, device 0x%llx)",
				 (unsigned long long)s->desc,
				 (unsigned long long)s->avail,
				 (unsigned long long)s->used);
		else
			r = 0;
	}
	if (r) {
		vq->desc = vq->avail = vq->used = NULL;
		s->broken = 1;
	}
	vq->live = !r;
	pthread_mutex_unlock(&vq->lock);
	return r;
}

static bool in_flight(const struct virtq *vq, uint16_t head)
{
	return vq->inflight_map[head / 64] >> (head % 64) & 1;
}

static int pop_locked(struct virtq *vq, struct virtq_chain *c, char *err,
		      size_t errlen)
{
	struct virtq_state *s = &vq->s;
	uint16_t avail_idx, head;

	if (!vq->live || vq->paused || s->broken)
		return 0;
	avail_idx = load16(vq->avail + 2);
	if (avail_idx == s->last_avail) {
		if (!s->event_idx)
			return 0;
		/* Ask for a kick past what we consumed, then look again: a
		 * buffer added before the driver could see avail_event
		 * would otherwise wait for a kick that never comes.  The
		 * full fence orders our store before the second load. */
		store16(vq->used + 4 + 8 * s->size, s->last_avail);
		__atomic_thread_fence(__ATOMIC_SEQ_CST);
		avail_idx = load16(vq->avail + 2);
		if (avail_idx == s->last_avail)
			return 0;
	}
	if ((uint16_t)(avail_idx - s->last_avail) > s->size) {
		snprintf(err, errlen, "available index moved from %u to %u "
			 "(size %u)", s->last_avail, avail_idx, s->size);
		return -1;
	}
	head = load16(vq->avail + 4 + 2 * (s->last_avail % s->size));
	if (head < s->size && in_flight(vq, head)) {
		/* A driver reuses a head only after it came back used: this
		 * also bounds what a guest can keep in flight. */
		snprintf(err, errlen, "head %u made available while in flight",
			 head);
		return -1;
	}
	if (virtq__walk_chain(vq->desc, s->size, s->indirect, vq->mem, head, c,
			      err, errlen))
		return -1;
	vq->inflight_map[head / 64] |= 1ull << (head % 64);
	vq->inflight++;
	s->last_avail++;
	return 1;
}

int virtq__pop(struct virtq *vq, struct virtq_chain *c, char *err,
	       size_t errlen)
{
	int r;

	pthread_mutex_lock(&vq->lock);
	r = pop_locked(vq, c, err, errlen);
	if (r < 0)
		vq->s.broken = 1;
	pthread_mutex_unlock(&vq->lock);
	return r;
}

/* Called after used->idx was published. */
static bool should_notify(struct virtq *vq)
{
	struct virtq_state *s = &vq->s;
	uint16_t event, old = s->signalled_used;
	bool valid = s->signalled_valid;

	/* Our used->idx store must be visible before we read the driver's
	 * suppression fields, or both sides may decide to wait. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	if (!s->event_idx)
		return !(load16(vq->avail) & VIRTQ_AVAIL_F_NO_INTERRUPT);
	event = load16(vq->avail + 4 + 2 * s->size);
	/* Nothing signalled since the start: judge this step alone. */
	if (!valid)
		old = (uint16_t)(s->used_idx - 1);
	if (!virtq__need_event(event, s->used_idx, old))
		return false;
	s->signalled_used = s->used_idx;
	s->signalled_valid = 1;
	return true;
}

bool virtq__push(struct virtq *vq, uint16_t head, uint32_t len)
{
	struct virtq_state *s = &vq->s;
	bool notify = false;
	uint8_t *elem;

	pthread_mutex_lock(&vq->lock);
	if (head < VIRTQ_MAX_SIZE && in_flight(vq, head)) {
		vq->inflight_map[head / 64] &= ~(1ull << (head % 64));
		if (--vq->inflight == 0)
			pthread_cond_broadcast(&vq->idle);
	}
	if (vq->used) {
		elem = vq->used + 4 + 8 * (s->used_idx % s->size);
		put_le32(elem, head);
		put_le32(elem + 4, len);
		s->used_idx++;
		/* Release: the element is visible before the index that
		 * hands it to the driver. */
		store16(vq->used + 2, s->used_idx);
		notify = should_notify(vq);
		if (notify && vq->paused) {
			s->irq_pending = 1;
			notify = false;
		}
	}
	pthread_mutex_unlock(&vq->lock);
	return notify;
}

void virtq__drain(struct virtq *vq)
{
	pthread_mutex_lock(&vq->lock);
	while (vq->inflight)
		pthread_cond_wait(&vq->idle, &vq->lock);
	pthread_mutex_unlock(&vq->lock);
}

void virtq__pause(struct virtq *vq)
{
	pthread_mutex_lock(&vq->lock);
	vq->paused = true;
	while (vq->inflight)
		pthread_cond_wait(&vq->idle, &vq->lock);
	pthread_mutex_unlock(&vq->lock);
}

bool virtq__resume(struct virtq *vq)
{
	bool pending;

	pthread_mutex_lock(&vq->lock);
	vq->paused = false;
	pending = vq->s.irq_pending && vq->live;
	vq->s.irq_pending = 0;
	pthread_mutex_unlock(&vq->lock);
	return pending;
}
