#!/usr/bin/env python3
"""Chaos harness: measures Curve-C's failure table (docs/failure-table.md).

    chaos.py --quick   CI subset: chunkserver kill, hang (shortened), partition; MDS leader kill
    chaos.py --all     every scenario, then writes docs/failure-table.md
    chaos.py --random  20 rounds of random single/double tolerated faults under load
    options: --build-dir DIR (default $CURVE_BUILD_DIR or build/release), --json FILE (results),
             --table FILE (markdown table; default docs/failure-table.md with --all, none else),
             --only NAME[,NAME] (run these scenarios), --seed N (random mode)

Each scenario: start load (fio verify=crc32c QD32 on 2 volumes + blkcheck), warm up, inject a
fault, hold it, heal it, wait until `curve bs status` shows every copyset healthy (3 replicas),
let the load run a little longer, stop it and verify everything. Measured: the longest IO stall
inside the fault window (fio per-100 ms log, per volume, max over volumes), client-visible
errors (fio + blkcheck), verification (fio verify + blkcheck read-back) and time-to-healthy
after the heal. Ends with TARGET lines. Exit status 0 when every target is met.

Cluster and isolation: see cluster.py (failpoint fallback; no network namespaces are used).
Everything the harness starts is stopped by PID, iptables rules it adds are removed and the
temporary directory is deleted, also on failure or SIGINT/SIGTERM.
"""

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import shutil

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

from cluster import Cluster, find_file, wait_until  # noqa: E402
from load import Exports, Load, compile_blkcheck  # noqa: E402

HEALTH_TIMEOUT_S = 180     # time-to-healthy bound after a heal
DISK_SELF_HEAL_S = 30      # disk faults: wait this long for recovery without a restart
POST_HEAL_S = 3            # load keeps running after health is back
STALL_GOAL_MS = 3000
LAT_GOAL_PCT = 20
CURVE_STALL = {"cs_kill": "4 s", "cs_hang": "4 s", "cs_partition": "4 s (network failure)",
               "mds_kill": "no IO impact", "slow_disk": "no effect", "server_kill": "4 s",
               "disk_eio": "4 s (disk failure)"}
ETCD_DOWN_S = 20


def log(msg):
    print("[chaos %s] %s" % (time.strftime("%H:%M:%S"), msg), flush=True)


# ---- faults ---------------------------------------------------------------------------------
# Each fault: inject(ctx) -> state, heal(ctx, state); ctx has .cluster, .quick, .iptables.

class Fault:
    name = ""
    title = ""
    tolerated = True
    stall_target = False      # IO stall <= STALL_GOAL_MS
    latency_target = False    # fault-window latency within LAT_GOAL_PCT of the warm-up window
    warmup_s = 5
    hold_s = 10
    quick_hold_s = None

    def hold(self, quick):
        return self.quick_hold_s if quick and self.quick_hold_s is not None else self.hold_s


class CsKill(Fault):
    name, title = "cs_kill", "chunkserver SIGKILL (leader of busy copysets), restarted after hold"
    stall_target = True
    hold_s, quick_hold_s = 15, 8

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        d.kill()
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        ctx.cluster.daemons[st["target"]].start()


class CsHang(Fault):
    name, title = "cs_hang", "chunkserver hung (SIGSTOP, then SIGCONT)"
    stall_target = True
    hold_s, quick_hold_s = 60, 15

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        d.signal(signal.SIGSTOP)
        d.stopped = True
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        d = ctx.cluster.daemons[st["target"]]
        d.signal(signal.SIGCONT)
        d.stopped = False


class CsPartition(Fault):
    name, title = "cs_partition", "chunkserver partitioned (failpoints: all its RPC replies " \
        "and outgoing requests dropped)"
    stall_target = True
    hold_s, quick_hold_s = 30, 15

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        d.failpoint("rpc.server.reply", "return")
        d.failpoint("rpc.channel.send", "return")
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        ctx.cluster.daemons[st["target"]].failpoints_clear()


class CsLoss(Fault):
    name, title = "cs_loss", "5% packet loss on one chunkserver (iptables statistic)"
    latency_target = True
    warmup_s, hold_s = 8, 20

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        rules = []
        for chain, match in (("INPUT", "--dport"), ("OUTPUT", "--sport")):
            spec = [chain, "-p", "tcp", "-d" if chain == "INPUT" else "-s", d.ip, match,
                    str(d.port), "-m", "statistic", "--mode", "random", "--probability",
                    "0.05", "-j", "DROP"]
            ctx.iptables_add(spec)
            rules.append(spec)
        return {"target": d.name, "rules": rules}

    def heal(self, ctx, st):
        for spec in st["rules"]:
            ctx.iptables_del(spec)


class CsDelay(Fault):
    name, title = "cs_delay", "+20 ms on every reply of one chunkserver (rpc.server.reply_delay)"
    latency_target = True
    warmup_s, hold_s = 8, 20

    def inject(self, ctx):
        d, counts = ctx.cluster.quietest()
        d.failpoint("rpc.server.reply_delay", "return(20)")
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        ctx.cluster.daemons[st["target"]].failpoints_clear()


class SlowDisk(Fault):
    name, title = "slow_disk", "slow disk: +50 ms on every chunk write of one replica"
    latency_target = True
    warmup_s, hold_s = 8, 20

    def inject(self, ctx):
        d, counts = ctx.cluster.quietest()
        d.failpoint("chunkstore.write", "delay(50)")
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        ctx.cluster.daemons[st["target"]].failpoints_clear()


class DiskEio(Fault):
    name, title = "disk_eio", "disk EIO on one replica (chunk writes, raft log writes)"
    stall_target = True
    hold_s = 20

    def inject(self, ctx):
        d, counts = ctx.cluster.quietest()
        d.failpoint("chunkstore.write", "return(EIO)")
        d.failpoint("raftlog.write", "return(EIO)")
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        """Clears the fault; if the cluster does not become healthy on its own within
        DISK_SELF_HEAL_S, the operator replaces the disk: the chunkserver is restarted."""
        d = ctx.cluster.daemons[st["target"]]
        if d.alive():
            d.failpoints_clear()
            try:
                wait_until(ctx.cluster.fully_healthy, DISK_SELF_HEAL_S, interval=0.5,
                           what="self-healing after the disk fault")
                return
            except TimeoutError:
                ctx.notes.append("not healthy %d s after the disk came back (copysets on %s "
                                 "stay degraded): chunkserver restarted" % (DISK_SELF_HEAL_S,
                                                                            d.name))
                d.kill()
        else:   # a disk failure may stop the chunkserver: the operator replaces the disk
            ctx.notes.append("%s exited on the disk fault; restarted" % d.name)
        d.start()


class DiskFull(Fault):
    name, title = "disk_full", "disk full on one replica (ENOSPC on chunk and log writes)"
    hold_s = 20

    def inject(self, ctx):
        d, counts = ctx.cluster.quietest()
        d.failpoint("chunkstore.write", "return(ENOSPC)")
        d.failpoint("raftlog.write", "return(ENOSPC)")
        d.failpoint("chunkfilepool.get", "return(ENOSPC)")
        return {"target": d.name, "leaders": counts}

    heal = DiskEio.heal


class MdsKill(Fault):
    name, title = "mds_kill", "MDS leader SIGKILL, restarted after hold"
    stall_target = True
    hold_s, quick_hold_s = 15, 8

    def inject(self, ctx):
        d = wait_until(ctx.cluster.mds_leader, 30, interval=0.2, what="MDS leader")
        d.kill()
        return {"target": d.name}

    def heal(self, ctx, st):
        ctx.cluster.daemons[st["target"]].start()


class EtcdDown(Fault):
    name, title = "etcd_down", "all of etcd down for %d s (SIGKILL, restart)" % ETCD_DOWN_S
    stall_target = True
    hold_s = ETCD_DOWN_S

    def inject(self, ctx):
        d = ctx.cluster.etcd()
        d.kill()
        return {"target": d.name}

    def during(self, ctx, st):
        t = time.monotonic()
        p = ctx.cluster.cli("bs", "create", "volume", "/etcd-down-probe", "--size=%d" % (128 << 20),
                            "--conf=" + ctx.cluster.conf, check=False, timeout=60)
        st["meta_during"] = {"rc": p.returncode, "s": round(time.monotonic() - t, 1),
                             "msg": p.stderr.decode(errors="replace").strip()[-160:]}

    def heal(self, ctx, st):
        ctx.cluster.etcd().start()

    def after(self, ctx, st):
        p = ctx.cluster.cli("bs", "create", "volume", "/etcd-down-probe2",
                            "--size=%d" % (128 << 20), "--conf=" + ctx.cluster.conf, check=False,
                            timeout=60)
        st["meta_after"] = {"rc": p.returncode}
        md = st.get("meta_during", {})
        ctx.notes.append("metadata call while etcd down: rc=%s after %ss (%s); after recovery: rc=%s"
                         % (md.get("rc"), md.get("s"), md.get("msg"), p.returncode))
        if md.get("rc", 0) == 0:
            ctx.notes.append("FAIL: metadata call succeeded while etcd was down?")
        if p.returncode != 0:
            ctx.failed_checks.append("metadata call after etcd recovery failed")


class ServerKill(Fault):
    name, title = "server_kill", "whole server killed (its chunkserver), back after the offline " \
        "time (60 s)"
    stall_target = True
    hold_s = 70

    inject = CsKill.inject
    heal = CsKill.heal


class NotRun(Fault):
    def __init__(self, name, title, why):
        self.name, self.title, self.why = name, title, why


ALL = [CsKill(), CsHang(), CsPartition(), MdsKill(), CsLoss(), CsDelay(), SlowDisk(), DiskEio(),
       DiskFull(), EtcdDown(), ServerKill(),
       NotRun("mds_etcd_partition", "MDS leader partitioned from etcd",
              "needs per-MDS network isolation (namespaces) or an etcd-client failpoint; the "
              "MDS etcd client has no failpoint and all MDS share one loopback namespace"),
       NotRun("etcd_member_kill", "one etcd member killed",
              "`curve cluster up` runs a single-member etcd: covered by etcd_down")]
QUICK = ["cs_kill", "cs_hang", "cs_partition", "mds_kill"]
RANDOM_OK = ["cs_kill", "cs_hang", "cs_partition", "cs_delay", "slow_disk", "mds_kill"]


# ---- context --------------------------------------------------------------------------------

class Ctx:
    def __init__(self, cluster, quick):
        self.cluster, self.quick = cluster, quick
        self.rules = []
        self.notes = []
        self.failed_checks = []

    def iptables_add(self, spec):
        subprocess.run(["iptables", "-I"] + spec, check=True, timeout=30)
        self.rules.append(spec)

    def iptables_del(self, spec):
        if spec in self.rules:
            subprocess.run(["iptables", "-D"] + spec, check=False, timeout=30)
            self.rules.remove(spec)

    def cleanup(self):
        for spec in list(self.rules):
            self.iptables_del(spec)


def settle(cluster):
    """Before a scenario: every daemon runs and the cluster is fully healthy."""
    for d in cluster.daemons.values():
        if not d.alive():
            log("restarting %s (not running before the scenario)" % d.name)
            d.start()
    wait_until(cluster.fully_healthy, HEALTH_TIMEOUT_S, interval=0.5,
               what="healthy cluster before the scenario")


def run_scenario(f, cluster, exports, blkcheck, tmp, quick):
    ctx = Ctx(cluster, quick)
    res = {"name": f.name, "title": f.title, "tolerated": f.tolerated}
    settle(cluster)
    load = Load(exports, blkcheck, tmp, f.name)
    load.start()
    fault_from, fault_to = 0, None
    try:
        t_end_warm = time.monotonic() + f.warmup_s
        wait_until(lambda: time.monotonic() >= t_end_warm or not load.alive(), f.warmup_s + 5,
                   interval=0.1, what="warm-up")
        if not load.alive():
            raise RuntimeError("load stopped during warm-up")
        fault_from = load.elapsed_ms()
        st = f.inject(ctx)
        log("%s: injected %s" % (f.name, {k: v for k, v in st.items() if k != "rules"}))
        res["target"] = st.get("target")
        if hasattr(f, "during"):
            f.during(ctx, st)
        t_heal = time.monotonic() + f.hold(quick) - (load.elapsed_ms() - fault_from) / 1000
        wait_until(lambda: time.monotonic() >= t_heal, f.hold(quick) + 5, interval=0.1,
                   what="fault hold")
        healed_at = time.monotonic()
        f.heal(ctx, st)
        ctx.cleanup()
        log("%s: healed after %.1f s" % (f.name, f.hold(quick)))
        try:
            wait_until(cluster.fully_healthy, HEALTH_TIMEOUT_S, interval=0.25,
                       what="healthy after heal")
            res["healthy_s"] = round(time.monotonic() - healed_at, 1)
        except TimeoutError:
            res["healthy_s"] = None
        if hasattr(f, "after"):
            f.after(ctx, st)
        fault_to = load.elapsed_ms()
        t_post = time.monotonic() + POST_HEAL_S
        wait_until(lambda: time.monotonic() >= t_post, POST_HEAL_S + 5, interval=0.1,
                   what="post-heal load")
    finally:
        ctx.cleanup()
        m = load.stop(fault_from, fault_to if fault_to is not None else load.elapsed_ms())
    res.update({"stall_ms": m["stall_ms"], "errors": m["errors"], "verify_ok": m["verify_ok"],
                "lat_base_us": m.get("lat_base_us"), "lat_fault_us": m.get("lat_fault_us"),
                "blkcheck": m["blkcheck"], "volumes": m["volumes"],
                "notes": m["notes"] + ctx.notes, "failed_checks": ctx.failed_checks,
                "hold_s": f.hold(quick)})
    log("%s: stall %.1f s, errors %d, verify %s, healthy after %s s%s" % (
        f.name, m["stall_ms"] / 1000, m["errors"], "ok" if m["verify_ok"] else "FAILED",
        res["healthy_s"], (", latency %.0f -> %.0f us" % (m["lat_base_us"], m["lat_fault_us"])
                           if m.get("lat_base_us") else "")))
    for n in res["notes"]:
        log("  note: " + n)
    return res


def targets(results):
    out = []
    for r in results:
        if r.get("skipped"):
            continue
        n = r["name"]
        f = next((x for x in ALL if x.name == n), None)
        if "scenario completed" in r.get("failed_checks", []):  # harness failure: no numbers
            out.append(("%s_completed" % n, "no", "yes", False))
            continue
        if r.get("tolerated", True):
            out.append(("%s_client_errors" % n, r["errors"], 0, r["errors"] == 0))
            out.append(("%s_verify" % n, "pass" if r["verify_ok"] else "fail", "pass",
                        r["verify_ok"]))
        out.append(("%s_healthy_s" % n, r["healthy_s"], "auto(<=%d)" % HEALTH_TIMEOUT_S,
                    r["healthy_s"] is not None))
        if f is not None and f.stall_target:
            s = r["stall_ms"] / 1000
            out.append(("%s_stall_s" % n, "%.1f" % s, "<=%.1f" % (STALL_GOAL_MS / 1000),
                        s <= STALL_GOAL_MS / 1000))
        if f is not None and f.latency_target and r.get("lat_base_us"):
            pct = 100.0 * (r["lat_fault_us"] / r["lat_base_us"] - 1)
            out.append(("%s_latency_increase_pct" % n, "%.0f" % pct, "<=%d" % LAT_GOAL_PCT,
                        pct <= LAT_GOAL_PCT))
        for c in r.get("failed_checks", []):
            out.append(("%s_check" % n, c, "ok", False))
    return out


def fmt_s(ms):
    return "%.1f s" % (ms / 1000)


def write_table(path, results, meta):
    lines = ["# Failure table (measured by `make chaos`)", "",
             "Generated by `tests/system/chaos.py %s` on %s (%s). Do not edit by hand." % (
                 meta["mode"], meta["date"], meta["host"]), "",
             "Cluster: `curve cluster up` (etcd ×1, MDS ×3, chunkservers ×3 on 127.0.0.1..3, "
             "3 zones, 24 copysets, 4 MiB chunks). Load per scenario: fio ioengine=nbd, 4 KiB "
             "random writes at QD32 with `verify=crc32c` (verify backlog) on 2 volumes, plus "
             "`blkcheck` (numbered crc32c-checked 4 KiB blocks, all read back at the end). "
             "**Isolation: failpoint fallback** (no network namespaces): a partition drops every "
             "RPC reply and outgoing request of one chunkserver (`rpc.server.reply`, "
             "`rpc.channel.send`); packet loss is real (iptables `statistic` on the "
             "chunkserver's address/port).", "",
             "Stall = longest time with zero completed IOs on a volume inside the fault window "
             "(fio log, 100 ms resolution), max over volumes. Time-to-healthy = from the heal "
             "until `curve bs status` shows every copyset healthy with 3 replicas. Latency = "
             "mean completion latency during the fault vs. the warm-up window of the same run.",
             "",
             "| scenario | fault held | stall | Curve | client errors | verification | "
             "time to healthy | latency (warm-up → fault) | notes |",
             "|---|---|---|---|---|---|---|---|---|"]
    for r in results:
        if r.get("skipped"):
            lines.append("| %s | — | not run | %s | — | — | — | — | %s |" % (
                r["title"], CURVE_STALL.get(r["name"], "—"), r["why"]))
            continue
        lat = ("%.1f → %.1f ms" % (r["lat_base_us"] / 1000, r["lat_fault_us"] / 1000)
               if r.get("lat_base_us") and r.get("lat_fault_us") else "—")
        notes = "; ".join([("target " + r["target"]) if r.get("target") else ""] +
                          [" ".join(n.replace("|", "/").split())[:240]
                           for n in r["notes"]]).strip("; ")
        if "scenario completed" in r.get("failed_checks", []):  # the harness failed
            lines.append("| %s | — | not measured | %s | — | — | — | — | %s |" % (
                r["title"], CURVE_STALL.get(r["name"], "—"), notes))
            continue
        lines.append("| %s | %s | %s | %s | %d | %s | %s | %s | %s |" % (
            r["title"], ("%d s" % r["hold_s"]) if r["hold_s"] else "—",
            fmt_s(r["stall_ms"]) if r["name"] != "scale" else "—", CURVE_STALL.get(r["name"], "—"),
            r["errors"], "pass" if r["verify_ok"] else "**FAIL**",
            ("%.1f s" % r["healthy_s"]) if r["healthy_s"] is not None else "**not healthy**",
            lat, notes))
    lines += ["", "## Targets", "", "```"] + ["TARGET %s measured=%s goal=%s %s" % (
        n, v, g, "MET" if ok else "MISSED") for n, v, g, ok in targets(results)] + ["```", ""]
    if meta.get("extra"):
        lines += meta["extra"]
    with open(path, "w") as f:
        f.write("\n".join(lines))


def random_mode(cluster, exports, blkcheck, tmp, rounds, seed):
    """rounds of random single faults (or a double fault of a chunkserver fault plus an MDS
    kill: never two chunkservers of one copyset at once) under one continuous load."""
    rng = random.Random(seed)
    log("random mode: %d rounds, seed %d" % (rounds, seed))
    by = {f.name: f for f in ALL}
    res = {"name": "random", "title": "random: %d rounds of single/double faults (seed %d)" % (
        rounds, seed), "rounds": [], "tolerated": True}
    settle(cluster)
    load = Load(exports, blkcheck, tmp, "random")
    load.start()
    ctx = Ctx(cluster, True)
    healthy_max = 0.0
    try:
        for i in range(rounds):
            names = [rng.choice(RANDOM_OK[:5])]
            if rng.random() < 0.3:
                names.append("mds_kill")
            sts = []
            for n in names:
                sts.append((by[n], by[n].inject(ctx)))
            hold = rng.uniform(3, 10)
            t_heal = time.monotonic() + hold
            wait_until(lambda: time.monotonic() >= t_heal, hold + 5, interval=0.1, what="hold")
            for f, st in sts:
                f.heal(ctx, st)
            ctx.cleanup()
            t = time.monotonic()
            wait_until(cluster.fully_healthy, HEALTH_TIMEOUT_S, interval=0.25,
                       what="healthy after random round %d" % i)
            healthy_max = max(healthy_max, time.monotonic() - t)
            log("round %d: %s held %.1f s, healthy after %.1f s" % (
                i, "+".join("%s(%s)" % (f.name, st.get("target")) for f, st in sts), hold,
                time.monotonic() - t))
            res["rounds"].append(names)
            if not load.alive():
                raise RuntimeError("load stopped in round %d" % i)
    finally:
        ctx.cleanup()
        m = load.stop(0, load.elapsed_ms())
    res.update({"stall_ms": m["stall_ms"], "errors": m["errors"], "verify_ok": m["verify_ok"],
                "healthy_s": round(healthy_max, 1), "notes": m["notes"], "hold_s": 0,
                "failed_checks": [], "blkcheck": m["blkcheck"]})
    log("random: errors %d, verify %s, worst stall %.1f s" % (
        m["errors"], "ok" if m["verify_ok"] else "FAILED", m["stall_ms"] / 1000))
    return res


def guarded(name, title, fn):
    """Runs one scenario; a harness or cluster failure becomes a failed result (the other
    scenarios still run and the table is still written)."""
    try:
        return fn()
    except Exception as e:  # recorded as a failed scenario
        log("%s: scenario failed: %s: %s" % (name, type(e).__name__, str(e)[:500]))
        return {"name": name, "title": title, "tolerated": True, "stall_ms": 0, "errors": 0,
                "verify_ok": False, "healthy_s": None, "hold_s": 0,
                "notes": ["harness: %s: %s" % (type(e).__name__, str(e)[:300])],
                "failed_checks": ["scenario completed"], "blkcheck": {}}


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument("--quick", action="store_true")
    g.add_argument("--all", action="store_true")
    ap.add_argument("--random", action="store_true", help="also run random mode")
    ap.add_argument("--scale", action="store_true",
                    help="finally grow the cluster to 9 chunkservers / ~100 copysets each and "
                    "open 50 volumes")
    ap.add_argument("--rounds", type=int, default=20)
    ap.add_argument("--seed", type=int, default=None)
    ap.add_argument("--only", default="")
    ap.add_argument("--build-dir", default=None)
    ap.add_argument("--json", default=None)
    ap.add_argument("--table", default=None)
    ap.add_argument("--merge", default=None, help="results JSON of an earlier run: its "
                    "scenarios not run now are kept (table of several runs)")
    ap.add_argument("--logs", default=None, help="copy daemon, nbdkit and fio logs here")
    ap.add_argument("--table-from", default=None, help="only rewrite --table from a results "
                    "JSON of an earlier run (no cluster)")
    a = ap.parse_args()
    if a.table_from:
        with open(a.table_from) as f:
            j = json.load(f)
        tl = targets(j["results"])
        for n, v, g_, ok in tl:
            print("TARGET %s measured=%s goal=%s %s" % (n, v, g_, "MET" if ok else "MISSED"))
        if a.table:
            write_table(a.table, j["results"], j["meta"])
        return 0 if all(ok for _, _, _, ok in tl) else 1
    src = os.path.dirname(os.path.dirname(HERE))
    build = a.build_dir or os.environ.get("CURVE_BUILD_DIR") or os.path.join(src, "build",
                                                                             "release")
    build = os.path.abspath(build)
    for tool in ("nbdkit", "fio", "etcd"):
        if shutil.which(tool) is None:
            sys.exit("chaos: %s not installed" % tool)
    plugin = find_file(build, "nbdkit-curve-plugin.so", executable=False)
    if a.only:
        names = a.only.split(",")
    elif a.all:
        names = [f.name for f in ALL]
    elif a.quick or not (a.random or a.scale):
        names = QUICK
    else:
        names = []
    unknown = [n for n in names if n not in {f.name for f in ALL}]
    if unknown:
        sys.exit("chaos: unknown scenario(s) %s" % ",".join(unknown))
    table = a.table or (os.path.join(src, "docs", "failure-table.md") if a.all else None)
    seed = a.seed if a.seed is not None else random.SystemRandom().randrange(1 << 31)

    tmp = tempfile.mkdtemp(prefix="curve-chaos-run-")
    cluster = Cluster(build, log=log)
    exports = None
    results = []

    def on_term(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)
    t_start = time.monotonic()
    try:
        blkcheck = compile_blkcheck(src, build, tmp)
        log("cluster up (%s)" % cluster.dir)
        cluster.up()
        exports = Exports(cluster, tmp, plugin, ["chaosA", "chaosB"])
        log("volumes open: %s" % ", ".join(v["vol"] for v in exports.vols))
        for n in names:
            f = next(x for x in ALL if x.name == n)
            if isinstance(f, NotRun):
                results.append({"name": f.name, "title": f.title, "skipped": True,
                                "why": f.why})
                log("%s: not run (%s)" % (f.name, f.why))
                continue
            log("=== %s: %s" % (f.name, f.title))
            results.append(guarded(f.name, f.title, lambda f=f: run_scenario(
                f, cluster, exports, blkcheck, tmp, a.quick)))
            if results[-1]["errors"] or not results[-1]["verify_ok"]:
                log("%s: client errors or failed scenario: reopening the NBD exports" % f.name)
                try:
                    settle(cluster)
                except TimeoutError as e:
                    log("warning: %s" % e)
                exports = exports.reopen()
        if a.random:
            results.append(guarded("random", "random mode", lambda: random_mode(
                cluster, exports, blkcheck, tmp, a.rounds, seed)))
        if a.scale:
            from scale import run_scale
            results.append(guarded("scale", "scale", lambda: run_scale(
                cluster, tmp, plugin, blkcheck, log)))
    finally:
        if exports is not None:
            exports.close()
        if a.logs:
            os.makedirs(a.logs, exist_ok=True)
            for src_dir in (tmp, os.path.join(cluster.dir, "logs")):
                for n in os.listdir(src_dir) if os.path.isdir(src_dir) else []:
                    if n.endswith(".log") or n.endswith(".json"):
                        shutil.copy(os.path.join(src_dir, n), a.logs)
        cluster.down()
        shutil.rmtree(tmp, ignore_errors=True)
    if a.merge:
        with open(a.merge) as f:
            old = json.load(f)["results"]
        now = {r["name"] for r in results}
        kept = [r for r in old if r["name"] not in now]
        order = [f.name for f in ALL] + ["random", "scale"]
        results = sorted(kept + results, key=lambda r: order.index(r["name"])
                         if r["name"] in order else len(order))
    tl = targets(results)
    for n, v, g_, ok in tl:
        print("TARGET %s measured=%s goal=%s %s" % (n, v, g_, "MET" if ok else "MISSED"),
              flush=True)
    meta = {"mode": "--all" if a.all else ("--quick" if a.quick else " ".join(sys.argv[1:])),
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
            "host": "%d cores" % os.cpu_count(),
            "elapsed_s": round(time.monotonic() - t_start)}
    if a.json:
        with open(a.json, "w") as f:
            json.dump({"meta": meta, "results": results,
                       "targets": [{"name": n, "measured": v, "goal": g_, "met": ok}
                                   for n, v, g_, ok in tl]}, f, indent=1, default=str)
    if table:
        write_table(table, results, meta)
        log("wrote %s" % table)
    log("done in %d s" % meta["elapsed_s"])
    return 0 if all(ok for _, _, _, ok in tl) else 1


if __name__ == "__main__":
    sys.exit(main())
