/* The NBD engine: libnbd's asynchronous calls on one connection, driven by
 * a loop thread that polls the socket (nbd_aio_get_fd/direction) and an
 * eventfd that submitters poke after queueing a command.  A request becomes
 * one NBD command per iovec segment (and per max-size chunk); libnbd calls
 * our completion callback with its handle lock held, so finished requests
 * are only listed there, and their done() runs afterwards on the loop
 * thread, free to submit again. */
#include <errno.h>
#include <libnbd.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

/* QEMU's NBD server takes at most 32 MiB per command; trim and zero carry
 * a 32-bit length. */
#define NBD_MAX_RW (32u << 20)
#define NBD_MAX_TRIM (1u << 30)

struct nbdc {
	struct nbd_handle *h;
	int efd;
	pthread_t thread;
	bool thread_started;
	pthread_mutex_t lock;   /* finished, stop */
	struct nbd_op *finished;
	bool stop;
	uint64_t max_rw;
	bool can_fua, can_zero, can_trim, can_flush;
	uint8_t *zero_buf;      /* only if the server cannot zero */
};

struct nbd_op {
	struct bio b;
	struct nbdc *c;
	atomic_int refs;        /* commands in flight, +1 while submitting */
	atomic_int result;      /* the first error */
	bool flush_after;       /* durable write on a server without FUA */
	struct nbd_op *next;
};

static void wake(struct nbdc *c)
{
	uint64_t one = 1;

	if (write(c->efd, &one, sizeof(one)) < 0) {
		/* Only EAGAIN (counter full) is possible: already awake. */
	}
}

static void put(struct nbd_op *op)
{
	struct nbdc *c = op->c;

	if (atomic_fetch_sub(&op->refs, 1) != 1)
		return;
	pthread_mutex_lock(&c->lock);
	op->next = c->finished;
	c->finished = op;
	pthread_mutex_unlock(&c->lock);
	wake(c);
}

static int cmd_done(void *user_data, int *error)
{
	struct nbd_op *op = user_data;
	int expected = 0;

	if (*error)
		atomic_compare_exchange_strong(&op->result, &expected,
					       -*error);
	put(op);
	return 1;               /* retire the command */
}

/* A command libnbd would not queue: out of memory, or (whatever errno
 * libnbd chose) a connection that is gone, which the guest sees as an
 * I/O error. */
static int fail_issue(struct nbd_op *op)
{
	int e = nbd_get_errno() == ENOMEM ? -ENOMEM : -EIO;
	int expected = 0;

	atomic_fetch_sub(&op->refs, 1);
	atomic_compare_exchange_strong(&op->result, &expected, e);
	return -1;
}

static int issue_rw(struct nbdc *c, struct nbd_op *op, void *buf,
		    uint64_t len, uint64_t off, bool write_cmd, uint32_t flags)
{
	nbd_completion_callback cb = { .callback = cmd_done, .user_data = op };

	while (len) {
		size_t n = len < c->max_rw ? (size_t)len : (size_t)c->max_rw;
		int64_t r;

		atomic_fetch_add(&op->refs, 1);
		if (write_cmd)
			r = nbd_aio_pwrite(c->h, buf, n, off, cb, flags);
		else
			r = nbd_aio_pread(c->h, buf, n, off, cb, 0);
		if (r < 0)
			return fail_issue(op);
		buf = (char *)buf + n;
		off += n;
		len -= n;
	}
	return 0;
}

static int issue_zero(struct nbdc *c, struct nbd_op *op, bool trim,
		      uint32_t flags)
{
	nbd_completion_callback cb = { .callback = cmd_done, .user_data = op };
	uint64_t off = op->b.off, len = op->b.len;

	if (!trim && !c->can_zero) {
		for (; len; ) {
			uint64_t n = len < BLOCK_ZERO_BUF ? len : BLOCK_ZERO_BUF;

			if (issue_rw(c, op, c->zero_buf, n, off, true, flags))
				return -1;
			off += n;
			len -= n;
		}
		return 0;
	}
	while (len) {
		uint64_t n = len < NBD_MAX_TRIM ? len : NBD_MAX_TRIM;
		int64_t r;

		atomic_fetch_add(&op->refs, 1);
		if (trim)
			r = nbd_aio_trim(c->h, n, off, cb, 0);
		else
			r = nbd_aio_zero(c->h, n, off, cb, flags);
		if (r < 0)
			return fail_issue(op);
		off += n;
		len -= n;
	}
	return 0;
}

static int issue_flush(struct nbdc *c, struct nbd_op *op)
{
	nbd_completion_callback cb = { .callback = cmd_done, .user_data = op };

	atomic_fetch_add(&op->refs, 1);
	return nbd_aio_flush(c->h, cb, 0) < 0 ? fail_issue(op) : 0;
}

/* Queues every command of op; on failure, those already queued still
 * complete and op->result holds the error. */
static int issue(struct nbdc *c, struct nbd_op *op)
{
	const struct bio *b = &op->b;
	uint32_t fua = b->fua && c->can_fua ? LIBNBD_CMD_FLAG_FUA : 0;
	uint64_t off = b->off;

	op->flush_after = b->fua && !c->can_fua && c->can_flush;
	switch (b->op) {
	case BIO_NOP:
		return 0;
	case BIO_READ:
	case BIO_WRITE:
		for (int i = 0; i < b->req->iovcnt; i++) {
			const struct iovec *v = &b->req->iov[i];

			if (issue_rw(c, op, v->iov_base, v->iov_len, off,
				     b->op == BIO_WRITE, fua))
				return -1;
			off += v->iov_len;
		}
		return 0;
	case BIO_FLUSH:
		return c->can_flush ? issue_flush(c, op) : 0;
	case BIO_DISCARD:
		return c->can_trim ? issue_zero(c, op, true, 0) : 0;
	case BIO_ZERO:
		return issue_zero(c, op, false, fua |
				  (b->unmap ? 0 : LIBNBD_CMD_FLAG_NO_HOLE));
	}
	return -1;
}

static int nbd_submit(void *eng, const struct bio *b)
{
	struct nbdc *c = eng;
	struct nbd_op *op = calloc(1, sizeof(*op));

	if (!op)
		return -ENOMEM;
	op->b = *b;
	op->c = c;
	atomic_init(&op->refs, 1);
	atomic_init(&op->result, 0);
	if (issue(c, op) && atomic_load(&op->refs) == 1) {
		int r = atomic_load(&op->result);

		free(op);
		return r ? r : -EIO;
	}
	wake(c);
	put(op);                /* done() runs on the loop thread */
	return 0;
}

/* On the loop thread, outside libnbd's lock. */
static void run_finished(struct nbdc *c)
{
	struct nbd_op *list, *op;

	pthread_mutex_lock(&c->lock);
	op = c->finished;
	c->finished = NULL;
	pthread_mutex_unlock(&c->lock);
	/* Pushed newest first: complete them in the order they finished. */
	for (list = NULL; op; ) {
		struct nbd_op *next = op->next;

		op->next = list;
		list = op;
		op = next;
	}
	while ((op = list)) {
		list = op->next;
		if (op->flush_after && !atomic_load(&op->result)) {
			op->flush_after = false;
			atomic_store(&op->refs, 1);
			issue_flush(c, op);
			put(op);
			continue;
		}
		block__complete(&op->b, atomic_load(&op->result));
		free(op);
	}
}

static void *loop_thread(void *arg)
{
	struct nbdc *c = arg;

	for (;;) {
		struct pollfd pfd[2] = { { .fd = c->efd, .events = POLLIN } };
		int fd, n = 1;
		unsigned dir;
		bool stop;

		run_finished(c);
		pthread_mutex_lock(&c->lock);
		stop = c->stop;
		pthread_mutex_unlock(&c->lock);
		if (stop)
			return NULL;
		fd = nbd_aio_get_fd(c->h);
		dir = nbd_aio_get_direction(c->h);
		if (fd >= 0) {
			pfd[1].fd = fd;
			pfd[1].events = (dir & LIBNBD_AIO_DIRECTION_READ ?
					 POLLIN : 0) |
					(dir & LIBNBD_AIO_DIRECTION_WRITE ?
					 POLLOUT : 0);
			n = 2;
		}
		if (poll(pfd, (nfds_t)n, -1) < 0)
			continue;
		if (pfd[0].revents & POLLIN) {
			uint64_t v;

			if (read(c->efd, &v, sizeof(v)) < 0) {
				/* EAGAIN: another wake-up got there first. */
			}
		}
		if (n == 2 && pfd[1].revents & (POLLIN | POLLHUP | POLLERR))
			nbd_aio_notify_read(c->h);
		else if (n == 2 && pfd[1].revents & POLLOUT)
			nbd_aio_notify_write(c->h);
	}
}

static void nbd_close_engine(void *eng)
{
	struct nbdc *c = eng;

	if (c->thread_started) {
		pthread_mutex_lock(&c->lock);
		c->stop = true;
		pthread_mutex_unlock(&c->lock);
		wake(c);
		pthread_join(c->thread, NULL);
	}
	/* Polite but bounded: NBD_CMD_DISC, no wait for the server. */
	if (nbd_aio_is_ready(c->h))
		nbd_aio_disconnect(c->h, 0);
	nbd_close(c->h);
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c->zero_buf);
	free(c);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Runs the handshake to completion, or gives up at the deadline. */
static int connect_wait(struct nbd_handle *h, unsigned timeout_ms, char *err,
			size_t errlen)
{
	long long deadline = now_ms() + timeout_ms;

	while (!nbd_aio_is_ready(h)) {
		struct pollfd pfd = { .fd = nbd_aio_get_fd(h) };
		unsigned dir = nbd_aio_get_direction(h);
		long long left = deadline - now_ms();
		int r;

		if (nbd_aio_is_dead(h) || nbd_aio_is_closed(h) || pfd.fd < 0) {
			errf(err, errlen, "%s", nbd_get_error());
			return -1;
		}
		if (left <= 0) {
			errf(err, errlen, "no NBD handshake within %u ms",
			     timeout_ms);
			return -1;
		}
		pfd.events = (dir & LIBNBD_AIO_DIRECTION_READ ? POLLIN : 0) |
			     (dir & LIBNBD_AIO_DIRECTION_WRITE ? POLLOUT : 0);
		r = poll(&pfd, 1, (int)(left > 100 ? 100 : left));
		if (r < 0 && errno != EINTR) {
			errf(err, errlen, "poll: %s", strerror(errno));
			return -1;
		}
		if (r > 0 && pfd.revents & (POLLIN | POLLHUP | POLLERR))
			r = nbd_aio_notify_read(h);
		else if (r > 0 && pfd.revents & POLLOUT)
			r = nbd_aio_notify_write(h);
		else
			r = 0;
		if (r < 0) {
			errf(err, errlen, "%s", nbd_get_error());
			return -1;
		}
	}
	return 0;
}

static int query(struct nbdc *c, struct block_caps *caps, char *err,
		 size_t errlen)
{
	int64_t size = nbd_get_size(c->h);
	int64_t min = nbd_get_block_size(c->h, LIBNBD_SIZE_MINIMUM);
	int64_t max = nbd_get_block_size(c->h, LIBNBD_SIZE_MAXIMUM);

	if (size < 0) {
		errf(err, errlen, "%s", nbd_get_error());
		return -1;
	}
	caps->size = (uint64_t)size;
	caps->logical_block_size = min > 512 && min <= 65536 ?
				   (uint32_t)min : 512;
	caps->read_only = nbd_is_read_only(c->h) == 1;
	c->can_flush = nbd_can_flush(c->h) == 1;
	c->can_fua = nbd_can_fua(c->h) == 1;
	c->can_trim = nbd_can_trim(c->h) == 1;
	c->can_zero = nbd_can_zero(c->h) == 1;
	c->max_rw = max > 0 && max < NBD_MAX_RW ? (uint64_t)max : NBD_MAX_RW;
	caps->can_discard = c->can_trim;
	caps->can_zero = true;  /* written from a zero buffer if need be */
	if (!c->can_zero) {
		c->zero_buf = calloc(1, BLOCK_ZERO_BUF);
		if (!c->zero_buf) {
			errf(err, errlen, "out of memory");
			return -1;
		}
	}
	return 0;
}

void *nbdc__open(const char *uri, const char *socket, const char *export,
		 unsigned timeout_ms, bool read_only,
		 struct block_caps *caps, char *err, size_t errlen)
{
	struct nbdc *c = calloc(1, sizeof(*c));
	int r;

	if (!c) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	pthread_mutex_init(&c->lock, NULL);
	c->efd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	c->h = nbd_create();
	if (c->efd < 0 || !c->h) {
		errf(err, errlen, "cannot create an NBD handle: %s",
		     c->h ? strerror(errno) : nbd_get_error());
		goto fail;
	}
	/* Guest buffers need no pre-zeroing; alignment is a hint to QEMU's
	 * server, which pads misaligned requests itself. */
	nbd_set_pread_initialize(c->h, false);
	nbd_set_strict_mode(c->h, nbd_get_strict_mode(c->h) &
			    ~(uint32_t)LIBNBD_STRICT_ALIGN);
	if (export && nbd_set_export_name(c->h, export) < 0) {
		errf(err, errlen, "%s", nbd_get_error());
		goto fail;
	}
	r = uri ? nbd_aio_connect_uri(c->h, uri) :
		  nbd_aio_connect_unix(c->h, socket);
	if (r < 0) {
		errf(err, errlen, "%s", nbd_get_error());
		goto fail;
	}
	if (connect_wait(c->h, timeout_ms, err, errlen) ||
	    query(c, caps, err, errlen))
		goto fail;
	if (read_only)
		caps->read_only = true;
	r = pthread_create(&c->thread, NULL, loop_thread, c);
	if (r) {
		errf(err, errlen, "cannot start a thread: %s", strerror(r));
		goto fail;
	}
	c->thread_started = true;
	return c;
fail:
	if (c->h)
		nbd_close(c->h);
	if (c->efd >= 0)
		close(c->efd);
	pthread_mutex_destroy(&c->lock);
	free(c->zero_buf);
	free(c);
	return NULL;
}

const struct block_engine_ops nbd_engine_ops = {
	.name = "nbd",
	.submit = nbd_submit,
	.close = nbd_close_engine,
};
