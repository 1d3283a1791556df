/*
 * Listeners and client connections. Reads framed requests without blocking,
 * checks every header at the boundary (validate_request) before anything
 * acts on it, hands valid requests to ops.c, and writes replies back in the
 * order they complete (matched by id, so possibly out of order).
 *
 * A connection that sends garbage gets an error reply where the stream is
 * still in sync, and is closed where it is not; other clients never notice.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <inttypes.h>
#include <fcntl.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <sys/un.h>
#include <unistd.h>

#include "sheep.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

/* Requests in flight per connection before we stop reading from it. */
#define MAX_INFLIGHT_PER_CONN 16

struct client_conn {
	int fd;
	char peer[80];
	bool dead;
	bool rx_paused;
	int refcnt;
	int inflight;

	/* receive side */
	uint8_t hdr[SD_HEADER_SIZE];
	size_t hdr_done;
	struct request *rx_req;  /* accepted, payload arriving */
	size_t data_done, rx_want;
	struct request *skip_req; /* refused, its payload being skipped */
	uint32_t skip_left;
	int skip_result;
	bool close_after_tx;
	bool budget_wait;         /* waiting for payload memory */
	struct list_node budget_list;
	struct list_node conn_list;
	uint64_t last_rx_ms;

	/* send side */
	bool rx_batch; /* in conn_rx: replies queue up, sent together after */
	struct list_head tx_queue;
	struct request *tx_req;
	uint8_t tx_hdr[SD_HEADER_SIZE];
	size_t tx_done;
};

static int listen_fds[4];
static int nr_listen_fds;
static atomic_int outstanding;

/*
 * Memory that the payloads of all requests in flight may take together.
 * A connection whose next request would go past it waits until memory is
 * freed (small requests and a request into an empty budget always go on);
 * any number of clients sending 64 MiB requests cannot exhaust the host's
 * memory.
 */
#define RX_BUDGET (512ULL << 20)
/* Control requests this small never wait for memory. */
#define SMALL_REQ (64U << 10)
/* A connection that stops sending in the middle of a request for this
 * long is closed, so that its memory goes back to the others. */
#define STALL_MS 60000
static uint64_t budget_used;
static LIST_HEAD(all_conns);

static LIST_HEAD(budget_waiters);
static int resume_fd = -1;

int nr_outstanding_requests(void)
{
	return atomic_load(&outstanding);
}

static void conn_put(struct client_conn *c)
{
	if (--c->refcnt > 0)
		return;
	if (c->fd >= 0)
		close(c->fd);
	free(c);
}

static void conn_close(struct client_conn *c)
{
	int dropped = 0;

	if (c->dead)
		return;
	c->dead = true;
	list_del(&c->conn_list);
	unregister_event(c->fd);
	close(c->fd);
	c->fd = -1;
	if (c->rx_req) {
		free_request(c->rx_req);
		c->rx_req = NULL;
	}
	if (c->skip_req) {
		free_request(c->skip_req);
		c->skip_req = NULL;
	}
	if (c->budget_wait) {
		list_del(&c->budget_list);
		c->budget_wait = false;
		conn_put(c);
	}
	while (!list_empty(&c->tx_queue)) {
		struct request *r =
			list_first_entry(&c->tx_queue, struct request, r_list);

		list_del(&r->r_list);
		free_request(r);
		dropped++;
	}
	if (c->tx_req) {
		free_request(c->tx_req);
		c->tx_req = NULL;
		dropped++;
	}
	/* The connection's own reference outlives these. */
	c->inflight -= dropped;
	c->refcnt -= dropped;
	conn_put(c);
}

static void conn_update_events(struct client_conn *c)
{
	uint32_t ev = 0;

	if (c->dead)
		return;
	if (!c->rx_paused && !c->close_after_tx && !c->budget_wait)
		ev |= EPOLLIN;
	if (c->tx_req || !list_empty(&c->tx_queue))
		ev |= EPOLLOUT;
	modify_event(c->fd, ev | EPOLLRDHUP);
}

struct request *alloc_request(uint32_t data_length)
{
	struct request *req = xzalloc(sizeof(*req));

	if (data_length) {
		req->data = sd_alloc_buffer(data_length);
		if (!req->data) {
			free(req);
			return NULL;
		}
		req->data_alloc = data_length;
	}
	INIT_LIST_NODE(&req->r_list);
	atomic_fetch_add(&outstanding, 1);
	budget_used += data_length;
	return req;
}

struct request *alloc_local_request(void)
{
	struct request *req = xzalloc(sizeof(*req));

	INIT_LIST_NODE(&req->r_list);
	atomic_fetch_add(&outstanding, 1);
	return req;
}

void free_local_request(struct request *req)
{
	free(req);
	atomic_fetch_sub(&outstanding, 1);
}

void free_request(struct request *req)
{
	uint64_t one = 1;

	budget_used -= req->data_alloc;
	sd_free_buffer(req->data, req->data_alloc);
	free(req);
	atomic_fetch_sub(&outstanding, 1);
	if (!list_empty(&budget_waiters) && budget_used < RX_BUDGET &&
	    write(resume_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sd_err("cannot wake connections waiting for memory: %m");
}

/*
 * The one place a request header is judged. Returns SD_RES_SUCCESS or the
 * result to answer with. Sets *fatal when the byte stream cannot be trusted
 * any more and the connection must be closed after the reply.
 */
static int validate_request(const struct sd_req *rq, bool *fatal)
{
	const struct sd_op_template *op = get_sd_op(rq->opcode);
	uint32_t limit;

	*fatal = false;
	if (rq->data_length > SD_MAX_PAYLOAD) {
		sd_err("%s: data length %" PRIu32 " exceeds the %u byte limit",
		       sd_op_name(rq->opcode) ?: "unknown op", rq->data_length,
		       SD_MAX_PAYLOAD);
		*fatal = (rq->flags & SD_FLAG_CMD_WRITE) != 0;
		return SD_RES_INVALID_PARMS;
	}
	if (rq->opcode < 0x80) {
		if (rq->proto_ver > SD_PROTO_VER) {
			sd_err("opcode 0x%02x: protocol version 0x%02x is newer than 0x%02x",
			       rq->opcode, rq->proto_ver, SD_PROTO_VER);
			return SD_RES_VER_MISMATCH;
		}
	} else if (rq->proto_ver != SD_SHEEP_PROTO_VER) {
		sd_err("opcode 0x%02x: internal protocol version 0x%02x, expected 0x%02x",
		       rq->opcode, rq->proto_ver, SD_SHEEP_PROTO_VER);
		return SD_RES_VER_MISMATCH;
	}
	if (!op) {
		sd_err("unknown opcode 0x%02x", rq->opcode);
		return SD_RES_INVALID_PARMS;
	}
	limit = op->max_len ? op->max_len : SD_MAX_PAYLOAD;
	if (rq->data_length > limit) {
		sd_err("%s: data length %" PRIu32 " exceeds %" PRIu32, op->name,
		       rq->data_length, limit);
		return SD_RES_INVALID_PARMS;
	}
	if (op->exact_len && rq->data_length != op->exact_len) {
		sd_err("%s: data length %" PRIu32 " must be %" PRIu32, op->name,
		       rq->data_length, op->exact_len);
		return SD_RES_INVALID_PARMS;
	}
	if (op->need_write && !(rq->flags & SD_FLAG_CMD_WRITE)) {
		sd_err("%s: request carries no payload", op->name);
		return SD_RES_INVALID_PARMS;
	}
	return SD_RES_SUCCESS;
}

static void reply_now(struct client_conn *c, struct request *req, int result)
{
	req->rp.result = result;
	req->rp.data_length = 0;
	put_request(req);
}

/* Hand a complete request on; result is its verdict from the header. */
static void conn_got_request(struct client_conn *c, struct request *req,
			     int result)
{
	c->refcnt++;
	c->inflight++;
	req->conn = c;
	req->rp.opcode = req->rq.opcode;
	req->rp.id = req->rq.id;
	req->op = get_sd_op(req->rq.opcode);
	if (result != SD_RES_SUCCESS) {
		reply_now(c, req, result);
		return;
	}
	if (c->inflight >= MAX_INFLIGHT_PER_CONN)
		c->rx_paused = true;
	/*
	 * A peer read whose data is in the page cache is answered here, on
	 * the main thread: handing it to a worker and back would cost two
	 * thread switches, several times the read itself. Anything that
	 * would wait (an epoch to catch up, a sweep, the disk) is queued.
	 */
	if (req->rq.opcode == SD_OP_READ_PEER && sys->status == SD_STATUS_OK &&
	    peer_read_obj_nowait(req)) {
		count_request(req);
		put_request(req);
		return;
	}
	queue_request(req);
}

/*
 * The header is complete: judge it before allocating anything. A refused
 * request's payload is skipped so that the stream stays in sync; one too
 * large to skip closes the connection after the reply. Returns false when
 * reading must stop for now.
 */
static bool start_request(struct client_conn *c)
{
	struct sd_req rq;
	uint32_t plen;
	bool fatal;
	int ret;

	sd_req_decode(c->hdr, &rq);
	plen = (rq.flags & SD_FLAG_CMD_WRITE) ? rq.data_length : 0;
	ret = validate_request(&rq, &fatal);
	if (ret == SD_RES_SUCCESS && rq.data_length > SMALL_REQ &&
	    budget_used > 0 && budget_used + rq.data_length > RX_BUDGET) {
		c->budget_wait = true;
		c->refcnt++;
		list_add_tail(&c->budget_list, &budget_waiters);
		return false;
	}
	if (ret == SD_RES_SUCCESS) {
		/* The payload, or without WRITE the room for the reply. */
		c->rx_req = alloc_request(rq.data_length);
		if (c->rx_req) {
			c->rx_req->rq = rq;
			c->data_done = 0;
			c->rx_want = plen;
			return true;
		}
		sd_err("%s: cannot allocate %" PRIu32 " bytes for %s", c->peer,
		       rq.data_length, sd_op_name(rq.opcode) ?: "a request");
		ret = SD_RES_NO_MEM;
	}
	c->skip_req = alloc_request(0);
	c->skip_req->rq = rq;
	c->skip_result = ret;
	c->skip_left = plen;
	if (fatal) {
		struct request *req = c->skip_req;

		c->skip_req = NULL;
		c->skip_left = 0;
		c->close_after_tx = true;
		c->hdr_done = 0;
		conn_got_request(c, req, ret);
		return false;
	}
	return true;
}

/* Read as much as is available. Returns false if the connection died. */
static bool conn_rx_loop(struct client_conn *c)
{
	static char scratch[64 * 1024];

	for (;;) {
		struct request *req;
		ssize_t n;

		if (c->rx_paused || c->close_after_tx || c->dead ||
		    c->budget_wait)
			return true;

		if (c->hdr_done < SD_HEADER_SIZE) {
			n = read(c->fd, c->hdr + c->hdr_done,
				 SD_HEADER_SIZE - c->hdr_done);
			if (n == 0)
				return false;
			if (n < 0)
				return errno == EAGAIN || errno == EINTR;
			c->hdr_done += n;
			c->last_rx_ms = mono_ms();
			continue;
		}
		if (!c->rx_req && !c->skip_req) {
			if (!start_request(c))
				return true;
			continue;
		}
		if (c->skip_req) {
			if (c->skip_left) {
				n = read(c->fd, scratch,
					 MIN(c->skip_left, sizeof(scratch)));
				if (n == 0)
					return false;
				if (n < 0)
					return errno == EAGAIN || errno == EINTR;
				c->skip_left -= n;
				c->last_rx_ms = mono_ms();
				continue;
			}
			req = c->skip_req;
			c->skip_req = NULL;
			c->hdr_done = 0;
			conn_got_request(c, req, c->skip_result);
			continue;
		}
		if (c->data_done < c->rx_want) {
			n = read(c->fd, (char *)c->rx_req->data + c->data_done,
				 c->rx_want - c->data_done);
			if (n == 0)
				return false;
			if (n < 0)
				return errno == EAGAIN || errno == EINTR;
			c->data_done += n;
			c->last_rx_ms = mono_ms();
			continue;
		}
		req = c->rx_req;
		c->rx_req = NULL;
		c->hdr_done = 0;
		conn_got_request(c, req, SD_RES_SUCCESS);
	}
}

/* Replies written by one writev at most. */
#define TX_BATCH 32

/* A reply fully written: the request is done. */
static void tx_done_req(struct client_conn *c, struct request *req)
{
	free_request(req);
	c->inflight--;
	if (c->rx_paused && c->inflight < MAX_INFLIGHT_PER_CONN / 2)
		c->rx_paused = false;
	conn_put(c);
}

/*
 * Write queued replies, as many as TX_BATCH in one writev: a burst of
 * answers costs one system call (and one wake-up of the other side), not
 * one each. Returns false if the connection died.
 */
static bool conn_tx(struct client_conn *c)
{
	for (;;) {
		struct iovec iov[2 * TX_BATCH];
		uint8_t hdrs[TX_BATCH][SD_HEADER_SIZE];
		struct request *req, *batch[TX_BATCH];
		int cnt = 0, nr = 0;
		size_t rem;
		ssize_t n;

		if (!c->tx_req) {
			if (list_empty(&c->tx_queue))
				return true;
			req = list_first_entry(&c->tx_queue, struct request,
					       r_list);
			list_del(&req->r_list);
			c->tx_req = req;
			c->tx_done = 0;
			sd_rsp_encode(&req->rp, c->tx_hdr);
		}
		req = c->tx_req;
		rem = SD_HEADER_SIZE + req->rp.data_length - c->tx_done;
		if (c->tx_done < SD_HEADER_SIZE) {
			iov[cnt].iov_base = c->tx_hdr + c->tx_done;
			iov[cnt++].iov_len = SD_HEADER_SIZE - c->tx_done;
			if (req->rp.data_length) {
				iov[cnt].iov_base = req->data;
				iov[cnt++].iov_len = req->rp.data_length;
			}
		} else {
			size_t off = c->tx_done - SD_HEADER_SIZE;

			iov[cnt].iov_base = (char *)req->data + off;
			iov[cnt++].iov_len = req->rp.data_length - off;
		}
		list_for_each_entry(req, &c->tx_queue, r_list) {
			if (nr == TX_BATCH)
				break;
			sd_rsp_encode(&req->rp, hdrs[nr]);
			iov[cnt].iov_base = hdrs[nr];
			iov[cnt++].iov_len = SD_HEADER_SIZE;
			if (req->rp.data_length) {
				iov[cnt].iov_base = req->data;
				iov[cnt++].iov_len = req->rp.data_length;
			}
			batch[nr++] = req;
		}
		n = writev(c->fd, iov, cnt);
		if (n < 0)
			return errno == EAGAIN || errno == EINTR;
		if ((size_t)n < rem) {
			c->tx_done += n;
			continue;
		}
		n -= rem;
		req = c->tx_req;
		c->tx_req = NULL;
		tx_done_req(c, req);
		for (int i = 0; i < nr && n > 0; i++) {
			size_t total = SD_HEADER_SIZE + batch[i]->rp.data_length;

			list_del(&batch[i]->r_list);
			if ((size_t)n < total) {
				/* Partly written: it goes on from here. */
				c->tx_req = batch[i];
				c->tx_done = n;
				memcpy(c->tx_hdr, hdrs[i], SD_HEADER_SIZE);
				break;
			}
			n -= total;
			tx_done_req(c, batch[i]);
		}
	}
}

/* Read what is available; the replies of requests answered meanwhile go
 * out together at the end. false: the connection died. */
static bool conn_rx(struct client_conn *c)
{
	bool ok;

	c->rx_batch = true;
	ok = conn_rx_loop(c);
	c->rx_batch = false;
	return ok && !c->dead && conn_tx(c);
}

static void conn_handler(int fd, uint32_t events, void *data)
{
	struct client_conn *c = data;

	c->refcnt++;
	if (events & EPOLLIN) {
		if (!conn_rx(c)) {
			conn_close(c);
			goto out;
		}
	}
	if (events & EPOLLOUT) {
		if (!conn_tx(c)) {
			conn_close(c);
			goto out;
		}
	}
	if (c->close_after_tx && !c->tx_req && list_empty(&c->tx_queue) &&
	    c->inflight == 0) {
		conn_close(c);
		goto out;
	}
	if ((events & (EPOLLHUP | EPOLLERR)) ||
	    ((events & EPOLLRDHUP) && !(events & EPOLLIN))) {
		conn_close(c);
		goto out;
	}
	conn_update_events(c);
out:
	conn_put(c);
}

void put_request(struct request *req)
{
	struct client_conn *c = req->conn;

	req->rp.epoch = sys_epoch();
	req->rp.opcode = req->rq.opcode;
	req->rp.id = req->rq.id;
	req->rp.proto_ver = 0;
	if (req->rp.data_length > req->data_alloc)
		req->rp.data_length = req->data_alloc;
	if (req->rp.result != SD_RES_SUCCESS &&
	    req->rp.result != SD_RES_BUFFER_SMALL &&
	    req->rq.opcode != SD_OP_OIDS_EXIST &&
	    req->rq.opcode != SD_OP_STAT_CLUSTER)
		req->rp.data_length = 0;
	if (req->complete) {
		req->complete(req);
		return;
	}
	if (c->dead) {
		free_request(req);
		c->inflight--;
		conn_put(c);
		return;
	}
	list_add_tail(&req->r_list, &c->tx_queue);
	if (c->rx_batch)
		return; /* conn_rx sends it */
	c->refcnt++;
	if (!conn_tx(c)) {
		conn_close(c);
		conn_put(c);
		return;
	}
	if (c->close_after_tx && !c->tx_req && list_empty(&c->tx_queue) &&
	    c->inflight == 0) {
		conn_close(c);
		conn_put(c);
		return;
	}
	conn_update_events(c);
	conn_put(c);
}

static bool listeners_paused;

static void resume_listeners(void *arg)
{
	if (!listeners_paused)
		return;
	listeners_paused = false;
	for (int i = 0; i < nr_listen_fds; i++)
		modify_event(listen_fds[i], EPOLLIN);
}

static void pause_listeners(void)
{
	static bool timer_added;

	if (listeners_paused)
		return;
	listeners_paused = true;
	for (int i = 0; i < nr_listen_fds; i++)
		modify_event(listen_fds[i], 0);
	if (!timer_added && add_timer(100, resume_listeners, NULL) >= 0)
		timer_added = true;
}

static void listen_handler(int fd, uint32_t events, void *data)
{
	bool is_unix = data != NULL;

	for (;;) {
		struct sockaddr_storage ss;
		socklen_t len = sizeof(ss);
		struct client_conn *c;
		int cfd, one = 1;

		cfd = accept4(fd, (struct sockaddr *)&ss, &len,
			      SOCK_NONBLOCK | SOCK_CLOEXEC);
		if (cfd < 0) {
			if (errno == EMFILE || errno == ENFILE) {
				/* Out of descriptors: stop accepting for a
				 * moment instead of spinning on the listener. */
				sd_err("accept failed: %m; pausing new connections");
				pause_listeners();
			} else if (errno != EAGAIN && errno != EINTR) {
				sd_err("accept failed: %m");
			}
			return;
		}
		c = xzalloc(sizeof(*c));
		c->fd = cfd;
		c->refcnt = 1;
		c->last_rx_ms = mono_ms();
		list_add_tail(&c->conn_list, &all_conns);
		INIT_LIST_HEAD(&c->tx_queue);
		if (is_unix) {
			snprintf(c->peer, sizeof(c->peer), "unix");
		} else {
			char host[64] = "?";

			setsockopt(cfd, IPPROTO_TCP, TCP_NODELAY, &one,
				   sizeof(one));
			getnameinfo((struct sockaddr *)&ss, len, host,
				    sizeof(host), NULL, 0, NI_NUMERICHOST);
			snprintf(c->peer, sizeof(c->peer), "%s", host);
		}
		if (register_event(cfd, EPOLLIN | EPOLLRDHUP, conn_handler,
				   c) < 0) {
			list_del(&c->conn_list);
			close(cfd);
			free(c);
		}
	}
}

static int add_listener(int fd, bool is_unix)
{
	if (nr_listen_fds >= (int)ARRAY_SIZE(listen_fds))
		return -ENOSPC;
	listen_fds[nr_listen_fds++] = fd;
	return register_event(fd, EPOLLIN, listen_handler,
			      is_unix ? (void *)1 : NULL);
}

static int listen_tcp(const char *bindaddr, int port)
{
	int fds[ARRAY_SIZE(listen_fds)], n, nr = 0;

	n = sd_listen_tcp(bindaddr, port, SOCK_NONBLOCK | SOCK_CLOEXEC, fds,
			  ARRAY_SIZE(fds) - nr_listen_fds, "");
	if (n < 0)
		return n;
	for (int i = 0; i < n; i++) {
		if (add_listener(fds[i], false) == 0)
			nr++;
		else
			close(fds[i]);
	}
	return nr ? 0 : -EADDRINUSE;
}

static int listen_unix(const char *path)
{
	struct sockaddr_un sun = { .sun_family = AF_UNIX };
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	unlink(path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0 ||
	    listen(fd, SOMAXCONN) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return add_listener(fd, true);
}

static void conn_handler(int fd, uint32_t events, void *data);
static void trim_pool(void *arg);

static void close_stalled(void *arg)
{
	struct client_conn *c, *tmp;
	uint64_t now = mono_ms();

	list_for_each_entry_safe(c, tmp, &all_conns, conn_list) {
		bool mid_request = c->hdr_done || c->rx_req || c->skip_req;

		if (!mid_request || c->budget_wait ||
		    now - c->last_rx_ms < STALL_MS)
			continue;
		sd_warn("%s: no data for %d s in the middle of a request, "
			"closing", c->peer, STALL_MS / 1000);
		c->refcnt++;
		conn_close(c);
		conn_put(c);
	}
}

/*
 * Memory was freed: let waiting connections try again, oldest first, each
 * once per wake-up (one that still does not fit queues up again).
 */
static void resume_handler(int fd, uint32_t events, void *data)
{
	struct list_head batch;
	uint64_t cnt;

	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		return;
	INIT_LIST_HEAD(&batch);
	while (!list_empty(&budget_waiters)) {
		struct list_node *n = budget_waiters.n.next;

		list_del(n);
		list_add_tail(n, &batch);
	}
	while (!list_empty(&batch)) {
		struct client_conn *c = list_entry(batch.n.next,
						   struct client_conn,
						   budget_list);

		list_del(&c->budget_list);
		c->budget_wait = false;
		if (!c->dead)
			conn_handler(c->fd, EPOLLIN, c);
		conn_put(c);
	}
}

int server_init(const char *bindaddr, int port, const char *sock_path)
{
	int ret;

	resume_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (resume_fd < 0 ||
	    register_event(resume_fd, EPOLLIN, resume_handler, NULL) < 0)
		return -errno;
	if (add_timer(5000, close_stalled, NULL) < 0 ||
	    add_timer(1000, trim_pool, NULL) < 0)
		return -errno;
	ret = listen_tcp(bindaddr, port);

	if (ret < 0)
		return ret;
	if (sock_path) {
		ret = listen_unix(sock_path);
		if (ret < 0)
			sd_warn("cannot listen on %s: %s", sock_path,
				strerror(-ret));
	}
	return 0;
}

void server_stop_listening(void)
{
	for (int i = 0; i < nr_listen_fds; i++) {
		unregister_event(listen_fds[i]);
		close(listen_fds[i]);
	}
	nr_listen_fds = 0;
}

/*
 * Object-sized payload buffers are recycled through a pool: a fresh 4 MiB
 * allocation costs a kernel page-zeroing pass that showed as 30% of a
 * gateway's CPU in bench/io-throughput.sh. The pool holds enough buffers
 * for a full pipeline while requests flow (128 MiB) and is emptied once no
 * buffer has been taken for a few seconds, so that an idle sheep is small.
 */
#define POOL_BUF_SIZE (4U << 20)
#define POOL_MAX 32
#define POOL_IDLE_MS 3000

static pthread_mutex_t pool_lock = PTHREAD_MUTEX_INITIALIZER;
static void *pool[POOL_MAX];
static int pool_nr;
static uint64_t pool_last_use;

void *sd_alloc_buffer(size_t len)
{
	void *p = NULL;

	if (len == POOL_BUF_SIZE) {
		pthread_mutex_lock(&pool_lock);
		if (pool_nr)
			p = pool[--pool_nr];
		pool_last_use = mono_ms();
		pthread_mutex_unlock(&pool_lock);
		if (p)
			return p;
	}
	if (posix_memalign(&p, 4096, len ? len : 1))
		return NULL;
	return p;
}

void sd_free_buffer(void *p, size_t len)
{
	if (p && len == POOL_BUF_SIZE) {
		pthread_mutex_lock(&pool_lock);
		if (pool_nr < POOL_MAX) {
			pool[pool_nr++] = p;
			p = NULL;
		}
		pthread_mutex_unlock(&pool_lock);
	}
	free(p);
}

/* Timer: give the pool's memory back once the traffic has stopped. */
static void trim_pool(void *arg)
{
	void *drop[POOL_MAX];
	int n = 0;

	pthread_mutex_lock(&pool_lock);
	if (mono_ms() - pool_last_use >= POOL_IDLE_MS) {
		while (pool_nr)
			drop[n++] = pool[--pool_nr];
	}
	pthread_mutex_unlock(&pool_lock);
	while (n)
		free(drop[--n]);
}
