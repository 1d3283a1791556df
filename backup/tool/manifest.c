/*
 * The manifest text and the chain rules of sheepdog-backup. A manifest is
 * a header line, comments, then one line per restore point, oldest first:
 *
 *   SEQ TIME TYPE FILE FROM TO BYTES XXH64
 *
 * with FROM "-" for a full stream. The parser refuses anything it did not
 * write itself (wrong field count, a name with '/', a broken chain), so a
 * damaged manifest stops the tool instead of steering a restore or a prune.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "manifest.h"

void manifest_release(struct manifest *m)
{
	free(m->points);
	m->points = NULL;
	m->nr = 0;
}

void manifest_append(struct manifest *m, const struct point *p)
{
	m->points = xrealloc(m->points, (m->nr + 1) * sizeof(*m->points));
	m->points[m->nr++] = *p;
}

void manifest_drop_oldest(struct manifest *m, size_t n)
{
	if (n > m->nr)
		n = m->nr;
	memmove(m->points, m->points + n, (m->nr - n) * sizeof(*m->points));
	m->nr -= n;
}

/* A tag or a file name: printable, no '/', no space, not "." or "..". */
static bool valid_name(const char *s, bool is_file)
{
	size_t len = strlen(s);

	if (!len || len >= MANIFEST_MAX_NAME || (is_file && s[0] == '.'))
		return false;
	for (const char *p = s; *p; p++)
		if (!isgraph((unsigned char)*p) || *p == '/')
			return false;
	return strcmp(s, ".") && strcmp(s, "..");
}

static bool valid_time(const char *s)
{
	static const char pattern[] = "dddd-dd-ddTdd:dd:ddZ";

	if (strlen(s) != sizeof(pattern) - 1)
		return false;
	for (size_t i = 0; pattern[i]; i++) {
		if (pattern[i] == 'd' ? !isdigit((unsigned char)s[i])
				      : s[i] != pattern[i])
			return false;
	}
	return true;
}

static int parse_line(char *line, struct point *p, struct strbuf *why)
{
	char *field[9], *save = NULL;
	int n = 0;

	memset(p, 0, sizeof(*p));
	for (char *f = strtok_r(line, " \t", &save); f;
	     f = strtok_r(NULL, " \t", &save)) {
		if (n == 8) {
			strbuf_addstr(why, "more than 8 fields");
			return -EINVAL;
		}
		field[n++] = f;
	}
	if (n != 8) {
		strbuf_addf(why, "%d fields, expected 8", n);
		return -EINVAL;
	}
	if (parse_u64(field[0], 10, &p->seq) || !p->seq) {
		strbuf_addf(why, "bad sequence number '%s'", field[0]);
		return -EINVAL;
	}
	if (!valid_time(field[1])) {
		strbuf_addf(why, "bad time '%s'", field[1]);
		return -EINVAL;
	}
	strcpy(p->time, field[1]);
	if (!strcmp(field[2], "full")) {
		p->type = POINT_FULL;
	} else if (!strcmp(field[2], "incr")) {
		p->type = POINT_INCR;
	} else {
		strbuf_addf(why, "bad type '%s' (full or incr)", field[2]);
		return -EINVAL;
	}
	if (!valid_name(field[3], true) || !valid_name(field[4], false) ||
	    !valid_name(field[5], false)) {
		strbuf_addstr(why, "bad file or tag name");
		return -EINVAL;
	}
	if ((p->type == POINT_FULL) != !strcmp(field[4], "-")) {
		strbuf_addstr(why, "a full point has '-' as its from tag, and "
				   "only a full point");
		return -EINVAL;
	}
	strcpy(p->file, field[3]);
	if (p->type == POINT_INCR)
		strcpy(p->from, field[4]);
	strcpy(p->to, field[5]);
	if (parse_u64(field[6], 10, &p->bytes)) {
		strbuf_addf(why, "bad byte count '%s'", field[6]);
		return -EINVAL;
	}
	if (strlen(field[7]) != 16 || parse_u64(field[7], 16, &p->xxh64)) {
		strbuf_addf(why, "bad XXH64 '%s'", field[7]);
		return -EINVAL;
	}
	return 0;
}

/* The chain: sequence numbers grow, the first point is full, each
 * incremental starts where the point before it ended. */
static int check_link(const struct manifest *m, const struct point *p,
		      struct strbuf *why)
{
	const struct point *prev = m->nr ? &m->points[m->nr - 1] : NULL;

	if (!prev) {
		if (p->type != POINT_FULL) {
			strbuf_addstr(why, "the first point is not a full one");
			return -EINVAL;
		}
		return 0;
	}
	if (p->seq <= prev->seq) {
		strbuf_addf(why, "sequence %" PRIu64 " after %" PRIu64, p->seq,
			    prev->seq);
		return -EINVAL;
	}
	if (p->type == POINT_INCR && strcmp(p->from, prev->to)) {
		strbuf_addf(why, "incremental from '%s' follows point '%s'",
			    p->from, prev->to);
		return -EINVAL;
	}
	for (size_t i = 0; i < m->nr; i++) {
		if (!strcmp(m->points[i].to, p->to) ||
		    !strcmp(m->points[i].file, p->file)) {
			strbuf_addf(why, "tag '%s' or file '%s' appears twice",
				    p->to, p->file);
			return -EINVAL;
		}
	}
	return 0;
}

int manifest_parse(struct manifest *m, const char *text, struct strbuf *err)
{
	char *copy = xstrdup(text), *line, *next;
	struct strbuf why = STRBUF_INIT;
	int lineno = 0, ret = 0;

	m->points = NULL;
	m->nr = 0;
	for (line = copy; line && *line; line = next) {
		struct point p;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		if (lineno == 1) {
			if (strcmp(line, MANIFEST_HEADER)) {
				strbuf_addstr(&why,
					      "not a sheepdog-backup "
					      "manifest (bad first line)");
				ret = -EINVAL;
				break;
			}
			continue;
		}
		if (line[0] == '#')
			continue;
		ret = parse_line(line, &p, &why);
		if (!ret)
			ret = check_link(m, &p, &why);
		if (ret)
			break;
		manifest_append(m, &p);
	}
	if (!ret && lineno == 0) {
		strbuf_addstr(&why, "empty file");
		ret = -EINVAL;
	}
	if (ret) {
		strbuf_addf(err, "line %d: %s", lineno, why.buf);
		manifest_release(m);
	}
	strbuf_release(&why);
	free(copy);
	return ret;
}

void manifest_format(const struct manifest *m, struct strbuf *out)
{
	strbuf_addstr(out, MANIFEST_HEADER
		      "\n"
		      "# seq time type file from to bytes xxh64\n");
	for (size_t i = 0; i < m->nr; i++) {
		const struct point *p = &m->points[i];

		strbuf_addf(
		    out,
		    "%" PRIu64 " %s %s %s %s %s %" PRIu64 " %016" PRIx64 "\n",
		    p->seq, p->time, p->type == POINT_FULL ? "full" : "incr",
		    p->file, p->type == POINT_FULL ? "-" : p->from, p->to,
		    p->bytes, p->xxh64);
	}
}

const struct point *manifest_find(const struct manifest *m, const char *which)
{
	uint64_t seq;
	bool by_seq = !parse_u64(which, 10, &seq);

	for (size_t i = 0; i < m->nr; i++) {
		if (by_seq ? m->points[i].seq == seq
			   : !strcmp(m->points[i].to, which))
			return &m->points[i];
	}
	return NULL;
}

void manifest_file_name(char *buf, size_t len, uint64_t seq, const char *tag,
			enum point_type type)
{
	snprintf(buf, len, "%06" PRIu64 "-%s.%s.sdb", seq, tag,
		 type == POINT_FULL ? "full" : "incr");
}

enum point_type manifest_next_type(const struct manifest *m,
				   unsigned full_every, bool force)
{
	size_t start;

	if (force || !m->nr)
		return POINT_FULL;
	start = manifest_chain_start(m, m->nr - 1);
	if (full_every && m->nr - 1 - start >= full_every)
		return POINT_FULL;
	return POINT_INCR;
}

size_t manifest_chain_start(const struct manifest *m, size_t idx)
{
	while (idx > 0 && m->points[idx].type != POINT_FULL)
		idx--;
	return idx;
}

size_t manifest_prune_count(const struct manifest *m, unsigned keep)
{
	if (m->nr <= keep)
		return 0;
	return manifest_chain_start(m, m->nr - keep);
}

bool manifest_keeps_snapshot(const struct manifest *m, size_t idx,
			     unsigned keep_snapshots)
{
	return idx < m->nr && m->nr - idx <= keep_snapshots;
}

void manifest_time_tag(char *buf, size_t len, const char *prefix, time_t t)
{
	struct tm tm;
	char stamp[32];

	gmtime_r(&t, &tm);
	strftime(stamp, sizeof(stamp), "%Y%m%dT%H%M%SZ", &tm);
	snprintf(buf, len, "%s%s", prefix, stamp);
}

void manifest_time_str(char *buf, size_t len, time_t t)
{
	struct tm tm;

	gmtime_r(&t, &tm);
	strftime(buf, len, "%Y-%m-%dT%H:%M:%SZ", &tm);
}

bool manifest_is_tool_tag(const char *prefix, const char *tag)
{
	static const char pattern[] = "ddddddddTddddddZ";
	size_t plen = strlen(prefix);
	const char *s;

	if (strncmp(tag, prefix, plen))
		return false;
	s = tag + plen;
	for (size_t i = 0; pattern[i]; i++, s++) {
		if (pattern[i] == 'd' ? !isdigit((unsigned char)*s)
				      : *s != pattern[i])
			return false;
	}
	if (!*s)
		return true;
	if (*s++ != '.' || !*s)
		return false;
	return strspn(s, "0123456789") == strlen(s);
}
