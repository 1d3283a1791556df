/*
 * sheep's settings after the config file and the command line are merged.
 */
#ifndef SHEEP_OPTIONS_H
#define SHEEP_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>

#include "sheepdog/log.h"

struct sheep_opts {
	char dir[4096];
	int port;
	char bindaddr[64];
	char myaddr[64];
	bool zone_set;
	uint32_t zone;
	char cluster[4096];
	int log_level;
	char log_dir[4096];
	enum log_format log_format;
	enum log_dst log_dst;
	bool foreground;
	bool nosync;
	bool gateway;
	bool directio;
	char pidfile[4096];
	uint16_t vnodes; /* 0 = auto */
	/* -R max=N,interval=MS: the initial recovery throttle, 0 0 = off */
	uint32_t recovery_max;
	uint64_t recovery_interval_ms;
	/* --nbd port=N,address=A,max-connections=N; port 0 = no NBD */
	int nbd_port;
	char nbd_address[64]; /* empty: bindaddr, or every address */
	uint32_t nbd_max_conns;
	bool nbd_set; /* configured: failing to listen is fatal */
};

void parse_options(struct sheep_opts *o, int argc, char **argv);
void usage(int status);

#endif
