/*
 * The local object store: one file per object (spec 8.2-8.4) under
 * BASE/obj, in the "plain" layout (flat) or the "tree" layout (meta/ for
 * inode, vmstate and attribute objects, xx/ by the low byte of the vid for
 * the rest). Stale copies live in obj/.stale/<oid>.<epoch>.
 *
 * Crash safety: a create writes a private temporary file, syncs it, renames
 * it over the final name and syncs the directory, so a crash leaves the old
 * object or the new one. Writes use O_DSYNC. With nosync both skip the syncs.
 * Every function returns an SD_RES_* code; errno is mapped here, once.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/statvfs.h>
#include <sys/syscall.h>
#include <sys/uio.h>
#include <unistd.h>

#include "sheep.h"

static char obj_dir[4096];
static char stale_dir[4200];
static bool tree_layout;
static bool store_nosync;
/* Bumped by store_format() under the write lock: recovery writes carry the
 * generation they started in and are dropped if a format came between. */
static pthread_rwlock_t format_lock = PTHREAD_RWLOCK_INITIALIZER;
static uint64_t store_gen;
static bool store_directio;

/* With -D, data objects are read and written around the page cache when the
 * request is block aligned (VMs keep their own cache). By default they go
 * through it, which lets reads of cached data be served without waiting
 * (store_read_nowait). */
#define DIO_ALIGN 4096

static bool use_direct(uint64_t oid, uint64_t offset, uint64_t len,
		       const void *buf)
{
	return store_directio && (is_data_obj(oid) || is_vmstate_obj(oid)) &&
	       !(offset % DIO_ALIGN) && !(len % DIO_ALIGN) && len &&
	       !((uintptr_t)buf % DIO_ALIGN);
}

/*
 * I/O this big bypasses the page cache even without -D: whole objects read
 * by `dog vdi read`, backups and recovery stream from disk faster in one
 * direct I/O than through readahead, and would only push a VM's hot
 * blocks out of the cache. Direct reads stay coherent with the buffered
 * writes (the kernel writes back a dirty range before reading it; ours are
 * O_DSYNC, so there are none). So do writes into a new object's private
 * temporary file, which no reader can have cached. Other writes are never
 * direct without -D: a direct write racing a buffered read of the same
 * range could leave a stale page in the cache.
 */
#define DIO_BIG (2U << 20)

static bool big_direct(uint64_t oid, uint64_t offset, uint64_t len,
		       const void *buf)
{
	return use_direct(oid, offset, len, buf) ||
	       (len >= DIO_BIG && (is_data_obj(oid) || is_vmstate_obj(oid)) &&
		!(offset % DIO_ALIGN) && !(len % DIO_ALIGN) &&
		!((uintptr_t)buf % DIO_ALIGN));
}
static int obj_dir_fd = -1;

/* open(2), falling back to the page cache where O_DIRECT is refused. */
static int open_obj(const char *path, int flags, mode_t mode)
{
	int fd = open(path, flags, mode);

	if (fd < 0 && errno == EINVAL && (flags & O_DIRECT))
		fd = open(path, flags & ~O_DIRECT, mode);
	return fd;
}

static int errno_to_result(int err)
{
	switch (err) {
	case ENOENT:
		return SD_RES_NO_OBJ;
	case ENOSPC:
	case EDQUOT:
		return SD_RES_NO_SPACE;
	case ENOMEM:
		return SD_RES_NO_MEM;
	default:
		return SD_RES_EIO;
	}
}

static void obj_subdir(uint64_t oid, char *buf, size_t len)
{
	if (!tree_layout)
		snprintf(buf, len, "%s", obj_dir);
	else if (is_vdi_obj(oid) || is_vmstate_obj(oid) ||
		 is_vdi_attr_obj(oid))
		snprintf(buf, len, "%s/meta", obj_dir);
	else
		snprintf(buf, len, "%s/%02x", obj_dir,
			 (unsigned)(oid_to_vid(oid) & 0xff));
}

static void obj_path(uint64_t oid, uint8_t ec_index, char *buf, size_t len)
{
	char dir[4200];

	obj_subdir(oid, dir, sizeof(dir));
	if (ec_index)
		snprintf(buf, len, "%s/%016" PRIx64 "_%u", dir, oid, ec_index);
	else
		snprintf(buf, len, "%s/%016" PRIx64, dir, oid);
}

static int make_dirs(void)
{
	if (mkdir(obj_dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (mkdir(stale_dir, 0750) < 0 && errno != EEXIST)
		return -errno;
	if (tree_layout) {
		char p[4300];

		snprintf(p, sizeof(p), "%s/meta", obj_dir);
		if (mkdir(p, 0750) < 0 && errno != EEXIST)
			return -errno;
		for (int i = 0; i < 256; i++) {
			snprintf(p, sizeof(p), "%s/%02x", obj_dir, i);
			if (mkdir(p, 0750) < 0 && errno != EEXIST)
				return -errno;
		}
	}
	return 0;
}

/* Remove temporary files left by a crash in the middle of a create. */
static void remove_tmp_files(const char *dir, void *arg)
{
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		if (strstr(de->d_name, ".tmp")) {
			char p[4400];

			snprintf(p, sizeof(p), "%s/%s", dir, de->d_name);
			sd_notice("removing unfinished create %s", p);
			unlink(p);
		}
	}
	closedir(d);
}

static void for_each_obj_dir(void (*fn)(const char *dir, void *arg), void *arg)
{
	char p[4300];

	fn(obj_dir, arg);
	if (!tree_layout)
		return;
	snprintf(p, sizeof(p), "%s/meta", obj_dir);
	fn(p, arg);
	for (int i = 0; i < 256; i++) {
		snprintf(p, sizeof(p), "%s/%02x", obj_dir, i);
		fn(p, arg);
	}
}

int store_init(const char *base, const char *layout, bool nosync,
	       bool directio)
{
	int ret;

	snprintf(obj_dir, sizeof(obj_dir), "%s/obj", base);
	snprintf(stale_dir, sizeof(stale_dir), "%s/.stale", obj_dir);
	tree_layout = layout && !strcmp(layout, "tree");
	store_nosync = nosync;
	store_directio = directio;
	ret = make_dirs();
	if (ret < 0) {
		sd_err("cannot create object directories in %s: %s", obj_dir,
		       strerror(-ret));
		return ret;
	}
	if (obj_dir_fd >= 0)
		close(obj_dir_fd);
	obj_dir_fd = open(obj_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
	if (obj_dir_fd < 0)
		return -errno;
	for_each_obj_dir(remove_tmp_files, NULL);
	return 0;
}

const char *store_layout_name(void)
{
	return tree_layout ? "tree" : "plain";
}

static int remove_tree(const char *path)
{
	DIR *d = opendir(path);
	struct dirent *de;
	int ret = 0;

	if (!d)
		return errno == ENOENT ? 0 : -errno;
	while ((de = readdir(d))) {
		char p[4400];
		struct stat st;

		if (!strcmp(de->d_name, ".") || !strcmp(de->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, de->d_name);
		if (lstat(p, &st) == 0 && S_ISDIR(st.st_mode)) {
			ret = remove_tree(p);
			if (ret == 0 && rmdir(p) < 0)
				ret = -errno;
		} else if (unlink(p) < 0 && errno != ENOENT) {
			ret = -errno;
		}
		if (ret < 0)
			break;
	}
	closedir(d);
	return ret;
}

uint64_t store_generation(void)
{
	return __atomic_load_n(&store_gen, __ATOMIC_ACQUIRE);
}

int store_format(const char *layout)
{
	int ret;

	pthread_rwlock_wrlock(&format_lock);
	__atomic_add_fetch(&store_gen, 1, __ATOMIC_RELEASE);
	ret = remove_tree(obj_dir);
	if (ret < 0) {
		sd_err("cannot wipe %s: %s", obj_dir, strerror(-ret));
	} else {
		tree_layout = layout && !strcmp(layout, "tree");
		ret = make_dirs();
	}
	pthread_rwlock_unlock(&format_lock);
	return ret;
}

static int sync_dir(const char *path)
{
	return store_nosync ? 0 : sd_fsync_dir_at(AT_FDCWD, path);
}

/*
 * Create the object from scratch: base_data (the whole object, for
 * copy-on-write) or zeros, overlaid with len bytes at offset.
 */
int store_create_and_write(uint64_t oid, uint8_t ec_index, uint64_t offset,
			   uint32_t len, const void *data, uint64_t obj_size,
			   const void *base_data)
{
	char path[4400], tmp[4500], dir[4200];
	int fd, ret;

	obj_path(oid, ec_index, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path,
		 (long)syscall(SYS_gettid));
	fd = open_obj(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC |
			       (!base_data && big_direct(oid, offset, len, data)
					? O_DIRECT
					: 0),
		  0640);
	if (fd < 0) {
		ret = errno;
		sd_err("oid %016" PRIx64 ": cannot create %s: %m", oid, tmp);
		return errno_to_result(ret);
	}
	if (base_data) {
		ret = pwrite_full(fd, base_data, obj_size, 0);
	} else if (len < obj_size) {
		/* Data objects are preallocated so that later writes cannot
		 * fail for space; metadata objects stay sparse. */
		if (is_data_obj(oid) || is_vmstate_obj(oid))
			ret = fallocate(fd, 0, 0, obj_size) < 0 ? -errno : 0;
		else
			ret = ftruncate(fd, obj_size) < 0 ? -errno : 0;
		if (ret == -EOPNOTSUPP)
			ret = ftruncate(fd, obj_size) < 0 ? -errno : 0;
	} else {
		ret = 0;
	}
	if (ret == 0 && len)
		ret = pwrite_full(fd, data, len, offset);
	if (ret == 0 && !store_nosync && fdatasync(fd) < 0)
		ret = -errno;
	if (close(fd) < 0 && ret == 0)
		ret = -errno;
	if (ret == 0 && rename(tmp, path) < 0)
		ret = -errno;
	if (ret < 0) {
		sd_err("oid %016" PRIx64 ": create failed: %s", oid,
		       strerror(-ret));
		unlink(tmp);
		return errno_to_result(-ret);
	}
	obj_subdir(oid, dir, sizeof(dir));
	ret = sync_dir(dir);
	if (ret < 0) {
		sd_err("oid %016" PRIx64 ": cannot sync %s: %s", oid, dir,
		       strerror(-ret));
		return errno_to_result(-ret);
	}
	return SD_RES_SUCCESS;
}

int store_write(uint64_t oid, uint8_t ec_index, uint64_t offset, uint32_t len,
		const void *data)
{
	char path[4400];
	int fd, ret, flags = O_WRONLY | O_CLOEXEC;

	if (!store_nosync)
		flags |= O_DSYNC;
	if (use_direct(oid, offset, len, data))
		flags |= O_DIRECT;
	obj_path(oid, ec_index, path, sizeof(path));
	fd = open_obj(path, flags, 0);
	if (fd < 0) {
		ret = errno;
		if (ret != ENOENT)
			sd_err("oid %016" PRIx64 ": cannot open %s: %m", oid,
			       path);
		return errno_to_result(ret);
	}
	ret = pwrite_full(fd, data, len, offset);
	close(fd);
	if (ret < 0) {
		sd_err("oid %016" PRIx64 ": write of %" PRIu32 " bytes at %" PRIu64
		       " failed: %s", oid, len, offset, strerror(-ret));
		return errno_to_result(-ret);
	}
	return SD_RES_SUCCESS;
}

static int read_at(const char *path, uint64_t offset, uint32_t len, void *buf,
		   bool direct)
{
	int fd = open_obj(path, O_RDONLY | O_CLOEXEC | (direct ? O_DIRECT : 0), 0);
	size_t done = 0;

	if (fd < 0)
		return -errno;
	while (done < len) {
		ssize_t n = pread(fd, (char *)buf + done, len - done,
				  offset + done);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			n = -errno;
			close(fd);
			return n;
		}
		if (n == 0)
			break;
		done += n;
	}
	close(fd);
	/* Past the end of the file reads as zeros, never as old memory. */
	if (done < len)
		memset((char *)buf + done, 0, len - done);
	return 0;
}

int store_read(uint64_t oid, uint8_t ec_index, uint64_t offset, uint32_t len,
	       void *buf)
{
	char path[4400];
	int ret;

	obj_path(oid, ec_index, path, sizeof(path));
	ret = read_at(path, offset, len, buf, big_direct(oid, offset, len, buf));
	if (ret < 0) {
		if (ret != -ENOENT)
			sd_err("oid %016" PRIx64 ": read failed: %s", oid,
			       strerror(-ret));
		return errno_to_result(-ret);
	}
	return SD_RES_SUCCESS;
}

/*
 * The fast path of a read: served only if it needs no disk I/O (the range is
 * in the page cache: preadv2 with RWF_NOWAIT), so that an event loop may
 * call it. false means "take the full path", which also reports any error;
 * nothing is logged here.
 */
bool store_read_nowait(uint64_t oid, uint64_t offset, uint32_t len, void *buf)
{
	struct iovec iov = {buf, len};
	char path[4400];
	ssize_t n;
	int fd;

	if (big_direct(oid, offset, len, buf))
		return false;
	obj_path(oid, 0, path, sizeof(path));
	fd = open(path, O_RDONLY | O_CLOEXEC | O_NOATIME);
	if (fd < 0 && errno == EPERM)
		fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return false;
	n = preadv2(fd, &iov, 1, offset, RWF_NOWAIT);
	close(fd);
	return n == (ssize_t)len;
}

int store_read_stale(uint64_t oid, uint8_t ec_index, uint32_t epoch,
		     uint64_t offset, uint32_t len, void *buf)
{
	char path[4400];
	int ret;

	if (ec_index)
		snprintf(path, sizeof(path), "%s/%016" PRIx64 "_%u.%u",
			 stale_dir, oid, ec_index, epoch);
	else
		snprintf(path, sizeof(path), "%s/%016" PRIx64 ".%u", stale_dir,
			 oid, epoch);
	ret = read_at(path, offset, len, buf, false);
	return ret < 0 ? errno_to_result(-ret) : SD_RES_SUCCESS;
}

int store_remove(uint64_t oid, uint8_t ec_index)
{
	char path[4400];

	obj_path(oid, ec_index, path, sizeof(path));
	if (unlink(path) < 0) {
		int err = errno;

		if (err != ENOENT)
			sd_err("oid %016" PRIx64 ": cannot remove: %m", oid);
		return errno_to_result(err);
	}
	return SD_RES_SUCCESS;
}

bool store_exist(uint64_t oid, uint8_t ec_index)
{
	char path[4400];

	obj_path(oid, ec_index, path, sizeof(path));
	return access(path, F_OK) == 0;
}

/* Parse "%016x" or "%016x_%d"; anything else is not an object file. */
static bool parse_obj_name(const char *name, uint64_t *oid)
{
	char *end;

	if (strlen(name) < 16)
		return false;
	errno = 0;
	*oid = strtoull(name, &end, 16);
	if (errno || end != name + 16)
		return false;
	return *end == '\0' || *end == '_';
}

/* Every live object file: fn(dir, file name, oid, arg). */
typedef void (*obj_file_fn)(const char *dir, const char *name, uint64_t oid,
			    void *arg);

struct obj_walk {
	obj_file_fn fn;
	void *arg;
};

static void walk_dir(const char *dir, void *arg)
{
	struct obj_walk *w = arg;
	DIR *d = opendir(dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		uint64_t oid;

		if (strstr(de->d_name, ".tmp") ||
		    !parse_obj_name(de->d_name, &oid))
			continue;
		w->fn(dir, de->d_name, oid, w->arg);
	}
	closedir(d);
}

static void for_each_obj_file(obj_file_fn fn, void *arg)
{
	struct obj_walk w = { fn, arg };

	for_each_obj_dir(walk_dir, &w);
}

struct oid_vec {
	uint64_t *oids;
	size_t nr, alloc;
};

static void add_oid(const char *dir, const char *name, uint64_t oid, void *arg)
{
	struct oid_vec *v = arg;

	if (v->nr == v->alloc) {
		v->alloc = v->alloc ? v->alloc * 2 : 1024;
		v->oids = xrealloc(v->oids, v->alloc * sizeof(*v->oids));
	}
	v->oids[v->nr++] = oid;
}

int store_list(uint64_t **oids, size_t *nr)
{
	struct oid_vec v = { 0 };

	for_each_obj_file(add_oid, &v);
	sort_unique_u64(v.oids, &v.nr);
	*oids = v.oids;
	*nr = v.nr;
	return SD_RES_SUCCESS;
}

static void stale_one_file(const char *dir, const char *name, uint64_t oid,
			   void *arg)
{
	uint32_t epoch = *(uint32_t *)arg;
	char from[4600], to[4600];

	snprintf(from, sizeof(from), "%s/%s", dir, name);
	snprintf(to, sizeof(to), "%s/%s.%u", stale_dir, name, epoch);
	if (rename(from, to) < 0)
		sd_err("cannot move %s to %s: %m", from, to);
}

int store_stale_all(uint32_t epoch)
{
	for_each_obj_file(stale_one_file, &epoch);
	return sync_dir(stale_dir) < 0 ? SD_RES_EIO : SD_RES_SUCCESS;
}

int store_space(uint64_t *size, uint64_t *avail)
{
	struct statvfs vs;

	if (statvfs(obj_dir, &vs) < 0)
		return -errno;
	*size = (uint64_t)vs.f_blocks * vs.f_frsize;
	*avail = (uint64_t)vs.f_bavail * vs.f_frsize;
	return 0;
}

int store_sync(void)
{
	if (!store_nosync || obj_dir_fd < 0)
		return 0;
	return syncfs(obj_dir_fd) < 0 ? -errno : 0;
}

static int create_if_absent(uint64_t oid, const void *data, uint64_t size);

/*
 * Recovery's create: the object appears whole or not at all, and never
 * replaces a copy that a client wrote meanwhile (link fails if it exists).
 */
int store_create_if_absent(uint64_t oid, const void *data, uint64_t size,
			   uint64_t gen)
{
	int ret;

	pthread_rwlock_rdlock(&format_lock);
	if (gen != store_gen)
		ret = SD_RES_AGAIN; /* the store was formatted meanwhile */
	else
		ret = create_if_absent(oid, data, size);
	pthread_rwlock_unlock(&format_lock);
	return ret;
}

static int create_if_absent(uint64_t oid, const void *data, uint64_t size)
{
	char path[4400], tmp[4500], dir[4200];
	int fd, ret;

	obj_path(oid, 0, path, sizeof(path));
	snprintf(tmp, sizeof(tmp), "%s.%ld.tmp", path,
		 (long)syscall(SYS_gettid));
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
	if (fd < 0)
		return errno_to_result(errno);
	ret = pwrite_full(fd, data, size, 0);
	if (ret == 0 && !store_nosync && fdatasync(fd) < 0)
		ret = -errno;
	close(fd);
	if (ret == 0 && link(tmp, path) < 0 && errno != EEXIST)
		ret = -errno;
	unlink(tmp);
	if (ret < 0)
		return errno_to_result(-ret);
	obj_subdir(oid, dir, sizeof(dir));
	return sync_dir(dir) < 0 ? SD_RES_EIO : SD_RES_SUCCESS;
}

/* Move one object that this node no longer holds out of the live set. */
int store_stale_one(uint64_t oid, uint32_t epoch)
{
	char from[4400], to[4400];

	obj_path(oid, 0, from, sizeof(from));
	snprintf(to, sizeof(to), "%s/%016" PRIx64 ".%u", stale_dir, oid,
		 epoch);
	if (rename(from, to) < 0)
		return errno_to_result(errno);
	return SD_RES_SUCCESS;
}

/* ---- stale copies: obj/.stale/<oid>[_<idx>].<epoch> ---- */

/* Parse a stale file name into oid and epoch tag. */
static bool parse_stale_name(const char *name, uint64_t *oid, uint32_t *tag)
{
	const char *dot = strrchr(name, '.');
	char *end;
	unsigned long t;

	if (!dot || strstr(name, ".tmp") || strlen(name) < 16)
		return false;
	errno = 0;
	*oid = strtoull(name, &end, 16);
	if (errno || end != name + 16 || (*end != '.' && *end != '_'))
		return false;
	t = strtoul(dot + 1, &end, 10);
	if (errno || *end || end == dot + 1 || t > UINT32_MAX)
		return false;
	*tag = (uint32_t)t;
	return true;
}

typedef void (*stale_fn)(const char *name, uint64_t oid, uint32_t tag,
			 void *arg);

static void for_each_stale(stale_fn fn, void *arg)
{
	DIR *d = opendir(stale_dir);
	struct dirent *de;

	if (!d)
		return;
	while ((de = readdir(d))) {
		uint64_t oid;
		uint32_t tag;

		if (parse_stale_name(de->d_name, &oid, &tag))
			fn(de->d_name, oid, tag, arg);
	}
	closedir(d);
}

static void add_stale_oid(const char *name, uint64_t oid, uint32_t tag,
			  void *arg)
{
	add_oid(NULL, name, oid, arg);
}

int store_list_all(uint64_t **oids, size_t *nr)
{
	struct oid_vec v = { 0 };

	for_each_obj_file(add_oid, &v);
	for_each_stale(add_stale_oid, &v);
	sort_unique_u64(v.oids, &v.nr);
	*oids = v.oids;
	*nr = v.nr;
	return SD_RES_SUCCESS;
}

struct newest {
	uint64_t oid;
	uint32_t tag;
	bool found;
};

static void pick_newest(const char *name, uint64_t oid, uint32_t tag,
			void *arg)
{
	struct newest *n = arg;

	/* Only whole replicas (no _idx strip suffix). */
	if (oid != n->oid || strchr(name, '_'))
		return;
	if (!n->found || (int32_t)(tag - n->tag) > 0) {
		n->tag = tag;
		n->found = true;
	}
}

bool store_stale_newest(uint64_t oid, uint32_t *tag)
{
	struct newest n = { .oid = oid };

	for_each_stale(pick_newest, &n);
	if (n.found)
		*tag = n.tag;
	return n.found;
}

static void remove_stale_of(const char *name, uint64_t oid, uint32_t tag,
			    void *arg)
{
	char p[4600];

	if (oid != *(uint64_t *)arg)
		return;
	snprintf(p, sizeof(p), "%s/%s", stale_dir, name);
	unlink(p);
}

void store_remove_stale(uint64_t oid)
{
	for_each_stale(remove_stale_of, &oid);
}

struct purge {
	uint32_t before;
	size_t nr;
};

static void purge_one(const char *name, uint64_t oid, uint32_t tag, void *arg)
{
	struct purge *p = arg;
	char path[4600];

	if ((int32_t)(tag - p->before) >= 0)
		return;
	snprintf(path, sizeof(path), "%s/%s", stale_dir, name);
	if (unlink(path) == 0)
		p->nr++;
}

size_t store_purge_stale(uint32_t before_epoch)
{
	struct purge p = { .before = before_epoch };

	pthread_rwlock_rdlock(&format_lock);
	for_each_stale(purge_one, &p);
	pthread_rwlock_unlock(&format_lock);
	return p.nr;
}

/* The object's live copy if there is one, else its newest stale copy; *tag
 * is 0 for the live copy, the stale copy's epoch otherwise. */
int store_read_any(uint64_t oid, uint64_t offset, uint32_t len, void *buf,
		   uint32_t *tag)
{
	int ret = store_read(oid, 0, offset, len, buf);

	*tag = 0;
	if (ret != SD_RES_NO_OBJ)
		return ret;
	if (!store_stale_newest(oid, tag))
		return SD_RES_NO_OBJ;
	return store_read_stale(oid, 0, *tag, offset, len, buf);
}

/* Hold off a format while a recovery step that started in generation gen
 * writes to the store or the epoch log; false (nothing held) if a format
 * came in between. */
bool store_gen_lock(uint64_t gen)
{
	pthread_rwlock_rdlock(&format_lock);
	if (gen == store_gen)
		return true;
	pthread_rwlock_unlock(&format_lock);
	return false;
}

void store_gen_unlock(void)
{
	pthread_rwlock_unlock(&format_lock);
}
