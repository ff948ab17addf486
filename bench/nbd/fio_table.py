#!/usr/bin/env python3
"""Summarise the fio JSON files of bench/nbd/run.sh: one table row per (job, backend), the
ratios curve/local-file and curve/nbdkit-file, then one TARGET line per goal.

    fio_table.py DIR [--json OUT]

DIR holds `<backend>__<job>.json` (fio --output-format=json), backends `local`, `nbdfile`,
`curve`, jobs as in JOBS below. A missing or unreadable file, or a job fio reports as failed,
makes the row `-` and every TARGET that needs it MISSED (exit status 1); the script never
invents a number. Exit 0 when every file was read (targets may still be MISSED).

Latency is fio's `lat_ns` (submission to completion). For the local write+fdatasync baseline
(fio `fdatasync=1`, one fdatasync after every write) the average latency of one durable write
is the mean write latency plus the mean fdatasync latency, and p99 shows the sum of the two
p99 values (fio keeps no percentile of the sum).
"""
import json
import os
import sys

# (job name, data direction in fio's JSON, human label)
JOBS = [
    ("randwrite_4k_qd1", "write", "4k randwrite QD1"),
    ("randwrite_4k_qd32", "write", "4k randwrite QD32"),
    ("randread_4k_qd1", "read", "4k randread QD1"),
    ("randread_4k_qd32", "read", "4k randread QD32"),
    ("write_1m_qd8", "write", "1m seq write QD8"),
]
BACKENDS = [
    ("local", "local file"),
    ("nbdfile", "nbdkit file"),
    ("curve", "curve (3 cs)"),
]
# (name, job, metric, comparison, goal): metric "lat" = curve avg latency / local avg latency,
# "iops" = curve IOPS / local IOPS.
TARGETS = [
    ("nbd_randwrite_4k_qd1_avg_lat_vs_local_fdatasync", "randwrite_4k_qd1", "lat", "le", 3.0),
    ("nbd_randwrite_4k_qd32_iops_vs_local", "randwrite_4k_qd32", "iops", "ge", 0.20),
    ("nbd_randread_4k_qd32_iops_vs_local", "randread_4k_qd32", "iops", "ge", 0.40),
]
NS_PER_US = 1000.0
P99 = "99.000000"


class FioError(Exception):
    pass


def load(path, direction):
    """One fio result: dict iops, mibps, avg_us, p99_us. Raises FioError on anything odd."""
    try:
        with open(path, encoding="utf-8") as f:
            doc = json.load(f)
    except (OSError, ValueError) as e:
        raise FioError(f"{path}: {e}") from e
    jobs = doc.get("jobs") if isinstance(doc, dict) else None
    if not isinstance(jobs, list) or len(jobs) != 1 or not isinstance(jobs[0], dict):
        raise FioError(f"{path}: expected exactly one job in 'jobs'")
    job = jobs[0]
    if job.get("error", 0) != 0:
        raise FioError(f"{path}: fio reports error {job.get('error')}")
    try:
        d = job[direction]
        ios = int(d["total_ios"])
        iops = float(d["iops"])
        mibps = float(d["bw_bytes"]) / (1 << 20)
        avg = float(d["lat_ns"]["mean"]) / NS_PER_US
        p99 = float(d["lat_ns"]["percentile"][P99]) / NS_PER_US
        sync = job.get("sync") or {}
        # fio leaves sync.total_ios at 0; the number of syncs is lat_ns.N
        sync_ios = int((sync.get("lat_ns") or {}).get("N", 0))
        if sync_ios > 0:
            # fdatasync=1: a durable write costs write + fdatasync
            avg += float(sync["lat_ns"]["mean"]) / NS_PER_US
            p99 += float(sync["lat_ns"]["percentile"][P99]) / NS_PER_US
    except (KeyError, TypeError, ValueError) as e:
        raise FioError(f"{path}: missing or bad field in '{direction}': {e!r}") from e
    if ios <= 0 or iops <= 0:
        raise FioError(f"{path}: no {direction} IO completed")
    return {"iops": iops, "mibps": mibps, "avg_us": avg, "p99_us": p99, "ios": ios,
            "fdatasync": sync_ios > 0}


def fmt(v, spec):
    """v formatted with spec ("9.1f"), or "-" right-aligned to the same width."""
    if v is None:
        return "-".rjust(int(spec.split(".")[0] or 0))
    return format(v, spec)


def ratio(a, b):
    if a is None or b is None or b == 0:
        return None
    return a / b


def main(argv):
    if len(argv) not in (2, 4) or (len(argv) == 4 and argv[2] != "--json"):
        print("usage: fio_table.py DIR [--json OUT]", file=sys.stderr)
        return 2
    d = argv[1]
    res = {}
    errors = 0
    for job, direction, _ in JOBS:
        for b, _ in BACKENDS:
            path = os.path.join(d, f"{b}__{job}.json")
            try:
                res[(b, job)] = load(path, direction)
            except FioError as e:
                print(f"fio_table: {e}", file=sys.stderr)
                res[(b, job)] = None
                errors += 1

    hdr = (f"{'job':<18} {'backend':<13} {'IOPS':>9} {'MiB/s':>8} {'avg_us':>9} {'p99_us':>9}"
           f" {'IOPS/local':>10} {'avg/local':>9} {'IOPS/nbdf':>9} {'avg/nbdf':>8}")
    print(hdr)
    print("-" * len(hdr))
    for job, _, label in JOBS:
        loc = res[("local", job)]
        nbf = res[("nbdfile", job)]
        for b, blabel in BACKENDS:
            r = res[(b, job)]
            g = (lambda k, x=r: None if x is None else x[k])
            rl = (lambda k, base: ratio(g(k), None if base is None else base[k]))
            row = (f"{label:<18} {blabel:<13} {fmt(g('iops'), '9.0f')} {fmt(g('mibps'), '8.1f')}"
                   f" {fmt(g('avg_us'), '9.1f')} {fmt(g('p99_us'), '9.1f')}")
            if b == "local":
                row += f" {'':>10} {'':>9} {'':>9} {'':>8}"
            else:
                row += (f" {fmt(rl('iops', loc), '10.3f')} {fmt(rl('avg_us', loc), '9.3f')}")
                if b == "curve":
                    row += (f" {fmt(rl('iops', nbf), '9.3f')} {fmt(rl('avg_us', nbf), '8.3f')}")
                else:
                    row += f" {'':>9} {'':>8}"
            print(row.rstrip())
    print("(local 4k randwrite QD1 = write + fdatasync after every write (fio fdatasync=1, psync,"
          " buffered): avg and p99 are write + fdatasync; other local jobs: O_DIRECT, io_uring)")

    out = {"results": {f"{b}__{j}": v for (b, j), v in res.items()}, "targets": []}
    missed = 0
    for name, job, metric, op, goal in TARGETS:
        c, loc = res[("curve", job)], res[("local", job)]
        if metric == "lat":
            m = ratio(None if c is None else c["avg_us"], None if loc is None else loc["avg_us"])
        else:
            m = ratio(None if c is None else c["iops"], None if loc is None else loc["iops"])
        met = m is not None and (m <= goal if op == "le" else m >= goal)
        missed += not met
        sign = "<=" if op == "le" else ">="
        print(f"TARGET {name} measured={'-' if m is None else format(m, '.3f')}x goal={sign}{goal:.2f}x "
              f"{'MET' if met else 'MISSED'}")
        out["targets"].append({"name": name, "measured": m, "goal": goal, "op": op, "met": met})
    if len(argv) == 4:
        with open(argv[3], "w", encoding="utf-8") as f:
            json.dump(out, f, indent=1, sort_keys=True)
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
