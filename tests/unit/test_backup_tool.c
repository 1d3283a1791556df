/*
 * The pure parts of sheepdog-backup: the configuration parser (defaults,
 * every key, the line-numbered refusals) and the manifest rules (text round
 * trip, chain checks, next stream kind, retention that never breaks a
 * chain, which snapshots stay, the tool's tag format).
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "../../backup/tool/conf.h"
#include "../../backup/tool/manifest.h"

/* Parse TEXT; returns the error message ("" when it parsed). */
static const char *conf_try(struct bconf *c, const char *text)
{
	static char msg[512];
	struct strbuf err = STRBUF_INIT;

	bconf_release(c);
	bconf_init(c);
	msg[0] = '\0';
	if (bconf_parse(c, "b.conf", text, &err))
		snprintf(msg, sizeof(msg), "%s", err.buf);
	strbuf_release(&err);
	return msg;
}

static void test_conf_defaults_and_keys(void **state)
{
	struct bconf c;

	bconf_init(&c);
	assert_string_equal(conf_try(&c, "target = /b\n"), "");
	assert_string_equal(c.target, "/b");
	assert_string_equal(c.address, "127.0.0.1");
	assert_null(c.dog);
	assert_int_equal(c.port, 7000);
	assert_int_equal(c.keep, 7);
	assert_int_equal(c.full_every, 7);
	assert_int_equal(c.level, 3);
	assert_int_equal(c.keep_snapshots, 1);
	assert_int_equal(c.lock_wait, 0);
	assert_int_equal(c.dog_timeout, 0);
	assert_string_equal(c.tag_prefix, "backup-");
	assert_int_equal(c.nr_vdis, 0);

	assert_string_equal(
	    conf_try(&c, "# comment\n; other comment\n\n"
			 "  target =  /var/backups/sd  \n"
			 "dog = /opt/sd/dog\naddress = 10.0.0.1\nport=7001\n"
			 "vdis = vm1  vm2\tvm3\nvdi = db-0\n"
			 "keep = 3\nfull_every = 0\nlevel = 19\n"
			 "keep_snapshots = 2\nlock_wait = 600\n"
			 "dog_timeout = 3600\ntag_prefix = nightly_\r\n"),
	    "");
	assert_string_equal(c.target, "/var/backups/sd");
	assert_string_equal(c.dog, "/opt/sd/dog");
	assert_string_equal(c.address, "10.0.0.1");
	assert_int_equal(c.port, 7001);
	assert_int_equal(c.nr_vdis, 4);
	assert_string_equal(c.vdis[0], "vm1");
	assert_string_equal(c.vdis[2], "vm3");
	assert_string_equal(c.vdis[3], "db-0");
	assert_int_equal(c.keep, 3);
	assert_int_equal(c.full_every, 0);
	assert_int_equal(c.level, 19);
	assert_int_equal(c.keep_snapshots, 2);
	assert_int_equal(c.lock_wait, 600);
	assert_int_equal(c.dog_timeout, 3600);
	assert_string_equal(c.tag_prefix, "nightly_");
	bconf_release(&c);
}

static void test_conf_refusals(void **state)
{
	struct bconf c;

	bconf_init(&c);
	assert_string_equal(conf_try(&c, "port = 7000\n"),
			    "b.conf: 'target' is not set");
	assert_string_equal(conf_try(&c, "target = /b\nbogus = 1\n"),
			    "b.conf:2: unknown key 'bogus'");
	assert_string_equal(conf_try(&c, "target = /b\njust words\n"),
			    "b.conf:2: expected 'key = value'");
	assert_string_equal(
	    conf_try(&c, "target = rel/dir\n"),
	    "b.conf:1: target 'rel/dir' is not an absolute path");
	assert_string_equal(
	    conf_try(&c, "target = /b\n\nkeep = 0\n"),
	    "b.conf:3: keep must be a whole number from 1 to 100000, not '0'");
	assert_string_equal(
	    conf_try(&c, "target = /b\nport = 70000\n"),
	    "b.conf:2: port must be a whole number from 1 to 65535, not "
	    "'70000'");
	assert_string_equal(
	    conf_try(&c, "target = /b\nlevel = 3x\n"),
	    "b.conf:2: level must be a whole number from 1 to 19, not '3x'");
	assert_string_equal(
	    conf_try(&c, "target = /b\nfull_every = -1\n"),
	    "b.conf:2: full_every must be a whole number from 0 to 100000, "
	    "not '-1'");
	assert_string_equal(conf_try(&c, "target = /b\ntarget = /c\n"),
			    "b.conf:2: 'target' is already set on line 1");
	assert_string_equal(conf_try(&c, "target = /b\nvdis = a b\nvdi = a\n"),
			    "b.conf:3: VDI 'a' is listed twice");
	assert_string_equal(conf_try(&c, "target = /b\nvdis =\n"),
			    "b.conf:2: vdis needs at least one VDI name");
	assert_string_equal(
	    conf_try(&c, "target = /b\nvdi = ../etc\n"),
	    "b.conf:2: VDI name '../etc' is not usable (1-255 bytes, no '/', "
	    "'\\', space or control character, no leading '.')");
	assert_string_equal(
	    conf_try(&c, "target = /b\ntag_prefix = 1st\n"),
	    "b.conf:2: tag_prefix '1st' must be 1-64 characters of A-Z a-z "
	    "0-9 . _ - and not start with a digit");
	assert_string_equal(conf_try(&c, "target = /b\naddress = a b\n"),
			    "b.conf:2: address 'a b' is not a host name or IP "
			    "address");
	assert_string_equal(
	    conf_try(&c, "target = /b\nkeep = 2\n"
			 "keep_snapshots = 3\n"),
	    "b.conf: keep_snapshots (3) is larger than keep (2)");
	assert_true(bconf_valid_vdi("vm1"));
	assert_true(bconf_valid_vdi("a.b-c_d"));
	assert_false(bconf_valid_vdi(""));
	assert_false(bconf_valid_vdi(".hidden"));
	assert_false(bconf_valid_vdi("a/b"));
	assert_false(bconf_valid_vdi("a\\b"));
	assert_false(bconf_valid_vdi("a b"));
	bconf_release(&c);
}

/* A manifest of TYPES ("fiif..."), points 1..n tagged t1..tn. */
static void make(struct manifest *m, const char *types)
{
	m->points = NULL;
	m->nr = 0;
	for (size_t i = 0; types[i]; i++) {
		struct point p = {.seq = i + 1,
				  .bytes = 100 * (i + 1),
				  .xxh64 = 0xabcdef0123456789ULL + i};

		strcpy(p.time, "2026-11-21T21:30:00Z");
		p.type = types[i] == 'f' ? POINT_FULL : POINT_INCR;
		snprintf(p.to, sizeof(p.to), "t%zu", i + 1);
		if (p.type == POINT_INCR)
			snprintf(p.from, sizeof(p.from), "t%zu", i);
		manifest_file_name(p.file, sizeof(p.file), p.seq, p.to, p.type);
		manifest_append(m, &p);
	}
}

static void test_manifest_round_trip(void **state)
{
	struct manifest m, back;
	struct strbuf text = STRBUF_INIT, err = STRBUF_INIT;

	make(&m, "fiifi");
	manifest_format(&m, &text);
	assert_string_equal(
	    text.buf,
	    "# sheepdog-backup manifest 1\n"
	    "# seq time type file from to bytes xxh64\n"
	    "1 2026-11-21T21:30:00Z full 000001-t1.full.sdb - t1 100 "
	    "abcdef0123456789\n"
	    "2 2026-11-21T21:30:00Z incr 000002-t2.incr.sdb t1 t2 200 "
	    "abcdef012345678a\n"
	    "3 2026-11-21T21:30:00Z incr 000003-t3.incr.sdb t2 t3 300 "
	    "abcdef012345678b\n"
	    "4 2026-11-21T21:30:00Z full 000004-t4.full.sdb - t4 400 "
	    "abcdef012345678c\n"
	    "5 2026-11-21T21:30:00Z incr 000005-t5.incr.sdb t4 t5 500 "
	    "abcdef012345678d\n");
	assert_int_equal(manifest_parse(&back, text.buf, &err), 0);
	assert_int_equal(back.nr, 5);
	assert_memory_equal(back.points, m.points, 5 * sizeof(struct point));
	assert_ptr_equal(manifest_find(&back, "3"), &back.points[2]);
	assert_ptr_equal(manifest_find(&back, "t4"), &back.points[3]);
	assert_null(manifest_find(&back, "6"));
	assert_null(manifest_find(&back, "t9"));
	manifest_release(&back);
	manifest_release(&m);
	strbuf_release(&text);
	strbuf_release(&err);
}

static const char *parse_err(const char *body)
{
	static char msg[256];
	struct strbuf text = STRBUF_INIT, err = STRBUF_INIT;
	struct manifest m;

	strbuf_addf(&text, "%s\n%s", MANIFEST_HEADER, body);
	msg[0] = '\0';
	if (manifest_parse(&m, text.buf, &err))
		snprintf(msg, sizeof(msg), "%s", err.buf);
	else
		manifest_release(&m);
	strbuf_release(&text);
	strbuf_release(&err);
	return msg;
}

#define T "2026-11-21T21:30:00Z"
#define H " 1 0123456789abcdef\n"

static void test_manifest_refusals(void **state)
{
	struct manifest m;
	struct strbuf err = STRBUF_INIT;

	assert_int_equal(manifest_parse(&m, "hello\n", &err), -EINVAL);
	assert_string_equal(err.buf,
			    "line 1: not a sheepdog-backup manifest (bad first "
			    "line)");
	strbuf_release(&err);
	assert_string_equal(parse_err(""), "");
	assert_string_equal(parse_err("1 " T " incr f1 t0 t1" H),
			    "line 2: the first point is not a full one");
	assert_string_equal(parse_err("1 " T " full a/b - t1" H),
			    "line 2: bad file or tag name");
	assert_string_equal(parse_err("1 " T " full .f - t1" H),
			    "line 2: bad file or tag name");
	assert_string_equal(parse_err("1 " T " full f1 t0 t1" H),
			    "line 2: a full point has '-' as its from tag, and "
			    "only a full point");
	assert_string_equal(parse_err("1 " T " full f1 - t1 1\n"),
			    "line 2: 7 fields, expected 8");
	assert_string_equal(parse_err("1 " T " full f1 - t1 1 0123 x\n"),
			    "line 2: more than 8 fields");
	assert_string_equal(parse_err("1 2026-11-21 full f1 - t1" H),
			    "line 2: bad time '2026-11-21'");
	assert_string_equal(parse_err("0 " T " full f1 - t1" H),
			    "line 2: bad sequence number '0'");
	assert_string_equal(parse_err("1 " T " diff f1 - t1" H),
			    "line 2: bad type 'diff' (full or incr)");
	assert_string_equal(parse_err("1 " T " full f1 - t1 1 0123\n"),
			    "line 2: bad XXH64 '0123'");
	assert_string_equal(
	    parse_err("1 " T " full f1 - t1" H "2 " T " incr f2 t9 t2" H),
	    "line 3: incremental from 't9' follows point 't1'");
	assert_string_equal(
	    parse_err("2 " T " full f1 - t1" H "2 " T " incr f2 t1 t2" H),
	    "line 3: sequence 2 after 2");
	assert_string_equal(
	    parse_err("1 " T " full f1 - t1" H "2 " T " full f1 - t2" H),
	    "line 3: tag 't2' or file 'f1' appears twice");
	assert_string_equal(parse_err("1 " T " full f1 - t1" H "# a comment\n"
				      "2 " T " incr f2 t1 t2" H),
			    "");
}

static void test_next_type(void **state)
{
	struct manifest m;

	make(&m, "");
	assert_int_equal(manifest_next_type(&m, 7, false), POINT_FULL);
	make(&m, "f");
	assert_int_equal(manifest_next_type(&m, 2, false), POINT_INCR);
	assert_int_equal(manifest_next_type(&m, 2, true), POINT_FULL);
	manifest_release(&m);
	make(&m, "fi");
	assert_int_equal(manifest_next_type(&m, 2, false), POINT_INCR);
	manifest_release(&m);
	make(&m, "fii");
	assert_int_equal(manifest_next_type(&m, 2, false), POINT_FULL);
	assert_int_equal(manifest_next_type(&m, 0, false), POINT_INCR);
	manifest_release(&m);
	make(&m, "fiifi");
	assert_int_equal(manifest_next_type(&m, 2, false), POINT_INCR);
	assert_int_equal(manifest_next_type(&m, 1, false), POINT_FULL);
	manifest_release(&m);
}

static void test_retention_keeps_chains(void **state)
{
	struct manifest m;

	make(&m, "fiifii");
	assert_int_equal(manifest_prune_count(&m, 6), 0);
	assert_int_equal(manifest_prune_count(&m, 10), 0);
	/* keep 2: points 5 and 6 need 4 (full): 1-3 go. */
	assert_int_equal(manifest_prune_count(&m, 2), 3);
	assert_int_equal(manifest_prune_count(&m, 3), 3);
	/* keep 4: point 3 is kept, its chain starts at 1: nothing goes. */
	assert_int_equal(manifest_prune_count(&m, 4), 0);
	assert_int_equal(manifest_prune_count(&m, 1), 3);
	assert_int_equal(manifest_chain_start(&m, 2), 0);
	assert_int_equal(manifest_chain_start(&m, 3), 3);
	assert_int_equal(manifest_chain_start(&m, 5), 3);
	manifest_release(&m);

	/* Only incrementals after the first full: nothing can go. */
	make(&m, "fiiiii");
	assert_int_equal(manifest_prune_count(&m, 1), 0);
	manifest_release(&m);

	make(&m, "fff");
	assert_int_equal(manifest_prune_count(&m, 1), 2);
	manifest_drop_oldest(&m, 2);
	assert_int_equal(m.nr, 1);
	assert_string_equal(m.points[0].to, "t3");
	manifest_release(&m);
}

static void test_snapshots_kept(void **state)
{
	struct manifest m;

	make(&m, "fii");
	assert_false(manifest_keeps_snapshot(&m, 0, 1));
	assert_false(manifest_keeps_snapshot(&m, 1, 1));
	assert_true(manifest_keeps_snapshot(&m, 2, 1));
	assert_true(manifest_keeps_snapshot(&m, 1, 2));
	assert_false(manifest_keeps_snapshot(&m, 0, 2));
	assert_false(manifest_keeps_snapshot(&m, 3, 5));
	manifest_release(&m);
}

static void test_tags(void **state)
{
	char buf[96];

	/* 2026-11-21 21:30:00 UTC */
	manifest_time_tag(buf, sizeof(buf), "backup-", 1795296600);
	assert_string_equal(buf, "backup-20261121T213000Z");
	manifest_time_str(buf, sizeof(buf), 1795296600);
	assert_string_equal(buf, "2026-11-21T21:30:00Z");
	assert_true(manifest_is_tool_tag("backup-", "backup-20261121T213000Z"));
	assert_true(
	    manifest_is_tool_tag("backup-", "backup-20261121T213000Z.12"));
	assert_false(
	    manifest_is_tool_tag("backup-", "backup-20261121T213000Z."));
	assert_false(
	    manifest_is_tool_tag("backup-", "backup-20261121T213000Zx"));
	assert_false(manifest_is_tool_tag("backup-", "backup-2026112T213000Z"));
	assert_false(
	    manifest_is_tool_tag("backup-", "nightly-20261121T213000Z"));
	assert_false(manifest_is_tool_tag("backup-", "mine"));
	manifest_file_name(buf, sizeof(buf), 42, "t", POINT_INCR);
	assert_string_equal(buf, "000042-t.incr.sdb");
}

int main(void)
{
	const struct CMUnitTest tests[] = {
	    cmocka_unit_test(test_conf_defaults_and_keys),
	    cmocka_unit_test(test_conf_refusals),
	    cmocka_unit_test(test_manifest_round_trip),
	    cmocka_unit_test(test_manifest_refusals),
	    cmocka_unit_test(test_next_type),
	    cmocka_unit_test(test_retention_keeps_chains),
	    cmocka_unit_test(test_snapshots_kept),
	    cmocka_unit_test(test_tags),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
