"""Process-level tests of the Raft runtime (src/raft/rt) through curve-raft-kv: three nodes on
loopback elect a leader and replicate acknowledged puts; a follower that was down while the log
was compacted catches up through a snapshot install (small snapshot threshold); every node
restarts and recovers its state from disk. The KvCluster helper is shared with
test_slow_raft_kv.py."""

import json
import os
import signal
import urllib.error
import urllib.request

import pytest  # noqa: F401

from curvetest import binary, free_port, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)

START_TIMEOUT_S = 15
HTTP_TIMEOUT_S = 2


class KvCluster:
    """Three curve-raft-kv nodes (ids 1..n) with fixed ports chosen at run time, so that a
    restarted node comes back at the same address."""

    def __init__(self, procs, tmp_dir, n=3, extra=()):
        self.procs = procs
        self.dir = tmp_dir
        self.n = n
        self.extra = list(extra)
        self.ports = {i: free_port() for i in range(1, n + 1)}
        self.admin = {i: free_port() for i in range(1, n + 1)}
        self.peers = ",".join("%d=127.0.0.1:%d" % (i, self.ports[i]) for i in range(1, n + 1))
        self.node = {}
        self.starts = {i: 0 for i in range(1, n + 1)}

    def start(self, i):
        self.starts[i] += 1
        p = self.procs.start([binary("curve-raft-kv"), "--id=%d" % i,
                              "--data-dir=" + os.path.join(self.dir, "n%d" % i),
                              "--peers=" + self.peers, "--port=%d" % self.ports[i],
                              "--admin-port=%d" % self.admin[i]] + self.extra,
                             name="n%d.%d" % (i, self.starts[i]))
        p.wait_for_line(r"^listening ", timeout=START_TIMEOUT_S)
        self.node[i] = p
        return p

    def start_all(self):
        for i in range(1, self.n + 1):
            self.start(i)

    def running(self, i):
        return i in self.node and self.node[i].running()

    def kill(self, i):
        """SIGKILL by PID and reap (bounded)."""
        self.node[i].kill()

    def stop(self, i):
        """SIGTERM, bounded wait; returns the exit code."""
        return self.node[i].stop()

    def pause(self, i):
        self.node[i].signal(signal.SIGSTOP)

    def resume(self, i):
        self.node[i].signal(signal.SIGCONT)

    def status(self, i):
        """The node's /status JSON, or None if it does not answer."""
        url = "http://127.0.0.1:%d/status?metrics=0" % self.admin[i]
        try:
            with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
                return json.loads(r.read().decode())
        except (OSError, ValueError):
            return None

    def leader(self, among=None):
        """Id of a node reporting itself leader (among the running ones), else None."""
        for i in among or range(1, self.n + 1):
            if not self.running(i):
                continue
            st = self.status(i)
            if st and st.get("raft_role") == "leader":
                return i
        return None

    def wait_leader(self, timeout=20, among=None):
        return wait_until(lambda: self.leader(among), timeout, interval=0.05,
                          what="a raft leader")

    def converged(self, nodes=None, min_applied=1):
        """Every listed node answers with the same applied index == commit (>= min_applied)
        and the same hash."""
        sts = []
        for i in nodes or range(1, self.n + 1):
            st = self.status(i)
            if st is None or st["kv_applied"] != st["commit"] or st["commit"] < min_applied:
                return None
            sts.append(st)
        if len({(s["kv_applied"], s["kv_hash"]) for s in sts}) != 1:
            return None
        return sts

    def wait_converged(self, timeout=30, nodes=None, min_applied=1):
        return wait_until(lambda: self.converged(nodes, min_applied), timeout, interval=0.05,
                          what="replicas at the same applied index (>= %d) and hash" % min_applied)

    def dump(self, i, timeout=30):
        """(summary dict, {key: value}) from node i's Dump RPC."""
        p = self.procs.start([binary("curve-raft-kv"), "client", "dump",
                              "--addr=127.0.0.1:%d" % self.ports[i]], name="dump%d" % i)
        rc = p.wait(timeout=timeout)
        assert rc == 0, p.describe()
        lines = list(p.stdout_lines)
        summary = json.loads(lines[0])
        kv = {}
        for line in lines[1:]:
            if line:
                k, v = line.split("\t", 1)
                kv[k] = v
        assert len(kv) == summary["nkeys"], "dump of node %d: %d lines, nkeys %d" % (
            i, len(kv), summary["nkeys"])
        return summary, kv

    def put_stream(self, out, prefix, count=None):
        args = [binary("curve-raft-kv"), "client", "put-stream", "--peers=" + self.peers,
                "--out=" + out, "--prefix=" + prefix]
        if count:
            args.append("--count=%d" % count)
        p = self.procs.start(args, name="stream-" + prefix)
        p.wait_for_line(r"^streaming", timeout=START_TIMEOUT_S)
        return p


def read_acked(path):
    """{key: value} of every acknowledged put recorded by put-stream."""
    acked = {}
    if not os.path.exists(path):
        return acked
    with open(path) as f:
        for line in f:
            line = line.rstrip("\n")
            if line:
                k, v = line.split("\t", 1)
                acked[k] = v
    return acked


def count_lines(path):
    if not os.path.exists(path):
        return 0
    with open(path) as f:
        return sum(1 for _ in f)


FAST = ["--election-timeout-ms=500", "--heartbeat-ms=50"]


def test_replicate_snapshot_install_and_recovery(procs, tmp_dir):
    c = KvCluster(procs, tmp_dir, extra=FAST + ["--snapshot-threshold=50",
                                                "--snapshot-trailing=10"])
    c.start_all()
    leader = c.wait_leader()

    # replicate: 100 acknowledged puts reach every replica
    out1 = os.path.join(tmp_dir, "acked1")
    s = c.put_stream(out1, "a", count=100)
    assert s.wait(timeout=60) == 0, s.describe()
    acked1 = read_acked(out1)
    assert len(acked1) == 100
    c.wait_converged()
    for i in (1, 2, 3):
        _, kv = c.dump(i)
        for k, v in acked1.items():
            assert kv.get(k) == v, "node %d lacks %s" % (i, k)

    # per-group metrics with the copyset label on the leader's /metrics
    url = "http://127.0.0.1:%d/metrics" % c.admin[leader]
    with urllib.request.urlopen(url, timeout=HTTP_TIMEOUT_S) as r:
        text = r.read().decode()
    for name in ("raft_commit_latency_seconds_count", "raft_apply_latency_seconds_count",
                 "raft_append_latency_seconds_count", "raft_log_entries_per_fdatasync",
                 "raft_role", "raft_term"):
        line = next((ln for ln in text.splitlines()
                     if ln.startswith(name + '{copyset="1"}')), None)
        assert line is not None, "%s missing from /metrics" % name
        if name.startswith(("raft_commit", "raft_apply")):
            assert float(line.split()[-1]) >= 100, line  # one per acknowledged put
        elif name.endswith("_count"):
            assert float(line.split()[-1]) > 0, line
    assert 'raft_role{copyset="1"} 4' in text

    # a follower misses 300 entries while the leader snapshots and compacts its log
    lag = next(i for i in (1, 2, 3) if i != leader)
    lag_applied = c.status(lag)["kv_applied"]
    c.kill(lag)
    out2 = os.path.join(tmp_dir, "acked2")
    s = c.put_stream(out2, "b", count=300)
    assert s.wait(timeout=60) == 0, s.describe()
    others = [i for i in (1, 2, 3) if i != lag]
    sts = c.wait_converged(nodes=others)
    assert all(st["first_index"] > lag_applied + 1 for st in sts), \
        "the log was not compacted beyond the lagging follower: %s" % sts
    c.start(lag)
    c.wait_converged()
    st = c.status(lag)
    assert st["snapshots_installed"] >= 1, st
    acked = dict(acked1)
    acked.update(read_acked(out2))
    assert len(acked) == 400
    for i in (1, 2, 3):
        _, kv = c.dump(i)
        missing = [k for k in acked if kv.get(k) != acked[k]]
        assert not missing, "node %d lacks %d keys, e.g. %s" % (i, len(missing), missing[:3])

    # full restart: every node recovers from its snapshot + log
    before = c.wait_converged()
    for i in (1, 2, 3):
        assert c.stop(i) == 0
    c.start_all()
    c.wait_leader()
    # A restarted node reports its snapshot's index as commit until the new leader commits an
    # entry of its term, so "converged" alone can match a state older than before the restart:
    # wait for the replicas to agree at or beyond the index they had reached.
    after = c.wait_converged(min_applied=before[0]["kv_applied"])
    sums = [c.dump(i) for i in (1, 2, 3)]
    assert len({(sm["applied"], sm["hash"]) for sm, _ in sums}) == 1
    for i, (_, kv) in enumerate(sums, 1):
        assert all(kv.get(k) == v for k, v in acked.items()), "node %d lost keys" % i


def test_rejects_bad_input(procs, tmp_dir):
    """Bad command lines fail cleanly; a node keeps serving after a malformed put."""
    bad = procs.start([binary("curve-raft-kv"), "--id=0", "--data-dir=" + tmp_dir,
                       "--peers=1=127.0.0.1:1", "--port=0"], name="bad")
    assert bad.wait(timeout=10) == 2
    bad = procs.start([binary("curve-raft-kv"), "--id=1", "--data-dir=" + tmp_dir,
                       "--peers=1=nocolon", "--port=0"], name="bad2")
    assert bad.wait(timeout=10) == 2
    c = KvCluster(procs, tmp_dir, extra=FAST)
    c.start_all()
    c.wait_leader()
    # an empty key is refused by the server (INVALID_REQUEST), not retried forever
    p = procs.start([binary("curve-raft-kv"), "client", "put", "--peers=" + c.peers, "--key=",
                     "--value=x"], name="badput")
    assert p.wait(timeout=30) == 1, p.describe()
    p = procs.start([binary("curve-raft-kv"), "client", "put", "--peers=" + c.peers,
                     "--key=good", "--value=1"], name="goodput")
    assert p.wait(timeout=30) == 0, p.describe()
    c.wait_converged()
    for i in (1, 2, 3):
        assert c.dump(i)[1].get("good") == "1"


def http(c, i, path, method="GET"):
    """(status, body) of an admin request to node i."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (c.admin[i], path),
                                 data=b"" if method == "POST" else None, method=method)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def test_follower_disk_failure_then_restart(procs, tmp_dir):
    """fdatasync fails on a follower (failpoint): that node stops (unhealthy), the other two keep
    committing; restarted without the fault, it recovers and catches up."""
    c = KvCluster(procs, tmp_dir, extra=FAST + ["--enable-failpoints"])
    c.start_all()
    leader = c.wait_leader()
    bad = next(i for i in (1, 2, 3) if i != leader)
    assert http(c, bad, "/health")[0] == 200
    st, body = http(c, bad, "/failpoint?name=raftlog.sync&action=return(EIO)", "POST")
    assert st == 200, body
    out = os.path.join(tmp_dir, "acked")
    s = c.put_stream(out, "d", count=100)
    assert s.wait(timeout=60) == 0, s.describe()
    wait_until(lambda: http(c, bad, "/health")[0] == 503, 20, interval=0.05,
               what="node %d unhealthy after the injected fdatasync error" % bad)
    assert "failed" in http(c, bad, "/health")[1]
    assert c.status(bad)["failed"] != 0
    c.kill(bad)
    c.start(bad)  # a new process: no failpoint
    c.wait_converged()
    acked = read_acked(out)
    assert len(acked) == 100
    for i in (1, 2, 3):
        _, kv = c.dump(i)
        assert all(kv.get(k) == v for k, v in acked.items()), "node %d lacks keys" % i
