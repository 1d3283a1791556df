/*
 * The gateway: a client's object I/O. Placement of the current epoch says
 * which nodes hold the object; writes go to every holder in parallel (the
 * local copy straight to the store) and complete when all have made the
 * write durable; reads are served by one holder, the local one first, and
 * fall back to the others at once when a holder fails.
 *
 * When a holder answers that the epoch moved on, or cannot be reached, the
 * whole request is retried under the next epoch, for a bounded time.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sheep.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

/* How long a request keeps retrying across epoch changes. */
#define GATEWAY_RETRY_MS 30000
#define EPOCH_WAIT_MS 500

static bool is_retry_result(int result)
{
	switch (result) {
	case SD_RES_NETWORK_ERROR:
	case SD_RES_OLD_NODE_VER:
	case SD_RES_NEW_NODE_VER:
	case SD_RES_WAIT_FOR_JOIN:
	case SD_RES_WAIT_FOR_FORMAT:
	case SD_RES_KILLED:
	case SD_RES_SHUTDOWN:
		return true;
	default:
		return false;
	}
}


static bool is_me(const struct sd_node *n)
{
	return node_id_eq(&n->nid, &sys->this_node.nid);
}

/* The object's size and whether [offset, offset+len) fits in it. */
static int check_obj_range(uint64_t oid, uint64_t offset, uint32_t len,
			   uint64_t *obj_size)
{
	uint8_t copies, policy, shift;

	if (!oid_is_valid(oid)) {
		sd_err("invalid oid %016" PRIx64, oid);
		return SD_RES_INVALID_PARMS;
	}
	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	*obj_size = oid_obj_size(oid, shift);
	if (offset > *obj_size || len > *obj_size - offset) {
		sd_err("oid %016" PRIx64 ": range %" PRIu64 "+%" PRIu32
		       " is outside the %" PRIu64 "-byte object",
		       oid, offset, len, *obj_size);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

static int holders(struct vnode_info *vi, const struct request *req,
		   int idx[SD_MAX_COPIES])
{
	int copies = req->rq.obj.copies;

	if (!copies)
		copies = get_obj_copies(req->rq.obj.oid);
	if (vi->ring->nr_zones == 0)
		return 0;
	return ring_oid_to_nodes(vi->ring, req->rq.obj.oid, copies, idx);
}

struct fwd {
	const struct sd_node *node;
	int fd;
	int result;
};

/*
 * Send the peer version of req to every holder, apply it locally where we
 * are a holder, and collect the answers. data/len is the payload.
 */
static int forward_once(struct vnode_info *vi, const struct request *req,
			uint8_t peer_op, const void *data, uint32_t len,
			bool create, uint64_t obj_size)
{
	int idx[SD_MAX_COPIES], nr, result = SD_RES_SUCCESS;
	struct fwd fwd[SD_MAX_COPIES];
	bool local = false;
	struct sd_req prq = req->rq;
	int nr_noobj = 0;

	nr = holders(vi, req, idx);
	if (nr == 0)
		return SD_RES_HALT;
	prq.opcode = peer_op;
	prq.proto_ver = SD_SHEEP_PROTO_VER;
	prq.epoch = vi->epoch;
	prq.flags &= ~SD_FLAG_CMD_COW;
	prq.obj.cow_oid = 0;
	prq.obj.ec_index = 0;
	prq.data_length = len;
	/* A create without payload (an all-zero object) is still a write. */
	if (len || peer_op == SD_OP_CREATE_AND_WRITE_PEER)
		prq.flags |= SD_FLAG_CMD_WRITE;
	else
		prq.flags &= ~SD_FLAG_CMD_WRITE;

	for (int i = 0; i < nr; i++) {
		const struct sd_node *n = &vi->ring->nodes[idx[i]];

		fwd[i].node = n;
		fwd[i].fd = -1;
		fwd[i].result = SD_RES_SUCCESS;
		if (is_me(n)) {
			local = true;
			continue;
		}
		fwd[i].fd = sockfd_get(&n->nid);
		if (fwd[i].fd < 0) {
			fwd[i].result = SD_RES_NETWORK_ERROR;
			continue;
		}
		if (sd_send_req(fwd[i].fd, &prq, data) < 0) {
			sockfd_del(&n->nid, fwd[i].fd);
			fwd[i].fd = -1;
			fwd[i].result = SD_RES_NETWORK_ERROR;
		}
	}

	if (local) {
		int r = recovery_wait_swept(vi->epoch);
		bool entered;

		if (r == SD_RES_SUCCESS)
			r = io_epoch_enter(vi->epoch);
		entered = r == SD_RES_SUCCESS;
		switch (entered ? peer_op : 0) {
		case 0:
			break;
		case SD_OP_CREATE_AND_WRITE_PEER:
			r = store_create_and_write(req->rq.obj.oid, 0,
						   req->rq.obj.offset, len,
						   data, obj_size,
						   NULL);
			break;
		case SD_OP_WRITE_PEER:
			r = store_write(req->rq.obj.oid, 0, req->rq.obj.offset,
					len, data);
			if (r == SD_RES_NO_OBJ) {
				r = recover_missing(req->rq.obj.oid);
				if (r == SD_RES_SUCCESS)
					r = store_write(req->rq.obj.oid, 0,
							req->rq.obj.offset,
							len, data);
			}
			break;
		default:
			store_remove_stale(req->rq.obj.oid);
			r = store_remove(req->rq.obj.oid, 0);
			break;
		}
		if (entered)
			io_epoch_exit(vi->epoch);
		for (int i = 0; i < nr; i++)
			if (is_me(fwd[i].node))
				fwd[i].result = r;
	}

	for (int i = 0; i < nr; i++) {
		struct sd_rsp rsp;

		if (fwd[i].fd < 0)
			continue;
		if (sd_recv_rsp(fwd[i].fd, &rsp, NULL, 0) < 0) {
			sockfd_del(&fwd[i].node->nid, fwd[i].fd);
			fwd[i].result = SD_RES_NETWORK_ERROR;
			continue;
		}
		sockfd_put(&fwd[i].node->nid, fwd[i].fd);
		fwd[i].result = rsp.result;
	}

	for (int i = 0; i < nr; i++) {
		int r = fwd[i].result;

		if (r == SD_RES_SUCCESS)
			continue;
		if (peer_op == SD_OP_REMOVE_PEER && r == SD_RES_NO_OBJ) {
			nr_noobj++;
			continue;
		}
		if (result == SD_RES_SUCCESS || is_retry_result(r))
			result = r;
		if (r != SD_RES_NO_OBJ) {
			char a[64];

			sd_warn("%s of %016" PRIx64 " on %s failed: %s",
				sd_op_name(peer_op), req->rq.obj.oid,
				node_addr_to_str(&fwd[i].node->nid, a, sizeof(a)),
				sd_strerror(r));
		}
	}
	if (result == SD_RES_SUCCESS && nr_noobj == nr)
		result = SD_RES_NO_OBJ;
	return result;
}

/* Retry a forwarded operation across epoch changes, for a bounded time. */
static int forward_retry(const struct request *req, uint8_t peer_op,
			 const void *data, uint32_t len, bool create,
			 uint64_t obj_size)
{
	uint64_t start = mono_ms();
	int ret, attempt = 0;

	for (;;) {
		struct vnode_info *vi = get_vnode_info();
		uint32_t epoch;

		if (!vi)
			return SD_RES_WAIT_FOR_FORMAT;
		epoch = vi->epoch;
		ret = forward_once(vi, req, peer_op, data, len, create,
				   obj_size);
		put_vnode_info(vi);
		if (!is_retry_result(ret) || mono_ms() - start > GATEWAY_RETRY_MS)
			return ret;
		/* A stale cached socket deserves one immediate retry. */
		if (attempt++ > 0)
			wait_epoch_change(epoch, EPOCH_WAIT_MS);
		if (sys->status != SD_STATUS_OK)
			return ret;
	}
}

/*
 * A write into a flat inode's index may drop references to data objects
 * (copy on write, discard, delete): the slots whose vid changed away from
 * a non-zero value. Those objects are removed unless another member of the
 * family still references them (reclaim.c).
 */
static void release_index_slots(const struct request *req,
				const uint8_t *old_slots, uint32_t first,
				uint32_t nr)
{
	uint32_t vid = oid_to_vid(req->rq.obj.oid);
	struct obj_refs cand = { 0 };

	for (uint32_t i = 0; i < nr; i++) {
		uint64_t off = SD_INODE_OFF_DATA_VDI_ID + (uint64_t)(first + i) * 4;
		uint32_t old_vid = get_le32(old_slots + i * 4);

		if (!old_vid || off < req->rq.obj.offset ||
		    off + 4 > req->rq.obj.offset + req->rq.data_length)
			continue;
		if (get_le32((const uint8_t *)req->data +
			     (off - req->rq.obj.offset)) != old_vid)
			obj_refs_add(&cand, first + i, old_vid);
	}
	vdi_reclaim(vid, &cand);
	obj_refs_free(&cand);
}

/* Hyper volumes keep a B-tree where flat inodes keep their slots. When
 * in doubt, the write is treated as not touching slots: nothing is
 * reclaimed, which can leak but never loses an object. */
static bool inode_is_flat(uint64_t oid)
{
	uint8_t store_policy;

	return sd_read_object(oid, &store_policy, 1,
			      SD_INODE_OFF_STORE_POLICY) == SD_RES_SUCCESS &&
	       store_policy == 0;
}

/* Data objects of a snapshot are read-only (spec 4.4). */
static bool is_readonly(uint64_t oid)
{
	return (is_data_obj(oid) || is_vmstate_obj(oid)) &&
	       vdi_is_snapshot(oid_to_vid(oid));
}

int gateway_write_obj(struct request *req)
{
	uint64_t obj_size, off = req->rq.obj.offset;
	uint32_t len = req->rq.data_length, first = 0, nr = 0;
	uint8_t *old_slots = NULL;
	int ret = check_obj_range(req->rq.obj.oid, off, len, &obj_size);

	if (ret != SD_RES_SUCCESS)
		return ret;
	if (is_readonly(req->rq.obj.oid))
		return SD_RES_READONLY;
	if (is_vdi_obj(req->rq.obj.oid) && off + len > SD_INODE_OFF_DATA_VDI_ID &&
	    off < SD_INODE_OFF_GREF && inode_is_flat(req->rq.obj.oid)) {
		uint64_t s = MAX(off, (uint64_t)SD_INODE_OFF_DATA_VDI_ID);
		uint64_t e = MIN(off + len, (uint64_t)SD_INODE_OFF_GREF);

		first = (s - SD_INODE_OFF_DATA_VDI_ID) / 4;
		nr = DIV_ROUND_UP(e - SD_INODE_OFF_DATA_VDI_ID, 4) - first;
		old_slots = xmalloc((size_t)nr * 4);
		ret = sd_read_object(req->rq.obj.oid, old_slots, nr * 4,
				     SD_INODE_OFF_DATA_VDI_ID +
					     (uint64_t)first * 4);
		if (ret != SD_RES_SUCCESS) {
			free(old_slots);
			return ret;
		}
	}
	ret = forward_retry(req, SD_OP_WRITE_PEER, req->data, len, false,
			    obj_size);
	if (ret == SD_RES_SUCCESS && old_slots)
		release_index_slots(req, old_slots, first, nr);
	free(old_slots);
	return ret;
}

int gateway_remove_obj(struct request *req)
{
	uint64_t obj_size;
	int ret = check_obj_range(req->rq.obj.oid, 0, 0, &obj_size);

	if (ret != SD_RES_SUCCESS)
		return ret;
	return forward_retry(req, SD_OP_REMOVE_PEER, NULL, 0, false, obj_size);
}

/*
 * Create: a partial payload makes a full-size object with zeros elsewhere.
 * With COW the base object is read first and the payload laid over it, and
 * the whole result is sent to the holders.
 */
int gateway_create_and_write_obj(struct request *req)
{
	uint64_t oid = req->rq.obj.oid, obj_size;
	uint32_t len = req->rq.data_length;
	int ret = check_obj_range(oid, req->rq.obj.offset, len, &obj_size);
	uint8_t *full;

	if (ret != SD_RES_SUCCESS)
		return ret;
	if (is_readonly(oid))
		return SD_RES_READONLY;
	if (!(req->rq.flags & SD_FLAG_CMD_COW) || len == obj_size)
		return forward_retry(req, SD_OP_CREATE_AND_WRITE_PEER,
				     req->data, len, true, obj_size);

	if (!oid_is_valid(req->rq.obj.cow_oid) ||
	    oid_obj_size(req->rq.obj.cow_oid, 0) != oid_obj_size(oid, 0)) {
		sd_err("oid %016" PRIx64 ": bad copy-on-write source %016" PRIx64,
		       oid, req->rq.obj.cow_oid);
		return SD_RES_INVALID_PARMS;
	}
	if (obj_size > SD_MAX_PAYLOAD)
		return SD_RES_INVALID_PARMS;
	full = sd_alloc_buffer(obj_size);
	if (!full)
		return SD_RES_NO_MEM;
	ret = sd_read_object(req->rq.obj.cow_oid, full, obj_size, 0);
	if (ret != SD_RES_SUCCESS) {
		sd_err("oid %016" PRIx64 ": cannot read base %016" PRIx64 ": %s",
		       oid, req->rq.obj.cow_oid, sd_strerror(ret));
		sd_free_buffer(full, obj_size);
		return ret;
	}
	memcpy(full + req->rq.obj.offset, req->data, len);
	{
		struct request full_req = *req;

		full_req.rq.obj.offset = 0;
		full_req.rq.data_length = obj_size;
		ret = forward_retry(&full_req, SD_OP_CREATE_AND_WRITE_PEER,
				    full, obj_size, true, obj_size);
	}
	sd_free_buffer(full, obj_size);
	return ret;
}

static int read_once(struct vnode_info *vi, struct request *req, bool *retry)
{
	int idx[SD_MAX_COPIES], nr, start, ret = SD_RES_NO_OBJ;
	struct sd_req prq = req->rq;
	uint32_t len = req->rq.data_length;

	*retry = false;
	nr = holders(vi, req, idx);
	if (nr == 0)
		return SD_RES_HALT;
	for (int i = 0; i < nr; i++) {
		if (!is_me(&vi->ring->nodes[idx[i]]) ||
		    recovery_wait_swept(vi->epoch) != SD_RES_SUCCESS)
			continue;
		ret = store_read(req->rq.obj.oid, 0, req->rq.obj.offset, len,
				 req->data);
		if (ret == SD_RES_SUCCESS) {
			req->rp.data_length = len;
			return ret;
		}
	}
	prq.opcode = SD_OP_READ_PEER;
	prq.proto_ver = SD_SHEEP_PROTO_VER;
	prq.epoch = vi->epoch;
	prq.flags &= ~SD_FLAG_CMD_WRITE;
	start = rand() % nr;
	for (int k = 0; k < nr; k++) {
		const struct sd_node *n = &vi->ring->nodes[idx[(start + k) % nr]];
		struct sd_rsp rsp;
		int r;

		if (is_me(n))
			continue;
		r = peer_exec(&n->nid, &prq, NULL, req->data, len, &rsp);
		if (r == SD_RES_SUCCESS) {
			/* Buffers are reused: never send what a short reply
			 * did not fill. */
			if (rsp.data_length < len)
				memset((char *)req->data + rsp.data_length, 0,
				       len - rsp.data_length);
			req->rp.data_length = len;
			return r;
		}
		if (is_retry_result(r))
			*retry = true;
		if (ret == SD_RES_NO_OBJ || r != SD_RES_NO_OBJ)
			ret = r;
	}
	return ret;
}

/*
 * Where a read of oid can be served without waiting, for an event loop
 * (the NBD server's fast path): GW_ROUTE_LOCAL when this node holds it and
 * may read it now, GW_ROUTE_PEER with the epoch and a remote holder (picked
 * at random, to spread reads) otherwise, 0 when only gateway_read_obj can
 * tell (no cluster yet, recovery under way, no holder).
 */
int gateway_read_route(uint64_t oid, uint32_t *epoch, struct node_id *nid)
{
	int idx[SD_MAX_COPIES], nr, ret = 0;
	struct vnode_info *vi;

	if (sys->status != SD_STATUS_OK || !oid_is_valid(oid))
		return 0;
	vi = get_vnode_info();
	if (!vi)
		return 0;
	nr = vi->ring->nr_zones
		     ? ring_oid_to_nodes(vi->ring, oid, get_obj_copies(oid), idx)
		     : 0;
	for (int i = 0; i < nr; i++)
		if (is_me(&vi->ring->nodes[idx[i]])) {
			ret = recovery_swept(vi->epoch) ? GW_ROUTE_LOCAL : 0;
			goto out;
		}
	if (nr > 0) {
		*nid = vi->ring->nodes[idx[rand() % nr]].nid;
		*epoch = vi->epoch;
		ret = GW_ROUTE_PEER;
	}
out:
	put_vnode_info(vi);
	return ret;
}

int gateway_read_obj(struct request *req)
{
	uint64_t start = mono_ms(), obj_size;
	int ret = check_obj_range(req->rq.obj.oid, req->rq.obj.offset,
				  req->rq.data_length, &obj_size);

	if (ret != SD_RES_SUCCESS)
		return ret;
	for (;;) {
		struct vnode_info *vi = get_vnode_info();
		uint32_t epoch;
		bool retry;

		if (!vi)
			return SD_RES_WAIT_FOR_FORMAT;
		epoch = vi->epoch;
		ret = read_once(vi, req, &retry);
		put_vnode_info(vi);
		if (ret == SD_RES_SUCCESS || !retry ||
		    mono_ms() - start > GATEWAY_RETRY_MS ||
		    sys->status != SD_STATUS_OK)
			return ret;
		wait_epoch_change(epoch, EPOCH_WAIT_MS);
	}
}

int sd_read_object(uint64_t oid, void *buf, uint32_t len, uint64_t offset)
{
	struct request req = { 0 };

	sd_init_req(&req.rq, SD_OP_READ_OBJ);
	req.rq.data_length = len;
	req.rq.obj.oid = oid;
	req.rq.obj.offset = offset;
	req.data = buf;
	req.data_alloc = len;
	return gateway_read_obj(&req);
}

int sd_write_object(uint64_t oid, const void *buf, uint32_t len,
		    uint64_t offset, bool create, uint8_t copies)
{
	struct request req = { 0 };

	sd_init_req(&req.rq, create ? SD_OP_CREATE_AND_WRITE_OBJ
				    : SD_OP_WRITE_OBJ);
	req.rq.flags = SD_FLAG_CMD_WRITE;
	req.rq.data_length = len;
	req.rq.obj.oid = oid;
	req.rq.obj.offset = offset;
	req.rq.obj.copies = copies;
	req.data = (void *)buf;
	req.data_alloc = len;
	return create ? gateway_create_and_write_obj(&req)
		      : gateway_write_obj(&req);
}

int sd_remove_object(uint64_t oid)
{
	struct request req = { 0 };

	sd_init_req(&req.rq, SD_OP_REMOVE_OBJ);
	req.rq.obj.oid = oid;
	return gateway_remove_obj(&req);
}

int sd_cow_write_object(uint64_t oid, uint64_t cow_oid, const void *buf,
			uint32_t len, uint64_t offset, uint8_t copies)
{
	struct request req = { 0 };

	sd_init_req(&req.rq, SD_OP_CREATE_AND_WRITE_OBJ);
	req.rq.flags = SD_FLAG_CMD_WRITE | SD_FLAG_CMD_COW;
	req.rq.data_length = len;
	req.rq.obj.oid = oid;
	req.rq.obj.cow_oid = cow_oid;
	req.rq.obj.offset = offset;
	req.rq.obj.copies = copies;
	req.data = (void *)buf;
	req.data_alloc = len;
	return gateway_create_and_write_obj(&req);
}
