/*
 * nbd_io — byte-granular block IO on top of a libcurve volume, for the nbdkit plugin.
 *
 * libcurve accepts only IO aligned to NBD_IO_ALIGN (4 KiB); NBD clients may send any offset and
 * length. This layer passes aligned requests straight through and turns the unaligned head and
 * tail of a request into a read-modify-write (RMW) of one aligned block, serialized per block by
 * a striped lock table (NBD_IO_RMW_LOCKS stripes) so that two concurrent unaligned writes into
 * the same block never lose each other's bytes. Like nbdkit's blocksize filter, a concurrent
 * aligned write overlapping a block being RMW'ed is not serialized with it: the result of
 * concurrent overlapping writes is undefined on NBD (as on a disk).
 *
 * Durability: libcurve acknowledges a write only once it is durable on a quorum of replicas, so
 * every successful nbd_io_write/zero/trim is durable when it returns (FUA is free) and
 * nbd_io_flush is only a barrier against writes still in flight.
 *
 * Threads: every function may be called from any number of threads at once on the same
 * struct nbd_io (the nbdkit PARALLEL thread model), between nbd_io_init and nbd_io_fini.
 * Errors: 0 or a negative errno / CURVE_ERR_* code from libcurve; nbd_io_errno() maps one to
 * the errno an NBD client understands.
 */
#ifndef CURVE_NBD_IO_H
#define CURVE_NBD_IO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "curve/curve.h"

#define NBD_IO_ALIGN     4096u               /* IO alignment that libcurve always accepts */
#define NBD_IO_RMW_LOCKS 64u                 /* stripes of the RMW lock table */
#define NBD_IO_MAX_CHUNK (32u * 1024 * 1024) /* largest single libcurve call we issue */
#define NBD_IO_ZERO_BUF  (1024u * 1024)      /* zero buffer used to write zeros without trim */

struct nbd_io {
    curve_volume *vol; /* borrowed: the caller opens and closes it */
    uint64_t size;     /* volume size in bytes (multiple of NBD_IO_ALIGN) */
    /* Each lock protects the RMW of every block whose index % NBD_IO_RMW_LOCKS is its slot. */
    pthread_mutex_t rmw_lock[NBD_IO_RMW_LOCKS];
    const void *zeros; /* NBD_IO_ZERO_BUF zero bytes, owned */
};

/* Prepares `io` for `vol` (borrowed; must stay open until nbd_io_fini) of `size` bytes.
 * Returns 0, -EINVAL (size not a multiple of NBD_IO_ALIGN) or -ENOMEM. */
int nbd_io_init(struct nbd_io *io, curve_volume *vol, uint64_t size);
/* Releases what nbd_io_init allocated (not the volume). No IO may be in progress. */
void nbd_io_fini(struct nbd_io *io);

/* Reads/writes `len` bytes at any `offset`; [offset, offset+len) must be inside the volume
 * (-ERANGE otherwise). `buf` is borrowed for the call. */
int nbd_io_read(struct nbd_io *io, void *buf, uint64_t len, uint64_t offset);
int nbd_io_write(struct nbd_io *io, const void *buf, uint64_t len, uint64_t offset);
/* Makes the range read as zeros. With `may_trim` the aligned middle is discarded (fast, may
 * deallocate), otherwise zeros are written. Unaligned edges are always RMW'ed with zeros. */
int nbd_io_zero(struct nbd_io *io, uint64_t len, uint64_t offset, bool may_trim);
/* Advisory discard: discards the aligned blocks fully inside the range (they read as zeros
 * afterwards); partial blocks at the edges are left untouched, as NBD_CMD_TRIM allows. */
int nbd_io_trim(struct nbd_io *io, uint64_t len, uint64_t offset);
/* Barrier: returns once every write completed before the call is durable. */
int nbd_io_flush(struct nbd_io *io);
/* Block status at `offset` (< size): *start and *len receive the allocation unit holding it (a
 * Curve segment, clipped to the volume) and *hole whether that unit is unallocated (it reads
 * as zeros and holds nothing) rather than possibly holding data. Blocking (may ask the MDS).
 * Returns 0, -ERANGE or a libcurve error. */
int nbd_io_block_status(struct nbd_io *io, uint64_t offset, uint64_t *start, uint64_t *len,
                        bool *hole);

/* Maps a libcurve error (negative errno or CURVE_ERR_*) to a positive errno among those the
 * NBD protocol carries (EPERM, EIO, ENOMEM, EINVAL, ENOSPC, EOVERFLOW, ENOTSUP, ESHUTDOWN). */
int nbd_io_errno(int err);

#endif
