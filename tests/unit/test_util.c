/*
 * Helpers from util.h: dog's size printing and parsing (spec 11.1), strict
 * integer parsing, strbuf, and atomic file replacement.
 */
#include <errno.h>
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

#include "sheepdog/util.h"

static const char *sz(uint64_t v)
{
	static char buf[64];

	return size_to_str(v, buf, sizeof(buf), false);
}

static void test_size_to_str_examples(void **state)
{
	char buf[64];

	assert_string_equal(sz(0), "0.0 MB");
	assert_string_equal(sz(UINT64_C(4) << 20), "4.0 MB");
	assert_string_equal(sz(UINT64_C(20) << 20), "20 MB");
	assert_string_equal(sz(UINT64_C(5) << 30), "5.0 GB");
	assert_string_equal(sz(UINT64_C(1) << 30), "1.0 GB");
	assert_string_equal(sz(UINT64_C(178) << 20), "178 MB");
	assert_string_equal(sz(UINT64_C(1023) << 20), "1023 MB");
	assert_string_equal(sz(UINT64_C(12) << 40), "12 TB");
	assert_string_equal(sz(UINT64_C(2) << 50), "2.0 PB");
	assert_string_equal(sz(UINT64_C(1) << 60), "1.0 EB");
	assert_string_equal(sz(UINT64_MAX), "16 EB");
	assert_string_equal(
	    size_to_str(UINT64_C(5) << 30, buf, sizeof(buf), true),
	    "5368709120");
	assert_string_equal(size_to_str(0, buf, sizeof(buf), true), "0");
}

static void assert_size(const char *s, uint64_t want)
{
	uint64_t v = 0xdead;

	assert_int_equal(parse_size(s, &v), 0);
	assert_int_equal(v, want);
}

static void assert_bad_size(const char *s)
{
	uint64_t v;

	assert_int_equal(parse_size(s, &v), -EINVAL);
}

static void test_parse_size_accepts(void **state)
{
	assert_size("4096", 4096);
	assert_size("0", 0);
	assert_size("10M", UINT64_C(10) << 20);
	assert_size("10m", UINT64_C(10) << 20);
	assert_size("1.5G", UINT64_C(3) << 29);
	assert_size("2k", 2048);
	assert_size("2K", 2048);
	assert_size("512B", 512);
	assert_size("512b", 512);
	assert_size("1T", UINT64_C(1) << 40);
	assert_size("2p", UINT64_C(2) << 50);
	assert_size(".5K", 512);
	assert_size("4.", 4);
}

static void test_parse_size_rejects(void **state)
{
	assert_bad_size("");
	assert_bad_size("G");
	assert_bad_size("-1");
	assert_bad_size("-1G");
	assert_bad_size("+1");
	assert_bad_size(" 1");
	assert_bad_size("1 ");
	assert_bad_size("1GB");
	assert_bad_size("1X");
	assert_bad_size("1E");
	assert_bad_size("1e3");
	assert_bad_size("0x10");
	assert_bad_size("1.2.3");
	assert_bad_size(".");
	assert_bad_size("inf");
	assert_bad_size("nan");
	assert_bad_size("abc");
	assert_bad_size("20000000P");
}

static void test_parse_integers(void **state)
{
	uint64_t v;
	uint32_t w;

	assert_int_equal(parse_u64("18446744073709551615", 10, &v), 0);
	assert_int_equal(v, UINT64_MAX);
	assert_int_equal(parse_u64("18446744073709551616", 10, &v), -EINVAL);
	assert_int_equal(parse_u64("80fd32fc00000000", 16, &v), 0);
	assert_int_equal(v, UINT64_C(0x80fd32fc00000000));
	assert_int_equal(parse_u64("", 10, &v), -EINVAL);
	assert_int_equal(parse_u64("-1", 10, &v), -EINVAL);
	assert_int_equal(parse_u64(" 1", 10, &v), -EINVAL);
	assert_int_equal(parse_u64("1 ", 10, &v), -EINVAL);
	assert_int_equal(parse_u64("12a", 10, &v), -EINVAL);
	assert_int_equal(parse_u32("4294967295", 10, &w), 0);
	assert_int_equal(w, UINT32_MAX);
	assert_int_equal(parse_u32("4294967296", 10, &w), -EINVAL);
	assert_int_equal(parse_u32("7000", 0, &w), 0);
	assert_int_equal(w, 7000);
}

static void test_strbuf(void **state)
{
	struct strbuf sb = STRBUF_INIT;
	char *s;

	strbuf_addstr(&sb, "abc");
	strbuf_addf(&sb, "-%d-", 42);
	strbuf_add(&sb, "xyz", 2);
	assert_string_equal(sb.buf, "abc-42-xy");
	assert_int_equal(sb.len, 9);
	for (int i = 0; i < 1000; i++)
		strbuf_addf(&sb, "%s", "0123456789");
	assert_int_equal(sb.len, 10009);
	assert_int_equal(strlen(sb.buf), 10009);
	strbuf_reset(&sb);
	assert_string_equal(sb.buf, "");
	strbuf_addstr(&sb, "kept");
	s = strbuf_detach(&sb);
	assert_string_equal(s, "kept");
	assert_null(sb.buf);
	free(s);
	s = strbuf_detach(&sb);
	assert_string_equal(s, "");
	free(s);
	strbuf_release(&sb);
}

static void test_atomic_write_and_read_file(void **state)
{
	char dir[] = "/tmp/sd-util-XXXXXX";
	char path[64], tmp[80], buf[16];
	struct stat st;

	assert_non_null(mkdtemp(dir));
	snprintf(path, sizeof(path), "%s/config", dir);
	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	assert_int_equal(atomic_write_file(path, "first", 5), 0);
	assert_int_equal(atomic_write_file(path, "second!", 7), 0);
	assert_int_equal(stat(tmp, &st), -1);
	assert_int_equal(read_file(path, buf, sizeof(buf)), 7);
	assert_memory_equal(buf, "second!", 7);
	assert_int_equal(read_file(path, buf, 3), 3);
	assert_int_equal(read_file("/nonexistent/x", buf, 3), -ENOENT);
	snprintf(tmp, sizeof(tmp), "%s/missing/file", dir);
	assert_int_equal(atomic_write_file(tmp, "x", 1), -ENOENT);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_size_to_str_examples),
	    cmocka_unit_test(test_parse_size_accepts),
	    cmocka_unit_test(test_parse_size_rejects),
	    cmocka_unit_test(test_parse_integers),
	    cmocka_unit_test(test_strbuf),
	    cmocka_unit_test(test_atomic_write_and_read_file),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
