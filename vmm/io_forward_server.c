/* I/O forwarding, the device node's side (see io_forward.h).  The receive
 * thread only validates and queues; workers run the devices and answer.
 * Each vCPU has at most one request in flight, so a job per vCPU and a
 * ring of nr_vcpus entries hold every possible backlog: queuing never
 * allocates and never waits. */
#include "vmm/io_forward.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"

#define DEFAULT_WORKERS 2
#define MAX_WORKERS 64

struct job {
	bool busy;            /* queued or running */
	unsigned sender;
	struct io_forward_req req;
	uint8_t data[IO_FORWARD_MAX_DATA];
};

struct io_forward_server {
	struct io_bus *bus;
	int nr_vcpus;
	unsigned self;
	uint8_t *node;        /* NULL: any sender may speak for any vCPU */
	struct io_forward_ops ops;
	pthread_mutex_t lock; /* jobs' busy flags, the ring, stopping */
	pthread_cond_t cond;
	struct job *job;
	int *ring;
	int head, queued;
	bool stopping;
	pthread_t thread[MAX_WORKERS];
	unsigned nr_threads;
	atomic_uint_fast64_t requests, rejected, proto;
};

/* Whether sender runs vcpu (vCPU migration moves them: atomic). */
static bool runs_on(const struct io_forward_server *s, unsigned vcpu,
		    unsigned sender)
{
	return !s->node ||
	       __atomic_load_n(&s->node[vcpu], __ATOMIC_ACQUIRE) == sender;
}

void io_forward__server_set_vcpu_node(struct io_forward_server *s, int vcpu,
				      unsigned node)
{
	if (s && s->node && vcpu >= 0 && vcpu < s->nr_vcpus && node < 256)
		__atomic_store_n(&s->node[vcpu], (uint8_t)node,
				 __ATOMIC_RELEASE);
}

static void report(struct io_forward_server *s, unsigned node,
		   const char *why)
{
	char what[200];

	atomic_fetch_add(&s->proto, 1);
	snprintf(what, sizeof(what), "node %u: %s", node, why);
	if (s->ops.error)
		s->ops.error(s->ops.ctx, node, what);
}

static void send_response(struct io_forward_server *s, unsigned node,
			  const uint8_t *buf, int len)
{
	char why[64];

	if (len < 0 || s->ops.send(s->ops.ctx, node, IO_FORWARD_T_RESPONSE,
				   buf, (size_t)len) == 0)
		return;
	snprintf(why, sizeof(why), "sending an I/O response failed");
	report(s, node, why);
}

/* Runs one job outside the lock; the job stays busy (reserved) meanwhile. */
static int run_job(struct io_forward_server *s, struct job *j, uint8_t *out)
{
	const struct io_forward_req *q = &j->req;
	struct io_forward_resp r = { .id = q->id, .vcpu = q->vcpu,
				     .status = IO_FORWARD_OK, .claimed = 1 };
	uint32_t dlen = (uint32_t)q->count * q->size;

	for (uint32_t i = 0; i < q->count; i++)
		if (!io_bus__dispatch(s->bus, (enum io_space)q->space, q->addr,
				      j->data + (size_t)i * q->size, q->size,
				      q->is_write))
			r.claimed = 0;
	return io_forward__encode_response(out, IO_FORWARD_RESP_HDR +
					   IO_FORWARD_MAX_DATA, &r, j->data,
					   q->is_write ? 0 : dlen);
}

static void *worker(void *arg)
{
	struct io_forward_server *s = arg;
	uint8_t *out = malloc(IO_FORWARD_RESP_HDR + IO_FORWARD_MAX_DATA);

	if (!out)
		return NULL;
	pthread_mutex_lock(&s->lock);
	while (!s->stopping) {
		struct job *j;
		unsigned node;
		int v, len;

		if (!s->queued) {
			pthread_cond_wait(&s->cond, &s->lock);
			continue;
		}
		v = s->ring[s->head];
		s->head = (s->head + 1) % s->nr_vcpus;
		s->queued--;
		j = &s->job[v];
		node = j->sender;
		pthread_mutex_unlock(&s->lock);
		len = run_job(s, j, out);
		/* Free before answering: the vCPU's next request may arrive
		 * as soon as the response is out. */
		pthread_mutex_lock(&s->lock);
		j->busy = false;
		pthread_mutex_unlock(&s->lock);
		send_response(s, node, out, len);
		pthread_mutex_lock(&s->lock);
	}
	pthread_mutex_unlock(&s->lock);
	free(out);
	return NULL;
}

static void stop_workers(struct io_forward_server *s)
{
	pthread_mutex_lock(&s->lock);
	s->stopping = true;
	pthread_cond_broadcast(&s->cond);
	pthread_mutex_unlock(&s->lock);
	for (unsigned i = 0; i < s->nr_threads; i++)
		pthread_join(s->thread[i], NULL);
	s->nr_threads = 0;
}

void io_forward__server_free(struct io_forward_server *s)
{
	if (!s)
		return;
	stop_workers(s);
	pthread_cond_destroy(&s->cond);
	pthread_mutex_destroy(&s->lock);
	free(s->ring);
	free(s->job);
	free(s->node);
	free(s);
}

struct io_forward_server *
io_forward__server_new(const struct io_forward_server_config *cfg)
{
	struct io_forward_server *s;
	unsigned workers;

	if (!cfg || !cfg->bus || !cfg->ops.send || cfg->nr_vcpus <= 0 ||
	    cfg->nr_vcpus > IO_FORWARD_MAX_VCPUS || cfg->workers > MAX_WORKERS)
		return NULL;
	workers = cfg->workers ? cfg->workers : DEFAULT_WORKERS;
	s = calloc(1, sizeof(*s));
	if (!s)
		return NULL;
	s->bus = cfg->bus;
	s->nr_vcpus = cfg->nr_vcpus;
	s->self = cfg->self;
	s->ops = cfg->ops;
	pthread_mutex_init(&s->lock, NULL);
	pthread_cond_init(&s->cond, NULL);
	s->job = calloc((size_t)s->nr_vcpus, sizeof(*s->job));
	s->ring = calloc((size_t)s->nr_vcpus, sizeof(*s->ring));
	if (cfg->vcpu_node && (s->node = malloc((size_t)s->nr_vcpus)))
		memcpy(s->node, cfg->vcpu_node, (size_t)s->nr_vcpus);
	if (!s->job || !s->ring || (cfg->vcpu_node && !s->node))
		goto fail;
	for (; s->nr_threads < workers; s->nr_threads++)
		if (pthread_create(&s->thread[s->nr_threads], NULL, worker, s))
			goto fail;
	return s;
fail:
	io_forward__server_free(s);
	return NULL;
}

/* Answers REJECTED for a request whose vCPU and id could be read and
 * whose vCPU has nothing in flight (else the answer would be ambiguous). */
static void answer_rejected(struct io_forward_server *s, unsigned sender,
			    const uint8_t *p, size_t len)
{
	struct io_forward_resp r = { .status = IO_FORWARD_REJECTED };
	uint8_t out[IO_FORWARD_RESP_HDR];
	bool busy;

	if (len < 6)
		return;
	r.id = get_le32(p);
	r.vcpu = get_le16(p + 4);
	if (r.vcpu >= s->nr_vcpus || !runs_on(s, r.vcpu, sender))
		return;
	pthread_mutex_lock(&s->lock);
	busy = s->job[r.vcpu].busy;
	pthread_mutex_unlock(&s->lock);
	if (busy)
		return;
	atomic_fetch_add(&s->rejected, 1);
	send_response(s, sender, out,
		      io_forward__encode_response(out, sizeof(out), &r, NULL, 0));
}

int io_forward__server_handle(struct io_forward_server *s, unsigned sender,
			      unsigned type, const void *payload, size_t len)
{
	struct io_forward_req req;
	const uint8_t *data;
	char why[160];
	struct job *j;

	if (!s)
		return -EINVAL;
	if (type != IO_FORWARD_T_REQUEST) {
		snprintf(why, sizeof(why), "unexpected I/O message type %u",
			 type);
		report(s, sender, why);
		return -EPROTO;
	}
	if (sender == s->self) {
		report(s, sender, "IO_REQUEST from this node itself");
		return -EPROTO;
	}
	if (io_forward__decode_request(payload, len, &req, &data, why,
				       sizeof(why))) {
		report(s, sender, why);
		answer_rejected(s, sender, payload, len);
		return -EPROTO;
	}
	if (req.vcpu >= s->nr_vcpus ||
	    !runs_on(s, req.vcpu, sender)) {
		snprintf(why, sizeof(why), "IO_REQUEST for vCPU %u, which does "
			 "not run on that node", req.vcpu);
		report(s, sender, why);
		return -EPROTO;
	}
	j = &s->job[req.vcpu];
	pthread_mutex_lock(&s->lock);
	if (j->busy || s->stopping) {
		bool stopping = s->stopping;

		pthread_mutex_unlock(&s->lock);
		if (stopping)
			return 0; /* the VM is going down: nobody waits */
		snprintf(why, sizeof(why), "second IO_REQUEST (id %u) for "
			 "vCPU %u while one is running", req.id, req.vcpu);
		report(s, sender, why);
		return -EPROTO;
	}
	j->busy = true;
	j->sender = sender;
	j->req = req;
	/* A device that leaves part of a read alone returns zeros, not the
	 * previous request's bytes. */
	if (data)
		memcpy(j->data, data, (size_t)req.count * req.size);
	else
		memset(j->data, 0, (size_t)req.count * req.size);
	s->ring[(s->head + s->queued) % s->nr_vcpus] = req.vcpu;
	s->queued++;
	atomic_fetch_add(&s->requests, 1);
	pthread_cond_signal(&s->cond);
	pthread_mutex_unlock(&s->lock);
	return 0;
}

void io_forward__server_stats(struct io_forward_server *s,
			      struct io_forward_stats *out)
{
	if (!s || !out)
		return;
	*out = (struct io_forward_stats){
		.requests = atomic_load(&s->requests),
		.rejected = atomic_load(&s->rejected),
		.protocol_errors = atomic_load(&s->proto),
	};
}
