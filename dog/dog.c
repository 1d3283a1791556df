/*
 * dog's entry point: finds "<command> <subcommand>" in the command table,
 * parses the options that subcommand allows (global ones here, the group's
 * own through its parser), prepares the node list when the subcommand needs
 * it, and runs it. The usage texts, the "Invalid command" handling and the
 * exit codes follow upstream's dog (spec 11.1) so that scripts keep working.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <syslog.h>
#include <time.h>

#include "dog.h"

#ifndef SD_VERSION
#define SD_VERSION "unknown"
#endif

#define PROGRAM_NAME "dog"

const char *sd_host = "127.0.0.1";
int sd_port = SD_LISTEN_PORT;
bool raw_output;
bool verbose;

static const struct command *const commands[] = {
    &vdi_command,
    &node_command,
    &cluster_command,
    &backup_command,
};

static const struct dog_option global_options[] = {
    {'a', "address", true, "specify the daemon address (default: localhost)"},
    {'p', "port", true, "specify the daemon port"},
    {'r', "raw", false,
     "raw output mode: omit headers, separate fields with\n"
     "                          single spaces and print all sizes in decimal "
     "bytes"},
    {'v', "verbose", false, "print more information than default"},
    {'h', "help", false, "display this help and exit"},
    {'T', "time", false, "show elapsed time"},
    {0, NULL, false, NULL},
};

static bool is_help_word(const char *s)
{
	return !strcmp(s, "help") || !strcmp(s, "--help") || !strcmp(s, "-h");
}

static void __attribute__((noreturn)) usage(int status)
{
	if (status) {
		fprintf(stderr, "Try '%s --help' for more information.\n",
			PROGRAM_NAME);
		exit(status);
	}
	printf("Sheepdog administrator utility (version %s)\n", SD_VERSION);
	printf("Usage: %s <command> <subcommand> [options]\n", PROGRAM_NAME);
	printf("\nAvailable commands:\n");
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++) {
		for (const struct subcommand *s = commands[i]->sub; s->name;
		     s++) {
			char name[64];

			snprintf(name, sizeof(name), "%s %s", commands[i]->name,
				 s->name);
			printf("  %-24s%s\n", name, s->desc);
		}
	}
	printf("\n");
	printf("For more information, run "
	       "'%s <command> <subcommand> --help'.\n",
	       PROGRAM_NAME);
	exit(status);
}

static const struct dog_option *find_option(const struct command *cmd, int ch)
{
	for (const struct dog_option *o = cmd->options; o && o->name; o++)
		if (o->ch == ch)
			return o;
	for (const struct dog_option *o = global_options; o->name; o++)
		if (o->ch == ch)
			return o;
	return NULL;
}

static void __attribute__((noreturn))
subcommand_usage(const struct command *cmd, const struct subcommand *sub,
		 int status)
{
	const char *opts = sub->opts;

	printf("Usage: %s %s %s", PROGRAM_NAME, cmd->name, sub->name);
	for (const char *c = opts; *c; c++) {
		const struct dog_option *o = find_option(cmd, *c);

		if (o->has_arg)
			printf(" [-%c %s]", o->ch, o->name);
		else
			printf(" [-%c]", o->ch);
	}
	if (sub->arg && *sub->arg)
		printf(" %s", sub->arg);
	printf("\n");
	printf("Options:\n");
	for (const char *c = opts; *c; c++) {
		const struct dog_option *o = find_option(cmd, *c);
		char name[64];

		snprintf(name, sizeof(name), "-%c, --%s", o->ch, o->name);
		printf("  %-24s%s\n", name, o->desc);
	}
	exit(status);
}

static const struct command *find_command(const char *name)
{
	for (size_t i = 0; i < ARRAY_SIZE(commands); i++)
		if (!strcmp(commands[i]->name, name))
			return commands[i];
	return NULL;
}

static const struct subcommand *find_subcommand(const struct command *cmd,
						const char *name)
{
	for (const struct subcommand *s = cmd->sub; name && s->name; s++)
		if (!strcmp(s->name, name))
			return s;
	return NULL;
}

static void __attribute__((noreturn))
invalid_subcommand(const struct command *cmd, const char *name)
{
	if (name && !is_help_word(name))
		sd_err("Invalid command '%s %s'", cmd->name, name);
	sd_err("Available %s commands:", cmd->name);
	for (const struct subcommand *s = cmd->sub; s->name; s++)
		sd_err("  %s %s", cmd->name, s->name);
	exit(EXIT_USAGE);
}

static bool valid_host(const char *host)
{
	struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;

	if (getaddrinfo(host, NULL, &hints, &res))
		return false;
	freeaddrinfo(res);
	return true;
}

static void set_address(const char *s)
{
	if (!valid_host(s)) {
		sd_err("Invalid ip address %s", s);
		exit(EXIT_FAILURE);
	}
	sd_host = s;
}

static void set_port(const char *s)
{
	char *end;
	long port;

	errno = 0;
	port = strtol(s, &end, 10);
	if (end == s || *end || errno || port < 1 || port > 65535) {
		sd_err("Invalid port number '%s'", s);
		exit(EXIT_USAGE);
	}
	sd_port = (int)port;
}

/* $SHEEPDOG_DOG_LOG: record each invocation in syslog, or append it to
 * $SHEEPDOG_DOG_LOG_PATH with a timestamp. */
static void log_invocation(int argc, char **argv)
{
	const char *path = getenv("SHEEPDOG_DOG_LOG_PATH");
	struct strbuf line = STRBUF_INIT;

	if (!getenv("SHEEPDOG_DOG_LOG"))
		return;
	for (int i = 0; i < argc; i++)
		strbuf_addf(&line, "%s%s", i ? " " : "", argv[i]);
	if (path) {
		FILE *f = fopen(path, "a");
		char stamp[64];
		time_t now = time(NULL);
		struct tm tm;

		if (f) {
			localtime_r(&now, &tm);
			strftime(stamp, sizeof(stamp), "%Y-%m-%d %H:%M:%S",
				 &tm);
			fprintf(f, "%s %s\n", stamp, line.buf);
			fclose(f);
		}
	} else {
		openlog(PROGRAM_NAME, LOG_PID, LOG_USER);
		syslog(LOG_INFO, "%s", line.buf);
		closelog();
	}
	strbuf_release(&line);
}

/* getopt strings for exactly the letters the subcommand allows */
static void build_options(const struct command *cmd,
			  const struct subcommand *sub, char *shortopts,
			  struct option *longopts)
{
	int n = 0;

	for (const char *c = sub->opts; *c; c++) {
		const struct dog_option *o = find_option(cmd, *c);

		*shortopts++ = o->ch;
		if (o->has_arg)
			*shortopts++ = ':';
		longopts[n].name = o->name;
		longopts[n].has_arg =
		    o->has_arg ? required_argument : no_argument;
		longopts[n].flag = NULL;
		longopts[n].val = o->ch;
		n++;
	}
	*shortopts = '\0';
	memset(&longopts[n], 0, sizeof(longopts[n]));
}

static double now_seconds(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
	const struct command *cmd;
	const struct subcommand *sub;
	char shortopts[128];
	struct option longopts[64];
	bool elapsed = false;
	double start = 0;
	const char *env;
	int ch, ret;

	log_init(PROGRAM_NAME, LOG_DST_STDERR, LOG_FORMAT_DEFAULT, SDOG_INFO,
		 NULL);
	log_invocation(argc, argv);

	env = getenv("SHEEPDOG_DOG_ADDR");
	if (env)
		set_address(env);
	env = getenv("SHEEPDOG_DOG_PORT");
	if (env)
		set_port(env);

	if (argc < 2)
		usage(EXIT_SUCCESS);
	cmd = find_command(argv[1]);
	if (!cmd) {
		if (is_help_word(argv[1]))
			usage(EXIT_SUCCESS);
		sd_err("Invalid command '%s'", argv[1]);
		usage(EXIT_USAGE);
	}
	sub = find_subcommand(cmd, argc > 2 ? argv[2] : NULL);
	if (!sub)
		invalid_subcommand(cmd, argc > 2 ? argv[2] : NULL);

	build_options(cmd, sub, shortopts, longopts);
	optind = 3;
	while ((ch = getopt_long(argc, argv, shortopts, longopts, NULL)) >= 0) {
		switch (ch) {
		case 'a':
			set_address(optarg);
			break;
		case 'p':
			set_port(optarg);
			break;
		case 'r':
			raw_output = true;
			break;
		case 'v':
			verbose = true;
			break;
		case 'h':
			subcommand_usage(cmd, sub, EXIT_SUCCESS);
		case 'T':
			elapsed = true;
			break;
		case '?':
			usage(EXIT_USAGE);
		default:
			if (!cmd->parser)
				usage(EXIT_USAGE);
			cmd->parser(ch, optarg);
			break;
		}
	}

	if (sub->flags & CMD_NEED_NODELIST)
		dog_update_node_list();
	if ((sub->flags & CMD_NEED_ARG) && optind == argc)
		subcommand_usage(cmd, sub, EXIT_USAGE);

	if (elapsed)
		start = now_seconds();
	ret = sub->fn(argc, argv);
	if (ret == EXIT_USAGE)
		subcommand_usage(cmd, sub, EXIT_USAGE);
	if (elapsed)
		printf("\nElapsed time: %.3lf seconds\n",
		       now_seconds() - start);
	return ret;
}
