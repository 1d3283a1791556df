/*
 * "dog vdi check" and the per-VDI half of "dog cluster check": every object
 * a VDI uses (its inode, the data objects its index points at, whichever
 * VDI owns them, and the B-tree leaves of a hyper volume) is looked up on
 * each node that placement says holds a replica. In repair mode each holder
 * reports the SHA-1 of its copy (GET_HASH); the copies vote, and holders
 * whose copy is missing or differs from the majority are told to fetch the
 * majority's copy (REPAIR_REPLICA). With -e only existence is checked
 * (EXIST) and nothing is changed.
 *
 * Placement comes from dog's own ring (dog_update_node_list()). Requests go
 * straight to each holder on one connection per node, many in flight at a
 * time and matched by id, so the sheep hash objects in parallel while the
 * output stays in object order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "dog.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"
#include "sheepdog/sha1.h"

/* Objects whose requests are in flight together. */
#define CHECK_BATCH 64

#define BTREE_MAGIC 0x6274
#define BTREE_HDR 8

struct replica {
	int node; /* index into sd_ring->nodes */
	uint32_t result;
	uint8_t hash[SHA1_DIGEST_SIZE];
};

struct obj_check {
	uint64_t oid;
	int nr;
	struct replica r[SD_MAX_COPIES];
};

/* Connections to the holders, one per ring node, opened on first use. */
static int *node_fds;

static const char *node_name(int n, char buf[64])
{
	return node_addr_to_str(&sd_ring->nodes[n].nid, buf, 64);
}

/* A holder that cannot be reached ends the command, as upstream's does. */
static void node_fail(int n, const char *what, int err)
{
	char name[64];

	sd_err("failed to %s %s: %s", what, node_name(n, name), strerror(-err));
	exit(EXIT_SYSFAIL);
}

static int node_fd(int n)
{
	char host[64];
	int fd;

	if (node_fds[n] >= 0)
		return node_fds[n];
	addr_to_str(sd_ring->nodes[n].nid.addr, host, sizeof(host));
	fd = sd_connect(host, sd_ring->nodes[n].nid.port);
	if (fd < 0)
		node_fail(n, "connect to", fd);
	node_fds[n] = fd;
	return fd;
}

static void open_node_conns(void)
{
	node_fds = xmalloc(sd_ring->nr_nodes * sizeof(*node_fds));
	for (int i = 0; i < sd_ring->nr_nodes; i++)
		node_fds[i] = -1;
}

static void close_node_conns(void)
{
	for (int i = 0; i < sd_ring->nr_nodes; i++)
		if (node_fds[i] >= 0)
			close(node_fds[i]);
	free(node_fds);
	node_fds = NULL;
}

/* ---- the objects of a VDI ---- */

struct oid_list {
	uint64_t *oids;
	size_t nr, cap;
};

static void oid_list_add(struct oid_list *l, uint64_t oid)
{
	if (l->nr == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 256;
		l->oids = xrealloc(l->oids, l->cap * sizeof(*l->oids));
	}
	l->oids[l->nr++] = oid;
}

/* The leaf objects under a depth-2 B-tree root (spec 5.3). */
static int add_btree_leaves(const struct sd_inode_header *h, struct oid_list *l)
{
	size_t len = 4 * (size_t)SD_MAX_DATA_OBJS;
	uint8_t *root = xmalloc(len);
	int ret;

	ret = dog_read_object(vid_to_vdi_oid(h->vdi_id), root, len,
			      SD_INODE_OFF_DATA_VDI_ID);
	if (ret == SD_RES_SUCCESS && get_le16(root) == BTREE_MAGIC &&
	    get_le16(root + 2) == 2) {
		uint32_t nr = get_le32(root + 4);

		for (uint32_t i = 0;
		     i < nr && BTREE_HDR + 16 * ((size_t)i + 1) <= len; i++)
			oid_list_add(l,
				     get_le64(root + BTREE_HDR + 16 * i + 8));
	}
	free(root);
	return ret;
}

/*
 * The inode first, then the B-tree leaves, then every data object the
 * index points at in index order. A slot holding another vid points at an
 * object of an ancestor snapshot, which this VDI reads and so is checked.
 */
static int collect_oids(const struct sd_inode_header *h, struct oid_list *l)
{
	struct vdi_index ix;
	int ret;

	oid_list_add(l, vid_to_vdi_oid(h->vdi_id));
	if (h->store_policy == 1) {
		ret = add_btree_leaves(h, l);
		if (ret != SD_RES_SUCCESS)
			return ret;
	}
	ret = dog_read_vdi_index(h, &ix);
	if (ret != SD_RES_SUCCESS) {
		vdi_index_free(&ix);
		return ret;
	}
	if (ix.slots) {
		for (uint64_t i = 0; i < ix.nr_slots; i++)
			if (ix.slots[i])
				oid_list_add(l,
					     vid_to_data_oid(ix.slots[i], i));
	} else {
		for (uint64_t i = 0; i < ix.nr_ents; i++)
			oid_list_add(
			    l, vid_to_data_oid(ix.ent_vid[i], ix.ent_idx[i]));
	}
	vdi_index_free(&ix);
	return SD_RES_SUCCESS;
}

/* ---- asking the holders ---- */

static void place_batch(struct obj_check *objs, int n, const uint64_t *oids,
			uint8_t copies)
{
	for (int j = 0; j < n; j++) {
		int idx[SD_MAX_COPIES];

		objs[j].oid = oids[j];
		objs[j].nr = ring_oid_to_nodes(sd_ring, oids[j], copies, idx);
		for (int r = 0; r < objs[j].nr; r++) {
			objs[j].r[r].node = idx[r];
			objs[j].r[r].result = SD_RES_UNKNOWN;
		}
	}
}

/*
 * Send opcode (GET_HASH or EXIST) for every replica of the batch, then
 * collect the replies node by node. A reply's id says which object and
 * replica it answers: object j, replica r has id j * SD_MAX_COPIES + r.
 */
static void ask_holders(struct obj_check *objs, int n, uint8_t opcode)
{
	int *pending = xcalloc(sd_ring->nr_nodes, sizeof(*pending));

	for (int j = 0; j < n; j++) {
		for (int r = 0; r < objs[j].nr; r++) {
			int node = objs[j].r[r].node, ret;
			struct sd_req req;

			sd_init_req(&req, opcode);
			req.id = j * SD_MAX_COPIES + r;
			req.epoch = sd_epoch;
			req.obj.oid = objs[j].oid;
			req.obj.tgt_epoch = sd_epoch;
			ret = sd_send_req(node_fd(node), &req, NULL);
			if (ret)
				node_fail(node, "send a request to", ret);
			pending[node]++;
		}
	}
	for (int node = 0; node < sd_ring->nr_nodes; node++) {
		for (; pending[node] > 0; pending[node]--) {
			struct sd_rsp rsp;
			struct replica *rep;
			uint32_t j, r;
			int ret = sd_recv_rsp(node_fds[node], &rsp, NULL, 0);

			if (ret)
				node_fail(node, "read a response from", ret);
			j = rsp.id / SD_MAX_COPIES;
			r = rsp.id % SD_MAX_COPIES;
			if (j >= (uint32_t)n || r >= (uint32_t)objs[j].nr ||
			    objs[j].r[r].node != node) {
				node_fail(node, "match a response from",
					  -EPROTO);
			}
			rep = &objs[j].r[r];
			rep->result = rsp.result;
			if (opcode == SD_OP_GET_HASH)
				memcpy(rep->hash, rsp.hash.digest,
				       sizeof(rep->hash));
		}
	}
	free(pending);
}

/* ---- repair mode ---- */

/* The replica whose copy more than half of the copies found agree with. */
static int vote_majority(const struct obj_check *o)
{
	int live = 0;

	for (int i = 0; i < o->nr; i++)
		live += o->r[i].result == SD_RES_SUCCESS;
	for (int i = 0; i < o->nr; i++) {
		int same = 0;

		if (o->r[i].result != SD_RES_SUCCESS)
			continue;
		for (int k = 0; k < o->nr; k++)
			same += o->r[k].result == SD_RES_SUCCESS &&
				!memcmp(o->r[i].hash, o->r[k].hash,
					SHA1_DIGEST_SIZE);
		if (2 * same > live)
			return i;
	}
	return -1;
}

/* REPAIR_REPLICA on dst from src. true once dst holds src's copy. */
static bool repair_replica(uint64_t oid, int src, int dst)
{
	const struct node_id *from = &sd_ring->nodes[src].nid;
	char a[64], b[64];
	struct sd_req req;
	struct sd_rsp rsp;
	int ret;

	sd_init_req(&req, SD_OP_REPAIR_REPLICA);
	req.epoch = sd_epoch;
	req.forw.oid = oid;
	memcpy(req.forw.addr, from->addr, sizeof(req.forw.addr));
	req.forw.port = from->port;
	ret = sd_exec(node_fd(dst), &req, NULL, NULL, 0, &rsp);
	if (ret)
		node_fail(dst, "exchange a request with", ret);
	if (rsp.result == SD_RES_SUCCESS)
		return true;
	sd_err("failed to repair object %016" PRIx64 " from %s to %s: %s", oid,
	       node_name(src, a), node_name(dst, b), sd_strerror(rsp.result));
	return false;
}

/* Vote and repair one object. false if a read or a repair failed. */
static bool check_object(const struct obj_check *o)
{
	bool ok = true, found = false;
	char name[64];
	int major;

	for (int i = 0; i < o->nr; i++) {
		uint32_t res = o->r[i].result;

		if (res == SD_RES_SUCCESS) {
			found = true;
		} else if (res != SD_RES_NO_OBJ) {
			sd_err("failed to read %016" PRIx64 " from %s, %s",
			       o->oid, node_name(o->r[i].node, name),
			       sd_strerror(res));
			ok = false;
		}
	}
	if (!found) {
		if (ok)
			sd_err("no node has %016" PRIx64, o->oid);
		return ok;
	}
	major = vote_majority(o);
	if (major < 0) {
		sd_err("no majority of %016" PRIx64, o->oid);
		return ok;
	}
	for (int i = 0; i < o->nr; i++) {
		const struct replica *rep = &o->r[i];
		bool missing = rep->result == SD_RES_NO_OBJ;

		if (!missing &&
		    (rep->result != SD_RES_SUCCESS ||
		     !memcmp(rep->hash, o->r[major].hash, SHA1_DIGEST_SIZE)))
			continue;
		if (!repair_replica(o->oid, o->r[major].node, rep->node)) {
			ok = false;
			continue;
		}
		printf("fixed %s %016" PRIx64 "\n",
		       missing ? "missing" : "replica", o->oid);
	}
	return ok;
}

static bool check_and_repair(const struct oid_list *l, uint8_t copies)
{
	struct obj_check *objs = xcalloc(CHECK_BATCH, sizeof(*objs));
	bool ok = true;

	for (size_t start = 0; start < l->nr; start += CHECK_BATCH) {
		int n = MIN(l->nr - start, (size_t)CHECK_BATCH);

		place_batch(objs, n, l->oids + start, copies);
		ask_holders(objs, n, SD_OP_GET_HASH);
		for (int j = 0; j < n; j++)
			if (!check_object(&objs[j]))
				ok = false;
	}
	free(objs);
	return ok;
}

/* ---- existence only (-e) ---- */

struct missing {
	int node;
	uint64_t oid;
	size_t order; /* position in the object list, for a stable sort */
};

static int missing_cmp(const void *a, const void *b)
{
	const struct missing *x = a, *y = b;

	if (x->node != y->node)
		return x->node < y->node ? -1 : 1;
	return x->order < y->order ? -1 : x->order > y->order;
}

/*
 * Missing replicas are listed node by node (in node order), each node's in
 * object order. Returns the exit status.
 */
static int check_exist(const struct sd_inode_header *h,
		       const struct oid_list *l)
{
	struct obj_check *objs = xcalloc(CHECK_BATCH, sizeof(*objs));
	struct missing *miss = NULL;
	size_t nr_miss = 0, cap = 0;
	bool failed = false;
	char name[64];

	for (size_t start = 0; start < l->nr; start += CHECK_BATCH) {
		int n = MIN(l->nr - start, (size_t)CHECK_BATCH);

		place_batch(objs, n, l->oids + start, h->nr_copies);
		ask_holders(objs, n, SD_OP_EXIST);
		for (int j = 0; j < n; j++) {
			for (int r = 0; r < objs[j].nr; r++) {
				const struct replica *rep = &objs[j].r[r];

				if (rep->result == SD_RES_SUCCESS)
					continue;
				if (rep->result != SD_RES_NO_OBJ) {
					sd_err("failed to check %016" PRIx64
					       " on %s, %s",
					       objs[j].oid,
					       node_name(rep->node, name),
					       sd_strerror(rep->result));
					failed = true;
					continue;
				}
				if (nr_miss == cap) {
					cap = cap ? cap * 2 : 64;
					miss =
					    xrealloc(miss, cap * sizeof(*miss));
				}
				miss[nr_miss++] = (struct missing){
				    rep->node, objs[j].oid, start + j};
			}
		}
	}
	free(objs);

	if (nr_miss)
		qsort(miss, nr_miss, sizeof(*miss), missing_cmp);
	for (size_t i = 0; i < nr_miss; i++)
		printf("[%s] oid %016" PRIx64 " is missing.\n",
		       node_name(miss[i].node, name), miss[i].oid);
	free(miss);
	if (nr_miss) {
		printf("%s lost %zu object(s).\n", h->name, nr_miss);
		return EXIT_FAILURE;
	}
	if (failed)
		return EXIT_FAILURE;
	printf("%s is fine, no object is missing.\n", h->name);
	return EXIT_SUCCESS;
}

/* ---- commands ---- */

int vdi_check_inode(const struct sd_inode_header *h, bool exist_only)
{
	struct oid_list l = {0};
	int ret;

	if (h->copy_policy) {
		sd_err("Checking erasure coded VDI %s is not supported",
		       h->name);
		return EXIT_FAILURE;
	}
	if (collect_oids(h, &l) != SD_RES_SUCCESS) {
		sd_err("Failed to read the index of %s", h->name);
		free(l.oids);
		return EXIT_FAILURE;
	}
	open_node_conns();
	if (exist_only) {
		ret = check_exist(h, &l);
	} else {
		ret = check_and_repair(&l, h->nr_copies) ? EXIT_SUCCESS
							 : EXIT_FAILURE;
		printf("finish check&repair %s\n", h->name);
	}
	fflush(stdout);
	close_node_conns();
	free(l.oids);
	return ret;
}

int vdi_check(int argc, char **argv)
{
	const char *name = argv[optind];
	struct sd_inode_header h;
	uint32_t vid;
	int ret;

	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &h, NULL);
	if (ret != EXIT_SUCCESS) {
		sd_err("FATAL: no inode objects");
		return ret;
	}
	return vdi_check_inode(&h, vdi_cmd.exist);
}
