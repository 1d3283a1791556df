/*
 * Result-code texts (spec 3) as dog prints them, including the fallback for
 * codes upstream leaves without text.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "sheepdog/proto.h"

static void test_public_texts(void **state)
{
	assert_string_equal(sd_strerror(SD_RES_SUCCESS), "Success");
	assert_string_equal(sd_strerror(SD_RES_NO_OBJ), "No object found");
	assert_string_equal(sd_strerror(SD_RES_VDI_EXIST),
			    "VDI exists already");
	assert_string_equal(sd_strerror(SD_RES_INVALID_PARMS),
			    "Invalid parameters");
	assert_string_equal(sd_strerror(SD_RES_NO_VDI), "No VDI found");
	assert_string_equal(sd_strerror(SD_RES_NO_TAG),
			    "Failed to find requested tag");
	assert_string_equal(sd_strerror(SD_RES_WAIT_FOR_FORMAT),
			    "Waiting for cluster to be formatted");
	assert_string_equal(sd_strerror(SD_RES_WAIT_FOR_JOIN),
			    "Waiting for other nodes to join cluster");
	assert_string_equal(
	    sd_strerror(SD_RES_HALT),
	    "IO has halted as there are not enough living nodes");
	assert_string_equal(sd_strerror(SD_RES_READONLY),
			    "Object is read-only");
	assert_string_equal(sd_strerror(SD_RES_INODE_INVALIDATED),
			    "Inode object is invalidated");
}

static void test_internal_texts(void **state)
{
	assert_string_equal(sd_strerror(SD_RES_OLD_NODE_VER),
			    "Request has an old epoch");
	assert_string_equal(sd_strerror(SD_RES_BUFFER_SMALL),
			    "The buffer is too small");
	assert_string_equal(
	    sd_strerror(SD_RES_FORCE_RECOVER),
	    "Cluster is running/halted and cannot be force recovered");
	assert_string_equal(sd_strerror(SD_RES_GATEWAY_MODE),
			    "Targeted node is gateway mode");
	assert_string_equal(sd_strerror(SD_RES_INVALID_VNODES_STRATEGY),
			    "Invalid cluster vnodes strategy");
}

static void test_codes_without_text(void **state)
{
	assert_string_equal(sd_strerror(SD_RES_VDI_NOT_EMPTY),
			    "Invalid error code 92");
	assert_string_equal(sd_strerror(SD_RES_COLLECTING_CINFO),
			    "Invalid error code 95");
	assert_string_equal(sd_strerror(SD_RES_NO_CHECKPOINT_ENTRY),
			    "Invalid error code 99");
	assert_string_equal(sd_strerror(0x1b), "Invalid error code 1b");
	assert_string_equal(sd_strerror(0xabcdef), "Invalid error code abcdef");
}

static void *other_thread(void *arg)
{
	return (void *)sd_strerror(0xfe);
}

static void test_unknown_buffer_is_per_thread(void **state)
{
	pthread_t t;
	void *theirs;
	const char *mine = sd_strerror(0xfd);

	pthread_create(&t, NULL, other_thread, NULL);
	pthread_join(t, &theirs);
	assert_ptr_not_equal(mine, theirs);
	assert_string_equal(mine, "Invalid error code fd");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_public_texts),
	    cmocka_unit_test(test_internal_texts),
	    cmocka_unit_test(test_codes_without_text),
	    cmocka_unit_test(test_unknown_buffer_is_per_thread),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
