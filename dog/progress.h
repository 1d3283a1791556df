/*
 * A progress line on stderr for the long-running dog commands (vdi read,
 * write, backup, restore, cluster snapshot save/load): percentage, bar,
 * rate and time left, redrawn in place at most ten times a second. It is
 * drawn only when stderr is a terminal, so scripts, pipes and cron see
 * exactly the output they saw before.
 */
#ifndef DOG_PROGRESS_H
#define DOG_PROGRESS_H

#include <stdbool.h>
#include <stdint.h>

struct progress {
	bool on; /* stderr is a terminal */
	const char *what;
	uint64_t total; /* 0: unknown, show bytes and rate only */
	uint64_t done;
	double start, last_draw;
};

/* Starts a line labelled what (a short verb) for total bytes. */
void progress_start(struct progress *p, const char *what, uint64_t total);
/* Adds n bytes done; redraws when enough time has passed. */
void progress_add(struct progress *p, uint64_t n);
/* Draws the final state and ends the line (nothing when off). */
void progress_finish(struct progress *p);
/* Clears the line, e.g. before an error message (nothing when off). */
void progress_abort(struct progress *p);

#endif
