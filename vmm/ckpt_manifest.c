/* The snapshot manifest: a header line that carries the format version and
 * a CRC-64 of the rest, then JSON.  The version comes first and alone, so
 * a snapshot of another format is named as such rather than reported as
 * garbage; everything after it is checked before anything is believed. */
#include "vmm/ckpt_format.h"

#include <inttypes.h>
#include <isa-l.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/errf.h"

uint64_t ckpt__crc64(uint64_t crc, const void *buf, size_t len)
{
	return crc64_ecma_refl(crc, buf, len);
}

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case CKPT_FILE_DEVICES:
		return "devices";
	case CKPT_FILE_CPUS:
		return "cpus";
	case CKPT_FILE_PAGES:
		return "pages";
	default:
		return NULL;
	}
}

static uint32_t kind_of(const char *name)
{
	for (uint32_t k = CKPT_FILE_DEVICES; k <= CKPT_FILE_PAGES; k++)
		if (!strcmp(name, kind_name(k)))
			return k;
	return 0;
}

void ckpt__file_name(char *name, enum ckpt_file_kind kind, unsigned node)
{
	if (kind == CKPT_FILE_DEVICES)
		snprintf(name, CKPT_NAME_MAX, "devices.state");
	else if (kind == CKPT_FILE_CPUS)
		snprintf(name, CKPT_NAME_MAX, "cpus-%u.state", node);
	else
		snprintf(name, CKPT_NAME_MAX, "pages-%u.bin", node);
}

/* Counters are unsigned; JSON integers are signed 64-bit. */
static json_t *u64(uint64_t v)
{
	return json_integer((json_int_t)v);
}

static json_t *hex64(uint64_t v)
{
	char s[24];

	snprintf(s, sizeof(s), "%016" PRIx64, v);
	return json_string(s);
}

static json_t *vm_json(const struct ckpt_manifest *m)
{
	return json_pack("{s:s,s:o,s:i,s:s,s:s,s:b}", "name", m->name,
			 "ram-mib", u64(m->ram_mib), "vcpus", (int)m->nr_vcpus,
			 "cpu", m->cpu_model, "pvm-profile", m->pvm_profile,
			 "numa-flat", m->numa_flat);
}

static json_t *drive_json(const struct ckpt_drive *d)
{
	return json_pack("{s:s,s:s,s:s,s:s,s:s,s:b,s:b,s:o,s:o}", "file",
			 d->file, "format", d->format, "cache", d->cache,
			 "serial", d->serial, "id", d->id, "read-only",
			 d->read_only, "discard-unmap", d->discard_unmap, "size",
			 u64(d->size), "mtime-ns", json_integer(d->mtime_ns));
}

static json_t *file_json(const struct ckpt_file *f)
{
	return json_pack("{s:s,s:s,s:i,s:o,s:o,s:o}", "name", f->name, "kind",
			 kind_name(f->kind), "node", (int)f->node, "size",
			 u64(f->size), "crc64", hex64(f->crc), "pages",
			 u64(f->pages));
}

static json_t *manifest_json(const struct ckpt_manifest *m)
{
	json_t *o = json_object(), *files = json_array(), *drives = json_array(),
	       *place = json_array();

	if (!o || !files || !drives || !place)
		goto fail;
	for (uint32_t i = 0; i < m->nr_vcpus && i < VM_MAX_VCPUS; i++)
		json_array_append_new(place, json_integer(m->vcpu_node[i]));
	for (uint32_t i = 0; i < m->nr_files && i < CKPT_MAX_FILES; i++)
		if (json_array_append_new(files, file_json(&m->files[i])) < 0)
			goto fail;
	for (uint32_t i = 0; i < m->nr_drives && i < VM_MAX_DRIVES; i++)
		if (json_array_append_new(drives, drive_json(&m->drives[i])) < 0)
			goto fail;
	json_object_set_new(o, "format", json_integer(m->version));
	json_object_set_new(o, "created-ns", json_integer(m->created_ns));
	if (json_object_set_new(o, "vm", vm_json(m)) < 0)
		goto fail_set;
	json_object_set_new(o, "nodes", json_integer(m->nr_nodes));
	json_object_set_new(o, "vcpu-node", place);
	json_object_set_new(o, "pages", u64(m->pages));
	json_object_set_new(o, "files", files);
	json_object_set_new(o, "drives", drives);
	return o;
fail:
	json_decref(files);
	json_decref(drives);
	json_decref(place);
fail_set:
	json_decref(o);
	return NULL;
}

int ckpt_manifest__encode(const struct ckpt_manifest *m, char **out,
			  size_t *len, char *err, size_t errlen)
{
	json_t *j = manifest_json(m);
	char *body = j ? json_dumps(j, JSON_INDENT(1) | JSON_SORT_KEYS) : NULL;
	char head[64];
	size_t blen, hlen;
	uint64_t crc;

	json_decref(j);
	*out = NULL;
	if (!body) {
		errf(err, errlen, "manifest: out of memory (or a string that "
		     "is not UTF-8)");
		return -1;
	}
	/* The CRC covers everything after the header line. */
	blen = strlen(body);
	crc = ckpt__crc64(ckpt__crc64(0, body, blen), "\n", 1);
	hlen = (size_t)snprintf(head, sizeof(head), "%s %u %016" PRIx64 "\n",
				CKPT_MANIFEST_MAGIC, CKPT_FORMAT_VERSION, crc);
	*out = malloc(hlen + blen + 1);
	if (!*out) {
		free(body);
		errf(err, errlen, "manifest: out of memory");
		return -1;
	}
	memcpy(*out, head, hlen);
	memcpy(*out + hlen, body, blen);
	(*out)[hlen + blen] = '\n';
	*len = hlen + blen + 1;
	free(body);
	return 0;
}

/* ---- decoding ---- */

struct rd {
	char *err;
	size_t errlen;
	bool failed;
};

static bool bad(struct rd *r, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static bool bad(struct rd *r, const char *fmt, ...)
{
	va_list ap;

	if (!r->failed) {
		va_start(ap, fmt);
		verrf(r->err, r->errlen, fmt, ap);
		va_end(ap);
	}
	r->failed = true;
	return false;
}

static bool get_u64(struct rd *r, json_t *o, const char *key, uint64_t max,
		    uint64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v) || json_integer_value(v) < 0 ||
	    (uint64_t)json_integer_value(v) > max)
		return bad(r, "manifest: \"%s\" is missing or out of range",
			   key);
	*out = (uint64_t)json_integer_value(v);
	return true;
}

static bool get_i64(struct rd *r, json_t *o, const char *key, int64_t *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_integer(v))
		return bad(r, "manifest: \"%s\" is missing", key);
	*out = json_integer_value(v);
	return true;
}

static bool get_str(struct rd *r, json_t *o, const char *key, char *out,
		    size_t cap)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_string(v) || json_string_length(v) >= cap ||
	    strlen(json_string_value(v)) != json_string_length(v))
		return bad(r, "manifest: \"%s\" is missing or too long", key);
	memcpy(out, json_string_value(v), json_string_length(v) + 1);
	return true;
}

static bool get_bool(struct rd *r, json_t *o, const char *key, bool *out)
{
	json_t *v = json_object_get(o, key);

	if (!json_is_boolean(v))
		return bad(r, "manifest: \"%s\" is missing or not true/false",
			   key);
	*out = json_is_true(v);
	return true;
}

static bool get_file(struct rd *r, json_t *o, struct ckpt_file *f,
		     uint32_t nr_nodes)
{
	char kind[16], name[CKPT_NAME_MAX], want[CKPT_NAME_MAX], crc[24];
	uint64_t node, v;
	char *end;

	if (!json_is_object(o))
		return bad(r, "manifest: a file entry is not an object");
	if (!get_str(r, o, "name", name, sizeof(name)) ||
	    !get_str(r, o, "kind", kind, sizeof(kind)) ||
	    !get_u64(r, o, "node", nr_nodes - 1, &node) ||
	    !get_u64(r, o, "size", INT64_MAX, &f->size) ||
	    !get_u64(r, o, "pages", INT64_MAX, &f->pages) ||
	    !get_str(r, o, "crc64", crc, sizeof(crc)))
		return false;
	f->kind = kind_of(kind);
	if (!f->kind)
		return bad(r, "manifest: unknown file kind \"%s\"", kind);
	f->node = (uint32_t)node;
	if (f->kind == CKPT_FILE_DEVICES && f->node)
		return bad(r, "manifest: devices.state comes from node 0");
	ckpt__file_name(want, f->kind, f->node);
	/* The name is derived, never trusted: no path can sneak in. */
	if (strcmp(name, want))
		return bad(r, "manifest: file \"%s\" should be named \"%s\"",
			   name, want);
	memcpy(f->name, want, sizeof(want));
	v = strtoull(crc, &end, 16);
	if (strlen(crc) != 16 || *end)
		return bad(r, "manifest: %s: \"crc64\" is not 16 hex digits",
			   f->name);
	f->crc = v;
	if (f->kind != CKPT_FILE_PAGES && f->pages)
		return bad(r, "manifest: %s holds no pages", f->name);
	return true;
}

static bool get_drive(struct rd *r, json_t *o, struct ckpt_drive *d)
{
	if (!json_is_object(o))
		return bad(r, "manifest: a drive entry is not an object");
	if (!get_str(r, o, "file", d->file, sizeof(d->file)) ||
	    !get_str(r, o, "format", d->format, sizeof(d->format)) ||
	    !get_str(r, o, "cache", d->cache, sizeof(d->cache)) ||
	    !get_str(r, o, "serial", d->serial, sizeof(d->serial)) ||
	    !get_str(r, o, "id", d->id, sizeof(d->id)) ||
	    !get_bool(r, o, "read-only", &d->read_only) ||
	    !get_bool(r, o, "discard-unmap", &d->discard_unmap) ||
	    !get_u64(r, o, "size", INT64_MAX, &d->size) ||
	    !get_i64(r, o, "mtime-ns", &d->mtime_ns))
		return false;
	if (d->file[0] != '/')
		return bad(r, "manifest: disk image \"%s\" is not an absolute "
			   "path", d->file);
	/* Formats are QEMU driver names: letters and digits only, so one
	 * can go on a command line as it is. */
	for (const char *p = d->format; *p; p++)
		if (!(*p >= 'a' && *p <= 'z') && !(*p >= '0' && *p <= '9'))
			return bad(r, "manifest: disk format \"%s\" is not "
				   "valid", d->format);
	return true;
}

static bool get_vm(struct rd *r, json_t *vm, struct ckpt_manifest *m)
{
	uint64_t vcpus;

	if (!json_is_object(vm))
		return bad(r, "manifest: \"vm\" is missing");
	if (!get_str(r, vm, "name", m->name, sizeof(m->name)) ||
	    !get_u64(r, vm, "ram-mib", VM_MAX_RAM_MIB, &m->ram_mib) ||
	    !get_u64(r, vm, "vcpus", VM_MAX_VCPUS, &vcpus) ||
	    !get_str(r, vm, "cpu", m->cpu_model, sizeof(m->cpu_model)) ||
	    !get_str(r, vm, "pvm-profile", m->pvm_profile,
		     sizeof(m->pvm_profile)) ||
	    !get_bool(r, vm, "numa-flat", &m->numa_flat))
		return false;
	m->nr_vcpus = (uint32_t)vcpus;
	if (m->ram_mib < VM_MIN_RAM_MIB || !m->nr_vcpus)
		return bad(r, "manifest: a VM of %" PRIu64 " MiB and %u vCPUs "
			   "cannot exist", m->ram_mib, m->nr_vcpus);
	if (strcmp(m->pvm_profile, "auto") && strcmp(m->pvm_profile, "on") &&
	    strcmp(m->pvm_profile, "off"))
		return bad(r, "manifest: pvm-profile \"%s\" is not auto, on "
			   "or off", m->pvm_profile);
	return true;
}

/* Every node that ran vCPUs left their state; every node left pages;
 * node 0 the devices; and no file twice. */
static bool check_files(struct rd *r, const struct ckpt_manifest *m)
{
	uint64_t pages = 0;

	for (uint32_t i = 0; i < m->nr_files; i++) {
		for (uint32_t k = 0; k < i; k++)
			if (!strcmp(m->files[i].name, m->files[k].name))
				return bad(r, "manifest: %s is listed twice",
					   m->files[i].name);
		pages += m->files[i].pages;
	}
	if (pages != m->pages)
		return bad(r, "manifest: the files hold %" PRIu64 " pages, not "
			   "the %" PRIu64 " it says", pages, m->pages);
	if (m->pages > (m->ram_mib << 20) / CKPT_PAGE_SIZE)
		return bad(r, "manifest: %" PRIu64 " pages do not fit in %"
			   PRIu64 " MiB", m->pages, m->ram_mib);
	if (!ckpt_manifest__file(m, CKPT_FILE_DEVICES, 0))
		return bad(r, "manifest: no devices.state listed");
	for (uint32_t n = 0; n < m->nr_nodes; n++)
		if (!ckpt_manifest__file(m, CKPT_FILE_PAGES, n))
			return bad(r, "manifest: no page file of node %u", n);
	for (uint32_t i = 0; i < m->nr_vcpus; i++)
		if (!ckpt_manifest__file(m, CKPT_FILE_CPUS, m->vcpu_node[i]))
			return bad(r, "manifest: vCPU %u ran on node %u, whose "
				   "cpus file is not listed", i,
				   m->vcpu_node[i]);
	return true;
}

static bool get_manifest(struct rd *r, json_t *j, struct ckpt_manifest *m)
{
	json_t *files, *drives, *place;
	uint64_t v;
	size_t i;

	if (!json_is_object(j))
		return bad(r, "manifest: the body is not a JSON object");
	if (!get_u64(r, j, "format", UINT32_MAX, &v))
		return false;
	if (v != CKPT_FORMAT_VERSION)
		return bad(r, "manifest: the body says format %" PRIu64 ", the "
			   "header %u", v, CKPT_FORMAT_VERSION);
	m->version = (uint32_t)v;
	if (!get_i64(r, j, "created-ns", &m->created_ns) ||
	    !get_vm(r, json_object_get(j, "vm"), m) ||
	    !get_u64(r, j, "nodes", VM_MAX_NODES, &v) ||
	    !get_u64(r, j, "pages", INT64_MAX, &m->pages))
		return false;
	if (!v)
		return bad(r, "manifest: \"nodes\" is 0");
	m->nr_nodes = (uint32_t)v;
	place = json_object_get(j, "vcpu-node");
	if (!json_is_array(place) || json_array_size(place) != m->nr_vcpus)
		return bad(r, "manifest: \"vcpu-node\" must list %u nodes",
			   m->nr_vcpus);
	for (i = 0; i < m->nr_vcpus; i++) {
		json_t *n = json_array_get(place, i);

		if (!json_is_integer(n) || json_integer_value(n) < 0 ||
		    json_integer_value(n) >= (json_int_t)m->nr_nodes)
			return bad(r, "manifest: vCPU %zu ran on no valid node",
				   i);
		m->vcpu_node[i] = (uint8_t)json_integer_value(n);
	}
	files = json_object_get(j, "files");
	drives = json_object_get(j, "drives");
	if (!json_is_array(files) || json_array_size(files) > CKPT_MAX_FILES ||
	    !json_is_array(drives) || json_array_size(drives) > VM_MAX_DRIVES)
		return bad(r, "manifest: \"files\" or \"drives\" is missing or "
			   "too long");
	m->nr_files = (uint32_t)json_array_size(files);
	for (i = 0; i < m->nr_files; i++)
		if (!get_file(r, json_array_get(files, i), &m->files[i],
			      m->nr_nodes))
			return false;
	m->nr_drives = (uint32_t)json_array_size(drives);
	for (i = 0; i < m->nr_drives; i++)
		if (!get_drive(r, json_array_get(drives, i), &m->drives[i]))
			return false;
	return check_files(r, m);
}

int ckpt_manifest__decode(struct ckpt_manifest *m, const char *buf,
			  size_t len, char *err, size_t errlen)
{
	struct rd r = { err, errlen, false };
	size_t mlen = strlen(CKPT_MANIFEST_MAGIC);
	const char *nl = memchr(buf, '\n', len < 96 ? len : 96);
	char line[96], *p, *end;
	unsigned long ver;
	uint64_t crc;
	json_error_t je;
	json_t *j;
	bool ok;

	memset(m, 0, sizeof(*m));
	if (!nl || (size_t)(nl - buf) <= mlen + 1 ||
	    memcmp(buf, CKPT_MANIFEST_MAGIC " ", mlen + 1)) {
		errf(err, errlen, "manifest: not a krg-vmm snapshot manifest");
		return -1;
	}
	memcpy(line, buf, (size_t)(nl - buf));
	line[nl - buf] = '\0';
	p = line + mlen + 1;
	ver = strtoul(p, &end, 10);
	if (end == p || *end != ' ') {
		errf(err, errlen, "manifest: the header line is damaged");
		return -1;
	}
	if (ver != CKPT_FORMAT_VERSION) {
		errf(err, errlen, "snapshot format version %lu; this krg-vmm "
		     "reads version %u only", ver, CKPT_FORMAT_VERSION);
		return -1;
	}
	p = end + 1;
	crc = strtoull(p, &end, 16);
	if (strlen(p) != 16 || *end) {
		errf(err, errlen, "manifest: the header line is damaged");
		return -1;
	}
	len -= (size_t)(nl + 1 - buf);
	buf = nl + 1;
	if (ckpt__crc64(0, buf, len) != crc) {
		errf(err, errlen, "manifest: checksum mismatch (the file is "
		     "damaged or was edited)");
		return -1;
	}
	j = json_loadb(buf, len, JSON_REJECT_DUPLICATES, &je);
	if (!j) {
		errf(err, errlen, "manifest: not JSON: %s (line %d)", je.text,
		     je.line);
		return -1;
	}
	ok = get_manifest(&r, j, m);
	json_decref(j);
	return ok ? 0 : -1;
}

const struct ckpt_file *ckpt_manifest__file(const struct ckpt_manifest *m,
					    enum ckpt_file_kind kind,
					    unsigned node)
{
	for (uint32_t i = 0; i < m->nr_files && i < CKPT_MAX_FILES; i++)
		if (m->files[i].kind == (uint32_t)kind &&
		    (kind == CKPT_FILE_DEVICES || m->files[i].node == node))
			return &m->files[i];
	return NULL;
}
