/*
 * Pipelined READ_PEERs from one thread's event loop (the NBD server's fast
 * read path): one connection per peer, many requests in flight on it,
 * replies matched by id. Anything but a clean success is handed back to
 * the caller, which takes the full gateway path (retries across epochs,
 * other holders, recovery); so this never has to be clever.
 */
#ifndef SHEEP_PEER_READS_H
#define SHEEP_PEER_READS_H

#include <poll.h>
#include <stdbool.h>
#include <stdint.h>

#include "sheepdog/layout.h"

/* The largest read sent this way (bigger ones gain little from it). */
#define PEER_READS_MAX_LEN (64U << 10)
/* Peers a thread keeps a connection to. */
#define PEER_READS_MAX_PEERS 16

struct peer_read {
	uint32_t id;
	uint32_t len;
	void *buf;
	struct peer_read *next;
};

struct peer_reads;

/* done(pr, result, arg): SD_RES_SUCCESS with len bytes at buf, or the
 * reason it failed (SD_RES_NETWORK_ERROR when the connection did). */
struct peer_reads *peer_reads_new(void (*done)(struct peer_read *pr,
					       int result, void *arg),
				  void *arg);
/* Queue a read of oid from nid under epoch; false if nid cannot be
 * reached now (nothing queued). Sent by peer_reads_flush. */
bool peer_reads_add(struct peer_reads *prs, const struct node_id *nid,
		    uint32_t epoch, uint64_t oid, uint64_t offset,
		    struct peer_read *pr);
/* Send what was queued. */
void peer_reads_flush(struct peer_reads *prs);
/* Reads in flight. */
unsigned peer_reads_pending(const struct peer_reads *prs);
/* Fill pfd (at most max) with the connections that have reads in flight. */
int peer_reads_pollfds(const struct peer_reads *prs, struct pollfd *pfd,
		       int max);
/* Take the replies that arrived on the polled connections. */
void peer_reads_handle(struct peer_reads *prs, const struct pollfd *pfd,
		       int nr);
/* Fail every read in flight (done with SD_RES_NETWORK_ERROR), close. */
void peer_reads_abort(struct peer_reads *prs);
void peer_reads_free(struct peer_reads *prs);

#endif
