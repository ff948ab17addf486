/*
 * Failpoints: named fault-injection sites compiled into every build.
 *
 * A site is written as
 *
 *     int rc = CURVE_FAILPOINT("chunkstore.write");
 *     if (rc != 0)
 *         return handle_error(rc);      // behave exactly as if the syscall had failed
 *
 * When no failpoint is configured anywhere in the process, CURVE_FAILPOINT costs one relaxed
 * atomic load and a branch. When at least one is configured, every site looks its name up in a
 * small table under a mutex (test/fault-injection mode only, so that is fine).
 *
 * Grammar (spaces around tokens are ignored):
 *
 *     spec    := entry ( ';' entry )*             e.g. "chunkstore.write=return(EIO);log.sync=delay(5)"
 *     entry   := name '=' action
 *     name    := [A-Za-z0-9_.:-]{1,63}
 *     action  := 'off'
 *              | [ pct '%' ] [ count '*' ] task
 *     task    := 'return' [ '(' err ')' ]        inject -err (default EIO)
 *              | 'delay' '(' ms ')'              sleep ms milliseconds (0..60000), then return 0
 *     err     := errno name (EIO ENOSPC EAGAIN EINTR ENOMEM EROFS EDQUOT ETIMEDOUT EBUSY ENOENT
 *                EINVAL EPERM EACCES EEXIST ECONNRESET ECONNREFUSED EPIPE) or a decimal 1..4095
 *     pct     := decimal 0..100: the task fires with that probability on each evaluation
 *     count   := decimal >= 1: the task fires that many times, then the failpoint turns off
 *
 * Examples: "return(ENOSPC)", "3*return(EIO)", "50%return", "10%5*delay(100)", "off".
 *
 * Configuration sources: the environment variable CURVE_FAILPOINTS (read once at process start
 * by a constructor, and again whenever curve_failpoint_init_from_env() is called), and at run
 * time curve_failpoint_configure() / curve_failpoint_set() (the admin HTTP handler calls these).
 *
 * Thread-safety: every function here may be called from any thread at any time.
 */
#ifndef CURVE_COMMON_FAILPOINT_H
#define CURVE_COMMON_FAILPOINT_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* Maximum number of distinct failpoints configured at once. */
#define CURVE_FAILPOINT_MAX 64
/* Maximum length of a failpoint name (excluding the NUL). */
#define CURVE_FAILPOINT_NAME_MAX 63
/* Upper bound of a delay(<ms>) action. */
#define CURVE_FAILPOINT_DELAY_MAX_MS 60000

/* Number of failpoints currently switched on. Internal: read only through CURVE_FAILPOINT. */
extern atomic_uint curve__failpoints_active;

/* Slow path of CURVE_FAILPOINT: looks `name` up, applies its action (sleeping outside of any
 * lock for delay) and returns the injected negative errno, or 0. */
int curve__failpoint_eval(const char *name);

/* Evaluates failpoint `name` (a string literal): returns 0 when off, or a negative errno when a
 * return(...) action fires. A delay(...) action sleeps first and then returns 0. */
#define CURVE_FAILPOINT(name)                                                                      \
    (atomic_load_explicit(&curve__failpoints_active, memory_order_relaxed) == 0                    \
         ? 0                                                                                       \
         : curve__failpoint_eval(name))

/* Sets one failpoint. `action` follows the grammar above ("off" removes it).
 * Returns 0, -EINVAL (bad name or action; nothing changed) or -ENOSPC (table full). */
int curve_failpoint_set(const char *name, const char *action);

/* Applies a whole spec "name=action;name=action". The spec is validated completely before
 * anything is applied: on -EINVAL / -ENOSPC no failpoint has changed. An empty spec is a no-op.
 * If `err` is not NULL, a message naming the offending entry is written into it on failure. */
int curve_failpoint_configure(const char *spec, char *err, size_t errlen);

/* Re-reads CURVE_FAILPOINTS from the environment and applies it (see configure). Returns 0 when
 * the variable is unset or valid. The constructor calls this at start-up and logs failures;
 * daemons should call it again to refuse to start on a bad value. */
int curve_failpoint_init_from_env(void);

/* Switches every failpoint off and forgets their hit counters. */
void curve_failpoint_clear_all(void);

/* How many times failpoint `name` has fired (returned an error or slept) since it was last set.
 * 0 when unknown. */
uint64_t curve_failpoint_hits(const char *name);

/* Writes "name=action;..." for every active failpoint into `buf` (NUL-terminated, truncated to
 * `len`). Returns the length the full string needs (like snprintf). For the admin endpoint. */
size_t curve_failpoint_dump(char *buf, size_t len);

/* Seeds the generator used by pct% actions (default: a fixed seed, so runs are replayable). */
void curve_failpoint_seed(uint64_t seed);

#endif
