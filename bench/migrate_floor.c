/* The network floor of a vCPU migration's pause, on the path the cluster
 * uses (two processes on loopback, one TCP connection with TCP_NODELAY,
 * blocking sockets): while a vCPU stands still its state goes one way
 * (STATE), a short answer comes back (LOADED) and a short decision goes
 * out again (DECIDE), after which the target resumes it.  This program
 * times exactly those transfers, without any VMM work around them.
 *
 *   migrate_floor N STATE_BYTES
 *
 * Output: "KRG-BENCH <name> <value> <unit>" lines:
 *   migrate-floor-p50/p99   STATE + LOADED round trip + half the next
 *                           64-byte round trip (the DECIDE's one way)
 *   state-rtt-p50           STATE_BYTES out, 64 bytes back
 * Not a test: nothing here fails on a slow number. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define SMALL 64
#define WARMUP 100
#define MAX_STATE (1 << 20)

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "migrate_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static int io_full(int fd, void *buf, size_t len, int wr)
{
	char *p = buf;

	while (len) {
		ssize_t n = wr ? write(fd, p, len) : read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static void nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("TCP_NODELAY");
}

static int cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

/* The target: STATE in, LOADED out, DECIDE in, RESUMED out. */
static void serve(int lfd, size_t state)
{
	char *buf = malloc(state);
	char small[SMALL] = { 0 };
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0 || !buf)
		die("accept");
	nodelay(fd);
	while (!io_full(fd, buf, state, 0) && !io_full(fd, small, SMALL, 1) &&
	       !io_full(fd, small, SMALL, 0) && !io_full(fd, small, SMALL, 1))
		;
	_exit(0);
}

int main(int argc, char **argv)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	unsigned n = argc == 3 ? (unsigned)atoi(argv[1]) : 0;
	size_t state = argc == 3 ? (size_t)atol(argv[2]) : 0;
	uint64_t *floor, *rtt;
	char small[SMALL] = { 0 }, *buf;
	int lfd, fd, status;
	pid_t pid;

	if (!n || !state || state > MAX_STATE) {
		fprintf(stderr, "usage: migrate_floor N STATE_BYTES\n");
		return 2;
	}
	lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&a, sizeof(a)) < 0 ||
	    listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&a, &alen) < 0)
		die("listen");
	pid = fork();
	if (pid < 0)
		die("fork");
	if (pid == 0)
		serve(lfd, state);
	fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	nodelay(fd);
	buf = calloc(1, state);
	floor = calloc(n, sizeof(*floor));
	rtt = calloc(n, sizeof(*rtt));
	if (!buf || !floor || !rtt)
		die("calloc");
	for (unsigned i = 0; i < WARMUP + n; i++) {
		uint64_t t0 = now_ns(), t1, t2;

		if (io_full(fd, buf, state, 1) || io_full(fd, small, SMALL, 0))
			die("STATE/LOADED");
		t1 = now_ns();
		if (io_full(fd, small, SMALL, 1) || io_full(fd, small, SMALL, 0))
			die("DECIDE/RESUMED");
		t2 = now_ns();
		if (i >= WARMUP) {
			rtt[i - WARMUP] = t1 - t0;
			floor[i - WARMUP] = t1 - t0 + (t2 - t1) / 2;
		}
	}
	close(fd);
	waitpid(pid, &status, 0);
	qsort(floor, n, sizeof(*floor), cmp);
	qsort(rtt, n, sizeof(*rtt), cmp);
	printf("KRG-BENCH migrate-floor-p50 %llu ns\n",
	       (unsigned long long)floor[n / 2]);
	printf("KRG-BENCH migrate-floor-p99 %llu ns\n",
	       (unsigned long long)floor[(uint64_t)n * 99 / 100]);
	printf("KRG-BENCH state-rtt-p50 %llu ns\n",
	       (unsigned long long)rtt[n / 2]);
	return 0;
}
