"""Process-level tests of the RPC framework: curve-echo-server and curve-echo-client (and raw
sockets) in separate processes on 127.0.0.1."""

import os
import random
import re
import signal
import socket
import struct
import time

import pytest

from curvetest import binary, procs, tmp_dir, wait_until  # noqa: F401 (pytest fixtures)

START_TIMEOUT_S = 15
CALL_TIMEOUT_S = 120


def start_server(procs, *extra, debug=False, name="srv"):
    env = {"CURVE_LOG_LEVEL": "debug"} if debug else None
    srv = procs.start([binary("curve-echo-server"), "--listen=127.0.0.1:0"] + list(extra),
                      name=name, env=env)
    m = srv.wait_for_line(r"^listening (127\.0\.0\.1:\d+)$", timeout=START_TIMEOUT_S)
    return srv, m.group(1)


def run_client(procs, addr, *args, name="cli", timeout=CALL_TIMEOUT_S):
    cli = procs.start([binary("curve-echo-client"), "--addr=" + addr] + list(args), name=name)
    rc = cli.wait(timeout=timeout)
    return cli, rc


def summary(cli):
    m = cli.wait_for_line(r"^done ok=(\d+) failed=(\d+) verified=(\d+)", timeout=1)
    return int(m.group(1)), int(m.group(2)), int(m.group(3))


def test_echo_basic(procs):
    srv, addr = start_server(procs)
    cli, rc = run_client(procs, addr, "--calls=50", "--inflight=4", "--attach=1048576")
    assert rc == 0, cli.describe()
    assert summary(cli) == (50, 0, 50)
    # The client really checks contents: a wrong expectation makes it fail.
    cli, rc = run_client(procs, addr, "--calls=3", "--expect=timeout", name="cli-neg")
    assert rc == 1, cli.describe()
    assert srv.stop() == 0
    assert srv.count_lines(r"^stopped$") == 1


def test_64_clients_64_in_flight(procs):
    """64 connections (16 client processes x 4 channels), 64 calls in flight on each, with
    attachments from 0 B to 4 MiB; every reply is checked byte by byte by the client."""
    srv, addr = start_server(procs, "--threads=2")
    clients = []
    for i in range(16):
        clients.append(procs.start(
            [binary("curve-echo-client"), "--addr=" + addr, "--channels=4", "--inflight=64",
             "--calls=80", "--attach-mixed=4194304", "--worker-every=5", "--seed=%d" % (i + 1),
             "--timeout-ms=60000"], name="cli%d" % i))
    for c in clients:
        assert c.wait(timeout=CALL_TIMEOUT_S) == 0, c.describe()
        assert summary(c) == (320, 0, 320)
    assert srv.running()


def test_timeouts(procs):
    srv, addr = start_server(procs)
    t0 = time.monotonic()
    cli, rc = run_client(procs, addr, "--calls=8", "--inflight=8", "--delay-ms=3000",
                         "--timeout-ms=200", "--expect=timeout")
    elapsed = time.monotonic() - t0
    assert rc == 0, cli.describe()
    assert summary(cli) == (0, 8, 0)
    assert cli.count_lines(r"^error CURVE_ERR_TIMEOUT count=8 example=.*timed out after 200 ms")
    assert elapsed < 2.5, "timeouts took %.1f s" % elapsed
    # The server is fine afterwards.
    cli, rc = run_client(procs, addr, "--calls=10", "--attach=4096", name="cli2")
    assert rc == 0, cli.describe()


def test_server_killed_mid_call(procs):
    """SIGKILL the server while 32 calls wait inside it: every call fails at once with
    CURVE_ERR_RPC_CONN (not after its 60 s timeout)."""
    srv, addr = start_server(procs, debug=True)
    cli = procs.start([binary("curve-echo-client"), "--addr=" + addr, "--calls=32",
                       "--inflight=32", "--delay-ms=30000", "--timeout-ms=60000",
                       "--attach=65536", "--expect=conn"], name="cli")
    # All 32 requests are inside the server's handlers.
    srv.wait_for_line(r"echo: call \d+ from .* replying in 30000 ms", timeout=START_TIMEOUT_S,
                      stream="stderr", count=32)
    t0 = time.monotonic()
    srv.kill()
    rc = cli.wait(timeout=CALL_TIMEOUT_S)
    elapsed = time.monotonic() - t0
    assert rc == 0, cli.describe()
    assert summary(cli) == (0, 32, 0)
    assert cli.count_lines(r"^error CURVE_ERR_RPC_CONN count=32 example=.*connection lost")
    assert elapsed < 10, "pending calls took %.1f s to fail" % elapsed


def test_graceful_shutdown_finishes_in_flight(procs):
    """SIGTERM while calls are inside handlers: the server lets them finish (grace), then
    exits 0; the client sees every call succeed."""
    srv, addr = start_server(procs, "--grace-ms=10000", debug=True)
    cli = procs.start([binary("curve-echo-client"), "--addr=" + addr, "--calls=16",
                       "--inflight=16", "--delay-ms=1000", "--attach=1000"], name="cli")
    srv.wait_for_line(r"replying in 1000 ms", timeout=START_TIMEOUT_S, stream="stderr",
                      count=16)
    srv.signal(signal.SIGTERM)
    assert cli.wait(timeout=CALL_TIMEOUT_S) == 0, cli.describe()
    assert summary(cli) == (16, 0, 16)
    assert srv.wait(timeout=START_TIMEOUT_S) == 0, srv.describe()
    assert srv.count_lines(r"^stopped$") == 1
    # New connections are refused once it is gone.
    cli, rc = run_client(procs, addr, "--calls=2", "--expect=conn", name="cli-after")
    assert rc == 0, cli.describe()


def _hdr(corr, body_len=0, attach_len=0, typ=1, crc_ok=True):
    """A 48-byte frame header (docs/rpc.md). The crc is left wrong on purpose when
    crc_ok=False; with crc_ok=True it is computed (crc32c, Castagnoli)."""
    b = struct.pack("<4sBBHQIIiIIII", b"CRVR", 1, typ, 0, corr, 1, 1, 0, body_len,
                    attach_len, 0, 0)
    crc = _crc32c(b) if crc_ok else 0x12345678
    return b + struct.pack("<I", crc)


def _crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def _wait_closed(sock, timeout):
    """True if the server closed `sock` within `timeout` seconds."""
    sock.settimeout(timeout)
    try:
        while True:
            data = sock.recv(65536)
            if not data:
                return True
    except ConnectionResetError:
        return True
    except socket.timeout:
        return False


def test_garbage_and_half_open_connections(procs):
    seed = int(os.environ.get("CURVE_TEST_SEED", random.randrange(1 << 30)))
    print("seed", seed)
    rng = random.Random(seed)
    srv, addr = start_server(procs)
    host, port = addr.split(":")
    port = int(port)

    def conn():
        return socket.create_connection((host, port), timeout=START_TIMEOUT_S)

    # Half-open / idle connections: a partial header, a header promising a body that never
    # comes, and a silent connection. They stay open while others are served.
    idle = [conn() for _ in range(3)]
    idle[0].sendall(_hdr(1)[:20])
    idle[1].sendall(_hdr(2, body_len=1000))
    # Random bytes, a bad crc, an oversized length, a response frame, and connect+close.
    bad = []
    for i in range(8):
        s = conn()
        # At least a whole header: fewer bytes are a partial frame, which the server rightly
        # keeps until frame_timeout_ms (30 s), longer than we wait here (seed 37 drew 1 byte).
        s.sendall(bytes(rng.getrandbits(8) for _ in range(rng.randrange(48, 5000))))
        bad.append(s)
    s = conn()
    s.sendall(_hdr(3, crc_ok=False))
    bad.append(s)
    s = conn()
    s.sendall(_hdr(4, body_len=1 << 30))
    bad.append(s)
    s = conn()
    s.sendall(_hdr(5, typ=2))
    bad.append(s)
    for _ in range(20):
        conn().close()
    for s in bad:
        assert _wait_closed(s, START_TIMEOUT_S), "server kept a malformed connection open"
        s.close()
    assert srv.running()
    # The server logged why it closed them. (Its stderr is read by another thread: wait for
    # each line, as a socket seen closed does not mean the reader has the line yet.)
    wait_until(lambda: srv.count_lines(r"closing connection with .*(bad magic|crc)",
                                       stream="stderr") >= 1, START_TIMEOUT_S, what="log")
    wait_until(lambda: srv.count_lines(r"closing connection with .*over the limit",
                                       stream="stderr") >= 1, START_TIMEOUT_S,
               what="log of the oversized frame")
    # ... and still answers everybody else.
    cli, rc = run_client(procs, addr, "--calls=100", "--inflight=8", "--attach-mixed=1048576")
    assert rc == 0, cli.describe()
    for s in idle:
        assert not _wait_closed(s, 0.05), "idle connection closed"
        s.close()
    assert srv.stop() == 0


def test_failpoint_delays_replies(procs):
    """CURVE_FAILPOINTS delays replies in the server without blocking its loop: the first 4
    replies are held 1.5 s (their calls time out at 0.4 s), later calls are answered at once."""
    srv = procs.start([binary("curve-echo-server"), "--listen=127.0.0.1:0", "--threads=1"],
                      name="srv", env={"CURVE_FAILPOINTS": "rpc.server.reply_delay=4*return(1500)"})
    addr = srv.wait_for_line(r"^listening (127\.0\.0\.1:\d+)$", timeout=START_TIMEOUT_S).group(1)
    cli, rc = run_client(procs, addr, "--calls=4", "--inflight=4", "--timeout-ms=400",
                         "--expect=timeout")
    assert rc == 0, cli.describe()
    t0 = time.monotonic()
    cli, rc = run_client(procs, addr, "--calls=20", "--inflight=4", "--timeout-ms=5000",
                         name="cli2")
    assert rc == 0, cli.describe()
    assert time.monotonic() - t0 < 1.4, "replies were still delayed"
