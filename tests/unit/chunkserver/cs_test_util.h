/* Helpers shared by the chunkserver storage unit tests: temp dirs and file checks. */
#ifndef CS_TEST_UTIL_H
#define CS_TEST_UTIL_H

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "chunkserver/chunkfilepool.h"

#define TEST_CHUNK_SIZE (1u << 20)
#define TEST_FILE_SIZE ((uint64_t)TEST_CHUNK_SIZE + CURVE_CHUNK_HEADER_SIZE)
#define TEST_WAIT_MS 60000

static inline char *tu_mkdtemp(void)
{
    char tmpl[] = "/tmp/curve-cs-test-XXXXXX";
    char *d = mkdtemp(tmpl);
    if (d == NULL) {
        perror("mkdtemp");
        abort();
    }
    return strdup(d);
}

static int tu_rm_cb(const char *path, const struct stat *sb, int flag, struct FTW *ftw)
{
    (void)sb;
    (void)flag;
    (void)ftw;
    return remove(path);
}

static inline void tu_rmrf(char *dir)
{
    if (dir != NULL)
        nftw(dir, tu_rm_cb, 16, FTW_DEPTH | FTW_PHYS);
    free(dir);
}

static inline void tu_path(char *out, size_t len, const char *dir, const char *name)
{
    size_t a = strlen(dir), b = strlen(name);
    if (a + 1 + b + 1 > len)
        abort();
    memcpy(out, dir, a);
    out[a] = '/';
    memcpy(out + a + 1, name, b + 1);
}

/* Returns true if the file has the right size, a valid header with `want_flags`, and zero data. */
static inline bool tu_file_is_free_zeroed(const char *path)
{
    int fd = open(path, O_RDONLY);
    if (fd < 0)
        return false;
    struct stat st;
    bool ok = fstat(fd, &st) == 0 && (uint64_t)st.st_size == TEST_FILE_SIZE;
    uint8_t *buf = malloc(TEST_FILE_SIZE);
    ok = ok && buf != NULL && pread(fd, buf, TEST_FILE_SIZE, 0) == (ssize_t)TEST_FILE_SIZE;
    curve_chunk_header h;
    ok = ok && curve_chunk_header_decode(buf, CURVE_CHUNK_HEADER_SIZE, &h) == 0 &&
         (h.flags & CURVE_CHUNK_FLAG_FREE) && h.chunk_size == TEST_CHUNK_SIZE;
    for (uint64_t i = CURVE_CHUNK_HEADER_SIZE; ok && i < TEST_FILE_SIZE; i++)
        ok = buf[i] == 0;
    free(buf);
    close(fd);
    return ok;
}

static inline int tu_write_file(const char *path, const void *data, size_t len)
{
    int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0)
        return -errno;
    ssize_t n = write(fd, data, len);
    close(fd);
    return n == (ssize_t)len ? 0 : -EIO;
}

static inline bool tu_exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static inline curve_cfp *tu_pool(const char *root, uint64_t files, bool start)
{
    char dir[512];
    tu_path(dir, sizeof(dir), root, "chunkfilepool");
    curve_cfp_opts o = {.dir = dir, .chunk_size = TEST_CHUNK_SIZE, .target_files = files};
    curve_cfp *p = NULL;
    if (curve_cfp_open(&o, &p) != 0)
        abort();
    if (start && curve_cfp_start(p) != 0)
        abort();
    return p;
}

#endif
