/*
 * Logging for sheep and dog. Levels are syslog's (0 emerg .. 7 debug).
 * Destinations: stderr, a file, or syslog/journal. dog uses sd_err/sd_info
 * as bare lines on stderr (spec 11.1).
 */
#ifndef SHEEPDOG_LOG_H
#define SHEEPDOG_LOG_H

#include <stdbool.h>

#define SDOG_EMERG 0
#define SDOG_ALERT 1
#define SDOG_CRIT 2
#define SDOG_ERR 3
#define SDOG_WARNING 4
#define SDOG_NOTICE 5
#define SDOG_INFO 6
#define SDOG_DEBUG 7

enum log_dst {
	LOG_DST_STDERR, /* bare lines (dog), or timestamped (sheep -f) */
	LOG_DST_FILE,
	LOG_DST_SYSLOG,
	LOG_DST_JOURNAL,
};

enum log_format {
	LOG_FORMAT_DEFAULT, /* the message only */
	LOG_FORMAT_SERVER,  /* timestamp, level, function */
	LOG_FORMAT_JSON,
};

/* Configure. path is used for LOG_DST_FILE. 0 or -errno. */
int log_init(const char *progname, enum log_dst dst, enum log_format fmt,
	     int level, const char *path);
void log_set_level(int level);
int log_get_level(void);
/* Reopen the log file (SIGHUP rotation). */
int log_reopen(void);
void log_close(void);
/* "emerg".."debug" <-> 0..7; -1 if unknown */
int log_level_from_name(const char *name);
const char *log_level_name(int level);

void log_write(int level, const char *func, int line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));

#define sd_emerg(fmt, ...) log_write(SDOG_EMERG, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_alert(fmt, ...) log_write(SDOG_ALERT, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_crit(fmt, ...) log_write(SDOG_CRIT, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_err(fmt, ...) log_write(SDOG_ERR, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_warn(fmt, ...) log_write(SDOG_WARNING, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_notice(fmt, ...) log_write(SDOG_NOTICE, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_info(fmt, ...) log_write(SDOG_INFO, __func__, __LINE__, fmt, ##__VA_ARGS__)
#define sd_debug(fmt, ...) log_write(SDOG_DEBUG, __func__, __LINE__, fmt, ##__VA_ARGS__)

#endif
