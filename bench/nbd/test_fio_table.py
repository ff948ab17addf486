"""Tests of bench/nbd/fio_table.py on synthetic fio JSON: numbers, ratios, the TARGET lines,
the write+fdatasync baseline, and bad input (missing, failed, garbage) never crashing it and
never producing a number."""
import json
import os
import subprocess
import sys

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
TABLE = os.path.join(HERE, "fio_table.py")
JOBS = {"randwrite_4k_qd1": "write", "randwrite_4k_qd32": "write", "randread_4k_qd1": "read",
        "randread_4k_qd32": "read", "write_1m_qd8": "write"}


def fio_doc(direction, iops, lat_us, p99_us, sync_us=None, error=0):
    lat = {"mean": lat_us * 1000.0, "N": 100, "percentile": {"99.000000": p99_us * 1000}}
    d = {"total_ios": 100, "iops": iops, "bw_bytes": iops * 4096, "lat_ns": lat}
    other = "read" if direction == "write" else "write"
    job = {"jobname": "j", "error": error, direction: d,
           other: {"total_ios": 0, "iops": 0, "bw_bytes": 0, "lat_ns": {"mean": 0, "N": 0}},
           "sync": {"total_ios": 0, "lat_ns": {"mean": 0.0, "N": 0}}}
    if sync_us is not None:
        job["sync"] = {"total_ios": 0, "lat_ns": {"mean": sync_us * 1000.0, "N": 100,
                                                  "percentile": {"99.000000": sync_us * 3000}}}
    return {"fio version": "fio-3.33", "jobs": [job]}


def write_all(d, curve_scale=1.0, skip=(), overrides=None):
    """local: 1000 IOPS / 100 us everywhere (QD1 write: 100 us write + 200 us fdatasync);
    nbdfile: half the IOPS; curve: IOPS * curve_scale, latency 2x local's."""
    overrides = overrides or {}
    for job, direction in JOBS.items():
        sync = 200.0 if job == "randwrite_4k_qd1" else None
        docs = {"local": fio_doc(direction, 1000.0, 100.0, 400.0, sync_us=sync),
                "nbdfile": fio_doc(direction, 500.0, 150.0, 500.0),
                "curve": fio_doc(direction, 1000.0 * curve_scale, 600.0, 900.0)}
        for b, doc in docs.items():
            name = f"{b}__{job}.json"
            if name in skip:
                continue
            path = os.path.join(d, name)
            with open(path, "w", encoding="utf-8") as f:
                if name in overrides:
                    f.write(overrides[name])
                else:
                    json.dump(doc, f)


def run(d, *extra):
    p = subprocess.run([sys.executable, TABLE, str(d), *extra], capture_output=True, text=True,
                       timeout=30, check=False)
    targets = {l.split()[1]: l for l in p.stdout.splitlines() if l.startswith("TARGET ")}
    return p, targets


def test_ratios_and_targets(tmp_path):
    write_all(tmp_path, curve_scale=0.5)
    out = tmp_path / "r.json"
    p, t = run(tmp_path, "--json", str(out))
    assert p.returncode == 0, p.stderr
    # QD1 write: curve 600 us / local (100 + 200) us = 2.0 <= 3 -> MET
    assert "measured=2.000x goal=<=3.00x MET" in t["nbd_randwrite_4k_qd1_avg_lat_vs_local_fdatasync"]
    # QD32: 500 / 1000 = 0.5 -> both MET
    assert "measured=0.500x goal=>=0.20x MET" in t["nbd_randwrite_4k_qd32_iops_vs_local"]
    assert "measured=0.500x goal=>=0.40x MET" in t["nbd_randread_4k_qd32_iops_vs_local"]
    assert len(t) == 3
    res = json.loads(out.read_text())
    local = res["results"]["local__randwrite_4k_qd1"]
    assert local["avg_us"] == pytest.approx(300.0) and local["fdatasync"] is True
    assert local["p99_us"] == pytest.approx(400.0 + 600.0)
    assert res["results"]["curve__randread_4k_qd32"]["iops"] == pytest.approx(500.0)
    # the curve row of QD32 randread: IOPS/local 0.500, avg/local 6.000, IOPS/nbdf 1.000
    row = [l for l in p.stdout.splitlines() if l.startswith("4k randread QD32   curve")][0]
    assert row.split()[-4:] == ["0.500", "6.000", "1.000", "4.000"]


def test_targets_missed(tmp_path):
    write_all(tmp_path, curve_scale=0.1)
    for job in JOBS:  # curve QD1 write latency 1000 us -> 3.33x
        with open(tmp_path / f"curve__{job}.json", "w", encoding="utf-8") as f:
            json.dump(fio_doc(JOBS[job], 100.0, 1000.0, 2000.0), f)
    p, t = run(tmp_path)
    assert p.returncode == 0, p.stderr
    assert "measured=3.333x goal=<=3.00x MISSED" in t["nbd_randwrite_4k_qd1_avg_lat_vs_local_fdatasync"]
    assert "measured=0.100x goal=>=0.20x MISSED" in t["nbd_randwrite_4k_qd32_iops_vs_local"]
    assert t["nbd_randread_4k_qd32_iops_vs_local"].endswith("MISSED")


@pytest.mark.parametrize("bad", ["missing", "garbage", "failed_job", "no_ios", "two_jobs",
                                 "not_object", "bad_field"])
def test_bad_input_gives_no_number(tmp_path, bad):
    name = "curve__randwrite_4k_qd32.json"
    overrides, skip = {}, ()
    if bad == "missing":
        skip = (name,)
    elif bad == "garbage":
        overrides[name] = "{not json"
    elif bad == "failed_job":
        overrides[name] = json.dumps(fio_doc("write", 900.0, 100.0, 200.0, error=5))
    elif bad == "no_ios":
        overrides[name] = json.dumps(fio_doc("write", 0.0, 100.0, 200.0))
    elif bad == "two_jobs":
        doc = fio_doc("write", 900.0, 100.0, 200.0)
        doc["jobs"] *= 2
        overrides[name] = json.dumps(doc)
    elif bad == "not_object":
        overrides[name] = "[1, 2]"
    elif bad == "bad_field":
        doc = fio_doc("write", 900.0, 100.0, 200.0)
        doc["jobs"][0]["write"]["lat_ns"] = "x"
        overrides[name] = json.dumps(doc)
    write_all(tmp_path, curve_scale=0.5, skip=skip, overrides=overrides)
    p, t = run(tmp_path)
    assert p.returncode == 1
    assert "Traceback" not in p.stderr and name in p.stderr
    assert "measured=-x" in t["nbd_randwrite_4k_qd32_iops_vs_local"]
    assert t["nbd_randwrite_4k_qd32_iops_vs_local"].endswith("MISSED")
    # the others are still computed
    assert t["nbd_randread_4k_qd32_iops_vs_local"].endswith("MET")
    row = [l for l in p.stdout.splitlines() if l.startswith("4k randwrite QD32  curve")][0]
    assert row.split()[6:] == ["-"] * 8


def test_usage(tmp_path):
    p, _ = run(tmp_path, "--bogus")
    assert p.returncode == 2 and "usage" in p.stderr
