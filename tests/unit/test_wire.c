/*
 * Request and response header encoding (spec 1.2, 1.3, 2.2): the byte
 * offsets of every union variant, the opcode-to-variant table, raw
 * passthrough for unknown opcodes, and decode/encode round trips.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/le.h"
#include "sheepdog/proto.h"

static void assert_req_round_trip(const uint8_t buf[SD_HEADER_SIZE])
{
	struct sd_req req;
	uint8_t again[SD_HEADER_SIZE];

	sd_req_decode(buf, &req);
	sd_req_encode(&req, again);
	assert_memory_equal(buf, again, SD_HEADER_SIZE);
}

static void assert_rsp_round_trip(const uint8_t buf[SD_HEADER_SIZE])
{
	struct sd_rsp rsp;
	uint8_t again[SD_HEADER_SIZE];

	sd_rsp_decode(buf, &rsp);
	sd_rsp_encode(&rsp, again);
	assert_memory_equal(buf, again, SD_HEADER_SIZE);
}

static void test_common_header_bytes(void **state)
{
	struct sd_req req;
	uint8_t buf[SD_HEADER_SIZE];
	static const uint8_t want[16] = {0x02, 0x02, 0x01, 0x00, 0x44, 0x33,
					 0x22, 0x11, 0xef, 0xbe, 0xad, 0xde,
					 0x00, 0x10, 0x00, 0x00};

	sd_init_req(&req, SD_OP_READ_OBJ);
	req.flags = SD_FLAG_CMD_WRITE;
	req.epoch = 0x11223344;
	req.id = 0xdeadbeef;
	req.data_length = 4096;
	sd_req_encode(&req, buf);
	assert_memory_equal(buf, want, 16);
}

static void test_init_req_proto_ver(void **state)
{
	struct sd_req req;

	memset(&req, 0xff, sizeof(req));
	sd_init_req(&req, SD_OP_NEW_VDI);
	assert_int_equal(req.proto_ver, SD_PROTO_VER);
	assert_int_equal(req.opcode, SD_OP_NEW_VDI);
	assert_int_equal(req.flags, 0);
	assert_int_equal(req.data_length, 0);
	assert_int_equal(req.vdi.vdi_size, 0);
	sd_init_req(&req, SD_OP_GET_NODE_LIST);
	assert_int_equal(req.proto_ver, SD_SHEEP_PROTO_VER);
	sd_init_req(&req, 0x7f);
	assert_int_equal(req.proto_ver, 0x02);
	sd_init_req(&req, 0x80);
	assert_int_equal(req.proto_ver, 0x0a);
}

static void test_obj_request_offsets(void **state)
{
	struct sd_req req, back;
	uint8_t buf[SD_HEADER_SIZE];

	sd_init_req(&req, SD_OP_READ_OBJ);
	req.obj.oid = UINT64_C(0x00fd32fc00000005);
	req.obj.cow_oid = UINT64_C(0x00abcdef00000005);
	req.obj.copies = 3;
	req.obj.copy_policy = 0x22;
	req.obj.ec_index = 4;
	req.obj.tgt_epoch = 9;
	req.obj.offset = UINT64_C(0x0000000100002000);
	sd_req_encode(&req, buf);
	assert_int_equal(get_le64(buf + 16), req.obj.oid);
	assert_int_equal(get_le64(buf + 24), req.obj.cow_oid);
	assert_int_equal(buf[32], 3);
	assert_int_equal(buf[33], 0x22);
	assert_int_equal(buf[34], 4);
	assert_int_equal(buf[35], 0);
	assert_int_equal(get_le32(buf + 36), 9);
	/* offset is a u64 at 40..47 (QEMU's view) */
	assert_int_equal(get_le32(buf + 40), 0x2000);
	assert_int_equal(get_le32(buf + 44), 1);
	sd_req_decode(buf, &back);
	assert_int_equal(back.obj.offset, UINT64_C(0x0000000100002000));
	assert_int_equal(back.obj.tgt_epoch, 9);
	assert_req_round_trip(buf);
}

static void test_new_vdi_request_bytes(void **state)
{
	struct sd_req req;
	uint8_t buf[SD_HEADER_SIZE];
	static const uint8_t want[32] = {
	    /* vdi_size = 10 GiB */
	    0x00,
	    0x00,
	    0x00,
	    0x80,
	    0x02,
	    0x00,
	    0x00,
	    0x00,
	    /* base_vdi_id */
	    0xfc,
	    0x32,
	    0xfd,
	    0x00,
	    /* copies, copy_policy, store_policy, block_size_shift */
	    0x03,
	    0x00,
	    0x01,
	    0x16,
	    /* snapid */
	    0x01,
	    0x00,
	    0x00,
	    0x00,
	    /* type */
	    0x01,
	    0x00,
	    0x00,
	    0x00,
	    /* unused */
	    0,
	    0,
	    0,
	    0,
	    0,
	    0,
	    0,
	    0,
	};

	sd_init_req(&req, SD_OP_NEW_VDI);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = 256;
	req.vdi.vdi_size = UINT64_C(10) << 30;
	req.vdi.base_vdi_id = 0xfd32fc;
	req.vdi.copies = 3;
	req.vdi.store_policy = 1;
	req.vdi.block_size_shift = 22;
	req.vdi.snapid = 1;
	req.vdi.type = 1;
	sd_req_encode(&req, buf);
	assert_memory_equal(buf + 16, want, 32);
	assert_req_round_trip(buf);
}

static void test_cluster_request_offsets(void **state)
{
	struct sd_req req;
	uint8_t buf[SD_HEADER_SIZE];

	sd_init_req(&req, SD_OP_MAKE_FS);
	req.cluster.ctime = UINT64_C(0x5b34e3a10000abcd);
	req.cluster.copies = 2;
	req.cluster.copy_policy = 0x11;
	req.cluster.flags =
	    SD_CLUSTER_FLAG_AUTO_VNODES | SD_CLUSTER_FLAG_STRICT;
	req.cluster.tag = 0xa1b2c3d4;
	req.cluster.nodes_nr = 6;
	req.cluster.block_size_shift = 23;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le64(buf + 16), 0);
	assert_int_equal(get_le64(buf + 24), req.cluster.ctime);
	assert_int_equal(buf[32], 2);
	assert_int_equal(buf[33], 0x11);
	assert_int_equal(get_le16(buf + 34), 0x0005);
	assert_int_equal(get_le32(buf + 36), 0xa1b2c3d4);
	assert_int_equal(get_le32(buf + 40), 6);
	assert_int_equal(buf[44], 23);
	assert_int_equal(buf[45] | buf[46] | buf[47], 0);
	assert_req_round_trip(buf);
}

static void test_vdi_state_request_offsets(void **state)
{
	struct sd_req req;
	uint8_t buf[SD_HEADER_SIZE];

	sd_init_req(&req, SD_OP_NOTIFY_VDI_ADD);
	req.vdi_state.old_vid = 0x111111;
	req.vdi_state.new_vid = 0x222222;
	req.vdi_state.copies = 4;
	req.vdi_state.set_bitmap = 1;
	req.vdi_state.copy_policy = 0x22;
	req.vdi_state.block_size_shift = 20;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le32(buf + 16), 0x111111);
	assert_int_equal(get_le32(buf + 20), 0x222222);
	assert_int_equal(buf[24], 4);
	assert_int_equal(buf[25], 1);
	assert_int_equal(buf[26], 0x22);
	assert_int_equal(buf[27], 20);
	assert_req_round_trip(buf);
	assert_int_equal(sd_op_req_variant(SD_OP_ALTER_VDI_COPY),
			 SD_REQ_VDI_STATE);
}

static void test_ref_forw_checkpoint_coherence_offsets(void **state)
{
	struct sd_req req;
	uint8_t buf[SD_HEADER_SIZE];

	sd_init_req(&req, SD_OP_DECREF_PEER);
	req.ref.oid = UINT64_C(0x08fd32fc00000001);
	req.ref.generation = 7;
	req.ref.count = 3;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le64(buf + 16), req.ref.oid);
	assert_int_equal(get_le32(buf + 24), 7);
	assert_int_equal(get_le32(buf + 28), 3);
	assert_req_round_trip(buf);

	sd_init_req(&req, SD_OP_REPAIR_REPLICA);
	req.forw.oid = 0x42;
	req.forw.addr[12] = 10;
	req.forw.addr[15] = 9;
	req.forw.port = 7001;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le64(buf + 16), 0x42);
	assert_int_equal(buf[24 + 12], 10);
	assert_int_equal(buf[24 + 15], 9);
	assert_int_equal(get_le16(buf + 40), 7001);
	assert_req_round_trip(buf);

	sd_init_req(&req, SD_OP_VDI_STATE_CHECKPOINT_CTL);
	req.checkpoint.get = 1;
	req.checkpoint.tgt_epoch = 5;
	req.checkpoint.vid = 0xabcdef;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le32(buf + 16), 1);
	assert_int_equal(get_le32(buf + 20), 5);
	assert_int_equal(get_le32(buf + 24), 0xabcdef);
	assert_req_round_trip(buf);

	sd_init_req(&req, SD_OP_INODE_COHERENCE);
	req.coherence.vid = 0x123456;
	req.coherence.validate = 1;
	sd_req_encode(&req, buf);
	assert_int_equal(get_le32(buf + 16), 0x123456);
	assert_int_equal(get_le32(buf + 20), 1);
	assert_req_round_trip(buf);
}

static void test_raw_request_passthrough(void **state)
{
	uint8_t buf[SD_HEADER_SIZE], out[SD_HEADER_SIZE];
	struct sd_req req;

	for (int i = 0; i < SD_HEADER_SIZE; i++)
		buf[i] = (uint8_t)(i * 7 + 1);
	buf[1] = 0xee; /* not an opcode */
	sd_req_decode(buf, &req);
	assert_int_equal(req.opcode, 0xee);
	assert_memory_equal(req.raw, buf + 16, 32);
	sd_req_encode(&req, out);
	assert_memory_equal(out, buf, SD_HEADER_SIZE);

	buf[1] = SD_OP_GET_NODE_LIST; /* known, but no request variant */
	assert_req_round_trip(buf);
}

static void test_known_variant_zeroes_unused_bytes(void **state)
{
	uint8_t buf[SD_HEADER_SIZE], out[SD_HEADER_SIZE];
	struct sd_req req;

	memset(buf, 0xff, sizeof(buf));
	buf[1] = SD_OP_INODE_COHERENCE;
	sd_req_decode(buf, &req);
	sd_req_encode(&req, out);
	assert_memory_equal(out, buf, 24);
	for (int i = 24; i < SD_HEADER_SIZE; i++)
		assert_int_equal(out[i], 0);
}

static void test_vdi_response_offsets(void **state)
{
	struct sd_rsp rsp = {0};
	uint8_t buf[SD_HEADER_SIZE];

	rsp.opcode = SD_OP_GET_VDI_INFO;
	rsp.epoch = 3;
	rsp.id = 77;
	rsp.result = SD_RES_NO_TAG;
	rsp.vdi.vdi_id = 0xfd32fc;
	rsp.vdi.attr_id = 0x10203040;
	rsp.vdi.copies = 3;
	rsp.vdi.block_size_shift = 22;
	sd_rsp_encode(&rsp, buf);
	assert_int_equal(buf[1], SD_OP_GET_VDI_INFO);
	assert_int_equal(get_le32(buf + 4), 3);
	assert_int_equal(get_le32(buf + 8), 77);
	assert_int_equal(get_le32(buf + 16), SD_RES_NO_TAG);
	assert_int_equal(get_le32(buf + 20), 0);
	assert_int_equal(get_le32(buf + 24), 0xfd32fc);
	assert_int_equal(get_le32(buf + 28), 0x10203040);
	assert_int_equal(buf[32], 3);
	assert_int_equal(buf[33], 22);
	for (int i = 34; i < SD_HEADER_SIZE; i++)
		assert_int_equal(buf[i], 0);
	assert_rsp_round_trip(buf);
}

static void test_node_response_offsets(void **state)
{
	struct sd_rsp rsp = {0};
	uint8_t buf[SD_HEADER_SIZE];

	rsp.opcode = SD_OP_STAT_SHEEP;
	rsp.node.nr_nodes = 5;
	rsp.node.store_size = UINT64_C(0x123456789a);
	rsp.node.store_free = UINT64_C(0x0fedcba987);
	sd_rsp_encode(&rsp, buf);
	assert_int_equal(get_le32(buf + 20), 5);
	assert_int_equal(get_le64(buf + 24), 0);
	assert_int_equal(get_le64(buf + 32), UINT64_C(0x123456789a));
	assert_int_equal(get_le64(buf + 40), UINT64_C(0x0fedcba987));
	assert_rsp_round_trip(buf);
	assert_int_equal(sd_op_rsp_variant(SD_OP_GET_NODE_LIST), SD_RSP_NODE);
}

static void test_obj_hash_default_response_offsets(void **state)
{
	struct sd_rsp rsp = {0};
	uint8_t buf[SD_HEADER_SIZE];

	rsp.opcode = SD_OP_READ_OBJ;
	rsp.obj.copies = 2;
	rsp.obj.offset = UINT64_C(0x1122334455667788);
	sd_rsp_encode(&rsp, buf);
	assert_int_equal(buf[20], 2);
	assert_int_equal(buf[21] | buf[22] | buf[23], 0);
	assert_int_equal(get_le64(buf + 24), UINT64_C(0x1122334455667788));
	assert_rsp_round_trip(buf);

	memset(&rsp, 0, sizeof(rsp));
	rsp.opcode = SD_OP_GET_HASH;
	for (int i = 0; i < 20; i++)
		rsp.hash.digest[i] = (uint8_t)(0xa0 + i);
	sd_rsp_encode(&rsp, buf);
	assert_int_equal(get_le32(buf + 20), 0);
	assert_memory_equal(buf + 24, rsp.hash.digest, 20);
	assert_int_equal(get_le32(buf + 44), 0);
	assert_rsp_round_trip(buf);

	memset(&rsp, 0, sizeof(rsp));
	rsp.opcode = SD_OP_GET_CLUSTER_DEFAULT;
	rsp.cluster_default.nr_copies = 3;
	rsp.cluster_default.copy_policy = 0x22;
	rsp.cluster_default.block_size_shift = 22;
	sd_rsp_encode(&rsp, buf);
	assert_int_equal(buf[20], 3);
	assert_int_equal(buf[21], 0x22);
	assert_int_equal(buf[22], 22);
	assert_int_equal(buf[23], 0);
	assert_rsp_round_trip(buf);
}

static void test_raw_response_passthrough(void **state)
{
	uint8_t buf[SD_HEADER_SIZE];
	struct sd_rsp rsp;

	for (int i = 0; i < SD_HEADER_SIZE; i++)
		buf[i] = (uint8_t)(0xff - i);
	buf[1] = SD_OP_STAT_CLUSTER;
	sd_rsp_decode(buf, &rsp);
	assert_int_equal(rsp.result, get_le32(buf + 16));
	assert_memory_equal(rsp.raw, buf + 20, 28);
	assert_rsp_round_trip(buf);
	buf[1] = 0x70;
	assert_rsp_round_trip(buf);
}

static void test_variant_table(void **state)
{
	static const uint8_t obj_ops[] = {
	    0x01, 0x02, 0x03, 0x04, 0x05, 0x16, 0xa1, 0xa2,
	    0xa3, 0xa4, 0xa5, 0xa6, 0xac, 0xb4, 0xbd, 0xc6,
	};
	static const uint8_t vdi_ops[] = {0x11, 0x12, 0x13, 0x14, 0x17, 0x89};
	static const uint8_t cluster_ops[] = {0x84, 0x85, 0x87, 0xbf, 0x18};

	for (size_t i = 0; i < sizeof(obj_ops); i++) {
		assert_int_equal(sd_op_req_variant(obj_ops[i]), SD_REQ_OBJ);
		assert_int_equal(sd_op_rsp_variant(obj_ops[i]),
				 obj_ops[i] == SD_OP_GET_HASH ? SD_RSP_HASH
							      : SD_RSP_OBJ);
	}
	for (size_t i = 0; i < sizeof(vdi_ops); i++) {
		assert_int_equal(sd_op_req_variant(vdi_ops[i]), SD_REQ_VDI);
		assert_int_equal(sd_op_rsp_variant(vdi_ops[i]), SD_RSP_VDI);
	}
	for (size_t i = 0; i < sizeof(cluster_ops); i++)
		assert_int_equal(sd_op_req_variant(cluster_ops[i]),
				 SD_REQ_CLUSTER);
	assert_int_equal(sd_op_rsp_variant(SD_OP_GET_CLUSTER_DEFAULT),
			 SD_RSP_CLUSTER_DEFAULT);
	assert_int_equal(sd_op_req_variant(SD_OP_DECREF_OBJ), SD_REQ_REF);
	assert_int_equal(sd_op_req_variant(SD_OP_DECREF_PEER), SD_REQ_REF);
	assert_int_equal(sd_op_req_variant(SD_OP_REPAIR_REPLICA), SD_REQ_FORW);
	assert_int_equal(sd_op_req_variant(SD_OP_VDI_STATE_CHECKPOINT_CTL),
			 SD_REQ_CHECKPOINT);
	assert_int_equal(sd_op_req_variant(SD_OP_INODE_COHERENCE),
			 SD_REQ_COHERENCE);
	assert_int_equal(sd_op_req_variant(SD_OP_READ_VDIS), SD_REQ_RAW);
	assert_int_equal(sd_op_req_variant(SD_OP_GET_NODE_LIST), SD_REQ_RAW);
	assert_int_equal(sd_op_req_variant(0x00), SD_REQ_RAW);
	assert_int_equal(sd_op_req_variant(0xff), SD_REQ_RAW);
	assert_int_equal(sd_op_rsp_variant(SD_OP_MAKE_FS), SD_RSP_RAW);
}

static void test_op_names(void **state)
{
	assert_string_equal(sd_op_name(SD_OP_READ_OBJ), "READ_OBJ");
	assert_string_equal(sd_op_name(SD_OP_CREATE_AND_WRITE_PEER),
			    "CREATE_AND_WRITE_PEER");
	assert_string_equal(sd_op_name(SD_OP_GET_VNODES), "GET_VNODES");
	assert_null(sd_op_name(0x00));
	assert_null(sd_op_name(0xa7));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_common_header_bytes),
	    cmocka_unit_test(test_init_req_proto_ver),
	    cmocka_unit_test(test_obj_request_offsets),
	    cmocka_unit_test(test_new_vdi_request_bytes),
	    cmocka_unit_test(test_cluster_request_offsets),
	    cmocka_unit_test(test_vdi_state_request_offsets),
	    cmocka_unit_test(test_ref_forw_checkpoint_coherence_offsets),
	    cmocka_unit_test(test_raw_request_passthrough),
	    cmocka_unit_test(test_known_variant_zeroes_unused_bytes),
	    cmocka_unit_test(test_vdi_response_offsets),
	    cmocka_unit_test(test_node_response_offsets),
	    cmocka_unit_test(test_obj_hash_default_response_offsets),
	    cmocka_unit_test(test_raw_response_passthrough),
	    cmocka_unit_test(test_variant_table),
	    cmocka_unit_test(test_op_names),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
