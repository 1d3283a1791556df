/*
 * "dog node": the members of the cluster as the ring sees them (node list)
 * and each member's store usage (node info, STAT_SHEEP sent to every node),
 * followed by the total virtual size of the working VDIs.
 */
#include <stdio.h>

#include "dog.h"

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

static const struct subcommand node_subcommands[] = {
    {"list", NULL, "aprhT", "list nodes", CMD_NEED_NODELIST, node_list},
    {"info", NULL, "aprhT", "show information about each node",
     CMD_NEED_NODELIST, node_info},
    {NULL, NULL, NULL, NULL, 0, NULL},
};

const struct command node_command = {
    .name = "node",
    .sub = node_subcommands,
    .options = NULL,
    .parser = NULL,
};
