"""The `curve` CLI against a real local cluster started by `curve cluster up` (etcd, 3 curve-mds,
3 curve-chunkserver on loopback), and its usage errors / exit codes without a cluster.

Exit codes (docs/cli.md): 0 ok, 1 failed, 2 usage, 3 not found, 4 cluster unavailable.
"""

import json
import os
import shutil
import signal
import socket
import subprocess
import time

import pytest

from curvetest import binary, build_dir, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)

CLI_TIMEOUT = 60    # seconds one CLI command may take
UP_WAIT = "90s"     # bound given to `curve cluster up --wait`


def curve(*args, timeout=CLI_TIMEOUT, env=None):
    full_env = dict(os.environ)
    full_env.pop("CURVE_MDS_ADDRS", None)
    full_env.pop("CURVE_CONF", None)
    if env:
        full_env.update(env)
    p = subprocess.run([binary("curve")] + [str(a) for a in args], stdout=subprocess.PIPE,
                       stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout,
                       env=full_env)
    return p.returncode, p.stdout.decode(), p.stderr.decode()


def ok(*args):
    rc, out, err = curve(*args)
    assert rc == 0, (args, rc, out, err)
    return out


def jok(*args):
    return json.loads(ok(*(list(args) + ["--format=json"])))


def crc32c(data):
    crc = 0xFFFFFFFF
    for b in data:
        crc ^= b
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def write_state(path, obj):
    """Writes a cluster.json record the way `curve cluster up` does (crc32c over the compact,
    key-sorted serialization of the record without its crc32c member)."""
    obj = dict(obj)
    obj.pop("crc32c", None)
    canon = json.dumps(obj, separators=(",", ":"), sort_keys=True, ensure_ascii=False)
    obj["crc32c"] = crc32c(canon.encode())
    with open(path, "w") as f:
        json.dump(obj, f)


def have(name):
    try:
        binary(name)
        return True
    except FileNotFoundError:
        return False


# ---- without a cluster ----------------------------------------------------------------------

@pytest.mark.parametrize("args,msg", [
    ([], "usage: curve"),
    (["bs"], "needs a command"),
    (["bs", "create", "volume", "/v"], "--size is required"),
    (["bs", "create", "volume", "v", "--size=1g", "--mds-addrs=127.0.0.1:1"], "absolute"),
    (["bs", "list", "nothing"], "unknown object"),
    (["bs", "status", "--format=xml"], "--format=xml"),
    (["bs", "copyset", "status", "1", "x", "--mds-addrs=127.0.0.1:1"], "copyset id 'x'"),
    (["bs", "status"], "no MDS address"),
    (["bs", "status", "--mds-addrs=127.0.0.1"], "expected ip:port"),
])
def test_usage_errors_exit_2(args, msg):
    rc, out, err = curve(*args)
    assert rc == 2, (args, rc, out, err)
    assert msg in err, err
    assert "usage" in err, err


def test_unavailable_exit_4(tmp_dir):  # noqa: F811
    import socket
    s = socket.socket()
    s.bind(("127.0.0.1", 0))  # bound, never listening: connections are refused
    port = s.getsockname()[1]
    try:
        rc, out, err = curve("bs", "status", "--mds-addrs=127.0.0.1:%d" % port,
                             "--timeout=200ms", "--format=json")
    finally:
        s.close()
    assert rc == 4, (rc, out, err)
    j = json.loads(out)
    assert j["ok"] is False and j["exit"] == 4 and j["error"] == "CURVE_ERR_RPC_CONN", j
    assert "127.0.0.1:%d" % port in j["message"]


def test_conf_file_errors(tmp_dir):  # noqa: F811
    conf = os.path.join(tmp_dir, "c.conf")
    with open(conf, "w") as f:
        f.write("client.owner=x\n")
    rc, _, err = curve("bs", "status", "--conf=" + conf)
    assert rc == 1 and "no mds.addrs" in err, err
    rc, _, err = curve("bs", "status", "--conf=" + os.path.join(tmp_dir, "missing.conf"))
    assert rc == 1 and "cannot read conf" in err, err


def test_cluster_down_without_cluster(tmp_dir):  # noqa: F811
    rc, _, err = curve("cluster", "down", "--dir=" + tmp_dir)
    assert rc == 3 and "no cluster recorded" in err, err
    state = os.path.join(tmp_dir, "cluster.json")
    with open(state, "w") as f:
        f.write("{\"procs\": 5}")
    rc, _, err = curve("cluster", "down", "--dir=" + tmp_dir)
    assert rc == 1 and "malformed" in err, err
    rec = {"version": 1, "dir": tmp_dir, "etcd": "", "mds_addrs": "127.0.0.1:1",
           "procs": [{"name": "mds1", "pid": 2, "port": 1, "log": "x", "argv": ["/x"]}]}
    write_state(state, rec)
    with open(state) as f:
        good = json.load(f)
    good["procs"][0]["pid"] = 3  # edited after the crc was computed
    with open(state, "w") as f:
        json.dump(good, f)
    rc, _, err = curve("cluster", "down", "--dir=" + tmp_dir)
    assert rc == 1 and "crc32c mismatch" in err, err
    rec["procs"][0]["pid"] = 1 << 40  # out of range, with a valid crc
    write_state(state, rec)
    rc, _, err = curve("cluster", "status", "--dir=" + tmp_dir)
    assert rc == 1 and "procs[0] malformed" in err, err


# ---- with a cluster -------------------------------------------------------------------------

need_daemons = pytest.mark.skipif(
    not (have("curve-mds") and have("curve-chunkserver") and shutil.which("etcd")),
    reason="curve-mds, curve-chunkserver or etcd not available")


def recorded_pids(d):
    try:
        with open(os.path.join(d, "cluster.json")) as f:
            return [(p["pid"], p["argv"]) for p in json.load(f)["procs"]]
    except (OSError, ValueError, KeyError):
        return []


def alive_as(pid, argv):
    try:
        with open("/proc/%d/cmdline" % pid, "rb") as f:
            return f.read() == ("\0".join(argv) + "\0").encode()
    except OSError:
        return False


@pytest.fixture
def cluster(tmp_dir):  # noqa: F811
    d = os.path.join(tmp_dir, "cluster")
    rc, out, err = curve("cluster", "up", "--dir=" + d, "--wait=" + UP_WAIT, "--format=json",
                         timeout=180)
    try:
        assert rc == 0, (rc, out, err, logs(d))
        info = json.loads(out)
        yield {"dir": d, "conf": info["conf"], "addrs": info["mds_addrs"]}
    finally:
        curve("cluster", "down", "--dir=" + d, timeout=120)
        # safety net: anything recorded that still runs as recorded is killed by PID
        for pid, argv in recorded_pids(d):
            if alive_as(pid, argv):
                os.kill(pid, signal.SIGKILL)


def logs(d):
    out = []
    ld = os.path.join(d, "logs")
    for n in sorted(os.listdir(ld)) if os.path.isdir(ld) else []:
        with open(os.path.join(ld, n), errors="replace") as f:
            out.append("--- %s\n%s" % (n, "".join(f.readlines()[-15:])))
    return "\n".join(out)


@need_daemons
def test_cluster_lifecycle_and_bs_commands(cluster):
    d, conf = cluster["dir"], "--conf=" + cluster["conf"]
    st = jok("bs", "status", conf)
    assert st["healthy"] is True, st
    assert st["chunkservers"]["online"] == 3 and st["copysets"]["total"] > 0, st
    assert st["mds_leader"] in cluster["addrs"].split(",")
    assert st["space"]["capacity"] > 0
    table = ok("bs", "status", conf)
    assert "HEALTHY" in table and "3 online" in table

    # cluster status: every recorded process runs as recorded
    cs = jok("cluster", "status", "--dir=" + d)
    assert [p["name"] for p in cs["procs"]] == ["etcd", "mds1", "mds2", "mds3", "cs1", "cs2",
                                                "cs3"]
    assert all(p["state"] == "running" for p in cs["procs"]), cs
    # a second `up` on a running cluster is refused
    rc, _, err = curve("cluster", "up", "--dir=" + d)
    assert rc == 1 and "still running" in err

    # topology listings
    assert len(jok("bs", "list", "chunkserver", conf)) == 3
    assert sorted(z["name"] for z in jok("bs", "list", "zone", conf)) == ["z1", "z2", "z3"]
    assert len(jok("bs", "list", "server", conf)) == 3
    pools = jok("bs", "list", "pool", conf)
    assert pools["logical_pools"][0]["replicas"] == 3
    copysets = jok("bs", "list", "copyset", conf)
    assert len(copysets) == st["copysets"]["total"]
    c0 = copysets[0]
    one = jok("bs", "copyset", "status", c0["logical_pool_id"], c0["copyset_id"], conf)
    assert sorted(one["peers"]) == sorted(c0["peers"]) and len(one["peers"]) == 3
    rc, _, err = curve("bs", "copyset", "status", 1, 99999, conf)
    assert rc == 3, err
    assert len(jok("bs", "list", "copyset", "--pool=1", conf)) == len(copysets)

    # volumes and directories; the env var works like --mds-addrs
    env = {"CURVE_MDS_ADDRS": cluster["addrs"]}
    assert jok("bs", "mkdir", "/d", conf)["type"] == "directory"
    v = jok("bs", "create", "volume", "/d/v", "--size=128m", conf)
    assert v["size"] == 128 << 20 and v["type"] == "volume" and v["path"] == "/d/v"
    rc, _, err = curve("bs", "create", "volume", "/d/v", "--size=128m", conf)
    assert rc == 1 and "exists" in err, err
    rc, _, err = curve("bs", "create", "volume", "/d/w", "--size=100m", conf)
    assert rc == 1 and "CURVE_ERR_BAD_SIZE" in err, err
    rc, _, err = curve("bs", "create", "volume", "/nodir/v", "--size=64m", conf)
    assert rc == 3, err
    rc, out, err = curve("bs", "list", "volume", "/d", "--format=json", env=env)
    assert rc == 0 and [e["name"] for e in json.loads(out)] == ["v"], (out, err)
    assert jok("bs", "extend", "volume", "/d/v", "--size=256m", conf)["size"] == 256 << 20
    ok("bs", "rename", "volume", "/d/v", "/d/v2", conf)
    rc, _, err = curve("bs", "stat", "volume", "/d/v", conf)
    assert rc == 3 and "CURVE_ERR_NOT_FOUND" in err
    assert jok("bs", "stat", "volume", "/d/v2", conf)["size"] == 256 << 20
    rc, _, err = curve("bs", "rmdir", "/d", conf)
    assert rc == 1, err  # not empty
    dl = jok("bs", "delete", "volume", "/d/v2", conf)
    assert dl["purged"] is False
    rb = jok("bs", "list", "volume", "/RecycleBin", conf)
    assert [e["original_name"] for e in rb] == ["v2"]
    assert jok("bs", "recover", "volume", "/d/v2", conf)["name"] == "v2"
    assert jok("bs", "stat", "volume", "/d/v2", conf)["size"] == 256 << 20
    assert jok("bs", "delete", "volume", "/d/v2", "--force", conf)["purged"] is True
    rc, _, err = curve("bs", "recover", "volume", "/d/v2", conf)
    assert rc == 3, err
    ok("bs", "rmdir", "/d", conf)
    rc, _, _ = curve("bs", "stat", "volume", "/d", conf)
    assert rc == 3
    jok("bs", "create", "volume", "/keep", "--size=64m", conf)  # kept over a restart (below)

    # apply: idempotent for the same description; errors name the field
    assert jok("cluster", "apply", os.path.join(d, "topology.json"), conf)["added"] == 0
    bad = os.path.join(d, "bad-topology.json")
    with open(bad, "w") as f:
        json.dump({"zones": [{"name": "z9", "physical_pool": "nope"}]}, f)
    rc, _, err = curve("cluster", "apply", bad, conf)
    assert rc == 1 and "nope" in err, err

    # the leader MDS dies: the CLI finds the new leader among --mds-addrs
    procs_by_name = {p["name"]: p for p in jok("cluster", "status", "--dir=" + d)["procs"]}
    leader = st["mds_leader"]
    victim = [p for p in procs_by_name.values() if p["name"].startswith("mds") and
              "127.0.0.1:%d" % p["port"] == leader]
    assert len(victim) == 1, (leader, procs_by_name)
    os.kill(victim[0]["pid"], signal.SIGKILL)

    def new_leader():
        rc, out, _ = curve("bs", "status", conf, "--format=json", "--timeout=500ms")
        return rc == 0 and json.loads(out)["mds_leader"] != leader and json.loads(out)
    st2 = wait_until(new_leader, 60, interval=0.2, what="a new MDS leader")
    assert st2["chunkservers"]["total"] == 3
    assert "d" not in [e["name"] for e in jok("bs", "list", "volume", "/", conf)]

    # down stops exactly the recorded processes (the killed MDS is reported not running)
    pids = recorded_pids(d)
    assert len(pids) == 7
    assert sum(alive_as(p, a) for p, a in pids) == 6
    out = jok("cluster", "down", "--dir=" + d)
    results = {r["name"]: r["result"] for r in out}
    assert results.pop(victim[0]["name"]) == "not running"
    assert sorted(results.values()) == ["stopped"] * 6, out
    assert not any(alive_as(p, a) for p, a in pids)
    rc, _, _ = curve("bs", "status", conf, "--timeout=300ms")
    assert rc == 4

    # `up` on the stopped cluster starts the same cluster again: every daemon gets its recorded
    # port back (the chunkservers are registered at theirs), the namespace is kept
    ports = {p["name"]: p["port"] for p in procs_by_name.values()}
    rc, out, err = curve("cluster", "up", "--dir=" + d, "--wait=" + UP_WAIT, "--format=json",
                         timeout=180)
    assert rc == 0, (rc, out, err, logs(d))
    assert json.loads(out)["mds_addrs"] == cluster["addrs"]
    again = {p["name"]: p["port"] for p in jok("cluster", "status", "--dir=" + d)["procs"]}
    assert again == ports, (again, ports)
    listed = sorted("%s:%s" % (c["host"], c["port"]) for c in jok("bs", "list", "chunkserver", conf))
    assert listed == sorted("127.0.0.%s:%d" % (n[2:], ports[n]) for n in ("cs1", "cs2", "cs3"))
    st3 = wait_until(lambda: (lambda s: s if s["healthy"] and
                              s["chunkservers"]["online"] == 3 else None)(
        jok("bs", "status", conf)), 60, interval=0.3, what="the restarted cluster healthy")
    assert st3["copysets"]["total"] == st["copysets"]["total"]
    assert jok("bs", "stat", "volume", "/keep", conf)["size"] == 64 << 20
    # a recorded port taken by someone else: `up` refuses and names it
    assert [r["result"] for r in jok("cluster", "down", "--dir=" + d)] == ["stopped"] * 7
    blocker = socket.socket()
    blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    blocker.bind(("127.0.0.2", ports["cs2"]))
    blocker.listen(1)
    try:
        rc, _, err = curve("cluster", "up", "--dir=" + d, "--wait=" + UP_WAIT)
        assert rc == 1 and "127.0.0.2:%d" % ports["cs2"] in err and "in use" in err, err
        rc, out, _ = curve("cluster", "status", "--dir=" + d, "--format=json")
        assert rc == 4 and not any(p["state"] == "running" for p in json.loads(out)["procs"])
    finally:
        blocker.close()
    # cluster.json lost (e.g. rewritten by an `up` that failed half-way): D/ports still has
    # every port; with neither, `up` refuses instead of starting unregistrable chunkservers
    os.rename(os.path.join(d, "cluster.json"), os.path.join(d, "cluster.json.bak"))
    os.rename(os.path.join(d, "ports"), os.path.join(d, "ports.bak"))
    rc, _, err = curve("cluster", "up", "--dir=" + d, "--wait=" + UP_WAIT)
    assert rc == 1 and "ports are not recorded" in err, err
    os.rename(os.path.join(d, "ports.bak"), os.path.join(d, "ports"))
    rc, out, err = curve("cluster", "up", "--dir=" + d, "--wait=" + UP_WAIT, "--format=json",
                         timeout=180)
    assert rc == 0, (rc, out, err, logs(d))
    again = {p["name"]: p["port"] for p in jok("cluster", "status", "--dir=" + d)["procs"]}
    assert again == ports, (again, ports)
    assert jok("bs", "stat", "volume", "/keep", conf)["size"] == 64 << 20


@need_daemons
def test_down_spares_reused_pids(procs, tmp_dir):  # noqa: F811
    # A recorded PID now running another program (PID reuse) is never signalled.
    other = procs.start(["sleep", "300"], name="other")
    d = os.path.join(tmp_dir, "fake")
    os.makedirs(d)
    write_state(os.path.join(d, "cluster.json"),
                {"version": 1, "dir": d, "etcd": "", "mds_addrs": "127.0.0.1:1",
                 "procs": [{"name": "mds1", "pid": other.pid, "port": 1, "log": "x",
                            "argv": ["/usr/bin/curve-mds", "--port=1"]}]})
    out = jok("cluster", "down", "--dir=" + d)
    assert out == [{"name": "mds1", "pid": other.pid, "result": "not running"}]
    assert other.running()
