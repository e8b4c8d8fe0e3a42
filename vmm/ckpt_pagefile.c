/* Page files (pages-N.bin): header, index of runs, then the pages.  The
 * reader believes nothing: every count is checked against the file size
 * and every run against guest RAM before a byte of data is placed. */
#include "vmm/ckpt_format.h"

#include <inttypes.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/errf.h"

/* Header block layout. */
#define H_MAGIC 0
#define H_VERSION 8
#define H_PAGE_SIZE 12
#define H_NODE 16
#define H_NR_RUNS 20
#define H_NR_PAGES 24
#define H_DATA_OFF 32
#define H_INDEX_CRC 40
#define H_CRC 44	/* CRC-64 (low 32 bits) of bytes [0, H_CRC) */
#define H_USED 48

uint64_t ckpt_pages__data_off(uint32_t nr_runs)
{
	uint64_t index = (uint64_t)nr_runs * CKPT_RUN_SIZE;

	return CKPT_PAGES_HEADER_SIZE +
	       (index + CKPT_PAGE_SIZE - 1) / CKPT_PAGE_SIZE * CKPT_PAGE_SIZE;
}

void ckpt_pages__encode_header(uint8_t *block,
			       const struct ckpt_pages_header *h)
{
	memset(block, 0, CKPT_PAGES_HEADER_SIZE);
	memcpy(block + H_MAGIC, CKPT_PAGES_MAGIC, 8);
	put_le32(block + H_VERSION, h->version);
	put_le32(block + H_PAGE_SIZE, h->page_size);
	put_le32(block + H_NODE, h->node);
	put_le32(block + H_NR_RUNS, h->nr_runs);
	put_le64(block + H_NR_PAGES, h->nr_pages);
	put_le64(block + H_DATA_OFF, h->data_off);
	put_le32(block + H_INDEX_CRC, h->index_crc);
	put_le32(block + H_CRC, (uint32_t)ckpt__crc64(0, block, H_CRC));
}

void ckpt_pages__encode_index(uint8_t *out, const struct ckpt_run *runs,
			      uint32_t nr_runs)
{
	uint64_t bytes = ckpt_pages__data_off(nr_runs) - CKPT_PAGES_HEADER_SIZE;

	memset(out, 0, bytes);
	for (uint32_t i = 0; i < nr_runs; i++) {
		put_le64(out + i * CKPT_RUN_SIZE, runs[i].gpa);
		put_le64(out + i * CKPT_RUN_SIZE + 8, runs[i].pages);
	}
}

int ckpt_pages__decode_header(struct ckpt_pages_header *h,
			      const uint8_t *block, uint64_t file_size,
			      char *err, size_t errlen)
{
	uint64_t max_pages;

	if (file_size < CKPT_PAGES_HEADER_SIZE ||
	    memcmp(block + H_MAGIC, CKPT_PAGES_MAGIC, 8)) {
		errf(err, errlen, "not a page file");
		return -1;
	}
	if (get_le32(block + H_CRC) != (uint32_t)ckpt__crc64(0, block, H_CRC)) {
		errf(err, errlen, "page file header: checksum mismatch");
		return -1;
	}
	h->version = get_le32(block + H_VERSION);
	h->page_size = get_le32(block + H_PAGE_SIZE);
	h->node = get_le32(block + H_NODE);
	h->nr_runs = get_le32(block + H_NR_RUNS);
	h->nr_pages = get_le64(block + H_NR_PAGES);
	h->data_off = get_le64(block + H_DATA_OFF);
	h->index_crc = get_le32(block + H_INDEX_CRC);
	if (h->version != CKPT_PAGES_VERSION) {
		errf(err, errlen, "page file version %u; this krg-vmm reads "
		     "version %u", h->version, CKPT_PAGES_VERSION);
		return -1;
	}
	for (unsigned i = H_USED; i < CKPT_PAGES_HEADER_SIZE; i++)
		if (block[i]) {
			errf(err, errlen, "page file header: reserved bytes "
			     "are not zero");
			return -1;
		}
	if (h->page_size != CKPT_PAGE_SIZE || h->nr_runs > CKPT_PAGES_MAX_RUNS ||
	    h->data_off != ckpt_pages__data_off(h->nr_runs) ||
	    h->nr_runs > h->nr_pages || (!h->nr_runs && h->nr_pages)) {
		errf(err, errlen, "page file header is inconsistent (%u runs, "
		     "%" PRIu64 " pages)", h->nr_runs, h->nr_pages);
		return -1;
	}
	max_pages = (file_size - h->data_off) / CKPT_PAGE_SIZE;
	if (file_size < h->data_off || h->nr_pages > max_pages ||
	    file_size != h->data_off + h->nr_pages * CKPT_PAGE_SIZE) {
		errf(err, errlen, "page file is %" PRIu64 " bytes; its header "
		     "wants %" PRIu64 " (truncated or padded)", file_size,
		     h->data_off + h->nr_pages * CKPT_PAGE_SIZE);
		return -1;
	}
	return 0;
}

static bool in_ram(const struct ckpt_ram *ram, uint64_t gpa, uint64_t len)
{
	for (unsigned i = 0; i < ram->nr && i < 4; i++)
		if (gpa >= ram->r[i].gpa && gpa - ram->r[i].gpa <= ram->r[i].size &&
		    len <= ram->r[i].size - (gpa - ram->r[i].gpa))
			return true;
	return false;
}

int ckpt_pages__decode_index(const struct ckpt_pages_header *h,
			     const uint8_t *bytes, const struct ckpt_ram *ram,
			     struct ckpt_run *runs, char *err, size_t errlen)
{
	uint64_t n = h->data_off - CKPT_PAGES_HEADER_SIZE, total = 0, end = 0;

	if ((uint32_t)ckpt__crc64(0, bytes, n) != h->index_crc) {
		errf(err, errlen, "page file index: checksum mismatch");
		return -1;
	}
	for (uint32_t i = 0; i < h->nr_runs; i++) {
		uint64_t gpa = get_le64(bytes + i * CKPT_RUN_SIZE);
		uint64_t pages = get_le64(bytes + i * CKPT_RUN_SIZE + 8);

		if (!pages || pages > h->nr_pages - total ||
		    gpa % CKPT_PAGE_SIZE || (i && gpa < end) ||
		    !in_ram(ram, gpa, pages * CKPT_PAGE_SIZE)) {
			errf(err, errlen, "page file index: run %u (gpa 0x%"
			     PRIx64 ", %" PRIu64 " pages) is out of order or "
			     "outside guest RAM", i, gpa, pages);
			return -1;
		}
		runs[i] = (struct ckpt_run){ gpa, pages };
		total += pages;
		end = gpa + pages * CKPT_PAGE_SIZE;
	}
	for (uint64_t k = (uint64_t)h->nr_runs * CKPT_RUN_SIZE; k < n; k++)
		if (bytes[k]) {
			errf(err, errlen, "page file index: padding is not "
			     "zero");
			return -1;
		}
	if (total != h->nr_pages) {
		errf(err, errlen, "page file index: runs hold %" PRIu64
		     " pages, the header says %" PRIu64, total, h->nr_pages);
		return -1;
	}
	return 0;
}
