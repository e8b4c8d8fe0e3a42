/* Unit tests for the emulation-failure fallback (vcpu/emulate.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <linux/kvm.h>

#include "vcpu/emulate.h"

#define ALL_ARITH (EMU_RFLAGS_CF | EMU_RFLAGS_PF | EMU_RFLAGS_AF | \
		   EMU_RFLAGS_ZF | EMU_RFLAGS_SF | EMU_RFLAGS_OF)

/* A window of fake guest memory at a chosen linear address. */
struct fake_mem {
	uint64_t base;
	uint8_t data[1024];
	uint64_t last_gva;
	size_t last_len;
	unsigned calls;
};

static int fake_read(void *ctx, uint64_t gva, void *buf, size_t len)
{
	struct fake_mem *m = ctx;

	m->calls++;
	m->last_gva = gva;
	m->last_len = len;
	if (gva < m->base || gva - m->base > sizeof(m->data) ||
	    len > sizeof(m->data) - (gva - m->base))
		return -1;
	memcpy(buf, m->data + (gva - m->base), len);
	return 0;
}

static struct emu_regs regs64(void)
{
	struct emu_regs r;

	memset(&r, 0, sizeof(r));
	r.mode = EMU_MODE_LONG64;
	r.rip = 0xffffffff81000000ull;
	r.rflags = 0x2;
	for (int i = 0; i < EMU_NR_GPRS; i++)
		r.gpr[i] = 0x1111111111111111ull * (uint64_t)(i + 1);
	return r;
}

#define RUN(r, env, a, ...) ({                                        \
	static const uint8_t b_[] = { __VA_ARGS__ };                  \
	emulate__complete(b_, sizeof(b_), (r), (env), (a));           \
})

/* --- popcnt / lzcnt / tzcnt, register sources --- */

START_TEST(popcnt_reg_widths)
{
	struct emu_regs r = regs64();
	struct emu_action a;
	uint64_t rip = r.rip;

	/* popcnt rax, rcx */
	r.gpr[EMU_RCX] = 0xf0f0000000000001ull;
	r.rflags = 0x2 | ALL_ARITH;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xb8, 0xc1), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_str_eq(a.mnemonic, "popcnt");
	ck_assert_str_eq(a.text, "popcnt rax, rcx");
	ck_assert_uint_eq(r.gpr[EMU_RAX], 9);
	ck_assert_uint_eq(r.rflags, 0x2); /* every arithmetic flag cleared */
	ck_assert_uint_eq(r.rip, rip + 5);
	ck_assert_uint_eq(a.insn_len, 5);

	/* popcnt eax, ecx: only the low 32 bits count; zero-extends */
	r.gpr[EMU_RAX] = 0xdeadbeefcafebabeull;
	r.gpr[EMU_RCX] = 0xffffffff00000003ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x0f, 0xb8, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 2);
	ck_assert_uint_eq(r.rip, rip + 9);

	/* popcnt ax, cx: the upper 48 bits of rax stay */
	r.gpr[EMU_RAX] = 0x1111222233334444ull;
	r.gpr[EMU_RCX] = 0xffffffffffff0007ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x66, 0xf3, 0x0f, 0xb8, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x1111222233330003ull);

	/* popcnt r15, r9 (REX.WRB) with a zero source: ZF */
	r.gpr[EMU_R9] = 0;
	r.rflags = 0x202 | EMU_RFLAGS_CF | EMU_RFLAGS_SF;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x4d, 0x0f, 0xb8, 0xf9), 0);
	ck_assert_str_eq(a.text, "popcnt r15, r9");
	ck_assert_uint_eq(r.gpr[EMU_R15], 0);
	ck_assert_uint_eq(r.rflags, 0x202 | EMU_RFLAGS_ZF);
}
END_TEST

START_TEST(lzcnt_reg)
{
	struct emu_regs r = regs64();
	struct emu_action a;

	r.rflags = 0x2 | ALL_ARITH;
	r.gpr[EMU_RCX] = 1;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbd, 0xc1), 0);
	ck_assert_str_eq(a.mnemonic, "lzcnt");
	ck_assert_uint_eq(r.gpr[EMU_RAX], 63);
	/* CF/ZF clear; OF SF AF PF (undefined) cleared like the host does */
	ck_assert_uint_eq(r.rflags, 0x2);

	r.gpr[EMU_RCX] = 0;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbd, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 64);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_CF);

	r.gpr[EMU_RCX] = 0x8000000000000000ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbd, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_ZF);

	/* lzcnt eax, ecx counts within 32 bits */
	r.gpr[EMU_RAX] = ~0ull;
	r.gpr[EMU_RCX] = 0xffffffff00010000ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x0f, 0xbd, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 15);

	/* lzcnt ax, cx with cx = 0: 16 and CF, upper bits kept */
	r.gpr[EMU_RAX] = 0xaaaabbbbccccddddull;
	r.gpr[EMU_RCX] = 0x12340000ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x66, 0xf3, 0x0f, 0xbd, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0xaaaabbbbcccc0010ull);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_CF);
}
END_TEST

START_TEST(tzcnt_reg)
{
	struct emu_regs r = regs64();
	struct emu_action a;

	r.gpr[EMU_RCX] = 0x100;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbc, 0xc1), 0);
	ck_assert_str_eq(a.mnemonic, "tzcnt");
	ck_assert_uint_eq(r.gpr[EMU_RAX], 8);
	ck_assert_uint_eq(r.rflags & ALL_ARITH, 0);

	r.gpr[EMU_RCX] = 0;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbc, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 64);
	ck_assert_uint_eq(r.rflags & ALL_ARITH, EMU_RFLAGS_CF);

	r.gpr[EMU_RCX] = 1;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xbc, 0xc1), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0);
	ck_assert_uint_eq(r.rflags & ALL_ARITH, EMU_RFLAGS_ZF);

	/* tzcnt edx, ebx with only upper-half bits: 32 and CF */
	r.gpr[EMU_RDX] = ~0ull;
	r.gpr[EMU_RBX] = 0x100000000ull;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x0f, 0xbc, 0xd3), 0);
	ck_assert_uint_eq(r.gpr[EMU_RDX], 32);
	ck_assert_uint_eq(r.rflags & ALL_ARITH, EMU_RFLAGS_CF);

	/* tzcnt si, di: 16-bit */
	r.gpr[EMU_RSI] = 0xffffffffffffffffull;
	r.gpr[EMU_RDI] = 0x8000;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x66, 0xf3, 0x0f, 0xbc, 0xf7), 0);
	ck_assert_uint_eq(r.gpr[EMU_RSI], 0xffffffffffff000full);
}
END_TEST

/* The host CPU's own answer for op rax, rcx at a width, flags in and out
 * (ops: 0 popcnt, 1 lzcnt, 2 tzcnt). */
#define NATIVE(insn, sfx, reg) \
	__asm__ volatile("push %[fin]; popfq; " insn sfx " %" reg "[src], %" reg \
			 "[dst]; pushfq; pop %[fout]" \
			 : [dst] "+r"(dst), [fout] "=&r"(fout) \
			 : [src] "r"(src), [fin] "r"(fin) : "cc", "memory")

static uint64_t native(int op, int width, uint64_t src, uint64_t dst,
		       uint64_t fin, uint64_t *fout_p)
{
	uint64_t fout = 0;

	if (op == 0 && width == 64) NATIVE("popcnt", "q", "q");
	if (op == 0 && width == 32) NATIVE("popcnt", "l", "k");
	if (op == 0 && width == 16) NATIVE("popcnt", "w", "w");
	if (op == 1 && width == 64) NATIVE("lzcnt", "q", "q");
	if (op == 1 && width == 32) NATIVE("lzcnt", "l", "k");
	if (op == 1 && width == 16) NATIVE("lzcnt", "w", "w");
	if (op == 2 && width == 64) NATIVE("tzcnt", "q", "q");
	if (op == 2 && width == 32) NATIVE("tzcnt", "l", "k");
	if (op == 2 && width == 16) NATIVE("tzcnt", "w", "w");
	*fout_p = fout;
	return dst;
}

START_TEST(matches_host_cpu)
{
	static const uint8_t opc[] = { 0xb8, 0xbd, 0xbc };
	uint64_t seed = 0x9e3779b97f4a7c15ull;

	if (!__builtin_cpu_supports("popcnt") || !__builtin_cpu_supports("abm") ||
	    !__builtin_cpu_supports("bmi")) {
		fprintf(stderr, "matches_host_cpu: host lacks popcnt/abm/bmi1, "
			"skipped\n");
		return;
	}
	for (int i = 0; i < 3000; i++) {
		int op = i % 3, width = 16 << (i / 3 % 3);
		struct emu_regs r = regs64();
		struct emu_action a;
		uint8_t b[6];
		size_t n = 0;
		uint64_t src, fin, want, want_flags;

		seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
		/* sparse, dense, and zero values in the low bits */
		src = i % 7 == 0 ? seed & ~0xffffull : i % 5 == 0 ?
		      seed >> (seed & 63) : seed;
		fin = 0x202 | (seed & ALL_ARITH);
		r.gpr[EMU_RAX] = ~seed;
		r.gpr[EMU_RCX] = src;
		r.rflags = fin;
		if (width == 16)
			b[n++] = 0x66;
		b[n++] = 0xf3;
		if (width == 64)
			b[n++] = 0x48;
		b[n++] = 0x0f;
		b[n++] = opc[op];
		b[n++] = 0xc1;
		want = native(op, width, src, ~seed, fin, &want_flags);
		ck_assert_int_eq(emulate__complete(b, n, &r, NULL, &a), 0);
		ck_assert_msg(r.gpr[EMU_RAX] == want,
			      "op %d width %d src %#llx: %#llx, host %#llx", op,
			      width, (unsigned long long)src,
			      (unsigned long long)r.gpr[EMU_RAX],
			      (unsigned long long)want);
		ck_assert_msg((r.rflags & ALL_ARITH) == (want_flags & ALL_ARITH),
			      "op %d width %d src %#llx: flags %#llx, host %#llx",
			      op, width, (unsigned long long)src,
			      (unsigned long long)r.rflags,
			      (unsigned long long)want_flags);
	}
}
END_TEST

/* --- memory sources and effective addresses --- */

START_TEST(mem_sib)
{
	struct emu_regs r = regs64();
	struct fake_mem m = { .base = 0x7000 };
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;
	uint64_t v = 0x00ff00ff00ff00ffull;

	/* popcnt rax, [rbx+rsi*4+0x10] */
	r.gpr[EMU_RBX] = 0x7000;
	r.gpr[EMU_RSI] = 0x8;
	memcpy(m.data + 0x30, &v, 8);
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xb8, 0x44, 0xb3,
			     0x10), 0);
	ck_assert_str_eq(a.text, "popcnt rax, [rbx+rsi*4+0x10]");
	ck_assert_uint_eq(m.last_gva, 0x7030);
	ck_assert_uint_eq(m.last_len, 8);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 32);

	/* lzcnt ecx, dword [rbx+rsi*4-0x20]: 4 bytes read */
	r.gpr[EMU_RSI] = 0x10;
	memcpy(m.data + 0x20, &v, 8);
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x0f, 0xbd, 0x4c, 0xb3, 0xe0), 0);
	ck_assert_uint_eq(m.last_gva, 0x7020);
	ck_assert_uint_eq(m.last_len, 4);
	ck_assert_uint_eq(r.gpr[EMU_RCX], 8); /* 0x00ff00ff */

	/* tzcnt dx, word [rbx]: 2 bytes */
	m.data[0] = 0x00;
	m.data[1] = 0x04;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x66, 0xf3, 0x0f, 0xbc, 0x13), 0);
	ck_assert_uint_eq(m.last_len, 2);
	ck_assert_uint_eq(r.gpr[EMU_RDX] & 0xffff, 10);
}
END_TEST

START_TEST(mem_rip_relative)
{
	struct emu_regs r = regs64();
	struct fake_mem m;
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;

	/* popcnt rax, [rip-0x20]: relative to the next instruction */
	memset(&m, 0, sizeof(m));
	m.base = r.rip + 9 - 0x20;
	m.data[0] = 0x0f;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xb8, 0x05, 0xe0,
			     0xff, 0xff, 0xff), 0);
	ck_assert_uint_eq(m.last_gva, 0xffffffff81000000ull + 9 - 0x20);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 4);
}
END_TEST

START_TEST(mem_segments_64)
{
	struct emu_regs r = regs64();
	struct fake_mem m = { .base = 0x5000 };
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;

	/* fs: and gs: add their bases; ds/es/ss bases do not count */
	r.fs_base = 0x4000;
	r.gs_base = 0x4800;
	r.ds_base = 0x100000;
	r.ss_base = 0x200000;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x64, 0xf3, 0x48, 0x0f, 0xb8, 0x04,
			     0x25, 0x10, 0x10, 0, 0), 0);
	ck_assert_uint_eq(m.last_gva, 0x5010);
	ck_assert_int_eq(RUN(&r, &env, &a, 0x65, 0xf3, 0x48, 0x0f, 0xb8, 0x04,
			     0x25, 0x20, 0x08, 0, 0), 0);
	ck_assert_uint_eq(m.last_gva, 0x5020);
	r.gpr[EMU_RBP] = 0x5008;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xb8, 0x45, 0x08),
			 0);
	ck_assert_uint_eq(m.last_gva, 0x5010);

	/* addr32 popcnt rax, [ebx]: the address wraps to 32 bits */
	r.gpr[EMU_RBX] = 0xffffffff00005040ull;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x67, 0xf3, 0x48, 0x0f, 0xb8, 0x03),
			 0);
	ck_assert_uint_eq(m.last_gva, 0x5040);
}
END_TEST

START_TEST(mem_segments_32_16)
{
	struct emu_regs r = regs64();
	struct fake_mem m = { .base = 0x10000 };
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;

	/* 32-bit: popcnt eax, [ebp-4] goes through SS */
	r.mode = EMU_MODE_PROT32;
	r.rip = 0x8000;
	r.ss_base = 0x10000;
	r.ds_base = 0x90000;
	r.gpr[EMU_RBP] = 0x100;
	m.data[0xfc] = 0x07;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x0f, 0xb8, 0x45, 0xfc), 0);
	ck_assert_str_eq(a.text, "popcnt eax, [ebp-0x04]");
	ck_assert_uint_eq(m.last_gva, 0x100fc);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 3);
	ck_assert_uint_eq(r.rip, 0x8005);

	/* DS base + offset wraps at 4 GiB */
	r.ds_base = 0xfffff000;
	r.gpr[EMU_RBX] = 0x11010;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x0f, 0xb8, 0x03), 0);
	ck_assert_uint_eq(m.last_gva, 0x10010);

	/* real mode: popcnt ax, [bx+si+2], the offset wraps at 64 KiB */
	r.mode = EMU_MODE_REAL;
	r.rip = 0x100;
	r.ds_base = 0x10100;
	r.gpr[EMU_RBX] = 0xffff;
	r.gpr[EMU_RSI] = 0x0003;
	r.gpr[EMU_RAX] = 0xabcd0000ull;
	m.data[0x104] = 0xff;
	m.data[0x105] = 0x01;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x0f, 0xb8, 0x40, 0x02), 0);
	ck_assert_str_eq(a.text, "popcnt ax, [bx+si*1+0x02]");
	ck_assert_uint_eq(m.last_gva, 0x10100 + 0x0004);
	ck_assert_uint_eq(m.last_len, 2);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0xabcd0009ull);
	ck_assert_uint_eq(r.rip, 0x105);
}
END_TEST

START_TEST(mem_unreadable_refused)
{
	struct emu_regs r = regs64(), before;
	struct fake_mem m = { .base = 0x1000 };
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;

	r.gpr[EMU_RBX] = 0xdead0000;
	before = r;
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xb8, 0x03), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_ptr_nonnull(strstr(a.reason, "0xdead0000"));
	ck_assert_ptr_nonnull(strstr(a.reason, "cannot read"));
	ck_assert_mem_eq(&r, &before, sizeof(r));

	/* no reader at all */
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xb8, 0x03), -1);
	ck_assert_ptr_nonnull(strstr(a.reason, "no guest memory reader"));
	ck_assert_mem_eq(&r, &before, sizeof(r));
}
END_TEST

/* --- int3 / int n / into --- */

/* --- lsl / lar through a GDT in fake memory --- */

static const uint64_t test_gdt[] = {
	0,
	0x00af9b000000ffffull,	/* 0x08 kernel code, 64-bit */
	0x00cf93000000ffffull,	/* 0x10 kernel data, 4 KiB units */
	0x0000f30000001005ull,	/* 0x18 user data, limit = Linux's cpu 5, node 1 */
	0x0000890000000067ull,	/* 0x20 64-bit TSS (available) */
	0x00008c0000000000ull,	/* 0x28 call gate */
	0x0000810000000067ull,	/* 0x30 16-bit TSS: no such thing in IA-32e */
	0x00409f0000000fffull,	/* 0x38 conforming code, DPL 0 */
};

static struct emu_regs regs_gdt(struct fake_mem *m, struct emu_env *env)
{
	struct emu_regs r = regs64();

	memset(m, 0, sizeof(*m));
	m->base = 0x7000;
	memcpy(m->data, test_gdt, sizeof(test_gdt));
	*env = (struct emu_env){ fake_read, m, false, false };
	r.gdt_base = 0x7000;
	r.gdt_limit = sizeof(test_gdt) - 1;
	r.rflags = 0x2;
	return r;
}

/* lsl with the selector in ax: 1 if ZF came back set. */
static int lsl_rax(struct emu_regs *r, struct emu_env *env, uint16_t sel)
{
	struct emu_action a;

	r->gpr[EMU_RAX] = sel;
	ck_assert_int_eq(RUN(r, env, &a, 0x48, 0x0f, 0x03, 0xc0), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_str_eq(a.mnemonic, "lsl");
	return !!(r->rflags & EMU_RFLAGS_ZF);
}

START_TEST(lsl_linux_cpunode)
{
	struct fake_mem m;
	struct emu_env env;
	struct emu_regs r = regs_gdt(&m, &env);
	uint64_t rip = r.rip;

	/* Linux's NMI entry: lsl rax, eax on __CPUNODE_SEG (RPL 3). */
	ck_assert_int_eq(lsl_rax(&r, &env, 0x1b), 1);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x1005);
	ck_assert_uint_eq(r.rip, rip + 4);
	ck_assert_uint_eq(m.last_gva, 0x7018);
	/* Page granular: the limit is scaled and zero-extended. */
	ck_assert_int_eq(lsl_rax(&r, &env, 0x10), 1);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0xffffffffull);
	/* A TSS has a limit; a call gate has none for lsl. */
	ck_assert_int_eq(lsl_rax(&r, &env, 0x20), 1);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x67);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x28), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x28); /* unchanged */
	ck_assert_int_eq(lsl_rax(&r, &env, 0x30), 0);
	/* Null, past the GDT limit, an unusable LDT, RPL above DPL. */
	ck_assert_int_eq(lsl_rax(&r, &env, 0x0), 0);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x3), 0);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x40), 0);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x0c), 0);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x13), 0);
	/* Only ZF changes. */
	r.rflags = 0x2 | EMU_RFLAGS_CF | EMU_RFLAGS_OF;
	ck_assert_int_eq(lsl_rax(&r, &env, 0x18), 1);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_CF | EMU_RFLAGS_OF |
				    EMU_RFLAGS_ZF);
}
END_TEST

START_TEST(lsl_privilege_and_ldt)
{
	struct fake_mem m;
	struct emu_env env;
	struct emu_regs r = regs_gdt(&m, &env);

	/* At CPL 3 a DPL 0 data segment is invisible, conforming code is
	 * not. */
	r.cpl = 3;
	ck_assert_int_eq(lsl_rax(&r, &env, 0x13), 0);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x3b), 1);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0xfff);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x1b), 1);
	/* TI=1 reads the LDT. */
	r.cpl = 0;
	r.ldt_usable = true;
	r.ldt_base = 0x7000 + 0x18;
	r.ldt_limit = 7;
	ck_assert_int_eq(lsl_rax(&r, &env, 0x04), 1);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x1005);
	ck_assert_uint_eq(m.last_gva, 0x7018);
	ck_assert_int_eq(lsl_rax(&r, &env, 0x0c), 0);
	/* An unreadable GDT gives ZF=0, not a crash. */
	r.gdt_base = 0xdead0000;
	ck_assert_int_eq(lsl_rax(&r, &env, 0x18), 0);
}
END_TEST

START_TEST(lsl_lar_widths_and_memory)
{
	struct fake_mem m;
	struct emu_env env;
	struct emu_regs r = regs_gdt(&m, &env);
	struct emu_action a;
	uint16_t sel = 0x18;

	/* lsl ecx, eax: zero-extends. */
	r.gpr[EMU_RAX] = 0xffff000000000018ull;
	r.gpr[EMU_RCX] = ~0ull;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x0f, 0x03, 0xc8), 0);
	ck_assert_uint_eq(r.gpr[EMU_RCX], 0x1005);
	/* lsl dx, ax: merges. */
	r.gpr[EMU_RDX] = 0x1234567890abcdefull;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x66, 0x0f, 0x03, 0xd0), 0);
	ck_assert_uint_eq(r.gpr[EMU_RDX], 0x1234567890ab1005ull);
	/* lar rbx, ax: the access rights of the user data segment. */
	ck_assert_int_eq(RUN(&r, &env, &a, 0x48, 0x0f, 0x02, 0xd8), 0);
	ck_assert_str_eq(a.mnemonic, "lar");
	ck_assert_uint_eq(r.gpr[EMU_RBX], 0xf300);
	ck_assert(r.rflags & EMU_RFLAGS_ZF);
	/* lar accepts a call gate, lsl does not. */
	r.gpr[EMU_RAX] = 0x28;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x0f, 0x02, 0xd8), 0);
	ck_assert_uint_eq(r.gpr[EMU_RBX], 0x8c00);
	ck_assert(r.rflags & EMU_RFLAGS_ZF);
	/* lsl eax, word [rsi]: the selector from memory. */
	memcpy(m.data + 0x200, &sel, 2);
	r.gpr[EMU_RSI] = 0x7200;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x0f, 0x03, 0x06), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 0x1005);
	/* Real mode has neither instruction (#UD): refused, regs kept. */
	r.mode = EMU_MODE_REAL;
	r.rip = 0x100;
	ck_assert_int_eq(RUN(&r, &env, &a, 0x0f, 0x03, 0xc0), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_uint_eq(r.rip, 0x100);
}
END_TEST

START_TEST(int3_and_int_n)
{
	struct emu_regs r = regs64();
	struct emu_action a;
	uint64_t rip = r.rip;

	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcc), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_EXCEPTION);
	ck_assert_uint_eq(a.vector, 3);
	ck_assert(!a.has_error_code);
	ck_assert_uint_eq(r.rip, rip + 1);
	ck_assert_str_eq(a.mnemonic, "int3");

	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcd, 0x80), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_SOFT_INT);
	ck_assert_uint_eq(a.vector, 0x80);
	ck_assert_uint_eq(a.insn_len, 2);
	ck_assert_uint_eq(r.rip, rip + 3);
	ck_assert_str_eq(a.text, "int 0x80");

	/* real mode: int3 becomes interrupt 3 (IVT), IP wraps at 64 KiB */
	r.mode = EMU_MODE_REAL;
	r.rip = 0xffff;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcc), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_SOFT_INT);
	ck_assert_uint_eq(a.vector, 3);
	ck_assert_uint_eq(r.rip, 0);
	r.rip = 0xfffe;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcd, 0x10), 0);
	ck_assert_uint_eq(a.vector, 0x10);
	ck_assert_uint_eq(r.rip, 0);

	/* 32-bit protected: EIP wraps at 4 GiB */
	r.mode = EMU_MODE_PROT32;
	r.rip = 0xffffffff;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcc), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_EXCEPTION);
	ck_assert_uint_eq(r.rip, 0);

	/* int n in virtual-8086 mode depends on IOPL/VME: refused */
	r.mode = EMU_MODE_VM86;
	r.rip = 0x10;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcd, 0x21), -1);
	ck_assert_uint_eq(r.rip, 0x10);
}
END_TEST

START_TEST(into_cases)
{
	struct emu_regs r = regs64();
	struct emu_action a;

	r.mode = EMU_MODE_PROT32;
	r.rip = 0x1000;
	r.rflags = 0x202;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xce), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_uint_eq(r.rip, 0x1001);

	r.rflags |= EMU_RFLAGS_OF;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xce), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_EXCEPTION);
	ck_assert_uint_eq(a.vector, 4);
	ck_assert_uint_eq(r.rip, 0x1002);
	ck_assert_uint_eq(r.rflags, 0x202 | EMU_RFLAGS_OF); /* untouched */

	/* #UD in 64-bit mode: refused, not completed */
	r.mode = EMU_MODE_LONG64;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xce), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_ptr_nonnull(strstr(a.reason, "64-bit"));
	ck_assert_ptr_nonnull(strstr(a.reason, "into"));
	ck_assert_uint_eq(r.rip, 0x1002);
}
END_TEST

/* clac/stac (0f 01 ca / 0f 01 cb): only EFLAGS.AC and RIP change. */
START_TEST(clac_stac)
{
	struct emu_regs r = regs64(), before;
	struct emu_action a;

	r.rflags = 0x2 | EMU_RFLAGS_AC | EMU_RFLAGS_ZF;
	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x0f, 0x01, 0xca), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_ZF);
	ck_assert_uint_eq(r.rip, before.rip + 3);
	ck_assert_mem_eq(r.gpr, before.gpr, sizeof(r.gpr));

	ck_assert_int_eq(RUN(&r, NULL, &a, 0x0f, 0x01, 0xcb), 0);
	ck_assert_uint_eq(r.rflags, 0x2 | EMU_RFLAGS_ZF | EMU_RFLAGS_AC);
	ck_assert_uint_eq(r.rip, before.rip + 6);

	/* At CPL3 the CPU raises #UD: refused, nothing changed. */
	r.cpl = 3;
	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x0f, 0x01, 0xca), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_mem_eq(&r, &before, sizeof(r));
}
END_TEST

/* fwait (9b): a no-op unless #NM (CR0.MP+TS) or #MF (FSW.ES) is due;
 * both are faults, so RIP stays put. */
START_TEST(fwait_cases)
{
	struct emu_regs r = regs64(), before;
	struct emu_action a;

	r.cr0 = 0x80050033; /* PG WP NE ET MP PE */
	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x9b), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_uint_eq(r.rip, before.rip + 1);

	r = before;
	r.fpu_fsw = EMU_FSW_ES | 0x1;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x9b), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_EXCEPTION);
	ck_assert_uint_eq(a.vector, 16);
	ck_assert_uint_eq(r.rip, before.rip);

	r = before;
	r.cr0 |= EMU_CR0_TS;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x9b), 0);
	ck_assert_int_eq(a.kind, EMU_INJECT_EXCEPTION);
	ck_assert_uint_eq(a.vector, 7);
	ck_assert_uint_eq(r.rip, before.rip);
}
END_TEST

/* Hint NOPs (0F 19-0F 1F): IBHF as Linux's BPF JIT emits it, ENDBR64, a
 * memory form (never read: no read_guest given); refused with CR4.CET or
 * LOCK. */
START_TEST(hint_nops)
{
	struct emu_regs r = regs64(), before;
	struct emu_action a;

	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0x1e, 0xf8), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_uint_eq(r.rip, before.rip + 5);
	before.rip = r.rip;
	ck_assert_mem_eq(&r, &before, sizeof(r));
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x0f, 0x1d, 0x84, 0x00, 0, 0, 0, 0), 0);
	ck_assert_int_eq(a.kind, EMU_DONE);
	ck_assert_uint_eq(r.rip, before.rip + 8);

	r = before;
	r.cr4 |= EMU_CR4_CET;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0x1e, 0xf8), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_ptr_nonnull(strstr(a.reason, "CET"));
	ck_assert_uint_eq(r.rip, before.rip);
}
END_TEST

/* --- refusals --- */

START_TEST(refuse_unlisted)
{
	struct emu_regs r = regs64(), before;
	struct emu_action a;

	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf0, 0x48, 0x0f, 0xc7, 0x0f), -1);
	ck_assert_int_eq(a.kind, EMU_REFUSED);
	ck_assert_str_eq(a.mnemonic, "cmpxchg16b");
	ck_assert_str_eq(a.text, "lock cmpxchg16b [rdi]");
	ck_assert_ptr_nonnull(strstr(a.reason, "cmpxchg16b"));
	ck_assert_ptr_nonnull(strstr(a.reason, "lock cmpxchg16b [rdi]"));
	ck_assert_mem_eq(&r, &before, sizeof(r));

	ck_assert_int_eq(RUN(&r, NULL, &a, 0x0f, 0xae, 0x2f), -1);
	ck_assert_str_eq(a.mnemonic, "xrstor");
	ck_assert_ptr_nonnull(strstr(a.reason, "xrstor [rdi]"));

	r.mode = EMU_MODE_PROT32;
	before = r;
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xcf), -1);
	ck_assert_str_eq(a.mnemonic, "iretd");
	ck_assert_ptr_nonnull(strstr(a.reason, "32-bit protected"));
	ck_assert_mem_eq(&r, &before, sizeof(r));
}
END_TEST

START_TEST(refuse_garbage)
{
	struct emu_regs r = regs64(), before = r;
	struct emu_action a;

	/* push es does not exist in 64-bit mode */
	ck_assert_int_eq(RUN(&r, NULL, &a, 0x06), -1);
	ck_assert_str_eq(a.mnemonic, "(bad)");
	ck_assert_ptr_nonnull(strstr(a.reason, "cannot decode"));
	ck_assert_ptr_nonnull(strstr(a.reason, "06"));
	/* lock on popcnt is #UD */
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf0, 0xf3, 0x0f, 0xb8, 0xc1), -1);
	ck_assert_ptr_nonnull(strstr(a.reason, "lock"));
	/* truncated, and nothing to fetch the rest with */
	ck_assert_int_eq(RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f), -1);
	ck_assert_ptr_nonnull(strstr(a.reason, "truncated"));
	ck_assert_ptr_nonnull(strstr(a.reason, "f3 48 0f"));
	/* nothing at all */
	ck_assert_int_eq(emulate__complete(NULL, 0, &r, NULL, &a), -1);
	ck_assert_ptr_nonnull(strstr(a.reason, "no instruction bytes"));
	ck_assert_mem_eq(&r, &before, sizeof(r));
	/* 15 prefixes and an opcode: longer than 15 bytes */
	{
		uint8_t b[15];

		memset(b, 0x66, sizeof(b));
		ck_assert_int_eq(emulate__complete(b, sizeof(b), &r, NULL, &a), -1);
		ck_assert_int_eq(a.kind, EMU_REFUSED);
	}
	ck_assert_int_eq(emulate__complete(NULL, 0, NULL, NULL, &a), -1);
	ck_assert_int_eq(emulate__complete(NULL, 0, &r, NULL, NULL), -1);
}
END_TEST

START_TEST(fetch_missing_bytes)
{
	struct emu_regs r = regs64();
	struct fake_mem m;
	struct emu_env env = { fake_read, &m, false, false };
	struct emu_action a;
	static const uint8_t code[] = { 0xf3, 0x48, 0x0f, 0xb8, 0xc1 };

	/* KVM sent 3 bytes; the rest is read at CS:RIP.  The code ends 5
	 * bytes before the window does, so the 15-byte read fails and the
	 * byte-by-byte one stops at the end. */
	memset(&m, 0, sizeof(m));
	m.base = r.rip - (sizeof(m.data) - 5);
	memcpy(m.data + sizeof(m.data) - 5, code, 5);
	r.gpr[EMU_RCX] = 7;
	ck_assert_int_eq(emulate__complete(code, 3, &r, &env, &a), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 3);
	ck_assert_uint_eq(a.insn_len, 5);

	/* no bytes from KVM at all */
	r.rip -= 5;
	r.gpr[EMU_RCX] = 0xff;
	ck_assert_int_eq(emulate__complete(NULL, 0, &r, &env, &a), 0);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 8);
}
END_TEST

START_TEST(no_lzcnt_cpu)
{
	struct emu_regs r = regs64(), before = r;
	struct emu_env env = { NULL, NULL, true, true };
	struct emu_action a;

	/* without ABM/BMI1 the same bytes are bsr/bsf: KVM's business */
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xbd, 0xc1), -1);
	ck_assert_str_eq(a.mnemonic, "bsr");
	ck_assert_int_eq(RUN(&r, &env, &a, 0xf3, 0x48, 0x0f, 0xbc, 0xc1), -1);
	ck_assert_str_eq(a.mnemonic, "bsf");
	ck_assert_mem_eq(&r, &before, sizeof(r));
}
END_TEST

START_TEST(format_text)
{
	static const uint8_t cx16[] = { 0xf0, 0x48, 0x0f, 0xc7, 0x0f };
	static const uint8_t bad[] = { 0x06, 0x07 };
	char buf[96], small[8];

	emulate__format(cx16, sizeof(cx16), EMU_MODE_LONG64, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "lock cmpxchg16b [rdi]");
	emulate__format(bad, sizeof(bad), EMU_MODE_LONG64, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "(bad: 06 07)");
	/* the same bytes are push es; pop es in 32-bit mode */
	emulate__format(bad, sizeof(bad), EMU_MODE_PROT32, 0, buf, sizeof(buf));
	ck_assert_str_eq(buf, "push es");
	emulate__format(cx16, sizeof(cx16), EMU_MODE_LONG64, 0, small,
			sizeof(small));
	ck_assert_uint_lt(strlen(small), sizeof(small));
}
END_TEST

/* Random bytes in every mode: never a crash, and the contract holds. */
START_TEST(random_bytes)
{
	struct fake_mem m = { .base = 0 };
	struct emu_env env = { fake_read, &m, false, false };
	uint64_t seed = 0x243f6a8885a308d3ull;

	for (int i = 0; i < 20000; i++) {
		struct emu_regs r = regs64(), before;
		struct emu_action a;
		uint8_t b[EMU_MAX_INSN_LEN];
		size_t len;
		int rc;

		for (size_t k = 0; k < sizeof(b); k++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			b[k] = (uint8_t)seed;
		}
		/* bias towards the opcodes the fallback handles */
		if (i % 4 == 0) {
			b[0] = 0xf3;
			b[1] = 0x0f;
			b[2] = 0xb8 + (uint8_t)(seed % 6);
		}
		len = 1 + seed % EMU_MAX_INSN_LEN;
		r.mode = (enum emu_cpu_mode)(i % 7);
		r.rip = seed >> 8;
		for (int g = 0; g < EMU_NR_GPRS; g++)
			r.gpr[g] = (seed >> g) & 0x3ff; /* often inside the window */
		before = r;
		rc = emulate__complete(b, len, &r, i % 3 ? &env : NULL, &a);
		ck_assert_int_eq(rc, a.kind == EMU_REFUSED ? -1 : 0);
		ck_assert_uint_le(a.insn_len, len);
		ck_assert_uint_lt(strlen(a.text), sizeof(a.text));
		ck_assert_uint_lt(strlen(a.reason), sizeof(a.reason));
		if (rc) {
			ck_assert_uint_gt(strlen(a.reason), 0);
			ck_assert_mem_eq(&r, &before, sizeof(r));
		} else {
			uint64_t next = before.rip + a.insn_len;

			if (r.mode == EMU_MODE_PROT32 || r.mode == EMU_MODE_COMPAT32)
				next &= 0xffffffffull;
			else if (r.mode != EMU_MODE_LONG64)
				next &= 0xffff;
			ck_assert_uint_gt(a.insn_len, 0);
			ck_assert_uint_eq(r.rip, next);
		}
	}
}
END_TEST

/* --- glue --- */

START_TEST(cpu_mode)
{
	ck_assert_int_eq(emulate__cpu_mode(0x10, 0, 2, false, false), EMU_MODE_REAL);
	ck_assert_int_eq(emulate__cpu_mode(0x11, 0, 2 | EMU_RFLAGS_VM, false,
					   false), EMU_MODE_VM86);
	ck_assert_int_eq(emulate__cpu_mode(0x11, 0, 2, false, true),
			 EMU_MODE_PROT32);
	ck_assert_int_eq(emulate__cpu_mode(0x11, 0, 2, false, false),
			 EMU_MODE_PROT16);
	ck_assert_int_eq(emulate__cpu_mode(0x80000011, 0x500, 2, true, false),
			 EMU_MODE_LONG64);
	ck_assert_int_eq(emulate__cpu_mode(0x80000011, 0x500, 2, false, true),
			 EMU_MODE_COMPAT32);
	ck_assert_int_eq(emulate__cpu_mode(0x80000011, 0x500, 2, false, false),
			 EMU_MODE_COMPAT16);
}
END_TEST

START_TEST(insn_from_run)
{
	struct kvm_run *run = calloc(1, sizeof(*run));
	uint8_t b[EMU_MAX_INSN_LEN];
	size_t len = 0;

	run->exit_reason = KVM_EXIT_INTERNAL_ERROR;
	run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run->emulation_failure.ndata = 3;
	run->emulation_failure.flags =
		KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.insn_size = 2;
	memset(run->emulation_failure.insn_bytes, 0x90, 15);
	run->emulation_failure.insn_bytes[0] = 0xcd;
	run->emulation_failure.insn_bytes[1] = 0x80;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), 0);
	ck_assert_uint_eq(len, 2);
	ck_assert_uint_eq(b[0], 0xcd);
	ck_assert_uint_eq(b[1], 0x80);

	run->emulation_failure.insn_size = 200; /* clamped */
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), 0);
	ck_assert_uint_eq(len, 15);
	run->emulation_failure.insn_size = 0;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), -1);
	run->emulation_failure.insn_size = 2;
	run->emulation_failure.flags = 0;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), -1);
	run->emulation_failure.flags =
		KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES;
	run->emulation_failure.ndata = 1;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), -1);
	run->emulation_failure.ndata = 3;
	run->emulation_failure.suberror = 2;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), -1);
	run->emulation_failure.suberror = KVM_INTERNAL_ERROR_EMULATION;
	run->exit_reason = KVM_EXIT_IO;
	ck_assert_int_eq(emulate__insn_from_run(run, b, &len), -1);
	ck_assert_int_eq(emulate__insn_from_run(NULL, b, &len), -1);
	free(run);
}
END_TEST

START_TEST(regs_roundtrip)
{
	struct kvm_regs k = {
		.rax = 1, .rbx = 2, .rcx = 3, .rdx = 4, .rsi = 5, .rdi = 6,
		.rsp = 7, .rbp = 8, .r8 = 9, .r15 = 16, .rip = 0x1234,
		.rflags = 0x202,
	}, k2;
	struct kvm_sregs s;
	struct emu_regs r;

	memset(&s, 0, sizeof(s));
	s.cr0 = 0x80000011;
	s.efer = 0x500;
	s.cs.l = 1;
	s.fs.base = 0xf5;
	s.gs.base = 0x65;
	s.ss.base = 0x55;
	emulate__regs_from_kvm(&k, &s, &r);
	ck_assert_uint_eq(r.gpr[EMU_RAX], 1);
	ck_assert_uint_eq(r.gpr[EMU_RCX], 3);
	ck_assert_uint_eq(r.gpr[EMU_RDX], 4);
	ck_assert_uint_eq(r.gpr[EMU_RBX], 2);
	ck_assert_uint_eq(r.gpr[EMU_RSP], 7);
	ck_assert_uint_eq(r.gpr[EMU_RBP], 8);
	ck_assert_uint_eq(r.gpr[EMU_RSI], 5);
	ck_assert_uint_eq(r.gpr[EMU_RDI], 6);
	ck_assert_uint_eq(r.gpr[EMU_R8], 9);
	ck_assert_uint_eq(r.gpr[EMU_R15], 16);
	ck_assert_uint_eq(r.fs_base, 0xf5);
	ck_assert_uint_eq(r.gs_base, 0x65);
	ck_assert_uint_eq(r.ss_base, 0x55);
	ck_assert_int_eq(r.mode, EMU_MODE_LONG64);

	r.gpr[EMU_RCX] = 0x33;
	r.gpr[EMU_R15] = 0x1616;
	r.rip = 0x1236;
	memset(&k2, 0xee, sizeof(k2));
	emulate__regs_to_kvm(&r, &k2);
	k.rcx = 0x33;
	k.r15 = 0x1616;
	k.rip = 0x1236;
	ck_assert_mem_eq(&k, &k2, sizeof(k));
}
END_TEST

START_TEST(apply_events)
{
	struct kvm_vcpu_events ev;
	struct emu_action a;

	memset(&ev, 0, sizeof(ev));
	memset(&a, 0, sizeof(a));
	a.kind = EMU_INJECT_EXCEPTION;
	a.vector = 3;
	ck_assert_int_eq(emulate__apply_events(&a, &ev), 0);
	ck_assert_uint_eq(ev.exception.injected, 1);
	ck_assert_uint_eq(ev.exception.nr, 3);
	ck_assert_uint_eq(ev.exception.has_error_code, 0);
	ck_assert_uint_eq(ev.interrupt.injected, 0);
	/* a second event cannot be stacked */
	ck_assert_int_eq(emulate__apply_events(&a, &ev), -1);

	memset(&ev, 0, sizeof(ev));
	a.kind = EMU_INJECT_SOFT_INT;
	a.vector = 0x80;
	ck_assert_int_eq(emulate__apply_events(&a, &ev), 0);
	ck_assert_uint_eq(ev.interrupt.injected, 1);
	ck_assert_uint_eq(ev.interrupt.nr, 0x80);
	ck_assert_uint_eq(ev.interrupt.soft, 0);
	ck_assert_uint_eq(ev.exception.injected, 0);

	memset(&ev, 0, sizeof(ev));
	a.kind = EMU_DONE;
	ck_assert_int_eq(emulate__apply_events(&a, &ev), 0);
	ck_assert_uint_eq(ev.interrupt.injected | ev.exception.injected, 0);
	a.kind = EMU_REFUSED;
	ck_assert_int_eq(emulate__apply_events(&a, &ev), -1);
	ev.nmi.injected = 1;
	a.kind = EMU_INJECT_EXCEPTION;
	ck_assert_int_eq(emulate__apply_events(&a, &ev), -1);
}
END_TEST

/* --- stats --- */

START_TEST(stats)
{
	struct emu_stats s, t;
	struct emu_regs r = regs64();
	struct emu_action a;
	char buf[512];

	memset(&s, 0, sizeof(s));
	for (int i = 0; i < 3; i++) {
		RUN(&r, NULL, &a, 0xcc);
		emulate__stats_record(&s, &a);
	}
	RUN(&r, NULL, &a, 0xf3, 0x48, 0x0f, 0xb8, 0xc1);
	emulate__stats_record(&s, &a);
	RUN(&r, NULL, &a, 0xf0, 0x48, 0x0f, 0xc7, 0x0f);
	emulate__stats_record(&s, &a);
	ck_assert_uint_eq(s.completed, 4);
	ck_assert_uint_eq(s.refused, 1);
	ck_assert_uint_eq(s.used, 3);
	emulate__stats_format(&s, buf, sizeof(buf));
	ck_assert_str_eq(buf, "emulation fallback: 4 completed, 1 refused: "
			 "int3 x3, popcnt x1, cmpxchg16b refused x1");
	/* truncation is safe and the full length is reported */
	ck_assert_int_eq(emulate__stats_format(&s, buf, 10), (int)strlen(
		"emulation fallback: 4 completed, 1 refused: int3 x3, "
		"popcnt x1, cmpxchg16b refused x1"));
	ck_assert_str_eq(buf, "emulation");

	memset(&t, 0, sizeof(t));
	emulate__stats_merge(&t, &s);
	emulate__stats_merge(&t, &s);
	ck_assert_uint_eq(t.completed, 8);
	ck_assert_uint_eq(t.refused, 2);
	ck_assert_uint_eq(t.e[0].completed, 6);

	/* more mnemonics than slots: counted, not itemized */
	memset(&s, 0, sizeof(s));
	memset(&a, 0, sizeof(a));
	for (int i = 0; i < EMU_STATS_SLOTS + 2; i++) {
		snprintf(a.mnemonic, sizeof(a.mnemonic), "m%d", i);
		emulate__stats_record(&s, &a);
	}
	ck_assert_uint_eq(s.used, EMU_STATS_SLOTS);
	ck_assert_uint_eq(s.untracked, 2);
	ck_assert_uint_eq(s.completed, EMU_STATS_SLOTS + 2);
	emulate__stats_format(&s, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "2 more not itemized"));
}
END_TEST

static Suite *emulate_suite(void)
{
	Suite *s = suite_create("emulate");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, popcnt_reg_widths);
	tcase_add_test(tc, clac_stac);
	tcase_add_test(tc, fwait_cases);
	tcase_add_test(tc, hint_nops);
	tcase_add_test(tc, lzcnt_reg);
	tcase_add_test(tc, tzcnt_reg);
	tcase_add_test(tc, matches_host_cpu);
	tcase_add_test(tc, mem_sib);
	tcase_add_test(tc, mem_rip_relative);
	tcase_add_test(tc, mem_segments_64);
	tcase_add_test(tc, mem_segments_32_16);
	tcase_add_test(tc, mem_unreadable_refused);
	tcase_add_test(tc, int3_and_int_n);
	tcase_add_test(tc, into_cases);
	tcase_add_test(tc, refuse_unlisted);
	tcase_add_test(tc, refuse_garbage);
	tcase_add_test(tc, fetch_missing_bytes);
	tcase_add_test(tc, no_lzcnt_cpu);
	tcase_add_test(tc, format_text);
	tcase_add_test(tc, random_bytes);
	tcase_add_test(tc, cpu_mode);
	tcase_add_test(tc, insn_from_run);
	tcase_add_test(tc, regs_roundtrip);
	tcase_add_test(tc, apply_events);
	tcase_add_test(tc, stats);
	tcase_add_test(tc, lsl_linux_cpunode);
	tcase_add_test(tc, lsl_privilege_and_ldt);
	tcase_add_test(tc, lsl_lar_widths_and_memory);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(emulate_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
