/* Always-on assertions (Redis serverAssert / TigerBeetle style). They stay in release builds. */
#ifndef CURVE_COMMON_ASSERT_H
#define CURVE_COMMON_ASSERT_H

#include <stddef.h>

/* Prints "ASSERT FAILED: <expr> at <file>:<line> (<func>)" with a backtrace to stderr and to the
 * log file (if any), then aborts. */
_Noreturn void curve_assert_fail(const char *expr, const char *file, int line, const char *func);

#define CURVE_ASSERT(e)                                                                            \
    ((e) ? (void)0 : curve_assert_fail(#e, __FILE__, __LINE__, __func__))

#define CURVE_UNREACHABLE() curve_assert_fail("unreachable", __FILE__, __LINE__, __func__)

#define CURVE_STATIC_ASSERT(e, msg) _Static_assert(e, msg)

#define CURVE_ARRAY_SIZE(a) (sizeof(a) / sizeof((a)[0]))

#define CURVE_CONTAINER_OF(ptr, type, member) ((type *)((char *)(ptr) - offsetof(type, member)))

#endif
