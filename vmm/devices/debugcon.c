#include "vmm/devices/debugcon.h"

#include <errno.h>
#include <string.h>
#include <unistd.h>

void debugcon__init(struct debugcon *d, int out_fd, debugcon_line_fn on_line,
		    void *ctx)
{
	memset(d, 0, sizeof(*d));
	pthread_mutex_init(&d->lock, NULL);
	d->out_fd = out_fd;
	d->on_line = on_line;
	d->ctx = ctx;
}

void debugcon__destroy(struct debugcon *d)
{
	pthread_mutex_destroy(&d->lock);
}

static void write_all(int fd, const char *p, size_t n)
{
	while (n) {
		ssize_t w = write(fd, p, n);

		if (w < 0 && errno == EINTR)
			continue;
		if (w <= 0)
			return; /* a closed terminal must not stop the guest */
		p += w;
		n -= (size_t)w;
	}
}

/* d->lock held. */
static void end_line(struct debugcon *d)
{
	d->line[d->len] = '\0';
	if (d->out_fd >= 0) {
		d->line[d->len] = '\n';
		write_all(d->out_fd, d->line, d->len + 1);
		d->line[d->len] = '\0';
	}
	if (d->on_line)
		d->on_line(d->ctx, d->line);
	d->len = 0;
}

/* d->lock held. */
static void put_byte(struct debugcon *d, uint8_t c)
{
	d->bytes++;
	if (c == '\n') {
		end_line(d);
		return;
	}
	if (c == '\r')
		return;
	/* The guest's bytes reach a terminal: no escape sequences. */
	if ((c < 0x20 && c != '\t') || c >= 0x7F)
		c = '.';
	d->line[d->len++] = (char)c;
	if (d->len == DEBUGCON_LINE_MAX)
		end_line(d);
}

void debugcon__io(void *opaque, uint64_t offset, uint8_t *data, uint32_t len,
		  bool is_write)
{
	struct debugcon *d = opaque;

	if (!is_write) {
		memset(data, 0, len);
		if (offset == 0 && len)
			data[0] = DEBUGCON_READBACK;
		return;
	}
	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < len && i < 8; i++)
		put_byte(d, data[i]);
	pthread_mutex_unlock(&d->lock);
}

void debugcon__flush(struct debugcon *d)
{
	pthread_mutex_lock(&d->lock);
	if (d->len)
		end_line(d);
	pthread_mutex_unlock(&d->lock);
}
