/*
 * Backup streams (backup/): round trips of the native and v1 formats, a v1
 * stream compared byte for byte with one laid out by hand from spec 10,
 * every truncation and every single-byte change of a small native stream
 * refused, hostile headers and records refused without large allocations,
 * and the edge cases of both diff rules.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <cmocka.h>
#include <zstd.h>

#include "sheepdog/backup.h"
#include "sheepdog/le.h"

#define OBJ (1U << 20)
#define MAX_RECS 16

struct rec {
	uint32_t type, idx, offset, length;
	uint32_t first, last; /* the payload's ends, enough to tell apart */
};

struct log {
	struct rec r[MAX_RECS];
	int nr;
};

/* ---- helpers ---- */

static int mem_fd(const void *buf, size_t len)
{
	int fd = memfd_create("backup-test", 0);

	assert_true(fd >= 0);
	if (len)
		assert_int_equal(write(fd, buf, len), (ssize_t)len);
	assert_int_equal(lseek(fd, 0, SEEK_SET), 0);
	return fd;
}

/* Everything written to fd, in a malloc()ed buffer. */
static uint8_t *fd_contents(int fd, size_t *len)
{
	off_t end = lseek(fd, 0, SEEK_END);
	uint8_t *buf = malloc(end + 1);

	assert_non_null(buf);
	assert_int_equal(pread(fd, buf, end, 0), end);
	*len = end;
	return buf;
}

static void fill(uint8_t *buf, size_t len, unsigned seed)
{
	for (size_t i = 0; i < len; i++)
		buf[i] = (uint8_t)(i * 31 + seed * 7 + 1);
}

static struct sd_backup_header test_header(void)
{
	struct sd_backup_header h = {0};

	strcpy(h.name, "vm-disk");
	h.vdi_id = 0x00abcd;
	h.vdi_size = 3 * (uint64_t)OBJ + 4096; /* 4 objects */
	h.block_size_shift = 20;
	h.copies = 3;
	h.copy_policy = 0;
	h.flags = SD_BACKUP_FLAG_INCREMENTAL;
	h.from.id = 7;
	strcpy(h.from.tag, "monday");
	h.from.ctime = 1700000000;
	h.to.id = 9;
	strcpy(h.to.tag, "tuesday");
	h.to.ctime = 1700086400;
	h.nr_objects = 4;
	return h;
}

/* A small native stream: two data records and a zero range. */
static uint8_t *small_native(size_t *len)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	uint8_t data[1024];
	uint8_t *out;
	int fd = mem_fd(NULL, 0);

	fill(data, sizeof(data), 1);
	assert_int_equal(
	    sd_backup_writer_open(fd, &h, SD_BACKUP_DEFAULT_LEVEL, &w, NULL, 0),
	    SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_data(w, 0, 512, 64, data),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_zero(w, 1, 0, OBJ), SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_data(w, 3, OBJ - 1024, 1024, data),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_OK);
	sd_backup_writer_free(w);
	out = fd_contents(fd, len);
	close(fd);
	return out;
}

static uint8_t *decompress(const uint8_t *buf, size_t len, size_t *out_len)
{
	size_t cap = 8 << 20, n;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	n = ZSTD_decompress(out, cap, buf, len);
	assert_false(ZSTD_isError(n));
	*out_len = n;
	return out;
}

static uint8_t *compress(const uint8_t *buf, size_t len, size_t *out_len)
{
	size_t cap = ZSTD_compressBound(len), n;
	uint8_t *out = malloc(cap);

	assert_non_null(out);
	n = ZSTD_compress(out, cap, buf, len, 3);
	assert_false(ZSTD_isError(n));
	*out_len = n;
	return out;
}

/* Reads a whole native stream; the first error, or OK at a good end. */
static enum sd_backup_err read_native(const uint8_t *buf, size_t len,
				      struct log *log)
{
	struct sd_backup_reader *r;
	struct sd_backup_record rec;
	enum sd_backup_err err;
	int fd = mem_fd(buf, len);

	if (log)
		log->nr = 0;
	err = sd_backup_reader_open(fd, NULL, 0, &r, NULL, 0);
	if (err) {
		close(fd);
		return err;
	}
	while (!(err = sd_backup_reader_next(r, &rec)) &&
	       rec.type != SD_BACKUP_REC_END) {
		if (log && log->nr < MAX_RECS) {
			const uint8_t *d = rec.data;

			log->r[log->nr++] = (struct rec){
			    rec.type,	  rec.idx,
			    rec.offset,	  rec.length,
			    d ? d[0] : 0, d ? d[rec.length - 1] : 0};
		}
	}
	sd_backup_reader_free(r);
	close(fd);
	return err;
}

/* Compresses raw (a decompressed stream) and reads it. */
static enum sd_backup_err read_raw(const uint8_t *raw, size_t len)
{
	size_t clen;
	uint8_t *c = compress(raw, len, &clen);
	enum sd_backup_err err = read_native(c, clen, NULL);

	free(c);
	return err;
}

/* ---- native round trip ---- */

static void test_native_round_trip(void **state)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	struct sd_backup_reader *r;
	struct sd_backup_record rec;
	uint8_t *big = malloc(OBJ), *out, prefix[SD_BACKUP_DETECT_LEN];
	size_t len;
	int fd = mem_fd(NULL, 0), fd2;

	fill(big, OBJ, 5);
	assert_int_equal(sd_backup_writer_open(fd, &h, 1, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_data(w, 2, 0, OBJ, big), SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_zero(w, 3, 4096, 8192), SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_data(w, 0, 100, 3, "abc"),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_ERR_INVAL);
	sd_backup_writer_free(w);
	out = fd_contents(fd, &len);
	close(fd);

	/* The caller detects the format and hands the bytes it read over. */
	fd2 = mem_fd(out, len);
	assert_int_equal(read(fd2, prefix, sizeof(prefix)), sizeof(prefix));
	assert_int_equal(sd_backup_detect(prefix, sizeof(prefix)),
			 SD_BACKUP_FORMAT_NATIVE);
	assert_int_equal(
	    sd_backup_reader_open(fd2, prefix, sizeof(prefix), &r, NULL, 0),
	    SD_BACKUP_OK);
	assert_memory_equal(sd_backup_reader_header(r), &h, sizeof(h));

	assert_int_equal(sd_backup_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_DATA);
	assert_int_equal(rec.idx, 2);
	assert_int_equal(rec.offset, 0);
	assert_int_equal(rec.length, OBJ);
	assert_memory_equal(rec.data, big, OBJ);

	assert_int_equal(sd_backup_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_ZERO);
	assert_int_equal(rec.idx, 3);
	assert_int_equal(rec.offset, 4096);
	assert_int_equal(rec.length, 8192);
	assert_null(rec.data);

	assert_int_equal(sd_backup_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_DATA);
	assert_int_equal(rec.idx, 0);
	assert_int_equal(rec.offset, 100);
	assert_int_equal(rec.length, 3);
	assert_memory_equal(rec.data, "abc", 3);

	assert_int_equal(sd_backup_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_END);
	assert_int_equal(sd_backup_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_END);
	sd_backup_reader_free(r);
	close(fd2);
	free(out);
	free(big);
}

static void test_native_empty_full_backup(void **state)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	struct log log;
	uint8_t *out;
	size_t len;
	int fd = mem_fd(NULL, 0);

	h.flags = 0;
	memset(&h.from, 0, sizeof(h.from));
	assert_int_equal(sd_backup_writer_open(fd, &h, 3, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_OK);
	sd_backup_writer_free(w);
	out = fd_contents(fd, &len);
	assert_int_equal(read_native(out, len, &log), SD_BACKUP_OK);
	assert_int_equal(log.nr, 0);
	close(fd);
	free(out);
}

/* The decompressed bytes follow the layout documented in backup.h. */
static void test_native_layout(void **state)
{
	size_t clen, len;
	uint8_t *c = small_native(&clen), *raw = decompress(c, clen, &len);
	const uint8_t *rec = raw + SD_BACKUP_HEADER_SIZE;

	assert_int_equal(len, SD_BACKUP_HEADER_SIZE + (16 + 64 + 8) + (16 + 8) +
				  (16 + 1024 + 8) + SD_BACKUP_TRAILER_SIZE);
	assert_memory_equal(raw, "SDBKUP\0\0", 8);
	assert_int_equal(get_le32(raw + 8), 2);
	assert_int_equal(get_le32(raw + 12), SD_BACKUP_HEADER_SIZE);
	assert_string_equal((char *)raw + 16, "vm-disk");
	assert_int_equal(get_le32(raw + 828), 4);
	assert_int_equal(get_le32(rec), SD_BACKUP_REC_DATA);
	assert_int_equal(get_le32(rec + 4), 0);
	assert_int_equal(get_le32(rec + 8), 512);
	assert_int_equal(get_le32(rec + 12), 64);
	rec = raw + len - SD_BACKUP_TRAILER_SIZE;
	assert_int_equal(get_le32(rec), SD_BACKUP_REC_END);
	assert_int_equal(get_le64(rec + 4), 3);
	assert_int_equal(get_le64(rec + 12), 64 + 1024);
	free(raw);
	free(c);
}

/* ---- v1 ---- */

static void test_v1_matches_spec_bytes(void **state)
{
	uint8_t a[1024], b[512], want[8 + 16 + 1024 + 16 + 512 + 16] = {0};
	uint8_t *p = want, *out;
	struct sd_backup_v1_writer *w;
	size_t len;
	int fd = mem_fd(NULL, 0);

	memset(a, 'A', sizeof(a));
	memset(b, 'B', sizeof(b));
	/* Spec 10, field by field. */
	memcpy(p, "\x01\x00\x00\x00\x92\x11\x92\x11", 8);
	p += 8;
	memcpy(p, "\x05\x00\x00\x00\x00\x02\x00\x00\x00\x04\x00\x00", 12);
	p += 16;
	memcpy(p, a, sizeof(a));
	p += sizeof(a);
	memcpy(p, "\x00\x00\x00\x00\x00\xfe\x0f\x00\x00\x02\x00\x00", 12);
	p += 16;
	memcpy(p, b, sizeof(b));
	p += sizeof(b);
	memcpy(p, "\xff\xff\xff\xff", 4);

	assert_int_equal(sd_backup_v1_writer_open(fd, OBJ, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_write(w, 5, 512, 1024, a), SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_write(w, 0, OBJ - 512, 512, b),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_writer_finish(w), SD_BACKUP_OK);
	sd_backup_v1_writer_free(w);
	out = fd_contents(fd, &len);
	assert_int_equal(len, sizeof(want));
	assert_memory_equal(out, want, sizeof(want));
	assert_int_equal(sd_backup_detect(out, len), SD_BACKUP_FORMAT_V1);
	close(fd);
	free(out);
}

static enum sd_backup_err read_v1(const uint8_t *buf, size_t len,
				  struct log *log)
{
	struct sd_backup_v1_reader *r;
	struct sd_backup_record rec;
	enum sd_backup_err err;
	int fd = mem_fd(buf, len);

	if (log)
		log->nr = 0;
	err = sd_backup_v1_reader_open(fd, NULL, 0, OBJ, &r, NULL, 0);
	if (err) {
		close(fd);
		return err;
	}
	while (!(err = sd_backup_v1_reader_next(r, &rec)) &&
	       rec.type != SD_BACKUP_REC_END) {
		if (log && log->nr < MAX_RECS) {
			const uint8_t *d = rec.data;

			log->r[log->nr++] = (struct rec){
			    rec.type,	rec.idx, rec.offset,
			    rec.length, d[0],	 d[rec.length - 1]};
		}
	}
	sd_backup_v1_reader_free(r);
	close(fd);
	return err;
}

static uint8_t *small_v1(size_t *len)
{
	struct sd_backup_v1_writer *w;
	uint8_t *data = malloc(OBJ), *out;
	int fd = mem_fd(NULL, 0);

	fill(data, OBJ, 3);
	assert_int_equal(sd_backup_v1_writer_open(fd, OBJ, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_write(w, 1, 0, OBJ, data), SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_write(w, 7, 1024, 512, data + 1),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_writer_finish(w), SD_BACKUP_OK);
	sd_backup_v1_writer_free(w);
	out = fd_contents(fd, len);
	close(fd);
	free(data);
	return out;
}

static void test_v1_round_trip(void **state)
{
	struct sd_backup_v1_reader *r;
	struct sd_backup_record rec;
	uint8_t *data = malloc(OBJ), *out;
	size_t len;
	int fd;

	fill(data, OBJ, 3);
	out = small_v1(&len);
	fd = mem_fd(out + 8, len - 8);
	/* The header came through detection, as dog will pass it. */
	assert_int_equal(sd_backup_v1_reader_open(fd, out, 8, OBJ, &r, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_v1_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_DATA);
	assert_int_equal(rec.idx, 1);
	assert_int_equal(rec.offset, 0);
	assert_int_equal(rec.length, OBJ);
	assert_memory_equal(rec.data, data, OBJ);
	assert_int_equal(sd_backup_v1_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.idx, 7);
	assert_int_equal(rec.offset, 1024);
	assert_int_equal(rec.length, 512);
	assert_memory_equal(rec.data, data + 1, 512);
	assert_int_equal(sd_backup_v1_reader_next(r, &rec), SD_BACKUP_OK);
	assert_int_equal(rec.type, SD_BACKUP_REC_END);
	sd_backup_v1_reader_free(r);
	close(fd);
	free(out);
	free(data);
}

static void test_v1_truncated_at_every_length(void **state)
{
	size_t len, n;
	uint8_t *out = small_v1(&len);

	for (n = 0; n < len; n += n < 64 || len - n < 64 ? 1 : 509)
		assert_int_equal(read_v1(out, n, NULL),
				 SD_BACKUP_ERR_TRUNCATED);
	assert_int_equal(read_v1(out, len, NULL), SD_BACKUP_OK);
	free(out);
}

static void test_v1_bad_header_and_records(void **state)
{
	uint8_t s[8 + 16 + 512 + 16] = {0};
	uint8_t *rec = s + 8;
	struct sd_backup_v1_reader *r;
	char msg[256];
	int fd;

	put_le32(s, 1);
	put_le32(s + 4, SD_BACKUP_V1_MAGIC);
	put_le32(rec + 8, 512);
	put_le32(rec + 16 + 512, SD_BACKUP_V1_END_IDX);
	assert_int_equal(read_v1(s, sizeof(s), NULL), SD_BACKUP_OK);

	put_le32(s, 2);
	assert_int_equal(read_v1(s, sizeof(s), NULL), SD_BACKUP_ERR_VERSION);
	put_le32(s, 1);
	put_le32(s + 4, 0x11921193);
	assert_int_equal(read_v1(s, sizeof(s), NULL), SD_BACKUP_ERR_NOT_BACKUP);
	assert_int_equal(sd_backup_detect(s, sizeof(s)),
			 SD_BACKUP_FORMAT_UNKNOWN);
	put_le32(s + 4, SD_BACKUP_V1_MAGIC);

	put_le32(rec + 4, 100); /* unaligned offset */
	assert_int_equal(read_v1(s, sizeof(s), NULL), SD_BACKUP_ERR_RECORD);
	put_le32(rec + 4, OBJ); /* past the object */
	assert_int_equal(read_v1(s, sizeof(s), NULL), SD_BACKUP_ERR_RECORD);
	put_le32(rec + 4, 0);
	put_le32(rec + 8, 0xFFFFFE00); /* huge: refused before reading */
	fd = mem_fd(s, sizeof(s));
	assert_int_equal(
	    sd_backup_v1_reader_open(fd, NULL, 0, OBJ, &r, msg, sizeof(msg)),
	    SD_BACKUP_OK);
	{
		struct sd_backup_record rr;

		assert_int_equal(sd_backup_v1_reader_next(r, &rr),
				 SD_BACKUP_ERR_RECORD);
	}
	assert_string_equal(sd_backup_v1_reader_errmsg(r),
			    "backup stream record is corrupted: record 1 "
			    "(object 0, offset 0, length 4294966784): range "
			    "beyond the object");
	sd_backup_v1_reader_free(r);
	close(fd);

	/* The reader and writer refuse an object size they cannot bound. */
	fd = mem_fd(s, sizeof(s));
	assert_int_equal(
	    sd_backup_v1_reader_open(fd, NULL, 0, 1000, &r, msg, sizeof(msg)),
	    SD_BACKUP_ERR_INVAL);
	close(fd);
}

/* ---- damage to a native stream ---- */

static void test_native_truncated_at_every_length(void **state)
{
	size_t clen, len, n;
	uint8_t *c = small_native(&clen), *raw = decompress(c, clen, &len);

	for (n = 0; n < clen; n++)
		assert_int_equal(read_native(c, n, NULL),
				 SD_BACKUP_ERR_TRUNCATED);
	for (n = 0; n < len; n++)
		assert_int_equal(read_raw(raw, n), SD_BACKUP_ERR_TRUNCATED);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_OK);
	free(raw);
	free(c);
}

static void test_native_every_byte_flip_detected(void **state)
{
	size_t clen, len, i;
	uint8_t *c = small_native(&clen), *raw = decompress(c, clen, &len);
	static const uint8_t masks[] = {0x01, 0x80, 0xff};

	for (i = 0; i < len; i++) {
		for (size_t m = 0; m < sizeof(masks); m++) {
			raw[i] ^= masks[m];
			assert_int_not_equal(read_raw(raw, len), SD_BACKUP_OK);
			raw[i] ^= masks[m];
		}
	}
	free(raw);
	free(c);
}

/*
 * A change to the compressed bytes either fails or, where zstd ignores the
 * bits (the frame header's window size), yields exactly the same records:
 * restored data is never silently different.
 */
static void test_native_compressed_flip_detected(void **state)
{
	size_t clen, i;
	uint8_t *c = small_native(&clen);
	struct log good, got;
	enum sd_backup_err err;
	int undetected = 0;

	assert_int_equal(read_native(c, clen, &good), SD_BACKUP_OK);
	for (i = 0; i < clen; i++) {
		for (unsigned bit = 0; bit < 8; bit++) {
			c[i] ^= 1U << bit;
			err = read_native(c, clen, &got);
			if (err == SD_BACKUP_OK) {
				undetected++;
				assert_int_equal(got.nr, good.nr);
				assert_memory_equal(
				    got.r, good.r, sizeof(good.r[0]) * good.nr);
			}
			c[i] ^= 1U << bit;
		}
	}
	print_message("compressed bit flips that decode the same: %d of %zu\n",
		      undetected, clen * 8);
	free(c);
}

static void test_native_bad_magic_and_version(void **state)
{
	size_t clen, len;
	uint8_t *c = small_native(&clen), *raw = decompress(c, clen, &len);
	struct sd_backup_reader *r;
	char msg[256];
	int fd;

	assert_int_equal(read_native((const uint8_t *)"hello, world", 12, NULL),
			 SD_BACKUP_ERR_NOT_BACKUP);
	assert_int_equal(sd_backup_detect("hello, world", 12),
			 SD_BACKUP_FORMAT_UNKNOWN);
	raw[0] = 'X';
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_NOT_BACKUP);
	raw[0] = 'S';
	put_le32(raw + 8, 3);
	free(c);
	c = compress(raw, len, &clen);
	fd = mem_fd(c, clen);
	assert_int_equal(
	    sd_backup_reader_open(fd, NULL, 0, &r, msg, sizeof(msg)),
	    SD_BACKUP_ERR_VERSION);
	assert_null(r);
	assert_string_equal(msg, "unsupported backup stream version: "
				 "version 3, this reader knows 2");
	close(fd);
	put_le32(raw + 8, 2);
	put_le32(raw + 12, 841);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_HEADER);
	free(raw);
	free(c);
}

/* A raw stream: a valid header, then the given bytes (no trailer). */
static size_t raw_with(const struct sd_backup_header *h, const void *tail,
		       size_t tail_len, uint8_t *out)
{
	struct sd_backup_writer *w;
	size_t clen, len;
	uint8_t *c, *raw;
	int fd = mem_fd(NULL, 0);

	assert_int_equal(sd_backup_writer_open(fd, h, 3, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_OK);
	sd_backup_writer_free(w);
	c = fd_contents(fd, &clen);
	raw = decompress(c, clen, &len);
	memcpy(out, raw, SD_BACKUP_HEADER_SIZE);
	memcpy(out + SD_BACKUP_HEADER_SIZE, tail, tail_len);
	close(fd);
	free(raw);
	free(c);
	return SD_BACKUP_HEADER_SIZE + tail_len;
}

static void test_native_record_beyond_object(void **state)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	uint8_t rec[16], raw[SD_BACKUP_HEADER_SIZE + 16];
	size_t len;
	int fd = mem_fd(NULL, 0);

	/* The writer refuses it... */
	assert_int_equal(sd_backup_writer_open(fd, &h, 3, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_write_zero(w, 0, 512, OBJ),
			 SD_BACKUP_ERR_INVAL);
	assert_string_equal(sd_backup_writer_errmsg(w),
			    "invalid argument: record (object 0, offset 512, "
			    "length 1048576): range beyond the object");
	assert_int_equal(sd_backup_write_zero(w, 4, 0, 512),
			 SD_BACKUP_ERR_INVAL);
	assert_int_equal(sd_backup_write_zero(w, 0, 0, 0), SD_BACKUP_ERR_INVAL);
	/* ...and stays usable. */
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_OK);
	sd_backup_writer_free(w);
	close(fd);

	/* ...and the reader too, before reading any payload. */
	put_le32(rec, SD_BACKUP_REC_DATA);
	put_le32(rec + 4, 0);
	put_le32(rec + 8, 512);
	put_le32(rec + 12, OBJ);
	len = raw_with(&h, rec, sizeof(rec), raw);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_RECORD);
	put_le32(rec + 8, 0);
	put_le32(rec + 12, 0xFFFFFFFF);
	len = raw_with(&h, rec, sizeof(rec), raw);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_RECORD);
	put_le32(rec + 4, 4); /* beyond the VDI's 4 objects */
	put_le32(rec + 12, 512);
	len = raw_with(&h, rec, sizeof(rec), raw);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_RECORD);
	put_le32(rec, 3); /* unknown type */
	put_le32(rec + 4, 0);
	len = raw_with(&h, rec, sizeof(rec), raw);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_RECORD);
}

/* A 2 GiB record that never comes is refused without 2 GiB of memory. */
static void test_native_huge_record_truncated_cheaply(void **state)
{
	struct sd_backup_header h = test_header();
	uint8_t rec[16], raw[SD_BACKUP_HEADER_SIZE + 16];
	size_t len;

	h.block_size_shift = 31;
	h.vdi_size = 1ULL << 31;
	h.nr_objects = 1;
	put_le32(rec, SD_BACKUP_REC_DATA);
	put_le32(rec + 4, 0);
	put_le32(rec + 8, 0);
	put_le32(rec + 12, 0x80000000U);
	len = raw_with(&h, rec, sizeof(rec), raw);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_TRUNCATED);
}

static void test_native_bad_header_fields(void **state)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	char msg[256];
	int fd = mem_fd(NULL, 0);

	h.nr_objects = 5;
	assert_int_equal(sd_backup_writer_open(fd, &h, 3, &w, msg, sizeof(msg)),
			 SD_BACKUP_ERR_INVAL);
	assert_null(w);
	assert_string_equal(msg, "invalid argument: header: number of "
				 "objects does not match the VDI size");
	h = test_header();
	h.block_size_shift = 32;
	assert_int_equal(sd_backup_writer_open(fd, &h, 3, &w, NULL, 0),
			 SD_BACKUP_ERR_INVAL);
	h = test_header();
	h.flags = 0; /* full, yet names a from snapshot */
	assert_int_equal(sd_backup_writer_open(fd, &h, 3, &w, NULL, 0),
			 SD_BACKUP_ERR_INVAL);
	h = test_header();
	assert_int_equal(sd_backup_writer_open(fd, &h, 99, &w, NULL, 0),
			 SD_BACKUP_ERR_INVAL);
	close(fd);
}

static void test_native_trailer_errors(void **state)
{
	size_t clen, len;
	uint8_t *c = small_native(&clen), *raw = decompress(c, clen, &len);
	uint8_t *t = raw + len - SD_BACKUP_TRAILER_SIZE, *longer;

	put_le64(t + 4, 2);
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_TRAILER);
	put_le64(t + 4, 3);
	t[27] ^= 1;
	assert_int_equal(read_raw(raw, len), SD_BACKUP_ERR_CHECKSUM);
	t[27] ^= 1;
	longer = malloc(len + 1);
	memcpy(longer, raw, len);
	longer[len] = 0;
	assert_int_equal(read_raw(longer, len + 1), SD_BACKUP_ERR_TRAILER);
	/* A stream whose records were dropped from the middle. */
	memmove(raw + SD_BACKUP_HEADER_SIZE + 88,
		raw + SD_BACKUP_HEADER_SIZE + 88 + 24,
		len - SD_BACKUP_HEADER_SIZE - 88 - 24);
	assert_int_equal(read_raw(raw, len - 24), SD_BACKUP_ERR_TRAILER);
	free(longer);
	free(raw);
	free(c);
}

static void test_native_write_error_reported(void **state)
{
	struct sd_backup_header h = test_header();
	struct sd_backup_writer *w;
	int p[2];

	assert_int_equal(pipe(p), 0);
	/* The read end of a pipe refuses writes with EBADF. */
	assert_int_equal(sd_backup_writer_open(p[0], &h, 3, &w, NULL, 0),
			 SD_BACKUP_OK);
	assert_int_equal(sd_backup_writer_finish(w), SD_BACKUP_ERR_IO);
	assert_string_equal(sd_backup_writer_errmsg(w),
			    "backup stream I/O error: write: Bad file "
			    "descriptor");
	assert_int_equal(sd_backup_write_zero(w, 0, 0, 512), SD_BACKUP_ERR_IO);
	sd_backup_writer_free(w);
	close(p[0]);
	close(p[1]);
}

static void test_strerror_distinct(void **state)
{
	for (int i = SD_BACKUP_OK; i <= SD_BACKUP_ERR_INVAL; i++)
		for (int j = i + 1; j <= SD_BACKUP_ERR_INVAL; j++)
			assert_string_not_equal(sd_backup_strerror(i),
						sd_backup_strerror(j));
	assert_string_equal(sd_backup_strerror(SD_BACKUP_ERR_TRUNCATED),
			    "backup stream is truncated");
	assert_string_equal(sd_backup_strerror(99), "unknown backup error");
}

/* ---- diff ---- */

static void test_v1_diff_rule(void **state)
{
	uint8_t *a = calloc(1, 8192), *b = calloc(1, 8192);
	uint32_t off = 1, len = 1;

	assert_int_equal(sd_backup_v1_diff(NULL, NULL, 8192, &off, &len), 0);
	assert_int_equal(sd_backup_v1_diff(a, NULL, 8192, &off, &len), 0);
	assert_int_equal(sd_backup_v1_diff(a, b, 8192, &off, &len), 0);
	b[1000] = 1; /* sector 1 */
	b[5000] = 1; /* sector 9 */
	assert_int_equal(sd_backup_v1_diff(a, b, 8192, &off, &len), 1);
	assert_int_equal(off, 512);
	assert_int_equal(len, 9 * 512);
	assert_int_equal(sd_backup_v1_diff(NULL, b, 8192, &off, &len), 1);
	assert_int_equal(off, 512);
	assert_int_equal(sd_backup_v1_diff(b, NULL, 8192, &off, &len), 1);
	assert_int_equal(len, 9 * 512);
	b[0] = b[8191] = 1;
	assert_int_equal(sd_backup_v1_diff(a, b, 8192, &off, &len), 1);
	assert_int_equal(off, 0);
	assert_int_equal(len, 8192);
	assert_int_equal(sd_backup_v1_diff(a, b, 1000, &off, &len), -EINVAL);
	assert_int_equal(sd_backup_v1_diff(a, b, 0, &off, &len), -EINVAL);
	free(a);
	free(b);
}

static void check_ext(const struct sd_backup_extent *e, uint32_t off,
		      uint32_t len, bool zero)
{
	assert_int_equal(e->offset, off);
	assert_int_equal(e->length, len);
	assert_int_equal(e->zero, zero);
}

static void test_diff_runs_and_gap(void **state)
{
	const uint32_t size = 64 * 512;
	uint8_t *a = calloc(1, size), *b = calloc(1, size);
	struct sd_backup_extent e[SD_BACKUP_DIFF_MAX(64 * 512)];

	assert_int_equal(sd_backup_diff(a, b, size, 4096, e, 64), 0);
	assert_int_equal(sd_backup_diff(NULL, NULL, size, 4096, e, 64), 0);
	/* Sectors 2 and 9: 6 unchanged sectors between, under the gap. */
	b[2 * 512] = 1;
	b[9 * 512 + 511] = 1;
	assert_int_equal(sd_backup_diff(a, b, size, 4096, e, 64), 1);
	check_ext(&e[0], 2 * 512, 8 * 512, false);
	/* Sector 20: 10 sectors after 9, a run of its own. */
	b[20 * 512] = 1;
	assert_int_equal(sd_backup_diff(a, b, size, 4096, e, 64), 2);
	check_ext(&e[1], 20 * 512, 512, false);
	/* No gap: every changed sector is its own run. */
	assert_int_equal(sd_backup_diff(a, b, size, 0, e, 64), 3);
	check_ext(&e[0], 2 * 512, 512, false);
	check_ext(&e[1], 9 * 512, 512, false);
	/* The last sector of the object. */
	b[size - 1] = 1;
	assert_int_equal(sd_backup_diff(NULL, b, size, 4096, e, 64), 3);
	check_ext(&e[2], size - 512, 512, false);
	assert_int_equal(sd_backup_diff(a, b, size, 0, e, 3), -ENOSPC);
	assert_int_equal(sd_backup_diff(a, b, 100, 0, e, 64), -EINVAL);
	free(a);
	free(b);
}

static void test_diff_zero_runs(void **state)
{
	const uint32_t size = 64 * 512;
	uint8_t *a = malloc(size), *b = malloc(size);
	struct sd_backup_extent e[SD_BACKUP_DIFF_MAX(64 * 512)];

	/* A wiped object is one zero extent. */
	memset(a, 0x5a, size);
	assert_int_equal(sd_backup_diff(a, NULL, size, 4096, e, 64), 1);
	check_ext(&e[0], 0, size, true);
	/* A new object, zero in its middle 32 sectors: data, zero, data. */
	memset(b, 0x11, size);
	memset(b + 16 * 512, 0, 32 * 512);
	assert_int_equal(sd_backup_diff(NULL, b, size, 4096, e, 64), 2);
	check_ext(&e[0], 0, 16 * 512, false);
	check_ext(&e[1], 48 * 512, 16 * 512, false);
	assert_int_equal(sd_backup_diff(a, b, size, 4096, e, 64), 3);
	check_ext(&e[0], 0, 16 * 512, false);
	check_ext(&e[1], 16 * 512, 32 * 512, true);
	check_ext(&e[2], 48 * 512, 16 * 512, false);
	/* A zero span shorter than the gap stays inside the data. */
	memset(b, 0x11, size);
	memset(b + 16 * 512, 0, 2 * 512);
	assert_int_equal(sd_backup_diff(a, b, size, 4096, e, 64), 1);
	check_ext(&e[0], 0, size, false);
	free(a);
	free(b);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_native_round_trip),
	    cmocka_unit_test(test_native_empty_full_backup),
	    cmocka_unit_test(test_native_layout),
	    cmocka_unit_test(test_v1_matches_spec_bytes),
	    cmocka_unit_test(test_v1_round_trip),
	    cmocka_unit_test(test_v1_truncated_at_every_length),
	    cmocka_unit_test(test_v1_bad_header_and_records),
	    cmocka_unit_test(test_native_truncated_at_every_length),
	    cmocka_unit_test(test_native_every_byte_flip_detected),
	    cmocka_unit_test(test_native_compressed_flip_detected),
	    cmocka_unit_test(test_native_bad_magic_and_version),
	    cmocka_unit_test(test_native_record_beyond_object),
	    cmocka_unit_test(test_native_huge_record_truncated_cheaply),
	    cmocka_unit_test(test_native_bad_header_fields),
	    cmocka_unit_test(test_native_trailer_errors),
	    cmocka_unit_test(test_native_write_error_reported),
	    cmocka_unit_test(test_strerror_distinct),
	    cmocka_unit_test(test_v1_diff_rule),
	    cmocka_unit_test(test_diff_runs_and_gap),
	    cmocka_unit_test(test_diff_zero_runs),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
