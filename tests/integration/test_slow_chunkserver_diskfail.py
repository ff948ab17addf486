"""A disk error (EIO / ENOSPC) on the copyset leader during a stream of acknowledged writes
(failure-table finding 4): the leader whose chunk write or log append fails marks its disk failed,
stops its Raft node (steps down, hands over, no more heartbeats or votes), a healthy replica is
elected and the writes keep completing there; every acknowledged write is readable on the new
leader and the failed chunkserver never leads again while its disk is failed."""

import os
import signal

import pytest

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_chunkserver import CHUNK_SIZE, CsCluster, http, tool

STREAM_TIMEOUT_S = 120
MORE_WRITES = 150


def acked_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.endswith("\n")]


def chunk_files(c):
    d = os.path.dirname(c.chunk_path(1))
    return sorted(n for n in os.listdir(d) if n.startswith("chunk_") and "." not in n)


@pytest.mark.parametrize("failpoint,err", [
    ("chunkstore.write", "EIO"),      # a chunk write fails on apply
    ("chunkstore.write", "ENOSPC"),
    ("raftlog.write", "EIO"),         # the leader's own log append fails
    ("raftlog.sync", "ENOSPC"),
])
def test_disk_error_on_leader_moves_leadership(procs, tmp_dir, failpoint, err):
    cl = CsCluster(procs, tmp_dir, pool_files=32)
    victim = cl.create_copyset()
    out = os.path.join(tmp_dir, "acked.txt")
    stream = procs.start([binary("curve-chunk-tool"), cl.peers_arg(), "write-stream",
                          "--pool=1", "--copyset=1", "--count=1000000",
                          "--chunk-size=%d" % CHUNK_SIZE, "--timeout-ms=1000", "--out=" + out],
                         name="stream")
    wait_until(lambda: len(acked_lines(out)) >= MORE_WRITES, STREAM_TIMEOUT_S,
               what="acked writes before the fault")
    victim = cl.wait_leader()
    code, body = http("http://127.0.0.1:%d/failpoint?name=%s&action=return(%s)"
                      % (victim.admin, failpoint, err), data=b"")
    assert code == 200, body
    at_fault = len(acked_lines(out))
    # the failure is detected and reported: disk failed, Raft node stopped
    wait_until(lambda: victim.status()["disk"]["failed"], STREAM_TIMEOUT_S,
               what="the leader's disk marked failed")
    wait_until(lambda: (victim.copyset() or {}).get("failed", 0) != 0, STREAM_TIMEOUT_S,
               what="the leader's Raft node stopped")
    # a healthy replica leads (wait_leader skips the failed server) and the writes go on there
    new = cl.wait_leader(exclude=victim, timeout=STREAM_TIMEOUT_S)
    assert new is not victim
    wait_until(lambda: len(acked_lines(out)) >= at_fault + MORE_WRITES, STREAM_TIMEOUT_S,
               what="writes acknowledged after the fault")
    assert stream.running(), stream.describe()  # no write gave up
    # the failed server does not lead again, nor claims to
    assert victim.copyset()["role"] != "leader", victim.copyset()
    assert victim.proc.running(), victim.proc.describe()  # bad disk: no crash
    code, body = http("http://127.0.0.1:%d/health" % victim.admin)
    assert code == 503 and "disk failed" in body, (code, body)
    stream.signal(signal.SIGTERM)
    assert stream.wait(timeout=STREAM_TIMEOUT_S) == 0, stream.describe()
    acked = acked_lines(out)
    assert len(acked) >= at_fault + MORE_WRITES
    # every acknowledged write (before and after the fault) is on the new leader
    new = cl.wait_leader(exclude=victim, timeout=STREAM_TIMEOUT_S)
    r = tool(cl.peers_arg([new]), "verify", "--pool=1", "--copyset=1", "--in=" + out)[0]
    assert r == {"checked": len(acked), "bad": 0}, r
    # the two healthy replicas converge to byte-identical chunk files
    healthy = [c for c in cl.cs if c is not victim]
    applied = new.copyset()["applied"]
    wait_until(lambda: all(c.copyset()["applied"] >= applied for c in healthy), 60,
               what="the healthy follower caught up")
    names = chunk_files(healthy[0])
    assert names and names == chunk_files(healthy[1])
    for n in names:
        blobs = []
        for c in healthy:
            with open(os.path.join(os.path.dirname(c.chunk_path(1)), n), "rb") as f:
                blobs.append(f.read())
        assert blobs[0] == blobs[1], "chunk file %s differs between the healthy replicas" % n
    assert victim.copyset()["role"] != "leader", victim.copyset()
    for c in cl.cs:
        assert c.proc.stop() == 0, c.proc.describe()
