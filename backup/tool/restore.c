/*
 * The read side of sheepdog-backup: `list` prints the restore points of
 * the manifests, `verify` checks every stream (size and XXH64 against the
 * manifest, then `dog backup verify`), and `restore` rebuilds one point as
 * a new VDI by restoring the full stream that starts its chain and then
 * each incremental in order. dog checks each stream before it changes
 * anything, so a bad stream stops the restore at the point before it.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "tool.h"

int cmd_list(struct tool *t, int argc, char **argv)
{
	char **vdis = argc ? argv : t->conf.vdis;
	size_t nr = argc ? (size_t)argc : t->conf.nr_vdis;
	int failed = 0;

	for (size_t i = 0; i < nr; i++) {
		struct manifest m;

		if (vdi_manifest_load(t, vdis[i], &m)) {
			failed++;
			continue;
		}
		for (size_t k = 0; k < m.nr; k++) {
			const struct point *p = &m.points[k];

			printf("%s %" PRIu64 " %s %s %s %" PRIu64 " %s\n",
			       vdis[i], p->seq, p->time,
			       p->type == POINT_FULL ? "full" : "incr", p->to,
			       p->bytes, p->file);
		}
		manifest_release(&m);
	}
	return failed ? EXIT_FAILED : EXIT_OK;
}

/* Size and XXH64 as the manifest recorded them; 0 or -1 with a message. */
static int check_file(const struct tool *t, const char *vdi,
		      const struct point *p)
{
	char *path = vdi_file(t, vdi, p->file);
	uint64_t bytes, xxh;
	int err = hash_file(path, false, &bytes, &xxh), ret = -1;

	if (err)
		tool_err("%s: point %" PRIu64 ": cannot read %s: %s", vdi,
			 p->seq, path, strerror(-err));
	else if (bytes != p->bytes || xxh != p->xxh64)
		tool_err("%s: point %" PRIu64 ": %s has %" PRIu64
			 " bytes and XXH64 %016" PRIx64
			 ", the manifest says %" PRIu64 " and %016" PRIx64,
			 vdi, p->seq, path, bytes, xxh, p->bytes, p->xxh64);
	else
		ret = 0;
	free(path);
	return ret;
}

static int verify_point(const struct tool *t, const char *vdi,
			const struct point *p)
{
	char *path = vdi_file(t, vdi, p->file);
	const char *argv[] = {"backup", "verify", path, NULL};
	struct strbuf err = STRBUF_INIT;
	int status = -1, ret = -1;

	if (!check_file(t, vdi, p))
		status = dogexec_run(&t->dog, argv, false, NULL, &err);
	if (!status) {
		tool_info(t, "%s: point %" PRIu64 " %s: ok", vdi, p->seq,
			  p->file);
		ret = 0;
	} else if (err.len || status > 0) {
		tool_dog_err(vdi, p->file, status, &err);
	}
	strbuf_release(&err);
	free(path);
	return ret;
}

int cmd_verify(struct tool *t, int argc, char **argv)
{
	char **vdis = argc ? argv : t->conf.vdis;
	size_t nr = argc ? (size_t)argc : t->conf.nr_vdis;
	int failed = 0;

	for (size_t i = 0; i < nr; i++) {
		struct manifest m;

		if (vdi_manifest_load(t, vdis[i], &m)) {
			failed++;
			continue;
		}
		for (size_t k = 0; k < m.nr; k++)
			if (verify_point(t, vdis[i], &m.points[k]))
				failed++;
		manifest_release(&m);
	}
	return failed ? EXIT_FAILED : EXIT_OK;
}

static int restore_one(const struct tool *t, const char *vdi,
		       const char *newvdi, const struct point *p,
		       const struct point *prev)
{
	char *path = vdi_file(t, vdi, p->file);
	const char *full[] = {"vdi", "restore", newvdi, path, NULL};
	const char *incr[] = {"vdi",  "restore", "-s", prev ? prev->to : "",
			      newvdi, path,	 NULL};
	struct strbuf err = STRBUF_INIT;
	int status;

	status = dogexec_run(&t->dog, prev ? incr : full, true, NULL, &err);
	if (status) {
		struct strbuf what = STRBUF_INIT;

		strbuf_addf(&what, "restoring point %" PRIu64 " (%s) into %s",
			    p->seq, p->file, newvdi);
		tool_dog_err(vdi, what.buf, status, &err);
		strbuf_release(&what);
	} else {
		tool_info(t, "%s: restored point %" PRIu64 " %s into %s", vdi,
			  p->seq, p->to, newvdi);
	}
	strbuf_release(&err);
	free(path);
	return status ? -1 : 0;
}

int cmd_restore(struct tool *t, int argc, char **argv)
{
	const char *vdi = argv[0], *which = argv[1], *newvdi = argv[2];
	const struct point *target;
	struct manifest m;
	size_t idx, start;
	int ret = EXIT_FAILED;

	if (vdi_manifest_load(t, vdi, &m))
		return EXIT_FAILED;
	target = manifest_find(&m, which);
	if (!target) {
		tool_err("%s: no restore point '%s' (see sheepdog-backup list)",
			 vdi, which);
		goto out;
	}
	idx = target - m.points;
	start = manifest_chain_start(&m, idx);
	/* Every stream of the chain first, so that a missing or damaged one
	 * is found before the new VDI exists. */
	for (size_t i = start; i <= idx; i++)
		if (check_file(t, vdi, &m.points[i]))
			goto out;
	for (size_t i = start; i <= idx; i++) {
		if (restore_one(t, vdi, newvdi, &m.points[i],
				i == start ? NULL : &m.points[i - 1])) {
			if (i > start)
				tool_err("%s: %s holds point %" PRIu64
					 " (%s), not %" PRIu64,
					 vdi, newvdi, m.points[i - 1].seq,
					 m.points[i - 1].to, target->seq);
			goto out;
		}
	}
	ret = EXIT_OK;
out:
	manifest_release(&m);
	return ret;
}
