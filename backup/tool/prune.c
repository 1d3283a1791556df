/*
 * Retention for sheepdog-backup (`prune`, and the end of every `run`).
 * The manifest is rewritten first and the streams it no longer names are
 * deleted after, so a crash in between leaves stray files (removed by the
 * next prune) and never a manifest that names a missing stream. Snapshots
 * go last: those of the tool's own tag format that no kept point claims,
 * which also clears what an interrupted run left behind.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "tool.h"

static int remove_stream(const struct tool *t, const char *vdi,
			 const char *name)
{
	char *path = vdi_file(t, vdi, name);
	int ret = 0;

	if (unlink(path) < 0 && errno != ENOENT) {
		tool_err("%s: cannot remove %s: %s", vdi, path,
			 strerror(errno));
		ret = -1;
	} else {
		tool_info(t, "%s: removed %s", vdi, name);
	}
	free(path);
	return ret;
}

static bool named_by(const struct manifest *m, const char *name)
{
	for (size_t i = 0; i < m->nr; i++)
		if (!strcmp(m->points[i].file, name))
			return true;
	return false;
}

/* Stream files (NNNNNN-*.sdb) the manifest does not name, and temporary
 * files of runs that died: only a run holding the lock writes them. */
static int remove_strays(const struct tool *t, const char *vdi,
			 const struct manifest *m)
{
	char *dir = vdi_dir(t, vdi);
	DIR *d = opendir(dir);
	struct dirent *e;
	int ret = 0;

	if (!d) {
		ret = errno == ENOENT ? 0 : -1;
		if (ret)
			tool_err("%s: cannot read %s: %s", vdi, dir,
				 strerror(errno));
		free(dir);
		return ret;
	}
	while ((e = readdir(d))) {
		size_t len = strlen(e->d_name);
		bool stream =
		    len > 11 && strspn(e->d_name, "0123456789") == 6 &&
		    e->d_name[6] == '-' && !strcmp(e->d_name + len - 4, ".sdb");

		if (!strncmp(e->d_name, ".tmp-", 5) ||
		    (stream && !named_by(m, e->d_name)))
			ret |= remove_stream(t, vdi, e->d_name);
	}
	closedir(d);
	free(dir);
	return ret;
}

static bool claims_snapshot(const struct tool *t, const struct manifest *m,
			    const char *tag)
{
	for (size_t i = 0; i < m->nr; i++)
		if (!strcmp(m->points[i].to, tag))
			return manifest_keeps_snapshot(m, i,
						       t->conf.keep_snapshots);
	return false;
}

static int prune_snapshots(const struct tool *t, const char *vdi,
			   const struct manifest *m)
{
	struct snapshots s, after;
	size_t deleted = 0;
	int ret = 0;

	if (vdi_snapshots(t, vdi, &s))
		return -1;
	for (size_t i = 0; i < s.nr; i++) {
		const char *tag = s.tags[i];
		const char *argv[] = {"vdi", "delete", "-s", tag, vdi, NULL};
		struct strbuf err = STRBUF_INIT;
		int status;

		if (!manifest_is_tool_tag(t->conf.tag_prefix, tag) ||
		    claims_snapshot(t, m, tag))
			continue;
		status = dogexec_run(&t->dog, argv, true, NULL, &err);
		if (status) {
			tool_dog_err(vdi, "deleting an old snapshot", status,
				     &err);
			ret = -1;
		} else {
			tool_info(t, "%s: deleted snapshot %s", vdi, tag);
			deleted++;
		}
		strbuf_release(&err);
	}
	/* dog vdi delete exits 0 whatever happens (as upstream's does):
	 * look again to know. */
	if (deleted && !vdi_snapshots(t, vdi, &after)) {
		for (size_t i = 0; i < after.nr; i++) {
			if (manifest_is_tool_tag(t->conf.tag_prefix,
						 after.tags[i]) &&
			    !claims_snapshot(t, m, after.tags[i])) {
				tool_err("%s: snapshot %s could not be "
					 "deleted",
					 vdi, after.tags[i]);
				ret = -1;
			}
		}
		snapshots_release(&after);
	} else if (deleted) {
		ret = -1;
	}
	snapshots_release(&s);
	return ret;
}

int prune_vdi(const struct tool *t, const char *vdi)
{
	struct manifest m, dropped = {0};
	size_t n;
	int ret = 0;

	if (vdi_manifest_load(t, vdi, &m))
		return -1;
	n = manifest_prune_count(&m, t->conf.keep);
	if (n) {
		for (size_t i = 0; i < n; i++)
			manifest_append(&dropped, &m.points[i]);
		manifest_drop_oldest(&m, n);
		if (vdi_manifest_save(t, vdi, &m)) {
			ret = -1;
			goto out;
		}
		for (size_t i = 0; i < dropped.nr; i++) {
			tool_info(t, "%s: pruned point %" PRIu64 " (%s)", vdi,
				  dropped.points[i].seq, dropped.points[i].to);
			ret |= remove_stream(t, vdi, dropped.points[i].file);
		}
	}
	ret |= remove_strays(t, vdi, &m);
	ret |= prune_snapshots(t, vdi, &m);
out:
	manifest_release(&dropped);
	manifest_release(&m);
	return ret ? -1 : 0;
}

int cmd_prune(struct tool *t, int argc, char **argv)
{
	char **vdis = argc ? argv : t->conf.vdis;
	size_t nr = argc ? (size_t)argc : t->conf.nr_vdis;
	int failed = 0;

	for (size_t i = 0; i < nr; i++)
		if (prune_vdi(t, vdis[i]))
			failed++;
	return failed ? EXIT_FAILED : EXIT_OK;
}
