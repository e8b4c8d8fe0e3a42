/* I/O forwarding: the wire codec and the client (see io_forward.h).
 * Each vCPU owns one slot; its thread sends and sleeps on the slot's
 * condition variable, the transport's receive thread fills the slot and
 * wakes it.  The slot lock is held only to move between IDLE, WAITING and
 * DONE and to copy a response in, never while sending. */
#include "vmm/io_forward.h"

#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "vmm/bytes.h"
#include "vmm/vtimer.h"

static void fail_msg(char *err, size_t errlen, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

static void fail_msg(char *err, size_t errlen, const char *fmt, ...)
{
	va_list ap;

	if (!err || !errlen)
		return;
	va_start(ap, fmt);
	vsnprintf(err, errlen, fmt, ap);
	va_end(ap);
}

/* ---- wire ---- */

int io_forward__check_access(unsigned space, uint64_t addr, uint32_t size,
			     uint32_t count, char *err, size_t errlen)
{
	if (space == IO_SPACE_PIO) {
		if (size != 1 && size != 2 && size != 4) {
			fail_msg(err, errlen, "port access of %u bytes", size);
			return -EINVAL;
		}
		if (addr > 0xFFFF || addr + size > 0x10000) {
			fail_msg(err, errlen, "port 0x%llx",
				 (unsigned long long)addr);
			return -EINVAL;
		}
	} else if (space == IO_SPACE_MMIO) {
		if (size < 1 || size > 8 || count != 1) {
			fail_msg(err, errlen, "MMIO access of %u x %u bytes",
				 count, size);
			return -EINVAL;
		}
		if (addr >= IO_FORWARD_MMIO_LIMIT ||
		    addr + size > IO_FORWARD_MMIO_LIMIT) {
			fail_msg(err, errlen, "MMIO address 0x%llx",
				 (unsigned long long)addr);
			return -EINVAL;
		}
	} else {
		fail_msg(err, errlen, "I/O space %u", space);
		return -EINVAL;
	}
	if (count == 0 || (uint64_t)count * size > IO_FORWARD_MAX_DATA) {
		fail_msg(err, errlen, "I/O batch of %u x %u bytes", count,
			 size);
		return -EINVAL;
	}
	return 0;
}

int io_forward__encode_request(uint8_t *buf, size_t buflen,
			       const struct io_forward_req *req,
			       const uint8_t *data)
{
	uint32_t dlen = (uint32_t)req->count * req->size;

	if (io_forward__check_access(req->space, req->addr, req->size,
				     req->count, NULL, 0) ||
	    req->is_write > 1 || (req->is_write && !data))
		return -1;
	if (!req->is_write)
		dlen = 0;
	if (buflen < IO_FORWARD_REQ_HDR + dlen)
		return -1;
	memset(buf, 0, IO_FORWARD_REQ_HDR);
	put_le32(buf, req->id);
	put_le16(buf + 4, req->vcpu);
	buf[6] = req->space;
	buf[7] = req->size;
	buf[8] = req->is_write;
	put_le16(buf + 10, req->count);
	put_le64(buf + 16, req->addr);
	if (dlen)
		memcpy(buf + IO_FORWARD_REQ_HDR, data, dlen);
	return (int)(IO_FORWARD_REQ_HDR + dlen);
}

int io_forward__decode_request(const uint8_t *buf, size_t len,
			       struct io_forward_req *req,
			       const uint8_t **data, char *err, size_t errlen)
{
	char why[96];
	size_t dlen;

	if (!buf || len < IO_FORWARD_REQ_HDR) {
		fail_msg(err, errlen, "IO_REQUEST of %zu bytes", len);
		return -EPROTO;
	}
	*req = (struct io_forward_req){
		.id = get_le32(buf), .vcpu = get_le16(buf + 4),
		.space = buf[6], .size = buf[7], .is_write = buf[8] & 1,
		.count = get_le16(buf + 10), .addr = get_le64(buf + 16),
	};
	if ((buf[8] & ~1u) || buf[9] || get_le32(buf + 12)) {
		fail_msg(err, errlen, "IO_REQUEST with reserved bits set");
		return -EPROTO;
	}
	if (io_forward__check_access(req->space, req->addr, req->size,
				     req->count, why, sizeof(why))) {
		fail_msg(err, errlen, "IO_REQUEST: %s", why);
		return -EPROTO;
	}
	dlen = req->is_write ? (size_t)req->count * req->size : 0;
	if (len != IO_FORWARD_REQ_HDR + dlen) {
		fail_msg(err, errlen, "IO_REQUEST of %zu bytes for a %s of "
			 "%u x %u", len, req->is_write ? "write" : "read",
			 req->count, req->size);
		return -EPROTO;
	}
	*data = dlen ? buf + IO_FORWARD_REQ_HDR : NULL;
	return 0;
}

int io_forward__encode_response(uint8_t *buf, size_t buflen,
				const struct io_forward_resp *resp,
				const uint8_t *data, uint32_t data_len)
{
	if (resp->status > IO_FORWARD_REJECTED || resp->claimed > 1 ||
	    data_len > IO_FORWARD_MAX_DATA || (data_len && !data) ||
	    (resp->status != IO_FORWARD_OK && (data_len || resp->claimed)) ||
	    buflen < IO_FORWARD_RESP_HDR + data_len)
		return -1;
	put_le32(buf, resp->id);
	put_le16(buf + 4, resp->vcpu);
	buf[6] = resp->status;
	buf[7] = resp->claimed;
	if (data_len)
		memcpy(buf + IO_FORWARD_RESP_HDR, data, data_len);
	return (int)(IO_FORWARD_RESP_HDR + data_len);
}

int io_forward__decode_response(const uint8_t *buf, size_t len,
				struct io_forward_resp *resp,
				const uint8_t **data, uint32_t *data_len,
				char *err, size_t errlen)
{
	size_t dlen = len >= IO_FORWARD_RESP_HDR ? len - IO_FORWARD_RESP_HDR : 0;

	if (!buf || len < IO_FORWARD_RESP_HDR ||
	    dlen > IO_FORWARD_MAX_DATA) {
		fail_msg(err, errlen, "IO_RESPONSE of %zu bytes", len);
		return -EPROTO;
	}
	if (buf[6] > IO_FORWARD_REJECTED || buf[7] > 1 ||
	    (buf[6] != IO_FORWARD_OK && (dlen || buf[7]))) {
		fail_msg(err, errlen, "IO_RESPONSE with status %u flags %u "
			 "and %zu data bytes", buf[6], buf[7], dlen);
		return -EPROTO;
	}
	*resp = (struct io_forward_resp){
		.id = get_le32(buf), .vcpu = get_le16(buf + 4),
		.status = buf[6], .claimed = buf[7],
	};
	*data = dlen ? buf + IO_FORWARD_RESP_HDR : NULL;
	*data_len = (uint32_t)dlen;
	return 0;
}

/* ---- client ---- */

enum slot_state { SLOT_IDLE, SLOT_WAITING, SLOT_DONE };

struct slot {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	enum slot_state state;
	uint32_t id;      /* of the outstanding (or last) request */
	uint8_t *buf;     /* where a read's data goes */
	uint32_t want;    /* data bytes an OK response carries */
	int result;
	bool claimed;
};

struct io_forward_client {
	int nr_vcpus;
	unsigned server;
	unsigned timeout_ms;
	struct io_forward_ops ops;
	atomic_bool aborted;
	struct slot *slot;
	atomic_uint_fast64_t requests, timeouts, aborts, rejected, proto;
};

struct io_forward_client *
io_forward__client_new(const struct io_forward_client_config *cfg)
{
	struct io_forward_client *c;
	pthread_condattr_t ca;

	if (!cfg || !cfg->ops.send || cfg->nr_vcpus <= 0 ||
	    cfg->nr_vcpus > IO_FORWARD_MAX_VCPUS)
		return NULL;
	c = calloc(1, sizeof(*c));
	if (!c)
		return NULL;
	c->slot = calloc((size_t)cfg->nr_vcpus, sizeof(*c->slot));
	if (!c->slot) {
		free(c);
		return NULL;
	}
	c->nr_vcpus = cfg->nr_vcpus;
	c->server = cfg->server_node;
	c->timeout_ms = cfg->timeout_ms ? cfg->timeout_ms
					: IO_FORWARD_DEFAULT_TIMEOUT_MS;
	c->ops = cfg->ops;
	atomic_init(&c->aborted, false);
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	for (int i = 0; i < c->nr_vcpus; i++) {
		pthread_mutex_init(&c->slot[i].lock, NULL);
		pthread_cond_init(&c->slot[i].cond, &ca);
	}
	pthread_condattr_destroy(&ca);
	return c;
}

void io_forward__client_free(struct io_forward_client *c)
{
	if (!c)
		return;
	for (int i = 0; i < c->nr_vcpus; i++) {
		pthread_cond_destroy(&c->slot[i].cond);
		pthread_mutex_destroy(&c->slot[i].lock);
	}
	free(c->slot);
	free(c);
}

static const char *space_name(enum io_space space)
{
	return space == IO_SPACE_PIO ? "port" : "MMIO";
}

/* Waits for the slot's response; slot lock held, returns with it held
 * and the slot IDLE again. */
static int wait_slot(struct io_forward_client *c, struct slot *s,
		     bool *claimed)
{
	struct timespec until;
	int ret;

	vclock__deadline(&until, CLOCK_MONOTONIC, c->timeout_ms);
	while (s->state == SLOT_WAITING && !atomic_load(&c->aborted))
		if (pthread_cond_timedwait(&s->cond, &s->lock, &until) ==
		    ETIMEDOUT)
			break;
	if (s->state == SLOT_DONE) {
		ret = s->result;
		*claimed = s->claimed;
	} else {
		ret = atomic_load(&c->aborted) ? -ECANCELED : -ETIMEDOUT;
	}
	/* From here a late response finds no outstanding request. */
	s->state = SLOT_IDLE;
	s->buf = NULL;
	return ret;
}

/* One request of at most IO_FORWARD_MAX_DATA bytes. */
static int request_one(struct io_forward_client *c, int vcpu,
		       const struct io_forward_req *tmpl, uint8_t *data,
		       bool *claimed)
{
	uint8_t buf[IO_FORWARD_REQ_HDR + IO_FORWARD_MAX_DATA];
	struct slot *s = &c->slot[vcpu];
	struct io_forward_req req = *tmpl;
	int len, ret;

	pthread_mutex_lock(&s->lock);
	if (s->state != SLOT_IDLE) {
		pthread_mutex_unlock(&s->lock);
		return -EBUSY;
	}
	if (++s->id == 0)
		s->id = 1;
	req.id = s->id;
	s->state = SLOT_WAITING;
	s->buf = data;
	s->want = req.is_write ? 0 : (uint32_t)req.count * req.size;
	pthread_mutex_unlock(&s->lock);

	len = io_forward__encode_request(buf, sizeof(buf), &req, data);
	if (len < 0)
		ret = -EINVAL;
	else if (c->ops.send(c->ops.ctx, c->server, IO_FORWARD_T_REQUEST, buf,
			     (size_t)len))
		ret = -EIO;
	else
		ret = 0;
	pthread_mutex_lock(&s->lock);
	if (ret) {
		s->state = SLOT_IDLE;
		s->buf = NULL;
	} else {
		ret = wait_slot(c, s, claimed);
	}
	pthread_mutex_unlock(&s->lock);
	return ret;
}

int io_forward__request(struct io_forward_client *c, int vcpu,
			enum io_space space, uint64_t addr, uint32_t size,
			uint32_t count, bool is_write, uint8_t *data,
			bool *claimed, char *err, size_t errlen)
{
	struct io_forward_req req = {
		.vcpu = (uint16_t)vcpu, .space = (uint8_t)space,
		.size = (uint8_t)size, .is_write = is_write, .addr = addr,
	};
	uint32_t per = size ? IO_FORWARD_MAX_DATA / size : 0;
	bool all = true;
	int ret = 0;

	if (!c || vcpu < 0 || vcpu >= c->nr_vcpus || !data || !count) {
		fail_msg(err, errlen, "bad I/O forwarding request");
		return -EINVAL;
	}
	if (io_forward__check_access(space, addr, size,
				     count < per ? count : per, err, errlen))
		return -EINVAL;
	if (atomic_load(&c->aborted)) {
		atomic_fetch_add(&c->aborts, 1);
		fail_msg(err, errlen, "I/O forwarding aborted (VM stopping)");
		return -ECANCELED;
	}
	/* A REP batch longer than one message: in order, chunk by chunk. */
	while (count && !ret) {
		bool got = false;

		req.count = (uint16_t)(count < per ? count : per);
		atomic_fetch_add(&c->requests, 1);
		ret = request_one(c, vcpu, &req, data, &got);
		all &= got;
		data += (size_t)req.count * size;
		count -= req.count;
	}
	if (claimed)
		*claimed = all;
	switch (ret) {
	case 0:
		return 0;
	case -ETIMEDOUT:
		atomic_fetch_add(&c->timeouts, 1);
		fail_msg(err, errlen, "vCPU %d: no answer from node %u (the "
			 "device node) within %u ms to a %s %s at 0x%llx",
			 vcpu, c->server, c->timeout_ms, space_name(space),
			 is_write ? "write" : "read",
			 (unsigned long long)addr);
		break;
	case -ECANCELED:
		atomic_fetch_add(&c->aborts, 1);
		fail_msg(err, errlen, "I/O forwarding aborted (VM stopping)");
		break;
	case -EPROTO:
		atomic_fetch_add(&c->rejected, 1);
		fail_msg(err, errlen, "vCPU %d: node %u (the device node) "
			 "rejected a %s %s at 0x%llx", vcpu, c->server,
			 space_name(space), is_write ? "write" : "read",
			 (unsigned long long)addr);
		break;
	case -EBUSY:
		fail_msg(err, errlen, "vCPU %d has an I/O request running",
			 vcpu);
		break;
	default:
		fail_msg(err, errlen, "vCPU %d: sending I/O to node %u (the "
			 "device node) failed", vcpu, c->server);
		break;
	}
	return ret;
}

static int reject(struct io_forward_client *c, unsigned sender,
		  const char *why)
{
	char what[200];

	atomic_fetch_add(&c->proto, 1);
	snprintf(what, sizeof(what), "node %u: %s", sender, why);
	if (c->ops.error)
		c->ops.error(c->ops.ctx, sender, what);
	return -EPROTO;
}

int io_forward__client_handle(struct io_forward_client *c, unsigned sender,
			      unsigned type, const void *payload, size_t len)
{
	struct io_forward_resp r;
	const uint8_t *data;
	uint32_t dlen;
	char why[160];
	struct slot *s;

	if (!c)
		return -EINVAL;
	if (type != IO_FORWARD_T_RESPONSE) {
		snprintf(why, sizeof(why), "unexpected I/O message type %u",
			 type);
		return reject(c, sender, why);
	}
	if (sender != c->server)
		return reject(c, sender, "IO_RESPONSE from a node that is "
					 "not the device node");
	if (io_forward__decode_response(payload, len, &r, &data, &dlen, why,
					sizeof(why)))
		return reject(c, sender, why);
	if (r.vcpu >= c->nr_vcpus) {
		snprintf(why, sizeof(why), "IO_RESPONSE for vCPU %u", r.vcpu);
		return reject(c, sender, why);
	}
	s = &c->slot[r.vcpu];
	pthread_mutex_lock(&s->lock);
	if (s->state != SLOT_WAITING || s->id != r.id ||
	    (r.status == IO_FORWARD_OK && dlen != s->want)) {
		pthread_mutex_unlock(&s->lock);
		snprintf(why, sizeof(why), "IO_RESPONSE id %u for vCPU %u (%u "
			 "bytes) matches no outstanding request", r.id, r.vcpu,
			 dlen);
		return reject(c, sender, why);
	}
	if (r.status == IO_FORWARD_OK) {
		if (dlen)
			memcpy(s->buf, data, dlen);
		s->result = 0;
		s->claimed = r.claimed;
	} else {
		s->result = -EPROTO;
		s->claimed = false;
	}
	s->state = SLOT_DONE;
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void io_forward__client_abort(struct io_forward_client *c)
{
	if (!c)
		return;
	atomic_store(&c->aborted, true);
	/* Under each slot's lock: a waiter checks the flag under it, so no
	 * wakeup is lost. */
	for (int i = 0; i < c->nr_vcpus; i++) {
		pthread_mutex_lock(&c->slot[i].lock);
		pthread_cond_broadcast(&c->slot[i].cond);
		pthread_mutex_unlock(&c->slot[i].lock);
	}
}

void io_forward__client_stats(struct io_forward_client *c,
			      struct io_forward_stats *out)
{
	if (!c || !out)
		return;
	*out = (struct io_forward_stats){
		.requests = atomic_load(&c->requests),
		.timeouts = atomic_load(&c->timeouts),
		.aborted = atomic_load(&c->aborts),
		.rejected = atomic_load(&c->rejected),
		.protocol_errors = atomic_load(&c->proto),
	};
}
