/*
 * The progress line of progress.h. Rates are averaged over the whole run,
 * which is steadier than an instantaneous rate for pipelined object I/O
 * whose replies come in bursts.
 */
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#include "progress.h"

#define PROGRESS_INTERVAL 0.1

static double now(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int term_width(void)
{
	struct winsize ws;

	if (ioctl(STDERR_FILENO, TIOCGWINSZ, &ws) == 0 && ws.ws_col >= 40)
		return ws.ws_col < 200 ? ws.ws_col : 200;
	return 80;
}

static void human(double bytes, char *buf, size_t len)
{
	static const char *const units[] = {"B", "KiB", "MiB", "GiB", "TiB",
					    "PiB"};
	int u = 0;

	while (bytes >= 1024 && u < 5) {
		bytes /= 1024;
		u++;
	}
	snprintf(buf, len, u ? "%.1f %s" : "%.0f %s", bytes, units[u]);
}

static void draw(struct progress *p, bool final)
{
	double elapsed = now() - p->start;
	double rate = elapsed > 0 ? p->done / elapsed : 0;
	char done[32], speed[32], tail[96], bar[128];
	int width = term_width(), barw;

	human(p->done, done, sizeof(done));
	human(rate, speed, sizeof(speed));
	if (!p->total) {
		fprintf(stderr, "\r%-8s %s  %s/s\033[K", p->what, done, speed);
		goto out;
	}

	unsigned pct = p->done >= p->total ? 100 : p->done * 100 / p->total;
	if (final || rate <= 0 || p->done >= p->total) {
		unsigned s = (unsigned)elapsed;

		snprintf(tail, sizeof(tail), "%s/s  in %u:%02u:%02u", speed,
			 s / 3600, s / 60 % 60, s % 60);
	} else {
		unsigned s = (unsigned)((p->total - p->done) / rate);

		snprintf(tail, sizeof(tail), "%s/s  ETA %u:%02u:%02u", speed,
			 s / 3600, s / 60 % 60, s % 60);
	}
	barw = width - 8 - 1 - 5 - 2 - 1 - (int)strlen(tail) - 2;
	if (barw > (int)sizeof(bar) - 1)
		barw = sizeof(bar) - 1;
	if (barw < 10)
		barw = 0;
	int fill = barw * pct / 100;

	memset(bar, '#', fill);
	memset(bar + fill, '.', barw - fill);
	bar[barw] = '\0';
	if (barw)
		fprintf(stderr, "\r%-8s %3u%% [%s] %s\033[K", p->what, pct,
			bar, tail);
	else
		fprintf(stderr, "\r%-8s %3u%% %s\033[K", p->what, pct, tail);
out:
	fflush(stderr);
	p->last_draw = now();
}

void progress_start(struct progress *p, const char *what, uint64_t total)
{
	memset(p, 0, sizeof(*p));
	p->on = isatty(STDERR_FILENO);
	p->what = what;
	p->total = total;
	p->start = now();
	if (p->on)
		draw(p, false);
}

void progress_add(struct progress *p, uint64_t n)
{
	p->done += n;
	if (p->on && now() - p->last_draw >= PROGRESS_INTERVAL)
		draw(p, false);
}

void progress_finish(struct progress *p)
{
	if (!p->on)
		return;
	draw(p, true);
	fputc('\n', stderr);
	p->on = false;
}

void progress_abort(struct progress *p)
{
	if (!p->on)
		return;
	fputs("\r\033[K", stderr);
	fflush(stderr);
	p->on = false;
}
