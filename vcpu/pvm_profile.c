/* PVM host detection and the PVM guest profile (see pvm_profile.h). */
#include "vcpu/pvm_profile.h"

#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <linux/kvm.h>

enum { R_EAX, R_EBX, R_ECX, R_EDX };

/* Names are Linux's feature names, the same words clearcpuid= takes. */
static const struct pvm_cpuid_mask masks[] = {
	{ 1, 0, R_ECX, 1u << 1, "pclmulqdq" },
	{ 1, 0, R_ECX, 1u << 9, "ssse3" },
	{ 1, 0, R_ECX, 1u << 12, "fma" },
	{ 1, 0, R_ECX, 1u << 13, "cx16" },
	{ 1, 0, R_ECX, 1u << 19, "sse4_1" },
	{ 1, 0, R_ECX, 1u << 20, "sse4_2" },
	{ 1, 0, R_ECX, 1u << 22, "movbe" },
	{ 1, 0, R_ECX, 1u << 23, "popcnt" },
	{ 1, 0, R_ECX, 1u << 25, "aes" },
	/* OSXSAVE goes with XSAVE: a guest must not see it without. */
	{ 1, 0, R_ECX, (1u << 26) | (1u << 27), "xsave" },
	{ 1, 0, R_ECX, 1u << 28, "avx" },
	{ 1, 0, R_ECX, 1u << 29, "f16c" },
	{ 1, 0, R_ECX, 1u << 30, "rdrand" },
	{ 7, 0, R_EBX, 1u << 3, "bmi1" },
	{ 7, 0, R_EBX, 1u << 5, "avx2" },
	{ 7, 0, R_EBX, 1u << 8, "bmi2" },
	{ 7, 0, R_EBX, 1u << 16, "avx512f" },
	{ 7, 0, R_EBX, 1u << 18, "rdseed" },
	{ 7, 0, R_EBX, 1u << 19, "adx" },
	{ 7, 0, R_EBX, 1u << 29, "sha_ni" },
	{ 0xd, 1, R_EAX, 1u << 0, "xsaveopt" },
	{ 7, 0, R_EBX, 1u << 20, "smap" },
	{ 0x80000001, 0, R_ECX, 1u << 5, "abm" },
};

static bool is_space(char c)
{
	return c > 0 && c <= ' '; /* Linux's early parser's idea of it */
}

/* Whether a "flags" line of /proc/cpuinfo lists vmx or svm. */
static bool flags_have_hw_virt(const char *list)
{
	const char *p = list;

	while (*p) {
		size_t n;

		while (is_space(*p))
			p++;
		n = strcspn(p, " \t\r\n");
		if ((n == 3 && !strncmp(p, "vmx", 3)) ||
		    (n == 3 && !strncmp(p, "svm", 3)))
			return true;
		p += n;
	}
	return false;
}

static void read_cpuinfo(const char *path, struct pvm_host *out)
{
	FILE *f = fopen(path, "r");
	char *line = NULL;
	size_t cap = 0;

	if (!f)
		return;
	while (getline(&line, &cap, f) > 0) {
		char *colon = strchr(line, ':');
		size_t klen;

		if (!colon)
			continue;
		klen = (size_t)(colon - line);
		while (klen && is_space(line[klen - 1]))
			klen--;
		/* Exactly "flags": newer kernels also print "vmx flags". */
		if (klen != 5 || strncmp(line, "flags", 5))
			continue;
		out->cpuinfo_read = true;
		if (flags_have_hw_virt(colon + 1))
			out->hw_virt = true;
	}
	free(line);
	fclose(f);
}

void pvm_profile__detect(const char *sys_root, const char *proc_root,
			 struct pvm_host *out)
{
	char path[PATH_MAX];
	struct stat st;

	memset(out, 0, sizeof(*out));
	snprintf(path, sizeof(path), "%s/module/kvm_pvm",
		 sys_root ? sys_root : "/sys");
	out->kvm_pvm_module = stat(path, &st) == 0 && S_ISDIR(st.st_mode);
	snprintf(path, sizeof(path), "%s/cpuinfo",
		 proc_root ? proc_root : "/proc");
	read_cpuinfo(path, out);
	out->is_pvm = out->kvm_pvm_module ||
		      (out->cpuinfo_read && !out->hw_virt);
}

bool pvm_profile__enabled(enum vm_auto_switch choice,
			  const struct pvm_host *host)
{
	if (choice == VM_ON)
		return true;
	if (choice == VM_OFF)
		return false;
	return host && host->is_pvm;
}

const struct pvm_cpuid_mask *pvm_profile__cpuid_masks(size_t *count)
{
	*count = sizeof(masks) / sizeof(masks[0]);
	return masks;
}

unsigned pvm_profile__apply_cpuid(struct kvm_cpuid2 *c)
{
	unsigned changed = 0;

	if (!c)
		return 0;
	for (uint32_t i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];
		uint32_t *regs[] = { &e->eax, &e->ebx, &e->ecx, &e->edx };
		bool hit = false;

		for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
			if (masks[m].leaf != e->function ||
			    ((e->flags & KVM_CPUID_FLAG_SIGNIFCANT_INDEX) &&
			     masks[m].subleaf != e->index))
				continue;
			if (*regs[masks[m].reg] & masks[m].mask)
				hit = true;
			*regs[masks[m].reg] &= ~masks[m].mask;
		}
		changed += hit;
	}
	return changed;
}

/* Whether the comma list [list, list+len) contains @item exactly. */
static bool list_has(const char *list, size_t len, const char *item,
		     size_t ilen)
{
	size_t pos = 0;

	while (pos < len) {
		size_t n = 0;

		while (pos + n < len && list[pos + n] != ',')
			n++;
		if (n == ilen && !strncmp(list + pos, item, ilen))
			return true;
		pos += n + 1;
	}
	return false;
}

/* A bounded string builder: copies what fits (keeping room for a NUL) and
 * counts the length the whole result needs. */
struct sbuf {
	char *p;
	size_t size, len;
};

static void sb_put(struct sbuf *b, const char *s, size_t n)
{
	if (b->size && b->len < b->size - 1) {
		size_t room = b->size - 1 - b->len;

		memcpy(b->p + b->len, s, n < room ? n : room);
	}
	b->len += n;
}

static void sb_str(struct sbuf *b, const char *s)
{
	sb_put(b, s, strlen(s));
}

static const char *const pvm_switches[PVM_NR_SWITCHES] = PVM_SWITCHES;

struct cmdline_scan {
	size_t len;             /* strlen of the command line */
	size_t insert_at;       /* where new words go: end, or at "--" */
	unsigned have_switch; /* bit i: PVM_SWITCHES[i] is there */
	bool has_clear;
	size_t clear_val, clear_end; /* the last clearcpuid= value */
};

static void scan_cmdline(const char *s, size_t len, struct cmdline_scan *sc)
{
	size_t pos = 0;

	memset(sc, 0, sizeof(*sc));
	sc->len = len;
	sc->insert_at = len;
	while (pos < len) {
		size_t start, n;

		while (pos < len && is_space(s[pos]))
			pos++;
		start = pos;
		while (pos < len && !is_space(s[pos]))
			pos++;
		n = pos - start;
		if (!n)
			break;
		if (n == 2 && !strncmp(s + start, "--", 2)) {
			sc->insert_at = start;
			return;
		}
		for (unsigned i = 0; i < PVM_NR_SWITCHES; i++)
			if (n == strlen(pvm_switches[i]) &&
			    !strncmp(s + start, pvm_switches[i], n))
				sc->have_switch |= 1u << i;
		if (n >= 11 && !strncmp(s + start, "clearcpuid=", 11)) {
			sc->has_clear = true;
			sc->clear_val = start + 11;
			sc->clear_end = pos;
		}
	}
}

int pvm_profile__amend_cmdline(char *cmdline, size_t size,
			       struct pvm_cmdline_result *res)
{
	static const char ours[] = PVM_CLEARCPUID_LIST;
	struct pvm_cmdline_result r = { 0 };
	struct sbuf out, val, drop;
	struct cmdline_scan sc;
	char valbuf[PVM_CLEARCPUID_MAX + 1];
	size_t len, pos = 0, tail_from;

	if (!cmdline || !size || (len = strnlen(cmdline, size)) == size)
		return -1;
	scan_cmdline(cmdline, len, &sc);

	/* The clearcpuid value: the user's items, then ours not there. */
	val = (struct sbuf){ valbuf, sizeof(valbuf), 0 };
	drop = (struct sbuf){ r.dropped, sizeof(r.dropped), 0 };
	if (sc.has_clear)
		sb_put(&val, cmdline + sc.clear_val, sc.clear_end - sc.clear_val);
	while (pos < sizeof(ours) - 1) {
		size_t n = strcspn(ours + pos, ",");
		bool present = sc.has_clear &&
			       list_has(cmdline + sc.clear_val,
					sc.clear_end - sc.clear_val,
					ours + pos, n);

		if (!present && val.len + (val.len ? 1 : 0) + n <= PVM_CLEARCPUID_MAX) {
			if (val.len)
				sb_put(&val, ",", 1);
			sb_put(&val, ours + pos, n);
			r.added_features++;
		} else if (!present) {
			if (drop.len)
				sb_put(&drop, ",", 1);
			sb_put(&drop, ours + pos, n);
		}
		pos += n + 1;
	}
	for (unsigned i = 0; i < PVM_NR_SWITCHES; i++) {
		if (sc.have_switch & (1u << i))
			continue;
		size_t used = strlen(r.switches_text);
		snprintf(r.switches_text + used, sizeof(r.switches_text) - used,
			 "%s%s", used ? " " : "", pvm_switches[i]);
		r.added_switches++;
	}
	r.merged = sc.has_clear && r.added_features;

	out = (struct sbuf){ malloc(size), size, 0 };
	if (!out.p)
		return -1;
	tail_from = sc.insert_at;
	if (r.merged) {
		sb_put(&out, cmdline, sc.clear_val);
		sb_put(&out, val.p, val.len);
		sb_put(&out, cmdline + sc.clear_end, sc.insert_at - sc.clear_end);
	} else {
		sb_put(&out, cmdline, sc.insert_at);
	}
	if (r.added_switches || (r.added_features && !sc.has_clear)) {
		bool first = true;
		/* New words: separated from what precedes, and from "--". */
		if (out.len && !is_space(cmdline[sc.insert_at ? sc.insert_at - 1 : 0]))
			sb_put(&out, " ", 1);
		for (unsigned i = 0; i < PVM_NR_SWITCHES; i++) {
			if (sc.have_switch & (1u << i))
				continue;
			if (!first)
				sb_put(&out, " ", 1);
			sb_str(&out, pvm_switches[i]);
			first = false;
		}
		if (r.added_features && !sc.has_clear) {
			if (!first)
				sb_put(&out, " ", 1);
			sb_str(&out, "clearcpuid=");
			sb_put(&out, val.p, val.len);
		}
		if (tail_from < len)
			sb_put(&out, " ", 1);
	}
	sb_put(&out, cmdline + tail_from, len - tail_from);
	if (out.len >= size) {
		free(out.p);
		return -1;
	}
	memcpy(cmdline, out.p, out.len);
	cmdline[out.len] = 0;
	free(out.p);
	if (res)
		*res = r;
	return 0;
}

static void put_masks(struct sbuf *b)
{
	for (size_t m = 0; m < sizeof(masks) / sizeof(masks[0]); m++) {
		if (m)
			sb_put(b, " ", 1);
		sb_str(b, masks[m].name);
	}
}

int pvm_profile__summary(const struct pvm_host *host,
			 enum vm_auto_switch choice,
			 const struct pvm_cmdline_result *res, char *buf,
			 size_t size)
{
	struct sbuf b = { buf, buf ? size : 0, 0 };
	bool on = pvm_profile__enabled(choice, host);
	bool pvm = host && host->is_pvm;

	sb_str(&b, "krg-vmm: ");
	if (pvm) {
		sb_str(&b, "PVM host detected (");
		if (host->kvm_pvm_module)
			sb_str(&b, host->cpuinfo_read && !host->hw_virt ?
				   "kvm_pvm, no vmx/svm" : "kvm_pvm");
		else
			sb_str(&b, "no vmx/svm in /proc/cpuinfo");
		sb_str(&b, "): ");
	} else {
		sb_str(&b, "hardware virtualization host: ");
	}
	if (!on) {
		sb_str(&b, "PVM guest profile off");
		if (pvm)
			sb_str(&b, " (--pvm-profile off): a stock guest kernel "
				   "will likely stop at an instruction KVM "
				   "cannot emulate; --pvm-profile auto to enable");
		goto out;
	}
	sb_str(&b, "guest profile on");
	if (choice == VM_ON)
		sb_str(&b, " (--pvm-profile on)");
	sb_str(&b, ": CPUID masks ");
	put_masks(&b);
	sb_str(&b, " (PVM may force some back); ");
	if (res && (res->added_switches || res->added_features)) {
		sb_str(&b, "kernel command line += ");
		if (res->added_switches) {
			sb_str(&b, res->switches_text);
			sb_str(&b, " ");
		}
		if (res->merged)
			sb_str(&b, "clearcpuid items merged into the given one");
		else if (res->added_features)
			sb_str(&b, "clearcpuid=" PVM_CLEARCPUID_LIST);
		sb_str(&b, "; ");
	} else if (res) {
		sb_str(&b, "kernel command line already has noxsave and "
			   "clearcpuid=; ");
	}
	if (res && res->dropped[0]) {
		sb_str(&b, "WARNING: clearcpuid= is full, not added: ");
		sb_str(&b, res->dropped);
		sb_str(&b, "; ");
	}
	sb_str(&b, "int3, int n, into, popcnt, lzcnt, tzcnt, lsl, lar, clac, stac, fwait, hint NOPs completed by the "
		   "VMM when KVM cannot emulate them; --pvm-profile off to "
		   "disable");
out:
	if (b.size)
		b.p[b.len < b.size ? b.len : b.size - 1] = 0;
	return (int)b.len;
}
