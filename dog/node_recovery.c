/*
 * "dog node recovery": which members are recovering and how far they got
 * (STAT_RECOVERY from every node; -P follows the whole cluster's progress
 * until it is done), and the recovery throttle of the node given by -a/-p
 * (GET_RECOVERY / SET_RECOVERY). Output as in spec 11.3; what recovery does
 * is the daemon's business.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "dog.h"
#include "sheepdog/client.h"
#include "sheepdog/le.h"

/* recovery_state.state (spec 2.4) */
enum {
	RW_PREPARE_LIST,
	RW_RECOVER_OBJ,
	RW_NOTIFY_COMPLETION,
};

struct recovery_state {
	bool in_recovery;
	uint32_t state;
	uint64_t done, total;
};

/* Progress polls this often: often enough to look alive, rarely enough
 * to cost the sheep nothing. */
#define PROGRESS_POLL_MS 500

/*
 * STAT_RECOVERY from one node on a connection of its own. Quiet callers
 * (the progress loop, which polls nodes that may have left) get -1 without
 * a message. 0 or -1.
 */
static int stat_recovery(const struct node_id *nid, struct recovery_state *st,
			 bool quiet)
{
	uint8_t buf[SD_RECOVERY_STATE_SIZE] = {0};
	struct sd_req req;
	struct sd_rsp rsp;
	char host[64];
	int fd, ret;

	addr_to_str(nid->addr, host, sizeof(host));
	sd_init_req(&req, SD_OP_STAT_RECOVERY);
	req.data_length = sizeof(buf);
	fd = sd_connect(host, nid->port);
	if (fd < 0) {
		if (!quiet)
			sd_err("failed to connect to %s:%d: %s", host,
			       nid->port, strerror(-fd));
		return -1;
	}
	ret = sd_exec(fd, &req, NULL, buf, sizeof(buf), &rsp);
	close(fd);
	if (ret < 0 || rsp.result != SD_RES_SUCCESS) {
		if (!quiet)
			sd_err("Failed to get the recovery state of %s:%d: %s",
			       host, nid->port,
			       ret < 0 ? strerror(-ret)
				       : sd_strerror(rsp.result));
		return -1;
	}
	st->in_recovery = buf[0];
	st->state = get_le32(buf + 4);
	st->done = get_le64(buf + 8);
	st->total = get_le64(buf + 16);
	return 0;
}

static double percent(uint64_t done, uint64_t total)
{
	return total ? (double)done * 100 / total : 0;
}

/* The table of nodes in recovery (spec 11.3). */
static int recovery_list(void)
{
	int answered = 0;

	if (!raw_output) {
		printf("Nodes In Recovery:\n");
		printf("  Id   Host:Port         V-Nodes       Zone"
		       "       Progress\n");
	}
	for (int i = 0; i < sd_ring->nr_nodes; i++) {
		const struct sd_node *n = &sd_ring->nodes[i];
		struct recovery_state st;
		char host[64];

		if (stat_recovery(&n->nid, &st, false) < 0)
			continue;
		answered++;
		if (!st.in_recovery)
			continue;
		node_addr_to_str(&n->nid, host, sizeof(host));
		if (raw_output)
			printf("%d %s %d %d %" PRIu64 " %" PRIu64 "\n", i, host,
			       n->nr_vnodes, (int)n->zone, st.done, st.total);
		else
			printf("%4d   %-20s%5d%11d%11.1f%%\n", i, host,
			       n->nr_vnodes, (int)n->zone,
			       percent(st.done, st.total));
	}
	if (!answered) {
		sd_err("Cannot get information from any nodes");
		return EXIT_SYSFAIL;
	}
	return EXIT_SUCCESS;
}

/* The cluster's recovery summed over the nodes that answer. */
struct recovery_sum {
	int recovering, preparing, notifying;
	uint64_t done, total;
};

static void sum_recovery(struct recovery_sum *sum)
{
	memset(sum, 0, sizeof(*sum));
	for (int i = 0; i < sd_ring->nr_nodes; i++) {
		struct recovery_state st;

		if (stat_recovery(&sd_ring->nodes[i].nid, &st, true) < 0 ||
		    !st.in_recovery)
			continue;
		sum->recovering++;
		if (st.state == RW_PREPARE_LIST)
			sum->preparing++;
		else if (st.state == RW_NOTIFY_COMPLETION)
			sum->notifying++;
		sum->done += st.done;
		sum->total += st.total;
	}
}

static int terminal_width(void)
{
	struct winsize ws;

	if (ioctl(STDOUT_FILENO, TIOCGWINSZ, &ws) < 0 || ws.ws_col < 40)
		return 80;
	return ws.ws_col;
}

/* "%5.1f %% [====>   ] done / total" on one redrawn line. */
static void show_bar(uint64_t done, uint64_t total)
{
	char tail[64];
	double pct = percent(done, total);
	int width, filled;

	snprintf(tail, sizeof(tail), " %" PRIu64 " / %" PRIu64, done, total);
	width = terminal_width() - (int)strlen(tail) - 12;
	width = MAX(width, 10);
	filled = (int)(pct / 100 * width);
	printf("\r%5.1f %% [", pct);
	for (int i = 0; i < width; i++)
		putchar(i < filled ? '=' : i == filled ? '>' : ' ');
	printf("]%s\033[K", tail);
	fflush(stdout);
}

static void show_phase(const char *msg)
{
	printf("\r%s\033[K", msg);
	fflush(stdout);
}

/*
 * -P: follow recovery until no node recovers any more. The bar is drawn
 * on a terminal only; elsewhere dog just returns when recovery ended, which
 * is what a script waiting for it needs.
 */
static int recovery_progress(void)
{
	bool tty = isatty(STDOUT_FILENO);
	struct timespec pause = {
	    .tv_sec = PROGRESS_POLL_MS / 1000,
	    .tv_nsec = (PROGRESS_POLL_MS % 1000) * 1000000L,
	};
	uint64_t last_total = 0;
	bool shown = false;

	for (;;) {
		struct recovery_sum sum;

		sum_recovery(&sum);
		if (!sum.recovering)
			break;
		if (tty) {
			if (sum.preparing == sum.recovering)
				show_phase(
				    "preparing a checked object list...");
			else if (sum.notifying == sum.recovering)
				show_phase("notifying a completion of "
					   "recovery...");
			else
				show_bar(sum.done, sum.total);
			shown = true;
		}
		last_total = sum.total;
		nanosleep(&pause, NULL);
	}
	if (shown) {
		show_bar(last_total, last_total);
		printf("\n");
	}
	return EXIT_SUCCESS;
}

/* ---- throttle ---- */

static int get_throttle(void)
{
	uint8_t buf[SD_RECOVERY_THROTTLING_SIZE] = {0};
	struct sd_req req;
	struct sd_rsp rsp;

	sd_init_req(&req, SD_OP_GET_RECOVERY);
	req.data_length = sizeof(buf);
	if (dog_exec(&req, NULL, buf, sizeof(buf), &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to get the recovery throttle: %s",
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	sd_info("max (%" PRIu32 "), interval (%" PRIu64 ")", get_le32(buf),
		get_le64(buf + 8));
	return EXIT_SUCCESS;
}

/* max and interval: both positive, or both 0 to turn throttling off. */
static int parse_throttle(const char *smax, const char *sinterval,
			  uint32_t *max, uint64_t *interval)
{
	if (parse_u32(smax, 10, max) < 0) {
		sd_err("Invalid max '%s': expected a number of objects from "
		       "0 to %" PRIu32,
		       smax, UINT32_MAX);
		return EXIT_USAGE;
	}
	if (parse_u64(sinterval, 10, interval) < 0) {
		sd_err("Invalid interval '%s': expected a number of "
		       "milliseconds",
		       sinterval);
		return EXIT_USAGE;
	}
	if (!*max != !*interval) {
		sd_err("max and interval must both be positive, or both 0 "
		       "to disable throttling");
		return EXIT_USAGE;
	}
	return EXIT_SUCCESS;
}

static int set_throttle(int argc, char **argv)
{
	uint8_t buf[SD_RECOVERY_THROTTLING_SIZE] = {0};
	struct sd_req req;
	struct sd_rsp rsp;
	uint64_t interval;
	uint32_t max;
	int ret;

	if (argc - optind != 3) {
		sd_err("Please specify the max number of objects and the "
		       "interval in milliseconds");
		return EXIT_USAGE;
	}
	ret =
	    parse_throttle(argv[optind + 1], argv[optind + 2], &max, &interval);
	if (ret != EXIT_SUCCESS)
		return ret;

	put_le32(buf, max);
	put_le64(buf + 8, interval);
	buf[16] = max != 0;
	sd_init_req(&req, SD_OP_SET_RECOVERY);
	req.flags = SD_FLAG_CMD_WRITE;
	req.data_length = sizeof(buf);
	if (dog_exec(&req, buf, NULL, 0, &rsp) < 0)
		return EXIT_SYSFAIL;
	if (rsp.result != SD_RES_SUCCESS) {
		sd_err("Failed to set the recovery throttle: %s",
		       sd_strerror(rsp.result));
		return EXIT_FAILURE;
	}
	return EXIT_SUCCESS;
}

int node_recovery(int argc, char **argv)
{
	const char *what = optind < argc ? argv[optind] : "info";

	if (!strcmp(what, "info")) {
		if (node_cmd.progress)
			return recovery_progress();
		return recovery_list();
	}
	if (!strcmp(what, "get-throttle"))
		return get_throttle();
	if (!strcmp(what, "set-throttle"))
		return set_throttle(argc, argv);
	sd_err("Invalid command 'node recovery %s'", what);
	return EXIT_USAGE;
}
