/*
 * The export layer under the NBD server: a VDI as a flat array of bytes.
 * An open export keeps the VDI's index (which vid holds data object idx)
 * in memory, read once from the inode's flat data_vdi_id[] or its B-tree;
 * reads and writes are cut at object boundaries and go through the
 * daemon's own gateway, so every acknowledged write is on all replicas.
 *
 * Writes to objects the working VDI owns go straight through, fully
 * concurrent. A write to a hole or to an object inherited from a snapshot
 * takes a per-object stripe lock, creates the VDI's own object (copy on
 * write from the inherited one), then records it in the inode: two
 * writers of one new object never both create it.
 *
 * A snapshot taken while the export is open (dog vdi snapshot, the nightly
 * backup) freezes the vid we write to: the gateway answers READONLY. Like
 * QEMU's sheepdog driver we then look the name up again, take the new
 * working vid's lock, load its index (every slot inherited) and redo the
 * write, which copies on write. In-flight I/O holds the view's read lock;
 * the reload swaps the view under its write lock.
 *
 * A writable export holds the VDI's cluster-wide lock (LOCK_VDI with
 * SD_FLAG_CMD_EXCL_LOCK, taken whatever USE_LOCK says) and this node's
 * table of writers refuses a second writer of the same name. Breaking the
 * lock (dog vdi lock unlock) makes the export refuse every further write.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "nbd_export.h"
#include "nbd_export_name.h"
#include "sheep.h"
#include "sheepdog/le.h"
#include "sheepdog/nbd.h"

/* The in-memory index: chunks of slots, allocated when first set, so
 * that a sparse hyper volume of billions of objects costs little. */
#define SLOT_CHUNK_SHIFT 16
#define SLOT_CHUNK (1U << SLOT_CHUNK_SHIFT)
/* Allocations of objects whose indexes are equal modulo this serialise. */
#define ALLOC_STRIPES 64
/* Zeroes are written in pieces of this size. */
#define ZERO_BUF_SIZE (1U << 20)
/* A write that meets READONLY reloads the VDI at most this many times. */
#define MAX_RELOADS 3

static const uint8_t zero_buf[ZERO_BUF_SIZE];

/* One vid of the VDI and its index, as the export sees it now. */
struct view {
	uint32_t vid;
	struct sd_inode_header inode;
	uint32_t **chunks;
	uint64_t nr_chunks;
	uint64_t nr_objs;
	bool hyper;
	pthread_mutex_t index_lock; /* the B-tree */
	struct btree bt;	    /* hyper volumes: under index_lock */
	struct btree_ops bt_ops;
	uint8_t bt_copies;
};

struct nbd_export {
	struct nbd_export_name name;
	bool readonly;
	bool snapshot;
	uint64_t size;
	uint8_t shift;

	pthread_rwlock_t view_lock; /* I/O: read side; reload: write side */
	struct view *v;
	uint64_t gen;		     /* bumped by every reload */
	pthread_mutex_t reload_lock; /* one reload at a time */
	pthread_mutex_t alloc_lock[ALLOC_STRIPES];

	/* writable exports: in the writers table, under writers_lock */
	struct list_node w_list;
	uint32_t lock_vid; /* the vid whose lock we hold, 0 if none */
	atomic_bool lock_lost;
};

static pthread_mutex_t writers_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(writers);

static int res_to_errno(int res)
{
	switch (res) {
	case SD_RES_SUCCESS:
		return 0;
	case SD_RES_NO_VDI:
	case SD_RES_NO_TAG:
		return -ENOENT;
	case SD_RES_VDI_LOCKED:
		return -EBUSY;
	case SD_RES_INVALID_PARMS:
		return -EINVAL;
	case SD_RES_NO_SPACE:
	case SD_RES_FULL_VDI:
		return -ENOSPC;
	case SD_RES_READONLY:
		return -EROFS;
	case SD_RES_NO_SUPPORT:
		return -ENOTSUP;
	case SD_RES_NO_MEM:
		return -ENOMEM;
	case SD_RES_SHUTDOWN:
	case SD_RES_KILLED:
	case SD_RES_WAIT_FOR_FORMAT:
	case SD_RES_WAIT_FOR_JOIN:
		return -ESHUTDOWN;
	default:
		return -EIO;
	}
}

/* ---- the in-memory index ---- */

static uint32_t slot_get(const struct view *v, uint64_t idx)
{
	uint32_t *chunk;

	if (idx >= v->nr_objs)
		return 0;
	chunk = __atomic_load_n(&v->chunks[idx >> SLOT_CHUNK_SHIFT],
				__ATOMIC_ACQUIRE);
	return chunk ? __atomic_load_n(&chunk[idx & (SLOT_CHUNK - 1)],
				       __ATOMIC_RELAXED)
		     : 0;
}

static void slot_set(struct view *v, uint64_t idx, uint32_t vid)
{
	uint32_t **where, *chunk;

	if (idx >= v->nr_objs)
		return;
	where = &v->chunks[idx >> SLOT_CHUNK_SHIFT];
	chunk = __atomic_load_n(where, __ATOMIC_ACQUIRE);
	if (!chunk) {
		uint32_t *fresh, *expected = NULL;

		if (!vid)
			return;
		fresh = xcalloc(SLOT_CHUNK, sizeof(*fresh));
		if (__atomic_compare_exchange_n(where, &expected, fresh, false,
						__ATOMIC_ACQ_REL,
						__ATOMIC_ACQUIRE)) {
			chunk = fresh;
		} else {
			free(fresh);
			chunk = expected;
		}
	}
	__atomic_store_n(&chunk[idx & (SLOT_CHUNK - 1)], vid, __ATOMIC_RELAXED);
}

static void view_free(struct view *v)
{
	if (!v)
		return;
	for (uint64_t i = 0; i < v->nr_chunks; i++)
		free(v->chunks[i]);
	free(v->chunks);
	free(v->bt.root);
	pthread_mutex_destroy(&v->index_lock);
	free(v);
}

static int visit_slot(uint32_t idx, uint32_t vid, void *arg)
{
	slot_set(arg, idx, vid);
	return 0;
}

static int read_flat_index(struct view *v)
{
	uint64_t nr = MIN(v->nr_objs, (uint64_t)SD_MAX_DATA_OBJS);
	uint8_t *buf = xmalloc((size_t)SLOT_CHUNK * 4);
	int ret = SD_RES_SUCCESS;

	for (uint64_t first = 0; first < nr && ret == SD_RES_SUCCESS;
	     first += SLOT_CHUNK) {
		uint32_t n = MIN(nr - first, (uint64_t)SLOT_CHUNK);

		ret = sd_read_object(vid_to_vdi_oid(v->vid), buf, n * 4,
				     SD_INODE_OFF_DATA_VDI_ID + first * 4);
		for (uint32_t i = 0; ret == SD_RES_SUCCESS && i < n; i++) {
			uint32_t vid = get_le32(buf + (size_t)i * 4);

			if (vid)
				slot_set(v, first + i, vid);
		}
	}
	free(buf);
	return ret;
}

/* The inode of vid and its whole index. SD_RES_* code. */
static int view_load(uint32_t vid, struct view **out)
{
	struct view *v = xzalloc(sizeof(*v));
	uint8_t shift;
	int ret;

	v->vid = vid;
	pthread_mutex_init(&v->index_lock, NULL);
	ret = vdi_read_inode_header(vid, &v->inode);
	if (ret != SD_RES_SUCCESS)
		goto fail;
	if (!v->inode.name[0] || v->inode.vdi_id != vid) {
		ret = SD_RES_NO_VDI;
		goto fail;
	}
	shift = v->inode.block_size_shift ?: SD_DEFAULT_BLOCK_SIZE_SHIFT;
	if (shift < SD_MIN_BLOCK_SIZE_SHIFT ||
	    shift > SD_MAX_BLOCK_SIZE_SHIFT) {
		ret = SD_RES_EIO;
		goto fail;
	}
	v->inode.block_size_shift = shift;
	v->nr_objs = DIV_ROUND_UP(v->inode.vdi_size, UINT64_C(1) << shift);
	if (v->nr_objs > (uint64_t)UINT32_MAX + 1) {
		ret = SD_RES_EIO;
		goto fail;
	}
	v->nr_chunks = DIV_ROUND_UP(v->nr_objs, (uint64_t)SLOT_CHUNK);
	v->chunks = xcalloc(v->nr_chunks ?: 1, sizeof(*v->chunks));
	v->hyper = v->inode.store_policy == 1;
	if (!v->hyper) {
		ret = read_flat_index(v);
	} else {
		ret = vdi_open_btree(vid, &v->inode, &v->bt, &v->bt_ops,
				     &v->bt_copies);
		if (ret == SD_RES_SUCCESS)
			ret = btree_for_each(&v->bt, visit_slot, v);
	}
	if (ret != SD_RES_SUCCESS)
		goto fail;
	*out = v;
	return SD_RES_SUCCESS;
fail:
	sd_err("VDI vid %" PRIx32 ": cannot load the inode and its index: %s",
	       vid, sd_strerror(ret));
	view_free(v);
	return ret;
}

/* A failed btree_set leaves bt unusable: read it again from storage.
 * Under index_lock. */
static int view_reopen_btree(struct view *v)
{
	struct sd_inode_header h;
	int ret = vdi_read_inode_header(v->vid, &h);

	if (ret != SD_RES_SUCCESS)
		return ret;
	free(v->bt.root);
	memset(&v->bt, 0, sizeof(v->bt));
	return vdi_open_btree(v->vid, &h, &v->bt, &v->bt_ops, &v->bt_copies);
}

/*
 * Record in v's inode that object idx is now held by new_vid (0: released)
 * instead of old_vid. The object that old_vid's slot named is removed when
 * nobody references it any more: for flat inodes the gateway does that on
 * every slot write (reclaim.c), for hyper volumes we ask reclaim.c here.
 * Under the object's stripe lock.
 */
static int index_set(struct view *v, uint32_t idx, uint32_t new_vid,
		     uint32_t old_vid)
{
	struct obj_refs cand = { 0 };
	int ret;

	if (!v->hyper) {
		uint8_t le[4];

		put_le32(le, new_vid);
		return sd_write_object(vid_to_vdi_oid(v->vid), le, 4,
				       SD_INODE_OFF_DATA_VDI_ID +
					       (uint64_t)idx * 4,
				       false, 0);
	}
	pthread_mutex_lock(&v->index_lock);
	ret = btree_set(&v->bt, idx, new_vid);
	if (ret != SD_RES_SUCCESS && view_reopen_btree(v) != SD_RES_SUCCESS)
		sd_err("VDI %s: cannot reopen the B-tree of vid %" PRIx32,
		       v->inode.name, v->vid);
	pthread_mutex_unlock(&v->index_lock);
	if (ret == SD_RES_SUCCESS && old_vid && old_vid != new_vid) {
		obj_refs_add(&cand, idx, old_vid);
		vdi_reclaim(v->vid, &cand);
		obj_refs_free(&cand);
	}
	return ret;
}

/* ---- lookups and the lock, ordered with NEW_VDI through the cluster ---- */

/* GET_VDI_INFO (lock false) or the exclusive LOCK_VDI (lock true) of a
 * name and snapshot id or tag. *vid is set on success and also on
 * VDI_LOCKED (the vid that is locked). SD_RES_* code. */
static int vdi_request(const struct nbd_export_name *n, bool lock,
		       uint32_t *vid)
{
	uint8_t buf[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN] = { 0 };
	struct sd_req rq;
	struct sd_rsp rsp;
	int ret;

	sd_init_req(&rq, lock ? SD_OP_LOCK_VDI : SD_OP_GET_VDI_INFO);
	rq.flags = SD_FLAG_CMD_WRITE | (lock ? SD_FLAG_CMD_EXCL_LOCK : 0);
	rq.vdi.snapid = n->snapid;
	memcpy(buf, n->vdi, strlen(n->vdi));
	memcpy(buf + SD_MAX_VDI_LEN, n->tag, strlen(n->tag));
	ret = exec_local_request(&rq, buf, sizeof(buf), &rsp);
	*vid = rsp.vdi.vdi_id;
	return ret;
}

static void vdi_release(uint32_t vid)
{
	struct sd_req rq;
	struct sd_rsp rsp;
	int ret;

	sd_init_req(&rq, SD_OP_RELEASE_VDI);
	rq.vdi.base_vdi_id = vid;
	ret = exec_local_request(&rq, NULL, 0, &rsp);
	if (ret != SD_RES_SUCCESS)
		sd_warn("vid %" PRIx32 ": cannot release the NBD writer's "
			"lock: %s", vid, sd_strerror(ret));
}

static void busy_msg(const char *vdi, uint32_t vid, char *msg, size_t len)
{
	struct node_id owner;
	char who[64];

	if (vid && vdi_lock_state(vid, &owner) == 2) {
		snprintf(msg, len, "VDI %s is in use by a writer on %s%s", vdi,
			 node_addr_to_str(&owner, who, sizeof(who)),
			 node_id_eq(&owner, &sys->this_node.nid)
				 ? " (this sheep)"
				 : "");
	} else {
		snprintf(msg, len, "VDI %s is locked by another user", vdi);
	}
}

/*
 * The name now belongs to another vid (a snapshot froze ours): take that
 * vid's lock if we write, load it, swap the views, and give up the old
 * vid's lock. seen_gen is the view generation the caller worked with;
 * if another thread reloaded meanwhile, there is nothing to do. 0 or
 * -errno.
 */
static int export_reload(struct nbd_export *e, uint64_t seen_gen)
{
	uint32_t vid, old_vid;
	struct view *nv, *old;
	int ret;

	pthread_mutex_lock(&e->reload_lock);
	if (__atomic_load_n(&e->gen, __ATOMIC_ACQUIRE) != seen_gen) {
		pthread_mutex_unlock(&e->reload_lock);
		return 0;
	}
	old_vid = e->v->vid;
	ret = vdi_request(&e->name, false, &vid);
	if (ret == SD_RES_SUCCESS && vid == old_vid) {
		/* Not a snapshot after all: READONLY has another cause. */
		pthread_mutex_unlock(&e->reload_lock);
		return -EROFS;
	}
	if (ret == SD_RES_SUCCESS && !e->readonly) {
		ret = vdi_request(&e->name, true, &vid);
		if (ret == SD_RES_VDI_LOCKED) {
			sd_err("NBD export %s: the VDI was snapshotted and its "
			       "new vid %" PRIx32 " is locked by another "
			       "writer; refusing further writes",
			       e->name.vdi, vid);
			atomic_store(&e->lock_lost, true);
			pthread_mutex_unlock(&e->reload_lock);
			return -EPERM;
		}
	}
	if (ret == SD_RES_SUCCESS)
		ret = view_load(vid, &nv);
	if (ret != SD_RES_SUCCESS) {
		sd_err("NBD export %s: cannot reload the VDI after a "
		       "snapshot: %s", e->name.vdi, sd_strerror(ret));
		if (!e->readonly && vid != old_vid && ret != SD_RES_NO_VDI)
			vdi_release(vid);
		pthread_mutex_unlock(&e->reload_lock);
		return res_to_errno(ret) == -ENOENT ? -EIO : res_to_errno(ret);
	}

	pthread_rwlock_wrlock(&e->view_lock);
	old = e->v;
	e->v = nv;
	__atomic_add_fetch(&e->gen, 1, __ATOMIC_RELEASE);
	pthread_rwlock_unlock(&e->view_lock);

	if (!e->readonly) {
		pthread_mutex_lock(&writers_lock);
		e->lock_vid = vid;
		pthread_mutex_unlock(&writers_lock);
		vdi_release(old_vid);
	}
	pthread_mutex_unlock(&e->reload_lock);
	sd_info("NBD export %s: vid %" PRIx32 " became a snapshot; now on "
		"vid %" PRIx32, e->name.vdi, old_vid, vid);
	view_free(old);
	return 0;
}

/* ---- open and close ---- */

static void export_free(struct nbd_export *e)
{
	view_free(e->v);
	pthread_rwlock_destroy(&e->view_lock);
	pthread_mutex_destroy(&e->reload_lock);
	for (int i = 0; i < ALLOC_STRIPES; i++)
		pthread_mutex_destroy(&e->alloc_lock[i]);
	free(e);
}

/* Enter this node's table of writers; false if the name has one. */
static bool writers_add(struct nbd_export *e)
{
	struct nbd_export *w;

	pthread_mutex_lock(&writers_lock);
	list_for_each_entry(w, &writers, w_list) {
		if (!strcmp(w->name.vdi, e->name.vdi)) {
			pthread_mutex_unlock(&writers_lock);
			return false;
		}
	}
	list_add_tail(&e->w_list, &writers);
	pthread_mutex_unlock(&writers_lock);
	return true;
}

static void writers_del(struct nbd_export *e)
{
	pthread_mutex_lock(&writers_lock);
	list_del(&e->w_list);
	e->lock_vid = 0;
	pthread_mutex_unlock(&writers_lock);
}

int nbd_export_open(const char *name, bool want_write, struct nbd_export **out,
		    char *msg, size_t msg_len)
{
	pthread_rwlockattr_t attr;
	struct nbd_export *e;
	const char *why;
	uint32_t vid = 0;
	int ret, err;

	*out = NULL;
	e = xzalloc(sizeof(*e));
	if (nbd_export_parse_name(name, &e->name, &why) < 0) {
		snprintf(msg, msg_len, "invalid export name '%.300s': %s", name,
			 why);
		free(e);
		return -EINVAL;
	}
	if (sys_status() != SD_STATUS_OK) {
		snprintf(msg, msg_len, "the cluster is not running");
		free(e);
		return -ESHUTDOWN;
	}
	e->snapshot = nbd_export_name_is_snapshot(&e->name);
	e->readonly = e->snapshot || !want_write;
	pthread_rwlockattr_init(&attr);
	/* A reload must not starve behind a stream of I/O. */
	pthread_rwlockattr_setkind_np(&attr,
				      PTHREAD_RWLOCK_PREFER_WRITER_NONRECURSIVE_NP);
	pthread_rwlock_init(&e->view_lock, &attr);
	pthread_rwlockattr_destroy(&attr);
	pthread_mutex_init(&e->reload_lock, NULL);
	for (int i = 0; i < ALLOC_STRIPES; i++)
		pthread_mutex_init(&e->alloc_lock[i], NULL);
	INIT_LIST_NODE(&e->w_list);

	if (e->readonly) {
		ret = vdi_request(&e->name, false, &vid);
	} else if (!writers_add(e)) {
		snprintf(msg, msg_len, "VDI %s is in use by another NBD writer "
			 "on this sheep", e->name.vdi);
		export_free(e);
		return -EBUSY;
	} else {
		ret = vdi_request(&e->name, true, &vid);
		if (ret == SD_RES_SUCCESS) {
			pthread_mutex_lock(&writers_lock);
			e->lock_vid = vid;
			pthread_mutex_unlock(&writers_lock);
		}
	}
	if (ret == SD_RES_SUCCESS)
		ret = view_load(vid, &e->v);
	if (ret == SD_RES_SUCCESS) {
		e->size = e->v->inode.vdi_size;
		e->shift = e->v->inode.block_size_shift;
		sd_info("NBD export %s opened: vid %" PRIx32 ", %" PRIu64
			" bytes, %s", name, vid, e->size,
			e->readonly ? "read-only" : "writable, locked");
		*out = e;
		return 0;
	}

	err = res_to_errno(ret);
	switch (ret) {
	case SD_RES_NO_VDI:
		snprintf(msg, msg_len, "no VDI %s", e->name.vdi);
		break;
	case SD_RES_NO_TAG:
		if (e->name.tag[0])
			snprintf(msg, msg_len, "VDI %s has no snapshot tagged %s",
				 e->name.vdi, e->name.tag);
		else
			snprintf(msg, msg_len, "VDI %s has no snapshot %" PRIu32,
				 e->name.vdi, e->name.snapid);
		break;
	case SD_RES_VDI_LOCKED:
		busy_msg(e->name.vdi, vid, msg, msg_len);
		break;
	default:
		snprintf(msg, msg_len, "cannot open VDI %s: %s", e->name.vdi,
			 sd_strerror(ret));
		break;
	}
	sd_info("NBD export %s refused: %s", name, msg);
	if (!e->readonly) {
		bool locked = e->lock_vid != 0;

		writers_del(e);
		if (locked)
			vdi_release(vid);
	}
	export_free(e);
	return err;
}

void nbd_export_close(struct nbd_export *e)
{
	uint32_t vid = 0;

	if (!e)
		return;
	if (!e->readonly) {
		pthread_mutex_lock(&writers_lock);
		vid = e->lock_vid;
		list_del(&e->w_list);
		e->lock_vid = 0;
		pthread_mutex_unlock(&writers_lock);
		/* A broken lock may be somebody else's by now. */
		if (vid && !atomic_load(&e->lock_lost))
			vdi_release(vid);
	}
	sd_info("NBD export %s%s%s closed", e->name.vdi,
		e->snapshot ? " snapshot " : "",
		e->name.tag[0] ? e->name.tag : "");
	export_free(e);
}

void nbd_export_lock_released(uint32_t vid)
{
	struct nbd_export *w;

	pthread_mutex_lock(&writers_lock);
	list_for_each_entry(w, &writers, w_list) {
		if (w->lock_vid != vid || atomic_load(&w->lock_lost))
			continue;
		atomic_store(&w->lock_lost, true);
		sd_warn("NBD export %s: the lock on vid %" PRIx32 " was "
			"released by an administrator; refusing further "
			"writes", w->name.vdi, vid);
	}
	pthread_mutex_unlock(&writers_lock);
}

uint64_t nbd_export_size(const struct nbd_export *e)
{
	return e->size;
}

bool nbd_export_readonly(const struct nbd_export *e)
{
	return e->readonly;
}

bool nbd_export_multi_conn(const struct nbd_export *e)
{
	return e->readonly;
}

/* ---- I/O ---- */

/* The view for one piece of I/O: held (read side) until view_put. */
static struct view *view_get(struct nbd_export *e, uint64_t *gen)
{
	pthread_rwlock_rdlock(&e->view_lock);
	*gen = e->gen;
	return e->v;
}

static void view_put(struct nbd_export *e)
{
	pthread_rwlock_unlock(&e->view_lock);
}

static pthread_mutex_t *stripe(struct nbd_export *e, uint32_t idx)
{
	return &e->alloc_lock[idx % ALLOC_STRIPES];
}

/*
 * A read-only export of a working VDI follows its writer (another client,
 * maybe on another sheep): the slot is read again from the flat inode for
 * every piece. Hyper volumes and snapshots use the index loaded at open.
 */
static uint32_t slot_for_read(struct nbd_export *e, struct view *v,
			      uint32_t idx)
{
	uint8_t le[4];

	if (!e->readonly || e->snapshot || v->hyper ||
	    sd_read_object(vid_to_vdi_oid(v->vid), le, 4,
			   SD_INODE_OFF_DATA_VDI_ID + (uint64_t)idx * 4) !=
		    SD_RES_SUCCESS)
		return slot_get(v, idx);
	slot_set(v, idx, get_le32(le));
	return get_le32(le);
}

static int read_piece(struct nbd_export *e, struct view *v,
		      const struct obj_piece *p, uint8_t *buf)
{
	for (int tries = 0;; tries++) {
		uint32_t vid = slot_for_read(e, v, p->idx), now;
		int ret;

		if (!vid) {
			memset(buf, 0, p->len);
			return SD_RES_SUCCESS;
		}
		ret = sd_read_object(vid_to_data_oid(vid, p->idx), buf, p->len,
				     p->off);
		if (ret != SD_RES_NO_OBJ || tries > 0)
			return ret;
		/* Released by a concurrent trim? Wait for it, look again. */
		pthread_mutex_lock(stripe(e, p->idx));
		now = slot_get(v, p->idx);
		pthread_mutex_unlock(stripe(e, p->idx));
		if (now == vid && (e->snapshot || !e->readonly || v->hyper))
			return ret;
	}
}

int nbd_export_read(struct nbd_export *e, uint64_t off, uint32_t len,
		    void *buf)
{
	struct obj_range r;
	struct obj_piece p;

	obj_range_init(&r, off, len, e->shift);
	while (obj_range_next(&r, &p)) {
		uint64_t gen;
		struct view *v = view_get(e, &gen);
		bool frozen = e->readonly && !e->snapshot &&
			      vdi_is_snapshot(v->vid);
		int ret;

		if (frozen) {
			/* Follow the name to its new working vid. */
			view_put(e);
			ret = export_reload(e, gen);
			if (ret < 0 && ret != -EROFS)
				return ret;
			v = view_get(e, &gen);
		}
		ret = read_piece(e, v, &p, (uint8_t *)buf + p.pos);
		view_put(e);
		if (ret != SD_RES_SUCCESS) {
			sd_err("NBD export %s: read of %" PRIu32 " bytes at %"
			       PRIu64 " failed: %s", e->name.vdi, len, off,
			       sd_strerror(ret));
			return res_to_errno(ret);
		}
	}
	return 0;
}

/*
 * For an event loop's fast path: the object holding a read of [off,
 * off+len), when it is one piece whose slot needs no lookup beyond the
 * index in memory. 1 with *oid (0: a hole, reads as zeros) and *obj_off;
 * 0 when only nbd_export_read can serve it (it spans objects, or the
 * export follows another writer's index).
 */
int nbd_export_read_target(struct nbd_export *e, uint64_t off, uint32_t len,
			   uint64_t *oid, uint32_t *obj_off)
{
	uint64_t obj_mask = (1ULL << e->shift) - 1, idx = off >> e->shift, gen;
	struct view *v;
	uint32_t vid;

	if ((off & obj_mask) + len > obj_mask + 1 || (e->readonly && !e->snapshot))
		return 0;
	v = view_get(e, &gen);
	vid = slot_get(v, idx);
	view_put(e);
	*oid = vid ? vid_to_data_oid(vid, idx) : 0;
	*obj_off = off & obj_mask;
	return 1;
}

/*
 * Write into object idx of v: straight through when v's vid owns it;
 * otherwise create the object (copy on write from the inherited one)
 * and then record it in the inode, under the object's stripe lock so
 * that only one writer creates it.
 */
static int write_piece(struct nbd_export *e, struct view *v, uint32_t idx,
		       uint32_t off, uint32_t len, const void *buf)
{
	uint64_t oid = vid_to_data_oid(v->vid, idx);
	uint32_t cur;
	int ret;

	if (vdi_is_snapshot(v->vid))
		return SD_RES_READONLY;
	if (slot_get(v, idx) == v->vid)
		return sd_write_object(oid, buf, len, off, false, 0);

	pthread_mutex_lock(stripe(e, idx));
	cur = slot_get(v, idx);
	if (cur == v->vid) {
		pthread_mutex_unlock(stripe(e, idx));
		return sd_write_object(oid, buf, len, off, false, 0);
	}
	if (cur)
		ret = sd_cow_write_object(oid, vid_to_data_oid(cur, idx), buf,
					  len, off, 0);
	else
		ret = sd_write_object(oid, buf, len, off, true, 0);
	if (ret == SD_RES_SUCCESS)
		ret = index_set(v, idx, v->vid, cur);
	if (ret == SD_RES_SUCCESS)
		slot_set(v, idx, v->vid);
	pthread_mutex_unlock(stripe(e, idx));
	return ret;
}

/* Drop object idx from v's index (trim, zero): it reads as zeros. */
static int release_piece(struct nbd_export *e, struct view *v, uint32_t idx)
{
	uint32_t cur;
	int ret = SD_RES_SUCCESS;

	if (vdi_is_snapshot(v->vid))
		return SD_RES_READONLY;
	pthread_mutex_lock(stripe(e, idx));
	cur = slot_get(v, idx);
	if (cur) {
		ret = index_set(v, idx, 0, cur);
		if (ret == SD_RES_SUCCESS)
			slot_set(v, idx, 0);
	}
	pthread_mutex_unlock(stripe(e, idx));
	return ret;
}

enum piece_op { PIECE_WRITE, PIECE_RELEASE, PIECE_ZERO };

/* One piece under the current view, reloading the VDI when a snapshot
 * froze the vid. */
static int do_piece(struct nbd_export *e, enum piece_op op,
		    const struct obj_piece *p, const void *buf)
{
	for (int reloads = 0;; reloads++) {
		uint64_t gen;
		struct view *v;
		int ret;

		if (atomic_load(&e->lock_lost))
			return -EPERM;
		v = view_get(e, &gen);
		switch (op) {
		case PIECE_WRITE:
			ret = write_piece(e, v, p->idx, p->off, p->len, buf);
			break;
		case PIECE_RELEASE:
			ret = release_piece(e, v, p->idx);
			break;
		default:
			ret = SD_RES_SUCCESS;
			/* A hole is zeros already. */
			for (uint32_t done = 0;
			     ret == SD_RES_SUCCESS && done < p->len &&
			     slot_get(v, p->idx);
			     done += ZERO_BUF_SIZE)
				ret = write_piece(e, v, p->idx, p->off + done,
						  MIN(p->len - done,
						      ZERO_BUF_SIZE),
						  zero_buf);
			break;
		}
		view_put(e);
		if (ret == SD_RES_SUCCESS)
			return 0;
		if (ret != SD_RES_READONLY || reloads == MAX_RELOADS) {
			sd_err("NBD export %s: %s of object %" PRIu32 " (%"
			       PRIu32 " bytes at %" PRIu32 ") failed: %s",
			       e->name.vdi,
			       op == PIECE_RELEASE ? "release" : "write",
			       p->idx, p->len, p->off, sd_strerror(ret));
			return res_to_errno(ret);
		}
		ret = export_reload(e, gen);
		if (ret < 0)
			return ret;
	}
}

static int check_writable(const struct nbd_export *e)
{
	if (e->readonly)
		return -EROFS;
	if (atomic_load(&e->lock_lost))
		return -EPERM;
	return 0;
}

/*
 * Every write the gateway acknowledges is on every replica (and synced
 * to disk unless the node runs without sync, -n), so FUA asks for
 * nothing more and flush has nothing to do.
 */
int nbd_export_write(struct nbd_export *e, uint64_t off, uint32_t len,
		     const void *buf, bool fua)
{
	struct obj_range r;
	struct obj_piece p;
	int ret = check_writable(e);

	obj_range_init(&r, off, len, e->shift);
	while (ret == 0 && obj_range_next(&r, &p))
		ret = do_piece(e, PIECE_WRITE, &p,
			       (const uint8_t *)buf + p.pos);
	return ret;
}

int nbd_export_flush(struct nbd_export *e)
{
	return 0;
}

int nbd_export_trim(struct nbd_export *e, uint64_t off, uint32_t len)
{
	struct obj_range r;
	struct obj_piece p;
	int ret = check_writable(e);

	obj_range_init(&r, off, len, e->shift);
	while (ret == 0 && obj_range_next(&r, &p))
		if (obj_piece_whole(&p, e->shift))
			ret = do_piece(e, PIECE_RELEASE, &p, NULL);
	return ret;
}

int nbd_export_zero(struct nbd_export *e, uint64_t off, uint32_t len,
		    bool may_trim, bool fast)
{
	struct obj_range r;
	struct obj_piece p;
	int ret = check_writable(e);

	if (ret == 0 && fast) {
		uint64_t gen;
		struct view *v = view_get(e, &gen);

		obj_range_init(&r, off, len, e->shift);
		while (ret == 0 && obj_range_next(&r, &p))
			if (slot_get(v, p.idx) &&
			    !(may_trim && obj_piece_whole(&p, e->shift)))
				ret = -ENOTSUP;
		view_put(e);
	}
	obj_range_init(&r, off, len, e->shift);
	while (ret == 0 && obj_range_next(&r, &p))
		ret = do_piece(e,
			       may_trim && obj_piece_whole(&p, e->shift)
				       ? PIECE_RELEASE
				       : PIECE_ZERO,
			       &p, NULL);
	return ret;
}

int nbd_export_block_status(struct nbd_export *e, uint64_t off, uint32_t len,
			    unsigned max_extents,
			    int (*fn)(void *arg, uint32_t length,
				      uint32_t flags),
			    void *arg)
{
	struct obj_range r;
	struct obj_piece p;
	uint32_t ext_len = 0, ext_flags = 0;
	unsigned sent = 0;
	uint64_t gen;
	struct view *v = view_get(e, &gen);
	int ret = 0;

	if (!max_extents)
		max_extents = 1;
	obj_range_init(&r, off, len, e->shift);
	while (obj_range_next(&r, &p)) {
		uint32_t flags = slot_get(v, p.idx)
					 ? 0
					 : NBD_STATE_HOLE | NBD_STATE_ZERO;

		if (ext_len && flags != ext_flags) {
			ret = fn(arg, ext_len, ext_flags);
			if (ret || ++sent == max_extents) {
				ext_len = 0;
				break;
			}
			ext_len = 0;
		}
		ext_flags = flags;
		ext_len += p.len;
	}
	view_put(e);
	if (ext_len)
		ret = fn(arg, ext_len, ext_flags);
	return ret;
}

/* ---- NBD_OPT_LIST ---- */

static bool bit_set(const uint8_t *bm, uint32_t n)
{
	return bm[n >> 3] & (1U << (n & 7));
}

int nbd_export_list(int (*fn)(void *arg, const char *name), void *arg)
{
	uint8_t *in_use, *deleted;
	int ret = 0;

	if (sys_status() != SD_STATUS_OK)
		return -ESHUTDOWN;
	in_use = xmalloc(SD_VDI_BITMAP_SIZE);
	deleted = xmalloc(SD_VDI_BITMAP_SIZE);
	vdi_bitmap_copy(in_use, false);
	vdi_bitmap_copy(deleted, true);
	for (uint32_t vid = 1; vid < SD_NR_VDIS && ret == 0; vid++) {
		struct sd_inode_header h;
		int r;

		if (!in_use[vid >> 3]) {
			vid |= 7;
			continue;
		}
		if (!bit_set(in_use, vid) || bit_set(deleted, vid))
			continue;
		r = vdi_read_inode_header(vid, &h);
		if (r != SD_RES_SUCCESS) {
			sd_err("NBD export list: cannot read the inode of vid %"
			       PRIx32 ": %s", vid, sd_strerror(r));
			ret = res_to_errno(r);
			break;
		}
		if (h.name[0] && !inode_is_snapshot(&h))
			ret = fn(arg, h.name);
	}
	free(in_use);
	free(deleted);
	return ret;
}
