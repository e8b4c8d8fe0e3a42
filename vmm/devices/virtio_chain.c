/* The descriptor chain walker: turns a chain (direct, indirect, or direct
 * descriptors ending in one indirect table) into host iovecs, checking
 * each descriptor against guest RAM and the rules of virtio 1.x 2.7.5. */
#include "vmm/devices/virtio_queue.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "vmm/bytes.h"

struct vdesc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

__attribute__((format(printf, 3, 4))) static int fail(char *err,
						       size_t errlen,
						       const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
	return -1;
}

/* One snapshot of a descriptor: the guest may rewrite the table while we
 * look, so every check is made on the copy and the compiler must not go
 * back to guest memory for a field. */
static void read_desc(const uint8_t *p, struct vdesc *d)
{
	uint8_t b[VIRTQ_DESC_SIZE];

	memcpy(b, p, sizeof(b));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	d->addr = get_le64(b);
	d->len = get_le32(b + 8);
	d->flags = get_le16(b + 12);
	d->next = get_le16(b + 14);
}

static int add_buffer(const struct vdesc *d, struct virtio_mem mem,
		      struct virtq_chain *c, char *err, size_t errlen)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	unsigned n = c->nr_read + c->nr_write;
	void *p;

	if (!writable && c->nr_write)
		return fail(err, errlen, "a device-readable buffer follows a "
			    "device-writable one");
	/* The spec caps a chain at 2^32 bytes; it also keeps every length
	 * we hand on (used len, block request sizes) within 32 bits. */
	if (c->read_len + c->write_len + d->len > UINT32_MAX)
		return fail(err, errlen, "chain longer than 4 GiB in total");
	if (!d->len)
		return 0;
	p = mem.map(mem.ctx, d->addr, d->len);
	if (!p)
		return fail(err, errlen, "buffer 0x%llx+0x%x is not guest RAM",
			    (unsigned long long)d->addr, d->len);
	if (n >= c->max)
		return fail(err, errlen, "more than %u buffers in a chain",
			    c->max);
	c->iov[n].iov_base = p;
	c->iov[n].iov_len = d->len;
	if (writable) {
		c->nr_write++;
		c->write_len += d->len;
	} else {
		c->nr_read++;
		c->read_len += d->len;
	}
	return 0;
}

int virtq__walk_chain(const uint8_t *desc, uint16_t size, bool indirect,
		      struct virtio_mem mem, uint16_t head,
		      struct virtq_chain *c, char *err, size_t errlen)
{
	const uint8_t *table = desc;
	unsigned table_size = size, count = 0, idx = head;
	bool in_table = false;
	struct vdesc d;

	c->head = head;
	c->nr_read = c->nr_write = 0;
	c->read_len = c->write_len = 0;
	if (head >= size)
		return fail(err, errlen, "head %u out of range (size %u)", head,
			    size);
	for (;;) {
		/* A chain visits each descriptor of its table at most once:
		 * more steps than entries means a loop. */
		if (++count > table_size)
			return fail(err, errlen, "%s chain longer than its %u "
				    "descriptors (a loop)",
				    in_table ? "indirect" : "descriptor",
				    table_size);
		read_desc(table + (size_t)idx * VIRTQ_DESC_SIZE, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (!indirect)
				return fail(err, errlen, "indirect descriptor "
					    "without VIRTIO_F_INDIRECT_DESC");
			if (in_table)
				return fail(err, errlen, "indirect descriptor "
					    "inside an indirect table");
			if (d.flags & VIRTQ_DESC_F_NEXT)
				return fail(err, errlen, "indirect descriptor "
					    "with NEXT");
			if (!d.len || d.len % VIRTQ_DESC_SIZE ||
			    d.len / VIRTQ_DESC_SIZE > VIRTQ_MAX_SIZE)
				return fail(err, errlen, "indirect table of "
					    "bad length %u", d.len);
			table = mem.map(mem.ctx, d.addr, d.len);
			if (!table)
				return fail(err, errlen, "indirect table "
					    "0x%llx+0x%x is not guest RAM",
					    (unsigned long long)d.addr, d.len);
			table_size = d.len / VIRTQ_DESC_SIZE;
			in_table = true;
			idx = 0;
			count = 0;
			continue;
		}
		if (add_buffer(&d, mem, c, err, errlen))
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= table_size)
			return fail(err, errlen, "next %u out of range (%u "
				    "descriptors)", d.next, table_size);
		idx = d.next;
	}
}
