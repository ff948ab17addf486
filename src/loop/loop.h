/*
 * Event loops, cross-loop message passing and a bounded worker pool (DESIGN §9, SPDK model).
 *
 * A curve_loop is one libuv loop. It runs either on a thread of its own (curve_loop_start) or on
 * the caller's thread (curve_loop_run). Every object that uses libuv handles belongs to exactly
 * one loop; other threads talk to it only through curve_loop_post() / curve_loop_post_msg().
 *
 * Callback contract (SPDK): a function that returns 0 runs its callback exactly once, later, on
 * the documented loop; a function that returns an error never runs its callback.
 *
 * See docs/concurrency.md for the whole model.
 */
#ifndef CURVE_LOOP_LOOP_H
#define CURVE_LOOP_LOOP_H

#include <pthread.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

typedef struct curve_loop curve_loop;
typedef void (*curve_loop_fn)(void *arg);

/* Upper bound on messages queued by curve_loop_post() (the allocating variant) on one loop
 * that have not run yet. Beyond it curve_loop_post() fails with -EAGAIN (backpressure). */
#define CURVE_LOOP_POST_MAX (1u << 20)
/* Upper bound on messages one loop iteration runs before it polls IO again (fairness). */
#define CURVE_LOOP_BATCH_MAX 1024u

/* A message embedded by the caller in its own struct (no allocation, never fails).
 * The caller owns its memory; it must stay valid until `fn` has run. */
typedef struct curve_loop_msg {
    struct curve_loop_msg *next; /* private */
    curve_loop_fn fn;
    void *arg;
} curve_loop_msg;

/* Creates a loop named `name` (copied; shown in logs and as the thread name, <= 15 chars used).
 * The loop does not run until curve_loop_start() or curve_loop_run().
 * Returns 0, -ENOMEM, or a negative errno from libuv. Any thread. */
int curve_loop_new(const char *name, curve_loop **out);

/* Starts a thread that runs the loop until curve_loop_stop(). Returns 0 or a negative errno.
 * Call once, from the creating thread. */
int curve_loop_start(curve_loop *loop);

/* Runs the loop on the calling thread until curve_loop_stop() (called from a callback or any
 * other thread). Returns 0. Do not combine with curve_loop_start(). */
int curve_loop_run(curve_loop *loop);

/* Asks the loop to stop. Messages already posted still run before it stops; messages posted
 * after this call may not run (curve_loop_post returns -ESHUTDOWN once the loop has stopped).
 * Thread-safe, idempotent. */
void curve_loop_stop(curve_loop *loop);

/* Waits for the thread started by curve_loop_start() to finish (after curve_loop_stop()).
 * Not from the loop's own thread. No-op for loops that were never started. */
void curve_loop_join(curve_loop *loop);

/* Stops and joins the loop if needed, runs any message still queued (on the calling thread,
 * with curve_loop_is_current(loop) true), and frees the loop. Owners must have closed their
 * handles before; any handle still open is closed here with a warning. NULL is ignored.
 * Not from the loop's own thread. */
void curve_loop_free(curve_loop *loop);

/* The libuv loop, for creating handles. Use those handles only on the loop's thread. */
uv_loop_t *curve_loop_uv(curve_loop *loop);
const char *curve_loop_name(const curve_loop *loop);

/* True when called on the thread currently running `loop`. Thread-safe. */
bool curve_loop_is_current(const curve_loop *loop);
/* The loop running on the calling thread, or NULL. */
curve_loop *curve_loop_current(void);

/* Runs fn(arg) on `loop`'s thread, later (never inline, even from the loop itself), in FIFO
 * order per posting thread. Allocates a message: returns 0, -ENOMEM, -EAGAIN when
 * CURVE_LOOP_POST_MAX messages are already queued, or -ESHUTDOWN when the loop has stopped.
 * If it returns 0, fn runs exactly once. Thread-safe. */
int curve_loop_post(curve_loop *loop, curve_loop_fn fn, void *arg);

/* Like curve_loop_post() with a caller-embedded message: no allocation, no bound (the caller's
 * own in-flight bound limits it). Returns 0 or -ESHUTDOWN. `m->fn` and `m->arg` must be set. */
int curve_loop_post_msg(curve_loop *loop, curve_loop_msg *m);

/* Runs fn(arg) on `loop` and waits until it returned; inline when called on the loop itself.
 * Returns 0 or -ESHUTDOWN (the loop has stopped; fn did not run). Any thread; never from
 * another loop that `fn` might wait on (deadlock). */
int curve_loop_call_sync(curve_loop *loop, curve_loop_fn fn, void *arg);

/* A one-shot completion that a thread can wait on (tests, blocking wrappers). */
typedef struct curve_completion {
    pthread_mutex_t lock; /* protects done/result */
    pthread_cond_t cond;
    bool done;
    int result;
} curve_completion;

void curve_completion_init(curve_completion *c);
void curve_completion_destroy(curve_completion *c);
/* Marks the completion done with `result` and wakes waiters. Any thread; once. */
void curve_completion_signal(curve_completion *c, int result);
/* Waits until signalled (timeout_ms 0 = forever); returns the result or -ETIMEDOUT. */
int curve_completion_wait(curve_completion *c, uint64_t timeout_ms);

/* ---- timers (thin wrapper over uv_timer_t; loop thread only) ---- */

typedef struct curve_timer curve_timer;
typedef void (*curve_timer_cb)(curve_timer *t, void *arg);

struct curve_timer {
    uv_timer_t uv; /* private */
    curve_timer_cb cb;
    void *arg;
    void (*close_cb)(curve_timer *t);
};

/* Initialises a timer embedded by the caller. The memory must stay valid until the close
 * callback of curve_timer_close() ran. Returns 0 or a negative errno. */
int curve_timer_init(curve_loop *loop, curve_timer *t, curve_timer_cb cb, void *arg);
/* (Re)arms the timer: first fire after `timeout_ms`, then every `repeat_ms` (0 = once). */
void curve_timer_start(curve_timer *t, uint64_t timeout_ms, uint64_t repeat_ms);
void curve_timer_stop(curve_timer *t);
/* Closes the timer; `close_cb` (may be NULL) runs later on the loop; then the memory is free. */
void curve_timer_close(curve_timer *t, void (*close_cb)(curve_timer *t));

/* Loop time in ms (cached by libuv at the start of each iteration). Loop thread only. */
uint64_t curve_loop_now_ms(curve_loop *loop);

/* ---- groups of loops ---- */

typedef struct curve_loop_group curve_loop_group;

/* Upper bound on loops in a group. */
#define CURVE_LOOP_GROUP_MAX 256u

/* Creates and starts `n` loops (1..CURVE_LOOP_GROUP_MAX) named "<prefix><i>", each on its own
 * thread. Returns 0, -EINVAL, -ENOMEM or a negative errno; nothing is left running on error. */
int curve_loop_group_new(const char *prefix, unsigned n, curve_loop_group **out);
unsigned curve_loop_group_size(const curve_loop_group *g);
curve_loop *curve_loop_group_get(curve_loop_group *g, unsigned i); /* i < size (asserted) */
/* Round-robin selection. Thread-safe. */
curve_loop *curve_loop_group_next(curve_loop_group *g);
/* Affinity selection: the same key always gives the same loop. Thread-safe. */
curve_loop *curve_loop_group_pick(curve_loop_group *g, uint64_t key);
/* Stops all loops, joins their threads and frees everything. Not from one of its loops. */
void curve_loop_group_free(curve_loop_group *g);

/* ---- bounded worker pool for blocking calls (fsync, large file IO) ---- */

typedef struct curve_workpool curve_workpool;
/* Runs on a worker thread; returns a result handed to the done callback. */
typedef int (*curve_work_fn)(void *arg);
/* Runs on the submitter's loop with the work function's result, or with -ECANCELED when the
 * pool was freed before the work ran. */
typedef void (*curve_work_done_cb)(void *arg, int result);

/* Upper bounds accepted by curve_workpool_new(). */
#define CURVE_WORKPOOL_THREADS_MAX 64u
#define CURVE_WORKPOOL_QUEUE_MAX   (1u << 20)

/* Creates `nthreads` workers (1..CURVE_WORKPOOL_THREADS_MAX) with a queue of at most
 * `queue_max` (1..CURVE_WORKPOOL_QUEUE_MAX) waiting items. Returns 0, -EINVAL, -ENOMEM or a
 * negative errno. */
int curve_workpool_new(const char *name, unsigned nthreads, unsigned queue_max,
                       curve_workpool **out);

/* Queues work_fn(arg) on a worker; then done_cb(arg, result) runs on `loop` (which must be
 * running until then). Returns 0 (done_cb runs exactly once), -EAGAIN when the queue is full,
 * -ESHUTDOWN when the pool is being freed, -ENOMEM. Thread-safe. */
int curve_workpool_submit(curve_workpool *wp, curve_loop *loop, curve_work_fn work_fn,
                          curve_work_done_cb done_cb, void *arg);

/* Number of queued (not yet started) items. Thread-safe. */
unsigned curve_workpool_queued(curve_workpool *wp);

/* Finishes the running items, completes queued ones with -ECANCELED (on their loops), joins the
 * workers and frees the pool. The submitters' loops must still be running to receive those
 * completions. Not from a worker thread. NULL is ignored. */
void curve_workpool_free(curve_workpool *wp);

#endif
