/*
 * sd-placement: does every object live on exactly the nodes placement says
 * hold it? The tests' oracle for "every object has its N replicas where the
 * ring puts them, and no live copy anywhere else".
 *
 * It takes the node list from one sheep, builds the ring the way the daemon
 * does (lib/ring.c), enumerates the objects of every VDI (the inode, the
 * data objects its index points at and, for hyper volumes, the B-tree
 * leaves; copies come from the inode of the vid that owns the object), and
 * asks EVERY node with EXIST whether it has each object live. It also
 * checks that the cluster has settled: every node lists the same members at
 * the same epoch and none reports recovery in progress. Vmstate, attribute
 * and ledger objects are not enumerated: nothing tells which of them exist.
 *
 * Exit status: 0 when settled and every object is on exactly its holders,
 * 1 when a check failed (misplaced, missing, extra, not settled), 2 when
 * the check could not be made (a node unreachable, a protocol error).
 */
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <inttypes.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <unistd.h>

#include "sheepdog/btree.h"
#include "sheepdog/client.h"
#include "sheepdog/layout.h"
#include "sheepdog/le.h"
#include "sheepdog/proto.h"
#include "sheepdog/ring.h"
#include "sheepdog/util.h"

#define EXIT_PROBLEMS 1
#define EXIT_CANNOT 2
/* EXIST requests in flight per node at a time. */
#define BATCH 512

static const char *opt_host = "127.0.0.1";
static int opt_port = 7000;
static int opt_timeout = 10;
static int opt_details = 10;
static int opt_nodes = -1;
static bool opt_verbose;

static struct sd_ring *ring;
static uint32_t cluster_epoch;
static uint8_t default_copies;
static int main_fd = -1;
static int *node_fds;
static uint32_t next_id = 1;

/* ---- talking to sheep ---- */

static const char *node_name(int n)
{
	static char buf[SD_MAX_COPIES + 1][64];
	static int slot;
	char *b = buf[slot++ % ARRAY_SIZE(buf)];

	return node_addr_to_str(&ring->nodes[n].nid, b, 64);
}

static void cannot(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void cannot(const char *fmt, ...)
{
	va_list ap;

	fprintf(stderr, "sd-placement: ");
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fprintf(stderr, "\n");
	exit(EXIT_CANNOT);
}

/* Connect with send and receive deadlines, so that a hung sheep ends the
 * check instead of hanging it. */
static int connect_node(const char *host, int port)
{
	struct timeval tv = {.tv_sec = opt_timeout};
	int fd = sd_connect(host, port);

	if (fd < 0)
		cannot("cannot connect to %s:%d: %s", host, port,
		       strerror(-fd));
	setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));
	return fd;
}

static const char *errstr(int err)
{
	return err == -EAGAIN || err == -EWOULDBLOCK ? "timed out"
						     : strerror(-err);
}

static void exec_or_die(int fd, const char *who, struct sd_req *req,
			const void *wdata, void *rdata, size_t rlen,
			struct sd_rsp *rsp)
{
	int ret;

	req->id = next_id++;
	ret = sd_exec(fd, req, wdata, rdata, rlen, rsp);
	if (ret)
		cannot("%s to %s failed: %s", sd_op_name(req->opcode), who,
		       errstr(ret));
}

static void main_exec(struct sd_req *req, const void *wdata, void *rdata,
		      size_t rlen, struct sd_rsp *rsp)
{
	char who[80];

	snprintf(who, sizeof(who), "%s:%d", opt_host, opt_port);
	exec_or_die(main_fd, who, req, wdata, rdata, rlen, rsp);
}

/* READ_OBJ through the main sheep; zeros past what it returned. */
static int read_obj(uint64_t oid, void *buf, uint32_t len, uint64_t offset)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_READ_OBJ);
	req.data_length = len;
	req.obj.oid = oid;
	req.obj.offset = offset;
	main_exec(&req, NULL, buf, len, &rsp);
	if (rsp.result != SD_RES_SUCCESS)
		return rsp.result;
	if (rsp.data_length < len)
		memset((uint8_t *)buf + rsp.data_length, 0,
		       len - rsp.data_length);
	return SD_RES_SUCCESS;
}

/* ---- the cluster: members, ring, agreement ---- */

static int get_node_list(int fd, const char *who, struct sd_node **nodes,
			 uint32_t *epoch)
{
	size_t size = (size_t)SD_MAX_NODES * SD_NODE_SIZE;
	uint8_t *buf = xzalloc(size);
	struct sd_req req;
	struct sd_rsp rsp;
	int nr;

	sd_init_req(&req, SD_OP_GET_NODE_LIST);
	req.data_length = size;
	exec_or_die(fd, who, &req, NULL, buf, size, &rsp);
	if (rsp.result != SD_RES_SUCCESS)
		cannot("GET_NODE_LIST to %s: %s", who, sd_strerror(rsp.result));
	nr = MIN(rsp.data_length, size) / SD_NODE_SIZE;
	*nodes = xcalloc(nr ? nr : 1, sizeof(**nodes));
	for (int i = 0; i < nr; i++)
		sd_node_decode(buf + (size_t)i * SD_NODE_SIZE, &(*nodes)[i]);
	*epoch = rsp.epoch;
	free(buf);
	return nr;
}

static int node_cmp(const void *a, const void *b)
{
	return sd_node_cmp(a, b);
}

/* The node list and ring of the main sheep, as dog builds them. */
static void load_ring(void)
{
	uint8_t hdr[SD_EPOCH_LOG_HDR];
	struct sd_node *nodes;
	struct epoch_log log;
	struct sd_req req;
	struct sd_rsp rsp;
	char who[80];
	int nr;

	snprintf(who, sizeof(who), "%s:%d", opt_host, opt_port);
	nr = get_node_list(main_fd, who, &nodes, &cluster_epoch);
	if (nr == 0)
		cannot("%s lists no nodes", who);

	sd_init_req(&req, SD_OP_STAT_CLUSTER);
	req.data_length = sizeof(hdr);
	req.cluster.nodes_nr = 0;
	main_exec(&req, NULL, hdr, sizeof(hdr), &rsp);
	if (rsp.result != SD_RES_SUCCESS || rsp.data_length < sizeof(hdr))
		cannot("%s is not running: %s", who, sd_strerror(rsp.result));
	epoch_log_decode(hdr, &log);
	default_copies = log.nr_copies ? log.nr_copies : SD_DEFAULT_COPIES;
	if (log.flags & SD_CLUSTER_FLAG_AUTO_VNODES)
		ring_auto_vnodes(nodes, nr);
	qsort(nodes, nr, sizeof(*nodes), node_cmp);
	ring = ring_build(nodes, nr);
	if (!ring)
		cannot("cannot build the ring of %d nodes", nr);
	free(nodes);
}

static bool same_members(const struct sd_node *a, int nr_a,
			 const struct sd_node *b, int nr_b)
{
	if (nr_a != nr_b)
		return false;
	for (int i = 0; i < nr_a; i++)
		if (!node_id_eq(&a[i].nid, &b[i].nid))
			return false;
	return true;
}

/*
 * Open a connection to every member and check that each one lists the same
 * members at the same epoch and is not recovering. Returns false (after
 * saying why) if the cluster has not settled.
 */
static bool check_settled(void)
{
	bool settled = true;

	if (opt_nodes >= 0 && ring->nr_nodes != opt_nodes) {
		printf("not settled: %s:%d lists %d nodes, expected %d\n",
		       opt_host, opt_port, ring->nr_nodes, opt_nodes);
		settled = false;
	}
	node_fds = xcalloc(ring->nr_nodes, sizeof(*node_fds));
	for (int n = 0; n < ring->nr_nodes; n++) {
		uint8_t state[SD_RECOVERY_STATE_SIZE] = {0};
		struct sd_node *nodes;
		struct sd_req req;
		struct sd_rsp rsp;
		char host[64];
		uint32_t epoch;
		int nr;

		addr_to_str(ring->nodes[n].nid.addr, host, sizeof(host));
		node_fds[n] = connect_node(host, ring->nodes[n].nid.port);
		nr = get_node_list(node_fds[n], node_name(n), &nodes, &epoch);
		qsort(nodes, nr, sizeof(*nodes), node_cmp);
		if (epoch != cluster_epoch) {
			printf("not settled: %s is at epoch %" PRIu32
			       ", %s:%d at epoch %" PRIu32 "\n",
			       node_name(n), epoch, opt_host, opt_port,
			       cluster_epoch);
			settled = false;
		} else if (!same_members(nodes, nr, ring->nodes,
					 ring->nr_nodes)) {
			printf("not settled: %s lists other members than "
			       "%s:%d at epoch %" PRIu32 "\n",
			       node_name(n), opt_host, opt_port, epoch);
			settled = false;
		}
		free(nodes);

		sd_init_req(&req, SD_OP_STAT_RECOVERY);
		req.data_length = sizeof(state);
		exec_or_die(node_fds[n], node_name(n), &req, NULL, state,
			    sizeof(state), &rsp);
		if (rsp.result == SD_RES_SUCCESS && state[0]) {
			printf("not settled: %s is recovering (state %" PRIu32
			       ", %" PRIu64 " of %" PRIu64 " objects)\n",
			       node_name(n), get_le32(state + 4),
			       get_le64(state + 8), get_le64(state + 16));
			settled = false;
		}
	}
	return settled;
}

/* ---- the objects ---- */

struct object {
	uint64_t oid;
	uint8_t copies;
};

static struct object *objs;
static size_t nr_objs, cap_objs;

/* Copies of each vid seen: the inode's nr_copies, or the cluster default
 * when the inode cannot be read (that is reported as a problem). */
struct vid_copies {
	uint32_t vid;
	uint8_t copies;
};

static struct vid_copies *vids;
static size_t nr_vids;
static int nr_unreadable;
static int nr_vdis_checked;

static void add_object(uint64_t oid, uint8_t copies)
{
	if (nr_objs == cap_objs) {
		cap_objs = cap_objs ? cap_objs * 2 : 1024;
		objs = xrealloc(objs, cap_objs * sizeof(*objs));
	}
	objs[nr_objs++] = (struct object){oid, copies};
}

static int read_header(uint32_t vid, struct sd_inode_header *h)
{
	uint8_t buf[SD_INODE_HEADER_SIZE];
	int ret = read_obj(vid_to_vdi_oid(vid), buf, sizeof(buf), 0);

	if (ret == SD_RES_SUCCESS)
		sd_inode_header_decode(buf, h);
	return ret;
}

static void remember_copies(uint32_t vid, uint8_t copies)
{
	vids = xrealloc(vids, (nr_vids + 1) * sizeof(*vids));
	vids[nr_vids++] = (struct vid_copies){vid, copies};
}

/* The copy count of the objects owned by vid. */
static uint8_t vid_copies(uint32_t vid)
{
	struct sd_inode_header h;
	int ret;

	for (size_t i = 0; i < nr_vids; i++)
		if (vids[i].vid == vid)
			return vids[i].copies;
	ret = read_header(vid, &h);
	if (ret != SD_RES_SUCCESS) {
		printf("unreadable inode of vid %" PRIx32
		       " (owner of objects): %s\n",
		       vid, sd_strerror(ret));
		nr_unreadable++;
		remember_copies(vid, default_copies);
		return default_copies;
	}
	remember_copies(vid, h.nr_copies);
	return h.nr_copies;
}

static int btree_read(void *opaque, uint64_t oid, void *buf, uint32_t len,
		      uint64_t offset)
{
	return read_obj(oid, buf, len, offset);
}

static int add_btree_entry(uint32_t idx, uint32_t vid, void *arg)
{
	const uint64_t *nr_slots = arg;

	if (idx < *nr_slots)
		add_object(vid_to_data_oid(vid, idx), vid_copies(vid));
	return 0;
}

static int add_btree_leaf(uint64_t oid, void *arg)
{
	const struct sd_inode_header *h = arg;

	add_object(oid, h->nr_copies);
	return 0;
}

/* The data objects and B-tree leaves of a hyper volume. */
static int add_hyper_objects(const struct sd_inode_header *h, uint64_t nr_slots)
{
	struct btree_ops ops = {.read_obj = btree_read};
	uint8_t *root = xmalloc(BTREE_NODE_SIZE);
	struct btree bt;
	int ret;

	ret = read_obj(vid_to_vdi_oid(h->vdi_id), root, BTREE_NODE_SIZE,
		       SD_INODE_OFF_DATA_VDI_ID);
	if (ret == SD_RES_SUCCESS)
		ret = btree_open(&bt, h->vdi_id, h->btree_counter, root, &ops);
	if (ret == SD_RES_SUCCESS)
		ret = btree_for_each_leaf(&bt, add_btree_leaf, (void *)h);
	if (ret == SD_RES_SUCCESS)
		ret = btree_for_each(&bt, add_btree_entry, &nr_slots);
	free(root);
	return ret;
}

static int add_flat_objects(const struct sd_inode_header *h, uint64_t nr_slots)
{
	uint8_t *index;
	int ret;

	if (!nr_slots)
		return SD_RES_SUCCESS;
	index = xmalloc(nr_slots * 4);
	ret = read_obj(vid_to_vdi_oid(h->vdi_id), index, nr_slots * 4,
		       SD_INODE_OFF_DATA_VDI_ID);
	for (uint64_t i = 0; ret == SD_RES_SUCCESS && i < nr_slots; i++) {
		uint32_t vid = get_le32(index + 4 * i);

		if (vid)
			add_object(vid_to_data_oid(vid, i), vid_copies(vid));
	}
	free(index);
	return ret;
}

/* The inode of vid and every object its index points at. */
static void add_vdi(uint32_t vid)
{
	struct sd_inode_header h;
	uint64_t nr_slots;
	int ret;

	ret = read_header(vid, &h);
	if (ret != SD_RES_SUCCESS) {
		printf("unreadable inode of vid %" PRIx32 ": %s\n", vid,
		       sd_strerror(ret));
		nr_unreadable++;
		remember_copies(vid, default_copies);
		add_object(vid_to_vdi_oid(vid), default_copies);
		return;
	}
	nr_vdis_checked++;
	remember_copies(vid, h.nr_copies);
	add_object(vid_to_vdi_oid(vid), h.nr_copies);
	if (h.copy_policy) {
		printf("VDI %s (vid %" PRIx32 "): erasure coded, only the "
		       "inode is checked\n",
		       h.name, vid);
		return;
	}
	nr_slots = inode_nr_slots(h.vdi_size, h.block_size_shift);
	if (h.store_policy == 1)
		ret = add_hyper_objects(&h, nr_slots);
	else
		ret = add_flat_objects(&h, nr_slots);
	if (ret != SD_RES_SUCCESS) {
		printf("unreadable index of VDI %s (vid %" PRIx32 "): %s\n",
		       h.name, vid, sd_strerror(ret));
		nr_unreadable++;
	}
	if (opt_verbose)
		printf("VDI %s (vid %" PRIx32 ", %s, copies %u): %zu objects "
		       "so far\n",
		       h.name[0] ? h.name : "(deleted)", vid,
		       h.store_policy ? "hyper" : "flat", h.nr_copies, nr_objs);
}

static void add_all_vdis(void)
{
	uint8_t *bitmap = xzalloc(SD_VDI_BITMAP_SIZE);
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_READ_VDIS);
	req.data_length = SD_VDI_BITMAP_SIZE;
	main_exec(&req, NULL, bitmap, SD_VDI_BITMAP_SIZE, &rsp);
	if (rsp.result != SD_RES_SUCCESS)
		cannot("READ_VDIS: %s", sd_strerror(rsp.result));
	for (uint32_t vid = 0; vid < SD_NR_VDIS; vid++)
		if (bitmap[vid / 8] & (1U << (vid % 8)))
			add_vdi(vid);
	free(bitmap);
}

static uint32_t find_vdi(const char *name)
{
	char buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN] = {0};
	struct sd_req req;
	struct sd_rsp rsp;

	if (strlen(name) >= SD_MAX_VDI_LEN)
		cannot("VDI name too long: %s", name);
	memcpy(buf, name, strlen(name));
	sd_init_req(&req, SD_OP_GET_VDI_INFO);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = sizeof(buf);
	main_exec(&req, buf, NULL, 0, &rsp);
	if (rsp.result != SD_RES_SUCCESS)
		cannot("VDI %s: %s", name, sd_strerror(rsp.result));
	return rsp.vdi.vdi_id;
}

static int object_cmp(const void *a, const void *b)
{
	const struct object *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

/* Objects shared by snapshots and clones are listed once. */
static void unique_objects(void)
{
	size_t out = 0;

	if (!nr_objs)
		return;
	qsort(objs, nr_objs, sizeof(*objs), object_cmp);
	for (size_t i = 1; i < nr_objs; i++)
		if (objs[i].oid != objs[out].oid)
			objs[++out] = objs[i];
	nr_objs = out + 1;
}

/* ---- asking every node ---- */

struct counts {
	size_t misplaced, missing, extra, details;
	bool epoch_moved;
};

/*
 * EXIST for objs[start..start+n) on node n_idx: every request goes out
 * first, then the replies are matched by id (object index in the batch).
 * live[j] is set when the node has object j live.
 */
static void exist_batch(int n_idx, size_t start, int n, bool *live,
			struct counts *c)
{
	int fd = node_fds[n_idx], ret;

	for (int j = 0; j < n; j++) {
		struct sd_req req;

		sd_init_req(&req, SD_OP_EXIST);
		req.id = j;
		req.epoch = cluster_epoch;
		req.obj.oid = objs[start + j].oid;
		ret = sd_send_req(fd, &req, NULL);
		if (ret)
			cannot("EXIST to %s failed: %s", node_name(n_idx),
			       errstr(ret));
	}
	for (int k = 0; k < n; k++) {
		struct sd_rsp rsp;

		ret = sd_recv_rsp(fd, &rsp, NULL, 0);
		if (ret)
			cannot("EXIST reply from %s failed: %s",
			       node_name(n_idx), errstr(ret));
		if (rsp.id >= (uint32_t)n)
			cannot("EXIST reply from %s has unknown id %" PRIu32,
			       node_name(n_idx), rsp.id);
		if (rsp.result == SD_RES_SUCCESS)
			live[rsp.id] = true;
		else if (rsp.result != SD_RES_NO_OBJ)
			cannot("EXIST %016" PRIx64 " on %s: %s",
			       objs[start + rsp.id].oid, node_name(n_idx),
			       sd_strerror(rsp.result));
		if (rsp.epoch != cluster_epoch)
			c->epoch_moved = true;
	}
}

/* Judge one object from the answers of every node (live[n]). */
static void judge(const struct object *o, const bool *live, struct counts *c)
{
	int idx[SD_MAX_COPIES], nr, have = 0, lacking = 0, strays = 0;
	bool holder[SD_MAX_NODES] = {false};
	struct strbuf sb = STRBUF_INIT;
	const char *what;

	nr = ring_oid_to_nodes(ring, o->oid, o->copies, idx);
	for (int i = 0; i < nr; i++) {
		holder[idx[i]] = true;
		if (live[idx[i]])
			have++;
		else
			lacking++;
	}
	for (int n = 0; n < ring->nr_nodes; n++)
		if (live[n] && !holder[n])
			strays++;
	if (!lacking && !strays)
		return;
	if (have + strays == 0) {
		c->missing++;
		what = "missing";
	} else if (lacking) {
		c->misplaced++;
		what = "misplaced";
	} else {
		what = "extra";
	}
	if (strays)
		c->extra++;
	if (c->details++ >= (size_t)opt_details)
		return;
	strbuf_addf(&sb, "%s %016" PRIx64 " (copies %u): holders", what, o->oid,
		    o->copies);
	for (int i = 0; i < nr; i++)
		strbuf_addf(&sb, " %s%s", node_name(idx[i]),
			    live[idx[i]] ? "" : "(lacks it)");
	if (strays) {
		strbuf_addstr(&sb, "; also live on");
		for (int n = 0; n < ring->nr_nodes; n++)
			if (live[n] && !holder[n])
				strbuf_addf(&sb, " %s", node_name(n));
	}
	printf("%s\n", sb.buf);
	strbuf_release(&sb);
}

static void check_objects(struct counts *c)
{
	bool *live = xcalloc((size_t)BATCH * ring->nr_nodes, sizeof(*live));
	bool *one = xcalloc(ring->nr_nodes, sizeof(*one));

	for (size_t start = 0; start < nr_objs; start += BATCH) {
		int n = MIN(nr_objs - start, (size_t)BATCH);

		memset(live, 0, (size_t)BATCH * ring->nr_nodes);
		for (int node = 0; node < ring->nr_nodes; node++)
			exist_batch(node, start, n, live + (size_t)node * BATCH,
				    c);
		for (int j = 0; j < n; j++) {
			for (int node = 0; node < ring->nr_nodes; node++)
				one[node] = live[(size_t)node * BATCH + j];
			judge(&objs[start + j], one, c);
		}
	}
	free(live);
	free(one);
}

/* ---- command line ---- */

static void usage(FILE *f)
{
	fprintf(f,
		"usage: sd-placement [-a ADDR] [-p PORT] [--vdi NAME]... "
		"[-n NODES]\n"
		"                    [--details N] [--timeout SEC] [-v]\n"
		"Checks that every object of every VDI (or of the named "
		"ones) is live on exactly\n"
		"the nodes placement says hold it, and that every node agrees "
		"on the epoch.\n"
		"  -a, --address ADDR  sheep to ask for the node list and "
		"VDIs (127.0.0.1)\n"
		"  -p, --port PORT     its port (7000)\n"
		"      --vdi NAME      only this VDI (repeatable)\n"
		"  -n, --nodes N       the cluster must have N members\n"
		"      --details N     print the first N problems (10)\n"
		"      --timeout SEC   per-request deadline (10)\n"
		"  -v, --verbose       list the VDIs checked\n"
		"Exit status: 0 placement exact, 1 problems found or not "
		"settled, 2 cannot check.\n");
}

static int parse_int(const char *s, int lo, int hi)
{
	uint32_t v;

	if (parse_u32(s, 10, &v) < 0 || v < (uint32_t)lo || v > (uint32_t)hi) {
		fprintf(stderr, "sd-placement: bad number '%s'\n", s);
		usage(stderr);
		exit(EXIT_CANNOT);
	}
	return v;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
	    {"address", required_argument, NULL, 'a'},
	    {"port", required_argument, NULL, 'p'},
	    {"vdi", required_argument, NULL, 'V'},
	    {"nodes", required_argument, NULL, 'n'},
	    {"details", required_argument, NULL, 'd'},
	    {"timeout", required_argument, NULL, 't'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {NULL, 0, NULL, 0},
	};
	const char **names = xcalloc(argc, sizeof(*names));
	struct counts c = {0};
	int nr_names = 0, ch;
	bool settled;

	while ((ch = getopt_long(argc, argv, "a:p:n:vh", longopts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'a':
			opt_host = optarg;
			break;
		case 'p':
			opt_port = parse_int(optarg, 1, 65535);
			break;
		case 'V':
			names[nr_names++] = optarg;
			break;
		case 'n':
			opt_nodes = parse_int(optarg, 0, SD_MAX_NODES);
			break;
		case 'd':
			opt_details = parse_int(optarg, 0, INT32_MAX);
			break;
		case 't':
			opt_timeout = parse_int(optarg, 1, 3600);
			break;
		case 'v':
			opt_verbose = true;
			break;
		case 'h':
			usage(stdout);
			return 0;
		default:
			usage(stderr);
			return EXIT_CANNOT;
		}
	}
	if (optind != argc) {
		usage(stderr);
		return EXIT_CANNOT;
	}

	main_fd = connect_node(opt_host, opt_port);
	load_ring();
	settled = check_settled();
	if (nr_names)
		for (int i = 0; i < nr_names; i++)
			add_vdi(find_vdi(names[i]));
	else
		add_all_vdis();
	unique_objects();
	check_objects(&c);
	if (c.epoch_moved) {
		printf("not settled: the epoch changed during the check\n");
		settled = false;
	}
	if (c.details > (size_t)opt_details)
		printf("... and %zu more problems\n", c.details - opt_details);
	printf("epoch %" PRIu32 ", %d nodes, %d VDIs%s\n", cluster_epoch,
	       ring->nr_nodes, nr_vdis_checked, settled ? "" : ", not settled");
	printf("objects %zu, misplaced %zu, missing %zu, extra %zu\n", nr_objs,
	       c.misplaced, c.missing, c.extra);

	for (int n = 0; n < ring->nr_nodes; n++)
		close(node_fds[n]);
	close(main_fd);
	ring_free(ring);
	free(node_fds);
	free(objs);
	free(vids);
	free(names);
	if (!settled || nr_unreadable || c.misplaced || c.missing || c.extra)
		return EXIT_PROBLEMS;
	return 0;
}
