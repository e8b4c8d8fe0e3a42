/* Shadow page tables dropped when the DSM takes pages away (see the
 * header for why and for the order of things).  The lever is a one-page
 * memory slot that nothing uses, moved between two guest-physical
 * addresses far above anything the guest sees: x86 KVM answers a slot
 * move by invalidating all of the VM's shadow pages at once
 * (kvm_arch_flush_shadow_memslot). */
#include "vmm/shadow_flush.h"

#include <cpuid.h>
#include <errno.h>
#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>

#include "vcpu/vcpu.h"
#include "vmm/machine.h"

/* Above the RAM regions (0, 1), the BIOS ROM (8) and anything else the
 * machine maps; below KVM_CAP_NR_MEMSLOTS (509 and up on x86). */
#define SHADOW_FLUSH_SLOT 30
#define SHADOW_FLUSH_STEP (2ull << 20)
/* A vCPU at the closed gate looks at the machine's stop this often. */
#define SHADOW_FLUSH_POLL_NS (50 * 1000 * 1000)

struct shadow_flush {
	struct machine *m;
	void *page;
	uint64_t gpa[2];
	unsigned at;			/* gpa[at] holds the slot (helper) */
	pthread_t helper;
	bool helper_started;
	pthread_mutex_t lock;
	pthread_cond_t work_cond;	/* helper: wanted moved, or quit */
	pthread_cond_t gate_cond;	/* vCPUs: the gate opened */
	/* The gate is closed while done != wanted: requests count up
	 * wanted, the helper sets done to the wanted it flushed for. */
	atomic_uint_fast64_t wanted, done;
	bool quit;
};

static bool param_says_off(const char *root, const char *module,
			   const char *param)
{
	char path[256], v[8] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/module/%s/parameters/%s", root,
		 module, param);
	f = fopen(path, "r");
	if (!f)
		return false;
	if (!fgets(v, sizeof(v), f))
		v[0] = 0;
	fclose(f);
	return v[0] == 'N' || v[0] == 'n' || v[0] == '0';
}

bool shadow_flush__host_needs(const char *sys_root, char *why, size_t len)
{
	const char *root = sys_root ? sys_root : "/sys";
	char path[256];
	struct stat st;

	snprintf(path, sizeof(path), "%s/module/kvm_pvm", root);
	if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
		snprintf(why, len, "PVM (kvm_pvm)");
		return true;
	}
	if (param_says_off(root, "kvm_intel", "ept")) {
		snprintf(why, len, "kvm_intel ept=N");
		return true;
	}
	if (param_says_off(root, "kvm_amd", "npt")) {
		snprintf(why, len, "kvm_amd npt=0");
		return true;
	}
	snprintf(why, len, "EPT/NPT");
	return false;
}

static unsigned host_phys_bits(void)
{
	unsigned a, b, c, d;

	if (__get_cpuid(0x80000008, &a, &b, &c, &d) && (a & 0xff) >= 36)
		return a & 0xff;
	return 36;
}

static int set_slot(struct shadow_flush *sf, uint64_t gpa)
{
	struct kvm_userspace_memory_region r = {
		.slot = SHADOW_FLUSH_SLOT,
		.guest_phys_addr = gpa,
		.memory_size = 4096,
		.userspace_addr = (uint64_t)(uintptr_t)sf->page,
	};

	return ioctl(sf->m->vm_fd, KVM_SET_USER_MEMORY_REGION, &r);
}

static bool gate_closed(struct shadow_flush *sf)
{
	return atomic_load(&sf->wanted) != atomic_load(&sf->done);
}

/* Under lock: what was requested up to `upto` is flushed (or given up). */
static void open_gate(struct shadow_flush *sf, uint64_t upto)
{
	atomic_store(&sf->done, upto);
	if (!gate_closed(sf))
		pthread_cond_broadcast(&sf->gate_cond);
}

static void *helper_main(void *arg)
{
	struct shadow_flush *sf = arg;

	pthread_setname_np(pthread_self(), "krg-shadowflush");
	pthread_mutex_lock(&sf->lock);
	for (;;) {
		uint64_t g;
		int rc, e;

		while (!sf->quit && !gate_closed(sf))
			pthread_cond_wait(&sf->work_cond, &sf->lock);
		if (sf->quit)
			break;
		g = atomic_load(&sf->wanted);
		pthread_mutex_unlock(&sf->lock);
		/* Waits until every vCPU has left KVM: the kicked ones at
		 * their next guest entry, one waiting for a page once the DSM
		 * granted it. */
		rc = set_slot(sf, sf->gpa[sf->at ^ 1]);
		e = errno;
		pthread_mutex_lock(&sf->lock);
		if (rc < 0) {
			pthread_mutex_unlock(&sf->lock);
			machine__request_stop(sf->m, KRG_EXIT_FAILURE,
					      "memory coherence: dropping KVM's "
					      "shadow page tables (moving slot "
					      "%u): %s", SHADOW_FLUSH_SLOT,
					      strerror(e));
			pthread_mutex_lock(&sf->lock);
			sf->quit = true;
			open_gate(sf, atomic_load(&sf->wanted));
			break;
		}
		sf->at ^= 1;
		open_gate(sf, g);
	}
	pthread_mutex_unlock(&sf->lock);
	return NULL;
}

struct shadow_flush *shadow_flush__new(struct machine *m, char *err,
				       size_t errlen)
{
	struct shadow_flush *sf = calloc(1, sizeof(*sf));
	unsigned bits = host_phys_bits();

	if (!sf) {
		snprintf(err, errlen, "out of memory");
		return NULL;
	}
	sf->m = m;
	pthread_mutex_init(&sf->lock, NULL);
	pthread_cond_init(&sf->work_cond, NULL);
	pthread_cond_init(&sf->gate_cond, NULL);
	sf->page = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
			MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
	if (sf->page == MAP_FAILED) {
		sf->page = NULL;
		snprintf(err, errlen, "shadow page tables: mmap: %s",
			 strerror(errno));
		goto fail;
	}
	/* Half the host's physical address space: above any guest RAM or
	 * PCI window krg-vmm lays out, below KVM's largest gfn. */
	sf->gpa[0] = 1ull << (bits - 1);
	sf->gpa[1] = sf->gpa[0] + SHADOW_FLUSH_STEP;
	if (set_slot(sf, sf->gpa[0]) < 0) {
		snprintf(err, errlen, "shadow page tables: memory slot %u at "
			 "0x%llx: %s", SHADOW_FLUSH_SLOT,
			 (unsigned long long)sf->gpa[0], strerror(errno));
		goto fail;
	}
	if (pthread_create(&sf->helper, NULL, helper_main, sf)) {
		snprintf(err, errlen, "shadow page tables: no thread");
		goto fail;
	}
	sf->helper_started = true;
	return sf;
fail:
	shadow_flush__free(sf);
	return NULL;
}

void shadow_flush__free(struct shadow_flush *sf)
{
	if (!sf)
		return;
	if (sf->helper_started) {
		pthread_mutex_lock(&sf->lock);
		sf->quit = true;
		pthread_cond_broadcast(&sf->work_cond);
		pthread_mutex_unlock(&sf->lock);
		pthread_join(sf->helper, NULL);
	}
	if (sf->page)
		munmap(sf->page, 4096);
	pthread_cond_destroy(&sf->gate_cond);
	pthread_cond_destroy(&sf->work_cond);
	pthread_mutex_destroy(&sf->lock);
	free(sf);
}

void shadow_flush__request(struct shadow_flush *sf)
{
	struct machine *m = sf->m;

	pthread_mutex_lock(&sf->lock);
	if (!sf->quit) {
		atomic_fetch_add(&sf->wanted, 1);
		pthread_cond_signal(&sf->work_cond);
	}
	pthread_mutex_unlock(&sf->lock);
	/* After wanted moved: a vCPU either sees the closed gate after it
	 * announced in_guest, or the kick sees in_guest and signals it
	 * (vcpu__kick's pairing), and KVM enters no guest with the signal
	 * pending. */
	for (unsigned i = 0; i < m->nr_vcpus; i++)
		if (m->vcpus[i])
			vcpu__kick(m->vcpus[i]);
}

bool shadow_flush__gate_closed(struct shadow_flush *sf)
{
	return gate_closed(sf);
}

void shadow_flush__wait(struct shadow_flush *sf)
{
	pthread_mutex_lock(&sf->lock);
	while (gate_closed(sf) && !atomic_load(&sf->m->stop)) {
		struct timespec t;

		clock_gettime(CLOCK_REALTIME, &t);
		t.tv_nsec += SHADOW_FLUSH_POLL_NS;
		if (t.tv_nsec >= 1000000000) {
			t.tv_sec++;
			t.tv_nsec -= 1000000000;
		}
		pthread_cond_timedwait(&sf->gate_cond, &sf->lock, &t);
	}
	pthread_mutex_unlock(&sf->lock);
}
