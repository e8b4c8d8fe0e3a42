/* test=fallback: the instructions KVM's emulator cannot run on a PVM host,
 * where guest kernel mode is emulated, executed in kernel mode (the
 * SYS_FALLBACK service, kchecks.S): popcnt, lzcnt, tzcnt with register
 * and memory sources, int3 and int $0x41 (the handler must see the next
 * instruction's address), clac/stac when CPUID has SMAP, and fwait.  On
 * PVM krg-vmm completes them itself; elsewhere (VT-x, QEMU TCG) the CPU
 * does, with the same results, which makes this a cross-check.  The
 * bit-count cases also run natively in user mode as a second reference.
 *
 * lzcnt and tzcnt are bsr and bsf (the F3 prefix ignored) on a CPU
 * without ABM / BMI1.  The expected semantics follow the vCPU's CPUID;
 * a result that follows the other one exactly is a warning, not a
 * failure, because neither a CPUID mask nor the hypervisor's instruction
 * emulator necessarily agree with it (both seen on PVM: the native CPU
 * runs lzcnt with ABM masked, and KVM's emulator runs tzcnt as bsf with
 * BMI1 shown).  Any other result fails. */
#include "user.h"

#define F_CF		0x001ul
#define F_ZF		0x040ul
#define F_ARITH		0x8d5ul		/* OF SF ZF AF PF CF */
#define F_AC		(1ul << 18)

enum bitop { POPCNT, LZCNT, TZCNT, BSR, BSF };

/* The cases of fb_bitcount (kchecks.S), in order; the sources and preset
 * RAX values are in fb_in. */
static const struct {
	const char *name;
	enum bitop op;
	unsigned width;
} bitcases[FB_NBITS] = {
	{ "popcnt r64, r64", POPCNT, 64 },
	{ "popcnt r64, m64 (rip-relative)", POPCNT, 64 },
	{ "popcnt r32, m32", POPCNT, 32 },
	{ "popcnt r16, r16", POPCNT, 16 },
	{ "lzcnt r64, r64", LZCNT, 64 },
	{ "lzcnt r32, m32", LZCNT, 32 },
	{ "lzcnt r16, r16", LZCNT, 16 },
	{ "tzcnt r64, r64", TZCNT, 64 },
	{ "tzcnt r64, m64", TZCNT, 64 },
	{ "tzcnt r32, r32", TZCNT, 32 },
	{ "lzcnt r64, m64 (rip-relative)", LZCNT, 64 },
	{ "tzcnt r16, m16", TZCNT, 16 },
};

/* Preset RAX, source: fb_in[2n], fb_in[2n + 1]. */
uint64_t fb_in[2 * FB_NBITS] = {
	0, 0xf0f0000000001235ull,
	0, 0x8000000000000001ull,
	~0ull, 0,				/* zero source */
	0x1111222233334444ull, 0xabcdffffull,	/* 16-bit: bits 16-63 kept */
	0, 0x0000010000000000ull,
	~0ull, 0,
	0x5555555555555555ull, 1,
	0, 0x80000,
	~0ull, 0,
	~0ull, 1,				/* result 0: ZF */
	0, 0x7fffffffffffffffull,
	0x7777777777777777ull, 0xffff8000ull,
};

static uint64_t kout[FB_SLOTS] __attribute__((aligned(8)));
static uint64_t uout[FB_SLOTS] __attribute__((aligned(8)));
static unsigned mismatches, warnings;

static const char *const op_names[] = { "popcnt", "lzcnt", "tzcnt", "bsr", "bsf" };

/* The architectural result of op on the case's inputs, computed bit by
 * bit (no builtins, no bit-count instructions); *mask is the set of flags
 * the SDM defines for it, *flags their values, *any_result true where
 * the destination is undefined (bsr/bsf of zero). */
static uint64_t model(unsigned i, enum bitop op, uint64_t *mask, uint64_t *flags,
		      bool *any_result)
{
	unsigned w = bitcases[i].width, n = 0, hi = 0, lo = w;
	uint64_t preset = fb_in[2 * i];
	uint64_t src = fb_in[2 * i + 1] & (w == 64 ? ~0ull : (1ull << w) - 1);
	uint64_t res = 0;

	for (unsigned b = 0; b < w; b++)
		if (src >> b & 1) {
			n++;
			hi = b;
			if (lo == w)
				lo = b;
		}
	*any_result = false;
	*flags = 0;
	switch (op) {
	case POPCNT:
		*mask = F_ARITH;
		res = n;
		*flags = src ? 0 : F_ZF;
		break;
	case LZCNT:
	case TZCNT:
		*mask = F_CF | F_ZF;
		res = !src ? w : op == LZCNT ? w - 1 - hi : lo;
		*flags = (src ? 0 : F_CF) | (res ? 0 : F_ZF);
		break;
	case BSR:
	case BSF:
		*mask = F_ZF;
		*flags = src ? 0 : F_ZF;
		*any_result = !src;
		res = op == BSR ? hi : lo;
		break;
	}
	if (w == 16)
		return (preset & ~0xffffull) | res;
	return res;
}

static bool matches(const uint64_t *out, unsigned i, enum bitop op)
{
	uint64_t mask, flags, res;
	bool any;

	res = model(i, op, &mask, &flags, &any);
	return (any || out[FB_BITS + 2 * i] == res) &&
	       (out[FB_BITS + 2 * i + 1] & mask) == flags;
}

/* One case in one mode: ok, a warning (the other documented semantics),
 * or a mismatch. */
static void judge(unsigned i, const uint64_t *out, const char *mode, enum bitop want,
		  enum bitop other)
{
	uint64_t r = out[FB_BITS + 2 * i], f = out[FB_BITS + 2 * i + 1];
	uint64_t mask, flags, res;
	bool any;

	if (matches(out, i, want))
		return;
	if (want != other && matches(out, i, other)) {
		say("fallback: warning: %s in %s mode ran as %s (result %lx, flags %lx), "
		    "the vCPU's CPUID says %s", bitcases[i].name, mode, op_names[other],
		    r, f & F_ARITH, op_names[want]);
		warnings++;
		return;
	}
	res = model(i, want, &mask, &flags, &any);
	say("fallback: MISMATCH: %s in %s mode: result %lx flags %lx, expected %lx "
	    "flags %lx (of %lx)", bitcases[i].name, mode, r, f & mask, res, flags, mask);
	mismatches++;
}

static void check_bitcounts(bool abm, bool bmi1)
{
	for (unsigned i = 0; i < FB_NBITS; i++) {
		enum bitop op = bitcases[i].op, want = op, other = op;
		unsigned before = mismatches + warnings;

		if (op == LZCNT) {
			want = abm ? LZCNT : BSR;
			other = abm ? BSR : LZCNT;
		} else if (op == TZCNT) {
			want = bmi1 ? TZCNT : BSF;
			other = bmi1 ? BSF : TZCNT;
		}
		judge(i, kout, "kernel", want, other);
		judge(i, uout, "user", want, other);
		if (mismatches + warnings == before)
			say("fallback: %s: %lx, flags %lx: ok in kernel and user mode",
			    bitcases[i].name, kout[FB_BITS + 2 * i],
			    kout[FB_BITS + 2 * i + 1] & F_ARITH);
	}
}

static void check_trap(const char *what, uint64_t rip, uint64_t want, uint64_t cs)
{
	if (rip != want || cs != SEL_KCODE) {
		say("fallback: MISMATCH: %s: the handler saw rip %lx cs %lx, expected rip "
		    "%lx (the next instruction) cs %x", what, rip, cs, want, SEL_KCODE);
		mismatches++;
		return;
	}
	say("fallback: %s: the handler saw the next instruction, %lx: ok", what, rip);
}

extern uint64_t gdt[];

/* lsl/lar in kernel mode (completed by krg-vmm on PVM) against what the
 * guest's own GDT says: the accessed bit as the CPU left it, DPL 0
 * descriptors visible at CPL 0.  User mode ran the same natively; on VT-x
 * or TCG that reads the same GDT (and must hide DPL 0 descriptors), but
 * PVM runs guest user mode on the host's GDT, so it is only reported. */
static void check_segments(void)
{
	uint64_t tss = gdt[SEL_TSS0 / 8];
	static const char *const what[4] = {
		"lsl of the user data segment", "lsl of cpu 0's TSS",
		"lsl of the null selector", "lar of the kernel code segment",
	};
	const unsigned slot[4] = { FB_SEG_LSL_UDATA, FB_SEG_LSL_TSS,
				   FB_SEG_LSL_NULL, FB_SEG_LAR_KCODE };
	const uint64_t kval[4] = {
		0xffffffffull,	/* 0xfffff in 4 KiB units */
		(tss & 0xffff) | ((tss >> 32) & 0xf0000), ~0ull,
		(gdt[SEL_KCODE / 8] >> 32) & 0x00f0ff00,
	};
	const unsigned kzf[4] = { 1, 1, 0, 1 };

	for (unsigned i = 0; i < 4; i++) {
		uint64_t k = kout[slot[i]], u = uout[slot[i]];
		unsigned kz = (kout[FB_SEG_ZF] >> i) & 1;
		unsigned uz = (uout[FB_SEG_ZF] >> i) & 1;

		if (k != kval[i] || kz != kzf[i]) {
			say("fallback: MISMATCH: %s in kernel mode: %lx ZF %u, "
			    "expected %lx ZF %u", what[i], k, kz, kval[i],
			    kzf[i]);
			mismatches++;
			continue;
		}
		say("fallback: %s: %lx ZF %u in kernel mode: ok (user mode "
		    "natively: %lx ZF %u)", what[i], k, kz, u, uz);
	}
}

void test_fallback(unsigned cpu)
{
	uint32_t r[4], max;
	bool popcnt, abm = false, bmi1 = false, smap = false;

	if (cpu != 0)
		return;
	cpuid(0, 0, r);
	max = r[0];
	cpuid(1, 0, r);
	popcnt = r[2] & (1u << 23);
	if (max >= 7) {
		cpuid(7, 0, r);
		bmi1 = r[1] & (1u << 3);
		smap = r[1] & (1u << 20);
	}
	cpuid(0x80000000, 0, r);
	if (r[0] >= 0x80000001) {
		cpuid(0x80000001, 0, r);
		abm = r[2] & (1u << 5);
	}
	/* popcnt runs whatever CPUID says: a PVM host may hide it from CPUID
	 * while the CPU (and krg-vmm's fallback) still runs it. */
	say("fallback: CPUID popcnt %u abm(lzcnt) %u bmi1(tzcnt) %u smap %u", popcnt,
	    abm, bmi1, smap);

	fb_bitcount(uout);
	fb_segments(uout);
	sys2(SYS_FALLBACK, (uint64_t)kout, smap);
	if (kout[FB_DONE] != 0x600d)
		fail("fallback: the kernel-mode checks did not reach their end");
	check_bitcounts(abm, bmi1);
	check_segments();
	check_trap("int3 (#BP)", kout[FB_BP_RIP], kout[FB_BP_WANT], kout[FB_BP_CS]);
	check_trap("int $0x41 (DPL0 gate)", kout[FB_SI_RIP], kout[FB_SI_WANT],
		   kout[FB_SI_CS]);
	if (kout[FB_SI_COUNT] != 1) {
		say("fallback: MISMATCH: the int $0x41 handler ran %lu times",
		    kout[FB_SI_COUNT]);
		mismatches++;
	}
	if (!smap) {
		say("fallback: clac/stac skipped: CPUID.7.0:EBX.SMAP[20] is clear");
	} else if (!(kout[FB_STAC_FL] & F_AC) || (kout[FB_CLAC_FL] & F_AC)) {
		say("fallback: MISMATCH: RFLAGS %lx after stac, %lx after clac (AC is "
		    "bit 18)", kout[FB_STAC_FL], kout[FB_CLAC_FL]);
		mismatches++;
	} else {
		say("fallback: stac set RFLAGS.AC (%lx), clac cleared it (%lx): ok",
		    kout[FB_STAC_FL], kout[FB_CLAC_FL]);
	}
	if (kout[FB_FWAIT] != 1) {
		say("fallback: MISMATCH: the instruction after fwait did not run");
		mismatches++;
	} else {
		say("fallback: fwait: ok (no-op)");
	}
	if (kout[FB_HINT_NOPS] != 1) {
		say("fallback: MISMATCH: the instruction after the hint NOPs did not run");
		mismatches++;
	} else {
		say("fallback: hint NOPs (IBHF, nop [mem]): ok");
	}
	if (mismatches)
		fail("fallback: %u of the checks failed", mismatches);
	say("fallback: all kernel-mode checks ok (%u warnings)", warnings);
}
