"""Smoke tests for the load tool (coordcore.bench): it drives real load through the client protocol,
reports it, really creates nodes for the create op and cleans up after itself.  No timing assertions."""
from __future__ import annotations

import json

import pytest

from coordcore import bench


def _bench_roots(client) -> list[str]:
    return [c for c in client.get_children("/") if c.startswith("coordcore-bench-")]


def test_cli_reports_ops_without_errors_for_every_op_and_cleans_up(zk_server, zk_client, tmp_path):
    before = set(_bench_roots(zk_client))
    out = tmp_path / "bench.json"
    rc = bench.main(["--connect", zk_server.connect_string, "--ops", "create,set,get,exists",
                     "--connections", "2", "--outstanding", "4", "--duration", "1", "--warmup", "0.2",
                     "--nodes", "8", "--json", str(out)])
    assert rc == 0
    results = json.loads(out.read_text())["results"]
    assert [(r["op"], r["outstanding"]) for r in results] == [
        ("create", 4), ("set", 4), ("get", 4), ("exists", 4)]
    for r in results:
        assert r["ok"] > 0 and r["ops_per_s"] > 0, r
        assert r["errors"] == 0 and r["error_codes"] == {}, r
        assert 0 < r["p50_ms"] <= r["p99_ms"] <= r["max_ms"], r
    # everything the run created (bench root, data nodes, created nodes) is gone again
    assert set(_bench_roots(zk_client)) == before


def test_create_run_really_creates_nodes_and_cleanup_removes_them(zk_server, zk_client):
    host, port = bench.parse_host_port(zk_server.connect_string)
    target = bench.Target("smoke", host, port, nodes=4)
    target.setup()
    runner = bench._Runner(1)
    try:
        res = bench.run_one(target, runner, "create", 4, 2, duration_s=0.5, warmup_s=0.1, keep_created=True)
        assert res.errors == 0 and res.ok > 0
        children = zk_client.get_children(res.create_parent)
        assert len(children) == res.created >= res.ok
        assert all(c.startswith("n-") and len(c) == 12 for c in children)
        data, stat = zk_client.get(f"{res.create_parent}/{sorted(children)[-1]}")
        assert data == bench.DATA and stat.numChildren == 0

        res = bench.run_one(target, runner, "set", 4, 2, duration_s=0.3, warmup_s=0.0)
        assert res.errors == 0 and res.ok > 0
        versions = [zk_client.get(p)[1].version for p in target.nodes]
        assert sum(versions) >= res.ok      # every counted set really bumped a node's version
    finally:
        runner.close()
        target.cleanup()
    assert zk_client.exists(target.root) is None


def test_bad_arguments_give_clear_errors(capsys):
    with pytest.raises(SystemExit) as e:
        bench.main(["--connect", "127.0.0.1:1", "--ops", "create,frobnicate"])
    assert e.value.code == 2
    assert "frobnicate" in capsys.readouterr().err
    assert bench.main(["--connect", "no-port-here", "--procs", "0"]) == 2
    assert "HOST:PORT" in capsys.readouterr().err


def test_side_by_side_reports_both_servers_startup_memory_and_ratios(tmp_path, capsys):
    out = tmp_path / "sbs.json"
    rc = bench.main(["--side-by-side", "--rounds", "3", "--ops", "get,create", "--outstanding", "2", "--connections", "1",
                     "--duration", "0.3", "--warmup", "0", "--prewarm", "0", "--nodes", "2",
                     "--json", str(out)])
    assert rc == 0
    report = json.loads(out.read_text())
    for kind in ("coordcore", "zookeeper"):
        info = report["servers"][kind]
        assert info["startup_ms"] > 0 and 0 < info["rss_kib"] <= info["peak_rss_kib"] <= info["peak_with_children_kib"]
        runs = report["results"][kind]
        assert [(r["op"], r["outstanding"]) for r in runs] == [("get", 2), ("create", 2)]
        assert all(r["ok"] > 0 and r["errors"] == 0 for r in runs), runs
    printed = capsys.readouterr().out
    assert "median of 3 interleaved rounds" in printed
    assert "side-by-side" in printed and "start to serving" in printed and "resident memory" in printed and "peak resident memory" in printed
    assert "peak memory with forked snapshot writers" in printed


def test_memory_bench_fills_both_servers_and_prints_a_row_per_step():
    import os
    import subprocess
    import sys

    script = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "benchmarks",
                          "memory_bench.py")
    done = subprocess.run([sys.executable, script, "--nodes", "2500", "--step", "1000", "--data-bytes", "10"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    rows = [line.split("|") for line in done.stdout.splitlines() if line.strip()[:1].isdigit()]
    assert [int(r[0]) for r in rows] == [0, 1000, 2000, 2500]   # the last step is the remainder
    for r in rows[1:]:
        cc, zk, ratio = (float(x) for x in r[1].split())
        assert cc > 0 and zk > 0 and ratio == pytest.approx(cc / zk, abs=0.01)
    bad = subprocess.run([sys.executable, script, "--step", "0"], capture_output=True, text=True, timeout=60)
    assert bad.returncode == 2 and "--step" in bad.stderr


def test_memory_sampler_counts_what_a_forked_child_holds():
    # coordcore's snapshot writer is a forked child; the peak must include the memory it holds
    import subprocess
    import sys
    import time

    code = ("import os, sys, time\n"
            "if os.fork() == 0:\n"
            "    block = bytearray(os.urandom(1 << 20)) * 64   # 64 MiB of the child's own\n"
            "    time.sleep(2.0)\n"
            "    os._exit(0)\n"
            "print('forked', flush=True)\n"
            "os.wait()\n")
    proc = subprocess.Popen([sys.executable, "-c", code], stdout=subprocess.PIPE, text=True)
    try:
        sampler = bench._ChildMemorySampler(proc.pid)
        assert proc.stdout.readline().strip() == "forked"
        deadline = time.monotonic() + 10
        while sampler.peak_kib < 64 * 1024 and time.monotonic() < deadline:
            time.sleep(0.05)
        peak = sampler.stop()
    finally:
        proc.wait(10)
    assert 64 * 1024 <= peak < 64 * 1024 + 200 * 1024


def test_ensemble_side_by_side_bad_arguments_are_refused(capsys):
    for argv, needle in ((["--ensemble", "3", "--connect", "127.0.0.1:1"], "--side-by-side"),
                         (["--side-by-side", "--ensemble", "4"], "3, 5 or 7"),
                         (["--side-by-side", "--ensemble", "3", "--levels", "4by16"], "--levels"),
                         (["--side-by-side", "--ensemble", "3", "--placements", "leader"], "--placements"),
                         (["--side-by-side", "--ensemble", "3", "--sections", "throughput"], "startup")):
        with pytest.raises(SystemExit) as e:
            bench.main(argv)
        assert e.value.code == 2
        assert needle in capsys.readouterr().err, argv


def test_ensemble_side_by_side_measures_every_section_on_both_backends(tmp_path, capsys):
    """A tiny run of every section: both ensembles start and serve, the load runs without errors on a
    follower, a killed leader is replaced and writes resume, a stopped follower catches up by some
    sync, and every member's memory is read."""
    out = tmp_path / "ens.json"
    rc = bench.main(["--side-by-side", "--ensemble", "3", "--ops", "set", "--levels", "1x1", "--placements",
                     "follower", "--rounds", "1", "--duration", "0.3", "--warmup", "0", "--prewarm", "0",
                     "--nodes", "2", "--kills", "1", "--failover-znodes", "0", "--catchup", "300", "--startup-rounds", "2",
                     "--tick-ms", "200", "--json", str(out)])
    assert rc == 0
    figures = json.loads(out.read_text())["figures"]
    for kind in ("coordcore", "zookeeper"):
        f = figures[kind]
        assert f["startup_ms"] > 0 and len(f["startup_rounds_ms"]) == 2
        (runs,) = f["throughput"].values()
        assert runs[0]["ok"] > 0 and runs[0]["errors"] == 0, runs
        (row,) = f["failover"]["0"]
        assert row["to_write_ms"] > 0 and row["to_leader_ms"] > 0
        (catchup,) = f["catchup"]
        assert catchup["txns"] == 300 and catchup["sync"] in ("diff", "snap", "trunc")
        assert len(f["rss_kib"]) == 3 and all(0 < v <= f["peak_kib"][s] for s, v in f["rss_kib"].items())
    printed = capsys.readouterr().out
    for needle in ("start to serving", "set     follower    1x1", "failover with 0 znodes, coordcore",
                   "failover with 0 znodes, zookeeper", "catch-up of 300 txns", "memory ratio per member"):
        assert needle in printed, needle
