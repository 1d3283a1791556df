/*
 * Work queues: named pools of threads that run blocking work (disk I/O,
 * requests to peers, cluster work phases) and hand each finished item back
 * to the main thread through one eventfd, where its done() callback runs.
 * A queue with one thread runs its items strictly in order. Other threads
 * hand work to the main thread through the same path (queue_main_work).
 */
#include <errno.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "sheep.h"

struct work_queue {
	char name[32];
	pthread_mutex_t lock;
	pthread_cond_t cond;
	struct list_head pending;
	int nr_threads;
};

static int done_fd = -1;
static pthread_mutex_t done_lock = PTHREAD_MUTEX_INITIALIZER;
static LIST_HEAD(done_list);

static void *worker_main(void *arg)
{
	struct work_queue *wq = arg;

	for (;;) {
		struct work *w;
		uint64_t one = 1;

		pthread_mutex_lock(&wq->lock);
		while (list_empty(&wq->pending))
			pthread_cond_wait(&wq->cond, &wq->lock);
		w = list_first_entry(&wq->pending, struct work, w_list);
		list_del(&w->w_list);
		pthread_mutex_unlock(&wq->lock);

		if (w->fn)
			w->fn(w);

		pthread_mutex_lock(&done_lock);
		list_add_tail(&w->w_list, &done_list);
		pthread_mutex_unlock(&done_lock);
		if (write(done_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
			sd_err("eventfd write failed: %m");
	}
	return NULL;
}

static void done_handler(int fd, uint32_t events, void *data)
{
	struct list_head local;
	uint64_t cnt;

	if (read(fd, &cnt, sizeof(cnt)) < 0 && errno != EAGAIN)
		sd_err("eventfd read failed: %m");

	INIT_LIST_HEAD(&local);
	pthread_mutex_lock(&done_lock);
	if (!list_empty(&done_list)) {
		local.n.next = done_list.n.next;
		local.n.prev = done_list.n.prev;
		local.n.next->prev = &local.n;
		local.n.prev->next = &local.n;
		INIT_LIST_HEAD(&done_list);
	}
	pthread_mutex_unlock(&done_lock);

	while (!list_empty(&local)) {
		struct work *w = list_first_entry(&local, struct work, w_list);

		list_del(&w->w_list);
		if (w->done)
			w->done(w);
	}
}

int work_init(void)
{
	done_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	if (done_fd < 0)
		return -errno;
	return register_event(done_fd, EPOLLIN, done_handler, NULL);
}

struct work_queue *create_work_queue(const char *name, int nr_threads)
{
	struct work_queue *wq = xzalloc(sizeof(*wq));

	snprintf(wq->name, sizeof(wq->name), "%s", name);
	pthread_mutex_init(&wq->lock, NULL);
	pthread_cond_init(&wq->cond, NULL);
	INIT_LIST_HEAD(&wq->pending);
	wq->nr_threads = nr_threads;
	for (int i = 0; i < nr_threads; i++) {
		pthread_t t;
		pthread_attr_t attr;
		char tname[16];

		pthread_attr_init(&attr);
		/* Workers need little stack; keep idle memory small. */
		pthread_attr_setstacksize(&attr, 256 * 1024);
		if (pthread_create(&t, &attr, worker_main, wq) != 0) {
			sd_emerg("cannot start %s worker: %m", name);
			abort();
		}
		pthread_attr_destroy(&attr);
		snprintf(tname, sizeof(tname), "%.8s%d", name, i % 100);
		pthread_setname_np(t, tname);
		pthread_detach(t);
	}
	return wq;
}

void queue_main_work(struct work *work)
{
	uint64_t one = 1;

	pthread_mutex_lock(&done_lock);
	list_add_tail(&work->w_list, &done_list);
	pthread_mutex_unlock(&done_lock);
	if (write(done_fd, &one, sizeof(one)) < 0 && errno != EAGAIN)
		sd_err("eventfd write failed: %m");
}

void queue_work(struct work_queue *wq, struct work *work)
{
	pthread_mutex_lock(&wq->lock);
	list_add_tail(&work->w_list, &wq->pending);
	pthread_cond_signal(&wq->cond);
	pthread_mutex_unlock(&wq->lock);
}
