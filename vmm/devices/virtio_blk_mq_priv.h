/* Inside the cross-node virtio-blk queue serving (virtio_blk_mq.h): what
 * virtio_blk_mq.c (threads, dispatch), _home.c (node 0), _serve.c (the
 * serving nodes) and _flush.c (flush fan-out) share.
 *
 * Threads: the transport's receive thread only decodes, checks the sender
 * and queues (an ACK it hands straight to the waiting thread: it touches
 * no guest memory and takes no device lock).  Two workers per node run
 * the rest: "ctl" the hand-over (SETUP, STOP, UPDATE: they may wait for a
 * drain), "data" everything that touches guest memory or interrupts and
 * must never wait for a drain (KICK, IRQ, BROKEN, FLUSH, FLUSHED), so a
 * drain waiting for a flush can never wait for itself.
 *
 * Locks, in order: home.cfg_lock (one transition of a drive at a time),
 * then a queue's hq.lock / sq.lock (held while that node pops the queue),
 * then the virtio device's own (vq->lock, vp->lock).  Nothing waits for
 * another node while holding a queue's lock; a device reset holds the
 * device lock while node 0 takes the queues back (the serving nodes never
 * need it). */
#ifndef KRG_VMM_DEVICES_VIRTIO_BLK_MQ_PRIV_H
#define KRG_VMM_DEVICES_VIRTIO_BLK_MQ_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include "vmm/devices/virtio_blk_mq.h"

struct mq_job {
	struct mq_job *next;
	unsigned sender;
	struct blk_mq_msg msg;
};

struct mq_worker {
	struct blk_mq *mq;
	void (*run)(struct blk_mq *mq, struct mq_job *j);
	pthread_t thread;
	bool started, stop;
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct mq_job *head, *tail;
};

/* Node 0: where one queue of a drive is served. */
enum hq_state {
	HQ_LOCAL,       /* node 0 pops it (hq.lock held meanwhile) */
	HQ_MOVING,      /* in transit: kicks are dropped, polled after */
	HQ_REMOTE,      /* hq.node serves it */
};

struct home_queue {
	pthread_mutex_t lock;
	enum hq_state state;
	uint8_t node;
	/* What the serving node was told last (cfg_lock). */
	bool msi_direct;
	uint64_t msi_addr, notify;
	uint32_t msi_data;
	bool fanout;
};

struct home {
	struct blk_mq *mq;
	bool attached;
	unsigned drive;
	struct blk_mq_home_env env;
	pthread_mutex_t cfg_lock;
	bool held;
	uint32_t gen;                       /* image generation */
	bool fanout;                        /* flushes reach every node */
	bool failed[BLK_MQ_MAX_NODES];      /* answered FALLBACK/ERROR */
	bool opened[BLK_MQ_MAX_NODES];      /* has the image open */
	struct home_queue q[BLK_MQ_MAX_QUEUES];
	/* The one SETUP/STOP/UPDATE in flight (cfg_lock serialises). */
	pthread_mutex_t wlock;
	pthread_cond_t wcond;
	bool waiting, wdone;
	uint32_t wseq;
	unsigned wnode, wtype, wqueue;
	struct blk_mq_msg wreply;
};

/* A serving node: one queue of a drive. */
struct serve_queue {
	pthread_mutex_t lock;   /* live; held while popping */
	bool live, reported;
	pthread_mutex_t msi_lock;
	bool msi_direct;
	uint64_t msi_addr, notify;
	uint32_t msi_data;
};

enum sd_state { SD_CLOSED, SD_OPEN, SD_FAILED };

struct served {
	struct blk_mq *mq;
	unsigned drive;
	_Atomic int state;      /* enum sd_state; set by the ctl worker */
	uint32_t gen;           /* of the image opened */
	char why[BLK_MQ_TEXT_MAX + 1];
	struct blk_mq_backend b;
	struct virtio_blk blk;  /* this node's twin of node 0's device */
	atomic_bool fanout;
	struct serve_queue q[BLK_MQ_MAX_QUEUES];
};

struct doorbell {
	uint64_t gpa;
	uint8_t drive, queue;
	bool used;
};

/* A flush waiting for other nodes' FLUSHED answers. */
struct flush_wait {
	struct flush_wait *next;
	struct blk_mq *mq;
	uint32_t id;
	uint8_t drive;
	int remote;              /* FLUSHED answers missing */
	int own;                 /* our own flush (and the setup) missing */
	bool failed;
	struct block_req *req;   /* the guest's, or NULL: node 0 answers */
	unsigned requester;      /* node 0 answering: who asked */
	uint32_t requester_id;
	struct block_req own_req; /* node 0's own flush for a requester */
};

#define MQ_BELLS (BLK_MQ_MAX_DRIVES * BLK_MQ_MAX_QUEUES)

struct blk_mq {
	struct blk_mq_config cfg;
	atomic_bool aborted;
	struct mq_worker ctl, data;
	struct home home[BLK_MQ_MAX_DRIVES];
	struct served sd[BLK_MQ_MAX_DRIVES];
	pthread_rwlock_t bell_lock;
	struct doorbell bell[MQ_BELLS];
	pthread_mutex_t flush_lock;
	pthread_cond_t flush_idle;      /* a flush_wait went away */
	struct flush_wait *flushes;
	uint32_t next_flush_id;
	atomic_uint_fast64_t doorbells, kicks_in, handoffs, fallbacks,
		flushes_out;
};

/* virtio_blk_mq.c */
void mq__log(struct blk_mq *mq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void mq__fatal(struct blk_mq *mq, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
/* Encodes and sends; 0, or -1 (said why through fatal). */
int mq__send(struct blk_mq *mq, unsigned node, const struct blk_mq_msg *m);
void mq__enqueue(struct mq_worker *w, unsigned sender,
		 const struct blk_mq_msg *m);
/* Node 0: a serving node's IRQ (signal the queue's vector here) and
 * BROKEN (NEEDS_RESET). */
void home__irq(struct blk_mq *mq, struct home *h, unsigned sender,
	       const struct blk_mq_msg *m);
void home__broken(struct blk_mq *mq, struct home *h, unsigned sender,
		  const struct blk_mq_msg *m);

/* virtio_blk_mq_home.c (node 0) */
void home__init(struct home *h);
void home__destroy(struct home *h);
int home__attach(struct blk_mq *mq, struct home *h, unsigned drive,
		 const struct blk_mq_home_env *env);
/* An ACK (receive thread): 0, or -1 if it answers nothing outstanding. */
int home__ack(struct blk_mq *mq, struct home *h, unsigned sender,
	      const struct blk_mq_msg *m);
void home__abort(struct home *h);
int home__hold(struct blk_mq *mq, struct home *h, bool hold);
int home__assign(struct blk_mq *mq, struct home *h, unsigned queue,
		 unsigned node);
unsigned home__serving_node(struct home *h, unsigned queue);
/* An interrupt message, the function's mask or BAR 0 moved. */
void home__changed(struct home *h);
void home__set_backend(struct home *h, const char *socket, uint64_t domain);

/* virtio_blk_mq_serve.c (nodes > 0) */
void served__init(struct blk_mq *mq, struct served *sd, unsigned drive);
void served__close(struct served *sd);
void served__ctl(struct blk_mq *mq, struct mq_job *j);
void served__kick(struct blk_mq *mq, unsigned drive, unsigned queue);
bool served__doorbell(struct blk_mq *mq, uint64_t gpa, uint8_t *data,
		      uint32_t len, bool is_write);
uint64_t served__queues(struct blk_mq *mq);

/* virtio_blk_mq_flush.c */
/* virtio_blk_hooks.flush_remote for node 0 (ctx: its struct home) and for
 * a serving node (ctx: its struct served). */
int flush__home_remote(void *ctx, struct block_req *req);
int flush__served_remote(void *ctx, struct block_req *req);
/* A FLUSH or FLUSHED from a peer (data worker). */
void flush__request(struct blk_mq *mq, unsigned sender,
		    const struct blk_mq_msg *m);
void flush__answer(struct blk_mq *mq, unsigned sender,
		   const struct blk_mq_msg *m);
/* A serving node handing a queue back: its completed writes durable. */
int flush__local_sync(struct served *sd);
/* VM stop: every waiting flush fails now (no more answers come). */
void flush__abort(struct blk_mq *mq);
/* Waits until this node's own flushes for other nodes completed. */
void flush__wait_idle(struct blk_mq *mq);

#endif
