"""Local cluster of the chaos harness: a 3-member etcd, 3 MDS and N chunkservers (default 4, one
server per zone) started by the harness itself, each inside its own network namespace when
namespaces are available (see netns.py), otherwise all on loopback (failpoint fallback). Every
process is started, killed, stopped (SIGSTOP) and restarted by PID.

The daemons get the flags `curve cluster up` gives them (tools/cli_cluster.c: 4 MiB chunks,
64 MiB segments, unstable after 5 s, offline after 60 s, 1 s chunkserver heartbeats) plus the
failpoint endpoint of the chunkservers; the topology (one server per zone) is applied with
`curve cluster apply`. `curve cluster up` itself is not used: it runs one etcd member, three
chunkservers and knows nothing of namespaces.
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

from netns import Net

CLI_TIMEOUT_S = 60       # one `curve` CLI call
STOP_TIMEOUT_S = 10      # SIGTERM -> SIGKILL
READY_TIMEOUT_S = 60     # a (re)started daemon prints its listening line
HTTP_TIMEOUT_S = 5
UP_TIMEOUT_S = 180       # whole cluster healthy after start

CHUNK, SEGMENT = "4m", "64m"
COPYSETS = 24
# Chunk files formatted per chunkserver (4 MiB each). `curve cluster up` formats 48; the harness
# writes more: the 2 load volumes (2 x 32 chunks of 128 MiB, 20 of them written by fio and
# blkcheck) and the scale scenario's 50 volumes (1 chunk each), at most one replica of each chunk
# per chunkserver: <= 64 + 50 = 114. With 48, a chunkserver's pool ran dry during the scale
# scenario and writes to new chunks on it got NOSPACE, which libcurve retries forever (the
# "/scale33 hung" of the failure table). 128 files = 512 MiB per chunkserver.
POOL_FILES = int(os.environ.get("CHAOS_POOL_FILES", "128"))  # override: experiments only
ETCD_PORT, ETCD_PEER_PORT, MDS_PORT, CS_PORT = 2379, 2380, 6700, 8200  # netns mode


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


class Daemon:
    """One cluster process, started by the harness (`popen`) inside its node's namespace."""

    def __init__(self, name, node, ip, argv, port, log, net):
        self.name, self.node, self.ip, self.argv, self.port, self.log = \
            name, node, ip, argv, port, log
        self.net = net
        self.popen = None
        self.pid = -1
        self.admin_port = None
        self.stopped = False  # SIGSTOPped

    @property
    def addr(self):
        return "%s:%d" % (self.ip, self.port)

    def alive(self):
        return self.popen is not None and self.popen.poll() is None

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
        try:
            self.popen.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            raise TimeoutError("%s (pid %d) did not exit" % (self.name, self.pid))

    def start(self, wait=True):
        """(Re)starts the process with its argv inside its namespace (`ip netns exec` execs,
        so the PID is the daemon's), output appended to its log; waits for its admin line when
        it is a curve daemon."""
        assert not self.alive(), "%s still running" % self.name
        logf = open(self.log, "a")
        start_off = logf.tell()
        self.popen = subprocess.Popen(self.net.wrap(self.node, self.argv), stdout=logf,
                                      stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                      start_new_session=True)
        logf.close()
        self.pid = self.popen.pid
        self.stopped = False
        if self.name.startswith("etcd"):
            return
        self.admin_port = None
        if wait:
            wait_until(lambda: self._read_admin(start_off), READY_TIMEOUT_S,
                       what="%s to print its admin port" % self.name)

    def _read_admin(self, start_off):
        if not self.alive():
            raise RuntimeError("%s exited after start (see %s)" % (self.name, self.log))
        with open(self.log, errors="replace") as f:
            f.seek(start_off)
            for line in f:
                # chunkserver: "listening IP:PORT admin PORT"; mds: "admin IP:PORT"
                m = re.match(r"^(?:listening \S+ )?admin (?:\S+:)?(\d+)\s*$", line)
                if m:
                    self.admin_port = int(m.group(1))
                    return True
        return False

    def http(self, path, method="GET", timeout=HTTP_TIMEOUT_S, data=None, port=None):
        port = port or self.admin_port
        assert port, "%s: admin port unknown" % self.name
        body = data if data is not None else (b"" if method == "POST" else None)
        req = urllib.request.Request("http://%s:%d%s" % (self.ip, port, path), method=method,
                                     data=body)

        def get():
            with urllib.request.urlopen(req, timeout=timeout) as r:
                return r.read().decode()
        return self.net.call(self.node, get)

    def failpoint(self, name, action):
        return self.http("/failpoint?name=%s&action=%s" % (name, urllib.request.quote(action)),
                         method="POST")

    def failpoints_clear(self):
        return self.http("/failpoint?clear=1", method="POST")

    def role(self):
        """MDS: its /status role ("leader", "follower", "lost"), or None when it does not
        answer."""
        try:
            return json.loads(self.http("/status", timeout=2)).get("role")
        except Exception:  # not answering is an answer here
            return None


class Cluster:
    def __init__(self, build_dir, log=print, isolation="auto", chunkservers=4, etcd_members=3):
        self.build = build_dir
        self.log = log
        self.curve_bin = find_file(build_dir, "curve")
        self.bin_mds = find_file(build_dir, "curve-mds")
        self.bin_cs = find_file(build_dir, "curve-chunkserver")
        self.bin_etcd = shutil.which("etcd")
        if self.bin_etcd is None:
            raise FileNotFoundError("etcd not installed")
        self.want_isolation = isolation
        self.n_cs, self.n_etcd = chunkservers, etcd_members
        self.dir = tempfile.mkdtemp(prefix="curve-chaos-")
        os.makedirs(os.path.join(self.dir, "logs"))
        self.conf = os.path.join(self.dir, "client.conf")
        self.topo_path = os.path.join(self.dir, "topology.json")
        self.daemons = {}
        self.net = None
        self.no_netns_why = ""
        # MDS builds with the admin failpoint endpoint (etcd.request: cut it off etcd)
        h = subprocess.run([self.bin_mds, "--help"], stdout=subprocess.PIPE,
                           stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, timeout=30)
        self.mds_failpoints = b"admin.failpoints" in h.stdout
        self.topo = None

    # ---- CLI (from the clients' namespace) ----
    def cli(self, *args, timeout=CLI_TIMEOUT_S, check=True):
        env = dict(os.environ)
        env.pop("CURVE_MDS_ADDRS", None)
        env.pop("CURVE_CONF", None)
        argv = self.net.wrap("cli", [self.curve_bin] + [str(a) for a in args])
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=timeout, env=env)
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

    def unhealthy_report(self):
        """Why the cluster is not fully healthy (for logs): bs status summary, chunkservers not
        online and copysets that are not healthy (peers, leader)."""
        out = []
        st = self.status()
        if not st:
            return "no MDS leader answered bs status"
        out.append("status: healthy=%s etcd_ok=%s chunkservers=%s copysets=%s" % (
            st.get("healthy"), st.get("etcd_ok"), json.dumps(st.get("chunkservers")),
            json.dumps(st.get("copysets"))))
        try:
            rows = self.jcli("bs", "list", "chunkserver")
            rows = rows if isinstance(rows, list) else rows.get("chunkservers", [])
            bad = ["%s %s:%s %s" % (r.get("id"), r.get("host"), r.get("port"), r.get("state"))
                   for r in rows if r.get("state") != "online"]
            out.append("chunkservers not online: %s" % (bad or "none"))
            rows = self.jcli("bs", "list", "copyset")
            rows = rows if isinstance(rows, list) else rows.get("copysets", [])
            bad = [r for r in rows if not r.get("healthy", True)]
            out.append("unhealthy copysets (%d): %s" % (len(bad), json.dumps(bad[:8])))
        except Exception as e:  # noqa: BLE001 - diagnostics only
            out.append("listing failed: %s" % e)
        return "; ".join(out)

    def copysets_healthy(self):
        """Every copyset has its 3 healthy replicas (chunkservers may be offline)."""
        st = self.status()
        cs = (st or {}).get("copysets", {})
        return cs.get("total", 0) > 0 and cs.get("healthy") == cs.get("total")

    # ---- lifecycle ----
    def _daemon(self, name, node, bin_, args, port):
        ip = self.net.add_node(node)
        d = Daemon(name, node, ip, [bin_] + [a.replace("{ip}", ip) for a in args], port,
                   os.path.join(self.dir, "logs", name + ".log"), self.net)
        self.daemons[name] = d
        return d

    def _port(self, node, fixed):
        return fixed if self.net.netns else self.net.free_port(node)

    def etcd_endpoints(self):
        return ",".join("http://%s" % d.addr for d in self.etcds())

    def up(self):
        self.net, self.no_netns_why = Net.create(self.want_isolation, self.log)
        self.log("isolation: %s" % self.net.describe())
        self.net.add_node("cli")
        # etcd members: all started at once (a member waits for its peers to form a quorum)
        members = []
        for i in range(1, self.n_etcd + 1):
            node = "etcd%d" % i
            ip = self.net.add_node(node)
            members.append((node, ip, self._port(node, ETCD_PORT),
                            self._port(node, ETCD_PEER_PORT)))
        initial = ",".join("%s=http://%s:%d" % (n, ip, pp) for n, ip, _, pp in members)
        for node, ip, cp, pp in members:
            self._daemon(node, node, self.bin_etcd, [
                "--name=" + node, "--data-dir=%s/%s" % (self.dir, node),
                "--listen-client-urls=http://%s:%d" % (ip, cp),
                "--advertise-client-urls=http://%s:%d" % (ip, cp),
                "--listen-peer-urls=http://%s:%d" % (ip, pp),
                "--initial-advertise-peer-urls=http://%s:%d" % (ip, pp),
                "--initial-cluster=" + initial, "--initial-cluster-state=new",
                "--initial-cluster-token=chaos"], cp).start()
        for d in self.etcds():
            wait_until(lambda d=d: self.etcd_healthy(d), 60, interval=0.2,
                       what="%s healthy" % d.name)
        # 3 MDS
        for i in range(1, 4):
            node = "mds%d" % i
            self.net.add_node(node)
            port = self._port(node, MDS_PORT)
            self._daemon(node, node, self.bin_mds, [
                "--etcd_endpoints=" + self.etcd_endpoints(), "--ip={ip}", "--port=%d" % port,
                "--admin_port=0", "--name=" + node, "--chunk_size=" + CHUNK,
                "--segment_size=" + SEGMENT, "--min_volume_size=" + SEGMENT,
                "--max_volume_size=1t", "--unstable_time=5s", "--offline_time=60s"] +
                (["--admin.failpoints=true"] if self.mds_failpoints else []), port)
        for d in self.mdss():
            d.start()
        with open(self.conf, "w") as f:
            f.write("# written by tests/system/cluster.py\nmds.addrs=%s\n" % self.mds_addrs())
        wait_until(self.status, 60, interval=0.2, what="an MDS leader")
        # topology: one server per zone, then the chunkservers
        self.topo = {"physical_pools": [{"name": "pp1"}],
                     "zones": [{"name": "z%d" % i, "physical_pool": "pp1"}
                               for i in range(1, self.n_cs + 1)],
                     "servers": [],
                     "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                                        "copysets": COPYSETS}]}
        for i in range(1, self.n_cs + 1):
            self._add_cs(i, "z%d" % i)
        self.apply_topology()
        for d in self.chunkservers():
            d.start()

        def placed():
            st = self.status() or {}
            if st.get("chunkservers", {}).get("online") == self.n_cs and \
                    st.get("copysets", {}).get("total", 0) == 0:
                self.apply_topology(check=False)  # placement may need the chunkservers
            return self.fully_healthy()
        wait_until(placed, UP_TIMEOUT_S, interval=0.5, what="healthy cluster")
        # no formatting competes with the load's warm-up (the latency baseline)
        wait_until(self.pools_formatted, UP_TIMEOUT_S, interval=0.5,
                   what="chunk file pools formatted")

    def pools_formatted(self, daemons=None):
        """True when every (given) running chunkserver's formatter is done
        (curve_chunkfilepool_formatted_files >= _format_target_files)."""
        for d in daemons or self.chunkservers():
            if not d.alive():
                continue
            try:
                text = d.http("/metrics")
            except Exception:  # not answering yet
                return False
            v = {}
            for k in ("formatted_files", "format_target_files"):
                m = re.search(r"^curve_chunkfilepool_%s\S*\s+(\d+)" % k, text, re.M)
                v[k] = int(m.group(1)) if m else None
            if None in v.values() or v["formatted_files"] < v["format_target_files"]:
                return False
        return True

    def _add_cs(self, i, zone):
        """Declares server s<i> (zone) and its chunkserver cs<i> (not started)."""
        node = "cs%d" % i
        ip = self.net.add_node(node)
        port = self._port(node, CS_PORT)
        self.topo["servers"].append({"name": "s%d" % i, "zone": zone, "host": ip})
        data = os.path.join(self.dir, node)
        os.makedirs(data, exist_ok=True)
        return self._daemon(node, node, self.bin_cs, [
            "--data_dir=" + data, "--ip={ip}", "--port=%d" % port, "--admin_port=0",
            "--mds_addrs=" + self.mds_addrs(), "--chunk_size=" + CHUNK,
            "--pool.target_files=%d" % POOL_FILES, "--pool.reserve_bytes=0",
            "--pool.min_ready=4", "--heartbeat.interval=1s", "--admin.failpoints=true"], port)

    def add_chunkservers(self, n):
        """Adds n servers (round-robin over the zones) with one chunkserver each, applies the
        topology and starts them. Returns the new daemons."""
        zones = [z["name"] for z in self.topo["zones"]]
        first = len(self.chunkservers()) + 1
        new = [self._add_cs(i, zones[(i - 1) % len(zones)]) for i in range(first, first + n)]
        self.apply_topology()
        for d in new:
            d.start()
        wait_until(lambda: self.pools_formatted(new), UP_TIMEOUT_S, interval=0.5,
                   what="chunk file pools of the new chunkservers formatted")
        return new

    def apply_topology(self, check=True):
        with open(self.topo_path, "w") as f:
            json.dump(self.topo, f, indent=1)
        return self.cli("cluster", "apply", self.topo_path, "--conf=" + self.conf, check=check)

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
        if self.net is not None:
            self.net.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def describe(self):
        return ("etcd ×%d, MDS ×3, chunkservers ×%d (one server per zone), %d copysets, 4 MiB "
                "chunks" % (self.n_etcd, self.n_cs, COPYSETS))

    # ---- lookups ----
    def _named(self, prefix):
        return sorted((d for n, d in self.daemons.items() if re.match(prefix + r"\d+$", n)),
                      key=lambda d: int(d.name[len(prefix):]))

    def chunkservers(self):
        return self._named("cs")

    def mdss(self):
        return self._named("mds")

    def etcds(self):
        return self._named("etcd")

    def mds_addrs(self):
        return ",".join(d.addr for d in self.mdss())

    def etcd_healthy(self, d):
        try:
            return json.loads(d.http("/health", port=d.port, timeout=2)).get("health") in (
                True, "true")
        except Exception:  # not up yet
            return False

    def etcd_leader(self):
        """The etcd member that is the raft leader, or None."""
        for d in self.etcds():
            if not d.alive() or d.stopped:
                continue
            try:
                st = json.loads(d.http("/v3/maintenance/status", method="POST", data=b"{}",
                                       port=d.port, timeout=2))
            except Exception:  # try the next member
                continue
            if st.get("leader") and st.get("leader") == st.get("header", {}).get("member_id"):
                return d
        return None

    def cs_by_addr(self, host, port):
        for d in self.chunkservers():
            if d.port == int(port) and d.ip == host:
                return d
        return None

    def cs_leader_counts(self):
        """{cs daemon name: number of copysets it leads} from `bs list copyset`."""
        out = self.jcli("bs", "list", "copyset")
        rows = out if isinstance(out, list) else out.get("copysets", [])
        counts = {d.name: 0 for d in self.chunkservers() if d.alive()}
        for r in rows:
            leader = str(r.get("leader_addr") or "").split(":")  # "ip:port:idx"
            if len(leader) >= 2 and leader[1].isdigit():
                d = self.cs_by_addr(leader[0], leader[1])
                if d and d.name in counts:
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
        for d in self.mdss():
            if d.addr == st["mds_leader"]:
                return d
        return None
