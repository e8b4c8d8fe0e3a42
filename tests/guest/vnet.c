/* test=net's virtio-net driver: 64 receive buffers of 2 KiB (header plus
 * a 1514-byte frame fit, as the device needs without MRG_RXBUF), 64
 * transmit slots, both polled. */
#include "user.h"
#include "gnet.h"
#include "vpci.h"

#define NET_VIRTIO_ID	1
#define NET_BAR		0xfe100000ull
#define NET_MEM		0x2800000ull
#define NET_RXQ_MEM	NET_MEM
#define NET_TXQ_MEM	(NET_MEM + 0x4000)
#define NET_RX_BUFS	(NET_MEM + 0x10000)
#define NET_TX_BUFS	(NET_MEM + 0x40000)
#define NET_SLOTS	64
#define NET_BUF		2048
#define NET_HDR		12
#define F_MAC		5
#define F_STATUS	16

struct vnet_stats vnet_stats;

static struct vpci dev;
static struct vpci_q rxq, txq;
static bool tx_busy[NET_SLOTS];
static unsigned tx_inflight;

static uint8_t *rx_buf(unsigned i)
{
	return (uint8_t *)(NET_RX_BUFS + (uint64_t)i * NET_BUF);
}

static uint8_t *tx_buf(unsigned i)
{
	return (uint8_t *)(NET_TX_BUFS + (uint64_t)i * NET_BUF);
}

void vnet_init(uint8_t mac[6], bool *link_up)
{
	vpci_init(&dev, "net", NET_VIRTIO_ID, NET_BAR,
		  1ull << F_MAC | 1ull << F_STATUS);
	vpci_queue(&dev, &rxq, 0, NET_SLOTS, NET_RXQ_MEM);
	vpci_queue(&dev, &txq, 1, NET_SLOTS, NET_TXQ_MEM);
	if (rxq.size < NET_SLOTS || txq.size < NET_SLOTS)
		fail("net: queues of %u/%u entries, expected %u", rxq.size,
		     txq.size, NET_SLOTS);
	vpci_driver_ok(&dev);
	for (unsigned i = 0; i < NET_SLOTS; i++) {
		vq_desc(&rxq, i, (uint64_t)rx_buf(i), NET_BUF, VPCI_DESC_WRITE,
			0);
		vq_offer(&rxq, (uint16_t)i);
	}
	vq_kick(&dev, &rxq);
	if (!(dev.features >> F_MAC & 1))
		fail("net: the device offers no MAC address");
	for (unsigned i = 0; i < 6; i++)
		mac[i] = mmio_read8(dev.devcfg + i);
	*link_up = !(dev.features >> F_STATUS & 1) ||
		   (mmio_read16(dev.devcfg + 6) & 1);
}

static void reap_tx(void)
{
	uint32_t id, len;

	while (vq_used(&txq, &id, &len)) {
		if (id >= NET_SLOTS || !tx_busy[id])
			fail("net: tx used ring returned descriptor %u", id);
		tx_busy[id] = false;
		tx_inflight--;
	}
}

void vnet_send(const uint8_t *frame, size_t len)
{
	uint64_t spins = 0;
	unsigned s;

	if (len > NET_BUF - NET_HDR)
		fail("net: frame of %lu bytes to send", len);
	for (;;) {
		reap_tx();
		for (s = 0; s < NET_SLOTS && tx_busy[s]; s++)
			;
		if (s < NET_SLOTS)
			break;
		cpu_relax();
		if (++spins % 65536 == 0) {
			vpci_check(&dev);
			watchdog_check("virtio-net transmit slots");
		}
	}
	memset(tx_buf(s), 0, NET_HDR);
	memcpy(tx_buf(s) + NET_HDR, frame, len);
	vq_desc(&txq, s, (uint64_t)tx_buf(s), (uint32_t)(NET_HDR + len), 0, 0);
	tx_busy[s] = true;
	tx_inflight++;
	vq_offer(&txq, (uint16_t)s);
	vq_kick(&dev, &txq);
	vnet_stats.tx++;
}

unsigned vnet_poll(void (*fn)(const uint8_t *frame, size_t len))
{
	uint32_t id, len;
	unsigned n = 0;

	reap_tx();
	while (vq_used(&rxq, &id, &len)) {
		if (id >= NET_SLOTS)
			fail("net: rx used ring returned descriptor %u", id);
		if (len < NET_HDR + ETH_HLEN || len > NET_BUF)
			vnet_stats.rx_short++;
		/* The spec wants num_buffers 1 without MRG_RXBUF; QEMU up to
		 * 9.x leaves 0 there (Linux never looks).  More is wrong. */
		else if (rx_buf(id)[10] > 1 || rx_buf(id)[11] != 0)
			fail("net: received header has num_buffers %u",
			     rx_buf(id)[10] | rx_buf(id)[11] << 8);
		else {
			vnet_stats.rx++;
			fn(rx_buf(id) + NET_HDR, len - NET_HDR);
		}
		vq_offer(&rxq, (uint16_t)id);
		n++;
	}
	if (n)
		vq_kick(&dev, &rxq);
	return n;
}
