/*
 * Helpers shared by the stream readers and writers, private to backup/: a
 * byte source that replays the bytes a caller already read for detection
 * before reading fd, full writes that survive EINTR and short writes, and
 * the error record that keeps a code with its detailed text.
 */
#ifndef SD_BACKUP_IO_H
#define SD_BACKUP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

#include "sheepdog/backup.h"

struct bk_error {
	enum sd_backup_err code;
	char msg[256];
};

/* Records err with "<strerror(err)>: <detail>" and returns err. */
enum sd_backup_err bk_fail(struct bk_error *e, enum sd_backup_err err,
			   const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
const char *bk_errmsg(const struct bk_error *e);
void bk_copy_errmsg(const struct bk_error *e, char *buf, size_t len);

struct bk_src {
	int fd;
	uint8_t *pre; /* replayed before fd */
	size_t pre_len;
	size_t pre_off;
};

int bk_src_init(struct bk_src *s, int fd, const void *prefix, size_t len);
void bk_src_release(struct bk_src *s);
/* Up to len bytes, fewer only at end of input: the count, or -errno. */
ssize_t bk_src_read(struct bk_src *s, void *buf, size_t len);

/* 0, or -errno. */
int bk_write_full(int fd, const void *buf, size_t len);
/* A writer's flush: writes the *len bytes of buf and empties it; a failure
 * is recorded in e and marks the writer *broken for good. */
enum sd_backup_err bk_flush(int fd, const void *buf, size_t *len,
			    bool *broken, struct bk_error *e);

/*
 * Grows *buf to hold at least need bytes, doubling from what is there, so
 * that a reader never allocates much more than it has actually received.
 */
int bk_grow(uint8_t **buf, size_t *cap, size_t need);

#endif
