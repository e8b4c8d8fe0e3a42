/* Unit tests for PVM detection and the PVM guest profile
 * (vcpu/pvm_profile.c). */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <linux/kvm.h>

#include "vcpu/pvm_profile.h"

#define LIST PVM_CLEARCPUID_LIST

static char root[64];

static void mkroot(void)
{
	snprintf(root, sizeof(root), "/tmp/pvmprof.XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void rmroot(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", root);
	ck_assert_int_eq(system(cmd), 0);
}

static void write_file(const char *rel, const char *text)
{
	char path[256];
	FILE *f;

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	f = fopen(path, "w");
	ck_assert_ptr_nonnull(f);
	fputs(text, f);
	fclose(f);
}

static void make_dir(const char *rel)
{
	char path[256];

	snprintf(path, sizeof(path), "%s/%s", root, rel);
	ck_assert_int_eq(mkdir(path, 0755), 0);
}

static void detect(struct pvm_host *h)
{
	char sys[128], proc[128];

	snprintf(sys, sizeof(sys), "%s/sys", root);
	snprintf(proc, sizeof(proc), "%s/proc", root);
	pvm_profile__detect(sys, proc, h);
}

static const char cpuinfo_novirt[] =
	"processor\t: 0\nvendor_id\t: GenuineIntel\n"
	"flags\t\t: fpu vme de pse tsc msr pae cx8 apic sse2 popcnt\n\n"
	"processor\t: 1\n"
	"flags\t\t: fpu vme de pse tsc msr pae cx8 apic sse2 popcnt\n";
static const char cpuinfo_vmx[] =
	"processor\t: 0\nflags\t\t: fpu vme vmx sse2\nvmx flags\t: ept vpid\n";

START_TEST(detect_module)
{
	struct pvm_host h;

	mkroot();
	make_dir("sys");
	make_dir("sys/module");
	make_dir("sys/module/kvm_pvm");
	make_dir("proc");
	write_file("proc/cpuinfo", cpuinfo_vmx);
	detect(&h);
	ck_assert(h.kvm_pvm_module);
	ck_assert(h.cpuinfo_read);
	ck_assert(h.hw_virt);
	ck_assert(h.is_pvm); /* the module decides even with vmx shown */
	rmroot();
}
END_TEST

START_TEST(detect_no_hw_virt)
{
	struct pvm_host h;

	mkroot();
	make_dir("proc");
	write_file("proc/cpuinfo", cpuinfo_novirt);
	detect(&h);
	ck_assert(!h.kvm_pvm_module);
	ck_assert(h.cpuinfo_read);
	ck_assert(!h.hw_virt);
	ck_assert(h.is_pvm);

	/* svm on the second CPU's line is enough */
	write_file("proc/cpuinfo", "flags\t: fpu sse2\nflags\t: fpu svm sse2\n");
	detect(&h);
	ck_assert(h.hw_virt);
	ck_assert(!h.is_pvm);

	/* whole words only; "vmx flags" is not the flags line */
	write_file("proc/cpuinfo", "flags\t: fpu vmxe svmx\nvmx flags\t: vmx\n");
	detect(&h);
	ck_assert(!h.hw_virt);
	ck_assert(h.is_pvm);
	rmroot();
}
END_TEST

START_TEST(detect_nothing_readable)
{
	struct pvm_host h;

	mkroot();
	/* no cpuinfo: no conclusion, so not PVM */
	detect(&h);
	ck_assert(!h.cpuinfo_read);
	ck_assert(!h.is_pvm);
	/* cpuinfo without a flags line: same */
	make_dir("proc");
	write_file("proc/cpuinfo", "processor\t: 0\n");
	detect(&h);
	ck_assert(!h.cpuinfo_read);
	ck_assert(!h.is_pvm);
	/* kvm_pvm as a plain file is not a loaded module */
	make_dir("sys");
	make_dir("sys/module");
	write_file("sys/module/kvm_pvm", "");
	detect(&h);
	ck_assert(!h.kvm_pvm_module);
	rmroot();
}
END_TEST

START_TEST(enabled_choice)
{
	struct pvm_host pvm = { .is_pvm = true }, hw = { .is_pvm = false };

	ck_assert(pvm_profile__enabled(VM_AUTO, &pvm));
	ck_assert(!pvm_profile__enabled(VM_AUTO, &hw));
	ck_assert(!pvm_profile__enabled(VM_AUTO, NULL));
	ck_assert(pvm_profile__enabled(VM_ON, &hw));
	ck_assert(!pvm_profile__enabled(VM_OFF, &pvm));
}
END_TEST

static const struct pvm_cpuid_mask *find_mask(const char *name)
{
	size_t n;
	const struct pvm_cpuid_mask *m = pvm_profile__cpuid_masks(&n);

	for (size_t i = 0; i < n; i++)
		if (!strcmp(m[i].name, name))
			return &m[i];
	return NULL;
}

START_TEST(mask_list)
{
	const struct pvm_cpuid_mask *m;
	char list[] = LIST;
	size_t n;

	pvm_profile__cpuid_masks(&n);
	ck_assert_uint_eq(n, 23);
	/* every clearcpuid item has its CPUID mask, and noxsave's too */
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ","))
		ck_assert_msg(find_mask(tok), "no mask for %s", tok);
	m = find_mask("xsave");
	ck_assert_uint_eq(m->leaf, 1);
	ck_assert_uint_eq(m->reg, 2);
	ck_assert_uint_eq(m->mask, (1u << 26) | (1u << 27));
	m = find_mask("popcnt");
	ck_assert(m->leaf == 1 && m->reg == 2 && m->mask == 1u << 23);
	m = find_mask("cx16");
	ck_assert(m->leaf == 1 && m->reg == 2 && m->mask == 1u << 13);
	m = find_mask("avx2");
	ck_assert(m->leaf == 7 && m->subleaf == 0 && m->reg == 1 &&
		  m->mask == 1u << 5);
	m = find_mask("sha_ni");
	ck_assert(m->leaf == 7 && m->reg == 1 && m->mask == 1u << 29);
	m = find_mask("abm");
	ck_assert(m->leaf == 0x80000001 && m->reg == 2 && m->mask == 1u << 5);
	m = find_mask("xsaveopt");
	ck_assert(m->leaf == 0xd && m->subleaf == 1 && m->reg == 0 &&
		  m->mask == 1);
	ck_assert_uint_le(strlen(LIST), PVM_CLEARCPUID_MAX);
}
END_TEST

START_TEST(apply_cpuid)
{
	struct kvm_cpuid2 *c = calloc(1, sizeof(*c) + 6 * sizeof(c->entries[0]));
	uint32_t ones = 0xffffffffu;

	c->nent = 6;
	c->entries[0] = (struct kvm_cpuid_entry2){ .function = 0, .eax = ones,
		.ebx = ones, .ecx = ones, .edx = ones };
	c->entries[1] = (struct kvm_cpuid_entry2){ .function = 1, .eax = ones,
		.ebx = ones, .ecx = ones, .edx = ones };
	c->entries[2] = (struct kvm_cpuid_entry2){ .function = 7, .index = 0,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .ebx = ones, .ecx = ones };
	c->entries[3] = (struct kvm_cpuid_entry2){ .function = 7, .index = 1,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = ones, .ebx = ones };
	c->entries[4] = (struct kvm_cpuid_entry2){ .function = 0xd, .index = 1,
		.flags = KVM_CPUID_FLAG_SIGNIFCANT_INDEX, .eax = ones };
	c->entries[5] = (struct kvm_cpuid_entry2){ .function = 0x80000001,
		.ecx = ones, .edx = ones };
	ck_assert_uint_eq(pvm_profile__apply_cpuid(c), 4);
	ck_assert_uint_eq(c->entries[0].ecx, ones);
	ck_assert_uint_eq(c->entries[1].ecx,
			  ones & ~((1u << 1) | (1u << 9) | (1u << 12) | (1u << 13) |
				   (1u << 19) | (1u << 20) | (1u << 22) |
				   (1u << 23) | (1u << 25) | (1u << 26) |
				   (1u << 27) | (1u << 28) | (1u << 29) |
				   (1u << 30)));
	ck_assert_uint_eq(c->entries[1].edx, ones);
	ck_assert_uint_eq(c->entries[2].ebx,
			  ones & ~((1u << 3) | (1u << 5) | (1u << 8) | (1u << 16) |
				   (1u << 18) | (1u << 19) | (1u << 20) |
				   (1u << 29)));
	ck_assert_uint_eq(c->entries[2].ecx, ones);
	ck_assert_uint_eq(c->entries[3].ebx, ones); /* subleaf 1 untouched */
	ck_assert_uint_eq(c->entries[4].eax, ones & ~1u);
	ck_assert_uint_eq(c->entries[5].ecx, ones & ~(1u << 5));
	ck_assert_uint_eq(c->entries[5].edx, ones);
	/* applying twice changes nothing more */
	ck_assert_uint_eq(pvm_profile__apply_cpuid(c), 0);
	ck_assert_uint_eq(pvm_profile__apply_cpuid(NULL), 0);
	free(c);
}
END_TEST

static void amend(const char *in, const char *want)
{
	char buf[1024];
	struct pvm_cmdline_result r;

	snprintf(buf, sizeof(buf), "%s", in);
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert_str_eq(buf, want);
	/* idempotent */
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert_str_eq(buf, want);
	ck_assert_uint_eq(r.added_switches, 0);
	ck_assert_uint_eq(r.added_features, 0);
}

START_TEST(cmdline_append)
{
	amend("", "noxsave nosoftlockup clearcpuid=" LIST);
	amend("console=ttyS0 quiet",
	      "console=ttyS0 quiet noxsave nosoftlockup clearcpuid=" LIST);
	amend("console=ttyS0 ", "console=ttyS0 noxsave nosoftlockup clearcpuid=" LIST);
	amend("quiet noxsave", "quiet noxsave nosoftlockup clearcpuid=" LIST);
	amend("nosoftlockup quiet", "nosoftlockup quiet noxsave clearcpuid=" LIST);
	amend("quiet clearcpuid=" LIST, "quiet clearcpuid=" LIST " noxsave nosoftlockup");
	/* noxsave2 is another word */
	amend("noxsave2", "noxsave2 noxsave nosoftlockup clearcpuid=" LIST);
}
END_TEST

START_TEST(cmdline_before_init_args)
{
	amend("console=ttyS0 -- single",
	      "console=ttyS0 noxsave nosoftlockup clearcpuid=" LIST " -- single");
	amend("-- single", "noxsave nosoftlockup clearcpuid=" LIST " -- single");
	/* after "--" it is init's, so it does not count */
	amend("quiet -- noxsave",
	      "quiet noxsave nosoftlockup clearcpuid=" LIST " -- noxsave");
	/* "--x" is not the separator */
	amend("a --x", "a --x noxsave nosoftlockup clearcpuid=" LIST);
}
END_TEST

START_TEST(cmdline_merge_user_clearcpuid)
{
	char buf[1024] = "clearcpuid=avx512f,sse4_2 console=ttyS0";
	struct pvm_cmdline_result r;
	char *val, *end, list[] = LIST;
	size_t vlen;

	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert(r.merged);
	ck_assert_uint_eq(r.added_switches, PVM_NR_SWITCHES);
	ck_assert_uint_eq(r.added_features, 19);
	ck_assert_str_eq(r.dropped, "");
	/* the user's word keeps its place and its items come first */
	ck_assert_int_eq(strncmp(buf, "clearcpuid=avx512f,sse4_2,popcnt,", 33), 0);
	ck_assert_ptr_nonnull(strstr(buf, " console=ttyS0 noxsave"));
	ck_assert_ptr_null(strstr(buf + 1, "clearcpuid="));
	val = buf + 11;
	end = strchr(val, ' ');
	vlen = (size_t)(end - val);
	ck_assert_uint_le(vlen, PVM_CLEARCPUID_MAX);
	for (char *tok = strtok(list, ","); tok; tok = strtok(NULL, ",")) {
		char *hit = strstr(val, tok);

		ck_assert_msg(hit && hit < end, "%s missing", tok);
	}

	/* of two clearcpuid=, Linux reads the last: that one is merged */
	snprintf(buf, sizeof(buf), "clearcpuid=pku a clearcpuid=la57 b");
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert_str_eq(buf, "clearcpuid=pku a clearcpuid=la57,popcnt,cx16,avx,"
			 "avx2,aes,pclmulqdq,sse4_1,sse4_2,bmi1,bmi2,movbe,"
			 "rdrand,rdseed,fma,f16c,avx512f,sha_ni,adx,abm,"
			 "smap,ssse3 b noxsave nosoftlockup");
	/* our list is 121 characters: a 4-letter user item still fits
	 * Linux's 127 */
	ck_assert_str_eq(r.dropped, "");

	/* an empty value */
	snprintf(buf, sizeof(buf), "clearcpuid= quiet");
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert_str_eq(buf, "clearcpuid=" LIST " quiet noxsave nosoftlockup");
}
END_TEST

START_TEST(cmdline_merge_overflow)
{
	char buf[1024] = "clearcpuid=pku,la57,vaes,gfni,avx512bw,avx512vl quiet";
	struct pvm_cmdline_result r;
	char *end;

	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert(r.merged);
	ck_assert_str_ne(r.dropped, "");
	end = strchr(buf, ' ');
	ck_assert_uint_le((size_t)(end - (buf + 11)), PVM_CLEARCPUID_MAX);
	ck_assert_uint_eq(r.added_features, 15);
	ck_assert_str_eq(r.dropped, "avx512f,sha_ni,adx,abm,smap,ssse3");
	/* every item is either in the value or reported dropped */
	{
		char list[] = LIST;

		for (char *t = strtok(list, ","); t; t = strtok(NULL, ",")) {
			char *hit = strstr(buf, t);

			ck_assert_msg((hit && hit < end) || strstr(r.dropped, t),
				      "%s lost", t);
		}
	}

	/* a user value already over the limit gets nothing added */
	memset(buf, 0, sizeof(buf));
	strcpy(buf, "clearcpuid=");
	memset(buf + 11, 'x', 200);
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, sizeof(buf), &r), 0);
	ck_assert(!r.merged);
	ck_assert_uint_eq(r.added_features, 0);
	ck_assert_uint_eq(strlen(r.dropped), strlen(LIST));
	ck_assert_uint_eq(strlen(buf), 11 + 200 + strlen(" noxsave nosoftlockup"));
}
END_TEST

START_TEST(cmdline_no_room)
{
	char want[512], buf[512];
	size_t need;

	snprintf(want, sizeof(want), "root=/dev/vda noxsave nosoftlockup clearcpuid=" LIST);
	need = strlen(want) + 1;
	/* exactly enough */
	snprintf(buf, sizeof(buf), "root=/dev/vda");
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, need, NULL), 0);
	ck_assert_str_eq(buf, want);
	/* one byte short: refused, unchanged */
	snprintf(buf, sizeof(buf), "root=/dev/vda");
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, need - 1, NULL), -1);
	ck_assert_str_eq(buf, "root=/dev/vda");
	/* not terminated within size */
	memset(buf, 'a', 16);
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, 16, NULL), -1);
	ck_assert_int_eq(pvm_profile__amend_cmdline(NULL, 16, NULL), -1);
	ck_assert_int_eq(pvm_profile__amend_cmdline(buf, 0, NULL), -1);
}
END_TEST

/* Random command lines built from tricky words: never out of bounds, and
 * amending is idempotent. */
START_TEST(cmdline_random)
{
	static const char *words[] = { "noxsave", "--", "clearcpuid=",
		"clearcpuid=avx,pku", "clearcpuid=popcnt", "quiet", "a=b,c",
		" ", "\t", "console=ttyS0", "clearcpuid", "-", "x" };
	uint64_t seed = 0x13198a2e03707344ull;

	for (int i = 0; i < 3000; i++) {
		char buf[600] = "", again[600];
		size_t size = 64 + (size_t)(i % 500);
		int nw = i % 9, rc;

		for (int w = 0; w < nw; w++) {
			seed ^= seed << 13, seed ^= seed >> 7, seed ^= seed << 17;
			if (strlen(buf) + 40 >= size)
				break;
			strcat(buf, words[seed % (sizeof(words) / sizeof(words[0]))]);
			if (seed & 0x100)
				strcat(buf, " ");
		}
		rc = pvm_profile__amend_cmdline(buf, size, NULL);
		ck_assert_uint_lt(strlen(buf), size);
		if (rc)
			continue;
		memcpy(again, buf, sizeof(again));
		ck_assert_int_eq(pvm_profile__amend_cmdline(again, size, NULL), 0);
		ck_assert_str_eq(again, buf);
	}
}
END_TEST

START_TEST(summary_text)
{
	struct pvm_host pvm = { .is_pvm = true, .kvm_pvm_module = true,
				.cpuinfo_read = true };
	struct pvm_host hw = { .cpuinfo_read = true, .hw_virt = true };
	struct pvm_cmdline_result r = { .added_switches = 1,
					.switches_text = "noxsave",
					.added_features = 21 };
	char buf[2048], small[16];
	int n;

	n = pvm_profile__summary(&pvm, VM_AUTO, &r, buf, sizeof(buf));
	ck_assert_int_eq(n, (int)strlen(buf));
	{
		static const char head[] = "krg-vmm: PVM host detected (kvm_pvm, "
					   "no vmx/svm): guest profile on: CPUID masks ";

		ck_assert_int_eq(strncmp(buf, head, strlen(head)), 0);
	}
	ck_assert_ptr_nonnull(strstr(buf, " popcnt "));
	ck_assert_ptr_nonnull(strstr(buf, "kernel command line += noxsave "
				      "clearcpuid=" LIST ";"));
	ck_assert_ptr_nonnull(strstr(buf, "--pvm-profile off to disable"));

	n = pvm_profile__summary(&pvm, VM_OFF, &r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "guest profile off (--pvm-profile off)"));
	ck_assert_ptr_null(strstr(buf, "clearcpuid"));

	pvm_profile__summary(&hw, VM_AUTO, NULL, buf, sizeof(buf));
	ck_assert_str_eq(buf, "krg-vmm: hardware virtualization host: PVM "
			 "guest profile off");
	pvm_profile__summary(&hw, VM_ON, NULL, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "guest profile on (--pvm-profile on)"));

	snprintf(r.dropped, sizeof(r.dropped), "abm,ssse3");
	r.merged = true;
	pvm_profile__summary(&pvm, VM_AUTO, &r, buf, sizeof(buf));
	ck_assert_ptr_nonnull(strstr(buf, "merged"));
	ck_assert_ptr_nonnull(strstr(buf, "not added: abm,ssse3"));

	/* truncation: terminated, full length returned */
	n = pvm_profile__summary(&pvm, VM_AUTO, &r, small, sizeof(small));
	ck_assert_uint_eq(strlen(small), sizeof(small) - 1);
	ck_assert_int_gt(n, (int)sizeof(small));
	ck_assert_int_eq(pvm_profile__summary(&pvm, VM_AUTO, &r, NULL, 0), n);
}
END_TEST

static Suite *pvm_suite(void)
{
	Suite *s = suite_create("pvm_profile");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, detect_module);
	tcase_add_test(tc, detect_no_hw_virt);
	tcase_add_test(tc, detect_nothing_readable);
	tcase_add_test(tc, enabled_choice);
	tcase_add_test(tc, mask_list);
	tcase_add_test(tc, apply_cpuid);
	tcase_add_test(tc, cmdline_append);
	tcase_add_test(tc, cmdline_before_init_args);
	tcase_add_test(tc, cmdline_merge_user_clearcpuid);
	tcase_add_test(tc, cmdline_merge_overflow);
	tcase_add_test(tc, cmdline_no_room);
	tcase_add_test(tc, cmdline_random);
	tcase_add_test(tc, summary_text);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(pvm_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
