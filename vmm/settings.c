#include "vmm/settings.h"

#include <stdio.h>
#include <string.h>

#include "storage/ext4_image.h"
#include "vmm/cpu_features.h"
#include "vmm/errf.h"
#include "vmm/settings_priv.h"

void settings__defaults(struct vm_config *cfg)
{
	memset(cfg, 0, sizeof(*cfg));
	cfg->ram_mib = 256;
	cfg->nr_vcpus = 1;
	snprintf(cfg->cpu_model, sizeof(cfg->cpu_model), "host");
	cfg->serial_stdio = true;
	cfg->on_reset = VM_RESET_REBOOT;
	cfg->pvm_profile = VM_AUTO;
	cfg->nr_nodes = 1;
	cfg->dsm_hold_us = -1;
	snprintf(cfg->nodes[0].addr, sizeof(cfg->nodes[0].addr), "local");
}

/* Splits "a,b=c,..." style values: returns the length of the first item. */
static size_t item_len(const char *p)
{
	const char *comma = strchr(p, ',');

	return comma ? (size_t)(comma - p) : strlen(p);
}

static int set_memory(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	const char *p = v;
	size_t len = item_len(v), digits;
	uint64_t n, mul = 1;

	if (v[len] == ',') {
		errf(err, errlen, "unsupported memory option '%s' "
		     "(krg-vmm takes SIZE or size=SIZE)", v + len + 1);
		return -1;
	}
	if (len >= 5 && !memcmp(p, "size=", 5)) {
		p += 5;
		len -= 5;
	}
	digits = len;
	if (len) {
		switch (p[len - 1]) {
		case 'M': case 'm': mul = 1; digits--; break;
		case 'G': case 'g': mul = 1024; digits--; break;
		case 'T': case 't': mul = 1024 * 1024; digits--; break;
		}
	}
	if (settings__u64(p, digits, &n)) {
		errf(err, errlen, "invalid memory size '%s' (MiB, or "
		     "a number with suffix M, G or T)", v);
		return -1;
	}
	if (n > VM_MAX_RAM_MIB / mul) {
		errf(err, errlen, "memory size '%s' is too large "
		     "(maximum %llu MiB)", v,
		     (unsigned long long)VM_MAX_RAM_MIB);
		return -1;
	}
	n *= mul;
	if (n < VM_MIN_RAM_MIB) {
		errf(err, errlen, "memory size %llu MiB is too small "
		     "(minimum %d MiB)", (unsigned long long)n, VM_MIN_RAM_MIB);
		return -1;
	}
	cfg->ram_mib = n;
	return 0;
}

static int set_smp(struct vm_config *cfg, const char *v, const char *base,
		   char *err, size_t errlen)
{
	const char *p = v;
	size_t len = item_len(v);
	uint64_t n;

	if (v[len] == ',') {
		errf(err, errlen, "unsupported smp option '%s' "
		     "(krg-vmm takes N or cpus=N)", v + len + 1);
		return -1;
	}
	if (len >= 5 && !memcmp(p, "cpus=", 5)) {
		p += 5;
		len -= 5;
	}
	if (settings__u64(p, len, &n)) {
		errf(err, errlen, "invalid vCPU count '%s' (expected "
		     "a number from 1 to %d)", v, VM_MAX_VCPUS);
		return -1;
	}
	if (n == 0) {
		errf(err, errlen, "vCPU count 0 is invalid: a VM needs "
		     "at least 1 vCPU");
		return -1;
	}
	if (n > VM_MAX_VCPUS) {
		errf(err, errlen, "vCPU count %llu exceeds the maximum "
		     "of %d vCPUs", (unsigned long long)n, VM_MAX_VCPUS);
		return -1;
	}
	cfg->nr_vcpus = (unsigned)n;
	return 0;
}

static int set_kernel(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	/* drive:/PATH names a file inside a -drive, not a host path. */
	return settings__path(cfg->kernel, "kernel", v,
			ext4_image__is_spec(v) ? NULL : base, err, errlen);
}

/* "FILE" or, for multiboot, "mod1 args,mod2" with ",," for a literal comma:
 * only each module's file name (up to its first space) is a path. */
static int set_initrd(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	char out[VM_PATH_MAX];
	size_t o = 0, i = 0;
	bool at_start = true;

	if (!*v) {
		errf(err, errlen, "initrd path is empty");
		return -1;
	}
	while (v[i]) {
		size_t n;

		if (at_start) {
			n = strcspn(v + i, " ,");
			if (!n) {
				errf(err, errlen, "initrd list '%s' "
				     "has an empty module name", v);
				return -1;
			}
			if (settings__join_path(out + o, sizeof(out) - o,
				      ext4_image__is_spec(v + i) ? NULL : base,
				      v + i, n))
				goto too_long;
			o += strlen(out + o);
			i += n;
			at_start = false;
			continue;
		}
		if (o + 2 >= sizeof(out))
			goto too_long;
		if (v[i] == ',' && v[i + 1] == ',') {
			out[o++] = ',';
			out[o++] = ',';
			i += 2;
			continue;
		}
		if (v[i] == ',')
			at_start = true;
		out[o++] = v[i++];
	}
	if (at_start) {
		errf(err, errlen, "initrd list '%s' ends with an empty "
		     "module", v);
		return -1;
	}
	out[o] = '\0';
	memcpy(cfg->initrd, out, o + 1);
	return 0;
too_long:
	errf(err, errlen, "initrd path is too long (limit %d bytes)",
	     VM_PATH_MAX - 1);
	return -1;
}

static int set_string(char *dst, size_t size, const char *what, const char *v,
		      char *err, size_t errlen)
{
	if (strlen(v) >= size) {
		errf(err, errlen, "%s is too long (limit %zu bytes)",
		     what, size - 1);
		return -1;
	}
	memcpy(dst, v, strlen(v) + 1);
	return 0;
}

static int set_append(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	return set_string(cfg->append, sizeof(cfg->append),
			  "kernel command line", v, err, errlen);
}

static int set_name(struct vm_config *cfg, const char *v, const char *base,
		    char *err, size_t errlen)
{
	return set_string(cfg->name, sizeof(cfg->name), "name", v, err, errlen);
}

static int set_cpu(struct vm_config *cfg, const char *v, const char *base,
		   char *err, size_t errlen)
{
	struct cpu_spec spec;

	if (cpu_features__parse(v, &spec, err, errlen))
		return -1;
	return set_string(cfg->cpu_model, sizeof(cfg->cpu_model), "-cpu value",
			  v, err, errlen);
}

static int set_serial(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	/* mon:stdio is QEMU's habit; our console keys play the monitor role. */
	if (!strcmp(v, "stdio") || !strcmp(v, "mon:stdio"))
		cfg->serial_stdio = true;
	else if (!strcmp(v, "none"))
		cfg->serial_stdio = false;
	else {
		errf(err, errlen, "unsupported serial backend '%s' "
		     "(supported: stdio, none)", v);
		return -1;
	}
	return 0;
}

static int set_bios(struct vm_config *cfg, const char *v, const char *base,
		    char *err, size_t errlen)
{
	return settings__path(cfg->bios, "bios", v, base, err, errlen);
}

/* The firmware's debug log (port 0x402): stderr, or not shown. */
static int set_debugcon(struct vm_config *cfg, const char *v, const char *base,
			char *err, size_t errlen)
{
	if (!strcmp(v, "stderr"))
		cfg->debugcon_off = false;
	else if (!strcmp(v, "none"))
		cfg->debugcon_off = true;
	else {
		errf(err, errlen, "unsupported debugcon backend '%s' "
		     "(supported: stderr, none)", v);
		return -1;
	}
	return 0;
}

static int set_display(struct vm_config *cfg, const char *v, const char *base,
		       char *err, size_t errlen)
{
	if (strcmp(v, "none")) {
		errf(err, errlen, "unsupported display '%s' (krg-vmm "
		     "has no display; only 'none' is accepted)", v);
		return -1;
	}
	return 0;
}

static int set_nographic(struct vm_config *cfg, const char *v, const char *base,
			 char *err, size_t errlen)
{
	return settings__bool_value("nographic", v, &cfg->nographic, err,
				    errlen);
}

static int set_debug_io(struct vm_config *cfg, const char *v, const char *base,
			char *err, size_t errlen)
{
	return settings__bool_value("debug-io", v, &cfg->debug_io, err, errlen);
}

static int set_no_reboot(struct vm_config *cfg, const char *v, const char *base,
			 char *err, size_t errlen)
{
	bool b;

	if (settings__bool_value("no-reboot", v, &b, err, errlen))
		return -1;
	cfg->on_reset = b ? VM_RESET_EXIT : VM_RESET_REBOOT;
	return 0;
}

static int set_on_reset(struct vm_config *cfg, const char *v, const char *base,
			char *err, size_t errlen)
{
	if (!strcmp(v, "reboot"))
		cfg->on_reset = VM_RESET_REBOOT;
	else if (!strcmp(v, "exit"))
		cfg->on_reset = VM_RESET_EXIT;
	else {
		errf(err, errlen, "invalid on-reset action '%s' "
		     "(expected reboot or exit)", v);
		return -1;
	}
	return 0;
}

/* QEMU's -drive text (storage/drive_opts.h); each one adds a disk.  A
 * relative file= in a config file is relative to the file's directory. */
static int set_drive(struct vm_config *cfg, const char *v, const char *base,
		     char *err, size_t errlen)
{
	struct drive_opts *d;
	char e[256];

	if (cfg->nr_drives >= VM_MAX_DRIVES) {
		errf(err, errlen, "too many -drive options (at most %d)",
		     VM_MAX_DRIVES);
		return -1;
	}
	d = &cfg->drives[cfg->nr_drives];
	if (drive_opts__parse(v, d, e, sizeof(e))) {
		/* The parser names "-drive:" itself; we say which one. */
		errf(err, errlen, "-drive %u: %s", cfg->nr_drives,
		     strncmp(e, "-drive: ", 8) ? e : e + 8);
		return -1;
	}
	if (!drive_opts__is_uri(d->file) && d->file[0] != '/' && base &&
	    *base) {
		char tmp[DRIVE_FILE_MAX];

		if (settings__join_path(tmp, sizeof(tmp), base, d->file,
			      strlen(d->file))) {
			errf(err, errlen, "-drive %u: file path is too long",
			     cfg->nr_drives);
			return -1;
		}
		memcpy(d->file, tmp, strlen(tmp) + 1);
	}
	cfg->nr_drives++;
	return 0;
}

/* QEMU's -nic, -netdev and -device (vmm/devices/netdev_opts.h); the
 * pairing of -netdev and -device is checked in settings__validate. */
static int set_nic(struct vm_config *cfg, const char *v, const char *base,
		   char *err, size_t errlen)
{
	return net_opts__parse_nic(&cfg->net, v, err, errlen);
}

static int set_netdev(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	return net_opts__parse_netdev(&cfg->net, v, err, errlen);
}

static int set_device(struct vm_config *cfg, const char *v, const char *base,
		      char *err, size_t errlen)
{
	return net_opts__parse_device(&cfg->net, v, err, errlen);
}

static const struct setting table[] = {
	{ "memory", "m", "SIZE", set_memory, 0, NULL },
	{ "smp", "smp", "N", set_smp, 0, NULL },
	{ "cpu", "cpu", "MODEL", set_cpu, 0, NULL },
	{ "name", "name", "NAME", set_name, 0, NULL },
	{ "kernel", "kernel", "FILE", set_kernel, 0, NULL },
	{ "initrd", "initrd", "FILE", set_initrd, 0, NULL },
	{ "append", "append", "STRING", set_append, 0, NULL },
	{ "bios", "bios", "FILE", set_bios, 0, NULL },
	{ "debugcon", "debugcon", "BACKEND", set_debugcon, 0, NULL },
	{ "serial", "serial", "BACKEND", set_serial, 0, NULL },
	{ "nographic", "nographic", NULL, set_nographic, SETTING_FLAG, NULL },
	{ "display", "display", "none", set_display, 0, NULL },
	{ "no-reboot", "no-reboot", NULL, set_no_reboot,
	  SETTING_FLAG | SETTING_CLI_ONLY, NULL },
	{ "on-reset", "on-reset", "ACTION", set_on_reset, 0, NULL },
	{ "debug-io", "debug-io", NULL, set_debug_io, SETTING_FLAG, NULL },
	{ "drive", "drive", "OPTIONS", set_drive, SETTING_REPEAT, NULL },
	{ "nic", "nic", "OPTIONS", set_nic, SETTING_REPEAT, NULL },
	{ "netdev", "netdev", "OPTIONS", set_netdev, SETTING_REPEAT, NULL },
	{ "device", "device", "DRIVER", set_device, SETTING_REPEAT, NULL },
	{ "nodes", "nodes", "LIST", settings_cluster__nodes, 0, "local-nodes" },
	{ "local-nodes", "local-nodes", "N", settings_cluster__local_nodes,
	  0, "nodes" },
	{ "cluster-key", "cluster-key", "FILE", settings_cluster__cluster_key,
	  0, NULL },
	{ "stats", "stats", NULL, settings_cluster__stats, SETTING_FLAG, NULL },
	{ "numa", "numa", "MODE", settings_cluster__numa, 0, NULL },
	{ "dsm-hold-us", "dsm-hold-us", "US", settings_cluster__dsm_hold,
	  0, NULL },
	{ "dsm-track-writes", "dsm-track-writes", NULL,
	  settings_cluster__dsm_track_writes, SETTING_FLAG, NULL },
	{ "dsm-shadow-flush", "dsm-shadow-flush", "MODE",
	  settings_cluster__dsm_shadow_flush, 0, NULL },
	{ "pvm-profile", "pvm-profile", "MODE", settings_cluster__pvm_profile,
	  0, NULL },
	{ "save-after", "save-after", "MS", settings_cluster__save_after,
	  0, NULL },
	{ "save-to", "save-to", "FILE", settings_cluster__save_to, 0, NULL },
	{ "restore", "restore", "FILE", settings_cluster__restore, 0, NULL },
};

_Static_assert(sizeof(table) / sizeof(table[0]) <= 64,
	       "sources track settings in a uint64_t");

const struct setting *settings__table(size_t *count)
{
	*count = sizeof(table) / sizeof(table[0]);
	return table;
}

size_t settings__index(const struct setting *s)
{
	return (size_t)(s - table);
}

static const struct setting *lookup(const char *name, size_t len, bool key)
{
	for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++) {
		const char *n = key ? table[i].key : table[i].option;

		if (key && (table[i].flags & SETTING_CLI_ONLY))
			continue;
		if (strlen(n) == len && !memcmp(n, name, len))
			return &table[i];
	}
	return NULL;
}

const struct setting *settings__by_key(const char *name, size_t len)
{
	return lookup(name, len, true);
}

const struct setting *settings__by_option(const char *name, size_t len)
{
	return lookup(name, len, false);
}

int settings__validate(const struct vm_config *cfg, char *err, size_t errlen)
{
	if (cfg->pause_after_ms && !cfg->state_out[0]) {
		errf(err, errlen, "--save-after needs --save-to FILE "
		     "(where to write the state)");
		return -1;
	}
	if (cfg->state_out[0] && !cfg->pause_after_ms) {
		errf(err, errlen, "--save-to needs --save-after MS "
		     "(when to save)");
		return -1;
	}
	if (cfg->kernel[0] && cfg->bios[0]) {
		errf(err, errlen, "-bios and -kernel together: krg-vmm loads "
		     "a -kernel itself, without firmware; give one of them");
		return -1;
	}
	if (!cfg->kernel[0] && !cfg->state_in[0] && !cfg->bios[0] &&
	    !cfg->nr_drives) {
		errf(err, errlen, "no kernel given: use -kernel FILE, a -drive "
		     "to boot through the BIOS (or -bios FILE), or --restore "
		     "FILE");
		return -1;
	}
	return net_opts__validate(&cfg->net, err, errlen);
}
