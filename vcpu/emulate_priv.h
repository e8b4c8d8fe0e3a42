/* Shared inside the emulation fallback (emulate.c and the instruction
 * groups beside it); not for callers, who use emulate.h. */
#ifndef KRG_VCPU_EMULATE_PRIV_H
#define KRG_VCPU_EMULATE_PRIV_H

#include <Zydis/Zydis.h>

#include "vcpu/emulate.h"

struct decoded {
	ZydisDecodedInstruction insn;
	ZydisDecodedOperand ops[ZYDIS_MAX_OPERAND_COUNT];
};

/* Marks the action refused with a reason; returns -1. */
int emulate__refuse(struct emu_action *out, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

/* Where the instruction after this one starts (IP wraps with the code
 * segment's size outside 64-bit mode). */
uint64_t emulate__next_ip(const struct emu_regs *regs, unsigned len);

uint64_t emulate__width_mask(unsigned bits);

/* The second operand's value: a register, or memory read through
 * env->read_guest (refused when it cannot be read). */
int emulate__source_value(const struct emu_regs *regs, const struct decoded *d,
			  const struct emu_env *env, uint64_t *val,
			  struct emu_action *out);

/* LSL and LAR (emulate_desc.c). */
int emulate__complete_lsl_lar(struct emu_regs *regs, const struct decoded *d,
			      const struct emu_env *env,
			      struct emu_action *out);

#endif
