/*
 * Parser for sheepdog-backup's configuration file, in the format of
 * sheepdog.conf(5): a line is blank, a comment (# or ;) or "key = value"
 * with the value running to the end of the line. Every value is checked
 * here, against its range or its syntax, and the first bad line is
 * reported with its number; nothing else in the tool re-validates them.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "conf.h"

void bconf_init(struct bconf *c)
{
	memset(c, 0, sizeof(*c));
	c->address = xstrdup("127.0.0.1");
	c->port = 7000;
	c->keep = 7;
	c->full_every = 7;
	c->level = 3;
	c->keep_snapshots = 1;
	c->tag_prefix = xstrdup("backup-");
}

void bconf_release(struct bconf *c)
{
	free(c->target);
	free(c->dog);
	free(c->address);
	for (size_t i = 0; i < c->nr_vdis; i++)
		free(c->vdis[i]);
	free(c->vdis);
	free(c->tag_prefix);
	memset(c, 0, sizeof(*c));
}

bool bconf_valid_vdi(const char *name)
{
	size_t len = strlen(name);

	if (!len || len >= 256 || name[0] == '.')
		return false;
	for (const char *p = name; *p; p++)
		if (isspace((unsigned char)*p) || iscntrl((unsigned char)*p) ||
		    *p == '/' || *p == '\\')
			return false;
	return true;
}

static void replace(char **slot, const char *value)
{
	free(*slot);
	*slot = xstrdup(value);
}

static int set_target(struct bconf *c, const char *v, struct strbuf *why)
{
	if (v[0] != '/') {
		strbuf_addf(why, "target '%s' is not an absolute path", v);
		return -EINVAL;
	}
	replace(&c->target, v);
	return 0;
}

static int set_dog(struct bconf *c, const char *v, struct strbuf *why)
{
	if (!*v) {
		strbuf_addstr(why, "dog needs a path");
		return -EINVAL;
	}
	replace(&c->dog, v);
	return 0;
}

static int set_address(struct bconf *c, const char *v, struct strbuf *why)
{
	if (!*v || v[0] == '-' || strlen(v) > 255 ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789.:-[]%") != strlen(v)) {
		strbuf_addf(why,
			    "address '%s' is not a host name or IP address", v);
		return -EINVAL;
	}
	replace(&c->address, v);
	return 0;
}

static int add_vdi(struct bconf *c, const char *name, struct strbuf *why)
{
	if (!bconf_valid_vdi(name)) {
		strbuf_addf(why,
			    "VDI name '%s' is not usable (1-255 bytes, no '/', "
			    "'\\', space or control character, no leading '.')",
			    name);
		return -EINVAL;
	}
	for (size_t i = 0; i < c->nr_vdis; i++) {
		if (!strcmp(c->vdis[i], name)) {
			strbuf_addf(why, "VDI '%s' is listed twice", name);
			return -EINVAL;
		}
	}
	c->vdis = xrealloc(c->vdis, (c->nr_vdis + 1) * sizeof(*c->vdis));
	c->vdis[c->nr_vdis++] = xstrdup(name);
	return 0;
}

/* vdis = a b c; vdi = a: both append, so both may repeat. */
static int set_vdis(struct bconf *c, const char *v, struct strbuf *why)
{
	char *copy = xstrdup(v), *save = NULL, *name;
	int ret = 0, n = 0;

	for (name = strtok_r(copy, " \t", &save); name && !ret;
	     name = strtok_r(NULL, " \t", &save), n++)
		ret = add_vdi(c, name, why);
	free(copy);
	if (!ret && !n) {
		strbuf_addstr(why, "vdis needs at least one VDI name");
		ret = -EINVAL;
	}
	return ret;
}

static int set_vdi(struct bconf *c, const char *v, struct strbuf *why)
{
	return add_vdi(c, v, why);
}

static int set_tag_prefix(struct bconf *c, const char *v, struct strbuf *why)
{
	size_t len = strlen(v);

	if (!len || len > BCONF_MAX_TAG_PREFIX ||
	    strspn(v, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
		      "0123456789._-") != len ||
	    isdigit((unsigned char)v[0])) {
		strbuf_addf(why,
			    "tag_prefix '%s' must be 1-%d characters of "
			    "A-Z a-z 0-9 . _ - and not start with a digit",
			    v, BCONF_MAX_TAG_PREFIX);
		return -EINVAL;
	}
	replace(&c->tag_prefix, v);
	return 0;
}

/*
 * One row per key. A numeric key names its slot (offset into struct bconf)
 * and its bounds; a string key its setter. Only the VDI lists may repeat.
 */
static const struct bconf_key {
	const char *name;
	size_t offset;
	unsigned min, max;
	int (*set)(struct bconf *c, const char *value, struct strbuf *why);
	bool repeatable;
} keys[] = {
    {"target", 0, 0, 0, set_target, false},
    {"dog", 0, 0, 0, set_dog, false},
    {"address", 0, 0, 0, set_address, false},
    {"port", offsetof(struct bconf, port), 1, 65535, NULL, false},
    {"vdis", 0, 0, 0, set_vdis, true},
    {"vdi", 0, 0, 0, set_vdi, true},
    {"keep", offsetof(struct bconf, keep), 1, 100000, NULL, false},
    {"full_every", offsetof(struct bconf, full_every), 0, 100000, NULL, false},
    {"level", offsetof(struct bconf, level), 1, 19, NULL, false},
    {"keep_snapshots", offsetof(struct bconf, keep_snapshots), 1, 100000, NULL,
     false},
    {"lock_wait", offsetof(struct bconf, lock_wait), 0, 86400, NULL, false},
    {"dog_timeout", offsetof(struct bconf, dog_timeout), 0, 604800, NULL,
     false},
    {"tag_prefix", 0, 0, 0, set_tag_prefix, false},
};

static int set_key(struct bconf *c, const struct bconf_key *k,
		   const char *value, struct strbuf *why)
{
	uint32_t n;

	if (k->set)
		return k->set(c, value, why);
	if (parse_u32(value, 10, &n) || n < k->min || n > k->max) {
		strbuf_addf(why,
			    "%s must be a whole number from %u to %u, not '%s'",
			    k->name, k->min, k->max, value);
		return -EINVAL;
	}
	*(unsigned *)((char *)c + k->offset) = n;
	return 0;
}

static const struct bconf_key *find_key(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(keys); i++)
		if (!strcmp(name, keys[i].name))
			return &keys[i];
	return NULL;
}

static char *trim(char *s)
{
	char *end;

	s += strspn(s, " \t");
	end = s + strlen(s);
	while (end > s && strchr(" \t\r\n", end[-1]))
		*--end = '\0';
	return s;
}

int bconf_parse(struct bconf *c, const char *name, const char *text,
		struct strbuf *err)
{
	char *copy = xstrdup(text), *line, *next;
	int seen_at[ARRAY_SIZE(keys)] = {0};
	struct strbuf why = STRBUF_INIT;
	int lineno = 0, ret = 0;

	for (line = copy; line && !ret; line = next) {
		const struct bconf_key *k;
		char *s, *eq, *key, *value;

		next = strchr(line, '\n');
		if (next)
			*next++ = '\0';
		lineno++;
		s = trim(line);
		if (!*s || *s == '#' || *s == ';')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			strbuf_addstr(&why, "expected 'key = value'");
			ret = -EINVAL;
			break;
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		k = find_key(key);
		if (!k) {
			strbuf_addf(&why, "unknown key '%s'", key);
			ret = -EINVAL;
		} else if (seen_at[k - keys] && !k->repeatable) {
			strbuf_addf(&why, "'%s' is already set on line %d", key,
				    seen_at[k - keys]);
			ret = -EINVAL;
		} else {
			seen_at[k - keys] = lineno;
			ret = set_key(c, k, value, &why);
		}
	}
	if (ret) {
		strbuf_addf(err, "%s:%d: %s", name, lineno, why.buf);
	} else if (!c->target) {
		strbuf_addf(err, "%s: 'target' is not set", name);
		ret = -EINVAL;
	} else if (c->keep_snapshots > c->keep) {
		strbuf_addf(err,
			    "%s: keep_snapshots (%u) is larger than keep (%u)",
			    name, c->keep_snapshots, c->keep);
		ret = -EINVAL;
	}
	strbuf_release(&why);
	free(copy);
	return ret;
}

int bconf_load(struct bconf *c, const char *path, struct strbuf *err)
{
	FILE *f = fopen(path, "re");
	struct strbuf text = STRBUF_INIT;
	char buf[4096];
	size_t n;
	int ret;

	if (!f) {
		ret = -errno;
		strbuf_addf(err, "cannot read %s: %s", path, strerror(errno));
		return ret;
	}
	while ((n = fread(buf, 1, sizeof(buf), f)) > 0) {
		if (memchr(buf, '\0', n)) {
			strbuf_addf(err, "%s: not a text file", path);
			fclose(f);
			strbuf_release(&text);
			return -EINVAL;
		}
		strbuf_add(&text, buf, n);
	}
	if (ferror(f)) {
		ret = -errno;
		strbuf_addf(err, "cannot read %s: %s", path, strerror(errno));
		fclose(f);
		strbuf_release(&text);
		return ret ? ret : -EIO;
	}
	fclose(f);
	ret = bconf_parse(c, path, text.buf ? text.buf : "", err);
	strbuf_release(&text);
	return ret;
}
