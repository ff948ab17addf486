/* libFuzzer target: the chunkserver's decoders — copyset commands, snapshot manifest meta,
 * chunk file names, cs_snapshot, cs_peers, chunkserver.dat and peer strings. */
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include "chunkserver/copyset_fsm.h"
#include "chunkserver/cs_heartbeat.h"
#include "common/assert.h"

static uint32_t get_version(const uint8_t *p)
{
    return (uint32_t)p[4] | (uint32_t)p[5] << 8 | (uint32_t)p[6] << 16 | (uint32_t)p[7] << 24;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cs_cmd c;
    if (cs_cmd_decode(data, size, &c) == 0) {
        CURVE_ASSERT(c.type == CS_CMD_WRITE || c.type == CS_CMD_DELETE);
        CURVE_ASSERT((size_t)c.len + CS_CMD_HDR_SIZE == size);
        /* a decoded command re-encodes to the same bytes */
        uint8_t hdr[CS_CMD_HDR_SIZE];
        cs_cmd_encode_hdr(&c, NULL, 0, hdr);
        CURVE_ASSERT(memcmp(hdr, data, CS_CMD_HDR_SIZE) == 0);
    }
    uint64_t epoch, gid;
    uint32_t csize;
    static cs_vol_epoch vols[CS_FSM_VOL_EPOCHS_MAX];
    uint32_t nvol;
    if (cs_fsm__meta_decode(data, size, &epoch, &gid, &csize, vols, &nvol) == 0 &&
        get_version(data) == 2) {
        /* a decoded version-2 meta re-encodes to the same bytes */
        static uint8_t buf[CS_FSM_MANIFEST_META_MAX];
        size_t n = cs_fsm__meta_encode(epoch, gid, csize, vols, nvol, buf);
        CURVE_ASSERT(n == size && memcmp(buf, data, n) == 0);
    }
    uint64_t snap_epoch;
    (void)cs_fsm__snapfile_decode(data, size, 1, &snap_epoch, vols, &nvol);
    struct raft_config conf;
    (void)cs_peers_decode(data, size, &conf);
    uint32_t id;
    char tok[CS_HB_TOKEN_MAX + 1];
    if (cs_dat_decode(data, size, &id, tok, sizeof(tok)) == 0) {
        uint8_t buf[CS_DAT_MAX];
        int len = cs_dat_encode(id, tok, buf, sizeof(buf));
        CURVE_ASSERT(len >= 0 && (size_t)len <= size);
    }
    char name[40];
    size_t n = size < sizeof(name) - 1 ? size : sizeof(name) - 1;
    memcpy(name, data, n);
    name[n] = '\0';
    uint64_t cid, pid;
    (void)cs_fsm__parse_chunk_name(name, &cid);
    if (cs_peer_parse(name, &pid) == 0) {
        char back[CS_PEER_STR_MAX];
        cs_peer_format(pid, false, back, sizeof(back));
        uint64_t again;
        CURVE_ASSERT(cs_peer_parse(back, &again) == 0 && again == pid);
    }
    return 0;
}
