/*
 * Recovery throttling (sheep -R, dog node recovery set-throttle): at most
 * max objects start recovering in each interval_ms, so that an operator can
 * keep recovery from starving client I/O. 0 0 means unthrottled.
 *
 * The interval is a window that opens with the first object after the
 * previous window ended; once max objects have started in it, the recovery
 * threads sleep until it ends. Changing the setting wakes sleepers at once,
 * so turning the throttle off never leaves recovery asleep for a long
 * interval. Deciding which object to recover is recovery.c's business.
 */
#include <inttypes.h>
#include <time.h>

#include "sheep.h"

static pthread_mutex_t throttle_lock = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t throttle_changed;
static pthread_once_t throttle_once = PTHREAD_ONCE_INIT;

static uint32_t throttle_max; /* 0: unthrottled */
static uint64_t throttle_interval_ms;
static uint64_t window_start_ms;     /* CLOCK_MONOTONIC */
static uint32_t window_count;	     /* objects started in the window */
static uint64_t throttle_generation; /* bumped by every set */

/* Sleeps use CLOCK_MONOTONIC so that a wall-clock step does not stretch
 * or cut a window. */
static void throttle_init_cond(void)
{
	pthread_condattr_t attr;

	pthread_condattr_init(&attr);
	pthread_condattr_setclock(&attr, CLOCK_MONOTONIC);
	pthread_cond_init(&throttle_changed, &attr);
	pthread_condattr_destroy(&attr);
}


/* a + b, stuck at UINT64_MAX instead of wrapping: intervals are the
 * operator's numbers and may be absurdly large. */
static uint64_t add_sat(uint64_t a, uint64_t b)
{
	return a > UINT64_MAX - b ? UINT64_MAX : a + b;
}

void recovery_throttle_get(uint32_t *max, uint64_t *interval_ms)
{
	pthread_mutex_lock(&throttle_lock);
	*max = throttle_max;
	*interval_ms = throttle_interval_ms;
	pthread_mutex_unlock(&throttle_lock);
}

int recovery_throttle_set(uint32_t max, uint64_t interval_ms)
{
	/* Half a setting (a rate with no period, or the reverse) is a
	 * mistake, not a request to turn throttling off. */
	if (!max != !interval_ms)
		return SD_RES_INVALID_PARMS;

	pthread_once(&throttle_once, throttle_init_cond);
	pthread_mutex_lock(&throttle_lock);
	throttle_max = max;
	throttle_interval_ms = interval_ms;
	window_start_ms = 0;
	window_count = 0;
	throttle_generation++;
	pthread_cond_broadcast(&throttle_changed);
	pthread_mutex_unlock(&throttle_lock);
	if (max)
		sd_notice("recovery throttled to %" PRIu32
			  " objects per %" PRIu64 " ms",
			  max, interval_ms);
	else
		sd_notice("recovery throttling off");
	return SD_RES_SUCCESS;
}

/* Sleep until deadline (monotonic ms) or until the setting changes. */
static void wait_until(uint64_t deadline_ms)
{
	uint64_t gen = throttle_generation;
	struct timespec ts = {
	    .tv_sec = deadline_ms / 1000,
	    .tv_nsec = (deadline_ms % 1000) * 1000000,
	};

	while (gen == throttle_generation)
		if (pthread_cond_timedwait(&throttle_changed, &throttle_lock,
					   &ts))
			break; /* the deadline passed */
}

void recovery_throttle_wait(void)
{
	pthread_once(&throttle_once, throttle_init_cond);
	pthread_mutex_lock(&throttle_lock);
	while (throttle_max) {
		uint64_t now = mono_ms();
		uint64_t end = add_sat(window_start_ms, throttle_interval_ms);

		if (!window_start_ms || now >= end) {
			window_start_ms = now;
			window_count = 0;
		}
		if (window_count < throttle_max) {
			window_count++;
			break;
		}
		/* At most a second per sleep: the caller looks again, so
		 * no deadline is ever too far for the clock. */
		wait_until(MIN(end, now + 1000));
	}
	pthread_mutex_unlock(&throttle_lock);
}
