/*
 * Byte plumbing for the backup streams: telling the formats apart from
 * their first bytes, replaying those bytes to the reader, full reads and
 * writes on a descriptor, and error text.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sheepdog/le.h"
#include "io.h"

static const char *const bk_err_text[] = {
    [SD_BACKUP_OK] = "success",
    [SD_BACKUP_ERR_NOT_BACKUP] = "not a backup stream",
    [SD_BACKUP_ERR_VERSION] = "unsupported backup stream version",
    [SD_BACKUP_ERR_TRUNCATED] = "backup stream is truncated",
    [SD_BACKUP_ERR_HEADER] = "backup stream header is corrupted",
    [SD_BACKUP_ERR_RECORD] = "backup stream record is corrupted",
    [SD_BACKUP_ERR_TRAILER] = "backup stream trailer is wrong",
    [SD_BACKUP_ERR_CHECKSUM] =
	"backup stream checksum mismatch: the stream is damaged",
    [SD_BACKUP_ERR_COMPRESSION] = "backup stream compressed data is corrupted",
    [SD_BACKUP_ERR_IO] = "backup stream I/O error",
    [SD_BACKUP_ERR_NOMEM] = "out of memory",
    [SD_BACKUP_ERR_INVAL] = "invalid argument",
};

const char *sd_backup_strerror(enum sd_backup_err err)
{
	if ((unsigned)err >= sizeof(bk_err_text) / sizeof(bk_err_text[0]))
		return "unknown backup error";
	return bk_err_text[err];
}

enum sd_backup_err bk_fail(struct bk_error *e, enum sd_backup_err err,
			   const char *fmt, ...)
{
	int n;
	va_list ap;

	e->code = err;
	n = snprintf(e->msg, sizeof(e->msg), "%s", sd_backup_strerror(err));
	if (fmt && n >= 0 && (size_t)n + 2 < sizeof(e->msg)) {
		memcpy(e->msg + n, ": ", 3);
		va_start(ap, fmt);
		vsnprintf(e->msg + n + 2, sizeof(e->msg) - n - 2, fmt, ap);
		va_end(ap);
	}
	return err;
}

const char *bk_errmsg(const struct bk_error *e)
{
	return e->code == SD_BACKUP_OK ? "success" : e->msg;
}

void bk_copy_errmsg(const struct bk_error *e, char *buf, size_t len)
{
	if (buf && len)
		snprintf(buf, len, "%s", bk_errmsg(e));
}

int bk_src_init(struct bk_src *s, int fd, const void *prefix, size_t len)
{
	s->fd = fd;
	s->pre = NULL;
	s->pre_len = 0;
	s->pre_off = 0;
	if (!len)
		return 0;
	s->pre = malloc(len);
	if (!s->pre)
		return -ENOMEM;
	memcpy(s->pre, prefix, len);
	s->pre_len = len;
	return 0;
}

void bk_src_release(struct bk_src *s)
{
	free(s->pre);
	s->pre = NULL;
}

ssize_t bk_src_read(struct bk_src *s, void *buf, size_t len)
{
	size_t got = 0;
	ssize_t n;

	if (s->pre_off < s->pre_len) {
		got = s->pre_len - s->pre_off;
		if (got > len)
			got = len;
		memcpy(buf, s->pre + s->pre_off, got);
		s->pre_off += got;
	}
	while (got < len) {
		n = read(s->fd, (uint8_t *)buf + got, len - got);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n == 0)
			break;
		got += n;
	}
	return got;
}

int bk_write_full(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;
	ssize_t n;

	while (len) {
		n = write(fd, p, len);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		p += n;
		len -= n;
	}
	return 0;
}

enum sd_backup_err bk_flush(int fd, const void *buf, size_t *len,
			    bool *broken, struct bk_error *e)
{
	int ret = bk_write_full(fd, buf, *len);

	if (ret < 0) {
		*broken = true;
		return bk_fail(e, SD_BACKUP_ERR_IO, "write: %s",
			       strerror(-ret));
	}
	*len = 0;
	return SD_BACKUP_OK;
}

int bk_grow(uint8_t **buf, size_t *cap, size_t need)
{
	size_t ncap = *cap ? *cap : 65536;
	uint8_t *p;

	if (need <= *cap)
		return 0;
	while (ncap < need)
		ncap *= 2;
	p = realloc(*buf, ncap);
	if (!p)
		return -ENOMEM;
	*buf = p;
	*cap = ncap;
	return 0;
}

enum sd_backup_format sd_backup_detect(const void *buf, size_t len)
{
	const uint8_t *p = buf;

	if (len >= 4 && get_le32(p) == SD_BACKUP_ZSTD_MAGIC)
		return SD_BACKUP_FORMAT_NATIVE;
	if (len >= 8 && get_le32(p + 4) == SD_BACKUP_V1_MAGIC)
		return SD_BACKUP_FORMAT_V1;
	return SD_BACKUP_FORMAT_UNKNOWN;
}
