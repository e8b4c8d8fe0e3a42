#include "vmm/devices/fw_cfg.h"

#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"

static void put_be16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)(v >> 8);
	p[1] = (uint8_t)v;
}

static void put_be32(uint8_t *p, uint32_t v)
{
	put_be16(p, (uint16_t)(v >> 16));
	put_be16(p + 2, (uint16_t)v);
}

static uint32_t get_be32(const uint8_t *p)
{
	return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 |
	       (uint32_t)p[2] << 8 | p[3];
}

static uint64_t get_be64(const uint8_t *p)
{
	return (uint64_t)get_be32(p) << 32 | get_be32(p + 4);
}

static bool is_file_key(uint16_t key)
{
	return key >= FW_CFG_FILE_FIRST && key < FW_CFG_WRITE_CHANNEL;
}

/* The directory: be32 count, then one 64-byte entry per file in selector
 * order.  Rebuilt whole on every file added. */
static int rebuild_dir(struct fw_cfg *fw)
{
	uint32_t len = 4 + (uint32_t)fw->nr_files * FW_CFG_DIR_ENTRY_SIZE;
	uint8_t *dir = calloc(1, len);
	size_t i;

	if (!dir)
		return -1;
	put_be32(dir, (uint32_t)fw->nr_files);
	for (i = 0; i < fw->nr_files; i++) {
		uint8_t *e = dir + 4 + i * FW_CFG_DIR_ENTRY_SIZE;

		put_be32(e, fw->files[i].len);
		put_be16(e + 4, (uint16_t)(FW_CFG_FILE_FIRST + i));
		memcpy(e + 8, fw->files[i].name, FW_CFG_MAX_FILE_PATH);
	}
	free(fw->dir);
	fw->dir = dir;
	fw->dir_len = len;
	return 0;
}

int fw_cfg__init(struct fw_cfg *fw, const struct guest_mem *mem)
{
	memset(fw, 0, sizeof(*fw));
	pthread_mutex_init(&fw->lock, NULL);
	fw->mem = mem;
	fw->s.cur_key = FW_CFG_INVALID;
	if (rebuild_dir(fw) || fw_cfg__add_bytes(fw, FW_CFG_SIGNATURE, "QEMU", 4) ||
	    fw_cfg__add_u32(fw, FW_CFG_ID, FW_CFG_VERSION | FW_CFG_VERSION_DMA)) {
		fw_cfg__destroy(fw);
		return -1;
	}
	return 0;
}

void fw_cfg__destroy(struct fw_cfg *fw)
{
	size_t i;

	for (i = 0; i < fw->nr_items; i++)
		free(fw->items[i].data);
	for (i = 0; i < fw->nr_files; i++)
		free(fw->files[i].data);
	free(fw->items);
	free(fw->files);
	free(fw->dir);
	fw->items = NULL;
	fw->files = NULL;
	fw->dir = NULL;
	fw->nr_items = fw->nr_files = 0;
	pthread_mutex_destroy(&fw->lock);
}

void fw_cfg__reset(struct fw_cfg *fw)
{
	pthread_mutex_lock(&fw->lock);
	memset(&fw->s, 0, sizeof(fw->s));
	fw->s.cur_key = FW_CFG_INVALID;
	pthread_mutex_unlock(&fw->lock);
}

static uint8_t *dup_bytes(const void *data, size_t len)
{
	uint8_t *p = malloc(len ? len : 1);

	if (p && len)
		memcpy(p, data, len);
	return p;
}

int fw_cfg__add_bytes(struct fw_cfg *fw, uint16_t key, const void *data,
		      size_t len)
{
	struct fw_cfg_item *items;
	uint8_t *copy;
	size_t i;

	key &= (uint16_t)~FW_CFG_WRITE_CHANNEL;
	if (key == FW_CFG_FILE_DIR || is_file_key(key) || len > UINT32_MAX ||
	    (len && !data))
		return -1;
	copy = dup_bytes(data, len);
	if (!copy)
		return -1;
	pthread_mutex_lock(&fw->lock);
	for (i = 0; i < fw->nr_items; i++) {
		if (fw->items[i].key == key) {
			free(fw->items[i].data);
			fw->items[i].data = copy;
			fw->items[i].len = (uint32_t)len;
			pthread_mutex_unlock(&fw->lock);
			return 0;
		}
	}
	items = realloc(fw->items, (fw->nr_items + 1) * sizeof(*items));
	if (!items) {
		pthread_mutex_unlock(&fw->lock);
		free(copy);
		return -1;
	}
	fw->items = items;
	items[fw->nr_items++] = (struct fw_cfg_item){ key, (uint32_t)len, copy };
	pthread_mutex_unlock(&fw->lock);
	return 0;
}

int fw_cfg__add_u16(struct fw_cfg *fw, uint16_t key, uint16_t v)
{
	uint8_t b[2];

	put_le16(b, v);
	return fw_cfg__add_bytes(fw, key, b, sizeof(b));
}

int fw_cfg__add_u32(struct fw_cfg *fw, uint16_t key, uint32_t v)
{
	uint8_t b[4];

	put_le32(b, v);
	return fw_cfg__add_bytes(fw, key, b, sizeof(b));
}

int fw_cfg__add_u64(struct fw_cfg *fw, uint16_t key, uint64_t v)
{
	uint8_t b[8];

	put_le64(b, v);
	return fw_cfg__add_bytes(fw, key, b, sizeof(b));
}

int fw_cfg__add_cmdline(struct fw_cfg *fw, const char *cmdline)
{
	size_t len = strlen(cmdline) + 1;

	if (len > UINT32_MAX)
		return -1;
	if (fw_cfg__add_u32(fw, FW_CFG_CMDLINE_SIZE, (uint32_t)len))
		return -1;
	return fw_cfg__add_bytes(fw, FW_CFG_CMDLINE_DATA, cmdline, len);
}

int fw_cfg__add_file(struct fw_cfg *fw, const char *name, const void *data,
		     size_t len)
{
	struct fw_cfg_file *files;
	size_t pos, nlen = strlen(name);
	uint8_t *copy;

	if (!nlen || nlen >= FW_CFG_MAX_FILE_PATH || len > UINT32_MAX ||
	    (len && !data))
		return -1;
	copy = dup_bytes(data, len);
	if (!copy)
		return -1;
	pthread_mutex_lock(&fw->lock);
	for (pos = 0; pos < fw->nr_files; pos++) {
		int c = strcmp(name, fw->files[pos].name);

		if (c == 0)
			goto fail; /* QEMU refuses duplicates too */
		if (c < 0)
			break;
	}
	if (fw->nr_files >= FW_CFG_MAX_FILES)
		goto fail;
	files = realloc(fw->files, (fw->nr_files + 1) * sizeof(*files));
	if (!files)
		goto fail;
	fw->files = files;
	memmove(&files[pos + 1], &files[pos],
		(fw->nr_files - pos) * sizeof(*files));
	memset(&files[pos], 0, sizeof(files[pos]));
	memcpy(files[pos].name, name, nlen);
	files[pos].len = (uint32_t)len;
	files[pos].data = copy;
	fw->nr_files++;
	if (rebuild_dir(fw)) {
		/* Keep the directory and the files consistent. */
		fw->nr_files--;
		memmove(&files[pos], &files[pos + 1],
			(fw->nr_files - pos) * sizeof(*files));
		goto fail;
	}
	pthread_mutex_unlock(&fw->lock);
	return 0;
fail:
	pthread_mutex_unlock(&fw->lock);
	free(copy);
	return -1;
}

int fw_cfg__file_key(struct fw_cfg *fw, const char *name)
{
	int key = -1;
	size_t i;

	pthread_mutex_lock(&fw->lock);
	for (i = 0; i < fw->nr_files; i++)
		if (!strncmp(fw->files[i].name, name, FW_CFG_MAX_FILE_PATH))
			key = FW_CFG_FILE_FIRST + (int)i;
	pthread_mutex_unlock(&fw->lock);
	return key;
}

/* The selected item's contents; NULL/0 for nothing or an unknown key. */
static const uint8_t *lookup(const struct fw_cfg *fw, uint16_t key,
			     uint32_t *len)
{
	size_t i;

	*len = 0;
	if (key == FW_CFG_INVALID)
		return NULL;
	key &= (uint16_t)~FW_CFG_WRITE_CHANNEL;
	if (key == FW_CFG_FILE_DIR) {
		*len = fw->dir_len;
		return fw->dir;
	}
	if (is_file_key(key)) {
		if ((size_t)(key - FW_CFG_FILE_FIRST) >= fw->nr_files)
			return NULL;
		*len = fw->files[key - FW_CFG_FILE_FIRST].len;
		return fw->files[key - FW_CFG_FILE_FIRST].data;
	}
	for (i = 0; i < fw->nr_items; i++) {
		if (fw->items[i].key == key) {
			*len = fw->items[i].len;
			return fw->items[i].data;
		}
	}
	return NULL;
}

static void select_key(struct fw_cfg *fw, uint16_t key)
{
	fw->s.cur_key = key;
	fw->s.cur_offset = 0;
}

static uint8_t read_byte(struct fw_cfg *fw)
{
	uint32_t len;
	const uint8_t *p = lookup(fw, fw->s.cur_key, &len);

	if (!p || fw->s.cur_offset >= len)
		return 0;
	return p[fw->s.cur_offset++];
}

/* READ: copies from the current offset, zero-fills what lies past the
 * end.  Returns false if the guest range is not RAM. */
static bool dma_read(struct fw_cfg *fw, uint64_t addr, uint32_t n)
{
	uint32_t len, avail, copy;
	const uint8_t *p = lookup(fw, fw->s.cur_key, &len);
	uint8_t *dst;

	avail = (p && fw->s.cur_offset < len) ? len - fw->s.cur_offset : 0;
	copy = n < avail ? n : avail;
	if (copy) {
		dst = guest_mem__ptr(fw->mem, addr, copy);
		if (!dst)
			return false;
		memcpy(dst, p + fw->s.cur_offset, copy);
		fw->s.cur_offset += copy;
		addr += copy;
		n -= copy;
	}
	if (n) {
		dst = guest_mem__ptr(fw->mem, addr, n);
		if (!dst)
			return false;
		memset(dst, 0, n);
	}
	return true;
}

static void dma_skip(struct fw_cfg *fw, uint32_t n)
{
	uint32_t len;

	lookup(fw, fw->s.cur_key, &len);
	if (fw->s.cur_offset >= len)
		return;
	fw->s.cur_offset += n < len - fw->s.cur_offset ? n
						       : len - fw->s.cur_offset;
}

static void dma_transfer(struct fw_cfg *fw, uint64_t desc_gpa)
{
	uint8_t *desc = guest_mem__ptr(fw->mem, desc_gpa, 16);
	uint8_t copy[16];
	uint32_t control, length;
	uint64_t addr;
	bool ok = true;

	if (!desc)
		return; /* nowhere to even report the error */
	/* One snapshot: other vCPUs may scribble on it meanwhile. */
	memcpy(copy, desc, sizeof(copy));
	control = get_be32(copy);
	length = get_be32(copy + 4);
	addr = get_be64(copy + 8);
	if (control & FW_CFG_DMA_CTL_SELECT)
		select_key(fw, (uint16_t)(control >> 16));
	if (control & FW_CFG_DMA_CTL_READ)
		ok = dma_read(fw, addr, length);
	else if (control & FW_CFG_DMA_CTL_WRITE)
		ok = false; /* guest writes are not supported */
	else if (control & FW_CFG_DMA_CTL_SKIP)
		dma_skip(fw, length);
	put_be32(copy, ok ? 0 : FW_CFG_DMA_CTL_ERROR);
	memcpy(desc, copy, 4);
}

void fw_cfg__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		bool is_write)
{
	struct fw_cfg *fw = opaque;
	uint32_t i;

	pthread_mutex_lock(&fw->lock);
	if (offset < 2) {
		/* The selector (word write at 0x510) and the data byte
		 * (byte reads at 0x510 or 0x511), as QEMU decodes them. */
		if (is_write && offset == 0 && len == 2)
			select_key(fw, get_le16(data));
		else if (!is_write && len == 1)
			data[0] = read_byte(fw);
		else if (!is_write)
			memset(data, 0xFF, len);
	} else if (offset >= 4 && offset < FW_CFG_PORT_LEN) {
		uint32_t reg = (uint32_t)offset - 4;

		for (i = 0; i < len; i++) {
			if (reg + i >= 8) {
				if (!is_write)
					data[i] = 0xFF;
			} else if (is_write) {
				fw->s.dma_addr[reg + i] = data[i];
			} else {
				data[i] = (uint8_t)(FW_CFG_DMA_SIGNATURE >>
						    (56 - 8 * (reg + i)));
			}
		}
		/* Writing the low half (or all 8 bytes) starts it. */
		if (is_write && ((reg == 4 && len == 4) ||
				 (reg == 0 && len == 8))) {
			uint64_t desc = get_be64(fw->s.dma_addr);

			memset(fw->s.dma_addr, 0, sizeof(fw->s.dma_addr));
			dma_transfer(fw, desc);
		}
	} else if (!is_write) {
		memset(data, 0xFF, len);
	}
	pthread_mutex_unlock(&fw->lock);
}

void fw_cfg__post_load(struct fw_cfg *fw)
{
	(void)fw;
}
