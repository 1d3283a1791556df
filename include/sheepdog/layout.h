/*
 * Fixed layouts shared by the daemon, dog and backup: object ids, sizes, the
 * node identity, the inode header, cluster_info, epoch records, vdi_state and
 * the store's config file (spec sections 2.3-2.4, 4, 5, 6.1, 7, 8).
 *
 * Each layout has a decoded C struct and explicit little-endian encode/decode
 * functions in lib/layout.c; decoders validate what they can and return
 * -EINVAL on nonsense so that callers never act on garbage.
 */
#ifndef SHEEPDOG_LAYOUT_H
#define SHEEPDOG_LAYOUT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define SD_NR_VDIS (1U << 24)
#define SD_VDI_MASK 0x00FFFFFFU
#define SD_MAX_COPIES 31
#define SD_MAX_NODES 6144
#define SD_MAX_VDI_LEN 256
#define SD_MAX_VDI_TAG_LEN 256
#define SD_MAX_VDI_ATTR_KEY_LEN 256
#define SD_MAX_VDI_ATTR_VALUE_LEN 65536
#define SD_ATTR_OBJ_SIZE 66320
#define SD_DEFAULT_COPIES 3
#define SD_DEFAULT_BLOCK_SIZE_SHIFT 22
#define SD_MIN_BLOCK_SIZE_SHIFT 20
#define SD_MAX_BLOCK_SIZE_SHIFT 31
#define SD_DATA_OBJ_SIZE (UINT64_C(1) << SD_DEFAULT_BLOCK_SIZE_SHIFT)
#define SD_MAX_DATA_OBJS (1U << 20)
#define SD_INODE_HEADER_SIZE 4664
#define SD_INODE_INDEX_SIZE (SD_INODE_HEADER_SIZE + 4 * SD_MAX_DATA_OBJS)
#define SD_INODE_SIZE 12587576
#define SD_LEDGER_OBJ_SIZE (UINT64_C(1) << 22)
#define SD_BTREE_OBJ_SIZE (UINT64_C(1) << 22)
#define SD_VDI_BITMAP_SIZE (SD_NR_VDIS / 8)
#define SD_DEFAULT_VNODES 128
#define SD_MAX_VNODES 65535
#define SD_STORE_NAME_LEN 16
#define SD_MAX_CLUSTER_MSG (128 * 1024)

/* Object id bits (spec 4.1) */
#define VDI_SPACE_SHIFT 32
#define SD_VDI_BIT (UINT64_C(1) << 63)
#define SD_VMSTATE_BIT (UINT64_C(1) << 62)
#define SD_VDI_ATTR_BIT (UINT64_C(1) << 61)
#define SD_VDI_BTREE_BIT (UINT64_C(1) << 60)
#define SD_LEDGER_BIT (UINT64_C(1) << 59)
#define SD_OID_TYPE_BITS (UINT64_C(0x1f) << 59)

static inline uint64_t vid_to_vdi_oid(uint32_t vid)
{
	return SD_VDI_BIT | (uint64_t)(vid & SD_VDI_MASK) << VDI_SPACE_SHIFT;
}

static inline uint64_t vid_to_data_oid(uint32_t vid, uint32_t idx)
{
	return (uint64_t)(vid & SD_VDI_MASK) << VDI_SPACE_SHIFT | idx;
}

static inline uint64_t vid_to_attr_oid(uint32_t vid, uint32_t attr_id)
{
	return SD_VDI_ATTR_BIT | (uint64_t)(vid & SD_VDI_MASK) << VDI_SPACE_SHIFT |
	       attr_id;
}

static inline uint32_t oid_to_vid(uint64_t oid)
{
	return (uint32_t)((oid >> VDI_SPACE_SHIFT) & SD_VDI_MASK);
}

static inline uint32_t data_oid_to_idx(uint64_t oid)
{
	return (uint32_t)oid;
}

static inline bool is_vdi_obj(uint64_t oid)
{
	return oid & SD_VDI_BIT;
}

static inline bool is_vmstate_obj(uint64_t oid)
{
	return oid & SD_VMSTATE_BIT;
}

static inline bool is_vdi_attr_obj(uint64_t oid)
{
	return oid & SD_VDI_ATTR_BIT;
}

static inline bool is_vdi_btree_obj(uint64_t oid)
{
	return oid & SD_VDI_BTREE_BIT;
}

static inline bool is_ledger_obj(uint64_t oid)
{
	return oid & SD_LEDGER_BIT;
}

static inline bool is_data_obj(uint64_t oid)
{
	return !(oid & SD_OID_TYPE_BITS);
}

/* An oid is well formed when reserved bits 56-58 are clear and at most one
 * type bit is set. */
bool oid_is_valid(uint64_t oid);

/* Size of an object of this kind, given the VDI's block_size_shift. */
uint64_t oid_obj_size(uint64_t oid, uint8_t block_size_shift);

/* ---- node identity (spec 6.1) ---- */

#define SD_NODE_ID_SIZE 40
#define SD_NODE_SIZE 80

struct node_id {
	uint8_t addr[16]; /* IPv4: 12 zero bytes then the 4 address bytes */
	uint16_t port;
	uint8_t io_addr[16];
	uint16_t io_port;
};

struct sd_node {
	struct node_id nid;
	uint16_t nr_vnodes;
	uint32_t zone;
	uint64_t space;
};

void sd_node_encode(const struct sd_node *n, uint8_t buf[SD_NODE_SIZE]);
void sd_node_decode(const uint8_t buf[SD_NODE_SIZE], struct sd_node *n);
/* Node order: memcmp of addr, then port numerically (spec 6.1). */
int node_id_cmp(const struct node_id *a, const struct node_id *b);
int sd_node_cmp(const struct sd_node *a, const struct sd_node *b);
bool node_id_eq(const struct node_id *a, const struct node_id *b);
/* "127.0.0.1:7000" (or "[v6]:port" style as upstream: "addr:port") */
char *node_addr_to_str(const struct node_id *nid, char *buf, size_t len);
/* Just the address part, "127.0.0.1" */
char *addr_to_str(const uint8_t addr[16], char *buf, size_t len);
/* "IPv4 ip:1.2.3.4 port:7000" */
char *node_id_to_str(const struct node_id *nid, char *buf, size_t len);
/* Parse a numeric IPv4/IPv6 address into the 16-byte form; -EINVAL if bad. */
int str_to_addr(const char *s, uint8_t addr[16]);
/* Default zone: address bytes 12..15 as little-endian u32. */
uint32_t node_default_zone(const uint8_t addr[16]);

/* ---- inode (spec 5) ---- */

struct sd_inode_header {
	char name[SD_MAX_VDI_LEN];
	char tag[SD_MAX_VDI_TAG_LEN];
	uint64_t create_time;
	uint64_t snap_ctime;
	uint64_t vm_clock_nsec;
	uint64_t vdi_size;
	uint64_t vm_state_size;
	uint8_t copy_policy;
	uint8_t store_policy;
	uint8_t nr_copies;
	uint8_t block_size_shift;
	uint32_t snap_id;
	uint32_t vdi_id;
	uint32_t parent_vdi_id;
	uint32_t btree_counter;
};

/* Byte offsets inside the inode object */
#define SD_INODE_OFF_NAME 0
#define SD_INODE_OFF_TAG 256
#define SD_INODE_OFF_CREATE_TIME 512
#define SD_INODE_OFF_SNAP_CTIME 520
#define SD_INODE_OFF_VDI_SIZE 536
#define SD_INODE_OFF_NR_COPIES 554
#define SD_INODE_OFF_STORE_POLICY 553
#define SD_INODE_OFF_DATA_VDI_ID SD_INODE_HEADER_SIZE
#define SD_INODE_OFF_GREF (SD_INODE_HEADER_SIZE + 4 * SD_MAX_DATA_OBJS)

/* name/tag are NUL-padded in buf; decode always NUL-terminates (a 256-byte
 * name without NUL is truncated to 255 characters). */
void sd_inode_header_encode(const struct sd_inode_header *h,
			    uint8_t buf[SD_INODE_HEADER_SIZE]);
void sd_inode_header_decode(const uint8_t buf[SD_INODE_HEADER_SIZE],
			    struct sd_inode_header *h);

static inline bool inode_is_snapshot(const struct sd_inode_header *h)
{
	return h->snap_ctime != 0;
}

/* Number of meaningful index slots: ceil(vdi_size / object size). */
uint64_t inode_nr_slots(uint64_t vdi_size, uint8_t block_size_shift);
/* Largest size a flat VDI may have with this shift: 2^20 << shift. */
uint64_t inode_max_size(uint8_t block_size_shift);

/* ---- cluster state (spec 7.2) ---- */

enum sd_status {
	SD_STATUS_OK = 1,
	SD_STATUS_WAIT = 2,
	SD_STATUS_SHUTDOWN = 3,
	SD_STATUS_KILLED = 4,
};

#define SD_CLUSTER_INFO_HDR 48

struct cluster_info {
	uint8_t proto_ver;
	uint8_t disable_recovery;
	uint16_t nr_nodes;
	uint32_t epoch;
	uint64_t ctime;
	uint16_t flags;
	uint8_t nr_copies;
	uint8_t copy_policy;
	uint8_t status;
	uint8_t block_size_shift;
	char default_store[SD_STORE_NAME_LEN + 1];
	struct sd_node *nodes; /* nr_nodes entries, owned by the caller */
};

/* Encoded size for nr nodes: 48 + 80*nr. */
size_t cluster_info_size(uint16_t nr_nodes);
void cluster_info_encode(const struct cluster_info *ci, uint8_t *buf);
/* Decodes from len bytes; ci->nodes must have room for SD_MAX_NODES or be
 * NULL (nodes skipped). -EINVAL if len is too short or nr_nodes too big. */
int cluster_info_decode(const uint8_t *buf, size_t len, struct cluster_info *ci);

/* ---- epoch log (spec 2.3 / 7.1) ---- */

#define SD_EPOCH_LOG_HDR 48

struct epoch_log {
	uint64_t ctime;
	uint64_t time;
	uint32_t epoch;
	uint32_t nr_nodes;
	uint8_t disable_recovery;
	uint8_t nr_copies;
	uint8_t copy_policy;
	uint16_t flags;
	char drv_name[SD_STORE_NAME_LEN + 1];
};

void epoch_log_encode(const struct epoch_log *e, uint8_t buf[SD_EPOCH_LOG_HDR]);
void epoch_log_decode(const uint8_t buf[SD_EPOCH_LOG_HDR], struct epoch_log *e);

/* ---- vdi_state (spec 2.4) ---- */

#define SD_VDI_STATE_SIZE 1428

struct vdi_state {
	uint32_t vid;
	uint8_t nr_copies;
	uint8_t snapshot;
	uint8_t deleted;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	uint32_t parent_vid;
	uint32_t lock_state; /* 1 unlocked, 2 locked, 3 shared */
	struct node_id lock_owner;
};

void vdi_state_encode(const struct vdi_state *s, uint8_t buf[SD_VDI_STATE_SIZE]);
void vdi_state_decode(const uint8_t buf[SD_VDI_STATE_SIZE], struct vdi_state *s);

/* ---- store config file (spec 8.1) ---- */

#define SD_CONFIG_SIZE 40
#define SD_FORMAT_VERSION 6

struct sheepdog_config {
	uint64_t ctime;
	uint16_t flags;
	uint8_t copies;
	char default_store[SD_STORE_NAME_LEN + 1];
	uint8_t shutdown;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	uint16_t version;
	uint64_t space;
};

void sheepdog_config_encode(const struct sheepdog_config *c,
			    uint8_t buf[SD_CONFIG_SIZE]);
int sheepdog_config_decode(const uint8_t buf[SD_CONFIG_SIZE],
			   struct sheepdog_config *c);

/* ---- small fixed payloads (spec 2.4) ---- */

#define SD_RECOVERY_STATE_SIZE 24
#define SD_RECOVERY_THROTTLING_SIZE 24
#define SD_STAT_SIZE 120
#define SD_MD_INFO_ENTRY_SIZE 4120
#define SD_MD_MAX_DISKS 64
#define SD_MD_INFO_SIZE 263688

/* sd-time: seconds << 32 | nanoseconds */
uint64_t sd_time_now(void);

/* ---- erasure policy byte (spec 9) ---- */

/* d:p from the policy byte; returns false if the byte is not a valid policy */
bool ec_policy_decode(uint8_t policy, int *d, int *p);
uint8_t ec_policy_encode(int d, int p);

#endif
