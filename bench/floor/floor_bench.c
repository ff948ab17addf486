/*
 * floor-bench: the two machine costs that bound Curve-C's write latency and IOPS on a given box
 * (docs/benchmarks.md "What this machine allows"). Nothing of Curve-C is used.
 *
 *   floor-bench wake [--rounds=N]
 *       Thread-to-thread wake-up: two processes ping-pong one byte over two pipes, first pinned
 *       to two different CPUs, then both on CPU 0. Prints the mean one-way wake-up in µs. A
 *       replicated write crosses several threads in series (client -> leader loop -> follower
 *       loop -> follower log writer -> follower loop -> leader loop -> client); each crossing
 *       to a sleeping thread on another CPU costs one such wake-up.
 *
 *   floor-bench disk --dir=D [--files=N] [--seconds=S]
 *       Durable 4 KiB writes into N pre-written files in D (one 4 KiB write to each file per
 *       round, at a moving offset), made durable three ways:
 *         parallel   one fdatasync per file, N threads at once (what one fdatasync per copyset
 *                    log per round does; with N = 1 the fdatasync runs on the caller)
 *         one_flush  sync_file_range(WAIT_BEFORE|WRITE|WAIT_AFTER) on N-1 files, then one
 *                    fdatasync (one cache flush per round; measured only, not used by Curve-C)
 *         journal    the N blocks as one sequential N*4 KiB write into one file + one
 *                    fdatasync (what a shared per-disk journal would do)
 *       Prints 4 KiB writes made durable per second for each.
 *
 * Output: one `key=value ...` line per measurement. Exit 0, or 2 on bad arguments, 1 on an IO
 * error.
 */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define BLOCK      4096u
#define FILE_BYTES (16u << 20) /* each pre-written file */
#define MAX_FILES  64

static double now_s(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + (double)t.tv_nsec / 1e9;
}

static int usage(void)
{
    fprintf(stderr,
            "usage: floor-bench wake [--rounds=N]\n"
            "       floor-bench disk --dir=D [--files=N (1..%d)] [--seconds=S]\n",
            MAX_FILES);
    return 2;
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < lo || v > hi)
        return -1;
    *out = v;
    return 0;
}

static int pin(int cpu)
{
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(0, sizeof set, &set);
}

/* Mean one-way wake-up (µs) of a pipe ping-pong between a parent on cpu_a and a child on
 * cpu_b; < 0 on error. */
static double pingpong(int cpu_a, int cpu_b, long rounds)
{
    int ab[2], ba[2];
    if (pipe(ab) != 0 || pipe(ba) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    char c = 0;
    if (pid == 0) {
        if (pin(cpu_b) != 0)
            _exit(1);
        for (long i = 0; i < rounds; i++)
            if (read(ab[0], &c, 1) != 1 || write(ba[1], &c, 1) != 1)
                _exit(1);
        _exit(0);
    }
    double el = -1;
    if (pin(cpu_a) == 0) {
        double t0 = now_s();
        long i = 0;
        for (; i < rounds; i++)
            if (write(ab[1], &c, 1) != 1 || read(ba[0], &c, 1) != 1)
                break;
        if (i == rounds)
            el = now_s() - t0;
    }
    int st = 0;
    (void)waitpid(pid, &st, 0);
    close(ab[0]), close(ab[1]), close(ba[0]), close(ba[1]);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        return -1;
    return el < 0 ? -1 : el / (double)rounds / 2 * 1e6;
}

static int cmd_wake(int argc, char **argv)
{
    long rounds = 20000;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--rounds=", 9) == 0) {
            if (parse_long(argv[i] + 9, 100, 100000000, &rounds) != 0)
                return usage();
        } else {
            return usage();
        }
    }
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    if (ncpu >= 2) {
        double x = pingpong(0, 1, rounds);
        if (x < 0) {
            perror("floor-bench wake (cross-CPU)");
            return 1;
        }
        printf("wake mode=cross_cpu rounds=%ld one_way_us=%.1f\n", rounds, x);
    }
    double s = pingpong(0, 0, rounds);
    if (s < 0) {
        perror("floor-bench wake (same CPU)");
        return 1;
    }
    printf("wake mode=same_cpu rounds=%ld one_way_us=%.1f\n", rounds, s);
    return 0;
}

/* ---- disk --------------------------------------------------------------------------------- */

typedef struct {
    int fd;
    int rc;
} sync_job;

static void *sync_main(void *arg)
{
    sync_job *j = arg;
    j->rc = fdatasync(j->fd) == 0 ? 0 : errno;
    return NULL;
}

static int prewrite(const char *path, int *fd_out)
{
    int fd = open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return -1;
    static char zeros[1u << 20];
    for (off_t o = 0; o < (off_t)FILE_BYTES; o += (off_t)sizeof zeros)
        if (pwrite(fd, zeros, sizeof zeros, o) != (ssize_t)sizeof zeros) {
            close(fd);
            return -1;
        }
    if (fsync(fd) != 0) {
        close(fd);
        return -1;
    }
    *fd_out = fd;
    return 0;
}

enum { M_PARALLEL, M_ONE_FLUSH, M_JOURNAL, M_COUNT };
static const char *const MODE_NAME[M_COUNT] = {"parallel", "one_flush", "journal"};

/* Runs one mode for `secs`; returns durable 4 KiB writes per second, < 0 on error. */
static double disk_run(int mode, int *fds, int nfiles, int jfd, double secs)
{
    static char blk[BLOCK * MAX_FILES] __attribute__((aligned(4096)));
    memset(blk, 0x5a, sizeof blk);
    off_t off = 0, joff = 0;
    long rounds = 0;
    double t0 = now_s();
    while (now_s() - t0 < secs) {
        if (mode == M_JOURNAL) {
            size_t n = (size_t)nfiles * BLOCK;
            if (pwrite(jfd, blk, n, joff) != (ssize_t)n || fdatasync(jfd) != 0)
                return -1;
            joff += (off_t)n; /* stays inside the pre-written file: no allocation */
            if (joff + (off_t)n > (off_t)FILE_BYTES)
                joff = 0;
        } else {
            for (int i = 0; i < nfiles; i++)
                if (pwrite(fds[i], blk, BLOCK, off) != (ssize_t)BLOCK)
                    return -1;
            if (mode == M_PARALLEL && nfiles == 1) {
                if (fdatasync(fds[0]) != 0)
                    return -1;
            } else if (mode == M_PARALLEL) {
                pthread_t th[MAX_FILES];
                sync_job jobs[MAX_FILES];
                for (int i = 0; i < nfiles; i++) {
                    jobs[i] = (sync_job){.fd = fds[i], .rc = 0};
                    if (pthread_create(&th[i], NULL, sync_main, &jobs[i]) != 0)
                        return -1;
                }
                int bad = 0;
                for (int i = 0; i < nfiles; i++) {
                    pthread_join(th[i], NULL);
                    bad |= jobs[i].rc;
                }
                if (bad)
                    return -1;
            } else {
                for (int i = 0; i + 1 < nfiles; i++)
                    if (sync_file_range(fds[i], off, BLOCK,
                                        SYNC_FILE_RANGE_WAIT_BEFORE | SYNC_FILE_RANGE_WRITE |
                                            SYNC_FILE_RANGE_WAIT_AFTER) != 0)
                        return -1;
                if (fdatasync(fds[nfiles - 1]) != 0)
                    return -1;
            }
            off = (off + (off_t)BLOCK) % (off_t)FILE_BYTES;
        }
        rounds++;
    }
    return (double)rounds * nfiles / (now_s() - t0);
}

static int cmd_disk(int argc, char **argv)
{
    const char *dir = NULL;
    long nfiles = 8, secs = 3;
    for (int i = 0; i < argc; i++) {
        if (strncmp(argv[i], "--dir=", 6) == 0 && argv[i][6])
            dir = argv[i] + 6;
        else if (strncmp(argv[i], "--files=", 8) == 0) {
            if (parse_long(argv[i] + 8, 1, MAX_FILES, &nfiles) != 0)
                return usage();
        } else if (strncmp(argv[i], "--seconds=", 10) == 0) {
            if (parse_long(argv[i] + 10, 1, 3600, &secs) != 0)
                return usage();
        } else {
            return usage();
        }
    }
    if (!dir)
        return usage();
    int fds[MAX_FILES], jfd = -1, made = 0, rc = 1;
    char path[4096];
    for (; made < nfiles; made++) {
        if (snprintf(path, sizeof path, "%s/floor_%d.dat", dir, made) >= (int)sizeof path ||
            prewrite(path, &fds[made]) != 0) {
            perror(path);
            goto out;
        }
    }
    if (snprintf(path, sizeof path, "%s/floor_journal.dat", dir) >= (int)sizeof path ||
        prewrite(path, &jfd) != 0) {
        perror(path);
        goto out;
    }
    for (int m = 0; m < M_COUNT; m++) {
        if (m == M_ONE_FLUSH && nfiles < 2)
            continue;
        double w = disk_run(m, fds, (int)nfiles, jfd, (double)secs);
        if (w < 0) {
            fprintf(stderr, "floor-bench disk %s: %s\n", MODE_NAME[m], strerror(errno));
            goto out;
        }
        printf("disk mode=%s files=%ld seconds=%ld durable_4k_writes_per_s=%.0f\n", MODE_NAME[m],
               nfiles, secs, w);
        fflush(stdout);
    }
    rc = 0;
out:
    for (int i = 0; i < made; i++) {
        close(fds[i]);
        snprintf(path, sizeof path, "%s/floor_%d.dat", dir, i);
        unlink(path);
    }
    if (jfd >= 0) {
        close(jfd);
        snprintf(path, sizeof path, "%s/floor_journal.dat", dir);
        unlink(path);
    }
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return usage();
    if (strcmp(argv[1], "wake") == 0)
        return cmd_wake(argc - 2, argv + 2);
    if (strcmp(argv[1], "disk") == 0)
        return cmd_disk(argc - 2, argv + 2);
    return usage();
}
