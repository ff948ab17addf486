"""Start and stop real etcd clusters (1 or 3 members) on free loopback ports for tests.

    with EtcdCluster(size=3) as cl:
        cl.endpoints()            # ["http://127.0.0.1:P1", ...]
        cl.kill(i) / cl.start(i)  # SIGKILL a member / restart it on the same ports and data
        cl.pause(i) / cl.resume(i)
        cl.leader_index()         # member that is etcd's raft leader

Every member runs in its own data dir inside one temporary directory that is removed at the
end. Processes are tracked by PID and stopped with a bounded timeout (SIGTERM, then SIGKILL).
Waits use deadlines (never bare sleeps standing in for synchronisation).
"""
import base64
import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

ETCD_BIN = os.environ.get("ETCD_BIN", shutil.which("etcd") or "/usr/bin/etcd")
START_TIMEOUT_S = 20.0
STOP_TIMEOUT_S = 5.0


def free_port():
    """A currently free TCP port on 127.0.0.1 (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout_s, what, interval_s=0.05):
    """Polls pred() until it returns a truthy value or the deadline passes (raises)."""
    deadline = time.monotonic() + timeout_s
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout_s, what))
        time.sleep(interval_s)


def stop_pid(proc, timeout_s=STOP_TIMEOUT_S, sig=signal.SIGTERM):
    """Stops a subprocess.Popen by PID: sig, then SIGKILL after timeout_s. Returns its code."""
    if proc.poll() is not None:
        return proc.returncode
    try:
        os.kill(proc.pid, signal.SIGCONT)  # a paused process cannot handle SIGTERM
        os.kill(proc.pid, sig)
    except ProcessLookupError:
        pass
    try:
        return proc.wait(timeout=timeout_s)
    except subprocess.TimeoutExpired:
        os.kill(proc.pid, signal.SIGKILL)
        return proc.wait(timeout=timeout_s)


def b64(s):
    return base64.b64encode(s.encode() if isinstance(s, str) else s).decode()


class EtcdMember:
    def __init__(self, name, workdir):
        self.name = name
        self.client_port = free_port()
        self.peer_port = free_port()
        self.data_dir = os.path.join(workdir, name + ".etcd")
        self.log_path = os.path.join(workdir, name + ".log")
        self.proc = None

    @property
    def client_url(self):
        return "http://127.0.0.1:%d" % self.client_port

    @property
    def peer_url(self):
        return "http://127.0.0.1:%d" % self.peer_port

    def alive(self):
        return self.proc is not None and self.proc.poll() is None


class EtcdCluster:
    """A 1- or 3-member etcd cluster in a temporary directory."""

    def __init__(self, size=1, tmp_root=None):
        assert size in (1, 3)
        self.tmp = tempfile.mkdtemp(prefix="curve-etcd-", dir=tmp_root)
        self.members = [EtcdMember("n%d" % (i + 1), self.tmp) for i in range(size)]
        self.initial_cluster = ",".join("%s=%s" % (m.name, m.peer_url) for m in self.members)
        self._started_once = [False] * size

    # -- lifecycle -------------------------------------------------------------------------
    def __enter__(self):
        try:
            self.start_all()
        except BaseException:
            self.close()
            raise
        return self

    def __exit__(self, *exc):
        self.close()

    def start_all(self):
        for i in range(len(self.members)):
            self._spawn(i)
        for i in range(len(self.members)):
            self.wait_healthy(i)

    def _spawn(self, i):
        m = self.members[i]
        assert not m.alive(), "member %s already running" % m.name
        args = [ETCD_BIN, "--name", m.name, "--data-dir", m.data_dir,
                "--listen-client-urls", m.client_url, "--advertise-client-urls", m.client_url,
                "--listen-peer-urls", m.peer_url, "--initial-advertise-peer-urls", m.peer_url,
                "--initial-cluster", self.initial_cluster,
                "--initial-cluster-state", "existing" if self._started_once[i] else "new",
                "--initial-cluster-token", os.path.basename(self.tmp),
                "--heartbeat-interval", "100", "--election-timeout", "500",
                "--logger", "zap", "--log-outputs", "stderr"]
        log = open(m.log_path, "ab")
        m.proc = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT,
                                  stdin=subprocess.DEVNULL)
        log.close()
        self._started_once[i] = True

    def start(self, i, wait=True):
        """(Re)starts member i on its ports and data dir."""
        self._spawn(i)
        if wait:
            self.wait_healthy(i)

    def wait_healthy(self, i, timeout_s=START_TIMEOUT_S):
        m = self.members[i]

        def ok():
            if not m.alive():
                raise RuntimeError("etcd %s exited with %s; log %s:\n%s" % (
                    m.name, m.proc.returncode, m.log_path, self.log_tail(i)))
            return self.health(i)
        wait_until(ok, timeout_s, "etcd %s /health" % m.name)

    def health(self, i):
        try:
            with urllib.request.urlopen(self.members[i].client_url + "/health", timeout=1) as r:
                return json.loads(r.read().decode()).get("health") == "true"
        except (OSError, ValueError, urllib.error.URLError):
            return False

    def kill(self, i):
        """SIGKILLs member i and waits for it to be reaped."""
        m = self.members[i]
        if m.alive():
            os.kill(m.proc.pid, signal.SIGKILL)
            m.proc.wait(timeout=STOP_TIMEOUT_S)

    def kill_all(self):
        for i in range(len(self.members)):
            self.kill(i)

    def pause(self, i):
        os.kill(self.members[i].proc.pid, signal.SIGSTOP)

    def resume(self, i):
        os.kill(self.members[i].proc.pid, signal.SIGCONT)

    def close(self):
        for m in self.members:
            if m.proc is not None:
                stop_pid(m.proc)
        shutil.rmtree(self.tmp, ignore_errors=True)

    # -- info ------------------------------------------------------------------------------
    def endpoints(self):
        return [m.client_url for m in self.members]

    def endpoint_list(self):
        return ",".join(self.endpoints())

    def log_tail(self, i, n=4000):
        try:
            with open(self.members[i].log_path, "rb") as f:
                return f.read()[-n:].decode(errors="replace")
        except OSError:
            return ""

    def call(self, i, path, body, timeout=2):
        """POSTs a JSON body to member i's gateway (/v3/...) and returns the parsed answer."""
        req = urllib.request.Request(self.members[i].client_url + path,
                                     data=json.dumps(body).encode(),
                                     headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return json.loads(r.read().decode())

    def status(self, i):
        return self.call(i, "/v3/maintenance/status", {})

    def leader_index(self, timeout_s=10.0):
        """Index of the member that is etcd's raft leader (waits for one)."""
        def find():
            for i, m in enumerate(self.members):
                if not m.alive():
                    continue
                try:
                    st = self.status(i)
                except (OSError, ValueError, urllib.error.URLError):
                    continue
                if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                    return i + 1
            return None
        return wait_until(find, timeout_s, "an etcd leader") - 1

    def get_prefix(self, prefix, i=None):
        """[(key, value, create_revision)] under prefix, sorted by create revision."""
        idx = i if i is not None else next(k for k, m in enumerate(self.members) if m.alive())
        end = prefix[:-1] + chr(ord(prefix[-1]) + 1)
        r = self.call(idx, "/v3/kv/range", {"key": b64(prefix), "range_end": b64(end)})
        out = []
        for kv in r.get("kvs", []):
            out.append((base64.b64decode(kv["key"]).decode(),
                        base64.b64decode(kv.get("value", "")).decode(errors="replace"),
                        int(kv.get("create_revision", "0"))))
        return sorted(out, key=lambda t: t[2])
