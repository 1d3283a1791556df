/*
 * The configuration of sheepdog-backup (/etc/sheepdog/backup.conf): the
 * settings of one installation and the parser that checks every value
 * before the rest of the tool sees it. Pure code: no process, no cluster.
 */
#ifndef SHEEPDOG_BACKUP_TOOL_CONF_H
#define SHEEPDOG_BACKUP_TOOL_CONF_H

#include <stdbool.h>
#include <stddef.h>

#include "sheepdog/util.h"

#define BCONF_DEFAULT_PATH "/etc/sheepdog/backup.conf"
#define BCONF_MAX_TAG_PREFIX 64

struct bconf {
	char *target;  /* directory holding one subdirectory per VDI */
	char *dog;     /* dog binary; NULL: next to us, else PATH */
	char *address; /* sheep to talk to (dog -a) */
	unsigned port; /* its port (dog -p) */
	char **vdis;   /* VDIs that `run` backs up, in config order */
	size_t nr_vdis;
	unsigned keep;	     /* restore points kept per VDI */
	unsigned full_every; /* incrementals before the next full; 0: never */
	unsigned level;	     /* zstd level (dog vdi backup -L) */
	unsigned keep_snapshots; /* newest points whose snapshots stay */
	unsigned lock_wait;	 /* seconds to wait for the lock; 0: none */
	unsigned dog_timeout; /* seconds a dog command may run; 0: no limit */
	char *tag_prefix;     /* snapshot tags are PREFIX + UTC time */
};

/* Defaults for every key, no target and no VDI. */
void bconf_init(struct bconf *c);
void bconf_release(struct bconf *c);

/*
 * Parse TEXT (the contents of the file called NAME, for messages) into C,
 * which bconf_init() prepared. On the first bad line or missing key,
 * returns -EINVAL with "NAME:LINE: message" (or "NAME: message") in ERR.
 */
int bconf_parse(struct bconf *c, const char *name, const char *text,
		struct strbuf *err);

/* Read and parse the file at PATH; -errno or -EINVAL with ERR set. */
int bconf_load(struct bconf *c, const char *path, struct strbuf *err);

/*
 * A VDI name the tool accepts: 1 to 255 bytes, no whitespace, control
 * character, '/' or '\\', not starting with '.' (it names a directory).
 */
bool bconf_valid_vdi(const char *name);

#endif
