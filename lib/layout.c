/*
 * Encoders and decoders for the fixed layouts that live on disk or inside
 * payloads: node identities, the inode header, cluster_info, epoch log
 * records, vdi_state, the store's config file (spec 2.3, 2.4, 5, 6.1, 7.2,
 * 8.1), plus the small rules about object ids, object sizes, sd-time and
 * the erasure-code policy byte. Every field is placed at its documented
 * offset in little-endian order; reserved and padding bytes are written as
 * zero and ignored on input. Semantic checks beyond the layout (store
 * format version, sane copy counts) are left to the callers.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/time.h>

#include "sheepdog/layout.h"
#include "sheepdog/le.h"

bool oid_is_valid(uint64_t oid)
{
	uint64_t type = oid & SD_OID_TYPE_BITS;

	if (oid & (UINT64_C(7) << 56))
		return false;
	return (type & (type - 1)) == 0;
}

uint64_t oid_obj_size(uint64_t oid, uint8_t block_size_shift)
{
	if (is_vdi_obj(oid))
		return SD_INODE_SIZE;
	if (is_vdi_attr_obj(oid))
		return SD_ATTR_OBJ_SIZE;
	if (is_vdi_btree_obj(oid))
		return SD_BTREE_OBJ_SIZE;
	if (is_ledger_obj(oid))
		return SD_LEDGER_OBJ_SIZE;
	/* a shift of 0 means "the default" everywhere else in the protocol */
	if (block_size_shift == 0)
		block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	return UINT64_C(1) << block_size_shift;
}

/* ---- node identity ---- */

static void node_id_encode(const struct node_id *nid, uint8_t *p)
{
	memcpy(p, nid->addr, 16);
	put_le16(p + 16, nid->port);
	memcpy(p + 18, nid->io_addr, 16);
	put_le16(p + 34, nid->io_port);
	memset(p + 36, 0, 4);
}

static void node_id_decode(const uint8_t *p, struct node_id *nid)
{
	memcpy(nid->addr, p, 16);
	nid->port = get_le16(p + 16);
	memcpy(nid->io_addr, p + 18, 16);
	nid->io_port = get_le16(p + 34);
}

void sd_node_encode(const struct sd_node *n, uint8_t buf[SD_NODE_SIZE])
{
	memset(buf, 0, SD_NODE_SIZE);
	node_id_encode(&n->nid, buf + 24);
	put_le16(buf + 64, n->nr_vnodes);
	put_le32(buf + 68, n->zone);
	put_le64(buf + 72, n->space);
}

void sd_node_decode(const uint8_t buf[SD_NODE_SIZE], struct sd_node *n)
{
	memset(n, 0, sizeof(*n));
	node_id_decode(buf + 24, &n->nid);
	n->nr_vnodes = get_le16(buf + 64);
	n->zone = get_le32(buf + 68);
	n->space = get_le64(buf + 72);
}

int node_id_cmp(const struct node_id *a, const struct node_id *b)
{
	int r = memcmp(a->addr, b->addr, sizeof(a->addr));

	if (r)
		return r < 0 ? -1 : 1;
	if (a->port != b->port)
		return a->port < b->port ? -1 : 1;
	return 0;
}

int sd_node_cmp(const struct sd_node *a, const struct sd_node *b)
{
	return node_id_cmp(&a->nid, &b->nid);
}

bool node_id_eq(const struct node_id *a, const struct node_id *b)
{
	return node_id_cmp(a, b) == 0;
}

static bool addr_is_ipv4(const uint8_t addr[16])
{
	static const uint8_t zero[12];

	return addr[12] != 0 && memcmp(addr, zero, sizeof(zero)) == 0;
}

char *addr_to_str(const uint8_t addr[16], char *buf, size_t len)
{
	char tmp[INET6_ADDRSTRLEN];

	if (addr_is_ipv4(addr))
		inet_ntop(AF_INET, addr + 12, tmp, sizeof(tmp));
	else
		inet_ntop(AF_INET6, addr, tmp, sizeof(tmp));
	snprintf(buf, len, "%s", tmp);
	return buf;
}

char *node_addr_to_str(const struct node_id *nid, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s:%u", addr_to_str(nid->addr, a, sizeof(a)),
		 nid->port);
	return buf;
}

char *node_id_to_str(const struct node_id *nid, char *buf, size_t len)
{
	char a[INET6_ADDRSTRLEN];

	snprintf(buf, len, "%s ip:%s port:%u",
		 addr_is_ipv4(nid->addr) ? "IPv4" : "IPv6",
		 addr_to_str(nid->addr, a, sizeof(a)), nid->port);
	return buf;
}

int str_to_addr(const char *s, uint8_t addr[16])
{
	uint8_t tmp[16];

	memset(tmp, 0, sizeof(tmp));
	if (inet_pton(AF_INET, s, tmp + 12) == 1) {
		memcpy(addr, tmp, 16);
		return 0;
	}
	if (inet_pton(AF_INET6, s, tmp) == 1) {
		memcpy(addr, tmp, 16);
		return 0;
	}
	return -EINVAL;
}

uint32_t node_default_zone(const uint8_t addr[16])
{
	return get_le32(addr + 12);
}

/* ---- inode header ---- */

/* Copy a NUL-padded fixed field of the given width into dst (dstsize bytes),
 * always NUL-terminating, truncating if the field has no NUL. */
static void fixed_str_decode(char *dst, size_t dstsize, const uint8_t *src,
			     size_t field)
{
	size_t n = strnlen((const char *)src, field);

	if (n >= dstsize)
		n = dstsize - 1;
	memcpy(dst, src, n);
	dst[n] = '\0';
}

static void fixed_str_encode(uint8_t *dst, const char *src, size_t field)
{
	size_t n = strnlen(src, field);

	memset(dst, 0, field);
	memcpy(dst, src, n);
}

void sd_inode_header_encode(const struct sd_inode_header *h,
			    uint8_t buf[SD_INODE_HEADER_SIZE])
{
	memset(buf, 0, SD_INODE_HEADER_SIZE);
	fixed_str_encode(buf + SD_INODE_OFF_NAME, h->name, SD_MAX_VDI_LEN);
	fixed_str_encode(buf + SD_INODE_OFF_TAG, h->tag, SD_MAX_VDI_TAG_LEN);
	put_le64(buf + 512, h->create_time);
	put_le64(buf + 520, h->snap_ctime);
	put_le64(buf + 528, h->vm_clock_nsec);
	put_le64(buf + 536, h->vdi_size);
	put_le64(buf + 544, h->vm_state_size);
	buf[552] = h->copy_policy;
	buf[553] = h->store_policy;
	buf[554] = h->nr_copies;
	buf[555] = h->block_size_shift;
	put_le32(buf + 556, h->snap_id);
	put_le32(buf + 560, h->vdi_id);
	put_le32(buf + 564, h->parent_vdi_id);
	put_le32(buf + 568, h->btree_counter);
}

void sd_inode_header_decode(const uint8_t buf[SD_INODE_HEADER_SIZE],
			    struct sd_inode_header *h)
{
	memset(h, 0, sizeof(*h));
	fixed_str_decode(h->name, sizeof(h->name), buf + SD_INODE_OFF_NAME,
			 SD_MAX_VDI_LEN);
	fixed_str_decode(h->tag, sizeof(h->tag), buf + SD_INODE_OFF_TAG,
			 SD_MAX_VDI_TAG_LEN);
	h->create_time = get_le64(buf + 512);
	h->snap_ctime = get_le64(buf + 520);
	h->vm_clock_nsec = get_le64(buf + 528);
	h->vdi_size = get_le64(buf + 536);
	h->vm_state_size = get_le64(buf + 544);
	h->copy_policy = buf[552];
	h->store_policy = buf[553];
	h->nr_copies = buf[554];
	h->block_size_shift = buf[555];
	h->snap_id = get_le32(buf + 556);
	h->vdi_id = get_le32(buf + 560);
	h->parent_vdi_id = get_le32(buf + 564);
	h->btree_counter = get_le32(buf + 568);
}

uint64_t inode_nr_slots(uint64_t vdi_size, uint8_t block_size_shift)
{
	uint64_t objsize = UINT64_C(1) << block_size_shift;

	return vdi_size / objsize + (vdi_size % objsize != 0);
}

uint64_t inode_max_size(uint8_t block_size_shift)
{
	return (uint64_t)SD_MAX_DATA_OBJS << block_size_shift;
}

/* ---- cluster_info ---- */

size_t cluster_info_size(uint16_t nr_nodes)
{
	return SD_CLUSTER_INFO_HDR + (size_t)SD_NODE_SIZE * nr_nodes;
}

void cluster_info_encode(const struct cluster_info *ci, uint8_t *buf)
{
	memset(buf, 0, SD_CLUSTER_INFO_HDR);
	buf[0] = ci->proto_ver;
	buf[1] = ci->disable_recovery;
	put_le16(buf + 2, ci->nr_nodes);
	put_le32(buf + 4, ci->epoch);
	put_le64(buf + 8, ci->ctime);
	put_le16(buf + 16, ci->flags);
	buf[18] = ci->nr_copies;
	buf[19] = ci->copy_policy;
	buf[20] = ci->status;
	buf[21] = ci->block_size_shift;
	fixed_str_encode(buf + 25, ci->default_store, SD_STORE_NAME_LEN);
	for (int i = 0; i < ci->nr_nodes; i++)
		sd_node_encode(&ci->nodes[i],
			       buf + SD_CLUSTER_INFO_HDR + SD_NODE_SIZE * i);
}

int cluster_info_decode(const uint8_t *buf, size_t len, struct cluster_info *ci)
{
	struct sd_node *nodes = ci->nodes;
	uint16_t nr;

	if (len < SD_CLUSTER_INFO_HDR)
		return -EINVAL;
	nr = get_le16(buf + 2);
	if (nr > SD_MAX_NODES || len < cluster_info_size(nr))
		return -EINVAL;

	memset(ci, 0, sizeof(*ci));
	ci->nodes = nodes;
	ci->proto_ver = buf[0];
	ci->disable_recovery = buf[1];
	ci->nr_nodes = nr;
	ci->epoch = get_le32(buf + 4);
	ci->ctime = get_le64(buf + 8);
	ci->flags = get_le16(buf + 16);
	ci->nr_copies = buf[18];
	ci->copy_policy = buf[19];
	ci->status = buf[20];
	ci->block_size_shift = buf[21];
	fixed_str_decode(ci->default_store, sizeof(ci->default_store), buf + 25,
			 SD_STORE_NAME_LEN);
	if (nodes)
		for (int i = 0; i < nr; i++)
			sd_node_decode(buf + SD_CLUSTER_INFO_HDR +
					   SD_NODE_SIZE * i,
				       &nodes[i]);
	return 0;
}

/* ---- epoch log record ---- */

void epoch_log_encode(const struct epoch_log *e, uint8_t buf[SD_EPOCH_LOG_HDR])
{
	memset(buf, 0, SD_EPOCH_LOG_HDR);
	put_le64(buf + 0, e->ctime);
	put_le64(buf + 8, e->time);
	put_le32(buf + 16, e->epoch);
	put_le32(buf + 20, e->nr_nodes);
	buf[24] = e->disable_recovery;
	buf[25] = e->nr_copies;
	buf[26] = e->copy_policy;
	put_le16(buf + 30, e->flags);
	fixed_str_encode(buf + 32, e->drv_name, SD_STORE_NAME_LEN);
}

void epoch_log_decode(const uint8_t buf[SD_EPOCH_LOG_HDR], struct epoch_log *e)
{
	memset(e, 0, sizeof(*e));
	e->ctime = get_le64(buf + 0);
	e->time = get_le64(buf + 8);
	e->epoch = get_le32(buf + 16);
	e->nr_nodes = get_le32(buf + 20);
	e->disable_recovery = buf[24];
	e->nr_copies = buf[25];
	e->copy_policy = buf[26];
	e->flags = get_le16(buf + 30);
	fixed_str_decode(e->drv_name, sizeof(e->drv_name), buf + 32,
			 SD_STORE_NAME_LEN);
}

/* ---- vdi_state ---- */

void vdi_state_encode(const struct vdi_state *s, uint8_t buf[SD_VDI_STATE_SIZE])
{
	memset(buf, 0, SD_VDI_STATE_SIZE);
	put_le32(buf + 0, s->vid);
	buf[4] = s->nr_copies;
	buf[5] = s->snapshot;
	buf[6] = s->deleted;
	buf[7] = s->copy_policy;
	buf[8] = s->block_size_shift;
	put_le32(buf + 12, s->parent_vid);
	put_le32(buf + 16, s->lock_state);
	node_id_encode(&s->lock_owner, buf + 20);
}

void vdi_state_decode(const uint8_t buf[SD_VDI_STATE_SIZE], struct vdi_state *s)
{
	memset(s, 0, sizeof(*s));
	s->vid = get_le32(buf + 0);
	s->nr_copies = buf[4];
	s->snapshot = buf[5];
	s->deleted = buf[6];
	s->copy_policy = buf[7];
	s->block_size_shift = buf[8];
	s->parent_vid = get_le32(buf + 12);
	s->lock_state = get_le32(buf + 16);
	node_id_decode(buf + 20, &s->lock_owner);
}

/* ---- store config file ---- */

void sheepdog_config_encode(const struct sheepdog_config *c,
			    uint8_t buf[SD_CONFIG_SIZE])
{
	memset(buf, 0, SD_CONFIG_SIZE);
	put_le64(buf + 0, c->ctime);
	put_le16(buf + 8, c->flags);
	buf[10] = c->copies;
	fixed_str_encode(buf + 11, c->default_store, SD_STORE_NAME_LEN);
	buf[27] = c->shutdown;
	buf[28] = c->copy_policy;
	buf[29] = c->block_size_shift;
	put_le16(buf + 30, c->version);
	put_le64(buf + 32, c->space);
}

int sheepdog_config_decode(const uint8_t buf[SD_CONFIG_SIZE],
			   struct sheepdog_config *c)
{
	memset(c, 0, sizeof(*c));
	c->ctime = get_le64(buf + 0);
	c->flags = get_le16(buf + 8);
	c->copies = buf[10];
	fixed_str_decode(c->default_store, sizeof(c->default_store), buf + 11,
			 SD_STORE_NAME_LEN);
	c->shutdown = buf[27];
	c->copy_policy = buf[28];
	c->block_size_shift = buf[29];
	c->version = get_le16(buf + 30);
	c->space = get_le64(buf + 32);
	return 0;
}

/* ---- time and erasure policy ---- */

uint64_t sd_time_now(void)
{
	struct timeval tv;

	gettimeofday(&tv, NULL);
	return (uint64_t)tv.tv_sec << 32 | (uint64_t)tv.tv_usec * 1000;
}

bool ec_policy_decode(uint8_t policy, int *d, int *p)
{
	int dd = (policy >> 4) * 2;
	int pp = policy & 0x0f;

	if (dd != 2 && dd != 4 && dd != 8 && dd != 16)
		return false;
	if (pp < 1 || dd + pp > SD_MAX_COPIES)
		return false;
	*d = dd;
	*p = pp;
	return true;
}

uint8_t ec_policy_encode(int d, int p)
{
	if (d != 2 && d != 4 && d != 8 && d != 16)
		return 0;
	if (p < 1 || p > 15 || d + p > SD_MAX_COPIES)
		return 0;
	return (uint8_t)((d / 2) << 4 | p);
}
