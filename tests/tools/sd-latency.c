/*
 * sd-latency: the floor under a replicated 4 KiB write, measured on this
 * machine for bench/nbd.sh. One sample is what the shortest durable write
 * path has to do: two loopback TCP round trips carrying a 4 KiB payload
 * (client to gateway, gateway to the replicas, which work in parallel) and
 * one 4 KiB pwrite + fdatasync on the file system the store lives on, over
 * blocks that already exist (the file is written and synced first).
 *
 * usage: sd-latency DIR [COUNT]
 * Prints "rtt2_us", "fdatasync_us" and "floor_us" (their sum per sample)
 * as p50, mean and p99 over COUNT samples (default 2000).
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define PAYLOAD 4096
#define HDR 48
#define FILE_SIZE (64 << 20)

static double now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1e6 + ts.tv_nsec / 1e3;
}

static int full_io(int fd, void *buf, size_t len, int writing)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = writing ? write(fd, (char *)buf + done, len - done)
				    : read(fd, (char *)buf + done, len - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		done += n;
	}
	return 0;
}

/* The far end: answers every request (header + payload) with a header. */
static void *echo_main(void *arg)
{
	int fd = *(int *)arg;
	char buf[HDR + PAYLOAD];

	while (full_io(fd, buf, sizeof(buf), 0) == 0)
		if (full_io(fd, buf, HDR, 1) < 0)
			break;
	close(fd);
	return NULL;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static void report(const char *name, double *v, int n)
{
	double sum = 0;

	for (int i = 0; i < n; i++)
		sum += v[i];
	qsort(v, n, sizeof(*v), cmp_double);
	printf("%s p50 %.1f mean %.1f p99 %.1f\n", name, v[n / 2], sum / n,
	       v[(int)(n * 0.99)]);
}

int main(int argc, char **argv)
{
	struct sockaddr_in sa = {.sin_family = AF_INET};
	socklen_t salen = sizeof(sa);
	int n = argc > 2 ? atoi(argv[2]) : 2000, one = 1, lfd, cfd, sfd, fd;
	double *rtt, *sync, *floor_us;
	char path[4096], buf[HDR + PAYLOAD];
	pthread_t th;

	if (argc < 2 || n < 10) {
		fprintf(stderr, "usage: %s DIR [COUNT >= 10]\n", argv[0]);
		return 64;
	}
	snprintf(path, sizeof(path), "%s/sd-latency.XXXXXX", argv[1]);
	fd = mkstemp(path);
	if (fd < 0) {
		perror(path);
		return 1;
	}
	unlink(path);
	/* Written and synced first: the samples overwrite blocks that exist,
	 * as writes into a VDI's allocated objects do. */
	memset(buf, 0xa5, sizeof(buf));
	for (off_t off = 0; off < FILE_SIZE; off += PAYLOAD)
		if (pwrite(fd, buf, PAYLOAD, off) != PAYLOAD) {
			perror("fill");
			return 1;
		}
	if (fsync(fd) < 0) {
		perror("fsync");
		return 1;
	}

	sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
	lfd = socket(AF_INET, SOCK_STREAM, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    listen(lfd, 1) < 0 ||
	    getsockname(lfd, (struct sockaddr *)&sa, &salen) < 0) {
		perror("listen");
		return 1;
	}
	cfd = socket(AF_INET, SOCK_STREAM, 0);
	if (cfd < 0 || connect(cfd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		perror("connect");
		return 1;
	}
	sfd = accept(lfd, NULL, NULL);
	setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	setsockopt(sfd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	pthread_create(&th, NULL, echo_main, &sfd);

	rtt = calloc(n, sizeof(*rtt));
	sync = calloc(n, sizeof(*sync));
	floor_us = calloc(n, sizeof(*floor_us));
	memset(buf, 0x5a, sizeof(buf));
	srandom(1);
	for (int i = -n / 10; i < n; i++) { /* a tenth to warm up */
		off_t off = (off_t)(random() % (FILE_SIZE / PAYLOAD)) * PAYLOAD;
		double t0 = now_us(), t1, t2;

		for (int k = 0; k < 2; k++)
			if (full_io(cfd, buf, sizeof(buf), 1) < 0 ||
			    full_io(cfd, buf, HDR, 0) < 0) {
				perror("round trip");
				return 1;
			}
		t1 = now_us();
		if (pwrite(fd, buf, PAYLOAD, off) != PAYLOAD ||
		    fdatasync(fd) < 0) {
			perror("write");
			return 1;
		}
		t2 = now_us();
		if (i < 0)
			continue;
		rtt[i] = t1 - t0;
		sync[i] = t2 - t1;
		floor_us[i] = t2 - t0;
	}
	report("rtt2_us", rtt, n);
	report("fdatasync_us", sync, n);
	report("floor_us", floor_us, n);
	shutdown(cfd, SHUT_RDWR);
	close(cfd);
	pthread_join(th, NULL);
	return 0;
}
