/*
 * Logging for sheep and dog. A line is formatted completely in memory and
 * handed to the destination with a single write() (or syslog() call), so
 * lines from concurrent threads never interleave; a mutex guards only the
 * destination state (the file descriptor swapped by log_reopen()). dog uses
 * the default format, bare messages on stderr; sheep uses the server format
 * or JSON. log_reopen() must be called from normal context (e.g. the event
 * loop after a SIGHUP was noted), never from inside a signal handler.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/time.h>
#include <syslog.h>
#include <time.h>
#include <unistd.h>

#include "sheepdog/log.h"
#include "sheepdog/util.h"

/* clang-format off */
static const char *const level_names[] = {
	"emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
};

static const char *const level_tags[] = {
	"EMERG", "ALERT", "CRIT", "ERROR", "WARN", "NOTICE", "INFO", "DEBUG",
};
/* clang-format on */

static pthread_mutex_t log_lock = PTHREAD_MUTEX_INITIALIZER;
static int log_level = SDOG_INFO;
static enum log_dst log_dst = LOG_DST_STDERR;
static enum log_format log_fmt = LOG_FORMAT_DEFAULT;
static int log_fd = -1;
static char *log_path;
static char log_prog[64] = "sheepdog";

int log_level_from_name(const char *name)
{
	for (int i = 0; i < (int)ARRAY_SIZE(level_names); i++)
		if (!strcasecmp(name, level_names[i]))
			return i;
	if (!strcasecmp(name, "error"))
		return SDOG_ERR;
	if (!strcasecmp(name, "warn"))
		return SDOG_WARNING;
	return -1;
}

const char *log_level_name(int level)
{
	if (level < 0 || level >= (int)ARRAY_SIZE(level_names))
		return NULL;
	return level_names[level];
}

void log_set_level(int level)
{
	if (level < SDOG_EMERG)
		level = SDOG_EMERG;
	if (level > SDOG_DEBUG)
		level = SDOG_DEBUG;
	__atomic_store_n(&log_level, level, __ATOMIC_RELAXED);
}

int log_get_level(void)
{
	return __atomic_load_n(&log_level, __ATOMIC_RELAXED);
}

static int open_log_file(const char *path)
{
	int fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);

	return fd < 0 ? -errno : fd;
}

int log_init(const char *progname, enum log_dst dst, enum log_format fmt,
	     int level, const char *path)
{
	int fd = -1;

	if (dst == LOG_DST_FILE) {
		if (!path)
			return -EINVAL;
		fd = open_log_file(path);
		if (fd < 0)
			return fd;
	}

	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	free(log_path);
	log_path = dst == LOG_DST_FILE ? xstrdup(path) : NULL;
	log_fd = fd;
	log_dst = dst;
	log_fmt = fmt;
	if (progname)
		snprintf(log_prog, sizeof(log_prog), "%s", progname);
	pthread_mutex_unlock(&log_lock);

	if (dst == LOG_DST_SYSLOG)
		openlog(log_prog, LOG_PID | LOG_NDELAY, LOG_DAEMON);
	log_set_level(level);
	return 0;
}

int log_reopen(void)
{
	int fd, old;

	pthread_mutex_lock(&log_lock);
	if (log_dst != LOG_DST_FILE || !log_path) {
		pthread_mutex_unlock(&log_lock);
		return 0;
	}
	fd = open_log_file(log_path);
	if (fd < 0) {
		pthread_mutex_unlock(&log_lock);
		return fd;
	}
	old = log_fd;
	log_fd = fd;
	pthread_mutex_unlock(&log_lock);
	if (old >= 0)
		close(old);
	return 0;
}

void log_close(void)
{
	pthread_mutex_lock(&log_lock);
	if (log_fd >= 0)
		close(log_fd);
	log_fd = -1;
	if (log_dst == LOG_DST_SYSLOG)
		closelog();
	free(log_path);
	log_path = NULL;
	log_dst = LOG_DST_STDERR;
	pthread_mutex_unlock(&log_lock);
}

static void append_json_string(struct strbuf *sb, const char *s)
{
	strbuf_addstr(sb, "\"");
	for (; *s; s++) {
		unsigned char c = *s;

		if (c == '"' || c == '\\')
			strbuf_addf(sb, "\\%c", c);
		else if (c == '\n')
			strbuf_addstr(sb, "\\n");
		else if (c == '\t')
			strbuf_addstr(sb, "\\t");
		else if (c < 0x20)
			strbuf_addf(sb, "\\u%04x", c);
		else
			strbuf_add(sb, &c, 1);
	}
	strbuf_addstr(sb, "\"");
}

static void format_line(struct strbuf *sb, enum log_format fmt, int level,
			const char *func, int line, const char *msg)
{
	struct timeval tv;
	struct tm tm;
	char ts[64];

	if (fmt == LOG_FORMAT_DEFAULT) {
		strbuf_addf(sb, "%s\n", msg);
		return;
	}
	gettimeofday(&tv, NULL);
	localtime_r(&tv.tv_sec, &tm);
	if (fmt == LOG_FORMAT_SERVER) {
		strftime(ts, sizeof(ts), "%b %d %H:%M:%S", &tm);
		strbuf_addf(sb, "%s.%06ld %s [%s] %s\n", ts, (long)tv.tv_usec,
			    level_tags[level], func, msg);
		return;
	}
	strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);
	strbuf_addf(sb, "{\"time\":\"%s.%06ld\",\"level\":\"%s\",", ts,
		    (long)tv.tv_usec, level_names[level]);
	strbuf_addstr(sb, "\"program\":");
	append_json_string(sb, log_prog);
	strbuf_addstr(sb, ",\"func\":");
	append_json_string(sb, func);
	strbuf_addf(sb, ",\"line\":%d,\"msg\":", line);
	append_json_string(sb, msg);
	strbuf_addstr(sb, "}\n");
}

static void write_line(int fd, const char *buf, size_t len)
{
	while (len) {
		ssize_t n = write(fd, buf, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return;
		buf += n;
		len -= n;
	}
}

void log_write(int level, const char *func, int line, const char *fmt, ...)
{
	struct strbuf msg = STRBUF_INIT, out = STRBUF_INIT;
	int saved_errno = errno;
	va_list ap;

	if (level > log_get_level())
		return;
	if (level < SDOG_EMERG)
		level = SDOG_EMERG;

	va_start(ap, fmt);
	strbuf_vaddf(&msg, fmt, ap);
	va_end(ap);
	/* callers may or may not end with a newline; one line is written */
	while (msg.len && msg.buf[msg.len - 1] == '\n')
		msg.buf[--msg.len] = '\0';

	pthread_mutex_lock(&log_lock);
	switch (log_dst) {
	case LOG_DST_SYSLOG:
		syslog(level, "%s", msg.buf);
		break;
	case LOG_DST_JOURNAL:
		/* journald reads "<N>" priority prefixes on stderr */
		strbuf_addf(&out, "<%d>%s\n", level, msg.buf);
		write_line(STDERR_FILENO, out.buf, out.len);
		break;
	case LOG_DST_FILE:
	case LOG_DST_STDERR:
		format_line(&out, log_fmt, level, func, line, msg.buf);
		write_line(log_dst == LOG_DST_FILE && log_fd >= 0
			       ? log_fd
			       : STDERR_FILENO,
			   out.buf, out.len);
		break;
	}
	pthread_mutex_unlock(&log_lock);

	strbuf_release(&msg);
	strbuf_release(&out);
	errno = saved_errno;
}
