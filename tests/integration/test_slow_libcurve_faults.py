"""libcurve under chunkserver faults that cost time (RPC timeouts): a chunkserver paused with
SIGSTOP while IO runs. The client's RPCs to it time out (1 s, DESIGN §4), it re-resolves the
leaders through the other peers (GetLeader), and the IO continues correctly; after SIGCONT the
run ends cleanly. Cluster helpers: test_libcurve.py."""
import signal

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_libcurve import IO_TIMEOUT_S, SEG, bs, io_check  # noqa: F401 (bs is a fixture)


def test_libcurve_survives_chunkserver_pause(bs, procs):
    io_check(procs, bs, "create", "/p1", SEG)
    p = procs.start([binary("curve-io-check"), "-m", bs,
                     "-o", "client.retry.total_deadline_ms=60s",
                     "-o", "client.session.expire_ms=60s", "stress", "/p1", 5, 30],
                    name="stress")
    p.wait_for_line(r"^ops 100$", timeout=60)
    victim = bs.cs[1]
    victim.signal(signal.SIGSTOP)
    try:
        done = p.count_lines(r"^ops ")
        # progress while the chunkserver is paused: its copysets elected other leaders
        p.wait_for_line(r"^ops ", timeout=60, count=done + 2)
    finally:
        victim.signal(signal.SIGCONT)
    assert p.wait(timeout=IO_TIMEOUT_S) == 0, p.describe()
    assert any(line.startswith("stress done") for line in p.stdout_lines), p.describe()
