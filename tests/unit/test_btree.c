/*
 * The hyper-volume B-tree (spec 5.3) over an in-memory object store:
 * lookups, inserts in sequential and random order, updates, splits forced
 * with tiny node capacities (including a full leaf under a depth-2 root,
 * where upstream keyed the new leaf one entry too far), iteration order,
 * clone independence, refusal of corrupt nodes, and what an interrupted
 * split leaves behind. After each story the stored objects are decoded
 * here, independently of lib/btree.c, and checked entry by entry.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/btree.h"
#include "sheepdog/layout.h"
#include "sheepdog/le.h"
#include "sheepdog/proto.h"

#define VID_A 0x7c2b25
#define VID_B 0x00ab12
#define VID_PARENT 0x123456

/* ---- an object store in memory ---- */

struct obj {
	uint64_t oid;
	uint8_t *data;
	size_t len; /* bytes stored; reads past it give zeros */
};

struct store {
	struct obj objs[4096];
	int nr;
	unsigned int writes, creates;
	uint64_t fail_write_oid; /* writes to this oid fail when non-zero */
};

static struct obj *store_find(struct store *s, uint64_t oid)
{
	for (int i = 0; i < s->nr; i++)
		if (s->objs[i].oid == oid)
			return &s->objs[i];
	return NULL;
}

static void store_put(struct store *s, uint64_t oid, const void *buf,
		      size_t len, uint64_t off)
{
	struct obj *o = store_find(s, oid);

	if (!o) {
		assert_true(s->nr < 4096);
		o = &s->objs[s->nr++];
		o->oid = oid;
		o->data = NULL;
		o->len = 0;
	}
	if (off + len > o->len) {
		o->data = realloc(o->data, off + len);
		assert_non_null(o->data);
		memset(o->data + o->len, 0, off + len - o->len);
		o->len = off + len;
	}
	memcpy(o->data + off, buf, len);
}

static void store_free(struct store *s)
{
	for (int i = 0; i < s->nr; i++)
		free(s->objs[i].data);
	free(s);
}

static int fake_read(void *opaque, uint64_t oid, void *buf, uint32_t len,
		     uint64_t off)
{
	struct obj *o = store_find(opaque, oid);

	if (!o)
		return SD_RES_NO_OBJ;
	memset(buf, 0, len);
	if (off < o->len)
		memcpy(buf, o->data + off,
		       o->len - off < len ? o->len - off : len);
	return SD_RES_SUCCESS;
}

static int fake_write(void *opaque, uint64_t oid, const void *buf, uint32_t len,
		      uint64_t off)
{
	struct store *s = opaque;

	if (s->fail_write_oid == oid)
		return SD_RES_EIO;
	if (!store_find(s, oid))
		return SD_RES_NO_OBJ;
	assert_true(off + len <=
		    (is_vdi_obj(oid) ? SD_INODE_SIZE : SD_BTREE_OBJ_SIZE));
	s->writes++;
	store_put(s, oid, buf, len, off);
	return SD_RES_SUCCESS;
}

static int fake_create(void *opaque, uint64_t oid, const void *buf,
		       uint32_t len)
{
	struct store *s = opaque;

	/* leaves are numbered from the counter: never created twice */
	assert_null(store_find(s, oid));
	assert_true(is_vdi_btree_obj(oid));
	assert_true(len <= SD_BTREE_OBJ_SIZE);
	s->creates++;
	store_put(s, oid, buf, len, 0);
	return SD_RES_SUCCESS;
}

/* One VDI: its inode in the store, its tree opened over it. */
struct fixture {
	struct store *s;
	struct btree_ops ops;
	struct btree bt;
	uint8_t *root;
};

static void inode_create(struct store *s, uint32_t vid)
{
	uint8_t hdr[SD_INODE_HEADER_SIZE + 8] = {0};

	put_le32(hdr + 560, vid);
	put_le16(hdr + SD_INODE_HEADER_SIZE, BTREE_MAGIC);
	put_le16(hdr + SD_INODE_HEADER_SIZE + 2, 1);
	store_put(s, vid_to_vdi_oid(vid), hdr, sizeof(hdr), 0);
}

static uint32_t stored_counter(struct store *s, uint32_t vid)
{
	uint8_t b[4];

	assert_int_equal(fake_read(s, vid_to_vdi_oid(vid), b, 4, 568),
			 SD_RES_SUCCESS);
	return get_le32(b);
}

/* (Re)open vid's tree from what is stored, like a new dog or sheep would. */
static int fixture_open(struct fixture *f, uint32_t vid, uint32_t leaf_cap,
			uint32_t root_cap)
{
	if (!f->root)
		f->root = malloc(BTREE_NODE_SIZE);
	assert_non_null(f->root);
	assert_int_equal(fake_read(f->s, vid_to_vdi_oid(vid), f->root,
				   BTREE_NODE_SIZE, SD_INODE_OFF_DATA_VDI_ID),
			 SD_RES_SUCCESS);
	return btree_open_capacity(&f->bt, vid, stored_counter(f->s, vid),
				   f->root, &f->ops, leaf_cap, root_cap);
}

static void fixture_init(struct fixture *f, struct store *s, uint32_t vid,
			 uint32_t leaf_cap, uint32_t root_cap)
{
	memset(f, 0, sizeof(*f));
	f->s = s;
	f->ops = (struct btree_ops){.opaque = s,
				    .read_obj = fake_read,
				    .write_obj = fake_write,
				    .create_obj = fake_create};
	inode_create(s, vid);
	assert_int_equal(fixture_open(f, vid, leaf_cap, root_cap),
			 SD_RES_SUCCESS);
}

static void fixture_free(struct fixture *f)
{
	free(f->root);
	f->root = NULL;
}

/* ---- the expected mapping ---- */

struct model {
	uint32_t idx[20000], vid[20000];
	uint32_t nr;
};

static void model_set(struct model *m, uint32_t idx, uint32_t vid)
{
	uint32_t p = 0;

	while (p < m->nr && m->idx[p] < idx)
		p++;
	if (p < m->nr && m->idx[p] == idx) {
		m->vid[p] = vid;
		return;
	}
	assert_true(m->nr < 20000);
	memmove(m->idx + p + 1, m->idx + p, (m->nr - p) * sizeof(uint32_t));
	memmove(m->vid + p + 1, m->vid + p, (m->nr - p) * sizeof(uint32_t));
	m->idx[p] = idx;
	m->vid[p] = vid;
	m->nr++;
}

struct walk {
	uint32_t idx[20000], vid[20000];
	uint32_t nr;
};

static int walk_fn(uint32_t idx, uint32_t vid, void *arg)
{
	struct walk *w = arg;

	assert_true(w->nr < 20000);
	w->idx[w->nr] = idx;
	w->vid[w->nr] = vid;
	w->nr++;
	return 0;
}

/* for_each and lookup agree with the model (entries with vid 0 are
 * holes), in ascending idx order. */
static void check_tree(const struct btree *bt, const struct model *m)
{
	struct walk *w = calloc(1, sizeof(*w));
	uint32_t n = 0, vid;

	assert_non_null(w);
	assert_int_equal(btree_for_each(bt, walk_fn, w), SD_RES_SUCCESS);
	for (uint32_t i = 0; i < m->nr; i++) {
		assert_int_equal(btree_lookup(bt, m->idx[i], &vid),
				 SD_RES_SUCCESS);
		assert_int_equal(vid, m->vid[i]);
		if (!m->vid[i])
			continue;
		assert_true(n < w->nr);
		assert_int_equal(w->idx[n], m->idx[i]);
		assert_int_equal(w->vid[n], m->vid[i]);
		n++;
	}
	assert_int_equal(n, w->nr);
	free(w);
}

/*
 * Decode the stored tree of vid without lib/btree.c and check it holds
 * exactly the model: every leaf a valid node within capacity, sorted, its
 * entries all in (previous key, key], and every entry of the model in the
 * one leaf whose range covers it. Returns the number of leaves.
 */
static uint32_t check_stored(struct store *s, uint32_t vid,
			     const struct model *m, uint32_t leaf_cap)
{
	uint8_t *root = malloc(BTREE_NODE_SIZE), hdr[8];
	uint32_t counter = stored_counter(s, vid), nr, n = 0;
	uint64_t prev = 0;
	bool has_prev = false;

	assert_non_null(root);
	assert_int_equal(fake_read(s, vid_to_vdi_oid(vid), root,
				   BTREE_NODE_SIZE, SD_INODE_OFF_DATA_VDI_ID),
			 SD_RES_SUCCESS);
	assert_int_equal(get_le16(root), BTREE_MAGIC);
	nr = get_le32(root + 4);
	if (get_le16(root + 2) == 1) {
		assert_int_equal(nr, m->nr);
		for (uint32_t i = 0; i < nr; i++) {
			assert_int_equal(get_le32(root + 8 + 8 * i), m->idx[i]);
			assert_int_equal(get_le32(root + 12 + 8 * i),
					 m->vid[i]);
		}
		free(root);
		return 0;
	}
	assert_int_equal(get_le16(root + 2), 2);
	for (uint32_t j = 0; j < nr; j++) {
		uint32_t key = get_le32(root + 8 + 16 * j);
		uint64_t oid = get_le64(root + 16 + 16 * j);
		uint32_t lnr;
		uint8_t *leaf;

		assert_int_equal(get_le32(root + 12 + 16 * j), 0); /* pad */
		assert_int_equal(oid >> 32,
				 (SD_VDI_BTREE_BIT >> 32) | (uint64_t)vid);
		assert_true((uint32_t)oid < counter);
		if (has_prev)
			assert_true(key > prev);
		assert_int_equal(fake_read(s, oid, hdr, 8, 0), SD_RES_SUCCESS);
		assert_int_equal(get_le16(hdr), BTREE_MAGIC);
		assert_int_equal(get_le16(hdr + 2), 1);
		lnr = get_le32(hdr + 4);
		assert_true(lnr >= 1 && lnr <= leaf_cap);
		leaf = malloc(8 + 8 * lnr);
		assert_int_equal(fake_read(s, oid, leaf, 8 + 8 * lnr, 0),
				 SD_RES_SUCCESS);
		for (uint32_t i = 0; i < lnr; i++) {
			uint32_t idx = get_le32(leaf + 8 + 8 * i);

			assert_true(!has_prev || idx > prev);
			assert_true(idx <= key);
			assert_true(n < m->nr);
			assert_int_equal(idx, m->idx[n]);
			assert_int_equal(get_le32(leaf + 12 + 8 * i),
					 m->vid[n]);
			n++;
		}
		/* the key is the last index of its leaf */
		assert_int_equal(get_le32(leaf + 8 + 8 * (lnr - 1)), key);
		free(leaf);
		prev = key;
		has_prev = true;
	}
	assert_int_equal(n, m->nr);
	free(root);
	return nr;
}

static void set_ok(struct fixture *f, struct model *m, uint32_t idx,
		   uint32_t vid)
{
	assert_int_equal(btree_set(&f->bt, idx, vid), SD_RES_SUCCESS);
	model_set(m, idx, vid);
}

/* ---- tests ---- */

static void test_uninitialised_root_reads_as_holes(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct btree_ops ops = {s, fake_read, fake_write, fake_create};
	uint8_t *root = calloc(1, BTREE_NODE_SIZE);
	struct walk w = {.nr = 0};
	struct btree bt;
	uint32_t vid = 99;

	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_SUCCESS);
	assert_int_equal(btree_depth(&bt), 1);
	assert_int_equal(btree_root_len(&bt), 8);
	assert_int_equal(bt.leaf_cap, 524287);
	assert_int_equal(bt.root_cap, 262143);
	assert_int_equal(btree_lookup(&bt, 0, &vid), SD_RES_SUCCESS);
	assert_int_equal(vid, 0);
	assert_int_equal(btree_for_each(&bt, walk_fn, &w), SD_RES_SUCCESS);
	assert_int_equal(w.nr, 0);
	/* the first set stores the header too */
	inode_create(s, VID_A);
	memset(s->objs[0].data + SD_INODE_HEADER_SIZE, 0, 8);
	assert_int_equal(btree_set(&bt, 5, VID_A), SD_RES_SUCCESS);
	assert_int_equal(get_le16(s->objs[0].data + SD_INODE_HEADER_SIZE),
			 BTREE_MAGIC);
	assert_int_equal(get_le32(s->objs[0].data + SD_INODE_HEADER_SIZE + 4),
			 1);
	free(root);
	store_free(s);
}

static void test_capacity_bounds(void **state)
{
	struct btree_ops ops = {NULL, fake_read, fake_write, fake_create};
	uint8_t *root = calloc(1, BTREE_NODE_SIZE);
	struct btree bt;

	assert_int_equal(BTREE_MAX_LEAF_ENTRIES, 524287);
	assert_int_equal(BTREE_MAX_ROOT_ENTRIES, 262143);
	assert_int_equal(btree_open_capacity(&bt, 1, 0, root, &ops, 1, 10),
			 SD_RES_INVALID_PARMS);
	assert_int_equal(btree_open_capacity(&bt, 1, 0, root, &ops, 10, 1),
			 SD_RES_INVALID_PARMS);
	assert_int_equal(btree_open_capacity(&bt, 1, 0, root, &ops, 524288, 10),
			 SD_RES_INVALID_PARMS);
	free(root);
}

/* Depth 1 at full capacity: the stored bytes are the spec's layout. */
static void test_sequential_depth1_layout(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	uint8_t *ino;

	fixture_init(&f, s, VID_A, BTREE_MAX_LEAF_ENTRIES,
		     BTREE_MAX_ROOT_ENTRIES);
	for (uint32_t i = 0; i < 3000; i++)
		set_ok(&f, m, i * 3, VID_A);
	assert_int_equal(btree_depth(&f.bt), 1);
	assert_int_equal(btree_root_len(&f.bt), 8 + 8 * 3000);
	assert_int_equal(s->creates, 0);
	ino = store_find(s, vid_to_vdi_oid(VID_A))->data;
	assert_int_equal(get_le16(ino + 4664), 0x6274);
	assert_int_equal(get_le16(ino + 4666), 1);
	assert_int_equal(get_le32(ino + 4668), 3000);
	assert_int_equal(get_le32(ino + 4672 + 8 * 7), 21);
	assert_int_equal(get_le32(ino + 4676 + 8 * 7), VID_A);
	check_tree(&f.bt, m);
	check_stored(s, VID_A, m, BTREE_MAX_LEAF_ENTRIES);
	fixture_free(&f);
	free(m);
	store_free(s);
}

/*
 * Sequential inserts with 4 entries per node: the root splits into halves
 * at the 5th, then the last leaf fills up and new leaves are started.
 */
static void test_sequential_small_nodes(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	static const uint32_t keys[] = {1, 5, 9, 13, 17, 19};
	uint8_t *root;

	fixture_init(&f, s, VID_A, 4, 100);
	for (uint32_t i = 0; i < 20; i++)
		set_ok(&f, m, i, VID_A);
	assert_int_equal(btree_depth(&f.bt), 2);
	assert_int_equal(check_stored(s, VID_A, m, 4), 6);
	assert_int_equal(f.bt.btree_counter, 6);
	assert_int_equal(stored_counter(s, VID_A), 6);
	root = store_find(s, vid_to_vdi_oid(VID_A))->data + 4664;
	for (int j = 0; j < 6; j++)
		assert_int_equal(get_le32(root + 8 + 16 * j), keys[j]);
	/* the first two leaves are the root's halves */
	assert_int_equal(get_le64(root + 16),
			 SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 0);
	assert_int_equal(get_le64(root + 32),
			 SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 1);
	check_tree(&f.bt, m);
	fixture_free(&f);
	free(m);
	store_free(s);
}

/*
 * A full leaf under a depth-2 root takes an index inside its range: the
 * first half moves to a new leaf keyed by its own last index. Upstream
 * used the next entry as the key, which sends lookups of that entry to
 * the wrong leaf.
 */
static void test_split_full_leaf_under_depth2_root(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	uint8_t *root;
	uint32_t vid;

	fixture_init(&f, s, VID_A, 4, 100);
	for (uint32_t idx = 0; idx <= 40; idx += 10)
		set_ok(&f, m, idx, VID_A);
	/* the root split: [0 10] key 10, [20 30 40] key 40 */
	set_ok(&f, m, 25, VID_A); /* [20 25 30 40] full */
	set_ok(&f, m, 35, VID_A); /* split: [20 25] key 25, [30 35 40] */
	root = store_find(s, vid_to_vdi_oid(VID_A))->data + 4664;
	assert_int_equal(get_le32(root + 4), 3);
	assert_int_equal(get_le32(root + 8), 10);
	assert_int_equal(get_le32(root + 24), 25);
	assert_int_equal(get_le32(root + 40), 40);
	assert_int_equal(btree_lookup(&f.bt, 30, &vid), SD_RES_SUCCESS);
	assert_int_equal(vid, VID_A);
	assert_int_equal(btree_lookup(&f.bt, 26, &vid), SD_RES_SUCCESS);
	assert_int_equal(vid, 0);
	set_ok(&f, m, 27, VID_A);
	set_ok(&f, m, 26, VID_A); /* [26 27 30 35 40] does not fit: split */
	set_ok(&f, m, 21, VID_A);
	set_ok(&f, m, 22, VID_A); /* the first leaf's neighbour splits too */
	set_ok(&f, m, 5, VID_A);
	set_ok(&f, m, 6, VID_A);
	set_ok(&f, m, 7, VID_A); /* [0 5 6 7 10]: the first leaf splits */
	check_tree(&f.bt, m);
	check_stored(s, VID_A, m, 4);
	assert_int_equal(fixture_open(&f, VID_A, 4, 100), SD_RES_SUCCESS);
	check_tree(&f.bt, m);
	fixture_free(&f);
	free(m);
	store_free(s);
}

static uint32_t rnd_state = 12345;

static uint32_t rnd(void)
{
	rnd_state ^= rnd_state << 13;
	rnd_state ^= rnd_state >> 17;
	rnd_state ^= rnd_state << 5;
	return rnd_state;
}

/* Thousands of inserts in random order, spread over the whole 32-bit
 * index space, with 5 entries per node: many splits of every kind. */
static void test_random_inserts_small_nodes(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	uint32_t leaves, vid;

	fixture_init(&f, s, VID_A, 5, 4000);
	set_ok(&f, m, 0, VID_A);
	set_ok(&f, m, UINT32_MAX, VID_A);
	for (int i = 0; i < 6000; i++) {
		uint32_t idx = (i & 1) ? rnd() : rnd() % 20000;

		set_ok(&f, m, idx, (i % 3) ? VID_A : VID_PARENT);
		if (i % 1000 == 999)
			check_tree(&f.bt, m);
	}
	check_tree(&f.bt, m);
	leaves = check_stored(s, VID_A, m, 5);
	assert_true(leaves > m->nr / 5);
	assert_int_equal(stored_counter(s, VID_A), f.bt.btree_counter);
	/* missing keys read as holes */
	for (int i = 0; i < 2000; i++) {
		uint32_t idx = rnd(), p = 0;

		while (p < m->nr && m->idx[p] < idx)
			p++;
		if (p < m->nr && m->idx[p] == idx)
			continue;
		assert_int_equal(btree_lookup(&f.bt, idx, &vid),
				 SD_RES_SUCCESS);
		assert_int_equal(vid, 0);
	}
	/* what is stored is what a fresh reader sees */
	assert_int_equal(fixture_open(&f, VID_A, 5, 4000), SD_RES_SUCCESS);
	check_tree(&f.bt, m);
	fixture_free(&f);
	free(m);
	store_free(s);
}

/* Random order at the real capacities: one depth-1 root, written as
 * small pieces. */
static void test_random_inserts_depth1(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;

	fixture_init(&f, s, VID_A, BTREE_MAX_LEAF_ENTRIES,
		     BTREE_MAX_ROOT_ENTRIES);
	for (int i = 0; i < 4000; i++)
		set_ok(&f, m, rnd() % 2000000, VID_A);
	assert_int_equal(btree_depth(&f.bt), 1);
	check_tree(&f.bt, m);
	check_stored(s, VID_A, m, BTREE_MAX_LEAF_ENTRIES);
	fixture_free(&f);
	free(m);
	store_free(s);
}

/* Updates replace the vid in place (copy on write from a parent), vid 0
 * makes a hole, and setting what is already there writes nothing. */
static void test_updates(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	unsigned int writes;
	uint32_t vid;

	for (int depth = 1; depth <= 2; depth++) {
		memset(s, 0, sizeof(*s));
		memset(m, 0, sizeof(*m));
		fixture_init(&f, s, VID_A, depth == 1 ? 100 : 3, 100);
		for (uint32_t i = 0; i < 30; i++)
			set_ok(&f, m, i * 7, VID_PARENT);
		assert_int_equal(btree_depth(&f.bt), depth);
		for (uint32_t i = 0; i < 30; i += 2)
			set_ok(&f, m, i * 7, VID_A);
		set_ok(&f, m, 14, 0);
		check_tree(&f.bt, m);
		check_stored(s, VID_A, m, depth == 1 ? 100 : 3);
		assert_int_equal(btree_lookup(&f.bt, 14, &vid), SD_RES_SUCCESS);
		assert_int_equal(vid, 0);

		writes = s->writes;
		assert_int_equal(btree_set(&f.bt, 21, VID_PARENT),
				 SD_RES_SUCCESS);
		assert_int_equal(btree_set(&f.bt, 1000, 0), SD_RES_SUCCESS);
		assert_int_equal(btree_set(&f.bt, 3, 0), SD_RES_SUCCESS);
		assert_int_equal(s->writes, writes);
		assert_int_equal(btree_lookup(&f.bt, 1000, &vid),
				 SD_RES_SUCCESS);
		assert_int_equal(vid, 0);
		fixture_free(&f);
		for (int i = 0; i < s->nr; i++)
			free(s->objs[i].data);
	}
	free(m);
	free(s);
}

struct leaf_list {
	uint64_t oid[1000];
	int nr;
};

static int leaf_fn(uint64_t oid, void *arg)
{
	struct leaf_list *l = arg;

	l->oid[l->nr++] = oid;
	return 0;
}

/* A clone has its own leaves: changes to either tree stay in it. */
static void test_clone_independence(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *ma = calloc(1, sizeof(*ma)), *mb = calloc(1, sizeof(*mb));
	struct leaf_list *la = calloc(1, sizeof(*la)),
			 *lb = calloc(1, sizeof(*lb));
	struct fixture a, b;

	fixture_init(&a, s, VID_A, 4, 200);
	for (int i = 0; i < 150; i++) {
		uint32_t idx = rnd() % 5000;

		set_ok(&a, ma, idx, VID_A);
		model_set(mb, idx, VID_A);
	}
	assert_int_equal(btree_depth(&a.bt), 2);

	/* the new inode: a zeroed root, counter 0 */
	fixture_init(&b, s, VID_B, 4, 200);
	memset(b.root, 0, BTREE_NODE_SIZE);
	assert_int_equal(btree_clone(&a.bt, &b.bt), SD_RES_SUCCESS);
	assert_int_equal(btree_depth(&b.bt), 2);
	assert_int_equal(btree_for_each_leaf(&a.bt, leaf_fn, la), 0);
	assert_int_equal(btree_for_each_leaf(&b.bt, leaf_fn, lb), 0);
	assert_int_equal(la->nr, lb->nr);
	assert_int_equal(b.bt.btree_counter, lb->nr);
	for (int i = 0; i < lb->nr; i++) {
		assert_int_equal(oid_to_vid(lb->oid[i]), VID_B);
		assert_true(is_vdi_btree_obj(lb->oid[i]));
		assert_int_equal((uint32_t)lb->oid[i], i);
		assert_int_equal(oid_to_vid(la->oid[i]), VID_A);
	}
	/* clone does not write the new inode: the caller does */
	assert_int_equal(stored_counter(s, VID_B), 0);
	check_tree(&b.bt, mb);
	store_put(s, vid_to_vdi_oid(VID_B), b.root, btree_root_len(&b.bt),
		  SD_INODE_OFF_DATA_VDI_ID);
	{
		uint8_t c[4];

		put_le32(c, b.bt.btree_counter);
		store_put(s, vid_to_vdi_oid(VID_B), c, 4, 568);
	}
	assert_int_equal(fixture_open(&b, VID_B, 4, 200), SD_RES_SUCCESS);

	/* both go on separately */
	for (int i = 0; i < 100; i++) {
		uint32_t idx = rnd() % 6000;

		set_ok(&a, ma, idx, VID_A);
		set_ok(&b, mb, rnd() % 6000, VID_B);
		set_ok(&b, mb, idx, VID_B);
	}
	check_tree(&a.bt, ma);
	check_tree(&b.bt, mb);
	check_stored(s, VID_A, ma, 4);
	check_stored(s, VID_B, mb, 4);

	/* a depth-1 tree is copied within the root */
	{
		struct store *s1 = calloc(1, sizeof(*s1));
		struct model *m1 = calloc(1, sizeof(*m1));
		struct fixture c, d;

		fixture_init(&c, s1, VID_A, 100, 100);
		for (uint32_t i = 0; i < 50; i++)
			set_ok(&c, m1, i * 2, VID_PARENT);
		fixture_init(&d, s1, VID_B, 100, 100);
		memset(d.root, 0, BTREE_NODE_SIZE);
		assert_int_equal(btree_clone(&c.bt, &d.bt), SD_RES_SUCCESS);
		assert_int_equal(s1->creates, 0);
		assert_int_equal(btree_root_len(&d.bt), 8 + 50 * 8);
		assert_memory_equal(c.root, d.root, 8 + 50 * 8);
		check_tree(&d.bt, m1);
		fixture_free(&c);
		fixture_free(&d);
		free(m1);
		store_free(s1);
	}
	fixture_free(&a);
	fixture_free(&b);
	free(ma);
	free(mb);
	free(la);
	free(lb);
	store_free(s);
}

/* Roots that are not valid nodes are refused when opened. */
static void test_corrupt_root_refused(void **state)
{
	struct btree_ops ops = {NULL, fake_read, fake_write, fake_create};
	uint8_t *root = calloc(1, BTREE_NODE_SIZE);
	struct btree bt;

	put_le16(root, 0x7462); /* bytes swapped */
	put_le16(root + 2, 1);
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_EIO);

	put_le16(root, BTREE_MAGIC);
	put_le16(root + 2, 3);
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_EIO);

	put_le16(root + 2, 1);
	put_le32(root + 4, 524288);
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_EIO);
	put_le32(root + 4, 11);
	assert_int_equal(btree_open_capacity(&bt, VID_A, 0, root, &ops, 10, 10),
			 SD_RES_EIO);

	put_le32(root + 4, 3);
	put_le32(root + 8, 1);
	put_le32(root + 16, 9);
	put_le32(root + 24, 5); /* unsorted */
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_EIO);
	put_le32(root + 24, 9); /* duplicate */
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_EIO);
	put_le32(root + 24, 10);
	assert_int_equal(btree_open(&bt, VID_A, 0, root, &ops), SD_RES_SUCCESS);

	memset(root, 0, 64);
	put_le16(root, BTREE_MAGIC);
	put_le16(root + 2, 2);
	put_le32(root + 4, 0); /* depth 2 without leaves */
	assert_int_equal(btree_open(&bt, VID_A, 5, root, &ops), SD_RES_EIO);
	put_le32(root + 4, 2);
	put_le32(root + 8, 10);
	put_le64(root + 16, SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 0);
	put_le32(root + 24, 20);
	put_le64(root + 32, SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 1);
	assert_int_equal(btree_open(&bt, VID_A, 5, root, &ops), SD_RES_SUCCESS);
	/* a leaf numbered at or above the counter */
	assert_int_equal(btree_open(&bt, VID_A, 1, root, &ops), SD_RES_EIO);
	/* a leaf of another VDI */
	put_le64(root + 32, SD_VDI_BTREE_BIT | (uint64_t)VID_B << 32 | 1);
	assert_int_equal(btree_open(&bt, VID_A, 5, root, &ops), SD_RES_EIO);
	/* not a B-tree object */
	put_le64(root + 32, (uint64_t)VID_A << 32 | 1);
	assert_int_equal(btree_open(&bt, VID_A, 5, root, &ops), SD_RES_EIO);
	put_le64(root + 32, SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 1);
	put_le32(root + 24, 10); /* keys not ascending */
	assert_int_equal(btree_open(&bt, VID_A, 5, root, &ops), SD_RES_EIO);
	free(root);
}

/* A corrupt leaf makes lookup, set and iteration fail, never guess. */
static void test_corrupt_leaf_refused(void **state)
{
	static const struct {
		size_t off;
		uint32_t val;
		int width;
	} damage[] = {
	    {0, 0x6275, 16}, /* magic */
	    {2, 2, 16},	     /* depth */
	    {4, 5, 32},	     /* more entries than capacity 4 */
	    {8 + 8, 0, 32},  /* second idx below the first */
	};
	struct walk *w = calloc(1, sizeof(*w));

	for (size_t k = 0; k < sizeof(damage) / sizeof(damage[0]); k++) {
		struct store *s = calloc(1, sizeof(*s));
		struct model *m = calloc(1, sizeof(*m));
		struct fixture f;
		uint64_t oid;
		struct obj *o;
		uint32_t vid;

		fixture_init(&f, s, VID_A, 4, 100);
		for (uint32_t i = 1; i <= 5; i++)
			set_ok(&f, m, i * 10, VID_A);
		oid =
		    SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 1; /* [30..50] */
		o = store_find(s, oid);
		assert_non_null(o);
		if (damage[k].width == 16)
			put_le16(o->data + damage[k].off, damage[k].val);
		else
			put_le32(o->data + damage[k].off, damage[k].val);
		assert_int_equal(btree_lookup(&f.bt, 40, &vid), SD_RES_EIO);
		assert_int_equal(btree_set(&f.bt, 45, VID_A), SD_RES_EIO);
		w->nr = 0;
		assert_int_equal(btree_for_each(&f.bt, walk_fn, w), SD_RES_EIO);
		/* the healthy leaf still answers */
		assert_int_equal(btree_lookup(&f.bt, 10, &vid), SD_RES_SUCCESS);
		assert_int_equal(vid, VID_A);
		fixture_free(&f);
		free(m);
		store_free(s);
	}
	free(w);
}

/*
 * A split interrupted after the root names the new leaf, before the old
 * leaf is cut down: the old leaf's entries that now belong to the new leaf
 * are ignored, nothing appears twice, nothing stored before is lost, and
 * the next write to the leaf drops the leftovers.
 */
static void test_interrupted_split(void **state)
{
	struct store *s = calloc(1, sizeof(*s));
	struct model *m = calloc(1, sizeof(*m));
	struct fixture f;
	uint64_t old = SD_VDI_BTREE_BIT | (uint64_t)VID_A << 32 | 1;
	uint32_t vid;

	fixture_init(&f, s, VID_A, 4, 100);
	for (uint32_t idx = 0; idx <= 40; idx += 10)
		set_ok(&f, m, idx, VID_A);
	set_ok(&f, m, 25, VID_A); /* leaf 1: [20 25 30 40] */
	s->fail_write_oid = old;
	assert_int_equal(btree_set(&f.bt, 35, VID_A), SD_RES_EIO);
	s->fail_write_oid = 0;
	assert_int_equal(get_le32(store_find(s, old)->data + 4), 4);

	assert_int_equal(fixture_open(&f, VID_A, 4, 100), SD_RES_SUCCESS);
	check_tree(&f.bt, m); /* 35 is not there, all the rest once */
	assert_int_equal(btree_lookup(&f.bt, 35, &vid), SD_RES_SUCCESS);
	assert_int_equal(vid, 0);

	set_ok(&f, m, 35, VID_A);
	assert_int_equal(get_le32(store_find(s, old)->data + 4), 3);
	check_stored(s, VID_A, m, 4);
	check_tree(&f.bt, m);
	fixture_free(&f);
	free(m);
	store_free(s);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_uninitialised_root_reads_as_holes),
	    cmocka_unit_test(test_capacity_bounds),
	    cmocka_unit_test(test_sequential_depth1_layout),
	    cmocka_unit_test(test_sequential_small_nodes),
	    cmocka_unit_test(test_split_full_leaf_under_depth2_root),
	    cmocka_unit_test(test_random_inserts_small_nodes),
	    cmocka_unit_test(test_random_inserts_depth1),
	    cmocka_unit_test(test_updates),
	    cmocka_unit_test(test_clone_independence),
	    cmocka_unit_test(test_corrupt_root_refused),
	    cmocka_unit_test(test_corrupt_leaf_refused),
	    cmocka_unit_test(test_interrupted_split),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
