/*
 * The hyper-volume B-tree (spec 5.3): lookup, insert with splits, ordered
 * iteration and cloning over the caller's object I/O (btree.h says what the
 * caller provides and what is persisted when).
 *
 * Nodes are worked on in their stored byte form through the little-endian
 * helpers: the root in the caller's buffer, a leaf in a buffer read for the
 * operation at hand. Writes are ordered so that the stored root only ever
 * points at leaves that are complete: a new leaf is created and the counter
 * that numbers it stored before the root names it, and when a full leaf
 * under a depth-2 root is split its first half is copied to a new leaf and
 * entered in the root before the old leaf is cut down to the second half.
 * The key of that new root entry is the last index of the first half
 * (upstream used the entry after it, spec 15.8).
 */
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheepdog/btree.h"
#include "sheepdog/layout.h"
#include "sheepdog/le.h"
#include "sheepdog/log.h"
#include "sheepdog/proto.h"
#include "sheepdog/util.h"

#define INODE_OFF_BTREE_COUNTER 568

/* ---- node bytes ---- */

static uint16_t node_magic(const uint8_t *n)
{
	return get_le16(n);
}

static uint16_t node_depth(const uint8_t *n)
{
	return get_le16(n + 2);
}

static uint32_t node_nr(const uint8_t *n)
{
	return get_le32(n + 4);
}

static void node_set_hdr(uint8_t *n, uint16_t depth, uint32_t nr)
{
	put_le16(n, BTREE_MAGIC);
	put_le16(n + 2, depth);
	put_le32(n + 4, nr);
}

static size_t leaf_off(uint32_t i)
{
	return BTREE_HDR_SIZE + (size_t)i * BTREE_LEAF_ENTRY_SIZE;
}

static size_t root_off(uint32_t i)
{
	return BTREE_HDR_SIZE + (size_t)i * BTREE_ROOT_ENTRY_SIZE;
}

static uint32_t ent_idx(const uint8_t *n, uint32_t i)
{
	return get_le32(n + leaf_off(i));
}

static uint32_t ent_vid(const uint8_t *n, uint32_t i)
{
	return get_le32(n + leaf_off(i) + 4);
}

static void put_ent(uint8_t *n, uint32_t i, uint32_t idx, uint32_t vid)
{
	put_le32(n + leaf_off(i), idx);
	put_le32(n + leaf_off(i) + 4, vid);
}

static uint32_t key_at(const uint8_t *n, uint32_t i)
{
	return get_le32(n + root_off(i));
}

static uint64_t leaf_oid_at(const uint8_t *n, uint32_t i)
{
	return get_le64(n + root_off(i) + 8);
}

static void put_key(uint8_t *n, uint32_t i, uint32_t key, uint64_t oid)
{
	put_le32(n + root_off(i), key);
	put_le32(n + root_off(i) + 4, 0);
	put_le64(n + root_off(i) + 8, oid);
}

/* First entry of a depth-1 node whose idx is >= idx (nr if none). */
static uint32_t ent_lower_bound(const uint8_t *n, uint32_t nr, uint32_t idx)
{
	uint32_t lo = 0, hi = nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (ent_idx(n, mid) < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

/* First root entry whose key is >= idx (nr if none). */
static uint32_t key_lower_bound(const uint8_t *n, uint32_t nr, uint32_t idx)
{
	uint32_t lo = 0, hi = nr;

	while (lo < hi) {
		uint32_t mid = lo + (hi - lo) / 2;

		if (key_at(n, mid) < idx)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo;
}

static uint64_t leaf_oid(uint32_t vid, uint32_t n)
{
	return SD_VDI_BTREE_BIT |
	       (uint64_t)(vid & SD_VDI_MASK) << VDI_SPACE_SHIFT | n;
}

/* ---- validation of what storage gave us ---- */

static int check_entries(uint64_t oid, const uint8_t *n, uint32_t nr)
{
	for (uint32_t i = 1; i < nr; i++) {
		if (ent_idx(n, i - 1) >= ent_idx(n, i)) {
			sd_err("B-tree node %016" PRIx64 ": entry %" PRIu32
			       " (idx %" PRIu32 ") is not above idx %" PRIu32,
			       oid, i, ent_idx(n, i), ent_idx(n, i - 1));
			return SD_RES_EIO;
		}
	}
	return SD_RES_SUCCESS;
}

/* The header of a depth-1 node (a leaf, or a depth-1 root). */
static int check_leaf_hdr(const struct btree *bt, uint64_t oid,
			  const uint8_t *n)
{
	if (node_magic(n) != BTREE_MAGIC) {
		sd_err("B-tree node %016" PRIx64 ": bad magic 0x%04x", oid,
		       node_magic(n));
		return SD_RES_EIO;
	}
	if (node_depth(n) != 1) {
		sd_err("B-tree node %016" PRIx64 ": depth %u, expected 1", oid,
		       node_depth(n));
		return SD_RES_EIO;
	}
	if (node_nr(n) > bt->leaf_cap) {
		sd_err("B-tree node %016" PRIx64 ": %" PRIu32
		       " entries, at most %" PRIu32 " fit",
		       oid, node_nr(n), bt->leaf_cap);
		return SD_RES_EIO;
	}
	return SD_RES_SUCCESS;
}

static int check_root(const struct btree *bt)
{
	uint64_t oid = vid_to_vdi_oid(bt->vid);
	const uint8_t *r = bt->root;
	uint32_t nr = node_nr(r);
	int ret;

	if (node_magic(r) == BTREE_MAGIC && node_depth(r) == 2) {
		if (nr == 0 || nr > bt->root_cap) {
			sd_err("B-tree root of vdi %" PRIx32 ": %" PRIu32
			       " entries, expected 1 to %" PRIu32,
			       bt->vid, nr, bt->root_cap);
			return SD_RES_EIO;
		}
		for (uint32_t i = 0; i < nr; i++) {
			uint64_t leaf = leaf_oid_at(r, i);

			if (i && key_at(r, i - 1) >= key_at(r, i)) {
				sd_err("B-tree root of vdi %" PRIx32
				       ": key %" PRIu32 " of entry %" PRIu32
				       " is not above %" PRIu32,
				       bt->vid, key_at(r, i), i,
				       key_at(r, i - 1));
				return SD_RES_EIO;
			}
			if (leaf != leaf_oid(bt->vid, (uint32_t)leaf) ||
			    (uint32_t)leaf >= bt->btree_counter) {
				sd_err("B-tree root of vdi %" PRIx32
				       ": entry %" PRIu32 " names %016" PRIx64
				       ", not a leaf of this vdi below "
				       "counter %" PRIu32,
				       bt->vid, i, leaf, bt->btree_counter);
				return SD_RES_EIO;
			}
		}
		return SD_RES_SUCCESS;
	}
	ret = check_leaf_hdr(bt, oid, r);
	if (ret != SD_RES_SUCCESS)
		return ret;
	return check_entries(oid, r, nr);
}

/* ---- leaves ---- */

/*
 * A depth-1 node being worked on: the root (stored in the inode at 4664)
 * or a leaf object (stored at 0). buf has room for one more entry.
 */
struct dnode {
	uint64_t oid;
	uint64_t base; /* where buf[0] is stored in the object */
	uint8_t *buf;
	uint32_t nr;
	bool rewrite; /* buf differs from storage beyond the changes made */
};

static void dnode_root(struct btree *bt, struct dnode *dn)
{
	dn->oid = vid_to_vdi_oid(bt->vid);
	dn->base = SD_INODE_OFF_DATA_VDI_ID;
	dn->buf = bt->root;
	dn->nr = node_nr(bt->root);
	dn->rewrite = false;
}

/*
 * Read and validate leaf oid, keeping only its entries in (lo, hi] (all
 * entries <= hi when !has_lo): the range the root gives it.
 */
static int read_leaf(const struct btree *bt, uint64_t oid, bool has_lo,
		     uint32_t lo, uint32_t hi, struct dnode *dn)
{
	uint8_t hdr[BTREE_HDR_SIZE];
	uint32_t nr, first, end;
	int ret;

	memset(dn, 0, sizeof(*dn));
	ret = bt->ops->read_obj(bt->ops->opaque, oid, hdr, sizeof(hdr), 0);
	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = check_leaf_hdr(bt, oid, hdr);
	if (ret != SD_RES_SUCCESS)
		return ret;
	nr = node_nr(hdr);
	dn->buf = xmalloc(leaf_off(nr + 1));
	memcpy(dn->buf, hdr, sizeof(hdr));
	if (nr) {
		ret = bt->ops->read_obj(
		    bt->ops->opaque, oid, dn->buf + BTREE_HDR_SIZE,
		    nr * BTREE_LEAF_ENTRY_SIZE, BTREE_HDR_SIZE);
		if (ret == SD_RES_SUCCESS)
			ret = check_entries(oid, dn->buf, nr);
		if (ret != SD_RES_SUCCESS) {
			free(dn->buf);
			dn->buf = NULL;
			return ret;
		}
	}
	first = has_lo ? ent_lower_bound(dn->buf, nr, lo + 1) : 0;
	if (has_lo && lo == UINT32_MAX)
		first = nr;
	end = hi == UINT32_MAX ? nr : ent_lower_bound(dn->buf, nr, hi + 1);
	if (end < first)
		end = first;
	if (first || end < nr) {
		memmove(dn->buf + leaf_off(0), dn->buf + leaf_off(first),
			(size_t)(end - first) * BTREE_LEAF_ENTRY_SIZE);
		dn->rewrite = true;
	}
	dn->nr = end - first;
	node_set_hdr(dn->buf, 1, dn->nr);
	dn->oid = oid;
	dn->base = 0;
	return SD_RES_SUCCESS;
}

/* Read leaf i of a depth-2 root with the range the root gives it. */
static int read_root_leaf(const struct btree *bt, uint32_t i, struct dnode *dn)
{
	const uint8_t *r = bt->root;

	return read_leaf(bt, leaf_oid_at(r, i), i > 0, i ? key_at(r, i - 1) : 0,
			 key_at(r, i), dn);
}

static int dnode_write(const struct btree *bt, const struct dnode *dn,
		       size_t off, size_t len)
{
	return bt->ops->write_obj(bt->ops->opaque, dn->oid, dn->buf + off, len,
				  dn->base + off);
}

static int write_counter(const struct btree *bt)
{
	uint8_t buf[4];

	put_le32(buf, bt->btree_counter);
	return bt->ops->write_obj(bt->ops->opaque, vid_to_vdi_oid(bt->vid), buf,
				  sizeof(buf), INODE_OFF_BTREE_COUNTER);
}

/* Number nr new leaves and store the counter before any of them exists. */
static int alloc_leaves(struct btree *bt, uint32_t nr, uint64_t *first)
{
	int ret;

	if (bt->btree_counter > UINT32_MAX - nr) {
		sd_err("B-tree of vdi %" PRIx32 ": leaf numbers exhausted",
		       bt->vid);
		return SD_RES_NO_SPACE;
	}
	*first = leaf_oid(bt->vid, bt->btree_counter);
	bt->btree_counter += nr;
	ret = write_counter(bt);
	if (ret != SD_RES_SUCCESS)
		bt->btree_counter -= nr;
	return ret;
}

/*
 * Set idx in a depth-1 node that has it already or has room, and store
 * the change: one write when entries moved (so that a crash never shows a
 * count that disagrees with the entries), the entry and then the header
 * for an append.
 */
static int dnode_put(const struct btree *bt, struct dnode *dn, uint32_t idx,
		     uint32_t vid)
{
	uint32_t p = ent_lower_bound(dn->buf, dn->nr, idx);
	int ret;

	if (p < dn->nr && ent_idx(dn->buf, p) == idx) {
		if (ent_vid(dn->buf, p) == vid && !dn->rewrite)
			return SD_RES_SUCCESS;
		put_ent(dn->buf, p, idx, vid);
		if (dn->rewrite)
			return dnode_write(bt, dn, 0, leaf_off(dn->nr));
		return dnode_write(bt, dn, leaf_off(p), BTREE_LEAF_ENTRY_SIZE);
	}
	memmove(dn->buf + leaf_off(p + 1), dn->buf + leaf_off(p),
		(size_t)(dn->nr - p) * BTREE_LEAF_ENTRY_SIZE);
	put_ent(dn->buf, p, idx, vid);
	dn->nr++;
	node_set_hdr(dn->buf, 1, dn->nr);
	if (dn->rewrite || p + 1 < dn->nr)
		return dnode_write(bt, dn, 0, leaf_off(dn->nr));
	ret = dnode_write(bt, dn, leaf_off(p), BTREE_LEAF_ENTRY_SIZE);
	if (ret != SD_RES_SUCCESS)
		return ret;
	return dnode_write(bt, dn, 0, BTREE_HDR_SIZE);
}

/*
 * Split the entries of a full depth-1 node n into halves a (first h) and b
 * (the rest), with (idx, vid) added to the half it belongs in. Returns the
 * new buffers; each is a complete leaf.
 */
static void split_entries(const uint8_t *n, uint32_t nr, uint32_t idx,
			  uint32_t vid, uint8_t **a, uint32_t *na, uint8_t **b,
			  uint32_t *nb)
{
	uint32_t h = nr / 2, p;
	bool in_a = idx < ent_idx(n, h - 1);
	uint8_t *dst;
	uint32_t *ndst;

	*na = h;
	*nb = nr - h;
	*a = xmalloc(leaf_off(*na + 1));
	*b = xmalloc(leaf_off(*nb + 1));
	memcpy(*a + leaf_off(0), n + leaf_off(0),
	       (size_t)h * BTREE_LEAF_ENTRY_SIZE);
	memcpy(*b + leaf_off(0), n + leaf_off(h),
	       (size_t)*nb * BTREE_LEAF_ENTRY_SIZE);
	dst = in_a ? *a : *b;
	ndst = in_a ? na : nb;
	p = ent_lower_bound(dst, *ndst, idx);
	memmove(dst + leaf_off(p + 1), dst + leaf_off(p),
		(size_t)(*ndst - p) * BTREE_LEAF_ENTRY_SIZE);
	put_ent(dst, p, idx, vid);
	(*ndst)++;
	node_set_hdr(*a, 1, *na);
	node_set_hdr(*b, 1, *nb);
}

/* The depth-1 root is full: it becomes a depth-2 root over two leaves. */
static int split_root(struct btree *bt, uint32_t idx, uint32_t vid)
{
	uint32_t nr = node_nr(bt->root), na, nb;
	size_t old_len = leaf_off(nr);
	uint8_t *a, *b;
	uint64_t oid;
	int ret;

	if (bt->root_cap < 2)
		return SD_RES_NO_SPACE;
	split_entries(bt->root, nr, idx, vid, &a, &na, &b, &nb);
	ret = alloc_leaves(bt, 2, &oid);
	if (ret == SD_RES_SUCCESS)
		ret =
		    bt->ops->create_obj(bt->ops->opaque, oid, a, leaf_off(na));
	if (ret == SD_RES_SUCCESS)
		ret = bt->ops->create_obj(bt->ops->opaque, oid + 1, b,
					  leaf_off(nb));
	if (ret == SD_RES_SUCCESS) {
		/* the stored bytes past the new entries are ignored (the count
		 * says where the node ends); in memory they are cleared */
		memset(bt->root, 0, old_len);
		node_set_hdr(bt->root, 2, 2);
		put_key(bt->root, 0, ent_idx(a, na - 1), oid);
		put_key(bt->root, 1, ent_idx(b, nb - 1), oid + 1);
		ret = bt->ops->write_obj(bt->ops->opaque,
					 vid_to_vdi_oid(bt->vid), bt->root,
					 root_off(2), SD_INODE_OFF_DATA_VDI_ID);
	}
	free(a);
	free(b);
	return ret;
}

static int root_write(const struct btree *bt, size_t off, size_t len)
{
	return bt->ops->write_obj(bt->ops->opaque, vid_to_vdi_oid(bt->vid),
				  bt->root + off, len,
				  SD_INODE_OFF_DATA_VDI_ID + off);
}

/* Insert root entry (key, oid) at position j of a depth-2 root with room. */
static int root_insert(struct btree *bt, uint32_t j, uint32_t key, uint64_t oid)
{
	uint32_t nr = node_nr(bt->root);
	int ret;

	memmove(bt->root + root_off(j + 1), bt->root + root_off(j),
		(size_t)(nr - j) * BTREE_ROOT_ENTRY_SIZE);
	put_key(bt->root, j, key, oid);
	node_set_hdr(bt->root, 2, nr + 1);
	if (j < nr)
		return root_write(bt, 0, root_off(nr + 1));
	ret = root_write(bt, root_off(j), BTREE_ROOT_ENTRY_SIZE);
	if (ret != SD_RES_SUCCESS)
		return ret;
	return root_write(bt, 0, BTREE_HDR_SIZE);
}

static int set_depth2(struct btree *bt, uint32_t idx, uint32_t vid)
{
	uint32_t nr = node_nr(bt->root), j, p, na, nb;
	bool beyond;
	struct dnode leaf;
	uint8_t *a = NULL, *b = NULL;
	uint64_t oid;
	int ret;

	j = key_lower_bound(bt->root, nr, idx);
	beyond = j == nr;
	if (beyond)
		j = nr - 1;
	ret = read_root_leaf(bt, j, &leaf);
	if (ret != SD_RES_SUCCESS)
		return ret;
	p = ent_lower_bound(leaf.buf, leaf.nr, idx);
	if ((p < leaf.nr && ent_idx(leaf.buf, p) == idx) ||
	    leaf.nr < bt->leaf_cap) {
		if (vid == 0 && !(p < leaf.nr && ent_idx(leaf.buf, p) == idx))
			goto out;
		ret = dnode_put(bt, &leaf, idx, vid);
		if (ret == SD_RES_SUCCESS && beyond) {
			/* the last leaf takes an index above every key */
			put_key(bt->root, j, idx, leaf.oid);
			ret = root_write(bt, root_off(j), 4);
		}
		goto out;
	}
	if (vid == 0)
		goto out;
	if (nr >= bt->root_cap) {
		sd_err("B-tree of vdi %" PRIx32 ": root full with %" PRIu32
		       " leaves, cannot index %" PRIu32,
		       bt->vid, nr, idx);
		ret = SD_RES_NO_SPACE;
		goto out;
	}
	if (beyond) {
		/* the last leaf is full: start a new one */
		uint8_t one[BTREE_HDR_SIZE + BTREE_LEAF_ENTRY_SIZE];

		node_set_hdr(one, 1, 1);
		put_ent(one, 0, idx, vid);
		ret = alloc_leaves(bt, 1, &oid);
		if (ret == SD_RES_SUCCESS)
			ret = bt->ops->create_obj(bt->ops->opaque, oid, one,
						  sizeof(one));
		if (ret == SD_RES_SUCCESS)
			ret = root_insert(bt, nr, idx, oid);
		goto out;
	}
	/*
	 * Split: the first half goes to a new leaf keyed by its own last idx,
	 * entered in the root before the old leaf is cut to the second half.
	 */
	split_entries(leaf.buf, leaf.nr, idx, vid, &a, &na, &b, &nb);
	ret = alloc_leaves(bt, 1, &oid);
	if (ret == SD_RES_SUCCESS)
		ret =
		    bt->ops->create_obj(bt->ops->opaque, oid, a, leaf_off(na));
	if (ret == SD_RES_SUCCESS)
		ret = root_insert(bt, j, ent_idx(a, na - 1), oid);
	if (ret == SD_RES_SUCCESS)
		ret = bt->ops->write_obj(bt->ops->opaque, leaf.oid, b,
					 leaf_off(nb), 0);
out:
	free(a);
	free(b);
	free(leaf.buf);
	return ret;
}

/* ---- API ---- */

int btree_open_capacity(struct btree *bt, uint32_t vid, uint32_t btree_counter,
			uint8_t *root, const struct btree_ops *ops,
			uint32_t leaf_cap, uint32_t root_cap)
{
	if (leaf_cap < 2 || leaf_cap > BTREE_MAX_LEAF_ENTRIES || root_cap < 2 ||
	    root_cap > BTREE_MAX_ROOT_ENTRIES)
		return SD_RES_INVALID_PARMS;
	bt->vid = vid;
	bt->btree_counter = btree_counter;
	bt->root = root;
	bt->ops = ops;
	bt->leaf_cap = leaf_cap;
	bt->root_cap = root_cap;
	if (get_le32(root) == 0) {
		/* never initialised: every slot is a hole */
		node_set_hdr(root, 1, 0);
		return SD_RES_SUCCESS;
	}
	return check_root(bt);
}

int btree_open(struct btree *bt, uint32_t vid, uint32_t btree_counter,
	       uint8_t *root, const struct btree_ops *ops)
{
	return btree_open_capacity(bt, vid, btree_counter, root, ops,
				   BTREE_MAX_LEAF_ENTRIES,
				   BTREE_MAX_ROOT_ENTRIES);
}

unsigned int btree_depth(const struct btree *bt)
{
	return node_depth(bt->root);
}

size_t btree_root_len(const struct btree *bt)
{
	uint32_t nr = node_nr(bt->root);

	return btree_depth(bt) == 2 ? root_off(nr) : leaf_off(nr);
}

int btree_lookup(const struct btree *bt, uint32_t idx, uint32_t *vid)
{
	const uint8_t *r = bt->root;
	uint32_t nr = node_nr(r), j, p;
	struct dnode leaf;
	int ret;

	*vid = 0;
	if (btree_depth(bt) == 1) {
		p = ent_lower_bound(r, nr, idx);
		if (p < nr && ent_idx(r, p) == idx)
			*vid = ent_vid(r, p);
		return SD_RES_SUCCESS;
	}
	j = key_lower_bound(r, nr, idx);
	if (j == nr)
		return SD_RES_SUCCESS;
	ret = read_root_leaf(bt, j, &leaf);
	if (ret != SD_RES_SUCCESS)
		return ret;
	p = ent_lower_bound(leaf.buf, leaf.nr, idx);
	if (p < leaf.nr && ent_idx(leaf.buf, p) == idx)
		*vid = ent_vid(leaf.buf, p);
	free(leaf.buf);
	return SD_RES_SUCCESS;
}

int btree_set(struct btree *bt, uint32_t idx, uint32_t vid)
{
	struct dnode root;
	uint32_t p;

	if (btree_depth(bt) == 2)
		return set_depth2(bt, idx, vid);
	dnode_root(bt, &root);
	p = ent_lower_bound(root.buf, root.nr, idx);
	if (p < root.nr && ent_idx(root.buf, p) == idx)
		return dnode_put(bt, &root, idx, vid);
	if (vid == 0)
		return SD_RES_SUCCESS;
	if (root.nr < bt->leaf_cap)
		return dnode_put(bt, &root, idx, vid);
	return split_root(bt, idx, vid);
}

static int visit_entries(const uint8_t *n, uint32_t nr, btree_visit_fn fn,
			 void *arg)
{
	for (uint32_t i = 0; i < nr; i++) {
		int ret;

		if (!ent_vid(n, i))
			continue;
		ret = fn(ent_idx(n, i), ent_vid(n, i), arg);
		if (ret)
			return ret;
	}
	return SD_RES_SUCCESS;
}

int btree_for_each(const struct btree *bt, btree_visit_fn fn, void *arg)
{
	uint32_t nr = node_nr(bt->root);
	int ret = SD_RES_SUCCESS;

	if (btree_depth(bt) == 1)
		return visit_entries(bt->root, nr, fn, arg);
	for (uint32_t j = 0; j < nr && ret == SD_RES_SUCCESS; j++) {
		struct dnode leaf;

		ret = read_root_leaf(bt, j, &leaf);
		if (ret != SD_RES_SUCCESS)
			break;
		ret = visit_entries(leaf.buf, leaf.nr, fn, arg);
		free(leaf.buf);
	}
	return ret;
}

int btree_for_each_leaf(const struct btree *bt, btree_leaf_fn fn, void *arg)
{
	uint32_t nr = node_nr(bt->root);

	if (btree_depth(bt) == 1)
		return 0;
	for (uint32_t j = 0; j < nr; j++) {
		int ret = fn(leaf_oid_at(bt->root, j), arg);

		if (ret)
			return ret;
	}
	return 0;
}

int btree_clone(const struct btree *src, struct btree *dst)
{
	uint32_t nr = node_nr(src->root);
	int ret = SD_RES_SUCCESS;

	if (src == dst || src->root == dst->root)
		return SD_RES_INVALID_PARMS;
	if (btree_depth(src) == 1) {
		if (nr > dst->leaf_cap)
			return SD_RES_INVALID_PARMS;
		memset(dst->root, 0, BTREE_NODE_SIZE);
		memcpy(dst->root, src->root, btree_root_len(src));
		return SD_RES_SUCCESS;
	}
	if (nr > dst->root_cap || src->leaf_cap > dst->leaf_cap)
		return SD_RES_INVALID_PARMS;
	if (dst->btree_counter > UINT32_MAX - nr)
		return SD_RES_NO_SPACE;
	memset(dst->root, 0, BTREE_NODE_SIZE);
	node_set_hdr(dst->root, 1, 0);
	for (uint32_t j = 0; j < nr; j++) {
		uint64_t oid = leaf_oid(dst->vid, dst->btree_counter);
		struct dnode leaf;

		ret = read_root_leaf(src, j, &leaf);
		if (ret != SD_RES_SUCCESS)
			break;
		ret = dst->ops->create_obj(dst->ops->opaque, oid, leaf.buf,
					   leaf_off(leaf.nr));
		free(leaf.buf);
		if (ret != SD_RES_SUCCESS)
			break;
		dst->btree_counter++;
		put_key(dst->root, j, key_at(src->root, j), oid);
	}
	if (ret != SD_RES_SUCCESS) {
		/* leave dst an empty, valid tree */
		memset(dst->root, 0, BTREE_NODE_SIZE);
		node_set_hdr(dst->root, 1, 0);
		return ret;
	}
	node_set_hdr(dst->root, 2, nr);
	return SD_RES_SUCCESS;
}
