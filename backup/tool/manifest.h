/*
 * The manifest of one backed-up VDI (TARGET/VDI/manifest) and the rules
 * that work on it: which kind of stream the next run writes, which points
 * retention drops without breaking a chain, which snapshots stay in the
 * cluster, and which streams restore a given point. Pure code: it never
 * touches a file or the cluster, so the rules are tested on their own.
 */
#ifndef SHEEPDOG_BACKUP_TOOL_MANIFEST_H
#define SHEEPDOG_BACKUP_TOOL_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <time.h>

#include "sheepdog/util.h"

#define MANIFEST_HEADER "# sheepdog-backup manifest 1"
#define MANIFEST_MAX_NAME 300

enum point_type { POINT_FULL, POINT_INCR };

/*
 * One restore point: the stream FILE (in the VDI's directory) holds the
 * snapshot TO, either whole (full) or as the changes since FROM (incr),
 * which is always the TO of the point before it.
 */
struct point {
	uint64_t seq;  /* 1, 2, ...: strictly increasing, never reused */
	char time[24]; /* UTC, 2026-11-21T21:30:00Z */
	enum point_type type;
	char file[MANIFEST_MAX_NAME];
	char from[MANIFEST_MAX_NAME]; /* "" for a full stream */
	char to[MANIFEST_MAX_NAME];
	uint64_t bytes; /* size of FILE */
	uint64_t xxh64; /* XXH64 (seed 0) of FILE */
};

struct manifest {
	struct point *points; /* oldest first */
	size_t nr;
};

void manifest_release(struct manifest *m);
void manifest_append(struct manifest *m, const struct point *p);
/* Drop the N oldest points. */
void manifest_drop_oldest(struct manifest *m, size_t n);

/*
 * Parse TEXT, checking every field and the chain (first point full, each
 * incremental from the point before it). -EINVAL with "line N: why" in ERR.
 */
int manifest_parse(struct manifest *m, const char *text, struct strbuf *err);
/* The text manifest_parse() reads back. */
void manifest_format(const struct manifest *m, struct strbuf *out);

/* Find a point by sequence number (all digits) or by its tag; NULL if none. */
const struct point *manifest_find(const struct manifest *m, const char *which);

/* Stream file name for a point: "000042-TAG.full.sdb" / ".incr.sdb". */
void manifest_file_name(char *buf, size_t len, uint64_t seq, const char *tag,
			enum point_type type);

/*
 * The kind of the next point: full when there is none yet, when FORCE, or
 * when FULL_EVERY > 0 incrementals were written since the last full one.
 */
enum point_type manifest_next_type(const struct manifest *m,
				   unsigned full_every, bool force);

/*
 * Retention: how many of the oldest points to drop so that at least KEEP
 * newest points stay restorable. A point's chain starts at the last full
 * point at or before it, so the drop stops at the full point that starts
 * the chain of the oldest kept point; whole chains go at once.
 */
size_t manifest_prune_count(const struct manifest *m, unsigned keep);

/* Index of the full point that starts the chain of point IDX. */
size_t manifest_chain_start(const struct manifest *m, size_t idx);

/* Does point IDX keep its snapshot in the cluster (one of the newest N)? */
bool manifest_keeps_snapshot(const struct manifest *m, size_t idx,
			     unsigned keep_snapshots);

/* Format PREFIX + time as a tag: backup-20261121T213000Z. */
void manifest_time_tag(char *buf, size_t len, const char *prefix, time_t t);
/* The manifest's time column for T: 2026-11-21T21:30:00Z. */
void manifest_time_str(char *buf, size_t len, time_t t);
/*
 * Is TAG one this tool makes with PREFIX: PREFIX, YYYYMMDDTHHMMSSZ, and an
 * optional ".N" added when two runs fall in one second?
 */
bool manifest_is_tool_tag(const char *prefix, const char *tag);

#endif
