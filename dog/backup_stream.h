/*
 * dog's side of backup streams (backup_stream.c): a reader over both
 * formats and the verification pass, shared by vdi restore (vdi_backup.c)
 * and "dog backup verify|show".
 */
#ifndef DOG_BACKUP_STREAM_H
#define DOG_BACKUP_STREAM_H

#include <stdint.h>

#include "sheepdog/backup.h"

struct progress;

/* A native or v1 stream being read. */
struct bs_reader {
	enum sd_backup_format fmt;
	struct sd_backup_header hdr; /* native only */
	struct sd_backup_reader *native;
	struct sd_backup_v1_reader *v1;
	char errmsg[512];
};

/*
 * Detect the format from the first bytes on fd and open its reader; a v1
 * stream's records must fit v1_obj_size. SD_BACKUP_OK, or the error with
 * detail in r->errmsg (bs_error()).
 */
enum sd_backup_err bs_open(struct bs_reader *r, int fd, uint64_t v1_obj_size);
/* The next record; SD_BACKUP_REC_END once the whole stream checked out. */
enum sd_backup_err bs_next(struct bs_reader *r, struct sd_backup_record *rec);
void bs_close(struct bs_reader *r);
/* "what went wrong: detail", for messages. */
const char *bs_error(const struct bs_reader *r, enum sd_backup_err err);

/* What a full pass over a stream found. */
struct bs_scan {
	enum sd_backup_format fmt;
	struct sd_backup_header hdr; /* native only */
	uint64_t nr_records;
	uint64_t data_bytes, zero_bytes;
	uint64_t nr_touched_max; /* highest object index + 1 */
	uint64_t stream_bytes;	 /* bytes read from fd, when seekable */
	char error[600];	 /* why the stream is refused */
};

/*
 * Read the whole stream from fd's current position, checking every record
 * and (native) every checksum. 0 when the stream is complete and intact,
 * -1 with s->error set otherwise. prog, when not NULL, advances with the
 * bytes read from a seekable fd.
 */
int bs_scan(int fd, uint64_t v1_obj_size, struct bs_scan *s,
	    struct progress *prog);

#endif
