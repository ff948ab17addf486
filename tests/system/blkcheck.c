/*
 * blkcheck: the independent data checker of the chaos harness (tests/system/chaos.py).
 *
 * Writes numbered, checksummed 4 KiB blocks over NBD (libnbd, synchronous, one request at a
 * time) until it receives SIGTERM/SIGINT or --seconds elapse, then reads every slot back and
 * checks it holds exactly the last acknowledged block written there.
 *
 *   blkcheck URI SLOTS SECONDS
 *
 * Block layout (little-endian): magic u64 "CHAOSBLK", seq u64 (global write number), slot u64,
 * payload (deterministic from seq), crc32c u32 of everything before it, in the last 4 bytes.
 *
 * Before writing, every slot is read once: it must hold zeros or a valid block of an earlier run
 * (counted as bad otherwise); that block becomes the slot's expected content, and this run's
 * sequence numbers start above every seq found, so runs on the same region chain their checks.
 *
 * A failed write is a client-visible error: it is counted, the slot's expected content becomes
 * "either the previous or the new block" (the write may or may not have landed), and the
 * checker goes on. Output: one JSON line on stdout
 *   {"writes": N, "write_errors": N, "read_errors": N, "checked": N, "bad": N,
 *    "max_gap_ms": N, "first_bad": "..."}
 * Exit status 0 when write_errors == read_errors == bad == 0, 1 otherwise, 2 on usage/setup.
 */
#include <errno.h>
#include <inttypes.h>
#include <libnbd.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "common/crc32c.h"

#define BLK 4096
#define MAGIC 0x4b4c42534f414843ULL /* "CHAOSBLK" */
#define SLOTS_MAX (1u << 20)        /* bound on slots (4 GiB of volume) */
#define SECONDS_MAX 86400

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static uint64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void put64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

static uint64_t get64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v |= (uint64_t)p[i] << (8 * i);
    return v;
}

static void make_block(uint8_t *b, uint64_t seq, uint64_t slot)
{
    put64(b, MAGIC);
    put64(b + 8, seq);
    put64(b + 16, slot);
    uint64_t x = seq * 0x9e3779b97f4a7c15ULL + 1;
    for (size_t i = 24; i < BLK - 4; i++) {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        b[i] = (uint8_t)x;
    }
    uint32_t crc = curve_crc32c(0, b, BLK - 4);
    for (int i = 0; i < 4; i++)
        b[BLK - 4 + i] = (uint8_t)(crc >> (8 * i));
}

/* seq of a valid block for `slot`, 0 for an all-zero (never written) block, UINT64_MAX when
 * the block is corrupt. */
static uint64_t parse_block(const uint8_t *b, uint64_t slot)
{
    int zero = 1;
    for (size_t i = 0; i < BLK && zero; i++)
        zero = b[i] == 0;
    if (zero)
        return 0;
    uint32_t crc = 0;
    for (int i = 0; i < 4; i++)
        crc |= (uint32_t)b[BLK - 4 + i] << (8 * i);
    if (get64(b) != MAGIC || get64(b + 16) != slot || curve_crc32c(0, b, BLK - 4) != crc)
        return UINT64_MAX;
    uint8_t want[BLK];
    make_block(want, get64(b + 8), slot);
    return memcmp(want, b, BLK) == 0 ? get64(b + 8) : UINT64_MAX;
}

int main(int argc, char **argv)
{
    if (argc != 4) {
        fprintf(stderr, "usage: blkcheck URI SLOTS SECONDS\n");
        return 2;
    }
    char *end;
    unsigned long slots = strtoul(argv[2], &end, 10);
    if (*end != '\0' || slots == 0 || slots > SLOTS_MAX) {
        fprintf(stderr, "blkcheck: SLOTS must be 1..%u\n", SLOTS_MAX);
        return 2;
    }
    unsigned long seconds = strtoul(argv[3], &end, 10);
    if (*end != '\0' || seconds == 0 || seconds > SECONDS_MAX) {
        fprintf(stderr, "blkcheck: SECONDS must be 1..%d\n", SECONDS_MAX);
        return 2;
    }
    /* expect[slot] = last acknowledged seq; alt[slot] = seq of a failed write (may have landed) */
    uint64_t *expect = calloc(slots, sizeof(*expect));
    uint64_t *alt = calloc(slots, sizeof(*alt));
    struct nbd_handle *nbd = nbd_create();
    if (expect == NULL || alt == NULL || nbd == NULL) {
        fprintf(stderr, "blkcheck: out of memory\n");
        return 2;
    }
    if (nbd_connect_uri(nbd, argv[1]) == -1) {
        fprintf(stderr, "blkcheck: connect %s: %s\n", argv[1], nbd_get_error());
        return 2;
    }
    int64_t size = nbd_get_size(nbd);
    if (size < (int64_t)(slots * BLK)) {
        fprintf(stderr, "blkcheck: export of %" PRId64 " bytes is smaller than %lu slots\n", size,
                slots);
        return 2;
    }
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    uint8_t buf[BLK];
    uint64_t writes = 0, werr = 0, rerr = 0, checked = 0, bad = 0, max_gap = 0, seq = 0;
    char first_bad[200] = "";
    for (uint64_t s = 0; s < slots; s++) {
        if (nbd_pread(nbd, buf, BLK, s * BLK, 0) == -1) {
            rerr++;
            continue;
        }
        uint64_t got = parse_block(buf, s);
        if (got == UINT64_MAX) {
            if (bad++ == 0)
                snprintf(first_bad, sizeof(first_bad), "slot %" PRIu64 ": corrupt before the run",
                         s);
            continue;
        }
        expect[s] = got;
        if (got > seq)
            seq = got;
    }
    uint64_t start = now_ms(), last = start;
    while (!g_stop && now_ms() - start < seconds * 1000ULL) {
        seq++;
        uint64_t slot = (seq * 2654435761ULL) % slots; /* scattered, every slot per pass */
        make_block(buf, seq, slot);
        if (nbd_pwrite(nbd, buf, BLK, slot * BLK, 0) == -1) {
            werr++;
            alt[slot] = seq;
            if (werr == 1)
                fprintf(stderr, "blkcheck: write seq %" PRIu64 " slot %" PRIu64 ": %s\n", seq,
                        slot, nbd_get_error());
            if (nbd_aio_is_dead(nbd) || nbd_aio_is_closed(nbd))
                break;
            continue;
        }
        expect[slot] = seq;
        alt[slot] = 0;
        writes++;
        uint64_t t = now_ms();
        if (t - last > max_gap)
            max_gap = t - last;
        last = t;
    }
    if (nbd_flush(nbd, 0) == -1)
        werr++;
    for (uint64_t s = 0; s < slots; s++) {
        if (nbd_pread(nbd, buf, BLK, s * BLK, 0) == -1) {
            rerr++;
            continue;
        }
        checked++;
        uint64_t got = parse_block(buf, s);
        if (got == expect[s] || (alt[s] != 0 && got == alt[s]))
            continue;
        if (bad++ == 0 || first_bad[0] == '\0')
            snprintf(first_bad, sizeof(first_bad),
                     "slot %" PRIu64 ": expected seq %" PRIu64 ", found %s%" PRIu64, s, expect[s],
                     got == UINT64_MAX ? "corrupt " : "seq ", got == UINT64_MAX ? 0 : got);
    }
    nbd_shutdown(nbd, 0);
    nbd_close(nbd);
    printf("{\"writes\": %" PRIu64 ", \"write_errors\": %" PRIu64 ", \"read_errors\": %" PRIu64
           ", \"checked\": %" PRIu64 ", \"bad\": %" PRIu64 ", \"max_gap_ms\": %" PRIu64
           ", \"first_bad\": \"%s\"}\n",
           writes, werr, rerr, checked, bad, max_gap, first_bad);
    free(expect);
    free(alt);
    return (werr == 0 && rerr == 0 && bad == 0) ? 0 : 1;
}
