"""Process-level test of the admin HTTP server: start curve-admin-demo, scrape /metrics and check
it with `promtool check metrics`, check /status and /health, then stop the process by PID."""
import json
import os
import select
import shutil
import signal
import socket
import subprocess
import time
import urllib.error
import urllib.request

import pytest

BUILD_DIR = os.environ.get("CURVE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build/release"))
DEMO = os.path.join(BUILD_DIR, "tests", "unit", "metrics", "curve-admin-demo")
START_TIMEOUT_S = 10  # bound for the demo to print its port
STOP_TIMEOUT_S = 10   # bound for the demo to exit after SIGTERM
HTTP_TIMEOUT_S = 5    # bound of every HTTP request


def http(port, path, method="GET", data=None):
    req = urllib.request.Request(f"http://127.0.0.1:{port}{path}", method=method, data=data)
    try:
        with urllib.request.urlopen(req, timeout=HTTP_TIMEOUT_S) as r:
            return r.status, r.headers, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


@pytest.fixture
def demo():
    assert os.access(DEMO, os.X_OK), f"{DEMO} not built"
    proc = subprocess.Popen([DEMO, "--host=127.0.0.1", "--port=0"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        ready, _, _ = select.select([proc.stdout], [], [], START_TIMEOUT_S)
        assert ready, "curve-admin-demo did not print its port in time"
        line = proc.stdout.readline().strip()
        assert line.isdigit(), f"unexpected first line {line!r}"
        yield proc, int(line)
    finally:
        if proc.poll() is None:
            os.kill(proc.pid, signal.SIGTERM)
            try:
                proc.wait(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                os.kill(proc.pid, signal.SIGKILL)
                proc.wait(timeout=STOP_TIMEOUT_S)
        proc.stdout.close()
        proc.stderr.close()


def wait_for(cond, timeout_s, what):
    deadline = time.monotonic() + timeout_s
    while True:
        v = cond()
        if v:
            return v
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)  # polling interval of a bounded wait, not synchronisation by sleep


def test_metrics_pass_promtool(demo):
    _, port = demo
    promtool = shutil.which("promtool")
    if promtool is None:
        pytest.skip("promtool (Debian package prometheus) not installed")
    status, headers, body = http(port, "/metrics")
    assert status == 200
    assert headers["Content-Type"].startswith("text/plain; version=0.0.4")
    for family, kind in [("curve_demo_requests_total", "counter"),
                         ("curve_demo_request_latency_seconds", "summary"),
                         ("curve_demo_request_latency_seconds_max", "gauge"),
                         ("curve_demo_inflight", "gauge"),
                         ("curve_demo_run_seconds", "gauge"),
                         ("curve_demo_bytes_per_second", "gauge"),
                         ("process_cpu_seconds_total", "counter"),
                         ("process_resident_memory_bytes", "gauge"),
                         ("process_start_time_seconds", "gauge")]:
        assert f"# TYPE {family} {kind}\n" in body
    assert 'curve_demo_requests_total{copyset="4294967297",op="write"}' in body
    assert 'quantile="0.999"' in body
    assert 'curve_demo_disk_used_bytes{path="/data/disk \\"0\\"\\\\x\\nnext \u00e9"}' in body
    chk = subprocess.run([promtool, "check", "metrics"], input=body, capture_output=True,
                         text=True, timeout=30)
    assert chk.returncode == 0, f"promtool: {chk.stdout}{chk.stderr}\n---\n{body}"
    assert chk.stdout.strip() == "" and chk.stderr.strip() == "", chk.stdout + chk.stderr


def test_metrics_are_live(demo):
    _, port = demo

    def requests_total():
        _, _, body = http(port, "/metrics")
        for line in body.splitlines():
            if line.startswith('curve_demo_requests_total{copyset="4294967297"'):
                return int(line.rsplit(" ", 1)[1])
        raise AssertionError("counter missing")

    first = requests_total()
    assert first >= 10
    wait_for(lambda: requests_total() > first, 10, "the demo counter to grow")


def test_status_and_health(demo):
    proc, port = demo
    status, headers, body = http(port, "/status")
    assert status == 200
    assert headers["Content-Type"].startswith("application/json")
    st = json.loads(body)
    assert st["role"] == "admin-demo"
    assert st["pid"] == proc.pid
    assert isinstance(st["uptime_s"], int) and st["uptime_s"] >= 0
    assert st["version"]
    assert st["demo_ticks"] >= 1
    lat = st["metrics"]["curve_demo_request_latency_seconds"]
    assert len(lat) == 2
    assert {m["labels"]["copyset"] for m in lat} == {"4294967297", "4294967298"}
    assert all(m["count"] >= 20 for m in lat)

    status, _, body = http(port, "/health")
    assert (status, body) == (200, "OK\n")
    assert http(port, "/nope")[0] == 404
    assert http(port, "/metrics", method="POST", data=b"x")[0] == 405
    status, _, body = http(port, "/echo?msg=hi")
    assert (status, body) == (200, "hi")


RAW_TIMEOUT_S = 2  # bound of one raw exchange (some bad requests leave the server waiting)


def raw_exchange(port, data):
    """Sends raw bytes, returns what comes back until the server closes or RAW_TIMEOUT_S."""
    with socket.create_connection(("127.0.0.1", port), timeout=RAW_TIMEOUT_S) as s:
        try:
            s.sendall(data)
            s.shutdown(socket.SHUT_WR)
        except OSError:  # the server may answer and close before reading everything
            pass
        out = b""
        try:
            while True:
                chunk = s.recv(65536)
                if not chunk:
                    break
                out += chunk
        except OSError:  # reset, or the bounded timeout
            pass
        return out


def test_bad_requests_do_not_crash(demo):
    proc, port = demo
    close = b"Host: x\r\nConnection: close\r\n"
    bad = [  # (request, expected status line prefix or None when the server may just close)
        (b"\x00\xff garbage \r\n\r\n", None),
        (b"GET /metrics HTTP/9.9\r\n\r\n", b"HTTP/1.1 505"),
        (b"GET /status?metrics=%zz&%%%=1 HTTP/1.1\r\n" + close + b"\r\n", b"HTTP/1.1 200"),
        (b"GET /%00/../../etc/passwd HTTP/1.1\r\n" + close + b"\r\n", b"HTTP/1.1 404"),
        (b"GET /metrics HTTP/1.1\r\n" + close + b"X-Big: " + b"a" * 200000 + b"\r\n\r\n",
         b"HTTP/1.1 431"),
        (b"POST /echo HTTP/1.1\r\n" + close + b"Content-Length: 1000000\r\n\r\nshort", None),
        (b"POST /echo HTTP/1.1\r\n" + close + b"Content-Length: -5\r\n\r\n", b"HTTP/1.1 400"),
        (b"POST /echo HTTP/1.1\r\n" + close + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n",
         b"HTTP/1.1 400"),
        (b"POST /failpoint HTTP/1.1\r\n" + close + b"Content-Length: 8\r\n\r\na=b\x00;c=d",
         b"HTTP/1.1 400"),
        (b"POST /failpoint?name=&action= HTTP/1.1\r\n" + close + b"Content-Length: 0\r\n\r\n",
         b"HTTP/1.1 400"),
        (b"POST /echo HTTP/1.1\r\n" + close + b"Content-Length: 70000\r\n\r\n" + b"x" * 70000,
         b"HTTP/1.1 413"),
    ]
    for data, want in bad:
        out = raw_exchange(port, data)
        assert proc.poll() is None, f"demo died on {data[:60]!r}"
        if want is not None:
            assert out.startswith(want), f"{data[:60]!r} -> {out[:80]!r}"
    # The failpoint requests were refused and changed nothing.
    status, _, body = http(port, "/failpoint")
    assert status == 200 and json.loads(body) == {"failpoints": {}}
    assert http(port, "/health")[:3:2] == (200, "OK\n")


def test_sigterm_stops_cleanly(demo):
    proc, port = demo
    os.kill(proc.pid, signal.SIGTERM)
    assert proc.wait(timeout=STOP_TIMEOUT_S) == 0
