/* libFuzzer target: arbitrary bytes as guest RAM and the two queues'
 * configuration of a virtio-net device, driven as its backend thread
 * drives it: every frame the guest transmits is taken (and must be a
 * sane length, copied into a buffer of exactly the promised size), frames
 * of several sizes are delivered into whatever receive buffers the rings
 * describe, then pause/resume and reset.  ASan/UBSan catch any access
 * outside the fake RAM (a heap block of exactly its size).
 *
 * Input layout (tests/fuzz/gen_vnet_corpus.py writes valid ones):
 *   [0]      bit 0 INDIRECT_DESC, 1 EVENT_IDX, 2 ask for CSUM (refused:
 *            FEATURES_OK must not stick), 3 reset between the phases
 *   [1] [2]  receive / transmit queue size: 1 << (v % 11)
 *   [3..8]   le16 receive descriptor table, driver and device areas
 *   [9..14]  the same for transmit
 *   [15]     receive frame length selector
 *   [16..]   guest RAM from offset 0 (the rest is zero) */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/devices/virtio_net.h"

#define RAM_SIZE 0x10000u
#define HDR 16

static uint8_t *ram;

static void *map(void *opaque, uint64_t gpa, uint64_t len)
{
	if (gpa >= RAM_SIZE || len > RAM_SIZE - gpa)
		return NULL;
	return ram + gpa;
}

static void reg(struct virtio_dev *v, enum virtio_common_reg r, uint32_t val)
{
	virtio_dev__common_write(v, r, val);
}

static void queue(struct virtio_dev *v, unsigned q, uint8_t size,
		  const uint8_t *offs)
{
	reg(v, VIRTIO_COMMON_Q_SELECT, q);
	reg(v, VIRTIO_COMMON_Q_SIZE, 1u << (size % 11));
	reg(v, VIRTIO_COMMON_Q_DESC_LO, get_le16(offs));
	reg(v, VIRTIO_COMMON_Q_DRIVER_LO, get_le16(offs + 2));
	reg(v, VIRTIO_COMMON_Q_DEVICE_LO, get_le16(offs + 4));
	reg(v, VIRTIO_COMMON_Q_ENABLE, 1);
}

static void bring_up(struct virtio_dev *v, const uint8_t *data)
{
	uint64_t f = 1ull << VIRTIO_F_VERSION_1 | 1ull << VIRTIO_NET_F_MAC;

	f |= (data[0] & 1 ? 1ull << VIRTIO_F_INDIRECT_DESC : 0) |
	     (data[0] & 2 ? 1ull << VIRTIO_F_EVENT_IDX : 0) |
	     (data[0] & 4 ? 1ull << VIRTIO_NET_F_CSUM : 0);
	reg(v, VIRTIO_COMMON_STATUS, VIRTIO_STATUS_ACKNOWLEDGE |
					     VIRTIO_STATUS_DRIVER);
	reg(v, VIRTIO_COMMON_GFSELECT, 0);
	reg(v, VIRTIO_COMMON_GF, (uint32_t)f);
	reg(v, VIRTIO_COMMON_GFSELECT, 1);
	reg(v, VIRTIO_COMMON_GF, (uint32_t)(f >> 32));
	reg(v, VIRTIO_COMMON_STATUS, 0x0B);
	if ((data[0] & 4) && (virtio_dev__common_read(v, VIRTIO_COMMON_STATUS) &
			      VIRTIO_STATUS_FEATURES_OK))
		abort(); /* CSUM is not offered */
	queue(v, VIRTIO_NET_RXQ, data[1], data + 3);
	queue(v, VIRTIO_NET_TXQ, data[2], data + 9);
	reg(v, VIRTIO_COMMON_STATUS, 0x0F);
}

static void traffic(struct virtio_net *net, uint8_t sel)
{
	static const size_t lens[] = { 14, 60, 1514, 9000, 65535 };
	uint8_t *frame = malloc(VIRTIO_NET_FRAME_MAX);
	unsigned n = 0;
	ssize_t r;

	if (!frame)
		abort();
	/* Bounded: each call consumes an available entry or returns 0,
	 * and the guest cannot add entries meanwhile. */
	while ((r = virtio_net__transmit(net, frame, VIRTIO_NET_FRAME_MAX)) &&
	       n++ < 4096)
		if (r > 0 &&
		    (r < VIRTIO_NET_ETH_MIN || r > VIRTIO_NET_FRAME_MAX))
			abort();
	memset(frame, sel, VIRTIO_NET_FRAME_MAX);
	for (unsigned i = 0; i < 64; i++) {
		size_t len = lens[(sel + i) % 5];

		if (virtio_net__receive(net, frame, len) == 0)
			break;
	}
	free(frame);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const uint8_t mac[6] = { 0x52, 0x54, 0, 0x12, 0x34, 0x56 };
	struct virtio_net net;
	struct virtio_dev *v;
	char err[128];

	if (size < HDR)
		return 0;
	ram = calloc(1, RAM_SIZE);
	if (!ram)
		abort();
	memcpy(ram, data + HDR, size - HDR < RAM_SIZE ? size - HDR : RAM_SIZE);
	if (virtio_net__init(&net, "fuzz-net", mac,
			     (struct virtio_mem){ map, NULL }, err, sizeof(err)))
		abort();
	v = virtio_net__dev(&net);
	bring_up(v, data);
	traffic(&net, data[15]);
	virtio_dev__pause(v);
	traffic(&net, data[15] + 1); /* paused: nothing moves */
	virtio_dev__resume(v);
	if (data[0] & 8) {
		reg(v, VIRTIO_COMMON_STATUS, 0);
		bring_up(v, data);
	}
	traffic(&net, data[15] + 2);
	reg(v, VIRTIO_COMMON_STATUS, 0);
	if (virtio_dev__common_read(v, VIRTIO_COMMON_STATUS) != 0)
		abort();
	virtio_net__destroy(&net);
	free(ram);
	return 0;
}
