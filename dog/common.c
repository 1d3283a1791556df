/*
 * dog's side of the wire protocol: one kept connection to the sheep given by
 * -a/-p, request helpers that print upstream's messages, the node list and
 * ring that "nodelist" commands need, VDI lookup and inode reads, and the
 * small command-line parsers several command groups share. Turning results
 * into exit codes stays with the commands.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "dog.h"
#include "sheepdog/btree.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

struct sd_node *sd_nodes;
int sd_nodes_nr;
uint32_t sd_epoch;
struct sd_ring *sd_ring;

static int conn_fd = -1;
static uint32_t conn_next_id = 1;

/* Open (once) the connection to -a/-p. fd, or -1 after a message. */
static int dog_conn(void)
{
	if (conn_fd >= 0)
		return conn_fd;
	conn_fd = sd_connect(sd_host, sd_port);
	if (conn_fd < 0) {
		sd_err("failed to connect to %s:%d: %s", sd_host, sd_port,
		       strerror(-conn_fd));
		conn_fd = -1;
		return -1;
	}
	return conn_fd;
}

/* A transport error leaves the stream in an unknown state: drop it. */
static void dog_conn_fail(const char *what, int err)
{
	sd_err("failed to %s %s:%d: %s", what, sd_host, sd_port,
	       strerror(-err));
	if (conn_fd >= 0)
		close(conn_fd);
	conn_fd = -1;
}

uint32_t dog_next_id(void)
{
	return conn_next_id++;
}

int dog_send(const struct sd_req *req, const void *wdata)
{
	int fd = dog_conn(), ret;

	if (fd < 0)
		return -1;
	ret = sd_send_req(fd, req, wdata);
	if (ret) {
		dog_conn_fail("send a request to", ret);
		return -1;
	}
	return 0;
}

int dog_recv_hdr(struct sd_rsp *rsp)
{
	uint8_t hdr[SD_HEADER_SIZE];
	int ret;

	if (conn_fd < 0)
		return -1;
	ret = sd_read_full(conn_fd, hdr, sizeof(hdr));
	if (ret) {
		dog_conn_fail("read a response from", ret);
		return -1;
	}
	sd_rsp_decode(hdr, rsp);
	return 0;
}

int dog_recv_payload(const struct sd_rsp *rsp, void *buf, size_t len)
{
	size_t keep = buf ? MIN((size_t)rsp->data_length, len) : 0;
	size_t rest = rsp->data_length - keep;
	uint8_t sink[4096];
	int ret;

	if (keep) {
		ret = sd_read_full(conn_fd, buf, keep);
		if (ret)
			goto fail;
	}
	while (rest) {
		size_t n = MIN(rest, sizeof(sink));

		ret = sd_read_full(conn_fd, sink, n);
		if (ret)
			goto fail;
		rest -= n;
	}
	return 0;
fail:
	dog_conn_fail("read a response from", ret);
	return -1;
}

int dog_exec(struct sd_req *req, const void *wdata, void *rdata, size_t rlen,
	     struct sd_rsp *rsp)
{
	req->id = dog_next_id();
	if (dog_send(req, wdata) < 0)
		return -1;
	/* only one request is outstanding here, so the reply is ours */
	if (dog_recv_hdr(rsp) < 0)
		return -1;
	return dog_recv_payload(rsp, rdata, rlen);
}

int dog_exec_node(const struct node_id *nid, struct sd_req *req,
		  const void *wdata, void *rdata, size_t rlen,
		  struct sd_rsp *rsp)
{
	char host[64];
	int fd, ret;

	addr_to_str(nid->addr, host, sizeof(host));
	fd = sd_connect(host, nid->port);
	if (fd < 0) {
		sd_err("failed to connect to %s:%d: %s", host, nid->port,
		       strerror(-fd));
		return -1;
	}
	ret = sd_exec(fd, req, wdata, rdata, rlen, rsp);
	close(fd);
	if (ret) {
		sd_err("failed to exchange a request with %s:%d: %s", host,
		       nid->port, strerror(-ret));
		return -1;
	}
	return 0;
}

int send_light_req(struct sd_req *req)
{
	struct sd_rsp rsp;

	if (dog_exec(req, NULL, NULL, 0, &rsp) < 0)
		return -1;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Response's result: %s", sd_strerror(rsp.result));
		return -1;
	}
	return 0;
}

int dog_read_object(uint64_t oid, void *buf, uint32_t len, uint64_t offset)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_READ_OBJ);
	req.data_length = len;
	req.obj.oid = oid;
	req.obj.offset = offset;
	if (dog_exec(&req, NULL, buf, len, &rsp) < 0) {
		sd_err("Failed to read object %016" PRIx64, oid);
		return SD_RES_EIO;
	}
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to read object %016" PRIx64 " %s", oid,
		       sd_strerror(rsp.result));
		return rsp.result;
	}
	if (rsp.data_length < len)
		memset((uint8_t *)buf + rsp.data_length, 0,
		       len - rsp.data_length);
	return SD_RES_SUCCESS;
}

int dog_write_object(uint64_t oid, uint64_t cow_oid, const void *data,
		     uint32_t len, uint64_t offset, uint16_t flags,
		     uint8_t copies, uint8_t copy_policy, bool create)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req,
		    create ? SD_OP_CREATE_AND_WRITE_OBJ : SD_OP_WRITE_OBJ);
	req.flags = flags | SD_FLAG_CMD_WRITE;
	if (cow_oid)
		req.flags |= SD_FLAG_CMD_COW;
	req.data_length = len;
	req.obj.oid = oid;
	req.obj.cow_oid = cow_oid;
	req.obj.copies = copies;
	req.obj.copy_policy = copy_policy;
	req.obj.offset = offset;
	if (dog_exec(&req, data, NULL, 0, &rsp) < 0) {
		sd_err("Failed to write object %016" PRIx64, oid);
		return SD_RES_EIO;
	}
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to write object %016" PRIx64 ": %s", oid,
		       sd_strerror(rsp.result));
		return rsp.result;
	}
	return SD_RES_SUCCESS;
}

/* ---- node list ---- */

static int node_cmp(const void *a, const void *b)
{
	return sd_node_cmp(a, b);
}

/* The cluster flags from the first epoch record (STAT_CLUSTER, stride 0). */
static int read_cluster_flags(uint16_t *flags)
{
	uint8_t buf[SD_EPOCH_LOG_HDR];
	struct epoch_log log;
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_STAT_CLUSTER);
	req.data_length = sizeof(buf);
	req.cluster.nodes_nr = 0;
	if (dog_exec(&req, NULL, buf, sizeof(buf), &rsp) < 0)
		return -1;
	*flags = 0;
	if (rsp.data_length >= SD_EPOCH_LOG_HDR) {
		epoch_log_decode(buf, &log);
		*flags = log.flags;
	}
	return 0;
}

void dog_update_node_list(void)
{
	size_t size = (size_t)SD_MAX_NODES * SD_NODE_SIZE;
	uint8_t *buf = xzalloc(size);
	struct sd_req req;
	struct sd_rsp rsp;
	uint16_t flags;
	int nr;

	sd_init_req(&req, SD_OP_GET_NODE_LIST);
	req.data_length = size;
	if (dog_exec(&req, NULL, buf, size, &rsp) < 0 ||
	    rsp.result != SD_RES_SUCCESS)
		goto fail;

	nr = MIN(rsp.data_length, size) / SD_NODE_SIZE;
	if (nr == 0) {
		sd_err("There are no active sheep daemons");
		exit(EXIT_FAILURE);
	}
	sd_epoch = rsp.epoch;
	sd_nodes = xcalloc(nr, sizeof(*sd_nodes));
	for (int i = 0; i < nr; i++)
		sd_node_decode(buf + (size_t)i * SD_NODE_SIZE, &sd_nodes[i]);
	sd_nodes_nr = nr;
	free(buf);
	buf = NULL;

	if (read_cluster_flags(&flags) < 0)
		goto fail;
	if (flags & SD_CLUSTER_FLAG_AUTO_VNODES)
		ring_auto_vnodes(sd_nodes, sd_nodes_nr);
	qsort(sd_nodes, sd_nodes_nr, sizeof(*sd_nodes), node_cmp);
	sd_ring = ring_build(sd_nodes, sd_nodes_nr);
	if (!sd_ring)
		goto fail;
	return;
fail:
	free(buf);
	sd_err("Failed to get node list");
	exit(EXIT_SYSFAIL);
}

/* ---- VDIs ---- */

int dog_read_vdi_bitmap(uint8_t opcode, uint8_t *bitmap)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, opcode);
	req.data_length = SD_VDI_BITMAP_SIZE;
	memset(bitmap, 0, SD_VDI_BITMAP_SIZE);
	if (dog_exec(&req, NULL, bitmap, SD_VDI_BITMAP_SIZE, &rsp) < 0)
		return -1;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("%s", sd_strerror(rsp.result));
		return -1;
	}
	return 0;
}

void put_fixed_str(char *field, size_t field_len, const char *s)
{
	size_t n = strnlen(s, field_len - 1);

	memcpy(field, s, n);
	memset(field + n, 0, field_len - n);
}

int dog_find_vdi(const char *name, uint32_t snapid, const char *tag,
		 uint32_t *vid)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN] = {0};
	struct sd_req req;
	struct sd_rsp rsp;

	/* A longer name could only match a different, truncated one. */
	if (strlen(name) >= SD_MAX_VDI_LEN)
		return SD_RES_NO_VDI;
	put_fixed_str(buf, SD_MAX_VDI_LEN, name);
	put_fixed_str(buf + SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN, tag ? tag : "");
	sd_init_req(&req, SD_OP_GET_VDI_INFO);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = sizeof(buf);
	req.vdi.snapid = snapid;
	if (dog_exec(&req, buf, NULL, 0, &rsp) < 0)
		return -1;
	if (rsp.result == SD_RES_SUCCESS)
		*vid = rsp.vdi.vdi_id;
	return rsp.result;
}

int dog_read_inode_header(uint32_t vid, struct sd_inode_header *h)
{
	uint8_t buf[SD_INODE_HEADER_SIZE];
	int ret;

	ret = dog_read_object(vid_to_vdi_oid(vid), buf, sizeof(buf), 0);
	if (ret == SD_RES_SUCCESS)
		sd_inode_header_decode(buf, h);
	return ret;
}

int dog_open_vdi(const char *name, uint32_t snapid, const char *tag,
		 uint32_t *vid, struct sd_inode_header *h, struct vdi_index *ix)
{
	int ret = dog_find_vdi(name, snapid, tag, vid);

	if (ret < 0)
		return EXIT_SYSFAIL;
	if (ret != SD_RES_SUCCESS) {
		sd_err("Failed to open VDI %s (snapshot id: %" PRIu32
		       " snapshot tag: %s): %s",
		       name, snapid, tag ? tag : "", sd_strerror(ret));
		return EXIT_FAILURE;
	}
	ret = dog_read_inode_header(*vid, h);
	if (ret == SD_RES_SUCCESS && ix) {
		ret = dog_read_vdi_index(h, ix);
		if (ret != SD_RES_SUCCESS)
			vdi_index_free(ix);
	}
	if (ret != SD_RES_SUCCESS) {
		if (snapid)
			sd_err("Failed to read a snapshot %s:%" PRIu32, name,
			       snapid);
		else if (tag && tag[0])
			sd_err("Failed to read a snapshot %s:%s", name, tag);
		else
			sd_err("Failed to read a vdi %s", name);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* A hyper volume's tree, its object I/O going over the dog connection
 * with the VDI's redundancy. */
struct dog_btree {
	struct btree bt;
	struct btree_ops ops;
	uint8_t *root;
	uint8_t copies, copy_policy;
};

uint32_t vdi_index_get(const struct vdi_index *ix, uint64_t idx)
{
	uint64_t lo = 0, hi = ix->nr_ents;

	if (idx >= ix->nr_slots)
		return 0;
	if (ix->slots)
		return ix->slots[idx];
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (ix->ent_idx[mid] == idx)
			return ix->ent_vid[mid];
		if (ix->ent_idx[mid] < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return 0;
}

void vdi_index_free(struct vdi_index *ix)
{
	if (ix->btree) {
		free(ix->btree->root);
		free(ix->btree);
	}
	free(ix->slots);
	free(ix->ent_idx);
	free(ix->ent_vid);
	memset(ix, 0, sizeof(*ix));
}

/* Make room in the hyper cache for one more entry: 64, then doubled each
 * time a power of two is reached. */
static void ix_reserve(struct vdi_index *ix)
{
	if (ix->nr_ents == 0 ||
	    (ix->nr_ents >= 64 && (ix->nr_ents & (ix->nr_ents - 1)) == 0)) {
		size_t n = ix->nr_ents ? ix->nr_ents * 2 : 64;

		ix->ent_idx = xrealloc(ix->ent_idx, n * sizeof(uint32_t));
		ix->ent_vid = xrealloc(ix->ent_vid, n * sizeof(uint32_t));
	}
}

/* B-tree entries arrive in idx order; those past vdi_size are ignored. */
static int ix_add_entry(uint32_t idx, uint32_t vid, void *arg)
{
	struct vdi_index *ix = arg;

	if (idx >= ix->nr_slots)
		return 0;
	ix_reserve(ix);
	ix->ent_idx[ix->nr_ents] = idx;
	ix->ent_vid[ix->nr_ents] = vid;
	ix->nr_ents++;
	return 0;
}

static int dog_btree_read(void *opaque, uint64_t oid, void *buf, uint32_t len,
			  uint64_t offset)
{
	return dog_read_object(oid, buf, len, offset);
}

static int dog_btree_write(void *opaque, uint64_t oid, const void *buf,
			   uint32_t len, uint64_t offset)
{
	const struct dog_btree *t = opaque;

	return dog_write_object(oid, 0, buf, len, offset, 0, t->copies,
				t->copy_policy, false);
}

static int dog_btree_create(void *opaque, uint64_t oid, const void *buf,
			    uint32_t len)
{
	const struct dog_btree *t = opaque;

	return dog_write_object(oid, 0, buf, len, 0, 0, t->copies,
				t->copy_policy, true);
}

/* A hyper volume's index: the B-tree root in the inode and its leaves,
 * kept open in ix for dog_btree_set(). */
static int read_btree_index(const struct sd_inode_header *h,
			    struct vdi_index *ix)
{
	struct dog_btree *t = xzalloc(sizeof(*t));
	int ret;

	t->root = xmalloc(BTREE_NODE_SIZE);
	t->copies = h->nr_copies;
	t->copy_policy = h->copy_policy;
	t->ops = (struct btree_ops){
	    .opaque = t,
	    .read_obj = dog_btree_read,
	    .write_obj = dog_btree_write,
	    .create_obj = dog_btree_create,
	};
	ix->btree = t;
	ret = dog_read_object(vid_to_vdi_oid(h->vdi_id), t->root,
			      BTREE_NODE_SIZE, SD_INODE_OFF_DATA_VDI_ID);
	if (ret == SD_RES_SUCCESS)
		ret = btree_open(&t->bt, h->vdi_id, h->btree_counter, t->root,
				 &t->ops);
	if (ret == SD_RES_SUCCESS)
		ret = btree_for_each(&t->bt, ix_add_entry, ix);
	if (ret != SD_RES_SUCCESS)
		vdi_index_free(ix);
	return ret;
}

int dog_btree_set(struct vdi_index *ix, uint32_t idx, uint32_t vid)
{
	uint64_t lo = 0, hi = ix->nr_ents;
	int ret = btree_set(&ix->btree->bt, idx, vid);

	if (ret != SD_RES_SUCCESS)
		return ret;
	while (lo < hi) {
		uint64_t mid = lo + (hi - lo) / 2;

		if (ix->ent_idx[mid] < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	if (lo < ix->nr_ents && ix->ent_idx[lo] == idx) {
		ix->ent_vid[lo] = vid;
		return SD_RES_SUCCESS;
	}
	ix_reserve(ix);
	memmove(ix->ent_idx + lo + 1, ix->ent_idx + lo,
		(ix->nr_ents - lo) * sizeof(uint32_t));
	memmove(ix->ent_vid + lo + 1, ix->ent_vid + lo,
		(ix->nr_ents - lo) * sizeof(uint32_t));
	ix->ent_idx[lo] = idx;
	ix->ent_vid[lo] = vid;
	ix->nr_ents++;
	return SD_RES_SUCCESS;
}

int dog_read_vdi_index(const struct sd_inode_header *h, struct vdi_index *ix)
{
	uint8_t *raw;
	int ret;

	memset(ix, 0, sizeof(*ix));
	ix->nr_slots = inode_nr_slots(h->vdi_size, h->block_size_shift);
	if (h->store_policy == 1)
		return read_btree_index(h, ix);

	ix->nr_slots = MIN(ix->nr_slots, SD_MAX_DATA_OBJS);
	ix->slots = xcalloc(ix->nr_slots ? ix->nr_slots : 1, sizeof(uint32_t));
	if (!ix->nr_slots)
		return SD_RES_SUCCESS;
	raw = xmalloc(4 * ix->nr_slots);
	ret = dog_read_object(vid_to_vdi_oid(h->vdi_id), raw, 4 * ix->nr_slots,
			      SD_INODE_OFF_DATA_VDI_ID);
	if (ret == SD_RES_SUCCESS)
		for (uint64_t i = 0; i < ix->nr_slots; i++)
			ix->slots[i] = get_le32(raw + 4 * i);
	free(raw);
	return ret;
}

/* ---- command-line helpers ---- */

int option_parse_size(const char *s, uint64_t *out)
{
	if (parse_size(s, out) == 0)
		return 0;
	sd_err("Invalid size '%s'", s);
	sd_err("You may use B, K, M, G, T or P suffixes for bytes, kilobytes, "
	       "megabytes, gigabytes, terabytes and petabytes.");
	return -1;
}

static bool is_numeric(const char *s)
{
	if (!*s)
		return false;
	for (; *s; s++)
		if (!isdigit((unsigned char)*s))
			return false;
	return true;
}

int parse_copy(const char *s, uint8_t *copy_policy)
{
	char *dup = xstrdup(s), *parity = strchr(dup, ':');
	long copies, p;
	int ret = -1;

	if (parity)
		*parity++ = '\0';
	if (!is_numeric(dup) || (parity && !is_numeric(parity)) ||
	    strlen(dup) > 3 || (parity && strlen(parity) > 3))
		goto out;
	copies = strtol(dup, NULL, 10);
	if (!parity) {
		if (copies >= 1 && copies <= SD_MAX_COPIES) {
			*copy_policy = 0;
			ret = copies;
		}
		goto out;
	}
	p = strtol(parity, NULL, 10);
	*copy_policy = ec_policy_encode(copies, p);
	if (*copy_policy)
		ret = copies + p;
out:
	free(dup);
	return ret;
}

uint8_t parse_copy_or_exit(const char *s, uint8_t *copy_policy)
{
	int copies = parse_copy(s, copy_policy);

	if (copies > 0)
		return copies;
	sd_err("Invalid parameter %s\n"
	       "To create replicated vdi, set -c x\n"
	       "  x(1 to %d)   - number of replicated copies\n"
	       "To create erasure coded vdi, set -c x:y\n"
	       "  x(2,4,8,16)  - number of data strips\n"
	       "  y(1 to 15)   - number of parity strips",
	       s, SD_MAX_COPIES);
	exit(EXIT_FAILURE);
}

uint8_t parse_block_size_shift_or_exit(const char *s)
{
	long shift = strtol(s, NULL, 10);

	if (shift > SD_MAX_BLOCK_SIZE_SHIFT) {
		sd_err("Object Size is limited to 2^31. Please set shift bit "
		       "lower than 31");
		exit(EXIT_FAILURE);
	}
	if (shift < SD_MIN_BLOCK_SIZE_SHIFT) {
		sd_err("Object Size is larger than 2^20. Please set shift bit "
		       "larger than 20");
		exit(EXIT_FAILURE);
	}
	return (uint8_t)shift;
}

char *redundancy_str(uint8_t copies, uint8_t copy_policy, char *buf, size_t len)
{
	int d, p;

	if (copy_policy && ec_policy_decode(copy_policy, &d, &p))
		snprintf(buf, len, "%d:%d", d, p);
	else
		snprintf(buf, len, "%u", copies);
	return buf;
}

void confirm(const char *message)
{
	char input[8] = "";

	printf("%s", message);
	fflush(stdout);
	if (!fgets(input, sizeof(input), stdin) ||
	    strncasecmp(input, "yes", 3) != 0)
		exit(EXIT_SUCCESS);
}

const char *strnum(uint64_t size, char buf[32])
{
	return size_to_str(size, buf, 32, raw_output);
}

int dog_for_each_vdi(bool skip_deleted, vdi_visit_fn fn, void *data)
{
	uint8_t *inuse = xmalloc(SD_VDI_BITMAP_SIZE);
	uint8_t *deleted = NULL;
	int ret = -1;

	if (dog_read_vdi_bitmap(SD_OP_READ_VDIS, inuse) < 0)
		goto out;
	if (skip_deleted) {
		deleted = xmalloc(SD_VDI_BITMAP_SIZE);
		if (dog_read_vdi_bitmap(SD_OP_READ_DEL_VDIS, deleted) < 0)
			goto out;
	}
	for (uint32_t vid = 0; vid < SD_NR_VDIS; vid++) {
		struct sd_inode_header h;

		if (!inuse[vid / 8]) {
			vid |= 7;
			continue;
		}
		if (!vdi_bit_test(inuse, vid))
			continue;
		if (deleted && vdi_bit_test(deleted, vid))
			continue;
		if (dog_read_inode_header(vid, &h) != SD_RES_SUCCESS) {
			sd_err("Failed to read inode header");
			continue;
		}
		if (!h.name[0]) /* deleted: the tombstone has no name */
			continue;
		fn(&h, data);
	}
	ret = 0;
out:
	free(inuse);
	free(deleted);
	return ret;
}
