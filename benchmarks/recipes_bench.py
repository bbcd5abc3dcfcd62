#!/usr/bin/env python
"""Recipes benchmark: our fair lock vs kazoo's Lock, our election vs kazoo's Election, same server.

    python benchmarks/recipes_bench.py                          # embedded coordcore server
    python benchmarks/recipes_bench.py --backend zookeeper      # Apache ZooKeeper (Debian package)
    python benchmarks/recipes_bench.py --connect 127.0.0.1:2181 --contenders 1,4 --modes threads

For each contender count and mode (threads in this process, or one process per contender), every
contender has its own ZooKeeper session and loops acquire -> release for ``--seconds``. Printed:
acquisitions/s, handoff latency p50/p99 (previous holder starts release -> next holder's acquire
returns), and watch notifications delivered per release. Election failover: the leader process is
SIGKILLed and we time kill -> the next leader's callback (dominated by the session timeout).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import statistics
import subprocess
import sys
import threading
import time
import uuid

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from kazoo.client import KazooClient  # noqa: E402


def quiet() -> None:
    import structlog

    logging.basicConfig(level=logging.CRITICAL)
    # Info events filtered out, and the logger built once (structlog's advice for production) rather
    # than on every call: kazoo's recipes log nothing on the acquire path, so neither should we pay.
    structlog.configure(
        wrapper_class=structlog.make_filtering_bound_logger(logging.ERROR),
        cache_logger_on_first_use=True,
    )


class CountingClient(KazooClient):
    """Counts every watch notification delivered to any callback of this client."""

    notifications = 0

    def _wrap(self, watch):
        if watch is None:
            return None

        def counted(event):
            self.notifications += 1
            return watch(event)

        return counted

    def get_async(self, path, watch=None):
        return super().get_async(path, self._wrap(watch))

    def exists_async(self, path, watch=None):
        return super().exists_async(path, self._wrap(watch))

    def get_children_async(self, path, watch=None, include_data=False):
        return super().get_children_async(path, self._wrap(watch), include_data)


def make_lock(impl: str, client: KazooClient, path: str):
    if impl == "ours":
        from recipes import Lock

        return Lock(client, path)
    return client.Lock(path)


def lock_loop(impl: str, hosts: str, path: str, start_at: float, seconds: float) -> dict:
    """One contender: loop until the end time; record (acquired_at, release_started_at) pairs."""
    client = CountingClient(hosts=hosts, timeout=10)
    client.start(30)
    lock = make_lock(impl, client, path)
    intervals = []
    while time.monotonic() < start_at:
        time.sleep(0.001)
    end = start_at + seconds
    while time.monotonic() < end:
        lock.acquire()
        acquired = time.monotonic()
        released = time.monotonic()
        lock.release()
        intervals.append((acquired, released))
    # let late notifications arrive before counting
    client.sync(path)
    notes = client.notifications
    client.stop()
    client.close()
    return {"intervals": intervals, "notifications": notes}


def summarize(results: list[dict], seconds: float) -> dict:
    intervals = sorted(iv for r in results for iv in r["intervals"])
    handoffs = [intervals[i + 1][0] - intervals[i][1] for i in range(len(intervals) - 1)]
    overlaps = sum(1 for h in handoffs if h < 0)
    handoffs.sort()

    def pct(p: float) -> float:
        if not handoffs:
            return float("nan")
        return handoffs[min(len(handoffs) - 1, int(p * len(handoffs)))] * 1000

    releases = len(intervals)
    return {
        "acq_per_s": releases / seconds,
        "p50_ms": pct(0.50),
        "p99_ms": pct(0.99),
        "notes_per_release": sum(r["notifications"] for r in results) / max(releases, 1),
        "overlaps": overlaps,
        "acquisitions": releases,
    }


def run_lock(impl: str, mode: str, n: int, hosts: str, seconds: float) -> dict:
    path = f"/bench-recipes/{impl}-{mode}-{n}-{uuid.uuid4().hex[:8]}"
    admin = KazooClient(hosts=hosts)
    admin.start(30)
    admin.ensure_path(path)
    if mode == "threads":
        start_at = time.monotonic() + 1.0 + 0.05 * n
        results: list[dict] = []
        threads = [
            threading.Thread(target=lambda: results.append(lock_loop(impl, hosts, path, start_at, seconds)))
            for _ in range(n)
        ]
        for t in threads:
            t.start()
        for t in threads:
            t.join(seconds + 120)
    else:
        start_at = time.monotonic() + 2.0 + 0.3 * n
        procs = [
            subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", "lock", impl, hosts, path,
                 repr(start_at), repr(seconds)],
                stdout=subprocess.PIPE, text=True,
            )
            for _ in range(n)
        ]
        results = []
        for p in procs:
            out, _ = p.communicate(timeout=seconds + 120)
            results.append(json.loads(out.strip().splitlines()[-1]))
    admin.delete(path, recursive=True)
    admin.stop()
    admin.close()
    return summarize(results, seconds)


def election_worker(impl: str, hosts: str, path: str, ident: str, session_timeout: float) -> None:
    client = KazooClient(hosts=hosts, timeout=session_timeout)
    client.start(30)
    print("READY", flush=True)

    def lead(*_):
        print(f"LEADER {ident} {time.monotonic()!r}", flush=True)
        while True:
            time.sleep(1)

    if impl == "ours":
        from recipes import LeaderElection

        LeaderElection(client, path, ident).run(lead)
    else:
        client.Election(path, ident).run(lead)


def run_failover(impl: str, hosts: str, session_timeout: float, rounds: int) -> list[float]:
    times = []
    admin = KazooClient(hosts=hosts)
    admin.start(30)
    for r in range(rounds):
        path = f"/bench-recipes/election-{impl}-{uuid.uuid4().hex[:8]}"
        admin.ensure_path(path)
        procs = {}
        for i in range(2):
            ident = f"c{i}"
            p = subprocess.Popen(
                [sys.executable, os.path.abspath(__file__), "--worker", "elect", impl, hosts, path, ident,
                 repr(session_timeout)],
                stdout=subprocess.PIPE, text=True,
            )
            procs[ident] = p
            assert p.stdout.readline().startswith("READY")
            deadline = time.monotonic() + 30
            while len(admin.get_children(path)) < i + 1 and time.monotonic() < deadline:
                time.sleep(0.01)
        try:
            line = procs["c0"].stdout.readline()
            assert line.startswith("LEADER c0"), line
            killed_at = time.monotonic()
            procs["c0"].send_signal(signal.SIGKILL)
            line = procs["c1"].stdout.readline()
            assert line.startswith("LEADER c1"), line
            times.append(float(line.split()[2]) - killed_at)
        finally:
            for p in procs.values():
                p.kill()
                p.wait(10)
        admin.delete(path, recursive=True)
    admin.stop()
    admin.close()
    return times


def main(argv: list[str] | None = None) -> int:
    if argv is None:
        argv = sys.argv[1:]
    if argv and argv[0] == "--worker":
        quiet()
        kind, impl, hosts, path = argv[1:5]
        if kind == "lock":
            print(json.dumps(lock_loop(impl, hosts, path, float(argv[5]), float(argv[6]))), flush=True)
        else:
            election_worker(impl, hosts, path, argv[5], float(argv[6]))
        return 0

    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--connect", help="host:port of a running server (default: start one)")
    p.add_argument("--backend", choices=("coordcore", "zookeeper"), default="coordcore",
                   help="server to start when --connect is not given (default: embedded coordcore)")
    p.add_argument("--contenders", default="1,4,16", help="comma-separated contender counts")
    p.add_argument("--modes", default="threads,processes", help="threads, processes or both")
    p.add_argument("--seconds", type=float, default=3.0, help="measuring time per configuration")
    p.add_argument("--failover-rounds", type=int, default=3, help="leader kills per implementation (0: skip)")
    p.add_argument("--rounds", type=int, default=3,
                   help="alternating ours/kazoo rounds per configuration; figures are medians (default 3)")
    p.add_argument("--session-timeout", type=float, default=2.0, help="session timeout for the failover runs")
    args = p.parse_args(argv)
    try:
        counts = [int(x) for x in args.contenders.split(",") if x]
    except ValueError:
        p.error("--contenders must be comma-separated integers")
    modes = [m for m in args.modes.split(",") if m]
    if not counts or any(c < 1 for c in counts) or not set(modes) <= {"threads", "processes"}:
        p.error("bad --contenders or --modes")
    quiet()

    server = None
    hosts = args.connect
    if hosts is None:
        from coordcore.testing import make_server

        # a server process of its own: an in-process one would share the GIL with the contenders
        server = make_server(args.backend)
        try:
            server.start()
        except Exception as e:
            server.close()
            raise SystemExit(f"error: could not start a {args.backend} server: {e}")
        hosts = server.connect_string
    label = args.backend if args.connect is None else args.connect
    try:
        print(f"recipes benchmark on {label}; {args.seconds:.0f}s per run, median of {args.rounds} "
              f"alternating rounds\n")
        header = f"{'mode':<10}{'N':>4}  {'impl':<6}{'acq/s':>9}{'handoff p50 ms':>16}{'p99 ms':>9}" \
                 f"{'notif/release':>15}{'overlaps':>10}"
        print(header)
        print("-" * len(header))
        for mode in modes:
            for n in counts:
                # ours and kazoo's alternate, round after round, so drift in the machine's load hits
                # both alike; each figure is the median over the rounds (overlaps: the sum)
                runs: dict[str, list[dict]] = {"ours": [], "kazoo": []}
                for r in range(args.rounds):
                    # who goes first alternates too: a run can inherit the previous run's leftovers
                    # (its sessions closing on the server, its garbage in this process)
                    for impl in (("ours", "kazoo") if r % 2 == 0 else ("kazoo", "ours")):
                        runs[impl].append(run_lock(impl, mode, n, hosts, args.seconds))
                for impl in ("ours", "kazoo"):
                    rs = runs[impl]

                    def med(key):
                        return statistics.median(r[key] for r in rs)
                    print(f"{mode:<10}{n:>4}  {impl:<6}{med('acq_per_s'):>9.1f}{med('p50_ms'):>16.2f}"
                          f"{med('p99_ms'):>9.2f}{med('notes_per_release'):>15.2f}"
                          f"{sum(r['overlaps'] for r in rs):>10}", flush=True)
        if args.failover_rounds > 0:
            print(f"\nelection failover (leader SIGKILLed -> next leader's callback), "
                  f"session timeout {args.session_timeout}s")
            for impl in ("ours", "kazoo"):
                t = run_failover(impl, hosts, args.session_timeout, args.failover_rounds)
                print(f"  {impl:<6} median {statistics.median(t):.2f}s  "
                      f"(runs: {', '.join(f'{x:.2f}' for x in t)})", flush=True)
    finally:
        if server is not None:
            server.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
