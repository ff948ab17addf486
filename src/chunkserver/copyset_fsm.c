/* Copyset state machine (see copyset_fsm.h). */
#include "chunkserver/copyset_fsm.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "common/fsutil.h"
#include "common/assert.h"
#include "common/crc32c.h"
#include "common/log.h"
#include "curve/errors.h"

#define CS_FSM_META_MAGIC 0x454d5343u /* "CSME" */
/* cs_snapshot file: u32 magic, u32 version, u64 index, u64 term, u64 epoch, u64 group_id,
 * u32 nchunks, u32 nvol (version 1: reserved, 0), nchunks x u64 chunk id,
 * nvol x (u64 file_id, u64 epoch), u32 crc32c of everything before. */
#define CS_SNAPFILE_HDR 48u
#define CS_SNAPFILE_MAX                                                                          \
    (CS_SNAPFILE_HDR + 8u * RAFT_MAX_SNAPSHOT_FILES + 16u * CS_FSM_VOL_EPOCHS_MAX + 4u)

/* ---- little-endian helpers ------------------------------------------------------------- */

static void put16(uint8_t *p, uint16_t v)
{
    p[0] = (uint8_t)v;
    p[1] = (uint8_t)(v >> 8);
}
static void put32(uint8_t *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}
static uint16_t get16(const uint8_t *p)
{
    return (uint16_t)(p[0] | (p[1] << 8));
}
static uint32_t get32(const uint8_t *p)
{
    uint32_t v = 0;
    for (int i = 3; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}
static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = (v << 8) | p[i];
    return v;
}

/* ---- commands -------------------------------------------------------------------------- */

static int cmd_check(const cs_cmd *c)
{
    if (c->type == CS_CMD_WRITE)
        return (c->len > 0 && c->len <= CS_CMD_DATA_MAX) ? 0 : -EINVAL;
    if (c->type == CS_CMD_DELETE)
        return c->len == 0 ? 0 : -EINVAL;
    return -EINVAL;
}

size_t cs_cmd_encode_hdr(const cs_cmd *c, const struct iovec *iov, unsigned iovcnt,
                         uint8_t hdr[CS_CMD_HDR_SIZE])
{
    memset(hdr, 0, CS_CMD_HDR_SIZE);
    hdr[0] = CS_CMD_VERSION;
    hdr[1] = c->type;
    put16(hdr + 2, 0);
    put32(hdr + 4, c->len);
    put64(hdr + 8, c->chunk_id);
    put64(hdr + 16, c->offset);
    put64(hdr + 24, c->sn);
    put64(hdr + 32, c->epoch);
    put64(hdr + 40, c->file_id);
    put32(hdr + 48, 0);
    uint32_t crc = curve_crc32c(0, hdr, 52);
    if (c->data != NULL) {
        crc = curve_crc32c(crc, c->data, c->len);
    } else if (iov != NULL) {
        for (unsigned i = 0; i < iovcnt; i++)
            crc = curve_crc32c(crc, iov[i].iov_base, iov[i].iov_len);
    }
    put32(hdr + 52, crc);
    return CS_CMD_HDR_SIZE;
}

int cs_cmd_encode(const cs_cmd *c, void *buf, size_t cap)
{
    if (cmd_check(c) != 0 || (c->len > 0 && c->data == NULL))
        return -EINVAL;
    if (cap < CS_CMD_HDR_SIZE + (size_t)c->len)
        return -ENOSPC;
    cs_cmd_encode_hdr(c, NULL, 0, buf);
    if (c->len > 0)
        memcpy((uint8_t *)buf + CS_CMD_HDR_SIZE, c->data, c->len);
    return (int)(CS_CMD_HDR_SIZE + c->len);
}

int cs_cmd_decode(const void *buf, size_t len, cs_cmd *out)
{
    const uint8_t *p = buf;
    if (buf == NULL || len < CS_CMD_HDR_SIZE)
        return CURVE_ERR_CORRUPT;
    if (p[0] != CS_CMD_VERSION || get16(p + 2) != 0 || get32(p + 48) != 0)
        return CURVE_ERR_CORRUPT;
    cs_cmd c = {
        .type = p[1],
        .len = get32(p + 4),
        .chunk_id = get64(p + 8),
        .offset = get64(p + 16),
        .sn = get64(p + 24),
        .epoch = get64(p + 32),
        .file_id = get64(p + 40),
    };
    if (cmd_check(&c) != 0 || (size_t)c.len != len - CS_CMD_HDR_SIZE)
        return CURVE_ERR_CORRUPT;
    uint32_t crc = curve_crc32c(0, p, 52);
    crc = curve_crc32c(crc, p + CS_CMD_HDR_SIZE, c.len);
    if (crc != get32(p + 52))
        return CURVE_ERR_CORRUPT;
    c.data = c.len > 0 ? p + CS_CMD_HDR_SIZE : NULL;
    *out = c;
    return 0;
}

/* ---- fsm ------------------------------------------------------------------------------- */

typedef struct install_file {
    uint64_t chunk_id;
    uint64_t size;
    uint64_t received;          /* distinct bytes received (sum of the ranges below) */
    /* received byte ranges [start, end), sorted and merged (pieces may repeat or come out of
     * order; a gap must never be installed as zeros) */
    uint64_t (*iv)[2];
    uint32_t niv, cap;
    curve_chunk_install *inst;  /* NULL until the first piece */
} install_file;

struct cs_fsm {
    uint64_t group_id;
    void (*epoch_seen)(void *arg, uint64_t file_id, uint64_t epoch);
    void *epoch_arg;
    curve_chunkstore *store;
    char snap_dir[PATH_MAX];
    _Atomic uint64_t epoch;
    _Atomic uint64_t applied;
    /* install in progress (loop only) */
    bool installing;
    uint64_t inst_index, inst_epoch;
    cs_vol_epoch *inst_vols; /* CS_FSM_VOL_EPOCHS_MAX entries, from the manifest meta */
    uint32_t inst_nvol;
    /* protects vols: the volume-epoch table (apply thread writes, snapshot builds read) */
    pthread_mutex_t vol_lock;
    cs_vol_epoch vols[CS_FSM_VOL_EPOCHS_MAX]; /* epoch 0 = free slot */
    install_file *files; /* sorted by chunk_id */
    uint32_t nfiles;
    /* counters (loop writes, any thread reads: relaxed atomics) */
    _Atomic uint64_t writes, deletes, config_changes, apply_errors, corrupt_cmds;
    _Atomic uint64_t snapshots, installs, install_bytes;
    _Atomic int last_apply_err;
    /* serialises cs_snapshot writes (a snapshot build on a worker may race with an install
     * finishing on the loop); never lets the stored index go backwards */
    pthread_mutex_t snap_lock;
    uint64_t snap_stored_index;
};

struct cs_fsm_snap {
    struct raft_manifest m;
    struct raft_snapshot_file *files;
    char (*names)[32];
    uint8_t *meta; /* encoded manifest meta (owned) */
};

size_t cs_fsm__meta_encode(uint64_t epoch, uint64_t group_id, uint32_t chunk_size,
                           const cs_vol_epoch *vols, uint32_t nvol, uint8_t *out)
{
    CURVE_ASSERT(nvol <= CS_FSM_VOL_EPOCHS_MAX && (nvol == 0 || vols != NULL));
    size_t len = CS_FSM_MANIFEST_META_SIZE(nvol);
    put32(out, CS_FSM_META_MAGIC);
    put32(out + 4, 2);
    put64(out + 8, epoch);
    put64(out + 16, group_id);
    put32(out + 24, chunk_size);
    put32(out + 28, nvol);
    for (uint32_t i = 0; i < nvol; i++) {
        put64(out + 32 + 16 * i, vols[i].file_id);
        put64(out + 40 + 16 * i, vols[i].epoch);
    }
    put32(out + len - 4, curve_crc32c(0, out, len - 4));
    return len;
}

/* Decodes nvol (file_id, epoch) pairs at p into vols (may be NULL); an epoch 0 is refused. */
static int vols_decode(const uint8_t *p, uint32_t nvol, cs_vol_epoch *vols)
{
    for (uint32_t i = 0; i < nvol; i++) {
        cs_vol_epoch v = {.file_id = get64(p + 16 * i), .epoch = get64(p + 8 + 16 * i)};
        if (v.epoch == 0)
            return CURVE_ERR_CORRUPT;
        if (vols != NULL)
            vols[i] = v;
    }
    return 0;
}

int cs_fsm__meta_decode(const void *buf, size_t len, uint64_t *epoch, uint64_t *group_id,
                        uint32_t *chunk_size, cs_vol_epoch *vols, uint32_t *nvol)
{
    const uint8_t *p = buf;
    if (buf == NULL || len < 32 || len > CS_FSM_MANIFEST_META_MAX || get32(p) != CS_FSM_META_MAGIC)
        return CURVE_ERR_CORRUPT;
    uint32_t version = get32(p + 4), n = 0;
    if (version == 1) {
        if (len != 32 || get32(p + 28) != curve_crc32c(0, p, 28))
            return CURVE_ERR_CORRUPT;
    } else if (version == 2) {
        n = get32(p + 28);
        if (n > CS_FSM_VOL_EPOCHS_MAX || len != CS_FSM_MANIFEST_META_SIZE(n) ||
            get32(p + len - 4) != curve_crc32c(0, p, len - 4) || vols_decode(p + 32, n, vols) != 0)
            return CURVE_ERR_CORRUPT;
    } else {
        return CURVE_ERR_CORRUPT;
    }
    *epoch = get64(p + 8);
    *group_id = get64(p + 16);
    *chunk_size = get32(p + 24);
    if (nvol != NULL)
        *nvol = n;
    return 0;
}

/* ---- volume-epoch table -------------------------------------------------------------------- */

static uint32_t vol_hash(uint64_t file_id)
{
    return (uint32_t)((file_id * 0x9e3779b97f4a7c15ull) >> 40) % CS_FSM_VOL_EPOCHS_MAX;
}

/* Raises file_id's entry to at least epoch (> 0). Returns true when the table changed. */
static bool vol_note(cs_fsm *f, uint64_t file_id, uint64_t epoch)
{
    bool changed = false;
    pthread_mutex_lock(&f->vol_lock);
    uint32_t h = vol_hash(file_id), victim = h;
    cs_vol_epoch *slot = NULL;
    for (uint32_t i = 0; i < CS_FSM_VOL_PROBE; i++) {
        cs_vol_epoch *v = &f->vols[(h + i) % CS_FSM_VOL_EPOCHS_MAX];
        if (v->epoch == 0 || v->file_id == file_id) {
            slot = v;
            break;
        }
        if (v->epoch < f->vols[victim].epoch)
            victim = (h + i) % CS_FSM_VOL_EPOCHS_MAX;
    }
    if (slot == NULL) {
        slot = &f->vols[victim];
        slot->epoch = 0;
    }
    if (slot->epoch == 0 || slot->epoch < epoch) {
        *slot = (cs_vol_epoch){.file_id = file_id, .epoch = epoch};
        changed = true;
    }
    pthread_mutex_unlock(&f->vol_lock);
    return changed;
}

/* Merges a received/loaded table and raises the chunkserver's fences with it. */
static void vol_merge(cs_fsm *f, const cs_vol_epoch *vols, uint32_t n)
{
    for (uint32_t i = 0; i < n; i++) {
        vol_note(f, vols[i].file_id, vols[i].epoch);
        if (f->epoch_seen != NULL)
            f->epoch_seen(f->epoch_arg, vols[i].file_id, vols[i].epoch);
    }
}

uint32_t cs_fsm_vol_epochs(const cs_fsm *f0, cs_vol_epoch *out, uint32_t cap)
{
    cs_fsm *f = (cs_fsm *)f0;
    uint32_t n = 0;
    pthread_mutex_lock(&f->vol_lock);
    for (uint32_t i = 0; i < CS_FSM_VOL_EPOCHS_MAX && n < cap; i++)
        if (f->vols[i].epoch != 0)
            out[n++] = f->vols[i];
    pthread_mutex_unlock(&f->vol_lock);
    return n;
}

int cs_fsm__parse_chunk_name(const char *name, uint64_t *id)
{
    if (name == NULL || strncmp(name, "chunk_", 6) != 0)
        return -EINVAL;
    const char *s = name + 6;
    if (*s == '\0' || strlen(s) > 20 || (s[0] == '0' && s[1] != '\0'))
        return -EINVAL;
    uint64_t v = 0;
    for (; *s != '\0'; s++) {
        if (*s < '0' || *s > '9')
            return -EINVAL;
        unsigned d = (unsigned)(*s - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -EINVAL;
        v = v * 10 + d;
    }
    *id = v;
    return 0;
}

static int snapfile_path(const cs_fsm *f, const char *suffix, char *buf, size_t len)
{
    int n = snprintf(buf, len, "%s/%s%s", f->snap_dir, CS_FSM_SNAPSHOT_FILE, suffix);
    return (n < 0 || (size_t)n >= len) ? -ENAMETOOLONG : 0;
}

/* Reads cs_snapshot (if present) into f->epoch. */
static int snapfile_load(cs_fsm *f)
{
    char path[PATH_MAX + 32];
    int rc = snapfile_path(f, "", path, sizeof(path));
    if (rc != 0)
        return rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 0 : -errno;
    struct stat st;
    uint8_t *buf = NULL;
    cs_vol_epoch *vols = NULL;
    if (fstat(fd, &st) != 0) {
        rc = -errno;
        goto out;
    }
    if (st.st_size < (off_t)(CS_SNAPFILE_HDR + 4) || st.st_size > (off_t)CS_SNAPFILE_MAX) {
        rc = CURVE_ERR_CORRUPT;
        goto out;
    }
    size_t len = (size_t)st.st_size;
    buf = malloc(len);
    if (buf == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    ssize_t n = pread(fd, buf, len, 0);
    if (n != (ssize_t)len) {
        rc = n < 0 ? -errno : CURVE_ERR_CORRUPT;
        goto out;
    }
    uint64_t epoch;
    uint32_t nvol = 0;
    vols = malloc(CS_FSM_VOL_EPOCHS_MAX * sizeof(*vols));
    if (vols == NULL) {
        rc = -ENOMEM;
        goto out;
    }
    rc = cs_fsm__snapfile_decode(buf, len, f->group_id, &epoch, vols, &nvol);
    if (rc != 0)
        goto out;
    atomic_store(&f->epoch, epoch);
    vol_merge(f, vols, nvol);
    f->snap_stored_index = get64(buf + 8);
    rc = 0;
out:
    if (rc != 0)
        CLOG_ERROR("copyset %" PRIu64 ": cannot load %s: %s", f->group_id, path,
                   curve_strerror(rc));
    free(vols);
    free(buf);
    close(fd);
    return rc;
}

int cs_fsm__snapfile_decode(const uint8_t *buf, size_t len, uint64_t group_id, uint64_t *epoch,
                            cs_vol_epoch *vols, uint32_t *nvol)
{
    if (buf == NULL || len < CS_SNAPFILE_HDR + 4 || len > CS_SNAPFILE_MAX)
        return CURVE_ERR_CORRUPT;
    uint32_t version = get32(buf + 4), nchunks = get32(buf + 40), n = get32(buf + 44);
    if (get32(buf) != CS_FSM_SNAP_MAGIC || (version != 1 && version != 2) ||
        (version == 1 && n != 0) || nchunks > RAFT_MAX_SNAPSHOT_FILES ||
        n > CS_FSM_VOL_EPOCHS_MAX ||
        len != CS_SNAPFILE_HDR + 8u * (size_t)nchunks + 16u * (size_t)n + 4u ||
        get32(buf + len - 4) != curve_crc32c(0, buf, len - 4) || get64(buf + 32) != group_id)
        return CURVE_ERR_CORRUPT;
    if (vols_decode(buf + CS_SNAPFILE_HDR + 8u * (size_t)nchunks, n, vols) != 0)
        return CURVE_ERR_CORRUPT;
    *epoch = get64(buf + 24);
    if (nvol != NULL)
        *nvol = n;
    return 0;
}

static int fsync_dir(const char *dir)
{
    return curve_fsync_dir(dir);
}

/* Writes cs_snapshot durably: tmp file, fdatasync, rename, directory fsync. */
static int snapfile_store_locked(cs_fsm *f, uint64_t index, uint64_t term, uint64_t epoch,
                                 const uint64_t *ids, size_t n, const cs_vol_epoch *vols,
                                 uint32_t nvol);

static int snapfile_store(cs_fsm *f, uint64_t index, uint64_t term, uint64_t epoch,
                          const uint64_t *ids, size_t n, const cs_vol_epoch *vols,
                          uint32_t nvol)
{
    pthread_mutex_lock(&f->snap_lock);
    int rc = 0;
    if (index >= f->snap_stored_index) {
        rc = snapfile_store_locked(f, index, term, epoch, ids, n, vols, nvol);
        if (rc == 0)
            f->snap_stored_index = index;
    }
    pthread_mutex_unlock(&f->snap_lock);
    return rc;
}

static int snapfile_store_locked(cs_fsm *f, uint64_t index, uint64_t term, uint64_t epoch,
                                 const uint64_t *ids, size_t n, const cs_vol_epoch *vols,
                                 uint32_t nvol)
{
    char path[PATH_MAX + 32], tmp[PATH_MAX + 32];
    int rc = snapfile_path(f, "", path, sizeof(path));
    if (rc == 0)
        rc = snapfile_path(f, ".tmp", tmp, sizeof(tmp));
    if (rc != 0)
        return rc;
    if (n > RAFT_MAX_SNAPSHOT_FILES || nvol > CS_FSM_VOL_EPOCHS_MAX)
        return -E2BIG;
    size_t len = CS_SNAPFILE_HDR + 8u * n + 16u * nvol + 4u;
    uint8_t *buf = calloc(1, len);
    if (buf == NULL)
        return -ENOMEM;
    put32(buf, CS_FSM_SNAP_MAGIC);
    put32(buf + 4, CS_FSM_SNAP_VERSION);
    put64(buf + 8, index);
    put64(buf + 16, term);
    put64(buf + 24, epoch);
    put64(buf + 32, f->group_id);
    put32(buf + 40, (uint32_t)n);
    put32(buf + 44, nvol);
    for (size_t i = 0; i < n; i++)
        put64(buf + CS_SNAPFILE_HDR + 8 * i, ids[i]);
    for (uint32_t i = 0; i < nvol; i++) {
        put64(buf + CS_SNAPFILE_HDR + 8 * n + 16 * i, vols[i].file_id);
        put64(buf + CS_SNAPFILE_HDR + 8 * n + 16 * i + 8, vols[i].epoch);
    }
    put32(buf + len - 4, curve_crc32c(0, buf, len - 4));
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (fd < 0) {
        rc = -errno;
        goto out;
    }
    ssize_t w = pwrite(fd, buf, len, 0);
    if (w != (ssize_t)len)
        rc = w < 0 ? -errno : -EIO;
    else if (fdatasync(fd) != 0)
        rc = -errno;
    close(fd);
    if (rc == 0 && rename(tmp, path) != 0)
        rc = -errno;
    if (rc == 0)
        rc = fsync_dir(f->snap_dir);
out:
    if (rc != 0)
        CLOG_ERROR("copyset %" PRIu64 ": cannot write %s: %s", f->group_id, path,
                   curve_strerror(rc));
    free(buf);
    return rc;
}

int cs_fsm_open(const cs_fsm_opts *o, cs_fsm **out)
{
    if (o == NULL || o->store == NULL || o->snapshot_dir == NULL || out == NULL ||
        strlen(o->snapshot_dir) >= PATH_MAX)
        return -EINVAL;
    if (mkdir(o->snapshot_dir, 0755) != 0 && errno != EEXIST) {
        int rc = -errno;
        CLOG_ERROR("cannot create %s: %s", o->snapshot_dir, curve_strerror(rc));
        return rc;
    }
    cs_fsm *f = calloc(1, sizeof(*f));
    if (f == NULL)
        return -ENOMEM;
    f->group_id = o->group_id;
    f->store = o->store;
    f->epoch_seen = o->epoch_seen;
    f->epoch_arg = o->epoch_arg;
    snprintf(f->snap_dir, sizeof(f->snap_dir), "%s", o->snapshot_dir);
    pthread_mutex_init(&f->snap_lock, NULL);
    pthread_mutex_init(&f->vol_lock, NULL);
    int rc = snapfile_load(f);
    if (rc != 0) {
        pthread_mutex_destroy(&f->vol_lock);
        pthread_mutex_destroy(&f->snap_lock);
        free(f);
        return rc;
    }
    *out = f;
    return 0;
}

static void install_drop(cs_fsm *f)
{
    for (uint32_t i = 0; i < f->nfiles; i++) {
        if (f->files[i].inst != NULL)
            curve_chunkstore_install_abort(f->files[i].inst);
        free(f->files[i].iv);
    }
    free(f->files);
    f->files = NULL;
    f->nfiles = 0;
    free(f->inst_vols);
    f->inst_vols = NULL;
    f->inst_nvol = 0;
    f->installing = false;
}

void cs_fsm_close(cs_fsm *f)
{
    if (f == NULL)
        return;
    install_drop(f);
    pthread_mutex_destroy(&f->vol_lock);
    pthread_mutex_destroy(&f->snap_lock);
    free(f);
}

uint64_t cs_fsm_epoch(const cs_fsm *f)
{
    return atomic_load(&((cs_fsm *)f)->epoch);
}

curve_chunkstore *cs_fsm_store(const cs_fsm *f)
{
    return f->store;
}

void cs_fsm_get_stats(const cs_fsm *f0, cs_fsm_stats *out)
{
    cs_fsm *f = (cs_fsm *)f0;
    out->applied_index = atomic_load(&f->applied);
    out->epoch = atomic_load(&f->epoch);
    out->writes = atomic_load(&f->writes);
    out->deletes = atomic_load(&f->deletes);
    out->config_changes = atomic_load(&f->config_changes);
    out->apply_errors = atomic_load(&f->apply_errors);
    out->corrupt_cmds = atomic_load(&f->corrupt_cmds);
    out->snapshots = atomic_load(&f->snapshots);
    out->installs = atomic_load(&f->installs);
    out->install_bytes = atomic_load(&f->install_bytes);
    out->last_apply_err = atomic_load(&f->last_apply_err);
}

int cs_fsm_apply(void *ctx, uint64_t index, const struct raft_entry *e)
{
    cs_fsm *f = ctx;
    int rc = 0;
    CURVE_ASSERT(f != NULL && e != NULL);
    switch (e->type) {
    case RAFT_ENTRY_CONFIG:
        atomic_fetch_add(&f->epoch, 1);
        atomic_fetch_add(&f->config_changes, 1);
        break;
    case RAFT_ENTRY_NOOP:
        break;
    case RAFT_ENTRY_COMMAND: {
        cs_cmd c;
        rc = cs_cmd_decode(e->data, e->len, &c);
        if (rc != 0) {
            /* The log is checksummed, so this is a bug or a foreign command: never apply it. */
            atomic_fetch_add(&f->corrupt_cmds, 1);
            CLOG_ERROR("copyset %" PRIu64 ": entry %" PRIu64 " is not a valid command (%u bytes)",
                       f->group_id, index, e->len);
            break;
        }
        if (c.type == CS_CMD_WRITE) {
            if (c.epoch != 0) {
                vol_note(f, c.file_id, c.epoch);
                if (f->epoch_seen != NULL)
                    f->epoch_seen(f->epoch_arg, c.file_id, c.epoch);
            }
            rc = curve_chunkstore_write(f->store, c.chunk_id, c.sn, c.offset, c.data, c.len);
            atomic_fetch_add(&f->writes, 1);
        } else {
            rc = curve_chunkstore_delete(f->store, c.chunk_id);
            if (rc == CURVE_ERR_CHUNK_NOTEXIST)
                rc = 0; /* idempotent */
            atomic_fetch_add(&f->deletes, 1);
        }
        break;
    }
    default:
        rc = CURVE_ERR_CORRUPT;
        break;
    }
    if (rc != 0) {
        atomic_fetch_add(&f->apply_errors, 1);
        atomic_store(&f->last_apply_err, rc);
    }
    atomic_store(&f->applied, index);
    return rc;
}

/* ---- snapshot save / read ---------------------------------------------------------------- */

int cs_fsm_snapshot_build(cs_fsm *f, const struct raft_snapshot_meta *meta, uint64_t epoch,
                          cs_fsm_snap **out)
{
    /* DESIGN §5: chunks written since the last snapshot are made durable before the log behind
     * this snapshot may be truncated. */
    int rc = curve_chunkstore_sync_dirty(f->store);
    if (rc != 0)
        return rc;
    curve_chunk_manifest_entry *ents = NULL;
    size_t n = 0;
    rc = curve_chunkstore_manifest(f->store, &ents, &n);
    if (rc != 0)
        return rc;
    if (n > RAFT_MAX_SNAPSHOT_FILES) {
        free(ents);
        return -E2BIG;
    }
    cs_fsm_snap *s = calloc(1, sizeof(*s));
    uint64_t *ids = calloc(n + 1, sizeof(*ids));
    /* the table as of now (>= the one at meta->index: fences only rise, harmless) */
    cs_vol_epoch *vols = malloc(CS_FSM_VOL_EPOCHS_MAX * sizeof(*vols));
    if (s == NULL || ids == NULL || vols == NULL)
        goto err_nomem;
    uint32_t nvol = cs_fsm_vol_epochs(f, vols, CS_FSM_VOL_EPOCHS_MAX);
    s->meta = malloc(CS_FSM_MANIFEST_META_SIZE(nvol));
    if (s->meta == NULL)
        goto err_nomem;
    s->files = calloc(n + 1, sizeof(*s->files));
    s->names = calloc(n + 1, sizeof(*s->names));
    if (s->files == NULL || s->names == NULL)
        goto err_nomem;
    for (size_t i = 0; i < n; i++) {
        memcpy(s->names[i], ents[i].name, sizeof(s->names[i]));
        s->names[i][31] = '\0';
        s->files[i].name = s->names[i];
        s->files[i].size = ents[i].file_size;
        ids[i] = ents[i].chunk_id;
    }
    size_t mlen = cs_fsm__meta_encode(epoch, f->group_id, curve_chunkstore_chunk_size(f->store),
                                      vols, nvol, s->meta);
    s->m.meta = s->meta;
    s->m.meta_len = (uint32_t)mlen;
    s->m.nfiles = (uint32_t)n;
    s->m.files = s->files;
    rc = snapfile_store(f, meta->index, meta->term, epoch, ids, n, vols, nvol);
    free(vols);
    free(ids);
    free(ents);
    if (rc != 0) {
        cs_fsm_snap_free(s);
        return rc;
    }
    atomic_fetch_add(&f->snapshots, 1);
    *out = s;
    return 0;
err_nomem:
    free(vols);
    free(ids);
    free(ents);
    cs_fsm_snap_free(s);
    return -ENOMEM;
}

const struct raft_manifest *cs_fsm_snap_manifest(const cs_fsm_snap *s)
{
    return &s->m;
}

void cs_fsm_snap_free(cs_fsm_snap *s)
{
    if (s == NULL)
        return;
    free(s->files);
    free(s->names);
    free(s->meta);
    free(s);
}

int cs_fsm_snapshot_read(void *ctx, const char *name, uint64_t offset, void *buf, uint32_t len)
{
    cs_fsm *f = ctx;
    uint64_t id;
    if (cs_fsm__parse_chunk_name(name, &id) != 0 || (len > 0 && buf == NULL) || len > INT_MAX)
        return CURVE_ERR_INVALID_REQUEST;
    uint32_t csize = curve_chunkstore_chunk_size(f->store);
    uint64_t fsize = (uint64_t)CURVE_CHUNK_HEADER_SIZE + csize;
    if (offset >= fsize)
        return 0;
    if (len > fsize - offset)
        len = (uint32_t)(fsize - offset);
    int64_t n = curve_chunkstore_read_raw(f->store, id, offset, buf, len);
    if (n != CURVE_ERR_CHUNK_NOTEXIST)
        return (int)n;
    /* Deleted after the snapshot was listed: the delete entry follows the snapshot index and is
     * replayed by the follower, so an all-zero chunk with a valid header stands in for it. */
    memset(buf, 0, len);
    if (offset < CURVE_CHUNK_HEADER_SIZE) {
        uint8_t page[CURVE_CHUNK_HEADER_SIZE];
        curve_chunk_header h = {.version = CURVE_CHUNK_VERSION, .chunk_id = id,
                                .chunk_size = csize};
        curve_chunk_header_encode(&h, page);
        uint64_t k = CURVE_CHUNK_HEADER_SIZE - offset;
        memcpy(buf, page + offset, k < len ? k : len);
    }
    return (int)len;
}

/* ---- snapshot install (follower) --------------------------------------------------------- */

static int file_cmp(const void *a, const void *b)
{
    const install_file *x = a, *y = b;
    return x->chunk_id < y->chunk_id ? -1 : x->chunk_id > y->chunk_id;
}

/* Bound on disjoint received ranges per file (pieces arriving far out of order). */
#define CS_FSM_INSTALL_RANGES_MAX 4096u

/* Adds [off, off+len) to the file's received ranges. Returns 0, -ENOMEM or -E2BIG. */
static int range_add(install_file *file, uint64_t off, uint64_t len)
{
    uint64_t a = off, b = off + len;
    uint32_t i = 0;
    while (i < file->niv && file->iv[i][1] < a)
        i++;
    uint32_t j = i; /* ranges [i, j) overlap or touch [a, b) */
    while (j < file->niv && file->iv[j][0] <= b) {
        a = file->iv[j][0] < a ? file->iv[j][0] : a;
        b = file->iv[j][1] > b ? file->iv[j][1] : b;
        j++;
    }
    if (i == j) { /* insert a new range at i */
        if (file->niv >= CS_FSM_INSTALL_RANGES_MAX)
            return -E2BIG;
        if (file->niv == file->cap) {
            uint32_t cap = file->cap ? file->cap * 2 : 4;
            void *p = realloc(file->iv, cap * sizeof(*file->iv));
            if (p == NULL)
                return -ENOMEM;
            file->iv = p;
            file->cap = cap;
        }
        memmove(&file->iv[i + 1], &file->iv[i], (file->niv - i) * sizeof(*file->iv));
        file->niv++;
    } else if (j - i > 1) { /* merge [i, j) into i */
        memmove(&file->iv[i + 1], &file->iv[j], (file->niv - j) * sizeof(*file->iv));
        file->niv -= j - i - 1;
    }
    file->iv[i][0] = a;
    file->iv[i][1] = b;
    uint64_t sum = 0;
    for (uint32_t k = 0; k < file->niv; k++)
        sum += file->iv[k][1] - file->iv[k][0];
    file->received = sum;
    return 0;
}

static bool range_complete(const install_file *file)
{
    return file->niv == 1 && file->iv[0][0] == 0 && file->iv[0][1] == file->size;
}

static install_file *install_find(cs_fsm *f, uint64_t id)
{
    install_file key = {.chunk_id = id};
    return bsearch(&key, f->files, f->nfiles, sizeof(*f->files), file_cmp);
}

void cs_fsm_install_abort(void *ctx)
{
    cs_fsm *f = ctx;
    if (f->installing)
        CLOG_WARN("copyset %" PRIu64 ": snapshot install %" PRIu64 " abandoned", f->group_id,
                  f->inst_index);
    install_drop(f);
}

int cs_fsm_install_begin(void *ctx, const struct raft_snapshot_meta *meta,
                         const struct raft_manifest *m)
{
    cs_fsm *f = ctx;
    install_drop(f);
    uint64_t epoch, gid;
    uint32_t csize, nvol = 0;
    cs_vol_epoch *vols = malloc(CS_FSM_VOL_EPOCHS_MAX * sizeof(*vols));
    if (vols == NULL)
        return -ENOMEM;
    if (meta == NULL || m == NULL ||
        cs_fsm__meta_decode(m->meta, m->meta_len, &epoch, &gid, &csize, vols, &nvol) != 0 ||
        gid != f->group_id || csize != curve_chunkstore_chunk_size(f->store) ||
        m->nfiles > RAFT_MAX_SNAPSHOT_FILES || (m->nfiles > 0 && m->files == NULL)) {
        free(vols);
        return CURVE_ERR_CORRUPT;
    }
    uint64_t fsize = (uint64_t)CURVE_CHUNK_HEADER_SIZE + csize;
    install_file *files = calloc(m->nfiles + 1u, sizeof(*files));
    if (files == NULL) {
        free(vols);
        return -ENOMEM;
    }
    for (uint32_t i = 0; i < m->nfiles; i++) {
        if (cs_fsm__parse_chunk_name(m->files[i].name, &files[i].chunk_id) != 0 ||
            m->files[i].size != fsize) {
            free(files);
            free(vols);
            return CURVE_ERR_CORRUPT;
        }
        files[i].size = fsize;
    }
    qsort(files, m->nfiles, sizeof(*files), file_cmp);
    for (uint32_t i = 1; i < m->nfiles; i++) {
        if (files[i].chunk_id == files[i - 1].chunk_id) {
            free(files);
            free(vols);
            return CURVE_ERR_CORRUPT;
        }
    }
    f->files = files;
    f->nfiles = m->nfiles;
    f->installing = true;
    f->inst_index = meta->index;
    f->inst_epoch = epoch;
    f->inst_vols = vols;
    f->inst_nvol = nvol;
    CLOG_INFO("copyset %" PRIu64 ": installing snapshot %" PRIu64 " (%u chunks, epoch %" PRIu64
              ")", f->group_id, meta->index, m->nfiles, epoch);
    return 0;
}

int cs_fsm_install_write(void *ctx, const char *name, uint64_t offset, const void *buf,
                         uint32_t len)
{
    cs_fsm *f = ctx;
    uint64_t id;
    if (!f->installing || cs_fsm__parse_chunk_name(name, &id) != 0 || (len > 0 && buf == NULL))
        return CURVE_ERR_INVALID_REQUEST;
    install_file *file = install_find(f, id);
    if (file == NULL || offset > file->size || len > file->size - offset)
        return CURVE_ERR_INVALID_REQUEST;
    if (file->inst == NULL) {
        int rc = curve_chunkstore_install_begin(f->store, id, &file->inst);
        if (rc != 0)
            return rc;
    }
    if (len == 0)
        return 0;
    int rc = curve_chunkstore_install_write(file->inst, offset, buf, len);
    if (rc == 0)
        rc = range_add(file, offset, len);
    if (rc == 0)
        atomic_fetch_add(&f->install_bytes, len);
    return rc;
}

/* Deletes every local chunk that the installed snapshot does not have. */
static int install_delete_extra(cs_fsm *f)
{
    uint64_t *ids = NULL;
    size_t n = 0;
    int rc = curve_chunkstore_list(f->store, &ids, &n);
    if (rc != 0)
        return rc;
    for (size_t i = 0; i < n && rc == 0; i++) {
        if (install_find(f, ids[i]) == NULL) {
            rc = curve_chunkstore_delete(f->store, ids[i]);
            if (rc == CURVE_ERR_CHUNK_NOTEXIST)
                rc = 0;
        }
    }
    free(ids);
    return rc;
}

int cs_fsm_install_finish(void *ctx, const struct raft_snapshot_meta *meta,
                          const struct raft_manifest *m)
{
    cs_fsm *f = ctx;
    if (!f->installing || meta == NULL || meta->index != f->inst_index)
        return CURVE_ERR_INVALID_REQUEST;
    int rc = 0;
    for (uint32_t i = 0; i < f->nfiles && rc == 0; i++) {
        install_file *file = &f->files[i];
        if (file->inst == NULL || !range_complete(file)) {
            CLOG_ERROR("copyset %" PRIu64 ": snapshot %" PRIu64 " chunk %" PRIu64
                       " incomplete (%" PRIu64 "/%" PRIu64 " bytes)",
                       f->group_id, meta->index, file->chunk_id, file->received, file->size);
            rc = CURVE_ERR_INVALID_REQUEST;
            break;
        }
        rc = curve_chunkstore_install_finish(file->inst);
        file->inst = NULL; /* freed in every case */
    }
    if (rc == 0)
        rc = install_delete_extra(f);
    uint64_t *ids = NULL;
    if (rc == 0) {
        ids = calloc(f->nfiles + 1u, sizeof(*ids));
        if (ids == NULL)
            rc = -ENOMEM;
    }
    if (rc == 0) {
        for (uint32_t i = 0; i < f->nfiles; i++)
            ids[i] = f->files[i].chunk_id;
        /* The installed table: the received one merged into ours (a fence never goes down,
         * even if this replica had learned a newer epoch than the leader's snapshot). */
        vol_merge(f, f->inst_vols, f->inst_nvol);
        uint32_t nvol = cs_fsm_vol_epochs(f, f->inst_vols, CS_FSM_VOL_EPOCHS_MAX);
        rc = snapfile_store(f, meta->index, meta->term, f->inst_epoch, ids, f->nfiles,
                            f->inst_vols, nvol);
    }
    free(ids);
    if (rc == 0) {
        atomic_store(&f->epoch, f->inst_epoch);
        atomic_store(&f->applied, meta->index);
        atomic_fetch_add(&f->installs, 1);
        CLOG_INFO("copyset %" PRIu64 ": installed snapshot %" PRIu64 " (%u chunks)",
                  f->group_id, meta->index, f->nfiles);
    } else {
        CLOG_ERROR("copyset %" PRIu64 ": snapshot %" PRIu64 " install failed: %s", f->group_id,
                   meta->index, curve_strerror(rc));
    }
    install_drop(f);
    (void)m;
    return rc;
}
