/*
 * Backup streams: the native format (version 2, below) and upstream's v1
 * stream (spec 10), their writers and readers, format detection, and the
 * per-object diff that decides what a backup carries. Pure stream code: the
 * caller fetches objects from the cluster and writes restored data back.
 *
 * Native stream, version 2
 * ========================
 *
 * The bytes on the wire are one zstd stream (streaming compression, level 3
 * by default). Everything below describes the decompressed bytes; all
 * integers are little-endian and nothing is padded.
 *
 * Header (840 bytes)
 *   off size field
 *     0    8 magic "SDBKUP\0\0"
 *     8    4 version = 2
 *    12    4 header length = 840, the whole header including its checksum
 *    16  256 VDI name, NUL-padded; byte 255 is always NUL
 *   272    4 VDI id (below 2^24)
 *   276    8 VDI size in bytes
 *   284    1 block_size_shift (20..31): objects are 1 << shift bytes
 *   285    1 copies
 *   286    1 copy_policy
 *   287    1 reserved, 0
 *   288    4 flags; bit 0: incremental; other bits 0
 *   292    4 from snapshot id         \
 *   296  256 from snapshot tag         } all zero for a full backup
 *   552    8 from snapshot ctime      /
 *   560    4 to snapshot id
 *   564  256 to snapshot tag
 *   820    8 to snapshot ctime
 *   828    4 number of objects: the VDI's data object slots,
 *            ceil(VDI size / object size), at most 2^20
 *   832    8 XXH64 (seed 0) of bytes 0..831
 *
 * Records, any number, each
 *     0    4 type: 1 = data, 2 = zero range (reads as zeros, no payload)
 *     4    4 object index, below the number of objects
 *     8    4 offset inside the object
 *    12    4 length, > 0; offset + length <= object size
 *    16    n payload: length bytes for data, nothing for a zero range
 *  16+n    8 XXH64 (seed 0) of the record header and payload
 *
 * Trailer (28 bytes)
 *     0    4 type 0xFFFFFFFF
 *     4    8 number of records
 *    12    8 payload bytes: the sum of the data records' lengths
 *    20    8 XXH64 (seed 0) of every decompressed byte before the trailer
 *
 * Nothing follows the trailer, and the zstd stream must end there.
 *
 * Upstream v1 stream (spec 10)
 * ============================
 *
 * Uncompressed: u32 version 1, u32 magic 0x11921192, then records of
 * {u32 idx, u32 offset, u32 length, u32 reserved 0} and length bytes of
 * data, offset and length multiples of 512; the end marker is a record
 * with idx 0xFFFFFFFF and no data.
 */
#ifndef SHEEPDOG_BACKUP_H
#define SHEEPDOG_BACKUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SD_BACKUP_MAGIC "SDBKUP\0\0"
#define SD_BACKUP_MAGIC_LEN 8
#define SD_BACKUP_VERSION 2
#define SD_BACKUP_HEADER_SIZE 840
#define SD_BACKUP_RECORD_HDR_SIZE 16
#define SD_BACKUP_RECORD_SUM_SIZE 8
#define SD_BACKUP_TRAILER_SIZE 28
#define SD_BACKUP_DEFAULT_LEVEL 3
#define SD_BACKUP_FLAG_INCREMENTAL 0x1U
#define SD_BACKUP_TAG_LEN 256

#define SD_BACKUP_REC_DATA 1U
#define SD_BACKUP_REC_ZERO 2U
#define SD_BACKUP_REC_END 0xFFFFFFFFU

#define SD_BACKUP_V1_VERSION 1U
#define SD_BACKUP_V1_MAGIC 0x11921192U
#define SD_BACKUP_V1_HEADER_SIZE 8
#define SD_BACKUP_V1_RECORD_HDR_SIZE 16
#define SD_BACKUP_V1_END_IDX 0xFFFFFFFFU

#define SD_BACKUP_SECTOR 512U
#define SD_BACKUP_ZSTD_MAGIC 0xFD2FB528U
/* Bytes enough for sd_backup_detect() to tell every format apart. */
#define SD_BACKUP_DETECT_LEN 8

/* Every way a backup operation fails; sd_backup_strerror() names each. */
enum sd_backup_err {
	SD_BACKUP_OK = 0,
	SD_BACKUP_ERR_NOT_BACKUP,  /* no magic: not a backup stream */
	SD_BACKUP_ERR_VERSION,	   /* magic right, version unknown */
	SD_BACKUP_ERR_TRUNCATED,   /* input ended before the end */
	SD_BACKUP_ERR_HEADER,	   /* header checksum or fields wrong */
	SD_BACKUP_ERR_RECORD,	   /* a record's fields or checksum wrong */
	SD_BACKUP_ERR_TRAILER,	   /* trailer counts wrong or data after it */
	SD_BACKUP_ERR_CHECKSUM,	   /* whole-stream checksum mismatch */
	SD_BACKUP_ERR_COMPRESSION, /* zstd rejected the compressed bytes */
	SD_BACKUP_ERR_IO,	   /* read or write failed; see errmsg */
	SD_BACKUP_ERR_NOMEM,
	SD_BACKUP_ERR_INVAL, /* the caller passed something out of range */
};

/* Fixed text for an error code, e.g. "backup stream is truncated". */
const char *sd_backup_strerror(enum sd_backup_err err);

enum sd_backup_format {
	SD_BACKUP_FORMAT_UNKNOWN = 0,
	SD_BACKUP_FORMAT_V1,
	SD_BACKUP_FORMAT_NATIVE,
};

/*
 * Which format a stream is, from its first len bytes (SD_BACKUP_DETECT_LEN
 * is always enough). A v1 stream is recognised by its magic alone so that
 * its reader can report a wrong version as such.
 */
enum sd_backup_format sd_backup_detect(const void *buf, size_t len);

struct sd_backup_snap {
	uint32_t id;
	char tag[SD_BACKUP_TAG_LEN];
	uint64_t ctime;
};

struct sd_backup_header {
	char name[256];
	uint32_t vdi_id;
	uint64_t vdi_size;
	uint8_t block_size_shift;
	uint8_t copies;
	uint8_t copy_policy;
	uint32_t flags;
	struct sd_backup_snap from; /* all zero for a full backup */
	struct sd_backup_snap to;
	uint32_t nr_objects; /* ceil(vdi_size / object size) */
};

/*
 * One record as a reader returns it. data points into the reader and stays
 * valid until the next call on it; it is NULL for zero ranges and the end.
 */
struct sd_backup_record {
	uint32_t type; /* SD_BACKUP_REC_DATA, _ZERO or _END */
	uint32_t idx;
	uint32_t offset;
	uint32_t length;
	const void *data;
};

/* ---- native writer ---- */

struct sd_backup_writer;

/*
 * Starts a native stream on fd with the given header, compressed at level
 * (SD_BACKUP_DEFAULT_LEVEL unless there is a reason). The header is checked
 * as a reader would check it. On failure *out is NULL and, when errmsg is
 * not NULL, the detailed text is copied there (errmsg_len bytes at most).
 */
enum sd_backup_err sd_backup_writer_open(int fd,
					 const struct sd_backup_header *hdr,
					 int level,
					 struct sd_backup_writer **out,
					 char *errmsg, size_t errmsg_len);
enum sd_backup_err sd_backup_write_data(struct sd_backup_writer *w,
					uint32_t idx, uint32_t offset,
					uint32_t length, const void *data);
enum sd_backup_err sd_backup_write_zero(struct sd_backup_writer *w,
					uint32_t idx, uint32_t offset,
					uint32_t length);
/* Writes the trailer and flushes everything to fd. */
enum sd_backup_err sd_backup_writer_finish(struct sd_backup_writer *w);
/* The last failure with its detail (errno text, offending values). */
const char *sd_backup_writer_errmsg(const struct sd_backup_writer *w);
void sd_backup_writer_free(struct sd_backup_writer *w);

/* ---- native reader ---- */

struct sd_backup_reader;

/*
 * Reads and checks the header of a native stream on fd. prefix holds bytes
 * the caller already read from fd (for sd_backup_detect()); they are taken
 * as the start of the stream. On failure *out is NULL and, when errmsg is
 * not NULL, the detailed text is copied there (errmsg_len bytes at most).
 */
enum sd_backup_err sd_backup_reader_open(int fd, const void *prefix,
					 size_t prefix_len,
					 struct sd_backup_reader **out,
					 char *errmsg, size_t errmsg_len);
const struct sd_backup_header *
sd_backup_reader_header(const struct sd_backup_reader *r);
/*
 * The next record, its checksum checked. After the last one it checks the
 * trailer and the whole-stream checksum, and returns SD_BACKUP_OK with
 * rec->type == SD_BACKUP_REC_END: only then is the stream known good.
 */
enum sd_backup_err sd_backup_reader_next(struct sd_backup_reader *r,
					 struct sd_backup_record *rec);
const char *sd_backup_reader_errmsg(const struct sd_backup_reader *r);
void sd_backup_reader_free(struct sd_backup_reader *r);

/* ---- upstream v1 stream ---- */

struct sd_backup_v1_writer;

/*
 * obj_size (a multiple of 512, at most 2^31) bounds the records; errmsg as
 * for sd_backup_writer_open().
 */
enum sd_backup_err sd_backup_v1_writer_open(int fd, uint64_t obj_size,
					    struct sd_backup_v1_writer **out,
					    char *errmsg, size_t errmsg_len);
enum sd_backup_err sd_backup_v1_write(struct sd_backup_v1_writer *w,
				      uint32_t idx, uint32_t offset,
				      uint32_t length, const void *data);
/* Writes the end marker and flushes. */
enum sd_backup_err sd_backup_v1_writer_finish(struct sd_backup_v1_writer *w);
const char *sd_backup_v1_writer_errmsg(const struct sd_backup_v1_writer *w);
void sd_backup_v1_writer_free(struct sd_backup_v1_writer *w);

struct sd_backup_v1_reader;

/* As sd_backup_reader_open(); records must lie inside obj_size bytes. */
enum sd_backup_err sd_backup_v1_reader_open(int fd, const void *prefix,
					    size_t prefix_len,
					    uint64_t obj_size,
					    struct sd_backup_v1_reader **out,
					    char *errmsg, size_t errmsg_len);
/* Data records, then SD_BACKUP_OK with type SD_BACKUP_REC_END. */
enum sd_backup_err sd_backup_v1_reader_next(struct sd_backup_v1_reader *r,
					    struct sd_backup_record *rec);
const char *sd_backup_v1_reader_errmsg(const struct sd_backup_v1_reader *r);
void sd_backup_v1_reader_free(struct sd_backup_v1_reader *r);

/* ---- diffing one object ---- */

/*
 * Upstream's rule: trim identical 512-byte sectors from the front, then the
 * back, of old and new (NULL reads as zeros). Returns 1 and the range left,
 * 0 when nothing changed, -EINVAL when obj_size is not a positive multiple
 * of 512.
 */
int sd_backup_v1_diff(const void *old, const void *new, uint32_t obj_size,
		      uint32_t *offset, uint32_t *length);

struct sd_backup_extent {
	uint32_t offset;
	uint32_t length;
	bool zero; /* new content is all zeros here: write a zero range */
};

/* Enough extents for any diff of an object of this size. */
#define SD_BACKUP_DIFF_MAX(obj_size) ((obj_size) / SD_BACKUP_SECTOR)

/*
 * The changed 512-byte sectors between old and new (NULL reads as zeros),
 * as sorted, disjoint extents. Changed runs less than gap bytes apart are
 * merged, since a record costs more than a few unchanged sectors. Inside a
 * run, all-zero spans of at least gap bytes (or the whole run) come out as
 * zero extents. Returns the number of extents, -EINVAL for a bad obj_size,
 * -ENOSPC when max is too small.
 */
int sd_backup_diff(const void *old, const void *new, uint32_t obj_size,
		   uint32_t gap, struct sd_backup_extent *ext, size_t max);

#endif
