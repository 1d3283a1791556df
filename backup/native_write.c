/*
 * Writer of the native backup stream: every byte goes through one XXH64
 * state (for the trailer) and one zstd compression stream, whose output is
 * buffered here and written to the descriptor when the buffer fills.
 * Compression runs in one zstd worker thread, so that a caller reading its
 * data from the network overlaps the two. A failed write or compression
 * breaks the writer for good, since the stream on the descriptor can no
 * longer be completed.
 */
#include <stdlib.h>
#include <string.h>

#include <zstd.h>

#include "sheepdog/le.h"
#include "io.h"
#include "native.h"

struct sd_backup_writer {
	int fd;
	ZSTD_CCtx *cctx;
	uint8_t *out;
	size_t out_cap;
	size_t out_len;
	XXH64_state_t *stream_sum;
	XXH64_state_t *record_sum;
	struct sd_backup_header hdr;
	uint64_t nr_records;
	uint64_t payload_bytes;
	bool broken;
	bool finished;
	struct bk_error err;
};

static enum sd_backup_err w_flush(struct sd_backup_writer *w)
{
	return bk_flush(w->fd, w->out, &w->out_len, &w->broken, &w->err);
}

/* Feeds len bytes to zstd; with ZSTD_e_end, also closes the frame. */
static enum sd_backup_err w_compress(struct sd_backup_writer *w,
				     const void *data, size_t len,
				     ZSTD_EndDirective mode)
{
	ZSTD_inBuffer in = {data, len, 0};
	ZSTD_outBuffer out;
	size_t left;

	for (;;) {
		out = (ZSTD_outBuffer){w->out, w->out_cap, w->out_len};
		left = ZSTD_compressStream2(w->cctx, &out, &in, mode);
		if (ZSTD_isError(left)) {
			w->broken = true;
			return bk_fail(&w->err, SD_BACKUP_ERR_COMPRESSION,
				       "zstd: %s", ZSTD_getErrorName(left));
		}
		w->out_len = out.pos;
		if ((w->out_len == w->out_cap || mode == ZSTD_e_end) &&
		    w_flush(w))
			return w->err.code;
		if (mode == ZSTD_e_end ? left == 0 : in.pos == in.size)
			return SD_BACKUP_OK;
	}
}

/* Bytes that count towards the whole-stream checksum. */
static enum sd_backup_err w_put(struct sd_backup_writer *w, const void *data,
				size_t len)
{
	XXH64_update(w->stream_sum, data, len);
	return w_compress(w, data, len, ZSTD_e_continue);
}

static void w_release(struct sd_backup_writer *w)
{
	ZSTD_freeCCtx(w->cctx);
	XXH64_freeState(w->stream_sum);
	XXH64_freeState(w->record_sum);
	free(w->out);
	free(w);
}

static enum sd_backup_err w_setup(struct sd_backup_writer *w, int level)
{
	w->cctx = ZSTD_createCCtx();
	w->out_cap = ZSTD_CStreamOutSize();
	w->out = malloc(w->out_cap);
	w->stream_sum = XXH64_createState();
	w->record_sum = XXH64_createState();
	if (!w->cctx || !w->out || !w->stream_sum || !w->record_sum)
		return bk_fail(&w->err, SD_BACKUP_ERR_NOMEM, NULL);
	if (ZSTD_isError(ZSTD_CCtx_setParameter(
		w->cctx, ZSTD_c_compressionLevel, level)))
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "compression level %d", level);
	/*
	 * One zstd worker thread compresses while the caller reads and
	 * diffs the next objects, as the zstd CLI does by default (-T1);
	 * the frame is the same format. A libzstd built without threads
	 * refuses this, and compression stays on the caller's thread.
	 */
	ZSTD_CCtx_setParameter(w->cctx, ZSTD_c_nbWorkers, 1);
	XXH64_reset(w->stream_sum, 0);
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_writer_open(int fd,
					 const struct sd_backup_header *hdr,
					 int level,
					 struct sd_backup_writer **out,
					 char *errmsg, size_t errmsg_len)
{
	struct sd_backup_writer *w;
	uint8_t buf[SD_BACKUP_HEADER_SIZE];
	const char *why;
	enum sd_backup_err err;

	*out = NULL;
	w = calloc(1, sizeof(*w));
	if (!w)
		return SD_BACKUP_ERR_NOMEM;
	w->fd = fd;
	w->hdr = *hdr;
	why = native_header_check(hdr);
	if (why)
		err = bk_fail(&w->err, SD_BACKUP_ERR_INVAL, "header: %s", why);
	else if (level < ZSTD_minCLevel() || level > ZSTD_maxCLevel())
		err = bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			      "compression level %d is outside %d..%d", level,
			      ZSTD_minCLevel(), ZSTD_maxCLevel());
	else
		err = w_setup(w, level);
	if (!err) {
		native_header_encode(hdr, buf);
		err = w_put(w, buf, sizeof(buf));
	}
	if (err) {
		bk_copy_errmsg(&w->err, errmsg, errmsg_len);
		w_release(w);
		return err;
	}
	*out = w;
	return SD_BACKUP_OK;
}

static enum sd_backup_err w_record(struct sd_backup_writer *w, uint32_t type,
				   uint32_t idx, uint32_t offset,
				   uint32_t length, const void *data)
{
	uint8_t h[SD_BACKUP_RECORD_HDR_SIZE];
	uint8_t sum[SD_BACKUP_RECORD_SUM_SIZE];
	const char *why;

	if (w->broken)
		return w->err.code;
	if (w->finished)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "stream already finished");
	why = native_record_check(&w->hdr, type, idx, offset, length);
	if (why)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "record (object %u, offset %u, length %u): %s",
			       idx, offset, length, why);
	native_record_encode(h, type, idx, offset, length);
	put_le64(sum, native_record_sum(w->record_sum, h, data, length));
	if (w_put(w, h, sizeof(h)) || (data && w_put(w, data, length)) ||
	    w_put(w, sum, sizeof(sum)))
		return w->err.code;
	w->nr_records++;
	if (data)
		w->payload_bytes += length;
	return SD_BACKUP_OK;
}

enum sd_backup_err sd_backup_write_data(struct sd_backup_writer *w,
					uint32_t idx, uint32_t offset,
					uint32_t length, const void *data)
{
	if (!data)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "data record without data");
	return w_record(w, SD_BACKUP_REC_DATA, idx, offset, length, data);
}

enum sd_backup_err sd_backup_write_zero(struct sd_backup_writer *w,
					uint32_t idx, uint32_t offset,
					uint32_t length)
{
	return w_record(w, SD_BACKUP_REC_ZERO, idx, offset, length, NULL);
}

enum sd_backup_err sd_backup_writer_finish(struct sd_backup_writer *w)
{
	uint8_t t[SD_BACKUP_TRAILER_SIZE];

	if (w->broken)
		return w->err.code;
	if (w->finished)
		return bk_fail(&w->err, SD_BACKUP_ERR_INVAL,
			       "stream already finished");
	put_le32(t, SD_BACKUP_REC_END);
	put_le64(t + 4, w->nr_records);
	put_le64(t + 12, w->payload_bytes);
	put_le64(t + 20, XXH64_digest(w->stream_sum));
	w->finished = true;
	return w_compress(w, t, sizeof(t), ZSTD_e_end);
}

const char *sd_backup_writer_errmsg(const struct sd_backup_writer *w)
{
	return bk_errmsg(&w->err);
}

void sd_backup_writer_free(struct sd_backup_writer *w)
{
	if (w)
		w_release(w);
}
