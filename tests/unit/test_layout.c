/*
 * Fixed layouts (spec 2.3, 2.4, 4.1, 5, 6.1, 7.2, 8.1, 9): byte offsets of
 * sd_node, the inode header, cluster_info, epoch_log, vdi_state and the
 * config file, node ordering and printing, oid rules and the EC policy byte.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/layout.h"
#include "sheepdog/le.h"

static struct sd_node ipv4_node(uint8_t a, uint8_t b, uint8_t c, uint8_t d,
				uint16_t port)
{
	struct sd_node n;

	memset(&n, 0, sizeof(n));
	n.nid.addr[12] = a;
	n.nid.addr[13] = b;
	n.nid.addr[14] = c;
	n.nid.addr[15] = d;
	n.nid.port = port;
	return n;
}

static void test_sd_node_encode_offsets(void **state)
{
	struct sd_node n = ipv4_node(192, 168, 1, 20, 7000), back;
	uint8_t buf[SD_NODE_SIZE];

	n.nid.io_addr[12] = 10;
	n.nid.io_addr[15] = 2;
	n.nid.io_port = 7100;
	n.nr_vnodes = 128;
	n.zone = 0x1401a8c0;
	n.space = UINT64_C(0x0000001234567890);
	memset(buf, 0xaa, sizeof(buf));
	sd_node_encode(&n, buf);
	for (int i = 0; i < 24; i++)
		assert_int_equal(buf[i], 0);
	for (int i = 24; i < 36; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(buf[36], 192);
	assert_int_equal(buf[37], 168);
	assert_int_equal(buf[38], 1);
	assert_int_equal(buf[39], 20);
	assert_int_equal(get_le16(buf + 40), 7000);
	assert_int_equal(buf[42 + 12], 10);
	assert_int_equal(buf[42 + 15], 2);
	assert_int_equal(get_le16(buf + 58), 7100);
	assert_int_equal(get_le32(buf + 60), 0);
	assert_int_equal(get_le16(buf + 64), 128);
	assert_int_equal(get_le16(buf + 66), 0);
	assert_int_equal(get_le32(buf + 68), 0x1401a8c0);
	assert_int_equal(get_le64(buf + 72), UINT64_C(0x0000001234567890));

	/* garbage in the reserved pointer area is ignored */
	memset(buf, 0x5a, 24);
	sd_node_decode(buf, &back);
	assert_memory_equal(back.nid.addr, n.nid.addr, 16);
	assert_int_equal(back.nid.port, 7000);
	assert_memory_equal(back.nid.io_addr, n.nid.io_addr, 16);
	assert_int_equal(back.nid.io_port, 7100);
	assert_int_equal(back.nr_vnodes, 128);
	assert_int_equal(back.zone, 0x1401a8c0);
	assert_int_equal(back.space, n.space);
}

static void test_node_order(void **state)
{
	struct sd_node a = ipv4_node(10, 0, 0, 2, 7000);
	struct sd_node b = ipv4_node(10, 0, 0, 1, 7001);
	struct sd_node c = ipv4_node(10, 0, 0, 1, 7000);
	struct sd_node d = ipv4_node(10, 0, 0, 1, 256);

	assert_true(sd_node_cmp(&c, &b) < 0);
	assert_true(sd_node_cmp(&b, &a) < 0);
	assert_true(sd_node_cmp(&a, &c) > 0);
	/* port compares numerically, not by its LE bytes (256 = 00 01) */
	assert_true(node_id_cmp(&d.nid, &c.nid) < 0);
	assert_int_equal(sd_node_cmp(&c, &c), 0);
	assert_true(node_id_eq(&c.nid, &c.nid));
	assert_false(node_id_eq(&c.nid, &b.nid));
}

static void test_address_printing(void **state)
{
	struct sd_node n = ipv4_node(127, 0, 0, 1, 7000);
	char buf[128];

	assert_string_equal(node_addr_to_str(&n.nid, buf, sizeof(buf)),
			    "127.0.0.1:7000");
	assert_string_equal(addr_to_str(n.nid.addr, buf, sizeof(buf)),
			    "127.0.0.1");
	n = ipv4_node(1, 2, 3, 4, 7000);
	assert_string_equal(node_id_to_str(&n.nid, buf, sizeof(buf)),
			    "IPv4 ip:1.2.3.4 port:7000");

	assert_int_equal(str_to_addr("fe80::1", n.nid.addr), 0);
	n.nid.port = 7002;
	assert_string_equal(node_addr_to_str(&n.nid, buf, sizeof(buf)),
			    "fe80::1:7002");
	assert_string_equal(node_id_to_str(&n.nid, buf, sizeof(buf)),
			    "IPv6 ip:fe80::1 port:7002");
}

static void test_str_to_addr(void **state)
{
	uint8_t addr[16], want[16] = {0};

	want[12] = 10;
	want[13] = 1;
	want[14] = 2;
	want[15] = 3;
	assert_int_equal(str_to_addr("10.1.2.3", addr), 0);
	assert_memory_equal(addr, want, 16);
	assert_int_equal(node_default_zone(addr), 0x0302010a);
	assert_int_equal(str_to_addr("::1", addr), 0);
	assert_int_equal(addr[15], 1);
	assert_int_equal(str_to_addr("10.1.2", addr), -EINVAL);
	assert_int_equal(str_to_addr("localhost", addr), -EINVAL);
}

static void test_inode_header_offsets(void **state)
{
	struct sd_inode_header h, back;
	uint8_t *buf = malloc(SD_INODE_HEADER_SIZE);

	memset(&h, 0, sizeof(h));
	strcpy(h.name, "alpha");
	strcpy(h.tag, "snap1");
	h.create_time = UINT64_C(0x5b34e3a100000001);
	h.snap_ctime = UINT64_C(0x5b34e3a200000002);
	h.vm_clock_nsec = 12345;
	h.vdi_size = UINT64_C(10) << 30;
	h.vm_state_size = 4096;
	h.copy_policy = 0x22;
	h.store_policy = 1;
	h.nr_copies = 6;
	h.block_size_shift = 22;
	h.snap_id = 2;
	h.vdi_id = 0xfd32fc;
	h.parent_vdi_id = 0xfd3815;
	h.btree_counter = 9;
	memset(buf, 0xcc, SD_INODE_HEADER_SIZE);
	sd_inode_header_encode(&h, buf);

	assert_string_equal((char *)buf, "alpha");
	assert_int_equal(buf[5], 0);
	assert_int_equal(buf[255], 0);
	assert_string_equal((char *)buf + 256, "snap1");
	assert_int_equal(get_le64(buf + 512), h.create_time);
	assert_int_equal(get_le64(buf + 520), h.snap_ctime);
	assert_int_equal(get_le64(buf + 528), 12345);
	assert_int_equal(get_le64(buf + 536), UINT64_C(10) << 30);
	assert_int_equal(get_le64(buf + 544), 4096);
	assert_int_equal(buf[552], 0x22);
	assert_int_equal(buf[553], 1);
	assert_int_equal(buf[554], 6);
	assert_int_equal(buf[555], 22);
	assert_int_equal(get_le32(buf + 556), 2);
	assert_int_equal(get_le32(buf + 560), 0xfd32fc);
	assert_int_equal(get_le32(buf + 564), 0xfd3815);
	assert_int_equal(get_le32(buf + 568), 9);
	for (int i = 572; i < SD_INODE_HEADER_SIZE; i++)
		assert_int_equal(buf[i], 0);

	sd_inode_header_decode(buf, &back);
	assert_memory_equal(&back, &h, sizeof(h));
	assert_true(inode_is_snapshot(&back));

	/* a name filling all 256 bytes decodes truncated and terminated */
	memset(buf, 'x', 256);
	sd_inode_header_decode(buf, &back);
	assert_int_equal(strlen(back.name), 255);
	free(buf);
}

static void test_inode_sizes(void **state)
{
	assert_int_equal(SD_INODE_OFF_GREF, 4198968);
	assert_int_equal(SD_INODE_SIZE, 4198968 + 8 * (1 << 20));
	assert_int_equal(inode_nr_slots(0, 22), 0);
	assert_int_equal(inode_nr_slots(1, 22), 1);
	assert_int_equal(inode_nr_slots(UINT64_C(4) << 20, 22), 1);
	assert_int_equal(inode_nr_slots((UINT64_C(4) << 20) + 1, 22), 2);
	assert_int_equal(inode_nr_slots(UINT64_C(10) << 30, 20), 10240);
	assert_int_equal(inode_max_size(22), UINT64_C(4) << 40);
	assert_int_equal(inode_max_size(20), UINT64_C(1) << 40);
	assert_int_equal(inode_max_size(31), UINT64_C(2) << 50);
}

static void test_oid_rules(void **state)
{
	assert_true(oid_is_valid(vid_to_vdi_oid(0xfd32fc)));
	assert_true(oid_is_valid(vid_to_data_oid(0xfd32fc, 7)));
	assert_true(oid_is_valid(SD_LEDGER_BIT | vid_to_data_oid(1, 2)));
	assert_false(oid_is_valid(UINT64_C(1) << 56));
	assert_false(oid_is_valid(UINT64_C(1) << 58));
	assert_false(oid_is_valid(SD_VDI_BIT | SD_VMSTATE_BIT));

	assert_int_equal(vid_to_vdi_oid(0xfd32fc),
			 UINT64_C(0x80fd32fc00000000));
	assert_int_equal(oid_obj_size(vid_to_vdi_oid(1), 22), SD_INODE_SIZE);
	assert_int_equal(oid_obj_size(vid_to_attr_oid(1, 5), 22), 66320);
	assert_int_equal(oid_obj_size(SD_VDI_BTREE_BIT | 1, 20), 4194304);
	assert_int_equal(oid_obj_size(SD_LEDGER_BIT | 1, 20), 4194304);
	assert_int_equal(oid_obj_size(vid_to_data_oid(1, 1), 20), 1 << 20);
	assert_int_equal(oid_obj_size(SD_VMSTATE_BIT | 1, 23), 1 << 23);
	assert_int_equal(oid_obj_size(vid_to_data_oid(1, 1), 0), 1 << 22);
}

static void test_cluster_info_offsets(void **state)
{
	struct sd_node nodes[2] = {ipv4_node(127, 0, 0, 1, 7000),
				   ipv4_node(127, 0, 0, 1, 7001)};
	struct sd_node out_nodes[2];
	struct cluster_info ci = {0}, back = {0};
	uint8_t buf[48 + 160];

	nodes[1].nr_vnodes = 64;
	ci.proto_ver = 0x0a;
	ci.disable_recovery = 1;
	ci.nr_nodes = 2;
	ci.epoch = 0x01020304;
	ci.ctime = UINT64_C(0x5b34e3a100000abc);
	ci.flags = 0x000c;
	ci.nr_copies = 3;
	ci.copy_policy = 0x11;
	ci.status = SD_STATUS_WAIT;
	ci.block_size_shift = 22;
	strcpy(ci.default_store, "tree");
	ci.nodes = nodes;
	assert_int_equal(cluster_info_size(2), sizeof(buf));
	assert_int_equal(cluster_info_size(SD_MAX_NODES), 491568);
	memset(buf, 0xee, sizeof(buf));
	cluster_info_encode(&ci, buf);
	assert_int_equal(buf[0], 0x0a);
	assert_int_equal(buf[1], 1);
	assert_int_equal(get_le16(buf + 2), 2);
	assert_int_equal(get_le32(buf + 4), 0x01020304);
	assert_int_equal(get_le64(buf + 8), ci.ctime);
	assert_int_equal(get_le16(buf + 16), 0x000c);
	assert_int_equal(buf[18], 3);
	assert_int_equal(buf[19], 0x11);
	assert_int_equal(buf[20], 2);
	assert_int_equal(buf[21], 22);
	assert_int_equal(buf[22] | buf[23] | buf[24], 0);
	assert_string_equal((char *)buf + 25, "tree");
	for (int i = 29; i < 48; i++)
		assert_int_equal(buf[i], 0);
	assert_int_equal(get_le16(buf + 48 + 40), 7000);
	assert_int_equal(get_le16(buf + 128 + 40), 7001);
	assert_int_equal(get_le16(buf + 128 + 64), 64);

	back.nodes = out_nodes;
	assert_int_equal(cluster_info_decode(buf, sizeof(buf), &back), 0);
	assert_ptr_equal(back.nodes, out_nodes);
	assert_int_equal(back.epoch, 0x01020304);
	assert_int_equal(back.ctime, ci.ctime);
	assert_int_equal(back.flags, 0x000c);
	assert_int_equal(back.status, SD_STATUS_WAIT);
	assert_string_equal(back.default_store, "tree");
	assert_int_equal(out_nodes[1].nid.port, 7001);
	assert_int_equal(out_nodes[1].nr_vnodes, 64);

	assert_int_equal(cluster_info_decode(buf, sizeof(buf) - 1, &back),
			 -EINVAL);
	assert_int_equal(cluster_info_decode(buf, 47, &back), -EINVAL);
	put_le16(buf + 2, SD_MAX_NODES + 1);
	assert_int_equal(cluster_info_decode(buf, sizeof(buf), &back), -EINVAL);
	/* nodes NULL: header only */
	put_le16(buf + 2, 0);
	back.nodes = NULL;
	assert_int_equal(cluster_info_decode(buf, 48, &back), 0);
	assert_int_equal(back.nr_nodes, 0);
}

static void test_epoch_log_offsets(void **state)
{
	struct epoch_log e, back;
	uint8_t buf[SD_EPOCH_LOG_HDR];

	memset(&e, 0, sizeof(e));
	e.ctime = UINT64_C(0x5b34e3a100000abc);
	e.time = 1530000000;
	e.epoch = 7;
	e.nr_nodes = 5;
	e.disable_recovery = 1;
	e.nr_copies = 3;
	e.copy_policy = 0x22;
	e.flags = 0x0024;
	strcpy(e.drv_name, "plain");
	memset(buf, 0xee, sizeof(buf));
	epoch_log_encode(&e, buf);
	assert_int_equal(get_le64(buf + 0), e.ctime);
	assert_int_equal(get_le64(buf + 8), 1530000000);
	assert_int_equal(get_le32(buf + 16), 7);
	assert_int_equal(get_le32(buf + 20), 5);
	assert_int_equal(buf[24], 1);
	assert_int_equal(buf[25], 3);
	assert_int_equal(buf[26], 0x22);
	assert_int_equal(buf[27] | buf[28] | buf[29], 0);
	assert_int_equal(get_le16(buf + 30), 0x0024);
	assert_string_equal((char *)buf + 32, "plain");
	assert_int_equal(buf[47], 0);
	epoch_log_decode(buf, &back);
	assert_memory_equal(&back, &e, sizeof(e));

	/* a 16-character store name fills the field without a NUL */
	memcpy(buf + 32, "abcdefghijklmnop", 16);
	epoch_log_decode(buf, &back);
	assert_string_equal(back.drv_name, "abcdefghijklmnop");
}

static void test_vdi_state_offsets(void **state)
{
	struct vdi_state s, back;
	uint8_t *buf = malloc(SD_VDI_STATE_SIZE);

	memset(&s, 0, sizeof(s));
	s.vid = 0xfd32fc;
	s.nr_copies = 3;
	s.snapshot = 1;
	s.deleted = 1;
	s.copy_policy = 0x11;
	s.block_size_shift = 21;
	s.parent_vid = 0x54c278;
	s.lock_state = 2;
	s.lock_owner.addr[12] = 127;
	s.lock_owner.addr[15] = 1;
	s.lock_owner.port = 7003;
	memset(buf, 0x77, SD_VDI_STATE_SIZE);
	vdi_state_encode(&s, buf);
	assert_int_equal(get_le32(buf + 0), 0xfd32fc);
	assert_int_equal(buf[4], 3);
	assert_int_equal(buf[5], 1);
	assert_int_equal(buf[6], 1);
	assert_int_equal(buf[7], 0x11);
	assert_int_equal(buf[8], 21);
	assert_int_equal(buf[9] | buf[10] | buf[11], 0);
	assert_int_equal(get_le32(buf + 12), 0x54c278);
	assert_int_equal(get_le32(buf + 16), 2);
	assert_int_equal(buf[20 + 12], 127);
	assert_int_equal(get_le16(buf + 20 + 16), 7003);
	for (int i = 60; i < SD_VDI_STATE_SIZE; i++)
		assert_int_equal(buf[i], 0);
	vdi_state_decode(buf, &back);
	assert_memory_equal(&back, &s, sizeof(s));
	free(buf);
}

static void test_config_offsets(void **state)
{
	struct sheepdog_config c, back;
	uint8_t buf[SD_CONFIG_SIZE];

	memset(&c, 0, sizeof(c));
	c.ctime = UINT64_C(0x5b34e3a100000abc);
	c.flags = 0x0004;
	c.copies = 3;
	strcpy(c.default_store, "plain");
	c.shutdown = 1;
	c.copy_policy = 0x22;
	c.block_size_shift = 22;
	c.version = SD_FORMAT_VERSION;
	c.space = UINT64_C(100) << 30;
	memset(buf, 0xee, sizeof(buf));
	sheepdog_config_encode(&c, buf);
	assert_int_equal(get_le64(buf + 0), c.ctime);
	assert_int_equal(get_le16(buf + 8), 4);
	assert_int_equal(buf[10], 3);
	assert_string_equal((char *)buf + 11, "plain");
	assert_int_equal(buf[26], 0);
	assert_int_equal(buf[27], 1);
	assert_int_equal(buf[28], 0x22);
	assert_int_equal(buf[29], 22);
	assert_int_equal(get_le16(buf + 30), 6);
	assert_int_equal(get_le64(buf + 32), UINT64_C(100) << 30);
	assert_int_equal(sheepdog_config_decode(buf, &back), 0);
	assert_memory_equal(&back, &c, sizeof(c));
}

static void test_ec_policy_byte(void **state)
{
	int d = 0, p = 0;

	assert_int_equal(ec_policy_encode(4, 2), 0x22);
	assert_int_equal(ec_policy_encode(2, 1), 0x11);
	assert_int_equal(ec_policy_encode(16, 15), 0x8f);
	assert_int_equal(ec_policy_encode(3, 1), 0);
	assert_int_equal(ec_policy_encode(4, 0), 0);
	assert_true(ec_policy_decode(0x22, &d, &p));
	assert_int_equal(d, 4);
	assert_int_equal(p, 2);
	assert_true(ec_policy_decode(0x8f, &d, &p));
	assert_int_equal(d, 16);
	assert_int_equal(p, 15);
	assert_true(ec_policy_decode(0x41, &d, &p));
	assert_int_equal(d, 8);
	assert_false(ec_policy_decode(0x00, &d, &p));
	assert_false(ec_policy_decode(0x20, &d, &p));
	assert_false(ec_policy_decode(0x31, &d, &p));
	assert_false(ec_policy_decode(0x01, &d, &p));
}

static void test_sd_time(void **state)
{
	uint64_t t = sd_time_now();

	assert_true((t >> 32) > 1500000000);
	assert_true((uint32_t)t < 1000000000);
	assert_int_equal((uint32_t)t % 1000, 0);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_sd_node_encode_offsets),
	    cmocka_unit_test(test_node_order),
	    cmocka_unit_test(test_address_printing),
	    cmocka_unit_test(test_str_to_addr),
	    cmocka_unit_test(test_inode_header_offsets),
	    cmocka_unit_test(test_inode_sizes),
	    cmocka_unit_test(test_oid_rules),
	    cmocka_unit_test(test_cluster_info_offsets),
	    cmocka_unit_test(test_epoch_log_offsets),
	    cmocka_unit_test(test_vdi_state_offsets),
	    cmocka_unit_test(test_config_offsets),
	    cmocka_unit_test(test_ec_policy_byte),
	    cmocka_unit_test(test_sd_time),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
