/*
 * "dog cluster snapshot save|list|show|load": copies of whole VDI trees kept
 * in a farm directory (backup/farm.c, spec 10.1), deduplicated across
 * snapshots and VDIs.
 *
 * save stores, for every live VDI and snapshot of the named VDIs (all when
 * none is named), its inode (the 4664-byte header and its data_vdi_id[]
 * slots: name, tag, snap_id, parent, size, copies) and every data object
 * its index references, under the object's own oid. load cannot write raw
 * inodes (the sheep would not register them), so it rebuilds each tree
 * with NEW_VDI: per name in snap_id order it creates or clones the first
 * inode, derives each next one by snapshot (or rebase when its parent is
 * an older snapshot), writes only the objects an inode does not share with
 * its parent, and freezes the last one when it was a snapshot. Vids and
 * snapshot ids are given anew (ids keep their order); contents, names,
 * tags, sizes, copies and the parent/clone relations are the saved ones.
 * Everything load needs is read and checked against its SHA-1 before the
 * cluster is touched.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "dog.h"
#include "progress.h"
#include "sheepdog/farm.h"
#include "sheepdog/le.h"

/* One saved inode. */
struct snap_vdi {
	struct sd_inode_header h;
	uint32_t vid; /* as saved */
	uint32_t *slots;
	uint64_t nr_slots;
	uint32_t new_vid; /* load: the vid it got, 0 before */
};

struct vdi_list {
	struct snap_vdi *v;
	size_t nr;
};

static void vdi_list_free(struct vdi_list *l)
{
	for (size_t i = 0; i < l->nr; i++)
		free(l->v[i].slots);
	free(l->v);
	memset(l, 0, sizeof(*l));
}

static struct snap_vdi *vdi_list_add(struct vdi_list *l)
{
	l->v = xrealloc(l->v, (l->nr + 1) * sizeof(*l->v));
	memset(&l->v[l->nr], 0, sizeof(*l->v));
	return &l->v[l->nr++];
}

static struct snap_vdi *find_saved(const struct vdi_list *l, uint32_t vid)
{
	for (size_t i = 0; i < l->nr; i++)
		if (l->v[i].vid == vid)
			return &l->v[i];
	return NULL;
}

/* Name, then snap_id: the order of show and of load. */
static int snap_vdi_cmp(const void *a, const void *b)
{
	const struct snap_vdi *x = a, *y = b;
	int c = strcmp(x->h.name, y->h.name);

	if (c)
		return c;
	return x->h.snap_id < y->h.snap_id ? -1 : x->h.snap_id > y->h.snap_id;
}

static bool name_wanted(const char *name, char **names, int nr)
{
	if (!nr)
		return true;
	for (int i = 0; i < nr; i++)
		if (!strcmp(names[i], name))
			return true;
	return false;
}

static bool list_has_name(const struct vdi_list *l, const char *name)
{
	for (size_t i = 0; i < l->nr; i++)
		if (!strcmp(l->v[i].h.name, name))
			return true;
	return false;
}

static const char *farm_strerror(int err)
{
	if (err == -EBADMSG)
		return "content does not match its SHA-1 or is malformed";
	return strerror(-err);
}

/* An inode as saved: its header and the first nr_slots slots (missing
 * slots of a short inode are empty). -EBADMSG when it is not an inode. */
static int parse_inode(const uint8_t *buf, size_t len, struct snap_vdi *v)
{
	if (len < SD_INODE_HEADER_SIZE)
		return -EBADMSG;
	sd_inode_header_decode(buf, &v->h);
	if (v->h.block_size_shift < SD_MIN_BLOCK_SIZE_SHIFT ||
	    v->h.block_size_shift > SD_MAX_BLOCK_SIZE_SHIFT)
		return -EBADMSG;
	v->nr_slots = MIN(inode_nr_slots(v->h.vdi_size, v->h.block_size_shift),
			  SD_MAX_DATA_OBJS);
	v->slots = xcalloc(v->nr_slots ? v->nr_slots : 1, sizeof(uint32_t));
	for (uint64_t i = 0; i < v->nr_slots; i++) {
		size_t off = SD_INODE_OFF_DATA_VDI_ID + 4 * i;

		if (off + 4 > len)
			break;
		v->slots[i] = get_le32(buf + off);
	}
	return 0;
}

static void format_time(uint64_t t, char *buf, size_t len)
{
	time_t tt = (time_t)t;
	struct tm tm;

	if (raw_output) {
		snprintf(buf, len, "%" PRIu64, t);
		return;
	}
	localtime_r(&tt, &tm);
	strftime(buf, len, "%Y-%m-%d %H:%M:%S", &tm);
}

static int open_farm(const char *path, bool create, struct farm **f)
{
	int ret = farm_open(path, create, f);

	if (ret == -EWOULDBLOCK)
		sd_err("Snapshot path %s is in use by another dog", path);
	else if (ret)
		sd_err("Failed to open snapshot path %s: %s", path,
		       strerror(-ret));
	return ret ? EXIT_FAILURE : EXIT_SUCCESS;
}

/* ---- save ---- */

struct collect {
	struct vdi_list *list;
	char **names;
	int nr_names;
};

static void collect_vdi(const struct sd_inode_header *h, void *data)
{
	struct collect *c = data;

	if (name_wanted(h->name, c->names, c->nr_names))
		vdi_list_add(c->list)->h = *h;
}

/* The data objects a snapshot keeps: every oid an index references. */
struct plan_obj {
	uint64_t oid;
	uint8_t copies, copy_policy, shift;
};

static int plan_cmp(const void *a, const void *b)
{
	const struct plan_obj *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static int read_saved_inode(struct snap_vdi *v, uint8_t **raw, size_t *len)
{
	uint64_t nr = MIN(inode_nr_slots(v->h.vdi_size, v->h.block_size_shift),
			  SD_MAX_DATA_OBJS);

	*len = SD_INODE_HEADER_SIZE + 4 * nr;
	*raw = xmalloc(*len);
	v->vid = v->h.vdi_id;
	if (dog_read_object(vid_to_vdi_oid(v->vid), *raw, *len, 0) !=
	    SD_RES_SUCCESS) {
		free(*raw);
		return -1;
	}
	free(v->slots);
	v->slots = NULL;
	return parse_inode(*raw, *len, v) ? -1 : 0;
}

static int get_cluster_default(struct farm_header *fh)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_GET_CLUSTER_DEFAULT);
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to get the cluster's defaults: %s",
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	fh->copies = rsp.cluster_default.nr_copies;
	fh->copy_policy = rsp.cluster_default.copy_policy;
	fh->block_size_shift = rsp.cluster_default.block_size_shift;
	return EXIT_SUCCESS;
}

/* Collect the VDIs to save; every named VDI must exist. */
static int collect_vdis(struct vdi_list *list, char **names, int nr_names)
{
	struct collect c = {list, names, nr_names};

	if (dog_for_each_vdi(true, collect_vdi, &c) < 0)
		return EXIT_SYSFAIL;
	for (int i = 0; i < nr_names; i++) {
		if (!list_has_name(list, names[i])) {
			sd_err("Failed to save: VDI %s does not exist",
			       names[i]);
			return EXIT_MISSING;
		}
	}
	if (!list->nr) {
		sd_err("Failed to save: the cluster has no VDIs");
		return EXIT_FAILURE;
	}
	for (size_t i = 0; i < list->nr; i++) {
		if (list->v[i].h.store_policy != 0) {
			sd_err("Failed to save: VDI %s is a hyper volume; "
			       "cluster snapshot does not support them",
			       list->v[i].h.name);
			return EXIT_FAILURE;
		}
	}
	return EXIT_SUCCESS;
}

static int save_objects(struct farm *f, struct vdi_list *list,
			struct farm_trunk_entry **trunk, size_t *nr_trunk,
			uint64_t *read_bytes, uint64_t *added)
{
	struct plan_obj *plan = NULL;
	size_t nr_plan = 0, n = 0, cap = 0;
	uint64_t total = 0, add;
	struct progress prog;
	uint8_t *buf = NULL;
	uint8_t **raws = xcalloc(list->nr, sizeof(*raws));
	size_t *raw_lens = xcalloc(list->nr, sizeof(*raw_lens));
	int ret = EXIT_FAILURE, err;

	for (size_t i = 0; i < list->nr; i++) {
		struct snap_vdi *v = &list->v[i];

		if (read_saved_inode(v, &raws[i], &raw_lens[i]) < 0) {
			sd_err("Failed to read the inode of VDI %s", v->h.name);
			goto out;
		}
		total += raw_lens[i];
		for (uint64_t idx = 0; idx < v->nr_slots; idx++) {
			if (!v->slots[idx])
				continue;
			if (nr_plan == cap) {
				cap = cap ? cap * 2 : 256;
				plan = xrealloc(plan, cap * sizeof(*plan));
			}
			plan[nr_plan++] = (struct plan_obj){
			    vid_to_data_oid(v->slots[idx], idx), v->h.nr_copies,
			    v->h.copy_policy, v->h.block_size_shift};
		}
	}
	if (nr_plan)
		qsort(plan, nr_plan, sizeof(*plan), plan_cmp);
	for (size_t i = 0; i < nr_plan; i++)
		if (!n || plan[n - 1].oid != plan[i].oid)
			plan[n++] = plan[i];
	nr_plan = n;
	for (size_t i = 0; i < nr_plan; i++)
		total += UINT64_C(1) << plan[i].shift;

	*trunk = xcalloc(list->nr + nr_plan, sizeof(**trunk));
	*nr_trunk = 0;
	progress_start(&prog, "save", total);
	for (size_t i = 0; i < list->nr; i++) {
		struct snap_vdi *v = &list->v[i];
		struct farm_trunk_entry *e = &(*trunk)[(*nr_trunk)++];

		e->oid = vid_to_vdi_oid(v->vid);
		e->nr_copies = v->h.nr_copies;
		e->copy_policy = v->h.copy_policy;
		e->block_size_shift = v->h.block_size_shift;
		err = farm_put_object(f, raws[i], raw_lens[i], e->sha1, &add);
		if (err)
			goto write_fail;
		*added += add;
		*read_bytes += raw_lens[i];
		progress_add(&prog, raw_lens[i]);
	}
	for (size_t i = 0; i < nr_plan; i++) {
		uint32_t objsize = UINT32_C(1) << plan[i].shift;
		struct farm_trunk_entry *e = &(*trunk)[(*nr_trunk)++];

		buf = xrealloc(buf, objsize);
		if (dog_read_object(plan[i].oid, buf, objsize, 0) !=
		    SD_RES_SUCCESS) {
			progress_abort(&prog);
			sd_err("Failed to save: cannot read object %016" PRIx64,
			       plan[i].oid);
			goto out;
		}
		e->oid = plan[i].oid;
		e->nr_copies = plan[i].copies;
		e->copy_policy = plan[i].copy_policy;
		e->block_size_shift = plan[i].shift;
		err = farm_put_object(f, buf, objsize, e->sha1, &add);
		if (err)
			goto write_fail;
		*added += add;
		*read_bytes += objsize;
		progress_add(&prog, objsize);
	}
	progress_finish(&prog);
	ret = EXIT_SUCCESS;
	goto out;
write_fail:
	progress_abort(&prog);
	sd_err("Failed to save: cannot write to the snapshot path: %s",
	       strerror(-err));
out:
	for (size_t i = 0; i < list->nr; i++)
		free(raws[i]);
	free(raws);
	free(raw_lens);
	free(plan);
	free(buf);
	return ret;
}

static int snapshot_save(const char *tag, const char *path, char **names,
			 int nr_names)
{
	struct vdi_list list = {0};
	struct farm_trunk_entry *trunk = NULL;
	struct farm_snap *snaps = NULL, snap = {0};
	struct farm_header fh;
	struct farm *f = NULL;
	size_t nr_trunk = 0, nr_snaps = 0;
	uint64_t read_bytes = 0, added = 0;
	char s1[32], s2[32];
	int ret, err;

	if (!farm_tag_valid(tag)) {
		sd_err("Invalid snapshot tag '%s': a tag has 1 to %d "
		       "characters and does not start with a digit",
		       tag, FARM_TAG_LEN - 1);
		return EXIT_USAGE;
	}
	ret = get_cluster_default(&fh);
	if (ret != EXIT_SUCCESS)
		return ret;
	ret = collect_vdis(&list, names, nr_names);
	if (ret != EXIT_SUCCESS)
		goto out;
	ret = open_farm(path, true, &f);
	if (ret != EXIT_SUCCESS)
		goto out;
	err = farm_read_snaps(f, &(struct farm_header){0}, &snaps, &nr_snaps);
	if (err && err != -ENOENT) {
		sd_err("Failed to read %s/user_snap: %s", path,
		       farm_strerror(err));
		ret = EXIT_FAILURE;
		goto out;
	}
	for (size_t i = 0; i < nr_snaps; i++) {
		if (!strcmp(snaps[i].tag, tag)) {
			sd_err("Snapshot tag '%s' already exists in %s", tag,
			       path);
			ret = EXIT_EXISTS;
			goto out;
		}
	}

	ret = save_objects(f, &list, &trunk, &nr_trunk, &read_bytes, &added);
	if (ret != EXIT_SUCCESS)
		goto out;
	err = farm_put_trunk(f, trunk, nr_trunk, snap.trunk_sha1);
	if (!err) {
		put_fixed_str(snap.tag, sizeof(snap.tag), tag);
		snap.time = (uint64_t)time(NULL);
		err = farm_add_snap(f, &fh, &snap);
	}
	if (err) {
		sd_err("Failed to save: cannot write to the snapshot path: %s",
		       strerror(-err));
		ret = EXIT_FAILURE;
		goto out;
	}
	printf("Snapshot %" PRIu32 " '%s' saved: %zu VDIs, %zu objects, "
	       "%s read, %s added to %s\n",
	       snap.idx, tag, list.nr, nr_trunk, strnum(read_bytes, s1),
	       strnum(added, s2), path);
out:
	farm_close(f);
	free(snaps);
	free(trunk);
	vdi_list_free(&list);
	return ret;
}

/* ---- reading a snapshot back (list, show, load) ---- */

struct loaded {
	struct farm *f;
	struct farm_snap snap;
	struct farm_header fh;
	struct farm_trunk_entry *trunk; /* sorted by oid */
	size_t nr_trunk;
	struct vdi_list vdis; /* the selected inodes, by name and snap_id */
};

static void loaded_free(struct loaded *l)
{
	farm_close(l->f);
	free(l->trunk);
	vdi_list_free(&l->vdis);
}

static int trunk_cmp(const void *a, const void *b)
{
	const struct farm_trunk_entry *x = a, *y = b;

	return x->oid < y->oid ? -1 : x->oid > y->oid;
}

static const struct farm_trunk_entry *trunk_find(const struct loaded *l,
						 uint64_t oid)
{
	struct farm_trunk_entry key = {.oid = oid};

	return bsearch(&key, l->trunk, l->nr_trunk, sizeof(key), trunk_cmp);
}

static void damaged(const struct loaded *l, const char *what,
		    const uint8_t sha1[SHA1_DIGEST_SIZE], int err)
{
	char file[4200];

	farm_file_path(l->f, sha1, file, sizeof(file));
	sd_err("Snapshot %" PRIu32 " '%s' is damaged: %s: %s: %s", l->snap.idx,
	       l->snap.tag, what, file, farm_strerror(err));
}

/* Open the farm, find the snapshot, read its trunk and its inodes (those
 * of the named VDIs, all when none is named). */
static int load_snapshot(const char *which, const char *path, char **names,
			 int nr_names, struct loaded *l)
{
	struct farm_snap *snaps = NULL;
	const struct farm_snap *s;
	size_t nr_snaps;
	uint8_t *buf = xmalloc(SD_INODE_SIZE), bad[SHA1_DIGEST_SIZE];
	int ret, err;

	memset(l, 0, sizeof(*l));
	ret = open_farm(path, false, &l->f);
	if (ret != EXIT_SUCCESS)
		goto out;
	ret = EXIT_FAILURE;
	err = farm_read_snaps(l->f, &l->fh, &snaps, &nr_snaps);
	if (err == -ENOENT) {
		sd_err("%s holds no cluster snapshot", path);
		goto out;
	}
	if (err) {
		sd_err("Failed to read %s/user_snap: %s", path,
		       farm_strerror(err));
		goto out;
	}
	s = farm_find_snap(snaps, nr_snaps, which);
	if (!s) {
		sd_err("Snapshot %s not found in %s", which, path);
		ret = EXIT_MISSING;
		goto out;
	}
	l->snap = *s;
	err = farm_get_trunk(l->f, s->trunk_sha1, &l->trunk, &l->nr_trunk);
	if (err) {
		damaged(l, "its trunk", s->trunk_sha1, err);
		goto out;
	}
	qsort(l->trunk, l->nr_trunk, sizeof(*l->trunk), trunk_cmp);

	for (size_t i = 0; i < l->nr_trunk; i++) {
		const struct farm_trunk_entry *e = &l->trunk[i];
		struct snap_vdi v = {0};
		char what[64];
		size_t len;

		if (!is_vdi_obj(e->oid))
			continue;
		snprintf(what, sizeof(what), "inode %016" PRIx64, e->oid);
		err = farm_get_object(l->f, e->sha1, buf, SD_INODE_SIZE, &len,
				      bad);
		if (err) {
			damaged(l, what, bad, err);
			goto out;
		}
		err = parse_inode(buf, len, &v);
		if (err) {
			damaged(l, what, e->sha1, err);
			goto out;
		}
		v.vid = oid_to_vid(e->oid);
		/* a deleted VDI's tombstone has no name */
		if (!v.h.name[0] || !name_wanted(v.h.name, names, nr_names)) {
			free(v.slots);
			continue;
		}
		*vdi_list_add(&l->vdis) = v;
	}
	for (int i = 0; i < nr_names; i++) {
		if (!list_has_name(&l->vdis, names[i])) {
			sd_err("VDI %s is not in snapshot %" PRIu32 " '%s'",
			       names[i], l->snap.idx, l->snap.tag);
			ret = EXIT_MISSING;
			goto out;
		}
	}
	if (l->vdis.nr)
		qsort(l->vdis.v, l->vdis.nr, sizeof(*l->vdis.v), snap_vdi_cmp);
	ret = EXIT_SUCCESS;
out:
	free(snaps);
	free(buf);
	if (ret != EXIT_SUCCESS)
		loaded_free(l);
	return ret;
}

/* ---- list ---- */

static int snapshot_list(const char *path)
{
	struct farm_snap *snaps = NULL;
	struct farm_header fh;
	struct farm *f;
	size_t nr;
	char when[64];
	int err, ret = open_farm(path, false, &f);

	if (ret != EXIT_SUCCESS)
		return ret;
	err = farm_read_snaps(f, &fh, &snaps, &nr);
	farm_close(f);
	if (err == -ENOENT) {
		sd_err("%s holds no cluster snapshot", path);
		return EXIT_FAILURE;
	}
	if (err) {
		sd_err("Failed to read %s/user_snap: %s", path,
		       farm_strerror(err));
		return EXIT_FAILURE;
	}
	if (!raw_output)
		printf("Index  Time                 Tag\n");
	for (size_t i = 0; i < nr; i++) {
		format_time(snaps[i].time, when, sizeof(when));
		printf(raw_output ? "%" PRIu32 " %s %s\n"
				  : "%5" PRIu32 "  %-19s  %s\n",
		       snaps[i].idx, when, snaps[i].tag);
	}
	free(snaps);
	return EXIT_SUCCESS;
}

/* ---- show ---- */

static uint64_t allocated_bytes(const struct snap_vdi *v)
{
	uint64_t n = 0;

	for (uint64_t i = 0; i < v->nr_slots; i++)
		n += v->slots[i] != 0;
	return n << v->h.block_size_shift;
}

static int snapshot_show(const char *which, const char *path, char **names,
			 int nr_names)
{
	struct loaded l;
	int ret = load_snapshot(which, path, names, nr_names, &l);

	if (ret != EXIT_SUCCESS)
		return ret;
	if (!raw_output)
		printf("  Name              Id       Size  Allocated  Copies  "
		       "Tag              Parent\n");
	for (size_t i = 0; i < l.vdis.nr; i++) {
		const struct snap_vdi *v = &l.vdis.v[i];
		const struct snap_vdi *p =
		    find_saved(&l.vdis, v->h.parent_vdi_id);
		bool snapshot = inode_is_snapshot(&v->h);
		bool clone = v->h.snap_id == 1 && v->h.parent_vdi_id != 0;
		char s1[32], s2[32], copies[16], parent[300];

		if (p && v->h.parent_vdi_id)
			snprintf(parent, sizeof(parent), "%s:%" PRIu32,
				 p->h.name, p->h.snap_id);
		else
			snprintf(parent, sizeof(parent), "-");
		redundancy_str(v->h.nr_copies, v->h.copy_policy, copies,
			       sizeof(copies));
		printf(raw_output ? "%c %s %" PRIu32 " %s %s %s %s %s\n"
				  : "%c %-16s %3" PRIu32 " %10s %10s %7s  "
				    "%-16s %s\n",
		       snapshot ? 's' : (clone ? 'c' : '='), v->h.name,
		       snapshot ? v->h.snap_id : 0, strnum(v->h.vdi_size, s1),
		       strnum(allocated_bytes(v), s2), copies,
		       v->h.tag[0] ? v->h.tag : "-", parent);
	}
	loaded_free(&l);
	return EXIT_SUCCESS;
}

/* ---- load ---- */

static int entry_cmp(const void *a, const void *b)
{
	const struct farm_trunk_entry *const *x = a, *const *y = b;

	return *x < *y ? -1 : *x > *y;
}

/*
 * Every data object the selected inodes reference: present in the trunk
 * and intact. Nothing in the cluster is touched. *total gets the bytes
 * load will write.
 */
static int verify_snapshot(struct loaded *l, uint64_t *total)
{
	const struct farm_trunk_entry **need = NULL;
	size_t nr = 0, cap = 0, n = 0;
	uint64_t bytes = 0;
	struct progress prog;
	uint8_t *buf = NULL, bad[SHA1_DIGEST_SIZE];
	int ret = EXIT_FAILURE;

	*total = 0;
	for (size_t i = 0; i < l->vdis.nr; i++) {
		const struct snap_vdi *v = &l->vdis.v[i];

		for (uint64_t idx = 0; idx < v->nr_slots; idx++) {
			uint64_t oid = vid_to_data_oid(v->slots[idx], idx);
			const struct farm_trunk_entry *e;

			if (!v->slots[idx])
				continue;
			e = trunk_find(l, oid);
			if (!e) {
				sd_err("Snapshot %" PRIu32 " '%s' is damaged: "
				       "object %016" PRIx64 " of VDI %s is "
				       "missing from its trunk",
				       l->snap.idx, l->snap.tag, oid,
				       v->h.name);
				goto out;
			}
			if (nr == cap) {
				cap = cap ? cap * 2 : 256;
				need = xrealloc(need, cap * sizeof(*need));
			}
			need[nr++] = e;
			*total += UINT64_C(1) << v->h.block_size_shift;
		}
	}
	if (nr)
		qsort(need, nr, sizeof(*need), entry_cmp);
	for (size_t i = 0; i < nr; i++)
		if (!n || need[n - 1] != need[i])
			need[n++] = need[i];
	for (size_t i = 0; i < n; i++)
		bytes += UINT64_C(1) << need[i]->block_size_shift;

	progress_start(&prog, "verify", bytes);
	for (size_t i = 0; i < n; i++) {
		size_t max = UINT64_C(1) << need[i]->block_size_shift, len;
		char what[64];
		int err;

		buf = xrealloc(buf, max);
		err = farm_get_object(l->f, need[i]->sha1, buf, max, &len, bad);
		if (err) {
			progress_abort(&prog);
			snprintf(what, sizeof(what), "object %016" PRIx64,
				 need[i]->oid);
			damaged(l, what, bad, err);
			goto out;
		}
		progress_add(&prog, max);
	}
	progress_finish(&prog);
	ret = EXIT_SUCCESS;
out:
	free(need);
	free(buf);
	return ret;
}

struct name_set {
	const struct vdi_list *want;
	char *clash;
};

static void find_clash(const struct sd_inode_header *h, void *data)
{
	struct name_set *s = data;

	if (!s->clash && list_has_name(s->want, h->name))
		s->clash = xstrdup(h->name);
}

/* The cluster must not hold any VDI of the names load recreates. */
static int check_cluster(const struct loaded *l)
{
	struct name_set s = {&l->vdis, NULL};

	if (dog_for_each_vdi(true, find_clash, &s) < 0)
		return EXIT_SYSFAIL;
	if (s.clash) {
		sd_err("VDI %s already exists in the cluster; load recreates "
		       "VDIs only under names the cluster does not use "
		       "(delete it, or load into a freshly formatted "
		       "cluster)",
		       s.clash);
		free(s.clash);
		return EXIT_EXISTS;
	}
	return EXIT_SUCCESS;
}

/* Indices into l->vdis grouped by name, the groups ordered so that a name
 * comes after the names its clones were made from. */
static int load_order(const struct loaded *l, size_t *order)
{
	size_t nr = l->vdis.nr, done = 0;
	bool *placed = xcalloc(nr ? nr : 1, sizeof(bool));
	int ret = EXIT_SUCCESS;

	while (done < nr) {
		bool progress = false;

		for (size_t i = 0; i < nr; i++) {
			size_t end = i;
			bool ready = true;

			if (placed[i] || (i && !strcmp(l->vdis.v[i - 1].h.name,
						       l->vdis.v[i].h.name)))
				continue;
			while (end < nr && !strcmp(l->vdis.v[end].h.name,
						   l->vdis.v[i].h.name))
				end++;
			for (size_t j = i; j < end && ready; j++) {
				const struct snap_vdi *p = find_saved(
				    &l->vdis, l->vdis.v[j].h.parent_vdi_id);

				if (p && l->vdis.v[j].h.parent_vdi_id &&
				    strcmp(p->h.name, l->vdis.v[i].h.name) &&
				    !placed[p - l->vdis.v])
					ready = false;
			}
			if (!ready)
				continue;
			for (size_t j = i; j < end; j++) {
				placed[j] = true;
				order[done++] = j;
			}
			progress = true;
		}
		if (!progress) {
			sd_err("Cannot load: the VDIs of the snapshot were "
			       "cloned from each other in a cycle");
			ret = EXIT_FAILURE;
			break;
		}
	}
	free(placed);
	return ret;
}

static int write_inode_field(uint32_t vid, const struct sd_inode_header *h,
			     const void *buf, uint32_t len, uint64_t off)
{
	return dog_write_object(vid_to_vdi_oid(vid), 0, buf, len, off, 0,
				h->nr_copies, h->copy_policy, false);
}

/*
 * Give the freshly derived v (v->new_vid) the saved tag, size and index:
 * objects it shares with what it was derived from stay shared, the others
 * are written from the farm.
 */
static int fill_vdi(struct loaded *l, struct snap_vdi *v, uint8_t *buf,
		    struct progress *prog)
{
	uint64_t objsize = UINT64_C(1) << v->h.block_size_shift;
	struct sd_inode_header cur;
	struct vdi_index ix;
	uint8_t slot[4], tag[SD_MAX_VDI_TAG_LEN] = {0}, size[8];
	int ret;

	if (dog_read_inode_header(v->new_vid, &cur) != SD_RES_SUCCESS)
		return EXIT_FAILURE;
	if (v->h.tag[0]) {
		memcpy(tag, v->h.tag, strnlen(v->h.tag, sizeof(tag) - 1));
		if (write_inode_field(v->new_vid, &cur, tag, sizeof(tag),
				      SD_INODE_OFF_TAG) != SD_RES_SUCCESS)
			return EXIT_FAILURE;
	}
	if (cur.vdi_size != v->h.vdi_size) {
		put_le64(size, v->h.vdi_size);
		if (write_inode_field(v->new_vid, &cur, size, sizeof(size),
				      SD_INODE_OFF_VDI_SIZE) != SD_RES_SUCCESS)
			return EXIT_FAILURE;
		cur.vdi_size = v->h.vdi_size;
	}
	if (dog_read_vdi_index(&cur, &ix) != SD_RES_SUCCESS)
		return EXIT_FAILURE;

	ret = EXIT_SUCCESS;
	for (uint64_t idx = 0; idx < v->nr_slots && ret == EXIT_SUCCESS;
	     idx++) {
		uint32_t s = v->slots[idx], have = vdi_index_get(&ix, idx);
		const struct snap_vdi *owner =
		    s ? find_saved(&l->vdis, s) : NULL;
		uint32_t want = owner ? owner->new_vid : 0;
		const struct farm_trunk_entry *e;
		size_t len;

		if (s)
			progress_add(prog, objsize);
		if (!s) {
			if (!have)
				continue;
			put_le32(slot, 0);
		} else if (want && want == have) {
			continue;
		} else {
			e = trunk_find(l, vid_to_data_oid(s, idx));
			if (!e || farm_get_object(l->f, e->sha1, buf, objsize,
						  &len, NULL)) {
				sd_err("Failed to read object %016" PRIx64
				       " from the snapshot",
				       vid_to_data_oid(s, idx));
				ret = EXIT_FAILURE;
				break;
			}
			memset(buf + len, 0, objsize - len);
			if (dog_write_object(vid_to_data_oid(v->new_vid, idx),
					     0, buf, objsize, 0, 0,
					     cur.nr_copies, cur.copy_policy,
					     true) != SD_RES_SUCCESS) {
				ret = EXIT_FAILURE;
				break;
			}
			put_le32(slot, v->new_vid);
		}
		if (write_inode_field(v->new_vid, &cur, slot, sizeof(slot),
				      SD_INODE_OFF_DATA_VDI_ID + 4 * idx) !=
		    SD_RES_SUCCESS)
			ret = EXIT_FAILURE;
	}
	vdi_index_free(&ix);
	return ret;
}

static uint32_t new_parent(const struct loaded *l, const struct snap_vdi *v)
{
	const struct snap_vdi *p =
	    v->h.parent_vdi_id ? find_saved(&l->vdis, v->h.parent_vdi_id)
			       : NULL;

	return p ? p->new_vid : 0;
}

/* Derive the i-th inode of a name (first at first), making the one before
 * it, cur, a snapshot. */
static int derive_vdi(const struct loaded *l, struct snap_vdi *v, uint32_t cur)
{
	const struct sd_inode_header *h = &v->h;
	uint32_t parent = new_parent(l, v), unused;
	int ret;

	if (!cur)
		return dog_new_vdi(h->name, h->vdi_size, parent, 0,
				   h->nr_copies, h->copy_policy,
				   h->store_policy, h->block_size_shift,
				   &v->new_vid);
	if (parent)
		/* snapshot (parent == cur) or rebase onto an older one */
		return dog_new_vdi(h->name, h->vdi_size, parent, 1,
				   h->nr_copies, h->copy_policy,
				   h->store_policy, h->block_size_shift,
				   &v->new_vid);
	/* a fresh start under the same name: freeze cur, drop the working
	 * VDI that snapshot made, create anew */
	ret = dog_new_vdi(h->name, h->vdi_size, cur, 1, h->nr_copies,
			  h->copy_policy, h->store_policy, h->block_size_shift,
			  &unused);
	if (ret != EXIT_SUCCESS)
		return ret;
	dog_delete_vdi(h->name, 0, "");
	return dog_new_vdi(h->name, h->vdi_size, 0, 0, h->nr_copies,
			   h->copy_policy, h->store_policy, h->block_size_shift,
			   &v->new_vid);
}

static int recreate(struct loaded *l, const size_t *order, uint64_t total)
{
	struct progress prog;
	uint32_t cur = 0, unused;
	uint8_t *buf = NULL;
	int ret = EXIT_SUCCESS;

	progress_start(&prog, "load", total);
	for (size_t k = 0; k < l->vdis.nr && ret == EXIT_SUCCESS; k++) {
		struct snap_vdi *v = &l->vdis.v[order[k]];
		bool last = k + 1 == l->vdis.nr ||
			    strcmp(l->vdis.v[order[k + 1]].h.name, v->h.name);

		buf = xrealloc(buf, UINT64_C(1) << v->h.block_size_shift);
		ret = derive_vdi(l, v, cur);
		if (ret == EXIT_SUCCESS)
			ret = fill_vdi(l, v, buf, &prog);
		cur = v->new_vid;
		if (ret == EXIT_SUCCESS && last) {
			if (inode_is_snapshot(&v->h)) {
				/* no working VDI was saved: freeze this one
				 * and drop the working VDI it gets */
				ret = dog_new_vdi(
				    v->h.name, v->h.vdi_size, cur, 1,
				    v->h.nr_copies, v->h.copy_policy,
				    v->h.store_policy, v->h.block_size_shift,
				    &unused);
				if (ret == EXIT_SUCCESS)
					dog_delete_vdi(v->h.name, 0, "");
			}
			cur = 0;
		}
		if (ret != EXIT_SUCCESS) {
			progress_abort(&prog);
			sd_err("Failed to load VDI %s; the VDIs loaded so far "
			       "are left in the cluster",
			       v->h.name);
		}
	}
	if (ret == EXIT_SUCCESS)
		progress_finish(&prog);
	free(buf);
	return ret;
}

static int snapshot_load(const char *which, const char *path, char **names,
			 int nr_names)
{
	struct loaded l;
	size_t *order;
	uint64_t total;
	char s1[32];
	int ret = load_snapshot(which, path, names, nr_names, &l);

	if (ret != EXIT_SUCCESS)
		return ret;
	order = xcalloc(l.vdis.nr ? l.vdis.nr : 1, sizeof(*order));
	ret = load_order(&l, order);
	if (ret == EXIT_SUCCESS)
		ret = verify_snapshot(&l, &total);
	if (ret == EXIT_SUCCESS)
		ret = check_cluster(&l);
	if (ret == EXIT_SUCCESS)
		ret = recreate(&l, order, total);
	if (ret == EXIT_SUCCESS)
		printf("Snapshot %" PRIu32 " '%s' loaded: %zu VDIs, %s\n",
		       l.snap.idx, l.snap.tag, l.vdis.nr, strnum(total, s1));
	free(order);
	loaded_free(&l);
	return ret;
}

/* ---- the command ---- */

int cluster_snapshot(int argc, char **argv)
{
	const char *what = argv[optind++];
	int nr = argc - optind;
	char **args = argv + optind;

	if (!strcmp(what, "list")) {
		if (nr != 1)
			return EXIT_USAGE;
		return snapshot_list(args[0]);
	}
	if (strcmp(what, "save") && strcmp(what, "show") &&
	    strcmp(what, "load")) {
		sd_err("Invalid command 'cluster snapshot %s'", what);
		return EXIT_USAGE;
	}
	if (nr < 2)
		return EXIT_USAGE;
	if (!strcmp(what, "show"))
		return snapshot_show(args[0], args[1], args + 2, nr - 2);
	dog_update_node_list();
	if (!strcmp(what, "save"))
		return snapshot_save(args[0], args[1], args + 2, nr - 2);
	return snapshot_load(args[0], args[1], args + 2, nr - 2);
}
