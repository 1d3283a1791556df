/*
 * The VDI namespace (spec 4.3-4.5): the in-use and deleted bitmaps, the
 * per-VDI state (copies, policy, object size, parent, lock), lookup of a
 * name by FNV-1a hash with linear probing, and the work and main phases of
 * the cluster operations that create, delete, look up and lock VDIs.
 *
 * Work phases run on the cluster work thread under the cluster-wide block
 * and read inodes through the gateway; main phases run on every node, in
 * order, and only change this node's in-memory state.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "nbd_export.h"
#include "sheep.h"
#include "sheepdog/hash.h"
#include "sheepdog/le.h"

static pthread_rwlock_t vdi_lock = PTHREAD_RWLOCK_INITIALIZER;
static uint8_t *in_use_bitmap, *deleted_bitmap;

/* Open-addressing table of VDI states keyed by vid (vid 0 = empty). */
static struct vdi_state *states;
static size_t states_cap, states_nr;

static bool test_bit_(const uint8_t *bm, uint32_t n)
{
	return bm[n >> 3] & (1U << (n & 7));
}

static void set_bit_(uint8_t *bm, uint32_t n)
{
	bm[n >> 3] |= 1U << (n & 7);
}

static struct vdi_state *state_find(uint32_t vid)
{
	if (!states_cap)
		return NULL;
	for (size_t i = vid & (states_cap - 1);; i = (i + 1) & (states_cap - 1)) {
		if (states[i].vid == vid)
			return &states[i];
		if (!states[i].vid)
			return NULL;
	}
}

/* A copy of vid's state, taken under the lock; false if vid is unknown. */
static bool state_get(uint32_t vid, struct vdi_state *out)
{
	struct vdi_state *s;

	pthread_rwlock_rdlock(&vdi_lock);
	s = state_find(vid);
	if (s)
		*out = *s;
	pthread_rwlock_unlock(&vdi_lock);
	return s != NULL;
}

static struct vdi_state *state_insert(uint32_t vid)
{
	struct vdi_state *s = state_find(vid);

	if (s)
		return s;
	if ((states_nr + 1) * 2 > states_cap) {
		size_t old_cap = states_cap;
		struct vdi_state *old = states;

		states_cap = states_cap ? states_cap * 2 : 256;
		states = xcalloc(states_cap, sizeof(*states));
		states_nr = 0;
		for (size_t i = 0; i < old_cap; i++)
			if (old[i].vid)
				*state_insert(old[i].vid) = old[i];
		free(old);
	}
	for (size_t i = vid & (states_cap - 1);; i = (i + 1) & (states_cap - 1)) {
		if (!states[i].vid) {
			memset(&states[i], 0, sizeof(states[i]));
			states[i].vid = vid;
			states[i].lock_state = 1;
			states_nr++;
			return &states[i];
		}
	}
}

/*
 * A starting node knows only the inodes in its own store; the rest of the
 * VDI states come from the other members (group.c fetches them in the
 * background). Until every fetch is done, the bitmaps and families may be
 * incomplete: VDI operations wait for them, and reclamation, which must
 * never miss a referrer, is skipped if they could not be completed.
 */
static pthread_mutex_t sync_mutex = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t sync_cond = PTHREAD_COND_INITIALIZER;
static int syncs_pending;
static bool sync_failed;

void vdi_sync_started(void)
{
	pthread_mutex_lock(&sync_mutex);
	syncs_pending++;
	pthread_mutex_unlock(&sync_mutex);
}

void vdi_sync_finished(bool ok)
{
	pthread_mutex_lock(&sync_mutex);
	syncs_pending--;
	if (!ok)
		sync_failed = true;
	pthread_cond_broadcast(&sync_cond);
	pthread_mutex_unlock(&sync_mutex);
}

#define VDI_SYNC_WAIT_SEC 30

bool vdi_states_complete(void)
{
	struct timespec deadline;
	bool complete;

	clock_gettime(CLOCK_REALTIME, &deadline);
	deadline.tv_sec += VDI_SYNC_WAIT_SEC;
	pthread_mutex_lock(&sync_mutex);
	while (syncs_pending > 0 &&
	       pthread_cond_timedwait(&sync_cond, &sync_mutex, &deadline) == 0)
		;
	complete = syncs_pending == 0 && !sync_failed;
	pthread_mutex_unlock(&sync_mutex);
	return complete;
}

int vdi_init(void)
{
	in_use_bitmap = xzalloc(SD_VDI_BITMAP_SIZE);
	deleted_bitmap = xzalloc(SD_VDI_BITMAP_SIZE);
	return 0;
}

void vdi_clear_all(void)
{
	pthread_rwlock_wrlock(&vdi_lock);
	memset(in_use_bitmap, 0, SD_VDI_BITMAP_SIZE);
	memset(deleted_bitmap, 0, SD_VDI_BITMAP_SIZE);
	free(states);
	states = NULL;
	states_cap = states_nr = 0;
	pthread_rwlock_unlock(&vdi_lock);
}

void vdi_get_attrs(uint32_t vid, uint8_t *copies, uint8_t *policy,
		   uint8_t *shift)
{
	struct vdi_state s;

	if (!state_get(vid, &s)) {
		sys_cluster_defaults(copies, policy, shift, NULL);
		return;
	}
	*copies = s.nr_copies;
	*policy = s.copy_policy;
	*shift = s.block_size_shift;
}

int get_obj_copies(uint64_t oid)
{
	uint8_t copies, policy, shift;

	vdi_get_attrs(oid_to_vid(oid), &copies, &policy, &shift);
	return copies;
}

static void register_vdi(uint32_t vid, uint8_t copies, uint8_t policy,
			 uint8_t shift, uint32_t parent, bool snapshot,
			 bool deleted)
{
	struct vdi_state *s;

	pthread_rwlock_wrlock(&vdi_lock);
	set_bit_(in_use_bitmap, vid);
	if (deleted)
		set_bit_(deleted_bitmap, vid);
	s = state_insert(vid);
	s->nr_copies = copies;
	s->copy_policy = policy;
	s->block_size_shift = shift;
	s->parent_vid = parent;
	s->snapshot = s->snapshot || snapshot;
	s->deleted = s->deleted || deleted;
	pthread_rwlock_unlock(&vdi_lock);
}

int vdi_scan_local(void)
{
	uint64_t *oids;
	size_t nr;
	uint8_t buf[SD_INODE_HEADER_SIZE];

	store_list(&oids, &nr);
	for (size_t i = 0; i < nr; i++) {
		struct sd_inode_header h;

		if (!is_vdi_obj(oids[i]) ||
		    store_read(oids[i], 0, 0, sizeof(buf), buf) != SD_RES_SUCCESS)
			continue;
		sd_inode_header_decode(buf, &h);
		if (h.vdi_id != oid_to_vid(oids[i])) {
			sd_err("inode %016" PRIx64 " claims vid %" PRIx32
			       ", ignoring it", oids[i], h.vdi_id);
			continue;
		}
		register_vdi(h.vdi_id, h.nr_copies, h.copy_policy,
			     h.block_size_shift, h.parent_vdi_id,
			     inode_is_snapshot(&h), h.name[0] == '\0');
	}
	free(oids);
	return 0;
}

size_t vdi_state_snapshot(uint8_t **buf)
{
	size_t n = 0;

	pthread_rwlock_rdlock(&vdi_lock);
	*buf = xmalloc(states_nr * SD_VDI_STATE_SIZE + 1);
	for (size_t i = 0; i < states_cap; i++)
		if (states[i].vid)
			vdi_state_encode(&states[i],
					 *buf + n++ * SD_VDI_STATE_SIZE);
	pthread_rwlock_unlock(&vdi_lock);
	return n * SD_VDI_STATE_SIZE;
}

void vdi_state_merge(const uint8_t *buf, size_t len)
{
	for (size_t off = 0; off + SD_VDI_STATE_SIZE <= len;
	     off += SD_VDI_STATE_SIZE) {
		struct vdi_state s;

		vdi_state_decode(buf + off, &s);
		if (!s.vid || s.vid >= SD_NR_VDIS)
			continue;
		register_vdi(s.vid, s.nr_copies, s.copy_policy,
			     s.block_size_shift, s.parent_vid, s.snapshot,
			     s.deleted);
	}
}

void vdi_bitmap_copy(uint8_t *dst, bool deleted)
{
	pthread_rwlock_rdlock(&vdi_lock);
	memcpy(dst, deleted ? deleted_bitmap : in_use_bitmap,
	       SD_VDI_BITMAP_SIZE);
	pthread_rwlock_unlock(&vdi_lock);
}

static bool vid_in_use(uint32_t vid)
{
	bool r;

	pthread_rwlock_rdlock(&vdi_lock);
	r = test_bit_(in_use_bitmap, vid) || test_bit_(deleted_bitmap, vid);
	pthread_rwlock_unlock(&vdi_lock);
	return r;
}

/* ---- lookup (spec 4.3) ---- */

struct vdi_query {
	char name[SD_MAX_VDI_LEN + 1];
	char tag[SD_MAX_VDI_TAG_LEN + 1];
	uint32_t snapid;
};

struct vdi_found {
	uint32_t vid;       /* the match */
	uint32_t free_vid;  /* where a new VDI of this name goes */
	uint32_t next_snapid;
	struct sd_inode_header inode;
};

/* Decode and check the name (+tag) payload of a VDI request. */
static int parse_query(const struct sd_req *rq, const void *data,
		       struct vdi_query *q)
{
	uint32_t len = rq->data_length;

	memset(q, 0, sizeof(*q));
	if (len != SD_MAX_VDI_LEN && len != SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN)
		return SD_RES_INVALID_PARMS;
	/* Names and tags are NUL-terminated inside their 256 bytes. */
	if (!memchr(data, 0, SD_MAX_VDI_LEN) ||
	    (len > SD_MAX_VDI_LEN &&
	     !memchr((const char *)data + SD_MAX_VDI_LEN, 0,
		     SD_MAX_VDI_TAG_LEN)))
		return SD_RES_INVALID_PARMS;
	memcpy(q->name, data, SD_MAX_VDI_LEN);
	if (len > SD_MAX_VDI_LEN)
		memcpy(q->tag, (const char *)data + SD_MAX_VDI_LEN,
		       SD_MAX_VDI_TAG_LEN);
	if (!q->name[0])
		return SD_RES_INVALID_PARMS;
	q->snapid = rq->vdi.snapid;
	return SD_RES_SUCCESS;
}

static int first_free_vid(uint32_t left, uint32_t *right)
{
	for (uint32_t v = left; v < SD_NR_VDIS; v++)
		if (!vid_in_use(v)) {
			*right = v;
			return SD_RES_SUCCESS;
		}
	for (uint32_t v = 1; v < left; v++)
		if (!vid_in_use(v)) {
			*right = v;
			return SD_RES_SUCCESS;
		}
	return SD_RES_FULL_VDI;
}

/* The inode header of vid, read through the gateway. SD_RES_* code. */
int vdi_read_inode_header(uint32_t vid, struct sd_inode_header *h)
{
	uint8_t buf[SD_INODE_HEADER_SIZE];
	int ret = sd_read_object(vid_to_vdi_oid(vid), buf, sizeof(buf), 0);

	if (ret == SD_RES_SUCCESS)
		sd_inode_header_decode(buf, h);
	return ret;
}

static int vdi_lookup(const struct vdi_query *q, struct vdi_found *f)
{
	uint32_t left = sd_vdi_hash(q->name), right, vid;
	bool want_snapshot = q->tag[0] || q->snapid;
	bool name_seen = false;
	int ret;

	memset(f, 0, sizeof(*f));
	f->next_snapid = 1;
	ret = first_free_vid(left, &right);
	if (ret != SD_RES_SUCCESS)
		return ret;
	f->free_vid = right;
	if (right == left)
		return SD_RES_NO_VDI;

	/* Downward from right-1 to left, wrapping below 1 to the top. */
	vid = right;
	do {
		struct sd_inode_header h;

		vid = vid == 1 ? SD_NR_VDIS - 1 : vid - 1;
		if (!vid_in_use(vid))
			continue;
		ret = vdi_read_inode_header(vid, &h);
		if (ret != SD_RES_SUCCESS) {
			sd_err("cannot read inode of vid %" PRIx32 ": %s", vid,
			       sd_strerror(ret));
			return SD_RES_VDI_READ;
		}
		if (strcmp(h.name, q->name))
			continue;
		if (!want_snapshot) {
			f->next_snapid = h.snap_id + 1;
			f->vid = vid;
			f->inode = h;
			return inode_is_snapshot(&h) ? SD_RES_NO_VDI
						     : SD_RES_SUCCESS;
		}
		name_seen = true;
		if (!inode_is_snapshot(&h))
			continue;
		if ((q->tag[0] && !strcmp(h.tag, q->tag)) ||
		    (q->snapid && h.snap_id == q->snapid)) {
			f->vid = vid;
			f->inode = h;
			return SD_RES_SUCCESS;
		}
	} while (vid != left);
	return name_seen ? SD_RES_NO_TAG : SD_RES_NO_VDI;
}

static void fill_vdi_rsp(struct sd_rsp *rp, uint32_t vid)
{
	uint8_t copies, policy, shift;

	vdi_get_attrs(vid, &copies, &policy, &shift);
	rp->vdi.vdi_id = vid;
	rp->vdi.copies = copies;
	rp->vdi.block_size_shift = shift;
}

int vdi_lookup_work(struct request *req)
{
	struct vdi_query q;
	struct vdi_found f;
	int ret = parse_query(&req->rq, req->data, &q);

	if (ret != SD_RES_SUCCESS)
		return ret;
	vdi_states_complete();
	ret = vdi_lookup(&q, &f);
	if (ret == SD_RES_SUCCESS)
		fill_vdi_rsp(&req->rp, f.vid);
	return ret;
}

/* ---- NEW_VDI (spec 4.4): create, snapshot, clone, rebase ---- */

bool vdi_is_deleted(uint32_t vid)
{
	struct vdi_state s;

	return state_get(vid, &s) && s.deleted;
}

bool vdi_is_snapshot(uint32_t vid)
{
	struct vdi_state s;

	return state_get(vid, &s) && s.snapshot;
}

/* The root of vid's family: follow parent links (bounded, against loops
 * in corrupt metadata). Called with vdi_lock held. */
static uint32_t family_root(uint32_t vid)
{
	for (size_t steps = 0; steps <= states_nr; steps++) {
		struct vdi_state *s = state_find(vid);

		if (!s || !s->parent_vid)
			return vid;
		vid = s->parent_vid;
	}
	return vid;
}

void vdi_family(uint32_t vid, uint32_t **members, size_t *nr)
{
	uint32_t root;

	*nr = 0;
	pthread_rwlock_rdlock(&vdi_lock);
	*members = xmalloc((states_nr + 1) * sizeof(**members));
	root = family_root(vid);
	for (size_t i = 0; i < states_cap; i++)
		if (states[i].vid && !states[i].deleted &&
		    family_root(states[i].vid) == root)
			(*members)[(*nr)++] = states[i].vid;
	pthread_rwlock_unlock(&vdi_lock);
}

/*
 * The index bytes that follow the header of a new inode derived from src:
 * the first nr_slots slots of a flat index, or a copy of a hyper volume's
 * B-tree (a depth-2 tree gets its own copies of the leaves, owned by
 * new_vid). *counter is the new inode's btree_counter.
 */
static int copy_index(const struct sd_inode_header *src, uint32_t new_vid,
		      uint64_t nr_slots, uint8_t **out, uint32_t *len,
		      uint32_t *counter)
{
	uint64_t src_oid = vid_to_vdi_oid(src->vdi_id);
	struct btree from, to;
	struct btree_ops ops;
	uint8_t copies;
	int ret;

	*counter = 0;
	if (src->store_policy == 0) {
		nr_slots = MIN(nr_slots, inode_nr_slots(src->vdi_size,
							src->block_size_shift));
		nr_slots = MIN(nr_slots, (uint64_t)SD_MAX_DATA_OBJS);
		*len = nr_slots * 4;
		*out = xmalloc(*len + 1);
		return nr_slots ? sd_read_object(src_oid, *out, *len,
						 SD_INODE_OFF_DATA_VDI_ID)
				: SD_RES_SUCCESS;
	}
	ret = vdi_open_btree(src->vdi_id, src, &from, &ops, &copies);
	if (ret != SD_RES_SUCCESS)
		return ret;
	*out = xzalloc(BTREE_NODE_SIZE);
	ret = btree_open(&to, new_vid, 0, *out, &ops);
	if (ret == SD_RES_SUCCESS)
		ret = btree_clone(&from, &to);
	free(from.root);
	if (ret != SD_RES_SUCCESS) {
		free(*out);
		*out = NULL;
		return ret;
	}
	*len = btree_root_len(&to);
	*counter = to.btree_counter;
	return SD_RES_SUCCESS;
}

/* Write a new inode: header h followed by index bytes (may be none). */
static int write_new_inode(const struct sd_inode_header *h,
			   const uint8_t *index, uint32_t index_len)
{
	uint8_t *buf = xmalloc(SD_INODE_HEADER_SIZE + index_len);
	int ret;

	sd_inode_header_encode(h, buf);
	if (index_len)
		memcpy(buf + SD_INODE_HEADER_SIZE, index, index_len);
	ret = sd_write_object(vid_to_vdi_oid(h->vdi_id), buf,
			      SD_INODE_HEADER_SIZE + index_len, 0, true,
			      h->nr_copies);
	free(buf);
	if (ret != SD_RES_SUCCESS)
		sd_err("VDI %s: cannot write inode %" PRIx32 ": %s", h->name,
		       h->vdi_id, sd_strerror(ret));
	return ret;
}

/* A live snapshot to derive from, or an error for the client. */
static int read_base(uint32_t base, struct sd_inode_header *h)
{
	int ret;

	if (!base || base >= SD_NR_VDIS || !vid_in_use(base))
		return SD_RES_NO_VDI;
	ret = vdi_read_inode_header(base, h);
	if (ret != SD_RES_SUCCESS)
		return SD_RES_VDI_READ;
	if (!h->name[0])
		return SD_RES_NO_VDI;
	if (!inode_is_snapshot(h)) {
		sd_err("VDI %s (vid %" PRIx32 ") is not a snapshot: only "
		       "snapshots can be cloned", h->name, base);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

/* The header of a new working inode derived from src under name. */
static void derive_header(const struct sd_inode_header *src, const char *name,
			  uint32_t snap_id, uint32_t vid,
			  struct sd_inode_header *h)
{
	*h = *src;
	memset(h->name, 0, sizeof(h->name));
	memset(h->tag, 0, sizeof(h->tag));
	memcpy(h->name, name, sizeof(h->name) - 1);
	h->create_time = sd_time_now();
	h->snap_ctime = 0;
	h->vm_clock_nsec = 0;
	h->vm_state_size = 0;
	h->snap_id = snap_id;
	h->vdi_id = vid;
	h->parent_vdi_id = src->vdi_id;
}

/* Write inode h with the first nr_slots of src's index (or its B-tree). */
static int write_derived_inode(const struct sd_inode_header *src,
			       struct sd_inode_header *h, uint64_t nr_slots)
{
	uint8_t *index = NULL;
	uint32_t len, counter;
	int ret = copy_index(src, h->vdi_id, nr_slots, &index, &len, &counter);

	if (ret != SD_RES_SUCCESS)
		return SD_RES_VDI_READ;
	h->btree_counter = counter;
	ret = write_new_inode(h, index, len);
	free(index);
	return ret == SD_RES_SUCCESS ? SD_RES_SUCCESS : SD_RES_VDI_WRITE;
}

/* Answer the client with the new inode h, and tell every node's main phase
 * what was decided (frozen: the vid that became a snapshot, or 0). */
static void new_vdi_decided(struct request *req,
			    const struct sd_inode_header *h, uint32_t frozen)
{
	req->rq.vdi.type = frozen;
	req->rq.vdi.copies = h->nr_copies;
	req->rq.vdi.copy_policy = h->copy_policy;
	req->rq.vdi.block_size_shift = h->block_size_shift;
	req->rq.vdi.base_vdi_id = h->parent_vdi_id;
	req->rp.vdi.vdi_id = h->vdi_id;
	req->rp.vdi.copies = h->nr_copies;
	req->rp.vdi.block_size_shift = h->block_size_shift;
}

/*
 * Snapshot (base = the current vid) and rebase (base = a snapshot): the
 * current inode is frozen (snap_ctime set) and keeps its vid; a new working
 * inode with the next snap_id takes the name, sharing every object of its
 * parent. The new inode is written before the old one is frozen, so a crash
 * in between leaves the name with a working VDI.
 */
static int new_snapshot(struct request *req, const struct vdi_query *q,
			const struct vdi_found *f)
{
	struct sd_req *rq = &req->rq;
	struct sd_inode_header cur = f->inode, src, h;
	uint8_t ts[8];
	int ret;

	if (rq->vdi.base_vdi_id == f->vid) {
		src = cur;
	} else {
		ret = read_base(rq->vdi.base_vdi_id, &src);
		if (ret != SD_RES_SUCCESS)
			return ret;
	}
	derive_header(&src, q->name, cur.snap_id + 1, f->free_vid, &h);
	if (src.vdi_id != cur.vdi_id && rq->vdi.vdi_size > src.vdi_size &&
	    (src.store_policy || rq->vdi.vdi_size <=
					 inode_max_size(src.block_size_shift)))
		h.vdi_size = rq->vdi.vdi_size;
	ret = write_derived_inode(&src, &h, SD_MAX_DATA_OBJS);
	if (ret != SD_RES_SUCCESS)
		return ret;

	put_le64(ts, sd_time_now());
	ret = sd_write_object(vid_to_vdi_oid(cur.vdi_id), ts, sizeof(ts),
			      SD_INODE_OFF_SNAP_CTIME, false, cur.nr_copies);
	if (ret != SD_RES_SUCCESS) {
		sd_err("VDI %s: cannot freeze inode %" PRIx32 ": %s", q->name,
		       cur.vdi_id, sd_strerror(ret));
		sd_remove_object(vid_to_vdi_oid(h.vdi_id));
		return SD_RES_VDI_WRITE;
	}
	new_vdi_decided(req, &h, cur.vdi_id);
	sd_info("VDI %s: vid %" PRIx32 " is now snapshot %" PRIu32
		", working VDI %" PRIx32 " derived from %" PRIx32, q->name,
		cur.vdi_id, cur.snap_id, h.vdi_id, src.vdi_id);
	return SD_RES_SUCCESS;
}

/* Clone: a new name whose index is a copy of a snapshot's. */
static int new_clone(struct request *req, const struct vdi_query *q,
		     const struct vdi_found *f)
{
	struct sd_req *rq = &req->rq;
	struct sd_inode_header src, h;
	int ret = read_base(rq->vdi.base_vdi_id, &src);

	if (ret != SD_RES_SUCCESS)
		return ret;
	derive_header(&src, q->name, f->next_snapid, f->free_vid, &h);
	if (rq->vdi.vdi_size) {
		if (src.store_policy == 0 &&
		    rq->vdi.vdi_size > inode_max_size(src.block_size_shift))
			return SD_RES_INVALID_PARMS;
		h.vdi_size = rq->vdi.vdi_size;
	}
	ret = write_derived_inode(&src, &h,
				  inode_nr_slots(h.vdi_size, h.block_size_shift));
	if (ret != SD_RES_SUCCESS)
		return ret;
	new_vdi_decided(req, &h, 0);
	sd_info("VDI %s: vid %" PRIx32 " cloned from snapshot %" PRIx32,
		q->name, h.vdi_id, src.vdi_id);
	return SD_RES_SUCCESS;
}

static int new_create(struct request *req, const struct vdi_query *q,
		      const struct vdi_found *f)
{
	struct sd_req *rq = &req->rq;
	struct sd_inode_header h = { 0 };
	uint8_t copies = rq->vdi.copies, policy = rq->vdi.copy_policy;
	uint8_t shift = rq->vdi.block_size_shift, def_copies, def_policy,
		def_shift;
	uint8_t root[8] = { 0 };

	sys_cluster_defaults(&def_copies, &def_policy, &def_shift, NULL);
	if (!copies) {
		copies = def_copies;
		policy = def_policy;
	}
	if (policy) {
		int d, p;

		if (!ec_policy_decode(policy, &d, &p))
			return SD_RES_INVALID_PARMS;
		sd_err("VDI %s: erasure coding (%d:%d) is not supported yet",
		       q->name, d, p);
		return SD_RES_NO_SUPPORT;
	}
	if (copies > SD_MAX_COPIES)
		return SD_RES_INVALID_PARMS;
	if (!shift)
		shift = def_shift;
	if (shift < SD_MIN_BLOCK_SIZE_SHIFT || shift > SD_MAX_BLOCK_SIZE_SHIFT)
		return SD_RES_INVALID_PARMS;
	if (rq->vdi.store_policy > 1 ||
	    (rq->vdi.store_policy == 0 &&
	     rq->vdi.vdi_size > inode_max_size(shift))) {
		sd_err("VDI %s: size %" PRIu64 " is too large", q->name,
		       rq->vdi.vdi_size);
		return SD_RES_INVALID_PARMS;
	}

	memcpy(h.name, q->name, sizeof(h.name));
	h.create_time = sd_time_now();
	h.vdi_size = rq->vdi.vdi_size;
	h.copy_policy = policy;
	h.store_policy = rq->vdi.store_policy;
	h.nr_copies = copies;
	h.block_size_shift = shift;
	h.snap_id = f->next_snapid;
	h.vdi_id = f->free_vid;
	/* A hyper volume starts with an empty B-tree root. */
	put_le16(root, 0x6274);
	put_le16(root + 2, 1);
	if (write_new_inode(&h, root, h.store_policy == 1 ? 8 : 0) !=
	    SD_RES_SUCCESS)
		return SD_RES_VDI_WRITE;
	new_vdi_decided(req, &h, 0);
	sd_info("created VDI %s, vid %" PRIx32 ", %" PRIu64 " bytes", q->name,
		h.vdi_id, h.vdi_size);
	return SD_RES_SUCCESS;
}

int vdi_new_work(struct request *req)
{
	struct sd_req *rq = &req->rq;
	struct vdi_query q;
	struct vdi_found f;
	int ret = parse_query(rq, req->data, &q);

	if (ret != SD_RES_SUCCESS)
		return ret;
	/* The lookup is for the current VDI of the name, whatever snapid
	 * says: snapid selects the form of NEW_VDI here. */
	q.snapid = 0;
	if (!vdi_states_complete())
		sd_warn("VDI %s: the VDI states of other nodes are not all "
			"known yet", q.name);
	ret = vdi_lookup(&q, &f);
	if (rq->vdi.snapid) {
		if (ret != SD_RES_SUCCESS)
			return ret;
		return new_snapshot(req, &q, &f);
	}
	if (ret == SD_RES_SUCCESS)
		return SD_RES_VDI_EXIST;
	if (ret != SD_RES_NO_VDI)
		return ret;
	if (rq->vdi.base_vdi_id)
		return new_clone(req, &q, &f);
	return new_create(req, &q, &f);
}

/*
 * VDI_STATE_PEER, on the main thread: in the order of cluster messages. A
 * node that has no state for the vid at all (it joined and has not fetched
 * the VDI states yet) has nothing to apply: waiting for it would only hold
 * the snapshot up.
 */
int vdi_state_peer(struct request *req)
{
	struct vdi_state s;

	if (!state_get(req->rq.vdi.base_vdi_id, &s))
		return SD_RES_SUCCESS;
	return s.snapshot ? SD_RES_SUCCESS : SD_RES_AGAIN;
}

/* How long a snapshot waits for the other members to apply it. */
#define SNAPSHOT_BARRIER_MS 10000

/*
 * After a snapshot, on the requester: the client is answered only once
 * every member has applied it (sees the old vid as a snapshot). Members
 * apply cluster messages in the same order but not at the same instant; a
 * writer's gateway that is a little behind would still let a write into
 * the snapshot's objects, one that its client sent after being told that
 * the snapshot was taken (a nightly backup would then hold bytes of the
 * next day). Usually this costs one round trip per member.
 */
int vdi_new_after(struct request *req)
{
	uint32_t vid = req->rq.vdi.type;
	struct vnode_info *vi;
	uint64_t deadline;

	if (!vid || vid >= SD_NR_VDIS)
		return SD_RES_SUCCESS;
	vi = get_vnode_info();
	if (!vi)
		return SD_RES_SUCCESS;
	deadline = mono_ms() + SNAPSHOT_BARRIER_MS;
	for (int i = 0; i < vi->ring->nr_nodes; i++) {
		const struct sd_node *n = &vi->ring->nodes[i];

		if (node_id_eq(&n->nid, &sys->this_node.nid))
			continue;
		for (;;) {
			struct sd_req rq;
			struct sd_rsp rp;
			int ret;

			sd_init_req(&rq, SD_OP_VDI_STATE_PEER);
			rq.vdi.base_vdi_id = vid;
			ret = peer_exec(&n->nid, &rq, NULL, NULL, 0, &rp);
			if (ret != SD_RES_AGAIN)
				break; /* applied, or gone: it takes no writes */
			if (mono_ms() > deadline) {
				char a[64];

				sd_warn("vid %" PRIx32 ": %s has not applied the "
					"snapshot after %d ms",
					vid, node_addr_to_str(&n->nid, a, sizeof(a)),
					SNAPSHOT_BARRIER_MS);
				break;
			}
			usleep(1000);
		}
	}
	put_vnode_info(vi);
	return SD_RES_SUCCESS;
}

int vdi_new_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender)
{
	if (req->vdi.type && req->vdi.type < SD_NR_VDIS) {
		struct vdi_state *s;

		pthread_rwlock_wrlock(&vdi_lock);
		s = state_find(req->vdi.type);
		if (s)
			s->snapshot = 1;
		pthread_rwlock_unlock(&vdi_lock);
	}
	register_vdi(rsp->vdi.vdi_id, req->vdi.copies, req->vdi.copy_policy,
		     req->vdi.block_size_shift, req->vdi.base_vdi_id, false,
		     false);
	return SD_RES_SUCCESS;
}

/* ---- delete (spec 4.5) ---- */

/*
 * The inode becomes a tombstone first (name and size zeroed, no index;
 * the header keeps its parent link so that the family stays connected),
 * then the objects it referenced that nobody else does are removed. A
 * crash in between leaks objects but never loses one somebody needs.
 */
int vdi_del_work(struct request *req)
{
	struct node_id owner;
	struct vdi_query q;
	struct vdi_found f;
	struct sd_inode_header h;
	struct obj_refs refs = { 0 };
	int ret = parse_query(&req->rq, req->data, &q);

	if (ret != SD_RES_SUCCESS)
		return ret;
	ret = vdi_lookup(&q, &f);
	if (ret != SD_RES_SUCCESS)
		return ret;
	h = f.inode;
	req->rp.vdi.vdi_id = f.vid;
	/* A VDI in use (an NBD writer, a client's lock) is not deleted
	 * under it; `dog vdi lock unlock` first. */
	if (vdi_lock_state(f.vid, &owner) == 2) {
		char a[64];

		sd_warn("VDI %s: vid %" PRIx32 " is locked by %s: not deleted",
			q.name, f.vid, node_addr_to_str(&owner, a, sizeof(a)));
		return SD_RES_VDI_LOCKED;
	}

	ret = vdi_read_index(f.vid, &h, 0, UINT32_MAX, &refs);
	if (ret != SD_RES_SUCCESS) {
		sd_err("VDI %s: cannot read index of vid %" PRIx32 ": %s",
		       q.name, f.vid, sd_strerror(ret));
		obj_refs_free(&refs);
		return SD_RES_VDI_READ;
	}

	memset(h.name, 0, sizeof(h.name));
	h.vdi_size = 0;
	if (write_new_inode(&h, NULL, 0) != SD_RES_SUCCESS) {
		obj_refs_free(&refs);
		return SD_RES_VDI_WRITE;
	}
	vdi_reclaim(f.vid, &refs);
	for (size_t i = 0; i < refs.nr_leaves; i++)
		sd_remove_object(refs.leaves[i]);
	obj_refs_free(&refs);
	sd_info("deleted VDI %s, vid %" PRIx32, q.name, f.vid);
	return SD_RES_SUCCESS;
}

int vdi_del_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		 const struct sd_node *sender)
{
	struct vdi_state *s;

	pthread_rwlock_wrlock(&vdi_lock);
	set_bit_(deleted_bitmap, rsp->vdi.vdi_id);
	s = state_find(rsp->vdi.vdi_id);
	if (s)
		s->deleted = 1;
	pthread_rwlock_unlock(&vdi_lock);
	return SD_RES_SUCCESS;
}

/*
 * ---- locks: owned by the sheep the client talked to ----
 *
 * A client's LOCK_VDI locks only when the cluster was formatted with
 * USE_LOCK, and a node may take again a lock it holds (upstream's
 * behaviour). The NBD export's writer lock (SD_FLAG_CMD_EXCL_LOCK, only
 * from inside the daemon) is taken whatever USE_LOCK says and is refused
 * while anybody holds the lock, this node included. RELEASE_VDI (dog vdi
 * lock unlock) breaks either kind; an NBD writer whose lock is broken is
 * told so (nbd_export_lock_released) and refuses further writes.
 */
int vdi_lock_work(struct request *req)
{
	uint16_t flags;
	struct vdi_state *s;
	bool excl;
	int ret;

	if (!req->complete)
		req->rq.flags &= ~SD_FLAG_CMD_EXCL_LOCK;
	excl = req->rq.flags & SD_FLAG_CMD_EXCL_LOCK;
	ret = vdi_lookup_work(req);
	if (ret != SD_RES_SUCCESS)
		return ret;
	sys_cluster_defaults(NULL, NULL, NULL, &flags);
	if (!(flags & SD_CLUSTER_FLAG_USE_LOCK) && !excl)
		return SD_RES_SUCCESS;
	pthread_rwlock_rdlock(&vdi_lock);
	s = state_find(req->rp.vdi.vdi_id);
	if (s && s->lock_state == 2 &&
	    (excl || !node_id_eq(&s->lock_owner, &sys->this_node.nid)))
		ret = SD_RES_VDI_LOCKED;
	if (s && excl && s->lock_state == 3)
		ret = SD_RES_VDI_LOCKED;
	pthread_rwlock_unlock(&vdi_lock);
	return ret;
}

int vdi_lock_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		  const struct sd_node *sender)
{
	bool excl = req->flags & SD_FLAG_CMD_EXCL_LOCK;
	struct vdi_state *s;
	uint16_t flags;
	int ret = SD_RES_SUCCESS;

	sys_cluster_defaults(NULL, NULL, NULL, &flags);
	if (!(flags & SD_CLUSTER_FLAG_USE_LOCK) && !excl)
		return SD_RES_SUCCESS;
	pthread_rwlock_wrlock(&vdi_lock);
	s = state_insert(rsp->vdi.vdi_id);
	if ((s->lock_state == 2 &&
	     (excl || !node_id_eq(&s->lock_owner, &sender->nid))) ||
	    (excl && s->lock_state == 3)) {
		ret = SD_RES_VDI_LOCKED;
	} else {
		s->lock_state = 2;
		s->lock_owner = sender->nid;
	}
	pthread_rwlock_unlock(&vdi_lock);
	return ret;
}

int vdi_release_main(const struct sd_req *req, struct sd_rsp *rsp, void *data,
		     const struct sd_node *sender)
{
	struct vdi_state *s;
	bool was_mine = false;

	pthread_rwlock_wrlock(&vdi_lock);
	s = state_find(req->vdi.base_vdi_id);
	if (s && s->lock_state == 2) {
		was_mine = node_id_eq(&s->lock_owner, &sys->this_node.nid);
		s->lock_state = 1;
		memset(&s->lock_owner, 0, sizeof(s->lock_owner));
	}
	pthread_rwlock_unlock(&vdi_lock);
	if (was_mine)
		nbd_export_lock_released(req->vdi.base_vdi_id);
	return SD_RES_SUCCESS;
}

uint32_t vdi_lock_state(uint32_t vid, struct node_id *owner)
{
	struct vdi_state s;

	if (!state_get(vid, &s))
		return 0;
	if (owner)
		*owner = s.lock_owner;
	return s.lock_state;
}

/* ---- for the other VDI modules (vdi_attr.c, vdi_copies.c) ---- */

int vdi_lookup_by_name(const char *name, const char *tag, uint32_t snapid,
		       uint32_t *vid, struct sd_inode_header *inode)
{
	struct vdi_query q = { 0 };
	struct vdi_found f;
	int ret;

	if (!name[0] || strlen(name) >= SD_MAX_VDI_LEN ||
	    strlen(tag) >= SD_MAX_VDI_TAG_LEN)
		return SD_RES_INVALID_PARMS;
	memcpy(q.name, name, strlen(name));
	memcpy(q.tag, tag, strlen(tag));
	q.snapid = snapid;
	ret = vdi_lookup(&q, &f);
	if (ret == SD_RES_SUCCESS) {
		*vid = f.vid;
		*inode = f.inode;
	}
	return ret;
}

int vdi_set_copies(uint32_t vid, uint8_t copies)
{
	struct vdi_state *s;

	pthread_rwlock_wrlock(&vdi_lock);
	s = state_find(vid);
	if (s)
		s->nr_copies = copies;
	pthread_rwlock_unlock(&vdi_lock);
	return s ? SD_RES_SUCCESS : SD_RES_NO_VDI;
}
