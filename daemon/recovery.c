/*
 * Recovery after an epoch change (spec 7.3, with upstream's losses fixed).
 * Each node, on its own recovery thread, for every epoch in order:
 *
 *  1. Sweep: every live object the new ring no longer places here is moved
 *     to .stale, tagged with the previous epoch. I/O of the new epoch waits
 *     until the sweep is done (recovery_wait_swept), so a copy that missed
 *     writes while this node was not its holder is never read or written.
 *  2. List: the oids that every member stores, live or stale (a stale copy
 *     may be the only one left: the orphan case), plus our own. A member
 *     that cannot answer makes the list incomplete, and an incomplete
 *     recovery never reports completion.
 *  3. Fetch each oid the ring places here and we lack. The sources are the
 *     members that held it, newest epoch first (current holders, then the
 *     holders of each older epoch). A holder answers with its live copy or
 *     its newest stale one and says which (rsp.obj.offset = the stale
 *     copy's epoch, 0 for live). A live copy, or a stale copy at least as
 *     new as the epoch in which that node held the object, is taken at
 *     once; otherwise the newest stale copy seen is used at the end.
 *  4. When every object is here, broadcast COMPLETE_RECOVERY. Once every
 *     member reported for the current epoch, every node purges stale
 *     copies older than it. Nothing else ever deletes a stale copy (except
 *     the deletion of the object itself), so a copy is dropped only after
 *     its new holders have it.
 *
 * Client I/O for an object still missing here fetches it first
 * (recover_missing). A newer epoch supersedes the running recovery.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sheep.h"
#include "sheepdog/le.h"

enum {
	REC_PREPARING = 0, /* sweeping and building the list */
	REC_RECOVERING = 1,
	REC_NOTIFYING = 2,
};

struct recovery {
	struct work work;
	uint32_t epoch;     /* recovering for this epoch */
	uint64_t store_gen; /* a format after this start voids the recovery */
	uint32_t gen;       /* a later start (same epoch or not) supersedes */
	bool deferred;      /* recovery is disabled: wait for it to be enabled */
	bool complete;      /* every object is here: report it */
};

/* What STAT_RECOVERY shows and what on-demand recovery checks; rec_lock. */
static pthread_mutex_t rec_lock = PTHREAD_MUTEX_INITIALIZER;
static uint32_t rec_epoch; /* 0 when every object of the epoch is here */
static uint32_t rec_state;
static uint64_t rec_done, rec_total;
static atomic_uint rec_gen;
static struct work_queue *recovery_wq;

/* The sweep gate: I/O of epoch e waits until swept_epoch >= e. Object
 * creation by recovery holds sweep_lock for reading, the sweep for
 * writing, so no recovered copy can slip in behind a sweep. */
static pthread_mutex_t swept_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t swept_cond = PTHREAD_COND_INITIALIZER;
static uint32_t swept_epoch;
static pthread_rwlock_t sweep_lock = PTHREAD_RWLOCK_INITIALIZER;

/* COMPLETE_RECOVERY bookkeeping, main thread only. */
static uint32_t done_epoch;
static struct node_id *done_nodes;
static int nr_done_nodes;

#define SWEEP_WAIT_MS 10000
#define RETRY_FAILED_MS 2000
#define RETRY_FAILED_MAX_MS 60000
#define LIST_TRIES 20

static bool is_me(const struct sd_node *n)
{
	return node_id_eq(&n->nid, &sys->this_node.nid);
}

static uint32_t get_swept(void)
{
	uint32_t e;

	pthread_mutex_lock(&swept_mutex);
	e = __atomic_load_n(&swept_epoch, __ATOMIC_ACQUIRE);
	pthread_mutex_unlock(&swept_mutex);
	return e;
}

static void set_swept(uint32_t epoch)
{
	pthread_mutex_lock(&swept_mutex);
	if ((int32_t)(epoch - swept_epoch) > 0)
		__atomic_store_n(&swept_epoch, epoch, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&swept_cond);
	pthread_mutex_unlock(&swept_mutex);
}

/* Main thread. Not a maximum: after a format the epochs start again. */
void recovery_epoch_adopted(uint32_t epoch)
{
	pthread_mutex_lock(&swept_mutex);
	__atomic_store_n(&swept_epoch, epoch, __ATOMIC_RELEASE);
	pthread_cond_broadcast(&swept_cond);
	pthread_mutex_unlock(&swept_mutex);
	done_epoch = 0;
	nr_done_nodes = 0;
}

/*
 * Wait on cond (mutex held by the caller) until busy(epoch) is false, for
 * SWEEP_WAIT_MS at most: SD_RES_NEW_NODE_VER then, and the sender retries.
 */
static int wait_until_idle(pthread_cond_t *cond, pthread_mutex_t *mutex,
			   bool (*busy)(uint32_t), uint32_t epoch)
{
	struct timespec deadline;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += SWEEP_WAIT_MS / 1000;
	while (busy(epoch))
		if (pthread_cond_timedwait(cond, mutex, &deadline) == ETIMEDOUT)
			return busy(epoch) ? SD_RES_NEW_NODE_VER
					   : SD_RES_SUCCESS;
	return SD_RES_SUCCESS;
}

static bool not_swept(uint32_t epoch)
{
	return (int32_t)(epoch - __atomic_load_n(&swept_epoch,
					       __ATOMIC_ACQUIRE)) > 0;
}

/* Without waiting: whether the sweep of epoch is done. */
bool recovery_swept(uint32_t epoch)
{
	return !not_swept(epoch);
}

int recovery_wait_swept(uint32_t epoch)
{
	int ret;

	/* Every I/O comes here: no lock once the sweep is done. */
	if (!not_swept(epoch))
		return SD_RES_SUCCESS;
	pthread_mutex_lock(&swept_mutex);
	ret = wait_until_idle(&swept_cond, &swept_mutex, not_swept, epoch);
	pthread_mutex_unlock(&swept_mutex);
	return ret;
}

bool recovery_in_progress(void)
{
	bool r;

	pthread_mutex_lock(&rec_lock);
	r = rec_epoch != 0;
	pthread_mutex_unlock(&rec_lock);
	return r;
}

void recovery_get_state(bool *in_recovery, uint32_t *state, uint64_t *done,
			uint64_t *total)
{
	pthread_mutex_lock(&rec_lock);
	*in_recovery = rec_epoch != 0;
	*state = rec_state;
	*done = rec_done;
	*total = rec_total;
	pthread_mutex_unlock(&rec_lock);
}

static void set_progress(uint32_t state, uint64_t done, uint64_t total)
{
	pthread_mutex_lock(&rec_lock);
	rec_state = state;
	rec_done = done;
	rec_total = total;
	pthread_mutex_unlock(&rec_lock);
}

/* ---- epoch rings, from the local log or from a member ---- */

static int fetch_epoch(uint32_t epoch, struct sd_node *nodes)
{
	uint64_t gen = store_generation();
	struct vnode_info *vi = get_vnode_info();
	uint32_t len = SD_MAX_NODES * SD_NODE_SIZE + 8;
	uint8_t *buf = xmalloc(len);
	int nr = -1;

	for (int i = 0; vi && nr < 0 && i < vi->ring->nr_nodes; i++) {
		const struct sd_node *n = &vi->ring->nodes[i];
		struct sd_req rq;
		struct sd_rsp rsp;

		if (is_me(n))
			continue;
		sd_init_req(&rq, SD_OP_GET_EPOCH);
		rq.data_length = len;
		rq.obj.tgt_epoch = epoch;
		if (peer_exec(&n->nid, &rq, NULL, buf, len, &rsp) !=
			    SD_RES_SUCCESS ||
		    rsp.data_length < 8)
			continue;
		nr = (rsp.data_length - 8) / SD_NODE_SIZE;
		for (int k = 0; k < nr; k++)
			sd_node_decode(buf + k * SD_NODE_SIZE, &nodes[k]);
		/* Not into the log of a cluster formatted meanwhile. */
		if (store_gen_lock(gen)) {
			epoch_log_write(epoch, nodes, nr,
					get_le64(buf + nr * SD_NODE_SIZE));
			store_gen_unlock();
		}
	}
	free(buf);
	if (vi)
		put_vnode_info(vi);
	return nr;
}

struct sd_ring *recovery_epoch_ring(uint32_t epoch)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));
	int nr = epoch_log_read(epoch, nodes, NULL);
	struct sd_ring *ring = NULL;

	if (nr < 0)
		nr = fetch_epoch(epoch, nodes);
	if (nr > 0)
		ring = ring_build(nodes, nr);
	free(nodes);
	return ring;
}

/* A node that was away lacks the epochs it missed: the history that
 * `dog cluster info` shows and recovery walks must be in every store.
 * What it missed lies just below the epoch it rejoined at, so the walk
 * down stops at the first epoch it has. */
static void fill_epoch_log(uint32_t epoch)
{
	struct sd_node *nodes = xcalloc(SD_MAX_NODES, sizeof(*nodes));

	for (uint32_t e = epoch - 1; e > 0; e--) {
		if (epoch_log_read(e, nodes, NULL) >= 0)
			break;
		if (fetch_epoch(e, nodes) < 0)
			sd_warn("epoch %u: not in the log here nor on any "
				"member", e);
	}
	free(nodes);
}

/* Rings of epochs [1, epoch], loaded on first use. */
struct rings {
	uint32_t epoch;
	struct sd_ring **r;
	bool *tried;
};

static void rings_init(struct rings *rs, uint32_t epoch)
{
	rs->epoch = epoch;
	rs->r = xcalloc(epoch + 1, sizeof(*rs->r));
	rs->tried = xcalloc(epoch + 1, sizeof(*rs->tried));
}

static const struct sd_ring *rings_get(struct rings *rs, uint32_t e)
{
	if (e == 0 || e > rs->epoch)
		return NULL;
	if (!rs->tried[e]) {
		rs->tried[e] = true;
		rs->r[e] = recovery_epoch_ring(e);
	}
	return rs->r[e];
}

static void rings_free(struct rings *rs)
{
	for (uint32_t e = 0; e <= rs->epoch; e++)
		if (rs->r[e])
			ring_free(rs->r[e]);
	free(rs->r);
	free(rs->tried);
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

/* ---- fetching one object ---- */

/* Live copy or newest stale copy from n; *tag 0 for live. */
static int fetch_from(const struct sd_node *n, uint64_t oid, uint32_t epoch,
		      void *buf, uint32_t size, uint32_t *tag)
{
	struct sd_req rq;
	struct sd_rsp rsp;
	int ret;

	if (is_me(n))
		return store_read_any(oid, 0, size, buf, tag);
	sd_init_req(&rq, SD_OP_READ_PEER);
	rq.flags = SD_FLAG_CMD_RECOVERY;
	rq.epoch = epoch;
	rq.data_length = size;
	rq.obj.oid = oid;
	rq.obj.tgt_epoch = epoch;
	ret = peer_exec(&n->nid, &rq, NULL, buf, size, &rsp);
	if (ret == SD_RES_SUCCESS) {
		*tag = (uint32_t)rsp.obj.offset;
		if (rsp.data_length < size)
			memset((char *)buf + rsp.data_length, 0,
			       size - rsp.data_length);
	}
	return ret;
}

static bool asked_before(const struct node_id *asked, int nr,
			 const struct node_id *nid)
{
	for (int i = 0; i < nr; i++)
		if (node_id_eq(&asked[i], nid))
			return true;
	return false;
}

/*
 * Find the newest copy of oid among the members, walking back from epoch.
 * On success buf holds it. Each member is asked once, at the newest epoch
 * in which it held the object.
 */
static int find_copy(uint64_t oid, uint32_t epoch, struct rings *rs,
		     const struct sd_ring *cur, uint8_t copies, void *buf,
		     void *spare, uint32_t size, uint32_t *from_tag)
{
	struct node_id *asked = xcalloc(SD_MAX_NODES, sizeof(*asked));
	int nr_asked = 0, ret = SD_RES_NO_OBJ;
	uint32_t best_tag = 0;
	bool have_best = false;

	for (uint32_t e = epoch; e > 0; e--) {
		const struct sd_ring *ring = e == epoch ? cur : rings_get(rs, e);
		int idx[SD_MAX_COPIES], nr;

		if (!ring)
			continue;
		nr = ring_oid_to_nodes(ring, oid, copies, idx);
		for (int i = 0; i < nr; i++) {
			const struct sd_node *n = &ring->nodes[idx[i]];
			uint32_t tag;
			int r;

			if (ring_find_node(cur, &n->nid) < 0 ||
			    asked_before(asked, nr_asked, &n->nid))
				continue;
			asked[nr_asked++] = n->nid;
			r = fetch_from(n, oid, epoch, have_best ? spare : buf,
				       size, &tag);
			if (r != SD_RES_SUCCESS) {
				if (r != SD_RES_NO_OBJ)
					ret = r;
				continue;
			}
			if (have_best && tag && (int32_t)(tag - best_tag) <= 0)
				continue;
			if (have_best)
				memcpy(buf, spare, size);
			have_best = true;
			best_tag = tag;
			/* Live, or stale but current when n held it. */
			if (!tag || (int32_t)(tag - e) >= 0) {
				free(asked);
				*from_tag = tag;
				return SD_RES_SUCCESS;
			}
		}
	}
	free(asked);
	if (!have_best)
		return ret;
	*from_tag = best_tag;
	return SD_RES_SUCCESS;
}

static bool family_all_deleted(uint32_t vid)
{
	uint32_t *live;
	size_t nr;

	if (!vdi_is_deleted(vid))
		return false;
	vdi_family(vid, &live, &nr);
	free(live);
	return nr == 0;
}

/*
 * Make oid present here for epoch. SD_RES_SUCCESS if it is here now; NO_OBJ
 * if no member has any copy; AGAIN if the epoch moved on meanwhile.
 */
static int recover_one(uint64_t oid, uint32_t epoch, struct rings *rs,
		       const struct sd_ring *cur, uint64_t gen)
{
	uint8_t copies, policy, shift;
	uint64_t size;
	uint32_t tag = 0;
	void *buf, *spare;
	int ret;

	if (store_exist(oid, 0))
		return SD_RES_SUCCESS;
	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	size = oid_obj_size(oid, shift);
	if (size > SD_MAX_PAYLOAD)
		return SD_RES_INVALID_PARMS;
	buf = sd_alloc_buffer(size);
	spare = sd_alloc_buffer(size);
	if (!buf || !spare) {
		sd_free_buffer(buf, size);
		sd_free_buffer(spare, size);
		return SD_RES_NO_MEM;
	}
	ret = find_copy(oid, epoch, rs, cur, copies, buf, spare, size, &tag);
	/* No member has it live, only set-aside copies, and its VDI and
	 * every VDI that could share its objects were deleted: it was
	 * reclaimed while their node was away. It stays gone rather than
	 * coming back as garbage nobody frees. */
	if (ret == SD_RES_SUCCESS && tag && !is_vdi_obj(oid) &&
	    family_all_deleted(oid_to_vid(oid))) {
		sd_info("epoch %u: %016" PRIx64 " belongs to a deleted VDI and "
			"has no live copy: not recovered", epoch, oid);
		goto out;
	}
	if (ret == SD_RES_SUCCESS) {
		pthread_rwlock_rdlock(&sweep_lock);
		if (sys_epoch() != epoch || get_swept() != epoch)
			ret = SD_RES_AGAIN;
		else
			ret = store_create_if_absent(oid, buf, size, gen);
		pthread_rwlock_unlock(&sweep_lock);
		if (ret == SD_RES_SUCCESS && tag)
			sd_notice("epoch %u: %016" PRIx64 " recovered from a "
				  "copy of epoch %u", epoch, oid, tag);
	}
out:
	sd_free_buffer(buf, size);
	sd_free_buffer(spare, size);
	return ret;
}

/*
 * A holder asked for an object it lacks fetches it first: while recovery
 * runs (or is disabled), and also after it, when a copy went missing (a
 * disk error, a file removed by hand) - the other holders still have it.
 */
int recover_missing(uint64_t oid)
{
	struct vnode_info *vi;
	struct rings rs;
	uint32_t epoch = sys_epoch();
	int ret;

	if (sys->gateway_only)
		return SD_RES_NO_OBJ;
	vi = get_vnode_info();
	if (!vi || vi->epoch != epoch || get_swept() != epoch) {
		ret = SD_RES_AGAIN;
	} else if (!ring_places_on_me(vi->ring, oid)) {
		ret = SD_RES_NO_OBJ;
	} else {
		rings_init(&rs, epoch);
		ret = recover_one(oid, epoch, &rs, vi->ring,
				  store_generation());
		rings_free(&rs);
	}
	if (vi)
		put_vnode_info(vi);
	if (ret == SD_RES_SUCCESS)
		return store_exist(oid, 0) ? SD_RES_SUCCESS : SD_RES_NO_OBJ;
	/* Only "no member has any copy" is final. A source that is not
	 * ready yet, or an epoch moving on, is not: the sender retries. */
	return ret == SD_RES_NO_OBJ ? ret : SD_RES_NEW_NODE_VER;
}

int recover_object_now(uint64_t oid)
{
	return recover_missing(oid);
}

/* ---- one epoch's recovery ---- */

static bool superseded(const struct recovery *r)
{
	return sys_epoch() != r->epoch ||
	       store_generation() != r->store_gen ||
	       atomic_load(&rec_gen) != r->gen;
}

/* Step 1: retire every local copy the ring of epoch no longer places here. */
static void sweep(uint32_t epoch, const struct sd_ring *ring, uint64_t gen)
{
	uint64_t *oids = NULL;
	size_t nr = 0, moved = 0;
	bool held;

	pthread_rwlock_wrlock(&sweep_lock);
	/* After a format there is nothing of the old cluster to sweep. */
	held = store_gen_lock(gen);
	if (held)
		store_list(&oids, &nr);
	for (size_t i = 0; i < nr; i++) {
		if (ring && ring_places_on_me(ring, oids[i]))
			continue;
		if (store_stale_one(oids[i], epoch - 1) == SD_RES_SUCCESS)
			moved++;
	}
	free(oids);
	if (held) {
		set_swept(epoch);
		store_gen_unlock();
	}
	pthread_rwlock_unlock(&sweep_lock);
	if (moved)
		sd_info("epoch %u: %zu objects no longer held here moved to "
			".stale", epoch, moved);
}

static int obj_list_from(const struct sd_node *node, uint64_t **out,
			 size_t *nr_out)
{
	uint32_t len = 1 << 20;
	struct sd_req rq;
	struct sd_rsp rsp;
	uint8_t *buf;
	int ret;

	for (;;) {
		buf = xmalloc(len);
		sd_init_req(&rq, SD_OP_GET_OBJ_LIST);
		rq.data_length = len;
		ret = peer_exec(&node->nid, &rq, NULL, buf, len, &rsp);
		if (ret != SD_RES_BUFFER_SMALL || len >= SD_MAX_PAYLOAD)
			break;
		free(buf);
		len = MIN((uint64_t)len * 4, (uint64_t)SD_MAX_PAYLOAD);
	}
	if (ret == SD_RES_SUCCESS) {
		size_t k = rsp.data_length / 8;

		*out = xrealloc(*out, (*nr_out + k + 1) * 8);
		for (size_t j = 0; j < k; j++)
			(*out)[(*nr_out)++] = get_le64(buf + j * 8);
	}
	free(buf);
	return ret;
}

/* Step 2: every oid any member stores, live or stale. False if a member
 * could not tell us (its objects may be missing from the list). */
static bool collect_oids(const struct recovery *r, const struct sd_ring *ring,
			 uint64_t **out, size_t *nr)
{
	uint64_t *all = NULL, *mine;
	size_t n = 0, nr_mine;
	bool complete = true;

	for (int i = 0; i < ring->nr_nodes; i++) {
		const struct sd_node *node = &ring->nodes[i];
		int ret = SD_RES_NETWORK_ERROR;

		if (is_me(node) || !node->nr_vnodes)
			continue;
		for (int t = 0; t < LIST_TRIES && !superseded(r); t++) {
			ret = obj_list_from(node, &all, &n);
			if (ret == SD_RES_SUCCESS)
				break;
			usleep(250 * 1000);
		}
		if (ret != SD_RES_SUCCESS && !superseded(r)) {
			char a[64];

			sd_err("epoch %u: cannot list the objects of %s: %s",
			       r->epoch,
			       node_addr_to_str(&node->nid, a, sizeof(a)),
			       sd_strerror(ret));
			complete = false;
		}
	}
	store_list_all(&mine, &nr_mine);
	all = xrealloc(all, (n + nr_mine + 1) * 8);
	if (nr_mine)
		memcpy(all + n, mine, nr_mine * 8);
	n += nr_mine;
	free(mine);
	sort_unique_u64(all, &n);
	*out = all;
	*nr = n;
	return complete;
}

/* Step 3 for a list: the oids still missing are left in oids, *nr updated. */
static void recover_list(struct recovery *r, struct rings *rs,
			 const struct sd_ring *ring, uint64_t *oids, size_t *nr,
			 uint64_t *done, uint64_t total, bool report)
{
	size_t left = 0;

	for (size_t i = 0; i < *nr; i++) {
		int ret;

		if (superseded(r)) {
			oids[left++] = oids[i];
			continue;
		}
		recovery_throttle_wait();
		ret = recover_one(oids[i], r->epoch, rs, ring, r->store_gen);
		if (ret == SD_RES_SUCCESS) {
			set_progress(REC_RECOVERING, ++*done, total);
			continue;
		}
		oids[left++] = oids[i];
		if (report)
			sd_err("epoch %u: cannot recover %016" PRIx64 ": %s",
			       r->epoch, oids[i],
			       ret == SD_RES_NO_OBJ ? "no copy on any member"
						    : sd_strerror(ret));
	}
	*nr = left;
}

static void recovery_fn(struct work *w)
{
	struct recovery *r = container_of(w, struct recovery, work);
	struct vnode_info *vi;
	struct sd_ring *ring = recovery_epoch_ring(r->epoch);
	struct rings rs;
	uint64_t *oids = NULL, done = 0;
	size_t nr = 0, want = 0;
	bool listed;

	/* The sweep runs for every epoch, even a superseded one: a copy
	 * that was not held in some epoch may have missed its writes. The
	 * ring needs each VDI's copies, hence the VDI states first. */
	vdi_states_complete();
	sweep(r->epoch, ring, r->store_gen);
	fill_epoch_log(r->epoch);
	if (ring)
		ring_free(ring);
	vi = get_vnode_info();
	if (!vi || superseded(r) || vi->epoch != r->epoch)
		goto out;
	if (__atomic_load_n(&sys->disable_recovery, __ATOMIC_ACQUIRE)) {
		/* Requests still fetch what they need (recover_missing). */
		r->deferred = true;
		goto out;
	}
	set_progress(REC_PREPARING, 0, 0);
	listed = collect_oids(r, vi->ring, &oids, &nr);
	for (size_t i = 0; i < nr; i++)
		if (ring_places_on_me(vi->ring, oids[i]) &&
		    !store_exist(oids[i], 0))
			oids[want++] = oids[i];
	nr = want;
	set_progress(REC_RECOVERING, 0, want);
	rings_init(&rs, r->epoch);
	recover_list(r, &rs, vi->ring, oids, &nr, &done, want, true);
	/* What failed may appear when a member finishes its own recovery
	 * (an object created after our list, or a source still sweeping):
	 * retry until it works or the epoch moves on. */
	for (uint32_t pause = RETRY_FAILED_MS; nr && !superseded(r);
	     pause = MIN(pause * 2, RETRY_FAILED_MAX_MS)) {
		/* Sleep in steps, so that a new epoch is not kept waiting. */
		for (uint32_t t = 0; t < pause && !superseded(r); t += 100)
			usleep(100 * 1000);
		recover_list(r, &rs, vi->ring, oids, &nr, &done, want, false);
	}
	rings_free(&rs);
	if (superseded(r))
		goto out;
	if (!listed) {
		sd_err("epoch %u: recovery incomplete, not every member listed "
		       "its objects; stale copies are kept", r->epoch);
		goto out;
	}
	sd_notice("epoch %u: recovery done, %" PRIu64 " objects fetched",
		  r->epoch, done);
	set_progress(REC_NOTIFYING, done, want);
	r->complete = true;
out:
	free(oids);
	if (vi)
		put_vnode_info(vi);
}

static void recovery_done(struct work *w)
{
	struct recovery *r = container_of(w, struct recovery, work);

	if (r->deferred)
		sd_notice("epoch %u: recovery is disabled, objects are fetched "
			  "only on demand until it is enabled", r->epoch);
	if (r->complete && sys_epoch() == r->epoch) {
		pthread_mutex_lock(&rec_lock);
		if (rec_epoch == r->epoch)
			rec_epoch = 0;
		pthread_mutex_unlock(&rec_lock);
		recovery_report_complete(r->epoch);
	}
	free(r);
}

void recovery_resume(void)
{
	uint32_t e;

	pthread_mutex_lock(&rec_lock);
	e = rec_epoch;
	pthread_mutex_unlock(&rec_lock);
	if (e && e == sys_epoch())
		recovery_start(e);
}

void recovery_start(uint32_t epoch)
{
	struct recovery *r;

	if (sys->gateway_only) {
		set_swept(epoch);
		return;
	}
	if (!recovery_wq)
		recovery_wq = create_work_queue("recovery", 1);
	r = xzalloc(sizeof(*r));
	r->epoch = epoch;
	r->store_gen = store_generation();
	r->gen = atomic_fetch_add(&rec_gen, 1) + 1;
	r->work.fn = recovery_fn;
	r->work.done = recovery_done;
	pthread_mutex_lock(&rec_lock);
	rec_epoch = epoch;
	rec_state = REC_PREPARING;
	rec_done = rec_total = 0;
	pthread_mutex_unlock(&rec_lock);
	queue_work(recovery_wq, &r->work);
}

/* ---- completion (COMPLETE_RECOVERY main phase, every node) ---- */

static void purge_fn(struct work *w)
{
	uint32_t *epoch = (uint32_t *)(w + 1);
	size_t n;

	/* Objects created after the purge decision are live, not stale;
	 * only copies tagged before the completed epoch go. */
	n = store_purge_stale(*epoch);
	if (n)
		sd_info("epoch %u complete on every node: %zu stale copies "
			"removed", *epoch, n);
}

static void purge_done(struct work *w)
{
	free(w);
}

static void purge_stale(uint32_t epoch)
{
	struct work *w = xzalloc(sizeof(*w) + sizeof(uint32_t));

	*(uint32_t *)(w + 1) = epoch;
	w->fn = purge_fn;
	w->done = purge_done;
	queue_work(recovery_wq ? recovery_wq : bg_wq, w);
}

int cluster_complete_recovery_main(const struct sd_req *req,
				   struct sd_rsp *rsp, void *data,
				   const struct sd_node *sender)
{
	uint32_t epoch = req->obj.tgt_epoch;
	struct vnode_info *vi;
	int storage = 0, reported = 0;

	if (epoch != sys_epoch())
		return SD_RES_SUCCESS; /* a newer epoch already runs */
	if (done_epoch != epoch) {
		done_epoch = epoch;
		nr_done_nodes = 0;
		free(done_nodes);
		done_nodes = xcalloc(SD_MAX_NODES, sizeof(*done_nodes));
	}
	if (!asked_before(done_nodes, nr_done_nodes, &sender->nid) &&
	    nr_done_nodes < SD_MAX_NODES)
		done_nodes[nr_done_nodes++] = sender->nid;
	vi = get_vnode_info();
	if (!vi || vi->epoch != epoch)
		goto out;
	for (int i = 0; i < vi->ring->nr_nodes; i++) {
		const struct sd_node *n = &vi->ring->nodes[i];

		if (!n->nr_vnodes)
			continue;
		storage++;
		if (asked_before(done_nodes, nr_done_nodes, &n->nid))
			reported++;
	}
	if (storage && reported == storage) {
		sd_notice("epoch %u: every node has recovered", epoch);
		if (!sys->gateway_only)
			purge_stale(epoch);
	}
out:
	if (vi)
		put_vnode_info(vi);
	return SD_RES_SUCCESS;
}

/* ---- the write barrier at epoch changes ----
 *
 * A write accepted under epoch e may still be running when epoch e+1
 * starts. A node recovering the object in e+1 must not copy it from here
 * before that write has landed, or the acknowledged write would be missing
 * from the new copy. So object mutations register the epoch they run
 * under, and a recovery read for epoch E first waits until no mutation of
 * an earlier epoch is in flight here (new ones are refused: our epoch is
 * E already, peer requests of a newer epoch having been parked).
 */
#define IO_SLOTS 8

static pthread_mutex_t io_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t io_cond = PTHREAD_COND_INITIALIZER;
static struct {
	uint32_t epoch;
	uint32_t count;
} io_inflight[IO_SLOTS];

int io_epoch_enter(uint32_t epoch)
{
	int ret = SD_RES_SUCCESS, free_slot = -1, i;

	pthread_mutex_lock(&io_mutex);
	if (epoch != sys_epoch()) {
		ret = (int32_t)(epoch - sys_epoch()) < 0 ? SD_RES_OLD_NODE_VER
							 : SD_RES_NEW_NODE_VER;
		goto out;
	}
	for (i = 0; i < IO_SLOTS; i++) {
		if (io_inflight[i].count && io_inflight[i].epoch == epoch)
			break;
		if (!io_inflight[i].count && free_slot < 0)
			free_slot = i;
	}
	if (i == IO_SLOTS) {
		if (free_slot < 0) { /* eight epochs in flight: wait a bit */
			ret = SD_RES_NEW_NODE_VER;
			goto out;
		}
		i = free_slot;
		io_inflight[i].epoch = epoch;
	}
	io_inflight[i].count++;
out:
	pthread_mutex_unlock(&io_mutex);
	return ret;
}

void io_epoch_exit(uint32_t epoch)
{
	pthread_mutex_lock(&io_mutex);
	for (int i = 0; i < IO_SLOTS; i++) {
		if (io_inflight[i].count && io_inflight[i].epoch == epoch) {
			if (--io_inflight[i].count == 0)
				pthread_cond_broadcast(&io_cond);
			break;
		}
	}
	pthread_mutex_unlock(&io_mutex);
}

static bool older_inflight(uint32_t epoch)
{
	for (int i = 0; i < IO_SLOTS; i++)
		if (io_inflight[i].count &&
		    (int32_t)(io_inflight[i].epoch - epoch) < 0)
			return true;
	return false;
}

int io_epoch_drain(uint32_t epoch)
{
	int ret;

	pthread_mutex_lock(&io_mutex);
	ret = wait_until_idle(&io_cond, &io_mutex, older_inflight, epoch);
	pthread_mutex_unlock(&io_mutex);
	return ret;
}
