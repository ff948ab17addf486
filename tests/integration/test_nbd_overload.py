"""NBD under chunkserver overload: the real plugin (nbdkit-curve-plugin.so over libcurve) on a
block cluster whose 3 chunkservers run with a tiny in-flight limit (--max-inflight=2), so that
they refuse most of fio's concurrent requests with OVERLOAD. libcurve must retry them under the
retry policy (DESIGN §4: back off, resend) without the NBD client ever seeing an error, and the
data must be intact: fio writes with verify=crc32c and reads everything back.

The test fails if the chunkservers refused nothing (their curve_chunkserver_overload_total
counters, scraped from the admin ports, must have grown), so it cannot pass without the
overload path being exercised. Cluster helpers: test_libcurve.py."""
import json
import os
import shutil
import urllib.request

import pytest

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_libcurve import SEG, block_cluster, io_check
from test_nbd_cluster import plugin_path

START_TIMEOUT_S = 60
FIO_TIMEOUT_S = 600
CS_MAX_INFLIGHT = 2

for tool in ("nbdkit", "fio"):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed" % tool, allow_module_level=True)


@pytest.fixture
def tight_bs(procs, tmp_dir):  # noqa: F811
    """A block cluster whose chunkservers accept at most CS_MAX_INFLIGHT requests at once."""
    yield from block_cluster(procs, tmp_dir, cs_extra=("--max-inflight=%d" % CS_MAX_INFLIGHT,))


def overloads(bs):
    """Sum of curve_chunkserver_overload_total over the chunkservers (admin /metrics)."""
    total = 0
    for cs in bs.cs:
        m = cs.wait_for_line(r"^listening (127\.0\.0\.\d+):\d+ admin (\d+)$", timeout=1)
        url = "http://%s:%s/metrics" % (m.group(1), m.group(2))
        with urllib.request.urlopen(url, timeout=10) as r:
            for line in r.read().decode().splitlines():
                if line.startswith("curve_chunkserver_overload_total"):
                    total += int(float(line.split()[-1]))
    return total


def test_fio_verify_through_overload(tight_bs, procs, tmp_dir):  # noqa: F811
    io_check(procs, tight_bs, "create", "/ov", SEG)
    sock = os.path.join(tmp_dir, "nbd.sock")
    pidfile = os.path.join(tmp_dir, "nbd.pid")
    nbd = procs.start(["nbdkit", "-f", "--unix", sock, "--pidfile", pidfile, "--threads=32",
                       plugin_path(), "volume=/ov", "mds.addrs=" + tight_bs],
                      name="nbdkit")

    def ready():
        if not nbd.running():
            raise RuntimeError("nbdkit exited\n" + nbd.describe())
        return os.path.exists(pidfile)
    wait_until(ready, START_TIMEOUT_S, what="nbdkit pidfile")
    before = overloads(tight_bs)
    out = os.path.join(tmp_dir, "fio.json")
    fio = procs.start(["fio", "--name=overload", "--ioengine=nbd",
                       "--uri=nbd+unix:///?socket=" + sock, "--rw=randwrite",
                       "--bsrange=4k-128k", "--size=16m", "--iodepth=32", "--verify=crc32c",
                       "--do_verify=1", "--verify_fatal=1", "--output=" + out,
                       "--output-format=json"], name="fio")
    rc = fio.wait(timeout=FIO_TIMEOUT_S)
    assert rc == 0, fio.describe() + "\n" + nbd.describe()
    with open(out) as f:
        job = json.load(f)["jobs"][0]
    assert job["error"] == 0, job
    assert job["write"]["io_bytes"] >= 16 << 20 and job["read"]["io_bytes"] >= 16 << 20, job
    refused = overloads(tight_bs) - before
    assert refused > 0, "the chunkservers never answered OVERLOAD: the test proves nothing"
    # nothing reached the NBD client: nbdkit logged no failed request
    assert not [line for line in nbd.stderr_lines if "curve: write" in line or
                "curve: read" in line], nbd.describe()
    print("chunkserver OVERLOAD answers during the run: %d" % refused)
