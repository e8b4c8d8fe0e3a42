/* The I/O side of the DSM for one node: connects the pure protocol core
 * (dsm/dsm_proto.h) to real guest RAM with userfaultfd.
 *
 * Guest RAM is one memfd (shmem) mapped at guest_mem's region hvas; KVM and
 * the device models use that mapping, and it is the one registered with
 * userfaultfd (MISSING | WP).  For shmem a page present in the page cache is
 * mapped on access without any MISSING fault, so the rule kept here is:
 *   the memfd holds a page  <=>  this node has access (Shared or Modified),
 *   and a Shared page is write-protected in the registered mapping.
 * Actions map to the kernel as follows (page = one 4 KiB memfd page):
 *   INSTALL       UFFDIO_COPY (+ MODE_WP when read-only) into the hole
 *   MAP_LOCAL     hole: UFFDIO_ZEROPAGE (rw) or a WP copy of zeros (ro);
 *                 present: UFFDIO_WRITEPROTECT on/off, then wake
 *   WRITE_PROTECT UFFDIO_WRITEPROTECT(WP)
 *   ZAP           write-protect (stops guest stores), pread the bytes the
 *                 list's later SENDs need, then fallocate(PUNCH_HOLE) at
 *                 once: that drops the page from the page cache and every
 *                 mapping (KVM follows through its MMU notifier), so the
 *                 next access faults MISSING again.  The hole must exist
 *                 before any SEND leaves: a SEND lets another node go on
 *                 (an INV_ACK completes its write), and it may tell this
 *                 node's vCPUs by another path (an IPI) at once.
 *   SEND          pread() of the memfd (a hole reads as zeros and is not
 *                 allocated, unlike a load through any shared mapping)
 * This code never touches guest memory through the registered mapping.
 *
 * Threads: one fault thread (dsm_mem__start) reads userfaultfd events; the
 * transport's receive threads call dsm_mem__receive.  One mutex per node
 * serialises the core and the execution of its actions.
 *
 * Guest memory written before dsm_mem__create (a loaded kernel) is allowed
 * only in pages this node homes: every other node starts without access.
 *
 * Wiring (per node): guest_mem__create -> numa layout -> (node 0: load the
 * images that land in its own slice) -> dsm_mem__create -> KVM memory
 * slots (any time: same hvas) -> dsm_mem__start -> transport start, its
 * FAST recv callback passing types DSM_MSG_TYPE_FIRST..LAST to
 * dsm_mem__receive -> vCPUs.  Anything written later (an initrd homed on
 * another node) goes through guest_mem__write and faults like a vCPU.
 * A recv callback must never touch guest memory on the transport's thread:
 * the page it faults on may be granted by a message behind it.  Shutdown:
 * vCPUs and device threads -> dsm_mem__stop -> transport stop ->
 * dsm_mem__destroy -> guest_mem__destroy.  No fork() while it runs (guest
 * RAM is MADV_DONTFORK). */
#ifndef KRG_VMM_DSM_MEM_H
#define KRG_VMM_DSM_MEM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "dsm/dsm_proto.h"
#include "vmm/guest_mem.h"

#define DSM_MEM_LAT_BUCKETS 32
#define DSM_MEM_DEFAULT_MAX_REQUESTS 128
#define DSM_MEM_HOT_PAGES 4
/* Upper bound of dsm_mem_config.hold_us (a second is already absurd). */
#define DSM_MEM_MAX_HOLD_US 1000000
/* Defaults of the hold (vmm/machine_cluster.c picks one): a vCPU that
 * faulted resumes and repeats its access within microseconds on a normal
 * host; a PVM-emulated guest kernel runs about 10^4 times slower, so its
 * accesses need a far longer window.  Literals: the help text quotes them. */
#define DSM_MEM_DEFAULT_HOLD_US 100
#define DSM_MEM_PVM_HOLD_US 2000

struct dsm_mem_config {
	struct guest_mem *mem;	/* must outlive the dsm_mem */
	unsigned self;
	unsigned nr_nodes;
	/* 0 = DSM_MEM_DEFAULT_MAX_REQUESTS; same on every node; at least
	 * the number of threads that can fault at once to avoid parking. */
	unsigned max_requests;
	/* Home node of a RAM gpa (pure, identical on every node), e.g.
	 * numa_layout__home_of(); a negative result is a configuration
	 * error reported by dsm_mem__create. */
	int (*home_of)(void *ctx, uint64_t gpa);
	/* Transmits one DSM message to dest on the latency (FAST) channel:
	 * `type` (DSM_MSG_*, inside NET_TYPE_DSM_FIRST..LAST) is the
	 * transport message type, the payload is iov[0..iovcnt) (24-byte
	 * header, then the page if any).  Called with the node lock held:
	 * it must not call back into this dsm_mem, and must not wait for
	 * the peer to make progress (queue instead).  Negative = failed. */
	int (*send)(void *ctx, unsigned dest, unsigned type,
		    const struct iovec *iov, int iovcnt);
	/* A protocol error or an I/O failure: the node can no longer keep
	 * memory coherent; the machine must stop.  Called at most once,
	 * without the node lock, from the fault thread or a receive thread:
	 * it must only tell the machine's main thread, never call
	 * dsm_mem__stop or dsm_mem__destroy itself. */
	void (*fatal)(void *ctx, const char *why);
	/* One line per call ("krg-vmm: dsm: node N: ..."), possibly with
	 * the node lock held; NULL = stderr. */
	void (*log)(void *ctx, const char *line);
	void *ctx;
	/* Minimum hold: write access a local faulter just got over the
	 * network is kept this long before a message taking it away is
	 * honoured (dsm_mem_hold.c); 0 honours at once.  Read copies are
	 * never held.  <= DSM_MEM_MAX_HOLD_US. */
	unsigned hold_us;
	/* dsm_config.track_writes: same on every node. */
	bool track_writes;
	/* Called with the node lock held after pages were punched out and
	 * before the next message leaves (at most once per step): drops any
	 * translation cache built from the old bytes that the kernel's MMU
	 * notifier does not drop (KVM's shadow page tables, see
	 * vmm/shadow_flush.h).  It must not wait for vCPUs: one may be
	 * waiting for a page that only this lock's holder can grant.  NULL:
	 * nothing to drop. */
	void (*drop_translations)(void *ctx);
};

/* Counters.  `core` holds the protocol core's own (messages sent/received
 * by type - index type - DSM_MSG_READ_REQ -, pages, invalidations, local
 * and coalesced faults); the rest is counted by the I/O side. */
struct dsm_mem_stats {
	struct dsm_counters core;
	uint64_t uffd_events;		/* page-fault events read */
	uint64_t read_faults;		/* events classified read */
	uint64_t write_faults;		/* events classified write */
	uint64_t wp_faults;		/* of which write-protect faults */
	uint64_t parked;		/* faults parked on -EBUSY */
	uint64_t installs;		/* INSTALL executed */
	uint64_t map_locals;		/* MAP_LOCAL executed */
	uint64_t write_protects;	/* UFFDIO_WRITEPROTECT(WP) issued */
	uint64_t invalidations;		/* pages punched out (ZAP) */
	uint64_t translation_drops;	/* drop_translations calls */
	uint64_t copy_eexist;		/* UFFDIO_COPY found a page present */
	uint64_t retries;		/* ioctls retried on EAGAIN */
	uint64_t msgs_sent, msgs_received;
	uint64_t pages_sent, pages_received;
	uint64_t bytes_sent, bytes_received;	/* DSM payload bytes */
	uint64_t protocol_errors;
	uint64_t preloaded_pages;	/* present at create: counted by the
					 * core as local write faults */
	/* Fault latency, from reading the uffd event to the wake that gives
	 * the access: bucket 0 is < 1 us, bucket b >= 1 is [2^(b-1), 2^b) us
	 * (the last bucket takes everything longer). */
	uint64_t lat_count;
	uint64_t lat_sum_ns;
	uint64_t lat_max_ns;
	uint64_t lat_hist[DSM_MEM_LAT_BUCKETS];
	/* Minimum hold: messages held back, and their total wait. */
	uint64_t held_msgs;
	uint64_t held_ns;
	/* The pages this node lost access to most often (the ones bouncing
	 * between nodes), most first; count 0 = unused slot. */
	struct {
		uint64_t gpa;
		uint64_t count;
	} hot[DSM_MEM_HOT_PAGES];
};

struct dsm_mem;

/* Checks that userfaultfd can serve this process with the features the
 * DSM needs on shmem (MISSING and WP).  Returns 0, or -1 with one line. */
int dsm_mem__probe(char *err, size_t errlen);

/* Builds the core, registers every RAM region of cfg->mem with
 * userfaultfd and takes over pages already written (this node's homed
 * pages only).  Guest memory must not be accessed by other threads while
 * this runs.  Accesses after it returns block until dsm_mem__start.
 * Returns NULL with one line in err. */
struct dsm_mem *dsm_mem__create(const struct dsm_mem_config *cfg, char *err,
				size_t errlen);
/* Spawns the fault thread.  Returns 0, or -1 with one line in err. */
int dsm_mem__start(struct dsm_mem *dm, char *err, size_t errlen);
/* Joins the fault thread, refuses further messages and unregisters guest
 * RAM from userfaultfd, which wakes every blocked access; from then on the
 * memory is plain local memory, no longer coherent: stop vCPUs and device
 * threads first.  Idempotent. */
void dsm_mem__stop(struct dsm_mem *dm);
/* Stops if needed and frees; guest_mem is left to its owner. */
void dsm_mem__destroy(struct dsm_mem *dm);

/* One DSM message from the transport: `sender` is the authenticated peer,
 * `type` the transport message type.  Validates everything before acting;
 * a bad message is logged, reported through fatal, and returns a negative
 * errno without touching guest memory.  -ESHUTDOWN after stop or after a
 * fatal error (the message is dropped).  Thread-safe. */
int dsm_mem__receive(struct dsm_mem *dm, unsigned sender, unsigned type,
		     const void *payload, size_t len);

/* Snapshot of the counters (consistent: taken under the node lock). */
void dsm_mem__stats(struct dsm_mem *dm, struct dsm_mem_stats *out);
/* Upper bound in microseconds of the bucket holding quantile q (0..1) of
 * the fault latencies; 0 if none was measured. */
uint64_t dsm_mem__lat_quantile_us(const struct dsm_mem_stats *s, double q);

/* For tests and dumps: the node's access to the page holding gpa
 * (DSM_ACC_INVALID for a gpa outside RAM), and whether the node has no
 * outstanding request and no busy directory entry. */
enum dsm_access dsm_mem__access(struct dsm_mem *dm, uint64_t gpa);
bool dsm_mem__idle(struct dsm_mem *dm);

#endif
