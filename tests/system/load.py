"""Load generators of the chaos harness.

* `Exports`: one nbdkit (nbdkit-curve-plugin.so) per volume on a unix socket, kept open for the
  whole run (the volumes stay open across scenarios, like a VM's disks).
* `Load`: per scenario, fio (ioengine=nbd, 4 KiB random writes at QD32, verify=crc32c with a
  verify backlog, per-100 ms IOPS and completion-latency logs) on every volume, plus the
  independent numbered-block checker `blkcheck` (tests/system/blkcheck.c) on the first volume,
  in a region fio never touches.
"""

import json
import os
import signal
import subprocess
import time

from cluster import find_file, wait_until

LOG_AVG_MS = 100           # fio log interval (stall resolution)
FIO_QD = 32
FIO_BS = 4096
CHECK_SLOTS = 4096         # blkcheck region: 16 MiB at offset 0
FIO_OFFSET = 16 << 20      # fio region: [16 MiB, 16 MiB + FIO_SIZE)
FIO_SIZE = 64 << 20
VOL_SIZE = 128 << 20
STOP_TIMEOUT_S = 90        # fio / blkcheck must finish (incl. final verification) within this
NBDKIT_START_S = 60
MAX_RUNTIME_S = 3600       # fio time_based upper bound; it is stopped with SIGINT before


def compile_blkcheck(src_dir, build_dir, out_dir):
    """Builds blkcheck with the system compiler against libnbd and curve_common's crc32c."""
    lib = find_file(build_dir, "libcurve_common.a", executable=False)
    exe = os.path.join(out_dir, "blkcheck")
    cmd = [os.environ.get("CC", "cc"), "-std=c11", "-D_GNU_SOURCE", "-O2", "-Wall", "-Wextra",
           "-Werror", "-I" + os.path.join(src_dir, "src"),
           os.path.join(src_dir, "tests", "system", "blkcheck.c"), lib, "-lnbd", "-lisal", "-lm",
           "-o", exe]
    p = subprocess.run(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=120)
    if p.returncode != 0:
        raise RuntimeError("cannot build blkcheck: %s\n%s" % (" ".join(cmd), p.stdout.decode()))
    return exe


class Exports:
    def __init__(self, cluster, tmp, plugin, names, create=True):
        self.cluster, self.tmp, self.plugin, self.names = cluster, tmp, plugin, names
        self.vols = []
        self.procs = []
        for name in names:
            vol = "/" + name
            if create:
                cluster.cli("bs", "create", "volume", vol, "--size=%d" % VOL_SIZE,
                            "--conf=" + cluster.conf)
            for f in (name + ".sock", name + ".pid"):
                if os.path.exists(os.path.join(tmp, f)):
                    os.unlink(os.path.join(tmp, f))
            sock = os.path.join(tmp, name + ".sock")
            pidf = os.path.join(tmp, name + ".pid")
            log = open(os.path.join(tmp, name + ".nbdkit.log"), "a")
            env = dict(os.environ)
            if os.environ.get("CHAOS_CLIENT_LOG_LEVEL"):  # e.g. debug: libcurve in nbdkit only
                env["CURVE_LOG_LEVEL"] = os.environ["CHAOS_CLIENT_LOG_LEVEL"]
            # nbdkit runs in the clients' namespace; its unix socket is reachable from anywhere
            p = subprocess.Popen(cluster.net.wrap("cli", [
                "nbdkit", "-f", "--unix", sock, "--pidfile", pidf, plugin, "volume=" + vol,
                "conf=" + cluster.conf]),
                                 stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                 start_new_session=True, env=env)
            log.close()
            self.procs.append(p)

            def ready(p=p, pidf=pidf):
                if p.poll() is not None:
                    raise RuntimeError("nbdkit for %s exited (see %s.nbdkit.log)" % (vol, name))
                return os.path.exists(pidf)
            wait_until(ready, NBDKIT_START_S, what="nbdkit pidfile for " + vol)
            self.vols.append({"name": name, "vol": vol, "uri": "nbd+unix:///?socket=" + sock})

    def reopen(self):
        """New nbdkit processes for the same volumes (after a scenario broke the old ones)."""
        self.close()
        return Exports(self.cluster, self.tmp, self.plugin, self.names, create=False)

    def close(self):
        for p in self.procs:
            if p.poll() is None:
                p.send_signal(signal.SIGTERM)
                try:
                    p.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    p.kill()
                    p.wait(timeout=10)


def _parse_log(path):
    """[(t_ms, value)] of a fio log (all directions summed per timestamp)."""
    acc = {}
    if not os.path.exists(path):
        return []
    with open(path) as f:
        for line in f:
            parts = [x.strip() for x in line.split(",")]
            if len(parts) < 2:
                continue
            try:
                t, v = int(parts[0]), int(parts[1])
            except ValueError:
                continue
            acc[t] = acc.get(t, 0) + v
    return sorted(acc.items())


def longest_stall_ms(samples, t_from, t_to):
    """Longest time inside [t_from, t_to] (ms since fio start) without a completed IO: the
    largest gap between log windows with a non-zero IO count (a window covers LOG_AVG_MS before
    its timestamp; fio may log zero windows or omit them)."""
    busy = [t for t, v in samples if v > 0 and t_from <= t <= t_to]
    if not busy:
        return t_to - t_from
    gaps = [busy[0] - LOG_AVG_MS - t_from]
    gaps += [b - a - LOG_AVG_MS for a, b in zip(busy, busy[1:])]
    gaps.append(t_to - busy[-1])
    return max(0, max(gaps))


def window_mean(samples, t_from, t_to):
    vals = [v for t, v in samples if t_from <= t <= t_to and v > 0]
    return sum(vals) / len(vals) if vals else None


class Load:
    def __init__(self, exports, blkcheck, tmp, tag):
        self.exports, self.blkcheck, self.tmp, self.tag = exports, blkcheck, tmp, tag
        self.fios = []
        self.check = None
        self.t0 = None

    def start(self):
        self.t0 = time.monotonic()
        for v in self.exports.vols:
            prefix = os.path.join(self.tmp, "%s-%s" % (self.tag, v["name"]))
            out = prefix + ".json"
            argv = ["fio", "--name=" + v["name"], "--ioengine=nbd", "--uri=" + v["uri"],
                    "--rw=randwrite", "--bs=%d" % FIO_BS, "--iodepth=%d" % FIO_QD,
                    "--offset=%d" % FIO_OFFSET, "--size=%d" % FIO_SIZE, "--time_based",
                    "--runtime=%d" % MAX_RUNTIME_S, "--verify=crc32c", "--verify_backlog=4096",
                    "--verify_fatal=1", "--continue_on_error=io",
                    "--write_iops_log=" + prefix, "--write_lat_log=" + prefix,
                    "--log_avg_msec=%d" % LOG_AVG_MS, "--output=" + out,
                    "--output-format=json", "--verify_state_save=0"]
            p = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                                 stdin=subprocess.DEVNULL, start_new_session=True, cwd=self.tmp)
            self.fios.append((v, p, prefix, out))
        v0 = self.exports.vols[0]
        self.check = subprocess.Popen([self.blkcheck, v0["uri"], str(CHECK_SLOTS),
                                       str(MAX_RUNTIME_S)], stdout=subprocess.PIPE,
                                      stderr=subprocess.PIPE, stdin=subprocess.DEVNULL,
                                      start_new_session=True)

    def elapsed_ms(self):
        return int((time.monotonic() - self.t0) * 1000)

    def alive(self):
        return all(p.poll() is None for _, p, _, _ in self.fios) and self.check.poll() is None

    def stop(self, fault_from_ms, fault_to_ms):
        """Stops the load (fio: SIGINT, then its final report; blkcheck: SIGTERM, then its
        read-back of every slot) and returns the measurements of the fault window."""
        end_ms = self.elapsed_ms()
        for _, p, _, _ in self.fios:
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        if self.check.poll() is None:
            self.check.send_signal(signal.SIGTERM)
        res = {"volumes": [], "errors": 0, "verify_ok": True, "notes": []}
        stall = 0
        lat_base, lat_fault = [], []
        for v, p, prefix, out in self.fios:
            try:
                _, err = p.communicate(timeout=STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                p.kill()
                _, err = p.communicate(timeout=10)
                res["notes"].append("fio %s did not stop within %d s" % (v["name"],
                                                                         STOP_TIMEOUT_S))
                res["verify_ok"] = False
            job = {}
            try:
                with open(out) as f:
                    txt = f.read()
                job = json.loads(txt[txt.index("{"):])["jobs"][0]
            except (OSError, ValueError, KeyError, IndexError) as e:
                res["notes"].append("fio %s: no JSON report (%s): %s" % (
                    v["name"], e, err.decode(errors="replace")[-300:]))
                res["verify_ok"] = False
            ferr = int(job.get("total_err", 0) or 0)
            if job.get("error", 0):
                ferr = max(ferr, 1)
                res["notes"].append("fio %s error %s: %s" % (
                    v["name"], job.get("error"), err.decode(errors="replace")[-300:]))
                if job.get("error") == 84 or b"verify" in err:
                    res["verify_ok"] = False
            res["errors"] += ferr
            iops = _parse_log(prefix + "_iops.1.log")
            clat = _parse_log(prefix + "_clat.1.log")
            s = longest_stall_ms(iops, fault_from_ms, min(end_ms, fault_to_ms))
            stall = max(stall, s)
            b = window_mean(clat, 1000, fault_from_ms)
            f_ = window_mean(clat, fault_from_ms, fault_to_ms)
            if b:
                lat_base.append(b)
            if f_:
                lat_fault.append(f_)
            w = job.get("write", {})
            res["volumes"].append({"name": v["name"], "errors": ferr, "stall_ms": s,
                                   "write_ios": w.get("total_ios"),
                                   "verify_reads": job.get("read", {}).get("total_ios"),
                                   "lat_base_us": b / 1000 if b else None,
                                   "lat_fault_us": f_ / 1000 if f_ else None})
        try:
            cout, cerr = self.check.communicate(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            self.check.kill()
            cout, cerr = self.check.communicate(timeout=10)
        try:
            c = json.loads(cout.decode().strip().splitlines()[-1])
        except (ValueError, IndexError):
            c = {"write_errors": 1, "bad": 1, "first_bad": "no report: " +
                 cerr.decode(errors="replace")[-300:]}
        res["blkcheck"] = c
        res["errors"] += int(c.get("write_errors", 0)) + int(c.get("read_errors", 0))
        if c.get("bad", 0) or not c.get("checked"):
            res["verify_ok"] = False
            res["notes"].append("blkcheck: %s" % c)
        res["stall_ms"] = stall
        if lat_base and lat_fault:
            res["lat_base_us"] = sum(lat_base) / len(lat_base) / 1000
            res["lat_fault_us"] = sum(lat_fault) / len(lat_fault) / 1000
        return res
