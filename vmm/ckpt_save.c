/* Node 0's checkpoint: pause, barrier, freeze the disks, every node writes
 * its files into a fresh DIR.tmp-XXXXXX, node 0 adds the devices and the
 * manifest, and only then does the new snapshot take DIR's place (an
 * atomic exchange when DIR already holds one).  Anything that fails or is
 * killed before the exchange leaves DIR as it was. */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "vmm/bytes.h"
#include "vmm/ckpt_priv.h"
#include "vmm/cluster.h"
#include "vmm/errf.h"
#include "vmm/file_io.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/vtimer.h"

#define PAUSE_TIMEOUT_MS 5000
#define ROUND_TIMEOUT_MS 2000
#define BARRIER_TIMEOUT_MS 15000
/* Writing a node's pages runs at disk speed: minutes for a large VM. */
#define WRITE_TIMEOUT_MS (30 * 60 * 1000)

static uint64_t ms_now(void)
{
	return vclock__now_ns() / 1000000;
}

/* Rounds until every node's memory is quiet (ckpt_format.h). */
static int barrier(struct machine *m, struct ckpt_node *c, char *err,
		   size_t errlen)
{
	uint64_t t_end = ms_now() + BARRIER_TIMEOUT_MS;
	unsigned nodes = cluster__nr_nodes(m->cluster), rounds = 0;

	pthread_mutex_lock(&c->lock);
	ckpt_barrier__init(&c->barrier, nodes, c->last_round);
	c->barrier_on = true;
	pthread_mutex_unlock(&c->lock);
	for (;;) {
		uint8_t b[4];
		struct iovec iov = { b, sizeof(b) };
		struct timespec ts;
		enum ckpt_barrier_result res;
		uint32_t round;

		pthread_mutex_lock(&c->lock);
		round = ckpt_barrier__next_round(&c->barrier);
		c->last_round = round;
		c->bres = CKPT_B_WAIT;
		pthread_mutex_unlock(&c->lock);
		rounds++;
		put_le32(b, round);
		if (cluster__broadcast(m->cluster, NET_CH_FAST, CKPT_T_PROBE,
				       &iov, 1) < 0) {
			errf(err, errlen, "barrier: a node cannot be reached");
			goto fail;
		}
		ckpt_node__self_probe(c, round);
		vclock__deadline(&ts, CLOCK_REALTIME, ROUND_TIMEOUT_MS);
		pthread_mutex_lock(&c->lock);
		while (c->bres == CKPT_B_WAIT && !atomic_load(&m->stop))
			if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) ==
			    ETIMEDOUT)
				break;
		res = c->bres;
		pthread_mutex_unlock(&c->lock);
		if (res == CKPT_B_QUIET)
			break;
		if (atomic_load(&m->stop)) {
			errf(err, errlen, "the VM stopped during the barrier");
			goto fail;
		}
		if (res == CKPT_B_WAIT) {
			char who[128] = "";
			size_t n = 0;

			pthread_mutex_lock(&c->lock);
			for (unsigned i = 0; i < nodes && n < sizeof(who); i++)
				if (!c->barrier.have[i])
					n += (size_t)snprintf(who + n,
							      sizeof(who) - n,
							      " %u", i);
			pthread_mutex_unlock(&c->lock);
			errf(err, errlen, "barrier: node(s)%s did not answer "
			     "round %u within %u ms", who, round,
			     ROUND_TIMEOUT_MS);
			goto fail;
		}
		if (ms_now() > t_end) {
			errf(err, errlen, "barrier: guest memory traffic did "
			     "not settle within %u ms (%u rounds)",
			     BARRIER_TIMEOUT_MS, rounds);
			goto fail;
		}
	}
	pthread_mutex_lock(&c->lock);
	c->barrier_on = false;
	pthread_mutex_unlock(&c->lock);
	return 0;
fail:
	pthread_mutex_lock(&c->lock);
	c->barrier_on = false;
	pthread_mutex_unlock(&c->lock);
	return -1;
}

/* Every other node writes its files; node 0 writes its own meanwhile. */
static int write_all_nodes(struct machine *m, struct ckpt_node *c,
			   const char *tmp, char *err, size_t errlen)
{
	unsigned nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;
	size_t dl = strlen(tmp);
	uint8_t *b = malloc(8 + dl);
	struct iovec iov = { b, 8 + dl };
	struct timespec ts;
	uint64_t id;
	int rc = 0;

	if (!b) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	pthread_mutex_lock(&c->lock);
	id = ++c->write_id ? c->write_id : ++c->write_id;
	c->written_pending = nodes - 1;
	memset(c->have_written, 0, sizeof(c->have_written));
	pthread_mutex_unlock(&c->lock);
	put_le64(b, id);
	memcpy(b + 8, tmp, dl);
	if (m->cluster &&
	    cluster__broadcast(m->cluster, NET_CH_FAST, CKPT_T_WRITE, &iov, 1) <
		    0) {
		errf(err, errlen, "a node cannot be reached");
		rc = -1;
	}
	free(b);
	ckpt_write__node_files(c, tmp, &c->written[0]);
	vclock__deadline(&ts, CLOCK_REALTIME, WRITE_TIMEOUT_MS);
	pthread_mutex_lock(&c->lock);
	while (rc == 0 && c->written_pending && !atomic_load(&m->stop))
		if (pthread_cond_timedwait(&c->cond, &c->lock, &ts) ==
		    ETIMEDOUT)
			break;
	if (rc == 0 && c->written_pending) {
		errf(err, errlen, "%s while the nodes wrote their files",
		     atomic_load(&m->stop) ? "the VM stopped" : "timed out");
		rc = -1;
	}
	for (unsigned i = 0; rc == 0 && i < nodes; i++)
		if (c->written[i].status) {
			errf(err, errlen, "%s", c->written[i].why);
			rc = -1;
		}
	c->write_id++;	/* late answers are stale now */
	c->written_pending = 0;
	pthread_mutex_unlock(&c->lock);
	return rc;
}

/* A file a node says it wrote must be there as it says: on a directory
 * that is not really shared between hosts it would be missing here. */
static int check_written(const char *tmp, struct ckpt_file *f, char *err,
			 size_t errlen)
{
	char path[VM_PATH_MAX + CKPT_NAME_MAX + 2];
	struct stat st;

	snprintf(path, sizeof(path), "%s/%s", tmp, f->name);
	if (stat(path, &st) < 0 || (uint64_t)st.st_size != f->size) {
		errf(err, errlen, "%s from node %u is not in %s as written "
		     "(is the snapshot directory shared with that node's "
		     "host?)", f->name, f->node, tmp);
		return -1;
	}
	return 0;
}

static int add_file(struct ckpt_manifest *mf, const char *tmp,
		    enum ckpt_file_kind kind, unsigned node, uint64_t size,
		    uint64_t crc, uint64_t pages, char *err, size_t errlen)
{
	struct ckpt_file *f = &mf->files[mf->nr_files++];

	*f = (struct ckpt_file){ .kind = kind, .node = node, .size = size,
				 .crc = crc, .pages = pages };
	ckpt__file_name(f->name, kind, node);
	mf->pages += pages;
	return check_written(tmp, f, err, errlen);
}

static const char *pvm_name(enum vm_auto_switch p)
{
	return p == VM_ON ? "on" : p == VM_OFF ? "off" : "auto";
}

static int build_manifest(struct machine *m, struct ckpt_node *c,
			  const char *tmp, struct ckpt_manifest *mf,
			  uint64_t dev_size, uint64_t dev_crc, char *err,
			  size_t errlen)
{
	const struct vm_config *cfg = m->cfg;
	unsigned nodes = m->cluster ? cluster__nr_nodes(m->cluster) : 1;
	struct timespec now;

	clock_gettime(CLOCK_REALTIME, &now);
	mf->version = CKPT_FORMAT_VERSION;
	mf->created_ns = (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
	snprintf(mf->name, sizeof(mf->name), "%s", cfg->name);
	mf->ram_mib = cfg->ram_mib;
	mf->nr_vcpus = m->nr_vcpus;
	snprintf(mf->cpu_model, sizeof(mf->cpu_model), "%s", cfg->cpu_model);
	snprintf(mf->pvm_profile, sizeof(mf->pvm_profile), "%s",
		 pvm_name(cfg->pvm_profile));
	mf->numa_flat = cfg->numa_flat;
	mf->nr_nodes = nodes;
	/* Where each vCPU's state is: the node that saved it (whatever
	 * moved it there), exactly one. */
	for (unsigned i = 0; i < m->nr_vcpus; i++) {
		unsigned found = 0;

		for (unsigned n = 0; n < nodes; n++)
			if (c->written[n].vcpus >> i & 1) {
				mf->vcpu_node[i] = (uint8_t)n;
				found++;
			}
		if (found != 1) {
			errf(err, errlen, "vCPU %u was saved by %u nodes", i,
			     found);
			return -1;
		}
	}
	if (add_file(mf, tmp, CKPT_FILE_DEVICES, 0, dev_size, dev_crc, 0, err,
		     errlen) < 0)
		return -1;
	for (unsigned n = 0; n < nodes; n++) {
		const struct ckpt_written *w = &c->written[n];

		if (w->cpus_size &&
		    add_file(mf, tmp, CKPT_FILE_CPUS, n, w->cpus_size,
			     w->cpus_crc, 0, err, errlen) < 0)
			return -1;
		if (add_file(mf, tmp, CKPT_FILE_PAGES, n, w->pages_size,
			     w->pages_crc, w->pages, err, errlen) < 0)
			return -1;
	}
	return 0;
}

static bool has_suffix(const char *s, const char *prefix, const char *suffix)
{
	size_t n = strlen(s), p = strlen(prefix), x = strlen(suffix);

	return n > p + x && !strncmp(s, prefix, p) && !strcmp(s + n - x, suffix);
}

/* Removes a snapshot directory: only the names a snapshot has, so a
 * mistaken path never loses anything else. */
static void remove_snapshot(const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	char path[VM_PATH_MAX + 300];

	if (!d)
		return;
	while ((e = readdir(d))) {
		const char *s = e->d_name;

		if (strcmp(s, CKPT_MANIFEST_NAME) &&
		    strcmp(s, "devices.state") &&
		    !has_suffix(s, "cpus-", ".state") &&
		    !has_suffix(s, "pages-", ".bin"))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, s);
		unlink(path);
	}
	closedir(d);
	rmdir(dir);
}

/* DIR may be missing, empty, or an earlier snapshot; nothing else. */
static int check_target(const char *dir, char *err, size_t errlen)
{
	char path[VM_PATH_MAX + 16];
	struct stat st;
	DIR *d;
	struct dirent *e;
	bool empty = true;

	if (dir[0] != '/') {
		errf(err, errlen, "the snapshot directory must be an absolute "
		     "path (%s)", dir);
		return -1;
	}
	if (strlen(dir) > VM_PATH_MAX - 32) {
		errf(err, errlen, "the snapshot directory path is too long");
		return -1;
	}
	if (lstat(dir, &st) < 0)
		return errno == ENOENT ? 0 : (errf(err, errlen, "%s: %s", dir,
						   strerror(errno)), -1);
	if (!S_ISDIR(st.st_mode)) {
		errf(err, errlen, "%s exists and is not a directory", dir);
		return -1;
	}
	snprintf(path, sizeof(path), "%s/%s", dir, CKPT_MANIFEST_NAME);
	if (access(path, F_OK) == 0)
		return 0;
	d = opendir(dir);
	while (d && (e = readdir(d)))
		if (strcmp(e->d_name, ".") && strcmp(e->d_name, ".."))
			empty = false;
	if (d)
		closedir(d);
	if (!empty) {
		errf(err, errlen, "%s is neither empty nor a krg-vmm snapshot: "
		     "not replacing it", dir);
		return -1;
	}
	return 0;
}

/* The new snapshot takes DIR's place atomically; the old one, if any,
 * ends up in tmp and is removed. */
static int publish(const char *tmp, const char *dir, char *err,
		   size_t errlen)
{
	char parent[VM_PATH_MAX];
	char *slash;

	if (rename(tmp, dir) == 0)
		goto done;
	if (errno != ENOTEMPTY && errno != EEXIST) {
		errf(err, errlen, "renaming %s to %s: %s", tmp, dir,
		     strerror(errno));
		return -1;
	}
	if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dir, RENAME_EXCHANGE) < 0) {
		errf(err, errlen, "exchanging %s with %s: %s", tmp, dir,
		     strerror(errno));
		return -1;
	}
	remove_snapshot(tmp);
done:
	snprintf(parent, sizeof(parent), "%s", dir);
	slash = strrchr(parent, '/');
	if (slash)
		*(slash == parent ? slash + 1 : slash) = '\0';
	file_io__sync_dir(parent);
	return 0;
}

static int pause_all(struct machine *m, char *err, size_t errlen)
{
	if (m->cluster)
		cluster__send_pause(m->cluster, true);
	machine__pause(m);
	if (m->cluster && cluster__wait_paused(m->cluster, PAUSE_TIMEOUT_MS, err,
					       errlen) < 0)
		return -1;
	return atomic_load(&m->stop) ? (errf(err, errlen, "the VM is "
					     "stopping"), -1) : 0;
}

static void resume_all(struct machine *m)
{
	if (m->cluster)
		cluster__send_pause(m->cluster, false);
	machine__resume(m);
}

static int save_inner(struct machine *m, struct ckpt_node *c, const char *dir,
		      const char *tmp, struct ckpt_manifest *mf, char *err,
		      size_t errlen)
{
	uint8_t *blob = NULL;
	size_t blen = 0;
	uint64_t dcrc = 0, t0 = ms_now();
	char *text = NULL;
	size_t tlen;
	int rc = -1;

	if (m->cluster && barrier(m, c, err, errlen) < 0)
		return -1;
	c->last.pause_ms = ms_now() - t0;
	/* Devices first, then the vCPUs: an interrupt a device raises
	 * meanwhile is either in a LAPIC already or raised again by the
	 * device after a restore - never lost (WRITE follows it on the
	 * same channel). */
	if (ckpt_write__devices_blob(m, &blob, &blen, err, errlen) < 0 ||
	    ckpt_write__file(tmp, "devices.state", blob, blen, &dcrc, err,
			     errlen) < 0)
		goto out;
	if (write_all_nodes(m, c, tmp, err, errlen) < 0 ||
	    build_manifest(m, c, tmp, mf, blen, dcrc, err, errlen) < 0 ||
	    ckpt_manifest__encode(mf, &text, &tlen, err, errlen) < 0) {
		goto out;
	}
	{
		uint64_t crc;

		if (ckpt_write__file(tmp, CKPT_MANIFEST_NAME, text, tlen, &crc,
				     err, errlen) < 0)
			goto out;
	}
	file_io__sync_dir(tmp);
	if (publish(tmp, dir, err, errlen) < 0)
		goto out;
	c->last.pages = mf->pages;
	c->last.bytes = 0;
	for (uint32_t i = 0; i < mf->nr_files; i++)
		c->last.bytes += mf->files[i].size;
	rc = 0;
out:
	free(text);
	free(blob);
	return rc;
}

int ckpt__checkpoint(struct machine *m, const char *dir, bool stop,
		     struct ckpt_result *res, char *err, size_t errlen)
{
	struct ckpt_node local, *c = m->ckpt;
	struct ckpt_manifest *mf = calloc(1, sizeof(*mf));
	char tmp[VM_PATH_MAX + 16], path[VM_PATH_MAX];
	uint64_t t0 = ms_now();
	int rc = -1;

	memset(res, 0, sizeof(*res));
	if (!mf) {
		errf(err, errlen, "out of memory");
		return -1;
	}
	if (!c) {
		/* A single node: no messages, the context lives here. */
		memset(&local, 0, sizeof(local));
		local.m = m;
		pthread_mutex_init(&local.lock, NULL);
		pthread_cond_init(&local.cond, NULL);
		c = &local;
	}
	if (check_target(dir, err, errlen) < 0)
		goto out_free;
	/* DIR.tmp-XXXXXX beside DIR, on its filesystem: "/a/b/" is "/a/b". */
	snprintf(path, sizeof(path), "%s", dir);
	for (size_t n = strlen(path); n > 1 && path[n - 1] == '/'; n--)
		path[n - 1] = '\0';
	dir = path;
	snprintf(tmp, sizeof(tmp), "%s.tmp-XXXXXX", dir);
	if (!mkdtemp(tmp)) {
		errf(err, errlen, "creating %s: %s", tmp, strerror(errno));
		goto out_free;
	}
	if (pause_all(m, err, errlen) < 0)
		goto out_resume;
	machine__hold_drives(m, true);
	if (ckpt_disk__freeze(m, mf->drives, &mf->nr_drives, err, errlen) < 0)
		goto out_release;
	rc = save_inner(m, c, dir, tmp, mf, err, errlen);
out_release:
	machine__hold_drives(m, false);
out_resume:
	if (!stop)
		resume_all(m);
	if (rc < 0)
		remove_snapshot(tmp);
	c->last.ms = ms_now() - t0;
	*res = c->last;
out_free:
	if (c == &local) {
		pthread_cond_destroy(&local.cond);
		pthread_mutex_destroy(&local.lock);
	}
	free(mf);
	return rc;
}
