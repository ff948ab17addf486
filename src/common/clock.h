/*
 * Clocks behind an interface, so the simulator can replace them with a virtual clock.
 * Production code receives a `const curve_clock *` and never calls clock_gettime itself.
 */
#ifndef CURVE_COMMON_CLOCK_H
#define CURVE_COMMON_CLOCK_H

#include <stdint.h>

typedef struct curve_clock {
    uint64_t (*mono_ns)(const struct curve_clock *c); /* monotonic, never goes back */
    uint64_t (*wall_ns)(const struct curve_clock *c); /* ns since the Unix epoch (UTC) */
    void *ctx;
} curve_clock;

/* The process-wide system clock (CLOCK_MONOTONIC / CLOCK_REALTIME). Never NULL. */
const curve_clock *curve_clock_system(void);

static inline uint64_t curve_clock_mono_ns(const curve_clock *c)
{
    return c->mono_ns(c);
}
static inline uint64_t curve_clock_mono_ms(const curve_clock *c)
{
    return c->mono_ns(c) / 1000000u;
}
static inline uint64_t curve_clock_wall_ns(const curve_clock *c)
{
    return c->wall_ns(c);
}

/* A manual clock for tests: time only moves when curve_clock_manual_advance() is called. */
typedef struct curve_clock_manual {
    curve_clock base;
    uint64_t now_ns;
    uint64_t wall_offset_ns;
} curve_clock_manual;
void curve_clock_manual_init(curve_clock_manual *m, uint64_t start_ns);
void curve_clock_manual_advance(curve_clock_manual *m, uint64_t delta_ns);

/* Shorthands for the system clock. */
uint64_t curve_now_mono_ns(void);
uint64_t curve_now_mono_ms(void);
uint64_t curve_now_wall_ns(void);

#endif
