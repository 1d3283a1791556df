/*
 * The cluster snapshot store ("farm", spec 10.1): a directory holding a
 * content-addressed object store and the list of snapshots taken into it.
 * Pure file code: dog reads objects from the cluster, hands them here and
 * gets them back on load; what a snapshot means for VDIs is dog's business.
 *
 * Layout under the farm directory (integers little-endian):
 *
 *   user_snap   32-byte header {u32 magic 0xfee1c001, u32 version 1,
 *               u8 copies, u8 copy_policy, u8 block_size_shift, 21 zero}
 *               then one 296-byte record per snapshot {u32 idx,
 *               char tag[256], 4 zero, u64 time @264, u8 trunk_sha1[20]
 *               @272, zero to 296}.
 *   objects/xx/<38 hex>
 *               a file named by the SHA-1 of its uncompressed content
 *               (xx: the first byte). We write zstd frames; a file that is
 *               not one, or whose frame does not decode to its name, is
 *               taken as raw content, as upstream's dog stores it.
 *
 * An object is cut into 128 KiB slices, each stored as a file; its slice
 * list (the slices' SHA-1s, concatenated) is stored as a file too and names
 * the object. A snapshot's trunk, a file of 32-byte entries {u64 oid,
 * u8 nr_copies, u8 copy_policy, u8 block_size_shift, u8 0, u8 sha1[20] of
 * the slice list}, is what its user_snap record names. Identical slices are
 * stored once, across objects, VDIs and snapshots.
 *
 * Files are written under temporary names, made durable in batches and
 * only then renamed, so a name that exists holds its whole content;
 * farm_sync() makes the renames durable before a snapshot record is
 * committed. Every read checks the SHA-1.
 * Errors are negative errno values: -ENOENT for a missing file, -EBADMSG
 * for content that does not match its name or a malformed file.
 */
#ifndef SHEEPDOG_FARM_H
#define SHEEPDOG_FARM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "sheepdog/sha1.h"

#define FARM_MAGIC 0xfee1c001U
#define FARM_VERSION 1
#define FARM_HDR_SIZE 32
#define FARM_SNAP_SIZE 296
#define FARM_TAG_LEN 256
#define FARM_TRUNK_ENTRY_SIZE 32
#define FARM_SLICE_SIZE (128 * 1024)
/* The largest object a slice list may describe: a 2 GiB data object. */
#define FARM_MAX_OBJECT (UINT64_C(1) << 31)

struct farm_header {
	uint8_t copies;
	uint8_t copy_policy;
	uint8_t block_size_shift;
};

struct farm_snap {
	uint32_t idx;
	char tag[FARM_TAG_LEN]; /* always NUL-terminated */
	uint64_t time;		/* seconds since the epoch */
	uint8_t trunk_sha1[SHA1_DIGEST_SIZE];
};

struct farm_trunk_entry {
	uint64_t oid;
	uint8_t nr_copies;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	uint8_t sha1[SHA1_DIGEST_SIZE]; /* of the slice list */
};

/* ---- pure encoding ---- */

void farm_header_encode(const struct farm_header *h,
			uint8_t buf[FARM_HDR_SIZE]);
/* -EBADMSG on a wrong magic or version. */
int farm_header_decode(const uint8_t buf[FARM_HDR_SIZE], struct farm_header *h);
void farm_snap_encode(const struct farm_snap *s, uint8_t buf[FARM_SNAP_SIZE]);
void farm_snap_decode(const uint8_t buf[FARM_SNAP_SIZE], struct farm_snap *s);
void farm_trunk_encode(const struct farm_trunk_entry *e,
		       uint8_t buf[FARM_TRUNK_ENTRY_SIZE]);
void farm_trunk_decode(const uint8_t buf[FARM_TRUNK_ENTRY_SIZE],
		       struct farm_trunk_entry *e);

/* A save tag: 1..255 bytes, not starting with a digit (a digit string
 * names a snapshot by index). */
bool farm_tag_valid(const char *tag);
/* The snapshot a "TAG or IDX" argument names, or NULL. */
const struct farm_snap *farm_find_snap(const struct farm_snap *snaps, size_t nr,
				       const char *tag_or_idx);

/* ---- the store ---- */

struct farm;

/*
 * Open the farm at path. With create, the directory and its 256 fan-out
 * directories are made as needed. An exclusive lock is held on the
 * directory until farm_close(), so two dogs never write one farm at once.
 * 0 or -errno (-EWOULDBLOCK: another dog holds it).
 */
int farm_open(const char *path, bool create, struct farm **out);
void farm_close(struct farm *f);

/* Store len bytes as one file; sha1 gets its name. Existing names are not
 * written again. *added (may be NULL) gets the bytes added to the disk. */
int farm_put_file(struct farm *f, const void *buf, size_t len,
		  uint8_t sha1[SHA1_DIGEST_SIZE], uint64_t *added);
/* Read the file sha1 names into a new buffer of at most max bytes, checking
 * that its content hashes to its name. */
int farm_get_file(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		  size_t max, uint8_t **buf, size_t *len);

/* An object: its slices, then its slice list, whose SHA-1 goes to sha1. */
int farm_put_object(struct farm *f, const void *buf, size_t len,
		    uint8_t sha1[SHA1_DIGEST_SIZE], uint64_t *added);
/* Read the object whose slice list is sha1 into buf (room for max bytes),
 * each slice checked. *len gets its length. On failure bad (may be NULL)
 * gets the name of the file that is missing or damaged. */
int farm_get_object(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		    void *buf, size_t max, size_t *len,
		    uint8_t bad[SHA1_DIGEST_SIZE]);

/* Make every file stored so far durable (their directories synced). */
int farm_sync(struct farm *f);

/*
 * user_snap. farm_read_snaps() gives the header and the records (in file
 * order; *snaps NULL and *nr 0 when the farm has none yet: -ENOENT for no
 * user_snap at all). farm_add_snap() rewrites user_snap atomically with
 * header h and one more record, the next index; s->idx is set.
 */
int farm_read_snaps(struct farm *f, struct farm_header *h,
		    struct farm_snap **snaps, size_t *nr);
int farm_add_snap(struct farm *f, const struct farm_header *h,
		  struct farm_snap *s);

/* The trunk of a snapshot: nr entries stored as one file / read back. */
int farm_put_trunk(struct farm *f, const struct farm_trunk_entry *e, size_t nr,
		   uint8_t sha1[SHA1_DIGEST_SIZE]);
int farm_get_trunk(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		   struct farm_trunk_entry **e, size_t *nr);

/* The path of an object file, for messages: "<farm>/objects/xx/<38 hex>". */
void farm_file_path(const struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		    char *buf, size_t len);

#endif
