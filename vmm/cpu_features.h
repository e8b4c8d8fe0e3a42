/* CPU feature names as the user spells them after -cpu, mapped to the CPUID
 * bit that advertises them.  Kept free of any vCPU or KVM code so that the
 * command-line parser validates "-cpu host,-cx16" and the CPUID code masks
 * the very same bits from one table. */
#ifndef KRG_VMM_CPU_FEATURES_H
#define KRG_VMM_CPU_FEATURES_H

#include <stddef.h>
#include <stdint.h>

enum cpuid_reg { CPUID_EAX = 0, CPUID_EBX = 1, CPUID_ECX = 2, CPUID_EDX = 3 };

struct cpu_feature {
	const char *name;	/* canonical spelling, e.g. "sse4_1" */
	uint32_t leaf;
	uint32_t subleaf;	/* 0 for leaves that take no subleaf */
	uint8_t reg;		/* enum cpuid_reg */
	uint8_t bit;
};

enum cpu_model { CPU_MODEL_HOST, CPU_MODEL_MAX, CPU_MODEL_QEMU64 };

/* Upper bound on the table size, so a spec is a fixed-size plain struct. */
#define CPU_FEATURES_MAX 128

enum cpu_feature_want { CPU_WANT_DEFAULT = 0, CPU_WANT_ON = 1, CPU_WANT_OFF = -1 };

/* A parsed -cpu value: the base model and, per table index, whether the user
 * forced the feature on or off (later items win, as in QEMU). */
struct cpu_spec {
	enum cpu_model model;
	int8_t want[CPU_FEATURES_MAX];	/* enum cpu_feature_want */
};

/* The whole table; *count receives its length (always <= CPU_FEATURES_MAX). */
const struct cpu_feature *cpu_features__table(size_t *count);

/* Table index of the feature called name[0..len), or -1.  '_', '-' and '.'
 * are interchangeable ("sse4.1", "sse4-1", "sse4_1") and a few QEMU/Linux
 * aliases are known (pni, lzcnt, prefetchw, tsc_deadline_timer...). */
int cpu_features__lookup(const char *name, size_t len);

/* Parses "MODEL[,+feat|,-feat|,feat=on|off|,feat]...".  Returns 0, or -1
 * with a one-line reason in err. */
int cpu_features__parse(const char *text, struct cpu_spec *out, char *err,
			size_t errlen);

/* Forces the user's +feat/-feat onto one CPUID result: regs[] is indexed by
 * enum cpuid_reg.  For leaves without subleaves pass subleaf 0. */
void cpu_features__apply(const struct cpu_spec *spec, uint32_t leaf,
			 uint32_t subleaf, uint32_t regs[4]);

/* Name of a model ("host", "max", "qemu64"). */
const char *cpu_features__model_name(enum cpu_model model);

#endif
