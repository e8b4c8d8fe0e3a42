/* Dropping KVM's shadow page tables when the DSM takes pages away.
 *
 * On a host without two-dimensional paging (PVM, or VT-x/AMD-V with
 * ept=N / npt=0) KVM runs guest user mode on shadow page tables built from
 * the guest's own.  It keeps them right by write-protecting each guest
 * page that serves as a page table and following the guest's stores to it,
 * and it trusts such a shadow page through the guest's TLB flushes.  The
 * DSM changes pages behind KVM's back: another node writes a page, this
 * node's copy is punched out and comes back later with new bytes.  KVM's
 * MMU notifier drops the mappings *of* the punched page, not the shadow
 * pages built *from* it, so user programs here would go on translating
 * through the old entries (test guest: test=coh-pt).  With EPT/NPT the
 * guest's page tables are plain memory and nothing else is needed.
 *
 * Where it is needed, the DSM calls shadow_flush__request after it punched
 * pages out and before its next message leaves.  That closes a gate and
 * kicks this node's vCPUs: each leaves KVM_RUN at its next guest entry (a
 * pending signal stops KVM from entering the guest) and waits at the gate,
 * so no vCPU runs guest code on a shadow page table from then on.  A
 * helper thread then moves a one-page dummy memory slot, which makes KVM
 * invalidate every shadow page of the VM (kvm_mmu_zap_all_fast), and opens
 * the gate; the shadow tables are rebuilt from guest memory on demand.
 * The request never waits: a slot move waits (SRCU) for every vCPU to
 * leave KVM, and a vCPU may be inside KVM waiting for a page that only the
 * DSM, maybe only after this very step's messages, can grant. */
#ifndef KRG_VMM_SHADOW_FLUSH_H
#define KRG_VMM_SHADOW_FLUSH_H

#include <stdbool.h>
#include <stddef.h>

struct machine;
struct shadow_flush;

/* Does this host's KVM use shadow paging?  Looks at <sys_root>/module/
 * kvm_pvm and the ept / npt parameters of kvm_intel / kvm_amd (NULL:
 * "/sys"); why gets the reason in a few words. */
bool shadow_flush__host_needs(const char *sys_root, char *why, size_t len);

/* Creates the dummy slot in m's VM and starts the helper thread.  NULL
 * with one line in err. */
struct shadow_flush *shadow_flush__new(struct machine *m, char *err,
				       size_t errlen);
/* Stops the helper (opening the gate) and frees; NULL is fine. */
void shadow_flush__free(struct shadow_flush *sf);

/* Pages were punched out: keep this node's vCPUs out of the guest until
 * every shadow page has been dropped.  Never blocks; any thread. */
void shadow_flush__request(struct shadow_flush *sf);

/* vCPU threads: before KVM_RUN, and again after announcing in_guest. */
bool shadow_flush__gate_closed(struct shadow_flush *sf);
/* Waits while the gate is closed (or until the machine stops). */
void shadow_flush__wait(struct shadow_flush *sf);

#endif
