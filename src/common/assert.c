/* Always-on assertion failure path: message + backtrace to stderr and the log file. */
#include "common/assert.h"

#include <execinfo.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common/log.h"

/* Frames printed in an assertion backtrace. */
#define ASSERT_BACKTRACE_MAX 64

static void dump(int fd, const char *msg, size_t len, void *const *frames, int nframes)
{
    ssize_t w = write(fd, msg, len);
    (void)w;
    backtrace_symbols_fd(frames, nframes, fd);
}

_Noreturn void curve_assert_fail(const char *expr, const char *file, int line, const char *func)
{
    char msg[1024];
    int n = snprintf(msg, sizeof(msg), "ASSERT FAILED: %s at %s:%d (%s)\n", expr ? expr : "?",
                     file ? file : "?", line, func ? func : "?");
    size_t len = n < 0 ? 0 : ((size_t)n >= sizeof(msg) ? sizeof(msg) - 1 : (size_t)n);
    void *frames[ASSERT_BACKTRACE_MAX];
    int nframes = backtrace(frames, ASSERT_BACKTRACE_MAX);
    dump(STDERR_FILENO, msg, len, frames, nframes);
    int lfd = curve_log_fd();
    if (lfd >= 0) {
        curve_log_raw(msg, len);
        backtrace_symbols_fd(frames, nframes, lfd);
    }
    abort();
}
