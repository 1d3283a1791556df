/*
 * Connections from this sheep to its peers, kept open and reused: a small
 * stack of idle sockets per peer. A socket is owned by one request at a
 * time; one that failed is closed rather than returned.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "sheep.h"
#include "sheepdog/client.h"

#define MAX_IDLE_PER_PEER 16

struct peer_fds {
	struct node_id nid;
	int idle[MAX_IDLE_PER_PEER];
	int nr_idle;
	struct list_node list;
};

static pthread_mutex_t fds_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(peers);

static struct peer_fds *find_peer(const struct node_id *nid, bool create)
{
	struct peer_fds *p;

	list_for_each_entry(p, &peers, list)
		if (node_id_eq(&p->nid, nid))
			return p;
	if (!create)
		return NULL;
	p = xzalloc(sizeof(*p));
	p->nid = *nid;
	list_add(&p->list, &peers);
	return p;
}

int sockfd_get(const struct node_id *nid)
{
	struct peer_fds *p;
	char host[64];
	int fd = -1;

	pthread_mutex_lock(&fds_lock);
	p = find_peer(nid, true);
	if (p->nr_idle)
		fd = p->idle[--p->nr_idle];
	pthread_mutex_unlock(&fds_lock);
	if (fd >= 0)
		return fd;
	addr_to_str(nid->addr, host, sizeof(host));
	fd = sd_connect(host, nid->port);
	if (fd < 0)
		sd_debug("cannot connect to %s:%u: %s", host, nid->port,
			 strerror(-fd));
	return fd;
}

void sockfd_put(const struct node_id *nid, int fd)
{
	struct peer_fds *p;

	pthread_mutex_lock(&fds_lock);
	p = find_peer(nid, true);
	if (p->nr_idle < MAX_IDLE_PER_PEER) {
		p->idle[p->nr_idle++] = fd;
		fd = -1;
	}
	pthread_mutex_unlock(&fds_lock);
	if (fd >= 0)
		close(fd);
}

void sockfd_del(const struct node_id *nid, int fd)
{
	close(fd);
}

int peer_exec(const struct node_id *nid, struct sd_req *req, const void *wdata,
	      void *rdata, uint32_t rlen, struct sd_rsp *rsp)
{
	int fd = sockfd_get(nid), ret;

	if (fd < 0)
		return SD_RES_NETWORK_ERROR;
	ret = sd_exec(fd, req, wdata, rdata, rlen, rsp);
	if (ret < 0) {
		/* A cached socket may have gone stale: one fresh try. */
		sockfd_del(nid, fd);
		fd = sockfd_get(nid);
		if (fd < 0)
			return SD_RES_NETWORK_ERROR;
		ret = sd_exec(fd, req, wdata, rdata, rlen, rsp);
		if (ret < 0) {
			sockfd_del(nid, fd);
			return SD_RES_NETWORK_ERROR;
		}
	}
	sockfd_put(nid, fd);
	return rsp->result;
}
