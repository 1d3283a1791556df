/*
 * Hash primitives against the spec's vectors (4.2, 6.2, 6.3): FNV-1a 64,
 * the VDI id hash, hash_u64 and the vnode chain of one node.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "sheepdog/hash.h"
#include "sheepdog/le.h"

static void test_fnv1a_64_of_test1(void **state)
{
	assert_int_equal(fnv_64a_buf("test1", 5, FNV1A_64_INIT),
			 UINT64_C(0x1f857c484dfd32fc));
	assert_int_equal(fnv_64a_buf("", 0, FNV1A_64_INIT), FNV1A_64_INIT);
}

static void test_vdi_hash_vectors(void **state)
{
	assert_int_equal(sd_vdi_hash("test1"), 0xfd32fc);
	assert_int_equal(sd_vdi_hash("test2"), 0xfd3815);
	assert_int_equal(sd_vdi_hash("test3"), 0xfd3662);
	assert_int_equal(sd_vdi_hash("base"), 0x54c278);
}

static void test_hash_u64_vector(void **state)
{
	uint8_t b[8];

	assert_int_equal(sd_hash_u64(UINT64_C(0x80fd32fc00000000)),
			 UINT64_C(0xefff2130860fcec9));
	/* hash_u64(v) equals hash_buf of the 8 LE bytes of v */
	put_le64(b, UINT64_C(0x80fd32fc00000000));
	assert_int_equal(sd_hash_buf(b, 8), UINT64_C(0xefff2130860fcec9));
}

static void test_node_vnode_chain(void **state)
{
	uint8_t id[18] = {0};
	uint64_t h;

	id[12] = 127;
	id[15] = 1;
	put_le16(id + 16, 7000);
	h = sd_hash_buf(id, sizeof(id));
	assert_int_equal(h, UINT64_C(0x9cb3d6dd0a4c0f9f));
	h = sd_hash_next(h);
	assert_int_equal(h, UINT64_C(0x3af2cba6e538cdf3));
	h = sd_hash_next(h);
	assert_int_equal(h, UINT64_C(0xfd38432fd111924b));
	h = sd_hash_next(h);
	assert_int_equal(h, UINT64_C(0x2ad2bef8f506e35d));
}

static void test_mix_is_fnv_of_le_bytes(void **state)
{
	uint8_t b[8];

	put_le64(b, UINT64_C(0x0102030405060708));
	assert_int_equal(fnv_64a_u64(UINT64_C(0x0102030405060708), 42),
			 fnv_64a_buf(b, 8, 42));
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_fnv1a_64_of_test1),
	    cmocka_unit_test(test_vdi_hash_vectors),
	    cmocka_unit_test(test_hash_u64_vector),
	    cmocka_unit_test(test_node_vnode_chain),
	    cmocka_unit_test(test_mix_is_fnv_of_le_bytes),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
