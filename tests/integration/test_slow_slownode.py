"""Slow chunkserver: the MDS moves copyset leaders off it and keeps them off while it is slow
(docs/mds.md "Slow chunkservers").

curve-mds (etcd) with 3 real curve-chunkservers, one per zone, 6 copysets. One write stream per
copyset (curve-chunk-tool write-stream: follows the leader, retries until acknowledged) keeps IO
going. The chunkserver leading the most copysets then gets the slow-disk failpoint
(chunkstore.write=delay(50): +50 ms on every chunk write, as in tests/system/chaos.py). Asserted:
  - the MDS marks it slow (log line, mds_slow_chunkservers metric);
  - every leadership leaves it and stays off for several leader-balance rounds while it is
    still online and slow (without the mark, leader balance moves leaders back to the node
    leading none);
  - every write stream keeps completing writes;
  - `curve bs list chunkserver` / `curve bs status` (table and JSON) and the MDS /status show
    it as slow while it is marked, and nobody as slow before and after;
  - after the failpoint is cleared and the hold time passed, the MDS unmarks it.
No timing assertions: every wait is a bounded poll; times are printed.
"""
import json
import os
import re
import shutil
import subprocess
import time
import urllib.request

import pytest

from curvetest import binary, free_port, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
import test_mds as h

def have(name):
    try:
        binary(name)
        return True
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not (have("curve-mds") and have("curve-chunkserver") and have("curve-chunk-tool")
         and have("curve") and shutil.which("etcd")),
    reason="curve-mds, curve-chunkserver, curve-chunk-tool, curve or etcd not available")

HOSTS = {"s1": ("z1", "127.0.0.21"), "s2": ("z2", "127.0.0.22"), "s3": ("z3", "127.0.0.23")}
NCOPYSETS = 6
BALANCE_ROUNDS = 6  # leader-balance rounds (500 ms each in test_mds) the leaders must stay off


def start_cs(procs, tmp, host, mds_addr):
    port = free_port()
    d = os.path.join(tmp, "cs-" + host)
    os.makedirs(d, exist_ok=True)
    p = procs.start([binary("curve-chunkserver"), "--data_dir=" + d, "--ip=" + host,
                     "--port=%d" % port, "--admin_port=0", "--mds_addrs=" + mds_addr,
                     "--chunk_size=%d" % h.CHUNK, "--pool.target_files=12",
                     "--pool.reserve_bytes=0", "--pool.min_ready=2",
                     "--heartbeat.interval=300ms", "--admin.failpoints=true",
                     # the MDS's detection is under test: no self-handoff on a slow disk
                     # (that is tested in test_chunkserver.py)
                     "--disk.slow_write=0"],
                    name="cs-" + host)
    m = p.wait_for_line(r"listening \S+ admin (\d+)", timeout=30)
    return p, "%s:%d" % (host, port), int(m.group(1))


def http(port, path, method="GET", host="127.0.0.1"):
    req = urllib.request.Request("http://%s:%d%s" % (host, port, path), method=method,
                                 data=b"" if method == "POST" else None)
    with urllib.request.urlopen(req, timeout=5) as f:
        return f.read().decode()


def metric(port, name):
    for line in http(port, "/metrics").splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    return None


def cli(a, *args):
    """`curve <args> --mds-addrs=a`: stdout (exit code 0 asserted)."""
    p = subprocess.run([binary("curve")] + list(args) + ["--mds-addrs=" + a],
                       stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
    assert p.returncode == 0, (args, p.stdout, p.stderr)
    return p.stdout.decode()


def slow_views(a, admin_port):
    """Who is slow according to the CLI (list JSON, list table, status JSON, status table) and
    the MDS /status: a tuple of comparable values."""
    rows = json.loads(cli(a, "bs", "list", "chunkserver", "--format=json"))
    by_json = sorted(r["id"] for r in rows if r["slow"])
    table = cli(a, "bs", "list", "chunkserver")
    by_table = sorted(int(line.split()[0]) for line in table.splitlines()[1:]
                      if line.strip() and ",slow" in line)
    st = json.loads(cli(a, "bs", "status", "--format=json"))
    text = cli(a, "bs", "status")
    m = re.search(r"chunkservers .* (\d+) slow", text)
    assert m, text
    mst = json.loads(http(admin_port, "/status"))
    return (by_json, by_table, st["chunkservers"]["slow"], int(m.group(1)),
            mst["slow_chunkservers"], sorted(mst["slow_chunkserver_ids"]))


def leaders(a):
    """{chunkserver id: copysets it leads} from the MDS view."""
    out = {}
    for c in h.ok(h.tool(a, "list-copysets"))["copysets"]:
        if c.get("leader"):
            out[c["leader"]] = out.get(c["leader"], 0) + 1
    return out


class Stream:
    """Writes to one copyset without end: curve-chunk-tool write-stream (follows the leader,
    retries until acknowledged) over the first chunk, restarted when it finishes; every
    acknowledged write is one line of the --out file."""

    PER_RUN = 1024  # writes of one run: exactly one 4 MiB chunk of 4 KiB blocks

    def __init__(self, procs, peers, copyset, tmp):
        self.procs, self.peers, self.copyset = procs, peers, copyset
        self.out = os.path.join(tmp, "stream%d.acked" % copyset)
        self.runs = 0
        self.p = None
        self._start()

    def _start(self):
        self.runs += 1
        self.p = self.procs.start([binary("curve-chunk-tool"), "--peers=" + ",".join(self.peers),
                                   "write-stream", "--pool=1", "--copyset=%d" % self.copyset,
                                   "--count=%d" % self.PER_RUN, "--size=4096",
                                   "--chunk-size=%d" % h.CHUNK, "--out=" + self.out],
                                  name="stream%d.%d" % (self.copyset, self.runs))

    def acked(self):
        if not self.p.running():
            self.p.popen.wait()
            assert self.p.popen.returncode == 0, self.p.describe()
            self._start()
        try:
            with open(self.out) as f:
                return sum(1 for _ in f)
        except FileNotFoundError:
            return 0


def test_slow_disk_leaders_moved_off(procs, tmp_dir):
    # offline only after 2 min: the slow chunkserver stays a member (recovery would replace it)
    cl = h.MdsCluster(procs, extra=["--offline-time=120s"])
    try:
        _run(procs, tmp_dir, cl)
    except Exception:
        for p in procs.procs:
            if p.name.startswith("mds") or p.name.startswith("cs-"):
                print("----", p.name)
                print("\n".join([x for x in p.stderr_lines
                                 if ("mds:" in x or "cs_heartbeat" in x or "operator" in x
                                     or "stepping down" in x) and "ALERT" not in x][-60:]))
        raise
    finally:
        procs.stop_all(kill=True)
        cl.close()


def _run(procs, tmp_dir, cl):
    m = cl.start_mds()
    a = m.wait_leader(20)
    topo = {"physical_pools": [{"name": "pp1"}],
            "zones": [{"name": z, "physical_pool": "pp1"} for z in ("z1", "z2", "z3")],
            "servers": [{"name": s, "zone": z, "host": ip} for s, (z, ip) in sorted(HOSTS.items())],
            "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                               "copysets": NCOPYSETS}]}
    path = os.path.join(tmp_dir, "topo.json")
    with open(path, "w") as f:
        json.dump(topo, f)
    h.ok(h.tool(a, "apply-topology", path))
    cs = {s: start_cs(procs, tmp_dir, ip, a) for s, (z, ip) in sorted(HOSTS.items())}
    wait_until(lambda: h.ok(h.tool(a, "status"))["healthy_copysets"] == NCOPYSETS, 60,
               interval=0.3, what="%d healthy copysets" % NCOPYSETS)
    ids = {"%s:%d" % (c["host"], c["port"]): c["id"]
           for c in h.ok(h.tool(a, "list-topology"))["chunkservers"]}
    peers = [addr for (_, addr, _) in cs.values()]
    streams = [Stream(procs, peers, i, tmp_dir) for i in range(1, NCOPYSETS + 1)]
    wait_until(lambda: all(s.acked() >= 20 for s in streams), 60, interval=0.2,
               what="every write stream acknowledged")
    # no false alarm on a healthy, busy cluster
    assert metric(m.admin_port, "mds_slow_chunkservers") == 0
    assert slow_views(a, m.admin_port) == ([], [], 0, 0, 0, [])

    # the victim: the chunkserver leading the most copysets (at least one)
    wait_until(lambda: sum(leaders(a).values()) == NCOPYSETS, 30, interval=0.3,
               what="every copyset with a leader")
    ld = leaders(a)
    vid = max(sorted(ld), key=lambda k: ld[k])
    victim_addr = [addr for addr, i in ids.items() if i == vid][0]
    vname = [s for s, (_, addr, _) in cs.items() if addr == victim_addr][0]
    vadmin = cs[vname][2]
    print("\nleaders %s; slow disk on chunkserver %d (%s)" % (ld, vid, victim_addr))
    vhost = victim_addr.split(":")[0]
    http(vadmin, "/failpoint?name=chunkstore.write&action=delay(50)", method="POST", host=vhost)
    t0 = time.monotonic()

    m.proc.wait_for_line(r"chunkserver %d marked SLOW" % vid, timeout=60, stream="stderr")
    t_mark = time.monotonic() - t0
    wait_until(lambda: leaders(a).get(vid, 0) == 0, 60, interval=0.2,
               what="no copyset led by the slow chunkserver")
    t_gone = time.monotonic() - t0
    print("marked slow after %.1f s, leaders gone after %.1f s" % (t_mark, t_gone))
    assert metric(m.admin_port, "mds_slow_chunkservers") == 1
    views = slow_views(a, m.admin_port)
    print("slow in the CLI and /status: %s" % (views,))
    assert views == ([vid], [vid], 1, 1, 1, [vid])
    # Kept off: several leader-balance rounds with the victim online and still slow.
    balance_lines = len([x for x in m.proc.stderr_lines if "scheduler leader_balance" in x])
    rounds_seen = 0
    deadline = time.monotonic() + 60
    while rounds_seen < BALANCE_ROUNDS and time.monotonic() < deadline:
        assert leaders(a).get(vid, 0) == 0, leaders(a)
        st = {c["id"]: c["state"] for c in h.ok(h.tool(a, "list-topology"))["chunkservers"]}
        if st[vid] == "online":
            rounds_seen += 1
        time.sleep(0.5)  # pacing of the poll (one balance interval), not a synchronisation
    assert rounds_seen >= BALANCE_ROUNDS, "victim never online long enough"
    print("leaders stayed off for %d balance rounds (%d leader-balance runs created operators)" % (
        rounds_seen, len([x for x in m.proc.stderr_lines if "scheduler leader_balance" in x])
        - balance_lines))
    # IO keeps completing on every copyset
    before = [s.acked() for s in streams]
    wait_until(lambda: all(s.acked() >= b + 20 for s, b in zip(streams, before)), 60,
               interval=0.2, what="every write stream progressing with the slow chunkserver")

    # Healed: unmarked after the hold time.
    http(vadmin, "/failpoint?clear=1", method="POST", host=vhost)
    t1 = time.monotonic()
    m.proc.wait_for_line(r"chunkserver %d no longer slow" % vid, timeout=120, stream="stderr")
    print("unmarked %.1f s after the heal" % (time.monotonic() - t1))
    assert metric(m.admin_port, "mds_slow_chunkservers") == 0
    assert slow_views(a, m.admin_port) == ([], [], 0, 0, 0, [])
    for s in streams:
        s.acked()  # a run that failed (exit code != 0) fails the test here
    assert not re.search(r"marked SLOW", "\n".join(
        x for x in m.proc.stderr_lines if "chunkserver %d " % vid not in x)), \
        "a healthy chunkserver was marked slow"
