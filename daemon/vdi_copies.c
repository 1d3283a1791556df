/*
 * ALTER_VDI_COPY (spec 2.2): change the number of replicas of one standalone
 * replicated VDI and move its objects to match.
 *
 * Three phases. The work phase, under the cluster block on the requester,
 * checks the request and the VDI and rewrites nr_copies in the inode header.
 * The main phase sets the new count in every node's VDI state, so from then
 * on every gateway places the VDI's objects on the new number of holders.
 * The last phase, on the requester after its main phase, lists the objects
 * of the vid held by every node and makes the stored replicas match the
 * placement: a holder that lacks an object gets a copy, a node that is no
 * longer a holder loses its replica. The client is answered after that.
 *
 * Objects are moved with peer requests of the current epoch; an epoch change
 * in the middle fails the request, and the recovery of the new epoch, which
 * already uses the new count, completes the placement.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheep.h"
#include "sheepdog/le.h"

#define MOVE_CHUNK (UINT32_C(4) << 20)

static bool is_me(const struct sd_node *n)
{
	return node_id_eq(&n->nid, &sys->this_node.nid);
}

/* This node's state of vid, and whether any live VDI names vid as parent. */
static bool find_vdi_state(uint32_t vid, struct vdi_state *out,
			   bool *has_children)
{
	uint8_t *buf;
	size_t len = vdi_state_snapshot(&buf);
	bool found = false;

	*has_children = false;
	for (size_t off = 0; off + SD_VDI_STATE_SIZE <= len;
	     off += SD_VDI_STATE_SIZE) {
		struct vdi_state s;

		vdi_state_decode(buf + off, &s);
		if (s.vid == vid) {
			*out = s;
			found = true;
		} else if (s.parent_vid == vid && !s.deleted) {
			*has_children = true;
		}
	}
	free(buf);
	return found;
}

/* Everything ALTER_VDI_COPY may refuse, checked before anything changes. */
static int alter_copy_check(const struct sd_req *rq, struct vdi_state *s)
{
	uint32_t vid = rq->vdi_state.new_vid;
	uint8_t copies = rq->vdi_state.copies;
	struct sd_inode_header h;
	uint8_t buf[SD_INODE_HEADER_SIZE];
	bool children;
	int ret;

	if (!copies || copies > SD_MAX_COPIES) {
		sd_err("ALTER_VDI_COPY: vid %" PRIx32 ": %u copies (1 to %d)",
		       vid, copies, SD_MAX_COPIES);
		return SD_RES_INVALID_PARMS;
	}
	/* Upstream dog sends the policy in vdi_state.copy_policy (0 for
	 * replication); only replication can be altered. */
	if (rq->vdi_state.copy_policy) {
		sd_err("ALTER_VDI_COPY: vid %" PRIx32
		       ": erasure code policy %#x is not supported",
		       vid, rq->vdi_state.copy_policy);
		return SD_RES_INVALID_PARMS;
	}
	if (!vid || vid >= SD_NR_VDIS) {
		sd_err("ALTER_VDI_COPY: invalid vid %" PRIx32, vid);
		return SD_RES_INVALID_PARMS;
	}
	if (!find_vdi_state(vid, s, &children) || s->deleted) {
		sd_err("ALTER_VDI_COPY: no VDI with vid %" PRIx32, vid);
		return SD_RES_NO_VDI;
	}
	if (s->copy_policy) {
		sd_err("ALTER_VDI_COPY: vid %" PRIx32 " is erasure coded", vid);
		return SD_RES_INVALID_PARMS;
	}
	if (s->snapshot || s->parent_vid || children) {
		sd_err("ALTER_VDI_COPY: vid %" PRIx32
		       " is not standalone (snapshot, clone or has children)",
		       vid);
		return SD_RES_INVALID_PARMS;
	}
	if (s->lock_state != 1) {
		sd_err("ALTER_VDI_COPY: vid %" PRIx32 " is locked", vid);
		return SD_RES_VDI_LOCKED;
	}
	ret = sd_read_object(vid_to_vdi_oid(vid), buf, sizeof(buf), 0);
	if (ret != SD_RES_SUCCESS) {
		sd_err("ALTER_VDI_COPY: cannot read inode of vid %" PRIx32
		       ": %s",
		       vid, sd_strerror(ret));
		return SD_RES_VDI_READ;
	}
	sd_inode_header_decode(buf, &h);
	if (!h.name[0] || h.vdi_id != vid || inode_is_snapshot(&h) ||
	    h.parent_vdi_id || h.copy_policy) {
		sd_err("ALTER_VDI_COPY: inode of vid %" PRIx32
		       " is not a standalone replicated VDI",
		       vid);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

int vdi_alter_copy_work(struct request *req)
{
	uint32_t vid = req->rq.vdi_state.new_vid;
	uint8_t copies = req->rq.vdi_state.copies;
	struct vdi_state s;
	int ret = alter_copy_check(&req->rq, &s);

	if (ret != SD_RES_SUCCESS)
		return ret;
	/* Every current holder has the inode: write with the old count. */
	ret = sd_write_object(vid_to_vdi_oid(vid), &copies, 1,
			      SD_INODE_OFF_NR_COPIES, false, s.nr_copies);
	if (ret != SD_RES_SUCCESS) {
		sd_err("ALTER_VDI_COPY: cannot update inode of vid %" PRIx32
		       ": %s",
		       vid, sd_strerror(ret));
		return SD_RES_VDI_WRITE;
	}
	sd_info("vid %" PRIx32 ": copies %u -> %u", vid, s.nr_copies, copies);
	return SD_RES_SUCCESS;
}

int vdi_alter_copy_main(const struct sd_req *req, struct sd_rsp *rsp,
			void *data, const struct sd_node *sender)
{
	uint32_t vid = req->vdi_state.new_vid;

	if (vdi_set_copies(vid, req->vdi_state.copies) != SD_RES_SUCCESS)
		sd_warn("ALTER_VDI_COPY: vid %" PRIx32 " is unknown here", vid);
	return SD_RES_SUCCESS;
}

/* ---- moving replicas ---- */

struct holding {
	uint64_t oid;
	int node; /* index into the ring's nodes */
};

struct holdings {
	struct holding *v;
	size_t nr, cap;
};

static void holdings_add(struct holdings *h, uint64_t oid, int node)
{
	if (h->nr == h->cap) {
		h->cap = h->cap ? h->cap * 2 : 256;
		h->v = xrealloc(h->v, h->cap * sizeof(*h->v));
	}
	h->v[h->nr].oid = oid;
	h->v[h->nr].node = node;
	h->nr++;
}

static int holding_cmp(const void *a, const void *b)
{
	const struct holding *x = a, *y = b;

	if (x->oid != y->oid)
		return x->oid < y->oid ? -1 : 1;
	return x->node - y->node;
}

/* Every oid a node stores; caller frees. SD_RES_* code. */
static int node_obj_list(const struct sd_node *n, uint64_t **oids, size_t *nr)
{
	uint32_t len = 1U << 20;

	if (is_me(n))
		return store_list(oids, nr);
	for (;;) {
		uint8_t *buf = xmalloc(len);
		struct sd_req rq;
		struct sd_rsp rsp;
		int ret;

		sd_init_req(&rq, SD_OP_GET_OBJ_LIST);
		rq.data_length = len;
		ret = peer_exec(&n->nid, &rq, NULL, buf, len, &rsp);
		if (ret == SD_RES_BUFFER_SMALL && len < SD_MAX_PAYLOAD) {
			free(buf);
			len *= 2;
			continue;
		}
		if (ret == SD_RES_SUCCESS) {
			*nr = MIN(rsp.data_length, len) / 8;
			*oids = xcalloc(*nr ? *nr : 1, sizeof(uint64_t));
			for (size_t i = 0; i < *nr; i++)
				(*oids)[i] = get_le64(buf + i * 8);
		}
		free(buf);
		return ret;
	}
}

/* Who stores which object of vid, sorted by oid. */
static int collect_holdings(const struct sd_ring *ring, uint32_t vid,
			    struct holdings *h)
{
	char a[64];

	for (int i = 0; i < ring->nr_nodes; i++) {
		const struct sd_node *n = &ring->nodes[i];
		uint64_t *oids;
		size_t nr;
		int ret;

		if (!n->nr_vnodes)
			continue;
		ret = node_obj_list(n, &oids, &nr);
		if (ret != SD_RES_SUCCESS) {
			sd_err("ALTER_VDI_COPY: cannot list the objects of %s: "
			       "%s",
			       node_addr_to_str(&n->nid, a, sizeof(a)),
			       sd_strerror(ret));
			return ret;
		}
		for (size_t k = 0; k < nr; k++)
			if (oid_to_vid(oids[k]) == vid)
				holdings_add(h, oids[k], i);
		free(oids);
	}
	qsort(h->v, h->nr, sizeof(*h->v), holding_cmp);
	return SD_RES_SUCCESS;
}

static int read_piece(const struct sd_node *n, uint32_t epoch, uint64_t oid,
		      uint64_t off, uint32_t len, void *buf)
{
	struct sd_req rq;
	struct sd_rsp rsp;

	if (is_me(n))
		return store_read(oid, 0, off, len, buf);
	sd_init_req(&rq, SD_OP_READ_PEER);
	rq.epoch = epoch;
	rq.data_length = len;
	rq.obj.oid = oid;
	rq.obj.offset = off;
	return peer_exec(&n->nid, &rq, NULL, buf, len, &rsp);
}

static int write_piece(const struct sd_node *n, uint32_t epoch, uint64_t oid,
		       uint64_t off, uint32_t len, const void *buf,
		       uint64_t size)
{
	struct sd_req rq;
	struct sd_rsp rsp;

	if (is_me(n))
		return off ? store_write(oid, 0, off, len, buf)
			   : store_create_and_write(oid, 0, 0, len, buf, size,
						    NULL);
	sd_init_req(&rq, off ? SD_OP_WRITE_PEER : SD_OP_CREATE_AND_WRITE_PEER);
	rq.epoch = epoch;
	rq.flags = SD_FLAG_CMD_WRITE;
	rq.data_length = len;
	rq.obj.oid = oid;
	rq.obj.offset = off;
	return peer_exec(&n->nid, &rq, buf, NULL, 0, &rsp);
}

/* Copy the whole object from src to dst, piece by piece. */
static int copy_replica(const struct sd_node *src, const struct sd_node *dst,
			uint32_t epoch, uint64_t oid, uint64_t size, void *buf)
{
	for (uint64_t off = 0; off < size; off += MOVE_CHUNK) {
		uint32_t len = MIN(size - off, (uint64_t)MOVE_CHUNK);
		int ret = read_piece(src, epoch, oid, off, len, buf);

		if (ret == SD_RES_SUCCESS)
			ret = write_piece(dst, epoch, oid, off, len, buf, size);
		if (ret != SD_RES_SUCCESS)
			return ret;
	}
	return SD_RES_SUCCESS;
}

static int remove_replica(const struct sd_node *n, uint32_t epoch,
			  uint64_t oid)
{
	struct sd_req rq;
	struct sd_rsp rsp;
	int ret;

	if (is_me(n)) {
		ret = store_remove(oid, 0);
	} else {
		sd_init_req(&rq, SD_OP_REMOVE_PEER);
		rq.epoch = epoch;
		rq.obj.oid = oid;
		ret = peer_exec(&n->nid, &rq, NULL, NULL, 0, &rsp);
	}
	return ret == SD_RES_NO_OBJ ? SD_RES_SUCCESS : ret;
}

/* Make the replicas of one object (held by have[0..nr_have)) match the
 * placement of copies holders. */
static int place_object(const struct vnode_info *vi, uint64_t oid,
			uint8_t copies, uint8_t shift, const int *have,
			int nr_have, void *buf, int *nr_copied, int *nr_removed)
{
	const struct sd_ring *ring = vi->ring;
	int want[SD_MAX_COPIES], nr_want, src = have[0];
	uint64_t size = oid_obj_size(oid, shift);
	char a[64], b[64];

	nr_want = ring_oid_to_nodes(ring, oid, copies, want);
	for (int i = 0; i < nr_have; i++)
		if (is_me(&ring->nodes[have[i]]))
			src = have[i];
	for (int w = 0; w < nr_want; w++) {
		bool held = false;
		int ret;

		for (int i = 0; i < nr_have; i++)
			held = held || have[i] == want[w];
		if (held)
			continue;
		ret = copy_replica(&ring->nodes[src], &ring->nodes[want[w]],
				   vi->epoch, oid, size, buf);
		if (ret != SD_RES_SUCCESS) {
			sd_err("ALTER_VDI_COPY: cannot copy %016" PRIx64
			       " from %s to %s: %s",
			       oid,
			       node_addr_to_str(&ring->nodes[src].nid, a,
						sizeof(a)),
			       node_addr_to_str(&ring->nodes[want[w]].nid, b,
						sizeof(b)),
			       sd_strerror(ret));
			return ret;
		}
		(*nr_copied)++;
	}
	for (int i = 0; i < nr_have; i++) {
		bool wanted = false;
		int ret;

		for (int w = 0; w < nr_want; w++)
			wanted = wanted || have[i] == want[w];
		if (wanted)
			continue;
		ret = remove_replica(&ring->nodes[have[i]], vi->epoch, oid);
		if (ret != SD_RES_SUCCESS) {
			sd_err("ALTER_VDI_COPY: cannot remove %016" PRIx64
			       " from %s: %s",
			       oid,
			       node_addr_to_str(&ring->nodes[have[i]].nid, a,
						sizeof(a)),
			       sd_strerror(ret));
			return ret;
		}
		(*nr_removed)++;
	}
	return SD_RES_SUCCESS;
}

int vdi_alter_copy_after(struct request *req)
{
	uint32_t vid = req->rq.vdi_state.new_vid;
	uint8_t copies = req->rq.vdi_state.copies, c, policy, shift;
	struct vnode_info *vi = get_vnode_info();
	struct holdings h = { 0 };
	int nr_copied = 0, nr_removed = 0, nr_objs = 0;
	void *buf = NULL;
	int ret;

	if (!vi)
		return SD_RES_WAIT_FOR_FORMAT;
	vdi_get_attrs(vid, &c, &policy, &shift);
	ret = collect_holdings(vi->ring, vid, &h);
	if (ret == SD_RES_SUCCESS && h.nr) {
		buf = sd_alloc_buffer(MOVE_CHUNK);
		if (!buf)
			ret = SD_RES_NO_MEM;
	}
	for (size_t i = 0; ret == SD_RES_SUCCESS && i < h.nr;) {
		int have[SD_MAX_NODES > 64 ? 64 : SD_MAX_NODES], nr_have = 0;
		size_t j = i;

		for (; j < h.nr && h.v[j].oid == h.v[i].oid; j++)
			if (nr_have < (int)ARRAY_SIZE(have))
				have[nr_have++] = h.v[j].node;
		ret = place_object(vi, h.v[i].oid, copies, shift, have, nr_have,
				   buf, &nr_copied, &nr_removed);
		nr_objs++;
		i = j;
	}
	if (buf)
		sd_free_buffer(buf, MOVE_CHUNK);
	free(h.v);
	sd_info("vid %" PRIx32 ": %d objects placed on %u copies at epoch %" PRIu32
		": %d replicas copied, %d removed: %s",
		vid, nr_objs, copies, vi->epoch, nr_copied, nr_removed,
		sd_strerror(ret));
	put_vnode_info(vi);
	return ret;
}
