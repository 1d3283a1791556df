/*
 * Space reclamation by reachability. Snapshots and clones share data
 * objects: slot i of a derived inode may name an object (v, i) that belongs
 * to an ancestor v. Every inode that can reference (v, i) got the reference
 * by copying the index of an inode that had it, and records that inode as
 * its parent, so the only possible referrers are v's descendants, which are
 * all in one family (the tree of parent links, kept through deleted
 * VDIs' tombstones).
 *
 * When an inode stops referencing objects (a slot is overwritten or
 * discarded, or the VDI is deleted) the candidates are checked against
 * the index of every live member of the family, and only objects nobody
 * references are removed. Any failure to read a member keeps every
 * candidate: a leaked object can be found later, a removed one is lost.
 * No reference counts are stored, so there is nothing to get out of step.
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheep.h"
#include "sheepdog/le.h"

void obj_refs_add(struct obj_refs *r, uint32_t idx, uint32_t vid)
{
	if (r->nr == r->cap) {
		r->cap = r->cap ? r->cap * 2 : 64;
		r->ent = xrealloc(r->ent, r->cap * sizeof(*r->ent));
	}
	r->ent[r->nr].idx = idx;
	r->ent[r->nr].vid = vid;
	r->nr++;
}

void obj_refs_free(struct obj_refs *r)
{
	free(r->ent);
	free(r->leaves);
	memset(r, 0, sizeof(*r));
}

/* The B-tree library's object I/O, through the gateway. */
static int bt_read(void *opaque, uint64_t oid, void *buf, uint32_t len,
		   uint64_t offset)
{
	return sd_read_object(oid, buf, len, offset);
}

static int bt_write(void *opaque, uint64_t oid, const void *buf, uint32_t len,
		    uint64_t offset)
{
	return sd_write_object(oid, buf, len, offset, false,
			       *(const uint8_t *)opaque);
}

static int bt_create(void *opaque, uint64_t oid, const void *buf,
		     uint32_t len)
{
	return sd_write_object(oid, buf, len, 0, true, *(const uint8_t *)opaque);
}

int vdi_open_btree(uint32_t vid, const struct sd_inode_header *h,
		   struct btree *bt, struct btree_ops *ops, uint8_t *copies)
{
	uint64_t oid = vid_to_vdi_oid(vid);
	uint8_t *root = xzalloc(BTREE_NODE_SIZE);
	int ret;

	*copies = h->nr_copies;
	ops->opaque = copies;
	ops->read_obj = bt_read;
	ops->write_obj = bt_write;
	ops->create_obj = bt_create;
	/* The node header says how much of the 4 MiB root area is in use;
	 * btree_open() checks all of it. */
	ret = sd_read_object(oid, root, BTREE_HDR_SIZE, SD_INODE_OFF_DATA_VDI_ID);
	if (ret == SD_RES_SUCCESS && get_le32(root)) {
		uint64_t len = BTREE_HDR_SIZE +
			       (uint64_t)get_le32(root + 4) *
				       (get_le16(root + 2) == 1
						? BTREE_LEAF_ENTRY_SIZE
						: BTREE_ROOT_ENTRY_SIZE);

		ret = len <= BTREE_NODE_SIZE
			      ? sd_read_object(oid, root, len,
					       SD_INODE_OFF_DATA_VDI_ID)
			      : SD_RES_EIO;
	}
	if (ret == SD_RES_SUCCESS)
		ret = btree_open(bt, vid, h->btree_counter, root, ops);
	if (ret != SD_RES_SUCCESS) {
		sd_err("vdi %" PRIx32 ": cannot open its B-tree index: %s", vid,
		       sd_strerror(ret));
		free(root);
	}
	return ret;
}

struct range_visit {
	struct obj_refs *r;
	uint32_t lo, hi;
};

static int visit_entry(uint32_t idx, uint32_t vid, void *arg)
{
	struct range_visit *v = arg;

	if (idx >= v->lo && idx <= v->hi)
		obj_refs_add(v->r, idx, vid);
	return 0;
}

static int visit_leaf(uint64_t oid, void *arg)
{
	struct obj_refs *r = arg;

	r->leaves = xrealloc(r->leaves, (r->nr_leaves + 1) * sizeof(*r->leaves));
	r->leaves[r->nr_leaves++] = oid;
	return 0;
}

static int read_hyper_index(uint32_t vid, const struct sd_inode_header *h,
			    uint32_t lo, uint32_t hi, struct obj_refs *r)
{
	struct range_visit v = { .r = r, .lo = lo, .hi = hi };
	struct btree_ops ops;
	struct btree bt;
	uint8_t copies;
	int ret = vdi_open_btree(vid, h, &bt, &ops, &copies);

	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = btree_for_each(&bt, visit_entry, &v);
	if (ret == SD_RES_SUCCESS)
		ret = btree_for_each_leaf(&bt, visit_leaf, r);
	free(bt.root);
	return ret;
}

int vdi_read_index(uint32_t vid, const struct sd_inode_header *h,
		   uint32_t lo, uint32_t hi, struct obj_refs *r)
{
	uint64_t nr_slots;
	uint8_t *buf;
	int ret;

	if (h->store_policy == 1)
		return read_hyper_index(vid, h, lo, hi, r);
	nr_slots = MIN(inode_nr_slots(h->vdi_size, h->block_size_shift),
		       (uint64_t)SD_MAX_DATA_OBJS);
	if (nr_slots == 0 || lo >= nr_slots)
		return SD_RES_SUCCESS;
	hi = MIN((uint64_t)hi, nr_slots - 1);
	buf = xmalloc(((size_t)hi - lo + 1) * 4);
	ret = sd_read_object(vid_to_vdi_oid(vid), buf, (hi - lo + 1) * 4,
			     SD_INODE_OFF_DATA_VDI_ID + (uint64_t)lo * 4);
	for (uint32_t i = 0; ret == SD_RES_SUCCESS && i <= hi - lo; i++) {
		uint32_t v = get_le32(buf + (size_t)i * 4);

		if (v)
			obj_refs_add(r, lo + i, v);
	}
	free(buf);
	return ret;
}

static int cmp_ref(const void *a, const void *b)
{
	const struct obj_ref *x = a, *y = b;

	if (x->idx != y->idx)
		return x->idx < y->idx ? -1 : 1;
	return x->vid < y->vid ? -1 : x->vid > y->vid;
}

/* Mark the candidates that member's index still references. */
static int mark_referenced(uint32_t member, struct obj_ref *cand, size_t nr,
			   bool *ref, size_t *nr_left)
{
	struct sd_inode_header h;
	uint8_t hdr[SD_INODE_HEADER_SIZE];
	struct obj_refs r = { 0 };
	uint32_t lo = UINT32_MAX, hi = 0;
	int ret;

	for (size_t i = 0; i < nr; i++)
		if (!ref[i]) {
			lo = MIN(lo, cand[i].idx);
			hi = MAX(hi, cand[i].idx);
		}
	ret = sd_read_object(vid_to_vdi_oid(member), hdr, sizeof(hdr), 0);
	if (ret != SD_RES_SUCCESS)
		return ret;
	sd_inode_header_decode(hdr, &h);
	if (!h.name[0])
		return SD_RES_SUCCESS; /* deleted meanwhile: a tombstone */
	ret = vdi_read_index(member, &h, lo, hi, &r);
	for (size_t i = 0; ret == SD_RES_SUCCESS && i < r.nr; i++) {
		struct obj_ref *c = bsearch(&r.ent[i], cand, nr, sizeof(*cand),
					    cmp_ref);

		if (c && !ref[c - cand]) {
			ref[c - cand] = true;
			(*nr_left)--;
		}
	}
	obj_refs_free(&r);
	return ret;
}

int vdi_reclaim(uint32_t vid, struct obj_refs *cand)
{
	uint32_t *members;
	size_t nr_members, nr_left, removed = 0;
	bool *ref;
	int ret = SD_RES_SUCCESS;

	if (!cand->nr)
		return SD_RES_SUCCESS;
	if (!vdi_states_complete()) {
		sd_err("vdi %" PRIx32 ": VDI states of other nodes are "
		       "incomplete; keeping %zu objects that may be "
		       "unreferenced", vid, cand->nr);
		return SD_RES_AGAIN;
	}
	qsort(cand->ent, cand->nr, sizeof(*cand->ent), cmp_ref);
	for (size_t i = 1, j = 1; i <= cand->nr; i++) {
		if (i == cand->nr) {
			cand->nr = j;
			break;
		}
		if (cmp_ref(&cand->ent[i], &cand->ent[j - 1]))
			cand->ent[j++] = cand->ent[i];
	}
	ref = xzalloc(cand->nr * sizeof(*ref));
	nr_left = cand->nr;
	vdi_family(vid, &members, &nr_members);
	for (size_t m = 0; m < nr_members && nr_left; m++) {
		ret = mark_referenced(members[m], cand->ent, cand->nr, ref,
				      &nr_left);
		if (ret != SD_RES_SUCCESS) {
			sd_err("vdi %" PRIx32 ": cannot read the index of vdi %"
			       PRIx32 " (%s); keeping %zu objects that may be "
			       "unreferenced", vid, members[m],
			       sd_strerror(ret), nr_left);
			break;
		}
	}
	for (size_t i = 0; ret == SD_RES_SUCCESS && i < cand->nr; i++) {
		uint64_t oid;
		int r;

		if (ref[i])
			continue;
		oid = vid_to_data_oid(cand->ent[i].vid, cand->ent[i].idx);
		r = sd_remove_object(oid);
		if (r == SD_RES_SUCCESS)
			removed++;
		else if (r != SD_RES_NO_OBJ)
			sd_err("vdi %" PRIx32 ": cannot remove unreferenced "
			       "object %016" PRIx64 ": %s", vid, oid,
			       sd_strerror(r));
	}
	if (removed)
		sd_info("vdi %" PRIx32 ": removed %zu unreferenced objects, "
			"%zu still shared", vid, removed, cand->nr - nr_left);
	free(ref);
	free(members);
	return ret;
}
