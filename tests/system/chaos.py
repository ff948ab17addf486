#!/usr/bin/env python3
"""Chaos harness: measures Curve-C's failure table (docs/failure-table.md).

    chaos.py --quick   CI subset: chunkserver kill, hang (shortened), partition, 5 % packet
                       loss; MDS leader kill
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

Cluster (cluster.py): 3 etcd members, 3 MDS, 4 servers with one chunkserver each, started by the
harness. Isolation (netns.py, --isolation): the harness's own network namespaces when they can be
created (a partition is iptables DROP inside the node's namespace), else the failpoint fallback;
the run log, the JSON (meta.isolation) and the table header say which was used.
Everything the harness starts is stopped by PID, iptables rules it adds are removed, its
namespaces and the temporary directory are deleted, also on failure or SIGINT/SIGTERM.
"""

import argparse
import json
import os
import random
import signal
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
    name = "cs_partition"
    stall_target = True
    hold_s, quick_hold_s = 30, 15

    def title_for(self, net):
        if net.netns:
            return "chunkserver partitioned (netns: iptables DROP of all its traffic)"
        return "chunkserver partitioned (failpoints: all its RPC replies and outgoing " \
            "requests dropped)"

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        if ctx.net.netns:  # a real partition: nothing leaves or enters its namespace
            ctx.iptables_add(d.node, ["INPUT", "-i", "eth0", "-j", "DROP"])
            ctx.iptables_add(d.node, ["OUTPUT", "-o", "eth0", "-j", "DROP"])
        else:
            d.failpoint("rpc.server.reply", "return")
            d.failpoint("rpc.channel.send", "return")
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        if not ctx.net.netns:
            ctx.cluster.daemons[st["target"]].failpoints_clear()
        # netns: ctx.cleanup() removes the rules


class CsLoss(Fault):
    name, title = "cs_loss", "5% packet loss on one chunkserver (iptables statistic)"
    latency_target = True
    warmup_s, hold_s, quick_hold_s = 8, 20, 12

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        stat = ["-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP"]
        if ctx.net.netns:  # every packet in or out of its namespace
            ctx.iptables_add(d.node, ["INPUT", "-i", "eth0"] + stat)
            ctx.iptables_add(d.node, ["OUTPUT", "-o", "eth0"] + stat)
        else:  # its RPC address and port in the shared namespace
            ctx.iptables_add(None, ["INPUT", "-p", "tcp", "-d", d.ip, "--dport", str(d.port)] +
                             stat)
            ctx.iptables_add(None, ["OUTPUT", "-p", "tcp", "-s", d.ip, "--sport", str(d.port)] +
                             stat)
        return {"target": d.name, "leaders": counts}

    def heal(self, ctx, st):
        # ctx.cleanup() removes the rules. Still lossy now: the MDS must have marked it slow
        # (loss signal: its peers' TCP retransmissions towards it) and moved its leaders off.
        d = ctx.cluster.daemons[st["target"]]
        try:
            rows = ctx.cluster.jcli("bs", "list", "chunkserver")
            rows = rows if isinstance(rows, list) else rows.get("chunkservers", [])
            row = [r for r in rows if r.get("host") == d.ip and int(r.get("port", 0)) == d.port]
            marked = bool(row and row[0].get("slow"))
        except Exception as e:  # noqa: BLE001 - reported as a failed check
            marked = False
            ctx.notes.append("list chunkserver: %s" % e)
        leads = ctx.cluster.cs_leader_counts().get(d.name)
        ctx.notes.append("%s %s marked slow by the MDS at the end of the fault; it led %s "
                         "copysets then (%s before)" % (d.name, "was" if marked else "was NOT",
                                                        leads, st["leaders"].get(d.name)))
        if not marked:
            ctx.failed_checks.append("lossy chunkserver %s not marked slow" % d.name)


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


class SlowDiskLeader(SlowDisk):
    """The slow disk on the chunkserver leading the most copysets: its leaders must be moved
    off (slow-node detection, docs/mds.md) before the latency recovers."""
    name = "slow_disk_leader"
    title = "slow disk: +50 ms on every chunk write of the busiest leader"

    def inject(self, ctx):
        d, counts = ctx.cluster.busiest_leader()
        d.failpoint("chunkstore.write", "delay(50)")
        return {"target": d.name, "leaders": counts}


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
        for d in ctx.cluster.etcds():
            d.kill()
        return {"target": "etcd (all %d members)" % len(ctx.cluster.etcds())}

    def during(self, ctx, st):
        t = time.monotonic()
        p = ctx.cluster.cli("bs", "create", "volume", "/etcd-down-probe", "--size=%d" % (128 << 20),
                            "--conf=" + ctx.cluster.conf, check=False, timeout=60)
        st["meta_during"] = {"rc": p.returncode, "s": round(time.monotonic() - t, 1),
                             "msg": p.stderr.decode(errors="replace").strip()[-160:]}

    def heal(self, ctx, st):
        for d in ctx.cluster.etcds():
            d.start()

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


class EtcdMemberKill(Fault):
    name, title = "etcd_member_kill", "one etcd member (the etcd raft leader) SIGKILLed, " \
        "restarted after hold"
    stall_target = True
    hold_s = 20

    def inject(self, ctx):
        c = ctx.cluster
        if len(c.etcds()) < 3:
            raise RuntimeError("needs a 3-member etcd (--etcd-members 3)")
        d = c.etcd_leader()
        was_leader = d is not None
        d = d or c.etcds()[0]
        mds = c.mds_leader()
        d.kill()
        return {"target": d.name, "etcd_raft_leader": was_leader,
                "mds_leader": mds.name if mds else None}

    def during(self, ctx, st):
        c = ctx.cluster
        t = time.monotonic()
        try:
            new = wait_until(c.etcd_leader, 15, interval=0.1, what="a new etcd leader")
            ctx.notes.append("new etcd raft leader %s after %.1f s" % (new.name,
                                                                    time.monotonic() - t))
        except TimeoutError as e:
            ctx.failed_checks.append(str(e))

    def heal(self, ctx, st):
        d = ctx.cluster.daemons[st["target"]]
        d.start()
        wait_until(lambda: ctx.cluster.etcd_healthy(d), 60, interval=0.2,
                   what="%s healthy again" % d.name)

    def after(self, ctx, st):
        mds = ctx.cluster.mds_leader()
        ctx.notes.append("killed %s (%s); MDS leader %s before, %s after" % (
            st["target"], "etcd raft leader" if st["etcd_raft_leader"] else "no leader found",
            st["mds_leader"], mds.name if mds else None))


MDS_STOP_BOUND_S = 5.0 + 1.0   # lease TTL (docs/mds-ha.md: stops by p + 4 s) + poll slack


class MdsEtcdPartition(Fault):
    name = "mds_etcd_partition"
    stall_target = True
    hold_s = 20

    def title_for(self, net):
        if net.netns:
            return "MDS leader partitioned from etcd (netns: iptables DROP between its " \
                "namespace and the etcd members)"
        return "MDS leader partitioned from etcd (failpoint etcd.request=return(ECONNREFUSED) " \
            "in its etcd client)"

    def needs(self, cluster):
        if cluster.net.netns or cluster.mds_failpoints:
            return None
        return "needs network namespaces or an MDS with --admin.failpoints (etcd.request)"

    def inject(self, ctx):
        c = ctx.cluster
        d = wait_until(c.mds_leader, 30, interval=0.2, what="MDS leader")
        if ctx.net.netns:
            for e in c.etcds():
                ctx.iptables_add(d.node, ["OUTPUT", "-d", e.ip, "-j", "DROP"])
                ctx.iptables_add(d.node, ["INPUT", "-s", e.ip, "-j", "DROP"])
        else:
            d.failpoint("etcd.request", "return(ECONNREFUSED)")
        return {"target": d.name, "t0": time.monotonic()}

    def during(self, ctx, st):
        """Until the hold ends: when the old leader stops serving (its /status is no longer
        "leader", or it exited), and when another MDS serves as leader."""
        c = ctx.cluster
        old = c.daemons[st["target"]]
        t0, end = st["t0"], st["t0"] + self.hold_s - 1
        stop_s = take_s = None
        while time.monotonic() < end and (stop_s is None or take_s is None):
            if stop_s is None and (not old.alive() or old.role() != "leader"):
                stop_s = time.monotonic() - t0
            if take_s is None:
                new = c.mds_leader()
                if new is not None and new is not old:
                    take_s = time.monotonic() - t0
            time.sleep(0.1)
        st["stop_s"], st["take_s"] = stop_s, take_s
        ctx.notes.append("old leader %s stopped serving after %s s (%s); %s" % (
            old.name, "%.1f" % stop_s if stop_s is not None else "never",
            "exited" if not old.alive() else "role %s" % old.role(),
            "another MDS serving after %.1f s" % take_s if take_s is not None
            else "no other MDS became leader"))
        if stop_s is None or stop_s > MDS_STOP_BOUND_S:
            ctx.failed_checks.append("old MDS leader did not stop within %.0f s" %
                                     MDS_STOP_BOUND_S)
        if take_s is None:
            ctx.failed_checks.append("no other MDS took over within %d s" % self.hold_s)

    def heal(self, ctx, st):
        ctx.cleanup()
        d = ctx.cluster.daemons[st["target"]]
        if not d.alive():  # the supervisor restarts it (it exits on lost leadership)
            d.start()
        elif not ctx.net.netns:
            d.failpoints_clear()


class ServerKill(Fault):
    name, title = "server_kill", "whole server killed (its chunkserver), back after the offline " \
        "time (60 s); replicas rebuilt on the other servers"
    stall_target = True
    hold_s = 70
    REBUILD_TIMEOUT_S = 240

    def inject(self, ctx):
        st = CsKill.inject(self, ctx)
        st["t_kill"] = time.monotonic()
        return st

    def heal(self, ctx, st):
        """Before the server comes back: every copyset must have 3 healthy replicas again on
        the remaining servers (needs >= 4 servers)."""
        c = ctx.cluster
        if len(c.chunkservers()) >= 4:
            try:
                wait_until(c.copysets_healthy, self.REBUILD_TIMEOUT_S, interval=0.5,
                           what="replicas rebuilt elsewhere")
                ctx.notes.append("every copyset had 3 healthy replicas again %.1f s after the "
                                 "kill (offline at 60 s), with %s still down" % (
                                     time.monotonic() - st["t_kill"], st["target"]))
            except TimeoutError:
                ctx.failed_checks.append("replicas not rebuilt elsewhere within %d s of the "
                                         "kill" % (self.REBUILD_TIMEOUT_S + self.hold_s))
        else:
            ctx.notes.append("only %d servers: nowhere to rebuild" % len(c.chunkservers()))
        c.daemons[st["target"]].start()


class NotRun(Fault):
    def __init__(self, name, title, why):
        self.name, self.title, self.why = name, title, why


ALL = [CsKill(), CsHang(), CsPartition(), MdsKill(), CsLoss(), CsDelay(), SlowDisk(),
       SlowDiskLeader(), DiskEio(), DiskFull(), EtcdDown(), EtcdMemberKill(), MdsEtcdPartition(),
       ServerKill()]
QUICK = ["cs_kill", "cs_hang", "cs_partition", "cs_loss", "mds_kill"]
RANDOM_OK = ["cs_kill", "cs_hang", "cs_partition", "cs_delay", "slow_disk", "mds_kill"]


def title_of(f, net):
    return f.title_for(net) if hasattr(f, "title_for") else f.title


# ---- context --------------------------------------------------------------------------------

class Ctx:
    def __init__(self, cluster, quick):
        self.cluster, self.quick = cluster, quick
        self.net = cluster.net
        self.rules = []           # (node, spec): node None = the host namespace
        self.notes = []
        self.failed_checks = []

    def iptables_add(self, node, spec):
        """Inserts an iptables rule in the node's namespace (netns mode) or in the host's
        (node None, failpoint fallback); removed by cleanup() on every exit path."""
        self.rules.append((node, spec))
        try:
            self.net.iptables(node, ["-I"] + spec)
        except Exception:
            self.rules.remove((node, spec))
            raise

    def iptables_del(self, node, spec):
        if (node, spec) in self.rules:
            self.net.iptables(node, ["-D"] + spec, check=False)
            self.rules.remove((node, spec))

    def cleanup(self):
        for node, spec in list(self.rules):
            self.iptables_del(node, spec)


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
    res = {"name": f.name, "title": title_of(f, cluster.net), "tolerated": f.tolerated}
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
            log("%s: not healthy %d s after the heal: %s" % (f.name, HEALTH_TIMEOUT_S,
                                                            cluster.unhealthy_report()))
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
            s = round(r["stall_ms"] / 1000, 1)  # the value printed is the value compared
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
             "Cluster: %s, started by the harness (tests/system/cluster.py). Load per "
             "scenario: fio ioengine=nbd, 4 KiB random writes at QD32 with `verify=crc32c` "
             "(verify backlog) on 2 volumes, plus `blkcheck` (numbered crc32c-checked 4 KiB "
             "blocks, all read back at the end). **Isolation: %s**." % (
                 meta.get("cluster", "?"), meta.get("isolation", "?")), "",
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
            try:
                wait_until(cluster.fully_healthy, HEALTH_TIMEOUT_S, interval=0.25,
                           what="healthy after random round %d" % i)
            except TimeoutError:
                log("round %d: %s not healthy: %s" % (i, "+".join(
                    "%s(%s)" % (f.name, st.get("target")) for f, st in sts),
                    cluster.unhealthy_report()))
                raise
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
    ap.add_argument("--isolation", choices=("auto", "netns", "failpoint"), default="auto",
                    help="netns: the harness's own network namespaces (fails if unavailable); "
                    "failpoint: shared loopback + RPC failpoints; auto (default): netns when "
                    "namespaces can be created")
    ap.add_argument("--chunkservers", type=int, default=4,
                    help="servers (one chunkserver each, one zone each); >= 4 lets "
                    "server_kill rebuild replicas elsewhere")
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
        a.random = a.random or "random" in names  # --only random / scale: just that mode
        a.scale = a.scale or "scale" in names
        names = [n for n in names if n not in ("random", "scale")]
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
    cluster = Cluster(build, log=log, isolation=a.isolation, chunkservers=a.chunkservers)
    exports = None
    results = []

    def on_term(sig, frame):
        raise KeyboardInterrupt("signal %d" % sig)
    signal.signal(signal.SIGTERM, on_term)
    signal.signal(signal.SIGHUP, on_term)
    t_start = time.monotonic()
    try:
        blkcheck = compile_blkcheck(src, build, tmp)
        log("cluster up (%s)" % cluster.dir)
        cluster.up()
        exports = Exports(cluster, tmp, plugin, ["chaosA", "chaosB"])
        log("volumes open: %s" % ", ".join(v["vol"] for v in exports.vols))
        for n in names:
            f = next(x for x in ALL if x.name == n)
            why = getattr(f, "why", None) or (f.needs(cluster) if hasattr(f, "needs")
                                              else None)
            if why:
                results.append({"name": f.name, "title": title_of(f, cluster.net),
                                "skipped": True, "why": why})
                log("%s: not run (%s)" % (f.name, why))
                continue
            log("=== %s: %s" % (f.name, title_of(f, cluster.net)))
            results.append(guarded(f.name, title_of(f, cluster.net), lambda f=f: run_scenario(
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
            "elapsed_s": round(time.monotonic() - t_start),
            "isolation": cluster.net.describe() if cluster.net else "none (no cluster)",
            "isolation_mode": cluster.net.mode if cluster.net else None,
            "no_netns_why": cluster.no_netns_why, "cluster": cluster.describe()}
    log("isolation used: %s" % meta["isolation"])
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
