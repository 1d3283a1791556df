/*
 * The native stream's layout, private to backup/: encoding and decoding of
 * the header, and the checks that the writer applies to what it is given
 * and the reader to what it receives, so that both refuse the same things.
 */
#ifndef SD_BACKUP_NATIVE_H
#define SD_BACKUP_NATIVE_H

#include <stdint.h>

#include <xxhash.h>

#include "sheepdog/backup.h"

/* Writes all SD_BACKUP_HEADER_SIZE bytes, checksum included. */
void native_header_encode(const struct sd_backup_header *h, uint8_t *buf);
/*
 * Decodes the fields once the caller has checked magic, version and
 * checksum; NULL, or why bytes that have no field are wrong.
 */
const char *native_header_decode(const uint8_t *buf,
				 struct sd_backup_header *h);
/* NULL when the header is acceptable, else why not. */
const char *native_header_check(const struct sd_backup_header *h);
/* NULL when the record fits the header's VDI, else why not. */
const char *native_record_check(const struct sd_backup_header *h, uint32_t type,
				uint32_t idx, uint32_t offset, uint32_t length);
void native_record_encode(uint8_t *buf, uint32_t type, uint32_t idx,
			  uint32_t offset, uint32_t length);
/* XXH64 of a record header and its payload (NULL for a zero range). */
uint64_t native_record_sum(XXH64_state_t *st, const uint8_t *hdr,
			   const void *data, uint32_t length);

#endif
