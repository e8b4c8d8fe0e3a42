#include "vmm/node_stats.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "dsm/dsm_msg.h"
#include "vcpu/vcpu.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/vtimer.h"

/* The most frequent vectors, largest first (ties: lower vector). */
static void top_vectors(const uint64_t by_vector[256], struct node_stats *out)
{
	bool taken[256] = { false };

	for (unsigned t = 0; t < NODE_STATS_TOP_VECTORS; t++) {
		unsigned best = 256;

		for (unsigned vec = 0; vec < 256; vec++)
			if (!taken[vec] && by_vector[vec] &&
			    (best == 256 || by_vector[vec] > by_vector[best]))
				best = vec;
		if (best == 256)
			break;
		taken[best] = true;
		out->top_vectors[t].vector = best;
		out->top_vectors[t].count = by_vector[best];
	}
}

void node_stats__collect(struct machine *m, struct node_stats *out)
{
	memset(out, 0, sizeof(*out));
	out->version = NODE_STATS_VERSION;
	out->node = m->node_self;
	out->nr_local_vcpus = m->nr_local_vcpus;
	out->uptime_ms = (vclock__now_ns() - m->start_ns) / 1000000;
	uint64_t by_vector[256] = { 0 };

	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		const struct vcpu *v = m->vcpus ? m->vcpus[i] : NULL;

		if (!v)
			continue;
		/* Plain counters written by their vCPU thread: a status
		 * snapshot may be a moment stale, never wrong by more. */
		out->vcpu_exits += v->stats.exits;
		out->vcpu_injected += v->stats.injected;
		out->vcpu_hlt_exits += v->stats.exits_hlt;
		out->vcpu_halted_ns += v->stats.halted_ns;
		for (unsigned vec = 0; vec < 256; vec++)
			by_vector[vec] += v->stats.by_vector[vec];
	}
	top_vectors(by_vector, out);
	if (m->dsm)
		dsm_mem__stats(m->dsm, &out->dsm);
	if (m->irq_remote)
		irq_remote__get_stats(m->irq_remote, &out->irq);
	if (m->io_client)
		io_forward__client_stats(m->io_client, &out->io);
	else if (m->io_server)
		io_forward__server_stats(m->io_server, &out->io);
	machine__blk_mq_stats(m, &out->blk);
}

int node_stats__check(const void *buf, size_t len, unsigned from,
		      struct node_stats *out)
{
	if (len != sizeof(*out))
		return -1;
	memcpy(out, buf, sizeof(*out));
	if (out->version != NODE_STATS_VERSION || out->node != from)
		return -1;
	return 0;
}

static size_t add(char *buf, size_t size, size_t n, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

static size_t add(char *buf, size_t size, size_t n, const char *fmt, ...)
{
	va_list ap;
	int r;

	if (n >= size)
		return n;
	va_start(ap, fmt);
	r = vsnprintf(buf + n, size - n, fmt, ap);
	va_end(ap);
	return r < 0 ? n : n + (size_t)r;
}

size_t node_stats__format(const struct node_stats *s, const char *addr,
			  char *buf, size_t size)
{
	const struct dsm_mem_stats *d = &s->dsm;
	size_t n = 0;
	unsigned t;

	n = add(buf, size, n, "node %u (%s): %u vCPUs, up %llu ms, %llu exits "
		"(%llu HLT), %llu interrupts injected, halted %llu ms\n",
		s->node, addr, s->nr_local_vcpus,
		(unsigned long long)s->uptime_ms,
		(unsigned long long)s->vcpu_exits,
		(unsigned long long)s->vcpu_hlt_exits,
		(unsigned long long)s->vcpu_injected,
		(unsigned long long)(s->vcpu_halted_ns / 1000000));
	if (s->top_vectors[0].count) {
		n = add(buf, size, n, "  most injected vectors (vector: count):");
		for (unsigned i = 0; i < NODE_STATS_TOP_VECTORS; i++)
			if (s->top_vectors[i].count)
				n = add(buf, size, n, " 0x%02x:%llu",
					s->top_vectors[i].vector,
					(unsigned long long)s->top_vectors[i].count);
		n = add(buf, size, n, "\n");
	}
	/* "again while requested": a thread faulted on a page already on its
	 * way (another thread, or the same one woken early by a signal). */
	n = add(buf, size, n, "  dsm: faults read %llu write %llu (local %llu, "
		"write-protect %llu, again while requested %llu), "
		"invalidations %llu (shadow page tables "
		"dropped %llu times), pages sent %llu received %llu, bytes "
		"sent %llu received %llu\n",
		(unsigned long long)d->read_faults,
		(unsigned long long)d->write_faults,
		(unsigned long long)d->core.local_faults,
		(unsigned long long)d->wp_faults,
		(unsigned long long)d->core.coalesced_faults,
		(unsigned long long)d->invalidations,
		(unsigned long long)d->translation_drops,
		(unsigned long long)d->pages_sent,
		(unsigned long long)d->pages_received,
		(unsigned long long)d->bytes_sent,
		(unsigned long long)d->bytes_received);
	n = add(buf, size, n, "  dsm fault latency: %llu faults, p50 <= %llu us, "
		"p99 <= %llu us, max %llu us; histogram (us bucket: count):",
		(unsigned long long)d->lat_count,
		(unsigned long long)dsm_mem__lat_quantile_us(d, 0.5),
		(unsigned long long)dsm_mem__lat_quantile_us(d, 0.99),
		(unsigned long long)(d->lat_max_ns / 1000));
	for (unsigned b = 0; b < DSM_MEM_LAT_BUCKETS; b++)
		if (d->lat_hist[b])
			n = add(buf, size, n, " <%llu:%llu",
				(unsigned long long)(1ull << b),
				(unsigned long long)d->lat_hist[b]);
	if (d->held_msgs || d->hot[0].count) {
		n = add(buf, size, n, "\n  dsm hold: %llu messages held, "
			"%llu us in all; most lost pages (gpa: times):",
			(unsigned long long)d->held_msgs,
			(unsigned long long)(d->held_ns / 1000));
		for (unsigned i = 0; i < DSM_MEM_HOT_PAGES; i++)
			if (d->hot[i].count)
				n = add(buf, size, n, " 0x%llx:%llu",
					(unsigned long long)d->hot[i].gpa,
					(unsigned long long)d->hot[i].count);
	}
	n = add(buf, size, n, "\n  dsm messages sent/received by type:");
	for (t = 0; t < DSM_MSG_NR_TYPES; t++)
		if (d->core.msgs_sent[t] || d->core.msgs_received[t])
			n = add(buf, size, n, " %s %llu/%llu",
				dsm_msg__type_name(DSM_MSG_READ_REQ + t),
				(unsigned long long)d->core.msgs_sent[t],
				(unsigned long long)d->core.msgs_received[t]);
	n = add(buf, size, n, "\n  interrupts: delivered to other nodes %llu, "
		"from other nodes %llu, address updates %llu/%llu, level EOIs "
		"%llu/%llu; I/O forwarded %llu (timeouts %llu)\n",
		(unsigned long long)s->irq.deliver_out,
		(unsigned long long)s->irq.deliver_in,
		(unsigned long long)s->irq.addr_out,
		(unsigned long long)s->irq.addr_in,
		(unsigned long long)s->irq.eoi_out,
		(unsigned long long)s->irq.eoi_in,
		(unsigned long long)s->io.requests,
		(unsigned long long)s->io.timeouts);
	if (s->blk.requests || s->blk.queues || s->blk.handoffs)
		n = add(buf, size, n, "  virtio-blk: requests served here %llu"
			" (writes %llu, flushes %llu, failed %llu; "
			"doorbells here %llu, kicks from node 0 %llu), "
			"queues served here %llu, handed to other nodes %llu, "
			"kept for lack of access %llu, flushes sent %llu\n",
			(unsigned long long)s->blk.requests,
			(unsigned long long)s->blk.writes,
			(unsigned long long)s->blk.flushes,
			(unsigned long long)s->blk.failed,
			(unsigned long long)s->blk.doorbells,
			(unsigned long long)s->blk.kicks_in,
			(unsigned long long)s->blk.queues,
			(unsigned long long)s->blk.handoffs,
			(unsigned long long)s->blk.fallbacks,
			(unsigned long long)s->blk.flushes_out);
	return n;
}
