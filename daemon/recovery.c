/*
 * Recovery after an epoch change: each node works out which objects the new
 * ring places on it, fetches the ones it lacks from the nodes that held them
 * in the previous epoch (which have the latest version), and only then moves
 * the objects it no longer holds to .stale. While this runs, a client
 * request for a missing object recovers that object first
 * (recover_object_now), so no request ever sees stale or missing data.
 *
 * This is the first cut: one epoch back, replicated objects only; a newer
 * epoch supersedes a running recovery, which the next one redoes.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheep.h"
#include "sheepdog/le.h"

struct recovery {
	struct work work;
	uint32_t old_epoch, new_epoch;
	uint64_t store_gen; /* a format after this start voids the recovery */
	bool deferred;      /* recovery is disabled: wait for it to be enabled */
};

static atomic_uint recovering_epoch; /* 0 when idle */
static atomic_uint prev_epoch;
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static struct work_queue *recovery_wq;

bool recovery_in_progress(void)
{
	return atomic_load(&recovering_epoch) != 0;
}

static struct sd_ring *epoch_ring(uint32_t epoch)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	int nr = epoch_log_read(epoch, nodes, NULL);
	struct sd_ring *ring = NULL;

	if (nr > 0)
		ring = ring_build(nodes, nr);
	free(nodes);
	return ring;
}

static bool is_me(const struct sd_node *n)
{
	return node_id_eq(&n->nid, &sys->this_node.nid);
}

static bool ring_places_on_me(const struct sd_ring *ring, uint64_t oid)
{
	int idx[SD_MAX_COPIES];
	int nr = ring_oid_to_nodes(ring, oid, get_obj_copies(oid), idx);

	for (int i = 0; i < nr; i++)
		if (is_me(&ring->nodes[idx[i]]))
			return true;
	return false;
}

/* Read the whole object from a node that held it in old_epoch. */
static int fetch_from(const struct sd_node *n, uint64_t oid, uint32_t old_epoch,
		      uint32_t cur_epoch, void *buf, uint32_t size)
{
	struct sd_req rq;
	struct sd_rsp rsp;

	sd_init_req(&rq, SD_OP_READ_PEER);
	rq.flags = SD_FLAG_CMD_RECOVERY;
	rq.epoch = cur_epoch;
	rq.data_length = size;
	rq.obj.oid = oid;
	rq.obj.tgt_epoch = old_epoch;
	return peer_exec(&n->nid, &rq, NULL, buf, size, &rsp);
}

static int recover_one(uint64_t oid, uint32_t old_epoch, uint32_t cur_epoch,
		       const struct sd_ring *old_ring,
		       const struct sd_ring *cur_ring, uint64_t gen)
{
	uint8_t copies, policy, shift;
	uint64_t size;
	int idx[SD_MAX_COPIES], nr, ret = SD_RES_NO_OBJ;
	void *buf;

	if (store_exist(oid, 0))
		return SD_RES_SUCCESS;
	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	size = oid_obj_size(oid, shift);
	if (size > SD_MAX_PAYLOAD)
		return SD_RES_INVALID_PARMS;
	buf = sd_alloc_buffer(size);
	if (!buf)
		return SD_RES_NO_MEM;
	/* The previous holders first; then the current ones (an object
	 * created in the new epoch already lives there). */
	for (int pass = 0; pass < 2 && ret != SD_RES_SUCCESS; pass++) {
		const struct sd_ring *ring = pass ? cur_ring : old_ring;

		if (!ring)
			continue;
		nr = ring_oid_to_nodes(ring, oid, copies, idx);
		for (int i = 0; i < nr && ret != SD_RES_SUCCESS; i++) {
			const struct sd_node *n = &ring->nodes[idx[i]];

			if (is_me(n) || ring_find_node(cur_ring, &n->nid) < 0)
				continue;
			ret = fetch_from(n, oid, old_epoch, cur_epoch, buf,
					 size);
		}
	}
	if (ret == SD_RES_SUCCESS)
		ret = store_create_if_absent(oid, buf, size, gen);
	sd_free_buffer(buf, size);
	return ret;
}

bool recover_missing(uint64_t oid)
{
	return recovery_in_progress() &&
	       recover_object_now(oid) == SD_RES_SUCCESS && store_exist(oid, 0);
}

int recover_object_now(uint64_t oid)
{
	uint32_t old = atomic_load(&prev_epoch);
	struct vnode_info *vi = get_vnode_info();
	struct sd_ring *old_ring;
	int ret;

	if (!vi || !old)
		return SD_RES_NO_OBJ;
	old_ring = epoch_ring(old);
	ret = recover_one(oid, old, vi->epoch, old_ring, vi->ring,
			  store_generation());
	if (old_ring)
		ring_free(old_ring);
	put_vnode_info(vi);
	return ret;
}

/* Every oid stored by the members of the new epoch (and here). */
static int collect_oids(const struct sd_ring *ring, uint64_t **out, size_t *nr)
{
	size_t cap = 0, n = 0;
	uint64_t *all = NULL, *mine;
	size_t nr_mine;

	for (int i = 0; i < ring->nr_nodes; i++) {
		const struct sd_node *node = &ring->nodes[i];
		uint32_t len = 1 << 20;
		uint8_t *buf;
		struct sd_req rq;
		struct sd_rsp rsp;
		int ret;

		if (is_me(node) || !node->nr_vnodes)
			continue;
		for (;;) {
			buf = xmalloc(len);
			sd_init_req(&rq, SD_OP_GET_OBJ_LIST);
			rq.data_length = len;
			ret = peer_exec(&node->nid, &rq, NULL, buf, len, &rsp);
			if (ret != SD_RES_BUFFER_SMALL || len >= SD_MAX_PAYLOAD)
				break;
			free(buf);
			len *= 4;
		}
		if (ret == SD_RES_SUCCESS) {
			size_t k = rsp.data_length / 8;

			if (n + k > cap) {
				cap = (n + k) * 2;
				all = xrealloc(all, cap * 8);
			}
			for (size_t j = 0; j < k; j++)
				all[n++] = get_le64(buf + j * 8);
		}
		free(buf);
	}
	store_list(&mine, &nr_mine);
	all = xrealloc(all, (n + nr_mine + 1) * 8);
	if (nr_mine)
		memcpy(all + n, mine, nr_mine * 8);
	n += nr_mine;
	free(mine);
	*out = all;
	*nr = n;
	return 0;
}

static bool superseded(const struct recovery *r)
{
	return sys_epoch() != r->new_epoch ||
	       store_generation() != r->store_gen;
}

static void recovery_fn(struct work *w)
{
	struct recovery *r = container_of(w, struct recovery, work);
	struct vnode_info *vi = get_vnode_info();
	struct sd_ring *old_ring = epoch_ring(r->old_epoch);
	uint64_t *oids = NULL;
	size_t nr = 0, nr_failed = 0, nr_fetched = 0;

	if (!vi || vi->epoch != r->new_epoch)
		goto out;
	if (__atomic_load_n(&sys->disable_recovery, __ATOMIC_ACQUIRE)) {
		/* Requests still fetch what they need (recover_missing). */
		r->deferred = true;
		goto out;
	}
	collect_oids(vi->ring, &oids, &nr);
	sort_unique_u64(oids, &nr);
	for (size_t i = 0; i < nr && !superseded(r); i++) {
		int ret;

		if (!ring_places_on_me(vi->ring, oids[i]) ||
		    store_exist(oids[i], 0))
			continue;
		ret = recover_one(oids[i], r->old_epoch, r->new_epoch,
				  old_ring, vi->ring, r->store_gen);
		if (ret == SD_RES_SUCCESS) {
			nr_fetched++;
		} else {
			nr_failed++;
			sd_err("epoch %u: cannot recover %016" PRIx64 ": %s",
			       r->new_epoch, oids[i], sd_strerror(ret));
		}
	}
	if (superseded(r) || nr_failed)
		goto out;
	/* Everything this node must hold is here: retire the rest. */
	free(oids);
	store_list(&oids, &nr);
	for (size_t i = 0; i < nr; i++)
		if (!ring_places_on_me(vi->ring, oids[i]))
			store_stale_one(oids[i], r->old_epoch);
	sd_notice("epoch %u: recovery done, %zu objects fetched",
		  r->new_epoch, nr_fetched);
out:
	free(oids);
	if (old_ring)
		ring_free(old_ring);
	put_vnode_info(vi);
}

static void recovery_done(struct work *w)
{
	struct recovery *r = container_of(w, struct recovery, work);

	pthread_mutex_lock(&rec_lock);
	if (atomic_load(&recovering_epoch) == r->new_epoch && !r->deferred)
		atomic_store(&recovering_epoch, 0);
	pthread_mutex_unlock(&rec_lock);
	if (r->deferred)
		sd_notice("epoch %u: recovery is disabled, objects are fetched "
			  "only on demand until it is enabled", r->new_epoch);
	free(r);
}

void recovery_resume(void)
{
	uint32_t e = atomic_load(&recovering_epoch);

	if (e)
		recovery_start(atomic_load(&prev_epoch), e);
}

void recovery_start(uint32_t old_epoch, uint32_t new_epoch)
{
	struct recovery *r;

	if (sys->gateway_only)
		return;
	if (!recovery_wq)
		recovery_wq = create_work_queue("recovery", 1);
	r = xzalloc(sizeof(*r));
	r->old_epoch = old_epoch;
	r->new_epoch = new_epoch;
	r->store_gen = store_generation();
	r->work.fn = recovery_fn;
	r->work.done = recovery_done;
	pthread_mutex_lock(&rec_lock);
	atomic_store(&prev_epoch, old_epoch);
	atomic_store(&recovering_epoch, new_epoch);
	pthread_mutex_unlock(&rec_lock);
	queue_work(recovery_wq, &r->work);
}

void recovery_get_state(bool *in_recovery, uint32_t *state, uint64_t *done,
			uint64_t *total)
{
	*in_recovery = recovery_in_progress();
	*state = 1;
	*done = 0;
	*total = 0;
}
