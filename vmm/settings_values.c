/* Value parsers every setter shares: numbers, paths, switches. */
#include <stdio.h>
#include <string.h>

#include "vmm/errf.h"
#include "vmm/settings_priv.h"

int settings__parse_bool(const char *text, bool *out)
{
	static const char *const yes[] = { "true", "yes", "on", "1" };
	static const char *const no[] = { "false", "no", "off", "0" };

	for (size_t i = 0; i < sizeof(yes) / sizeof(yes[0]); i++) {
		if (!strcmp(text, yes[i])) {
			*out = true;
			return 0;
		}
		if (!strcmp(text, no[i])) {
			*out = false;
			return 0;
		}
	}
	return -1;
}

int settings__u64(const char *p, size_t len, uint64_t *out)
{
	uint64_t v = 0;

	if (!len)
		return -1;
	for (size_t i = 0; i < len; i++) {
		unsigned d;

		if (p[i] < '0' || p[i] > '9')
			return -1;
		d = (unsigned)(p[i] - '0');
		if (v > (UINT64_MAX - d) / 10)
			return -1;
		v = v * 10 + d;
	}
	*out = v;
	return 0;
}

int settings__join_path(char *out, size_t size, const char *base,
			const char *rel, size_t rel_len)
{
	int n;

	if (!base || !*base || rel[0] == '/')
		n = snprintf(out, size, "%.*s", (int)rel_len, rel);
	else
		n = snprintf(out, size, "%s%s%.*s", base,
			     base[strlen(base) - 1] == '/' ? "" : "/",
			     (int)rel_len, rel);
	return n < 0 || (size_t)n >= size ? -1 : 0;
}

int settings__path(char *dst, const char *what, const char *v, const char *base,
		   char *err, size_t errlen)
{
	char tmp[VM_PATH_MAX];

	if (!*v) {
		errf(err, errlen, "%s path is empty", what);
		return -1;
	}
	if (strlen(v) > VM_PATH_MAX - 1 ||
	    settings__join_path(tmp, sizeof(tmp), base, v, strlen(v))) {
		errf(err, errlen, "%s path is too long (limit %d "
		     "bytes)", what, VM_PATH_MAX - 1);
		return -1;
	}
	memcpy(dst, tmp, strlen(tmp) + 1);
	return 0;
}

int settings__bool_value(const char *what, const char *v, bool *out, char *err,
			 size_t errlen)
{
	if (settings__parse_bool(v, out)) {
		errf(err, errlen, "invalid value '%s' for %s (expected "
		     "true or false)", v, what);
		return -1;
	}
	return 0;
}

int settings__auto_value(const char *what, const char *v,
			 enum vm_auto_switch *out, char *err, size_t errlen)
{
	if (!strcmp(v, "auto"))
		*out = VM_AUTO;
	else if (!strcmp(v, "on"))
		*out = VM_ON;
	else if (!strcmp(v, "off"))
		*out = VM_OFF;
	else {
		errf(err, errlen, "invalid %s '%s' (expected auto, on or off)",
		     what, v);
		return -1;
	}
	return 0;
}
