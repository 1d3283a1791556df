/*
 * "dog cluster": format a cluster (MAKE_FS), show its status and epoch
 * history (STAT_CLUSTER), shut it down, and the operator's controls of
 * recovery and placement: recover force|enable|disable, reweight and
 * alter-copy. Formatting checks first that the -V choice agrees with the
 * sheep's vnode strategy and asks before it wipes a cluster that still
 * holds VDIs.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h> /* optind */

#include "dog.h"

#define DEFAULT_STORE "plain"

static struct cluster_cmd_data {
	char store[SD_STORE_NAME_LEN];
	uint8_t copies;
	uint8_t copy_policy;
	uint8_t block_size_shift;
	bool force;
	bool strict;
	bool use_lock;
	bool recycle_vid;
	bool avoid_diskfull;
	bool fixed_vnodes;
	bool show_diff;
} cluster_cmd;

static const char format_prompt[] =
    "    __\n"
    "   ()'`;\n"
    "   /\\|`\n"
    "  /  |   Caution! The cluster is not empty.\n"
    "(/_)_|_  Are you sure you want to continue? [yes/no]: ";

/* Every storage node's vnode strategy must match the -V choice. */
static int check_vnode_strategy(void)
{
	size_t len = cluster_info_size(SD_MAX_NODES);
	uint8_t *buf = xmalloc(len);
	int ret = EXIT_SUCCESS;

	for (int i = 0; i < sd_nodes_nr; i++) {
		struct cluster_info ci = { 0 }; /* nodes NULL: not wanted */
		struct sd_req req;
		struct sd_rsp rsp;
		bool auto_vnodes;

		sd_init_req(&req, SD_OP_CLUSTER_INFO);
		req.data_length = len;
		if (dog_exec_node(&sd_nodes[i].nid, &req, NULL, buf, len,
				  &rsp) < 0) {
			sd_err("Fail to execute request");
			ret = EXIT_FAILURE;
			break;
		}
		if (rsp.result != SD_RES_SUCCESS) {
			sd_err("%s", sd_strerror(rsp.result));
			ret = EXIT_FAILURE;
			break;
		}
		if (cluster_info_decode(buf, MIN(len, rsp.data_length), &ci)) {
			sd_err("%s", sd_strerror(SD_RES_INVALID_PARMS));
			ret = EXIT_FAILURE;
			break;
		}
		if (sd_nodes[i].nr_vnodes == 0)
			continue;
		auto_vnodes = ci.flags & SD_CLUSTER_FLAG_AUTO_VNODES;
		if (auto_vnodes && cluster_cmd.fixed_vnodes) {
			sd_err(
			    "Can not apply the option of '-V', because there "
			    "are vnode strategy of sheep is auto in the "
			    "cluster");
			ret = EXIT_FAILURE;
			break;
		}
		if (!auto_vnodes && !cluster_cmd.fixed_vnodes) {
			sd_err("Need to specify the option of '-V', because "
			       "there are vnode strategy of sheep is fixed in "
			       "the cluster");
			ret = EXIT_FAILURE;
			break;
		}
	}
	free(buf);
	return ret;
}

static int list_stores(void)
{
	char buf[512] = "";
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_GET_STORE_LIST);
	req.data_length = sizeof(buf) - 1;
	if (dog_exec(&req, NULL, buf, sizeof(buf) - 1, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Restore failed: %s", sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	printf("Available stores:\n");
	printf("---------------------------------------\n");
	printf("%s\n", buf);
	return EXIT_SYSFAIL;
}

static bool cluster_has_vdis(const uint8_t *bitmap)
{
	for (size_t i = 0; i < SD_VDI_BITMAP_SIZE; i++)
		if (bitmap[i])
			return true;
	return false;
}

static int cluster_format(int argc, char **argv)
{
	const char *store =
	    cluster_cmd.store[0] ? cluster_cmd.store : DEFAULT_STORE;
	uint8_t *bitmap;
	struct sd_req req;
	struct sd_rsp rsp;
	int ret;

	ret = check_vnode_strategy();
	if (ret != EXIT_SUCCESS)
		return ret;

	bitmap = xmalloc(SD_VDI_BITMAP_SIZE);
	if (dog_read_vdi_bitmap(SD_OP_READ_VDIS, bitmap) < 0) {
		free(bitmap);
		return EXIT_SYSFAIL;
	}
	if (!cluster_cmd.force && cluster_has_vdis(bitmap))
		confirm(format_prompt);
	free(bitmap);

	sd_init_req(&req, SD_OP_MAKE_FS);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = strlen(store) + 1;
	req.cluster.copies = cluster_cmd.copies;
	req.cluster.copy_policy = cluster_cmd.copy_policy;
	req.cluster.block_size_shift = cluster_cmd.block_size_shift;
	req.cluster.ctime = sd_time_now();
	if (cluster_cmd.strict)
		req.cluster.flags |= SD_CLUSTER_FLAG_STRICT;
	if (cluster_cmd.use_lock)
		req.cluster.flags |= SD_CLUSTER_FLAG_USE_LOCK;
	if (cluster_cmd.recycle_vid)
		req.cluster.flags |= SD_CLUSTER_FLAG_RECYCLE_VID;
	if (cluster_cmd.avoid_diskfull)
		req.cluster.flags |= SD_CLUSTER_FLAG_AVOID_DISKFULL;
	if (!cluster_cmd.fixed_vnodes)
		req.cluster.flags |= SD_CLUSTER_FLAG_AUTO_VNODES;

	printf("using backend %s store\n", store);
	fflush(stdout);
	if (dog_exec(&req, store, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Format failed: %s", sd_strerror(rsp.result));
		if (rsp.result == SD_RES_NO_STORE)
			return list_stores();
		return EXIT_SYSFAIL;
	}
	return EXIT_SUCCESS;
}

/* One STAT_CLUSTER record: its header and the nodes it lists. */
struct epoch_record {
	struct epoch_log log;
	struct sd_node *nodes;
};

static bool record_has_node(const struct epoch_record *r,
			    const struct node_id *nid)
{
	for (uint32_t i = 0; i < r->log.nr_nodes; i++)
		if (node_id_eq(&r->nodes[i].nid, nid))
			return true;
	return false;
}

/* "+h:p" for nodes in r but not in older, "-h:p" for the reverse. */
static void print_epoch_diff(const struct epoch_record *r,
			     const struct epoch_record *older)
{
	const char *sep = "";
	char name[64];

	for (uint32_t i = 0; i < r->log.nr_nodes; i++) {
		if (record_has_node(older, &r->nodes[i].nid))
			continue;
		node_addr_to_str(&r->nodes[i].nid, name, sizeof(name));
		printf("%s+%s", sep, name);
		sep = ", ";
	}
	for (uint32_t i = 0; i < older->log.nr_nodes; i++) {
		if (record_has_node(r, &older->nodes[i].nid))
			continue;
		node_addr_to_str(&older->nodes[i].nid, name, sizeof(name));
		printf("%s-%s", sep, name);
		sep = ", ";
	}
}

static void print_epoch_nodes(const struct epoch_record *r)
{
	char name[64];

	for (uint32_t i = 0; i < r->log.nr_nodes; i++) {
		node_addr_to_str(&r->nodes[i].nid, name, sizeof(name));
		printf("%s%s:%u", i ? ", " : "", name, r->nodes[i].nr_vnodes);
	}
}

static void print_epoch(const struct epoch_record *recs, int nr, int i)
{
	const struct epoch_record *r = &recs[i];
	char when[128];
	time_t t = (time_t)r->log.time;
	struct tm tm;

	if (raw_output) {
		snprintf(when, sizeof(when), "%" PRIu64, r->log.time);
	} else {
		localtime_r(&t, &tm);
		strftime(when, sizeof(when), "%Y-%m-%d %H:%M:%S", &tm);
	}
	printf(raw_output ? "%s %" PRIu32 : "%s %6" PRIu32, when, r->log.epoch);
	printf(" [");
	if (!cluster_cmd.show_diff)
		print_epoch_nodes(r);
	else if (i == nr - 1)
		printf("formated");
	else
		print_epoch_diff(r, &recs[i + 1]);
	printf("]\n");
}

/*
 * STAT_CLUSTER with a node stride big enough for every record: start with
 * the current node count and double it while the sheep says BUFFER_SMALL.
 */
static int stat_cluster(uint8_t **bufp, size_t *lenp, uint32_t *stride,
			struct sd_rsp *rsp)
{
	uint32_t nodes_nr = sd_nodes_nr ? sd_nodes_nr : 1;
	uint32_t nr_epochs = sd_epoch ? sd_epoch : 1;
	uint8_t *buf = NULL;
	size_t len;

	for (;;) {
		struct sd_req req;

		len = (size_t)nr_epochs *
		      (SD_EPOCH_LOG_HDR + (size_t)SD_NODE_SIZE * nodes_nr);
		buf = xrealloc(buf, len);
		memset(buf, 0, len);
		sd_init_req(&req, SD_OP_STAT_CLUSTER);
		req.data_length = len;
		req.cluster.nodes_nr = nodes_nr;
		if (dog_exec(&req, NULL, buf, len, rsp) < 0) {
			free(buf);
			return -1;
		}
		if (rsp->result != SD_RES_BUFFER_SMALL ||
		    nodes_nr >= SD_MAX_NODES)
			break;
		nodes_nr = MIN(nodes_nr * 2, SD_MAX_NODES);
	}
	*bufp = buf;
	*lenp = len;
	*stride = nodes_nr;
	return 0;
}

static int cluster_info(int argc, char **argv)
{
	struct epoch_record *recs = NULL;
	struct epoch_log first = {0};
	struct sd_rsp rsp;
	uint8_t *buf;
	uint32_t stride;
	size_t reclen, len;
	int nr;

	if (stat_cluster(&buf, &len, &stride, &rsp) < 0)
		return EXIT_SYSFAIL;

	reclen = SD_EPOCH_LOG_HDR + (size_t)SD_NODE_SIZE * stride;
	nr = MIN((size_t)rsp.data_length, len) / reclen;
	recs = xcalloc(nr ? nr : 1, sizeof(*recs));
	for (int i = 0; i < nr; i++) {
		const uint8_t *p = buf + i * reclen;

		epoch_log_decode(p, &recs[i].log);
		recs[i].log.nr_nodes = MIN(recs[i].log.nr_nodes, stride);
		recs[i].nodes =
		    xcalloc(stride ? stride : 1, sizeof(struct sd_node));
		for (uint32_t j = 0; j < recs[i].log.nr_nodes; j++)
			sd_node_decode(p + SD_EPOCH_LOG_HDR + j * SD_NODE_SIZE,
				       &recs[i].nodes[j]);
	}
	if (rsp.data_length >= SD_EPOCH_LOG_HDR)
		epoch_log_decode(buf, &first);
	free(buf);

	if (!raw_output)
		printf("Cluster status: ");
	if (rsp.result == SD_RES_SUCCESS)
		printf("running, auto-recovery %s\n",
		       first.disable_recovery ? "disabled" : "enabled");
	else
		printf("%s\n", sd_strerror(rsp.result));

	if (verbose) {
		char copies[16];

		if (!raw_output)
			printf("Cluster store: ");
		if (rsp.result == SD_RES_SUCCESS)
			printf("%s with %s redundancy policy\n", first.drv_name,
			       redundancy_str(first.nr_copies,
					      first.copy_policy, copies,
					      sizeof(copies)));
		else
			printf("%s\n", sd_strerror(rsp.result));
		if (!raw_output)
			printf("Cluster vnodes strategy: ");
		printf("%s\n", first.flags & SD_CLUSTER_FLAG_AUTO_VNODES
				   ? "auto"
				   : "fixed");
		if (!raw_output)
			printf("Cluster vnode mode: ");
		printf("%s\n", first.flags & SD_CLUSTER_FLAG_DISKMODE ? "disk"
								      : "node");
	} else {
		printf("\n");
	}

	if (!raw_output && nr > 0) {
		time_t created = (time_t)(recs[0].log.ctime >> 32);

		printf("Cluster created at %s\n", ctime(&created));
		printf("Epoch Time           Version [Host:Port:V-Nodes,,,]\n");
	}
	for (int i = 0; i < nr; i++)
		print_epoch(recs, nr, i);

	for (int i = 0; i < nr; i++)
		free(recs[i].nodes);
	free(recs);
	return EXIT_SUCCESS;
}

static int cluster_shutdown(int argc, char **argv)
{
	struct sd_req req;

	sd_init_req(&req, SD_OP_SHUTDOWN);
	if (send_light_req(&req) < 0)
		return EXIT_FAILURE;
	return EXIT_SUCCESS;
}

/* ---- recover ---- */

static const char force_recover_prompt[] =
    "    __\n"
    "   ()'`;\n"
    "   /\\|`  Caution! Forcing recovery starts a new epoch with only the\n"
    "  /  |   nodes running now; data held only by the missing nodes may\n"
    "(/_)_|_  be lost. Are you sure you want to continue? [yes/no]: ";

/* The cluster waits for members of its last epoch that will not come back:
 * go on without them. */
static int recover_force(void)
{
	size_t len = (size_t)SD_MAX_NODES * SD_NODE_SIZE;
	uint8_t *nodes;
	struct sd_req req;
	struct sd_rsp rsp;
	int ret;

	if (!cluster_cmd.force)
		confirm(force_recover_prompt);
	nodes = xmalloc(len);
	sd_init_req(&req, SD_OP_FORCE_RECOVER);
	req.data_length = len;
	ret = dog_exec(&req, NULL, nodes, len, &rsp);
	free(nodes);
	if (ret < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to force recovery: %s", sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

static int recover_toggle(bool enable)
{
	struct sd_req req;

	sd_init_req(&req,
		    enable ? SD_OP_ENABLE_RECOVER : SD_OP_DISABLE_RECOVER);
	if (send_light_req(&req) < 0)
		return EXIT_FAILURE;
	printf("Cluster recovery: %s\n", enable ? "enable" : "disable");
	return EXIT_SUCCESS;
}

static int cluster_recover(int argc, char **argv)
{
	const char *what = argv[optind];

	if (!strcmp(what, "force"))
		return recover_force();
	if (!strcmp(what, "enable"))
		return recover_toggle(true);
	if (!strcmp(what, "disable"))
		return recover_toggle(false);
	sd_err("Invalid command 'cluster recover %s'", what);
	return EXIT_USAGE;
}

/* ---- reweight ---- */

/* Each node measures its capacity again; those that moved by 1% or more
 * announce it, and the epoch changes. */
static int cluster_reweight(int argc, char **argv)
{
	struct sd_req req;

	sd_init_req(&req, SD_OP_REWEIGHT);
	if (send_light_req(&req) < 0)
		return EXIT_FAILURE;
	return EXIT_SUCCESS;
}

/* ---- alter-copy ---- */

/* The default redundancy of VDIs created from now on; existing VDIs keep
 * theirs (vdi alter-copy changes one VDI). Replication only. */
static int cluster_alter_copy(int argc, char **argv)
{
	struct sd_req req;
	struct sd_rsp rsp;
	int old_copies;

	if (!cluster_cmd.copies) {
		sd_err("Please specify the redundancy level with -c");
		return EXIT_USAGE;
	}
	if (cluster_cmd.copy_policy) {
		sd_err("Changing the redundancy level to erasure coding is "
		       "not supported yet.");
		return EXIT_USAGE;
	}

	sd_init_req(&req, SD_OP_GET_CLUSTER_DEFAULT);
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to get the cluster's redundancy level: %s",
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	if (rsp.cluster_default.copy_policy) {
		sd_err("The cluster's copy policy is erasure code, changing "
		       "it is not supported yet.");
		return EXIT_FAILURE;
	}
	old_copies = rsp.cluster_default.nr_copies;
	if (old_copies == cluster_cmd.copies) {
		sd_err("The cluster's redundancy level is already set to %d, "
		       "nothing changed.",
		       old_copies);
		return EXIT_FAILURE;
	}
	if (cluster_cmd.copies > sd_nodes_nr && !cluster_cmd.force) {
		char msg[256];

		snprintf(msg, sizeof(msg),
			 "Number of copies (%d) is larger than number of "
			 "nodes (%d).\n"
			 "Are you sure you want to continue? [yes/no]: ",
			 cluster_cmd.copies, sd_nodes_nr);
		confirm(msg);
	}

	sd_init_req(&req, SD_OP_ALTER_CLUSTER_COPY);
	req.cluster.copies = cluster_cmd.copies;
	if (dog_exec(&req, NULL, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to change the cluster's redundancy level: %s",
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	sd_info("The cluster's redundancy level is set to %d, the old one "
		"was %d.",
		cluster_cmd.copies, old_copies);
	return EXIT_SUCCESS;
}

static void cluster_parser(int ch, const char *arg)
{
	switch (ch) {
	case 'b':
		snprintf(cluster_cmd.store, sizeof(cluster_cmd.store), "%s",
			 arg);
		break;
	case 'c':
		cluster_cmd.copies =
		    parse_copy_or_exit(arg, &cluster_cmd.copy_policy);
		break;
	case 'f':
		cluster_cmd.force = true;
		break;
	case 't':
		cluster_cmd.strict = true;
		break;
	case 'l':
		cluster_cmd.use_lock = true;
		break;
	case 'z':
		cluster_cmd.block_size_shift =
		    parse_block_size_shift_or_exit(arg);
		break;
	case 'V':
		cluster_cmd.fixed_vnodes = true;
		break;
	case 'R':
		cluster_cmd.recycle_vid = true;
		break;
	case 'F':
		cluster_cmd.avoid_diskfull = true;
		break;
	case 'd':
		cluster_cmd.show_diff = true;
		break;
	}
}

/* vdi check on every VDI and snapshot; its own status is not the result
 * (upstream's cluster check fails only when the VDIs cannot be listed). */
static void check_one_vdi(const struct sd_inode_header *h, void *data)
{
	if (inode_is_snapshot(h))
		printf("fix snapshot %s (id: %" PRIu32 ", tag: \"%s\")\n",
		       h->name, h->snap_id, h->tag);
	else
		printf("fix vdi %s\n", h->name);
	fflush(stdout);
	vdi_check_inode(h, false);
}

static int cluster_check(int argc, char **argv)
{
	if (dog_for_each_vdi(true, check_one_vdi, NULL) < 0)
		return EXIT_SYSFAIL;
	return EXIT_SUCCESS;
}

static const struct dog_option cluster_options[] = {
    {'b', "store", true, "specify backend store"},
    {'c', "copies", true, "specify the default data redundancy level"},
    {'f', "force", false, "do not prompt for confirmation"},
    {'t', "strict", false,
     "do not serve write request if number of nodes is not sufficient"},
    {'l', "lock", false, "enable VDI locking"},
    {'z', "block_size_shift", true,
     "specify the shift num of default data object size"},
    {'V', "fixedvnodes", false, "disable automatic vnodes calculation"},
    {'R', "recyclevid", false, "enable recycling of VDI ids"},
    {'F', "avoid-diskfull", false,
     "avoid recovery that would make a disk full"},
    {'d', "diff", false, "show the membership changes of each epoch"},
    {'m', "multithread", false,
     "accepted for compatibility with upstream; no effect"},
    {0, NULL, false, NULL},
};

static const struct subcommand cluster_subcommands[] = {
    {"info", NULL, "aprhvTd", "show cluster information", CMD_NEED_NODELIST,
     cluster_info},
    {"format", NULL, "bcltaphzTVRfF", "create a Sheepdog store",
     CMD_NEED_NODELIST, cluster_format},
    {"shutdown", NULL, "aphT", "stop Sheepdog", 0, cluster_shutdown},
    {"snapshot",
     "save <tag> <path> [vdi...] | list <path> | "
     "show <tag|idx> <path> [vdi...] | load <tag|idx> <path> [vdi...]",
     "aphTrm", "save and load cluster snapshots", CMD_NEED_ARG,
     cluster_snapshot},
    {"recover", "force|enable|disable", "afphT",
     "see and control cluster recovery", CMD_NEED_ARG, cluster_recover},
    {"reweight", NULL, "aphT", "reweight the cluster", 0, cluster_reweight},
    {"check", NULL, "aphT", "check and repair cluster", CMD_NEED_NODELIST,
     cluster_check},
    {"alter-copy", NULL, "aphTcf", "set the cluster's redundancy level",
     CMD_NEED_NODELIST, cluster_alter_copy},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

const struct command cluster_command = {
    .name = "cluster",
    .sub = cluster_subcommands,
    .options = cluster_options,
    .parser = cluster_parser,
};
