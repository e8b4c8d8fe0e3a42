/* DSM I/O side, the two event sources: guest page faults from userfaultfd
 * (the fault thread) and DSM messages from the transport (its receive
 * threads).  Both run the core and its actions under the node lock. */
#include <errno.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <string.h>
#include <unistd.h>

#include "dsm/dsm_mem.h"
#include "dsm/dsm_mem_priv.h"
#include "vmm/errf.h"

#define DSM_MEM_EVENT_BATCH 16

/* One fault reaches the core.  -EBUSY (too many requests outstanding)
 * parks it: the thread stays blocked and the fault is retried after the
 * next message frees a request slot. */
static void fault_page(struct dsm_mem *dm, uint64_t page, bool write)
{
	int rc = dsm__fault(dm->node, page, write, &dm->acts);

	if (rc == -EBUSY) {
		for (unsigned i = 0; i < dm->nr_w; i++) {
			struct dsm_mem_waiter *w = &dm->w[i];

			if (w->page == page && w->write == write) {
				if (!w->parked)
					dm->nr_parked++;
				w->parked = 1;
				dm->st.parked++;
				return;
			}
		}
		/* Untracked (the waiter table is full of parked faults):
		 * let the thread fault again later rather than sleep. */
		dsm_mem__wake(dm, page);
		return;
	}
	if (rc) {
		dsm_mem__fail(dm, "core refused a fault on page %llu: %s",
			      (unsigned long long)page, strerror(-rc));
		return;
	}
	dsm_mem__exec(dm, &dm->acts);
}

/* Oldest parked fault first, until the core is busy again. */
static void retry_parked(struct dsm_mem *dm)
{
	while (dm->nr_parked && !dm->failed) {
		unsigned i = 0;

		while (i < dm->nr_w && !dm->w[i].parked)
			i++;
		if (i == dm->nr_w) {
			dm->nr_parked = 0;	/* cannot happen; stay sane */
			return;
		}
		uint64_t page = dm->w[i].page;
		bool write = dm->w[i].write;
		int rc = dsm__fault(dm->node, page, write, &dm->acts);

		if (rc == -EBUSY)
			return;
		dm->w[i].parked = 0;
		dm->nr_parked--;
		if (rc) {
			dsm_mem__fail(dm, "core refused a parked fault on page "
				      "%llu: %s", (unsigned long long)page,
				      strerror(-rc));
			return;
		}
		dsm_mem__exec(dm, &dm->acts);
	}
}

static void handle_fault(struct dsm_mem *dm, const struct uffd_msg *msg,
			 uint64_t t0)
{
	uint64_t flags = msg->arg.pagefault.flags;
	uint64_t page = dsm_mem__hva_page(dm, msg->arg.pagefault.address);
	bool write = flags & (UFFD_PAGEFAULT_FLAG_WRITE |
			      UFFD_PAGEFAULT_FLAG_WP);

	dm->st.uffd_events++;
	if (page == DSM_MEM_NO_PAGE) {
		dsm_mem__fail(dm, "fault at 0x%llx outside guest RAM",
			      (unsigned long long)msg->arg.pagefault.address);
		return;
	}
	if (write)
		dm->st.write_faults++;
	else
		dm->st.read_faults++;
	if (flags & UFFD_PAGEFAULT_FLAG_WP)
		dm->st.wp_faults++;
	dsm_mem__waiter_add(dm, page, write, t0);
	fault_page(dm, page, write);
}

void *dsm_mem__fault_thread(void *arg)
{
	struct dsm_mem *dm = arg;
	struct uffd_msg msg[DSM_MEM_EVENT_BATCH];
	struct pollfd pfd[3] = {
		{ .fd = dm->uffd, .events = POLLIN },
		{ .fd = dm->stop_fd, .events = POLLIN },
		{ .fd = dsm_mem__hold_timer_fd(dm), .events = POLLIN },
	};
	nfds_t nfds = pfd[2].fd >= 0 ? 3 : 2;

	for (;;) {
		if (poll(pfd, nfds, -1) < 0) {
			if (errno == EINTR)
				continue;
			pthread_mutex_lock(&dm->lock);
			dsm_mem__fail(dm, "poll on userfaultfd: %s",
				      strerror(errno));
			pthread_mutex_unlock(&dm->lock);
			break;
		}
		if (pfd[1].revents)
			break;
		if (nfds == 3 && pfd[2].revents) {
			pthread_mutex_lock(&dm->lock);
			dsm_mem__hold_on_timer(dm);
			pthread_mutex_unlock(&dm->lock);
			dsm_mem__report(dm);
		}
		if (!pfd[0].revents)
			continue;
		ssize_t n = read(dm->uffd, msg, sizeof(msg));

		if (n < 0) {
			if (errno == EAGAIN || errno == EINTR)
				continue;
			pthread_mutex_lock(&dm->lock);
			dsm_mem__fail(dm, "reading userfaultfd: %s",
				      strerror(errno));
			pthread_mutex_unlock(&dm->lock);
			break;
		}
		uint64_t t0 = dsm_mem__now_ns();

		pthread_mutex_lock(&dm->lock);
		/* After a failure the events are drained but not served:
		 * their threads wait for dsm_mem__stop to unregister. */
		for (size_t i = 0; i < (size_t)n / sizeof(msg[0]) &&
				   !dm->failed; i++)
			if (msg[i].event == UFFD_EVENT_PAGEFAULT)
				handle_fault(dm, &msg[i], t0);
		retry_parked(dm);
		pthread_mutex_unlock(&dm->lock);
		dsm_mem__report(dm);
	}
	dsm_mem__report(dm);
	return NULL;
}

int dsm_mem__deliver(struct dsm_mem *dm, unsigned sender, unsigned type,
		     const void *payload, size_t len)
{
	struct dsm_msg m;
	const void *data;
	char why[DSM_WHY_MAX];
	int rc = dsm_msg__decode(payload, len, sender, &m, &data, why,
				 sizeof(why));

	if (!rc && m.type != type) {
		errf(why, sizeof(why), "dsm: %s arrived as transport type %u",
		     dsm_msg__type_name(m.type), type);
		rc = -EINVAL;
	}
	if (!rc) {
		rc = dsm__receive(dm->node, &m, data, &dm->acts);
		if (rc)
			memcpy(why, dm->acts.why, sizeof(why));
	}
	if (rc) {
		/* The core's reasons start with its own "dsm: " prefix. */
		const char *w = strncmp(why, "dsm: ", 5) ? why : why + 5;

		dm->st.protocol_errors++;
		dsm_mem__fail(dm, "bad message from node %u: %s", sender, w);
		return rc;
	}
	dm->st.msgs_received++;
	dm->st.bytes_received += len;
	dm->st.pages_received += data != NULL;
	dm->delivering = true;
	rc = dsm_mem__exec(dm, &dm->acts);
	dm->delivering = false;
	if (rc)
		return -EIO;
	retry_parked(dm);
	return 0;
}

int dsm_mem__receive(struct dsm_mem *dm, unsigned sender, unsigned type,
		     const void *payload, size_t len)
{
	struct dsm_msg m;
	const void *data;
	char why[DSM_WHY_MAX];
	/* Decoded here only to decide about holding; delivery decodes and
	 * validates again, so a held message is checked like any other. */
	bool decoded = !dsm_msg__decode(payload, len, sender, &m, &data, why,
					sizeof(why)) && m.type == type;
	int rc = 0;

	pthread_mutex_lock(&dm->lock);
	if (dm->stopped || dm->failed) {
		pthread_mutex_unlock(&dm->lock);
		return -ESHUTDOWN;
	}
	if (!decoded ||
	    !dsm_mem__hold_defer(dm, sender, type, &m, payload, len))
		rc = dsm_mem__deliver(dm, sender, type, payload, len);
	pthread_mutex_unlock(&dm->lock);
	dsm_mem__report(dm);
	return rc;
}
