/*
 * What the subcommands of sheepdog-backup share: the loaded configuration,
 * the way to run dog, the exit codes, and the files of one backed-up VDI
 * (its directory, manifest and streams) next to its snapshots in the
 * cluster.
 */
#ifndef SHEEPDOG_BACKUP_TOOL_TOOL_H
#define SHEEPDOG_BACKUP_TOOL_TOOL_H

#include <stdbool.h>
#include <stdint.h>

#include "conf.h"
#include "dogexec.h"
#include "manifest.h"

/* Exit codes, documented in sheepdog-backup(8). */
#define EXIT_OK 0
#define EXIT_FAILED 1  /* a VDI, a stream or a restore failed */
#define EXIT_CONFIG 2  /* bad configuration or command line */
#define EXIT_LOCKED 75 /* another run holds the lock (EX_TEMPFAIL) */

struct tool {
	struct bconf conf;
	struct dogexec dog;
	bool verbose;
	bool force_full;
};

/* "sheepdog-backup: " + message on stderr. */
void tool_err(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Message on stdout, only with -v. */
void tool_info(const struct tool *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Report dog's failure: what we asked, its status, what it said. */
void tool_dog_err(const char *vdi, const char *what, int status,
		  const struct strbuf *err);

/* Size and XXH64 (seed 0) of a file, fsyncing it first with SYNC. */
int hash_file(const char *path, bool sync, uint64_t *bytes, uint64_t *xxh);

/* TARGET/VDI, TARGET/VDI/NAME (allocated). */
char *vdi_dir(const struct tool *t, const char *vdi);
char *vdi_file(const struct tool *t, const char *vdi, const char *name);

/*
 * Load VDI's manifest: an empty one when the VDI was never backed up.
 * 0, or -1 after saying why on stderr.
 */
int vdi_manifest_load(const struct tool *t, const char *vdi,
		      struct manifest *m);
/* Replace the manifest atomically (temp file, fsync, rename). */
int vdi_manifest_save(const struct tool *t, const char *vdi,
		      const struct manifest *m);

/* The VDI's snapshot tags in the cluster, from `dog vdi list -r VDI`. */
struct snapshots {
	char **tags;
	size_t nr;
	bool vdi_exists; /* the working VDI is there */
};

int vdi_snapshots(const struct tool *t, const char *vdi, struct snapshots *s);
bool snapshots_have(const struct snapshots *s, const char *tag);
void snapshots_release(struct snapshots *s);

/*
 * Apply retention to VDI: drop the oldest points (manifest first, then
 * their streams), delete snapshots of points that do not keep one, and
 * remove leftovers of interrupted runs. Needs the exclusive lock.
 */
int prune_vdi(const struct tool *t, const char *vdi);

int cmd_run(struct tool *t, int argc, char **argv);
int cmd_prune(struct tool *t, int argc, char **argv);
int cmd_list(struct tool *t, int argc, char **argv);
int cmd_verify(struct tool *t, int argc, char **argv);
int cmd_restore(struct tool *t, int argc, char **argv);

#endif
