"""Local cluster for the chaos harness: `curve cluster up` (etcd, 3 MDS, 3 chunkservers on
127.0.0.1..3), after which the harness takes the chunkservers over (restarts them with the admin
failpoint endpoint switched on) and can kill / stop / restart any process by PID.

Isolation mode: **failpoint fallback**. The chunkservers of `curve cluster up` listen on their own
loopback addresses (127.0.0.1..3) but share one network namespace, so a partition is injected
with the RPC-layer failpoints `rpc.server.reply=return` (every reply dropped) plus
`rpc.channel.send=return` (every outgoing request dropped) on the isolated chunkserver; packet
loss is real (iptables `-m statistic` on the chunkserver's address and port).
"""

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
import urllib.request

CLI_TIMEOUT_S = 60       # one `curve` CLI call
UP_WAIT = "120s"         # `curve cluster up --wait`
STOP_TIMEOUT_S = 10      # SIGTERM -> SIGKILL
READY_TIMEOUT_S = 60     # a restarted daemon prints its listening line
HTTP_TIMEOUT_S = 5


def wait_until(pred, timeout, interval=0.05, what="condition"):
    deadline = time.monotonic() + timeout
    while True:
        v = pred()
        if v:
            return v
        if time.monotonic() >= deadline:
            raise TimeoutError("timed out after %.1f s waiting for %s" % (timeout, what))
        time.sleep(interval)


def find_file(root, name, executable=True):
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames[:] = [d for d in dirnames if d != "CMakeFiles"]
        if name in filenames:
            p = os.path.join(dirpath, name)
            if not executable or os.access(p, os.X_OK):
                return p
    raise FileNotFoundError("%s not found under %s (not built?)" % (name, root))


def pid_alive(pid):
    try:
        with open("/proc/%d/stat" % pid) as f:
            return f.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return False


class Daemon:
    """One cluster process. `popen` is set when the harness (re)started it; otherwise only the
    PID recorded by `curve cluster up` is known."""

    def __init__(self, name, pid, argv, port, log):
        self.name, self.pid, self.argv, self.port, self.log = name, pid, argv, port, log
        self.popen = None
        self.admin_port = None
        self.stopped = False  # SIGSTOPped

    @property
    def ip(self):
        for a in self.argv:
            if a.startswith("--ip="):
                return a.split("=", 1)[1]
        return "127.0.0.1"

    def alive(self):
        if self.popen is not None:
            return self.popen.poll() is None
        return pid_alive(self.pid)

    def signal(self, sig):
        if self.alive():
            os.kill(self.pid, sig)

    def kill(self):
        if not self.alive():
            return
        if self.stopped:
            os.kill(self.pid, signal.SIGCONT)
            self.stopped = False
        os.kill(self.pid, signal.SIGKILL)
        self._reap(STOP_TIMEOUT_S)

    def terminate(self):
        if not self.alive():
            return
        if self.stopped:
            os.kill(self.pid, signal.SIGCONT)
            self.stopped = False
        os.kill(self.pid, signal.SIGTERM)
        try:
            self._reap(STOP_TIMEOUT_S)
        except TimeoutError:
            os.kill(self.pid, signal.SIGKILL)
            self._reap(STOP_TIMEOUT_S)

    def _reap(self, timeout):
        if self.popen is not None:
            try:
                self.popen.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                raise TimeoutError("%s (pid %d) did not exit" % (self.name, self.pid))
        else:
            wait_until(lambda: not pid_alive(self.pid), timeout, what="%s exit" % self.name)

    def start(self, extra=()):
        """(Re)starts the process with its recorded argv (+ extra), output appended to its
        log; waits for its 'listening'/'admin' line when it is a curve daemon."""
        assert not self.alive(), "%s still running" % self.name
        argv = list(self.argv) + list(extra)
        logf = open(self.log, "a")
        start_off = logf.tell()
        self.popen = subprocess.Popen(argv, stdout=logf, stderr=subprocess.STDOUT,
                                      stdin=subprocess.DEVNULL, start_new_session=True)
        logf.close()
        self.pid = self.popen.pid
        self.argv = argv
        self.stopped = False
        if "etcd" in os.path.basename(argv[0]):
            return
        self.admin_port = None
        wait_until(lambda: self._read_admin(start_off), READY_TIMEOUT_S,
                   what="%s to print its admin port" % self.name)

    def _read_admin(self, start_off):
        if not self.alive():
            raise RuntimeError("%s exited after restart (see %s)" % (self.name, self.log))
        with open(self.log, errors="replace") as f:
            f.seek(start_off)
            for line in f:
                # chunkserver: "listening IP:PORT admin PORT"; mds: "admin IP:PORT"
                m = re.match(r"^(?:listening \S+ )?admin (?:\S+:)?(\d+)\s*$", line)
                if m:
                    self.admin_port = int(m.group(1))
                    return True
        return False

    def http(self, path, method="GET", timeout=HTTP_TIMEOUT_S):
        assert self.admin_port, "%s: admin port unknown" % self.name
        req = urllib.request.Request("http://%s:%d%s" % (self.ip, self.admin_port, path),
                                     method=method, data=b"" if method == "POST" else None)
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.read().decode()

    def failpoint(self, name, action):
        return self.http("/failpoint?name=%s&action=%s" % (name, urllib.request.quote(action)),
                         method="POST")

    def failpoints_clear(self):
        return self.http("/failpoint?clear=1", method="POST")


class Cluster:
    def __init__(self, build_dir, log=print):
        self.build = build_dir
        self.log = log
        self.curve_bin = find_file(build_dir, "curve")
        self.dir = tempfile.mkdtemp(prefix="curve-chaos-")
        self.conf = os.path.join(self.dir, "client.conf")
        self.daemons = {}
        self.up_done = False

    # ---- CLI ----
    def cli(self, *args, timeout=CLI_TIMEOUT_S, check=True):
        env = dict(os.environ)
        env.pop("CURVE_MDS_ADDRS", None)
        env.pop("CURVE_CONF", None)
        p = subprocess.run([self.curve_bin] + [str(a) for a in args], stdout=subprocess.PIPE,
                           stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, timeout=timeout,
                           env=env)
        if check and p.returncode != 0:
            raise RuntimeError("curve %s failed (rc=%d): %s %s" % (
                " ".join(map(str, args)), p.returncode, p.stdout.decode(errors="replace"),
                p.stderr.decode(errors="replace")))
        return p

    def jcli(self, *args, timeout=CLI_TIMEOUT_S):
        p = self.cli(*(list(args) + ["--conf=" + self.conf, "--format=json"]), timeout=timeout)
        return json.loads(p.stdout)

    def status(self):
        """bs status JSON, or None when no MDS leader answered."""
        try:
            p = self.cli("bs", "status", "--conf=" + self.conf, "--format=json", check=False,
                         timeout=15)
        except subprocess.TimeoutExpired:
            return None
        if p.returncode != 0:
            return None
        try:
            return json.loads(p.stdout)
        except ValueError:
            return None

    def fully_healthy(self):
        st = self.status()
        if not st or not st.get("healthy"):
            return False
        cs = st.get("copysets", {})
        return cs.get("total", 0) > 0 and cs.get("healthy") == cs.get("total")

    # ---- lifecycle ----
    def up(self):
        p = self.cli("cluster", "up", "--dir=" + self.dir, "--wait=" + UP_WAIT, "--format=json",
                     check=False, timeout=180)
        self.up_done = True
        if p.returncode != 0:
            raise RuntimeError("curve cluster up failed: %s" % p.stderr.decode(errors="replace"))
        with open(os.path.join(self.dir, "cluster.json")) as f:
            rec = json.load(f)
        for pr in rec["procs"]:
            self.daemons[pr["name"]] = Daemon(pr["name"], pr["pid"], pr["argv"], pr["port"],
                                              pr["log"])
        for d in self.daemons.values():
            if d.name.startswith("mds"):
                d._read_admin(0)
        # Take the chunkservers over: restart them with the failpoint endpoint on.
        for d in self.chunkservers():
            d.terminate()
        for d in self.chunkservers():
            d.start(["--admin.failpoints=true"])
        wait_until(self.fully_healthy, 120, interval=0.5,
                   what="healthy cluster after chunkserver takeover")

    def down(self):
        for d in reversed(list(self.daemons.values())):
            try:
                d.terminate()
            except Exception as e:  # keep going: everything must be stopped
                self.log("warning: stopping %s: %s" % (d.name, e))
                try:
                    os.kill(d.pid, signal.SIGKILL)
                except OSError:
                    pass
        if self.up_done:
            try:
                self.cli("cluster", "down", "--dir=" + self.dir, check=False, timeout=60)
            except subprocess.TimeoutExpired:
                pass
        shutil.rmtree(self.dir, ignore_errors=True)

    # ---- lookups ----
    def chunkservers(self):
        return [d for n, d in sorted(self.daemons.items()) if n.startswith("cs")]

    def mdss(self):
        return [d for n, d in sorted(self.daemons.items()) if n.startswith("mds")]

    def etcd(self):
        return self.daemons["etcd"]

    def cs_by_addr(self, host, port):
        for d in self.chunkservers():
            if d.port == int(port) and d.ip == host:
                return d
        return None

    def cs_leader_counts(self):
        """{cs daemon name: number of copysets it leads} from `bs list copyset`."""
        out = self.jcli("bs", "list", "copyset")
        rows = out if isinstance(out, list) else out.get("copysets", [])
        counts = {d.name: 0 for d in self.chunkservers()}
        for r in rows:
            leader = str(r.get("leader_addr") or "").split(":")  # "ip:port:idx"
            if len(leader) >= 2 and leader[1].isdigit():
                d = self.cs_by_addr(leader[0], leader[1])
                if d:
                    counts[d.name] += 1
        return counts

    def busiest_leader(self):
        c = self.cs_leader_counts()
        return self.daemons[max(sorted(c), key=lambda n: c[n])], c

    def quietest(self):
        c = self.cs_leader_counts()
        return self.daemons[min(sorted(c), key=lambda n: c[n])], c

    def mds_leader(self):
        st = self.status()
        if not st or not st.get("mds_leader"):
            return None
        port = int(st["mds_leader"].rsplit(":", 1)[1])
        for d in self.mdss():
            if d.port == port:
                return d
        return None
