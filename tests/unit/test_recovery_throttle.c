/*
 * The recovery throttle (daemon/recovery_throttle.c): at most max objects
 * start in each interval, 0 0 is no limit, half a setting is refused, and
 * changing the setting wakes a recovery thread that sleeps on the old one.
 * The file is compiled in here: it needs nothing else from the daemon.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include <cmocka.h>

#include "../../daemon/recovery_throttle.c"

static uint64_t elapsed_ms(uint64_t since)
{
	return mono_ms() - since;
}

static void test_unthrottled_by_default(void **state)
{
	uint64_t interval, start = mono_ms();
	uint32_t max;

	recovery_throttle_get(&max, &interval);
	assert_int_equal(max, 0);
	assert_int_equal(interval, 0);
	for (int i = 0; i < 10000; i++)
		recovery_throttle_wait();
	assert_true(elapsed_ms(start) < 1000);
}

static void test_half_a_setting_is_refused(void **state)
{
	uint64_t interval;
	uint32_t max;

	assert_int_equal(recovery_throttle_set(7, 300), SD_RES_SUCCESS);
	assert_int_equal(recovery_throttle_set(0, 100), SD_RES_INVALID_PARMS);
	assert_int_equal(recovery_throttle_set(5, 0), SD_RES_INVALID_PARMS);
	recovery_throttle_get(&max, &interval);
	assert_int_equal(max, 7);
	assert_int_equal(interval, 300);
	assert_int_equal(recovery_throttle_set(0, 0), SD_RES_SUCCESS);
	recovery_throttle_get(&max, &interval);
	assert_int_equal(max, 0);
	assert_int_equal(interval, 0);
}

/* 3 per 200 ms: objects 1-3 at once, 4-6 after one interval, 7-9 after
 * two; never sooner. */
static void test_max_per_interval(void **state)
{
	uint64_t start;

	assert_int_equal(recovery_throttle_set(3, 200), SD_RES_SUCCESS);
	start = mono_ms();
	for (int i = 0; i < 3; i++)
		recovery_throttle_wait();
	assert_true(elapsed_ms(start) < 150);
	for (int i = 0; i < 3; i++)
		recovery_throttle_wait();
	assert_true(elapsed_ms(start) >= 200);
	for (int i = 0; i < 3; i++)
		recovery_throttle_wait();
	assert_true(elapsed_ms(start) >= 400);
	assert_true(elapsed_ms(start) < 2000);
	recovery_throttle_set(0, 0);
}

/* Has a thread taken an object in the current window? */
static bool window_count_seen(void)
{
	bool seen;

	pthread_mutex_lock(&throttle_lock);
	seen = window_count > 0;
	pthread_mutex_unlock(&throttle_lock);
	return seen;
}

struct waiter {
	int rounds;
	uint64_t done_ms;
};

static void *throttled_thread(void *arg)
{
	struct waiter *w = arg;

	for (int i = 0; i < w->rounds; i++)
		recovery_throttle_wait();
	w->done_ms = mono_ms();
	return NULL;
}

/* Threads share one budget: 4 threads x 2 objects at 4 per 300 ms need
 * one interval, not four. */
static void test_threads_share_the_budget(void **state)
{
	struct waiter w[4] = {{2, 0}, {2, 0}, {2, 0}, {2, 0}};
	pthread_t t[4];
	uint64_t start, last = 0;

	assert_int_equal(recovery_throttle_set(4, 300), SD_RES_SUCCESS);
	start = mono_ms();
	for (int i = 0; i < 4; i++)
		assert_int_equal(
		    pthread_create(&t[i], NULL, throttled_thread, &w[i]), 0);
	for (int i = 0; i < 4; i++) {
		pthread_join(t[i], NULL);
		last = MAX(last, w[i].done_ms);
	}
	assert_true(last - start >= 300);
	assert_true(last - start < 2000);
	recovery_throttle_set(0, 0);
}

/* A thread asleep for a one-hour window goes on as soon as the throttle
 * is turned off. */
static void test_set_wakes_a_sleeper(void **state)
{
	struct waiter w = {2, 0};
	pthread_t t;
	uint64_t start;

	assert_int_equal(recovery_throttle_set(1, 3600 * 1000), SD_RES_SUCCESS);
	start = mono_ms();
	assert_int_equal(pthread_create(&t, NULL, throttled_thread, &w), 0);
	/* the thread takes the window's one object, then sleeps */
	while (!window_count_seen())
		nanosleep(&(struct timespec){.tv_nsec = 1000000}, NULL);
	recovery_throttle_set(0, 0);
	pthread_join(t, NULL);
	assert_true(w.done_ms - start < 500);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_unthrottled_by_default),
	    cmocka_unit_test(test_half_a_setting_is_refused),
	    cmocka_unit_test(test_max_per_interval),
	    cmocka_unit_test(test_threads_share_the_budget),
	    cmocka_unit_test(test_set_wakes_a_sleeper),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
