/*
 * sheep: the storage daemon. Reads its settings, takes the store directory
 * (one daemon per directory, enforced by a lock), starts logging, the work
 * queues, the store and the listeners, joins the cluster and runs the event
 * loop until it is stopped by SIGTERM, a cluster shutdown or a kill request.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <unistd.h>

#include "cluster/cluster.h"
#include "nbd.h"
#include "options.h"
#include "sheep.h"

static struct sheep_opts opts;

static int mkdir_p(const char *path)
{
	char tmp[4096];

	snprintf(tmp, sizeof(tmp), "%s", path);
	for (char *p = tmp + 1; *p; p++) {
		if (*p != '/')
			continue;
		*p = '\0';
		if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
			return -errno;
		*p = '/';
	}
	if (mkdir(tmp, 0755) < 0 && errno != EEXIST)
		return -errno;
	return 0;
}

static int lock_base_dir(const char *base)
{
	char path[4200];
	int fd;

	snprintf(path, sizeof(path), "%s/lock", base);
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0) {
		fprintf(stderr, "sheep: cannot open %s: %s\n", path,
			strerror(errno));
		return -1;
	}
	if (lockf(fd, F_TLOCK, 1) < 0) {
		fprintf(stderr, "sheep: another sheep daemon is using %s\n",
			base);
		return -1;
	}
	return fd; /* held for the daemon's lifetime */
}

static int write_pidfile(const char *path)
{
	char buf[32];
	int fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0644);

	if (fd < 0 || lockf(fd, F_TLOCK, 0) < 0) {
		sd_err("cannot lock pid file %s: %m", path);
		return -1;
	}
	snprintf(buf, sizeof(buf), "%d\n", getpid());
	if (ftruncate(fd, 0) < 0 || write(fd, buf, strlen(buf)) < 0) {
		sd_err("cannot write pid file %s: %m", path);
		return -1;
	}
	return 0;
}

static void daemonize(void)
{
	pid_t pid = fork();
	int fd;

	if (pid < 0) {
		perror("sheep: fork");
		exit(1);
	}
	if (pid > 0)
		_exit(0);
	setsid();
	fd = open("/dev/null", O_RDWR);
	if (fd >= 0) {
		dup2(fd, 0);
		dup2(fd, 1);
		dup2(fd, 2);
		if (fd > 2)
			close(fd);
	}
}

static const char *exit_reason;

static void exit_if_idle(void *arg)
{
	if (nr_outstanding_requests() || !nbd_stopped())
		return;
	sd_notice("%s, exiting", exit_reason);
	group_leave();
	log_close();
	exit(0);
}

void exit_when_idle(const char *reason)
{
	if (exit_reason)
		return;
	exit_reason = reason;
	nbd_stop();
	add_timer(20, exit_if_idle, NULL);
}

static void leave_and_exit(void)
{
	group_leave();
	log_close();
	exit(0);
}

/* Timer after SIGTERM: NBD clients were connected; exit once their
 * exports are closed (their VDI locks released through this loop). */
static void exit_when_nbd_stopped(void *arg)
{
	if (nbd_stopped())
		leave_and_exit();
}

static void signal_handler(int fd, uint32_t events, void *data)
{
	struct signalfd_siginfo si;

	while (read(fd, &si, sizeof(si)) == sizeof(si)) {
		switch (si.ssi_signo) {
		case SIGTERM:
		case SIGINT:
			sd_notice("signal %u: leaving the cluster and exiting",
				  si.ssi_signo);
			nbd_stop();
			if (nbd_stopped())
				leave_and_exit();
			add_timer(20, exit_when_nbd_stopped, NULL);
			break;
		case SIGHUP:
			log_reopen();
			sd_info("log reopened");
			break;
		}
	}
}

static int init_signals(void)
{
	sigset_t mask;
	int fd;

	signal(SIGPIPE, SIG_IGN);
	sigemptyset(&mask);
	sigaddset(&mask, SIGTERM);
	sigaddset(&mask, SIGINT);
	sigaddset(&mask, SIGHUP);
	/* Block before any thread starts so that all of them inherit it. */
	pthread_sigmask(SIG_BLOCK, &mask, NULL);
	fd = signalfd(-1, &mask, SFD_NONBLOCK | SFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	return register_event(fd, EPOLLIN, signal_handler, NULL);
}

/* Load the persistent cluster state of this store, if it was formatted. */
static int load_store_config(void)
{
	struct sheepdog_config c;
	int ret = config_load(&c);

	strcpy(sys->store, "plain");
	sys->nr_copies = SD_DEFAULT_COPIES;
	sys->block_size_shift = SD_DEFAULT_BLOCK_SIZE_SHIFT;
	sys->flags = SD_CLUSTER_FLAG_AUTO_VNODES;
	if (ret == -ENOENT)
		return 0;
	if (ret < 0) {
		sd_err("%s/config is unreadable: %s", sys->base_dir,
		       strerror(-ret));
		return ret;
	}
	if (c.version != SD_FORMAT_VERSION) {
		sd_err("%s/config has store format %u; this sheep reads format %u",
		       sys->base_dir, c.version, SD_FORMAT_VERSION);
		return -EINVAL;
	}
	sys->ctime = c.ctime;
	sys->flags = c.flags;
	sys->nr_copies = c.copies;
	sys->copy_policy = c.copy_policy;
	sys->block_size_shift = c.block_size_shift;
	sys->shutdown_clean = c.shutdown;
	sys->this_node.space = c.space;
	if (c.default_store[0])
		snprintf(sys->store, sizeof(sys->store), "%s", c.default_store);
	return 0;
}

static int init_this_node(void)
{
	struct sd_node *n = &sys->this_node;
	bool local = !strncmp(opts.cluster, "local", 5);

	if (opts.myaddr[0])
		str_to_addr(opts.myaddr, n->nid.addr);
	else if (opts.bindaddr[0] && strcmp(opts.bindaddr, "0.0.0.0") &&
		 strcmp(opts.bindaddr, "::"))
		str_to_addr(opts.bindaddr, n->nid.addr);
	else
		str_to_addr("127.0.0.1", n->nid.addr);
	n->nid.port = opts.port;
	/* Several sheep on one host share an address: default to distinct
	 * zones there so that copies land on different processes. */
	if (opts.zone_set)
		n->zone = opts.zone;
	else if (local)
		n->zone = opts.port;
	else
		n->zone = node_default_zone(n->nid.addr);
	sys->gateway_only = opts.gateway;
	if (opts.gateway) {
		n->nr_vnodes = 0;
		n->space = 0;
		return 0;
	}
	n->nr_vnodes = opts.vnodes ? opts.vnodes : SD_DEFAULT_VNODES;
	if (!n->space) {
		uint64_t size, avail;

		if (store_space(&size, &avail) < 0)
			return -errno;
		n->space = avail;
	}
	return 0;
}

int main(int argc, char **argv)
{
	char path[4200];
	int ret;

	parse_options(&opts, argc, argv);
	if (mkdir_p(opts.dir) < 0) {
		fprintf(stderr, "sheep: cannot create %s: %s\n", opts.dir,
			strerror(errno));
		return 1;
	}
	if (!realpath(opts.dir, sys->base_dir)) {
		fprintf(stderr, "sheep: %s: %s\n", opts.dir, strerror(errno));
		return 1;
	}
	snprintf(path, sizeof(path), "%s/epoch", sys->base_dir);
	if (mkdir(path, 0755) < 0 && errno != EEXIST) {
		fprintf(stderr, "sheep: cannot create %s: %s\n", path,
			strerror(errno));
		return 1;
	}
	if (lock_base_dir(sys->base_dir) < 0)
		return 1;
	if (!opts.foreground) {
		daemonize();
		/* Record locks do not survive fork: take it again here. */
		snprintf(path, sizeof(path), "%s/lock", sys->base_dir);
		{
			int fd = open(path, O_WRONLY | O_CLOEXEC);

			if (fd < 0 || lockf(fd, F_LOCK, 1) < 0)
				return 1;
		}
	}

	if (opts.log_dst == LOG_DST_FILE) {
		snprintf(path, sizeof(path), "%s/sheep.log",
			 opts.log_dir[0] ? opts.log_dir : sys->base_dir);
		if (opts.log_dir[0])
			mkdir_p(opts.log_dir);
	}
	ret = log_init("sheep", opts.log_dst, opts.log_format, opts.log_level,
		       path);
	if (ret < 0) {
		fprintf(stderr, "sheep: cannot open log %s: %s\n", path,
			strerror(-ret));
		return 1;
	}
	if (opts.pidfile[0] && write_pidfile(opts.pidfile) < 0)
		return 1;

	{
		/* Every client and peer is a descriptor: allow many. */
		struct rlimit rl;

		if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
			rl.rlim_cur = rl.rlim_max;
			setrlimit(RLIMIT_NOFILE, &rl);
		}
	}
	if (event_init() < 0 || init_signals() < 0 || work_init() < 0) {
		sd_emerg("cannot set up the event loop: %m");
		return 1;
	}
	gateway_wq = create_work_queue("gway", 16);
	io_wq = create_work_queue("io", 8);
	local_wq = create_work_queue("local", 4);
	cluster_wq = create_work_queue("cluster", 1);
	bg_wq = create_work_queue("bg", 1);

	if (load_store_config() < 0)
		return 1;
	ret = store_init(sys->base_dir, sys->store, opts.nosync,
			 opts.directio);
	if (ret < 0)
		return 1;
	if (init_this_node() < 0) {
		sd_emerg("cannot measure the store's capacity: %m");
		return 1;
	}
	if (opts.recovery_max)
		recovery_throttle_set(opts.recovery_max,
				      opts.recovery_interval_ms);
	vdi_init();
	vdi_scan_local();

	snprintf(path, sizeof(path), "%s/sock", sys->base_dir);
	ret = server_init(opts.bindaddr[0] ? opts.bindaddr : NULL, opts.port,
			  path);
	if (ret < 0) {
		sd_emerg("cannot listen on port %d: %s", opts.port,
			 strerror(-ret));
		fprintf(stderr, "sheep: cannot listen on port %d: %s\n",
			opts.port, strerror(-ret));
		return 1;
	}
	if (opts.nbd_port) {
		const char *addr = opts.nbd_address[0] ? opts.nbd_address :
				   opts.bindaddr[0]    ? opts.bindaddr :
							 NULL;

		ret = nbd_init(addr, opts.nbd_port, opts.nbd_max_conns);
		if (ret < 0 && opts.nbd_set) {
			sd_emerg("cannot serve NBD on port %d: %s",
				 opts.nbd_port, strerror(-ret));
			fprintf(stderr, "sheep: cannot serve NBD on port %d: %s\n",
				opts.nbd_port, strerror(-ret));
			return 1;
		}
		/* The default port may be another sheep's on this host. */
		if (ret < 0)
			sd_warn("cannot serve NBD on the default port %d: %s; "
				"NBD is off (see --nbd)", opts.nbd_port,
				strerror(-ret));
	}
	if (group_init(opts.cluster) < 0)
		return 1;
	sd_notice("sheep %s started on port %d, store %s", SD_VERSION,
		  opts.port, sys->base_dir);
	event_loop();
	return 0;
}
