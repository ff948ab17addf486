/*
 * Leveled logging (see log.h). Each line is formatted into a bounded stack buffer and written
 * with a single write(2), so concurrent lines never interleave (O_APPEND for files).
 */
#include "common/log.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* Longest line written; longer messages are cut and end with "...". */
#define LOG_LINE_MAX 4096
#define LOG_LEVEL_UNSET (-1)

static atomic_int log_level = LOG_LEVEL_UNSET;

/* Protects log_fd against being closed while another thread writes to it: writers hold it
 * shared, curve_log_open/close exclusively. -1 means stderr. */
static pthread_rwlock_t log_fd_lock = PTHREAD_RWLOCK_INITIALIZER;
static int log_fd = -1;

int curve_log_parse_level(const char *s, curve_log_level *out)
{
    static const struct {
        const char *name;
        curve_log_level level;
    } names[] = {
        {"debug", CURVE_LOG_DEBUG}, {"info", CURVE_LOG_INFO},   {"warn", CURVE_LOG_WARN},
        {"warning", CURVE_LOG_WARN}, {"error", CURVE_LOG_ERROR}, {"fatal", CURVE_LOG_FATAL},
    };
    if (!s || !out)
        return -EINVAL;
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -EINVAL;
}

void curve_log_set_level(curve_log_level level)
{
    if (level < CURVE_LOG_DEBUG)
        level = CURVE_LOG_DEBUG;
    if (level > CURVE_LOG_FATAL)
        level = CURVE_LOG_FATAL;
    atomic_store_explicit(&log_level, (int)level, memory_order_relaxed);
}

curve_log_level curve_log_get_level(void)
{
    int l = atomic_load_explicit(&log_level, memory_order_relaxed);
    if (l != LOG_LEVEL_UNSET)
        return (curve_log_level)l;
    curve_log_level parsed = CURVE_LOG_INFO;
    const char *env = getenv("CURVE_LOG_LEVEL");
    if (env && curve_log_parse_level(env, &parsed) != 0)
        parsed = CURVE_LOG_INFO;
    int expected = LOG_LEVEL_UNSET;
    /* Only the first caller (or an explicit set_level) wins. */
    atomic_compare_exchange_strong(&log_level, &expected, (int)parsed);
    return (curve_log_level)atomic_load_explicit(&log_level, memory_order_relaxed);
}

int curve_log_open(const char *path)
{
    int fd = -1;
    if (path && strcmp(path, "-") != 0) {
        fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
        if (fd < 0)
            return -errno;
    }
    pthread_rwlock_wrlock(&log_fd_lock);
    int old = log_fd;
    log_fd = fd;
    pthread_rwlock_unlock(&log_fd_lock);
    if (old >= 0)
        close(old);
    return 0;
}

void curve_log_close(void)
{
    (void)curve_log_open(NULL);
}

int curve_log_fd(void)
{
    pthread_rwlock_rdlock(&log_fd_lock);
    int fd = log_fd;
    pthread_rwlock_unlock(&log_fd_lock);
    return fd;
}

static void write_all(int fd, const char *p, size_t n)
{
    while (n > 0) {
        ssize_t w = write(fd, p, n);
        if (w < 0) {
            if (errno == EINTR)
                continue;
            return; /* nowhere to report a failing log */
        }
        p += w;
        n -= (size_t)w;
    }
}

void curve_log_raw(const char *buf, size_t len)
{
    pthread_rwlock_rdlock(&log_fd_lock);
    write_all(log_fd >= 0 ? log_fd : STDERR_FILENO, buf, len);
    pthread_rwlock_unlock(&log_fd_lock);
}

static const char level_letter[] = {'D', 'I', 'W', 'E', 'F'};

static const char *base_name(const char *file)
{
    const char *s = file ? strrchr(file, '/') : NULL;
    return s ? s + 1 : (file ? file : "?");
}

size_t curve_log_format(char *buf, size_t cap, curve_log_level level, const char *file, int line,
                        const char *fmt, va_list ap)
{
    if (cap < 2) {
        if (cap == 1)
            buf[0] = '\0';
        return 0;
    }
    struct timespec ts;
    struct tm tm;
    clock_gettime(CLOCK_REALTIME, &ts);
    gmtime_r(&ts.tv_sec, &tm);
    if (level < CURVE_LOG_DEBUG || level > CURVE_LOG_FATAL)
        level = CURVE_LOG_ERROR;
    /* Reserve 1 byte for the newline; snprintf needs the NUL inside cap-1 bytes. */
    size_t room = cap - 1;
    int n = snprintf(buf, room, "%04d-%02d-%02dT%02d:%02d:%02d.%06ldZ %c %ld %s:%d] ",
                     tm.tm_year + 1900, tm.tm_mon + 1, tm.tm_mday, tm.tm_hour, tm.tm_min,
                     tm.tm_sec, ts.tv_nsec / 1000, level_letter[level], (long)gettid(),
                     base_name(file), line);
    size_t len = n < 0 ? 0 : ((size_t)n >= room ? room - 1 : (size_t)n);
    n = vsnprintf(buf + len, room - len, fmt, ap);
    if (n > 0) {
        if ((size_t)n >= room - len) {
            len = room - 1;
            if (len >= 3)
                memcpy(buf + len - 3, "...", 3);
        } else {
            len += (size_t)n;
        }
    }
    while (len > 0 && buf[len - 1] == '\n')
        len--;
    buf[len++] = '\n';
    buf[len] = '\0';
    return len;
}

void curve_log_vwrite(curve_log_level level, const char *file, int line, const char *fmt,
                      va_list ap)
{
    if (level != CURVE_LOG_FATAL && level < curve_log_get_level())
        return;
    char buf[LOG_LINE_MAX + 1];
    size_t len = curve_log_format(buf, sizeof(buf), level, file, line, fmt, ap);
    curve_log_raw(buf, len);
    if (level == CURVE_LOG_FATAL) {
        if (curve_log_fd() >= 0)
            write_all(STDERR_FILENO, buf, len);
        abort();
    }
}

void curve_log_write(curve_log_level level, const char *file, int line, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    curve_log_vwrite(level, file, line, fmt, ap);
    va_end(ap);
}
