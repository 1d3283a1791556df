/*
 * dog as a child process. Both of its output pipes are drained with poll()
 * so that a chatty dog never blocks on a full pipe, and the deadline is the
 * poll timeout: when it passes the child is killed and reaped, so a hung
 * cluster cannot keep a cron run (and its lock) forever.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "dogexec.h"

char *dogexec_locate(const char *configured)
{
	char self[PATH_MAX], *slash;
	ssize_t n;

	if (configured)
		return xstrdup(configured);
	n = readlink("/proc/self/exe", self, sizeof(self) - 1);
	if (n > 0) {
		self[n] = '\0';
		slash = strrchr(self, '/');
		if (slash &&
		    (size_t)(slash - self) + sizeof("/dog") <= sizeof(self)) {
			strcpy(slash, "/dog");
			if (!access(self, X_OK))
				return xstrdup(self);
		}
	}
	return xstrdup("dog");
}

static int64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void child(const struct dogexec *d, const char *const *argv,
		  bool cluster, int out, int err)
{
	const char *args[64];
	char port[16];
	size_t n = 0;
	int null = open("/dev/null", O_RDONLY);

	args[n++] = d->path;
	for (; *argv && n < ARRAY_SIZE(args) - 6; argv++)
		args[n++] = *argv;
	if (cluster) {
		snprintf(port, sizeof(port), "%u", d->port);
		args[n++] = "-a";
		args[n++] = d->address;
		args[n++] = "-p";
		args[n++] = port;
	}
	args[n] = NULL;
	/* A dog left behind by a killed run would write on unsupervised. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (null < 0 || dup2(null, 0) < 0 || dup2(out, 1) < 0 ||
	    dup2(err, 2) < 0)
		_exit(127);
	execvp(d->path, (char *const *)args);
	dprintf(2, "cannot run %s: %s\n", d->path, strerror(errno));
	_exit(127);
}

static void print_command(const struct dogexec *d, const char *const *argv,
			  bool cluster)
{
	printf("+ %s", d->path);
	for (; *argv; argv++)
		printf(" %s", *argv);
	if (cluster)
		printf(" -a %s -p %u", d->address, d->port);
	putchar('\n');
	fflush(stdout);
}

int dogexec_run(const struct dogexec *d, const char *const *argv, bool cluster,
		struct strbuf *out, struct strbuf *err)
{
	struct strbuf *sink[2] = {out, err};
	struct pollfd fds[2];
	int po[2], pe[2], status, open_fds = 2;
	int64_t deadline = d->timeout ? now_ms() + d->timeout * 1000LL : 0;
	bool timed_out = false;
	pid_t pid;

	if (d->verbose)
		print_command(d, argv, cluster);
	if (pipe2(po, O_CLOEXEC) < 0) {
		strbuf_addf(err, "pipe: %s", strerror(errno));
		return -1;
	}
	if (pipe2(pe, O_CLOEXEC) < 0) {
		strbuf_addf(err, "pipe: %s", strerror(errno));
		close(po[0]);
		close(po[1]);
		return -1;
	}
	pid = fork();
	if (pid < 0) {
		strbuf_addf(err, "fork: %s", strerror(errno));
		close(po[0]), close(po[1]), close(pe[0]), close(pe[1]);
		return -1;
	}
	if (pid == 0)
		child(d, argv, cluster, po[1], pe[1]);
	close(po[1]);
	close(pe[1]);
	fds[0] = (struct pollfd){.fd = po[0], .events = POLLIN};
	fds[1] = (struct pollfd){.fd = pe[0], .events = POLLIN};

	while (open_fds) {
		int wait_ms = -1, n;

		if (deadline && !timed_out) {
			int64_t left = deadline - now_ms();

			if (left <= 0) {
				kill(pid, SIGKILL);
				timed_out = true;
			} else {
				wait_ms = left > INT_MAX ? INT_MAX : (int)left;
			}
		}
		n = poll(fds, 2, wait_ms);
		if (n < 0 && errno != EINTR) {
			kill(pid, SIGKILL);
			strbuf_addf(err, "poll: %s", strerror(errno));
			break;
		}
		for (int i = 0; i < 2 && n > 0; i++) {
			char buf[8192];
			ssize_t got;

			if (fds[i].fd < 0 || !fds[i].revents)
				continue;
			got = read(fds[i].fd, buf, sizeof(buf));
			if (got < 0 && errno == EINTR)
				continue;
			if (got <= 0) {
				close(fds[i].fd);
				fds[i].fd = -1;
				open_fds--;
			} else if (sink[i]) {
				strbuf_add(sink[i], buf, got);
			}
		}
	}
	for (int i = 0; i < 2; i++)
		if (fds[i].fd >= 0)
			close(fds[i].fd);
	while (waitpid(pid, &status, 0) < 0) {
		if (errno != EINTR) {
			strbuf_addf(err, "waitpid: %s", strerror(errno));
			return -1;
		}
	}
	if (timed_out) {
		strbuf_addf(err, "dog %s %s did not finish within %u s; killed",
			    argv[0], argv[1] ? argv[1] : "", d->timeout);
		return -1;
	}
	if (WIFSIGNALED(status)) {
		strbuf_addf(err, "dog %s %s was killed by signal %d", argv[0],
			    argv[1] ? argv[1] : "", WTERMSIG(status));
		return -1;
	}
	return WEXITSTATUS(status);
}
