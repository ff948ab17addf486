"""CI subset of the chaos harness (tests/system/chaos.py --quick): chunkserver SIGKILL, hang
(SIGSTOP 15 s), partition, 5 % packet loss (the MDS must mark the lossy chunkserver slow: a
failed check otherwise) and MDS leader SIGKILL, each under fio verify=crc32c on 2 NBD volumes
plus the numbered-block checker. The cluster runs in the harness's own network namespaces (a
partition is iptables DROP inside the chunkserver's namespace) whenever this machine can create
them; otherwise in the failpoint fallback. Which one was used is printed; when namespaces are
available, the test fails if the harness did not use them.

Asserted for every scenario: zero client-visible errors, verification passes, and the cluster
becomes fully healthy again on its own. The IO-stall target (<= 3 s) is reported as TARGET lines
but not asserted here (it is a performance goal tracked in docs/failure-table.md).
"""

import json
import os
import shutil
import subprocess
import sys

import pytest

from curvetest import build_dir, source_dir, tmp_dir  # noqa: F401 (fixture)

RUN_TIMEOUT_S = 600

for tool in ("nbdkit", "fio", "etcd", "cc"):
    if shutil.which(tool) is None:
        pytest.skip("%s not installed" % tool, allow_module_level=True)


def netns_possible():
    sys.path.insert(0, os.path.join(source_dir(), "tests", "system"))
    try:
        from netns import netns_available
    finally:
        sys.path.pop(0)
    return netns_available()


def test_chaos_quick(tmp_dir):  # noqa: F811
    can_netns, why = netns_possible()
    out = os.path.join(tmp_dir, "chaos.json")
    p = subprocess.run([sys.executable, os.path.join(source_dir(), "tests", "system", "chaos.py"),
                        "--quick", "--build-dir", build_dir(), "--json", out],
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                       timeout=RUN_TIMEOUT_S)
    text = p.stdout.decode(errors="replace")
    if "not found under" in text and "not built" in text:
        pytest.skip("binaries not built: " + text[-300:])
    assert os.path.exists(out), text[-5000:]
    with open(out) as f:
        j = json.load(f)
    res = j["results"]
    print("isolation used: %s" % j["meta"].get("isolation"))
    if can_netns:
        assert j["meta"].get("isolation_mode") == "netns", (j["meta"], text[-3000:])
    else:
        print("network namespaces unavailable here (%s): failpoint fallback" % why)
    names = [r["name"] for r in res]
    assert names == ["cs_kill", "cs_hang", "cs_partition", "cs_loss", "mds_kill"], \
        (names, text[-3000:])
    for r in res:
        assert r["errors"] == 0, (r["name"], r, text[-3000:])
        assert r["verify_ok"], (r["name"], r, text[-3000:])
        assert r["healthy_s"] is not None, (r["name"], "not healthy again", text[-3000:])
        assert r["blkcheck"]["checked"] == 4096 and r["blkcheck"]["bad"] == 0, r["blkcheck"]
        assert r["blkcheck"]["writes"] > 0, r["blkcheck"]
        assert all(v["write_ios"] and v["write_ios"] > 0 for v in r["volumes"]), r["volumes"]
        assert not r["failed_checks"], r


def test_netns_isolation():
    """The harness's namespaces: two nodes talk over the bridge; an iptables DROP inside one
    node's namespace (the harness's partition) cuts them; removing it heals; close() deletes
    every namespace of the run, also one with a process still inside."""
    can_netns, why = netns_possible()
    if not can_netns:
        pytest.skip("network namespaces unavailable: " + why)
    sys.path.insert(0, os.path.join(source_dir(), "tests", "system"))
    try:
        import netns
    finally:
        sys.path.pop(0)
    import socket
    net = netns.Net("netns", log=print)
    try:
        ip_a = net.add_node("cs1")
        net.add_node("cs2")
        assert ip_a.startswith(netns.SUBNET)
        srv = net.call("cs1", lambda: socket.create_server((ip_a, 0)))
        port = srv.getsockname()[1]
        srv.settimeout(5)

        def connect():
            with socket.create_connection((ip_a, port), timeout=1.0):
                return True
        assert net.call("cs2", connect)
        srv.accept()[0].close()
        # the host namespace has no route to the harness's addresses
        with pytest.raises(OSError):
            connect()
        rule = ["INPUT", "-i", "eth0", "-j", "DROP"]
        net.iptables("cs1", ["-I"] + rule)
        with pytest.raises(socket.timeout):
            net.call("cs2", connect)
        net.iptables("cs1", ["-D"] + rule)
        assert net.call("cs2", connect)
        srv.close()
        sleeper = subprocess.Popen(net.wrap("cs2", ["sleep", "60"]))
    finally:
        net.close()
    assert sleeper.wait(timeout=10) != 0  # killed by close()
    assert not [n for n in netns.list_ns() if n.startswith(net.prefix)]
