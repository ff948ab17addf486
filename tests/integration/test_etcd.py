"""etcd client against a live etcd: runs tests/unit/etcd/etcd_client_check cases."""
import os
import signal
import subprocess

import pytest

from etcdtest import EtcdCluster, free_port, wait_until

BUILD = os.environ.get("CURVE_BUILD_DIR", os.path.join(os.path.dirname(__file__), "../../build"))
CHECK = os.path.join(BUILD, "tests/unit/etcd/etcd_client_check")
RUN_TIMEOUT_S = 60


def run_check(case, endpoints, timeout=RUN_TIMEOUT_S):
    p = subprocess.run([CHECK, case] + list(endpoints), capture_output=True, text=True,
                       timeout=timeout)
    print(p.stdout)
    print(p.stderr[-3000:])
    assert p.returncode == 0, "%s failed:\n%s\n%s" % (case, p.stdout, p.stderr[-3000:])
    assert ("OK %s" % case) in p.stdout
    return p.stdout


@pytest.fixture(scope="module")
def etcd1():
    if not os.path.exists(CHECK):
        pytest.fail("missing %s (build target etcd_client_check)" % CHECK)
    with EtcdCluster(size=1) as cl:
        yield cl


@pytest.mark.parametrize("case", ["kv", "txn", "lease", "watch", "compact"])
def test_case(etcd1, case):
    run_check(case, etcd1.endpoints())


def test_failover_dead_endpoint_first(etcd1):
    dead = "http://127.0.0.1:%d" % free_port()
    run_check("failover", [dead] + etcd1.endpoints())


def test_refused_when_nothing_listens():
    dead = ["http://127.0.0.1:%d" % free_port(), "http://127.0.0.1:%d" % free_port()]
    out = run_check("refused", dead)
    assert "ECONNREFUSED" in out


def test_timeout_when_etcd_paused():
    with EtcdCluster(size=1) as cl:
        cl.pause(0)
        try:
            out = run_check("timeout", cl.endpoints())
        finally:
            cl.resume(0)
        assert "CURVE_ERR_TIMEOUT" in out
        # and it serves again once resumed
        run_check("kv", cl.endpoints())


def test_watch_reports_stream_error_when_etcd_dies():
    with EtcdCluster(size=1) as cl:
        p = subprocess.Popen([CHECK, "watch_error"] + cl.endpoints(), stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True)
        try:
            line = p.stdout.readline()
            assert line.strip() == "WATCHING", line
            cl.kill(0)
            out, err = p.communicate(timeout=RUN_TIMEOUT_S)
            print(out, err[-2000:])
            assert p.returncode == 0, out + err[-2000:]
            assert "OK watch_error" in out
        finally:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=5)


def test_three_members_one_killed():
    """With a 3-member cluster, killing the member the client uses fails over to another."""
    with EtcdCluster(size=3) as cl:
        run_check("kv", cl.endpoints())
        cl.kill(0)
        # If member 0 led, the other two elect a new leader first (1-3 s with etcd's default
        # timings, longer than one client deadline): wait for it, then the client must fail
        # over from the dead first endpoint on its own.
        wait_until(lambda: cl.health(1) or cl.health(2), 30, "a new etcd leader")
        run_check("kv", cl.endpoints())
        run_check("txn", cl.endpoints())
        run_check("watch", cl.endpoints())
