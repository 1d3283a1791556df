/*
 * The farm of farm.h: a content-addressed file store for cluster snapshots.
 * Files are zstd frames named by the SHA-1 of their uncompressed content;
 * objects are cut into 128 KiB slices so that equal slices of different
 * objects, VDIs and snapshots are stored once. Reading accepts upstream's
 * uncompressed files too and always checks the content against its name.
 * Which objects make a snapshot and how they go back into a cluster is left
 * to dog (dog/cluster_snapshot.c).
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zstd.h>

#include "sheepdog/farm.h"
#include "sheepdog/le.h"
#include "sheepdog/util.h"

#define FARM_ZSTD_LEVEL 3
/* A trunk of 32 million objects (128 TiB of 4 MiB objects) at most. */
#define FARM_MAX_TRUNK (UINT64_C(1) << 30)
#define FARM_MAX_SLICE_LIST                                                    \
	(FARM_MAX_OBJECT / FARM_SLICE_SIZE * SHA1_DIGEST_SIZE)

/*
 * New files wait under a temporary name until this many are written, then
 * one syncfs() makes them all durable and they are renamed: a file under
 * its final name is always complete (saves dedupe by existence), without
 * one fdatasync per 128 KiB slice, which made saving to a disk ten times
 * slower than reading the cluster.
 */
#define FARM_PENDING_MAX 256

static const uint8_t zstd_magic[4] = {0x28, 0xb5, 0x2f, 0xfd};

struct pending_file {
	uint8_t sha1[SHA1_DIGEST_SIZE];
	char tmp[96];
};

struct farm {
	char *path;
	int dir_fd; /* the farm directory, flock()ed */
	ZSTD_CCtx *cctx;
	ZSTD_DCtx *dctx;
	struct pending_file pending[FARM_PENDING_MAX];
	int nr_pending;
	bool dirty[256]; /* fan-out directories with unsynced renames */
	bool top_dirty;	 /* the farm directory itself */
	unsigned long tmp_seq;
};

/* ---- encoding ---- */

void farm_header_encode(const struct farm_header *h, uint8_t buf[FARM_HDR_SIZE])
{
	memset(buf, 0, FARM_HDR_SIZE);
	put_le32(buf, FARM_MAGIC);
	put_le32(buf + 4, FARM_VERSION);
	buf[8] = h->copies;
	buf[9] = h->copy_policy;
	buf[10] = h->block_size_shift;
}

int farm_header_decode(const uint8_t buf[FARM_HDR_SIZE], struct farm_header *h)
{
	if (get_le32(buf) != FARM_MAGIC || get_le32(buf + 4) != FARM_VERSION)
		return -EBADMSG;
	h->copies = buf[8];
	h->copy_policy = buf[9];
	h->block_size_shift = buf[10];
	return 0;
}

void farm_snap_encode(const struct farm_snap *s, uint8_t buf[FARM_SNAP_SIZE])
{
	memset(buf, 0, FARM_SNAP_SIZE);
	put_le32(buf, s->idx);
	memcpy(buf + 4, s->tag, strnlen(s->tag, FARM_TAG_LEN - 1));
	put_le64(buf + 264, s->time);
	memcpy(buf + 272, s->trunk_sha1, SHA1_DIGEST_SIZE);
}

void farm_snap_decode(const uint8_t buf[FARM_SNAP_SIZE], struct farm_snap *s)
{
	s->idx = get_le32(buf);
	memcpy(s->tag, buf + 4, FARM_TAG_LEN);
	s->tag[FARM_TAG_LEN - 1] = '\0';
	s->time = get_le64(buf + 264);
	memcpy(s->trunk_sha1, buf + 272, SHA1_DIGEST_SIZE);
}

void farm_trunk_encode(const struct farm_trunk_entry *e,
		       uint8_t buf[FARM_TRUNK_ENTRY_SIZE])
{
	put_le64(buf, e->oid);
	buf[8] = e->nr_copies;
	buf[9] = e->copy_policy;
	buf[10] = e->block_size_shift;
	buf[11] = 0;
	memcpy(buf + 12, e->sha1, SHA1_DIGEST_SIZE);
}

void farm_trunk_decode(const uint8_t buf[FARM_TRUNK_ENTRY_SIZE],
		       struct farm_trunk_entry *e)
{
	e->oid = get_le64(buf);
	e->nr_copies = buf[8];
	e->copy_policy = buf[9];
	e->block_size_shift = buf[10];
	memcpy(e->sha1, buf + 12, SHA1_DIGEST_SIZE);
}

bool farm_tag_valid(const char *tag)
{
	size_t len = strlen(tag);

	return len > 0 && len < FARM_TAG_LEN &&
	       !(tag[0] >= '0' && tag[0] <= '9');
}

const struct farm_snap *farm_find_snap(const struct farm_snap *snaps, size_t nr,
				       const char *tag_or_idx)
{
	uint32_t idx;

	if (parse_u32(tag_or_idx, 10, &idx) == 0) {
		for (size_t i = 0; i < nr; i++)
			if (snaps[i].idx == idx)
				return &snaps[i];
		return NULL;
	}
	for (size_t i = 0; i < nr; i++)
		if (!strcmp(snaps[i].tag, tag_or_idx))
			return &snaps[i];
	return NULL;
}

/* ---- files ---- */

void farm_file_path(const struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		    char *buf, size_t len)
{
	char hex[41];

	sha1_to_hex(sha1, hex);
	snprintf(buf, len, "%s/objects/%.2s/%s", f->path, hex, hex + 2);
}

/* "objects/xx/<38 hex>", relative to the farm directory. */
static void rel_path(const uint8_t sha1[SHA1_DIGEST_SIZE], char buf[64])
{
	char hex[41];

	sha1_to_hex(sha1, hex);
	snprintf(buf, 64, "objects/%.2s/%s", hex, hex + 2);
}

static int write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		p += n;
		len -= n;
	}
	return 0;
}

/* Write buf to a temporary beside rel, sync it and rename it to rel. */
static int write_file_atomic(struct farm *f, const char *rel, const void *buf,
			     size_t len)
{
	char tmp[PATH_MAX];
	int fd, ret;

	snprintf(tmp, sizeof(tmp), "%s.tmp.%ld.%lu", rel, (long)getpid(),
		 f->tmp_seq++);
	fd = openat(f->dir_fd, tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0644);
	if (fd < 0)
		return -errno;
	ret = write_all(fd, buf, len);
	if (!ret && fdatasync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && !ret)
		ret = -errno;
	if (!ret && renameat(f->dir_fd, tmp, f->dir_fd, rel) < 0)
		ret = -errno;
	if (ret)
		unlinkat(f->dir_fd, tmp, 0);
	return ret;
}

/* Make the pending files durable, then give them their names. */
static int flush_pending(struct farm *f)
{
	char rel[64];
	int ret = 0;

	if (!f->nr_pending)
		return 0;
	if (syncfs(f->dir_fd) < 0)
		ret = -errno;
	for (int i = 0; i < f->nr_pending; i++) {
		struct pending_file *p = &f->pending[i];

		rel_path(p->sha1, rel);
		if (!ret && renameat(f->dir_fd, p->tmp, f->dir_fd, rel) < 0)
			ret = -errno;
		if (ret)
			unlinkat(f->dir_fd, p->tmp, 0);
		else
			f->dirty[p->sha1[0]] = true;
	}
	f->nr_pending = 0;
	return ret;
}

static bool is_pending(const struct farm *f,
		       const uint8_t sha1[SHA1_DIGEST_SIZE])
{
	for (int i = 0; i < f->nr_pending; i++)
		if (!memcmp(f->pending[i].sha1, sha1, SHA1_DIGEST_SIZE))
			return true;
	return false;
}

int farm_put_file(struct farm *f, const void *buf, size_t len,
		  uint8_t sha1[SHA1_DIGEST_SIZE], uint64_t *added)
{
	size_t bound = ZSTD_compressBound(len);
	struct pending_file *p;
	char rel[64];
	uint8_t *z;
	size_t zlen;
	int fd, ret;

	if (added)
		*added = 0;
	sha1_buf(buf, len, sha1);
	rel_path(sha1, rel);
	if (is_pending(f, sha1))
		return 0;
	if (faccessat(f->dir_fd, rel, F_OK, 0) == 0)
		return 0;
	if (errno != ENOENT)
		return -errno;

	z = xmalloc(bound);
	zlen = ZSTD_compressCCtx(f->cctx, z, bound, buf, len, FARM_ZSTD_LEVEL);
	if (ZSTD_isError(zlen)) {
		free(z);
		return -EIO;
	}
	p = &f->pending[f->nr_pending];
	snprintf(p->tmp, sizeof(p->tmp), "%s.tmp.%ld.%lu", rel, (long)getpid(),
		 f->tmp_seq++);
	fd = openat(f->dir_fd, p->tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC,
		    0644);
	ret = fd < 0 ? -errno : write_all(fd, z, zlen);
	free(z);
	if (fd >= 0 && close(fd) < 0 && !ret)
		ret = -errno;
	if (ret) {
		if (fd >= 0)
			unlinkat(f->dir_fd, p->tmp, 0);
		return ret;
	}
	memcpy(p->sha1, sha1, SHA1_DIGEST_SIZE);
	f->nr_pending++;
	if (added)
		*added = zlen;
	return f->nr_pending == FARM_PENDING_MAX ? flush_pending(f) : 0;
}

/* The whole file rel, at most max bytes (-EBADMSG if longer). */
static int read_whole(struct farm *f, const char *rel, size_t max,
		      uint8_t **buf, size_t *len)
{
	struct stat st;
	size_t done = 0;
	uint8_t *p;
	int fd = openat(f->dir_fd, rel, O_RDONLY | O_CLOEXEC), ret = 0;

	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		ret = -errno;
		goto out;
	}
	if (!S_ISREG(st.st_mode) || (uint64_t)st.st_size > max) {
		ret = -EBADMSG;
		goto out;
	}
	p = xmalloc(st.st_size ? st.st_size : 1);
	while (done < (size_t)st.st_size) {
		ssize_t n = read(fd, p + done, st.st_size - done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			ret = n < 0 ? -errno : -EBADMSG;
			free(p);
			goto out;
		}
		done += n;
	}
	*buf = p;
	*len = done;
out:
	close(fd);
	return ret;
}

static bool sha1_matches(const void *buf, size_t len,
			 const uint8_t sha1[SHA1_DIGEST_SIZE])
{
	uint8_t d[SHA1_DIGEST_SIZE];

	sha1_buf(buf, len, d);
	return !memcmp(d, sha1, SHA1_DIGEST_SIZE);
}

/* A zstd frame of at most max bytes whose content hashes to sha1, into a
 * new buffer; false when the file is not that. */
static bool decode_zstd(struct farm *f, const uint8_t *z, size_t zlen,
			size_t max, const uint8_t sha1[SHA1_DIGEST_SIZE],
			uint8_t **out, size_t *out_len)
{
	unsigned long long size;
	uint8_t *p;
	size_t n;

	if (zlen < sizeof(zstd_magic) ||
	    memcmp(z, zstd_magic, sizeof(zstd_magic)))
		return false;
	size = ZSTD_getFrameContentSize(z, zlen);
	if (size == ZSTD_CONTENTSIZE_UNKNOWN ||
	    size == ZSTD_CONTENTSIZE_ERROR || size > max)
		return false;
	p = xmalloc(size ? size : 1);
	n = ZSTD_decompressDCtx(f->dctx, p, size, z, zlen);
	if (ZSTD_isError(n) || n != size || !sha1_matches(p, n, sha1)) {
		free(p);
		return false;
	}
	*out = p;
	*out_len = n;
	return true;
}

int farm_get_file(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		  size_t max, uint8_t **buf, size_t *len)
{
	char rel[64];
	uint8_t *raw;
	size_t raw_len;
	int ret;

	ret = flush_pending(f);
	if (ret)
		return ret;
	rel_path(sha1, rel);
	ret = read_whole(f, rel, MAX(max, ZSTD_compressBound(max)), &raw,
			 &raw_len);
	if (ret)
		return ret;
	if (decode_zstd(f, raw, raw_len, max, sha1, buf, len)) {
		free(raw);
		return 0;
	}
	/* upstream's files are the content itself */
	if (raw_len <= max && sha1_matches(raw, raw_len, sha1)) {
		*buf = raw;
		*len = raw_len;
		return 0;
	}
	free(raw);
	return -EBADMSG;
}

/* ---- objects ---- */

int farm_put_object(struct farm *f, const void *buf, size_t len,
		    uint8_t sha1[SHA1_DIGEST_SIZE], uint64_t *added)
{
	size_t nr = (len + FARM_SLICE_SIZE - 1) / FARM_SLICE_SIZE;
	uint8_t *list;
	uint64_t n, total = 0;
	int ret = 0;

	if (len > FARM_MAX_OBJECT)
		return -EFBIG;
	list = xmalloc(nr ? nr * SHA1_DIGEST_SIZE : 1);
	for (size_t i = 0; i < nr && !ret; i++) {
		size_t off = i * FARM_SLICE_SIZE;

		ret = farm_put_file(f, (const uint8_t *)buf + off,
				    MIN((size_t)FARM_SLICE_SIZE, len - off),
				    list + i * SHA1_DIGEST_SIZE, &n);
		total += n;
	}
	if (!ret) {
		ret = farm_put_file(f, list, nr * SHA1_DIGEST_SIZE, sha1, &n);
		total += n;
	}
	free(list);
	if (added)
		*added = total;
	return ret;
}

int farm_get_object(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		    void *buf, size_t max, size_t *len,
		    uint8_t bad[SHA1_DIGEST_SIZE])
{
	uint8_t *list, *slice;
	size_t list_len, slice_len, done = 0, nr;
	int ret = farm_get_file(f, sha1, FARM_MAX_SLICE_LIST, &list, &list_len);

	if (!ret && list_len % SHA1_DIGEST_SIZE) {
		free(list);
		ret = -EBADMSG;
	}
	if (ret) {
		if (bad)
			memcpy(bad, sha1, SHA1_DIGEST_SIZE);
		return ret;
	}
	nr = list_len / SHA1_DIGEST_SIZE;
	for (size_t i = 0; i < nr && !ret; i++) {
		ret = farm_get_file(f, list + i * SHA1_DIGEST_SIZE,
				    FARM_SLICE_SIZE, &slice, &slice_len);
		if (ret) {
			if (bad)
				memcpy(bad, list + i * SHA1_DIGEST_SIZE,
				       SHA1_DIGEST_SIZE);
			break;
		}
		if (slice_len > max - done) {
			if (bad)
				memcpy(bad, sha1, SHA1_DIGEST_SIZE);
			ret = -EFBIG;
		} else {
			memcpy((uint8_t *)buf + done, slice, slice_len);
			done += slice_len;
		}
		free(slice);
	}
	free(list);
	if (!ret)
		*len = done;
	return ret;
}

/* ---- the farm ---- */

static int make_dirs(int dir_fd)
{
	char name[16];

	if (mkdirat(dir_fd, "objects", 0755) < 0 && errno != EEXIST)
		return -errno;
	for (int i = 0; i < 256; i++) {
		snprintf(name, sizeof(name), "objects/%02x", i);
		if (mkdirat(dir_fd, name, 0755) < 0 && errno != EEXIST)
			return -errno;
	}
	return 0;
}

int farm_open(const char *path, bool create, struct farm **out)
{
	struct farm *f;
	int fd, ret;

	if (create && mkdir(path, 0755) < 0 && errno != EEXIST)
		return -errno;
	fd = open(path, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (flock(fd, LOCK_EX | LOCK_NB) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	if (create) {
		ret = make_dirs(fd);
		if (ret) {
			close(fd);
			return ret;
		}
	}
	f = xzalloc(sizeof(*f));
	f->path = xstrdup(path);
	f->dir_fd = fd;
	f->cctx = ZSTD_createCCtx();
	f->dctx = ZSTD_createDCtx();
	if (!f->cctx || !f->dctx) {
		farm_close(f);
		return -ENOMEM;
	}
	f->top_dirty = create;
	*out = f;
	return 0;
}

void farm_close(struct farm *f)
{
	if (!f)
		return;
	/* files of a save that failed never get their names */
	for (int i = 0; i < f->nr_pending; i++)
		unlinkat(f->dir_fd, f->pending[i].tmp, 0);
	ZSTD_freeCCtx(f->cctx);
	ZSTD_freeDCtx(f->dctx);
	close(f->dir_fd);
	free(f->path);
	free(f);
}

int farm_sync(struct farm *f)
{
	char name[16];
	int ret = flush_pending(f);

	if (ret)
		return ret;
	for (int i = 0; i < 256; i++) {
		if (!f->dirty[i])
			continue;
		snprintf(name, sizeof(name), "objects/%02x", i);
		ret = sd_fsync_dir_at(f->dir_fd, name);
		if (ret)
			return ret;
		f->dirty[i] = false;
	}
	if (f->top_dirty) {
		ret = sd_fsync_dir_at(f->dir_fd, "objects");
		if (!ret && fsync(f->dir_fd) < 0)
			ret = -errno;
		if (ret)
			return ret;
		f->top_dirty = false;
	}
	return 0;
}

/* ---- user_snap ---- */

int farm_read_snaps(struct farm *f, struct farm_header *h,
		    struct farm_snap **snaps, size_t *nr)
{
	uint8_t *buf;
	size_t len, n;
	int ret = read_whole(f, "user_snap", SIZE_MAX, &buf, &len);

	*snaps = NULL;
	*nr = 0;
	if (ret)
		return ret;
	if (len < FARM_HDR_SIZE || (len - FARM_HDR_SIZE) % FARM_SNAP_SIZE ||
	    farm_header_decode(buf, h)) {
		free(buf);
		return -EBADMSG;
	}
	n = (len - FARM_HDR_SIZE) / FARM_SNAP_SIZE;
	if (n) {
		*snaps = xcalloc(n, sizeof(**snaps));
		for (size_t i = 0; i < n; i++)
			farm_snap_decode(buf + FARM_HDR_SIZE +
					     i * FARM_SNAP_SIZE,
					 &(*snaps)[i]);
	}
	*nr = n;
	free(buf);
	return 0;
}

int farm_add_snap(struct farm *f, const struct farm_header *h,
		  struct farm_snap *s)
{
	struct farm_header old;
	struct farm_snap *snaps;
	size_t nr, len;
	uint32_t last = 0;
	uint8_t *buf;
	int ret = farm_read_snaps(f, &old, &snaps, &nr);

	if (ret && ret != -ENOENT)
		return ret;
	for (size_t i = 0; i < nr; i++)
		last = MAX(last, snaps[i].idx);
	s->idx = last + 1;

	len = FARM_HDR_SIZE + (nr + 1) * FARM_SNAP_SIZE;
	buf = xmalloc(len);
	farm_header_encode(h, buf);
	for (size_t i = 0; i < nr; i++)
		farm_snap_encode(&snaps[i],
				 buf + FARM_HDR_SIZE + i * FARM_SNAP_SIZE);
	farm_snap_encode(s, buf + FARM_HDR_SIZE + nr * FARM_SNAP_SIZE);
	free(snaps);

	/* the snapshot's files must be on disk before the record names them */
	ret = farm_sync(f);
	if (!ret)
		ret = write_file_atomic(f, "user_snap", buf, len);
	if (!ret && fsync(f->dir_fd) < 0)
		ret = -errno;
	free(buf);
	return ret;
}

/* ---- trunk ---- */

int farm_put_trunk(struct farm *f, const struct farm_trunk_entry *e, size_t nr,
		   uint8_t sha1[SHA1_DIGEST_SIZE])
{
	uint8_t *buf = xmalloc(nr ? nr * FARM_TRUNK_ENTRY_SIZE : 1);
	int ret;

	for (size_t i = 0; i < nr; i++)
		farm_trunk_encode(&e[i], buf + i * FARM_TRUNK_ENTRY_SIZE);
	ret = farm_put_file(f, buf, nr * FARM_TRUNK_ENTRY_SIZE, sha1, NULL);
	free(buf);
	return ret;
}

int farm_get_trunk(struct farm *f, const uint8_t sha1[SHA1_DIGEST_SIZE],
		   struct farm_trunk_entry **e, size_t *nr)
{
	uint8_t *buf;
	size_t len, n;
	int ret = farm_get_file(f, sha1, FARM_MAX_TRUNK, &buf, &len);

	if (ret)
		return ret;
	if (len % FARM_TRUNK_ENTRY_SIZE) {
		free(buf);
		return -EBADMSG;
	}
	n = len / FARM_TRUNK_ENTRY_SIZE;
	*e = xcalloc(n ? n : 1, sizeof(**e));
	for (size_t i = 0; i < n; i++)
		farm_trunk_decode(buf + i * FARM_TRUNK_ENTRY_SIZE, &(*e)[i]);
	*nr = n;
	free(buf);
	return 0;
}
