/*
 * sheepdog-backup: scheduled backups of Sheepdog VDIs as chains of
 * verified incremental streams, run from cron or a systemd timer. This
 * file reads the command line and the configuration, takes the lock on the
 * target directory (so that overlapping runs are safe) and dispatches to
 * one subcommand from the table below. Quiet unless something fails or -v.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include "tool.h"

enum lock_mode { LOCK_NONE, LOCK_SHARED, LOCK_EXCLUSIVE };

static const struct subcommand {
	const char *name;
	const char *args;
	int min_args, max_args; /* -1: any number */
	enum lock_mode lock;
	int (*fn)(struct tool *t, int argc, char **argv);
} subcommands[] = {
    {"run", "[VDI...]", 0, -1, LOCK_EXCLUSIVE, cmd_run},
    {"list", "[VDI...]", 0, -1, LOCK_NONE, cmd_list},
    {"restore", "VDI POINT NEWVDI", 3, 3, LOCK_SHARED, cmd_restore},
    {"prune", "[VDI...]", 0, -1, LOCK_EXCLUSIVE, cmd_prune},
    {"verify", "[VDI...]", 0, -1, LOCK_SHARED, cmd_verify},
};

static void usage(FILE *f)
{
	fprintf(f, "Usage: sheepdog-backup [-c CONFIG] [-v] COMMAND [ARGS]\n"
		   "Commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		fprintf(f, "  %s %s\n", subcommands[i].name,
			subcommands[i].args);
	fprintf(f,
		"Options: -c, --config FILE (default %s)\n"
		"         -f, --full  (run) write full streams\n"
		"         -v, --verbose  say what is done on stdout\n"
		"See sheepdog-backup(8).\n",
		BCONF_DEFAULT_PATH);
}

static void on_alarm(int sig)
{
}

/*
 * flock(2) on TARGET/.lock, held until exit. lock_wait seconds of waiting
 * are an alarm that interrupts the blocking flock (the handler is
 * installed without SA_RESTART).
 */
static int take_lock(const struct tool *t, enum lock_mode mode)
{
	struct strbuf path = STRBUF_INIT;
	int op = mode == LOCK_EXCLUSIVE ? LOCK_EX : LOCK_SH;
	struct sigaction sa = {.sa_handler = on_alarm};
	int fd, ret;

	if (mkdir(t->conf.target, 0750) < 0 && errno != EEXIST) {
		tool_err("cannot create target directory %s: %s",
			 t->conf.target, strerror(errno));
		return EXIT_FAILED;
	}
	strbuf_addf(&path, "%s/.lock", t->conf.target);
	fd = open(path.buf, O_RDWR | O_CREAT | O_CLOEXEC, 0640);
	if (fd < 0) {
		tool_err("cannot open %s: %s", path.buf, strerror(errno));
		strbuf_release(&path);
		return EXIT_FAILED;
	}
	if (!t->conf.lock_wait) {
		ret = flock(fd, op | LOCK_NB);
	} else {
		sigemptyset(&sa.sa_mask);
		sigaction(SIGALRM, &sa, NULL);
		alarm(t->conf.lock_wait);
		ret = flock(fd, op);
		alarm(0);
	}
	if (ret < 0) {
		if (errno == EWOULDBLOCK || errno == EINTR) {
			tool_err("%s is held by another run; gave up after "
				 "%u s",
				 path.buf, t->conf.lock_wait);
			ret = EXIT_LOCKED;
		} else {
			tool_err("cannot lock %s: %s", path.buf,
				 strerror(errno));
			ret = EXIT_FAILED;
		}
		close(fd);
		strbuf_release(&path);
		return ret;
	}
	strbuf_release(&path);
	return EXIT_OK; /* fd stays open: the lock lives as long as we do */
}

static const struct subcommand *find_subcommand(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(subcommands); i++)
		if (!strcmp(name, subcommands[i].name))
			return &subcommands[i];
	return NULL;
}

/* Every VDI named on the command line must be one the tool can store. */
static bool check_vdi_args(const struct subcommand *sc, int argc, char **argv)
{
	for (int i = 0; i < argc; i++) {
		if (sc->fn == cmd_restore && i == 1)
			continue; /* POINT */
		if (!bconf_valid_vdi(argv[i])) {
			tool_err("'%s' is not a usable VDI name", argv[i]);
			return false;
		}
	}
	return true;
}

int main(int argc, char **argv)
{
	static const struct option long_opts[] = {
	    {"config", required_argument, NULL, 'c'},
	    {"full", no_argument, NULL, 'f'},
	    {"verbose", no_argument, NULL, 'v'},
	    {"help", no_argument, NULL, 'h'},
	    {"version", no_argument, NULL, 'V'},
	    {NULL, 0, NULL, 0},
	};
	const char *config = BCONF_DEFAULT_PATH;
	const struct subcommand *sc;
	struct strbuf err = STRBUF_INIT;
	struct tool t = {0};
	int ch, nargs, ret;

	while ((ch = getopt_long(argc, argv, "c:fvhV", long_opts, NULL)) !=
	       -1) {
		switch (ch) {
		case 'c':
			config = optarg;
			break;
		case 'f':
			t.force_full = true;
			break;
		case 'v':
			t.verbose = true;
			break;
		case 'h':
			usage(stdout);
			return EXIT_OK;
		case 'V':
			printf("sheepdog-backup %s\n", SD_VERSION);
			return EXIT_OK;
		default:
			usage(stderr);
			return EXIT_CONFIG;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return EXIT_CONFIG;
	}
	sc = find_subcommand(argv[optind]);
	if (!sc) {
		tool_err("unknown command '%s'", argv[optind]);
		usage(stderr);
		return EXIT_CONFIG;
	}
	nargs = argc - optind - 1;
	if (nargs < sc->min_args ||
	    (sc->max_args >= 0 && nargs > sc->max_args)) {
		tool_err("usage: sheepdog-backup %s %s", sc->name, sc->args);
		return EXIT_CONFIG;
	}
	if (t.force_full && sc->fn != cmd_run) {
		tool_err("-f only applies to 'run'");
		return EXIT_CONFIG;
	}
	if (!check_vdi_args(sc, nargs, argv + optind + 1))
		return EXIT_CONFIG;

	bconf_init(&t.conf);
	if (bconf_load(&t.conf, config, &err)) {
		tool_err("%s", err.buf);
		strbuf_release(&err);
		bconf_release(&t.conf);
		return EXIT_CONFIG;
	}
	if (!nargs && sc->min_args == 0 && !t.conf.nr_vdis) {
		tool_err("%s: no VDI configured ('vdis' or 'vdi') and none "
			 "named",
			 config);
		bconf_release(&t.conf);
		return EXIT_CONFIG;
	}
	t.dog = (struct dogexec){
	    .path = dogexec_locate(t.conf.dog),
	    .address = t.conf.address,
	    .port = t.conf.port,
	    .timeout = t.conf.dog_timeout,
	    .verbose = t.verbose,
	};

	ret = sc->lock == LOCK_NONE ? EXIT_OK : take_lock(&t, sc->lock);
	if (ret == EXIT_OK)
		ret = sc->fn(&t, nargs, argv + optind + 1);
	free(t.dog.path);
	bconf_release(&t.conf);
	return ret;
}
