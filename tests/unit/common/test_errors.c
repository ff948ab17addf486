#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "curve/errors.h"

static const int all_codes[] = {
    CURVE_ERR_UNKNOWN,        CURVE_ERR_TIMEOUT,         CURVE_ERR_CANCELED,
    CURVE_ERR_SHUTDOWN,       CURVE_ERR_CORRUPT,         CURVE_ERR_CONFIG,
    CURVE_ERR_NOT_LEADER,     CURVE_ERR_BUSY,            CURVE_ERR_RPC_CONN,
    CURVE_ERR_RPC_PROTO,      CURVE_ERR_RPC_NOSERVICE,   CURVE_ERR_RPC_NOMETHOD,
    CURVE_ERR_RPC_TOOBIG,     CURVE_ERR_RPC_OVERLOAD,    CURVE_ERR_RPC_BADREQ,
    CURVE_ERR_RPC_INTERNAL,   CURVE_ERR_REDIRECTED,      CURVE_ERR_DISK_FAIL,
    CURVE_ERR_CRC_FAIL,       CURVE_ERR_INVALID_REQUEST, CURVE_ERR_NOSPACE,
    CURVE_ERR_COPYSET_NOTEXIST, CURVE_ERR_CHUNK_NOTEXIST, CURVE_ERR_FAILURE_UNKNOWN,
    CURVE_ERR_OVERLOAD,       CURVE_ERR_BACKWARD,        CURVE_ERR_CHUNK_EXIST,
    CURVE_ERR_EPOCH_TOO_OLD,  CURVE_ERR_NOT_FOUND,       CURVE_ERR_EXISTS,
    CURVE_ERR_NOT_EMPTY,      CURVE_ERR_BAD_NAME,        CURVE_ERR_BAD_SIZE,
    CURVE_ERR_PERMISSION,     CURVE_ERR_SESSION_EXPIRED, CURVE_ERR_FENCED,
    CURVE_ERR_ETCD,
};

static void test_every_curve_code_named(void **state)
{
    for (size_t i = 0; i < sizeof(all_codes) / sizeof(all_codes[0]); i++) {
        int c = all_codes[i];
        const char *name = curve_errname(c);
        const char *desc = curve_strerror(c);
        assert_non_null(name);
        assert_non_null(desc);
        assert_int_equal(strncmp(name, "CURVE_ERR_", 10), 0);
        assert_null(strstr(desc, "unknown error"));
        /* names are unique */
        for (size_t j = 0; j < i; j++)
            assert_string_not_equal(name, curve_errname(all_codes[j]));
    }
}

static void test_specific_names(void **state)
{
    assert_string_equal(curve_errname(CURVE_ERR_TIMEOUT), "CURVE_ERR_TIMEOUT");
    assert_string_equal(curve_errname(CURVE_ERR_EPOCH_TOO_OLD), "CURVE_ERR_EPOCH_TOO_OLD");
    assert_int_equal(CURVE_ERR_EPOCH_TOO_OLD, -10211); /* wire value never changes */
    assert_string_equal(curve_strerror(CURVE_ERR_TIMEOUT), "operation timed out");
}

static void test_errno(void **state)
{
    assert_string_equal(curve_errname(-EIO), "EIO");
    assert_string_equal(curve_errname(-ENOENT), "ENOENT");
    assert_string_equal(curve_strerror(-ENOENT), strerror(ENOENT));
    assert_string_equal(curve_strerror(-EINVAL), strerror(EINVAL));
    assert_string_equal(curve_strerror(0), "success");
}

static void test_unknown(void **state)
{
    assert_string_equal(curve_errname(-9999), "?");
    assert_string_equal(curve_errname(CURVE_ERR_BASE * -1 - 50), "?");
    assert_string_equal(curve_strerror(-99999), "unknown error -99999");
    assert_string_equal(curve_strerror(12345), "unknown error 12345");
    assert_string_equal(curve_errname(-4095), "?");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_curve_code_named),
        cmocka_unit_test(test_specific_names),
        cmocka_unit_test(test_errno),
        cmocka_unit_test(test_unknown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
