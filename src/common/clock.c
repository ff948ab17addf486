/* System and manual clocks (see clock.h). */
#include "common/clock.h"

#include <time.h>

#include "common/assert.h"

static uint64_t read_clock(clockid_t id)
{
    struct timespec ts;
    int rc = clock_gettime(id, &ts);
    CURVE_ASSERT(rc == 0);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static uint64_t sys_mono_ns(const curve_clock *c)
{
    return read_clock(CLOCK_MONOTONIC);
}

static uint64_t sys_wall_ns(const curve_clock *c)
{
    return read_clock(CLOCK_REALTIME);
}

static const curve_clock system_clock = {
    .mono_ns = sys_mono_ns,
    .wall_ns = sys_wall_ns,
    .ctx = NULL,
};

const curve_clock *curve_clock_system(void)
{
    return &system_clock;
}

static uint64_t manual_mono_ns(const curve_clock *c)
{
    const curve_clock_manual *m = CURVE_CONTAINER_OF(c, curve_clock_manual, base);
    return m->now_ns;
}

static uint64_t manual_wall_ns(const curve_clock *c)
{
    const curve_clock_manual *m = CURVE_CONTAINER_OF(c, curve_clock_manual, base);
    return m->now_ns + m->wall_offset_ns;
}

/* Wall time of a fresh manual clock: 2026-01-01T00:00:00Z plus its monotonic time. */
#define MANUAL_WALL_EPOCH_NS (1767225600ull * 1000000000ull)

void curve_clock_manual_init(curve_clock_manual *m, uint64_t start_ns)
{
    CURVE_ASSERT(m != NULL);
    m->base.mono_ns = manual_mono_ns;
    m->base.wall_ns = manual_wall_ns;
    m->base.ctx = m;
    m->now_ns = start_ns;
    m->wall_offset_ns = MANUAL_WALL_EPOCH_NS;
}

void curve_clock_manual_advance(curve_clock_manual *m, uint64_t delta_ns)
{
    CURVE_ASSERT(m != NULL);
    CURVE_ASSERT(m->now_ns + delta_ns >= m->now_ns); /* no wrap-around */
    m->now_ns += delta_ns;
}

uint64_t curve_now_mono_ns(void)
{
    return read_clock(CLOCK_MONOTONIC);
}

uint64_t curve_now_mono_ms(void)
{
    return read_clock(CLOCK_MONOTONIC) / 1000000u;
}

uint64_t curve_now_wall_ns(void)
{
    return read_clock(CLOCK_REALTIME);
}
