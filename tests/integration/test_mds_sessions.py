"""Volume sessions at process level (docs/sessions.md): a second read-write open of a volume
fails with -EBUSY while another session is its current writer, unless exclusive; read-only
opens are always allowed; once the writer closes or its session expires, the open succeeds.

Real etcd + one curve-mds (no chunkservers: opening needs only the MDS). Driven through
curve-mds-tool (the raw RPC, with and without an opener token) and through libcurve.so itself
(ctypes: curve_open / curve_close with CURVE_OPEN_RDONLY / CURVE_OPEN_EXCLUSIVE).
"""
import ctypes
import errno
import os
import threading
import time
import urllib.request

import pytest

from curvetest import binary, procs, wait_until  # noqa: F401 (fixtures)
from test_mds import SEG, MdsCluster, err, ok, tool

WRITER_PREFIX = "/curve/v1/writer/"
SESSION_PREFIX = "/curve/v1/session/"
LEASE_S = 3  # MdsCluster runs the MDS with --session-lease=3s


@pytest.fixture
def mds(procs):
    c = MdsCluster(procs)
    try:
        m = c.start_mds()
        m.wait_leader(20)
        c.addr = m.addr
        yield c
    finally:
        procs.stop_all(kill=True)
        c.close()


def sessions(c, fid):
    return c.etcd.get_prefix("%s%d/" % (SESSION_PREFIX, fid))


def writer(c, fid):
    return c.etcd.get_prefix("%s%d" % (WRITER_PREFIX, fid))


def test_second_rw_open_busy_raw(mds):
    a = mds.addr
    v = ok(tool(a, "create", "/v", SEG))
    fid = v["id"]
    s1 = ok(tool(a, "open", "/v", "token=aaaa"))
    assert s1["file"]["epoch"] == v["epoch"] + 1  # a read-write open takes the epoch
    assert len(writer(mds, fid)) == 1
    # another opener, read-write: refused, the message names the holder
    r = err(tool(a, "open", "/v", "token=bbbb"), "EBUSY")
    assert s1["session_id"] in r["message"], r
    err(tool(a, "open", "/v"), "EBUSY")  # no token (old clients): refused too
    # read-only opens are allowed and do not become the writer
    ro = ok(tool(a, "open", "/v", "readonly", "token=cccc"))
    assert ro["file"]["epoch"] == s1["file"]["epoch"]
    err(tool(a, "open", "/v", "exclusive", "readonly"), "EINVAL")
    # the same opener again (its answer was lost): takes its own record over, ends the orphan
    s1b = ok(tool(a, "open", "/v", "token=aaaa"))
    assert s1b["session_id"] != s1["session_id"]
    err(tool(a, "refresh", "/v", s1["session_id"]), "CURVE_ERR_SESSION_EXPIRED")
    ok(tool(a, "refresh", "/v", s1b["session_id"]))
    assert len(sessions(mds, fid)) == 2  # s1b and the read-only one
    # exclusive: allowed, bumps the epoch, becomes the writer
    ex = ok(tool(a, "open", "/v", "exclusive", "token=dddd"))
    assert ex["file"]["epoch"] == s1b["file"]["epoch"] + 1
    err(tool(a, "open", "/v", "token=eeee"), "EBUSY")
    err(tool(a, "open", "/v", "token=aaaa"), "EBUSY")  # the fenced writer cannot come back
    # the writer closes: the next read-write open succeeds (even with the old, fenced one open)
    ok(tool(a, "close", "/v", ex["session_id"]))
    assert writer(mds, fid) == []
    s2 = ok(tool(a, "open", "/v", "token=ffff"))
    # a writer that stops refreshing loses the volume with its lease
    wait_until(lambda: writer(mds, fid) == [], 5 * LEASE_S, interval=0.1,
               what="the writer record expiring with its session")
    err(tool(a, "refresh", "/v", s2["session_id"]), "CURVE_ERR_SESSION_EXPIRED")
    # a re-open of an expired session keeps the epoch (the client checks it is still its own)
    s3 = ok(tool(a, "open", "/v", "reopen", "token=ffff"))
    assert s3["file"]["epoch"] == s2["file"]["epoch"]
    err(tool(a, "open", "/v", "reopen", "token=gggg"), "EBUSY")  # still exclusive of others
    ok(tool(a, "close", "/v", s3["session_id"]))
    s4 = ok(tool(a, "open", "/v", "token=gggg"))
    assert s4["file"]["epoch"] == s3["file"]["epoch"] + 1
    m = mds.mds[0]
    text = urllib.request.urlopen("http://127.0.0.1:%d/metrics" % m.admin_port,
                                  timeout=5).read().decode()
    busy = [line for line in text.splitlines() if line.startswith("mds_open_busy_total")]
    assert busy and float(busy[0].split()[-1]) == 5.0, busy


def test_racing_rw_opens_one_wins(mds):
    """Openers racing for the same volume: the writer check is part of the open's txn, so
    exactly one of them wins each round."""
    a = mds.addr
    N = 6
    for rnd in range(3):
        path = "/race%d" % rnd
        fid = ok(tool(a, "create", path, SEG))["id"]
        res = [None] * N
        barrier = threading.Barrier(N)

        def opener(i):
            barrier.wait()
            res[i] = tool(a, "open", path, "token=t%d" % i)
        ts = [threading.Thread(target=opener, args=(i,)) for i in range(N)]
        for t in ts:
            t.start()
        for t in ts:
            t.join(60)
        won = [r for r in res if r and r["ok"]]
        busy = [r for r in res if r and not r["ok"] and r["error"] == "EBUSY"]
        assert len(won) == 1 and len(busy) == N - 1, res
        assert len(sessions(mds, fid)) == 1
        assert len(writer(mds, fid)) == 1


# ---- through libcurve.so -------------------------------------------------------------------

OPEN_RDONLY, OPEN_EXCLUSIVE = 1, 2


def load_libcurve():
    path = os.path.join(os.path.dirname(binary("curve-io-check")), "libcurve.so")
    with open(path, "rb") as f:
        if b"__asan_init" in f.read():
            pytest.skip("libcurve.so is built with sanitizers: not loadable into python")
    lib = ctypes.CDLL(path)
    lib.curve_client_init.argtypes = [ctypes.c_char_p, ctypes.POINTER(ctypes.c_char_p),
                                      ctypes.POINTER(ctypes.c_void_p)]
    lib.curve_client_destroy.argtypes = [ctypes.c_void_p]
    lib.curve_open.argtypes = [ctypes.c_void_p, ctypes.c_char_p, ctypes.c_uint,
                               ctypes.POINTER(ctypes.c_void_p)]
    lib.curve_close.argtypes = [ctypes.c_void_p]
    lib.curve_strerror.restype = ctypes.c_char_p
    return lib


class Client:
    def __init__(self, lib, addr):
        self.lib = lib
        kv = [b"mds.addrs=" + addr.encode(), b"client.log_level=error", None]
        arr = (ctypes.c_char_p * len(kv))(*kv)
        self.c = ctypes.c_void_p()
        assert lib.curve_client_init(None, arr, ctypes.byref(self.c)) == 0

    def open(self, path, flags=0):
        v = ctypes.c_void_p()
        rc = self.lib.curve_open(self.c, path.encode(), flags, ctypes.byref(v))
        return rc, v

    def close(self, v):
        return self.lib.curve_close(v)

    def destroy(self):
        assert self.lib.curve_client_destroy(self.c) == 0


def test_libcurve_open_busy(mds):
    lib = load_libcurve()
    a = mds.addr
    fid = ok(tool(a, "create", "/lv", SEG))["id"]
    c1, c2 = Client(lib, a), Client(lib, a)
    try:
        rc, w1 = c1.open("/lv")
        assert rc == 0
        rc, _ = c2.open("/lv")
        assert rc == -errno.EBUSY, lib.curve_strerror(rc)
        rc, r2 = c2.open("/lv", OPEN_RDONLY)
        assert rc == 0
        # the writer's session is refreshed by c1's timer: still busy across two leases
        # (without refreshes its lease would run out within one)
        end = time.monotonic() + 2 * LEASE_S
        while time.monotonic() < end:
            rc, _ = c2.open("/lv")
            assert rc == -errno.EBUSY, lib.curve_strerror(rc)
        assert len(writer(mds, fid)) == 1
        assert c1.close(w1) == 0
        rc, w2 = c2.open("/lv")
        assert rc == 0, lib.curve_strerror(rc)
        # exclusive takes over from a live writer
        rc, w3 = c1.open("/lv", OPEN_EXCLUSIVE)
        assert rc == 0
        assert c2.close(r2) == 0
        assert c1.close(w3) == 0
        c2.close(w2)  # fenced by the exclusive open (CURVE_ERR_FENCED or 0): either is fine
    finally:
        c1.destroy()
        c2.destroy()
