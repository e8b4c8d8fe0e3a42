/* One vCPU's whole state as one self-contained, checksummed blob
 * (vmm/state_blob.h sections): what vCPU migration carries from node to
 * node, and what a checkpoint can store per vCPU.
 *
 * Sections:
 *   "cpu"    CPU_STATE_VERSION   struct cpu_state: registers, segment and
 *                                control registers, XCRs, debug
 *                                registers, vCPU events, the MSR list
 *   "xsave"  VCPU_BLOB_XSAVE_VERSION  the XSAVE area (host-sized: a
 *                                blob loads only where XSAVE has the
 *                                same size)
 *   "lapic"  LAPIC_STATE_VERSION the userspace LAPIC: IRR/ISR/TMR, LVTs,
 *                                timer, TSC deadline, pending NMI/INIT/
 *                                SIPI/ExtINT, PV-EOI MSR (save_ns stamped)
 *   "vcpu"   VCPU_BLOB_VERSION   struct vcpu_blob_extra: what the VMM keeps
 *                                next to KVM (run state, HLT's IF, the
 *                                TSC relation, the timer's min-gap clock)
 *
 * Both calls want a vCPU whose thread is parked (outside KVM_RUN, an I/O
 * exit completed, PV EOI disarmed) and run on any thread. */
#ifndef KRG_VCPU_VCPU_BLOB_H
#define KRG_VCPU_VCPU_BLOB_H

#include <stddef.h>
#include <stdint.h>

#define VCPU_BLOB_VERSION 1
#define VCPU_BLOB_XSAVE_VERSION 1

struct vcpu;

/* Plain and fixed-width: saved as it is. */
struct vcpu_blob_extra {
	uint32_t index;          /* the vCPU it belongs to */
	uint32_t run_state;      /* enum vcpu_run_state */
	uint8_t halt_if;         /* RFLAGS.IF at the HLT */
	uint8_t pad[3];
	uint32_t xsave_size;
	int64_t tsc_offset;      /* guest TSC - host TSC at capture */
	uint64_t guest_tsc;      /* the guest TSC at capture */
	uint64_t host_ns;        /* host monotonic clock at capture */
	uint64_t since_fire_ns;  /* since the LAPIC timer last fired, or ~0 */
};
_Static_assert(sizeof(struct vcpu_blob_extra) == 48,
	       "vcpu_blob_extra is a saved format: bump VCPU_BLOB_VERSION");

/* How the guest TSC comes back. */
enum vcpu_blob_tsc {
	/* Guest TSC - host TSC as at capture, and the LAPIC timer's
	 * deadlines as they were on the host clock: the guest's time went on
	 * while the state travelled (migration between nodes that share the
	 * TSC and the monotonic clock, as the nodes of one host do). */
	VCPU_BLOB_TSC_FOLLOW_HOST,
	/* The guest TSC resumes at its value at capture and a LAPIC timer
	 * keeps its remaining time: the guest's time stood still (a restore,
	 * where every vCPU was captured at once). */
	VCPU_BLOB_TSC_SAVED,
};

/* Captures vCPU v into a new blob (*blob malloc'd, owned by the caller).
 * 0, or -1 with one line in err. */
int vcpu_blob__save(struct vcpu *v, uint8_t **blob, size_t *len, char *err,
		    size_t errlen);

/* Checks everything in the blob (sections, versions, sizes, that it is
 * this vCPU's and that this host's XSAVE size matches) before touching
 * the vCPU, then loads it: KVM state, LAPIC (timer re-armed, address
 * republished), the VMM's side.  extra (may be NULL) receives the
 * blob's vcpu section.  0, or -1 with one line in err (a failure after
 * the checks leaves the vCPU's KVM state partly loaded: load again or
 * do not run it). */
int vcpu_blob__load(struct vcpu *v, const uint8_t *blob, size_t len,
		    enum vcpu_blob_tsc tsc, struct vcpu_blob_extra *extra,
		    char *err, size_t errlen);

#endif
