"""Scale scenario of the chaos harness: 9 chunkservers with ~100 copysets each and 50 volumes
open at once (one nbdkit per volume), every volume written and verified by blkcheck; reports
the RSS of every chunkserver (bounded memory per copyset).

Built on the harness's cluster (cluster.py: 4 chunkservers, 24 copysets): adds servers (one
chunkserver each, round-robin over the zones, each in its own namespace in netns mode) up to 9,
waits for them to register, then adds a logical pool of 300 copysets (9 x 100 / 3 replicas).
"""

import base64
import json
import os
import re
import struct
import subprocess
import time

from cluster import wait_until
from load import Exports

TOTAL_CS = 9
LP2_COPYSETS = 300         # TOTAL_CS x 100 / 3 replicas
VOLUMES = 50
CHECK_SLOTS = 256          # 1 MiB per volume
CHECK_SECONDS = 5
BATCH = 10                 # blkcheck processes at once (2-core machine)
CHECK_TIMEOUT_S = 120      # a blkcheck of CHECK_SLOTS blocks must finish within this
REGISTER_TIMEOUT_S = 120
PLACE_TIMEOUT_S = 300


def rss_kib(pid):
    with open("/proc/%d/status" % pid) as f:
        m = re.search(r"VmRSS:\s+(\d+)", f.read())
        return int(m.group(1)) if m else None


def segment_chunks(value):
    """[(pool, copyset, chunk id)] of an MDS segment record (src/mds/namespace_rules.c
    mds_segment_encode: 32-byte header, 12 bytes per chunk, crc32c)."""
    magic, _ver, _flags, _fid, _off, pool, n = struct.unpack_from("<IHHQQII", value, 0)
    if magic != 0x47534D43:
        return []
    return [(pool,) + struct.unpack_from("<IQ", value, 32 + 12 * i) for i in range(n)]


def pool_state(cluster):
    """{chunkserver: (ready pool files from /metrics or None, chunk files on disk, non-zero
    curve_chunkserver_op_errors_total lines)}."""
    out = {}
    for d in cluster.chunkservers():
        ready, errs = None, []
        try:
            text = d.http("/metrics")
            m = re.search(r"^curve_chunkfilepool_ready_files\S*\s+(\d+)", text, re.M)
            ready = int(m.group(1)) if m else None
            errs = [x for x in text.splitlines() if x.startswith(
                "curve_chunkserver_op_errors_total") and not x.endswith(" 0")]
        except Exception:  # a dead chunkserver has no metrics
            pass
        chunks = sum(1 for _, _, fs in os.walk(os.path.join(cluster.dir, d.name, "copysets"))
                     for n in fs if n.startswith("chunk_"))
        out[d.name] = (ready, chunks, errs)
    return out


def diagnose_hang(cluster, exports, v):
    """A blkcheck hung: records what the client waits for (its slow-IO log lines, the copyset
    of that chunk from the MDS's segment records in etcd and from `bs list copyset`, the
    chunkservers' log lines about that copyset, a gdb backtrace of every nbdkit thread) in
    logs/hang-<volume>.log and returns a one-line summary."""
    i = [x["name"] for x in exports.vols].index(v["name"])
    nbd = exports.procs[i]
    out = os.path.join(cluster.dir, "logs", "hang-%s.log" % v["name"])
    with open(os.path.join(exports.tmp, v["name"] + ".nbdkit.log"), errors="replace") as f:
        lines = f.read().splitlines()
    slow = sorted({(int(a), int(b)) for a, b in (re.findall(
        r"IO on file (\d+) chunk (\d+) slow", "\n".join(lines)))})
    summary = []
    with open(out, "w") as o:
        o.write("== nbdkit log (last 50 lines)\n%s\n" % "\n".join(lines[-50:]))
        e = next(d for d in cluster.etcds() if d.alive())
        rows = None
        for fid, chunk in slow:
            key = "/curve/v1/seg/%d/" % fid
            body = json.dumps({"key": base64.b64encode(key.encode()).decode(),
                               "range_end": base64.b64encode(
                                   key[:-1].encode() + b"0").decode()}).encode()
            kvs = json.loads(e.http("/v3/kv/range", method="POST", data=body, port=e.port,
                                    timeout=5)).get("kvs", [])
            where = [c for kv in kvs for c in segment_chunks(base64.b64decode(kv["value"]))
                     if c[2] == chunk]
            if rows is None:
                rows = cluster.jcli("bs", "list", "copyset")
                rows = rows if isinstance(rows, list) else rows.get("copysets", [])
            for pool, cs, _ in where:
                row = [r for r in rows if int(r.get("logical_pool_id", -1)) == pool and
                       int(r.get("copyset_id", -1)) == cs]
                o.write("== file %d chunk %d: copyset %d.%d: %s\n" % (fid, chunk, pool, cs,
                                                                   json.dumps(row)))
                summary.append("chunk %d in copyset %d.%d %s" % (chunk, pool, cs,
                                                                 json.dumps(row)[:300]))
                pat = "copyset %d.%d" % (pool, cs)
                gid = "copyset %d" % ((pool << 32) | cs)
                for d in cluster.chunkservers():
                    with open(d.log, errors="replace") as f:
                        hits = [x for x in f if pat in x or gid in x]
                    o.write("== %s: %d lines about %s (last 15)\n%s" % (
                        d.name, len(hits), pat, "".join(hits[-15:])))
        o.write("== chunk file pools, chunk files on disk, op errors (/metrics)\n")
        st = pool_state(cluster)
        for n, (ready, chunks, errs) in sorted(st.items()):
            o.write("%s: ready %s, chunk files %d\n%s\n" % (n, ready, chunks, "\n".join(errs)))
        summary.append("pool ready/chunk files: " + ", ".join(
            "%s %s/%d" % (n, r, c) for n, (r, c, _) in sorted(st.items())))
        g = subprocess.run(["gdb", "-p", str(nbd.pid), "-batch", "-ex", "thread apply all bt"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=60,
                           stdin=subprocess.DEVNULL)
        o.write("== gdb nbdkit pid %d\n%s\n" % (nbd.pid, g.stdout.decode(errors="replace")))
    return "%s hung: slow chunks %s; %s (details: logs/%s)" % (
        v["vol"], slow, "; ".join(summary) or "no copyset found", os.path.basename(out))


def run_scale(cluster, tmp, plugin, blkcheck, log):
    res = {"name": "scale", "title": "scale: %d chunkservers, ~100 copysets each, %d volumes "
           "open" % (TOTAL_CS, VOLUMES), "tolerated": True, "notes": [], "failed_checks": [],
           "hold_s": 0, "stall_ms": 0}
    extra = TOTAL_CS - len(cluster.chunkservers())
    if extra > 0:
        cluster.add_chunkservers(extra)
    n_cs = len(cluster.chunkservers())
    wait_until(lambda: (cluster.status() or {}).get("chunkservers", {}).get("online") == n_cs,
               REGISTER_TIMEOUT_S, interval=0.5, what="%d chunkservers online" % n_cs)
    topo = cluster.topo
    want = sum(lp["copysets"] for lp in topo["logical_pools"]) + LP2_COPYSETS
    topo["logical_pools"].append({"name": "chaos-lp2", "physical_pool":
                                  topo["logical_pools"][0]["physical_pool"], "replicas": 3,
                                  "copysets": LP2_COPYSETS})
    t = time.monotonic()
    cluster.apply_topology()

    def placed():
        st = cluster.status() or {}
        c = st.get("copysets", {})
        return c.get("total", 0) >= want and c.get("healthy") == c.get("total")
    try:
        wait_until(placed, PLACE_TIMEOUT_S, interval=1, what="%d healthy copysets" % want)
        res["healthy_s"] = round(time.monotonic() - t, 1)
    except TimeoutError as e:
        res["healthy_s"] = None
        res["notes"].append(str(e) + ": " + json.dumps((cluster.status() or {}).get("copysets")))
    per_cs = {}
    try:
        rows = cluster.jcli("bs", "list", "chunkserver")
        rows = rows if isinstance(rows, list) else rows.get("chunkservers", [])
        for r in rows:
            per_cs[str(r.get("id"))] = r.get("copysets")
    except Exception as e:  # the listing is informative only
        res["notes"].append("list chunkserver: %s" % e)
    t = time.monotonic()
    exports = Exports(cluster, tmp, plugin, ["scale%02d" % i for i in range(VOLUMES)])
    res["open_s"] = round(time.monotonic() - t, 1)
    errors, bad, checked = 0, 0, 0
    hung = []
    try:
        vols = list(exports.vols)
        while vols:
            batch, vols = vols[:BATCH], vols[BATCH:]
            ps = [subprocess.Popen([blkcheck, v["uri"], str(CHECK_SLOTS), str(CHECK_SECONDS)],
                                   stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                                   stdin=subprocess.DEVNULL) for v in batch]
            deadline = time.monotonic() + CHECK_SECONDS + CHECK_TIMEOUT_S
            for v, p in zip(batch, ps):
                try:
                    out, err = p.communicate(timeout=max(1, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    try:
                        res["notes"].append(diagnose_hang(cluster, exports, v))
                    except Exception as e:  # diagnostics must not hide the hang itself
                        res["notes"].append("%s: diagnostics failed: %s" % (v["vol"], e))
                    p.kill()
                    out, err = p.communicate(timeout=10)
                    hung.append(v["vol"])
                try:
                    c = json.loads(out.decode().strip().splitlines()[-1])
                except (ValueError, IndexError):
                    c = {"write_errors": 1, "bad": 0}
                    res["notes"].append("%s: blkcheck gave no report (%s)" % (
                        v["vol"], "hung > %d s" % (CHECK_SECONDS + CHECK_TIMEOUT_S)
                        if v["vol"] in hung else err.decode(errors="replace")[-200:]))
                errors += c.get("write_errors", 0) + c.get("read_errors", 0)
                bad += c.get("bad", 0)
                checked += c.get("checked", 0)
        rss = {d.name: rss_kib(d.pid) for d in cluster.chunkservers() if d.alive()}
        pools = pool_state(cluster)
    finally:
        exports.close()
    if hung:
        res["failed_checks"].append("IO hung on %d volume(s): %s" % (len(hung), ", ".join(hung)))
    res.update({"errors": errors, "verify_ok": bad == 0 and checked == VOLUMES * CHECK_SLOTS,
                "rss_kib": rss, "copysets_per_cs": per_cs, "checked": checked})
    res["notes"].append("RSS per chunkserver (MiB): " + ", ".join(
        "%s %.0f" % (n, v / 1024.0) for n, v in sorted(rss.items()) if v))
    res["notes"].append("chunk file pool ready/chunk files per chunkserver: " + ", ".join(
        "%s %s/%d" % (n, r, c) for n, (r, c, _) in sorted(pools.items())))
    res["notes"].append("copysets per chunkserver id: " + ", ".join(
        "%s:%s" % kv for kv in sorted(per_cs.items())))
    res["notes"].append("%d volumes opened in %.1f s, %d blocks verified" % (
        VOLUMES, res["open_s"], checked))
    log("scale: %d volumes open in %s s, errors %d, bad %d, RSS (KiB) %s, copysets per cs %s"
        % (VOLUMES, res["open_s"], errors, bad, rss, per_cs))
    return res
