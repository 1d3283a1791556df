/*
 * Log output formats and destinations: bare lines for dog, the server and
 * JSON formats in a file, level filtering, and reopening after rotation.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "sheepdog/log.h"
#include "sheepdog/util.h"

static char dir[] = "/tmp/sd-log-XXXXXX";

static void read_log(const char *path, char *buf, size_t len)
{
	ssize_t n = read_file(path, buf, len - 1);

	assert_true(n >= 0);
	buf[n] = '\0';
}

static void test_default_format_is_bare_line(void **state)
{
	char path[64], buf[256];

	snprintf(path, sizeof(path), "%s/bare.log", dir);
	assert_int_equal(
	    log_init("dog", LOG_DST_FILE, LOG_FORMAT_DEFAULT, SDOG_INFO, path),
	    0);
	sd_err("Failed to create VDI %s: %s", "x", "VDI exists already");
	sd_info("line with newline\n");
	sd_debug("filtered");
	read_log(path, buf, sizeof(buf));
	assert_string_equal(buf, "Failed to create VDI x: VDI exists already\n"
				 "line with newline\n");
	log_close();
}

static void test_server_format(void **state)
{
	char path[64], buf[256], func[64];
	int mon_ok, usec, n;
	char mon[4], level[16];

	snprintf(path, sizeof(path), "%s/server.log", dir);
	assert_int_equal(log_init("sheep", LOG_DST_FILE, LOG_FORMAT_SERVER,
				  SDOG_DEBUG, path),
			 0);
	sd_warn("oid %016llx gone", 0x80fd32fc00000000ULL);
	read_log(path, buf, sizeof(buf));
	n = sscanf(buf, "%3s %*d %*d:%*d:%*d.%6d %15s [%63[^]]]", mon, &usec,
		   level, func);
	assert_int_equal(n, 4);
	mon_ok = strstr("JanFebMarAprMayJunJulAugSepOctNovDec", mon) != NULL;
	assert_true(mon_ok);
	assert_string_equal(level, "WARN");
	assert_string_equal(func, "test_server_format");
	assert_non_null(strstr(buf, "] oid 80fd32fc00000000 gone\n"));
	log_close();
}

static void test_json_format_and_reopen(void **state)
{
	char path[64], moved[80], buf[512];

	snprintf(path, sizeof(path), "%s/json.log", dir);
	snprintf(moved, sizeof(moved), "%s.1", path);
	assert_int_equal(
	    log_init("sheep", LOG_DST_FILE, LOG_FORMAT_JSON, SDOG_INFO, path),
	    0);
	sd_notice("say \"hi\"\tnow");
	read_log(path, buf, sizeof(buf));
	assert_non_null(strstr(buf, "\"level\":\"notice\""));
	assert_non_null(strstr(buf, "\"program\":\"sheep\""));
	assert_non_null(
	    strstr(buf, "\"func\":\"test_json_format_and_reopen\""));
	assert_non_null(strstr(buf, "\"msg\":\"say \\\"hi\\\"\\tnow\"}\n"));

	assert_int_equal(rename(path, moved), 0);
	assert_int_equal(log_reopen(), 0);
	sd_info("after rotation");
	read_log(path, buf, sizeof(buf));
	assert_non_null(strstr(buf, "after rotation"));
	read_log(moved, buf, sizeof(buf));
	assert_null(strstr(buf, "after rotation"));
	log_close();
	unlink(moved);
}

static void test_levels(void **state)
{
	assert_int_equal(log_level_from_name("debug"), SDOG_DEBUG);
	assert_int_equal(log_level_from_name("err"), SDOG_ERR);
	assert_int_equal(log_level_from_name("error"), SDOG_ERR);
	assert_int_equal(log_level_from_name("warning"), SDOG_WARNING);
	assert_int_equal(log_level_from_name("bogus"), -1);
	assert_string_equal(log_level_name(SDOG_EMERG), "emerg");
	assert_string_equal(log_level_name(SDOG_INFO), "info");
	assert_null(log_level_name(8));
	log_set_level(SDOG_NOTICE);
	assert_int_equal(log_get_level(), SDOG_NOTICE);
}

static int setup(void **state)
{
	return mkdtemp(dir) ? 0 : -1;
}

static int teardown(void **state)
{
	char path[80];

	snprintf(path, sizeof(path), "%s/bare.log", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/server.log", dir);
	unlink(path);
	snprintf(path, sizeof(path), "%s/json.log", dir);
	unlink(path);
	return rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_default_format_is_bare_line),
	    cmocka_unit_test(test_server_format),
	    cmocka_unit_test(test_json_format_and_reopen),
	    cmocka_unit_test(test_levels),
	};

	return cmocka_run_group_tests(tests, setup, teardown);
}
