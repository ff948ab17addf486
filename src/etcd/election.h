/*
 * Leader election on etcd (SEED-NOTES §3, DESIGN §7, protocol and bounds in docs/mds-ha.md).
 *
 * Each candidate grants a lease (TTL ttl_s), keeps it alive every keepalive_ms from its own
 * thread, and creates "<prefix>/<lease id, 16 hex digits>" bound to the lease. The key with the
 * lowest create revision leads; every other candidate watches the key just ahead of its own and
 * re-reads the prefix when that key is deleted (or its watch fails, or every recheck_ms).
 *
 * Leadership is time-bounded: a successful keep-alive sent at local monotonic time t proves the
 * lease alive until t + TTL on etcd's side; the leader considers itself leader only while
 * now < t + deadline_ms, with deadline_ms < TTL (default TTL - max(TTL/5, 500 ms)).
 * election_is_leader() checks that bound against the monotonic clock on every call, so a
 * process resumed after SIGSTOP (or starved) sees it is no longer leader before serving
 * anything, whatever its threads did or did not get to run. When the bound passes, or etcd
 * says the lease or the key is gone, the election enters ELECTION_LOST for good and lost_cb
 * runs once: the daemon must stop serving at once (the MDS exits non-zero and is restarted by
 * its supervisor as a new candidate).
 *
 * Threads: election_new/start/free from one owner thread; election_is_leader(),
 * election_role(), election_fence() and the getters from any thread. Callbacks run on the
 * election's campaign thread; they must not call election_free().
 */
#ifndef CURVE_ETCD_ELECTION_H
#define CURVE_ETCD_ELECTION_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "common/clock.h"
#include "etcd/etcd.h"

#ifdef __cplusplus
extern "C" {
#endif

#define ELECTION_MAX_PREFIX 200     /* bytes of the election prefix */
#define ELECTION_MAX_VALUE 1024     /* bytes of the value stored in the candidate key */
#define ELECTION_MAX_CANDIDATES 1024 /* keys read from the prefix per round */
#define ELECTION_RETRY_MAX_MS 1000  /* cap of the backoff between failed etcd rounds */

typedef enum {
    ELECTION_INIT = 0,     /* not started, or waiting for etcd (granting / creating the key) */
    ELECTION_FOLLOWER = 1, /* key created, watching the predecessor */
    ELECTION_LEADER = 2,   /* first in line and the lease is proven (see election_is_leader) */
    ELECTION_LOST = 3,     /* lease/key lost or not proven in time: terminal */
    ELECTION_STOPPED = 4,  /* election_free() in progress */
} election_role;

typedef struct election election;

typedef struct election_opts {
    const char *prefix; /* e.g. "/curve/v1/election/mds" (copied; no trailing '/') */
    const char *value;  /* stored in the candidate key, e.g. "mds1 127.0.0.1:6700" (copied) */
    int64_t ttl_s;          /* lease TTL (default 5, min 2) */
    uint32_t keepalive_ms;  /* keep-alive period (default ttl/3) */
    uint32_t deadline_ms;   /* validity of a keep-alive proof (default ttl - max(ttl/5,500ms)) */
    uint32_t recheck_ms;    /* followers re-read the prefix at least this often (default ttl) */
    const curve_clock *clock; /* NULL = system clock */
    /* Became leader (the lease is proven right now). */
    void (*leader_cb)(election *e, void *arg);
    /* Now following; `watched_key` is the predecessor being watched (borrowed). */
    void (*follower_cb)(election *e, const char *watched_key, void *arg);
    /* Leadership/candidacy lost for good (`why` borrowed): stop serving immediately. */
    void (*lost_cb)(election *e, const char *why, void *arg);
    void *arg;
} election_opts;

/* Fills defaults (ttl 5 s; the other durations 0 = derived from the ttl). */
void election_opts_init(election_opts *o);

/* Creates an election using `client` (borrowed; must outlive the election; its
 * request_timeout_ms should be below keepalive_ms so a hung endpoint cannot eat a whole
 * deadline). Copies the options. Returns 0, -EINVAL (bad prefix/value/durations: deadline_ms
 * must be < ttl and > keepalive_ms), -ENOMEM. */
int election_new(etcd_client *client, const election_opts *opts, election **out);

/* Starts campaigning on a new thread and returns at once. The thread retries etcd (with a
 * backoff capped at ELECTION_RETRY_MAX_MS) until it can grant the lease and create the key,
 * so a candidate started while etcd is down joins when etcd returns. Returns 0 or -errno. */
int election_start(election *e);

/* Stops the threads, revokes the lease (best effort, so a successor takes over at once) and
 * frees the election. May block for up to about 2 x the client's deadline_ms (an etcd call
 * in progress, then the revoke). No callback runs after it returns. NULL is ignored. */
void election_free(election *e);

/* True only if this candidate is leader AND its lease was proven alive within deadline_ms
 * (monotonic clock). Call it before serving each request. If the bound has passed it moves the
 * election to ELECTION_LOST (lost_cb will run) and returns false. Any thread. */
bool election_is_leader(election *e);

election_role election_get_role(election *e);
const char *election_role_name(election_role r); /* "leader", "follower", ... */

/* Own key (valid after the key was created, "" before) and lease id (0 before the grant).
 * The returned string stays valid until election_free(). */
const char *election_key(election *e);
int64_t election_lease(election *e);

/* Fills `cmp` with a compare "own key still has our create revision": put it in the compare
 * list of every etcd_txn the leader uses to write state, so a deposed leader's writes fail even
 * inside the dual-leader window. `cmp->key` borrows the election's key string. Returns 0 or
 * CURVE_ERR_NOT_LEADER if the key does not exist yet. */
int election_fence(election *e, etcd_compare *cmp);

/* Pure helper (exported for tests): given the candidate keys of the prefix (any order), finds
 * `own_key`. Returns -ENOENT if absent; else 0 with *pred = index of the candidate with the
 * highest create revision below ours, or -1 if we are first (leader). */
int election__position(const etcd_kv *kvs, size_t n, const char *own_key, long *pred);

#ifdef __cplusplus
}
#endif
#endif
