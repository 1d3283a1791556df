/*
 * The two requests behind "dog vdi check": GET_HASH answers the SHA-1 of
 * the whole object as this node stores it, so that dog can compare the
 * replicas of an object without moving their bytes, and REPAIR_REPLICA
 * replaces this node's replica with the copy another member holds (dog
 * picks the majority copy). Deciding what is wrong and which copy wins is
 * dog's business; this file only hashes and copies, and refuses requests
 * whose fields do not make sense before it touches the store or a peer.
 *
 * A repair never leaves a partial object: the whole object is read from the
 * source first and then created through the store's temporary file and
 * rename, which replaces the old replica (or creates a missing one) in one
 * step.
 */
#include <inttypes.h>
#include <string.h>

#include "sheep.h"
#include "sheepdog/sha1.h"

/* Objects are hashed and fetched in pieces of this size. */
#define CHECK_PIECE (4U << 20)

static bool req_has_payload(const struct request *req)
{
	return (req->rq.flags & SD_FLAG_CMD_WRITE) && req->rq.data_length;
}

/*
 * The object's size, if oid names an object this request may touch: well
 * formed, of a VDI that can exist (vid 0 never does), and replicated
 * (erasure-coded strips are neither hashed nor repaired here).
 */
static int check_oid(const char *op, uint64_t oid, uint64_t *obj_size)
{
	uint8_t copies, policy, shift;

	if (!oid_is_valid(oid) || oid_to_vid(oid) == 0) {
		sd_err("%s: invalid oid %016" PRIx64, op, oid);
		return SD_RES_INVALID_PARMS;
	}
	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	if (policy && (is_data_obj(oid) || is_vmstate_obj(oid))) {
		sd_err("%s: oid %016" PRIx64 " is erasure coded", op, oid);
		return SD_RES_NO_SUPPORT;
	}
	*obj_size = oid_obj_size(oid, shift);
	return SD_RES_SUCCESS;
}

/* Read [off, off+len) of the live object, or of its stale copy of epoch. */
static int read_piece(uint64_t oid, uint32_t stale_epoch, uint64_t off,
		      uint32_t len, void *buf)
{
	if (stale_epoch)
		return store_read_stale(oid, 0, stale_epoch, off, len, buf);
	return store_read(oid, 0, off, len, buf);
}

static int hash_object(uint64_t oid, uint32_t stale_epoch, uint64_t obj_size,
		       uint8_t digest[SHA1_DIGEST_SIZE])
{
	uint32_t piece = MIN(obj_size, CHECK_PIECE);
	void *buf = sd_alloc_buffer(piece);
	struct sha1_ctx ctx;
	int ret = SD_RES_SUCCESS;

	if (!buf)
		return SD_RES_NO_MEM;
	sha1_init(&ctx);
	for (uint64_t off = 0; off < obj_size && ret == SD_RES_SUCCESS;
	     off += piece) {
		uint32_t len = MIN(obj_size - off, piece);

		ret = read_piece(oid, stale_epoch, off, len, buf);
		if (ret == SD_RES_SUCCESS)
			sha1_update(&ctx, buf, len);
	}
	sha1_final(&ctx, digest);
	sd_free_buffer(buf, piece);
	return ret;
}

/*
 * GET_HASH: obj.oid, obj.tgt_epoch. The live object is hashed; when it is
 * absent and tgt_epoch names an earlier epoch, the stale copy of that
 * epoch is. Bytes past the end of a short file count as zeros, as reads
 * return them.
 */
int local_get_hash(struct request *req)
{
	uint64_t oid = req->rq.obj.oid, obj_size;
	uint32_t tgt = req->rq.obj.tgt_epoch;
	int ret;

	if (req_has_payload(req) || req->rq.obj.ec_index) {
		sd_err("GET_HASH %016" PRIx64 ": unexpected payload or strip "
		       "index %u",
		       oid, req->rq.obj.ec_index);
		return SD_RES_INVALID_PARMS;
	}
	ret = check_oid("GET_HASH", oid, &obj_size);
	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = hash_object(oid, 0, obj_size, req->rp.hash.digest);
	if (ret == SD_RES_NO_OBJ && tgt && tgt < sys_epoch())
		ret = hash_object(oid, tgt, obj_size, req->rp.hash.digest);
	if (ret != SD_RES_SUCCESS)
		memset(req->rp.hash.digest, 0, sizeof(req->rp.hash.digest));
	return ret;
}

static bool addr_is_unspecified(const uint8_t addr[16])
{
	static const uint8_t zero[16];

	return memcmp(addr, zero, sizeof(zero)) == 0;
}

static bool ring_holds(const struct sd_ring *ring, uint64_t oid,
		       const struct node_id *nid)
{
	int idx[SD_MAX_COPIES];
	int nr = ring_oid_to_nodes(ring, oid, get_obj_copies(oid), idx);

	for (int i = 0; i < nr; i++)
		if (node_id_eq(&ring->nodes[idx[i]].nid, nid))
			return true;
	return false;
}

/*
 * The source of a repair must be another member of the current ring, and
 * this node must be one of the object's holders: a repair never makes a
 * copy where placement would not look for it, and never makes this node
 * connect to an address outside the cluster.
 */
static int check_repair(const struct request *req, const struct sd_ring *ring,
			struct node_id *src)
{
	const char *why = NULL;
	char name[64];

	memset(src, 0, sizeof(*src));
	memcpy(src->addr, req->rq.forw.addr, sizeof(src->addr));
	src->port = req->rq.forw.port;
	node_addr_to_str(src, name, sizeof(name));

	if (req_has_payload(req))
		why = "the request carries a payload";
	else if (addr_is_unspecified(src->addr))
		why = "the source address is unspecified";
	else if (src->port == 0)
		why = "the source port is 0";
	else if (node_id_eq(src, &sys->this_node.nid))
		why = "the source is this node";
	else if (ring_find_node(ring, src) < 0)
		why = "the source is not a member of this epoch";
	else if (!ring_holds(ring, req->rq.forw.oid, &sys->this_node.nid))
		why = "this node does not hold the object";
	if (why) {
		sd_err("REPAIR_REPLICA %016" PRIx64 " from %s: %s",
		       req->rq.forw.oid, name, why);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

/* Read the whole object from src, piece by piece, into buf. */
static int fetch_object(const struct node_id *src, uint64_t oid, uint32_t epoch,
			uint8_t *buf, uint64_t obj_size)
{
	for (uint64_t off = 0; off < obj_size; off += CHECK_PIECE) {
		uint32_t len = MIN(obj_size - off, CHECK_PIECE);
		struct sd_req rq;
		struct sd_rsp rsp;
		int ret;

		sd_init_req(&rq, SD_OP_READ_PEER);
		rq.epoch = epoch;
		rq.data_length = len;
		rq.obj.oid = oid;
		rq.obj.offset = off;
		ret = peer_exec(src, &rq, NULL, buf + off, len, &rsp);
		if (ret != SD_RES_SUCCESS)
			return ret;
		if (rsp.data_length != len)
			return SD_RES_EIO; /* never store a short copy */
	}
	return SD_RES_SUCCESS;
}

/*
 * REPAIR_REPLICA: forw.oid, forw.addr, forw.port. Read the object from
 * that node with READ_PEER and store it here in place of this node's
 * replica, creating it if it is missing.
 */
int local_repair_replica(struct request *req)
{
	uint64_t oid = req->rq.forw.oid, obj_size;
	struct vnode_info *vi;
	struct node_id src;
	char name[64];
	uint8_t *buf;
	int ret;

	ret = check_oid("REPAIR_REPLICA", oid, &obj_size);
	if (ret != SD_RES_SUCCESS)
		return ret;
	if (obj_size > UINT32_MAX) {
		sd_err("REPAIR_REPLICA %016" PRIx64 ": object of %" PRIu64
		       " bytes is too large",
		       oid, obj_size);
		return SD_RES_INVALID_PARMS;
	}
	vi = get_vnode_info();
	if (!vi)
		return SD_RES_WAIT_FOR_JOIN;
	ret = check_repair(req, vi->ring, &src);
	if (ret != SD_RES_SUCCESS)
		goto out;

	buf = sd_alloc_buffer(obj_size);
	if (!buf) {
		ret = SD_RES_NO_MEM;
		goto out;
	}
	node_addr_to_str(&src, name, sizeof(name));
	ret = fetch_object(&src, oid, vi->epoch, buf, obj_size);
	if (ret == SD_RES_SUCCESS)
		ret = store_create_and_write(oid, 0, 0, obj_size, buf, obj_size,
					     NULL);
	if (ret == SD_RES_SUCCESS)
		sd_notice("repaired %016" PRIx64 " from %s at epoch %" PRIu32,
			  oid, name, vi->epoch);
	else
		sd_err("cannot repair %016" PRIx64 " from %s at epoch %" PRIu32
		       ": %s",
		       oid, name, vi->epoch, sd_strerror(ret));
	sd_free_buffer(buf, obj_size);
out:
	put_vnode_info(vi);
	return ret;
}
