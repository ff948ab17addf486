/* Unit tests for the copyset state machine, driving its raft_fsm callbacks directly. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <cmocka.h>

#include <errno.h>
#include <stdbool.h>
#include <ftw.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkserver/copyset_fsm.h"
#include "common/crc32c.h"
#include "common/failpoint.h"
#include "curve/errors.h"

#define CHUNK_SIZE (256u << 10)
#define FILE_SIZE ((uint64_t)CHUNK_SIZE + CURVE_CHUNK_HEADER_SIZE)
#define POOL_FILES 24
#define WAIT_MS 60000
#define GID 0x100000002ull

typedef struct node {
    char dir[256];
    curve_cfp *pool;
    curve_chunkstore *store;
    cs_fsm *fsm;
} node;

static char *root;

static int rm_cb(const char *p, const struct stat *sb, int fl, struct FTW *ftw)
{
    (void)sb;
    (void)fl;
    (void)ftw;
    return remove(p);
}

static void path(char *out, size_t len, const char *a, const char *b)
{
    int n = snprintf(out, len, "%s/%s", a, b);
    assert_true(n > 0 && (size_t)n < len);
}

/* Volume epoch of the writes apply_write proposes, and what epoch_seen reported last. */
static uint64_t w_file = 9, w_epoch = 3;
static uint64_t seen_file, seen_epoch, seen_calls;

static void seen_cb(void *arg, uint64_t file_id, uint64_t epoch)
{
    (void)arg;
    seen_file = file_id;
    seen_epoch = epoch;
    seen_calls++;
}

static void open_fsm(node *n)
{
    char p[512];
    path(p, sizeof(p), n->dir, "copysets/4294967298/snapshot");
    cs_fsm_opts o = {.group_id = GID, .store = n->store, .snapshot_dir = p,
                     .epoch_seen = seen_cb};
    assert_int_equal(cs_fsm_open(&o, &n->fsm), 0);
}

static void node_open(node *n, const char *name)
{
    memset(n, 0, sizeof(*n));
    path(n->dir, sizeof(n->dir), root, name);
    assert_int_equal(mkdir(n->dir, 0755), 0);
    char p[512];
    path(p, sizeof(p), n->dir, "chunkfilepool");
    curve_cfp_opts po = {.dir = p, .chunk_size = CHUNK_SIZE, .target_files = POOL_FILES};
    assert_int_equal(curve_cfp_open(&po, &n->pool), 0);
    assert_int_equal(curve_cfp_start(n->pool), 0);
    assert_int_equal(curve_cfp_wait(n->pool, POOL_FILES, WAIT_MS), 0);
    path(p, sizeof(p), n->dir, "copysets");
    assert_int_equal(mkdir(p, 0755), 0);
    path(p, sizeof(p), n->dir, "copysets/4294967298");
    assert_int_equal(mkdir(p, 0755), 0);
    path(p, sizeof(p), n->dir, "copysets/4294967298/data");
    curve_chunkstore_opts so = {.data_dir = p, .pool = n->pool};
    assert_int_equal(curve_chunkstore_open(&so, &n->store), 0);
    open_fsm(n);
}

static void node_close(node *n)
{
    cs_fsm_close(n->fsm);
    curve_chunkstore_close(n->store);
    curve_cfp_close(n->pool);
    memset(n, 0, sizeof(*n));
}

static int setup(void **state)
{
    (void)state;
    char tmpl[] = "/tmp/curve-csfsm-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    root = strdup(tmpl);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    curve_failpoint_clear_all();
    nftw(root, rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(root);
    root = NULL;
    return 0;
}

/* Applies a write command as the Raft core would. Returns the apply status. */
static int apply_write(node *n, uint64_t index, uint64_t chunk, uint64_t off, const void *data,
                       uint32_t len)
{
    static uint8_t buf[CS_CMD_HDR_SIZE + CHUNK_SIZE];
    cs_cmd c = {.type = CS_CMD_WRITE, .chunk_id = chunk, .offset = off, .len = len,
                .data = data, .epoch = w_epoch, .file_id = w_file};
    int total = cs_cmd_encode(&c, buf, sizeof(buf));
    assert_true(total > 0);
    struct raft_entry e = {.term = 1, .type = RAFT_ENTRY_COMMAND, .len = (uint32_t)total,
                           .data = buf};
    return cs_fsm_apply(n->fsm, index, &e);
}

static int apply_delete(node *n, uint64_t index, uint64_t chunk)
{
    uint8_t buf[CS_CMD_HDR_SIZE];
    cs_cmd c = {.type = CS_CMD_DELETE, .chunk_id = chunk};
    assert_int_equal(cs_cmd_encode(&c, buf, sizeof(buf)), CS_CMD_HDR_SIZE);
    struct raft_entry e = {.term = 1, .type = RAFT_ENTRY_COMMAND, .len = CS_CMD_HDR_SIZE,
                           .data = buf};
    return cs_fsm_apply(n->fsm, index, &e);
}

static void apply_config(node *n, uint64_t index)
{
    uint8_t buf[RAFT_CONFIG_ENCODED_MAX];
    struct raft_config c = {.n = 1, .s = {{.id = 1, .role = RAFT_VOTER}}};
    size_t len = raft_config_encode(&c, buf);
    struct raft_entry e = {.term = 1, .type = RAFT_ENTRY_CONFIG, .len = (uint32_t)len,
                           .data = buf};
    assert_int_equal(cs_fsm_apply(n->fsm, index, &e), 0);
}

static void fill(uint8_t *b, size_t len, uint32_t seed)
{
    for (size_t i = 0; i < len; i++)
        b[i] = (uint8_t)(seed * 131u + i * 7u + (i >> 9));
}

static void test_cmd_codec(void **state)
{
    (void)state;
    uint8_t data[4096], buf[CS_CMD_HDR_SIZE + 4096];
    fill(data, sizeof(data), 1);
    cs_cmd c = {.type = CS_CMD_WRITE, .chunk_id = 77, .offset = 8192, .sn = 5, .epoch = 6,
                .file_id = 7, .len = sizeof(data), .data = data};
    int len = cs_cmd_encode(&c, buf, sizeof(buf));
    assert_int_equal(len, (int)sizeof(buf));
    cs_cmd d;
    assert_int_equal(cs_cmd_decode(buf, (size_t)len, &d), 0);
    assert_int_equal(d.type, CS_CMD_WRITE);
    assert_int_equal(d.chunk_id, 77);
    assert_int_equal(d.offset, 8192);
    assert_int_equal(d.sn, 5);
    assert_int_equal(d.epoch, 6);
    assert_int_equal(d.file_id, 7);
    assert_int_equal(d.len, sizeof(data));
    assert_memory_equal(d.data, data, sizeof(data));
    /* every single-bit flip (sampled) and every truncation is rejected */
    for (int i = 0; i < len; i += (i < (int)CS_CMD_HDR_SIZE ? 1 : 97)) {
        buf[i] ^= 0x10;
        assert_int_equal(cs_cmd_decode(buf, (size_t)len, &d), CURVE_ERR_CORRUPT);
        buf[i] ^= 0x10;
    }
    for (int l = 0; l < len; l += 61)
        assert_int_equal(cs_cmd_decode(buf, (size_t)l, &d), CURVE_ERR_CORRUPT);
    assert_int_equal(cs_cmd_decode(NULL, 0, &d), CURVE_ERR_CORRUPT);
    /* encode refuses bad commands */
    cs_cmd bad = {.type = 9};
    assert_int_equal(cs_cmd_encode(&bad, buf, sizeof(buf)), -EINVAL);
    cs_cmd del_with_data = {.type = CS_CMD_DELETE, .len = 4, .data = data};
    assert_int_equal(cs_cmd_encode(&del_with_data, buf, sizeof(buf)), -EINVAL);
    assert_int_equal(cs_cmd_encode(&c, buf, 100), -ENOSPC);
    /* iovec header encoding gives the same crc */
    uint8_t hdr[CS_CMD_HDR_SIZE];
    struct iovec iov[2] = {{data, 1000}, {data + 1000, sizeof(data) - 1000}};
    cs_cmd ci = c;
    ci.data = NULL;
    cs_cmd_encode_hdr(&ci, iov, 2, hdr);
    assert_memory_equal(hdr, buf, CS_CMD_HDR_SIZE);
    uint64_t id;
    assert_int_equal(cs_fsm__parse_chunk_name("chunk_12", &id), 0);
    assert_int_equal(id, 12);
    assert_int_equal(cs_fsm__parse_chunk_name("chunk_012", &id), -EINVAL);
    assert_int_equal(cs_fsm__parse_chunk_name("chunk_", &id), -EINVAL);
    assert_int_equal(cs_fsm__parse_chunk_name("chunk_99999999999999999999", &id), -EINVAL);
    assert_int_equal(cs_fsm__parse_chunk_name("../chunk_1", &id), -EINVAL);
}

static void test_apply_idempotent(void **state)
{
    (void)state;
    node n;
    node_open(&n, "a");
    static uint8_t d1[8192], d2[4096], rd[8192];
    fill(d1, sizeof(d1), 2);
    fill(d2, sizeof(d2), 3);
    assert_int_equal(apply_write(&n, 2, 10, 0, d1, sizeof(d1)), 0);
    assert_int_equal(apply_write(&n, 3, 10, 4096, d2, sizeof(d2)), 0);
    /* replay after a restart: same entries again, same result */
    assert_int_equal(apply_write(&n, 2, 10, 0, d1, sizeof(d1)), 0);
    assert_int_equal(apply_write(&n, 3, 10, 4096, d2, sizeof(d2)), 0);
    assert_int_equal(curve_chunkstore_read(n.store, 10, 0, rd, sizeof(rd)), 0);
    assert_memory_equal(rd, d1, 4096);
    assert_memory_equal(rd + 4096, d2, 4096);
    assert_int_equal(apply_delete(&n, 4, 10), 0);
    assert_int_equal(apply_delete(&n, 4, 10), 0); /* a missing chunk is a success */
    assert_int_equal(curve_chunkstore_read(n.store, 10, 0, rd, 4096), CURVE_ERR_CHUNK_NOTEXIST);
    /* a bad entry is refused and counted, never applied */
    uint8_t junk[80] = {1, 1};
    struct raft_entry e = {.term = 1, .type = RAFT_ENTRY_COMMAND, .len = sizeof(junk),
                           .data = junk};
    assert_int_equal(cs_fsm_apply(n.fsm, 5, &e), CURVE_ERR_CORRUPT);
    /* an unaligned write is refused by the store */
    assert_int_equal(apply_write(&n, 6, 11, 100, d2, 4096), CURVE_ERR_INVALID_REQUEST);
    struct raft_entry noop = {.term = 1, .type = RAFT_ENTRY_NOOP};
    assert_int_equal(cs_fsm_apply(n.fsm, 7, &noop), 0);
    apply_config(&n, 8);
    cs_fsm_stats st;
    cs_fsm_get_stats(n.fsm, &st);
    assert_int_equal(st.applied_index, 8);
    assert_int_equal(st.epoch, 1);
    assert_int_equal(st.writes, 5);
    assert_int_equal(st.deletes, 2);
    assert_int_equal(st.corrupt_cmds, 1);
    assert_int_equal(st.apply_errors, 2);
    node_close(&n);
}

/* The snapshot fsyncs dirty chunks first and records the epoch across a reopen. */
static void test_snapshot_build(void **state)
{
    (void)state;
    node n;
    node_open(&n, "b");
    static uint8_t d[4096];
    fill(d, sizeof(d), 4);
    apply_config(&n, 1);
    apply_config(&n, 2);
    for (uint64_t c = 1; c <= 3; c++)
        assert_int_equal(apply_write(&n, 2 + c, c * 100, 0, d, sizeof(d)), 0);
    curve_chunkstore_status ss;
    curve_chunkstore_get_status(n.store, &ss);
    assert_int_equal(ss.dirty, 3);
    struct raft_snapshot_meta meta = {.index = 5, .term = 1};
    cs_fsm_snap *s = NULL;
    assert_int_equal(cs_fsm_snapshot_build(n.fsm, &meta, cs_fsm_epoch(n.fsm), &s), 0);
    curve_chunkstore_get_status(n.store, &ss);
    assert_int_equal(ss.dirty, 0);
    const struct raft_manifest *m = cs_fsm_snap_manifest(s);
    assert_int_equal(m->nfiles, 3);
    assert_string_equal(m->files[0].name, "chunk_100");
    assert_string_equal(m->files[2].name, "chunk_300");
    assert_int_equal(m->files[1].size, FILE_SIZE);
    uint64_t epoch, gid;
    uint32_t csize, nvol;
    static cs_vol_epoch vols[CS_FSM_VOL_EPOCHS_MAX];
    assert_int_equal(
        cs_fsm__meta_decode(m->meta, m->meta_len, &epoch, &gid, &csize, vols, &nvol), 0);
    assert_int_equal(epoch, 2);
    assert_int_equal(nvol, 1); /* the volume-epoch table travels with the snapshot */
    assert_int_equal(vols[0].file_id, 9);
    assert_int_equal(vols[0].epoch, 3);
    assert_int_equal(gid, GID);
    assert_int_equal(csize, CHUNK_SIZE);
    cs_fsm_snap_free(s);
    /* a failed sync is reported, never a silent success */
    assert_int_equal(apply_write(&n, 6, 100, 4096, d, sizeof(d)), 0);
    assert_int_equal(curve_failpoint_set("chunkstore.sync", "1*return(EIO)"), 0);
    meta.index = 6;
    assert_int_not_equal(cs_fsm_snapshot_build(n.fsm, &meta, 2, &s), 0);
    curve_failpoint_clear_all();
    /* reopen: the epoch and the volume fences come back from cs_snapshot */
    cs_fsm_close(n.fsm);
    seen_calls = seen_file = seen_epoch = 0;
    open_fsm(&n);
    assert_int_equal(cs_fsm_epoch(n.fsm), 2);
    assert_int_equal(cs_fsm_vol_epochs(n.fsm, vols, CS_FSM_VOL_EPOCHS_MAX), 1);
    assert_int_equal(vols[0].file_id, 9);
    assert_int_equal(vols[0].epoch, 3);
    assert_int_equal(seen_calls, 1);
    assert_int_equal(seen_file, 9);
    assert_int_equal(seen_epoch, 3);
    /* a damaged cs_snapshot is refused */
    cs_fsm_close(n.fsm);
    n.fsm = NULL;
    char p[512];
    path(p, sizeof(p), n.dir, "copysets/4294967298/snapshot/cs_snapshot");
    FILE *fp = fopen(p, "r+b");
    assert_non_null(fp);
    fseek(fp, 25, SEEK_SET);
    fputc(0x55, fp);
    fclose(fp);
    char sd[512];
    path(sd, sizeof(sd), n.dir, "copysets/4294967298/snapshot");
    cs_fsm_opts o = {.group_id = GID, .store = n.store, .snapshot_dir = sd};
    assert_int_equal(cs_fsm_open(&o, &n.fsm), CURVE_ERR_CORRUPT);
    assert_int_equal(unlink(p), 0);
    open_fsm(&n);
    assert_int_equal(cs_fsm_epoch(n.fsm), 0);
    node_close(&n);
}

/* Transfers the snapshot of `src` into `dst` in pieces of `piece` bytes, in reverse order. */
static int transfer(node *src, node *dst, uint64_t index, uint32_t piece, bool skip_last)
{
    struct raft_snapshot_meta meta = {.index = index, .term = 2};
    cs_fsm_snap *s = NULL;
    assert_int_equal(cs_fsm_snapshot_build(src->fsm, &meta, cs_fsm_epoch(src->fsm), &s), 0);
    const struct raft_manifest *m = cs_fsm_snap_manifest(s);
    int rc = cs_fsm_install_begin(dst->fsm, &meta, m);
    assert_int_equal(rc, 0);
    uint8_t *buf = malloc(piece);
    assert_non_null(buf);
    for (uint32_t f = m->nfiles; f-- > 0;) {
        uint64_t size = m->files[f].size;
        for (uint64_t off = 0; off < size; off += piece) {
            if (skip_last && f == 0 && off + piece >= size)
                continue;
            int n = cs_fsm_snapshot_read(src->fsm, m->files[f].name, off, buf, piece);
            assert_true(n > 0);
            assert_int_equal(cs_fsm_install_write(dst->fsm, m->files[f].name, off, buf,
                                                  (uint32_t)n), 0);
        }
    }
    free(buf);
    rc = cs_fsm_install_finish(dst->fsm, &meta, m);
    cs_fsm_snap_free(s);
    return rc;
}

static void assert_same_chunks(node *a, node *b)
{
    uint64_t *ia, *ib;
    size_t na, nb;
    assert_int_equal(curve_chunkstore_list(a->store, &ia, &na), 0);
    assert_int_equal(curve_chunkstore_list(b->store, &ib, &nb), 0);
    assert_int_equal(na, nb);
    static uint8_t ba[CHUNK_SIZE], bb[CHUNK_SIZE];
    for (size_t i = 0; i < na; i++) {
        assert_int_equal(ia[i], ib[i]);
        assert_int_equal(curve_chunkstore_read(a->store, ia[i], 0, ba, CHUNK_SIZE), 0);
        assert_int_equal(curve_chunkstore_read(b->store, ib[i], 0, bb, CHUNK_SIZE), 0);
        assert_memory_equal(ba, bb, CHUNK_SIZE);
    }
    free(ia);
    free(ib);
}

static void test_install(void **state)
{
    (void)state;
    node a, b;
    node_open(&a, "leader");
    node_open(&b, "follower");
    static uint8_t d[CHUNK_SIZE];
    for (uint64_t c = 1; c <= 4; c++) {
        fill(d, 65536, (uint32_t)c);
        w_file = 70 + c % 2; /* volumes 70 (epoch 5) and 71 (epoch 6) */
        w_epoch = 5 + c % 2;
        assert_int_equal(apply_write(&a, c, c, (c - 1) * 65536, d, 65536), 0);
    }
    w_file = 9;
    w_epoch = 3;
    apply_config(&a, 5);
    /* the follower has a stale chunk 2 and a chunk 9 the leader deleted */
    fill(d, 4096, 99);
    assert_int_equal(apply_write(&b, 1, 2, 0, d, 4096), 0);
    assert_int_equal(apply_write(&b, 2, 9, 0, d, 4096), 0);
    seen_calls = 0;
    assert_int_equal(transfer(&a, &b, 5, 100000, false), 0);
    assert_same_chunks(&a, &b);
    assert_int_equal(cs_fsm_epoch(b.fsm), 1);
    /* the fences came with the snapshot (reported to the chunkserver) and are merged with the
     * follower's own (volume 9 at epoch 3, learned from its stale writes) */
    assert_int_equal(seen_calls, 2);
    static cs_vol_epoch vols[CS_FSM_VOL_EPOCHS_MAX];
    uint32_t nv = cs_fsm_vol_epochs(b.fsm, vols, CS_FSM_VOL_EPOCHS_MAX);
    assert_int_equal(nv, 3);
    uint64_t want[3][2] = {{9, 3}, {70, 5}, {71, 6}};
    for (int w = 0; w < 3; w++) {
        bool found = false;
        for (uint32_t i = 0; i < nv; i++)
            found |= vols[i].file_id == want[w][0] && vols[i].epoch == want[w][1];
        assert_true(found);
    }
    cs_fsm_stats st;
    cs_fsm_get_stats(b.fsm, &st);
    assert_int_equal(st.installs, 1);
    assert_int_equal(st.applied_index, 5);
    /* and they survive a restart of the follower */
    cs_fsm_close(b.fsm);
    open_fsm(&b);
    assert_int_equal(cs_fsm_vol_epochs(b.fsm, vols, CS_FSM_VOL_EPOCHS_MAX), 3);
    cs_fsm_get_stats(b.fsm, &st);
    assert_int_equal(st.installs, 0);

    /* a missing piece makes finish fail and leaves the installed state as it was */
    assert_int_equal(apply_write(&a, 6, 3, 0, d, 4096), 0);
    assert_int_not_equal(transfer(&a, &b, 6, 65536, true), 0);
    cs_fsm_get_stats(b.fsm, &st);
    assert_int_equal(st.installs, 0); /* counted since the reopen */

    /* duplicates do not make up for a gap: every byte must have been received */
    {
        struct raft_snapshot_meta m2 = {.index = 7, .term = 2};
        cs_fsm_snap *s2 = NULL;
        assert_int_equal(cs_fsm_snapshot_build(a.fsm, &m2, 1, &s2), 0);
        const struct raft_manifest *mf = cs_fsm_snap_manifest(s2);
        assert_int_equal(cs_fsm_install_begin(b.fsm, &m2, mf), 0);
        static uint8_t piece[65536];
        for (uint32_t fi = 0; fi < mf->nfiles; fi++) {
            for (uint64_t off = 0; off < mf->files[fi].size; off += sizeof(piece)) {
                uint64_t o = (fi == 0 && off == 65536) ? 0 : off; /* piece 1 of file 0: dup */
                int n = cs_fsm_snapshot_read(a.fsm, mf->files[fi].name, o, piece, sizeof(piece));
                assert_true(n > 0);
                assert_int_equal(cs_fsm_install_write(b.fsm, mf->files[fi].name, o, piece,
                                                      (uint32_t)n), 0);
            }
        }
        /* the same bytes again, overlapping, out of order: still one gap */
        int n = cs_fsm_snapshot_read(a.fsm, mf->files[0].name, 100, piece, 5000);
        assert_int_equal(cs_fsm_install_write(b.fsm, mf->files[0].name, 100, piece,
                                              (uint32_t)n), 0);
        assert_int_not_equal(cs_fsm_install_finish(b.fsm, &m2, mf), 0);
        cs_fsm_snap_free(s2);
    }
    /* a chunk deleted after the snapshot was listed reads as a zero chunk with a valid header */
    struct raft_snapshot_meta meta = {.index = 7, .term = 2};
    cs_fsm_snap *s = NULL;
    assert_int_equal(cs_fsm_snapshot_build(a.fsm, &meta, 1, &s), 0);
    assert_int_equal(apply_delete(&a, 8, 4), 0);
    static uint8_t page[FILE_SIZE];
    assert_int_equal(cs_fsm_snapshot_read(a.fsm, "chunk_4", 0, page, (uint32_t)FILE_SIZE),
                     (int)FILE_SIZE);
    curve_chunk_header h;
    assert_int_equal(curve_chunk_header_decode(page, CURVE_CHUNK_HEADER_SIZE, &h), 0);
    assert_int_equal(h.chunk_id, 4);
    for (uint64_t i = CURVE_CHUNK_HEADER_SIZE; i < FILE_SIZE; i++)
        assert_int_equal(page[i], 0);
    cs_fsm_snap_free(s);
    assert_int_equal(cs_fsm_snapshot_read(a.fsm, "bogus", 0, page, 10),
                     CURVE_ERR_INVALID_REQUEST);
    assert_int_equal(cs_fsm_snapshot_read(a.fsm, "chunk_1", FILE_SIZE, page, 10), 0);

    /* bad manifests are refused */
    struct raft_snapshot_file files[2] = {{"chunk_1", FILE_SIZE}, {"chunk_1", FILE_SIZE}};
    uint8_t mm[CS_FSM_MANIFEST_META_SIZE(0)];
    cs_fsm__meta_encode(1, GID, CHUNK_SIZE, NULL, 0, mm);
    struct raft_manifest bad = {.meta = mm, .meta_len = sizeof(mm), .nfiles = 2, .files = files};
    assert_int_equal(cs_fsm_install_begin(b.fsm, &meta, &bad), CURVE_ERR_CORRUPT); /* dup */
    bad.nfiles = 1;
    files[0].size = 5;
    assert_int_equal(cs_fsm_install_begin(b.fsm, &meta, &bad), CURVE_ERR_CORRUPT); /* size */
    files[0].size = FILE_SIZE;
    cs_fsm__meta_encode(1, GID + 1, CHUNK_SIZE, NULL, 0, mm);
    assert_int_equal(cs_fsm_install_begin(b.fsm, &meta, &bad), CURVE_ERR_CORRUPT); /* group */
    cs_fsm__meta_encode(1, GID, CHUNK_SIZE, NULL, 0, mm);
    mm[3] ^= 1;
    assert_int_equal(cs_fsm_install_begin(b.fsm, &meta, &bad), CURVE_ERR_CORRUPT); /* crc */
    mm[3] ^= 1;
    assert_int_equal(cs_fsm_install_begin(b.fsm, &meta, &bad), 0);
    uint8_t piece[16] = {0};
    assert_int_equal(cs_fsm_install_write(b.fsm, "chunk_2", 0, piece, 16),
                     CURVE_ERR_INVALID_REQUEST); /* not in the manifest */
    assert_int_equal(cs_fsm_install_write(b.fsm, "chunk_1", FILE_SIZE - 8, piece, 16),
                     CURVE_ERR_INVALID_REQUEST); /* beyond the file */
    assert_int_equal(cs_fsm_install_write(b.fsm, "chunk_1", 0, piece, 16), 0);
    cs_fsm_install_abort(b.fsm);
    assert_int_equal(cs_fsm_install_write(b.fsm, "chunk_1", 0, piece, 16),
                     CURVE_ERR_INVALID_REQUEST); /* no install in progress */
    node_close(&a);
    node_close(&b);
}

/* Manifest meta: version 2 round trip, every bit flip refused, version 1 still read, and a
 * zero epoch or an oversized table refused. */
static void test_meta_codec(void **state)
{
    (void)state;
    cs_vol_epoch in[3] = {{1, 4}, {0, 7}, {UINT64_MAX, UINT64_MAX}};
    static uint8_t buf[CS_FSM_MANIFEST_META_MAX];
    size_t len = cs_fsm__meta_encode(9, GID, CHUNK_SIZE, in, 3, buf);
    assert_int_equal(len, CS_FSM_MANIFEST_META_SIZE(3));
    static cs_vol_epoch out[CS_FSM_VOL_EPOCHS_MAX];
    uint64_t epoch, gid;
    uint32_t csize, nvol;
    assert_int_equal(cs_fsm__meta_decode(buf, len, &epoch, &gid, &csize, out, &nvol), 0);
    assert_int_equal(epoch, 9);
    assert_int_equal(nvol, 3);
    assert_memory_equal(in, out, sizeof(in));
    for (size_t bit = 0; bit < len * 8; bit++) {
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
        assert_int_equal(cs_fsm__meta_decode(buf, len, &epoch, &gid, &csize, out, &nvol),
                         CURVE_ERR_CORRUPT);
        buf[bit / 8] ^= (uint8_t)(1u << (bit % 8));
    }
    for (size_t l = 0; l < len; l++)
        assert_int_equal(cs_fsm__meta_decode(buf, l, &epoch, &gid, &csize, out, &nvol),
                         CURVE_ERR_CORRUPT);
    /* an entry with epoch 0 is refused even with a valid crc */
    in[1].epoch = 0;
    len = cs_fsm__meta_encode(9, GID, CHUNK_SIZE, in, 3, buf);
    assert_int_equal(cs_fsm__meta_decode(buf, len, &epoch, &gid, &csize, out, &nvol),
                     CURVE_ERR_CORRUPT);
    /* version 1 (32 bytes, no table) */
    uint8_t v1[32] = {0x43, 0x53, 0x4d, 0x45, 1, 0, 0, 0, 7};
    uint32_t crc = curve_crc32c(0, v1, 28);
    for (int i = 0; i < 4; i++)
        v1[28 + i] = (uint8_t)(crc >> (8 * i));
    nvol = 99;
    assert_int_equal(cs_fsm__meta_decode(v1, sizeof(v1), &epoch, &gid, &csize, NULL, &nvol), 0);
    assert_int_equal(epoch, 7);
    assert_int_equal(nvol, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_cmd_codec),
        cmocka_unit_test(test_meta_codec),
        cmocka_unit_test_setup_teardown(test_apply_idempotent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_snapshot_build, setup, teardown),
        cmocka_unit_test_setup_teardown(test_install, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
