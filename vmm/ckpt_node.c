/* Every node's part of a cluster checkpoint: the barrier's probes, marks
 * and reports, and the WRITE order, whose file writing runs on a thread of
 * its own (a transport thread must never block). */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/bytes.h"
#include "vmm/ckpt_priv.h"
#include "vmm/cluster.h"
#include "vmm/machine.h"

#define WRITTEN_FIXED (8 + 4 + 6 * 8)

struct ckpt_node *ckpt_node__new(struct machine *m)
{
	struct ckpt_node *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->m = m;
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	ckpt_marks__init(&c->marks,
			 m->cluster ? cluster__nr_nodes(m->cluster) : 1,
			 m->node_self);
	return c;
}

void ckpt_node__quiesce(struct ckpt_node *c)
{
	bool join;

	if (!c)
		return;
	pthread_mutex_lock(&c->lock);
	c->closing = true;
	join = c->writer_joinable;
	c->writer_joinable = false;
	pthread_mutex_unlock(&c->lock);
	if (join)
		pthread_join(c->writer, NULL);
}

void ckpt_node__free(struct ckpt_node *c)
{
	if (!c)
		return;
	ckpt_node__quiesce(c);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->lock);
	free(c);
}

static void send_u32(struct machine *m, unsigned node, unsigned type,
		     uint32_t v)
{
	uint8_t b[4];
	struct iovec iov = { b, sizeof(b) };

	put_le32(b, v);
	cluster__send(m->cluster, node, NET_CH_FAST, type, &iov, 1);
}

static void report_in(struct ckpt_node *c, unsigned node, uint32_t round,
		      const struct ckpt_report *r)
{
	enum ckpt_barrier_result res;

	pthread_mutex_lock(&c->lock);
	if (c->barrier_on) {
		res = ckpt_barrier__report(&c->barrier, node, round, r);
		if (res == CKPT_B_AGAIN || res == CKPT_B_QUIET) {
			c->bres = res;
			pthread_cond_broadcast(&c->cond);
		}
	}
	pthread_mutex_unlock(&c->lock);
}

/* The round is complete here: drain once more and tell node 0. */
static void report(struct ckpt_node *c, uint32_t round)
{
	struct machine *m = c->m;
	struct dsm_ckpt_state st = { .idle = true };
	struct ckpt_report r;
	uint8_t b[4 + 1 + 16];
	struct iovec iov = { b, sizeof(b) };

	if (m->dsm)
		dsm_ckpt__drain(m->dsm, &st);
	pthread_mutex_lock(&c->lock);
	c->reported = st;
	pthread_mutex_unlock(&c->lock);
	r = (struct ckpt_report){ st.idle, st.sent, st.recv };
	if (m->node_self == 0) {
		report_in(c, 0, round, &r);
		return;
	}
	put_le32(b, round);
	b[4] = st.idle;
	put_le64(b + 5, st.sent);
	put_le64(b + 13, st.recv);
	cluster__send(m->cluster, 0, NET_CH_FAST, CKPT_T_REPORT, &iov, 1);
}

/* Held DSM messages go out before the marks, so that every message this
 * node sent for the round travels ahead of its mark. */
static void on_probe(struct ckpt_node *c, uint32_t round)
{
	struct machine *m = c->m;
	struct dsm_ckpt_state st;
	int done;

	if (m->dsm)
		dsm_ckpt__drain(m->dsm, &st);
	pthread_mutex_lock(&c->lock);
	done = ckpt_marks__probe(&c->marks, round);
	pthread_mutex_unlock(&c->lock);
	if (done < 0)
		return;
	for (unsigned n = 0; n < cluster__nr_nodes(m->cluster); n++)
		if (n != m->node_self)
			send_u32(m, n, CKPT_T_MARK, round);
	if (done)
		report(c, round);
}

void ckpt_node__self_probe(struct ckpt_node *c, uint32_t round)
{
	on_probe(c, round);
}

static void on_mark(struct ckpt_node *c, unsigned sender, uint32_t round)
{
	int done;

	pthread_mutex_lock(&c->lock);
	done = ckpt_marks__mark(&c->marks, sender, round);
	pthread_mutex_unlock(&c->lock);
	if (done < 0)
		machine__request_stop(c->m, KRG_EXIT_FAILURE, "checkpoint: node "
				      "%u sent a barrier mark for round %u "
				      "that makes no sense", sender, round);
	else if (done)
		report(c, round);
}

static void send_written(struct machine *m, uint64_t id,
			 const struct ckpt_written *w)
{
	uint8_t b[WRITTEN_FIXED + CKPT_WHY_MAX];
	size_t why = w->status ? strnlen(w->why, CKPT_WHY_MAX) : 0;
	struct iovec iov = { b, WRITTEN_FIXED + why };

	put_le64(b, id);
	put_le32(b + 8, (uint32_t)w->status);
	put_le64(b + 12, w->pages);
	put_le64(b + 20, w->pages_size);
	put_le64(b + 28, w->pages_crc);
	put_le64(b + 36, w->cpus_size);
	put_le64(b + 44, w->cpus_crc);
	put_le64(b + 52, w->vcpus);
	memcpy(b + WRITTEN_FIXED, w->why, why);
	cluster__send(m->cluster, 0, NET_CH_FAST, CKPT_T_WRITTEN, &iov, 1);
}

static void *writer_thread(void *arg)
{
	struct ckpt_node *c = arg;
	struct ckpt_written w;

	ckpt_write__node_files(c, c->writer_dir, &w);
	send_written(c->m, c->writer_id, &w);
	pthread_mutex_lock(&c->lock);
	c->writer_busy = false;
	pthread_mutex_unlock(&c->lock);
	return NULL;
}

static void on_write(struct ckpt_node *c, const uint8_t *p, uint32_t len)
{
	uint64_t id = get_le64(p);
	struct ckpt_written w = { .status = -1 };
	size_t dl = len - 8;
	bool busy;

	pthread_mutex_lock(&c->lock);
	busy = c->writer_busy || c->closing;
	if (!busy) {
		if (c->writer_joinable)
			pthread_join(c->writer, NULL);	/* finished */
		c->writer_joinable = false;
		c->writer_busy = true;
		c->writer_id = id;
		memcpy(c->writer_dir, p + 8, dl);
		c->writer_dir[dl] = '\0';
		if (pthread_create(&c->writer, NULL, writer_thread, c) == 0) {
			c->writer_joinable = true;
			pthread_mutex_unlock(&c->lock);
			return;
		}
		c->writer_busy = false;
	}
	pthread_mutex_unlock(&c->lock);
	snprintf(w.why, sizeof(w.why), "node %u: %s", c->m->node_self,
		 busy ? "still writing an earlier checkpoint" :
			"cannot start a writer thread");
	send_written(c->m, id, &w);
}

static void on_written(struct ckpt_node *c, unsigned sender, const uint8_t *p,
		       uint32_t len)
{
	struct ckpt_written w;
	uint64_t id = get_le64(p);
	size_t why = len - WRITTEN_FIXED;

	w.status = (int32_t)get_le32(p + 8);
	w.pages = get_le64(p + 12);
	w.pages_size = get_le64(p + 20);
	w.pages_crc = get_le64(p + 28);
	w.cpus_size = get_le64(p + 36);
	w.cpus_crc = get_le64(p + 44);
	w.vcpus = get_le64(p + 52);
	memcpy(w.why, p + WRITTEN_FIXED, why);
	w.why[why] = '\0';
	pthread_mutex_lock(&c->lock);
	if (id == c->write_id && id && !c->have_written[sender] &&
	    c->written_pending) {
		c->written[sender] = w;
		c->have_written[sender] = true;
		c->written_pending--;
		pthread_cond_broadcast(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

void ckpt__receive(struct machine *m, unsigned sender, unsigned type,
		   const void *payload, uint32_t len)
{
	struct ckpt_node *c = m->ckpt;
	const uint8_t *p = payload;
	bool from0 = sender == 0 && m->node_self != 0;
	bool to0 = m->node_self == 0 && sender != 0;

	if (!c)
		return;
	switch (type) {
	case CKPT_T_PROBE:
		if (!from0 || len != 4)
			break;
		on_probe(c, get_le32(p));
		return;
	case CKPT_T_MARK:
		if (len != 4)
			break;
		on_mark(c, sender, get_le32(p));
		return;
	case CKPT_T_REPORT:
		if (!to0 || len != 21 || p[4] > 1)
			break;
		report_in(c, sender, get_le32(p),
			  &(struct ckpt_report){ p[4] != 0, get_le64(p + 5),
						 get_le64(p + 13) });
		return;
	case CKPT_T_WRITE:
		/* The path: absolute, no NUL inside, not empty. */
		if (!from0 || len < 10 || len - 8 >= VM_PATH_MAX || p[8] != '/' ||
		    memchr(p + 8, '\0', len - 8))
			break;
		on_write(c, p, len);
		return;
	case CKPT_T_WRITTEN:
		if (!to0 || len < WRITTEN_FIXED ||
		    len > WRITTEN_FIXED + CKPT_WHY_MAX - 1)
			break;
		on_written(c, sender, p, len);
		return;
	default:
		break;
	}
	machine__request_stop(m, KRG_EXIT_FAILURE, "checkpoint: node %u sent "
			      "message %u (%u bytes) that makes no sense",
			      sender, type, len);
}
