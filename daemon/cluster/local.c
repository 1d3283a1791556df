/*
 * The local cluster driver: several sheep on one host agree on membership
 * and message order through an append-only event log in one file
 * (`-c local[:PATH]`, default /tmp/sheepdog_shm). Appends are serialised
 * with flock(); every sheep replays the whole log in order, so all of them
 * compute the same members, pending joins and block queue, and deliver the
 * same events in the same order. inotify wakes readers; a 100 ms timer is
 * the fallback and also checks liveness.
 *
 * Liveness: each sheep holds a POSIX record lock on byte LOCK_BASE + pid of
 * the log for its lifetime. The kernel drops it when the process dies, so a
 * lock probe (F_GETLK) tells a dead member from a live one even if its pid
 * is later reused. A dead member gets a LEAVE appended by whoever notices.
 *
 * The log restarts empty when a sheep starts and no other process holds a
 * liveness lock. This replaces upstream's 211 MB shared-memory ring.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/file.h>
#include <sys/inotify.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster.h"
#include "sheep.h"
#include "sheepdog/le.h"

#define LOG_MAGIC "SDLOCAL1"
#define LOG_HDR_SIZE 64
#define REC_MAGIC 0x5344524bU
#define REC_HDR_SIZE 120
#define LOCK_BASE (UINT64_C(1) << 40)
#define MAX_REC_PAYLOAD (SD_MAX_CLUSTER_MSG + (1U << 20))

enum rec_type {
	REC_JOIN = 1,
	REC_ACCEPT,
	REC_LEAVE,
	REC_NOTIFY,
	REC_BLOCK,
	REC_UNBLOCK,
	REC_UPDATE,
};

struct member {
	struct sd_node node;
	uint32_t pid;
	uint64_t join_seq;
	bool leave_sent;
};

struct pending_join {
	struct member m;
	void *payload;
	size_t len;
};

struct blocker {
	uint32_t pid;
	uint64_t join_seq;
};

static char log_path[4096] = "/tmp/sheepdog_shm";
static int log_fd = -1;
static int inotify_fd = -1;
static uint64_t read_off = LOG_HDR_SIZE;
static uint32_t my_pid;
static uint64_t my_join_seq;
static bool joined;
static struct sd_node my_node;

static struct member members[SD_MAX_NODES];
static int nr_members;
static struct pending_join *pending;
static int nr_pending;
static struct blocker *blocks;
static int nr_blocks, blocks_alloc;
static bool head_started;

struct rec {
	uint32_t type;
	uint64_t seq;
	uint64_t ref;
	uint32_t pid;
	uint32_t flags;
	struct sd_node node;
	uint32_t len;
	const uint8_t *payload;
};

static void process_new_records(void);

static int lock_file(int op)
{
	while (flock(log_fd, op) < 0) {
		if (errno != EINTR)
			return -errno;
	}
	return 0;
}

static int hold_liveness_lock(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)(LOCK_BASE + my_pid), .l_len = 1 };

	return fcntl(log_fd, F_SETLK, &fl) < 0 ? -errno : 0;
}

static bool pid_alive(uint32_t pid)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)(LOCK_BASE + pid), .l_len = 1 };

	if (pid == my_pid)
		return true;
	if (fcntl(log_fd, F_GETLK, &fl) < 0)
		return true; /* cannot tell: do not declare it dead */
	return fl.l_type != F_UNLCK;
}

static bool anyone_alive(void)
{
	struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET,
			    .l_start = (off_t)LOCK_BASE,
			    .l_len = (off_t)UINT32_MAX + 1 };

	if (fcntl(log_fd, F_GETLK, &fl) < 0)
		return true;
	return fl.l_type != F_UNLCK;
}

static int read_header(uint64_t *end, uint64_t *next_seq)
{
	uint8_t h[LOG_HDR_SIZE];

	if (pread(log_fd, h, sizeof(h), 0) != sizeof(h))
		return -EIO;
	if (memcmp(h, LOG_MAGIC, 8))
		return -EINVAL;
	*end = get_le64(h + 8);
	*next_seq = get_le64(h + 16);
	return 0;
}

static int write_header(uint64_t end, uint64_t next_seq)
{
	uint8_t h[LOG_HDR_SIZE] = { 0 };

	memcpy(h, LOG_MAGIC, 8);
	put_le64(h + 8, end);
	put_le64(h + 16, next_seq);
	return pwrite(log_fd, h, sizeof(h), 0) == sizeof(h) ? 0 : -EIO;
}

/*
 * Append one record. With only_if_current, fail with -EAGAIN unless this
 * sheep has already processed every record in the log, so that what it
 * computed from its state is still true at the point it lands.
 */
static int append_rec(uint32_t type, uint64_t ref, uint32_t flags,
		      const struct sd_node *node, const void *payload,
		      size_t len, bool only_if_current, uint64_t *seq_out)
{
	size_t total = REC_HDR_SIZE + ((len + 7) & ~(size_t)7);
	uint8_t *buf;
	uint64_t end, seq;
	int ret;

	if (len > MAX_REC_PAYLOAD)
		return -EMSGSIZE;
	buf = xzalloc(total);
	put_le32(buf, REC_MAGIC);
	put_le32(buf + 4, type);
	put_le64(buf + 16, ref);
	put_le32(buf + 24, my_pid);
	put_le32(buf + 28, flags);
	sd_node_encode(node ? node : &my_node, buf + 32);
	put_le32(buf + 112, len);
	if (len)
		memcpy(buf + REC_HDR_SIZE, payload, len);

	ret = lock_file(LOCK_EX);
	if (ret < 0)
		goto out;
	ret = read_header(&end, &seq);
	if (ret == 0 && only_if_current && end != read_off)
		ret = -EAGAIN;
	if (ret == 0) {
		put_le64(buf + 8, seq);
		if (pwrite(log_fd, buf, total, end) != (ssize_t)total)
			ret = -EIO;
		else
			ret = write_header(end + total, seq + 1);
	}
	lock_file(LOCK_UN);
	if (ret == 0 && seq_out)
		*seq_out = seq;
out:
	free(buf);
	return ret;
}

static int find_member(uint32_t pid, uint64_t join_seq)
{
	for (int i = 0; i < nr_members; i++)
		if (members[i].pid == pid &&
		    (!join_seq || members[i].join_seq == join_seq))
			return i;
	return -1;
}

static struct sd_node *member_nodes(void)
{
	static struct sd_node nodes[SD_MAX_NODES];

	for (int i = 0; i < nr_members; i++)
		nodes[i] = members[i].node;
	return nodes;
}

static bool i_am_master(void)
{
	if (nr_members)
		return joined && members[0].pid == my_pid;
	return nr_pending && pending[0].m.pid == my_pid;
}

/* The master answers every pending join, in order. */
/* Append the LEAVE of the member that joiner replaces; false if none. */
static bool leave_replaced_member(const struct member *joiner)
{
	for (int i = 0; i < nr_members; i++) {
		struct member *m = &members[i];
		uint8_t pidbuf[4];
		char a[64];

		if (!node_id_eq(&m->node.nid, &joiner->node.nid))
			continue;
		if (m->leave_sent)
			return true;
		m->leave_sent = true;
		put_le32(pidbuf, m->pid);
		sd_warn("%s joins again as pid %u: its previous process (pid "
			"%u) is gone",
			node_addr_to_str(&m->node.nid, a, sizeof(a)),
			joiner->pid, m->pid);
		append_rec(REC_LEAVE, m->join_seq, 0, &m->node, pidbuf, 4,
			   false, NULL);
		return true;
	}
	return false;
}

static void handle_pending_joins(void)
{
	while (i_am_master() && nr_pending) {
		struct pending_join *pj = &pending[0];
		size_t len = SD_CLUSTER_INFO_HDR +
			     (size_t)SD_MAX_NODES * SD_NODE_SIZE;
		void *buf = xzalloc(len);
		enum cluster_join_result res;
		uint64_t seq = pj->m.join_seq;
		int ret;

		/*
		 * A member with the joiner's address and port is a dead
		 * process nobody has noticed yet (two live sheep cannot
		 * listen on one port): a sheep killed and started again at
		 * once. Its LEAVE goes into the log before the join is
		 * answered, so every sheep sees it leave, then the new
		 * process join, and no ring ever holds one node twice.
		 */
		if (leave_replaced_member(&pj->m)) {
			free(buf);
			/* Reading the LEAVE answers the join, or the next
			 * tick does: never spin here. */
			process_new_records();
			break;
		}
		res = sd_join_handler(&pj->m.node, member_nodes(), nr_members,
				      pj->payload, pj->len, buf, &len);
		ret = append_rec(REC_ACCEPT, seq,
				 res == CJ_RESULT_SUCCESS ? 0 : 1, &pj->m.node,
				 buf, len, true, NULL);
		free(buf);
		if (ret == -EAGAIN) {
			/* Someone appended meanwhile: catch up, decide again. */
			process_new_records();
			continue;
		}
		if (ret < 0)
			sd_err("cannot accept join %" PRIu64 ": %s", seq,
			       strerror(-ret));
		/* Our own ACCEPT will remove it from pending when read. */
		process_new_records();
		if (nr_pending && pending[0].m.join_seq == seq)
			break;
	}
}

static void check_block_head(void)
{
	if (!joined || !nr_blocks || head_started)
		return;
	if (blocks[0].pid != my_pid || blocks[0].join_seq != my_join_seq)
		return;
	head_started = true;
	sd_block_handler(&my_node);
}

static void remove_block_at(int i)
{
	memmove(&blocks[i], &blocks[i + 1],
		(nr_blocks - i - 1) * sizeof(*blocks));
	nr_blocks--;
	if (i == 0)
		head_started = false;
}

static void remove_pending_at(int i)
{
	free(pending[i].payload);
	memmove(&pending[i], &pending[i + 1],
		(nr_pending - i - 1) * sizeof(*pending));
	nr_pending--;
}

/* Member i leaves: its blocks go, and the group hears of it. */
static void remove_member_at(int i)
{
	struct member m = members[i];

	memmove(&members[i], &members[i + 1],
		(nr_members - i - 1) * sizeof(*members));
	nr_members--;
	for (int b = nr_blocks - 1; b >= 0; b--)
		if (blocks[b].pid == m.pid && blocks[b].join_seq == m.join_seq)
			remove_block_at(b);
	if (joined && m.pid != my_pid)
		sd_leave_handler(&m.node, member_nodes(), nr_members);
}

static void apply_rec(const struct rec *r)
{
	int i;

	switch (r->type) {
	case REC_JOIN:
		pending = xrealloc(pending, (nr_pending + 1) * sizeof(*pending));
		memset(&pending[nr_pending], 0, sizeof(*pending));
		pending[nr_pending].m.node = r->node;
		pending[nr_pending].m.pid = r->pid;
		pending[nr_pending].m.join_seq = r->seq;
		pending[nr_pending].payload = xmalloc(r->len ? r->len : 1);
		memcpy(pending[nr_pending].payload, r->payload, r->len);
		pending[nr_pending].len = r->len;
		nr_pending++;
		break;
	case REC_ACCEPT:
		for (i = 0; i < nr_pending; i++)
			if (pending[i].m.join_seq == r->ref)
				break;
		if (i == nr_pending)
			break; /* a duplicate answer */
		{
			struct member m = pending[i].m;
			bool me = m.pid == my_pid && m.join_seq == my_join_seq;

			remove_pending_at(i);
			if (r->flags & 1) {
				if (me)
					sd_join_rejected(r->payload, r->len);
				break;
			}
			if (nr_members >= SD_MAX_NODES) {
				sd_err("too many nodes, ignoring join of pid %u",
				       m.pid);
				break;
			}
			members[nr_members++] = m;
			if (me)
				joined = true;
			if (joined)
				sd_accept_handler(&m.node, member_nodes(),
						  nr_members, r->payload,
						  r->len);
		}
		break;
	case REC_LEAVE:
		for (i = 0; i < nr_pending; i++)
			if (pending[i].m.join_seq == r->ref) {
				remove_pending_at(i);
				break;
			}
		if (r->len < 4)
			break;
		i = find_member(get_le32(r->payload), r->ref);
		if (i >= 0)
			remove_member_at(i);
		break;
	case REC_NOTIFY:
		if (joined)
			sd_notify_handler(&r->node, r->payload, r->len);
		break;
	case REC_BLOCK:
		if (nr_blocks == blocks_alloc) {
			blocks_alloc = blocks_alloc ? blocks_alloc * 2 : 16;
			blocks = xrealloc(blocks, blocks_alloc * sizeof(*blocks));
		}
		i = find_member(r->pid, 0);
		blocks[nr_blocks].pid = r->pid;
		blocks[nr_blocks].join_seq = i >= 0 ? members[i].join_seq : 0;
		nr_blocks++;
		break;
	case REC_UNBLOCK:
		if (nr_blocks && blocks[0].pid == r->pid)
			remove_block_at(0);
		if (joined)
			sd_notify_handler(&r->node, r->payload, r->len);
		break;
	case REC_UPDATE:
		i = find_member(r->pid, 0);
		if (i >= 0) {
			members[i].node = r->node;
			if (joined)
				sd_update_node_handler(&r->node);
		}
		break;
	default:
		sd_err("unknown record type %u in %s", r->type, log_path);
		break;
	}
}

static int parse_rec(const uint8_t *p, size_t avail, struct rec *r,
		     size_t *used)
{
	size_t total;

	if (avail < REC_HDR_SIZE || get_le32(p) != REC_MAGIC)
		return -EINVAL;
	r->type = get_le32(p + 4);
	r->seq = get_le64(p + 8);
	r->ref = get_le64(p + 16);
	r->pid = get_le32(p + 24);
	r->flags = get_le32(p + 28);
	sd_node_decode(p + 32, &r->node);
	r->len = get_le32(p + 112);
	if (r->len > MAX_REC_PAYLOAD)
		return -EINVAL;
	total = REC_HDR_SIZE + ((r->len + 7) & ~(size_t)7);
	if (total > avail)
		return -EINVAL;
	r->payload = p + REC_HDR_SIZE;
	*used = total;
	return 0;
}

static void process_new_records(void)
{
	static bool busy;
	uint64_t end, seq;
	uint8_t *buf;
	size_t len, off = 0;

	/* Handlers may append (and so call back here); one reader at a time. */
	if (busy)
		return;
	busy = true;
	for (;;) {
		if (lock_file(LOCK_SH) < 0)
			break;
		if (read_header(&end, &seq) < 0 || end <= read_off) {
			lock_file(LOCK_UN);
			break;
		}
		len = end - read_off;
		buf = xmalloc(len);
		if (pread(log_fd, buf, len, read_off) != (ssize_t)len) {
			lock_file(LOCK_UN);
			free(buf);
			sd_emerg("cannot read %s: %m", log_path);
			abort();
		}
		lock_file(LOCK_UN);
		off = 0;
		while (off < len) {
			struct rec r;
			size_t used;

			if (parse_rec(buf + off, len - off, &r, &used) < 0) {
				sd_emerg("%s is corrupted at offset %" PRIu64,
					 log_path, read_off + off);
				abort();
			}
			off += used;
			read_off += used;
			apply_rec(&r);
		}
		free(buf);
	}
	busy = false;
	handle_pending_joins();
	check_block_head();
}

static void check_liveness(void *arg)
{
	for (int i = 0; i < nr_members; i++) {
		struct member *m = &members[i];
		uint8_t pidbuf[4];

		if (m->leave_sent || pid_alive(m->pid))
			continue;
		m->leave_sent = true;
		put_le32(pidbuf, m->pid);
		sd_info("pid %u left the local cluster", m->pid);
		append_rec(REC_LEAVE, m->join_seq, 0, &m->node, pidbuf, 4,
			   false, NULL);
	}
	for (int i = 0; i < nr_pending; i++) {
		struct pending_join *pj = &pending[i];
		uint8_t pidbuf[4];

		if (pj->m.leave_sent || pid_alive(pj->m.pid))
			continue;
		pj->m.leave_sent = true;
		put_le32(pidbuf, pj->m.pid);
		append_rec(REC_LEAVE, pj->m.join_seq, 0, &pj->m.node, pidbuf,
			   4, false, NULL);
	}
	process_new_records();
}

static void inotify_handler(int fd, uint32_t events, void *data)
{
	char buf[4096];

	while (read(fd, buf, sizeof(buf)) > 0)
		;
	process_new_records();
}

static int local_init(const char *option)
{
	uint64_t end, seq;
	int ret;

	if (option && *option) {
		if (strlen(option) >= sizeof(log_path))
			return -ENAMETOOLONG;
		snprintf(log_path, sizeof(log_path), "%s", option);
	}
	my_pid = getpid();
	log_fd = open(log_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
	if (log_fd < 0) {
		ret = -errno;
		sd_err("cannot open the local cluster log %s: %m", log_path);
		return ret;
	}
	ret = hold_liveness_lock();
	if (ret < 0)
		return ret;
	ret = lock_file(LOCK_EX);
	if (ret < 0)
		return ret;
	if (read_header(&end, &seq) < 0 || !anyone_alive()) {
		sd_info("starting a new local cluster log in %s", log_path);
		if (ftruncate(log_fd, LOG_HDR_SIZE) < 0 ||
		    write_header(LOG_HDR_SIZE, 1) < 0) {
			ret = -errno;
			lock_file(LOCK_UN);
			return ret ? ret : -EIO;
		}
	}
	lock_file(LOCK_UN);

	inotify_fd = inotify_init1(IN_NONBLOCK | IN_CLOEXEC);
	if (inotify_fd >= 0) {
		if (inotify_add_watch(inotify_fd, log_path, IN_MODIFY) < 0 ||
		    register_event(inotify_fd, EPOLLIN, inotify_handler,
				   NULL) < 0) {
			close(inotify_fd);
			inotify_fd = -1;
		}
	}
	ret = add_timer(100, check_liveness, NULL);
	return ret < 0 ? ret : 0;
}

static int local_get_local_addr(uint8_t addr[16])
{
	return str_to_addr("127.0.0.1", addr);
}

static int local_join(const struct sd_node *myself, const void *opaque,
		      size_t opaque_len)
{
	int ret;

	my_node = *myself;
	/* Learn the state so far, then ask. */
	process_new_records();
	ret = append_rec(REC_JOIN, 0, 0, myself, opaque, opaque_len, false,
			 &my_join_seq);
	if (ret < 0)
		return ret;
	process_new_records();
	return 0;
}

static int local_leave(void)
{
	uint8_t pidbuf[4];

	if (!joined)
		return 0;
	put_le32(pidbuf, my_pid);
	return append_rec(REC_LEAVE, my_join_seq, 0, &my_node, pidbuf, 4,
			  false, NULL);
}

static int local_notify(const void *msg, size_t len)
{
	int ret = append_rec(REC_NOTIFY, 0, 0, &my_node, msg, len, false,
			     NULL);

	if (ret == 0)
		process_new_records();
	return ret;
}

static int local_block(void)
{
	int ret = append_rec(REC_BLOCK, 0, 0, &my_node, NULL, 0, false, NULL);

	if (ret == 0)
		process_new_records();
	return ret;
}

static int local_unblock(const void *msg, size_t len)
{
	int ret = append_rec(REC_UNBLOCK, 0, 0, &my_node, msg, len, false,
			     NULL);

	if (ret == 0)
		process_new_records();
	return ret;
}

static int local_update_node(const struct sd_node *node)
{
	my_node = *node;
	return append_rec(REC_UPDATE, 0, 0, node, NULL, 0, false, NULL);
}

struct cluster_driver cdrv_local = {
	.name = "local",
	.init = local_init,
	.get_local_addr = local_get_local_addr,
	.join = local_join,
	.leave = local_leave,
	.notify = local_notify,
	.block = local_block,
	.unblock = local_unblock,
	.update_node = local_update_node,
};
