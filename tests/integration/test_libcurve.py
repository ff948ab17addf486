"""libcurve end to end: etcd + curve-mds + 3 curve-chunkservers (registered with the MDS, which
places and creates the copysets), driven through libcurve.so by curve-io-check.

The chunkservers listen on 127.0.0.1, 127.0.0.2 and 127.0.0.3: the MDS identifies servers by
host (one host per server) and needs 3 servers in 3 zones for 3-replica copysets.
"""
import json
import os

import pytest

from curvetest import binary, free_port, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_mds import CHUNK, SEG, MdsCluster, ok, tool

START_TIMEOUT_S = 30
IO_TIMEOUT_S = 180
COPYSETS = 6

TOPO = {
    "physical_pools": [{"name": "pp1"}],
    "zones": [{"name": "z%d" % z, "physical_pool": "pp1"} for z in (1, 2, 3)],
    "servers": [{"name": "s%d" % i, "zone": "z%d" % i, "host": "127.0.0.%d" % i}
                for i in (1, 2, 3)],
    "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                       "copysets": COPYSETS}],
}


def start_chunkserver(procs, root, i, mds, extra=()):
    d = os.path.join(root, "cs%d" % i)
    for _ in range(5):  # the port is picked up front (the Raft id derives from it): retry
        port = free_port()
        p = procs.start([binary("curve-chunkserver"), "--data-dir=" + d,
                         "--ip=127.0.0.%d" % i, "--port=%d" % port, "--mds-addrs=" + mds,
                         "--chunk-size=%d" % CHUNK, "--pool.target-files=24",
                         "--pool.reserve-bytes=0", "--pool.min-ready=4",
                         "--raft.election-timeout=500ms", "--raft.heartbeat=50ms",
                         "--heartbeat.interval=500ms"] + list(extra), name="cs%d" % i)
        try:
            p.wait_for_line(r"^listening 127\.0\.0\.%d:(\d+) admin (\d+)$" % i,
                            timeout=START_TIMEOUT_S)
            return p
        except RuntimeError:
            if any("in use" in line for line in p.stderr_lines):
                continue
            raise
    raise RuntimeError("cs%d: no free port" % i)


class Bs(str):
    """The MDS addresses "leader,standby" (a str), plus `.mds` (the two Mds objects) and `.cs`
    (the chunkserver processes)."""


@pytest.fixture
def bs(procs, tmp_dir):
    """A running block cluster: a serving MDS, a standby MDS (on a port chosen up front, so
    clients and chunkservers can list it before it serves) and 3 chunkservers."""
    yield from block_cluster(procs, tmp_dir)


def block_cluster(procs, tmp_dir, cs_extra=()):  # noqa: F811
    """The body of the `bs` fixture (a generator); cs_extra: more chunkserver options."""
    c = MdsCluster(procs)
    try:
        m1 = c.start_mds()
        a1 = m1.wait_leader(20)
        a2 = "127.0.0.1:%d" % free_port()
        m2 = c.start_mds(extra=("--port=" + a2.split(":")[1],))
        addrs = a1 + "," + a2
        topo = os.path.join(tmp_dir, "topo.json")
        with open(topo, "w") as f:
            json.dump(TOPO, f)
        ok(tool(a1, "apply-topology", topo))
        cs = [start_chunkserver(procs, tmp_dir, i, addrs, cs_extra) for i in (1, 2, 3)]
        wait_until(lambda: ok(tool(a1, "status"))["healthy_copysets"] == COPYSETS, 60,
                   interval=0.2, what="%d healthy copysets" % COPYSETS)
        b = Bs(addrs)
        b.mds = [m1, m2]
        b.cs = cs
        yield b
    finally:
        procs.stop_all(kill=True)
        c.close()


def io_check(procs, mds, *args):
    p = procs.start([binary("curve-io-check"), "-m", mds,
                     "-o", "client.retry.total_deadline_ms=60s",
                     "-o", "client.session.expire_ms=20s"] + [str(a) for a in args],
                    name="io-check")
    rc = p.wait(timeout=IO_TIMEOUT_S)
    assert rc == 0, p.describe()
    return p


def test_libcurve_io_and_fencing(bs, procs):
    io_check(procs, bs, "create", "/v1", SEG)
    io_check(procs, bs, "verify", "/v1", 7)
    # The data written by the first run is still there for a second client process.
    st = ok(tool(bs.split(",")[0], "stat", "/v1"))
    assert st["size"] == SEG
    io_check(procs, bs, "create", "/v2", SEG)
    p = io_check(procs, bs, "fence", "/v2")
    assert any("fencing ok" in line for line in p.stdout_lines), p.describe()


def test_libcurve_errors(bs, procs):
    # Opening a missing volume fails cleanly (exit 1, not a crash).
    p = procs.start([binary("curve-io-check"), "-m", bs, "verify", "/missing", 1],
                    name="io-missing")
    assert p.wait(timeout=60) == 1, p.describe()
    assert any("CURVE_ERR_NOT_FOUND" in line or "not found" in line.lower()
               for line in p.stderr_lines), p.describe()


def test_libcurve_survives_chunkserver_kill(bs, procs):
    """IO keeps going (and stays correct) while a chunkserver is SIGKILLed: the client follows
    the new leaders (GetLeader / redirects) of the copysets the dead one led."""
    io_check(procs, bs, "create", "/v3", SEG)
    p = procs.start([binary("curve-io-check"), "-m", bs, "-o", "client.retry.total_deadline_ms=60s",
                     "stress", "/v3", 3, 25], name="stress")
    p.wait_for_line(r"^ops 100$", timeout=60)
    bs.cs[0].kill()
    done = p.count_lines(r"^ops ")
    # progress after the kill, then a clean end of the run
    p.wait_for_line(r"^ops ", timeout=60, count=done + 2)
    assert p.wait(timeout=IO_TIMEOUT_S) == 0, p.describe()
    assert any(line.startswith("stress done") for line in p.stdout_lines), p.describe()


def test_libcurve_follows_mds_failover(bs, procs):
    """The serving MDS is SIGKILLed: libcurve rotates to the standby once it took over (the
    first address refuses connections, the standby refuses until it is elected)."""
    io_check(procs, bs, "create", "/v4", SEG)
    bs.mds[0].proc.kill()
    p = procs.start([binary("curve-io-check"), "-m", bs,
                     "-o", "client.retry.total_deadline_ms=60s",
                     "-o", "client.mds.call_deadline_ms=60s", "verify", "/v4", 11],
                    name="io-failover")
    assert p.wait(timeout=IO_TIMEOUT_S) == 0, p.describe()
    bs.mds[1].wait_leader(1)  # the standby is the one that served
