/* krg-checkpoint on the control socket: runs the checkpoint (vmm/ckpt.h)
 * on the control thread, as QEMU's monitor runs savevm, and keeps the
 * socket's idea of "paused" right. */
#include <stdio.h>
#include <string.h>

#include "vmm/ckpt.h"
#include "vmm/control_priv.h"
#include "vmm/machine.h"

int ckpt__qmp_checkpoint(void *ctx, const char *dir, bool stop,
			 struct qmp_checkpoint *out, struct qmp_error *err)
{
	struct control_socket *cs = ctx;
	struct machine *m = cs->m;
	struct ckpt_result res;
	char e[QMP_DESC_MAX - 32];
	int rc;

	if (!m || atomic_load(&m->stop))
		return qmp__fail(err, QMP_ERR_GENERIC, "the VM is not running "
				 "(starting, restarting or shutting down)");
	/* A VM paused by `stop` stays paused. */
	rc = ckpt__checkpoint(m, dir, stop || cs->paused, &res, e, sizeof(e));
	if (stop && !cs->paused) {
		cs->paused = true;
		control_socket__event(cs, "STOP", NULL);
	}
	if (rc < 0)
		return qmp__fail(err, QMP_ERR_GENERIC, "checkpoint: %s", e);
	machine__log(m, "checkpoint %s: %llu pages, %llu MiB in %llu ms "
		     "(barrier %llu ms)", dir, (unsigned long long)res.pages,
		     (unsigned long long)(res.bytes >> 20),
		     (unsigned long long)res.ms,
		     (unsigned long long)res.pause_ms);
	*out = (struct qmp_checkpoint){ res.pages, res.bytes, res.ms,
					res.pause_ms };
	return 0;
}
