/*
 * VDI attributes (spec 4.7): GET_VDI_ATTR finds, creates, overwrites or
 * deletes the attribute object of a (VDI name, tag, snap_id, key). The
 * object's id is bit 61 | hash(name) << 32 | attr_id, attr_id being chained
 * FNV-1a over the fixed-size fields; collisions probe attr_id + 1 onward
 * until a slot holds the same key or no object exists there. A deleted
 * attribute leaves a tombstone (name[0] = 0) that probing passes over.
 *
 * It runs as the work phase of a cluster op, so it is ordered with VDI
 * creation and deletion; there is no main phase, since no node keeps any
 * attribute state in memory. Reading the value is the client's business.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheep.h"
#include "sheepdog/hash.h"
#include "sheepdog/le.h"

/* Offsets inside sheepdog_vdi_attr (spec 4.7) */
#define ATTR_OFF_NAME 0
#define ATTR_OFF_TAG 256
#define ATTR_OFF_CTIME 512
#define ATTR_OFF_SNAP_ID 520
#define ATTR_OFF_VALUE_LEN 524
#define ATTR_OFF_KEY 528
#define ATTR_OFF_VALUE 784
#define ATTR_HDR_SIZE ATTR_OFF_VALUE

/* A request's attribute after validation: fixed fields NUL-padded. */
struct vdi_attr_req {
	char name[SD_MAX_VDI_LEN];
	char tag[SD_MAX_VDI_TAG_LEN];
	uint32_t snap_id;
	char key[SD_MAX_VDI_ATTR_KEY_LEN];
	uint32_t value_len;
	const uint8_t *value; /* value_len bytes inside the payload */
};

/* Copy a fixed string field that must hold a NUL, zeroing after it. */
static bool take_fixed_str(char *dst, const uint8_t *src, size_t len)
{
	const uint8_t *nul = memchr(src, 0, len);

	if (!nul)
		return false;
	memset(dst, 0, len);
	memcpy(dst, src, nul - src);
	return true;
}

/*
 * Check everything the client sent before anything else looks at it. The
 * payload must hold at least the header; a create must also carry the
 * value_len bytes it announces.
 */
static int attr_parse(const struct request *req, struct vdi_attr_req *a)
{
	const uint8_t *p = req->data;
	uint32_t len = req->rq.data_length;
	bool create = req->rq.flags & SD_FLAG_CMD_CREAT;

	if (len < ATTR_HDR_SIZE || len > SD_ATTR_OBJ_SIZE) {
		sd_err("GET_VDI_ATTR: payload of %" PRIu32
		       " bytes, expected %d to %d",
		       len, ATTR_HDR_SIZE, SD_ATTR_OBJ_SIZE);
		return SD_RES_INVALID_PARMS;
	}
	if (!take_fixed_str(a->name, p + ATTR_OFF_NAME, SD_MAX_VDI_LEN) ||
	    !take_fixed_str(a->tag, p + ATTR_OFF_TAG, SD_MAX_VDI_TAG_LEN) ||
	    !take_fixed_str(a->key, p + ATTR_OFF_KEY,
			    SD_MAX_VDI_ATTR_KEY_LEN)) {
		sd_err("GET_VDI_ATTR: name, tag or key is not NUL-terminated");
		return SD_RES_INVALID_PARMS;
	}
	if (!a->name[0] || !a->key[0]) {
		sd_err("GET_VDI_ATTR: empty VDI name or key");
		return SD_RES_INVALID_PARMS;
	}
	a->snap_id = get_le32(p + ATTR_OFF_SNAP_ID);
	a->value_len = get_le32(p + ATTR_OFF_VALUE_LEN);
	a->value = p + ATTR_OFF_VALUE;
	if (create && (a->value_len > SD_MAX_VDI_ATTR_VALUE_LEN ||
		       a->value_len > len - ATTR_HDR_SIZE)) {
		sd_err("GET_VDI_ATTR: VDI %s key %s: value of %" PRIu32
		       " bytes in a %" PRIu32 "-byte payload",
		       a->name, a->key, a->value_len, len);
		return SD_RES_INVALID_PARMS;
	}
	if ((req->rq.flags & SD_FLAG_CMD_DEL) && create) {
		sd_err("GET_VDI_ATTR: VDI %s key %s: create and delete at once",
		       a->name, a->key);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

/* Chained FNV-1a over name, tag, snap_id (LE) and key; low 32 bits. */
static uint32_t attr_id_of(const struct vdi_attr_req *a)
{
	uint8_t snap[4];
	uint64_t h = FNV1A_64_INIT;

	put_le32(snap, a->snap_id);
	h = fnv_64a_buf(a->name, sizeof(a->name), h);
	h = fnv_64a_buf(a->tag, sizeof(a->tag), h);
	h = fnv_64a_buf(snap, sizeof(snap), h);
	h = fnv_64a_buf(a->key, sizeof(a->key), h);
	return (uint32_t)h;
}

static bool attr_matches(const uint8_t *hdr, const struct vdi_attr_req *a)
{
	return !strncmp((const char *)hdr + ATTR_OFF_NAME, a->name,
			SD_MAX_VDI_LEN) &&
	       !strncmp((const char *)hdr + ATTR_OFF_TAG, a->tag,
			SD_MAX_VDI_TAG_LEN) &&
	       get_le32(hdr + ATTR_OFF_SNAP_ID) == a->snap_id &&
	       !strncmp((const char *)hdr + ATTR_OFF_KEY, a->key,
			SD_MAX_VDI_ATTR_KEY_LEN);
}

/* The whole object as it is stored: header, then the value, zero padded. */
static uint8_t *attr_encode(const struct vdi_attr_req *a, uint64_t ctime)
{
	uint8_t *buf = xzalloc(SD_ATTR_OBJ_SIZE);

	memcpy(buf + ATTR_OFF_NAME, a->name, sizeof(a->name));
	memcpy(buf + ATTR_OFF_TAG, a->tag, sizeof(a->tag));
	put_le64(buf + ATTR_OFF_CTIME, ctime);
	put_le32(buf + ATTR_OFF_SNAP_ID, a->snap_id);
	put_le32(buf + ATTR_OFF_VALUE_LEN, a->value_len);
	memcpy(buf + ATTR_OFF_KEY, a->key, sizeof(a->key));
	memcpy(buf + ATTR_OFF_VALUE, a->value, a->value_len);
	return buf;
}

/*
 * Probe from attr_id for the attribute's slot. Attribute objects take their
 * copy count from the VDI state of the name's hash (copies 0 below), the
 * same rule the gateway and recovery apply to them.
 */
static int attr_find_or_update(const struct request *req,
			       const struct vdi_attr_req *a, uint32_t hvid,
			       uint64_t ctime, uint32_t *attr_id)
{
	uint16_t flags = req->rq.flags;
	uint32_t start = attr_id_of(a), id = start;
	uint8_t hdr[ATTR_HDR_SIZE];

	do {
		uint64_t oid = vid_to_attr_oid(hvid, id);
		int ret = sd_read_object(oid, hdr, sizeof(hdr), 0);
		uint8_t *obj;

		*attr_id = id;
		if (ret == SD_RES_NO_OBJ) {
			if (!(flags & SD_FLAG_CMD_CREAT))
				return SD_RES_NO_OBJ;
			obj = attr_encode(a, ctime);
			ret = sd_write_object(oid, obj, SD_ATTR_OBJ_SIZE, 0,
					      true, 0);
			free(obj);
			return ret;
		}
		if (ret != SD_RES_SUCCESS) {
			sd_err("VDI %s key %s: cannot read attribute %016" PRIx64
			       ": %s",
			       a->name, a->key, oid, sd_strerror(ret));
			return ret;
		}
		if (attr_matches(hdr, a)) {
			if (flags & SD_FLAG_CMD_EXCL)
				return SD_RES_VDI_EXIST;
			if (flags & SD_FLAG_CMD_DEL)
				/* a tombstone: the name no longer matches */
				return sd_write_object(oid, "", 1,
						       ATTR_OFF_NAME, false, 0);
			if (!(flags & SD_FLAG_CMD_CREAT))
				return SD_RES_SUCCESS;
			obj = attr_encode(a, ctime);
			ret = sd_write_object(oid, obj, SD_ATTR_OBJ_SIZE, 0,
					      false, 0);
			free(obj);
			return ret;
		}
		id++;
	} while (id != start);
	return SD_RES_FULL_VDI;
}

int vdi_attr_work(struct request *req)
{
	struct vdi_attr_req a;
	struct sd_inode_header inode;
	uint32_t vid, hvid, attr_id = 0;
	int ret = attr_parse(req, &a);

	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = vdi_lookup_by_name(a.name, a.tag, req->rq.vdi.snapid, &vid,
				 &inode);
	if (ret != SD_RES_SUCCESS)
		return ret;
	hvid = sd_vdi_hash(a.name);
	ret = attr_find_or_update(req, &a, hvid, inode.create_time, &attr_id);
	if (ret != SD_RES_SUCCESS)
		return ret;
	req->rp.vdi.vdi_id = hvid;
	req->rp.vdi.attr_id = attr_id;
	req->rp.vdi.copies = get_obj_copies(vid_to_attr_oid(hvid, attr_id));
	return SD_RES_SUCCESS;
}
