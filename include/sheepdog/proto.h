/*
 * The sheepdog wire protocol (spec sections 1-3): protocol versions, opcodes,
 * flags, result codes and the 48-byte request and response headers.
 *
 * Headers are decoded into plain C structs by sd_req_decode()/sd_rsp_decode()
 * and encoded by sd_req_encode()/sd_rsp_encode(); which union variant is used
 * follows from the opcode (sd_op_req_variant(), sd_op_rsp_variant()). Nothing
 * outside lib/wire.c ever looks at raw header bytes.
 */
#ifndef SHEEPDOG_PROTO_H
#define SHEEPDOG_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SD_PROTO_VER 0x02       /* public requests */
#define SD_SHEEP_PROTO_VER 0x0a /* internal requests (opcode >= 0x80) */
#define SD_LISTEN_PORT 7000
#define SD_HEADER_SIZE 48

/* Public opcodes */
#define SD_OP_CREATE_AND_WRITE_OBJ 0x01
#define SD_OP_READ_OBJ 0x02
#define SD_OP_WRITE_OBJ 0x03
#define SD_OP_REMOVE_OBJ 0x04
#define SD_OP_DISCARD_OBJ 0x05
#define SD_OP_NEW_VDI 0x11
#define SD_OP_LOCK_VDI 0x12
#define SD_OP_RELEASE_VDI 0x13
#define SD_OP_GET_VDI_INFO 0x14
#define SD_OP_READ_VDIS 0x15
#define SD_OP_FLUSH_VDI 0x16
#define SD_OP_DEL_VDI 0x17
#define SD_OP_GET_CLUSTER_DEFAULT 0x18

/* Internal opcodes */
#define SD_OP_GET_NODE_LIST 0x82
#define SD_OP_MAKE_FS 0x84
#define SD_OP_SHUTDOWN 0x85
#define SD_OP_STAT_SHEEP 0x86
#define SD_OP_STAT_CLUSTER 0x87
#define SD_OP_GET_VDI_ATTR 0x89
#define SD_OP_FORCE_RECOVER 0x8a
#define SD_OP_GET_STORE_LIST 0x90
#define SD_OP_SNAPSHOT 0x91
#define SD_OP_RESTORE 0x92
#define SD_OP_GET_SNAP_FILE 0x93
#define SD_OP_CLEANUP 0x94
#define SD_OP_TRACE_STATUS 0x95
#define SD_OP_TRACE_READ_BUF 0x96
#define SD_OP_STAT_RECOVERY 0x97
#define SD_OP_FLUSH_DEL_CACHE 0x98
#define SD_OP_NOTIFY_VDI_DEL 0x99
#define SD_OP_KILL_NODE 0x9a
#define SD_OP_TRACE_ENABLE 0x9b
#define SD_OP_TRACE_DISABLE 0x9c
#define SD_OP_GET_OBJ_LIST 0xa1
#define SD_OP_GET_EPOCH 0xa2
#define SD_OP_CREATE_AND_WRITE_PEER 0xa3
#define SD_OP_READ_PEER 0xa4
#define SD_OP_WRITE_PEER 0xa5
#define SD_OP_REMOVE_PEER 0xa6
#define SD_OP_ENABLE_RECOVER 0xa8
#define SD_OP_DISABLE_RECOVER 0xa9
#define SD_OP_GET_VDI_COPIES 0xab
#define SD_OP_COMPLETE_RECOVERY 0xac
#define SD_OP_FLUSH_NODES 0xad
#define SD_OP_FLUSH_PEER 0xae
#define SD_OP_NOTIFY_VDI_ADD 0xaf
#define SD_OP_DELETE_CACHE 0xb0
#define SD_OP_MD_INFO 0xb1
#define SD_OP_MD_PLUG 0xb2
#define SD_OP_MD_UNPLUG 0xb3
#define SD_OP_GET_HASH 0xb4
#define SD_OP_REWEIGHT 0xb5
#define SD_OP_STAT 0xb8
#define SD_OP_GET_LOGLEVEL 0xb9
#define SD_OP_SET_LOGLEVEL 0xba
#define SD_OP_EXIST 0xbd
#define SD_OP_CLUSTER_INFO 0xbe
#define SD_OP_ALTER_CLUSTER_COPY 0xbf
#define SD_OP_ALTER_VDI_COPY 0xc0
#define SD_OP_DECREF_OBJ 0xc1
#define SD_OP_DECREF_PEER 0xc2
#define SD_OP_REPAIR_REPLICA 0xc5
#define SD_OP_OIDS_EXIST 0xc6
#define SD_OP_VDI_STATE_CHECKPOINT_CTL 0xc7
#define SD_OP_INODE_COHERENCE 0xc8
#define SD_OP_READ_DEL_VDIS 0xc9
#define SD_OP_GET_RECOVERY 0xca
#define SD_OP_SET_RECOVERY 0xcb
#define SD_OP_SET_VNODES 0xcc
#define SD_OP_GET_VNODES 0xcd
/* Ours, sheep to sheep: has this node applied the snapshot of a vid
 * (vdi.base_vdi_id)? SUCCESS if it has, AGAIN if not yet. */
#define SD_OP_VDI_STATE_PEER 0xd0

/* Request flags */
#define SD_FLAG_CMD_WRITE 0x01
#define SD_FLAG_CMD_COW 0x02
#define SD_FLAG_CMD_CACHE 0x04
#define SD_FLAG_CMD_DIRECT 0x08
#define SD_FLAG_CMD_PIGGYBACK 0x10
#define SD_FLAG_CMD_TGT 0x20
#define SD_FLAG_CMD_FWD 0x40
#define SD_FLAG_CMD_RECOVERY 0x0080
#define SD_FLAG_CMD_WILDCARD 0x0100
#define SD_FLAG_CMD_CREAT 0x0100
#define SD_FLAG_CMD_EXCL 0x0200
#define SD_FLAG_CMD_DEL 0x0400

/* Cluster flags (cluster_info.flags, MAKE_FS cluster.flags) */
#define SD_CLUSTER_FLAG_STRICT 0x0001
#define SD_CLUSTER_FLAG_DISKMODE 0x0002
#define SD_CLUSTER_FLAG_AUTO_VNODES 0x0004
#define SD_CLUSTER_FLAG_USE_LOCK 0x0008
#define SD_CLUSTER_FLAG_RECYCLE_VID 0x0010
#define SD_CLUSTER_FLAG_AVOID_DISKFULL 0x0020

/* Result codes, public */
#define SD_RES_SUCCESS 0x00
#define SD_RES_UNKNOWN 0x01
#define SD_RES_NO_OBJ 0x02
#define SD_RES_EIO 0x03
#define SD_RES_VDI_EXIST 0x04
#define SD_RES_INVALID_PARMS 0x05
#define SD_RES_SYSTEM_ERROR 0x06
#define SD_RES_VDI_LOCKED 0x07
#define SD_RES_NO_VDI 0x08
#define SD_RES_NO_BASE_VDI 0x09
#define SD_RES_VDI_READ 0x0a
#define SD_RES_VDI_WRITE 0x0b
#define SD_RES_BASE_VDI_READ 0x0c
#define SD_RES_BASE_VDI_WRITE 0x0d
#define SD_RES_NO_TAG 0x0e
#define SD_RES_STARTUP 0x0f
#define SD_RES_VDI_NOT_LOCKED 0x10
#define SD_RES_SHUTDOWN 0x11
#define SD_RES_NO_MEM 0x12
#define SD_RES_FULL_VDI 0x13
#define SD_RES_VER_MISMATCH 0x14
#define SD_RES_NO_SPACE 0x15
#define SD_RES_WAIT_FOR_FORMAT 0x16
#define SD_RES_WAIT_FOR_JOIN 0x17
#define SD_RES_JOIN_FAILED 0x18
#define SD_RES_HALT 0x19
#define SD_RES_READONLY 0x1a
#define SD_RES_INODE_INVALIDATED 0x1d
/* Result codes, internal */
#define SD_RES_OLD_NODE_VER 0x81
#define SD_RES_NEW_NODE_VER 0x82
#define SD_RES_NOT_FORMATTED 0x83
#define SD_RES_INVALID_CTIME 0x84
#define SD_RES_INVALID_EPOCH 0x85
#define SD_RES_NETWORK_ERROR 0x86
#define SD_RES_NO_CACHE 0x87
#define SD_RES_BUFFER_SMALL 0x88
#define SD_RES_FORCE_RECOVER 0x89
#define SD_RES_NO_STORE 0x8a
#define SD_RES_NO_SUPPORT 0x8b
#define SD_RES_NODE_IN_RECOVERY 0x8c
#define SD_RES_KILLED 0x8d
#define SD_RES_OID_EXIST 0x8e
#define SD_RES_AGAIN 0x8f
#define SD_RES_STALE_OBJ 0x90
#define SD_RES_CLUSTER_ERROR 0x91
#define SD_RES_VDI_NOT_EMPTY 0x92
#define SD_RES_NOT_FOUND 0x93
#define SD_RES_INCOMPLETE 0x94
#define SD_RES_COLLECTING_CINFO 0x95
#define SD_RES_GATEWAY_MODE 0x97
#define SD_RES_INVALID_VNODES_STRATEGY 0x98
#define SD_RES_NO_CHECKPOINT_ENTRY 0x99

/*
 * Text for a result code, exactly as upstream's tools print it. Codes without
 * text give "Invalid error code <hex>" (lowercase, no 0x); the returned
 * pointer is then to a thread-local buffer.
 */
const char *sd_strerror(uint32_t result);

/* Which union member of the 32 opcode-specific request bytes an opcode uses. */
enum sd_req_variant {
	SD_REQ_RAW = 0, /* unknown opcode: bytes kept as they came */
	SD_REQ_OBJ,
	SD_REQ_VDI,
	SD_REQ_CLUSTER,
	SD_REQ_VDI_STATE,
	SD_REQ_REF,
	SD_REQ_FORW,
	SD_REQ_CHECKPOINT,
	SD_REQ_COHERENCE,
};

enum sd_rsp_variant {
	SD_RSP_RAW = 0,
	SD_RSP_OBJ,
	SD_RSP_VDI,
	SD_RSP_NODE,
	SD_RSP_HASH,
	SD_RSP_CLUSTER_DEFAULT,
};

struct sd_req {
	uint8_t proto_ver;
	uint8_t opcode;
	uint16_t flags;
	uint32_t epoch;
	uint32_t id;
	uint32_t data_length;
	union {
		struct {
			uint64_t oid;
			uint64_t cow_oid;
			uint8_t copies;
			uint8_t copy_policy;
			uint8_t ec_index;
			uint32_t tgt_epoch;
			/* bytes 40..47: u32 offset + pad upstream, u64 in QEMU */
			uint64_t offset;
		} obj;
		struct {
			uint64_t vdi_size;
			uint32_t base_vdi_id;
			uint8_t copies;
			uint8_t copy_policy;
			uint8_t store_policy;
			uint8_t block_size_shift;
			uint32_t snapid;
			uint32_t type;
		} vdi;
		struct {
			uint64_t oid;
			uint64_t ctime;
			uint8_t copies;
			uint8_t copy_policy;
			uint16_t flags;
			uint32_t tag;
			uint32_t nodes_nr;
			uint8_t block_size_shift;
		} cluster;
		struct {
			uint32_t old_vid;
			uint32_t new_vid;
			uint8_t copies;
			uint8_t set_bitmap;
			uint8_t copy_policy;
			uint8_t block_size_shift;
		} vdi_state;
		struct {
			uint64_t oid;
			uint32_t generation;
			uint32_t count;
		} ref;
		struct {
			uint64_t oid;
			uint8_t addr[16];
			uint16_t port;
		} forw;
		struct {
			uint32_t get;
			uint32_t tgt_epoch;
			uint32_t vid;
		} checkpoint;
		struct {
			uint32_t vid;
			uint32_t validate;
		} coherence;
		uint8_t raw[32];
	};
};

struct sd_rsp {
	uint8_t proto_ver;
	uint8_t opcode;
	uint16_t flags;
	uint32_t epoch;
	uint32_t id;
	uint32_t data_length;
	uint32_t result;
	union {
		struct {
			uint8_t copies;
			uint64_t offset;
		} obj;
		struct {
			uint32_t rsvd;
			uint32_t vdi_id;
			uint32_t attr_id;
			uint8_t copies;
			uint8_t block_size_shift;
		} vdi;
		struct {
			uint32_t nr_nodes;
			uint64_t store_size;
			uint64_t store_free;
		} node;
		struct {
			uint8_t digest[20];
		} hash;
		struct {
			uint8_t nr_copies;
			uint8_t copy_policy;
			uint8_t block_size_shift;
		} cluster_default;
		uint8_t raw[28];
	};
};

enum sd_req_variant sd_op_req_variant(uint8_t opcode);
enum sd_rsp_variant sd_op_rsp_variant(uint8_t opcode);

/* Encode/decode using the variant of hdr->opcode. Unused bytes encode as 0. */
void sd_req_encode(const struct sd_req *req, uint8_t buf[SD_HEADER_SIZE]);
void sd_req_decode(const uint8_t buf[SD_HEADER_SIZE], struct sd_req *req);
void sd_rsp_encode(const struct sd_rsp *rsp, uint8_t buf[SD_HEADER_SIZE]);
void sd_rsp_decode(const uint8_t buf[SD_HEADER_SIZE], struct sd_rsp *rsp);

/* Initialise a request: zeroed, opcode set, proto_ver chosen by opcode. */
void sd_init_req(struct sd_req *req, uint8_t opcode);

/* Name of an opcode for logs ("READ_OBJ"), or NULL if unknown. */
const char *sd_op_name(uint8_t opcode);

#endif
