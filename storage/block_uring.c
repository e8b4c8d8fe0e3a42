/* The io_uring engine for raw images: submitters fill SQEs under a lock,
 * one completion thread reaps CQEs and moves each request through its
 * stages (short transfers resumed, zeroing falling back from a hole to an
 * unwritten extent to plain writes, a final fdatasync when the write cache
 * is off).  At most RING_CAP requests hold an SQE at a time, so the CQ ring
 * (twice as large) never overflows; the rest wait in a FIFO. */
#include <errno.h>
#include <fcntl.h>
#include <liburing.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

#define RING_CAP 128

enum stage {
	ST_MAIN,        /* the operation itself */
	ST_ZERO_RANGE,  /* BIO_ZERO after a refused punch */
	ST_ZERO_WRITE,  /* BIO_ZERO written out from the zero buffer */
	ST_SYNC,        /* fdatasync for a durable zeroing */
};

struct uring_op {
	struct bio b;
	enum stage stage;
	uint64_t done;          /* bytes moved (READ/WRITE/ZERO_WRITE) */
	const struct iovec *iov;
	int iovcnt;
	struct iovec *rest;     /* the remainder after a short transfer */
	struct iovec zero_iov;
	struct uring_op *next;  /* waiting for a slot */
};

struct uring {
	struct raw_file *f;
	struct io_uring ring;
	pthread_mutex_t lock;   /* the SQ ring, held, waiting */
	unsigned held;          /* requests holding an SQE or a CQE */
	struct uring_op *wait_head, *wait_tail;
	pthread_t thread;
	char ignore;            /* user_data of SQEs nobody waits for */
};

static void prep(struct uring *u, struct uring_op *op, struct io_uring_sqe *sqe)
{
	struct raw_file *f = u->f;
	const struct bio *b = &op->b;
	uint64_t left = b->len - op->done;

	switch (op->stage) {
	case ST_MAIN:
		break;
	case ST_ZERO_RANGE:
		io_uring_prep_fallocate(sqe, f->fd, FALLOC_FL_ZERO_RANGE |
					FALLOC_FL_KEEP_SIZE, (off_t)b->off,
					(off_t)b->len);
		return;
	case ST_ZERO_WRITE:
		op->zero_iov.iov_base = f->zero_buf;
		op->zero_iov.iov_len = left < BLOCK_ZERO_BUF ?
				       (size_t)left : BLOCK_ZERO_BUF;
		io_uring_prep_writev(sqe, raw__pick_fd(f, &op->zero_iov, 1,
						       b->off + op->done),
				     &op->zero_iov, 1, b->off + op->done);
		return;
	case ST_SYNC:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		return;
	}
	switch (b->op) {
	case BIO_NOP:
		io_uring_prep_nop(sqe);
		break;
	case BIO_READ:
	case BIO_WRITE:
		if (b->op == BIO_READ)
			io_uring_prep_readv(sqe, raw__pick_fd(f, op->iov,
					    op->iovcnt, b->off + op->done),
					    op->iov, (unsigned)op->iovcnt,
					    b->off + op->done);
		else
			io_uring_prep_writev(sqe, raw__pick_fd(f, op->iov,
					     op->iovcnt, b->off + op->done),
					     op->iov, (unsigned)op->iovcnt,
					     b->off + op->done);
		if (b->op == BIO_WRITE && b->fua)
			sqe->rw_flags = RWF_DSYNC;
		break;
	case BIO_FLUSH:
		io_uring_prep_fsync(sqe, f->fd, IORING_FSYNC_DATASYNC);
		break;
	case BIO_DISCARD:
	case BIO_ZERO:
		io_uring_prep_fallocate(sqe, f->fd, FALLOC_FL_PUNCH_HOLE |
					FALLOC_FL_KEEP_SIZE, (off_t)b->off,
					(off_t)b->len);
		break;
	}
}

static bool transient(int r)
{
	return r == -EINTR || r == -EAGAIN || r == -EBUSY || r == -ENOMEM;
}

/* Called with u->lock held.  The slot accounting is the caller's. */
static int queue(struct uring *u, struct uring_op *op)
{
	struct io_uring_sqe *sqe = io_uring_get_sqe(&u->ring);
	const struct timespec pause = { 0, 1000000 };
	int r, tries = 0;

	if (!sqe)
		return -EBUSY;  /* cannot happen: held <= RING_CAP */
	prep(u, op, sqe);
	io_uring_sqe_set_data(sqe, op);
	/* Bounded: the completion thread may be waiting for this lock. */
	while (transient(r = io_uring_submit(&u->ring)) && ++tries < 1000)
		nanosleep(&pause, NULL);
	if (r >= 0)
		return 0;
	/* The kernel has not taken the SQE and will with the next submit:
	 * make it one whose completion is ignored. */
	io_uring_prep_nop(sqe);
	io_uring_sqe_set_data(sqe, &u->ignore);
	return r;
}

static void requeue(struct uring *u, struct uring_op *op);

static void free_op(struct uring_op *op)
{
	free(op->rest);
	free(op);
}

static void finish(struct uring *u, struct uring_op *op, int result)
{
	struct uring_op *next;

	pthread_mutex_lock(&u->lock);
	u->held--;
	while ((next = u->wait_head)) {
		u->wait_head = next->next;
		if (!u->wait_head)
			u->wait_tail = NULL;
		u->held++;
		if (!queue(u, next))
			break;
		/* Not queued: fail it outside the lock, like this one. */
		u->held--;
		pthread_mutex_unlock(&u->lock);
		block__complete(&next->b, -EIO);
		free_op(next);
		pthread_mutex_lock(&u->lock);
	}
	pthread_mutex_unlock(&u->lock);
	block__complete(&op->b, result);
	free_op(op);
}

/* Completion-thread side: the next SQE of a request already holding a
 * slot. */
static void requeue(struct uring *u, struct uring_op *op)
{
	int r;

	pthread_mutex_lock(&u->lock);
	r = queue(u, op);
	pthread_mutex_unlock(&u->lock);
	if (r)
		finish(u, op, r);
}

static bool unsupported(int res)
{
	return res == -EOPNOTSUPP || res == -ENOSYS || res == -ENOTTY;
}

/* A READ or WRITE moved res bytes (or failed). */
static void rw_done(struct uring *u, struct uring_op *op, int res)
{
	const struct block_req *req = op->b.req;

	if (res == -EINTR || res == -EAGAIN) {
		requeue(u, op);
	} else if (res < 0) {
		finish(u, op, res);
	} else if (res == 0) {
		if (op->b.op == BIO_READ)
			raw__iov_zero(req->iov, req->iovcnt, op->done);
		finish(u, op, op->b.op == BIO_WRITE ? -EIO : 0);
	} else if ((op->done += (uint64_t)res) >= op->b.len) {
		finish(u, op, 0);
	} else {
		/* Short: go on with what is left. */
		if (!op->rest)
			op->rest = calloc((size_t)req->iovcnt,
					  sizeof(*op->rest));
		if (!op->rest) {
			finish(u, op, -ENOMEM);
			return;
		}
		op->iovcnt = raw__iov_skip(req->iov, req->iovcnt, op->done,
					   op->rest);
		op->iov = op->rest;
		requeue(u, op);
	}
}

/* The zeros are there; make them durable if the write cache is off. */
static void zeroed(struct uring *u, struct uring_op *op)
{
	if (op->b.fua) {
		op->stage = ST_SYNC;
		requeue(u, op);
	} else {
		finish(u, op, 0);
	}
}

/* Moves a zeroing to its next, more expensive, means. */
static void zero_fallback(struct uring *u, struct uring_op *op, int res,
			  enum stage next)
{
	if (res == 0) {
		zeroed(u, op);
	} else if (unsupported(res) || res == -EINVAL) {
		op->stage = next;
		op->done = 0;
		requeue(u, op);
	} else {
		finish(u, op, res);
	}
}

static void completed(struct uring *u, struct uring_op *op, int res)
{
	switch (op->stage) {
	case ST_ZERO_RANGE:
		zero_fallback(u, op, res, ST_ZERO_WRITE);
		return;
	case ST_ZERO_WRITE:
		if (res <= 0)
			finish(u, op, res == 0 ? -EIO : res);
		else if ((op->done += (uint64_t)res) < op->b.len)
			requeue(u, op);
		else
			zeroed(u, op);
		return;
	case ST_SYNC:
		finish(u, op, res < 0 ? res : 0);
		return;
	case ST_MAIN:
		break;
	}
	switch (op->b.op) {
	case BIO_READ:
	case BIO_WRITE:
		rw_done(u, op, res);
		break;
	case BIO_DISCARD:
		/* Advisory: no holes here just keeps the data. */
		finish(u, op, unsupported(res) ? 0 : res);
		break;
	case BIO_ZERO:
		zero_fallback(u, op, res, ST_ZERO_RANGE);
		break;
	case BIO_NOP:
	case BIO_FLUSH:
		finish(u, op, res < 0 ? res : 0);
		break;
	}
}

static void *completion_thread(void *arg)
{
	struct uring *u = arg;

	for (;;) {
		struct io_uring_cqe *cqe;
		struct uring_op *op;
		int r = io_uring_wait_cqe(&u->ring, &cqe), res;

		if (r == -EINTR || r == -EAGAIN)
			continue;
		if (r < 0) {
			fprintf(stderr, "krg-vmm: io_uring: %s\n",
				strerror(-r));
			break;
		}
		op = io_uring_cqe_get_data(cqe);
		res = cqe->res;
		io_uring_cqe_seen(&u->ring, cqe);
		if (!op)
			break;          /* close() */
		if ((void *)op != &u->ignore)
			completed(u, op, res);
	}
	return NULL;
}

static int uring_submit(void *eng, const struct bio *b)
{
	struct uring *u = eng;
	struct uring_op *op = calloc(1, sizeof(*op));
	int r = 0;

	if (!op)
		return -ENOMEM;
	op->b = *b;
	op->iov = b->req->iov;
	op->iovcnt = b->req->iovcnt;
	/* Zeroing tries a hole only where the drive allows unmapping. */
	if (b->op == BIO_ZERO && !(b->unmap && u->f->punch_ok))
		op->stage = ST_ZERO_RANGE;
	if (b->op == BIO_DISCARD && !u->f->punch_ok)
		op->b.op = BIO_NOP;
	pthread_mutex_lock(&u->lock);
	if (u->held >= RING_CAP) {
		if (u->wait_tail)
			u->wait_tail->next = op;
		else
			u->wait_head = op;
		u->wait_tail = op;
	} else {
		u->held++;
		r = queue(u, op);
		if (r)
			u->held--;
	}
	pthread_mutex_unlock(&u->lock);
	if (r)
		free_op(op);
	return r;
}

static void uring_close(void *eng)
{
	struct uring *u = eng;
	struct io_uring_sqe *sqe;

	pthread_mutex_lock(&u->lock);
	sqe = io_uring_get_sqe(&u->ring);
	if (sqe) {
		io_uring_prep_nop(sqe);
		io_uring_sqe_set_data(sqe, NULL);
		io_uring_submit(&u->ring);
	}
	pthread_mutex_unlock(&u->lock);
	pthread_join(u->thread, NULL);
	io_uring_queue_exit(&u->ring);
	pthread_mutex_destroy(&u->lock);
	free(u);
}

static const int needed_ops[] = {
	IORING_OP_NOP, IORING_OP_READV, IORING_OP_WRITEV, IORING_OP_FSYNC,
	IORING_OP_FALLOCATE,
};

int uring__open(struct raw_file *f, void **eng, char *err, size_t errlen)
{
	struct io_uring_probe *probe;
	struct uring *u = calloc(1, sizeof(*u));
	int r;

	if (!u) {
		errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	u->f = f;
	r = io_uring_queue_init(RING_CAP, &u->ring, 0);
	if (r < 0) {
		errf(err, errlen, "io_uring unavailable: %s", strerror(-r));
		free(u);
		return r;
	}
	probe = io_uring_get_probe_ring(&u->ring);
	for (size_t i = 0; i < sizeof(needed_ops) / sizeof(needed_ops[0]);
	     i++) {
		if (!probe || !io_uring_opcode_supported(probe, needed_ops[i])) {
			errf(err, errlen, "io_uring lacks an operation "
			     "(opcode %d)", needed_ops[i]);
			r = -EOPNOTSUPP;
			break;
		}
	}
	if (probe)
		io_uring_free_probe(probe);
	pthread_mutex_init(&u->lock, NULL);
	if (!r) {
		r = -pthread_create(&u->thread, NULL, completion_thread, u);
		if (r)
			errf(err, errlen, "cannot start a thread: %s",
			     strerror(-r));
	}
	if (r) {
		pthread_mutex_destroy(&u->lock);
		io_uring_queue_exit(&u->ring);
		free(u);
		return r;
	}
	*eng = u;
	return 0;
}

const struct block_engine_ops uring_engine_ops = {
	.name = "io_uring",
	.submit = uring_submit,
	.close = uring_close,
};
