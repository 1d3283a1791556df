/*
 * Small helpers shared by sheep, dog and the tests: allocation that aborts
 * instead of returning NULL, dog's size printing and parsing rules (spec
 * 11.1), strict integer parsing, and whole-file reads and atomic replaces
 * for the store's small metadata files.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <time.h>
#include <unistd.h>

#include "sheepdog/util.h"

static void __attribute__((noreturn)) oom(size_t size)
{
	fprintf(stderr, "out of memory allocating %zu bytes\n", size);
	abort();
}

void *xmalloc(size_t size)
{
	void *p = malloc(size ? size : 1);

	if (!p)
		oom(size);
	return p;
}

void *xzalloc(size_t size)
{
	return xcalloc(1, size);
}

void *xcalloc(size_t nmemb, size_t size)
{
	void *p = calloc(nmemb ? nmemb : 1, size ? size : 1);

	if (!p)
		oom(nmemb * size);
	return p;
}

void *xrealloc(void *ptr, size_t size)
{
	void *p = realloc(ptr, size ? size : 1);

	if (!p)
		oom(size);
	return p;
}

char *xstrdup(const char *s)
{
	char *p = strdup(s);

	if (!p)
		oom(strlen(s) + 1);
	return p;
}

char *size_to_str(uint64_t size, char *buf, size_t len, bool raw)
{
	static const char *const units[] = {"MB", "GB", "TB", "PB",
					    "EB", "ZB", "YB"};
	double n = (double)size / (1024 * 1024);
	size_t u = 0;

	if (raw) {
		snprintf(buf, len, "%" PRIu64, size);
		return buf;
	}
	while (n >= 1024 && u < ARRAY_SIZE(units) - 1) {
		n /= 1024;
		u++;
	}
	snprintf(buf, len, "%.*f %s", n < 10 ? 1 : 0, n, units[u]);
	return buf;
}

int parse_size(const char *s, uint64_t *out)
{
	static const char suffixes[] = "BKMGTP";
	const char *p = s, *sfx;
	double mult = 1, v;
	char *end;
	bool digits = false;

	/* the number: digits with at most one '.', no sign or exponent */
	while (isdigit((unsigned char)*p)) {
		p++;
		digits = true;
	}
	if (*p == '.') {
		p++;
		while (isdigit((unsigned char)*p)) {
			p++;
			digits = true;
		}
	}
	if (!digits)
		return -EINVAL;
	if (*p) {
		sfx = strchr(suffixes, toupper((unsigned char)*p));
		if (!sfx || p[1])
			return -EINVAL;
		for (int i = 0; i < sfx - suffixes; i++)
			mult *= 1024;
	}

	errno = 0;
	v = strtod(s, &end);
	if (errno || end != p)
		return -EINVAL;
	v *= mult;
	if (!(v < 18446744073709551616.0))
		return -EINVAL;
	*out = (uint64_t)v;
	return 0;
}

int parse_u64(const char *s, int base, uint64_t *out)
{
	unsigned long long v;
	char *end;

	if (!s || !*s || isspace((unsigned char)*s) || *s == '-' || *s == '+')
		return -EINVAL;
	errno = 0;
	v = strtoull(s, &end, base);
	if (errno || *end)
		return -EINVAL;
	*out = v;
	return 0;
}

int parse_u32(const char *s, int base, uint32_t *out)
{
	uint64_t v;

	if (parse_u64(s, base, &v) || v > UINT32_MAX)
		return -EINVAL;
	*out = (uint32_t)v;
	return 0;
}

int pwrite_full(int fd, const void *buf, size_t len, off_t off)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = pwrite(fd, p, len, off);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
		off += n;
	}
	return 0;
}

static int cmp_u64(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

void sort_unique_u64(uint64_t *v, size_t *nr)
{
	size_t j = 0;

	if (!*nr)
		return;
	qsort(v, *nr, sizeof(*v), cmp_u64);
	for (size_t i = 0; i < *nr; i++)
		if (j == 0 || v[j - 1] != v[i])
			v[j++] = v[i];
	*nr = j;
}

int sd_fsync_dir_at(int dir_fd, const char *rel)
{
	int fd = openat(dir_fd, rel, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	int ret = 0;

	if (fd < 0)
		return -errno;
	if (fsync(fd) < 0)
		ret = -errno;
	close(fd);
	return ret;
}

static int fsync_parent_dir(const char *path)
{
	char *copy = xstrdup(path);
	int ret = sd_fsync_dir_at(AT_FDCWD, dirname(copy));

	free(copy);
	return ret;
}

int atomic_write_file(const char *path, const void *buf, size_t len)
{
	size_t tlen = strlen(path) + sizeof(".tmp");
	char *tmp = xmalloc(tlen);
	int fd, ret;

	snprintf(tmp, tlen, "%s.tmp", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
	if (fd < 0) {
		ret = -errno;
		goto out;
	}
	ret = pwrite_full(fd, buf, len, 0);
	if (!ret && fsync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && rename(tmp, path) < 0)
		ret = -errno;
	if (ret) {
		unlink(tmp);
		goto out;
	}
	ret = fsync_parent_dir(path);
out:
	free(tmp);
	return ret;
}

ssize_t read_file(const char *path, void *buf, size_t len)
{
	uint8_t *p = buf;
	size_t done = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = read(fd, p + done, len - done);

		if (n < 0) {
			int err = errno;

			if (err == EINTR)
				continue;
			close(fd);
			return -err;
		}
		if (n == 0)
			break;
		done += n;
	}
	close(fd);
	return done;
}

uint64_t mono_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}
