/*
 * libFuzzer target: arbitrary message sequences into a live Raft node (src/raft).
 *
 * The input is decoded into raft_msg structures (every field, entries, snapshot bytes and
 * manifests taken from the fuzz data) and fed to raft_recv, interleaved with ticks and I/O
 * completions. Whatever the peers claim, the node must neither crash nor trip an assertion:
 * malformed messages are rejected, well-formed but hostile ones handled.
 * Also fuzzes raft_config_decode on raw bytes.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "common/log.h"
#include "raft/raft.h"

struct cur {
    const uint8_t *p;
    size_t n;
};

static uint64_t take(struct cur *c, unsigned bytes)
{
    uint64_t v = 0;
    for (unsigned i = 0; i < bytes && c->n > 0; i++) {
        v |= (uint64_t)c->p[0] << (8 * i);
        c->p++;
        c->n--;
    }
    return v;
}

static const uint8_t *take_bytes(struct cur *c, size_t len)
{
    if (len > c->n)
        len = c->n;
    const uint8_t *p = c->p;
    c->p += len;
    c->n -= len;
    return p;
}

/* ---- stub io: completions queued and delivered after each message ---- */
static uint64_t g_now, g_rng = 1;
static uint64_t g_meta_t[64], g_meta_v[64], g_app[4096];
static unsigned g_nmeta, g_napp;
static bool g_saving;
static uint64_t g_save_index;

static uint64_t io_now(struct raft_io *io) { return g_now; }
static uint64_t io_random(struct raft_io *io)
{
    g_rng ^= g_rng << 13;
    g_rng ^= g_rng >> 7;
    g_rng ^= g_rng << 17;
    return g_rng;
}
static int io_meta(struct raft_io *io, uint64_t t, uint64_t v)
{
    if (g_nmeta == 64)
        return -1;
    g_meta_t[g_nmeta] = t;
    g_meta_v[g_nmeta++] = v;
    return 0;
}
static int io_append(struct raft_io *io, uint64_t seq, uint64_t first, const struct raft_entry *e,
                     uint32_t n)
{
    volatile uint8_t sink = 0;
    for (uint32_t i = 0; i < n; i++)
        if (e[i].len)
            sink ^= ((const uint8_t *)e[i].data)[e[i].len - 1]; /* touch the borrowed data */
    (void)sink;
    if (g_napp == 4096)
        return -1;
    g_app[g_napp++] = seq;
    return 0;
}
static int io_trunc(struct raft_io *io, uint64_t from) { return 0; }
static int io_compact(struct raft_io *io, uint64_t upto) { return 0; }
static int io_reset(struct raft_io *io, uint64_t index, uint64_t term) { return 0; }
static int io_send(struct raft_io *io, const struct raft_msg *m)
{
    volatile uint8_t sink = 0;
    if (m->type == RAFT_MSG_APPEND_ENTRIES)
        for (uint32_t i = 0; i < m->ae.n; i++)
            if (m->ae.entries[i].len)
                sink ^= ((const uint8_t *)m->ae.entries[i].data)[0];
    (void)sink;
    return 0;
}

static uint8_t g_file[4096];
static int fsm_apply(struct raft_fsm *f, uint64_t index, const struct raft_entry *e) { return 0; }
static int fsm_save(struct raft_fsm *f, const struct raft_snapshot_meta *meta)
{
    g_saving = true;
    g_save_index = meta->index;
    return 0;
}
static int fsm_read(struct raft_fsm *f, const char *name, uint64_t off, void *buf, uint32_t len)
{
    if (off >= sizeof(g_file))
        return 0;
    if (off + len > sizeof(g_file))
        len = (uint32_t)(sizeof(g_file) - off);
    memcpy(buf, g_file + off, len);
    return (int)len;
}
static int fsm_begin(struct raft_fsm *f, const struct raft_snapshot_meta *m,
                     const struct raft_manifest *mf)
{
    for (uint32_t i = 0; i < mf->nfiles; i++)
        if (strlen(mf->files[i].name) == 0)
            abort();
    return 0;
}
static int fsm_write(struct raft_fsm *f, const char *name, uint64_t off, const void *buf,
                     uint32_t len)
{
    return 0;
}
static int fsm_finish(struct raft_fsm *f, const struct raft_snapshot_meta *m,
                      const struct raft_manifest *mf)
{
    return 0;
}

static void flush(struct raft *r)
{
    unsigned nm = g_nmeta, na = g_napp;
    uint64_t mt[64], mv[64];
    memcpy(mt, g_meta_t, sizeof(mt));
    memcpy(mv, g_meta_v, sizeof(mv));
    uint64_t *ap = malloc(sizeof(uint64_t) * (na ? na : 1));
    memcpy(ap, g_app, sizeof(uint64_t) * na);
    g_nmeta = g_napp = 0;
    for (unsigned i = 0; i < nm; i++)
        raft_io_meta_done(r, mt[i], mv[i], 0);
    for (unsigned i = 0; i < na; i++)
        raft_io_append_done(r, ap[i], 0);
    free(ap);
    if (g_saving) {
        g_saving = false;
        struct raft_snapshot_file files[1] = {{"data/chunk_1", sizeof(g_file)}};
        struct raft_manifest m = {.meta = "x", .meta_len = 1, .nfiles = 1, .files = files};
        raft_snapshot_saved(r, g_save_index, 0, &m);
    }
}

#define FUZZ_MAX_ENTRIES 16

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static bool init;
    if (!init) {
        curve_log_set_level(CURVE_LOG_FATAL);
        init = true;
    }
    struct raft_config tmp;
    (void)raft_config_decode(data, size, &tmp);

    struct cur c = {data, size};
    g_now = 1000;
    g_rng = 1;
    g_nmeta = g_napp = 0;
    g_saving = false;
    struct raft_io io = {.version = RAFT_IO_VERSION, .now_ms = io_now, .random = io_random,
                         .persist_meta = io_meta, .append = io_append, .truncate = io_trunc,
                         .compact = io_compact, .reset_log = io_reset, .send = io_send};
    struct raft_fsm fsm = {.version = RAFT_FSM_VERSION, .apply = fsm_apply,
                           .snapshot_save = fsm_save, .snapshot_read = fsm_read,
                           .install_begin = fsm_begin, .install_write = fsm_write,
                           .install_finish = fsm_finish};
    struct raft_options o;
    raft_options_default(&o);
    o.group_id = 1;
    o.id = 1;
    o.election_timeout_ms = 100;
    o.heartbeat_ms = 10;
    o.snapshot_threshold = 4;
    o.snapshot_trailing = 1;
    o.snapshot_piece_bytes = 512;
    o.max_entry_bytes = 4096;
    struct raft *r;
    if (raft_new(&o, &io, &fsm, NULL, &r) != 0)
        return 0;
    struct raft_config boot = {.n = 3, .s = {{1, RAFT_VOTER}, {2, RAFT_VOTER}, {3, RAFT_VOTER}}};
    struct raft_boot b = {.bootstrap = &boot};
    if (raft_start(r, &b) != 0) {
        raft_free(r);
        return 0;
    }
    struct raft_entry ents[FUZZ_MAX_ENTRIES];
    while (c.n > 0) {
        uint8_t op = (uint8_t)take(&c, 1);
        if (op >= 0xF0) { /* local actions */
            g_now += take(&c, 1) * 4;
            switch (op & 7) {
            case 0: raft_tick(r); break;
            case 1: (void)raft_propose(r, "cmd", 3, NULL, NULL, NULL); break;
            case 2: (void)raft_read_index(r, NULL); break;
            case 3: (void)raft_add_learner(r, take(&c, 1)); break;
            case 4: (void)raft_promote(r, take(&c, 1)); break;
            case 5: (void)raft_remove(r, take(&c, 1)); break;
            case 6: (void)raft_transfer_leader(r, take(&c, 1)); break;
            default: (void)raft_lease_valid(r); break;
            }
            flush(r);
            continue;
        }
        struct raft_msg m;
        memset(&m, 0, sizeof(m));
        m.type = (uint8_t)(op % 8);
        m.group_id = (op & 0x80) ? take(&c, 1) : 1;
        m.from = take(&c, 1) % 5;
        m.to = (op & 0x40) ? take(&c, 1) : 1;
        m.term = take(&c, 1);
        switch (m.type) {
        case RAFT_MSG_REQUEST_VOTE:
            m.rv.last_index = take(&c, 1);
            m.rv.last_term = take(&c, 1);
            m.rv.pre_vote = (uint8_t)take(&c, 1) & 1;
            m.rv.transfer = (uint8_t)take(&c, 1) & 1;
            break;
        case RAFT_MSG_REQUEST_VOTE_RESULT:
            m.rvr.granted = (uint8_t)take(&c, 1) & 1;
            m.rvr.pre_vote = (uint8_t)take(&c, 1) & 1;
            break;
        case RAFT_MSG_APPEND_ENTRIES: {
            m.ae.prev_index = take(&c, 1);
            m.ae.prev_term = take(&c, 1);
            m.ae.commit = take(&c, 1);
            m.ae.seq = take(&c, 1);
            m.ae.ts = take(&c, 2);
            uint32_t n = (uint32_t)take(&c, 1) % (FUZZ_MAX_ENTRIES + 1);
            for (uint32_t i = 0; i < n; i++) {
                ents[i].term = take(&c, 1);
                ents[i].type = (uint8_t)take(&c, 1) % 5;
                ents[i].len = (uint32_t)take(&c, 1);
                ents[i].data = take_bytes(&c, ents[i].len);
                if (ents[i].len > (uint32_t)(c.p - (const uint8_t *)ents[i].data))
                    ents[i].len = (uint32_t)(c.p - (const uint8_t *)ents[i].data);
            }
            m.ae.n = n;
            m.ae.entries = n ? ents : NULL;
            break;
        }
        case RAFT_MSG_APPEND_ENTRIES_RESULT:
            m.aer.success = (uint8_t)take(&c, 1) & 1;
            m.aer.last_index = take(&c, 1);
            m.aer.hint = take(&c, 1);
            m.aer.seq = take(&c, 1);
            m.aer.ts = take(&c, 2);
            break;
        case RAFT_MSG_INSTALL_SNAPSHOT: {
            m.snap.kind = (uint8_t)take(&c, 1) % 5;
            m.snap.meta.index = take(&c, 1);
            m.snap.meta.term = take(&c, 1);
            m.snap.meta.conf_index = take(&c, 1);
            m.snap.meta.conf.n = (uint32_t)take(&c, 1) % (RAFT_MAX_SERVERS + 2);
            for (uint32_t i = 0; i < m.snap.meta.conf.n && i < RAFT_MAX_SERVERS; i++) {
                m.snap.meta.conf.s[i].id = take(&c, 1);
                m.snap.meta.conf.s[i].role = (uint8_t)take(&c, 1) % 4;
            }
            m.snap.file = (uint32_t)take(&c, 1);
            m.snap.offset = take(&c, 2);
            uint32_t len = (uint32_t)take(&c, 2);
            const uint8_t *p = take_bytes(&c, len);
            m.snap.len = (uint32_t)(c.p - p) < len ? (uint32_t)(c.p - p) : len;
            m.snap.data = m.snap.len ? p : NULL;
            break;
        }
        case RAFT_MSG_INSTALL_SNAPSHOT_RESULT:
            m.snapr.kind = (uint8_t)take(&c, 1) % 5;
            m.snapr.status = -(int32_t)take(&c, 1);
            m.snapr.index = take(&c, 1);
            m.snapr.file = (uint32_t)take(&c, 1);
            m.snapr.offset = take(&c, 2);
            m.snapr.len = (uint32_t)take(&c, 2);
            break;
        default:
            break;
        }
        (void)raft_recv(r, &m);
        flush(r);
    }
    struct raft_status st;
    raft_status(r, &st);
    raft_free(r);
    return 0;
}
