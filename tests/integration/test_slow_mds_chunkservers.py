"""curve-mds with real curve-chunkserver processes (heartbeats, CreateCopyset, operators).

Topology: zone z1 has two servers (127.0.0.11, 127.0.0.14), z2 and z3 one each; a logical pool
of 8 copysets. Then:
  1. every copyset gets created on its chunkservers and reported healthy (leader, 3 peers);
  2. a z1 chunkserver is SIGKILLed for longer than the offline time: its replicas are rebuilt
     on the other z1 chunkserver and every copyset is back to 3 healthy replicas;
     then the victim comes back: the MDS tells it to recycle the replicas it no longer holds
     (once the membership settled, --recycle-grace), and it moves them to its recycler;
  3. a new chunkserver joins z2: copyset balance moves replicas onto it until the z2 counts
     are within the range, and the z2 chunkserver that gave them up recycles them.
"""
import json
import os
import shutil
import time

import pytest

from curvetest import binary, free_port, procs, tmp_dir, wait_until  # noqa: F401 (fixtures)
import test_mds as h


def have(name):
    try:
        binary(name)
        return True
    except FileNotFoundError:
        return False


pytestmark = pytest.mark.skipif(
    not (have("curve-mds") and have("curve-chunkserver") and shutil.which("etcd")),
    reason="curve-mds, curve-chunkserver or etcd not available")

HOSTS = {"s1": ("z1", "127.0.0.11"), "s2": ("z2", "127.0.0.12"), "s3": ("z3", "127.0.0.13"),
         "s4": ("z1", "127.0.0.14"), "s5": ("z2", "127.0.0.15")}


def start_cs(procs, tmp, host, mds_addr, port=None):
    port = port or free_port()
    d = os.path.join(tmp, "cs-" + host)
    os.makedirs(d, exist_ok=True)
    p = procs.start([binary("curve-chunkserver"), "--data_dir=" + d, "--ip=" + host,
                     "--port=%d" % port, "--admin_port=0", "--mds_addrs=" + mds_addr,
                     "--chunk_size=%d" % h.CHUNK, "--pool.target_files=8",
                     "--pool.reserve_bytes=0", "--pool.min_ready=2",
                     "--heartbeat.interval=300ms"], name="cs-" + host)
    p.wait_for_line(r"listening", timeout=30)
    return p, "%s:%d:0" % (host, port)


def copysets(a):
    return h.ok(h.tool(a, "list-copysets"))["copysets"]


def local_copysets(tmp, host):
    """(copysets the chunkserver on `host` holds, copysets in its recycler) from its data dir."""
    d = os.path.join(tmp, "cs-" + host)
    return [sorted(os.listdir(os.path.join(d, sub))) if os.path.isdir(os.path.join(d, sub))
            else [] for sub in ("copysets", "recycler")]


def wait_recycled(a, tmp, host, cs_id, what):
    """Waits until the chunkserver on `host` holds exactly the copysets the MDS lists it as a
    member of and has recycled at least one; returns (held, recycled) directory names."""
    def settled():
        held, recycled = local_copysets(tmp, host)
        member = sorted(str((c["logical_pool_id"] << 32) | c["copyset_id"]) for c in copysets(a)
                        if cs_id in c["peers"])
        return (held, recycled) if held == member and recycled else None
    return wait_until(settled, 60, interval=0.3, what=what)


def test_recovery_and_rebalance_with_real_chunkservers(procs, tmp_dir):
    try:
        _run(procs, tmp_dir)
    except Exception:
        for p in procs.procs:
            if p.name.startswith("mds"):
                print(p.describe())
                print("\n".join([x for x in p.stderr_lines if "mds:" in x][-80:]))
        raise


def _run(procs, tmp_dir):
    cl = h.MdsCluster(procs, extra=["--offline-time=6s", "--unstable-time=2s",
                                    "--placement-wait=1s", "--balance-interval=1s",
                                    "--recycle-grace=2s"])
    try:
        m = cl.start_mds()
        a = m.wait_leader(20)
        topo = {"physical_pools": [{"name": "pp1"}],
                "zones": [{"name": z, "physical_pool": "pp1"} for z in ("z1", "z2", "z3")],
                "servers": [{"name": s, "zone": z, "host": ip}
                            for s, (z, ip) in sorted(HOSTS.items())],
                "logical_pools": [{"name": "lp1", "physical_pool": "pp1", "replicas": 3,
                                   "copysets": 8}]}
        path = os.path.join(tmp_dir, "topo.json")
        with open(path, "w") as f:
            json.dump(topo, f)
        h.ok(h.tool(a, "apply-topology", path))
        cs = {}
        for s in ("s1", "s2", "s3", "s4"):
            cs[s] = start_cs(procs, tmp_dir, HOSTS[s][1], a)

        # 1. Copysets created on the chunkservers and reported with a leader.
        t0 = time.monotonic()
        wait_until(lambda: h.ok(h.tool(a, "status"))["healthy_copysets"] == 8, 60,
                   interval=0.3, what="8 healthy copysets")
        print("\n8 copysets created and healthy after %.1f s" % (time.monotonic() - t0))
        ids = {c["host"]: c["id"] for c in h.ok(h.tool(a, "list-topology"))["chunkservers"]}
        zone_of = {c["id"]: c["zone"] for c in h.ok(h.tool(a, "list-topology"))["chunkservers"]}
        for c in copysets(a):
            assert len({zone_of[p] for p in c["peers"]}) == 3, c

        # 2. A z1 chunkserver dies for longer than the offline time.
        victim = ids[HOSTS["s1"][1]]
        victim_groups = {str((c["logical_pool_id"] << 32) | c["copyset_id"])
                         for c in copysets(a) if victim in c["peers"]}
        n_victim = len(victim_groups)
        assert n_victim > 0
        cs["s1"][0].kill()
        t1 = time.monotonic()

        def recovered():
            cur = copysets(a)
            return all(c["healthy"] and victim not in c["peers"] and len(c["peers"]) == 3
                       for c in cur)
        try:
            wait_until(recovered, 120, interval=0.5, what="copysets rebuilt without the victim")
        except Exception:
            print(m.proc.describe())
            for s_, (p_, _) in cs.items():
                print(s_, "\n".join(p_.stderr_lines[-15:]))
            raise
        took = time.monotonic() - t1
        print("chunkserver SIGKILL -> %d copysets rebuilt, all healthy after %.1f s "
              "(offline time 6 s)" % (n_victim, took))
        assert took >= 6
        st = h.ok(h.tool(a, "status"))
        assert st["offline"] == 1 and st["healthy_copysets"] == 8, st
        for c in copysets(a):
            assert len({zone_of[p] for p in c["peers"]}) == 3, c

        # The victim comes back (same address): its replicas were rebuilt elsewhere, so the
        # MDS lists them as stale with its newer epoch and the chunkserver recycles them all.
        # (a balance move that was adding a replica to it when it died may have left one more
        # copyset directory than the MDS listed: it is stale the same way)
        held, recycled = local_copysets(tmp_dir, HOSTS["s1"][1])
        assert victim_groups <= set(held) and len(held) <= n_victim + 1 and recycled == [], (
            held, recycled, victim_groups)
        port = int(cs["s1"][1].split(":")[1])
        cs["s1"] = start_cs(procs, tmp_dir, HOSTS["s1"][1], a, port=port)
        t3 = time.monotonic()
        # (balance may already be moving replicas back onto it: it then holds those)
        held, recycled = wait_recycled(a, tmp_dir, HOSTS["s1"][1], victim,
                                       "the returning victim recycled its removed replicas")
        print("returning chunkserver: %d removed replicas recycled after %.1f s, %d held" %
              (len(recycled), time.monotonic() - t3, len(held)))
        wait_until(lambda: any("removed from this chunkserver by the MDS" in x
                               for x in cs["s1"][0].stderr_lines), 30,
                   what="the recycling logged")
        st = h.ok(h.tool(a, "status"))
        assert st["healthy_copysets"] == 8, st

        # 3. A new chunkserver in z2: balance moves replicas onto it.
        cs["s5"] = start_cs(procs, tmp_dir, HOSTS["s5"][1], a)
        t2 = time.monotonic()

        def balanced():
            topo = h.ok(h.tool(a, "list-topology"))["chunkservers"]
            z2 = [c["copysets"] for c in topo if c["zone"] == zone_of[ids[HOSTS["s2"][1]]]
                  and c["state"] == "online"]
            st = h.ok(h.tool(a, "status"))
            return len(z2) == 2 and max(z2) - min(z2) <= 1 and st["healthy_copysets"] == 8 \
                and st["operators"] == 0
        try:
            wait_until(balanced, 120, interval=0.5, what="z2 rebalanced onto the new chunkserver")
        except TimeoutError:
            print(json.dumps(h.ok(h.tool(a, "status"))))
            print(json.dumps(h.ok(h.tool(a, "list-topology"))["chunkservers"]))
            print(json.dumps(copysets(a)))
            raise
        print("new chunkserver -> z2 balanced after %.1f s" % (time.monotonic() - t2))
        # the z2 chunkserver that gave replicas up recycles them; nobody else lost any
        s2_id = ids[HOSTS["s2"][1]]
        _, moved = wait_recycled(a, tmp_dir, HOSTS["s2"][1], s2_id,
                                 "the z2 chunkserver recycled the replicas it gave up")
        print("z2 chunkserver: %d replicas recycled" % len(moved))
        s5_id = next(c["id"] for c in h.ok(h.tool(a, "list-topology"))["chunkservers"]
                     if c["host"] == HOSTS["s5"][1])
        assert local_copysets(tmp_dir, HOSTS["s5"][1])[0] == sorted(
            str((c["logical_pool_id"] << 32) | c["copyset_id"]) for c in copysets(a) if s5_id in c["peers"])
    finally:
        procs.stop_all(kill=True)
        cl.close()
