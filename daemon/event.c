/*
 * The main thread's event loop: epoll over sockets, timers and the work
 * queues' completion eventfd. Handlers run on the main thread and must not
 * block; anything slow goes to a work queue.
 */
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "sheep.h"

struct event_info {
	int fd;
	event_handler_t handler;
	void *data;
	struct list_node ei_list;
};

static int efd = -1;
static volatile bool loop_running;
static LIST_HEAD(events);

int event_init(void)
{
	efd = epoll_create1(EPOLL_CLOEXEC);
	if (efd < 0)
		return -errno;
	return 0;
}

static struct event_info *lookup_event(int fd)
{
	struct event_info *ei;

	list_for_each_entry(ei, &events, ei_list)
		if (ei->fd == fd)
			return ei;
	return NULL;
}

int register_event(int fd, uint32_t events_mask, event_handler_t h, void *data)
{
	struct epoll_event ev = { 0 };
	struct event_info *ei = xzalloc(sizeof(*ei));

	ei->fd = fd;
	ei->handler = h;
	ei->data = data;
	ev.events = events_mask;
	ev.data.ptr = ei;
	if (epoll_ctl(efd, EPOLL_CTL_ADD, fd, &ev) < 0) {
		int err = errno;

		free(ei);
		return -err;
	}
	list_add(&ei->ei_list, &events);
	return 0;
}

int modify_event(int fd, uint32_t events_mask)
{
	struct epoll_event ev = { 0 };
	struct event_info *ei = lookup_event(fd);

	if (!ei)
		return -ENOENT;
	ev.events = events_mask;
	ev.data.ptr = ei;
	if (epoll_ctl(efd, EPOLL_CTL_MOD, fd, &ev) < 0)
		return -errno;
	return 0;
}

/* Events already returned by epoll_wait for an unregistered fd must not run:
 * freed infos are parked until the end of the current loop iteration. */
static LIST_HEAD(dead_events);

void unregister_event(int fd)
{
	struct event_info *ei = lookup_event(fd);

	if (!ei)
		return;
	epoll_ctl(efd, EPOLL_CTL_DEL, fd, NULL);
	list_del(&ei->ei_list);
	ei->handler = NULL;
	list_add(&ei->ei_list, &dead_events);
}

void event_stop(void)
{
	loop_running = false;
}

void event_loop(void)
{
	struct epoll_event evs[128];

	loop_running = true;
	while (loop_running) {
		int n = epoll_wait(efd, evs, ARRAY_SIZE(evs), 1000);

		if (n < 0) {
			if (errno == EINTR)
				continue;
			sd_emerg("epoll_wait failed: %m");
			abort();
		}
		for (int i = 0; i < n; i++) {
			struct event_info *ei = evs[i].data.ptr;

			if (ei->handler)
				ei->handler(ei->fd, evs[i].events, ei->data);
		}
		while (!list_empty(&dead_events)) {
			struct event_info *ei = list_first_entry(
				&dead_events, struct event_info, ei_list);

			list_del(&ei->ei_list);
			free(ei);
		}
	}
}

struct timer {
	void (*fn)(void *);
	void *data;
};

static void timer_handler(int fd, uint32_t events_mask, void *data)
{
	struct timer *t = data;
	uint64_t expirations;

	if (read(fd, &expirations, sizeof(expirations)) < 0)
		return;
	t->fn(t->data);
}

int add_timer(unsigned int interval_ms, void (*fn)(void *), void *data)
{
	struct itimerspec its = { 0 };
	struct timer *t;
	int fd, ret;

	fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (fd < 0)
		return -errno;
	its.it_interval.tv_sec = interval_ms / 1000;
	its.it_interval.tv_nsec = (interval_ms % 1000) * 1000000L;
	its.it_value = its.it_interval;
	if (timerfd_settime(fd, 0, &its, NULL) < 0) {
		ret = -errno;
		close(fd);
		return ret;
	}
	t = xzalloc(sizeof(*t));
	t->fn = fn;
	t->data = data;
	ret = register_event(fd, EPOLLIN, timer_handler, t);
	if (ret < 0) {
		close(fd);
		free(t);
		return ret;
	}
	return fd;
}
