#include "vmm/cpu_features.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>

#include "vmm/errf.h"

#define L1_EDX(n, b)	{ n, 0x1, 0, CPUID_EDX, b }
#define L1_ECX(n, b)	{ n, 0x1, 0, CPUID_ECX, b }
#define L7_EBX(n, b)	{ n, 0x7, 0, CPUID_EBX, b }
#define L7_ECX(n, b)	{ n, 0x7, 0, CPUID_ECX, b }
#define LD1_EAX(n, b)	{ n, 0xd, 1, CPUID_EAX, b }
#define X1_ECX(n, b)	{ n, 0x80000001u, 0, CPUID_ECX, b }
#define X1_EDX(n, b)	{ n, 0x80000001u, 0, CPUID_EDX, b }

/* Bit positions from the Intel SDM vol. 2A (CPUID) and AMD APM vol. 3. */
static const struct cpu_feature features[] = {
	L1_EDX("fpu", 0), L1_EDX("vme", 1), L1_EDX("de", 2),
	L1_EDX("pse", 3), L1_EDX("tsc", 4), L1_EDX("msr", 5),
	L1_EDX("pae", 6), L1_EDX("mce", 7), L1_EDX("cx8", 8),
	L1_EDX("apic", 9), L1_EDX("sep", 11), L1_EDX("mtrr", 12),
	L1_EDX("pge", 13), L1_EDX("mca", 14), L1_EDX("cmov", 15),
	L1_EDX("pat", 16), L1_EDX("pse36", 17), L1_EDX("clflush", 19),
	L1_EDX("mmx", 23), L1_EDX("fxsr", 24), L1_EDX("sse", 25),
	L1_EDX("sse2", 26), L1_EDX("ss", 27), L1_EDX("ht", 28),

	L1_ECX("sse3", 0), L1_ECX("pclmulqdq", 1), L1_ECX("dtes64", 2),
	L1_ECX("monitor", 3), L1_ECX("ssse3", 9), L1_ECX("fma", 12),
	L1_ECX("cx16", 13), L1_ECX("pcid", 17), L1_ECX("sse4_1", 19),
	L1_ECX("sse4_2", 20), L1_ECX("x2apic", 21), L1_ECX("movbe", 22),
	L1_ECX("popcnt", 23), L1_ECX("tsc_deadline", 24), L1_ECX("aes", 25),
	L1_ECX("xsave", 26), L1_ECX("osxsave", 27), L1_ECX("avx", 28),
	L1_ECX("f16c", 29), L1_ECX("rdrand", 30), L1_ECX("hypervisor", 31),

	L7_EBX("fsgsbase", 0), L7_EBX("bmi1", 3), L7_EBX("avx2", 5),
	L7_EBX("smep", 7), L7_EBX("bmi2", 8), L7_EBX("erms", 9),
	L7_EBX("invpcid", 10), L7_EBX("avx512f", 16), L7_EBX("avx512dq", 17),
	L7_EBX("rdseed", 18), L7_EBX("adx", 19), L7_EBX("smap", 20),
	L7_EBX("clflushopt", 23), L7_EBX("clwb", 24), L7_EBX("avx512cd", 28),
	L7_EBX("sha_ni", 29), L7_EBX("avx512bw", 30), L7_EBX("avx512vl", 31),

	L7_ECX("avx512vbmi", 1), L7_ECX("umip", 2), L7_ECX("pku", 3),
	L7_ECX("ospke", 4), L7_ECX("gfni", 8), L7_ECX("vaes", 9),
	L7_ECX("vpclmulqdq", 10), L7_ECX("la57", 16), L7_ECX("rdpid", 22),

	LD1_EAX("xsaveopt", 0), LD1_EAX("xsavec", 1), LD1_EAX("xsaves", 3),

	X1_ECX("lahf_lm", 0), X1_ECX("abm", 5), X1_ECX("sse4a", 6),
	X1_ECX("3dnowprefetch", 8),
	X1_EDX("syscall", 11), X1_EDX("nx", 20), X1_EDX("pdpe1gb", 26),
	X1_EDX("rdtscp", 27), X1_EDX("lm", 29),
};

_Static_assert(sizeof(features) / sizeof(features[0]) <= CPU_FEATURES_MAX,
	       "cpu_spec.want[] too small for the feature table");

/* Other names QEMU or /proc/cpuinfo use for the same bits. */
static const struct {
	const char *alias, *name;
} aliases[] = {
	{ "pni", "sse3" },
	{ "pclmuldq", "pclmulqdq" },
	{ "lzcnt", "abm" },
	{ "prefetchw", "3dnowprefetch" },
	{ "tsc_deadline_timer", "tsc_deadline" },
	{ "i64", "lm" },
	{ "xd", "nx" },
	{ "clfsh", "clflush" },
};

static const char *const model_names[] = {
	[CPU_MODEL_HOST] = "host",
	[CPU_MODEL_MAX] = "max",
	[CPU_MODEL_QEMU64] = "qemu64",
};

const struct cpu_feature *cpu_features__table(size_t *count)
{
	*count = sizeof(features) / sizeof(features[0]);
	return features;
}

const char *cpu_features__model_name(enum cpu_model model)
{
	if ((unsigned)model >= sizeof(model_names) / sizeof(model_names[0]))
		return "?";
	return model_names[model];
}

static char fold(char c)
{
	if (c == '-' || c == '.')
		return '_';
	if (c >= 'A' && c <= 'Z')
		return (char)(c - 'A' + 'a');
	return c;
}

/* Compares name[0..len) with the NUL-terminated canonical spelling. */
static bool same_name(const char *name, size_t len, const char *canon)
{
	size_t i;

	for (i = 0; i < len; i++) {
		if (!canon[i] || fold(name[i]) != fold(canon[i]))
			return false;
	}
	return canon[i] == '\0';
}

int cpu_features__lookup(const char *name, size_t len)
{
	size_t i, j;

	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++)
		if (same_name(name, len, features[i].name))
			return (int)i;
	for (j = 0; j < sizeof(aliases) / sizeof(aliases[0]); j++) {
		if (!same_name(name, len, aliases[j].alias))
			continue;
		for (i = 0; i < sizeof(features) / sizeof(features[0]); i++)
			if (!strcmp(features[i].name, aliases[j].name))
				return (int)i;
	}
	return -1;
}

static int parse_item(const char *item, size_t len, struct cpu_spec *out,
		      char *err, size_t errlen)
{
	const char *eq = memchr(item, '=', len);
	size_t name_len = eq ? (size_t)(eq - item) : len;
	int8_t want = CPU_WANT_ON;
	int idx;

	if (!eq && len && (item[0] == '+' || item[0] == '-')) {
		want = item[0] == '+' ? CPU_WANT_ON : CPU_WANT_OFF;
		item++;
		name_len--;
	} else if (eq) {
		const char *v = eq + 1;
		size_t vlen = len - name_len - 1;

		if ((vlen == 2 && !memcmp(v, "on", 2)) ||
		    (vlen == 4 && !memcmp(v, "true", 4)))
			want = CPU_WANT_ON;
		else if ((vlen == 3 && !memcmp(v, "off", 3)) ||
			 (vlen == 5 && !memcmp(v, "false", 5)))
			want = CPU_WANT_OFF;
		else {
			errf(err, errlen,
			     "CPU feature '%.*s': expected =on or =off",
			     (int)len, item);
			return -1;
		}
	}
	if (!name_len) {
		errf(err, errlen, "empty CPU feature name in -cpu value");
		return -1;
	}
	idx = cpu_features__lookup(item, name_len);
	if (idx < 0) {
		errf(err, errlen,
		     "unknown CPU feature '%.*s' (see krg-vmm --help, -cpu)",
		     (int)name_len, item);
		return -1;
	}
	out->want[idx] = want;
	return 0;
}

int cpu_features__parse(const char *text, struct cpu_spec *out, char *err,
			size_t errlen)
{
	const char *p = text, *comma;
	size_t len, m;

	memset(out, 0, sizeof(*out));
	comma = strchr(p, ',');
	len = comma ? (size_t)(comma - p) : strlen(p);
	for (m = 0; m < sizeof(model_names) / sizeof(model_names[0]); m++)
		if (strlen(model_names[m]) == len &&
		    !memcmp(p, model_names[m], len))
			break;
	if (m == sizeof(model_names) / sizeof(model_names[0])) {
		if (!len)
			errf(err, errlen, "-cpu value has no model name "
			     "(supported: host, max, qemu64)");
		else
			errf(err, errlen, "unknown CPU model '%.*s' "
			     "(supported: host, max, qemu64)", (int)len, p);
		return -1;
	}
	out->model = (enum cpu_model)m;
	while (comma) {
		p = comma + 1;
		comma = strchr(p, ',');
		len = comma ? (size_t)(comma - p) : strlen(p);
		if (!len) {
			errf(err, errlen, "empty item in -cpu value '%s'", text);
			return -1;
		}
		if (parse_item(p, len, out, err, errlen))
			return -1;
	}
	return 0;
}

void cpu_features__apply(const struct cpu_spec *spec, uint32_t leaf,
			 uint32_t subleaf, uint32_t regs[4])
{
	size_t i;

	for (i = 0; i < sizeof(features) / sizeof(features[0]); i++) {
		const struct cpu_feature *f = &features[i];

		if (f->leaf != leaf || f->subleaf != subleaf ||
		    spec->want[i] == CPU_WANT_DEFAULT)
			continue;
		if (spec->want[i] == CPU_WANT_ON)
			regs[f->reg] |= 1u << f->bit;
		else
			regs[f->reg] &= ~(1u << f->bit);
	}
}
