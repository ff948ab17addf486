/*
 * Raft core. No I/O: everything goes through struct raft_io / struct raft_fsm (raft.h).
 * Section references: "§" = Raft paper (Ongaro & Ousterhout 2014), "thesis §" = Ongaro's thesis.
 */
#include "raft/raft_internal.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "common/assert.h"
#include "common/buf.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"

#define RAFT_MANIFEST_MAGIC 0x31464d52u /* "RMF1" */

/* ============================================================================================
 * Small helpers
 * ========================================================================================== */

static uint64_t now_ms(struct raft *r)
{
    return r->io->now_ms(r->io);
}

static uint64_t min_u64(uint64_t a, uint64_t b)
{
    return a < b ? a : b;
}

static uint64_t max_u64(uint64_t a, uint64_t b)
{
    return a > b ? a : b;
}

static void put_u64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get_u64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void put_u32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint32_t get_u32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

const char *raft_role_name(int role)
{
    switch (role) {
    case RAFT_FOLLOWER:
        return "follower";
    case RAFT_PRE_CANDIDATE:
        return "pre-candidate";
    case RAFT_CANDIDATE:
        return "candidate";
    case RAFT_LEADER:
        return "leader";
    default:
        return "?";
    }
}

/* ============================================================================================
 * Configurations
 * ========================================================================================== */

size_t raft_config_encode(const struct raft_config *c, uint8_t buf[RAFT_CONFIG_ENCODED_MAX])
{
    CURVE_ASSERT(c->n <= RAFT_MAX_SERVERS);
    buf[0] = 1; /* version */
    buf[1] = (uint8_t)c->n;
    size_t p = 2;
    for (uint32_t i = 0; i < c->n; i++) {
        put_u64(buf + p, c->s[i].id);
        buf[p + 8] = c->s[i].role;
        p += 9;
    }
    return p;
}

static int config_validate(const struct raft_config *c)
{
    if (c->n > RAFT_MAX_SERVERS)
        return CURVE_ERR_CORRUPT;
    for (uint32_t i = 0; i < c->n; i++) {
        if (c->s[i].id == 0 || (c->s[i].role != RAFT_VOTER && c->s[i].role != RAFT_LEARNER))
            return CURVE_ERR_CORRUPT;
        for (uint32_t j = 0; j < i; j++)
            if (c->s[j].id == c->s[i].id)
                return CURVE_ERR_CORRUPT;
    }
    return 0;
}

int raft_config_decode(const void *buf, size_t len, struct raft_config *out)
{
    const uint8_t *p = buf;
    if (buf == NULL || len < 2 || p[0] != 1 || p[1] > RAFT_MAX_SERVERS ||
        len != 2 + (size_t)p[1] * 9)
        return CURVE_ERR_CORRUPT;
    memset(out, 0, sizeof(*out));
    out->n = p[1];
    for (uint32_t i = 0; i < out->n; i++) {
        out->s[i].id = get_u64(p + 2 + i * 9);
        out->s[i].role = p[2 + i * 9 + 8];
    }
    return config_validate(out);
}

const struct raft_server *raft_config_get(const struct raft_config *c, uint64_t id)
{
    for (uint32_t i = 0; i < c->n; i++)
        if (c->s[i].id == id)
            return &c->s[i];
    return NULL;
}

static bool conf_is_voter(const struct raft_config *c, uint64_t id)
{
    const struct raft_server *s = raft_config_get(c, id);
    return s != NULL && s->role == RAFT_VOTER;
}

static uint32_t conf_nvoters(const struct raft_config *c)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < c->n; i++)
        n += c->s[i].role == RAFT_VOTER;
    return n;
}

static uint32_t quorum(struct raft *r)
{
    return conf_nvoters(&r->conf) / 2 + 1;
}

/* ============================================================================================
 * Manifest encoding: magic u32, meta_len u32, meta, nfiles u32, per file (name_len u16, name,
 * size u64), crc32c u32 of everything before. Little-endian.
 * ========================================================================================== */

static int manifest_encode(const struct raft_manifest *m, uint8_t **out, uint32_t *out_len)
{
    if (m == NULL || m->nfiles > RAFT_MAX_SNAPSHOT_FILES || (m->meta_len && m->meta == NULL) ||
        (m->nfiles && m->files == NULL))
        return -EINVAL;
    uint64_t len = 12 + (uint64_t)m->meta_len + 4;
    for (uint32_t i = 0; i < m->nfiles; i++) {
        size_t nl = m->files[i].name ? strlen(m->files[i].name) : 0;
        if (nl == 0 || nl > RAFT_MAX_FILE_NAME)
            return -EINVAL;
        len += 2 + nl + 8;
    }
    if (len > RAFT_MAX_MANIFEST_BYTES)
        return -E2BIG;
    uint8_t *b = malloc(len);
    if (b == NULL)
        return -ENOMEM;
    size_t p = 0;
    put_u32(b, RAFT_MANIFEST_MAGIC);
    put_u32(b + 4, m->meta_len);
    p = 8;
    if (m->meta_len)
        memcpy(b + p, m->meta, m->meta_len);
    p += m->meta_len;
    put_u32(b + p, m->nfiles);
    p += 4;
    for (uint32_t i = 0; i < m->nfiles; i++) {
        size_t nl = strlen(m->files[i].name);
        b[p] = (uint8_t)nl;
        b[p + 1] = (uint8_t)(nl >> 8);
        memcpy(b + p + 2, m->files[i].name, nl);
        p += 2 + nl;
        put_u64(b + p, m->files[i].size);
        p += 8;
    }
    put_u32(b + p, curve_crc32c(0, b, p));
    p += 4;
    CURVE_ASSERT(p == len);
    *out = b;
    *out_len = (uint32_t)len;
    return 0;
}

static void mdec_free(struct raft_mdec *d)
{
    free(d->mem);
    memset(d, 0, sizeof(*d));
}

/* Decodes `buf` (which must stay alive as long as d->m.meta is used). */
static int manifest_decode(const uint8_t *b, uint32_t len, struct raft_mdec *d)
{
    memset(d, 0, sizeof(*d));
    if (b == NULL || len < 16 || get_u32(b) != RAFT_MANIFEST_MAGIC)
        return CURVE_ERR_CORRUPT;
    if (get_u32(b + len - 4) != curve_crc32c(0, b, len - 4))
        return CURVE_ERR_CORRUPT;
    uint64_t meta_len = get_u32(b + 4);
    uint64_t p = 8 + meta_len;
    if (p + 4 > (uint64_t)len - 4)
        return CURVE_ERR_CORRUPT;
    uint32_t nfiles = get_u32(b + p);
    p += 4;
    if (nfiles > RAFT_MAX_SNAPSHOT_FILES)
        return CURVE_ERR_CORRUPT;
    /* first pass: validate and size the names */
    uint64_t names = 0, q = p;
    for (uint32_t i = 0; i < nfiles; i++) {
        if (q + 2 > (uint64_t)len - 4)
            return CURVE_ERR_CORRUPT;
        uint32_t nl = (uint32_t)b[q] | (uint32_t)b[q + 1] << 8;
        if (nl == 0 || nl > RAFT_MAX_FILE_NAME || q + 2 + nl + 8 > (uint64_t)len - 4 ||
            memchr(b + q + 2, 0, nl) != NULL)
            return CURVE_ERR_CORRUPT;
        names += nl + 1;
        q += 2 + nl + 8;
    }
    if (q != (uint64_t)len - 4)
        return CURVE_ERR_CORRUPT;
    size_t fsz = (size_t)nfiles * sizeof(struct raft_snapshot_file);
    d->mem = malloc(fsz + names + 1);
    if (d->mem == NULL)
        return -ENOMEM;
    struct raft_snapshot_file *files = d->mem;
    char *nm = (char *)d->mem + fsz;
    for (uint32_t i = 0; i < nfiles; i++) {
        uint32_t nl = (uint32_t)b[p] | (uint32_t)b[p + 1] << 8;
        memcpy(nm, b + p + 2, nl);
        nm[nl] = 0;
        files[i].name = nm;
        files[i].size = get_u64(b + p + 2 + nl);
        nm += nl + 1;
        p += 2 + nl + 8;
    }
    d->m.meta = meta_len ? b + 8 : NULL;
    d->m.meta_len = (uint32_t)meta_len;
    d->m.nfiles = nfiles;
    d->m.files = nfiles ? files : NULL;
    return 0;
}

static void snap_unref(struct raft_snap *s)
{
    if (s == NULL)
        return;
    CURVE_ASSERT(s->refs > 0);
    if (--s->refs == 0) {
        mdec_free(&s->dec);
        free(s->enc);
        free(s);
    }
}

/* ============================================================================================
 * In-memory log
 * ========================================================================================== */

static uint64_t log_last(const struct raft_log *l)
{
    return l->offset + l->n;
}

static struct raft_entry *log_get(const struct raft_log *l, uint64_t index)
{
    if (index <= l->offset || index > log_last(l))
        return NULL;
    return &l->e[l->start + (index - l->offset - 1)];
}

static uint64_t log_term_at(const struct raft_log *l, uint64_t index)
{
    if (index == l->offset)
        return l->offset_term;
    const struct raft_entry *e = log_get(l, index);
    return e ? e->term : 0;
}

static uint64_t log_last_term(const struct raft_log *l)
{
    return log_term_at(l, log_last(l));
}

/* Appends e: a reference to `buf` (which holds e->data) when given, else a copy.
 * Returns 0 or -ENOMEM. */
static int log_append(struct raft_log *l, const struct raft_entry *e, curve_buf *buf)
{
    if (l->start + l->n == l->cap) {
        if (l->start > 0 && l->start >= l->cap / 2) {
            memmove(l->e, l->e + l->start, l->n * sizeof(*l->e));
            l->start = 0;
        } else {
            uint64_t cap = l->cap ? l->cap * 2 : 64;
            struct raft_entry *ne = realloc(l->e, cap * sizeof(*ne));
            if (ne == NULL)
                return -ENOMEM;
            l->e = ne;
            l->cap = cap;
        }
    }
    /* One refcounted buffer per entry (a reference when the caller has one), so the io can
     * hand the bytes to the disk log and to every follower's AppendEntries without copies. */
    curve_buf *b = NULL;
    const void *data = NULL;
    if (e->len && buf != NULL) {
        CURVE_ASSERT((const uint8_t *)e->data >= curve_buf_data(buf) &&
                     (const uint8_t *)e->data + e->len <= curve_buf_data(buf) + curve_buf_cap(buf));
        b = curve_buf_ref(buf);
        data = e->data;
    } else if (e->len) {
        b = curve_buf_new(e->len);
        if (b == NULL)
            return -ENOMEM;
        memcpy(curve_buf_data(b), e->data, e->len);
        curve_buf_set_len(b, e->len);
        data = curve_buf_data(b);
    }
    struct raft_entry *d = &l->e[l->start + l->n];
    *d = *e;
    d->data = data;
    d->buf = b;
    l->n++;
    l->bytes += e->len;
    return 0;
}

/* Drops entries >= index. */
static void log_truncate(struct raft_log *l, uint64_t index)
{
    CURVE_ASSERT(index > l->offset);
    while (log_last(l) >= index) {
        struct raft_entry *e = &l->e[l->start + l->n - 1];
        l->bytes -= e->len;
        curve_buf_unref(e->buf);
        l->n--;
    }
}

/* Drops entries <= index (index <= last). */
static void log_compact(struct raft_log *l, uint64_t index)
{
    CURVE_ASSERT(index <= log_last(l));
    if (index <= l->offset)
        return;
    uint64_t term = log_term_at(l, index);
    while (l->offset < index) {
        l->bytes -= l->e[l->start].len;
        curve_buf_unref(l->e[l->start].buf);
        l->start++;
        l->n--;
        l->offset++;
    }
    l->offset_term = term;
    if (l->n == 0)
        l->start = 0;
}

static void log_reset(struct raft_log *l, uint64_t index, uint64_t term)
{
    for (uint64_t i = 0; i < l->n; i++)
        curve_buf_unref(l->e[l->start + i].buf);
    l->start = l->n = 0;
    l->bytes = 0;
    l->offset = index;
    l->offset_term = term;
}

static void log_free(struct raft_log *l)
{
    log_reset(l, 0, 0);
    free(l->e);
    l->e = NULL;
    l->cap = 0;
}

/* ============================================================================================
 * Failure, persistence, sending
 * ========================================================================================== */

static void set_failed(struct raft *r, int err, const char *what)
{
    if (r->failed)
        return;
    r->failed = err ? err : -EIO;
    CLOG_ERROR("raft group %llu node %llu: %s failed: %s; node stopped",
               (unsigned long long)r->o.group_id, (unsigned long long)r->id, what,
               curve_strerror(r->failed));
}

static bool meta_dirty(const struct raft *r)
{
    return r->term != r->durable_term || r->vote != r->durable_vote;
}

static void persist_meta(struct raft *r)
{
    int rc = r->io->persist_meta(r->io, r->term, r->vote);
    if (rc != 0)
        set_failed(r, rc, "persist_meta");
}

/* Sends m, or defers it while our (term, vote) is not durable: a reply must never reveal a
 * term or vote we could forget in a crash (§5.1 "persistent state ... before responding"). */
static void send_msg(struct raft *r, struct raft_msg *m)
{
    m->group_id = r->o.group_id;
    m->from = r->id;
    if (r->failed)
        return;
    if (meta_dirty(r)) {
        /* Only small replies are ever sent by a node whose meta is in flight: leaders and
         * campaigning candidates have a durable term. Messages with pointers are dropped. */
        if (m->type == RAFT_MSG_APPEND_ENTRIES || m->type == RAFT_MSG_INSTALL_SNAPSHOT ||
            r->ndeferred == RAFT_MAX_DEFERRED_MSGS)
            return;
        r->deferred[r->ndeferred++] = *m;
        return;
    }
    (void)r->io->send(r->io, m);
}

static void flush_deferred(struct raft *r)
{
    uint32_t n = r->ndeferred;
    r->ndeferred = 0;
    for (uint32_t i = 0; i < n; i++) {
        struct raft_msg m = r->deferred[i];
        if (m.term == r->durable_term)
            send_msg(r, &m);
    }
}

/* Issues io->append for entries [first, last] already in the in-memory log. */
static int io_append(struct raft *r, uint64_t first, uint64_t last)
{
    CURVE_ASSERT(first <= last && last == log_last(&r->log));
    if (r->append_issued - r->append_done >= RAFT_MAX_PENDING_APPENDS)
        return CURVE_ERR_BUSY;
    uint64_t seq = ++r->append_issued;
    struct raft_append_req *q = &r->appends[seq % RAFT_MAX_PENDING_APPENDS];
    q->seq = seq;
    q->last = last;
    q->n = (uint32_t)(last - first + 1);
    r->append_entries_inflight += q->n;
    int rc =
        r->io->append(r->io, seq, first, log_get(&r->log, first), (uint32_t)(last - first + 1));
    if (rc != 0)
        set_failed(r, rc, "append");
    return rc;
}

/* True when io->append may take n more entries (bounded queue towards the disk). */
static bool append_room(const struct raft *r, uint64_t n)
{
    return r->append_issued - r->append_done < RAFT_MAX_PENDING_APPENDS &&
           r->append_entries_inflight + n <= RAFT_MAX_PENDING_APPEND_ENTRIES;
}

/* After the durable log lost entries >= index (truncate / reset). */
static void durable_cut(struct raft *r, uint64_t index)
{
    r->trunc_seq = r->append_issued; /* completions of earlier appends are stale */
    if (r->durable >= index)
        r->durable = index - 1;
}

/* ============================================================================================
 * Pending proposals and reads
 * ========================================================================================== */

static struct raft_proposal *prop_at(struct raft *r, uint64_t i)
{
    return &r->props[(r->props_head + i) % r->o.max_pending_proposals];
}

static void prop_done_front(struct raft *r, int status)
{
    struct raft_proposal p = *prop_at(r, 0);
    r->props_head = (r->props_head + 1) % r->o.max_pending_proposals;
    r->nprops--;
    if (r->cbs.propose_done)
        r->cbs.propose_done(r, p.cookie, p.index, status);
}

/* Fails proposals at index >= from (their entries were removed from the log). */
static void props_fail_from(struct raft *r, uint64_t from, int status)
{
    while (r->nprops > 0 && prop_at(r, r->nprops - 1)->index >= from) {
        struct raft_proposal p = *prop_at(r, r->nprops - 1);
        r->nprops--;
        if (r->cbs.propose_done)
            r->cbs.propose_done(r, p.cookie, p.index, status);
    }
}

static struct raft_read *read_at(struct raft *r, uint64_t i)
{
    return &r->reads[(r->reads_head + i) % r->o.max_pending_reads];
}

static void reads_fail_all(struct raft *r, int status)
{
    while (r->nreads > 0) {
        struct raft_read rd = *read_at(r, 0);
        r->reads_head = (r->reads_head + 1) % r->o.max_pending_reads;
        r->nreads--;
        if (r->cbs.read_done)
            r->cbs.read_done(r, rd.cookie, rd.index, status);
    }
}

/* ============================================================================================
 * Configuration tracking
 * ========================================================================================== */

static struct raft_progress *pr_find(struct raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->npr; i++)
        if (r->pr[i].id == id)
            return &r->pr[i];
    return NULL;
}

static void xfer_free(struct raft_xfer *x)
{
    if (x == NULL)
        return;
    snap_unref(x->s);
    free(x->buf);
    free(x);
}

static void pr_reset(struct raft *r, struct raft_progress *p, uint64_t id, uint8_t role)
{
    memset(p, 0, sizeof(*p));
    p->id = id;
    p->role = role;
    p->state = RAFT_PR_PROBE;
    p->next = log_last(&r->log) + 1;
    p->last_ack_ms = p->last_progress_ms = now_ms(r);
}

/* Rebuilds leader progress after a configuration change, keeping known peers. */
static void pr_rebuild(struct raft *r)
{
    struct raft_progress old[RAFT_MAX_SERVERS];
    uint32_t nold = r->npr;
    memcpy(old, r->pr, sizeof(old));
    r->npr = 0;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        const struct raft_server *s = &r->conf.s[i];
        if (s->id == r->id)
            continue;
        struct raft_progress *p = &r->pr[r->npr++];
        bool found = false;
        for (uint32_t j = 0; j < nold; j++) {
            if (old[j].id == s->id) {
                *p = old[j];
                old[j].x = NULL;
                old[j].id = 0;
                found = true;
                break;
            }
        }
        if (!found)
            pr_reset(r, p, s->id, s->role);
        p->role = s->role;
    }
    for (uint32_t j = 0; j < nold; j++)
        if (old[j].id != 0)
            xfer_free(old[j].x);
}

static void pr_clear(struct raft *r)
{
    for (uint32_t i = 0; i < r->npr; i++)
        xfer_free(r->pr[i].x);
    r->npr = 0;
}

static void conf_changed(struct raft *r)
{
    if (r->role == RAFT_LEADER)
        pr_rebuild(r);
}

/* The configuration in effect = the last CONFIG entry in the log, else the snapshot's. */
static void conf_recompute(struct raft *r)
{
    for (uint64_t i = log_last(&r->log); i > r->log.offset; i--) {
        const struct raft_entry *e = log_get(&r->log, i);
        if (e->type == RAFT_ENTRY_CONFIG) {
            int rc = raft_config_decode(e->data, e->len, &r->conf);
            CURVE_ASSERT(rc == 0); /* validated on the way in */
            r->conf_index = i;
            conf_changed(r);
            return;
        }
    }
    if (r->has_snap) {
        r->conf = r->snap_meta.conf;
        r->conf_index = r->snap_meta.conf_index;
    } else {
        memset(&r->conf, 0, sizeof(r->conf));
        r->conf_index = 0;
    }
    conf_changed(r);
}

/* Appends one entry to the in-memory log (and tracks configurations). */
static int append_mem(struct raft *r, const struct raft_entry *e, curve_buf *buf)
{
    int rc = log_append(&r->log, e, buf);
    if (rc != 0)
        return rc;
    if (e->type == RAFT_ENTRY_CONFIG) {
        rc = raft_config_decode(e->data, e->len, &r->conf);
        CURVE_ASSERT(rc == 0);
        r->conf_index = log_last(&r->log);
        conf_changed(r);
    }
    return 0;
}

/* Removes entries >= index from memory and disk. */
static void truncate_from(struct raft *r, uint64_t index)
{
    CURVE_ASSERT(index > r->commit); /* committed entries are never removed (§5.3) */
    /* outcome unknown: another node may still hold and later commit the entry */
    props_fail_from(r, index, CURVE_ERR_FAILURE_UNKNOWN);
    log_truncate(&r->log, index);
    int rc = r->io->truncate(r->io, index);
    if (rc != 0)
        set_failed(r, rc, "truncate");
    durable_cut(r, index);
    if (r->f_match >= index)
        r->f_match = index - 1;
    if (r->f_acked >= index)
        r->f_acked = index - 1;
    if (r->conf_index >= index)
        conf_recompute(r);
}

/* ============================================================================================
 * Role transitions
 * ========================================================================================== */

static void reset_election_timer(struct raft *r)
{
    uint64_t t = r->o.election_timeout_ms;
    r->election_deadline = now_ms(r) + t + r->io->random(r->io) % t;
}

static void notify_state(struct raft *r)
{
    if (r->cbs.state_changed)
        r->cbs.state_changed(r, r->role, r->term, r->leader);
}

static void leader_state_clear(struct raft *r)
{
    reads_fail_all(r, CURVE_ERR_NOT_LEADER);
    pr_clear(r);
    r->transfer_target = 0;
    r->transfer_sent = false;
    r->lease_disabled = false;
}

/* A failed node (it can no longer persist its log, term/vote or state machine) gives up its
 * leadership at once instead of keeping it while unable to append (failure-table finding 4):
 * when leader it sends TimeoutNow to its most up-to-date voter (best effort: that node still
 * needs a majority of votes, so safety rests on the election rules as for any transfer, §3.10),
 * then it becomes a follower without a leader and fails its pending proposals
 * (CURVE_ERR_FAILURE_UNKNOWN: they may still commit through the new leader) and reads. From then
 * on it sends nothing, ignores messages (no votes) and never campaigns: the healthy replicas
 * elect a new leader within an election timeout (at once after the TimeoutNow).
 * Not called from set_failed itself (which runs deep inside loops over the progress array):
 * only at the top of an entry point — the io completions, raft_tick and raft_fail callers'
 * next tick. */
static void failed_stepdown(struct raft *r)
{
    if (!r->failed || r->failed_stepped_down || !r->started)
        return;
    r->failed_stepped_down = true;
    if (r->role == RAFT_LEADER) {
        struct raft_progress *best = NULL;
        for (uint32_t i = 0; i < r->npr; i++) {
            struct raft_progress *p = &r->pr[i];
            if (p->role == RAFT_VOTER && p->id != r->id && (best == NULL || p->match > best->match))
                best = p;
        }
        if (best != NULL && !meta_dirty(r)) {
            struct raft_msg m = {0};
            m.type = RAFT_MSG_TIMEOUT_NOW;
            m.group_id = r->o.group_id;
            m.from = r->id;
            m.to = best->id;
            m.term = r->term;
            (void)r->io->send(r->io, &m); /* send_msg drops everything once failed */
            CLOG_WARN("raft group %llu node %llu: failed leader hands over to %llu (match %llu)",
                      (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                      (unsigned long long)best->id, (unsigned long long)best->match);
        }
        leader_state_clear(r);
    }
    r->role = RAFT_FOLLOWER;
    r->leader = 0;
    r->campaign_pending = false;
    props_fail_from(r, 0, CURVE_ERR_FAILURE_UNKNOWN);
    reads_fail_all(r, CURVE_ERR_NOT_LEADER);
    notify_state(r); /* always: the owner learns of the failure here (raft_failed() != 0) */
}

static void become_follower(struct raft *r, uint64_t term, uint64_t leader)
{
    int old_role = r->role;
    uint64_t old_term = r->term, old_leader = r->leader;
    if (term > r->term) {
        r->term = term;
        r->vote = 0;
        persist_meta(r);
    }
    if (r->role == RAFT_LEADER)
        leader_state_clear(r);
    r->role = RAFT_FOLLOWER;
    r->leader = leader;
    r->campaign_pending = false;
    /* A deposed leader does not keep its proposals until it has applied them: their entries
     * commit (or not) through the new leader, and this node, now a follower, may apply slowly
     * (a slow disk hands leadership over for exactly that reason). Once the new leader is known
     * (often only at its first AppendEntries: a transfer or a higher term deposes us without
     * naming it), the owner learns that the outcome is unknown and can redirect its clients
     * there (chunk writes are idempotent overwrites, so a retry at the new leader is safe).
     * Until then they stay pending (an apply still completes them). */
    if (leader != 0 && leader != r->id)
        props_fail_from(r, 0, CURVE_ERR_FAILURE_UNKNOWN);
    if (term != old_term || leader != old_leader)
        r->f_match = r->f_acked = r->f_seq = r->f_ts = 0;
    reset_election_timer(r);
    if (old_role != r->role || old_term != r->term || old_leader != r->leader) {
        CLOG_DEBUG("raft %llu/%llu: follower term %llu leader %llu",
                   (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                   (unsigned long long)r->term, (unsigned long long)leader);
        notify_state(r);
    }
}

static void send_request_votes(struct raft *r, bool pre)
{
    for (uint32_t i = 0; i < r->conf.n; i++) {
        const struct raft_server *s = &r->conf.s[i];
        if (s->id == r->id || s->role != RAFT_VOTER)
            continue;
        struct raft_msg m = {0};
        m.type = RAFT_MSG_REQUEST_VOTE;
        m.to = s->id;
        m.term = pre ? r->term + 1 : r->term;
        m.rv.last_index = log_last(&r->log);
        m.rv.last_term = log_last_term(&r->log);
        m.rv.pre_vote = pre;
        m.rv.transfer = r->campaign_transfer;
        send_msg(r, &m);
    }
}

static void become_leader(struct raft *r);
static void become_candidate(struct raft *r, bool transfer);

static bool add_vote(struct raft *r, uint64_t id)
{
    for (uint32_t i = 0; i < r->nvotes; i++)
        if (r->votes[i] == id)
            return r->nvotes >= quorum(r);
    if (conf_is_voter(&r->conf, id) && r->nvotes < RAFT_MAX_SERVERS)
        r->votes[r->nvotes++] = id;
    return r->nvotes >= quorum(r);
}

static void become_pre_candidate(struct raft *r)
{
    if (r->role == RAFT_LEADER)
        leader_state_clear(r);
    r->role = RAFT_PRE_CANDIDATE;
    r->leader = 0;
    r->nvotes = 0;
    r->campaign_transfer = false;
    reset_election_timer(r);
    notify_state(r);
    if (add_vote(r, r->id)) {
        become_candidate(r, false);
        return;
    }
    send_request_votes(r, true);
}

static void become_candidate(struct raft *r, bool transfer)
{
    if (r->role == RAFT_LEADER)
        leader_state_clear(r);
    r->term++;
    r->vote = r->id;
    r->role = RAFT_CANDIDATE;
    r->leader = 0;
    r->nvotes = 0;
    r->f_match = r->f_acked = r->f_seq = r->f_ts = 0;
    r->campaign_transfer = transfer;
    r->campaign_pending = true; /* votes are requested once our own vote is durable */
    reset_election_timer(r);
    persist_meta(r);
    notify_state(r);
}

/* Our vote for ourselves is durable: ask the others. */
static void campaign(struct raft *r)
{
    r->campaign_pending = false;
    if (add_vote(r, r->id)) {
        become_leader(r);
        return;
    }
    send_request_votes(r, false);
}

static void replicate(struct raft *r, struct raft_progress *p);
static void broadcast_heartbeat(struct raft *r);

static void become_leader(struct raft *r)
{
    CURVE_ASSERT(r->role == RAFT_CANDIDATE && !meta_dirty(r) && r->vote == r->id);
    r->role = RAFT_LEADER;
    r->leader = r->id;
    r->npr = 0;
    r->transfer_target = 0;
    r->lease_disabled = false;
    pr_rebuild(r);
    uint64_t now = now_ms(r);
    r->hb_deadline = now + r->o.heartbeat_ms;
    r->cq_deadline = now + r->o.election_timeout_ms;
    CLOG_INFO("raft %llu/%llu: leader of term %llu (last index %llu)",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id,
              (unsigned long long)r->term, (unsigned long long)log_last(&r->log));
    /* A no-op of the new term commits every earlier entry (§5.4.2, §8). */
    struct raft_entry e = {.term = r->term, .type = RAFT_ENTRY_NOOP};
    if (append_mem(r, &e, NULL) != 0 || io_append(r, log_last(&r->log), log_last(&r->log)) != 0) {
        set_failed(r, -ENOMEM, "leader no-op");
        return;
    }
    r->noop_index = log_last(&r->log);
    notify_state(r);
    for (uint32_t i = 0; i < r->npr; i++)
        replicate(r, &r->pr[i]);
}

/* ============================================================================================
 * Commit and apply
 * ========================================================================================== */

/* The largest value v such that a quorum of voters has value >= v. self_val is ours. */
static uint64_t quorum_value(struct raft *r, uint64_t self_val, int which)
{
    uint64_t v[RAFT_MAX_SERVERS];
    uint32_t n = 0;
    if (conf_is_voter(&r->conf, r->id))
        v[n++] = self_val;
    for (uint32_t i = 0; i < r->npr; i++) {
        if (r->pr[i].role != RAFT_VOTER)
            continue;
        v[n++] = which == 0 ? r->pr[i].match : which == 1 ? r->pr[i].ack_seq : r->pr[i].ack_ts;
    }
    uint32_t q = quorum(r);
    if (n < q || q == 0)
        return 0;
    /* insertion sort, descending: n <= RAFT_MAX_SERVERS, and this runs on every lease check */
    for (uint32_t i = 1; i < n; i++) {
        uint64_t x = v[i];
        uint32_t j = i;
        for (; j > 0 && v[j - 1] < x; j--)
            v[j] = v[j - 1];
        v[j] = x;
    }
    return v[q - 1];
}

static void apply_committed(struct raft *r);

static void maybe_commit(struct raft *r)
{
    CURVE_ASSERT(r->role == RAFT_LEADER);
    uint64_t n = quorum_value(r, r->durable, 0);
    if (n <= r->commit)
        return;
    /* Only entries of the current term are committed by counting (§5.4.2, Figure 8). */
    if (log_term_at(&r->log, n) != r->term && !(r->o.debug_unsafe & RAFT_UNSAFE_COMMIT_OLD_TERMS))
        return;
    CURVE_ASSERT(n <= log_last(&r->log));
    r->commit = n;
    apply_committed(r);
}

static void reads_advance(struct raft *r);
static void maybe_snapshot(struct raft *r, bool force);
static void check_invariants(const struct raft *r);

static void complete_proposals(struct raft *r, uint64_t index, uint64_t term, int status)
{
    while (r->nprops > 0 && prop_at(r, 0)->index <= index) {
        struct raft_proposal *p = prop_at(r, 0);
        if (p->index < index)
            prop_done_front(r, CURVE_ERR_FAILURE_UNKNOWN);
        else
            prop_done_front(r, p->term == term ? status : CURVE_ERR_NOT_LEADER);
    }
}

/* Asks the owner for a raft_apply() call (cbs.apply_pending), once until it runs. */
static void request_apply(struct raft *r)
{
    if (!r->apply_yielded) {
        r->apply_yielded = true;
        r->cbs.apply_pending(r);
    }
}

/* Applies committed entries in order; with `budget`, stops once o.apply_budget_us is spent
 * (after at least one entry) and asks for another raft_apply(). */
static void apply_entries(struct raft *r, bool budget)
{
    uint64_t t0 = budget ? curve_now_mono_ns() : 0;
    uint32_t n = 0;
    while (r->applied < r->commit && !r->failed) {
        if (budget && n > 0 && curve_now_mono_ns() - t0 >= (uint64_t)r->o.apply_budget_us * 1000u) {
            request_apply(r);
            break;
        }
        n++;
        uint64_t idx = r->applied + 1;
        const struct raft_entry *e = log_get(&r->log, idx);
        CURVE_ASSERT(e != NULL); /* offset <= applied always */
        int rc = r->fsm->apply(r->fsm, idx, e);
        if (e->type == RAFT_ENTRY_CONFIG) {
            (void)raft_config_decode(e->data, e->len, &r->conf_applied);
            r->conf_applied_index = idx;
        }
        r->applied = idx;
        r->applied_bytes += e->len;
        complete_proposals(r, idx, e->term, rc);
    }
}

/* Applies committed entries. With o.apply_budget_us and cbs.apply_pending set, entries are
 * applied only inside raft_apply() — a message, completion or tick only asks for it — for at
 * most the budget per call: a slow state machine (a slow disk) then delays its own entries but
 * not the node's messages, heartbeats and leader transfers, nor the other groups sharing the
 * loop. Without them, every committed entry is applied at once. */
static void apply_committed(struct raft *r)
{
    bool budget = r->o.apply_budget_us != 0 && r->cbs.apply_pending != NULL;
    if (budget && !r->in_apply) {
        if (r->applied < r->commit && !r->failed)
            request_apply(r);
    } else {
        apply_entries(r, budget);
    }
    if (r->role == RAFT_LEADER) {
        reads_advance(r);
        /* A leader removed from the configuration steps down once the removal commits
         * (thesis §4.2.2). */
        if (r->conf_index <= r->commit && raft_config_get(&r->conf, r->id) == NULL) {
            CLOG_INFO("raft %llu/%llu: removed from the configuration, stepping down",
                      (unsigned long long)r->o.group_id, (unsigned long long)r->id);
            become_follower(r, r->term, 0);
        }
    }
    maybe_snapshot(r, false);
}

/* ============================================================================================
 * Snapshots: saving and compaction
 * ========================================================================================== */

static void maybe_snapshot(struct raft *r, bool force)
{
    if (r->fsm->snapshot_save == NULL || r->saving || r->failed)
        return;
    uint64_t base = r->has_snap ? r->snap_meta.index : 0;
    bool need =
        (r->o.snapshot_threshold && r->applied >= base + r->o.snapshot_threshold) ||
        (r->o.snapshot_threshold_bytes && r->applied_bytes >= r->o.snapshot_threshold_bytes);
    if (force && (r->snap == NULL || r->snap->meta.index < r->applied || r->snap->enc == NULL))
        need = true;
    if (!need || r->applied == 0)
        return;
    struct raft_snapshot_meta meta = {0};
    meta.index = r->applied;
    meta.term = log_term_at(&r->log, r->applied);
    meta.conf = r->conf_applied;
    meta.conf_index = r->conf_applied_index;
    CURVE_ASSERT(meta.term != 0);
    r->saving = true;
    r->saving_bytes_mark = r->applied_bytes;
    int rc = r->fsm->snapshot_save(r->fsm, &meta);
    if (rc != 0) {
        r->saving = false;
        CLOG_WARN("raft %llu/%llu: snapshot_save at %llu failed: %s",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)meta.index, curve_strerror(rc));
    }
}

void raft_snapshot_saved(struct raft *r, uint64_t index, int status,
                         const struct raft_manifest *manifest)
{
    CURVE_ASSERT(r->saving);
    r->saving = false;
    if (status != 0) {
        CLOG_WARN("raft %llu/%llu: snapshot at %llu failed: %s", (unsigned long long)r->o.group_id,
                  (unsigned long long)r->id, (unsigned long long)index, curve_strerror(status));
        return;
    }
    if (index > r->applied || log_term_at(&r->log, index) == 0 ||
        (r->has_snap && index < r->snap_meta.index)) {
        CLOG_WARN("raft %llu/%llu: snapshot at %llu ignored (stale)",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)index);
        return;
    }
    struct raft_snap *s = calloc(1, sizeof(*s));
    if (s == NULL)
        return;
    s->refs = 1;
    s->meta.index = index;
    s->meta.term = log_term_at(&r->log, index);
    /* the configuration as of index: conf_applied if nothing was applied since the call */
    s->meta.conf = r->conf_applied;
    s->meta.conf_index = r->conf_applied_index;
    if (r->conf_applied_index > index) {
        /* a config entry was applied after the save was requested: find the one <= index */
        struct raft_config c = r->has_snap ? r->snap_meta.conf : (struct raft_config){0};
        uint64_t ci = r->has_snap ? r->snap_meta.conf_index : 0;
        for (uint64_t i = r->log.offset + 1; i <= index; i++) {
            const struct raft_entry *e = log_get(&r->log, i);
            if (e->type == RAFT_ENTRY_CONFIG && raft_config_decode(e->data, e->len, &c) == 0)
                ci = i;
        }
        s->meta.conf = c;
        s->meta.conf_index = ci;
    }
    int rc = manifest_encode(manifest, &s->enc, &s->enc_len);
    if (rc == 0)
        rc = manifest_decode(s->enc, s->enc_len, &s->dec);
    if (rc != 0) {
        CLOG_WARN("raft %llu/%llu: bad manifest for snapshot %llu: %s",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)index, curve_strerror(rc));
        free(s->enc);
        s->enc = NULL;
        mdec_free(&s->dec);
    }
    snap_unref(r->snap);
    r->snap = s;
    r->has_snap = true;
    r->snap_meta = s->meta;
    r->applied_bytes -= min_u64(r->applied_bytes, r->saving_bytes_mark);
    if (r->durable < index)
        r->durable = index; /* covered by the durable snapshot */
    uint64_t c = index > r->o.snapshot_trailing ? index - r->o.snapshot_trailing : 0;
    if (r->o.snapshot_trailing_bytes) {
        /* keep at most snapshot_trailing_bytes of payload in (c, index] */
        uint64_t kept = 0, k = index;
        while (k > c && k > r->log.offset) {
            kept += log_get(&r->log, k)->len;
            if (kept > r->o.snapshot_trailing_bytes)
                break;
            k--;
        }
        if (k > c)
            c = k;
    }
    if (c > r->log.offset) {
        log_compact(&r->log, c);
        (void)r->io->compact(r->io, c);
    }
    r->want_snapshot = false;
    check_invariants(r);
}

/* ============================================================================================
 * Leader: replication
 * ========================================================================================== */

static void start_snapshot(struct raft *r, struct raft_progress *p);
static void snapshot_pump(struct raft *r, struct raft_progress *p);

static void send_append(struct raft *r, struct raft_progress *p, bool heartbeat)
{
    uint64_t prev = heartbeat ? max_u64(p->match, r->log.offset) : p->next - 1;
    if (!heartbeat && prev < r->log.offset) {
        start_snapshot(r, p);
        return;
    }
    if (prev > log_last(&r->log))
        prev = log_last(&r->log);
    uint64_t last = log_last(&r->log);
    uint32_t n = 0;
    uint64_t bytes = 0;
    if (!heartbeat) {
        while (prev + n < last && n < r->o.max_entries_per_msg) {
            const struct raft_entry *e = log_get(&r->log, prev + n + 1);
            if (n > 0 && bytes + e->len > r->o.max_bytes_per_msg)
                break;
            bytes += e->len;
            n++;
        }
    }
    uint64_t now = now_ms(r);
    struct raft_msg m = {0};
    m.type = RAFT_MSG_APPEND_ENTRIES;
    m.to = p->id;
    m.term = r->term;
    m.ae.prev_index = prev;
    m.ae.prev_term = log_term_at(&r->log, prev);
    m.ae.commit = r->commit;
    m.ae.seq = ++r->send_seq;
    m.ae.ts = now;
    m.ae.n = n;
    m.ae.entries = n ? log_get(&r->log, prev + 1) : NULL;
    send_msg(r, &m);
    p->last_send_ms = now;
    if (heartbeat || n == 0)
        return;
    if (p->state == RAFT_PR_PIPELINE) {
        p->next = prev + n + 1;
        CURVE_ASSERT(p->ninflight < RAFT_MAX_INFLIGHT);
        p->inflight[p->ninflight++] = prev + n;
    } else if (p->state == RAFT_PR_PROBE) {
        p->probe_sent = 1;
    }
}

/* Sends what the follower is missing, within its window. */
static void replicate(struct raft *r, struct raft_progress *p)
{
    if (r->role != RAFT_LEADER)
        return;
    switch (p->state) {
    case RAFT_PR_PROBE:
        if (!p->probe_sent)
            send_append(r, p, false);
        break;
    case RAFT_PR_PIPELINE:
        while (p->state == RAFT_PR_PIPELINE && p->next <= log_last(&r->log) &&
               p->ninflight < r->o.max_inflight_msgs)
            send_append(r, p, false);
        break;
    case RAFT_PR_SNAPSHOT:
        snapshot_pump(r, p);
        break;
    }
}

static void broadcast_heartbeat(struct raft *r)
{
    for (uint32_t i = 0; i < r->npr; i++)
        send_append(r, &r->pr[i], true);
}

static void send_timeout_now(struct raft *r, struct raft_progress *p)
{
    struct raft_msg m = {0};
    m.type = RAFT_MSG_TIMEOUT_NOW;
    m.to = p->id;
    m.term = r->term;
    send_msg(r, &m);
    r->transfer_sent = true;
}

static void pr_to_probe(struct raft_progress *p, uint64_t next)
{
    xfer_free(p->x);
    p->x = NULL;
    p->state = RAFT_PR_PROBE;
    p->probe_sent = 0;
    p->ninflight = 0;
    p->next = max_u64(next, p->match + 1);
}

/* ============================================================================================
 * Leader: snapshot transfer (bounded pieces in flight, token-bucket throttle)
 * ========================================================================================== */

static void start_snapshot(struct raft *r, struct raft_progress *p)
{
    p->state = RAFT_PR_SNAPSHOT;
    p->ninflight = 0;
    xfer_free(p->x);
    p->x = NULL;
    snapshot_pump(r, p);
}

static void xfer_send(struct raft *r, struct raft_progress *p, uint8_t kind, uint32_t file,
                      uint64_t off, uint32_t len, const void *data)
{
    struct raft_msg m = {0};
    m.type = RAFT_MSG_INSTALL_SNAPSHOT;
    m.to = p->id;
    m.term = r->term;
    m.snap.kind = kind;
    m.snap.meta = p->x->s->meta;
    m.snap.file = file;
    m.snap.offset = off;
    m.snap.len = len;
    m.snap.data = data;
    send_msg(r, &m);
    p->last_send_ms = now_ms(r);
}

/* Moves the transfer to the node's current snapshot when that one is newer than the snapshot the
 * transfer started with: the state machine may have deleted the older snapshot's files (it owns
 * them), and the follower needs only some snapshot covering the compacted prefix. */
static bool xfer_renew(struct raft *r, struct raft_progress *p)
{
    struct raft_xfer *x = p->x;
    struct raft_snap *s = r->snap;
    if (r->o.debug_unsafe & RAFT_UNSAFE_STUCK_TRANSFER)
        return false;
    if (s == NULL || s == x->s || s->enc == NULL || s->meta.index <= x->s->meta.index)
        return false;
    CLOG_INFO("raft %llu/%llu: snapshot transfer to %llu moves from snapshot %llu to %llu",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id,
              (unsigned long long)p->id, (unsigned long long)x->s->meta.index,
              (unsigned long long)s->meta.index);
    s->refs++;
    snap_unref(x->s);
    x->s = s;
    x->read_failures = 0;
    r->xfer_switches++;
    return true;
}

/* (Re)starts the transfer from BEGIN, with the newest snapshot that has a manifest. */
static void xfer_restart(struct raft *r, struct raft_progress *p)
{
    struct raft_xfer *x = p->x;
    (void)xfer_renew(r, p);
    x->phase = RAFT_XFER_BEGIN;
    x->file = 0;
    x->off = 0;
    x->ninflight = 0;
    x->phase_ms = now_ms(r);
    xfer_send(r, p, RAFT_SNAP_BEGIN, 0, 0, x->s->enc_len, x->s->enc);
}

/* fsm->snapshot_read failed on the transfer's snapshot. If a newer snapshot exists (its files
 * are what the state machine keeps), restart the transfer with it. Otherwise retry at the next
 * tick, at most RAFT_MAX_SNAPSHOT_READ_FAILURES times in a row; then abandon the transfer, ask
 * for a fresh snapshot and start over after one election timeout. */
static void snapshot_read_failed(struct raft *r, struct raft_progress *p, int err)
{
    struct raft_xfer *x = p->x;
    const struct raft_manifest *mf = &x->s->dec.m;
    CLOG_WARN("raft %llu/%llu: snapshot_read %s@%llu of snapshot %llu failed: %s",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id, mf->files[x->file].name,
              (unsigned long long)x->off, (unsigned long long)x->s->meta.index,
              curve_strerror(err));
    if (xfer_renew(r, p)) {
        xfer_restart(r, p);
        return;
    }
    if (r->o.debug_unsafe & RAFT_UNSAFE_STUCK_TRANSFER)
        return; /* test-only mutation: retried at the next tick, forever */
    if (++x->read_failures < RAFT_MAX_SNAPSHOT_READ_FAILURES)
        return; /* retried at the next tick */
    CLOG_WARN("raft %llu/%llu: snapshot transfer to %llu abandoned after %u read errors",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id,
              (unsigned long long)p->id, (unsigned)x->read_failures);
    xfer_free(x);
    p->x = NULL;
    p->ninflight = 0;
    p->xfer_retry_ms = now_ms(r) + r->o.election_timeout_ms;
    r->xfer_abandons++;
    r->want_snapshot = true; /* a newer snapshot, if anything was applied since */
    maybe_snapshot(r, true);
}

static void snapshot_pump(struct raft *r, struct raft_progress *p)
{
    uint64_t now = now_ms(r);
    uint64_t timeout = r->o.election_timeout_ms;
    if (p->x == NULL) {
        if (now < p->xfer_retry_ms)
            return; /* the previous transfer was abandoned: back off */
        if (r->snap == NULL || r->snap->enc == NULL || r->snap->meta.index < r->log.offset) {
            r->want_snapshot = true;
            maybe_snapshot(r, true);
            return;
        }
        struct raft_xfer *x = calloc(1, sizeof(*x));
        if (x == NULL || (x->buf = malloc(r->o.snapshot_piece_bytes)) == NULL) {
            free(x);
            return;
        }
        x->s = r->snap;
        x->s->refs++;
        x->tokens = (uint64_t)r->o.snapshot_piece_bytes * r->o.snapshot_max_inflight;
        x->tokens_ms = now;
        p->x = x;
        xfer_restart(r, p);
        return;
    }
    struct raft_xfer *x = p->x;
    const struct raft_manifest *mf = &x->s->dec.m;
    switch (x->phase) {
    case RAFT_XFER_BEGIN:
        if (now >= x->phase_ms + timeout)
            xfer_restart(r, p);
        return;
    case RAFT_XFER_FINISH:
        if (now >= x->phase_ms + timeout) {
            x->phase_ms = now;
            xfer_send(r, p, RAFT_SNAP_FINISH, 0, 0, 0, NULL);
        }
        return;
    default:
        break;
    }
    /* Go-back-N: a piece unacknowledged for a timeout is resent from there on. */
    if (x->ninflight > 0) {
        uint32_t oldest = 0;
        for (uint32_t i = 1; i < x->ninflight; i++)
            if (x->inflight[i].sent_ms < x->inflight[oldest].sent_ms)
                oldest = i;
        if (now >= x->inflight[oldest].sent_ms + timeout) {
            uint32_t lo = 0;
            for (uint32_t i = 1; i < x->ninflight; i++)
                if (x->inflight[i].file < x->inflight[lo].file ||
                    (x->inflight[i].file == x->inflight[lo].file &&
                     x->inflight[i].off < x->inflight[lo].off))
                    lo = i;
            x->file = x->inflight[lo].file;
            x->off = x->inflight[lo].off;
            x->ninflight = 0;
        }
    }
    uint64_t burst = (uint64_t)r->o.snapshot_piece_bytes * r->o.snapshot_max_inflight;
    if (r->o.snapshot_bytes_per_sec) {
        /* Advance the bucket's clock only when whole bytes were added: at rates below 1000 B/s
         * per tick interval the per-tick increment rounds to zero and would never accumulate. */
        uint64_t add = (now - x->tokens_ms) * r->o.snapshot_bytes_per_sec / 1000;
        if (add > 0 || x->tokens >= burst) {
            x->tokens = min_u64(burst, x->tokens + add);
            x->tokens_ms = now;
        }
    } else {
        x->tokens = burst;
        x->tokens_ms = now;
    }
    while (x->ninflight < r->o.snapshot_max_inflight) {
        while (x->file < mf->nfiles && x->off >= mf->files[x->file].size) {
            x->file++;
            x->off = 0;
        }
        if (x->file >= mf->nfiles)
            break;
        uint32_t len =
            (uint32_t)min_u64(r->o.snapshot_piece_bytes, mf->files[x->file].size - x->off);
        if (x->tokens < len)
            break;
        int got = r->fsm->snapshot_read(r->fsm, mf->files[x->file].name, x->off, x->buf, len);
        if (got < 0) {
            snapshot_read_failed(r, p, got);
            return;
        }
        x->read_failures = 0;
        if ((uint32_t)got < len)
            len = (uint32_t)got; /* file shorter than the manifest says: send what exists */
        x->tokens -= len;
        struct raft_piece *pc = &x->inflight[x->ninflight++];
        pc->file = x->file;
        pc->off = x->off;
        pc->len = len;
        pc->sent_ms = now;
        xfer_send(r, p, RAFT_SNAP_PIECE, x->file, x->off, len, x->buf);
        x->off = len ? x->off + len : mf->files[x->file].size;
    }
    if (x->file >= mf->nfiles && x->ninflight == 0) {
        x->phase = RAFT_XFER_FINISH;
        x->phase_ms = now;
        xfer_send(r, p, RAFT_SNAP_FINISH, 0, 0, 0, NULL);
    }
}

static void recv_snapr(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER)
        return;
    struct raft_progress *p = pr_find(r, m->from);
    if (p == NULL)
        return;
    p->last_ack_ms = now_ms(r);
    struct raft_xfer *x = p->x;
    if (p->state != RAFT_PR_SNAPSHOT || x == NULL || m->snapr.index != x->s->meta.index)
        return;
    if (m->snapr.kind == RAFT_SNAP_BEGIN && m->snapr.status == -EALREADY) {
        /* the follower already has everything the snapshot covers */
        pr_to_probe(p, r->log.offset + 1);
        replicate(r, p);
        return;
    }
    if (m->snapr.status == CURVE_ERR_BUSY && m->snapr.kind == RAFT_SNAP_FINISH) {
        x->phase_ms = now_ms(r); /* FINISH is retried after a timeout */
        return;
    }
    if (m->snapr.status != 0) {
        if (x->phase != RAFT_XFER_BEGIN || m->snapr.kind == RAFT_SNAP_BEGIN)
            xfer_restart(r, p);
        return;
    }
    switch (m->snapr.kind) {
    case RAFT_SNAP_BEGIN:
        if (x->phase == RAFT_XFER_BEGIN) {
            x->phase = RAFT_XFER_PIECES;
            snapshot_pump(r, p);
        }
        break;
    case RAFT_SNAP_PIECE:
        for (uint32_t i = 0; i < x->ninflight; i++) {
            if (x->inflight[i].file == m->snapr.file && x->inflight[i].off == m->snapr.offset) {
                x->inflight[i] = x->inflight[--x->ninflight];
                break;
            }
        }
        if (x->phase == RAFT_XFER_PIECES)
            snapshot_pump(r, p);
        break;
    case RAFT_SNAP_FINISH:
        if (x->phase == RAFT_XFER_FINISH) {
            p->match = max_u64(p->match, x->s->meta.index);
            p->last_progress_ms = now_ms(r);
            pr_to_probe(p, p->match + 1);
            maybe_commit(r);
            replicate(r, p);
        }
        break;
    }
}

/* ============================================================================================
 * Follower: snapshot install
 * ========================================================================================== */

static void inst_clear(struct raft *r)
{
    mdec_free(&r->inst.dec);
    free(r->inst.enc);
    r->inst.enc = NULL;
    r->inst.active = false;
}

static void inst_abort(struct raft *r)
{
    if (!r->inst.active)
        return;
    if (r->fsm->install_abort)
        r->fsm->install_abort(r->fsm);
    inst_clear(r);
}

/* The state machine now holds snapshot `meta`: reset the log around it. */
static void install_snapshot_state(struct raft *r, const struct raft_snapshot_meta *meta)
{
    uint64_t s = meta->index;
    while (r->nprops > 0 && prop_at(r, 0)->index <= s)
        prop_done_front(r, CURVE_ERR_FAILURE_UNKNOWN);
    if (s <= log_last(&r->log) && s > r->log.offset && log_term_at(&r->log, s) == meta->term) {
        log_compact(&r->log, s); /* keep the matching suffix (§7) */
        (void)r->io->compact(r->io, s);
    } else {
        props_fail_from(r, r->log.offset + 1, CURVE_ERR_FAILURE_UNKNOWN);
        log_reset(&r->log, s, meta->term);
        int rc = r->io->reset_log(r->io, s, meta->term);
        if (rc != 0)
            set_failed(r, rc, "reset_log");
        durable_cut(r, s + 1);
        r->f_match = min_u64(r->f_match, s);
    }
    r->durable = max_u64(r->durable, s);
    snap_unref(r->snap);
    r->snap = NULL; /* no manifest of our own yet */
    r->has_snap = true;
    r->snap_meta = *meta;
    r->commit = max_u64(r->commit, s);
    r->applied = s;
    r->applied_bytes = 0;
    r->conf_applied = meta->conf;
    r->conf_applied_index = meta->conf_index;
    conf_recompute(r);
}

static void recv_snap(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg rep = {0};
    rep.type = RAFT_MSG_INSTALL_SNAPSHOT_RESULT;
    rep.to = m->from;
    rep.term = r->term;
    rep.snapr.kind = m->snap.kind;
    rep.snapr.index = m->snap.meta.index;
    rep.snapr.file = m->snap.file;
    rep.snapr.offset = m->snap.offset;
    rep.snapr.len = m->snap.len;
    const struct raft_snapshot_meta *meta = &m->snap.meta;
    bool same = r->inst.active && r->inst.term == m->term && r->inst.meta.index == meta->index &&
                r->inst.meta.term == meta->term;
    int rc = 0;
    switch (m->snap.kind) {
    case RAFT_SNAP_BEGIN:
        if (r->commit >= meta->index) {
            rc = -EALREADY;
            break;
        }
        if (same)
            break;
        inst_abort(r);
        r->inst.enc = malloc(m->snap.len ? m->snap.len : 1);
        if (r->inst.enc == NULL) {
            rc = -ENOMEM;
            break;
        }
        if (m->snap.len)
            memcpy(r->inst.enc, m->snap.data, m->snap.len);
        rc = manifest_decode(r->inst.enc, m->snap.len, &r->inst.dec);
        if (rc == 0)
            rc = r->fsm->install_begin(r->fsm, meta, &r->inst.dec.m);
        if (rc != 0) {
            inst_clear(r);
            break;
        }
        r->inst.active = true;
        r->inst.term = m->term;
        r->inst.meta = *meta;
        break;
    case RAFT_SNAP_PIECE:
        if (!same) {
            rc = -ENOENT;
            break;
        }
        if (m->snap.file >= r->inst.dec.m.nfiles ||
            m->snap.offset + m->snap.len > r->inst.dec.m.files[m->snap.file].size) {
            rc = -EINVAL;
            break;
        }
        rc = r->fsm->install_write(r->fsm, r->inst.dec.m.files[m->snap.file].name, m->snap.offset,
                                   m->snap.data, m->snap.len);
        break;
    case RAFT_SNAP_FINISH:
        if (!same) {
            rc = r->has_snap && r->snap_meta.index >= meta->index ? 0 : -ENOENT;
            break;
        }
        if (r->commit >= meta->index) {
            /* caught up through AppendEntries meanwhile: the snapshot is not needed */
            inst_abort(r);
            break;
        }
        if (r->saving) {
            /* our own older snapshot is being saved: it must not land after this one */
            rc = CURVE_ERR_BUSY;
            break;
        }
        rc = r->fsm->install_finish(r->fsm, meta, &r->inst.dec.m);
        inst_clear(r);
        if (rc != 0)
            break;
        CLOG_INFO("raft %llu/%llu: installed snapshot %llu (term %llu)",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)meta->index, (unsigned long long)meta->term);
        install_snapshot_state(r, meta);
        break;
    }
    rep.snapr.status = rc;
    send_msg(r, &rep);
}

/* ============================================================================================
 * Invariants, checked when every public entry point returns (cheap: O(peers))
 * ========================================================================================== */

static void check_invariants(const struct raft *r)
{
    if (r->failed || !r->started)
        return;
    uint64_t last = log_last(&r->log);
    CURVE_ASSERT(r->log.offset <= r->applied);
    CURVE_ASSERT(r->applied <= r->commit);
    CURVE_ASSERT(r->commit <= last);
    CURVE_ASSERT(r->durable <= last);
    CURVE_ASSERT(r->durable_term <= r->term);
    CURVE_ASSERT(r->conf_index <= last);
    CURVE_ASSERT(r->nprops <= r->o.max_pending_proposals && r->nreads <= r->o.max_pending_reads);
    CURVE_ASSERT(r->append_done <= r->append_issued);
    CURVE_ASSERT(r->ndeferred <= RAFT_MAX_DEFERRED_MSGS);
    CURVE_ASSERT(log_last_term(&r->log) <= r->term);
    if (r->nprops > 0)
        CURVE_ASSERT(r->props[(r->props_head + r->nprops - 1) % r->o.max_pending_proposals].index <=
                     last);
    if (r->role == RAFT_LEADER) {
        CURVE_ASSERT(r->leader == r->id && r->vote == r->id && !meta_dirty(r));
        CURVE_ASSERT(r->npr <= RAFT_MAX_SERVERS);
        for (uint32_t i = 0; i < r->npr; i++) {
            const struct raft_progress *p = &r->pr[i];
            CURVE_ASSERT(p->match <= last && p->next > p->match && p->next <= last + 1);
            CURVE_ASSERT(p->ninflight <= r->o.max_inflight_msgs);
            CURVE_ASSERT(p->state == RAFT_PR_SNAPSHOT || p->x == NULL);
        }
    } else {
        CURVE_ASSERT(r->npr == 0 && r->nreads == 0);
    }
}

/* ============================================================================================
 * Message handlers
 * ========================================================================================== */

/* True while we believe a leader is alive: votes for disruptive candidates are refused
 * (thesis §4.2.3 / §6.4.1: this is also what makes the leader lease safe). */
static bool in_lease(struct raft *r)
{
    if (r->role == RAFT_LEADER)
        return r->o.check_quorum;
    if (r->o.debug_unsafe & RAFT_UNSAFE_NO_STICKINESS)
        return false;
    /* also true for one timeout after a restart (last_leader_contact = boot time) */
    return now_ms(r) < r->last_leader_contact + r->o.election_timeout_ms;
}

static bool log_up_to_date(struct raft *r, uint64_t last_index, uint64_t last_term)
{
    if (r->o.debug_unsafe & RAFT_UNSAFE_VOTE_ANY_LOG)
        return true;
    uint64_t my_term = log_last_term(&r->log);
    return last_term > my_term || (last_term == my_term && last_index >= log_last(&r->log));
}

static void recv_rv(struct raft *r, const struct raft_msg *m)
{
    struct raft_msg rep = {0};
    rep.type = RAFT_MSG_REQUEST_VOTE_RESULT;
    rep.to = m->from;
    rep.rvr.pre_vote = m->rv.pre_vote;
    bool ok = log_up_to_date(r, m->rv.last_index, m->rv.last_term);
    if (m->rv.pre_vote) {
        bool grant = m->term > r->term && ok && (m->rv.transfer || !in_lease(r));
        rep.term = grant ? m->term : r->term;
        rep.rvr.granted = grant;
        send_msg(r, &rep);
        return;
    }
    CURVE_ASSERT(m->term == r->term);
    bool grant = (r->role == RAFT_FOLLOWER || r->role == RAFT_PRE_CANDIDATE) &&
                 (r->vote == 0 || r->vote == m->from) && ok;
    if (grant && r->role != RAFT_FOLLOWER)
        become_follower(r, r->term, 0);
    if (grant && r->vote != m->from) {
        r->vote = m->from;
        persist_meta(r);
    }
    if (grant)
        reset_election_timer(r);
    rep.term = r->term;
    rep.rvr.granted = grant;
    send_msg(r, &rep); /* deferred until the vote is durable */
}

static void recv_rvr(struct raft *r, const struct raft_msg *m)
{
    if (!m->rvr.granted)
        return;
    if (r->role == RAFT_PRE_CANDIDATE && m->rvr.pre_vote && m->term == r->term + 1) {
        if (add_vote(r, m->from))
            become_candidate(r, false);
    } else if (r->role == RAFT_CANDIDATE && !m->rvr.pre_vote && m->term == r->term &&
               !r->campaign_pending) {
        if (add_vote(r, m->from))
            become_leader(r);
    }
}

/* Follower: tell the leader how far our log matches its, durably. */
static void follower_ack(struct raft *r)
{
    uint64_t ack = min_u64(r->f_match, r->durable);
    struct raft_msg m = {0};
    m.type = RAFT_MSG_APPEND_ENTRIES_RESULT;
    m.to = r->leader;
    m.term = r->term;
    m.aer.success = 1;
    m.aer.last_index = ack;
    m.aer.seq = r->f_seq;
    m.aer.ts = r->f_ts;
    r->f_acked = ack;
    send_msg(r, &m);
}

static void recv_ae(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER) {
        CLOG_ERROR("raft %llu/%llu: AppendEntries from %llu in my own term %llu ignored",
                   (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                   (unsigned long long)m->from, (unsigned long long)m->term);
        return;
    }
    if (r->role != RAFT_FOLLOWER || r->leader != m->from)
        become_follower(r, r->term, m->from);
    r->last_leader_contact = now_ms(r);
    reset_election_timer(r);
    r->f_seq = max_u64(r->f_seq, m->ae.seq);
    r->f_ts = max_u64(r->f_ts, m->ae.ts);

    uint64_t prev = m->ae.prev_index, prev_term = m->ae.prev_term;
    const struct raft_entry *ents = m->ae.entries;
    uint32_t n = m->ae.n;
    if (prev < r->log.offset) {
        /* entries up to our snapshot/offset are committed and match by definition */
        uint64_t skip = r->log.offset - prev;
        if (skip >= n) {
            r->f_match = max_u64(r->f_match, min_u64(prev + n, r->log.offset));
            follower_ack(r);
            return;
        }
        ents += skip;
        n -= (uint32_t)skip;
        prev = r->log.offset;
        prev_term = ents[-1].term;
    }
    struct raft_msg rep = {0};
    rep.type = RAFT_MSG_APPEND_ENTRIES_RESULT;
    rep.to = m->from;
    rep.term = r->term;
    rep.aer.seq = m->ae.seq;
    rep.aer.ts = m->ae.ts;
    rep.aer.last_index = m->ae.prev_index;
    if (prev > log_last(&r->log)) {
        rep.aer.hint = log_last(&r->log) + 1;
        send_msg(r, &rep);
        return;
    }
    uint64_t t = log_term_at(&r->log, prev);
    if (t != prev_term) {
        /* fast backtracking: skip the whole conflicting term (thesis §5.3) */
        uint64_t h = prev;
        while (h - 1 > r->commit && h - 1 > r->log.offset && log_term_at(&r->log, h - 1) == t)
            h--;
        rep.aer.hint = h;
        send_msg(r, &rep);
        return;
    }
    /* find the first new entry; truncate a conflicting suffix */
    bool appended = false;
    uint32_t i = 0;
    for (; i < n; i++) {
        uint64_t idx = prev + 1 + i;
        if (idx > log_last(&r->log))
            break;
        if (log_term_at(&r->log, idx) != ents[i].term) {
            if (idx <= r->commit) {
                CLOG_ERROR("raft %llu/%llu: leader %llu conflicts with committed entry %llu",
                           (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                           (unsigned long long)m->from, (unsigned long long)idx);
                return;
            }
            truncate_from(r, idx);
            break;
        }
    }
    if (i < n) {
        if (!append_room(r, n - i))
            return; /* disk saturated: the leader will resend */
        if (r->o.max_log_bytes && r->log.bytes > r->o.max_log_bytes) {
            /* memory bound: the state machine is behind (entries wait to be applied) or a
             * snapshot is due; the leader resends once a heartbeat shows us behind */
            raft_request_snapshot(r);
            r->follower_refused++;
            return;
        }
        uint64_t first = prev + 1 + i;
        for (uint32_t k = i; k < n; k++) {
            if (append_mem(r, &ents[k], m->ae.buf) != 0) {
                set_failed(r, -ENOMEM, "append");
                return;
            }
        }
        if (io_append(r, first, log_last(&r->log)) != 0)
            return;
        appended = true;
    }
    r->f_match = max_u64(r->f_match, prev + n);
    uint64_t c = min_u64(m->ae.commit, prev + n);
    if (c > r->commit) {
        r->commit = c;
        apply_committed(r);
    }
    /* New entries not yet durable: an acknowledgement now could only repeat the old durable
     * index (min(match, durable)), so it would cost a message each way and tell the leader
     * nothing it can commit with. The append's completion acknowledges them (f_match > f_acked
     * in raft_io_append_done), echoing this message's seq/ts — later than sent, which only
     * shortens the lease computed from it. Heartbeats (n = 0), duplicates and rejections are
     * still answered at once. */
    if (appended && r->durable < r->f_match && r->f_acked < r->f_match && !r->failed)
        return;
    follower_ack(r);
}

static void reads_advance(struct raft *r)
{
    if (r->role != RAFT_LEADER)
        return;
    bool term_committed = r->commit >= r->noop_index;
    uint64_t qseq = quorum_value(r, UINT64_MAX, 1);
    while (r->nreads > 0) {
        struct raft_read *rd = read_at(r, 0);
        if (rd->index == 0) {
            if (!term_committed)
                return;
            rd->index = r->commit;
        }
        if (qseq <= rd->seq || r->applied < rd->index)
            return;
        struct raft_read done = *rd;
        r->reads_head = (r->reads_head + 1) % r->o.max_pending_reads;
        r->nreads--;
        if (r->cbs.read_done)
            r->cbs.read_done(r, done.cookie, done.index, 0);
    }
}

static void recv_aer(struct raft *r, const struct raft_msg *m)
{
    if (r->role != RAFT_LEADER)
        return;
    struct raft_progress *p = pr_find(r, m->from);
    if (p == NULL)
        return;
    uint64_t now = now_ms(r);
    p->last_ack_ms = now;
    p->ack_seq = max_u64(p->ack_seq, m->aer.seq);
    p->ack_ts = max_u64(p->ack_ts, m->aer.ts);
    if (m->aer.success) {
        uint64_t l = min_u64(m->aer.last_index, log_last(&r->log));
        if (l > p->match) {
            p->match = l;
            p->last_progress_ms = now;
        }
        uint32_t k = 0;
        while (k < p->ninflight && p->inflight[k] <= p->match)
            k++;
        if (k) {
            memmove(p->inflight, p->inflight + k, (p->ninflight - k) * sizeof(uint64_t));
            p->ninflight -= k;
        }
        if (p->state == RAFT_PR_SNAPSHOT) {
            if (p->match >= r->log.offset) {
                pr_to_probe(p, p->match + 1);
            }
        } else if (p->state == RAFT_PR_PROBE) {
            p->state = RAFT_PR_PIPELINE;
            p->probe_sent = 0;
            p->ninflight = 0;
            p->next = p->match + 1;
        }
        if (p->next <= p->match)
            p->next = p->match + 1;
        maybe_commit(r);
        if (r->role != RAFT_LEADER)
            return;
        reads_advance(r);
        if (r->transfer_target == p->id && !r->transfer_sent && p->match == log_last(&r->log))
            send_timeout_now(r, p);
        replicate(r, p);
        return;
    }
    if (p->state == RAFT_PR_SNAPSHOT)
        return;
    uint64_t rejected = m->aer.last_index;
    if (rejected < p->match || rejected >= p->next)
        return; /* stale */
    reads_advance(r);
    pr_to_probe(p, min_u64(m->aer.hint, rejected));
    replicate(r, p);
}

static void recv_timeout_now(struct raft *r, const struct raft_msg *m)
{
    if (r->role == RAFT_LEADER || !conf_is_voter(&r->conf, r->id))
        return;
    CLOG_INFO("raft %llu/%llu: TimeoutNow from %llu, campaigning",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id,
              (unsigned long long)m->from);
    become_candidate(r, true);
}

/* ============================================================================================
 * Validation of received messages (bad input never crashes the node)
 * ========================================================================================== */

static int validate_msg(struct raft *r, const struct raft_msg *m)
{
    if (m == NULL || m->type < 1 || m->type > RAFT_MSG_TYPE_MAX || m->group_id != r->o.group_id ||
        m->from == 0 || m->from == r->id || (m->to != 0 && m->to != r->id) || m->term == 0)
        return CURVE_ERR_RPC_BADREQ;
    switch (m->type) {
    case RAFT_MSG_APPEND_ENTRIES: {
        if (m->ae.n > RAFT_MAX_ENTRIES_PER_MSG || (m->ae.n && m->ae.entries == NULL) ||
            m->ae.prev_index > UINT64_MAX - RAFT_MAX_ENTRIES_PER_MSG || m->ae.prev_term > m->term ||
            (m->ae.prev_index == 0 && m->ae.prev_term != 0))
            return CURVE_ERR_RPC_BADREQ;
        uint64_t t = m->ae.prev_term;
        for (uint32_t i = 0; i < m->ae.n; i++) {
            const struct raft_entry *e = &m->ae.entries[i];
            if (e->term < t || e->term > m->term || e->term == 0 || e->len > r->o.max_entry_bytes ||
                (e->len && e->data == NULL) || e->type < RAFT_ENTRY_COMMAND ||
                e->type > RAFT_ENTRY_NOOP)
                return CURVE_ERR_RPC_BADREQ;
            struct raft_config c;
            if (e->type == RAFT_ENTRY_CONFIG && raft_config_decode(e->data, e->len, &c) != 0)
                return CURVE_ERR_RPC_BADREQ;
            t = e->term;
        }
        break;
    }
    case RAFT_MSG_INSTALL_SNAPSHOT:
        if (m->snap.kind < RAFT_SNAP_BEGIN || m->snap.kind > RAFT_SNAP_FINISH ||
            m->snap.meta.index == 0 || m->snap.meta.term == 0 || m->snap.meta.term > m->term ||
            m->snap.meta.conf_index > m->snap.meta.index ||
            config_validate(&m->snap.meta.conf) != 0 || (m->snap.len && m->snap.data == NULL) ||
            (m->snap.kind == RAFT_SNAP_BEGIN && m->snap.len > RAFT_MAX_MANIFEST_BYTES) ||
            (m->snap.kind == RAFT_SNAP_PIECE && m->snap.len > r->o.max_entry_bytes) ||
            m->snap.offset > UINT64_MAX / 2)
            return CURVE_ERR_RPC_BADREQ;
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESULT:
        if (m->snapr.kind < RAFT_SNAP_BEGIN || m->snapr.kind > RAFT_SNAP_FINISH)
            return CURVE_ERR_RPC_BADREQ;
        break;
    default:
        break;
    }
    return 0;
}

int raft_recv(struct raft *r, const struct raft_msg *m)
{
    int rc = validate_msg(r, m);
    if (rc != 0)
        return rc;
    if (r->failed || !r->started)
        return 0;
    bool is_rv = m->type == RAFT_MSG_REQUEST_VOTE;
    bool from_leader = m->type == RAFT_MSG_APPEND_ENTRIES || m->type == RAFT_MSG_INSTALL_SNAPSHOT ||
                       m->type == RAFT_MSG_TIMEOUT_NOW;
    if (m->term > r->term) {
        if (is_rv && !m->rv.transfer && in_lease(r))
            return 0; /* leader stickiness: ignore a disruptive candidate */
        if (is_rv && m->rv.pre_vote) {
            /* answered below without changing our term */
        } else if (m->type == RAFT_MSG_REQUEST_VOTE_RESULT && m->rvr.pre_vote && m->rvr.granted) {
            /* a pre-vote grant carries the term we would campaign in */
        } else {
            become_follower(r, m->term, from_leader ? m->from : 0);
        }
    } else if (m->term < r->term) {
        if (m->type == RAFT_MSG_APPEND_ENTRIES || m->type == RAFT_MSG_INSTALL_SNAPSHOT) {
            /* let a stale leader learn the new term */
            struct raft_msg rep = {0};
            rep.type = RAFT_MSG_APPEND_ENTRIES_RESULT;
            rep.to = m->from;
            rep.term = r->term;
            send_msg(r, &rep);
        } else if (is_rv && m->rv.pre_vote) {
            struct raft_msg rep = {0};
            rep.type = RAFT_MSG_REQUEST_VOTE_RESULT;
            rep.to = m->from;
            rep.term = r->term;
            rep.rvr.pre_vote = 1;
            send_msg(r, &rep);
        }
        return 0;
    }
    switch (m->type) {
    case RAFT_MSG_REQUEST_VOTE:
        recv_rv(r, m);
        break;
    case RAFT_MSG_REQUEST_VOTE_RESULT:
        recv_rvr(r, m);
        break;
    case RAFT_MSG_APPEND_ENTRIES:
        recv_ae(r, m);
        break;
    case RAFT_MSG_APPEND_ENTRIES_RESULT:
        recv_aer(r, m);
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT:
        if (r->role == RAFT_LEADER)
            break;
        if (r->role != RAFT_FOLLOWER || r->leader != m->from)
            become_follower(r, r->term, m->from);
        r->last_leader_contact = now_ms(r);
        reset_election_timer(r);
        recv_snap(r, m);
        break;
    case RAFT_MSG_INSTALL_SNAPSHOT_RESULT:
        recv_snapr(r, m);
        break;
    case RAFT_MSG_TIMEOUT_NOW:
        recv_timeout_now(r, m);
        break;
    }
    check_invariants(r);
    return 0;
}

/* ============================================================================================
 * I/O completions
 * ========================================================================================== */

void raft_io_meta_done(struct raft *r, uint64_t term, uint64_t vote, int status)
{
    if (status != 0) {
        set_failed(r, status, "persist_meta");
        failed_stepdown(r);
        return;
    }
    r->durable_term = term;
    r->durable_vote = vote;
    if (r->failed || meta_dirty(r))
        return;
    flush_deferred(r);
    if (r->role == RAFT_CANDIDATE && r->campaign_pending)
        campaign(r);
    check_invariants(r);
}

void raft_io_append_done(struct raft *r, uint64_t seq, int status)
{
    if (status != 0) {
        set_failed(r, status, "append");
        failed_stepdown(r);
        return;
    }
    if (seq != r->append_done + 1 || seq > r->append_issued) {
        set_failed(r, -EPROTO, "append completion out of order");
        failed_stepdown(r);
        return;
    }
    r->append_done = seq;
    const struct raft_append_req *q = &r->appends[seq % RAFT_MAX_PENDING_APPENDS];
    CURVE_ASSERT(q->seq == seq && r->append_entries_inflight >= q->n);
    r->append_entries_inflight -= q->n;
    if (seq <= r->trunc_seq || r->failed)
        return;
    uint64_t last = q->last;
    if (last <= r->durable)
        return;
    r->durable = min_u64(last, log_last(&r->log));
    if (r->role == RAFT_LEADER)
        maybe_commit(r);
    else if (r->role == RAFT_FOLLOWER && r->leader != 0 && r->f_match > r->f_acked)
        follower_ack(r);
    check_invariants(r);
}

/* ============================================================================================
 * Timers
 * ========================================================================================== */

static void leader_tick(struct raft *r, uint64_t now)
{
    if (r->o.check_quorum && now >= r->cq_deadline) {
        r->cq_deadline = now + r->o.election_timeout_ms;
        uint32_t alive = conf_is_voter(&r->conf, r->id) ? 1 : 0;
        for (uint32_t i = 0; i < r->npr; i++)
            if (r->pr[i].role == RAFT_VOTER &&
                r->pr[i].last_ack_ms + r->o.election_timeout_ms > now)
                alive++;
        if (alive < quorum(r)) {
            CLOG_INFO("raft %llu/%llu: lost contact with a quorum, stepping down",
                      (unsigned long long)r->o.group_id, (unsigned long long)r->id);
            become_follower(r, r->term, 0);
            return;
        }
    }
    if (r->transfer_target != 0 && now >= r->transfer_deadline) {
        CLOG_INFO("raft %llu/%llu: leader transfer to %llu timed out",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)r->transfer_target);
        r->transfer_target = 0;
        r->transfer_sent = false;
    }
    if (now >= r->hb_deadline) {
        r->hb_deadline = now + r->o.heartbeat_ms;
        for (uint32_t i = 0; i < r->npr; i++) {
            struct raft_progress *p = &r->pr[i];
            if (p->state == RAFT_PR_PROBE) {
                p->probe_sent = 0;
            } else if (p->state == RAFT_PR_PIPELINE && p->ninflight > 0 &&
                       now >= p->last_progress_ms + 2 * (uint64_t)r->o.heartbeat_ms) {
                pr_to_probe(p, p->match + 1); /* lost messages: probe again */
            }
            send_append(r, p, true);
            replicate(r, p);
        }
    } else {
        for (uint32_t i = 0; i < r->npr; i++)
            if (r->pr[i].state == RAFT_PR_SNAPSHOT)
                snapshot_pump(r, &r->pr[i]);
    }
    if (r->want_snapshot)
        maybe_snapshot(r, true);
    reads_advance(r);
}

void raft_tick(struct raft *r)
{
    if (r->failed) {
        failed_stepdown(r); /* a failure raised inside another call (e.g. raft_fail) */
        return;
    }
    if (!r->started)
        return;
    uint64_t now = now_ms(r);
    if (r->role == RAFT_LEADER) {
        leader_tick(r, now);
        check_invariants(r);
        return;
    }
    if (now < r->election_deadline)
        return;
    if (!conf_is_voter(&r->conf, r->id) || meta_dirty(r)) {
        reset_election_timer(r);
        return;
    }
    if (r->o.pre_vote)
        become_pre_candidate(r);
    else
        become_candidate(r, false);
    check_invariants(r);
}

/* ============================================================================================
 * Client API
 * ========================================================================================== */

static int leader_append(struct raft *r, uint8_t type, const void *data, uint32_t len)
{
    struct raft_entry e = {.term = r->term, .type = type, .len = len, .data = data};
    if (!append_room(r, 1))
        return CURVE_ERR_BUSY;
    int rc = append_mem(r, &e, NULL);
    if (rc != 0)
        return rc;
    rc = io_append(r, log_last(&r->log), log_last(&r->log));
    if (rc != 0)
        return rc;
    for (uint32_t i = 0; i < r->npr; i++)
        replicate(r, &r->pr[i]);
    return 0;
}

/* Why proposal p (the k-th of its batch, k entries already accepted) cannot be accepted. */
static int propose_check(struct raft *r, const struct raft_prop *p, uint32_t k)
{
    if (p->len > r->o.max_entry_bytes || (p->len && p->data == NULL))
        return -EINVAL;
    if (r->failed)
        return r->failed;
    if (r->role != RAFT_LEADER)
        return CURVE_ERR_NOT_LEADER;
    if (r->transfer_target != 0 || r->nprops + k >= r->o.max_pending_proposals ||
        !append_room(r, (uint64_t)k + 1))
        return CURVE_ERR_BUSY;
    if (r->o.max_log_bytes && r->log.bytes > 0 && r->log.bytes + p->len > r->o.max_log_bytes) {
        /* memory bound: back-pressure until a snapshot compacts the log */
        raft_request_snapshot(r);
        return CURVE_ERR_BUSY;
    }
    return 0;
}

uint32_t raft_propose_batch(struct raft *r, struct raft_prop *p, uint32_t n)
{
    /* Accepted entries go to the in-memory log first; one io->append and one replicate()
     * round then cover all of them (one disk write + fdatasync and one AppendEntries per
     * follower instead of one per proposal). */
    uint64_t first = log_last(&r->log) + 1;
    uint32_t k = 0;
    for (uint32_t i = 0; i < n; i++) {
        p[i].status = propose_check(r, &p[i], k);
        if (p[i].status != 0)
            continue;
        struct raft_entry e = {
            .term = r->term, .type = RAFT_ENTRY_COMMAND, .len = p[i].len, .data = p[i].data};
        p[i].status = append_mem(r, &e, p[i].buf);
        if (p[i].status != 0)
            continue;
        p[i].index = log_last(&r->log);
        p[i].term = r->term;
        k++;
    }
    if (k == 0)
        return 0;
    /* AppendEntries first, then the local append: the followers' write + fdatasync is the
     * critical path of a commit (the leader's own append runs in parallel and counts only as
     * one durable copy), and waking the disk writer may preempt this thread on a small
     * machine. If the local append then fails the node fails and the proposals are refused
     * with that io error; entries already sent may still commit (a client retries
     * idempotently, as after any io error). */
    for (uint32_t i = 0; i < r->npr; i++)
        replicate(r, &r->pr[i]);
    int rc = io_append(r, first, log_last(&r->log));
    if (rc != 0) {
        /* the node is failed now: nothing was accepted, no callback runs */
        for (uint32_t i = 0; i < n; i++)
            if (p[i].status == 0)
                p[i].status = rc;
        return 0;
    }
    for (uint32_t i = 0; i < n; i++) {
        if (p[i].status != 0)
            continue;
        struct raft_proposal *q = prop_at(r, r->nprops++);
        q->index = p[i].index;
        q->term = p[i].term;
        q->cookie = p[i].cookie;
    }
    maybe_commit(r); /* single-voter groups */
    check_invariants(r);
    return k;
}

int raft_propose(struct raft *r, const void *data, uint32_t len, void *cookie, uint64_t *index,
                 uint64_t *term)
{
    struct raft_prop p = {.data = data, .len = len, .cookie = cookie};
    if (raft_propose_batch(r, &p, 1) == 0)
        return p.status;
    if (index)
        *index = p.index;
    if (term)
        *term = p.term;
    return 0;
}

int raft_read_index(struct raft *r, void *cookie)
{
    if (r->failed)
        return r->failed;
    if (r->role != RAFT_LEADER)
        return CURVE_ERR_NOT_LEADER;
    if (r->nreads >= r->o.max_pending_reads)
        return CURVE_ERR_BUSY;
    struct raft_read *rd = read_at(r, r->nreads++);
    rd->index = r->commit >= r->noop_index ? r->commit : 0;
    rd->seq = r->send_seq;
    rd->cookie = cookie;
    broadcast_heartbeat(r); /* confirms leadership with one round (thesis §6.4) */
    return 0; /* completed from a later tick or acknowledgement, never synchronously */
}

static uint64_t lease_ms(const struct raft *r)
{
    return (uint64_t)r->o.election_timeout_ms * (1000 - r->o.max_clock_drift_permille) / 1000;
}

/* Lease expiry in our clock: a quorum acknowledged messages we sent at or after ts (§6.4.1). */
static uint64_t lease_until(struct raft *r)
{
    if (r->role != RAFT_LEADER || r->lease_disabled || !r->o.check_quorum ||
        r->commit < r->noop_index || r->applied < r->noop_index)
        return 0;
    uint64_t ts = quorum_value(r, UINT64_MAX, 2);
    if (ts == UINT64_MAX) /* single voter: always valid */
        return UINT64_MAX;
    return ts ? ts + lease_ms(r) : 0;
}

bool raft_lease_valid(struct raft *r)
{
    if (r->failed)
        return false;
    uint64_t until = lease_until(r); /* 0 (no lease) for most nodes: skip the clock read */
    return until != 0 && now_ms(r) < until;
}

static int conf_change_check(struct raft *r)
{
    if (r->failed)
        return r->failed;
    if (r->role != RAFT_LEADER)
        return CURVE_ERR_NOT_LEADER;
    if (r->transfer_target != 0 || r->conf_index > r->commit || r->commit < r->noop_index)
        return CURVE_ERR_BUSY; /* one change at a time, after our term's first commit */
    return 0;
}

static int append_conf(struct raft *r, const struct raft_config *c)
{
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len = raft_config_encode(c, buf);
    CLOG_INFO("raft %llu/%llu: configuration change at index %llu (%u servers)",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id,
              (unsigned long long)log_last(&r->log) + 1, c->n);
    return leader_append(r, RAFT_ENTRY_CONFIG, buf, (uint32_t)len);
}

int raft_add_learner(struct raft *r, uint64_t id)
{
    int rc = conf_change_check(r);
    if (rc != 0)
        return rc;
    if (id == 0)
        return -EINVAL;
    if (raft_config_get(&r->conf, id))
        return -EEXIST;
    if (r->conf.n >= RAFT_MAX_SERVERS)
        return -ENOSPC;
    struct raft_config c = r->conf;
    c.s[c.n].id = id;
    c.s[c.n].role = RAFT_LEARNER;
    c.n++;
    return append_conf(r, &c);
}

int raft_promote(struct raft *r, uint64_t id)
{
    int rc = conf_change_check(r);
    if (rc != 0)
        return rc;
    const struct raft_server *s = raft_config_get(&r->conf, id);
    if (s == NULL)
        return -ENOENT;
    if (s->role != RAFT_LEARNER)
        return -EINVAL;
    struct raft_progress *p = pr_find(r, id);
    if (p == NULL || p->match + r->o.promote_max_lag < log_last(&r->log))
        return CURVE_ERR_BUSY; /* not caught up yet */
    struct raft_config c = r->conf;
    for (uint32_t i = 0; i < c.n; i++)
        if (c.s[i].id == id)
            c.s[i].role = RAFT_VOTER;
    return append_conf(r, &c);
}

int raft_remove(struct raft *r, uint64_t id)
{
    int rc = conf_change_check(r);
    if (rc != 0)
        return rc;
    const struct raft_server *s = raft_config_get(&r->conf, id);
    if (s == NULL)
        return -ENOENT;
    if (s->role == RAFT_VOTER && conf_nvoters(&r->conf) == 1)
        return -EINVAL;
    struct raft_config c = {0};
    for (uint32_t i = 0; i < r->conf.n; i++)
        if (r->conf.s[i].id != id)
            c.s[c.n++] = r->conf.s[i];
    rc = append_conf(r, &c);
    if (rc == 0)
        maybe_commit(r);
    return rc;
}

int raft_transfer_leader(struct raft *r, uint64_t target)
{
    if (r->failed)
        return r->failed;
    if (r->role != RAFT_LEADER)
        return CURVE_ERR_NOT_LEADER;
    if (r->transfer_target != 0)
        return CURVE_ERR_BUSY;
    struct raft_progress *best = NULL;
    for (uint32_t i = 0; i < r->npr; i++) {
        struct raft_progress *p = &r->pr[i];
        if (p->role != RAFT_VOTER)
            continue;
        if (target ? p->id == target : (best == NULL || p->match > best->match))
            best = p;
    }
    if (best == NULL)
        return target == r->id ? -EALREADY : -EINVAL;
    r->transfer_target = best->id;
    r->transfer_deadline = now_ms(r) + r->o.election_timeout_ms;
    r->transfer_sent = false;
    r->lease_disabled = true; /* the target may win before our lease would have expired */
    if (best->match == log_last(&r->log))
        send_timeout_now(r, best);
    else
        replicate(r, best);
    return 0;
}

int raft_reset_peers(struct raft *r)
{
    if (r->failed)
        return r->failed;
    CLOG_WARN("raft %llu/%llu: FORCED reset to a single-member configuration",
              (unsigned long long)r->o.group_id, (unsigned long long)r->id);
    if (r->role == RAFT_LEADER)
        leader_state_clear(r);
    r->role = RAFT_FOLLOWER;
    r->term++;
    r->vote = r->id;
    persist_meta(r);
    struct raft_config c = {0};
    c.n = 1;
    c.s[0].id = r->id;
    c.s[0].role = RAFT_VOTER;
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    size_t len = raft_config_encode(&c, buf);
    struct raft_entry e = {
        .term = r->term, .type = RAFT_ENTRY_CONFIG, .len = (uint32_t)len, .data = buf};
    int rc = append_mem(r, &e, NULL);
    if (rc == 0)
        rc = io_append(r, log_last(&r->log), log_last(&r->log));
    if (rc != 0)
        return rc;
    become_candidate(r, false);
    return 0;
}

/* ============================================================================================
 * Lifecycle and status
 * ========================================================================================== */

void raft_apply(struct raft *r)
{
    r->apply_yielded = false;
    r->in_apply = true;
    apply_committed(r);
    r->in_apply = false;
    check_invariants(r);
}

bool raft_apply_pending(const struct raft *r)
{
    return r->applied < r->commit && !r->failed;
}

void raft_options_default(struct raft_options *o)
{
    memset(o, 0, sizeof(*o));
    o->election_timeout_ms = 1000;
    o->heartbeat_ms = 100;
    o->max_clock_drift_permille = 50;
    o->pre_vote = true;
    o->check_quorum = true;
    o->max_entry_bytes = 4u << 20;
    o->max_entries_per_msg = 64;
    o->max_bytes_per_msg = 1u << 20;
    o->max_inflight_msgs = 8;
    o->max_pending_proposals = 4096;
    o->max_pending_reads = 1024;
    o->snapshot_threshold = 10000;
    o->snapshot_threshold_bytes = 64u << 20;
    o->snapshot_trailing = 1000;
    o->snapshot_trailing_bytes = 8u << 20;
    o->snapshot_piece_bytes = 256u << 10;
    o->snapshot_max_inflight = 4;
    o->snapshot_bytes_per_sec = 64u << 20;
    o->promote_max_lag = 64;
}

static const char *options_check(const struct raft_options *o)
{
    if (o->id == 0)
        return "id must be non-zero";
    if (o->election_timeout_ms < 2 || o->heartbeat_ms == 0 ||
        o->heartbeat_ms * 2 > o->election_timeout_ms)
        return "need 0 < heartbeat_ms <= election_timeout_ms / 2";
    if (o->max_clock_drift_permille >= 1000)
        return "max_clock_drift_permille must be < 1000";
    if (o->max_entry_bytes == 0 || o->max_entry_bytes > RAFT_MAX_ENTRY_BYTES)
        return "max_entry_bytes out of range";
    if (o->max_entries_per_msg == 0 || o->max_entries_per_msg > RAFT_MAX_ENTRIES_PER_MSG)
        return "max_entries_per_msg out of range";
    if (o->max_inflight_msgs == 0 || o->max_inflight_msgs > RAFT_MAX_INFLIGHT)
        return "max_inflight_msgs out of range";
    if (o->max_pending_proposals == 0 || o->max_pending_reads == 0)
        return "pending bounds must be non-zero";
    if (o->snapshot_piece_bytes == 0 || o->snapshot_piece_bytes > o->max_entry_bytes ||
        o->snapshot_max_inflight == 0 || o->snapshot_max_inflight > RAFT_MAX_PIECES_INFLIGHT)
        return "snapshot piece settings out of range";
    return NULL;
}

int raft_new(const struct raft_options *o, struct raft_io *io, struct raft_fsm *fsm,
             const struct raft_cbs *cbs, struct raft **out)
{
    const char *why = options_check(o);
    if (why == NULL &&
        (io == NULL || io->version != RAFT_IO_VERSION || io->now_ms == NULL || io->random == NULL ||
         io->persist_meta == NULL || io->append == NULL || io->truncate == NULL ||
         io->compact == NULL || io->reset_log == NULL || io->send == NULL))
        why = "incomplete raft_io";
    if (why == NULL && (fsm == NULL || fsm->version != RAFT_FSM_VERSION || fsm->apply == NULL ||
                        (fsm->snapshot_save && (!fsm->snapshot_read || !fsm->install_begin ||
                                                !fsm->install_write || !fsm->install_finish))))
        why = "incomplete raft_fsm";
    if (why != NULL) {
        CLOG_ERROR("raft_new: %s", why);
        return -EINVAL;
    }
    struct raft *r = calloc(1, sizeof(*r));
    if (r == NULL)
        return -ENOMEM;
    r->props = calloc(o->max_pending_proposals, sizeof(*r->props));
    if (r->props == NULL)
        goto err_after_alloc;
    r->reads = calloc(o->max_pending_reads, sizeof(*r->reads));
    if (r->reads == NULL)
        goto err_after_props;
    r->appends = calloc(RAFT_MAX_PENDING_APPENDS, sizeof(*r->appends));
    if (r->appends == NULL)
        goto err_after_reads;
    r->o = *o;
    r->io = io;
    r->fsm = fsm;
    if (cbs)
        r->cbs = *cbs;
    r->id = o->id;
    r->role = RAFT_FOLLOWER;
    *out = r;
    return 0;

err_after_reads:
    free(r->reads);
err_after_props:
    free(r->props);
err_after_alloc:
    free(r);
    return -ENOMEM;
}

int raft_start(struct raft *r, const struct raft_boot *b)
{
    CURVE_ASSERT(!r->started);
    r->term = r->durable_term = b->term;
    r->vote = r->durable_vote = b->vote;
    if (b->n && b->entries == NULL)
        return CURVE_ERR_CORRUPT;
    uint64_t base = 0, base_term = 0;
    if (b->snap) {
        if (b->snap->index == 0 || b->snap->term == 0 || config_validate(&b->snap->conf) != 0)
            return CURVE_ERR_CORRUPT;
        r->has_snap = true;
        r->snap_meta = *b->snap;
        base = b->snap->index;
        base_term = b->snap->term;
    }
    log_reset(&r->log, base, base_term);
    /* keep the loaded entries that continue the snapshot (or start at 1) */
    bool keep = b->n > 0;
    uint64_t last = b->first_index + b->n - 1;
    if (keep && (b->first_index == 0 || b->first_index > base + 1 || last < base))
        keep = false;
    if (keep && b->first_index <= base && base > 0 &&
        b->entries[base - b->first_index].term != base_term)
        keep = false;
    if (!keep && b->n > 0) {
        CLOG_WARN("raft %llu/%llu: log [%llu, %llu] does not continue snapshot %llu: dropped",
                  (unsigned long long)r->o.group_id, (unsigned long long)r->id,
                  (unsigned long long)b->first_index, (unsigned long long)last,
                  (unsigned long long)base);
        if (r->io->reset_log(r->io, base, base_term) != 0)
            return -EIO;
    }
    uint64_t prev_term = base_term;
    if (keep) {
        for (uint64_t i = base + 1; i <= last; i++) {
            const struct raft_entry *e = &b->entries[i - b->first_index];
            struct raft_config c;
            if (e->term < prev_term || e->term == 0 || e->type < RAFT_ENTRY_COMMAND ||
                e->type > RAFT_ENTRY_NOOP || (e->len && e->data == NULL) ||
                (e->type == RAFT_ENTRY_CONFIG && raft_config_decode(e->data, e->len, &c) != 0))
                return CURVE_ERR_CORRUPT;
            if (log_append(&r->log, e, NULL) != 0)
                return -ENOMEM;
            prev_term = e->term;
        }
    }
    r->commit = r->applied = base;
    r->durable = log_last(&r->log);
    if (r->has_snap) {
        r->conf_applied = r->snap_meta.conf;
        r->conf_applied_index = r->snap_meta.conf_index;
    }
    bool meta_changed = false;
    if (log_last_term(&r->log) > r->term) {
        /* entries reached the disk before the term did: adopt it (we sent no vote in it) */
        r->term = log_last_term(&r->log);
        r->vote = 0;
        meta_changed = true;
    }
    r->started = true;
    uint64_t now = now_ms(r);
    r->last_leader_contact = now; /* no vote for a candidate for one timeout after a restart */
    r->leader = 0;
    if (!r->has_snap && r->log.n == 0 && b->bootstrap) {
        if (config_validate(b->bootstrap) != 0 || b->bootstrap->n == 0)
            return -EINVAL;
        if (r->term < 1) {
            r->term = 1;
            meta_changed = true;
        }
        uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
        size_t len = raft_config_encode(b->bootstrap, buf);
        struct raft_entry e = {
            .term = 1, .type = RAFT_ENTRY_CONFIG, .len = (uint32_t)len, .data = buf};
        if (log_append(&r->log, &e, NULL) != 0)
            return -ENOMEM;
        if (io_append(r, 1, 1) != 0)
            return -EIO;
    }
    if (meta_changed)
        persist_meta(r);
    conf_recompute(r);
    reset_election_timer(r);
    /* a node alone in its configuration need not wait for a timeout */
    if (conf_is_voter(&r->conf, r->id) && conf_nvoters(&r->conf) == 1)
        r->election_deadline = now;
    return r->failed;
}

void raft_free(struct raft *r)
{
    if (r == NULL)
        return;
    while (r->nprops > 0)
        prop_done_front(r, CURVE_ERR_SHUTDOWN);
    reads_fail_all(r, CURVE_ERR_SHUTDOWN);
    pr_clear(r);
    inst_abort(r);
    snap_unref(r->snap);
    log_free(&r->log);
    free(r->appends);
    free(r->reads);
    free(r->props);
    free(r);
}

void raft_status(struct raft *r, struct raft_status *st)
{
    memset(st, 0, sizeof(*st));
    st->role = (uint8_t)r->role;
    st->id = r->id;
    st->term = r->term;
    st->vote = r->vote;
    st->leader = r->leader;
    st->commit = r->commit;
    st->applied = r->applied;
    st->last_index = log_last(&r->log);
    st->first_index = r->log.offset + 1;
    st->durable = r->durable;
    st->log_bytes = r->log.bytes;
    st->snapshot_index = r->has_snap ? r->snap_meta.index : 0;
    st->snapshot_term = r->has_snap ? r->snap_meta.term : 0;
    uint64_t until = lease_until(r), now = now_ms(r);
    st->lease_remaining_ms = until == UINT64_MAX ? INT64_MAX
                             : until > now       ? (int64_t)(until - now)
                                                 : 0;
    st->failed = r->failed;
    st->follower_refused = r->follower_refused;
    for (uint32_t i = 0; i < r->conf.n; i++) {
        struct raft_peer_status *ps = &st->peers[st->npeers++];
        ps->id = r->conf.s[i].id;
        ps->role = r->conf.s[i].role;
        const struct raft_progress *p = pr_find(r, ps->id);
        if (p) {
            ps->match = p->match;
            ps->next = p->next;
            ps->progress = p->state;
            ps->last_ack_ms = p->last_ack_ms;
        }
    }
}

int raft_role(const struct raft *r)
{
    return r->role;
}
uint64_t raft_term(const struct raft *r)
{
    return r->term;
}
uint64_t raft_leader(const struct raft *r)
{
    return r->leader;
}
uint64_t raft_commit_index(const struct raft *r)
{
    return r->commit;
}
uint64_t raft_applied_index(const struct raft *r)
{
    return r->applied;
}
uint64_t raft_last_index(const struct raft *r)
{
    return log_last(&r->log);
}
uint64_t raft_term_at(const struct raft *r, uint64_t index)
{
    return log_term_at(&r->log, index);
}
const struct raft_entry *raft_entry_at(const struct raft *r, uint64_t index)
{
    return log_get(&r->log, index);
}
const struct raft_config *raft_config(const struct raft *r)
{
    return &r->conf;
}
int raft_failed(const struct raft *r)
{
    return r->failed;
}

int raft_fail(struct raft *r, int err)
{
    set_failed(r, err < 0 ? err : -EIO, "storage (reported by the owner)");
    return r->failed;
}
void *raft_cbs_data(const struct raft *r)
{
    return r->cbs.data;
}

uint64_t raft_log_bytes(const struct raft *r)
{
    return r->log.bytes;
}

uint64_t raft_unsnapshotted_bytes(const struct raft *r)
{
    return r->applied_bytes;
}

void raft_request_snapshot(struct raft *r)
{
    if (!r->started || r->failed)
        return;
    uint64_t base = r->has_snap ? r->snap_meta.index : 0;
    if (r->applied > base)
        maybe_snapshot(r, true);
}
