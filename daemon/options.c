/*
 * sheep's configuration: upstream's command-line flags and the
 * `--config FILE` file of `key = value` lines (sheepdog.conf(5)), where
 * every flag has a key. The file is read first and flags override it. Each
 * value is checked here, with a message naming where it came from, before
 * the daemon acts on any of it.
 */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "options.h"
#include "sheepdog/layout.h"
#include "sheepdog/nbd.h"
#include "sheepdog/util.h"

static const char *short_opts = "b:c:Dfgl:np:P:R:vV:y:z:h";

enum { OPT_CONFIG = 0x100, OPT_NO_DIRECTIO, OPT_NBD };

static const struct option long_opts[] = {
	{ "bindaddr", required_argument, NULL, 'b' },
	{ "cluster", required_argument, NULL, 'c' },
	{ "directio", no_argument, NULL, 'D' },
	{ "foreground", no_argument, NULL, 'f' },
	{ "gateway", no_argument, NULL, 'g' },
	{ "log", required_argument, NULL, 'l' },
	{ "nosync", no_argument, NULL, 'n' },
	{ "port", required_argument, NULL, 'p' },
	{ "pidfile", required_argument, NULL, 'P' },
	{ "recovery", required_argument, NULL, 'R' },
	{ "version", no_argument, NULL, 'v' },
	{ "vnodes", required_argument, NULL, 'V' },
	{ "myaddr", required_argument, NULL, 'y' },
	{ "zone", required_argument, NULL, 'z' },
	{ "help", no_argument, NULL, 'h' },
	{ "config", required_argument, NULL, OPT_CONFIG },
	{ "no-directio", no_argument, NULL, OPT_NO_DIRECTIO },
	{ "nbd", required_argument, NULL, OPT_NBD },
	{ NULL, 0, NULL, 0 },
};

void usage(int status)
{
	FILE *f = status ? stderr : stdout;

	fprintf(f,
		"Usage: sheep [OPTION]... [PATH]\n"
		"Sheepdog daemon: stores objects in PATH (default /tmp)\n"
		"\n"
		"  -b, --bindaddr IP     listen on this address only\n"
		"  -c, --cluster DRIVER  cluster driver: local[:PATH]\n"
		"  -D, --directio        bypass the page cache for aligned object I/O\n"
		"      --no-directio     go through the page cache for all object I/O\n"
		"                        (the default)\n"
		"  -f, --foreground      stay in the foreground\n"
		"  -g, --gateway         serve requests but store nothing\n"
		"  -l, --log level=L,dir=D,format=F,dst=T\n"
		"                        level emerg..debug, format default|server|json,\n"
		"                        dst default|stdout|syslog\n"
		"      --nbd port=N,address=IP,max-connections=N\n"
		"                        serve VDIs over NBD on port N (default 10809,\n"
		"                        0 for none) at IP (default: -b's, or all)\n"
		"  -n, --nosync          do not sync writes before acknowledging them\n"
		"  -p, --port PORT       TCP port (default 7000)\n"
		"  -P, --pidfile PATH    write and lock a pid file\n"
		"  -R, --recovery max=N,interval=MS\n"
		"                        recover at most N objects every MS milliseconds\n"
		"                        (default: no limit)\n"
		"  -v, --version         print the version\n"
		"  -V, --vnodes N        fixed number of virtual nodes (1..65535)\n"
		"  -y, --myaddr IP       address announced to other sheep\n"
		"  -z, --zone N          failure zone\n"
		"      --config FILE     read settings from FILE (sheepdog.conf(5))\n"
		"  -h, --help            show this help\n");
	exit(status);
}

static int parse_bool(const char *v, bool *out)
{
	if (!strcmp(v, "yes") || !strcmp(v, "true") || !strcmp(v, "1")) {
		*out = true;
		return 0;
	}
	if (!strcmp(v, "no") || !strcmp(v, "false") || !strcmp(v, "0")) {
		*out = false;
		return 0;
	}
	return -EINVAL;
}

static int copy_str(char *dst, size_t len, const char *v)
{
	if (strlen(v) >= len)
		return -ENAMETOOLONG;
	strcpy(dst, v);
	return 0;
}

static int set_port(struct sheep_opts *o, const char *v)
{
	uint32_t p;

	if (parse_u32(v, 10, &p) < 0 || p < 1 || p > 65535)
		return -EINVAL;
	o->port = p;
	return 0;
}

static int set_zone(struct sheep_opts *o, const char *v)
{
	if (parse_u32(v, 10, &o->zone) < 0)
		return -EINVAL;
	o->zone_set = true;
	return 0;
}

static int set_vnodes(struct sheep_opts *o, const char *v)
{
	uint32_t n;

	if (!strcmp(v, "auto")) {
		o->vnodes = 0;
		return 0;
	}
	if (parse_u32(v, 10, &n) < 0 || n < 1 || n > 65535)
		return -EINVAL;
	o->vnodes = n;
	return 0;
}

static int set_log_level(struct sheep_opts *o, const char *v)
{
	int l = log_level_from_name(v);
	uint32_t n;

	if (l < 0 && parse_u32(v, 10, &n) == 0 && n <= 7)
		l = n;
	if (l < 0)
		return -EINVAL;
	o->log_level = l;
	return 0;
}

static int set_log_format(struct sheep_opts *o, const char *v)
{
	if (!strcmp(v, "default"))
		o->log_format = LOG_FORMAT_DEFAULT;
	else if (!strcmp(v, "server"))
		o->log_format = LOG_FORMAT_SERVER;
	else if (!strcmp(v, "json"))
		o->log_format = LOG_FORMAT_JSON;
	else
		return -EINVAL;
	return 0;
}

static int set_log_dst(struct sheep_opts *o, const char *v)
{
	if (!strcmp(v, "default"))
		o->log_dst = LOG_DST_FILE;
	else if (!strcmp(v, "stdout"))
		o->log_dst = LOG_DST_STDERR;
	else if (!strcmp(v, "syslog"))
		o->log_dst = LOG_DST_SYSLOG;
	else
		return -EINVAL;
	return 0;
}

static int check_addr(const char *v)
{
	uint8_t a[16];

	return str_to_addr(v, a);
}

/* One key of a KEY=VALUE,... option and what sets it. */
struct subopt {
	const char *key;
	int (*set)(struct sheep_opts *o, const char *v);
};

/*
 * "KEY=VALUE,KEY=VALUE,..." against table (NULL-key ended); a bare VALUE
 * goes to the first entry. 0, or -EINVAL for an unknown key or a bad value.
 */
static int parse_subopts(struct sheep_opts *o, const char *arg,
			 const struct subopt *table)
{
	char *s = xstrdup(arg), *save = NULL, *tok;
	int ret = 0;

	for (tok = strtok_r(s, ",", &save); tok && !ret;
	     tok = strtok_r(NULL, ",", &save)) {
		const struct subopt *e = table;
		char *eq = strchr(tok, '=');

		if (!eq) {
			ret = table->set(o, tok);
			continue;
		}
		*eq++ = '\0';
		while (e->key && strcmp(e->key, tok))
			e++;
		ret = e->key ? e->set(o, eq) : -EINVAL;
	}
	free(s);
	return ret;
}

static int set_log_dir(struct sheep_opts *o, const char *v)
{
	return copy_str(o->log_dir, sizeof(o->log_dir), v);
}

/* -l level=L,dir=D,format=F,dst=T (a bare level is accepted too). */
static int parse_log_opt(struct sheep_opts *o, const char *arg)
{
	static const struct subopt keys[] = {
	    {"level", set_log_level}, {"dir", set_log_dir},
	    {"format", set_log_format}, {"dst", set_log_dst}, {NULL, NULL},
	};

	return parse_subopts(o, arg, keys);
}

/*
 * -R max=N,interval=MS: both keys, both positive (or both 0, the default:
 * no throttling). Either alone would be a rate without a period.
 */
static int parse_recovery_opt(struct sheep_opts *o, const char *arg)
{
	char *s = xstrdup(arg), *save = NULL, *tok;
	bool have_max = false, have_interval = false;
	uint32_t max = 0;
	uint64_t interval = 0;
	int ret = 0;

	for (tok = strtok_r(s, ",", &save); tok && !ret;
	     tok = strtok_r(NULL, ",", &save)) {
		char *eq = strchr(tok, '=');

		if (!eq) {
			ret = -EINVAL;
			break;
		}
		*eq++ = '\0';
		if (!strcmp(tok, "max")) {
			ret = parse_u32(eq, 10, &max);
			have_max = true;
		} else if (!strcmp(tok, "interval")) {
			ret = parse_u64(eq, 10, &interval);
			have_interval = true;
		} else {
			ret = -EINVAL;
		}
	}
	free(s);
	if (ret || !have_max || !have_interval || !max != !interval)
		return -EINVAL;
	o->recovery_max = max;
	o->recovery_interval_ms = interval;
	return 0;
}

static int set_nbd_port(struct sheep_opts *o, const char *v)
{
	uint32_t p;

	if (parse_u32(v, 10, &p) < 0 || p > 65535)
		return -EINVAL;
	o->nbd_port = p;
	o->nbd_set = true;
	return 0;
}

static int set_nbd_address(struct sheep_opts *o, const char *v)
{
	if (check_addr(v) < 0 ||
	    copy_str(o->nbd_address, sizeof(o->nbd_address), v))
		return -EINVAL;
	o->nbd_set = true;
	return 0;
}

static int set_nbd_max_conns(struct sheep_opts *o, const char *v)
{
	uint32_t n;

	if (parse_u32(v, 10, &n) < 0 || n < 1 || n > NBD_MAX_CONNECTIONS)
		return -EINVAL;
	o->nbd_max_conns = n;
	return 0;
}

/* --nbd port=N,address=IP,max-connections=N (a bare number is the port). */
static int parse_nbd_opt(struct sheep_opts *o, const char *arg)
{
	static const struct subopt keys[] = {
	    {"port", set_nbd_port}, {"address", set_nbd_address},
	    {"max-connections", set_nbd_max_conns}, {NULL, NULL},
	};

	return parse_subopts(o, arg, keys);
}

static int conf_set(struct sheep_opts *o, const char *name, const char *value)
{
	if (!strcmp(name, "dir"))
		return copy_str(o->dir, sizeof(o->dir), value);
	if (!strcmp(name, "port"))
		return set_port(o, value);
	if (!strcmp(name, "bind_address"))
		return check_addr(value) ?: copy_str(o->bindaddr,
						     sizeof(o->bindaddr), value);
	if (!strcmp(name, "my_address"))
		return check_addr(value) ?: copy_str(o->myaddr,
						     sizeof(o->myaddr), value);
	if (!strcmp(name, "zone"))
		return set_zone(o, value);
	if (!strcmp(name, "cluster"))
		return copy_str(o->cluster, sizeof(o->cluster), value);
	if (!strcmp(name, "log_level"))
		return set_log_level(o, value);
	if (!strcmp(name, "log_dir"))
		return set_log_dir(o, value);
	if (!strcmp(name, "log_format"))
		return set_log_format(o, value);
	if (!strcmp(name, "log_destination"))
		return set_log_dst(o, value);
	if (!strcmp(name, "foreground"))
		return parse_bool(value, &o->foreground);
	if (!strcmp(name, "nosync"))
		return parse_bool(value, &o->nosync);
	if (!strcmp(name, "pidfile"))
		return copy_str(o->pidfile, sizeof(o->pidfile), value);
	if (!strcmp(name, "vnodes"))
		return set_vnodes(o, value);
	if (!strcmp(name, "gateway"))
		return parse_bool(value, &o->gateway);
	if (!strcmp(name, "directio"))
		return parse_bool(value, &o->directio);
	if (!strcmp(name, "recovery"))
		return parse_recovery_opt(o, value);
	if (!strcmp(name, "nbd_port"))
		return set_nbd_port(o, value);
	if (!strcmp(name, "nbd_address"))
		return set_nbd_address(o, value);
	if (!strcmp(name, "nbd_max_connections"))
		return set_nbd_max_conns(o, value);
	return -ENOENT;
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

/*
 * The file format of sheepdog.conf(5), parsed here rather than by libinih:
 * inih reads an indented line as the continuation of the previous value,
 * ends a value at " ;" and (as Debian builds it) splits lines longer than
 * 200 bytes, and store paths on real hosts are longer than that. A line is
 * blank, a comment (# or ;), or key = value; the value runs to the end of
 * the line. The first bad line stops the daemon with its number and key.
 */
static void load_config_file(struct sheep_opts *o, const char *path)
{
	FILE *f = fopen(path, "re");
	char *line = NULL;
	size_t cap = 0;
	int lineno = 0;

	if (!f) {
		fprintf(stderr, "sheep: cannot read config file %s: %s\n", path,
			strerror(errno));
		exit(1);
	}
	while (getline(&line, &cap, f) >= 0) {
		char *s = trim(line), *eq, *key, *value;

		lineno++;
		if (!*s || *s == '#' || *s == ';')
			continue;
		eq = strchr(s, '=');
		if (!eq) {
			fprintf(stderr, "sheep: %s:%d: expected 'key = value'\n",
				path, lineno);
			exit(1);
		}
		*eq = '\0';
		key = trim(s);
		value = trim(eq + 1);
		if (conf_set(o, key, value) < 0) {
			fprintf(stderr,
				"sheep: %s:%d: invalid key or value for '%s'\n",
				path, lineno, key);
			exit(1);
		}
	}
	if (ferror(f)) {
		fprintf(stderr, "sheep: cannot read config file %s: %s\n", path,
			strerror(errno));
		exit(1);
	}
	free(line);
	fclose(f);
}

static void bad_opt(char opt, const char *arg, const char *why)
{
	fprintf(stderr, "sheep: invalid -%c '%s': %s\n", opt, arg, why);
	exit(1);
}

void parse_options(struct sheep_opts *o, int argc, char **argv)
{
	int ch, idx;

	memset(o, 0, sizeof(*o));
	o->port = 7000;
	strcpy(o->cluster, "local");
	strcpy(o->dir, "/tmp");
	o->log_level = 6;
	o->log_format = LOG_FORMAT_SERVER;
	o->log_dst = LOG_DST_FILE;
	o->nbd_port = NBD_DEFAULT_PORT;
	o->nbd_max_conns = NBD_DEFAULT_CONNECTIONS;

	/* The file first, so that flags override it wherever they appear. */
	for (int i = 1; i < argc; i++) {
		if (!strcmp(argv[i], "--config") && i + 1 < argc)
			load_config_file(o, argv[++i]);
		else if (!strncmp(argv[i], "--config=", 9))
			load_config_file(o, argv[i] + 9);
	}

	optind = 1;
	while ((ch = getopt_long(argc, argv, short_opts, long_opts, &idx)) !=
	       -1) {
		switch (ch) {
		case 'b':
			if (check_addr(optarg) < 0 ||
			    copy_str(o->bindaddr, sizeof(o->bindaddr), optarg))
				bad_opt(ch, optarg, "not an IP address");
			break;
		case 'c':
			if (copy_str(o->cluster, sizeof(o->cluster), optarg))
				bad_opt(ch, optarg, "too long");
			break;
		case 'D':
			o->directio = true;
			break;
		case 'f':
			o->foreground = true;
			break;
		case 'g':
			o->gateway = true;
			break;
		case 'l':
			if (parse_log_opt(o, optarg) < 0)
				bad_opt(ch, optarg,
					"expected level=L,dir=D,format=F,dst=T");
			break;
		case 'n':
			o->nosync = true;
			break;
		case 'p':
			if (set_port(o, optarg) < 0)
				bad_opt(ch, optarg, "port must be 1 to 65535");
			break;
		case 'P':
			if (copy_str(o->pidfile, sizeof(o->pidfile), optarg))
				bad_opt(ch, optarg, "too long");
			break;
		case 'R':
			if (parse_recovery_opt(o, optarg) < 0)
				bad_opt(ch, optarg,
					"expected max=N,interval=MS, both "
					"positive (or both 0 for no limit)");
			break;
		case 'v':
			printf("Sheepdog daemon version %s\n", SD_VERSION);
			exit(0);
		case 'V':
			if (set_vnodes(o, optarg) < 0 || !o->vnodes)
				bad_opt(ch, optarg, "vnodes must be 1 to 65535");
			break;
		case 'y':
			if (check_addr(optarg) < 0 ||
			    copy_str(o->myaddr, sizeof(o->myaddr), optarg))
				bad_opt(ch, optarg, "not an IP address");
			break;
		case 'z':
			if (set_zone(o, optarg) < 0)
				bad_opt(ch, optarg,
					"zone must be an unsigned 32-bit number");
			break;
		case 'h':
			usage(0);
			break;
		case OPT_CONFIG:
			break;
		case OPT_NO_DIRECTIO:
			o->directio = false;
			break;
		case OPT_NBD:
			if (parse_nbd_opt(o, optarg) < 0) {
				fprintf(stderr,
					"sheep: invalid --nbd '%s': expected "
					"port=N (0 to 65535, 0 for no NBD),"
					"address=IP,max-connections=N (1 to "
					"%u)\n",
					optarg, NBD_MAX_CONNECTIONS);
				exit(1);
			}
			break;
		default:
			usage(1);
		}
	}
	if (optind < argc) {
		if (argc - optind > 1)
			usage(1);
		if (strchr(argv[optind], ',')) {
			fprintf(stderr, "sheep: several disks (%s) are not "
				"supported yet; give one directory\n",
				argv[optind]);
			exit(1);
		}
		if (copy_str(o->dir, sizeof(o->dir), argv[optind]))
			bad_opt('d', argv[optind], "path too long");
	}
	if (o->gateway && o->vnodes) {
		fprintf(stderr, "sheep: -g and -V cannot be combined\n");
		exit(1);
	}
	if (o->log_dst == LOG_DST_STDERR)
		o->foreground = true;
}
