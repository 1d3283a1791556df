/*
 * The ring of the current epoch, published for workers. The main thread
 * swaps in a new vnode_info on every epoch change; readers take a reference
 * under a mutex held only for the pointer copy, so nobody waits on I/O.
 * Workers that need the next epoch (a peer told them theirs is old) wait on
 * a condition variable with a deadline.
 */
#include <errno.h>
#include <stdlib.h>
#include <time.h>

#include "sheep.h"

static pthread_mutex_t vi_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t vi_cond = PTHREAD_COND_INITIALIZER;
static struct vnode_info *current_vi;

struct vnode_info *get_vnode_info(void)
{
	struct vnode_info *vi;

	pthread_mutex_lock(&vi_lock);
	vi = current_vi;
	if (vi)
		atomic_fetch_add(&vi->refcnt, 1);
	pthread_mutex_unlock(&vi_lock);
	return vi;
}

void put_vnode_info(struct vnode_info *vi)
{
	if (!vi)
		return;
	if (atomic_fetch_sub(&vi->refcnt, 1) == 1) {
		ring_free(vi->ring);
		free(vi);
	}
}

void set_vnode_info(uint32_t epoch, const struct sd_node *nodes, int nr)
{
	struct vnode_info *vi = xzalloc(sizeof(*vi)), *old;

	vi->ring = ring_build(nodes, nr);
	if (!vi->ring) {
		sd_emerg("cannot build the ring of epoch %u", epoch);
		abort();
	}
	vi->epoch = epoch;
	atomic_init(&vi->refcnt, 1);
	pthread_mutex_lock(&vi_lock);
	old = current_vi;
	current_vi = vi;
	pthread_cond_broadcast(&vi_cond);
	pthread_mutex_unlock(&vi_lock);
	put_vnode_info(old);
	wake_epoch_waiters();
}

static void deadline(struct timespec *ts, int timeout_ms)
{
	clock_gettime(CLOCK_REALTIME, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

bool wait_epoch_change(uint32_t epoch, int timeout_ms)
{
	struct timespec ts;
	bool changed;

	deadline(&ts, timeout_ms);
	pthread_mutex_lock(&vi_lock);
	while (current_vi && current_vi->epoch == epoch)
		if (pthread_cond_timedwait(&vi_cond, &vi_lock, &ts) == ETIMEDOUT)
			break;
	changed = current_vi && current_vi->epoch != epoch;
	pthread_mutex_unlock(&vi_lock);
	return changed;
}
