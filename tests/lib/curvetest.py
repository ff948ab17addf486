"""Shared helpers for Curve-C process-level tests (pytest).

CTest runs every ``tests/integration/test_*.py`` with these environment variables:

* ``CURVE_BUILD_DIR``  - the CMake build directory holding the binaries;
* ``CURVE_SOURCE_DIR`` - the source tree;
* ``PYTHONPATH``       - includes ``tests/lib`` so that ``import curvetest`` works.

Typical use::

    from curvetest import Proc, binary, procs, tmp_dir, wait_until   # noqa: F401 (fixtures)

    def test_echo(procs, tmp_dir):
        srv = procs.start([binary("curve-echo-server"), "--listen=127.0.0.1:0"], name="srv")
        m = srv.wait_for_line(r"listening (\\S+)", timeout=10)
        addr = m.group(1)
        cli = procs.start([binary("curve-echo-client"), "--addr=" + addr])
        assert cli.wait(timeout=60) == 0, cli.describe()

Rules the helpers enforce (see CONVENTIONS.md, "Tests"):

* every process is started through :class:`Proc` (or the ``procs`` fixture) and is stopped by
  PID: SIGTERM first, SIGKILL after a bounded time; leftovers are killed when the test ends,
  whether it passed or failed, and at interpreter exit;
* waiting is always on a condition with a deadline (:meth:`Proc.wait_for_line`,
  :func:`wait_until`), never a bare sleep;
* data lives in a temporary directory that is removed afterwards (``tmp_dir`` fixture);
* servers bind port 0 and report the port they got; :func:`free_port` exists for programs that
  cannot, but is racy by nature (another process may take the port), so prefer port 0.
"""

import atexit
import os
import re
import shutil
import signal
import socket
import subprocess
import tempfile
import threading
import time

import pytest

__all__ = [
    "build_dir", "source_dir", "binary", "free_port", "wait_until", "Proc", "ProcGroup",
    "procs", "tmp_dir",
]

# Bound for SIGTERM -> exit before SIGKILL is used.
STOP_TIMEOUT_S = 10.0
# Lines of output kept per stream and shown by Proc.describe().
TAIL_LINES = 40

_all_procs = []
_all_lock = threading.Lock()


def build_dir():
    """The CMake build directory (env CURVE_BUILD_DIR, else <source>/build/release)."""
    d = os.environ.get("CURVE_BUILD_DIR")
    if d:
        return d
    return os.path.join(source_dir(), "build", "release")


def source_dir():
    """The source tree (env CURVE_SOURCE_DIR, else derived from this file's location)."""
    d = os.environ.get("CURVE_SOURCE_DIR")
    if d:
        return d
    return os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


_binary_cache = {}


def binary(name):
    """Absolute path of the executable ``name`` somewhere under the build directory.

    Raises FileNotFoundError naming the build directory if it is not there (not built)."""
    if name in _binary_cache:
        return _binary_cache[name]
    root = build_dir()
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "CMakeFiles"]
        if name in filenames:
            p = os.path.join(dirpath, name)
            if os.access(p, os.X_OK):
                _binary_cache[name] = p
                return p
    raise FileNotFoundError("binary %r not found under %s (not built?)" % (name, root))


def free_port():
    """A TCP port on 127.0.0.1 that was free a moment ago (racy: prefer port 0)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, interval=0.01, what="condition"):
    """Polls ``pred()`` until it returns a truthy value, which is returned.

    Raises TimeoutError (naming ``what``) after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


class Proc:
    """A child process with its stdout and stderr captured line by line.

    ``args`` is the argv list; ``name`` labels it in messages. Output is kept in memory
    (``stdout_lines`` / ``stderr_lines``) and, if ``log_dir`` is given, also written to
    ``<log_dir>/<name>.{out,err}``. Thread-safe for the waiting helpers."""

    def __init__(self, args, name=None, env=None, cwd=None, log_dir=None):
        self.args = [str(a) for a in args]
        self.name = name or os.path.basename(self.args[0])
        self.stdout_lines = []
        self.stderr_lines = []
        self._cond = threading.Condition()
        full_env = dict(os.environ)
        if env:
            full_env.update({k: str(v) for k, v in env.items()})
        self._files = {}
        if log_dir:
            for stream in ("out", "err"):
                self._files[stream] = open(os.path.join(log_dir, "%s.%s" % (self.name, stream)),
                                           "w")
        self.popen = subprocess.Popen(self.args, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                      stdin=subprocess.DEVNULL, env=full_env, cwd=cwd,
                                      start_new_session=True)
        self.pid = self.popen.pid
        self._readers = [
            threading.Thread(target=self._reader, args=(self.popen.stdout, self.stdout_lines,
                                                        "out"), daemon=True),
            threading.Thread(target=self._reader, args=(self.popen.stderr, self.stderr_lines,
                                                        "err"), daemon=True),
        ]
        for t in self._readers:
            t.start()
        with _all_lock:
            _all_procs.append(self)

    def _reader(self, pipe, lines, stream):
        for raw in iter(pipe.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            with self._cond:
                lines.append(line)
                self._cond.notify_all()
            f = self._files.get(stream)
            if f:
                f.write(line + "\n")
                f.flush()
        pipe.close()
        with self._cond:
            self._cond.notify_all()

    def running(self):
        return self.popen.poll() is None

    @property
    def returncode(self):
        return self.popen.poll()

    def wait_for_line(self, pattern, timeout, stream="stdout", count=1):
        """Waits until ``count`` lines of ``stream`` ("stdout" or "stderr") match the regular
        expression ``pattern`` (re.search); returns the match object of the last one.

        Raises TimeoutError, or RuntimeError if the process exits first (with its output)."""
        rx = re.compile(pattern)
        lines = self.stdout_lines if stream == "stdout" else self.stderr_lines
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                matches = [m for m in (rx.search(line) for line in lines) if m]
                if len(matches) >= count:
                    return matches[count - 1]
                left = deadline - time.monotonic()
                if not self.running() and not any(t.is_alive() for t in self._readers):
                    raise RuntimeError("%s exited (rc=%s) before %d line(s) matching %r\n%s" %
                                       (self.name, self.returncode, count, pattern,
                                        self.describe()))
                if left <= 0:
                    raise TimeoutError("%s: no %d line(s) matching %r on %s within %.1f s\n%s" %
                                       (self.name, count, pattern, stream, timeout,
                                        self.describe()))
                self._cond.wait(min(left, 0.1))

    def count_lines(self, pattern, stream="stdout"):
        """Number of lines of ``stream`` matching ``pattern`` so far."""
        rx = re.compile(pattern)
        lines = self.stdout_lines if stream == "stdout" else self.stderr_lines
        with self._cond:
            return sum(1 for line in lines if rx.search(line))

    def wait(self, timeout):
        """Waits for exit (bounded); returns the exit code. Raises TimeoutError (the process is
        left running: the fixture or stop() ends it)."""
        try:
            rc = self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("%s did not exit within %.1f s\n%s" %
                               (self.name, timeout, self.describe()))
        for t in self._readers:
            t.join(timeout=STOP_TIMEOUT_S)
        return rc

    def signal(self, sig):
        """Sends ``sig`` to the process (by PID) if it is still running."""
        if self.running():
            os.kill(self.pid, sig)

    def stop(self, timeout=STOP_TIMEOUT_S):
        """SIGTERM, wait up to ``timeout`` s, then SIGKILL. Returns the exit code (negative
        signal number if killed by a signal)."""
        if self.running():
            self.signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.kill()
        return self.wait(timeout=STOP_TIMEOUT_S)

    def kill(self):
        """SIGKILL by PID (no grace) and reap."""
        if self.running():
            os.kill(self.pid, signal.SIGKILL)
        return self.popen.wait(timeout=STOP_TIMEOUT_S)

    def describe(self):
        """A short report: command, pid, exit code and the tail of both streams."""
        with self._cond:
            out = "\n".join(self.stdout_lines[-TAIL_LINES:])
            err = "\n".join(self.stderr_lines[-TAIL_LINES:])
        return ("--- %s (pid %d, rc=%s): %s\n--- stdout:\n%s\n--- stderr:\n%s" %
                (self.name, self.pid, self.returncode, " ".join(self.args), out, err))

    def close_logs(self):
        for f in self._files.values():
            f.close()
        self._files = {}


class ProcGroup:
    """Starts processes and stops all of them (reverse start order) in stop_all()."""

    def __init__(self, log_dir=None):
        self.procs = []
        self.log_dir = log_dir

    def start(self, args, name=None, env=None, cwd=None):
        p = Proc(args, name=name, env=env, cwd=cwd, log_dir=self.log_dir)
        self.procs.append(p)
        return p

    def stop_all(self, kill=False):
        for p in reversed(self.procs):
            try:
                if kill:
                    p.kill()
                else:
                    p.stop()
            finally:
                p.close_logs()


def _kill_leftovers():
    with _all_lock:
        procs = list(_all_procs)
    for p in procs:
        try:
            if p.running():
                os.kill(p.pid, signal.SIGKILL)
                p.popen.wait(timeout=STOP_TIMEOUT_S)
        except Exception:
            pass


atexit.register(_kill_leftovers)


@pytest.fixture
def tmp_dir():
    """A fresh temporary directory (removed after the test)."""
    d = tempfile.mkdtemp(prefix="curve-test-")
    try:
        yield d
    finally:
        shutil.rmtree(d, ignore_errors=True)


@pytest.fixture
def procs(request):
    """A ProcGroup whose processes are stopped when the test ends: gracefully after a pass,
    with SIGKILL after a failure (the failure report already has their output)."""
    failed_before = request.session.testsfailed
    g = ProcGroup()
    yield g
    # The call phase has been reported by the time fixtures are torn down.
    g.stop_all(kill=request.session.testsfailed > failed_before)
