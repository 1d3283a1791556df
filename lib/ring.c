/*
 * The consistent-hashing ring (spec 6.3, 6.4). A ring is built once from a
 * node list: each storage node contributes nr_vnodes virtual nodes whose
 * hashes chain from the hash of its address and port, and all vnodes are
 * sorted by hash. An object's holders are found by walking the ring from the
 * first vnode at or after hash_u64(oid), taking only vnodes in zones not yet
 * chosen. The auto-vnode weights are computed in single-precision float on
 * purpose: upstream does so, and any other rounding changes placement.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "sheepdog/hash.h"
#include "sheepdog/le.h"
#include "sheepdog/ring.h"

void ring_auto_vnodes(struct sd_node *nodes, int nr)
{
	uint64_t total = 0, avg;
	int nr_storage = 0;

	for (int i = 0; i < nr; i++) {
		if (nodes[i].space) {
			total += nodes[i].space;
			nr_storage++;
		}
	}
	if (nr_storage == 0) {
		for (int i = 0; i < nr; i++)
			nodes[i].nr_vnodes = 0;
		return;
	}
	avg = total / nr_storage;

	for (int i = 0; i < nr; i++) {
		float factor, v;

		if (!nodes[i].space) {
			nodes[i].nr_vnodes = 0;
			continue;
		}
		factor = (float)nodes[i].space / (float)avg;
		v = rintf((float)SD_DEFAULT_VNODES * factor);
		if (v > SD_MAX_VNODES)
			v = SD_MAX_VNODES;
		nodes[i].nr_vnodes = (uint16_t)v;
	}
}

static int node_cmp(const void *a, const void *b)
{
	return sd_node_cmp(a, b);
}

static int vnode_cmp(const void *a, const void *b)
{
	const struct sd_vnode *x = a, *y = b;

	if (x->hash != y->hash)
		return x->hash < y->hash ? -1 : 1;
	return 0;
}

/* The hash the vnode chain of a node starts from: addr[16] + port LE. */
static uint64_t node_base_hash(const struct node_id *nid)
{
	uint8_t b[18];

	memcpy(b, nid->addr, 16);
	put_le16(b + 16, nid->port);
	return sd_hash_buf(b, sizeof(b));
}

static int count_zones(const struct sd_node *nodes, int nr)
{
	uint32_t zones[SD_MAX_COPIES];
	int nr_zones = 0;

	for (int i = 0; i < nr && nr_zones < SD_MAX_COPIES; i++) {
		bool seen = false;

		if (!nodes[i].nr_vnodes)
			continue;
		for (int j = 0; j < nr_zones; j++)
			if (zones[j] == nodes[i].zone)
				seen = true;
		if (!seen)
			zones[nr_zones++] = nodes[i].zone;
	}
	return nr_zones;
}

struct sd_ring *ring_build(const struct sd_node *nodes, int nr)
{
	struct sd_ring *ring;
	int total = 0, k = 0;

	if (nr < 0 || nr > SD_MAX_NODES)
		return NULL;
	ring = calloc(1, sizeof(*ring));
	if (!ring)
		return NULL;
	ring->nr_nodes = nr;
	ring->nodes = calloc(nr ? nr : 1, sizeof(*ring->nodes));
	if (!ring->nodes)
		goto fail;
	if (nr)
		memcpy(ring->nodes, nodes, sizeof(*nodes) * nr);
	qsort(ring->nodes, nr, sizeof(*ring->nodes), node_cmp);

	for (int i = 0; i < nr; i++)
		total += ring->nodes[i].nr_vnodes;
	ring->vnodes = calloc(total ? total : 1, sizeof(*ring->vnodes));
	if (!ring->vnodes)
		goto fail;

	for (int i = 0; i < nr; i++) {
		uint64_t h = node_base_hash(&ring->nodes[i].nid);

		for (int j = 0; j < ring->nodes[i].nr_vnodes; j++) {
			h = sd_hash_next(h);
			ring->vnodes[k].hash = h;
			ring->vnodes[k].node_idx = (uint16_t)i;
			k++;
		}
	}
	ring->nr_vnodes = total;
	qsort(ring->vnodes, total, sizeof(*ring->vnodes), vnode_cmp);
	for (int i = 1; i < total; i++)
		if (ring->vnodes[i].hash == ring->vnodes[i - 1].hash)
			goto fail;

	ring->nr_zones = count_zones(ring->nodes, nr);
	return ring;
fail:
	ring_free(ring);
	return NULL;
}

void ring_free(struct sd_ring *ring)
{
	if (!ring)
		return;
	free(ring->nodes);
	free(ring->vnodes);
	free(ring);
}

/* Index of the first vnode whose hash is >= h, wrapping to 0. */
static int ring_first_vnode(const struct sd_ring *ring, uint64_t h)
{
	int lo = 0, hi = ring->nr_vnodes;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;

		if (ring->vnodes[mid].hash < h)
			lo = mid + 1;
		else
			hi = mid;
	}
	return lo == ring->nr_vnodes ? 0 : lo;
}

int ring_oid_to_nodes(const struct sd_ring *ring, uint64_t oid, int nr_copies,
		      int idx[SD_MAX_COPIES])
{
	uint32_t zones[SD_MAX_COPIES];
	int want, got = 0, start;

	if (!ring->nr_vnodes || nr_copies <= 0)
		return 0;
	/* nr_zones never exceeds SD_MAX_COPIES, so neither does want */
	want = nr_copies < ring->nr_zones ? nr_copies : ring->nr_zones;
	start = ring_first_vnode(ring, sd_hash_u64(oid));

	for (int step = 0; step < ring->nr_vnodes && got < want; step++) {
		const struct sd_vnode *v =
		    &ring->vnodes[(start + step) % ring->nr_vnodes];
		uint32_t zone = ring->nodes[v->node_idx].zone;
		bool taken = false;

		for (int j = 0; j < got; j++)
			if (zones[j] == zone)
				taken = true;
		if (taken)
			continue;
		zones[got] = zone;
		idx[got++] = v->node_idx;
	}
	return got;
}

int ring_find_node(const struct sd_ring *ring, const struct node_id *nid)
{
	int lo = 0, hi = ring->nr_nodes;

	while (lo < hi) {
		int mid = lo + (hi - lo) / 2;
		int c = node_id_cmp(&ring->nodes[mid].nid, nid);

		if (c == 0)
			return mid;
		if (c < 0)
			lo = mid + 1;
		else
			hi = mid;
	}
	return -1;
}
