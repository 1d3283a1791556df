/*
 * Peer requests: another sheep's object I/O against this node's own store.
 * The sender's epoch is checked first (spec 7.4): an older one is refused
 * with OLD_NODE_VER so the gateway retries under the new placement; a newer
 * one was parked by ops.c until this node caught up.
 */
#include <inttypes.h>

#include "sheep.h"

static int check_epoch(const struct request *req)
{
	uint32_t mine = sys_epoch(), theirs = req->rq.epoch;

	if ((int32_t)(theirs - mine) < 0) {
		sd_debug("%s %016" PRIx64 ": old epoch %u, mine is %u",
			 req->op->name, req->rq.obj.oid, theirs, mine);
		return SD_RES_OLD_NODE_VER;
	}
	/* Requests from a newer epoch were parked until ours caught up
	 * (ops.c); one that still gets here raced a later change. */
	if ((int32_t)(theirs - mine) > 0)
		return SD_RES_NEW_NODE_VER;
	/* Copies this node stopped holding must be out of the way first. */
	return recovery_wait_swept(mine);
}

static int check_range(const struct request *req, uint64_t *obj_size)
{
	uint64_t oid = req->rq.obj.oid, off = req->rq.obj.offset;
	uint32_t len = req->rq.data_length;
	uint8_t copies, policy, shift;

	if (!oid_is_valid(oid))
		return SD_RES_INVALID_PARMS;
	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	*obj_size = oid_obj_size(oid, shift);
	if (off > *obj_size || len > *obj_size - off)
		return SD_RES_INVALID_PARMS;
	return SD_RES_SUCCESS;
}

/* A mutation runs registered under its epoch (recovery.c's barrier). */
static int mutation_begin(const struct request *req)
{
	int ret = check_epoch(req);

	return ret == SD_RES_SUCCESS ? io_epoch_enter(req->rq.epoch) : ret;
}

int peer_create_and_write_obj(struct request *req)
{
	uint64_t obj_size;
	int ret = check_range(req, &obj_size);

	if (ret == SD_RES_SUCCESS)
		ret = mutation_begin(req);
	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = store_create_and_write(req->rq.obj.oid, req->rq.obj.ec_index,
				     req->rq.obj.offset, req->rq.data_length,
				     req->data, obj_size, NULL);
	io_epoch_exit(req->rq.epoch);
	return ret;
}

int peer_write_obj(struct request *req)
{
	uint64_t obj_size;
	int ret = check_range(req, &obj_size);

	if (ret == SD_RES_SUCCESS)
		ret = mutation_begin(req);
	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = store_write(req->rq.obj.oid, req->rq.obj.ec_index,
			  req->rq.obj.offset, req->rq.data_length, req->data);
	/* Not fetched yet by recovery: fetch it now, then write. */
	if (ret == SD_RES_NO_OBJ) {
		ret = recover_missing(req->rq.obj.oid);
		if (ret == SD_RES_SUCCESS)
			ret = store_write(req->rq.obj.oid, req->rq.obj.ec_index,
					  req->rq.obj.offset,
					  req->rq.data_length, req->data);
	}
	io_epoch_exit(req->rq.epoch);
	return ret;
}

/*
 * A recovering node's read: the live copy, or else the newest stale one,
 * with rsp.obj.offset saying which (0 live, else the stale copy's epoch).
 * It never waits for our epoch, only for our sweep, so that a live copy
 * here is one this node still holds and keeps current.
 */
static int peer_read_for_recovery(struct request *req)
{
	uint64_t obj_size;
	uint32_t tag = 0, len = req->rq.data_length;
	int ret = check_range(req, &obj_size);

	if (ret == SD_RES_SUCCESS && req->rq.obj.ec_index)
		ret = SD_RES_INVALID_PARMS; /* strips: not built yet */
	/* A recoverer ahead of us was parked until we caught up (ops.c);
	 * once we are at its epoch, writes of earlier epochs that are still
	 * running here must land before we hand out the object. */
	if (ret == SD_RES_SUCCESS &&
	    (int32_t)(req->rq.epoch - sys_epoch()) > 0)
		ret = SD_RES_NEW_NODE_VER;
	if (ret == SD_RES_SUCCESS)
		ret = io_epoch_drain(req->rq.epoch);
	if (ret == SD_RES_SUCCESS)
		ret = recovery_wait_swept(sys_epoch());
	if (ret == SD_RES_SUCCESS)
		ret = store_read_any(req->rq.obj.oid, req->rq.obj.offset, len,
				     req->data, &tag);
	if (ret == SD_RES_SUCCESS) {
		req->rp.data_length = len;
		req->rp.obj.offset = tag;
	}
	return ret;
}

int peer_read_obj(struct request *req)
{
	uint64_t obj_size;
	uint32_t len = req->rq.data_length;
	int ret;

	if (req->rq.flags & SD_FLAG_CMD_RECOVERY)
		return peer_read_for_recovery(req);
	ret = check_epoch(req);
	if (ret == SD_RES_SUCCESS)
		ret = check_range(req, &obj_size);
	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = store_read(req->rq.obj.oid, req->rq.obj.ec_index,
			 req->rq.obj.offset, len, req->data);
	if (ret == SD_RES_NO_OBJ) {
		ret = recover_missing(req->rq.obj.oid);
		if (ret == SD_RES_SUCCESS)
			ret = store_read(req->rq.obj.oid, req->rq.obj.ec_index,
					 req->rq.obj.offset, len, req->data);
	}
	if (ret == SD_RES_SUCCESS)
		req->rp.data_length = len;
	return ret;
}

/*
 * A READ_PEER that can be answered at once, on the main thread: the epoch
 * is ours, the sweep is done, and the range is in the page cache. false:
 * queue it as usual (which also produces any error).
 */
bool peer_read_obj_nowait(struct request *req)
{
	uint64_t obj_size;
	uint32_t len = req->rq.data_length;

	if ((req->rq.flags & SD_FLAG_CMD_RECOVERY) || req->rq.obj.ec_index ||
	    req->rq.epoch != sys_epoch() || !recovery_swept(req->rq.epoch) ||
	    check_range(req, &obj_size) != SD_RES_SUCCESS ||
	    !store_read_nowait(req->rq.obj.oid, req->rq.obj.offset, len,
			       req->data))
		return false;
	req->rp.result = SD_RES_SUCCESS;
	req->rp.data_length = len;
	return true;
}

int peer_remove_obj(struct request *req)
{
	int ret;

	if (!oid_is_valid(req->rq.obj.oid))
		return SD_RES_INVALID_PARMS;
	ret = mutation_begin(req);
	if (ret != SD_RES_SUCCESS)
		return ret;
	/* A deleted object must not come back from an old copy. */
	store_remove_stale(req->rq.obj.oid);
	ret = store_remove(req->rq.obj.oid, req->rq.obj.ec_index);
	io_epoch_exit(req->rq.epoch);
	return ret;
}
