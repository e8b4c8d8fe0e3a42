/* virtio-net and virtio-rng against a fake guest RAM: config space,
 * feature negotiation, the header, frames both ways, the guest errors that
 * break the device, save/load; the entropy device's fills. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "tests/unit/virtio_fake.h"
#include "vmm/devices/virtio_net.h"
#include "vmm/devices/virtio_rng.h"

#define RAM_SIZE (1u << 20)
#define QSZ 64
#define RXQ_RING 0x1000ull
#define TXQ_RING 0x5000ull
#define BUFS 0x10000ull    /* 4 KiB per buffer */
#define CORE (1ull << VIRTIO_F_VERSION_1)

static struct fake_ram ram;
static struct virtio_net net;
static struct drv_q rxq, txq;
static int kicks, irqs[2], cfg_irqs;
static const uint8_t mac[6] = { 0x52, 0x54, 0x00, 0x12, 0x34, 0x99 };

static void t_kick(void *ctx)
{
	kicks++;
}

static void t_irq(void *ctx, unsigned q)
{
	irqs[q]++;
}

static void t_cfg_irq(void *ctx)
{
	cfg_irqs++;
}

static void setup(void)
{
	struct virtio_net_port port = { t_kick, NULL };
	char err[128];

	fake_ram_init(&ram, RAM_SIZE);
	kicks = cfg_irqs = irqs[0] = irqs[1] = 0;
	ck_assert_int_eq(virtio_net__init(&net, "virtio-net0", mac,
					  fake_ram_mem(&ram), err, sizeof(err)),
			 0);
	virtio_net__set_port(&net, &port);
}

static void teardown(void)
{
	virtio_net__destroy(&net);
	free(ram.base);
}

static void bring_up(uint64_t features)
{
	struct virtio_dev *vdev = virtio_net__dev(&net);
	struct virtio_transport tr = { t_irq, t_cfg_irq, NULL };

	virtio_dev__set_transport(vdev, &tr, 0);
	drv_set_features(vdev, features);
	drv_q_init(&rxq, &ram, QSZ, RXQ_RING);
	drv_q_init(&txq, &ram, QSZ, TXQ_RING);
	drv_setup_queue(vdev, VIRTIO_NET_RXQ, &rxq);
	drv_setup_queue(vdev, VIRTIO_NET_TXQ, &txq);
	drv_driver_ok(vdev);
	ck_assert_uint_eq(drv_status(vdev), 0x0F);
}

static bool needs_reset(void)
{
	return drv_status(virtio_net__dev(&net)) & VIRTIO_STATUS_NEEDS_RESET;
}

static uint64_t buf(unsigned i)
{
	return BUFS + 0x1000ull * i;
}

/* A receive buffer of len bytes (split in two descriptors if split). */
static uint16_t post_rx(unsigned i, uint32_t len, uint32_t split)
{
	struct drv_buf b[2] = { { buf(i), split ? split : len, 1 },
				{ buf(i) + split, len - split, 1 } };
	uint16_t h = drv_chain(&rxq, b, split ? 2 : 1);

	drv_offer(&rxq, h);
	virtio_dev__notify(virtio_net__dev(&net), VIRTIO_NET_RXQ);
	return h;
}

/* A frame to transmit: header (flags, gso) then len bytes of pattern,
 * the header in its own descriptor when split. */
static void post_tx(unsigned i, uint8_t flags, uint8_t gso, uint32_t len,
		    bool split)
{
	uint8_t *p = ram.base + buf(i);
	struct drv_buf b[2];

	memset(p, 0, VIRTIO_NET_HDR_SIZE);
	p[0] = flags;
	p[1] = gso;
	for (uint32_t k = 0; k < len; k++)
		p[VIRTIO_NET_HDR_SIZE + k] = (uint8_t)(k * 7 + i);
	b[0] = (struct drv_buf){ buf(i), split ? VIRTIO_NET_HDR_SIZE
					       : VIRTIO_NET_HDR_SIZE + len, 0 };
	b[1] = (struct drv_buf){ buf(i) + VIRTIO_NET_HDR_SIZE, len, 0 };
	drv_offer(&txq, drv_chain(&txq, b, split ? 2 : 1));
	virtio_dev__notify(virtio_net__dev(&net), VIRTIO_NET_TXQ);
}

START_TEST(test_config_and_features)
{
	struct virtio_dev *vdev = virtio_net__dev(&net);
	uint8_t cfgb[16];
	uint64_t df;

	ck_assert_uint_eq(vdev->device_id, VIRTIO_ID_NET);
	ck_assert_uint_eq(vdev->config_len, VIRTIO_NET_CONFIG_SIZE);
	ck_assert_uint_eq(vdev->s.num_queues, 2);
	df = vdev->s.device_features;
	ck_assert(df >> VIRTIO_NET_F_MAC & 1);
	ck_assert(df >> VIRTIO_NET_F_STATUS & 1);
	ck_assert(df >> VIRTIO_F_VERSION_1 & 1);
	/* no offloads, no mergeable buffers, no control queue */
	ck_assert(!(df >> VIRTIO_NET_F_CSUM & 1));
	ck_assert(!(df >> VIRTIO_NET_F_GUEST_CSUM & 1));
	ck_assert(!(df >> VIRTIO_NET_F_MRG_RXBUF & 1));
	ck_assert(!(df >> VIRTIO_NET_F_CTRL_VQ & 1));
	memset(cfgb, 0xEE, sizeof(cfgb));
	virtio_dev__config_read(vdev, 0, cfgb, sizeof(cfgb));
	ck_assert_mem_eq(cfgb, mac, 6);
	ck_assert_uint_eq(get_le16(cfgb + 6), VIRTIO_NET_S_LINK_UP);
	ck_assert_uint_eq(get_le16(cfgb + 8), 1);
	ck_assert_uint_eq(cfgb[10], 0);    /* past the end reads zero */
	virtio_dev__config_read(vdev, 4, cfgb, 2);
	ck_assert_uint_eq(cfgb[0], 0x34);
	ck_assert_uint_eq(cfgb[1], 0x99);
	/* the MAC is read-only */
	virtio_dev__config_write(vdev, 0, (const uint8_t *)"\x02\x00\x00", 3);
	virtio_dev__config_read(vdev, 0, cfgb, 1);
	ck_assert_uint_eq(cfgb[0], 0x52);
	/* a driver wanting what is not offered is refused */
	drv_set_features(vdev, CORE | 1ull << VIRTIO_NET_F_MRG_RXBUF);
	ck_assert(!(drv_status(vdev) & VIRTIO_STATUS_FEATURES_OK));
	virtio_dev__common_write(vdev, VIRTIO_COMMON_STATUS, 0);
	drv_set_features(vdev, CORE | 1ull << VIRTIO_NET_F_MAC);
	ck_assert(drv_status(vdev) & VIRTIO_STATUS_FEATURES_OK);
}
END_TEST

START_TEST(test_hdr)
{
	struct virtio_net_hdr h = { 1, 3, 0x1234, 1460, 34, 16, 2 }, g;
	uint8_t b[VIRTIO_NET_HDR_SIZE];

	virtio_net__hdr_encode(&h, b);
	ck_assert_mem_eq(b, "\x01\x03\x34\x12\xb4\x05\x22\x00\x10\x00\x02\x00",
			 12);
	virtio_net__hdr_decode(b, &g);
	ck_assert_mem_eq(&g, &h, sizeof(h));
	memset(&h, 0, sizeof(h));
	ck_assert_ptr_null(virtio_net__tx_check(&h, CORE, 60));
	ck_assert_ptr_null(virtio_net__tx_check(&h, CORE, 14));
	ck_assert_ptr_nonnull(virtio_net__tx_check(&h, CORE, 13));
	ck_assert_ptr_nonnull(virtio_net__tx_check(&h, CORE, 65536));
	h.flags = VIRTIO_NET_HDR_F_NEEDS_CSUM;
	ck_assert_ptr_nonnull(virtio_net__tx_check(&h, CORE, 60));
	ck_assert_ptr_null(virtio_net__tx_check(
		&h, CORE | 1ull << VIRTIO_NET_F_CSUM, 60));
	h.flags = 2;   /* DATA_VALID is receive-only */
	ck_assert_ptr_nonnull(virtio_net__tx_check(&h, CORE, 60));
	h.flags = 0;
	h.gso_type = 1;
	ck_assert_ptr_nonnull(virtio_net__tx_check(&h, CORE, 60));
}
END_TEST

START_TEST(test_transmit)
{
	static uint8_t out[VIRTIO_NET_FRAME_MAX + 1];
	struct virtio_net_stats st;
	uint32_t id, len;
	ssize_t n;

	bring_up(CORE | 1ull << VIRTIO_NET_F_MAC);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), 0);
	post_tx(0, 0, 0, 60, false);
	post_tx(1, 0, 0, 1514, true);
	ck_assert_int_eq(kicks, 2);     /* a kick only wakes the backend */
	n = virtio_net__transmit(&net, out, sizeof(out));
	ck_assert_int_eq(n, 60);
	ck_assert_mem_eq(out, ram.base + buf(0) + VIRTIO_NET_HDR_SIZE, 60);
	n = virtio_net__transmit(&net, out, sizeof(out));
	ck_assert_int_eq(n, 1514);
	ck_assert_mem_eq(out, ram.base + buf(1) + VIRTIO_NET_HDR_SIZE, 1514);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), 0);
	ck_assert_uint_eq(drv_used_idx(&txq), 2);
	drv_used_elem(&txq, 1, &id, &len);
	ck_assert_uint_eq(len, 0);      /* the device writes nothing */
	/* offloads not negotiated, runts: dropped, the device goes on */
	post_tx(2, VIRTIO_NET_HDR_F_NEEDS_CSUM, 0, 60, false);
	post_tx(3, 0, 4, 60, false);
	post_tx(4, 0, 0, 10, false);
	post_tx(5, 0, 0, 100, false);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), -1);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), -1);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), -1);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), 100);
	/* longer than the caller's buffer */
	post_tx(6, 0, 0, 200, false);
	ck_assert_int_eq(virtio_net__transmit(&net, out, 100), -1);
	virtio_net__get_stats(&net, &st);
	ck_assert_uint_eq(st.tx_frames, 3);
	ck_assert_uint_eq(st.tx_bytes, 60 + 1514 + 100);
	ck_assert_uint_eq(st.tx_dropped, 4);
	ck_assert(!needs_reset());
}
END_TEST

START_TEST(test_transmit_bad_chain)
{
	static uint8_t out[VIRTIO_NET_FRAME_MAX + 1];
	struct drv_buf b = { buf(0), 100, 1 };

	bring_up(CORE);
	/* a device-writable buffer on the transmit queue */
	drv_offer(&txq, drv_chain(&txq, &b, 1));
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), -1);
	ck_assert(needs_reset());
	ck_assert_int_eq(cfg_irqs, 1);
	ck_assert_uint_eq(drv_used_idx(&txq), 1);  /* returned for a reset */
	post_tx(1, 0, 0, 60, false);
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), 0);
}
END_TEST

START_TEST(test_transmit_short_header)
{
	static uint8_t out[VIRTIO_NET_FRAME_MAX + 1];
	struct drv_buf b = { buf(0), VIRTIO_NET_HDR_SIZE - 1, 0 };

	bring_up(CORE);
	drv_offer(&txq, drv_chain(&txq, &b, 1));
	ck_assert_int_eq(virtio_net__transmit(&net, out, sizeof(out)), -1);
	ck_assert(needs_reset());
}
END_TEST

START_TEST(test_receive)
{
	uint8_t frame[1514];
	struct virtio_net_hdr h;
	uint32_t id, len;
	uint16_t h0, h1;

	bring_up(CORE | 1ull << VIRTIO_NET_F_MAC);
	for (unsigned k = 0; k < sizeof(frame); k++)
		frame[k] = (uint8_t)(k ^ 0x5a);
	/* no buffer yet: the backend keeps the frame */
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 0);
	memset(ram.base + buf(0), 0xEE, 0x2000);
	h0 = post_rx(0, 2048, 0);
	h1 = post_rx(1, 1526, 5);      /* header split over two buffers */
	ck_assert_int_eq(kicks, 2);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 1);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 1514), 1);
	ck_assert_uint_eq(drv_used_idx(&rxq), 2);
	drv_used_elem(&rxq, 0, &id, &len);
	ck_assert_uint_eq(id, h0);
	ck_assert_uint_eq(len, VIRTIO_NET_HDR_SIZE + 60);
	virtio_net__hdr_decode(ram.base + buf(0), &h);
	ck_assert_uint_eq(h.flags, 0);
	ck_assert_uint_eq(h.gso_type, VIRTIO_NET_HDR_GSO_NONE);
	ck_assert_uint_eq(h.num_buffers, 1);
	ck_assert_mem_eq(ram.base + buf(0) + VIRTIO_NET_HDR_SIZE, frame, 60);
	ck_assert_uint_eq(ram.base[buf(0) + VIRTIO_NET_HDR_SIZE + 60], 0xEE);
	drv_used_elem(&rxq, 1, &id, &len);
	ck_assert_uint_eq(id, h1);
	ck_assert_uint_eq(len, VIRTIO_NET_HDR_SIZE + 1514);
	ck_assert_uint_eq(get_le16(ram.base + buf(1) + 10), 1);
	ck_assert_mem_eq(ram.base + buf(1) + VIRTIO_NET_HDR_SIZE, frame, 1514);
	ck_assert_int_eq(irqs[VIRTIO_NET_RXQ], 2);
	/* out of buffers again */
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 0);
	/* runts and giants never reach the guest */
	ck_assert_int_eq(virtio_net__receive(&net, frame, 13), -1);
	ck_assert_int_eq(virtio_net__receive(&net, frame,
					     VIRTIO_NET_FRAME_MAX + 1), -1);
}
END_TEST

START_TEST(test_receive_small_buffer)
{
	uint8_t frame[1514] = { 0 };
	uint32_t id, len;
	uint16_t h;

	bring_up(CORE);
	h = post_rx(0, 100, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 1514), -1);
	ck_assert_uint_eq(drv_used_idx(&rxq), 1);
	drv_used_elem(&rxq, 0, &id, &len);
	ck_assert_uint_eq(id, h);
	ck_assert_uint_eq(len, 0);
	ck_assert(!needs_reset());
	post_rx(1, 100, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 1);
}
END_TEST

START_TEST(test_receive_bad_buffers)
{
	uint8_t frame[60] = { 0 };
	struct drv_buf b = { buf(0), 2048, 0 };

	bring_up(CORE);
	/* device-readable receive buffer */
	drv_offer(&rxq, drv_chain(&rxq, &b, 1));
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), -1);
	ck_assert(needs_reset());
	/* a broken queue hands out nothing more */
	post_rx(1, 2048, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 0);
	/* a reset brings it back */
	virtio_dev__common_write(virtio_net__dev(&net), VIRTIO_COMMON_STATUS,
				 0);
	ck_assert_uint_eq(drv_status(virtio_net__dev(&net)), 0);
	bring_up(CORE);
	post_rx(0, 2048, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 1);
	/* outside guest RAM */
	b = (struct drv_buf){ RAM_SIZE - 8, 2048, 1 };
	drv_offer(&rxq, drv_chain(&rxq, &b, 1));
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 0);
	ck_assert(needs_reset());
}
END_TEST

START_TEST(test_receive_header_only_room)
{
	uint8_t frame[60] = { 0 };

	bring_up(CORE);
	post_rx(0, VIRTIO_NET_HDR_SIZE - 2, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), -1);
	ck_assert(needs_reset());
}
END_TEST

START_TEST(test_save_load)
{
	struct virtio_net other;
	struct state_writer *w = state_writer__new();
	struct state_reader *r;
	static const uint8_t mac2[6] = { 0x52, 0x54, 0, 0, 0, 1 };
	uint8_t *blob, frame[60] = { 1, 2, 3 }, cfgb[6];
	size_t len;
	char err[256];

	bring_up(CORE | 1ull << VIRTIO_NET_F_MAC);
	post_rx(0, 2048, 0);
	post_rx(1, 2048, 0);
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 1);
	/* saving needs a paused device */
	ck_assert_int_eq(virtio_net__save(&net, w, err, sizeof(err)), -1);
	virtio_dev__pause(virtio_net__dev(&net));
	ck_assert_int_eq(virtio_net__receive(&net, frame, 60), 0);
	ck_assert_int_eq(virtio_net__save(&net, w, err, sizeof(err)), 0);
	virtio_dev__resume(virtio_net__dev(&net));
	ck_assert_int_eq(state_writer__finish(w, &blob, &len), 0);
	state_writer__free(w);
	ck_assert_int_eq(state_reader__open(&r, blob, len, err, sizeof(err)),
			 0);
	/* a fresh device with another MAC takes over the guest's view */
	ck_assert_int_eq(virtio_net__init(&other, "virtio-net0", mac2,
					  fake_ram_mem(&ram), err, sizeof(err)),
			 0);
	ck_assert_int_eq(virtio_net__load(&other, r, err, sizeof(err)), 0);
	virtio_dev__config_read(virtio_net__dev(&other), 0, cfgb, 6);
	ck_assert_mem_eq(cfgb, mac, 6);
	ck_assert_uint_eq(drv_status(virtio_net__dev(&other)), 0x0F);
	/* the second posted buffer is still there for it */
	ck_assert_int_eq(virtio_net__receive(&other, frame, 60), 1);
	ck_assert_uint_eq(drv_used_idx(&rxq), 2);
	ck_assert_int_eq(virtio_net__receive(&other, frame, 60), 0);
	virtio_net__destroy(&other);
	state_reader__free(r);
	free(blob);
}
END_TEST

/* --- virtio-rng ------------------------------------------------------ */
static size_t counting_source(void *ctx, uint8_t *b, size_t len)
{
	size_t *limit = ctx, n = len < *limit ? len : *limit;

	for (size_t i = 0; i < n; i++)
		b[i] = (uint8_t)(i + 1);
	*limit -= n;
	return n;
}

START_TEST(test_rng)
{
	struct virtio_rng rng;
	struct virtio_dev *vdev;
	struct drv_q q;
	struct drv_buf b[2] = { { buf(0), 100, 1 }, { buf(1), 5000, 1 } };
	size_t limit = 1u << 20;
	uint32_t id, len;
	char err[128];

	ck_assert_int_eq(virtio_rng__init(&rng, "virtio-rng0", counting_source,
					  &limit, fake_ram_mem(&ram), err,
					  sizeof(err)), 0);
	vdev = virtio_rng__dev(&rng);
	ck_assert_uint_eq(vdev->device_id, VIRTIO_ID_RNG);
	ck_assert_uint_eq(vdev->s.num_queues, 1);
	drv_set_features(vdev, CORE);
	drv_q_init(&q, &ram, 16, RXQ_RING);
	drv_setup_queue(vdev, 0, &q);
	drv_driver_ok(vdev);
	memset(ram.base + buf(0), 0, 0x3000);
	drv_offer(&q, drv_chain(&q, b, 2));
	virtio_dev__notify(vdev, 0);
	ck_assert_uint_eq(drv_used_idx(&q), 1);
	drv_used_elem(&q, 0, &id, &len);
	ck_assert_uint_eq(len, 5100);
	ck_assert_uint_eq(ram.base[buf(0)], 1);
	ck_assert_uint_eq(ram.base[buf(0) + 99], 100);
	ck_assert_uint_eq(ram.base[buf(1)], 1);      /* a new source call */
	ck_assert_uint_eq(ram.base[buf(1) + 4096], 1); /* 4 KiB at a time */
	ck_assert_uint_eq(ram.base[buf(1) + 4999], (uint8_t)904);
	ck_assert_uint_eq(ram.base[buf(1) + 5000], 0); /* nothing past it */
	/* at most VIRTIO_RNG_MAX_FILL per request */
	b[0] = (struct drv_buf){ 0x80000, 0x20000, 1 };
	drv_offer(&q, drv_chain(&q, b, 1));
	virtio_dev__notify(vdev, 0);
	drv_used_elem(&q, 1, &id, &len);
	ck_assert_uint_eq(len, VIRTIO_RNG_MAX_FILL);
	/* a source running dry: fewer bytes, said so */
	limit = 10;
	b[0] = (struct drv_buf){ buf(2), 64, 1 };
	drv_offer(&q, drv_chain(&q, b, 1));
	virtio_dev__notify(vdev, 0);
	drv_used_elem(&q, 2, &id, &len);
	ck_assert_uint_eq(len, 10);
	/* a device-readable buffer breaks the device */
	b[0] = (struct drv_buf){ buf(2), 64, 0 };
	drv_offer(&q, drv_chain(&q, b, 1));
	virtio_dev__notify(vdev, 0);
	ck_assert(drv_status(vdev) & VIRTIO_STATUS_NEEDS_RESET);
	virtio_rng__destroy(&rng);
}
END_TEST

START_TEST(test_rng_getrandom)
{
	uint8_t a[64], b[64];

	ck_assert_uint_eq(virtio_rng__getrandom(NULL, a, sizeof(a)), 64);
	ck_assert_uint_eq(virtio_rng__getrandom(NULL, b, sizeof(b)), 64);
	ck_assert(memcmp(a, b, sizeof(a)) != 0);
}
END_TEST

static Suite *virtio_net_suite(void)
{
	Suite *s = suite_create("virtio_net");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_config_and_features);
	tcase_add_test(tc, test_hdr);
	tcase_add_test(tc, test_transmit);
	tcase_add_test(tc, test_transmit_bad_chain);
	tcase_add_test(tc, test_transmit_short_header);
	tcase_add_test(tc, test_receive);
	tcase_add_test(tc, test_receive_small_buffer);
	tcase_add_test(tc, test_receive_bad_buffers);
	tcase_add_test(tc, test_receive_header_only_room);
	tcase_add_test(tc, test_save_load);
	tcase_add_test(tc, test_rng);
	tcase_add_test(tc, test_rng_getrandom);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(virtio_net_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
