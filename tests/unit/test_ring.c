/*
 * Placement on the vnode ring (spec 6.3, 6.4): the check values from
 * upstream's functional test 048, the nr_zones cap on copies, zone
 * exclusion, and single-precision auto-vnode weights.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/ring.h"

static struct sd_node make_node(uint16_t port, uint32_t zone, uint16_t vnodes)
{
	struct sd_node n;

	memset(&n, 0, sizeof(n));
	n.nid.addr[12] = 127;
	n.nid.addr[15] = 1;
	n.nid.port = port;
	n.zone = zone;
	n.nr_vnodes = vnodes;
	return n;
}

/* Nodes 7000.. in the given order, zone = port - 7000, 128 vnodes. */
static struct sd_ring *five_node_ring(const uint16_t *ports, int nr)
{
	struct sd_node nodes[8];

	for (int i = 0; i < nr; i++)
		nodes[i] = make_node(ports[i], ports[i] - 7000, 128);
	return ring_build(nodes, nr);
}

static void assert_holders(const struct sd_ring *ring, uint64_t oid, int copies,
			   const uint16_t *want, int nr_want)
{
	int idx[SD_MAX_COPIES];
	int n = ring_oid_to_nodes(ring, oid, copies, idx);

	assert_int_equal(n, nr_want);
	for (int i = 0; i < n; i++)
		assert_int_equal(ring->nodes[idx[i]].nid.port, want[i]);
}

static void test_placement_vectors_five_nodes(void **state)
{
	/* given out of order: the ring must sort them */
	static const uint16_t ports[] = {7003, 7000, 7004, 7001, 7002};
	struct sd_ring *ring = five_node_ring(ports, 5);

	assert_non_null(ring);
	assert_int_equal(ring->nr_nodes, 5);
	assert_int_equal(ring->nr_vnodes, 640);
	assert_int_equal(ring->nr_zones, 5);
	for (int i = 0; i < 5; i++)
		assert_int_equal(ring->nodes[i].nid.port, 7000 + i);
	for (int i = 1; i < ring->nr_vnodes; i++)
		assert_true(ring->vnodes[i - 1].hash < ring->vnodes[i].hash);

	assert_holders(ring, UINT64_C(0x807c2b2500000000), 3,
		       (const uint16_t[]){7002, 7004, 7001}, 3);
	assert_holders(ring, UINT64_C(0x007c2b2500000001), 3,
		       (const uint16_t[]){7000, 7001, 7003}, 3);
	ring_free(ring);
}

static void test_placement_without_first_node(void **state)
{
	static const uint16_t ports[] = {7001, 7002, 7003, 7004};
	struct sd_ring *ring = five_node_ring(ports, 4);

	assert_non_null(ring);
	assert_holders(ring, UINT64_C(0x007c2b2500000001), 3,
		       (const uint16_t[]){7001, 7003, 7002}, 3);
	ring_free(ring);
}

static void test_copies_capped_by_zones(void **state)
{
	struct sd_node nodes[5];
	struct sd_ring *ring;
	int idx[SD_MAX_COPIES];

	/* five nodes in two zones: at most two copies, in distinct zones */
	for (int i = 0; i < 5; i++)
		nodes[i] = make_node(7000 + i, i % 2, 128);
	ring = ring_build(nodes, 5);
	assert_non_null(ring);
	assert_int_equal(ring->nr_zones, 2);
	assert_int_equal(ring_oid_to_nodes(ring, 0x1234, 3, idx), 2);
	assert_int_not_equal(ring->nodes[idx[0]].zone,
			     ring->nodes[idx[1]].zone);
	assert_int_equal(ring_oid_to_nodes(ring, 0x1234, 1, idx), 1);
	ring_free(ring);

	/* all on one zone, as several sheep on 127.0.0.1 by default */
	for (int i = 0; i < 5; i++)
		nodes[i].zone = 0x0100007f;
	ring = ring_build(nodes, 5);
	assert_int_equal(ring->nr_zones, 1);
	assert_int_equal(ring_oid_to_nodes(ring, 0x1234, 3, idx), 1);
	ring_free(ring);
}

static void test_gateways_have_no_vnodes_and_no_zone(void **state)
{
	struct sd_node nodes[3] = {
	    make_node(7000, 0, 128),
	    make_node(7001, 1, 0),
	    make_node(7002, 2, 128),
	};
	struct sd_ring *ring = ring_build(nodes, 3);
	int idx[SD_MAX_COPIES];

	assert_non_null(ring);
	assert_int_equal(ring->nr_vnodes, 256);
	assert_int_equal(ring->nr_zones, 2);
	assert_int_equal(ring_oid_to_nodes(ring, 99, 3, idx), 2);
	for (int i = 0; i < 2; i++)
		assert_int_not_equal(ring->nodes[idx[i]].nid.port, 7001);
	ring_free(ring);
}

static void test_nr_zones_capped_at_31(void **state)
{
	struct sd_node nodes[40];
	struct sd_ring *ring;
	int idx[SD_MAX_COPIES];

	for (int i = 0; i < 40; i++)
		nodes[i] = make_node(7000 + i, i, 4);
	ring = ring_build(nodes, 40);
	assert_non_null(ring);
	assert_int_equal(ring->nr_zones, 31);
	assert_int_equal(ring_oid_to_nodes(ring, 5, 31, idx), 31);
	ring_free(ring);
}

static void test_empty_ring_places_nothing(void **state)
{
	struct sd_node gw = make_node(7000, 0, 0);
	struct sd_ring *ring = ring_build(&gw, 1);
	int idx[SD_MAX_COPIES];

	assert_non_null(ring);
	assert_int_equal(ring->nr_zones, 0);
	assert_int_equal(ring_oid_to_nodes(ring, 5, 3, idx), 0);
	ring_free(ring);
}

static void test_find_node(void **state)
{
	static const uint16_t ports[] = {7004, 7002, 7000};
	struct sd_ring *ring = five_node_ring(ports, 3);
	struct sd_node probe = make_node(7002, 0, 0);

	assert_int_equal(ring_find_node(ring, &probe.nid), 1);
	probe.nid.port = 7001;
	assert_int_equal(ring_find_node(ring, &probe.nid), -1);
	ring_free(ring);
}

static void test_auto_vnodes_weights(void **state)
{
	struct sd_node n[4];

	memset(n, 0, sizeof(n));
	/* equal space: 128 each; gateway: 0 */
	n[0].space = n[1].space = 100ULL << 30;
	n[2].space = 0;
	ring_auto_vnodes(n, 3);
	assert_int_equal(n[0].nr_vnodes, 128);
	assert_int_equal(n[1].nr_vnodes, 128);
	assert_int_equal(n[2].nr_vnodes, 0);

	/* 1:3 -> avg 2, factors 0.5 and 1.5 -> 64 and 192 */
	n[0].space = 1ULL << 30;
	n[1].space = 3ULL << 30;
	ring_auto_vnodes(n, 2);
	assert_int_equal(n[0].nr_vnodes, 64);
	assert_int_equal(n[1].nr_vnodes, 192);

	/*
	 * Round half to even: space 1 and 255 give avg 128, so the
	 * weights are exactly 1.0 and 255.0; space 1 and 511 (avg 256)
	 * give 0.5 -> 0 (even) and 255.5 -> 256 (even).
	 */
	n[0].space = 1;
	n[1].space = 511;
	ring_auto_vnodes(n, 2);
	assert_int_equal(n[0].nr_vnodes, 0);
	assert_int_equal(n[1].nr_vnodes, 256);

	/* 3 and 5 (avg 4): 96 and 160 exactly */
	n[0].space = 3;
	n[1].space = 5;
	ring_auto_vnodes(n, 2);
	assert_int_equal(n[0].nr_vnodes, 96);
	assert_int_equal(n[1].nr_vnodes, 160);

	/* 1, 2, 4 (integer avg 7/3 = 2): 64, 128, 256 */
	n[0].space = 1;
	n[1].space = 2;
	n[2].space = 4;
	ring_auto_vnodes(n, 3);
	assert_int_equal(n[0].nr_vnodes, 64);
	assert_int_equal(n[1].nr_vnodes, 128);
	assert_int_equal(n[2].nr_vnodes, 256);
}

static void test_auto_vnodes_single_precision(void **state)
{
	struct sd_node n[2];

	memset(n, 0, sizeof(n));
	/*
	 * avg = 256 << 22. Exactly, the weights are 64.5 + e and 191.5 - e,
	 * which double arithmetic rounds to 65 and 191. In float the +1/-1
	 * is lost, leaving ties 64.5 and 191.5 that round to even: 64, 192.
	 */
	n[0].space = (UINT64_C(129) << 22) + 1;
	n[1].space = (UINT64_C(383) << 22) - 1;
	ring_auto_vnodes(n, 2);
	assert_int_equal(n[0].nr_vnodes, 64);
	assert_int_equal(n[1].nr_vnodes, 192);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_placement_vectors_five_nodes),
	    cmocka_unit_test(test_placement_without_first_node),
	    cmocka_unit_test(test_copies_capped_by_zones),
	    cmocka_unit_test(test_gateways_have_no_vnodes_and_no_zone),
	    cmocka_unit_test(test_nr_zones_capped_at_31),
	    cmocka_unit_test(test_empty_ring_places_nothing),
	    cmocka_unit_test(test_find_node),
	    cmocka_unit_test(test_auto_vnodes_weights),
	    cmocka_unit_test(test_auto_vnodes_single_precision),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
