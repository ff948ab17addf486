"""End to end: nbdkit-curve-plugin.so (the real plugin over libcurve) on a local cluster started
by `curve cluster up` (etcd, 3 MDS, 3 chunkservers), driven by real NBD clients: nbdinfo,
nbdcopy (64 MiB of random data in and back out), qemu-img, qemu-io (trim/zero/unaligned),
fio with verify=crc32c, and block status (nbdinfo --map: unallocated segments are holes).
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess

import pytest

from curvetest import binary, build_dir, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)

VOL_SIZE = 128 << 20  # two 64 MiB segments of the local cluster
COPY_SIZE = 64 << 20
CLIENT_TIMEOUT = 180
START_TIMEOUT = 60

for tool in ("nbdkit", "nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "fio", "etcd"):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed" % tool, allow_module_level=True)
for name in ("curve", "curve-mds", "curve-chunkserver"):
    try:
        binary(name)
    except FileNotFoundError:
        pytest.skip("%s not built" % name, allow_module_level=True)


def plugin_path():
    for dirpath, dirnames, filenames in os.walk(build_dir()):
        dirnames[:] = [d for d in dirnames if d != "CMakeFiles"]
        if "nbdkit-curve-plugin.so" in filenames:
            return os.path.join(dirpath, "nbdkit-curve-plugin.so")
    pytest.skip("nbdkit-curve-plugin.so not built (libcurve missing?)")


def run(args, timeout=CLIENT_TIMEOUT, check=True):
    p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (rc=%d)\nstdout:\n%s\nstderr:\n%s" % (
            " ".join(map(str, args)), p.returncode, p.stdout.decode(errors="replace")[-3000:],
            p.stderr.decode(errors="replace")[-3000:]))
    return p


def curve(*args, check=True):
    return run([binary("curve")] + list(args), check=check)


def sha256(path, length=None):
    h = hashlib.sha256()
    left = length
    with open(path, "rb") as f:
        while left is None or left > 0:
            b = f.read(1 << 20 if left is None else min(1 << 20, left))
            if not b:
                break
            h.update(b)
            if left is not None:
                left -= len(b)
    return h.hexdigest()


def recorded(d):
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


@pytest.fixture(scope="module")
def cluster():
    import tempfile
    d = tempfile.mkdtemp(prefix="curve-nbd-cluster-")
    try:
        p = curve("cluster", "up", "--dir=" + d, "--wait=90s", "--format=json", check=False)
        assert p.returncode == 0, p.stderr.decode()
        conf = json.loads(p.stdout)["conf"]
        yield {"dir": d, "conf": conf}
    finally:
        curve("cluster", "down", "--dir=" + d, check=False)
        for pid, argv in recorded(d):
            if alive_as(pid, argv):
                os.kill(pid, signal.SIGKILL)
        shutil.rmtree(d, ignore_errors=True)


def start_nbdkit(procs, tmp_dir, conf, vol, name="nbdkit", extra=()):  # noqa: F811
    sock = os.path.join(tmp_dir, name + ".sock")
    pidfile = os.path.join(tmp_dir, name + ".pid")
    p = procs.start(["nbdkit", "-f", "--unix", sock, "--pidfile", pidfile, plugin_path(),
                     "volume=" + vol, "conf=" + conf] + list(extra), name=name)

    def ready():
        if not p.running():
            raise RuntimeError("nbdkit exited\n" + p.describe())
        return os.path.exists(pidfile)
    wait_until(ready, START_TIMEOUT, what="nbdkit pidfile")
    return {"uri": "nbd+unix:///?socket=" + sock, "vol": vol, "proc": p, "conf": conf}


@pytest.fixture
def export(cluster, procs, tmp_dir, request):  # noqa: F811
    vol = "/" + request.node.name.replace("[", "_").replace("]", "")[:60]
    curve("bs", "create", "volume", vol, "--size=%d" % VOL_SIZE, "--conf=" + cluster["conf"])
    return start_nbdkit(procs, tmp_dir, cluster["conf"], vol)


def test_nbdinfo_and_nbdcopy_roundtrip(export, tmp_dir):  # noqa: F811
    info = json.loads(run(["nbdinfo", "--json", export["uri"]]).stdout)["exports"][0]
    assert info["export-size"] == VOL_SIZE
    for flag in ("can_flush", "can_trim", "can_zero", "can_fua", "can_multi_conn"):
        assert info[flag] is True, flag
    src = os.path.join(tmp_dir, "src.bin")
    back = os.path.join(tmp_dir, "back.bin")
    with open(src, "wb") as f:
        for _ in range(COPY_SIZE >> 20):
            f.write(os.urandom(1 << 20))
    run(["nbdcopy", "--flush", "--connections=4", src, export["uri"]])
    run(["nbdcopy", "--connections=4", export["uri"], back])
    assert sha256(back, COPY_SIZE) == sha256(src)
    with open(back, "rb") as f:
        f.seek(COPY_SIZE)
        assert f.read() == bytes(VOL_SIZE - COPY_SIZE)  # never written: zeros
    st = json.loads(curve("bs", "stat", "volume", export["vol"], "--conf=" + export["conf"],
                          "--format=json").stdout)
    assert st["size"] == VOL_SIZE


def test_qemu_img_and_qemu_io(export, tmp_dir):  # noqa: F811
    src = os.path.join(tmp_dir, "q.raw")
    back = os.path.join(tmp_dir, "q.back")
    with open(src, "wb") as f:
        f.write(os.urandom(VOL_SIZE // 4))
        f.truncate(VOL_SIZE)
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, export["uri"]])
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", export["uri"], back])
    assert sha256(back) == sha256(src)
    out = run(["qemu-io", "-f", "raw", "-c", "write -P 0xab 0 1M", "-c", "discard 64k 128k",
               "-c", "write -z 512k 64k", "-c", "write -P 0x5 1000 3000",
               "-c", "read -P 0 64k 128k", "-c", "read -P 0 512k 64k",
               "-c", "read -P 0x5 1000 3000", "-c", "read -P 0xab 0 1000",
               "-c", "read -P 0xab 4000 61536", "-c", "read -P 0xab 576k 448k",
               export["uri"]]).stdout.decode()
    assert "fail" not in out.lower(), out


def test_fio_verify(export, tmp_dir):  # noqa: F811
    out = os.path.join(tmp_dir, "fio.json")
    run(["fio", "--name=curve", "--ioengine=nbd", "--uri=" + export["uri"], "--rw=randwrite",
         "--bsrange=4k-256k", "--size=32m", "--iodepth=16", "--verify=crc32c", "--do_verify=1",
         "--verify_fatal=1", "--output=" + out, "--output-format=json"])
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    assert job["error"] == 0, job
    assert job["write"]["io_bytes"] >= 32 << 20 and job["read"]["io_bytes"] >= 32 << 20


def block_map(uri):
    """nbdinfo --map as [(offset, length, type names)]."""
    out = json.loads(run(["nbdinfo", "--map", "--json", uri]).stdout)
    return [(e["offset"], e["length"], e["description"]) for e in out]


def test_extents_map_unallocated_segments_as_holes(export):  # noqa: F811
    """A fresh volume is one hole; a write into the second 64 MiB segment makes exactly that
    segment data (the MDS allocates segments on first write); a read of the first does not."""
    seg = 64 << 20
    info = json.loads(run(["nbdinfo", "--json", export["uri"]]).stdout)["exports"][0]
    assert "base:allocation" in info["contexts"], info
    assert block_map(export["uri"]) == [(0, VOL_SIZE, "hole,zero")]
    run(["qemu-io", "-f", "raw", "-c", "read -P 0 4k 64k", "-c",
         "write -P 0xab %d 4k" % (seg + 12345 * 4096), export["uri"]])
    assert block_map(export["uri"]) == [(0, seg, "hole,zero"), (seg, seg, "data")]
    # qemu-img map sees the same through NBD block status
    m = json.loads(run(["qemu-img", "map", "--output=json", "-f", "raw", export["uri"]]).stdout)
    data = [(e["start"], e["length"]) for e in m if e["data"]]
    assert data == [(seg, seg)], m


def fence_scenario(export, procs, tmp_dir, offset):  # noqa: F811
    """export writes at 0; an exclusive export then opens the volume and writes at `offset`;
    returns what the first export's qemu-io says when it writes at `offset` again."""
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x1 0 64k", export["uri"]])
    ex = start_nbdkit(procs, tmp_dir, export["conf"], export["vol"], name="excl",
                      extra=["exclusive=true"])
    run(["qemu-io", "-f", "raw", "-c", "read -P 0x1 0 64k", "-c", "write -P 0x2 %d 64k" % offset,
         ex["uri"]])
    p = run(["qemu-io", "-f", "raw", "-c", "write -P 0x3 %d 64k" % offset, export["uri"]],
            check=False)
    after = run(["qemu-io", "-f", "raw", "-c", "read -P 0x2 %d 64k" % offset, ex["uri"]])
    return (p.stdout + p.stderr).decode(), after.stdout.decode()


def test_exclusive_open_fences_the_first_export(export, procs, tmp_dir):  # noqa: F811
    # The first export never touched the second segment: its write there is refused with
    # EPERM (fenced: the MDS reports a newer epoch) and does not land.
    out, after = fence_scenario(export, procs, tmp_dir, VOL_SIZE // 2)
    assert "Operation not permitted" in out, out
    assert "fail" not in after.lower(), after


def test_exclusive_open_fences_cached_writer(export, procs, tmp_dir):  # noqa: F811
    # The first export's segment is cached and it writes at epoch 0 (a new volume): the
    # chunkserver, having seen the exclusive writer's epoch 1, refuses it (EPOCH_TOO_OLD).
    out, after = fence_scenario(export, procs, tmp_dir, 0)
    assert "Operation not permitted" in out, out
    assert "fail" not in after.lower(), after
