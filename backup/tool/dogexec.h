/*
 * Running the dog command for sheepdog-backup: the tool never speaks the
 * wire protocol, it runs `dog` as a child (fork and exec, no shell) with
 * the configured address and port, collects what it prints, and bounds
 * how long it may take.
 */
#ifndef SHEEPDOG_BACKUP_TOOL_DOGEXEC_H
#define SHEEPDOG_BACKUP_TOOL_DOGEXEC_H

#include <stdbool.h>

#include "sheepdog/util.h"

struct dogexec {
	char *path;	     /* what is exec'd: a path, or a name for PATH */
	const char *address; /* -a for the commands that talk to a sheep */
	unsigned port;	     /* -p */
	unsigned timeout;    /* seconds; 0: no limit */
	bool verbose;	     /* print each command line on stdout */
};

/*
 * The dog to run: CONFIGURED if set, else "dog" in the directory of this
 * executable when there is one, else "dog" looked up in PATH. Allocated.
 */
char *dogexec_locate(const char *configured);

/*
 * Run dog with ARGV (NULL-terminated, without argv[0]); with CLUSTER, -a
 * and -p are appended. Its standard output goes to OUT (or nowhere when
 * OUT is NULL), its standard error to ERR. Returns dog's exit status, or
 * -1 when it could not run, was killed or ran out of time (ERR says why).
 */
int dogexec_run(const struct dogexec *d, const char *const *argv, bool cluster,
		struct strbuf *out, struct strbuf *err);

#endif
