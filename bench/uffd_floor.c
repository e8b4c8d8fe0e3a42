/* The local half of a DSM page fault's floor: a fault on guest-like memory
 * (a memfd, shmem, mapped shared and registered with userfaultfd for
 * MISSING and WP, as dsm/ registers guest RAM) resolved by another thread
 * that polls the descriptor - the DSM's fault thread - with UFFDIO_COPY of
 * a page (as a remote page is installed).
 *
 *   uffd_floor fault N [any|same|cross]
 *       N read faults, each on a page never touched, timed in the faulting
 *       thread; then N write-protect faults (the pages installed
 *       read-only, each then written; resolved by UFFDIO_WRITEPROTECT);
 *       then the same reads again on mapped pages.  any: threads where
 *       the scheduler puts them (as krg-vmm's), same/cross: both pinned on
 *       CPU 0 / on CPUs 0 and 1.
 *   uffd_floor tsc
 *       the host TSC rate (rdtsc against CLOCK_MONOTONIC over 400 ms): a
 *       KVM guest's TSC runs at this rate when the VMM sets no other
 *
 * Output: "KRG-BENCH <name> <value> <unit>" lines. */
#include <errno.h>
#include <fcntl.h>
#include <linux/userfaultfd.h>
#include <poll.h>
#include <pthread.h>
#include <sched.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>
#include <x86intrin.h>

#define PAGE_SIZE	4096ul
#define MAX_PAGES	65536
#define FEATURES	(UFFD_FEATURE_MISSING_SHMEM | UFFD_FEATURE_WP_HUGETLBFS_SHMEM)

struct floor {
	int uffd;
	char *mem;
	unsigned long npages;
	volatile int wp_install;		/* install read-only (UFFDIO_COPY_MODE_WP) */
	int cpu;		/* handler's CPU, -1: any */
	volatile int stop;
	char src[PAGE_SIZE] __attribute__((aligned(4096)));
};

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "uffd_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void pin(int cpu)
{
	cpu_set_t set;

	if (cpu < 0)
		return;
	CPU_ZERO(&set);
	CPU_SET(cpu, &set);
	if (sched_setaffinity(0, sizeof(set), &set) < 0)
		die("sched_setaffinity");
}

/* The DSM fault thread's shape: poll, read the event, resolve it. */
static void *handler(void *arg)
{
	struct floor *f = arg;
	struct pollfd pfd = { .fd = f->uffd, .events = POLLIN };

	pin(f->cpu);
	while (!f->stop) {
		struct uffd_msg m;

		if (poll(&pfd, 1, 100) <= 0)
			continue;
		if (read(f->uffd, &m, sizeof(m)) != sizeof(m)) {
			if (errno == EAGAIN)
				continue;
			die("read uffd");
		}
		if (m.event != UFFD_EVENT_PAGEFAULT)
			continue;
		uint64_t a = m.arg.pagefault.address & ~(PAGE_SIZE - 1);

		if (m.arg.pagefault.flags & UFFD_PAGEFAULT_FLAG_WP) {
			struct uffdio_writeprotect w = {
				.range = { .start = a, .len = PAGE_SIZE },
				.mode = 0,
			};

			if (ioctl(f->uffd, UFFDIO_WRITEPROTECT, &w) < 0)
				die("UFFDIO_WRITEPROTECT");
			continue;
		}
		struct uffdio_copy c = {
			.dst = a, .src = (uint64_t)f->src, .len = PAGE_SIZE,
			.mode = f->wp_install ? UFFDIO_COPY_MODE_WP : 0,
		};

		if (ioctl(f->uffd, UFFDIO_COPY, &c) < 0 && errno != EEXIST)
			die("UFFDIO_COPY");
	}
	return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, uint64_t *lat, unsigned long n)
{
	uint64_t sum = 0;

	for (unsigned long i = 0; i < n; i++)
		sum += lat[i];
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("KRG-BENCH %s-p50 %llu ns\n", name, (unsigned long long)lat[n / 2]);
	printf("KRG-BENCH %s-p99 %llu ns\n", name,
	       (unsigned long long)lat[n * 99 / 100]);
	printf("KRG-BENCH %s-mean %llu ns\n", name, (unsigned long long)(sum / n));
}

static void setup(struct floor *f)
{
	struct uffdio_api api = { .api = UFFD_API, .features = FEATURES };
	int mfd = memfd_create("uffd-floor", MFD_CLOEXEC);
	size_t len = f->npages * PAGE_SIZE;

	if (mfd < 0 || ftruncate(mfd, (off_t)len) < 0)
		die("memfd");
	f->mem = mmap(NULL, len, PROT_READ | PROT_WRITE, MAP_SHARED, mfd, 0);
	if (f->mem == MAP_FAILED)
		die("mmap");
	f->uffd = (int)syscall(SYS_userfaultfd, O_CLOEXEC | O_NONBLOCK);
	if (f->uffd < 0)
		die("userfaultfd");
	if (ioctl(f->uffd, UFFDIO_API, &api) < 0)
		die("UFFDIO_API (needs MISSING_SHMEM and WP_HUGETLBFS_SHMEM)");
	struct uffdio_register r = {
		.range = { .start = (uint64_t)f->mem, .len = len },
		.mode = UFFDIO_REGISTER_MODE_MISSING | UFFDIO_REGISTER_MODE_WP,
	};

	if (ioctl(f->uffd, UFFDIO_REGISTER, &r) < 0)
		die("UFFDIO_REGISTER");
	memset(f->src, 0x5a, sizeof(f->src));
}

static void run_faults(unsigned long n, int fault_cpu, int handler_cpu)
{
	static struct floor f;
	uint64_t *lat = calloc(n, sizeof(*lat));
	pthread_t th;
	volatile char *p;

	if (!lat)
		die("calloc");
	f.npages = 2 * n;
	f.cpu = handler_cpu;
	setup(&f);
	pin(fault_cpu);
	if (pthread_create(&th, NULL, handler, &f))
		die("pthread_create");
	usleep(10000);
	/* Read faults on the first n pages, installed writable. */
	for (unsigned long i = 0; i < n; i++) {
		p = f.mem + i * PAGE_SIZE;
		uint64_t t0 = now_ns();

		(void)*p;
		lat[i] = now_ns() - t0;
		if (*p != 0x5a)
			die("page content");
	}
	report("uffd-read-fault", lat, n);
	/* A mapped page, for scale (the clock reads are most of it). */
	for (unsigned long i = 0; i < n; i++) {
		p = f.mem + i * PAGE_SIZE;
		uint64_t t0 = now_ns();

		(void)*p;
		lat[i] = now_ns() - t0;
	}
	report("mapped-read", lat, n);
	/* The other n pages installed read-only by a read, then written:
	 * the write-protect fault an S->M upgrade costs its requester. */
	f.wp_install = 1;
	for (unsigned long i = n; i < 2 * n; i++)
		(void)*(volatile char *)(f.mem + i * PAGE_SIZE);
	for (unsigned long i = 0; i < n; i++) {
		p = f.mem + (n + i) * PAGE_SIZE;
		uint64_t t0 = now_ns();

		*p = 1;
		lat[i] = now_ns() - t0;
	}
	report("uffd-wp-fault", lat, n);
	f.stop = 1;
	pthread_join(th, NULL);
	free(lat);
}

static void run_tsc(void)
{
	uint64_t t0 = now_ns(), c0 = __rdtsc(), t1, c1;

	usleep(400000);
	t1 = now_ns();
	c1 = __rdtsc();
	printf("KRG-BENCH host-tsc-khz %.0f kHz\n",
	       (double)(c1 - c0) * 1e6 / (double)(t1 - t0));
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "tsc")) {
		run_tsc();
		return 0;
	}
	if ((argc != 3 && argc != 4) || strcmp(argv[1], "fault")) {
		fprintf(stderr, "usage: uffd_floor fault N [any|same|cross] | uffd_floor tsc\n");
		return 2;
	}
	long n = strtol(argv[2], NULL, 10);
	const char *where = argc == 4 ? argv[3] : "any";

	if (n < 1 || n > MAX_PAGES / 2) {
		fprintf(stderr, "uffd_floor: N must be 1..%d\n", MAX_PAGES / 2);
		return 2;
	}
	if (!strcmp(where, "any"))
		run_faults((unsigned long)n, -1, -1);
	else if (!strcmp(where, "same"))
		run_faults((unsigned long)n, 0, 0);
	else if (!strcmp(where, "cross"))
		run_faults((unsigned long)n, 0, 1);
	else {
		fprintf(stderr, "uffd_floor: placement is any, same or cross\n");
		return 2;
	}
	return 0;
}
