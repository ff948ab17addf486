"""Registration and heartbeat of curve-chunkserver against a fake MDS written here (RPC frames
of docs/rpc.md and protobuf wire format by hand, proto/heartbeat.proto service 30): the
chunkserver registers once (id + token persisted in chunkserver.dat), reports its copysets and
disk state, and runs the operators the MDS returns for copysets it leads."""

import os
import socket
import struct
import threading

from curvetest import procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
from test_chunkserver import POOL, COPYSET, CsCluster, http

HB_SERVICE = 30
TRANSFER_LEADER = 4


def crc32c(data):
    crc = 0xFFFFFFFF
    for byte in data:
        crc ^= byte
        for _ in range(8):
            crc = (crc >> 1) ^ (0x82F63B78 if crc & 1 else 0)
    return crc ^ 0xFFFFFFFF


def varint(v):
    out = bytearray()
    while True:
        b = v & 0x7F
        v >>= 7
        if v:
            out.append(b | 0x80)
        else:
            out.append(b)
            return bytes(out)


def pb_field(no, value):
    if isinstance(value, (bytes, str)):
        value = value.encode() if isinstance(value, str) else value
        return varint(no << 3 | 2) + varint(len(value)) + value
    return varint(no << 3) + varint(value)


def pb_decode(buf):
    """{field number: [values]} with varints as int and length-delimited as bytes."""
    out, i = {}, 0
    while i < len(buf):
        key, i = read_varint(buf, i)
        no, wt = key >> 3, key & 7
        if wt == 0:
            v, i = read_varint(buf, i)
        elif wt == 2:
            n, i = read_varint(buf, i)
            v, i = buf[i:i + n], i + n
        elif wt == 1:
            v, i = buf[i:i + 8], i + 8
        elif wt == 5:
            v, i = buf[i:i + 4], i + 4
        else:
            raise ValueError("wire type %d" % wt)
        out.setdefault(no, []).append(v)
    return out


def read_varint(buf, i):
    v = shift = 0
    while True:
        b = buf[i]
        i += 1
        v |= (b & 0x7F) << shift
        shift += 7
        if not b & 0x80:
            return v, i


class FakeMds:
    """Answers RegisterChunkServer (ids from 1) and Heartbeat; records every request; returns
    the operators queued with queue_op() to the chunkserver they are meant for."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(16)
        self.addr = "127.0.0.1:%d" % self.sock.getsockname()[1]
        self.lock = threading.Lock()
        self.registers = []   # (ip, port, disk_path)
        self.heartbeats = []  # decoded HeartbeatRequest dicts
        self.ops = {}         # chunkserver "ip:port" -> list of encoded Operator
        self.stale = {}       # chunkserver "ip:port" -> list of encoded CopysetInfo
        self.next_id = 1
        self.stopped = False
        self.threads = [threading.Thread(target=self.accept_loop, daemon=True)]
        self.threads[0].start()

    def stop(self):
        self.stopped = True
        self.sock.close()

    def accept_loop(self):
        while not self.stopped:
            try:
                c, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self.serve, args=(c,), daemon=True).start()

    def serve(self, c):
        try:
            while True:
                hdr = recv_exact(c, 48)
                if hdr is None:
                    return
                (magic, ver, typ, flags, corr, svc, method, status, blen, alen, tmo, _res,
                 crc) = struct.unpack("<4sBBHQIIiIIIII", hdr)
                assert magic == b"CRVR" and crc == crc32c(hdr[:44])
                body = recv_exact(c, blen) if blen else b""
                if alen:
                    recv_exact(c, alen)
                resp = self.handle(svc, method, pb_decode(body))
                h = struct.pack("<4sBBHQIIiIIII", b"CRVR", 1, 2, 0, corr, svc, method, 0,
                                len(resp), 0, 0, 0)
                c.sendall(h + struct.pack("<I", crc32c(h)) + resp)
        except (OSError, AssertionError):
            return
        finally:
            c.close()

    def handle(self, svc, method, req):
        assert svc == HB_SERVICE
        with self.lock:
            if method == 1:
                ip, port = req[1][0].decode(), req[2][0]
                self.registers.append((ip, port, req[3][0].decode()))
                cid = self.next_id
                self.next_id += 1
                return pb_field(1, 0) + pb_field(2, cid) + pb_field(3, "token-%d" % cid)
            hb = {"id": req[1][0], "token": req[2][0].decode(),
                  "addr": "%s:%d" % (req[3][0].decode(), req[4][0]),
                  "capacity": req[5][0], "disk": pb_decode(req[7][0]),
                  "copysets": [pb_decode(x) for x in req.get(10, [])]}
            self.heartbeats.append(hb)
            ops = self.ops.pop(hb["addr"], [])
            stale = self.stale.pop(hb["addr"], [])
            return (pb_field(1, 0) + b"".join(pb_field(2, op) for op in ops) +
                    b"".join(pb_field(4, c) for c in stale))

    def queue_op(self, addr, typ, peer, epoch):
        op = (pb_field(1, POOL) + pb_field(2, COPYSET) + pb_field(3, typ) + pb_field(4, epoch) +
              pb_field(5, peer))
        with self.lock:
            self.ops.setdefault(addr, []).append(op)

    def queue_stale(self, addr, epoch):
        info = pb_field(1, POOL) + pb_field(2, COPYSET) + pb_field(6, 0) + pb_field(7, epoch)
        with self.lock:
            self.stale.setdefault(addr, []).append(info)

    def last_hb(self, addr):
        with self.lock:
            for hb in reversed(self.heartbeats):
                if hb["addr"] == addr:
                    return hb
        return None


def recv_exact(c, n):
    buf = b""
    while len(buf) < n:
        d = c.recv(n - len(buf))
        if not d:
            return None
        buf += d
    return buf


def test_register_heartbeat_operators(procs, tmp_dir):
    mds = FakeMds()
    try:
        run(procs, tmp_dir, mds)
    finally:
        mds.stop()


def run(procs, tmp_dir, mds):
    extra = ["--mds-addrs=127.0.0.1:1," + mds.addr, "--heartbeat.interval=100ms",
             "--heartbeat.timeout=500ms"]
    cl = CsCluster(procs, tmp_dir, extra=extra)
    # each registers once (the first, dead address is skipped) and persists its id
    wait_until(lambda: all(mds.last_hb(c.addr) for c in cl.cs), 30, what="heartbeats")
    with mds.lock:
        assert sorted(p for _, p, _ in mds.registers) == sorted(c.port for c in cl.cs)
    ids = {}
    for c in cl.cs:
        hb = mds.last_hb(c.addr)
        assert hb["token"] == "token-%d" % hb["id"] and hb["capacity"] > 0, hb
        assert hb["disk"][1] == [0], hb  # not failed
        ids[c.addr] = hb["id"]
        assert os.path.getsize(os.path.join(c.dir, "chunkserver.dat")) > 0
        assert c.status()["heartbeat"]["chunkserver_id"] == hb["id"]
    # copysets appear in the reports with peers, leader, term and epoch
    leader = cl.create_copyset()

    def reported():
        hb = mds.last_hb(leader.addr)
        if not hb or not hb["copysets"]:
            return None
        cs = hb["copysets"][0]
        return cs if cs.get(8) == [1] else None
    cs = wait_until(reported, 30, what="the leader reporting its copyset")
    assert cs[1] == [POOL] and cs[2] == [COPYSET]
    assert sorted(p.decode() for p in cs[3]) == sorted(c.addr + ":0" for c in cl.cs)
    assert cs[5] == [(leader.addr + ":0").encode()] and cs[6][0] >= 1 and cs[7][0] >= 1
    # an operator for the leader: transfer leadership
    target = [c for c in cl.cs if c is not leader][0]
    mds.queue_op(leader.addr, TRANSFER_LEADER, target.addr + ":0", cs[7][0])
    new = cl.wait_leader(exclude=leader)
    assert new is target

    def change_reported():
        with mds.lock:
            for hb in mds.heartbeats:
                for c in hb["copysets"]:
                    if hb["addr"] == leader.addr and c.get(13) == [2]:  # CHANGE_DONE
                        return c
        return None
    c = wait_until(change_reported, 30, what="the operator reported done")
    assert c[11] == [TRANSFER_LEADER] and c[12] == [(target.addr + ":0").encode()], c
    # a restart keeps the id: no second registration
    with mds.lock:
        nreg = len(mds.registers)
    assert target.proc.stop() == 0
    with mds.lock:
        nhb = len(mds.heartbeats)
    target.restart()
    wait_until(lambda: len([h for h in mds.heartbeats[nhb:] if h["addr"] == target.addr]) > 0,
               30, what="heartbeat after restart")
    with mds.lock:
        assert len(mds.registers) == nreg
    assert mds.last_hb(target.addr)["id"] == ids[target.addr]
    # a disk failure is reported in the heartbeat
    ldr = cl.wait_leader()
    victim = [c for c in cl.cs if c is not ldr][0]
    code, body = http("http://127.0.0.1:%d/failpoint?name=chunkstore.write&action=return(EIO)"
                      % victim.admin, data=b"")
    assert code == 200, body
    r = cl.io(ldr, "write", 1, 0, 4096, "--seed=1")
    assert r["status"] == "SUCCESS", r
    wait_until(lambda: mds.last_hb(victim.addr)["disk"].get(1) == [1], 30,
               what="disk failure in the heartbeat")
    # stale copysets: epoch 0 (unknown to the MDS) is kept; a newer MDS epoch removes it
    ldr = cl.wait_leader()
    victim = [c for c in cl.cs if c is not ldr][1]

    def list_stale_unknown():
        """The MDS lists the victim's copyset as stale with epoch 0; 3 heartbeats later."""
        with mds.lock:
            nhb = len(mds.heartbeats)
        mds.queue_stale(victim.addr, 0)
        wait_until(lambda: len([h for h in mds.heartbeats[nhb:] if h["addr"] == victim.addr])
                   >= 3, 30, what="heartbeats after a stale entry")

    list_stale_unknown()
    assert victim.copyset() is not None
    # listed again: kept again, counted, but warned about only once (not every heartbeat)
    list_stale_unknown()
    assert victim.copyset() is not None
    assert victim.status()["heartbeat"]["stale_copysets_kept"] == 2, victim.status()["heartbeat"]
    warned = [x for x in victim.proc.stderr_lines if "as stale" in x]
    assert len(warned) == 1, warned
    epoch = victim.copyset()["epoch"]
    # a newer MDS epoch, but the replica still follows a leader (so it is a member, whatever
    # the MDS's view): kept, and said so
    assert victim.copyset()["leader"] != ""
    with mds.lock:
        nhb = len(mds.heartbeats)
    mds.queue_stale(victim.addr, epoch + 1)
    wait_until(lambda: len([h for h in mds.heartbeats[nhb:] if h["addr"] == victim.addr]) >= 3,
               30, what="heartbeats after a stale entry with a newer epoch")
    assert victim.copyset() is not None
    assert any("hears a leader" in x for x in victim.proc.stderr_lines)
    # the other replicas gone (as for a removed replica, no leader replicates to it): recycled
    for c in cl.cs:
        if c is not victim:
            assert c.proc.stop() == 0
    wait_until(lambda: victim.copyset()["leader"] == "", 30, what="the victim without leader")
    mds.queue_stale(victim.addr, epoch + 1)
    # the copyset leaves the table first, then its group stops and its directory is moved
    recycler = os.path.join(victim.dir, "recycler")
    wait_until(lambda: victim.copyset() is None and os.path.isdir(recycler) and
               os.listdir(recycler), 30, what="the stale copyset removed to the recycler")
    # a damaged chunkserver.dat is refused at start with a clear error
    assert victim.proc.stop() == 0
    dat = os.path.join(cl.cs[0].dir, "chunkserver.dat")
    with open(dat, "r+b") as f:
        f.seek(9)
        b = f.read(1)
        f.seek(9)
        f.write(bytes([b[0] ^ 0xFF]))
    p = procs.start(cl.cs[0].proc.args, name="cs-bad-dat")
    assert p.wait(timeout=30) != 0
    assert any("chunkserver.dat" in line for line in p.stderr_lines), p.describe()
