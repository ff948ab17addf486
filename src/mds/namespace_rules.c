/* Namespace rules: see namespace_rules.h and docs/mds.md. */
#include "mds/namespace_rules.h"

#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

#include "common/assert.h"
#include "common/crc32c.h"
#include "curve/errors.h"

/* ---------------------------------------------------------------------------------------- */
/* names and paths */

static bool name_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-' || c == '+' || c == '=' || c == '@' || c == ':';
}

/* Checks the component [s, s+n). */
static int check_comp(const char *s, size_t n, char *err, size_t errlen)
{
    if (n == 0) {
        mds__errf(err, errlen, "empty name");
        return CURVE_ERR_BAD_NAME;
    }
    if (n > MDS_NS_NAME_MAX) {
        mds__errf(err, errlen, "name '%.32s...' is %zu bytes (max %d)", s, n, MDS_NS_NAME_MAX);
        return -ENAMETOOLONG;
    }
    if ((n == 1 && s[0] == '.') || (n == 2 && s[0] == '.' && s[1] == '.')) {
        mds__errf(err, errlen, "name '%.*s' is not allowed", (int)n, s);
        return CURVE_ERR_BAD_NAME;
    }
    if (s[0] == '-') {
        mds__errf(err, errlen, "name '%.*s' must not start with '-'", (int)(n > 64 ? 64 : n), s);
        return CURVE_ERR_BAD_NAME;
    }
    for (size_t i = 0; i < n; i++) {
        if (!name_char_ok(s[i])) {
            mds__errf(err, errlen,
                      "name '%.*s': character 0x%02x at offset %zu not allowed (use "
                      "[A-Za-z0-9._+=@:-])",
                      (int)(n > 64 ? 64 : n), s, (unsigned char)s[i], i);
            return CURVE_ERR_BAD_NAME;
        }
    }
    return 0;
}

int mds_ns_check_name(const char *name, char *err, size_t errlen)
{
    if (name == NULL) {
        mds__errf(err, errlen, "name missing");
        return CURVE_ERR_BAD_NAME;
    }
    return check_comp(name, strnlen(name, MDS_NS_NAME_MAX + 1), err, errlen);
}

static int check_owner(const char *s, size_t n);

int mds_ns_check_owner(const char *owner, char *err, size_t errlen)
{
    if (owner == NULL || check_owner(owner, strnlen(owner, MDS_NS_OWNER_MAX + 1)) != 0) {
        mds__errf(err, errlen, "owner '%.64s' must be 1..%d characters of [A-Za-z0-9._+=@:-]",
                  owner ? owner : "(null)", MDS_NS_OWNER_MAX);
        return CURVE_ERR_BAD_NAME;
    }
    return 0;
}

int mds_ns_check_create(uint64_t parent_id, const char *name, char *err, size_t errlen)
{
    int rc = mds_ns_check_name(name, err, errlen);
    if (rc != 0)
        return rc;
    if (parent_id == MDS_NS_ROOT_ID && strcmp(name, MDS_NS_RECYCLE_BIN) == 0) {
        mds__errf(err, errlen, "'/%s' is reserved", MDS_NS_RECYCLE_BIN);
        return CURVE_ERR_PERMISSION;
    }
    return 0;
}

int mds_ns_parse_path(const char *path, mds_ns_path *out, char *err, size_t errlen)
{
    out->n = 0;
    if (path == NULL || path[0] != '/') {
        mds__errf(err, errlen, "path '%.64s' must be absolute", path ? path : "(null)");
        return CURVE_ERR_BAD_NAME;
    }
    size_t len = strnlen(path, MDS_NS_PATH_MAX + 1);
    if (len > MDS_NS_PATH_MAX) {
        mds__errf(err, errlen, "path '%.32s...' longer than %d bytes", path, MDS_NS_PATH_MAX);
        return -ENAMETOOLONG;
    }
    if (strstr(path, "//") != NULL) {
        mds__errf(err, errlen, "path '%.64s': empty component", path);
        return CURVE_ERR_BAD_NAME;
    }
    memcpy(out->buf, path, len + 1);
    if (len > 1 && out->buf[len - 1] == '/')
        out->buf[--len] = '\0'; /* one trailing slash */
    size_t i = 1;
    while (i < len) {
        char *s = &out->buf[i];
        char *slash = strchr(s, '/');
        size_t n = slash ? (size_t)(slash - s) : strlen(s);
        if (n == 0) {
            mds__errf(err, errlen, "path '%.64s': empty component", path);
            return CURVE_ERR_BAD_NAME;
        }
        int rc = check_comp(s, n, err, errlen);
        if (rc != 0)
            return rc;
        if (out->n == MDS_NS_DEPTH_MAX) {
            mds__errf(err, errlen, "path '%.32s...' deeper than %d", path, MDS_NS_DEPTH_MAX);
            return -ENAMETOOLONG;
        }
        out->comp[out->n++] = s;
        if (slash != NULL)
            *slash = '\0';
        i += n + 1;
    }
    return 0;
}

static bool is_recycle_bin(const mds_ns_path *p)
{
    return p->n == 1 && strcmp(p->comp[0], MDS_NS_RECYCLE_BIN) == 0;
}

int mds_ns_check_rename(const mds_ns_path *from, const mds_ns_path *to, char *err,
                        size_t errlen)
{
    if (from->n == 0 || to->n == 0) {
        mds__errf(err, errlen, "cannot rename the root directory");
        return CURVE_ERR_PERMISSION;
    }
    if (is_recycle_bin(from) || is_recycle_bin(to)) {
        mds__errf(err, errlen, "cannot rename /%s itself", MDS_NS_RECYCLE_BIN);
        return CURVE_ERR_PERMISSION;
    }
    if (to->n > from->n) {
        bool inside = true;
        for (size_t i = 0; i < from->n && inside; i++)
            inside = strcmp(from->comp[i], to->comp[i]) == 0;
        if (inside) {
            mds__errf(err, errlen, "cannot move a directory into itself");
            return -EINVAL;
        }
    }
    return 0;
}

int mds_ns_recycle_name(const char *name, uint64_t id, char *buf, size_t len)
{
    char suffix[24];
    int sn = snprintf(suffix, sizeof(suffix), "-%" PRIu64, id);
    CURVE_ASSERT(sn > 0 && (size_t)sn < sizeof(suffix));
    size_t nl = strnlen(name, MDS_NS_NAME_MAX);
    if (nl + (size_t)sn > MDS_NS_NAME_MAX)
        nl = MDS_NS_NAME_MAX - (size_t)sn;
    if (nl + (size_t)sn + 1 > len)
        return -ENOSPC;
    memcpy(buf, name, nl);
    memcpy(buf + nl, suffix, (size_t)sn + 1);
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* sizes */

#define KiB (1024ull)
#define MiB (1024ull * KiB)
#define GiB (1024ull * MiB)
#define TiB (1024ull * GiB)

void mds_ns_size_cfg_default(mds_ns_size_cfg *cfg)
{
    cfg->chunk_size = 16 * MiB;
    cfg->segment_size = 1 * GiB;
    cfg->min_size = 10 * GiB;
    cfg->max_size = 20 * TiB;
}

const curve_cfg_def mds_ns_cfg_defs[] = {
    {"mds.volume.chunk_size", CURVE_CFG_INT, "16m", 4096, 1ll << 30, "chunk size (power of 2)"},
    {"mds.volume.segment_size", CURVE_CFG_INT, "1g", 4096, 4ll << 30,
     "segment size: unit of lazy allocation, multiple of the chunk size"},
    {"mds.volume.min_size", CURVE_CFG_INT, "10g", 4096, 1ll << 50, "smallest volume"},
    {"mds.volume.max_size", CURVE_CFG_INT, "20t", 4096, 1ll << 50, "largest volume"},
    {"mds.chunkid.batch", CURVE_CFG_INT, "4096", 1, 1ll << 30,
     "chunk ids reserved in etcd per round trip"},
};
const size_t mds_ns_cfg_ndefs = CURVE_ARRAY_SIZE(mds_ns_cfg_defs);

int mds_ns_cfg_from_config(const curve_config *c, mds_ns_size_cfg *out, uint64_t *batch,
                           char *err, size_t errlen)
{
    out->chunk_size = (uint64_t)curve_config_int(c, "mds.volume.chunk_size");
    out->segment_size = (uint64_t)curve_config_int(c, "mds.volume.segment_size");
    out->min_size = (uint64_t)curve_config_int(c, "mds.volume.min_size");
    out->max_size = (uint64_t)curve_config_int(c, "mds.volume.max_size");
    if (batch != NULL)
        *batch = (uint64_t)curve_config_int(c, "mds.chunkid.batch");
    return mds_ns_check_size_cfg(out, err, errlen) == 0 ? 0 : CURVE_ERR_CONFIG;
}

int mds_ns_check_size_cfg(const mds_ns_size_cfg *cfg, char *err, size_t errlen)
{
    uint64_t c = cfg->chunk_size, s = cfg->segment_size;
    if (c < 4 * KiB || (c & (c - 1)) != 0) {
        mds__errf(err, errlen, "chunk_size %" PRIu64 " must be a power of two >= 4096", c);
        return -EINVAL;
    }
    if (s == 0 || s % c != 0 || s > 4 * GiB - c || s / c > MDS_NS_MAX_CHUNKS_PER_SEGMENT) {
        mds__errf(err, errlen,
                  "segment_size %" PRIu64 " must be a multiple of chunk_size, < 4 GiB and at "
                  "most %d chunks",
                  s, MDS_NS_MAX_CHUNKS_PER_SEGMENT);
        return -EINVAL;
    }
    if (cfg->min_size == 0 || cfg->min_size % s != 0 || cfg->max_size % s != 0 ||
        cfg->max_size < cfg->min_size) {
        mds__errf(err, errlen,
                  "min_size %" PRIu64 " / max_size %" PRIu64
                  " must be multiples of segment_size with 0 < min <= max",
                  cfg->min_size, cfg->max_size);
        return -EINVAL;
    }
    return 0;
}

int mds_ns_check_size(const mds_ns_size_cfg *cfg, uint64_t size, char *err, size_t errlen)
{
    if (size % cfg->segment_size != 0) {
        mds__errf(err, errlen, "size %" PRIu64 " is not a multiple of the segment size %" PRIu64,
                  size, cfg->segment_size);
        return CURVE_ERR_BAD_SIZE;
    }
    if (size < cfg->min_size) {
        mds__errf(err, errlen, "size %" PRIu64 " is below the minimum %" PRIu64, size,
                  cfg->min_size);
        return -ERANGE;
    }
    if (size > cfg->max_size) {
        mds__errf(err, errlen, "size %" PRIu64 " is above the maximum %" PRIu64, size,
                  cfg->max_size);
        return -EFBIG;
    }
    return 0;
}

int mds_ns_check_extend(const mds_ns_size_cfg *cfg, uint64_t old_size, uint64_t new_size,
                        char *err, size_t errlen)
{
    if (new_size < old_size) {
        mds__errf(err, errlen, "cannot shrink from %" PRIu64 " to %" PRIu64 " bytes", old_size,
                  new_size);
        return -EOPNOTSUPP;
    }
    return mds_ns_check_size(cfg, new_size, err, errlen);
}

/* ---------------------------------------------------------------------------------------- */
/* id allocator */

void mds_idalloc_init(mds_idalloc *a, uint64_t batch, uint64_t low_water)
{
    CURVE_ASSERT(batch > 0 && low_water < batch);
    a->next = a->end = 0;
    a->batch = batch;
    a->low_water = low_water;
}

uint64_t mds_idalloc_left(const mds_idalloc *a)
{
    CURVE_ASSERT(a->next <= a->end);
    return a->end - a->next;
}

bool mds_idalloc_need_refill(const mds_idalloc *a, uint64_t want)
{
    uint64_t left = mds_idalloc_left(a);
    return left < a->low_water || left < want;
}

int mds_idalloc_refill(mds_idalloc *a, uint64_t start, uint64_t count)
{
    if (start == 0 || count == 0 || start > UINT64_MAX - count)
        return -EINVAL;
    if (start < a->next) /* would hand out ids again */
        return -EINVAL;
    a->next = start;
    a->end = start + count;
    return 0;
}

int mds_idalloc_take(mds_idalloc *a, uint64_t n, uint64_t *out)
{
    if (mds_idalloc_left(a) < n)
        return -EAGAIN;
    for (uint64_t i = 0; i < n; i++)
        out[i] = a->next++;
    return 0;
}

/* ---------------------------------------------------------------------------------------- */
/* segments */

int mds_ns_alloc_segment(const uint32_t *copysets, size_t ncopysets, uint64_t seg_index,
                         uint32_t nchunks, mds_rng *rng, mds_idalloc *ids, mds_chunk_loc *out)
{
    if (ncopysets == 0 || ncopysets > MDS_MAX_COPYSETS_PER_POOL || nchunks == 0 ||
        nchunks > MDS_NS_MAX_CHUNKS_PER_SEGMENT)
        return -EINVAL;
    if (mds_idalloc_left(ids) < nchunks)
        return -EAGAIN;
    /* DESIGN §2: round-robin over the pool's copysets from a random start, so consecutive
     * chunks of a volume land on different copysets (and the load spreads over the pool). */
    uint32_t start = mds_rng_below(rng, (uint32_t)ncopysets);
    for (uint32_t k = 0; k < nchunks; k++) {
        out[k].copyset_id = copysets[(start + k) % ncopysets];
        int rc = mds_idalloc_take(ids, 1, &out[k].chunk_id);
        CURVE_ASSERT(rc == 0);
    }
    (void)seg_index; /* the start is random per segment; the index is for the caller's record */
    return 0;
}

int mds_ns_choose_pool(const mds_topology *t, mds_rng *rng, uint32_t *pool_id)
{
    uint64_t total = 0;
    size_t first;
    for (size_t i = 0; i < t->lpools.n; i++)
        if (t->lpools.v[i].copysets_created)
            total += mds_topo_pool_copysets(t, t->lpools.v[i].id, &first);
    if (total == 0)
        return -ENOSPC;
    CURVE_ASSERT(total <= UINT32_MAX);
    uint64_t pick = mds_rng_below(rng, (uint32_t)total);
    for (size_t i = 0; i < t->lpools.n; i++) {
        if (!t->lpools.v[i].copysets_created)
            continue;
        uint64_t n = mds_topo_pool_copysets(t, t->lpools.v[i].id, &first);
        if (pick < n) {
            *pool_id = t->lpools.v[i].id;
            return 0;
        }
        pick -= n;
    }
    CURVE_UNREACHABLE();
}

size_t mds_ns_pool_copyset_ids(const mds_topology *t, uint32_t pool_id, uint32_t *out,
                               size_t max)
{
    size_t first;
    size_t n = mds_topo_pool_copysets(t, pool_id, &first);
    for (size_t i = 0; i < n && i < max; i++)
        out[i] = t->copysets.v[first + i].id;
    return n;
}

/* ---------------------------------------------------------------------------------------- */
/* records */

/* Layout constants (docs/mds.md "Records"): the header ends where the name starts. */
CURVE_STATIC_ASSERT(MDS_FILE_REC_HDR == 58 + 2, "file record header is 60 bytes");
CURVE_STATIC_ASSERT(MDS_FILE_REC_MAX <= 65535, "file record lengths fit u16");
CURVE_STATIC_ASSERT(MDS_SEG_REC_HDR == 28 + 4, "segment record header is 32 bytes");
CURVE_STATIC_ASSERT(MDS_NS_NAME_MAX <= UINT16_MAX && MDS_NS_OWNER_MAX <= UINT16_MAX,
                    "lengths are u16 on disk");

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

static int check_owner(const char *s, size_t n)
{
    if (n == 0 || n > MDS_NS_OWNER_MAX)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (!name_char_ok(s[i]))
            return -EINVAL;
    return 0;
}

/* Root ("/", id 1) has an empty name; every other file has a valid component name. */
static int check_file_name(uint64_t id, const char *s, size_t n)
{
    if (id == MDS_NS_ROOT_ID && n == 0)
        return 0;
    return check_comp(s, n, NULL, 0);
}

int mds_file_encode(const mds_file *f, uint8_t *buf, size_t len)
{
    size_t nl = strnlen(f->name, sizeof(f->name)), ol = strnlen(f->owner, sizeof(f->owner));
    if ((f->type != MDS_FILE_DIR && f->type != MDS_FILE_VOLUME) ||
        (f->status != MDS_FILE_NORMAL && f->status != MDS_FILE_DELETING) || f->id == 0 ||
        check_file_name(f->id, f->name, nl) != 0 || check_owner(f->owner, ol) != 0)
        return -EINVAL;
    size_t total = MDS_FILE_REC_HDR + nl + ol + 4;
    if (len < total)
        return -ENOSPC;
    put32(buf + 0, MDS_FILE_REC_MAGIC);
    put16(buf + 4, MDS_FILE_REC_VERSION);
    buf[6] = (uint8_t)f->type;
    buf[7] = (uint8_t)f->status;
    put64(buf + 8, f->id);
    put64(buf + 16, f->parent_id);
    put64(buf + 24, f->size);
    put64(buf + 32, f->ctime_ns);
    put64(buf + 40, f->epoch);
    put32(buf + 48, f->segment_size);
    put32(buf + 52, f->chunk_size);
    put16(buf + 56, (uint16_t)nl);
    put16(buf + 58, (uint16_t)ol);
    memcpy(buf + MDS_FILE_REC_HDR, f->name, nl);
    memcpy(buf + MDS_FILE_REC_HDR + nl, f->owner, ol);
    put32(buf + total - 4, curve_crc32c(0, buf, total - 4));
    return (int)total;
}

int mds_file_decode(const uint8_t *buf, size_t len, mds_file *f, char *err, size_t errlen)
{
    memset(f, 0, sizeof(*f));
    if (len < MDS_FILE_REC_HDR + 4 || get32(buf) != MDS_FILE_REC_MAGIC) {
        mds__errf(err, errlen, "file record: too short or bad magic (%zu bytes)", len);
        return CURVE_ERR_CORRUPT;
    }
    if (get16(buf + 4) != MDS_FILE_REC_VERSION) {
        mds__errf(err, errlen, "file record: unsupported version %u", get16(buf + 4));
        return CURVE_ERR_CORRUPT;
    }
    size_t nl = get16(buf + 56), ol = get16(buf + 58);
    if (nl > MDS_NS_NAME_MAX || ol > MDS_NS_OWNER_MAX || len != MDS_FILE_REC_HDR + nl + ol + 4) {
        mds__errf(err, errlen, "file record: bad lengths (name %zu, owner %zu, record %zu)", nl,
                  ol, len);
        return CURVE_ERR_CORRUPT;
    }
    uint32_t crc = curve_crc32c(0, buf, len - 4);
    if (crc != get32(buf + len - 4)) {
        mds__errf(err, errlen, "file record: crc mismatch (stored %08x, computed %08x)",
                  get32(buf + len - 4), crc);
        return CURVE_ERR_CORRUPT;
    }
    f->type = (mds_file_type)buf[6];
    f->status = (mds_file_status)buf[7];
    f->id = get64(buf + 8);
    f->parent_id = get64(buf + 16);
    f->size = get64(buf + 24);
    f->ctime_ns = get64(buf + 32);
    f->epoch = get64(buf + 40);
    f->segment_size = get32(buf + 48);
    f->chunk_size = get32(buf + 52);
    memcpy(f->name, buf + MDS_FILE_REC_HDR, nl);
    memcpy(f->owner, buf + MDS_FILE_REC_HDR + nl, ol);
    if ((buf[6] != MDS_FILE_DIR && buf[6] != MDS_FILE_VOLUME) ||
        (buf[7] != MDS_FILE_NORMAL && buf[7] != MDS_FILE_DELETING) || f->id == 0 ||
        check_file_name(f->id, f->name, nl) != 0 || check_owner(f->owner, ol) != 0) {
        mds__errf(err, errlen, "file record %" PRIu64 ": invalid type, status, name or owner",
                  f->id);
        memset(f, 0, sizeof(*f));
        return CURVE_ERR_CORRUPT;
    }
    return 0;
}

int mds_segment_encode(const mds_segment *s, uint8_t *buf, size_t len)
{
    if (s->nchunks == 0 || s->nchunks > MDS_NS_MAX_CHUNKS_PER_SEGMENT || s->file_id == 0 ||
        s->pool_id == 0)
        return -EINVAL;
    size_t total = MDS_SEG_REC_LEN(s->nchunks);
    if (len < total)
        return -ENOSPC;
    put32(buf + 0, MDS_SEG_REC_MAGIC);
    put16(buf + 4, MDS_SEG_REC_VERSION);
    put16(buf + 6, 0);
    put64(buf + 8, s->file_id);
    put64(buf + 16, s->offset);
    put32(buf + 24, s->pool_id);
    put32(buf + 28, s->nchunks);
    for (uint32_t i = 0; i < s->nchunks; i++) {
        uint8_t *p = buf + MDS_SEG_REC_HDR + 12 * (size_t)i;
        put32(p, s->chunks[i].copyset_id);
        put64(p + 4, s->chunks[i].chunk_id);
    }
    put32(buf + total - 4, curve_crc32c(0, buf, total - 4));
    return (int)total;
}

int mds_segment_decode(const uint8_t *buf, size_t len, mds_segment *s, char *err,
                       size_t errlen)
{
    s->nchunks = 0;
    if (len < MDS_SEG_REC_LEN(1) || get32(buf) != MDS_SEG_REC_MAGIC ||
        get16(buf + 4) != MDS_SEG_REC_VERSION || get16(buf + 6) != 0) {
        mds__errf(err, errlen, "segment record: too short, bad magic, version or flags");
        return CURVE_ERR_CORRUPT;
    }
    uint32_t n = get32(buf + 28);
    if (n == 0 || n > MDS_NS_MAX_CHUNKS_PER_SEGMENT || len != MDS_SEG_REC_LEN(n)) {
        mds__errf(err, errlen, "segment record: bad chunk count %u for %zu bytes", n, len);
        return CURVE_ERR_CORRUPT;
    }
    uint32_t crc = curve_crc32c(0, buf, len - 4);
    if (crc != get32(buf + len - 4)) {
        mds__errf(err, errlen, "segment record: crc mismatch");
        return CURVE_ERR_CORRUPT;
    }
    s->file_id = get64(buf + 8);
    s->offset = get64(buf + 16);
    s->pool_id = get32(buf + 24);
    if (s->file_id == 0 || s->pool_id == 0) {
        mds__errf(err, errlen, "segment record: zero file or pool id");
        return CURVE_ERR_CORRUPT;
    }
    for (uint32_t i = 0; i < n; i++) {
        const uint8_t *p = buf + MDS_SEG_REC_HDR + 12 * (size_t)i;
        s->chunks[i].copyset_id = get32(p);
        s->chunks[i].chunk_id = get64(p + 4);
    }
    s->nchunks = n;
    return 0;
}

/* ---- sessions ---- */

int mds_ns_open_mode(bool exclusive, bool read_only, mds_open_mode *mode, char *err,
                     size_t errlen)
{
    if (exclusive && read_only) {
        snprintf(err, errlen, "an open cannot be both read-only and exclusive");
        return -EINVAL;
    }
    *mode = read_only ? MDS_OPEN_READONLY : exclusive ? MDS_OPEN_EXCLUSIVE : MDS_OPEN_SHARED;
    return 0;
}

const char *mds_ns_open_mode_name(mds_open_mode mode)
{
    switch (mode) {
    case MDS_OPEN_READONLY:
        return "readonly";
    case MDS_OPEN_EXCLUSIVE:
        return "exclusive";
    default:
        return "shared";
    }
}

static bool token_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

int mds_ns_check_token(const char *token, char *err, size_t errlen)
{
    if (!token)
        return 0;
    size_t n = strlen(token);
    if (n > MDS_SESSION_TOKEN_MAX) {
        snprintf(err, errlen, "opener token longer than %d bytes", MDS_SESSION_TOKEN_MAX);
        return -EINVAL;
    }
    for (size_t i = 0; i < n; i++) {
        if (!token_char(token[i])) {
            snprintf(err, errlen, "opener token has a bad character at byte %zu", i);
            return -EINVAL;
        }
    }
    return 0;
}

int mds_ns_writer_encode(int64_t lease, const char *token, char *buf, size_t len)
{
    if (mds_ns_check_token(token, NULL, 0) < 0 || lease <= 0)
        return -EINVAL;
    int n = snprintf(buf, len, "w1 %016" PRIx64 " %s", (uint64_t)lease, token ? token : "");
    if (n < 0 || (size_t)n >= len)
        return -ENOSPC;
    uint32_t crc = curve_crc32c(0, buf, (size_t)n);
    int m = snprintf(buf + n, len - (size_t)n, " %08" PRIx32, crc);
    if (m < 0 || (size_t)(n + m) >= len)
        return -ENOSPC;
    return n + m;
}

int mds_ns_writer_decode(const char *buf, size_t len, int64_t *lease, char *token)
{
    /* "w1 " + 16 hex + " " + token + " " + 8 hex */
    if (len < 3 + 16 + 1 + 1 + 8 || len >= MDS_WRITER_REC_MAX || memcmp(buf, "w1 ", 3) != 0)
        return CURVE_ERR_CORRUPT;
    size_t body = len - 9;
    if (buf[body] != ' ' || buf[19] != ' ')
        return CURVE_ERR_CORRUPT;
    uint64_t l = 0;
    for (size_t i = 3; i < 19; i++) {
        char c = buf[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return CURVE_ERR_CORRUPT;
        l = l << 4 | (uint64_t)v;
    }
    uint32_t crc = 0;
    for (size_t i = body + 1; i < len; i++) {
        char c = buf[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return CURVE_ERR_CORRUPT;
        crc = crc << 4 | (uint32_t)v;
    }
    if (curve_crc32c(0, buf, body) != crc || l == 0 || l > INT64_MAX)
        return CURVE_ERR_CORRUPT;
    size_t tl = body - 20;
    if (tl > MDS_SESSION_TOKEN_MAX)
        return CURVE_ERR_CORRUPT;
    for (size_t i = 0; i < tl; i++)
        if (!token_char(buf[20 + i]))
            return CURVE_ERR_CORRUPT;
    memcpy(token, buf + 20, tl);
    token[tl] = '\0';
    *lease = (int64_t)l;
    return 0;
}

int mds_ns_writer_conflict(const char *rec, size_t len, const char *token, int64_t own_lease,
                           int64_t *orphan_lease, char *err, size_t errlen)
{
    int64_t lease = 0;
    char held[MDS_SESSION_TOKEN_MAX + 1];
    *orphan_lease = 0;
    if (mds_ns_writer_decode(rec, len, &lease, held) < 0) {
        snprintf(err, errlen, "the writer record is corrupt (%zu bytes)", len);
        return CURVE_ERR_CORRUPT;
    }
    if (token && *token && strcmp(held, token) == 0 && lease != own_lease) {
        *orphan_lease = lease;
        return 1;
    }
    snprintf(err, errlen, "open read-write by session %016" PRIx64
             " (another opener; an exclusive open takes over)", (uint64_t)lease);
    return 0;
}
