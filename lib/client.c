/*
 * The blocking client side of the wire protocol: connecting over TCP or the
 * unix socket, moving whole buffers across a socket, and one request/reply
 * exchange. It knows nothing about what an opcode means; callers look at
 * rsp->result. Transport failures come back as negative errno values.
 */
#include <errno.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <sys/un.h>
#include <unistd.h>

#include "sheepdog/client.h"
#include "sheepdog/log.h"

int sd_connect(const char *host, int port)
{
	struct addrinfo hints = {0}, *res, *ai;
	char service[16];
	int fd = -1, ret, err = EHOSTUNREACH;

	if (port <= 0 || port > 65535)
		return -EINVAL;
	snprintf(service, sizeof(service), "%d", port);
	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	ret = getaddrinfo(host, service, &hints, &res);
	if (ret)
		return ret == EAI_SYSTEM && errno ? -errno : -EHOSTUNREACH;

	for (ai = res; ai; ai = ai->ai_next) {
		int one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | SOCK_CLOEXEC,
			    ai->ai_protocol);
		if (fd < 0) {
			err = errno;
			continue;
		}
		if (setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one,
			       sizeof(one)) == 0 &&
		    connect(fd, ai->ai_addr, ai->ai_addrlen) == 0)
			break;
		err = errno;
		close(fd);
		fd = -1;
	}
	freeaddrinfo(res);
	return fd >= 0 ? fd : -err;
}

int sd_connect_unix(const char *path)
{
	struct sockaddr_un sun = {.sun_family = AF_UNIX};
	int fd;

	if (strlen(path) >= sizeof(sun.sun_path))
		return -ENAMETOOLONG;
	strcpy(sun.sun_path, path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sun, sizeof(sun)) < 0) {
		int err = errno;

		close(fd);
		return -err;
	}
	return fd;
}

int sd_read_full(int fd, void *buf, size_t len)
{
	uint8_t *p = buf;

	while (len) {
		ssize_t n = read(fd, p, len);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		if (n == 0)
			return -ECONNRESET;
		p += n;
		len -= n;
	}
	return 0;
}

/* Write an iovec array completely; MSG_NOSIGNAL keeps a dead peer from
 * raising SIGPIPE, falling back to writev() for non-socket fds. */
static int writev_full(int fd, struct iovec *iov, int cnt)
{
	while (cnt) {
		struct msghdr msg = {.msg_iov = iov, .msg_iovlen = cnt};
		ssize_t n = sendmsg(fd, &msg, MSG_NOSIGNAL);

		if (n < 0 && errno == ENOTSOCK)
			n = writev(fd, iov, cnt);
		if (n < 0) {
			if (errno == EINTR)
				continue;
			return -errno;
		}
		while (cnt && (size_t)n >= iov->iov_len) {
			n -= iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= n;
		}
	}
	return 0;
}

int sd_write_full(int fd, const void *buf, size_t len)
{
	struct iovec iov = {.iov_base = (void *)buf, .iov_len = len};

	return writev_full(fd, &iov, len ? 1 : 0);
}

int sd_send_req(int fd, const struct sd_req *req, const void *wdata)
{
	uint8_t hdr[SD_HEADER_SIZE];
	struct iovec iov[2];
	int cnt = 1;

	sd_req_encode(req, hdr);
	iov[0].iov_base = hdr;
	iov[0].iov_len = sizeof(hdr);
	if ((req->flags & SD_FLAG_CMD_WRITE) && req->data_length) {
		if (!wdata)
			return -EINVAL;
		iov[1].iov_base = (void *)wdata;
		iov[1].iov_len = req->data_length;
		cnt = 2;
	}
	return writev_full(fd, iov, cnt);
}

/* Read and throw away len bytes of reply payload. */
static int discard_full(int fd, size_t len)
{
	uint8_t sink[4096];

	while (len) {
		size_t n = len < sizeof(sink) ? len : sizeof(sink);
		int ret = sd_read_full(fd, sink, n);

		if (ret)
			return ret;
		len -= n;
	}
	return 0;
}

int sd_recv_rsp(int fd, struct sd_rsp *rsp, void *rdata, size_t rlen)
{
	uint8_t hdr[SD_HEADER_SIZE];
	size_t keep;
	int ret;

	ret = sd_read_full(fd, hdr, sizeof(hdr));
	if (ret)
		return ret;
	sd_rsp_decode(hdr, rsp);

	keep = rdata ? (rsp->data_length < rlen ? rsp->data_length : rlen) : 0;
	if (keep) {
		ret = sd_read_full(fd, rdata, keep);
		if (ret)
			return ret;
	}
	return discard_full(fd, rsp->data_length - keep);
}

int sd_exec(int fd, const struct sd_req *req, const void *wdata, void *rdata,
	    size_t rlen, struct sd_rsp *rsp)
{
	int ret = sd_send_req(fd, req, wdata);

	if (ret)
		return ret;
	return sd_recv_rsp(fd, rsp, rdata, rlen);
}

int sd_listen_tcp(const char *address, int port, int sock_flags, int *fds,
		  int max, const char *who)
{
	struct addrinfo hints = {0}, *res, *ai;
	char pstr[16];
	int ret, nr = 0, err = EADDRINUSE;

	hints.ai_family = AF_UNSPEC;
	hints.ai_socktype = SOCK_STREAM;
	hints.ai_flags = AI_PASSIVE | AI_NUMERICHOST;
	snprintf(pstr, sizeof(pstr), "%d", port);
	ret = getaddrinfo(address, pstr, &hints, &res);
	if (ret) {
		sd_err("%sinvalid address %s: %s", who, address ?: "(any)",
		       gai_strerror(ret));
		return -EINVAL;
	}
	for (ai = res; ai && nr < max; ai = ai->ai_next) {
		int fd, one = 1;

		fd = socket(ai->ai_family, ai->ai_socktype | sock_flags, 0);
		if (fd < 0)
			continue;
		setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
		if (ai->ai_family == AF_INET6)
			setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &one,
				   sizeof(one));
		if (bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 ||
		    listen(fd, SOMAXCONN) < 0) {
			err = errno;
			sd_err("%scannot listen on %s port %d: %m", who,
			       ai->ai_family == AF_INET6 ? "IPv6" : "IPv4",
			       port);
			close(fd);
			continue;
		}
		fds[nr++] = fd;
	}
	freeaddrinfo(res);
	return nr ? nr : -err;
}
