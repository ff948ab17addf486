"""SIGKILL the copyset leader during a stream of acknowledged writes: every acknowledged write is
readable on the new leader and, after the killed server restarts and catches up, every replica
holds byte-identical chunk files."""

import os
import signal

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_chunkserver import CHUNK_SIZE, CsCluster, pattern, tool

STREAM_TIMEOUT_S = 120
ROUNDS = 3


def acked_lines(path):
    if not os.path.exists(path):
        return []
    with open(path) as f:
        return [line.split() for line in f if line.endswith("\n")]


def compare_replicas(cl, members):
    names = set()
    for c in members:
        d = os.path.dirname(c.chunk_path(1))
        names |= set(n for n in os.listdir(d) if n.startswith("chunk_") and "." not in n)
    assert names, "no chunk files"
    for n in sorted(names):
        blobs = []
        for c in members:
            with open(os.path.join(os.path.dirname(c.chunk_path(1)), n), "rb") as f:
                blobs.append(f.read())
        assert all(b == blobs[0] for b in blobs), "chunk file %s differs between replicas" % n
    return names


def check_acked_on_disk(c, acked):
    for chunk, off, size, seed in acked:
        with open(c.chunk_path(int(chunk)), "rb") as f:
            f.seek(4096 + int(off))
            assert f.read(int(size)) == pattern(int(seed), int(size)), (c.idx, chunk, off, seed)


def test_kill_leader_during_writes(procs, tmp_dir):
    cl = CsCluster(procs, tmp_dir, pool_files=32)
    cl.create_copyset()
    out = os.path.join(tmp_dir, "acked.txt")
    stream = procs.start([binary("curve-chunk-tool"), cl.peers_arg(), "write-stream",
                          "--pool=1", "--copyset=1", "--count=1000000",
                          "--chunk-size=%d" % CHUNK_SIZE, "--timeout-ms=1000", "--out=" + out],
                         name="stream")
    killed = []
    for rnd in range(ROUNDS):
        base = len(acked_lines(out))
        wait_until(lambda: len(acked_lines(out)) >= base + 150, STREAM_TIMEOUT_S,
                   what="150 more acked writes (round %d)" % rnd)
        leader = cl.wait_leader()
        leader.proc.kill()
        killed.append(leader.idx)
        at_kill = len(acked_lines(out))
        # the stream resumes on a new leader
        new = cl.wait_leader([c for c in cl.cs if c is not leader], exclude=leader)
        wait_until(lambda: len(acked_lines(out)) >= at_kill + 150, STREAM_TIMEOUT_S,
                   what="writes acknowledged by the new leader (round %d)" % rnd)
        # every write acknowledged so far is on the new leader
        r = tool(cl.peers_arg([new]), "verify", "--pool=1", "--copyset=1", "--in=" + out)[0]
        assert r["bad"] == 0 and r["checked"] >= at_kill, r
        # the killed server restarts (and catches up in the background)
        leader.restart()
    stream.signal(signal.SIGTERM)
    assert stream.wait(timeout=STREAM_TIMEOUT_S) == 0, stream.describe()
    acked = acked_lines(out)
    new = cl.wait_leader()
    r = tool(cl.peers_arg([new]), "verify", "--pool=1", "--copyset=1", "--in=" + out)[0]
    assert r == {"checked": len(acked), "bad": 0}, r
    applied = new.copyset()["applied"]
    wait_until(lambda: all((c.copyset() or {}).get("applied", 0) >= applied for c in cl.cs), 60,
               what="all replicas caught up")
    for c in cl.cs:
        assert c.proc.stop() == 0, c.proc.describe()
    compare_replicas(cl, cl.cs)
    for c in cl.cs:
        check_acked_on_disk(c, acked)
