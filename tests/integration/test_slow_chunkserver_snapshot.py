"""Membership change with snapshot install: a replica is removed (its copyset goes to the
recycler), a new empty chunkserver is added, catches up through a snapshot (the log behind it
was compacted) and ends byte-identical to the leader."""

import os

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_chunkserver import CHUNK_SIZE, Cs, CsCluster, tool
from test_slow_chunkserver_kill import acked_lines, check_acked_on_disk, compare_replicas

SNAP = ["--raft.snapshot-threshold=64", "--raft.snapshot-trailing=8",
        "--recycler.purge-age=1s"]


def test_replace_replica_through_snapshot(procs, tmp_dir):
    cl = CsCluster(procs, tmp_dir, extra=SNAP, pool_files=32)
    leader = cl.create_copyset()
    # a volume fence set before the snapshot: the log behind it is compacted, so the new
    # replica can only learn it from the snapshot (and must keep it across a restart)
    r = cl.io(leader, "write", 1, 0, 4096, "--epoch=5", "--file-id=77")
    assert r["status"] == "SUCCESS", r
    out = os.path.join(tmp_dir, "acked.txt")
    r = tool(cl.peers_arg(), "write-stream", "--pool=1", "--copyset=1", "--count=600",
             "--chunk-size=%d" % CHUNK_SIZE, "--out=" + out)
    assert r[-1]["acked"] == 600, r
    wait_until(lambda: leader.copyset()["snapshot_index"] > 0, 60, what="a leader snapshot")
    # remove one follower, delete its copyset (to the recycler)
    old = [c for c in cl.cs if c is not leader][0]
    r = leader.tool("remove-peer", "--pool=1", "--copyset=1", "--peer=" + old.addr + ":0")[0]
    assert r["status"] == "CLI_OK", r
    r = old.tool("delete-copyset", "--pool=1", "--copyset=1")[0]
    assert r["status"] == "COPYSET_OK", r
    assert os.listdir(os.path.join(old.dir, "recycler")), "nothing in the recycler"
    assert old.copyset() is None
    # purged later: the directory goes, its chunk files return to the pool
    wait_until(lambda: not os.listdir(os.path.join(old.dir, "recycler")), 30,
               what="recycler purged")
    pool_dir = os.path.join(old.dir, "chunkfilepool")
    wait_until(lambda: len([n for n in os.listdir(pool_dir) if n.isdigit()]) == cl.pool_files,
               30, what="chunk files back in the pool, zeroed")
    # a new, empty chunkserver joins as a learner and is promoted by AddPeer
    new = Cs(cl, 4, SNAP).start()
    r = new.tool("create-copyset", "--pool=1", "--copyset=1", "--peers=")[0]
    assert r["status"] == "COPYSET_OK", r
    r = leader.tool("add-peer", "--pool=1", "--copyset=1", "--peer=" + new.addr + ":0")[0]
    assert r["status"] == "CLI_OK", r
    members = [c for c in cl.cs if c is not old] + [new]
    st = leader.tool("copyset-status", "--pool=1", "--copyset=1")[0]
    assert sorted(st["peers"]) == sorted(c.addr + ":0" for c in members), st
    # more writes after the change; all replicas converge
    r = tool(cl.peers_arg(members), "write-stream", "--pool=1", "--copyset=1", "--count=100",
             "--chunk-size=%d" % CHUNK_SIZE)
    assert r[-1]["acked"] == 100, r
    applied = leader.copyset()["applied"]
    wait_until(lambda: all(c.copyset()["applied"] >= applied for c in members), 60,
               what="the new replica caught up")
    # it caught up through a snapshot: its log starts after index 1
    assert new.copyset()["snapshot_index"] > 0, new.copyset()
    acked = acked_lines(out)
    # the fence came with the snapshot: as leader, the new replica refuses the old epoch
    # (whether or not it had learned it from the log too) — and again after a restart
    def fenced_on_new():
        nonlocal leader
        if leader is not new:
            r = leader.tool("transfer-leader", "--pool=1", "--copyset=1",
                            "--peer=" + new.addr + ":0")[0]
            assert r["status"] == "CLI_OK", r
            leader = cl.wait_leader(members)
        assert leader is new
        r = cl.io(new, "write", 1, 0, 4096, "--epoch=4", "--file-id=77")
        assert r["status"] == "EPOCH_TOO_OLD" and r["epoch"] == 5, r
    fenced_on_new()
    for c in members:
        assert c.proc.stop() == 0, c.proc.describe()
    for c in members:
        c.restart()
    try:
        leader = cl.wait_leader(members)
    except TimeoutError:
        raise AssertionError("\n".join(c.proc.describe() for c in members))
    fenced_on_new()
    for c in members:
        assert c.proc.stop() == 0, c.proc.describe()
    compare_replicas(cl, members)
    check_acked_on_disk(new, acked)
