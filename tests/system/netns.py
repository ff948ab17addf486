"""Network isolation of the chaos harness.

Two modes (chosen by `Net.create`):

* **netns** — real isolation. The harness creates its own network namespaces, all named
  `chaos<pid>-<node>` (the pid of the harness process): a hub namespace holding a bridge `br0`,
  and one namespace per node (each etcd member, each MDS, each chunkserver, and `cli` for the
  CLI calls and the nbdkit exports) linked to the bridge by a veth pair (`v<node>` in the hub,
  `eth0` in the node). Addresses are private, `10.199.0.0/24`, and exist only inside these
  namespaces. A daemon is started with `ip netns exec <ns>` (which execs: the PID is the
  daemon's). A partition is an iptables DROP rule inside the isolated node's namespace; packet
  loss is iptables `-m statistic --mode random` there. Every namespace is deleted at the end
  (`close`, also registered with atexit); namespaces of earlier runs whose harness process is
  gone are deleted at start.
* **failpoint** — the fallback when namespaces cannot be created: every daemon shares the
  host's loopback namespace (chunkservers on 127.0.0.1..N); a partition is injected with the
  RPC-layer failpoints; packet loss is iptables on the chunkserver's address and port.

The harness itself stays in the host namespace. It reaches a daemon's admin HTTP port from a
thread that has joined the daemon's namespace (`call`), and fio / blkcheck reach the nbdkit
exports through unix sockets (not subject to network namespaces).
"""

import atexit
import ctypes
import os
import re
import socket
import subprocess
import threading

SUBNET = "10.199.0."       # /24, only inside the harness's namespaces
PREFIX = "chaos"           # namespace names: chaos<pid>-<node>
CLONE_NEWNET = 0x40000000
IP_TIMEOUT_S = 30

# fixed host parts per node kind (netns mode); each node has its own address, so fixed ports
# can be used without racing other processes on the machine
HOST_BASE = {"cli": 10, "etcd": 10, "mds": 20, "cs": 30}


def _ip(*args, check=True):
    p = subprocess.run(["ip"] + list(args), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                       stdin=subprocess.DEVNULL, timeout=IP_TIMEOUT_S)
    if check and p.returncode != 0:
        raise RuntimeError("ip %s: %s" % (" ".join(args), p.stderr.decode(errors="replace")))
    return p


def _pid_alive(pid):
    try:
        os.kill(pid, 0)
        return True
    except ProcessLookupError:
        return False
    except PermissionError:
        return True


def list_ns():
    p = _ip("netns", "list", check=False)
    return [line.split()[0] for line in p.stdout.decode().splitlines() if line.strip()]


def kill_ns_pids(ns, log=print):
    """SIGKILLs, by PID, the processes still inside one of the harness's namespaces."""
    p = _ip("netns", "pids", ns, check=False)
    for pid in (int(x) for x in p.stdout.decode().split() if x.isdigit()):
        log("killing pid %d left in namespace %s" % (pid, ns))
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass


def stale_cleanup(log=print):
    """Deletes namespaces chaos<pid>-* left by a harness process that no longer exists (after
    killing the daemons it left in them)."""
    for ns in list_ns():
        m = re.match(r"^%s(\d+)-" % PREFIX, ns)
        if m and not _pid_alive(int(m.group(1))):
            log("deleting stale namespace %s (harness pid %s gone)" % (ns, m.group(1)))
            kill_ns_pids(ns, log)
            _ip("netns", "del", ns, check=False)


def netns_available():
    """(True, "") when this process can create a namespace and a veth pair, else (False, why)."""
    if os.geteuid() != 0:
        return False, "not root"
    probe = "%s%d-probe" % (PREFIX, os.getpid())
    try:
        _ip("netns", "add", probe)
        try:
            _ip("-n", probe, "link", "add", "p0", "type", "veth", "peer", "name", "p1")
            p = subprocess.run(["ip", "netns", "exec", probe, "iptables", "-L", "-n"],
                               stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30,
                               stdin=subprocess.DEVNULL)
            if p.returncode != 0:
                return False, "iptables in a namespace: " + p.stderr.decode(errors="replace")
        finally:
            _ip("netns", "del", probe, check=False)
    except (RuntimeError, OSError, subprocess.TimeoutExpired) as e:
        return False, str(e).strip()[:200]
    return True, ""


_libc = ctypes.CDLL(None, use_errno=True)


class Net:
    """Addresses of the nodes and how to reach into them (see the module doc)."""

    def __init__(self, mode, log=print):
        assert mode in ("netns", "failpoint")
        self.mode, self.log = mode, log
        self.nodes = {}            # node -> ip
        self.counts = {}
        self.hub = None
        self.closed = False
        if mode == "netns":
            stale_cleanup(log)
            self.prefix = "%s%d-" % (PREFIX, os.getpid())
            self.hub = self.prefix + "hub"
            atexit.register(self.close)
            _ip("netns", "add", self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            _ip("-n", self.hub, "link", "set", "lo", "up")

    @staticmethod
    def create(want="auto", log=print):
        """want: auto (netns when possible), netns, failpoint. Returns (Net, why-not-netns)."""
        why = ""
        if want in ("auto", "netns"):
            ok, why = netns_available()
            if ok:
                return Net("netns", log), ""
            if want == "netns":
                raise RuntimeError("network namespaces unavailable: " + why)
            log("network namespaces unavailable (%s): failpoint fallback" % why)
        return Net("failpoint", log), why or "requested"

    @property
    def netns(self):
        return self.mode == "netns"

    def describe(self):
        if self.netns:
            return ("network namespaces (one per etcd member, MDS, chunkserver and one for the "
                    "clients, veth to a bridge; partitions and loss are iptables rules inside "
                    "the isolated node's namespace)")
        return ("failpoint fallback (one shared loopback namespace; a partition drops every RPC "
                "reply and outgoing request of the node; loss is iptables on its address/port)")

    def ns(self, node):
        return self.prefix + node if self.netns else None

    def add_node(self, node):
        """Creates the node's namespace (netns mode) and returns its address."""
        if node in self.nodes:
            return self.nodes[node]
        kind = re.match(r"^[a-z]+", node).group(0)
        idx = int(node[len(kind):] or "0")
        if not self.netns:
            ip = "127.0.0.%d" % idx if kind == "cs" else "127.0.0.1"
            self.nodes[node] = ip
            return ip
        ip = SUBNET + str(HOST_BASE[kind] + idx)
        ns = self.ns(node)
        veth = "v" + node
        assert len(veth) <= 15, veth
        _ip("netns", "add", ns)
        self.nodes[node] = ip  # recorded before the links: close() deletes it on any failure
        _ip("-n", self.hub, "link", "add", veth, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        _ip("-n", self.hub, "link", "set", veth, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", ip + "/24", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        _ip("-n", ns, "link", "set", "lo", "up")
        return ip

    def wrap(self, node, argv):
        """argv run inside the node's namespace (unchanged in failpoint mode)."""
        if not self.netns or node is None:
            return list(argv)
        return ["ip", "netns", "exec", self.ns(node)] + list(argv)

    def call(self, node, fn):
        """Runs fn() in a thread that joined the node's network namespace (sockets it creates
        live there); returns its result or raises its exception."""
        if not self.netns or node is None:
            return fn()
        box = {}

        def run():
            try:
                fd = os.open("/run/netns/" + self.ns(node), os.O_RDONLY | os.O_CLOEXEC)
                try:
                    if _libc.setns(fd, CLONE_NEWNET) != 0:
                        e = ctypes.get_errno()
                        raise OSError(e, "setns %s: %s" % (self.ns(node), os.strerror(e)))
                finally:
                    os.close(fd)
                box["v"] = fn()
            except BaseException as e:  # handed to the caller
                box["e"] = e
        t = threading.Thread(target=run, daemon=True)
        t.start()
        t.join()
        if "e" in box:
            raise box["e"]
        return box.get("v")

    def free_port(self, node):
        """Failpoint mode: a free port on the node's loopback address (bind 0; racy by nature).
        netns mode: the node has the address to itself, so any fixed port is free."""
        ip = self.nodes[node]
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((ip, 0))
            return s.getsockname()[1]

    def iptables(self, node, args, check=True):
        """iptables inside the node's namespace (netns) or in the host namespace (fallback)."""
        argv = self.wrap(node, ["iptables"] + list(args)) if self.netns else ["iptables"] + \
            list(args)
        p = subprocess.run(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           stdin=subprocess.DEVNULL, timeout=30)
        if check and p.returncode != 0:
            raise RuntimeError("%s: %s" % (" ".join(argv), p.stderr.decode(errors="replace")))
        return p.returncode == 0

    def close(self):
        """Deletes every namespace this run created (idempotent). Processes inside must have
        been stopped: a namespace with live processes only loses its name."""
        if self.closed or not self.netns:
            self.closed = True
            return
        self.closed = True
        for node in list(self.nodes):
            kill_ns_pids(self.ns(node), self.log)  # normally none: the daemons were stopped
            _ip("netns", "del", self.ns(node), check=False)
        _ip("netns", "del", self.hub, check=False)
        left = [n for n in list_ns() if n.startswith(self.prefix)]
        if left:
            self.log("warning: namespaces left: %s" % " ".join(left))
