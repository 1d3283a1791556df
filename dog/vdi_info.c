/*
 * "dog vdi" subcommands that inspect and adjust VDIs rather than their data:
 * tree and graph (the parent links of every VDI), object (an object's index
 * entry, its replicas, or an inode file's fields), track (where an object
 * was placed in every epoch), setattr and getattr (VDI attributes), lock
 * (the lock table) and alter-copy (a VDI's number of replicas).
 *
 * Output and messages follow upstream's dog (spec 11.3, 11.4). The sheep
 * does the work for attributes, unlocking and alter-copy; placement is
 * computed here from the node lists, the same way the sheep computes it.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "dog.h"
#include "sheepdog/client.h"
#include "sheepdog/hash.h"
#include "sheepdog/le.h"

#define TEXT_BOLD "\033[1m"
#define TEXT_NORMAL "\033[0m"

/* Flat index: valid -i values (spec 5.2). */
#define MAX_FLAT_INDEX SD_MAX_DATA_OBJS

static uint32_t listed_snapid(const struct sd_inode_header *h)
{
	return inode_is_snapshot(h) ? h->snap_id : 0;
}

static bool index_too_large(const struct sd_inode_header *h, uint64_t idx)
{
	return h->store_policy == 0 && idx >= MAX_FLAT_INDEX;
}

/* ---- every live VDI, in ascending vid order ---- */

struct vdi_list {
	struct sd_inode_header *v;
	size_t nr, cap;
};

static void collect_vdi(const struct sd_inode_header *h, void *data)
{
	struct vdi_list *l = data;

	if (l->nr == l->cap) {
		l->cap = l->cap ? l->cap * 2 : 64;
		l->v = xrealloc(l->v, l->cap * sizeof(*l->v));
	}
	l->v[l->nr++] = *h;
}

static int read_all_vdis(struct vdi_list *l)
{
	memset(l, 0, sizeof(*l));
	if (dog_for_each_vdi(true, collect_vdi, l) < 0) {
		free(l->v);
		return -1;
	}
	return 0;
}

/* ---- tree ---- */

/*
 * A VDI's parent in the tree is the VDI of the same name whose vid is its
 * parent_vdi_id; anything else (a clone of another name's snapshot, a
 * parent that is gone) starts a tree of its own, as upstream draws it.
 * Children are kept in ascending vid order.
 */
struct tree_node {
	const struct sd_inode_header *h;
	char label[64];
	bool highlight;
	int first_child, last_child, next_sibling; /* -1: none */
};

struct tree {
	struct tree_node *n;
	int *width, *more; /* per level, while drawing */
};

static void tree_indent(const struct tree *t, int level, bool first, bool last)
{
	if (first) {
		fputs(last ? "---" : "-+-", stdout);
		return;
	}
	for (int lvl = 0; lvl < level - 1; lvl++) {
		printf("%*s", t->width[lvl] + 1, "");
		fputs(t->more[lvl + 1] ? "| " : "  ", stdout);
	}
	printf("%*s", t->width[level - 1] + 1, "");
	fputs(last ? "`-" : "|-", stdout);
}

static void tree_draw(struct tree *t, int i, int level, bool first, bool last)
{
	struct tree_node *n = &t->n[i];

	tree_indent(t, level, first, last);
	printf("%s%s%s", n->highlight ? TEXT_BOLD : "", n->label,
	       n->highlight ? TEXT_NORMAL : "");
	if (n->first_child < 0) {
		putchar('\n');
		return;
	}
	t->more[level] = !last;
	t->width[level] = strlen(n->label);
	for (int c = n->first_child; c >= 0; c = t->n[c].next_sibling)
		tree_draw(t, c, level + 1, c == n->first_child,
			  t->n[c].next_sibling < 0);
}

static int find_parent(const struct vdi_list *l, size_t i)
{
	const struct sd_inode_header *h = &l->v[i];

	if (!h->parent_vdi_id)
		return -1;
	for (size_t j = 0; j < l->nr; j++)
		if (j != i && l->v[j].vdi_id == h->parent_vdi_id &&
		    !strcmp(l->v[j].name, h->name))
			return (int)j;
	return -1;
}

int vdi_tree(int argc, char **argv)
{
	bool tty = isatty(STDOUT_FILENO);
	struct vdi_list l;
	struct tree t;
	int *parent;

	if (read_all_vdis(&l) < 0)
		return EXIT_SYSFAIL;
	t.n = xcalloc(l.nr + 1, sizeof(*t.n));
	t.width = xcalloc(l.nr + 2, sizeof(int));
	t.more = xcalloc(l.nr + 2, sizeof(int));
	parent = xcalloc(l.nr + 1, sizeof(int));
	for (size_t i = 0; i < l.nr; i++) {
		struct tree_node *n = &t.n[i];
		time_t ti = (time_t)(l.v[i].create_time >> 32);
		struct tm tm;

		n->h = &l.v[i];
		n->first_child = n->last_child = n->next_sibling = -1;
		if (inode_is_snapshot(n->h)) {
			localtime_r(&ti, &tm);
			strftime(n->label, sizeof(n->label), "[%Y-%m-%d %H:%M]",
				 &tm);
		} else {
			snprintf(n->label, sizeof(n->label), "(you are here)");
			n->highlight = tty;
		}
	}
	for (size_t i = 0; i < l.nr; i++) {
		int p = find_parent(&l, i);

		parent[i] = p;
		if (p < 0)
			continue;
		if (t.n[p].last_child < 0)
			t.n[p].first_child = (int)i;
		else
			t.n[t.n[p].last_child].next_sibling = (int)i;
		t.n[p].last_child = (int)i;
	}
	for (size_t i = 0; i < l.nr; i++) {
		if (parent[i] >= 0)
			continue;
		printf("%s", l.v[i].name);
		t.more[0] = 0;
		t.width[0] = strlen(l.v[i].name);
		tree_draw(&t, (int)i, 1, true, true);
	}
	free(parent);
	free(t.n);
	free(t.width);
	free(t.more);
	free(l.v);
	return EXIT_SUCCESS;
}

/* ---- graph ---- */

/* A string for a dot double-quoted string: '"' and '\\' escaped. */
static char *dot_escape(const char *s, char *buf, size_t len)
{
	size_t n = 0;

	for (; *s && n + 3 < len; s++) {
		if (*s == '"' || *s == '\\')
			buf[n++] = '\\';
		buf[n++] = *s;
	}
	buf[n] = '\0';
	return buf;
}

static void print_graph_node(const struct sd_inode_header *h, void *data)
{
	time_t ti = (time_t)(h->create_time >> 32);
	char date[32], tm_str[32], size[32], name[2 * SD_MAX_VDI_LEN + 4];
	struct tm tm;

	localtime_r(&ti, &tm);
	strftime(date, sizeof(date), "%Y-%m-%d", &tm);
	strftime(tm_str, sizeof(tm_str), "%H:%M:%S", &tm);
	dot_escape(h->name, name, sizeof(name));
	printf("  \"%" PRIx32 "\" -> \"%" PRIx32 "\";\n", h->parent_vdi_id,
	       h->vdi_id);
	printf("  \"%" PRIx32 "\" [\n"
	       "    group = \"%s\",\n"
	       "    label = \"",
	       h->vdi_id, name);
	printf("Name: %10s\\n"
	       "Tag:  %10" PRIx32 "\\n"
	       "Size: %10s\\n"
	       "Date: %10s\\n"
	       "Time: %10s",
	       name, listed_snapid(h), strnum(h->vdi_size, size), date, tm_str);
	if (inode_is_snapshot(h))
		printf("\"\n  ];\n\n");
	else
		printf("\",\n    color=\"red\"\n  ];\n\n");
}

int vdi_graph(int argc, char **argv)
{
	printf("digraph G {\n");
	printf("  node [shape = \"box\", fontname = \"Courier\"];\n\n");
	printf("  \"0\" [shape = \"ellipse\", label = \"root\"];\n\n");
	if (dog_for_each_vdi(true, print_graph_node, NULL) < 0)
		return EXIT_SYSFAIL;
	printf("}\n");
	return EXIT_SUCCESS;
}

/* ---- object ---- */

static int object_map(const char *name)
{
	struct sd_inode_header h;
	struct vdi_index ix;
	uint32_t vid;
	int ret;

	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &h, &ix);
	if (ret != EXIT_SUCCESS) {
		sd_err("FATAL: %s not found", name);
		return ret;
	}
	printf("Index       VID\n");
	if (vdi_cmd.has_index) {
		printf("%08" PRIu64 " %8" PRIx32 "\n", vdi_cmd.index,
		       vdi_index_get(&ix, vdi_cmd.index));
	} else if (ix.slots) {
		for (uint64_t i = 0; i < ix.nr_slots; i++)
			if (ix.slots[i])
				printf("%08" PRIu64 " %8" PRIx32 "\n", i,
				       ix.slots[i]);
	} else {
		for (uint64_t i = 0; i < ix.nr_ents; i++)
			printf("%08" PRIu32 " %8" PRIx32 "\n", ix.ent_idx[i],
			       ix.ent_vid[i]);
	}
	vdi_index_free(&ix);
	return EXIT_SUCCESS;
}

/* Ask every node whether it stores oid (EXIST). */
static void print_holders_now(uint64_t oid)
{
	for (int i = 0; i < sd_nodes_nr; i++) {
		const struct sd_node *n = &sd_nodes[i];
		char host[64];
		struct sd_req req;
		struct sd_rsp rsp;

		sd_init_req(&req, SD_OP_EXIST);
		req.epoch = sd_epoch;
		req.obj.oid = oid;
		if (dog_exec_node(&n->nid, &req, NULL, NULL, 0, &rsp) < 0)
			continue;
		node_addr_to_str(&n->nid, host, sizeof(host));
		switch (rsp.result) {
		case SD_RES_SUCCESS:
			printf("%s has the object\n", host);
			break;
		case SD_RES_NO_OBJ:
			printf("%s doesn't have the object\n", host);
			break;
		case SD_RES_OLD_NODE_VER:
		case SD_RES_NEW_NODE_VER:
			sd_err("The node list has changed: please try again");
			break;
		default:
			sd_err("%s: hit an unexpected error (%s)", host,
			       sd_strerror(rsp.result));
			break;
		}
	}
}

static void print_expected_holders(uint64_t oid, int copies)
{
	int idx[SD_MAX_COPIES], nr;
	char host[64];

	printf("\nAccording to sheepdog algorithm, the object should be "
	       "located at:\n");
	nr = ring_oid_to_nodes(sd_ring, oid, copies, idx);
	for (int i = 0; i < nr; i++)
		printf(i < nr - 1 ? "%s " : "%s",
		       node_addr_to_str(&sd_ring->nodes[idx[i]].nid, host,
					sizeof(host)));
	printf("\n");
}

static int object_location(const char *name)
{
	struct sd_inode_header h;
	struct vdi_index ix;
	uint32_t vid, slot;
	uint64_t oid, idx = vdi_cmd.index;
	int ret;

	dog_update_node_list();
	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &h, vdi_cmd.has_index ? &ix : NULL);
	if (ret != EXIT_SUCCESS) {
		sd_err("FATAL: no inode objects");
		return ret;
	}
	if (!vdi_cmd.has_index) {
		printf("Looking for the inode object 0x%" PRIx32
		       " with %d nodes\n\n",
		       vid, sd_nodes_nr);
		print_holders_now(vid_to_vdi_oid(vid));
		print_expected_holders(vid_to_vdi_oid(vid), h.nr_copies);
		return EXIT_SUCCESS;
	}
	if (index_too_large(&h, idx)) {
		sd_err("The offset is too large!");
		vdi_index_free(&ix);
		return EXIT_FAILURE;
	}
	slot = vdi_index_get(&ix, idx);
	vdi_index_free(&ix);
	if (!slot) {
		printf("The inode object 0x%" PRIx32 " idx %" PRIu64
		       " is not allocated\n",
		       vid, idx);
		return EXIT_SUCCESS;
	}
	oid = vid_to_data_oid(slot, idx);
	printf("Looking for the object %016" PRIx64 " (vid 0x%" PRIx32
	       " idx %" PRIu64 ", %u copies) with %d nodes\n\n",
	       oid, vid, idx, h.nr_copies, sd_nodes_nr);
	print_holders_now(oid);
	print_expected_holders(oid, h.nr_copies);
	return EXIT_SUCCESS;
}

/*
 * An inode file from a sheep's store must be exactly one inode object;
 * its header must describe something an inode can be.
 */
static int load_inode_file(const char *path, uint8_t **out)
{
	struct stat st;
	uint8_t *buf;
	int fd = open(path, O_RDONLY);

	if (fd < 0) {
		sd_err("failed to open inode object file: %m");
		return EXIT_FAILURE;
	}
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) ||
	    st.st_size != SD_INODE_SIZE) {
		sd_err("failed to read inode object file: %s is not a %d-byte "
		       "inode object file",
		       path, SD_INODE_SIZE);
		close(fd);
		return EXIT_FAILURE;
	}
	buf = xmalloc(SD_INODE_SIZE);
	if (sd_read_full(fd, buf, SD_INODE_SIZE)) {
		sd_err("failed to read inode object file: %m");
		free(buf);
		close(fd);
		return EXIT_FAILURE;
	}
	close(fd);
	*out = buf;
	return EXIT_SUCCESS;
}

static const char *inode_header_problem(const uint8_t *raw,
					const struct sd_inode_header *h)
{
	if (!memchr(raw + SD_INODE_OFF_NAME, 0, SD_MAX_VDI_LEN) ||
	    !memchr(raw + SD_INODE_OFF_TAG, 0, SD_MAX_VDI_TAG_LEN))
		return "its name or tag is not NUL-terminated";
	if (!h->vdi_id || h->vdi_id >= SD_NR_VDIS ||
	    h->parent_vdi_id >= SD_NR_VDIS)
		return "its vdi_id or parent_vdi_id is not a 24-bit VDI id";
	if (h->nr_copies > SD_MAX_COPIES || h->store_policy > 1)
		return "its nr_copies or store_policy is out of range";
	if (h->block_size_shift &&
	    (h->block_size_shift < SD_MIN_BLOCK_SIZE_SHIFT ||
	     h->block_size_shift > SD_MAX_BLOCK_SIZE_SHIFT))
		return "its block_size_shift is out of range";
	return NULL;
}

static int object_dump_inode(const char *path)
{
	struct sd_inode_header h;
	const char *problem;
	uint8_t *raw;
	int ret = load_inode_file(path, &raw);

	if (ret != EXIT_SUCCESS)
		return ret;
	sd_inode_header_decode(raw, &h);
	problem = inode_header_problem(raw, &h);
	if (problem) {
		sd_err("%s is not an inode object: %s", path, problem);
		free(raw);
		return EXIT_FAILURE;
	}
	printf("name: %s\n", h.name);
	printf("tag: %s\n", h.tag);
	printf("create_time: %" PRIx64 "\n", h.create_time);
	printf("snap_ctime: %" PRIx64 "\n", h.snap_ctime);
	printf("vm_clock_nsec: %" PRIx64 "\n", h.vm_clock_nsec);
	printf("copy_policy: %d\n", h.copy_policy);
	printf("store_policy: %d\n", h.store_policy);
	printf("nr_copies: %d\n", h.nr_copies);
	printf("block_size_shift: %d\n", h.block_size_shift);
	printf("snap_id: %" PRIu32 "\n", h.snap_id);
	printf("vdi_id: %" PRIx32 "\n", h.vdi_id);
	printf("parent_vdi_id: %" PRIx32 "\n", h.parent_vdi_id);
	printf("btree_counter: %" PRIu32 "\n", h.btree_counter);

	printf("data_vdi_id:\n");
	for (uint32_t i = 0; i < SD_MAX_DATA_OBJS; i++) {
		uint32_t vid = get_le32(raw + SD_INODE_OFF_DATA_VDI_ID + 4 * i);

		if (vid)
			printf("%" PRIu32 ": %" PRIu32 "\n", i, vid);
	}
	printf("gref:\n");
	for (uint32_t i = 0; i < SD_MAX_DATA_OBJS; i++) {
		uint32_t vid = get_le32(raw + SD_INODE_OFF_DATA_VDI_ID + 4 * i);
		const uint8_t *g = raw + SD_INODE_OFF_GREF + 8 * (size_t)i;
		int32_t gen = (int32_t)get_le32(g), count = (int32_t)get_le32(g + 4);

		if (vid)
			printf("%" PRIu32 ": %" PRIx32 ", %d, %d\n", i, vid,
			       gen, count);
		else if (gen || count)
			printf("WARNING: index %" PRIu32
			       " doesn't have data vdi ID but its generation "
			       "and count is not zero(%d, %d)\n",
			       i, gen, count);
	}
	free(raw);
	return EXIT_SUCCESS;
}

static bool is_object_subcommand(const char *s)
{
	return s && (!strcmp(s, "location") || !strcmp(s, "map") ||
		     !strcmp(s, "dump-inode"));
}

/*
 * "vdi object <vdi> <what>", and upstream's order "vdi object <what>
 * <vdi>" too. For dump-inode the operand is an inode file.
 */
int vdi_object(int argc, char **argv)
{
	const char *a = argv[optind], *b = optind + 1 < argc ? argv[optind + 1]
							      : NULL;
	const char *what, *operand;

	if (is_object_subcommand(a) && b) {
		what = a;
		operand = b;
	} else if (is_object_subcommand(b)) {
		what = b;
		operand = a;
	} else {
		if (b)
			sd_err("Invalid command 'vdi object %s'", b);
		else
			sd_err("Please specify location, map or dump-inode");
		return EXIT_USAGE;
	}
	if (!strcmp(what, "map"))
		return object_map(operand);
	if (!strcmp(what, "location"))
		return object_location(operand);
	return object_dump_inode(operand);
}

/* ---- track ---- */

static void print_epoch_holders(uint64_t oid, uint8_t copies,
				const struct epoch_log *log,
				const struct sd_node *nodes)
{
	struct sd_ring *ring = log->nr_nodes ? ring_build(nodes, log->nr_nodes)
					     : NULL;
	int idx[SD_MAX_COPIES], nr = 0;
	char host[64];

	printf("\nobj %016" PRIx64 " locations at epoch %" PRIu32
	       ", copies = %d\n",
	       oid, log->epoch, copies);
	printf("---------------------------------------------------\n");
	if (ring)
		nr = ring_oid_to_nodes(ring, oid, copies, idx);
	for (int i = 0; i < nr; i++)
		printf("%s\n", node_addr_to_str(&ring->nodes[idx[i]].nid, host,
						sizeof(host)));
	if (ring)
		ring_free(ring);
}

/*
 * The epoch history (STAT_CLUSTER, newest first), each epoch's placement
 * computed from its own node list. Unlike upstream (spec 15.12) every
 * epoch is printed once, also one with fewer nodes than copies.
 */
static int track_object(uint64_t oid, uint8_t copies)
{
	uint32_t stride = sd_nodes_nr, nr_epochs = sd_epoch ? sd_epoch : 1;
	struct sd_node *nodes = NULL;
	uint8_t *buf = NULL;
	size_t rec, len;
	struct sd_req req;
	struct sd_rsp rsp;
	int ret = EXIT_SYSFAIL;

	for (;;) {
		rec = SD_EPOCH_LOG_HDR + (size_t)stride * SD_NODE_SIZE;
		len = MIN((size_t)nr_epochs * rec, (size_t)(64U << 20) / rec * rec);
		buf = xrealloc(buf, len);
		sd_init_req(&req, SD_OP_STAT_CLUSTER);
		req.data_length = len;
		req.cluster.nodes_nr = stride;
		if (dog_exec(&req, NULL, buf, len, &rsp) < 0)
			goto out;
		if (rsp.result == SD_RES_BUFFER_SMALL && stride < SD_MAX_NODES) {
			stride = MIN(stride * 2, (uint32_t)SD_MAX_NODES);
			continue;
		}
		if (rsp.result != SD_RES_SUCCESS) {
			sd_err("%s", sd_strerror(rsp.result));
			goto out;
		}
		break;
	}
	nodes = xcalloc(stride ? stride : 1, sizeof(*nodes));
	for (size_t off = 0; off + rec <= MIN((size_t)rsp.data_length, len);
	     off += rec) {
		struct epoch_log log;

		epoch_log_decode(buf + off, &log);
		if (log.nr_nodes > stride) {
			sd_err("epoch %" PRIu32 " has %" PRIu32
			       " nodes in a %" PRIu32 "-node record",
			       log.epoch, log.nr_nodes, stride);
			goto out;
		}
		for (uint32_t i = 0; i < log.nr_nodes; i++)
			sd_node_decode(buf + off + SD_EPOCH_LOG_HDR +
					       (size_t)i * SD_NODE_SIZE,
				       &nodes[i]);
		print_epoch_holders(oid, copies, &log, nodes);
	}
	ret = EXIT_SUCCESS;
out:
	free(nodes);
	free(buf);
	return ret;
}

int vdi_track(int argc, char **argv)
{
	const char *name = argv[optind];
	bool by_index = vdi_cmd.has_index && !vdi_cmd.has_oid;
	struct sd_inode_header h;
	struct vdi_index ix;
	uint64_t oid, idx = vdi_cmd.index;
	uint32_t vid, slot;
	int ret;

	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &h, by_index ? &ix : NULL);
	if (ret != EXIT_SUCCESS) {
		sd_err("FATAL: no inode objects");
		return ret;
	}
	if (vdi_cmd.has_oid) {
		if (!oid_is_valid(vdi_cmd.oid)) {
			sd_err("Invalid object id %016" PRIx64, vdi_cmd.oid);
			return EXIT_FAILURE;
		}
		oid = vdi_cmd.oid;
		printf("Tracking the object %016" PRIx64
		       " (the inode vid 0x%" PRIx32 ") with %d nodes\n",
		       oid, vid, sd_nodes_nr);
	} else if (!by_index) {
		oid = vid_to_vdi_oid(vid);
		printf("Tracking the inode object 0x%" PRIx32
		       " with %d nodes\n",
		       vid, sd_nodes_nr);
	} else {
		slot = vdi_index_get(&ix, idx);
		vdi_index_free(&ix);
		if (index_too_large(&h, idx)) {
			sd_err("The offset is too large!");
			return EXIT_FAILURE;
		}
		if (!slot) {
			sd_err("The inode object 0x%" PRIx32 " idx %" PRIu64
			       " is not allocated",
			       vid, idx);
			return EXIT_FAILURE;
		}
		oid = vid_to_data_oid(slot, idx);
		printf("Tracking the object %016" PRIx64
		       " (the inode vid 0x%" PRIx32 " idx %" PRIu64
		       ") with %d nodes\n",
		       oid, vid, idx, sd_nodes_nr);
	}
	return track_object(oid, h.nr_copies);
}

/* ---- setattr / getattr ---- */

#define ATTR_OFF_TAG 256
#define ATTR_OFF_SNAP_ID 520
#define ATTR_OFF_VALUE_LEN 524
#define ATTR_OFF_KEY 528
#define ATTR_OFF_VALUE 784

/*
 * GET_VDI_ATTR with a whole sheepdog_vdi_attr (spec 4.7). value_len is the
 * number of bytes given, so a binary value keeps its NULs (spec 15.18).
 */
struct dog_attr_result dog_find_attr(const char *name, uint32_t snapid,
				     const char *tag, const char *key,
				     const void *value, uint32_t value_len,
				     uint16_t flags)
{
	uint8_t *buf = xzalloc(SD_ATTR_OBJ_SIZE);
	struct dog_attr_result r = { 0 };
	struct sd_req req;
	struct sd_rsp rsp;

	put_fixed_str((char *)buf, SD_MAX_VDI_LEN, name);
	put_fixed_str((char *)buf + ATTR_OFF_TAG, SD_MAX_VDI_TAG_LEN, tag);
	put_le32(buf + ATTR_OFF_SNAP_ID, snapid);
	put_fixed_str((char *)buf + ATTR_OFF_KEY, SD_MAX_VDI_ATTR_KEY_LEN, key);
	if (value_len) {
		put_le32(buf + ATTR_OFF_VALUE_LEN, value_len);
		memcpy(buf + ATTR_OFF_VALUE, value, value_len);
	}
	sd_init_req(&req, SD_OP_GET_VDI_ATTR);
	req.flags = SD_FLAG_CMD_WRITE | flags;
	req.data_length = SD_ATTR_OBJ_SIZE;
	req.vdi.snapid = snapid;
	if (dog_exec(&req, buf, NULL, 0, &rsp) < 0)
		r.result = -1;
	else
		r.result = rsp.result;
	if (r.result == SD_RES_SUCCESS)
		r.oid = vid_to_attr_oid(rsp.vdi.vdi_id, rsp.vdi.attr_id);
	free(buf);
	return r;
}

int dog_read_attr_value(uint64_t oid, uint8_t *obj, uint32_t *value_len)
{
	int ret = dog_read_object(oid, obj, SD_ATTR_OBJ_SIZE, 0);

	if (ret != SD_RES_SUCCESS)
		return ret;
	*value_len = get_le32(obj + ATTR_OFF_VALUE_LEN);
	if (*value_len > SD_MAX_VDI_ATTR_VALUE_LEN)
		return SD_RES_INVALID_PARMS;
	memmove(obj, obj + ATTR_OFF_VALUE, *value_len);
	return SD_RES_SUCCESS;
}

static struct dog_attr_result find_attr(const char *name, const char *key,
					const void *value, uint32_t value_len,
					uint16_t flags)
{
	return dog_find_attr(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			     key, value, value_len, flags);
}

static bool check_attr_key(const char *key)
{
	if (!key) {
		sd_err("Please specify the attribute key");
		return false;
	}
	if (strlen(key) >= SD_MAX_VDI_ATTR_KEY_LEN) {
		sd_err("The attribute key is longer than %d bytes",
		       SD_MAX_VDI_ATTR_KEY_LEN - 1);
		return false;
	}
	return true;
}

/* The value from stdin: at most SD_MAX_VDI_ATTR_VALUE_LEN bytes. */
static int read_attr_value(uint8_t *buf, uint32_t *len)
{
	size_t done = 0;

	for (;;) {
		uint8_t extra;
		ssize_t n = done < SD_MAX_VDI_ATTR_VALUE_LEN
				    ? read(STDIN_FILENO, buf + done,
					   SD_MAX_VDI_ATTR_VALUE_LEN - done)
				    : read(STDIN_FILENO, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			sd_err("Failed to read attribute value from stdin: %m");
			return EXIT_SYSFAIL;
		}
		if (n == 0)
			break;
		if (done == SD_MAX_VDI_ATTR_VALUE_LEN) {
			sd_err("The attribute value is larger than %d bytes",
			       SD_MAX_VDI_ATTR_VALUE_LEN);
			return EXIT_FAILURE;
		}
		done += n;
	}
	*len = done;
	return EXIT_SUCCESS;
}

int vdi_setattr(int argc, char **argv)
{
	const char *name = argv[optind];
	const char *key = optind + 1 < argc ? argv[optind + 1] : NULL;
	const char *arg = optind + 2 < argc ? argv[optind + 2] : NULL;
	uint8_t *value = NULL;
	uint32_t value_len = 0;
	uint16_t flags;
	struct dog_attr_result r;
	int ret;

	if (!check_attr_key(key))
		return EXIT_USAGE;
	if (arg && !vdi_cmd.delete_attr) {
		if (strlen(arg) > SD_MAX_VDI_ATTR_VALUE_LEN) {
			sd_err("The attribute value is larger than %d bytes",
			       SD_MAX_VDI_ATTR_VALUE_LEN);
			return EXIT_FAILURE;
		}
		value = (uint8_t *)xstrdup(arg);
		value_len = strlen(arg);
	} else if (!vdi_cmd.delete_attr) {
		value = xmalloc(SD_MAX_VDI_ATTR_VALUE_LEN);
		ret = read_attr_value(value, &value_len);
		if (ret != EXIT_SUCCESS) {
			free(value);
			return ret;
		}
	}

	flags = vdi_cmd.delete_attr ? SD_FLAG_CMD_DEL : SD_FLAG_CMD_CREAT;
	if (vdi_cmd.exclusive)
		flags |= SD_FLAG_CMD_EXCL;
	r = find_attr(name, key, value, value_len, flags);
	free(value);
	switch (r.result) {
	case SD_RES_SUCCESS:
		return EXIT_SUCCESS;
	case -1:
		return EXIT_SYSFAIL;
	case SD_RES_VDI_EXIST:
		sd_err("The attribute '%s' already exists", key);
		return EXIT_EXISTS;
	case SD_RES_NO_OBJ:
		sd_err("Attribute '%s' not found", key);
		return EXIT_MISSING;
	case SD_RES_NO_VDI:
		sd_err("VDI not found");
		return EXIT_MISSING;
	default:
		sd_err("Failed to set attribute: %s", sd_strerror(r.result));
		return EXIT_FAILURE;
	}
}

int vdi_getattr(int argc, char **argv)
{
	const char *name = argv[optind];
	const char *key = optind + 1 < argc ? argv[optind + 1] : NULL;
	struct dog_attr_result r;
	uint8_t *obj;
	uint32_t value_len;
	int ret;

	if (!check_attr_key(key))
		return EXIT_USAGE;
	r = find_attr(name, key, NULL, 0, 0);
	switch (r.result) {
	case SD_RES_SUCCESS:
		break;
	case -1:
		return EXIT_SYSFAIL;
	case SD_RES_NO_OBJ:
		sd_err("Attribute '%s' not found", key);
		return EXIT_MISSING;
	case SD_RES_NO_VDI:
		sd_err("VDI not found");
		return EXIT_MISSING;
	default:
		sd_err("Failed to find attribute oid: %s",
		       sd_strerror(r.result));
		return EXIT_MISSING;
	}

	obj = xmalloc(SD_ATTR_OBJ_SIZE);
	ret = dog_read_attr_value(r.oid, obj, &value_len);
	if (ret == SD_RES_INVALID_PARMS) {
		sd_err("Attribute '%s' is corrupted: its value length is %" PRIu32,
		       key, value_len);
		free(obj);
		return EXIT_FAILURE;
	}
	if (ret != SD_RES_SUCCESS) {
		sd_err("Failed to read attribute oid: %s", sd_strerror(ret));
		free(obj);
		return EXIT_SYSFAIL;
	}
	if (sd_write_full(STDOUT_FILENO, obj, value_len)) {
		sd_err("Failed to write to stdout: %m");
		free(obj);
		return EXIT_SYSFAIL;
	}
	free(obj);
	return EXIT_SUCCESS;
}

/* ---- lock ---- */

#define LOCK_STATE_UNLOCKED 1
#define LOCK_STATE_LOCKED 2
#define LOCK_STATE_SHARED 3
#define LOCK_TYPE_NORMAL 0
#define LOCK_TYPE_SHARED 1
#define VS_OFF_NR_PARTICIPANTS 60
#define VS_OFF_PARTICIPANTS_STATE 64
#define VS_OFF_PARTICIPANTS 188
#define VS_MAX_PARTICIPANTS 31

/* GET_VDI_COPIES: every vdi_state the sheep knows, raw. NULL on failure. */
static uint8_t *read_vdi_states(size_t *nr)
{
	uint32_t len = 512 * SD_VDI_STATE_SIZE;
	uint8_t *buf = NULL;

	for (;;) {
		struct sd_req req;
		struct sd_rsp rsp;

		buf = xrealloc(buf, len);
		sd_init_req(&req, SD_OP_GET_VDI_COPIES);
		req.data_length = len;
		if (dog_exec(&req, NULL, buf, len, &rsp) < 0)
			break;
		if (rsp.result == SD_RES_BUFFER_SMALL && len < (64U << 20) / 2) {
			len *= 2;
			continue;
		}
		if (rsp.result != SD_RES_SUCCESS) {
			sd_err("failed to execute SD_OP_GET_VDI_COPIES: %s",
			       sd_strerror(rsp.result));
			break;
		}
		*nr = MIN(rsp.data_length, len) / SD_VDI_STATE_SIZE;
		return buf;
	}
	free(buf);
	return NULL;
}

static int vid_cmp(const void *a, const void *b)
{
	uint32_t x = get_le32(a), y = get_le32(b);

	return x < y ? -1 : x > y;
}

static void print_participants(const uint8_t *raw)
{
	uint32_t nr = MIN(get_le32(raw + VS_OFF_NR_PARTICIPANTS),
			  (uint32_t)VS_MAX_PARTICIPANTS);
	char buf[96];

	for (uint32_t j = 0; j < nr; j++) {
		const uint8_t *p = raw + VS_OFF_PARTICIPANTS + 40 * j;
		struct node_id nid = { 0 };

		memcpy(nid.addr, p, 16);
		nid.port = get_le16(p + 16);
		printf(" %s", node_id_to_str(&nid, buf, sizeof(buf)));
		switch (get_le32(raw + VS_OFF_PARTICIPANTS_STATE + 4 * j)) {
		case 1:
			printf("(modified)");
			break;
		case 2:
			printf("(shared)");
			break;
		case 3:
			printf("(invalidated)");
			break;
		default:
			printf("(unknown)");
			break;
		}
	}
}

int dog_vdi_lock_owner(uint32_t vid, char *owner, size_t len)
{
	size_t nr;
	uint8_t *states = read_vdi_states(&nr);
	int ret = 0;

	if (!states)
		return -1;
	for (size_t i = 0; i < nr; i++) {
		struct vdi_state s;

		vdi_state_decode(states + i * SD_VDI_STATE_SIZE, &s);
		if (s.vid != vid || s.lock_state != LOCK_STATE_LOCKED)
			continue;
		node_addr_to_str(&s.lock_owner, owner, len);
		ret = 1;
	}
	free(states);
	return ret;
}

static int lock_list(void)
{
	size_t nr;
	uint8_t *states = read_vdi_states(&nr);
	char buf[96];

	if (!states)
		return EXIT_SYSFAIL;
	qsort(states, nr, SD_VDI_STATE_SIZE, vid_cmp);
	printf("  Name         Id  VDI id  Tag            Owner node(s)\n");
	for (size_t i = 0; i < nr; i++) {
		const uint8_t *raw = states + i * SD_VDI_STATE_SIZE;
		struct sd_inode_header h;
		struct vdi_state s;
		bool clone;

		vdi_state_decode(raw, &s);
		if (s.deleted || (s.lock_state != LOCK_STATE_LOCKED &&
				  s.lock_state != LOCK_STATE_SHARED))
			continue;
		if (dog_read_inode_header(s.vid, &h) != SD_RES_SUCCESS)
			continue;
		clone = h.snap_id == 1 && h.parent_vdi_id != 0;
		printf("%c %-8s  %5" PRIu32 "  %6" PRIx32 "  %-13s ",
		       inode_is_snapshot(&h) ? 's' : (clone ? 'c' : ' '), h.name,
		       listed_snapid(&h), s.vid, h.tag);
		if (s.lock_state == LOCK_STATE_LOCKED)
			printf(" %s",
			       node_id_to_str(&s.lock_owner, buf, sizeof(buf)));
		else
			print_participants(raw);
		printf("\n");
	}
	free(states);
	return EXIT_SUCCESS;
}

static int lock_unlock(const char *name)
{
	uint32_t vid = 0, type;
	struct sd_req req;
	struct sd_rsp rsp;
	uint8_t *states;
	size_t nr;
	int ret;

	ret = dog_find_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid);
	if (ret < 0)
		return EXIT_SYSFAIL;
	if (ret != SD_RES_SUCCESS) {
		sd_err("VDI: %s not found", name);
		return EXIT_SYSFAIL;
	}
	states = read_vdi_states(&nr);
	if (!states)
		return EXIT_SYSFAIL;
	ret = LOCK_STATE_UNLOCKED;
	for (size_t i = 0; i < nr; i++) {
		struct vdi_state s;

		vdi_state_decode(states + i * SD_VDI_STATE_SIZE, &s);
		if (s.vid == vid)
			ret = s.lock_state;
	}
	free(states);
	switch (ret) {
	case LOCK_STATE_LOCKED:
		type = LOCK_TYPE_NORMAL;
		break;
	case LOCK_STATE_SHARED:
		type = LOCK_TYPE_SHARED;
		break;
	case LOCK_STATE_UNLOCKED:
		sd_err("VDI: %s is not locked", name);
		return EXIT_SYSFAIL;
	default:
		sd_err("VDI: %s unknown lock state", name);
		return EXIT_SYSFAIL;
	}
	sd_init_req(&req, SD_OP_RELEASE_VDI);
	req.vdi.base_vdi_id = vid;
	req.vdi.type = type;
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to unlock VDI %s: %s", name,
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

int vdi_lock(int argc, char **argv)
{
	const char *what = argv[optind];

	if (!strcmp(what, "list"))
		return lock_list();
	if (!strcmp(what, "unlock")) {
		if (optind + 1 >= argc) {
			sd_err("Please specify the VDI to unlock");
			return EXIT_USAGE;
		}
		return lock_unlock(argv[optind + 1]);
	}
	sd_err("Invalid command 'vdi lock %s'", what);
	return EXIT_USAGE;
}

/* ---- alter-copy ---- */

#define ALTER_VDI_COPY_PROMPT                                                  \
	"    __\n"                                                             \
	"   ()'`;\n"                                                           \
	"   /\\|`  Caution! Changing VDI's redundancy level will affect\n"     \
	"  /  |   the VDI itself only and trigger recovery.\n"                 \
	"(/_)_|_  Are you sure you want to continue? [yes/no]: "

/* Standalone: neither a snapshot nor a clone, and nothing derived from it. */
static bool vdi_is_standalone(uint32_t vid, const struct sd_inode_header *h,
			      bool *ok)
{
	struct vdi_list l;
	bool standalone = !inode_is_snapshot(h) && !h->parent_vdi_id;

	*ok = read_all_vdis(&l) == 0;
	if (!*ok)
		return false;
	for (size_t i = 0; i < l.nr && standalone; i++)
		if (l.v[i].parent_vdi_id == vid)
			standalone = false;
	free(l.v);
	return standalone;
}

int vdi_alter_copy(int argc, char **argv)
{
	const char *name = argv[optind];
	struct sd_inode_header h;
	struct sd_req req;
	struct sd_rsp rsp;
	uint32_t vid;
	int old_copies, ret;
	bool ok;

	if (vdi_cmd.copy_policy) {
		sd_err("Changing redundancy level of erasure coded vdi "
		       "is not supported yet.");
		return EXIT_USAGE;
	}
	if (!vdi_cmd.nr_copies) {
		vdi_cmd.nr_copies = SD_DEFAULT_COPIES;
		printf("The vdi's redundancy level is not specified, "
		       "use %d as default.\n",
		       SD_DEFAULT_COPIES);
	}
	if (vdi_cmd.nr_copies > sd_nodes_nr && !vdi_cmd.force) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "Number of copies (%d) is larger than number of "
			 "nodes (%d).\n"
			 "Are you sure you want to continue? [yes/no]: ",
			 vdi_cmd.nr_copies, sd_nodes_nr);
		confirm(msg);
	}

	ret = dog_open_vdi(name, 0, "", &vid, &h, NULL);
	if (ret != EXIT_SUCCESS) {
		sd_err("Reading %s's vdi object failure.", name);
		return EXIT_FAILURE;
	}
	if (h.copy_policy) {
		sd_err("%s's copy policy is erasure code, "
		       "changing it is not supported yet.",
		       name);
		return EXIT_FAILURE;
	}
	old_copies = h.nr_copies;
	if (old_copies == vdi_cmd.nr_copies) {
		sd_err("%s's redundancy level is already set to %d, "
		       "nothing changed.",
		       name, old_copies);
		return EXIT_FAILURE;
	}
	if (!vdi_is_standalone(vid, &h, &ok)) {
		if (!ok)
			return EXIT_SYSFAIL;
		sd_err("Only standalone vdi supports "
		       "changing redundancy level.");
		sd_err("Please clone %s with -n (--no-share) "
		       "option first.",
		       name);
		return EXIT_FAILURE;
	}
	if (!vdi_cmd.force)
		confirm(ALTER_VDI_COPY_PROMPT);

	/* The sheep rewrites the inode header and moves the replicas. */
	sd_init_req(&req, SD_OP_ALTER_VDI_COPY);
	req.vdi_state.new_vid = vid;
	req.vdi_state.copies = vdi_cmd.nr_copies;
	req.vdi_state.copy_policy = vdi_cmd.copy_policy;
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Response's result: %s", sd_strerror(rsp.result));
		sd_err("Changing %s's redundancy level failure.", name);
		return EXIT_FAILURE;
	}
	sd_info("%s's redundancy level is set to %d, the old one was %d.",
		name, vdi_cmd.nr_copies, old_copies);
	return EXIT_SUCCESS;
}
