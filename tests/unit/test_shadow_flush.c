/* Unit tests for the shadow-paging detection of vmm/shadow_flush.c: which
 * hosts need KVM's shadow page tables dropped when the DSM punches pages. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "vmm/shadow_flush.h"

static char root[64];

static void mkroot(void)
{
	snprintf(root, sizeof(root), "/tmp/shflush.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void rmroot(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

static void make_dirs(const char *rel)
{
	char cmd[256];

	snprintf(cmd, sizeof(cmd), "mkdir -p '%s/%s'", root, rel);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_param(const char *module, const char *param, const char *v)
{
	char dir[128], path[256];
	FILE *f;

	snprintf(dir, sizeof(dir), "module/%s/parameters", module);
	make_dirs(dir);
	snprintf(path, sizeof(path), "%s/%s/%s", root, dir, param);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(v, f);
	fclose(f);
}

static bool needs(char *why, size_t len)
{
	return shadow_flush__host_needs(root, why, len);
}

START_TEST(pvm_module)
{
	char why[32];

	mkroot();
	make_dirs("module/kvm_pvm");
	write_param("kvm_intel", "ept", "Y\n"); /* PVM decides */
	ck_assert(needs(why, sizeof(why)));
	ck_assert_str_eq(why, "PVM (kvm_pvm)");
	rmroot();
}
END_TEST

START_TEST(ept_and_npt)
{
	char why[32];

	mkroot();
	write_param("kvm_intel", "ept", "Y\n");
	ck_assert(!needs(why, sizeof(why)));
	ck_assert_str_eq(why, "EPT/NPT");
	write_param("kvm_intel", "ept", "N\n");
	ck_assert(needs(why, sizeof(why)));
	ck_assert_str_eq(why, "kvm_intel ept=N");
	rmroot();

	mkroot();
	write_param("kvm_amd", "npt", "1\n");
	ck_assert(!needs(why, sizeof(why)));
	write_param("kvm_amd", "npt", "0\n");
	ck_assert(needs(why, sizeof(why)));
	ck_assert_str_eq(why, "kvm_amd npt=0");
	rmroot();
}
END_TEST

START_TEST(nothing_there)
{
	char why[32];

	mkroot();
	ck_assert(!needs(why, sizeof(why)));
	write_param("kvm_intel", "ept", ""); /* unreadable value: not off */
	ck_assert(!needs(why, sizeof(why)));
	rmroot();
}
END_TEST

static Suite *shadow_flush_suite(void)
{
	Suite *s = suite_create("shadow_flush");
	TCase *tc = tcase_create("detect");

	tcase_add_test(tc, pvm_module);
	tcase_add_test(tc, ept_and_npt);
	tcase_add_test(tc, nothing_there);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(shadow_flush_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
