/* vCPU migration's I/O side, internal to vmm/migrate*.c: the protocol
 * wiring (migrate.c) and the per-vCPU side (migrate_vcpu.c: gates, the
 * held loop, capture, load and the routing switch). */
#ifndef KRG_VMM_MIGRATE_PRIV_H
#define KRG_VMM_MIGRATE_PRIV_H

#include <pthread.h>
#include <stdatomic.h>

#include "vmm/migrate.h"
#include "vmm/vtimer.h"

/* Interrupts held at one sealed gate: distinct messages only (an equal
 * one merges, as in IRR), so this many is far beyond any real burst. */
#define MIGRATE_QUEUE_MAX 4096

enum gate_state {
	GATE_HERE,	/* into the LAPIC */
	GATE_SEALED,	/* queued: the state is being captured */
	GATE_AWAY,	/* forwarded to away_node */
};

struct mslot {
	/* The gate: every delivery to this vCPU on this node takes it. */
	pthread_mutex_t gate;
	enum gate_state state;
	unsigned away_node;
	struct apic_msg *queue;
	unsigned nq, cap;

	/* The vCPU thread's work, under the machine's life_lock. */
	bool parked;		/* in migrate__vcpu_held */
	bool report_park;	/* PARK asked: say when parked */
	bool do_capture;
	bool do_load;
	uint64_t t_paused;
	uint8_t *blob;		/* T: the state to load (the thread takes it) */
	size_t blob_len;
	uint8_t *out_blob;	/* S: the captured state, until sent */
	size_t out_len;
};

struct migrate {
	struct machine *m;
	unsigned self, nr_nodes, nr_vcpus;
	pthread_mutex_t lock;	/* proto, result, timer */
	pthread_cond_t cond;	/* a result arrived */
	struct migrate_proto *proto;
	struct vtimer timer;
	bool have_result;
	struct migrate_msg result;
	uint64_t last_down_ns, max_down_ns;	/* of the results here */
	struct mslot *slot;
	atomic_uint_fast64_t forwarded, queued, dropped;
	atomic_bool drop_logged;
	bool trace;		/* KRG_MIGRATE_TRACE: log every action */
};

/* migrate.c: runs out's actions (lock held). */
void migrate__run(struct migrate *mg, struct migrate_acts *out);
/* Sends one message (not STATE) to node; a message to this node itself
 * goes straight into the protocol (lock held). */
void migrate__send(struct migrate *mg, unsigned node, unsigned type,
		   const struct migrate_msg *msg);

/* migrate_vcpu.c: the per-vCPU actions (lock held). */
void migrate_vcpu__init_gate(struct migrate *mg, unsigned vcpu, bool here,
			     unsigned node);
void migrate_vcpu__free_gate(struct mslot *sl);
void migrate_vcpu__park(struct migrate *mg, unsigned vcpu);
void migrate_vcpu__capture(struct migrate *mg, unsigned vcpu);
void migrate_vcpu__send_state(struct migrate *mg, const struct migrate_act *a);
void migrate_vcpu__release(struct migrate *mg, unsigned vcpu);
void migrate_vcpu__hand_over(struct migrate *mg, const struct migrate_act *a);
void migrate_vcpu__load(struct migrate *mg, const struct migrate_act *a);
void migrate_vcpu__discard(struct migrate *mg, unsigned vcpu);
void migrate_vcpu__activate(struct migrate *mg, const struct migrate_act *a);
void migrate_vcpu__place(struct migrate *mg, const struct migrate_act *a);
/* A FORWARD from the transport. */
void migrate_vcpu__forwarded(struct migrate *mg, unsigned sender,
			     const struct migrate_msg *msg);

#endif
