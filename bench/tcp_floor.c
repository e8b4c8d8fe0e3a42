/* The network floor of a DSM page fault, measured on the path the cluster
 * uses: two processes on loopback joined by one TCP connection with
 * TCP_NODELAY, blocking sockets (the transport's receive threads block
 * too).
 *
 *   tcp_floor rtt N        N round trips of a 64-byte request answered
 *                          by a 4 KiB reply (a read request and its page)
 *   tcp_floor stream SECS  4 KiB messages sent back to back on one
 *                          connection for SECS seconds, counted by the
 *                          receiver
 *
 * Output: "KRG-BENCH <name> <value> <unit>" lines, as the test guest's.
 * Not a test: nothing here fails on a slow number. */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define REQ_SIZE	64
#define PAGE_SIZE	4096
#define WARMUP		200
#define MAX_RTT		1000000

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static void die(const char *what)
{
	fprintf(stderr, "tcp_floor: %s: %s\n", what, strerror(errno));
	exit(1);
}

static void set_nodelay(int fd)
{
	int one = 1;

	if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one)) < 0)
		die("TCP_NODELAY");
}

/* Whole-buffer I/O: a short read or write only means "not yet". */
static int read_full(int fd, void *buf, size_t len)
{
	char *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

static int write_full(int fd, const void *buf, size_t len)
{
	const char *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* A listening socket on 127.0.0.1, any port; returns it, port in *port. */
static int listen_any(uint16_t *port)
{
	struct sockaddr_in a = { .sin_family = AF_INET };
	socklen_t alen = sizeof(a);
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (bind(fd, (struct sockaddr *)&a, sizeof(a)) < 0 || listen(fd, 1) < 0 ||
	    getsockname(fd, (struct sockaddr *)&a, &alen) < 0)
		die("bind/listen");
	*port = ntohs(a.sin_port);
	return fd;
}

static int connect_to(uint16_t port)
{
	struct sockaddr_in a = { .sin_family = AF_INET, .sin_port = htons(port) };
	int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

	if (fd < 0)
		die("socket");
	a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	if (connect(fd, (struct sockaddr *)&a, sizeof(a)) < 0)
		die("connect");
	set_nodelay(fd);
	return fd;
}

/* The other process: accepts one connection and serves it until EOF,
 * answering each request (rtt) or swallowing a stream and reporting how
 * much it got (stream). */
static void serve(int lfd, int stream)
{
	static char buf[PAGE_SIZE];
	int fd = accept(lfd, NULL, NULL);

	if (fd < 0)
		die("accept");
	set_nodelay(fd);
	if (!stream) {
		memset(buf, 0x5a, sizeof(buf));
		while (!read_full(fd, buf, REQ_SIZE))
			if (write_full(fd, buf, PAGE_SIZE))
				break;
		_exit(0);
	}
	uint64_t bytes = 0, t0 = 0, t1 = 0;

	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (!t0)
			t0 = now_ns();
		bytes += (uint64_t)n;
		t1 = now_ns();
	}
	if (t1 > t0) {
		double s = (double)(t1 - t0) / 1e9;

		printf("KRG-BENCH tcp-stream-4k-msgs-per-s %.0f msgs/s\n",
		       (double)bytes / PAGE_SIZE / s);
		printf("KRG-BENCH tcp-stream-mib-per-s %.1f MiB/s\n",
		       (double)bytes / (1 << 20) / s);
	}
	fflush(stdout);
	_exit(0);
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

static void run_rtt(int fd, unsigned n)
{
	static char req[REQ_SIZE], page[PAGE_SIZE];
	uint64_t *lat = calloc(n, sizeof(*lat)), sum = 0, t_all;

	if (!lat)
		die("calloc");
	for (unsigned i = 0; i < WARMUP; i++)
		if (write_full(fd, req, REQ_SIZE) || read_full(fd, page, PAGE_SIZE))
			die("warm-up round trip");
	t_all = now_ns();
	for (unsigned i = 0; i < n; i++) {
		uint64_t t0 = now_ns();

		req[0] = (char)i;
		if (write_full(fd, req, REQ_SIZE) || read_full(fd, page, PAGE_SIZE))
			die("round trip");
		lat[i] = now_ns() - t0;
		sum += lat[i];
	}
	t_all = now_ns() - t_all;
	qsort(lat, n, sizeof(*lat), cmp_u64);
	printf("KRG-BENCH tcp-rtt-p50 %llu ns\n", (unsigned long long)lat[n / 2]);
	printf("KRG-BENCH tcp-rtt-p99 %llu ns\n",
	       (unsigned long long)lat[(uint64_t)n * 99 / 100]);
	printf("KRG-BENCH tcp-rtt-mean %llu ns\n", (unsigned long long)(sum / n));
	/* One request at a time: what a single faulting thread could fetch. */
	printf("KRG-BENCH tcp-serial-fetch-per-s %.0f pages/s\n",
	       (double)n * 1e9 / (double)t_all);
	free(lat);
}

static void run_stream(int fd, double secs)
{
	static char page[PAGE_SIZE];
	uint64_t end = now_ns() + (uint64_t)(secs * 1e9);

	memset(page, 0xa5, sizeof(page));
	while (now_ns() < end)
		for (int i = 0; i < 64; i++)
			if (write_full(fd, page, PAGE_SIZE))
				die("stream write");
}

int main(int argc, char **argv)
{
	int stream, lfd, fd, status;
	uint16_t port;
	pid_t pid;
	long v;

	if (argc != 3 || (strcmp(argv[1], "rtt") && strcmp(argv[1], "stream"))) {
		fprintf(stderr, "usage: tcp_floor rtt N | tcp_floor stream SECONDS\n");
		return 2;
	}
	stream = !strcmp(argv[1], "stream");
	v = strtol(argv[2], NULL, 10);
	if (v < 1 || v > (stream ? 600 : MAX_RTT)) {
		fprintf(stderr, "tcp_floor: bad count %s\n", argv[2]);
		return 2;
	}
	signal(SIGPIPE, SIG_IGN);
	lfd = listen_any(&port);
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		die("fork");
	if (!pid)
		serve(lfd, stream);
	close(lfd);
	fd = connect_to(port);
	if (stream)
		run_stream(fd, (double)v);
	else
		run_rtt(fd, (unsigned)v);
	fflush(stdout);
	close(fd);
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status))
		return 1;
	return 0;
}
