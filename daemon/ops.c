/*
 * The opcode table: one row per opcode saying its class, whether it is
 * allowed while the cluster waits, its payload limits and its handlers.
 * queue_request() gates a validated request by cluster status and hands it
 * to its class; the small node-local handlers live here too.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sheep.h"
#include "sheepdog/le.h"

struct work_queue *gateway_wq, *io_wq, *local_wq, *cluster_wq, *bg_wq;

enum {
	STAT_GWAY_ACTIVE,
	STAT_PEER_ACTIVE,
	STAT_GWAY_TOTAL,
	STAT_PEER_TOTAL,
	STAT_GWAY_RX,
	STAT_GWAY_TX,
	STAT_PEER_RX,
	STAT_PEER_TX,
	STAT_GWAY_REMOVE,
	STAT_GWAY_READ,
	STAT_GWAY_WRITE,
	STAT_GWAY_FLUSH,
	STAT_PEER_REMOVE,
	STAT_PEER_READ,
	STAT_PEER_WRITE,
};

/* ---- node-local handlers ---- */

static int local_get_node_list(struct request *req)
{
	struct vnode_info *vi = get_vnode_info();
	struct sd_node *nodes;
	int nr;

	if (vi && vi->ring->nr_nodes) {
		nodes = vi->ring->nodes;
		nr = vi->ring->nr_nodes;
	} else {
		nodes = sys->members;
		nr = sys->nr_members;
	}
	req->rp.node.nr_nodes = nr;
	if ((uint64_t)nr * SD_NODE_SIZE > req->data_alloc) {
		put_vnode_info(vi);
		return SD_RES_BUFFER_SMALL;
	}
	for (int i = 0; i < nr; i++)
		sd_node_encode(&nodes[i],
			       (uint8_t *)req->data + i * SD_NODE_SIZE);
	req->rp.data_length = nr * SD_NODE_SIZE;
	put_vnode_info(vi);
	return SD_RES_SUCCESS;
}

static int local_stat_sheep(struct request *req)
{
	uint64_t size = 0, avail = 0;

	if (!sys->gateway_only && store_space(&size, &avail) < 0)
		return SD_RES_EIO;
	req->rp.node.store_size = size;
	req->rp.node.store_free = avail;
	return SD_RES_SUCCESS;
}

static int status_result(void)
{
	switch (sys->status) {
	case SD_STATUS_OK:
		return SD_RES_SUCCESS;
	case SD_STATUS_SHUTDOWN:
		return SD_RES_SHUTDOWN;
	case SD_STATUS_KILLED:
		return SD_RES_KILLED;
	default:
		return sys->ctime ? SD_RES_WAIT_FOR_JOIN : SD_RES_WAIT_FOR_FORMAT;
	}
}

/* Epoch history, newest first, each record padded to the client's stride. */
static int local_stat_cluster(struct request *req)
{
	uint32_t stride = req->rq.cluster.nodes_nr;
	size_t rec = SD_EPOCH_LOG_HDR + (size_t)stride * SD_NODE_SIZE;
	struct sd_node *nodes;
	uint32_t e;
	size_t off = 0;
	int ret = status_result();

	if (stride > SD_MAX_NODES)
		return SD_RES_INVALID_PARMS;
	nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	for (e = sys->epoch; e > 0 && off + rec <= req->data_alloc; e--) {
		struct epoch_log log = { 0 };
		uint64_t t = 0;
		int nr = epoch_log_read(e, nodes, &t);
		uint8_t *p = (uint8_t *)req->data + off;

		if (nr < 0)
			continue;
		if ((uint32_t)nr > stride && stride) {
			ret = SD_RES_BUFFER_SMALL;
			break;
		}
		if (off == 0) {
			log.ctime = sys->ctime;
			log.disable_recovery = sys->disable_recovery;
			log.nr_copies = sys->nr_copies;
			log.copy_policy = sys->copy_policy;
			log.flags = sys->flags;
			snprintf(log.drv_name, sizeof(log.drv_name), "%s",
				 sys->store);
		}
		log.time = t;
		log.epoch = e;
		log.nr_nodes = nr;
		memset(p, 0, rec);
		epoch_log_encode(&log, p);
		for (int i = 0; i < nr && (uint32_t)i < stride; i++)
			sd_node_encode(&nodes[i],
				       p + SD_EPOCH_LOG_HDR + i * SD_NODE_SIZE);
		off += rec;
	}
	/* An unformatted or fresh cluster still reports its flags. */
	if (off == 0 && req->data_alloc >= rec && sys->epoch == 0) {
		struct epoch_log log = { 0 };

		log.ctime = sys->ctime;
		log.nr_copies = sys->nr_copies;
		log.flags = sys->flags;
		snprintf(log.drv_name, sizeof(log.drv_name), "%s", sys->store);
		memset(req->data, 0, rec);
		epoch_log_encode(&log, req->data);
	}
	free(nodes);
	req->rp.data_length = off;
	return ret;
}

static int local_get_store_list(struct request *req)
{
	static const char stores[] = "plain tree ";
	uint32_t len = MIN(req->data_alloc, (uint32_t)sizeof(stores));

	memcpy(req->data, stores, len);
	req->rp.data_length = len;
	return SD_RES_SUCCESS;
}

static int local_kill_node(struct request *req)
{
	sys->status = SD_STATUS_KILLED;
	server_stop_listening();
	exit_when_idle("killed by request");
	return SD_RES_SUCCESS;
}

static int local_get_obj_list(struct request *req)
{
	uint64_t *oids;
	size_t nr;
	int ret = store_list_all(&oids, &nr);

	if (ret != SD_RES_SUCCESS)
		return ret;
	if (nr * 8 > req->data_alloc) {
		free(oids);
		return SD_RES_BUFFER_SMALL;
	}
	for (size_t i = 0; i < nr; i++)
		put_le64((uint8_t *)req->data + i * 8, oids[i]);
	req->rp.data_length = nr * 8;
	free(oids);
	return SD_RES_SUCCESS;
}

static int local_get_epoch(struct request *req)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	uint64_t t;
	int nr = epoch_log_read(req->rq.obj.tgt_epoch, nodes, &t);
	int ret = SD_RES_SUCCESS;

	if (nr < 0) {
		ret = SD_RES_NO_TAG;
	} else if ((size_t)nr * SD_NODE_SIZE + 8 > req->data_alloc) {
		ret = SD_RES_BUFFER_SMALL;
	} else {
		for (int i = 0; i < nr; i++)
			sd_node_encode(&nodes[i], (uint8_t *)req->data +
							  i * SD_NODE_SIZE);
		put_le64((uint8_t *)req->data + nr * SD_NODE_SIZE, t);
		req->rp.data_length = nr * SD_NODE_SIZE + 8;
	}
	free(nodes);
	return ret;
}

static int local_exist(struct request *req)
{
	return store_exist(req->rq.obj.oid, req->rq.obj.ec_index)
		       ? SD_RES_SUCCESS
		       : SD_RES_NO_OBJ;
}

static int local_cluster_info(struct request *req)
{
	struct cluster_info ci;
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	size_t len;

	sys_cluster_info(&ci, nodes);
	len = cluster_info_size(ci.nr_nodes);
	if (len > req->data_alloc) {
		free(nodes);
		return SD_RES_BUFFER_SMALL;
	}
	cluster_info_encode(&ci, req->data);
	req->rp.data_length = len;
	free(nodes);
	return SD_RES_SUCCESS;
}

static int local_get_loglevel(struct request *req)
{
	if (req->data_alloc < 4)
		return SD_RES_BUFFER_SMALL;
	put_le32(req->data, log_get_level());
	req->rp.data_length = 4;
	return SD_RES_SUCCESS;
}

static int local_set_loglevel(struct request *req)
{
	int32_t level;

	if (req->rq.data_length < 4)
		return SD_RES_INVALID_PARMS;
	level = (int32_t)get_le32(req->data);
	if (level < SDOG_EMERG || level > SDOG_DEBUG)
		return SD_RES_INVALID_PARMS;
	log_set_level(level);
	sd_notice("log level set to %s", log_level_name(level));
	return SD_RES_SUCCESS;
}

static int local_stat(struct request *req)
{
	if (req->data_alloc < SD_STAT_SIZE)
		return SD_RES_BUFFER_SMALL;
	for (int i = 0; i < 15; i++)
		put_le64((uint8_t *)req->data + i * 8,
			 atomic_load(&sys->stat[i]));
	req->rp.data_length = SD_STAT_SIZE;
	return SD_RES_SUCCESS;
}

/* recovery_state (spec 2.4): in_recovery, state, finished, total. */
static int local_stat_recovery(struct request *req)
{
	uint8_t *p = req->data;
	uint64_t done, total;
	uint32_t state;
	bool running;

	recovery_get_state(&running, &state, &done, &total);
	memset(p, 0, SD_RECOVERY_STATE_SIZE);
	p[0] = running;
	put_le32(p + 4, state);
	put_le64(p + 8, done);
	put_le64(p + 16, total);
	req->rp.data_length = SD_RECOVERY_STATE_SIZE;
	return SD_RES_SUCCESS;
}

/* recovery_throttling (spec 2.4): max @0, interval ms @8, on/off @16. */
static int local_get_recovery(struct request *req)
{
	uint8_t *p = req->data;
	uint64_t interval;
	uint32_t max;

	recovery_throttle_get(&max, &interval);
	memset(p, 0, SD_RECOVERY_THROTTLING_SIZE);
	put_le32(p, max);
	put_le64(p + 8, interval);
	p[16] = max != 0;
	req->rp.data_length = SD_RECOVERY_THROTTLING_SIZE;
	return SD_RES_SUCCESS;
}

/* A cleared on/off byte turns throttling off whatever the numbers say;
 * otherwise both numbers must be set (recovery_throttle_set checks). */
static int local_set_recovery(struct request *req)
{
	const uint8_t *p = req->data;
	uint32_t max = get_le32(p);
	uint64_t interval = get_le64(p + 8);

	if (!p[16])
		return recovery_throttle_set(0, 0);
	if (!max || !interval) {
		sd_err("SET_RECOVERY: max %" PRIu32 ", interval %" PRIu64
		       " ms: both must be positive to throttle",
		       max, interval);
		return SD_RES_INVALID_PARMS;
	}
	return recovery_throttle_set(max, interval);
}

static int local_get_vdi_copies(struct request *req)
{
	uint8_t *buf;
	size_t len = vdi_state_snapshot(&buf);

	if (len > req->data_alloc) {
		free(buf);
		return SD_RES_BUFFER_SMALL;
	}
	memcpy(req->data, buf, len);
	free(buf);
	req->rp.data_length = len;
	return SD_RES_SUCCESS;
}

static int local_read_vdis(struct request *req)
{
	vdi_bitmap_copy(req->data, false);
	req->rp.data_length = SD_VDI_BITMAP_SIZE;
	return SD_RES_SUCCESS;
}

static int local_read_del_vdis(struct request *req)
{
	vdi_bitmap_copy(req->data, true);
	req->rp.data_length = SD_VDI_BITMAP_SIZE;
	return SD_RES_SUCCESS;
}

static int local_get_cluster_default(struct request *req)
{
	req->rp.cluster_default.nr_copies = sys->nr_copies;
	req->rp.cluster_default.copy_policy = sys->copy_policy;
	req->rp.cluster_default.block_size_shift = sys->block_size_shift;
	return SD_RES_SUCCESS;
}

/* Writes are durable when acknowledged, unless the node runs with -n. */
static int local_flush_vdi(struct request *req)
{
	return store_sync() == 0 ? SD_RES_SUCCESS : SD_RES_EIO;
}

static int local_get_vnodes(struct request *req)
{
	if (req->data_alloc < 4)
		return SD_RES_BUFFER_SMALL;
	put_le32(req->data, sys->this_node.nr_vnodes);
	req->rp.data_length = 4;
	return SD_RES_SUCCESS;
}

static int local_internal_only(struct request *req)
{
	return SD_RES_INVALID_PARMS;
}

static int local_noop(struct request *req)
{
	return SD_RES_SUCCESS;
}

static int local_md_info(struct request *req)
{
	uint64_t size = 0, avail = 0;
	uint8_t *p = req->data;

	memset(p, 0, SD_MD_INFO_SIZE);
	if (!sys->gateway_only) {
		if (store_space(&size, &avail) < 0)
			return SD_RES_EIO;
		put_le32(p, 0);
		put_le64(p + 8, avail);
		put_le64(p + 16, size - avail);
		{
			char dir[4200];

			snprintf(dir, sizeof(dir), "%s/obj", sys->base_dir);
			memcpy(p + 24, dir, MIN(strlen(dir), (size_t)4095));
		}
		put_le32(p + SD_MD_MAX_DISKS * SD_MD_INFO_ENTRY_SIZE, 1);
	}
	req->rp.data_length = SD_MD_INFO_SIZE;
	return SD_RES_SUCCESS;
}

/* ---- cluster main phases that are not about VDIs (group.c has the rest) */

int cluster_make_fs_main(const struct sd_req *req, struct sd_rsp *rsp,
			 void *data, const struct sd_node *sender);
int cluster_shutdown_main(const struct sd_req *req, struct sd_rsp *rsp,
			  void *data, const struct sd_node *sender);
int cluster_recover_main(const struct sd_req *req, struct sd_rsp *rsp,
			 void *data, const struct sd_node *sender);
int cluster_alter_copy_main(const struct sd_req *req, struct sd_rsp *rsp,
			    void *data, const struct sd_node *sender);

#define CLUSTER_MSG_PAYLOAD (SD_MAX_CLUSTER_MSG - 2 * SD_HEADER_SIZE)

static const struct sd_op_template ops[256] = {
	/* gateway */
	[SD_OP_CREATE_AND_WRITE_OBJ] = { "CREATE_AND_WRITE_OBJ", OP_GATEWAY,
		.need_write = true,
		.process_work = gateway_create_and_write_obj },
	[SD_OP_READ_OBJ] = { "READ_OBJ", OP_GATEWAY,
		.process_work = gateway_read_obj },
	[SD_OP_WRITE_OBJ] = { "WRITE_OBJ", OP_GATEWAY, .need_write = true,
		.process_work = gateway_write_obj },
	[SD_OP_REMOVE_OBJ] = { "REMOVE_OBJ", OP_GATEWAY,
		.process_work = gateway_remove_obj },
	/* A local op (spec 2.2) queued with the gateway's: it waits on a
	 * peer's READ_PEER and so must not hold a worker that peers need. */
	[SD_OP_REPAIR_REPLICA] = { "REPAIR_REPLICA", OP_GATEWAY,
		.max_len = 1, /* no payload either way */
		.process_work = local_repair_replica },

	/* peer */
	[SD_OP_CREATE_AND_WRITE_PEER] = { "CREATE_AND_WRITE_PEER", OP_PEER,
		.need_write = true,
		.process_work = peer_create_and_write_obj },
	[SD_OP_READ_PEER] = { "READ_PEER", OP_PEER,
		.process_work = peer_read_obj },
	[SD_OP_WRITE_PEER] = { "WRITE_PEER", OP_PEER, .need_write = true,
		.process_work = peer_write_obj },
	[SD_OP_REMOVE_PEER] = { "REMOVE_PEER", OP_PEER,
		.process_work = peer_remove_obj },

	/* cluster */
	[SD_OP_NEW_VDI] = { "NEW_VDI", OP_CLUSTER, .need_write = true,
		.exact_len = SD_MAX_VDI_LEN,
		.process_work = vdi_new_work, .process_main = vdi_new_main,
		.process_after = vdi_new_after },
	[SD_OP_VDI_STATE_PEER] = { "VDI_STATE_PEER", OP_MAIN, .force = true,
		.process_work = vdi_state_peer },
	[SD_OP_DEL_VDI] = { "DEL_VDI", OP_CLUSTER, .need_write = true,
		.max_len = SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN,
		.process_work = vdi_del_work, .process_main = vdi_del_main },
	[SD_OP_GET_VDI_INFO] = { "GET_VDI_INFO", OP_CLUSTER,
		.need_write = true,
		.max_len = SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN,
		.process_work = vdi_lookup_work },
	[SD_OP_LOCK_VDI] = { "LOCK_VDI", OP_CLUSTER, .need_write = true,
		.max_len = SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN,
		.process_work = vdi_lock_work, .process_main = vdi_lock_main },
	[SD_OP_RELEASE_VDI] = { "RELEASE_VDI", OP_CLUSTER,
		.max_len = CLUSTER_MSG_PAYLOAD,
		.process_main = vdi_release_main },
	[SD_OP_MAKE_FS] = { "MAKE_FS", OP_CLUSTER, .force = true,
		.need_write = true, .max_len = SD_STORE_NAME_LEN,
		.process_main = cluster_make_fs_main },
	[SD_OP_SHUTDOWN] = { "SHUTDOWN", OP_CLUSTER, .force = true,
		.process_main = cluster_shutdown_main },
	[SD_OP_ENABLE_RECOVER] = { "ENABLE_RECOVER", OP_CLUSTER,
		.process_main = cluster_recover_main },
	[SD_OP_DISABLE_RECOVER] = { "DISABLE_RECOVER", OP_CLUSTER,
		.process_main = cluster_recover_main },
	/* Broadcast by sheep for themselves only; a client's is refused by
	 * its work phase, so its main phase never runs. */
	[SD_OP_COMPLETE_RECOVERY] = { "COMPLETE_RECOVERY", OP_CLUSTER,
		.force = true, .process_work = local_internal_only,
		.process_main = cluster_complete_recovery_main },
	[SD_OP_ALTER_CLUSTER_COPY] = { "ALTER_CLUSTER_COPY", OP_CLUSTER,
		.process_main = cluster_alter_copy_main },
	[SD_OP_GET_VDI_ATTR] = { "GET_VDI_ATTR", OP_CLUSTER,
		.need_write = true, .max_len = SD_ATTR_OBJ_SIZE,
		.process_work = vdi_attr_work },
	[SD_OP_REWEIGHT] = { "REWEIGHT", OP_CLUSTER,
		.process_main = cluster_reweight_main },
	[SD_OP_FORCE_RECOVER] = { "FORCE_RECOVER", OP_CLUSTER, .force = true,
		.process_work = cluster_force_recover_work,
		.process_main = cluster_force_recover_main },
	[SD_OP_ALTER_VDI_COPY] = { "ALTER_VDI_COPY", OP_CLUSTER,
		.process_work = vdi_alter_copy_work,
		.process_main = vdi_alter_copy_main,
		.process_after = vdi_alter_copy_after },

	/* answered on the main thread */
	[SD_OP_GET_NODE_LIST] = { "GET_NODE_LIST", OP_MAIN, .force = true,
		.process_work = local_get_node_list },
	[SD_OP_STAT_CLUSTER] = { "STAT_CLUSTER", OP_MAIN, .force = true,
		.process_work = local_stat_cluster },
	[SD_OP_GET_STORE_LIST] = { "GET_STORE_LIST", OP_MAIN, .force = true,
		.process_work = local_get_store_list },
	[SD_OP_KILL_NODE] = { "KILL_NODE", OP_MAIN, .force = true,
		.process_work = local_kill_node },
	[SD_OP_CLUSTER_INFO] = { "CLUSTER_INFO", OP_MAIN, .force = true,
		.process_work = local_cluster_info },
	[SD_OP_GET_LOGLEVEL] = { "GET_LOGLEVEL", OP_MAIN, .force = true,
		.process_work = local_get_loglevel },
	[SD_OP_SET_LOGLEVEL] = { "SET_LOGLEVEL", OP_MAIN, .force = true,
		.need_write = true, .max_len = 8,
		.process_work = local_set_loglevel },
	[SD_OP_STAT] = { "STAT", OP_MAIN, .force = true,
		.process_work = local_stat },
	[SD_OP_STAT_RECOVERY] = { "STAT_RECOVERY", OP_MAIN,
		.exact_len = SD_RECOVERY_STATE_SIZE,
		.process_work = local_stat_recovery },
	[SD_OP_GET_RECOVERY] = { "GET_RECOVERY", OP_MAIN, .force = true,
		.exact_len = SD_RECOVERY_THROTTLING_SIZE,
		.process_work = local_get_recovery },
	[SD_OP_SET_RECOVERY] = { "SET_RECOVERY", OP_MAIN, .force = true,
		.need_write = true, .exact_len = SD_RECOVERY_THROTTLING_SIZE,
		.process_work = local_set_recovery },
	[SD_OP_GET_CLUSTER_DEFAULT] = { "GET_CLUSTER_DEFAULT", OP_MAIN,
		.force = true, .process_work = local_get_cluster_default },
	[SD_OP_GET_VNODES] = { "GET_VNODES", OP_MAIN,
		.process_work = local_get_vnodes },
	[SD_OP_FLUSH_DEL_CACHE] = { "FLUSH_DEL_CACHE", OP_MAIN,
		.process_work = local_noop },

	/* answered by this node on a worker */
	[SD_OP_STAT_SHEEP] = { "STAT_SHEEP", OP_LOCAL,
		.process_work = local_stat_sheep },
	[SD_OP_GET_OBJ_LIST] = { "GET_OBJ_LIST", OP_LOCAL,
		.process_work = local_get_obj_list },
	[SD_OP_GET_EPOCH] = { "GET_EPOCH", OP_LOCAL,
		.process_work = local_get_epoch },
	[SD_OP_EXIST] = { "EXIST", OP_LOCAL, .force = true,
		.process_work = local_exist },
	[SD_OP_GET_VDI_COPIES] = { "GET_VDI_COPIES", OP_LOCAL, .force = true,
		.process_work = local_get_vdi_copies },
	[SD_OP_READ_VDIS] = { "READ_VDIS", OP_LOCAL, .force = true,
		.exact_len = SD_VDI_BITMAP_SIZE,
		.process_work = local_read_vdis },
	[SD_OP_READ_DEL_VDIS] = { "READ_DEL_VDIS", OP_LOCAL, .force = true,
		.exact_len = SD_VDI_BITMAP_SIZE,
		.process_work = local_read_del_vdis },
	[SD_OP_FLUSH_VDI] = { "FLUSH_VDI", OP_LOCAL,
		.process_work = local_flush_vdi },
	[SD_OP_GET_HASH] = { "GET_HASH", OP_LOCAL,
		.max_len = 1, /* no payload either way */
		.process_work = local_get_hash },
	[SD_OP_MD_INFO] = { "MD_INFO", OP_LOCAL,
		.exact_len = SD_MD_INFO_SIZE, .process_work = local_md_info },
};

const struct sd_op_template *get_sd_op(uint8_t opcode)
{
	return ops[opcode].name ? &ops[opcode] : NULL;
}

void count_request(const struct request *req)
{
	const struct sd_op_template *op = req->op;
	bool gw = op->type == OP_GATEWAY;
	bool peer = op->type == OP_PEER;

	if (!gw && !peer)
		return;
	atomic_fetch_add(&sys->stat[gw ? STAT_GWAY_TOTAL : STAT_PEER_TOTAL], 1);
	if (req->rq.flags & SD_FLAG_CMD_WRITE)
		atomic_fetch_add(&sys->stat[gw ? STAT_GWAY_RX : STAT_PEER_RX],
				 req->rq.data_length);
	switch (req->rq.opcode) {
	case SD_OP_READ_OBJ:
	case SD_OP_READ_PEER:
		atomic_fetch_add(&sys->stat[gw ? STAT_GWAY_READ : STAT_PEER_READ], 1);
		break;
	case SD_OP_WRITE_OBJ:
	case SD_OP_CREATE_AND_WRITE_OBJ:
	case SD_OP_WRITE_PEER:
	case SD_OP_CREATE_AND_WRITE_PEER:
		atomic_fetch_add(&sys->stat[gw ? STAT_GWAY_WRITE : STAT_PEER_WRITE], 1);
		break;
	case SD_OP_REMOVE_OBJ:
	case SD_OP_REMOVE_PEER:
		atomic_fetch_add(&sys->stat[gw ? STAT_GWAY_REMOVE : STAT_PEER_REMOVE], 1);
		break;
	}
}

static void worker_fn(struct work *w)
{
	struct request *req = container_of(w, struct request, work);

	req->rp.result = req->op->process_work(req);
}

static void worker_done(struct work *w)
{
	struct request *req = container_of(w, struct request, work);

	if (req->op->type == OP_GATEWAY)
		atomic_fetch_add(&sys->stat[STAT_GWAY_TX], req->rp.data_length);
	else if (req->op->type == OP_PEER)
		atomic_fetch_add(&sys->stat[STAT_PEER_TX], req->rp.data_length);
	put_request(req);
}

/*
 * A peer request from a newer epoch waits here, on the main thread, until
 * this node has caught up (spec 7.4), so that it never holds a worker. The
 * wait is bounded in time and in number; past either the sender is told
 * NEW_NODE_VER and retries.
 */
#define MAX_PARKED 256
#define PARK_MS 5000

static LIST_HEAD(epoch_waiters);
static int nr_parked;
static int park_timer = -1;


static void expire_parked(void *arg)
{
	struct request *req, *tmp;
	uint64_t now = mono_ms();

	list_for_each_entry_safe(req, tmp, &epoch_waiters, r_list) {
		if (req->park_deadline > now)
			continue;
		list_del(&req->r_list);
		nr_parked--;
		req->rp.result = SD_RES_NEW_NODE_VER;
		put_request(req);
	}
}

static bool park_request(struct request *req)
{
	if (nr_parked >= MAX_PARKED)
		return false;
	if (park_timer < 0)
		park_timer = add_timer(200, expire_parked, NULL);
	req->park_deadline = mono_ms() + PARK_MS;
	list_add_tail(&req->r_list, &epoch_waiters);
	nr_parked++;
	return true;
}

void wake_epoch_waiters(void)
{
	struct request *req, *tmp;
	uint32_t epoch = sys_epoch();

	list_for_each_entry_safe(req, tmp, &epoch_waiters, r_list) {
		if ((int32_t)(req->rq.epoch - epoch) > 0)
			continue;
		list_del(&req->r_list);
		nr_parked--;
		queue_request(req);
	}
}

void queue_request(struct request *req)
{
	const struct sd_op_template *op = req->op;
	uint8_t status = sys->status;

	if (status == SD_STATUS_KILLED) {
		req->rp.result = SD_RES_KILLED;
		put_request(req);
		return;
	}
	if (status == SD_STATUS_SHUTDOWN) {
		req->rp.result = SD_RES_SHUTDOWN;
		put_request(req);
		return;
	}
	if (status == SD_STATUS_WAIT && !op->force) {
		req->rp.result = sys->ctime ? SD_RES_WAIT_FOR_JOIN
					    : SD_RES_WAIT_FOR_FORMAT;
		put_request(req);
		return;
	}
	count_request(req);
	req->work.fn = worker_fn;
	req->work.done = worker_done;
	switch (op->type) {
	case OP_GATEWAY:
		queue_work(gateway_wq, &req->work);
		break;
	case OP_PEER:
		/* Recovery reads wait too: see io_epoch_drain. */
		if ((int32_t)(req->rq.epoch - sys_epoch()) > 0) {
			if (!park_request(req)) {
				req->rp.result = SD_RES_NEW_NODE_VER;
				put_request(req);
			}
			break;
		}
		queue_work(io_wq, &req->work);
		break;
	case OP_LOCAL:
		/* Never behind object I/O: peer reads may be waiting for
		 * this node's sweep, which waits for the VDI states other
		 * nodes fetch with these (GET_VDI_COPIES). */
		queue_work(local_wq, &req->work);
		break;
	case OP_MAIN:
		req->rp.result = op->process_work(req);
		put_request(req);
		break;
	case OP_CLUSTER:
		if (req->rq.data_length > CLUSTER_MSG_PAYLOAD &&
		    (req->rq.flags & SD_FLAG_CMD_WRITE)) {
			req->rp.result = SD_RES_INVALID_PARMS;
			put_request(req);
			break;
		}
		queue_cluster_request(req);
		break;
	}
}
