/* I/O forwarding: the wire codec (round trips, malformed variants), the
 * client's matching of responses, the server's checks, and a client and a
 * server wired through two queues with a receive thread each (standing in
 * for two nodes and their transport), a real io_bus and a small device. */
#include <check.h>
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/bytes.h"
#include "vmm/io_forward.h"

#define NV 4
#define SERVER 0
#define CLIENT 1
#define REGS 0x100
#define FIFO 0x110
#define RAM 0xD0000000ull
#define HANG 0xD0001000ull

static const uint8_t placement[NV] = { 0, 1, 1, 1 };

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

/* ---- the device ---- */

struct dev {
	pthread_mutex_t lock;
	uint8_t regs[8];
	uint8_t fifo[16384];
	size_t fifo_head, fifo_len;
	uint8_t ram[4096];
	pthread_cond_t cond;
	bool hang_release;
	atomic_int hanging;
};

static void regs_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (off + len <= sizeof(d->regs)) {
		if (is_write)
			memcpy(d->regs + off, data, len);
		else
			memcpy(data, d->regs + off, len);
	}
	pthread_mutex_unlock(&d->lock);
}

/* A byte FIFO: writes append, reads take from the front. */
static void fifo_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	for (uint32_t i = 0; i < len; i++) {
		if (is_write && d->fifo_len < sizeof(d->fifo)) {
			d->fifo[(d->fifo_head + d->fifo_len++) %
				sizeof(d->fifo)] = data[i];
		} else if (!is_write) {
			data[i] = d->fifo_len ? d->fifo[d->fifo_head] : 0;
			if (d->fifo_len) {
				d->fifo_head = (d->fifo_head + 1) %
					       sizeof(d->fifo);
				d->fifo_len--;
			}
		}
	}
	pthread_mutex_unlock(&d->lock);
}

static void ram_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		   bool is_write)
{
	struct dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	if (off + len <= sizeof(d->ram)) {
		if (is_write)
			memcpy(d->ram + off, data, len);
		else
			memcpy(data, d->ram + off, len);
	}
	pthread_mutex_unlock(&d->lock);
}

/* A register that blocks until the test releases it (a slow device). */
static void hang_io(void *opaque, uint64_t off, uint8_t *data, uint32_t len,
		    bool is_write)
{
	struct dev *d = opaque;

	pthread_mutex_lock(&d->lock);
	atomic_fetch_add(&d->hanging, 1);
	while (!d->hang_release)
		pthread_cond_wait(&d->cond, &d->lock);
	if (!is_write)
		memset(data, 0x5A, len);
	pthread_mutex_unlock(&d->lock);
}

static void release_hang(struct dev *d)
{
	pthread_mutex_lock(&d->lock);
	d->hang_release = true;
	pthread_cond_broadcast(&d->cond);
	pthread_mutex_unlock(&d->lock);
}

/* ---- a one-way link with its receive thread ---- */

struct lmsg {
	unsigned from, type;
	size_t len;
	uint8_t *buf;
};

struct link {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct lmsg q[64];
	int head, n;
	bool stop;
	atomic_bool drop;
	pthread_t th;
	int (*handle)(void *obj, unsigned sender, unsigned type,
		      const void *p, size_t len);
	void *obj;
};

static int link_push(struct link *l, unsigned from, unsigned type,
		     const void *buf, size_t len)
{
	struct lmsg *m;

	if (atomic_load(&l->drop))
		return 0; /* lost in a dead peer */
	pthread_mutex_lock(&l->lock);
	ck_assert_int_lt(l->n, 64);
	m = &l->q[(l->head + l->n) % 64];
	m->from = from;
	m->type = type;
	m->len = len;
	m->buf = malloc(len ? len : 1);
	memcpy(m->buf, buf, len);
	l->n++;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	return 0;
}

static void *link_thread(void *arg)
{
	struct link *l = arg;

	pthread_mutex_lock(&l->lock);
	for (;;) {
		struct lmsg m;

		while (!l->n && !l->stop)
			pthread_cond_wait(&l->cond, &l->lock);
		if (!l->n)
			break;
		m = l->q[l->head];
		l->head = (l->head + 1) % 64;
		l->n--;
		pthread_mutex_unlock(&l->lock);
		l->handle(l->obj, m.from, m.type, m.buf, m.len);
		free(m.buf);
		pthread_mutex_lock(&l->lock);
	}
	pthread_mutex_unlock(&l->lock);
	return NULL;
}

static void link_start(struct link *l)
{
	pthread_mutex_init(&l->lock, NULL);
	pthread_cond_init(&l->cond, NULL);
	pthread_create(&l->th, NULL, link_thread, l);
}

static void link_stop(struct link *l)
{
	pthread_mutex_lock(&l->lock);
	l->stop = true;
	pthread_cond_signal(&l->cond);
	pthread_mutex_unlock(&l->lock);
	pthread_join(l->th, NULL);
	pthread_cond_destroy(&l->cond);
	pthread_mutex_destroy(&l->lock);
}

/* ---- two nodes ---- */

struct world {
	struct dev dev;
	struct io_bus *bus;
	struct io_forward_server *srv;
	struct io_forward_client *cli;
	struct link to_srv, to_cli;
	atomic_int errors[2];
};

static int cli_send(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len)
{
	struct world *w = ctx;

	ck_assert_uint_eq(node, SERVER);
	return link_push(&w->to_srv, CLIENT, type, buf, len);
}

static int srv_send(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len)
{
	struct world *w = ctx;

	ck_assert_uint_eq(node, CLIENT);
	return link_push(&w->to_cli, SERVER, type, buf, len);
}

static void cli_error(void *ctx, unsigned node, const char *what)
{
	struct world *w = ctx;

	atomic_fetch_add(&w->errors[CLIENT], 1);
}

static void srv_error(void *ctx, unsigned node, const char *what)
{
	struct world *w = ctx;

	atomic_fetch_add(&w->errors[SERVER], 1);
}

static int h_srv(void *obj, unsigned sender, unsigned type, const void *p,
		 size_t len)
{
	return io_forward__server_handle(obj, sender, type, p, len);
}

static int h_cli(void *obj, unsigned sender, unsigned type, const void *p,
		 size_t len)
{
	return io_forward__client_handle(obj, sender, type, p, len);
}

static struct world *world_new(unsigned timeout_ms)
{
	struct world *w = calloc(1, sizeof(*w));
	struct io_forward_server_config sc = {
		.nr_vcpus = NV, .self = SERVER, .vcpu_node = placement,
		.ops = { .ctx = w, .send = srv_send, .error = srv_error },
	};
	struct io_forward_client_config cc = {
		.nr_vcpus = NV, .server_node = SERVER, .timeout_ms = timeout_ms,
		.ops = { .ctx = w, .send = cli_send, .error = cli_error },
	};

	pthread_mutex_init(&w->dev.lock, NULL);
	pthread_cond_init(&w->dev.cond, NULL);
	w->bus = io_bus__new();
	ck_assert_int_eq(io_bus__register(w->bus, IO_SPACE_PIO, REGS, 8,
					  regs_io, &w->dev, "regs"), 0);
	ck_assert_int_eq(io_bus__register(w->bus, IO_SPACE_PIO, FIFO, 4,
					  fifo_io, &w->dev, "fifo"), 0);
	ck_assert_int_eq(io_bus__register(w->bus, IO_SPACE_MMIO, RAM, 4096,
					  ram_io, &w->dev, "ram"), 0);
	ck_assert_int_eq(io_bus__register(w->bus, IO_SPACE_MMIO, HANG, 8,
					  hang_io, &w->dev, "hang"), 0);
	sc.bus = w->bus;
	w->srv = io_forward__server_new(&sc);
	w->cli = io_forward__client_new(&cc);
	ck_assert_ptr_nonnull(w->srv);
	ck_assert_ptr_nonnull(w->cli);
	w->to_srv.handle = h_srv;
	w->to_srv.obj = w->srv;
	w->to_cli.handle = h_cli;
	w->to_cli.obj = w->cli;
	link_start(&w->to_srv);
	link_start(&w->to_cli);
	return w;
}

static void world_free(struct world *w)
{
	release_hang(&w->dev);
	link_stop(&w->to_srv);
	io_forward__server_free(w->srv);
	link_stop(&w->to_cli);
	io_forward__client_free(w->cli);
	io_bus__free(w->bus);
	pthread_cond_destroy(&w->dev.cond);
	pthread_mutex_destroy(&w->dev.lock);
	free(w);
}

static int req(struct world *w, int vcpu, enum io_space sp, uint64_t addr,
	       uint32_t size, uint32_t count, bool wr, uint8_t *data,
	       bool *claimed)
{
	char err[200];

	return io_forward__request(w->cli, vcpu, sp, addr, size, count, wr,
				   data, claimed, err, sizeof(err));
}

/* ---- wire ---- */

START_TEST(wire_round_trips)
{
	uint8_t buf[IO_FORWARD_REQ_HDR + IO_FORWARD_MAX_DATA], data[4096];
	char err[160];

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)(i * 7 + 1);
	for (int sp = 0; sp < 2; sp++) {
		for (uint32_t size = 1; size <= 8; size++) {
			for (int wr = 0; wr < 2; wr++) {
				struct io_forward_req q = {
					.id = 0xA1B2C3D4, .vcpu = 3,
					.space = (uint8_t)sp,
					.size = (uint8_t)size,
					.is_write = (uint8_t)wr, .count = 1,
					.addr = sp ? 0xFEDC0000ull + size
						   : 0x3F8,
				}, o;
				const uint8_t *d;
				int len;

				if (sp == IO_SPACE_PIO && size != 1 &&
				    size != 2 && size != 4)
					continue;
				if (sp == IO_SPACE_PIO)
					q.count = (uint16_t)(4096 / size);
				len = io_forward__encode_request(buf,
								 sizeof(buf),
								 &q, data);
				ck_assert_int_eq(len,
						 IO_FORWARD_REQ_HDR +
							 (wr ? q.count * size
							     : 0));
				ck_assert_int_eq(io_forward__decode_request(
							 buf, (size_t)len, &o,
							 &d, err, sizeof(err)),
						 0);
				ck_assert_mem_eq(&o, &q, sizeof(q));
				if (wr)
					ck_assert_mem_eq(d, data,
							 q.count * size);
				else
					ck_assert_ptr_null(d);
			}
		}
	}
	/* Byte order on the wire. */
	{
		struct io_forward_req q = { .id = 0x01020304, .vcpu = 0x0506,
					    .space = IO_SPACE_MMIO, .size = 4,
					    .count = 1,
					    .addr = 0x00000A0B0C0D0E0Full };

		io_forward__encode_request(buf, sizeof(buf), &q, NULL);
		ck_assert_uint_eq(buf[0], 0x04);
		ck_assert_uint_eq(buf[4], 0x06);
		ck_assert_uint_eq(get_le64(buf + 16), q.addr);
		ck_assert_uint_eq(buf[16], 0x0F);
	}
	{
		struct io_forward_resp r = { .id = 77, .vcpu = 2,
					     .status = IO_FORWARD_OK,
					     .claimed = 1 }, o;
		const uint8_t *d;
		uint32_t dl;
		int len = io_forward__encode_response(buf, sizeof(buf), &r,
						      data, 4096);

		ck_assert_int_eq(len, IO_FORWARD_RESP_HDR + 4096);
		ck_assert_int_eq(io_forward__decode_response(buf, (size_t)len,
							     &o, &d, &dl, err,
							     sizeof(err)), 0);
		ck_assert_mem_eq(&o, &r, sizeof(r));
		ck_assert_uint_eq(dl, 4096);
		ck_assert_mem_eq(d, data, 4096);
		r.status = IO_FORWARD_REJECTED;
		r.claimed = 0;
		len = io_forward__encode_response(buf, sizeof(buf), &r, NULL, 0);
		ck_assert_int_eq(len, IO_FORWARD_RESP_HDR);
		ck_assert_int_eq(io_forward__decode_response(buf, (size_t)len,
							     &o, &d, &dl, err,
							     sizeof(err)), 0);
		ck_assert_uint_eq(o.status, IO_FORWARD_REJECTED);
		ck_assert_ptr_null(d);
		/* Encoders refuse what decoders would refuse. */
		ck_assert_int_eq(io_forward__encode_response(buf, sizeof(buf),
							     &r, data, 4), -1);
		ck_assert_int_eq(io_forward__encode_response(buf, 7, &r, NULL,
							     0), -1);
	}
}
END_TEST

START_TEST(wire_check_access)
{
	static const struct {
		unsigned space;
		uint64_t addr;
		uint32_t size, count;
		int ok;
	} t[] = {
		{ IO_SPACE_PIO, 0x3F8, 1, 1, 1 },
		{ IO_SPACE_PIO, 0xFFFC, 4, 1, 1 },
		{ IO_SPACE_PIO, 0xFFFD, 4, 1, 0 },
		{ IO_SPACE_PIO, 0xFFFF, 2, 1, 0 },
		{ IO_SPACE_PIO, 0x10000, 1, 1, 0 },
		{ IO_SPACE_PIO, 0x80, 8, 1, 0 },
		{ IO_SPACE_PIO, 0x80, 3, 1, 0 },
		{ IO_SPACE_PIO, 0x80, 0, 1, 0 },
		{ IO_SPACE_PIO, 0x80, 1, 0, 0 },
		{ IO_SPACE_PIO, 0x80, 1, 4096, 1 },
		{ IO_SPACE_PIO, 0x80, 1, 4097, 0 },
		{ IO_SPACE_PIO, 0x80, 4, 1024, 1 },
		{ IO_SPACE_PIO, 0x80, 4, 1025, 0 },
		{ IO_SPACE_MMIO, 0xFEC00000, 8, 1, 1 },
		{ IO_SPACE_MMIO, 0xFEC00000, 3, 1, 1 },
		{ IO_SPACE_MMIO, 0xFEC00000, 9, 1, 0 },
		{ IO_SPACE_MMIO, 0xFEC00000, 0, 1, 0 },
		{ IO_SPACE_MMIO, 0xFEC00000, 4, 2, 0 },
		{ IO_SPACE_MMIO, (1ull << 52) - 8, 8, 1, 1 },
		{ IO_SPACE_MMIO, (1ull << 52) - 7, 8, 1, 0 },
		{ IO_SPACE_MMIO, ~0ull - 3, 8, 1, 0 },
		{ 2, 0x80, 1, 1, 0 },
	};
	char err[120];

	for (size_t i = 0; i < sizeof(t) / sizeof(t[0]); i++) {
		err[0] = 0;
		ck_assert_msg(io_forward__check_access(t[i].space, t[i].addr,
						       t[i].size, t[i].count,
						       err, sizeof(err)) ==
				      (t[i].ok ? 0 : -EINVAL),
			      "case %zu", i);
		ck_assert(t[i].ok || err[0]);
	}
}
END_TEST

static int dec_req(const uint8_t *b, size_t len)
{
	struct io_forward_req q;
	const uint8_t *d;
	char err[160] = "";
	int r = io_forward__decode_request(b, len, &q, &d, err, sizeof(err));

	if (r)
		ck_assert(err[0]);
	return r;
}

START_TEST(wire_rejects)
{
	struct io_forward_req q = { .id = 5, .vcpu = 1, .space = IO_SPACE_PIO,
				    .size = 2, .is_write = 1, .count = 3,
				    .addr = 0x60 };
	uint8_t good[64], b[64], data[6] = { 1, 2, 3, 4, 5, 6 };
	int len = io_forward__encode_request(good, sizeof(good), &q, data);

	ck_assert_int_eq(len, IO_FORWARD_REQ_HDR + 6);
	ck_assert_int_eq(dec_req(good, (size_t)len), 0);
	for (int l = 0; l < len; l++)
		ck_assert_int_eq(dec_req(good, (size_t)l), -EPROTO);
	ck_assert_int_eq(dec_req(good, (size_t)len + 1), -EPROTO);
	ck_assert_int_eq(dec_req(NULL, (size_t)len), -EPROTO);
	{
		static const struct { int off; uint8_t val; } bad[] = {
			{ 6, 2 }, { 6, 0xFF }, { 7, 0 }, { 7, 3 }, { 7, 8 },
			{ 8, 2 }, { 8, 0x81 }, { 9, 1 }, { 10, 0 }, { 10, 2 },
			{ 11, 0x10 }, { 12, 1 }, { 15, 0x80 }, { 18, 1 },
			{ 23, 0x80 },
		};

		for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
			memcpy(b, good, sizeof(b));
			b[bad[i].off] = bad[i].val;
			/* {10, 0}: count 0; {10, 2}: 2 elements for 6 bytes */
			ck_assert_msg(dec_req(b, (size_t)len) == -EPROTO,
				      "byte %d = 0x%x accepted", bad[i].off,
				      bad[i].val);
		}
	}
	/* A read carries no data; a write carries exactly count * size. */
	memcpy(b, good, sizeof(b));
	b[8] = 0;
	ck_assert_int_eq(dec_req(b, (size_t)len), -EPROTO);
	ck_assert_int_eq(dec_req(b, IO_FORWARD_REQ_HDR), 0);
	/* MMIO with a count, and past the physical address limit. */
	q.space = IO_SPACE_MMIO;
	q.count = 1;
	q.addr = 0xFED00000;
	len = io_forward__encode_request(good, sizeof(good), &q, data);
	ck_assert_int_eq(dec_req(good, (size_t)len), 0);
	memcpy(b, good, sizeof(b));
	b[10] = 2;
	ck_assert_int_eq(dec_req(b, (size_t)len), -EPROTO);
	memcpy(b, good, sizeof(b));
	put_le64(b + 16, 1ull << 52);
	ck_assert_int_eq(dec_req(b, (size_t)len), -EPROTO);
	/* Encoders refuse invalid accesses rather than send them. */
	q.count = 2;
	ck_assert_int_eq(io_forward__encode_request(good, sizeof(good), &q,
						    data), -1);
	q.count = 1;
	ck_assert_int_eq(io_forward__encode_request(good, 20, &q, data), -1);

	/* Responses. */
	{
		struct io_forward_resp r = { .id = 1, .vcpu = 1 }, o;
		const uint8_t *d;
		uint32_t dl;
		char err[120];
		uint8_t big[IO_FORWARD_RESP_HDR + IO_FORWARD_MAX_DATA + 1] = { 0 };

		len = io_forward__encode_response(good, sizeof(good), &r, data,
						  4);
		for (int l = 0; l < IO_FORWARD_RESP_HDR; l++)
			ck_assert_int_eq(io_forward__decode_response(
						 good, (size_t)l, &o, &d, &dl,
						 err, sizeof(err)), -EPROTO);
		ck_assert_int_eq(io_forward__decode_response(
					 big, sizeof(big), &o, &d, &dl, err,
					 sizeof(err)), -EPROTO);
		memcpy(b, good, sizeof(b));
		b[6] = 2;
		ck_assert_int_eq(io_forward__decode_response(
					 b, (size_t)len, &o, &d, &dl, err,
					 sizeof(err)), -EPROTO);
		memcpy(b, good, sizeof(b));
		b[7] = 2;
		ck_assert_int_eq(io_forward__decode_response(
					 b, (size_t)len, &o, &d, &dl, err,
					 sizeof(err)), -EPROTO);
		/* REJECTED with data, or claiming. */
		memcpy(b, good, sizeof(b));
		b[6] = IO_FORWARD_REJECTED;
		ck_assert_int_eq(io_forward__decode_response(
					 b, (size_t)len, &o, &d, &dl, err,
					 sizeof(err)), -EPROTO);
		b[7] = 1;
		ck_assert_int_eq(io_forward__decode_response(
					 b, IO_FORWARD_RESP_HDR, &o, &d, &dl,
					 err, sizeof(err)), -EPROTO);
	}
}
END_TEST

/* ---- client and server through threads ---- */

START_TEST(every_size)
{
	struct world *w = world_new(2000);
	uint8_t d[8], r[8];
	bool claimed;

	for (uint32_t size = 1; size <= 4; size *= 2) {
		for (uint32_t i = 0; i < size; i++)
			d[i] = (uint8_t)(0x10 * size + i);
		ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, REGS + 4 - size, size,
				     1, true, d, &claimed), 0);
		ck_assert(claimed);
		ck_assert_mem_eq(w->dev.regs + 4 - size, d, size);
		memset(r, 0, sizeof(r));
		ck_assert_int_eq(req(w, 2, IO_SPACE_PIO, REGS + 4 - size, size,
				     1, false, r, &claimed), 0);
		ck_assert(claimed);
		ck_assert_mem_eq(r, d, size);
	}
	for (uint32_t size = 1; size <= 8; size++) {
		uint64_t off = 64 * size + (size & 1);

		for (uint32_t i = 0; i < size; i++)
			d[i] = (uint8_t)(0xA0 + size * 8 + i);
		ck_assert_int_eq(req(w, 3, IO_SPACE_MMIO, RAM + off, size, 1,
				     true, d, &claimed), 0);
		ck_assert(claimed);
		ck_assert_mem_eq(w->dev.ram + off, d, size);
		memset(r, 0, sizeof(r));
		ck_assert_int_eq(req(w, 3, IO_SPACE_MMIO, RAM + off, size, 1,
				     false, r, &claimed), 0);
		ck_assert_mem_eq(r, d, size);
	}
	/* A device that leaves a read alone (the register file ignores an
	 * access past its end) yields zeros, not an earlier request's data. */
	memset(d, 0xAB, sizeof(d));
	ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, FIFO, 4, 1, true, d, NULL), 0);
	memset(r, 0x77, sizeof(r));
	ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, REGS + 6, 4, 1, false, r,
			     &claimed), 0);
	ck_assert(claimed);
	ck_assert_uint_eq(get_le32(r), 0);
	/* Nobody there: all ones, not claimed (as io_bus does locally). */
	memset(r, 0, sizeof(r));
	ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, 0x2F8, 4, 1, false, r,
			     &claimed), 0);
	ck_assert(!claimed);
	ck_assert_uint_eq(get_le32(r), 0xFFFFFFFFu);
	ck_assert_int_eq(req(w, 1, IO_SPACE_MMIO, 0xE0000000, 8, 1, true, d,
			     &claimed), 0);
	ck_assert(!claimed);
	/* Invalid accesses never leave the client. */
	{
		struct io_forward_stats st, st0;
		char err[120];

		io_forward__client_stats(w->cli, &st0);
		ck_assert_int_eq(io_forward__request(w->cli, 1, IO_SPACE_PIO,
						     0x80, 8, 1, false, r, NULL,
						     err, sizeof(err)), -EINVAL);
		ck_assert_int_eq(req(w, 1, IO_SPACE_MMIO, RAM, 4, 2, false, r,
				     NULL), -EINVAL);
		ck_assert_int_eq(req(w, NV, IO_SPACE_MMIO, RAM, 4, 1, false, r,
				     NULL), -EINVAL);
		ck_assert_int_eq(req(w, 1, IO_SPACE_MMIO, RAM, 4, 0, false, r,
				     NULL), -EINVAL);
		ck_assert_int_eq(io_forward__request(w->cli, 1, IO_SPACE_PIO,
						     0x80, 1, 1, false, NULL,
						     NULL, err, sizeof(err)),
				 -EINVAL);
		io_forward__client_stats(w->cli, &st);
		ck_assert_uint_eq(st.requests, st0.requests);
		ck_assert_uint_eq(st.requests, 6 + 16 + 2 + 2);
	}
	ck_assert_int_eq(atomic_load(&w->errors[0]) + atomic_load(&w->errors[1]),
			 0);
	world_free(w);
}
END_TEST

/* REP OUTSW / INSW: count elements at one port, in order; a batch larger
 * than one message goes in several, still in order. */
START_TEST(rep_string_io)
{
	struct world *w = world_new(2000);
	uint8_t *out = malloc(6000), *in = malloc(6000);
	struct io_forward_stats s0, s1;
	bool claimed;

	for (int i = 0; i < 6000; i++)
		out[i] = (uint8_t)(i * 13 + i / 256);
	ck_assert_int_eq(req(w, 2, IO_SPACE_PIO, FIFO, 2, 100, true, out,
			     &claimed), 0);
	ck_assert(claimed);
	ck_assert_uint_eq(w->dev.fifo_len, 200);
	ck_assert_mem_eq(w->dev.fifo, out, 200);
	memset(in, 0, 6000);
	ck_assert_int_eq(req(w, 2, IO_SPACE_PIO, FIFO, 2, 100, false, in,
			     &claimed), 0);
	ck_assert_mem_eq(in, out, 200);
	ck_assert_uint_eq(w->dev.fifo_len, 0);

	io_forward__client_stats(w->cli, &s0);
	ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, FIFO, 2, 3000, true, out,
			     &claimed), 0);
	io_forward__client_stats(w->cli, &s1);
	ck_assert_uint_eq(s1.requests - s0.requests, 2); /* 4096 + 1904 */
	ck_assert_uint_eq(w->dev.fifo_len, 6000);
	memset(in, 0, 6000);
	ck_assert_int_eq(req(w, 1, IO_SPACE_PIO, FIFO, 4, 1500, false, in,
			     &claimed), 0);
	ck_assert(claimed);
	ck_assert_mem_eq(in, out, 6000);
	free(out);
	free(in);
	world_free(w);
}
END_TEST

struct vcpu_arg {
	struct world *w;
	int vcpu;
	int iters;
	int ret;
	int fails;
};

static void *vcpu_loop(void *p)
{
	struct vcpu_arg *a = p;
	uint64_t base = RAM + 512 * (uint64_t)a->vcpu;

	for (int k = 0; k < a->iters; k++) {
		uint32_t size = 1u << (k % 4);
		uint64_t v = 0x0102030405060708ull * (uint64_t)(k + a->vcpu),
			 back = 0;
		uint8_t d[8], r[8] = { 0 };
		uint64_t off = (uint64_t)(k * 8) % 256;

		put_le64(d, v);
		if (req(a->w, a->vcpu, IO_SPACE_MMIO, base + off, size, 1, true,
			d, NULL) ||
		    req(a->w, a->vcpu, IO_SPACE_MMIO, base + off, size, 1,
			false, r, NULL)) {
			a->fails++;
			continue;
		}
		back = get_le64(r);
		if (memcmp(&back, &v, size))
			a->fails++;
		/* Shared registers: values race, the access must not fail. */
		if (req(a->w, a->vcpu, IO_SPACE_PIO, REGS, 2, 1, k & 1, d, NULL))
			a->fails++;
	}
	return NULL;
}

START_TEST(concurrent_vcpus)
{
	struct world *w = world_new(5000);
	struct vcpu_arg a[3];
	pthread_t t[3];
	struct io_forward_stats ss;

	for (int i = 0; i < 3; i++) {
		a[i] = (struct vcpu_arg){ .w = w, .vcpu = i + 1, .iters = 300 };
		pthread_create(&t[i], NULL, vcpu_loop, &a[i]);
	}
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(a[i].fails, 0);
	}
	io_forward__server_stats(w->srv, &ss);
	ck_assert_uint_eq(ss.requests, 3 * 300 * 3);
	ck_assert_int_eq(atomic_load(&w->errors[0]) + atomic_load(&w->errors[1]),
			 0);
	world_free(w);
}
END_TEST

/* A device that blocks ties up one worker: other vCPUs' I/O goes on (the
 * receive thread never runs devices). */
static void *hang_vcpu(void *p)
{
	struct vcpu_arg *a = p;
	uint8_t r[4];

	a->ret = req(a->w, a->vcpu, IO_SPACE_MMIO, HANG, 4, 1, false, r, NULL);
	if (!a->ret && get_le32(r) != 0x5A5A5A5A)
		a->fails++;
	return NULL;
}

START_TEST(slow_device_does_not_block_others)
{
	struct world *w = world_new(5000);
	struct vcpu_arg a = { .w = w, .vcpu = 1 };
	pthread_t t;
	uint8_t d[4] = { 9, 8, 7, 6 };

	pthread_create(&t, NULL, hang_vcpu, &a);
	while (!atomic_load(&w->dev.hanging))
		sleep_ms(1);
	for (int k = 0; k < 20; k++)
		ck_assert_int_eq(req(w, 2, IO_SPACE_MMIO, RAM, 4, 1, true, d,
				     NULL), 0);
	/* vCPU 1 is still waiting: a second request from it is refused
	 * locally. */
	ck_assert_int_eq(req(w, 1, IO_SPACE_MMIO, RAM, 4, 1, true, d, NULL),
			 -EBUSY);
	release_hang(&w->dev);
	pthread_join(t, NULL);
	ck_assert_int_eq(a.ret, 0);
	ck_assert_int_eq(a.fails, 0);
	world_free(w);
}
END_TEST

/* The device node never answers: a clean error naming it, in about the
 * timeout; then the VM stop path (abort) releases blocked vCPUs at once. */
START_TEST(timeout_and_abort)
{
	struct world *w = world_new(150);
	struct vcpu_arg a[3];
	pthread_t t[3];
	uint8_t r[4];
	char err[200];
	uint64_t t0;
	struct io_forward_stats st;

	atomic_store(&w->to_srv.drop, true);
	t0 = now_ms();
	ck_assert_int_eq(io_forward__request(w->cli, 1, IO_SPACE_PIO, 0x3F8, 1,
					     1, false, r, NULL, err,
					     sizeof(err)), -ETIMEDOUT);
	ck_assert_uint_ge(now_ms() - t0, 140);
	ck_assert_uint_lt(now_ms() - t0, 2000);
	ck_assert_ptr_nonnull(strstr(err, "node 0"));
	ck_assert_ptr_nonnull(strstr(err, "vCPU 1"));
	/* The slot is free again. */
	ck_assert_int_eq(io_forward__request(w->cli, 1, IO_SPACE_PIO, 0x3F8, 1,
					     1, false, r, NULL, err,
					     sizeof(err)), -ETIMEDOUT);

	/* Abort: with a long timeout, three vCPUs block, then are let go. */
	io_forward__client_free(w->cli);
	{
		struct io_forward_client_config cc = {
			.nr_vcpus = NV, .server_node = SERVER,
			.timeout_ms = 60000,
			.ops = { .ctx = w, .send = cli_send, .error = cli_error },
		};

		w->cli = io_forward__client_new(&cc);
		w->to_cli.obj = w->cli;
	}
	for (int i = 0; i < 3; i++) {
		a[i] = (struct vcpu_arg){ .w = w, .vcpu = i + 1 };
		pthread_create(&t[i], NULL, hang_vcpu, &a[i]);
	}
	sleep_ms(50);
	t0 = now_ms();
	io_forward__client_abort(w->cli);
	for (int i = 0; i < 3; i++) {
		pthread_join(t[i], NULL);
		ck_assert_int_eq(a[i].ret, -ECANCELED);
	}
	ck_assert_uint_lt(now_ms() - t0, 2000);
	ck_assert_int_eq(io_forward__request(w->cli, 2, IO_SPACE_PIO, 0x3F8, 1,
					     1, false, r, NULL, err,
					     sizeof(err)), -ECANCELED);
	io_forward__client_abort(w->cli); /* idempotent */
	io_forward__client_stats(w->cli, &st);
	ck_assert_uint_eq(st.aborted, 4);
	world_free(w);
}
END_TEST

/* ---- protocol errors, with a hand-driven peer ---- */

struct capture {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	int n;
	unsigned node, type;
	size_t len;
	uint8_t buf[IO_FORWARD_REQ_HDR + IO_FORWARD_MAX_DATA];
	int errors;
	char last_err[200];
};

static int cap_send(void *ctx, unsigned node, unsigned type, const void *buf,
		    size_t len)
{
	struct capture *c = ctx;

	pthread_mutex_lock(&c->lock);
	c->node = node;
	c->type = type;
	c->len = len;
	memcpy(c->buf, buf, len);
	c->n++;
	pthread_cond_broadcast(&c->cond);
	pthread_mutex_unlock(&c->lock);
	return 0;
}

static void cap_error(void *ctx, unsigned node, const char *what)
{
	struct capture *c = ctx;

	pthread_mutex_lock(&c->lock);
	c->errors++;
	snprintf(c->last_err, sizeof(c->last_err), "%s", what);
	pthread_mutex_unlock(&c->lock);
}

static void cap_wait(struct capture *c, int n)
{
	pthread_mutex_lock(&c->lock);
	while (c->n < n)
		pthread_cond_wait(&c->cond, &c->lock);
	pthread_mutex_unlock(&c->lock);
}

static struct capture *cap_new(void)
{
	struct capture *c = calloc(1, sizeof(*c));

	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	return c;
}

static void cap_free(struct capture *c)
{
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

struct creq {
	struct io_forward_client *cli;
	int vcpu;
	uint8_t data[8];
	int ret;
	char err[200];
};

static void *client_read(void *p)
{
	struct creq *q = p;

	q->ret = io_forward__request(q->cli, q->vcpu, IO_SPACE_MMIO, RAM, 4, 1,
				     false, q->data, NULL, q->err,
				     sizeof(q->err));
	return NULL;
}

static int respond(struct io_forward_client *cli, unsigned from,
		   uint32_t id, uint16_t vcpu, uint8_t status,
		   const uint8_t *data, uint32_t dlen)
{
	struct io_forward_resp r = { .id = id, .vcpu = vcpu, .status = status };
	uint8_t buf[IO_FORWARD_RESP_HDR + 16];
	int len = io_forward__encode_response(buf, sizeof(buf), &r, data, dlen);

	ck_assert_int_gt(len, 0);
	return io_forward__client_handle(cli, from, IO_FORWARD_T_RESPONSE, buf,
					 (size_t)len);
}

START_TEST(client_rejects_bad_responses)
{
	struct capture *cap = cap_new();
	struct io_forward_client_config cc = {
		.nr_vcpus = NV, .server_node = SERVER, .timeout_ms = 3000,
		.ops = { .ctx = cap, .send = cap_send, .error = cap_error },
	};
	struct io_forward_client *cli = io_forward__client_new(&cc);
	struct creq q = { .cli = cli, .vcpu = 2 };
	static const uint8_t val[8] = { 0xDE, 0xAD, 0xBE, 0xEF, 1, 2, 3, 4 };
	struct io_forward_req rq;
	const uint8_t *d;
	char err[120];
	pthread_t t;
	int errs = 0;

	/* Nothing outstanding at all. */
	ck_assert_int_eq(respond(cli, SERVER, 1, 2, 0, val, 4), -EPROTO);
	ck_assert_int_eq(cap->errors, ++errs);

	pthread_create(&t, NULL, client_read, &q);
	cap_wait(cap, 1);
	ck_assert_uint_eq(cap->node, SERVER);
	ck_assert_uint_eq(cap->type, IO_FORWARD_T_REQUEST);
	ck_assert_int_eq(io_forward__decode_request(cap->buf, cap->len, &rq, &d,
						    err, sizeof(err)), 0);
	ck_assert_uint_eq(rq.vcpu, 2);
	ck_assert_uint_eq(rq.addr, RAM);
	ck_assert(!rq.is_write);
	/* Wrong id, wrong vCPU, out-of-range vCPU, wrong sender, wrong data
	 * length, wrong type, truncated: each refused, the vCPU still waits. */
	ck_assert_int_eq(respond(cli, SERVER, rq.id + 1, 2, 0, val, 4), -EPROTO);
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 3, 0, val, 4), -EPROTO);
	ck_assert_int_eq(respond(cli, SERVER, rq.id, NV, 0, val, 4), -EPROTO);
	ck_assert_int_eq(respond(cli, 2, rq.id, 2, 0, val, 4), -EPROTO);
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, 0, val, 8), -EPROTO);
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, 0, val, 0), -EPROTO);
	ck_assert_int_eq(io_forward__client_handle(cli, SERVER,
						   IO_FORWARD_T_REQUEST,
						   cap->buf, cap->len),
			 -EPROTO);
	ck_assert_int_eq(io_forward__client_handle(cli, SERVER,
						   IO_FORWARD_T_RESPONSE,
						   cap->buf, 5), -EPROTO);
	errs += 8;
	ck_assert_int_eq(cap->errors, errs);
	sleep_ms(20);
	ck_assert_int_eq(q.ret, 0); /* not returned yet */
	/* The right one. */
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, 0, val, 4), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(q.ret, 0);
	ck_assert_mem_eq(q.data, val, 4);
	/* A duplicate. */
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, 0, val, 4), -EPROTO);
	ck_assert_int_eq(cap->errors, ++errs);

	/* REJECTED by the device node: -EPROTO naming it. */
	pthread_create(&t, NULL, client_read, &q);
	cap_wait(cap, 2);
	io_forward__decode_request(cap->buf, cap->len, &rq, &d, err,
				   sizeof(err));
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, IO_FORWARD_REJECTED,
				 NULL, 0), 0);
	pthread_join(t, NULL);
	ck_assert_int_eq(q.ret, -EPROTO);
	ck_assert_ptr_nonnull(strstr(q.err, "node 0"));

	/* A response after the timeout matches nothing. */
	io_forward__client_free(cli);
	cc.timeout_ms = 50;
	cli = io_forward__client_new(&cc);
	q.cli = cli;
	pthread_create(&t, NULL, client_read, &q);
	cap_wait(cap, 3);
	io_forward__decode_request(cap->buf, cap->len, &rq, &d, err,
				   sizeof(err));
	pthread_join(t, NULL);
	ck_assert_int_eq(q.ret, -ETIMEDOUT);
	ck_assert_int_eq(respond(cli, SERVER, rq.id, 2, 0, val, 4), -EPROTO);
	ck_assert_int_eq(cap->errors, ++errs);
	io_forward__client_free(cli);
	cap_free(cap);
}
END_TEST

static int srv_req(struct io_forward_server *s, unsigned from,
		   const struct io_forward_req *q, const uint8_t *data)
{
	uint8_t buf[IO_FORWARD_REQ_HDR + 64];
	int len = io_forward__encode_request(buf, sizeof(buf), q, data);

	ck_assert_int_gt(len, 0);
	return io_forward__server_handle(s, from, IO_FORWARD_T_REQUEST, buf,
					 (size_t)len);
}

START_TEST(server_rejects_bad_requests)
{
	struct capture *cap = cap_new();
	struct dev *dev = calloc(1, sizeof(*dev));
	struct io_bus *bus = io_bus__new();
	struct io_forward_server_config sc = {
		.bus = bus, .nr_vcpus = NV, .self = SERVER,
		.vcpu_node = placement, .workers = 2,
		.ops = { .ctx = cap, .send = cap_send, .error = cap_error },
	};
	struct io_forward_server *s;
	struct io_forward_req q = { .id = 9, .vcpu = 1, .space = IO_SPACE_MMIO,
				    .size = 4, .count = 1, .addr = HANG };
	struct io_forward_resp r;
	uint8_t raw[IO_FORWARD_REQ_HDR + 4], d4[4] = { 1, 2, 3, 4 };
	const uint8_t *d;
	uint32_t dl;
	char err[120];

	pthread_mutex_init(&dev->lock, NULL);
	pthread_cond_init(&dev->cond, NULL);
	io_bus__register(bus, IO_SPACE_MMIO, HANG, 8, hang_io, dev, "hang");
	io_bus__register(bus, IO_SPACE_MMIO, RAM, 4096, ram_io, dev, "ram");
	s = io_forward__server_new(&sc);
	ck_assert_ptr_nonnull(s);

	/* vCPU 1 blocks in the device; a second request from it is a
	 * protocol error, not queued. */
	ck_assert_int_eq(srv_req(s, CLIENT, &q, NULL), 0);
	while (!atomic_load(&dev->hanging))
		sleep_ms(1);
	q.id = 10;
	q.addr = RAM;
	ck_assert_int_eq(srv_req(s, CLIENT, &q, NULL), -EPROTO);
	ck_assert_int_eq(cap->errors, 1);
	/* vCPU 0 runs on node 0, vCPU 4 does not exist, a request from the
	 * server's own node, an unknown type. */
	q.vcpu = 0;
	ck_assert_int_eq(srv_req(s, CLIENT, &q, NULL), -EPROTO);
	q.vcpu = NV;
	ck_assert_int_eq(srv_req(s, CLIENT, &q, NULL), -EPROTO);
	q.vcpu = 2;
	ck_assert_int_eq(srv_req(s, SERVER, &q, NULL), -EPROTO);
	ck_assert_int_eq(io_forward__server_handle(s, CLIENT,
						   IO_FORWARD_T_RESPONSE, raw,
						   sizeof(raw)), -EPROTO);
	ck_assert_int_eq(cap->errors, 5);
	ck_assert_int_eq(cap->n, 0); /* none of these was answered */
	/* Malformed but with a readable vCPU and id: answered REJECTED. */
	ck_assert_int_eq(io_forward__encode_request(raw, sizeof(raw), &q, NULL),
			 IO_FORWARD_REQ_HDR);
	raw[6] = 7; /* no such space */
	ck_assert_int_eq(io_forward__server_handle(s, CLIENT,
						   IO_FORWARD_T_REQUEST, raw,
						   IO_FORWARD_REQ_HDR), -EPROTO);
	cap_wait(cap, 1);
	ck_assert_uint_eq(cap->type, IO_FORWARD_T_RESPONSE);
	ck_assert_int_eq(io_forward__decode_response(cap->buf, cap->len, &r, &d,
						     &dl, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.status, IO_FORWARD_REJECTED);
	ck_assert_uint_eq(r.id, 10);
	ck_assert_uint_eq(r.vcpu, 2);
	/* Truncated: nothing readable enough to answer. */
	ck_assert_int_eq(io_forward__server_handle(s, CLIENT,
						   IO_FORWARD_T_REQUEST, raw,
						   5), -EPROTO);
	/* A write with its data missing. */
	q.is_write = 1;
	ck_assert_int_eq(io_forward__encode_request(raw, sizeof(raw), &q, d4),
			 IO_FORWARD_REQ_HDR + 4);
	ck_assert_int_eq(io_forward__server_handle(s, CLIENT,
						   IO_FORWARD_T_REQUEST, raw,
						   IO_FORWARD_REQ_HDR), -EPROTO);
	cap_wait(cap, 2);
	ck_assert_int_eq(cap->errors, 8);
	/* A good one for vCPU 2 is served while vCPU 1 still hangs. */
	ck_assert_int_eq(srv_req(s, CLIENT, &q, d4), 0);
	cap_wait(cap, 3);
	ck_assert_int_eq(io_forward__decode_response(cap->buf, cap->len, &r, &d,
						     &dl, err, sizeof(err)), 0);
	ck_assert_uint_eq(r.status, IO_FORWARD_OK);
	ck_assert_uint_eq(r.claimed, 1);
	ck_assert_mem_eq(dev->ram, d4, 4);
	release_hang(dev);
	cap_wait(cap, 4);
	io_forward__server_free(s);
	io_bus__free(bus);
	pthread_cond_destroy(&dev->cond);
	pthread_mutex_destroy(&dev->lock);
	free(dev);
	cap_free(cap);
}
END_TEST

START_TEST(config_checks)
{
	struct io_bus *bus = io_bus__new();
	struct io_forward_server_config sc = { .bus = bus, .nr_vcpus = NV,
					       .ops = { .send = cap_send } };
	struct io_forward_client_config cc = { .nr_vcpus = NV,
					       .ops = { .send = cap_send } };
	struct io_forward_server *s;
	struct io_forward_client *c;

	sc.workers = 1000;
	ck_assert_ptr_null(io_forward__server_new(&sc));
	sc.workers = 0;
	sc.bus = NULL;
	ck_assert_ptr_null(io_forward__server_new(&sc));
	sc.bus = bus;
	sc.ops.send = NULL;
	ck_assert_ptr_null(io_forward__server_new(&sc));
	sc.ops.send = cap_send;
	s = io_forward__server_new(&sc);
	ck_assert_ptr_nonnull(s);
	io_forward__server_free(s);
	cc.nr_vcpus = 0;
	ck_assert_ptr_null(io_forward__client_new(&cc));
	cc.nr_vcpus = NV;
	cc.ops.send = NULL;
	ck_assert_ptr_null(io_forward__client_new(&cc));
	cc.ops.send = cap_send;
	c = io_forward__client_new(&cc);
	ck_assert_ptr_nonnull(c);
	io_forward__client_free(c);
	io_forward__client_free(NULL);
	io_forward__server_free(NULL);
	io_forward__client_abort(NULL);
	io_bus__free(bus);
}
END_TEST

static Suite *io_forward_suite(void)
{
	Suite *s = suite_create("io_forward");
	TCase *wire = tcase_create("wire");
	TCase *nodes = tcase_create("nodes");

	tcase_add_test(wire, wire_round_trips);
	tcase_add_test(wire, wire_check_access);
	tcase_add_test(wire, wire_rejects);
	suite_add_tcase(s, wire);
	tcase_set_timeout(nodes, 30);
	tcase_add_test(nodes, every_size);
	tcase_add_test(nodes, rep_string_io);
	tcase_add_test(nodes, concurrent_vcpus);
	tcase_add_test(nodes, slow_device_does_not_block_others);
	tcase_add_test(nodes, timeout_and_abort);
	tcase_add_test(nodes, client_rejects_bad_responses);
	tcase_add_test(nodes, server_rejects_bad_requests);
	tcase_add_test(nodes, config_checks);
	suite_add_tcase(s, nodes);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(io_forward_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
