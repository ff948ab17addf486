"""Process-level fault test of the Raft runtime: a client streams acknowledged puts into a
3-node curve-raft-kv cluster on loopback while the leader is killed with SIGKILL (and
restarted), another node is paused with SIGSTOP for several election timeouts and resumed, and
a third node is restarted. Afterwards every acknowledged key must be on every replica and the
replicas' applied states (index + hash chain over every applied entry) must be identical."""

import os

from curvetest import procs, tmp_dir, wait_until  # noqa: F401 (pytest fixtures)
from test_raft_rt import KvCluster, count_lines, read_acked

ELECTION_MS = 500
PROGRESS_TIMEOUT_S = 60
ROUNDS = int(os.environ.get("RAFT_KV_ROUNDS", "3"))  # more rounds: a longer soak


def fault_round(c, progress, rnd):
    """One round: kill -9 the leader and restart it, pause the (new) leader for several election
    timeouts, restart a third node; the stream must make progress after every step."""
    first = c.wait_leader()
    # 1. SIGKILL the leader; the others elect a new one and the stream continues
    c.kill(first)
    others = [i for i in (1, 2, 3) if i != first]
    second = c.wait_leader(among=others)
    progress(300, "after killing leader %d (round %d)" % (first, rnd))
    c.start(first)
    progress(200, "after restarting node %d (round %d)" % (first, rnd))

    # 2. SIGSTOP the current leader for several election timeouts: a new leader is elected
    #    among the other two while it is frozen; on SIGCONT it must step down and catch up
    paused = c.leader() or second
    c.pause(paused)
    try:
        rest = [i for i in (1, 2, 3) if i != paused]
        wait_until(lambda: c.leader(among=rest), 3 * ELECTION_MS / 1000.0 + 20, interval=0.05,
                   what="a new leader while node %d is paused" % paused)
        progress(300, "while node %d is paused (round %d)" % (paused, rnd))
    finally:
        c.resume(paused)
    progress(200, "after resuming node %d (round %d)" % (paused, rnd))

    # 3. restart one more node (gracefully): neither the resumed one nor, if possible, the
    #    one restarted in step 1
    third = ([i for i in (1, 2, 3) if i not in (paused, first)] or
             [i for i in (1, 2, 3) if i != paused])[0]
    assert c.stop(third) == 0
    progress(100, "while node %d is down (round %d)" % (third, rnd))
    c.start(third)
    progress(200, "after restarting node %d (round %d)" % (third, rnd))


def test_acknowledged_puts_survive_kill_pause_restart(procs, tmp_dir):
    c = KvCluster(procs, tmp_dir, extra=["--election-timeout-ms=%d" % ELECTION_MS,
                                         "--heartbeat-ms=50", "--snapshot-threshold=300",
                                         "--snapshot-trailing=50"])
    c.start_all()
    c.wait_leader()
    out = os.path.join(tmp_dir, "acked")
    stream = c.put_stream(out, "k")

    def progress(n, what):
        target = count_lines(out) + n
        wait_until(lambda: count_lines(out) >= target, PROGRESS_TIMEOUT_S, interval=0.05,
                   what="%d more acknowledged puts %s" % (n, what))

    progress(300, "before any fault")
    for rnd in range(ROUNDS):
        fault_round(c, progress, rnd)

    # stop the stream; every key it recorded was acknowledged (commit + apply on a leader)
    stream.stop()
    acked = read_acked(out)
    assert len(acked) >= 300 + ROUNDS * 1300, "only %d acknowledged puts" % len(acked)

    sts = c.wait_converged(timeout=60)
    assert len({s["kv_hash"] for s in sts}) == 1
    dumps = {i: c.dump(i) for i in (1, 2, 3)}
    assert len({(sm["applied"], sm["hash"]) for sm, _ in dumps.values()}) == 1, \
        {i: sm for i, (sm, _) in dumps.items()}
    for i, (_, kv) in dumps.items():
        missing = [k for k, v in acked.items() if kv.get(k) != v]
        assert not missing, "node %d lacks %d acknowledged keys, e.g. %s" % (
            i, len(missing), missing[:5])
    # the replicas hold the same map (unacknowledged retried puts included)
    assert dumps[1][1] == dumps[2][1] == dumps[3][1]
