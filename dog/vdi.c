/*
 * "dog vdi": create, delete, list, resize, read and write virtual disk
 * images. The server only stores objects and resolves names; everything
 * about the inode's data_vdi_id[] index is done here, as upstream's dog
 * does it: a write to an unallocated slot creates the object and then sets
 * the slot, a write to an inherited slot copies on write, and deletion
 * zeroes the index in batches before DEL_VDI. A hyper volume's index is the
 * B-tree of lib/btree.c: objects created by a write are entered in it once
 * the requests in flight have been answered.
 *
 * vdi read and write keep several object requests in flight on the one
 * connection (replies may come back in any order, matched by id), moving
 * stdin and stdout in pieces of up to 4 MiB. Both are sparse-aware: holes
 * read as zeros without a request, and zeros written where no object is
 * allocated allocate nothing.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <ctype.h>

#include "dog.h"
#include "sheepdog/backup.h"
#include "progress.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

/* a hyper volume: 2^32 objects of 4 MiB */
#define SD_MAX_VDI_SIZE (UINT64_C(1) << 54)
#define DEFAULT_BATCH 128

struct vdi_cmd_data vdi_cmd = {
    .nr_batched = DEFAULT_BATCH,
};

/* ---- pipelined object I/O ---- */

#define IO_WINDOW 16
#define IO_PIECE_MAX (UINT32_C(4) << 20)

enum io_kind {
	IO_READ,
	IO_WRITE,
	IO_CREATE,
	IO_SLOT, /* the inode slot update that follows a create */
};

struct io_req {
	bool busy; /* sent, reply not yet read */
	bool done; /* reads: buf holds the data */
	uint32_t id;
	enum io_kind kind;
	uint64_t oid;
	uint32_t idx;
	uint8_t *buf; /* IO_PIECE_MAX bytes, allocated on first use */
	uint32_t len;
	uint8_t slot[4];
};

/*
 * The requests in flight. Reads use it as a ring (head, count) so that
 * stdout gets the pieces in order; writes only need free entries.
 */
struct io_queue {
	struct io_req reqs[IO_WINDOW];
	int head, count;
	int nr_busy;
};

static void io_queue_free(struct io_queue *q)
{
	for (int i = 0; i < IO_WINDOW; i++)
		free(q->reqs[i].buf);
}

static uint8_t *io_buf(struct io_req *r)
{
	if (!r->buf)
		r->buf = xmalloc(IO_PIECE_MAX);
	return r->buf;
}

static int io_send(struct io_queue *q, struct io_req *r, struct sd_req *req,
		   const void *wdata)
{
	req->id = r->id = dog_next_id();
	r->busy = true;
	r->done = false;
	q->nr_busy++;
	return dog_send(req, wdata);
}

/* Read one reply, its payload going to the matching read's buffer. */
static struct io_req *io_reap(struct io_queue *q, struct sd_rsp *rsp)
{
	struct io_req *r = NULL;

	if (dog_recv_hdr(rsp) < 0)
		return NULL;
	for (int i = 0; i < IO_WINDOW; i++)
		if (q->reqs[i].busy && q->reqs[i].id == rsp->id)
			r = &q->reqs[i];
	if (!r) {
		sd_err("unexpected reply id %" PRIu32 " from %s:%d", rsp->id,
		       sd_host, sd_port);
		return NULL;
	}
	if (dog_recv_payload(rsp, r->kind == IO_READ ? r->buf : NULL,
			     r->kind == IO_READ ? r->len : 0) < 0)
		return NULL;
	if (r->kind == IO_READ && rsp->data_length < r->len)
		memset(r->buf + rsp->data_length, 0, r->len - rsp->data_length);
	r->busy = false;
	q->nr_busy--;
	return r;
}

static void init_obj_req(struct sd_req *req, uint8_t opcode,
			 const struct sd_inode_header *h, uint64_t oid,
			 uint64_t offset, uint32_t len)
{
	sd_init_req(req, opcode);
	req->data_length = len;
	req->obj.oid = oid;
	req->obj.offset = offset;
	req->obj.copies = h->nr_copies;
	req->obj.copy_policy = h->copy_policy;
}

/* Read up to len bytes from fd, stopping early only at end of input. */
static ssize_t read_full_input(int fd, uint8_t *buf, size_t len)
{
	size_t done = 0;

	while (done < len) {
		ssize_t n = read(fd, buf + done, len - done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		if (n == 0)
			break;
		done += n;
	}
	return done;
}

/*
 * Write [pos, end) of the VDI from stdin, or with prealloc create every
 * object of the VDI empty. Each create is followed, once it succeeded, by
 * the 4-byte slot update in the inode.
 */
struct write_job {
	uint32_t vid;
	const struct sd_inode_header *h;
	struct vdi_index *ix;
	uint64_t pos, end;
	uint16_t flags;
	bool prealloc;
	bool input_done; /* stdin ended: the rest of the chunk is zeros */
	struct progress *progress; /* NULL: none */
};

static int send_slot_update(struct io_queue *q, struct io_req *r,
			    const struct write_job *job)
{
	struct sd_req req;

	put_le32(r->slot, job->vid);
	init_obj_req(&req, SD_OP_WRITE_OBJ, job->h, vid_to_vdi_oid(job->vid),
		     SD_INODE_OFF_DATA_VDI_ID + 4 * (uint64_t)r->idx, 4);
	req.flags = job->flags | SD_FLAG_CMD_WRITE;
	r->kind = IO_SLOT;
	r->oid = req.obj.oid;
	return io_send(q, r, &req, r->slot);
}

static bool buf_is_zero(const uint8_t *buf, size_t len)
{
	return !len || (!buf[0] && !memcmp(buf, buf + 1, len - 1));
}

/* Fill and send the next piece. 0, or -1 on a stdin or transport error. */
static int send_write_piece(struct io_queue *q, struct io_req *r,
			    struct write_job *job, uint64_t *pending_idx)
{
	uint8_t shift = job->h->block_size_shift;
	uint64_t objsize = UINT64_C(1) << shift;
	uint32_t idx = job->pos >> shift;
	uint64_t off = job->pos & (objsize - 1);
	uint64_t chunk_end = MIN(job->end, ((uint64_t)idx + 1) << shift);
	uint32_t len = MIN(chunk_end - job->pos, IO_PIECE_MAX);
	uint32_t slot = vdi_index_get(job->ix, idx);
	struct sd_req req;

	r->idx = idx;
	r->oid = vid_to_data_oid(job->vid, idx);
	if (job->prealloc) {
		init_obj_req(&req, SD_OP_CREATE_AND_WRITE_OBJ, job->h, r->oid,
			     0, 0);
		req.flags = SD_FLAG_CMD_WRITE;
		r->kind = IO_CREATE;
		job->pos = chunk_end;
		return io_send(q, r, &req, NULL);
	}

	if (!job->input_done) {
		ssize_t n = read_full_input(STDIN_FILENO, io_buf(r), len);

		if (n < 0) {
			if (job->progress)
				progress_abort(job->progress);
			sd_err("Failed to read from stdin: %m");
			return -1;
		}
		if (n == 0) {
			/* stdin ended on a piece boundary: nothing more */
			job->input_done = true;
			job->end = job->pos;
			return 0;
		}
		if ((uint32_t)n < len) {
			/* upstream pads the object's chunk with zeros and
			 * stops after it */
			memset(r->buf + n, 0, len - n);
			job->input_done = true;
			job->end = chunk_end;
		}
	} else {
		memset(io_buf(r), 0, len);
	}

	/*
	 * Zeros bound for an unallocated object are already what it reads:
	 * nothing is sent, and an image's free space stays unallocated. (A
	 * later piece of the same object creates it zero-filled.)
	 */
	if (!slot && buf_is_zero(r->buf, len)) {
		job->pos += len;
		if (job->progress)
			progress_add(job->progress, len);
		return 0;
	}

	if (slot == job->vid) {
		init_obj_req(&req, SD_OP_WRITE_OBJ, job->h, r->oid, off, len);
		r->kind = IO_WRITE;
	} else {
		init_obj_req(&req, SD_OP_CREATE_AND_WRITE_OBJ, job->h, r->oid,
			     off, len);
		if (slot) {
			req.flags |= SD_FLAG_CMD_COW;
			req.obj.cow_oid = vid_to_data_oid(slot, idx);
		}
		r->kind = IO_CREATE;
		*pending_idx = idx;
	}
	req.flags |= job->flags | SD_FLAG_CMD_WRITE;
	job->pos += len;
	if (job->progress)
		progress_add(job->progress, len);
	return io_send(q, r, &req, r->buf);
}

/*
 * Hyper volumes: enter the objects created since the last call in the
 * B-tree. This is synchronous object I/O on the shared connection, so it
 * runs only when no request is in flight. After a failed update the tree
 * in memory may differ from the stored one, so nothing more is entered.
 */
static bool index_created(struct write_job *job, const uint32_t *idx, int nr)
{
	for (int i = 0; i < nr; i++)
		if (dog_btree_set(job->ix, idx[i], job->vid) != SD_RES_SUCCESS)
			return false;
	return true;
}

static int run_write_job(struct write_job *job)
{
	struct io_queue q = {0};
	uint64_t pending_idx = UINT64_MAX; /* create in flight for this idx */
	uint32_t created[IO_WINDOW];	   /* hyper: created, not yet indexed */
	int nr_created = 0;
	bool failed = false;
	int ret = EXIT_SUCCESS;

	for (;;) {
		struct io_req *r = NULL;
		struct sd_rsp rsp;

		/* until created objects are indexed, a piece of one of them
		 * would be sent as a second create */
		if (!failed && !nr_created && job->pos < job->end &&
		    pending_idx != job->pos >> job->h->block_size_shift) {
			for (int i = 0; i < IO_WINDOW && !r; i++)
				if (!q.reqs[i].busy)
					r = &q.reqs[i];
		}
		if (r) {
			if (send_write_piece(&q, r, job, &pending_idx) < 0)
				goto fatal;
			continue;
		}
		if (!q.nr_busy && nr_created) {
			if (!index_created(job, created, nr_created))
				goto fatal;
			nr_created = 0;
			continue;
		}
		if (!q.nr_busy)
			break;

		r = io_reap(&q, &rsp);
		if (!r)
			goto fatal;
		if (rsp.result != SD_RES_SUCCESS) {
			if (job->progress)
				progress_abort(job->progress);
			sd_err("Failed to write object %016" PRIx64 ": %s",
			       r->oid, sd_strerror(rsp.result));
			failed = true;
			continue;
		}
		/*
		 * A create that succeeded is indexed even after another piece
		 * failed: its data is on every copy, and an object no slot
		 * points at is never reclaimed.
		 */
		if (r->kind == IO_CREATE) {
			if (pending_idx == r->idx)
				pending_idx = UINT64_MAX;
			if (job->ix->btree) {
				created[nr_created++] = r->idx;
				continue;
			}
			job->ix->slots[r->idx] = job->vid;
			if (send_slot_update(&q, r, job) < 0)
				goto fatal;
		}
	}
	if (failed) {
		sd_err("Failed to write VDI");
		ret = EXIT_FAILURE;
	}
	io_queue_free(&q);
	return ret;
fatal:
	sd_err("Failed to write VDI");
	io_queue_free(&q);
	return EXIT_FAILURE;
}

/* ---- create ---- */

static uint8_t cluster_default_shift(void)
{
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_GET_CLUSTER_DEFAULT);
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0 ||
	    rsp.result != SD_RES_SUCCESS ||
	    !rsp.cluster_default.block_size_shift)
		return SD_DEFAULT_BLOCK_SIZE_SHIFT;
	return rsp.cluster_default.block_size_shift;
}

static int do_vdi_create(const char *name, uint64_t size, uint32_t *vid)
{
	return dog_new_vdi(name, size, 0, 0, vdi_cmd.nr_copies,
			   vdi_cmd.copy_policy, vdi_cmd.hyper ? 1 : 0,
			   vdi_cmd.block_size_shift, vid);
}

static int vdi_prealloc(uint32_t vid)
{
	struct sd_inode_header h;
	struct vdi_index ix;
	struct write_job job = {0};
	int ret;

	if (dog_read_inode_header(vid, &h) != SD_RES_SUCCESS ||
	    dog_read_vdi_index(&h, &ix) != SD_RES_SUCCESS) {
		sd_err("Failed to read a newly created VDI object");
		return EXIT_FAILURE;
	}
	job.vid = vid;
	job.h = &h;
	job.ix = &ix;
	job.pos = 0;
	job.end = ix.nr_slots << h.block_size_shift;
	job.prealloc = true;
	ret = run_write_job(&job);
	vdi_index_free(&ix);
	return ret;
}

static int vdi_create(int argc, char **argv)
{
	const char *name = argv[optind++];
	uint64_t size, max_size;
	uint32_t vid = 0;
	char a[32], b[32];
	int ret;

	if (!argv[optind]) {
		sd_err("Please specify the VDI size");
		return EXIT_USAGE;
	}
	if (option_parse_size(argv[optind], &size) < 0)
		return EXIT_USAGE;

	if (vdi_cmd.hyper) {
		/* the parser refused -z: hyper volumes use 4 MB objects */
		vdi_cmd.block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	} else {
		uint8_t shift = vdi_cmd.block_size_shift
				    ? vdi_cmd.block_size_shift
				    : cluster_default_shift();

		max_size = inode_max_size(shift);
		if (size > max_size) {
			sd_err("VDI size is larger than %s bytes, please use "
			       "'-y' to create a hyper volume with size up to "
			       "%s bytes or use '-z' to create larger object "
			       "size volume",
			       strnum(max_size, a), strnum(SD_MAX_VDI_SIZE, b));
			return EXIT_USAGE;
		}
	}
	if (size > SD_MAX_VDI_SIZE) {
		sd_err("VDI size is too large");
		return EXIT_USAGE;
	}

	ret = do_vdi_create(name, size, &vid);
	if (ret == EXIT_SUCCESS && vdi_cmd.prealloc)
		ret = vdi_prealloc(vid);
	if (ret == EXIT_SUCCESS && verbose) {
		if (raw_output)
			printf("%x\n", vid);
		else
			printf("VDI ID of newly created VDI: %x\n", vid);
	}
	return ret;
}

/* ---- delete ---- */

/*
 * Zero the flat index in batches of -B slots (each WRITE_OBJ into the
 * inode lets the sheep drop its references), sleeping -I seconds between
 * batches. Returns false when -m stopped it early.
 */
static bool zero_vdi_index(uint32_t vid, const struct sd_inode_header *h,
			   const struct vdi_index *ix)
{
	uint32_t batch = vdi_cmd.nr_batched;
	uint8_t *zeros = xzalloc((size_t)batch * 4);
	uint64_t processed = 0;
	bool complete = true;

	for (uint64_t start = 0; start < ix->nr_slots; start += batch) {
		uint64_t end = MIN(start + batch, ix->nr_slots);
		bool used = false;

		if (vdi_cmd.max_reclaim && processed >= vdi_cmd.max_reclaim) {
			complete = false;
			break;
		}
		processed += end - start;
		for (uint64_t i = start; i < end && !used; i++)
			used = ix->slots[i] != 0;
		if (!used)
			continue;
		if (dog_write_object(
			vid_to_vdi_oid(vid), 0, zeros, (end - start) * 4,
			SD_INODE_OFF_DATA_VDI_ID + 4 * start, 0, h->nr_copies,
			h->copy_policy, false) != SD_RES_SUCCESS)
			break;
		if (vdi_cmd.reclaim_interval && end < ix->nr_slots)
			sleep(vdi_cmd.reclaim_interval);
	}
	free(zeros);
	return complete;
}

void dog_delete_vdi(const char *name, uint32_t snapid, const char *tag)
{
	char data[SD_MAX_VDI_LEN + SD_MAX_VDI_TAG_LEN] = {0}, owner[96] = "";
	struct sd_inode_header h;
	struct vdi_index ix;
	struct sd_req req;
	struct sd_rsp rsp;
	uint32_t vid;

	if (dog_open_vdi(name, snapid, tag, &vid, &h, &ix) !=
	    EXIT_SUCCESS)
		return;
	/* Checked before the index is zeroed: a VDI in use stays whole. */
	if (dog_vdi_lock_owner(vid, owner, sizeof(owner)) != 0) {
		if (owner[0])
			sd_err("Failed to delete %s: it is in use, locked by "
			       "%s ('dog vdi lock unlock %s' breaks the lock)",
			       name, owner, name);
		vdi_index_free(&ix);
		return;
	}
	if (h.store_policy == 0 && !zero_vdi_index(vid, &h, &ix)) {
		vdi_index_free(&ix);
		return;
	}
	vdi_index_free(&ix);
	put_fixed_str(data, SD_MAX_VDI_LEN, name);
	put_fixed_str(data + SD_MAX_VDI_LEN, SD_MAX_VDI_TAG_LEN, tag);
	sd_init_req(&req, SD_OP_DEL_VDI);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = sizeof(data);
	req.vdi.snapid = snapid;
	if (dog_exec(&req, data, NULL, 0, &rsp) < 0)
		return;
	if (rsp.result != SD_RES_SUCCESS)
		sd_err("Failed to delete %s: %s", name,
		       sd_strerror(rsp.result));
}

/* Exit status 0 whatever happens: upstream's vdi delete does the same. */
static int vdi_delete(int argc, char **argv)
{
	dog_delete_vdi(argv[optind], vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag);
	return EXIT_SUCCESS;
}

/* ---- list ---- */

struct list_filter {
	const char *name;
};

static void print_vdi_row(const struct sd_inode_header *h, void *data)
{
	const struct list_filter *f = data;
	uint64_t objsize = UINT64_C(1) << h->block_size_shift;
	uint64_t own = 0, shared = 0;
	bool snapshot = inode_is_snapshot(h);
	bool clone = h->snap_id == 1 && h->parent_vdi_id != 0;
	char when[64], copies[16], s1[32], s2[32], s3[32];
	time_t t = (time_t)(h->create_time >> 32);
	struct vdi_index ix;
	struct tm tm;

	if (f->name && strcmp(h->name, f->name))
		return;
	if (dog_read_vdi_index(h, &ix) != SD_RES_SUCCESS) {
		sd_err("Failed to read inode");
		return;
	}
	if (vdi_cmd.has_oid &&
	    vdi_index_get(&ix, data_oid_to_idx(vdi_cmd.oid)) !=
		oid_to_vid(vdi_cmd.oid)) {
		vdi_index_free(&ix);
		return;
	}
	if (ix.slots) {
		for (uint64_t i = 0; i < ix.nr_slots; i++) {
			if (!ix.slots[i])
				continue;
			if (ix.slots[i] == h->vdi_id)
				own++;
			else
				shared++;
		}
	} else {
		for (uint64_t i = 0; i < ix.nr_ents; i++) {
			if (ix.ent_vid[i] == h->vdi_id)
				own++;
			else
				shared++;
		}
	}
	vdi_index_free(&ix);

	if (raw_output) {
		snprintf(when, sizeof(when), "%" PRIu64,
			 (uint64_t)(h->create_time >> 32));
	} else {
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M", &tm);
	}
	redundancy_str(h->nr_copies, h->copy_policy, copies, sizeof(copies));

	if (raw_output) {
		printf("%c ", snapshot ? 's' : (clone ? 'c' : '='));
		for (const char *p = h->name; *p; p++) {
			if (isspace((unsigned char)*p) || *p == '\\')
				putchar('\\');
			putchar(*p);
		}
		printf(" %" PRIu32 " %s %s %s %s %" PRIx32 " %s %s %u\n",
		       snapshot ? h->snap_id : 0, strnum(h->vdi_size, s1),
		       strnum(own * objsize, s2), strnum(shared * objsize, s3),
		       when, h->vdi_id, copies, h->tag, h->block_size_shift);
	} else {
		printf("%c %-8s %5" PRIu32 " %7s %7s %7s %s  %7" PRIx32
		       " %6s %13s %3u\n",
		       snapshot ? 's' : (clone ? 'c' : ' '), h->name,
		       snapshot ? h->snap_id : 0, strnum(h->vdi_size, s1),
		       strnum(own * objsize, s2), strnum(shared * objsize, s3),
		       when, h->vdi_id, copies, h->tag, h->block_size_shift);
	}
}

static int vdi_list(int argc, char **argv)
{
	struct list_filter f = {.name = argv[optind]};

	if (!raw_output)
		printf("  Name        Id    Size    Used  Shared    Creation "
		       "time   VDI id  Copies  Tag   Block Size Shift\n");
	if (dog_for_each_vdi(true, print_vdi_row, &f) < 0)
		return EXIT_SYSFAIL;
	return EXIT_SUCCESS;
}

/* ---- resize ---- */

static int vdi_resize(int argc, char **argv)
{
	const char *name = argv[optind++];
	uint8_t raw[SD_INODE_HEADER_SIZE];
	struct sd_inode_header h;
	uint64_t new_size, max_size;
	uint32_t vid;
	int ret;

	if (!argv[optind]) {
		sd_err("Please specify the new size for the VDI");
		return EXIT_USAGE;
	}
	if (option_parse_size(argv[optind], &new_size) < 0)
		return EXIT_USAGE;
	ret = dog_open_vdi(name, 0, "", &vid, &h, NULL);
	if (ret != EXIT_SUCCESS)
		return ret;
	/* rewrite the header exactly as stored, only vdi_size changed */
	if (dog_read_object(vid_to_vdi_oid(vid), raw, sizeof(raw), 0) !=
	    SD_RES_SUCCESS) {
		sd_err("Failed to read a vdi %s", name);
		return EXIT_FAILURE;
	}
	sd_inode_header_decode(raw, &h);

	max_size = h.store_policy ? SD_MAX_VDI_SIZE
				  : inode_max_size(h.block_size_shift);
	if (new_size > max_size) {
		sd_err("New VDI size is too large. This volume's max size is "
		       "%" PRIu64,
		       max_size);
		return EXIT_USAGE;
	}
	if (new_size < h.vdi_size) {
		sd_err("Shrinking VDIs is not implemented");
		return EXIT_USAGE;
	}
	put_le64(raw + SD_INODE_OFF_VDI_SIZE, new_size);
	if (dog_write_object(vid_to_vdi_oid(vid), 0, raw, sizeof(raw), 0, 0,
			     h.nr_copies, h.copy_policy,
			     false) != SD_RES_SUCCESS) {
		sd_err("Failed to update an inode header");
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* ---- read / write ---- */

/* "<vdiname> [<offset> [<len>]]" */
static int parse_range(int argc, char **argv, uint64_t *offset, uint64_t *len)
{
	*offset = 0;
	*len = UINT64_MAX;
	if (!argv[optind])
		return 0;
	if (option_parse_size(argv[optind++], offset) < 0)
		return -1;
	if (argv[optind] && option_parse_size(argv[optind++], len) < 0)
		return -1;
	return 0;
}

/* Queue the next piece of a read; holes are completed at once. */
static int send_read_piece(struct io_queue *q, const struct sd_inode_header *h,
			   const struct vdi_index *ix, uint64_t *pos,
			   uint64_t end)
{
	struct io_req *r = &q->reqs[(q->head + q->count) % IO_WINDOW];
	uint8_t shift = h->block_size_shift;
	uint64_t objsize = UINT64_C(1) << shift;
	uint32_t idx = *pos >> shift;
	uint64_t off = *pos & (objsize - 1);
	uint32_t len = MIN(MIN(end - *pos, objsize - off), IO_PIECE_MAX);
	uint32_t slot = vdi_index_get(ix, idx);
	struct sd_req req;

	q->count++;
	*pos += len;
	r->kind = IO_READ;
	r->len = len;
	io_buf(r);
	if (!slot) {
		memset(r->buf, 0, len);
		r->done = true;
		return 0;
	}
	r->oid = vid_to_data_oid(slot, idx);
	init_obj_req(&req, SD_OP_READ_OBJ, h, r->oid, off, len);
	return io_send(q, r, &req, NULL);
}

static int read_pipeline(const struct sd_inode_header *h,
			 const struct vdi_index *ix, uint64_t pos, uint64_t end)
{
	struct io_queue q = {0};
	struct progress prog;
	int ret = EXIT_FAILURE;

	progress_start(&prog, "read", end - pos);

	for (;;) {
		struct io_req *r;
		struct sd_rsp rsp;

		while (pos < end && q.count < IO_WINDOW)
			if (send_read_piece(&q, h, ix, &pos, end) < 0)
				goto out;
		while (q.count && q.reqs[q.head].done) {
			r = &q.reqs[q.head];
			if (sd_write_full(STDOUT_FILENO, r->buf, r->len)) {
				progress_abort(&prog);
				sd_err("Failed to write to stdout: %m");
				ret = EXIT_SYSFAIL;
				goto out;
			}
			progress_add(&prog, r->len);
			r->done = false;
			q.head = (q.head + 1) % IO_WINDOW;
			q.count--;
		}
		if (!q.count && pos >= end)
			break;
		if (!q.count)
			continue;
		r = io_reap(&q, &rsp);
		if (!r)
			goto out;
		if (rsp.result != SD_RES_SUCCESS) {
			progress_abort(&prog);
			sd_err("Failed to read object %016" PRIx64 " %s",
			       r->oid, sd_strerror(rsp.result));
			goto out;
		}
		r->done = true;
	}
	fsync(STDOUT_FILENO);
	progress_finish(&prog);
	ret = EXIT_SUCCESS;
out:
	progress_abort(&prog);
	io_queue_free(&q);
	return ret;
}

static int vdi_read(int argc, char **argv)
{
	const char *name = argv[optind++];
	struct sd_inode_header h;
	struct vdi_index ix;
	uint64_t offset, total;
	uint32_t vid;
	int ret;

	if (parse_range(argc, argv, &offset, &total) < 0)
		return EXIT_USAGE;
	ret = dog_open_vdi(name, vdi_cmd.snapshot_id, vdi_cmd.snapshot_tag,
			   &vid, &h, &ix);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (h.vdi_size < offset) {
		sd_err("Read offset is beyond the end of the VDI");
		vdi_index_free(&ix);
		return EXIT_FAILURE;
	}
	total = MIN(total, h.vdi_size - offset);
	ret = read_pipeline(&h, &ix, offset, offset + total);
	vdi_index_free(&ix);
	return ret;
}

static int vdi_write(int argc, char **argv)
{
	const char *name = argv[optind++];
	struct sd_inode_header h;
	struct vdi_index ix;
	struct write_job job = {0};
	struct progress prog;
	uint64_t offset, total;
	uint32_t vid;
	int ret;

	if (parse_range(argc, argv, &offset, &total) < 0)
		return EXIT_USAGE;
	ret = dog_open_vdi(name, 0, "", &vid, &h, &ix);
	if (ret != EXIT_SUCCESS)
		return ret;
	if (h.vdi_size < offset) {
		sd_err("Write offset is beyond the end of the VDI");
		vdi_index_free(&ix);
		return EXIT_FAILURE;
	}
	job.vid = vid;
	job.h = &h;
	job.ix = &ix;
	job.pos = offset;
	job.end = offset + MIN(total, h.vdi_size - offset);
	job.flags = vdi_cmd.writeback ? SD_FLAG_CMD_CACHE : 0;
	job.progress = &prog;
	progress_start(&prog, "write", job.end - job.pos);
	ret = run_write_job(&job);
	if (ret == EXIT_SUCCESS)
		progress_finish(&prog);
	else
		progress_abort(&prog);
	vdi_index_free(&ix);
	return ret;
}

/* ---- options ---- */

static uint32_t parse_positive_or_exit(const char *arg, const char *what)
{
	uint32_t v;

	if (parse_u32(arg, 10, &v) || v == 0) {
		sd_err("Invalid %s '%s': it must be a positive integer", what,
		       arg);
		exit(EXIT_USAGE);
	}
	return v;
}

static void vdi_parser(int ch, const char *arg)
{
	uint32_t level;
	char *end;

	switch (ch) {
	case 'P':
		vdi_cmd.prealloc = true;
		break;
	case 'y':
		vdi_cmd.hyper = true;
		if (vdi_cmd.block_size_shift) {
			sd_info("Don't specify both -y and -z options, please");
			exit(EXIT_FAILURE);
		}
		break;
	case 'w':
		vdi_cmd.writeback = true;
		break;
	case 's':
		if (strlen(arg) >= SD_MAX_VDI_TAG_LEN) {
			sd_err("Snapshot tag is too long: %zu bytes, at most %d",
			       strlen(arg), SD_MAX_VDI_TAG_LEN - 1);
			exit(EXIT_USAGE);
		}
		vdi_cmd.snapshot_id = strtoul(arg, &end, 10);
		if (end == arg || *end) {
			vdi_cmd.snapshot_id = 0;
			snprintf(vdi_cmd.snapshot_tag,
				 sizeof(vdi_cmd.snapshot_tag), "%s", arg);
		} else if (vdi_cmd.snapshot_id == 0) {
			sd_err("The snapshot id must be larger than zero");
			exit(EXIT_FAILURE);
		}
		break;
	case 'c':
		vdi_cmd.nr_copies =
		    parse_copy_or_exit(arg, &vdi_cmd.copy_policy);
		break;
	case 'z':
		vdi_cmd.block_size_shift = parse_block_size_shift_or_exit(arg);
		if (vdi_cmd.hyper) {
			sd_info("Don't specify both -y and -z options, please");
			exit(EXIT_FAILURE);
		}
		break;
	case 'o':
		if (parse_u64(arg, 16, &vdi_cmd.oid)) {
			sd_err("Invalid object id '%s'", arg);
			exit(EXIT_USAGE);
		}
		vdi_cmd.has_oid = true;
		break;
	case 'B':
		vdi_cmd.nr_batched =
		    parse_positive_or_exit(arg, "number of batched slots");
		break;
	case 'I':
		vdi_cmd.reclaim_interval =
		    parse_positive_or_exit(arg, "reclamation interval");
		break;
	case 'm':
		vdi_cmd.max_reclaim =
		    parse_positive_or_exit(arg, "maximum reclamation");
		break;
	case 'n':
		vdi_cmd.no_share = true;
		break;
	case 'x':
		vdi_cmd.exclusive = true;
		break;
	case 'd':
		vdi_cmd.delete_attr = true;
		break;
	case 'e':
		vdi_cmd.exist = true;
		break;
	case 'f':
		vdi_cmd.force = true;
		break;
	case 'R':
		vdi_cmd.reduce_identical = true;
		break;
	case 'i':
		if (parse_u64(arg, 0, &vdi_cmd.index) ||
		    vdi_cmd.index > UINT32_MAX) {
			sd_err("Invalid index '%s'", arg);
			exit(EXIT_USAGE);
		}
		vdi_cmd.has_index = true;
		break;
	case 'O':
		if (!strcmp(arg, "v1")) {
			backup_opts.format = SD_BACKUP_FORMAT_V1;
		} else if (!strcmp(arg, "native")) {
			backup_opts.format = SD_BACKUP_FORMAT_NATIVE;
		} else {
			sd_err("Invalid backup format '%s': native or v1", arg);
			exit(EXIT_USAGE);
		}
		break;
	case 'L':
		if (parse_u32(arg, 10, &level) || level < 1 || level > 19) {
			sd_err("Invalid compression level '%s': 1 to 19", arg);
			exit(EXIT_USAGE);
		}
		backup_opts.level = level;
		break;
	case 'F':
		vdi_cmd.from_snapshot_id = strtoul(arg, &end, 10);
		if (end == arg || *end) {
			vdi_cmd.from_snapshot_id = 0;
			snprintf(vdi_cmd.from_snapshot_tag,
				 sizeof(vdi_cmd.from_snapshot_tag), "%s", arg);
		} else if (vdi_cmd.from_snapshot_id == 0) {
			sd_err("The snapshot id must be larger than zero");
			exit(EXIT_FAILURE);
		}
		break;
	}
}

static const struct dog_option vdi_options[] = {
    {'P', "prealloc", false, "preallocate all the data objects"},
    {'s', "snapshot", true, "specify a snapshot id or tag name"},
    {'w', "writeback", false, "use writeback mode"},
    {'c', "copies", true, "specify the data redundancy level"},
    {'y', "hyper", false, "create a hyper volume"},
    {'o', "oid", true, "specify the object id of the tracking object"},
    {'z', "block_size_shift", true,
     "specify the bit shift num for data object size"},
    {'B', "nr-batched-reclamation", true,
     "specify the number of index slots zeroed per inode write"},
    {'I', "reclamation-interval", true,
     "specify the seconds to wait between batches of reclamation"},
    {'m', "max-reclaim", true,
     "stop after reclaiming this many slots and keep the VDI"},
    {'n', "no-share", false, "share nothing with its parent"},
    {'x', "exclusive", false, "write in an exclusive mode"},
    {'d', "delete", false, "delete a key"},
    {'e', "exist", false, "only check objects exist or not"},
    {'f', "force", false, "do operation forcibly"},
    {'R', "reduce-identical-snapshots", false,
     "do not create snapshot if working VDI doesn't have its own objects"},
    {'i', "index", true, "specify the index of data objects"},
    {'F', "from", true, "create a differential backup from the snapshot"},
    {'O', "format", true, "backup stream format: native (default) or v1"},
    {'L', "level", true, "zstd compression level of a native backup (1-19)"},
    {0, NULL, false, NULL},
};

static const struct subcommand vdi_subcommands[] = {
    {"check", "<vdiname>", "seaphT", "check and repair image's consistency",
     CMD_NEED_NODELIST | CMD_NEED_ARG, vdi_check},
    {"create", "<vdiname> <size>", "PycaphrvzT", "create an image",
     CMD_NEED_NODELIST | CMD_NEED_ARG, vdi_create},
    {"snapshot", "<vdiname>", "saphrvTR", "create a snapshot", CMD_NEED_ARG,
     vdi_snapshot},
    {"clone", "<src vdi> <dst vdi>", "sPnaphrvT", "clone an image",
     CMD_NEED_ARG, vdi_clone},
    {"delete", "<vdiname>", "saphTBIm", "delete an image", CMD_NEED_ARG,
     vdi_delete},
    {"rollback", "<vdiname>", "saphfrvTBI", "rollback to a snapshot",
     CMD_NEED_ARG, vdi_rollback},
    {"list", "[vdiname]", "aprhoT", "list images", 0, vdi_list},
    {"tree", NULL, "aphT", "show images in tree view format", 0, vdi_tree},
    {"graph", NULL, "aphT", "show images in Graphviz dot format", 0,
     vdi_graph},
    {"object", "<vdiname> location|map|dump-inode", "isaphT",
     "show object information in the image", CMD_NEED_ARG, vdi_object},
    {"track", "<vdiname>", "isaphoT", "show the object epoch trace in the image",
     CMD_NEED_NODELIST | CMD_NEED_ARG, vdi_track},
    {"setattr", "<vdiname> <key> [value]", "dxaphT", "set a VDI attribute",
     CMD_NEED_ARG, vdi_setattr},
    {"getattr", "<vdiname> <key>", "aphT", "get a VDI attribute", CMD_NEED_ARG,
     vdi_getattr},
    {"resize", "<vdiname> <new size>", "aphT", "resize an image", CMD_NEED_ARG,
     vdi_resize},
    {"read", "<vdiname> [<offset> [<len>]]", "saphT", "read data from an image",
     CMD_NEED_ARG, vdi_read},
    {"write", "<vdiname> [<offset> [<len>]]", "apwhT", "write data to an image",
     CMD_NEED_ARG, vdi_write},
    {"backup", "<vdiname> [<file>]", "sFOLaphT",
     "create a backup stream of a snapshot, or of the changes between two",
     CMD_NEED_NODELIST | CMD_NEED_ARG, vdi_backup},
    {"restore", "<vdiname> [<file>]", "scaphvTBI",
     "restore a backup stream into an image", CMD_NEED_NODELIST | CMD_NEED_ARG,
     vdi_restore},
    {"alter-copy", "<vdiname>", "capfhT", "set the vdi's redundancy level",
     CMD_NEED_NODELIST | CMD_NEED_ARG, vdi_alter_copy},
    {"lock", "list|unlock", "saphT", "see and modify the lock state of images",
     CMD_NEED_ARG, vdi_lock},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

const struct command vdi_command = {
    .name = "vdi",
    .sub = vdi_subcommands,
    .options = vdi_options,
    .parser = vdi_parser,
};
