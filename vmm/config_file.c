#include "vmm/config_file.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "vmm/errf.h"
#include "vmm/settings.h"

struct cf_ctx {
	const char *name;
	unsigned line;
	char *err;
	size_t errlen;
};

static void line_err(const struct cf_ctx *c, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void line_err(const struct cf_ctx *c, const char *fmt, ...)
{
	char msg[1024];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	errf(c->err, c->errlen, "%s:%u: %s", c->name, c->line, msg);
}

static bool is_space(char c)
{
	return c == ' ' || c == '\t';
}

static bool is_key_char(char c)
{
	return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
	       c == '_';
}

/* Decodes the value part p[0..len) (already stripped of leading blanks)
 * into out, which has room for len + 1 bytes. */
static int parse_value(const struct cf_ctx *c, const char *p, size_t len,
		       char *out)
{
	size_t i, o = 0;

	if (len && p[0] == '"') {
		for (i = 1; i < len && p[i] != '"'; i++) {
			if (p[i] == '\\' && i + 1 < len &&
			    (p[i + 1] == '"' || p[i + 1] == '\\'))
				i++;
			out[o++] = p[i];
		}
		if (i == len) {
			line_err(c, "unterminated quoted value (missing '\"')");
			return -1;
		}
		for (i++; i < len && is_space(p[i]); i++)
			;
		if (i < len && p[i] != '#') {
			line_err(c, "unexpected text after the closing quote: "
				 "'%.*s'", (int)(len - i), p + i);
			return -1;
		}
		out[o] = '\0';
		return 0;
	}
	/* Unquoted: a '#' after a blank starts a comment, so "a#b" stays. */
	for (i = 0; i < len; i++) {
		if (p[i] == '#' && (i == 0 || is_space(p[i - 1])))
			break;
		out[o++] = p[i];
	}
	while (o && is_space(out[o - 1]))
		o--;
	out[o] = '\0';
	if (!o) {
		line_err(c, "missing value (write \"\" for an empty one)");
		return -1;
	}
	return 0;
}

static int parse_line(struct cf_ctx *c, const char *p, size_t len,
		      const char *base_dir, struct vm_config *cfg,
		      unsigned first_line[64])
{
	const struct setting *s, *other;
	const char *eq, *v, *end = p + len;
	char key[64], *value, msg[1024];
	size_t klen, vlen, i;
	int ret;

	eq = memchr(p, '=', len);
	if (!eq) {
		line_err(c, "expected 'key = value', got '%.*s'", (int)len, p);
		return -1;
	}
	klen = (size_t)(eq - p);
	while (klen && is_space(p[klen - 1]))
		klen--;
	if (!klen) {
		line_err(c, "missing key before '='");
		return -1;
	}
	for (i = 0; i < klen; i++) {
		if (!is_key_char(p[i]) || i == sizeof(key) - 1) {
			line_err(c, "invalid key '%.*s' (keys are lower-case "
				 "option names like 'memory')", (int)klen, p);
			return -1;
		}
		key[i] = p[i] == '_' ? '-' : p[i];
	}
	key[klen] = '\0';
	s = settings__by_key(key, klen);
	if (!s) {
		line_err(c, "unknown key '%s'", key);
		return -1;
	}
	if (first_line[settings__index(s)] && !(s->flags & SETTING_REPEAT)) {
		line_err(c, "duplicate key '%s' (already set on line %u)", key,
			 first_line[settings__index(s)]);
		return -1;
	}
	if (s->excludes) {
		other = settings__by_key(s->excludes, strlen(s->excludes));
		if (other && first_line[settings__index(other)]) {
			line_err(c, "key '%s' cannot be combined with '%s' "
				 "(line %u)", key, other->key,
				 first_line[settings__index(other)]);
			return -1;
		}
	}

	v = eq + 1;
	while (v < end && is_space(*v))
		v++;
	vlen = (size_t)(end - v);
	value = malloc(vlen + 1);
	if (!value) {
		line_err(c, "out of memory");
		return -1;
	}
	ret = parse_value(c, v, vlen, value);
	if (!ret && s->set(cfg, value, base_dir, msg, sizeof(msg))) {
		line_err(c, "%s", msg);
		ret = -1;
	}
	free(value);
	if (!ret)
		first_line[settings__index(s)] = c->line;
	return ret;
}

int config_file__parse(const char *text, size_t len, const char *name,
		       const char *base_dir, struct vm_config *cfg, char *err,
		       size_t errlen)
{
	struct cf_ctx c = { .name = name, .err = err, .errlen = errlen };
	unsigned first_line[64] = { 0 };
	size_t pos = 0;

	while (pos < len) {
		const char *line = text + pos, *nl;
		size_t n;

		nl = memchr(line, '\n', len - pos);
		n = nl ? (size_t)(nl - line) : len - pos;
		pos += n + (nl ? 1 : 0);
		c.line++;
		if (memchr(line, '\0', n)) {
			line_err(&c, "line contains a NUL byte (not a text "
				 "file?)");
			return -1;
		}
		if (n && line[n - 1] == '\r')
			n--;
		while (n && is_space(*line)) {
			line++;
			n--;
		}
		while (n && is_space(line[n - 1]))
			n--;
		if (!n || line[0] == '#')
			continue;
		if (parse_line(&c, line, n, base_dir, cfg, first_line))
			return -1;
	}
	return 0;
}

int config_file__load(const char *path, struct vm_config *cfg, char *err,
		      size_t errlen)
{
	char *buf, *base = NULL;
	const char *slash;
	size_t len = 0;
	ssize_t got;
	int fd, ret;

	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		errf(err, errlen, "cannot open config file '%s': %s",
		     path, strerror(errno));
		return -1;
	}
	buf = malloc(CONFIG_FILE_MAX + 1);
	if (!buf) {
		close(fd);
		errf(err, errlen, "out of memory");
		return -1;
	}
	/* One byte past the cap tells "too large" from "exactly the cap". */
	while (len <= CONFIG_FILE_MAX) {
		got = read(fd, buf + len, CONFIG_FILE_MAX + 1 - len);
		if (got < 0 && errno == EINTR)
			continue;
		if (got < 0) {
			errf(err, errlen, "cannot read config file "
			     "'%s': %s", path, strerror(errno));
			goto fail;
		}
		if (!got)
			break;
		len += (size_t)got;
	}
	if (len > CONFIG_FILE_MAX) {
		errf(err, errlen, "config file '%s' is larger than "
		     "%u bytes", path, CONFIG_FILE_MAX);
		goto fail;
	}
	close(fd);

	slash = strrchr(path, '/');
	if (slash) {
		size_t blen = slash == path ? 1 : (size_t)(slash - path);

		base = strndup(path, blen);
		if (!base) {
			free(buf);
			errf(err, errlen, "out of memory");
			return -1;
		}
	}
	ret = config_file__parse(buf, len, path, base, cfg, err, errlen);
	free(base);
	free(buf);
	return ret;
fail:
	close(fd);
	free(buf);
	return -1;
}
