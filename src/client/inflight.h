/*
 * Bounded in-flight RPCs per volume (DESIGN §3, client.max_inflight_rpcs): a counting limiter
 * with a FIFO of caller-owned waiters. A piece that cannot get a slot waits in the queue and is
 * handed the slot of the next RPC that finishes, in arrival order (no starvation, no
 * queue-jumping by later submitters).
 *
 * Thread model: thread-safe; one mutex (`lock`) protects the counters and the queue. Waiter
 * callbacks run outside the lock, on the thread that released the slot.
 */
#ifndef CURVE_CLIENT_INFLIGHT_H
#define CURVE_CLIENT_INFLIGHT_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct curve_inflight_waiter curve_inflight_waiter;
/* The waiter now holds one slot (it must release it later). Must not call
 * curve_inflight_release() synchronously on the same limiter (post to an event loop instead):
 * the hand-off would recurse. */
typedef void (*curve_inflight_cb)(curve_inflight_waiter *w);

/* Caller-owned; embed it in the request. Must stay valid until its callback has run. */
struct curve_inflight_waiter {
    curve_inflight_waiter *next;
    curve_inflight_cb cb;
};

typedef struct curve_inflight {
    pthread_mutex_t lock;               /* protects used, head, tail, waiting, max_waiting */
    uint32_t limit;                     /* slots */
    uint32_t used;                      /* slots held */
    curve_inflight_waiter *head, *tail; /* FIFO of waiters */
    uint64_t waiting;                   /* waiters queued now */
    uint64_t max_waiting;               /* high-water mark, for metrics */
} curve_inflight;

/* limit >= 1. Returns 0, -EINVAL or -errno from pthread_mutex_init. */
int curve_inflight_init(curve_inflight *l, uint32_t limit);
/* Asserts nothing is held or queued. */
void curve_inflight_destroy(curve_inflight *l);
/* Takes a slot if one is free and nobody is queued. Returns true when taken. */
bool curve_inflight_try_acquire(curve_inflight *l);
/* Takes a slot now (returns true; cb is not called) or queues `w` (returns false; cb(w) runs
 * once when a slot is handed to it). */
bool curve_inflight_acquire(curve_inflight *l, curve_inflight_waiter *w, curve_inflight_cb cb);
/* Releases one slot: hands it to the oldest waiter (running its callback) or frees it. */
void curve_inflight_release(curve_inflight *l);
uint32_t curve_inflight_used(curve_inflight *l);
uint64_t curve_inflight_waiting(curve_inflight *l);

#endif
