/* PVM host detection and the PVM guest profile (see PLATFORM.md).
 *
 * On a PVM host guest kernel code is emulated by KVM's instruction emulator,
 * which lacks many instructions.  The profile keeps a stock guest kernel away
 * from them: CPUID masks, and the guest's own command-line switches
 * "noxsave clearcpuid=...", which do take effect.  What remains (int3, which
 * the kernel patches into its own text) the emulation fallback completes.
 *
 * The masks are applied for consistency (KVM's emulator consults the vCPU's
 * CPUID, e.g. it raises #UD for MOVBE without it) and for hosts where they
 * reach the guest.  Here they do not: measured with a CPL0 probe, a CPUID
 * executed by the guest returned the host's leaf 1 ECX and leaf 7 EBX
 * (popcnt, movbe, xsave, avx2, ... set) although KVM_SET_CPUID2 had them
 * clear -- KVM_GET_SUPPORTED_CPUID already lacks them on this host.
 */
#ifndef KRG_VMM_PVM_PROFILE_H
#define KRG_VMM_PVM_PROFILE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "vmm/vm_config.h"

struct kvm_cpuid2;

/* Plain switches added besides clearcpuid=: no XSAVE (xrstor is not
 * emulated; it also takes xsaveopt and the AVX family with it); no soft
 * lockup detector (emulated kernel code legitimately runs for tens of
 * seconds without scheduling, e.g. the boot-time W^X page-table walk, and
 * every report is dozens of slow console lines). */
#define PVM_SWITCHES { "noxsave", "nosoftlockup" }
#define PVM_NR_SWITCHES 2
/* Spacing of LAPIC timer interrupts for Linux guests under the profile
 * (see struct machine's timer_min_gap_ns). */
#define PVM_TIMER_MIN_GAP_NS (20ull * 1000 * 1000)
/* PLATFORM.md's list (Linux feature names), with xsaveopt (noxsave
 * clears it anyway) traded for smap: SMAP's clac/stac around every user
 * copy are not emulated, and Linux reads at most 127 characters here. */
#define PVM_CLEARCPUID_LIST                                                 \
	"popcnt,cx16,avx,avx2,aes,pclmulqdq,sse4_1,sse4_2,bmi1,bmi2,movbe,"  \
	"rdrand,rdseed,fma,f16c,avx512f,sha_ni,adx,abm,smap,ssse3"
/* Linux copies the clearcpuid= value into a 128-byte buffer and drops the
 * last item if it was cut. */
#define PVM_CLEARCPUID_MAX 127

struct pvm_host {
	bool is_pvm;
	bool kvm_pvm_module; /* <sysfs>/module/kvm_pvm exists */
	bool cpuinfo_read;   /* <procfs>/cpuinfo had a flags line */
	bool hw_virt;        /* ... and it lists vmx or svm */
};

/* Looks at <sys_root>/module/kvm_pvm and <proc_root>/cpuinfo (roots are
 * parameters so tests can use a fake tree; NULL means "/sys", "/proc").
 * PVM when the module is loaded, or when cpuinfo was read and shows neither
 * vmx nor svm.  Never fails: what cannot be read counts as absent. */
void pvm_profile__detect(const char *sys_root, const char *proc_root,
			 struct pvm_host *out);

/* Whether the profile applies: on, off, or auto = on exactly on PVM. */
bool pvm_profile__enabled(enum vm_auto_switch choice,
			  const struct pvm_host *host);

/* A CPUID bit group to clear.  @reg is 0..3 for EAX..EDX (the order of
 * vcpu/cpuid.h's enum cpuid_reg, so an entry converts field by field to a
 * struct cpuid_bits).  @subleaf matters only for indexed leaves (7, 0xD). */
struct pvm_cpuid_mask {
	uint32_t leaf, subleaf;
	unsigned reg;
	uint32_t mask;
	const char *name;
};

const struct pvm_cpuid_mask *pvm_profile__cpuid_masks(size_t *count);

/* Clears every mask in a CPUID table (KVM_SET_CPUID2 layout); entries not
 * present are skipped.  Returns how many entries changed. */
unsigned pvm_profile__apply_cpuid(struct kvm_cpuid2 *cpuid);

struct pvm_cmdline_result {
	unsigned added_switches; /* how many of PVM_SWITCHES were added */
	char switches_text[32];   /* those added, space-separated */
	unsigned added_features;  /* clearcpuid items added */
	bool merged;              /* into the user's own clearcpuid= */
	char dropped[128];        /* items that would not fit, comma list */
};

/* Adds "noxsave" and "clearcpuid=<list>" to a kernel command line unless
 * already there: a user's clearcpuid= (the last one, the one Linux reads)
 * is extended with the missing items, as far as Linux's 127-character
 * limit allows (the rest are listed in res->dropped).  New words go before
 * a " -- " (what follows it is init's).  Returns 0, or -1 if the result
 * would not fit in @size, leaving @cmdline unchanged. */
int pvm_profile__amend_cmdline(char *cmdline, size_t size,
			       struct pvm_cmdline_result *res);

/* The line printed at start, e.g. "krg-vmm: PVM host detected (kvm_pvm):
 * guest profile on: ...".  @res may be NULL (command line not amended, e.g.
 * no kernel).  Returns what snprintf would. */
int pvm_profile__summary(const struct pvm_host *host,
			 enum vm_auto_switch choice,
			 const struct pvm_cmdline_result *res, char *buf,
			 size_t size);

#endif
