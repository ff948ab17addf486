/*
 * Randomized model test of the disk log: a seeded random sequence of appends, term changes,
 * suffix truncations, prefix compactions, resets, reads and restarts is applied both to the log
 * and to an in-memory model; every read and every reopen is checked against the model. A
 * concurrent reader thread checks that whatever it reads is self-consistent (payload derived
 * from index and term) and never corrupt.
 *
 * Seed: printed at start; set RAFTLOG_SEED=<n> to replay, RAFTLOG_OPS=<n> for a longer run.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "raft/io/disklog.h"
#include "raftlog_test_util.h"

#define MODEL_MAX_INDEX 200000u /* bound of the model's index space */
#define MODEL_MAX_LEN 2000u
#define MODEL_BATCH_MAX 20u

static uint64_t rng_state;
static uint64_t rnd(void)
{
    uint64_t x = rng_state;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    return rng_state = x;
}
static uint64_t rnd_in(uint64_t lo, uint64_t hi) /* inclusive */
{
    return lo + rnd() % (hi - lo + 1);
}

static uint32_t payload_len(uint64_t index, uint64_t term)
{
    return rt_len(index + term * 1000003u, MODEL_MAX_LEN);
}

static bool entry_consistent(const rlog_entry *e, uint64_t index)
{
    uint8_t exp[MODEL_MAX_LEN];
    uint32_t len = payload_len(index, e->term);
    if (e->index != index || e->len != len || e->type != (uint8_t)(index & 0xff))
        return false;
    rt_fill(exp, len, index, e->term);
    return len == 0 || memcmp(e->data, exp, len) == 0;
}

typedef struct model {
    uint64_t first, last, term;
    uint64_t *terms; /* by absolute index */
} model;

typedef struct reader_ctx {
    rlog *log;
    atomic_bool stop;
    atomic_uint bad;
    atomic_ulong reads;
    uint64_t seed;
} reader_ctx;

static void *reader_main(void *arg)
{
    reader_ctx *c = arg;
    uint64_t x = c->seed | 1;
    while (!atomic_load(&c->stop)) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t f = rlog_first_index(c->log), l = rlog_last_index(c->log);
        if (l < f)
            continue;
        uint64_t i = f + x % (l - f + 1);
        rlog_entry e;
        int rc = rlog_read(c->log, i, &e);
        if (rc == 0) {
            if (!entry_consistent(&e, i))
                atomic_fetch_add(&c->bad, 1);
            rlog_entry_release(&e);
            atomic_fetch_add(&c->reads, 1);
        } else if (rc != -ENOENT) {
            atomic_fetch_add(&c->bad, 1);
        }
    }
    return NULL;
}

static void check_read(rlog *log, const model *m, uint64_t i)
{
    rlog_entry e;
    int rc = rlog_read(log, i, &e);
    if (rc != 0)
        fail_msg("read %" PRIu64 " in [%" PRIu64 ", %" PRIu64 "]: %d", i, m->first, m->last, rc);
    if (e.term != m->terms[i] || !entry_consistent(&e, i))
        fail_msg("entry %" PRIu64 ": term %" PRIu64 " expected %" PRIu64, i, e.term, m->terms[i]);
    rlog_entry_release(&e);
}

static void check_all(rlog *log, const model *m)
{
    assert_int_equal(rlog_first_index(log), m->first);
    assert_int_equal(rlog_last_index(log), m->last);
    for (uint64_t i = m->first; i <= m->last; i++)
        check_read(log, m, i);
}

static void test_model(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 16);
    const char *s = getenv("RAFTLOG_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 0);
    unsigned nops = 3000;
    s = getenv("RAFTLOG_OPS");
    if (s && *s)
        nops = (unsigned)strtoul(s, NULL, 0);
    print_message("raftlog model: RAFTLOG_SEED=%" PRIu64 " RAFTLOG_OPS=%u\n", seed, nops);
    rng_state = seed ? seed : 1;

    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    rlog_opts o;
    rlog_opts_default(&o);
    o.segment_bytes = 64u << 10;
    o.max_entry_bytes = 8u << 10;
    o.cache_bytes = 8u << 10;
    o.max_batch_entries = 64;
    rlog_disk *disk = rt_env_disk();
    o.disk = disk;
    print_message("raftlog model: %s\n", disk ? "shared disk writer" : "IO thread per log");
    model m = {.first = 1, .last = 0, .term = 1};
    m.terms = calloc(MODEL_MAX_INDEX + MODEL_BATCH_MAX + 64, sizeof(uint64_t));
    assert_non_null(m.terms);
    rlog *log = NULL;
    assert_int_equal(rlog_open(dir, &o, &log, NULL), 0);
    rt_waiter w;
    rt_waiter_init(&w);
    unsigned issued = 0;
    reader_ctx rc_ = {.log = log, .seed = seed * 31 + 7};
    pthread_t rd;
    assert_int_equal(pthread_create(&rd, NULL, reader_main, &rc_), 0);

    for (unsigned op = 0; op < nops && m.last < MODEL_MAX_INDEX; op++) {
        unsigned r = (unsigned)rnd_in(0, 99);
        if (r < 40) { /* append a batch */
            rlog_entry ents[MODEL_BATCH_MAX];
            static uint8_t bufs[MODEL_BATCH_MAX][MODEL_MAX_LEN];
            size_t n = rnd_in(1, MODEL_BATCH_MAX);
            for (size_t k = 0; k < n; k++) {
                uint64_t i = m.last + 1 + k;
                uint32_t len = payload_len(i, m.term);
                rt_fill(bufs[k], len, i, m.term);
                ents[k] = (rlog_entry){.index = i, .term = m.term, .type = (uint8_t)(i & 0xff),
                                       .data = bufs[k], .len = len};
            }
            int rc = rlog_append(log, ents, n, rt_cb, &w);
            if (rc == CURVE_ERR_BUSY)
                continue;
            assert_int_equal(rc, 0);
            issued++;
            for (size_t k = 0; k < n; k++)
                m.terms[m.last + 1 + k] = m.term;
            m.last += n;
        } else if (r < 48) {
            m.term++;
        } else if (r < 56) { /* truncate a suffix (a new leader's conflicting entries) */
            if (m.last < m.first)
                continue;
            uint64_t from = rnd_in(m.last > 30 && m.last - 30 > m.first ? m.last - 30 : m.first,
                                   m.last + 1);
            assert_int_equal(rlog_truncate_suffix(log, from, rt_cb, &w), 0);
            issued++;
            m.last = from - 1;
            m.term++;
        } else if (r < 60) { /* compact behind a snapshot */
            if (m.last < m.first)
                continue;
            uint64_t upto = rnd_in(m.first, m.last);
            assert_int_equal(rlog_compact_prefix(log, upto, rt_cb, &w), 0);
            issued++;
            assert_int_equal(rt_wait(&w, issued), 0);
            uint64_t f = rlog_first_index(log);
            assert_true(f >= m.first && f <= upto + 1);
            m.first = f;
        } else if (r < 61) { /* reset after a snapshot install */
            uint64_t next = m.last + 1 + rnd_in(0, 50);
            assert_int_equal(rlog_reset(log, next, rt_cb, &w), 0);
            issued++;
            m.first = next;
            m.last = next - 1;
            m.term++;
        } else if (r < 90) {
            if (m.last >= m.first)
                check_read(log, &m, rnd_in(m.first, m.last));
            uint64_t t;
            assert_int_equal(rlog_term_at(log, m.last + 1, &t), -ENOENT);
        } else if (r < 96) {
            assert_int_equal(rt_wait(&w, issued), 0);
            assert_int_equal(rlog_durable_index(log), m.last);
        } else { /* restart */
            atomic_store(&rc_.stop, true);
            pthread_join(rd, NULL);
            rlog_close(log); /* completes everything queued */
            assert_int_equal(w.done, issued);
            rlog_info info;
            assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
            assert_false(info.tail_truncated);
            assert_int_equal(info.first_index, m.first);
            assert_int_equal(info.last_index, m.last);
            if (m.last >= m.first)
                assert_int_equal(info.last_term, m.terms[m.last]);
            check_all(log, &m);
            rc_.log = log;
            atomic_store(&rc_.stop, false);
            assert_int_equal(pthread_create(&rd, NULL, reader_main, &rc_), 0);
        }
    }
    atomic_store(&rc_.stop, true);
    pthread_join(rd, NULL);
    assert_int_equal(rt_wait(&w, issued), 0);
    assert_int_equal(w.errors, 0);
    check_all(log, &m);
    rlog_stats st;
    rlog_get_stats(log, &st);
    print_message("raftlog model: last %" PRIu64 ", %lu concurrent reads, %" PRIu64
                  " syncs, %" PRIu64 " segments created\n",
                  m.last, (unsigned long)atomic_load(&rc_.reads), st.syncs,
                  st.segments_created);
    assert_int_equal(atomic_load(&rc_.bad), 0);
    rlog_close(log);
    rlog_disk_destroy(disk);
    rt_waiter_destroy(&w);
    free(m.terms);
    rt_rmtree(dir);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
