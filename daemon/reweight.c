/*
 * REWEIGHT (dog cluster reweight): every node measures its capacity again
 * and, if it moved by 1% or more from what the node announced, announces
 * the new value; the node update bumps the epoch everywhere, and with auto
 * vnodes the ring follows the new weights. Smaller moves are ignored so
 * that a reweight does not cost a recovery for noise.
 *
 * Capacity is the free space of the store's file system plus what the
 * store's own files occupy: the space this node could give to objects.
 * Counting only free space would shrink a node's weight as it fills up and
 * push data away from nodes for holding data. The file walk runs on a
 * worker; the announcement is made on the main thread like every other
 * change of the cluster state.
 */
#include <errno.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "sheep.h"

struct reweight {
	struct work work;
	int result;	/* 0 or -errno */
	uint64_t space; /* the new measurement */
};

/* The walk's sum: nftw's callback takes no argument of ours. */
static __thread uint64_t store_used;

static int add_file_size(const char *path, const struct stat *st, int type,
			 struct FTW *ftw)
{
	if (type == FTW_F)
		store_used += (uint64_t)st->st_blocks * 512;
	return 0;
}

/* Free space plus the bytes of every file under BASE/obj (live objects
 * and the .stale copies that recovery will purge). */
static int measure_space(uint64_t *space)
{
	char obj_dir[4200];
	uint64_t size, avail;
	int ret = store_space(&size, &avail);

	if (ret < 0)
		return ret;
	snprintf(obj_dir, sizeof(obj_dir), "%s/obj", sys->base_dir);
	store_used = 0;
	if (nftw(obj_dir, add_file_size, 16, FTW_PHYS | FTW_MOUNT) < 0)
		return -errno;
	*space = avail + store_used;
	return 0;
}

static void reweight_work(struct work *w)
{
	struct reweight *rw = container_of(w, struct reweight, work);

	rw->result = measure_space(&rw->space);
}

/* Keep the new value across restarts: sheep.c reads it from config. */
static void persist_space(uint64_t space)
{
	struct sheepdog_config c;

	if (config_load(&c) < 0)
		return; /* not formatted yet: the value is measured at start */
	c.space = space;
	if (config_save(&c) < 0)
		sd_err("cannot save the new capacity in %s/config: %m",
		       sys->base_dir);
}

static bool moved_one_percent(uint64_t old, uint64_t new)
{
	uint64_t diff = old > new ? old - new : new - old;

	return (unsigned __int128)diff * 100 >= old;
}

static void reweight_done(struct work *w)
{
	struct reweight *rw = container_of(w, struct reweight, work);
	uint64_t old = sys->this_node.space;
	int ret;

	if (rw->result < 0) {
		sd_err("reweight: cannot measure the store in %s: %s",
		       sys->base_dir, strerror(-rw->result));
		goto out;
	}
	if (!moved_one_percent(old, rw->space)) {
		sd_info("reweight: capacity %" PRIu64
			" bytes, announced %" PRIu64
			", less than 1%% apart: unchanged",
			rw->space, old);
		goto out;
	}
	sd_notice("reweight: capacity %" PRIu64 " bytes, was %" PRIu64
		  "; announcing it (epoch %" PRIu32 ")",
		  rw->space, old, sys_epoch());
	sys->this_node.space = rw->space;
	persist_space(rw->space);
	ret = group_update_node(&sys->this_node);
	if (ret < 0)
		sd_err("reweight: cannot announce the new capacity: %s",
		       strerror(-ret));
out:
	free(rw);
}

/* Every node, main thread, in total order. The requester answers at once;
 * the measurement and the epoch it may cause follow. */
int cluster_reweight_main(const struct sd_req *req, struct sd_rsp *rsp,
			  void *data, const struct sd_node *sender)
{
	struct reweight *rw;

	if (sys->gateway_only)
		return SD_RES_SUCCESS; /* no store, nothing to weigh */
	rw = xzalloc(sizeof(*rw));
	rw->work.fn = reweight_work;
	rw->work.done = reweight_done;
	queue_work(bg_wq, &rw->work);
	return SD_RES_SUCCESS;
}
