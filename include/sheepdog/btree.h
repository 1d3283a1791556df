/*
 * The B-tree index of hyper volumes (store_policy 1, spec 5.3): which vid
 * holds data object idx when the flat data_vdi_id[] array is too small.
 *
 * The root lives in the inode's 4 MiB data_vdi_id area (inode offset 4664);
 * a depth-2 root points at leaf objects bit60 | vid<<32 | n, n taken from
 * the inode's btree_counter (offset 568). Every node starts with an 8-byte
 * header {u16 magic 0x6274, u16 depth, u32 entries}; depth-1 entries are
 * {u32 idx, u32 vid}, depth-2 root entries {u32 max_idx, u32 pad, u64 oid}.
 *
 * This module knows the format and the algorithms only. Object I/O goes
 * through the caller's struct btree_ops, so the same code runs in dog (over
 * the wire) and in sheep (through the local gateway). Every node read from
 * storage is validated (magic, depth, entry count, strictly ascending keys,
 * leaf oids) and a bad one is refused with SD_RES_EIO after a log line that
 * names the object, never trusted.
 *
 * A leaf's entries are those within its root range (previous key, key]:
 * anything else in it is a leftover of an interrupted split (the new leaf
 * and the root are written before the old leaf is cut down) and is ignored
 * by lookups and iteration and dropped the next time the leaf is written.
 *
 * Not thread safe: one struct btree is used by one thread at a time, and
 * concurrent writers of one VDI must be serialised by the caller.
 */
#ifndef SHEEPDOG_BTREE_H
#define SHEEPDOG_BTREE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define BTREE_MAGIC 0x6274
#define BTREE_HDR_SIZE 8
#define BTREE_LEAF_ENTRY_SIZE 8	 /* {u32 idx, u32 vid} */
#define BTREE_ROOT_ENTRY_SIZE 16 /* {u32 max_idx, u32 pad, u64 leaf_oid} */
/* Size of every node: the inode's data_vdi_id area and a leaf object. */
#define BTREE_NODE_SIZE (UINT32_C(4) << 20)
/* 524,287 and 262,143 (spec 5.3 and 15.8) */
#define BTREE_MAX_LEAF_ENTRIES                                                 \
	((BTREE_NODE_SIZE - BTREE_HDR_SIZE) / BTREE_LEAF_ENTRY_SIZE)
#define BTREE_MAX_ROOT_ENTRIES                                                 \
	((BTREE_NODE_SIZE - BTREE_HDR_SIZE) / BTREE_ROOT_ENTRY_SIZE)

/*
 * Object I/O. Each callback returns an SD_RES_* code (SD_RES_SUCCESS is 0),
 * which the btree functions pass back unchanged. Reads past the stored
 * length of an object must yield zeros.
 */
struct btree_ops {
	void *opaque; /* passed back to every callback */
	/* read len bytes at offset of object oid */
	int (*read_obj)(void *opaque, uint64_t oid, void *buf, uint32_t len,
			uint64_t offset);
	/* overwrite len bytes at offset of the existing object oid (a leaf,
	 * or the VDI's inode for the root and btree_counter) */
	int (*write_obj)(void *opaque, uint64_t oid, const void *buf,
			 uint32_t len, uint64_t offset);
	/* create the leaf object oid: buf at offset 0, zeros after it */
	int (*create_obj)(void *opaque, uint64_t oid, const void *buf,
			  uint32_t len);
};

/*
 * One VDI's tree. The caller owns root, a BTREE_NODE_SIZE buffer holding
 * the inode's data_vdi_id area as stored (read from inode offset 4664);
 * the btree functions keep it and btree_counter up to date in memory.
 */
struct btree {
	uint32_t vid;		/* owner: leaves are bit60 | vid<<32 | n */
	uint32_t btree_counter; /* number for the next new leaf */
	uint8_t *root;
	const struct btree_ops *ops;
	/* Entries per depth-1 node and per depth-2 root. btree_open() sets
	 * the on-disk maxima; only tests ask for less, with
	 * btree_open_capacity(), to make splits happen with small trees. */
	uint32_t leaf_cap, root_cap;
};

/*
 * Take over a root buffer read from the inode of vid, whose header holds
 * btree_counter, and validate it (a depth-2 root's leaf oids must belong to
 * vid and be numbered below btree_counter). An uninitialised root (first
 * u32 zero) is turned into an empty depth-1 node in memory: it reads as all
 * holes, and the first btree_set() stores it.
 * SD_RES_SUCCESS, or SD_RES_EIO for a root that is not a valid node.
 */
int btree_open(struct btree *bt, uint32_t vid, uint32_t btree_counter,
	       uint8_t *root, const struct btree_ops *ops);
/* The same with smaller node capacities (2 <= cap <= the maxima), for
 * tests; SD_RES_INVALID_PARMS for capacities out of range. */
int btree_open_capacity(struct btree *bt, uint32_t vid, uint32_t btree_counter,
			uint8_t *root, const struct btree_ops *ops,
			uint32_t leaf_cap, uint32_t root_cap);

/* Depth of the tree, 1 or 2. */
unsigned int btree_depth(const struct btree *bt);
/* Bytes of the root in use (header and entries): what a new inode must
 * store at offset 4664 for this tree. */
size_t btree_root_len(const struct btree *bt);

/* The vid that holds idx, 0 for a hole. SD_RES_* code. */
int btree_lookup(const struct btree *bt, uint32_t idx, uint32_t *vid);

/*
 * Map idx to vid (insert or update; vid 0 on an absent idx changes
 * nothing), splitting nodes as spec 5.3 says, and persist everything
 * before returning, through ops, in an order that never lets the stored
 * root refer to something not yet stored:
 *   1. btree_counter, when leaves are added: write_obj of 4 bytes at
 *      inode offset 568 of vid's inode (vid_to_vdi_oid(bt->vid));
 *   2. new leaves (create_obj), and the leaf that receives the entry;
 *   3. the changed part of the root: write_obj at inode offset 4664 + n;
 *   4. after a split under a depth-2 root, the old leaf cut down to its
 *      second half.
 * bt->root and bt->btree_counter are updated in memory; the caller has
 * nothing left to write. A failure part way leaves the stored tree valid
 * (the entry may be missing); bt must then be reopened from storage.
 * SD_RES_SUCCESS, an ops error, SD_RES_EIO for a corrupt node, or
 * SD_RES_NO_SPACE when the depth-2 root is full.
 */
int btree_set(struct btree *bt, uint32_t idx, uint32_t vid);

/*
 * Call fn(idx, vid, arg) for every entry with a non-zero vid, in ascending
 * idx order. A non-zero return from fn stops the walk and is returned as
 * is; otherwise SD_RES_* (a leaf that cannot be read or is corrupt stops
 * the walk with that code).
 */
typedef int (*btree_visit_fn)(uint32_t idx, uint32_t vid, void *arg);
int btree_for_each(const struct btree *bt, btree_visit_fn fn, void *arg);

/*
 * Call fn(leaf_oid, arg) for every leaf of a depth-2 tree in key order
 * (none for depth 1): the objects to remove with the VDI. No I/O. A
 * non-zero return from fn stops the walk and is returned.
 */
typedef int (*btree_leaf_fn)(uint64_t leaf_oid, void *arg);
int btree_for_each_leaf(const struct btree *bt, btree_leaf_fn fn, void *arg);

/*
 * Make dst, opened with the new vid on an empty (zeroed) root buffer and
 * the new inode's btree_counter (0 for a new inode), a copy of src that
 * shares no leaf: depth 1 copies the root; depth 2 copies every leaf into
 * a new leaf of dst->vid (create_obj, numbered from dst->btree_counter).
 * Unlike btree_set, the destination inode is not written: the caller
 * stores dst->root (btree_root_len(dst) bytes at offset 4664) and
 * dst->btree_counter (offset 568) when it writes the new inode. On failure
 * the leaves already created are left unreferenced. SD_RES_* code.
 */
int btree_clone(const struct btree *src, struct btree *dst);

#endif
