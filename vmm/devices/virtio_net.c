/* virtio-net: config space, the header, moving frames between the rings
 * and the backend, save/load. */
#include "vmm/devices/virtio_net.h"

#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"

static struct virtio_net *net_of(struct virtio_dev *vdev)
{
	return (struct virtio_net *)vdev;
}

void virtio_net__hdr_decode(const uint8_t b[VIRTIO_NET_HDR_SIZE],
			    struct virtio_net_hdr *h)
{
	h->flags = b[0];
	h->gso_type = b[1];
	h->hdr_len = get_le16(b + 2);
	h->gso_size = get_le16(b + 4);
	h->csum_start = get_le16(b + 6);
	h->csum_offset = get_le16(b + 8);
	h->num_buffers = get_le16(b + 10);
}

void virtio_net__hdr_encode(const struct virtio_net_hdr *h,
			    uint8_t b[VIRTIO_NET_HDR_SIZE])
{
	b[0] = h->flags;
	b[1] = h->gso_type;
	put_le16(b + 2, h->hdr_len);
	put_le16(b + 4, h->gso_size);
	put_le16(b + 6, h->csum_start);
	put_le16(b + 8, h->csum_offset);
	put_le16(b + 10, h->num_buffers);
}

const char *virtio_net__tx_check(const struct virtio_net_hdr *h,
				 uint64_t features, size_t frame_len)
{
	if (frame_len < VIRTIO_NET_ETH_MIN)
		return "frame shorter than an Ethernet header";
	if (frame_len > VIRTIO_NET_FRAME_MAX)
		return "frame longer than 65535 bytes";
	/* Partial checksums need VIRTIO_NET_F_CSUM, segmentation the
	 * HOST_TSO/UFO bits: none is offered, so none may be asked for. */
	if ((h->flags & VIRTIO_NET_HDR_F_NEEDS_CSUM) &&
	    !(features >> VIRTIO_NET_F_CSUM & 1))
		return "checksum offload asked for but not negotiated";
	if (h->flags & ~VIRTIO_NET_HDR_F_NEEDS_CSUM)
		return "unknown header flags";
	if (h->gso_type != VIRTIO_NET_HDR_GSO_NONE)
		return "segmentation offload asked for but not negotiated";
	return NULL;
}

static void count(uint64_t *c, uint64_t n)
{
	__atomic_fetch_add(c, n, __ATOMIC_RELAXED);
}

static void net_queue_notify(struct virtio_dev *vdev, unsigned queue)
{
	struct virtio_net *net = net_of(vdev);

	if (net->port.kick)
		net->port.kick(net->port.ctx);
}

static void net_config_read(struct virtio_dev *vdev, uint32_t offset,
			    uint8_t *data, uint32_t len)
{
	struct virtio_net *net = net_of(vdev);

	if (offset >= VIRTIO_NET_CONFIG_SIZE)
		return;
	if (len > VIRTIO_NET_CONFIG_SIZE - offset)
		len = VIRTIO_NET_CONFIG_SIZE - offset;
	memcpy(data, net->config + offset, len);
}

static const struct virtio_dev_ops net_ops = {
	.queue_notify = net_queue_notify,
	.config_read = net_config_read,
	/* The MAC is read-only in 1.x (changing it needs the control
	 * queue, not offered): config writes are ignored. */
};

static void build_config(struct virtio_net *net)
{
	memcpy(net->config, net->s.mac, 6);
	put_le16(net->config + 6, net->s.status);
	put_le16(net->config + 8, 1);
}

int virtio_net__init(struct virtio_net *net, const char *name,
		     const uint8_t mac[6], struct virtio_mem mem, char *err,
		     size_t errlen)
{
	uint64_t features = 1ull << VIRTIO_NET_F_MAC |
			    1ull << VIRTIO_NET_F_STATUS;

	memset(net, 0, sizeof(*net));
	snprintf(net->name, sizeof(net->name), "%s",
		 name ? name : "virtio-net");
	snprintf(net->state_name, sizeof(net->state_name), "%s-net", net->name);
	if (virtio_dev__init(&net->vdev, net->name, &net_ops, features, 2,
			     VIRTIO_NET_QUEUE_SIZE, mem)) {
		snprintf(err, errlen, "%s: bad queue parameters", net->name);
		return -1;
	}
	net->vdev.device_id = VIRTIO_ID_NET;
	net->vdev.config_len = VIRTIO_NET_CONFIG_SIZE;
	memcpy(net->s.mac, mac, 6);
	net->s.status = VIRTIO_NET_S_LINK_UP;
	build_config(net);
	return 0;
}

void virtio_net__destroy(struct virtio_net *net)
{
	virtio_dev__destroy(&net->vdev);
}

struct virtio_dev *virtio_net__dev(struct virtio_net *net)
{
	return &net->vdev;
}

void virtio_net__set_port(struct virtio_net *net,
			  const struct virtio_net_port *port)
{
	net->port = *port;
}

/* Copies len bytes of src into the buffers, from offset skip. */
static void iov_put(const struct iovec *iov, unsigned n, size_t skip,
		    const uint8_t *src, size_t len)
{
	size_t done = 0, k;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy((uint8_t *)iov[i].iov_base + skip, src + done, k);
		done += k;
		skip = 0;
	}
}

/* Copies len bytes out of the buffers, from offset skip. */
static void iov_get(const struct iovec *iov, unsigned n, size_t skip,
		    uint8_t *dst, size_t len)
{
	size_t done = 0, k;

	for (unsigned i = 0; i < n && done < len; i++) {
		if (skip >= iov[i].iov_len) {
			skip -= iov[i].iov_len;
			continue;
		}
		k = iov[i].iov_len - skip;
		if (k > len - done)
			k = len - done;
		memcpy(dst + done, (const uint8_t *)iov[i].iov_base + skip, k);
		done += k;
		skip = 0;
	}
	/* The copy is ours: never re-read what the guest may rewrite. */
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
}

int virtio_net__receive(struct virtio_net *net, const uint8_t *frame,
			size_t len)
{
	struct iovec iov[VIRTIO_NET_MAX_SEGS];
	struct virtq_chain c = { .iov = iov, .max = VIRTIO_NET_MAX_SEGS };
	struct virtio_net_hdr h = { .num_buffers = 1 };
	uint8_t hb[VIRTIO_NET_HDR_SIZE];

	if (len < VIRTIO_NET_ETH_MIN || len > VIRTIO_NET_FRAME_MAX) {
		count(&net->stats.rx_dropped, 1);
		return -1;
	}
	if (virtio_dev__pop(&net->vdev, VIRTIO_NET_RXQ, &c) <= 0)
		return 0;
	if (c.nr_read || c.write_len < VIRTIO_NET_HDR_SIZE) {
		virtio_dev__fail(&net->vdev, VIRTIO_NET_RXQ, "receive buffer "
				 "device-readable or without room for the "
				 "header");
		virtio_dev__push(&net->vdev, VIRTIO_NET_RXQ, c.head, 0);
		count(&net->stats.rx_dropped, 1);
		return -1;
	}
	if (c.write_len - VIRTIO_NET_HDR_SIZE < len) {
		/* Too small for this frame (a driver may post small buffers
		 * legally; it then loses big frames): give it back empty. */
		virtio_dev__push(&net->vdev, VIRTIO_NET_RXQ, c.head, 0);
		count(&net->stats.rx_dropped, 1);
		return -1;
	}
	virtio_net__hdr_encode(&h, hb);
	iov_put(c.iov, c.nr_write, 0, hb, sizeof(hb));
	iov_put(c.iov, c.nr_write, VIRTIO_NET_HDR_SIZE, frame, len);
	virtio_dev__push(&net->vdev, VIRTIO_NET_RXQ, c.head,
			 (uint32_t)(VIRTIO_NET_HDR_SIZE + len));
	count(&net->stats.rx_frames, 1);
	count(&net->stats.rx_bytes, len);
	return 1;
}

ssize_t virtio_net__transmit(struct virtio_net *net, uint8_t *buf,
			     size_t cap)
{
	struct iovec iov[VIRTIO_NET_MAX_SEGS];
	struct virtq_chain c = { .iov = iov, .max = VIRTIO_NET_MAX_SEGS };
	uint8_t hb[VIRTIO_NET_HDR_SIZE];
	struct virtio_net_hdr h;
	uint64_t frame_len;
	const char *why;

	if (virtio_dev__pop(&net->vdev, VIRTIO_NET_TXQ, &c) <= 0)
		return 0;
	if (c.nr_write || c.read_len < VIRTIO_NET_HDR_SIZE) {
		virtio_dev__fail(&net->vdev, VIRTIO_NET_TXQ, "transmit chain "
				 "device-writable or shorter than the header");
		virtio_dev__push(&net->vdev, VIRTIO_NET_TXQ, c.head, 0);
		count(&net->stats.tx_dropped, 1);
		return -1;
	}
	frame_len = c.read_len - VIRTIO_NET_HDR_SIZE;
	iov_get(c.iov, c.nr_read, 0, hb, sizeof(hb));
	virtio_net__hdr_decode(hb, &h);
	why = virtio_net__tx_check(&h, __atomic_load_n(
					   &net->vdev.s.driver_features,
					   __ATOMIC_RELAXED), frame_len);
	if (!why && frame_len > cap)
		why = "frame longer than the backend takes";
	if (why) {
		virtio_dev__push(&net->vdev, VIRTIO_NET_TXQ, c.head, 0);
		count(&net->stats.tx_dropped, 1);
		return -1;
	}
	iov_get(c.iov, c.nr_read, VIRTIO_NET_HDR_SIZE, buf, frame_len);
	virtio_dev__push(&net->vdev, VIRTIO_NET_TXQ, c.head, 0);
	count(&net->stats.tx_frames, 1);
	count(&net->stats.tx_bytes, frame_len);
	return (ssize_t)frame_len;
}

static uint64_t get(const uint64_t *c)
{
	return __atomic_load_n(c, __ATOMIC_RELAXED);
}

void virtio_net__get_stats(struct virtio_net *net,
			   struct virtio_net_stats *out)
{
	out->rx_frames = get(&net->stats.rx_frames);
	out->rx_bytes = get(&net->stats.rx_bytes);
	out->rx_dropped = get(&net->stats.rx_dropped);
	out->tx_frames = get(&net->stats.tx_frames);
	out->tx_bytes = get(&net->stats.tx_bytes);
	out->tx_dropped = get(&net->stats.tx_dropped);
}

int virtio_net__save(struct virtio_net *net, struct state_writer *w,
		     char *err, size_t errlen)
{
	if (virtio_dev__save(&net->vdev, w, net->name, err, errlen) < 0)
		return -1;
	if (state_writer__add(w, net->state_name, VIRTIO_NET_STATE_VERSION,
			      &net->s, sizeof(net->s)) < 0) {
		snprintf(err, errlen, "saving %s: out of memory",
			 net->state_name);
		return -1;
	}
	return 0;
}

int virtio_net__load(struct virtio_net *net, struct state_reader *r,
		     char *err, size_t errlen)
{
	struct virtio_net_state st;

	if (state_reader__get(r, net->state_name, VIRTIO_NET_STATE_VERSION, &st,
			      sizeof(st), err, errlen) < 0)
		return -1;
	if ((st.mac[0] & 1) || (st.status & ~VIRTIO_NET_S_LINK_UP)) {
		snprintf(err, errlen, "%s: saved MAC or status is invalid",
			 net->state_name);
		return -1;
	}
	if (virtio_dev__load(&net->vdev, r, net->name, err, errlen) < 0)
		return -1;
	/* The guest read its MAC when it probed: it keeps that one. */
	net->s = st;
	build_config(net);
	return 0;
}
