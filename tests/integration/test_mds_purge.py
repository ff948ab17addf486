"""Purge end to end: etcd + curve-mds + 3 curve-chunkservers, data written through libcurve
(curve-io-check), so segments exist in etcd and chunk files on the chunkservers.

  1. a volume deleted into /RecycleBin and recovered keeps its segments and chunk files;
  2. a volume deleted and purged loses its chunks on every chunkserver (chunk files gone from
     the data dirs, GetChunkInfo on the copyset leader answers CHUNK_NOTEXIST), its segment keys
     in etcd and its record; a volume that was not purged is untouched.
"""
import json
import os
import re
import shutil
import subprocess

import pytest

from curvetest import binary, free_port, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_mds import CHUNK, SEG, MdsCluster, err, ok, tool
from test_libcurve import COPYSETS, TOPO, io_check

PURGE_TIMEOUT_S = 60


def have(name):
    try:
        binary(name)
        return True
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not (have("curve-mds") and have("curve-chunkserver") and have("curve-io-check") and
         have("curve-chunk-tool") and shutil.which("etcd")),
    reason="curve-mds, curve-chunkserver, curve-io-check, curve-chunk-tool or etcd missing")

POOL_FILES = 40  # chunk files pre-allocated per chunkserver: room for both volumes (2 x 16)


def start_chunkserver(procs, root, i, mds):
    d = os.path.join(root, "cs%d" % i)
    for _ in range(5):  # the port is picked up front (the Raft id derives from it): retry
        port = free_port()
        p = procs.start([binary("curve-chunkserver"), "--data-dir=" + d,
                         "--ip=127.0.0.%d" % i, "--port=%d" % port, "--mds-addrs=" + mds,
                         "--chunk-size=%d" % CHUNK, "--pool.target-files=%d" % POOL_FILES,
                         "--pool.reserve-bytes=0", "--pool.min-ready=4",
                         "--raft.election-timeout=500ms", "--raft.heartbeat=50ms",
                         "--heartbeat.interval=500ms"], name="cs%d" % i)
        try:
            p.wait_for_line(r"^listening 127\.0\.0\.%d:(\d+) admin (\d+)$" % i, timeout=30)
            return p
        except RuntimeError:
            if any("in use" in line for line in p.stderr_lines):
                continue
            raise
    raise RuntimeError("cs%d: no free port" % i)


CHUNK_FILE = re.compile(r"^chunk_(\d+)$")


def chunk_files(root):
    """{chunk_id: [paths]} of every chunk file under the chunkserver data dirs in root."""
    out = {}
    for i in (1, 2, 3):
        for dirpath, _, files in os.walk(os.path.join(root, "cs%d" % i)):
            for f in files:
                m = CHUNK_FILE.match(f)
                if m:
                    out.setdefault(int(m.group(1)), []).append(os.path.join(dirpath, f))
    return out


def segments(a, path, size):
    """The allocated segments of a volume: [{"offset":.., "chunks":[{chunk_id, copyset_id}]}]."""
    out = []
    for off in range(0, size, SEG):
        r = tool(a, "get-segment", path, off)
        if r["ok"]:
            out.append(r["result"])
        else:
            assert r["error"] == "CURVE_ERR_NOT_FOUND", r
    return out


def chunk_info(a, pool, copyset, chunk):
    """GetChunkInfo on the copyset leader (as the MDS knows it): the parsed JSON answer."""
    cs = wait_until(lambda: ok(tool(a, "get-copyset", pool, copyset)).get("leader_addr"), 20,
                    interval=0.2, what="a leader for copyset %d" % copyset)
    addr = cs.rsplit(":", 1)[0]  # "ip:port:0"
    out = subprocess.run([binary("curve-chunk-tool"), "--addr=" + addr, "info",
                          "--pool=%d" % pool, "--copyset=%d" % copyset, "--chunk=%d" % chunk],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=20)
    assert out.returncode == 0, out
    return json.loads(out.stdout.decode().splitlines()[-1])


def chunk_map(segs):
    return [(s["offset"], s["logical_pool_id"], s["chunks"]) for s in segs]


@pytest.fixture
def cl(procs, tmp_dir):
    c = MdsCluster(procs)
    try:
        m = c.start_mds()
        a = m.wait_leader(20)
        topo = os.path.join(tmp_dir, "topo.json")
        with open(topo, "w") as f:
            json.dump(TOPO, f)
        ok(tool(a, "apply-topology", topo))
        c.cs = [start_chunkserver(procs, tmp_dir, i, a) for i in (1, 2, 3)]
        wait_until(lambda: ok(tool(a, "status"))["healthy_copysets"] == COPYSETS, 60,
                   interval=0.2, what="%d healthy copysets" % COPYSETS)
        c.a = a
        c.root = tmp_dir
        yield c
    finally:
        procs.stop_all(kill=True)
        c.close()


def written(cl, path):
    """Writes data into path through libcurve; returns (file id, segments, chunk ids)."""
    io_check(cl.procs, cl.a, "create", path, SEG)
    io_check(cl.procs, cl.a, "verify", path, 7)
    fid = ok(tool(cl.a, "stat", path))["id"]
    segs = segments(cl.a, path, SEG)
    assert segs, "no segment allocated for %s" % path
    ids = {c["chunk_id"] for s in segs for c in s["chunks"]}
    return fid, segs, ids


def seg_keys(cl, fid):
    return cl.etcd.get_prefix("/curve/v1/seg/%d/" % fid)


def test_purge_removes_chunks_and_segments(cl):
    a = cl.a
    # Two volumes with data; each has segment keys and chunk files on all 3 chunkservers.
    keep_id, keep_segs, keep_chunks = written(cl, "/keep")
    gone_id, gone_segs, gone_chunks = written(cl, "/gone")
    assert not keep_chunks & gone_chunks
    files = chunk_files(cl.root)
    on_disk = {c for c in gone_chunks if len(files.get(c, [])) == 3}
    assert on_disk, "no chunk of /gone has its 3 replica files: %r" % sorted(files)
    assert seg_keys(cl, gone_id) and seg_keys(cl, keep_id)
    print("\n/gone: %d segment(s), %d chunks, %d with 3 replica files" % (
        len(gone_segs), len(gone_chunks), len(on_disk)))
    info = chunk_info(a, gone_segs[0]["logical_pool_id"], gone_segs[0]["chunks"][0]["copyset_id"],
                      gone_segs[0]["chunks"][0]["chunk_id"])
    assert "NOTEXIST" not in json.dumps(info), info
    print("before purge: %s" % json.dumps(info))

    # 1. Delete and recover: segments and chunk files are kept.
    ok(tool(a, "delete", "/keep"))
    err(tool(a, "stat", "/keep"), "CURVE_ERR_NOT_FOUND")
    r = ok(tool(a, "recover", "/RecycleBin/keep-%d" % keep_id))
    assert r["name"] == "keep" and r["id"] == keep_id
    assert chunk_map(segments(a, "/keep", SEG)) == chunk_map(keep_segs)
    files = chunk_files(cl.root)
    kept = {c for c in keep_chunks if len(files.get(c, [])) == 3}
    assert kept, "chunk files of /keep lost by delete + recover"

    # 2. Delete and purge: the chunks go away on every replica, then segments and record.
    ok(tool(a, "delete", "/gone"))
    name = "/RecycleBin/gone-%d" % gone_id
    assert ok(tool(a, "stat", name))["id"] == gone_id
    ok(tool(a, "purge", name))
    wait_until(lambda: not tool(a, "stat", name)["ok"], PURGE_TIMEOUT_S, interval=0.2,
               what="purge of %s" % name)
    err(tool(a, "stat", name), "CURVE_ERR_NOT_FOUND")
    assert seg_keys(cl, gone_id) == []
    assert cl.etcd.get_prefix("/curve/v1/seg/%d/" % gone_id) == []
    # Followers apply the delete through Raft a little after the leader acknowledged it.
    wait_until(lambda: not (set(chunk_files(cl.root)) & gone_chunks), 20, interval=0.2,
               what="chunk files of /gone removed on every chunkserver")
    for s in gone_segs:
        c = s["chunks"][0]
        info = chunk_info(a, s["logical_pool_id"], c["copyset_id"], c["chunk_id"])
        assert "NOTEXIST" in json.dumps(info), info
        print("chunk %d after purge: %s" % (c["chunk_id"], json.dumps(info)))
    st = ok(tool(a, "status"))
    assert st.get("pending_purge", 0) == 0, st

    # The other volume is untouched and still readable/writable through libcurve.
    assert chunk_map(segments(a, "/keep", SEG)) == chunk_map(keep_segs)
    files = chunk_files(cl.root)
    assert {c for c in keep_chunks if len(files.get(c, [])) == 3} == kept
    io_check(cl.procs, a, "verify", "/keep", 9)


def test_delete_checks_are_part_of_the_txn(procs):
    """Delete's "no open session" / "directory is empty" checks hold inside the etcd txn: a
    session key the MDS has never seen (written behind its back, as a racing Open's would be)
    makes the delete fail with BUSY instead of moving an open volume to the recycle bin."""
    import base64

    def b64(s):
        return base64.b64encode(s.encode()).decode()
    c = MdsCluster(procs)
    try:
        a = c.start_mds().wait_leader(20)
        ok(tool(a, "mkdir", "/d"))
        fid = ok(tool(a, "create", "/d/v", SEG))["id"]
        skey = "/curve/v1/session/%d/racer" % fid
        c.etcd.call(0, "/v3/kv/put", {"key": b64(skey), "value": b64("x")})
        err(tool(a, "delete", "/d/v"), "CURVE_ERR_BUSY")
        assert ok(tool(a, "stat", "/d/v"))["id"] == fid
        assert ok(tool(a, "ls", "/RecycleBin"))["entries"] == []
        c.etcd.call(0, "/v3/kv/deleterange", {"key": b64(skey)})
        ok(tool(a, "delete", "/d/v"))
        # An entry that appears in the directory: the delete fails, the directory stays.
        did = ok(tool(a, "stat", "/d"))["id"]
        ekey = "/curve/v1/ns/%d/racer" % did
        c.etcd.call(0, "/v3/kv/put", {"key": b64(ekey), "value": b64("x")})
        err(tool(a, "delete", "/d"), "CURVE_ERR_NOT_EMPTY")
        c.etcd.call(0, "/v3/kv/deleterange", {"key": b64(ekey)})
        ok(tool(a, "delete", "/d"))
        err(tool(a, "stat", "/d"), "CURVE_ERR_NOT_FOUND")
    finally:
        procs.stop_all(kill=True)
        c.close()
