/* Software walk of the guest's x86 page tables (see pagewalk.h). */
#include "vcpu/pagewalk.h"

#include <stdbool.h>
#include <string.h>

#define PTE_P (1ull << 0)
#define PTE_PS (1ull << 7)
#define PTE_NX (1ull << 63)
#define PAGE_4K 4096ull

static unsigned effective_maxphyaddr(const struct pagewalk_cpu *cpu)
{
	/* A guest CPUID outside what x86 allows is clamped rather than
	 * trusted, so the masks below never shift by 64 or more. */
	if (cpu->maxphyaddr == 0 || cpu->maxphyaddr > 52)
		return 52;
	if (cpu->maxphyaddr < 32)
		return 32;
	return cpu->maxphyaddr;
}

static bool long_mode_active(const struct pagewalk_cpu *cpu)
{
	if (cpu->efer & PW_EFER_LMA)
		return true;
	return (cpu->efer & PW_EFER_LME) && (cpu->cr0 & PW_CR0_PG) &&
	       (cpu->cr4 & PW_CR4_PAE);
}

static bool is_canonical(uint64_t va, unsigned va_bits)
{
	int64_t sext = (int64_t)(va << (64 - va_bits)) >> (64 - va_bits);

	return (uint64_t)sext == va;
}

static int read_entry64(const struct pagewalk_env *env, uint64_t gpa,
			uint64_t *val)
{
	uint8_t raw[8];

	if (env->read_gpa(env->ctx, gpa, raw, sizeof(raw)))
		return -1;
	memcpy(val, raw, sizeof(*val)); /* x86 host: little endian */
	return 0;
}

static int read_entry32(const struct pagewalk_env *env, uint64_t gpa,
			uint32_t *val)
{
	uint8_t raw[4];

	if (env->read_gpa(env->ctx, gpa, raw, sizeof(raw)))
		return -1;
	memcpy(val, raw, sizeof(*val));
	return 0;
}

/* Bits [hi:lo] set. */
static uint64_t bits(unsigned hi, unsigned lo)
{
	uint64_t upto = hi >= 63 ? ~0ull : (1ull << (hi + 1)) - 1;

	return upto & ~((1ull << lo) - 1);
}

/* The common tail of PAE and long mode walks: entries at @first_level down
 * to the PTE, with large pages allowed where @max_ps_level permits. */
static enum pagewalk_status walk64(const struct pagewalk_env *env,
				   uint64_t gva, uint64_t table,
				   unsigned first_level, unsigned max_ps_level,
				   uint64_t rsvd, struct pagewalk_result *res)
{
	uint64_t addr_mask = bits(effective_maxphyaddr(&env->cpu) - 1, 12);

	for (unsigned level = first_level; level >= 1; level--) {
		unsigned shift = 12 + 9 * (level - 1);
		uint64_t e, size;

		res->level = level;
		if (read_entry64(env, table + ((gva >> shift) & 511) * 8, &e))
			return PAGEWALK_TABLE_UNREADABLE;
		res->entry = e;
		if (!(e & PTE_P))
			return PAGEWALK_NOT_PRESENT;
		if (e & rsvd)
			return PAGEWALK_RESERVED;
		if (level > 1 && !(e & PTE_PS)) {
			table = e & addr_mask;
			continue;
		}
		if (level > max_ps_level)
			return PAGEWALK_RESERVED;
		size = 1ull << shift;
		/* Bit 12 of a large-page entry is PAT; the bits between it
		 * and the page's alignment must be zero. */
		if (level > 1 && (e & bits(shift - 1, 13)))
			return PAGEWALK_RESERVED;
		res->gpa = (e & addr_mask & ~(size - 1)) | (gva & (size - 1));
		res->page_size = size;
		return PAGEWALK_OK;
	}
	return PAGEWALK_BAD_ARG; /* not reached: level 1 always returns */
}

static enum pagewalk_status walk_long(const struct pagewalk_env *env,
				      uint64_t gva, struct pagewalk_result *res)
{
	const struct pagewalk_cpu *cpu = &env->cpu;
	bool la57 = cpu->cr4 & PW_CR4_LA57;
	unsigned m = effective_maxphyaddr(cpu);
	uint64_t rsvd = m < 52 ? bits(51, m) : 0;

	if (!is_canonical(gva, la57 ? 57 : 48))
		return PAGEWALK_NON_CANONICAL;
	if (!(cpu->efer & PW_EFER_NXE))
		rsvd |= PTE_NX;
	/* 1 GiB pages at the PDPTE (level 3); PS is reserved above. */
	return walk64(env, gva, cpu->cr3 & bits(m - 1, 12), la57 ? 5 : 4, 3,
		      rsvd, res);
}

static enum pagewalk_status walk_pae(const struct pagewalk_env *env,
				     uint64_t gva, struct pagewalk_result *res)
{
	const struct pagewalk_cpu *cpu = &env->cpu;
	unsigned m = effective_maxphyaddr(cpu);
	uint64_t rsvd = bits(62, m);
	uint64_t pdpte;

	res->level = 3;
	if (read_entry64(env, (cpu->cr3 & 0xffffffe0ull) + ((gva >> 30) & 3) * 8,
			 &pdpte))
		return PAGEWALK_TABLE_UNREADABLE;
	res->entry = pdpte;
	if (!(pdpte & PTE_P))
		return PAGEWALK_NOT_PRESENT;
	/* PDPTEs have no NX and no PS; bits 2:1 and 8:5 are reserved too. */
	if (pdpte & (bits(63, m) | 0x1e6))
		return PAGEWALK_RESERVED;
	if (!(cpu->efer & PW_EFER_NXE))
		rsvd |= PTE_NX;
	return walk64(env, gva, pdpte & bits(m - 1, 12), 2, 2, rsvd, res);
}

static enum pagewalk_status walk_32(const struct pagewalk_env *env,
				    uint64_t gva, struct pagewalk_result *res)
{
	const struct pagewalk_cpu *cpu = &env->cpu;
	uint32_t pde, pte;

	res->level = 2;
	if (read_entry32(env, (cpu->cr3 & 0xfffff000ull) + (gva >> 22) * 4, &pde))
		return PAGEWALK_TABLE_UNREADABLE;
	res->entry = pde;
	if (!(pde & PTE_P))
		return PAGEWALK_NOT_PRESENT;
	if ((pde & PTE_PS) && (cpu->cr4 & PW_CR4_PSE)) {
		/* PSE-36: PDE bits 20:13 hold physical bits 39:32, as far
		 * as MAXPHYADDR goes; bit 21 and the rest are reserved. */
		unsigned m = effective_maxphyaddr(cpu);
		unsigned high_bits = m >= 40 ? 8 : m > 32 ? m - 32 : 0;
		uint32_t rsvd = (uint32_t)bits(21, 13 + high_bits);
		uint64_t base;

		if (pde & rsvd)
			return PAGEWALK_RESERVED;
		base = (pde & 0xffc00000u) |
		       ((uint64_t)((pde >> 13) & 0xff) << 32);
		res->gpa = base | (gva & 0x3fffff);
		res->page_size = 4ull << 20;
		return PAGEWALK_OK;
	}
	res->level = 1;
	if (read_entry32(env, (pde & 0xfffff000u) + ((gva >> 12) & 1023) * 4,
			 &pte))
		return PAGEWALK_TABLE_UNREADABLE;
	res->entry = pte;
	if (!(pte & PTE_P))
		return PAGEWALK_NOT_PRESENT;
	res->gpa = (pte & 0xfffff000u) | (gva & 0xfff);
	res->page_size = PAGE_4K;
	return PAGEWALK_OK;
}

enum pagewalk_status pagewalk__translate(const struct pagewalk_env *env,
					 uint64_t gva,
					 struct pagewalk_result *res)
{
	const struct pagewalk_cpu *cpu;

	if (!env || !env->read_gpa || !res)
		return PAGEWALK_BAD_ARG;
	cpu = &env->cpu;
	memset(res, 0, sizeof(*res));
	if (!(cpu->cr0 & PW_CR0_PG) || !(cpu->cr0 & PW_CR0_PE)) {
		res->gpa = gva & 0xffffffffull;
		return PAGEWALK_OK;
	}
	if (long_mode_active(cpu))
		return walk_long(env, gva, res);
	gva &= 0xffffffffull;
	if (cpu->cr4 & PW_CR4_PAE)
		return walk_pae(env, gva, res);
	return walk_32(env, gva, res);
}

enum pagewalk_status pagewalk__read_virt(const struct pagewalk_env *env,
					 uint64_t gva, void *buf, size_t len,
					 uint64_t *fault_gva)
{
	uint8_t *out = buf;
	size_t done = 0;

	if (!env || !env->read_gpa || (!buf && len))
		return PAGEWALK_BAD_ARG;
	while (done < len) {
		uint64_t va = gva + done;
		size_t chunk = PAGE_4K - (va & (PAGE_4K - 1));
		struct pagewalk_result r;
		enum pagewalk_status st;

		if (chunk > len - done)
			chunk = len - done;
		st = pagewalk__translate(env, va, &r);
		if (st == PAGEWALK_OK &&
		    env->read_gpa(env->ctx, r.gpa, out + done, chunk))
			st = PAGEWALK_DATA_UNREADABLE;
		if (st != PAGEWALK_OK) {
			if (fault_gva)
				*fault_gva = va;
			return st;
		}
		done += chunk;
	}
	return PAGEWALK_OK;
}

int pagewalk__read_guest(void *ctx, uint64_t gva, void *buf, size_t len)
{
	struct pagewalk_env *env = ctx;
	uint64_t fault = gva;
	enum pagewalk_status st;

	if (!env)
		return -1;
	st = pagewalk__read_virt(env, gva, buf, len, &fault);
	env->last_status = st;
	env->last_gva = fault;
	return st == PAGEWALK_OK ? 0 : -1;
}

const char *pagewalk__strerror(enum pagewalk_status status)
{
	switch (status) {
	case PAGEWALK_OK:
		return "ok";
	case PAGEWALK_NOT_PRESENT:
		return "page not present";
	case PAGEWALK_NON_CANONICAL:
		return "non-canonical address";
	case PAGEWALK_RESERVED:
		return "reserved bit set in a paging entry";
	case PAGEWALK_TABLE_UNREADABLE:
		return "paging structure outside guest RAM";
	case PAGEWALK_DATA_UNREADABLE:
		return "data outside guest RAM";
	case PAGEWALK_BAD_ARG:
		break;
	}
	return "invalid page walk request";
}
