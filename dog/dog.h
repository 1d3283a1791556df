/*
 * What the dog command files share: the command table types, the global
 * options (-a -p -r -v), exit codes (spec 3.4), and the helpers in common.c
 * that talk to a sheep over the wire protocol and turn its answers into the
 * messages and exit codes upstream's dog prints. Each command group (vdi,
 * node, cluster) lives in its own file and exports one struct command.
 */
#ifndef DOG_H
#define DOG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h> /* EXIT_SUCCESS, EXIT_FAILURE */

#include "sheepdog/layout.h"
#include "sheepdog/log.h"
#include "sheepdog/proto.h"
#include "sheepdog/ring.h"
#include "sheepdog/util.h"

/* Exit codes (spec 3.4) */
#define EXIT_SYSFAIL 2
#define EXIT_EXISTS 3
#define EXIT_FULL 4
#define EXIT_MISSING 5
#define EXIT_USAGE 64

/* subcommand flags */
#define CMD_NEED_NODELIST (1U << 0)
#define CMD_NEED_ARG (1U << 1)

struct dog_option {
	int ch;
	const char *name;
	bool has_arg;
	const char *desc;
};

struct subcommand {
	const char *name;
	const char *arg;  /* shown at the end of the usage line */
	const char *opts; /* the option letters this subcommand accepts */
	const char *desc;
	unsigned int flags;
	int (*fn)(int argc, char **argv);
};

struct command {
	const char *name;
	const struct subcommand *sub;	  /* terminated by a NULL name */
	const struct dog_option *options; /* group options, NULL-name ended */
	/* handles the group's own option letters; exits on a bad value */
	void (*parser)(int ch, const char *arg);
};

extern const struct command vdi_command;

/* The options of "dog vdi", filled by vdi.c's parser before a subcommand
 * runs (spec 11.2). */
struct vdi_cmd_data {
	bool prealloc;	       /* -P */
	bool hyper;	       /* -y */
	bool writeback;	       /* -w */
	uint32_t snapshot_id;  /* -s (numeric) */
	char snapshot_tag[SD_MAX_VDI_TAG_LEN]; /* -s (tag) */
	uint8_t nr_copies;     /* -c */
	uint8_t copy_policy;   /* -c d:p */
	uint8_t block_size_shift; /* -z */
	bool has_oid;	       /* -o */
	uint64_t oid;
	uint32_t nr_batched;	   /* -B */
	uint32_t reclaim_interval; /* -I, seconds */
	uint64_t max_reclaim;	   /* -m, 0 = no limit */
	bool no_share;		   /* -n */
	bool exclusive;		   /* -x */
	bool delete_attr;	   /* -d */
	bool exist;		   /* -e */
	bool force;		   /* -f */
	bool reduce_identical;	   /* -R */
	bool has_index;		   /* -i */
	uint64_t index;
	uint32_t from_snapshot_id; /* -F (numeric) */
	char from_snapshot_tag[SD_MAX_VDI_TAG_LEN]; /* -F (tag) */
};
extern struct vdi_cmd_data vdi_cmd;

/* "dog vdi" subcommands that live outside vdi.c: vdi_snap.c (snapshot,
 * clone, rollback), vdi_info.c (tree, graph, object, track, setattr,
 * getattr, lock, alter-copy), vdi_check.c (check). */
/*
 * NEW_VDI (spec 4.4): create (base 0, snapid 0), clone (base = a snapshot,
 * snapid 0), snapshot (base = the current vid, snapid != 0). Prints
 * "Failed to create VDI %s: %s" on failure. EXIT_* code; *vid on success.
 */
int dog_new_vdi(const char *name, uint64_t size, uint32_t base_vid,
		uint32_t snapid, uint8_t copies, uint8_t copy_policy,
		uint8_t store_policy, uint8_t block_size_shift, uint32_t *vid);
/* vdi delete of (name, snapid, tag): zero the index, then DEL_VDI.
 * Failures are printed; like upstream, the caller's exit status is not
 * affected. */
void dog_delete_vdi(const char *name, uint32_t snapid, const char *tag);

/* Make the working VDI whose inode header is h a snapshot tagged tag (the
 * tag is written into its inode first, as upstream does) with a new working
 * VDI on top: *new_vid. EXIT_* code, messages printed. */
int dog_snapshot_vdi(const char *name, const struct sd_inode_header *h,
		     const char *tag, uint32_t *new_vid);
int vdi_snapshot(int argc, char **argv);
int vdi_clone(int argc, char **argv);
int vdi_rollback(int argc, char **argv);
int vdi_tree(int argc, char **argv);
int vdi_graph(int argc, char **argv);
int vdi_check(int argc, char **argv);
/* Check the objects of one VDI (repair, or existence only with
 * exist_only), printing vdi check's lines. Exit status. */
int vdi_check_inode(const struct sd_inode_header *h, bool exist_only);
int vdi_object(int argc, char **argv);
int vdi_track(int argc, char **argv);
int vdi_setattr(int argc, char **argv);
/* GET_VDI_ATTR on (name, snapid, tag): finds, creates (SD_FLAG_CMD_CREAT
 * with a value) or deletes (SD_FLAG_CMD_DEL) the attribute key. result is
 * the SD_RES_* code, or -1 after a transport failure. */
struct dog_attr_result {
	int result;
	uint64_t oid;
};
struct dog_attr_result dog_find_attr(const char *name, uint32_t snapid,
				     const char *tag, const char *key,
				     const void *value, uint32_t value_len,
				     uint16_t flags);
/* Read attribute object oid into obj (SD_ATTR_OBJ_SIZE bytes); its value
 * is moved to the start of obj. SD_RES_* code. */
int dog_read_attr_value(uint64_t oid, uint8_t *obj, uint32_t *value_len);
int vdi_getattr(int argc, char **argv);
int vdi_lock(int argc, char **argv);
/* Is vid locked by a writer (an NBD export, a client's LOCK_VDI)? 1 with
 * the owner node in owner, 0 if not, -1 when the states could not be read
 * (message printed). */
int dog_vdi_lock_owner(uint32_t vid, char *owner, size_t len);
int vdi_alter_copy(int argc, char **argv);

/* "dog vdi backup" and "restore" (vdi_backup.c) and their options:
 * -O/--format (native or v1) and -L/--level (zstd level). */
struct backup_opts {
	int format; /* enum sd_backup_format */
	int level;
};
extern struct backup_opts backup_opts;
int vdi_backup(int argc, char **argv);
int vdi_restore(int argc, char **argv);
extern const struct command node_command;

/* The options of "dog node" (spec 11.2), filled by node.c's parser. */
struct node_cmd_data {
	bool all_nodes; /* -A: md info of every node */
	bool progress;	/* -P: recovery progress */
	bool local;	/* -l: kill the node given by -a/-p */
};
extern struct node_cmd_data node_cmd;

/* "dog node recovery" and its throttle subcommands (node_recovery.c). */
int node_recovery(int argc, char **argv);
extern const struct command cluster_command;

/* "dog cluster snapshot save|list|show|load" (cluster_snapshot.c). */
int cluster_snapshot(int argc, char **argv);
/* "dog backup verify|show": stream files, no cluster (backup_stream.c). */
extern const struct command backup_command;

/* ---- global state, set by dog.c before a command runs ---- */

extern const char *sd_host; /* -a, $SHEEPDOG_DOG_ADDR, or 127.0.0.1 */
extern int sd_port;	    /* -p, $SHEEPDOG_DOG_PORT, or 7000 */
extern bool raw_output;
extern bool verbose;

/* Filled by dog_update_node_list() for CMD_NEED_NODELIST commands. */
extern struct sd_node *sd_nodes; /* sorted in node order */
extern int sd_nodes_nr;
extern uint32_t sd_epoch;
extern struct sd_ring *sd_ring;

/* ---- requests (common.c) ---- */

/*
 * One request/reply on the connection to -a/-p (opened on first use and
 * kept). Returns 0 when a reply arrived (look at rsp->result), -1 after
 * printing the transport failure.
 */
int dog_exec(struct sd_req *req, const void *wdata, void *rdata, size_t rlen,
	     struct sd_rsp *rsp);
/* The same on a fresh connection to one node of the node list. */
int dog_exec_node(const struct node_id *nid, struct sd_req *req,
		  const void *wdata, void *rdata, size_t rlen,
		  struct sd_rsp *rsp);
/* Request without payload either way; prints "Response's result: %s" on a
 * failure result. 0 on SUCCESS, -1 otherwise. */
int send_light_req(struct sd_req *req);

/*
 * Pipelining on the shared connection: send requests tagged with ids from
 * dog_next_id(), then take replies in whatever order the sheep sends them.
 * dog_recv_hdr() reads one reply header; the caller then reads exactly
 * rsp->data_length payload bytes with dog_recv_payload(), keeping up to
 * len of them in buf.
 */
uint32_t dog_next_id(void);
int dog_send(const struct sd_req *req, const void *wdata);
int dog_recv_hdr(struct sd_rsp *rsp);
int dog_recv_payload(const struct sd_rsp *rsp, void *buf, size_t len);

/* Object I/O with upstream's messages. Return an SD_RES_* code (SD_RES_EIO
 * for a transport failure). */
int dog_read_object(uint64_t oid, void *buf, uint32_t len, uint64_t offset);
int dog_write_object(uint64_t oid, uint64_t cow_oid, const void *data,
		     uint32_t len, uint64_t offset, uint16_t flags,
		     uint8_t copies, uint8_t copy_policy, bool create);

/* GET_NODE_LIST + STAT_CLUSTER and the ring; exits on failure (spec 11.1). */
void dog_update_node_list(void);

/* ---- VDIs (common.c) ---- */

/* Copy a string into a NUL-padded fixed field of the wire (at most
 * field - 1 characters, like upstream's pstrcpy). */
void put_fixed_str(char *field, size_t field_len, const char *s);

/* READ_VDIS or READ_DEL_VDIS into a SD_VDI_BITMAP_SIZE buffer. 0 or -1
 * (message printed). */
int dog_read_vdi_bitmap(uint8_t opcode, uint8_t *bitmap);

static inline bool vdi_bit_test(const uint8_t *bitmap, uint32_t vid)
{
	return bitmap[vid / 8] & (1U << (vid % 8));
}

/*
 * GET_VDI_INFO for (name, snapid, tag). Returns the SD_RES_* result (vid
 * set on SUCCESS), or -1 for a transport failure (already printed).
 */
int dog_find_vdi(const char *name, uint32_t snapid, const char *tag,
		 uint32_t *vid);

/* The data_vdi_id[] view of an inode: dense for flat VDIs, a sorted list of
 * (idx, vid) for hyper volumes whose B-tree was read. */
struct dog_btree;
struct vdi_index {
	uint64_t nr_slots;
	uint32_t *slots;	     /* flat: nr_slots entries */
	uint32_t *ent_idx, *ent_vid; /* hyper: nr_ents sorted entries */
	uint64_t nr_ents;
	struct dog_btree *btree;     /* hyper: the open tree */
};

uint32_t vdi_index_get(const struct vdi_index *ix, uint64_t idx);
void vdi_index_free(struct vdi_index *ix);
/* Hyper volumes: map idx to vid in the B-tree, stored (leaves, counter and
 * root) before it returns, and in ix. SD_RES_* code, messages printed. */
int dog_btree_set(struct vdi_index *ix, uint32_t idx, uint32_t vid);
/* Read the index of the inode whose header is h. SD_RES_* code. */
int dog_read_vdi_index(const struct sd_inode_header *h, struct vdi_index *ix);

/* Read an inode header; SD_RES_* code (message printed on failure). */
int dog_read_inode_header(uint32_t vid, struct sd_inode_header *h);

/*
 * Look a VDI up and read its header (and its index when ix is not NULL),
 * printing upstream's messages: "Failed to open VDI ..." or "Failed to
 * read a snapshot/vdi ...". EXIT_SUCCESS or an exit code.
 */
int dog_open_vdi(const char *name, uint32_t snapid, const char *tag,
		 uint32_t *vid, struct sd_inode_header *h,
		 struct vdi_index *ix);

/*
 * Call fn for every live VDI and snapshot in ascending vid order: the
 * in-use bitmap (minus the deleted bitmap when skip_deleted), skipping
 * tombstones. 0, or -1 when a bitmap could not be read (printed).
 */
typedef void (*vdi_visit_fn)(const struct sd_inode_header *h, void *data);
int dog_for_each_vdi(bool skip_deleted, vdi_visit_fn fn, void *data);

/* ---- command-line helpers (common.c) ---- */

/* Parse a size argument; prints upstream's two-line message on error. */
int option_parse_size(const char *s, uint64_t *out);
/* -c n or d:p; copies (d+p for EC) or -1. */
int parse_copy(const char *s, uint8_t *copy_policy);
/* Validate -c / -z values, printing the upstream text and exiting 1. */
uint8_t parse_copy_or_exit(const char *s, uint8_t *copy_policy);
uint8_t parse_block_size_shift_or_exit(const char *s);
/* "3" or "4:2" */
char *redundancy_str(uint8_t copies, uint8_t copy_policy, char *buf,
		     size_t len);
/* Print message, read a line; anything not starting with "yes" exits 0. */
void confirm(const char *message);
/* strnumber with the current -r setting */
const char *strnum(uint64_t size, char buf[32]);

#endif
