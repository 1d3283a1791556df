/*
 * `sheepdog-backup run`: one new restore point per VDI. The snapshot is
 * taken, its stream written to a temporary file that is fsynced and
 * checked with `dog backup verify`, then renamed into place, and only then
 * is the point added to the manifest (atomically), so a manifest never
 * names a stream that is not whole. A failed VDI leaves nothing behind
 * (its new snapshot is deleted) and does not stop the others.
 */
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "tool.h"

/* PREFIX + UTC time, with ".N" when a second run falls in the same
 * second as a point or a snapshot that already carries the tag. */
static void pick_tag(const struct tool *t, const struct manifest *m,
		     const struct snapshots *s, char *tag, size_t len)
{
	char base[BCONF_MAX_TAG_PREFIX + 32];

	manifest_time_tag(base, sizeof(base), t->conf.tag_prefix, time(NULL));
	snprintf(tag, len, "%s", base);
	for (unsigned n = 1; snapshots_have(s, tag) || manifest_find(m, tag);
	     n++)
		snprintf(tag, len, "%s.%u", base, n);
}

static int dog_simple(const struct tool *t, const char *vdi, const char *what,
		      const char *const *argv, bool cluster)
{
	struct strbuf err = STRBUF_INIT;
	int status = dogexec_run(&t->dog, argv, cluster, NULL, &err);

	if (status)
		tool_dog_err(vdi, what, status, &err);
	strbuf_release(&err);
	return status ? -1 : 0;
}

/* Write, sync, check and install the stream of point P; 0 or -1. */
static int write_stream(const struct tool *t, const char *vdi, struct point *p)
{
	char level[16], tmpname[MANIFEST_MAX_NAME + 8];
	char *tmp, *final, *dir = vdi_dir(t, vdi);
	const char *argv[16];
	size_t n = 0;
	int ret = -1, err;

	snprintf(tmpname, sizeof(tmpname), ".tmp-%s", p->file);
	tmp = vdi_file(t, vdi, tmpname);
	final = vdi_file(t, vdi, p->file);
	snprintf(level, sizeof(level), "%u", t->conf.level);
	argv[n++] = "vdi";
	argv[n++] = "backup";
	if (p->type == POINT_INCR) {
		argv[n++] = "-F";
		argv[n++] = p->from;
	}
	argv[n++] = "-s";
	argv[n++] = p->to;
	argv[n++] = "-L";
	argv[n++] = level;
	argv[n++] = vdi;
	argv[n++] = tmp;
	argv[n] = NULL;
	if (dog_simple(t, vdi, "writing the stream", argv, true))
		goto out;

	err = hash_file(tmp, true, &p->bytes, &p->xxh64);
	if (err) {
		tool_err("%s: cannot read back %s: %s", vdi, tmp,
			 strerror(-err));
		goto out;
	}
	argv[0] = "backup";
	argv[1] = "verify";
	argv[2] = tmp;
	argv[3] = NULL;
	if (dog_simple(t, vdi, "verifying the new stream", argv, false))
		goto out;
	if (rename(tmp, final) < 0) {
		tool_err("%s: cannot rename %s to %s: %s", vdi, tmp, final,
			 strerror(errno));
		goto out;
	}
	err = sd_fsync_dir_at(AT_FDCWD, dir);
	if (err) {
		tool_err("%s: cannot sync %s: %s", vdi, dir, strerror(-err));
		unlink(final);
		goto out;
	}
	ret = 0;
out:
	if (ret)
		unlink(tmp);
	free(tmp);
	free(final);
	free(dir);
	return ret;
}

static void delete_snapshot(const struct tool *t, const char *vdi,
			    const char *tag)
{
	const char *argv[] = {"vdi", "delete", "-s", tag, vdi, NULL};

	dog_simple(t, vdi, "deleting the new snapshot", argv, true);
}

static int backup_vdi(const struct tool *t, const char *vdi)
{
	struct manifest m;
	struct snapshots s;
	struct point p = {0};
	const struct point *last;
	char *dir = vdi_dir(t, vdi);
	int ret = -1;

	if (mkdir(dir, 0750) < 0 && errno != EEXIST) {
		tool_err("%s: cannot create %s: %s", vdi, dir, strerror(errno));
		free(dir);
		return -1;
	}
	free(dir);
	if (vdi_manifest_load(t, vdi, &m))
		return -1;
	if (vdi_snapshots(t, vdi, &s))
		goto out_manifest;
	if (!s.vdi_exists) {
		tool_err("%s: no such VDI in the cluster", vdi);
		goto out;
	}
	last = m.nr ? &m.points[m.nr - 1] : NULL;
	p.type = manifest_next_type(&m, t->conf.full_every, t->force_full);
	if (p.type == POINT_INCR && !snapshots_have(&s, last->to)) {
		tool_err("%s: snapshot %s of the last point is gone; writing a "
			 "full stream",
			 vdi, last->to);
		p.type = POINT_FULL;
	}
	p.seq = last ? last->seq + 1 : 1;
	manifest_time_str(p.time, sizeof(p.time), time(NULL));
	pick_tag(t, &m, &s, p.to, sizeof(p.to));
	if (p.type == POINT_INCR)
		snprintf(p.from, sizeof(p.from), "%s", last->to);
	manifest_file_name(p.file, sizeof(p.file), p.seq, p.to, p.type);

	{
		const char *argv[] = {"vdi", "snapshot", "-s", p.to, vdi, NULL};

		if (dog_simple(t, vdi, "taking the snapshot", argv, true))
			goto out;
	}
	if (write_stream(t, vdi, &p)) {
		delete_snapshot(t, vdi, p.to);
		goto out;
	}
	manifest_append(&m, &p);
	if (vdi_manifest_save(t, vdi, &m)) {
		char *final = vdi_file(t, vdi, p.file);

		unlink(final);
		free(final);
		delete_snapshot(t, vdi, p.to);
		goto out;
	}
	tool_info(t, "%s: point %" PRIu64 " %s %s, %" PRIu64 " bytes in %s",
		  vdi, p.seq, p.type == POINT_FULL ? "full" : "incr", p.to,
		  p.bytes, p.file);
	ret = 0;
out:
	snapshots_release(&s);
out_manifest:
	manifest_release(&m);
	return ret;
}

int cmd_run(struct tool *t, int argc, char **argv)
{
	char **vdis = argc ? argv : t->conf.vdis;
	size_t nr = argc ? (size_t)argc : t->conf.nr_vdis;
	int failed = 0;

	for (size_t i = 0; i < nr; i++) {
		if (backup_vdi(t, vdis[i]) || prune_vdi(t, vdis[i]))
			failed++;
	}
	if (failed)
		tool_err("%d of %zu VDIs failed", failed, nr);
	return failed ? EXIT_FAILED : EXIT_OK;
}
