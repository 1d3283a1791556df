/*
 * Pipelined READ_PEERs from one event loop: see peer_reads.h.
 *
 * Each peer gets one connection, owned by the calling thread. Requests are
 * 48-byte headers batched in a send buffer and written together; replies
 * (header + data) are read in big chunks into a receive buffer and copied
 * out, so a burst of reads costs a few system calls rather than several
 * each, and no thread hand-off. A reply that does not match a request in
 * flight, or a data length longer than asked, means the stream cannot be
 * trusted: the connection is closed and its reads fail back to the caller.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "peer_reads.h"
#include "sheepdog/client.h"
#include "sheepdog/log.h"
#include "sheepdog/proto.h"
#include "sheepdog/util.h"

/* Room for the largest reply: what is left of a reply is always moved to
 * the front. Allocated on a peer's first use: a connection to every node
 * of a big cluster costs 64 KiB each. */
#define RX_CAP (PEER_READS_MAX_LEN + SD_HEADER_SIZE)
/* After a failed connect, the peer is left alone this long. */
#define RETRY_MS 1000

struct pr_conn {
	struct node_id nid;
	int fd;
	uint64_t retry_ms; /* no connect before this (CLOCK_MONOTONIC) */
	uint8_t *tx;
	size_t tx_len, tx_cap;
	uint8_t *rx;
	size_t rx_len;
	struct peer_read *head, **tail; /* in flight, oldest first */
	unsigned nr;
};

struct peer_reads {
	struct pr_conn conns[PEER_READS_MAX_PEERS];
	int nr_conns;
	uint32_t next_id;
	unsigned pending;
	void (*done)(struct peer_read *pr, int result, void *arg);
	void *arg;
};


struct peer_reads *peer_reads_new(void (*done)(struct peer_read *pr,
					       int result, void *arg),
				  void *arg)
{
	struct peer_reads *prs = xzalloc(sizeof(*prs));

	prs->done = done;
	prs->arg = arg;
	return prs;
}

/* Close pc and fail what it had in flight. */
static void conn_fail(struct peer_reads *prs, struct pr_conn *pc)
{
	struct peer_read *pr = pc->head;

	if (pc->fd >= 0)
		close(pc->fd);
	pc->fd = -1;
	pc->tx_len = pc->rx_len = 0;
	pc->head = NULL;
	pc->tail = &pc->head;
	prs->pending -= pc->nr;
	pc->nr = 0;
	while (pr) {
		struct peer_read *next = pr->next;

		prs->done(pr, SD_RES_NETWORK_ERROR, prs->arg);
		pr = next;
	}
}

static struct pr_conn *get_conn(struct peer_reads *prs,
				const struct node_id *nid)
{
	struct pr_conn *pc = NULL;
	char host[64];
	int fd;

	for (int i = 0; i < prs->nr_conns; i++)
		if (node_id_eq(&prs->conns[i].nid, nid)) {
			pc = &prs->conns[i];
			break;
		}
	if (!pc) {
		if (prs->nr_conns == PEER_READS_MAX_PEERS) {
			/* Reuse an idle slot of a peer long gone. */
			for (int i = 0; i < prs->nr_conns && !pc; i++)
				if (!prs->conns[i].nr)
					pc = &prs->conns[i];
			if (!pc)
				return NULL;
			if (pc->fd >= 0)
				close(pc->fd);
		} else {
			pc = &prs->conns[prs->nr_conns++];
			pc->tx_cap = 64 * SD_HEADER_SIZE;
			pc->tx = xmalloc(pc->tx_cap);
			pc->rx = xmalloc(RX_CAP);
		}
		pc->nid = *nid;
		pc->fd = -1;
		pc->retry_ms = 0;
		pc->head = NULL;
		pc->tail = &pc->head;
		pc->nr = 0;
		pc->tx_len = pc->rx_len = 0;
	}
	if (pc->fd >= 0)
		return pc;
	if (mono_ms() < pc->retry_ms)
		return NULL;
	addr_to_str(nid->addr, host, sizeof(host));
	fd = sd_connect(host, nid->port);
	if (fd < 0) {
		sd_debug("cannot connect to %s:%u: %s", host, nid->port,
			 strerror(-fd));
		pc->retry_ms = mono_ms() + RETRY_MS;
		return NULL;
	}
	pc->fd = fd;
	return pc;
}

bool peer_reads_add(struct peer_reads *prs, const struct node_id *nid,
		    uint32_t epoch, uint64_t oid, uint64_t offset,
		    struct peer_read *pr)
{
	struct pr_conn *pc;
	struct sd_req rq;

	if (pr->len > PEER_READS_MAX_LEN)
		return false;
	pc = get_conn(prs, nid);
	if (!pc)
		return false;
	sd_init_req(&rq, SD_OP_READ_PEER);
	rq.proto_ver = SD_SHEEP_PROTO_VER;
	rq.epoch = epoch;
	rq.id = pr->id = ++prs->next_id;
	rq.data_length = pr->len;
	rq.obj.oid = oid;
	rq.obj.offset = offset;
	if (pc->tx_len + SD_HEADER_SIZE > pc->tx_cap) {
		pc->tx_cap *= 2;
		pc->tx = xrealloc(pc->tx, pc->tx_cap);
	}
	sd_req_encode(&rq, pc->tx + pc->tx_len);
	pc->tx_len += SD_HEADER_SIZE;
	pr->next = NULL;
	*pc->tail = pr;
	pc->tail = &pr->next;
	pc->nr++;
	prs->pending++;
	return true;
}

void peer_reads_flush(struct peer_reads *prs)
{
	for (int i = 0; i < prs->nr_conns; i++) {
		struct pr_conn *pc = &prs->conns[i];
		size_t done = 0;

		while (done < pc->tx_len) {
			/* Bounded by the reads in flight (64 x 48 bytes): it
			 * fits in the socket buffer, so this does not wait on
			 * the peer. */
			ssize_t n = send(pc->fd, pc->tx + done,
					 pc->tx_len - done, MSG_NOSIGNAL);

			if (n < 0 && errno == EINTR)
				continue;
			if (n <= 0) {
				sd_debug("send to a peer failed: %m");
				conn_fail(prs, pc);
				break;
			}
			done += n;
		}
		pc->tx_len = 0;
	}
}

unsigned peer_reads_pending(const struct peer_reads *prs)
{
	return prs->pending;
}

int peer_reads_pollfds(const struct peer_reads *prs, struct pollfd *pfd,
		       int max)
{
	int n = 0;

	for (int i = 0; i < prs->nr_conns && n < max; i++)
		if (prs->conns[i].nr) {
			pfd[n].fd = prs->conns[i].fd;
			pfd[n].events = POLLIN;
			pfd[n].revents = 0;
			n++;
		}
	return n;
}

/* Where the request in flight on pc with this id is linked, or NULL. */
static struct peer_read **find(struct pr_conn *pc, uint32_t id)
{
	for (struct peer_read **pp = &pc->head; *pp; pp = &(*pp)->next)
		if ((*pp)->id == id)
			return pp;
	return NULL;
}

/* Unlink the request at *pp from pc. */
static void unlink_at(struct pr_conn *pc, struct peer_read **pp)
{
	struct peer_read *pr = *pp;

	*pp = pr->next;
	if (pc->tail == &pr->next)
		pc->tail = pp;
	pc->nr--;
}

/* Read and hand out what pc received; false if the stream is broken. */
static bool conn_rx(struct peer_reads *prs, struct pr_conn *pc)
{
	size_t pos = 0;
	ssize_t n;

	n = recv(pc->fd, pc->rx + pc->rx_len, RX_CAP - pc->rx_len,
		 MSG_DONTWAIT);
	if (n == 0)
		return false;
	if (n < 0)
		return errno == EAGAIN || errno == EINTR;
	pc->rx_len += n;
	while (pc->rx_len - pos >= SD_HEADER_SIZE) {
		struct peer_read *pr, **pp;
		struct sd_rsp rsp;

		sd_rsp_decode(pc->rx + pos, &rsp);
		pp = find(pc, rsp.id);
		pr = pp ? *pp : NULL;
		if (!pr || rsp.data_length > pr->len) {
			sd_warn("a peer answered READ_PEER id %" PRIu32
				" with %" PRIu32 " bytes; dropping the "
				"connection",
				rsp.id, rsp.data_length);
			return false;
		}
		if (pc->rx_len - pos < SD_HEADER_SIZE + rsp.data_length)
			break;
		unlink_at(pc, pp);
		prs->pending--;
		if (rsp.result == SD_RES_SUCCESS) {
			memcpy(pr->buf, pc->rx + pos + SD_HEADER_SIZE,
			       rsp.data_length);
			/* Buffers are reused: never hand out what a short
			 * reply did not fill. */
			memset((uint8_t *)pr->buf + rsp.data_length, 0,
			       pr->len - rsp.data_length);
		}
		pos += SD_HEADER_SIZE + rsp.data_length;
		prs->done(pr, rsp.result, prs->arg);
	}
	memmove(pc->rx, pc->rx + pos, pc->rx_len - pos);
	pc->rx_len -= pos;
	return true;
}

void peer_reads_handle(struct peer_reads *prs, const struct pollfd *pfd,
		       int nr)
{
	for (int k = 0; k < nr; k++) {
		if (!pfd[k].revents)
			continue;
		for (int i = 0; i < prs->nr_conns; i++) {
			struct pr_conn *pc = &prs->conns[i];

			if (pc->fd != pfd[k].fd)
				continue;
			if (!conn_rx(prs, pc))
				conn_fail(prs, pc);
			break;
		}
	}
}

void peer_reads_abort(struct peer_reads *prs)
{
	for (int i = 0; i < prs->nr_conns; i++)
		conn_fail(prs, &prs->conns[i]);
}

void peer_reads_free(struct peer_reads *prs)
{
	if (!prs)
		return;
	peer_reads_abort(prs);
	for (int i = 0; i < prs->nr_conns; i++) {
		free(prs->conns[i].tx);
		free(prs->conns[i].rx);
	}
	free(prs);
}
