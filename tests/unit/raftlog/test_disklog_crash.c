/*
 * Process-crash test of the disk log: a child process appends as fast as it can (many requests
 * in flight, small segments so that it rolls often) and reports every acknowledged index
 * through a pipe; the parent SIGKILLs it at a random point, reopens the log and checks that
 * every acknowledged entry is there, intact, and that nothing after it is corrupt. Repeated for
 * several rounds on the same log (each round continues from the recovered end).
 *
 * Power loss (unsynced pages lost) is simulated byte by byte in test_disklog.c; this test covers
 * the kill -9 path, including kills during segment creation and truncation of the tail.
 * Seed: printed; RAFTLOG_SEED=<n> replays.
 */
#include <inttypes.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/wait.h>

#include <cmocka.h>

#include "curve/errors.h"
#include "raft/io/disklog.h"
#include "raftlog_test_util.h"

#define CRASH_ROUNDS 6
#define CRASH_MAX_LEN 3000u
#define CRASH_INFLIGHT 64 /* requests the child keeps in flight */

static void crash_opts(rlog_opts *o)
{
    rlog_opts_default(o);
    o->segment_bytes = 64u << 10;
    o->max_entry_bytes = 8u << 10;
    o->cache_bytes = 64u << 10;
}

static uint32_t crash_len(uint64_t index, uint64_t term)
{
    return rt_len(index * 7 + term, CRASH_MAX_LEN);
}

/* ---- child -------------------------------------------------------------------------------- */

typedef struct child_ctx {
    int fd; /* pipe to the parent */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    unsigned inflight;
} child_ctx;

typedef struct child_req {
    child_ctx *c;
    uint64_t last; /* acknowledged index, | NB_TAG for the neighbour log */
} child_req;

/* Shared-writer mode: the child also appends to a neighbour log "<dir>/nb" on the same writer;
 * its acknowledgements carry this bit. */
#define NB_TAG (1ull << 63)
static uint64_t g_nb_acked; /* parent: highest acknowledged index of the neighbour log */

static void child_cb(void *arg, int status)
{
    child_req *r = arg;
    child_ctx *c = r->c;
    if (status != 0)
        _exit(3);
    /* Callbacks run in order on the IO thread: the reported indexes only grow. */
    if (write(c->fd, &r->last, sizeof(r->last)) != (ssize_t)sizeof(r->last))
        _exit(4);
    free(r);
    pthread_mutex_lock(&c->mu);
    c->inflight--;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

static int append_req(rlog *log, child_ctx *c, uint64_t first, size_t n, uint64_t term,
                      uint64_t tag)
{
    static uint8_t bufs[8][CRASH_MAX_LEN];
    rlog_entry ents[8];
    for (size_t k = 0; k < n; k++) {
        uint64_t i = first + k;
        uint32_t len = crash_len(i, term);
        rt_fill(bufs[k], len, i, term);
        ents[k] = (rlog_entry){.index = i, .term = term, .type = 1, .data = bufs[k], .len = len};
    }
    child_req *r = malloc(sizeof(*r));
    if (!r)
        _exit(5);
    *r = (child_req){c, (first + n - 1) | tag};
    return rlog_append(log, ents, n, child_cb, r);
}

static void nb_path(const char *dir, char *buf, size_t len)
{
    snprintf(buf, len, "%s/nb", dir);
}

static _Noreturn void child_main(const char *dir, int fd, uint64_t term, uint64_t seed)
{
    rlog_opts o;
    crash_opts(&o);
    o.disk = rt_env_disk(); /* created in the child: threads do not survive fork() */
    rlog *log = NULL, *nb = NULL;
    rlog_info info, nb_info = {0};
    if (rlog_open(dir, &o, &log, &info) != 0)
        _exit(2);
    char nbdir[600];
    nb_path(dir, nbdir, sizeof(nbdir));
    if (o.disk && rlog_open(nbdir, &o, &nb, &nb_info) != 0)
        _exit(2);
    uint64_t nb_next = nb_info.last_index + 1;
    child_ctx c = {.fd = fd, .inflight = 0};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    uint64_t next = info.last_index + 1, x = seed | 1;
    for (;;) {
        pthread_mutex_lock(&c.mu);
        while (c.inflight >= CRASH_INFLIGHT)
            pthread_cond_wait(&c.cv, &c.mu);
        c.inflight++;
        pthread_mutex_unlock(&c.mu);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        size_t n = 1 + x % 8;
        /* Interleaved with the main log on the same writer: the neighbour log. */
        if (nb && (x >> 8) % 2 == 0) {
            if (append_req(nb, &c, nb_next, n, term, NB_TAG) != 0)
                _exit(6);
            nb_next += n;
            continue;
        }
        if (append_req(log, &c, next, n, term, 0) != 0)
            _exit(6);
        next += n;
    }
}

/* ---- parent ------------------------------------------------------------------------------- */

/* Reads acknowledged indexes until `target` is reached; returns the highest seen. */
static uint64_t read_acks(int fd, uint64_t target, int timeout_ms)
{
    uint64_t best = 0, v;
    for (;;) {
        if (best >= target)
            return best;
        struct pollfd p = {.fd = fd, .events = POLLIN};
        int rc = poll(&p, 1, timeout_ms);
        if (rc <= 0)
            return best; /* deadline or error: caller checks */
        ssize_t n = read(fd, &v, sizeof(v));
        if (n != (ssize_t)sizeof(v))
            return best;
        if (v & NB_TAG) {
            if ((v & ~NB_TAG) > g_nb_acked)
                g_nb_acked = v & ~NB_TAG;
            continue;
        }
        if (v > best)
            best = v;
    }
}

static void test_kill9_rounds(void **state)
{
    (void)state;
    uint64_t seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 20);
    const char *s = getenv("RAFTLOG_SEED");
    if (s && *s)
        seed = strtoull(s, NULL, 0);
    print_message("raftlog crash: RAFTLOG_SEED=%" PRIu64 "\n", seed);
    uint64_t x = seed | 1;
    char *dir = rt_mkdtemp();
    assert_non_null(dir);
    rlog_opts o;
    crash_opts(&o);
    const char *sh = getenv("RAFTLOG_SHARED_DISK");
    print_message("raftlog crash: %s\n",
                  sh && *sh && strcmp(sh, "0") != 0 ? "shared disk writer" : "IO thread per log");
    uint64_t acked_total = 0;
    for (uint64_t round = 1; round <= CRASH_ROUNDS; round++) {
        int pfd[2];
        assert_int_equal(pipe(pfd), 0);
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        uint64_t target = acked_total + 50 + x % 1500;
        pid_t pid = fork();
        assert_true(pid >= 0);
        if (pid == 0) {
            close(pfd[0]);
            child_main(dir, pfd[1], round, x);
        }
        close(pfd[1]);
        uint64_t acked = read_acks(pfd[0], target, RT_WAIT_DEADLINE_S * 1000);
        assert_int_equal(kill(pid, SIGKILL), 0);
        int status = 0;
        assert_int_equal(waitpid(pid, &status, 0), pid);
        if (!(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
            fail_msg("round %" PRIu64 ": child exited early (status 0x%x)", round, status);
        if (acked < target)
            fail_msg("round %" PRIu64 ": only %" PRIu64 " of %" PRIu64 " acknowledged in time",
                     round, acked, target);
        /* Drain what the child acknowledged before it died. */
        uint64_t more = read_acks(pfd[0], UINT64_MAX, 0);
        if (more > acked)
            acked = more;
        close(pfd[0]);

        /* The parent's writer lives only while the log is open: no thread may exist at fork()
         * (the child's allocator could inherit a lock held by one). */
        rlog_disk *disk = rt_env_disk();
        o.disk = disk;
        rlog *log = NULL;
        rlog_info info;
        assert_int_equal(rlog_open(dir, &o, &log, &info), 0);
        if (info.last_index < acked)
            fail_msg("round %" PRIu64 ": acknowledged %" PRIu64 " but recovered %" PRIu64, round,
                     acked, info.last_index);
        uint64_t prev_term = 0;
        for (uint64_t i = info.first_index; i <= info.last_index; i++) {
            rlog_entry e;
            assert_int_equal(rlog_read(log, i, &e), 0);
            uint8_t exp[CRASH_MAX_LEN];
            uint32_t len = crash_len(i, e.term);
            rt_fill(exp, len, i, e.term);
            assert_true(e.term >= prev_term && e.term <= round);
            assert_int_equal(e.len, len);
            if (len)
                assert_memory_equal(e.data, exp, len);
            prev_term = e.term;
            rlog_entry_release(&e);
        }
        print_message("round %" PRIu64 ": acknowledged %" PRIu64 ", recovered %" PRIu64
                      " (%u segments)\n",
                      round, acked, info.last_index, info.segments);
        if (disk) { /* the neighbour log written by the same writer */
            char nbdir[600];
            nb_path(dir, nbdir, sizeof(nbdir));
            rlog *nb = NULL;
            rlog_info ni;
            assert_int_equal(rlog_open(nbdir, &o, &nb, &ni), 0);
            if (ni.last_index < g_nb_acked)
                fail_msg("round %" PRIu64 ": neighbour acknowledged %" PRIu64
                         " but recovered %" PRIu64, round, g_nb_acked, ni.last_index);
            uint64_t pt = 0;
            for (uint64_t i = ni.first_index; i <= ni.last_index; i++) {
                rlog_entry e;
                assert_int_equal(rlog_read(nb, i, &e), 0);
                uint8_t exp[CRASH_MAX_LEN];
                uint32_t len = crash_len(i, e.term);
                rt_fill(exp, len, i, e.term);
                assert_true(e.term >= pt && e.term <= round);
                assert_int_equal(e.len, len);
                if (len)
                    assert_memory_equal(e.data, exp, len);
                pt = e.term;
                rlog_entry_release(&e);
            }
            print_message("round %" PRIu64 ": neighbour acknowledged %" PRIu64
                          ", recovered %" PRIu64 "\n", round, g_nb_acked, ni.last_index);
            g_nb_acked = ni.last_index;
            rlog_close(nb);
        }
        acked_total = info.last_index;
        rlog_close(log);
        rlog_disk_destroy(disk);
    }
    rt_rmtree(dir);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_kill9_rounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
