/*
 * The two places a backed-up VDI lives for sheepdog-backup: its directory
 * under the target (manifest and streams, read and replaced here) and its
 * snapshots in the cluster (listed through `dog vdi list -r`). Also the
 * tool's messages, so that every subcommand reports in one voice.
 */
#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <xxhash.h>

#include "tool.h"

void tool_err(const char *fmt, ...)
{
	va_list ap;

	fputs("sheepdog-backup: ", stderr);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

void tool_info(const struct tool *t, const char *fmt, ...)
{
	va_list ap;

	if (!t->verbose)
		return;
	va_start(ap, fmt);
	vprintf(fmt, ap);
	va_end(ap);
	putchar('\n');
	fflush(stdout);
}

void tool_dog_err(const char *vdi, const char *what, int status,
		  const struct strbuf *err)
{
	struct strbuf said = STRBUF_INIT;

	/* One line per failure: dog's lines joined with "; ". */
	for (size_t i = 0; i < err->len; i++) {
		if (err->buf[i] != '\n')
			strbuf_add(&said, &err->buf[i], 1);
		else if (i + 1 < err->len)
			strbuf_addstr(&said, "; ");
	}
	if (status >= 0)
		tool_err("%s: %s failed (dog exit status %d)%s%s", vdi, what,
			 status, said.len ? ": " : "",
			 said.len ? said.buf : "");
	else
		tool_err("%s: %s failed: %s", vdi, what,
			 said.len ? said.buf : "");
	strbuf_release(&said);
}

int hash_file(const char *path, bool sync, uint64_t *bytes, uint64_t *xxh)
{
	XXH64_state_t *st = XXH64_createState();
	int fd = open(path, O_RDONLY | O_CLOEXEC), ret = 0;
	static char buf[1 << 20];
	ssize_t n;

	if (!st)
		return -ENOMEM;
	if (fd < 0) {
		XXH64_freeState(st);
		return -errno;
	}
	*bytes = 0;
	XXH64_reset(st, 0);
	while ((n = read(fd, buf, sizeof(buf))) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			ret = -errno;
			break;
		}
		XXH64_update(st, buf, n);
		*bytes += n;
	}
	if (!ret && sync && fsync(fd) < 0)
		ret = -errno;
	*xxh = XXH64_digest(st);
	XXH64_freeState(st);
	close(fd);
	return ret;
}

char *vdi_dir(const struct tool *t, const char *vdi)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%s", t->conf.target, vdi);
	return strbuf_detach(&sb);
}

char *vdi_file(const struct tool *t, const char *vdi, const char *name)
{
	struct strbuf sb = STRBUF_INIT;

	strbuf_addf(&sb, "%s/%s/%s", t->conf.target, vdi, name);
	return strbuf_detach(&sb);
}

int vdi_manifest_load(const struct tool *t, const char *vdi, struct manifest *m)
{
	char *path = vdi_file(t, vdi, "manifest");
	struct strbuf text = STRBUF_INIT, err = STRBUF_INIT;
	FILE *f = fopen(path, "re");
	char buf[8192];
	size_t n;
	int ret = 0;

	m->points = NULL;
	m->nr = 0;
	if (!f) {
		if (errno != ENOENT) {
			tool_err("%s: cannot read %s: %s", vdi, path,
				 strerror(errno));
			ret = -1;
		}
		free(path);
		return ret;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
		strbuf_add(&text, buf, n);
	if (ferror(f)) {
		tool_err("%s: cannot read %s", vdi, path);
		ret = -1;
	} else if (memchr(text.buf ? text.buf : "", '\0', text.len) ||
		   manifest_parse(m, text.buf ? text.buf : "", &err)) {
		tool_err("%s: %s: %s", vdi, path,
			 err.len ? err.buf : "not a text file");
		ret = -1;
	}
	fclose(f);
	strbuf_release(&text);
	strbuf_release(&err);
	free(path);
	return ret;
}

int vdi_manifest_save(const struct tool *t, const char *vdi,
		      const struct manifest *m)
{
	char *path = vdi_file(t, vdi, "manifest");
	struct strbuf text = STRBUF_INIT;
	int ret;

	manifest_format(m, &text);
	ret = atomic_write_file(path, text.buf, text.len);
	if (ret < 0)
		tool_err("%s: cannot write %s: %s", vdi, path, strerror(-ret));
	strbuf_release(&text);
	free(path);
	return ret < 0 ? -1 : 0;
}

void snapshots_release(struct snapshots *s)
{
	for (size_t i = 0; i < s->nr; i++)
		free(s->tags[i]);
	free(s->tags);
	memset(s, 0, sizeof(*s));
}

bool snapshots_have(const struct snapshots *s, const char *tag)
{
	for (size_t i = 0; i < s->nr; i++)
		if (!strcmp(s->tags[i], tag))
			return true;
	return false;
}

/*
 * One row of `dog vdi list -r`: flag name id size used shared ctime vid
 * copies tag shift, single spaces; the tag may be empty. Names we accept
 * have nothing dog escapes, so the name field compares as is.
 */
static void parse_row(char *row, const char *vdi, struct snapshots *s)
{
	char *field[9], *p = row, *last;

	for (int i = 0; i < 9; i++) {
		field[i] = p;
		p = strchr(p, ' ');
		if (!p)
			return;
		*p++ = '\0';
	}
	last = strrchr(p, ' ');
	if (!last || strcmp(field[1], vdi))
		return;
	*last = '\0';
	if (!strcmp(field[0], "=")) {
		s->vdi_exists = true;
	} else if (!strcmp(field[0], "s") && *p) {
		s->tags = xrealloc(s->tags, (s->nr + 1) * sizeof(*s->tags));
		s->tags[s->nr++] = xstrdup(p);
	}
}

int vdi_snapshots(const struct tool *t, const char *vdi, struct snapshots *s)
{
	const char *argv[] = {"vdi", "list", "-r", vdi, NULL};
	struct strbuf out = STRBUF_INIT, err = STRBUF_INIT;
	char *row, *next;
	int status;

	memset(s, 0, sizeof(*s));
	status = dogexec_run(&t->dog, argv, true, &out, &err);
	if (status) {
		tool_dog_err(vdi, "listing its snapshots", status, &err);
		strbuf_release(&out);
		strbuf_release(&err);
		return -1;
	}
	for (row = out.buf; row && *row; row = next) {
		next = strchr(row, '\n');
		if (next)
			*next++ = '\0';
		parse_row(row, vdi, s);
	}
	strbuf_release(&out);
	strbuf_release(&err);
	return 0;
}
