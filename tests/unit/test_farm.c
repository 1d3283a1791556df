/*
 * The cluster snapshot store (backup/farm.c): the spec 10.1 layouts byte
 * by byte, tags, objects cut into slices and read back, identical slices
 * stored once, upstream's uncompressed files read, damaged and missing
 * files refused with the file named, user_snap records appended, and one
 * writer per farm.
 */
#include <errno.h>
#include <fcntl.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "sheepdog/farm.h"
#include "sheepdog/le.h"
#include "sheepdog/util.h"

static char farm_dir[64];

static int setup(void **state)
{
	snprintf(farm_dir, sizeof(farm_dir), "/tmp/test_farm.XXXXXX");
	assert_non_null(mkdtemp(farm_dir));
	return 0;
}

static int teardown(void **state)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf %s", farm_dir);
	assert_int_equal(system(cmd), 0);
	return 0;
}

static struct farm *open_new(void)
{
	struct farm *f = NULL;

	assert_int_equal(farm_open(farm_dir, true, &f), 0);
	return f;
}

static void file_of(const uint8_t sha1[SHA1_DIGEST_SIZE], char *buf, size_t len)
{
	char hex[41];

	sha1_to_hex(sha1, hex);
	snprintf(buf, len, "%s/objects/%.2s/%s", farm_dir, hex, hex + 2);
}

static size_t file_size(const char *path)
{
	struct stat st;

	assert_int_equal(stat(path, &st), 0);
	return st.st_size;
}

static void write_raw(const char *path, const void *buf, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	assert_true(fd >= 0);
	assert_int_equal(write(fd, buf, len), (ssize_t)len);
	close(fd);
}

/* ---- layouts ---- */

static void test_layouts(void **state)
{
	struct farm_header h = {3, 0, 22}, h2;
	struct farm_snap s = {.idx = 7, .time = 0x1122334455667788ULL}, s2;
	struct farm_trunk_entry e = {.oid = 0x8000123400000000ULL,
				     .nr_copies = 2,
				     .copy_policy = 0x42,
				     .block_size_shift = 20},
				e2;
	uint8_t hb[FARM_HDR_SIZE], sb[FARM_SNAP_SIZE],
	    tb[FARM_TRUNK_ENTRY_SIZE];

	farm_header_encode(&h, hb);
	assert_int_equal(get_le32(hb), 0xfee1c001);
	assert_int_equal(get_le32(hb + 4), 1);
	assert_int_equal(hb[8], 3);
	assert_int_equal(hb[10], 22);
	for (int i = 11; i < FARM_HDR_SIZE; i++)
		assert_int_equal(hb[i], 0);
	assert_int_equal(farm_header_decode(hb, &h2), 0);
	assert_int_equal(h2.copies, 3);
	assert_int_equal(h2.copy_policy, 0);
	assert_int_equal(h2.block_size_shift, 22);
	hb[0] ^= 1;
	assert_int_equal(farm_header_decode(hb, &h2), -EBADMSG);

	strcpy(s.tag, "nightly");
	memset(s.trunk_sha1, 0xab, SHA1_DIGEST_SIZE);
	farm_snap_encode(&s, sb);
	assert_int_equal(get_le32(sb), 7);
	assert_string_equal((char *)sb + 4, "nightly");
	assert_int_equal(get_le64(sb + 264), 0x1122334455667788ULL);
	assert_int_equal(sb[272], 0xab);
	assert_int_equal(sb[291], 0xab);
	assert_int_equal(sb[292] | sb[295] | sb[260] | sb[263], 0);
	farm_snap_decode(sb, &s2);
	assert_int_equal(s2.idx, 7);
	assert_string_equal(s2.tag, "nightly");
	assert_int_equal(s2.time, s.time);
	assert_memory_equal(s2.trunk_sha1, s.trunk_sha1, SHA1_DIGEST_SIZE);

	memset(e.sha1, 0xcd, SHA1_DIGEST_SIZE);
	farm_trunk_encode(&e, tb);
	assert_int_equal(get_le64(tb), e.oid);
	assert_int_equal(tb[8], 2);
	assert_int_equal(tb[9], 0x42);
	assert_int_equal(tb[10], 20);
	assert_int_equal(tb[11], 0);
	assert_int_equal(tb[12], 0xcd);
	assert_int_equal(tb[31], 0xcd);
	memset(&e2, 0, sizeof(e2));
	farm_trunk_decode(tb, &e2);
	assert_int_equal(e2.oid, e.oid);
	assert_int_equal(e2.nr_copies, 2);
	assert_int_equal(e2.copy_policy, 0x42);
	assert_int_equal(e2.block_size_shift, 20);
	assert_memory_equal(e2.sha1, e.sha1, SHA1_DIGEST_SIZE);
}

static void test_tags(void **state)
{
	char longtag[FARM_TAG_LEN + 1];
	struct farm_snap snaps[2] = {{.idx = 1, .tag = "a"},
				     {.idx = 12, .tag = "b2"}};

	assert_false(farm_tag_valid(""));
	assert_false(farm_tag_valid("1st"));
	assert_false(farm_tag_valid("12"));
	assert_true(farm_tag_valid("first-1"));
	memset(longtag, 'x', FARM_TAG_LEN);
	longtag[FARM_TAG_LEN] = '\0';
	assert_false(farm_tag_valid(longtag));
	longtag[FARM_TAG_LEN - 1] = '\0';
	assert_true(farm_tag_valid(longtag));

	assert_ptr_equal(farm_find_snap(snaps, 2, "12"), &snaps[1]);
	assert_ptr_equal(farm_find_snap(snaps, 2, "b2"), &snaps[1]);
	assert_ptr_equal(farm_find_snap(snaps, 2, "a"), &snaps[0]);
	assert_null(farm_find_snap(snaps, 2, "2"));
	assert_null(farm_find_snap(snaps, 2, "c"));
}

/* ---- objects ---- */

static void test_object_round_trip(void **state)
{
	size_t len = 2 * FARM_SLICE_SIZE + 1000, got;
	uint8_t *obj = xmalloc(len), *back = xmalloc(len), sha1[20], again[20];
	uint8_t *list;
	size_t list_len;
	uint64_t added;
	struct farm *f = open_new();
	char path[256];
	FILE *fp;
	uint8_t magic[4];

	for (size_t i = 0; i < len; i++)
		obj[i] = (uint8_t)(i * 7 + i / 1000);
	assert_int_equal(farm_put_object(f, obj, len, sha1, &added), 0);
	assert_true(added > 0);

	/* the slice list names three slices, each stored as a zstd frame */
	assert_int_equal(farm_get_file(f, sha1, 4096, &list, &list_len), 0);
	assert_int_equal(list_len, 3 * SHA1_DIGEST_SIZE);
	for (int i = 0; i < 3; i++) {
		uint8_t d[20];

		sha1_buf(
		    obj + i * FARM_SLICE_SIZE,
		    MIN((size_t)FARM_SLICE_SIZE, len - i * FARM_SLICE_SIZE), d);
		assert_memory_equal(list + 20 * i, d, 20);
		file_of(d, path, sizeof(path));
		fp = fopen(path, "rb");
		assert_non_null(fp);
		assert_int_equal(fread(magic, 1, 4, fp), 4);
		fclose(fp);
		assert_int_equal(get_le32(magic), 0xfd2fb528);
	}
	free(list);

	memset(back, 0, len);
	assert_int_equal(farm_get_object(f, sha1, back, len, &got, NULL), 0);
	assert_int_equal(got, len);
	assert_memory_equal(back, obj, len);
	/* a buffer too small is refused */
	assert_int_equal(farm_get_object(f, sha1, back, len - 1, &got, NULL),
			 -EFBIG);

	/* stored again: nothing added */
	assert_int_equal(farm_put_object(f, obj, len, again, &added), 0);
	assert_memory_equal(again, sha1, 20);
	assert_int_equal(added, 0);
	assert_int_equal(farm_sync(f), 0);
	farm_close(f);
	free(obj);
	free(back);
}

static void test_identical_slices_once(void **state)
{
	size_t len = 8 * FARM_SLICE_SIZE;
	uint8_t *zeros = xzalloc(len), sha1[20], z[20];
	uint64_t added, one;
	struct farm *f = open_new();
	char path[256];

	assert_int_equal(farm_put_object(f, zeros, FARM_SLICE_SIZE, sha1, &one),
			 0);
	assert_int_equal(farm_put_object(f, zeros, len, sha1, &added), 0);
	/* only the new slice list is added: the slice is there already */
	assert_true(added < 100);
	sha1_buf(zeros, FARM_SLICE_SIZE, z);
	file_of(z, path, sizeof(path));
	/* a file gets its name only once it is durable */
	assert_int_equal(access(path, F_OK), -1);
	assert_int_equal(farm_sync(f), 0);
	assert_true(file_size(path) < 1024);
	farm_close(f);
	free(zeros);
}

static void test_upstream_raw_files(void **state)
{
	uint8_t data[300], sha1[20], *buf;
	size_t len;
	struct farm *f = open_new();
	char path[256];

	/* raw content, even one that begins like a zstd frame */
	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (uint8_t)i;
	put_le32(data, 0xfd2fb528);
	sha1_buf(data, sizeof(data), sha1);
	file_of(sha1, path, sizeof(path));
	write_raw(path, data, sizeof(data));
	assert_int_equal(farm_get_file(f, sha1, sizeof(data), &buf, &len), 0);
	assert_int_equal(len, sizeof(data));
	assert_memory_equal(buf, data, len);
	free(buf);
	/* longer than the caller allows */
	assert_int_equal(farm_get_file(f, sha1, sizeof(data) - 1, &buf, &len),
			 -EBADMSG);
	farm_close(f);
}

static void test_damage_refused(void **state)
{
	size_t len = 2 * FARM_SLICE_SIZE, got;
	uint8_t *obj = xmalloc(len), sha1[20], slice[20], bad[20];
	struct farm *f = open_new();
	char path[256];
	FILE *fp;

	for (size_t i = 0; i < len; i++)
		obj[i] = (uint8_t)(i ^ (i >> 9));
	assert_int_equal(farm_put_object(f, obj, len, sha1, NULL), 0);
	assert_int_equal(farm_sync(f), 0);
	sha1_buf(obj + FARM_SLICE_SIZE, FARM_SLICE_SIZE, slice);
	file_of(slice, path, sizeof(path));

	/* a changed byte anywhere in the file */
	fp = fopen(path, "r+b");
	assert_non_null(fp);
	fseek(fp, 20, SEEK_SET);
	fputc('!', fp);
	fclose(fp);
	memset(bad, 0, sizeof(bad));
	assert_int_equal(farm_get_object(f, sha1, obj, len, &got, bad),
			 -EBADMSG);
	assert_memory_equal(bad, slice, 20);

	/* a missing slice, and a missing slice list */
	assert_int_equal(unlink(path), 0);
	assert_int_equal(farm_get_object(f, sha1, obj, len, &got, bad),
			 -ENOENT);
	assert_memory_equal(bad, slice, 20);
	file_of(sha1, path, sizeof(path));
	assert_int_equal(unlink(path), 0);
	assert_int_equal(farm_get_object(f, sha1, obj, len, &got, bad),
			 -ENOENT);
	assert_memory_equal(bad, sha1, 20);
	farm_close(f);
	free(obj);
}

/* ---- user_snap and trunk ---- */

static void test_user_snap(void **state)
{
	struct farm_header h = {2, 0, 22}, h2;
	struct farm_snap s = {0}, *snaps;
	struct farm_trunk_entry e[2] = {{.oid = 1, .nr_copies = 2},
					{.oid = 0x8000000100000000ULL}},
				*back;
	size_t nr;
	struct farm *f = open_new(), *other;
	char path[256];

	assert_int_equal(farm_read_snaps(f, &h2, &snaps, &nr), -ENOENT);
	memset(e[1].sha1, 9, 20);
	assert_int_equal(farm_put_trunk(f, e, 2, s.trunk_sha1), 0);
	strcpy(s.tag, "one");
	s.time = 1000;
	assert_int_equal(farm_add_snap(f, &h, &s), 0);
	assert_int_equal(s.idx, 1);
	strcpy(s.tag, "two");
	h.copies = 3;
	assert_int_equal(farm_add_snap(f, &h, &s), 0);
	assert_int_equal(s.idx, 2);

	snprintf(path, sizeof(path), "%s/user_snap", farm_dir);
	assert_int_equal(file_size(path), FARM_HDR_SIZE + 2 * FARM_SNAP_SIZE);
	assert_int_equal(farm_read_snaps(f, &h2, &snaps, &nr), 0);
	assert_int_equal(nr, 2);
	assert_int_equal(h2.copies, 3);
	assert_int_equal(snaps[0].idx, 1);
	assert_string_equal(snaps[0].tag, "one");
	assert_int_equal(snaps[0].time, 1000);
	assert_string_equal(snaps[1].tag, "two");

	assert_int_equal(farm_get_trunk(f, snaps[1].trunk_sha1, &back, &nr), 0);
	assert_int_equal(nr, 2);
	assert_int_equal(back[0].oid, 1);
	assert_int_equal(back[0].nr_copies, 2);
	assert_int_equal(back[1].oid, e[1].oid);
	assert_memory_equal(back[1].sha1, e[1].sha1, SHA1_DIGEST_SIZE);
	free(back);
	free(snaps);

	/* one dog at a time */
	assert_int_equal(farm_open(farm_dir, false, &other), -EWOULDBLOCK);
	farm_close(f);
	assert_int_equal(farm_open(farm_dir, false, &other), 0);
	farm_close(other);

	/* a truncated user_snap is refused */
	assert_int_equal(truncate(path, FARM_HDR_SIZE + 100), 0);
	assert_int_equal(farm_open(farm_dir, false, &f), 0);
	assert_int_equal(farm_read_snaps(f, &h2, &snaps, &nr), -EBADMSG);
	farm_close(f);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_layouts),
	    cmocka_unit_test(test_tags),
	    cmocka_unit_test_setup_teardown(test_object_round_trip, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_identical_slices_once, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_upstream_raw_files, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_damage_refused, setup,
					    teardown),
	    cmocka_unit_test_setup_teardown(test_user_snap, setup, teardown),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
