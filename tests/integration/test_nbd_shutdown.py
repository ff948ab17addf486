"""Stopping an NBD export whose cluster does not answer.

libcurve retries IO without bound (a block device hangs rather than failing writes), and nbdkit
waits on SIGTERM for the requests in progress. Before the plugin's shutdown watcher
(src/nbd/curve_nbdkit.c) an export of a dead cluster could not be stopped except by SIGKILL.

Real processes: a block cluster (etcd, 2 MDS, 3 chunkservers, test_libcurve.block_cluster), the
real nbdkit-curve-plugin.so under nbdkit, qemu-io as the NBD client. The chunkservers are
SIGKILLed while a write is being retried; libcurve says so on nbdkit's stderr ("slow" after
client.retry.slow_threshold_ms), then nbdkit gets SIGTERM and must exit by itself.
"""
import os
import shutil
import signal
import time

import pytest

from curvetest import procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_libcurve import SEG, block_cluster, io_check
from test_nbd_cluster import plugin_path

START_TIMEOUT_S = 60
CLIENT_TIMEOUT_S = 120
GRACE_MS = 500
# SIGTERM -> exit: the grace, then a call in flight (if any) runs into its timeout: chunk RPCs
# at most client.retry.max_rpc_timeout_ms (2 s here), MDS calls client.mds.call_deadline_ms
# (3 s here); an aborted volume skips the session Close. Without the watcher nbdkit never
# exits. (That back-off sleeps are cut short is checked by test_abort_io in
# client_test_libcurve, where the write sleeps 8 s.)
EXIT_BOUND_S = 8

for tool in ("nbdkit", "qemu-io"):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed" % tool, allow_module_level=True)


@pytest.fixture
def bs(procs, tmp_dir):  # noqa: F811
    yield from block_cluster(procs, tmp_dir)


def start_export(procs, tmp_dir, bs, vol):  # noqa: F811
    sock = os.path.join(tmp_dir, "nbd.sock")
    pidfile = os.path.join(tmp_dir, "nbd.pid")
    nbd = procs.start(["nbdkit", "-f", "--unix", sock, "--pidfile", pidfile, plugin_path(),
                       "volume=" + vol, "mds.addrs=" + bs, "shutdown_grace_ms=%d" % GRACE_MS,
                       "client.retry.slow_threshold_ms=300ms",
                       "client.retry.max_rpc_timeout_ms=2s",
                       "client.mds.call_deadline_ms=3s"], name="nbdkit")

    def ready():
        if not nbd.running():
            raise RuntimeError("nbdkit exited\n" + nbd.describe())
        return os.path.exists(pidfile)
    wait_until(ready, START_TIMEOUT_S, what="nbdkit pidfile")
    return nbd, "nbd+unix:///?socket=" + sock


def test_sigterm_stops_an_export_of_a_dead_cluster(bs, procs, tmp_dir):  # noqa: F811
    io_check(procs, bs, "create", "/dead", SEG)
    nbd, uri = start_export(procs, tmp_dir, bs, "/dead")
    # the export works while the cluster is up
    ok = procs.start(["qemu-io", "-f", "raw", "-c", "write -P 0x5a 0 64k",
                      "-c", "read -P 0x5a 0 64k", uri], name="qemu-io-ok")
    assert ok.wait(timeout=CLIENT_TIMEOUT_S) == 0, ok.describe()
    assert not any("Pattern verification failed" in line for line in ok.stdout_lines), \
        ok.describe()
    for cs in bs.cs:
        cs.kill()
    writer = procs.start(["qemu-io", "-f", "raw", "-c", "write -P 0x6b 0 64k", uri],
                         name="qemu-io-stuck")
    # libcurve reports the write as slow: it is retrying inside nbdkit
    nbd.wait_for_line(r"slow \(retrying for", CLIENT_TIMEOUT_S, stream="stderr")
    assert writer.running(), writer.describe()
    t0 = time.monotonic()
    nbd.signal(signal.SIGTERM)
    rc = nbd.wait(timeout=EXIT_BOUND_S)
    took = time.monotonic() - t0
    assert rc == 0, nbd.describe()
    assert took >= GRACE_MS / 1000.0, took
    assert nbd.count_lines(r"aborting them", stream="stderr") == 1, nbd.describe()
    assert nbd.count_lines(r"IO aborted by the application", stream="stderr") == 1, \
        nbd.describe()
    writer.wait(timeout=CLIENT_TIMEOUT_S)
    out = "\n".join(writer.stdout_lines + writer.stderr_lines)
    assert writer.returncode != 0 or "failed" in out.lower(), writer.describe()
    print("nbdkit exited %.1f s after SIGTERM (grace %d ms)" % (took, GRACE_MS))
