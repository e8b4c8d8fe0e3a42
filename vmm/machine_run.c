/* Running a built machine: threads, signals, stop/pause, reset. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "vcpu/vcpu.h"
#include "vmm/cluster.h"
#include "vmm/control_socket.h"
#include "vmm/machine.h"
#include "vmm/machine_parts.h"
#include "vmm/vtimer.h"

void machine__block_signals(void)
{
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	sigaddset(&set, SIGUSR1);
	pthread_sigmask(SIG_BLOCK, &set, NULL);
	signal(SIGPIPE, SIG_IGN);
}

static void request_stop(struct machine *m, int status, const char *cause,
			 const char *fmt, va_list ap)
	__attribute__((format(printf, 4, 0)));

/* A failed node must end even when one of its threads cannot: a thread
 * that touched guest memory homed on a node that is gone waits in the
 * kernel for a page no one will send (userfaultfd), and the orderly stop
 * would wait for that thread forever.  The watchdog owns copies only (the
 * machine may be freed meanwhile) and dies with the process when the
 * orderly stop finishes first. */
struct stop_watchdog {
	char line[STOP_REASON_MAX + 128];
	int status;
	unsigned grace_s;
};

static void *stop_watchdog_thread(void *arg)
{
	struct stop_watchdog *w = arg;
	struct timespec t = { (time_t)w->grace_s, 0 };

	while (nanosleep(&t, &t) < 0 && errno == EINTR)
		;
	if (write(STDERR_FILENO, w->line, strlen(w->line)) < 0) {
		/* nowhere left to report it */
	}
	_exit(w->status);
}

static void arm_stop_watchdog(const struct machine *m, int status)
{
	struct stop_watchdog *w = malloc(sizeof(*w));
	char node[24] = "";
	pthread_attr_t attr;
	pthread_t t;

	if (!m->stop_grace_s || !w) {
		free(w);
		return;
	}
	w->status = status;
	w->grace_s = m->stop_grace_s;
	if (m->cluster && m->node_self)
		snprintf(node, sizeof(node), "node %u: ", m->node_self);
	snprintf(w->line, sizeof(w->line), "krg-vmm: %snot stopped %u s after "
		 "the failure (%s): a thread is stuck, exiting\n", node,
		 m->stop_grace_s, m->stop_reason);
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	if (pthread_create(&t, &attr, stop_watchdog_thread, w) != 0)
		free(w);
	pthread_attr_destroy(&attr);
}

static void request_stop(struct machine *m, int status, const char *cause,
			 const char *fmt, va_list ap)
{
	pthread_mutex_lock(&m->life_lock);
	if (!atomic_load(&m->stop)) {
		m->exit_status = status;
		m->stop_cause = cause;
		vsnprintf(m->stop_reason, sizeof(m->stop_reason), fmt, ap);
		atomic_store(&m->stop, true);
		pthread_cond_broadcast(&m->life_cond);
		if (status != KRG_EXIT_OK)
			arm_stop_watchdog(m, status);
	}
	pthread_mutex_unlock(&m->life_lock);
}

void machine__request_stop(struct machine *m, int status, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	request_stop(m, status, NULL, fmt, ap);
	va_end(ap);
}

void machine__request_stop_cause(struct machine *m, int status,
				 const char *cause, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	request_stop(m, status, cause, fmt, ap);
	va_end(ap);
}

void machine__request_reset(struct machine *m, const char *cause,
			    const char *what)
{
	if (m->cfg->on_reset == VM_RESET_EXIT) {
		machine__request_stop_cause(m, KRG_EXIT_OK, cause,
					    "%s (exiting as asked)", what);
		return;
	}
	/* Only a reset that ends the run reboots: if a signal (or anything
	 * else) stopped the VM first, it stays stopped. */
	pthread_mutex_lock(&m->life_lock);
	if (!atomic_load(&m->stop)) {
		m->reset_requested = true;
		m->exit_status = KRG_EXIT_OK;
		m->stop_cause = cause;
		snprintf(m->stop_reason, sizeof(m->stop_reason), "%s", what);
		atomic_store(&m->stop, true);
		pthread_cond_broadcast(&m->life_cond);
	}
	pthread_mutex_unlock(&m->life_lock);
}

void machine__park_vcpu(struct machine *m)
{
	bool ack;

	pthread_mutex_lock(&m->life_lock);
	m->nr_parked++;
	ack = m->pause_ack && m->nr_parked >= m->nr_local_vcpus;
	if (ack)
		m->pause_ack = false;
	pthread_cond_broadcast(&m->life_cond);
	if (ack) {
		/* Not under the lock: a send may wait for socket space. */
		pthread_mutex_unlock(&m->life_lock);
		cluster__pause_ack(m->cluster);
		pthread_mutex_lock(&m->life_lock);
	}
	while (atomic_load(&m->pause) && !atomic_load(&m->stop))
		pthread_cond_wait(&m->life_cond, &m->life_lock);
	m->nr_parked--;
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
}

static void kick_all(struct machine *m)
{
	unsigned i;

	for (i = 0; i < m->nr_vcpus; i++)
		if (m->vcpus[i])
			vcpu__kick(m->vcpus[i]);
}

void machine__pause(struct machine *m)
{
	atomic_store(&m->pause, true);
	kick_all(m);
	pthread_mutex_lock(&m->life_lock);
	while (m->nr_parked < m->nr_local_vcpus && !atomic_load(&m->stop))
		pthread_cond_wait(&m->life_cond, &m->life_lock);
	pthread_mutex_unlock(&m->life_lock);
}

void machine__resume(struct machine *m)
{
	pthread_mutex_lock(&m->life_lock);
	atomic_store(&m->pause, false);
	m->pause_ack = false;
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
}

void machine__pause_nowait(struct machine *m, bool ack)
{
	bool now;

	pthread_mutex_lock(&m->life_lock);
	atomic_store(&m->pause, true);
	now = ack && m->nr_parked >= m->nr_local_vcpus;
	m->pause_ack = ack && !now;
	pthread_mutex_unlock(&m->life_lock);
	kick_all(m);
	if (now && m->cluster)
		cluster__pause_ack(m->cluster);
}

/* Devices' requests (poweroff, reset, debug-exit, Ctrl-A x). */
static void control_request(void *ctx, enum machine_request req, int status)
{
	struct machine *m = ctx;

	switch (req) {
	case MACHINE_REQ_POWEROFF:
		machine__request_stop_cause(m, KRG_EXIT_OK, "guest-shutdown",
					    "guest powered off");
		break;
	case MACHINE_REQ_RESET:
		machine__request_reset(m, "guest-reset", "guest reset");
		break;
	case MACHINE_REQ_DEBUG_EXIT:
		machine__request_stop_cause(m, status, "guest-shutdown",
					    "guest wrote to the debug-exit "
					    "port (status %d)", status);
		break;
	case MACHINE_REQ_QUIT:
		machine__request_stop_cause(m, KRG_EXIT_OK, "host-ui",
					    "quit (Ctrl-A x)");
		break;
	}
}

void machine__init_control(struct machine *m)
{
	m->control.request = control_request;
	m->control.ctx = m;
}

static void wait_until(struct machine *m, uint64_t deadline_ns)
{
	struct timespec ts;

	pthread_mutex_lock(&m->life_lock);
	while (!atomic_load(&m->stop)) {
		if (!deadline_ns) {
			pthread_cond_wait(&m->life_cond, &m->life_lock);
			continue;
		}
		if (vclock__now_ns() >= deadline_ns)
			break;
		ts.tv_sec = (time_t)(deadline_ns / 1000000000ull);
		ts.tv_nsec = (long)(deadline_ns % 1000000000ull);
		pthread_cond_timedwait(&m->life_cond, &m->life_lock, &ts);
	}
	pthread_mutex_unlock(&m->life_lock);
}

/* SIGINT/SIGTERM/SIGHUP/SIGQUIT are blocked in every thread (main blocks them
 * before any thread exists); the run loop polls for them here. */
static void *signal_thread(void *arg)
{
	struct machine *m = arg;
	struct timespec tick = { 0, 100 * 1000 * 1000 };
	sigset_t set;
	int sig;

	sigemptyset(&set);
	sigaddset(&set, SIGINT);
	sigaddset(&set, SIGTERM);
	sigaddset(&set, SIGHUP);
	sigaddset(&set, SIGQUIT);
	while (!atomic_load(&m->stop)) {
		sig = sigtimedwait(&set, NULL, &tick);
		if (sig == SIGQUIT) {
			/* Where is each vCPU?  (kill -QUIT) */
			for (unsigned i = 0; i < m->nr_vcpus; i++)
				if (m->vcpus[i])
					vcpu__request_dump(m->vcpus[i]);
		} else if (sig > 0) {
			/* A signal wins over a reset already under way: the
			 * user asked krg-vmm to end, not to reboot. */
			pthread_mutex_lock(&m->life_lock);
			if (m->reset_requested) {
				m->reset_requested = false;
				m->stop_cause = "host-signal";
				snprintf(m->stop_reason, sizeof(m->stop_reason),
					 "terminated by signal %d (%s) during a "
					 "guest reset", sig, strsignal(sig));
			}
			pthread_mutex_unlock(&m->life_lock);
			machine__request_stop_cause(m, KRG_EXIT_OK,
						    "host-signal",
						    "terminated by signal %d "
						    "(%s)", sig,
						    strsignal(sig));
		}
	}
	return NULL;
}

int machine__run(struct machine *m)
{
	const struct vm_config *cfg = m->cfg;
	pthread_t sigthr;
	unsigned i;
	char err[256];

	m->start_ns = vclock__now_ns();
	/* Before the vCPUs start: a VM paused over QMP stays paused across
	 * a reset. */
	control_socket__attach(m->status_socket, m);
	machine__start_devices(m);
	for (i = 0; i < m->nr_vcpus; i++) {
		if (m->vcpus[i] && vcpu__start(m->vcpus[i]) < 0) {
			machine__request_stop(m, KRG_EXIT_FAILURE,
					      "cannot start vCPU %u thread", i);
			break;
		}
	}
	pthread_create(&sigthr, NULL, signal_thread, m);
	if (cfg->pause_after_ms && cfg->state_out[0]) {
		wait_until(m, vclock__now_ns() + cfg->pause_after_ms * 1000000ull);
		if (!atomic_load(&m->stop)) {
			machine__pause(m);
			if (atomic_load(&m->stop))
				;
			else if (machine__save_file(m, cfg->state_out, err,
						    sizeof(err)) < 0)
				machine__request_stop(m, KRG_EXIT_FAILURE,
						      "saving state: %s", err);
			else
				machine__request_stop(
					m, KRG_EXIT_OK,
					"state saved to %s after %llu ms",
					cfg->state_out,
					(unsigned long long)cfg->pause_after_ms);
		}
	}
	wait_until(m, 0);
	machine__resume(m);
	if (cfg->print_stats && m->node_self == 0) {
		static char text[NET_MAX_NODES * 2048 + 4096];

		control_socket__status_text(m, text, sizeof(text));
		fprintf(stderr, "krg-vmm: stats at exit:\n%s", text);
	}
	/* The socket outlives the machine (a reset builds a new one): it
	 * tells its clients why this one ended and lets go of it. */
	control_socket__detach(m->status_socket, m);
	if (m->cluster) {
		/* Every node stops; a vCPU blocked on a page or an I/O
		 * reply from a node that is gone must be let go. */
		cluster__broadcast_stop(m->cluster, m->exit_status,
					m->stop_reason);
		machine__quiesce(m);
		kick_all(m);
	}
	for (i = 0; i < m->nr_vcpus; i++)
		if (m->vcpus[i])
			vcpu__join(m->vcpus[i]);
	pthread_join(sigthr, NULL);
	machine__stop_devices(m);
	machine__log(m, "%s", m->stop_reason);
	return m->exit_status;
}
