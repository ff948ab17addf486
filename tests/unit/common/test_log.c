#include <errno.h>
#include <pthread.h>
#include <regex.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>

#include "common/log.h"

static char tmpdir[64];
static char logfile[128];

static int setup(void **state)
{
    snprintf(tmpdir, sizeof(tmpdir), "/tmp/curve_log_XXXXXX");
    if (!mkdtemp(tmpdir))
        return -1;
    snprintf(logfile, sizeof(logfile), "%s/test.log", tmpdir);
    return 0;
}

static int teardown(void **state)
{
    curve_log_close();
    unlink(logfile);
    rmdir(tmpdir);
    return 0;
}

/* Reads the whole log file into a malloc'ed string. */
static char *slurp(const char *path)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    char *s = malloc((size_t)n + 1);
    assert_non_null(s);
    assert_int_equal(fread(s, 1, (size_t)n, f), (size_t)n);
    s[n] = '\0';
    fclose(f);
    return s;
}

static void test_parse_level(void **state)
{
    curve_log_level l;
    assert_int_equal(curve_log_parse_level("debug", &l), 0);
    assert_int_equal(l, CURVE_LOG_DEBUG);
    assert_int_equal(curve_log_parse_level("INFO", &l), 0);
    assert_int_equal(l, CURVE_LOG_INFO);
    assert_int_equal(curve_log_parse_level("Warn", &l), 0);
    assert_int_equal(l, CURVE_LOG_WARN);
    assert_int_equal(curve_log_parse_level("error", &l), 0);
    assert_int_equal(l, CURVE_LOG_ERROR);
    assert_int_equal(curve_log_parse_level("verbose", &l), -EINVAL);
    assert_int_equal(curve_log_parse_level("", &l), -EINVAL);
    assert_int_equal(curve_log_parse_level(NULL, &l), -EINVAL);
}

static void test_format_and_file(void **state)
{
    unlink(logfile);
    assert_int_equal(curve_log_open(logfile), 0);
    curve_log_set_level(CURVE_LOG_INFO);
    assert_int_equal(curve_log_get_level(), CURVE_LOG_INFO);
    CLOG_INFO("hello %d %s", 42, "world");
    CLOG_DEBUG("hidden debug");
    CLOG_WARN("warned\n"); /* trailing newline is not doubled */
    curve_log_write(CURVE_LOG_ERROR, "/a/b/c/file.c", 77, "explicit");
    curve_log_close();
    char *s = slurp(logfile);
    assert_null(strstr(s, "hidden debug"));
    regex_t re;
    assert_int_equal(regcomp(&re,
                             "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{6}Z I "
                             "[0-9]+ test_log\\.c:[0-9]+\\] hello 42 world\n"
                             "[^\n]* W [0-9]+ test_log\\.c:[0-9]+\\] warned\n"
                             "[^\n]* E [0-9]+ file\\.c:77\\] explicit\n$",
                             REG_EXTENDED | REG_NEWLINE),
                     0);
    int m = regexec(&re, s, 0, NULL, 0);
    if (m != 0)
        fprintf(stderr, "log was:\n%s", s);
    assert_int_equal(m, 0);
    regfree(&re);
    /* the thread id is ours */
    char tid[32];
    snprintf(tid, sizeof(tid), " I %d ", (int)gettid());
    assert_non_null(strstr(s, tid));
    free(s);
    /* appending: reopen adds lines */
    assert_int_equal(curve_log_open(logfile), 0);
    CLOG_ERROR("second");
    curve_log_close();
    s = slurp(logfile);
    assert_non_null(strstr(s, "hello 42"));
    assert_non_null(strstr(s, "] second\n"));
    free(s);
}

static void test_levels_filter(void **state)
{
    unlink(logfile);
    assert_int_equal(curve_log_open(logfile), 0);
    curve_log_set_level(CURVE_LOG_ERROR);
    CLOG_WARN("w-filtered");
    CLOG_ERROR("e-kept");
    curve_log_set_level(CURVE_LOG_DEBUG);
    CLOG_DEBUG("d-kept");
    curve_log_set_level(CURVE_LOG_INFO);
    curve_log_close();
    char *s = slurp(logfile);
    assert_null(strstr(s, "w-filtered"));
    assert_non_null(strstr(s, "e-kept"));
    assert_non_null(strstr(s, " D "));
    assert_non_null(strstr(s, "d-kept"));
    free(s);
}

static void test_long_line_truncated(void **state)
{
    unlink(logfile);
    assert_int_equal(curve_log_open(logfile), 0);
    size_t n = 20000;
    char *big = malloc(n + 1);
    memset(big, 'a', n);
    big[n] = '\0';
    CLOG_INFO("%s", big);
    CLOG_INFO("after");
    curve_log_close();
    free(big);
    char *s = slurp(logfile);
    char *nl = strchr(s, '\n');
    assert_non_null(nl);
    assert_true(nl - s < 8192);
    assert_memory_equal(nl - 3, "...", 3);
    assert_non_null(strstr(nl + 1, "] after\n"));
    free(s);
}

static size_t fmt_line(char *buf, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    size_t n = curve_log_format(buf, cap, CURVE_LOG_WARN, "x/y.c", 5, fmt, ap);
    va_end(ap);
    return n;
}

static void test_format_small_buffers(void **state)
{
    char buf[80];
    size_t n = fmt_line(buf, sizeof(buf), "%s", "0123456789012345678901234567890123456789");
    assert_int_equal(n, strlen(buf));
    assert_true(n < sizeof(buf));
    assert_int_equal(buf[n - 1], '\n');
    assert_memory_equal(buf + n - 4, "...", 3);
    n = fmt_line(buf, sizeof(buf), "short");
    assert_non_null(strstr(buf, " W "));
    assert_non_null(strstr(buf, " y.c:5] short\n"));
    for (size_t cap = 0; cap < 40; cap++) {
        char small[40];
        memset(small, 'z', sizeof(small));
        n = fmt_line(small, cap, "message");
        assert_true(cap == 0 || n < cap);
        for (size_t i = cap; i < sizeof(small); i++)
            assert_int_equal(small[i], 'z'); /* nothing written past cap */
    }
}

enum { THREADS = 4, LINES_PER_THREAD = 500 };

static void *writer(void *arg)
{
    long id = (long)arg;
    char payload[301];
    memset(payload, 'a' + (int)id, 300);
    payload[300] = '\0';
    for (int i = 0; i < LINES_PER_THREAD; i++)
        CLOG_INFO("t%ld n%d %s end", id, i, payload);
    return NULL;
}

static void test_concurrent_lines_intact(void **state)
{
    unlink(logfile);
    assert_int_equal(curve_log_open(logfile), 0);
    curve_log_set_level(CURVE_LOG_INFO);
    pthread_t th[THREADS];
    for (long i = 0; i < THREADS; i++)
        assert_int_equal(pthread_create(&th[i], NULL, writer, (void *)i), 0);
    for (int i = 0; i < THREADS; i++)
        pthread_join(th[i], NULL);
    curve_log_close();
    char *s = slurp(logfile);
    int counts[THREADS] = {0};
    int lines = 0;
    for (char *line = strtok(s, "\n"); line; line = strtok(NULL, "\n")) {
        lines++;
        char *m = strstr(line, "] t");
        assert_non_null(m);
        long id = strtol(m + 3, NULL, 10);
        assert_true(id >= 0 && id < THREADS);
        /* the payload of one thread is never mixed with another's */
        char *p = strstr(m, " n");
        p = strchr(p + 2, ' ') + 1;
        for (int k = 0; k < 300; k++)
            assert_int_equal(p[k], 'a' + id);
        assert_string_equal(p + 300, " end");
        counts[id]++;
    }
    assert_int_equal(lines, THREADS * LINES_PER_THREAD);
    for (int i = 0; i < THREADS; i++)
        assert_int_equal(counts[i], LINES_PER_THREAD);
    free(s);
}

static void test_fatal_aborts(void **state)
{
    unlink(logfile);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        signal(SIGABRT, SIG_DFL);
        if (curve_log_open(logfile) != 0)
            _exit(2);
        CLOG_FATAL("fatal thing %d", 9);
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    char *s = slurp(logfile);
    assert_non_null(strstr(s, " F "));
    assert_non_null(strstr(s, "fatal thing 9"));
    free(s);
}

static void test_open_errors(void **state)
{
    assert_int_equal(curve_log_open("/nonexistent-dir/x/y.log"), -ENOENT);
    assert_int_equal(curve_log_open("-"), 0);
    assert_int_equal(curve_log_fd(), -1);
    assert_int_equal(curve_log_open(NULL), 0);
}

/* Child mode: prints the level chosen from CURVE_LOG_LEVEL at first use. */
static int env_child(void)
{
    printf("level=%d\n", (int)curve_log_get_level());
    return 0;
}

static void test_env_level(void **state)
{
    const char *vals[] = {"debug", "error", "bogus"};
    const int want[] = {CURVE_LOG_DEBUG, CURVE_LOG_ERROR, CURVE_LOG_INFO};
    for (int i = 0; i < 3; i++) {
        int p[2];
        assert_int_equal(pipe(p), 0);
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            dup2(p[1], STDOUT_FILENO);
            setenv("CURVE_LOG_LEVEL", vals[i], 1);
            execl("/proc/self/exe", "test_log", "--env-child", (char *)NULL);
            _exit(127);
        }
        close(p[1]);
        char buf[64] = {0};
        size_t got = 0;
        ssize_t r;
        while (got < sizeof(buf) - 1 && (r = read(p[0], buf + got, sizeof(buf) - 1 - got)) > 0)
            got += (size_t)r;
        close(p[0]);
        int st;
        assert_int_equal(waitpid(pid, &st, 0), pid);
        assert_true(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        char expect[32];
        snprintf(expect, sizeof(expect), "level=%d\n", want[i]);
        assert_string_equal(buf, expect);
    }
}

int main(int argc, char **argv)
{
    if (argc > 1 && strcmp(argv[1], "--env-child") == 0)
        return env_child();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse_level),
        cmocka_unit_test(test_format_and_file),
        cmocka_unit_test(test_levels_filter),
        cmocka_unit_test(test_long_line_truncated),
        cmocka_unit_test(test_format_small_buffers),
        cmocka_unit_test(test_concurrent_lines_intact),
        cmocka_unit_test(test_fatal_aborts),
        cmocka_unit_test(test_open_errors),
        cmocka_unit_test(test_env_level),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
