/* The two commands around snapshots:
 *   krg-vmm checkpoint [--stop] [--socket SOCKET] DIR
 *       a QMP client: krg-checkpoint on the running VM's control socket;
 *   krg-vmm restore DIR [launch options]
 *       verifies the snapshot, makes the disks' restore overlays, and
 *       launches the VM from it with the shape the snapshot records (RAM,
 *       vCPUs, CPU model, disks) and the placement the options choose
 *       (--local-nodes N, --nodes LIST, or one node). */
#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <libgen.h>
#include <limits.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "vmm/ckpt_priv.h"
#include "vmm/cli.h"
#include "vmm/control_socket.h"
#include "vmm/errf.h"
#include "vmm/machine.h"

/* A checkpoint writes the whole RAM at disk speed. */
#define REPLY_TIMEOUT_MS (60 * 60 * 1000)
#define LINE_MAX_BYTES (1u << 20)

static const char checkpoint_usage[] =
	"usage: krg-vmm checkpoint [--stop] [--socket SOCKET] DIR";

/* ---- a minimal QMP client ---- */

struct conn {
	int fd;
	char buf[LINE_MAX_BYTES];
	size_t len;
};

static json_t *read_line(struct conn *c, char *err, size_t errlen)
{
	char *nl;

	while (!(nl = memchr(c->buf, '\n', c->len))) {
		struct pollfd p = { .fd = c->fd, .events = POLLIN };
		ssize_t n;

		if (c->len == sizeof(c->buf)) {
			errf(err, errlen, "reply too long");
			return NULL;
		}
		if (poll(&p, 1, REPLY_TIMEOUT_MS) <= 0) {
			errf(err, errlen, "no reply from the VM");
			return NULL;
		}
		n = recv(c->fd, c->buf + c->len, sizeof(c->buf) - c->len, 0);
		if (n <= 0) {
			errf(err, errlen, "the VM closed the connection");
			return NULL;
		}
		c->len += (size_t)n;
	}
	*nl = '\0';
	json_t *j = json_loads(c->buf, 0, NULL);

	c->len -= (size_t)(nl + 1 - c->buf);
	memmove(c->buf, nl + 1, c->len);
	if (!j)
		errf(err, errlen, "the VM sent something that is not JSON");
	return j;
}

/* cmd's return value (a new reference), or NULL with the error. */
static json_t *execute(struct conn *c, json_t *cmd, char *err, size_t errlen)
{
	char *text = json_dumps(cmd, JSON_COMPACT);
	json_t *j = NULL, *ret;
	size_t len;

	if (!text) {
		errf(err, errlen, "out of memory");
		return NULL;
	}
	len = strlen(text);
	text[len] = '\n';
	if (send(c->fd, text, len + 1, MSG_NOSIGNAL) != (ssize_t)len + 1) {
		errf(err, errlen, "sending: %s", strerror(errno));
		free(text);
		return NULL;
	}
	free(text);
	while ((j = read_line(c, err, errlen)) && json_object_get(j, "event"))
		json_decref(j);
	if (!j)
		return NULL;
	ret = json_object_get(j, "return");
	if (ret) {
		json_incref(ret);
	} else {
		const char *d = json_string_value(json_object_get(
			json_object_get(j, "error"), "desc"));

		errf(err, errlen, "%s", d ? d : "unexpected reply");
	}
	json_decref(j);
	return ret;
}

/* DIR may not exist yet: its parent must. */
static int absolute_dir(const char *dir, char *out, size_t outlen, char *err,
			size_t errlen)
{
	char parent[PATH_MAX], base[PATH_MAX], real[PATH_MAX];
	size_t n = strlen(dir);

	if (!n || n >= sizeof(parent)) {
		errf(err, errlen, "bad snapshot directory '%s'", dir);
		return -1;
	}
	while (n > 1 && dir[n - 1] == '/')
		n--;
	snprintf(parent, sizeof(parent), "%.*s", (int)n, dir);
	snprintf(base, sizeof(base), "%s", basename(parent));
	snprintf(parent, sizeof(parent), "%.*s", (int)n, dir);
	if (!strcmp(base, ".") || !strcmp(base, "..") || !strcmp(base, "/")) {
		errf(err, errlen, "name the snapshot directory itself, not "
		     "'%s'", dir);
		return -1;
	}
	if (!realpath(dirname(parent), real)) {
		errf(err, errlen, "%s: %s", dir, strerror(errno));
		return -1;
	}
	if ((size_t)snprintf(out, outlen, "%s/%s", strcmp(real, "/") ? real :
			     "", base) >= outlen) {
		errf(err, errlen, "%s: path too long", dir);
		return -1;
	}
	return 0;
}

static int do_checkpoint(const char *sock, const char *dir, bool stop)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conn *c = calloc(1, sizeof(*c));
	json_t *g = NULL, *r = NULL, *cmd;
	char err[512];
	int status = 1;

	if (!c) {
		fprintf(stderr, "krg-vmm: out of memory\n");
		return 1;
	}
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", sock);
	c->fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (c->fd < 0 || connect(c->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "krg-vmm: %s: %s\n", sock, strerror(errno));
		goto out;
	}
	g = read_line(c, err, sizeof(err));
	if (!g || !json_object_get(g, "QMP")) {
		fprintf(stderr, "krg-vmm: %s: not a QMP server\n", sock);
		goto out;
	}
	cmd = json_pack("{s:s}", "execute", "qmp_capabilities");
	r = execute(c, cmd, err, sizeof(err));
	json_decref(cmd);
	if (!r) {
		fprintf(stderr, "krg-vmm: %s: %s\n", sock, err);
		goto out;
	}
	json_decref(r);
	cmd = json_pack("{s:s,s:{s:s,s:b}}", "execute", "krg-checkpoint",
			"arguments", "dir", dir, "stop", stop);
	r = execute(c, cmd, err, sizeof(err));
	json_decref(cmd);
	if (!r) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		goto out;
	}
	printf("checkpoint %s: %lld pages, %lld MiB in %lld ms (barrier %lld "
	       "ms)%s\n", dir,
	       (long long)json_integer_value(json_object_get(r, "pages")),
	       (long long)json_integer_value(json_object_get(r, "bytes")) >> 20,
	       (long long)json_integer_value(json_object_get(r, "total-ms")),
	       (long long)json_integer_value(json_object_get(r, "barrier-ms")),
	       stop ? "; the VM is paused" : "");
	status = 0;
out:
	json_decref(r);
	json_decref(g);
	if (c->fd >= 0)
		close(c->fd);
	free(c);
	return status;
}

int ckpt_cli__checkpoint(int argc, char *const argv[])
{
	const char *sock = NULL, *dir = NULL;
	char path[108], abs[VM_PATH_MAX], err[512];
	bool stop = false;

	for (int i = 0; i < argc; i++) {
		if (!strcmp(argv[i], "--stop")) {
			stop = true;
		} else if (!strcmp(argv[i], "--socket") && i + 1 < argc) {
			sock = argv[++i];
		} else if (!strncmp(argv[i], "--socket=", 9)) {
			sock = argv[i] + 9;
		} else if (!strcmp(argv[i], "-h") || !strcmp(argv[i], "--help")) {
			printf("%s\n", checkpoint_usage);
			return 0;
		} else if (argv[i][0] == '-' || dir) {
			fprintf(stderr, "krg-vmm: unexpected argument '%s' (%s)\n",
				argv[i], checkpoint_usage);
			return KRG_EXIT_USAGE;
		} else {
			dir = argv[i];
		}
	}
	if (!dir) {
		fprintf(stderr, "krg-vmm: no snapshot directory (%s)\n",
			checkpoint_usage);
		return KRG_EXIT_USAGE;
	}
	if (absolute_dir(dir, abs, sizeof(abs), err, sizeof(err)) < 0 ||
	    (!sock && control_socket__find(path, sizeof(path), err,
					   sizeof(err)) < 0)) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	return do_checkpoint(sock ? sock : path, abs, stop);
}

/* ---- restore ---- */

/* A -drive value: commas doubled (QEMU's escape). */
static void drive_arg(char *out, size_t outlen, const struct ckpt_drive *d,
		      const char *file)
{
	size_t n = 0;

	n += (size_t)snprintf(out + n, outlen - n, "file=");
	for (const char *p = file; *p && n + 3 < outlen; p++) {
		out[n++] = *p;
		if (*p == ',')
			out[n++] = ',';
	}
	out[n] = '\0';
	n += (size_t)snprintf(out + n, outlen - n, ",format=%s,cache=%s%s%s",
			      d->read_only ? d->format : "qcow2", d->cache,
			      d->read_only ? ",readonly=on" : "",
			      d->discard_unmap ? ",discard=unmap" : "");
	if (d->serial[0] && n < outlen)
		n += (size_t)snprintf(out + n, outlen - n, ",serial=%s",
				      d->serial);
	if (d->id[0] && n < outlen)
		snprintf(out + n, outlen - n, ",id=%s", d->id);
}

int ckpt_cli__restore(int argc, char *const argv[], ckpt_launch_fn launch)
{
	static struct vm_config cfg;
	static struct ckpt_manifest mf;
	static char drives[VM_MAX_DRIVES][2 * VM_PATH_MAX + 128];
	char dir[PATH_MAX], err[1024], mib[32], smp[16];
	char *args[32 + 2 * VM_MAX_DRIVES + 64];
	enum cli_verb verb;
	int n = 0;

	if (argc < 1 || argv[0][0] == '-') {
		fprintf(stderr, "krg-vmm: usage: krg-vmm restore DIR [--local-nodes "
			"N | --nodes LIST] [launch options]\n");
		return KRG_EXIT_USAGE;
	}
	if (argc > 60) {
		fprintf(stderr, "krg-vmm: restore: too many options\n");
		return KRG_EXIT_USAGE;
	}
	if (!realpath(argv[0], dir)) {
		fprintf(stderr, "krg-vmm: %s: %s\n", argv[0], strerror(errno));
		return KRG_EXIT_USAGE;
	}
	/* Nothing starts from a snapshot that is not whole. */
	if (ckpt__verify(dir, &mf, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	snprintf(mib, sizeof(mib), "%llu", (unsigned long long)mf.ram_mib);
	snprintf(smp, sizeof(smp), "%u", mf.nr_vcpus);
	args[n++] = "krg-vmm";
	args[n++] = "launch";
	args[n++] = "-m";
	args[n++] = mib;
	args[n++] = "-smp";
	args[n++] = smp;
	args[n++] = "-cpu";
	args[n++] = mf.cpu_model;
	args[n++] = "--pvm-profile";
	args[n++] = mf.pvm_profile;
	args[n++] = "--numa";
	args[n++] = mf.numa_flat ? "flat" : "nodes";
	if (mf.name[0]) {
		args[n++] = "-name";
		args[n++] = mf.name;
	}
	args[n++] = "--restore";
	args[n++] = dir;
	/* Nothing to reboot into (no kernel): a guest reset ends the VM. */
	args[n++] = "--on-reset";
	args[n++] = "exit";
	for (uint32_t i = 0; i < mf.nr_drives; i++) {
		char file[VM_PATH_MAX];

		if (ckpt_disk__restore_overlay(&mf.drives[i], file, sizeof(file),
					       err, sizeof(err)) < 0) {
			fprintf(stderr, "krg-vmm: -drive %u: %s\n", i, err);
			return KRG_EXIT_USAGE;
		}
		drive_arg(drives[i], sizeof(drives[i]), &mf.drives[i], file);
		args[n++] = "-drive";
		args[n++] = drives[i];
	}
	for (int i = 1; i < argc; i++)
		args[n++] = argv[i];
	args[n] = NULL;
	if (cli__parse(n, args, &cfg, &verb, err, sizeof(err)) < 0) {
		fprintf(stderr, "krg-vmm: restore: %s\n", err);
		return KRG_EXIT_USAGE;
	}
	if (verb != CLI_LAUNCH) {
		fputs(cli__help_text(), stdout);
		return 0;
	}
	return launch(&cfg);
}
