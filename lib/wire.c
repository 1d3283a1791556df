/*
 * The 48-byte request and response headers of the wire protocol (spec 1.2,
 * 1.3, 2.2). One table row per opcode names it and says which union variant
 * its request and response headers use; the encoders and decoders below move
 * every field explicitly in little-endian order and zero the bytes a variant
 * does not define. Opcodes without a known variant keep their 32 (or 28)
 * opcode-specific bytes verbatim so that a decode/encode round trip is exact.
 */
#include <string.h>

#include "sheepdog/le.h"
#include "sheepdog/proto.h"

struct sd_op_desc {
	const char *name;
	enum sd_req_variant req;
	enum sd_rsp_variant rsp;
};

/* clang-format off */
#define OP(code, n, rq, rs) [SD_OP_##code] = { n, SD_REQ_##rq, SD_RSP_##rs }

static const struct sd_op_desc sd_ops[256] = {
	OP(CREATE_AND_WRITE_OBJ, "CREATE_AND_WRITE_OBJ", OBJ, OBJ),
	OP(READ_OBJ, "READ_OBJ", OBJ, OBJ),
	OP(WRITE_OBJ, "WRITE_OBJ", OBJ, OBJ),
	OP(REMOVE_OBJ, "REMOVE_OBJ", OBJ, OBJ),
	OP(DISCARD_OBJ, "DISCARD_OBJ", OBJ, OBJ),
	OP(NEW_VDI, "NEW_VDI", VDI, VDI),
	OP(LOCK_VDI, "LOCK_VDI", VDI, VDI),
	OP(RELEASE_VDI, "RELEASE_VDI", VDI, VDI),
	OP(GET_VDI_INFO, "GET_VDI_INFO", VDI, VDI),
	OP(READ_VDIS, "READ_VDIS", RAW, RAW),
	OP(FLUSH_VDI, "FLUSH_VDI", OBJ, OBJ),
	OP(DEL_VDI, "DEL_VDI", VDI, VDI),
	OP(GET_CLUSTER_DEFAULT, "GET_CLUSTER_DEFAULT", CLUSTER, CLUSTER_DEFAULT),
	OP(GET_NODE_LIST, "GET_NODE_LIST", RAW, NODE),
	OP(MAKE_FS, "MAKE_FS", CLUSTER, RAW),
	OP(SHUTDOWN, "SHUTDOWN", CLUSTER, RAW),
	OP(STAT_SHEEP, "STAT_SHEEP", RAW, NODE),
	OP(STAT_CLUSTER, "STAT_CLUSTER", CLUSTER, RAW),
	OP(GET_VDI_ATTR, "GET_VDI_ATTR", VDI, VDI),
	OP(FORCE_RECOVER, "FORCE_RECOVER", RAW, RAW),
	OP(GET_STORE_LIST, "GET_STORE_LIST", RAW, RAW),
	OP(SNAPSHOT, "SNAPSHOT", RAW, RAW),
	OP(RESTORE, "RESTORE", RAW, RAW),
	OP(GET_SNAP_FILE, "GET_SNAP_FILE", RAW, RAW),
	OP(CLEANUP, "CLEANUP", RAW, RAW),
	OP(TRACE_STATUS, "TRACE_STATUS", RAW, RAW),
	OP(TRACE_READ_BUF, "TRACE_READ_BUF", RAW, RAW),
	OP(STAT_RECOVERY, "STAT_RECOVERY", RAW, RAW),
	OP(FLUSH_DEL_CACHE, "FLUSH_DEL_CACHE", RAW, RAW),
	OP(NOTIFY_VDI_DEL, "NOTIFY_VDI_DEL", RAW, RAW),
	OP(KILL_NODE, "KILL_NODE", RAW, RAW),
	OP(TRACE_ENABLE, "TRACE_ENABLE", RAW, RAW),
	OP(TRACE_DISABLE, "TRACE_DISABLE", RAW, RAW),
	OP(GET_OBJ_LIST, "GET_OBJ_LIST", OBJ, OBJ),
	OP(GET_EPOCH, "GET_EPOCH", OBJ, OBJ),
	OP(CREATE_AND_WRITE_PEER, "CREATE_AND_WRITE_PEER", OBJ, OBJ),
	OP(READ_PEER, "READ_PEER", OBJ, OBJ),
	OP(WRITE_PEER, "WRITE_PEER", OBJ, OBJ),
	OP(REMOVE_PEER, "REMOVE_PEER", OBJ, OBJ),
	OP(ENABLE_RECOVER, "ENABLE_RECOVER", RAW, RAW),
	OP(DISABLE_RECOVER, "DISABLE_RECOVER", RAW, RAW),
	OP(GET_VDI_COPIES, "GET_VDI_COPIES", RAW, RAW),
	OP(COMPLETE_RECOVERY, "COMPLETE_RECOVERY", OBJ, OBJ),
	OP(FLUSH_NODES, "FLUSH_NODES", RAW, RAW),
	OP(FLUSH_PEER, "FLUSH_PEER", RAW, RAW),
	OP(NOTIFY_VDI_ADD, "NOTIFY_VDI_ADD", VDI_STATE, RAW),
	OP(DELETE_CACHE, "DELETE_CACHE", RAW, RAW),
	OP(MD_INFO, "MD_INFO", RAW, RAW),
	OP(MD_PLUG, "MD_PLUG", RAW, RAW),
	OP(MD_UNPLUG, "MD_UNPLUG", RAW, RAW),
	OP(GET_HASH, "GET_HASH", OBJ, HASH),
	OP(REWEIGHT, "REWEIGHT", RAW, RAW),
	OP(STAT, "STAT", RAW, RAW),
	OP(GET_LOGLEVEL, "GET_LOGLEVEL", RAW, RAW),
	OP(SET_LOGLEVEL, "SET_LOGLEVEL", RAW, RAW),
	OP(EXIST, "EXIST", OBJ, OBJ),
	OP(CLUSTER_INFO, "CLUSTER_INFO", RAW, RAW),
	OP(ALTER_CLUSTER_COPY, "ALTER_CLUSTER_COPY", CLUSTER, RAW),
	OP(ALTER_VDI_COPY, "ALTER_VDI_COPY", VDI_STATE, RAW),
	OP(DECREF_OBJ, "DECREF_OBJ", REF, RAW),
	OP(DECREF_PEER, "DECREF_PEER", REF, RAW),
	OP(REPAIR_REPLICA, "REPAIR_REPLICA", FORW, RAW),
	OP(OIDS_EXIST, "OIDS_EXIST", OBJ, OBJ),
	OP(VDI_STATE_CHECKPOINT_CTL, "VDI_STATE_CHECKPOINT_CTL", CHECKPOINT, RAW),
	OP(INODE_COHERENCE, "INODE_COHERENCE", COHERENCE, RAW),
	OP(READ_DEL_VDIS, "READ_DEL_VDIS", RAW, RAW),
	OP(GET_RECOVERY, "GET_RECOVERY", RAW, RAW),
	OP(SET_RECOVERY, "SET_RECOVERY", RAW, RAW),
	OP(SET_VNODES, "SET_VNODES", RAW, RAW),
	OP(GET_VNODES, "GET_VNODES", RAW, RAW),
	OP(VDI_STATE_PEER, "VDI_STATE_PEER", VDI, RAW),
};

#undef OP
/* clang-format on */

enum sd_req_variant sd_op_req_variant(uint8_t opcode)
{
	return sd_ops[opcode].req;
}

enum sd_rsp_variant sd_op_rsp_variant(uint8_t opcode)
{
	return sd_ops[opcode].rsp;
}

const char *sd_op_name(uint8_t opcode)
{
	return sd_ops[opcode].name;
}

void sd_init_req(struct sd_req *req, uint8_t opcode)
{
	memset(req, 0, sizeof(*req));
	req->opcode = opcode;
	req->proto_ver = opcode < 0x80 ? SD_PROTO_VER : SD_SHEEP_PROTO_VER;
}

void sd_req_encode(const struct sd_req *req, uint8_t buf[SD_HEADER_SIZE])
{
	uint8_t *v = buf + 16;

	memset(buf, 0, SD_HEADER_SIZE);
	buf[0] = req->proto_ver;
	buf[1] = req->opcode;
	put_le16(buf + 2, req->flags);
	put_le32(buf + 4, req->epoch);
	put_le32(buf + 8, req->id);
	put_le32(buf + 12, req->data_length);

	switch (sd_op_req_variant(req->opcode)) {
	case SD_REQ_OBJ:
		put_le64(v + 0, req->obj.oid);
		put_le64(v + 8, req->obj.cow_oid);
		v[16] = req->obj.copies;
		v[17] = req->obj.copy_policy;
		v[18] = req->obj.ec_index;
		put_le32(v + 20, req->obj.tgt_epoch);
		put_le64(v + 24, req->obj.offset);
		break;
	case SD_REQ_VDI:
		put_le64(v + 0, req->vdi.vdi_size);
		put_le32(v + 8, req->vdi.base_vdi_id);
		v[12] = req->vdi.copies;
		v[13] = req->vdi.copy_policy;
		v[14] = req->vdi.store_policy;
		v[15] = req->vdi.block_size_shift;
		put_le32(v + 16, req->vdi.snapid);
		put_le32(v + 20, req->vdi.type);
		break;
	case SD_REQ_CLUSTER:
		put_le64(v + 0, req->cluster.oid);
		put_le64(v + 8, req->cluster.ctime);
		v[16] = req->cluster.copies;
		v[17] = req->cluster.copy_policy;
		put_le16(v + 18, req->cluster.flags);
		put_le32(v + 20, req->cluster.tag);
		put_le32(v + 24, req->cluster.nodes_nr);
		v[28] = req->cluster.block_size_shift;
		break;
	case SD_REQ_VDI_STATE:
		put_le32(v + 0, req->vdi_state.old_vid);
		put_le32(v + 4, req->vdi_state.new_vid);
		v[8] = req->vdi_state.copies;
		v[9] = req->vdi_state.set_bitmap;
		v[10] = req->vdi_state.copy_policy;
		v[11] = req->vdi_state.block_size_shift;
		break;
	case SD_REQ_REF:
		put_le64(v + 0, req->ref.oid);
		put_le32(v + 8, req->ref.generation);
		put_le32(v + 12, req->ref.count);
		break;
	case SD_REQ_FORW:
		put_le64(v + 0, req->forw.oid);
		memcpy(v + 8, req->forw.addr, 16);
		put_le16(v + 24, req->forw.port);
		break;
	case SD_REQ_CHECKPOINT:
		put_le32(v + 0, req->checkpoint.get);
		put_le32(v + 4, req->checkpoint.tgt_epoch);
		put_le32(v + 8, req->checkpoint.vid);
		break;
	case SD_REQ_COHERENCE:
		put_le32(v + 0, req->coherence.vid);
		put_le32(v + 4, req->coherence.validate);
		break;
	case SD_REQ_RAW:
		memcpy(v, req->raw, sizeof(req->raw));
		break;
	}
}

void sd_req_decode(const uint8_t buf[SD_HEADER_SIZE], struct sd_req *req)
{
	const uint8_t *v = buf + 16;

	memset(req, 0, sizeof(*req));
	req->proto_ver = buf[0];
	req->opcode = buf[1];
	req->flags = get_le16(buf + 2);
	req->epoch = get_le32(buf + 4);
	req->id = get_le32(buf + 8);
	req->data_length = get_le32(buf + 12);

	switch (sd_op_req_variant(req->opcode)) {
	case SD_REQ_OBJ:
		req->obj.oid = get_le64(v + 0);
		req->obj.cow_oid = get_le64(v + 8);
		req->obj.copies = v[16];
		req->obj.copy_policy = v[17];
		req->obj.ec_index = v[18];
		req->obj.tgt_epoch = get_le32(v + 20);
		req->obj.offset = get_le64(v + 24);
		break;
	case SD_REQ_VDI:
		req->vdi.vdi_size = get_le64(v + 0);
		req->vdi.base_vdi_id = get_le32(v + 8);
		req->vdi.copies = v[12];
		req->vdi.copy_policy = v[13];
		req->vdi.store_policy = v[14];
		req->vdi.block_size_shift = v[15];
		req->vdi.snapid = get_le32(v + 16);
		req->vdi.type = get_le32(v + 20);
		break;
	case SD_REQ_CLUSTER:
		req->cluster.oid = get_le64(v + 0);
		req->cluster.ctime = get_le64(v + 8);
		req->cluster.copies = v[16];
		req->cluster.copy_policy = v[17];
		req->cluster.flags = get_le16(v + 18);
		req->cluster.tag = get_le32(v + 20);
		req->cluster.nodes_nr = get_le32(v + 24);
		req->cluster.block_size_shift = v[28];
		break;
	case SD_REQ_VDI_STATE:
		req->vdi_state.old_vid = get_le32(v + 0);
		req->vdi_state.new_vid = get_le32(v + 4);
		req->vdi_state.copies = v[8];
		req->vdi_state.set_bitmap = v[9];
		req->vdi_state.copy_policy = v[10];
		req->vdi_state.block_size_shift = v[11];
		break;
	case SD_REQ_REF:
		req->ref.oid = get_le64(v + 0);
		req->ref.generation = get_le32(v + 8);
		req->ref.count = get_le32(v + 12);
		break;
	case SD_REQ_FORW:
		req->forw.oid = get_le64(v + 0);
		memcpy(req->forw.addr, v + 8, 16);
		req->forw.port = get_le16(v + 24);
		break;
	case SD_REQ_CHECKPOINT:
		req->checkpoint.get = get_le32(v + 0);
		req->checkpoint.tgt_epoch = get_le32(v + 4);
		req->checkpoint.vid = get_le32(v + 8);
		break;
	case SD_REQ_COHERENCE:
		req->coherence.vid = get_le32(v + 0);
		req->coherence.validate = get_le32(v + 4);
		break;
	case SD_REQ_RAW:
		memcpy(req->raw, v, sizeof(req->raw));
		break;
	}
}

void sd_rsp_encode(const struct sd_rsp *rsp, uint8_t buf[SD_HEADER_SIZE])
{
	uint8_t *v = buf + 20;

	memset(buf, 0, SD_HEADER_SIZE);
	buf[0] = rsp->proto_ver;
	buf[1] = rsp->opcode;
	put_le16(buf + 2, rsp->flags);
	put_le32(buf + 4, rsp->epoch);
	put_le32(buf + 8, rsp->id);
	put_le32(buf + 12, rsp->data_length);
	put_le32(buf + 16, rsp->result);

	/* offsets below are relative to byte 20 */
	switch (sd_op_rsp_variant(rsp->opcode)) {
	case SD_RSP_OBJ:
		v[0] = rsp->obj.copies;
		put_le64(v + 4, rsp->obj.offset);
		break;
	case SD_RSP_VDI:
		put_le32(v + 0, rsp->vdi.rsvd);
		put_le32(v + 4, rsp->vdi.vdi_id);
		put_le32(v + 8, rsp->vdi.attr_id);
		v[12] = rsp->vdi.copies;
		v[13] = rsp->vdi.block_size_shift;
		break;
	case SD_RSP_NODE:
		put_le32(v + 0, rsp->node.nr_nodes);
		put_le64(v + 12, rsp->node.store_size);
		put_le64(v + 20, rsp->node.store_free);
		break;
	case SD_RSP_HASH:
		memcpy(v + 4, rsp->hash.digest, sizeof(rsp->hash.digest));
		break;
	case SD_RSP_CLUSTER_DEFAULT:
		v[0] = rsp->cluster_default.nr_copies;
		v[1] = rsp->cluster_default.copy_policy;
		v[2] = rsp->cluster_default.block_size_shift;
		break;
	case SD_RSP_RAW:
		memcpy(v, rsp->raw, sizeof(rsp->raw));
		break;
	}
}

void sd_rsp_decode(const uint8_t buf[SD_HEADER_SIZE], struct sd_rsp *rsp)
{
	const uint8_t *v = buf + 20;

	memset(rsp, 0, sizeof(*rsp));
	rsp->proto_ver = buf[0];
	rsp->opcode = buf[1];
	rsp->flags = get_le16(buf + 2);
	rsp->epoch = get_le32(buf + 4);
	rsp->id = get_le32(buf + 8);
	rsp->data_length = get_le32(buf + 12);
	rsp->result = get_le32(buf + 16);

	switch (sd_op_rsp_variant(rsp->opcode)) {
	case SD_RSP_OBJ:
		rsp->obj.copies = v[0];
		rsp->obj.offset = get_le64(v + 4);
		break;
	case SD_RSP_VDI:
		rsp->vdi.rsvd = get_le32(v + 0);
		rsp->vdi.vdi_id = get_le32(v + 4);
		rsp->vdi.attr_id = get_le32(v + 8);
		rsp->vdi.copies = v[12];
		rsp->vdi.block_size_shift = v[13];
		break;
	case SD_RSP_NODE:
		rsp->node.nr_nodes = get_le32(v + 0);
		rsp->node.store_size = get_le64(v + 12);
		rsp->node.store_free = get_le64(v + 20);
		break;
	case SD_RSP_HASH:
		memcpy(rsp->hash.digest, v + 4, sizeof(rsp->hash.digest));
		break;
	case SD_RSP_CLUSTER_DEFAULT:
		rsp->cluster_default.nr_copies = v[0];
		rsp->cluster_default.copy_policy = v[1];
		rsp->cluster_default.block_size_shift = v[2];
		break;
	case SD_RSP_RAW:
		memcpy(rsp->raw, v, sizeof(rsp->raw));
		break;
	}
}
