/*
 * Small helpers used everywhere: checked allocation, a growable string
 * buffer, size parsing and printing as dog does it, and time formatting.
 */
#ifndef SHEEPDOG_UTIL_H
#define SHEEPDOG_UTIL_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#define ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))
#define MIN(a, b) ((a) < (b) ? (a) : (b))
#define MAX(a, b) ((a) > (b) ? (a) : (b))
#define DIV_ROUND_UP(n, d) (((n) + (d)-1) / (d))

/* Abort with a message on allocation failure. */
void *xmalloc(size_t size);
void *xzalloc(size_t size);
void *xcalloc(size_t nmemb, size_t size);
void *xrealloc(void *ptr, size_t size);
char *xstrdup(const char *s);

struct strbuf {
	char *buf; /* always NUL-terminated once used */
	size_t len;
	size_t alloc;
};

#define STRBUF_INIT { NULL, 0, 0 }

void strbuf_addf(struct strbuf *sb, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));
void strbuf_vaddf(struct strbuf *sb, const char *fmt, va_list ap);
void strbuf_add(struct strbuf *sb, const void *data, size_t len);
void strbuf_addstr(struct strbuf *sb, const char *s);
void strbuf_reset(struct strbuf *sb);
void strbuf_release(struct strbuf *sb);
/* Hand the buffer to the caller (never NULL) and reset sb. */
char *strbuf_detach(struct strbuf *sb);

/*
 * dog's "strnumber" (spec 11.1): bytes printed as "%.1f MB" below 10 or
 * "%.0f MB" otherwise, stepping MB, GB, TB, PB, EB, ZB, YB. With raw, a
 * plain decimal byte count. Returns buf.
 */
char *size_to_str(uint64_t size, char *buf, size_t len, bool raw);

/*
 * Parse "1.5G", "10M", "4096", "2k": float with one optional suffix of
 * B K M G T P (either case), powers of 1024. Returns 0 or -EINVAL.
 */
int parse_size(const char *s, uint64_t *out);

/* Strict integer parsers: whole string, range-checked. 0 or -EINVAL. */
int parse_u64(const char *s, int base, uint64_t *out);
int parse_u32(const char *s, int base, uint32_t *out);

/* pwrite(2) until done, retrying on EINTR. 0 or -errno. */
int pwrite_full(int fd, const void *buf, size_t len, off_t off);
/* Sort ascending and drop duplicates; *nr is updated. */
void sort_unique_u64(uint64_t *v, size_t *nr);

/* Atomic file replace: write tmp, fsync, rename, fsync dir. 0 or -errno. */
int atomic_write_file(const char *path, const void *buf, size_t len);
/* fsync the directory rel (relative to dir_fd, or AT_FDCWD), so that the
 * entries created or renamed in it are durable. 0 or -errno. */
int sd_fsync_dir_at(int dir_fd, const char *rel);
/* CLOCK_MONOTONIC in milliseconds: for timeouts and intervals. */
uint64_t mono_ms(void);
/* Read a whole small file into buf (at most len bytes). bytes read or -errno. */
ssize_t read_file(const char *path, void *buf, size_t len);

#endif
