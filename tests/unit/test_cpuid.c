/* CPUID table helpers: the TSC leaf (0x15) a cluster guest reads instead of
 * calibrating its TSC. */
#include <check.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdlib.h>

#include "vcpu/cpuid.h"

/* What Linux's native_calibrate_tsc computes from leaf 0x15, in its own
 * 32-bit arithmetic. */
static uint32_t linux_tsc_khz(uint32_t eax, uint32_t ebx, uint32_t ecx)
{
	uint32_t crystal_khz = ecx / 1000;

	return crystal_khz * ebx / eax;
}

START_TEST(test_ratio_exact)
{
	uint32_t eax = 0, ebx = 0;

	ck_assert_int_eq(cpuid__tsc_ratio(2700000000ull, 1000000000u, &eax,
					  &ebx), 0);
	ck_assert_uint_eq((uint64_t)ebx * 10, (uint64_t)eax * 27);
	ck_assert_uint_eq(linux_tsc_khz(eax, ebx, 1000000000u), 2700000);
}
END_TEST

START_TEST(test_ratio_awkward_frequencies)
{
	static const uint64_t hz[] = {
		2693812000ull, 3191999000ull, 1000000ull, 5999999999ull,
		2100000001ull, 3400012345ull,
	};

	for (unsigned i = 0; i < sizeof(hz) / sizeof(hz[0]); i++) {
		uint32_t eax = 0, ebx = 0;

		ck_assert_int_eq(cpuid__tsc_ratio(hz[i], 1000000000u, &eax,
						  &ebx), 0);
		ck_assert_uint_ge(eax, 1);
		/* Linux's multiplication must not overflow. */
		ck_assert_uint_le((uint64_t)1000000 * ebx, UINT32_MAX);
		double got = 1e9 * ebx / eax;
		double ppm = (got - (double)hz[i]) / (double)hz[i] * 1e6;

		/* Linux multiplies in 32 bits, so EBX <= 4294 with a 1 GHz
		 * crystal: a few ppm is the best such a ratio can do. */
		ck_assert_msg(ppm < 10 && ppm > -10, "%llu Hz: %u/%u is %.3f ppm "
			      "off", (unsigned long long)hz[i], ebx, eax, ppm);
		uint32_t k = linux_tsc_khz(eax, ebx, 1000000000u);

		uint64_t slack = hz[i] / 100000000 + 2;	/* 10 ppm */

		ck_assert_msg(k + slack >= hz[i] / 1000 &&
			      k <= hz[i] / 1000 + slack,
			      "Linux would see %u kHz for %llu Hz", k,
			      (unsigned long long)hz[i]);
	}
}
END_TEST

START_TEST(test_ratio_bad_input)
{
	uint32_t eax, ebx;

	ck_assert_int_eq(cpuid__tsc_ratio(0, 1000000000u, &eax, &ebx), -1);
	ck_assert_int_eq(cpuid__tsc_ratio(2700000000ull, 0, &eax, &ebx), -1);
	ck_assert_int_eq(cpuid__tsc_ratio(2700000000ull, 999, &eax, &ebx), -1);
}
END_TEST

static struct kvm_cpuid2 *table(uint32_t max_leaf, bool with15)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) +
					     3 * sizeof(c->entries[0]));

	ck_assert_ptr_nonnull(c);
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){
		.function = 0, .eax = max_leaf, .ebx = 0x756e6547 };
	c->entries[c->nent++] = (struct kvm_cpuid_entry2){
		.function = 1, .eax = 0x50654 };
	if (with15)
		c->entries[c->nent++] = (struct kvm_cpuid_entry2){
			.function = 0x15, .eax = 2, .ebx = 200,
			.ecx = 25000000 };
	return c;
}

START_TEST(test_set_leaf_adds_and_raises_max)
{
	struct kvm_cpuid2 *c = table(0xd, false);

	ck_assert_int_eq(cpuid__set_tsc_leaf(&c, 2700000000ull, 1000000000u),
			 0);
	ck_assert_uint_eq(c->nent, 3);
	struct kvm_cpuid_entry2 *e = cpuid__find(c, 0x15, 0);

	ck_assert_ptr_nonnull(e);
	ck_assert_uint_eq(e->ecx, 1000000000u);
	ck_assert_uint_eq(linux_tsc_khz(e->eax, e->ebx, e->ecx), 2700000);
	ck_assert_uint_eq(cpuid__find(c, 0, 0)->eax, 0x15);
	ck_assert_uint_eq(cpuid__find(c, 1, 0)->eax, 0x50654);
	free(c);
}
END_TEST

START_TEST(test_set_leaf_replaces_and_keeps_higher_max)
{
	struct kvm_cpuid2 *c = table(0x1f, true);

	ck_assert_int_eq(cpuid__set_tsc_leaf(&c, 3000000000ull, 1000000000u),
			 0);
	ck_assert_uint_eq(c->nent, 3);
	struct kvm_cpuid_entry2 *e = cpuid__find(c, 0x15, 0);

	ck_assert_uint_eq(e->ecx, 1000000000u);
	ck_assert_uint_eq(linux_tsc_khz(e->eax, e->ebx, e->ecx), 3000000);
	ck_assert_uint_eq(cpuid__find(c, 0, 0)->eax, 0x1f);
	ck_assert_int_eq(cpuid__set_tsc_leaf(&c, 0, 1000000000u), -1);
	free(c);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("cpuid");
	TCase *tc = tcase_create("tsc leaf");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_ratio_exact);
	tcase_add_test(tc, test_ratio_awkward_frequencies);
	tcase_add_test(tc, test_ratio_bad_input);
	tcase_add_test(tc, test_set_leaf_adds_and_raises_max);
	tcase_add_test(tc, test_set_leaf_replaces_and_keeps_higher_max);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
