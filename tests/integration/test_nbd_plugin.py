"""The nbdkit plugin (src/nbd) under real nbdkit and real NBD clients.

libcurve is not wired to a cluster yet, so this runs nbdkit-curvefake-plugin.so: the real plugin
source (curve_nbdkit.c + nbd_io.c) linked against tests/unit/nbd/fake_curve.c, a file-backed
implementation of the curve.h calls the plugin makes (4 KiB alignment enforced, like libcurve).
Clients: nbdinfo, nbdcopy, qemu-img, qemu-io and fio (ioengine=nbd), over a unix socket.
"""

import hashlib
import json
import os
import shutil
import signal
import subprocess
import time

import pytest

from curvetest import build_dir, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)

VOL_SIZE = 128 << 20
COPY_SIZE = 64 << 20
CLIENT_TIMEOUT = 120  # seconds any one client command may take
START_TIMEOUT = 30    # seconds for nbdkit to write its pidfile (= ready to serve)

for tool in ("nbdkit", "nbdinfo", "nbdcopy", "qemu-img", "qemu-io", "fio"):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed (scripts/install-deps.sh)" % tool, allow_module_level=True)


def plugin_path():
    for dirpath, dirnames, filenames in os.walk(build_dir()):
        dirnames[:] = [d for d in dirnames if d != "CMakeFiles"]
        if "nbdkit-curvefake-plugin.so" in filenames:
            return os.path.join(dirpath, "nbdkit-curvefake-plugin.so")
    raise FileNotFoundError("nbdkit-curvefake-plugin.so not under %s (not built?)" % build_dir())


def run(args, timeout=CLIENT_TIMEOUT, check=True):
    p = subprocess.run([str(a) for a in args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=timeout)
    if check and p.returncode != 0:
        raise AssertionError("%s failed (rc=%d)\nstdout:\n%s\nstderr:\n%s" %
                             (" ".join(map(str, args)), p.returncode,
                              p.stdout.decode(errors="replace"), p.stderr.decode(errors="replace")))
    return p


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


def random_file(path, size):
    with open(path, "wb") as f:
        left = size
        while left > 0:
            n = min(left, 1 << 20)
            f.write(os.urandom(n))
            left -= n


class Export:
    def __init__(self, procs, tmp_dir, name="nbd", extra=(), vol=None):  # noqa: F811
        self.vol = vol or os.path.join(tmp_dir, name + ".vol")
        if not os.path.exists(self.vol):
            with open(self.vol, "wb") as f:
                f.truncate(VOL_SIZE)
        self.sock = os.path.join(tmp_dir, name + ".sock")
        self.pidfile = os.path.join(tmp_dir, name + ".pid")
        self.proc = procs.start(["nbdkit", "-f", "--unix", self.sock, "--pidfile", self.pidfile,
                                 plugin_path(), "volume=" + self.vol,
                                 "mds.addrs=127.0.0.1:1"] + list(extra), name=name)
        self.uri = "nbd+unix:///?socket=" + self.sock

    def wait_ready(self):
        def ready():
            if not self.proc.running():
                raise RuntimeError("nbdkit exited\n" + self.proc.describe())
            return os.path.exists(self.pidfile)
        wait_until(ready, START_TIMEOUT, what="nbdkit pidfile " + self.pidfile)
        return self


@pytest.fixture
def export(procs, tmp_dir):  # noqa: F811
    return Export(procs, tmp_dir).wait_ready()


def test_nbdinfo_flags(export):
    info = json.loads(run(["nbdinfo", "--json", export.uri]).stdout)
    exp = info["exports"][0]
    assert exp["export-size"] == VOL_SIZE
    assert info["protocol"] == "newstyle-fixed"
    for flag in ("can_flush", "can_trim", "can_zero", "can_fua", "can_multi_conn",
                 "can_fast_zero"):
        assert exp[flag] is True, (flag, exp)
    assert exp["is_read_only"] is False
    assert exp["block_size_preferred"] == 4096


def test_nbdcopy_roundtrip(export, tmp_dir):  # noqa: F811
    src = os.path.join(tmp_dir, "src.bin")
    back = os.path.join(tmp_dir, "back.bin")
    random_file(src, COPY_SIZE)
    # nbdcopy writes to a destination exactly the size of the source when it is a file, so copy
    # the source into the first 64 MiB of the 128 MiB export, then the whole export back out.
    run(["nbdcopy", "--flush", "--connections=4", src, export.uri])
    run(["nbdcopy", "--connections=4", export.uri, back])
    assert os.path.getsize(back) == VOL_SIZE
    assert sha256(back, COPY_SIZE) == sha256(src)
    # the rest of the volume was never written: zeros
    with open(back, "rb") as f:
        f.seek(COPY_SIZE)
        assert f.read() == bytes(VOL_SIZE - COPY_SIZE)
    # and the bytes really are in the backing store the plugin wrote to
    assert sha256(export.vol, COPY_SIZE) == sha256(src)


def test_qemu_img_convert_both_ways(export, tmp_dir):  # noqa: F811
    src = os.path.join(tmp_dir, "q.raw")
    back = os.path.join(tmp_dir, "q.back")
    random_file(src, VOL_SIZE)
    run(["qemu-img", "convert", "-n", "-f", "raw", "-O", "raw", src, export.uri])
    run(["qemu-img", "convert", "-f", "raw", "-O", "raw", export.uri, back])
    assert sha256(back) == sha256(src)
    cmp = run(["qemu-img", "compare", "-f", "raw", "-F", "raw", src, export.uri], check=False)
    assert cmp.returncode == 0, cmp.stdout + cmp.stderr


def test_fio_verify(export, tmp_dir):  # noqa: F811
    out = os.path.join(tmp_dir, "fio.json")
    run(["fio", "--name=curve", "--ioengine=nbd", "--uri=" + export.uri, "--rw=randwrite",
         "--bsrange=4k-64k", "--size=32m", "--iodepth=16", "--numjobs=1", "--verify=crc32c",
         "--do_verify=1", "--verify_fatal=1", "--output=" + out, "--output-format=json"])
    with open(out) as f:
        res = json.load(f)
    job = res["jobs"][0]
    assert job["error"] == 0, job
    assert job["write"]["io_bytes"] >= 32 << 20, job["write"]
    assert job["read"]["io_bytes"] >= 32 << 20, job["read"]  # the verify pass read it all


def qemu_io(uri, *cmds):
    args = ["qemu-io", "-f", "raw"]
    for c in cmds:
        args += ["-c", c]
    p = run(args + [uri])
    out = p.stdout.decode()
    assert "fail" not in out.lower(), out
    return out


def test_trim_zero_read_back_zeros(export):
    qemu_io(export.uri, "write -P 0xab 0 4M", "read -P 0xab 0 4M")
    # discard (NBD_CMD_TRIM) of aligned blocks, write-zeroes with and without unmap, unaligned
    out = qemu_io(export.uri, "discard 64k 128k", "write -z 1M 256k", "write -z -u 2M 64k",
                  "write -z 3000 1000",
                  "read -P 0 64k 128k", "read -P 0 1M 256k", "read -P 0 2M 64k",
                  "read -P 0 3000 1000",
                  "read -P 0xab 0 3000", "read -P 0xab 4000 61536", "read -P 0xab 192k 832k",
                  "read -P 0xab 1280k 768k", "read -P 0xab 2112k 1984k")
    assert out.count("read ") >= 9, out


def test_unaligned_write_read(export):
    qemu_io(export.uri, "write -P 0x11 0 64k", "write -P 0x22 100 1", "write -P 0x33 4095 4098",
            "read -P 0x11 0 100", "read -P 0x22 100 1", "read -P 0x11 101 3994",
            "read -P 0x33 4095 4098", "read -P 0x11 8193 57343")


def test_extents_map(export):
    """Block status through the plugin: the fake reports 64 MiB units without data in the
    backing file as holes (as unallocated segments of a real volume); REQ_ONE (qemu-img map
    asks for one extent at a time) gives the same map."""
    seg = 64 << 20

    def nbd_map():
        out = json.loads(run(["nbdinfo", "--map", "--json", export.uri]).stdout)
        return [(e["offset"], e["length"], e["description"]) for e in out]
    assert nbd_map() == [(0, VOL_SIZE, "hole,zero")]
    qemu_io(export.uri, "write -P 0x5a %d 4k" % (seg + 8192))
    assert nbd_map() == [(0, seg, "hole,zero"), (seg, seg, "data")]
    m = json.loads(run(["qemu-img", "map", "--output=json", "-f", "raw", export.uri]).stdout)
    assert [(e["start"], e["length"]) for e in m if e["data"]] == [(seg, seg)], m


def test_flush_and_fua(export):
    qemu_io(export.uri, "write -f -P 0x44 0 64k", "flush", "read -P 0x44 0 64k")


def test_readonly(procs, tmp_dir):  # noqa: F811
    ex = Export(procs, tmp_dir, name="ro", extra=["readonly=true"]).wait_ready()
    info = json.loads(run(["nbdinfo", "--json", ex.uri]).stdout)
    assert info["exports"][0]["is_read_only"] is True
    p = run(["qemu-io", "-f", "raw", "-c", "write 0 4k", ex.uri], check=False)
    assert p.returncode != 0 or b"failed" in p.stdout + p.stderr, p


def test_second_writer_refused(procs, tmp_dir, export):  # noqa: F811
    # The volume is open read-write by `export`: a second nbdkit on it fails to open (-EBUSY)
    # and says so (busy_retry_ms=0: at once); with exclusive=true it is allowed (it fences the
    # first one).
    sock = os.path.join(tmp_dir, "second.sock")
    p = procs.start(["nbdkit", "-f", "--unix", sock, plugin_path(), "volume=" + export.vol,
                     "mds.addrs=127.0.0.1:1", "busy_retry_ms=0"], name="second")
    rc = p.wait(timeout=START_TIMEOUT)
    assert rc != 0
    assert any("open" in line and "busy" in line.lower() for line in p.stderr_lines), \
        p.describe()
    assert p.count_lines(r"retry \d+ in", stream="stderr") == 0, p.describe()
    ex = Export(procs, tmp_dir, name="excl", extra=["exclusive=true"],
                vol=export.vol).wait_ready()
    assert json.loads(run(["nbdinfo", "--json", ex.uri]).stdout)["exports"][0]["export-size"] \
        == VOL_SIZE


def test_busy_retried_until_given_up(procs, tmp_dir, export):  # noqa: F811
    # Still held after busy_retry_ms: the open fails, after logging each retry once.
    sock = os.path.join(tmp_dir, "retry.sock")
    p = procs.start(["nbdkit", "-f", "--unix", sock, plugin_path(), "volume=" + export.vol,
                     "mds.addrs=127.0.0.1:1", "busy_retry_ms=1000"], name="retry")
    assert p.wait(timeout=START_TIMEOUT) != 0, p.describe()
    retries = p.count_lines(r"busy \(open read-write elsewhere\); retry \d+ in", stream="stderr")
    assert 2 <= retries <= 4, p.describe()  # 1000 ms / 250 ms pauses, each logged once
    assert p.count_lines(r"still busy after \d+ attempts", stream="stderr") == 1, p.describe()


def test_busy_retried_until_the_writer_is_gone(procs, tmp_dir, export):  # noqa: F811
    # A restarted nbdkit whose previous incarnation still holds the volume (here: `export`,
    # standing in for a crashed writer whose session has not expired) retries the open and
    # serves once the volume is free, instead of exiting with -EBUSY.
    nxt = Export(procs, tmp_dir, name="next", extra=["busy_retry_ms=60000"], vol=export.vol)
    nxt.proc.wait_for_line(r"busy \(open read-write elsewhere\); retry 1 in", START_TIMEOUT,
                           stream="stderr")
    assert nxt.proc.running(), nxt.proc.describe()  # without the retry it exits here
    export.proc.kill()  # a crash: the fake's flock goes with the process
    nxt.wait_ready()
    assert json.loads(run(["nbdinfo", "--json", nxt.uri]).stdout)["exports"][0]["export-size"] \
        == VOL_SIZE
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 4k", "-c", "read -P 0x5a 0 4k", nxt.uri])


def test_sigterm_aborts_requests_that_never_finish(procs, tmp_dir):  # noqa: F811
    # A write that libcurve would retry for ever (the fake blocks it like a cluster that does
    # not answer): without the plugin's shutdown watcher nbdkit waits for it and never exits.
    # With it, SIGTERM makes the request fail (ESHUTDOWN) after shutdown_grace_ms and nbdkit
    # exits cleanly.
    ex = Export(procs, tmp_dir, name="hang",
                extra=["client.fake_hang_writes=true", "shutdown_grace_ms=300"]).wait_ready()
    writer = procs.start(["qemu-io", "-f", "raw", "-c", "write -P 0x11 0 4k", ex.uri],
                         name="writer")
    ex.proc.wait_for_line(r"^fake: write blocked$", CLIENT_TIMEOUT, stream="stderr")
    assert writer.running()
    t0 = time.monotonic()
    ex.proc.signal(signal.SIGTERM)
    rc = ex.proc.wait(timeout=30)
    took = time.monotonic() - t0
    assert rc == 0, ex.proc.describe()
    assert took >= 0.3, took  # the grace was given first
    assert ex.proc.count_lines(r"requests still running 300 ms after the shutdown request",
                               stream="stderr") == 1, ex.proc.describe()
    writer.wait(timeout=CLIENT_TIMEOUT)
    out = "\n".join(writer.stdout_lines + writer.stderr_lines)
    assert "failed" in out.lower() or writer.returncode != 0, writer.describe()


def test_sigterm_with_nothing_pending_does_not_abort(procs, tmp_dir):  # noqa: F811
    # The common case: no request in progress, nbdkit exits at once and nothing is aborted.
    ex = Export(procs, tmp_dir, name="idle", extra=["shutdown_grace_ms=60000"]).wait_ready()
    run(["qemu-io", "-f", "raw", "-c", "write -P 0x22 0 4k", ex.uri])
    ex.proc.signal(signal.SIGTERM)
    assert ex.proc.wait(timeout=30) == 0, ex.proc.describe()
    assert ex.proc.count_lines(r"aborting them", stream="stderr") == 0, ex.proc.describe()


def test_bad_parameters(procs, tmp_dir):  # noqa: F811
    cases = [
        (["mds.addrs=127.0.0.1:1"], "volume=/path parameter is required"),
        (["volume=relative/path", "mds.addrs=x"], "must be an absolute volume path"),
        (["volume=/v", "bogus=1", "mds.addrs=x"], "unknown parameter 'bogus'"),
        (["volume=/v"], "conf=<client.conf> or mds.addrs"),
        (["volume=/v", "exclusive=maybe", "mds.addrs=x"], "maybe"),
        (["volume=/v", "busy_retry_ms=-1", "mds.addrs=x"], "busy_retry_ms"),
        (["volume=/v", "busy_retry_ms=3600001", "mds.addrs=x"], "at most 3600000"),
        (["volume=/v", "shutdown_grace_ms=x", "mds.addrs=x"], "shutdown_grace_ms"),
        (["volume=/v", "shutdown_grace_ms=3600001", "mds.addrs=x"], "at most 3600000"),
        (["volume=" + os.path.join(tmp_dir, "missing.vol"), "mds.addrs=x"], "open"),
    ]
    for i, (params, msg) in enumerate(cases):
        p = procs.start(["nbdkit", "-f", "--unix", os.path.join(tmp_dir, "bad%d.sock" % i),
                         plugin_path()] + params, name="bad%d" % i)
        assert p.wait(timeout=START_TIMEOUT) != 0, p.describe()
        assert any(msg in line for line in p.stderr_lines), (msg, p.describe())
