/*
 * Reader of the native backup stream. It trusts nothing: the header is
 * checked before any field is used, each record's fields are checked
 * against the header before its payload is read, and the payload buffer
 * grows only as bytes actually arrive, so a hostile length costs at most
 * twice what the sender really sent. The caller learns that the stream is
 * whole only when the trailer has been checked (SD_BACKUP_REC_END).
 */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "sheepdog/le.h"
#include "sheepdog/util.h"
#include "io.h"
#include "native.h"

struct sd_backup_reader {
	struct bk_src src;
	ZSTD_DCtx *dctx;
	uint8_t *in;
	size_t in_cap;
	ZSTD_inBuffer zin;
	bool eof;	 /* src has nothing more */
	bool frame_open; /* zstd is inside a frame that has not ended */
	XXH64_state_t *stream_sum;
	XXH64_state_t *record_sum;
	struct sd_backup_header hdr;
	uint8_t *payload;
	size_t payload_cap;
	uint64_t nr_records;
	uint64_t payload_bytes;
	bool done;
	struct bk_error err;
};

static enum sd_backup_err r_refill(struct sd_backup_reader *r)
{
	ssize_t n = bk_src_read(&r->src, r->in, r->in_cap);

	if (n < 0)
		return bk_fail(&r->err, SD_BACKUP_ERR_IO, "read: %s",
			       strerror(-n));
	r->zin = (ZSTD_inBuffer){r->in, n, 0};
	r->eof = (size_t)n < r->in_cap;
	return SD_BACKUP_OK;
}

/*
 * Decompresses up to len bytes into dst; *got is short only where the
 * input ends. A new frame may follow a finished one, as zstd allows.
 */
static enum sd_backup_err r_read(struct sd_backup_reader *r, void *dst,
				 size_t len, size_t *got)
{
	ZSTD_outBuffer out = {dst, len, 0};
	size_t ret, before, consumed;

	while (out.pos < len) {
		if (r->zin.pos == r->zin.size && !r->eof && r_refill(r))
			return r->err.code;
		before = out.pos;
		consumed = r->zin.pos;
		ret = ZSTD_decompressStream(r->dctx, &out, &r->zin);
		if (ZSTD_isError(ret))
			return bk_fail(&r->err, SD_BACKUP_ERR_COMPRESSION,
				       "zstd: %s", ZSTD_getErrorName(ret));
		if (out.pos == before && r->zin.pos == consumed) {
			/*
			 * No progress: at the end of input, and zstd's hint
			 * would describe a next frame that never starts.
			 */
			if (r->eof)
				break;
			continue;
		}
		r->frame_open = ret != 0;
	}
	*got = out.pos;
	return SD_BACKUP_OK;
}

/* Exactly len bytes, or TRUNCATED naming what was being read. */
static enum sd_backup_err r_read_full(struct sd_backup_reader *r, void *dst,
				      size_t len, const char *what)
{
	size_t got;

	if (r_read(r, dst, len, &got))
		return r->err.code;
	if (got < len)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRUNCATED,
			       "input ends inside %s", what);
	return SD_BACKUP_OK;
}

/* The raw bytes must start a zstd frame before anything is decompressed. */
static enum sd_backup_err r_check_zstd(struct sd_backup_reader *r)
{
	ssize_t n = bk_src_read(&r->src, r->in, 4);

	if (n < 0)
		return bk_fail(&r->err, SD_BACKUP_ERR_IO, "read: %s",
			       strerror(-n));
	if (n < 4)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRUNCATED,
			       "input ends inside the zstd frame magic");
	if (get_le32(r->in) != SD_BACKUP_ZSTD_MAGIC)
		return bk_fail(&r->err, SD_BACKUP_ERR_NOT_BACKUP,
			       "it does not start with a zstd frame");
	r->zin = (ZSTD_inBuffer){r->in, 4, 0};
	return SD_BACKUP_OK;
}

static enum sd_backup_err r_header(struct sd_backup_reader *r)
{
	uint8_t buf[SD_BACKUP_HEADER_SIZE];
	uint32_t version, len;
	const char *why;

	if (r_check_zstd(r) || r_read_full(r, buf, 16, "the header"))
		return r->err.code;
	if (memcmp(buf, SD_BACKUP_MAGIC, SD_BACKUP_MAGIC_LEN))
		return bk_fail(&r->err, SD_BACKUP_ERR_NOT_BACKUP,
			       "no SDBKUP magic");
	version = get_le32(buf + 8);
	if (version != SD_BACKUP_VERSION)
		return bk_fail(&r->err, SD_BACKUP_ERR_VERSION,
			       "version %u, this reader knows %u", version,
			       SD_BACKUP_VERSION);
	len = get_le32(buf + 12);
	if (len != SD_BACKUP_HEADER_SIZE)
		return bk_fail(&r->err, SD_BACKUP_ERR_HEADER,
			       "header length %u, version 2 has %u", len,
			       SD_BACKUP_HEADER_SIZE);
	if (r_read_full(r, buf + 16, sizeof(buf) - 16, "the header"))
		return r->err.code;
	if (XXH64(buf, sizeof(buf) - 8, 0) != get_le64(buf + sizeof(buf) - 8))
		return bk_fail(&r->err, SD_BACKUP_ERR_HEADER,
			       "checksum mismatch");
	why = native_header_decode(buf, &r->hdr);
	if (!why)
		why = native_header_check(&r->hdr);
	if (why)
		return bk_fail(&r->err, SD_BACKUP_ERR_HEADER, "%s", why);
	XXH64_update(r->stream_sum, buf, sizeof(buf));
	return SD_BACKUP_OK;
}

static enum sd_backup_err r_setup(struct sd_backup_reader *r, int fd,
				  const void *prefix, size_t prefix_len)
{
	if (bk_src_init(&r->src, fd, prefix, prefix_len))
		return bk_fail(&r->err, SD_BACKUP_ERR_NOMEM, NULL);
	r->dctx = ZSTD_createDCtx();
	r->in_cap = ZSTD_DStreamInSize();
	r->in = malloc(r->in_cap);
	r->stream_sum = XXH64_createState();
	r->record_sum = XXH64_createState();
	if (!r->dctx || !r->in || !r->stream_sum || !r->record_sum)
		return bk_fail(&r->err, SD_BACKUP_ERR_NOMEM, NULL);
	/*
	 * zstd's default window limit (2^27) already bounds what a hostile
	 * frame header can make the decoder allocate; it is kept.
	 */
	XXH64_reset(r->stream_sum, 0);
	return SD_BACKUP_OK;
}

static void r_release(struct sd_backup_reader *r)
{
	bk_src_release(&r->src);
	ZSTD_freeDCtx(r->dctx);
	XXH64_freeState(r->stream_sum);
	XXH64_freeState(r->record_sum);
	free(r->in);
	free(r->payload);
	free(r);
}

enum sd_backup_err sd_backup_reader_open(int fd, const void *prefix,
					 size_t prefix_len,
					 struct sd_backup_reader **out,
					 char *errmsg, size_t errmsg_len)
{
	struct sd_backup_reader *r;
	enum sd_backup_err err;

	*out = NULL;
	r = calloc(1, sizeof(*r));
	if (!r)
		return SD_BACKUP_ERR_NOMEM;
	r->src.fd = -1;
	err = r_setup(r, fd, prefix, prefix_len);
	if (!err)
		err = r_header(r);
	if (err) {
		bk_copy_errmsg(&r->err, errmsg, errmsg_len);
		r_release(r);
		return err;
	}
	*out = r;
	return SD_BACKUP_OK;
}

const struct sd_backup_header *
sd_backup_reader_header(const struct sd_backup_reader *r)
{
	return &r->hdr;
}

/* Reads length bytes of payload, growing the buffer only as they come. */
static enum sd_backup_err r_payload(struct sd_backup_reader *r, uint32_t length,
				    uint64_t nr)
{
	size_t have = 0, want, got;

	while (have < length) {
		want = MIN(length, have ? 2 * have : 65536);
		if (bk_grow(&r->payload, &r->payload_cap, want))
			return bk_fail(&r->err, SD_BACKUP_ERR_NOMEM, NULL);
		if (r_read(r, r->payload + have, want - have, &got))
			return r->err.code;
		have += got;
		if (have < want)
			return bk_fail(&r->err, SD_BACKUP_ERR_TRUNCATED,
				       "input ends inside record %llu",
				       (unsigned long long)nr);
	}
	return SD_BACKUP_OK;
}

/* After the trailer, the decompressed data and the zstd frame must end. */
static enum sd_backup_err r_check_end(struct sd_backup_reader *r)
{
	uint8_t extra;
	size_t got;

	if (r_read(r, &extra, 1, &got))
		return r->err.code;
	if (got)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRAILER,
			       "data follows the trailer");
	if (r->frame_open)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRUNCATED,
			       "the zstd frame is not closed");
	return SD_BACKUP_OK;
}

/* t holds the trailer's first 16 bytes, already read as a record header. */
static enum sd_backup_err r_trailer(struct sd_backup_reader *r, uint8_t *t)
{
	uint64_t nr, bytes;

	if (r_read_full(r, t + 16, SD_BACKUP_TRAILER_SIZE - 16, "the trailer"))
		return r->err.code;
	nr = get_le64(t + 4);
	bytes = get_le64(t + 12);
	if (nr != r->nr_records || bytes != r->payload_bytes)
		return bk_fail(&r->err, SD_BACKUP_ERR_TRAILER,
			       "it counts %llu records of %llu payload bytes, "
			       "the stream has %llu of %llu",
			       (unsigned long long)nr,
			       (unsigned long long)bytes,
			       (unsigned long long)r->nr_records,
			       (unsigned long long)r->payload_bytes);
	if (get_le64(t + 20) != XXH64_digest(r->stream_sum))
		return bk_fail(&r->err, SD_BACKUP_ERR_CHECKSUM, NULL);
	return r_check_end(r);
}

static enum sd_backup_err r_record(struct sd_backup_reader *r, uint8_t *h,
				   struct sd_backup_record *rec)
{
	uint64_t nr = r->nr_records + 1;
	uint32_t type = get_le32(h), idx = get_le32(h + 4);
	uint32_t offset = get_le32(h + 8), length = get_le32(h + 12);
	uint8_t sum[SD_BACKUP_RECORD_SUM_SIZE];
	const void *data = NULL;
	const char *why;

	why = native_record_check(&r->hdr, type, idx, offset, length);
	if (why)
		return bk_fail(&r->err, SD_BACKUP_ERR_RECORD,
			       "record %llu (type %u, object %u, offset %u, "
			       "length %u): %s",
			       (unsigned long long)nr, type, idx, offset,
			       length, why);
	if (type == SD_BACKUP_REC_DATA) {
		if (r_payload(r, length, nr))
			return r->err.code;
		data = r->payload;
	}
	if (r_read_full(r, sum, sizeof(sum), "a record checksum"))
		return r->err.code;
	if (get_le64(sum) != native_record_sum(r->record_sum, h, data, length))
		return bk_fail(&r->err, SD_BACKUP_ERR_RECORD,
			       "record %llu (object %u, offset %u, length %u): "
			       "checksum mismatch",
			       (unsigned long long)nr, idx, offset, length);
	XXH64_update(r->stream_sum, h, SD_BACKUP_RECORD_HDR_SIZE);
	if (data)
		XXH64_update(r->stream_sum, data, length);
	XXH64_update(r->stream_sum, sum, sizeof(sum));
	r->nr_records++;
	if (data)
		r->payload_bytes += length;
	*rec = (struct sd_backup_record){type, idx, offset, length, data};
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_reader_next(struct sd_backup_reader *r,
					 struct sd_backup_record *rec)
{
	uint8_t h[SD_BACKUP_TRAILER_SIZE];

	memset(rec, 0, sizeof(*rec));
	rec->type = SD_BACKUP_REC_END;
	if (r->err.code)
		return r->err.code;
	if (r->done)
		return SD_BACKUP_OK;
	if (r_read_full(r, h, SD_BACKUP_RECORD_HDR_SIZE, "a record header"))
		return r->err.code;
	if (get_le32(h) != SD_BACKUP_REC_END)
		return r_record(r, h, rec);
	if (r_trailer(r, h))
		return r->err.code;
	r->done = true;
	return SD_BACKUP_OK;
}

const char *sd_backup_reader_errmsg(const struct sd_backup_reader *r)
{
	return bk_errmsg(&r->err);
}

void sd_backup_reader_free(struct sd_backup_reader *r)
{
	if (r)
		r_release(r);
}
