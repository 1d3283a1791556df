/*
 * "dog vdi backup" and "dog vdi restore": the front end of backup/. Backup
 * reads the objects of two snapshots (or one, for a full backup) with many
 * requests in flight, skips the objects both share, and writes what
 * differs as a native stream (default) or as upstream's v1 stream.
 *
 * Restore never changes the cluster before the whole stream has been read
 * and checked: a stream on a pipe is first spooled to an unlinked
 * temporary file, a stream in a file is read twice. Only then is the
 * working VDI replaced (upstream's semantics: the restored state becomes a
 * snapshot and a new working VDI sits on it). A restored snapshot records
 * which original snapshot it reproduces in the VDI attribute
 * BACKUP_POINT_ATTR, so that the next incremental stream of a chain can be
 * checked against it, also in another cluster.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "backup_stream.h"
#include "dog.h"
#include "progress.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

#define BACKUP_POINT_ATTR "sheepdog.backup.point"
#define BACKUP_WINDOW 16
#define RESTORE_WINDOW 16
/* Unchanged sectors between two changed runs closer than this are sent
 * along: a record costs more than a few sectors that compress well. */
#define BACKUP_DIFF_GAP 4096

struct backup_opts backup_opts = {
    .format = SD_BACKUP_FORMAT_NATIVE,
    .level = SD_BACKUP_DEFAULT_LEVEL,
};

static void snap_identity(const struct sd_inode_header *h,
			  struct sd_backup_snap *s)
{
	memset(s, 0, sizeof(*s));
	s->id = h->snap_id;
	snprintf(s->tag, sizeof(s->tag), "%s", h->tag);
	s->ctime = h->snap_ctime;
}

/* The attribute value that names an original snapshot: "id ctime". */
static void point_value(const struct sd_backup_snap *s, char *buf, size_t len)
{
	snprintf(buf, len, "%" PRIu32 " %016" PRIx64, s->id, s->ctime);
}

/* ---- backup ---- */

struct pair {
	bool used;
	uint32_t idx;
	uint32_t id_old, id_new; /* request ids, 0 when not read */
	bool has_old, has_new;
	int pending;
	int result;
	uint8_t *old, *new;
};

struct backup_job {
	const struct sd_inode_header *from, *to;
	const struct vdi_index *from_ix, *to_ix;
	uint32_t objsize;
	uint64_t nr;
	uint64_t next_idx;
	struct pair ring[BACKUP_WINDOW];
	int head, count, nr_busy;
	uint8_t *zeros;
	struct sd_backup_writer *w;
	struct sd_backup_v1_writer *v1;
	struct sd_backup_extent *ext;
	struct progress prog;
};

static int send_read(const struct sd_inode_header *h, uint32_t slot,
		     uint32_t idx, uint32_t len, uint32_t *id)
{
	struct sd_req req;

	sd_init_req(&req, SD_OP_READ_OBJ);
	req.data_length = len;
	req.obj.oid = vid_to_data_oid(slot, idx);
	req.obj.copies = h->nr_copies;
	req.obj.copy_policy = h->copy_policy;
	req.id = *id = dog_next_id();
	return dog_send(&req, NULL);
}

/* Queue the next object index that may differ. 1 queued, 0 none left. */
static int backup_queue_next(struct backup_job *j)
{
	while (j->next_idx < j->nr) {
		uint32_t idx = j->next_idx++;
		uint32_t o = j->from ? vdi_index_get(j->from_ix, idx) : 0;
		uint32_t n = vdi_index_get(j->to_ix, idx);
		struct pair *p;

		/* the same object (or none) on both sides: nothing changed */
		if (o == n && (o || !j->from))
			continue;
		if (!o && !n)
			continue;
		p = &j->ring[(j->head + j->count) % BACKUP_WINDOW];
		j->count++;
		p->used = true;
		p->idx = idx;
		p->has_old = o != 0;
		p->has_new = n != 0;
		p->pending = 0;
		p->result = SD_RES_SUCCESS;
		if (o) {
			if (!p->old)
				p->old = xmalloc(j->objsize);
			if (send_read(j->from, o, idx, j->objsize, &p->id_old))
				return -1;
			p->pending++;
			j->nr_busy++;
		}
		if (n) {
			if (!p->new)
				p->new = xmalloc(j->objsize);
			if (send_read(j->to, n, idx, j->objsize, &p->id_new))
				return -1;
			p->pending++;
			j->nr_busy++;
		}
		return 1;
	}
	return 0;
}

static int backup_reap(struct backup_job *j)
{
	struct sd_rsp rsp;
	struct pair *p = NULL;
	uint8_t *buf = NULL;

	if (dog_recv_hdr(&rsp) < 0)
		return -1;
	for (int i = 0; i < BACKUP_WINDOW && !buf; i++) {
		struct pair *c = &j->ring[i];

		if (!c->used || !c->pending)
			continue;
		if (c->has_old && c->id_old == rsp.id)
			buf = c->old;
		else if (c->has_new && c->id_new == rsp.id)
			buf = c->new;
		p = c;
	}
	if (!buf) {
		sd_err("unexpected reply id %" PRIu32 " from %s:%d", rsp.id,
		       sd_host, sd_port);
		return -1;
	}
	if (dog_recv_payload(&rsp, buf, j->objsize) < 0)
		return -1;
	if (rsp.data_length < j->objsize)
		memset(buf + rsp.data_length, 0, j->objsize - rsp.data_length);
	if (rsp.result != SD_RES_SUCCESS)
		p->result = rsp.result;
	p->pending--;
	j->nr_busy--;
	return 0;
}

/* Diff one object and write its records. 0, or -1 (message printed). */
static int backup_emit(struct backup_job *j, struct pair *p)
{
	const uint8_t *old = p->has_old ? p->old : NULL;
	const uint8_t *new = p->has_new ? p->new : NULL;
	enum sd_backup_err err = SD_BACKUP_OK;
	uint32_t off, len;
	int n;

	if (j->v1) {
		if (sd_backup_v1_diff(old, new, j->objsize, &off, &len) <= 0)
			return 0;
		err = sd_backup_v1_write(j->v1, p->idx, off, len,
					 (new ? new : j->zeros) + off);
		if (err) {
			sd_err("Failed to write the backup: %s",
			       sd_backup_v1_writer_errmsg(j->v1));
			return -1;
		}
		return 0;
	}
	n = sd_backup_diff(old, new, j->objsize, BACKUP_DIFF_GAP, j->ext,
			   SD_BACKUP_DIFF_MAX(j->objsize));
	if (n < 0) {
		sd_err("Failed to compare object %" PRIu32 ": %s", p->idx,
		       strerror(-n));
		return -1;
	}
	for (int i = 0; i < n && !err; i++) {
		const struct sd_backup_extent *e = &j->ext[i];

		if (e->zero)
			err = sd_backup_write_zero(j->w, p->idx, e->offset,
						   e->length);
		else
			err = sd_backup_write_data(j->w, p->idx, e->offset,
						   e->length, new + e->offset);
	}
	if (err) {
		sd_err("Failed to write the backup: %s",
		       sd_backup_writer_errmsg(j->w));
		return -1;
	}
	return 0;
}

static int backup_run(struct backup_job *j)
{
	for (;;) {
		struct pair *p;
		int r;

		while (j->count < BACKUP_WINDOW) {
			r = backup_queue_next(j);
			if (r < 0)
				return -1;
			if (!r)
				break;
		}
		while (j->count && !j->ring[j->head].pending) {
			p = &j->ring[j->head];
			if (p->result != SD_RES_SUCCESS) {
				progress_abort(&j->prog);
				sd_err("Failed to read object %" PRIu32
				       " of the snapshots: %s",
				       p->idx, sd_strerror(p->result));
				return -1;
			}
			if (backup_emit(j, p) < 0)
				return -1;
			progress_add(&j->prog, (uint64_t)j->objsize);
			p->used = false;
			j->head = (j->head + 1) % BACKUP_WINDOW;
			j->count--;
		}
		if (!j->count && j->next_idx >= j->nr)
			return 0;
		if (j->count && j->ring[j->head].pending && backup_reap(j) < 0)
			return -1;
	}
}

static void backup_job_free(struct backup_job *j)
{
	for (int i = 0; i < BACKUP_WINDOW; i++) {
		free(j->ring[i].old);
		free(j->ring[i].new);
	}
	free(j->zeros);
	free(j->ext);
	sd_backup_writer_free(j->w);
	sd_backup_v1_writer_free(j->v1);
}

static uint64_t count_work(const struct backup_job *j)
{
	uint64_t n = 0;

	for (uint64_t idx = 0; idx < j->nr; idx++) {
		uint32_t o = j->from ? vdi_index_get(j->from_ix, idx) : 0;
		uint32_t v = vdi_index_get(j->to_ix, idx);

		if (!(o == v && (o || !j->from)) && (o || v))
			n++;
	}
	return n * j->objsize;
}

int vdi_backup(int argc, char **argv)
{
	const char *name = argv[optind++];
	const char *path = optind < argc ? argv[optind] : NULL;
	struct sd_inode_header from, to;
	struct vdi_index from_ix = {0}, to_ix = {0};
	struct backup_job j = {0};
	struct sd_backup_header hdr = {0};
	char errmsg[512];
	bool have_from = vdi_cmd.from_snapshot_id || vdi_cmd.from_snapshot_tag[0];
	bool v1 = backup_opts.format == SD_BACKUP_FORMAT_V1;
	uint32_t vid;
	int fd = STDOUT_FILENO, ret;
	enum sd_backup_err err;

	if ((v1 && !have_from) ||
	    (!vdi_cmd.snapshot_id && !vdi_cmd.snapshot_tag[0])) {
		sd_err(v1 ? "Please specify snapshots with '-F' and '-s' "
			    "options"
			  : "Please specify the snapshot to back up with '-s' "
			    "(and the base snapshot with '-F' for an "
			    "incremental backup)");
		return EXIT_USAGE;
	}
	if (!path && isatty(STDOUT_FILENO)) {
		sd_err("stdout must not be a terminal: redirect it or name a "
		       "file");
		return EXIT_USAGE;
	}
	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &to, &to_ix);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (have_from) {
		ret = dog_open_vdi(name, vdi_cmd.from_snapshot_id,
				   vdi_cmd.from_snapshot_tag, &vid, &from,
				   &from_ix);
		if (ret != EXIT_SUCCESS)
			goto out;
		if (from.block_size_shift != to.block_size_shift) {
			sd_err("The snapshots have different object sizes "
			       "(%u and %u bits): no incremental backup "
			       "between them",
			       from.block_size_shift, to.block_size_shift);
			ret = EXIT_FAILURE;
			goto out;
		}
		if (from.vdi_id == to.vdi_id) {
			sd_err("The two snapshots are the same");
			ret = EXIT_USAGE;
			goto out;
		}
	}

	j.from = have_from ? &from : NULL;
	j.to = &to;
	j.from_ix = &from_ix;
	j.to_ix = &to_ix;
	j.objsize = UINT32_C(1) << to.block_size_shift;
	j.nr = inode_nr_slots(to.vdi_size, to.block_size_shift);
	j.zeros = xzalloc(j.objsize);
	j.ext = xmalloc(sizeof(*j.ext) * SD_BACKUP_DIFF_MAX(j.objsize));

	if (path) {
		fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
		if (fd < 0) {
			sd_err("Failed to create %s: %m", path);
			ret = EXIT_SYSFAIL;
			goto out;
		}
	}
	if (v1) {
		err = sd_backup_v1_writer_open(fd, j.objsize, &j.v1, errmsg,
					       sizeof(errmsg));
	} else {
		snprintf(hdr.name, sizeof(hdr.name), "%s", to.name);
		hdr.vdi_id = to.vdi_id;
		hdr.vdi_size = to.vdi_size;
		hdr.block_size_shift = to.block_size_shift;
		hdr.copies = to.nr_copies;
		hdr.copy_policy = to.copy_policy;
		hdr.nr_objects = j.nr;
		if (have_from) {
			hdr.flags |= SD_BACKUP_FLAG_INCREMENTAL;
			snap_identity(&from, &hdr.from);
		}
		snap_identity(&to, &hdr.to);
		err = sd_backup_writer_open(fd, &hdr, backup_opts.level, &j.w,
					    errmsg, sizeof(errmsg));
	}
	if (err) {
		sd_err("Failed to start the backup: %s", errmsg);
		ret = EXIT_FAILURE;
		goto fail;
	}

	progress_start(&j.prog, "backup", count_work(&j));
	if (backup_run(&j) < 0) {
		progress_abort(&j.prog);
		ret = EXIT_FAILURE;
		goto fail;
	}
	err = v1 ? sd_backup_v1_writer_finish(j.v1)
		 : sd_backup_writer_finish(j.w);
	if (err) {
		progress_abort(&j.prog);
		sd_err("Failed to write the backup: %s",
		       v1 ? sd_backup_v1_writer_errmsg(j.v1)
			  : sd_backup_writer_errmsg(j.w));
		ret = EXIT_FAILURE;
		goto fail;
	}
	if (path && (fsync(fd) < 0 || close(fd) < 0)) {
		fd = -1;
		progress_abort(&j.prog);
		sd_err("Failed to write %s: %m", path);
		ret = EXIT_SYSFAIL;
		goto fail;
	}
	progress_finish(&j.prog);
	ret = EXIT_SUCCESS;
	goto out;
fail:
	if (path) {
		if (fd >= 0)
			close(fd);
		unlink(path);
	}
out:
	backup_job_free(&j);
	vdi_index_free(&from_ix);
	vdi_index_free(&to_ix);
	return ret;
}

/* ---- restore ---- */

/*
 * A seekable copy of the input: the file itself, stdin when it is a
 * regular file, or else everything on stdin spooled to an unlinked
 * temporary file. *start is where the stream begins.
 */
static int open_restore_input(const char *path, int *fd, off_t *start)
{
	const char *dir = getenv("TMPDIR");
	char tmpl[4096];
	struct stat st;
	struct progress prog;
	uint8_t *buf;
	int tmp;

	if (path && strcmp(path, "-")) {
		*fd = open(path, O_RDONLY | O_CLOEXEC);
		if (*fd < 0) {
			sd_err("Failed to open %s: %m", path);
			return errno == ENOENT ? EXIT_MISSING : EXIT_SYSFAIL;
		}
		*start = 0;
		return EXIT_SUCCESS;
	}
	if (isatty(STDIN_FILENO)) {
		sd_err("stdin must be pipe");
		return EXIT_USAGE;
	}
	if (fstat(STDIN_FILENO, &st) == 0 && S_ISREG(st.st_mode)) {
		*start = lseek(STDIN_FILENO, 0, SEEK_CUR);
		if (*start >= 0) {
			*fd = STDIN_FILENO;
			return EXIT_SUCCESS;
		}
	}

	if (!dir || !*dir)
		dir = "/var/tmp";
	tmp = open(dir, O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
	if (tmp < 0) {
		snprintf(tmpl, sizeof(tmpl), "%s/dog-restore-XXXXXX", dir);
		tmp = mkostemp(tmpl, O_CLOEXEC);
		if (tmp >= 0)
			unlink(tmpl);
	}
	if (tmp < 0) {
		sd_err("Failed to create a spool file in %s for the stream: "
		       "%m",
		       dir);
		return EXIT_SYSFAIL;
	}
	buf = xmalloc(1 << 20);
	progress_start(&prog, "receive", 0);
	for (;;) {
		ssize_t n = read(STDIN_FILENO, buf, 1 << 20);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0) {
			progress_abort(&prog);
			sd_err("Failed to read the stream from stdin: %m");
			goto fail;
		}
		if (n == 0)
			break;
		if (sd_write_full(tmp, buf, n)) {
			progress_abort(&prog);
			sd_err("Failed to spool the stream to %s: %m", dir);
			goto fail;
		}
		progress_add(&prog, n);
	}
	progress_finish(&prog);
	free(buf);
	if (lseek(tmp, 0, SEEK_SET) != 0) {
		sd_err("Failed to rewind the spooled stream: %m");
		close(tmp);
		return EXIT_SYSFAIL;
	}
	*fd = tmp;
	*start = 0;
	return EXIT_SUCCESS;
fail:
	free(buf);
	close(tmp);
	return EXIT_SYSFAIL;
}

/* What applying the stream will touch, per object index. */
enum obj_state {
	OBJ_UNTOUCHED = 0,
	OBJ_CREATING, /* create in flight */
	OBJ_WRITTEN,  /* the new VDI has its own object */
	OBJ_HOLE,     /* the whole object reads as zeros: slot 0 */
};

struct wreq {
	bool busy;
	uint32_t id;
	uint32_t idx;
	bool create;
	uint8_t *buf;
};

struct restore_job {
	const struct sd_inode_header *base; /* NULL: nothing to copy from */
	const struct vdi_index *base_ix;
	struct sd_inode_header h; /* the new working VDI */
	uint32_t objsize;
	uint64_t nr;
	uint8_t *state;
	bool holes; /* whole-object zero ranges may become holes */
	struct wreq reqs[RESTORE_WINDOW];
	int nr_busy;
	bool failed;
	struct progress prog;
};

static int restore_reap(struct restore_job *j)
{
	struct sd_rsp rsp;
	struct wreq *w = NULL;

	if (dog_recv_hdr(&rsp) < 0 || dog_recv_payload(&rsp, NULL, 0) < 0)
		return -1;
	for (int i = 0; i < RESTORE_WINDOW; i++)
		if (j->reqs[i].busy && j->reqs[i].id == rsp.id)
			w = &j->reqs[i];
	if (!w) {
		sd_err("unexpected reply id %" PRIu32 " from %s:%d", rsp.id,
		       sd_host, sd_port);
		return -1;
	}
	w->busy = false;
	j->nr_busy--;
	if (rsp.result != SD_RES_SUCCESS) {
		progress_abort(&j->prog);
		sd_err("Failed to write object %016" PRIx64 ": %s",
		       vid_to_data_oid(j->h.vdi_id, w->idx),
		       sd_strerror(rsp.result));
		j->failed = true;
	}
	if (w->create)
		j->state[w->idx] = rsp.result == SD_RES_SUCCESS ? OBJ_WRITTEN
								: OBJ_UNTOUCHED;
	return 0;
}

static struct wreq *restore_free_req(struct restore_job *j)
{
	for (;;) {
		for (int i = 0; i < RESTORE_WINDOW; i++)
			if (!j->reqs[i].busy)
				return &j->reqs[i];
		if (restore_reap(j) < 0)
			return NULL;
	}
}

static int restore_record(struct restore_job *j,
			  const struct sd_backup_record *rec)
{
	uint32_t idx = rec->idx;
	uint32_t base_slot = j->base ? vdi_index_get(j->base_ix, idx) : 0;
	struct sd_req req;
	struct wreq *w;

	if (idx >= j->nr) {
		sd_err("The backup stream writes object %" PRIu32
		       " beyond the end of the VDI",
		       idx);
		return -1;
	}
	if (rec->type == SD_BACKUP_REC_ZERO && j->holes && rec->offset == 0 &&
	    rec->length == j->objsize &&
	    (j->state[idx] == OBJ_UNTOUCHED || j->state[idx] == OBJ_HOLE)) {
		j->state[idx] = OBJ_HOLE;
		return 0;
	}
	while (j->state[idx] == OBJ_CREATING)
		if (restore_reap(j) < 0)
			return -1;
	if (j->failed)
		return -1;
	w = restore_free_req(j);
	if (!w)
		return -1;
	if (!w->buf)
		w->buf = xmalloc(j->objsize);
	if (rec->type == SD_BACKUP_REC_DATA)
		memcpy(w->buf, rec->data, rec->length);
	else
		memset(w->buf, 0, rec->length);

	w->create = j->state[idx] != OBJ_WRITTEN;
	sd_init_req(&req, w->create ? SD_OP_CREATE_AND_WRITE_OBJ
				    : SD_OP_WRITE_OBJ);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = rec->length;
	req.obj.oid = vid_to_data_oid(j->h.vdi_id, idx);
	req.obj.offset = rec->offset;
	req.obj.copies = j->h.nr_copies;
	req.obj.copy_policy = j->h.copy_policy;
	if (w->create && base_slot && j->state[idx] == OBJ_UNTOUCHED) {
		req.flags |= SD_FLAG_CMD_COW;
		req.obj.cow_oid = vid_to_data_oid(base_slot, idx);
	}
	if (w->create)
		j->state[idx] = OBJ_CREATING;
	w->idx = idx;
	w->busy = true;
	j->nr_busy++;
	req.id = w->id = dog_next_id();
	return dog_send(&req, w->buf);
}

/* Point the new VDI's index at what was written. SD_RES_* code. */
static int restore_index(struct restore_job *j, struct vdi_index *ix)
{
	uint64_t lo = UINT64_MAX, hi = 0;
	uint8_t *buf;
	int ret;

	for (uint64_t idx = 0; idx < j->nr; idx++) {
		uint32_t slot = vdi_index_get(ix, idx), want = slot;

		if (j->state[idx] == OBJ_WRITTEN)
			want = j->h.vdi_id;
		else if (j->state[idx] == OBJ_HOLE || !j->base)
			want = 0;
		if (want == slot)
			continue;
		if (ix->btree) {
			ret = dog_btree_set(ix, idx, want);
			if (ret != SD_RES_SUCCESS)
				return ret;
			continue;
		}
		ix->slots[idx] = want;
		lo = MIN(lo, idx);
		hi = idx + 1;
	}
	if (lo >= hi)
		return SD_RES_SUCCESS;
	buf = xmalloc((hi - lo) * 4);
	for (uint64_t idx = lo; idx < hi; idx++)
		put_le32(buf + 4 * (idx - lo), ix->slots[idx]);
	ret = dog_write_object(vid_to_vdi_oid(j->h.vdi_id), 0, buf,
			       (hi - lo) * 4,
			       SD_INODE_OFF_DATA_VDI_ID + 4 * lo, 0,
			       j->h.nr_copies, j->h.copy_policy, false);
	free(buf);
	return ret;
}

/* The chain check: does snapshot s hold the state the stream starts from? */
static bool chains_onto(const struct sd_inode_header *s,
			const struct sd_backup_header *hdr)
{
	struct dog_attr_result r;
	uint8_t *obj;
	uint32_t len;
	char want[64];
	bool ok = false;

	if (s->snap_id == hdr->from.id && s->snap_ctime == hdr->from.ctime)
		return true;
	r = dog_find_attr(s->name, s->snap_id, "", BACKUP_POINT_ATTR, NULL, 0,
			  0);
	if (r.result != SD_RES_SUCCESS)
		return false;
	obj = xmalloc(SD_ATTR_OBJ_SIZE);
	point_value(&hdr->from, want, sizeof(want));
	if (dog_read_attr_value(r.oid, obj, &len) == SD_RES_SUCCESS)
		ok = len == strlen(want) && !memcmp(obj, want, len);
	free(obj);
	return ok;
}

static void describe_snap(const struct sd_backup_snap *s, char *buf,
			  size_t len)
{
	time_t t = (time_t)(s->ctime >> 32);
	struct tm tm;
	char when[64];

	localtime_r(&t, &tm);
	strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	snprintf(buf, len, "snapshot %" PRIu32 " (tag \"%s\", taken %s)", s->id,
		 s->tag, when);
}

/* Apply the (already verified) stream from fd into a new working VDI. */
static int restore_apply(struct restore_job *j, int fd, uint64_t v1_objsize,
			 uint64_t total)
{
	struct bs_reader r;
	struct sd_backup_record rec;
	enum sd_backup_err err;
	int ret = -1;

	err = bs_open(&r, fd, v1_objsize);
	if (err) {
		sd_err("The backup file is corrupted: %s", bs_error(&r, err));
		goto out;
	}
	progress_start(&j->prog, "restore", total);
	for (;;) {
		err = bs_next(&r, &rec);
		if (err) {
			progress_abort(&j->prog);
			sd_err("The backup file is corrupted: %s",
			       bs_error(&r, err));
			goto out;
		}
		if (rec.type == SD_BACKUP_REC_END)
			break;
		if (restore_record(j, &rec) < 0)
			goto out;
		progress_add(&j->prog, rec.length);
	}
	while (j->nr_busy)
		if (restore_reap(j) < 0)
			goto out;
	if (!j->failed)
		ret = 0;
out:
	while (j->nr_busy && restore_reap(j) == 0)
		;
	if (ret == 0)
		progress_finish(&j->prog);
	else
		progress_abort(&j->prog);
	bs_close(&r);
	return ret;
}

/* Delete the working VDI of name, if there is one. EXIT_* code. */
static int delete_working_vdi(const char *name)
{
	uint32_t vid;
	int ret = dog_find_vdi(name, 0, "", &vid);

	if (ret < 0)
		return EXIT_SYSFAIL;
	if (ret == SD_RES_NO_VDI)
		return EXIT_SUCCESS;
	if (ret != SD_RES_SUCCESS) {
		sd_err("Failed to open VDI %s: %s", name, sd_strerror(ret));
		return EXIT_FAILURE;
	}
	dog_delete_vdi(name, 0, "");
	ret = dog_find_vdi(name, 0, "", &vid);
	if (ret != SD_RES_NO_VDI) {
		sd_err("Failed to delete the working VDI %s", name);
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/*
 * Make the restored working VDI a snapshot tagged tag (no tag when it is
 * taken) with a new working VDI on top, and record which original snapshot
 * it reproduces.
 */
static int restore_finish(const char *name, const struct sd_inode_header *h,
			  const struct sd_backup_snap *to, bool native)
{
	char value[64];
	const char *tag = native ? to->tag : "";
	struct dog_attr_result r;
	uint32_t found, new_vid;
	int ret;

	if (tag[0]) {
		ret = dog_find_vdi(name, 0, tag, &found);
		if (ret < 0)
			return EXIT_SYSFAIL;
		if (ret == SD_RES_SUCCESS) {
			sd_info("VDI %s already has a snapshot tagged \"%s\": "
				"the restored snapshot gets no tag",
				name, tag);
			tag = "";
		}
	}
	ret = dog_snapshot_vdi(name, h, tag, &new_vid);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (!native)
		return EXIT_SUCCESS;
	point_value(to, value, sizeof(value));
	r = dog_find_attr(name, h->snap_id, "", BACKUP_POINT_ATTR, value,
			  strlen(value), SD_FLAG_CMD_CREAT);
	if (r.result != SD_RES_SUCCESS) {
		sd_err("Failed to record the backup point of the restored "
		       "snapshot: %s",
		       r.result < 0 ? "no connection"
				    : sd_strerror(r.result));
		return EXIT_FAILURE;
	}
	if (verbose)
		printf("restored %s as snapshot %" PRIu32 "%s%s%s of %s\n",
		       native ? to->tag : "the stream", h->snap_id,
		       tag[0] ? " (tag \"" : "", tag, tag[0] ? "\")" : "",
		       name);
	return EXIT_SUCCESS;
}

int vdi_restore(int argc, char **argv)
{
	const char *name = argv[optind++];
	const char *path = optind < argc ? argv[optind] : NULL;
	bool have_snap = vdi_cmd.snapshot_id || vdi_cmd.snapshot_tag[0];
	struct sd_inode_header snap;
	struct vdi_index snap_ix = {0}, ix = {0};
	struct restore_job j = {0};
	struct bs_scan scan;
	struct progress prog;
	struct stat st;
	uint64_t v1_objsize = 0;
	uint32_t vid, snap_vid = 0;
	bool native, full, exists;
	off_t start;
	int fd, ret;
	char a[400], b[400];

	if (strlen(name) >= SD_MAX_VDI_LEN) {
		sd_err("VDI name is too long: %zu bytes, at most %d",
		       strlen(name), SD_MAX_VDI_LEN - 1);
		return EXIT_USAGE;
	}
	ret = open_restore_input(path, &fd, &start);
	if (ret != EXIT_SUCCESS)
		return ret;

	/* A v1 stream has no header: its object size is the snapshot's. */
	if (have_snap) {
		ret = dog_open_vdi(name, vdi_cmd.snapshot_id,
				   vdi_cmd.snapshot_tag, &snap_vid, &snap,
				   &snap_ix);
		if (ret != EXIT_SUCCESS)
			goto out;
		v1_objsize = UINT64_C(1) << snap.block_size_shift;
	}

	/* 1. Check the whole stream before anything changes. */
	progress_start(&prog, "verify",
		       fstat(fd, &st) == 0 ? st.st_size - start : 0);
	ret = bs_scan(fd, v1_objsize ? v1_objsize : UINT64_C(1) << 22, &scan,
		      &prog);
	if (ret < 0) {
		progress_abort(&prog);
		sd_err("The backup file is corrupted: %s", scan.error);
		ret = EXIT_FAILURE;
		goto out;
	}
	progress_finish(&prog);
	native = scan.fmt == SD_BACKUP_FORMAT_NATIVE;
	full = native && !(scan.hdr.flags & SD_BACKUP_FLAG_INCREMENTAL);

	/* 2. Check that it fits where it goes. */
	ret = dog_find_vdi(name, 0, "", &vid);
	if (ret < 0) {
		ret = EXIT_SYSFAIL;
		goto out;
	}
	exists = ret == SD_RES_SUCCESS;
	if (!native && !have_snap) {
		sd_err("A v1 stream restores onto a snapshot: please specify "
		       "it with '-s'");
		ret = EXIT_USAGE;
		goto out;
	}
	if (native && !full && !have_snap) {
		describe_snap(&scan.hdr.from, a, sizeof(a));
		sd_err("This is an incremental stream from %s of %s: please "
		       "specify with '-s' the snapshot that holds that state",
		       a, scan.hdr.name);
		ret = EXIT_USAGE;
		goto out;
	}
	if (full && !have_snap && exists) {
		sd_err("VDI %s exists: a full stream restores into a new VDI, "
		       "or onto one of its snapshots with '-s'",
		       name);
		ret = EXIT_EXISTS;
		goto out;
	}
	if (native && have_snap &&
	    snap.block_size_shift != scan.hdr.block_size_shift) {
		sd_err("The stream's objects are %" PRIu64 " bytes, the "
		       "snapshot's %" PRIu64,
		       UINT64_C(1) << scan.hdr.block_size_shift, v1_objsize);
		ret = EXIT_FAILURE;
		goto out;
	}
	if (native && !full && !chains_onto(&snap, &scan.hdr)) {
		describe_snap(&scan.hdr.from, a, sizeof(a));
		describe_snap(&scan.hdr.to, b, sizeof(b));
		sd_err("The backup stream does not chain onto snapshot %" PRIu32
		       " of %s: it holds the changes from %s to %s of %s",
		       snap.snap_id, name, a, b, scan.hdr.name);
		ret = EXIT_FAILURE;
		goto out;
	}
	if (!native && scan.nr_touched_max >
			   inode_nr_slots(snap.vdi_size, snap.block_size_shift)) {
		sd_err("The backup stream writes object %" PRIu64
		       ", beyond the end of snapshot %" PRIu32 " of %s",
		       scan.nr_touched_max - 1, snap.snap_id, name);
		ret = EXIT_FAILURE;
		goto out;
	}

	/* 3. Replace the working VDI with the restored state. */
	if (have_snap) {
		ret = delete_working_vdi(name);
		if (ret != EXIT_SUCCESS)
			goto out;
		ret = dog_new_vdi(name, native ? scan.hdr.vdi_size : snap.vdi_size,
				  snap_vid, 0, snap.nr_copies, snap.copy_policy,
				  snap.store_policy, snap.block_size_shift,
				  &vid);
	} else {
		const struct sd_backup_header *h = &scan.hdr;
		bool hyper = h->vdi_size > inode_max_size(h->block_size_shift);

		/* -c: the restore goes to a cluster with fewer nodes */
		ret = dog_new_vdi(name, h->vdi_size, 0, 0,
				  vdi_cmd.nr_copies ? vdi_cmd.nr_copies
						    : h->copies,
				  vdi_cmd.nr_copies ? vdi_cmd.copy_policy
						    : h->copy_policy,
				  hyper ? 1 : 0, h->block_size_shift, &vid);
	}
	if (ret != EXIT_SUCCESS)
		goto out;
	if (dog_read_inode_header(vid, &j.h) != SD_RES_SUCCESS ||
	    dog_read_vdi_index(&j.h, &ix) != SD_RES_SUCCESS) {
		sd_err("Failed to read the new VDI %s", name);
		ret = EXIT_FAILURE;
		goto out;
	}
	j.base = have_snap && !full ? &snap : NULL;
	j.base_ix = &snap_ix;
	j.objsize = UINT32_C(1) << j.h.block_size_shift;
	j.nr = inode_nr_slots(j.h.vdi_size, j.h.block_size_shift);
	j.state = xzalloc(j.nr);
	j.holes = !ix.btree;
	if (lseek(fd, start, SEEK_SET) != start) {
		sd_err("Failed to rewind the stream: %m");
		ret = EXIT_SYSFAIL;
		goto out;
	}
	if (restore_apply(&j, fd, v1_objsize ? v1_objsize : j.objsize,
			  scan.data_bytes + scan.zero_bytes) < 0 ||
	    restore_index(&j, &ix) != SD_RES_SUCCESS) {
		sd_err("Failed to restore VDI %s: the half-restored VDI is "
		       "deleted",
		       name);
		dog_delete_vdi(name, 0, "");
		ret = EXIT_FAILURE;
		goto out;
	}
	ret = restore_finish(name, &j.h, &scan.hdr.to, native);
out:
	for (int i = 0; i < RESTORE_WINDOW; i++)
		free(j.reqs[i].buf);
	free(j.state);
	vdi_index_free(&ix);
	vdi_index_free(&snap_ix);
	if (fd != STDIN_FILENO)
		close(fd);
	return ret;
}
