/* Helpers shared by the raftlog unit tests: temp dirs, completion waiters, entry payloads. */
#ifndef CURVE_TESTS_RAFTLOG_UTIL_H
#define CURVE_TESTS_RAFTLOG_UTIL_H

#include <errno.h>
#include <ftw.h>
#include <sys/stat.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "raft/io/disklog.h"

#define RT_WAIT_DEADLINE_S 60 /* bound for any wait on a callback */

/* RAFTLOG_SHARED_DISK=1 (set by the *_shared CTest variants): the model and crash tests open
 * their logs on a shared disk writer instead of a thread per log. Returns the writer (destroy
 * it with rlog_disk_destroy) or NULL in the default mode; exits on a creation failure. */
static inline rlog_disk *rt_env_disk(void)
{
    const char *s = getenv("RAFTLOG_SHARED_DISK");
    if (!s || !*s || strcmp(s, "0") == 0)
        return NULL;
    rlog_disk *d = NULL;
    if (rlog_disk_create("test", NULL, &d) != 0) {
        fprintf(stderr, "rlog_disk_create failed\n");
        exit(1);
    }
    return d;
}

static inline char *rt_mkdtemp(void)
{
    const char *base = getenv("TMPDIR");
    char tmpl[512];
    snprintf(tmpl, sizeof(tmpl), "%s/raftlog-test-XXXXXX", base && *base ? base : "/tmp");
    char *d = mkdtemp(tmpl);
    return d ? strdup(d) : NULL;
}

static inline int rt_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void rt_rmtree(char *dir)
{
    if (!dir)
        return;
    nftw(dir, rt_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

/* Counts completions; wait with a bounded deadline (never a bare sleep). */
typedef struct rt_waiter {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned done;
    unsigned errors;
    int last_status;
} rt_waiter;

static inline void rt_waiter_init(rt_waiter *w)
{
    pthread_mutex_init(&w->mu, NULL);
    pthread_cond_init(&w->cv, NULL);
    w->done = 0;
    w->errors = 0;
    w->last_status = 0;
}

static inline void rt_waiter_destroy(rt_waiter *w)
{
    pthread_mutex_destroy(&w->mu);
    pthread_cond_destroy(&w->cv);
}

static inline void rt_cb(void *arg, int status)
{
    rt_waiter *w = arg;
    pthread_mutex_lock(&w->mu);
    w->done++;
    if (status != 0) {
        w->errors++;
        w->last_status = status;
    }
    pthread_cond_broadcast(&w->cv);
    pthread_mutex_unlock(&w->mu);
}

/* Returns 0 once `n` completions arrived, -ETIMEDOUT after RT_WAIT_DEADLINE_S. */
static inline int rt_wait(rt_waiter *w, unsigned n)
{
    struct timespec dl;
    clock_gettime(CLOCK_REALTIME, &dl);
    dl.tv_sec += RT_WAIT_DEADLINE_S;
    int rc = 0;
    pthread_mutex_lock(&w->mu);
    while (w->done < n && rc == 0)
        rc = pthread_cond_timedwait(&w->cv, &w->mu, &dl);
    int ok = w->done >= n;
    pthread_mutex_unlock(&w->mu);
    return ok ? 0 : -ETIMEDOUT;
}

/* Deterministic payload of entry (index, term, variant): length and bytes. */
static inline uint32_t rt_len(uint64_t index, uint32_t max)
{
    uint64_t x = index * 2654435761u + 17;
    return max ? (uint32_t)(x % (max + 1)) : 0;
}

static inline void rt_fill(uint8_t *buf, uint32_t len, uint64_t index, uint64_t term)
{
    uint64_t x = index * 0x9E3779B97F4A7C15ull ^ term * 0xBF58476D1CE4E5B9ull;
    for (uint32_t i = 0; i < len; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        buf[i] = (uint8_t)x;
    }
}

#endif
