/* Unit tests of src/loop: message passing, timers, groups, worker pool. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>

#include "common/clock.h"
#include "loop/loop.h"
#include <sched.h>

#define WAIT_MS 10000 /* bound for every wait in these tests */

/* ---- post from many threads: everything runs once, on the loop, FIFO per thread ---- */

#define POSTERS          4
#define POSTS_PER_THREAD 20000

typedef struct post_state {
    curve_loop *loop;
    unsigned last[POSTERS]; /* last sequence seen per thread (+1) */
    unsigned ran;
    bool order_ok, thread_ok;
    curve_completion all_done;
} post_state;

typedef struct post_item {
    post_state *st;
    unsigned thread, seq;
} post_item;

static void post_item_run(void *arg)
{
    post_item *it = arg;
    post_state *st = it->st;
    if (!curve_loop_is_current(st->loop))
        st->thread_ok = false;
    if (st->last[it->thread] != it->seq)
        st->order_ok = false;
    st->last[it->thread] = it->seq + 1;
    free(it);
    if (++st->ran == POSTERS * POSTS_PER_THREAD)
        curve_completion_signal(&st->all_done, 0);
}

typedef struct poster_arg {
    post_state *st;
    unsigned idx;
    int failures;
} poster_arg;

static void *poster_main(void *arg)
{
    poster_arg *pa = arg;
    for (unsigned i = 0; i < POSTS_PER_THREAD; i++) {
        post_item *it = malloc(sizeof(*it));
        it->st = pa->st;
        it->thread = pa->idx;
        it->seq = i;
        if (curve_loop_post(pa->st->loop, post_item_run, it) != 0) {
            pa->failures++;
            free(it);
        }
    }
    return NULL;
}

static void test_post_many_threads(void **state)
{
    post_state st = {.order_ok = true, .thread_ok = true};
    curve_completion_init(&st.all_done);
    assert_int_equal(curve_loop_new("t-post", &st.loop), 0);
    assert_int_equal(curve_loop_start(st.loop), 0);
    pthread_t th[POSTERS];
    poster_arg pa[POSTERS];
    for (unsigned i = 0; i < POSTERS; i++) {
        pa[i] = (poster_arg){.st = &st, .idx = i};
        assert_int_equal(pthread_create(&th[i], NULL, poster_main, &pa[i]), 0);
    }
    for (unsigned i = 0; i < POSTERS; i++) {
        pthread_join(th[i], NULL);
        assert_int_equal(pa[i].failures, 0);
    }
    assert_int_equal(curve_completion_wait(&st.all_done, WAIT_MS), 0);
    assert_true(st.order_ok);
    assert_true(st.thread_ok);
    for (unsigned i = 0; i < POSTERS; i++)
        assert_int_equal(st.last[i], POSTS_PER_THREAD);
    curve_loop_stop(st.loop);
    curve_loop_join(st.loop);
    curve_loop_free(st.loop);
    curve_completion_destroy(&st.all_done);
}

/* ---- a post from the loop itself never runs inline ---- */

typedef struct inline_state {
    curve_loop *loop;
    int flag;
    int flag_after_post;
} inline_state;

static void set_flag(void *arg)
{
    inline_state *s = arg;
    s->flag = 1;
    curve_loop_stop(s->loop);
}

static void post_from_loop(void *arg)
{
    inline_state *s = arg;
    assert_int_equal(curve_loop_post(s->loop, set_flag, s), 0);
    s->flag_after_post = s->flag;
}

static void test_post_not_inline_and_run_on_caller(void **state)
{
    inline_state s = {0};
    assert_int_equal(curve_loop_new("t-inline", &s.loop), 0);
    assert_int_equal(curve_loop_post(s.loop, post_from_loop, &s), 0);
    assert_null(curve_loop_current());
    assert_int_equal(curve_loop_run(s.loop), 0); /* returns once set_flag stopped it */
    assert_int_equal(s.flag_after_post, 0);
    assert_int_equal(s.flag, 1);
    assert_false(curve_loop_is_current(s.loop));
    /* After the loop stopped, posts are refused. */
    assert_int_equal(curve_loop_post(s.loop, set_flag, &s), -ESHUTDOWN);
    curve_loop_free(s.loop);
}

/* ---- timers ---- */

typedef struct timer_state {
    curve_loop *loop;
    curve_timer once, rep;
    uint64_t start_ms, once_at_ms;
    int once_fired, rep_fired, closed;
    curve_completion done;
} timer_state;

static void timer_closed(curve_timer *t)
{
    timer_state *s = t->arg;
    if (++s->closed == 2)
        curve_completion_signal(&s->done, 0);
}

static void once_cb(curve_timer *t, void *arg)
{
    timer_state *s = arg;
    s->once_fired++;
    s->once_at_ms = curve_loop_now_ms(s->loop);
}

static void rep_cb(curve_timer *t, void *arg)
{
    timer_state *s = arg;
    if (++s->rep_fired == 3) {
        curve_timer_stop(&s->rep);
        curve_timer_close(&s->rep, timer_closed);
        curve_timer_close(&s->once, timer_closed);
    }
}

static void timers_setup(void *arg)
{
    timer_state *s = arg;
    assert_int_equal(curve_timer_init(s->loop, &s->once, once_cb, s), 0);
    assert_int_equal(curve_timer_init(s->loop, &s->rep, rep_cb, s), 0);
    s->start_ms = curve_loop_now_ms(s->loop);
    curve_timer_start(&s->once, 20, 0);
    curve_timer_start(&s->rep, 30, 10);
}

static void test_timers(void **state)
{
    timer_state s = {0};
    curve_completion_init(&s.done);
    assert_int_equal(curve_loop_new("t-timer", &s.loop), 0);
    assert_int_equal(curve_loop_start(s.loop), 0);
    assert_int_equal(curve_loop_call_sync(s.loop, timers_setup, &s), 0);
    assert_int_equal(curve_completion_wait(&s.done, WAIT_MS), 0);
    assert_int_equal(s.once_fired, 1);
    assert_int_equal(s.rep_fired, 3);
    assert_true(s.once_at_ms >= s.start_ms + 20);
    curve_loop_free(s.loop); /* stops and joins */
    curve_completion_destroy(&s.done);
}

/* ---- groups ---- */

static void test_group(void **state)
{
    curve_loop_group *g;
    assert_int_equal(curve_loop_group_new("g", 0, &g), -EINVAL);
    assert_int_equal(curve_loop_group_new("g", 3, &g), 0);
    assert_int_equal(curve_loop_group_size(g), 3);
    int seen[3] = {0};
    for (int i = 0; i < 6; i++) {
        curve_loop *l = curve_loop_group_next(g);
        for (unsigned k = 0; k < 3; k++)
            if (l == curve_loop_group_get(g, k))
                seen[k]++;
    }
    for (int k = 0; k < 3; k++)
        assert_int_equal(seen[k], 2);
    for (uint64_t key = 0; key < 100; key++)
        assert_ptr_equal(curve_loop_group_pick(g, key), curve_loop_group_pick(g, key));
    curve_loop_group_free(g);
}

/* ---- worker pool ---- */

typedef struct wp_state {
    curve_loop *loop;
    pthread_mutex_t gate_lock;
    pthread_cond_t gate_cond;
    bool gate_open;
    atomic_int started;
    int done, canceled, wrong_loop, sum;
    int expect_done;
    curve_completion all_done;
} wp_state;

typedef struct wp_item {
    wp_state *s;
    int value;
} wp_item;

static int wp_work(void *arg)
{
    wp_item *it = arg;
    wp_state *s = it->s;
    atomic_fetch_add(&s->started, 1);
    pthread_mutex_lock(&s->gate_lock);
    while (!s->gate_open)
        pthread_cond_wait(&s->gate_cond, &s->gate_lock);
    pthread_mutex_unlock(&s->gate_lock);
    return it->value * 2;
}

static void wp_done(void *arg, int result)
{
    wp_item *it = arg;
    wp_state *s = it->s;
    if (!curve_loop_is_current(s->loop))
        s->wrong_loop++;
    if (result == -ECANCELED)
        s->canceled++;
    else
        s->sum += result;
    free(it);
    if (++s->done == s->expect_done)
        curve_completion_signal(&s->all_done, 0);
}

static int wp_submit(curve_workpool *wp, wp_state *s, int value)
{
    wp_item *it = malloc(sizeof(*it));
    it->s = s;
    it->value = value;
    int rc = curve_workpool_submit(wp, s->loop, wp_work, wp_done, it);
    if (rc < 0)
        free(it);
    return rc;
}

static void open_gate(wp_state *s)
{
    pthread_mutex_lock(&s->gate_lock);
    s->gate_open = true;
    pthread_cond_broadcast(&s->gate_cond);
    pthread_mutex_unlock(&s->gate_lock);
}

static void wait_started(wp_state *s, int n)
{
    /* Bounded wait on a condition (the workers pick up their items). */
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (atomic_load(&s->started) < n && curve_now_mono_ms() < deadline)
        sched_yield();
    assert_int_equal(atomic_load(&s->started), n);
}

static void test_workpool_bounded_and_completes_on_loop(void **state)
{
    wp_state s = {0};
    pthread_mutex_init(&s.gate_lock, NULL);
    pthread_cond_init(&s.gate_cond, NULL);
    curve_completion_init(&s.all_done);
    assert_int_equal(curve_loop_new("t-wp", &s.loop), 0);
    assert_int_equal(curve_loop_start(s.loop), 0);
    curve_workpool *wp;
    assert_int_equal(curve_workpool_new("wp", 0, 4, &wp), -EINVAL);
    assert_int_equal(curve_workpool_new("wp", 2, 4, &wp), 0);
    /* 2 running (blocked on the gate) + 4 queued; the 7th is refused. */
    assert_int_equal(wp_submit(wp, &s, 1), 0);
    assert_int_equal(wp_submit(wp, &s, 2), 0);
    wait_started(&s, 2);
    for (int v = 3; v <= 6; v++)
        assert_int_equal(wp_submit(wp, &s, v), 0);
    assert_int_equal(curve_workpool_queued(wp), 4);
    assert_int_equal(wp_submit(wp, &s, 7), -EAGAIN);
    s.expect_done = 6;
    open_gate(&s);
    assert_int_equal(curve_completion_wait(&s.all_done, WAIT_MS), 0);
    assert_int_equal(s.sum, 2 * (1 + 2 + 3 + 4 + 5 + 6));
    assert_int_equal(s.wrong_loop, 0);
    assert_int_equal(s.canceled, 0);
    curve_workpool_free(wp);
    curve_loop_free(s.loop);
    curve_completion_destroy(&s.all_done);
}

static void *free_pool_main(void *arg)
{
    curve_workpool_free(arg);
    return NULL;
}

static void test_workpool_free_cancels_queued(void **state)
{
    wp_state s = {0};
    pthread_mutex_init(&s.gate_lock, NULL);
    pthread_cond_init(&s.gate_cond, NULL);
    curve_completion_init(&s.all_done);
    assert_int_equal(curve_loop_new("t-wp2", &s.loop), 0);
    assert_int_equal(curve_loop_start(s.loop), 0);
    curve_workpool *wp;
    assert_int_equal(curve_workpool_new("wp", 1, 8, &wp), 0);
    assert_int_equal(wp_submit(wp, &s, 10), 0);
    wait_started(&s, 1);
    assert_int_equal(wp_submit(wp, &s, 20), 0);
    assert_int_equal(wp_submit(wp, &s, 30), 0);
    s.expect_done = 3;
    /* Free from a helper thread while the worker is blocked: free takes the queue (queued
     * drops to 0) and then waits for the worker; only then open the gate. */
    pthread_t th;
    assert_int_equal(pthread_create(&th, NULL, free_pool_main, wp), 0);
    uint64_t deadline = curve_now_mono_ms() + WAIT_MS;
    while (curve_workpool_queued(wp) != 0 && curve_now_mono_ms() < deadline)
        sched_yield();
    assert_int_equal(curve_workpool_queued(wp), 0);
    open_gate(&s);
    pthread_join(th, NULL);
    assert_int_equal(curve_completion_wait(&s.all_done, WAIT_MS), 0);
    assert_int_equal(s.done, 3);
    assert_int_equal(s.canceled, 2);
    assert_int_equal(s.sum, 20);
    assert_int_equal(s.wrong_loop, 0);
    curve_loop_free(s.loop);
    curve_completion_destroy(&s.all_done);
}

/* ---- the allocating post is bounded; free runs what was accepted ---- */

static void count_run(void *arg)
{
    (*(unsigned *)arg)++;
}

static void test_post_bound_and_free_runs_queued(void **state)
{
    curve_loop *loop;
    assert_int_equal(curve_loop_new("t-bound", &loop), 0);
    unsigned ran = 0, accepted = 0;
    int rc;
    while ((rc = curve_loop_post(loop, count_run, &ran)) == 0)
        accepted++;
    assert_int_equal(rc, -EAGAIN);
    assert_int_equal(accepted, CURVE_LOOP_POST_MAX);
    /* Embedded messages are not counted against the bound. */
    curve_loop_msg m = {.fn = count_run, .arg = &ran};
    assert_int_equal(curve_loop_post_msg(loop, &m), 0);
    assert_int_equal(ran, 0);
    curve_loop_free(loop); /* never ran: free runs every accepted message */
    assert_int_equal(ran, CURVE_LOOP_POST_MAX + 1);
}

static void test_completion_timeout(void **state)
{
    curve_completion c;
    curve_completion_init(&c);
    assert_int_equal(curve_completion_wait(&c, 30), -ETIMEDOUT);
    curve_completion_signal(&c, 7);
    assert_int_equal(curve_completion_wait(&c, 30), 7);
    curve_completion_destroy(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_post_many_threads),
        cmocka_unit_test(test_post_not_inline_and_run_on_caller),
        cmocka_unit_test(test_timers),
        cmocka_unit_test(test_group),
        cmocka_unit_test(test_workpool_bounded_and_completes_on_loop),
        cmocka_unit_test(test_workpool_free_cancels_queued),
        cmocka_unit_test(test_post_bound_and_free_runs_queued),
        cmocka_unit_test(test_completion_timeout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
