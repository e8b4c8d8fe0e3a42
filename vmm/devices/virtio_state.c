/* Pausing a virtio device and saving/restoring its state. */
#include "vmm/devices/virtio.h"

#include <stdio.h>
#include <string.h>

void virtio_dev__pause(struct virtio_dev *vdev)
{
	unsigned i;

	pthread_mutex_lock(&vdev->lock);
	vdev->paused = true;
	for (i = 0; i < vdev->s.num_queues; i++)
		virtq__pause(&vdev->vq[i]);
	pthread_mutex_unlock(&vdev->lock);
}

void virtio_dev__resume(struct virtio_dev *vdev)
{
	bool due[VIRTIO_MAX_QUEUES];
	unsigned i, n;

	pthread_mutex_lock(&vdev->lock);
	vdev->paused = false;
	n = vdev->s.num_queues;
	for (i = 0; i < n; i++)
		due[i] = virtq__resume(&vdev->vq[i]);
	pthread_mutex_unlock(&vdev->lock);
	for (i = 0; i < n; i++) {
		if (due[i]) {
			__atomic_fetch_or(&vdev->s.isr, VIRTIO_ISR_QUEUE,
					  __ATOMIC_RELEASE);
			if (vdev->tr.interrupt)
				vdev->tr.interrupt(vdev->tr.ctx, i);
		}
	}
	/* Kicks that came while paused were not served: serve now. */
	for (i = 0; i < n; i++)
		virtio_dev__notify(vdev, i);
}

void virtio_dev__get_state(struct virtio_dev *vdev,
			   struct virtio_dev_state *out)
{
	unsigned i;

	pthread_mutex_lock(&vdev->lock);
	*out = vdev->s;
	out->status = __atomic_load_n(&vdev->s.status, __ATOMIC_ACQUIRE);
	out->isr = __atomic_load_n(&vdev->s.isr, __ATOMIC_ACQUIRE);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		pthread_mutex_lock(&vdev->vq[i].lock);
		out->q[i] = vdev->vq[i].s;
		pthread_mutex_unlock(&vdev->vq[i].lock);
	}
	pthread_mutex_unlock(&vdev->lock);
}

static bool busy(struct virtio_dev *vdev)
{
	unsigned i, n = 0;

	for (i = 0; i < vdev->s.num_queues; i++) {
		pthread_mutex_lock(&vdev->vq[i].lock);
		n += vdev->vq[i].inflight;
		pthread_mutex_unlock(&vdev->vq[i].lock);
	}
	return n != 0;
}

int virtio_dev__save(struct virtio_dev *vdev, struct state_writer *w,
		     const char *name, char *err, size_t errlen)
{
	struct virtio_dev_state st;

	if (!vdev->paused || busy(vdev)) {
		snprintf(err, errlen, "saving %s: the device is not paused",
			 name);
		return -1;
	}
	virtio_dev__get_state(vdev, &st);
	if (state_writer__add(w, name, VIRTIO_STATE_VERSION, &st,
			      sizeof(st)) < 0) {
		snprintf(err, errlen, "saving %s: out of memory", name);
		return -1;
	}
	return 0;
}

int virtio_dev__set_state(struct virtio_dev *vdev,
			  const struct virtio_dev_state *in, char *err,
			  size_t errlen)
{
	bool tell = false, live;
	unsigned i;

	if (in->num_queues != vdev->s.num_queues ||
	    in->device_features != vdev->s.device_features) {
		snprintf(err, errlen, "%s: the saved device has %u queues and "
			 "features 0x%llx, this one %u and 0x%llx", vdev->name,
			 in->num_queues,
			 (unsigned long long)in->device_features,
			 vdev->s.num_queues,
			 (unsigned long long)vdev->s.device_features);
		return -1;
	}
	pthread_mutex_lock(&vdev->lock);
	for (i = 0; i < vdev->s.num_queues; i++)
		virtq__drain(&vdev->vq[i]);
	vdev->s = *in;
	if (vdev->s.msix_config >= vdev->nr_vectors)
		vdev->s.msix_config = VIRTIO_NO_VECTOR;
	live = (in->status & VIRTIO_STATUS_DRIVER_OK) &&
	       (in->status & VIRTIO_STATUS_FEATURES_OK);
	for (i = 0; i < VIRTIO_MAX_QUEUES; i++) {
		struct virtq *vq = &vdev->vq[i];
		char qerr[VIRTQ_ERR_MAX];

		virtq__reset(vq);
		if (i >= in->num_queues)
			continue;
		pthread_mutex_lock(&vq->lock);
		vq->s = in->q[i];
		if (vq->s.msix_vector >= vdev->nr_vectors)
			vq->s.msix_vector = VIRTIO_NO_VECTOR;
		vq->paused = vdev->paused;
		pthread_mutex_unlock(&vq->lock);
		if (!live || !vq->s.enabled || vq->s.broken)
			continue;
		/* The saved rings are re-checked like a driver's. */
		if (virtq__start(vq, vdev->max_queue_size, qerr,
				 sizeof(qerr))) {
			fprintf(stderr, "krg-vmm: %s: queue %u after "
				"restore: %s; device needs reset\n",
				vdev->name, i, qerr);
			__atomic_fetch_or(&vdev->s.status,
					  VIRTIO_STATUS_NEEDS_RESET,
					  __ATOMIC_ACQ_REL);
			tell = true;
		}
	}
	pthread_mutex_unlock(&vdev->lock);
	if (tell) {
		__atomic_fetch_or(&vdev->s.isr, VIRTIO_ISR_CONFIG,
				  __ATOMIC_RELEASE);
		if (vdev->tr.config_interrupt)
			vdev->tr.config_interrupt(vdev->tr.ctx);
	}
	return 0;
}

int virtio_dev__load(struct virtio_dev *vdev, struct state_reader *r,
		     const char *name, char *err, size_t errlen)
{
	struct virtio_dev_state st;

	if (state_reader__get(r, name, VIRTIO_STATE_VERSION, &st, sizeof(st),
			      err, errlen) < 0)
		return -1;
	return virtio_dev__set_state(vdev, &st, err, errlen);
}
