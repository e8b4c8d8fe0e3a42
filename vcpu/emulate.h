/* The emulation-failure fallback.
 *
 * On a PVM host KVM emulates guest kernel code instruction by instruction and
 * gives up on some instructions: KVM_RUN returns KVM_EXIT_INTERNAL_ERROR,
 * suberror KVM_INTERNAL_ERROR_EMULATION, and (with
 * KVM_CAP_EXIT_ON_EMULATION_FAILURE) the instruction bytes.  This decides,
 * purely from those bytes and the registers, how the VMM completes the
 * instruction, or refuses with a report.  Completed, exactly:
 *
 *   int3         RIP += len, inject #BP (3) as an exception
 *   int imm8     RIP += len, inject interrupt imm8
 *   into         (not in 64-bit mode, where it is #UD and refused)
 *                OF=1: RIP += len, inject #OF (4); OF=0: RIP += len
 *   popcnt, lzcnt, tzcnt  r16/r32/r64 from a register or memory source
 *   lsl, lar     the descriptor read through the GDT or LDT (Linux's NMI
 *                entry finds its CPU number with lsl); ZF as the SDM says
 *
 * Everything else is refused with the Zydis mnemonic and disassembly.
 * BSWAP, BSF and BSR are left to KVM, whose emulator has them (measured).
 * MOVBE never gets here: KVM's emulator raises #UD itself when the vCPU's
 * CPUID lacks it, which on PVM it does while the guest's CPUID instruction
 * shows the host's MOVBE; only clearcpuid=movbe helps (see pvm_profile.h).
 *
 * Event delivery and RIP: PVM delivers an injected exception or interrupt
 * with the guest's current RIP (it has no VM-entry instruction length, and
 * its real-mode path adds a stale one for "soft" events).  So RIP is always
 * advanced here first, interrupts are injected with soft=0, and in real mode
 * int3/into become plain interrupts 3/4 (which the IVT delivers the same
 * way).  Measured on this project's PVM host with a 64-bit CPL0 probe: after
 * int3 and int 0x80 completed like this the handlers saw the next
 * instruction's address pushed; with VMX's convention (RIP left at the INT,
 * soft=1) PVM pushed the INT's own address, so the guest would loop.
 * Skipping the gate DPL check of a real INT n is harmless: the fallback only
 * sees CPL0 code (guest user mode runs natively).  On VT-x/AMD-V these
 * instructions never reach the fallback.
 *
 * Not modelled: the #DB a set RFLAGS.TF would raise after a completed
 * instruction, segment limit checks, and SMAP / protection keys on memory
 * reads; an unreadable or non-canonical operand is refused rather than
 * turned into #PF/#GP.
 */
#ifndef KRG_VMM_EMULATE_H
#define KRG_VMM_EMULATE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct kvm_run;
struct kvm_regs;
struct kvm_sregs;
struct kvm_vcpu_events;

#define EMU_MAX_INSN_LEN 15

enum emu_cpu_mode {
	EMU_MODE_REAL,
	EMU_MODE_VM86,
	EMU_MODE_PROT16,
	EMU_MODE_PROT32,
	EMU_MODE_COMPAT16,
	EMU_MODE_COMPAT32,
	EMU_MODE_LONG64,
};

/* x86 encoding order, the index a ModRM/REX register number names. */
enum emu_gpr {
	EMU_RAX, EMU_RCX, EMU_RDX, EMU_RBX, EMU_RSP, EMU_RBP, EMU_RSI, EMU_RDI,
	EMU_R8, EMU_R9, EMU_R10, EMU_R11, EMU_R12, EMU_R13, EMU_R14, EMU_R15,
	EMU_NR_GPRS
};

#define EMU_RFLAGS_CF (1ull << 0)
#define EMU_RFLAGS_PF (1ull << 2)
#define EMU_RFLAGS_AF (1ull << 4)
#define EMU_RFLAGS_ZF (1ull << 6)
#define EMU_RFLAGS_SF (1ull << 7)
#define EMU_RFLAGS_OF (1ull << 11)
#define EMU_RFLAGS_VM (1ull << 17)
#define EMU_RFLAGS_AC (1ull << 18)
#define EMU_CR0_MP (1ull << 1)
#define EMU_CR0_TS (1ull << 3)
#define EMU_CR4_CET (1ull << 23)
#define EMU_FSW_ES 0x0080

struct emu_regs {
	uint64_t gpr[EMU_NR_GPRS];
	uint64_t rip, rflags;
	/* Segment bases from KVM_GET_SREGS; in 64-bit mode only FS and GS
	 * are used, as the CPU does. */
	uint64_t fs_base, gs_base, cs_base, ds_base, es_base, ss_base;
	/* The descriptor tables, for LSL and LAR. */
	uint64_t gdt_base, ldt_base;
	uint32_t gdt_limit, ldt_limit;
	bool ldt_usable;
	enum emu_cpu_mode mode;
	uint8_t cpl; /* current privilege level (CS.DPL as KVM reports it) */
	uint64_t cr0;    /* for fwait: MP and TS */
	uint64_t cr4;    /* for the hint NOPs: CET */
	uint16_t fpu_fsw; /* x87 status word (KVM_GET_FPU), for fwait */
};

/* Reads guest memory at a linear (virtual) address: 0, or -1 if it cannot
 * (the instruction is then refused; no #PF is injected). */
typedef int (*emu_read_guest_fn)(void *ctx, uint64_t gva, void *buf,
				 size_t len);

struct emu_env {
	emu_read_guest_fn read_guest; /* NULL: memory operands are refused */
	void *ctx;
	/* The guest's CPU lacks ABM / BMI1, so F3 0F BD / F3 0F BC are
	 * BSR / BSF there (and left to KVM).  Zero: the host's CPU has them,
	 * as this project's machines do; emulate__env_from_host() sets them. */
	bool no_lzcnt, no_tzcnt;
};

enum emu_action_kind {
	EMU_DONE,             /* regs updated, RIP advanced: set regs, run */
	EMU_INJECT_EXCEPTION, /* regs updated (RIP advanced), then inject */
	EMU_INJECT_SOFT_INT,  /* regs updated (RIP advanced), then inject */
	EMU_REFUSED,          /* regs untouched; stop with text/reason */
};

struct emu_action {
	enum emu_action_kind kind;
	uint8_t vector;        /* EMU_INJECT_* */
	bool has_error_code;   /* EMU_INJECT_EXCEPTION */
	uint32_t error_code;
	uint8_t insn_len;      /* decoded length; 0 if undecodable */
	char mnemonic[24];     /* Zydis mnemonic, "(bad)" if undecodable */
	char text[96];         /* disassembly, e.g. "lock cmpxchg16b [rdi]" */
	char reason[160];      /* why refused (empty otherwise) */
};

/* Decides and performs the completion of the instruction in @bytes (as
 * KVM reported them, at regs->rip).  Returns 0 when completed (kind is not
 * EMU_REFUSED; *regs updated) and -1 when refused (*regs unchanged). */
int emulate__complete(const uint8_t *bytes, size_t len, struct emu_regs *regs,
		      const struct emu_env *env, struct emu_action *out);

/* Disassembles the first instruction for a report (always NUL-terminates;
 * "(bad: xx xx ..)" when undecodable). */
void emulate__format(const uint8_t *bytes, size_t len, enum emu_cpu_mode mode,
		     uint64_t rip, char *buf, size_t size);

const char *emulate__mode_name(enum emu_cpu_mode mode);

/* The CPU mode from the values KVM_GET_SREGS/KVM_GET_REGS return. */
enum emu_cpu_mode emulate__cpu_mode(uint64_t cr0, uint64_t efer,
				    uint64_t rflags, bool cs_l, bool cs_db);

/* --- glue to the KVM structures the vCPU loop has --- */

/* Copies the instruction bytes of an emulation-failure exit: 0 and *len set
 * when the exit carries them, -1 otherwise (old kernel, capability off, or
 * a different exit). */
int emulate__insn_from_run(const struct kvm_run *run,
			   uint8_t bytes[EMU_MAX_INSN_LEN], size_t *len);

void emulate__regs_from_kvm(const struct kvm_regs *kregs,
			    const struct kvm_sregs *sregs,
			    struct emu_regs *regs);

/* Writes the GPRs, RIP and RFLAGS back (the only state the fallback
 * changes); the rest of *kregs is left as it was. */
void emulate__regs_to_kvm(const struct emu_regs *regs,
			  struct kvm_regs *kregs);

/* Adds the action's event to *events as KVM_GET_VCPU_EVENTS returned it,
 * ready for KVM_SET_VCPU_EVENTS.  0 on success (nothing to do for
 * EMU_DONE), -1 if the action is EMU_REFUSED or an event is already
 * injected or pending (KVM holds one at a time). */
int emulate__apply_events(const struct emu_action *action,
			  struct kvm_vcpu_events *events);

/* Fills no_lzcnt/no_tzcnt from the host CPU's CPUID (PVM passes the host's
 * instruction set through). */
void emulate__env_from_host(struct emu_env *env);

/* --- which instructions the fallback had to handle --- */

#define EMU_STATS_SLOTS 16

struct emu_stats_entry {
	char mnemonic[24];
	uint64_t completed, refused;
};

/* Plain data, one per vCPU (not locked); merge them for a report. */
struct emu_stats {
	struct emu_stats_entry e[EMU_STATS_SLOTS];
	unsigned used;
	uint64_t completed, refused;
	uint64_t untracked; /* events whose mnemonic found no free slot */
};

void emulate__stats_record(struct emu_stats *stats,
			   const struct emu_action *action);
void emulate__stats_merge(struct emu_stats *dst, const struct emu_stats *src);

/* One line, e.g. "emulation fallback: 5 completed, 1 refused: int3 x4,
 * popcnt x1, cmpxchg16b refused x1"; returns what snprintf would. */
int emulate__stats_format(const struct emu_stats *stats, char *buf,
			  size_t size);

#endif
