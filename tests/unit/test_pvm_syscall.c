/* The pure parts of the PVM syscall completion: IDT gate decoding and the
 * recognition of a SYSCALL stuck at LSTAR in user mode. */
#include <check.h>
#include <string.h>

#include "vcpu/pvm_syscall.h"

static void make_gate(uint8_t g[16], uint64_t off, uint8_t type_attr)
{
	memset(g, 0, 16);
	g[0] = off & 0xFF;
	g[1] = (off >> 8) & 0xFF;
	g[2] = 0x10; /* selector */
	g[5] = type_attr;
	g[6] = (off >> 16) & 0xFF;
	g[7] = (off >> 24) & 0xFF;
	for (int i = 0; i < 4; i++)
		g[8 + i] = (off >> (32 + 8 * i)) & 0xFF;
}

START_TEST(gate_offsets)
{
	uint8_t g[16];

	make_gate(g, 0xffffffff81a01230ull, 0x8E); /* present interrupt gate */
	ck_assert_uint_eq(pvm_syscall__gate_offset(g), 0xffffffff81a01230ull);
	make_gate(g, 0x12345678ull, 0xEF); /* present trap gate, DPL3 */
	ck_assert_uint_eq(pvm_syscall__gate_offset(g), 0x12345678ull);
	make_gate(g, 0xffffffff81a01230ull, 0x0E); /* not present */
	ck_assert_uint_eq(pvm_syscall__gate_offset(g), 0);
	make_gate(g, 0xffffffff81a01230ull, 0x85); /* task gate */
	ck_assert_uint_eq(pvm_syscall__gate_offset(g), 0);
	make_gate(g, 0xffffffff81a01230ull, 0x9E); /* S=1: not a gate */
	ck_assert_uint_eq(pvm_syscall__gate_offset(g), 0);
}
END_TEST

START_TEST(stuck_syscall_frames)
{
	const uint64_t lstar = 0xffffffff81c00000ull;
	/* err, rip, cs, rflags, rsp, ss */
	uint64_t f[6] = { 0, lstar, 0x33, 0x2, 0x7ffc0000, 0x2b };

	ck_assert(pvm_syscall__is_stuck_syscall(f, lstar));
	f[0] = 0x15; /* #PF: instruction fetch of a kernel page at CPL 3 */
	ck_assert(pvm_syscall__is_stuck_syscall(f, lstar));
	f[0] = 0;
	f[1] = lstar + 3; /* faulted later in the entry code */
	ck_assert(!pvm_syscall__is_stuck_syscall(f, lstar));
	f[1] = lstar;
	f[2] = 0x10; /* from kernel mode: a real kernel #GP */
	ck_assert(!pvm_syscall__is_stuck_syscall(f, lstar));
	f[2] = 0x33;
	ck_assert(!pvm_syscall__is_stuck_syscall(f, 0)); /* no LSTAR yet */
}
END_TEST

int main(void)
{
	Suite *s = suite_create("pvm_syscall");
	TCase *tc = tcase_create("core");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, gate_offsets);
	tcase_add_test(tc, stuck_syscall_frames);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? 1 : 0;
}
