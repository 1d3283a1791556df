/*
 * The consistent-hashing ring (spec 6.3-6.4): virtual nodes from a node
 * list, zones, and the choice of the N holders of an object. Pure code: a
 * ring is built from a node array and never changes; the daemon publishes a
 * new one per epoch.
 */
#ifndef SHEEPDOG_RING_H
#define SHEEPDOG_RING_H

#include <stdbool.h>
#include <stdint.h>

#include "sheepdog/layout.h"

struct sd_vnode {
	uint64_t hash;
	uint16_t node_idx; /* index into ring->nodes */
};

struct sd_ring {
	int nr_nodes;
	struct sd_node *nodes; /* sorted by sd_node_cmp; nr_vnodes as used */
	int nr_vnodes;
	struct sd_vnode *vnodes; /* sorted by hash */
	int nr_zones;            /* distinct zones with vnodes, capped at 31 */
};

/*
 * Auto-vnode weights: each node gets round(128 * space / avg_space) in
 * single-precision float, round-half-to-even; space 0 gives 0. Writes the
 * result into nodes[i].nr_vnodes.
 */
void ring_auto_vnodes(struct sd_node *nodes, int nr);

/* Build a ring from nr nodes (copied and sorted). Uses nodes' nr_vnodes as
 * given (call ring_auto_vnodes first for auto mode). NULL on ENOMEM or on a
 * duplicate vnode hash. */
struct sd_ring *ring_build(const struct sd_node *nodes, int nr);
void ring_free(struct sd_ring *ring);

/*
 * The holders of oid: min(nr_copies, nr_zones) node indexes (into
 * ring->nodes) in copy order, written to idx[]. Returns how many.
 */
int ring_oid_to_nodes(const struct sd_ring *ring, uint64_t oid, int nr_copies,
		      int idx[SD_MAX_COPIES]);

/* Index of the node with this id in ring->nodes, or -1. */
int ring_find_node(const struct sd_ring *ring, const struct node_id *nid);

#endif
