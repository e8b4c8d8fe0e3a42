/* test=rng: the virtio entropy device (-device virtio-rng-pci).  Four
 * requests (16, 64, 1000 bytes, and 4096 bytes split over two chained
 * descriptors), each filled completely, nothing written past a buffer,
 * and bytes that look random: two requests never equal, no 8-byte word
 * twice in the big one, every byte value within a loose bound of the
 * expected count (a constant, a counter or a short repeating pattern all
 * fail). */
#include "user.h"
#include "vpci.h"

#define RNG_VIRTIO_ID	4
#define RNG_BAR		0xfe140000ull
#define RNG_MEM		0x2900000ull
#define RNG_BUF		(RNG_MEM + 0x10000)
#define RNG_CANARY	0xa5

struct rng_req {
	uint32_t len, split;	/* split: first descriptor's length, 0: one */
};

static const struct rng_req reqs[] = {
	{ 16, 0 }, { 64, 0 }, { 1000, 0 }, { 4096, 1500 },
};

static uint8_t *buf_of(unsigned i)
{
	return (uint8_t *)(RNG_BUF + 0x2000ull * i);
}

static void check_random(const uint8_t *b, uint32_t n)
{
	unsigned hist[256] = { 0 }, distinct = 0, max = 0;
	const uint64_t *w = (const uint64_t *)b;

	for (uint32_t i = 0; i < n; i++)
		hist[b[i]]++;
	for (unsigned v = 0; v < 256; v++) {
		distinct += hist[v] != 0;
		if (hist[v] > max)
			max = hist[v];
	}
	/* 4096 bytes: 16 expected per value; 64 would be off the charts */
	if (distinct < 200 || max > 64)
		fail("rng: 4096 bytes hold %u distinct values, the commonest "
		     "%u times: not random", distinct, max);
	for (uint32_t i = 0; i < n / 8; i++)
		for (uint32_t j = i + 1; j < n / 8; j++)
			if (w[i] == w[j])
				fail("rng: 8-byte word %u repeats at %u (%lx)",
				     i, j, w[i]);
	say("rng: 4096 bytes: %u distinct byte values, commonest %u times, "
	    "no repeated 8-byte word", distinct, max);
}

void test_rng(unsigned cpu)
{
	static struct vpci d;
	static struct vpci_q q;
	unsigned n = sizeof(reqs) / sizeof(reqs[0]), done = 0;
	uint64_t t_end;

	if (cpu != 0)
		return;
	vpci_init(&d, "rng", RNG_VIRTIO_ID, RNG_BAR, 0);
	vpci_queue(&d, &q, 0, 16, RNG_MEM);
	vpci_driver_ok(&d);
	for (unsigned i = 0; i < n; i++) {
		const struct rng_req *r = &reqs[i];
		uint8_t *b = buf_of(i);

		memset(b, RNG_CANARY, 0x2000);
		if (r->split) {
			vq_desc(&q, 2 * i, (uint64_t)b, r->split,
				VPCI_DESC_WRITE | VPCI_DESC_NEXT,
				(uint16_t)(2 * i + 1));
			vq_desc(&q, 2 * i + 1, (uint64_t)b + r->split,
				r->len - r->split, VPCI_DESC_WRITE, 0);
		} else {
			vq_desc(&q, 2 * i, (uint64_t)b, r->len,
				VPCI_DESC_WRITE, 0);
		}
		vq_offer(&q, (uint16_t)(2 * i));
	}
	vq_kick(&d, &q);
	t_end = rdtsc() + tsc_from_us(5000000);
	while (done < n) {
		uint32_t id, len;

		if (!vq_used(&q, &id, &len)) {
			if (rdtsc() > t_end) {
				vpci_check(&d);
				fail("rng: %u of %u requests answered in 5 s",
				     done, n);
			}
			cpu_relax();
			continue;
		}
		if (id % 2 || id / 2 >= n)
			fail("rng: used ring returned descriptor %u", id);
		if (len != reqs[id / 2].len)
			fail("rng: request of %u bytes got %u",
			     reqs[id / 2].len, len);
		if (buf_of(id / 2)[len] != RNG_CANARY)
			fail("rng: the device wrote past the %u-byte buffer",
			     len);
		done++;
	}
	if (!memcmp(buf_of(0), buf_of(1), 16) ||
	    !memcmp(buf_of(1), buf_of(2), 64))
		fail("rng: two requests returned the same bytes");
	say("rng: %u requests filled (16, 64, 1000, 4096 bytes); first "
	    "bytes %02x%02x%02x%02x %02x%02x%02x%02x", n, buf_of(0)[0],
	    buf_of(0)[1], buf_of(0)[2], buf_of(0)[3], buf_of(1)[0],
	    buf_of(1)[1], buf_of(1)[2], buf_of(1)[3]);
	check_random(buf_of(3), 4096);
}
