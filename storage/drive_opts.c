#include "storage/drive_opts.h"

#include <ctype.h>
#include <stdint.h>
#include <string.h>
#include <strings.h>

#include "vmm/errf.h"

/* The longest key=value accepted: a whole path plus its key. */
#define TOKEN_MAX (DRIVE_FILE_MAX + 32)

struct name_val {
	const char *name;
	int val;
};

static const struct name_val formats[] = {
	{ "raw", DRIVE_FORMAT_RAW },   { "qcow2", DRIVE_FORMAT_QCOW2 },
	{ "vmdk", DRIVE_FORMAT_VMDK }, { "vdi", DRIVE_FORMAT_VDI },
	{ "vpc", DRIVE_FORMAT_VPC },   { "vhdx", DRIVE_FORMAT_VHDX },
	{ "qed", DRIVE_FORMAT_QED },   { NULL, 0 },
};

static const struct name_val caches[] = {
	{ "writeback", DRIVE_CACHE_WRITEBACK },
	{ "none", DRIVE_CACHE_NONE },
	{ "writethrough", DRIVE_CACHE_WRITETHROUGH },
	{ "directsync", DRIVE_CACHE_DIRECTSYNC },
	{ "unsafe", DRIVE_CACHE_UNSAFE },
	{ NULL, 0 },
};

static const struct name_val discards[] = {
	{ "ignore", 0 }, { "off", 0 }, { "unmap", 1 }, { "on", 1 }, { NULL, 0 },
};

static const struct name_val aios[] = {
	{ "io_uring", DRIVE_AIO_IO_URING }, { "threads", DRIVE_AIO_THREADS },
	{ NULL, 0 },
};

static const struct name_val serves[] = {
	{ "auto", 0 }, { "node0", 1 }, { NULL, 0 },
};

static const struct name_val bools[] = {
	{ "on", 1 },  { "yes", 1 }, { "true", 1 },
	{ "off", 0 }, { "no", 0 },  { "false", 0 }, { NULL, 0 },
};

/* Keys, in the order of the "seen" bits. */
enum key {
	K_FILE, K_FORMAT, K_IF, K_MEDIA, K_READONLY, K_CACHE, K_DISCARD, K_AIO,
	K_SERIAL, K_ID, K_QUEUES, K_SERVE, K_COUNT,
};

static const struct name_val keys[] = {
	{ "file", K_FILE },       { "format", K_FORMAT },
	{ "if", K_IF },           { "media", K_MEDIA },
	{ "readonly", K_READONLY }, { "read-only", K_READONLY },
	{ "cache", K_CACHE },     { "discard", K_DISCARD },
	{ "aio", K_AIO },         { "serial", K_SERIAL },
	{ "id", K_ID },           { "queues", K_QUEUES },
	{ "num-queues", K_QUEUES }, { "serve", K_SERVE },
	{ NULL, 0 },
};

static const char *const key_names[K_COUNT] = {
	"file", "format", "if", "media", "readonly", "cache", "discard",
	"aio", "serial", "id", "queues", "serve",
};

static int lookup(const struct name_val *t, const char *name)
{
	for (; t->name; t++)
		if (!strcmp(t->name, name))
			return t->val;
	return -1;
}

static const char *reverse(const struct name_val *t, int val)
{
	for (; t->name; t++)
		if (t->val == val)
			return t->name;
	return "?";
}

void drive_opts__init(struct drive_opts *o)
{
	memset(o, 0, sizeof(*o));
	o->format = DRIVE_FORMAT_PROBE;
	o->cache = DRIVE_CACHE_WRITEBACK;
	o->aio = DRIVE_AIO_AUTO;
}

const char *drive_opts__format_name(enum drive_format f)
{
	if (f == DRIVE_FORMAT_PROBE)
		return "probe";
	return reverse(formats, f);
}

const char *drive_opts__cache_name(enum drive_cache c)
{
	return reverse(caches, c);
}

bool drive_opts__direct(const struct drive_opts *o)
{
	return o->cache == DRIVE_CACHE_NONE || o->cache == DRIVE_CACHE_DIRECTSYNC;
}

bool drive_opts__write_cache(const struct drive_opts *o)
{
	return o->cache != DRIVE_CACHE_WRITETHROUGH &&
	       o->cache != DRIVE_CACHE_DIRECTSYNC;
}

bool drive_opts__no_flush(const struct drive_opts *o)
{
	return o->cache == DRIVE_CACHE_UNSAFE;
}

bool drive_opts__is_uri(const char *file)
{
	static const char *const schemes[] = {
		"nbd://", "nbds://", "nbd+unix://", "nbds+unix://",
		"nbd+vsock://", "nbds+vsock://", NULL,
	};

	for (const char *const *s = schemes; *s; s++)
		if (!strncasecmp(file, *s, strlen(*s)))
			return true;
	return false;
}

/* QEMU's id_wellformed(): a letter, then letters, digits, '-', '.', '_'. */
static bool id_ok(const char *id)
{
	if (!isalpha((unsigned char)id[0]))
		return false;
	for (const char *p = id + 1; *p; p++)
		if (!isalnum((unsigned char)*p) && !strchr("-._", *p))
			return false;
	return true;
}

static int bad_value(const char *key, const char *val, const char *want,
		     char *err, size_t errlen)
{
	errf(err, errlen, "-drive: invalid %s='%s' (want %s)", key, val, want);
	return -1;
}

static int set_enum(const struct name_val *t, const char *key,
		    const char *val, const char *want, int *out, char *err,
		    size_t errlen)
{
	int v = lookup(t, val);

	if (v < 0)
		return bad_value(key, val, want, err, errlen);
	*out = v;
	return 0;
}

static int set_if(const char *val, char *err, size_t errlen)
{
	static const char *const known[] = {
		"none", "ide", "scsi", "floppy", "pflash", "mtd", "sd", "xen",
		NULL,
	};

	if (!strcmp(val, "virtio"))
		return 0;
	for (const char *const *k = known; *k; k++) {
		if (!strcmp(val, *k)) {
			errf(err, errlen, "-drive: if=%s is not supported: "
			     "every drive is a virtio-blk disk (if=virtio)",
			     val);
			return -1;
		}
	}
	return bad_value("if", val, "virtio", err, errlen);
}

static int set_string(char *dst, size_t size, const char *key,
		      const char *val, char *err, size_t errlen)
{
	if (strlen(val) >= size) {
		errf(err, errlen, "-drive: %s= is longer than %zu bytes", key,
		     size - 1);
		return -1;
	}
	strcpy(dst, val);
	return 0;
}

static int set_queues(struct drive_opts *o, const char *val, char *err,
		      size_t errlen)
{
	unsigned n = 0;
	const char *p = val;

	/* Decimal digits only, no sign or spaces: strtoul takes both. */
	for (; *p >= '0' && *p <= '9' && n <= DRIVE_QUEUES_LIMIT; p++)
		n = n * 10 + (unsigned)(*p - '0');
	if (!*val || *p || n < 1 || n > DRIVE_QUEUES_LIMIT) {
		errf(err, errlen, "-drive: invalid queues='%s' (want 1 to %d)",
		     val, DRIVE_QUEUES_LIMIT);
		return -1;
	}
	o->num_queues = n;
	return 0;
}

static int set_key(struct drive_opts *o, enum key k, const char *val,
		   char *err, size_t errlen)
{
	int v;

	switch (k) {
	case K_FILE:
		if (!*val) {
			errf(err, errlen, "-drive: file= is empty");
			return -1;
		}
		return set_string(o->file, sizeof(o->file), "file", val, err,
				  errlen);
	case K_FORMAT:
		if (set_enum(formats, "format", val,
			     "raw, qcow2, vmdk, vdi, vpc, vhdx or qed", &v, err,
			     errlen))
			return -1;
		o->format = v;
		return 0;
	case K_IF:
		return set_if(val, err, errlen);
	case K_MEDIA:
		if (!strcmp(val, "disk"))
			return 0;
		if (!strcmp(val, "cdrom")) {
			errf(err, errlen, "-drive: media=cdrom is not supported "
			     "(virtio-blk disks only)");
			return -1;
		}
		return bad_value("media", val, "disk", err, errlen);
	case K_READONLY:
		if (set_enum(bools, "readonly", val, "on or off", &v, err,
			     errlen))
			return -1;
		o->read_only = v;
		return 0;
	case K_CACHE:
		if (set_enum(caches, "cache", val, "writeback, none, "
			     "writethrough, directsync or unsafe", &v, err,
			     errlen))
			return -1;
		o->cache = v;
		return 0;
	case K_DISCARD:
		if (set_enum(discards, "discard", val, "ignore or unmap", &v,
			     err, errlen))
			return -1;
		o->discard_unmap = v;
		return 0;
	case K_AIO:
		if (!strcmp(val, "native")) {
			errf(err, errlen, "-drive: aio=native (Linux AIO) is "
			     "not supported: use aio=io_uring or aio=threads");
			return -1;
		}
		if (set_enum(aios, "aio", val, "io_uring or threads", &v, err,
			     errlen))
			return -1;
		o->aio = v;
		return 0;
	case K_SERIAL:
		for (const char *p = val; *p; p++) {
			if (*p < 0x20 || *p > 0x7e) {
				errf(err, errlen, "-drive: serial= must be "
				     "printable ASCII");
				return -1;
			}
		}
		return set_string(o->serial, sizeof(o->serial), "serial", val,
				  err, errlen);
	case K_ID:
		if (!id_ok(val)) {
			errf(err, errlen, "-drive: invalid id='%s' (a letter, "
			     "then letters, digits, '-', '.' or '_')", val);
			return -1;
		}
		return set_string(o->id, sizeof(o->id), "id", val, err,
				  errlen);
	case K_QUEUES:
		return set_queues(o, val, err, errlen);
	case K_SERVE:
		if (set_enum(serves, "serve", val, "auto or node0", &v, err,
			     errlen))
			return -1;
		o->serve_node0 = v;
		return 0;
	case K_COUNT:
		break;
	}
	return -1;
}

/* One "key=value" (or bare "key") with ",," already folded to ','. */
static int parse_token(struct drive_opts *o, char *tok, unsigned *seen,
		       char *err, size_t errlen)
{
	char *eq = strchr(tok, '=');
	const char *val = "on";
	int k;

	if (eq) {
		*eq = '\0';
		val = eq + 1;
	}
	k = lookup(keys, tok);
	if (k < 0) {
		if (!eq)
			errf(err, errlen, "-drive: '%s' is not key=value "
			     "(did you mean file=%s?)", tok, tok);
		else
			errf(err, errlen, "-drive: unknown option '%s' (known:"
			     " file, format, if, media, readonly, cache, "
			     "discard, aio, serial, id, queues, serve)", tok);
		return -1;
	}
	if (!eq && k != K_READONLY) {
		errf(err, errlen, "-drive: %s needs a value (%s=...)", tok,
		     tok);
		return -1;
	}
	if (*seen & (1u << k)) {
		errf(err, errlen, "-drive: %s= given twice", key_names[k]);
		return -1;
	}
	*seen |= 1u << k;
	return set_key(o, k, val, err, errlen);
}

/* Errors quote the user's text, which may hold any byte: keep them one
 * line. */
static int one_line(char *err, size_t errlen)
{
	if (err && errlen)
		for (char *p = err; *p; p++)
			if ((unsigned char)*p < 0x20 || *p == 0x7f)
				*p = '?';
	return -1;
}

static int parse_all(const char *text, struct drive_opts *out, char *err,
		     size_t errlen);

int drive_opts__parse(const char *text, struct drive_opts *out, char *err,
		      size_t errlen)
{
	if (parse_all(text, out, err, errlen))
		return one_line(err, errlen);
	return 0;
}

static int parse_all(const char *text, struct drive_opts *out, char *err,
		     size_t errlen)
{
	char tok[TOKEN_MAX];
	unsigned seen = 0;
	const char *p;

	drive_opts__init(out);
	if (!text) {
		errf(err, errlen, "-drive: no options");
		return -1;
	}
	p = text;
	while (*p) {
		size_t n = 0;

		/* A value runs to the next single comma; ",," is a comma. */
		for (; *p; p++) {
			if (*p == ',') {
				if (p[1] != ',')
					break;
				p++;
			}
			if (n + 1 >= sizeof(tok)) {
				errf(err, errlen, "-drive: option longer than "
				     "%zu bytes", sizeof(tok) - 1);
				return -1;
			}
			tok[n++] = *p;
		}
		tok[n] = '\0';
		if (*p == ',')
			p++;
		if (n == 0)
			continue;
		if (parse_token(out, tok, &seen, err, errlen))
			return -1;
	}
	if (!(seen & (1u << K_FILE))) {
		errf(err, errlen, "-drive: file= is required");
		return -1;
	}
	if (drive_opts__is_uri(out->file) &&
	    out->format != DRIVE_FORMAT_PROBE &&
	    out->format != DRIVE_FORMAT_RAW) {
		errf(err, errlen, "-drive: format=%s cannot be used with an "
		     "NBD URI: the export serves the disk's contents (export"
		     " the image with its format, e.g. qemu-nbd -f %s)",
		     drive_opts__format_name(out->format),
		     drive_opts__format_name(out->format));
		return -1;
	}
	return 0;
}
