#include <fcntl.h>
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

#include "common/assert.h"
#include "common/log.h"

/* Runs `fn` in a child with stderr redirected to a pipe; returns the wait status and fills
 * `out` with what the child wrote. */
static int run_child(void (*fn)(void), char *out, size_t outlen)
{
    int p[2];
    assert_int_equal(pipe(p), 0);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        close(p[0]);
        dup2(p[1], STDERR_FILENO);
        signal(SIGABRT, SIG_DFL);
        fn();
        _exit(0);
    }
    close(p[1]);
    size_t got = 0;
    while (got < outlen - 1) {
        ssize_t r = read(p[0], out + got, outlen - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
    }
    out[got] = '\0';
    close(p[0]);
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    return status;
}

static volatile int volatile_value = 3;

static void failing_assert(void)
{
    CURVE_ASSERT(volatile_value == 4);
}

static void passing_assert(void)
{
    CURVE_ASSERT(volatile_value == 3);
}

static void unreachable(void)
{
    CURVE_UNREACHABLE();
}

static void test_assert_aborts(void **state)
{
    static char out[16384];
    int st = run_child(failing_assert, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "ASSERT FAILED: volatile_value == 4"));
    assert_non_null(strstr(out, "test_assert.c:"));
    assert_non_null(strstr(out, "failing_assert"));
}

static void test_assert_passes(void **state)
{
    static char out[4096];
    int st = run_child(passing_assert, out, sizeof(out));
    assert_true(WIFEXITED(st));
    assert_int_equal(WEXITSTATUS(st), 0);
    assert_null(strstr(out, "ASSERT FAILED"));
}

static void test_unreachable(void **state)
{
    static char out[16384];
    int st = run_child(unreachable, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "ASSERT FAILED: unreachable"));
}

static char log_path[64];

static void failing_assert_with_log(void)
{
    if (curve_log_open(log_path) != 0)
        _exit(3);
    CURVE_ASSERT(volatile_value == 5);
}

static void test_assert_goes_to_log(void **state)
{
    char dir[] = "/tmp/curve_assert_XXXXXX";
    assert_non_null(mkdtemp(dir));
    snprintf(log_path, sizeof(log_path), "%s/log", dir);
    static char out[16384];
    int st = run_child(failing_assert_with_log, out, sizeof(out));
    assert_true(WIFSIGNALED(st));
    assert_int_equal(WTERMSIG(st), SIGABRT);
    assert_non_null(strstr(out, "volatile_value == 5"));
    FILE *f = fopen(log_path, "r");
    assert_non_null(f);
    static char logbuf[16384];
    size_t n = fread(logbuf, 1, sizeof(logbuf) - 1, f);
    logbuf[n] = '\0';
    fclose(f);
    assert_non_null(strstr(logbuf, "ASSERT FAILED: volatile_value == 5"));
    unlink(log_path);
    rmdir(dir);
}

static void test_helpers(void **state)
{
    int arr[7];
    assert_int_equal(CURVE_ARRAY_SIZE(arr), 7);
    struct outer {
        int a;
        double b;
    } o;
    assert_ptr_equal(CURVE_CONTAINER_OF(&o.b, struct outer, b), &o);
    CURVE_STATIC_ASSERT(sizeof(int) >= 2, "int");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_assert_aborts),
        cmocka_unit_test(test_assert_passes),
        cmocka_unit_test(test_unreachable),
        cmocka_unit_test(test_assert_goes_to_log),
        cmocka_unit_test(test_helpers),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
