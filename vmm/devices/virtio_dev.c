/* The device side of the virtio common configuration: feature
 * negotiation, the status machine (reset on 0), per-queue configuration,
 * and the broken-device path (DEVICE_NEEDS_RESET, virtio 1.x 2.1.2). */
#include "vmm/devices/virtio.h"

#include <stdio.h>
#include <string.h>

/* The status byte is also set by queue users (NEEDS_RESET) on other
 * threads, so it is only touched atomically. */
static uint8_t status_of(struct virtio_dev *vdev)
{
	return __atomic_load_n(&vdev->s.status, __ATOMIC_ACQUIRE);
}

static uint64_t driver_features(struct virtio_dev *vdev)
{
	return __atomic_load_n(&vdev->s.driver_features, __ATOMIC_RELAXED);
}

bool virtio_dev__has_feature(struct virtio_dev *vdev, unsigned bit)
{
	return bit < 64 && (driver_features(vdev) >> bit & 1);
}

static void raise_config(struct virtio_dev *vdev)
{
	__atomic_fetch_or(&vdev->s.isr, VIRTIO_ISR_CONFIG, __ATOMIC_RELEASE);
	if (vdev->tr.config_interrupt)
		vdev->tr.config_interrupt(vdev->tr.ctx);
}

static void raise_queue(struct virtio_dev *vdev, unsigned queue)
{
	__atomic_fetch_or(&vdev->s.isr, VIRTIO_ISR_QUEUE, __ATOMIC_RELEASE);
	if (vdev->tr.interrupt)
		vdev->tr.interrupt(vdev->tr.ctx, queue);
}

/* Marks the device broken; returns whether the driver is to be told (the
 * caller does it once no lock is held). */
static bool mark_broken(struct virtio_dev *vdev, unsigned queue,
			const char *reason)
{
	uint8_t old;

	fprintf(stderr, "krg-vmm: %s: queue %u: %s; device needs reset\n",
		vdev->name, queue, reason);
	old = __atomic_fetch_or(&vdev->s.status, VIRTIO_STATUS_NEEDS_RESET,
				__ATOMIC_ACQ_REL);
	return (old & VIRTIO_STATUS_DRIVER_OK) &&
	       !(old & VIRTIO_STATUS_NEEDS_RESET);
}

void virtio_dev__fail(struct virtio_dev *vdev, unsigned queue,
		      const char *reason)
{
	if (queue < vdev->s.num_queues) {
		struct virtq *vq = &vdev->vq[queue];

		pthread_mutex_lock(&vq->lock);
		vq->s.broken = 1;
		pthread_mutex_unlock(&vq->lock);
	}
	if (mark_broken(vdev, queue, reason))
		raise_config(vdev);
}

int virtio_dev__init(struct virtio_dev *vdev, const char *name,
		     const struct virtio_dev_ops *ops, uint64_t features,
		     unsigned num_queues, uint16_t max_queue_size,
		     struct virtio_mem mem)
{
	unsigned i;

	if (!num_queues || num_queues > VIRTIO_MAX_QUEUES || !max_queue_size ||
	    max_queue_size > VIRTQ_MAX_SIZE ||
	    (max_queue_size & (max_queue_size - 1)) || !mem.map)
		return -1;
	memset(vdev, 0, sizeof(*vdev));
	pthread_mutex_init(&vdev->lock, NULL);
	vdev->ops = ops;
	vdev->name = name;
	vdev->max_queue_size = max_queue_size;
	vdev->s.device_features = features | 1ull << VIRTIO_F_VERSION_1 |
				  1ull << VIRTIO_F_INDIRECT_DESC |
				  1ull << VIRTIO_F_EVENT_IDX;
	vdev->s.num_queues = (uint16_t)num_queues;
	vdev->s.msix_config = VIRTIO_NO_VECTOR;
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		virtq__init(&vdev->vq[i], i, mem);
		vdev->vq[i].s.size = i < num_queues ? max_queue_size : 0;
	}
	return 0;
}

void virtio_dev__destroy(struct virtio_dev *vdev)
{
	unsigned i;

	for (i = 0; i < VIRTIO_MAX_QUEUES; i++)
		virtq__destroy(&vdev->vq[i]);
	pthread_mutex_destroy(&vdev->lock);
}

void virtio_dev__set_transport(struct virtio_dev *vdev,
			       const struct virtio_transport *tr,
			       uint16_t nr_vectors)
{
	vdev->tr = *tr;
	vdev->nr_vectors = nr_vectors;
}

/* Starts queue q's rings with the negotiated ring features.  Returns
 * whether the driver must be told the device broke.  dev->lock held. */
static bool start_queue(struct virtio_dev *vdev, unsigned q)
{
	struct virtq *vq = &vdev->vq[q];
	char err[VIRTQ_ERR_MAX];

	pthread_mutex_lock(&vq->lock);
	vq->s.event_idx = virtio_dev__has_feature(vdev, VIRTIO_F_EVENT_IDX);
	vq->s.indirect = virtio_dev__has_feature(vdev, VIRTIO_F_INDIRECT_DESC);
	pthread_mutex_unlock(&vq->lock);
	if (!virtq__start(vq, vdev->max_queue_size, err, sizeof(err)))
		return false;
	return mark_broken(vdev, q, err);
}

static bool live_status(uint8_t st)
{
	return (st & VIRTIO_STATUS_DRIVER_OK) &&
	       (st & VIRTIO_STATUS_FEATURES_OK);
}

/* dev->lock held.  Waits for requests in flight: their completions need
 * only their queue's lock, never dev->lock. */
static void reset(struct virtio_dev *vdev)
{
	unsigned i;

	for (i = 0; i < vdev->s.num_queues; i++)
		virtq__pause(&vdev->vq[i]);
	if (vdev->ops && vdev->ops->reset)
		vdev->ops->reset(vdev);
	for (i = 0; i < vdev->s.num_queues; i++) {
		struct virtq *vq = &vdev->vq[i];

		virtq__reset(vq);
		pthread_mutex_lock(&vq->lock);
		vq->s.size = vdev->max_queue_size;
		vq->paused = vdev->paused;
		pthread_mutex_unlock(&vq->lock);
	}
	__atomic_store_n(&vdev->s.driver_features, 0, __ATOMIC_RELAXED);
	vdev->s.device_feature_select = 0;
	vdev->s.driver_feature_select = 0;
	vdev->s.queue_select = 0;
	vdev->s.msix_config = VIRTIO_NO_VECTOR;
	__atomic_store_n(&vdev->s.isr, 0, __ATOMIC_RELEASE);
	__atomic_store_n(&vdev->s.status, 0, __ATOMIC_RELEASE);
}

static bool features_acceptable(struct virtio_dev *vdev, uint64_t f)
{
	if (f & ~vdev->s.device_features)
		return false;
	/* A modern-only device: no legacy driver may run it. */
	if (!(f >> VIRTIO_F_VERSION_1 & 1))
		return false;
	return !vdev->ops || !vdev->ops->features_ok ||
	       vdev->ops->features_ok(vdev, f);
}

/* dev->lock held.  Returns whether the driver is to be told the device
 * broke. */
static bool write_status(struct virtio_dev *vdev, uint8_t v)
{
	uint8_t old = status_of(vdev), set;
	bool tell = false;
	unsigned i;

	if (!v) {
		reset(vdev);
		return false;
	}
	/* Drivers never clear bits short of a reset, and NEEDS_RESET is
	 * the device's: keep the bits sticky, add what is new. */
	set = v & (uint8_t)~old & (uint8_t)~VIRTIO_STATUS_NEEDS_RESET;
	if ((set & VIRTIO_STATUS_FEATURES_OK) &&
	    !features_acceptable(vdev, driver_features(vdev)))
		set &= (uint8_t)~VIRTIO_STATUS_FEATURES_OK;
	if ((set & VIRTIO_STATUS_DRIVER_OK) &&
	    !((old | set) & VIRTIO_STATUS_FEATURES_OK)) {
		tell = mark_broken(vdev, 0, "DRIVER_OK without FEATURES_OK");
		set &= (uint8_t)~VIRTIO_STATUS_DRIVER_OK;
	}
	__atomic_fetch_or(&vdev->s.status, set, __ATOMIC_ACQ_REL);
	if ((set & VIRTIO_STATUS_DRIVER_OK) && live_status(old | set)) {
		for (i = 0; i < vdev->s.num_queues; i++)
			if (vdev->vq[i].s.enabled)
				tell |= start_queue(vdev, i);
	}
	return tell;
}

static struct virtq *selected(struct virtio_dev *vdev)
{
	if (vdev->s.queue_select >= vdev->s.num_queues)
		return NULL;
	return &vdev->vq[vdev->s.queue_select];
}

static uint32_t read_queue_reg(struct virtio_dev *vdev, struct virtq *vq,
			       enum virtio_common_reg reg)
{
	struct virtq_state *q = &vq->s;
	uint32_t v = 0;

	pthread_mutex_lock(&vq->lock);
	switch (reg) {
	case VIRTIO_COMMON_Q_SIZE: v = q->size; break;
	case VIRTIO_COMMON_Q_MSIX_VECTOR: v = q->msix_vector; break;
	case VIRTIO_COMMON_Q_ENABLE: v = q->enabled; break;
	case VIRTIO_COMMON_Q_NOTIFY_OFF: v = vq->index; break;
	case VIRTIO_COMMON_Q_DESC_LO: v = (uint32_t)q->desc; break;
	case VIRTIO_COMMON_Q_DESC_HI: v = (uint32_t)(q->desc >> 32); break;
	case VIRTIO_COMMON_Q_DRIVER_LO: v = (uint32_t)q->avail; break;
	case VIRTIO_COMMON_Q_DRIVER_HI: v = (uint32_t)(q->avail >> 32); break;
	case VIRTIO_COMMON_Q_DEVICE_LO: v = (uint32_t)q->used; break;
	case VIRTIO_COMMON_Q_DEVICE_HI: v = (uint32_t)(q->used >> 32); break;
	default: break;
	}
	pthread_mutex_unlock(&vq->lock);
	return v;
}

uint32_t virtio_dev__common_read(struct virtio_dev *vdev,
				 enum virtio_common_reg reg)
{
	struct virtio_dev_state *s = &vdev->s;
	struct virtq *vq;
	uint32_t v = 0;

	pthread_mutex_lock(&vdev->lock);
	switch (reg) {
	case VIRTIO_COMMON_DFSELECT: v = s->device_feature_select; break;
	case VIRTIO_COMMON_DF:
		if (s->device_feature_select < 2)
			v = (uint32_t)(s->device_features >>
				       (32 * s->device_feature_select));
		break;
	case VIRTIO_COMMON_GFSELECT: v = s->driver_feature_select; break;
	case VIRTIO_COMMON_GF:
		if (s->driver_feature_select < 2)
			v = (uint32_t)(driver_features(vdev) >>
				       (32 * s->driver_feature_select));
		break;
	case VIRTIO_COMMON_MSIX_CONFIG: v = s->msix_config; break;
	case VIRTIO_COMMON_NUM_QUEUES: v = s->num_queues; break;
	case VIRTIO_COMMON_STATUS: v = status_of(vdev); break;
	case VIRTIO_COMMON_CFG_GENERATION:
		v = __atomic_load_n(&s->config_generation, __ATOMIC_ACQUIRE);
		break;
	case VIRTIO_COMMON_Q_SELECT: v = s->queue_select; break;
	default:
		vq = selected(vdev);
		/* An absent queue reads as size 0: "not available". */
		if (vq)
			v = read_queue_reg(vdev, vq, reg);
		break;
	}
	pthread_mutex_unlock(&vdev->lock);
	return v;
}

static uint16_t valid_vector(struct virtio_dev *vdev, uint32_t v)
{
	return v < vdev->nr_vectors ? (uint16_t)v : VIRTIO_NO_VECTOR;
}

static void set_lo(uint64_t *f, uint32_t v)
{
	*f = (*f & ~0xFFFFFFFFull) | v;
}

static void set_hi(uint64_t *f, uint32_t v)
{
	*f = (*f & 0xFFFFFFFFull) | (uint64_t)v << 32;
}

/* dev->lock held.  Returns whether the driver is to be told the device
 * broke. */
static bool write_queue_reg(struct virtio_dev *vdev, struct virtq *vq,
			    enum virtio_common_reg reg, uint32_t v)
{
	struct virtq_state *q = &vq->s;
	bool start = false;

	pthread_mutex_lock(&vq->lock);
	if (reg == VIRTIO_COMMON_Q_MSIX_VECTOR) {
		__atomic_store_n(&q->msix_vector, valid_vector(vdev, v),
				 __ATOMIC_RELAXED);
	} else if (q->enabled) {
		/* The layout is fixed once enabled (and queue_enable takes
		 * only 1): a driver cannot move live rings under us. */
	} else {
		switch (reg) {
		case VIRTIO_COMMON_Q_SIZE: q->size = (uint16_t)v; break;
		case VIRTIO_COMMON_Q_ENABLE:
			if (v == 1) {
				q->enabled = 1;
				start = live_status(status_of(vdev));
			}
			break;
		case VIRTIO_COMMON_Q_DESC_LO: set_lo(&q->desc, v); break;
		case VIRTIO_COMMON_Q_DESC_HI: set_hi(&q->desc, v); break;
		case VIRTIO_COMMON_Q_DRIVER_LO: set_lo(&q->avail, v); break;
		case VIRTIO_COMMON_Q_DRIVER_HI: set_hi(&q->avail, v); break;
		case VIRTIO_COMMON_Q_DEVICE_LO: set_lo(&q->used, v); break;
		case VIRTIO_COMMON_Q_DEVICE_HI: set_hi(&q->used, v); break;
		default: break;
		}
	}
	pthread_mutex_unlock(&vq->lock);
	return start && start_queue(vdev, vq->index);
}

void virtio_dev__common_write(struct virtio_dev *vdev,
			      enum virtio_common_reg reg, uint32_t val)
{
	struct virtio_dev_state *s = &vdev->s;
	uint64_t f;
	bool tell = false;
	struct virtq *vq;

	pthread_mutex_lock(&vdev->lock);
	switch (reg) {
	case VIRTIO_COMMON_DFSELECT: s->device_feature_select = val; break;
	case VIRTIO_COMMON_GFSELECT: s->driver_feature_select = val; break;
	case VIRTIO_COMMON_GF:
		/* Features are frozen once the device accepted them. */
		if (s->driver_feature_select >= 2 ||
		    (status_of(vdev) & VIRTIO_STATUS_FEATURES_OK))
			break;
		f = driver_features(vdev);
		if (s->driver_feature_select)
			set_hi(&f, val);
		else
			set_lo(&f, val);
		__atomic_store_n(&s->driver_features, f, __ATOMIC_RELAXED);
		break;
	case VIRTIO_COMMON_MSIX_CONFIG:
		s->msix_config = valid_vector(vdev, val);
		break;
	case VIRTIO_COMMON_STATUS:
		tell = write_status(vdev, (uint8_t)val);
		break;
	case VIRTIO_COMMON_Q_SELECT: s->queue_select = (uint16_t)val; break;
	case VIRTIO_COMMON_DF:
	case VIRTIO_COMMON_NUM_QUEUES:
	case VIRTIO_COMMON_CFG_GENERATION:
	case VIRTIO_COMMON_Q_NOTIFY_OFF:
		break; /* read-only */
	default:
		vq = selected(vdev);
		if (vq)
			tell = write_queue_reg(vdev, vq, reg, val);
		break;
	}
	pthread_mutex_unlock(&vdev->lock);
	if (tell)
		raise_config(vdev);
	if (vdev->ops && vdev->ops->common_written)
		vdev->ops->common_written(vdev, reg);
}

void virtio_dev__notify(struct virtio_dev *vdev, unsigned queue)
{
	if (queue < vdev->s.num_queues && vdev->ops && vdev->ops->queue_notify)
		vdev->ops->queue_notify(vdev, queue);
}

uint8_t virtio_dev__isr_read(struct virtio_dev *vdev)
{
	return __atomic_exchange_n(&vdev->s.isr, 0, __ATOMIC_ACQ_REL);
}

void virtio_dev__config_read(struct virtio_dev *vdev, uint32_t offset,
			     uint8_t *data, uint32_t len)
{
	memset(data, 0, len);
	if (vdev->ops && vdev->ops->config_read)
		vdev->ops->config_read(vdev, offset, data, len);
}

void virtio_dev__config_write(struct virtio_dev *vdev, uint32_t offset,
			      const uint8_t *data, uint32_t len)
{
	if (vdev->ops && vdev->ops->config_write)
		vdev->ops->config_write(vdev, offset, data, len);
}

void virtio_dev__config_changed(struct virtio_dev *vdev)
{
	__atomic_fetch_add(&vdev->s.config_generation, 1, __ATOMIC_ACQ_REL);
	if (status_of(vdev) & VIRTIO_STATUS_DRIVER_OK)
		raise_config(vdev);
}

uint16_t virtio_dev__queue_vector(struct virtio_dev *vdev, unsigned queue)
{
	if (queue >= vdev->s.num_queues)
		return VIRTIO_NO_VECTOR;
	return __atomic_load_n(&vdev->vq[queue].s.msix_vector,
			       __ATOMIC_RELAXED);
}

int virtio_dev__pop(struct virtio_dev *vdev, unsigned queue,
		    struct virtq_chain *c)
{
	char err[VIRTQ_ERR_MAX];
	int r;

	if (queue >= vdev->s.num_queues)
		return 0;
	r = virtq__pop(&vdev->vq[queue], c, err, sizeof(err));
	if (r >= 0)
		return r;
	if (mark_broken(vdev, queue, err))
		raise_config(vdev);
	return 0;
}

void virtio_dev__push(struct virtio_dev *vdev, unsigned queue, uint16_t head,
		      uint32_t len)
{
	/* virtq__push published used->idx (release) and fenced: the guest
	 * sees the element before our interrupt can reach it. */
	if (queue < vdev->s.num_queues &&
	    virtq__push(&vdev->vq[queue], head, len))
		raise_queue(vdev, queue);
}
