/* The fallback engine for raw images when io_uring is refused (seccomp
 * filters in some containers) or aio=threads: a few threads taking
 * requests from a FIFO and running them with preadv2/pwritev2, fdatasync
 * and fallocate (storage/block_raw.c's raw__exec). */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "storage/block_priv.h"
#include "vmm/errf.h"

/* Enough to keep a disk's queue busy while some threads sit in
 * fdatasync; requests are short, so more mostly adds switching. */
#define POOL_THREADS 8

struct pool_job {
	struct bio b;
	struct pool_job *next;
};

struct pool {
	struct raw_file *f;
	pthread_mutex_t lock;
	pthread_cond_t work;
	struct pool_job *head, *tail;
	bool stop;
	int nthreads;
	pthread_t threads[POOL_THREADS];
};

static void *worker(void *arg)
{
	struct pool *p = arg;

	for (;;) {
		struct pool_job *job;

		pthread_mutex_lock(&p->lock);
		while (!p->head && !p->stop)
			pthread_cond_wait(&p->work, &p->lock);
		job = p->head;
		if (job) {
			p->head = job->next;
			if (!p->head)
				p->tail = NULL;
		}
		pthread_mutex_unlock(&p->lock);
		if (!job)
			return NULL;
		block__complete(&job->b, raw__exec(p->f, &job->b));
		free(job);
	}
}

static int pool_submit(void *eng, const struct bio *b)
{
	struct pool *p = eng;
	struct pool_job *job = malloc(sizeof(*job));

	if (!job)
		return -ENOMEM;
	job->b = *b;
	job->next = NULL;
	pthread_mutex_lock(&p->lock);
	if (p->tail)
		p->tail->next = job;
	else
		p->head = job;
	p->tail = job;
	pthread_cond_signal(&p->work);
	pthread_mutex_unlock(&p->lock);
	return 0;
}

static void pool_close(void *eng)
{
	struct pool *p = eng;

	pthread_mutex_lock(&p->lock);
	p->stop = true;
	pthread_cond_broadcast(&p->work);
	pthread_mutex_unlock(&p->lock);
	for (int i = 0; i < p->nthreads; i++)
		pthread_join(p->threads[i], NULL);
	pthread_cond_destroy(&p->work);
	pthread_mutex_destroy(&p->lock);
	free(p);
}

int pool__open(struct raw_file *f, void **eng, char *err, size_t errlen)
{
	struct pool *p = calloc(1, sizeof(*p));

	if (!p) {
		errf(err, errlen, "out of memory");
		return -ENOMEM;
	}
	p->f = f;
	pthread_mutex_init(&p->lock, NULL);
	pthread_cond_init(&p->work, NULL);
	for (; p->nthreads < POOL_THREADS; p->nthreads++) {
		int r = pthread_create(&p->threads[p->nthreads], NULL, worker,
				       p);

		if (r) {
			errf(err, errlen, "cannot start I/O threads: %s",
			     strerror(r));
			pool_close(p);
			return -r;
		}
	}
	*eng = p;
	return 0;
}

const struct block_engine_ops pool_engine_ops = {
	.name = "threads",
	.submit = pool_submit,
	.close = pool_close,
};
