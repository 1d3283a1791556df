/*
 * Layout of the native backup stream (documented in sheepdog/backup.h):
 * header encoding and the field checks that writer and reader share. The
 * checks bound every size the reader will later trust, chiefly the object
 * size (at most 2^31) that caps a record's length.
 */
#include <string.h>

#include <xxhash.h>

#include "sheepdog/layout.h"
#include "sheepdog/le.h"
#include "native.h"

#define OFF_NAME 16
#define OFF_VDI_ID 272
#define OFF_VDI_SIZE 276
#define OFF_SHIFT 284
#define OFF_COPIES 285
#define OFF_POLICY 286
#define OFF_RESERVED 287
#define OFF_FLAGS 288
#define OFF_FROM 292
#define OFF_TO 560
#define OFF_NR_OBJECTS 828
#define OFF_SUM 832
#define SNAP_SIZE (4 + SD_BACKUP_TAG_LEN + 8)

/* Copies a string field NUL-padded, so no stale bytes reach the stream. */
static void put_str(uint8_t *p, const char *s, size_t size)
{
	size_t n = strnlen(s, size);

	memcpy(p, s, n);
	memset(p + n, 0, size - n);
}

static void put_snap(uint8_t *p, const struct sd_backup_snap *s)
{
	put_le32(p, s->id);
	put_str(p + 4, s->tag, SD_BACKUP_TAG_LEN);
	put_le64(p + 4 + SD_BACKUP_TAG_LEN, s->ctime);
}

static void get_snap(const uint8_t *p, struct sd_backup_snap *s)
{
	s->id = get_le32(p);
	memcpy(s->tag, p + 4, SD_BACKUP_TAG_LEN);
	s->ctime = get_le64(p + 4 + SD_BACKUP_TAG_LEN);
}

void native_header_encode(const struct sd_backup_header *h, uint8_t *buf)
{
	memcpy(buf, SD_BACKUP_MAGIC, SD_BACKUP_MAGIC_LEN);
	put_le32(buf + 8, SD_BACKUP_VERSION);
	put_le32(buf + 12, SD_BACKUP_HEADER_SIZE);
	put_str(buf + OFF_NAME, h->name, sizeof(h->name));
	put_le32(buf + OFF_VDI_ID, h->vdi_id);
	put_le64(buf + OFF_VDI_SIZE, h->vdi_size);
	buf[OFF_SHIFT] = h->block_size_shift;
	buf[OFF_COPIES] = h->copies;
	buf[OFF_POLICY] = h->copy_policy;
	buf[OFF_RESERVED] = 0;
	put_le32(buf + OFF_FLAGS, h->flags);
	put_snap(buf + OFF_FROM, &h->from);
	put_snap(buf + OFF_TO, &h->to);
	put_le32(buf + OFF_NR_OBJECTS, h->nr_objects);
	put_le64(buf + OFF_SUM, XXH64(buf, OFF_SUM, 0));
}

const char *native_header_decode(const uint8_t *buf, struct sd_backup_header *h)
{
	memset(h, 0, sizeof(*h));
	memcpy(h->name, buf + OFF_NAME, sizeof(h->name));
	h->vdi_id = get_le32(buf + OFF_VDI_ID);
	h->vdi_size = get_le64(buf + OFF_VDI_SIZE);
	h->block_size_shift = buf[OFF_SHIFT];
	h->copies = buf[OFF_COPIES];
	h->copy_policy = buf[OFF_POLICY];
	h->flags = get_le32(buf + OFF_FLAGS);
	get_snap(buf + OFF_FROM, &h->from);
	get_snap(buf + OFF_TO, &h->to);
	h->nr_objects = get_le32(buf + OFF_NR_OBJECTS);
	return buf[OFF_RESERVED] ? "reserved byte is not zero" : NULL;
}

static bool snap_is_zero(const struct sd_backup_snap *s)
{
	static const struct sd_backup_snap zero;

	return s->id == 0 && s->ctime == 0 &&
	       memcmp(s->tag, zero.tag, sizeof(s->tag)) == 0;
}

const char *native_header_check(const struct sd_backup_header *h)
{
	if (h->name[sizeof(h->name) - 1] ||
	    h->from.tag[SD_BACKUP_TAG_LEN - 1] ||
	    h->to.tag[SD_BACKUP_TAG_LEN - 1])
		return "a name or tag is not NUL-terminated";
	if (h->vdi_id >= SD_NR_VDIS)
		return "VDI id is not below 2^24";
	if (h->block_size_shift < SD_MIN_BLOCK_SIZE_SHIFT ||
	    h->block_size_shift > SD_MAX_BLOCK_SIZE_SHIFT)
		return "block_size_shift is outside 20..31";
	if (h->copies > SD_MAX_COPIES)
		return "copies is above 31";
	if (h->flags & ~SD_BACKUP_FLAG_INCREMENTAL)
		return "unknown flags or reserved bits set";
	if (h->vdi_size > inode_max_size(h->block_size_shift))
		return "VDI size is above what an inode can address";
	if (h->nr_objects != inode_nr_slots(h->vdi_size, h->block_size_shift))
		return "number of objects does not match the VDI size";
	if (!(h->flags & SD_BACKUP_FLAG_INCREMENTAL) && !snap_is_zero(&h->from))
		return "a full backup names a from snapshot";
	return NULL;
}

const char *native_record_check(const struct sd_backup_header *h, uint32_t type,
				uint32_t idx, uint32_t offset, uint32_t length)
{
	uint64_t obj_size = UINT64_C(1) << h->block_size_shift;

	if (type != SD_BACKUP_REC_DATA && type != SD_BACKUP_REC_ZERO)
		return "unknown record type";
	if (idx >= h->nr_objects)
		return "object index beyond the VDI";
	if (length == 0)
		return "empty record";
	if ((uint64_t)offset + length > obj_size)
		return "range beyond the object";
	return NULL;
}

void native_record_encode(uint8_t *buf, uint32_t type, uint32_t idx,
			  uint32_t offset, uint32_t length)
{
	put_le32(buf, type);
	put_le32(buf + 4, idx);
	put_le32(buf + 8, offset);
	put_le32(buf + 12, length);
}

uint64_t native_record_sum(XXH64_state_t *st, const uint8_t *hdr,
			   const void *data, uint32_t length)
{
	XXH64_reset(st, 0);
	XXH64_update(st, hdr, SD_BACKUP_RECORD_HDR_SIZE);
	if (data)
		XXH64_update(st, data, length);
	return XXH64_digest(st);
}
