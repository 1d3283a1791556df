/*
 * "dog node": the members of the cluster as the ring sees them (node list),
 * each member's store usage (node info, STAT_SHEEP sent to every node,
 * followed by the total virtual size of the working VDIs), the disks of a
 * node (md info) and stopping a node (kill). Recovery state and throttling
 * are in node_recovery.c.
 */
#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h> /* optind */

#include "dog.h"
#include "sheepdog/le.h"

struct node_cmd_data node_cmd;

static int node_list(int argc, char **argv)
{
	if (!raw_output)
		printf("  Id   Host:Port         V-Nodes       Zone\n");
	for (int i = 0; i < sd_ring->nr_nodes; i++) {
		const struct sd_node *n = &sd_ring->nodes[i];
		char host[64];

		node_addr_to_str(&n->nid, host, sizeof(host));
		printf(raw_output ? "%d %s %d %u\n" : "%4d   %-20s\t%2d%11u\n",
		       i, host, n->nr_vnodes, n->zone);
	}
	return EXIT_SUCCESS;
}

static int used_percent(uint64_t size, uint64_t free_bytes)
{
	if (!size)
		return 0;
	return (int)((double)(size - free_bytes) / size * 100);
}

static void add_vdi_size(const struct sd_inode_header *h, void *data)
{
	uint64_t *total = data;

	if (!inode_is_snapshot(h))
		*total += h->vdi_size;
}

static int node_info(int argc, char **argv)
{
	uint64_t total_size = 0, total_free = 0, total_vdi_size = 0;
	char a[32], b[32], c[32], d[32];
	int success = 0;

	if (!raw_output)
		printf("Id\tSize\tUsed\tAvail\tUse%%\n");
	for (int i = 0; i < sd_ring->nr_nodes; i++) {
		const struct sd_node *n = &sd_ring->nodes[i];
		struct sd_req req;
		struct sd_rsp rsp;
		uint64_t size, free_bytes;

		sd_init_req(&req, SD_OP_STAT_SHEEP);
		if (dog_exec_node(&n->nid, &req, NULL, NULL, 0, &rsp) < 0)
			continue;
		if (rsp.result != SD_RES_SUCCESS) {
			sd_err("Response's result: %s",
			       sd_strerror(rsp.result));
			continue;
		}
		size = rsp.node.store_size;
		free_bytes = rsp.node.store_free;
		printf(raw_output ? "%d %s %s %s %d%%\n"
				  : "%2d\t%s\t%s\t%s\t%3d%%\n",
		       i, strnum(size, a), strnum(size - free_bytes, b),
		       strnum(free_bytes, c), used_percent(size, free_bytes));
		total_size += size;
		total_free += free_bytes;
		success++;
	}
	if (!success) {
		sd_err("Cannot get information from any nodes");
		return EXIT_SYSFAIL;
	}

	if (dog_for_each_vdi(false, add_vdi_size, &total_vdi_size) < 0)
		return EXIT_SYSFAIL;

	printf(raw_output ? "Total %s %s %s %d%% %s\n"
			  : "Total\t%s\t%s\t%s\t%3d%%\n\n"
			    "Total virtual image size\t%s\n",
	       strnum(total_size, a), strnum(total_size - total_free, b),
	       strnum(total_free, c), used_percent(total_size, total_free),
	       strnum(total_vdi_size, d));
	return EXIT_SUCCESS;
}

/* ---- kill ---- */

/* A node id as "node list" numbers them: EXIT_SUCCESS or EXIT_USAGE. */
static int parse_node_id(const char *s, int *idx)
{
	uint32_t id;

	if (parse_u32(s, 10, &id) < 0) {
		sd_err("Invalid node id '%s': expected a number from "
		       "'dog node list'",
		       s);
		return EXIT_USAGE;
	}
	if (id >= (uint32_t)sd_ring->nr_nodes) {
		sd_err("Invalid node id %s: the cluster has %d node%s, "
		       "numbered 0 to %d",
		       s, sd_ring->nr_nodes, sd_ring->nr_nodes == 1 ? "" : "s",
		       sd_ring->nr_nodes - 1);
		return EXIT_USAGE;
	}
	*idx = (int)id;
	return EXIT_SUCCESS;
}

/* The node answers before it leaves the cluster and exits. */
static int node_kill(int argc, char **argv)
{
	struct sd_req req;
	struct sd_rsp rsp;
	char name[64];
	int idx, ret;

	sd_init_req(&req, SD_OP_KILL_NODE);
	if (node_cmd.local) {
		if (optind < argc) {
			sd_err("Give either a node id or -l, not both");
			return EXIT_USAGE;
		}
		snprintf(name, sizeof(name), "%s:%d", sd_host, sd_port);
		ret = dog_exec(&req, NULL, NULL, 0, &rsp);
	} else {
		if (optind >= argc) {
			sd_err("Please specify the node id, or -l for the "
			       "node given by -a and -p");
			return EXIT_USAGE;
		}
		ret = parse_node_id(argv[optind], &idx);
		if (ret != EXIT_SUCCESS)
			return ret;
		node_addr_to_str(&sd_ring->nodes[idx].nid, name, sizeof(name));
		ret = dog_exec_node(&sd_ring->nodes[idx].nid, &req, NULL, NULL,
				    0, &rsp);
	}
	if (ret < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to kill node %s: %s", name,
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

/* ---- md info ---- */

/* MD_INFO from nid, or from -a/-p when nid is NULL: the disks of one node
 * in spec 2.4's sd_md_info, printed as spec 11.3 says. label prefixes raw
 * rows. */
static int md_info_node(const struct node_id *nid, const char *label)
{
	uint8_t *buf = xzalloc(SD_MD_INFO_SIZE);
	struct sd_req req;
	struct sd_rsp rsp;
	int nr, ret;

	sd_init_req(&req, SD_OP_MD_INFO);
	req.data_length = SD_MD_INFO_SIZE;
	ret = nid ? dog_exec_node(nid, &req, NULL, buf, SD_MD_INFO_SIZE, &rsp)
		  : dog_exec(&req, NULL, buf, SD_MD_INFO_SIZE, &rsp);
	if (ret < 0) {
		free(buf);
		return EXIT_SYSFAIL;
	}
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to get multi-disk information of %s: %s", label,
		       sd_strerror(rsp.result));
		free(buf);
		return EXIT_FAILURE;
	}
	nr = (int32_t)get_le32(buf + SD_MD_MAX_DISKS * SD_MD_INFO_ENTRY_SIZE);
	nr = MAX(0, MIN(nr, SD_MD_MAX_DISKS));
	for (int i = 0; i < nr; i++) {
		uint8_t *e = buf + i * SD_MD_INFO_ENTRY_SIZE;
		uint64_t free_bytes = get_le64(e + 8), used = get_le64(e + 16);
		char path[4097], a[32], b[32], c[32];

		memcpy(path, e + 24, 4096);
		path[4096] = '\0';
		if (raw_output)
			printf("%s ", label);
		printf(raw_output ? "%d %s %s %s %d%% %s\n"
				  : "%2d\t%s\t%s\t%s\t%3d%%\t%s\n",
		       (int32_t)get_le32(e), strnum(used + free_bytes, a),
		       strnum(used, b), strnum(free_bytes, c),
		       used_percent(used + free_bytes, free_bytes), path);
	}
	free(buf);
	return EXIT_SUCCESS;
}

static void md_info_header(void)
{
	if (!raw_output)
		printf("Id\tSize\tUsed\tAvail\tUse%%\tPath\n");
}

/* -A: every member in node list order, each under "Node N:". */
static int md_info_all(void)
{
	int ret = EXIT_SUCCESS;

	dog_update_node_list();
	for (int i = 0; i < sd_ring->nr_nodes; i++) {
		const struct sd_node *n = &sd_ring->nodes[i];
		char name[64];
		int r;

		node_addr_to_str(&n->nid, name, sizeof(name));
		if (!raw_output)
			printf("Node %d:\n", i);
		md_info_header();
		r = md_info_node(&n->nid, name);
		if (r != EXIT_SUCCESS)
			ret = r;
	}
	return ret;
}

static int node_md(int argc, char **argv)
{
	const char *what = argv[optind];
	char name[300];

	if (strcmp(what, "info")) {
		sd_err("Invalid command 'node md %s'", what);
		return EXIT_USAGE;
	}
	if (node_cmd.all_nodes)
		return md_info_all();
	snprintf(name, sizeof(name), "%s:%d", sd_host, sd_port);
	md_info_header();
	return md_info_node(NULL, name);
}

static void node_parser(int ch, const char *arg)
{
	switch (ch) {
	case 'A':
		node_cmd.all_nodes = true;
		break;
	case 'P':
		node_cmd.progress = true;
		break;
	case 'l':
		node_cmd.local = true;
		break;
	}
}

static const struct dog_option node_options[] = {
    {'A', "all", false, "show md information of all the nodes"},
    {'P', "progress", false, "show progress of recovery in the node"},
    {'l', "local", false, "kill the node given by -a and -p"},
    {0, NULL, false, NULL},
};

static const struct subcommand node_subcommands[] = {
    {"kill", "[node id]", "aprhlT", "kill node", CMD_NEED_NODELIST, node_kill},
    {"list", NULL, "aprhT", "list nodes", CMD_NEED_NODELIST, node_list},
    {"info", NULL, "aprhT", "show information about each node",
     CMD_NEED_NODELIST, node_info},
    {"recovery", "[info|get-throttle|set-throttle <max> <interval-ms>]",
     "aphPrT",
     "show recovery information of nodes, or get or set the recovery "
     "throttle",
     CMD_NEED_NODELIST, node_recovery},
    {"md", "info", "aprAhT", "see information about multi-disk", CMD_NEED_ARG,
     node_md},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

const struct command node_command = {
    .name = "node",
    .sub = node_subcommands,
    .options = node_options,
    .parser = node_parser,
};
