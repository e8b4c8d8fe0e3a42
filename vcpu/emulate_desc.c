/* LSL and LAR: what a segment descriptor says, read through the GDT or
 * LDT.  Linux's NMI and paranoid entries on CPUs without RDPID load their
 * CPU number with lsl on a GDT entry whose limit encodes it, and on PVM
 * every guest kernel instruction goes through KVM's emulator, which has
 * neither instruction. */
#include <string.h>

#include "vcpu/emulate_priv.h"

#define DESC_S (1ull << 44)       /* code or data, not a system segment */
#define DESC_G (1ull << 55)       /* limit in 4 KiB units */
#define DESC_TYPE(d) ((unsigned)((d) >> 40) & 0xf)
#define DESC_DPL(d) ((unsigned)((d) >> 45) & 3)
#define TYPE_CODE 0x8u
#define TYPE_CONFORMING 0x4u

/* System descriptor types each instruction accepts (SDM, LSL and LAR):
 * TSSs and LDTs for both, gates for LAR only; IA-32e mode knows no 16-bit
 * TSSs or gates and no task gate. */
static bool system_type_ok(unsigned type, bool lar, bool long_mode)
{
	switch (type) {
	case 0x2: case 0x9: case 0xb:   /* LDT, 32/64-bit TSS */
		return true;
	case 0xc:                       /* 32/64-bit call gate */
		return lar;
	case 0x1: case 0x3:             /* 16-bit TSS */
		return !long_mode;
	case 0x4: case 0x5:             /* 16-bit call gate, task gate */
		return lar && !long_mode;
	default:
		return false;
	}
}

/* Reads the descriptor @sel names; false when the selector is null, lies
 * outside its table or the table cannot be read (ZF=0 then, as the CPU
 * gives; an unreadable table would fault there, which is not modelled). */
static bool read_descriptor(const struct emu_regs *regs,
			    const struct emu_env *env, uint16_t sel,
			    uint64_t *desc)
{
	uint64_t base = regs->gdt_base, limit = regs->gdt_limit;
	uint64_t off = sel & ~7u;
	uint8_t b[8];

	if (sel & 4) {
		if (!regs->ldt_usable)
			return false;
		base = regs->ldt_base;
		limit = regs->ldt_limit;
	} else if (off == 0) {
		return false;
	}
	if (off + 7 > limit || !env || !env->read_guest ||
	    env->read_guest(env->ctx, base + off, b, sizeof(b)))
		return false;
	memcpy(desc, b, sizeof(b));
	return true;
}

static bool descriptor_visible(const struct emu_regs *regs, uint64_t desc,
			       uint16_t sel, bool lar)
{
	unsigned type = DESC_TYPE(desc), dpl = DESC_DPL(desc), rpl = sel & 3;
	bool long_mode = regs->mode == EMU_MODE_LONG64 ||
			 regs->mode == EMU_MODE_COMPAT32 ||
			 regs->mode == EMU_MODE_COMPAT16;

	if (!(desc & DESC_S)) {
		if (!system_type_ok(type, lar, long_mode))
			return false;
	} else if ((type & TYPE_CODE) && (type & TYPE_CONFORMING)) {
		return true; /* conforming code: no privilege check */
	}
	return dpl >= regs->cpl && dpl >= rpl;
}

int emulate__complete_lsl_lar(struct emu_regs *regs, const struct decoded *d,
			      const struct emu_env *env, struct emu_action *out)
{
	const ZydisDecodedOperand *dst = &d->ops[0];
	ZydisRegisterClass cls = ZydisRegisterGetClass(dst->reg.value);
	int id = ZydisRegisterGetId(dst->reg.value);
	bool lar = d->insn.mnemonic == ZYDIS_MNEMONIC_LAR;
	unsigned width = dst->size;
	uint64_t sel, desc, result;

	if (regs->mode == EMU_MODE_REAL || regs->mode == EMU_MODE_VM86)
		return emulate__refuse(out, "%s in %s mode (#UD)", out->text,
				       emulate__mode_name(regs->mode));
	if (d->insn.operand_count_visible != 2 ||
	    dst->type != ZYDIS_OPERAND_TYPE_REGISTER ||
	    (cls != ZYDIS_REGCLASS_GPR16 && cls != ZYDIS_REGCLASS_GPR32 &&
	     cls != ZYDIS_REGCLASS_GPR64) || id < 0 || id >= EMU_NR_GPRS ||
	    (width != 16 && width != 32 && width != 64))
		return emulate__refuse(out, "%s: unexpected destination",
				       out->text);
	if (emulate__source_value(regs, d, env, &sel, out))
		return -1;
	sel &= 0xffff;

	regs->rip = emulate__next_ip(regs, d->insn.length);
	out->kind = EMU_DONE;
	if (!read_descriptor(regs, env, (uint16_t)sel, &desc) ||
	    !descriptor_visible(regs, desc, (uint16_t)sel, lar)) {
		regs->rflags &= ~EMU_RFLAGS_ZF; /* destination unchanged */
		return 0;
	}
	if (lar) {
		result = (desc >> 32) & 0x00f0ff00u;
	} else {
		result = (desc & 0xffff) | ((desc >> 32) & 0xf0000);
		if (desc & DESC_G)
			result = (result << 12) | 0xfff;
	}
	/* 32-bit destinations zero-extend, 16-bit ones merge. */
	if (width == 16)
		regs->gpr[id] = (regs->gpr[id] & ~0xffffull) | (result & 0xffff);
	else
		regs->gpr[id] = result & emulate__width_mask(width);
	regs->rflags |= EMU_RFLAGS_ZF;
	return 0;
}
