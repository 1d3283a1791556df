/*
 * The NBD server: sheep exports its cluster's VDIs to QEMU, libvirt,
 * qemu-img, nbd-client and any other NBD client, with the fixed newstyle
 * protocol (github.com/NetworkBlockDevice/nbd, doc/proto.md). This file is
 * the protocol: the listener, the handshake and its options, and the
 * transmission phase, where every request is checked in one place
 * (validate_request) before anything acts on it. What a request does to a
 * VDI is the export layer's business (nbd_export.c, through the gateway).
 *
 * Threads rather than the event loop, because every export call blocks:
 * one listener; per connection one thread that runs the handshake and then
 * reads requests; a pool of workers, shared by all connections, that run
 * requests and write their replies under the connection's send lock. So a
 * connection has many requests in flight, answered as they finish. Small
 * reads that need no waiting skip the pool: the connection's thread serves
 * them itself, sending remote ones to their holders pipelined (see "the
 * fast read path" below). errno values are used inside and translated to
 * NBD's once, in nbd_errno().
 */
#include <arpa/inet.h>
#include <endian.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <poll.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#include "sheepdog/client.h"
#include "nbd.h"
#include "nbd_export.h"
#include "nbd_export_name.h"
#include "peer_reads.h"
#include "sheep.h"
#include "sheepdog/nbd.h"

/* Requests of one connection in flight before its reader stops reading:
 * QEMU keeps up to 16, fio and nbdcopy 32 or 64. */
#define NBD_MAX_INFLIGHT 64
/* Payload memory of all big requests in flight together; a reader whose
 * next request does not fit waits until others finish. Requests of
 * NBD_SMALL_REQ or less are bounded by NBD_MAX_INFLIGHT alone. */
#define NBD_RX_BUDGET (256ULL << 20)
#define NBD_SMALL_REQ (64U << 10)
/* A refused WRITE up to this size has its payload read and dropped, so
 * that the connection goes on; a bigger one closes the connection. */
#define NBD_MAX_SKIP (2ULL * NBD_MAX_PAYLOAD)
/* The handshake's bytes may keep the server waiting this long in total:
 * a client that dribbles them (slowloris) loses its connection. */
#define NBD_HANDSHAKE_MS 30000
/* Options one handshake may send (nbdinfo --list sends one per VDI). */
#define NBD_MAX_OPTIONS 4096
/* A client that stops in the middle of a request's payload, or stops
 * reading replies, for this long is disconnected. */
#define NBD_STALL_MS 60000
/* Extents of one BLOCK_STATUS reply. */
#define NBD_MAX_EXTENTS 1024
/* Request buffers up to this size are kept for the connection's next
 * requests; bigger ones are freed after use. */
#define NBD_KEEP_BUF (256U << 10)
/* The reader's buffer: many small requests arrive in one recv. */
#define NBD_RBUF_SIZE (64U << 10)
/* Workers: NBD_MIN_WORKERS always; another one whenever the oldest
 * queued request has waited NBD_WORKER_WAIT_US (they are all blocked on
 * I/O), up to NBD_MAX_WORKERS. Growing on every busy moment instead made
 * 4 KiB reads at queue depth 32 run at half the speed: 64 threads taking
 * turns on two cores. */
#define NBD_MIN_WORKERS 8
#define NBD_MAX_WORKERS 64
#define NBD_WORKER_WAIT_US 1000
/* Shutdown: connections get this long to finish their requests after
 * reading stops, then their sockets are shut; after NBD_STOP_MAX_MS the
 * daemon stops waiting. */
#define NBD_STOP_GRACE_MS 2000
#define NBD_STOP_MAX_MS 7000
/* The id of base:allocation, the only meta context. */
#define NBD_ALLOC_CONTEXT_ID 1

/* A request's header, as received. */
struct nbd_hdr {
	uint16_t flags;
	uint16_t type;
	uint64_t handle;
	uint64_t offset;
	uint32_t len;
};

struct nbd_conn;

struct nbd_req {
	struct nbd_hdr h;
	struct nbd_conn *conn;
	struct nbd_req *next; /* worker queue, or the connection's free list */
	void *data;	      /* payload in or out: buf, or a bigger buffer */
	void *buf;	      /* kept with the request (NBD_KEEP_BUF at most) */
	uint32_t buf_len;
	uint32_t charged;    /* bytes taken from NBD_RX_BUDGET */
	uint32_t nr_extents; /* BLOCK_STATUS: descriptors at data + 4 */
	uint64_t queued_us;  /* when it was queued for a worker */
	struct peer_read pr; /* a fast read in flight to a peer */
	uint8_t rhdr[NBD_STRUCTURED_REPLY_SIZE + 8]; /* its reply header */
};

struct nbd_conn {
	int fd;
	char peer[96];
	char *name;	 /* the export, once GO or EXPORT_NAME opened it */
	char *meta_name; /* the export SET_META_CONTEXT named */
	struct nbd_export *exp;
	uint64_t size;
	uint16_t tflags; /* transmission flags sent to the client */
	bool structured;
	bool no_zeroes;
	bool meta_alloc; /* base:allocation selected */
	int64_t hs_budget_ms;

	uint8_t *rbuf;
	size_t rpos, rlen;

	pthread_mutex_t lock; /* inflight and free_reqs */
	pthread_cond_t cond;
	int inflight;
	struct nbd_req *free_reqs;

	/* The fast read path, the reader thread's alone: reads sent to
	 * peers, and answered reads whose replies go out together. */
	struct peer_reads *prs;
	struct nbd_req *ready, **ready_tail;
	unsigned nr_ready;

	pthread_mutex_t send_lock;
	atomic_bool broken; /* a send failed: the stream is lost */
	atomic_uint_fast64_t nr_requests;
	struct list_node list;
};

static const char *cmd_name(uint16_t type)
{
	static const char *const names[] = {
	    [NBD_CMD_READ] = "READ",
	    [NBD_CMD_WRITE] = "WRITE",
	    [NBD_CMD_DISC] = "DISC",
	    [NBD_CMD_FLUSH] = "FLUSH",
	    [NBD_CMD_TRIM] = "TRIM",
	    [NBD_CMD_CACHE] = "CACHE",
	    [NBD_CMD_WRITE_ZEROES] = "WRITE_ZEROES",
	    [NBD_CMD_BLOCK_STATUS] = "BLOCK_STATUS",
	    [NBD_CMD_RESIZE] = "RESIZE",
	};

	return type < ARRAY_SIZE(names) && names[type] ? names[type]
						       : "unknown command";
}

static const char *opt_name(uint32_t opt)
{
	static const char *const names[] = {
	    [NBD_OPT_EXPORT_NAME] = "EXPORT_NAME",
	    [NBD_OPT_ABORT] = "ABORT",
	    [NBD_OPT_LIST] = "LIST",
	    [4] = "PEEK_EXPORT",
	    [NBD_OPT_STARTTLS] = "STARTTLS",
	    [NBD_OPT_INFO] = "INFO",
	    [NBD_OPT_GO] = "GO",
	    [NBD_OPT_STRUCTURED_REPLY] = "STRUCTURED_REPLY",
	    [NBD_OPT_LIST_META_CONTEXT] = "LIST_META_CONTEXT",
	    [NBD_OPT_SET_META_CONTEXT] = "SET_META_CONTEXT",
	};

	return opt < ARRAY_SIZE(names) && names[opt] ? names[opt]
						     : "unknown option";
}

static uint64_t now_us(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static uint64_t now_ms(void)
{
	return now_us() / 1000;
}

static inline void put16(uint8_t *p, uint16_t v)
{
	v = htobe16(v);
	memcpy(p, &v, 2);
}

static inline void put32(uint8_t *p, uint32_t v)
{
	v = htobe32(v);
	memcpy(p, &v, 4);
}

static inline void put64(uint8_t *p, uint64_t v)
{
	v = htobe64(v);
	memcpy(p, &v, 8);
}

static inline uint16_t get16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, 2);
	return be16toh(v);
}

static inline uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return be32toh(v);
}

static inline uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return be64toh(v);
}

/* ---- the server's state ---- */

static struct {
	pthread_mutex_t lock; /* conns, nr_conns, stopping */
	struct list_head conns;
	unsigned int nr_conns, max_conns;
	int listen_fds[4];
	int nr_listen_fds;
	int stop_pipe[2];
	bool started, stopping, forced, gave_up;
	atomic_bool listener_done;
	uint64_t stop_ms;
} srv = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .conns = LIST_HEAD_INIT(srv.conns),
};

/* The payload budget shared by all connections. */
static pthread_mutex_t budget_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t budget_cond = PTHREAD_COND_INITIALIZER;
static uint64_t budget_used;

static void budget_take(uint32_t len)
{
	pthread_mutex_lock(&budget_lock);
	while (budget_used + len > NBD_RX_BUDGET)
		pthread_cond_wait(&budget_cond, &budget_lock);
	budget_used += len;
	pthread_mutex_unlock(&budget_lock);
}

static void budget_give(uint32_t len)
{
	pthread_mutex_lock(&budget_lock);
	budget_used -= len;
	pthread_cond_broadcast(&budget_cond);
	pthread_mutex_unlock(&budget_lock);
}

/* ---- socket I/O ---- */

/*
 * Read exactly n bytes into dst (NULL: read and drop them). budget_ms NULL:
 * wait as long as it takes (between requests, where a client may be idle
 * for hours); otherwise the time spent waiting is taken from *budget_ms and
 * -ETIMEDOUT returned when it runs out. -ECONNRESET at end of stream.
 */
static int conn_read(struct nbd_conn *c, void *dst, size_t n,
		     int64_t *budget_ms)
{
	uint8_t *d = dst;

	while (n) {
		size_t have = c->rlen - c->rpos;
		void *to;
		size_t cap;
		ssize_t got;

		if (have) {
			size_t k = have < n ? have : n;

			if (d) {
				memcpy(d, c->rbuf + c->rpos, k);
				d += k;
			}
			c->rpos += k;
			n -= k;
			continue;
		}
		if (d && n >= NBD_RBUF_SIZE / 2) {
			to = d; /* big payloads go straight to their buffer */
			cap = n;
		} else {
			to = c->rbuf;
			cap = NBD_RBUF_SIZE;
			c->rpos = c->rlen = 0;
		}
		got = recv(c->fd, to, cap, budget_ms ? MSG_DONTWAIT : 0);
		if (got > 0) {
			if (to == d) {
				d += got;
				n -= got;
			} else {
				c->rlen = got;
			}
			continue;
		}
		if (got == 0)
			return -ECONNRESET;
		if (errno == EINTR)
			continue;
		if (errno == EAGAIN && budget_ms) {
			struct pollfd pfd = {.fd = c->fd, .events = POLLIN};
			uint64_t t0 = now_ms();
			int r;

			if (*budget_ms <= 0)
				return -ETIMEDOUT;
			r = poll(&pfd, 1,
				 *budget_ms > INT32_MAX ? INT32_MAX
							: (int)*budget_ms);
			*budget_ms -= now_ms() - t0;
			if (r == 0)
				return -ETIMEDOUT;
			if (r < 0 && errno != EINTR)
				return -errno;
			continue;
		}
		return -errno;
	}
	return 0;
}

/*
 * Write the whole of iov under the send lock. A failure (the client went
 * away, or did not read for NBD_STALL_MS) marks the connection broken and
 * shuts its socket, which also wakes its reader.
 */
static int conn_send(struct nbd_conn *c, struct iovec *iov, int cnt)
{
	struct msghdr msg = {.msg_iov = iov, .msg_iovlen = cnt};
	int ret = 0;

	pthread_mutex_lock(&c->send_lock);
	while (msg.msg_iovlen) {
		ssize_t sent;

		if (atomic_load(&c->broken)) {
			ret = -EPIPE;
			break;
		}
		sent = sendmsg(c->fd, &msg, MSG_NOSIGNAL);
		if (sent < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			sd_warn("nbd: %s: cannot send: %s; closing", c->peer,
				strerror(errno));
			atomic_store(&c->broken, true);
			shutdown(c->fd, SHUT_RDWR);
			break;
		}
		while (msg.msg_iovlen && (size_t)sent >= msg.msg_iov->iov_len) {
			sent -= msg.msg_iov->iov_len;
			msg.msg_iov++;
			msg.msg_iovlen--;
		}
		if (msg.msg_iovlen) {
			msg.msg_iov->iov_base =
			    (uint8_t *)msg.msg_iov->iov_base + sent;
			msg.msg_iov->iov_len -= sent;
		}
	}
	pthread_mutex_unlock(&c->send_lock);
	return ret;
}

static int send_buf(struct nbd_conn *c, const void *buf, size_t len)
{
	struct iovec iov = {(void *)buf, len};

	return conn_send(c, &iov, 1);
}

/* ---- the handshake ---- */

/* An option reply: NBD_REP_MAGIC, option, type, length, data. */
static int opt_reply(struct nbd_conn *c, uint32_t opt, uint32_t type,
		     const void *data, uint32_t len)
{
	uint8_t hdr[20];
	struct iovec iov[2] = {{hdr, sizeof(hdr)}, {(void *)data, len}};

	put64(hdr, NBD_REP_MAGIC);
	put32(hdr + 8, opt);
	put32(hdr + 12, type);
	put32(hdr + 16, len);
	return conn_send(c, iov, len ? 2 : 1);
}

/* Refuse an option with an error reply whose text says why; the client
 * stays in the handshake. */
static int __attribute__((format(printf, 4, 5)))
opt_refuse(struct nbd_conn *c, uint32_t opt, uint32_t type, const char *fmt,
	   ...)
{
	char msg[512];
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(msg, sizeof(msg), fmt, ap);
	va_end(ap);
	sd_info("nbd: %s: option %s refused: %s", c->peer, opt_name(opt), msg);
	return opt_reply(c, opt, type, msg, strlen(msg));
}

/* An export name from the wire: at most NBD_MAX_NAME bytes, no NUL. */
static const char *check_name(const uint8_t *p, uint32_t len)
{
	if (len > NBD_MAX_NAME)
		return "the export name is too long";
	if (memchr(p, '\0', len))
		return "the export name contains a NUL byte";
	return NULL;
}

/*
 * The transmission flags of export e. as_writer: e was opened without the
 * lock (for INFO) but GO would open it writable; say what GO would.
 */
static uint16_t export_tflags(const struct nbd_conn *c,
			      const struct nbd_export *e, bool as_writer)
{
	uint16_t f = NBD_FLAG_HAS_FLAGS | NBD_FLAG_SEND_FLUSH;

	if (as_writer)
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	else if (nbd_export_readonly(e))
		f |= NBD_FLAG_READ_ONLY;
	else
		f |= NBD_FLAG_SEND_FUA | NBD_FLAG_SEND_TRIM |
		     NBD_FLAG_SEND_WRITE_ZEROES | NBD_FLAG_SEND_FAST_ZERO;
	/* DF only means something with structured replies. */
	if (c->structured)
		f |= NBD_FLAG_SEND_DF;
	if (!as_writer && nbd_export_multi_conn(e))
		f |= NBD_FLAG_CAN_MULTI_CONN;
	return f;
}

static bool export_is_snapshot(const char *name)
{
	struct nbd_export_name n;
	const char *why;

	return nbd_export_parse_name(name, &n, &why) == 0 &&
	       nbd_export_name_is_snapshot(&n);
}

/*
 * Open export name for GO, INFO or EXPORT_NAME. On failure the reason is
 * logged and, with rep_err, the NBD_REP_ERR_* that says it in *rep_err.
 */
static int open_export(struct nbd_conn *c, uint32_t opt, const char *name,
		       struct nbd_export **e, uint32_t *rep_err, char *msg,
		       size_t msg_len)
{
	int ret;

	msg[0] = '\0';
	/* INFO only reports: it must not take (or be refused) the lock. */
	ret = nbd_export_open(name, opt != NBD_OPT_INFO, e, msg, msg_len);
	if (!ret)
		return 0;
	if (!msg[0])
		snprintf(msg, msg_len, "VDI %s: %s", name, strerror(-ret));
	switch (ret) {
	case -ENOENT:
		*rep_err = NBD_REP_ERR_UNKNOWN;
		break;
	case -EBUSY:
	case -EPERM:
	case -EACCES:
		*rep_err = NBD_REP_ERR_POLICY;
		break;
	case -EINVAL:
		*rep_err = NBD_REP_ERR_INVALID;
		break;
	default:
		*rep_err = NBD_REP_ERR_SHUTDOWN;
		break;
	}
	sd_info("nbd: %s: %s %s refused: %s", c->peer, opt_name(opt), name,
		msg);
	return ret;
}

/* The transmission phase starts with export e: remember it, log it. */
static void export_opened(struct nbd_conn *c, const char *name,
			  struct nbd_export *e)
{
	c->exp = e;
	c->name = xstrdup(name);
	c->size = nbd_export_size(e);
	c->tflags = export_tflags(c, e, false);
	/* Contexts chosen for another export do not carry over. */
	if (c->meta_alloc && (!c->meta_name || strcmp(c->meta_name, name)))
		c->meta_alloc = false;
	sd_info("nbd: %s: export %s opened, %" PRIu64 " bytes, %s%s%s", c->peer,
		name, c->size,
		c->tflags & NBD_FLAG_READ_ONLY ? "read-only" : "read-write",
		c->structured ? ", structured replies" : "",
		c->meta_alloc ? ", base:allocation" : "");
}

/* NBD_OPT_EXPORT_NAME: the old way to end the handshake; no error reply
 * is possible, a failure closes the connection. */
static int opt_export_name(struct nbd_conn *c, const uint8_t *data,
			   uint32_t len)
{
	uint8_t reply[8 + 2 + 124] = {0};
	struct nbd_export *e;
	uint32_t rep_err;
	const char *bad = check_name(data, len);
	char msg[256];

	if (bad) {
		sd_info("nbd: %s: EXPORT_NAME of %u bytes refused: %s; closing",
			c->peer, len, bad);
		return -EINVAL;
	}
	if (open_export(c, NBD_OPT_EXPORT_NAME, (const char *)data, &e,
			&rep_err, msg, sizeof(msg)) < 0)
		return -ENOENT;
	export_opened(c, (const char *)data, e);
	put64(reply, c->size);
	put16(reply + 8, c->tflags);
	if (send_buf(c, reply, c->no_zeroes ? 10 : sizeof(reply)) < 0)
		return -EPIPE;
	return 1;
}

static int send_info(struct nbd_conn *c, uint32_t opt, uint16_t type,
		     const void *data, size_t len)
{
	uint8_t buf[2 + NBD_MAX_NAME + 64];

	put16(buf, type);
	memcpy(buf + 2, data, len);
	return opt_reply(c, opt, NBD_REP_INFO, buf, 2 + len);
}

/*
 * NBD_OPT_INFO and NBD_OPT_GO: u32 name length, name, u16 number of info
 * requests, u16 each. INFO opens the export without the lock (listing or
 * inspecting a VDI must never take it from, or be refused by, a writer)
 * and reports the flags GO would give; it closes the export again.
 */
static int opt_info_go(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
		       uint32_t len)
{
	uint32_t namelen, rep_err;
	uint16_t nr_info;
	bool want_name = false, want_desc = false;
	struct nbd_export *e;
	const char *bad;
	char name[NBD_MAX_NAME + 1], msg[256];
	uint8_t buf[32];

	if (len < 6)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
				  "option length %u is too short", len);
	namelen = get32(data);
	if (namelen > len - 6)
		return opt_refuse(
		    c, opt, NBD_REP_ERR_INVALID,
		    "name length %u does not fit in the option's %u bytes",
		    namelen, len);
	nr_info = get16(data + 4 + namelen);
	if (len != 4 + namelen + 2 + 2U * nr_info)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
				  "option length %u does not match a name of "
				  "%u bytes and %u info requests",
				  len, namelen, nr_info);
	bad = check_name(data + 4, namelen);
	if (bad)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID, "%s", bad);
	memcpy(name, data + 4, namelen);
	name[namelen] = '\0';
	for (int i = 0; i < nr_info; i++) {
		uint16_t t = get16(data + 4 + namelen + 2 + 2 * i);

		want_name |= t == NBD_INFO_NAME;
		want_desc |= t == NBD_INFO_DESCRIPTION;
	}
	if (!namelen)
		return opt_refuse(
		    c, opt, NBD_REP_ERR_UNKNOWN,
		    "there is no default export: give a VDI name");
	if (open_export(c, opt, name, &e, &rep_err, msg, sizeof(msg)) < 0)
		return opt_reply(c, opt, rep_err, msg, strlen(msg));

	put64(buf, nbd_export_size(e));
	put16(buf + 8, export_tflags(c, e, opt == NBD_OPT_INFO &&
					       !export_is_snapshot(name)));
	if (send_info(c, opt, NBD_INFO_EXPORT, buf, 10) < 0)
		goto fail;
	put32(buf, NBD_MIN_BLOCK);
	put32(buf + 4, NBD_PREFERRED_BLOCK);
	put32(buf + 8, NBD_MAX_PAYLOAD);
	if (send_info(c, opt, NBD_INFO_BLOCK_SIZE, buf, 12) < 0)
		goto fail;
	if (want_name && send_info(c, opt, NBD_INFO_NAME, name, namelen) < 0)
		goto fail;
	if (want_desc) {
		snprintf(msg, sizeof(msg), "Sheepdog VDI %.200s%s", name,
			 nbd_export_readonly(e) ? " (read-only)" : "");
		if (send_info(c, opt, NBD_INFO_DESCRIPTION, msg, strlen(msg)) <
		    0)
			goto fail;
	}
	if (opt_reply(c, opt, NBD_REP_ACK, NULL, 0) < 0)
		goto fail;
	if (opt == NBD_OPT_INFO) {
		nbd_export_close(e);
		return 0;
	}
	export_opened(c, name, e);
	return 1;
fail:
	nbd_export_close(e);
	return -EPIPE;
}

static int list_name(void *arg, const char *name)
{
	struct strbuf *sb = arg;
	size_t len = strlen(name);
	uint8_t n[4];

	if (len > NBD_MAX_NAME || sb->len > (16U << 20))
		return -E2BIG;
	put32(n, len);
	strbuf_add(sb, n, 4);
	strbuf_add(sb, name, len);
	return 0;
}

/* NBD_OPT_LIST: one NBD_REP_SERVER per working VDI. */
static int opt_list(struct nbd_conn *c, uint32_t len)
{
	struct strbuf sb = STRBUF_INIT;
	size_t pos = 0;
	int ret;

	if (len)
		return opt_refuse(c, NBD_OPT_LIST, NBD_REP_ERR_INVALID,
				  "LIST takes no data, got %u bytes", len);
	ret = nbd_export_list(list_name, &sb);
	if (ret < 0) {
		strbuf_release(&sb);
		return opt_refuse(c, NBD_OPT_LIST,
				  ret == -ESHUTDOWN ? NBD_REP_ERR_SHUTDOWN
						    : NBD_REP_ERR_PLATFORM,
				  "cannot list the VDIs: %s", strerror(-ret));
	}
	while (pos < sb.len) {
		uint32_t n = get32((uint8_t *)sb.buf + pos);

		if (opt_reply(c, NBD_OPT_LIST, NBD_REP_SERVER,
			      (uint8_t *)sb.buf + pos, 4 + n) < 0) {
			strbuf_release(&sb);
			return -EPIPE;
		}
		pos += 4 + n;
	}
	strbuf_release(&sb);
	return opt_reply(c, NBD_OPT_LIST, NBD_REP_ACK, NULL, 0);
}

/*
 * NBD_OPT_LIST_META_CONTEXT and NBD_OPT_SET_META_CONTEXT: u32 name length,
 * name, u32 number of queries, each u32 length and string. The whole option
 * is checked before anything is answered. Only base:allocation exists;
 * other queries select nothing, as the protocol asks.
 */
static int opt_meta(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
		    uint32_t len)
{
	static const char alloc[] = NBD_META_BASE_ALLOCATION;
	uint32_t namelen, nr, pos;
	bool found = false;
	const char *bad;
	uint8_t rep[4 + sizeof(alloc)];

	if (!c->structured)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
				  "negotiate STRUCTURED_REPLY first");
	if (len < 8)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
				  "option length %u is too short", len);
	namelen = get32(data);
	if (namelen > len - 8)
		return opt_refuse(
		    c, opt, NBD_REP_ERR_INVALID,
		    "name length %u does not fit in the option's %u bytes",
		    namelen, len);
	bad = check_name(data + 4, namelen);
	if (bad)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID, "%s", bad);
	nr = get32(data + 4 + namelen);
	pos = 8 + namelen;
	for (uint32_t i = 0; i < nr; i++) {
		uint32_t qlen;
		const char *q;

		if (len - pos < 4)
			return opt_refuse(
			    c, opt, NBD_REP_ERR_INVALID,
			    "query %u of %u is past the option's end", i + 1,
			    nr);
		qlen = get32(data + pos);
		if (qlen > len - pos - 4)
			return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
					  "query %u length %u does not fit in "
					  "the option's %u bytes",
					  i + 1, qlen, len);
		q = (const char *)data + pos + 4;
		if (qlen == sizeof(alloc) - 1 && !memcmp(q, alloc, qlen))
			found = true;
		/* LIST: "base:" asks for every context of namespace base. */
		if (opt == NBD_OPT_LIST_META_CONTEXT && qlen == 5 &&
		    !memcmp(q, "base:", 5))
			found = true;
		pos += 4 + qlen;
	}
	if (pos != len)
		return opt_refuse(c, opt, NBD_REP_ERR_INVALID,
				  "%u bytes after the last query", len - pos);
	if (opt == NBD_OPT_LIST_META_CONTEXT && !nr)
		found = true;
	if (opt == NBD_OPT_SET_META_CONTEXT) {
		free(c->meta_name);
		c->meta_name = xmalloc(namelen + 1);
		memcpy(c->meta_name, data + 4, namelen);
		c->meta_name[namelen] = '\0';
		c->meta_alloc = found;
	}
	if (found) {
		put32(rep, NBD_ALLOC_CONTEXT_ID);
		memcpy(rep + 4, alloc, sizeof(alloc) - 1);
		if (opt_reply(c, opt, NBD_REP_META_CONTEXT, rep,
			      sizeof(rep) - 1) < 0)
			return -EPIPE;
	}
	return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
}

/* One option: 0 to stay in the handshake, 1 to start transmission,
 * negative to close the connection. */
static int handle_option(struct nbd_conn *c, uint32_t opt, const uint8_t *data,
			 uint32_t len)
{
	switch (opt) {
	case NBD_OPT_EXPORT_NAME:
		return opt_export_name(c, data, len);
	case NBD_OPT_ABORT:
		sd_debug("nbd: %s: ABORT", c->peer);
		opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
		return -ECONNABORTED;
	case NBD_OPT_LIST:
		return opt_list(c, len);
	case NBD_OPT_INFO:
	case NBD_OPT_GO:
		return opt_info_go(c, opt, data, len);
	case NBD_OPT_STRUCTURED_REPLY:
		if (len)
			return opt_refuse(
			    c, opt, NBD_REP_ERR_INVALID,
			    "STRUCTURED_REPLY takes no data, got %u bytes",
			    len);
		c->structured = true;
		return opt_reply(c, opt, NBD_REP_ACK, NULL, 0);
	case NBD_OPT_LIST_META_CONTEXT:
	case NBD_OPT_SET_META_CONTEXT:
		return opt_meta(c, opt, data, len);
	case NBD_OPT_STARTTLS:
		return opt_refuse(c, opt, NBD_REP_ERR_UNSUP,
				  "TLS is not supported by this server");
	default:
		return opt_refuse(c, opt, NBD_REP_ERR_UNSUP,
				  "option %u (%s) is not supported", opt,
				  opt_name(opt));
	}
}

/*
 * The fixed newstyle handshake, up to the start of transmission (1) or
 * the end of the connection (negative). The client's bytes are bounded:
 * NBD_MAX_OPTION_LEN per option, NBD_MAX_OPTIONS options, NBD_HANDSHAKE_MS
 * of waiting for them in total.
 */
static int handshake(struct nbd_conn *c)
{
	uint8_t buf[18];
	uint32_t cflags;
	int ret;

	c->hs_budget_ms = NBD_HANDSHAKE_MS;
	put64(buf, NBD_MAGIC);
	put64(buf + 8, NBD_IHAVEOPT);
	put16(buf + 16, NBD_FLAG_FIXED_NEWSTYLE | NBD_FLAG_NO_ZEROES);
	if (send_buf(c, buf, 18) < 0)
		return -EPIPE;
	ret = conn_read(c, buf, 4, &c->hs_budget_ms);
	if (ret < 0)
		goto read_failed;
	cflags = get32(buf);
	if (cflags & ~(NBD_FLAG_C_FIXED_NEWSTYLE | NBD_FLAG_C_NO_ZEROES)) {
		sd_warn("nbd: %s: unknown client flags 0x%x; closing", c->peer,
			cflags);
		return -EPROTO;
	}
	if (!(cflags & NBD_FLAG_C_FIXED_NEWSTYLE)) {
		sd_warn("nbd: %s: client does not speak the fixed newstyle "
			"handshake (flags 0x%x); closing",
			c->peer, cflags);
		return -EPROTO;
	}
	c->no_zeroes = cflags & NBD_FLAG_C_NO_ZEROES;

	for (int n = 0;; n++) {
		uint64_t magic;
		uint32_t opt, len;
		uint8_t *data;

		ret = conn_read(c, buf, 16, &c->hs_budget_ms);
		if (ret < 0)
			goto read_failed;
		magic = get64(buf);
		opt = get32(buf + 8);
		len = get32(buf + 12);
		if (magic != NBD_IHAVEOPT) {
			sd_warn("nbd: %s: option magic 0x%016" PRIx64
				" is not IHAVEOPT; closing",
				c->peer, magic);
			return -EPROTO;
		}
		if (len > NBD_MAX_OPTION_LEN) {
			sd_warn("nbd: %s: option %s of %u bytes is over the "
				"limit of %u; closing",
				c->peer, opt_name(opt), len,
				NBD_MAX_OPTION_LEN);
			return -EPROTO;
		}
		if (n >= NBD_MAX_OPTIONS) {
			sd_warn("nbd: %s: more than %d options; closing",
				c->peer, NBD_MAX_OPTIONS);
			return -EPROTO;
		}
		data = xmalloc(len + 1);
		ret = conn_read(c, data, len, &c->hs_budget_ms);
		if (ret < 0) {
			free(data);
			goto read_failed;
		}
		data[len] = '\0';
		ret = handle_option(c, opt, data, len);
		free(data);
		if (ret)
			return ret;
	}
read_failed:
	if (ret == -ETIMEDOUT)
		sd_warn("nbd: %s: handshake not finished within %d s; closing",
			c->peer, NBD_HANDSHAKE_MS / 1000);
	else
		sd_debug("nbd: %s: gone during the handshake: %s", c->peer,
			 strerror(-ret));
	return ret;
}

/* ---- transmission ---- */

/* The errno of a failed request as NBD says it (proto.md, "Error
 * values"). */
static uint32_t nbd_errno(int err, const struct nbd_hdr *h, bool structured)
{
	switch (err) {
	case EPERM:
	case EROFS:
	case EACCES:
		return NBD_EPERM;
	case ENOMEM:
		return NBD_ENOMEM;
	case EINVAL:
		return NBD_EINVAL;
	case ENOSPC:
	case EDQUOT:
	case EFBIG:
		return NBD_ENOSPC;
	case EOVERFLOW:
		return structured ? NBD_EOVERFLOW : NBD_EINVAL;
	case ENOTSUP:
		/* ENOTSUP is only for a WRITE_ZEROES that cannot be fast. */
		return h->flags & NBD_CMD_FLAG_FAST_ZERO ? NBD_ENOTSUP
							 : NBD_EINVAL;
	case ESHUTDOWN:
		return NBD_ESHUTDOWN;
	default:
		return NBD_EIO;
	}
}

/* A failed request: a simple reply with the error, or an ERROR chunk that
 * also carries the reason. */
static void send_error(struct nbd_conn *c, const struct nbd_hdr *h, int err,
		       const char *why)
{
	uint32_t code = nbd_errno(err, h, c->structured);
	uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE + 6];
	size_t wlen = strlen(why);
	struct iovec iov[2] = {{hdr, 0}, {(void *)why, 0}};

	if (!c->structured) {
		put32(hdr, NBD_SIMPLE_REPLY_MAGIC);
		put32(hdr + 4, code);
		put64(hdr + 8, h->handle);
		iov[0].iov_len = NBD_SIMPLE_REPLY_SIZE;
		conn_send(c, iov, 1);
		return;
	}
	if (wlen > 1024)
		wlen = 1024;
	put32(hdr, NBD_STRUCTURED_REPLY_MAGIC);
	put16(hdr + 4, NBD_REPLY_FLAG_DONE);
	put16(hdr + 6, NBD_REPLY_TYPE_ERROR);
	put64(hdr + 8, h->handle);
	put32(hdr + 16, 6 + wlen);
	put32(hdr + 20, code);
	put16(hdr + 24, wlen);
	iov[0].iov_len = sizeof(hdr);
	iov[1].iov_len = wlen;
	conn_send(c, iov, 2);
}

/* The reply of a request that succeeded, in hdr and iov; the number of
 * iovecs used. */
static int reply_iov(const struct nbd_conn *c, const struct nbd_req *r,
		     uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE + 8],
		     struct iovec iov[2])
{
	const struct nbd_hdr *h = &r->h;

	iov[0].iov_base = hdr;
	iov[1].iov_base = r->data;
	iov[1].iov_len = 0;
	if (h->type == NBD_CMD_READ && c->structured) {
		/* One OFFSET_DATA chunk for the whole read. */
		put32(hdr, NBD_STRUCTURED_REPLY_MAGIC);
		put16(hdr + 4, NBD_REPLY_FLAG_DONE);
		put16(hdr + 6, NBD_REPLY_TYPE_OFFSET_DATA);
		put64(hdr + 8, h->handle);
		put32(hdr + 16, 8 + h->len);
		put64(hdr + 20, h->offset);
		iov[0].iov_len = NBD_STRUCTURED_REPLY_SIZE + 8;
		iov[1].iov_len = h->len;
	} else if (h->type == NBD_CMD_BLOCK_STATUS) {
		put32(hdr, NBD_STRUCTURED_REPLY_MAGIC);
		put16(hdr + 4, NBD_REPLY_FLAG_DONE);
		put16(hdr + 6, NBD_REPLY_TYPE_BLOCK_STATUS);
		put64(hdr + 8, h->handle);
		put32(hdr + 16, 4 + 8 * r->nr_extents);
		iov[0].iov_len = NBD_STRUCTURED_REPLY_SIZE;
		iov[1].iov_len = 4 + 8 * r->nr_extents;
	} else {
		/* Simple replies stay allowed for everything but READ and
		 * BLOCK_STATUS, and are the smallest. */
		put32(hdr, NBD_SIMPLE_REPLY_MAGIC);
		put32(hdr + 4, 0);
		put64(hdr + 8, h->handle);
		iov[0].iov_len = NBD_SIMPLE_REPLY_SIZE;
		if (h->type == NBD_CMD_READ)
			iov[1].iov_len = h->len;
	}
	return iov[1].iov_len ? 2 : 1;
}

/* A request that succeeded. */
static void send_ok(struct nbd_conn *c, const struct nbd_req *r)
{
	uint8_t hdr[NBD_STRUCTURED_REPLY_SIZE + 8];
	struct iovec iov[2];

	conn_send(c, iov, reply_iov(c, r, hdr, iov));
}

/*
 * Every check of a request, before anything acts on it: the command, its
 * flags (known, allowed for the command and advertised), the export being
 * writable, the range (not empty, inside the export, without overflow) and
 * the payload limit. 0, or -errno with the reason in why.
 */
static int validate_request(const struct nbd_conn *c, const struct nbd_hdr *h,
			    char *why, size_t why_len)
{
	uint16_t allowed;
	bool ranged = true, writes = false;

	switch (h->type) {
	case NBD_CMD_READ:
		allowed = c->tflags & NBD_FLAG_SEND_DF ? NBD_CMD_FLAG_DF : 0;
		break;
	case NBD_CMD_WRITE:
		allowed = NBD_CMD_FLAG_FUA;
		writes = true;
		break;
	case NBD_CMD_FLUSH:
		allowed = 0;
		ranged = false;
		break;
	case NBD_CMD_TRIM:
		allowed = NBD_CMD_FLAG_FUA;
		writes = true;
		break;
	case NBD_CMD_WRITE_ZEROES:
		allowed = NBD_CMD_FLAG_FUA | NBD_CMD_FLAG_NO_HOLE |
			  NBD_CMD_FLAG_FAST_ZERO;
		writes = true;
		break;
	case NBD_CMD_BLOCK_STATUS:
		allowed = NBD_CMD_FLAG_REQ_ONE;
		break;
	default:
		snprintf(why, why_len, "%s (%u) is not supported",
			 cmd_name(h->type), h->type);
		return -EINVAL;
	}
	if (h->flags & ~allowed) {
		snprintf(why, why_len,
			 "%s: flags 0x%x not allowed (allowed: 0x%x)",
			 cmd_name(h->type), h->flags, allowed);
		return -EINVAL;
	}
	if (writes && (c->tflags & NBD_FLAG_READ_ONLY)) {
		snprintf(why, why_len, "%s: export %s is read-only",
			 cmd_name(h->type), c->name);
		return -EPERM;
	}
	if (h->type == NBD_CMD_BLOCK_STATUS && !c->meta_alloc) {
		snprintf(why, why_len,
			 "BLOCK_STATUS: no meta context was negotiated");
		return -EINVAL;
	}
	if (!ranged) {
		if (h->offset || h->len) {
			snprintf(why, why_len,
				 "%s: offset %" PRIu64
				 " and length %u must be 0",
				 cmd_name(h->type), h->offset, h->len);
			return -EINVAL;
		}
		return 0;
	}
	if ((h->type == NBD_CMD_READ || h->type == NBD_CMD_WRITE) &&
	    h->len > NBD_MAX_PAYLOAD) {
		snprintf(why, why_len,
			 "%s: length %u is over the maximum payload of %u",
			 cmd_name(h->type), h->len, NBD_MAX_PAYLOAD);
		return -EOVERFLOW;
	}
	if (!h->len || h->offset > c->size || h->len > c->size - h->offset) {
		snprintf(why, why_len,
			 "%s: offset %" PRIu64
			 " length %u is outside the export's %" PRIu64 " bytes",
			 cmd_name(h->type), h->offset, h->len, c->size);
		return h->type == NBD_CMD_WRITE ||
			       h->type == NBD_CMD_WRITE_ZEROES
			   ? -ENOSPC
			   : -EINVAL;
	}
	return 0;
}

static int add_extent(void *arg, uint32_t length, uint32_t flags)
{
	struct nbd_req *r = arg;
	uint8_t *p = (uint8_t *)r->data + 4 + 8 * r->nr_extents;

	put32(p, length);
	put32(p + 4, flags);
	r->nr_extents++;
	return 0;
}

/* Worker: run a validated request against the export. 0 or -errno. */
static int execute_request(struct nbd_conn *c, struct nbd_req *r)
{
	const struct nbd_hdr *h = &r->h;
	bool fua = h->flags & NBD_CMD_FLAG_FUA;
	int ret;

	switch (h->type) {
	case NBD_CMD_READ:
		return nbd_export_read(c->exp, h->offset, h->len, r->data);
	case NBD_CMD_WRITE:
		return nbd_export_write(c->exp, h->offset, h->len, r->data,
					fua);
	case NBD_CMD_FLUSH:
		return nbd_export_flush(c->exp);
	case NBD_CMD_TRIM:
		ret = nbd_export_trim(c->exp, h->offset, h->len);
		return ret ?: fua ? nbd_export_flush(c->exp) : 0;
	case NBD_CMD_WRITE_ZEROES:
		ret = nbd_export_zero(c->exp, h->offset, h->len,
				      !(h->flags & NBD_CMD_FLAG_NO_HOLE),
				      h->flags & NBD_CMD_FLAG_FAST_ZERO);
		return ret ?: fua ? nbd_export_flush(c->exp) : 0;
	case NBD_CMD_BLOCK_STATUS:
		put32(r->data, NBD_ALLOC_CONTEXT_ID);
		r->nr_extents = 0;
		ret = nbd_export_block_status(
		    c->exp, h->offset, h->len,
		    h->flags & NBD_CMD_FLAG_REQ_ONE ? 1 : NBD_MAX_EXTENTS,
		    add_extent, r);
		if (ret < 0)
			return ret;
		return r->nr_extents ? 0 : -EIO;
	}
	return -EINVAL; /* validate_request let nothing else through */
}

/* Bytes a request's buffer needs. */
static uint32_t req_data_len(const struct nbd_hdr *h)
{
	switch (h->type) {
	case NBD_CMD_READ:
	case NBD_CMD_WRITE:
		return h->len;
	case NBD_CMD_BLOCK_STATUS:
		return 4 + 8 * (h->flags & NBD_CMD_FLAG_REQ_ONE
				    ? 1
				    : NBD_MAX_EXTENTS);
	default:
		return 0;
	}
}

/* A request with a buffer for h, from the connection's free list. Big
 * buffers are charged to the global budget (which may wait). */
static int get_req(struct nbd_conn *c, const struct nbd_hdr *h,
		   struct nbd_req **out)
{
	uint32_t need = req_data_len(h);
	struct nbd_req *r;

	pthread_mutex_lock(&c->lock);
	r = c->free_reqs;
	if (r)
		c->free_reqs = r->next;
	pthread_mutex_unlock(&c->lock);
	if (!r) {
		r = xzalloc(sizeof(*r));
		r->conn = c;
	}
	r->h = *h;
	r->next = NULL;
	r->charged = 0;
	if (need > NBD_KEEP_BUF) {
		if (need > NBD_SMALL_REQ) {
			budget_take(need);
			r->charged = need;
		}
		if (posix_memalign(&r->data, 4096, need))
			goto nomem;
	} else {
		if (need > r->buf_len) {
			uint32_t len = need < 4096 ? 4096 : need;

			free(r->buf);
			r->buf_len = 0;
			if (posix_memalign(&r->buf, 4096, len)) {
				r->buf = NULL;
				goto nomem;
			}
			r->buf_len = len;
		}
		if (need > NBD_SMALL_REQ) {
			budget_take(need);
			r->charged = need;
		}
		r->data = r->buf;
	}
	*out = r;
	return 0;
nomem:
	if (r->charged)
		budget_give(r->charged);
	free(r->buf);
	free(r);
	return -ENOMEM;
}

/* Recycle r; the caller's request has ended. Unless counted is false, it
 * was in flight: the reader may go on, and after this the connection may
 * be gone. */
static void put_req(struct nbd_conn *c, struct nbd_req *r, bool counted)
{
	if (r->data != r->buf)
		free(r->data);
	r->data = NULL;
	if (r->charged)
		budget_give(r->charged);
	pthread_mutex_lock(&c->lock);
	r->next = c->free_reqs;
	c->free_reqs = r;
	if (counted) {
		c->inflight--;
		pthread_cond_signal(&c->cond);
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- the worker pool ---- */

static struct {
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct nbd_req *head, *tail;
	int nr_threads, nr_idle;
} pool = {
    .lock = PTHREAD_MUTEX_INITIALIZER,
    .cond = PTHREAD_COND_INITIALIZER,
};

static void run_request(struct nbd_req *r)
{
	struct nbd_conn *c = r->conn;
	const struct nbd_hdr *h = &r->h;
	int ret = execute_request(c, r);

	if (ret < 0) {
		char why[256];

		snprintf(why, sizeof(why),
			 "%s of %u bytes at %" PRIu64 " in %s: %s",
			 cmd_name(h->type), h->len, h->offset, c->name,
			 strerror(-ret));
		if (ret != -ENOTSUP)
			sd_warn("nbd: %s: %s", c->peer, why);
		send_error(c, h, -ret, why);
	} else {
		send_ok(c, r);
	}
	put_req(c, r, true);
}

static void *worker_main(void *arg)
{
	pthread_mutex_lock(&pool.lock);
	for (;;) {
		struct nbd_req *r;

		while (!pool.head) {
			pool.nr_idle++;
			pthread_cond_wait(&pool.cond, &pool.lock);
			pool.nr_idle--;
		}
		r = pool.head;
		pool.head = r->next;
		if (!pool.head)
			pool.tail = NULL;
		pthread_mutex_unlock(&pool.lock);
		run_request(r);
		pthread_mutex_lock(&pool.lock);
	}
	return NULL;
}

/* Start a worker; pool.lock held. */
static int start_worker(void)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, worker_main, NULL);
	pthread_attr_destroy(&attr);
	if (ret)
		return -ret;
	pthread_setname_np(t, "nbd-worker");
	pool.nr_threads++;
	return 0;
}

/* Queue r; add a worker if the queue is stuck, up to NBD_MAX_WORKERS. */
static void pool_queue(struct nbd_req *r)
{
	uint64_t now = now_us();

	pthread_mutex_lock(&pool.lock);
	r->next = NULL;
	r->queued_us = now;
	if (pool.tail)
		pool.tail->next = r;
	else
		pool.head = r;
	pool.tail = r;
	if (!pool.nr_idle && pool.nr_threads < NBD_MAX_WORKERS &&
	    now - pool.head->queued_us >= NBD_WORKER_WAIT_US)
		start_worker();
	pthread_cond_signal(&pool.cond);
	pthread_mutex_unlock(&pool.lock);
}

/* ---- the fast read path ----
 *
 * A READ that fits in one object is served by the connection's own thread
 * when that needs no waiting: a hole is zeros, a local object in the page
 * cache is read at once, and a remote one is sent to its holder on the
 * thread's pipelined peer connection (peer_reads.c) together with the
 * other reads of the burst. Replies go back to the client in batches.
 * That saves the thread switches of the worker pool, which at 4 KiB are
 * most of a read's cost on a small host. Whatever cannot be served so
 * (a disk read, a peer that failed or moved to another epoch, a missing
 * object) goes to the pool, where the full gateway path handles it.
 */

/* Fast replies sent with one sendmsg at most. */
#define NBD_READY_BATCH 32

/* Send the replies of the answered fast reads. */
static void ready_send(struct nbd_conn *c)
{
	struct iovec iov[2 * NBD_READY_BATCH];
	struct nbd_req *r, *next;
	int cnt = 0;

	if (!c->ready)
		return;
	for (r = c->ready; r; r = r->next)
		cnt += reply_iov(c, r, r->rhdr, iov + cnt);
	conn_send(c, iov, cnt);
	for (r = c->ready; r; r = next) {
		next = r->next;
		put_req(c, r, true);
	}
	c->ready = NULL;
	c->ready_tail = &c->ready;
	c->nr_ready = 0;
}

static void ready_add(struct nbd_conn *c, struct nbd_req *r)
{
	r->next = NULL;
	*c->ready_tail = r;
	c->ready_tail = &r->next;
	if (++c->nr_ready == NBD_READY_BATCH)
		ready_send(c);
}

/* A peer's answer to a fast read; a failure takes the full path. */
static void fast_done(struct peer_read *pr, int result, void *arg)
{
	struct nbd_conn *c = arg;
	struct nbd_req *r = container_of(pr, struct nbd_req, pr);

	if (result == SD_RES_SUCCESS)
		ready_add(c, r);
	else
		pool_queue(r);
}

/* true if the fast path took r (answered it, or sent it to a peer). */
static bool fast_read(struct nbd_conn *c, struct nbd_req *r)
{
	uint32_t obj_off, epoch;
	struct node_id nid;
	uint64_t oid;

	if (!c->prs || r->h.len > PEER_READS_MAX_LEN ||
	    nbd_export_read_target(c->exp, r->h.offset, r->h.len, &oid,
				   &obj_off) <= 0)
		return false;
	if (!oid) {
		memset(r->data, 0, r->h.len);
		ready_add(c, r);
		return true;
	}
	switch (gateway_read_route(oid, &epoch, &nid)) {
	case GW_ROUTE_LOCAL:
		if (!store_read_nowait(oid, obj_off, r->h.len, r->data))
			return false;
		ready_add(c, r);
		return true;
	case GW_ROUTE_PEER:
		r->pr.len = r->h.len;
		r->pr.buf = r->data;
		return peer_reads_add(c->prs, &nid, epoch, oid, obj_off,
				      &r->pr);
	default:
		return false;
	}
}

/*
 * Send what the fast path queued and answer what it finished; then, while
 * reads are out at peers, wait for their answers, and (with client) for
 * the client's next request, which ends the wait. Without client, one
 * round of at most 10 ms.
 */
static void fast_wait(struct nbd_conn *c, bool client)
{
	if (!c->prs)
		return;
	peer_reads_flush(c->prs);
	ready_send(c);
	while (peer_reads_pending(c->prs)) {
		struct pollfd pfd[1 + PEER_READS_MAX_PEERS];
		int n = 0, np;

		if (client) {
			pfd[0].fd = c->fd;
			pfd[0].events = POLLIN;
			pfd[0].revents = 0;
			n = 1;
		}
		np = peer_reads_pollfds(c->prs, pfd + n, PEER_READS_MAX_PEERS);
		if (poll(pfd, n + np, client ? -1 : 10) < 0 && errno != EINTR) {
			sd_warn("nbd: %s: poll: %m", c->peer);
			peer_reads_abort(c->prs);
		}
		peer_reads_handle(c->prs, pfd + n, np);
		ready_send(c);
		if (!client || pfd[0].revents)
			return;
	}
}

/* ---- one connection ---- */

/* Wait until the connection may have another request in flight. */
static void wait_for_slot(struct nbd_conn *c)
{
	pthread_mutex_lock(&c->lock);
	while (c->inflight >= NBD_MAX_INFLIGHT) {
		if (c->prs && (peer_reads_pending(c->prs) || c->ready)) {
			pthread_mutex_unlock(&c->lock);
			fast_wait(c, false);
			pthread_mutex_lock(&c->lock);
			continue;
		}
		pthread_cond_wait(&c->cond, &c->lock);
	}
	pthread_mutex_unlock(&c->lock);
}

/*
 * A refused request: its payload (a WRITE's) is read and dropped so that
 * the stream stays in step, then the error goes out. 0 to go on, negative
 * when the connection must close (the payload is too big to skip, or did
 * not arrive).
 */
static int refuse_request(struct nbd_conn *c, const struct nbd_hdr *h, int err,
			  const char *why)
{
	int64_t budget = NBD_STALL_MS;

	sd_info("nbd: %s: refused %s", c->peer, why);
	if (h->type == NBD_CMD_WRITE) {
		if (h->len > NBD_MAX_SKIP) {
			send_error(c, h, -err, why);
			sd_warn("nbd: %s: WRITE payload of %u bytes is too big "
				"to skip; closing",
				c->peer, h->len);
			return -EPROTO;
		}
		if (conn_read(c, NULL, h->len, &budget) < 0)
			return -ECONNRESET;
	}
	send_error(c, h, -err, why);
	return 0;
}

/*
 * Read requests until the client disconnects (DISC, end of stream, a bad
 * magic) or the server stops. A WRITE whose payload does not arrive whole
 * is dropped, never applied; requests already queued finish.
 */
static void transmission(struct nbd_conn *c)
{
	c->ready = NULL;
	c->ready_tail = &c->ready;
	c->prs = peer_reads_new(fast_done, c);
	for (;;) {
		bool inline_run;
		uint8_t buf[NBD_REQUEST_SIZE];
		char why[256];
		struct nbd_hdr h;
		struct nbd_req *r;
		uint32_t magic;
		int ret;

		wait_for_slot(c);
		if (atomic_load(&c->broken))
			break;
		/* Nothing more received: send the batch, wait for answers. */
		if (c->rpos == c->rlen)
			fast_wait(c, true);
		ret = conn_read(c, buf, sizeof(buf), NULL);
		if (ret < 0) {
			sd_debug("nbd: %s: end of stream: %s", c->peer,
				 strerror(-ret));
			break;
		}
		magic = get32(buf);
		h.flags = get16(buf + 4);
		h.type = get16(buf + 6);
		h.handle = get64(buf + 8);
		h.offset = get64(buf + 16);
		h.len = get32(buf + 24);
		if (magic != NBD_REQUEST_MAGIC) {
			sd_warn(
			    "nbd: %s: request magic 0x%08x is wrong; closing",
			    c->peer, magic);
			break;
		}
		if (h.type == NBD_CMD_DISC) {
			sd_debug("nbd: %s: DISC", c->peer);
			break;
		}
		ret = validate_request(c, &h, why, sizeof(why));
		if (ret < 0) {
			if (refuse_request(c, &h, ret, why) < 0)
				break;
			continue;
		}
		if (get_req(c, &h, &r) < 0) {
			snprintf(why, sizeof(why),
				 "%s of %u bytes: out of memory",
				 cmd_name(h.type), h.len);
			if (refuse_request(c, &h, -ENOMEM, why) < 0)
				break;
			continue;
		}
		if (h.type == NBD_CMD_WRITE) {
			int64_t budget = NBD_STALL_MS;

			ret = conn_read(c, r->data, h.len, &budget);
			if (ret < 0) {
				sd_warn("nbd: %s: WRITE of %u bytes at %" PRIu64
					" in %s cut short (%s); dropped",
					c->peer, h.len, h.offset, c->name,
					strerror(-ret));
				put_req(c, r, false);
				break;
			}
		}
		pthread_mutex_lock(&c->lock);
		inline_run = !c->inflight && c->rpos == c->rlen;
		c->inflight++;
		pthread_mutex_unlock(&c->lock);
		atomic_fetch_add(&c->nr_requests, 1);
		if (h.type == NBD_CMD_READ && fast_read(c, r))
			continue;
		/*
		 * A request alone on its connection, with nothing more
		 * received behind it (a queue-depth-1 client, or the first of
		 * a burst), runs here: handing it to a worker would cost two
		 * thread switches, which on a small host are a good part of a
		 * 4 KiB request's latency. Pipelined requests go to the pool.
		 */
		if (inline_run)
			run_request(r);
		else
			pool_queue(r);
	}
	/* Reads still out at peers finish through the pool. */
	peer_reads_abort(c->prs);
	ready_send(c);
}

static void conn_free(struct nbd_conn *c)
{
	while (c->free_reqs) {
		struct nbd_req *r = c->free_reqs;

		c->free_reqs = r->next;
		free(r->buf);
		free(r);
	}
	pthread_mutex_destroy(&c->lock);
	pthread_cond_destroy(&c->cond);
	pthread_mutex_destroy(&c->send_lock);
	free(c->rbuf);
	free(c->name);
	free(c->meta_name);
	free(c);
}

static void *conn_main(void *arg)
{
	struct nbd_conn *c = arg;

	sd_debug("nbd: %s: connected", c->peer);
	if (handshake(c) == 1) {
		transmission(c);
		/* No more reading; what is in flight finishes and replies. */
		pthread_mutex_lock(&c->lock);
		while (c->inflight)
			pthread_cond_wait(&c->cond, &c->lock);
		pthread_mutex_unlock(&c->lock);
	}
	peer_reads_free(c->prs);
	c->prs = NULL;
	if (c->exp) {
		nbd_export_close(c->exp);
		sd_info("nbd: %s: export %s closed after %" PRIu64 " requests",
			c->peer, c->name,
			(uint64_t)atomic_load(&c->nr_requests));
	}
	pthread_mutex_lock(&srv.lock);
	list_del(&c->list);
	srv.nr_conns--;
	close(c->fd);
	pthread_mutex_unlock(&srv.lock);
	conn_free(c);
	return NULL;
}

/* ---- the listener ---- */

static void peer_name(const struct sockaddr_storage *ss, socklen_t len,
		      char *buf, size_t buf_len)
{
	char host[64] = "?", port[16] = "?";

	getnameinfo((const struct sockaddr *)ss, len, host, sizeof(host), port,
		    sizeof(port), NI_NUMERICHOST | NI_NUMERICSERV);
	if (ss->ss_family == AF_INET6)
		snprintf(buf, buf_len, "[%s]:%s", host, port);
	else
		snprintf(buf, buf_len, "%s:%s", host, port);
}

static void accept_one(int lfd)
{
	struct sockaddr_storage ss;
	socklen_t len = sizeof(ss);
	struct timeval tv = {.tv_sec = NBD_STALL_MS / 1000};
	struct nbd_conn *c;
	pthread_attr_t attr;
	pthread_t t;
	int fd, one = 1, ret;

	fd = accept4(lfd, (struct sockaddr *)&ss, &len, SOCK_CLOEXEC);
	if (fd < 0) {
		if (errno == EMFILE || errno == ENFILE) {
			sd_err("nbd: accept failed: %m; pausing");
			usleep(100 * 1000);
		} else if (errno != EAGAIN && errno != EINTR &&
			   errno != ECONNABORTED) {
			sd_err("nbd: accept failed: %m");
		}
		return;
	}
	c = xzalloc(sizeof(*c));
	c->fd = fd;
	peer_name(&ss, len, c->peer, sizeof(c->peer));
	setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
	/* A client that stops reading its replies must not hold a worker
	 * for ever. */
	setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv));

	pthread_mutex_lock(&srv.lock);
	if (srv.stopping || srv.nr_conns >= srv.max_conns) {
		pthread_mutex_unlock(&srv.lock);
		if (!srv.stopping)
			sd_warn("nbd: %s: refused, %u connections already (the "
				"limit)",
				c->peer, srv.max_conns);
		close(fd);
		free(c);
		return;
	}
	c->rbuf = xmalloc(NBD_RBUF_SIZE);
	pthread_mutex_init(&c->lock, NULL);
	pthread_cond_init(&c->cond, NULL);
	pthread_mutex_init(&c->send_lock, NULL);
	list_add_tail(&c->list, &srv.conns);
	srv.nr_conns++;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = pthread_create(&t, &attr, conn_main, c);
	pthread_attr_destroy(&attr);
	if (ret) {
		list_del(&c->list);
		srv.nr_conns--;
		pthread_mutex_unlock(&srv.lock);
		sd_err("nbd: %s: cannot start its thread: %s", c->peer,
		       strerror(ret));
		close(fd);
		conn_free(c);
		return;
	}
	pthread_setname_np(t, "nbd-conn");
	pthread_mutex_unlock(&srv.lock);
}

static void *listener_main(void *arg)
{
	struct pollfd pfd[ARRAY_SIZE(srv.listen_fds) + 1];
	int n = srv.nr_listen_fds;

	for (int i = 0; i < n; i++)
		pfd[i] =
		    (struct pollfd){.fd = srv.listen_fds[i], .events = POLLIN};
	pfd[n] = (struct pollfd){.fd = srv.stop_pipe[0], .events = POLLIN};
	for (;;) {
		if (poll(pfd, n + 1, -1) < 0) {
			if (errno == EINTR)
				continue;
			sd_err("nbd: poll failed: %m");
			break;
		}
		if (pfd[n].revents)
			break;
		for (int i = 0; i < n; i++)
			if (pfd[i].revents & POLLIN)
				accept_one(pfd[i].fd);
	}
	for (int i = 0; i < n; i++)
		close(srv.listen_fds[i]);
	atomic_store(&srv.listener_done, true);
	return NULL;
}

static int listen_tcp(const char *address, int port)
{
	int n = sd_listen_tcp(address, port, SOCK_CLOEXEC,
			      srv.listen_fds + srv.nr_listen_fds,
			      ARRAY_SIZE(srv.listen_fds) - srv.nr_listen_fds,
			      "nbd: ");

	if (n < 0)
		return n;
	srv.nr_listen_fds += n;
	return 0;
}

int nbd_init(const char *address, int port, unsigned int max_conns)
{
	pthread_attr_t attr;
	pthread_t t;
	int ret;

	srv.max_conns = max_conns;
	ret = listen_tcp(address, port);
	if (ret < 0)
		return ret;
	if (pipe2(srv.stop_pipe, O_CLOEXEC) < 0) {
		ret = -errno;
		goto close_fds;
	}
	pthread_mutex_lock(&pool.lock);
	while (pool.nr_threads < NBD_MIN_WORKERS) {
		ret = start_worker();
		if (ret < 0)
			break;
	}
	pthread_mutex_unlock(&pool.lock);
	if (ret < 0)
		goto close_pipe;
	pthread_attr_init(&attr);
	pthread_attr_setdetachstate(&attr, PTHREAD_CREATE_DETACHED);
	ret = -pthread_create(&t, &attr, listener_main, NULL);
	pthread_attr_destroy(&attr);
	if (ret < 0)
		goto close_pipe;
	pthread_setname_np(t, "nbd-listen");
	srv.started = true;
	sd_notice("nbd: serving VDIs on %s port %d, at most %u connections",
		  address ?: "every address", port, max_conns);
	return 0;
close_pipe:
	close(srv.stop_pipe[0]);
	close(srv.stop_pipe[1]);
close_fds:
	for (int i = 0; i < srv.nr_listen_fds; i++)
		close(srv.listen_fds[i]);
	srv.nr_listen_fds = 0;
	return ret;
}

void nbd_stop(void)
{
	struct nbd_conn *c;

	if (!srv.started)
		return;
	pthread_mutex_lock(&srv.lock);
	if (srv.stopping) {
		pthread_mutex_unlock(&srv.lock);
		return;
	}
	srv.stopping = true;
	srv.stop_ms = now_ms();
	if (write(srv.stop_pipe[1], "x", 1) < 0)
		sd_err("nbd: cannot stop the listener: %m");
	/* Readers see the end of the stream; replies still go out. */
	list_for_each_entry(c, &srv.conns, list) shutdown(c->fd, SHUT_RD);
	if (srv.nr_conns)
		sd_notice("nbd: closing %u connections", srv.nr_conns);
	pthread_mutex_unlock(&srv.lock);
}

bool nbd_stopped(void)
{
	struct nbd_conn *c;
	uint64_t waited;
	bool done;

	if (!srv.started)
		return true;
	pthread_mutex_lock(&srv.lock);
	waited = now_ms() - srv.stop_ms;
	if (srv.stopping && !srv.forced && waited >= NBD_STOP_GRACE_MS) {
		/* Requests still stuck on a client that does not read: cut
		 * it off so that they end. */
		srv.forced = true;
		list_for_each_entry(c, &srv.conns, list)
		    shutdown(c->fd, SHUT_RDWR);
	}
	done = srv.stopping && !srv.nr_conns && atomic_load(&srv.listener_done);
	if (!done && srv.stopping && waited >= NBD_STOP_MAX_MS) {
		if (!srv.gave_up)
			sd_err("nbd: %u connections still busy after %d s; not "
			       "waiting for them",
			       srv.nr_conns, NBD_STOP_MAX_MS / 1000);
		srv.gave_up = true;
		done = true;
	}
	pthread_mutex_unlock(&srv.lock);
	return done;
}
