/* Small file-system helpers shared by every module that makes renames durable. */
#ifndef CURVE_COMMON_FSUTIL_H
#define CURVE_COMMON_FSUTIL_H

/* fsyncs directory `dir` so that entries created, renamed or removed in it are durable.
 * Returns 0 or a negative errno (from open or fsync). Blocking: call from a worker thread. */
int curve_fsync_dir(const char *dir);

#endif
