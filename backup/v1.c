/*
 * Upstream's v1 backup stream (spec 10), read and written for
 * compatibility with backups taken by upstream dog. The format has no
 * checksums and no object size of its own, so the reader can only check
 * the header, the 512-byte alignment and that each record lies inside an
 * object of the size the caller knows from the snapshot it restores onto.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "sheepdog/layout.h"
#include "sheepdog/le.h"
#include "sheepdog/util.h"
#include "io.h"

#define V1_BUF_SIZE (256 * 1024)

struct sd_backup_v1_writer {
	int fd;
	uint64_t obj_size;
	uint8_t *buf;
	size_t len;
	bool broken;
	bool finished;
	struct bk_error err;
};

struct sd_backup_v1_reader {
	struct bk_src src;
	uint64_t obj_size;
	uint8_t *payload;
	size_t payload_cap;
	uint64_t nr_records;
	bool done;
	struct bk_error err;
};

static bool v1_obj_size_ok(uint64_t obj_size)
{
	return obj_size && obj_size % SD_BACKUP_SECTOR == 0 &&
	       obj_size <= UINT64_C(1) << SD_MAX_BLOCK_SIZE_SHIFT;
}

/* NULL when the record may be written or restored, else why not. */
static const char *v1_record_check(uint64_t obj_size, uint32_t idx,
				   uint32_t offset, uint32_t length)
{
	if (idx >= SD_MAX_DATA_OBJS)
		return "object index beyond what an inode addresses";
	if (offset % SD_BACKUP_SECTOR || length % SD_BACKUP_SECTOR)
		return "offset or length is not a multiple of 512";
	if ((uint64_t)offset + length > obj_size)
		return "range beyond the object";
	return NULL;
}

static void v1_record_encode(uint8_t *p, uint32_t idx, uint32_t offset,
			     uint32_t length)
{
	put_le32(p, idx);
	put_le32(p + 4, offset);
	put_le32(p + 8, length);
	put_le32(p + 12, 0);
}

/* ---- writer ---- */

static enum sd_backup_err v1w_flush(struct sd_backup_v1_writer *w)
{
	return bk_flush(w->fd, w->buf, &w->len, &w->broken, &w->err);
}

/* Small pieces are gathered; a large payload goes straight to fd. */
static enum sd_backup_err v1w_put(struct sd_backup_v1_writer *w,
				  const void *data, size_t len)
{
	int ret;

	if (w->len + len > V1_BUF_SIZE && v1w_flush(w))
		return w->err.code;
	if (len <= V1_BUF_SIZE) {
		memcpy(w->buf + w->len, data, len);
		w->len += len;
		return SD_BACKUP_OK;
	}
	ret = bk_write_full(w->fd, data, len);
	if (ret < 0) {
		w->broken = true;
		return bk_fail(&w->err, SD_BACKUP_ERR_IO, "write: %s",
			       strerror(-ret));
	}
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_v1_writer_open(int fd, uint64_t obj_size,
					    struct sd_backup_v1_writer **out,
					    char *errmsg, size_t errmsg_len)
{
	struct sd_backup_v1_writer *w;
	struct bk_error e;

	*out = NULL;
	if (!v1_obj_size_ok(obj_size)) {
		bk_fail(&e, SD_BACKUP_ERR_INVAL,
			"object size %llu is not a multiple of 512 up to 2^31",
			(unsigned long long)obj_size);
		bk_copy_errmsg(&e, errmsg, errmsg_len);
		return SD_BACKUP_ERR_INVAL;
	}
	w = calloc(1, sizeof(*w));
	if (w)
		w->buf = malloc(V1_BUF_SIZE);
	if (!w || !w->buf) {
		free(w);
		return SD_BACKUP_ERR_NOMEM;
	}
	w->fd = fd;
	w->obj_size = obj_size;
	put_le32(w->buf, SD_BACKUP_V1_VERSION);
	put_le32(w->buf + 4, SD_BACKUP_V1_MAGIC);
	w->len = SD_BACKUP_V1_HEADER_SIZE;
	*out = w;
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_v1_write(struct sd_backup_v1_writer *w,
				      uint32_t idx, uint32_t offset,
				      uint32_t length, const void *data)
{
	uint8_t h[SD_BACKUP_V1_RECORD_HDR_SIZE];
	const char *why;

	if (w->broken)
		return w->err.code;
	if (w->finished)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "stream already finished");
	why = v1_record_check(w->obj_size, idx, offset, length);
	if (!why && length && !data)
		why = "no data";
	if (why)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "record (object %u, offset %u, length %u): %s",
			       idx, offset, length, why);
	v1_record_encode(h, idx, offset, length);
	if (v1w_put(w, h, sizeof(h)) || (length && v1w_put(w, data, length)))
		return w->err.code;
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_v1_writer_finish(struct sd_backup_v1_writer *w)
{
	uint8_t h[SD_BACKUP_V1_RECORD_HDR_SIZE];

	if (w->broken)
		return w->err.code;
	if (w->finished)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "stream already finished");
	w->finished = true;
	v1_record_encode(h, SD_BACKUP_V1_END_IDX, 0, 0);
	if (v1w_put(w, h, sizeof(h)))
		return w->err.code;
	return v1w_flush(w);
}

const char *sd_backup_v1_writer_errmsg(const struct sd_backup_v1_writer *w)
{
	return bk_errmsg(&w->err);
}

void sd_backup_v1_writer_free(struct sd_backup_v1_writer *w)
{
	if (!w)
		return;
	free(w->buf);
	free(w);
}

/* ---- reader ---- */

/* Exactly len bytes, or TRUNCATED naming what was being read. */
static enum sd_backup_err v1r_read(struct sd_backup_v1_reader *r, void *dst,
				   size_t len, const char *what)
{
	ssize_t n = bk_src_read(&r->src, dst, len);

	if (n < 0)
		return bk_fail(&r->err, SD_BACKUP_ERR_IO, "read: %s",
			       strerror(-n));
	if ((size_t)n < len)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRUNCATED,
			       "input ends inside %s", what);
	return SD_BACKUP_OK;
}

static enum sd_backup_err v1r_header(struct sd_backup_v1_reader *r)
{
	uint8_t h[SD_BACKUP_V1_HEADER_SIZE];
	uint32_t version;

	if (v1r_read(r, h, sizeof(h), "the header"))
		return r->err.code;
	if (get_le32(h + 4) != SD_BACKUP_V1_MAGIC)
		return bk_fail(&r->err, SD_BACKUP_ERR_NOT_BACKUP,
			       "no v1 magic 0x%08x", SD_BACKUP_V1_MAGIC);
	version = get_le32(h);
	if (version != SD_BACKUP_V1_VERSION)
		return bk_fail(&r->err, SD_BACKUP_ERR_VERSION,
			       "v1 stream with version %u", version);
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_v1_reader_open(int fd, const void *prefix,
					    size_t prefix_len,
					    uint64_t obj_size,
					    struct sd_backup_v1_reader **out,
					    char *errmsg, size_t errmsg_len)
{
	struct sd_backup_v1_reader *r;
	enum sd_backup_err err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return SD_BACKUP_ERR_NOMEM;
	r->obj_size = obj_size;
	if (!v1_obj_size_ok(obj_size))
		err = bk_fail(&r->err, SD_BACKUP_ERR_INVAL,
			      "object size %llu is not a multiple of 512 up "
			      "to 2^31",
			      (unsigned long long)obj_size);
	else if (bk_src_init(&r->src, fd, prefix, prefix_len))
		err = bk_fail(&r->err, SD_BACKUP_ERR_NOMEM, NULL);
	else
		err = v1r_header(r);
	if (err) {
		bk_copy_errmsg(&r->err, errmsg, errmsg_len);
		sd_backup_v1_reader_free(r);
		return err;
	}
	*out = r;
	return SD_BACKUP_OK;
}

/* Reads length bytes of data, growing the buffer only as they come. */
static enum sd_backup_err v1r_payload(struct sd_backup_v1_reader *r,
				      uint32_t length)
{
	size_t have = 0, want;

	while (have < length) {
		want = MIN(length, have ? 2 * have : 65536);
		if (bk_grow(&r->payload, &r->payload_cap, want))
			return bk_fail(&r->err, SD_BACKUP_ERR_NOMEM, NULL);
		if (v1r_read(r, r->payload + have, want - have, "record data"))
			return r->err.code;
		have = want;
	}
	return SD_BACKUP_OK;
}

/*
 * The reserved word is not checked: upstream writes 0 there and never
 * reads it, so refusing other values would only refuse its streams.
 */
enum sd_backup_err sd_backup_v1_reader_next(struct sd_backup_v1_reader *r,
					    struct sd_backup_record *rec)
{
	uint8_t h[SD_BACKUP_V1_RECORD_HDR_SIZE];
	uint32_t idx, offset, length;
	const char *why;

	memset(rec, 0, sizeof(*rec));
	rec->type = SD_BACKUP_REC_END;
	if (r->err.code)
		return r->err.code;
	if (r->done)
		return SD_BACKUP_OK;
	if (v1r_read(r, h, sizeof(h), "a record header"))
		return r->err.code;
	idx = get_le32(h);
	offset = get_le32(h + 4);
	length = get_le32(h + 8);
	if (idx == SD_BACKUP_V1_END_IDX)
		why = offset || length ? "end marker with a range" : NULL;
	else
		why = v1_record_check(r->obj_size, idx, offset, length);
	if (why)
		return bk_fail(&r->err, SD_BACKUP_ERR_RECORD,
			       "record %llu (object %u, offset %u, length %u): "
			       "%s",
			       (unsigned long long)r->nr_records + 1, idx,
			       offset, length, why);
	if (idx == SD_BACKUP_V1_END_IDX) {
		r->done = true;
		return SD_BACKUP_OK;
	}
	if (v1r_payload(r, length))
		return r->err.code;
	r->nr_records++;
	*rec = (struct sd_backup_record){SD_BACKUP_REC_DATA, idx, offset,
					 length, r->payload};
	return SD_BACKUP_OK;
}

const char *sd_backup_v1_reader_errmsg(const struct sd_backup_v1_reader *r)
{
	return bk_errmsg(&r->err);
}

void sd_backup_v1_reader_free(struct sd_backup_v1_reader *r)
{
	if (!r)
		return;
	bk_src_release(&r->src);
	free(r->payload);
	free(r);
}
