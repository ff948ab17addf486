"""curve-mds process-level tests with a real etcd (docs/mds.md "Daemon").

Also the helpers of the other MDS tests (test_slow_mds_*.py import this module):

* MdsCluster: an etcd cluster plus N curve-mds processes (ports 0, temporary data);
* tool(): one curve-mds-tool call, parsed JSON;
* SimCluster: simulated chunkservers that register, heartbeat (through curve-mds-tool) and
  execute the operators of heartbeat replies like Raft would (change peer -> epoch + 1), so
  the scheduler loop (offline -> recovery, new disk -> rebalance) is exercised end to end
  without real chunkservers.
"""
import json
import os
import signal
import subprocess
import time
import urllib.request

import pytest

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from etcdtest import EtcdCluster

MiB = 1 << 20
SEG = 64 * MiB
CHUNK = 4 * MiB


def tool(addrs, *args, timeout=20):
    """Runs curve-mds-tool; returns the parsed JSON ({"ok": ..., ...})."""
    if isinstance(addrs, (list, tuple)):
        addrs = ",".join(addrs)
    out = subprocess.run([binary("curve-mds-tool"), "--addr=" + addrs] + [str(a) for a in args],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=timeout)
    try:
        return json.loads(out.stdout.decode())
    except ValueError:
        raise AssertionError("curve-mds-tool %s: rc %d stdout %r stderr %r" % (
            args, out.returncode, out.stdout, out.stderr))


def ok(r):
    assert r["ok"], r
    return r["result"]


def err(r, name):
    assert not r["ok"] and r["error"] == name, r
    return r


def http_json(port, path, timeout=2):
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as f:
        return json.loads(f.read().decode())


class Mds:
    def __init__(self, proc, name):
        self.proc = proc
        self.name = name
        m = proc.wait_for_line(r"^admin \S+:(\d+)", timeout=20)
        self.admin_port = int(m.group(1))
        self.addr = None

    def wait_leader(self, timeout):
        m = self.proc.wait_for_line(r"^leader serving (\S+)", timeout=timeout)
        self.addr = m.group(1)
        return self.addr

    def status(self):
        try:
            return http_json(self.admin_port, "/status?metrics=0")
        except OSError:
            return None

    def role(self):
        s = self.status()
        return s["role"] if s else None


class MdsCluster:
    """etcd (1 or 3 members) + curve-mds processes started through the `procs` fixture."""

    def __init__(self, procs, etcd_size=1, ttl=3, extra=()):
        self.procs = procs
        self.etcd = EtcdCluster(size=etcd_size)
        self.etcd.start_all()
        self.ttl = ttl
        self.extra = list(extra)
        self.mds = []

    def start_mds(self, name=None, extra=()):
        name = name or "mds%d" % (len(self.mds) + 1)
        args = [binary("curve-mds"), "--etcd-endpoints=" + self.etcd.endpoint_list(),
                "--port=0", "--admin-port=0", "--name=" + name,
                "--lease-ttl-s=%d" % self.ttl, "--chunk-size=%d" % CHUNK,
                "--segment-size=%d" % SEG, "--min-volume-size=%d" % SEG,
                "--max-volume-size=%d" % (1 << 40), "--sched-interval=200ms",
                "--balance-interval=500ms", "--unstable-time=2s", "--offline-time=4s",
                "--chunk-id-batch=256", "--file-id-batch=16", "--session-lease=3s",
                "--placement-wait=1s"]
        m = Mds(self.procs.start(args + self.extra + list(extra), name=name), name)
        self.mds.append(m)
        return m

    def leader(self, timeout):
        """The MDS whose /status says leader (waits)."""
        def find():
            for m in self.mds:
                if m.proc.running() and m.role() == "leader":
                    return m
            return None
        return wait_until(find, timeout, what="an MDS leader")

    def addrs(self):
        """RPC addresses of every MDS that ever served."""
        return [m.addr for m in self.mds if m.addr]

    def close(self):
        self.etcd.close()


@pytest.fixture
def cluster(procs):
    # Simulated chunkservers serve no CreateCopyset: operators go out unprepared.
    c = MdsCluster(procs, extra=["--prepare-peers=false"])
    try:
        yield c
    finally:
        procs.stop_all(kill=True)
        c.close()


TOPO_3Z = {
    "physical_pools": [{"name": "pp1"}],
    "zones": [{"name": "z%d" % z, "physical_pool": "pp1"} for z in (1, 2, 3)],
    "servers": [{"name": "s%d" % i, "zone": "z%d" % ((i - 1) % 3 + 1),
                 "host": "127.0.0.%d" % (10 + i)} for i in range(1, 10)],
    "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3, "copysets": 24}],
}


class SimCluster:
    """Simulated chunkservers: they register and heartbeat through curve-mds-tool and run
    the operators the MDS sends to copyset leaders, the way Raft would apply them."""

    def __init__(self, addrs):
        self.addrs = addrs
        self.cs = {}          # addr "ip:port:0" -> {"id", "token", "alive"}
        self.copysets = {}    # (pool, id) -> {"peers": [addr], "leader": addr, "epoch", "term"}
        self.ops_done = 0

    def register(self, host, port=8200):
        r = ok(tool(self.addrs, "register", host, port, 100 << 30, "/data/%s" % host))
        assert r["status"] == "HB_OK", r
        addr = "%s:%d:0" % (host, port)
        self.cs[addr] = {"id": r["chunkserver_id"], "token": r["token"], "alive": True,
                         "host": host, "port": port}
        return addr

    def load_copysets(self):
        """Starts every copyset the MDS placed and we do not know yet (like CreateCopyset)."""
        for c in ok(tool(self.addrs, "list-copysets"))["copysets"]:
            key = (c["logical_pool_id"], c["copyset_id"])
            if key not in self.copysets:
                self.copysets[key] = {"peers": list(c["peer_addrs"]), "leader": None,
                                      "epoch": c["epoch"], "term": 0}

    def _raft(self):
        """Leaders: a copyset whose leader is dead elects an alive peer (majority needed)."""
        for c in self.copysets.values():
            alive = [p for p in c["peers"] if self.cs.get(p, {}).get("alive")]
            if c["leader"] in alive:
                continue
            if len(alive) * 2 > len(c["peers"]):
                c["leader"] = sorted(alive)[0]
                c["term"] += 1
            else:
                c["leader"] = None

    def _apply(self, op, leader):
        c = self.copysets[(op["logical_pool_id"], op["copyset_id"])]
        if c["leader"] != leader or op["epoch"] != c["epoch"]:
            return
        t = op["type"]
        if t == "CONFIG_CHANGE_PEER":
            if op["old_peer"] in c["peers"] and op["new_peer"] not in c["peers"]:
                c["peers"] = [p for p in c["peers"] if p != op["old_peer"]] + [op["new_peer"]]
                c["epoch"] += 1
                if c["leader"] == op["old_peer"]:
                    c["leader"] = None
        elif t == "CONFIG_ADD_PEER":
            if op["peer"] not in c["peers"]:
                c["peers"].append(op["peer"])
                c["epoch"] += 1
        elif t == "CONFIG_REMOVE_PEER":
            if op["peer"] in c["peers"]:
                c["peers"].remove(op["peer"])
                c["epoch"] += 1
        elif t == "CONFIG_TRANSFER_LEADER":
            if op["peer"] in c["peers"] and self.cs[op["peer"]]["alive"]:
                c["leader"] = op["peer"]
                c["term"] += 1
        self.ops_done += 1

    def heartbeat_round(self):
        self._raft()
        for addr, cs in self.cs.items():
            if not cs["alive"]:
                continue
            mine = []
            for (pool, cid), c in self.copysets.items():
                if addr in c["peers"]:
                    e = {"pool": pool, "id": cid, "peers": c["peers"], "term": c["term"],
                         "epoch": c["epoch"]}
                    if c["leader"]:
                        e["leader"] = c["leader"]
                    mine.append(e)
            hb = {"id": cs["id"], "token": cs["token"], "ip": cs["host"], "port": cs["port"],
                  "capacity": 100 << 30, "used": 1 << 30, "copysets": mine}
            r = tool(self.addrs, "heartbeat", json.dumps(hb))
            if not r["ok"]:
                continue  # failover in progress: the next round retries
            assert r["result"]["status"] == "HB_OK", r
            for op in r["result"].get("operators", []):
                self._apply(op, addr)
        self._raft()


def test_namespace_operations(cluster):
    m = cluster.start_mds()
    a = m.wait_leader(20)
    assert m.role() == "leader"
    assert m.status()["etcd_ok"] is True

    d = ok(tool(a, "mkdir", "/vols", "alice"))
    assert d["type"] == "FILE_DIR" and d["owner"] == "alice"
    v = ok(tool(a, "create", "/vols/v1", 2 * SEG, "alice"))
    assert v["size"] == 2 * SEG and v["segment_size"] == SEG and v["chunk_size"] == CHUNK
    assert v["parent_id"] == d["id"]
    assert ok(tool(a, "stat", "/vols/v1"))["id"] == v["id"]
    names = sorted(e["name"] for e in ok(tool(a, "ls", "/"))["entries"])
    assert names == ["RecycleBin", "vols"]

    # Every failure class has its own code.
    err(tool(a, "create", "/vols/v1", SEG), "CURVE_ERR_EXISTS")
    err(tool(a, "create", "/vols/x", SEG + 4096), "CURVE_ERR_BAD_SIZE")
    err(tool(a, "create", "/vols/x", 0), "ERANGE")
    err(tool(a, "create", "/vols/x", 2 << 40), "EFBIG")
    err(tool(a, "create", "/vols/bad name", SEG), "CURVE_ERR_BAD_NAME")
    err(tool(a, "create", "/vols/" + "n" * 256, SEG), "ENAMETOOLONG")
    err(tool(a, "create", "/RecycleBin", SEG), "CURVE_ERR_PERMISSION")
    err(tool(a, "create", "/nodir/x", SEG), "CURVE_ERR_NOT_FOUND")
    err(tool(a, "create", "/vols/v1/x", SEG), "ENOTDIR")
    err(tool(a, "stat", "/vols/none"), "CURVE_ERR_NOT_FOUND")
    err(tool(a, "rename", "/vols", "/vols/sub"), "EINVAL")
    err(tool(a, "delete", "/"), "CURVE_ERR_PERMISSION")

    # Rename is atomic: the old name is gone, the id is kept.
    ok(tool(a, "mkdir", "/other"))
    ok(tool(a, "rename", "/vols/v1", "/other/v2"))
    err(tool(a, "stat", "/vols/v1"), "CURVE_ERR_NOT_FOUND")
    assert ok(tool(a, "stat", "/other/v2"))["id"] == v["id"]
    ok(tool(a, "create", "/vols/v3", SEG))
    err(tool(a, "rename", "/vols/v3", "/other/v2"), "CURVE_ERR_EXISTS")

    # Extend never shrinks; the same size is an idempotent retry.
    assert ok(tool(a, "extend", "/other/v2", 4 * SEG))["size"] == 4 * SEG
    err(tool(a, "extend", "/other/v2", 2 * SEG), "EOPNOTSUPP")
    assert ok(tool(a, "extend", "/other/v2", 4 * SEG))["size"] == 4 * SEG

    # Sessions: exclusive open bumps the epoch; an open volume cannot be deleted.
    o = ok(tool(a, "open", "/other/v2", "exclusive"))
    assert o["file"]["epoch"] == v["epoch"] + 1 and o["lease_ms"] == 3000
    sid = o["session_id"]
    ok(tool(a, "refresh", "/other/v2", sid))
    err(tool(a, "delete", "/other/v2"), "CURVE_ERR_BUSY")
    err(tool(a, "refresh", "/other/v2", "00000000000000ff"), "CURVE_ERR_SESSION_EXPIRED")
    ok(tool(a, "close", "/other/v2", sid))
    err(tool(a, "refresh", "/other/v2", sid), "CURVE_ERR_SESSION_EXPIRED")
    # A session that is not refreshed expires with its lease.
    o2 = ok(tool(a, "open", "/other/v2"))
    # a read-write open bumps the epoch too (docs/sessions.md), a read-only one does not
    assert o2["file"]["epoch"] == o["file"]["epoch"] + 1
    o3 = ok(tool(a, "open", "/other/v2", "readonly"))
    assert o3["file"]["epoch"] == o2["file"]["epoch"]
    ok(tool(a, "close", "/other/v2", o3["session_id"]))
    assert len(cluster.etcd.get_prefix("/curve/v1/session/")) == 1
    wait_until(lambda: cluster.etcd.get_prefix("/curve/v1/session/") == [], 15,
               interval=0.2, what="session lease expiry")
    err(tool(a, "refresh", "/other/v2", o2["session_id"]), "CURVE_ERR_SESSION_EXPIRED")

    # Delete goes to the recycle bin and can be recovered to its place.
    err(tool(a, "delete", "/other"), "CURVE_ERR_NOT_EMPTY")
    ok(tool(a, "delete", "/other/v2"))
    err(tool(a, "stat", "/other/v2"), "CURVE_ERR_NOT_FOUND")
    rb = ok(tool(a, "ls", "/RecycleBin"))["entries"]
    assert [e["name"] for e in rb] == ["v2-%d" % v["id"]]
    assert rb[0]["original_name"] == "v2"
    r = ok(tool(a, "recover", "/RecycleBin/v2-%d" % v["id"]))
    assert r["name"] == "v2" and r["size"] == 4 * SEG
    assert ok(tool(a, "stat", "/other/v2"))["id"] == v["id"]
    assert ok(tool(a, "ls", "/RecycleBin"))["entries"] == []

    # Purge (no segments allocated: nothing to delete on chunkservers) removes it for good.
    ok(tool(a, "delete", "/other/v2"))
    ok(tool(a, "purge", "/RecycleBin/v2-%d" % v["id"]))
    wait_until(lambda: ok(tool(a, "ls", "/RecycleBin"))["entries"] == [], 10, interval=0.2,
               what="purge of an empty volume")
    ok(tool(a, "delete", "/other"))
    err(tool(a, "stat", "/other"), "CURVE_ERR_NOT_FOUND")


def test_segments_and_topology(cluster):
    m = cluster.start_mds()
    a = m.wait_leader(20)
    ok(tool(a, "create", "/v", 4 * SEG))
    # No logical pool yet: allocation fails with a clear error, reading allocates nothing.
    err(tool(a, "segment", "/v", 0), "CURVE_ERR_NOSPACE")
    path = os.path.join(cluster.etcd.tmp, "topo.json")
    with open(path, "w") as f:
        json.dump(TOPO_3Z, f)
    r = ok(tool(a, "apply-topology", path))
    assert r["added"] > 0 and r.get("created_pools", []) == []  # no chunkservers yet
    assert ok(tool(a, "apply-topology", path))["added"] == 0   # idempotent
    bad = os.path.join(cluster.etcd.tmp, "bad.json")
    with open(bad, "w") as f:
        f.write('{"zones": [{"name": "z9", "physical_pool": "nope"}]}')
    e = err(tool(a, "apply-topology", bad), "CURVE_ERR_CONFIG")
    assert "nope" in e["message"]

    sim = SimCluster(a)
    for i in range(1, 7):
        sim.register("127.0.0.%d" % (10 + i))
    rr = ok(tool(a, "register", "127.0.0.99", 8200, 1 << 30))
    assert rr["status"] == "HB_FAILED" and "127.0.0.99" in rr["error"]
    wait_placed(sim, a, 24)
    topo = ok(tool(a, "list-topology"))
    assert len(topo["chunkservers"]) == 6
    assert all(c["copysets"] == 12 for c in topo["chunkservers"]), topo["chunkservers"]
    zone = {c["id"]: c["zone"] for c in topo["chunkservers"]}
    for c in ok(tool(a, "list-copysets"))["copysets"]:
        assert len({zone[p] for p in c["peers"]}) == 3, c   # 3 distinct zones

    seg = ok(tool(a, "segment", "/v", SEG + 5))
    assert seg["offset"] == SEG and len(seg["chunks"]) == SEG // CHUNK
    assert len({c["chunk_id"] for c in seg["chunks"]}) == SEG // CHUNK
    assert len({c["copyset_id"] for c in seg["chunks"]}) == SEG // CHUNK  # 16 of 24 copysets
    assert ok(tool(a, "segment", "/v", SEG))["chunks"] == seg["chunks"]  # stable
    assert ok(tool(a, "get-segment", "/v", SEG + 100))["chunks"] == seg["chunks"]
    err(tool(a, "get-segment", "/v", 0), "CURVE_ERR_NOT_FOUND")
    err(tool(a, "segment", "/v", 4 * SEG), "ERANGE")
    seg0 = ok(tool(a, "segment", "/v", 0))
    ids0 = {c["chunk_id"] for c in seg0["chunks"]}
    assert not ids0 & {c["chunk_id"] for c in seg["chunks"]}

    # Heartbeats: leaders become known; the cluster is healthy.
    sim.load_copysets()
    sim.heartbeat_round()
    st = ok(tool(a, "status"))
    assert st["online"] == 6 and st["copysets"] == 24 and st["healthy_copysets"] == 24, st
    cs1 = ok(tool(a, "get-copyset", 1, 1))
    assert cs1["leader"] != 0 and cs1["leader_addr"] == sim.copysets[(1, 1)]["leader"]
    # Bad token / unknown chunkserver.
    first = next(iter(sim.cs.values()))
    hb = {"id": first["id"], "token": "0" * 32, "ip": first["host"], "port": 8200,
          "capacity": 1, "used": 0}
    assert ok(tool(a, "heartbeat", json.dumps(hb)))["status"] == "HB_BAD_TOKEN"
    hb["id"] = 999
    assert ok(tool(a, "heartbeat", json.dumps(hb)))["status"] == "HB_UNKNOWN_CHUNKSERVER"


def wait_placed(sim, a, n):
    """Heartbeats (chunkservers must stay online) until the MDS placed n copysets."""
    def placed():
        sim.heartbeat_round()
        return len(ok(tool(a, "list-copysets"))["copysets"]) == n
    wait_until(placed, 20, interval=0.1, what="placement of %d copysets" % n)


def _healthy(a, exclude):
    cs = ok(tool(a, "list-copysets"))["copysets"]
    return all(c["healthy"] and len(c["peers"]) == 3 and exclude not in c["peers"] for c in cs)


def test_offline_chunkserver_recovered(cluster):
    """A chunkserver silent for longer than the offline time: its copysets are rebuilt on the
    others (recovery operators through heartbeat replies) and all are back to 3 healthy."""
    m = cluster.start_mds()
    a = m.wait_leader(20)
    path = os.path.join(cluster.etcd.tmp, "topo.json")
    with open(path, "w") as f:
        json.dump(TOPO_3Z, f)
    ok(tool(a, "apply-topology", path))
    sim = SimCluster(a)
    for i in range(1, 8):
        sim.register("127.0.0.%d" % (10 + i))
    wait_placed(sim, a, 24)
    sim.load_copysets()
    sim.heartbeat_round()
    victim_addr = sorted(sim.cs)[0]
    victim = sim.cs[victim_addr]["id"]
    n_victim = sum(1 for c in sim.copysets.values() if victim_addr in c["peers"])
    assert n_victim > 0
    sim.cs[victim_addr]["alive"] = False
    t0 = time.monotonic()

    def state():
        for c in ok(tool(a, "list-topology"))["chunkservers"]:
            if c["id"] == victim:
                return c["state"]
    deadline = time.monotonic() + 60
    seen = set()
    while time.monotonic() < deadline:
        sim.heartbeat_round()
        seen.add(state())
        if "offline" in seen and _healthy(a, victim):
            break
        time.sleep(0.2)
    assert "unstable" in seen or "offline" in seen
    assert "offline" in seen, seen
    assert _healthy(a, victim), ok(tool(a, "list-copysets"))
    assert time.monotonic() - t0 >= 4.0  # not before the offline time
    assert sim.ops_done >= n_victim
    st = ok(tool(a, "status"))
    assert st["healthy_copysets"] == 24 and st["offline"] == 1, st
    # Operators finished and are gone from the table.
    wait_until(lambda: ok(tool(a, "status"))["operators"] == 0 or sim.heartbeat_round(), 20,
               interval=0.2, what="operators done")


def test_majority_lost_is_not_repaired(cluster):
    m = cluster.start_mds()
    a = m.wait_leader(20)
    topo = dict(TOPO_3Z)
    topo["servers"] = TOPO_3Z["servers"][:3]
    topo["logical_pools"] = [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                              "copysets": 3}]
    path = os.path.join(cluster.etcd.tmp, "topo.json")
    with open(path, "w") as f:
        json.dump(topo, f)
    ok(tool(a, "apply-topology", path))
    sim = SimCluster(a)
    for i in range(1, 4):
        sim.register("127.0.0.%d" % (10 + i))
    wait_placed(sim, a, 3)
    sim.load_copysets()
    sim.heartbeat_round()
    for addr in sorted(sim.cs)[:2]:
        sim.cs[addr]["alive"] = False
    wait_until(lambda: ok(tool(a, "status"))["majority_lost"] == 3 or sim.heartbeat_round(),
               30, interval=0.3, what="majority lost reported")
    # No automatic repair: no peer change was planned (leader transfers may be in flight).
    for _ in range(3):
        sim.heartbeat_round()
    for c in ok(tool(a, "list-copysets"))["copysets"]:
        assert not c.get("operator", "").startswith(("change", "add", "remove")), c
        assert sorted(c["peers"]) == sorted(sim.cs[p]["id"] for p in sim.cs), c
    metrics = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % m.admin_port,
                                     timeout=2).read().decode()
    line = [x for x in metrics.splitlines() if x.startswith("mds_alerts_majority_lost_total")]
    assert line and int(float(line[0].split()[-1])) > 0, line


def test_new_chunkserver_rebalances(cluster):
    """New chunkservers join (one per zone, so that the zone rule allows an even spread):
    copyset balance moves replicas onto them until every count is within the configured
    range (5% of the mean, at least 1)."""
    m = cluster.start_mds()
    a = m.wait_leader(20)
    topo = dict(TOPO_3Z)
    topo["logical_pools"] = [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                              "copysets": 30}]
    path = os.path.join(cluster.etcd.tmp, "topo.json")
    with open(path, "w") as f:
        json.dump(topo, f)
    ok(tool(a, "apply-topology", path))
    sim = SimCluster(a)
    for i in range(1, 7):
        sim.register("127.0.0.%d" % (10 + i))
    wait_placed(sim, a, 30)
    sim.load_copysets()
    sim.heartbeat_round()
    new_ids = [sim.cs[sim.register("127.0.0.%d" % (10 + i))]["id"] for i in (7, 8, 9)]

    def counts():
        return {c["id"]: c["copysets"] for c in ok(tool(a, "list-topology"))["chunkservers"]}
    assert all(counts()[i] == 0 for i in new_ids)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        sim.heartbeat_round()
        c = counts()
        mean = sum(c.values()) / len(c)
        rng = max(1, mean * 5 / 100)
        if all(abs(v - mean) <= rng for v in c.values()) and \
                ok(tool(a, "status"))["operators"] == 0:
            break
        time.sleep(0.2)
    c = counts()
    mean = sum(c.values()) / len(c)
    assert mean == 10, c
    assert all(abs(v - mean) <= max(1, mean * 0.05) for v in c.values()), c
    assert _healthy(a, 0)
    zone = {x["id"]: x["zone"] for x in ok(tool(a, "list-topology"))["chunkservers"]}
    for cs in ok(tool(a, "list-copysets"))["copysets"]:
        assert len({zone[p] for p in cs["peers"]}) == 3, cs


def test_bad_config_and_follower_refuses(cluster, procs):
    p = procs.start([binary("curve-mds"), "--etcd-endpoints=" + cluster.etcd.endpoint_list(),
                     "--no-such-key=1"], name="badcfg")
    assert p.wait(timeout=10) == 2
    assert any("no_such_key" in l or "no-such-key" in l for l in p.stderr_lines)
    p2 = procs.start([binary("curve-mds"), "--etcd-endpoints=" + cluster.etcd.endpoint_list(),
                      "--segment-size=1000"], name="badsize")
    assert p2.wait(timeout=10) == 2
    m1 = cluster.start_mds()
    m1.wait_leader(20)
    m2 = cluster.start_mds()
    m2.proc.wait_for_line(r"^follower", timeout=20)
    assert m2.role() == "follower"
    assert m1.role() == "leader"
    wait_until(lambda: m2.status()["etcd_ok"], 5, what="follower etcd probe")
    assert m2.status()["serving"] is False
    # A follower does not listen: only the leader's address answers.
    assert ok(tool([m1.addr], "status"))["leader"] == m1.addr


def test_list_pages(cluster):
    """ListDir is paged (start_after, limit, more, last_name); the CLI and the purge page through
    directories larger than one page."""
    m = cluster.start_mds()
    a = m.wait_leader(20)
    ok(tool(a, "mkdir", "/many"))
    names = ["v%02d" % i for i in (7, 3, 11, 1, 9, 5, 2)]
    for n in names:
        ok(tool(a, "create", "/many/" + n, SEG))
    want = sorted(names)

    seen, after, pages = [], "", 0
    while True:
        r = ok(tool(a, "ls", "/many", after, 3))
        page = [e["name"] for e in r["entries"]]
        assert len(page) <= 3
        seen += page
        pages += 1
        if not r.get("more"):
            break
        assert r["last_name"] == page[-1]
        after = r["last_name"]
    assert seen == want and pages == 3
    # start_after need not exist; limit 0 = the default page (everything here)
    r = ok(tool(a, "ls", "/many", "v04", 2))
    assert [e["name"] for e in r["entries"]] == ["v05", "v07"] and r["more"] is True
    r = ok(tool(a, "ls", "/many", "v11", 2))
    assert r["entries"] == [] and not r.get("more")
    assert [e["name"] for e in ok(tool(a, "ls", "/many", "", 0))["entries"]] == want
    err(tool(a, "ls", "/many", "a/b", 2), "EINVAL")
    err(tool(a, "ls", "/many", "x" * 400, 2), "EINVAL")
    err(tool(a, "ls", "/many/v01", "", 2), "ENOTDIR")

    # The operator's CLI reads every page.
    cli = [binary("curve"), "--mds-addrs=" + a, "--format=json", "bs", "list", "volume", "/many"]
    for extra in (["--page-size=2"], ["--page-size=1"], []):
        out = subprocess.run(cli + extra, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=20)
        assert out.returncode == 0, out.stderr
        assert [e["name"] for e in json.loads(out.stdout)] == want
    for bad in ("--page-size=0", "--page-size=4001", "--page-size=x"):
        out = subprocess.run(cli + [bad], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             timeout=20)
        assert out.returncode == 2 and b"page-size" in out.stderr, (bad, out)

    # Recover by name finds a deleted volume on a later page of /RecycleBin.
    for n in names:
        ok(tool(a, "delete", "/many/" + n))
    rb = ok(tool(a, "ls", "/RecycleBin", "", 0))["entries"]
    assert sorted(e["original_name"] for e in rb) == want
    rec = [binary("curve"), "--mds-addrs=" + a, "--format=json", "bs", "recover", "volume",
           "/many/v11", "--page-size=2"]
    out = subprocess.run(rec, stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert out.returncode == 0, out.stderr
    assert ok(tool(a, "stat", "/many/v11"))["name"] == "v11"


def test_open_count(cluster):
    """Stat and ListDir report the sessions open on a volume (curve_stat.open_count)."""
    m = cluster.start_mds()
    a = m.wait_leader(20)
    ok(tool(a, "mkdir", "/oc"))
    ok(tool(a, "create", "/oc/v", SEG))
    ok(tool(a, "create", "/oc/w", SEG))
    st = ok(tool(a, "stat", "/oc/v"))
    assert st.get("open_count", None) == 0, st
    assert "open_count" not in ok(tool(a, "stat", "/oc"))  # directories have none

    def counts():
        return {e["name"]: e.get("open_count") for e in ok(tool(a, "ls", "/oc"))["entries"]}
    assert counts() == {"v": 0, "w": 0}
    rw = ok(tool(a, "open", "/oc/v"))
    assert ok(tool(a, "stat", "/oc/v"))["open_count"] == 1
    ro = ok(tool(a, "open", "/oc/v", "readonly"))
    ro2 = ok(tool(a, "open", "/oc/w", "readonly"))
    assert ok(tool(a, "stat", "/oc/v"))["open_count"] == 2
    assert counts() == {"v": 2, "w": 1}
    ok(tool(a, "close", "/oc/v", ro["session_id"]))
    ok(tool(a, "close", "/oc/w", ro2["session_id"]))
    assert ok(tool(a, "stat", "/oc/v"))["open_count"] == 1
    assert counts() == {"v": 1, "w": 0}
    # the CLI shows it
    out = subprocess.run([binary("curve"), "--mds-addrs=" + a, "--format=json", "bs", "stat",
                          "volume", "/oc/v"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         timeout=20)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["open_count"] == 1
    # a session that is not refreshed stops counting when its lease expires
    wait_until(lambda: ok(tool(a, "stat", "/oc/v"))["open_count"] == 0, 15, interval=0.2,
               what="session lease expiry")
