/*
 * Blocking client side of the wire protocol, used by dog, by tests and by
 * the daemon's own peer requests: connect, send one request, read its reply.
 * Errors are negative errno values; protocol results come back in rsp.
 */
#ifndef SHEEPDOG_CLIENT_H
#define SHEEPDOG_CLIENT_H

#include <stddef.h>
#include <stdint.h>

#include "sheepdog/proto.h"

/* Connect over TCP (host name or address) with TCP_NODELAY. fd or -errno. */
int sd_connect(const char *host, int port);
/*
 * Listen on port at address (NULL: every address, IPv4 and IPv6 apart),
 * with SO_REUSEADDR; sock_flags are added to SOCK_STREAM (SOCK_NONBLOCK,
 * SOCK_CLOEXEC). Up to max descriptors go to fds. The number of them, or
 * -errno when none could be opened; each failure is logged, prefixed with
 * who.
 */
int sd_listen_tcp(const char *address, int port, int sock_flags, int *fds,
		  int max, const char *who);
/* Connect to a sheep's unix socket. fd or -errno. */
int sd_connect_unix(const char *path);

/* Full read/write loops that retry on EINTR. 0 or -errno (-ECONNRESET on EOF). */
int sd_read_full(int fd, void *buf, size_t len);
int sd_write_full(int fd, const void *buf, size_t len);

/*
 * Send req (with req->data_length bytes from wdata if SD_FLAG_CMD_WRITE),
 * read the reply header into rsp and up to rlen payload bytes into rdata
 * (extra payload beyond rlen is read and discarded). Returns 0 when a reply
 * was read (check rsp->result), -errno on a transport failure. For requests
 * that both write and read (PIGGYBACK), rdata may equal wdata.
 */
int sd_exec(int fd, const struct sd_req *req, const void *wdata, void *rdata,
	    size_t rlen, struct sd_rsp *rsp);

/* Send only / receive only, for pipelined clients. */
int sd_send_req(int fd, const struct sd_req *req, const void *wdata);
int sd_recv_rsp(int fd, struct sd_rsp *rsp, void *rdata, size_t rlen);

#endif
