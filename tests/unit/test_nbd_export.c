/*
 * The pure part of sheep's NBD export layer (daemon/nbd_export_name.c):
 * export names "VDI", "VDI:ID" and "VDI@TAG" with their limits, and the
 * cutting of byte ranges into per-object pieces.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "nbd_export_name.h"

static int parse(const char *s, struct nbd_export_name *n)
{
	const char *why;
	int ret = nbd_export_parse_name(s, n, &why);

	assert_true(ret == 0 ? why == NULL : why != NULL);
	return ret;
}

static void test_name_working_vdi(void **state)
{
	struct nbd_export_name n;

	assert_int_equal(parse("vm", &n), 0);
	assert_string_equal(n.vdi, "vm");
	assert_string_equal(n.tag, "");
	assert_int_equal(n.snapid, 0);
	assert_false(nbd_export_name_is_snapshot(&n));
	/* a ':' not followed by digits only belongs to the name */
	assert_int_equal(parse("db:prod", &n), 0);
	assert_string_equal(n.vdi, "db:prod");
	assert_int_equal(parse("a:1b", &n), 0);
	assert_string_equal(n.vdi, "a:1b");
	assert_int_equal(n.snapid, 0);
}

static void test_name_snapshot_id(void **state)
{
	struct nbd_export_name n;

	assert_int_equal(parse("vm:3", &n), 0);
	assert_string_equal(n.vdi, "vm");
	assert_int_equal(n.snapid, 3);
	assert_true(nbd_export_name_is_snapshot(&n));
	/* the last ':' separates */
	assert_int_equal(parse("a:b:42", &n), 0);
	assert_string_equal(n.vdi, "a:b");
	assert_int_equal(n.snapid, 42);
	assert_int_equal(parse("vm:4294967295", &n), 0);
	assert_int_equal(n.snapid, 4294967295U);
}

static void test_name_snapshot_tag(void **state)
{
	struct nbd_export_name n;

	assert_int_equal(parse("vm@nightly", &n), 0);
	assert_string_equal(n.vdi, "vm");
	assert_string_equal(n.tag, "nightly");
	assert_int_equal(n.snapid, 0);
	assert_true(nbd_export_name_is_snapshot(&n));
	/* the first '@' separates; the tag may hold ':' and '@' */
	assert_int_equal(parse("vm@2024-01-01@12:00", &n), 0);
	assert_string_equal(n.vdi, "vm");
	assert_string_equal(n.tag, "2024-01-01@12:00");
}

static void test_name_rejects(void **state)
{
	struct nbd_export_name n;
	char long_name[300];

	assert_int_equal(parse("", &n), -EINVAL);
	assert_int_equal(parse("@tag", &n), -EINVAL);
	assert_int_equal(parse(":5", &n), -EINVAL);
	assert_int_equal(parse("vm@", &n), -EINVAL);
	assert_int_equal(parse("vm:0", &n), -EINVAL);
	assert_int_equal(parse("vm:4294967296", &n), -EINVAL);
	assert_int_equal(parse("vm:99999999999999999999999", &n), -EINVAL);

	memset(long_name, 'x', 255);
	long_name[255] = '\0';
	assert_int_equal(parse(long_name, &n), 0);
	assert_int_equal(strlen(n.vdi), 255);
	long_name[255] = 'x';
	long_name[256] = '\0';
	assert_int_equal(parse(long_name, &n), -EINVAL);

	/* tags: 255 bytes at most */
	memcpy(long_name, "vm@", 3);
	memset(long_name + 3, 't', 255);
	long_name[258] = '\0';
	assert_int_equal(parse(long_name, &n), 0);
	assert_int_equal(strlen(n.tag), 255);
	long_name[258] = 't';
	long_name[259] = '\0';
	assert_int_equal(parse(long_name, &n), -EINVAL);
}

static void test_range_pieces(void **state)
{
	struct obj_range r;
	struct obj_piece p;
	const uint8_t shift = 22; /* 4 MiB */
	const uint64_t mib = 1 << 20;

	/* 1 MiB before the end of object 2 to 512 KiB into object 5 */
	obj_range_init(&r, 11 * mib, (uint32_t)(mib + 8 * mib + 512 * 1024),
		       shift);
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 2);
	assert_int_equal(p.off, 3 * mib);
	assert_int_equal(p.len, mib);
	assert_int_equal(p.pos, 0);
	assert_false(obj_piece_whole(&p, shift));
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 3);
	assert_int_equal(p.off, 0);
	assert_int_equal(p.len, 4 * mib);
	assert_int_equal(p.pos, mib);
	assert_true(obj_piece_whole(&p, shift));
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 4);
	assert_true(obj_piece_whole(&p, shift));
	assert_int_equal(p.pos, 5 * mib);
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 5);
	assert_int_equal(p.off, 0);
	assert_int_equal(p.len, 512 * 1024);
	assert_int_equal(p.pos, 9 * mib);
	assert_false(obj_range_next(&r, &p));

	/* an empty range has no piece */
	obj_range_init(&r, 7, 0, shift);
	assert_false(obj_range_next(&r, &p));
}

static void test_range_large_offsets(void **state)
{
	struct obj_range r;
	struct obj_piece p;

	/* 2 GiB objects (the largest shift) and offsets beyond 4 GiB */
	obj_range_init(&r, (UINT64_C(3) << 31) - 1, 2, 31);
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 2);
	assert_int_equal(p.off, (UINT32_C(1) << 31) - 1);
	assert_int_equal(p.len, 1);
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, 3);
	assert_int_equal(p.off, 0);
	assert_int_equal(p.len, 1);
	assert_false(obj_range_next(&r, &p));

	/* 1 MiB objects: index 2^20 + 1 of a hyper volume */
	obj_range_init(&r, ((UINT64_C(1) << 20) + 1) << 20, 4096, 20);
	assert_true(obj_range_next(&r, &p));
	assert_int_equal(p.idx, (1U << 20) + 1);
	assert_int_equal(p.off, 0);
	assert_int_equal(p.len, 4096);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_name_working_vdi),
	    cmocka_unit_test(test_name_snapshot_id),
	    cmocka_unit_test(test_name_snapshot_tag),
	    cmocka_unit_test(test_name_rejects),
	    cmocka_unit_test(test_range_pieces),
	    cmocka_unit_test(test_range_large_offsets),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
