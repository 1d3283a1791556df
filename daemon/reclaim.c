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

#define BTREE_MAGIC 0x6274
#define BTREE_HDR 8
#define BTREE_LEAF_MAX ((SD_BTREE_OBJ_SIZE - BTREE_HDR) / 8)
#define BTREE_ROOT_LEAF_MAX ((4U * SD_MAX_DATA_OBJS - BTREE_HDR) / 8)
#define BTREE_ROOT_IDX_MAX ((4U * SD_MAX_DATA_OBJS - BTREE_HDR) / 16)

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

static void add_leaf(struct obj_refs *r, uint64_t oid)
{
	r->leaves = xrealloc(r->leaves, (r->nr_leaves + 1) * sizeof(*r->leaves));
	r->leaves[r->nr_leaves++] = oid;
}

/* Check a B-tree node header read from storage (spec 5.3). */
static int btree_hdr_check(uint64_t oid, const uint8_t *p, uint16_t depth_want,
			   uint32_t max_entries, uint16_t *depth,
			   uint32_t *entries)
{
	uint16_t magic = get_le16(p), d = get_le16(p + 2);
	uint32_t n = get_le32(p + 4);

	if (magic != BTREE_MAGIC || d < 1 || d > 2 ||
	    (depth_want && d != depth_want) ||
	    n > (d == 1 ? max_entries : BTREE_ROOT_IDX_MAX)) {
		sd_err("B-tree node in %016" PRIx64 " is corrupt: magic %04x,"
		       " depth %u, %u entries", oid, magic, d, n);
		return SD_RES_EIO;
	}
	*depth = d;
	*entries = n;
	return SD_RES_SUCCESS;
}

/* Depth-1 entries {idx, vid} within [lo, hi]. */
static void add_leaf_entries(struct obj_refs *r, const uint8_t *p,
			     uint32_t n, uint32_t lo, uint32_t hi)
{
	for (uint32_t i = 0; i < n; i++) {
		uint32_t idx = get_le32(p + i * 8), vid = get_le32(p + i * 8 + 4);

		if (idx >= lo && idx <= hi && vid)
			obj_refs_add(r, idx, vid);
	}
}

static int read_hyper_index(uint32_t vid, uint32_t lo, uint32_t hi,
			    struct obj_refs *r)
{
	uint64_t oid = vid_to_vdi_oid(vid);
	uint8_t hdr[BTREE_HDR], *buf;
	uint16_t depth;
	uint32_t n;
	int ret = sd_read_object(oid, hdr, sizeof(hdr), SD_INODE_OFF_DATA_VDI_ID);

	if (ret != SD_RES_SUCCESS)
		return ret;
	if (get_le32(hdr) == 0)
		return SD_RES_SUCCESS; /* never initialised: empty */
	ret = btree_hdr_check(oid, hdr, 0, BTREE_ROOT_LEAF_MAX, &depth, &n);
	if (ret != SD_RES_SUCCESS || n == 0)
		return ret;
	buf = xmalloc((size_t)n * (depth == 1 ? 8 : 16));
	ret = sd_read_object(oid, buf, n * (depth == 1 ? 8 : 16),
			     SD_INODE_OFF_DATA_VDI_ID + BTREE_HDR);
	if (ret == SD_RES_SUCCESS && depth == 1)
		add_leaf_entries(r, buf, n, lo, hi);
	for (uint32_t i = 0; depth == 2 && ret == SD_RES_SUCCESS && i < n; i++) {
		uint64_t leaf = get_le64(buf + i * 16 + 8);
		uint8_t lh[BTREE_HDR], *lb;
		uint16_t ld;
		uint32_t ln;

		if (!is_vdi_btree_obj(leaf) || oid_to_vid(leaf) != vid) {
			sd_err("B-tree root of vdi %" PRIx32 " names a foreign "
			       "leaf %016" PRIx64, vid, leaf);
			ret = SD_RES_EIO;
			break;
		}
		add_leaf(r, leaf);
		ret = sd_read_object(leaf, lh, sizeof(lh), 0);
		if (ret == SD_RES_SUCCESS)
			ret = btree_hdr_check(leaf, lh, 1, BTREE_LEAF_MAX, &ld,
					      &ln);
		if (ret != SD_RES_SUCCESS || ln == 0)
			continue;
		lb = xmalloc((size_t)ln * 8);
		ret = sd_read_object(leaf, lb, ln * 8, BTREE_HDR);
		if (ret == SD_RES_SUCCESS)
			add_leaf_entries(r, lb, ln, lo, hi);
		free(lb);
	}
	free(buf);
	return ret;
}

int vdi_read_index(uint32_t vid, const struct sd_inode_header *h,
		   uint32_t lo, uint32_t hi, struct obj_refs *r)
{
	uint64_t nr_slots;
	uint8_t *buf;
	int ret;

	if (h->store_policy == 1)
		return read_hyper_index(vid, lo, hi, r);
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
