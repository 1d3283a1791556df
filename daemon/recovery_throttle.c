/* Placeholder until the throttle is written: unthrottled. */
#include "sheep.h"

void recovery_throttle_get(uint32_t *max, uint64_t *interval_ms)
{
	*max = 0;
	*interval_ms = 0;
}

int recovery_throttle_set(uint32_t max, uint64_t interval_ms)
{
	return SD_RES_SUCCESS;
}

void recovery_throttle_wait(void)
{
}
