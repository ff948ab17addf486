/*
 * Leveled logging. A line looks like:
 *   2026-11-26T04:40:01.123456Z I 12345 rpc_tcp.c:210] accepted 127.0.0.1:4000
 * (UTC timestamp, level letter, thread id, file:line, message). Output goes to stderr or to a
 * file (curve_log_open); writes of one line are atomic with respect to other threads.
 */
#ifndef CURVE_COMMON_LOG_H
#define CURVE_COMMON_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum {
    CURVE_LOG_DEBUG = 0,
    CURVE_LOG_INFO = 1,
    CURVE_LOG_WARN = 2,
    CURVE_LOG_ERROR = 3,
    CURVE_LOG_FATAL = 4, /* logs, then aborts */
} curve_log_level;

/* Minimum level printed (default INFO; env CURVE_LOG_LEVEL=debug|info|warn|error overrides at
 * first use). Thread-safe. */
void curve_log_set_level(curve_log_level level);
curve_log_level curve_log_get_level(void);
/* Parses "debug", "info", "warn", "error" (case-insensitive). Returns 0 or -EINVAL. */
int curve_log_parse_level(const char *s, curve_log_level *out);

/* Sends log output to `path` (appending, created 0644). NULL or "-" means stderr.
 * Returns 0 or a negative errno. */
int curve_log_open(const char *path);
void curve_log_close(void);

void curve_log_write(curve_log_level level, const char *file, int line, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
void curve_log_vwrite(curve_log_level level, const char *file, int line, const char *fmt,
                      va_list ap);

/* Formats one log line (prefix, message, trailing '\n', NUL) into `buf` of `cap` >= 64 bytes,
 * cutting long messages (they end with "..."). Returns the length without the NUL. */
size_t curve_log_format(char *buf, size_t cap, curve_log_level level, const char *file, int line,
                        const char *fmt, va_list ap);
/* Writes `len` raw bytes to the current log output with one write(2) (used by assertions). */
void curve_log_raw(const char *buf, size_t len);
/* The fd of the log file opened by curve_log_open, or -1 when logging to stderr. */
int curve_log_fd(void);

#define CURVE_LOG_(lvl, ...)                                                                       \
    do {                                                                                           \
        if ((lvl) >= curve_log_get_level())                                                        \
            curve_log_write((lvl), __FILE__, __LINE__, __VA_ARGS__);                               \
    } while (0)

#define CLOG_DEBUG(...) CURVE_LOG_(CURVE_LOG_DEBUG, __VA_ARGS__)
#define CLOG_INFO(...)  CURVE_LOG_(CURVE_LOG_INFO, __VA_ARGS__)
#define CLOG_WARN(...)  CURVE_LOG_(CURVE_LOG_WARN, __VA_ARGS__)
#define CLOG_ERROR(...) CURVE_LOG_(CURVE_LOG_ERROR, __VA_ARGS__)
#define CLOG_FATAL(...) CURVE_LOG_(CURVE_LOG_FATAL, __VA_ARGS__)

#endif
