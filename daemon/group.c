/*
 * Group membership, epochs and cluster operations. The cluster driver
 * delivers joins, leaves and messages in one total order; every sheep
 * applies them here, on the main thread, in that order, so the cluster
 * state (status, epoch, members, format) is a replicated state machine.
 *
 * Cluster requests: an op with a work phase takes the cluster-wide block,
 * runs its work on this node, and broadcasts the outcome with unblock; an
 * op with only a main phase is broadcast directly. Every node then runs the
 * main phase; the requester answers its client. Replies are matched to
 * messages through FIFOs, since one sender's messages arrive in order.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "sheep.h"
#include "sheepdog/client.h"

/* A refused join's reply: this prefix, then the reason, NUL-terminated. */
#define JOIN_REFUSED_MAGIC "SDREFUSE:"
/* rsp.flags of a message the daemon broadcasts for itself, not a client. */
#define RSP_FLAG_INTERNAL 0x8000

static void vdi_sync_from(const struct sd_node *n);

static struct system_info sys_info = {
	.lock = PTHREAD_MUTEX_INITIALIZER,
};
struct system_info *sys = &sys_info;

static struct cluster_driver *cdrv;
static LIST_HEAD(pending_block);  /* waiting for the block */
static LIST_HEAD(pending_notify); /* broadcast, waiting for delivery */

uint8_t sys_status(void)
{
	return __atomic_load_n(&sys->status, __ATOMIC_ACQUIRE);
}

uint32_t sys_epoch(void)
{
	return __atomic_load_n(&sys->epoch, __ATOMIC_ACQUIRE);
}

static void set_status(uint8_t status)
{
	__atomic_store_n(&sys->status, status, __ATOMIC_RELEASE);
}

void sys_cluster_defaults(uint8_t *copies, uint8_t *policy, uint8_t *shift,
			  uint16_t *flags)
{
	pthread_mutex_lock(&sys->lock);
	if (copies)
		*copies = sys->nr_copies;
	if (policy)
		*policy = sys->copy_policy;
	if (shift)
		*shift = sys->block_size_shift;
	if (flags)
		*flags = sys->flags;
	pthread_mutex_unlock(&sys->lock);
}

void sys_cluster_info(struct cluster_info *ci, struct sd_node *nodes)
{
	memset(ci, 0, sizeof(*ci));
	ci->proto_ver = SD_SHEEP_PROTO_VER;
	ci->disable_recovery = sys->disable_recovery;
	ci->nr_nodes = sys->nr_epoch_nodes;
	ci->epoch = sys->epoch;
	ci->ctime = sys->ctime;
	ci->flags = sys->flags;
	ci->nr_copies = sys->nr_copies;
	ci->copy_policy = sys->copy_policy;
	ci->status = sys->status;
	ci->block_size_shift = sys->block_size_shift;
	snprintf(ci->default_store, sizeof(ci->default_store), "%s",
		 sys->store);
	if (sys->nr_epoch_nodes)
		memcpy(nodes, sys->epoch_nodes,
		       sys->nr_epoch_nodes * sizeof(struct sd_node));
	ci->nodes = nodes;
}

static void save_config(void)
{
	struct sheepdog_config c = { 0 };

	c.ctime = sys->ctime;
	c.flags = sys->flags;
	c.copies = sys->nr_copies;
	snprintf(c.default_store, sizeof(c.default_store), "%s", sys->store);
	c.shutdown = sys->shutdown_clean;
	c.copy_policy = sys->copy_policy;
	c.block_size_shift = sys->block_size_shift;
	c.version = SD_FORMAT_VERSION;
	c.space = sys->this_node.space;
	if (config_save(&c) < 0)
		sd_err("cannot save %s/config: %m", sys->base_dir);
}

static void set_epoch_nodes(const struct sd_node *nodes, int nr)
{
	struct sd_node *copy = xcalloc(nr ? nr : 1, sizeof(*copy));

	memcpy(copy, nodes, nr * sizeof(*copy));
	pthread_mutex_lock(&sys->lock);
	free(sys->epoch_nodes);
	sys->epoch_nodes = copy;
	sys->nr_epoch_nodes = nr;
	pthread_mutex_unlock(&sys->lock);
}

static void set_members(const struct sd_node *nodes, size_t nr)
{
	struct sd_node *copy = xcalloc(nr ? nr : 1, sizeof(*copy));

	memcpy(copy, nodes, nr * sizeof(*copy));
	pthread_mutex_lock(&sys->lock);
	free(sys->members);
	sys->members = copy;
	sys->nr_members = nr;
	pthread_mutex_unlock(&sys->lock);
}

static int node_cmp(const void *a, const void *b)
{
	return sd_node_cmp(a, b);
}

static bool node_in(const struct sd_node *n, const struct sd_node *nodes,
		    int nr)
{
	for (int i = 0; i < nr; i++)
		if (node_id_eq(&n->nid, &nodes[i].nid))
			return true;
	return false;
}

/* The storage members of a new epoch: sorted, vnodes computed. */
static int epoch_members(struct sd_node *out)
{
	int nr = sys->nr_members;

	memcpy(out, sys->members, nr * sizeof(*out));
	qsort(out, nr, sizeof(*out), node_cmp);
	if (sys->flags & SD_CLUSTER_FLAG_AUTO_VNODES)
		ring_auto_vnodes(out, nr);
	return nr;
}

/* Start a new epoch with the current members (every node, same order). */
static void bump_epoch(void)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	int nr = epoch_members(nodes);
	uint32_t old = sys->epoch, e = old + 1;

	epoch_log_write(e, nodes, nr, (uint64_t)time(NULL));
	set_epoch_nodes(nodes, nr);
	__atomic_store_n(&sys->epoch, e, __ATOMIC_RELEASE);
	set_vnode_info(e, nodes, nr);
	sd_notice("epoch %u: %d nodes", e, nr);
	free(nodes);
	if (old)
		recovery_start(e);
	else
		recovery_epoch_adopted(e); /* just formatted: nothing to move */
}

/* Do the storage members differ from those of the current epoch? */
static bool members_changed(void)
{
	int nr_storage = 0;

	for (int i = 0; i < sys->nr_members; i++) {
		if (!sys->members[i].nr_vnodes)
			continue;
		nr_storage++;
		if (!node_in(&sys->members[i], sys->epoch_nodes,
			     sys->nr_epoch_nodes))
			return true;
	}
	return nr_storage != sys->nr_epoch_nodes;
}

/* Status of a cluster described by ci once the given members are present. */
static uint8_t compute_status(const struct cluster_info *ci,
			      const struct sd_node *members, int nr,
			      const struct sd_node *joining)
{
	if (!ci->ctime)
		return SD_STATUS_WAIT;
	if (ci->status == SD_STATUS_OK)
		return SD_STATUS_OK;
	for (int i = 0; i < ci->nr_nodes; i++) {
		const struct sd_node *n = &ci->nodes[i];

		if (!node_in(n, members, nr) &&
		    !(joining && node_id_eq(&n->nid, &joining->nid)))
			return SD_STATUS_WAIT;
	}
	return SD_STATUS_OK;
}

static char *node_str(const struct sd_node *n)
{
	static __thread char buf[64];

	return node_addr_to_str(&n->nid, buf, sizeof(buf));
}

enum cluster_join_result sd_join_handler(const struct sd_node *joining,
					 const struct sd_node *members,
					 size_t nr_members, const void *opaque,
					 size_t opaque_len, void *reply,
					 size_t *reply_len)
{
	struct cluster_info jci, ci;
	struct sd_node *jnodes = xcalloc(SD_MAX_NODES, sizeof(*jnodes));
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	enum cluster_join_result res = CJ_RESULT_SUCCESS;
	char why[256] = "";

	jci.nodes = jnodes;
	if (cluster_info_decode(opaque, opaque_len, &jci) < 0 ||
	    jci.proto_ver != SD_SHEEP_PROTO_VER) {
		snprintf(why, sizeof(why), "bad join message or protocol "
			 "version (ours is 0x%02x)", SD_SHEEP_PROTO_VER);
		res = CJ_RESULT_FAIL;
		goto out;
	}
	if (nr_members == 0) {
		/* The first node: its own view is the cluster. */
		ci = jci;
		memcpy(nodes, jnodes, jci.nr_nodes * sizeof(*nodes));
		ci.nodes = nodes;
		ci.status = SD_STATUS_WAIT;
	} else {
		sys_cluster_info(&ci, nodes);
		if (ci.ctime && jci.ctime && ci.ctime != jci.ctime) {
			snprintf(why, sizeof(why), "it belongs to another "
				 "cluster (formatted %" PRIx64 ", ours %" PRIx64
				 ")", jci.ctime, ci.ctime);
			res = CJ_RESULT_FAIL;
		} else if (ci.ctime && jci.ctime && jci.default_store[0] &&
			   strcmp(jci.default_store, ci.default_store)) {
			snprintf(why, sizeof(why), "its store has the %s layout, "
				 "the cluster's has %s", jci.default_store,
				 ci.default_store);
			res = CJ_RESULT_FAIL;
		} else if (ci.ctime && jci.ctime &&
			   ci.status == SD_STATUS_OK &&
			   (int32_t)(jci.epoch - ci.epoch) > 0) {
			/* It saw epochs this cluster never had: its data and
			 * ours diverged, and an operator must choose. */
			snprintf(why, sizeof(why), "its epoch %u is newer than "
				 "the running cluster's %u", jci.epoch, ci.epoch);
			res = CJ_RESULT_FAIL;
		} else if (ci.status == SD_STATUS_WAIT &&
			   (int32_t)(jci.epoch - ci.epoch) > 0) {
			/* The joiner has seen a later epoch: its view wins. */
			ci = jci;
			memcpy(nodes, jnodes, jci.nr_nodes * sizeof(*nodes));
			ci.nodes = nodes;
			ci.status = SD_STATUS_WAIT;
		}
	}
	if (res != CJ_RESULT_SUCCESS)
		goto out;
	ci.status = compute_status(&ci, members, nr_members, joining);
	if (*reply_len < cluster_info_size(ci.nr_nodes)) {
		res = CJ_RESULT_FAIL;
		goto out;
	}
	cluster_info_encode(&ci, reply);
	*reply_len = cluster_info_size(ci.nr_nodes);
out:
	if (res != CJ_RESULT_SUCCESS) {
		/* The refused node prints why (sd_join_rejected). */
		size_t n = strlen(JOIN_REFUSED_MAGIC) + strlen(why) + 1;

		sd_err("join of %s refused: %s", node_str(joining), why);
		if (n <= *reply_len) {
			snprintf(reply, *reply_len, "%s%s", JOIN_REFUSED_MAGIC,
				 why);
			*reply_len = n;
		} else {
			*reply_len = 0;
		}
	}
	free(jnodes);
	free(nodes);
	return res;
}

void sd_join_rejected(const void *opaque, size_t opaque_len)
{
	size_t m = strlen(JOIN_REFUSED_MAGIC);
	const char *p = opaque;

	if (opaque_len > m && !memcmp(p, JOIN_REFUSED_MAGIC, m) &&
	    memchr(p + m, '\0', opaque_len - m))
		sd_emerg("the cluster refused this node: %s; exiting", p + m);
	else
		sd_emerg("the cluster refused this node; exiting");
	exit(1);
}

void sd_accept_handler(const struct sd_node *joined,
		       const struct sd_node *members, size_t nr_members,
		       const void *opaque, size_t opaque_len)
{
	struct cluster_info ci;
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	bool me = node_id_eq(&joined->nid, &sys->this_node.nid);
	uint8_t old_status = sys->status;
	bool was_member;

	ci.nodes = nodes;
	if (cluster_info_decode(opaque, opaque_len, &ci) < 0) {
		sd_emerg("undecodable accept message for %s", node_str(joined));
		abort();
	}
	set_members(members, nr_members);
	sd_info("%s joined, %zu members", node_str(joined), nr_members);

	/* Joining (or waiting for) a cluster whose latest epoch does not
	 * include this node: whatever it stores may have missed writes. It
	 * stays only as a source for recovery (spec 7.2). */
	if ((me || sys->status != SD_STATUS_OK) && sys->ctime &&
	    ci.ctime == sys->ctime && ci.epoch != sys->epoch &&
	    !node_in(&sys->this_node, ci.nodes, ci.nr_nodes) &&
	    !sys->gateway_only) {
		sd_notice("not a member of epoch %u: moving local objects to "
			  ".stale (epoch %u)", ci.epoch, sys->epoch);
		store_stale_all(sys->epoch);
	}
	/* Everyone adopts the state the accepting member decided on. */
	pthread_mutex_lock(&sys->lock);
	sys->ctime = ci.ctime;
	sys->flags = ci.flags;
	sys->nr_copies = ci.nr_copies;
	sys->copy_policy = ci.copy_policy;
	sys->block_size_shift = ci.block_size_shift;
	sys->disable_recovery = ci.disable_recovery;
	snprintf(sys->store, sizeof(sys->store), "%s", ci.default_store);
	pthread_mutex_unlock(&sys->lock);
	if (ci.epoch != sys->epoch || me) {
		uint64_t t = 0;
		struct sd_node *tmp = xcalloc(SD_MAX_NODES, sizeof(*tmp));

		if (ci.epoch && epoch_log_read(ci.epoch, tmp, &t) < 0)
			epoch_log_write(ci.epoch, ci.nodes, ci.nr_nodes,
					(uint64_t)time(NULL));
		free(tmp);
		__atomic_store_n(&sys->epoch, ci.epoch, __ATOMIC_RELEASE);
		recovery_epoch_adopted(ci.epoch);
	}
	set_epoch_nodes(ci.nodes, ci.nr_nodes);
	if (me && ci.ctime) {
		if (strcmp(store_layout_name(), sys->store) && sys->store[0])
			store_format(sys->store);
		save_config();
	}
	set_status(ci.status);
	was_member = node_in(joined, ci.nodes, ci.nr_nodes);

	if (ci.status == SD_STATUS_OK) {
		if (!was_member || members_changed()) {
			bump_epoch();
		} else if (old_status != SD_STATUS_OK || me) {
			set_vnode_info(sys->epoch, sys->epoch_nodes,
				       sys->nr_epoch_nodes);
			if (sys->shutdown_clean) {
				sys->shutdown_clean = false;
				save_config();
			}
			/* Same members as before the restart. A crash, or a
			 * shutdown while recovery ran, may have left objects
			 * missing: recover in place (cheap when none are). */
			if (old_status != SD_STATUS_OK)
				recovery_start(sys->epoch);
		}
		/* A node that was waiting may have missed VDIs the others
		 * know (it holds none of their inodes): learn from all. */
		if (me || old_status != SD_STATUS_OK) {
			for (size_t i = 0; i < nr_members; i++)
				if (!node_id_eq(&members[i].nid,
						&sys->this_node.nid))
					vdi_sync_from(&members[i]);
		} else {
			vdi_sync_from(joined);
		}
	}
	free(nodes);
}

void sd_leave_handler(const struct sd_node *left, const struct sd_node *members,
		      size_t nr_members)
{
	set_members(members, nr_members);
	sd_info("%s left, %zu members", node_str(left), nr_members);
	if (sys->status == SD_STATUS_OK && sys->ctime)
		bump_epoch();
}

void sd_update_node_handler(const struct sd_node *node)
{
	for (int i = 0; i < sys->nr_members; i++)
		if (node_id_eq(&sys->members[i].nid, &node->nid))
			sys->members[i] = *node;
	if (sys->status == SD_STATUS_OK && sys->ctime)
		bump_epoch();
}

/* ---- cluster messages ---- */

static void *encode_msg(const struct sd_req *rq, const struct sd_rsp *rp,
			const void *data, uint32_t len, size_t *msg_len)
{
	uint8_t *msg = xmalloc(2 * SD_HEADER_SIZE + len);
	struct sd_req r = *rq;

	r.data_length = len;
	sd_req_encode(&r, msg);
	sd_rsp_encode(rp, msg + SD_HEADER_SIZE);
	if (len)
		memcpy(msg + 2 * SD_HEADER_SIZE, data, len);
	*msg_len = 2 * SD_HEADER_SIZE + len;
	return msg;
}

static void fail_request(struct request *req, int result)
{
	req->rp.result = result;
	req->rp.data_length = 0;
	put_request(req);
}

/* The requester's last phase of a cluster op, after every main phase. */
static void cluster_after_fn(struct work *w)
{
	struct request *req = container_of(w, struct request, work);

	req->rp.result = req->op->process_after(req);
}

static void cluster_after_done(struct work *w)
{
	put_request(container_of(w, struct request, work));
}

void sd_notify_handler(const struct sd_node *sender, const void *msg,
		       size_t msg_len)
{
	bool from_me = node_id_eq(&sender->nid, &sys->this_node.nid);
	const struct sd_op_template *op;
	struct sd_req rq;
	struct sd_rsp rp;
	void *data;
	uint32_t len;
	int ret;

	if (msg_len < 2 * SD_HEADER_SIZE) {
		sd_err("short cluster message from %s", node_str(sender));
		return;
	}
	sd_req_decode(msg, &rq);
	sd_rsp_decode((const uint8_t *)msg + SD_HEADER_SIZE, &rp);
	len = msg_len - 2 * SD_HEADER_SIZE;
	op = get_sd_op(rq.opcode);
	if (!op || op->type != OP_CLUSTER) {
		sd_err("cluster message with bad opcode 0x%02x from %s",
		       rq.opcode, node_str(sender));
		return;
	}
	data = xmalloc(len ? len : 1);
	memcpy(data, (const uint8_t *)msg + 2 * SD_HEADER_SIZE, len);
	rq.data_length = len;
	if (rp.result == SD_RES_SUCCESS && op->process_main) {
		ret = op->process_main(&rq, &rp, data, sender);
		if (ret != SD_RES_SUCCESS)
			rp.result = ret;
	}
	if (from_me && !(rp.flags & RSP_FLAG_INTERNAL) &&
	    !list_empty(&pending_notify)) {
		struct request *req = list_first_entry(
			&pending_notify, struct request, r_list);

		list_del(&req->r_list);
		req->rp = rp;
		req->rp.data_length = 0;
		if (rp.result == SD_RES_SUCCESS && op->process_after) {
			req->work.fn = cluster_after_fn;
			req->work.done = cluster_after_done;
			queue_work(bg_wq, &req->work);
		} else {
			put_request(req);
		}
	}
	free(data);
}

static void cluster_work_fn(struct work *w)
{
	struct request *req = container_of(w, struct request, work);

	req->rp.result = req->op->process_work(req);
}

static void cluster_work_done(struct work *w)
{
	struct request *req = container_of(w, struct request, work);
	size_t msg_len;
	void *msg;
	int ret;

	/* The main phase needs the request's payload (names, vids). */
	msg = encode_msg(&req->rq, &req->rp, req->data,
			 (req->rq.flags & SD_FLAG_CMD_WRITE) ? req->rq.data_length
							     : 0,
			 &msg_len);
	list_add_tail(&req->r_list, &pending_notify);
	ret = cdrv->unblock(msg, msg_len);
	free(msg);
	if (ret < 0) {
		sd_err("cluster unblock failed: %s", strerror(-ret));
		list_del(&req->r_list);
		fail_request(req, SD_RES_CLUSTER_ERROR);
	}
}

void sd_block_handler(const struct sd_node *sender)
{
	struct request *req;

	if (list_empty(&pending_block)) {
		/* Nothing to do under the block; release it at once. */
		struct sd_req rq;
		struct sd_rsp rp = { 0 };
		size_t len;
		void *msg;

		sd_err("block granted with no request waiting");
		sd_init_req(&rq, SD_OP_GET_VDI_INFO);
		rp.result = SD_RES_SYSTEM_ERROR;
		msg = encode_msg(&rq, &rp, NULL, 0, &len);
		cdrv->unblock(msg, len);
		free(msg);
		return;
	}
	req = list_first_entry(&pending_block, struct request, r_list);
	list_del(&req->r_list);
	req->work.fn = cluster_work_fn;
	req->work.done = cluster_work_done;
	queue_work(cluster_wq, &req->work);
}

void queue_cluster_request(struct request *req)
{
	const struct sd_op_template *op = req->op;
	int ret;

	if (op->process_work) {
		list_add_tail(&req->r_list, &pending_block);
		ret = cdrv->block();
		if (ret < 0) {
			list_del(&req->r_list);
			fail_request(req, SD_RES_CLUSTER_ERROR);
		}
	} else {
		size_t len;
		void *msg = encode_msg(&req->rq, &req->rp, req->data,
				       (req->rq.flags & SD_FLAG_CMD_WRITE)
					       ? req->rq.data_length
					       : 0,
				       &len);

		list_add_tail(&req->r_list, &pending_notify);
		ret = cdrv->notify(msg, len);
		free(msg);
		if (ret < 0) {
			list_del(&req->r_list);
			fail_request(req, SD_RES_CLUSTER_ERROR);
		}
	}
}

/* ---- main phases of cluster-wide operations ---- */

int cluster_make_fs_main(const struct sd_req *req, struct sd_rsp *rsp,
			 void *data, const struct sd_node *sender)
{
	char store[SD_STORE_NAME_LEN + 1] = { 0 };
	uint8_t copies = req->cluster.copies ?: SD_DEFAULT_COPIES;
	uint8_t shift = req->cluster.block_size_shift
				?: SD_DEFAULT_BLOCK_SIZE_SHIFT;

	memcpy(store, data, MIN(req->data_length, SD_STORE_NAME_LEN));
	if (strcmp(store, "plain") && strcmp(store, "tree"))
		return SD_RES_NO_STORE;
	if (shift < SD_MIN_BLOCK_SIZE_SHIFT || shift > SD_MAX_BLOCK_SIZE_SHIFT ||
	    copies > SD_MAX_COPIES || !req->cluster.ctime)
		return SD_RES_INVALID_PARMS;
	if (req->cluster.copy_policy) {
		int d, p;

		if (!ec_policy_decode(req->cluster.copy_policy, &d, &p))
			return SD_RES_INVALID_PARMS;
		/* Erasure coding is not built yet: refuse rather than
		 * silently keep d+p full replicas. */
		return SD_RES_NO_SUPPORT;
	}
	if (!sys->gateway_only && store_format(store) < 0)
		return SD_RES_EIO;
	epoch_log_remove_all();
	vdi_clear_all();
	pthread_mutex_lock(&sys->lock);
	sys->ctime = req->cluster.ctime;
	sys->flags = req->cluster.flags;
	sys->nr_copies = copies;
	sys->copy_policy = req->cluster.copy_policy;
	sys->block_size_shift = shift;
	sys->disable_recovery = 0;
	snprintf(sys->store, sizeof(sys->store), "%s", store);
	pthread_mutex_unlock(&sys->lock);
	sys->shutdown_clean = false;
	__atomic_store_n(&sys->epoch, 0, __ATOMIC_RELEASE);
	bump_epoch();
	save_config();
	set_status(SD_STATUS_OK);
	sd_notice("cluster formatted: %s store, %u copies, object size 2^%u",
		  store, copies, shift);
	return SD_RES_SUCCESS;
}

int cluster_shutdown_main(const struct sd_req *req, struct sd_rsp *rsp,
			  void *data, const struct sd_node *sender)
{
	set_status(SD_STATUS_SHUTDOWN);
	sys->shutdown_clean = true;
	if (sys->ctime)
		save_config();
	server_stop_listening();
	exit_when_idle("cluster shut down");
	return SD_RES_SUCCESS;
}

/* FORCE_RECOVER: give up waiting for the missing members of the last
 * epoch and go on with the members present (dog cluster recover force). */
int cluster_force_recover_work(struct request *req)
{
	if (!sys->ctime)
		return SD_RES_WAIT_FOR_FORMAT;
	if (sys->status != SD_STATUS_WAIT)
		return SD_RES_FORCE_RECOVER;
	return SD_RES_SUCCESS;
}

int cluster_force_recover_main(const struct sd_req *req, struct sd_rsp *rsp,
			       void *data, const struct sd_node *sender)
{
	if (!sys->ctime || sys->status != SD_STATUS_WAIT)
		return SD_RES_FORCE_RECOVER;
	sd_notice("recovery forced: going on without the missing members of "
		  "epoch %u", sys->epoch);
	set_status(SD_STATUS_OK);
	if (sys->shutdown_clean) {
		sys->shutdown_clean = false;
		save_config();
	}
	bump_epoch();
	for (int i = 0; i < sys->nr_members; i++)
		if (!node_id_eq(&sys->members[i].nid, &sys->this_node.nid))
			vdi_sync_from(&sys->members[i]);
	return SD_RES_SUCCESS;
}

/* Tell every node that this one holds everything the epoch places on it. */
void recovery_report_complete(uint32_t epoch)
{
	struct sd_req rq;
	struct sd_rsp rp = { 0 };
	uint8_t node[SD_NODE_SIZE];
	size_t len;
	void *msg;

	sd_init_req(&rq, SD_OP_COMPLETE_RECOVERY);
	rq.flags = SD_FLAG_CMD_WRITE;
	rq.obj.tgt_epoch = epoch;
	rp.flags = RSP_FLAG_INTERNAL;
	sd_node_encode(&sys->this_node, node);
	msg = encode_msg(&rq, &rp, node, sizeof(node), &len);
	if (cdrv->notify(msg, len) < 0)
		sd_err("epoch %u: cannot report the end of recovery", epoch);
	free(msg);
}

int cluster_recover_main(const struct sd_req *req, struct sd_rsp *rsp,
			 void *data, const struct sd_node *sender)
{
	__atomic_store_n(&sys->disable_recovery,
			 req->opcode == SD_OP_DISABLE_RECOVER, __ATOMIC_RELEASE);
	if (req->opcode == SD_OP_ENABLE_RECOVER)
		recovery_resume();
	return SD_RES_SUCCESS;
}

int cluster_alter_copy_main(const struct sd_req *req, struct sd_rsp *rsp,
			    void *data, const struct sd_node *sender)
{
	if (req->cluster.copy_policy || !req->cluster.copies ||
	    req->cluster.copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	pthread_mutex_lock(&sys->lock);
	sys->nr_copies = req->cluster.copies;
	pthread_mutex_unlock(&sys->lock);
	save_config();
	return SD_RES_SUCCESS;
}

/* ---- VDI state exchange with a (new) member ---- */

struct vdi_sync {
	struct work work;
	struct sd_node node;
};

static bool is_member(const struct node_id *nid)
{
	struct vnode_info *vi = get_vnode_info();
	bool found = false;

	for (int i = 0; vi && i < vi->ring->nr_nodes; i++)
		found = found || node_id_eq(&vi->ring->nodes[i].nid, nid);
	if (vi)
		put_vnode_info(vi);
	return found;
}

static void vdi_sync_fn(struct work *w)
{
	struct vdi_sync *vs = container_of(w, struct vdi_sync, work);
	uint32_t len = 1024 * SD_VDI_STATE_SIZE;
	uint8_t *buf;
	int tries = 0;

	for (;;) {
		struct sd_req rq;
		struct sd_rsp rp;
		int ret;

		buf = malloc(len);
		if (!buf) {
			vdi_sync_finished(false);
			return;
		}
		sd_init_req(&rq, SD_OP_GET_VDI_COPIES);
		rq.data_length = len;
		ret = peer_exec(&vs->node.nid, &rq, NULL, buf, len, &rp);
		free(ret == SD_RES_SUCCESS ? NULL : buf);
		if (ret == SD_RES_SUCCESS) {
			vdi_state_merge(buf, rp.data_length);
			free(buf);
			vdi_sync_finished(true);
			return;
		}
		if (ret == SD_RES_BUFFER_SMALL && len < SD_MAX_PAYLOAD) {
			len = MIN((uint64_t)len * 8, (uint64_t)SD_MAX_PAYLOAD);
			continue;
		}
		/* A node that left meanwhile no longer matters: what it
		 * stored is replicated on the members. One that cannot
		 * answer yet (still starting) gets more chances. */
		if (!is_member(&vs->node.nid)) {
			vdi_sync_finished(true);
			return;
		}
		if (++tries >= 40) {
			sd_err("cannot fetch VDI states from %s: %s; space "
			       "reclamation is off until restart",
			       node_str(&vs->node), sd_strerror(ret));
			vdi_sync_finished(false);
			return;
		}
		usleep(250 * 1000);
	}
}

static void vdi_sync_done(struct work *w)
{
	free(container_of(w, struct vdi_sync, work));
}

static void vdi_sync_from(const struct sd_node *n)
{
	struct vdi_sync *vs = xzalloc(sizeof(*vs));

	vs->node = *n;
	vdi_sync_started();
	vs->work.fn = vdi_sync_fn;
	vs->work.done = vdi_sync_done;
	queue_work(bg_wq, &vs->work);
}

/* ---- start and stop ---- */

static struct cluster_driver *find_driver(const char *opt, const char **arg)
{
	static struct cluster_driver *drivers[] = { &cdrv_local };
	size_t n = strcspn(opt, ":");

	*arg = opt[n] == ':' ? opt + n + 1 : NULL;
	for (size_t i = 0; i < ARRAY_SIZE(drivers); i++)
		if (strlen(drivers[i]->name) == n &&
		    !strncmp(drivers[i]->name, opt, n))
			return drivers[i];
	return NULL;
}

int group_init(const char *driver_opt)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	struct cluster_info ci;
	const char *arg;
	uint8_t *buf;
	size_t len;
	int ret;

	cdrv = find_driver(driver_opt, &arg);
	if (!cdrv) {
		sd_err("unknown cluster driver '%s' (this build has: local)",
		       driver_opt);
		free(nodes);
		return -EINVAL;
	}
	ret = cdrv->init(arg);
	if (ret < 0) {
		sd_err("cannot start the %s cluster driver: %s", cdrv->name,
		       strerror(-ret));
		free(nodes);
		return ret;
	}

	/* What this node remembers: its latest epoch and who was in it. */
	sys->epoch = epoch_log_latest();
	if (sys->epoch) {
		int nr = epoch_log_read(sys->epoch, nodes, NULL);

		if (nr < 0) {
			sd_err("cannot read epoch %u", sys->epoch);
			free(nodes);
			return nr;
		}
		set_epoch_nodes(nodes, nr);
	}
	set_status(SD_STATUS_WAIT);
	sys_cluster_info(&ci, nodes);
	len = cluster_info_size(ci.nr_nodes);
	buf = xmalloc(len);
	cluster_info_encode(&ci, buf);
	ret = cdrv->join(&sys->this_node, buf, len);
	free(buf);
	free(nodes);
	if (ret < 0)
		sd_err("cannot join the cluster: %s", strerror(-ret));
	return ret;
}

int group_update_node(const struct sd_node *node)
{
	return cdrv && cdrv->update_node ? cdrv->update_node(node) : -ENOSYS;
}

void group_leave(void)
{
	if (cdrv)
		cdrv->leave();
}
