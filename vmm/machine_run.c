/* Running a built machine: threads, signals, stop/pause, reset. */
#include <errno.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

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

void machine__request_stop(struct machine *m, int status, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&m->life_lock);
	if (!atomic_load(&m->stop)) {
		m->exit_status = status;
		va_start(ap, fmt);
		vsnprintf(m->stop_reason, sizeof(m->stop_reason), fmt, ap);
		va_end(ap);
		atomic_store(&m->stop, true);
		pthread_cond_broadcast(&m->life_cond);
	}
	pthread_mutex_unlock(&m->life_lock);
}

void machine__park_vcpu(struct machine *m)
{
	pthread_mutex_lock(&m->life_lock);
	m->nr_parked++;
	pthread_cond_broadcast(&m->life_cond);
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
	pthread_cond_broadcast(&m->life_cond);
	pthread_mutex_unlock(&m->life_lock);
}

/* Devices' requests (poweroff, reset, debug-exit, Ctrl-A x). */
static void control_request(void *ctx, enum machine_request req, int status)
{
	struct machine *m = ctx;

	switch (req) {
	case MACHINE_REQ_POWEROFF:
		machine__request_stop(m, KRG_EXIT_OK, "guest powered off");
		break;
	case MACHINE_REQ_RESET:
		if (m->cfg->on_reset == VM_RESET_EXIT) {
			machine__request_stop(m, KRG_EXIT_OK,
					      "guest reset (exiting as asked)");
		} else {
			/* Only a reset that ends the run reboots: if a signal
			 * (or anything else) stopped the VM first, it stays
			 * stopped. */
			pthread_mutex_lock(&m->life_lock);
			if (!atomic_load(&m->stop)) {
				m->reset_requested = true;
				m->exit_status = KRG_EXIT_OK;
				snprintf(m->stop_reason, sizeof(m->stop_reason),
					 "guest reset");
				atomic_store(&m->stop, true);
				pthread_cond_broadcast(&m->life_cond);
			}
			pthread_mutex_unlock(&m->life_lock);
		}
		break;
	case MACHINE_REQ_DEBUG_EXIT:
		machine__request_stop(m, status,
				      "guest wrote to the debug-exit port "
				      "(status %d)", status);
		break;
	case MACHINE_REQ_QUIT:
		machine__request_stop(m, KRG_EXIT_OK, "quit (Ctrl-A x)");
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
				snprintf(m->stop_reason, sizeof(m->stop_reason),
					 "terminated by signal %d (%s) during a "
					 "guest reset", sig, strsignal(sig));
			}
			pthread_mutex_unlock(&m->life_lock);
			machine__request_stop(m, KRG_EXIT_OK,
					      "terminated by signal %d (%s)",
					      sig, strsignal(sig));
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
	if (m->node_self == 0) {
		m->status_socket = control_socket__start(m, err, sizeof(err));
		if (!m->status_socket)
			machine__log(m, "no status socket: %s", err);
	}
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
	control_socket__stop(m->status_socket);
	m->status_socket = NULL;
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
