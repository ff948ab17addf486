/* Copyset manager: create/load/remove copysets over the Raft host (see chunkserver.h). */
#include "chunkserver/cs_internal.h"

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/assert.h"
#include "common/clock.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"

#define CS_PEERS_FILE "cs_peers"
#define CS_PEERS_MAGIC 0x53524550u /* "PEERS" */

/* ---- peers ------------------------------------------------------------------------------ */

int cs_peer_parse(const char *s, uint64_t *id)
{
    if (s == NULL || strlen(s) >= CS_PEER_STR_MAX)
        return -EINVAL;
    char buf[CS_PEER_STR_MAX];
    snprintf(buf, sizeof(buf), "%s", s);
    char *c1 = strchr(buf, ':');
    if (c1 == NULL)
        return -EINVAL;
    *c1 = '\0';
    char *ps = c1 + 1;
    char *c2 = strchr(ps, ':');
    if (c2 != NULL) {
        *c2 = '\0';
        char *end;
        errno = 0;
        unsigned long idx = strtoul(c2 + 1, &end, 10);
        if (*end != '\0' || c2[1] == '\0' || errno != 0 || idx > 65535)
            return -EINVAL;
    }
    struct in_addr a;
    if (inet_pton(AF_INET, buf, &a) != 1)
        return -EINVAL;
    char *end;
    errno = 0;
    unsigned long port = strtoul(ps, &end, 10);
    if (*ps == '\0' || *end != '\0' || errno != 0 || port == 0 || port > 65535)
        return -EINVAL;
    *id = ((uint64_t)ntohl(a.s_addr) << 16) | port;
    return 0;
}

void cs_peer_format(uint64_t id, bool with_index, char *buf, size_t len)
{
    uint32_t ip = (uint32_t)(id >> 16);
    snprintf(buf, len, "%u.%u.%u.%u:%u%s", ip >> 24, (ip >> 16) & 255, (ip >> 8) & 255, ip & 255,
             (unsigned)(id & 0xffff), with_index ? ":0" : "");
}

void cs__learn_peer(cs_mgr *m, uint64_t id)
{
    char addr[CS_PEER_STR_MAX];
    if (id == 0 || (id >> 16) == 0)
        return;
    cs_peer_format(id, false, addr, sizeof(addr));
    (void)raftrt_host_set_peer(m->host, id, addr);
}

/* cs_peers file: u32 magic, u32 len, encoded raft_config, u32 crc32c of everything before. */
static int peers_store(const char *dir, const struct raft_config *c)
{
    uint8_t buf[8 + RAFT_CONFIG_ENCODED_MAX + 4];
    size_t n = raft_config_encode(c, buf + 8);
    cs__put32(buf, CS_PEERS_MAGIC);
    cs__put32(buf + 4, (uint32_t)n);
    cs__put32(buf + 8 + n, curve_crc32c(0, buf, 8 + n));
    char path[PATH_MAX + 16], tmp[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", dir, CS_PEERS_FILE);
    snprintf(tmp, sizeof(tmp), "%s/%s.tmp", dir, CS_PEERS_FILE);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0)
        return -errno;
    int rc = 0;
    if (write(fd, buf, 12 + n) != (ssize_t)(12 + n) || fdatasync(fd) != 0)
        rc = errno ? -errno : -EIO;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = cs__fsync_dir(dir);
    return rc;
}

/* Returns 0 (c filled; c->n == 0 when the copyset joins as a learner), -ENOENT or CORRUPT. */
static int peers_load(const char *dir, struct raft_config *c)
{
    char path[PATH_MAX + 16];
    snprintf(path, sizeof(path), "%s/%s", dir, CS_PEERS_FILE);
    uint8_t buf[8 + RAFT_CONFIG_ENCODED_MAX + 4 + 1];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return -errno;
    ssize_t n = read(fd, buf, sizeof(buf));
    close(fd);
    if (n < 0)
        return -errno;
    return cs_peers_decode(buf, (size_t)n, c);
}

int cs_peers_decode(const uint8_t *buf, size_t n, struct raft_config *c)
{
    if (buf == NULL || n < 12)
        return CURVE_ERR_CORRUPT;
    uint32_t len = cs__get32(buf + 4);
    if (cs__get32(buf) != CS_PEERS_MAGIC || len > RAFT_CONFIG_ENCODED_MAX ||
        n != 12u + len || cs__get32(buf + 8 + len) != curve_crc32c(0, buf, 8 + len))
        return CURVE_ERR_CORRUPT;
    memset(c, 0, sizeof(*c));
    if (len == 2 && buf[9] == 0)
        return 0; /* empty: learner */
    return raft_config_decode(buf + 8, len, c);
}

/* ---- helpers ---------------------------------------------------------------------------- */

void cs__put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

uint32_t cs__get32(const uint8_t *p)
{
    return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16) |
           ((uint32_t)p[3] << 24);
}

int cs__fsync_dir(const char *dir)
{
    return curve_fsync_dir(dir);
}

static int mkdir_p(const char *dir)
{
    if (mkdir(dir, 0755) != 0 && errno != EEXIST)
        return -errno;
    return 0;
}

static uint32_t slot_of(uint64_t gid)
{
    uint64_t h = gid * 0x9e3779b97f4a7c15ull;
    return (uint32_t)(h >> 40) % CS_MGR_MAX_COPYSETS;
}

/* Table lookups: caller holds m->lock. Open addressing with linear probing. */
cs_copyset *cs__find_locked(cs_mgr *m, uint64_t gid)
{
    uint32_t s = slot_of(gid);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        cs_copyset *c = m->table[(s + i) % CS_MGR_MAX_COPYSETS];
        if (c == NULL)
            return NULL;
        if (c != CS_TOMBSTONE && c->gid == gid)
            return c;
    }
    return NULL;
}

cs_copyset *cs__get(cs_mgr *m, uint64_t gid)
{
    pthread_rwlock_rdlock(&m->lock);
    cs_copyset *cs = cs__find_locked(m, gid);
    if (cs != NULL)
        atomic_fetch_add(&cs->refs, 1);
    pthread_rwlock_unlock(&m->lock);
    return cs;
}

void cs__put(cs_copyset *cs)
{
    CURVE_ASSERT(atomic_fetch_sub(&cs->refs, 1) > 0);
}

static int table_insert(cs_mgr *m, cs_copyset *cs)
{
    uint32_t s = slot_of(cs->gid);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        cs_copyset **p = &m->table[(s + i) % CS_MGR_MAX_COPYSETS];
        if (*p == NULL || *p == CS_TOMBSTONE) {
            *p = cs;
            m->count++;
            return 0;
        }
    }
    return -ENOSPC;
}

static void table_remove(cs_mgr *m, cs_copyset *cs)
{
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        if (m->table[i] == cs) {
            m->table[i] = CS_TOMBSTONE;
            m->count--;
            return;
        }
    }
    CURVE_UNREACHABLE();
}

/* ---- raftrt fsm glue -------------------------------------------------------------------- */

static int glue_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    cs_copyset *cs = ctx;
    if (e->type == RAFT_ENTRY_CONFIG) {
        struct raft_config c;
        if (raft_config_decode(e->data, e->len, &c) == 0) {
            for (uint32_t i = 0; i < c.n; i++)
                cs__learn_peer(cs->mgr, c.s[i].id);
        }
    }
    uint64_t t0 = curve_now_mono_ns();
    int rc = cs_fsm_apply(cs->fsm, index, e);
    if (cs->mgr->m_apply_lat != NULL)
        curve_latency_record(cs->mgr->m_apply_lat, (curve_now_mono_ns() - t0) / 1000);
    return rc;
}

typedef struct snap_job {
    cs_copyset *cs;
    raftrt_group *g;
    struct raft_snapshot_meta meta;
    uint64_t epoch;
} snap_job;

static int snap_work(void *arg)
{
    snap_job *j = arg;
    cs_fsm_snap *s = NULL;
    int rc = cs_fsm_snapshot_build(j->cs->fsm, &j->meta, j->epoch, &s);
    raftrt_snapshot_saved(j->g, j->meta.index, rc, rc == 0 ? cs_fsm_snap_manifest(s) : NULL);
    cs_fsm_snap_free(s);
    return rc;
}

static void snap_done(void *arg, int result)
{
    snap_job *j = arg;
    if (result == -ECANCELED) /* never ran: tell the core */
        raftrt_snapshot_saved(j->g, j->meta.index, result, NULL);
    atomic_fetch_sub(&j->cs->snap_pending, 1);
    free(j);
}

static int glue_snapshot_save(void *ctx, raftrt_group *g, const struct raft_snapshot_meta *meta)
{
    cs_copyset *cs = ctx;
    snap_job *j = calloc(1, sizeof(*j));
    if (j == NULL)
        return -ENOMEM;
    j->cs = cs;
    j->g = g;
    j->meta = *meta;
    j->epoch = cs_fsm_epoch(cs->fsm); /* on the loop: the epoch as of meta->index */
    atomic_fetch_add(&cs->snap_pending, 1);
    int rc = curve_workpool_submit(cs->mgr->snap_wp, raftrt_group_loop(g), snap_work, snap_done,
                                   j);
    if (rc != 0) {
        atomic_fetch_sub(&cs->snap_pending, 1);
        free(j);
    }
    return rc;
}

static int glue_snapshot_read(void *ctx, const char *name, uint64_t off, void *buf, uint32_t len)
{
    cs_copyset *cs = ctx;
    return cs_fsm_snapshot_read(cs->fsm, name, off, buf, len);
}

static int glue_install_begin(void *ctx, const struct raft_snapshot_meta *meta,
                              const struct raft_manifest *mf)
{
    cs_copyset *cs = ctx;
    return cs_fsm_install_begin(cs->fsm, meta, mf);
}

static int glue_install_write(void *ctx, const char *name, uint64_t off, const void *buf,
                              uint32_t len)
{
    cs_copyset *cs = ctx;
    return cs_fsm_install_write(cs->fsm, name, off, buf, len);
}

static int glue_install_finish(void *ctx, const struct raft_snapshot_meta *meta,
                               const struct raft_manifest *mf)
{
    cs_copyset *cs = ctx;
    for (uint32_t i = 0; i < meta->conf.n; i++)
        cs__learn_peer(cs->mgr, meta->conf.s[i].id);
    return cs_fsm_install_finish(cs->fsm, meta, mf);
}

static void glue_install_abort(void *ctx)
{
    cs_copyset *cs = ctx;
    cs_fsm_install_abort(cs->fsm);
}

static void post_handoff(void *arg, raftrt_group *g, bool alive);

static void glue_state_changed(void *ctx, int role, uint64_t term, uint64_t leader)
{
    cs_copyset *cs = ctx;
    /* term before role: a reader that sees the new role then reads the new term */
    atomic_store(&cs->term, term);
    atomic_store(&cs->leader, leader);
    int old = atomic_exchange(&cs->role, role);
    cs__learn_peer(cs->mgr, leader);
    if (old != role)
        CLOG_INFO("copyset %u.%u: %s in term %" PRIu64 " (leader %" PRIx64 ")", cs->pool, cs->id,
                  raft_role_name(role), term, leader);
    /* Leadership regained (an operator's or the MDS's transfer, an election) while this
     * chunkserver is handing its leaderships over for a slow disk: hand it over again, at most
     * once per copyset and cooldown, so that two slow replicas cannot toss it back and forth. */
    cs_mgr *m = cs->mgr;
    if (old == role || role != RAFT_LEADER || cs->group == NULL || !atomic_load(&m->slow_active))
        return;
    uint64_t now = curve_now_mono_ms();
    if (now - atomic_load(&m->slow_last_ms) < m->o.slow_handoff_cooldown_ms &&
        (cs->slow_regain_ms == 0 || now - cs->slow_regain_ms >= m->o.slow_handoff_cooldown_ms)) {
        cs->slow_regain_ms = now;
        if (raftrt_group_post(cs->group, post_handoff, m) == 0)
            CLOG_WARN("copyset %u.%u: leader again while the disk is slow: handing over again",
                      cs->pool, cs->id);
    }
}

/* The copyset's Raft node stopped on a storage error. A failure of the log or term/vote store
 * (same disk as the chunks) fails the whole disk: every other copyset then stops too
 * (cs_mgr_disk_failed through the pool's fail hook) and IO is refused with DISK_FAIL. */
static void glue_failed(void *ctx, int err)
{
    cs_copyset *cs = ctx;
    CLOG_ERROR("copyset %u.%u: Raft node stopped: %s", cs->pool, cs->id, curve_strerror(err));
    if (err == -EIO || err == -ENOSPC || err == -EROFS || err == -EDQUOT ||
        err == CURVE_ERR_DISK_FAIL)
        curve_cfp_mark_failed(cs->mgr->pool, err);
}

static void post_fail(void *arg, raftrt_group *g, bool alive)
{
    if (alive)
        (void)raft_fail(raftrt_group_raft(g), (int)(intptr_t)arg);
}

/* Posts fn(arg) to the loop of every open copyset's group; returns how many were posted. Any
 * thread; never blocks on a group. */
static uint32_t post_all(cs_mgr *m, void (*fn)(void *arg, raftrt_group *g, bool alive), void *arg)
{
    uint32_t n = 0;
    pthread_rwlock_rdlock(&m->lock);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        cs_copyset *cs = m->table[i];
        if (cs == NULL || cs == CS_TOMBSTONE || cs->group == NULL)
            continue;
        if (raftrt_group_post(cs->group, fn, arg) == 0)
            n++;
    }
    pthread_rwlock_unlock(&m->lock);
    return n;
}

/* ---- slow disk: hand leaderships over (docs/chunkserver.md "Slow disk") ---------------- */

static void post_handoff(void *arg, raftrt_group *g, bool alive)
{
    cs_mgr *m = arg;
    if (!alive)
        return;
    struct raft *r = raftrt_group_raft(g);
    if (raft_role(r) != RAFT_LEADER)
        return;
    if (raft_transfer_leader(r, 0) == 0) /* to the most up-to-date voter */
        atomic_fetch_add(&m->slow_transfers, 1);
}

/* Chunk-store write observer (curve_chunkstore_opts.on_write): any thread, must not block. */
static void on_chunk_write(void *arg, uint64_t dur_us, bool ok)
{
    cs_mgr *m = arg;
    if (!ok || m->o.slow_write_ms == 0)
        return;
    if (dur_us < (uint64_t)m->o.slow_write_ms * 1000) {
        if (atomic_load_explicit(&m->slow_streak, memory_order_relaxed) != 0)
            atomic_store(&m->slow_streak, 0);
        /* the disk is fast again only after as many fast writes in a row as it took slow ones
         * to hand over: one lucky write of an intermittently slow disk does not invite the
         * leaders back */
        if (atomic_load_explicit(&m->slow_active, memory_order_relaxed) &&
            atomic_fetch_add(&m->fast_streak, 1) + 1 >= m->o.slow_write_count) {
            atomic_store(&m->slow_active, false);
            atomic_store(&m->fast_streak, 0);
        }
        return;
    }
    if (atomic_load_explicit(&m->fast_streak, memory_order_relaxed) != 0)
        atomic_store(&m->fast_streak, 0);
    uint32_t n = atomic_fetch_add(&m->slow_streak, 1) + 1;
    if (n < m->o.slow_write_count)
        return;
    uint64_t now = curve_now_mono_ms(), last = atomic_load(&m->slow_last_ms);
    if (last != 0 && now - last < m->o.slow_handoff_cooldown_ms)
        return;
    if (!atomic_compare_exchange_strong(&m->slow_last_ms, &last, now))
        return; /* another thread is handing over */
    atomic_store(&m->slow_streak, 0);
    atomic_store(&m->slow_active, true);
    atomic_fetch_add(&m->slow_handoffs, 1);
    uint32_t posted = post_all(m, post_handoff, m);
    CLOG_WARN("slow disk: %u chunk writes in a row took >= %u ms (the last %" PRIu64
              " ms): handing over the leadership of the copysets this chunkserver leads (%u "
              "checked; again at most every %" PRIu64 " s)",
              n, m->o.slow_write_ms, dur_us / 1000, posted,
              m->o.slow_handoff_cooldown_ms / 1000);
}

void cs_mgr_disk_failed(cs_mgr *m, int err)
{
    uint32_t n = post_all(m, post_fail, (void *)(intptr_t)err);
    CLOG_ERROR("disk failed (%s): stopping the Raft nodes of %u copysets", curve_strerror(err), n);
}

/* ---- open / close ----------------------------------------------------------------------- */

static void copyset_free(cs_copyset *cs)
{
    if (cs == NULL)
        return;
    /* Service work and snapshot jobs hold the group and the fsm: wait for them. Both are
     * bounded (membership steps by CS_CLI_CHANGE_DEADLINE_MS, snapshot jobs by their IO; their
     * completions run on the group loop, which keeps running). */
    while (atomic_load(&cs->snap_pending) > 0 || atomic_load(&cs->refs) > 0)
        usleep(1000);
    if (cs->group != NULL)
        raftrt_group_stop(cs->group);
    cs_fsm_close(cs->fsm);
    curve_chunkstore_close(cs->store);
    free(cs);
}

/* Opens copyset gid from its directory; `boot` (may be NULL) are the initial voters. */
static int copyset_open(cs_mgr *m, uint64_t gid, const struct raft_config *boot,
                        cs_copyset **out)
{
    cs_copyset *cs = calloc(1, sizeof(*cs));
    if (cs == NULL)
        return -ENOMEM;
    cs->mgr = m;
    cs->gid = gid;
    cs->pool = (uint32_t)(gid >> 32);
    cs->id = (uint32_t)gid;
    char p[PATH_MAX + 64];
    int rc = raftrt_group_path(m->copysets_dir, gid, NULL, cs->dir, sizeof(cs->dir));
    if (rc == 0)
        rc = mkdir_p(cs->dir);
    if (rc != 0)
        goto err_after_alloc;
    snprintf(p, sizeof(p), "%s/data", cs->dir);
    curve_chunkstore_opts so = {.data_dir = p,
                                .pool = m->pool,
                                .io_align = m->io_align,
                                .on_write = on_chunk_write,
                                .on_write_arg = m};
    rc = curve_chunkstore_open(&so, &cs->store);
    if (rc != 0)
        goto err_after_alloc;
    snprintf(p, sizeof(p), "%s/snapshot", cs->dir);
    cs_fsm_opts fo = {.group_id = gid, .store = cs->store, .snapshot_dir = p,
                      .epoch_seen = cs__epoch_note, .epoch_arg = m};
    rc = cs_fsm_open(&fo, &cs->fsm);
    if (rc != 0)
        goto err_after_store;
    raftrt_fsm ufsm = {
        .ctx = cs,
        .apply = glue_apply,
        .snapshot_save = glue_snapshot_save,
        .snapshot_read = glue_snapshot_read,
        .install_begin = glue_install_begin,
        .install_write = glue_install_write,
        .install_finish = glue_install_finish,
        .install_abort = glue_install_abort,
        .state_changed = glue_state_changed,
        .failed = glue_failed,
    };
    raftrt_group_opts go;
    raftrt_group_opts_default(&go);
    go.group_id = gid;
    go.data_dir = m->copysets_dir;
    go.bootstrap = (boot != NULL && boot->n > 0) ? boot : NULL;
    go.fsm = &ufsm;
    go.log_segment_bytes = m->o.log_segment_bytes;
    if (m->o.election_timeout_ms)
        go.raft.election_timeout_ms = m->o.election_timeout_ms;
    if (m->o.heartbeat_ms)
        go.raft.heartbeat_ms = m->o.heartbeat_ms;
    if (m->o.snapshot_threshold)
        go.raft.snapshot_threshold = m->o.snapshot_threshold;
    if (m->o.snapshot_trailing)
        go.raft.snapshot_trailing = m->o.snapshot_trailing;
    if (m->o.snapshot_threshold_bytes)
        go.raft.snapshot_threshold_bytes = m->o.snapshot_threshold_bytes;
    if (m->o.snapshot_trailing_bytes)
        go.raft.snapshot_trailing_bytes = m->o.snapshot_trailing_bytes;
    go.raft.max_log_bytes = m->o.max_log_bytes;
    if (m->o.snapshot_bytes_per_sec)
        go.raft.snapshot_bytes_per_sec = m->o.snapshot_bytes_per_sec;
    if (boot != NULL) {
        for (uint32_t i = 0; i < boot->n; i++)
            cs__learn_peer(m, boot->s[i].id);
    }
    rc = raftrt_group_open(m->host, &go, &cs->group);
    if (rc != 0)
        goto err_after_fsm;
    /* A restarted group's configuration may come from entries before its snapshot (never
     * applied again) or not yet applied: learn its members' addresses now, or a leader never
     * contacts a member added before the last snapshot. */
    struct raft_status *st = malloc(sizeof(*st));
    if (st != NULL) {
        raftrt_group_status(cs->group, st);
        for (uint32_t i = 0; i < st->npeers && i < RAFT_MAX_SERVERS; i++)
            cs__learn_peer(m, st->peers[i].id);
        free(st);
    }
    *out = cs;
    return 0;
err_after_fsm:
    cs_fsm_close(cs->fsm);
err_after_store:
    curve_chunkstore_close(cs->store);
err_after_alloc:
    CLOG_ERROR("copyset %" PRIu64 ": cannot open in %s: %s", gid, cs->dir, curve_strerror(rc));
    free(cs);
    return rc;
}

int cs_mgr_create(cs_mgr *m, uint32_t pool, uint32_t id, const uint64_t *peers, uint32_t n)
{
    if (n > RAFT_MAX_SERVERS || (n > 0 && peers == NULL))
        return -EINVAL;
    uint64_t gid = ((uint64_t)pool << 32) | id;
    struct raft_config boot = {.n = n};
    for (uint32_t i = 0; i < n; i++) {
        boot.s[i].id = peers[i];
        boot.s[i].role = RAFT_VOTER;
        for (uint32_t k = 0; k < i; k++) {
            if (peers[k] == peers[i])
                return -EINVAL;
        }
    }
    if (curve_cfp_failed(m->pool) != 0)
        return CURVE_ERR_DISK_FAIL;
    pthread_mutex_lock(&m->admin_lock);
    pthread_rwlock_rdlock(&m->lock);
    bool exists = cs__find_locked(m, gid) != NULL;
    bool full = m->count >= CS_MGR_MAX_COPYSETS * 3 / 4;
    pthread_rwlock_unlock(&m->lock);
    int rc = 0;
    if (exists)
        goto out;
    if (full) {
        rc = -ENOSPC;
        goto out;
    }
    char dir[PATH_MAX];
    rc = raftrt_group_path(m->copysets_dir, gid, NULL, dir, sizeof(dir));
    if (rc == 0)
        rc = mkdir_p(dir);
    if (rc == 0)
        rc = peers_store(dir, &boot);
    cs_copyset *cs = NULL;
    if (rc == 0)
        rc = copyset_open(m, gid, &boot, &cs);
    if (rc == 0) {
        pthread_rwlock_wrlock(&m->lock);
        rc = table_insert(m, cs);
        pthread_rwlock_unlock(&m->lock);
        if (rc != 0)
            copyset_free(cs);
        else
            CLOG_INFO("copyset %u.%u created (%u peers)", pool, id, n);
    }
out:
    pthread_mutex_unlock(&m->admin_lock);
    return rc;
}

static int load_cb(void *arg, uint64_t gid)
{
    cs_mgr *m = arg;
    char dir[PATH_MAX];
    int rc = raftrt_group_path(m->copysets_dir, gid, NULL, dir, sizeof(dir));
    if (rc != 0)
        return rc;
    struct raft_config boot;
    rc = peers_load(dir, &boot);
    if (rc == -ENOENT) {
        /* A crash between mkdir and writing cs_peers in cs_mgr_create: nothing was ever
         * acknowledged in it. Set it aside instead of refusing to start. */
        char dst[PATH_MAX + 64];
        snprintf(dst, sizeof(dst), "%s/%" PRIu64 ".%" PRIu64, m->recycler_dir, gid,
                 curve_now_wall_ns() / 1000000u);
        CLOG_WARN("copyset %" PRIu64 ": %s has no %s (interrupted create): moved to %s", gid,
                  dir, CS_PEERS_FILE, dst);
        return rename(dir, dst) == 0 ? 0 : -errno;
    }
    if (rc != 0) {
        CLOG_ERROR("copyset %" PRIu64 ": bad %s/%s: %s", gid, dir, CS_PEERS_FILE,
                   curve_strerror(rc));
        return rc;
    }
    cs_copyset *cs = NULL;
    rc = copyset_open(m, gid, &boot, &cs);
    if (rc != 0)
        return rc;
    pthread_rwlock_wrlock(&m->lock);
    rc = table_insert(m, cs);
    pthread_rwlock_unlock(&m->lock);
    if (rc != 0)
        copyset_free(cs);
    return rc;
}

int cs_mgr_load_all(cs_mgr *m)
{
    pthread_mutex_lock(&m->admin_lock);
    int rc = raftrt_scan_groups(m->copysets_dir, load_cb, m);
    pthread_mutex_unlock(&m->admin_lock);
    CLOG_INFO("loaded %u copysets from %s", cs_mgr_copyset_count(m), m->copysets_dir);
    return rc;
}

int cs_mgr_remove(cs_mgr *m, uint32_t pool, uint32_t id)
{
    uint64_t gid = ((uint64_t)pool << 32) | id;
    pthread_mutex_lock(&m->admin_lock);
    pthread_rwlock_wrlock(&m->lock);
    cs_copyset *cs = cs__find_locked(m, gid);
    if (cs != NULL)
        table_remove(m, cs);
    pthread_rwlock_unlock(&m->lock);
    int rc = 0;
    if (cs == NULL) {
        rc = CURVE_ERR_COPYSET_NOTEXIST;
        goto out;
    }
    /* Requests that found it hold no reference past their submit: stopping the group fails
     * whatever is pending with CURVE_ERR_SHUTDOWN. */
    char dir[PATH_MAX], dst[PATH_MAX + 64];
    snprintf(dir, sizeof(dir), "%s", cs->dir);
    copyset_free(cs);
    snprintf(dst, sizeof(dst), "%s/%" PRIu64 ".%" PRIu64, m->recycler_dir, gid,
             curve_now_wall_ns() / 1000000u);
    if (rename(dir, dst) != 0) {
        rc = -errno;
        CLOG_ERROR("copyset %u.%u: cannot move %s to %s: %s", pool, id, dir, dst,
                   curve_strerror(rc));
    } else {
        rc = cs__fsync_dir(m->copysets_dir);
        CLOG_INFO("copyset %u.%u removed to %s", pool, id, dst);
    }
out:
    pthread_mutex_unlock(&m->admin_lock);
    return rc;
}

int cs_mgr_copyset_epoch(cs_mgr *m, uint32_t pool, uint32_t id, uint64_t *epoch,
                         uint64_t *leader)
{
    cs_copyset *cs = cs__get(m, ((uint64_t)pool << 32) | id);
    if (cs == NULL)
        return CURVE_ERR_COPYSET_NOTEXIST;
    *epoch = cs_fsm_epoch(cs->fsm);
    if (leader != NULL)
        *leader = atomic_load(&cs->role) == RAFT_LEADER ? m->self_id : atomic_load(&cs->leader);
    cs__put(cs);
    return 0;
}

static int rm_cb(const char *p, const struct stat *sb, int fl, struct FTW *ftw)
{
    (void)sb;
    (void)fl;
    (void)ftw;
    return remove(p);
}

int cs_mgr_purge_recycler(cs_mgr *m, uint64_t age_ms)
{
    DIR *d = opendir(m->recycler_dir);
    if (d == NULL)
        return -errno;
    uint64_t now = curve_now_wall_ns() / 1000000u;
    int purged = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        uint64_t gid, ts;
        if (sscanf(de->d_name, "%" SCNu64 ".%" SCNu64, &gid, &ts) != 2 || ts + age_ms > now)
            continue;
        char dir[PATH_MAX + 300], data[PATH_MAX + 310];
        snprintf(dir, sizeof(dir), "%s/%s", m->recycler_dir, de->d_name);
        snprintf(data, sizeof(data), "%s/data", dir);
        DIR *dd = opendir(data);
        int rc = 0;
        if (dd != NULL) {
            struct dirent *ce;
            while (rc == 0 && (ce = readdir(dd)) != NULL) {
                uint64_t cid;
                if (cs_fsm__parse_chunk_name(ce->d_name, &cid) != 0)
                    continue;
                char cp[PATH_MAX + 700];
                snprintf(cp, sizeof(cp), "%s/%s", data, ce->d_name);
                rc = curve_cfp_put(m->pool, cp);
            }
            closedir(dd);
        }
        if (rc == 0 && nftw(dir, rm_cb, 16, FTW_DEPTH | FTW_PHYS) == 0)
            purged++;
    }
    closedir(d);
    return purged;
}

/* ---- manager ---------------------------------------------------------------------------- */

static double gauge_copysets(void *ctx)
{
    return (double)cs_mgr_copyset_count(ctx);
}

static double gauge_leaders(void *ctx)
{
    return (double)cs_mgr_leader_count(ctx);
}

static double gauge_inflight(void *ctx)
{
    cs_mgr *m = ctx;
    return (double)atomic_load(&m->inflight);
}

static void metrics_init(cs_mgr *m)
{
    curve_metrics *r = m->o.metrics;
    if (r == NULL)
        return;
    static const char *ops[CS_OP_MAX] = {"write", "read", "delete", "get_info"};
    for (int i = 0; i < CS_OP_MAX; i++) {
        const char *lab[] = {"op", ops[i], NULL};
        (void)curve_metrics_latency(r, "curve_chunkserver_op_latency_seconds",
                                    "chunk request latency by op", lab, NULL, 0, &m->m_lat[i]);
        (void)curve_metrics_rate(r, "curve_chunkserver_op_rate", "chunk requests per second",
                                 lab, NULL, 0, &m->m_iops[i]);
        (void)curve_metrics_counter(r, "curve_chunkserver_op_bytes_total", "chunk bytes by op",
                                    lab, &m->m_bytes[i]);
        (void)curve_metrics_counter(r, "curve_chunkserver_op_errors_total",
                                    "chunk requests that failed", lab, &m->m_errors[i]);
    }
    (void)curve_metrics_counter(r, "curve_chunkserver_overload_total",
                                "requests refused with OVERLOAD", NULL, &m->m_overload);
    (void)curve_metrics_latency(r, "curve_chunkserver_raft_apply_latency_seconds",
                                "state machine apply time per entry", NULL, NULL, 0,
                                &m->m_apply_lat);
    (void)curve_metrics_latency(r, "curve_chunkserver_raft_commit_latency_seconds",
                                "propose to apply (log append + replication + commit)", NULL,
                                NULL, 0, &m->m_commit_lat);
    (void)curve_metrics_gauge_fn(r, "curve_chunkserver_copysets", "copysets on this server",
                                 NULL, gauge_copysets, m, &m->m_g[0]);
    (void)curve_metrics_gauge_fn(r, "curve_chunkserver_leaders", "copysets led by this server",
                                 NULL, gauge_leaders, m, &m->m_g[1]);
    (void)curve_metrics_gauge_fn(r, "curve_chunkserver_inflight", "chunk requests in progress",
                                 NULL, gauge_inflight, m, &m->m_g[2]);
}

static void metrics_fini(cs_mgr *m)
{
    for (int i = 0; i < CS_OP_MAX; i++) {
        curve_latency_unregister(m->m_lat[i]);
        curve_rate_unregister(m->m_iops[i]);
        curve_counter_unregister(m->m_bytes[i]);
        curve_counter_unregister(m->m_errors[i]);
    }
    curve_counter_unregister(m->m_overload);
    curve_latency_unregister(m->m_apply_lat);
    curve_latency_unregister(m->m_commit_lat);
    for (int i = 0; i < 3; i++)
        curve_gauge_unregister(m->m_g[i]);
}

int cs_mgr_new(const cs_mgr_opts *o, cs_mgr **out)
{
    if (o == NULL || o->data_dir == NULL || o->host == NULL || o->pool == NULL ||
        o->self_id == 0 || strlen(o->data_dir) > PATH_MAX - 64)
        return -EINVAL;
    cs_mgr *m = calloc(1, sizeof(*m));
    if (m == NULL)
        return -ENOMEM;
    m->o = *o;
    m->host = o->host;
    m->pool = o->pool;
    m->self_id = o->self_id;
    m->io_align = o->io_align ? o->io_align : 4096;
    m->max_inflight = o->max_inflight ? o->max_inflight : 4096;
    snprintf(m->data_dir, sizeof(m->data_dir), "%s", o->data_dir);
    snprintf(m->copysets_dir, sizeof(m->copysets_dir), "%s/copysets", o->data_dir);
    snprintf(m->recycler_dir, sizeof(m->recycler_dir), "%s/recycler", o->data_dir);
    int rc = mkdir_p(m->copysets_dir);
    if (rc == 0)
        rc = mkdir_p(m->recycler_dir);
    if (rc != 0)
        goto err_after_alloc;
    pthread_rwlock_init(&m->lock, NULL);
    pthread_mutex_init(&m->admin_lock, NULL);
    pthread_mutex_init(&m->epoch_lock, NULL);
    m->epochs = calloc(CS_EPOCH_TABLE_SLOTS, sizeof(*m->epochs));
    if (m->epochs == NULL) {
        rc = -ENOMEM;
        goto err_after_locks;
    }
    unsigned nw = o->nworkers ? o->nworkers : 2;
    rc = curve_workpool_new("cs-work", nw, 4096, &m->wp);
    if (rc != 0)
        goto err_after_epochs;
    rc = curve_workpool_new("cs-snap", 1, 4096, &m->snap_wp);
    if (rc != 0)
        goto err_after_wp;
    metrics_init(m);
    *out = m;
    return 0;
err_after_wp:
    curve_workpool_free(m->wp);
err_after_epochs:
    free(m->epochs);
err_after_locks:
    pthread_mutex_destroy(&m->epoch_lock);
    pthread_mutex_destroy(&m->admin_lock);
    pthread_rwlock_destroy(&m->lock);
err_after_alloc:
    free(m);
    return rc;
}

void cs_mgr_free(cs_mgr *m)
{
    if (m == NULL)
        return;
    curve_workpool_free(m->wp); /* finishes service jobs first (they use copysets) */
    cs_copyset **all = calloc(CS_MGR_MAX_COPYSETS, sizeof(*all));
    CURVE_ASSERT(all != NULL);
    /* detach everything first: requests arriving now answer COPYSET_NOTEXIST */
    pthread_rwlock_wrlock(&m->lock);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        all[i] = m->table[i] == CS_TOMBSTONE ? NULL : m->table[i];
        m->table[i] = NULL;
    }
    m->count = 0;
    pthread_rwlock_unlock(&m->lock);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++)
        copyset_free(all[i]);
    free(all);
    curve_workpool_free(m->snap_wp);
    metrics_fini(m);
    free(m->epochs);
    pthread_mutex_destroy(&m->epoch_lock);
    pthread_mutex_destroy(&m->admin_lock);
    pthread_rwlock_destroy(&m->lock);
    free(m);
}

uint32_t cs_mgr_copyset_count(cs_mgr *m)
{
    pthread_rwlock_rdlock(&m->lock);
    uint32_t n = m->count;
    pthread_rwlock_unlock(&m->lock);
    return n;
}

uint32_t cs_mgr_leader_count(cs_mgr *m)
{
    uint32_t n = 0;
    pthread_rwlock_rdlock(&m->lock);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        cs_copyset *cs = m->table[i];
        if (cs != NULL && cs != CS_TOMBSTONE && atomic_load(&cs->role) == RAFT_LEADER)
            n++;
    }
    pthread_rwlock_unlock(&m->lock);
    return n;
}

uint32_t cs_mgr_snapshot_infos(cs_mgr *m, cs_copyset_info *out, uint32_t max)
{
    uint64_t *gids = calloc(CS_MGR_MAX_COPYSETS, sizeof(*gids));
    uint32_t ng = 0, n = 0;
    if (gids == NULL)
        return 0;
    pthread_rwlock_rdlock(&m->lock);
    for (uint32_t i = 0; i < CS_MGR_MAX_COPYSETS; i++) {
        cs_copyset *cs = m->table[i];
        if (cs != NULL && cs != CS_TOMBSTONE)
            gids[ng++] = cs->gid;
    }
    pthread_rwlock_unlock(&m->lock);
    for (uint32_t i = 0; i < ng && n < max; i++) {
        cs_copyset *cs = cs__get(m, gids[i]);
        if (cs == NULL)
            continue; /* removed meanwhile */
        cs_copyset_info *inf = &out[n++];
        memset(inf, 0, sizeof(*inf));
        inf->pool = cs->pool;
        inf->id = cs->id;
        raftrt_group_status(cs->group, &inf->st);
        for (uint32_t k = 0; k < inf->st.npeers && k < RAFT_MAX_SERVERS; k++) {
            inf->conf.s[k].id = inf->st.peers[k].id;
            inf->conf.s[k].role = inf->st.peers[k].role;
            inf->conf.n++;
        }
        inf->epoch = cs_fsm_epoch(cs->fsm);
        curve_chunkstore_status ss;
        curve_chunkstore_get_status(cs->store, &ss);
        inf->chunks = ss.chunks;
        cs__put(cs);
    }
    free(gids);
    return n;
}

void cs_mgr_status_json(cs_mgr *m, json_t *obj)
{
    cs_copyset_info *infos = calloc(CS_MGR_MAX_COPYSETS, sizeof(*infos));
    json_t *arr = json_array();
    uint32_t n = infos != NULL ? cs_mgr_snapshot_infos(m, infos, CS_MGR_MAX_COPYSETS) : 0;
    uint32_t leaders = 0;
    for (uint32_t i = 0; i < n; i++) {
        cs_copyset_info *c = &infos[i];
        char leader[CS_PEER_STR_MAX];
        cs_peer_format(c->st.leader, false, leader, sizeof(leader));
        json_t *peers = json_array();
        for (uint32_t k = 0; k < c->conf.n; k++) {
            char p[CS_PEER_STR_MAX];
            cs_peer_format(c->conf.s[k].id, false, p, sizeof(p));
            json_array_append_new(peers, json_string(p));
        }
        if (c->st.role == RAFT_LEADER)
            leaders++;
        json_array_append_new(
            arr, json_pack("{s:i, s:i, s:s, s:s, s:I, s:I, s:I, s:I, s:I, s:I, s:o, s:I, s:i, "
                           "s:I, s:I}",
                           "pool", (int)c->pool, "copyset", (int)c->id, "role",
                           raft_role_name(c->st.role), "leader", c->st.leader ? leader : "",
                           "term", (json_int_t)c->st.term, "commit", (json_int_t)c->st.commit,
                           "applied", (json_int_t)c->st.applied, "last_index",
                           (json_int_t)c->st.last_index, "snapshot_index",
                           (json_int_t)c->st.snapshot_index, "epoch", (json_int_t)c->epoch,
                           "peers", peers, "chunks", (json_int_t)c->chunks, "failed",
                           c->st.failed, "log_bytes", (json_int_t)c->st.log_bytes,
                           "follower_refused", (json_int_t)c->st.follower_refused));
    }
    free(infos);
    json_object_set_new(obj, "copysets", arr);
    json_object_set_new(obj, "copyset_count", json_integer(n));
    json_object_set_new(obj, "leader_count", json_integer(leaders));
    json_object_set_new(obj, "inflight", json_integer(atomic_load(&m->inflight)));
    json_object_set_new(
        obj, "slow_disk",
        json_pack("{s:I, s:I, s:I, s:I, s:b}", "slow_write_ms", (json_int_t)m->o.slow_write_ms,
                  "streak", (json_int_t)atomic_load(&m->slow_streak), "handoffs",
                  (json_int_t)atomic_load(&m->slow_handoffs), "transfers",
                  (json_int_t)atomic_load(&m->slow_transfers), "active",
                  (int)atomic_load(&m->slow_active)));
}
