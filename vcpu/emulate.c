/* The emulation-failure fallback: decode with Zydis, complete a short list
 * of instructions, refuse the rest with a report (see emulate.h). */
#include "vcpu/emulate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include <Zydis/Zydis.h>

#include "vcpu/emulate_priv.h"

#define ARITH_FLAGS (EMU_RFLAGS_CF | EMU_RFLAGS_PF | EMU_RFLAGS_AF | \
		     EMU_RFLAGS_ZF | EMU_RFLAGS_SF | EMU_RFLAGS_OF)

const char *emulate__mode_name(enum emu_cpu_mode mode)
{
	switch (mode) {
	case EMU_MODE_REAL: return "real";
	case EMU_MODE_VM86: return "virtual-8086";
	case EMU_MODE_PROT16: return "16-bit protected";
	case EMU_MODE_PROT32: return "32-bit protected";
	case EMU_MODE_COMPAT16: return "16-bit compatibility";
	case EMU_MODE_COMPAT32: return "32-bit compatibility";
	case EMU_MODE_LONG64: return "64-bit";
	}
	return "unknown";
}

enum emu_cpu_mode emulate__cpu_mode(uint64_t cr0, uint64_t efer,
				    uint64_t rflags, bool cs_l, bool cs_db)
{
	if (!(cr0 & 1))
		return EMU_MODE_REAL;
	if (rflags & EMU_RFLAGS_VM)
		return EMU_MODE_VM86;
	if (efer & (1ull << 10)) /* LMA */
		return cs_l ? EMU_MODE_LONG64 :
		       cs_db ? EMU_MODE_COMPAT32 : EMU_MODE_COMPAT16;
	return cs_db ? EMU_MODE_PROT32 : EMU_MODE_PROT16;
}

static ZyanStatus decode(const uint8_t *bytes, size_t len,
			 enum emu_cpu_mode mode, const struct emu_env *env,
			 struct decoded *d)
{
	ZydisMachineMode mm = ZYDIS_MACHINE_MODE_REAL_16;
	ZydisStackWidth sw = ZYDIS_STACK_WIDTH_16;
	ZydisDecoder dec;

	switch (mode) {
	case EMU_MODE_LONG64:
		mm = ZYDIS_MACHINE_MODE_LONG_64, sw = ZYDIS_STACK_WIDTH_64;
		break;
	case EMU_MODE_COMPAT32:
		mm = ZYDIS_MACHINE_MODE_LONG_COMPAT_32, sw = ZYDIS_STACK_WIDTH_32;
		break;
	case EMU_MODE_COMPAT16:
		mm = ZYDIS_MACHINE_MODE_LONG_COMPAT_16;
		break;
	case EMU_MODE_PROT32:
		mm = ZYDIS_MACHINE_MODE_LEGACY_32, sw = ZYDIS_STACK_WIDTH_32;
		break;
	case EMU_MODE_PROT16:
		mm = ZYDIS_MACHINE_MODE_LEGACY_16;
		break;
	case EMU_MODE_REAL:
	case EMU_MODE_VM86:
		break;
	}
	if (!bytes || !len)
		return ZYDIS_STATUS_NO_MORE_DATA;
	if (ZYAN_FAILED(ZydisDecoderInit(&dec, mm, sw)))
		return ZYAN_STATUS_INVALID_ARGUMENT;
	ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_LZCNT,
			       !(env && env->no_lzcnt));
	ZydisDecoderEnableMode(&dec, ZYDIS_DECODER_MODE_TZCNT,
			       !(env && env->no_tzcnt));
	if (len > EMU_MAX_INSN_LEN)
		len = EMU_MAX_INSN_LEN;
	return ZydisDecoderDecodeFull(&dec, bytes, len, &d->insn, d->ops);
}

static void format_decoded(const struct decoded *d, uint64_t rip, char *buf,
			   size_t size)
{
	ZydisFormatter f;

	if (ZYAN_FAILED(ZydisFormatterInit(&f, ZYDIS_FORMATTER_STYLE_INTEL)) ||
	    ZYAN_FAILED(ZydisFormatterFormatInstruction(&f, &d->insn, d->ops,
			d->insn.operand_count_visible, buf, size, rip, NULL)))
		snprintf(buf, size, "%s", ZydisMnemonicGetString(d->insn.mnemonic));
}

static void hex_bytes(const uint8_t *bytes, size_t len, char *buf, size_t size)
{
	size_t used = 0;

	buf[0] = 0;
	for (size_t i = 0; bytes && i < len && i < EMU_MAX_INSN_LEN; i++) {
		int n = snprintf(buf + used, size - used, "%s%02x", i ? " " : "",
				 bytes[i]);

		if (n < 0 || (size_t)n >= size - used)
			break;
		used += (size_t)n;
	}
}

static const char *zydis_status_text(ZyanStatus status)
{
	if (status == ZYDIS_STATUS_NO_MORE_DATA)
		return "truncated";
	if (status == ZYDIS_STATUS_ILLEGAL_LOCK)
		return "lock prefix not allowed (#UD)";
	if (status == ZYDIS_STATUS_INSTRUCTION_TOO_LONG)
		return "longer than 15 bytes (#GP)";
	return "invalid encoding (#UD)";
}

void emulate__format(const uint8_t *bytes, size_t len, enum emu_cpu_mode mode,
		     uint64_t rip, char *buf, size_t size)
{
	struct decoded d;
	char hex[48];
	ZyanStatus st;

	if (!buf || !size)
		return;
	st = decode(bytes, len, mode, NULL, &d);
	if (ZYAN_SUCCESS(st)) {
		format_decoded(&d, rip, buf, size);
		return;
	}
	hex_bytes(bytes, len, hex, sizeof(hex));
	snprintf(buf, size, "(bad: %s)", hex);
}

int emulate__refuse(struct emu_action *out, const char *fmt, ...)
{
	va_list ap;

	out->kind = EMU_REFUSED;
	va_start(ap, fmt);
	vsnprintf(out->reason, sizeof(out->reason), fmt, ap);
	va_end(ap);
	return -1;
}

/* Where the instruction after this one starts: IP wraps with the code
 * segment's size outside 64-bit mode. */
uint64_t emulate__next_ip(const struct emu_regs *regs, unsigned len)
{
	uint64_t ip = regs->rip + len;

	switch (regs->mode) {
	case EMU_MODE_LONG64:
		return ip;
	case EMU_MODE_PROT32:
	case EMU_MODE_COMPAT32:
		return ip & 0xffffffffull;
	default:
		return ip & 0xffffull;
	}
}

uint64_t emulate__width_mask(unsigned bits)
{
	return bits >= 64 ? ~0ull : (1ull << bits) - 1;
}

/* A general-purpose or instruction-pointer register's value as the
 * instruction sees it (its width); -1 for any other register. */
static int reg_value(const struct emu_regs *regs, const struct decoded *d,
		     ZydisRegister reg, uint64_t *val)
{
	ZydisRegisterClass cls = ZydisRegisterGetClass(reg);
	int id = ZydisRegisterGetId(reg);
	unsigned bits;

	switch (cls) {
	case ZYDIS_REGCLASS_GPR16: bits = 16; break;
	case ZYDIS_REGCLASS_GPR32: bits = 32; break;
	case ZYDIS_REGCLASS_GPR64: bits = 64; break;
	case ZYDIS_REGCLASS_IP:
		bits = reg == ZYDIS_REGISTER_RIP ? 64 :
		       reg == ZYDIS_REGISTER_EIP ? 32 : 16;
		*val = (regs->rip + d->insn.length) & emulate__width_mask(bits);
		return 0;
	default:
		return -1;
	}
	if (id < 0 || id >= EMU_NR_GPRS)
		return -1;
	*val = regs->gpr[id] & emulate__width_mask(bits);
	return 0;
}

static uint64_t segment_base(const struct emu_regs *regs, ZydisRegister seg)
{
	if (regs->mode == EMU_MODE_LONG64) {
		/* Only FS and GS keep a base in 64-bit mode. */
		return seg == ZYDIS_REGISTER_FS ? regs->fs_base :
		       seg == ZYDIS_REGISTER_GS ? regs->gs_base : 0;
	}
	switch (seg) {
	case ZYDIS_REGISTER_ES: return regs->es_base;
	case ZYDIS_REGISTER_CS: return regs->cs_base;
	case ZYDIS_REGISTER_SS: return regs->ss_base;
	case ZYDIS_REGISTER_FS: return regs->fs_base;
	case ZYDIS_REGISTER_GS: return regs->gs_base;
	default: return regs->ds_base;
	}
}

/* Linear address of a memory operand: segment base + (base + index*scale
 * + disp) wrapped to the address size.  Limits are not checked. */
static int linear_address(const struct emu_regs *regs, const struct decoded *d,
			  const ZydisDecodedOperand *op, uint64_t *gva,
			  struct emu_action *out)
{
	uint64_t base = 0, index = 0, off;

	if (op->mem.type != ZYDIS_MEMOP_TYPE_MEM)
		return emulate__refuse(out, "%s: unsupported memory operand kind",
			      out->text);
	if ((op->mem.base != ZYDIS_REGISTER_NONE &&
	     reg_value(regs, d, op->mem.base, &base)) ||
	    (op->mem.index != ZYDIS_REGISTER_NONE &&
	     reg_value(regs, d, op->mem.index, &index)))
		return emulate__refuse(out, "%s: unsupported address register",
			      out->text);
	off = base + index * op->mem.scale + (uint64_t)op->mem.disp.value;
	off &= emulate__width_mask(d->insn.address_width);
	*gva = segment_base(regs, op->mem.segment) + off;
	if (regs->mode != EMU_MODE_LONG64)
		*gva &= 0xffffffffull;
	return 0;
}

int emulate__source_value(const struct emu_regs *regs, const struct decoded *d,
			  const struct emu_env *env, uint64_t *val,
			  struct emu_action *out)
{
	const ZydisDecodedOperand *src = &d->ops[1];
	uint8_t buf[8] = { 0 };
	unsigned len = src->size / 8;
	uint64_t gva = 0;

	if (src->type == ZYDIS_OPERAND_TYPE_REGISTER) {
		if (reg_value(regs, d, src->reg.value, val))
			return emulate__refuse(out, "%s: unexpected source register",
				      out->text);
		return 0;
	}
	if (src->type != ZYDIS_OPERAND_TYPE_MEMORY || len < 2 || len > 8)
		return emulate__refuse(out, "%s: unexpected source operand", out->text);
	if (linear_address(regs, d, src, &gva, out))
		return -1;
	if (!env || !env->read_guest)
		return emulate__refuse(out, "%s: memory source at %#llx and no guest "
			      "memory reader", out->text, (unsigned long long)gva);
	if (env->read_guest(env->ctx, gva, buf, len))
		return emulate__refuse(out, "%s: cannot read %u bytes at guest address "
			      "%#llx (a #PF is not injected)", out->text, len,
			      (unsigned long long)gva);
	memcpy(val, buf, sizeof(*val)); /* little endian, upper bytes 0 */
	return 0;
}

/*
 * POPCNT, LZCNT, TZCNT.  Flags follow the SDM where it defines them; the
 * ones it leaves undefined (OF, SF, AF, PF for LZCNT/TZCNT) are cleared,
 * which is what the project's Intel hosts do natively (measured), so a
 * guest sees the same flags in kernel mode (here) and user mode (native).
 */
static int complete_bitcount(struct emu_regs *regs, const struct decoded *d,
			     const struct emu_env *env, struct emu_action *out)
{
	const ZydisDecodedOperand *dst = &d->ops[0];
	ZydisRegisterClass cls = ZydisRegisterGetClass(dst->reg.value);
	int id = ZydisRegisterGetId(dst->reg.value);
	unsigned width = dst->size;
	uint64_t val, result, flags = regs->rflags & ~ARITH_FLAGS;

	if (d->insn.operand_count_visible != 2 ||
	    dst->type != ZYDIS_OPERAND_TYPE_REGISTER ||
	    (cls != ZYDIS_REGCLASS_GPR16 && cls != ZYDIS_REGCLASS_GPR32 &&
	     cls != ZYDIS_REGCLASS_GPR64) || id < 0 || id >= EMU_NR_GPRS ||
	    (width != 16 && width != 32 && width != 64))
		return emulate__refuse(out, "%s: unexpected destination", out->text);
	if (emulate__source_value(regs, d, env, &val, out))
		return -1;
	val &= emulate__width_mask(width);

	if (d->insn.mnemonic == ZYDIS_MNEMONIC_POPCNT) {
		result = (uint64_t)__builtin_popcountll(val);
		if (!val)
			flags |= EMU_RFLAGS_ZF;
	} else {
		if (!val) {
			result = width;
			flags |= EMU_RFLAGS_CF;
		} else if (d->insn.mnemonic == ZYDIS_MNEMONIC_LZCNT) {
			result = (uint64_t)__builtin_clzll(val) - (64 - width);
		} else {
			result = (uint64_t)__builtin_ctzll(val);
		}
		if (!result)
			flags |= EMU_RFLAGS_ZF;
	}

	/* 32-bit destinations zero-extend, 16-bit ones merge. */
	if (width == 16)
		regs->gpr[id] = (regs->gpr[id] & ~0xffffull) | result;
	else
		regs->gpr[id] = result;
	regs->rflags = flags;
	regs->rip = emulate__next_ip(regs, d->insn.length);
	out->kind = EMU_DONE;
	return 0;
}

/* int3 and into with OF=1: a trap, so the pushed RIP is the next
 * instruction.  Real mode has only the IVT, where the same vector as an
 * interrupt is delivered identically and avoids PVM's real-mode "soft
 * exception" path, which adds an instruction length userspace cannot set. */
static int complete_trap(struct emu_regs *regs, const struct decoded *d,
			 uint8_t vector, struct emu_action *out)
{
	regs->rip = emulate__next_ip(regs, d->insn.length);
	out->vector = vector;
	out->kind = regs->mode == EMU_MODE_REAL ? EMU_INJECT_SOFT_INT :
						  EMU_INJECT_EXCEPTION;
	return 0;
}

static int complete_decoded(struct emu_regs *regs, const struct decoded *d,
			    const struct emu_env *env, struct emu_action *out)
{
	switch (d->insn.mnemonic) {
	case ZYDIS_MNEMONIC_INT3:
		return complete_trap(regs, d, 3, out);
	case ZYDIS_MNEMONIC_INTO:
		if (regs->mode == EMU_MODE_LONG64)
			return emulate__refuse(out, "into is invalid in 64-bit mode (#UD)");
		if (regs->rflags & EMU_RFLAGS_OF)
			return complete_trap(regs, d, 4, out);
		regs->rip = emulate__next_ip(regs, d->insn.length);
		out->kind = EMU_DONE;
		return 0;
	case ZYDIS_MNEMONIC_INT:
		if (regs->mode == EMU_MODE_VM86)
			return emulate__refuse(out, "%s in virtual-8086 mode: IOPL and "
				      "VME redirection are not modelled", out->text);
		if (d->ops[0].type != ZYDIS_OPERAND_TYPE_IMMEDIATE)
			return emulate__refuse(out, "%s: no vector operand", out->text);
		out->vector = (uint8_t)d->ops[0].imm.value.u;
		regs->rip = emulate__next_ip(regs, d->insn.length);
		out->kind = EMU_INJECT_SOFT_INT;
		return 0;
	case ZYDIS_MNEMONIC_POPCNT:
	case ZYDIS_MNEMONIC_LZCNT:
	case ZYDIS_MNEMONIC_TZCNT:
		return complete_bitcount(regs, d, env, out);
	case ZYDIS_MNEMONIC_LSL:
	case ZYDIS_MNEMONIC_LAR:
		return emulate__complete_lsl_lar(regs, d, env, out);
	case ZYDIS_MNEMONIC_FWAIT:
		/* #NM when CR0.MP and CR0.TS, else #MF while an unmasked x87
		 * exception is pending (FSW.ES), else nothing: both are
		 * faults, so RIP stays on the fwait. */
		if ((regs->cr0 & EMU_CR0_MP) && (regs->cr0 & EMU_CR0_TS)) {
			out->vector = 7;
			out->kind = EMU_INJECT_EXCEPTION;
			return 0;
		}
		if (regs->fpu_fsw & EMU_FSW_ES) {
			out->vector = 16;
			out->kind = EMU_INJECT_EXCEPTION;
			return 0;
		}
		regs->rip = emulate__next_ip(regs, d->insn.length);
		out->kind = EMU_DONE;
		return 0;
	case ZYDIS_MNEMONIC_NOP:
		/* The reserved-NOP space (0F 19-0F 1F, ModRM): newer CPUs give
		 * some of it a meaning that a CPU without the feature executes
		 * as a NOP, and KVM's emulator does not know every form (Debian's
		 * 6.1.192 kernel's BPF JIT ends classic BPF programs, e.g. systemd's
		 * seccomp filters, with IBHF, F3 48 0F 1E F8).  A NOP never
		 * touches its memory operand.  With CR4.CET set, the 0F 1E
		 * forms are ENDBR/RDSSP and not ours to skip. */
		if (regs->cr4 & EMU_CR4_CET)
			return emulate__refuse(out, "%s with CR4.CET set", out->text);
		if (d->insn.attributes & ZYDIS_ATTRIB_HAS_LOCK)
			return emulate__refuse(out, "%s with LOCK (#UD)", out->text);
		regs->rip = emulate__next_ip(regs, d->insn.length);
		out->kind = EMU_DONE;
		return 0;
	case ZYDIS_MNEMONIC_CLAC:
	case ZYDIS_MNEMONIC_STAC:
		/* SMAP's user-access window: only EFLAGS.AC changes.  Outside
		 * CPL0 the CPU raises #UD, which we leave to a report. */
		if (regs->cpl != 0)
			return emulate__refuse(out, "%s outside ring 0 (#UD)", out->text);
		if (d->insn.mnemonic == ZYDIS_MNEMONIC_CLAC)
			regs->rflags &= ~EMU_RFLAGS_AC;
		else
			regs->rflags |= EMU_RFLAGS_AC;
		regs->rip = emulate__next_ip(regs, d->insn.length);
		out->kind = EMU_DONE;
		return 0;
	default:
		return emulate__refuse(out, "KVM could not emulate %s and krg-vmm does "
			      "not complete it: %s (%s mode)", out->mnemonic,
			      out->text, emulate__mode_name(regs->mode));
	}
}

/* KVM did not send the bytes (or not enough of them): fetch them at
 * CS:RIP, byte by byte at the end so an unmapped next page only shortens
 * what is read. */
static size_t fetch_insn(const struct emu_regs *regs, const struct emu_env *env,
			 uint8_t *buf)
{
	uint64_t lin = regs->cs_base + regs->rip;
	size_t n = 0;

	if (regs->mode == EMU_MODE_LONG64)
		lin = regs->rip;
	else
		lin &= 0xffffffffull;
	if (!env || !env->read_guest)
		return 0;
	if (!env->read_guest(env->ctx, lin, buf, EMU_MAX_INSN_LEN))
		return EMU_MAX_INSN_LEN;
	while (n < EMU_MAX_INSN_LEN && !env->read_guest(env->ctx, lin + n,
							buf + n, 1))
		n++;
	return n;
}

int emulate__complete(const uint8_t *bytes, size_t len, struct emu_regs *regs,
		      const struct emu_env *env, struct emu_action *out)
{
	uint8_t fetched[EMU_MAX_INSN_LEN];
	struct decoded d;
	char hex[48];
	ZyanStatus st;

	if (!out)
		return -1;
	memset(out, 0, sizeof(*out));
	if (!regs)
		return emulate__refuse(out, "no register state");
	if (!bytes)
		len = 0;
	st = decode(bytes, len, regs->mode, env, &d);
	if (st == ZYDIS_STATUS_NO_MORE_DATA) {
		size_t n = fetch_insn(regs, env, fetched);

		if (n > len) {
			bytes = fetched;
			len = n;
			st = decode(bytes, len, regs->mode, env, &d);
		}
	}
	if (ZYAN_FAILED(st)) {
		snprintf(out->mnemonic, sizeof(out->mnemonic), "(bad)");
		hex_bytes(bytes, len, hex, sizeof(hex));
		snprintf(out->text, sizeof(out->text), "(bad: %s)", hex);
		if (!len)
			return emulate__refuse(out, "no instruction bytes (KVM sent none "
				      "and CS:RIP could not be read)");
		if (regs->mode == EMU_MODE_LONG64 && bytes[0] == 0xce)
			return emulate__refuse(out, "into is invalid in 64-bit mode "
				      "(#UD): %s", hex);
		return emulate__refuse(out, "cannot decode instruction in %s mode, %s: %s",
			      emulate__mode_name(regs->mode),
			      zydis_status_text(st), hex);
	}
	out->insn_len = d.insn.length;
	snprintf(out->mnemonic, sizeof(out->mnemonic), "%s",
		 ZydisMnemonicGetString(d.insn.mnemonic));
	format_decoded(&d, regs->rip, out->text, sizeof(out->text));
	return complete_decoded(regs, &d, env, out);
}
